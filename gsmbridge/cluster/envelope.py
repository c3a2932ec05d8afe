"""What travels on the broker: one JSON object per message, checked before anyone acts on it.

The broker is shared with the rest of a deployment (the Celery broker), so a message on a
gsmbridge queue may come from anywhere: anything that is not a JSON object of bounded size
with a usable id is refused here, before a handler sees it. Field-level checks (numbers, text
length) stay with whoever owns those rules (the HTTP API's checks); this layer only guarantees
the shape every gsmbridge message shares.

- work (an SMS to send) and status reports carry ``id``: the message's id, the same end to end,
  which lets every hop repeat a message safely (the receiving store drops an id it holds);
- heartbeats carry ``node`` instead.
"""

import json
import re

#: no gsmbridge message comes near this (an SMS of 255 parts is ~40 KB of JSON)
MAX_BODY = 64 * 1024
ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
NODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONTENT_TYPE = "application/json"


class BadMessage(ValueError):
    """A message gsmbridge cannot use: the reason, never the content (it may hold numbers)."""


def encode(body, *, key="id", max_body=MAX_BODY):
    """UTF-8 JSON bytes of a dict whose `key` ("id" or "node") is usable."""
    check(body, key=key)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")
    if len(data) > max_body:
        raise BadMessage("%d bytes of JSON, more than %d" % (len(data), max_body))
    return data


def decode(raw, content_type=CONTENT_TYPE, *, key="id", max_body=MAX_BODY):
    """The dict in a message body; BadMessage naming what is wrong."""
    if content_type not in (CONTENT_TYPE, None, ""):
        raise BadMessage("content type %r, not %s" % (str(content_type)[:60], CONTENT_TYPE))
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if not isinstance(raw, (bytes, bytearray)):
        raise BadMessage("a body of type %s, not bytes" % type(raw).__name__)
    if len(raw) > max_body:
        raise BadMessage("%d bytes, more than %d" % (len(raw), max_body))
    try:
        body = json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadMessage("not UTF-8 JSON (%s)" % type(exc).__name__) from None
    check(body, key=key)
    return body


def check(body, *, key="id"):
    if not isinstance(body, dict):
        raise BadMessage("a JSON %s, not an object" % type(body).__name__)
    value = body.get(key)
    pattern = NODE if key == "node" else ID
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadMessage("no usable %r (1 to 64 letters, digits or %s)"
                         % (key, "_ . -" if key == "node" else "_ . : -"))
    return body


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)

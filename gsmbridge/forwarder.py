"""The forwarder: delivers stored inbound SMS to RapidSMS over HTTP, retrying until it takes them.

Six request styles, one per way RapidSMS (or its successor RapidPro) takes inbound SMS:

- ``kannel``: GET ``url?id=<sender>&text=<text>``, what RapidSMS's KannelBackendView takes (GET
  only; its URL ends in a slash, and that slash matters).
- ``http``: POST form-urlencoded ``<identity_name>=<sender>&<text_name>=<text>``, what RapidSMS's
  GenericHttpBackendView takes.
- ``json``: POST a JSON object ``{"id", "from", "text", "received_at", "sent_at", "modem",
  "parts", "incomplete"}`` (received_at as ISO 8601 UTC, sent_at as the SMSC gave it).
- ``vumi``: POST a Vumi user message as JSON (UTF-8), what RapidSMS's VumiBackendView takes: its
  form requires message_id (our inbound id), to_addr, from_addr, transport_name and
  transport_type; content carries the text. The bridge does not know its SIM's own number, so
  to_addr and transport_name are the modem's name.
- ``httprouter``: GET ``url?backend=<modem name>&sender=<sender>&message=<text>``, what
  rapidsms-httprouter's /router/receive takes. The backend name comes back as ``%(backend)s`` in
  its ROUTER_URL, so a reply can name the same modem as ``smsc``.
- ``rapidpro``: POST form-urlencoded ``id, ts, sender, message, to, backend`` to the receive URL of
  a Kannel ("KN") channel of RapidPro's courier (``https://<host>/c/kn/<channel uuid>/receive``),
  the fields RapidPro's own Kannel configuration sends. Courier requires ``id`` (our message id,
  the same on every retry, which courier dedups on with the sender), ``ts`` (Unix seconds, not 0:
  the SMSC's timestamp, else when the modem gave us the message) and ``sender``; ``message`` may
  be empty. ``to`` is the modem's own number when the ini gives it (``[modem] number``), else its
  name, and ``backend`` its name; courier does not read them, but they say which SIM it came to.
  The fields go in the body, not the query string, though courier reads both: a body has no URL
  length limit (a proxy in front of courier commonly refuses request lines over 8 KB, and a long
  Unicode text percent-encoded is more than that), and neither the number nor the text ends up
  in the access logs of every proxy on the way. Courier answers an alphanumeric sender (a bank,
  an operator) 400 "not a possible number": a 4xx, so the message is kept as failed, visible in
  the status, and not retried.

Every request carries ``X-Message-Id: <inbound id>``, the same on every retry, so a receiver can
recognise a message it already took (delivery is at-least-once: a reply lost on the way back
means the message is sent again).

Outcomes: 2xx delivered. A 4xx about the message itself (400, 422, 413, 414, 415, ...) is a
refusal for good: kept as `failed` with the status and the start of the body, logged at WARNING,
never retried (`gsmbridge requeue` puts it back). A 4xx that says RapidSMS is not there (401,
403, 404, 405, 410, ...: a deploy under way, a moved URL, a changed password) is no message's
fault: the message waits and the forwarder holds off, as when RapidSMS cannot be reached at all,
and tries again with capped exponential backoff, without end. So are 408, 425, 429, 5xx, a
redirect and a timeout. No style follows a redirect: a GET redirected to a login page that
answers 200 would count as delivered while RapidSMS never saw the message. (These rules are
gsmbridge/delivery.py's `classify`, shared with the delivery-report sender.) What RapidSMS's
answers say (up, failing, not there, not answering) is kept in the store for /health, under its
masked URL. The metrics count each outcome and time each request.

Each sender's messages go in arrival order: the store only offers a sender's oldest pending one.
"""

import json
import logging
import urllib.parse
from datetime import datetime, timezone

from gsmbridge import httpclient, metrics
from gsmbridge.delivery import NOT_THERE_4XX, RETRYABLE_4XX, Sender, classify, describe_error
from gsmbridge.safeurl import mask_url

__all__ = ["Forwarder", "vumi_message", "mask_url", "describe_error", "RETRYABLE_4XX",
           "NOT_THERE_4XX", "classify", "STYLES"]

STYLES = ("kannel", "http", "json", "vumi", "httprouter", "rapidpro")

#: the styles whose receiver is a RapidSMS backend view, whose URL ends in a slash
SLASHED_STYLES = ("kannel", "http", "vumi")


def _iso_utc(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def _vumi_time(epoch):
    """Vumi's timestamp format: UTC, "%Y-%m-%d %H:%M:%S.%f", no zone."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def unix_time(row):
    """An inbound message's time as RapidPro's `ts` takes it: whole Unix seconds, never 0.

    The SMSC's timestamp (when the phone's message reached the network) when the modem gave a
    valid one, else when the bridge received the message: what a conversation should be ordered
    by, and what courier keeps as the message's received_on."""
    sent_at = row.get("sent_at")
    if sent_at:
        try:
            seconds = int(datetime.fromisoformat(sent_at).timestamp())
        except (TypeError, ValueError, OverflowError, OSError):
            seconds = 0
        if seconds > 0:
            return seconds
    return max(1, int(row["received_at"]))


def vumi_message(row):
    """A stored inbound message as a Vumi user message (the JSON Vumi posts to RapidSMS).

    in_reply_to is null: an SMS from a phone is never known to answer anything. What Vumi has no
    field for (the SMSC timestamp, parts, a gap from a missing part) goes in transport_metadata.
    """
    return {
        "message_version": "20110921",
        "message_type": "user_message",
        "message_id": row["id"],
        "in_reply_to": None,
        "session_event": None,
        "group": None,
        "to_addr": row["modem"],
        "from_addr": row["sender"],
        "content": row["text"],
        "transport_name": row["modem"],
        "transport_type": "sms",
        "timestamp": _vumi_time(row["received_at"]),
        "helper_metadata": {},
        "transport_metadata": {
            "gsmbridge": {
                "sent_at": row["sent_at"],
                "received_at": _iso_utc(row["received_at"]),
                "parts": row["parts"],
                "incomplete": bool(row["incomplete"]),
            },
        },
    }


class Forwarder(Sender):
    """Moves due inbound messages from the store to the receiver. One thread runs it."""

    name = "forwarder"
    activity = "forwarding"
    topics = ("inbound",)

    def __init__(self, store, *, url, style="kannel", timeout=10.0, identity_name="identity",
                 text_name="text", backoff_base=2.0, backoff_cap=300.0, session=None, logger=None,
                 numbers=None):
        """numbers: {modem name: the number of its SIM}, for the modems whose number is known
        (the rapidpro style's `to`)."""
        if style not in STYLES:
            raise ValueError("style must be one of %s, not %r" % (", ".join(STYLES), style))
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL, not %r" % mask_url(url))
        super().__init__(store, timeout=timeout, backoff_base=backoff_base,
                         backoff_cap=backoff_cap, session=session,
                         logger=logger or logging.getLogger("gsmbridge.forwarder"))
        self.url = url
        # One kept-alive connection to the receiver (gsmbridge/httpclient.py); a requests
        # session given instead (session=) is used as it is.
        self.connection = None if session is not None else httpclient.Connection(
            url, timeout=timeout, limit=self.answer_limit)
        self.style = style
        self.identity_name = identity_name
        self.text_name = text_name
        self.numbers = dict(numbers or {})
        self.safe_url = mask_url(url)
        self.receiver_name = self.safe_url     # what /health shows: masked
        if style in SLASHED_STYLES and not parts.path.endswith("/"):
            self.log.warning("forwarding URL %s has no trailing slash; RapidSMS's backend URLs "
                             "end in one", self.safe_url)

    def run(self, stop_event):
        """Thread target: forward until stop_event is set (call store.notify() to stop at once)."""
        self.log.info("forwarding to %s (%s style)", self.safe_url, self.style)
        try:
            super().run(stop_event)
        finally:
            if self.connection is not None:
                self.connection.close()

    # -- the queue: the store's inbound messages, each sender's in arrival order ---------------

    def due(self, now):
        return self.store.due_inbound(now, limit=self.batch)

    def next_due(self):
        return self.store.next_inbound_due()

    def target(self, row):
        return self.safe_url

    def describe(self, row):
        return "id=%s" % row["id"]

    def fields(self, row):
        return {"msg_id": row["id"], "modem": row.get("modem")}

    def mark_delivered(self, row, body):
        self.store.inbound_delivered(row["id"], response=body)
        metrics.FORWARDED.inc()

    def mark_retry(self, row, error, next_attempt):
        self.store.inbound_retry(row["id"], error=error, next_attempt=next_attempt)
        metrics.FORWARD_RETRIED.inc()

    def mark_failed(self, row, error):
        self.store.inbound_failed(row["id"], error=error)
        metrics.FORWARD_FAILED.inc()

    def receiver_state(self, target, state, status, error):
        self.store.set_receiver(self.receiver_name, state, status=status, error=error)
        if state == "up" and target in self.states:   # it was not up before
            self.log.info("receiver %s takes messages again", self.safe_url)

    # -- one message ---------------------------------------------------------------------------

    def request_for(self, row):
        """(method, keyword arguments: params, data, headers) for one stored message."""
        headers = {"X-Message-Id": row["id"]}
        if self.style == "kannel":
            return "GET", {"params": {"id": row["sender"], "text": row["text"]}, "headers": headers}
        if self.style == "http":
            return "POST", {"data": {self.identity_name: row["sender"], self.text_name: row["text"]},
                            "headers": headers}
        if self.style == "httprouter":
            # params are added to any query the URL has (e.g. ?password= for ROUTER_PASSWORD)
            return "GET", {"params": {"backend": row["modem"], "sender": row["sender"],
                                      "message": row["text"]}, "headers": headers}
        if self.style == "rapidpro":
            modem = row["modem"]
            return "POST", {"data": {"id": row["id"], "ts": str(unix_time(row)),
                                     "sender": row["sender"], "message": row["text"],
                                     "to": self.numbers.get(modem) or modem, "backend": modem},
                            "headers": headers}
        if self.style == "vumi":
            payload = vumi_message(row)
        else:
            payload = {
                "id": row["id"],
                "from": row["sender"],
                "text": row["text"],
                "received_at": _iso_utc(row["received_at"]),
                "sent_at": row["sent_at"],
                "modem": row["modem"],
                "parts": row["parts"],
                "incomplete": bool(row["incomplete"]),
            }
        headers["Content-Type"] = "application/json; charset=utf-8"
        return "POST", {"data": json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                        "headers": headers}

    def request(self, row):
        method, kwargs = self.request_for(row)
        # A redirect is never followed: its target is not the receiver (a login page answering
        # 200, or a GET that a redirected POST becomes, without its body).
        with metrics.FORWARD_SECONDS.time():
            if self.connection is not None:
                return self.connection.request(method, **kwargs)
            return self.session.request(method, self.url, timeout=self.timeout,
                                        allow_redirects=False, stream=True, **kwargs)

    def error_for(self, response, excerpt):
        if 300 <= response.status_code < 400:
            return "HTTP %d redirect to %s (check the URL, e.g. its trailing slash)" % (
                response.status_code, mask_url(response.headers.get("Location", "?")))
        return super().error_for(response, excerpt)

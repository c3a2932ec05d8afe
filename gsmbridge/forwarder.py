"""The forwarder: delivers stored inbound SMS to RapidSMS over HTTP, retrying until it takes them.

Five request styles, one per way RapidSMS takes inbound SMS:

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

Every request carries ``X-Message-Id: <inbound id>``, the same on every retry, so a receiver can
recognise a message it already took (delivery is at-least-once: a reply lost on the way back
means the message is sent again).

Outcomes: 2xx delivered. 4xx refused for good: kept as `failed` with the status and the start of
the body, logged at WARNING, never retried (408, 425 and 429 say "try later", so they are retried).
Anything else (5xx, a redirect on POST, a timeout, a refused connection) is retried with capped
exponential backoff, without end. When the receiver cannot be reached at all, the whole forwarder
holds off for the same backoff instead of trying every waiting message in turn.

Each sender's messages go in arrival order: the store only offers a sender's oldest pending one.
"""

import json
import logging
import random
import re
import time
import urllib.parse
from datetime import datetime, timezone

import requests

STYLES = ("kannel", "http", "json", "vumi", "httprouter")

#: the styles whose receiver is a RapidSMS backend view, whose URL ends in a slash
SLASHED_STYLES = ("kannel", "http", "vumi")

#: 4xx statuses that mean "not now" rather than "never"
RETRYABLE_4XX = frozenset({408, 425, 429})

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def mask_url(text):
    """Hide credentials embedded in URLs (scheme://user:pass@host -> scheme://***@host)."""
    return _USERINFO.sub("***@", str(text))


def describe_error(exc):
    """A short, credential-free description of a requests exception (no URL, no query string:
    the query holds the sender's number and the message text)."""
    reason = exc
    while True:  # requests wraps urllib3's MaxRetryError, which wraps the real cause
        inner = getattr(reason, "reason", None)
        if inner is None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if inner is None or inner is reason or not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason)
    text = re.sub(r"^<[^>]*>:\s*", "", text)             # "<HTTPConnection object at 0x..>: "
    text = re.sub(r"\s*\(?(with )?url: \S+\)?", "", text)  # "... with url: /backend/?id=..&text=.."
    return "%s: %s" % (type(exc).__name__, mask_url(text).strip() or type(reason).__name__)


def _iso_utc(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def _vumi_time(epoch):
    """Vumi's timestamp format: UTC, "%Y-%m-%d %H:%M:%S.%f", no zone."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


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


class Forwarder:
    """Moves due inbound messages from the store to the receiver. One thread runs it."""

    #: messages offered per pass
    batch = 50
    #: the longest sleep between looks at the store (a notify wakes it sooner)
    max_idle = 1.0
    #: how many characters of a refusing response are kept in the error
    body_excerpt = 200

    def __init__(self, store, *, url, style="kannel", timeout=10.0, identity_name="identity",
                 text_name="text", backoff_base=2.0, backoff_cap=300.0, session=None, logger=None):
        if style not in STYLES:
            raise ValueError("style must be one of %s, not %r" % (", ".join(STYLES), style))
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL, not %r" % mask_url(url))
        self.store = store
        self.url = url
        self.style = style
        self.timeout = timeout
        self.identity_name = identity_name
        self.text_name = text_name
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.session = session or requests.Session()
        self.log = logger or logging.getLogger("gsmbridge.forwarder")
        self.safe_url = mask_url(url)
        self.hold_until = 0.0     # when the receiver was unreachable: no tries before this
        self.unreachable = 0      # consecutive passes that found it unreachable
        self._stop = None
        if style in SLASHED_STYLES and not parts.path.endswith("/"):
            self.log.warning("forwarding URL %s has no trailing slash; RapidSMS's backend URLs "
                             "end in one", self.safe_url)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop_event):
        """Thread target: forward until stop_event is set (call store.notify() to stop at once)."""
        self._stop = stop_event
        self.log.info("forwarding to %s (%s style)", self.safe_url, self.style)
        while not stop_event.is_set():
            try:
                worked = self.step()
            except Exception:
                # The store failing (disk full, closed at shutdown) must not kill the thread:
                # everything not yet delivered is still pending in the store.
                if stop_event.is_set():
                    break
                self.log.exception("forwarding pass failed; trying again shortly")
                stop_event.wait(5.0)
                continue
            if not worked and not stop_event.is_set():
                self.store.wait(self._idle_time())
        self.log.info("forwarder stopped")

    def _idle_time(self):
        now = time.time()
        if self.hold_until > now:
            until = self.hold_until
        else:
            until = self.store.next_inbound_due()
            if until is None:
                return self.max_idle
        return min(self.max_idle, max(0.01, until - now))

    def step(self, now=None):
        """One pass: offer each due message once. Returns how many were tried."""
        now = time.time() if now is None else now
        if now < self.hold_until:
            return 0
        tried = 0
        for row in self.store.due_inbound(now, limit=self.batch):
            if self._stop is not None and self._stop.is_set():
                break
            outcome = self.deliver(row)
            tried += 1
            if outcome == "unreachable":
                break
        return tried

    # -- one message -------------------------------------------------------------------------

    def request_for(self, row):
        """(method, keyword arguments for requests) for one stored message."""
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

    def deliver(self, row):
        """Send one message and record the outcome in the store.

        Returns "delivered", "failed" (refused for good), "retry" or "unreachable".
        """
        msg_id = row["id"]
        attempt = row["attempts"] + 1
        method, kwargs = self.request_for(row)
        started = time.monotonic()
        try:
            # A redirect is followed for GET only: requests turns a redirected POST into a GET
            # without its body, which would reach the receiver as an empty message.
            resp = self.session.request(method, self.url, timeout=self.timeout,
                                        allow_redirects=(method == "GET"), **kwargs)
            body = resp.text
        except requests.Timeout:
            return self._unreachable(row, attempt, "no answer within %gs" % self.timeout)
        except requests.ConnectionError as exc:
            return self._unreachable(row, attempt, describe_error(exc))
        except requests.RequestException as exc:
            return self._retry(row, attempt, describe_error(exc))
        elapsed = time.monotonic() - started
        self.unreachable = 0
        status = resp.status_code
        if 200 <= status < 300:
            self.store.inbound_delivered(msg_id, response=body)
            self.log.info("id=%s delivered: HTTP %d, attempt %d, %.2fs", msg_id, status, attempt,
                          elapsed)
            return "delivered"
        excerpt = body[:self.body_excerpt]
        if 400 <= status < 500 and status not in RETRYABLE_4XX:
            error = "HTTP %d: %s" % (status, excerpt)
            self.store.inbound_failed(msg_id, error=error)
            self.log.warning("id=%s refused by the receiver, kept as failed: HTTP %d %r",
                             msg_id, status, excerpt)
            return "failed"
        if 300 <= status < 400:
            error = "HTTP %d redirect to %s (check the URL, e.g. its trailing slash)" % (
                status, mask_url(resp.headers.get("Location", "?")))
        else:
            error = "HTTP %d: %s" % (status, excerpt)
        return self._retry(row, attempt, error)

    def backoff(self, attempt):
        """Seconds before try number attempt+1: base * 2^(attempt-1) with +-10% jitter, capped."""
        delay = self.backoff_base * 2.0 ** min(attempt - 1, 64)
        return min(self.backoff_cap, delay * random.uniform(0.9, 1.1))

    def _retry(self, row, attempt, error):
        delay = self.backoff(attempt)
        self.store.inbound_retry(row["id"], error=error, next_attempt=time.time() + delay)
        self.log.warning("id=%s not delivered (attempt %d): %s; next try in %.1fs",
                         row["id"], attempt, error, delay)
        return "retry"

    def _unreachable(self, row, attempt, error):
        self._retry(row, attempt, error)
        self.unreachable += 1
        pause = self.backoff(self.unreachable)
        self.hold_until = time.time() + pause
        if self.unreachable == 1 or self.unreachable % 10 == 0:
            self.log.warning("receiver %s unreachable (%d in a row); holding all deliveries "
                             "for %.1fs", self.safe_url, self.unreachable, pause)
        return "unreachable"


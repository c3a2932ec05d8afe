"""Delivery-report callbacks: makes the HTTP requests the store has queued for sent messages.

A sender that gave a dlr-url (Kannel sendsms, with a dlr-mask) or a dlr_url (JSON API, mask 31)
hears what became of its message the way Kannel tells it: a GET of that URL with Kannel's escapes
filled in. The types (dlr-mask bits):

- 8  delivered to the SMSC: the modem answered +CMGS for every part ("ACK")
- 16 not delivered to the SMSC: a permanent error, or too many transient ones (the error)
- 1  delivered to the phone: the status report(s) say so, for every part of a long message
- 2  not delivered to the phone: a status report says the SMSC gave up
- 4  queued on the SMSC: a status report with a temporary status

The store queues each callback in the same transaction as its cause, so none is lost; this thread
delivers them. 2xx is done. 4xx (but 408, 425, 429) is refused for good: kept as `failed`, logged,
never retried. Anything else (5xx, a timeout, a refused connection) is retried with capped
exponential backoff, without end; while a host cannot be reached at all, its callbacks wait for
the backoff instead of each being tried in turn. A message's callbacks go in the order of their
events (8 before 1), because the store offers only a message's oldest pending one.
"""

import logging
import random
import time
import urllib.parse
from datetime import datetime, timezone

import requests

from gsmbridge.forwarder import RETRYABLE_4XX, describe_error, mask_url

#: Kannel's names for the types, for logs
TYPES = {1: "delivered to phone", 2: "non-delivered to phone", 4: "queued on SMSC",
         8: "delivered to SMSC", 16: "non-delivered to SMSC"}

#: Kannel's %I is a UUID; RapidSMS keeps at most this many characters of it
MAX_ID = 36


def kannel_time(epoch):
    """%t as Kannel writes it: UTC, "YYYY-MM-DD+HH:MM:SS" (the space already URL-encoded as '+',
    exactly the bytes Kannel puts in the URL; a query-string parser reads a space)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d+%H:%M:%S")


def fill_escapes(template, values):
    """Kannel's escape codes in a dlr-url: `%x` for each x in `values` becomes that value,
    URL-encoded; `%%` becomes '%'; any other `%x` (and a '%' at the very end) is left as it is.

    `values` maps one-letter codes to str. %t is the one code given as Kannel renders it (see
    kannel_time) and is not encoded again.
    """
    out = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch != "%" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        code = template[i + 1]
        if code == "%":
            out.append("%")
        elif code == "t" and "t" in values:
            out.append(values["t"])
        elif code in values:
            # errors="replace": a lone surrogate must not stop every callback behind this one
            out.append(urllib.parse.quote(str(values[code]), safe="", errors="replace"))
        else:
            out.append(template[i:i + 2])
        i += 2
    return "".join(out)


def callback_values(row, smsc=None):
    """The escape values of one queued callback (a row of store.due_callbacks)."""
    return {
        "d": str(row["type"]),
        "A": row["text"],
        "i": row["smsc"] or smsc or "",
        "I": row["outbound_id"][:MAX_ID],
        "t": kannel_time(row["event_at"]),
        "T": str(int(row["event_at"])),
        "p": row["recipient"],
        "P": row["sender"] or "",
    }


def callback_url(row, smsc=None):
    """The URL to GET for one queued callback. `smsc` names the modem when the row has none."""
    return fill_escapes(row["dlr_url"], callback_values(row, smsc))


class DlrSender:
    """Makes due delivery-report callbacks. One thread runs it."""

    #: callbacks offered per pass
    batch = 50
    #: the longest sleep between looks at the store (a notify wakes it sooner)
    max_idle = 1.0
    #: how many characters of a refusing answer are kept in the error
    body_excerpt = 200

    def __init__(self, store, *, smsc=None, timeout=10.0, backoff_base=2.0, backoff_cap=300.0,
                 session=None, logger=None):
        self.store = store
        self.smsc = smsc
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.session = session or requests.Session()
        self.log = logger or logging.getLogger("gsmbridge.dlr")
        self.holds = {}   # host -> [hold until (epoch), consecutive unreachable passes]
        self._stop = None

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop_event):
        """Thread target: call back until stop_event is set (store.notify() stops it at once)."""
        self._stop = stop_event
        while not stop_event.is_set():
            try:
                worked = self.step()
            except Exception:
                # A store failure (disk full, closed at shutdown) must not end the thread: every
                # callback not yet made is still pending in the store.
                if stop_event.is_set():
                    break
                self.log.exception("delivery-report pass failed; trying again shortly")
                stop_event.wait(5.0)
                continue
            if not worked and not stop_event.is_set():
                self.store.wait(self._idle_time())
        self.log.info("delivery-report sender stopped")

    def _idle_time(self):
        now = time.time()
        until = self.store.next_callback_due()
        if until is None:
            return self.max_idle
        if until <= now:
            # Due but not tried: their host is on hold (or one just fell due).
            holds = [hold for hold, _ in self.holds.values() if hold > now]
            until = min(holds) if holds else now
        return min(self.max_idle, max(0.01, until - now))

    def step(self, now=None):
        """One pass: offer each due callback once (but those of a host on hold). Returns how many
        were tried."""
        now = time.time() if now is None else now
        tried = 0
        for row in self.store.due_callbacks(now, limit=self.batch):
            if self._stop is not None and self._stop.is_set():
                break
            hold = self.holds.get(_host(row["dlr_url"]))
            if hold is not None and hold[0] > now:
                continue
            self.deliver(row)
            tried += 1
        return tried

    # -- one callback ------------------------------------------------------------------------

    def deliver(self, row):
        """Make one callback and record the outcome. Returns "delivered", "failed" (refused for
        good), "retry" or "unreachable"."""
        cb_id = row["id"]
        attempt = row["attempts"] + 1
        url = callback_url(row, self.smsc)
        host = _host(row["dlr_url"])
        what = "callback=%s id=%s type=%d (%s)" % (cb_id, row["outbound_id"], row["type"],
                                                     TYPES.get(row["type"], "?"))
        try:
            resp = self.session.get(url, timeout=self.timeout, allow_redirects=True)
            body = resp.text
        except requests.Timeout:
            return self._unreachable(row, attempt, host, what, "no answer within %gs" % self.timeout)
        except requests.ConnectionError as exc:
            return self._unreachable(row, attempt, host, what, describe_error(exc))
        except requests.RequestException as exc:
            # a URL requests cannot use (no scheme after all, bad characters): a 4xx of our own
            error = describe_error(exc)
            self.store.callback_failed(cb_id, error=error)
            self.log.warning("%s cannot be made, kept as failed: %s", what, error)
            return "failed"
        self.holds.pop(host, None)
        status = resp.status_code
        if 200 <= status < 300:
            self.store.callback_delivered(cb_id, response=body)
            self.log.info("%s made: HTTP %d, attempt %d", what, status, attempt)
            return "delivered"
        excerpt = body[:self.body_excerpt]
        error = "HTTP %d: %s" % (status, excerpt)
        if 400 <= status < 500 and status not in RETRYABLE_4XX:
            self.store.callback_failed(cb_id, error=error)
            self.log.warning("%s refused by %s, kept as failed: HTTP %d %r", what, host, status,
                             excerpt)
            return "failed"
        return self._retry(row, attempt, what, error)

    def backoff(self, attempt):
        """Seconds before try number attempt+1: base * 2^(attempt-1) with +-10% jitter, capped."""
        delay = self.backoff_base * 2.0 ** min(attempt - 1, 64)
        return min(self.backoff_cap, delay * random.uniform(0.9, 1.1))

    def _retry(self, row, attempt, what, error):
        delay = self.backoff(attempt)
        self.store.callback_retry(row["id"], error=error, next_attempt=time.time() + delay)
        self.log.warning("%s not made (attempt %d): %s; next try in %.1fs", what, attempt, error,
                         delay)
        return "retry"

    def _unreachable(self, row, attempt, host, what, error):
        self._retry(row, attempt, what, error)
        hold = self.holds.setdefault(host, [0.0, 0])
        hold[1] += 1
        pause = self.backoff(hold[1])
        hold[0] = time.time() + pause
        if hold[1] == 1 or hold[1] % 10 == 0:
            self.log.warning("delivery-report receiver %s unreachable (%d in a row); holding its "
                             "callbacks for %.1fs", host, hold[1], pause)
        return "unreachable"


def _host(url):
    """scheme://host:port of a URL, without credentials: what a hold applies to, and what logs
    may show (the path and query hold the recipient's number)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = ":%d" % parts.port if parts.port else ""
    except ValueError:
        return mask_url(url.split("?", 1)[0])
    return "%s://%s%s" % (parts.scheme, host, port)

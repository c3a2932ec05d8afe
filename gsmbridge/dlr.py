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
delivers them, by the rules of gsmbridge/delivery.py (shared with the forwarder). 2xx is done.
A 4xx about the request itself (400, 422, ...) is refused for good: kept as `failed`, logged,
never retried (`gsmbridge requeue --direction callbacks` puts it back); so is a URL requests
cannot use. Anything else (5xx, "try later", a redirect, a timeout, a refused connection, and a
4xx saying the receiver is not there: 401, 403, 404, 405, 410, ...) is retried with capped
exponential backoff, without end; while a host cannot be reached at all or is not there, its
callbacks wait for the backoff instead of each being tried in turn. A message's callbacks go in
the order of their events (8 before 1), because the store offers only a message's oldest pending
one.

The URL is the caller's, so the request is fenced (gsmbridge/safeurl.py): it goes only to public
addresses, the receivers' origins and [http] callback_allow, checked once the escapes are filled
in and again at connect time; anywhere else it is kept as failed with the reason
"refused: resolves to a private address", never retried. No redirect is followed, at most a few
KB of the answer are read, and the whole exchange has one deadline (`timeout`).
"""

import logging
import urllib.parse
from datetime import datetime, timezone

from gsmbridge import safeurl
from gsmbridge.delivery import Sender
from gsmbridge.safeurl import mask_url

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


class DlrSender(Sender):
    """Makes due delivery-report callbacks. One thread runs it."""

    name = "delivery-report sender"
    activity = "delivery-report"
    items = "callbacks"
    done = "made"
    topics = ("callbacks",)

    def __init__(self, store, *, smsc=None, guard=None, timeout=10.0, backoff_base=2.0,
                 backoff_cap=300.0, session=None, logger=None):
        """guard: where callbacks may go (a safeurl.CallbackGuard; by default public addresses
        only). timeout: seconds for a whole callback, connect to the last byte read."""
        self.guard = guard or safeurl.CallbackGuard()
        super().__init__(store, timeout=timeout, backoff_base=backoff_base,
                         backoff_cap=backoff_cap, session=None,
                         logger=logger or logging.getLogger("gsmbridge.dlr"))
        self.smsc = smsc
        self._given_session = session

    @property
    def session(self):
        """The guarded requests session (gsmbridge/guardedhttp.py), made at the first callback:
        a bridge that never makes one never loads requests."""
        if self._session is None:
            from gsmbridge.guardedhttp import guarded_session

            self._session = guarded_session(self.guard, self._given_session)
        return self._session

    # -- the queue: the store's callbacks, each message's in the order of its events -----------

    def due(self, now):
        return self.store.due_callbacks(now, limit=self.batch)

    def next_due(self):
        return self.store.next_callback_due()

    def target(self, row):
        return _host(row["dlr_url"])

    def describe(self, row):
        return "callback=%s id=%s type=%d (%s)" % (row["id"], row["outbound_id"], row["type"],
                                                   TYPES.get(row["type"], "?"))

    def fields(self, row):
        return {"msg_id": row["outbound_id"]}

    def mark_delivered(self, row, body):
        self.store.callback_delivered(row["id"], response=body)

    def mark_retry(self, row, error, next_attempt):
        self.store.callback_retry(row["id"], error=error, next_attempt=next_attempt)

    def mark_failed(self, row, error):
        self.store.callback_failed(row["id"], error=error)

    # -- one callback --------------------------------------------------------------------------

    def deliver(self, row):
        with safeurl.deadline(self.timeout):
            try:
                return super().deliver(row)
            except safeurl.Refused as exc:
                return self.refused(row, exc)

    def request(self, row):
        url = callback_url(row, self.smsc)
        session = self.session
        try:
            self.guard.check(url)
        except ValueError as exc:
            import requests

            raise requests.exceptions.InvalidURL(str(exc)) from None
        return session.get(url, timeout=self.timeout, allow_redirects=False, stream=True)

    def refused(self, row, exc):
        """A callback to an address it may not go to: kept as failed, never retried (the
        address will not become public by waiting)."""
        self.mark_failed(row, safeurl.REFUSED)
        self.log.warning("%s to %s %s (%s); kept as failed", self.describe(row),
                         _host(callback_url(row, self.smsc)), safeurl.REFUSED, exc.address)
        return "failed"

    def unusable(self, row, attempt, error):
        """A dlr-url requests cannot use (no scheme after all, bad characters) will not get
        better by waiting: a 4xx of our own, kept as failed."""
        self.mark_failed(row, error)
        self.log.warning("%s cannot be made, kept as failed: %s", self.describe(row), error,
                         extra=self.fields(row))
        return "failed"


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

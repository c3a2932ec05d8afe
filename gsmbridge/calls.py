"""Call notifications: tells a modem's ``call_url`` of each incoming call, durably.

Where SMS cost money, a "missed call" is how people ask to be called back, so a call is an
event worth as much as an SMS.  The worker hangs up at once and commits the call to the store
(store/calls.py); this thread POSTs it, as JSON, to the ``call_url`` of the modem it came to::

    {"from": "+255700000001", "modem": "modem", "at": "2024-05-06T07:08:09Z"}

``from`` is null when the caller withheld the number (or the modem did not give it), ``at`` the
first ring, in UTC.  The rules are the inbound SMS's (gsmbridge/delivery.py's `classify`): a
2xx is delivered; a 4xx about the request itself (400, 422, ...) refused for good (kept as
failed); a receiver that is not there (401, 403, 404, 410, ...), anything else, a redirect
included (never followed), retried with capped backoff without end, the receiver put on hold
while it cannot be reached or is not there.  Every request carries ``X-Call-Id``, the same on
each retry.

The URL is the operator's (``[modem] call_url``, checked by the config like every receiver URL,
and shown only masked); a call to a modem that has none any more is kept as failed.
"""

import json
import logging
import time
from datetime import datetime, timezone

from gsmbridge.delivery import Sender
from gsmbridge.safeurl import mask_url


def call_payload(row):
    """The JSON body of one stored call."""
    at = datetime.fromtimestamp(row["at"], timezone.utc).isoformat().replace("+00:00", "Z")
    return {"from": row["caller"], "modem": row["modem"], "at": at}


class CallPoster(Sender):
    """Posts due call notifications to each modem's call_url. One thread runs it."""

    name = "call poster"
    activity = "call notification"
    items = "calls"
    done = "posted"

    def __init__(self, store, *, urls, timeout=10.0, backoff_base=2.0, backoff_cap=300.0,
                 session=None, logger=None):
        """urls: {modem name: its call_url}."""
        super().__init__(store, timeout=timeout, backoff_base=backoff_base,
                         backoff_cap=backoff_cap, session=session,
                         logger=logger or logging.getLogger("gsmbridge.calls"))
        self.urls = dict(urls)

    def due(self, now):
        return self.store.due_calls(now, limit=self.batch)

    def next_due(self):
        return self.store.next_call_due()

    def target(self, row):
        return mask_url(self.urls.get(row["modem"]) or "(none)")

    def describe(self, row):
        return "call=%s modem=%s" % (row["id"], row["modem"])

    def fields(self, row):
        return {"modem": row["modem"]}

    def step(self, now=None):
        for row in self.due(time.time() if now is None else now):
            if not self.urls.get(row["modem"]):
                self.mark_failed(row, "the modem has no call_url")
        return super().step(now)

    def request(self, row):
        body = json.dumps(call_payload(row), ensure_ascii=False).encode("utf-8")
        return self.session.post(self.urls[row["modem"]], data=body, timeout=self.timeout,
                                 allow_redirects=False, stream=True,
                                 headers={"Content-Type": "application/json; charset=utf-8",
                                          "X-Call-Id": str(row["id"])})

    def mark_delivered(self, row, body):
        self.store.call_delivered(row["id"], response=body)

    def mark_retry(self, row, error, next_attempt):
        self.store.call_retry(row["id"], error=error, next_attempt=next_attempt)

    def mark_failed(self, row, error):
        self.store.call_failed(row["id"], error=error)

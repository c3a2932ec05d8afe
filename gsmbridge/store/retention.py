"""Forgetting what is finished: old delivered messages, callbacks and status reports, and old
dedup keys, a small batch at a time.

What goes, once it is older than keep_days: inbound messages RapidSMS took (`delivered`),
outbound messages the modem took (`sent`, `delivered`), callbacks made (`delivered`), and status
reports (kept at least REPORT_WINDOW, the time a report may still arrive for its message). What
stays, however old: anything still waiting (`pending`, `queued`, `sending`), anything that needs
an operator (`failed`, `unknown`: they can be requeued), and undecodable PDUs.

Each batch is one write transaction of at most `batch` rows, walked along the status index from
the oldest row, so the daemon's own writes never wait more than a few milliseconds, and a pass
costs time in proportion to what it removes, not to what the store keeps: the walk stops at the
first row made after the cut-off (rows are numbered as they are made, and nothing is finished
before it is made).
"""

import time

from .reports import REPORT_WINDOW

DAY = 86400.0

#: rows deleted per write transaction
PRUNE_BATCH = 500

# (what, the rows after a key in key order: (key, made at, finished at), delete one by key)
_WALKS = (
    ("inbound",
     "SELECT seq, received_at, delivered_at FROM inbound INDEXED BY inbound_status"
     " WHERE status = 'delivered' AND seq > ? ORDER BY status, seq LIMIT ?",
     "DELETE FROM inbound WHERE seq = ?"),
    ("outbound",
     "SELECT seq, created_at, COALESCE(delivered_at, sent_at) FROM outbound"
     " INDEXED BY outbound_status WHERE status = 'sent' AND seq > ? ORDER BY status, seq LIMIT ?",
     "DELETE FROM outbound WHERE seq = ?"),
    ("outbound",
     "SELECT seq, created_at, COALESCE(delivered_at, sent_at) FROM outbound"
     " INDEXED BY outbound_status WHERE status = 'delivered' AND seq > ?"
     " ORDER BY status, seq LIMIT ?",
     "DELETE FROM outbound WHERE seq = ?"),
    ("callbacks",
     "SELECT id, created_at, delivered_at FROM callbacks INDEXED BY callbacks_status"
     " WHERE status = 'delivered' AND id > ? ORDER BY status, id LIMIT ?",
     "DELETE FROM callbacks WHERE id = ?"),
    ("reports",
     "SELECT id, received_at, received_at FROM reports WHERE id > ? ORDER BY id LIMIT ?",
     "DELETE FROM reports WHERE id = ?"),
)

_PRUNE_SEEN_SQL = (
    "DELETE FROM seen WHERE (key, modem) IN (SELECT key, modem FROM seen INDEXED BY seen_at"
    " WHERE seen_at < ? AND NOT EXISTS (SELECT 1 FROM parts"
    " WHERE parts.modem = seen.modem AND parts.key = seen.key) LIMIT ?)")


class RetentionMixin:
    """Store's pruning."""

    def prune(self, *, keep_days=None, seen_days=30.0, now=None, batch=PRUNE_BATCH, pause=0.0,
              stop=None):
        """Delete what is finished and older than keep_days (None or 0: keep every message),
        and dedup keys older than seen_days (a network redelivers within hours; keys of parts
        still waiting are kept). Returns {"seen", "inbound", "outbound", "callbacks",
        "reports": how many went}.

        pause: seconds to sleep between batches (the daemon lets its other writers in);
        stop: a threading.Event that ends the pass early (what is left goes next time)."""
        now = self.clock() if now is None else now
        removed = dict.fromkeys(("seen", "inbound", "outbound", "callbacks", "reports"), 0)
        while True:
            with self._write() as db:
                count = db.execute(_PRUNE_SEEN_SQL, (now - seen_days * DAY, batch)).rowcount
            removed["seen"] += count
            if count < batch or not _go_on(stop, pause):
                break
        for what, select, delete in _WALKS if keep_days else ():
            cutoff = now - keep_days * DAY
            if what == "reports":
                cutoff = min(cutoff, now - REPORT_WINDOW)
            after = -1
            while stop is None or not stop.is_set():
                with self._write() as db:
                    rows = db.execute(select, (after, batch)).fetchall()
                    old = [(key,) for key, _, finished in rows
                           if finished is not None and finished < cutoff]
                    db.executemany(delete, old)
                removed[what] += len(old)
                if len(rows) < batch or any(made >= cutoff for _, made, _ in rows):
                    break
                after = rows[-1][0]
                if not _go_on(stop, pause):
                    break
        return removed


def _go_on(stop, pause):
    """Between two batches: sleep `pause` seconds; False when `stop` is set."""
    if stop is not None:
        return not (stop.wait(pause) if pause else stop.is_set())
    if pause:
        time.sleep(pause)
    return True

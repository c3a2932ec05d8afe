"""Delivery-report callbacks (Kannel dlr-url): the queue gsmbridge/dlr.py works through.

A callback is queued by the very transaction that records its cause (outbound_sent,
outbound_failed, add_report), through queue_callback here, so a crash can lose neither the event
nor its callback.
"""

from .rows import _exists

CALLBACK_STATUSES = ("pending", "delivered", "failed")

#: Kannel's delivery-report types (dlr-mask bits)
DLR_DELIVERED = 1          # delivered to the phone
DLR_UNDELIVERED = 2        # not delivered to the phone (given up)
DLR_QUEUED = 4             # queued on the SMSC (a report with a temporary status)
DLR_SMSC_ACK = 8           # delivered to the SMSC (+CMGS for every part)
DLR_SMSC_REJECT = 16       # not delivered to the SMSC (a permanent error)

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
# A message's callbacks go in the order of their events: only its oldest pending one is offered.
DUE_CALLBACKS_SQL = (
    "SELECT * FROM callbacks AS c INDEXED BY callbacks_due"
    " WHERE c.status = 'pending' AND c.next_attempt <= ? AND NOT EXISTS ("
    "SELECT 1 FROM callbacks AS p INDEXED BY callbacks_outbound"
    " WHERE p.outbound_id = c.outbound_id AND p.id < c.id AND p.status = 'pending')"
    " ORDER BY c.next_attempt, c.id LIMIT ?")
NEXT_CALLBACK_DUE_SQL = (
    "SELECT MIN(next_attempt) FROM callbacks INDEXED BY callbacks_due WHERE status = 'pending'")
COUNT_CALLBACKS_SQL = "SELECT status, COUNT(*) FROM callbacks GROUP BY status"


class CallbacksMixin:
    """Store's side of the DLR sender: what is due, and what became of each attempt."""

    def due_callbacks(self, now, limit=50):
        """Callbacks due by `now`, earliest first; of each message only its oldest pending one,
        so a receiver hears a message's events in order (8 before 1).
        keys: id outbound_id type dlr_url text smsc recipient sender event_at status attempts
              next_attempt last_attempt last_error response created_at delivered_at failed_at"""
        rows = self._conn().execute(DUE_CALLBACKS_SQL, (now, limit)).fetchall()
        return [dict(row) for row in rows]

    def next_callback_due(self):
        """When the next pending callback is due (epoch seconds), or None if none is pending."""
        return self._conn().execute(NEXT_CALLBACK_DUE_SQL).fetchone()[0]

    def callback_delivered(self, id, *, response):
        """The receiver took it (2xx). The start of its answer is kept."""
        now = self.clock()
        self._finish_callback(id, "status = 'delivered', delivered_at = ?, response = ?,"
                              " last_error = NULL", (now, (response or "")[:1000]), now)

    def callback_failed(self, id, *, error):
        """The receiver refused it for good (4xx): kept, visible, never retried."""
        now = self.clock()
        self._finish_callback(id, "status = 'failed', failed_at = ?, last_error = ?",
                              (now, str(error)), now)

    def _finish_callback(self, id, assignments, params, now):
        with self._write() as db:
            row = db.execute("SELECT status FROM callbacks WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            if row["status"] != "pending":
                return
            db.execute("UPDATE callbacks SET " + assignments + ", attempts = attempts + 1,"
                       " last_attempt = ? WHERE id = ?", (*params, now, id))
        self.notify("callbacks")  # the message's next callback may now be due

    def callback_retry(self, id, *, error, next_attempt):
        """Not taken this time (5xx, timeout, connection error): try again at next_attempt."""
        now = self.clock()
        with self._write() as db:
            cur = db.execute("UPDATE callbacks SET attempts = attempts + 1, last_attempt = ?,"
                             " last_error = ?, next_attempt = ? WHERE id = ? AND status = 'pending'",
                             (now, str(error), float(next_attempt), id))
            if not cur.rowcount and not _exists(db, "callbacks", id):
                raise KeyError(id)

    def requeue_callbacks(self, ids=None):
        """Failed callbacks back to pending (all of them when ids is None), e.g. once the
        receiver is fixed. Returns how many."""
        now = self.clock()
        with self._write() as db:
            if ids is None:
                count = db.execute("UPDATE callbacks SET status = 'pending', next_attempt = ?,"
                                   " failed_at = NULL WHERE status = 'failed'", (now,)).rowcount
            else:
                count = sum(db.execute("UPDATE callbacks SET status = 'pending', next_attempt = ?,"
                                       " failed_at = NULL WHERE id = ? AND status = 'failed'",
                                       (now, int(i))).rowcount for i in ids)
        if count:
            self.notify("callbacks")
        return count

    def callbacks(self, outbound_id=None, limit=100):
        """The latest callbacks (of one message, or of all), newest first."""
        db = self._conn()
        if outbound_id is None:
            rows = db.execute("SELECT * FROM callbacks ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = db.execute("SELECT * FROM callbacks WHERE outbound_id = ? ORDER BY id DESC"
                              " LIMIT ?", (outbound_id, limit))
        return [dict(row) for row in rows]


def _queue_callback(db, seq, type, text, now):
    """Queue a delivery-report callback for outbound message `seq` if it asked for this type
    (dlr_url set and type in dlr_mask). Part of the caller's transaction. True if queued."""
    row = db.execute("SELECT id, recipient, sender, dlr_url, dlr_mask, sent_by, modem, origin"
                     " FROM outbound WHERE seq = ?", (seq,)).fetchone()
    if row is None or not row["dlr_url"] or not (row["dlr_mask"] & type):
        return False
    if row["origin"] is not None:
        return False        # another node accepted it: that node calls the dlr-url (cluster.py)
    db.execute("INSERT INTO callbacks (outbound_id, type, dlr_url, text, smsc, recipient, sender,"
               " event_at, next_attempt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row["id"], type, row["dlr_url"], text, row["sent_by"] or row["modem"],
                row["recipient"], row["sender"], now, now, now))
    return True


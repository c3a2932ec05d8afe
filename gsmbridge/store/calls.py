"""Incoming calls: each one a row, counted per modem, and the queue of their notifications.

The worker records a call (it has hung it up already) in one transaction, and when the modem
has a ``call_url`` the same row is the notification to make: `gsmbridge/calls.py` posts it,
retried by the rules of delivery.py like an inbound SMS, so a call is never lost to a receiver
that was down.  Without a ``call_url`` the row is only kept (status ``kept``), for the count.

Rows of calls older than KEEP and no longer pending go when new ones come.
"""

CALL_STATUSES = ("pending", "delivered", "failed", "kept")

#: seconds a call is kept once it needs nothing more (delivered, failed or kept)
KEEP = 90 * 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    modem        TEXT NOT NULL,
    caller       TEXT,                               -- NULL: withheld or not given
    at           REAL NOT NULL,                      -- the first ring
    hung_up      INTEGER NOT NULL,                   -- 1: we hung up; 0: the caller gave up first
    status       TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'kept')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_attempt REAL,
    last_error   TEXT,
    response     TEXT,
    delivered_at REAL,
    failed_at    REAL
);
CREATE INDEX IF NOT EXISTS calls_due ON calls (next_attempt, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS calls_modem ON calls (modem, at);
"""

DUE_CALLS_SQL = ("SELECT * FROM calls INDEXED BY calls_due WHERE status = 'pending'"
                 " AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?")
NEXT_CALL_DUE_SQL = ("SELECT MIN(next_attempt) FROM calls INDEXED BY calls_due"
                     " WHERE status = 'pending'")


class CallsMixin:
    """Store's side of incoming calls (see the module's docstring)."""

    def add_call(self, modem, caller, at, *, hung_up=True, notify=False):
        """Record a call to ``modem`` from ``caller`` (None: withheld) that first rang at
        ``at`` (epoch); ``notify``: queue its notification.  Returns (id, how many calls the
        modem has had, as kept)."""
        now = self.clock()
        with self._write() as db:
            db.execute("DELETE FROM calls WHERE status != 'pending' AND at < ?", (now - KEEP,))
            cur = db.execute("INSERT INTO calls (modem, caller, at, hung_up, status,"
                             " next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
                             (modem, caller, float(at), 1 if hung_up else 0,
                              "pending" if notify else "kept", now))
            count = db.execute("SELECT COUNT(*) FROM calls WHERE modem = ?",
                               (modem,)).fetchone()[0]
        if notify:
            self.notify()
        return cur.lastrowid, count

    def calls(self, modem=None, limit=100):
        """The latest calls (of one modem, or of all), newest first."""
        db = self._conn()
        if modem is None:
            rows = db.execute("SELECT * FROM calls ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = db.execute("SELECT * FROM calls WHERE modem = ? ORDER BY id DESC LIMIT ?",
                              (modem, limit))
        return [dict(row, hung_up=bool(row["hung_up"])) for row in rows]

    def count_calls(self):
        """{status: how many calls}, every status present."""
        counts = dict.fromkeys(CALL_STATUSES, 0)
        counts.update(self._conn().execute(
            "SELECT status, COUNT(*) FROM calls GROUP BY status").fetchall())
        return counts

    # -- the notifications' queue ----------------------------------------------------------

    def due_calls(self, now, limit=50):
        """Call notifications due by ``now``, earliest first."""
        return [dict(row, hung_up=bool(row["hung_up"]))
                for row in self._conn().execute(DUE_CALLS_SQL, (now, limit))]

    def next_call_due(self):
        return self._conn().execute(NEXT_CALL_DUE_SQL).fetchone()[0]

    def call_delivered(self, id, *, response):
        now = self.clock()
        self._finish_call(id, "status = 'delivered', delivered_at = ?, response = ?,"
                          " last_error = NULL", (now, (response or "")[:1000]), now)

    def call_failed(self, id, *, error):
        now = self.clock()
        self._finish_call(id, "status = 'failed', failed_at = ?, last_error = ?",
                          (now, str(error)[:1000]), now)

    def call_retry(self, id, *, error, next_attempt):
        now = self.clock()
        with self._write() as db:
            cur = db.execute("UPDATE calls SET attempts = attempts + 1, last_attempt = ?,"
                             " last_error = ?, next_attempt = ? WHERE id = ? AND"
                             " status = 'pending'", (now, str(error)[:1000],
                                                      float(next_attempt), id))
            if not cur.rowcount and db.execute("SELECT 1 FROM calls WHERE id = ?",
                                               (id,)).fetchone() is None:
                raise KeyError(id)

    def _finish_call(self, id, assignments, params, now):
        with self._write() as db:
            row = db.execute("SELECT status FROM calls WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            if row["status"] != "pending":
                return
            db.execute("UPDATE calls SET " + assignments + ", attempts = attempts + 1,"
                       " last_attempt = ? WHERE id = ?", (*params, now, id))

"""USSD requests: the hand-off between the HTTP API, which asks, and a modem's worker, which has
the only right to the modem and answers.

A request is a row, committed before anyone waits for it.  The worker takes the rows of its
modem in order, between two SMS commands, marks each ``running``, and writes what the network
said (``done``, ``more``, ``failed``, ``timeout``) with its text; the web view that committed the
row waits on the store's notify and reads the row again.  Nothing else passes between them.

A conversation with a menu is a *session*: every row of one shares its ``session`` id, the first
row is the service code (``*100#``) and each later one an answer (``1``).  A session is open
while its newest row is ``more`` and ``ended`` is not set; it ends by the caller (a ``cancel``
row, which the worker turns into AT+CUSD=2), by the network, or by nobody answering in time.

Rows are small and few; those finished more than KEEP seconds ago go when new ones come.
"""

from .rows import new_id

USSD_STATUSES = ("queued", "running", "done", "more", "failed", "timeout")
#: what a request may end as
USSD_OUTCOMES = ("done", "more", "failed", "timeout")

#: seconds a request may wait for its modem's worker to take it (the worker may be sending a
#: long SMS); later it is not taken, and counts as timed out
QUEUE_WAIT = 20.0
#: seconds finished requests are kept
KEEP = 7 * 86400.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS ussd (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,   -- order of the requests
    session     TEXT NOT NULL,                       -- the conversation (a menu's answers share it)
    modem       TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'request' CHECK (kind IN ('request', 'cancel')),
    code        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                ('queued', 'running', 'done', 'more', 'failed', 'timeout')),
    reply       TEXT,
    error       TEXT,
    ended       TEXT,                                -- why the session ended after this row
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS ussd_queue ON ussd (modem, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS ussd_session ON ussd (session, id);
CREATE INDEX IF NOT EXISTS ussd_finished ON ussd (finished_at) WHERE finished_at IS NOT NULL;
"""

_NEXT_SQL = "SELECT * FROM ussd WHERE modem = ? AND status = 'queued' ORDER BY id LIMIT 1"
_ACTIVE_SQL = ("SELECT COUNT(*) FROM ussd WHERE modem = ? AND kind = 'request'"
               " AND status IN ('queued', 'running')")


class UssdMixin:
    """Store's side of USSD (see the module's docstring)."""

    # -- the web's side --------------------------------------------------------------------

    def add_ussd(self, modem, code, *, session=None, max_active=3):
        """Queue a request for ``modem``: a new session's first (``session`` None), or the next
        answer in an open one.  Returns the row; None when ``max_active`` requests of the modem
        are queued or running already (the caller is asked to come back later).  The caller has
        checked that the session is open (`ussd_session`)."""
        now = self.clock()
        with self._write() as db:
            if db.execute(_ACTIVE_SQL, (modem,)).fetchone()[0] >= max_active:
                return None
            db.execute("DELETE FROM ussd WHERE finished_at < ?", (now - KEEP,))
            cur = db.execute("INSERT INTO ussd (session, modem, code, created_at)"
                             " VALUES (?, ?, ?, ?)", (session or new_id(), modem, code, now))
            row = db.execute("SELECT * FROM ussd WHERE id = ?", (cur.lastrowid,)).fetchone()
        self.notify()
        return dict(row)

    def ussd_request(self, id):
        """The request row ``id``, or None."""
        row = self._conn().execute("SELECT * FROM ussd WHERE id = ?", (id,)).fetchone()
        return dict(row) if row else None

    def ussd_session(self, session):
        """The newest request row of ``session`` (with ``open``: whether it waits for the next
        answer), or None for a session never seen."""
        row = self._conn().execute(
            "SELECT * FROM ussd WHERE session = ? AND kind = 'request' ORDER BY id DESC LIMIT 1",
            (session,)).fetchone()
        if row is None:
            return None
        row = dict(row)
        row["open"] = row["status"] == "more" and row["ended"] is None
        return row

    def end_ussd_session(self, session, why="cancelled"):
        """End ``session`` at the caller's word: the worker sends AT+CUSD=2 if it is still open
        on the modem.  Returns the newest row as `ussd_session` would (``open`` as it was), or
        None for a session never seen."""
        now = self.clock()
        with self._write() as db:
            last = db.execute("SELECT * FROM ussd WHERE session = ? AND kind = 'request'"
                              " ORDER BY id DESC LIMIT 1", (session,)).fetchone()
            if last is None:
                return None
            last = dict(last)
            last["open"] = last["status"] == "more" and last["ended"] is None
            # a request of the session still waiting is not sent any more
            db.execute("UPDATE ussd SET status = 'failed', error = 'the session was ended',"
                       " finished_at = ? WHERE session = ? AND status = 'queued'",
                       (now, session))
            db.execute("UPDATE ussd SET ended = ? WHERE session = ? AND ended IS NULL"
                       " AND status IN ('more', 'running')", (why, session))
            db.execute("INSERT INTO ussd (session, modem, kind, code, created_at)"
                       " VALUES (?, ?, 'cancel', '', ?)", (session, last["modem"], now))
        self.notify()
        return last

    def give_up_ussd(self, id):
        """The asker waited long enough: a request nobody took yet is not taken any more
        (``timeout``).  Returns the row as it is now."""
        now = self.clock()
        with self._write() as db:
            db.execute("UPDATE ussd SET status = 'timeout', finished_at = ?,"
                       " error = 'not taken in time: the modem is busy or down'"
                       " WHERE id = ? AND status = 'queued'", (now, id))
            row = db.execute("SELECT * FROM ussd WHERE id = ?", (id,)).fetchone()
        return dict(row) if row else None

    # -- the worker's side -----------------------------------------------------------------

    def next_ussd(self, modem, now=None):
        """The oldest queued row of ``modem`` (a request, or a session's cancel), with
        ``continues`` (True for an answer in a session that had a request before), or None.
        Requests that waited past QUEUE_WAIT are marked ``timeout`` instead.

        The worker asks between every two SMS commands: when nothing is queued, this is one
        read on an index, no transaction."""
        now = self.clock() if now is None else now
        db = self._conn()
        row = db.execute(_NEXT_SQL, (modem,)).fetchone()
        if row is None:
            return None
        if row["kind"] == "request" and row["created_at"] < now - QUEUE_WAIT:
            with self._write() as db:
                db.execute("UPDATE ussd SET status = 'timeout', finished_at = ?,"
                           " error = 'not taken in time: the modem was busy'"
                           " WHERE modem = ? AND status = 'queued' AND kind = 'request'"
                           " AND created_at < ?", (now, modem, now - QUEUE_WAIT))
            self.notify()
            row = db.execute(_NEXT_SQL, (modem,)).fetchone()
            if row is None:
                return None
        row = dict(row)
        row["continues"] = db.execute(
            "SELECT 1 FROM ussd WHERE session = ? AND kind = 'request' AND id < ?",
            (row["session"], row["id"])).fetchone() is not None
        return row

    def ussd_running(self, id, now=None):
        """The worker takes request ``id``: True, unless it is no longer queued."""
        now = self.clock() if now is None else now
        with self._write() as db:
            return db.execute("UPDATE ussd SET status = 'running', started_at = ?"
                              " WHERE id = ? AND status = 'queued'", (now, id)).rowcount == 1

    def ussd_finished(self, id, status, *, reply=None, error=None, ended=None):
        """What became of request (or cancel) ``id``: one of USSD_OUTCOMES, the network's text,
        why it failed; ``ended``: why the session ends with it (None: open while ``more``)."""
        if status not in USSD_OUTCOMES:
            raise ValueError("a USSD request ends as one of %s, not %r"
                             % (", ".join(USSD_OUTCOMES), status))
        now = self.clock()
        with self._write() as db:
            db.execute("UPDATE ussd SET status = ?, reply = ?, error = ?, finished_at = ?,"
                       " ended = COALESCE(ended, ?) WHERE id = ?",
                       (status, reply, error, now, ended, id))
        self.notify()

    def ussd_interrupted(self, modem):
        """The bridge starts: requests of ``modem`` that a previous run had sent and never saw
        answered are failed (their askers are gone; the modem forgot them).  Returns how many."""
        now = self.clock()
        with self._write() as db:
            count = db.execute("UPDATE ussd SET status = 'failed', finished_at = ?,"
                               " error = 'the bridge stopped before the reply came',"
                               " ended = COALESCE(ended, 'the bridge stopped')"
                               " WHERE modem = ? AND status = 'running'", (now, modem)).rowcount
            db.execute("UPDATE ussd SET ended = 'the bridge stopped' WHERE modem = ?"
                       " AND status = 'more' AND ended IS NULL", (modem,))
        return count

    def ussd_session_ended(self, session, why):
        """The session ended on the modem's side (the network released it, nobody answered in
        time, another request replaced it)."""
        with self._write() as db:
            db.execute("UPDATE ussd SET ended = ? WHERE session = ? AND ended IS NULL"
                       " AND status IN ('more', 'running')", (why, session))
        self.notify()

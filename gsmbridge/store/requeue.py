"""Putting finished rows back in their queue: what `gsmbridge requeue` does.

- inbound (``in``): a failed message goes to the forwarder again, with the same id (RapidSMS sees
  it in X-Message-Id, or Vumi's message_id), in its sender's arrival order;
- outbound (``out``): a failed message, or one left `unknown` by a crash mid-send, goes to the
  modems again; its attempts start again from 0, since they are the worker's budget of transient
  errors;
- ``callbacks``: a failed delivery-report callback is made again.

Nothing else goes back: a pending or queued row is in its queue already, and a delivered or sent
one reached its receiver (sending it again is a new message, not a requeue). `why_not` says so
in words, for the command to print.

Safe while the daemon runs: the rows move in short write transactions of at most `batch` rows,
so the daemon's own writes wait milliseconds, not seconds. notify() wakes only the threads of this
process, but the daemon's forwarders, workers and callback sender look at the store at least once
a second anyway, so another process's requeue is picked up within about a second.
"""

from .callbacks import CALLBACK_STATUSES
from .inbound import _promote_head
from .rows import INBOUND_STATUSES, OUTBOUND_STATUSES

#: what can go back in each queue: direction -> the statuses it can come from
REQUEUEABLE = {"in": ("failed",), "out": ("failed", "unknown"), "callbacks": ("failed",)}
DIRECTIONS = tuple(REQUEUEABLE)

_STATUSES = {"in": INBOUND_STATUSES, "out": OUTBOUND_STATUSES, "callbacks": CALLBACK_STATUSES}
_WORDS = {"in": "inbound messages", "out": "outbound messages",
          "callbacks": "delivery-report callbacks"}
_WAITING = ("pending", "queued", "sending")
_DONE = {"in": "were taken by RapidSMS", "out": "left the modem",
         "callbacks": "were made"}


def why_not(direction, status):
    """Why rows of `direction` in `status` cannot be requeued, as a sentence; None if they can."""
    if direction not in REQUEUEABLE:
        return "the direction is in, out or callbacks, not %r" % (direction,)
    allowed = " or ".join(REQUEUEABLE[direction])
    words = _WORDS[direction]
    if status in REQUEUEABLE[direction]:
        return None
    if status not in _STATUSES[direction]:
        return "%s are never %r (their statuses: %s)" % (
            words, status, ", ".join(_STATUSES[direction]))
    if status in _WAITING:
        return "%s %s are in their queue already; only %s ones can be requeued" % (
            status, words, allowed)
    return "%s %s %s already; only %s ones can be requeued%s" % (
        status, words, _DONE[direction], allowed,
        " (to send one again, send it anew)" if direction == "out" else "")


class RequeueMixin:
    """Store's requeue: finished rows back in their queue, the same ids."""

    def requeue(self, direction, *, status="failed", ids=None, batch=500):
        """Put the rows of `direction` ("in", "out" or "callbacks") in `status` back in their
        queue, only those with these ids when ids is given (for callbacks, an id is a callback's
        or an outbound message's: then its callbacks). Returns how many.

        Raises ValueError (with why_not's sentence) for a direction or status that cannot be
        requeued."""
        reason = why_not(direction, status)
        if reason:
            raise ValueError(reason)
        ids = None if ids is None else list(dict.fromkeys(str(i) for i in ids))
        move = {"in": self._requeue_inbound_rows, "out": self._requeue_outbound_rows,
                "callbacks": self._requeue_callback_rows}[direction]
        total = 0
        while True:
            with self._write() as db:
                moved, more = move(db, status, ids, batch)
            total += moved
            if moved:
                self.notify()
            if not more:
                return total

    def locate(self, id):
        """Where an id is found: [(direction, status)], e.g. [("in", "delivered")]; a number can
        also be a callback's id."""
        found = []
        with self._read() as db:
            for direction, table in (("in", "inbound"), ("out", "outbound")):
                row = db.execute("SELECT status FROM %s WHERE id = ?" % table, (id,)).fetchone()
                if row:
                    found.append((direction, row[0]))
            found += [("callbacks", row[0]) for row in db.execute(
                "SELECT status FROM callbacks WHERE outbound_id = ? OR id = ? ORDER BY id",
                (id, _as_int(id)))]
        return found

    # -- each direction: one batch, in the caller's transaction -> (moved, more to do) ------

    def _requeue_inbound_rows(self, db, status, ids, batch):
        now = self.clock()
        if ids is None:
            rows = db.execute("SELECT seq, sender FROM inbound INDEXED BY inbound_status"
                              " WHERE status = ? ORDER BY status, seq LIMIT ?",
                              (status, batch)).fetchall()
        else:
            rows = [row for msg_id in ids for row in db.execute(
                "SELECT seq, sender FROM inbound WHERE id = ? AND status = ?", (msg_id, status))]
        for seq, _ in rows:
            db.execute("UPDATE inbound SET status = 'pending', next_attempt = ?, failed_at = NULL"
                       " WHERE seq = ?", (now, seq))
        for sender in {sender for _, sender in rows}:
            _promote_head(db, sender)
        return len(rows), ids is None and len(rows) == batch

    def _requeue_outbound_rows(self, db, status, ids, batch):
        now = self.clock()
        if ids is None:
            rows = db.execute("SELECT seq, recipient FROM outbound INDEXED BY outbound_status"
                              " WHERE status = ? ORDER BY status, seq LIMIT ?",
                              (status, batch)).fetchall()
        else:
            rows = [row for msg_id in ids for row in db.execute(
                "SELECT seq, recipient FROM outbound WHERE id = ? AND status = ?",
                (msg_id, status))]
        # routed again: the pool's routes may have changed since it was queued
        db.executemany("UPDATE outbound SET status = 'queued', next_attempt = ?, attempts = 0,"
                       " failed_at = NULL, route = ? WHERE seq = ?",
                       [(now, self.route_of(recipient), seq) for seq, recipient in rows])
        return len(rows), ids is None and len(rows) == batch

    def _requeue_callback_rows(self, db, status, ids, batch):
        now = self.clock()
        if ids is None:
            found = [row[0] for row in db.execute(
                "SELECT id FROM callbacks INDEXED BY callbacks_status WHERE status = ?"
                " ORDER BY status, id LIMIT ?", (status, batch))]
        else:
            found = list(dict.fromkeys(row[0] for any_id in ids for row in db.execute(
                "SELECT id FROM callbacks WHERE (outbound_id = ? OR id = ?) AND status = ?",
                (any_id, _as_int(any_id), status))))
        db.executemany("UPDATE callbacks SET status = 'pending', next_attempt = ?,"
                       " failed_at = NULL WHERE id = ?", [(now, cb) for cb in found])
        return len(found), ids is None and len(found) == batch


def _as_int(value):
    """A callback id given as text, or -1 (no callback has it)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return -1
    return number if 0 < number < 1 << 62 else -1

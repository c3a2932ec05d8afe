"""What each forwarder's receiver (RapidSMS) answers, as the forwarders last found it.

The forwarder runs in the daemon's process and /health may be asked of any thread, so the
forwarder writes what it finds here and the operators' view reads it (overview.py), the same way
the workers record their modems (views.set_modem). A row changes only when the receiver's state
does, so this costs nothing while messages flow.

States: "up" (it takes messages, or refuses one for a reason of the message's own), "failing"
(it answers but takes nothing: 5xx, a redirect, "try later"), "not there" (it answers that it
has no such page or will not let us in: 401, 403, 404, 405, 410...), "not answering" (no
connection, no answer in time).
"""

RECEIVER_STATES = ("up", "failing", "not there", "not answering")


class ReceiversMixin:
    """Store's record of the forwarders' receivers."""

    def set_receiver(self, name, state, *, status=None, error=None):
        """Record a receiver's state. `since` stays when the state and status do not change."""
        if state not in RECEIVER_STATES:
            raise ValueError("state must be one of %s, not %r" % (", ".join(RECEIVER_STATES),
                                                                   state))
        now = self.clock()
        with self._write() as db:
            db.execute(
                "INSERT INTO receivers (name, state, status, error, since, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " since = CASE WHEN state = excluded.state AND status IS excluded.status"
                " THEN since ELSE excluded.since END, state = excluded.state,"
                " status = excluded.status, error = excluded.error,"
                " updated_at = excluded.updated_at",
                (name, state, status, None if error is None else str(error)[:300], now, now))

    def receivers(self):
        """{name: {"state", "status", "error", "since", "updated_at"}}, by name."""
        rows = self._conn().execute("SELECT * FROM receivers ORDER BY name").fetchall()
        return {row["name"]: {k: row[k] for k in row.keys() if k != "name"} for row in rows}

    def forget_receivers(self):
        """Forget every receiver: at the daemon's start, whose forwarders know nothing yet (and
        whose config may name others)."""
        with self._write() as db:
            db.execute("DELETE FROM receivers")

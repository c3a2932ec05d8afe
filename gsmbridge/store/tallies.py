"""Queue depths in constant time: the tallies table.

/health, /status and every Prometheus scrape ask how many messages are in each state. Counting
them (an index scan) costs time in proportion to what the store keeps: about 100 ms on a store of
a million messages each way, on every probe. Instead the store keeps the counts in a small table,
`tallies`, maintained by triggers (schema.py) inside the very statement that inserts, deletes or
moves a row, so they commit or roll back with it and no code path, not even a hand-written
UPDATE in the sqlite3 shell, can forget them. counts() then reads a dozen rows.

check() compares them with a full count; recount() rebuilds them from one (a repair that should
never be needed).
"""

from .callbacks import CALLBACK_STATUSES
from .rows import INBOUND_STATUSES, OUTBOUND_STATUSES
from .schema import TALLIED, tally_rows_sql, tally_seed_sql

#: the one query counts() makes for every figure it gives; its cost does not grow with the store
TALLIES_SQL = "SELECT name, status, n FROM tallies"
# the oldest waiting rows: a seek at the start of their status in the status index
OLDEST_PENDING_INBOUND_SQL = (
    "SELECT received_at FROM inbound INDEXED BY inbound_status WHERE status = 'pending'"
    " ORDER BY status, seq LIMIT 1")
OLDEST_QUEUED_OUTBOUND_SQL = (
    "SELECT created_at FROM outbound INDEXED BY outbound_status WHERE status = 'queued'"
    " ORDER BY status, seq LIMIT 1")

_STATUSES = {"inbound": INBOUND_STATUSES, "outbound": OUTBOUND_STATUSES,
             "callbacks": CALLBACK_STATUSES}


class TalliesMixin:
    """Store's counts, read from the tallies."""

    def counts(self):
        """Queue depths: {"inbound": {status: n}, "outbound": {status: n}, "callbacks":
        {status: n}, "parts", "bad_pdus", "reports", "oldest_pending_inbound",
        "oldest_queued_outbound"} (the last two are epoch seconds or None). Constant time."""
        with self._read() as db:
            tallies = db.execute(TALLIES_SQL).fetchall()
            oldest_in = db.execute(OLDEST_PENDING_INBOUND_SQL).fetchone()
            oldest_out = db.execute(OLDEST_QUEUED_OUTBOUND_SQL).fetchone()
        result = {name: dict.fromkeys(statuses, 0) for name, statuses in _STATUSES.items()}
        result.update(parts=0, bad_pdus=0, reports=0)
        for name, status, n in tallies:
            if name in _STATUSES:
                result[name][status] = n
            else:
                result[name] = n
        result["oldest_pending_inbound"] = oldest_in[0] if oldest_in else None
        result["oldest_queued_outbound"] = oldest_out[0] if oldest_out else None
        return result

    def tally_drift(self):
        """[(table, status, tallied, counted)] where the tallies and a full count differ; []
        when they agree."""
        with self._read() as db:
            tallied = {(name, status): n for name, status, n in db.execute(TALLIES_SQL) if n}
            # every row's status read: time in proportion to the store (check(), tests)
            counted = {(name, status): n for table in TALLIED
                       for name, status, n in db.execute(tally_rows_sql(table)) if n}
        return [(name, status, tallied.get((name, status), 0), counted.get((name, status), 0))
                for name, status in sorted(set(tallied) | set(counted))
                if tallied.get((name, status), 0) != counted.get((name, status), 0)]

    def recount(self):
        """Rebuild the tallies from a full count, in one transaction. Returns tally_drift()'s
        list as it was before."""
        drift = self.tally_drift()
        with self._write() as db:
            db.execute("DELETE FROM tallies")
            for statement in tally_seed_sql():
                db.execute(statement)
        return drift

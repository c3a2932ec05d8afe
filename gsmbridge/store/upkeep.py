"""Upkeep: pruning what is finished (retention.py), keeping SQLite's statistics and files in
shape, and checking the store's consistency (`gsmbridge maintenance`, and the daemon's hourly
pass in gsmbridge/housekeeping.py)."""

import os

#: pages the daemon's pass gives back to the disk at most (4 MB of 4 kB pages): a pass stays short
VACUUM_STEP = 1000


class UpkeepMixin:
    """Store's periodic upkeep."""

    def maintenance(self, *, seen_days=30.0, keep_days=None, now=None, **prune):
        """Periodic upkeep: prune() (see retention.py), then PRAGMA optimize. Returns what
        prune() removed. With keep_days None, messages are kept, only old dedup keys go."""
        removed = self.prune(keep_days=keep_days, seen_days=seen_days, now=now, **prune)
        self.optimize()
        return removed

    def optimize(self):
        """PRAGMA optimize: SQLite refreshes the statistics the planner needs, where they are
        stale (cheap when nothing changed)."""
        self._conn().execute("PRAGMA optimize")

    def compact(self, *, pages=VACUUM_STEP, checkpoint="PASSIVE"):
        """Give free pages back to the disk and fold the write-ahead log into the database.

        pages: at most this many pages freed (None: all); only a store made with incremental
        auto-vacuum can (every store this version creates; an older one needs vacuum() once).
        checkpoint: "PASSIVE" never waits for the bridge's readers and writers; "TRUNCATE" (the
        command, once the prune is done) also empties the log file.
        Returns {"auto_vacuum": "none"|"full"|"incremental", "free_pages", "pages_freed",
        "page_size", "wal_busy" (the checkpoint could not finish: the bridge was busy),
        "wal_bytes_before", "wal_bytes" (the log file's size before and after)}."""
        if checkpoint not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError("checkpoint must be PASSIVE, FULL, RESTART or TRUNCATE")
        db = self._conn()
        mode = {0: "none", 1: "full", 2: "incremental"}[
            db.execute("PRAGMA auto_vacuum").fetchone()[0]]
        before = db.execute("PRAGMA freelist_count").fetchone()[0]
        if mode == "incremental" and before:
            # run to completion by sqlite3_exec (executescript): stepped from execute(), the
            # pragma frees one page and stops
            db.executescript("PRAGMA incremental_vacuum(%d);" % (before if pages is None
                                                                 else min(pages, before)))
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        wal_before = _wal_size(self.path)
        busy = db.execute("PRAGMA wal_checkpoint(%s)" % checkpoint).fetchone()[0]
        return {"auto_vacuum": mode, "free_pages": free, "pages_freed": before - free,
                "page_size": db.execute("PRAGMA page_size").fetchone()[0],
                "wal_busy": bool(busy), "wal_bytes_before": wal_before,
                "wal_bytes": _wal_size(self.path)}

    def vacuum(self):
        """Rewrite the whole file (VACUUM), turning incremental auto-vacuum on for an older
        store. Holds the write lock throughout (seconds per 100 MB): best with the bridge
        stopped. Returns the file's size in bytes before and after."""
        db = self._conn()
        size = _size(db)
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("VACUUM")
        return size, _size(db)

    def check(self):
        """Consistency problems, as sentences; [] when all is well."""
        problems = []
        with self._read() as db:
            result = db.execute("PRAGMA quick_check").fetchall()
            if [tuple(r) for r in result] != [("ok",)]:
                problems.extend("sqlite: %s" % r[0] for r in result)
            for sender, heads, oldest, head in db.execute(
                    "SELECT sender, SUM(head), MIN(seq), MIN(CASE WHEN head = 1 THEN seq END)"
                    " FROM inbound WHERE status = 'pending' GROUP BY sender"):
                if heads != 1 or head != oldest:
                    problems.append("inbound: sender %s has %d head(s), oldest pending seq %s,"
                                    " head seq %s" % (sender, heads, oldest, head))
            stray = db.execute("SELECT COUNT(*) FROM inbound WHERE head = 1 AND status != 'pending'"
                               ).fetchone()[0]
            if stray:
                problems.append("inbound: %d finished messages still marked head" % stray)
        problems.extend("tallies: %s %s counted %d, there are %d" % (
            name, status or "rows", tallied, counted)
            for name, status, tallied, counted in self.tally_drift())
        return problems


def _wal_size(path):
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


def _size(db):
    page_count = db.execute("PRAGMA page_count").fetchone()[0]
    return page_count * db.execute("PRAGMA page_size").fetchone()[0]

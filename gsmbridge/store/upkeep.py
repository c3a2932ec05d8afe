"""Upkeep: forgetting old dedup keys and finished messages, and checking the store's
consistency (the CLI's maintenance and check commands)."""


class UpkeepMixin:
    """Store's periodic upkeep."""

    def maintenance(self, *, seen_days=30.0, keep_days=None, now=None):
        """Periodic upkeep; returns what it removed.

        Forgets dedup keys older than seen_days (a network redelivers within hours, a SIM is swept
        within minutes; keys of parts still waiting are kept). With keep_days, also deletes
        inbound messages delivered, outbound messages sent or delivered, and callbacks made,
        longer ago than that; failed and unknown ones are never deleted here.
        """
        now = self.clock() if now is None else now
        removed = {"seen": 0, "inbound": 0, "outbound": 0, "callbacks": 0}
        with self._write() as db:
            removed["seen"] = db.execute(
                "DELETE FROM seen WHERE seen_at < ? AND NOT EXISTS (SELECT 1 FROM parts"
                " WHERE parts.modem = seen.modem AND parts.key = seen.key)",
                (now - seen_days * 86400,)).rowcount
        if keep_days is not None:
            cutoff = now - keep_days * 86400
            with self._write() as db:
                removed["inbound"] = db.execute(
                    "DELETE FROM inbound WHERE status = 'delivered' AND delivered_at < ?",
                    (cutoff,)).rowcount
                removed["outbound"] = db.execute(
                    "DELETE FROM outbound WHERE status IN ('sent', 'delivered')"
                    " AND COALESCE(delivered_at, sent_at) < ?", (cutoff,)).rowcount
                removed["callbacks"] = db.execute(
                    "DELETE FROM callbacks WHERE status = 'delivered' AND delivered_at < ?",
                    (cutoff,)).rowcount
        self._conn().execute("PRAGMA optimize")
        return removed

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
        return problems

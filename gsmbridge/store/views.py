"""The operators' read queries: modem states, recent messages, traffic and the message search
(web.py, overview.py, the status page); the queue counts are tallies.py's. Reads only, except
set_modem, which the workers call to say how their modem is."""

import json

from .numbers import _digits
from .rows import INBOUND_STATUSES, OUTBOUND_STATUSES, _inbound_dict, _outbound_dict

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
# Full counts by status (counts() reads the tallies instead: tallies.py).
COUNT_INBOUND_SQL = "SELECT status, COUNT(*) FROM inbound GROUP BY status"
COUNT_OUTBOUND_SQL = "SELECT status, COUNT(*) FROM outbound GROUP BY status"


class ViewsMixin:
    """Store's operators' view."""

    def set_modem(self, name, **state):
        """Merge state into what is known of a modem (state, operator, registration, signal,
        last_error, ...; any JSON-able values). updated_at defaults to now."""
        now = self.clock()
        updated_at = state.pop("updated_at", None) or now
        with self._write() as db:
            row = db.execute("SELECT state FROM modems WHERE name = ?", (name,)).fetchone()
            merged = json.loads(row[0]) if row else {}
            merged.update(state)
            db.execute("INSERT INTO modems (name, state, updated_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
                       " updated_at = excluded.updated_at",
                       (name, json.dumps(merged, default=str), updated_at))

    def modems(self):
        """{name: {state..., "updated_at": epoch}}. A pool modem (set_pool) also has "routes",
        "daily_cap", "hourly_cap", "sent_last_hour", "sent_last_day" (SMS parts), "capped" and
        "available" (see available())."""
        result = {}
        for row in self._conn().execute("SELECT name, state, updated_at FROM modems ORDER BY name"):
            state = json.loads(row["state"])
            state["updated_at"] = row["updated_at"]
            result[row["name"]] = state
        if self._pool:
            usable = self.available(result)
            for name, settings in self._pool.items():
                hour, day = self.usage(name)
                state = result.setdefault(name, {"state": "not started", "updated_at": None})
                state.update(routes=list(settings["routes"]), daily_cap=settings["daily_cap"],
                             hourly_cap=settings["hourly_cap"], sent_last_hour=hour,
                             sent_last_day=day, capped=self.capped(name),
                             available=name in usable)
        return result

    def recent(self, limit=20):
        """The latest messages both ways, newest first. Each has "direction": "in" or "out";
        inbound rows leave out the raw PDUs."""
        with self._read() as db:
            inbound = [_inbound_dict(r) for r in db.execute(
                "SELECT * FROM inbound ORDER BY seq DESC LIMIT ?", (limit,))]
            outbound = [_outbound_dict(r) for r in db.execute(
                "SELECT * FROM outbound ORDER BY seq DESC LIMIT ?", (limit,))]
        for row in inbound:
            row.pop("pdus")
            row["direction"] = "in"
        for row in outbound:
            row["direction"] = "out"
        merged = sorted(inbound + outbound, reverse=True,
                        key=lambda r: r["received_at"] if r["direction"] == "in" else r["created_at"])
        return merged[:limit]


    #: how many of the newest rows each way activity() looks at: its cost stays bounded however
    #: many rows are kept (one modem moves at most about 20,000 SMS a day)
    ACTIVITY_SCAN = 50000

    def activity(self, since, *, bucket=3600.0, buckets=24):
        """Traffic and the latest events, for the status page and /health.

        {"in": [n per bucket], "out": [n per bucket], "last_received", "last_forwarded",
        "last_sent"}: bucket i counts inbound messages received, and outbound ones the modem took
        (sent_at), from since + i * bucket on; the last_* are epoch seconds or None. Only the
        newest ACTIVITY_SCAN rows of each table are looked at.
        """
        result = {"in": [0] * buckets, "out": [0] * buckets}
        newest = "(SELECT %s AS t FROM %s ORDER BY seq DESC LIMIT %d)"
        with self._read() as db:
            for way, column, table in (("in", "received_at", "inbound"),
                                       ("out", "sent_at", "outbound")) if buckets else ():
                rows = db.execute("SELECT CAST((t - ?) / ? AS INTEGER), COUNT(*) FROM "
                                  + newest % (column, table, self.ACTIVITY_SCAN)
                                  + " WHERE t >= ? GROUP BY 1", (since, bucket, since))
                for index, count in rows:
                    if 0 <= index < buckets:
                        result[way][index] = count
            for key, column, table in (("last_received", "received_at", "inbound"),
                                       ("last_forwarded", "delivered_at", "inbound"),
                                       ("last_sent", "sent_at", "outbound")):
                # finished messages are mostly the newest ones: stop after the first hundred
                result[key] = db.execute(
                    "SELECT MAX(t) FROM (SELECT t FROM " + newest % (column, table, self.ACTIVITY_SCAN)
                    + " WHERE t IS NOT NULL LIMIT 100)").fetchone()[0]
        return result

    def messages(self, *, direction=None, status=None, number=None, limit=50):
        """The newest messages, as recent() gives them, filtered by direction ("in"/"out"),
        status, and number: matched on its last 9 digits (0712..., +255712... and 255712... are
        the same line), or anywhere in the address when shorter or alphanumeric."""
        found = []
        with self._read() as db:
            for way, table, column, statuses, as_dict in (
                    ("in", "inbound", "sender", INBOUND_STATUSES, _inbound_dict),
                    ("out", "outbound", "recipient", OUTBOUND_STATUSES, _outbound_dict)):
                if direction not in (None, way) or status not in (None, *statuses):
                    continue
                where, params = ["1"], []
                if status is not None:
                    where.append("status = ?")
                    params.append(status)
                if number:
                    digits = _digits(number)
                    where.append("substr(%s, -9) = ?" % column if len(digits) >= 9
                                 else "instr(lower(%s), ?) > 0" % column)
                    params.append(digits[-9:] if len(digits) >= 9 else number.lower())
                for row in db.execute("SELECT * FROM %s WHERE %s ORDER BY seq DESC LIMIT ?"
                                      % (table, " AND ".join(where)), (*params, limit)):
                    message = as_dict(row)
                    message.pop("pdus", None)
                    message["direction"] = way
                    found.append(message)
        found.sort(reverse=True, key=lambda m: m["received_at" if m["direction"] == "in"
                                                else "created_at"])
        return found[:limit]

"""The modem pool: each modem's routes (number prefixes) and caps (SMS per hour and per day).

The pool is kept in the store, so every Store object on the file routes alike. An unpinned
message's route is the set of modems whose prefixes match its recipient, stored with it, so that
"the oldest one this modem may take" is one index seek per route value.
"""

import json
import logging

from .numbers import route_digits

log = logging.getLogger("gsmbridge.store")

#: seconds without a report of its state (set_modem) after which a modem counts as silent: the
#: pool stops routing to it and /health calls it stuck (overview.py). Its worker reports every 30 s
#: while idle, but one long multipart send may hold it for minutes. The one home of this number.
MODEM_STALE = 300.0
#: the caps' windows, seconds
HOUR, DAY = 3600.0, 86400.0
#: how long a modem's sent counts are reused before they are counted again (sends by this Store
#: object recount at once; this only bounds how late a window's oldest send is let go)
USAGE_TTL = 5.0

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
# SMS (parts) a modem sent since a time: its caps. At most a cap's worth of index entries.
SENT_SINCE_SQL = (
    "SELECT COALESCE(SUM(parts), 0) FROM outbound INDEXED BY outbound_sent_by"
    " WHERE sent_by = ? AND sent_at >= ?")


class PoolMixin:
    """Store's routes and caps; next_outbound (outbound.py) asks them who may send what."""

    def set_pool(self, modems):
        """Record the pool's modems: {name: {"routes": [prefixes], "daily_cap": n,
        "hourly_cap": n}} (caps in SMS parts, 0 = none). Called at start.

        Kept in the store, so that every Store object on the file routes alike. When the routes
        differ from those recorded, the queued unpinned messages are routed again (one UPDATE;
        seconds for a million). Returns how many queued messages are pinned to a modem not in
        the pool: those wait until it comes back, and the caller should say so.
        """
        pool = {}
        for name, settings in modems.items():
            routes = [str(r) for r in settings.get("routes") or ()]
            for prefix in routes:
                if not route_digits(prefix).isdigit():
                    raise ValueError("route %r of modem %s is not a number prefix"
                                     % (prefix, name))
            pool[str(name)] = {"routes": routes,
                               "daily_cap": int(settings.get("daily_cap") or 0),
                               "hourly_cap": int(settings.get("hourly_cap") or 0)}
        with self._write() as db:
            before = _read_pool(db)
            if before != pool:
                db.execute("DELETE FROM pool")
                db.executemany("INSERT INTO pool (name, routes, daily_cap, hourly_cap)"
                               " VALUES (?, ?, ?, ?)",
                               [(name, json.dumps(p["routes"]), p["daily_cap"], p["hourly_cap"])
                                for name, p in pool.items()])
            self._use_pool(pool)
            if _routes_of(before) != _routes_of(pool):
                db.create_function("gsmbridge_route", 1, self.route_of, deterministic=True)
                count = db.execute("UPDATE outbound SET route = gsmbridge_route(recipient)"
                                   " WHERE status IN ('queued', 'sending') AND relay IS NULL"
                                   ).rowcount
                log.info("store %s: routes changed; %d queued message(s) routed again",
                         self.path, count)
            orphans = db.execute(
                "SELECT COUNT(*) FROM outbound INDEXED BY outbound_queue WHERE status = 'queued'"
                " AND modem IS NOT NULL AND modem NOT IN (SELECT name FROM pool)").fetchone()[0]
        self.notify("outbound")
        return orphans if pool else 0

    def pool(self):
        """The pool as set_pool recorded it: {name: {"routes", "daily_cap", "hourly_cap"}}."""
        return {name: dict(p, routes=list(p["routes"])) for name, p in self._pool.items()}

    def _load_pool(self):
        with self._read() as db:
            self._use_pool(_read_pool(db))

    def _use_pool(self, pool):
        self._pool = pool
        prefixes = [(route_digits(prefix), name) for name, p in pool.items()
                    for prefix in p["routes"]]
        self._prefixes = sorted(set(prefixes), key=lambda item: (-len(item[0]), item))
        # every route a recipient can have: the modems matching one of the prefixes (a number
        # matches exactly the prefixes of the longest prefix it starts with), or none
        values = {""}
        for digits, _ in self._prefixes:
            values.add(self._route(digits))
        self._route_values = sorted(values)
        self._use_cluster_prefixes()        # a cluster routes over this pool too (cluster.py)
        with self._usage_lock:
            self._usage.clear()

    def route_of(self, recipient):
        """The route an unpinned message to `recipient` gets: the names of the pool modems one
        of whose prefixes starts it, joined by ",", sorted; "" when none."""
        return self._route(route_digits(recipient))

    def _route(self, digits):
        return ",".join(sorted({name for prefix, name in self._prefixes
                                if digits.startswith(prefix)}))

    def usage(self, modem, *, fresh=False):
        """(SMS sent in the last hour, in the last day) by a modem: parts of messages whose
        sent_at falls in the window, as carriers count. Counted again at most every
        USAGE_TTL seconds, and at once after this Store recorded a send by that modem."""
        now = self.clock()
        with self._usage_lock:
            cached = self._usage.get(modem)
        if cached is not None and not fresh and now - cached[0] < USAGE_TTL:
            return cached[1], cached[2]
        with self._read() as db:
            hour = db.execute(SENT_SINCE_SQL, (modem, now - HOUR)).fetchone()[0]
            day = db.execute(SENT_SINCE_SQL, (modem, now - DAY)).fetchone()[0]
        with self._usage_lock:
            self._usage[modem] = (now, hour, day)
        return hour, day

    def _forget_usage(self, modem):
        with self._usage_lock:
            self._usage.pop(modem, None)

    def capped(self, modem):
        """Whether a pool modem has sent its daily_cap or hourly_cap of SMS (rolling windows).
        A message that starts under the cap goes out whole, so a cap may be passed by the
        parts of one long message."""
        settings = self._pool.get(modem)
        if not settings or not (settings["daily_cap"] or settings["hourly_cap"]):
            return False
        hour, day = self.usage(modem)
        return bool(settings["hourly_cap"] and hour >= settings["hourly_cap"]
                    or settings["daily_cap"] and day >= settings["daily_cap"])

    def available(self, modems=None):
        """The pool modems that can send now: state "up" (booted, registered), reported within
        MODEM_STALE seconds, and under their caps. modems: store.modems()'s rows, if read."""
        if modems is None:
            modems = {row["name"]: {"state": json.loads(row["state"]).get("state"),
                                    "updated_at": row["updated_at"]}
                      for row in self._conn().execute(
                          "SELECT name, state, updated_at FROM modems")}
        now = self.clock()
        return [name for name in self._pool
                if (modems.get(name) or {}).get("state") == "up"
                and now - ((modems.get(name) or {}).get("updated_at") or 0) < MODEM_STALE
                and not self.capped(name)]


def _read_pool(db):
    return {row["name"]: {"routes": json.loads(row["routes"]), "daily_cap": row["daily_cap"],
                          "hourly_cap": row["hourly_cap"]}
            for row in db.execute("SELECT * FROM pool ORDER BY name")}


def _routes_of(pool):
    return {name: sorted(route_digits(r) for r in p["routes"]) for name, p in pool.items()
            if p["routes"]}


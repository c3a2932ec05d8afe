"""A cluster of bridges on one broker (docs/cluster.md): where each accepted message goes, the
outbox, the messages taken from the broker, the status reports owed and applied, the nodes heard.

Every node's store stays the truth for what that node holds; the broker only carries a message
from the store that accepted it to the store that sends it, and status reports back. So each
hand-over is a commit on one side and a commit on the other:

- **Placing** (the node that accepts): add_outbound, once set_cluster() named this node, decides
  in the message's own transaction whether one of this node's modems sends it (`relay` NULL: a
  modem pinned here, or a local modem that is free now and may take it) or the broker carries
  it (`relay` "modem", "route" or "free"). A relayed message's route is "@" and the cluster's
  route (the modems of every node whose prefixes match), a value no local route has: this
  node's workers never take it.
- **The outbox**: outbox() gives what waits for the broker; relayed() marks a message once the
  broker confirmed it. A crash in between publishes it again; the node that holds the id
  drops the repeat.
- **Taking** (the node that sends): take_relayed() commits a message taken from the broker,
  with its id and `origin`, before the broker is acknowledged; an id already held is a repeat
  and dropped. A node's own message back from the broker (its modem took it off the free
  queue) is adopted: its row becomes local work again.
- **Status reports**: every status change of a row with an `origin`, and every pending status
  report matched to one, becomes a cluster_reports row in the same transaction (the schema's
  triggers), for the relay to send back. The origin applies them (apply_cluster_report): the
  status, the node and modem that sent it, and the delivery-report callbacks its caller asked
  for, which only the origin makes (a row with an origin queues none).
- **The nodes heard**: cluster_heard() keeps each node's last heartbeat, with when it was heard
  on this node's clock; the cluster's modems and routes come from them. A heartbeat that says
  nothing new is kept in memory, and written every KEEP_EVERY seconds: a commit (an fsync) per
  node and heartbeat would compete with the sends' own.
"""

import json
import logging
import threading

from .callbacks import (DLR_DELIVERED, DLR_QUEUED, DLR_SMSC_ACK, DLR_SMSC_REJECT,
                        DLR_UNDELIVERED, _queue_callback)
from .numbers import route_digits
from .outbound import PRIORITIES
from .reports import _ST_FAILED, _ST_PENDING, _report_word
from .rows import _outbound_dict, _short

log = logging.getLogger("gsmbridge.store")

#: what the outbox does with a message: the modem's own queue, its route's queue, or any modem
RELAY_KINDS = ("modem", "route", "free")
#: a relayed message's route starts with it; no local route value can (modem names cannot)
RELAYED = "@"
#: how far along a message is: a report never takes a message back from another node's copy
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "unknown": 3}
#: a node unheard for this long is down by default (the cluster's down_after)
DOWN_AFTER = 60.0
#: a heartbeat that says what the last one said is kept in memory only; the table gets it
#: this often (seconds), so a restarted node knows roughly when it last heard each node
KEEP_EVERY = 15.0

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
OUTBOX_SQL = ("SELECT * FROM outbound INDEXED BY outbound_outbox"
              " WHERE relay IS NOT NULL AND relayed_at IS NULL ORDER BY seq LIMIT ?")
SENDING_BY_SQL = ("SELECT 1 FROM outbound INDEXED BY outbound_status"
                  " WHERE status = 'sending' AND sent_by = ? LIMIT 1")
QUEUED_FOR_SQL = ("SELECT 1 FROM outbound INDEXED BY outbound_queue"
                  " WHERE status = 'queued' AND modem = ? AND next_attempt <= ? LIMIT 1")
QUEUED_ROUTE_SQL = ("SELECT 1 FROM outbound INDEXED BY outbound_route"
                    " WHERE status = 'queued' AND modem IS NULL AND route = ?"
                    " AND next_attempt <= ? LIMIT 1")

#: what a message taken from the broker may carry, and the type of each
_TAKEN_FIELDS = {"id": str, "origin": str, "to": str, "text": str, "smsc": (str, type(None)),
                 "sender": (str, type(None)), "encoding": (str, type(None)), "parts": int,
                 "priority": int, "dlr_url": (str, type(None)), "dlr_mask": int,
                 "route": (str, type(None)), "accepted_at": (int, float, type(None))}


class ClusterMixin:
    """Store's side of a cluster. Inert until set_cluster() names this node."""

    _cluster_node = None
    _cluster_down_after = DOWN_AFTER
    _remote_modems = None           # name -> {"node", "routes", "can_send", ...}, other nodes'
    _cluster_prefixes = ()          # [(digits, modem)] of every node's modems
    _heard = None                   # node -> its last heartbeat, in memory (cluster_heard)
    _heard_lock = threading.Lock()

    def set_cluster(self, node, *, down_after=DOWN_AFTER):
        """Make this store one node's of a cluster: accepted messages are placed from now on
        (add_outbound), and the nodes heard before (kept in the store) are known again."""
        self._heard = {}
        self._cluster_node = node
        self._cluster_down_after = float(down_after)
        self._load_cluster()

    @property
    def cluster_node(self):
        return self._cluster_node

    # -- the nodes heard ------------------------------------------------------------------

    def cluster_heard(self, beat, *, heard_at=None):
        """Keep a node's heartbeat (a dict with "node" and "modems"), heard at `heard_at` (now
        by default, on this node's clock)."""
        node = beat.get("node")
        if not isinstance(node, str) or not node:
            raise ValueError("a heartbeat names its node")
        heard_at = float(self.clock() if heard_at is None else heard_at)
        gist = _gist(beat)
        with self._heard_lock:
            if self._heard is None:
                self._heard = {}
            heard = self._heard.setdefault(node, {})
            due = (heard.get("gist") != gist
                   or heard_at - heard.get("kept_at", float("-inf")) >= KEEP_EVERY)
            heard.update(beat=beat, heard_at=heard_at)
            if due:
                heard.update(gist=gist, kept_at=heard_at)
        if due:
            with self._write() as db:
                db.execute("INSERT INTO cluster_nodes (node, beat, heard_at) VALUES (?, ?, ?)"
                           " ON CONFLICT (node) DO UPDATE SET beat = excluded.beat,"
                           " heard_at = excluded.heard_at",
                           (node, json.dumps(beat, default=str), heard_at))
        if node != self._cluster_node:
            self._remember_node(node, beat, heard_at)

    def forget_node(self, node, *, boot=None):
        """Drop a node from the view (it refused to start, or it was removed); with `boot`,
        only if its last heartbeat is of that start. True if it was known."""
        with self._write() as db:
            gone = db.execute("DELETE FROM cluster_nodes WHERE node = ?"
                              " AND (? IS NULL OR json_extract(beat, '$.boot') = ?)",
                              (node, boot, boot)).rowcount
        with self._heard_lock:
            if self._heard and (gone or boot is None or (self._heard.get(node) or {}).get(
                    "beat", {}).get("boot") == boot):
                self._heard.pop(node, None)
        self._load_cluster()
        return bool(gone)

    def cluster_nodes(self):
        """{node: {"beat": its last heartbeat, "heard_at": epoch on this node's clock, "age":
        seconds since, "stopped": it said goodbye (a clean stop), "down": stopped or silent
        for down_after}}, by name."""
        now = self.clock()
        kept = {row["node"]: (json.loads(row["beat"]), row["heard_at"])
                for row in self._conn().execute("SELECT node, beat, heard_at FROM cluster_nodes")}
        with self._heard_lock:
            kept.update((node, (h["beat"], h["heard_at"]))
                        for node, h in (self._heard or {}).items()
                        if node in kept and h["heard_at"] >= kept[node][1])
        result = {}
        for node, (beat, heard_at) in sorted(kept.items()):
            age = max(0.0, now - heard_at)
            stopped = bool(beat.get("leaving"))
            result[node] = {"beat": beat, "heard_at": heard_at, "age": age, "stopped": stopped,
                            "down": stopped or age > self._cluster_down_after}
        return result

    def cluster_modems(self):
        """Other nodes' modems as last heard: {name: {"node", "routes", "can_send", "state",
        "down"}}; can_send is False while its node is down."""
        now = self.clock()
        result = {}
        for name, modem in (self._remote_modems or {}).items():
            down = modem["stopped"] or now - modem["heard_at"] > self._cluster_down_after
            result[name] = dict(modem, down=down, can_send=bool(modem["can_send"]) and not down)
        return result

    def knows_modem(self, name):
        """Whether `name` is one of the cluster's modems (this node's or another's)."""
        return name in self._pool or name in (self._remote_modems or {})

    def cluster_route(self, recipient):
        """The modems of the whole cluster whose prefixes start `recipient`, sorted, joined by
        ","; "" when none (the pool's route_of, over every node's modems)."""
        return self._cluster_route(route_digits(recipient))

    def _cluster_route(self, digits):
        return ",".join(sorted({name for prefix, name in self._cluster_prefixes
                                if digits.startswith(prefix)}))

    def cluster_route_values(self):
        """Every route a message can have in the cluster but "" (no modem's prefix matches):
        the route queues there may be."""
        return sorted({self._cluster_route(digits) for digits, _ in self._cluster_prefixes})

    def _load_cluster(self):
        self._remote_modems = {}
        for row in self._conn().execute("SELECT node, beat, heard_at FROM cluster_nodes"):
            if row["node"] != self._cluster_node:
                self._remember_node(row["node"], json.loads(row["beat"]), row["heard_at"])
        self._use_cluster_prefixes()

    def _remember_node(self, node, beat, heard_at):
        known = {name: m for name, m in (self._remote_modems or {}).items() if m["node"] != node}
        modems = {}
        for modem in beat.get("modems") or ():
            if not isinstance(modem, dict) or not isinstance(modem.get("name"), str):
                continue
            name = modem["name"]
            other = known.get(name)
            if name in self._pool or (other is not None and not other["stopped"]
                                      and heard_at - other["heard_at"]
                                      <= self._cluster_down_after):
                continue            # a clash: the node that had the name keeps it (beats.py)
            routes = [str(r) for r in modem.get("routes") or () if isinstance(r, (str, int))]
            modems[name] = {"node": node, "routes": routes,
                            "can_send": bool(modem.get("can_send")),
                            "state": modem.get("state"), "heard_at": heard_at,
                            "stopped": bool(beat.get("leaving"))}
        known = {name: m for name, m in known.items() if name not in modems}
        changed = {n: m["routes"] for n, m in (self._remote_modems or {}).items()} != {
            n: m["routes"] for n, m in {**known, **modems}.items()}
        self._remote_modems = {**known, **modems}
        if changed:
            self._use_cluster_prefixes()

    def _use_cluster_prefixes(self):
        prefixes = {(route_digits(prefix), name) for name, p in self._pool.items()
                    for prefix in p["routes"]}
        prefixes |= {(route_digits(prefix), name)
                     for name, m in (self._remote_modems or {}).items() for prefix in m["routes"]
                     if route_digits(prefix).isdigit()}
        self._cluster_prefixes = sorted(prefixes, key=lambda item: (-len(item[0]), item))

    # -- placing what this node accepts -----------------------------------------------------

    def _placing(self):
        """Before add_outbound's transaction: None when not in a cluster, else this node's
        modems that can take work now (up, reporting, under their caps)."""
        if self._cluster_node is None:
            return None
        return set(self.available())

    def _idle_modems(self, db, usable, now):
        """Inside add_outbound's transaction, before its rows: which of the usable modems have
        nothing to do (None when not in a cluster)."""
        if usable is None:
            return None
        return {name for name in usable if self._idle(db, name, now)}

    def _place(self, db, ids, recipients, modem, idle):
        """Inside add_outbound's transaction, after its rows: mark what the broker must carry
        (see the module docstring). An idle local modem takes one message and is then busy."""
        if idle is None:
            return
        if modem is not None:
            if modem not in self._pool:
                db.executemany("UPDATE outbound SET relay = 'modem', route = ? WHERE id = ?",
                               [(RELAYED, msg_id) for msg_id in ids])
            return
        if not self._remote_modems:
            return                          # no other node has a modem: nothing to share
        idle = set(idle)
        for msg_id, number in zip(ids, recipients):
            route = self.cluster_route(number)
            wanted = route.split(",") if route else list(self._pool)
            if route and all(name in self._pool for name in wanted):
                idle.difference_update(wanted[:1])
                continue                    # only this node's modems are meant for it
            free = [name for name in wanted if name in idle]
            if free:
                idle.discard(free[0])
                continue
            db.execute("UPDATE outbound SET relay = ?, route = ? WHERE id = ?",
                       ("route" if route else "free", RELAYED + route, msg_id))

    def _idle(self, db, modem, now):
        """Whether a local modem has nothing to do: nothing being sent by it, nothing queued
        and due that is pinned to it or free for any local modem."""
        if db.execute(SENDING_BY_SQL, (modem,)).fetchone():
            return False
        if db.execute(QUEUED_FOR_SQL, (modem, now)).fetchone():
            return False
        return not any(db.execute(QUEUED_ROUTE_SQL, (value, now)).fetchone()
                       for value in self._route_values)

    def modem_free(self, modem):
        """Whether a local modem can take work from the broker now: it can send (up,
        reporting, under its caps) and has nothing to do."""
        return self.modem_room(modem) == "free"

    def modem_room(self, modem):
        """Room a local modem has for work from the broker: "free" (it can send, and has
        nothing to do), "next" (it can send, is sending one message and nothing else waits
        for it: room for the one after), "busy" (something waits for it here) or None (it
        cannot send: down, unregistered, silent or at a cap)."""
        if modem not in self.available():
            return None
        now = self.clock()
        with self._read() as db:
            if db.execute(QUEUED_FOR_SQL, (modem, now)).fetchone() or any(
                    db.execute(QUEUED_ROUTE_SQL, (value, now)).fetchone()
                    for value in self._route_values):
                return "busy"
            return "next" if db.execute(SENDING_BY_SQL, (modem,)).fetchone() else "free"

    # -- the outbox ------------------------------------------------------------------------

    def outbox(self, limit=100):
        """Messages waiting to be handed to the broker, oldest first (rows as get_outbound's,
        without reports and callbacks)."""
        rows = self._conn().execute(OUTBOX_SQL, (limit,)).fetchall()
        return [_outbound_dict(row) for row in rows]

    def outbox_size(self):
        return self._conn().execute("SELECT COUNT(*) FROM outbound INDEXED BY outbound_outbox"
                                    " WHERE relay IS NOT NULL AND relayed_at IS NULL"
                                    ).fetchone()[0]

    def relayed(self, id, *, route=None):
        """The broker confirmed it: out of the outbox. route: the cluster route it went by."""
        now = self.clock()
        with self._write() as db:
            db.execute("UPDATE outbound SET relayed_at = ?, route = COALESCE(?, route)"
                       " WHERE id = ? AND relay IS NOT NULL AND relayed_at IS NULL",
                       (now, None if route is None else RELAYED + route, id))

    def adopt_outbox(self):
        """The broker has been away too long: what waits in the outbox for any modem (not
        pinned to another node's) goes out through this node's modems. Returns how many."""
        with self._write() as db:
            db.create_function("gsmbridge_route", 1, self.route_of, deterministic=True)
            count = db.execute(
                "UPDATE outbound SET relay = NULL, route = gsmbridge_route(recipient)"
                " WHERE seq IN (SELECT seq FROM outbound INDEXED BY outbound_outbox"
                " WHERE relay IS NOT NULL AND relayed_at IS NULL) AND relay != 'modem'"
                " AND status = 'queued'").rowcount
        if count:
            self.notify()
        return count

    # -- taking from the broker ---------------------------------------------------------------

    def take_relayed(self, message, *, modem=None):
        """Commit a message taken from the broker (a dict as the outbox sends it), before the
        broker is acknowledged. modem: the local modem it is pinned to (it came off that
        modem's own queue). Returns "new", "adopted" (this node's own message, now sent here)
        or "repeat" (the id is held already: dropped). ValueError for a message that is not
        one gsmbridge sends."""
        message = _checked(message)
        now = self.clock()
        msg_id = message["id"]
        origin = message["origin"]
        with self._write() as db:
            row = db.execute("SELECT origin, relay, status FROM outbound WHERE id = ?",
                             (msg_id,)).fetchone()
            if row is not None:
                if not (row["relay"] and row["origin"] is None and row["status"] == "queued"):
                    return "repeat"
                db.execute("UPDATE outbound SET relay = NULL, route = ?,"
                           " modem = COALESCE(?, modem), relayed_at = COALESCE(relayed_at, ?)"
                           " WHERE id = ?",
                           (self.route_of(message["to"]), modem, now, msg_id))
                outcome = "adopted"
            else:
                db.execute(
                    "INSERT INTO outbound (id, recipient, text, encoding, parts, modem, sender,"
                    " dlr_url, dlr_mask, next_attempt, created_at, route, priority, origin)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (msg_id, message["to"], message["text"], message.get("encoding"),
                     message["parts"], modem, message.get("sender"), message.get("dlr_url"),
                     message.get("dlr_mask") or 0, now, now, self.route_of(message["to"]),
                     message.get("priority") or 0,
                     None if origin == self._cluster_node else origin))
                outcome = "new"
        self.notify()
        return outcome

    # -- status reports -----------------------------------------------------------------------

    def cluster_reports(self, limit=200, *, after=0):
        """Status reports owed to origin nodes, oldest first (those after seq `after`):
        [{"id" (the seq), "outbound_id", "origin", "status", "modem", "error", "parts",
        "tp_st", "reference", "at"}]."""
        return [dict(row) for row in self._conn().execute(
            "SELECT * FROM cluster_reports WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]

    def cluster_reports_owed(self):
        return self._conn().execute("SELECT COUNT(*) FROM cluster_reports").fetchone()[0]

    def cluster_reports_sent(self, ids):
        """The broker has these reports: forget them."""
        ids = [int(i) for i in ids]
        if not ids:
            return
        with self._write() as db:
            db.executemany("DELETE FROM cluster_reports WHERE id = ?", [(i,) for i in ids])

    def apply_cluster_report(self, report):
        """On the origin: what a node reported of a message this node accepted and relayed.

        report: {"id", "node", "seq", "status", "modem"?, "error"?, "at"?, "tp_st"?,
        "reference"?}. A report older than one applied from the same node is ignored, and so is
        one from another node (a repeat of the message went there too) that would take the
        message back. Queues the delivery-report callbacks the status calls for, as if this
        node had sent it. Returns True if applied; ValueError for what is not a report."""
        return self.apply_cluster_reports([report])[0]

    def apply_cluster_reports(self, reports):
        """apply_cluster_report for several reports, in one transaction: [True/False/None],
        None for one that is not a status report (left out)."""
        now = self.clock()
        if len(reports) == 1 and _report_problem(reports[0]):
            raise ValueError(_report_problem(reports[0]))
        results, queued = [], False
        with self._write() as db:
            for report in reports:
                if _report_problem(report):
                    results.append(None)
                    continue
                applied, callbacks = self._apply_report(db, report, now)
                results.append(applied)
                queued = queued or callbacks
        if queued:
            self.notify()
        return results

    def _apply_report(self, db, report, now):
        """(applied, callbacks queued) for one report, inside the caller's transaction."""
        msg_id, node, status = report["id"], report["node"], report["status"]
        seq = report["seq"]
        at = report.get("at")
        at = float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else now
        tp_st, reference = report.get("tp_st"), report.get("reference")
        error = report.get("error")
        row = db.execute("SELECT seq, status, node, report_seq, relay FROM outbound"
                         " WHERE id = ?", (msg_id,)).fetchone()
        if row is None or row["relay"] is None:
            return False, False
        old = row["status"]
        if row["node"] == node:
            if (row["report_seq"] or 0) >= seq:
                return False, False
        elif row["node"] is not None and STATUS_RANK[status] < STATUS_RANK[old]:
            return False, False
        times = {"sending": "sending_at", "sent": "sent_at", "delivered": "delivered_at",
                 "failed": "failed_at", "unknown": "failed_at"}
        assignments = "status = ?, node = ?, report_seq = ?, sent_by = COALESCE(?, sent_by)"
        params = [status, node, seq, report.get("modem")]
        if status in times:
            assignments += ", %s = ?" % times[status]
            params.append(at)
        if status == "delivered" and old != "sent" and old != "delivered":
            assignments += ", sent_at = COALESCE(sent_at, ?)"
            params.append(at)
        if error is not None or status in ("sent", "delivered"):
            assignments += ", last_error = ?"
            params.append(None if status in ("sent", "delivered") else str(error)[:1000])
        db.execute("UPDATE outbound SET %s WHERE seq = ?" % assignments, (*params, row["seq"]))
        queued = False
        for type, text in _callbacks_of(old, status, tp_st, reference, error):
            queued = _queue_callback(db, row["seq"], type, text, now) or queued
        return True, queued


def _gist(beat):
    """What of a heartbeat matters beyond "still here": its modems and what they can do."""
    return json.dumps([beat.get("boot"), beat.get("leaving"),
                       [(m.get("name"), m.get("routes"), m.get("can_send"), m.get("state"))
                        for m in beat.get("modems") or () if isinstance(m, dict)]],
                      sort_keys=True, default=str)


def _report_problem(report):
    """Why `report` is not a status report, or None."""
    if not isinstance(report, dict):
        return "not a JSON object"
    if report.get("status") not in STATUS_RANK:
        return "no known status"
    if not isinstance(report.get("node"), str) or not isinstance(report.get("id"), str):
        return "no node or id"
    seq = report.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        return "no seq"
    return None


def _callbacks_of(old, status, tp_st, reference, error):
    """The delivery-report callbacks (type, text) a status report calls for, given the status
    the origin had: as the store queues them for its own sends."""
    reported = isinstance(tp_st, int) and not isinstance(tp_st, bool)
    text = ("id:%d stat:%s err:%03d" % (reference or 0, _report_word(tp_st), tp_st)
            if reported else "")
    was_sent = old in ("sent", "delivered")
    final_report = reported and tp_st >= _ST_FAILED
    events = []
    if not was_sent and (status in ("sent", "delivered") or (status == "failed" and final_report)):
        events.append((DLR_SMSC_ACK, "ACK"))
    if status == "sent" and reported and _ST_PENDING <= tp_st < _ST_FAILED:
        events.append((DLR_QUEUED, text))
    elif status == "delivered" and old != "delivered":
        events.append((DLR_DELIVERED, text or "id:%d stat:DELIVRD err:000" % (reference or 0)))
    elif status == "failed" and old != "failed":
        if final_report or was_sent:
            events.append((DLR_UNDELIVERED, text or _short(error or "not delivered")))
        else:
            events.append((DLR_SMSC_REJECT, _short(error or "failed")))
    return events


def _checked(message):
    """A message taken from the broker, its fields checked (types and bounds; the origin
    checked the rest with the HTTP API's rules before it accepted it)."""
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    for key, kind in _TAKEN_FIELDS.items():
        if key in message and not isinstance(message[key], kind) \
                or isinstance(message.get(key), bool):
            raise ValueError("%s: wrong type" % key)
    for key in ("id", "origin", "to", "text", "parts"):
        if key not in message:
            raise ValueError("%s is missing" % key)
    if not message["to"].strip() or len(message["to"]) > 64:
        raise ValueError("to: not a number")
    if not message["text"] or message["parts"] < 1 or message["parts"] > 255:
        raise ValueError("text or parts out of bounds")
    if not PRIORITIES[0] <= (message.get("priority") or 0) <= PRIORITIES[1]:
        raise ValueError("priority out of bounds")
    if message.get("encoding") not in (None, "gsm7", "ucs2", "8bit"):
        raise ValueError("encoding unknown")
    return message

"""The outbox relay: what this node's store owes the broker, handed over and marked.

One thread per node, with one Publisher. It hands over two kinds of rows, oldest first:

- messages this node accepted for another node's modem, or for whichever modem of the cluster
  is free first (the store placed them, store/cluster.py): each is published with confirm to
  its queue, then marked relayed. A crash between the two publishes it again; the node that
  holds the id drops the repeat. The queue is chosen now, not when the message was accepted:
  a message pinned to a modem goes to that modem's queue; one whose recipient matches routes
  goes to the route's queue while one of the route's modems can send, else to the free queue,
  where any modem takes it;
- status reports this node owes the nodes that accepted the messages it took: published to the
  origin's status queue, those for one origin together in one message, then forgotten.
  Several reports of one message waiting together go as
  the newest alone (the origin infers the steps in between), and a report of a step on the way
  ("queued": taken, "sending") waits up to HOLD seconds for the next one, so that a message
  sent at once costs one report, not three.

While the broker is away the outbox grows (accepting never waits on the broker) and this
node's modems go on sending what they hold; after `local_after` seconds of outage, messages
waiting for any modem (not pinned to another node's) are handed to this node's own modems, so a
node cut off from the broker keeps serving its own modems. When the broker is back, the rest
goes out.
"""

import logging
import threading
import time

from gsmbridge.store import StoreError

from . import envelope, topology
from .broker import BrokerError, BrokerUnavailable
from .publisher import Publisher

log = logging.getLogger("gsmbridge.cluster")

#: how long the relay sleeps with nothing to do (a commit wakes it sooner)
IDLE_WAIT = 1.0
#: the longest wait between two attempts while the broker is away
RETRY_CAP = 5.0
#: how long a report of a step on the way waits for the next step of its message
HOLD = 0.5
#: the steps on the way
PASSING = ("queued", "sending")
#: status reports to one origin go together, this many to a message (well under 64 KiB)
REPORTS_PER_MESSAGE = 100
#: published reports are forgotten (one commit) every SETTLE_EVERY seconds or SETTLE_AT rows
SETTLE_EVERY, SETTLE_AT = 1.0, 500


def work_message(row, node):
    """The broker's copy of an outbox row (docs/cluster.md, "Message schema")."""
    return {"id": row["id"], "origin": node, "to": row["recipient"], "text": row["text"],
            "smsc": row["modem"], "sender": row["sender"], "encoding": row["encoding"],
            "parts": row["parts"], "priority": row.get("priority") or 0,
            "dlr_url": row["dlr_url"], "dlr_mask": row["dlr_mask"] or 0,
            "route": (row["route"] or "").lstrip("@") or None,
            "accepted_at": row["created_at"]}


def status_message(report, node):
    """The broker's copy of a status report (a row of store.cluster_reports())."""
    message = {"id": report["outbound_id"], "node": node, "seq": report["id"],
               "status": report["status"], "modem": report["modem"], "at": report["at"],
               "parts": report["parts"]}
    for key in ("error", "tp_st", "reference"):
        if report.get(key) is not None:
            message[key] = report[key]
    return message


def reports_message(reports, node):
    """Several status reports for one origin as one broker message: its id is this node's and
    the first report's seq, unique and the same if it is sent again."""
    return {"id": "%s.%d" % (node, reports[0]["id"]), "node": node,
            "reports": [status_message(report, node) for report in reports]}


def choose_queue(store, row):
    """(queue, route) for an outbox row: see the module docstring."""
    if row["relay"] == "modem":
        return topology.modem_queue(row["modem"]), None
    route = store.cluster_route(row["recipient"])
    if route:
        remote = store.cluster_modems()
        local = set(store.available())
        if any(name in local or (remote.get(name) or {}).get("can_send")
               for name in route.split(",")):
            return topology.route_queue(route), route
    return topology.FREE_QUEUE, route


class Relay(threading.Thread):
    """Hands the outbox and the status reports owed to the broker (see the module docstring)."""

    def __init__(self, store, broker, *, stopping, local_after=30.0, batch=100):
        super().__init__(name="cluster-relay", daemon=True)
        self.store = store
        self.broker = broker
        self.stopping = stopping
        self.local_after = local_after
        self.batch = batch
        self.publisher = Publisher(broker)
        self.down_since = None          # monotonic time the broker went away, while it is
        self.relayed = 0
        self.reported = 0
        self._failures = 0
        self._read_upto = 0             # the newest report seq read (this process)
        self._owed = {}                 # outbound id -> its newest report not yet published
        self._settled = []              # reports published or superseded, to forget
        self._settled_at = time.monotonic()

    def run(self):
        while not self.stopping.is_set():
            try:
                busy = self.relay_outbox() + self.send_reports()
            except (BrokerUnavailable, BrokerError) as exc:
                self._broker_away(exc)
                continue
            except StoreError:
                log.exception("cluster relay: the store failed; trying again")
                self.stopping.wait(1.0)
                continue
            if self.down_since is not None:
                log.warning("cluster relay: broker %s back after %.1f s", self.broker.safe_url,
                            time.monotonic() - self.down_since)
                self.down_since = None
                self._failures = 0
            if not busy:
                self.store.wait(IDLE_WAIT)
        self.publisher.close()

    def stop(self):
        self.stopping.set()
        self.store.notify()

    # -- one pass -------------------------------------------------------------------------

    def relay_outbox(self):
        """Publish what waits in the outbox; returns how many went."""
        done = 0
        for row in self.store.outbox(self.batch):
            if self.stopping.is_set():
                break
            queue, route = choose_queue(self.store, row)
            try:
                self.publisher.publish(queue, work_message(row, self.broker.node))
            except envelope.BadMessage as exc:
                # nothing the broker could carry (it cannot happen to what the API accepts)
                log.error("id=%s cannot be relayed: %s", row["id"], exc,
                          extra={"msg_id": row["id"]})
                self.store.outbound_failed(row["id"], error="cannot be relayed: %s" % exc)
                continue
            self.store.relayed(row["id"], route=route)
            log.debug("id=%s relayed to %s", row["id"], queue, extra={"msg_id": row["id"]})
            done += 1
        self.relayed += done
        return done

    def send_reports(self):
        """Publish the status reports owed; returns how many went.

        Reports are read once (after the newest seq read so far); the newest of each message
        waits in `_owed` until it is published (a step on the way is held HOLD seconds for its
        successor). Published reports are forgotten in batches (SETTLE_EVERY): one published
        again after a crash is older than what the origin applied, and dropped there."""
        fresh = self.store.cluster_reports(self.batch * 2, after=self._read_upto)
        for report in fresh:
            older = self._owed.get(report["outbound_id"])
            if older is not None:
                self._settled.append(older["id"])      # superseded: its successor says more
            self._owed[report["outbound_id"]] = report
        if fresh:
            self._read_upto = fresh[-1]["id"]
        held_until = time.time() - HOLD
        by_origin = {}
        for report in self._owed.values():
            if report["status"] in PASSING and report["at"] > held_until:
                continue                        # its next step may be a moment away
            by_origin.setdefault(report["origin"], []).append(report)
        sent = 0
        for origin, owed in by_origin.items():
            for start in range(0, len(owed), REPORTS_PER_MESSAGE):
                if self.stopping.is_set():
                    break
                chunk = owed[start:start + REPORTS_PER_MESSAGE]
                self.publisher.publish(topology.status_queue(origin),
                                       reports_message(chunk, self.broker.node))
                for report in chunk:
                    del self._owed[report["outbound_id"]]
                    self._settled.append(report["id"])
                sent += len(chunk)
        if self._settled and (len(self._settled) >= SETTLE_AT or not self._owed
                              or time.monotonic() - self._settled_at >= SETTLE_EVERY):
            self.store.cluster_reports_sent(self._settled)
            self._settled, self._settled_at = [], time.monotonic()
        self.reported += sent
        return sent

    # -- the broker away --------------------------------------------------------------------

    def _broker_away(self, exc):
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.warning("cluster relay: cannot reach the broker (%s); the outbox waits, this "
                        "node's modems send what they hold", exc)
        if isinstance(exc, BrokerError) and not isinstance(exc, BrokerUnavailable):
            log.error("cluster relay: %s", exc)
        if now - self.down_since >= self.local_after:
            try:
                adopted = self.store.adopt_outbox()
            except StoreError:
                log.exception("cluster relay: could not hand the outbox to local modems")
                adopted = 0
            if adopted:
                log.warning("cluster relay: broker away for %.0f s; %d message(s) of the outbox "
                            "go out through this node's modems", now - self.down_since, adopted)
        self._failures += 1
        self.stopping.wait(min(RETRY_CAP, 0.1 * 2 ** min(self._failures, 6)))

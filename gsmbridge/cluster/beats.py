"""This node's heartbeats, and what the others' tell: the cluster view and the name checks.

One thread per node sends a heartbeat every `interval` seconds (this node's modems: whether
each can send, its routes and caps, what it sent; the outbox's size) and, in between, hears
everyone's. Each heartbeat heard goes to the store (store.cluster_heard), stamped with this
node's clock: the status page, /health and /metrics read the cluster from there, and the store
places accepted messages by the modems and routes the heartbeats tell of. A node heard for the
first time (a new start of it) is answered at once with a heartbeat, so that a node starting
hears every node within a second or so rather than an interval.

A node that stops says goodbye: a last heartbeat with "leaving": "stopped" (the others show it
stopped at once rather than down a minute later; its modems' names stay known, so messages
pinned to them are still accepted and wait for it), or "refused" from a node that refused to
start (the others forget it: it never joined).

Names must be unique across the cluster: a modem's name is its queue, and a node's name is
where its status reports go. `clashes` collects what contradicts that: another node with a
modem of one of this node's names, or another running bridge with this node's name. A node
refuses to start on a clash it hears while it starts (ClusterNode.start); one heard later is
logged, as the newcomer is the one that refuses.
"""

import logging
import threading
import time

import gsmbridge
from gsmbridge.store import StoreError

from .heartbeat import Heartbeat

log = logging.getLogger("gsmbridge.cluster")


def modem_report(name, state):
    """One modem as a heartbeat tells of it (from store.modems())."""
    return {"name": name, "state": state.get("state"), "can_send": bool(state.get("available")),
            "routes": list(state.get("routes") or ()), "daily_cap": state.get("daily_cap") or 0,
            "hourly_cap": state.get("hourly_cap") or 0,
            "sent_last_hour": state.get("sent_last_hour") or 0,
            "sent_last_day": state.get("sent_last_day") or 0,
            "signal": state.get("signal"), "operator": state.get("operator"),
            "registered": state.get("registered"), "last_error": state.get("last_error"),
            "updated_at": state.get("updated_at")}


class Beats(threading.Thread):
    """Sends and hears heartbeats (see the module docstring)."""

    def __init__(self, store, broker, modems, *, stopping, interval=5.0):
        super().__init__(name="cluster-heartbeat", daemon=True)
        self.store = store
        self.broker = broker
        self.node = broker.node
        self.modems = list(modems)
        self.stopping = stopping
        self.interval = float(interval)
        self.heartbeat = Heartbeat(broker)
        self.clashes = []
        self.clashed = threading.Event()
        self.heard_self = threading.Event()
        self._known = {}                 # node -> (boot, seq) of its newest heartbeat
        self._told = set()
        #: the goodbye this node says when it stops: "stopped", or "refused" (a name clash)
        self.leaving = "stopped"

    def status(self):
        modems = self.store.modems()
        return {"modems": [modem_report(name, modems.get(name) or {}) for name in self.modems],
                "outbox": self.store.outbox_size(), "version": gsmbridge.__version__}

    def run(self):
        next_send = 0.0
        while not self.stopping.is_set():
            try:
                if time.monotonic() >= next_send:
                    self.heartbeat.send(self.status())
                    next_send = time.monotonic() + self.interval
                wait = max(0.05, min(1.0, next_send - time.monotonic()))
                if self.hear(self.heartbeat.receive(timeout=wait)):
                    next_send = 0.0              # a node (re)started: tell it about us now
            except StoreError:
                log.exception("cluster heartbeats: the store failed")
                self.stopping.wait(1.0)
            except Exception:
                log.exception("cluster heartbeats failed")
                self.stopping.wait(1.0)
        try:
            self.heartbeat.send(dict(self.status(), leaving=self.leaving))
        except Exception:                        # a goodbye is a courtesy
            log.debug("cluster heartbeats: no goodbye sent", exc_info=True)
        self.heartbeat.close()

    def hear(self, beats):
        """Record heartbeats; True if one came from a node (re)started since last heard."""
        started = False
        for beat in beats:
            node, boot, seq = beat.get("node"), beat.get("boot"), beat.get("seq")
            seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
            known = self._known.get(node)
            if known is not None and known[0] == boot and seq <= known[1]:
                continue                         # late, or heard already
            self._known[node] = (boot, seq)
            if node == self.node and boot == self.heartbeat.boot:
                self.heard_self.set()
                self.store.cluster_heard(beat)
                continue
            if beat.get("leaving") == "refused":
                if node != self.node:
                    log.info("cluster: node %s refused to start; forgotten", node)
                    self.store.forget_node(node, boot=boot)
                continue
            if node != self.node and (known is None or known[0] != boot) \
                    and not beat.get("leaving"):
                started = True
            self.check(beat)
            if node != self.node:
                self.store.cluster_heard(beat)
                if beat.get("leaving"):
                    log.warning("cluster: node %s stopped", node)
        return started

    def check(self, beat):
        """Collect the clashes a heartbeat shows with this node's names."""
        node = beat.get("node")
        found = []
        if node == self.node:
            if beat.get("boot") != self.heartbeat.boot:
                found.append(("node", node, "the node name %r is used by another running "
                              "bridge too; every node needs a name of its own ([cluster] node)"
                              % node))
        else:
            names = {m.get("name") for m in beat.get("modems") or () if isinstance(m, dict)}
            for name in sorted(names & set(self.modems)):
                found.append(("modem:%s" % name, node,
                              "the modem name %r is on node %s and on node %s (this one); "
                              "every modem needs a name of its own across the cluster"
                              % (name, node, self.node)))
        for section, other, message in found:
            if (section, other) in self._told:
                continue
            self._told.add((section, other))
            self.clashes.append((section, message))
            log.error("cluster: %s", message)
            self.clashed.set()

    def stop(self):
        self.stopping.set()

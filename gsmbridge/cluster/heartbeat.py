"""Heartbeats: every node tells the others every few seconds that it lives and what it has.

Best effort by design: a heartbeat is sent without a confirm, as a transient message, to a
fanout exchange (RabbitMQ) or a pub/sub channel (Redis); each listener has a queue of its own
that dies with it, where a heartbeat older than topology.HEARTBEAT_TTL_MS expires. A lost
heartbeat costs nothing: the next one says the same. `Roster` turns what was heard into the
cluster's view: a node unheard for `down_after` seconds (60) is down. Ages are measured on the
listener's own clock, from when a heartbeat arrived, so clocks that differ between hosts do not
matter.

A heartbeat is a JSON object with ``node`` (the sender), ``boot`` (random per start of the
sender, so a restart is visible), ``seq`` (counts up within a boot), ``sent_at`` (the sender's
wall clock, for display only) and whatever the node reports (its modems, their routes and
whether each can send).
"""

import secrets
import socket
import time

import kombu

from . import envelope, topology
from .broker import Backoff, close_quietly, log


class Heartbeat:
    """Sends this node's heartbeats and hears everyone's (its own too); one thread uses it."""

    def __init__(self, broker):
        self.broker = broker
        self.boot = secrets.token_hex(6)
        self._seq = 0
        self._conn = None
        self._producer = None
        self._heard = []
        self._down = False

    def send(self, status=None):
        """Send one heartbeat carrying `status` (a dict); False if the broker is unreachable."""
        self._seq += 1
        body = dict(status or {}, node=self.broker.node, boot=self.boot, seq=self._seq,
                    sent_at=round(time.time(), 3))
        data = envelope.encode(body, key="node", max_body=self.broker.max_body)
        try:
            self._open(time.monotonic() + self.broker.timeout)
            extra = {}
            if self.broker.transport == "amqp":
                extra = {"expiration": topology.HEARTBEAT_TTL_MS / 1000.0}
            self._producer.publish(data, exchange=topology.heartbeat_exchange(), routing_key="",
                                   content_type=envelope.CONTENT_TYPE, content_encoding="utf-8",
                                   delivery_mode=1, retry=False, **extra)
        except Exception as exc:
            self._failed(exc)
            return False
        self._up()
        return True

    def receive(self, timeout=1.0):
        """The heartbeats (dicts) heard within `timeout` seconds; [] if none or the broker is
        down. Returns as soon as something was heard, after draining what is already there."""
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while True:
            try:
                self._open(deadline)
                while not self._heard and time.monotonic() < deadline:
                    try:
                        self._conn.drain_events(timeout=min(1.0, deadline - time.monotonic()))
                    except socket.timeout:
                        pass
                    if self.broker.transport == "amqp":
                        self._conn.heartbeat_check()
                while True:                       # what else is already waiting
                    try:
                        self._conn.drain_events(timeout=0)
                    except socket.timeout:
                        break
            except Exception as exc:
                self._failed(exc)
                if not backoff.sleep(deadline):
                    break
                continue
            self._up()
            break
        heard, self._heard = self._heard, []
        return heard

    def close(self):
        close_quietly(self._conn, clean=True)
        self._conn = self._producer = None

    def _open(self, deadline):
        if self._conn is not None:
            return
        conn = self._conn = self.broker.connection_before(deadline)   # closed by close()
        self.broker.connect(conn)
        channel = conn.default_channel
        topology.heartbeat_exchange()(channel).declare()
        queue = topology.heartbeat_queue(self.broker.node, self.broker.transport)
        queue(channel).declare()
        kombu.Consumer(channel, queues=[queue], no_ack=True, on_message=self._on_message,
                       auto_declare=False, accept=[envelope.CONTENT_TYPE]).consume()
        self._producer = kombu.Producer(channel, auto_declare=False)

    def _on_message(self, message):
        try:
            self._heard.append(envelope.decode(message.body, message.content_type, key="node",
                                               max_body=self.broker.max_body))
        except envelope.BadMessage as exc:
            log.debug("broker %s: an unusable heartbeat (%s)", self.broker.safe_url, exc)

    def _failed(self, exc):
        if not self.broker.transient(exc) and not self.broker.refused(exc):
            log.exception("broker %s: heartbeat failed", self.broker.safe_url)
        elif not self._down:
            log.warning("broker %s: no heartbeats (%s)", self.broker.safe_url,
                        self.broker.describe(exc))
        self._down = True
        close_quietly(self._conn, clean=False)
        self._conn = self._producer = None
        self.broker.failed()

    def _up(self):
        if self._down:
            log.info("broker %s: heartbeats again", self.broker.safe_url)
            self._down = False


class Roster:
    """The cluster as heard: each node's last heartbeat, its age, and whether it is down."""

    def __init__(self, *, down_after=60.0, clock=time.monotonic):
        self.down_after = down_after
        self.clock = clock
        self._nodes = {}

    def heard(self, beat):
        """Record one heartbeat; an older one of the same boot (late, out of order) is ignored."""
        node = beat.get("node")
        if not isinstance(node, str):
            return
        known = self._nodes.get(node)
        seq = beat.get("seq") if isinstance(beat.get("seq"), int) else 0
        if known and known["beat"].get("boot") == beat.get("boot") \
                and seq <= known["beat"].get("seq", 0):
            return
        self._nodes[node] = {"beat": beat, "at": self.clock()}

    def nodes(self):
        """{node: {"status": last heartbeat, "age": seconds since, "down": bool}}, by name."""
        now = self.clock()
        return {node: {"status": entry["beat"], "age": now - entry["at"],
                       "down": now - entry["at"] > self.down_after}
                for node, entry in sorted(self._nodes.items())}

    def up(self):
        return [node for node, entry in self.nodes().items() if not entry["down"]]

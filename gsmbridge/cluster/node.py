"""One node of a cluster: the broker, and the threads that carry messages through it.

app.py makes a ClusterNode when the config has [cluster]: it names the node in the store (so
accepted messages are placed, store/cluster.py) and runs, besides the bridge's own threads:

- Beats (beats.py): heartbeats out and in, the cluster view, the name checks;
- Relay (relay.py): the outbox and the status reports owed, to the broker;
- StatusListener (status.py): status reports of the messages this node accepted;
- one Intake per local modem (intake.py): work off the broker while the modem is free.

start() first listens to the others for a moment and refuses (NameClash, naming both nodes)
when another node has a modem of one of this node's names, or this node's name is taken: a
modem's name is its queue, a node's name is where its reports go. With the broker away at start
the check cannot be made; the node starts anyway (it must serve its own modems) and says so.
"""

import logging
import threading

from .beats import Beats
from .broker import Broker
from .intake import Intake
from .relay import Relay
from .status import StatusListener

log = logging.getLogger("gsmbridge.cluster")


class NameClash(Exception):
    """Another node has a name this node has. `section` is where the name is set."""

    def __init__(self, section, message):
        super().__init__(message)
        self.section = section
        self.message = message


class ClusterNode:
    """This node's part of the cluster. settings: a config.ClusterConfig."""

    def __init__(self, store, settings, modems):
        self.store = store
        self.settings = settings
        self.modems = list(modems)
        self.broker = Broker(settings.broker, node=settings.node, timeout=settings.timeout,
                             visibility_timeout=settings.visibility_timeout,
                             queue_type=settings.queue_type)
        self.node = self.broker.node
        store.set_cluster(self.node, down_after=settings.down_after)
        self.stopping = threading.Event()
        self.beats = Beats(store, self.broker, self.modems, stopping=self.stopping,
                           interval=settings.heartbeat_interval)
        self.relay = Relay(store, self.broker, stopping=self.stopping,
                           local_after=settings.local_after)
        self.status = StatusListener(store, self.broker, stopping=self.stopping)
        self.intakes = [Intake(store, self.broker, name, stopping=self.stopping)
                        for name in self.modems]
        self._started = []

    @property
    def settle(self):
        """How long start() listens before it trusts that no name clashes."""
        return min(self.settings.heartbeat_interval, 2.0) + 1.0

    def start(self):
        """Listen, check the names, then start taking and relaying. Raises NameClash."""
        log.info("cluster: node %s on %s (%s queues)", self.node, self.broker.safe_url,
                 self.settings.queue_type if self.broker.transport == "amqp" else "redis")
        self._start(self.beats)
        self.beats.clashed.wait(self.settle)
        if self.beats.clashes:
            section, message = self.beats.clashes[0]
            self.beats.leaving = "refused"
            self.stop()
            raise NameClash(section, message)
        if not self.beats.heard_self.is_set():
            log.warning("cluster: the broker %s does not answer yet: starting without checking "
                        "that this node's names are its own", self.broker.safe_url)
        for thread in (self.relay, self.status, *self.intakes):
            self._start(thread)

    def _start(self, thread):
        thread.start()
        self._started.append(thread)

    def stop(self, timeout=10.0):
        """Stop the threads; what they hold stays in the store (and the broker)."""
        self.stopping.set()
        self.store.notify()
        for thread in self._started:
            thread.join(timeout)

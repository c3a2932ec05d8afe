"""Taking work off the broker for one local modem, only while that modem is free.

One thread per modem of this node. It never touches the modem: it commits what it takes to the
store, and the modem's worker finds it there as it finds any queued message. That keeps the
worker free of the broker, and keeps "free first" true: the thread is subscribed (Consumer.take)
only while its modem can send (up, registered, reporting, under its caps) and has nothing to do
(nothing queued for it, nothing being sent by it: store.modem_free). It then takes one message,
commits it, acknowledges it, and waits until the modem is free again. So a message on the
broker always goes to a modem that is free at that moment, wherever it is, and a busy, capped,
down or unregistered modem takes nothing.

On RabbitMQ a modem that is sending its last message may take the next one, as a consumer of
low priority (x-priority): RabbitMQ hands a message to a free modem whenever one is subscribed,
and to a sending one only when every modem that listens is busy. So the next message is in the
store when the modem is done, and the broker's round trips are off the modem's path, while a
free modem still comes first. Redis has no consumer priorities: there a modem takes only when
free.

It listens on the modem's own queue (messages pinned to it), the queues of the cluster's routes
that name it (recomputed as heartbeats tell of other nodes' modems and routes), and the free
queue. A message from the modem's own queue is committed pinned to it; the others unpinned, so
any local modem may send it.

The commit comes before the acknowledgement: a node killed after the commit sends the message
when it comes back (from its store) and the broker does not hand it to anyone else; a node
killed before it loses nothing (the broker hands the message out again). An id the store
already holds is a repeat and is dropped (acknowledged, not sent again).
"""

import logging
import threading

from gsmbridge.store import StoreError

from . import envelope, topology
from .broker import BrokerError
from .consumer import Consumer

log = logging.getLogger("gsmbridge.cluster")

#: how long one take() waits for a message while the modem is free; and while it is sending
#: (then it looks again soon: the modem may be free by then, and come first)
TAKE_WAIT = 0.5
NEXT_WAIT = 0.2
#: consumer priorities (RabbitMQ): a free modem's subscription, a sending one's
FREE_PRIORITY, NEXT_PRIORITY = 10, 0
#: how long the thread sleeps while the modem cannot send (the store's commits wake it
#: sooner), and while a message waits for it here (its worker claims it without a word)
IDLE_WAIT = 0.5
BUSY_WAIT = 0.02


class Intake(threading.Thread):
    """Takes work for one local modem (see the module docstring)."""

    def __init__(self, store, broker, modem, *, stopping):
        super().__init__(name="cluster-intake-%s" % modem, daemon=True)
        self.store = store
        self.broker = broker
        self.modem = modem
        self.stopping = stopping
        self.own_queue = topology.modem_queue(modem)
        self.consumer = None
        self.taken = 0
        self.repeats = 0
        #: take the next message while sending one (only where the broker lets a free modem
        #: come first)
        self.take_next = broker.transport == "amqp"

    def queues(self):
        routes = [route for route in self.store.cluster_route_values()
                  if self.modem in route.split(",")]
        return [self.own_queue, *(topology.route_queue(r) for r in routes), topology.FREE_QUEUE]

    def run(self):
        failures = 0
        while not self.stopping.is_set():
            try:
                queues = self.queues()
                if self.consumer is None or self.consumer.queues != queues:
                    self._close()
                    self.consumer = Consumer(self.broker, queues)
                room = self.store.modem_room(self.modem)
                if room == "free":
                    self.consumer.take(self.commit, timeout=TAKE_WAIT, priority=FREE_PRIORITY)
                elif room == "next" and self.take_next:
                    self.consumer.take(self.commit, timeout=NEXT_WAIT, priority=NEXT_PRIORITY)
                else:
                    self.store.wait(BUSY_WAIT if room == "busy" and self.take_next
                                    else IDLE_WAIT)
                failures = 0
            except (StoreError, BrokerError) as exc:
                failures += 1
                log.error("modem=%s cluster intake: %s; trying again", self.modem, exc)
                self.stopping.wait(min(10.0, 0.5 * failures))
            except Exception:
                failures += 1
                log.exception("modem=%s cluster intake failed; trying again", self.modem)
                self.stopping.wait(min(10.0, 0.5 * failures))
        self._close()

    def commit(self, delivery):
        """The handler: commit to the store (the broker is acknowledged once this returns)."""
        pinned = self.modem if delivery.queue == self.own_queue else None
        try:
            outcome = self.store.take_relayed(delivery.body, modem=pinned)
        except ValueError as exc:
            raise envelope.BadMessage(str(exc)) from None
        fields = {"msg_id": delivery.id, "modem": self.modem}
        if outcome == "repeat":
            self.repeats += 1
            log.info("id=%s from %s again (%s): held already, dropped", delivery.id,
                     delivery.origin, delivery.queue, extra=fields)
        else:
            self.taken += 1
            log.info("id=%s taken from %s for modem %s (%s)%s", delivery.id, delivery.queue,
                     self.modem, delivery.origin,
                     ", this node's own" if outcome == "adopted" else "", extra=fields)

    def stop(self):
        self.stopping.set()

    def _close(self):
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None

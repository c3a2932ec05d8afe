"""Status reports coming back: what other nodes did with the messages this node accepted.

One thread per node takes the reports off ``gsmbridge.status.<this node>`` and commits each to
the store (store.apply_cluster_report) before acknowledging it: the message's status, the node
and modem that sent it, and the delivery-report callbacks its caller asked for, which this node
makes (it holds the dlr-url, and it is the node the caller talks to). A report older than one
applied is dropped. The queue is durable: reports wait there while this node is down.
"""

import logging
import threading

from gsmbridge.store import StoreError

from . import envelope, topology
from .broker import BrokerError
from .consumer import Consumer

log = logging.getLogger("gsmbridge.cluster")

#: how long one take() waits for a report
TAKE_WAIT = 1.0


class StatusListener(threading.Thread):
    """Applies the status reports addressed to this node (see the module docstring)."""

    def __init__(self, store, broker, *, stopping):
        super().__init__(name="cluster-status", daemon=True)
        self.store = store
        self.broker = broker
        self.stopping = stopping
        self.consumer = Consumer(broker, [topology.status_queue(broker.node)])
        self.applied = 0

    def run(self):
        failures = 0
        while not self.stopping.is_set():
            try:
                self.consumer.take(self.apply, timeout=TAKE_WAIT)
                failures = 0
            except (StoreError, BrokerError) as exc:
                failures += 1
                log.error("cluster status reports: %s; trying again", exc)
                self.stopping.wait(min(10.0, 0.5 * failures))
            except Exception:
                failures += 1
                log.exception("cluster status reports failed; trying again")
                self.stopping.wait(min(10.0, 0.5 * failures))
        self.consumer.close()

    def apply(self, delivery):
        try:
            applied = self.store.apply_cluster_report(delivery.body)
        except ValueError as exc:
            raise envelope.BadMessage(str(exc)) from None
        if applied:
            self.applied += 1
            body = delivery.body
            log.info("id=%s %s by modem %s of node %s", delivery.id, body.get("status"),
                     body.get("modem") or "-", body.get("node"),
                     extra={"msg_id": delivery.id})

    def stop(self):
        self.stopping.set()

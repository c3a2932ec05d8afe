"""Status reports coming back: what other nodes did with the messages this node accepted.

One thread per node takes the reports off ``gsmbridge.status.<this node>`` and commits them to
the store (store.apply_cluster_reports, a batch in one transaction) before acknowledging them:
each message's status, the node and modem that sent it, and the delivery-report callbacks its
caller asked for, which this node makes (it holds the dlr-url, and it is the node the caller
talks to). A report older than one applied is dropped. The queue is durable: reports wait
there while this node is down. Reports are small and many, so they are taken in batches
(Consumer.take_batch), not one at a time as work is.
"""

import logging
import threading

from gsmbridge.store import StoreError

from . import topology
from .broker import BrokerError
from .consumer import Consumer

log = logging.getLogger("gsmbridge.cluster")

#: how long one take waits for a report, and how many it takes at once
TAKE_WAIT = 1.0
BATCH = 100


class StatusListener(threading.Thread):
    """Applies the status reports addressed to this node (see the module docstring)."""

    def __init__(self, store, broker, *, stopping):
        super().__init__(name="cluster-status", daemon=True)
        self.store = store
        self.broker = broker
        self.stopping = stopping
        self.consumer = Consumer(broker, [topology.status_queue(broker.node)], prefetch=BATCH)
        self.applied = 0

    def run(self):
        failures = 0
        while not self.stopping.is_set():
            try:
                self.consumer.take_batch(self.apply, timeout=TAKE_WAIT)
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

    def apply(self, deliveries):
        reports = []
        for delivery in deliveries:        # a message holds one report, or several
            body = delivery.body
            many = body.get("reports")
            reports.extend(many if isinstance(many, list) else [body])
        results = self.store.apply_cluster_reports(reports)
        for report, applied in zip(reports, results):
            if applied is None:
                log.warning("a status report from %s is unusable; dropped",
                            deliveries[0].origin)
            elif applied:
                self.applied += 1
                log.info("id=%s %s by modem %s of node %s", report.get("id"),
                         report.get("status"), report.get("modem") or "-", report.get("node"),
                         extra={"msg_id": report.get("id")})

    def stop(self):
        self.stopping.set()

"""Publishing that returns only once the broker has the message.

RabbitMQ: the channel is in confirm mode (kombu's ``confirm_publish``); a message is persistent
(delivery mode 2) and goes to a durable quorum queue, so the broker's confirm means it is on
disk on a majority of its nodes. Redis: the push is one command whose answer comes after Redis
wrote it, and with ``appendfsync always`` after it was fsynced to the append-only file.

When the broker is down, or a confirm does not come, the connection is dropped and the message
sent again on a new one until the deadline; then `BrokerUnavailable`. A message whose confirm
was lost may so reach the queue twice: the receiving node drops the repeat by its id. The queue
is declared before the first message to it on each connection, so a message is never routed
nowhere (RabbitMQ's ``mandatory`` flag would turn that into an error too).
"""

import threading
import time

import kombu

from . import envelope, redistake, topology
from .broker import Backoff, BrokerError, BrokerUnavailable, NoTimeLeft, close_quietly, log


class Publisher:
    """Publishes work and status messages for one node; safe to share between threads (one
    message at a time goes out)."""

    def __init__(self, broker):
        self.broker = broker
        self._conn = None
        self._producer = None
        self._declared = set()
        self._lock = threading.Lock()
        self._down_since = None

    def publish(self, queue, body, *, timeout=None):
        """Put `body` (a dict with an "id") on `queue`; returns once the broker confirmed it.

        Raises BadMessage for a body that is not a usable message, BrokerUnavailable when the
        broker did not take it within `timeout` seconds (the broker's default timeout if None),
        BrokerError when it refused it for good."""
        data = envelope.encode(body, max_body=self.broker.max_body)
        timeout = self.broker.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        last = None
        with self._lock:
            while True:
                try:
                    self._publish_once(queue, data, body["id"], deadline)
                except BrokerError:
                    raise
                except Exception as exc:
                    self._drop()
                    if self.broker.refused(exc):
                        raise BrokerError("%s refused the message for %s: %s"
                                          % (self.broker.safe_url, queue,
                                             self.broker.describe(exc))) from None
                    if not self.broker.transient(exc):
                        raise
                    if not isinstance(exc, NoTimeLeft) or last is None:
                        last = exc
                    self._went_down(last)
                    if not backoff.sleep(deadline):
                        raise BrokerUnavailable(
                            "%s did not take the message for %s within %.1f s (%s)"
                            % (self.broker.safe_url, queue, timeout,
                               self.broker.describe(last))) from None
                else:
                    self._came_back()
                    return

    def close(self):
        with self._lock:
            close_quietly(self._conn, clean=True)
            self._conn = self._producer = None
            self._declared.clear()

    # -- one attempt ----------------------------------------------------------------------

    def _publish_once(self, queue, data, message_id, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoTimeLeft()
        if self._conn is None:
            conn = self.broker.connection(confirm=True, heartbeat=0, timeout=left)
            self._conn = conn
            self.broker.connect(conn)
            self._producer = kombu.Producer(conn.default_channel, exchange=topology.exchange(),
                                            auto_declare=False)
            self._declared.clear()
        channel = self._producer.channel
        if queue not in self._declared:
            if not self._declared:
                topology.exchange()(channel).declare()
                if self.broker.transport == "amqp":
                    # where dead letters go must exist before a work queue points at it
                    topology.work_queue(topology.DEAD_QUEUE, "amqp",
                                        self.broker.queue_type)(channel).declare()
            topology.work_queue(queue, self.broker.transport,
                                self.broker.queue_type)(channel).declare()
            self._declared.add(queue)
        left = max(0.05, deadline - time.monotonic())
        extra = {}
        if self.broker.transport == "amqp":
            extra = dict(mandatory=True, timeout=left, confirm_timeout=left)
        self._producer.publish(
            data, routing_key=queue, content_type=envelope.CONTENT_TYPE,
            content_encoding="utf-8", delivery_mode=2, message_id=message_id,
            headers={"origin": self.broker.node}, retry=False, **extra)
        if self.broker.transport == "redis":
            # wake the consumers waiting for this queue (redistake.py); only a wake-up: they
            # look at their queues every half second anyway
            redistake.ring(channel.client, queue)

    # -- connection state -----------------------------------------------------------------

    def _drop(self):
        close_quietly(self._conn, clean=False)
        self._conn = self._producer = None
        self._declared.clear()
        self.broker.failed()

    def _went_down(self, exc):
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("broker %s: cannot publish (%s); retrying", self.broker.safe_url,
                        self.broker.describe(exc))

    def _came_back(self):
        if self._down_since is not None:
            log.info("broker %s: publishing again after %.1f s", self.broker.safe_url,
                     time.monotonic() - self._down_since)
            self._down_since = None

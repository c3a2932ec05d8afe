"""Taking work off the broker: one message at a time, for a modem that is free now.

A modem's worker calls `Consumer.take(handler, timeout)` when it can send: only then is it
subscribed to its queues (its pinned queue, its routes' queues, the free queue), with a
prefetch of 1, and it unsubscribes as soon as a message came. Between two calls it holds
nothing and the broker does not count it as a consumer, so a message always goes to a modem
that is free at that moment ("free first"), and a slow modem takes fewer.

`handler(delivery)` runs before the acknowledgement: the caller commits the message to its own
store there (dropping an id it already holds), and the message is acknowledged only once the
handler returned. If the handler raises, the message goes back to the queue (and the exception
on to the caller). If the node dies first, the broker hands the message out again: RabbitMQ at
once (the connection closed), Redis once the Broker's visibility_timeout has passed. That is
at-least-once; the repeat of an id is dropped by the store that already holds it.

A message that is not a usable gsmbridge message (envelope.py) never reaches the handler: it
goes to the ``gsmbridge.dead`` queue (RabbitMQ dead-letters it; on Redis a copy is pushed there
before the original is acknowledged).

Redis detail: kombu consumes from Redis with BRPOP, and a message popped by a BRPOP is only
recorded as unacknowledged once its reply has been read. So that no popped message waits in a
socket while the caller is busy elsewhere (and is lost if the node dies then), `take` does not
return while a BRPOP of its own is pending: it may return up to the Broker's brpop_timeout
after its own timeout, with a message that arrived in that moment. And kombu hands out again
the messages of dead consumers from its event loop, which a worker thread does not run: `take`
does it while it waits.
"""

import socket
import time

import kombu

from . import envelope, topology
from .broker import Backoff, BrokerError, NoTimeLeft, close_quietly, log


class Delivery:
    """A message handed to a handler: `body` (the dict), `id`, the `queue` it came from, whether
    the broker had handed it out before (`redelivered`) and how often if it knows
    (`redeliveries`: RabbitMQ quorum queues count, Redis does not), the `origin` node."""

    __slots__ = ("queue", "body", "id", "origin", "redelivered", "redeliveries")

    def __init__(self, queue, body, *, origin=None, redelivered=False, redeliveries=None):
        self.queue = queue
        self.body = body
        self.id = body["id"]
        self.origin = origin
        self.redelivered = bool(redelivered or redeliveries)
        self.redeliveries = redeliveries

    def __repr__(self):
        return "<Delivery %s from %s on %s%s>" % (self.id, self.origin, self.queue,
                                                 " (again)" if self.redelivered else "")


class Consumer:
    """Takes messages from `queues` (names from topology) for one worker thread."""

    def __init__(self, broker, queues):
        if isinstance(queues, str):
            queues = [queues]
        self.broker = broker
        self.queues = list(dict.fromkeys(queues))
        if not self.queues:
            raise ValueError("a consumer needs at least one queue")
        self._conn = None
        self._consumer = None
        self._consuming = False
        self._inbox = []
        self._down_since = None
        self._restored_at = 0.0

    @property
    def connected(self):
        return self._conn is not None

    def take(self, handler, timeout=1.0):
        """Wait up to `timeout` seconds for a message, run `handler(delivery)`, acknowledge it.

        Returns how many messages were handled: 0 when none came (or the broker is down: the
        Consumer keeps trying to reconnect until the timeout), usually 1; more only when
        messages of several queues arrived at the same instant (each is handled and
        acknowledged in turn). Raises what the handler raised (that message and any not yet
        handled go back to their queues) and BrokerError when the broker refuses for good."""
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while True:
            was_connected = self._conn is not None
            try:
                self._open(deadline)
                self._subscribe()
                self._wait(deadline)
                self._unsubscribe()
            except Exception as exc:
                if self.broker.refused(exc):
                    self._drop()
                    raise BrokerError("%s refused %s: %s" % (
                        self.broker.safe_url, ", ".join(self.queues),
                        self.broker.describe(exc))) from None
                if not self.broker.transient(exc):
                    self._drop()
                    raise
                self._lost(exc, was_connected)
                if not backoff.sleep(deadline):
                    return 0
                continue
            self._came_back()
            return self._handle(handler)

    def close(self):
        """Unsubscribe and close (on Redis, unacknowledged messages go back at once)."""
        if self._conn is not None:
            try:
                self._unsubscribe()
            except Exception:
                pass
        self._give_back(self._inbox)
        self._inbox.clear()
        close_quietly(self._conn, clean=True)
        self._conn = self._consumer = None
        self._consuming = False

    # -- the connection -------------------------------------------------------------------

    def _open(self, deadline):
        if self._conn is not None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoTimeLeft()
        conn = self.broker.connection(timeout=left)
        self._conn = conn
        self.broker.connect(conn)
        channel = conn.channel()
        transport = self.broker.transport
        topology.exchange()(channel).declare()
        topology.work_queue(topology.DEAD_QUEUE, transport,
                            self.broker.queue_type)(channel).declare()
        queues = [topology.work_queue(name, transport, self.broker.queue_type)
                  for name in self.queues]
        for queue in queues:
            queue(channel).declare()
        self._consumer = kombu.Consumer(channel, queues=queues, prefetch_count=1,
                                        on_message=self._inbox.append, auto_declare=False,
                                        accept=[envelope.CONTENT_TYPE])
        self._consuming = False

    def _subscribe(self):
        if not self._consuming:
            self._consumer.consume()
            self._consuming = True

    def _wait(self, deadline):
        conn = self._conn
        while not self._inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                conn.drain_events(timeout=min(left, 1.0))
            except socket.timeout:
                pass
            if self.broker.transport == "amqp":
                conn.heartbeat_check()
            else:
                self._restore_due()
        if self.broker.transport == "redis" and not self._inbox:
            self._settle()

    def _restore_due(self):
        """Redis: hand out again what a dead consumer took and never acknowledged, once the
        visibility timeout has passed (kombu does it in an event loop we do not run)."""
        now = time.monotonic()
        if now - self._restored_at < min(1.0, self.broker.visibility_timeout / 4):
            return
        self._restored_at = now
        self._consumer.channel.qos.restore_visible(num=100, interval=1)

    def _settle(self):
        """Redis: read the reply of our BRPOP still pending, still subscribed, so that a message
        it brings is handled now (see the module's docstring). A drain with timeout 0 reads what
        is there without sending a new BRPOP after an empty reply."""
        channel = self._consumer.channel
        if not hasattr(channel, "_in_poll"):     # a kombu that works otherwise: nothing to do
            return
        limit = time.monotonic() + self.broker.brpop_timeout + 2.0
        while channel._in_poll and not self._inbox and time.monotonic() < limit:
            try:
                self._conn.drain_events(timeout=0)
            except socket.timeout:
                time.sleep(0.01)

    def _unsubscribe(self):
        """Stop the broker handing us more; on RabbitMQ, what it handed meanwhile lands in the
        inbox (the cancel's answer comes after it)."""
        if not self._consuming:
            return
        self._consuming = False
        self._consumer.cancel()

    def _drop(self):
        """Forget a broken connection; what it held unacknowledged the broker hands out again."""
        close_quietly(self._conn, clean=False)
        self._conn = self._consumer = None
        self._consuming = False
        self._inbox.clear()
        self.broker.failed()

    def _lost(self, exc, was_connected):
        self._drop()
        if self._down_since is None:
            self._down_since = time.monotonic()
            if was_connected:
                log.info("broker %s: lost the connection for %s (%s); reconnecting",
                         self.broker.safe_url, ", ".join(self.queues), self.broker.describe(exc))
            else:
                log.warning("broker %s: cannot consume %s (%s); retrying",
                            self.broker.safe_url, ", ".join(self.queues),
                            self.broker.describe(exc))

    def _came_back(self):
        if self._down_since is not None:
            log.info("broker %s: consuming %s again after %.1f s", self.broker.safe_url,
                     ", ".join(self.queues), time.monotonic() - self._down_since)
            self._down_since = None

    # -- the messages ---------------------------------------------------------------------

    def _handle(self, handler):
        handled = 0
        while self._inbox:
            message = self._inbox.pop(0)
            queue = (message.delivery_info or {}).get("routing_key") or "?"
            try:
                body = envelope.decode(message.body, message.content_type,
                                       max_body=self.broker.max_body)
            except envelope.BadMessage as exc:
                self._bury(message, queue, exc)
                continue
            headers = message.headers or {}
            count = headers.get("x-delivery-count")
            delivery = Delivery(
                queue, body, origin=headers.get("origin"),
                redelivered=(message.delivery_info or {}).get("redelivered"),
                redeliveries=count if isinstance(count, int) else None)
            try:
                handler(delivery)
            except BaseException:
                self._give_back([message] + self._inbox)
                self._inbox.clear()
                raise
            self._settle_message(message.ack, "acknowledge", delivery.id)
            handled += 1
        return handled

    def _give_back(self, messages):
        for message in messages:
            self._settle_message(lambda m=message: m.requeue(), "give back", None)

    def _bury(self, message, queue, reason):
        log.warning("broker %s: a message of %d bytes on %s is unusable (%s); moved to %s",
                    self.broker.safe_url, len(message.body or b""), queue, reason,
                    topology.DEAD_QUEUE)
        if self.broker.transport == "amqp":
            self._settle_message(lambda: message.reject(requeue=False), "dead-letter", None)
            return
        try:
            producer = kombu.Producer(self._consumer.channel, exchange=topology.exchange(),
                                      auto_declare=False)
            body = message.body
            producer.publish(body if isinstance(body, bytes) else str(body).encode(),
                             routing_key=topology.DEAD_QUEUE,
                             content_type=message.content_type or "application/octet-stream",
                             content_encoding=message.content_encoding or "binary",
                             headers={"x-first-queue": queue, "x-reason": str(reason)},
                             delivery_mode=2, retry=False)
        except Exception as exc:
            # not acknowledged: it comes back, and is tried again
            log.warning("broker %s: could not keep the unusable message (%s)",
                        self.broker.safe_url, self.broker.describe(exc))
            self._drop()
            return
        self._settle_message(message.ack, "acknowledge", None)

    def _settle_message(self, action, what, message_id):
        try:
            action()
        except Exception as exc:
            # the broker hands the message out again; the store that has it drops the repeat
            log.warning("broker %s: could not %s message %s (%s); it will come again",
                        self.broker.safe_url, what, message_id or "", self.broker.describe(exc))
            self._drop()

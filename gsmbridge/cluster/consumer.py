"""Taking work off the broker: one message at a time, for a modem that is free now.

A modem's intake calls `Consumer.take(handler, timeout)` when the modem can send: only then is
it subscribed to its queues (its pinned queue, its routes' queues, the free queue), with a
prefetch of 1, and it unsubscribes as soon as a message came. Between two calls it holds
nothing and the broker does not count it as a consumer, so a message always goes to a modem
that is free at that moment ("free first"), and a slow modem takes fewer.

`handler(delivery)` runs before the acknowledgement: the caller commits the message to its own
store there (dropping an id it already holds), and the message is acknowledged only once the
handler returned. If the handler raises, the message goes back to the queue (and the exception
on to the caller), unless it raises BadMessage: then the message is unusable and goes where
unusable messages go (below). If the node dies first, the broker hands the message out again:
RabbitMQ at once (the connection closed), Redis once the Broker's visibility_timeout has
passed. That is at-least-once; the repeat of an id is dropped by the store that already holds
it.

A message that is not a usable gsmbridge message (envelope.py) never reaches the handler: it
goes to the ``gsmbridge.dead`` queue (RabbitMQ dead-letters it; on Redis it is moved there).

RabbitMQ is consumed through kombu (basic.consume, prefetch, basic.cancel). Redis is not taken
with kombu's BRPOP, which can hand a message to a consumer that is dying: redistake.py moves
each message atomically into the consumer's own list instead (the queues and the messages on
them stay kombu's, as kombu's Publisher pushes them).
"""

import socket
import time

import kombu

from . import envelope, topology
from .broker import Backoff, BrokerError, NoTimeLeft, close_quietly, log
from .redistake import RedisTaker


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
    """Takes messages from `queues` (names from topology) for one worker thread.

    prefetch: how many messages the broker may hand over at once: 1 for work ("free first"),
    more for a reader that takes whatever is there in batches (`take_batch`)."""

    def __init__(self, broker, queues, *, prefetch=1):
        if isinstance(queues, str):
            queues = [queues]
        self.prefetch = max(1, int(prefetch))
        self._arguments = None          # the consumer arguments of the next subscription
        self.broker = broker
        self.queues = list(dict.fromkeys(queues))
        if not self.queues:
            raise ValueError("a consumer needs at least one queue")
        self._conn = None
        self._consumer = None
        self._consuming = False
        self._inbox = []
        self._down_since = None
        self._taker = None              # Redis: the atomic taking (redistake.py)

    @property
    def connected(self):
        return self._conn is not None or (self._taker is not None and self._taker.connected)

    def take(self, handler, timeout=1.0, *, priority=None):
        """Wait up to `timeout` seconds for a message, run `handler(delivery)`, acknowledge it.

        Returns how many messages were handled: 0 when none came (or the broker is down: the
        Consumer keeps trying to reconnect until the timeout), usually 1; more only when
        messages of several queues arrived at the same instant (each is handled and
        acknowledged in turn). Raises what the handler raised (that message and any not yet
        handled go back to their queues) and BrokerError when the broker refuses for good.

        priority (RabbitMQ): this subscription's consumer priority (``x-priority``): while a
        consumer of higher priority is subscribed and can take a message, RabbitMQ gives it
        none. Redis has no such thing; there it is ignored."""
        self._priority(priority)
        return self._take(handler, timeout, batch=False)

    def _priority(self, priority):
        if self.broker.transport != "amqp":
            return
        arguments = None if priority is None else {"x-priority": int(priority)}
        if arguments != self._arguments:
            self._arguments = arguments
            if self._consumer is not None:
                for queue in self._consumer.queues:
                    queue.consumer_arguments = arguments

    def take_batch(self, handler, timeout=1.0):
        """Like take(), for a reader of many small messages (status reports): wait up to
        `timeout` for a message, gather what else is there (up to `prefetch`), and call
        `handler(deliveries)` once with the list; they are acknowledged once it returned. Returns
        how many were handled. A message the handler finds unusable it leaves out of what it
        commits; one that is not a gsmbridge message never reaches it."""
        return self._take(handler, timeout, batch=True)

    def _take(self, handler, timeout, *, batch):
        deadline = time.monotonic() + timeout
        backoff = Backoff()
        while True:
            was_connected = self.connected
            try:
                if self.broker.transport == "redis":
                    self._take_redis(deadline, batch)
                else:
                    self._open(deadline)
                    self._subscribe()
                    self._wait(deadline)
                    if batch:
                        self._gather()
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
            return self._handle_batch(handler) if batch else self._handle(handler)

    def close(self):
        """Unsubscribe and close (unacknowledged messages go back at once)."""
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
        if self._taker is not None:
            self._taker.close(clean=True)
            self._taker = None

    # -- Redis ------------------------------------------------------------------------------

    def _take_redis(self, deadline, batch):
        if self._taker is None:
            self._taker = RedisTaker(self.broker, self.queues, dead_queue=topology.DEAD_QUEUE)
        left = deadline - time.monotonic()
        if not self._taker.connected:
            if left <= 0:
                raise NoTimeLeft()
            self._taker.open(left, declare=lambda: self._declare_redis(left))
        items = self._taker.take(deadline, limit=self.prefetch if batch else 1)
        self._inbox.extend(_RedisMessage(self._taker, item) for item in items)

    def _declare_redis(self, timeout):
        """The queues and their bindings, as kombu keeps them in Redis: so that a message
        published to the exchange reaches them whoever publishes it."""
        conn = self.broker.connect(self.broker.connection(timeout=timeout))
        try:
            channel = conn.default_channel
            topology.exchange()(channel).declare()
            for name in [topology.DEAD_QUEUE, *self.queues]:
                topology.work_queue(name, "redis")(channel).declare()
        finally:
            close_quietly(conn, clean=True)

    # -- the connection -------------------------------------------------------------------

    def _open(self, deadline):
        if self._conn is not None:
            return
        conn = self._conn = self.broker.connection_before(deadline)   # closed by close()
        self.broker.connect(conn)
        channel = conn.channel()
        transport = self.broker.transport
        topology.exchange()(channel).declare()
        topology.work_queue(topology.DEAD_QUEUE, transport,
                            self.broker.queue_type)(channel).declare()
        queues = [topology.work_queue(name, transport, self.broker.queue_type)
                  for name in self.queues]
        for queue in queues:
            queue.consumer_arguments = self._arguments
        for queue in queues:
            queue(channel).declare()
        self._consumer = kombu.Consumer(channel, queues=queues, prefetch_count=self.prefetch,
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
            conn.heartbeat_check()

    def _gather(self):
        """With a message in, take what else the broker has ready, up to prefetch."""
        limit = time.monotonic() + 0.05
        while self._inbox and len(self._inbox) < self.prefetch and time.monotonic() < limit:
            before = len(self._inbox)
            try:
                self._conn.drain_events(timeout=0.005)
            except socket.timeout:
                pass
            if len(self._inbox) == before:
                break

    def _unsubscribe(self):
        """Stop the broker handing us more; on RabbitMQ, what it handed meanwhile lands in the
        inbox (the cancel's answer comes after it)."""
        if not self._consuming:
            return
        self._consuming = False
        self._consumer.cancel()

    def _drop(self):
        """Forget a broken connection; what it held unacknowledged the broker hands out again
        (Redis: once this consumer's key has expired)."""
        close_quietly(self._conn, clean=False)
        self._conn = self._consumer = None
        self._consuming = False
        self._inbox.clear()
        if self._taker is not None:
            self._taker.close(clean=False)
            self._taker = None
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

    def _delivery(self, message):
        """A Delivery for a message of the inbox, or None when it is unusable (then buried)."""
        queue = _queue_of(message)
        try:
            body = envelope.decode(message.body, message.content_type,
                                   max_body=self.broker.max_body)
        except envelope.BadMessage as exc:
            self._bury(message, queue, exc)
            return None
        headers = message.headers or {}
        count = headers.get("x-delivery-count")
        return Delivery(queue, body, origin=headers.get("origin"),
                        redelivered=(message.delivery_info or {}).get("redelivered"),
                        redeliveries=count if isinstance(count, int) else None)

    def _handle(self, handler):
        handled = 0
        while self._inbox:
            message = self._inbox.pop(0)
            delivery = self._delivery(message)
            if delivery is None:
                continue
            try:
                handler(delivery)
            except envelope.BadMessage as exc:
                # the handler found it unusable (a field no gsmbridge sends): kept aside, not
                # handed out again and again
                self._bury(message, delivery.queue, exc)
                continue
            except BaseException:
                self._give_back([message] + self._inbox)
                self._inbox.clear()
                raise
            self._settle_message(message.ack, "acknowledge", delivery.id)
            handled += 1
        return handled

    def _handle_batch(self, handler):
        messages, deliveries = [], []
        while self._inbox:
            message = self._inbox.pop(0)
            delivery = self._delivery(message)
            if delivery is not None:
                messages.append(message)
                deliveries.append(delivery)
        if not deliveries:
            return 0
        try:
            handler(deliveries)
        except BaseException:
            self._give_back(messages)
            raise
        for message, delivery in zip(messages, deliveries):
            self._settle_message(message.ack, "acknowledge", delivery.id)
        return len(deliveries)

    def _give_back(self, messages):
        for message in messages:
            self._settle_message(lambda m=message: m.requeue(), "give back", None)

    def _bury(self, message, queue, reason):
        log.warning("broker %s: a message of %d bytes on %s is unusable (%s); moved to %s",
                    self.broker.safe_url, len(message.body or b""), queue, reason,
                    topology.DEAD_QUEUE)
        if self.broker.transport == "amqp":
            self._settle_message(lambda: message.reject(requeue=False), "dead-letter", None)
        else:
            self._settle_message(message.bury, "keep aside", None)

    def _settle_message(self, action, what, message_id):
        try:
            action()
        except Exception as exc:
            # the broker hands the message out again; the store that has it drops the repeat
            log.warning("broker %s: could not %s message %s (%s); it will come again",
                        self.broker.safe_url, what, message_id or "", self.broker.describe(exc))
            self._drop()


def _queue_of(message):
    return (message.delivery_info or {}).get("routing_key") or "?"


class _RedisMessage:
    """A message taken from Redis (redistake.Item), settled the way kombu's are."""

    __slots__ = ("taker", "item", "delivery_info")

    def __init__(self, taker, item):
        self.taker = taker
        self.item = item
        self.delivery_info = {"routing_key": item.queue, "redelivered": item.redelivered}

    body = property(lambda self: self.item.body)
    content_type = property(lambda self: self.item.content_type)
    headers = property(lambda self: self.item.headers)

    def ack(self):
        self.taker.ack(self.item)

    def requeue(self):
        self.taker.give_back(self.item)

    def bury(self):
        self.taker.bury(self.item)

"""The broker a cluster shares: its URL, its connections, and what counts as "it went away".

`Broker` holds the settings (URL, this node's name, timeouts) and makes the connections; each
role is an object of its own over a Broker, with a connection of its own, used by one thread:

- `Publisher` (publisher.py) hands a message to the broker and returns only once the broker has
  it (RabbitMQ publisher confirms; Redis' answer to the push, fsynced with appendfsync always);
- `Consumer` (consumer.py) takes one message at a time, for a modem that is free, and acks it
  once the caller has committed it;
- `Heartbeat` (heartbeat.py) sends and hears the nodes' heartbeats, best effort.

Every call is bounded in time: a broker that is down or unreachable makes a call fail or come
back empty after its timeout, never hang. The URL's user and password never reach a log line
or an exception: `safe_url` is what is shown.
"""

import functools
import logging
import socket
import time

import kombu

from . import envelope, topology
from .urls import mask_url, split_urls, transport_of

log = logging.getLogger("gsmbridge.cluster")

#: Redis keys of kombu's unacknowledged-message bookkeeping. kombu's defaults ("unacked", ...)
#: are shared with every other kombu user of the same database, such as Celery: its workers
#: would hand our messages back after *their* visibility timeout, and we theirs after ours.
REDIS_KEYS = {"unacked_key": "gsmbridge.unacked",
              "unacked_index_key": "gsmbridge.unacked_index",
              "unacked_mutex_key": "gsmbridge.unacked_mutex"}


class BrokerError(Exception):
    """The broker refused something for good (a login, a queue declared differently)."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached, or did not confirm, within the time given."""


class NoTimeLeft(TimeoutError):
    """The deadline passed before an attempt could start (not the broker's fault: the last
    real error is the one to report)."""


class Backoff:
    """Waits between attempts: 50 ms doubling up to `cap`, never past a deadline."""

    def __init__(self, first=0.05, cap=2.0):
        self.first, self.cap, self.attempts = first, cap, 0

    def delay(self):
        return min(self.cap, self.first * (2 ** min(self.attempts, 16)))

    def sleep(self, deadline):
        """Sleep the next delay, cut at `deadline`; False once the deadline has passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(self.delay(), left))
        self.attempts += 1
        return True

    def reset(self):
        self.attempts = 0


class Broker:
    """The broker of a cluster, as one node sees it.

    url: ``amqp://user:pass@host:5672/vhost`` (RabbitMQ), ``redis://:pass@host:6379/0``, or a
    failover list of either joined by ";". node: this node's name. timeout: the longest any one
    call waits on the broker by default. heartbeat: AMQP heartbeat of consuming connections, so
    a broker that vanished without closing the connection is noticed. visibility_timeout
    (Redis): after this many seconds a message taken but not acknowledged (its consumer died) is
    handed out again (redistake.py); a handler must return well within it. brpop_timeout (Redis): how long one
    blocking pop waits on the server. queue_type (RabbitMQ): "quorum" or "classic", the same on
    every node (see topology.py for which and why).
    """

    def __init__(self, url, *, node, timeout=10.0, heartbeat=15, visibility_timeout=300.0,
                 brpop_timeout=0.5, queue_type="quorum", max_body=envelope.MAX_BODY):
        self.transport = transport_of(url)
        self._urls = split_urls(url)
        self.safe_url = mask_url(";".join(self._urls))
        if not isinstance(node, str) or not envelope.NODE.fullmatch(node):
            raise ValueError("node name %r must be 1 to 64 letters, digits, '_', '.' or '-'"
                             % (node,))
        if not timeout or timeout <= 0:
            raise ValueError("timeout must be positive")
        if queue_type not in topology.QUEUE_TYPES:
            raise ValueError("queue type %r: use one of %s" % (queue_type,
                                                               ", ".join(topology.QUEUE_TYPES)))
        self.queue_type = queue_type
        self.node = node
        self.timeout = float(timeout)
        self.heartbeat = heartbeat
        self.visibility_timeout = float(visibility_timeout)
        self.brpop_timeout = float(brpop_timeout)
        self.max_body = max_body
        self._next_url = 0

    def __repr__(self):
        return "<Broker %s node=%s>" % (self.safe_url, self.node)

    def connection(self, *, confirm=False, heartbeat=None, timeout=None):
        """A kombu Connection (not yet connected) to the next URL of the failover list."""
        url = self._urls[self._next_url % len(self._urls)]
        timeout = self.timeout if timeout is None else max(0.05, timeout)
        if self.transport == "amqp":
            options = {"confirm_publish": bool(confirm),
                       "read_timeout": self.timeout, "write_timeout": self.timeout}
            conn = kombu.Connection(url, connect_timeout=timeout,
                                    heartbeat=self.heartbeat if heartbeat is None else heartbeat,
                                    transport_options=options)
        else:
            options = dict(REDIS_KEYS, visibility_timeout=self.visibility_timeout,
                           socket_timeout=self.timeout, socket_connect_timeout=timeout,
                           # recover messages of a dead consumer soon after they are due
                           unacked_restore_interval=1, unacked_restore_throttle=1)
            conn = kombu.Connection(url, connect_timeout=timeout, transport_options=options)
            # how long one BRPOP blocks; the Redis transport reads it from the Transport
            # object when a channel is made, so it must be set before any channel exists
            conn.transport.brpop_timeout = self.brpop_timeout
        return conn

    def connection_before(self, deadline):
        """A new connection (not yet connected) whose connect may take the time left until
        `deadline` (time.monotonic()); NoTimeLeft when there is none."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise NoTimeLeft()
        return self.connection(timeout=left)

    @staticmethod
    def connect(conn):
        """Connect `conn` in one attempt. (kombu's Connection.connect() tries twice, 2 s apart,
        which would overrun the caller's deadline; the callers here retry on their own terms.)"""
        conn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
        return conn

    def failed(self):
        """A connection failed: the next one goes to the next URL of the failover list."""
        self._next_url += 1

    def current_url(self):
        """The URL the next connection goes to (credentials and all: never to be shown)."""
        return self._urls[self._next_url % len(self._urls)]

    @functools.cached_property
    def transient_errors(self):
        """The exceptions that mean "the broker went away, try again" (the transport's
        connection errors, a confirm or a socket that timed out, a negative confirm)."""
        template = kombu.Connection(self._urls[0])        # not connected: it only tells
        errors = (socket.timeout, OSError, TimeoutError, ConnectionError)
        errors += tuple(template.connection_errors) + tuple(template.recoverable_channel_errors)
        if self.transport == "amqp":
            from amqp.exceptions import MessageNacked, RecoverableConnectionError
            errors += (MessageNacked, RecoverableConnectionError)
        return errors

    def transient(self, exc):
        return isinstance(exc, self.transient_errors) and not self.refused(exc)

    def refused(self, exc):
        """Whether `exc` is a refusal for good (retrying the same thing cannot help): a login
        refused, a queue that exists with other arguments."""
        if self.transport == "redis":
            import redis.exceptions
            return isinstance(exc, (redis.exceptions.AuthenticationError,
                                    redis.exceptions.AuthenticationWrongNumberOfArgsError))
        import amqp.exceptions as errors
        return isinstance(exc, (errors.AccessRefused, errors.PreconditionFailed,
                                errors.NotAllowed, errors.NotFound, errors.ResourceLocked))

    def describe(self, exc):
        """A one-line, credential-free description of a broker exception."""
        text = " ".join(str(exc).split())[:300]
        return "%s: %s" % (type(exc).__name__, mask_url(text)) if text else type(exc).__name__


def close_quietly(conn, *, clean):
    """Close a connection. clean: say goodbye (a Redis channel then hands its unacknowledged
    messages back at once); else just drop the sockets, as after an error, without waiting on a
    broker that may be gone."""
    if conn is None:
        return
    try:
        if clean:
            conn.release()
        else:
            conn.collect()
    except Exception as exc:                   # closing is best effort
        log.debug("closing a broker connection: %s", type(exc).__name__)

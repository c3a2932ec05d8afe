"""The broker's layout for gsmbridge: exchange and queue names, and how each is declared.

One direct exchange, ``gsmbridge``, carries everything that must not be lost; every queue is
bound to it under its own name (a message's routing key is the queue's name):

- ``gsmbridge.modem.<modem>``: messages pinned to one modem (smsc=NAME), for its node;
- ``gsmbridge.route.<route>``: messages whose recipient matches the routes of a set of modems,
  for any of them (the route is the store's route value: the modems' names joined by ",");
- ``gsmbridge.free``: every other message, for any modem that can take work;
- ``gsmbridge.status.<node>``: status reports for the node that accepted the messages;
- ``gsmbridge.dead``: messages nobody can use (not JSON, no id, too large), kept for an operator.

Heartbeats go to a fanout exchange, ``gsmbridge.heartbeat``: each listener has a queue of its
own that dies with its connection, and a lost heartbeat costs nothing.

RabbitMQ: the work queues are **quorum queues** by default (Broker's queue_type). They are
always durable, replicated over the nodes of a RabbitMQ cluster (a three-node RabbitMQ keeps
every queue through the loss of any one node, and confirms a publish only once a majority has it
on disk), and they count redeliveries (the ``x-delivery-count`` header), which a classic queue
cannot; classic queues live on one RabbitMQ node only (their mirroring is gone in RabbitMQ 4).
Quorum queues do not do per-message priorities before RabbitMQ 4.0: priority is applied by the
node that sends (its store orders what it holds). RabbitMQ 4 gives quorum queues a default
delivery limit of 20: so that a message over it is kept rather than dropped, every work queue
dead-letters into ``gsmbridge.dead``, at least once (which RabbitMQ ties to ``x-overflow:
reject-publish``; no length limit is set, so that never refuses a publish).

``queue_type="classic"`` is for a **single-node** RabbitMQ that may crash: there, a quorum queue
written to shortly before the node was killed (kill -9, a power cut) can come back without a
leader and stay so until an operator forces an election (seen with Debian 12's RabbitMQ 3.10.8;
rabbitmq-server issue #10070, open, reports it on 3.8). Classic queues come back (see
tests/test_broker.py), and on one node they lose nothing that quorum queues would keep. Queue
arguments cannot change once a queue exists: RabbitMQ refuses a different declaration
(PRECONDITION_FAILED), so every node of a cluster must use the same queue type, and changing it
means draining and deleting the queues.

Redis (kombu's virtual transport): queues are lists and the arguments above do not apply; what
makes a message durable is the server's ``appendonly yes`` with ``appendfsync always``.
"""

import hashlib
import re
import secrets

import kombu

EXCHANGE = "gsmbridge"
HEARTBEAT_EXCHANGE = "gsmbridge.heartbeat"
FREE_QUEUE = "gsmbridge.free"
DEAD_QUEUE = "gsmbridge.dead"

#: a heartbeat older than this is worth nothing: RabbitMQ drops it from a listener's queue
HEARTBEAT_TTL_MS = 15000
#: a listener that stopped reading keeps no more than this many heartbeats
HEARTBEAT_BACKLOG = 1000

_PART = re.compile(r"[A-Za-z0-9_.,-]{1,128}")

QUEUE_TYPES = ("quorum", "classic")

WORK_ARGUMENTS = {
    "quorum": {"x-queue-type": "quorum",
               "x-dead-letter-exchange": EXCHANGE,
               "x-dead-letter-routing-key": DEAD_QUEUE,
               "x-dead-letter-strategy": "at-least-once",
               "x-overflow": "reject-publish"},
    "classic": {"x-queue-type": "classic",
                "x-dead-letter-exchange": EXCHANGE,
                "x-dead-letter-routing-key": DEAD_QUEUE},
}


def _name(prefix, part, what):
    part = str(part)
    if _PART.fullmatch(part):
        return prefix + part
    if part and len(part) > 128 and re.fullmatch(r"[A-Za-z0-9_.,-]+", part):
        # a route of many modems: a stable short name, the same on every node
        return prefix + "h-" + hashlib.sha256(part.encode()).hexdigest()[:24]
    raise ValueError("%r is not a usable %s (letters, digits, '_', '.', ',' or '-')"
                     % (part[:80], what))


def modem_queue(modem):
    return _name("gsmbridge.modem.", modem, "modem name")


def route_queue(route):
    return _name("gsmbridge.route.", route, "route")


def status_queue(node):
    return _name("gsmbridge.status.", node, "node name")


def exchange():
    return kombu.Exchange(EXCHANGE, "direct", durable=True, auto_delete=False)


def work_queue(name, transport, queue_type="quorum"):
    """The durable queue `name`, bound to the exchange under its own name."""
    arguments = None
    if transport == "amqp":
        arguments = dict(WORK_ARGUMENTS[queue_type])
        if name == DEAD_QUEUE:                     # the end of the line: no dead letters of its own
            arguments = {"x-queue-type": queue_type}
    return kombu.Queue(name, exchange(), routing_key=name, durable=True, auto_delete=False,
                       queue_arguments=arguments)


def heartbeat_exchange():
    return kombu.Exchange(HEARTBEAT_EXCHANGE, "fanout", durable=True, auto_delete=False)


def heartbeat_queue(node, transport):
    """A listener's own queue: gone with its connection (classic: a quorum queue cannot be
    exclusive), its heartbeats expiring after HEARTBEAT_TTL_MS."""
    name = "gsmbridge.heartbeat.%s.%s" % (node, secrets.token_hex(4))
    arguments = None
    if transport == "amqp":
        arguments = {"x-queue-type": "classic", "x-message-ttl": HEARTBEAT_TTL_MS,
                     "x-max-length": HEARTBEAT_BACKLOG}
    return kombu.Queue(name, heartbeat_exchange(), durable=False, exclusive=transport == "amqp",
                       auto_delete=True, queue_arguments=arguments)

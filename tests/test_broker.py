"""gsmbridge.cluster against real brokers: RabbitMQ and Redis from the Debian packages, each
started by the test module on its own ports (tests/brokers.py) and shared by its tests.

What is checked on both brokers: a message published is confirmed, taken, handed to the handler
and acknowledged once; a message taken but never acknowledged (its consumer killed, its handler
failed) comes again; a publish while the broker is down waits or fails with a clear error
(without the URL's password) and goes through once it is back; a broker killed and started again
keeps every message it confirmed; a free consumer takes more than a busy one; heartbeats reach
every listener; an unusable message ends in gsmbridge.dead, not in a handler.
"""

import collections
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import kombu
import pytest

from bridgeproc import wait_for
from brokers import RabbitMQ, rabbitmq, redis_server  # noqa: F401 (fixtures)
from gsmbridge.cluster import (DEAD_QUEUE, BadMessage, Broker, BrokerError, BrokerUnavailable,
                               Consumer, Heartbeat, Publisher, Roster, mask_url, modem_queue)
from gsmbridge.cluster import topology
from gsmbridge.cluster.urls import transport_of

BROKERS = ["rabbitmq", "redis"]
# restarting RabbitMQ costs seconds (its boot); Redis restarts in milliseconds
RESTARTING = [pytest.param("rabbitmq", marks=pytest.mark.stress), "redis"]


@pytest.fixture(params=BROKERS)
def server(request):
    """The module's server of each kind, running (a test that stopped it has started it again)."""
    s = request.getfixturevalue("rabbitmq" if request.param == "rabbitmq" else "redis_server")
    if not s.running:
        s.start()
    yield s
    if not s.running:
        s.start()


def broker_for(server, node="n1", **options):
    # Redis hands a dead consumer's message out again after the visibility timeout: short here
    options.setdefault("visibility_timeout", 1.0)
    options.setdefault("timeout", 5.0)
    return Broker(server.url, node=node, **options)


def fresh_queue():
    return modem_queue("t" + secrets.token_hex(5))


def take_until(consumer, count, timeout=15.0, handler=None):
    """Deliveries taken until `count` came or `timeout` passed."""
    got = []
    deadline = time.monotonic() + timeout

    def keep(delivery):
        if handler:
            handler(delivery)
        got.append(delivery)

    while len(got) < count and time.monotonic() < deadline:
        consumer.take(keep, timeout=min(1.0, max(0.05, deadline - time.monotonic())))
    return got


# -- publish, take, acknowledge ----------------------------------------------------------------

def test_round_trip(server):
    broker = broker_for(server)
    queue = fresh_queue()
    publisher, consumer = Publisher(broker), Consumer(broker, [queue])
    try:
        publisher.publish(queue, {"id": "m-1", "to": "+255700000001", "text": "Habari, dunia ✓"})
        got = []
        assert consumer.take(got.append, timeout=10) == 1
        (delivery,) = got
        assert delivery.id == "m-1"
        assert delivery.body == {"id": "m-1", "to": "+255700000001", "text": "Habari, dunia ✓"}
        assert delivery.origin == "n1"
        assert delivery.queue == queue
        assert not delivery.redelivered
        # acknowledged: nobody gets it again, not even a new consumer
        consumer.close()
        consumer = Consumer(broker, [queue])
        assert consumer.take(got.append, timeout=1.5) == 0
    finally:
        consumer.close()
        publisher.close()


def test_messages_of_several_queues_each_taken_once(server):
    broker = broker_for(server)
    queues = [fresh_queue(), fresh_queue()]
    publisher, consumer = Publisher(broker), Consumer(broker, queues)
    try:
        for i in range(10):
            publisher.publish(queues[i % 2], {"id": "m%d" % i})
        got = take_until(consumer, 10)
        assert sorted(d.id for d in got) == sorted("m%d" % i for i in range(10))
        assert {d.queue for d in got} == set(queues)
        assert consumer.take(got.append, timeout=1.0) == 0
    finally:
        consumer.close()
        publisher.close()


def test_a_failing_handler_puts_the_message_back(server):
    broker = broker_for(server)
    queue = fresh_queue()
    publisher, consumer = Publisher(broker), Consumer(broker, [queue])
    try:
        publisher.publish(queue, {"id": "m-1"})

        def disk_full(delivery):
            raise OSError("database or disk is full")

        with pytest.raises(OSError):
            consumer.take(disk_full, timeout=10)
        got = take_until(consumer, 1)
        assert [d.id for d in got] == ["m-1"]
        assert got[0].redelivered
    finally:
        consumer.close()
        publisher.close()


VICTIM = """
import sys, time
from gsmbridge.cluster import Broker, Consumer
broker = Broker(sys.argv[1], node="victim", visibility_timeout=1.0, timeout=5)
consumer = Consumer(broker, [sys.argv[2]])
def hold(delivery):
    print("holding", delivery.id, flush=True)
    time.sleep(120)
consumer.take(hold, timeout=30)
"""


def test_a_message_taken_by_a_consumer_killed_before_its_ack_comes_again(server):
    broker = broker_for(server)
    queue = fresh_queue()
    publisher = Publisher(broker)
    publisher.publish(queue, {"id": "m-1"})
    publisher.publish(queue, {"id": "m-2"})
    victim = subprocess.Popen([sys.executable, "-c", VICTIM, server.url, queue],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    consumer = Consumer(broker, [queue])
    try:
        line = victim.stdout.readline()
        assert line.split() == ["holding", "m-1"], victim.stderr.read()
        # the victim holds m-1 unacknowledged, so m-2 is the only message to be had
        got = take_until(consumer, 1, timeout=10)
        assert [d.id for d in got] == ["m-2"]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        got = take_until(consumer, 1, timeout=20)
        assert [d.id for d in got] == ["m-1"]
        assert got[0].redelivered
        if server.name == "rabbitmq":            # a quorum queue counts deliveries
            assert got[0].redeliveries == 1
        assert consumer.take(got.append, timeout=2.5) == 0      # and only once
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        victim.stdout.close()
        victim.stderr.close()
        consumer.close()
        publisher.close()


WAITER = """
import sys
from gsmbridge.cluster import Broker, Consumer
broker = Broker(sys.argv[1], node="waiter", visibility_timeout=1.0, timeout=5)
consumer = Consumer(broker, [sys.argv[2]])
print("waiting", flush=True)
while True:
    consumer.take(lambda d: print("took", d.id, flush=True), timeout=30)
"""


def test_a_consumer_killed_while_it_waits_takes_nothing_with_it(server):
    """A message published in the milliseconds a killed consumer takes to die reaches a live
    consumer. (kombu's BRPOP on Redis would hand it to the dying one: lost.)"""
    broker = broker_for(server)
    queue = fresh_queue()
    publisher, consumer = Publisher(broker), Consumer(broker, [queue])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    try:
        for round in range(5):
            waiter = subprocess.Popen([sys.executable, "-c", WAITER, server.url, queue],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, env=env)
            assert waiter.stdout.readline().strip() == "waiting"
            time.sleep(0.3)                   # it waits on the queue now
            os.kill(waiter.pid, signal.SIGKILL)
            publisher.publish(queue, {"id": "w-%d" % round})
            waiter.wait(10)
            waiter.stdout.close()
            got = take_until(consumer, 1, timeout=10)
            assert [d.id for d in got] == ["w-%d" % round]
    finally:
        consumer.close()
        publisher.close()


# -- the broker away ---------------------------------------------------------------------------

@pytest.mark.parametrize("server", RESTARTING, indirect=True)
def test_publish_while_the_broker_is_down(server, caplog):
    broker = broker_for(server)
    queue = fresh_queue()
    publisher, consumer = Publisher(broker), Consumer(broker, [queue])
    publisher.publish(queue, {"id": "before"})
    caplog.set_level(logging.DEBUG, logger="gsmbridge.cluster")
    server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as failure:
            publisher.publish(queue, {"id": "lost-if-not-retried"}, timeout=1.0)
        assert time.monotonic() - started < 5
        message = str(failure.value)
        assert queue in message and "did not take" in message
        assert server.password not in message and "***@127.0.0.1" in message
        # a consumer is not stuck either
        started = time.monotonic()
        assert consumer.take(lambda d: None, timeout=0.5) == 0
        assert time.monotonic() - started < 5
        assert not consumer.connected

        # a publish that may wait long enough goes through once the broker is back
        starter = threading.Thread(target=lambda: (time.sleep(0.5), server.start()))
        starter.start()
        publisher.publish(queue, {"id": "during"}, timeout=90)
    finally:
        if "starter" in locals():
            starter.join(90)
    got = take_until(consumer, 2, timeout=20)
    assert sorted(d.id for d in got) == ["before", "during"]
    consumer.close()
    publisher.close()
    assert server.password not in caplog.text
    assert "cannot publish" in caplog.text and "***@" in caplog.text


def stop_or_kill(server):
    """Redis is killed (SIGKILL): with appendfsync always, what it answered for is on disk.
    RabbitMQ is stopped in order: a single node killed may bring a quorum queue back without a
    leader (see gsmbridge/cluster/topology.py), which test_classic_queues_survive_a_killed_rabbitmq
    covers with queues of the other type."""
    if server.name == "redis":
        server.kill()
    else:
        server.stop()


def check_restart_keeps_what_was_confirmed(server, broker, go_down):
    queue = fresh_queue()
    confirmed = {"m%02d" % i for i in range(30)}
    publisher = Publisher(broker)
    for message_id in sorted(confirmed):
        publisher.publish(queue, {"id": message_id})
    consumer = Consumer(broker, [queue])
    first = take_until(consumer, 10)
    assert len(first) == 10
    go_down(server)
    server.start()
    rest = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not {d.id for d in first + rest} >= confirmed:
        consumer.take(rest.append, timeout=1.0)
    # nothing confirmed is missing; an acknowledgement is not confirmed, so what was taken just
    # before the broker went may come again (the receiving store drops the repeat)
    assert {d.id for d in first + rest} == confirmed
    assert {d.id for d in rest} >= confirmed - {d.id for d in first}
    consumer.close()
    publisher.close()


@pytest.mark.parametrize("server", RESTARTING, indirect=True)
def test_a_broker_restarted_keeps_what_it_confirmed(server):
    check_restart_keeps_what_was_confirmed(server, broker_for(server), stop_or_kill)


@pytest.mark.stress
def test_classic_queues_survive_a_killed_rabbitmq():
    """A RabbitMQ of its own: killing one would leave the module's quorum queues leaderless."""
    with RabbitMQ() as server:
        check_restart_keeps_what_was_confirmed(server, broker_for(server, queue_type="classic"),
                                               RabbitMQ.kill)


@pytest.mark.stress
@pytest.mark.parametrize("server", BROKERS, indirect=True)
def test_broker_restart_mid_stream_loses_nothing_confirmed(server):
    broker = broker_for(server)
    queue = fresh_queue()
    confirmed, taken, errors = [], [], []
    done = threading.Event()

    def publish():
        publisher = Publisher(broker)
        try:
            for i in range(150):
                publisher.publish(queue, {"id": "m%03d" % i}, timeout=120)
                confirmed.append("m%03d" % i)
                time.sleep(0.01)
        except Exception as exc:                  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            publisher.close()
            done.set()

    def consume():
        consumer = Consumer(broker, [queue])
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                consumer.take(lambda d: taken.append(d.id), timeout=0.5)
                if done.is_set() and set(taken) >= set(confirmed):
                    break
        except Exception as exc:                  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            consumer.close()

    threads = [threading.Thread(target=publish), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    wait_for(lambda: len(taken) >= 30, 30, message="30 messages taken")
    stop_or_kill(server)
    time.sleep(1.0)
    server.start()
    for t in threads:
        t.join(200)
    assert not errors
    assert len(confirmed) == 150
    assert set(taken) == set(confirmed)
    # at least once: a repeat is possible (an ack lost with the broker), a loss is not
    assert len(taken) - len(set(taken)) <= 5


# -- work sharing ------------------------------------------------------------------------------

def test_a_free_consumer_takes_more_than_a_busy_one(server):
    """Prefetch 1, taken only when free: the slow worker holds nothing while it is busy, so the
    fast one takes the rest (round robin would give each half)."""
    broker = broker_for(server)
    queue = fresh_queue()
    publisher = Publisher(broker)
    for i in range(40):
        publisher.publish(queue, {"id": "m%02d" % i})
    publisher.close()
    took = {"fast": [], "slow": []}
    errors = []

    def worker(name, busy):
        consumer = Consumer(broker, [queue])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(took["fast"]) + len(took["slow"]) < 40:
                if consumer.take(lambda d: took[name].append(d.id), timeout=0.3):
                    time.sleep(busy)             # "sending": not taking work meanwhile
        except Exception as exc:                  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            consumer.close()

    threads = [threading.Thread(target=worker, args=("fast", 0.01)),
               threading.Thread(target=worker, args=("slow", 0.4))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors
    assert sorted(took["fast"] + took["slow"]) == ["m%02d" % i for i in range(40)]
    assert len(took["fast"]) >= 3 * len(took["slow"])


# -- heartbeats --------------------------------------------------------------------------------

def test_heartbeats_reach_every_listener(server):
    nodes = ["n1", "n2", "n3"]
    beats = {node: Heartbeat(broker_for(server, node=node)) for node in nodes}
    heard = {node: set() for node in nodes}
    statuses = {}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(heard[n] != set(nodes) for n in nodes):
            for node, beat in beats.items():
                assert beat.send({"modems": [{"name": "modem-" + node, "can_send": True}]})
            for node, beat in beats.items():
                for message in beat.receive(timeout=0.2):
                    heard[node].add(message["node"])
                    statuses[message["node"]] = message
        assert heard == {node: set(nodes) for node in nodes}
        assert statuses["n2"]["modems"] == [{"name": "modem-n2", "can_send": True}]
        assert statuses["n2"]["boot"] == beats["n2"].boot and statuses["n2"]["seq"] >= 1
    finally:
        for beat in beats.values():
            beat.close()


@pytest.mark.parametrize("server", RESTARTING, indirect=True)
def test_heartbeats_without_a_broker_fail_quickly_and_resume(server):
    beat = Heartbeat(broker_for(server, timeout=1.0))
    try:
        # (on Redis the subscription starts with the first receive: send until one is heard)
        wait_for(lambda: beat.send() and beat.receive(0.2), 10, message="its own heartbeat")
        stop_or_kill(server)
        started = time.monotonic()
        assert beat.send() is False
        assert beat.receive(timeout=0.3) == []
        assert time.monotonic() - started < 5
        server.start()
        wait_for(lambda: beat.send() and any(m["node"] == "n1" for m in beat.receive(0.3)), 20)
    finally:
        beat.close()


def test_roster_marks_a_silent_node_down():
    now = [1000.0]
    roster = Roster(down_after=60, clock=lambda: now[0])
    roster.heard({"node": "a", "boot": "x", "seq": 1})
    roster.heard({"node": "b", "boot": "y", "seq": 1})
    now[0] += 30
    roster.heard({"node": "b", "boot": "y", "seq": 2})
    roster.heard({"node": "b", "boot": "y", "seq": 1})        # late: ignored
    assert roster.nodes()["b"]["status"]["seq"] == 2
    now[0] += 31
    view = roster.nodes()
    assert view["a"]["down"] and not view["b"]["down"]
    assert roster.up() == ["b"]
    roster.heard({"node": "a", "boot": "z", "seq": 1})        # a restarted: a new boot counts
    assert roster.up() == ["a", "b"]


# -- what may not pass -------------------------------------------------------------------------

def test_an_unusable_message_goes_to_the_dead_queue_not_to_a_handler(server):
    broker = broker_for(server)
    queue = fresh_queue()
    marker = secrets.token_hex(6)
    consumer = Consumer(broker, [queue])
    consumer.take(lambda d: None, timeout=0.1)             # declares the queue
    with kombu.Connection(server.url) as conn:
        producer = kombu.Producer(conn.default_channel, exchange=topology.exchange(),
                                  auto_declare=False)
        producer.publish(b"not json " + marker.encode(), routing_key=queue,
                         content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2)
        producer.publish(b'{"no id": "%s"}' % marker.encode(), routing_key=queue,
                         content_type="application/json", content_encoding="utf-8",
                         delivery_mode=2)
    called = []
    for _ in range(4):                    # each unusable message ends one take
        consumer.take(called.append, timeout=0.5)
    consumer.close()
    assert called == []
    # both wait in gsmbridge.dead, for an operator
    dead = []
    with kombu.Connection(server.url) as conn:
        channel = conn.channel()
        queue_entity = topology.work_queue(DEAD_QUEUE, server.name == "rabbitmq" and "amqp"
                                           or "redis")

        def keep(message):
            body = message.body                     # str when it decoded as its encoding
            body = body.encode() if isinstance(body, str) else body
            if marker.encode() in body:
                dead.append(body)
            message.ack()

        with kombu.Consumer(channel, [queue_entity], on_message=keep, auto_declare=False,
                            prefetch_count=10):
            deadline = time.monotonic() + 10
            while len(dead) < 2 and time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
    assert sorted(dead) == sorted([b"not json " + marker.encode(),
                                   b'{"no id": "%s"}' % marker.encode()])


def test_a_handler_may_find_a_message_unusable_and_it_goes_aside(server):
    """A handler raising BadMessage (a field no gsmbridge sends): the message is not handed out
    again and again, it goes to gsmbridge.dead like one that is not JSON."""
    broker = broker_for(server)
    queue = fresh_queue()
    publisher, consumer = Publisher(broker), Consumer(broker, [queue])
    try:
        publisher.publish(queue, {"id": "odd-1", "parts": "many"})
        publisher.publish(queue, {"id": "fine-1"})
        seen = []

        def handler(delivery):
            seen.append(delivery.id)
            if delivery.id == "odd-1":
                raise BadMessage("parts: wrong type")
        take_until(consumer, 2, handler=handler)
        assert take_until(consumer, 1, timeout=1.5) == []
        assert sorted(seen) == ["fine-1", "odd-1"]
    finally:
        publisher.close()
        consumer.close()


def test_take_batch_takes_what_is_waiting_at_once(server):
    broker = broker_for(server)
    queue = fresh_queue()
    publisher = Publisher(broker)
    consumer = Consumer(broker, [queue], prefetch=20)
    try:
        for i in range(8):
            publisher.publish(queue, {"id": "r-%d" % i})
        batches = []
        deadline = time.monotonic() + 15
        while sum(map(len, batches)) < 8 and time.monotonic() < deadline:
            consumer.take_batch(lambda ds: batches.append([d.id for d in ds]), timeout=1.0)
        assert sorted(i for b in batches for i in b) == ["r-%d" % i for i in range(8)]
        assert len(batches) <= 3, batches         # waiting messages come together
        consumer.close()                           # all were acknowledged: none comes again
        again = Consumer(broker, [queue], prefetch=20)
        assert again.take_batch(lambda ds: batches.append(ds), timeout=1.0) == 0
        again.close()
    finally:
        publisher.close()
        consumer.close()


def test_a_consumer_of_higher_priority_is_served_first(rabbitmq):  # noqa: F811
    """RabbitMQ's consumer priorities: a modem that is sending may wait for its next message
    at low priority; while a free one waits at high priority, it gets none."""
    if not rabbitmq.running:
        rabbitmq.start()
    broker = broker_for(rabbitmq)
    queue = fresh_queue()
    publisher = Publisher(broker)
    got = collections.Counter()
    stop = threading.Event()

    def take(name, priority):
        consumer = Consumer(broker, [queue])
        while not stop.is_set():
            consumer.take(lambda d: got.update([name]), timeout=0.2, priority=priority)
        consumer.close()

    threads = [threading.Thread(target=take, args=args)
               for args in (("low", 0), ("high", 10))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        for i in range(10):
            publisher.publish(queue, {"id": "p-%d" % i})
            wait_for(lambda: sum(got.values()) > i, timeout=10)
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        publisher.close()
    assert got["high"] >= 9 and sum(got.values()) == 10, got


def test_a_wrong_password_is_refused_at_once(server):
    url = server.url.replace(server.password, "wrong-" + server.password[:4])
    broker = Broker(url, node="n1", timeout=5)
    publisher = Publisher(broker)
    started = time.monotonic()
    with pytest.raises(BrokerError) as failure:
        publisher.publish(fresh_queue(), {"id": "m-1"})
    assert time.monotonic() - started < 4
    assert "wrong-" not in str(failure.value) and "***@" in str(failure.value)
    publisher.close()


def test_a_body_that_is_not_a_message_is_refused_before_the_broker():
    broker = Broker("amqp://u:p@127.0.0.1:1//", node="n1", timeout=0.5)
    publisher = Publisher(broker)
    for body in ({"text": "no id"}, {"id": ""}, {"id": "a b"}, ["id"], {"id": "x" * 65},
                 {"id": "big", "text": "x" * 70000}):
        with pytest.raises(BadMessage):
            publisher.publish(modem_queue("m"), body)


@pytest.mark.parametrize("url, shown", [
    ("amqp://user:pass@host:5672/vhost", "amqp://***@host:5672/vhost"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
    ("amqp://u:p@ss@h1//;amqp://u:p@h2//", "amqp://***@h1//;amqp://***@h2//"),
    ("amqp://host//", "amqp://host//"),
])
def test_urls_are_shown_without_credentials(url, shown):
    assert mask_url(url) == shown
    assert repr(Broker(url, node="n1")) == "<Broker %s node=n1>" % shown


@pytest.mark.parametrize("url", ["memory://", "sqs://key:secret@", "amqp://a//;redis://b/0", ""])
def test_other_transports_are_refused_naming_no_secret(url):
    with pytest.raises(ValueError) as failure:
        transport_of(url)
    assert "secret" not in str(failure.value)


def test_names_refuse_what_a_queue_name_cannot_hold():
    assert modem_queue("modem-1.a") == "gsmbridge.modem.modem-1.a"
    assert topology.route_queue("a,b") == "gsmbridge.route.a,b"
    long_route = ",".join("modem%02d" % i for i in range(40))
    assert topology.route_queue(long_route) == topology.route_queue(long_route)
    assert len(topology.route_queue(long_route)) < 60
    for bad in ("", "a b", "a/b", "é"):
        with pytest.raises(ValueError):
            modem_queue(bad)


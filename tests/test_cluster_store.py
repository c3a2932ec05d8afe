"""The store's side of a cluster (store/cluster.py), and [cluster] in the config.

Two stores stand for two nodes, a (modem m1, routes +25571) and b (modem m2, routes +25572);
the broker between them is played by handing the outbox's messages (relay.work_message) and the
status reports (relay.status_message) from one store to the other, as the relay and the intake
do. Real brokers and processes: tests/test_cluster.py.
"""

import json

import pytest

import gsmbridge.store as store_module
from gsmbridge import config
from gsmbridge.cluster.relay import choose_queue, status_message, work_message
from gsmbridge.config import ConfigError
from gsmbridge.store import Store
from clock import Clock
from plans import assert_uses_index

RAPIDSMS = {"url": "http://127.0.0.1:8000/backend/kannel-backend/"}


def beat(node, *modems, boot="boot-1", seq=1):
    """A heartbeat of `node` with modems given as (name, routes, can_send)."""
    return {"node": node, "boot": boot, "seq": seq,
            "modems": [{"name": n, "routes": list(r), "can_send": c, "state": "up"}
                       for n, r, c in modems]}


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def a(tmp_path, clock):
    s = Store(str(tmp_path / "a.sqlite3"), clock=clock)
    s.set_pool({"m1": {"routes": ["+25571"]}})
    s.set_cluster("a")
    s.set_modem("m1", state="up")
    s.cluster_heard(beat("b", ("m2", ["+25572"], True)))
    yield s
    s.close()


@pytest.fixture
def b(tmp_path, clock):
    s = Store(str(tmp_path / "b.sqlite3"), clock=clock)
    s.set_pool({"m2": {"routes": ["+25572"]}})
    s.set_cluster("b")
    s.set_modem("m2", state="up")
    s.cluster_heard(beat("a", ("m1", ["+25571"], True)))
    yield s
    s.close()


def send(store, modem, clock):
    """The worker's part: the next message of `modem`, claimed and sent. Its row, or None."""
    row = store.next_outbound(modem, clock())
    if row is None:
        return None
    assert store.outbound_sending(row["id"], modem=modem)
    store.outbound_sent(row["id"], references=[7])
    return row


def relay_all(origin, owner, node="a"):
    """Everything in origin's outbox, taken by owner (pinned when it came for a modem)."""
    outcomes = []
    for row in origin.outbox():
        message = work_message(row, node)
        pinned = row["modem"] if row["relay"] == "modem" else None
        outcomes.append(owner.take_relayed(message, modem=pinned))
        origin.relayed(row["id"])
    return outcomes


def report_all(owner, origin, node="b"):
    applied = [origin.apply_cluster_report(status_message(r, node))
               for r in owner.cluster_reports()]
    owner.cluster_reports_sent([r["id"] for r in owner.cluster_reports()])
    return applied


# -- placing ------------------------------------------------------------------------------------

def test_without_a_cluster_nothing_is_placed_elsewhere(tmp_path, clock):
    s = Store(str(tmp_path / "alone.sqlite3"), clock=clock)
    s.set_pool({"m1": {}})
    ids = s.add_outbound(["+255720000001", "+255790000001"], "hi", encoding="gsm7", parts=1,
                         modem=None)
    ids += s.add_outbound(["+255790000002"], "hi", encoding="gsm7", parts=1, modem="m9")
    assert [s.get_outbound(i)["relay"] for i in ids] == [None, None, None]
    assert s.outbox() == []
    s.close()


def test_pinned_to_another_nodes_modem_goes_to_the_outbox(a, clock):
    [mine] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1, modem="m1")
    [theirs] = a.add_outbound(["+255790000002"], "x", encoding="gsm7", parts=1, modem="m2")
    assert a.get_outbound(mine)["relay"] is None
    assert a.get_outbound(theirs)["relay"] == "modem"
    assert [r["id"] for r in a.outbox()] == [theirs]
    # a's worker never takes it, though it asks for anything it may send
    assert send(a, "m1", clock)["id"] == mine
    assert send(a, "m1", clock) is None


def test_routes_span_the_cluster(a):
    assert a.cluster_route("+255720000001") == "m2"
    assert a.cluster_route("0025571000") == "m1"
    assert a.cluster_route("+255790000001") == ""
    assert a.cluster_route_values() == ["m1", "m2"]
    [routed] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1)
    row = a.get_outbound(routed)
    assert (row["relay"], row["route"]) == ("route", "@m2")


def test_a_free_local_modem_takes_one_and_the_broker_the_rest(a, clock):
    ids = a.add_outbound(["+25579000000%d" % i for i in range(4)], "x", encoding="gsm7",
                         parts=1)
    assert [a.get_outbound(i)["relay"] for i in ids] == [None, "free", "free", "free"]
    # m1 now has work: the next one goes to the broker too, until m1 is done
    [later] = a.add_outbound(["+255790000009"], "x", encoding="gsm7", parts=1)
    assert a.get_outbound(later)["relay"] == "free"
    assert not a.modem_free("m1")
    send(a, "m1", clock)
    assert a.modem_free("m1")
    [again] = a.add_outbound(["+255790000010"], "x", encoding="gsm7", parts=1)
    assert a.get_outbound(again)["relay"] is None


def test_a_modem_that_cannot_send_is_not_free(a, clock):
    a.set_modem("m1", state="no network")
    assert not a.modem_free("m1")
    [msg] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1)
    assert a.get_outbound(msg)["relay"] == "free"
    a.set_modem("m1", state="up")
    a.set_pool({"m1": {"routes": ["+25571"], "hourly_cap": 1}})
    assert a.modem_free("m1")
    a.add_outbound(["+255790000002"], "x", encoding="gsm7", parts=1, modem="m1")
    assert send(a, "m1", clock) is not None
    assert not a.modem_free("m1")       # at its cap


def test_the_room_a_modem_has_for_work_from_the_broker(a, clock):
    assert a.modem_room("m1") == "free"
    [msg] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1, modem="m1")
    assert a.modem_room("m1") == "busy"               # one waits for it here
    assert a.outbound_sending(msg, modem="m1")
    assert a.modem_room("m1") == "next"               # sending its last one
    a.outbound_sent(msg, references=[1])
    assert a.modem_room("m1") == "free"
    a.set_modem("m1", state="down")
    assert a.modem_room("m1") is None


def test_with_no_other_node_heard_nothing_is_relayed(tmp_path, clock):
    s = Store(str(tmp_path / "first.sqlite3"), clock=clock)
    s.set_pool({"m1": {}})
    s.set_cluster("a")
    ids = s.add_outbound(["+25579000000%d" % i for i in range(3)], "x", encoding="gsm7",
                         parts=1)
    assert s.outbox() == [] and all(s.get_outbound(i)["relay"] is None for i in ids)
    s.close()


def test_the_relay_chooses_the_queue_when_it_publishes(a):
    [pinned] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1, modem="m2")
    [routed] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1)
    rows = {r["id"]: r for r in a.outbox()}
    assert choose_queue(a, rows[pinned]) == ("gsmbridge.modem.m2", None)
    assert choose_queue(a, rows[routed]) == ("gsmbridge.route.m2", "m2")
    # the route's only modem cannot send: any modem may take it
    a.cluster_heard(beat("b", ("m2", ["+25572"], False), seq=2))
    assert choose_queue(a, rows[routed]) == ("gsmbridge.free", "m2")


# -- taking, repeats, adopting ----------------------------------------------------------------

def test_taken_once_repeats_dropped_and_sent_by_the_owner(a, b, clock):
    [msg] = a.add_outbound(["+255720000001"], "routed", encoding="gsm7", parts=1,
                           dlr_url="http://example.org/dlr?t=%d", dlr_mask=31, priority=2)
    [row] = a.outbox()
    message = work_message(row, "a")
    assert b.take_relayed(message) == "new"
    assert b.take_relayed(message) == "repeat"
    a.relayed(msg)
    assert a.outbox() == [] and a.get_outbound(msg)["relayed_at"] == clock()
    held = b.get_outbound(msg)
    assert (held["origin"], held["priority"], held["relay"]) == ("a", 2, None)
    assert send(b, "m2", clock)["id"] == msg
    # the owner calls no dlr-url: the origin does
    assert b.get_outbound(msg)["callbacks"] == []


def test_a_message_taken_off_a_modems_queue_is_pinned_to_it(a, b, clock):
    b.set_pool({"m2": {"routes": ["+25572"]}, "m3": {}})
    b.set_modem("m3", state="up")
    [msg] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1, modem="m2")
    assert relay_all(a, b) == ["new"]
    assert b.next_outbound("m3", clock()) is None
    assert send(b, "m2", clock)["id"] == msg


def test_a_nodes_own_message_back_from_the_broker_is_sent_here(a, clock):
    ids = a.add_outbound(["+255790000001", "+255790000002"], "x", encoding="gsm7", parts=1)
    [row] = a.outbox()
    assert a.take_relayed(work_message(row, "a")) == "adopted"
    a.relayed(row["id"])                # the relay's mark, after the intake took it: no harm
    assert a.outbox() == []
    sent = {send(a, "m1", clock)["id"], send(a, "m1", clock)["id"]}
    assert sent == set(ids)
    assert a.cluster_reports() == []     # its own message: nothing to report to anyone


@pytest.mark.parametrize("change", [
    {"parts": 0}, {"to": ""}, {"text": ""}, {"priority": 9}, {"encoding": "ebcdic"},
    {"parts": "1"}, {"parts": True}, {"dlr_mask": None}])
def test_a_taken_message_with_unusable_fields_is_refused(a, b, change):
    a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1)
    message = dict(work_message(a.outbox()[0], "a"), **change)
    with pytest.raises(ValueError):
        b.take_relayed(message)
    assert b.counts()["outbound"]["queued"] == 0


def test_missing_fields_are_refused(b):
    with pytest.raises(ValueError):
        b.take_relayed({"id": "x1", "origin": "a", "text": "no number", "parts": 1})


# -- status reports ----------------------------------------------------------------------------

def test_every_status_change_is_reported_to_the_origin(a, b, clock):
    [msg] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1,
                           dlr_url="http://example.org/dlr?t=%d", dlr_mask=31)
    relay_all(a, b)
    row = b.next_outbound("m2", clock())
    b.outbound_sending(msg, modem="m2")
    b.outbound_retry(msg, error="CMS ERROR 38", next_attempt=clock())
    b.outbound_sending(msg, modem="m2")
    b.outbound_sent(msg, references=[7])
    b.add_report(modem="m2", reference=7, recipient=row["recipient"], status=0x20, pdu="01")
    b.add_report(modem="m2", reference=7, recipient=row["recipient"], status=0x00, pdu="02")
    reports = b.cluster_reports()
    assert [(r["status"], r["tp_st"]) for r in reports] == [
        ("queued", None), ("sending", None), ("queued", None), ("sending", None),
        ("sent", None), ("sent", 0x20), ("delivered", 0x00)]
    assert all(r["origin"] == "a" for r in reports)
    assert report_all(b, a) == [True] * 7
    message = a.get_outbound(msg)
    assert (message["status"], message["node"], message["sent_by"]) == ("delivered", "b", "m2")
    assert [(c["type"], c["text"]) for c in message["callbacks"]] == [
        (8, "ACK"), (4, "id:7 stat:ENROUTE err:032"), (1, "id:7 stat:DELIVRD err:000")]
    assert b.cluster_reports() == []


def test_the_newest_report_alone_still_calls_for_every_callback(a, b, clock):
    """The relay sends only the newest of a message's waiting reports."""
    [msg] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1,
                           dlr_url="http://example.org/dlr", dlr_mask=31)
    relay_all(a, b)
    row = send(b, "m2", clock)
    b.add_report(modem="m2", reference=7, recipient=row["recipient"], status=0x00, pdu="02")
    newest = b.cluster_reports()[-1]
    assert a.apply_cluster_report(status_message(newest, "b"))
    assert [c["type"] for c in a.get_outbound(msg)["callbacks"]] == [8, 1]


def test_a_send_failure_is_reported_as_not_delivered_to_the_smsc(a, b, clock):
    [msg] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1,
                           dlr_url="http://example.org/dlr", dlr_mask=31)
    relay_all(a, b)
    b.outbound_sending(msg, modem="m2")
    b.outbound_failed(msg, error="CMS ERROR 500: unknown")
    report_all(b, a)
    message = a.get_outbound(msg)
    assert (message["status"], message["last_error"]) == ("failed", "CMS ERROR 500: unknown")
    assert [(c["type"], c["text"]) for c in message["callbacks"]] == [
        (16, "CMS ERROR 500: unknown")]


def test_old_and_foreign_reports_do_not_take_a_message_back(a, b, clock):
    [msg] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1)
    relay_all(a, b)
    send(b, "m2", clock)
    reports = [status_message(r, "b") for r in b.cluster_reports()]
    assert a.apply_cluster_report(reports[-1])                  # sent
    assert not a.apply_cluster_report(reports[0])               # queued, older: dropped
    # a repeat of the message that went to node c: its "sending" comes late
    assert not a.apply_cluster_report(dict(reports[1], node="c", seq=99))
    assert a.get_outbound(msg)["status"] == "sent"
    # reports of a message a never relayed are not a's to apply
    assert not a.apply_cluster_report(dict(reports[-1], id="unknown-id"))
    with pytest.raises(ValueError):
        a.apply_cluster_report({"id": msg, "node": "b", "seq": 5, "status": "lost"})


def test_restart_recovery_leaves_other_nodes_sends_alone(a, b, clock):
    [msg] = a.add_outbound(["+255720000001"], "x", encoding="gsm7", parts=1)
    relay_all(a, b)
    b.outbound_sending(msg, modem="m2")
    report_all(b, a)
    assert a.get_outbound(msg)["status"] == "sending"
    assert a.recover_sending(resend=True) == 0 and a.recover_sending(resend=False) == 0
    assert a.get_outbound(msg)["status"] == "sending"
    # b's own recovery puts it back in its queue, and says so
    assert b.recover_sending(resend=True) == 1
    assert b.cluster_reports()[-1]["status"] == "queued"


# -- the outbox when the broker is away --------------------------------------------------------

def test_the_outbox_goes_to_local_modems_when_the_broker_stays_away(a, clock):
    ids = a.add_outbound(["+25579000000%d" % i for i in range(3)], "x", encoding="gsm7",
                         parts=1)
    [pinned] = a.add_outbound(["+255790000001"], "x", encoding="gsm7", parts=1, modem="m2")
    assert a.outbox_size() == 3
    assert a.adopt_outbox() == 2
    assert [r["id"] for r in a.outbox()] == [pinned]       # pinned elsewhere: it waits
    assert {send(a, "m1", clock)["id"] for _ in range(3)} == set(ids)


# -- the nodes heard ---------------------------------------------------------------------------

def test_the_nodes_heard_survive_a_restart_and_go_down_when_silent(tmp_path, clock):
    path = str(tmp_path / "n.sqlite3")
    s = Store(path, clock=clock)
    s.set_pool({"m1": {}})
    s.set_cluster("a", down_after=3)
    s.cluster_heard(beat("b", ("m2", ["+25572"], True)))
    s.close()
    s = Store(path, clock=clock)
    s.set_pool({"m1": {}})
    s.set_cluster("a", down_after=3)
    assert s.knows_modem("m2") and s.knows_modem("m1") and not s.knows_modem("m3")
    assert s.cluster_modems()["m2"]["can_send"]
    clock.now += 4
    assert s.cluster_nodes()["b"]["down"]
    assert not s.cluster_modems()["m2"]["can_send"]
    assert s.cluster_route("+255720000001") == "m2"       # its routes are still known
    assert s.forget_node("b") and not s.knows_modem("m2")
    s.close()


def test_a_heartbeat_that_says_nothing_new_is_kept_in_memory(a, clock):
    """The table is written when a node's modems change, and every KEEP_EVERY seconds; the
    view is always the newest heartbeat."""
    from gsmbridge.store.cluster import KEEP_EVERY

    def kept_at():
        return a._conn().execute("SELECT heard_at FROM cluster_nodes WHERE node = 'b'"
                                 ).fetchone()[0]
    first = kept_at()
    clock.now += 2
    a.cluster_heard(beat("b", ("m2", ["+25572"], True), seq=2))
    assert kept_at() == first and a.cluster_nodes()["b"]["heard_at"] == clock()
    a.cluster_heard(beat("b", ("m2", ["+25572"], False), seq=3))      # can_send changed
    assert kept_at() == clock()
    clock.now += KEEP_EVERY
    a.cluster_heard(beat("b", ("m2", ["+25572"], False), seq=4))
    assert kept_at() == clock()


def test_a_node_that_drops_a_modem_no_longer_has_it(a):
    a.cluster_heard(beat("b", ("m3", [], True), seq=2))
    assert not a.knows_modem("m2") and a.knows_modem("m3")
    assert a.cluster_route("+255720000001") == ""


# -- the queries' indexes ------------------------------------------------------------------------

def _fill(store):
    db = store._conn()
    db.execute("BEGIN")
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, modem, status, route,"
                   " relay, relayed_at, sent_by, next_attempt, created_at)"
                   " VALUES (?, '+1', 't', 1, ?, ?, ?, ?, ?, ?, ?, 0)",
                   [("o%d" % i, ("m1", None, None)[i % 3],
                     ("queued", "sent", "sending")[i % 3], ("", "@", "@m2")[i % 3],
                     (None, "free", "route")[i % 3], None if i % 5 else i,
                     None if i % 3 == 0 else "m%d" % (i % 4), i) for i in range(3000)])
    db.execute("COMMIT")
    db.execute("ANALYZE")
    return db


@pytest.mark.parametrize("name, index, options", [
    ("OUTBOX_SQL", "outbound_outbox", {"whole_index": True}),   # the index is the outbox
    ("SENDING_BY_SQL", "outbound_status", {"hint_needed": True}),
    ("QUEUED_FOR_SQL", "outbound_queue", {}),
    ("QUEUED_ROUTE_SQL", "outbound_route", {}),
])
def test_cluster_queries_use_their_index(a, name, index, options):
    db = _fill(a)
    from gsmbridge.store import cluster
    assert_uses_index(db, getattr(cluster, name), index, no_sort=True, **options)


# -- migration ---------------------------------------------------------------------------------

def test_a_store_of_the_version_before_gains_the_cluster_columns(tmp_path, clock):
    import sqlite3
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(1, store_module.SCHEMA_VERSION):
        for statement in store_module._split_sql(store_module.schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("INSERT INTO outbound (id, recipient, text, parts, next_attempt, created_at)"
               " VALUES ('old1', '+255790000001', 'kept', 1, 0, 0)")
    db.execute("PRAGMA user_version = %d" % (store_module.SCHEMA_VERSION - 1))
    db.close()
    s = Store(path, clock=clock)
    row = s.get_outbound("old1")
    assert (row["text"], row["relay"], row["origin"]) == ("kept", None, None)
    assert s.outbox() == [] and s.cluster_reports() == []
    s.close()


# -- config ------------------------------------------------------------------------------------

def cluster_config(**values):
    return config.from_dict({"modem": {"port": "sim://"}, "rapidsms": RAPIDSMS,
                             "cluster": values})


def test_without_a_cluster_section_there_is_no_cluster():
    assert config.from_dict({"modem": {"port": "sim://"}, "rapidsms": RAPIDSMS}).cluster is None


def test_cluster_settings_and_their_defaults():
    c = cluster_config(broker="amqp://gb:secret@rabbit.example:5672/gb", node="pi-kisumu").cluster
    assert (c.node, c.queue_type, c.heartbeat_interval, c.down_after) == (
        "pi-kisumu", "quorum", 5.0, 60.0)
    c = cluster_config(broker="redis://:pw@127.0.0.1:6379/1", queue_type="classic").cluster
    assert c.node and c.queue_type == "classic"        # the host name by default


def test_the_broker_password_is_masked_in_check_config():
    masked = cluster_config(broker="amqp://gb:secret@r1:5672/gb;amqp://gb:secret@r2:5672/gb"
                            ).masked()["cluster"]
    assert "secret" not in json.dumps(masked)
    assert masked["broker"] == "amqp://***@r1:5672/gb;amqp://***@r2:5672/gb"


@pytest.mark.parametrize("values, key, words", [
    ({}, "broker", "is required"),
    ({"broker": "http://rabbit:5672/"}, "broker", "unsupported broker URL scheme"),
    ({"broker": "amqp://u:topsecret@r//;redis://r"}, "broker", "one kind of broker"),
    ({"broker": "amqp://r//", "node": "a b"}, "node", "letters, digits"),
    ({"broker": "amqp://r//", "queue_type": "stream"}, "queue_type", "quorum, classic"),
    ({"broker": "amqp://r//", "down_after": "10"}, "down_after", "three heartbeats"),
    ({"broker": "amqp://r//", "heartbeat_interval": "0"}, "heartbeat_interval", "too small"),
    ({"broker": "amqp://r//", "nodes": "a"}, "nodes", "did you mean 'node'"),
])
def test_bad_cluster_settings_name_the_key(values, key, words):
    with pytest.raises(ConfigError) as failed:
        cluster_config(**values)
    assert (failed.value.section, failed.value.key) == ("cluster", key)
    assert words in str(failed.value)
    assert "topsecret" not in str(failed.value)


def test_the_sample_documents_every_cluster_key():
    import dataclasses
    import os
    import re
    sample = os.path.join(os.path.dirname(__file__), "..", "etc", "gsmbridge.ini")
    text = open(sample, encoding="utf-8").read()
    section = text[text.index("; [cluster]"):]
    for fld in dataclasses.fields(config.ClusterConfig):
        assert re.search(r"^; %s = " % fld.name, section, re.M), fld.name


# -- health over the cluster -------------------------------------------------------------------

def test_health_holds_while_any_modem_of_the_cluster_can_send(a, clock, tmp_path):
    from gsmbridge import overview
    cfg = config.from_dict({"modem": {"port": "sim://", "name": "m1"}, "rapidsms": RAPIDSMS,
                            "cluster": {"broker": "amqp://r//", "node": "a"},
                            "store": {"path": str(tmp_path / "a.sqlite3")}})
    a.set_modem("m1", state="down", last_error="port gone")
    reasons, warnings = overview.health_report(a, cfg, now=clock())
    assert reasons == [] and warnings == ["modem m1 is down: port gone"]
    a.cluster_heard(beat("b", ("m2", ["+25572"], False), seq=2))
    reasons, warnings = overview.health_report(a, cfg, now=clock())
    assert "no modem of the cluster can send" in reasons
    assert "modem m2 of node b cannot send (up)" in reasons
    a.set_modem("m1", state="up")
    clock.now += 61                         # b silent for over a minute: down
    a.set_modem("m1", state="up")
    reasons, warnings = overview.health_report(a, cfg, now=clock())
    assert reasons == [] and warnings == ["node b has not been heard for 61 s"]
    a.cluster_heard(dict(beat("b", ("m2", ["+25572"], True), seq=3), leaving="stopped"))
    assert overview.health_report(a, cfg, now=clock())[1] == ["node b stopped 0 s ago"]
    assert a.knows_modem("m2") and not a.cluster_modems()["m2"]["can_send"]

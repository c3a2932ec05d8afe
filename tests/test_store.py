"""The store on real SQLite files: dedup, atomic hand-offs, ordered delivery, outbound states,
durability across reopening and across a writer killed with SIGKILL."""

import ast
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gsmbridge.store as store_module
from clock import Clock
from plans import assert_uses_index, plan_problems
from gsmbridge.store import SCHEMA_VERSION, Store, StoreClosed, StoreError

FAR = 1e12  # a "now" at which everything is due


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "store.sqlite3")




def inbound(store, sender, text, key=None, modem="m1"):
    return store.add_inbound(modem=modem, sender=sender, text=text,
                             sent_at="2024-05-01T10:00:00+03:00", parts=1, incomplete=False,
                             pdus=["07912..%s" % text], keys=[key or "key-%s-%s" % (sender, text)])


def due_texts(store, now=FAR):
    return [(row["sender"], row["text"]) for row in store.due_inbound(now)]


# -- opening -----------------------------------------------------------------------------------


def test_in_memory_database_is_refused():
    with pytest.raises(ValueError):
        Store(":memory:")


def test_schema_is_created_in_wal_mode_and_versioned(path):
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"inbound", "seen", "parts", "bad_pdus", "reports", "outbound", "modems"} <= tables


def test_each_connection_is_durable_and_waits_for_locks(store):
    db = store._conn()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_a_store_from_a_newer_version_is_refused(path):
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = %d" % (SCHEMA_VERSION + 1))
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="schema version"):
        Store(path)


def test_a_closed_store_says_so(path):
    s = Store(path)
    s.close()
    with pytest.raises(StoreClosed):
        s.counts()


def test_what_sqlite_refuses_comes_out_as_a_store_error(store, path):
    """Callers catch StoreError and never sqlite3's own: nothing of a refused write is kept."""
    store._conn().execute("CREATE TRIGGER no_bad BEFORE INSERT ON bad_pdus"
                          " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(StoreError, match="disk trouble") as caught:
        store.add_bad_pdu(modem="m1", pdu="0004", error="cut short")
    assert isinstance(caught.value.__cause__, sqlite3.Error)
    assert store.bad_pdus() == []
    with pytest.raises(StoreError):
        Store(os.path.join(path, "no", "such", "directory", "store.sqlite3"))
    store.close()
    with pytest.raises(StoreError):             # StoreClosed is one
        store.bad_pdus()


def test_nothing_above_the_store_imports_sqlite3():
    """Which database sits under the queues is the store's business (gsmbridge/store/)."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gsmbridge")
    offenders = []
    for folder, _, files in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] == "store":
            continue
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] == "sqlite3" for n in names):
                    offenders.append(os.path.relpath(os.path.join(folder, name), root))
    assert offenders == []


# -- inbound: dedup, parts, bad PDUs -----------------------------------------------------------


def test_the_same_pdu_twice_is_recognised_by_its_key(store):
    first = inbound(store, "+255700000001", "hello", key="k1")
    again = inbound(store, "+255700000001", "hello", key="k1")
    assert first is not None and again is None
    assert store.seen("k1") and store.seen("k1", modem="m1")
    assert not store.seen("k1", modem="m2") and not store.seen("k2")
    assert store.counts()["inbound"]["pending"] == 1


def test_the_same_key_on_another_modem_is_another_sms(store):
    # Two SIMs can get the same broadcast from the same sender in the same second.
    assert inbound(store, "+255700000001", "alert", key="k", modem="m1")
    assert inbound(store, "+255700000001", "alert", key="k", modem="m2")


def test_a_message_with_some_new_keys_is_stored(store):
    store.add_part(modem="m1", key="p1", sender="+1", reference=7, total=2, sequence=1, bits=8,
                   pdu="AA")
    msg_id = store.add_inbound(modem="m1", sender="+1", text="ab", sent_at=None, parts=2,
                               incomplete=False, pdus=["AA", "BB"], keys=["p1", "p2"])
    assert msg_id is not None


def test_parts_are_kept_until_complete_parts_swaps_them_for_the_message(store):
    keys = ["part-1", "part-2", "part-3"]
    for seq, key in enumerate(keys, 1):
        assert store.add_part(modem="m1", key=key, sender="+255700000009", reference=42, total=3,
                              sequence=seq, bits=8, pdu="PDU%d" % seq)
    assert not store.add_part(modem="m1", key="part-2", sender="+255700000009", reference=42,
                              total=3, sequence=2, bits=8, pdu="PDU2")
    pending = store.pending_parts("m1")
    assert [(p["key"], p["sequence"], p["pdu"]) for p in pending] == [
        ("part-1", 1, "PDU1"), ("part-2", 2, "PDU2"), ("part-3", 3, "PDU3")]
    assert store.pending_parts("m2") == []

    msg_id = store.complete_parts(modem="m1", keys=keys, sender="+255700000009", text="one two three",
                                  sent_at=None, parts=3, incomplete=False,
                                  pdus=["PDU1", "PDU2", "PDU3"])
    assert store.pending_parts("m1") == []
    row = store.get_inbound(msg_id)
    assert (row["text"], row["parts"], row["pdus"]) == ("one two three", 3, ["PDU1", "PDU2", "PDU3"])
    # a part read again after the message was completed is still a duplicate
    assert not store.add_part(modem="m1", key="part-1", sender="+255700000009", reference=42,
                              total=3, sequence=1, bits=8, pdu="PDU1")


def test_complete_parts_that_fails_midway_leaves_the_parts(store):
    for seq in (1, 2):
        store.add_part(modem="m1", key="k%d" % seq, sender="+1", reference=1, total=2, sequence=seq,
                       bits=8, pdu="P%d" % seq)
    with pytest.raises(TypeError):
        # the parts' DELETEs run before the message INSERT fails: all of it must roll back
        store.complete_parts(modem="m1", keys=["k1", "k2"], sender="+1", text=None, sent_at=None,
                             parts=2, incomplete=False, pdus=["P1", "P2"])
    assert [p["key"] for p in store.pending_parts("m1")] == ["k1", "k2"]
    assert store.counts()["inbound"]["pending"] == 0


def test_malformed_pdus_are_kept_with_the_reason(store):
    first = store.add_bad_pdu(modem="m1", pdu="0791XYZ", error="odd length")
    again = store.add_bad_pdu(modem="m1", pdu="0791XYZ", error="odd length")
    other = store.add_bad_pdu(modem="m1", pdu="FFFF", error="bad MTI")
    assert first == again != other
    bad = {b["pdu"]: b for b in store.bad_pdus()}
    assert bad["0791XYZ"]["times"] == 2 and bad["FFFF"]["error"] == "bad MTI"
    assert store.counts()["bad_pdus"] == 2


# -- inbound: ordered delivery -----------------------------------------------------------------


def test_due_inbound_offers_only_the_oldest_pending_message_of_each_sender(store):
    for text in ("a1", "a2", "a3"):
        inbound(store, "A", text)
    for text in ("b1", "b2"):
        inbound(store, "B", text)
    assert due_texts(store) == [("A", "a1"), ("B", "b1")]

    a1, b1 = (row["id"] for row in store.due_inbound(FAR))
    store.inbound_delivered(a1, response="")
    assert sorted(due_texts(store)) == [("A", "a2"), ("B", "b1")]

    # B's first is retried later: B's second must wait behind it
    store.inbound_retry(b1, error="HTTP 503", next_attempt=2_000_000_000.0)
    assert due_texts(store, now=1_900_000_000.0) == [("A", "a2")]
    assert sorted(due_texts(store, now=2_000_000_000.0)) == [("A", "a2"), ("B", "b1")]
    assert store.next_inbound_due() == store.get_inbound(
        store.due_inbound(FAR)[0]["id"])["next_attempt"]

    # a refused message is kept, and its sender's next one moves up
    store.inbound_failed(b1, error="HTTP 400: bad")
    assert ("B", "b2") in due_texts(store)
    row = store.get_inbound(b1)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 2, "HTTP 400: bad")
    assert store.check() == []


def test_delivered_keeps_the_response_and_counts_attempts(store):
    msg_id = inbound(store, "A", "x")
    store.inbound_retry(msg_id, error="timeout", next_attempt=0)
    store.inbound_delivered(msg_id, response="OK")
    row = store.get_inbound(msg_id)
    assert (row["status"], row["attempts"], row["response"], row["last_error"]) == (
        "delivered", 2, "OK", None)
    # a late second report of the same outcome changes nothing
    store.inbound_failed(msg_id, error="late")
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_unknown_ids_are_an_error(store):
    with pytest.raises(KeyError):
        store.inbound_delivered("nope", response="")
    with pytest.raises(KeyError):
        store.outbound_sending("nope")


def test_requeued_failures_go_out_again_in_order(store):
    ids = [inbound(store, "A", t) for t in ("a1", "a2", "a3")]
    store.inbound_failed(ids[0], error="HTTP 404")
    store.inbound_failed(ids[1], error="HTTP 404")
    assert due_texts(store) == [("A", "a3")]
    assert store.requeue_inbound() == 2
    assert due_texts(store) == [("A", "a1")]
    assert store.check() == []
    assert store.requeue_inbound([ids[2]]) == 0  # only failed ones


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from("ABC")),
    st.tuples(st.sampled_from(["deliver", "fail", "retry"]), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.integers(1, 20)),
), max_size=40))
def test_every_sender_is_finished_in_arrival_order(ops):
    clock = Clock(1000.0)
    with tempfile.TemporaryDirectory() as tmp:
        s = Store(os.path.join(tmp, "s.db"), clock=clock)
        arrived, finished = {}, {}
        n = 0
        for op, arg in ops:
            if op == "add":
                n += 1
                arrived.setdefault(arg, []).append("m%d" % n)
                inbound(s, arg, "m%d" % n)
            elif op == "tick":
                clock.now += arg
            else:
                due = s.due_inbound(clock.now)
                if not due:
                    continue
                row = due[arg % len(due)]
                if op == "retry":
                    s.inbound_retry(row["id"], error="x", next_attempt=clock.now + arg + 1)
                    continue
                getattr(s, "inbound_delivered" if op == "deliver" else "inbound_failed")(
                    row["id"], **({"response": ""} if op == "deliver" else {"error": "x"}))
                finished.setdefault(row["sender"], []).append(row["text"])
        assert s.check() == []
        while True:  # drain
            due = s.due_inbound(FAR)
            if not due:
                break
            for row in due:
                s.inbound_delivered(row["id"], response="")
                finished.setdefault(row["sender"], []).append(row["text"])
        s.close()
    assert finished == arrived


# -- outbound ----------------------------------------------------------------------------------


def test_next_outbound_is_the_oldest_due_for_this_modem_or_any(store, clock):
    a = store.add_outbound(["+1"], "for m2", encoding="gsm7", parts=1, modem="m2")[0]
    b = store.add_outbound(["+2"], "for anyone", encoding="gsm7", parts=1)[0]
    c = store.add_outbound(["+3"], "for m1", encoding="gsm7", parts=1, modem="m1")[0]
    assert store.next_outbound("m1", clock.now)["id"] == b
    assert store.next_outbound("m2", clock.now)["id"] == a

    assert store.outbound_sending(b, modem="m1")
    store.outbound_retry(b, error="+CMS ERROR: 500", next_attempt=clock.now + 60)
    assert store.next_outbound("m1", clock.now)["id"] == c
    row = store.next_outbound("m1", clock.now + 60)
    assert (row["id"], row["attempts"], row["last_error"]) == (b, 1, "+CMS ERROR: 500")
    assert store.next_outbound("m3", clock.now) is None


def test_a_higher_priority_goes_first_and_equal_ones_in_the_order_queued(store, clock):
    """Kannel's priority (0 to 3; courier sends 1 for a reply in a conversation): the reply goes
    ahead of the bulk queued before it, pinned or not; the bulk keeps its own order."""
    def add(number, text, priority=0, modem=None):
        return store.add_outbound([number], text, encoding="gsm7", parts=1, modem=modem,
                                  priority=priority)[0]

    bulk = [add("+255700000001", "bulk 1"), add("+255700000002", "bulk 2", modem="m1"),
            add("+255700000003", "bulk 3")]
    reply = add("+255700000002", "reply", priority=1)
    urgent = add("+255700000004", "urgent", priority=2, modem="m1")
    order = []
    while True:
        row = store.next_outbound("m1", clock.now)
        if row is None:
            break
        assert store.outbound_sending(row["id"], modem="m1")
        store.outbound_sent(row["id"], references=[1])
        order.append(row["id"])
    assert order == [urgent, reply] + bulk
    assert store.get_outbound(reply)["priority"] == 1


def test_a_priority_message_waiting_for_a_retry_lets_the_others_by(store, clock):
    bulk = store.add_outbound(["+1"], "bulk", encoding="gsm7", parts=1)[0]
    reply = store.add_outbound(["+2"], "reply", encoding="gsm7", parts=1, priority=1)[0]
    assert store.next_outbound("m1", clock.now)["id"] == reply
    store.outbound_sending(reply, modem="m1")
    store.outbound_retry(reply, error="+CMS ERROR: 500", next_attempt=clock.now + 60)
    assert store.next_outbound("m1", clock.now)["id"] == bulk
    assert store.next_outbound("m1", clock.now + 60)["id"] == reply


def test_priority_goes_first_across_the_pool_s_routes(store, clock):
    store.set_pool({"a": {"routes": ["+25576"]}, "b": {"routes": ["+25568"]}})
    routed = store.add_outbound(["+255760000001"], "routed to a", encoding="gsm7", parts=1)[0]
    anyone = store.add_outbound(["+255999000001"], "a reply, any modem", encoding="gsm7",
                                parts=1, priority=1)[0]
    assert store.next_outbound("a", clock.now)["id"] == anyone
    assert store.next_outbound("b", clock.now)["id"] == anyone
    store.outbound_sending(anyone, modem="b")
    assert store.next_outbound("a", clock.now)["id"] == routed


@pytest.mark.parametrize("priority", [-1, 4])
def test_a_priority_out_of_kannel_s_range_is_refused(store, priority):
    with pytest.raises(ValueError, match="priority"):
        store.add_outbound(["+1"], "x", encoding="gsm7", parts=1, priority=priority)


@pytest.mark.parametrize("name", ["NEXT_OUTBOUND_PINNED_SQL", "NEXT_OUTBOUND_ANY_SQL",
                                  "NEXT_OUTBOUND_ROUTE_SQL"])
def test_the_next_message_by_priority_is_one_index_walk_without_a_sort(store, name):
    db = store._conn()
    db.execute("BEGIN")
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, modem, status, route,"
                   " priority, next_attempt, created_at) VALUES (?, '+1', 't', 1, ?, ?, ?, ?, ?,"
                   " 0)", [("o%d" % i, ("m1", None, None)[i % 3], "queued" if i % 2 else "sent",
                            ("", "a")[i % 2], i % 4 if i % 7 == 0 else 0, i)
                           for i in range(3000)])
    db.execute("COMMIT")
    db.execute("ANALYZE")
    index = "outbound_route" if name == "NEXT_OUTBOUND_ROUTE_SQL" else "outbound_queue"
    assert_uses_index(db, getattr(store_module, name), index, no_sort=True)


def test_a_version_3_store_is_migrated_with_its_queue_in_order(path, clock):
    db = sqlite3.connect(path)
    for version in (1, 2, 3):
        for statement in store_module._split_sql(store_module.schema._MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, next_attempt, created_at)"
                   " VALUES (?, '+1', ?, 1, 0, 0)", [("a", "first"), ("b", "second")])
    db.commit()
    db.close()
    s = Store(path, clock=clock)
    try:
        assert s.get_outbound("a")["priority"] == 0
        reply = s.add_outbound(["+2"], "reply", encoding="gsm7", parts=1, priority=1)[0]
        order = []
        while (row := s.next_outbound("m1", clock.now)) is not None:
            s.outbound_sending(row["id"], modem="m1")
            order.append(row["id"])
        assert order == [reply, "a", "b"]
    finally:
        s.close()


def test_a_queued_message_is_claimed_by_one_worker_only(store, clock):
    msg_id = store.add_outbound(["+1"], "x", encoding="gsm7", parts=1)[0]
    assert store.outbound_sending(msg_id, modem="m1") is True
    assert store.outbound_sending(msg_id, modem="m2") is False
    assert store.next_outbound("m2", clock.now) is None


def test_sent_then_failed_then_the_full_record(store, clock):
    ok, bad = store.add_outbound(["+255700000001", "+255700000002"], "Habari 😀", encoding="ucs2",
                                 parts=1, sender="HQ", dlr_url="http://rs/dlr?id=1", dlr_mask=31)
    store.outbound_sending(ok, modem="m1")
    store.outbound_sent(ok, references=[17])
    store.outbound_sending(bad, modem="m1")
    store.outbound_failed(bad, error="+CMS ERROR: 38 (network out of order)")
    sent = store.get_outbound(ok)
    assert (sent["status"], sent["references"], sent["recipient"], sent["text"]) == (
        "sent", [17], "+255700000001", "Habari 😀")
    assert (sent["sender"], sent["dlr_url"], sent["dlr_mask"], sent["sent_by"]) == (
        "HQ", "http://rs/dlr?id=1", 31, "m1")
    assert sent["created_at"] <= sent["sending_at"] <= sent["sent_at"]
    failed = store.get_outbound(bad)
    assert (failed["status"], failed["last_error"]) == ("failed", "+CMS ERROR: 38 (network out of order)")
    assert store.get_outbound("missing") is None
    json.dumps(sent)


@pytest.mark.parametrize("resend, status", [(True, "queued"), (False, "unknown")])
def test_recover_sending_after_a_crash(store, clock, resend, status):
    left, done = store.add_outbound(["+1", "+2"], "x", encoding="gsm7", parts=1)
    store.outbound_sending(left, modem="m1")
    store.outbound_sending(done, modem="m1")
    store.outbound_sent(done, references=[1])
    assert store.recover_sending(resend=resend) == 1
    assert store.get_outbound(left)["status"] == status
    assert store.get_outbound(done)["status"] == "sent"
    assert store.recover_sending(resend=resend) == 0
    nxt = store.next_outbound("m1", clock.now)
    assert (nxt["id"] if nxt else None) == (left if resend else None)


def test_sent_claims_the_next_message_in_the_same_transaction(store, clock):
    """While a queue drains, the commit that records one message sent claims the next for the
    same modem: one durable commit a message, the next still `sending` before its AT+CMGS."""
    first, second = store.add_outbound(["+1", "+2"], "x", encoding="gsm7", parts=1)
    [pinned] = store.add_outbound(["+3"], "x", encoding="gsm7", parts=1, modem="m2")
    assert store.outbound_sending(first, modem="m1")
    statements = []
    store._conn().set_trace_callback(statements.append)
    claimed = store.outbound_sent(first, references=[1], claim_next="m1")
    store._conn().set_trace_callback(None)
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
        "BEGIN IMMEDIATE", "COMMIT"]
    assert claimed["id"] == second and claimed["attempts"] == 0   # as next_outbound gives it
    row = store.get_outbound(second)
    assert (row["status"], row["attempts"], row["sent_by"]) == ("sending", 1, "m1")
    assert store.get_outbound(first)["status"] == "sent"
    # nothing left for m1 (the third is pinned to m2): nothing claimed
    assert store.outbound_sent(second, references=[2], claim_next="m1") is None
    assert store.get_outbound(pinned)["status"] == "queued"


def test_a_claim_may_take_the_message_after_it_too(store, clock):
    """The start of a pipelined drain: the message sent now and the one after, in one commit."""
    first, second, third = store.add_outbound(["+1", "+2", "+3"], "x", encoding="gsm7", parts=1)
    after = store.outbound_sending(first, modem="m1", claim_next="m1")
    assert after["id"] == second
    assert [store.get_outbound(i)["status"] for i in (first, second, third)] == [
        "sending", "sending", "queued"]
    assert store.outbound_sending(third, modem="m1", claim_next="m1") is True   # none left
    assert store.outbound_sending(third, modem="m1", claim_next="m1") is False  # taken


def test_an_unused_claim_goes_back_to_the_queue_as_it_was(store, clock):
    first, second = store.add_outbound(["+1", "+2"], "x", encoding="gsm7", parts=1)
    store.outbound_sending(first, modem="m1")
    assert store.outbound_sent(first, references=[1], claim_next="m1")["id"] == second
    store.outbound_unclaim(second)
    row = store.get_outbound(second)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    assert store.next_outbound("m1", clock.now)["id"] == second
    store.outbound_unclaim(first)                     # a sent message is not touched
    assert store.get_outbound(first)["status"] == "sent"


def test_a_modem_with_a_cap_claims_nothing_with_its_sent(store, clock):
    store.set_pool({"m1": {"routes": [], "daily_cap": 100, "hourly_cap": 0}})
    first, second = store.add_outbound(["+1", "+2"], "x", encoding="gsm7", parts=1)
    store.outbound_sending(first, modem="m1")
    assert store.outbound_sent(first, references=[1], claim_next="m1") is None
    assert store.get_outbound(second)["status"] == "queued"


def test_a_thousand_recipients_are_one_transaction(store):
    statements = []
    store._conn().set_trace_callback(statements.append)
    numbers = ["+2557%08d" % i for i in range(1000)]
    ids = store.add_outbound(numbers, "Clinic day tomorrow", encoding="gsm7", parts=1)
    store._conn().set_trace_callback(None)
    assert len(ids) == len(set(ids)) == 1000
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert store.counts()["outbound"]["queued"] == 1000
    assert [store.get_outbound(i)["recipient"] for i in (ids[0], ids[-1])] == [numbers[0], numbers[-1]]


def test_bad_recipients_are_refused_before_anything_is_written(store):
    with pytest.raises(ValueError):
        store.add_outbound(["+1", "", "+3"], "x", encoding="gsm7", parts=1)
    with pytest.raises(TypeError):
        store.add_outbound("+255700000001", "x", encoding="gsm7", parts=1)
    assert store.counts()["outbound"]["queued"] == 0


def test_status_reports_mark_a_multipart_message_delivered_when_every_part_is(store):
    msg_id = store.add_outbound(["+255700000001"], "long", encoding="gsm7", parts=2)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[200, 201])
    # the network writes the number its own way; a pending report changes nothing
    assert store.add_report(modem="m1", reference=200, recipient="255700000001", status=0x20,
                            pdu="R0")
    assert store.add_report(modem="m1", reference=200, recipient="255700000001", status=0x00,
                            pdu="R1")
    assert store.get_outbound(msg_id)["status"] == "sent"
    assert store.add_report(modem="m1", reference=201, recipient="+255700000001", status=0x00,
                            pdu="R2")
    row = store.get_outbound(msg_id)
    assert row["status"] == "delivered" and row["delivered_at"]
    assert [r["status"] for r in row["reports"]] == [0, 0]
    assert store.add_report(modem="m1", reference=201, recipient="+255700000001", status=0,
                            pdu="R2") is None  # the same report read twice


def test_a_failure_report_fails_the_message_and_strangers_are_kept(store):
    msg_id = store.add_outbound(["+255700000001"], "x", encoding="gsm7", parts=1)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[5])
    assert store.add_report(modem="m1", reference=5, recipient="+255799999999", status=0, pdu="A")
    assert store.get_outbound(msg_id)["status"] == "sent"  # another number: not ours
    store.add_report(modem="m1", reference=5, recipient="+255700000001", status=0x41, pdu="B")
    row = store.get_outbound(msg_id)
    assert row["status"] == "failed" and "0x41" in row["last_error"]
    reports = {r["pdu"]: r for r in store.reports()}
    assert reports["A"]["outbound_id"] is None and reports["B"]["outbound_id"] == msg_id


# -- operators' view ---------------------------------------------------------------------------


def test_counts_recent_and_modems_are_plain_json(store, clock):
    inbound(store, "+1", "in one")
    clock.now += 1
    out = store.add_outbound(["+2"], "out one", encoding="gsm7", parts=1)[0]
    store.set_modem("m1", state="up", signal=17, operator="Vodacom")
    store.set_modem("m1", signal=9)
    counts = store.counts()
    assert counts["inbound"] == {"pending": 1, "delivered": 0, "failed": 0}
    assert counts["outbound"]["queued"] == 1 and counts["outbound"]["sent"] == 0
    assert counts["oldest_pending_inbound"] == clock.now - 1
    recent = store.recent()
    assert [(r["direction"], r["text"]) for r in recent] == [("out", "out one"), ("in", "in one")]
    assert recent[0]["id"] == out
    modems = store.modems()
    assert modems["m1"]["signal"] == 9 and modems["m1"]["operator"] == "Vodacom"
    json.dumps({"counts": counts, "recent": recent, "modems": modems})


def test_maintenance_forgets_old_keys_but_not_those_of_waiting_parts(store, clock):
    inbound(store, "+1", "old", key="old-key")
    store.add_part(modem="m1", key="part-key", sender="+1", reference=1, total=2, sequence=1,
                   bits=8, pdu="P")
    clock.now += 31 * 86400
    inbound(store, "+1", "new", key="new-key")
    assert store.maintenance(seen_days=30)["seen"] == 1
    assert not store.seen("old-key") and store.seen("part-key") and store.seen("new-key")


def test_maintenance_can_drop_old_delivered_but_never_failed(store, clock):
    done = inbound(store, "+1", "done")
    refused = inbound(store, "+2", "refused")
    store.inbound_delivered(done, response="")
    store.inbound_failed(refused, error="HTTP 400")
    clock.now += 100 * 86400
    removed = store.maintenance(keep_days=90)
    assert removed["inbound"] == 1
    assert store.get_inbound(done) is None and store.get_inbound(refused)["status"] == "failed"


# -- durability --------------------------------------------------------------------------------


def test_everything_survives_closing_and_reopening(path, clock):
    s = Store(path, clock=clock)
    a = inbound(s, "+1", "first 😀")
    b = inbound(s, "+1", "second")
    s.inbound_delivered(a, response="ok")
    s.add_part(modem="m1", key="pk", sender="+9", reference=3, total=2, sequence=1, bits=8, pdu="P1")
    out = s.add_outbound(["+2", "+3"], "queued ñ", encoding="ucs2", parts=1, modem="m1")
    s.outbound_sending(out[0], modem="m1")
    s.outbound_sent(out[0], references=[9])
    s.set_modem("m1", state="up")
    s.close()

    s = Store(path, clock=clock)
    assert s.get_inbound(a)["status"] == "delivered"
    assert due_texts(s) == [("+1", "second")] and s.get_inbound(b)["status"] == "pending"
    assert s.seen("key-+1-first 😀")
    assert [p["key"] for p in s.pending_parts("m1")] == ["pk"]
    assert s.get_outbound(out[0])["references"] == [9]
    assert s.next_outbound("m1", clock.now)["text"] == "queued ñ"
    assert s.modems()["m1"]["state"] == "up"
    s.close()


_WRITER = r"""
import sys, time
from gsmbridge.store import Store
s = Store(sys.argv[1])
i = int(sys.argv[2])
while True:
    msg = s.add_inbound(modem="m", sender="+25570000000%d" % (i % 7), text="in %d" % i,
                        sent_at=None, parts=1, incomplete=False, pdus=["00"], keys=["k%d" % i])
    print("in", msg, flush=True)
    s.add_outbound(["+2557%08d" % j for j in range(100)], "batch %d" % i, encoding="gsm7", parts=1)
    print("batch", i, flush=True)
    for n, row in enumerate(s.due_inbound(time.time(), limit=3)):
        if n % 2:
            s.inbound_failed(row["id"], error="HTTP 400")
        else:
            s.inbound_delivered(row["id"], response="")
    i += 1
"""


def test_a_writer_killed_with_sigkill_leaves_a_consistent_store(path):
    acked_in, acked_batches = [], []
    package = os.path.dirname(os.path.dirname(store_module.__file__))   # gsmbridge/store/ -> gsmbridge/
    env = dict(os.environ, PYTHONPATH=os.path.dirname(package))
    for round_, stop_after in enumerate((25, 40, 60)):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, path, str(round_ * 1000)],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            batches = 0
            for line in proc.stdout:
                kind, value = line.split()
                if kind == "in":
                    acked_in.append(value)
                else:
                    acked_batches.append("batch %s" % value)
                    batches += 1
                    if batches == stop_after:
                        break
            os.kill(proc.pid, signal.SIGKILL)  # mid-way through whatever it does next
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL

        s = Store(path)
        assert s.check() == []
        for msg_id in acked_in:
            assert s.get_inbound(msg_id) is not None
        db = s._conn()
        sizes = dict(db.execute("SELECT text, COUNT(*) FROM outbound GROUP BY text").fetchall())
        assert all(n == 100 for n in sizes.values()), "a batch was half written"
        assert set(acked_batches) <= set(sizes)
        s.close()


# -- threads -----------------------------------------------------------------------------------


def test_threads_writing_at_once_lose_nothing(store):
    errors = []

    def writer(n):
        try:
            for i in range(40):
                inbound(store, "+%d" % n, "t%d-%d" % (n, i))
                store.add_outbound(["+%d" % n], "o%d" % i, encoding="gsm7", parts=1)
        except Exception as exc:  # pragma: no cover - shows up in the assert
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    counts = store.counts()
    assert counts["inbound"]["pending"] == 240 and counts["outbound"]["queued"] == 240
    assert store.check() == []


def test_wait_returns_on_notify_from_another_thread(store):
    returned = threading.Event()
    store.wait(0)  # this thread has now seen every notify so far

    def sleeper():
        store.wait(60)
        returned.set()

    t = threading.Thread(target=sleeper)
    t.start()
    time.sleep(0.05)
    inbound(store, "+1", "wake up")  # writes that add work notify
    assert returned.wait(10)
    t.join()


def test_a_notify_while_busy_is_not_lost(store):
    store.wait(0)
    store.notify()          # arrives while this thread is "working"
    started = time.monotonic()
    store.wait(30)          # must return at once
    assert time.monotonic() - started < 10


# -- query plans -------------------------------------------------------------------------------


QUEUE_QUERIES = [
    ("DUE_INBOUND_SQL", "inbound_due", {}),
    ("NEXT_INBOUND_DUE_SQL", "inbound_due", {}),
    ("OLDEST_PENDING_OF_SENDER_SQL", "inbound_sender_pending", {}),
    ("DEMOTE_HEADS_SQL", "inbound_sender_pending", {}),
    ("NEXT_OUTBOUND_PINNED_SQL", "outbound_queue", {}),
    # SQLite rates "modem IS NULL" as matching more rows than "modem = ?", so even with
    # statistics it picks outbound_status and walks every queued message, pinned ones too:
    # the hint is what keeps it on outbound_queue.
    ("NEXT_OUTBOUND_ANY_SQL", "outbound_queue", {"hint_needed": True}),
    ("COUNT_INBOUND_SQL", "inbound_status", {"whole_index": True}),
    ("COUNT_OUTBOUND_SQL", "outbound_status", {"whole_index": True}),
]


def _fill_queues(store, *, drop=None):
    """A queue of mixed rows with ANALYZE statistics (as PRAGMA optimize makes); `drop`: an index
    to drop first. Returns the connection."""
    db = store._conn()
    db.execute("BEGIN")
    db.executemany("INSERT INTO inbound (id, modem, sender, text, received_at, pdus, status, head,"
                   " next_attempt) VALUES (?, 'm', ?, 't', 0, '[]', ?, ?, ?)",
                   [("i%d" % i, "+%d" % (i % 50), "pending" if i % 3 else "delivered",
                     1 if i < 50 else 0, i) for i in range(3000)])
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, modem, status, next_attempt,"
                   " created_at) VALUES (?, '+1', 't', 1, ?, ?, ?, 0)",
                   [("o%d" % i, ("m1", "m2", None)[i % 3], "queued" if i % 2 else "sent", i)
                    for i in range(3000)])
    if drop:
        db.execute("DROP INDEX %s" % drop)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    return db


@pytest.mark.parametrize("name, index, options", QUEUE_QUERIES)
def test_queue_queries_use_their_index_with_statistics(store, name, index, options):
    """With a queue of mixed rows and ANALYZE statistics (as PRAGMA optimize makes), every queue
    query still walks its index rather than the table (timings at 1,000,000 rows: bench/)."""
    db = _fill_queues(store)
    assert_uses_index(db, getattr(store_module, name), index, no_sort=True, **options)


@pytest.mark.parametrize("name, index, options", QUEUE_QUERIES)
def test_the_plan_check_reports_a_queue_query_whose_index_is_gone(store, name, index, options):
    db = _fill_queues(store, drop=index)
    problems = plan_problems(db, getattr(store_module, name), index, no_sort=True, **options)
    assert problems and all(index in p for p in problems), problems
    if not options.get("hint_needed"):      # the planner itself, not only the hint, misses it
        assert any(p.startswith("left to the planner: %s is not used" % index)
                   for p in problems), problems


@pytest.mark.parametrize("name", ["NEXT_OUTBOUND_PINNED_SQL", "NEXT_OUTBOUND_ANY_SQL"])
def test_the_plan_check_reports_an_index_that_does_not_fit_its_query(store, name):
    """INDEXED BY takes any index of that name: one on the right columns in the wrong order is
    still used, but walked whole, and the check says so."""
    db = store._conn()
    db.execute("DROP INDEX outbound_queue")
    db.execute("CREATE INDEX outbound_queue ON outbound (seq, modem) WHERE status = 'queued'")
    db = _fill_queues(store)
    problems = plan_problems(db, getattr(store_module, name), "outbound_queue", no_sort=True,
                             hint_needed=True)
    assert ("as the store runs it: outbound_queue is walked whole, not searched:"
            " 'SCAN outbound USING INDEX outbound_queue'") in problems, problems

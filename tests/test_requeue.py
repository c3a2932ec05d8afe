"""`gsmbridge requeue`: failed rows back in their queue, the same ids, each direction; in the store,
from the command line, and against a running bridge that picks them up by itself."""

import subprocess
import sys

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from gsmbridge.store import Store, why_not

FAR = 1e12


def inbound(store, sender, text):
    return store.add_inbound(modem="m1", sender=sender, text=text, sent_at=None, pdus=["AA"],
                             keys=["key-%s-%s" % (sender, text)])


def outbound(store, to="+255700000001", dlr=False, modem=None):
    msg_id = store.add_outbound([to], "x", encoding="gsm7", parts=1, modem=modem,
                                dlr_url="http://127.0.0.1:1/dlr?t=%d" if dlr else None,
                                dlr_mask=31 if dlr else 0)[0]
    assert store.outbound_sending(msg_id, modem="m1")
    return msg_id


# -- the store ---------------------------------------------------------------------------------


def test_inbound_comes_back_with_its_id_in_its_senders_order(store):
    a1, a2, a3 = (inbound(store, "A", t) for t in ("a1", "a2", "a3"))
    b1 = inbound(store, "B", "b1")
    for msg_id in (a1, a2, b1):
        store.inbound_failed(msg_id, error="HTTP 400")
    assert [r["id"] for r in store.due_inbound(FAR)] == [a3]
    assert store.requeue("in", ids=[a2]) == 1
    assert [r["id"] for r in store.due_inbound(FAR)] == [a2]   # before a3, its younger one
    assert store.get_inbound(b1)["status"] == "failed"         # not asked for
    assert store.requeue("in") == 2                            # a1 and b1
    assert sorted(r["id"] for r in store.due_inbound(FAR)) == sorted([a1, b1])
    row = store.get_inbound(a1)
    assert (row["status"], row["failed_at"], row["attempts"]) == ("pending", None, 1)
    assert store.check() == []


def test_outbound_comes_back_by_status_with_a_fresh_budget(store, clock):
    failed, unknown = outbound(store), outbound(store, to="+255700000002")
    store.outbound_failed(failed, error="+CMS ERROR: 21")
    store.recover_sending(resend=False)
    assert store.get_outbound(unknown)["status"] == "unknown"
    assert store.requeue("out", status="unknown") == 1
    assert store.get_outbound(failed)["status"] == "failed"
    row = store.get_outbound(unknown)
    assert (row["status"], row["attempts"], row["failed_at"]) == ("queued", 0, None)
    assert store.requeue("out") == 1
    assert store.next_outbound("m1", clock.now)["id"] == failed    # queue order: oldest first
    assert {store.get_outbound(i)["status"] for i in (failed, unknown)} == {"queued"}


def test_outbound_is_routed_again_by_the_pool_of_now(store, clock):
    msg_id = outbound(store, to="+255780000001")
    store.outbound_failed(msg_id, error="x")
    store.set_pool({"m1": {"routes": ["+25578"]}, "m2": {"routes": ["+25571"]}})
    store.set_modem("m1", state="up", updated_at=clock.now)
    store.requeue("out")
    assert store.next_outbound("m2", clock.now) is None     # routed to m1, which can take it
    assert store.next_outbound("m1", clock.now)["id"] == msg_id


def test_callbacks_come_back_by_their_id_or_their_messages(store):
    msg_id = outbound(store, dlr=True)
    store.outbound_sent(msg_id, references=[1])
    store.add_report(modem="m1", reference=1, recipient="+255700000001", status=0, pdu="R")
    other = outbound(store, to="+255700000002", dlr=True)
    store.outbound_sent(other, references=[2])
    for cb in store.callbacks():
        store.callback_failed(cb["id"], error="HTTP 400")
    [first_of_other] = store.callbacks(other)
    assert store.requeue("callbacks", ids=[str(first_of_other["id"])]) == 1
    assert store.requeue("callbacks", ids=[msg_id]) == 2       # both of that message's
    assert {c["status"] for c in store.callbacks()} == {"pending"}
    assert [c["type"] for c in store.due_callbacks(FAR)] == [8, 8]   # 8 before 1, as before


def test_a_large_requeue_goes_in_small_transactions(store):
    ids = [inbound(store, "+2557%08d" % (i % 7), "m%d" % i) for i in range(23)]
    for msg_id in ids:
        store.inbound_failed(msg_id, error="HTTP 400")
    transactions = []
    store._conn().set_trace_callback(
        lambda sql: transactions.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None)
    assert store.requeue("in", batch=5) == 23
    store._conn().set_trace_callback(None)
    assert len(transactions) == 5                       # 5 + 5 + 5 + 5 + 3
    assert store.counts()["inbound"]["pending"] == 23 and store.check() == []


@pytest.mark.parametrize("direction, status, words", [
    ("in", "pending", "in their queue already"),
    ("in", "delivered", "were taken by RapidSMS already"),
    ("in", "unknown", "never 'unknown'"),
    ("out", "queued", "in their queue already"),
    ("out", "sending", "in their queue already"),
    ("out", "sent", "left the modem already"),
    ("out", "delivered", "left the modem already"),
    ("callbacks", "delivered", "were made already"),
    ("sideways", "failed", "in, out or callbacks"),
])
def test_nonsense_is_refused_with_a_reason(store, direction, status, words):
    assert words in why_not(direction, status)
    with pytest.raises(ValueError, match=words):
        store.requeue(direction, status=status)


def test_locate_finds_an_id_in_any_direction(store):
    msg_id = outbound(store, dlr=True)
    store.outbound_failed(msg_id, error="x")
    in_id = inbound(store, "A", "a")
    assert store.locate(in_id) == [("in", "pending")]
    assert store.locate(msg_id) == [("out", "failed"), ("callbacks", "pending")]
    assert store.locate(str(store.callbacks(msg_id)[0]["id"])) == [("callbacks", "pending")]
    assert store.locate("nope") == []


# -- the command line --------------------------------------------------------------------------


def gsmbridge(ini, *args):
    return subprocess.run([sys.executable, "-m", "gsmbridge", *args, "-c", str(ini)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def ini(tmp_path):
    path = tmp_path / "gsmbridge.ini"
    path.write_text("[modem]\nport = sim://\n[rapidsms]\nurl = http://127.0.0.1:9/backend/\n"
                    "[store]\npath = store.sqlite3\n")
    return path


@pytest.mark.parametrize("args, words", [
    ((), "--direction in, out or callbacks"),
    (("--status", "failed"), "--direction in, out or callbacks"),
    (("--direction", "in", "--status", "pending"), "in their queue already"),
    (("--direction", "in", "--status", "unknown"), "never 'unknown'"),
    (("--direction", "out", "--status", "sent"), "left the modem already"),
    (("--direction", "callbacks", "--status", "unknown"), "never 'unknown'"),
    (("--direction", "in", "--status", "lost"), "'lost' is not a status"),
    (("--direction", "sideways"), "invalid choice: 'sideways'"),
])
def test_nonsense_exits_2_saying_why(ini, args, words):
    Store(str(ini.parent / "store.sqlite3")).close()
    p = gsmbridge(ini, "requeue", *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert words in p.stderr and p.stdout == ""


def test_the_command_counts_filters_and_explains(ini):
    store = Store(str(ini.parent / "store.sqlite3"))
    a, b = inbound(store, "A", "a"), inbound(store, "B", "b")
    store.inbound_failed(a, error="HTTP 400")
    store.inbound_failed(b, error="HTTP 400")
    out = outbound(store)
    store.outbound_failed(out, error="x")
    store.close()

    p = gsmbridge(ini, "requeue", "--id", a)                   # the direction found by the id
    assert (p.returncode, p.stdout) == (0, "requeued 1 failed inbound message: RapidSMS gets it "
                                           "again, with the same id\n")
    p = gsmbridge(ini, "requeue", "--id", a)                   # pending now
    assert p.returncode == 1
    assert "inbound message %s is pending, not failed; left as it is" % a in p.stderr
    p = gsmbridge(ini, "requeue", "--id", out, "--status", "unknown")
    assert p.returncode == 1 and "is failed, not unknown" in p.stderr
    p = gsmbridge(ini, "requeue", "--id", a, "--status", "unknown")   # nonsense for an inbound id
    assert p.returncode == 2 and "never 'unknown'" in p.stderr
    p = gsmbridge(ini, "requeue", "--id", "0123456789abcdef")
    assert p.returncode == 1 and "no message or callback has the id" in p.stderr
    p = gsmbridge(ini, "requeue", "--direction", "out")
    assert (p.returncode, p.stdout) == (0, "requeued 1 failed outbound message: the modem sends "
                                           "it again, with the same id\n")
    p = gsmbridge(ini, "requeue", "--direction", "callbacks")
    assert (p.returncode, p.stdout) == (0, "nothing to requeue: no failed delivery-report "
                                           "callbacks\n")

    store = Store(str(ini.parent / "store.sqlite3"))
    assert store.get_inbound(a)["status"] == "pending" and store.get_inbound(b)["status"] == "failed"
    assert store.get_outbound(out)["status"] == "queued"
    store.close()


def test_the_command_never_makes_a_store(ini):
    p = gsmbridge(ini, "requeue", "--direction", "in")
    assert p.returncode == 1 and "no store at" in p.stderr
    assert not (ini.parent / "store.sqlite3").exists()


# -- against a running bridge ------------------------------------------------------------------


def api(bridge, path, **params):
    return requests.get(bridge.api + path, params=params, auth=bridge.auth, timeout=10).json()


def inbound_by_text(bridge):
    return {m["text"]: m for m in api(bridge, "/api/v1/messages", direction="in")["messages"]}


def test_requeued_inbound_goes_to_rapidsms_again_with_its_id(tmp_path, sink):
    sink.set_response(400, "unknown backend")
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    bridge.start()
    try:
        bridge.inject("+255700000021", "first")
        bridge.inject("+255700000022", "second")
        failed = wait_for(lambda: (lambda m: len(m) == 2 and all(
            x["status"] == "failed" for x in m.values()) and m)(inbound_by_text(bridge)),
            message="both refused by RapidSMS")
        sink.set_response(200)
        first, second = failed["first"]["id"], failed["second"]["id"]

        p = gsmbridge(bridge.ini, "requeue", "--direction", "in", "--id", first)
        assert p.returncode == 0 and p.stdout.startswith("requeued 1 failed inbound"), p.stderr
        wait_for(lambda: inbound_by_text(bridge)["first"]["status"] == "delivered", timeout=15,
                 message="the requeued message delivered by the running bridge")
        assert inbound_by_text(bridge)["second"]["status"] == "failed"
        taken = [r for r in sink.requests if r.status == 200]
        assert [(r.args["text"], r.headers["X-Message-Id"]) for r in taken] == [("first", first)]

        p = gsmbridge(bridge.ini, "requeue", "--direction", "in", "--status", "failed")
        assert p.returncode == 0 and p.stdout.startswith("requeued 1 failed inbound"), p.stderr
        wait_for(lambda: inbound_by_text(bridge)["second"]["status"] == "delivered", timeout=15,
                 message="the second delivered")
        taken = [r for r in sink.requests if r.status == 200]
        assert taken[-1].headers["X-Message-Id"] == second
        assert len(taken) == 2
    finally:
        bridge.stop()


def test_requeued_outbound_and_callbacks_go_out_again_with_their_ids(tmp_path, sink):
    sink.set_response(200)
    sink.set_handler(lambda request: (400, "no") if request.path == "/dlr/" else None)
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    bridge.start()
    try:
        bridge.faults(cms_error=1.0, cms_error_code=21)     # the network refuses the SM
        r = bridge.send(["+255700000031"], "try again later",
                        dlr_url=sink.url + "/dlr/?type=%d&id=%I")
        assert r.status_code == 202, r.text
        msg_id = r.json()["ids"][0]

        def message():
            return api(bridge, "/api/v1/messages/" + msg_id)

        wait_for(lambda: message()["status"] == "failed" and message()["callbacks"] and
                 message()["callbacks"][0]["status"] == "failed", timeout=20,
                 message="the message and its type 16 callback failed")
        # the callback first: its receiver takes it now
        sink.set_handler(None)
        p = gsmbridge(bridge.ini, "requeue", "--direction", "callbacks", "--id", msg_id)
        assert (p.returncode, p.stdout) == (
            0, "requeued 1 failed delivery-report callback: the bridge makes it again\n"), p.stderr
        wait_for(lambda: message()["callbacks"][0]["status"] == "delivered", timeout=15,
                 message="the callback made again")
        dlr = [r for r in sink.requests if r.path == "/dlr/"]
        assert [(r.args, r.status) for r in dlr] == [
            ({"type": "16", "id": msg_id}, 400), ({"type": "16", "id": msg_id}, 200)]

        # then the message: the network takes it now
        bridge.faults(cms_error=0.0)
        p = gsmbridge(bridge.ini, "requeue", "--direction", "out", "--id", msg_id)
        assert p.returncode == 0 and p.stdout.startswith("requeued 1 failed outbound"), p.stderr
        wait_for(lambda: message()["status"] in ("sent", "delivered"), timeout=15,
                 message="the requeued message sent by the running bridge")
        assert [s["text"] for s in bridge.sent()] == ["try again later"]
        wait_for(lambda: any(r.args.get("type") == "8" and r.args.get("id") == msg_id
                             for r in sink.requests), timeout=15, message="its type 8 callback")
        p = gsmbridge(bridge.ini, "requeue", "--direction", "out", "--status", "unknown")
        assert (p.returncode, p.stdout) == (0, "nothing to requeue: no unknown outbound "
                                               "messages\n")
    finally:
        bridge.stop()

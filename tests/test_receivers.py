"""RapidSMS answering "not there" (401, 403, 404, 405, 410, ...) holds messages instead of failing
them, and /health, /status and `gsmbridge status` say so; a 4xx about the message itself (400,
422, 413, ...) still fails it for good. Real store, real HTTP sink on 127.0.0.1, and a real bridge
process for the end-to-end case."""

import re
import subprocess
import sys
import time

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from webserver import served
from gsmbridge import cli, overview
from gsmbridge import config as configmod
from gsmbridge.delivery import NOT_THERE_4XX, RETRYABLE_4XX, classify
from gsmbridge.dlr import DlrSender
from gsmbridge.forwarder import Forwarder
from gsmbridge.safeurl import CallbackGuard
from gsmbridge.store import Store
from gsmbridge.web import create_app

FAR = 1e12  # a "now" at which every retry is due


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()


def make(store, sink, **kw):
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.05)
    return Forwarder(store, url=sink.url + "/backend/kannel-backend/", timeout=5.0, **kw)


def add(store, sender="+255700000001", text="hello"):
    return store.add_inbound(modem="m1", sender=sender, text=text, sent_at=None, pdus=["AA"],
                             keys=["key-%s-%s-%f" % (sender, text, time.time())])


# -- the table ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status, outcome", [
    (200, "delivered"), (201, "delivered"), (202, "delivered"), (204, "delivered"),
    # the receiver is not there: no message is at fault
    (401, "not there"), (403, "not there"), (404, "not there"), (405, "not there"),
    (407, "not there"), (410, "not there"), (421, "not there"), (426, "not there"),
    # try later
    (408, "retry"), (425, "retry"), (429, "retry"),
    # the message itself is refused
    (400, "refused"), (413, "refused"), (414, "refused"), (415, "refused"), (422, "refused"),
    (409, "refused"), (451, "refused"),
    # the receiver fails, or points elsewhere
    (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"), (301, "retry"),
    (302, "retry"), (100, "retry"),
])
def test_each_status_has_its_outcome(status, outcome):
    assert classify(status) == outcome


def test_the_two_4xx_sets_are_apart():
    assert not NOT_THERE_4XX & RETRYABLE_4XX
    assert {401, 403, 404, 405, 410} <= NOT_THERE_4XX and {400, 422}.isdisjoint(NOT_THERE_4XX)


# -- the forwarder -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 404, 405, 410])
def test_not_there_holds_the_message_and_records_the_receiver(store, sink, status):
    sink.set_response(status, "<h1>Not here</h1>")
    msg_id = add(store)
    fwd = make(store, sink, backoff_base=30.0, backoff_cap=60.0)
    assert fwd.step(now=time.time()) == 1
    row = store.get_inbound(msg_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"] == "HTTP %d: <h1>Not here</h1>" % status
    assert row["next_attempt"] > time.time() + 20          # backed off
    state = store.receivers()[fwd.receiver_name]
    assert (state["state"], state["status"]) == ("not there", status)
    # held: a message that falls due meanwhile is not tried either
    add(store, sender="+255700000002")
    assert fwd.step(now=time.time()) == 0 and len(sink.requests) == 1
    assert store.counts()["inbound"] == {"pending": 2, "delivered": 0, "failed": 0}


def test_not_there_then_back_delivers_with_the_same_id_and_none_failed(store, sink):
    answers = iter([404, 404, 200, 200])
    sink.set_handler(lambda request: next(answers))
    first, second = add(store, text="one"), add(store, text="two")
    fwd = make(store, sink)
    for _ in range(4):
        fwd.step(now=FAR)
    assert [r.status for r in sink.requests] == [404, 404, 200, 200]
    assert [r.headers["X-Message-Id"] for r in sink.requests] == [first, first, first, second]
    assert store.counts()["inbound"] == {"pending": 0, "delivered": 2, "failed": 0}
    state = store.receivers()[fwd.receiver_name]
    assert (state["state"], state["status"]) == ("up", None)


@pytest.mark.parametrize("status", [400, 413, 414, 415, 422])
def test_a_refusal_of_the_message_fails_it_and_the_receiver_stays_up(store, sink, status):
    sink.set_response(status, "bad message")
    msg_id = add(store)
    fwd = make(store, sink)
    fwd.step(now=FAR)
    row = store.get_inbound(msg_id)
    assert (row["status"], row["last_error"]) == ("failed", "HTTP %d: bad message" % status)
    assert store.receivers()[fwd.receiver_name]["state"] == "up"
    assert fwd.step(now=FAR) == 0 and len(sink.requests) == 1   # never retried


def test_a_failing_or_silent_receiver_is_recorded_too(store, sink):
    add(store)
    fwd = make(store, sink)
    sink.set_response(503)
    fwd.step(now=FAR)
    state = store.receivers()[fwd.receiver_name]
    assert (state["state"], state["status"]) == ("failing", 503)
    sink.refuse()
    fwd.step(now=FAR)
    state = store.receivers()[fwd.receiver_name]
    assert (state["state"], state["status"]) == ("not answering", None)
    assert "Connection" in state["error"] or "refused" in state["error"]


def test_the_receivers_state_is_written_only_when_it_changes(tmp_path, sink, clock):
    store = Store(str(tmp_path / "clocked.sqlite3"), clock=clock)
    try:
        for i in range(3):
            add(store, sender="+25570000000%d" % i)
        sink.set_response(404)
        fwd = make(store, sink)
        fwd.step(now=FAR)
        first = store.receivers()[fwd.receiver_name]
        since = first["since"]
        clock.now += 60                 # a row written again would say so in its updated_at
        fwd.step(now=FAR)
        fwd.step(now=FAR)
        assert len(sink.requests) == 3
        assert store.receivers()[fwd.receiver_name]["since"] == since
        assert store.receivers()[fwd.receiver_name]["updated_at"] == first["updated_at"]
    finally:
        store.close()


def test_the_receiver_is_named_without_credentials_or_query_values(store, sink):
    url = sink.url.replace("://", "://user:pw@") + "/router/receive?password=s3cret"
    fwd = Forwarder(store, url=url, style="httprouter", timeout=5.0)
    add(store)
    sink.set_response(404)
    fwd.step(now=FAR)
    [name] = store.receivers()
    assert "s3cret" not in name and "pw" not in name
    assert name == "http://***@127.0.0.1:%d/router/receive?password=***" % sink.port


def test_callbacks_to_a_host_not_there_are_held_and_retried(store, sink):
    msg_id = store.add_outbound(["+255700000001"], "x", encoding="gsm7", parts=1,
                                dlr_url=sink.url + "/dlr/?type=%d", dlr_mask=8)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[1])
    sink.set_response(404, "deploying")
    sender = DlrSender(store, backoff_base=0.01, backoff_cap=0.05,
                       guard=CallbackGuard(origins=[sink.url]))
    sender.step(now=FAR)
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["last_error"]) == ("pending", "HTTP 404: deploying")
    sink.set_response(200)
    sender.step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == "delivered"
    assert store.receivers() == {}          # callback hosts are callers', not kept


# -- /health's words ---------------------------------------------------------------------------


def data_with(receivers, modem_ok=True, now=None):
    now = time.time() if now is None else now
    modems = {"modem": {"state": "up", "updated_at": now, "registered": True}}
    return {"modems": modems, "counts": {"inbound": {"pending": 0}, "outbound": {"queued": 0}},
            "activity": {}, "receivers": receivers}


def test_a_receiver_not_there_is_a_warning_at_once_and_a_problem_after_a_while(tmp_path):
    config = configmod.for_tests(str(tmp_path))
    now = time.time()
    name = "http://127.0.0.1:8000/backend/kannel-backend/"
    fresh = {name: {"state": "not there", "status": 404, "since": now - 30, "error": "x"}}
    data = data_with(fresh, now=now)
    assert overview.problems(data, config, now=now) == []
    [warning] = overview.warnings(data, config, now=now)
    assert warning == ("receiver %s answers HTTP 404 Not Found (not there: a wrong URL or "
                       "password, or a deploy under way) for 30 s; inbound messages wait and are "
                       "retried" % name)
    old = {name: dict(fresh[name], since=now - overview.RECEIVER_STALE - 60)}
    data = data_with(old, now=now)
    assert overview.warnings(data, config, now=now) == []
    [reason] = overview.problems(data, config, now=now)
    assert reason.startswith("receiver %s answers HTTP 404 Not Found" % name)
    assert "for 11 min" in reason
    up = {name: {"state": "up", "status": None, "since": now - 9999}}
    data = data_with(up, now=now)
    assert overview.problems(data, config, now=now) == overview.warnings(data, config, now=now) == []


def test_health_report_reads_the_receivers_from_the_store(store, tmp_path):
    config = configmod.for_tests(str(tmp_path), store={"path": store.path})
    store.set_modem("modem", state="up", registered=True)
    store.set_receiver("http://127.0.0.1:8000/x/", "not answering", error="ConnectionError: no")
    reasons, warnings = overview.health_report(store, config)
    assert reasons == []
    assert warnings[0].startswith("receiver http://127.0.0.1:8000/x/ does not answer for ")


def test_the_status_page_and_status_show_a_receiver_not_there(tmp_path):
    config = configmod.for_tests(str(tmp_path), http={"username": "u", "password": "p"},
                                 store={"path": str(tmp_path / "store.sqlite3")})
    store = Store(config.store.path)
    name = "http://127.0.0.1:8000/backend/kannel-backend/"
    try:
        store.set_modem("modem", state="up", registered=True)
        store.set_receiver(name, "not there", status=410, error="HTTP 410: gone")
        with served(create_app(store, config)) as url:
            page = requests.get(url + "/", auth=("u", "p"), timeout=10).text
            status = requests.get(url + "/status", auth=("u", "p"), timeout=10).json()
            metrics = requests.get(url + "/metrics", auth=("u", "p"), timeout=10).text
        assert 'id="warnings"' in page
        assert "receiver %s answers HTTP 410 Gone (not there" % name in page
        assert status["receivers"][name]["state"] == "not there"
        assert status["health"]["ok"] is True and len(status["health"]["warnings"]) == 1
        assert 'gsmbridge_receiver_up{receiver="%s"} 0.0' % name in metrics
    finally:
        store.close()


# -- the whole bridge --------------------------------------------------------------------------


def inbound(bridge):
    return requests.get(bridge.api + "/api/v1/messages", params={"direction": "in"},
                        auth=bridge.auth, timeout=10).json()["messages"]


def test_a_bridge_holds_inbound_while_rapidsms_answers_404_then_delivers(tmp_path, sink):
    sink.set_response(404, "<html>Page not found</html>")
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    bridge.start()
    try:
        texts = ["during the deploy %d" % i for i in range(3)]
        for text in texts:
            bridge.inject("+255700000011", text)
        wait_for(lambda: len(sink.requests) >= 2, message="tries while RapidSMS answers 404")
        name = sink.url + "/backend/kannel-backend/"

        health = requests.get(bridge.api + "/health", timeout=10)
        assert health.status_code == 200
        [warning] = health.json()["warnings"]
        assert warning.startswith("receiver %s answers HTTP 404 Not Found (not there" % name)
        status = bridge.status()
        assert status["receivers"][name]["state"] == "not there"
        assert status["receivers"][name]["status"] == 404
        [again] = status["health"]["warnings"]
        assert re.sub(r"for \d+ s", "", again) == re.sub(r"for \d+ s", "", warning)
        p = subprocess.run([sys.executable, "-m", "gsmbridge", "status", "-c", bridge.ini],
                           capture_output=True, text=True, timeout=30)
        assert "! receiver %s answers HTTP 404" % name in p.stdout
        assert "not there (HTTP 404 Not Found)" in p.stdout
        listed = wait_for(lambda: (lambda m: len(m) == 3 and m)(inbound(bridge)),
                          message="three stored")
        assert {m["status"] for m in listed} == {"pending"}

        sink.set_response(200)
        wait_for(lambda: len([r for r in sink.requests if r.status == 200]) == 3, timeout=30,
                 message="all three delivered once RapidSMS is back")
        delivered = [r for r in sink.requests if r.status == 200]
        assert [r.args["text"] for r in delivered] == texts
        ids = {m["text"]: m["id"] for m in listed}
        for r in sink.requests:   # the 404s and the 200 of a message carry its one id
            assert r.headers["X-Message-Id"] == ids[r.args["text"]]
        assert {m["status"] for m in inbound(bridge)} == {"delivered"}
        assert requests.get(bridge.api + "/health", timeout=10).json() == {"ok": True}
        assert bridge.status()["receivers"][name]["state"] == "up"
    finally:
        bridge.stop()


def test_status_prints_the_receivers():
    now = time.time()
    data = {"now": now, "health": {"ok": True, "reasons": [], "warnings": ["receiver x w"]},
            "modems": {}, "counts": {},
            "receivers": {"http://127.0.0.1:1/b/": {"state": "not there", "status": 410,
                                                    "since": now - 120, "error": "HTTP 410: gone"}}}
    text = cli.format_status(data, "http://127.0.0.1:13013")
    assert "  ! receiver x w" in text.splitlines()
    line = [l for l in text.splitlines() if l.startswith("http://127.0.0.1:1/b/")][0]
    assert line.split() == ["http://127.0.0.1:1/b/", "not", "there", "(HTTP", "410", "Gone)", "2",
                            "min"]
    assert "last error: HTTP 410: gone" in text

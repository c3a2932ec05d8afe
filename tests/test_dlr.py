"""Delivery reports end to end: Kannel's dlr-url escapes, the store's callback queue (written with
the event that causes it), status-report matching (multipart, TP-MR wrap), the DLR sender against
a real HTTP server, a whole bridge process on the simulated modem, and RapidSMS 2.2.0's own
delivery-report view."""

import json
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from datetime import datetime, timezone

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import gsmbridge.store as store_module
from gsmbridge.store import schema
from gsmbridge import config
from gsmbridge.app import callback_guard
from httpsink import HttpSink
from plans import assert_uses_index, plan_problems
from gsmbridge.dlr import DlrSender, callback_url, fill_escapes, kannel_time
from gsmbridge.safeurl import CallbackGuard
from gsmbridge.store import Store

from bridgeproc import BridgeProcess, wait_for
from rapidsms_env import PROJECT, RapidSMS, check_installed

FAR = 1e12  # a "now" at which everything is due
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

#: the dlr-url RapidSMS 2.2.0's KannelBackend sends (rapidsms/backends/kannel/outgoing.py)
RAPIDSMS_PARAMS = ("message_id=%s&status=%%d&status_text=%%A&smsc=%%i&sms_id=%%I&date_sent=%%t"
                   "&identity=%%p")


def rapidsms_dlr_url(base, message_id):
    return base + "/delivery-report/?" + RAPIDSMS_PARAMS % message_id






def queue(store, *, to="+255700000001", parts=1, url="http://127.0.0.1:9/dlr?type=%d", mask=31,
          sender=None, modem="m1"):
    """One outbound message claimed by modem m1, ready for outbound_sent/failed."""
    msg_id = store.add_outbound([to], "hello", encoding="gsm7", parts=parts, sender=sender,
                                dlr_url=url, dlr_mask=mask)[0]
    assert store.outbound_sending(msg_id, modem=modem)
    return msg_id


def types(store, msg_id):
    return [c["type"] for c in reversed(store.callbacks(msg_id))]


# -- Kannel's escapes --------------------------------------------------------------------------


def test_rapidsms_dlr_url_is_filled_in_as_kannel_does():
    row = {"type": 8, "text": "ACK", "smsc": "modem", "outbound_id": "0123456789abcdef",
           "event_at": T0, "recipient": "+255700000001", "sender": None,
           "dlr_url": rapidsms_dlr_url("http://rs.example", "7f3a")}
    assert callback_url(row) == (
        "http://rs.example/delivery-report/?message_id=7f3a&status=8&status_text=ACK&smsc=modem"
        "&sms_id=0123456789abcdef&date_sent=2023-11-14+22:13:20&identity=%2B255700000001")


def test_escapes_percent_and_unknown_codes():
    values = {"d": "1", "A": "id:7 stat:DELIVRD", "p": "+255 7", "P": "Clinic & Co", "i": "m/1",
              "I": "x" * 40, "t": "2024-05-01+10:00:00"}
    assert fill_escapes("%d|%A|%p|%P|%i|%t", values) == (
        "1|id%3A7%20stat%3ADELIVRD|%2B255%207|Clinic%20%26%20Co|m%2F1|2024-05-01+10:00:00")
    assert fill_escapes("100%% sure", values) == "100% sure"
    assert fill_escapes("%z %20 %", values) == "%z %20 %"     # unknown escapes stay as they are
    assert fill_escapes("%%d", values) == "%d"                 # %% first: a literal "%d"
    assert fill_escapes("no escapes", {}) == "no escapes"
    assert fill_escapes("%A", {"A": "x\ud800y"}) == "x%3Fy"    # a lone surrogate cannot stop it


def test_message_id_is_at_most_36_characters():
    row = {"type": 1, "text": "t", "smsc": "m", "outbound_id": "f" * 50, "event_at": T0,
           "recipient": "1", "sender": "", "dlr_url": "http://h/?i=%I"}
    assert callback_url(row) == "http://h/?i=" + "f" * 36


def test_kannel_time_is_utc_and_parses_as_a_query_value():
    stamp = kannel_time(T0)
    assert stamp == "2023-11-14+22:13:20"
    value = urllib.parse.parse_qs("date_sent=" + stamp)["date_sent"][0]
    assert datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc) == \
        datetime.fromtimestamp(T0, timezone.utc)


@settings(max_examples=200, deadline=None)
@given(text=st.text(), recipient=st.text(), sender=st.text())
def test_any_value_comes_back_intact_from_the_query_string(text, recipient, sender):
    row = {"type": 16, "text": text, "smsc": "modem", "outbound_id": "abc", "event_at": T0,
           "recipient": recipient, "sender": sender,
           "dlr_url": "http://h/dlr?type=%d&text=%A&to=%p&from=%P&fixed=1"}
    query = urllib.parse.urlsplit(callback_url(row)).query
    args = urllib.parse.parse_qs(query, keep_blank_values=True)
    assert {k: v[0] for k, v in args.items()} == {
        "type": "16", "text": text, "to": recipient, "from": sender, "fixed": "1"}


# -- the store's callback queue ----------------------------------------------------------------


def test_smsc_ack_is_queued_in_the_same_transaction_as_sent(store):
    msg_id = queue(store, mask=31, sender="Clinic")
    statements = []
    store._conn().set_trace_callback(statements.append)
    store.outbound_sent(msg_id, references=[17])
    store._conn().set_trace_callback(None)
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE",
                                                                           "COMMIT"]
    inside = statements[statements.index("BEGIN IMMEDIATE"):statements.index("COMMIT")]
    assert any(s.startswith("UPDATE outbound SET status = 'sent'") for s in inside), inside
    assert any(s.startswith("INSERT INTO callbacks") for s in inside), inside
    (cb,) = store.callbacks(msg_id)
    assert (cb["type"], cb["text"], cb["smsc"], cb["recipient"], cb["sender"], cb["status"]) == (
        8, "ACK", "m1", "+255700000001", "Clinic", "pending")


def test_a_callback_that_cannot_be_queued_undoes_its_event(store):
    """Neither without the other: if the callback's row cannot be written, the message is not
    recorded as sent either (the worker then retries the send)."""
    msg_id = queue(store)
    db = store._conn()
    db.execute("CREATE TRIGGER no_callbacks BEFORE INSERT ON callbacks"
               " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.DatabaseError, match="disk trouble"):
        store.outbound_sent(msg_id, references=[1])
    assert store.get_outbound(msg_id)["status"] == "sending"
    with pytest.raises(sqlite3.DatabaseError):
        store.outbound_failed(msg_id, error="+CMS ERROR: 21")
    assert store.get_outbound(msg_id)["status"] == "sending"
    db.execute("DROP TRIGGER no_callbacks")
    store.outbound_sent(msg_id, references=[1])
    assert types(store, msg_id) == [8]


@pytest.mark.parametrize("mask, url, expected", [
    (31, "http://h/d", [8]),
    (8, "http://h/d", [8]),
    (1 | 2 | 4 | 16, "http://h/d", []),     # 8 not asked for
    (31, None, []),                         # nowhere to call
    (0, "http://h/d", []),
])
def test_only_the_types_in_the_mask_are_queued(store, mask, url, expected):
    msg_id = queue(store, mask=mask, url=url)
    store.outbound_sent(msg_id, references=[3])
    assert types(store, msg_id) == expected


def test_a_permanent_error_queues_type_16_once_with_the_error(store):
    msg_id = queue(store)
    store.outbound_failed(msg_id, error="+CMS ERROR: 21 (short message transfer rejected)")
    store.outbound_failed(msg_id, error="again")
    (cb,) = store.callbacks(msg_id)
    assert (cb["type"], cb["text"]) == (16, "+CMS ERROR: 21 (short message transfer rejected)")


def test_multipart_is_delivered_to_the_phone_when_every_part_is(store):
    msg_id = queue(store, parts=3)
    store.outbound_sent(msg_id, references=[254, 255, 0])   # TP-MR wrapped inside the message
    report = store.add_report
    report(modem="m1", reference=255, recipient="255700000001", status=0x00, pdu="P2")
    report(modem="m1", reference=254, recipient="0700000001", status=0x21, pdu="P1-busy")
    report(modem="m1", reference=254, recipient="+255700000001", status=0x00, pdu="P1")
    assert store.get_outbound(msg_id)["status"] == "sent"
    assert types(store, msg_id) == [8, 4]
    report(modem="m1", reference=0, recipient="+255700000001", status=0x00, pdu="P3")
    row = store.get_outbound(msg_id)
    assert row["status"] == "delivered"
    assert [(r["part"], r["reference"], r["status"]) for r in row["reports"]] == [
        (0, 254, 0), (1, 255, 0), (2, 0, 0)]
    assert [c["type"] for c in row["callbacks"]] == [8, 4, 1]
    assert row["callbacks"][1]["text"] == "id:254 stat:ENROUTE err:033"
    assert row["callbacks"][2]["text"] == "id:0 stat:DELIVRD err:000"
    # a late "still trying" for a delivered part changes nothing and calls nobody
    report(modem="m1", reference=255, recipient="+255700000001", status=0x20, pdu="late")
    assert store.get_outbound(msg_id)["reports"][1]["status"] == 0
    assert types(store, msg_id) == [8, 4, 1]


def test_one_failed_part_fails_the_message_and_calls_back_once(store):
    msg_id = queue(store, parts=2)
    store.outbound_sent(msg_id, references=[10, 11])
    store.add_report(modem="m1", reference=10, recipient="+255700000001", status=0x46, pdu="A")
    store.add_report(modem="m1", reference=11, recipient="+255700000001", status=0x00, pdu="B")
    row = store.get_outbound(msg_id)
    assert row["status"] == "failed" and "0x46" in row["last_error"]
    assert [(c["type"], c["text"]) for c in row["callbacks"]] == [
        (8, "ACK"), (2, "id:10 stat:EXPIRED err:070")]


def test_a_wrapped_reference_answers_the_newest_message_within_three_days(store, clock):
    old = queue(store)
    store.outbound_sent(old, references=[7])
    clock.now += 3600
    new = queue(store)
    store.outbound_sent(new, references=[7])
    store.add_report(modem="m1", reference=7, recipient="+255700000001", status=0, pdu="R1")
    assert store.get_outbound(new)["status"] == "delivered"
    assert store.get_outbound(old)["status"] == "sent"
    # the newest has its final report: a second one with that TP-MR answers the older message
    store.add_report(modem="m1", reference=7, recipient="+255700000001", status=0, pdu="R2")
    assert store.get_outbound(old)["status"] == "delivered"

    ancient = queue(store, to="+255700000002")
    store.outbound_sent(ancient, references=[9])
    clock.now += 3 * 86400 + 1
    store.add_report(modem="m1", reference=9, recipient="+255700000002", status=0, pdu="R3")
    assert store.get_outbound(ancient)["status"] == "sent"   # too old: another message's TP-MR
    assert {r["pdu"]: r["outbound_id"] for r in store.reports()}["R3"] is None


def test_reports_are_matched_per_modem_and_per_number(store):
    mine = queue(store, modem="m1")
    store.outbound_sent(mine, references=[40])
    store.add_report(modem="m2", reference=40, recipient="+255700000001", status=0, pdu="X")
    store.add_report(modem="m1", reference=40, recipient="+255711111111", status=0, pdu="Y")
    assert store.get_outbound(mine)["status"] == "sent" and types(store, mine) == [8]


def test_a_message_callbacks_are_offered_oldest_first(store, clock):
    a = queue(store)
    store.outbound_sent(a, references=[1])
    store.add_report(modem="m1", reference=1, recipient="+255700000001", status=0, pdu="R")
    b = queue(store, to="+255700000002")
    store.outbound_failed(b, error="+CMS ERROR: 28")
    due = store.due_callbacks(FAR)
    assert [(c["outbound_id"], c["type"]) for c in due] == [(a, 8), (b, 16)]
    first = due[0]["id"]
    store.callback_retry(first, error="HTTP 503", next_attempt=clock.now + 60)
    # a's delivery (1) waits behind its retried 8
    assert [(c["outbound_id"], c["type"]) for c in store.due_callbacks(FAR)] == [(b, 16), (a, 8)]
    assert [c["type"] for c in store.due_callbacks(clock.now + 1)] == [16]
    assert store.next_callback_due() == clock.now
    store.callback_failed(first, error="HTTP 404")          # refused: kept, not blocking
    assert [(c["outbound_id"], c["type"]) for c in store.due_callbacks(FAR)] == [(a, 1), (b, 16)]
    assert store.counts()["callbacks"] == {"pending": 2, "delivered": 0, "failed": 1}
    assert store.requeue_callbacks() == 1
    assert store.get_outbound(a)["callbacks"][0]["status"] == "pending"


def test_callbacks_survive_reopening_and_an_old_store_is_migrated(tmp_path, clock):
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)
    for statement in schema._split_sql(schema._SCHEMA_V1):
        db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO outbound (id, recipient, text, parts, dlr_url, dlr_mask, status,"
               " next_attempt, created_at) VALUES ('aa', '+1', 'x', 1, 'http://h/?%d', 31,"
               " 'sending', 0, 0)")
    db.commit()
    db.close()
    s = Store(path, clock=clock)
    s.outbound_sent("aa", references=[5])
    s.close()
    s = Store(path, clock=clock)
    assert [(c["outbound_id"], c["type"]) for c in s.due_callbacks(FAR)] == [("aa", 8)]
    s.close()


CALLBACK_QUERIES = [
    ("DUE_CALLBACKS_SQL", "callbacks_due", {}),
    ("DUE_CALLBACKS_SQL", "callbacks_outbound", {}),    # its NOT EXISTS: the message's older ones
    ("NEXT_CALLBACK_DUE_SQL", "callbacks_due", {}),
    ("COUNT_CALLBACKS_SQL", "callbacks_status", {"whole_index": True}),
]


def _fill_callbacks(store, *, drop=None):
    """Callbacks of 700 messages, a quarter of them made, with ANALYZE statistics; `drop`: an
    index to drop first. Returns the connection."""
    db = store._conn()
    db.execute("BEGIN")
    db.executemany("INSERT INTO callbacks (outbound_id, type, dlr_url, text, recipient, event_at,"
                   " status, next_attempt, created_at) VALUES (?, 8, 'u', 't', '+1', 0, ?, ?, 0)",
                   [("o%d" % (i % 700), "pending" if i % 4 else "delivered", i)
                    for i in range(3000)])
    if drop:
        db.execute("DROP INDEX %s" % drop)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    return db


@pytest.mark.parametrize("name, index, options", CALLBACK_QUERIES)
def test_callback_queries_use_their_index(store, name, index, options):
    db = _fill_callbacks(store)
    assert_uses_index(db, getattr(store_module, name), index, no_sort=True, **options)


@pytest.mark.parametrize("name, index, options", CALLBACK_QUERIES)
def test_the_plan_check_reports_a_callback_query_whose_index_is_gone(store, name, index, options):
    db = _fill_callbacks(store, drop=index)
    problems = plan_problems(db, getattr(store_module, name), index, no_sort=True, **options)
    assert any(p.startswith("left to the planner: %s is not used" % index)
               for p in problems), problems


# -- the sender against a real HTTP server -----------------------------------------------------


def allowing(sink):
    """Callbacks may go to the sink: as to RapidSMS, whose origin a bridge always allows (the
    sink is on loopback, where callbacks are refused by default: test_safeurl.py)."""
    return CallbackGuard(origins=[sink.url])


def sent_message(store, sink, *, mask=31, path="/dlr/", to="+255700000001"):
    url = sink.url + path + "?type=%d&text=%A&smsc=%i&id=%I&at=%t&to=%p&from=%P"
    msg_id = queue(store, url=url, mask=mask, to=to, sender="Clinic")
    store.outbound_sent(msg_id, references=[21])
    return msg_id


def test_a_callback_reaches_the_receiver_with_kannels_fields(store, sink, clock):
    msg_id = sent_message(store, sink)
    sender = DlrSender(store, smsc="fallback", guard=allowing(sink))
    assert sender.step(now=FAR) == 1
    (req,) = sink.requests
    assert (req.method, req.path) == ("GET", "/dlr/")
    assert req.args == {"type": "8", "text": "ACK", "smsc": "m1", "id": msg_id,
                        "at": "2023-11-14 22:13:20", "to": "+255700000001", "from": "Clinic"}
    assert store.callbacks(msg_id)[0]["status"] == "delivered"
    assert sender.step(now=FAR) == 0 and len(sink.requests) == 1


def test_the_modem_name_is_filled_in_when_the_message_has_none(store, sink):
    msg_id = store.add_outbound(["+1"], "x", encoding="gsm7", parts=1,
                                dlr_url=sink.url + "/?smsc=%i", dlr_mask=8)[0]
    store.outbound_sending(msg_id)          # no modem recorded
    store.outbound_sent(msg_id, references=[1])
    DlrSender(store, smsc="modem", guard=allowing(sink)).step(now=FAR)
    assert sink.requests[0].args == {"smsc": "modem"}


def test_a_refusal_is_kept_as_failed_and_never_retried(store, sink):
    msg_id = sent_message(store, sink)
    sink.set_response(400, "no such message")   # 404 says "not there": retried (test_receivers)
    sender = DlrSender(store, guard=allowing(sink))
    sender.step(now=FAR)
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["last_error"]) == ("failed", "HTTP 400: no such message")
    sink.set_response(200)
    assert sender.step(now=FAR) == 0 and len(sink.requests) == 1
    # the message's next event is still reported
    store.add_report(modem="m1", reference=21, recipient="+255700000001", status=0, pdu="R")
    sender.step(now=FAR)
    assert [r.args["type"] for r in sink.requests] == ["8", "1"]


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_server_errors_and_try_later_are_retried(store, sink, status):
    msg_id = sent_message(store, sink)
    sink.set_response(status)
    sender = DlrSender(store, backoff_base=10.0, guard=allowing(sink))
    before = time.time()
    sender.step(now=FAR)
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["attempts"]) == ("pending", 1)
    assert cb["next_attempt"] >= before + 9          # backed off
    assert cb["last_error"].startswith("HTTP %d" % status)
    sink.set_response(200)
    sender.step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == "delivered"
    assert len(sink.requests) == 2


def test_a_timeout_is_retried(store, sink):
    msg_id = sent_message(store, sink)
    sink.set_response(200, delay=3)
    DlrSender(store, timeout=0.2, guard=allowing(sink)).step(now=FAR)
    (cb,) = store.callbacks(msg_id)
    assert cb["status"] == "pending" and "no answer" in cb["last_error"]


def test_an_unreachable_receiver_costs_one_try_per_backoff(store, sink):
    ids = [sent_message(store, sink, to="+25570000000%d" % i) for i in range(3)]
    sink.refuse()
    sender = DlrSender(store, backoff_base=30.0, guard=allowing(sink))
    assert sender.step(now=time.time()) == 1
    assert sorted(c["attempts"] for i in ids for c in store.callbacks(i)) == [0, 0, 1]
    assert sender.step(now=time.time()) == 0          # the host is on hold


def test_retries_without_end_until_the_receiver_comes_back(store, sink):
    msg_id = sent_message(store, sink)
    store.add_report(modem="m1", reference=21, recipient="+255700000001", status=0, pdu="R")
    sink.refuse()
    sender = DlrSender(store, backoff_base=0.02, backoff_cap=0.1, guard=allowing(sink))
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: store.callbacks(msg_id)[-1]["attempts"] >= 5, timeout=20,
                 message="several tries while the receiver is down")
        sink.set_response(503)
        sink.accept()
        wait_for(lambda: len(sink.requests) >= 3, timeout=20, message="tries answered 503")
        sink.set_response(200)
        wait_for(lambda: store.counts()["callbacks"]["delivered"] == 2, timeout=20,
                 message="both callbacks made once it is back")
    finally:
        stop.set()
        store.notify()
        thread.join(5)
    assert not thread.is_alive()
    delivered = [r.args["type"] for r in sink.requests if r.status == 200]
    assert delivered == ["8", "1"]
    assert all(r.args["type"] == "8" for r in sink.requests if r.status == 503)


# -- where a callback may go (gsmbridge/safeurl.py; its unit tests: test_safeurl.py) -----------


@pytest.fixture
def other():
    """A server on loopback that is not the receiver: an internal service a caller aims at."""
    s = HttpSink()
    s.set_response(200, "internal: secret-token")
    yield s
    s.stop()


def test_a_callback_to_another_loopback_port_is_refused_and_nothing_fetched(store, sink, other,
                                                                           caplog):
    msg_id = queue(store, url=other.url + "/admin?to=%p&type=%d")
    store.outbound_sent(msg_id, references=[1])
    sender = DlrSender(store, guard=allowing(sink))
    with caplog.at_level(logging.INFO, logger="gsmbridge.dlr"):
        assert sender.step(now=FAR) == 1
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["last_error"]) == ("failed", "refused: resolves to a private address")
    assert sender.step(now=FAR) == 0                # never retried
    # step() makes its requests before it returns, and a sink records a request before it
    # answers: one that reached either server would be listed by now
    assert other.requests == [] and sink.requests == []
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "refused: resolves to a private address" in line and other.url in line
    assert "255700000001" not in line                # the URL's query is not logged


def test_localhost_is_refused_by_default(store, other):
    msg_id = queue(store, url="http://localhost:%d/dlr?type=%%d" % other.port)
    store.outbound_sent(msg_id, references=[1])
    DlrSender(store).step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == "failed"
    assert other.requests == []


def bridge_config(tmp_path, rapidsms_url, **http):
    return config.for_tests(str(tmp_path), rapidsms={"url": rapidsms_url}, http=http)


def test_the_receivers_origin_is_allowed_out_of_the_box(tmp_path, store, sink, other):
    guard = callback_guard(bridge_config(tmp_path, sink.url + "/backend/kannel-backend/"))
    msg_id = sent_message(store, sink, path="/delivery-report/")
    refused = queue(store, url=other.url + "/delivery-report/?type=%d", to="+255700000002")
    store.outbound_sent(refused, references=[2])
    sender = DlrSender(store, guard=guard)
    sender.step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == "delivered"
    assert [r.path for r in sink.requests] == ["/delivery-report/"]
    assert store.callbacks(refused)[0]["status"] == "failed" and other.requests == []


def test_a_modems_own_receiver_is_allowed_too(tmp_path, store, sink, other):
    cfg = config.from_dict({"modem": {"port": "sim://"},
                            "modem:b": {"port": "sim://", "url": other.url + "/backend/b/"},
                            "rapidsms": {"url": sink.url + "/backend/"}}, base_dir=str(tmp_path))
    msg_id = queue(store, url=other.url + "/dlr?type=%d")
    store.outbound_sent(msg_id, references=[1])
    DlrSender(store, guard=callback_guard(cfg)).step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == "delivered" and len(other.requests) == 1


@pytest.mark.parametrize("allow, allowed", [
    ("127.0.0.1:{port}", True),                 # that host:port
    ("127.0.0.0/8", True),                      # a network: any port
    ("10.0.0.0/8 127.0.0.1", True),
    ("127.0.0.1:{other_port}", False),          # another port of the same host
    ("10.0.0.0/8", False),
])
def test_callback_allow_lets_callbacks_reach_listed_addresses(tmp_path, store, sink, other,
                                                              allow, allowed):
    allow = allow.format(port=other.port, other_port=other.port + 1)
    guard = callback_guard(bridge_config(tmp_path, sink.url + "/backend/",
                                         callback_allow=allow))
    msg_id = queue(store, url=other.url + "/dlr?type=%d")
    store.outbound_sent(msg_id, references=[1])
    DlrSender(store, guard=guard).step(now=FAR)
    assert store.callbacks(msg_id)[0]["status"] == ("delivered" if allowed else "failed")
    assert len(other.requests) == (1 if allowed else 0)


def test_a_redirect_is_not_followed_but_retried(store, sink, other):
    """The allowed receiver answering 302 to an internal service does not get the bridge to
    fetch it: the callback is retried, as a 5xx would be."""
    sink.set_response(302, headers={"Location": other.url + "/admin?key=abc"})
    msg_id = sent_message(store, sink)
    DlrSender(store, guard=allowing(sink), backoff_base=10.0).step(now=FAR)
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["attempts"]) == ("pending", 1)
    assert cb["last_error"].startswith("HTTP 302 redirect to") and "abc" not in cb["last_error"]
    assert len(sink.requests) == 1 and other.requests == []


# -- the whole bridge ------------------------------------------------------------------------




def sendsms(bridge, to, text, dlr_url, mask=31):
    params = {"username": "rapidsms", "password": "s3cret", "to": to, "text": text,
              "dlr-mask": str(mask), "dlr-url": dlr_url}
    r = requests.get(bridge.api + "/cgi-bin/sendsms", params=params, timeout=10)
    assert (r.status_code, r.text) == (202, "0: Accepted for delivery")


def dlrs(sink):
    return [r.args for r in sink.requests if r.path == "/dlr/"]


def test_bridge_calls_back_smsc_then_phone_delivery(bridge, sink):
    template = sink.url + "/dlr/?type=%d&text=%A&smsc=%i&id=%I&at=%t&to=%p"
    long_text = "Chanjo kesho saa tatu. " * 12          # 276 characters: two parts
    sendsms(bridge, "+255700000011", long_text, template)
    got = wait_for(lambda: len(dlrs(sink)) >= 2 and dlrs(sink), timeout=30,
                   message="two delivery reports at the sink")
    assert [d["type"] for d in got] == ["8", "1"]
    assert got[0]["text"] == "ACK" and "stat:DELIVRD" in got[1]["text"]
    assert {d["to"] for d in got} == {"+255700000011"} and {d["smsc"] for d in got} == {"modem"}
    msg_id = got[0]["id"]
    datetime.strptime(got[1]["at"], "%Y-%m-%d %H:%M:%S")
    message = requests.get(bridge.api + "/api/v1/messages/" + msg_id, auth=bridge.auth,
                           timeout=10).json()
    assert message["status"] == "delivered" and message["parts"] == 2
    assert [r["status"] for r in message["reports"]] == [0, 0]
    assert [(c["type"], c["status"]) for c in message["callbacks"]] == [(8, "delivered"),
                                                                         (1, "delivered")]

    # the network gives up on the next one: non-delivered to the phone
    bridge.faults(report_status=0x46)
    sendsms(bridge, "+255700000012", "second", template)
    got = wait_for(lambda: len(dlrs(sink)) >= 4 and dlrs(sink)[2:], timeout=30,
                   message="two more delivery reports")
    assert [d["type"] for d in got] == ["8", "2"] and "stat:EXPIRED" in got[1]["text"]
    assert len(dlrs(sink)) == 4


def message_view(bridge, msg_id):
    return requests.get(bridge.api + "/api/v1/messages/" + msg_id, auth=bridge.auth,
                        timeout=10).json()


def test_bridge_refuses_internal_callbacks_and_shows_no_answer_bodies(bridge, sink, other):
    """The process as shipped: a dlr-url on loopback but not RapidSMS's origin is refused and
    never fetched; the answers of an allowed receiver stay out of the message view."""
    r = bridge.send("+255700000031", "one", dlr_url=other.url + "/admin?type=%d")
    refused = r.json()["id"]
    sink.set_response(500, "Traceback: secret-token in settings.py")
    r = bridge.send("+255700000032", "two", dlr_url=sink.url + "/dlr/?type=%d")
    answered = r.json()["id"]
    view = wait_for(lambda: (lambda m: m["callbacks"] and m["callbacks"][0]["status"] == "failed"
                             and m)(message_view(bridge, refused)),
                    message="the callback refused")
    assert view["callbacks"][0]["last_error"] == "refused: resolves to a private address"
    wait_for(lambda: any(r.path == "/dlr/" for r in sink.requests), message="a callback made")
    view = wait_for(lambda: (lambda m: m["callbacks"][0]["attempts"] and m)(
        message_view(bridge, answered)), message="the 500 recorded")
    assert view["callbacks"][0]["last_error"] == "HTTP 500"
    assert "secret-token" not in json.dumps(view)
    assert other.requests == []


# -- RapidSMS's own delivery-report view -----------------------------------------------------

DLR_URLS = '''\
"""The e2e project's URLs plus RapidSMS's Kannel delivery-report view (written by test_dlr)."""
from django.urls import path
from rapidsms.backends.kannel.views import DeliveryReportView
from rapidsms_project.urls import urlpatterns as base

urlpatterns = list(base) + [
    path("delivery-report/", DeliveryReportView.as_view(), name="kannel-delivery-report"),
]
'''

DLR_SETTINGS = '''\
from rapidsms_project.settings import *  # noqa
ROOT_URLCONF = "dlr_urls"
'''


@pytest.mark.slow
def test_rapidsms_records_the_bridges_delivery_reports(tmp_path, sink):
    problem = check_installed()
    if problem:
        pytest.fail("this test needs RapidSMS: " + problem, pytrace=False)
    extra = tmp_path / "djangoextra"
    extra.mkdir()
    (extra / "dlr_urls.py").write_text(DLR_URLS)
    (extra / "dlr_settings.py").write_text(DLR_SETTINGS)
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    rapidsms = RapidSMS(tmp_path / "rapidsms", sendsms_url=bridge.api + "/cgi-bin/sendsms",
                        username="rapidsms", password="s3cret")
    rapidsms.env["PYTHONPATH"] = os.pathsep.join([str(extra), os.path.dirname(PROJECT),
                                                  rapidsms.env["PYTHONPATH"]])
    rapidsms.env["DJANGO_SETTINGS_MODULE"] = "dlr_settings"
    rapidsms.start()
    try:
        # RapidSMS's own backend URL, as in production: its delivery-report view shares the
        # origin, which the bridge lets callbacks reach although it is on loopback.
        with open(bridge.ini) as f:
            ini = f.read().replace(sink.url + "/backend/kannel-backend/", rapidsms.backend_url)
        with open(bridge.ini, "w") as f:
            f.write(ini)
        bridge.start()
        try:
            sendsms(bridge, "+255700000021", "Asante", rapidsms_dlr_url(rapidsms.url, "4f2a"))
            db = rapidsms.db_path

            def recorded():
                with sqlite3.connect(db) as conn:
                    return conn.execute(
                        "SELECT message_id, status, status_text, smsc, sms_id, identity, date_sent"
                        " FROM kannel_deliveryreport ORDER BY id").fetchall()

            rows = wait_for(lambda: len(recorded()) >= 2 and recorded(), timeout=40,
                            message="two delivery reports in RapidSMS:\n" + rapidsms.log()[-3000:])
            assert [(r[0], r[1]) for r in rows] == [("4f2a", 8), ("4f2a", 1)]
            assert {(r[3], r[5]) for r in rows} == {("modem", "+255700000021")}
            assert rows[0][2] == "ACK" and "DELIVRD" in rows[1][2]
            assert len(rows[0][4]) <= 36 and rows[0][4] == rows[1][4]
            assert datetime.fromisoformat(rows[0][6])
            status = requests.get(bridge.api + "/api/v1/messages/" + rows[0][4],
                                  auth=bridge.auth, timeout=10).json()
            assert [(c["type"], c["status"]) for c in status["callbacks"]] == [
                (8, "delivered"), (1, "delivered")]
            assert "failed to validate" not in rapidsms.log()
        finally:
            bridge.stop()
    finally:
        rapidsms.stop()

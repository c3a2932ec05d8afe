"""The forwarder against a real HTTP server on 127.0.0.1 (tests/httpsink.py), with a real store."""

import logging
import threading
import time

import pytest

from gsmbridge import metrics
from gsmbridge.forwarder import Forwarder, describe_error, mask_url, unix_time
from gsmbridge.store import Store

FAR = 1e12  # a "now" at which every retry is due
TEXT = "Habari 😀 ñ € 中文 [x] {y} & a=b+c %20\nnew line"


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()




def make(store, sink, style="kannel", path="/backend/kannel-backend/", **kw):
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.05)
    return Forwarder(store, url=sink.url + path, style=style, **kw)


def add(store, sender="+255700000001", text=TEXT):
    return store.add_inbound(modem="m1", sender=sender, text=text,
                             sent_at="2024-05-01T10:00:00+03:00", parts=2, incomplete=False,
                             pdus=["AA", "BB"], keys=["key-%s-%s-%f" % (sender, text, time.time())])


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# -- the three styles --------------------------------------------------------------------------


def test_kannel_style_is_a_get_with_id_and_text(store, sink):
    msg_id = add(store)
    assert make(store, sink).step() == 1
    [req] = sink.requests
    assert (req.method, req.path) == ("GET", "/backend/kannel-backend/")
    assert req.args == {"id": "+255700000001", "text": TEXT}
    assert req.headers["X-Message-Id"] == msg_id
    assert "%F0%9F%98%80" in req.raw_path  # UTF-8, percent-encoded
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_http_style_is_a_form_post_with_configured_names(store, sink):
    msg_id = add(store)
    make(store, sink, style="http", identity_name="from", text_name="message").step()
    [req] = sink.requests
    assert req.method == "POST" and req.header("content-type").startswith(
        "application/x-www-form-urlencoded")
    assert req.form == {"from": "+255700000001", "message": TEXT}
    assert req.headers["X-Message-Id"] == msg_id
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_json_style_posts_the_whole_message(store, sink):
    msg_id = add(store)
    make(store, sink, style="json", path="/inbound").step()
    [req] = sink.requests
    assert req.method == "POST" and req.header("content-type").startswith("application/json")
    body = req.json()
    received_at = store.get_inbound(msg_id)["received_at"]
    assert body == {"id": msg_id, "from": "+255700000001", "text": TEXT,
                    "received_at": body["received_at"], "sent_at": "2024-05-01T10:00:00+03:00",
                    "modem": "m1", "parts": 2, "incomplete": False}
    assert body["received_at"].endswith("Z")
    from datetime import datetime
    assert abs(datetime.fromisoformat(body["received_at"].replace("Z", "+00:00")).timestamp()
               - received_at) < 0.001
    assert "😀".encode("utf-8") in req.body  # sent as UTF-8, not \ud83d escapes
    assert req.headers["X-Message-Id"] == msg_id


COURIER = "/c/kn/8eb23e93-5ecb-45ba-b726-3b064e0c56ab/receive"


def test_rapidpro_style_posts_courier_s_fields_in_a_form_body(store, sink):
    msg_id = add(store)
    make(store, sink, style="rapidpro", path=COURIER, numbers={"m1": "+255700000100"}).step()
    [req] = sink.requests
    assert (req.method, req.raw_path) == ("POST", COURIER)     # nothing in the query string
    assert req.header("content-type").startswith("application/x-www-form-urlencoded")
    # ts: the SMSC's timestamp, 2024-05-01 10:00:00 +03:00, in Unix seconds
    assert req.form == {"id": msg_id, "ts": "1714546800", "sender": "+255700000001",
                        "message": TEXT, "to": "+255700000100", "backend": "m1"}
    assert "%F0%9F%98%80".encode() in req.body                  # UTF-8, percent-encoded
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_rapidpro_style_without_the_sim_s_number_or_the_smsc_s_time(store, sink):
    """`to` falls back to the modem's name, `ts` to when the message came; an empty text is
    still a field (courier takes an empty message)."""
    msg_id = store.add_inbound(modem="m1", sender="+255700000001", text="", sent_at=None,
                               pdus=["AA"], keys=["k-no-date"])
    make(store, sink, style="rapidpro", path=COURIER).step()
    [req] = sink.requests
    received_at = store.get_inbound(msg_id)["received_at"]
    assert req.form == {"id": msg_id, "ts": str(int(received_at)), "sender": "+255700000001",
                        "message": "", "to": "m1", "backend": "m1"}


@pytest.mark.parametrize("sent_at, received_at, ts", [
    ("2017-05-02T17:31:49+03:00", 1.0e9, 1493735509),
    (None, 1714546800.9, 1714546800),
    ("not a date", 1714546800.2, 1714546800),
    ("1970-01-01T00:00:00+00:00", 1714546800.0, 1714546800),   # 0 is what courier refuses
    (None, 0.4, 1),
])
def test_rapidpro_ts_is_whole_seconds_and_never_zero(sent_at, received_at, ts):
    assert unix_time({"sent_at": sent_at, "received_at": received_at}) == ts


def test_rapidpro_a_sender_courier_cannot_read_is_failed_for_good(store, sink):
    sink.set_response(400, '{"message":"Error","data":[{"type":"error",'
                           '"error":"not a possible number"}]}')
    msg_id = add(store, sender="MPESA")
    fwd = make(store, sink, style="rapidpro", path=COURIER)
    assert fwd.step(now=FAR) == 1
    row = store.get_inbound(msg_id)
    assert row["status"] == "failed" and "not a possible number" in row["last_error"]
    assert fwd.step(now=FAR) == 0 and len(sink.requests) == 1


# -- outcomes ----------------------------------------------------------------------------------


def test_the_same_message_id_on_every_retry(store, sink):
    answers = iter([500, 503, 200])
    sink.set_handler(lambda request: next(answers))
    msg_id = add(store)
    fwd = make(store, sink)
    for _ in range(3):
        assert fwd.step(now=FAR) == 1
    assert [r.status for r in sink.requests] == [500, 503, 200]
    assert {r.headers["X-Message-Id"] for r in sink.requests} == {msg_id}
    assert {r.args["text"] for r in sink.requests} == {TEXT}
    row = store.get_inbound(msg_id)
    assert (row["status"], row["attempts"]) == ("delivered", 3)


def test_a_4xx_is_kept_as_failed_with_the_answer_and_never_retried(store, sink, caplog):
    sink.set_response(400, "E" * 300)
    msg_id = add(store)
    fwd = make(store, sink)
    with caplog.at_level(logging.WARNING, logger="gsmbridge.forwarder"):
        assert fwd.step(now=FAR) == 1
    row = store.get_inbound(msg_id)
    assert row["status"] == "failed"
    assert row["last_error"] == "HTTP 400: " + "E" * 200
    assert any(msg_id in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert fwd.step(now=FAR) == 0 and len(sink.requests) == 1
    assert store.counts()["inbound"] == {"pending": 0, "delivered": 0, "failed": 1}


def test_too_many_requests_is_not_a_refusal(store, sink):
    answers = iter([429, 200])
    sink.set_handler(lambda request: next(answers))
    msg_id = add(store)
    fwd = make(store, sink)
    fwd.step(now=FAR)
    assert store.get_inbound(msg_id)["status"] == "pending"
    fwd.step(now=FAR)
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_a_receiver_too_slow_to_answer_is_retried(store, sink):
    sink.set_response(200, delay=3)
    msg_id = add(store)
    fwd = make(store, sink, timeout=0.2)
    assert fwd.step(now=FAR) == 1
    row = store.get_inbound(msg_id)
    assert row["status"] == "pending" and "0.2" in row["last_error"]
    sink.set_response(200)
    fwd.step(now=FAR)
    assert store.get_inbound(msg_id)["status"] == "delivered"
    assert [r.headers["X-Message-Id"] for r in sink.requests] == [msg_id, msg_id]


def test_a_redirected_post_is_not_followed(store, sink):
    sink.set_response(301, headers={"Location": "/backend/http/"})
    msg_id = add(store)
    make(store, sink, style="http", path="/backend/http").step(now=FAR)
    row = store.get_inbound(msg_id)
    assert row["status"] == "pending" and "redirect" in row["last_error"]
    assert len(sink.requests) == 1


@pytest.mark.parametrize("style, path", [
    ("kannel", "/backend/kannel-backend/"),
    ("httprouter", "/router/receive"),
    ("http", "/backend/http/"),
    ("json", "/inbound/"),
])
def test_a_redirect_to_a_login_page_is_not_delivered(store, sink, caplog, style, path):
    """RapidSMS behind a login answers 302 to a page that answers 200: nothing was taken, so the
    message stays pending, is retried after the backoff, and the log says where it pointed."""
    def rapidsms(request):
        if request.path.startswith("/accounts/login/"):
            return 200, "<form>Log in</form>"
        return 302, "", {"Location": sink.url + "/accounts/login/?next=/x/&token=s3cret"}

    sink.set_handler(rapidsms)
    msg_id = add(store)
    fwd = make(store, sink, style=style, path=path, backoff_base=10.0, backoff_cap=60.0)
    before = time.time()
    with caplog.at_level(logging.INFO, logger="gsmbridge.forwarder"):
        assert fwd.step(now=FAR) == 1
    row = store.get_inbound(msg_id)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["next_attempt"] >= before + 9
    assert [r.path for r in sink.requests] == [path]        # the login page was never asked
    assert "redirect" in row["last_error"] and "/accounts/login/" in row["last_error"]
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("redirect" in line and "/accounts/login/?next=***" in line for line in warning)
    assert "s3cret" not in caplog.text and "s3cret" not in row["last_error"]
    sink.set_handler(lambda request: 200)
    fwd.step(now=FAR)
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_the_metrics_count_each_outcome_and_time_each_forward(store, sink):
    names = ("gsmbridge_messages_forwarded_total", "gsmbridge_messages_forward_failed_total",
             "gsmbridge_messages_forward_retried_total", "gsmbridge_forward_seconds_count")

    def moved(before):
        now = [metrics.REGISTRY.get_sample_value(name) or 0.0 for name in names]
        return [a - b for a, b in zip(now, before)]

    fwd = make(store, sink)
    before = moved([0.0] * 4)
    answers = iter([503, 200, 400])
    sink.set_handler(lambda request: next(answers))
    add(store, sender="+255700000001")
    fwd.step(now=FAR)                      # 503: retried
    fwd.step(now=FAR)                      # 200: forwarded
    add(store, sender="+255700000002")
    fwd.step(now=FAR)                      # 400: failed
    assert moved(before) == [1, 1, 1, 3]
    sink.refuse()
    add(store, sender="+255700000003")
    fwd.step(now=FAR)                      # unreachable: retried, and timed all the same
    assert moved(before) == [1, 1, 2, 4]


def test_backoff_doubles_up_to_the_cap(store, sink):
    fwd = make(store, sink, backoff_base=2.0, backoff_cap=300.0)
    delays = [fwd.backoff(n) for n in (1, 2, 3, 4, 20, 5000)]
    for delay, plain in zip(delays, (2, 4, 8, 16, 300, 300)):
        assert plain * 0.9 <= delay <= min(300, plain * 1.1)


# -- a receiver that is down, then back --------------------------------------------------------


def test_a_receiver_down_then_back_gets_every_message_in_order_per_sender(store, sink):
    sink.refuse()
    senders = ["+255700000001", "+255700000002", "+255700000003"]
    expected = {s: [] for s in senders}
    for i in range(5):
        for s in senders:
            text = "%s message %d 😀" % (s[-1], i)
            expected[s].append(text)
            add(store, sender=s, text=text)

    fwd = make(store, sink, backoff_base=0.02, backoff_cap=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=fwd.run, args=(stop,))
    thread.start()
    try:
        # refused connections first, then a server answering 503, then one that takes them
        assert wait_until(lambda: any(r["attempts"] >= 2 for r in store.due_inbound(FAR)))
        sink.set_response(503, "maintenance")
        sink.accept()
        assert wait_until(lambda: len(sink.requests) >= 3)
        sink.set_response(200)
        assert wait_until(lambda: store.counts()["inbound"]["pending"] == 0)
    finally:
        stop.set()
        store.notify()
        thread.join(10)
    assert not thread.is_alive()

    taken = [r for r in sink.requests if r.status == 200]
    got = {s: [r.args["text"] for r in taken if r.args["id"] == s] for s in senders}
    assert got == expected
    assert len({r.headers["X-Message-Id"] for r in taken}) == 15
    assert store.counts()["inbound"]["delivered"] == 15


def test_an_unreachable_receiver_costs_one_probe_not_one_request_per_message(store, sink):
    for n in range(10):
        add(store, sender="+25570000001%d" % n, text="m%d" % n)
    sink.refuse()
    fwd = make(store, sink, backoff_base=30.0, backoff_cap=60.0)
    assert fwd.step() == 1            # the first refusal ends the pass
    assert fwd.step() == 0            # and holds every delivery for the backoff
    attempts = sorted(r["attempts"] for r in store.due_inbound(FAR))
    assert attempts == [0] * 9 + [1]  # the others were not charged an attempt


def test_run_wakes_for_new_messages_and_stops_when_told(store, sink):
    fwd = make(store, sink)
    stop = threading.Event()
    thread = threading.Thread(target=fwd.run, args=(stop,))
    thread.start()
    try:
        msg_id = add(store)
        assert sink.wait_for(1, timeout=10)
        assert wait_until(lambda: store.get_inbound(msg_id)["status"] == "delivered")
    finally:
        stop.set()
        store.notify()
        thread.join(10)
    assert not thread.is_alive()


# -- logs and errors without secrets ---------------------------------------------------------------


def test_credentials_in_the_url_never_reach_logs_or_the_store(store, sink, caplog):
    url = sink.url.replace("http://", "http://rapid:s3cret@") + "/backend/kannel-backend/"
    fwd = Forwarder(store, url=url, timeout=2.0, backoff_base=0.01, backoff_cap=0.05)
    msg_id = add(store)
    sink.refuse()
    with caplog.at_level(logging.DEBUG, logger="gsmbridge"):
        fwd.step(now=FAR)
        sink.set_response(500, "boom")
        sink.accept()
        fwd.step(now=FAR)
        sink.set_response(200)
        fwd.step(now=FAR)
    assert store.get_inbound(msg_id)["status"] == "delivered"
    assert sink.requests[-1].headers["Authorization"].startswith("Basic ")
    assert "s3cret" not in caplog.text
    assert msg_id in caplog.text
    row = store.get_inbound(msg_id)
    assert row["attempts"] == 3 and "s3cret" not in (row["last_error"] or "")


def test_a_password_in_the_query_never_reaches_logs_or_the_store(store, sink, caplog):
    """httprouter's ROUTER_PASSWORD goes in [rapidsms] url's query: it is sent, never shown."""
    url = sink.url + "/router/receive?password=s3cret"
    msg_id = add(store)
    sink.refuse()
    with caplog.at_level(logging.DEBUG, logger="gsmbridge"):
        fwd = Forwarder(store, url=url, style="httprouter", timeout=2.0, backoff_base=0.01,
                        backoff_cap=0.05)
        fwd.step(now=FAR)                       # unreachable
        sink.set_response(500, "boom")
        sink.accept()
        fwd.step(now=FAR)                       # a server error
        sink.set_response(302, headers={"Location": url + "&next=/"})
        fwd.step(now=FAR)                       # a redirect back to the URL itself
        sink.set_response(400, "no such backend")
        fwd.step(now=FAR)                       # refused for good
    assert [r.args["password"] for r in sink.requests] == ["s3cret"] * 3
    row = store.get_inbound(msg_id)
    assert row["status"] == "failed" and "s3cret" not in row["last_error"]
    assert "s3cret" not in caplog.text and "s3cret" not in fwd.safe_url
    assert "password=***" in caplog.text
    assert "unreachable" in caplog.text and "redirect" in caplog.text
    assert "kept as failed" in caplog.text


def test_mask_url_hides_userinfo():
    assert mask_url("http://u:p@host:8000/x/?a=1") == "http://***@host:8000/x/?a=***"
    assert mask_url("http://host/x/") == "http://host/x/"


def test_mask_url_hides_every_query_value_wherever_the_url_is():
    assert mask_url("http://127.0.0.1:8000/router/receive?password=s%20ecret&x=1&flag#top") == \
        "http://127.0.0.1:8000/router/receive?password=***&x=***&***#top"
    assert mask_url("a 'https://u:p@h/p?token=t' and <http://h2/?k=v>") == \
        "a 'https://***@h/p?token=***' and <http://h2/?k=***>"
    assert mask_url("no URL here ?password=x") == "no URL here ?password=x"


def test_describe_error_leaves_out_the_query_string(store, sink):
    import requests

    sink.refuse()
    try:
        requests.get(sink.url + "/b/?id=%2B255700000001&text=secret+words", timeout=2)
    except requests.RequestException as exc:
        text = describe_error(exc)
    assert "ConnectionError" in text and "refused" in text.lower()
    assert "secret" not in text and "255700000001" not in text


def test_bad_settings_are_refused(store):
    with pytest.raises(ValueError):
        Forwarder(store, url="http://127.0.0.1/", style="soap")
    with pytest.raises(ValueError):
        Forwarder(store, url="ftp://127.0.0.1/")

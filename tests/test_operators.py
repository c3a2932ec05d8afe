"""The operators' view: status page, /status, /health, /metrics, the message list, and the CLI's
`status` and `messages`, through a real waitress server on 127.0.0.1 and the real store.

Rows "in the past" are written through a second Store on the same file with a clock of its own,
so the server sees exactly what a bridge running for hours would have written.
"""

import contextlib
import logging
import os
import re
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from webserver import served
from gsmbridge import cli, metrics, overview
from gsmbridge import config as configmod
from gsmbridge.store import Store
from gsmbridge.web import create_app

USER, PASSWORD = "operator", "district office"
AUTH = (USER, PASSWORD)
A, B, C = "+255700000001", "+255711222333", "0712345678"
HOUR = 3600.0


class Served:
    def __init__(self, url, store, config):
        self.url, self.store, self.config = url, store, config

    def get(self, path, auth=AUTH, **kwargs):
        return requests.get(self.url + path, auth=auth, timeout=10, **kwargs)

    def past(self, seconds_ago):
        """A Store on the same file whose clock says `seconds_ago` before now."""
        then = time.time() - seconds_ago
        return Store(self.store.path, clock=lambda: then)


@contextlib.contextmanager
def serving(store, config, port=0):
    with served(create_app(store, config), port) as url:
        yield Served(url, store, config)


@pytest.fixture
def bridge(tmp_path):
    cfg = configmod.for_tests(str(tmp_path), http={"username": USER, "password": PASSWORD})
    os.makedirs(os.path.dirname(cfg.store.path), exist_ok=True)
    store = Store(cfg.store.path)
    with serving(store, cfg) as served:
        yield served
    store.close()


@pytest.fixture
def pool(tmp_path):
    """A pool of two modems, set up as the app does: vodacom (routes, daily_cap 500) first in
    the file, airtel (hourly_cap 3) second."""
    cfg = configmod.for_tests(
        str(tmp_path), http={"username": USER, "password": PASSWORD},
        modem={"name": "vodacom", "routes": "+25574 +25575", "daily_cap": 500},
        **{"modem:airtel": {"port": "sim://", "routes": "+25568", "hourly_cap": 3}})
    os.makedirs(os.path.dirname(cfg.store.path), exist_ok=True)
    store = Store(cfg.store.path)
    store.set_pool({name: {"routes": m.routes, "daily_cap": m.daily_cap,
                           "hourly_cap": m.hourly_cap} for name, m in cfg.modems.items()})
    with serving(store, cfg) as served:
        yield served
    store.close()


def sent_by(store, modem, count, parts=1):
    """count messages of `parts` parts sent by modem (at the store's clock)."""
    for i in range(count):
        [msg_id] = store.add_outbound(["+2557400%05d" % i], "x", encoding="gsm7", parts=parts)
        assert store.outbound_sending(msg_id, modem=modem)
        store.outbound_sent(msg_id, references=[i % 256] * parts)


def modem_up(store, **extra):
    fields = dict(state="up", signal=17, operator="Vodacom TZ", registration=1, registered=True,
                  last_error=None)
    fields.update(extra)
    store.set_modem("modem", **fields)


def inbound(store, sender=B, text="hello", key=None):
    return store.add_inbound(modem="modem", sender=sender, text=text, sent_at=None,
                             pdus=["00"], keys=[key or "%s-%s-%s" % (sender, text, time.time())])


def sent(store, number=A, text="reply"):
    [msg_id] = store.add_outbound([number], text, encoding="gsm7", parts=1)
    store.outbound_sending(msg_id)
    store.outbound_sent(msg_id, references=[1])
    return msg_id


# -- the status page ------------------------------------------------------------------------------

def test_status_page_shows_modem_queues_and_messages_masked(bridge):
    modem_up(bridge.store)
    inbound(bridge.store, text="private health report")
    resp = requests.post(bridge.url + "/api/v1/messages", auth=AUTH, timeout=10,
                         json={"to": [A, C], "text": "Chanjo kesho"})
    assert resp.status_code == 202
    ids = resp.json()["ids"]

    resp = bridge.get("/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Cache-Control"] == "no-store"
    page = resp.text
    assert 'data-modem="modem" data-state="up"' in page
    assert "Vodacom TZ" in page and "registered (home)" in page and "CSQ 17, -79 dBm" in page
    assert re.search(r'data-count="out-queued"><b>2</b>', page)
    assert re.search(r'data-count="in-pending"><b>1</b>', page)
    # numbers masked, texts not shown, ids shown
    assert "+25570****001" in page and "071****678" in page and "+25571****333" in page
    for secret in (A, C, B, "private health report", "Chanjo kesho"):
        assert secret not in page
    for msg_id in ids:
        assert 'data-id="%s"' % msg_id in page
    # self-contained: nothing loaded from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<svg" in page and "<script>" in page


def test_status_page_says_what_is_wrong(bridge):
    bridge.store.set_modem("modem", state="down", last_error="ModemGone: <port vanished>")
    page = bridge.get("/").text
    assert "Needs attention" in page and 'id="problems"' in page
    assert "modem modem is down: ModemGone: &lt;port vanished&gt;" in page  # escaped
    assert "<port vanished>" not in page
    modem_up(bridge.store)
    page = bridge.get("/").text
    assert "SMS flowing" in page and 'id="problems"' not in page


def test_status_page_shows_a_pools_modems_with_routes_caps_and_warnings(pool):
    for name in ("vodacom", "airtel"):
        pool.store.set_modem(name, state="up", registered=True, registration=1)
    old = pool.past(3 * HOUR)
    sent_by(old, "vodacom", 100, parts=3)     # in the last 24 hours, not the last hour
    old.close()
    sent_by(pool.store, "vodacom", 12)
    sent_by(pool.store, "airtel", 3)
    page = pool.get("/").text
    vodacom, airtel = (page[page.index('data-modem="%s"' % name):] for name in ("vodacom",
                                                                                "airtel"))
    assert page.index('data-modem="vodacom"') < page.index('data-modem="airtel"')  # file order
    assert 'data-capped="false" data-available="true"' in vodacom[:100]
    assert "+25574 +25575" in vodacom and "312 / 500 in 24 h" in vodacom
    assert "12 in 1 h" in vodacom
    assert 'data-capped="true" data-available="false"' in airtel[:100]
    assert '<span class="pill wait">capped</span>' in airtel[:400]
    assert "3 in 24 h" in airtel and "3 / 3 in 1 h" in airtel and "at its cap" in airtel
    assert 'class="meter bad"' in airtel and 'width:100%' in airtel
    assert "SMS flowing" in page and 'id="warnings"' not in page   # a cap is not a warning

    pool.store.set_modem("airtel", state="down", last_error="ModemGone: gone")
    page = pool.get("/").text
    assert "SMS flowing, 1 warning" in page and "<title>WARNING " in page
    assert 'id="warnings"' in page and "<li>modem airtel is down: ModemGone: gone</li>" in page
    assert 'id="problems"' not in page
    pool.store.set_modem("vodacom", state="down")
    page = pool.get("/").text
    assert "Needs attention" in page and 'id="problems"' in page and 'id="warnings"' not in page


def test_status_and_health_of_a_pool_with_a_modem_down(pool):
    pool.store.set_modem("vodacom", state="up", registered=True)
    pool.store.set_modem("airtel", state="no network", registered=False, registration=2)
    sent_by(pool.store, "vodacom", 2, parts=2)
    data = pool.get("/status").json()
    assert list(data["modems"]) == ["airtel", "vodacom"]       # JSON keys sorted
    vodacom, airtel = data["modems"]["vodacom"], data["modems"]["airtel"]
    assert (vodacom["routes"], vodacom["daily_cap"], vodacom["hourly_cap"]) == (
        ["+25574", "+25575"], 500, 0)
    assert (vodacom["sent_last_hour"], vodacom["sent_last_day"]) == (4, 4)
    assert (vodacom["capped"], vodacom["available"]) == (False, True)
    assert (airtel["capped"], airtel["available"]) == (False, False)
    warning = "modem airtel has no network"
    assert data["health"]["ok"] is True and data["health"]["reasons"] == []
    assert data["health"]["warnings"][0].startswith(warning)
    resp = pool.get("/health", auth=None)
    assert resp.status_code == 200
    assert resp.json() == {"ok": True, "warnings": data["health"]["warnings"]}


def test_operator_pages_need_credentials(bridge):
    for path in ("/", "/status", "/metrics", "/api/v1/messages"):
        for auth in (None, (USER, "wrong")):
            resp = bridge.get(path, auth=auth)
            assert resp.status_code == 401, path
            assert resp.headers["WWW-Authenticate"].startswith("Basic"), path
    # what shows no message needs none: monitoring and tools reach them as they are
    assert bridge.get("/health", auth=None).status_code in (200, 503)
    assert bridge.get("/openapi.json", auth=None).status_code == 200


def test_refresh_interval(bridge):
    assert 'content="15"' in bridge.get("/").text
    page = bridge.get("/?refresh=60").text
    assert 'content="60"' in page and "var every = 60 * 1000" in page
    for bad in ("1", "x", "99999"):
        assert bridge.get("/?refresh=" + bad).status_code == 400


# -- /status --------------------------------------------------------------------------------------

def test_status_json_has_traffic_activity_and_health(bridge):
    modem_up(bridge.store)
    old = bridge.past(5.5 * HOUR)
    old.inbound_delivered(inbound(old, text="hours ago"), response="ok")
    sent(old)
    old.close()
    inbound(bridge.store, text="just now")
    data = bridge.get("/status").json()
    assert data["health"] == {"ok": True, "reasons": []}
    traffic = data["traffic"]
    assert len(traffic["in"]) == len(traffic["out"]) == 24 and traffic["bucket"] == HOUR
    assert traffic["in"][-1] == 1 and traffic["in"][-6] == 1 and sum(traffic["in"]) == 2
    assert traffic["out"][-6] == 1 and sum(traffic["out"]) == 1
    assert abs(data["activity"]["last_received"] - time.time()) < 60
    for key in ("last_sent", "last_forwarded"):
        assert abs(data["activity"][key] - (time.time() - 5.5 * HOUR)) < 60
    assert data["recent"][0]["text"] == "just now" and len(data["recent"]) == 3
    assert data["modems"]["modem"]["operator"] == "Vodacom TZ"
    assert data["uptime"] >= 0


# -- /health --------------------------------------------------------------------------------------

def health(bridge):
    resp = bridge.get("/health", auth=None)
    return resp.status_code, resp.json()


def test_health_needs_a_registered_modem(bridge):
    modem_up(bridge.store)
    assert health(bridge) == (200, {"ok": True})
    modem_up(bridge.store, registered=False, registration=2)
    assert health(bridge) == (503, {"ok": False, "reason": "modem modem is not registered on the "
                                                           "network (searching)"})
    modem_up(bridge.store, registered=False, registration=3)
    assert "registration denied" in health(bridge)[1]["reason"]


def test_health_fails_when_inbound_waits_over_an_hour(bridge):
    modem_up(bridge.store)
    old = bridge.past(2 * HOUR)
    inbound(old, text="stuck")
    old.close()
    status, body = health(bridge)
    assert status == 503
    assert body["reason"].startswith("inbound: a message has waited 2 h for RapidSMS (1 pending")
    msg = bridge.store.messages(direction="in")[0]
    bridge.store.inbound_delivered(msg["id"], response="ok")
    assert health(bridge) == (200, {"ok": True})


def test_health_tells_a_stalled_outbound_queue_from_a_long_one(bridge):
    modem_up(bridge.store)
    old = bridge.past(2 * HOUR)
    old.add_outbound([A], "waiting", encoding="gsm7", parts=1)
    old.close()
    status, body = health(bridge)
    assert status == 503 and body["reason"] == (
        "outbound: nothing sent ever; 1 queued, the oldest for 2 h")
    # the modem is working through a long queue: not a problem
    sent(bridge.store)
    assert health(bridge) == (200, {"ok": True})


def test_health_fails_when_the_disk_is_nearly_full(bridge, monkeypatch):
    modem_up(bridge.store)
    monkeypatch.setattr(overview, "MIN_FREE_BYTES", 1 << 62)
    status, body = health(bridge)
    assert status == 503 and "the store's disk is nearly full" in body["reason"]


def test_health_lists_every_problem(bridge):
    old = bridge.past(3 * HOUR)
    inbound(old)
    old.add_outbound([A], "x", encoding="gsm7", parts=1)
    old.close()
    status, body = health(bridge)
    assert status == 503
    assert body["reason"].split("; ")[0] == "modem modem has not started"
    assert "inbound: a message has waited 3 h" in body["reason"]
    assert "outbound: nothing sent ever" in body["reason"]


def test_health_sent_recently_keeps_outbound_healthy_only_for_a_while(tmp_path):
    """The outbound rule on its own, with times chosen freely."""
    cfg = configmod.for_tests(str(tmp_path))
    now = time.time()
    data = {"modems": {"modem": {"state": "up", "updated_at": now}},
            "counts": {"inbound": {"pending": 0}, "outbound": {"queued": 9},
                       "oldest_pending_inbound": None, "oldest_queued_outbound": now - 2 * HOUR},
            "activity": {"last_sent": now - 60, "last_forwarded": None}}
    assert overview.problems(data, cfg, now=now) == []
    data["activity"]["last_sent"] = now - 20 * 60
    assert overview.problems(data, cfg, now=now) == [
        "outbound: nothing sent for 20 min; 9 queued, the oldest for 2 h"]
    data["counts"]["oldest_queued_outbound"] = now - 30 * 60   # a young queue: not yet
    assert overview.problems(data, cfg, now=now) == []


# -- /metrics -------------------------------------------------------------------------------------

def scrape(bridge):
    resp = bridge.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_has_queue_depths_from_the_store_and_the_counters(bridge):
    modem_up(bridge.store)
    inbound(bridge.store)
    requests.post(bridge.url + "/api/v1/messages", auth=AUTH, json={"to": [A, B], "text": "x"},
                  timeout=10)
    bridge.store.add_bad_pdu(modem="modem", pdu="0011", error="short")
    bridge.store.add_part(modem="modem", key="k1", sender=B, reference=7, total=2, sequence=1,
                          bits=8, pdu="00")
    before = metrics.REGISTRY.get_sample_value("gsmbridge_messages_forwarded_total")
    metrics.FORWARDED.inc()
    samples = scrape(bridge)
    assert samples[("gsmbridge_store_ok", ())] == 1
    assert samples[("gsmbridge_inbound_messages", (("status", "pending"),))] == 1
    assert samples[("gsmbridge_outbound_messages", (("status", "queued"),))] == 2
    assert samples[("gsmbridge_outbound_messages", (("status", "failed"),))] == 0
    assert samples[("gsmbridge_bad_pdus_stored", ())] == 1
    assert samples[("gsmbridge_parts_waiting", ())] == 1
    assert samples[("gsmbridge_healthy", ())] == 1
    assert abs(samples[("gsmbridge_oldest_queued_outbound_timestamp_seconds", ())]
               - time.time()) < 60
    assert ("gsmbridge_modem_updated_timestamp_seconds", (("modem", "modem"),)) in samples
    assert samples[("gsmbridge_messages_forwarded_total", ())] == before + 1


def test_metrics_have_each_modems_sends_and_caps(pool):
    pool.store.set_modem("vodacom", state="up", registered=True)
    pool.store.set_modem("airtel", state="up", registered=True)
    old = pool.past(2 * HOUR)
    sent_by(old, "vodacom", 5, parts=2)
    old.close()
    sent_by(pool.store, "vodacom", 1)
    sent_by(pool.store, "airtel", 1, parts=3)
    samples = scrape(pool)

    def gauge(name, modem):
        return samples.get(("gsmbridge_modem_%s" % name, (("modem", modem),)))

    assert (gauge("sent_last_hour", "vodacom"), gauge("sent_last_day", "vodacom")) == (1, 11)
    assert (gauge("sent_last_hour", "airtel"), gauge("sent_last_day", "airtel")) == (3, 3)
    assert gauge("daily_cap", "vodacom") == 500 and gauge("hourly_cap", "airtel") == 3
    # no cap, no sample: an alert on sent / cap never divides by zero
    assert gauge("hourly_cap", "vodacom") is None and gauge("daily_cap", "airtel") is None
    assert (gauge("capped", "vodacom"), gauge("available", "vodacom")) == (0, 1)
    assert (gauge("capped", "airtel"), gauge("available", "airtel")) == (1, 0)


def test_metrics_survive_a_store_that_cannot_be_read(bridge):
    bridge.store.close()
    samples = scrape(bridge)
    assert samples[("gsmbridge_store_ok", ())] == 0
    assert ("gsmbridge_outbound_messages", (("status", "queued"),)) not in samples


# -- GET /api/v1/messages -------------------------------------------------------------------------

def listed(bridge, **params):
    resp = bridge.get("/api/v1/messages", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == len(body["messages"])
    return body["messages"]


def test_message_list_filters(bridge):
    store = bridge.store
    first = inbound(store, sender="+255712345678", text="one")
    inbound(store, sender="MyBank", text="two")
    out_sent = sent(store, number="0712345678", text="three")
    [queued] = store.add_outbound([A], "four", encoding="gsm7", parts=1)

    assert [m["text"] for m in listed(bridge)] == ["four", "three", "two", "one"]
    assert [m["text"] for m in listed(bridge, direction="in")] == ["two", "one"]
    assert [m["id"] for m in listed(bridge, direction="out", status="sent")] == [out_sent]
    assert [m["id"] for m in listed(bridge, status="queued")] == [queued]
    # one line, however it is written
    for number in ("0712345678", "+255712345678", "255712345678", "712345678"):
        assert [m["text"] for m in listed(bridge, number=number)] == ["three", "one"], number
    assert [m["text"] for m in listed(bridge, number="bank")] == ["two"]
    assert [m["text"] for m in listed(bridge, number="001")] == ["four"]
    assert [m["text"] for m in listed(bridge, limit=1)] == ["four"]
    one = listed(bridge, direction="in", number="+255712345678")[0]
    assert one["id"] == first and one["from"] == "+255712345678" and "pdus" not in one
    assert listed(bridge, direction="out", status="queued")[0]["to"] == A


@pytest.mark.parametrize("params, words", [
    ({"direction": "both"}, "direction must be in or out"),
    ({"status": "lost"}, "status must be one of"),
    ({"direction": "in", "status": "queued"}, "status must be one of delivered, failed, pending"),
    ({"limit": "0"}, "limit field misformed"),
    ({"limit": "1001"}, "limit field misformed"),
    ({"limit": "ten"}, "limit field misformed"),
    ({"number": "1" * 65}, "number is too long"),
])
def test_message_list_refusals(bridge, params, words):
    resp = bridge.get("/api/v1/messages", params=params)
    assert resp.status_code == 400
    assert words in resp.json()["error"]


# -- the store's queries for this view ------------------------------------------------------------

def test_activity_counts_per_bucket_from_the_newest_rows(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    clock = [1_000_000.0]
    store = Store(path, clock=lambda: clock[0])
    for minute in (0, 10, 70, 200):           # received at these minutes after the start
        clock[0] = 1_000_000.0 + minute * 60
        inbound(store, text=str(minute))
    clock[0] = 1_000_000.0 + 130 * 60
    sent(store)
    clock[0] = 1_000_000.0 - 60                # before the window: not counted
    inbound(store, text="early")
    result = store.activity(1_000_000.0, bucket=HOUR, buckets=3)
    assert result["in"] == [2, 1, 0]           # minute 200 is past the third hour
    assert result["out"] == [0, 0, 1]
    assert result["last_received"] == 1_000_000.0 + 200 * 60
    assert result["last_sent"] == 1_000_000.0 + 130 * 60
    assert result["last_forwarded"] is None
    # only the newest rows are looked at, so the cost stays bounded on a big store
    store.ACTIVITY_SCAN = 2
    assert sum(store.activity(1_000_000.0, bucket=HOUR, buckets=4)["in"]) == 1
    store.close()


# -- small pieces ---------------------------------------------------------------------------------

@pytest.mark.parametrize("number, masked", [
    ("+255700000001", "+25570****001"),
    ("255700000001", "25570****001"),
    ("0712345678", "071****678"),
    ("1234567", "****567"),
    ("15888", "15888"),
    ("MyBank", "MyBank"),
    ("", ""),
    (None, ""),
])
def test_mask_number(number, masked):
    assert overview.mask_number(number) == masked


def test_every_accepted_message_is_logged_with_its_id(bridge, caplog):
    caplog.set_level(logging.INFO, logger="gsmbridge.web")
    resp = requests.post(bridge.url + "/api/v1/messages", auth=AUTH, timeout=10,
                         json={"to": [A, C], "text": "hi"})
    resp2 = requests.get(bridge.url + "/cgi-bin/sendsms", timeout=10,
                         params={"username": USER, "password": PASSWORD, "to": B, "text": "x"})
    assert resp2.status_code == 202
    lines = [r.getMessage() for r in caplog.records if r.name == "gsmbridge.web"]
    for msg_id in resp.json()["ids"]:
        assert any(line.startswith("id=%s accepted via api" % msg_id) for line in lines), lines
    [latest] = bridge.store.messages(direction="out", number=B)
    assert any(line.startswith("id=%s accepted via sendsms" % latest["id"]) for line in lines)
    assert not any(number in line for line in lines for number in (A, B, C))


# -- the command line -----------------------------------------------------------------------------

@pytest.fixture
def configured(tmp_path):
    """A bridge served from the config an ini file describes, as `gsmbridge -c` reads it."""
    from bridgeproc import free_port

    port = free_port()
    ini = tmp_path / "gsmbridge.ini"
    ini.write_text("[modem]\nport = sim://\n[http]\nlisten = 127.0.0.1:%d\nusername = %s\n"
                   "password = %s\n[rapidsms]\nurl = http://127.0.0.1:8000/backend/\n"
                   "[store]\npath = %s\n" % (port, USER, PASSWORD, tmp_path / "store.sqlite3"))
    cfg = configmod.load(str(ini))
    store = Store(cfg.store.path)
    with serving(store, cfg, port=port) as served:
        served.ini = str(ini)
        yield served
    store.close()


def test_cli_status(configured, capsys):
    modem_up(configured.store)
    inbound(configured.store)
    sent(configured.store)
    configured.store.add_outbound([A], "later", encoding="gsm7", parts=1)
    assert cli.main(["status", "-c", configured.ini]) == 0
    out = capsys.readouterr().out
    assert ": OK" in out.splitlines()[0]
    assert re.search(r"^modem\s+up\s+###\. good \(CSQ 17\)\s+Vodacom TZ\s+registered \(home\)",
                     out, re.M), out
    assert re.search(r"^outbound queued\s+1\s+\d+ s$", out, re.M), out
    assert re.search(r"^inbound waiting for RapidSMS\s+1", out, re.M), out
    assert re.search(r"^last hour\s+1\s+1$", out, re.M), out

    configured.store.set_modem("modem", state="down", last_error="ModemTimeout: no answer")
    assert cli.main(["status", "-c", configured.ini]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM" in out and "- modem modem is down: ModemTimeout: no answer" in out
    assert "last error: ModemTimeout: no answer" in out


def test_cli_messages(configured, capsys):
    inbound(configured.store, sender=B, text="Habari, nimefika salama " * 3)
    failed_id = configured.store.add_outbound([A], "to fail", encoding="gsm7", parts=1)[0]
    configured.store.outbound_sending(failed_id)
    configured.store.outbound_failed(failed_id, error="+CMS ERROR: 21 short message rejected")
    assert cli.main(["messages", "-c", configured.ini]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["WHEN", "WAY", "NUMBER", "STATUS", "PARTS", "TRIES", "ID", "TEXT"]
    assert out[1].split()[2:8] == ["out", A, "failed", "1", "1", failed_id]
    assert out[2].strip() == "error: +CMS ERROR: 21 short message rejected"
    assert out[3].split()[2:5] == ["in", B, "pending"]
    assert out[3].endswith("Habari, nimefika salama Habari, nimef...")

    assert cli.main(["messages", "-c", configured.ini, "--direction", "in",
                     "--number", "0711222333"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and B in out[1]
    assert cli.main(["messages", "-c", configured.ini, "--status", "lost"]) == 1
    assert "status must be one of" in capsys.readouterr().err

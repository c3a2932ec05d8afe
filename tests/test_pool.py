"""Modem pools: several modems in one bridge.

The store's routing on its own (pinning, prefix routes, a modem down or at its cap, routes kept
across restarts and re-routed when they change, the queries' indexes), the config's [modem:NAME]
sections, and whole bridges (gsmbridge.app.Bridge, in-process) with one simulated modem per
[modem:NAME] on its own pty: sendsms smsc=, prefix routes, caps, a modem pulled out mid-run,
inbound per modem with its own receiver URL, delivery-report %i, /health and /status.
"""

import subprocess
import sys

import pytest
import requests

import gsmbridge.store as store_module
from plans import assert_uses_index, plan_problems
from gsmbridge import config
from gsmbridge.app import Bridge, forwarding_groups
from gsmbridge.config import ConfigError
from gsmbridge.store import Store

from bridgeproc import wait_for

VODACOM = "+25576"      # routes of modem a in these tests
AIRTEL = "+25568"       # routes of modem b




def queue(store, *numbers, modem=None, parts=1):
    return store.add_outbound(list(numbers), "hello", encoding="gsm7", parts=parts, modem=modem)


def up(store, *names, state="up"):
    for name in names:
        store.set_modem(name, state=state)


def take(store, modem, now):
    """What the modem's worker would send next: claimed and sent. None when nothing."""
    row = store.next_outbound(modem, now)
    if row is None:
        return None
    assert store.outbound_sending(row["id"], modem=modem)
    store.outbound_sent(row["id"], references=[1] * row["parts"])
    return row["recipient"]


def drain(store, modem, now):
    taken = []
    while (number := take(store, modem, now)) is not None:
        taken.append(number)
    return taken


THREE = {"a": {"routes": [VODACOM]}, "b": {"routes": [AIRTEL]}, "c": {}}


# -- the store's routing ------------------------------------------------------------------------


def test_pinned_routed_and_unrouted(store, clock):
    store.set_pool(THREE)
    up(store, "a", "b", "c")
    queue(store, "+255761000001", "+255681000001", "+15550000001", "+255761000002")
    queue(store, "+255761000003", modem="c")
    # c takes what is pinned to it and what no modem's routes claim, never a's or b's numbers
    assert drain(store, "c", clock.now) == ["+15550000001", "+255761000003"]
    assert drain(store, "b", clock.now) == ["+255681000001"]
    assert drain(store, "a", clock.now) == ["+255761000001", "+255761000002"]


def test_unrouted_messages_go_to_whichever_modem_asks_first(store, clock):
    store.set_pool(THREE)
    up(store, "a", "b", "c")
    queue(store, "+15550000001", "+15550000002", "+15550000003")
    assert [take(store, m, clock.now) for m in ("b", "a", "c")] == [
        "+15550000001", "+15550000002", "+15550000003"]


def test_a_modem_that_cannot_send_leaves_its_routed_messages_to_the_others(store, clock):
    store.set_pool(THREE)
    up(store, "b", "c")
    up(store, "a", state="down")
    queue(store, "+255761000001")
    pinned = queue(store, "+255761000002", modem="a")[0]
    assert drain(store, "c", clock.now) == ["+255761000001"]
    # pinned waits for its modem, however long
    assert store.next_outbound("b", clock.now) is None
    up(store, "a")
    assert store.next_outbound("a", clock.now)["id"] == pinned

    for state in ("booting", "no network", "not answering", "stopped"):
        up(store, "a", state=state)
        queue(store, "+255761000009")
        assert take(store, "b", clock.now) == "+255761000009", state


def test_a_modem_silent_for_five_minutes_counts_as_unable(store, clock):
    store.set_pool(THREE)
    up(store, "a", "b", "c")
    queue(store, "+255761000001")
    assert store.next_outbound("c", clock.now) is None
    clock.now += store_module.MODEM_STALE + 1
    up(store, "c")
    assert take(store, "c", clock.now) == "+255761000001"


def test_a_message_pinned_elsewhere_cannot_be_claimed(store, clock):
    store.set_pool(THREE)
    msg_id = queue(store, "+15550000001", modem="a")[0]
    assert store.outbound_sending(msg_id, modem="b") is False
    assert store.get_outbound(msg_id)["status"] == "queued"
    assert store.outbound_sending(msg_id, modem="a") is True


def test_overlapping_routes_share_and_unmatched_numbers_are_anyones(store, clock):
    store.set_pool({"a": {"routes": ["+255"]}, "b": {"routes": ["+25568", "068"]}, "c": {}})
    up(store, "a", "b", "c")
    assert store.route_of("+255681234567") == "a,b"
    assert store.route_of("00255681234567") == "a,b"     # 00 is the international prefix too
    assert store.route_of("255761234567") == "a"
    assert store.route_of("0681234567") == "b"           # national numbers match as written
    assert store.route_of("0761234567") == ""
    assert store.route_of("+15550000001") == ""
    queue(store, "+255681234567", "+255681234568")
    assert store.next_outbound("c", clock.now) is None
    assert take(store, "b", clock.now) == "+255681234567"
    assert take(store, "a", clock.now) == "+255681234568"


def test_caps_count_sms_parts_in_rolling_windows(store, clock):
    store.set_pool({"a": {"routes": [VODACOM], "hourly_cap": 3, "daily_cap": 5}, "c": {}})
    up(store, "a", "c")
    queue(store, "+255761000001", parts=2)
    queue(store, "+255761000002")                 # a reaches 3 SMS: its hourly cap
    queue(store, "+255761000003", "+255761000004")
    pinned = queue(store, "+255761000005", modem="a")[0]
    assert drain(store, "a", clock.now) == ["+255761000001", "+255761000002"]
    assert store.capped("a") and store.usage("a") == (3, 3)
    assert "a" not in store.available()
    # a capped modem's routed messages move; the pinned one waits
    assert drain(store, "c", clock.now) == ["+255761000003", "+255761000004"]
    assert store.get_outbound(pinned)["status"] == "queued"
    modems = store.modems()
    assert modems["a"]["capped"] is True and modems["a"]["sent_last_hour"] == 3
    assert modems["a"]["hourly_cap"] == 3 and modems["a"]["routes"] == [VODACOM]
    assert modems["c"]["available"] is True and modems["c"]["capped"] is False

    clock.now += 3601                              # the hour has passed; the day has not
    up(store, "a", "c")
    assert not store.capped("a")
    queue(store, "+255761000006")
    assert drain(store, "a", clock.now) == ["+255761000005", "+255761000006"]
    assert store.usage("a") == (2, 5) and store.capped("a")      # daily cap of 5 reached
    clock.now += 86400
    assert not store.capped("a")


def test_caps_survive_a_restart(tmp_path, clock):
    path = str(tmp_path / "store.sqlite3")
    s = Store(path, clock=clock)
    s.set_pool({"a": {"daily_cap": 1}})
    up(s, "a")
    queue(s, "+15550000001", "+15550000002")
    assert take(s, "a", clock.now) == "+15550000001"
    s.close()
    s = Store(path, clock=clock)
    assert s.pool() == {"a": {"routes": [], "daily_cap": 1, "hourly_cap": 0}}
    assert s.next_outbound("a", clock.now) is None
    s.close()


def test_changed_routes_reroute_the_queue(tmp_path, clock):
    path = str(tmp_path / "store.sqlite3")
    s = Store(path, clock=clock)
    s.set_pool(THREE)
    ids = queue(s, "+255761000001", "+255681000001")
    s.close()

    s = Store(path, clock=clock)      # another Store on the file routes as the pool says
    assert s.get_outbound(queue(s, "+255761000002")[0])["route"] == "a"
    assert s.set_pool({"a": {"routes": [AIRTEL]}, "c": {"routes": [VODACOM]}}) == 0
    assert [s.get_outbound(i)["route"] for i in ids] == ["c", "a"]
    s.set_pool({"a": {}, "c": {}})
    assert [s.get_outbound(i)["route"] for i in ids] == ["", ""]
    s.close()


def test_messages_pinned_to_a_modem_no_longer_configured_are_counted(store, clock):
    store.set_pool({"a": {}, "b": {}})
    queue(store, "+1555", modem="b")
    queue(store, "+1556", modem="a")
    assert store.set_pool({"a": {}}) == 1


def test_without_a_pool_the_store_routes_as_before(store, clock):
    queue(store, "+255761000001")
    queue(store, "+255761000002", modem="m2")
    assert take(store, "m1", clock.now) == "+255761000001"
    assert store.next_outbound("m1", clock.now) is None
    assert "capped" not in store.modems().get("m1", {})


def test_bad_routes_are_refused(store):
    with pytest.raises(ValueError):
        store.set_pool({"a": {"routes": ["+2557x"]}})


def test_inbound_of_some_modems(store, clock):
    def received(modem, sender, text):
        store.add_inbound(modem=modem, sender=sender, text=text, sent_at=None, pdus=["00"],
                          keys=["%s-%s" % (sender, text)])
        clock.now += 1

    received("a", "+1", "one via a")
    received("b", "+2", "two via b")
    received("b", "+1", "three via b")   # waits for "one via a": a sender's order holds
    received("c", "+3", "four via c")
    texts = lambda rows: [r["text"] for r in rows]
    assert texts(store.due_inbound(clock.now, modems=["b", "c"])) == ["two via b", "four via c"]
    assert texts(store.due_inbound(clock.now, limit=1, modems=["c", "b"])) == ["two via b"]
    assert store.next_inbound_due(modems=["c"]) == clock.now - 1
    assert store.next_inbound_due(modems=["nobody"]) is None
    assert store.pending_inbound_modems() == ["a", "b", "c"]


POOL_QUERIES = [
    ("NEXT_OUTBOUND_ROUTE_SQL", "outbound_route"),
    ("SENT_SINCE_SQL", "outbound_sent_by"),
    ("DUE_INBOUND_OF_MODEM_SQL", "inbound_due_modem"),
    ("NEXT_INBOUND_DUE_OF_MODEM_SQL", "inbound_due_modem"),
]


def _fill_pool_queues(store, *, drop=None):
    """Queues of several modems and routes with ANALYZE statistics; `drop`: an index to drop
    first. Returns the connection."""
    db = store._conn()
    db.execute("BEGIN")
    db.executemany("INSERT INTO inbound (id, modem, sender, text, received_at, pdus, head,"
                   " next_attempt) VALUES (?, ?, ?, 't', 0, '[]', ?, ?)",
                   [("i%d" % i, "m%d" % (i % 4), "+%d" % (i % 50), 1 if i < 50 else 0, i)
                    for i in range(3000)])
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, modem, status, route,"
                   " sent_by, sent_at, next_attempt, created_at)"
                   " VALUES (?, '+1', 't', 1, ?, ?, ?, ?, ?, ?, 0)",
                   [("o%d" % i, ("m1", None, None)[i % 3], "queued" if i % 2 else "sent",
                     ("", "a", "a,b")[i % 3], None if i % 2 else "m%d" % (i % 4),
                     None if i % 2 else i, i) for i in range(3000)])
    if drop:
        db.execute("DROP INDEX %s" % drop)
    db.execute("COMMIT")
    db.execute("ANALYZE")
    return db


@pytest.mark.parametrize("name, index", POOL_QUERIES)
def test_pool_queries_use_their_index_with_statistics(store, name, index):
    """Each pool query is one index range, whatever the queue holds (1,000,000 queued:
    bench/bench_pool.py --store)."""
    db = _fill_pool_queues(store)
    assert_uses_index(db, getattr(store_module, name), index, no_sort=True)


@pytest.mark.parametrize("name, index", POOL_QUERIES)
def test_the_plan_check_reports_a_pool_query_whose_index_is_gone(store, name, index):
    db = _fill_pool_queues(store, drop=index)
    problems = plan_problems(db, getattr(store_module, name), index, no_sort=True)
    assert "as the store runs it: no such index: %s" % index in problems, problems
    assert any(p.startswith("left to the planner: %s is not used" % index)
               for p in problems), problems


# -- config ------------------------------------------------------------------------------------

RAPIDSMS = {"url": "http://127.0.0.1:8000/backend/kannel-backend/"}


def pool_config(**modems):
    data = {"modem:%s" % name: values for name, values in modems.items()}
    data["rapidsms"] = RAPIDSMS
    return config.from_dict(data)


def test_modem_sections_make_a_pool_in_file_order(tmp_path):
    path = tmp_path / "gsmbridge.ini"
    path.write_text("""\
[modem:vodacom]
port = /dev/ttyUSB0
routes = +25574 +25575, +25576
daily_cap = 2000
send_timeout = 90

[modem]
port = /dev/ttyUSB1
name = spare
send_timeout = 90

[modem:airtel]
port = sim://?control=127.0.0.1:13014
hourly_cap = 100
url = http://127.0.0.1:8000/backend/kannel-airtel/

[rapidsms]
url = http://127.0.0.1:8000/backend/kannel-backend/
""")
    cfg = config.load(str(path))
    assert cfg.modem_names == ("vodacom", "spare", "airtel")
    assert cfg.modem.name == "vodacom"
    assert cfg.modem.routes == ("+25574", "+25575", "+25576") and cfg.modem.daily_cap == 2000
    assert cfg.modems["airtel"].hourly_cap == 100 and cfg.modems["airtel"].daily_cap == 0
    assert cfg.modems["airtel"].url.endswith("/kannel-airtel/")
    assert cfg.modems["spare"].url is None and cfg.modems["spare"].routes == ()
    assert cfg.warnings == ()
    masked = cfg.masked()
    assert [s for s in masked if s.startswith("modem")] == [
        "modem:vodacom", "modem:spare", "modem:airtel"]
    assert masked["modem:vodacom"]["routes"] == "+25574 +25575 +25576"
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "check-config", "-c", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[modem:airtel]\n" in out.stdout and "routes = +25574 +25575 +25576" in out.stdout


@pytest.mark.parametrize("modems, section, key, words", [
    ({"a": {"port": "sim://", "name": "b"}}, "modem:a", "name", "leave name out"),
    ({"a": {"port": "/dev/ttyUSB0"}, "A": {"port": "/dev/ttyUSB1"}}, "modem:A", None,
     "'A' is [modem:a]'s too"),
    ({"a": {"port": "/dev/ttyUSB0"}, "b": {"port": "/dev/ttyUSB0"}}, "modem:b", "port",
     "one serial port"),
    ({"a": {"port": "sim://?control=127.0.0.1:13014"},
      "b": {"port": "sim://?control=127.0.0.1:13014"}}, "modem:b", "port", "control address"),
    ({"a": {"port": "sim://"}, "b": {"port": "sim://", "max_parts": 5}}, "modem:b", "max_parts",
     "same longest message"),
    ({"a": {"port": "sim://", "routes": "+25576 +2557x"}}, "modem:a", "routes",
     "'+2557x' is not a number prefix"),
    ({"a": {"port": "sim://", "daily_cap": -1}}, "modem:a", "daily_cap", "too small"),
    ({"a": {"port": "sim://", "url": "ftp://x/"}}, "modem:a", "url", "not an http"),
    ({"a b": {"port": "sim://"}}, "modem:a b", None, "1 to 64 letters"),
    ({"": {"port": "sim://"}}, "modem:", None, "1 to 64 letters"),
    ({"a": {"port": "sim://", "rutes": "+1"}}, "modem:a", "rutes", "did you mean 'routes'"),
    ({"a": {}}, "modem:a", "port", "is required"),
])
def test_pool_config_errors_name_the_section(modems, section, key, words):
    with pytest.raises(ConfigError) as info:
        pool_config(**modems)
    assert (info.value.section, info.value.key) == (section, key)
    assert words in str(info.value)


def test_a_plain_modem_is_a_pool_of_one():
    cfg = config.from_dict({"modem": {"port": "sim://", "name": "only"}, "rapidsms": RAPIDSMS})
    assert cfg.modems == {"only": cfg.modem} and cfg.more_modems == ()
    assert "modem" in cfg.masked() and "modem:only" not in cfg.masked()


def test_several_simulators_without_control_ports_are_fine():
    cfg = pool_config(a={"port": "sim://"}, b={"port": "sim://?control=127.0.0.1:0"},
                      c={"port": "sim://?control=127.0.0.1:0"})
    assert cfg.modem_names == ("a", "b", "c")


def test_forwarding_groups():
    cfg = pool_config(a={"port": "sim://"}, b={"port": "sim://"})
    assert forwarding_groups(cfg) == {RAPIDSMS["url"]: None}
    cfg = pool_config(a={"port": "sim://"}, b={"port": "sim://", "url": "http://h/b/"},
                      c={"port": "sim://", "url": "http://h/b/"},
                      d={"port": "sim://", "url": RAPIDSMS["url"]})
    assert forwarding_groups(cfg, ["gone", "b"]) == {"http://h/b/": ["b", "c"],
                                                     RAPIDSMS["url"]: ["a", "d", "gone"]}


# -- whole bridges, one simulated modem per [modem:NAME] -----------------------------------------


def watch_next_outbound(store):
    """Record each (modem, row) store.next_outbound hands a worker, as it hands it: the list
    grows with every pass of a worker's loop that looked for something to send."""
    asked = []
    real = store.next_outbound

    def next_outbound(modem, now):
        row = real(modem, now)
        asked.append((modem, row))
        return row

    store.next_outbound = next_outbound
    return asked


class Pool:
    """A running in-process Bridge and handy views of it."""

    def __init__(self, bridge, sink):
        self.bridge = bridge
        self.sink = sink
        self.api = "http://%s" % bridge.address
        self.auth = ("u", "p")

    def sim(self, name):
        return self.bridge.simulators[name].modem

    def sent(self, name):
        return [entry["to"] for entry in self.sim(name).sent_messages()]

    def send(self, numbers, text="hello"):
        r = requests.post(self.api + "/api/v1/messages", json={"to": numbers, "text": text},
                          auth=self.auth, timeout=10)
        assert r.status_code == 202, r.text
        return r.json()["ids"]

    def sendsms(self, number, text="hello", **params):
        return requests.get(self.api + "/cgi-bin/sendsms", params=dict(
            params, username="u", password="p", to=number, text=text), timeout=10)

    def statuses(self, ids):
        return [self.bridge.store.get_outbound(i)["status"] for i in ids]

    def all_sent(self, ids, timeout=30):
        wait_for(lambda: all(s == "sent" for s in self.statuses(ids)), timeout=timeout,
                 message="every message sent")

    def modems(self):
        return self.bridge.store.modems()




@pytest.fixture
def pool(tmp_path, sink):
    """pool(a={...}, b={...}, rapidsms={...}) -> a started Pool: one sim:// modem per keyword
    (its [modem:NAME] keys), HTTP on a free loopback port, inbound to the sink (json style)."""
    bridges = []

    def start(rapidsms=None, **modems):
        data = {"modem:%s" % name: dict({"port": "sim://"}, **values)
                for name, values in modems.items()}
        data["http"] = {"listen": "127.0.0.1:0", "username": "u", "password": "p"}
        data["rapidsms"] = dict({"url": sink.url + "/backend/", "style": "json",
                                 "retry_cap": 1}, **(rapidsms or {}))
        data["store"] = {"path": str(tmp_path / "store.sqlite3")}
        bridge = Bridge(config.from_dict(data, base_dir=str(tmp_path)))
        bridges.append(bridge)
        bridge.start()
        wait_for(lambda: all(bridge.store.modems().get(n, {}).get("state") == "up"
                             for n in modems), message="every modem up")
        return Pool(bridge, sink)

    yield start
    for bridge in bridges:
        bridge.stop()


def test_pinning_and_prefix_routes(pool):
    p = pool(a={"routes": VODACOM}, b={"routes": AIRTEL}, c={})
    vodacom = ["+25576100000%d" % i for i in range(4)]
    airtel = ["+25568100000%d" % i for i in range(4)]
    other = ["+1555000000%d" % i for i in range(6)]
    ids = p.send(vodacom + airtel + other)
    for number, smsc in (("+255761999999", "c"), ("+15559999999", "b")):
        r = p.sendsms(number, smsc=smsc)
        assert r.status_code == 202 and r.text.startswith("0: Accepted"), r.text
    r = p.sendsms("+15559999998", smsc="nope")
    assert (r.status_code, r.text) == (403, "Not routable. Do not try again.")
    p.all_sent(ids)
    wait_for(lambda: "+255761999999" in p.sent("c") and "+15559999999" in p.sent("b"),
             message="the pinned messages")
    a, b, c = p.sent("a"), p.sent("b"), p.sent("c")
    assert sorted(a + b + c) == sorted(vodacom + airtel + other + ["+255761999999",
                                                                    "+15559999999"])
    assert set(vodacom) <= set(a) and set(a) <= set(vodacom + other)
    assert set(airtel) <= set(b) and set(b) <= set(airtel + other + ["+15559999999"])
    assert set(c) <= set(other + ["+255761999999"])
    sent_by = {p.bridge.store.get_outbound(i)["recipient"]: p.bridge.store.get_outbound(i)["sent_by"]
               for i in ids}
    assert all(sent_by[n] == "a" for n in vodacom) and all(sent_by[n] == "b" for n in airtel)


def test_a_capped_modem_waits_and_its_routed_messages_move(pool):
    p = pool(a={"routes": VODACOM, "hourly_cap": 3}, b={})
    asked = watch_next_outbound(p.bridge.store)
    routed = p.send(["+25576100000%d" % i for i in range(6)])
    pinned = [p.sendsms("+25576200000%d" % i, smsc="a") for i in range(2)]
    assert all(r.status_code == 202 for r in pinned)
    p.all_sent(routed)
    assert len(p.sent("a")) == 3 and len(p.sent("b")) == 3
    assert all(number.startswith(VODACOM) for number in p.sent("b"))
    # a's worker asks for work twice more (the second ask surely after the pinned ones were
    # queued) and is given nothing: a worker that ignored its cap would have sent them then
    since = len(asked)
    p.bridge.store.notify()
    wait_for(lambda: [row for modem, row in asked[since:] if modem == "a"][:2] == [None, None],
             message="a's worker asking for work while at its cap")
    assert p.bridge.store.counts()["outbound"]["queued"] == 2 and len(p.sent("a")) == 3
    status = requests.get(p.api + "/status", auth=p.auth, timeout=10).json()
    assert status["modems"]["a"]["capped"] is True and status["modems"]["a"]["sent_last_hour"] == 3
    assert status["modems"]["b"]["available"] is True
    assert requests.get(p.api + "/health", timeout=10).json() == {"ok": True}


def test_a_modem_pulled_out_mid_run_hands_its_traffic_to_the_others(pool):
    p = pool(a={"routes": VODACOM}, b={}, c={})
    for name in "abc":
        p.sim(name).set_faults(network_delay=0.05)
    numbers = ["+2557610000%02d" % i for i in range(20)] + ["+155500000%02d" % i for i in range(20)]
    ids = p.send(numbers)
    wait_for(lambda: len(p.sent("a")) >= 3, message="a sending")
    p.sim("a").set_faults(disappear=60)          # the USB modem is pulled out
    wait_for(lambda: p.modems()["a"]["state"] == "down", message="a down")
    p.all_sent(ids)
    everything = p.sent("a") + p.sent("b") + p.sent("c")
    assert set(everything) == set(numbers)       # nothing lost
    # at most the one SMS in flight when the port vanished went out twice (at-least-once)
    assert len(everything) - len(numbers) <= 1
    moved = [n for n in p.sent("b") + p.sent("c") if n.startswith(VODACOM)]
    assert moved, "a's routed messages went out through the others"
    health = requests.get(p.api + "/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["ok"] is True and "modem a is down" in health.json()["warnings"][0]
    metrics = requests.get(p.api + "/metrics", auth=p.auth, timeout=10).text
    for name, value in (("a", 0), ("b", 1), ("c", 1)):
        assert 'gsmbridge_modem_up{modem="%s"} %d.0' % (name, value) in metrics


def test_health_fails_when_no_modem_can_send(pool):
    p = pool(a={}, b={})
    for name in "ab":
        p.sim(name).set_faults(disappear=60)
    wait_for(lambda: all(m["state"] == "down" for m in p.modems().values()), message="both down")
    health = requests.get(p.api + "/health", timeout=10)
    assert health.status_code == 503
    assert "modem a is down" in health.json()["reason"]
    assert "modem b is down" in health.json()["reason"]


def test_inbound_names_its_modem_and_goes_to_its_own_url(pool, sink):
    p = pool(a={}, b={"url": sink.url + "/backend/b/"})
    p.sim("a").deliver("+255700000001", "via a")
    p.sim("b").deliver("+255700000002", "via b")
    sink.wait_for(2, timeout=20)
    got = {r.json()["text"]: (r.path, r.json()["modem"]) for r in sink.requests}
    assert got == {"via a": ("/backend/", "a"), "via b": ("/backend/b/", "b")}


def test_delivery_reports_name_the_modem_that_sent(pool, sink):
    p = pool(a={"routes": VODACOM}, b={})
    dlr = sink.url + "/dlr?smsc=%i&type=%d&to=%p"
    for number, smsc in (("+255761000001", None), ("+15550000001", "b")):
        params = {"dlr-url": dlr, "dlr-mask": "8"}
        if smsc:
            params["smsc"] = smsc
        assert p.sendsms(number, **params).status_code == 202
    wait_for(lambda: len([r for r in sink.requests if r.path == "/dlr"]) == 2,
             message="two callbacks")
    smsc = {r.args["to"]: r.args["smsc"] for r in sink.requests if r.path == "/dlr"}
    assert smsc == {"+255761000001": "a", "+15550000001": "b"}

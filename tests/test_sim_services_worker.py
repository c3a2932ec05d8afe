"""A modem's worker running the SIM services (worker/services.py) against the simulated modem on
a pseudo-terminal, with a real store: USSD sessions as the worker keeps them, the balance watch's
timing, identity at boot, and the store's side of each.
"""

import itertools
import logging
import time

import pytest

from bridgeproc import wait_for
from gsmbridge.jsonlog import Fields
from gsmbridge.modem.driver import GsmModem
from gsmbridge.simulator.runner import start_simulator
from gsmbridge.store import Store
from gsmbridge.worker import Backoff, ModemWorker
from gsmbridge.worker.services import SimServices, balance_of, parse_amount, shown

BALANCE = "Your balance is 1234.50 TZS"
_names = itertools.count()


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()


@pytest.fixture
def running(tmp_path, store):
    """running(sim_options, **services_options) -> (worker, simulator, services), started."""
    made = []

    def start(sim_options=None, **options):
        sim = start_simulator(str(tmp_path / ("modem%d" % len(made))), seed=1,
                              **(sim_options or {}))
        name = "s%d" % next(_names)
        session_idle = options.pop("session_idle", None)
        services = SimServices(name, store, log=Fields(logging.getLogger("gsmbridge.worker"),
                                                       {"modem": name}), **options)
        if session_idle is not None:
            services.session_idle = session_idle
        worker = ModemWorker(name, store, lambda: GsmModem(sim.link, command_timeout=2.0,
                                                           boot_timeout=3.0, ussd_timeout=5.0),
                             services=services)
        worker.reconnect = Backoff(0.1, 0.5, jitter=0.2, hard_cap=False)
        worker.status_interval = 0.5
        made.append((worker, sim))
        worker.start()
        wait_for(lambda: (store.modems().get(name) or {}).get("state") == "up", timeout=15,
                 message="the worker up")
        return worker, sim, services

    yield start
    for worker, sim in made:
        worker.stop()
    for worker, sim in made:
        worker.join(15)
        sim.stop()


def finished(store, row, timeout=15):
    return wait_for(lambda: (lambda r: r["status"] not in ("queued", "running") and r)(
        store.ussd_request(row["id"])), timeout=timeout, message="the request answered")


def state(store, worker):
    return store.modems().get(worker.modem_name) or {}


def test_identity_is_read_at_boot(running, store):
    worker, sim, _ = running({"own_number": "+255754000111", "imei": "490154203237518"})
    identity = wait_for(lambda: state(store, worker).get("identity"), message="identity")
    assert (identity["imei"], identity["own_number"], identity["iccid"]) == (
        "490154203237518", "+255754000111", "8925504000000000019")


def test_a_menu_nobody_answers_is_ended_by_the_worker(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "ussd_session_timeout": 60}, session_idle=0.5)
    menu = finished(store, store.add_ussd(worker.modem_name, "*100#"))
    assert (menu["status"], menu["ended"]) == ("more", None)
    session = wait_for(lambda: (lambda s: not s["open"] and s)(
        store.ussd_session(menu["session"])), message="the session ended")
    assert session["ended"] == "no answer within 0.5 s"
    assert sim.modem.ussd_requests()[-1].get("cancel"), "AT+CUSD=2 went to the modem"
    assert sim.modem.state()["ussd_session"] is None


def test_a_new_request_ends_the_open_menu_first(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "ussd_session_timeout": 60})
    menu = finished(store, store.add_ussd(worker.modem_name, "*100#"))
    assert menu["status"] == "more"
    balance = finished(store, store.add_ussd(worker.modem_name, "*102#"))
    assert (balance["status"], balance["reply"]) == ("done", BALANCE)
    assert store.ussd_session(menu["session"])["ended"] == "a new request replaced it"
    log = [r.get("code") or ("cancel" if r.get("cancel") else "?")
           for r in sim.modem.ussd_requests()]
    assert log == ["*100#", "cancel", "*102#"], "the network saw the menu end, then *102#"


def test_an_answer_to_a_session_the_network_ended_is_not_sent(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "ussd_session_timeout": 0.3})
    menu = finished(store, store.add_ussd(worker.modem_name, "*100#"))
    wait_for(lambda: store.ussd_session(menu["session"])["ended"] == "ended by the network",
             message="the network's +CUSD: 2 noticed")
    late = finished(store, store.add_ussd(worker.modem_name, "1", session=menu["session"]))
    assert (late["status"], late["error"]) == ("failed", "the session has ended")
    assert [r.get("code") for r in sim.modem.ussd_requests() if r.get("code")] == ["*100#"]


def test_a_cancel_row_ends_the_session_on_the_modem(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "ussd_session_timeout": 60})
    menu = finished(store, store.add_ussd(worker.modem_name, "*100#"))
    last = store.end_ussd_session(menu["session"])
    assert last["open"] is True
    assert store.ussd_session(menu["session"])["ended"] == "cancelled"
    wait_for(lambda: sim.modem.ussd_requests()[-1].get("cancel"), message="AT+CUSD=2")
    assert sim.modem.state()["ussd_session"] is None


def test_the_balance_is_checked_at_start_then_every_balance_every(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "balance": 800}, balance_code="*102#",
                             balance_every=1.5)
    first = wait_for(lambda: state(store, worker).get("balance_checked_at") and
                     state(store, worker), message="checked at start")
    assert (first["balance"], first["balance_text"]) == (800.0, "Your balance is 800.00 TZS")
    sim.modem.ussd_settings(balance=1500.25)
    second = wait_for(lambda: (lambda s: s.get("balance") == 1500.25 and s)(
        state(store, worker)), timeout=10, message="checked again")
    assert second["balance_checked_at"] - first["balance_checked_at"] >= 1.4
    asked = [r["code"] for r in sim.modem.ussd_requests() if r.get("code")]
    assert asked[:2] == ["*102#", "*102#"]


def test_the_balance_waits_while_a_menu_is_open(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "ussd_session_timeout": 60},
                             balance_code="*102#", balance_every=0.5, session_idle=30)
    wait_for(lambda: state(store, worker).get("balance") is not None, message="first check")
    menu = finished(store, store.add_ussd(worker.modem_name, "*100#"))
    assert menu["status"] == "more"
    # the worker's loop goes round (its status reports) while the balance is due three times
    since = state(store, worker)["updated_at"]
    wait_for(lambda: state(store, worker)["updated_at"] >= since + 1.5, message="time passing")
    answered = finished(store, store.add_ussd(worker.modem_name, "2", session=menu["session"]))
    assert answered["status"] == "more", "the menu was not broken by a balance check"
    codes = [r.get("code") for r in sim.modem.ussd_requests() if r.get("code")]
    assert codes[codes.index("*100#"):][:2] == ["*100#", "2"]


def test_a_balance_pattern_and_a_reply_without_the_amount(running, store):
    worker, sim, _ = running({"ussd_delay": 0.1, "own_number": "+255754000111"},
                             balance_code="*106#", balance_pattern=r"number is \+(\d+)")
    checked = wait_for(lambda: state(store, worker).get("balance_checked_at") and
                       state(store, worker), message="checked")
    assert checked["balance"] == 255754000111.0
    worker2, sim2, _ = running({"ussd_delay": 0.1}, balance_code="*103#")
    failed = wait_for(lambda: state(store, worker2).get("balance_error") and
                      state(store, worker2), message="the failed check")
    assert failed["balance_error"] == "the network ended the session without an answer"
    assert "balance" not in failed


# --- the store's side, on its own --------------------------------------------------------------

def test_the_store_bounds_requests_in_hand_and_expires_those_nobody_took(tmp_path):
    now = [1000.0]
    store = Store(str(tmp_path / "s.sqlite3"), clock=lambda: now[0])
    try:
        rows = [store.add_ussd("m", "*10%d#" % i, max_active=3) for i in range(3)]
        assert all(rows) and store.add_ussd("m", "*109#", max_active=3) is None
        assert store.add_ussd("other", "*102#", max_active=3) is not None, "per modem"
        given_up = store.give_up_ussd(rows[0]["id"])
        assert (given_up["status"], given_up["error"]) == (
            "timeout", "not taken in time: the modem is busy or down")
        now[0] += 30
        assert store.next_ussd("m") is None, "too old to be sent now"
        assert {store.ussd_request(r["id"])["status"] for r in rows} == {"timeout"}
        assert store.add_ussd("m", "*102#", max_active=3) is not None, "room again"
    finally:
        store.close()


def test_the_store_keeps_calls_and_their_notifications(tmp_path):
    store = Store(str(tmp_path / "s.sqlite3"))
    try:
        first, count = store.add_call("m", "+255700000001", 1000.0, notify=True)
        _, count2 = store.add_call("m", None, 1001.0, hung_up=False)
        assert (count, count2) == (1, 2)
        [due] = store.due_calls(time.time() + 1)
        assert (due["id"], due["caller"], due["hung_up"]) == (first, "+255700000001", True)
        store.call_retry(first, error="HTTP 503", next_attempt=time.time() + 60)
        assert store.due_calls(time.time() + 1) == []
        assert store.next_call_due() > time.time() + 50
        store.call_delivered(first, response="ok")
        assert store.count_calls() == {"pending": 0, "delivered": 1, "failed": 0, "kept": 1}
        assert [c["caller"] for c in store.calls("m")] == [None, "+255700000001"]
    finally:
        store.close()


def test_requests_a_previous_run_left_running_are_failed_at_start(store):
    row = store.add_ussd("s-old", "*102#")
    store.ussd_running(row["id"])
    menu = store.add_ussd("s-old", "*100#")
    store.ussd_running(menu["id"])
    store.ussd_finished(menu["id"], "more", reply="1. Balance")
    assert store.ussd_interrupted("s-old") == 1
    left = store.ussd_request(row["id"])
    assert (left["status"], left["error"]) == ("failed", "the bridge stopped before the reply came")
    assert store.ussd_session(menu["session"])["open"] is False


@pytest.mark.parametrize("text, amount", [
    ("Your balance is 1234.50 TZS", 1234.5), ("Salio: TSh 1,234.50", 1234.5),
    ("Guthaben 1.234,50 EUR", 1234.5), ("Balance 1,234", 1234.0), ("Bal 12,50", 12.5),
    ("Solde 12 345 FCFA", 12345.0), ("Credit -3.5 USD", -3.5), ("1.234.567 UGX", 1234567.0),
    ("Bal 5,000. Bonus 200", 5000.0), ("no amount here", None), ("", None),
])
def test_the_first_amount_of_a_reply(text, amount):
    assert parse_amount(text) == amount


def test_a_balance_pattern_takes_its_group_or_its_match():
    assert balance_of("Main 100, Bonus 25.5", r"Bonus ([0-9.]+)") == 25.5
    assert balance_of("Main 100, Bonus 25.5", r"[0-9.]+(?= TZS)") is None
    assert balance_of("Bal 7 TZS", r"[0-9.]+(?= TZS)") == 7.0


def test_log_lines_show_a_code_without_what_follows_the_service_code():
    assert shown("*150*01*1234#") == "*150*xx*xxxx#"
    assert shown("*102#") == "*102#"
    assert shown("4321", continues=True) == "(an answer of 4 characters)"

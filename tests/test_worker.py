"""The modem worker against the simulated modem on a real pseudo-terminal, with a real Store: the
watchdog's escalation, the port vanishing, lost registration, throttling, texts that cannot be
sent, partial sends, bad PDUs and SMSC time stamps, a full SIM.
"""

import errno
import json
import logging
import os
import pty
import select
import threading
import time
import tty
from datetime import datetime, timezone

import pytest

from bridgeproc import wait_for
from clock import Clock
from transcript import wire
from gsmbridge import metrics
from gsmbridge.codec import pdu
from gsmbridge import simulator
from gsmbridge.jsonlog import JsonFormatter
from gsmbridge.modem.driver import GsmModem
from gsmbridge.simulator.runner import start_simulator
from gsmbridge.store import Store
from gsmbridge.worker import EXIT_WATCHDOG, Backoff, ModemWorker, TokenBucket

ALICE = "+255700000001"
BOB = "+255711111111"
T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


# --- harness ---------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()


@pytest.fixture
def sim(tmp_path):
    """Start a simulated modem on a pty: sim(**options) -> simulator.Simulator."""
    running = []

    def start(**options):
        options.setdefault("seed", 1)
        options.setdefault("cnma_timeout", 1.0)
        options.setdefault("redelivery_delay", 0.5)
        s = start_simulator(str(tmp_path / ("modem%d" % len(running))), **options)
        running.append(s)
        return s

    yield start
    for s in running:
        s.stop()


_names = iter(range(1000))


@pytest.fixture
def worker(store):
    """worker(port, **options) -> a started ModemWorker with test-sized timeouts and its own
    modem name (the Prometheus counters are per process); stopped afterwards."""
    started = []

    def make(port, *, modem_options=None, start=True, **options):
        modem_options = dict(dict(command_timeout=2.0, send_timeout=5.0, boot_timeout=3.0),
                             **(modem_options or {}))
        options.setdefault("retry_base", 0.2)
        w = ModemWorker("w%d" % next(_names), store, lambda: GsmModem(port, **modem_options),
                        **options)
        w.reconnect = Backoff(0.1, 0.5, jitter=0.2, hard_cap=False)
        w.reset_wait = 0.2
        w.status_interval = 0.5
        w.no_network_interval = 0.2
        w.expire_interval = 0.5
        started.append(w)
        if start:
            w.start()
        return w

    yield make
    for w in started:
        w.stop()
    for w in started:
        w.join(15)


def state(store, w):
    return store.modems().get(w.modem_name, {})


def up(store, w):
    return state(store, w).get("state") == "up"


def metric(name, w):
    return metrics.REGISTRY.get_sample_value(name, {"modem": w.modem_name}) or 0.0


def queue(store, to, text, **options):
    encoding, parts = pdu.split(text, max_parts=255)
    [msg_id] = store.add_outbound([to], text, encoding=encoding, parts=len(parts), **options)
    return msg_id


def outbound(store, msg_id):
    return store.get_outbound(msg_id)


def inbound_texts(store):
    return sorted(m["text"] for m in store.recent(1000) if m["direction"] == "in")


class DeadModem:
    """A modem on a pty that answers OK to every command line until `die()`, and then nothing.
    `lines` has every command line it got, in order (ESC shown as <ESC>)."""

    def __init__(self, link):
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.device = os.ttyname(slave)
        os.close(slave)
        self.master = master
        self.link = link
        os.symlink(self.device, link)
        self.lines = []
        self.dead = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def die(self):
        self.dead = True

    def _run(self):
        buf = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError as exc:        # nobody has the port open right now
                if exc.errno != errno.EIO:
                    raise
                time.sleep(0.05)
                continue
            buf += data.replace(b"\x1b", b"<ESC>\r")
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                line = line.strip().decode("ascii", "replace")
                if not line:
                    continue
                self.lines.append(line)
                if not self.dead and line.upper().startswith("AT"):
                    os.write(self.master, b"\r\nOK\r\n")

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.unlink(self.link)


# --- in and out ------------------------------------------------------------------------------

def test_messages_flow_both_ways_and_are_counted(sim, store, worker):
    s = sim()
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    s.modem.deliver(ALICE, "hello bridge")
    s.modem.deliver(ALICE, "long one " * 40)               # three parts
    msg_id = queue(store, BOB, "hello phone")
    wait_for(lambda: len(inbound_texts(store)) == 2, message="both inbound stored")
    assert inbound_texts(store) == sorted(["hello bridge", "long one " * 40])
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent")
    assert [m["text"] for m in s.modem.sent_messages()] == ["hello phone"]
    assert metric("gsmbridge_messages_received_total", w) == 2
    assert metric("gsmbridge_messages_sent_total", w) == 1
    assert metric("gsmbridge_send_seconds_count", w) == 1
    assert metric("gsmbridge_modem_up", w) == 1
    assert metric("gsmbridge_modem_signal_csq", w) == 20
    wait_for(lambda: s.modem.state()["unacknowledged"] is None, message="every +CMT acknowledged")


def test_a_draining_queue_is_sent_once_each_and_a_stop_hands_back_the_claimed_one(sim, store,
                                                                                  worker):
    """Each `sent` claims the next message in its own commit; a worker stopping with a claim
    leaves no message `sending`: the claimed one is queued again, its attempt not counted."""
    s = sim(network_delay=0.3)
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    ids = [queue(store, "+25570000%04d" % i, "drain %d" % i) for i in range(6)]
    wait_for(lambda: sum(outbound(store, i)["status"] == "sent" for i in ids) >= 2,
             message="two sent")
    w.stop()
    w.join(15)
    rows = [outbound(store, i) for i in ids]
    assert not [r for r in rows if r["status"] == "sending"]
    sent = [r for r in rows if r["status"] == "sent"]
    assert len(sent) >= 2 and all(r["attempts"] == 1 for r in sent)
    assert all(r["attempts"] == 0 for r in rows if r["status"] == "queued")
    texts = [m["text"] for m in s.modem.sent_messages()]
    assert sorted(texts) == sorted(r["text"] for r in sent)        # each once, none lost


@pytest.mark.parametrize("claim_ahead, most", [(True, 2), (False, 1)])
def test_claiming_ahead_is_what_leaves_two_messages_sending(sim, store, worker, claim_ahead,
                                                            most):
    """With claim_ahead (the default) the next message is `sending` while the one before is on
    its way; without it ([bridge] resend_unconfirmed = no, where a crash marks `sending`
    messages unknown) only the one on its way ever is, so a crash cannot leave a message that
    never left the bridge marked unknown."""
    s = sim(network_delay=0.3)
    w = worker(s.link, claim_ahead=claim_ahead)
    wait_for(lambda: up(store, w), message="modem up")
    ids = [queue(store, "+25570000%04d" % i, "drain %d" % i) for i in range(4)]
    seen = set()

    def drained():
        # one SELECT: one snapshot of the queue (row by row, a claim made between two reads
        # would be counted with the message it followed)
        statuses = [r[0] for r in store._conn().execute(
            "SELECT status FROM outbound WHERE id IN (%s)" % ",".join("?" * len(ids)), ids)]
        seen.add(statuses.count("sending"))
        return statuses.count("sent") == len(ids)

    wait_for(drained, timeout=30, interval=0.01, message="all sent")
    assert max(seen) == most, seen


def test_malformed_pdu_is_kept_and_the_next_message_still_arrives(sim, store, worker):
    s = sim()
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    s.modem.deliver_pdu("0004")                             # cut short after the first octet
    s.modem.deliver(ALICE, "after the garbage")
    wait_for(lambda: inbound_texts(store) == ["after the garbage"], message="good one stored")
    [bad] = store.bad_pdus()
    assert bad["pdu"] == "0004" and bad["error"]
    assert metric("gsmbridge_bad_pdus_total", w) == 1
    assert metric("gsmbridge_modem_reconnects_total", w) == 0


def test_a_store_that_refuses_the_commit_leaves_the_sms_with_the_modem(sim, store, worker,
                                                                          caplog):
    """Nothing committed, nothing forgotten: the worker recovers, and the SMS the network still
    holds arrives once the store takes writes again, once (a +CMT left unacknowledged ends up in
    the modem's storage, which the next sweep reads)."""
    s = sim()
    w = worker(s.link, sweep_interval=0.5)
    wait_for(lambda: up(store, w), message="modem up")
    db = store._conn()
    db.execute("CREATE TRIGGER no_inbound BEFORE INSERT ON inbound"
               " BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with caplog.at_level(logging.ERROR, logger="gsmbridge.worker"):
        s.modem.deliver(ALICE, "kept by the network")
        wait_for(lambda: "StoreError: disk trouble" in (state(store, w).get("last_error") or ""),
                 message="the worker reports the store's refusal")
    assert inbound_texts(store) == []
    assert any(r.levelno == logging.ERROR and "disk trouble" in r.getMessage()
               for r in caplog.records)
    assert store.bad_pdus() == []               # a store failure is not the PDU's fault
    db.execute("DROP TRIGGER no_inbound")
    wait_for(lambda: inbound_texts(store) == ["kept by the network"], timeout=30,
             message="the SMS arrives once the store works again")


def test_log_lines_about_a_message_carry_its_id_and_modem_as_fields(sim, store, worker, caplog):
    s = sim()
    with caplog.at_level(logging.INFO, logger="gsmbridge.worker"):
        w = worker(s.link)
        wait_for(lambda: up(store, w), message="modem up")
        s.modem.deliver(ALICE, "hello bridge")
        out_id = queue(store, BOB, "hello phone")
        wait_for(lambda: inbound_texts(store) == ["hello bridge"], message="stored")
        wait_for(lambda: outbound(store, out_id)["status"] == "sent", message="sent")
    [in_id] = [m["id"] for m in store.recent(10) if m["direction"] == "in"]
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "gsmbridge.worker"]
    assert all(line["modem"] == w.modem_name for line in lines), lines
    received = [line for line in lines if line.get("id") == in_id]
    sent = [line for line in lines if line.get("id") == out_id]
    assert received and "received from" in received[0]["message"]
    assert sent and "sent to" in sent[0]["message"]
    # the text still says them, for the plain-text format
    assert ("modem=%s id=%s" % (w.modem_name, in_id)) in received[0]["message"]


def _with_scts(hex_pdu, scts_hex):
    """The PDU encoded with time stamp T0, with another SCTS in its place."""
    t0 = "42506070809000"                                   # T0 as semi-octets
    assert hex_pdu.count(t0) == 1
    return hex_pdu.replace(t0, scts_hex)


def test_an_impossible_smsc_time_stamp_costs_only_the_time_stamp(sim, store, worker):
    s = sim()
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    [(single, _)] = pdu.deliver_pdus(ALICE, "month 15", timestamp=T0, concat_reference=1)
    s.modem.deliver_pdu(_with_scts(single, "42516070809000"))
    parts = pdu.deliver_pdus(BOB, "two parts " * 20, timestamp=T0, concat_reference=2)
    s.modem.deliver_pdu(_with_scts(parts[0][0], "425060708090A0"))   # bad zone nibble
    s.modem.deliver_pdu(parts[1][0])
    parts = pdu.deliver_pdus(BOB, "every part wrong " * 12, timestamp=T0, concat_reference=3)
    for hex_pdu, _ in parts:
        s.modem.deliver_pdu(_with_scts(hex_pdu, "42516070809000"))
    wait_for(lambda: len(inbound_texts(store)) == 3, message="three messages stored")
    rows = {m["text"]: store.get_inbound(m["id"]) for m in store.recent(10)}
    assert rows["month 15"]["sent_at"] is None
    assert rows["two parts " * 20]["sent_at"] == T0.isoformat()    # the good part's
    assert rows["every part wrong " * 12]["sent_at"] is None
    assert store.bad_pdus() == []


# --- outbound: what must fail, what must wait ---------------------------------------------------

def test_a_text_beyond_max_parts_fails_for_good_and_the_modem_carries_on(sim, store, worker):
    s = sim()
    w = worker(s.link, max_parts=2)
    wait_for(lambda: up(store, w), message="modem up")
    too_long = queue(store, BOB, "x" * 400)                 # three parts
    fits = queue(store, BOB, "y" * 300)                      # two
    wait_for(lambda: outbound(store, fits)["status"] == "sent", message="the next one sent")
    row = outbound(store, too_long)
    assert row["status"] == "failed" and "TooLong" in row["last_error"]
    assert [m["text"] for m in s.modem.sent_messages()] == ["y" * 300]
    assert w.boots == 1 and metric("gsmbridge_modem_reconnects_total", w) == 0
    assert metric("gsmbridge_messages_send_failed_total", w) == 1


def test_send_rate_holds_messages_in_the_queue_and_counts_parts():
    now = [100.0]
    bucket = TokenBucket(30, clock=lambda: now[0])           # one SMS every 2 s
    assert bucket.ready()
    bucket.take(3)                                          # a three-part message
    assert not bucket.ready()
    now[0] += 5.9                                           # 2.95 tokens back, debt was 2
    assert not bucket.ready()
    now[0] += 0.2
    assert bucket.ready()
    bucket.take(1)
    now[0] += 3600                                          # idle: no burst saved up
    assert bucket.ready()
    bucket.take(1)
    assert not bucket.ready()
    unlimited = TokenBucket(0, clock=lambda: now[0])
    unlimited.take(100)
    assert unlimited.ready()


class CountingBucket(TokenBucket):
    """A TokenBucket that counts the times it held a send back: each is a pass of the worker's
    loop that looked at the queue and decided to wait."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.refusals = 0

    def ready(self):
        ready = super().ready()
        self.refusals += not ready
        return ready


def test_the_worker_sends_no_faster_than_send_rate(sim, store, worker):
    s = sim()
    w = worker(s.link, send_rate=6, start=False)            # one SMS per 10 s
    w.idle_poll = 0.05                                      # loop passes come quickly
    now = [0.0]
    w.throttle = CountingBucket(6, clock=lambda: now[0])    # time under the test's control
    w.start()
    ids = [queue(store, BOB, "throttled %d" % i) for i in range(3)]
    wait_for(lambda: outbound(store, ids[0])["status"] == "sent", message="first sent")
    held = w.throttle.refusals                              # the worker had its chances:
    wait_for(lambda: w.throttle.refusals >= held + 3, message="sends held back")
    assert [outbound(store, i)["status"] for i in ids] == ["sent", "queued", "queued"]
    now[0] += 10
    wait_for(lambda: outbound(store, ids[1])["status"] == "sent", message="second sent")
    held = w.throttle.refusals
    wait_for(lambda: w.throttle.refusals >= held + 3, message="sends held back")
    assert outbound(store, ids[2])["status"] == "queued"
    assert outbound(store, ids[2])["attempts"] == 0        # waiting, not failing
    now[0] += 10
    wait_for(lambda: outbound(store, ids[2])["status"] == "sent", message="third sent")
    assert [m["text"] for m in s.modem.sent_messages()] == ["throttled %d" % i for i in range(3)]


def test_a_part_that_went_out_is_not_sent_again(sim, store, worker):
    s = sim(slow_cmgs=0.5)
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    text = "three parts " * 35

    def refuse_the_second_part():
        wait_for(lambda: s.modem.state()["partial_sends"] == 1, message="first part out")
        s.modem.set_faults(cms_error=1.0, cms_error_code=500)
        wait_for(lambda: s.modem.state()["rejected"] == 1, message="second part refused")
        s.modem.set_faults(cms_error=0.0)

    saboteur = threading.Thread(target=refuse_the_second_part)
    saboteur.start()
    msg_id = queue(store, BOB, text)
    saboteur.join(20)
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent in the end")
    [sent] = s.modem.sent_messages()
    assert sent["text"] == text and sent["parts"] == 3
    assert s.modem.state()["partial_sends"] == 0            # no orphan first part left over
    row = outbound(store, msg_id)
    assert row["references"] == sent["references"]          # first part's TP-MR kept
    assert row["attempts"] == 2
    assert metric("gsmbridge_messages_send_retried_total", w) == 1


# --- network registration --------------------------------------------------------------------

def test_lost_registration_holds_sending_and_asks_to_register_again(sim, store, worker):
    s = sim()
    w = worker(s.link, start=False)
    w.reregister_after = 0.5
    w.start()
    wait_for(lambda: state(store, w).get("registered") is True, message="registered")
    s.modem.set_faults(registration=2)                      # searching
    wait_for(lambda: state(store, w).get("state") == "no network", message="no network shown")
    assert state(store, w)["registered"] is False
    msg_id = queue(store, BOB, "waits for the network")
    wait_for(lambda: "AT+COPS=0" in s.transcript(), message="AT+COPS=0")
    assert outbound(store, msg_id)["status"] == "queued"
    assert outbound(store, msg_id)["attempts"] == 0         # not even tried
    s.modem.set_faults(registration=1)
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent once back")
    assert state(store, w)["state"] == "up" and state(store, w)["registered"] is True


# --- the port and the watchdog ---------------------------------------------------------------

def test_a_vanished_port_is_reopened_when_it_comes_back(sim, store, worker):
    s = sim()
    w = worker(s.link)
    wait_for(lambda: up(store, w), message="modem up")
    seen = set()

    def watch():
        while True:
            st = state(store, w)
            seen.add(st.get("state"))
            if "down" in seen and st.get("state") == "up":
                return st
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    s.modem.set_faults(disappear=1.5)
    wait_for(lambda: not os.path.exists(s.link), message="link gone")
    s.modem.deliver(ALICE, "sent while the modem was away")
    msg_id = queue(store, BOB, "queued while the modem was away")
    watcher.join(20)
    assert not watcher.is_alive(), "the modem never came back up"
    assert "down" in seen
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent after return")
    wait_for(lambda: inbound_texts(store) == ["sent while the modem was away"],
             message="inbound after return")
    assert w.boots == 2 and metric("gsmbridge_modem_reconnects_total", w) == 1
    assert metric("gsmbridge_modem_up", w) == 1


def test_watchdog_brings_back_a_modem_that_was_stuck_for_a_while(sim, store, worker):
    clock = Clock(1000.0)
    s = sim(clock=clock)                                    # the modem's time moves by hand
    w = worker(s.link, start=False)
    w.status_interval = 3600                                # the only command: the send below
    w.start()
    wait_for(lambda: "registered" in state(store, w), message="modem up, status known")
    s.modem.set_faults(hang=3.0)                            # drops all input for 3 s
    since = len(s.transcript())
    msg_id = queue(store, BOB, "after the hang")            # its AT+CMGS gets no answer
    wait_for(lambda: b"\x1b" in wire(s, since)[0].split(b"AT+CMGS=")[-1]   # ESC, then AT:
                     and b"AT\r" in wire(s, since)[0],                     # dropped too
             message="the watchdog's ESC and AT")
    clock.now += 3.0                                        # the hang ends while it tries AT
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent")
    assert w.boots == 1                                     # ESC and AT did it: no reopen
    assert outbound(store, msg_id)["attempts"] == 2         # into the hang, and after it
    assert [m["text"] for m in s.modem.sent_messages()] == ["after the hang"]
    assert up(store, w)


def test_watchdog_reopens_the_port_of_a_modem_that_stays_stuck(sim, store, worker):
    s = sim()
    w = worker(s.link, modem_options={"command_timeout": 1.0})
    wait_for(lambda: up(store, w), message="modem up")
    s.modem.set_faults(hang=-1)                             # until the port is reopened
    msg_id = queue(store, BOB, "after the reopen")
    wait_for(lambda: outbound(store, msg_id)["status"] == "sent", message="sent")
    assert w.boots == 2 and metric("gsmbridge_modem_reconnects_total", w) == 1
    assert [m["text"] for m in s.modem.sent_messages()] == ["after the reopen"]
    assert up(store, w)


def test_watchdog_escalates_to_the_reset_command_then_gives_up(tmp_path, store, worker):
    modem = DeadModem(str(tmp_path / "dead"))
    gave_up = threading.Event()
    try:
        w = worker(modem.link, reset_command="AT+CFUN=1,1", watchdog_exit_after=3,
                   on_giveup=lambda worker: gave_up.set(),
                   modem_options={"boot_timeout": 1.0, "command_timeout": 1.0},
                   start=False)
        w.status_interval = 3600                            # the only command: the send below
        w.start()
        wait_for(lambda: "registered" in state(store, w), message="modem up, status known")
        modem.die()
        msg_id = queue(store, BOB, "stuck")
        assert gave_up.wait(60), "the watchdog never gave up"
        w.join(10)
        assert not w.is_alive()
        stuck = max(i for i, line in enumerate(modem.lines) if line.startswith("AT+CMGS"))
        steps = []
        for line in modem.lines[stuck + 1:]:
            if not steps or steps[-1] != line:
                steps.append(line)
        # The send's ESC, then ESC and AT on the open port (the probe); a reopen (a boot starts
        # with ESC and AT); the reset command; one more reopen; then it gave up.
        assert steps == ["<ESC>", "AT", "<ESC>", "AT", "<ESC>", "AT+CFUN=1,1", "<ESC>", "AT"]
        st = state(store, w)
        assert st["state"] == "down" and "watchdog gave up" in st["last_error"]
        assert st["recoveries"] == 3 and w.gave_up
        assert outbound(store, msg_id)["status"] == "queued"   # kept for the next process
        assert metric("gsmbridge_modem_up", w) == 0
        assert EXIT_WATCHDOG == 3
    finally:
        modem.stop()


# --- the SIM's storage -----------------------------------------------------------------------

def test_a_full_sim_is_emptied_at_boot_and_the_network_delivers_the_rest(sim, store, worker):
    s = sim(capacity=3)
    for i in range(5):                                      # before the bridge: stored silently
        s.modem.deliver(ALICE, "waiting %d" % i)
    assert s.modem.state()["storage"]["SM"]["used"] == 3    # two held by the network
    w = worker(s.link)
    wait_for(lambda: len(inbound_texts(store)) == 5, message="all five stored")
    assert inbound_texts(store) == ["waiting %d" % i for i in range(5)]
    wait_for(lambda: s.modem.state()["storage"]["SM"]["used"] == 0, message="SIM emptied")
    assert metric("gsmbridge_messages_received_total", w) == 5


def test_memory_full_on_a_send_makes_the_driver_sweep_at_once(sim, store, worker):
    s = sim(cms_error=1.0, cms_error_code=322)
    w = worker(s.link, sweep_interval=3600, retry_base=60)
    wait_for(lambda: up(store, w), message="modem up")
    [(hex_pdu, _)] = pdu.deliver_pdus(ALICE, "found by the sweep", timestamp=T0,
                                      concat_reference=1)
    with s.modem._lock:                                     # stored without a +CMTI notice
        s.modem.sm.add(simulator.Message(0, hex_pdu, "deliver"))
    msg_id = queue(store, BOB, "refused: memory full")
    wait_for(lambda: inbound_texts(store) == ["found by the sweep"], message="swept")
    row = outbound(store, msg_id)
    assert row["status"] == "queued" and "322" in row["last_error"]
    assert s.modem.state()["storage"]["SM"]["used"] == 0


def test_routing_dropped_behind_a_new_boot_is_noticed_by_the_next_sweep(sim, store, worker):
    # A killed bridge left a +CMT unacknowledged. When the network gives up on it, the modem
    # switches routing off (TS 27.005 3.4.4) -- here just after the new bridge set it up.
    s = sim(cnma_timeout=2.0)
    previous = GsmModem(s.link, command_timeout=2.0, boot_timeout=3.0).boot()
    s.modem.deliver(ALICE, "never acknowledged")
    previous.poll(0.5)                                      # read, never committed nor acked
    previous.close()
    w = worker(s.link, sweep_interval=0.5)
    wait_for(lambda: up(store, w), message="modem up")
    cnmi = lambda: s.modem.state()["settings"]["cnmi"][1]   # noqa: E731
    wait_for(lambda: cnmi() == 0, message="the modem dropping routing")
    for i in range(3):
        s.modem.deliver(ALICE, "stored without a notice %d" % i)
    wait_for(lambda: cnmi() == 2, message="routing set again")
    s.modem.deliver(ALICE, "routed again")
    wait_for(lambda: len(inbound_texts(store)) == 5, message="all five stored")
    assert inbound_texts(store) == sorted(["never acknowledged", "routed again"] + [
        "stored without a notice %d" % i for i in range(3)])

"""GsmModem over real pseudo-terminals: against the simulated modem, and against small scripted
responders that reproduce habits of real modems the simulator does not have.
"""

import os
import pty
import re
import select
import threading
import time
import tty
from datetime import datetime, timezone

import pytest

from gsmbridge.codec import pdu
from gsmbridge.modem.driver import GsmModem
from gsmbridge.modem.errors import CmeError, CmsError, ModemError, ModemGone, ModemTimeout
from gsmbridge.simulator.runner import start_simulator

from bridgeproc import wait_for
from clock import Clock

ALICE = "+255700000001"
BOB = "+255711111111"


# --- harness ---------------------------------------------------------------------------------

@pytest.fixture
def simulator(tmp_path):
    """Start simulated modems on ptys: simulator(**options) -> simulator.Simulator."""
    running = []

    def start(**options):
        options.setdefault("seed", 1)
        sim = start_simulator(str(tmp_path / ("modem%d" % len(running))), **options)
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.stop()


@pytest.fixture
def driver():
    """GsmModem(...) with test-sized timeouts; closed afterwards."""
    made = []

    def make(port, **options):
        options.setdefault("command_timeout", 3.0)
        options.setdefault("send_timeout", 10.0)
        options.setdefault("boot_timeout", 5.0)
        modem = GsmModem(port, **options)
        made.append(modem)
        return modem

    yield make
    for modem in made:
        modem.close()


def poll_until(modem, count, timeout=5.0):
    """poll() until ``count`` items came (or the timeout)."""
    items = []
    deadline = time.monotonic() + timeout
    while len(items) < count and time.monotonic() < deadline:
        items += modem.poll(0.2)
    return items


class Scripted:
    """A modem made of rules: each command line is answered by the first rule whose regex
    matches it; a reply is bytes or a function (match) -> bytes.  ``prompt(fn)`` makes the next
    bytes up to Ctrl-Z go to fn(pdu) -> bytes (ESC answers OK)."""

    def __init__(self, rules=(), echo=False):
        self.rules = [(re.compile(p, re.I), r) for p, r in rules] + [
            (re.compile(p, re.I), r) for p, r in DEFAULT_RULES]
        self.echo = echo
        self.lines = []             # every command line received
        self.out = bytearray()
        self._line = bytearray()
        self._prompt = None
        self._lock = threading.Lock()

    def push(self, data):
        with self._lock:
            self.out += data

    def take(self):
        with self._lock:
            out, self.out = bytes(self.out), bytearray()
            return out

    def prompt(self, fn):
        self._prompt = (fn, bytearray())
        return b"\r\n> "

    def feed(self, data):
        for byte in data:
            if self._prompt is not None:
                fn, body = self._prompt
                if byte == 0x1A:
                    self._prompt = None
                    self.push(fn(body.decode()))
                elif byte == 0x1B:
                    self._prompt = None
                    self.push(b"\r\nOK\r\n")
                else:
                    body.append(byte)
                continue
            if byte == 0x1B:
                continue
            if byte != 0x0D:
                if byte != 0x0A:
                    self._line.append(byte)
                continue
            line, self._line = self._line.decode("latin-1").strip(), bytearray()
            if not line:
                continue
            self.lines.append(line)
            if self.echo:
                self.push(line.encode() + b"\r")
            for regex, reply in self.rules:
                m = regex.fullmatch(line)
                if m:
                    self.push(reply(m) if callable(reply) else reply)
                    break
            else:
                self.push(b"\r\nERROR\r\n")


DEFAULT_RULES = [
    (r"AT", b"\r\nOK\r\n"), (r"ATE0", b"\r\nOK\r\n"), (r"AT\+CMEE=1", b"\r\nOK\r\n"),
    (r"AT\+CPIN\?", b"\r\n+CPIN: READY\r\n\r\nOK\r\n"), (r"AT\+CMGF=0", b"\r\nOK\r\n"),
    (r"AT\+CSMS=1", b"\r\n+CSMS: 1,1,1\r\n\r\nOK\r\n"),
    (r'AT\+CPMS=.*', b"\r\n+CPMS: 0,30,0,30,0,30\r\n\r\nOK\r\n"),
    (r"AT\+CPMS\?", b'\r\n+CPMS: "SM",0,30,"SM",0,30,"SM",0,30\r\n\r\nOK\r\n'),
    (r"AT\+CNMI=.*", b"\r\nOK\r\n"), (r"AT\+CMGL=4", b"\r\nOK\r\n"),
    (r"AT\+CNMA", b"\r\nOK\r\n"), (r"AT\+CMGD=\d+", b"\r\nOK\r\n"),
    (r"AT\+CSQ", b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n"),
]


class PtyResponder:
    """A Scripted modem on a pseudo-terminal, pumped by a thread."""

    def __init__(self, modem):
        self.modem = modem
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.01)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    data = b""
                if data:
                    self.modem.feed(data)
            out = self.modem.take()
            if out:
                os.write(self.master, out)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def scripted():
    made = []

    def make(rules=(), echo=False):
        responder = PtyResponder(Scripted(rules, echo=echo))
        made.append(responder)
        return responder

    yield make
    for responder in made:
        responder.close()


def cmgr_reply(pdu_hex, stat=0):
    return lambda m: b"\r\n+CMGR: %d,,%d\r\n%s\r\n\r\nOK\r\n" % (
        stat, len(pdu_hex) // 2 - 8, pdu_hex.encode())


DELIVER, _ = pdu.encode_deliver(BOB, "hello from a script",
                                timestamp=datetime(2024, 1, 1, 12, tzinfo=timezone.utc),
                                smsc="+255790000000")


# --- against the simulator -------------------------------------------------------------------

def test_boot_sets_up_routed_receiving(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    assert modem.routing == "routed" and modem.supports_cnma
    settings = sim.modem.state()["settings"]
    assert (settings["echo"], settings["cmgf"], settings["csms"]) == (False, 0, 1)
    assert settings["cnmi"][1] == 2
    assert modem.signal_strength() == 20
    network = modem.network()
    assert network.registered and network.operator == "SimTel"


def test_send_single_multipart_and_unicode(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    texts = ["hello", "long gsm7 message with {braces} and €uro " * 10,
             "Habari 🌍 ñandú – ütf 16 " * 6]
    for text in texts:
        references = modem.send_sms(ALICE, text)
        sent = sim.modem.sent[-1]
        assert sent["text"] == text and sent["to"] == ALICE
        assert references == sent["references"]
        assert len(references) == sent["parts"]
    assert [s["parts"] for s in sim.modem.sent] == [1, 3, 3]
    with pytest.raises(pdu.TooLong):
        modem.send_sms(ALICE, "x" * 2000, max_parts=3)


def test_receive_routed_is_acknowledged_only_when_done(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    sim.modem.deliver(BOB, "first")
    [item] = poll_until(modem, 1)
    assert item.routed and item.index is None and item.message.text == "first"
    assert item.message.sender == BOB
    assert sim.modem.state()["unacknowledged"] == item.pdu      # not acked before done()
    modem.done(item)
    assert sim.modem.state()["unacknowledged"] is None
    sim.modem.deliver(BOB, "second")
    assert [i.message.text for i in poll_until(modem, 1)] == ["second"]


def test_receive_stored_is_deleted_only_when_done(simulator, driver):
    sim = simulator()
    modem = driver(sim.link, receive_mode="stored").boot()
    assert modem.routing == "stored"
    sim.modem.deliver(BOB, "kept until done")
    [item] = poll_until(modem, 1)
    assert (item.routed, item.storage) == (False, "SM") and item.index is not None
    assert item.message.text == "kept until done"
    assert sim.modem.state()["storage"]["SM"]["used"] == 1
    modem.done(item)
    assert sim.modem.state()["storage"]["SM"]["used"] == 0


def test_messages_stored_before_boot_come_from_the_initial_sweep(simulator, driver):
    sim = simulator()
    sim.modem.deliver(BOB, "while we were away")     # no +CNMI yet: stored silently
    sim.modem.deliver(ALICE, "another one")
    modem = driver(sim.link).boot()
    items = poll_until(modem, 2)
    assert sorted(i.message.text for i in items) == ["another one", "while we were away"]
    assert all(i.index is not None and not i.routed for i in items)
    assert modem.sweep() and len(modem.sweep()) == 2          # still there until done
    for item in items:
        modem.done(item)
    assert modem.sweep() == []


def test_next_message_joins_parts(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    text = "A long message that needs several parts. " * 8 + "ünïcödé ✓"
    sim.modem.deliver(BOB, text)
    message = modem.next_message(timeout=5)
    assert message.text == text and message.sender == BOB and not message.incomplete
    assert message.total == message.parts > 1
    assert modem.next_message(timeout=0) is None


def test_status_reports(simulator, driver):
    sim = simulator(report_delay=0.1)
    modem = driver(sim.link).boot()
    [reference] = modem.send_sms(ALICE, "report please", status_report=True)
    [item] = poll_until(modem, 1)
    assert isinstance(item.message, pdu.StatusReport)
    assert item.message.reference == reference and item.message.delivered
    modem.done(item)


def test_status_reports_stored(simulator, driver):
    sim = simulator(report_delay=0.1, report_status=0x41)
    modem = driver(sim.link, receive_mode="stored").boot()
    [reference] = modem.send_sms(ALICE, "report please", status_report=True)
    [item] = poll_until(modem, 1)
    assert isinstance(item.message, pdu.StatusReport) and item.message.failed
    assert item.message.reference == reference
    modem.done(item)


def test_malformed_pdu_is_kept_not_raised(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    sim.modem.deliver_pdu("07915277000000F0040C91527511111111000062118271922100FF0102")
    [item] = poll_until(modem, 1)
    assert item.message is None and item.error and item.pdu.startswith("0791")
    modem.done(item)
    sim.modem.deliver(BOB, "after the bad one")
    assert [i.message.text for i in poll_until(modem, 1)] == ["after the bad one"]


def test_slow_cmgs_within_timeout(simulator, driver):
    sim = simulator(slow_cmgs=1.0)
    modem = driver(sim.link, send_timeout=5.0).boot()
    assert len(modem.send_sms(ALICE, "slow")) == 1


def test_slow_cmgs_past_timeout_then_recovers(simulator, driver):
    clock = Clock(1000.0)
    sim = simulator(clock=clock)                     # the simulator's time moves by hand
    modem = driver(sim.link, send_timeout=0.5).boot()
    sim.modem.set_faults(slow_cmgs=1.5)
    with pytest.raises(ModemTimeout):
        modem.send_sms(ALICE, "too slow")
    sim.modem.set_faults(slow_cmgs=0)
    clock.now += 1.5                                 # the late +CMGS / OK arrive meanwhile
    wait_for(lambda: "+CMGS:" in sim.transcript(), message="the late +CMGS")
    assert len(modem.send_sms(ALICE, "next one")) == 1
    assert sim.modem.sent[-1]["text"] == "next one"
    assert modem.signal_strength() == 20


@pytest.mark.parametrize("code,transient", [(500, True), (21, False), (331, True)])
def test_cms_error_on_send(simulator, driver, code, transient):
    sim = simulator()
    modem = driver(sim.link).boot()
    sim.modem.set_faults(cms_error=1.0, cms_error_code=code)
    with pytest.raises(CmsError) as raised:
        modem.send_sms(ALICE, "refused")
    assert (raised.value.code, raised.value.transient) == (code, transient)
    assert raised.value.sent_references == []
    sim.modem.set_faults(cms_error=0.0)
    assert len(modem.send_sms(ALICE, "accepted")) == 1


def test_failure_mid_multipart_reports_sent_parts(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    original = modem._sender._send_pdu
    calls = []

    def second_fails(hex_pdu, length):
        calls.append(length)
        if len(calls) == 2:
            sim.modem.set_faults(cms_error=1.0)
        return original(hex_pdu, length)

    modem._sender._send_pdu = second_fails
    with pytest.raises(CmsError) as raised:
        modem.send_sms(ALICE, "part " * 100)
    assert len(raised.value.sent_references) == 1


def test_while_prompting_runs_once_before_any_pdu_and_its_error_sends_nothing(simulator,
                                                                              driver):
    """The worker records the message before while the modem answers the next AT+CMGS: its
    hook runs once, with the command written and no PDU yet, and if it fails nothing is sent
    (the prompt is left with ESC), so a message is never on its way while the one before is
    still unrecorded."""
    sim = simulator()
    modem = driver(sim.link).boot()
    calls = []

    def records(ok):
        def hook():
            calls.append((modem._port.busy, len(sim.modem.sent_messages())))
            if not ok:
                raise RuntimeError("the store refused")
        return hook

    assert len(modem.send_sms(ALICE, "part " * 100, while_prompting=records(True))) == 4
    assert calls == [(True, 0)]                 # once, before the first of four parts
    with pytest.raises(RuntimeError) as raised:
        modem.send_sms(BOB, "not this one", while_prompting=records(False))
    assert raised.value.sent_references == []
    assert [m["text"] for m in sim.modem.sent_messages()] == ["part " * 100]
    assert len(modem.send_sms(ALICE, "and the next one")) == 1      # the line is usable


def test_sim_busy_at_start_is_waited_out(simulator, driver):
    sim = simulator(sim_busy=1.5)
    modem = driver(sim.link).boot()
    assert modem.routing == "routed"
    assert sim.modem.state()["settings"]["cpms"] == ["SM", "SM", "SM"]


def test_sim_busy_too_long_fails_boot(simulator, driver):
    sim = simulator(sim_busy=30)
    with pytest.raises(CmeError) as raised:
        driver(sim.link, boot_timeout=1.5).boot()
    assert raised.value.code == 14 and raised.value.transient


def test_pin_is_entered(simulator, driver):
    sim = simulator(pin="4321")
    modem = driver(sim.link, pin="4321").boot()
    assert sim.modem.state()["settings"]["pin"] == "READY"
    assert modem.send_sms(ALICE, "unlocked")


def test_missing_pin_is_a_clear_error(simulator, driver):
    sim = simulator(pin="4321")
    with pytest.raises(CmeError) as raised:
        driver(sim.link).boot()
    assert raised.value.code == 11


def test_full_storage_holds_messages_until_done(simulator, driver):
    sim = simulator(capacity=2)
    for n in range(3):
        sim.modem.deliver(BOB, "message %d" % n)     # the third waits at the network
    modem = driver(sim.link, receive_mode="stored").boot()
    first = poll_until(modem, 2)
    assert sorted(i.message.text for i in first) == ["message 0", "message 1"]
    for item in first:
        modem.done(item)                            # room again: the network delivers
    [last] = poll_until(modem, 1)
    assert last.message.text == "message 2"


def test_storage_full_fault(simulator, driver):
    sim = simulator()
    modem = driver(sim.link, receive_mode="stored").boot()
    sim.modem.set_faults(storage_full=True)
    sim.modem.deliver(BOB, "held by the network")
    assert sim.modem.state()["network_queue"] == 1
    modem.signal_strength()         # a +CMTI would have come before this answer...
    assert modem.poll(0) == []      # ...and been read with it
    sim.modem.set_faults(storage_full=False)
    assert [i.message.text for i in poll_until(modem, 1)] == ["held by the network"]


def test_hang_times_out_then_boot_recovers(simulator, driver):
    sim = simulator()
    modem = driver(sim.link, command_timeout=0.5).boot()
    sim.modem.set_faults(hang=-1)
    with pytest.raises(ModemTimeout):
        modem.signal_strength()
    modem.close()
    wait_for(lambda: not sim.modem.faults()["hang"],    # the simulator notices the port closed:
             message="hang cleared by the close")       # like a USB reset, that revives it
    modem.boot()
    assert modem.signal_strength() == 20


def test_disappear_and_come_back(simulator, driver):
    sim = simulator()
    modem = driver(sim.link, command_timeout=1.0).boot()
    sim.modem.set_faults(disappear=1.0)
    with pytest.raises(ModemGone):
        for _ in range(20):
            modem.signal_strength()
            time.sleep(0.05)
    assert not modem.is_open
    deadline = time.monotonic() + 10
    while True:
        try:
            modem.boot()
            break
        except (ModemGone, ModemTimeout):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    sim.modem.deliver(BOB, "after the comeback")
    assert [i.message.text for i in poll_until(modem, 1)] == ["after the comeback"]


def test_modem_restart_is_noticed_and_set_up_again(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    sim.modem.power_cycle()                          # settings lost, echo back on
    assert modem.signal_strength() == 20             # the echo gives it away
    assert modem.poll(0.1) == []                     # ...and poll sets the modem up again
    assert sim.modem.state()["settings"]["cnmi"][1] == 2
    sim.modem.deliver(BOB, "after the restart")
    assert [i.message.text for i in poll_until(modem, 1)] == ["after the restart"]


def test_line_noise(simulator, driver):
    sim = simulator(noise=0.3, seed=7)
    modem = driver(sim.link).boot()
    for n in range(5):
        modem.send_sms(ALICE, "through the noise %d" % n)
    assert [s["text"] for s in sim.modem.sent] == ["through the noise %d" % n for n in range(5)]
    sim.modem.deliver(BOB, "noisy inbound")
    [item] = poll_until(modem, 1)
    assert item.message.text == "noisy inbound"
    modem.done(item)


def test_urc_storm(simulator, driver):
    sim = simulator(urc_storm=100)
    modem = driver(sim.link).boot()
    for n in range(3):
        modem.send_sms(ALICE, "storm %d" % n)
        assert modem.signal_strength() == 20
    assert len(sim.modem.sent) == 3
    sim.modem.deliver(BOB, "through the storm")
    [item] = poll_until(modem, 1)
    assert item.message.text == "through the storm"
    modem.done(item)
    assert len(modem.sweep()) == 0


def test_port_url(simulator, driver):
    """pyserial URLs work as ports; a nonexistent device is ModemGone, not a crash."""
    with pytest.raises(ModemGone):
        driver("/nonexistent/ttyUSB9").boot()
    loop = driver("loop://", command_timeout=0.3, boot_timeout=1.0)
    with pytest.raises((ModemTimeout, ModemError)):
        loop.boot()                                  # loop:// echoes; nobody says OK


# --- scripted modems: habits the simulator does not have -----------------------------------

def test_wavecom_cpin_without_ok(scripted, driver):
    port = scripted([(r"AT\+CPIN\?", b"\r\n+CPIN: READY\r\n")])
    modem = driver(port.path).boot()
    assert modem.signal_strength() == 17
    assert "AT+CMGF=0" in port.modem.lines


def test_huawei_command_not_support_falls_back_to_stored(scripted, driver):
    port = scripted([
        (r"AT\+CSMS=1", b"\r\r\nCOMMAND NOT SUPPORT\r\r\n"),
        (r"AT\+CNMI=2,1,0,2,0", b"\r\r\nCOMMAND NOT SUPPORT\r\r\n"),
        (r"AT\+CNMI=1,1,0,2,0", b"\r\r\nOK\r\r\n"),
        (r"AT\+CNMI=.*", b"\r\r\nCOMMAND NOT SUPPORT\r\r\n"),
    ])
    modem = driver(port.path).boot()
    assert (modem.supports_cnma, modem.routing, modem.cnmi) == (False, "stored", "1,1,0,2,0")
    tried = [line for line in port.modem.lines if line.startswith("AT+CNMI")]
    assert tried == ["AT+CNMI=2,1,0,2,0", "AT+CNMI=1,1,0,2,0"]


def test_routed_cnmi_variants_are_tried_in_turn(scripted, driver):
    port = scripted([(r"AT\+CNMI=2,2,0,1,0", b"\r\n+CMS ERROR: 303\r\n"),
                     (r"AT\+CNMI=1,2,0,1,0", b"\r\n+CMS ERROR: 303\r\n")])
    modem = driver(port.path).boot()
    assert (modem.routing, modem.cnmi) == ("routed", "2,2,0,2,0")


def test_zte_urcs_around_prompt_and_a_cmti_during_send(scripted, driver):
    port = scripted([
        (r"AT\+CMGS=\d+", lambda m: b'\r\n+ZPASR: "UMTS"\r\n' + port.modem.prompt(
            lambda body: b'\r\n+ZDONR: "01","01","CS_PS","ROAM_OFF"\r\n\r\n+CMTI: "SM",4\r\n'
                         b"\r\n+CMGS: 11\r\n\r\nOK\r\n")),
        (r"AT\+CMGR=4", cmgr_reply(DELIVER)),
    ])
    modem = driver(port.path).boot()
    assert modem.send_sms(ALICE, "zte") == [11]
    [item] = modem.poll(1.0)                        # the +CMTI seen during the send is read
    assert (item.index, item.storage, item.message.text) == (4, "SM", "hello from a script")
    modem.done(item)
    assert port.modem.lines[-1] == "AT+CMGD=4"


def test_cmti_inside_another_command_is_not_lost(scripted, driver):
    port = scripted([
        (r"AT\+CSQ", b'\r\n+CMTI: "SM",7\r\n\r\n+CSQ: 9,99\r\n\r\nOK\r\n'),
        (r"AT\+CMGR=7", cmgr_reply(DELIVER)),
    ])
    modem = driver(port.path).boot()
    assert modem.signal_strength() == 9
    [item] = modem.poll(0.5)
    assert item.index == 7 and item.message.sender == BOB


def test_echo_that_stays_on(scripted, driver):
    port = scripted([
        (r"AT\+CMGS=\d+", lambda m: port.modem.prompt(
            lambda body: body.encode() + b"\x1a\r\n+CMGS: 3\r\n\r\nOK\r\n")),
    ], echo=True)
    modem = driver(port.path).boot()
    assert modem.send_sms(ALICE, "echoed") == [3]
    assert modem.poll(0.2) == []
    assert not modem._needs_setup                   # sticky echo is not mistaken for a restart


def test_prompt_left_pending_by_a_timeout_is_escaped(scripted, driver):
    port = scripted([(r"AT\+CMGS=\d+", lambda m: port.modem.prompt(lambda body: b""))])
    modem = driver(port.path, send_timeout=0.5).boot()
    with pytest.raises(ModemTimeout):
        modem.send_sms(ALICE, "never answered")
    assert modem.signal_strength() == 17           # ESC got the modem out of the prompt


def test_broken_cmgl_falls_back_to_reading_each_slot(scripted, driver):
    port = scripted([
        (r"AT\+CMGL=4", b"\r\n+CMS ERROR: 302\r\n"),
        (r"AT\+CPMS\?", b'\r\n+CPMS: "SM",1,5,"SM",1,5,"SM",1,5\r\n\r\nOK\r\n'),
        (r"AT\+CMGR=3", cmgr_reply(DELIVER)),
        (r"AT\+CMGR=\d+", b"\r\n+CMS ERROR: 321\r\n"),
    ])
    modem = driver(port.path).boot()
    [item] = modem.poll(0.1)
    assert item.index == 3 and item.message.text == "hello from a script"
    assert "AT+CMGR=4" not in port.modem.lines      # stopped once the count was reached


def test_cnma_refused_reissues_cnmi(scripted, driver):
    port = scripted([(r"AT\+CNMA", b"\r\n+CMS ERROR: 340\r\n")])
    modem = driver(port.path).boot()
    port.modem.push(b"\r\n+CMT: ,%d\r\n%s\r\n" % (len(DELIVER) // 2 - 8, DELIVER.encode()))
    [item] = modem.poll(1.0)
    assert item.routed
    modem.done(item)
    assert port.modem.lines[-2:] == ["AT+CNMA", "AT+CNMI=2,2,0,1,0"]


def test_garbage_and_silence_at_boot(scripted, driver):
    answered = []

    def late_at(m):
        answered.append(1)
        return b"\xff\x00garbage" if len(answered) < 3 else b"\r\nOK\r\n"

    port = scripted([(r"AT", late_at)])
    modem = driver(port.path).boot()
    assert len(answered) >= 3 and modem.routing == "routed"


def test_missed_cnma_loses_nothing(simulator, driver):
    """The ack comes too late: the modem drops routing (27.005 3.4.4), the network redelivers.
    The periodic check puts +CNMI back and the message comes again (the store dedups it)."""
    sim = simulator(cnma_timeout=0.3, redelivery_delay=0.3)
    modem = driver(sim.link, check_interval=1.0).boot()
    sim.modem.deliver(BOB, "acknowledge me in time")
    [first] = poll_until(modem, 1)
    wait_for(lambda: sim.modem.state()["settings"]["cnmi"][1] == 0,   # the worker was slow to
             message="the modem giving up on +CNMA")                 # commit: the modem gave up
    modem.done(first)                               # too late: +CNMA refused, CNMI re-issued
    [again] = poll_until(modem, 1, timeout=5)
    assert again.message.text == "acknowledge me in time"
    assert again.pdu == first.pdu
    modem.done(again)
    assert sim.modem.state()["settings"]["cnmi"][1] == 2


def test_items_never_done_are_handed_out_again(simulator, driver):
    sim = simulator()
    modem = driver(sim.link, receive_mode="stored", check_interval=0.5).boot()
    sim.modem.deliver(BOB, "commit failed")
    [item] = poll_until(modem, 1)
    assert modem.poll(0) == []                      # not at once...
    [again] = poll_until(modem, 1, timeout=3)       # ...but after the next check
    assert (again.index, again.pdu) == (item.index, item.pdu)


def test_cnma_that_never_works_falls_back_to_stored(scripted, driver):
    port = scripted([(r"AT\+CNMA", b"\r\n+CMS ERROR: 500\r\n"),
                     (r"AT\+CMGR=1", cmgr_reply(DELIVER))])
    modem = driver(port.path).boot()
    for _ in range(3):
        port.modem.push(b"\r\n+CMT: ,%d\r\n%s\r\n" % (len(DELIVER) // 2 - 8, DELIVER.encode()))
        [item] = modem.poll(1.0)
        modem.done(item)
    assert (modem.routing, modem.supports_cnma) == ("stored", False)
    assert port.modem.lines[-2:] == ["AT+CSMS=0", "AT+CNMI=2,1,0,2,0"]
    port.modem.push(b'\r\n+CMTI: "SM",1\r\n')
    [item] = modem.poll(1.0)
    assert item.index == 1


def test_periodic_check_restores_cnmi_and_sweeps(simulator, driver):
    """No ack at all: the modem turns routing off and stores the redelivery silently; the
    periodic check notices +CNMI changed, sets it again and finds the stored copy."""
    sim = simulator(cnma_timeout=0.2, redelivery_delay=0.2)
    modem = driver(sim.link, check_interval=1.0).boot()
    sim.modem.deliver(BOB, "nobody acked me")
    [first] = poll_until(modem, 1)
    [again] = poll_until(modem, 1, timeout=5)
    assert again.pdu == first.pdu and again.index is not None and not again.routed
    assert sim.modem.state()["settings"]["cnmi"][1] == 2
    modem.done(again)
    assert sim.modem.state()["storage"]["SM"]["used"] == 0


def test_a_wrong_pin_is_tried_once_only(simulator, driver):
    sim = simulator(pin="4321")
    for _ in range(4):                  # the worker reconnects with a new GsmModem each time
        with pytest.raises(CmeError) as raised:
            driver(sim.link, pin="1111").boot()
        assert raised.value.code == 16 and not raised.value.transient
    assert sim.modem.state()["settings"]["pin"] == "SIM PIN"    # not locked to PUK


def test_more_messages_mode_goes_off_for_good_when_it_makes_sends_fail(simulator, driver):
    sim = simulator()
    modem = driver(sim.link).boot()
    assert "AT+CMMS=2" in sim.transcript()
    sim.modem.set_faults(cms_error=1.0, cms_error_code=500)
    with pytest.raises(CmsError):
        modem.send_sms(ALICE, "refused")
    sim.modem.set_faults(cms_error=0.0)
    assert "AT+CMMS=0" in sim.transcript()
    assert len(modem.send_sms(ALICE, "accepted")) == 1
    modem.close()
    modem.boot()        # a reconnect of the same GsmModem does not switch it back on
    assert sim.transcript().count("AT+CMMS=2") == 1


def test_wake_cuts_a_waiting_poll_short(simulator, driver):
    import threading

    sim = simulator()
    modem = driver(sim.link).boot()
    result = []
    poller = threading.Thread(target=lambda: result.append(modem.poll(60)))
    poller.start()
    time.sleep(0.2)
    modem.wake()
    poller.join(10)
    assert not poller.is_alive() and result == [[]]
    # A wake() that came while no poll was waiting does not disturb a command.
    modem.wake()
    assert modem.signal_strength() is not None


def test_a_message_done_is_not_handed_out_again_from_the_queue(simulator, driver):
    """A stored message offered again (undone past a checkup) while the caller still works on
    it must not come out after its done(): by then its slot may hold a new message, which
    that second done() would delete unread."""
    sim = simulator()
    modem = driver(sim.link, receive_mode="stored", check_interval=0.5).boot()
    sim.modem.deliver(BOB, "committed once")
    [item] = poll_until(modem, 1)
    time.sleep(0.6)                                 # undone past the check interval...
    sim.modem.power_cycle()
    assert modem.signal_strength() == 20            # ...the echo gives the restart away
    modem.send_sms(ALICE, "sets it up again")       # and the sweep after setup queues it again
    modem.done(item)
    assert modem.poll(0.3) == []
    assert sim.modem.state()["storage"]["SM"]["used"] == 0

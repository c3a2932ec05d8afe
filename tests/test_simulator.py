"""The simulated modem, driven as a real modem is: pyserial on its pseudo-terminal.

Timed behaviour (delayed answers, windows, the network's redelivery) is checked on the sans-I/O
`SimulatedModem` with a hand-moved clock, so no test waits on wall time for it; the pty tests
check what a program sees on the port.  The control API is exercised over real HTTP on 127.0.0.1.
"""

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
import requests
import serial
from hypothesis import given, settings, strategies as st

from clock import Clock
from bridgeproc import wait_for
from transcript import wire
from gsmbridge.codec import pdu
from gsmbridge.simulator.runner import loopback_address, start_simulator
from gsmbridge.simulator.machine import SimulatedModem, parse_command_line

FIXED_TIME = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc)
FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n")


class Host:
    """The program's end of the port: writes commands, reads until a final result code."""

    def __init__(self, link, baudrate=115200):
        self.port = serial.Serial(link, baudrate, timeout=0.05)
        self.buffer = b""

    def close(self):
        self.port.close()

    def write(self, data):
        self.port.write(data)

    def read_until(self, pattern, timeout=5.0):
        """Bytes up to and including the first match of `pattern` (a compiled regex)."""
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.buffer)
            if match:
                out, self.buffer = self.buffer[:match.end()], self.buffer[match.end():]
                return out
            if time.monotonic() > deadline:
                raise AssertionError("no %r in %r" % (pattern.pattern, self.buffer))
            self.buffer += self.port.read(self.port.in_waiting or 1)

    def settle(self):
        """Everything the modem sent up to its answer to a plain AT (for checking that nothing
        else came): the modem answers in order, so a URC it had to send by the time it read the
        AT -- on its clock -- comes before that answer."""
        self.write(b"AT\r")
        out = self.read_until(FINAL)
        assert out.endswith(b"\r\nOK\r\n"), out
        return out[:-len(b"\r\nOK\r\n")]

    def command(self, cmd, timeout=5.0):
        self.write(cmd.encode("latin-1") + b"\r")
        return self.read_until(FINAL, timeout).decode("latin-1")

    def send_pdu(self, hex_pdu, length, timeout=5.0):
        """AT+CMGS in PDU mode: the command, the prompt, the PDU and Ctrl-Z; the answer."""
        self.write(b"AT+CMGS=%d\r" % length)
        self.read_until(re.compile(rb"\r\n> "))
        self.write(hex_pdu.encode() + b"\x1a")
        return self.read_until(FINAL, timeout).decode()


def lines(answer):
    return [line for line in re.split(r"[\r\n]+", answer) if line]


def pdu_lines(answer, prefix):
    """The PDUs that follow `prefix` header lines (+CMGL:, +CMGR:, +CMT:, +CDS:)."""
    out = lines(answer)
    return [out[i + 1] for i, line in enumerate(out) if line.startswith(prefix)]


@pytest.fixture
def make(tmp_path):
    """make(**options) -> (simulator, host) on a fresh pty; everything stopped afterwards."""
    started = []

    def make(control=None, baudrate=None, **options):
        options.setdefault("report_delay", 0.05)
        sim = start_simulator(str(tmp_path / ("modem%d" % len(started))), control=control,
                              baudrate=baudrate, **options)
        started.append(sim)
        host = Host(sim.link)
        started.append(host)
        return sim, host

    yield make
    for thing in reversed(started):
        (thing.close if isinstance(thing, Host) else thing.stop)()


def booted(make, **options):
    """A simulator after a driver's usual boot: no echo, numeric errors, PDU mode."""
    sim, host = make(**options)
    for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=0"):
        assert host.command(cmd).endswith("\r\nOK\r\n")
    return sim, host


def sansio(**options):
    """A SimulatedModem on a clock the test moves; echo off and numeric errors already."""
    clock = Clock(1000.0)
    modem = SimulatedModem(clock=clock, **options)
    modem.feed(b"ATE0\rAT+CMEE=1\r")
    assert modem.data_to_send() == b"ATE0\r\r\nOK\r\n\r\nOK\r\n"
    return modem, clock


def at(modem, cmd):
    modem.feed(cmd.encode() + b"\r")
    return modem.data_to_send().decode("latin-1")


# -- the dialogue ---------------------------------------------------------------------------

def test_boot_dialogue_as_a_driver_runs_it(make):
    sim, host = make()
    # echo is on after power-up, ATE0 itself is still echoed, then nothing is
    assert host.command("AT") == "AT\r\r\nOK\r\n"
    assert host.command("ATE0") == "ATE0\r\r\nOK\r\n"
    assert host.command("AT") == "\r\nOK\r\n"
    assert host.command("ATZ") == "\r\nOK\r\n"
    assert host.command("AT") == "AT\r\r\nOK\r\n", "ATZ restores the profile: echo on"
    host.command("ATE0")
    assert host.command("AT+CMEE=1") == "\r\nOK\r\n"
    assert host.command("AT+CPIN?") == "\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert lines(host.command("AT+CGMI")) == ["gsmbridge", "OK"]
    assert lines(host.command("AT+CGSN")) == ["356938035643809", "OK"]
    assert lines(host.command("AT+CIMI")) == ["640040000000001", "OK"]
    assert lines(host.command("AT+CSQ")) == ["+CSQ: 20,99", "OK"]
    assert lines(host.command("AT+COPS=3,2;+COPS?")) == ['+COPS: 0,2,"64004"', "OK"]
    assert lines(host.command("AT+CREG?")) == ["+CREG: 0,1", "OK"]
    assert lines(host.command("AT+CSMS=1")) == ["+CSMS: 1,1,1", "OK"]
    assert lines(host.command("AT+CSMS?")) == ["+CSMS: 1,1,1,1", "OK"]
    assert lines(host.command("AT+CMGF=0")) == ["OK"]
    assert lines(host.command('AT+CPMS="SM","SM","SM"')) == ["+CPMS: 0,30,0,30,0,30", "OK"]
    assert lines(host.command("AT+CPMS?")) == ['+CPMS: "SM",0,30,"SM",0,30,"SM",0,30', "OK"]
    assert lines(host.command("AT+CNMI=2,1,0,2,0")) == ["OK"]
    assert lines(host.command("AT+CNMI?")) == ["+CNMI: 2,1,0,2,0", "OK"]
    assert lines(host.command('AT+CSCA?')) == ['+CSCA: "+255790000000",145', "OK"]
    assert lines(host.command("AT+CMGL=4")) == ["OK"]
    assert lines(host.command("AT+CGSMS=1;+CGSMS?;+CMMS=1;+CMMS?")) == [
        "+CGSMS: 1", "+CMMS: 1", "OK"]
    assert lines(host.command("AT+CFUN?")) == ["+CFUN: 1", "OK"]
    assert lines(host.command("AT+NOSUCHTHING")) == ["ERROR"]
    assert lines(host.command("AT+CSQ;+NOSUCHTHING;+CGMI")) == ["+CSQ: 20,99", "ERROR"]
    assert lines(host.command("at+cgmm")) == ["SIM-27005", "OK"], "lower case works"


def test_identification_the_way_gammu_and_others_ask(make):
    _, host = booted(make)
    assert lines(host.command("ATI3")) == ["gsmbridge", "OK"]
    assert lines(host.command("ATI4")) == ["SIM-27005", "OK"]
    assert lines(host.command("ATI5")) == ["1.0.0", "OK"]
    assert "IMEI: 356938035643809" in lines(host.command("ATI"))
    assert lines(host.command("AT+GMI;+GMM;+GMR")) == ["gsmbridge", "SIM-27005", "1.0.0", "OK"]


def test_cmee_sets_the_error_format(make):
    _, host = make()
    host.command("ATE0")
    assert lines(host.command("AT+CMGR=7")) == ["ERROR"], "CMEE=0: plain ERROR"
    host.command("AT+CMEE=1")
    assert lines(host.command("AT+CMGR=7")) == ["+CMS ERROR: 321"]
    assert lines(host.command("AT+CPIN=\"0000\"")) == ["+CME ERROR: 3"]
    host.command("AT+CMEE=2")
    assert lines(host.command("AT+CMGR=7")) == ["+CMS ERROR: invalid memory index"]
    assert lines(host.command("AT+CPIN=\"0000\"")) == ["+CME ERROR: operation not allowed"]
    assert lines(host.command("AT+BOGUS")) == ["ERROR"], "unknown commands: ERROR in any mode"


def test_pin_locks_the_sim_until_entered(make):
    _, host = booted(make, pin="1234")
    assert lines(host.command("AT+CPIN?")) == ["+CPIN: SIM PIN", "OK"]
    assert lines(host.command("AT+CMGL=4")) == ["+CMS ERROR: 311"]
    assert lines(host.command("AT+CIMI")) == ["+CME ERROR: 11"]
    assert lines(host.command("AT+CREG?")) == ["+CREG: 0,0", "OK"]
    assert lines(host.command('AT+CPIN="9999"')) == ["+CME ERROR: 16"]
    assert lines(host.command('AT+CPIN="1234"')) == ["OK"]
    assert lines(host.command("AT+CPIN?")) == ["+CPIN: READY", "OK"]
    assert lines(host.command("AT+CMGL=4")) == ["OK"]


def test_three_wrong_pins_need_the_puk(make):
    _, host = booted(make, pin="1234")
    for _ in range(3):
        assert lines(host.command('AT+CPIN="0000"')) == ["+CME ERROR: 16"]
    assert lines(host.command("AT+CPIN?")) == ["+CPIN: SIM PUK", "OK"]
    assert lines(host.command('AT+CPIN="1234"')) == ["+CME ERROR: 16"]
    assert lines(host.command('AT+CPIN="12345678","4321"')) == ["OK"]
    assert lines(host.command("AT+CPIN?")) == ["+CPIN: READY", "OK"]


def test_numeric_result_codes_with_atv0(make):
    _, host = make()
    result = re.compile(rb"(^|[\r\n])[04]\r")
    host.write(b"ATE0V0\r")
    assert host.read_until(result) == b"ATE0V0\r0\r"
    host.write(b"AT+CSQ\r")
    assert host.read_until(result) == b"+CSQ: 20,99\r\n0\r"
    host.write(b"AT+BOGUS\r")
    assert host.read_until(result) == b"4\r"


def test_repeat_last_command_line(make):
    _, host = booted(make)
    host.command("AT+CSQ")
    host.write(b"A/")
    assert lines(host.read_until(FINAL).decode()) == ["+CSQ: 20,99", "OK"]


def test_lines_without_at_are_ignored(make):
    _, host = booted(make)
    host.write(b"\x1b\rhello\r")      # gammu starts with ESC CR; noise is no command
    assert lines(host.command("AT")) == ["OK"]


def test_cfun_reset_reboots_keeping_the_storage(make):
    sim, host = booted(make, reset_time=0.05)
    sim.modem.deliver("+255700000001", "kept")
    assert lines(host.command("AT+CFUN=1,1")) == ["OK"]
    assert "+CPIN: READY" in host.read_until(re.compile(rb"\+CPIN: READY\r\n")).decode()
    assert host.command("AT") == "AT\r\r\nOK\r\n", "echo back on after the reset"
    host.command("ATE0")
    assert len(pdu_lines(host.command("AT+CMGL=4"), "+CMGL:")) == 1


# -- sending ------------------------------------------------------------------------------

def test_pdu_send_is_decoded_into_sent(make):
    sim, host = booted(make)
    answer = host.send_pdu(*pdu.encode_submit("+255700000002", "Habari, dunia! {€}"))
    mr = int(re.search(r"\+CMGS: (\d+)", answer).group(1))
    assert answer.endswith("\r\nOK\r\n")
    [entry] = sim.modem.sent_messages()
    assert (entry["to"], entry["text"], entry["parts"], entry["reference"]) == (
        "+255700000002", "Habari, dunia! {€}", 1, mr)
    assert entry["status_report"] is False


def test_concatenated_unicode_send_is_joined(make):
    sim, host = booted(make)
    text = "Asante sana 😀 " * 12
    refs = []
    for hex_pdu, length in pdu.submit_pdus("+255700000003", text, concat_reference=77):
        answer = host.send_pdu(hex_pdu, length)
        refs.append(int(re.search(r"\+CMGS: (\d+)", answer).group(1)))
        if len(refs) == 1:
            assert sim.modem.sent_messages() == [], "a part alone is not a sent SMS yet"
    [entry] = sim.modem.sent_messages()
    assert entry["text"] == text and entry["encoding"] == "ucs2"
    assert entry["parts"] == len(refs) > 1 and entry["references"] == refs
    assert len(set(refs)) == len(refs), "each part gets its own TP-MR"


def test_escape_cancels_the_prompt(make):
    sim, host = booted(make)
    hex_pdu, length = pdu.encode_submit("+255700000002", "never")
    host.write(b"AT+CMGS=%d\r" % length)
    host.read_until(re.compile(rb"\r\n> "))
    host.write(hex_pdu.encode() + b"\x1b")
    assert lines(host.read_until(FINAL).decode()) == ["OK"]
    assert sim.modem.sent_messages() == []
    assert lines(host.command("AT")) == ["OK"], "back in command mode"


def test_bad_pdus_are_refused(make):
    sim, host = booted(make)
    hex_pdu, length = pdu.encode_submit("+255700000002", "hello")
    assert lines(host.send_pdu(hex_pdu, length + 1)) == ["+CMS ERROR: 304"]
    assert lines(host.send_pdu("00110012ZZ", 4)) == ["+CMS ERROR: 304"]
    deliver, dlen = pdu.encode_deliver("+255700000002", "wrong way", timestamp=FIXED_TIME)
    assert lines(host.send_pdu(deliver, dlen)) == ["+CMS ERROR: 304"], "a DELIVER is no SUBMIT"
    assert sim.modem.sent_messages() == []


def test_text_mode_send(make):
    sim, host = booted(make)
    host.command("AT+CMGF=1")
    host.write(b'AT+CMGS="+255700000004"\r')
    host.read_until(re.compile(rb"\r\n> "))
    host.write(b"Hello from text mode\x1a")
    assert re.match(r"\+CMGS: \d+", lines(host.read_until(FINAL).decode())[0])
    [entry] = sim.modem.sent_messages()
    assert (entry["to"], entry["text"]) == ("+255700000004", "Hello from text mode")


def test_cmgw_stores_and_cmss_sends(make):
    sim, host = booted(make)
    hex_pdu, length = pdu.encode_submit("+255700000005", "from storage")
    host.write(b"AT+CMGW=%d\r" % length)
    host.read_until(re.compile(rb"\r\n> "))
    host.write(hex_pdu.encode() + b"\x1a")
    index = int(re.search(r"\+CMGW: (\d+)", host.read_until(FINAL).decode()).group(1))
    assert re.match(r"\+CMSS: \d+", lines(host.command("AT+CMSS=%d" % index))[0])
    assert [e["text"] for e in sim.modem.sent_messages()] == ["from storage"]
    assert lines(host.command("AT+CMGR=%d" % index))[0] == "+CMGR: 3,,%d" % length, "STO SENT"


def test_status_report_routed_with_ds1(make):
    sim, host = booted(make)
    host.command("AT+CNMI=2,1,0,1,0")
    hex_pdu, length = pdu.encode_submit("+255700000002", "report me", status_report=True)
    mr = int(re.search(r"\+CMGS: (\d+)", host.send_pdu(hex_pdu, length)).group(1))
    urc = host.read_until(re.compile(rb"\+CDS: \d+\r\n[0-9A-F]+\r\n")).decode()
    [report_pdu] = pdu_lines(urc, "+CDS:")
    report = pdu.decode(report_pdu)
    assert isinstance(report, pdu.StatusReport)
    assert (report.reference, report.recipient, report.delivered) == (mr, "+255700000002", True)
    assert sim.modem.sent_messages()[0]["status_report"] is True


def test_status_report_stored_with_ds2(make):
    sim, host = booted(make)
    host.command("AT+CNMI=2,1,0,2,0")
    sim.modem.set_faults(report_status=0x46)     # expired: a failed delivery
    mr = int(re.search(r"\+CMGS: (\d+)", host.send_pdu(
        *pdu.encode_submit("+255700000002", "x", status_report=True))).group(1))
    index = int(re.search(rb'\+CDSI: "SM",(\d+)', host.read_until(
        re.compile(rb'\+CDSI: "SM",\d+\r\n'))).group(1))
    [report_pdu] = pdu_lines(host.command("AT+CMGR=%d" % index), "+CMGR:")
    report = pdu.decode(report_pdu)
    assert (report.reference, report.failed) == (mr, True)


def test_no_status_report_unless_requested(make):
    clock = Clock(1000.0)
    sim, host = booted(make, clock=clock)
    host.command("AT+CNMI=2,1,0,1,0")
    host.send_pdu(*pdu.encode_submit("+255700000002", "no report"))
    clock.now += 60                                 # long past report_delay
    assert b"+CDS" not in host.settle()


# -- receiving ----------------------------------------------------------------------------

def test_inbound_via_cmti_then_cmgr_and_cmgd(make):
    sim, host = booted(make)
    host.command("AT+CNMI=2,1,0,0,0")
    sim.modem.deliver("+255700000001", "Habari yako?")
    index = int(re.search(rb'\+CMTI: "SM",(\d+)', host.read_until(
        re.compile(rb'\+CMTI: "SM",\d+\r\n'))).group(1))
    answer = host.command("AT+CMGR=%d" % index)
    assert lines(answer)[0].startswith("+CMGR: 0,,"), "REC UNREAD"
    message = pdu.decode(pdu_lines(answer, "+CMGR:")[0])
    assert (message.sender, message.text) == ("+255700000001", "Habari yako?")
    assert lines(host.command("AT+CMGR=%d" % index))[0].startswith("+CMGR: 1,,"), "now READ"
    assert lines(host.command("AT+CPMS?"))[0] == '+CPMS: "SM",1,30,"SM",1,30,"SM",1,30'
    assert lines(host.command("AT+CMGD=%d" % index)) == ["OK"]
    assert lines(host.command("AT+CMGR=%d" % index)) == ["+CMS ERROR: 321"]
    assert lines(host.command("AT+CPMS?"))[0] == '+CPMS: "SM",0,30,"SM",0,30,"SM",0,30'


def test_long_inbound_is_concatenated_parts_listed_by_cmgl(make):
    sim, host = booted(make)
    text = "Ujumbe mrefu sana. " * 20
    delivered = sim.modem.deliver("+255700000001", text)
    assert delivered["parts"] == 3
    listed = pdu_lines(host.command("AT+CMGL=4"), "+CMGL:")
    parts = [pdu.decode(p) for p in listed]
    assert [p.concat.sequence for p in parts] == [1, 2, 3]
    assert "".join(p.text for p in parts) == text
    assert pdu_lines(host.command("AT+CMGL=0"), "+CMGL:") == [], "listing marked them read"
    assert len(pdu_lines(host.command("AT+CMGL=1"), "+CMGL:")) == 3
    assert lines(host.command("AT+CMGD=1,4")) == ["OK"]
    assert lines(host.command("AT+CMGL=4")) == ["OK"]


def test_text_mode_listing(make):
    sim, host = booted(make)
    sim.modem.deliver("+255700000001", "Habari")
    sim.modem.deliver("+255700000009", "Karibu ✓")
    host.command("AT+CMGF=1")
    answer = lines(host.command('AT+CMGL="ALL"'))
    assert answer[0].startswith('+CMGL: 1,"REC UNREAD","+255700000001",,"')
    assert answer[1] == "Habari"
    assert answer[2].startswith('+CMGL: 2,"REC UNREAD","+255700000009",,"')
    assert bytes.fromhex(answer[3]).decode("utf-16-be") == "Karibu ✓", "UCS2 data is hex"


def test_routed_cmt_acknowledged_with_cnma(make):
    sim, host = booted(make)
    host.command("AT+CSMS=1")
    host.command("AT+CNMI=2,2,0,0,0")
    sim.modem.deliver("+255700000001", "routed")
    urc = host.read_until(re.compile(rb"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")).decode()
    length = int(re.search(r"\+CMT: ,(\d+)", urc).group(1))
    [hex_pdu] = pdu_lines(urc, "+CMT:")
    assert pdu.decode(hex_pdu).text == "routed" and length == len(hex_pdu) // 2 - 8
    assert lines(host.command("AT+CNMA")) == ["OK"]
    assert lines(host.command("AT+CNMA")) == ["+CMS ERROR: 340"], "nothing left to acknowledge"
    assert lines(host.command("AT+CMGL=4")) == ["OK"], "a routed message is not stored"


def test_unacknowledged_cmt_is_redelivered_as_cmt(make):
    clock = Clock(1000.0)
    sim, host = booted(make, clock=clock, cnma_timeout=0.1, redelivery_delay=0.1,
                       cnma_disables_routing=False)
    host.command("AT+CSMS=1")
    host.command("AT+CNMI=2,2,0,0,0")
    sim.modem.deliver("+255700000001", "ack me")
    pattern = re.compile(rb"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")
    first = pdu_lines(host.read_until(pattern).decode(), "+CMT:")
    clock.now += 0.15                               # no +CNMA in time: the network takes it back
    sim.modem.tick()
    clock.now += 0.15                               # ...and tries again
    again = pdu_lines(host.read_until(pattern).decode(), "+CMT:")
    assert first == again, "the same TPDU again (same timestamp): the bridge's dedup relies on it"
    assert lines(host.command("AT+CNMA")) == ["OK"]
    clock.now += 60                                 # long past any further try
    assert b"+CMT" not in host.settle()


def test_unacknowledged_cmt_stops_routing_and_is_stored(make):
    """TS 27.005 3.4.4: without +CNMA in time the ME sets <mt> and <ds> to 0; the network
    redelivers, and the message lands in storage without an indication."""
    sim, host = booted(make, cnma_timeout=0.1, redelivery_delay=0.1)
    host.command("AT+CSMS=1")
    host.command("AT+CNMI=2,2,0,1,0")
    sim.modem.deliver("+255700000001", "not acked")
    first = pdu_lines(host.read_until(re.compile(rb"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")).decode(),
                      "+CMT:")
    wait_for(lambda: sim.modem.state()["storage"]["SM"]["used"] == 1, message="stored")
    assert lines(host.command("AT+CNMI?"))[0] == "+CNMI: 2,0,0,0,0"
    assert pdu_lines(host.command("AT+CMGL=4"), "+CMGL:") == first


def test_storage_capacity_holds_messages_at_the_network(make):
    sim, host = booted(make, capacity=2)
    host.command("AT+CNMI=2,1,0,0,0")
    for n in range(3):
        sim.modem.deliver("+255700000001", "message %d" % n)
    first = host.read_until(re.compile(rb'(\+CMTI: "SM",\d+\r\n.*){2}', re.S))
    assert first.count(b"+CMTI") == 2
    assert sim.modem.state()["network_queue"] == 1
    host.command("AT+CMGD=1")
    urc = host.read_until(re.compile(rb'\+CMTI: "SM",\d+\r\n')).decode()
    assert '+CMTI: "SM",1' in urc, "room again: the network delivers the held message"
    texts = [pdu.decode(p).text for p in pdu_lines(host.command("AT+CMGL=4"), "+CMGL:")]
    assert sorted(texts) == ["message 1", "message 2"]


def test_me_and_mt_storages(make):
    sim, host = booted(make, capacity=1)
    host.command('AT+CPMS="MT","MT","ME"')
    sim.modem.deliver("+255700000001", "to ME")
    assert lines(host.command("AT+CPMS?"))[0] == '+CPMS: "MT",1,101,"MT",1,101,"ME",1,100'
    [hex_pdu] = pdu_lines(host.command("AT+CMGL=4"), "+CMGL: 2,")   # MT: SM's slot 1, then ME
    assert pdu.decode(hex_pdu).text == "to ME"


def test_first_index_zero_like_huawei(make):
    sim, host = booted(make, first_index=0)
    host.command("AT+CNMI=2,1,0,0,0")
    sim.modem.deliver("+255700000001", "zero")
    host.read_until(re.compile(rb'\+CMTI: "SM",0\r\n'))
    assert pdu_lines(host.command("AT+CMGR=0"), "+CMGR:")


def test_mode_zero_buffers_indications_until_cnmi_flushes(make):
    sim, host = booted(make)
    host.command("AT+CNMI=0,1,0,0,0")
    sim.modem.deliver("+255700000001", "buffered")
    assert b"+CMTI" not in host.settle()
    host.command("AT+CNMI=2,1,0,0,0")
    host.read_until(re.compile(rb'\+CMTI: "SM",1\r\n'))


def test_raw_pdu_injection_keeps_malformed_pdus(make):
    sim, host = booted(make)
    sim.modem.deliver_pdu("0791527509000000040C91527500")
    answer = host.command("AT+CMGL=4")
    assert pdu_lines(answer, "+CMGL:") == ["0791527509000000040C91527500"]


# -- faults -------------------------------------------------------------------------------

def test_cms_error_fault(make):
    sim, host = booted(make)
    sim.modem.set_faults(cms_error=1.0)
    message = pdu.encode_submit("+255700000002", "fails")
    assert lines(host.send_pdu(*message)) == ["+CMS ERROR: 500"]
    sim.modem.set_faults(cms_error_code=331)
    assert lines(host.send_pdu(*message)) == ["+CMS ERROR: 331"]
    assert sim.modem.sent_messages() == [] and sim.modem.state()["rejected"] == 2
    sim.modem.set_faults(cms_error=0)
    assert "+CMGS:" in host.send_pdu(*message)


def test_cms_error_fault_hits_a_fraction(make):
    sim, host = booted(make, seed=7)
    sim.modem.set_faults(cms_error=0.5)
    answers = [host.send_pdu(*pdu.encode_submit("+255700000002", "n%d" % i)) for i in range(40)]
    failed = sum("+CMS ERROR: 500" in a for a in answers)
    assert 5 < failed < 35
    assert len(sim.modem.sent_messages()) == 40 - failed


def test_no_network_refuses_sends_and_holds_inbound(make):
    sim, host = booted(make)
    host.command("AT+CREG=1")
    host.command("AT+CNMI=2,1,0,0,0")
    sim.modem.set_faults(registration=0, signal=99)
    host.read_until(re.compile(rb"\+CREG: 0\r\n"))
    assert lines(host.command("AT+CSQ")) == ["+CSQ: 99,99", "OK"]
    assert lines(host.command("AT+COPS?")) == ["+COPS: 0", "OK"]
    assert lines(host.send_pdu(*pdu.encode_submit("+255700000002", "x"))) == ["+CMS ERROR: 331"]
    sim.modem.deliver("+255700000001", "waits for coverage")
    assert b"+CMTI" not in host.settle()
    sim.modem.set_faults(registration=5)
    urcs = host.read_until(re.compile(rb'\+CMTI: "SM",1\r\n')).decode()
    assert "+CREG: 5" in urcs


def test_sim_busy_fault(make):
    sim, host = booted(make)
    sim.modem.set_faults(sim_busy=30)
    assert lines(host.command("AT+CPMS?")) == ["+CME ERROR: 14"]
    assert lines(host.command("AT+CMGL=4")) == ["+CME ERROR: 14"]
    assert lines(host.command("AT+CPIN?")) == ["+CME ERROR: 14"]
    assert lines(host.command("AT+CSQ")) == ["+CSQ: 20,99", "OK"], "the modem itself answers"
    assert 0 < sim.modem.faults()["sim_busy"] <= 30
    sim.modem.set_faults(sim_busy=0)
    assert lines(host.command("AT+CMGL=4")) == ["OK"]


def test_storage_full_fault(make):
    sim, host = booted(make)
    host.command("AT+CNMI=2,1,0,0,0")
    sim.modem.set_faults(storage_full=True)
    sim.modem.deliver("+255700000001", "no room")
    assert b"+CMTI" not in host.settle()
    hex_pdu, length = pdu.encode_submit("+255700000002", "draft")
    host.write(b"AT+CMGW=%d\r" % length)
    host.read_until(re.compile(rb"\r\n> "))
    host.write(hex_pdu.encode() + b"\x1a")
    assert lines(host.read_until(FINAL).decode()) == ["+CMS ERROR: 322"]
    sim.modem.set_faults(storage_full=False)
    host.read_until(re.compile(rb'\+CMTI: "SM",1\r\n'))


def test_hang_fault_until_the_port_is_reopened(make):
    sim, host = booted(make)
    sim.modem.set_faults(hang=True)
    since = len(sim.transcript())
    host.write(b"AT\r")
    wait_for(lambda: wire(sim, since)[0] == b"AT\r", message="the AT read by the modem")
    assert sim.modem.faults()["hang"] == -1
    host.close()
    wait_for(lambda: not sim.modem.faults()["hang"], message="hang cleared by the close")
    # The close is noticed in a later pass of the port's pump than the one that read the AT,
    # so whatever the modem answered to it is in the transcript by now.
    assert wire(sim, since)[1] == b""
    host.port.open()
    assert host.command("AT") == "AT\r\r\nOK\r\n", "it came back as after power-up"


def test_disappear_fault_takes_the_port_away_and_back(make):
    sim, host = booted(make)
    link = sim.link
    sim.modem.set_faults(disappear=0.5)
    wait_for(lambda: not os.path.lexists(link), message="link removed")
    with pytest.raises(serial.SerialException):
        for _ in range(100):
            host.port.write(b"AT\r")
            host.port.read(10)
            time.sleep(0.01)
    host.close()
    wait_for(lambda: os.path.lexists(link), message="link back")
    host.port.open()
    assert host.command("AT") == "AT\r\r\nOK\r\n"


def test_noise_fault_puts_garbage_lines_between_lines(make):
    sim, host = booted(make, seed=3)
    sim.modem.deliver("+255700000001", "noise")
    sim.modem.set_faults(noise=1.0)
    answer = host.command("AT+CMGL=4").encode("latin-1")
    raw_lines = [line for line in re.split(rb"[\r\n]+", answer) if line]
    junk = [line for line in raw_lines if any(b >= 0x80 or b < 0x20 for b in line)]
    assert junk, "garbage came"
    clean = [line.decode() for line in raw_lines if line not in junk]
    assert clean[0].startswith("+CMGL: 1,0,,") and pdu.decode(clean[1]).text == "noise"
    assert clean[-1] == "OK"


def test_urc_storm_fault(make):
    sim, host = booted(make)
    sim.modem.deliver("+255700000001", "one")
    sim.modem.deliver("+255700000001", "two")
    sim.modem.set_faults(urc_storm=20)
    host.read_until(re.compile(rb"\^RSSI: 20\r\n"))     # unprompted
    answer = host.command("AT+CMGL=4")
    body = answer[:answer.rindex("OK")]
    inside = lines(body[body.index("+CMGL: 1"):])
    assert any(line.startswith(("^RSSI", "+CREG")) for line in inside[2:]), "inside responses"
    listed = [line for line in inside if line.startswith("+CMGL")]
    assert len(listed) == 2
    sim.modem.set_faults(urc_storm=0)


def test_baud_rate_pacing_still_talks(make):
    sim, host = make(baudrate=9600)
    assert host.command("ATE0") == "ATE0\r\r\nOK\r\n"
    hex_pdu, length = pdu.encode_submit("+255700000002", "slow line " * 10)
    assert "+CMGS:" in host.send_pdu(hex_pdu, length)


# -- timed behaviour on a hand-moved clock --------------------------------------------------

def send_sansio(modem, text="hello", **options):
    hex_pdu, length = pdu.encode_submit("+255700000002", text, **options)
    modem.feed(b"AT+CMGS=%d\r" % length)
    assert modem.data_to_send() == b"\r\n> "
    modem.feed(hex_pdu.encode() + b"\x1a")
    return modem.data_to_send()


def test_slow_cmgs_delays_the_answer_and_holds_input():
    modem, clock = sansio(slow_cmgs=5.0, network_delay=1.0)
    assert send_sansio(modem) == b""
    modem.feed(b"AT+CSQ\r")
    clock.now += 5.9
    assert modem.data_to_send() == b""
    assert 0 < modem.next_timer() <= 0.1 + 1e-9
    clock.now += 0.1
    assert modem.data_to_send() == b"\r\n+CMGS: 0\r\n\r\nOK\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n"


def test_cmms_keeps_the_link_up_between_parts():
    modem, clock = sansio(network_delay=2.0)
    modem.feed(b"AT+CMMS=1\r")
    modem.data_to_send()
    send_sansio(modem)
    clock.now += 2.0
    assert b"+CMGS: 0" in modem.data_to_send()
    assert send_sansio(modem) == b""
    clock.now += 1.0
    assert b"+CMGS: 1" in modem.data_to_send()


def test_sim_busy_window_ends_by_itself():
    modem, clock = sansio()
    modem.set_faults(sim_busy=3)
    assert at(modem, "AT+CMGL=4") == "\r\n+CME ERROR: 14\r\n"
    clock.now += 3
    assert at(modem, "AT+CMGL=4") == "\r\nOK\r\n"
    assert modem.faults()["sim_busy"] == 0


def test_hang_for_seconds_ends_by_itself():
    modem, clock = sansio()
    modem.set_faults(hang=2)
    assert at(modem, "AT") == ""
    clock.now += 2
    assert at(modem, "AT") == "\r\nOK\r\n"


def test_hang_during_cmgs_sends_but_never_answers():
    modem, clock = sansio(network_delay=1.0)
    send_sansio(modem)
    modem.set_faults(hang=True)
    clock.now += 1
    assert modem.data_to_send() == b""
    assert len(modem.sent_messages()) == 1, "the SMS went out; only the answer was lost"


def test_status_report_after_its_delay():
    modem, clock = sansio(report_delay=2.0)
    at(modem, "AT+CNMI=2,1,0,1,0")
    assert b"+CMGS: 0" in send_sansio(modem, status_report=True)
    clock.now += 1.9
    assert modem.data_to_send() == b""
    clock.now += 0.1
    assert modem.data_to_send().startswith(b"\r\n+CDS: ")


def test_cnma_timeout_redelivers_after_redelivery_delay():
    modem, clock = sansio(cnma_timeout=10, redelivery_delay=30, cnma_disables_routing=False)
    at(modem, "AT+CSMS=1;+CNMI=2,2,0,0,0")
    modem.deliver("+255700000001", "first")
    modem.deliver("+255700000001", "second")
    out = modem.data_to_send()
    assert out.count(b"+CMT:") == 1, "no second +CMT before the first is acknowledged"
    clock.now += 10
    assert modem.data_to_send().count(b"+CMT:") == 1, "the next one goes while the first waits"
    assert at(modem, "AT+CNMA") == "\r\nOK\r\n"
    clock.now += 30
    again = modem.data_to_send()
    assert again.count(b"+CMT:") == 1
    assert pdu.decode(again.split(b"\r\n")[2].decode()).text == "first"


def test_cnma_nack_asks_the_network_to_retry():
    modem, clock = sansio(redelivery_delay=5)
    at(modem, "AT+CSMS=1;+CNMI=2,2,0,0,0")
    modem.deliver("+255700000001", "nack")
    assert b"+CMT:" in modem.data_to_send()
    assert at(modem, "AT+CNMA=2") == "\r\nOK\r\n"
    clock.now += 5
    assert b"+CMT:" in modem.data_to_send()


def test_cfun_reset_interrupts_nothing_of_the_network():
    modem, clock = sansio(reset_time=1.0, report_delay=2.0)
    at(modem, "AT+CNMI=2,1,0,2,0")
    send_sansio(modem, status_report=True)
    assert at(modem, "AT+CFUN=1,1") == "\r\nOK\r\n"
    assert at(modem, "AT") == "", "away while it restarts"
    clock.now += 1.0
    assert modem.data_to_send() == b"\r\n+CPIN: READY\r\n"
    clock.now += 1.0
    modem.data_to_send()
    assert modem.state()["storage"]["SM"]["used"] == 1, "the report was stored (CNMI reset)"


# -- the command line and the byte stream -------------------------------------------------

def test_parse_command_line():
    assert parse_command_line("E0V1") == [("E", "exec", "0"), ("V", "exec", "1")]
    assert parse_command_line('+CMGF=0;+CPMS="SM","ME";+CSQ') == [
        ("+CMGF", "set", "0"), ("+CPMS", "set", '"SM","ME"'), ("+CSQ", "exec", "")]
    assert parse_command_line("+CNMI=?;+CNMI?") == [("+CNMI", "test", ""), ("+CNMI", "read", "")]
    assert parse_command_line('+CSCA="+255;1"') == [("+CSCA", "set", '"+255;1"')]
    assert parse_command_line("&FS0=0S7?") == [("&F", "exec", ""), ("S", "set", "0=0"),
                                               ("S", "read", "7")]
    assert parse_command_line("") == []


SCRIPT = (b"AT\rATE0\rAT+CMEE=1\rAT+CSQ;+CGMI\rAT+CMGF=0\rAT+CMGL=4\rAT+BOGUS\r"
          b"AT+CMGS=19\r079152750900000011000C915275000000200000FF05E8329BFD06\x1a"
          b"AT+CMGR=1\rAT+CMGD=1\rAT+CPMS?\r")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(SCRIPT)), max_size=20))
def test_any_chunking_gives_the_same_bytes(cuts):
    def run(chunks):
        modem = SimulatedModem(clock=lambda: 0.0, now=lambda: FIXED_TIME, seed=1)
        modem.deliver("+255700000001", "stored one")
        out = b""
        for chunk in chunks:
            modem.feed(chunk)
            out += modem.data_to_send()
        return out, modem.sent_messages()
    points = sorted(set(cuts))
    chunks = [SCRIPT[a:b] for a, b in zip([0] + points, points + [len(SCRIPT)]) if SCRIPT[a:b]]
    assert run(chunks) == run([SCRIPT])


# -- the control API ------------------------------------------------------------------------

def test_control_api_over_http(make):
    sim, host = booted(make, control="127.0.0.1:0")
    base = sim.control_url
    assert base.startswith("http://127.0.0.1:")
    host.command("AT+CNMI=2,1,0,0,0")
    r = requests.post(base + "/inbound", json={"from": "+255700000001",
                                                "text": "Habari " + "x" * 200}, timeout=5)
    assert r.status_code == 200 and r.json()["parts"] == 2 and len(r.json()["pdus"]) == 2
    host.read_until(re.compile(rb'\+CMTI: "SM",2\r\n'))
    state = requests.get(base + "/state", timeout=5).json()
    assert state["storage"]["SM"]["used"] == 2
    assert state["storage"]["SM"]["messages"][0]["stat"] == "REC UNREAD"

    host.send_pdu(*pdu.encode_submit("+255700000002", "over http", status_report=True))
    sent = requests.get(base + "/sent", timeout=5).json()
    assert [(s["to"], s["text"], s["parts"], s["status_report"]) for s in sent] == [
        ("+255700000002", "over http", 1, True)]
    assert isinstance(sent[0]["reference"], int)
    assert requests.delete(base + "/sent", timeout=5).json() == []
    assert requests.get(base + "/sent", timeout=5).json() == []

    r = requests.post(base + "/faults", json={"sim_busy": 20, "noise": 0}, timeout=5)
    assert r.status_code == 200 and 0 < r.json()["sim_busy"] <= 20
    assert lines(host.command("AT+CMGL=4")) == ["+CME ERROR: 14"]
    assert requests.post(base + "/faults", json={"sim_busy": 0}, timeout=5).ok
    assert requests.get(base + "/faults", timeout=5).json()["sim_busy"] == 0

    r = requests.post(base + "/inbound", json={"pdu": "0791527509000000040C915275"}, timeout=5)
    assert r.status_code == 200


def test_control_api_refuses_bad_requests(make):
    sim, _ = make(control="127.0.0.1:0")
    base = sim.control_url
    assert requests.post(base + "/faults", json={"melt": 1}, timeout=5).status_code == 400
    assert requests.post(base + "/faults", json={"noise": 2}, timeout=5).status_code == 400
    assert requests.post(base + "/faults", json={"storage_full": "yes"},
                         timeout=5).status_code == 400
    assert requests.post(base + "/inbound", json={"text": "no sender"},
                         timeout=5).status_code == 400
    assert requests.post(base + "/inbound", json={"pdu": "XYZ"}, timeout=5).status_code == 400
    assert requests.post(base + "/inbound", data=b"not json", timeout=5).status_code == 400
    assert requests.get(base + "/nothing", timeout=5).status_code == 404


def test_control_api_is_loopback_only(tmp_path):
    for address in ("0.0.0.0:0", "192.0.2.1:8080", "[::]:0"):
        with pytest.raises(ValueError):
            loopback_address(address)
    with pytest.raises(ValueError):
        start_simulator(str(tmp_path / "modem"), control="0.0.0.0:0")
    assert not os.path.lexists(tmp_path / "modem")
    assert loopback_address("localhost:0")[1] == 0
    assert loopback_address("[::1]:13014")[:2] == ("::1", 13014)


def test_a_stale_link_is_replaced_and_a_real_file_is_not(tmp_path):
    link = tmp_path / "modem"
    os.symlink("/dev/pts/nonexistent", link)
    with start_simulator(str(link)) as sim:
        assert os.readlink(link) == sim.port.device
    assert not os.path.lexists(link), "stop removes the link"
    link.write_text("not a link")
    with pytest.raises(FileExistsError):
        start_simulator(str(link))
    assert link.read_text() == "not a link"


def test_simulate_command_runs_until_sigterm(tmp_path):
    link = tmp_path / "modem"
    proc = subprocess.Popen([sys.executable, "-m", "gsmbridge", "simulate", "--link", str(link),
                             "--control", "127.0.0.1:0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        url = re.search(r"control (http://127\.0\.0\.1:\d+)", banner).group(1)
        assert requests.get(url + "/state", timeout=5).json()["state"] == "command"
        host = Host(str(link))
        assert host.command("AT") == "AT\r\r\nOK\r\n"
        host.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert not os.path.lexists(link)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_text_mode_lists_a_message_whose_timestamp_does_not_decode():
    modem, _ = sansio()
    good, _ = pdu.encode_deliver("+255700000009", "bad clock", timestamp=datetime(
        2026, 11, 28, 12, 0, tzinfo=timezone.utc))
    # SMSC "00", first octet, sender (0C 91 + 6 octets), PID, DCS, then the SCTS: month 13.
    scts = 2 + 2 + 2 + 2 + 12 + 2 + 2
    bad = good[:scts + 2] + "31" + good[scts + 4:]
    assert pdu.decode(bad).timestamp is None
    modem.deliver_pdu(bad)
    at(modem, "AT+CMGF=1")
    listing = at(modem, 'AT+CMGL="ALL"')
    assert "bad clock" in listing and listing.rstrip().endswith("OK")

"""The simulated modem's SIM services: identity, USSD in each style real modems use, incoming
calls; driven as a real modem is, with pyserial on its pseudo-terminal, and the network played
over the control API on 127.0.0.1.

Replies are read with the bridge's own codec (gsmbridge.codec.ussd), which was checked against
real modems' logs on its own (test_ussd_codec.py); timings are checked on the sans-I/O
`SimulatedModem` with a hand-moved clock, so no test depends on how fast the machine is.
"""

import json
import re
import subprocess
import sys

import pytest
import requests
from hypothesis import given, settings, strategies as st

from clock import Clock
from gsmbridge.codec import pdu, ussd
from gsmbridge.simulator.machine import SimulatedModem
from test_simulator import FINAL, Host, at, booted, lines, make, sansio  # noqa: F401 (make: a fixture)

CUSD = re.compile(rb'\r\n\+CUSD: \d+(?:,"[^"]*",\d+)?\r\n')
NO_CARRIER = re.compile(rb"\r\nNO CARRIER\r\n")


def next_cusd(host, charset="IRA", packed=None, timeout=5.0):
    """Wait for the next +CUSD result code and read it as the bridge would."""
    raw = host.read_until(CUSD, timeout).decode("latin-1")
    line = raw[raw.index("+CUSD:"):].rstrip("\r\n")
    return ussd.parse(line, charset=charset, packed=packed)


def ussd_command(host, code, **encoding):
    """AT+CUSD=1,"<code>",15 as the codec writes it; the modem's answer to the command."""
    return host.command(ussd.request(code, **encoding))


def fast(**options):
    options.setdefault("ussd_delay", 0.05)
    return options


# -- identity -------------------------------------------------------------------------------------

def test_identity_in_every_form_real_modems_use(make):
    _, host = booted(make, imei="352099001761481", imsi="640021234567890",
                     iccid="89255021234567890123", own_number="+255712345678")
    assert lines(host.command("AT+CGSN")) == ["352099001761481", "OK"]
    assert lines(host.command("AT+CIMI")) == ["640021234567890", "OK"]
    iccid = "89255021234567890123"
    for command, line in (("AT+CCID", "+CCID: "), ("AT+CCID?", "+CCID: "),
                          ("AT+ICCID", "+ICCID: "), ("AT+CICCID", "+ICCID: "),
                          ("AT^ICCID?", "^ICCID: "), ("AT+QCCID", "+QCCID: "),
                          ("AT#CCID", "#CCID: ")):
        assert lines(host.command(command)) == [line + iccid, "OK"], command
    # 27.007's own way: READ BINARY of EF_ICCID, the BCD digits swapped as the SIM keeps them
    assert lines(host.command("AT+CRSM=176,12258,0,0,10")) == [
        '+CRSM: 144,0,"98520512325476981032"', "OK"]
    assert lines(host.command("AT+CRSM=176,28423,0,0,9")) == ["+CRSM: 106,130", "OK"]
    assert lines(host.command("AT+CNUM")) == ['+CNUM: "","+255712345678",145', "OK"]
    assert lines(host.command("AT^ICCID")) == ["ERROR"], "Huawei's is a read command"


def test_an_odd_length_iccid_is_f_padded_in_the_sim_record(make):
    _, host = booted(make, iccid="8925504000000000019")
    assert lines(host.command("AT+CRSM=176,12258,0,0,10")) == [
        '+CRSM: 144,0,"985205040000000010F9"', "OK"]


def test_no_own_number_is_just_ok(make):
    _, host = booted(make)
    assert lines(host.command("AT+CNUM")) == ["OK"]


def test_iccid_before_the_pin_and_cnum_after_it(make):
    _, host = booted(make, pin="1234", own_number="0712345678")
    assert lines(host.command("AT+CCID")) == ["+CCID: 8925504000000000019", "OK"]
    assert lines(host.command("AT+CNUM")) == ["+CME ERROR: 11"]
    assert lines(host.command("AT+CIMI")) == ["+CME ERROR: 11"]
    host.command('AT+CPIN="1234"')
    assert lines(host.command("AT+CNUM")) == ['+CNUM: "","0712345678",129', "OK"]


def test_bad_identity_options_are_refused(tmp_path):
    for options in ({"imei": "12"}, {"imsi": "64004x"}, {"iccid": "89"},
                    {"own_number": "call me"}):
        with pytest.raises(ValueError, match=next(iter(options))):
            SimulatedModem(**options)


# -- USSD: the standard modem ---------------------------------------------------------------------

def test_balance_in_plain_text(make):
    sim, host = booted(make, **fast(control="127.0.0.1:0"))
    assert lines(ussd_command(host, "*102#")) == ["OK"], "OK first, the network's reply later"
    reply = next_cusd(host)
    assert (reply.status, reply.text, reply.dcs, reply.encoding) == (
        0, "Your balance is 1234.50 TZS", 15, "text")
    r = requests.post(sim.control_url + "/ussd", json={"balance": 17.25, "currency": "KES"},
                      timeout=5)
    assert r.status_code == 200 and r.json()["balance"] == 17.25
    ussd_command(host, "*102#")
    assert next_cusd(host).text == "Your balance is 17.25 KES"
    asked = requests.get(sim.control_url + "/ussd/requests", timeout=5).json()
    assert [(a["code"], a["raw"], a["dcs"], a["status"]) for a in asked] == [
        ("*102#", "*102#", 15, 0), ("*102#", "*102#", 15, 0)]
    assert asked[1]["reply"] == "Your balance is 17.25 KES"
    assert requests.delete(sim.control_url + "/ussd/requests", timeout=5).json() == []


def test_menu_and_its_answers(make):
    _, host = booted(make, **fast())
    ussd_command(host, "*100#")
    menu = next_cusd(host)
    assert (menu.status, menu.more, menu.text) == (1, True, "1. Balance\n2. Bundles")
    ussd_command(host, "1")
    answer = next_cusd(host)
    assert (answer.status, answer.text) == (0, "Your balance is 1234.50 TZS")

    ussd_command(host, "*100#")
    assert next_cusd(host).more
    ussd_command(host, "2")
    bundles = next_cusd(host)
    assert bundles.more and bundles.text.startswith("Bundles:\n1. Daily 500MB")
    ussd_command(host, "2")
    assert next_cusd(host).text == "You have bought Weekly 2GB."

    ussd_command(host, "*100#")
    next_cusd(host)
    ussd_command(host, "7")
    wrong = next_cusd(host)
    assert (wrong.status, wrong.name, wrong.text) == (4, "not-supported", None)
    ussd_command(host, "1")
    assert next_cusd(host).status == 4, "the session ended: a lone '1' is no service code"


def test_a_menu_spans_lines_on_the_wire(make):
    _, host = booted(make, **fast())
    ussd_command(host, "*100#")
    raw = host.read_until(CUSD)
    assert b'+CUSD: 1,"1. Balance\n2. Bundles",15\r\n' in raw
    first_line = raw.decode().strip().split("\n")[0]
    assert ussd.incomplete(first_line)


@pytest.mark.parametrize("code, status, name", [
    ("*103#", 2, "ended"), ("*999#", 4, "not-supported"), ("*104#", 5, "timeout")])
def test_status_codes_without_text(make, code, status, name):
    _, host = booted(make, **fast())
    assert lines(ussd_command(host, code)) == ["OK"]
    raw = host.read_until(CUSD)
    assert raw.endswith(b"\r\n+CUSD: %d\r\n" % status), "no text at all, not even a comma"
    reply = ussd.parse(raw.decode().strip())
    assert (reply.status, reply.name, reply.text) == (status, name, None)


def test_a_ucs2_charset_gets_ucs2_hex_under_dcs_15(make):
    _, host = booted(make, **fast())
    host.command('AT+CSCS="UCS2"')
    assert lines(ussd_command(host, "*102#", charset="UCS2")) == ["OK"]
    raw = host.read_until(CUSD).decode()
    assert '"0059006F0075' in raw and raw.rstrip().endswith(",15"), "misleading dcs 15"
    assert next_reply(raw, charset="UCS2").text == "Your balance is 1234.50 TZS"


def next_reply(raw, **options):
    return ussd.parse(raw[raw.index("+CUSD:"):].rstrip("\r\n"), **options)


def test_gsm_charset_request_and_reply(make):
    sim, host = booted(make, **fast(own_number="+255712345678"))
    host.command('AT+CSCS="GSM"')
    ussd_command(host, "*106#", charset="GSM")
    assert next_cusd(host, charset="GSM").text == "Your number is +255712345678"


def test_presentation_off_means_no_result_code(make):
    clock = Clock(1000.0)
    _, host = booted(make, clock=clock, **fast())
    assert lines(host.command("AT+CUSD?")) == ["+CUSD: 0", "OK"]
    assert lines(host.command('AT+CUSD=0,"*102#",15')) == ["OK"]
    clock.now += 60                                  # long past the reply's delay
    assert b"+CUSD" not in host.settle()
    assert lines(host.command("AT+CUSD=1")) == ["OK"]
    assert lines(host.command("AT+CUSD?;+CUSD=?")) == ["+CUSD: 1", "+CUSD: (0-2)", "OK"]


def test_cancel_ends_the_session_and_drops_a_late_reply(make):
    clock = Clock(1000.0)
    sim, host = booted(make, clock=clock, **fast(control="127.0.0.1:0"))
    ussd_command(host, "*100#")
    clock.now += 1
    assert next_cusd(host).more
    assert lines(host.command("AT+CUSD=2")) == ["OK"]
    ussd_command(host, "1")
    clock.now += 1
    assert next_cusd(host).status == 4
    requests.post(sim.control_url + "/ussd", json={"delay": 0.5}, timeout=5)
    ussd_command(host, "*102#")
    assert lines(host.command("AT+CUSD=2")) == ["OK"]
    clock.now += 60                                  # long past the reply's delay
    assert b"+CUSD" not in host.settle(), "the cancelled reply never comes"
    asked = requests.get(sim.control_url + "/ussd/requests", timeout=5).json()
    assert [a.get("code", "cancel" if a.get("cancel") else None) for a in asked] == [
        "*100#", "cancel", "1", "*102#", "cancel"]


def test_one_request_at_a_time(make):
    _, host = booted(make, ussd_delay=0.5)
    ussd_command(host, "*102#")
    assert lines(ussd_command(host, "*100#")) == ["+CME ERROR: 3"]
    assert next_cusd(host).status == 0


def test_no_network_no_ussd(make):
    sim, host = booted(make, **fast(pin="1234"))
    assert lines(ussd_command(host, "*102#")) == ["+CME ERROR: 11"]
    host.command('AT+CPIN="1234"')
    sim.modem.set_faults(registration=0)
    assert lines(ussd_command(host, "*102#")) == ["+CME ERROR: 30"]
    sim.modem.set_faults(registration=1)
    ussd_command(host, "*102#")
    assert next_cusd(host).status == 0


# -- USSD: the other styles -----------------------------------------------------------------------

def test_ucs2_style_answers_in_ucs2_hex_with_dcs_72(make):
    _, host = booted(make, **fast(ussd_style="ucs2", currency="EUR"))
    ussd_command(host, "*102#")
    reply = next_cusd(host)
    assert (reply.dcs, reply.encoding, reply.text) == (72, "ucs2", "Your balance is 1234.50 EUR")
    ussd_command(host, "*100#")
    assert next_cusd(host).text == "1. Balance\n2. Bundles"


def test_packed_style_is_a_huawei(make):
    _, host = booted(make, **fast(ussd_style="packed"))
    assert lines(host.command('AT+CUSD=1,"AA180C3602",15')) == ["OK"]    # *100#, packed
    raw = host.read_until(CUSD).decode()
    menu_hex = raw.split('"')[1]
    assert re.fullmatch(r"[0-9A-F]+", menu_hex), "the reply is packed hex too"
    menu = next_reply(raw)          # recognised as packed without being told
    assert (menu.encoding, menu.status, menu.text) == ("packed", 1, "1. Balance\n2. Bundles")
    ussd_command(host, "1", packed=True)
    assert next_cusd(host, packed=True).text == "Your balance is 1234.50 TZS"
    # a request that is not packed: such a modem says ERROR
    assert lines(ussd_command(host, "*102#")) == ["ERROR"]
    # even under AT+CSCS="UCS2" the packed modem packs, as gammu's log of an E173 shows
    host.command('AT+CSCS="UCS2"')
    ussd_command(host, "*102#", packed=True)
    assert next_cusd(host, charset="UCS2").text == "Your balance is 1234.50 TZS"


def test_early_style_puts_the_reply_before_the_ok(make):
    # No delay: a second +CUSD after the OK would be due at once, so it would come before the
    # answer to the AT that settle() sends.
    _, host = booted(make, ussd_early=True, ussd_delay=0.0)
    answer = ussd_command(host, "*102#")
    assert lines(answer) == ['+CUSD: 0,"Your balance is 1234.50 TZS",15', "OK"]
    answer = ussd_command(host, "*103#")
    assert lines(answer) == ["+CUSD: 2", "OK"]
    assert b"+CUSD" not in host.settle(), "nothing more after the OK"


def test_slow_reply_comes_after_the_ok(make):
    _, host = booted(make, ussd_delay=1.0)
    assert lines(ussd_command(host, "*102#")) == ["OK"]
    assert lines(host.command("AT+CSQ")) == ["+CSQ: 20,99", "OK"], "the line is free meanwhile"
    assert next_cusd(host, timeout=10).text == "Your balance is 1234.50 TZS"


def test_a_reply_waits_for_an_sms_send_in_flight(make):
    """The +CUSD falls due while the host is between "> " and the end of +CMGS's answer: it
    comes after that answer, whole, and the SMS goes out intact."""
    clock = Clock(1000.0)
    sim, host = booted(make, clock=clock, ussd_delay=0.2, slow_cmgs=0.6)
    ussd_command(host, "*102#")
    hex_pdu, length = pdu.encode_submit("+255700000002", "sent while USSD was on its way")
    host.write(b"AT+CMGS=%d\r" % length)
    host.read_until(re.compile(rb"\r\n> "))
    clock.now += 1                                   # the reply falls due while the host types
    sim.modem.tick()
    host.write(hex_pdu.encode() + b"\x1a")
    for _ in range(50):                              # past slow_cmgs, however late the PDU is read
        clock.now += 1
        try:
            answer = host.read_until(FINAL, timeout=0.1).decode()   # all it said since "> "
            break
        except AssertionError:
            continue
    assert lines(answer)[0].startswith("+CMGS: ") and "+CUSD" not in answer
    assert next_cusd(host).text == "Your balance is 1234.50 TZS"
    [sent] = sim.modem.sent_messages()
    assert sent["text"] == "sent while USSD was on its way"


def test_menu_from_the_command_line_file(tmp_path):
    menu = {"*150#": {"text": "M-Pesa\n1. Send money", "options": {
        "1": {"text": "Sent.", "delay": 0.05}}}, "*152#": {"status": 2,
                                                         "text": "Initiating Release"}}
    menu_file = tmp_path / "menu.json"
    menu_file.write_text(json.dumps(menu))
    link = tmp_path / "modem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gsmbridge", "simulate", "--link", str(link), "--control",
         "127.0.0.1:0", "--ussd-menu", str(menu_file), "--ussd-delay", "0.05", "--imei",
         "352099001761481", "--own-number", "+255712345678", "--ussd-style", "ucs2",
         "--balance", "99.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"control (http://127\.0\.0\.1:\d+)", proc.stdout.readline()).group(1)
        settings = requests.get(url + "/ussd", timeout=5).json()
        assert (settings["style"], settings["balance"]) == ("ucs2", 99.5)
        host = Host(str(link))
        host.command("ATE0")
        assert lines(host.command("AT+CGSN;+CNUM")) == [
            "352099001761481", '+CNUM: "","+255712345678",145', "OK"]
        ussd_command(host, "*150#")
        assert next_cusd(host).text == "M-Pesa\n1. Send money"
        ussd_command(host, "1")
        assert next_cusd(host).text == "Sent."
        ussd_command(host, "*152#")
        ended = next_cusd(host)
        assert (ended.name, ended.text) == ("ended", "Initiating Release")
        host.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_command_line_values_exit_naming_them(tmp_path):
    bad_menu = tmp_path / "menu.json"
    bad_menu.write_text(json.dumps({"*1#": {"status": 9}}))
    for flags, named in ((["--imei", "12"], "imei"), (["--ussd-menu", str(bad_menu)], "status"),
                         (["--ussd-menu", str(tmp_path / "absent.json")], "--ussd-menu"),
                         (["--ussd-style", "weird"], "--ussd-style")):
        proc = subprocess.run([sys.executable, "-m", "gsmbridge", "simulate", "--link",
                               str(tmp_path / "modem"), *flags], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode == 2 and named in proc.stderr, (flags, proc.stderr)


def test_ussd_control_api_refuses_bad_settings(make):
    sim, _ = make(control="127.0.0.1:0")
    base = sim.control_url
    for body in ({"style": "weird"}, {"delay": -1}, {"delay": "soon"}, {"balance": "lots"},
                 {"early": "yes"}, {"colour": "red"}, {"menu": {"*1#": {"status": 1}}},
                 {"menu": {"*1#": {"text": "x" * 500}}}, {"menu": ["*1#"]},
                 {"menu": {"*1#": {"options": {"1": {"bogus": 1}}}}}):
        r = requests.post(base + "/ussd", json=body, timeout=5)
        assert r.status_code == 400 and r.json()["error"], body
    assert requests.get(base + "/ussd", timeout=5).json()["style"] == "text", "nothing changed"
    deep = {"text": "end"}
    for _ in range(20):
        deep = {"text": "menu", "options": {"1": deep}}
    assert requests.post(base + "/ussd", json={"menu": {"*1#": deep}},
                         timeout=5).status_code == 400
    r = requests.post(base + "/ussd", data=b"{" + b" " * (2 << 20) + b"}", timeout=10)
    assert r.status_code == 413


# -- calls ----------------------------------------------------------------------------------------

def place(sim, number, **extra):
    return requests.post(sim.control_url + "/calls", json=dict({"from": number}, **extra),
                         timeout=5)


def calls(sim):
    return requests.get(sim.control_url + "/calls", timeout=5).json()


RING_CLIP = re.compile(rb"\r\nRING\r\n\r\n\+CLIP: [^\r]*\r\n")


def test_call_with_clip_rings_until_the_host_hangs_up(make):
    clock = Clock(1000.0)
    sim, host = booted(make, clock=clock, control="127.0.0.1:0", ring_interval=0.2)
    assert lines(host.command("AT+CLIP=1")) == ["OK"]
    assert lines(host.command("AT+CLIP?")) == ["+CLIP: 1,1", "OK"]
    r = place(sim, "+255700000001", rings=50)
    assert r.status_code == 200 and r.json()["state"] == "ringing"
    first = host.read_until(RING_CLIP)
    assert first.endswith(b'\r\nRING\r\n\r\n+CLIP: "+255700000001",145,,,,0\r\n')
    clock.now += 0.2
    host.read_until(RING_CLIP)                       # it rings again
    assert lines(host.command("AT+CPAS")) == ["+CPAS: 3", "OK"]
    assert lines(host.command("AT+CLCC")) == ['+CLCC: 1,1,4,0,0,"+255700000001",145', "OK"]
    assert place(sim, "+255700000009").status_code == 409, "one call at a time"
    assert lines(host.command("ATH")) == ["OK"]
    clock.now += 5                                   # many ring intervals
    assert b"RING" not in host.settle(), "no more RING after ATH"
    [call] = calls(sim)
    assert (call["from"], call["state"], call["ended_by"], call["answered"]) == (
        "+255700000001", "ended", "host", False)
    assert call["rings"] >= 2 and call["ended"]
    assert lines(host.command("AT+CPAS;+CLCC")) == ["+CPAS: 0", "OK"]


def test_call_without_clip_is_a_bare_ring_and_chup_ends_it(make):
    sim, host = booted(make, control="127.0.0.1:0", ring_interval=0.2)
    place(sim, "0700000001")
    out = host.read_until(re.compile(rb"\r\nRING\r\n"))
    assert b"+CLIP" not in out + host.settle()
    assert lines(host.command("AT+CHUP")) == ["OK"]
    assert calls(sim)[0]["ended_by"] == "host"


def test_national_and_withheld_numbers(make):
    sim, host = booted(make, control="127.0.0.1:0", ring_interval=0.2)
    host.command("AT+CLIP=1")
    place(sim, "0700000001")
    assert host.read_until(RING_CLIP).endswith(b'+CLIP: "0700000001",129,,,,0\r\n')
    host.command("ATH")
    place(sim, "")
    assert host.read_until(RING_CLIP).endswith(b'+CLIP: "",128,,,,1\r\n'), "CLI withheld"
    host.command("ATH")
    assert [c["type"] for c in calls(sim)] == [129, 128]


def test_crc_gives_cring(make):
    sim, host = booted(make, control="127.0.0.1:0", ring_interval=0.2)
    host.command("AT+CRC=1;+CLIP=1")
    place(sim, "+255700000001")
    out = host.read_until(re.compile(rb'\+CLIP: [^\r]*\r\n'))
    assert out.endswith(b'\r\n+CRING: VOICE\r\n\r\n+CLIP: "+255700000001",145,,,,0\r\n')
    assert b"\r\nRING\r\n" not in out
    host.command("ATH")


def test_the_caller_gives_up_after_n_rings(make):
    sim, host = booted(make, control="127.0.0.1:0", ring_interval=0.1)
    place(sim, "+255700000001", rings=3)
    out = host.read_until(NO_CARRIER)
    assert out.count(b"RING") == 3
    [call] = calls(sim)
    assert (call["rings"], call["ended_by"], call["answered"]) == (3, "caller", False)


def test_answer_then_the_caller_hangs_up(make):
    sim, host = booted(make, control="127.0.0.1:0", ring_interval=0.2)
    host.write(b"ATA\r")
    assert host.read_until(NO_CARRIER) == b"\r\nNO CARRIER\r\n", "no call to answer (V.250)"
    place(sim, "+255700000001")
    host.read_until(re.compile(rb"RING\r\n"))
    assert lines(host.command("ATA")) == ["OK"]
    assert lines(host.command("AT+CLCC;+CPAS")) == [
        '+CLCC: 1,1,0,0,0,"+255700000001",145', "+CPAS: 4", "OK"]
    r = requests.post(sim.control_url + "/calls/end", timeout=5)
    assert r.status_code == 200 and r.json()["ended_by"] == "caller"
    host.read_until(NO_CARRIER)
    assert calls(sim)[0]["answered"] is True
    assert requests.post(sim.control_url + "/calls/end", timeout=5).status_code == 409
    assert requests.delete(sim.control_url + "/calls", timeout=5).json() == []


def test_a_reset_drops_the_call_and_the_ussd_session(make):
    sim, host = booted(make, **fast(control="127.0.0.1:0", ring_interval=0.2))
    ussd_command(host, "*100#")
    assert next_cusd(host).more
    place(sim, "+255700000001")
    host.read_until(re.compile(rb"RING\r\n"))
    state = requests.post(sim.control_url + "/reset", timeout=5).json()
    assert state["call"] is None and state["ussd_session"] is None
    assert calls(sim)[0]["ended_by"] == "reset"


def test_calls_control_api_refuses_bad_requests(make):
    sim, _ = booted(make, control="127.0.0.1:0")
    for body in ({"from": "not a number"}, {"from": 255}, {}, {"from": "+1", "rings": 0},
                 {"from": "+1", "rings": "many"}, {"from": "+1", "colour": "red"}):
        r = requests.post(sim.control_url + "/calls", json=body, timeout=5)
        assert r.status_code == 400 and r.json()["error"], body
    sim.modem.set_faults(registration=0)
    assert place(sim, "+255700000001").status_code == 409, "an unregistered modem is unreachable"


# -- timing, on a hand-moved clock ----------------------------------------------------------------

def test_reply_comes_after_its_delay():
    modem, clock = sansio(ussd_delay=15.0)
    assert at(modem, 'AT+CUSD=1,"*102#",15') == "\r\nOK\r\n"
    clock.now += 14.9
    assert modem.data_to_send() == b""
    assert 0 < modem.next_timer() <= 0.1 + 1e-9
    clock.now += 0.1
    assert modem.data_to_send() == b'\r\n+CUSD: 0,"Your balance is 1234.50 TZS",15\r\n'


def test_early_reply_holds_the_command_and_the_input_behind_it():
    modem, clock = sansio(ussd_delay=10.0, ussd_early=True)
    assert at(modem, 'AT+CUSD=1,"*102#",15') == ""
    assert at(modem, "AT+CSQ") == "", "input waits"
    clock.now += 10.0
    assert modem.data_to_send() == (b'\r\n+CUSD: 0,"Your balance is 1234.50 TZS",15\r\n'
                                    b"\r\nOK\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n")


def test_an_unanswered_menu_is_released_by_the_network():
    modem, clock = sansio(ussd_delay=1.0, ussd_session_timeout=30.0)
    at(modem, 'AT+CUSD=1,"*100#",15')
    clock.now += 1.0
    assert modem.data_to_send().startswith(b'\r\n+CUSD: 1,"1. Balance')
    clock.now += 29.9
    assert modem.data_to_send() == b""
    clock.now += 0.1
    assert modem.data_to_send() == b"\r\n+CUSD: 2\r\n"
    assert modem.ussd_requests()[-1]["expired"] is True
    at(modem, 'AT+CUSD=1,"1",15')
    clock.now += 1.0
    assert modem.data_to_send() == b"\r\n+CUSD: 4\r\n"


def test_an_answered_menu_is_not_released():
    modem, clock = sansio(ussd_delay=1.0, ussd_session_timeout=5.0)
    at(modem, 'AT+CUSD=1,"*100#",15')
    clock.now += 4.0
    modem.data_to_send()
    at(modem, 'AT+CUSD=1,"2",15')
    clock.now += 1.0
    assert modem.data_to_send().startswith(b'\r\n+CUSD: 1,"Bundles')
    clock.now += 3.0
    assert modem.data_to_send() == b"", "the first menu's timer is void"
    clock.now += 3.0
    assert modem.data_to_send() == b"\r\n+CUSD: 2\r\n", "the second menu's runs out"


def test_per_node_delay():
    modem, clock = sansio(ussd_delay=1.0, ussd_menu={"*5#": {"status": 5, "delay": 20}})
    at(modem, 'AT+CUSD=1,"*5#",15')
    clock.now += 19.0
    assert modem.data_to_send() == b""
    clock.now += 1.0
    assert modem.data_to_send() == b"\r\n+CUSD: 5\r\n"


def test_rings_every_interval_until_the_caller_gives_up():
    modem, clock = sansio(ring_interval=4.0, rings=3)
    at(modem, "AT+CLIP=1")
    modem.place_call("+255700000001")
    ring = b'\r\nRING\r\n\r\n+CLIP: "+255700000001",145,,,,0\r\n'
    assert modem.data_to_send() == ring
    clock.now += 3.9
    assert modem.data_to_send() == b""
    clock.now += 0.1
    assert modem.data_to_send() == ring
    clock.now += 4.0
    assert modem.data_to_send() == ring
    clock.now += 4.0
    assert modem.data_to_send() == b"\r\nNO CARRIER\r\n"
    assert modem.calls_made()[0]["ended_by"] == "caller"


def test_a_ring_waits_for_a_command_in_flight():
    modem, clock = sansio(network_delay=2.0, ring_interval=4.0)
    hex_pdu, length = pdu.encode_submit("+255700000002", "hello")
    modem.feed(b"AT+CMGS=%d\r" % length)
    assert modem.data_to_send() == b"\r\n> "
    modem.place_call("+255700000001")
    assert modem.data_to_send() == b"", "no RING in the middle of the prompt"
    modem.feed(hex_pdu.encode() + b"\x1a")
    assert modem.data_to_send() == b""
    clock.now += 2.0
    assert modem.data_to_send() == b"\r\n+CMGS: 0\r\n\r\nOK\r\n\r\nRING\r\n"


def test_ring_interval_and_rings_are_checked():
    for options in ({"ring_interval": 0}, {"rings": 0}, {"ussd_style": "fancy"},
                    {"ussd_delay": -1}, {"ussd_menu": {"*1#": 5}}):
        with pytest.raises(ValueError):
            SimulatedModem(**options)


COMMANDS = ["AT+CUSD=", "AT+CUSD", "AT+CRSM=", "AT+CLIP=", "AT+CRC=", "ATA", "ATH", "AT+CHUP",
            "AT+CLCC", "AT^ICCID", "AT+CNUM", 'AT+CSCS="UCS2";+CUSD=', 'AT+CSCS="GSM";+CUSD=']


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["text", "ucs2", "packed"]), st.booleans(),
       st.lists(st.tuples(st.sampled_from(COMMANDS), st.text(max_size=30),
                          st.floats(0, 3)), max_size=12))
def test_any_arguments_get_an_answer_and_never_break_the_modem(style, early, script):
    modem, clock = sansio(ussd_style=style, ussd_early=early, ussd_delay=1.0, ring_interval=1.0)
    modem.place_call("+255700000001", rings=3)
    for command, argument, wait in script:
        line = (command + argument).encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")
        modem.feed(line + b"\r")
        clock.now += wait
        modem.data_to_send()
    clock.now += 60.0
    modem.data_to_send()
    at(modem, "ATQ0V1")          # a random argument may have chained V0 or Q1 onto a command
    assert at(modem, "AT").endswith("OK\r\n"), "still answering after all that"

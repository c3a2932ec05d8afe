"""The driver's SIM services over real pseudo-terminals: USSD in each style the simulated modem
has (and habits of real modems it has not, from scripted responders), SIM identity, finding a
modem by its IMEI, and incoming calls.
"""

import logging
import os
import threading
import time

import pytest

from gsmbridge.codec import ussd as codec
from gsmbridge.modem import locate
from gsmbridge.modem.errors import ModemGone
from gsmbridge.simulator.identity import swapped_bcd
from test_driver import DEFAULT_RULES, driver, scripted, simulator  # noqa: F401 (fixtures)

ALICE = "+255700000001"
BALANCE = "Your balance is 1234.50 TZS"


def boot(driver, sim, **options):
    options.setdefault("ussd_timeout", 5.0)
    return driver(sim.link, **options).boot()


# --- USSD against the simulated modem --------------------------------------------------------

@pytest.mark.parametrize("style", ["text", "ucs2", "packed"])
def test_each_style_answers_the_balance_and_walks_a_menu(simulator, driver, style):
    sim = simulator(ussd_style=style, ussd_delay=0.2)
    modem = boot(driver, sim)
    answer = modem.ussd("*102#")
    assert (answer.status, answer.text, answer.error) == ("done", BALANCE, None)
    assert answer.reply.encoding == {"text": "text", "ucs2": "ucs2", "packed": "packed"}[style]
    menu = modem.ussd("*100#")
    assert (menu.status, menu.text) == ("more", "1. Balance\n2. Bundles")
    assert modem.ussd_session_open
    bundles = modem.ussd("2")
    assert (bundles.status, bundles.text) == ("more", "Bundles:\n1. Daily 500MB\n2. Weekly 2GB")
    bought = modem.ussd("2")
    assert (bought.status, bought.text) == ("done", "You have bought Weekly 2GB.")
    assert not modem.ussd_session_open
    asked = [r["code"] for r in sim.modem.ussd_requests() if "code" in r]
    assert asked == ["*102#", "*100#", "2", "2"], "the network understood every request"


def test_a_packed_modem_is_asked_packed_after_it_refuses_text(simulator, driver, caplog):
    sim = simulator(ussd_style="packed", ussd_delay=0.1)
    modem = boot(driver, sim)
    with caplog.at_level(logging.INFO, logger="gsmbridge.modem"):
        assert modem.ussd("*102#").text == BALANCE
        assert modem.ussd("*102#").text == BALANCE
    assert [r["raw"] for r in sim.modem.ussd_requests()] == [codec.pack("*102#")] * 2
    refused = [r for r in caplog.records if "refused and taken packed" in r.getMessage()]
    assert len(refused) == 1, "text was tried once, then packed only"


def test_a_huawei_is_asked_packed_from_the_first_request(simulator, driver, caplog):
    sim = simulator(ussd_style="packed", ussd_delay=0.1, manufacturer="huawei", model="E173")
    modem = boot(driver, sim)
    with caplog.at_level(logging.INFO, logger="gsmbridge.modem"):
        assert modem.ussd("*102#").text == BALANCE
    assert [r["raw"] for r in sim.modem.ussd_requests()] == [codec.pack("*102#")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("a Huawei modem: USSD packed" in m for m in messages)
    assert not any("refused" in m for m in messages), "never asked in text"


def test_ucs2_encoding_sets_cscs_for_the_request_and_back(simulator, driver):
    sim = simulator(ussd_style="text", ussd_delay=0.1)
    modem = boot(driver, sim, ussd_encoding="ucs2")
    assert modem.ussd("*102#").text == BALANCE
    [request] = sim.modem.ussd_requests()
    assert request["raw"] == "*102#".encode("utf-16-be").hex().upper()
    assert sim.modem.state()["settings"]["cscs"] == "IRA", "the charset was put back"
    assert modem.network().operator == "SimTel", "operator names read in IRA again"


def test_the_reply_before_the_ok_is_answered_at_once(simulator, driver):
    sim = simulator(ussd_early=True, ussd_delay=0.5)
    modem = boot(driver, sim)
    answer = modem.ussd_start("*100#")
    assert answer is not None, "the modem held AT+CUSD until the network answered"
    assert (answer.status, answer.text) == ("more", "1. Balance\n2. Bundles")
    assert modem.ussd_start("1").text == BALANCE


@pytest.mark.parametrize("code, status, error", [
    ("*103#", "failed", "the network ended the session without an answer"),      # +CUSD: 2
    ("*999#", "failed", "the network does not support this request (a wrong code?)"),  # 4
    ("*104#", "timeout", "the network timed out"),                                  # +CUSD: 5
])
def test_cusd_2_4_5_without_text(simulator, driver, code, status, error):
    modem = boot(driver, simulator(ussd_delay=0.1))
    answer = modem.ussd(code)
    assert (answer.status, answer.text, answer.error) == (status, None, error)
    assert not modem.ussd_session_open


def test_sms_keep_flowing_while_a_slow_reply_is_on_its_way(simulator, driver):
    sim = simulator(ussd_delay=2.5)
    modem = boot(driver, sim)
    assert modem.ussd_start("*102#") is None, "the reply comes after the OK"
    for i in range(3):
        modem.send_sms(ALICE, "while we wait %d" % i)
        assert modem.ussd_answer() is None, "the reply is still on its way"
    answer = None
    while answer is None:
        modem.poll(0.2)
        answer = modem.ussd_answer()
    assert (answer.status, answer.text) == ("done", BALANCE)
    assert [m["text"] for m in sim.modem.sent_messages()] == [
        "while we wait %d" % i for i in range(3)]


def test_no_reply_at_all_times_out_and_ends_the_session(simulator, driver):
    sim = simulator(ussd_delay=30)
    modem = boot(driver, sim, ussd_timeout=5.0)
    answer = modem.ussd("*102#")
    assert (answer.status, answer.error) == ("timeout", "no reply within 5 s")
    assert sim.modem.ussd_requests()[-1].get("cancel"), "AT+CUSD=2 ended it"


def test_the_network_ending_an_open_menu_is_noticed(simulator, driver):
    sim = simulator(ussd_delay=0.1, ussd_session_timeout=0.5)
    modem = boot(driver, sim)
    assert modem.ussd("*100#").status == "more"
    deadline = time.monotonic() + 5
    while modem.ussd_session_open and time.monotonic() < deadline:
        modem.poll(0.2)
    assert not modem.ussd_session_open and modem.ussd_ended_by_network()


# --- USSD habits of real modems, from scripted responders --------------------------------------

def scripted_modem(scripted, driver, rules, **options):
    responder = scripted(rules)
    options.setdefault("ussd_timeout", 3.0)
    modem = driver(responder.path, **options).boot()
    return responder, modem


def later(responder, delay, data):
    threading.Timer(delay, responder.modem.push, [data]).start()


def test_quectel_cme_error_after_the_ok_is_the_request_failing(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [(r"AT\+CUSD=1,.*", b"\r\nOK\r\n")])
    assert modem.ussd_start("*102#") is None
    later(responder, 0.3, b"\r\n+CME ERROR: 100\r\n")
    answer = None
    while answer is None:
        modem.poll(0.1)
        answer = modem.ussd_answer()
    assert (answer.status, answer.error) == ("failed", "the modem said +CME ERROR: 100"), \
        "not left to time out"


@pytest.mark.parametrize("urc, status, text, error", [
    (b'+CUSD: 2,"Initiating Release",15', "failed", "Initiating Release",
     "the network ended the session without an answer"),
    (b'+CUSD: 2,"Salio lako ni 500",15', "done", "Salio lako ni 500", None),
    (b'+CUSD: 6', "failed", None, "the modem answered +CUSD: 6"),
    (b'+CUSD: 3', "failed", None, "another client of the modem answered"),
])
def test_what_cusd_2_and_odd_codes_carry(scripted, driver, urc, status, text, error):
    responder, modem = scripted_modem(scripted, driver, [
        (r"AT\+CUSD=1,.*", b"\r\nOK\r\n\r\n" + urc + b"\r\n")])
    answer = modem.ussd("*102#")
    assert (answer.status, answer.text, answer.error) == (status, text, error)


def test_a_menu_that_arrives_inside_another_command_is_joined(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [
        (r"AT\+CUSD=1,.*", b"\r\nOK\r\n"),
        (r"AT\+CSQ", b'\r\n+CUSD: 1,"1. Salio\r\n2. Vifurushi",15\r\n'
                     b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n")] + DEFAULT_RULES)
    assert modem.ussd_start("*150#") is None
    assert modem.signal_strength() == 21, "+CSQ's answer is not taken for the menu's"
    answer = modem.ussd_answer()
    assert (answer.status, answer.text) == ("more", "1. Salio\n2. Vifurushi")


def test_a_reply_whose_quote_never_closes_is_taken_after_a_pause(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [
        (r"AT\+CUSD=1,.*", b'\r\nOK\r\n\r\n+CUSD: 0,"Bonus "DATA",15\r\n')])
    answer = modem.ussd("*102#")
    assert (answer.status, answer.text) == ("done", 'Bonus "DATA'), \
        "taken as it was once nothing more came for USSD_JOIN_WAIT"


def test_a_huawei_refusing_at_cusd_2_is_harmless(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [
        (r'AT\+CGMI', b"\r\nhuawei\r\n\r\nOK\r\n"),
        (r'AT\+CUSD=1,"%s",15' % codec.pack("*100#"),
         b'\r\nOK\r\n\r\n+CUSD: 1,"%s",15\r\n' % codec.pack("1. Salio").encode()),
        (r"AT\+CUSD=2", b"\r\nERROR\r\n")])
    answer = modem.ussd("*100#")
    assert (answer.status, answer.text) == ("more", "1. Salio")
    modem.ussd_cancel()
    assert not modem.ussd_session_open
    assert modem.signal_strength() == 17, "the modem is fine afterwards"
    assert [line for line in responder.modem.lines if line.startswith("AT+CUSD=1")] == [
        'AT+CUSD=1,"%s",15' % codec.pack("*100#")], "packed from the start"


def test_replies_decode_in_the_character_set_the_modem_was_left_in(scripted, driver):
    hex_text = "Salio 500".encode("utf-16-be").hex().upper()
    responder, modem = scripted_modem(scripted, driver, [
        (r"AT\+CSCS\?", b'\r\n+CSCS: "UCS2"\r\n\r\nOK\r\n'),
        (r'AT\+CUSD=1,"002A0031003000320023",15',
         b'\r\nOK\r\n\r\n+CUSD: 0,"' + hex_text.encode() + b'",15\r\n')])
    answer = modem.ussd("*102#")
    assert (answer.status, answer.text) == ("done", "Salio 500")


# --- identity --------------------------------------------------------------------------------

def test_identity_of_the_simulated_modem(simulator, driver):
    sim = simulator(imei="490154203237518", imsi="640041234567890",
                    iccid="89255040000000012345", own_number="+255754000111",
                    manufacturer="Quectel", model="EC25")
    identity = boot(driver, sim).identity()
    assert identity == {"manufacturer": "Quectel", "model": "EC25", "revision": "1.0.0",
                        "imei": "490154203237518", "imsi": "640041234567890",
                        "iccid": "89255040000000012345", "own_number": "+255754000111"}


@pytest.mark.parametrize("rules, iccid", [
    ([(r"AT\+CCID", b'\r\n+CCID: "89255040000000012345"\r\n\r\nOK\r\n')],
     "89255040000000012345"),
    ([(r"AT\^ICCID\?", b"\r\n^ICCID: %s\r\n\r\nOK\r\n"            # swapped (old Huawei)
       % swapped_bcd("89255040000000001234").encode())], "89255040000000001234"),
    ([(r"AT\+ICCID", b"\r\n+ICCID: 8925504000000000019F\r\n\r\nOK\r\n")],      # F padded
     "8925504000000000019"),
    ([(r"AT\+QCCID", b"\r\n+QCCID: 89255040000000012345\r\n\r\nOK\r\n")],
     "89255040000000012345"),
    ([(r"AT\+CRSM=176,12258,0,0,10",                                # EF_ICCID as stored
       b'\r\n+CRSM: 144,0,"%s"\r\n\r\nOK\r\n' % swapped_bcd("8925504000000000019").encode())],
     "8925504000000000019"),
    ([(r"AT\+CCID", b"\r\n8925504000000000019\r\n\r\nOK\r\n")], "8925504000000000019"),
    ([(r"AT\+CRSM=.*", b'\r\n+CRSM: 106,130\r\n\r\nOK\r\n')], None),
])
def test_the_iccid_however_the_maker_gives_it(scripted, driver, rules, iccid):
    responder, modem = scripted_modem(scripted, driver, rules + [
        (r"AT\+CGSN", b"\r\n356938035643809\r\n\r\nOK\r\n"),
        (r"AT\+CNUM", b'\r\n+CNUM: "","+255754000111",145\r\n\r\nOK\r\n')])
    identity = modem.identity()
    assert identity["iccid"] == iccid
    assert identity["imei"] == "356938035643809" and identity["own_number"] == "+255754000111"
    assert identity["imsi"] is None, "a refused command is None, not an error"


# --- finding a modem by IMEI -----------------------------------------------------------------

IMEI_A, IMEI_B = "356938035643809", "490154203237518"


@pytest.fixture
def two_modems(tmp_path, simulator):
    """Two simulated modems of different IMEIs on ptys linked as tmp/ttyA and tmp/ttyB."""
    a = simulator(imei=IMEI_A)
    b = simulator(imei=IMEI_B)
    links = tmp_path / "dev"
    links.mkdir()
    os.symlink(os.path.realpath(a.link), links / "ttyA")
    os.symlink(os.path.realpath(b.link), links / "ttyB")
    return a, b, str(links / "tty*")


def test_imei_chooses_the_right_one_of_two_modems(two_modems, driver):
    a, b, pattern = two_modems
    modem = driver("imei:%s@%s" % (IMEI_B, pattern)).boot()
    assert modem.port.endswith("/ttyB")
    assert modem.identity()["imei"] == IMEI_B
    modem.send_sms(ALICE, "through B")
    assert [m["text"] for m in b.modem.sent_messages()] == ["through B"]
    assert a.modem.sent_messages() == []


def test_a_port_this_process_holds_is_not_probed(two_modems, driver):
    a, b, pattern = two_modems
    held = driver(a.link).boot()
    before = a.transcript().count("AT+CGSN")
    modem = driver("imei:%s@%s" % (IMEI_B, pattern)).boot()
    assert modem.port.endswith("/ttyB")
    assert a.transcript().count("AT+CGSN") == before, "the held modem was left alone"
    assert os.path.realpath(a.link) in locate.held()
    held.close()
    assert os.path.realpath(a.link) not in locate.held()


def test_no_modem_with_that_imei_is_a_port_gone(two_modems, driver):
    a, b, pattern = two_modems
    modem = driver("imei:111111111111111@%s" % pattern)
    with pytest.raises(ModemGone, match="no modem answers with IMEI 111111111111111"):
        modem.boot()
    assert not modem.is_open


def test_imei_is_looked_for_again_at_every_boot(two_modems, driver, tmp_path):
    a, b, pattern = two_modems
    modem = driver("imei:%s@%s" % (IMEI_A, pattern)).boot()
    assert modem.port.endswith("/ttyA")
    modem.close()
    # "USB renumbering": the links swap names
    links = tmp_path / "dev"
    os.unlink(links / "ttyA")
    os.unlink(links / "ttyB")
    os.symlink(os.path.realpath(b.link), links / "ttyA")
    os.symlink(os.path.realpath(a.link), links / "ttyB")
    modem.boot()
    assert modem.port.endswith("/ttyB") and modem.identity()["imei"] == IMEI_A


# --- calls -----------------------------------------------------------------------------------

def take_calls(modem, count=1, timeout=5.0):
    calls, deadline = [], time.monotonic() + timeout
    while len(calls) < count and time.monotonic() < deadline:
        modem.poll(0.2)
        calls += modem.take_calls()
    return calls


def test_a_call_is_hung_up_at_once_with_its_number(simulator, driver):
    sim = simulator(ring_interval=2.0)
    modem = boot(driver, sim)
    before = time.time()
    sim.modem.place_call(ALICE)
    [call] = take_calls(modem)
    assert (call.number, call.hung_up, call.rings) == (ALICE, True, 1)
    assert before - 1 <= call.at <= time.time()
    [made] = sim.modem.calls_made()
    assert (made["ended_by"], made["rings"], made["answered"]) == ("host", 1, False)
    modem.send_sms(ALICE, "the line is free")
    assert sim.modem.sent_messages()[-1]["text"] == "the line is free"


def test_a_withheld_number_and_a_caller_who_gives_up_first(simulator, driver):
    sim = simulator(ring_interval=0.3)
    modem = boot(driver, sim)
    sim.modem.place_call("")
    [call] = take_calls(modem)
    assert (call.number, call.hung_up) == (None, True)
    # a caller who hangs up before the modem could: NO CARRIER while idle
    sim.modem.place_call(ALICE, rings=1)
    sim.modem.end_call()
    calls = take_calls(modem)
    assert [(c.number is None or c.number == ALICE, c.hung_up) for c in calls] in (
        [(True, False)], [(True, True)])


def test_no_carrier_during_a_command_does_not_end_it(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [
        (r"AT\+CSQ", b"\r\nRING\r\n\r\nNO CARRIER\r\n\r\n+CSQ: 12,99\r\n\r\nOK\r\n")]
        + DEFAULT_RULES)
    assert modem.signal_strength() == 12
    [call] = modem.take_calls()
    assert (call.number, call.hung_up, call.rings) == (None, False, 1)
    assert "ATH" not in responder.modem.lines, "a call that ended is not hung up"


def test_ath_refused_falls_back_to_chup(scripted, driver):
    responder, modem = scripted_modem(scripted, driver, [
        (r"ATH", b"\r\nERROR\r\n"), (r"AT\+CHUP", b"\r\nOK\r\n")])
    responder.modem.push(b'\r\nRING\r\n\r\n+CLIP: "+255700000001",145,,,,0\r\n')
    [call] = take_calls(modem)
    assert (call.number, call.hung_up) == (ALICE, True)
    assert responder.modem.lines[-2:] == ["ATH", "AT+CHUP"]


def test_a_modem_whose_port_failed_holds_its_path_no_more(two_modems, driver):
    a, b, pattern = two_modems
    held = driver(a.link).boot()
    assert os.path.realpath(a.link) in locate.held()
    held._port.close()          # what a port that failed does (Port._gone), without GsmModem.close
    assert os.path.realpath(a.link) not in locate.held()
    modem = driver("imei:%s@%s" % (IMEI_A, pattern)).boot()
    assert modem.port.endswith("/ttyA")

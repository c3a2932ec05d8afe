"""The AT engine against byte streams shaped like real modems' output.

Each conversation is a script of commands we write and bytes the modem sends back.  It must give
the same events whether the bytes arrive at once, one by one, or in random chunks, because a serial
port hands them over in whatever pieces the UART and the USB driver felt like.
"""

import pickle

import pytest
from hypothesis import given, settings, strategies as st

from gsmbridge.modem import errors
from gsmbridge.modem.at import (
    NEED_DATA, Echo, Engine, Final, Noise, Prompt, Response, Unsolicited, UsageError,
)


def U(line, body=None):
    """The Unsolicited event a URC line should give."""
    name, sep, value = line.partition(":")
    if not sep or not name[:1] in "+^#*":
        return Unsolicited(line, "", body, line)
    return Unsolicited(name.upper(), value.strip(), body, line)


OK = Final("OK", None, "OK")


def play(script, chunker):
    """Run a script: ("cmd", text, kwargs) / ("rx", bytes) / ("body", text).

    ``chunker(data)`` yields the pieces the bytes arrive in.  Returns the events and what the
    engine asked us to write.
    """
    engine = Engine()
    events, written = [], []

    def drain():
        while True:
            event = engine.next_event()
            if event is NEED_DATA:
                return
            events.append(event)

    for step in script:
        if step[0] == "cmd":
            written.append(engine.command(step[1], **(step[2] if len(step) > 2 else {})))
        elif step[0] == "body":
            written.append(engine.body(step[1]))
        elif step[0] == "cancel":
            written.append(engine.cancel())
        elif step[0] == "abandon":
            engine.abandon()
        else:
            for piece in chunker(step[1]):
                engine.receive_data(piece)
                drain()
    drain()
    return events, written, engine


def at_once(data):
    yield data


def byte_by_byte(data):
    for i in range(len(data)):
        yield data[i:i + 1]


PDU1 = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
PDU_SR = "07919730071111F106110A81809157040052111191357000521111913570000"

CONVERSATIONS = {
    # Huawei E1752: echo survives ATE0, \r\r\n line ends, COMMAND NOT SUPPORT for ERROR
    "huawei-e1752": (
        [
            ("cmd", "ATE0"), ("rx", b"ATE0\r\r\r\nOK\r\r\n"),
            ("cmd", "AT+WIND=0"), ("rx", b"\r\r\nCOMMAND NOT SUPPORT\r\r\n"),
            ("cmd", "AT+CSQ"), ("rx", b"\r\r\n^RSSI:18\r\r\n\r\r\n+CSQ: 18,99\r\r\n\r\r\nOK\r\r\n"),
            ("rx", b"\r\r\n^BOOT:20952612,0,0,0,72\r\r\n"),
            ("cmd", "AT+CNMI=2,1,0,2"), ("rx", b"\r\r\nOK\r\r\n"),
            ("rx", b'\r\r\n+CMTI: "SM",0\r\r\n'),
        ],
        [
            Echo("ATE0"), OK,
            Final("COMMAND NOT SUPPORT", None, "COMMAND NOT SUPPORT"),
            U("^RSSI:18"), Response("+CSQ: 18,99"), OK,
            U("^BOOT:20952612,0,0,0,72"),
            OK,
            U('+CMTI: "SM",0'),
        ],
    ),
    # Huawei after a cell change: a storm of vendor URCs, some inside a listing
    "huawei-storm": (
        [
            ("rx", b"\r\n^RSSI:14\r\n\r\n^BOOT:20952612,0,0,0,72\r\n\r\n^MODE:5,4\r\n"
                   b"\r\n^SRVST:2\r\n\r\n^SIMST:1\r\n\r\n^DSFLOWRPT:00000010,00000000,00000000,"
                   b"0000000000000000,0000000000000000,0000BB80,0001F400\r\n"
                   b'\r\n^HCSQ:"WCDMA",30,30,58\r\n\r\n^NWTIME:24/01/01,12:00:00+12,00\r\n'
                   b"\r\n^CSNR:-101,-11\r\n"),
            ("cmd", "AT+CMGL=4"),
            ("rx", b"\r\n+CMGL: 0,1,,24\r\n" + PDU1.encode() + b"\r\n\r\n^RSSI:15\r\n"
                   b"\r\n+CMGL: 1,1,,24\r\n\r\n^RSSI:16\r\n" + PDU1.encode() + b"\r\n"
                   b"\r\n^BOOT:20952612,0,0,0,72\r\n\r\nOK\r\n"),
        ],
        [
            U("^RSSI:14"), U("^BOOT:20952612,0,0,0,72"), U("^MODE:5,4"), U("^SRVST:2"),
            U("^SIMST:1"),
            U("^DSFLOWRPT:00000010,00000000,00000000,0000000000000000,0000000000000000,"
              "0000BB80,0001F400"),
            U('^HCSQ:"WCDMA",30,30,58'), U("^NWTIME:24/01/01,12:00:00+12,00"),
            U("^CSNR:-101,-11"),
            Response("+CMGL: 0,1,,24", PDU1), U("^RSSI:15"),
            U("^RSSI:16"), Response("+CMGL: 1,1,,24", PDU1),
            U("^BOOT:20952612,0,0,0,72"), OK,
        ],
    ),
    # ZTE K3565-Z: URCs before the prompt and before +CMGS
    "zte-cmgs": (
        [
            ("rx", b"\r\n+ZUSIMR:2\r\n"),
            ("cmd", "AT+CMGS=23", {"prompt": True}),
            ("rx", b'\r\n+ZPASR: "UMTS"\r\n\r\n> '),
            ("body", "0011000C912674583366270000AA0AE8329BFD4697D9EC37"),
            ("rx", b'\r\n+ZDONR: "01","01","CS_PS","ROAM_OFF"\r\n\r\n+CMGS: 11\r\n\r\nOK\r\n'),
            ("rx", b'\r\n+ZPASR: "No Service"\r\n'),
        ],
        [
            U("+ZUSIMR:2"), U('+ZPASR: "UMTS"'), Prompt(),
            U('+ZDONR: "01","01","CS_PS","ROAM_OFF"'), Response("+CMGS: 11"), OK,
            U('+ZPASR: "No Service"'),
        ],
    ),
    # Wavecom 900E: +CPIN: READY with no OK; the OK that some firmwares send late is ignored
    "wavecom-cpin": (
        [
            ("cmd", "AT+CPIN?", {"done_on": "+CPIN:"}), ("rx", b"\r\n+CPIN: READY\r\n"),
            ("rx", b"\r\nOK\r\n"),
            ("cmd", "AT+CFUN=1"), ("rx", b"\r\n+CME ERROR: 515\r\n"),
            ("rx", b"\r\n+WIND: 4\r\n"),
            ("cmd", "AT+CPMS=\"SR\""), ("rx", b"\r\nERROR\r\n"),
        ],
        [
            Response("+CPIN: READY"), Final("OK", None, ""), Noise(b"OK"),
            Final("CME", 515, "+CME ERROR: 515"), U("+WIND: 4"), Final("ERROR", None, "ERROR"),
        ],
    ),
    # SIMCom SIM800 power-up, then a stored SMS announced and read
    "sim800": (
        [
            ("rx", b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n"
                   b"\r\nSMS Ready\r\n"),
            ("cmd", 'AT+CPMS="SM","SM","SM"'),
            ("rx", b"\r\n+CPMS: 1,30,1,30,1,30\r\n\r\nOK\r\n"),
            ("rx", b'\r\n+CMTI: "SM",2\r\n'),
            ("cmd", "AT+CMGR=2"),
            ("rx", b"\r\n+CMGR: 0,,24\r\n" + PDU1.encode() + b"\r\n\r\nOK\r\n"),
            ("cmd", "AT+CMGS=23", {"prompt": True}), ("rx", b"\r\n> "),
            ("body", "0011000C912674583366270000AA0AE8329BFD4697D9EC37"),
            ("rx", b"\r\n+CMS ERROR: 500\r\n"),
        ],
        [
            U("RDY"), U("+CFUN: 1"), U("+CPIN: READY"), U("Call Ready"), U("SMS Ready"),
            Response("+CPMS: 1,30,1,30,1,30"), OK,
            U('+CMTI: "SM",2'),
            Response("+CMGR: 0,,24", PDU1), OK,
            Prompt(), Final("CMS", 500, "+CMS ERROR: 500"),
        ],
    ),
    # Quectel: +QIND at start; +CREG is a URC except while we ask AT+CREG?
    "quectel": (
        [
            ("rx", b"\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n"),
            ("cmd", "AT+CSQ"),
            ("rx", b"\r\n+CREG: 1\r\n\r\n+CSQ: 21,99\r\n\r\n+CGREG: 5\r\n\r\nOK\r\n"),
            ("cmd", "AT+CREG?"), ("rx", b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"),
            ("rx", b"\r\n+CEREG: 1\r\n"),
        ],
        [
            U("+QIND: SMS DONE"), U("+QIND: PB DONE"),
            U("+CREG: 1"), Response("+CSQ: 21,99"), U("+CGREG: 5"), OK,
            Response("+CREG: 0,1"), OK,
            U("+CEREG: 1"),
        ],
    ),
    # Telit: #STN during a query; RING and +CLIP too
    "telit": (
        [
            ("cmd", "AT+COPS?"),
            ("rx", b"\r\n#STN: 37\r\n\r\n+COPS: 0,0,\"Vodacom\",2\r\n\r\nRING\r\n"
                   b"\r\n+CLIP: \"+255700000001\",145\r\n\r\nOK\r\n"),
            ("rx", b'\r\n+CIEV: "CALL",0\r\n\r\n+CUSD: 0,"Balance 100",15\r\n'),
        ],
        [
            U("#STN: 37"), Response('+COPS: 0,0,"Vodacom",2'), U("RING"),
            U('+CLIP: "+255700000001",145'), OK,
            U('+CIEV: "CALL",0'), U('+CUSD: 0,"Balance 100",15'),
        ],
    ),
    # echo left on: every command and the PDU come back
    "echo-on": (
        [
            ("cmd", "AT+CMGF=0"), ("rx", b"AT+CMGF=0\r\r\nOK\r\n"),
            ("cmd", "AT+CGMI"), ("rx", b"AT+CGMI\r\r\nhuawei\r\n\r\nOK\r\n"),
            ("cmd", "AT+CMGS=23", {"prompt": True}), ("rx", b"AT+CMGS=23\r\r\n> "),
            ("body", "0011000C912674583366270000AA0AE8329BFD4697D9EC37"),
            ("rx", b"0011000C912674583366270000AA0AE8329BFD4697D9EC37\x1a\r\n+CMGS: 7\r\n"
                   b"\r\nOK\r\n"),
        ],
        [
            Echo("AT+CMGF=0"), OK, Echo("AT+CGMI"), Response("huawei"), OK,
            Echo("AT+CMGS=23"), Prompt(),
            Echo("0011000C912674583366270000AA0AE8329BFD4697D9EC37"), Response("+CMGS: 7"), OK,
        ],
    ),
    # routed messages: +CMT and +CDS carry the PDU on the next line, even inside a command
    "routed": (
        [
            ("rx", b"\r\n+CMT: ,24\r\n" + PDU1.encode() + b"\r\n"),
            ("cmd", "AT+CSQ"),
            ("rx", b"\r\n+CDS:25\r\n" + PDU_SR.encode() + b"\r\n\r\n+CSQ: 9,99\r\n\r\nOK\r\n"),
            ("cmd", "AT+CNMA"), ("rx", b"\r\nOK\r\n"),
            ("rx", b'\r\n+CMT: "Alice",24\r\n' + PDU1.encode() + b"\r\n"),
            ("rx", b"\r\n+CBM: 88\r\n0011AABB\r\n"),
        ],
        [
            U("+CMT: ,24", PDU1), U("+CDS:25", PDU_SR), Response("+CSQ: 9,99"), OK, OK,
            U('+CMT: "Alice",24', PDU1), U("+CBM: 88", "0011AABB"),
        ],
    ),
    # text mode: a body that begins with OK is still a body; text +CDS is one line
    "text-mode": (
        [
            ("cmd", "AT+CMGF=1"), ("rx", b"\r\nOK\r\n"),
            ("cmd", "AT+CMGR=3"),
            ("rx", b'\r\n+CMGR: "REC UNREAD","+255700000001",,"24/01/01,10:00:00+12"\r\n'
                   b"OK see you at 5\r\n\r\nOK\r\n"),
            ("cmd", 'AT+CMGL="ALL"'),
            ("rx", b'\r\n+CMGL: 1,"REC READ","+255700000001",,"24/01/01,10:00:00+12"\r\nOK\r\n'
                   b'+CMGL: 2,"REC READ",6,46,"+255700000002",145,"24/01/01,10:00:00+12",'
                   b'"24/01/01,10:00:05+12",0\r\n'
                   b'+CMGL: 3,"REC READ","+255700000003",,"24/01/01,10:00:00+12"\r\nERROR\r\n'
                   b"\r\nOK\r\n"),
            ("rx", b'\r\n+CMT: "+255700000001",,"24/01/01,10:00:00+12"\r\nOK\r\n'),
            ("rx", b'\r\n+CDS: 6,46,"+255700000002",145,"24/01/01,10:00:00+12",'
                   b'"24/01/01,10:00:05+12",0\r\n'),
        ],
        [
            OK,
            Response('+CMGR: "REC UNREAD","+255700000001",,"24/01/01,10:00:00+12"',
                     "OK see you at 5"), OK,
            Response('+CMGL: 1,"REC READ","+255700000001",,"24/01/01,10:00:00+12"', "OK"),
            Response('+CMGL: 2,"REC READ",6,46,"+255700000002",145,"24/01/01,10:00:00+12",'
                     '"24/01/01,10:00:05+12",0'),
            Response('+CMGL: 3,"REC READ","+255700000003",,"24/01/01,10:00:00+12"', "ERROR"),
            OK,
            U('+CMT: "+255700000001",,"24/01/01,10:00:00+12"', "OK"),
            U('+CDS: 6,46,"+255700000002",145,"24/01/01,10:00:00+12",'
              '"24/01/01,10:00:05+12",0'),
        ],
    ),
    # line noise: power-up junk, a non-UTF-8 line, a stray OK and an unknown line while idle
    "noise": (
        [
            ("rx", b"\x00\xff\xfe\r\n\xffRDY\r\n\r\nOK\r\n\r\nhello there\r\n"),
            ("cmd", "AT"), ("rx", b"\r\nab\xe9\xffcd\r\n\r\nOK\r\n"),
            ("cmd", "AT+CSQ"), ("rx", b"\r\n\xff\xff+CSQ: 5,99\r\n\r\nOK\r\n"),
            ("rx", b"\r\n+XYZ: 1,2\r\n"),
        ],
        [
            Noise(b"\x00\xff\xfe"), Noise(b"\xffRDY"), U("RDY"), Noise(b"OK"),
            Noise(b"hello there"),
            Noise(b"ab\xe9\xffcd"), OK,
            Noise(b"\xff\xff+CSQ: 5,99"), Response("+CSQ: 5,99"), OK,
            Unsolicited("+XYZ", "1,2", None, "+XYZ: 1,2"),
        ],
    ),
    # PDU mode edge cases: an empty slot, a listing with a garbled PDU, errors in words (CMEE=2)
    "pdu-edges": (
        [
            ("cmd", "AT+CMGR=9"), ("rx", b"\r\n+CMGR: 0,,0\r\n\r\nOK\r\n"),
            ("cmd", "AT+CMGR=5"), ("rx", b"\r\n+CMGR: 1,,24\r\n\r\nOK\r\n"),
            ("cmd", "AT+CMGL=4"), ("rx", b"\r\n+CMGL: 4,0,,24\r\n0791ZZ\xff12\r\n\r\nOK\r\n"),
            ("cmd", "AT+CPIN?"), ("rx", b"\r\n+CME ERROR: SIM busy\r\n"),
            ("cmd", "AT+CMGS=23", {"prompt": True}),
            ("rx", b"\r\n+CMS ERROR: invalid PDU mode parameter\r\n"),
            ("cmd", "AT+CMGD=1"), ("rx", b"\r\n+CMS ERROR:321\r\n"),
        ],
        [
            Response("+CMGR: 0,,0"), OK,
            Response("+CMGR: 1,,24"), OK,
            Response("+CMGL: 4,0,,24", "0791ZZ\ufffd12"), OK,
            Final("CME", 14, "+CME ERROR: SIM busy"),
            Final("CMS", 304, "+CMS ERROR: invalid PDU mode parameter"),
            Final("CMS", 321, "+CMS ERROR:321"),
        ],
    ),
    # giving up on commands: ESC at the prompt, a timeout, then the late answers
    "cancel-abandon": (
        [
            ("cmd", "AT+CMGS=23", {"prompt": True}), ("rx", b"\r\n> "), ("cancel",),
            ("rx", b"\r\nOK\r\n"),
            ("cmd", "AT+COPS=?"), ("abandon",),
            ("rx", b'\r\n+COPS: (2,"Vodacom","VC","64004",2),,(0-4),(0-2)\r\n\r\nOK\r\n'),
            ("cmd", "AT"), ("rx", b"\r\nOK\r\n"),
        ],
        [
            Prompt(), Noise(b"OK"),
            Unsolicited("+COPS", '(2,"Vodacom","VC","64004",2),,(0-4),(0-2)', None,
                        '+COPS: (2,"Vodacom","VC","64004",2),,(0-4),(0-2)'),
            Noise(b"OK"), OK,
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_conversation_at_once(name):
    script, expected = CONVERSATIONS[name]
    assert play(script, at_once)[0] == expected


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_conversation_byte_by_byte(name):
    script, expected = CONVERSATIONS[name]
    assert play(script, byte_by_byte)[0] == expected


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(CONVERSATIONS)), seed=st.randoms(use_true_random=False))
def test_conversation_random_chunks(name, seed):
    script, expected = CONVERSATIONS[name]

    def chunks(data):
        i = 0
        while i < len(data):
            n = seed.randint(1, 40)
            yield data[i:i + n]
            i += n

    assert play(script, chunks)[0] == expected


# Bytes a modem might send, including everything that is hard: partial prompts, junk, headers.
_TOKENS = [b"\r", b"\n", b"\r\n", b"OK", b"ERROR", b"> ", b">", b"+CMT: ,24", b"+CDS:25",
           b"+CMGL: 1,0,,24", b'+CMGR: "REC READ","+1",,"t"', b"+CMTI: \"SM\",1", b"^RSSI:9",
           b"0791AB", b"\xff", b"\x00", b"\x1a", b"+CME ERROR: 14", b"RING", b"+CSQ: 1,99",
           b"AT+CSQ", b"x" * 50]


@settings(max_examples=200, deadline=None)
@given(tokens=st.lists(st.sampled_from(_TOKENS), max_size=60),
       cuts=st.lists(st.integers(min_value=1, max_value=30), max_size=80),
       prompt=st.booleans())
def test_any_bytes_any_chunks_same_events(tokens, cuts, prompt):
    """Whatever arrives, the engine never raises and the chunking never changes the events."""
    data = b"".join(tokens)

    def chunks(data):
        i = 0
        for n in cuts:
            if i >= len(data):
                return
            yield data[i:i + n]
            i += n
        if i < len(data):
            yield data[i:]

    script = [("cmd", "AT+CSQ", {"prompt": prompt}), ("rx", data)]
    assert play(script, chunks)[0] == play(script, at_once)[0]


def test_prompt_waits_for_its_space():
    engine = Engine()
    engine.command("AT+CMGS=10", prompt=True)
    engine.receive_data(b"\r\n>")
    assert engine.next_event() is NEED_DATA
    engine.receive_data(b" ")
    assert engine.next_event() == Prompt()
    assert engine.state == "AT_PROMPT"
    assert engine.body("00AB") == b"00AB\x1a"
    assert engine.state == "WAITING"


def test_prompt_only_when_expected():
    engine = Engine()
    engine.command("AT+CSQ")
    engine.receive_data(b"\r\n> \r\nOK\r\n")
    assert [engine.next_event(), engine.next_event()] == [Response(">"), OK]


def test_final_error_is_the_right_exception():
    engine = Engine()
    engine.command("AT+CMGS=23", prompt=True)
    engine.receive_data(b"\r\n+CMS ERROR: 500\r\n")
    final = engine.next_event()
    error = final.error
    assert isinstance(error, errors.CmsError)
    assert (error.code, error.transient, error.command) == (500, True, "AT+CMGS=23")
    assert not final.ok
    engine.command("AT")
    engine.receive_data(b"OK\r")
    assert engine.next_event().error is None


def test_one_command_at_a_time():
    engine = Engine()
    assert engine.command("+CSQ") == b"AT+CSQ\r"
    assert engine.busy and engine.current == "AT+CSQ"
    with pytest.raises(UsageError):
        engine.command("AT")
    with pytest.raises(UsageError):
        engine.body("00")
    engine.abandon()
    assert not engine.busy
    with pytest.raises(ValueError):
        engine.command("AT+CMGS=1\rAT")


def test_cmgf_is_tracked():
    engine = Engine()
    engine.command("AT+CMGF=1")
    engine.receive_data(b"\r\nOK\r\n")
    engine.next_event()
    assert engine.pdu_mode is False
    engine.command("AT+CMGF=0")
    engine.receive_data(b"\r\nERROR\r\n")
    engine.next_event()
    assert engine.pdu_mode is False        # refused: still in text mode


def test_held_urc_survives_abandon():
    """A +CMT header whose PDU is still on the wire is not lost when a command times out."""
    engine = Engine()
    engine.command("AT+CSQ")
    engine.receive_data(b"\r\n+CMT: ,24\r\n")
    assert engine.next_event() is NEED_DATA
    engine.abandon()
    engine.receive_data(PDU1.encode() + b"\r\n")
    assert engine.next_event() == U("+CMT: ,24", PDU1)


def test_endless_line_is_flushed_as_noise():
    engine = Engine()
    engine.receive_data(b"A" * 10000 + b"\r\n^RSSI:5\r\n")
    events = []
    while (event := engine.next_event()) is not NEED_DATA:
        events.append(event)
    assert [type(e) for e in events] == [Noise, Noise, Noise, Unsolicited]
    assert sum(len(e.data) for e in events[:3]) == 10000


def test_long_stream_is_consumed_and_buffer_stays_small():
    engine = Engine()
    line = b"\r\n^RSSI:17\r\n"
    count = 0
    for _ in range(2000):
        engine.receive_data(line * 10 + b"\r\n^HC")     # a partial line left each time
        while engine.next_event() is not NEED_DATA:
            count += 1
        engine.receive_data(b'SQ:"LTE",1,2,3,4\r\n')
        while engine.next_event() is not NEED_DATA:
            count += 1
    assert count == 22000
    assert len(engine._buf) < 1000


# --- errors.py --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,code,transient", [
    ("CME", 14, True), ("CMS", 515, True), ("CMS", 535, True), ("CMS", 331, True),
    ("CMS", 332, True), ("CMS", 500, True), ("CMS", 322, True), ("CMS", 330, True),
    ("CMS", 304, False), ("CMS", 321, False), ("CMS", 1, False), ("CMS", 195, False),
    ("CME", 16, False), ("CMS", 517, False), ("CMS", 999, True), ("CME", 3, False),
    ("COMMAND NOT SUPPORT", None, False), ("ERROR", None, True),
])
def test_classification(kind, code, transient):
    assert errors.describe(kind, code)[1] is transient
    assert errors.from_final(kind, code).transient is transient


@pytest.mark.parametrize("kind,words,code", [
    ("CME", "SIM busy", 14), ("CME", "sim PIN required", 11), ("CME", "incorrect password", 16),
    ("CMS", "unknown error", 500), ("CMS", "SMSC address unknown", 330),
    ("CMS", "invalid memory index", 321), ("CMS", "memory full", 322),
    ("CMS", "no network service", 331), ("CMS", "Protocol stack busy", 535),
    ("CME", " 14 ", 14), ("CME", "no such error", None),
])
def test_verbose_errors_map_back(kind, words, code):
    assert errors.lookup(kind, words) == code


def test_every_table_row_is_named_and_classified():
    for kind, table in (("CME", errors.CME), ("CMS", errors.CMS)):
        for code, (name, transient) in table.items():
            assert name and isinstance(transient, bool)
            for words in name.replace(" (vendor)", "").split(" / "):
                # the words map back to this code, or to one with the same name (duplicates)
                assert errors.describe(kind, errors.lookup(kind, words))[0] == name or \
                    words in errors.describe(kind, errors.lookup(kind, words))[0]


def test_exceptions_read_well_and_pickle():
    error = errors.CmsError(500, command="AT+CMGS=23")
    assert str(error) == "+CMS ERROR: 500 (unknown error) after AT+CMGS=23"
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, copy.transient, copy.command) == \
        (errors.CmsError, 500, True, "AT+CMGS=23")
    plain = pickle.loads(pickle.dumps(errors.ModemError("COMMAND NOT SUPPORT")))
    assert (plain.kind, plain.transient) == ("COMMAND NOT SUPPORT", False)
    assert isinstance(errors.CmeError(14), errors.ModemError)

"""The AT engine with what USSD and calls add to a modem's output: a +CUSD menu whose quoted
text spans lines, the reply before the OK, and NO CARRIER from a caller who hung up.

Like test_at.py, each script must give the same events however the bytes are cut.
"""

import random

import pytest
from hypothesis import given, settings, strategies as st

from gsmbridge.codec import ussd as codec
from gsmbridge.modem.at import (MAX_USSD, NEED_DATA, Engine, Final, Noise, Response,
                                Unsolicited)

OK = Final("OK", None, "OK")
MENU = '+CUSD: 1,"1. Balance\n2. Bundles\n3. Help",15'


def play(script, cut=None):
    """("cmd", text) / ("rx", bytes) / ("release",) / ("abandon",) -> events.  ``cut``: a
    list of piece sizes the bytes arrive in (None: all at once)."""
    engine = Engine()
    events = []

    def drain():
        while (event := engine.next_event()) is not NEED_DATA:
            events.append(event)

    for step in script:
        if step[0] == "cmd":
            engine.command(step[1])
        elif step[0] == "release":
            engine.release_partial()
        elif step[0] == "abandon":
            engine.abandon()
        else:
            data = step[1]
            sizes = iter(cut or [len(data) or 1])
            i = 0
            while i < len(data):
                n = next(sizes, len(data))
                engine.receive_data(data[i:i + n])
                drain()
                i += n
        drain()
    return events, engine


def everyway(script):
    """The events at once, byte by byte and in random pieces: all must agree."""
    events = play(script)[0]
    size = sum(len(step[1]) for step in script if step[0] == "rx")
    assert play(script, [1] * size)[0] == events
    rng = random.Random(7)
    for _ in range(20):
        assert play(script, [rng.randint(1, 9) for _ in range(size)])[0] == events
    return events


def test_a_menu_over_several_lines_is_one_unsolicited_reply():
    events = everyway([("rx", b'\r\n+CUSD: 1,"1. Balance\r\n2. Bundles\r\n3. Help",15\r\n')])
    assert events == [Unsolicited("+CUSD", MENU[len("+CUSD: "):], None, MENU)]
    reply = codec.parse(events[0].line)
    assert (reply.status, reply.text) == (1, "1. Balance\n2. Bundles\n3. Help")


def test_lf_only_and_blank_lines_inside_the_quotes_are_joined_too():
    events = everyway([("rx", b'\r\n+CUSD: 0,"Bal:\n\n100 TZS\r\r\nValid 30d",15\r\n')])
    assert [e.line for e in events] == ['+CUSD: 0,"Bal:\n100 TZS\nValid 30d",15']


def test_the_early_reply_is_the_answer_of_at_cusd_before_its_ok():
    script = [("cmd", 'AT+CUSD=1,"*100#",15'),
              ("rx", b'\r\n+CUSD: 1,"1. Balance\r\n2. Bundles\r\n3. Help",15\r\n\r\nOK\r\n')]
    assert everyway(script) == [Response(MENU), OK]


def test_a_menu_that_comes_during_another_command_is_not_its_answer():
    """A URC arrives whenever it likes: its continuation lines must not become +CSQ's lines."""
    script = [("cmd", "AT+CSQ"),
              ("rx", b'\r\n+CUSD: 1,"1. Balance\r\n2. Bundles\r\n3. Help",15\r\n'
                     b"\r\n+CSQ: 18,99\r\n\r\nOK\r\n")]
    events = everyway(script)
    assert events == [Unsolicited("+CUSD", MENU[len("+CUSD: "):], None, MENU),
                      Response("+CSQ: 18,99"), OK]


def test_a_text_with_a_quote_of_its_own_ends_at_the_ok():
    line = '+CUSD: 0,"Say "hi" to 100 and "win",15'
    script = [("cmd", 'AT+CUSD=1,"*1#",15'), ("rx", line.encode() + b"\r\n\r\nOK\r\n")]
    events = everyway(script)
    assert events == [Response(line), OK]
    assert codec.parse(events[0].line).text == 'Say "hi" to 100 and "win'


def test_an_unsolicited_reply_still_open_waits_for_the_driver_to_release_it():
    line = '+CUSD: 0,"He said "hi",15'
    events, engine = play([("rx", line.encode() + b"\r\n")])
    assert events == [] and engine.partial
    events, engine = play([("rx", line.encode() + b"\r\n"), ("release",)])
    assert events == [Unsolicited("+CUSD", line[7:], None, line)] and not engine.partial
    assert codec.parse(events[0].line).text == 'He said "hi'


def test_a_urc_or_a_final_ends_the_joining_and_keeps_its_own_meaning():
    script = [("rx", b'\r\n+CUSD: 0,"Odd " quote,15\r\n\r\n+CMTI: "SM",3\r\n')]
    events = everyway(script)
    assert events == [Unsolicited("+CUSD", '0,"Odd " quote,15', None, '+CUSD: 0,"Odd " quote,15'),
                      Unsolicited("+CMTI", '"SM",3', None, '+CMTI: "SM",3')]
    script = [("rx", b'\r\n+CUSD: 0,"Odd " quote,15\r\n'), ("cmd", "AT"), ("rx", b"\r\nOK\r\n")]
    events = play(script)[0]
    assert events == [Unsolicited("+CUSD", '0,"Odd " quote,15', None,
                                  '+CUSD: 0,"Odd " quote,15'), OK]


def test_the_joining_is_bounded():
    lines = b"".join(b"line %d with some words in it\r\n" % i for i in range(400))
    events, engine = play([("rx", b'\r\n+CUSD: 1,"start\r\n' + lines)])
    assert not engine.partial
    cusd = [e for e in events if isinstance(e, Unsolicited)]
    assert len(cusd) == 1 and cusd[0].name == "+CUSD"
    assert len(cusd[0].line) <= MAX_USSD + 64 and cusd[0].line.count("\n") < 100
    # what is left over is taken as the lines it is, never lost silently
    assert all(isinstance(e, (Unsolicited, Noise)) for e in events)


def test_an_abandoned_at_cusd_hands_its_half_reply_over_as_unsolicited():
    script = [("cmd", 'AT+CUSD=1,"*100#",15'), ("rx", b'\r\n+CUSD: 1,"1. Balance\r\n'),
              ("abandon",)]
    events = play(script)[0]
    assert events == [Unsolicited("+CUSD", '1,"1. Balance', None, '+CUSD: 1,"1. Balance')]


@pytest.mark.parametrize("command", ["ATA", "ATD+255700000001;", "ATH", "AT+CHUP", "ATO"])
def test_no_carrier_is_the_final_of_a_command_about_a_call(command):
    events = everyway([("cmd", command), ("rx", b"\r\nNO CARRIER\r\n")])
    assert events == [Final("NO CARRIER", None, "NO CARRIER")]


def test_no_carrier_from_a_caller_cannot_end_another_command():
    script = [("cmd", "AT+CMGL=4"),
              ("rx", b"\r\nRING\r\n\r\nNO CARRIER\r\n\r\n+CMGL: 1,0,,3\r\n000000\r\n\r\nOK\r\n")]
    events = everyway(script)
    assert events == [Unsolicited("RING", "", None, "RING"),
                      Unsolicited("NO CARRIER", "", None, "NO CARRIER"),
                      Response("+CMGL: 1,0,,3", "000000"), OK]
    # and while idle it is news (the caller gave up), not noise
    assert play([("rx", b"\r\nNO CARRIER\r\n")])[0] == [
        Unsolicited("NO CARRIER", "", None, "NO CARRIER")]
    assert play([("cmd", "AT+CSQ"), ("rx", b"\r\nBUSY\r\n+CSQ: 9,99\r\nOK\r\n")])[0] == [
        Unsolicited("BUSY", "", None, "BUSY"), Response("+CSQ: 9,99"), OK]


_TOKENS = [b"\r", b"\n", b"\r\n", b"OK", b"ERROR", b'+CUSD: 1,"menu', b'+CUSD: 0,"done",15',
           b'item",15', b'"', b"2. more", b"NO CARRIER", b"RING", b'+CMTI: "SM",1',
           b"+CME ERROR: 100", b"\xff", b"x" * 30]


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(st.sampled_from(_TOKENS), max_size=60),
       cuts=st.lists(st.integers(min_value=1, max_value=20), max_size=80),
       command=st.sampled_from([None, 'AT+CUSD=1,"*1#",15', "AT+CSQ", "ATA"]))
def test_any_cusd_stream_any_chunks_same_events(tokens, cuts, command):
    data = b"".join(tokens)
    script = ([("cmd", command)] if command else []) + [("rx", data), ("release",)]
    events = play(script)[0]
    assert play(script, cuts)[0] == events

"""End to end through Vumi's dialect: simulated modem -> gsmbridge (style = vumi) -> unmodified
RapidSMS 2.2.0's VumiBackendView -> echo app -> RapidSMS's VumiBackend -> gsmbridge /vumi/send ->
simulated modem.

The RapidSMS project (tests/rapidsms_project) is the one the Kannel end-to-end test uses; its second
backend, "vumi-backend", is the stock VumiBackend with only its URL and basic-auth credentials set:
no charset settings at all, because it speaks JSON. Both programs run in their own processes on
127.0.0.1, the bridge as `python -m gsmbridge run -c <ini>`.

RapidSMS must be installed (setup.py's test extra); without it these tests fail, they are not
skipped.
"""

import pytest

from bridgeproc import BridgeProcess, wait_for
from rapidsms_env import RapidSMS, check_installed
from test_rapidsms_e2e import gammu_text

pytestmark = pytest.mark.slow

#: generous bounds so a slow CI machine never fails; they bound a wait, nothing asserts a speed
START_DEADLINE = 60.0
REPLY_DEADLINE = 60.0

PLACEHOLDER = "http://127.0.0.1:9/backend/vumi-backend/"


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    problem = check_installed()
    if problem:
        pytest.fail("the Vumi end-to-end test needs RapidSMS: " + problem, pytrace=False)
    workdir = tmp_path_factory.mktemp("vumi-e2e")
    (workdir / "bridge").mkdir()
    # The bridge's port is chosen here, RapidSMS's when it starts: write the ini, start RapidSMS
    # aimed at the bridge, then point the ini at RapidSMS before the bridge starts.
    bridge = BridgeProcess(workdir / "bridge", rapidsms_url=PLACEHOLDER, style="vumi")
    username, password = bridge.auth
    rapidsms = RapidSMS(workdir / "rapidsms", sendsms_url=bridge.api + "/cgi-bin/sendsms",
                        username=username, password=password)
    rapidsms.env["RAPIDSMS_E2E_VUMI_URL"] = bridge.api + "/vumi/send"
    rapidsms.start(timeout=START_DEADLINE)
    try:
        with open(bridge.ini, encoding="utf-8") as f:
            ini = f.read()
        with open(bridge.ini, "w", encoding="utf-8") as f:
            f.write(ini.replace(PLACEHOLDER, rapidsms.url + "/backend/vumi-backend/"))
        bridge.start(timeout=START_DEADLINE)
        try:
            yield bridge, rapidsms
        finally:
            bridge.stop()
    finally:
        rapidsms.stop()


def bridge_log(bridge):
    with open(bridge.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def reply_id(bridge, sender):
    [out] = [m for m in bridge.status()["recent"]
             if m["direction"] == "out" and m["recipient"] == sender]
    return out["id"]


def echo(e2e, sender, text):
    """Inject an SMS, wait for the one reply RapidSMS sends back through the modem, check it with
    gammu too, and check the reply named the inbound message (Vumi's message_id/in_reply_to)."""
    bridge, rapidsms = e2e
    parts = bridge.inject(sender, text)["parts"]
    expected = "echo: " + text

    def replies():
        return [e for e in bridge.sent() if e["to"] == sender]

    def explain():
        return ("expected %r\nsent: %r\n--- gsmbridge log ---\n%s\n--- RapidSMS log ---\n%s"
                % (expected, replies(), bridge.log(), rapidsms.log()[-6000:]))

    try:
        wait_for(replies, timeout=REPLY_DEADLINE, message="the reply to %s" % sender)
    except AssertionError:
        pytest.fail(explain())
    [reply] = replies()
    assert reply["text"] == expected, explain()
    assert gammu_text(reply["pdus"], sender) == expected, explain()

    [inbound] = [m for m in bridge.status()["recent"]
                 if m["direction"] == "in" and m["sender"] == sender]
    assert inbound["status"] == "delivered" and inbound["text"] == text
    # RapidSMS kept our message_id as external_id and sent it back as in_reply_to
    assert "id=%s in_reply_to=%s " % (reply_id(bridge, sender), inbound["id"]) in \
        bridge_log(bridge), explain()
    return parts, reply


def test_ascii(e2e):
    parts, reply = echo(e2e, "+255700000011", "hello")
    assert parts == 1 and (reply["parts"], reply["encoding"]) == (1, "gsm7")


def test_long_message(e2e):
    # numbered words show a lost, repeated or reordered part; RapidSMS's form strips trailing
    # whitespace, so the text ends in "!"
    text = " ".join("w%03d" % i for i in range(80)) + "!"
    parts, reply = echo(e2e, "+255700000012", text)
    assert parts == 3 and (reply["parts"], reply["encoding"]) == (3, "gsm7")


def test_unicode_with_emoji(e2e):
    parts, reply = echo(e2e, "+255700000013", "Habari \U0001F600 \u00f1 \u20ac \u4e2d\u6587")
    assert parts == 1 and reply["encoding"] == "ucs2"

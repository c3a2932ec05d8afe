"""End to end: simulated modem -> gsmbridge -> unmodified RapidSMS 2.2.0 -> gsmbridge -> simulated modem.

Both programs run as they would in production, each in its own process on 127.0.0.1: the bridge as
`python -m gsmbridge run -c <ini>` driving its built-in simulated modem (`sim://`, whose control API
injects SMS and lists what the modem sent), and RapidSMS under waitress with its stock KannelBackend
and blocking router, plus an app that answers every message with "echo: " and its text.

The blocking router makes its reply's sendsms request to the bridge from inside the bridge's own
inbound request to RapidSMS, with no timeout: the bridge must answer it while it waits.

RapidSMS must be installed (setup.py's test extra); without it these tests fail, they are not skipped.
"""

import binascii
import os
import subprocess
import sys
import time

import gammu
import pytest
import requests

from bridgeproc import free_port
from rapidsms_env import RapidSMS, check_installed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USERNAME = "rapidsms"
PASSWORD = "e2e s3cret&%"     # characters that must survive URL encoding in sendsms

#: generous bounds so a slow CI machine never fails; they bound a wait, nothing asserts a speed
START_DEADLINE = 60.0
REPLY_DEADLINE = 60.0

pytestmark = pytest.mark.slow


def tail(path, size=6000):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-size:]
    except FileNotFoundError:
        return "(no log)"


class BridgeProcess:
    """`python -m gsmbridge run -c <ini>` in a subprocess, stopped by its PID with SIGTERM."""

    def __init__(self, workdir, *, http_port, control_port, rapidsms_url):
        self.workdir = str(workdir)
        self.http_port = http_port
        self.control_port = control_port
        self.ini = os.path.join(self.workdir, "gsmbridge.ini")
        self.log_path = os.path.join(self.workdir, "gsmbridge.log")
        with open(self.ini, "w", encoding="utf-8") as f:
            f.write(
                "[modem]\n"
                "port = sim://?control=127.0.0.1:%d\n"
                "\n"
                "[http]\n"
                "listen = 127.0.0.1:%d\n"
                "username = %s\n"
                "password = %s\n"
                "\n"
                "[rapidsms]\n"
                "url = %s\n"
                "style = kannel\n"
                "\n"
                "[store]\n"
                "path = %s\n"
                % (control_port, http_port, USERNAME, PASSWORD, rapidsms_url,
                   os.path.join(self.workdir, "store", "gsmbridge.sqlite3")))
        self.process = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def control_url(self):
        return "http://127.0.0.1:%d" % self.control_port

    def start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gsmbridge", "run", "-c", self.ini],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self):
        """Until /health says the bridge can take and deliver messages and the control API answers."""
        deadline = time.monotonic() + START_DEADLINE
        last = "no answer"
        while True:
            if self.process.poll() is not None:
                pytest.fail("gsmbridge exited with %s before it was ready:\n%s"
                            % (self.process.returncode, self.log()))
            try:
                health = requests.get(self.url + "/health", auth=(USERNAME, PASSWORD), timeout=5)
                last = "/health %d %s" % (health.status_code, health.text.strip()[:500])
                if health.status_code == 200:
                    requests.get(self.control_url + "/sent", timeout=5).raise_for_status()
                    return
            except requests.RequestException as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                pytest.fail("gsmbridge was not ready after %.0fs (last: %s):\n%s"
                            % (START_DEADLINE, last, self.log()))
            time.sleep(0.1)

    def log(self):
        return tail(self.log_path)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class EndToEnd:
    """The running pair, with the simulated modem's control API as the phone network."""

    def __init__(self, bridge, rapidsms):
        self.bridge = bridge
        self.rapidsms = rapidsms

    def inject(self, sender, text):
        """An SMS from `sender` reaches the simulated modem; returns how many parts it came in."""
        resp = requests.post(self.bridge.control_url + "/inbound",
                             json={"from": sender, "text": text}, timeout=10)
        assert resp.status_code == 200, "control API refused the SMS: %d %s" % (
            resp.status_code, resp.text)
        return resp.json()["parts"]

    def sent_to(self, number):
        """What the simulated modem sent to `number`: one entry per SMS, its parts joined."""
        resp = requests.get(self.bridge.control_url + "/sent", timeout=10)
        resp.raise_for_status()
        return [e for e in resp.json() if e["to"] == number]

    def wait_reply(self, number, expected):
        """Wait until the modem has sent an SMS to `number` (a multipart one shows up once all its
        parts are sent), then check it is exactly one SMS with the expected text, both as the
        simulator decoded it and as gammu decodes the PDUs the bridge wrote."""
        deadline = time.monotonic() + REPLY_DEADLINE
        entries = self.sent_to(number)
        while not entries and time.monotonic() < deadline:
            time.sleep(0.1)
            entries = self.sent_to(number)
        assert len(entries) == 1 and entries[0]["text"] == expected, \
            self.explain(number, expected, entries)
        entry = entries[0]
        assert gammu_text(entry["pdus"], number) == expected, self.explain(number, expected, entries)
        return entry

    def explain(self, number, expected, entries):
        return ("the reply to %s did not go out as expected\nexpected: %r\nsent:     %r\n"
                "--- gsmbridge log ---\n%s\n--- RapidSMS log ---\n%s"
                % (number, expected, entries, self.bridge.log(), self.rapidsms.log()[-6000:]))


def gammu_text(pdus, number):
    """The text of one SMS from its SMS-SUBMIT PDUs (SMSC field first), decoded by gammu: an
    oracle independent of our own codec. Checks the parts belong together and are all there."""
    parts = [gammu.DecodePDU(binascii.unhexlify(p)) for p in pdus]
    for part in parts:
        assert part["Type"] == "Submit" and part["Number"] == number, part
    if len(parts) == 1:
        return parts[0]["Text"]
    udhs = [part["UDH"] for part in parts]
    assert all(u["Type"].startswith("Concatenated") for u in udhs), udhs
    assert len({(u["ID8bit"], u["ID16bit"]) for u in udhs}) == 1, udhs
    assert sorted(u["PartNumber"] for u in udhs) == list(range(1, len(parts) + 1)), udhs
    assert {u["AllParts"] for u in udhs} == {len(parts)}, udhs
    return "".join(part["Text"] for _, part in sorted(
        zip([u["PartNumber"] for u in udhs], parts), key=lambda pair: pair[0]))


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    problem = check_installed()
    if problem:
        pytest.fail("the RapidSMS end-to-end test needs RapidSMS: " + problem, pytrace=False)
    workdir = tmp_path_factory.mktemp("e2e")
    http_port, control_port = free_port(), free_port()
    rapidsms = RapidSMS(workdir / "rapidsms",
                        sendsms_url="http://127.0.0.1:%d/cgi-bin/sendsms" % http_port,
                        username=USERNAME, password=PASSWORD)
    rapidsms.start(timeout=START_DEADLINE)
    try:
        os.makedirs(workdir / "bridge")
        bridge = BridgeProcess(workdir / "bridge", http_port=http_port, control_port=control_port,
                               rapidsms_url=rapidsms.backend_url)
        bridge.start()
        try:
            yield EndToEnd(bridge, rapidsms)
        finally:
            bridge.stop()
    finally:
        rapidsms.stop()


def test_ascii_message_is_answered(e2e):
    assert e2e.inject("+255700000001", "hello") == 1
    reply = e2e.wait_reply("+255700000001", "echo: hello")
    assert reply["encoding"] == "gsm7"


def test_long_message_is_reassembled_and_answered_in_parts(e2e):
    # Numbered words make a lost, repeated or reordered part visible in the text RapidSMS answers
    # with. (RapidSMS's form strips leading and trailing whitespace, so the text ends in a "!".)
    text = " ".join("w%03d" % i for i in range(80)) + "!"
    assert len(text) == 400
    # 400 GSM characters need 3 concatenated parts of at most 153 septets each.
    assert e2e.inject("+255700000002", text) == 3
    reply = e2e.wait_reply("+255700000002", "echo: " + text)
    assert reply["parts"] == 3 and reply["encoding"] == "gsm7"


def test_unicode_and_emoji_survive_both_ways(e2e):
    text = "Habari \U0001F600 \u00f1 \u20ac"       # "Habari 😀 ñ €"
    assert e2e.inject("+255700000003", text) == 1
    reply = e2e.wait_reply("+255700000003", "echo: " + text)
    assert reply["encoding"] == "ucs2"

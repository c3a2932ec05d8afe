"""gammu, a third-party AT driver, against the simulated modem.

gammu was written against real phones and modems, not against our simulator, so it checks the
simulator's dialogue (echo, framing, +CPMS/+CMGL/+CMGS, the prompt) and its PDUs from outside:
what gammu sends must decode into /sent, and what the simulator delivers gammu must read.
The simulator's half is checked over its HTTP control API, as a test harness would use it.
USSD too: gammu's getussd against each style of modem the simulator plays, the Huawei one
included (gammu packs for an E173 by its own model table).
"""

import os
import re
import subprocess

import pytest
import requests

from gsmbridge.codec import ussd
from gsmbridge.simulator.runner import start_simulator

GAMMU = "/usr/bin/gammu"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GAMMU),
                       reason="Debian's gammu is not installed (%s)" % GAMMU),
    # gammu pauses 0.4 s after each command it writes: 4 to 10 s a test, left out of the quick
    # run (pytest -m "not stress")
    pytest.mark.stress,
]


class Gammu:
    """A gammurc for the simulator's link, and a runner that explains failures."""

    def __init__(self, sim, directory):
        self.sim = sim
        self.rc = directory / "gammurc"
        self.log = directory / "gammu.log"
        self.rc.write_text("[gammu]\ndevice = %s\nconnection = at115200\n"
                           "logfile = %s\nlogformat = textall\n" % (sim.link, self.log))

    def __call__(self, *args):
        proc = subprocess.run([GAMMU, "-c", str(self.rc), *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, self.explain(args, proc)
        return proc.stdout

    def explain(self, args, proc):
        log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return "gammu %s exited %d\n--- stdout ---\n%s\n--- stderr ---\n%s\n--- gammu log ---\n" \
               "%s\n--- port ---\n%s" % (" ".join(args), proc.returncode, proc.stdout[-2000:],
                                         proc.stderr[-2000:], log, self.sim.transcript()[-4000:])

    def sent(self):
        return requests.get(self.sim.control_url + "/sent", timeout=5).json()

    def inject(self, sender, text):
        r = requests.post(self.sim.control_url + "/inbound", json={"from": sender, "text": text},
                          timeout=5)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def gammu(tmp_path):
    sim = start_simulator(str(tmp_path / "modem"), control="127.0.0.1:0", report_delay=0.1)
    yield Gammu(sim, tmp_path)
    sim.stop()


def test_identify(gammu):
    out = gammu("--identify")
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert fields["Manufacturer"] == "gsmbridge"
    assert fields["IMEI"] == "356938035643809"
    assert fields["SIM IMSI"] == "640040000000001"


def test_sendsms_text(gammu):
    out = gammu("sendsms", "TEXT", "+255700000002", "-text", "hello")
    assert "OK, message reference=" in out
    assert [(s["to"], s["text"], s["parts"]) for s in gammu.sent()] == [
        ("+255700000002", "hello", 1)]


def test_sendsms_long_unicode(gammu):
    text = "Habari 😀 ✓ " * 40        # 440 characters, 480 UTF-16 units: 8 parts of 67
    out = gammu("sendsms", "TEXT", "+255700000002", "-len", "400", "-unicode", "-text", text)
    assert out.count("OK, message reference=") == 8
    [entry] = gammu.sent()
    assert (entry["text"], entry["parts"], entry["encoding"]) == (text, 8, "ucs2")
    assert len(set(entry["references"])) == 8


def test_sendsms_with_status_report(gammu):
    gammu("sendsms", "TEXT", "+255700000003", "-report", "-text", "report please")
    [entry] = gammu.sent()
    assert entry["status_report"] is True
    # gammu leaves +CNMI alone, so the report is stored; gammu must be able to read it
    out = gammu("getallsms")
    assert "SMS status report" in out and '"+255700000003"' in out
    assert "Reference number     : %d" % entry["reference"] in out
    assert "Delivered" in out


def test_getallsms_reads_injected_messages(gammu):
    gammu.inject("+255700000001", "Habari za asubuhi")
    long_text = "Karibu ✓ " + "sana " * 40
    assert gammu.inject("+255700000009", long_text)["parts"] == 4
    out = gammu("getallsms")
    blocks = out.split("\nLocation ")
    single = [b for b in blocks if '"+255700000001"' in b]
    assert len(single) == 1 and "Habari za asubuhi" in single[0]
    parts = [b for b in blocks if '"+255700000009"' in b]
    assert len(parts) == 4
    assert all("Unicode" in b for b in parts)
    assert "part 4 of 4" in parts[3] and "Karibu ✓" in parts[0]
    assert "5 SMS parts in 5 SMS sequences" in out


# -- USSD: gammu's getussd against each style of simulated modem -------------------------------

@pytest.fixture
def gammu_with(tmp_path):
    """gammu_with(**options) -> a Gammu on a simulator started with those options."""
    started = []

    def make(**options):
        sim = start_simulator(str(tmp_path / "modem"), control="127.0.0.1:0", **options)
        started.append(sim)
        return Gammu(sim, tmp_path)

    yield make
    for sim in started:
        sim.stop()


def ussd_reply(out):
    """(status, reply) from gammu getussd's report."""
    status = re.search(r"Status\s+:\s*(.*)", out).group(1).strip()
    reply = re.search(r'Service reply\s+:\s*"(.*)"', out, re.DOTALL).group(1)
    return status, reply


def ussd_asked(gammu):
    """The requests the simulator got (gammu's AT+CUSD=2 afterwards left out)."""
    asked = requests.get(gammu.sim.control_url + "/ussd/requests", timeout=5).json()
    return [entry for entry in asked if "code" in entry]


def test_getussd_balance_in_text_style(gammu_with):
    gammu = gammu_with(ussd_delay=0.1, balance=42.5)
    assert ussd_reply(gammu("getussd", "*102#")) == (
        "No action needed", "Your balance is 42.50 TZS")
    # gammu asks in UCS2 (AT+CSCS="UCS2"), and reads the UCS-2 hex the modem answers with dcs 15
    [asked] = ussd_asked(gammu)
    assert (asked["code"], asked["raw"]) == ("*102#", "002A0031003000320023")


def test_getussd_menu_and_a_status_without_text(gammu_with):
    # (each getussd takes gammu some 15 s, whatever the modem does: two here are enough; the
    # other statuses are checked through pyserial in test_simulator_services.py)
    gammu = gammu_with(ussd_delay=0.1)
    assert ussd_reply(gammu("getussd", "*100#")) == ("Action needed", "1. Balance\n2. Bundles")
    assert ussd_reply(gammu("getussd", "*103#")) == ("Terminated", "")


def test_getussd_ucs2_style(gammu_with):
    gammu = gammu_with(ussd_delay=0.1, ussd_style="ucs2", currency="KES")
    assert ussd_reply(gammu("getussd", "*102#")) == (
        "No action needed", "Your balance is 1234.50 KES")


def test_getussd_huawei_packs_both_ways(gammu_with):
    """gammu knows the E173 wants packed GSM 7-bit (its F_ENCODED_USSD): the simulated Huawei
    must take gammu's packed request and gammu must read the packed reply."""
    gammu = gammu_with(ussd_delay=0.1, ussd_style="packed", manufacturer="huawei",
                       model="E173")
    assert ussd_reply(gammu("getussd", "*102#")) == (
        "No action needed", "Your balance is 1234.50 TZS")
    [asked] = ussd_asked(gammu)
    assert (asked["code"], asked["style"]) == ("*102#", "packed")
    assert asked["raw"] == ussd.pack("*102#") == "AA184C3602", "gammu packs as our codec does"

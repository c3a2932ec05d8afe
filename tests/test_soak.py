"""One bridge, one simulated modem, every fault of the simulator in turn: after each the bridge is up
again by itself and every message in and out has gone through.

The modem is a process of its own (`gsmbridge simulate`), so faults that need the bridge restarted
(a SIM still busy at start, a SIM filled while the bridge was away) keep its state, as a real modem
would.
"""

import collections
import threading
import time

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from gsmbridge.store import Store
from httpsink import HttpSink
from test_worker import DeadModem

#: minutes of wall time: left out of the quick run (pytest -m "not stress")
pytestmark = pytest.mark.stress

ALICE = "+255700000001"
BOB = "+255711000002"


class Soak:
    def __init__(self, bridge, sink):
        self.bridge = bridge
        self.sink = sink
        self.expected_in = set()
        self.expected_out = set()
        self.states = []                # (phase, modem state) as /status showed them
        self.phase = "start"
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        while not self._stop.is_set():
            try:
                modems = self.bridge.status()["modems"]
                for modem in modems.values():
                    if not self.states or self.states[-1] != (self.phase, modem.get("state")):
                        self.states.append((self.phase, modem.get("state")))
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)

    def seen(self, phase):
        return {state for p, state in self.states if p == phase}

    def exchange(self, tag, count=3):
        """count SMS in (one of them long) and count out, tagged with the phase."""
        for i in range(count):
            text = "%s in %d" % (tag, i) + (" and a long tail" * 12 if i == 0 else "")
            self.bridge.inject(ALICE, text)
            self.expected_in.add(text)
        for i in range(count):
            text = "%s out %d" % (tag, i) + (" and a long tail" * 12 if i == 0 else "")
            assert self.bridge.send(BOB, text).status_code == 202
            self.expected_out.add(text)

    def forwarded(self):
        return {r.args.get("text") for r in list(self.sink.requests)}

    def sent(self):
        return {m["text"] for m in self.bridge.sent()}

    def settle(self, timeout=45):
        """Everything so far through, and the modem up."""
        wait_for(lambda: self.forwarded() >= self.expected_in, timeout=timeout, interval=0.2,
                 message="inbound of %s at the sink (missing %s)" % (
                     self.phase, sorted(self.expected_in - self.forwarded())[:3]))
        wait_for(lambda: self.sent() >= self.expected_out, timeout=timeout, interval=0.2,
                 message="outbound of %s sent" % self.phase)
        wait_for(lambda: all(m.get("state") == "up"
                             for m in self.bridge.status()["modems"].values()),
                 timeout=timeout, message="modem up after %s" % self.phase)

    def restart(self):
        assert self.bridge.terminate() == 0
        self.bridge.start()


def test_every_fault_in_turn_loses_nothing_and_heals_itself(tmp_path):
    sink = HttpSink()
    bridge = BridgeProcess(
        tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/", separate_modem=True,
        simulate_args=["--cnma-timeout", "1", "--redelivery-delay", "0.5", "--capacity", "5",
                       "--seed", "7"],
        modem_extra="command_timeout = 2\nsend_timeout = 10\nsweep_interval = 5\n")
    soak = Soak(bridge, sink)
    started = time.monotonic()
    timings = {}
    try:
        bridge.start()
        soak._watcher.start()

        def phase(name):
            soak.phase = name
            timings[name] = time.monotonic()

        phase("slow CMGS")
        bridge.faults(slow_cmgs=1.5)
        soak.exchange("slow")
        soak.settle()
        bridge.faults(slow_cmgs=0)

        phase("random +CMS ERROR: 500")
        bridge.faults(cms_error=0.5, cms_error_code=500)
        soak.exchange("cms500")
        wait_for(lambda: requests.get(bridge.control + "/state", timeout=5).json()["rejected"],
                 message="a send refused")
        bridge.faults(cms_error=0)       # the retries (5 s later) go through
        soak.settle()

        phase("SIM busy at start")
        bridge.terminate()
        bridge.faults(sim_busy=4)
        requests.post(bridge.control + "/reset", timeout=5).raise_for_status()
        bridge.start(timeout=40)
        soak.exchange("busy")
        soak.settle()

        phase("storage full")
        bridge.terminate()               # meanwhile the SIM (5 slots) fills up
        for i in range(8):
            text = "stored while away %d" % i
            bridge.inject(ALICE, text)
            soak.expected_in.add(text)
        wait_for(lambda: requests.get(bridge.control + "/state", timeout=5).json()
                 ["storage"]["SM"]["used"] == 5, message="SIM full")
        bridge.faults(storage_full=True)
        bridge.start()
        soak.exchange("full")
        soak.settle()
        bridge.faults(storage_full=False)
        wait_for(lambda: requests.get(bridge.control + "/state", timeout=5).json()
                 ["storage"]["SM"]["used"] == 0, message="SIM emptied")

        phase("hang")
        bridge.faults(hang=-1)           # until the port is reopened
        soak.exchange("hang")
        soak.settle()
        assert soak.seen("hang") - {"up"}, "the hang went unnoticed"

        phase("disappear")
        bridge.faults(disappear=2)
        soak.exchange("gone")
        soak.settle()
        assert "down" in soak.seen("disappear")

        phase("line noise")
        bridge.faults(noise=0.3)
        soak.exchange("noise", count=6)
        time.sleep(2)
        soak.settle()
        bridge.faults(noise=0)

        phase("URC storm")
        bridge.faults(urc_storm=50)
        soak.exchange("storm", count=6)
        time.sleep(2)
        soak.settle()
        bridge.faults(urc_storm=0)

        phase("no network")
        bridge.faults(registration=2)
        soak.exchange("offline")
        wait_for(lambda: "no network" in soak.seen("no network"), message="no network shown")
        bridge.faults(registration=1)
        soak.settle()

        phase("end")
        forwards = collections.Counter(r.args.get("text") for r in list(sink.requests))
        sent = collections.Counter(m["text"] for m in bridge.sent())
        assert set(forwards) == soak.expected_in
        assert set(sent) == soak.expected_out
        names = list(timings)
        print("soak: %.0f s; %s; repeats in %d out %d" % (
            time.monotonic() - started,
            ", ".join("%s %.1f s" % (a, timings[b] - timings[a]) for a, b in zip(names, names[1:])),
            sum(n - 1 for n in forwards.values()), sum(n - 1 for n in sent.values())))
        counts = bridge.status()["counts"]
        assert counts["outbound"]["failed"] == counts["inbound"]["failed"] == 0
        assert counts["bad_pdus"] == 0
        assert bridge.terminate() == 0
        with open(bridge.log_path, errors="replace") as f:
            log = f.read()
        # each fault really happened (the bridge's DEBUG log shows what the modem did)
        for sign in ("+CMS ERROR: 500", "SIM busy", "watchdog", "port gone", "< noise",
                     "^RSSI", "not registered"):
            assert sign in log, sign
    finally:
        soak._stop.set()
        bridge.stop()
        sink.stop()


def test_a_modem_that_stays_silent_makes_the_bridge_exit_3(tmp_path):
    """The watchdog's last step, through the real process: exit status 3 for the supervisor
    (watchdog_exit_after = 1: the first failed recovery, ESC and AT unanswered, is the last)."""
    modem = DeadModem(str(tmp_path / "silent.tty"))
    sink = HttpSink()
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                           modem_port=modem.link, log_level="INFO",
                           modem_extra="command_timeout = 2\nwatchdog_exit_after = 1\n")
    try:
        bridge.start()
        modem.die()
        r = bridge.send(BOB, "waits for a modem that answers")
        assert r.status_code == 202
        assert bridge.proc.wait(30) == 3
        log = bridge.log()
        assert "CRITICAL" in log and "giving up" in log and "status 3" in log
        store = Store(str(tmp_path / "store.sqlite3"))
        try:
            assert store.get_outbound(r.json()["id"])["status"] == "queued"   # kept, not lost
        finally:
            store.close()
    finally:
        bridge.stop()
        sink.stop()
        modem.stop()

"""SIGKILL the bridge at random moments while it moves thousands of messages both ways: nothing is
lost, and the only repeats are the messages in flight at the moment of a kill.

The simulated modem runs as a process of its own and outlives every bridge, as a real modem and its
network do: an SMS the killed bridge had not acknowledged (+CNMA) comes again, an SMS it had
committed but not acknowledged comes again too and is recognised. The HTTP sink stands in for
RapidSMS.
"""

import collections
import random
import threading
import time

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from httpsink import HttpSink

#: minutes of wall time: left out of the quick run (pytest -m "not stress")
pytestmark = pytest.mark.stress

INBOUND = 2000
OUTBOUND = 2000
KILLS = 20          # kills while messages are still on their way
SENDERS = 25
PACE = 45.0         # seconds over which the messages are handed over (so kills find work)


def inbound_text(i):
    text = "chaos in %04d" % i
    if i % 40 == 0:                     # now and then a long one: two parts
        text += " " + "long inbound " * 14
    return text


def outbound_text(i):
    text = "chaos out %04d" % i
    if i % 40 == 0:
        text += " " + "long outbound " * 13
    return text


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    seed = random.randrange(1 << 30)
    print("chaos seed", seed)
    rng = random.Random(seed)
    sink = HttpSink()
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                           separate_modem=True, log_level="INFO",
                           simulate_args=["--cnma-timeout", "1", "--redelivery-delay", "0.5"],
                           modem_extra="sweep_interval = 2\n")
    # The bridge's API has no idempotency key: a POST cut by a kill is ambiguous to its client.
    # That is not what this test is about, so no kill lands in the middle of a POST.
    api_lock = threading.Lock()
    bridge_up = threading.Event()
    failures = []

    def inject():
        """The network: SMS for the modem, whether or not a bridge is running."""
        session = requests.Session()
        try:
            for i in range(INBOUND):
                time.sleep(max(0.0, started + PACE * i / INBOUND - time.monotonic()))
                session.post(bridge.control + "/inbound", timeout=30, json={
                    "from": "+2557000%05d" % (i % SENDERS), "text": inbound_text(i)}
                ).raise_for_status()
        except Exception as exc:        # noqa: BLE001 -- reported by the main thread
            failures.append("inject: %r" % exc)

    def post():
        """RapidSMS: replies through the bridge's API, again once a bridge is back."""
        session = requests.Session()
        i = 0
        try:
            while i < OUTBOUND:
                time.sleep(max(0.0, started + PACE * i / OUTBOUND - time.monotonic()))
                bridge_up.wait(60)
                with api_lock:
                    if not bridge_up.is_set():
                        continue
                    r = session.post(bridge.api + "/api/v1/messages", auth=bridge.auth,
                                     timeout=30, json={"to": "+255711000001",
                                                       "text": outbound_text(i)})
                assert r.status_code == 202, r.text
                i += 1
        except Exception as exc:        # noqa: BLE001
            failures.append("post %d: %r" % (i, exc))

    def all_inbound_forwarded():
        return {r.args.get("text") for r in list(sink.requests)} >= expected_in

    def all_outbound_sent():
        return {m["text"] for m in bridge.sent()} >= expected_out

    expected_in = {inbound_text(i) for i in range(INBOUND)}
    expected_out = {outbound_text(i) for i in range(OUTBOUND)}
    started = time.monotonic()
    threads = [threading.Thread(target=inject, daemon=True),
               threading.Thread(target=post, daemon=True)]
    try:
        bridge.start()
        bridge_up.set()
        for t in threads:
            t.start()
        kills = busy_kills = 0
        while busy_kills < KILLS and kills < 2 * KILLS:
            time.sleep(rng.uniform(0.1, 1.0))   # kills land while messages are still paced in
            busy = not (all_inbound_forwarded() and all_outbound_sent())
            with api_lock:
                bridge_up.clear()
                bridge.kill()
            kills += 1
            busy_kills += busy
            bridge.start()
            bridge_up.set()
        for t in threads:
            t.join(120)
        assert not failures, failures
        try:
            wait_for(all_inbound_forwarded, timeout=120, interval=0.5,
                     message="every inbound SMS at the sink")
            wait_for(all_outbound_sent, timeout=120, interval=0.5,
                     message="every outbound SMS sent")
        except AssertionError:
            missing_in = expected_in - {r.args.get("text") for r in list(sink.requests)}
            missing_out = expected_out - {m["text"] for m in bridge.sent()}
            print("missing inbound %d %s" % (len(missing_in), sorted(missing_in)[:10]))
            print("missing outbound %d %s" % (len(missing_out), sorted(missing_out)[:10]))
            print("bridge status", bridge.status()["counts"], bridge.status()["modems"])
            print("modem state", requests.get(bridge.control + "/state", timeout=10).json())
            raise
        elapsed = time.monotonic() - started

        forwards = collections.defaultdict(list)
        for r in list(sink.requests):
            forwards[r.args.get("text")].append(r.headers.get("X-Message-Id"))
        sent = collections.Counter(m["text"] for m in bridge.sent())
        in_dups = {t: len(ids) - 1 for t, ids in forwards.items() if len(ids) > 1}
        out_dups = {t: n - 1 for t, n in sent.items() if n > 1}
        print("chaos: %d kills (%d with work in flight) in %.0f s; inbound duplicates %d %s; "
              "outbound duplicates %d %s" % (
                  kills, busy_kills, elapsed, sum(in_dups.values()), sorted(in_dups),
                  sum(out_dups.values()), sorted(out_dups)))

        assert busy_kills >= KILLS, "the messages went through before %d kills" % KILLS
        assert set(forwards) == expected_in
        assert set(sent) == expected_out
        assert all(len(set(ids)) == 1 and ids[0] for ids in forwards.values()), \
            "every forward of one SMS carries the same X-Message-Id"
        assert sum(in_dups.values()) <= kills
        assert sum(out_dups.values()) <= kills
        counts = bridge.status()["counts"]
        assert counts["inbound"]["failed"] == 0
        assert counts["outbound"]["failed"] == counts["outbound"]["unknown"] == 0
        assert bridge.terminate() == 0
    finally:
        bridge_up.set()
        bridge.stop()
        sink.stop()

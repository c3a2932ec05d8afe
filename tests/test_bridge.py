"""The whole bridge as one process: simulated modem -> store -> HTTP sink, and API -> store -> modem.

Each test runs `python -m gsmbridge run` for real, on the built-in simulated modem, with an HTTP sink
on loopback standing in for RapidSMS.
"""

import subprocess
import sys

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for






def received(sink):
    """(id, text, X-Message-Id) of every request the sink got, in order."""
    return [(r.args.get("id"), r.args.get("text"), r.headers.get("X-Message-Id"))
            for r in sink.requests]


@pytest.mark.parametrize("text", [
    "hello from the field",
    "Long report: " + "0123456789 abcdefghij " * 18,  # 409 chars: three concatenated parts
    "Habari 😀 ñ € [x] {y}",
])
def test_inbound_reaches_rapidsms_intact(bridge, sink, text):
    bridge.inject("+255700000001", text)
    got = wait_for(lambda: received(sink), message="the SMS at the sink")
    assert [(sender, body) for sender, body, _ in got] == [("+255700000001", text)]
    assert got[0][2], "every forward carries X-Message-Id"


def test_outbound_json_api_is_sent_by_the_modem(bridge):
    text = "Reply 😀 " + "x" * 150
    r = bridge.send(["+255700000002", "+255700000003"], text)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and len(body["ids"]) == 2 and body["parts"] == 3
    sent = wait_for(lambda: len(bridge.sent()) >= 2 and bridge.sent(), message="both sent")
    assert sorted((s["to"], s["text"]) for s in sent) == [
        ("+255700000002", text), ("+255700000003", text)]
    status = wait_for(lambda: (lambda j: j["status"] == "sent" and j)(
        requests.get(bridge.api + "/api/v1/messages/" + body["ids"][0], auth=bridge.auth,
                     timeout=5).json()), message="status sent")
    assert status["to"] == "+255700000002"


def test_kannel_sendsms_as_rapidsms_sends_it(bridge):
    params = {"username": "rapidsms", "password": "s3cret", "to": "+255700000004",
              "text": "Asante sana ✓".encode("utf-8"), "charset": "UTF-8", "coding": "2",
              "smsc": "", "from": ""}
    r = requests.get(bridge.api + "/cgi-bin/sendsms", params=params, timeout=5)
    assert (r.status_code, r.text) == (202, "0: Accepted for delivery")
    sent = wait_for(lambda: bridge.sent(), message="sent")
    assert [(s["to"], s["text"]) for s in sent] == [("+255700000004", "Asante sana ✓")]

    bad = dict(params, password="wrong")
    r = requests.get(bridge.api + "/cgi-bin/sendsms", params=bad, timeout=5)
    assert r.status_code == 403


def test_rapidsms_down_then_back_everything_arrives_in_order(tmp_path, sink):
    # Tries every half second at most (the forwarder backs off from 2 s up to retry_cap).
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                           retry_cap=0.5)
    bridge.start()
    try:
        sink.set_response(503, body="down for maintenance")
        texts = ["message %d" % i for i in range(6)]
        for text in texts:
            bridge.inject("+255700000005", text)
        wait_for(lambda: len(sink.requests) >= 3, message="retries while down")
        assert all(r.status == 503 for r in sink.requests)
        sink.set_response(200)
        wait_for(lambda: len([r for r in sink.requests if r.status == 200]) == 6, timeout=60,
                 message="all delivered after recovery")
        delivered = [r.args["text"] for r in sink.requests if r.status == 200]
        assert delivered == texts
        # A message's retries carry the same id as its final delivery.
        ids = {}
        for r in sink.requests:
            ids.setdefault(r.args["text"], set()).add(r.headers["X-Message-Id"])
        assert all(len(v) == 1 for v in ids.values())
    finally:
        bridge.stop()


def test_sigterm_exits_zero_and_sigkill_loses_nothing(tmp_path, sink):
    # The modem is a process of its own here, as a real one is: killing the bridge must not lose
    # what is on its SIM.
    # The network's timers are cut from a real one's (12 s for +CNMA, 10 s to try again) to a
    # second, and the bridge sweeps the SIM every 2 s instead of every minute: the same path, sooner.
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                           separate_modem=True,
                           simulate_args=["--cnma-timeout", "1", "--redelivery-delay", "0.5"],
                           modem_extra="sweep_interval = 2\n")
    bridge.start()
    try:
        for i in range(5):
            assert bridge.send("+255700000006", "out %d" % i).status_code == 202
        bridge.inject("+255700000007", "in before kill")
        bridge.kill()
        bridge.start()
        wait_for(lambda: {"out %d" % i for i in range(5)} <= {s["text"] for s in bridge.sent()},
                 message="outbound sent after restart")
        # Unacknowledged at the kill, the SMS is redelivered by the network (after its +CNMA
        # timeout and redelivery delay), into storage if the modem dropped routing meanwhile.
        wait_for(lambda: "in before kill" in [r.args.get("text") for r in sink.requests],
                 timeout=90, message="inbound forwarded after restart")
        assert bridge.terminate() == 0
    finally:
        bridge.stop()


def test_bad_config_exits_2_naming_the_key(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[modem]\nport = sim://\n[http]\nlisten = 0.0.0.0:13013\n"
                   "[rapidsms]\nurl = http://127.0.0.1:8000/backend/kannel-backend/\n")
    for command in ("check-config", "run"):
        p = subprocess.run([sys.executable, "-m", "gsmbridge", command, "-c", str(ini)],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2
        assert "[http]" in p.stderr and "listen" in p.stderr


def test_send_and_status_commands_find_the_bridge_from_its_config(bridge):
    def gsmbridge(*args):
        return subprocess.run([sys.executable, "-m", "gsmbridge", *args, "-c", bridge.ini],
                              capture_output=True, text=True, timeout=30)

    p = gsmbridge("send", "--to", "+255700000008", "--text", "from the command line ✓")
    assert p.returncode == 0, p.stderr
    assert "queued for +255700000008" in p.stdout
    wait_for(lambda: [s for s in bridge.sent() if s["text"] == "from the command line ✓"],
             message="the CLI's message sent")

    p = gsmbridge("send", "--to", "not-a-number", "--text", "x")
    assert p.returncode == 1 and "not-a-number" in p.stderr

    p = gsmbridge("status")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "modem" in p.stdout and "up" in p.stdout


def test_a_password_in_the_receiver_url_never_reaches_the_log(tmp_path, sink):
    """httprouter's ROUTER_PASSWORD in [rapidsms] url: used on every forward, in no log line, at
    start (DEBUG, the most talkative level) or on any failed forward."""
    bridge = BridgeProcess(tmp_path, style="httprouter",
                           rapidsms_url=sink.url + "/router/receive?password=s3cret-pw")
    sink.set_response(500, "down")
    bridge.start()
    try:
        bridge.inject("+255700000009", "habari")
        wait_for(lambda: len(sink.requests) >= 2, message="two failed forwards")
        sink.set_response(302, headers={"Location": sink.url
                                        + "/router/receive?password=s3cret-pw&x=1"})
        wait_for(lambda: any(r.status == 302 for r in sink.requests), message="a redirect")
        sink.set_response(200)
        wait_for(lambda: any(r.status == 200 for r in sink.requests), message="delivered")
        assert {r.args["password"] for r in sink.requests} == {"s3cret-pw"}
        p = subprocess.run([sys.executable, "-m", "gsmbridge", "status", "-c", bridge.ini],
                           capture_output=True, text=True, timeout=30)
        assert "s3cret" not in p.stdout + p.stderr
    finally:
        bridge.stop()
    with open(bridge.log_path, errors="replace") as f:
        log = f.read()
    assert "forwarding to %s/router/receive?password=***" % sink.url in log      # the start
    assert "not delivered (attempt 1): HTTP 500" in log
    assert "redirect to %s/router/receive?password=***&x=***" % sink.url in log
    assert "s3cret" not in log

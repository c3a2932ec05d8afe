"""The SIM services through a whole bridge process (`gsmbridge run`) on the simulated modem:
USSD over HTTP and from the command line, the balance watch in /status, /metrics, /health, the
page and `gsmbridge status`, SIM identity, calls hung up and posted to call_url, and a modem
found by its IMEI.
"""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bridgeproc import BridgeProcess, free_port, wait_for
from gsmbridge.simulator.runner import start_simulator
from gsmbridge.web import openapi

ALICE = "+255700000001"
BALANCE = "Your balance is 1234.50 TZS"


def start(tmp_path, sink, modem_extra="", **options):
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                           modem_extra=modem_extra, **options)
    bridge.start()
    return bridge


@pytest.fixture
def bridges(tmp_path, sink):
    made = []

    def make(modem_extra="", **options):
        home = tmp_path / ("b%d" % len(made))
        home.mkdir()
        bridge = start(home, sink, modem_extra, **options)
        made.append(bridge)
        return bridge

    yield make
    for bridge in made:
        bridge.stop()


def ussd(bridge, timeout=60, **body):
    return requests.post(bridge.api + "/api/v1/ussd", json=body, auth=bridge.auth,
                         timeout=timeout)


def documented(answer):
    schema = openapi.SCHEMAS["UssdAnswer"]
    assert set(schema["required"]) <= set(answer) <= set(schema["properties"]), answer
    return answer


def cli(bridge, *args):
    return subprocess.run([sys.executable, "-m", "gsmbridge", *args, "-c", bridge.ini],
                          capture_output=True, text=True, timeout=90)


# --- USSD ------------------------------------------------------------------------------------

@pytest.mark.parametrize("style, early", [("text", False), ("ucs2", False), ("packed", False),
                                          ("text", True)])
def test_ussd_menu_round_trip_through_the_api(bridges, style, early):
    bridge = bridges("simulate = ussd_style=%s ussd_early=%s ussd_delay=0.3"
                     % (style, "yes" if early else "no"))
    menu = ussd(bridge, code="*100#")
    assert menu.status_code == 200, menu.text
    menu = documented(menu.json())
    assert (menu["status"], menu["reply"], menu["modem"], menu["error"]) == (
        "more", "1. Balance\n2. Bundles", "modem", None)
    session = menu["session"]
    bundles = documented(ussd(bridge, session=session, code="2").json())
    assert (bundles["status"], bundles["reply"], bundles["session"]) == (
        "more", "Bundles:\n1. Daily 500MB\n2. Weekly 2GB", session)
    bought = documented(ussd(bridge, session=session, code="1").json())
    assert (bought["status"], bought["reply"]) == ("done", "You have bought Daily 500MB.")
    again = ussd(bridge, session=session, code="1")
    assert again.status_code == 409 and "has ended" in again.json()["error"]
    assert documented(ussd(bridge, code="*102#").json())["reply"] == BALANCE
    asked = requests.get(bridge.control + "/ussd/requests", timeout=5).json()
    assert [r["code"] for r in asked if "code" in r] == ["*100#", "2", "1", "*102#"]


def test_cusd_2_4_5_and_ending_a_menu(bridges):
    bridge = bridges("simulate = ussd_delay=0.2")
    outcomes = {code: documented(ussd(bridge, code=code).json())
                for code in ("*103#", "*999#", "*104#")}
    assert {code: (a["status"], a["reply"]) for code, a in outcomes.items()} == {
        "*103#": ("failed", None), "*999#": ("failed", None), "*104#": ("timeout", None)}
    assert "does not support" in outcomes["*999#"]["error"]
    pin = ussd(bridge, code="*150*01*4321#").json()        # mobile money: a PIN in the code
    assert pin["status"] == "failed" and pin["code"] == "*150*01*4321#"
    with open(bridge.log_path, errors="replace") as log:
        shown = [line for line in log if " DEBUG " not in line and "*150" in line]
    assert shown and not any("4321" in line for line in shown), shown
    menu = ussd(bridge, code="*100#").json()
    ended = requests.delete(bridge.api + "/api/v1/ussd/" + menu["session"], auth=bridge.auth,
                            timeout=10)
    assert ended.status_code == 200 and ended.json() == {
        "session": menu["session"], "modem": "modem", "status": "ended", "was_open": True}
    assert ussd(bridge, session=menu["session"], code="1").status_code == 409
    wait_for(lambda: any(r.get("cancel") for r in requests.get(
        bridge.control + "/ussd/requests", timeout=5).json()), message="AT+CUSD=2")
    assert requests.get(bridge.control + "/state", timeout=5).json()["ussd_session"] is None
    # a new request right after is answered (the modem's session was cleared)
    assert ussd(bridge, code="*102#").json()["reply"] == BALANCE


def test_ussd_refusals_are_4xx_with_reasons(bridges):
    bridge = bridges()
    for body, status, words in [
            ({}, 400, "code"), ({"code": '*1"#'}, 400, "cannot be sent"),
            ({"code": "*1#", "modem": "nope"}, 404, "No modem"),
            ({"code": "1", "session": "0123456789abcdef"}, 404, "No USSD session"),
            ({"code": "*1#", "extra": 1}, 400, "Unknown field"),
            ({"code": "x" * 161}, 400, "too long")]:
        resp = ussd(bridge, **body)
        assert resp.status_code == status and words in resp.json()["error"], (body, resp.text)
    assert requests.post(bridge.api + "/api/v1/ussd", json={"code": "*102#"},
                         timeout=10).status_code == 401
    assert requests.delete(bridge.api + "/api/v1/ussd/0123456789abcdef", auth=bridge.auth,
                           timeout=10).status_code == 404


def test_a_slow_reply_while_sms_keep_flowing(bridges):
    bridge = bridges("simulate = ussd_delay=4")
    bridge.faults(network_delay=0.2)
    result = {}

    def ask():
        result["answer"] = ussd(bridge, code="*102#").json()
        result["at"] = time.monotonic()

    asker = threading.Thread(target=ask)
    asker.start()
    wait_for(lambda: requests.get(bridge.control + "/ussd/requests", timeout=5).json(),
             message="the USSD request at the modem")
    texts = ["meanwhile %d" % i for i in range(4)]
    for text in texts:
        assert bridge.send([ALICE], text).status_code == 202
    wait_for(lambda: len(bridge.sent()) == 4, timeout=20, message="the SMS sent")
    sent_at = time.monotonic()
    asker.join(60)
    assert result["answer"]["status"] == "done" and result["answer"]["reply"] == BALANCE
    assert sent_at < result["at"], "the SMS went out while the reply was on its way"
    assert sorted(s["text"] for s in bridge.sent()) == texts


def wire(bridge):
    """What the bridge wrote to its modem (">") and read back ("<"), from its DEBUG log."""
    with open(bridge.log_path, errors="replace") as log:
        return [line.split(".tty ", 1)[1].rstrip("\n") for line in log
                if " DEBUG gsmbridge.modem " in line and ".tty " in line]


def test_a_ussd_request_never_breaks_a_send_in_flight(bridges):
    bridge = bridges("simulate = ussd_delay=0.2")
    bridge.faults(network_delay=1.0)
    for i in range(3):
        assert bridge.send([ALICE], "slow send %d" % i).status_code == 202
    wait_for(lambda: any(line.startswith("> AT+CMGS") for line in wire(bridge)),
             message="a send in flight")
    answer = ussd(bridge, code="*102#").json()
    assert (answer["status"], answer["reply"]) == ("done", BALANCE)
    wait_for(lambda: len(bridge.sent()) == 3, timeout=30, message="every SMS sent")
    sending, cusd_during_send, sends = False, [], 0
    for line in wire(bridge):
        if line.startswith("> AT+CMGS"):
            sending, sends = True, sends + 1
        elif sending and line.startswith(("< OK", "< +CMS ERROR", "< ERROR")):
            sending = False
        elif sending and line.startswith("> AT+CUSD"):
            cusd_during_send.append(line)
    assert sends == 3 and cusd_during_send == []
    lines = wire(bridge)
    [cusd] = [i for i, line in enumerate(lines) if line.startswith("> AT+CUSD=1")]
    cmgs = [i for i, line in enumerate(lines) if line.startswith("> AT+CMGS")]
    assert cmgs[0] < cusd < cmgs[-1], "its turn came between two sends, not after the queue"


def test_ussd_from_the_command_line(bridges):
    bridge = bridges("simulate = ussd_delay=0.2")
    done = cli(bridge, "ussd", "*102#")
    assert (done.returncode, done.stdout) == (0, BALANCE + "\n"), done.stderr
    menu = cli(bridge, "ussd", "*100#")
    assert menu.returncode == 0 and menu.stdout.startswith("1. Balance\n2. Bundles\n")
    session = menu.stdout.split("--session ")[1].split()[0]
    answer = cli(bridge, "ussd", "--session", session, "1")
    assert (answer.returncode, answer.stdout) == (0, BALANCE + "\n")
    failed = cli(bridge, "ussd", "*999#")
    assert failed.returncode == 1 and "failed" in failed.stderr
    menu = cli(bridge, "ussd", "--json", "*100#")
    session = json.loads(menu.stdout)["session"]
    ended = cli(bridge, "ussd", "--end", session)
    assert (ended.returncode, ended.stdout) == (0, "session %s ended\n" % session)


# --- balance watch and identity --------------------------------------------------------------

def metric(bridge, name):
    text = requests.get(bridge.api + "/metrics", auth=bridge.auth, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == {"modem": "modem"}:
                return sample.value
    return None


def test_balance_and_identity_in_status_metrics_health_page_and_cli(bridges):
    before = time.time()
    bridge = bridges("balance_code = *102#\nlow_balance = 2000\n"
                     "simulate = balance=1234.5 own_number=+255754000111 imei=490154203237518 "
                     "iccid=89255040000000012345 ussd_delay=0.2")
    modem = wait_for(lambda: (lambda m: m.get("balance") is not None and m)(
        bridge.status()["modems"]["modem"]), message="the balance checked at start")
    assert modem["balance"] == 1234.5 and modem["balance_text"] == BALANCE
    assert before <= modem["balance_checked_at"] <= time.time()
    assert modem["identity"] == {
        "manufacturer": "gsmbridge", "model": "SIM-27005", "revision": "1.0.0",
        "imei": "490154203237518", "imsi": "640040000000001", "iccid": "89255040000000012345",
        "own_number": "+255754000111"}
    assert set(modem) <= set(openapi.SCHEMAS["Modem"]["properties"]) | {"updated_at"}
    warning = "modem modem: airtime balance 1234.5 is below low_balance 2000"
    health = requests.get(bridge.api + "/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"ok": True, "warnings": [warning]}
    assert metric(bridge, "gsmbridge_modem_balance") == 1234.5
    assert metric(bridge, "gsmbridge_modem_balance_checked_timestamp_seconds") == \
        pytest.approx(modem["balance_checked_at"])
    page = requests.get(bridge.api + "/", auth=bridge.auth, timeout=10).text
    assert 'data-balance="1234.5"' in page and "(below 2000)" in page and warning in page
    assert "ICCID 89255040000000012345" in page and "IMEI 490154203237518" in page
    status = cli(bridge, "status")
    assert status.returncode == 0
    assert "balance 1234.5 (checked" in status.stdout and "BELOW low_balance 2000" in status.stdout
    assert "IMEI 490154203237518" in status.stdout and "number +255754000111" in status.stdout


def test_a_balance_the_reply_does_not_give_is_kept_as_an_error(bridges):
    bridge = bridges("balance_code = *106#\nbalance_pattern = Salio ([0-9.]+)\n"
                     "simulate = ussd_delay=0.1 own_number=+255754000111")
    modem = wait_for(lambda: (lambda m: m.get("balance_error") and m)(
        bridge.status()["modems"]["modem"]), message="the failed check")
    assert modem.get("balance") is None and modem["balance_text"] == "Your number is +255754000111"
    assert "no amount" in modem["balance_error"]
    assert metric(bridge, "gsmbridge_modem_balance") is None
    assert requests.get(bridge.api + "/health", timeout=10).json() == {"ok": True}


# --- calls -----------------------------------------------------------------------------------

def calls_posted(sink):
    return [r for r in sink.requests if r.path == "/missed-call/"]


def test_a_call_is_hung_up_counted_and_posted(bridges, sink):
    bridge = bridges("call_url = %s/missed-call/" % sink.url)
    before = time.time()
    requests.post(bridge.control + "/calls", json={"from": ALICE, "rings": 5},
                  timeout=5).raise_for_status()
    [post] = wait_for(lambda: calls_posted(sink), message="the call posted")
    body = post.json()
    assert (body["from"], body["modem"]) == (ALICE, "modem")
    at = time.mktime(time.strptime(body["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert body["at"].endswith("Z") and before - 2 <= at <= time.time() + 1
    assert post.header("Content-Type").startswith("application/json") and post.header("X-Call-Id")
    [call] = requests.get(bridge.control + "/calls", timeout=5).json()
    assert (call["ended_by"], call["rings"], call["answered"]) == ("host", 1, False)
    modem = wait_for(lambda: (lambda m: m.get("calls") and m)(bridge.status()["modems"]["modem"]))
    assert modem["calls"] == 1
    # the line is free for SMS at once
    assert bridge.send([ALICE], "call you back").status_code == 202
    wait_for(lambda: bridge.sent(), message="the SMS after the call")


def test_a_call_post_is_retried_until_the_receiver_takes_it(bridges, sink):
    sink.set_response(503, "down")
    bridge = bridges("call_url = %s/missed-call/" % sink.url)
    requests.post(bridge.control + "/calls", json={"from": ""}, timeout=5).raise_for_status()
    wait_for(lambda: len(calls_posted(sink)) >= 2, timeout=30, message="retries while down")
    sink.set_response(200)
    wait_for(lambda: any(r.status == 200 for r in calls_posted(sink)), timeout=30,
             message="delivered once the receiver is back")
    posts = calls_posted(sink)
    assert {r.json()["from"] for r in posts} == {None}, "a withheld number is null"
    assert len({r.header("X-Call-Id") for r in posts}) == 1, "one call, however many tries"
    assert [r.status for r in posts][-1] == 200 and all(r.status == 503 for r in posts[:-1])


def test_calls_are_hung_up_and_counted_without_a_call_url(bridges, sink):
    bridge = bridges("simulate = ring_interval=0.5")
    for number in (ALICE, "+255711111111"):
        requests.post(bridge.control + "/calls", json={"from": number},
                      timeout=5).raise_for_status()
        wait_for(lambda: requests.get(bridge.control + "/state", timeout=5).json()["call"]
                 is None, message="hung up")
    wait_for(lambda: bridge.status()["modems"]["modem"].get("calls") == 2, message="counted")
    assert all(c["ended_by"] == "host" for c in
               requests.get(bridge.control + "/calls", timeout=5).json())
    assert calls_posted(sink) == []


# --- a modem found by its IMEI ---------------------------------------------------------------

def test_the_bridge_takes_the_modem_with_its_imei(tmp_path, sink):
    links = tmp_path / "dev"
    links.mkdir()
    sims = []
    try:
        for name, imei in (("ttyUSB0", "356938035643809"), ("ttyUSB1", "490154203237518")):
            sim = start_simulator(str(tmp_path / ("pty-" + name)), imei=imei)
            sims.append(sim)
            os.symlink(os.path.realpath(sim.link), links / name)
        bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/",
                               modem_port="imei:490154203237518@%s/ttyUSB*" % links)
        bridge.start()
        try:
            modem = wait_for(lambda: (lambda m: m.get("identity") and m)(
                bridge.status()["modems"]["modem"]), message="identity")
            assert modem["identity"]["imei"] == "490154203237518"
            assert bridge.send([ALICE], "through the second dongle").status_code == 202
            wait_for(lambda: sims[1].modem.sent_messages(), message="sent through ttyUSB1")
            assert sims[0].modem.sent_messages() == []
        finally:
            bridge.stop()
    finally:
        for sim in sims:
            sim.stop()


# --- the README on the shipped sample --------------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(heading, port_from, port_to):
    """The first ```sh block under ``heading`` in the README, its port changed."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text[text.index(heading):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    return [line.replace(port_from, port_to) for line in block.splitlines() if line.strip()]


def test_the_readmes_curl_lines_work_on_the_shipped_sample(tmp_path, sink):
    http, control = free_port(), free_port()
    sample = open(os.path.join(REPO, "etc", "gsmbridge.ini"), encoding="utf-8").read()
    assert "simulate = control=127.0.0.1:13014" in sample
    ini = (sample.replace("127.0.0.1:13014", "127.0.0.1:%d" % control)
           .replace("; listen = 127.0.0.1:13013", "listen = 127.0.0.1:%d" % http)
           .replace("url = http://127.0.0.1:8000/backend/kannel-backend/",
                    "url = %s/backend/kannel-backend/" % sink.url))
    (tmp_path / "gsmbridge.ini").write_text(ini, encoding="utf-8")
    api = "http://127.0.0.1:%d" % http
    with open(tmp_path / "bridge.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gsmbridge", "run", "-c",
                                 str(tmp_path / "gsmbridge.ini")], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _up(api), message="the sample bridge up")
        lines = readme_block("## The simulated modem", "13014", str(control))
        assert [line.split()[0] for line in lines] == ["curl"] * len(lines)
        for line in lines:
            done = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0 and '"error"' not in done.stdout, (line, done.stdout)
            if "/inbound" in line:
                wait_for(lambda: sink.requests, message="the SMS forwarded")
            if "/calls -d" in line:
                wait_for(lambda: requests.get("http://127.0.0.1:%d/calls" % control,
                                              timeout=5).json()[0]["ended_by"] == "host",
                         message="the call hung up")
        assert sink.requests[0].args == {"id": "+255700000001", "text": "hello"}
        asked = subprocess.run([sys.executable, "-m", "gsmbridge", "ussd", "-c",
                                str(tmp_path / "gsmbridge.ini"), "*102#"],
                               capture_output=True, text=True, timeout=60)
        assert asked.stdout == "Your balance is 12.50 TZS\n", asked.stderr
        [first] = [line for line in readme_block("### USSD", "13013", str(http))
                   if line.startswith("curl") and '"*100#"' in line]
        menu = subprocess.run(first, shell=True, capture_output=True, text=True, timeout=60)
        assert json.loads(menu.stdout)["status"] == "more"
    finally:
        proc.terminate()
        proc.wait(20)


def _up(api):
    try:
        status = requests.get(api + "/status", timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    return status["modems"]["modem"]["state"] == "up"

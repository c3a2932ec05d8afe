"""Three bridge processes as one service over a real broker (RabbitMQ, Redis: tests/brokers.py).

Each node is a separate `gsmbridge run` with its own store and simulated modem (clusterproc.py):
node a has modem ma (no routes), node b modem mb (routes +25572), node c modem mc (routes
+25573). Messages go in at any node's HTTP API; what is checked is where they leave (the
simulated modems' records) and what the accepting node says of them:

- pinned (sendsms `smsc`, JSON `smsc`, Vumi `transport_name`) leaves through that modem, on
  its node; an unknown name is refused 403;
- routed leaves through the route's modem, wherever it is;
- unpinned and unrouted leaves through whichever modem is free first: once each, spread;
- the accepting node's GET /api/v1/messages/<id> shows the status the sending node reported,
  with the modem and node; the dlr-url is called once per report, by the accepting node;
- a modem name another node has is refused at start, naming both nodes.
"""

import collections
import subprocess
import sys
import uuid

import pytest
import requests

from bridgeproc import wait_for
from brokers import rabbitmq, redis_server  # noqa: F401 (fixtures)
from clusterproc import Node, start_all, stop_all
from httpsink import HttpSink

BROKERS = ["rabbitmq", "redis"]


@pytest.fixture(scope="module", params=BROKERS)
def broker(request):
    server = request.getfixturevalue("rabbitmq" if request.param == "rabbitmq"
                                     else "redis_server")
    if not server.running:
        server.start()
    return server


@pytest.fixture(scope="module")
def sink():
    with HttpSink() as s:
        yield s


@pytest.fixture(scope="module")
def cluster(broker, sink, tmp_path_factory):
    """Nodes a, b and c, up, each having heard of every modem able to send."""
    tmp = tmp_path_factory.mktemp("cluster")
    # RabbitMQ with its default queue type here (quorum); the chaos tests use classic queues
    common = dict(broker_url=broker.url, rapidsms_url=sink.url + "/rs/", queue_type="quorum")
    nodes = {
        "a": Node(tmp, node="a", modem="ma", **common),
        "b": Node(tmp, node="b", modem="mb", routes=["+25572"], **common),
        "c": Node(tmp, node="c", modem="mc", routes=["+25573"], **common),
    }
    try:
        start_all(list(nodes.values()))
        yield nodes
    finally:
        stop_all(nodes.values())


def token():
    return uuid.uuid4().hex[:10]


def wait_sent(cluster, texts, timeout=30):
    """Wait until every text left (through any node); returns {text: {node: times}}."""
    texts = list(texts)

    def all_left():
        sent = {name: collections.Counter(node.sent_texts()) for name, node in cluster.items()}
        found = {t: {n: c[t] for n, c in sent.items() if c[t]} for t in texts}
        return found if all(found.values()) else None
    return wait_for(all_left, timeout=timeout, interval=0.1, message="every message to leave")


def wait_status(node, msg_id, statuses, timeout=30):
    return wait_for(lambda: (lambda m: m if m["status"] in statuses else None)(
        node.message(msg_id)), timeout=timeout, interval=0.1,
        message="message %s to be %s on %s" % (msg_id, "/".join(statuses), node.node))


# -- pinned ---------------------------------------------------------------------------------

def test_pinned_messages_leave_through_their_modem_wherever_it_is(cluster):
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    json_text, kannel_text, vumi_text = ("pinned json " + token(), "pinned kannel " + token(),
                                         "pinned vumi " + token())
    r = a.send("+255790000001", json_text, smsc="mb")
    assert r.status_code == 202, r.text
    json_id = r.json()["id"]
    r = requests.get(c.api + "/cgi-bin/sendsms", params={
        "username": "rapidsms", "password": "s3cret", "to": "+255790000002",
        "text": kannel_text, "smsc": "ma"}, timeout=10)
    assert r.status_code == 202, r.text
    r = requests.post(b.api + "/vumi/send", auth=b.auth, timeout=10, json={
        "content": vumi_text, "to_addr": "+255790000003", "transport_name": "mc"})
    assert r.status_code == 200, r.text
    assert r.json()["transport_name"] == "mc"
    sent = wait_sent(cluster, [json_text, kannel_text, vumi_text])
    assert sent == {json_text: {"b": 1}, kannel_text: {"a": 1}, vumi_text: {"c": 1}}
    # the node that accepted it tells what became of it, and who sent it
    message = wait_status(a, json_id, ("sent",))
    assert (message["sent_by"], message["node"], message["relay"]) == ("mb", "b", "modem")
    assert message["relayed_at"] is not None


def test_a_modem_no_node_has_is_not_routable(cluster):
    r = cluster["a"].send("+255790000001", "nowhere", smsc="m-nobody")
    assert r.status_code == 403
    assert "Not routable" in r.json()["error"]


# -- routed ---------------------------------------------------------------------------------

def test_routed_messages_leave_through_the_routes_modem(cluster):
    a = cluster["a"]
    texts = {"+255730000%03d" % i: "routed to mc %d %s" % (i, token()) for i in range(6)}
    texts.update({"+255720000%03d" % i: "routed to mb %d %s" % (i, token()) for i in range(6)})
    ids = {}
    for number, text in texts.items():
        r = a.send(number, text)
        assert r.status_code == 202, r.text
        ids[text] = r.json()["id"]
    sent = wait_sent(cluster, texts.values())
    for number, text in texts.items():
        assert sent[text] == {"c" if number.startswith("+25573") else "b": 1}, (number, sent)
    # a has no modem on either route: it relayed them all, and hears what became of them
    for text, msg_id in ids.items():
        message = wait_status(a, msg_id, ("sent",))
        assert message["node"] == ("c" if "mc" in text else "b")


# -- free ------------------------------------------------------------------------------------

def wait_sent_to(cluster, text, numbers, timeout=60):
    """Wait until `text` left for every number; returns {number: {node: times}}."""
    numbers = list(numbers)

    def all_left():
        found = {n: {} for n in numbers}
        for name, node in cluster.items():
            for entry in node.sent():
                if entry["text"] == text and entry["to"] in found:
                    found[entry["to"]][name] = found[entry["to"]].get(name, 0) + 1
        return found if all(found.values()) else None
    return wait_for(all_left, timeout=timeout, interval=0.1, message="every message to leave")


def test_unpinned_messages_go_to_whichever_modem_is_free_once_each(cluster):
    """One request for 45 numbers at node a: a's modem sends one, the broker carries the rest
    to whichever modem is free first, a's own included."""
    a = cluster["a"]
    text = "free " + token()
    numbers = ["+25579%07d" % i for i in range(45)]
    r = a.send(numbers, text)
    assert r.status_code == 202, r.text
    ids = dict(zip(numbers, r.json()["ids"]))
    sent = wait_sent_to(cluster, text, numbers)
    assert all(where_to == {next(iter(where_to)): 1} for where_to in sent.values()), sent
    by_node = collections.Counter(node for where in sent.values() for node in where)
    assert set(by_node) == {"a", "b", "c"}, by_node     # every modem took some
    for number, msg_id in ids.items():
        message = wait_status(a, msg_id, ("sent",))
        node = next(iter(sent[number]))
        assert message["sent_by"] == cluster[node].modem
        assert message["node"] == (None if node == "a" else node), message


# -- delivery reports --------------------------------------------------------------------------

def test_the_accepting_node_calls_the_dlr_url_once_per_report(cluster, sink):
    a = cluster["a"]
    key = token()
    r = requests.get(a.api + "/cgi-bin/sendsms", timeout=10, params={
        "username": "rapidsms", "password": "s3cret", "to": "+255790000009",
        "text": "with dlr " + key, "smsc": "mc", "dlr-mask": "31",
        "dlr-url": sink.url + "/dlr/?key=%s&type=%%d&id=%%I&smsc=%%i" % key})
    assert r.status_code == 202, r.text
    # the network reports delivered: 8 (the SMSC took it) then 1 (the phone has it)
    wait_for(lambda: {"1", "8"} <= {q.args.get("type") for q in sink.requests
                                    if q.path == "/dlr/" and q.args.get("key") == key},
             timeout=30, message="both callbacks")
    calls = [q for q in sink.requests if q.path == "/dlr/" and q.args.get("key") == key]
    assert sorted(q.args["type"] for q in calls) == ["1", "8"]
    assert {q.args["smsc"] for q in calls} == {"mc"}
    msg_id = calls[0].args["id"]
    message = wait_status(a, msg_id, ("delivered",))
    assert message["node"] == "c"
    # c sent it but holds no callback of its own for it
    assert cluster["c"].message(msg_id)["callbacks"] == []


# -- names ------------------------------------------------------------------------------------

def test_a_modem_name_another_node_has_is_refused_at_start(cluster, broker, sink, tmp_path):
    twin = Node(tmp_path, node="d", modem="mb", broker_url=broker.url,
                rapidsms_url=sink.url + "/rs/", queue_type="quorum")
    with pytest.raises(RuntimeError) as failed:
        twin.start(timeout=30)
    twin.stop()
    assert twin.proc.returncode == 2
    text = str(failed.value)
    assert "'mb'" in text and "node b" in text and "node d" in text, text
    # the others forget the node that refused, and mb is still b's
    a = cluster["a"]
    wait_for(lambda: "d" not in a.status()["cluster"]["nodes"], timeout=10,
             message="a to forget the node that refused")
    text = "after the twin " + token()
    r = a.send("+255790000001", text, smsc="mb")
    assert r.status_code == 202
    assert wait_sent(cluster, [text]) == {text: {"b": 1}}


# -- the cluster view ---------------------------------------------------------------------------

def metric(server, name, **labels):
    text = requests.get(server.api + "/metrics", auth=server.auth, timeout=10).text
    want = ",".join('%s="%s"' % item for item in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("%s{%s} " % (name, want)) or (not labels and
                                                       line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_every_node_shows_the_whole_cluster(cluster):
    for me, node in cluster.items():
        view = node.status()["cluster"]
        assert view["node"] == me
        assert set(view["nodes"]) == {"a", "b", "c"}
        for name, other in view["nodes"].items():
            assert other["this"] == (name == me)
            assert not other["down"] and other["age"] < 3
            assert [m["name"] for m in other["modems"]] == [cluster[name].modem]
            assert other["modems"][0]["can_send"]
        assert node.status()["health"] == {"ok": True, "reasons": []}
        assert metric(node, "gsmbridge_cluster_node_up", node="c") == 1
        assert metric(node, "gsmbridge_cluster_modem_can_send", node="b", modem="mb") == 1
    a = cluster["a"]
    assert cluster["b"].status()["cluster"]["nodes"]["c"]["modems"][0]["routes"] == ["+25573"]
    page = requests.get(a.api + "/", auth=a.auth, timeout=10).text
    for name in "abc":
        assert 'data-node="%s" data-down="false" data-modem="m%s" data-can-send="true"' % (
            name, name) in page
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "status", "-c", a.ini],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("NODE"))
    rows = [line.split() for line in lines[header + 1:header + 4]]
    assert [r[0] for r in rows] == ["a", "b", "c"]
    assert rows[0][1:3] == ["(this", "node)"]
    for row, name in zip(rows, "abc"):
        assert {"m" + name, "up", "yes"} <= set(row), row
    assert "+25573" in rows[2]


def test_a_silent_node_shows_down_its_routed_work_goes_elsewhere_its_pinned_waits(cluster):
    """Runs last: it kills node c, and starts it again."""
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    c.kill()
    wait_for(lambda: a.status()["cluster"]["nodes"]["c"]["down"], timeout=30,
             message="node c to show down on a")
    r = requests.get(a.api + "/health", timeout=10)
    assert r.status_code == 200
    assert any("node c has not been heard" in w for w in r.json()["warnings"]), r.json()
    assert metric(a, "gsmbridge_cluster_node_up", node="c") == 0
    assert metric(a, "gsmbridge_cluster_modem_can_send", node="c", modem="mc") == 0
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "status", "-c", b.ini],
                         capture_output=True, text=True, timeout=60)
    assert "DOWN" in out.stdout and "warning: node c has not been heard" in out.stdout
    # routed to mc, which cannot send: any modem takes it; pinned to mc: it waits for c
    routed, pinned = "routed while c is down " + token(), "pinned while c is down " + token()
    r = a.send("+255730000777", routed)
    assert r.status_code == 202
    r = a.send("+255730000778", pinned, smsc="mc")
    assert r.status_code == 202
    pinned_id = r.json()["id"]
    sent = wait_sent({"a": a, "b": b}, [routed])
    assert sum(sent[routed].values()) == 1
    assert a.message(pinned_id)["status"] == "queued"
    assert a.message(pinned_id)["relayed_at"] is not None      # on the broker, for mc
    c.start(timeout=60)
    wait_for(lambda: pinned in c.sent_texts(), timeout=30, message="the pinned one to leave")
    assert wait_status(a, pinned_id, ("sent",))["node"] == "c"
    wait_for(lambda: not a.status()["cluster"]["nodes"]["c"]["down"], timeout=30,
             message="node c back on a")

"""Several hosts: 4 nodes x 2 simulated modems on one broker against 1 node x 1 modem.

    PYTHONPATH=. python -m bench.cluster [--broker rabbitmq|redis] [--queue-type quorum|classic]
                                         [--messages N] [--pickup N] [--json out.json] [--keep]

Everything is real and on this machine: the broker from the Debian packages (started by the
tests' helper, tests/brokers.py, in a temporary directory), every node a `gsmbridge run`
process with its own store, and every modem a simulated one in a process of its own
(bench.simproc), paced at 115200 baud, with no network delay per send: the serial line is the
modem's bound, as in bench/outbound.py.

- **throughput**: the baseline is one plain bridge (no [cluster]) with one modem, sending N
  messages queued by one request; the cluster is four nodes of two modems each, the same N
  messages all accepted by node 1 (in requests of 50): its two modems take what they can and
  the broker carries the rest to whichever modem is free. Messages per second is N over the
  time from the first AT+CMGS to the last answer, on the modems' own wire logs.
- **pickup latency**: the cluster idle, one message at a time accepted by node 1 and pinned to
  a modem of another node (each of the six in turn): from the 202 to that modem's AT+CMGS.
  Latencies are percentiles (nearest rank) of --pickup samples.

Figures, not pass/fail: they go to bench/RESULTS.md by hand, with the machine they ran on.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time

from . import report, texts, wire
from .bridge import PASSWORD, ROOT, USERNAME, Bridge, Modem
from .client import Client
from .procs import Meter, Processes, free_port, wait_for
from .sink import Sink

sys.path.insert(0, os.path.join(ROOT, "tests"))
from brokers import RabbitMQ, Redis  # noqa: E402  (the tests' real brokers)

NODES, MODEMS = 4, 2
BATCH = 50


def node_ini(path, *, node, modems, http_port, sink_url, store_path, broker_url, queue_type,
             baud):
    sections = []
    for name, link in modems:
        sections.append("[modem:%s]\nport = %s\nbaudrate = %d\n" % (name, link, baud))
    sections.append("[http]\nlisten = 127.0.0.1:%d\nusername = %s\npassword = %s\n"
                    % (http_port, USERNAME, PASSWORD))
    sections.append("[rapidsms]\nurl = %s\nstyle = kannel\ntimeout = 10\nretry_cap = 5\n"
                    % sink_url)
    sections.append("[store]\npath = %s\n" % store_path)
    sections.append("[log]\nlevel = INFO\n")
    if broker_url:
        sections.append("[cluster]\nbroker = %s\nnode = %s\nqueue_type = %s\n"
                        "heartbeat_interval = 1\ndown_after = 10\n"
                        % (broker_url, node, queue_type))
    with open(path, "w") as f:
        f.write("\n".join(sections))


class Node:
    """One bridge process with `count` simulated modems (each a process of its own)."""

    def __init__(self, procs, workdir, *, node, count, sink_url, broker_url, queue_type, baud):
        os.makedirs(workdir, exist_ok=True)
        self.name = node
        self.modems = {}
        for i in range(count):
            name = "%s-m%d" % (node, i + 1)
            folder = os.path.join(workdir, name)
            os.makedirs(folder, exist_ok=True)
            self.modems[name] = Modem(procs, folder, baud=baud)
        self.http_port = free_port()
        self.ini = os.path.join(workdir, "gsmbridge.ini")
        node_ini(self.ini, node=node, modems=[(n, m.link) for n, m in self.modems.items()],
                 http_port=self.http_port, sink_url=sink_url,
                 store_path=os.path.join(workdir, "store.sqlite3"), broker_url=broker_url,
                 queue_type=queue_type, baud=baud)
        self.log_path = os.path.join(workdir, "bridge.log")
        self.proc = procs.python(["-m", "gsmbridge", "run", "-c", self.ini],
                                 log_path=self.log_path, cwd=ROOT)
        self.api = Client("http://127.0.0.1:%d" % self.http_port, auth=(USERNAME, PASSWORD))

    def status(self):
        status, body = self.api.get_json("/status")
        return body if status == 200 else None

    def up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("node %s exited with %s" % (self.name, self.proc.returncode))
        try:
            status = self.status()
        except OSError:
            return False
        return bool(status) and all(m.get("state") == "up" for m in status["modems"].values())

    def send(self, recipients, text, **extra):
        status, body = self.api.post_json("/api/v1/messages",
                                          dict(extra, to=recipients, text=text))
        if status != 202:
            raise RuntimeError("send refused: %s %s" % (status, body))
        return body


def cluster_ready(nodes):
    """Every node hears every modem of the cluster able to send."""
    names = {m for n in nodes for m in n.modems}
    for node in nodes:
        view = (node.status() or {}).get("cluster") or {}
        can = {m["name"] for n in view.get("nodes", {}).values() if not n.get("down")
               for m in n.get("modems") or () if m.get("can_send")}
        if not names <= can:
            return False
    return True


def throughput(exchanges, count):
    """Messages a second from the first AT+CMGS to the last answer, and the gaps."""
    exchanges = sorted(exchanges, key=lambda e: e.command_at)
    if len(exchanges) < count:
        raise RuntimeError("%d exchanges seen for %d messages" % (len(exchanges), count))
    first = exchanges[0].command_at
    last = max(e.answered_at for e in exchanges)
    return {"messages": count, "seconds": last - first, "messages_per_s": count / (last - first)}


def run_baseline(root, count, baud):
    os.makedirs(os.path.join(root, "baseline"))
    with Bridge(os.path.join(root, "baseline"), baud=baud) as bridge:
        time.sleep(1.0)
        bridge.modem.wire()
        meter = Meter(bridge.pid)
        sim_meter = Meter(bridge.modem.proc.pid)
        numbers = ["+2557%08d" % i for i in range(count)]
        for i in range(0, count, BATCH):
            bridge.send(numbers[i:i + BATCH], texts.GSM160)
        wait_for(lambda: bridge.modem.sent_count() >= count, count + 60, 0.1,
                 "the baseline's messages to leave")
        cpu = meter.read()
        exchanges = wire.exchanges(bridge.modem.wire())
        out = throughput(exchanges, count)
        gaps = [g * 1000 for g in wire.gaps(exchanges)]
        out.update(gap_ms_p50=wire.percentile(gaps, 50), gap_ms_p99=wire.percentile(gaps, 99),
                   exchange_ms_p50=wire.percentile(
                       [(e.answered_at - e.command_at) * 1000 for e in exchanges], 50))
        out["bridge_cpu_ms_per_message"] = cpu["cpu_s"] * 1000 / count
        out["modem_cpu_ms_per_message"] = sim_meter.read()["cpu_s"] * 1000 / count
        return out


def start_cluster(procs, root, sink, broker_url, queue_type, baud):
    nodes = [Node(procs, os.path.join(root, "node%d" % (i + 1)), node="n%d" % (i + 1),
                  count=MODEMS, sink_url=sink.url, broker_url=broker_url,
                  queue_type=queue_type, baud=baud) for i in range(NODES)]
    for node in nodes:
        wait_for(node.up, 90, 0.1, "node %s to boot its modems" % node.name)
    wait_for(lambda: cluster_ready(nodes), 60, 0.2, "every node to hear every modem")
    time.sleep(1.0)
    return nodes


def run_cluster_throughput(nodes, count, broker_pid=None):
    modems = {name: m for node in nodes for name, m in node.modems.items()}
    for modem in modems.values():
        modem.wire()
        modem.clear_sent()
    meters = [Meter(node.proc.pid) for node in nodes]
    sim_meters = [Meter(m.proc.pid) for m in modems.values()]
    broker_meter = Meter(broker_pid) if broker_pid else None
    numbers = ["+2558%08d" % i for i in range(count)]
    began = time.monotonic()
    for i in range(0, count, BATCH):
        nodes[0].send(numbers[i:i + BATCH], texts.GSM160)
    accepted = time.monotonic() - began
    wait_for(lambda: sum(m.sent_count() for m in modems.values()) >= count, count + 120, 0.2,
             "the cluster's messages to leave")
    cpu = sum(meter.read()["cpu_s"] for meter in meters)
    sims_cpu = sum(meter.read()["cpu_s"] for meter in sim_meters)
    broker_cpu = broker_meter.read()["cpu_s"] if broker_meter else None
    per_modem, exchanges, gaps = {}, [], []
    for name, modem in modems.items():
        mine = wire.exchanges(modem.wire())
        per_modem[name] = len(mine)
        exchanges.extend(mine)
        gaps.extend(g * 1000 for g in wire.gaps(mine))
    sent = sum(m.sent_count() for m in modems.values())
    out = throughput(exchanges, count)
    out.update(gap_ms_p50=wire.percentile(gaps, 50), gap_ms_p99=wire.percentile(gaps, 99),
               exchange_ms_p50=wire.percentile(
                   [(e.answered_at - e.command_at) * 1000 for e in exchanges], 50))
    out.update(per_modem=per_modem, sent_total=sent, repeats=sent - count,
               accept_seconds=accepted, nodes_cpu_ms_per_message=cpu * 1000 / count,
               modems_cpu_ms_per_message=sims_cpu * 1000 / count,
               broker_cpu_ms_per_message=None if broker_cpu is None
               else broker_cpu * 1000 / count)
    return out


def run_pickup(nodes, samples, spread=(0.05, 0.15)):
    """One message at a time, accepted by node 1, pinned to another node's modem in turn."""
    targets = [(name, modem) for node in nodes[1:] for name, modem in node.modems.items()]
    for _, modem in targets:
        modem.wire()
    sent = {}                                  # number -> (modem name, before, after 202)
    for i in range(samples):
        time.sleep(random.uniform(*spread))
        name, modem = targets[i % len(targets)]
        number = "+2559%08d" % i
        before = time.monotonic()
        nodes[0].send([number], texts.GSM160, smsc=name)
        sent[number] = (name, before, time.monotonic())
    wait_for(lambda: sum(m.sent_count() for _, m in targets) >= samples, 120, 0.2,
             "the pinned messages to leave")
    commands = {}
    for name, modem in targets:
        for exchange in wire.exchanges(modem.wire()):
            commands.setdefault(exchange.recipient(), (name, exchange.command_at))
    after, request = [], []
    for number, (name, before, accepted) in sent.items():
        where, at = commands[number]
        assert where == name, (number, where, name)
        after.append((at - accepted) * 1000)
        request.append((at - before) * 1000)
    return {"samples": len(after),
            "pickup_ms_p50": wire.percentile(after, 50), "pickup_ms_p99": wire.percentile(after, 99),
            "pickup_ms_max": max(after),
            "from_request_ms_p50": wire.percentile(request, 50),
            "from_request_ms_p99": wire.percentile(request, 99)}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--broker", choices=["rabbitmq", "redis"], default="rabbitmq")
    parser.add_argument("--queue-type", choices=["quorum", "classic"], default="quorum")
    parser.add_argument("--messages", type=int, default=1600)
    parser.add_argument("--baseline-messages", type=int, default=400)
    parser.add_argument("--pickup", type=int, default=300)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--json")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    texts.check()

    root = tempfile.mkdtemp(prefix="gsmbridge-bench-cluster-")
    results = {"bench": "cluster", "date": report.now(), "machine": report.machine(),
               **report.commit(ROOT), "broker": args.broker, "queue_type": args.queue_type,
               "baud": args.baud, "nodes": NODES, "modems_per_node": MODEMS,
               "load_average_before": os.getloadavg()}

    def say(message):
        print("[bench cluster %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr,
              flush=True)

    try:
        say("baseline: 1 node x 1 modem, %d messages" % args.baseline_messages)
        results["baseline"] = run_baseline(root, args.baseline_messages, args.baud)
        say("baseline: %.1f msg/s" % results["baseline"]["messages_per_s"])
        broker = (RabbitMQ() if args.broker == "rabbitmq"
                  else Redis(os.path.join(root, "redis")))
        procs = Processes()
        sink = Sink()
        try:
            broker.start()
            say("cluster: %d nodes x %d modems on %s" % (NODES, MODEMS, args.broker))
            nodes = start_cluster(procs, os.path.join(root, "cluster"), sink, broker.url,
                                  args.queue_type, args.baud)
            say("cluster: %d messages accepted by node 1" % args.messages)
            broker_pid = broker.vm_pid if args.broker == "rabbitmq" else broker.pid
            results["cluster"] = run_cluster_throughput(nodes, args.messages, broker_pid)
            say("cluster: %.1f msg/s" % results["cluster"]["messages_per_s"])
            time.sleep(2.0)
            say("pickup: %d samples" % args.pickup)
            results["pickup"] = run_pickup(nodes, args.pickup)
        finally:
            procs.stop_all()
            sink.stop()
            broker.close()
    finally:
        if args.keep:
            say("working directory kept: %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["speedup"] = (results["cluster"]["messages_per_s"]
                          / results["baseline"]["messages_per_s"])
    results["load_average_after"] = os.getloadavg()
    print(json.dumps({k: results[k] for k in ("baseline", "cluster", "pickup", "speedup")},
                     indent=2, default=str))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())

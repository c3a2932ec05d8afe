"""Test helper: a cluster of real gsmbridge processes on one real broker, on loopback only.

Each node is a `BridgeProcess` (tests/bridgeproc.py) of its own: its own ini, store, HTTP port
and simulated modem (in the bridge's process, or as a process of its own that outlives the
bridge, as a real modem does). What makes it a node is its [cluster] section, pointing at the
test's RabbitMQ or Redis (tests/brokers.py). Timers are short (heartbeats every half second, a
node down after 3 s of silence) so that tests wait on seconds, not minutes; the semantics are
those of the defaults.
"""

import time

import requests

from bridgeproc import BridgeProcess, wait_for

#: heartbeats in tests: every half second, a node down after 3 s of silence
HEARTBEAT = 0.5
DOWN_AFTER = 3.0


class Node(BridgeProcess):
    """One node: a bridge process with one modem named `modem` and [cluster] settings."""

    def __init__(self, tmp_path, *, node, modem, broker_url, rapidsms_url, routes=(),
                 queue_type="classic", cluster_extra=None, http_extra=None, modem_lines=(),
                 separate_modem=False, simulate_args=(), log_level="INFO"):
        folder = tmp_path / node
        folder.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.modem = modem
        settings = {"broker": broker_url, "node": node, "queue_type": queue_type,
                    "heartbeat_interval": HEARTBEAT, "down_after": DOWN_AFTER, "timeout": 3,
                    "visibility_timeout": 2, "local_after": 30}
        settings.update(cluster_extra or {})
        extra = "\n[cluster]\n" + "".join("%s = %s\n" % item for item in settings.items())
        lines = ["name = %s" % modem, "send_timeout = 5"]
        if routes:
            lines.append("routes = %s" % " ".join(routes))
        lines.extend(modem_lines)
        super().__init__(folder, rapidsms_url=rapidsms_url, extra=extra,
                         modem_extra="\n".join(lines), separate_modem=separate_modem,
                         simulate_args=simulate_args, log_level=log_level)
        if http_extra:
            text = open(self.ini).read().replace("[http]\n", "[http]\n%s\n" % http_extra)
            with open(self.ini, "w") as f:
                f.write(text)

    def message(self, msg_id):
        r = requests.get(self.api + "/api/v1/messages/%s" % msg_id, auth=self.auth, timeout=10)
        r.raise_for_status()
        return r.json()

    def sent_texts(self):
        return [entry["text"] for entry in self.sent()]

    def knows(self, *modems, timeout=20):
        """Wait until this node would accept a message pinned to each of `modems` (it has heard
        their nodes' heartbeats)."""
        def known():
            status = requests.get(self.api + "/status", auth=self.auth, timeout=10).json()
            cluster = status.get("cluster") or {}
            names = {m["name"] for n in (cluster.get("nodes") or {}).values()
                     for m in n.get("modems") or ()}
            return set(modems) <= names
        wait_for(known, timeout=timeout, interval=0.1,
                 message="%s to hear of %s" % (self.node, ", ".join(modems)))


def start_all(nodes, timeout=60):
    """Start every node, then wait until each has heard of every other's modem, and every
    modem is up and can send as the others hear it."""
    for node in nodes:
        node.start(timeout=timeout)
    names = [n.modem for n in nodes]
    for node in nodes:
        node.knows(*names, timeout=timeout)
    deadline = time.monotonic() + timeout
    for node in nodes:
        wait_for(lambda: all_can_send(node, names), timeout=max(1, deadline - time.monotonic()),
                 interval=0.1, message="%s to see every modem able to send" % node.node)
    return nodes


def all_can_send(node, names):
    status = node.status()
    cluster = status.get("cluster") or {}
    can = {m["name"] for n in (cluster.get("nodes") or {}).values() if not n.get("down")
           for m in n.get("modems") or () if m.get("can_send")}
    return set(names) <= can


def stop_all(nodes):
    for node in nodes:
        node.stop()

"""One bridge under test: a simulated modem process, a gsmbridge process, an HTTP sink.

The modem runs as a process of its own (bench.simproc), as a real modem is a device of its own,
so the bridge's CPU and memory figures are the bridge's alone. The bridge is the real daemon,
`python -m gsmbridge run -c <ini>`, configured as a deployment would be (credentials, INFO logs
to a file, the store's durable commits, and the environment supervisor/gsmbridge.conf gives it).
"""

import http.client
import json
import os
import signal

from gsmbridge.store import Store

from .client import Client
from .procs import Processes, free_port, wait_for
from .sink import Sink

USERNAME, PASSWORD = "rapidsms", "bench-secret"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Modem:
    """The simulated modem process and its control API; `wire()` takes its wire log."""

    def __init__(self, procs, workdir, *, baud=115200, network_delay=0.0, capacity=30):
        self.link = os.path.join(workdir, "modem.tty")
        self.wire_path = os.path.join(workdir, "wire.json")
        self.baud = baud
        self.network_delay = network_delay
        port = free_port()
        self.proc = procs.python(
            ["-m", "bench.simproc", "--link", self.link, "--control", "127.0.0.1:%d" % port,
             "--baud", str(baud), "--network-delay", str(network_delay),
             "--capacity", str(capacity), "--wire", self.wire_path],
            log_path=os.path.join(workdir, "simulator.log"), cwd=ROOT)
        self.control = Client("http://127.0.0.1:%d" % port)
        wait_for(self._up, 20, what="the simulated modem")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("the simulated modem exited with %s" % self.proc.returncode)
        try:
            return self.control.get_json("/state")[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def wire(self):
        """The wire log since the last call: [(time, direction, text)], latin-1 text for bytes."""
        if os.path.exists(self.wire_path):
            os.unlink(self.wire_path)
        os.kill(self.proc.pid, signal.SIGUSR1)
        wait_for(lambda: os.path.exists(self.wire_path), 30, 0.02, "the wire log")
        with open(self.wire_path) as f:
            return [tuple(e) for e in json.load(f)]

    def inject(self, sender, text):
        status, body = self.control.post_json("/inbound", {"from": sender, "text": text})
        if status != 200:
            raise RuntimeError("inject refused: %s %s" % (status, body))
        return body

    def sent_count(self):
        """How many SMS the modem has sent (GET /state: small, unlike GET /sent)."""
        return self.control.get_json("/state")[1]["sent"]

    def clear_sent(self):
        self.control.request("DELETE", "/sent")


def write_ini(path, *, modem_port, http_port, sink_url, store_path, baud):
    """The bridge's ini; `modem_port` is one port, or a list of them for a pool ([modem:mN])."""
    ports = [modem_port] if isinstance(modem_port, str) else list(modem_port)
    if len(ports) == 1:
        modems = "[modem]\nport = %s\nbaudrate = %d\n" % (ports[0], baud)
    else:
        modems = "".join("[modem:m%d]\nport = %s\nbaudrate = %d\n\n" % (i, port, baud)
                         for i, port in enumerate(ports))
    with open(path, "w") as f:
        f.write("""\
{modems}
[http]
listen = 127.0.0.1:{http_port}
username = {user}
password = {password}

[rapidsms]
url = {sink_url}
style = kannel
timeout = 10
retry_cap = 5

[store]
path = {store_path}

[log]
level = INFO
""".format(modems=modems, http_port=http_port, sink_url=sink_url,
           store_path=store_path, user=USERNAME, password=PASSWORD))


def prefill(store_path, count, text, batch=1000):
    """Queue `count` outbound messages straight into a fresh store, as a backlog would be."""
    store = Store(store_path)
    try:
        done = 0
        while done < count:
            n = min(batch, count - done)
            store.add_outbound(["+2557%08d" % (done + i) for i in range(n)], text,
                               encoding="gsm7", parts=1)
            done += n
    finally:
        store.close()


class Bridge:
    """A running gsmbridge on a simulated modem, with a sink as its RapidSMS.

    Use as a context manager; everything started is stopped by PID on the way out.
    """

    def __init__(self, workdir, *, network_delay=0.0, baud=115200, queued=0, backlog_text="",
                 modems=1, profile=None):
        self.workdir = workdir
        self.baud = baud
        self.procs = Processes()
        self.sink = Sink()
        self.store_path = os.path.join(workdir, "store.sqlite3")
        try:
            if queued:
                prefill(self.store_path, queued, backlog_text or "backlog")
            self.modems = []
            for i in range(modems):
                where = workdir if i == 0 else os.path.join(workdir, "modem%d" % i)
                os.makedirs(where, exist_ok=True)
                self.modems.append(Modem(self.procs, where, baud=baud,
                                         network_delay=network_delay))
            self.modem = self.modems[0]
            self.http_port = free_port()
            self.ini = os.path.join(workdir, "gsmbridge.ini")
            write_ini(self.ini, modem_port=[m.link for m in self.modems] if modems > 1
                      else self.modem.link, http_port=self.http_port,
                      sink_url=self.sink.url, store_path=self.store_path, baud=baud)
            self.log_path = os.path.join(workdir, "bridge.log")
            # profile: (profiler module, its output path): the bridge then runs under
            # bench.sampled or bench.cprofiled
            run = ["-m", "gsmbridge"] if profile is None else ["-m", profile[0], profile[1]]
            # the environment supervisor/gsmbridge.conf gives it
            env = dict(os.environ, PYTHONUNBUFFERED="1", MALLOC_ARENA_MAX="2")
            self.proc = self.procs.python(run + ["run", "-c", self.ini],
                                          log_path=self.log_path, cwd=ROOT, env=env)
            self.api_url = "http://127.0.0.1:%d" % self.http_port
            self.api = Client(self.api_url, auth=(USERNAME, PASSWORD))
            wait_for(self._up, 60, 0.1, "the bridge to boot its modem")
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self):
        return self.proc.pid

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("the bridge exited with %s:\n%s" % (self.proc.returncode,
                                                                   self.log_tail()))
        try:
            status, _ = self.api.request("GET", "/health")
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def log_tail(self, size=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-size:]
        except OSError:
            return ""

    def send(self, recipients, text):
        status, body = self.api.post_json("/api/v1/messages", {"to": recipients, "text": text})
        if status != 202:
            raise RuntimeError("send refused: %s %s" % (status, body))
        return body

    def stop(self):
        self.procs.stop_all()
        self.sink.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

"""Test helper: run a real gsmbridge process on the simulated modem, on loopback only.

The bridge runs as `python -m gsmbridge run -c <ini>` in its own process, exactly as supervisord
would run it; tests talk to it over HTTP and to its simulated modem over the simulator's control API.
"""

import os
import random
import signal
import socket
import subprocess
import sys
import time

import requests


def free_port():
    """A free port on 127.0.0.1 for a server a test is about to start.

    Picked below the kernel's ephemeral range (32768 and up on Linux), not with bind(port 0):
    a port from that range can be taken by any outgoing connection of the tests running
    alongside before the server binds it.
    """
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found below the ephemeral range")


def write_ini(path, *, rapidsms_url, store_path, http_port, modem_port, username="rapidsms",
              password="s3cret", style="kannel", extra="", modem_extra="", log_level="DEBUG",
              retry_cap=2):
    """extra goes at the end of the file (inside [log], or new sections); modem_extra into
    [modem]."""
    text = """\
[modem]
port = {modem_port}
{modem_extra}

[http]
listen = 127.0.0.1:{http_port}
username = {username}
password = {password}

[rapidsms]
url = {rapidsms_url}
style = {style}
timeout = 5
retry_cap = {retry_cap}

[store]
path = {store_path}

[log]
level = {log_level}
{extra}
""".format(**locals())
    with open(path, "w") as f:
        f.write(text)
    return path


class BridgeProcess:
    """A gsmbridge subprocess plus handy clients for its API and its simulated modem."""

    def __init__(self, tmp_path, *, rapidsms_url, extra="", style="kannel", separate_modem=False,
                 simulate_args=(), modem_extra="", log_level="DEBUG", modem_port=None,
                 retry_cap=2):
        """separate_modem: run the simulated modem as a process of its own (`gsmbridge simulate`),
        so that it outlives the bridge the way a real modem and its SIM do; otherwise the bridge
        runs it in-process (`port = sim://`). simulate_args: more options for `gsmbridge
        simulate` (e.g. --cnma-timeout 1). modem_extra: lines for the ini's [modem] section.
        modem_port: a modem of the test's own (a device path) instead of a simulated one.
        retry_cap: [rapidsms] retry_cap, the longest wait between two tries of a forward."""
        self.tmp_path = tmp_path
        self.http_port = free_port()
        self.control_port = free_port()
        self.simulator = None
        if modem_port:
            pass
        elif separate_modem:
            link = str(tmp_path / "modem.tty")
            self.simulator = subprocess.Popen(
                [sys.executable, "-m", "gsmbridge", "simulate", "--link", link,
                 "--control", "127.0.0.1:%d" % self.control_port, *simulate_args],
                stdout=subprocess.DEVNULL, stderr=open(str(tmp_path / "simulator.log"), "w"))
            modem_port = link
        else:
            modem_port = "sim://?control=127.0.0.1:%d" % self.control_port
        self.ini = write_ini(str(tmp_path / "gsmbridge.ini"), rapidsms_url=rapidsms_url,
                             store_path=str(tmp_path / "store.sqlite3"), http_port=self.http_port,
                             modem_port=modem_port, style=style, extra=extra,
                             modem_extra=modem_extra, log_level=log_level, retry_cap=retry_cap)
        self.api = "http://127.0.0.1:%d" % self.http_port
        self.control = "http://127.0.0.1:%d" % self.control_port
        self.auth = ("rapidsms", "s3cret")
        self.proc = None
        self.log_path = str(tmp_path / "bridge.log")
        self.starts = 0

    def start(self, timeout=30):
        self.starts += 1
        log = open(self.log_path, "a")
        log.write("---- start %d\n" % self.starts)
        log.flush()
        self.proc = subprocess.Popen([sys.executable, "-m", "gsmbridge", "run", "-c", self.ini],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_until_up(timeout)
        return self

    def wait_until_up(self, timeout=30):
        """Wait until the HTTP API answers and the simulated modem has booted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("bridge exited with %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                status = requests.get(self.api + "/status", auth=self.auth, timeout=2).json()
                if any(m.get("state") == "up" for m in status.get("modems", {}).values()):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("bridge not up after %ss:\n%s" % (timeout, self.log()))

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-6000:]

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.simulator is not None and self.simulator.poll() is None:
            self.simulator.terminate()
            self.simulator.wait(10)

    # -- the simulated modem's control API ------------------------------------------------

    def inject(self, sender, text):
        r = requests.post(self.control + "/inbound", json={"from": sender, "text": text}, timeout=10)
        r.raise_for_status()
        return r.json()

    def sent(self):
        return requests.get(self.control + "/sent", timeout=10).json()

    def faults(self, **faults):
        r = requests.post(self.control + "/faults", json=faults, timeout=10)
        r.raise_for_status()

    # -- the bridge's API -------------------------------------------------------------------

    def send(self, to, text, **extra):
        body = dict(extra, to=to, text=text)
        return requests.post(self.api + "/api/v1/messages", json=body, auth=self.auth, timeout=10)

    def status(self):
        return requests.get(self.api + "/status", auth=self.auth, timeout=10).json()


def wait_for(predicate, timeout=30, interval=0.05, message="condition"):
    """Poll predicate until it returns something truthy; fail with message after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % message)
        time.sleep(interval)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

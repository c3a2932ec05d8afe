"""Processes the harness starts, and what /proc says about them.

Every process is started here and stopped here by its PID (SIGTERM, then SIGKILL after a bound);
`Processes.stop_all()` runs however a benchmark ends. Nothing is ever stopped by name.
"""

import os
import signal
import socket
import subprocess
import sys
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    """predicate() until truthy, at most `timeout` seconds; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def _pids(pid):
    return [pid] if isinstance(pid, int) else list(pid)


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds; of several processes
    together when given a list of PIDs (Kannel is two: bearerbox and smsbox)."""
    total = 0
    for one in _pids(pid):
        with open("/proc/%d/stat" % one) as f:
            fields = f.read().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def memory(pid):
    """{"rss_mb", "peak_rss_mb"} of a process, from /proc/PID/status; summed over a list of
    PIDs (each one's own peak: an upper bound of the peak of the sum)."""
    out = {"rss_mb": 0.0, "peak_rss_mb": 0.0}
    for one in _pids(pid):
        with open("/proc/%d/status" % one) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    name = "rss_mb" if key == "VmRSS" else "peak_rss_mb"
                    out[name] += int(value.split()[0]) / 1024
    return out


class Meter:
    """CPU used by a process (or several, given a list of PIDs) between start() and read(), as
    seconds and as % of one core."""

    def __init__(self, pid):
        self.pid = pid
        self.start()

    def start(self):
        self.cpu0, self.wall0 = cpu_seconds(self.pid), time.monotonic()

    def read(self):
        cpu, wall = cpu_seconds(self.pid) - self.cpu0, time.monotonic() - self.wall0
        return {"cpu_s": cpu, "wall_s": wall, "cpu_percent": 100.0 * cpu / wall if wall else 0.0}


class Processes:
    """The processes one benchmark started."""

    def __init__(self):
        self.started = []

    def start(self, argv, *, log_path, env=None, cwd=None):
        log = open(log_path, "ab")
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        finally:
            log.close()
        self.started.append(proc)
        return proc

    def python(self, args, **kwargs):
        return self.start([sys.executable] + list(args), **kwargs)

    @staticmethod
    def stop(proc, grace=15.0):
        """SIGTERM to this PID, SIGKILL if it has not exited within `grace` seconds."""
        if proc.poll() is not None:
            return proc.returncode
        try:
            os.kill(proc.pid, signal.SIGTERM)
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            return proc.wait(10)
        except ProcessLookupError:
            return proc.wait(10)

    def stop_all(self):
        for proc in reversed(self.started):
            self.stop(proc)
        self.started.clear()

"""What hostile callers cost the others: /health latency under a slowloris, and a 50 MB POST.

    python -m bench.bench_slowloris [--connections 300] [--probes 200]

Runs the real daemon (bench.bridge: a simulated modem process, `gsmbridge run`, default [http]
limits) and times GET /health, each on a fresh connection from 127.0.0.1:
  - alone;
  - while --connections connections from 127.0.0.2, .3, ... (100 each: the default per-address
    cap) hold half a header each and send one more byte a second;
then sends a 50 MB POST and reports how much of it got through before the 413 and the close, and
how long that took. Not a test: it asserts nothing (tests/test_httpserver.py does).
"""

import argparse
import shutil
import socket
import statistics
import tempfile
import threading
import time

from .bridge import Bridge

HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def connect(port, source="127.0.0.1"):
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def health_latencies(port, probes):
    """Seconds per GET /health (connect to last byte), each on a connection of its own."""
    times = []
    for _ in range(probes):
        start = time.perf_counter()
        with connect(port) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass
        times.append(time.perf_counter() - start)
    return times


def show(label, times):
    times = sorted(times)
    print("%-44s p50 %7.2f ms   p99 %7.2f ms   max %7.2f ms" % (
        label, statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000,
        times[-1] * 1000))


class Slowloris:
    def __init__(self, port, count):
        self.socks = []
        for n in range(count):
            sock = connect(port, "127.0.0.%d" % (2 + n // 100))
            sock.sendall(HEAD)
            sock.setblocking(False)
            self.socks.append(sock)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.wait(1.0):
            for sock in self.socks:
                try:
                    sock.send(b"x")
                except OSError:
                    pass

    def open(self):
        """How many the server has neither answered nor closed."""
        alive = 0
        for sock in self.socks:
            try:
                sock.recv(1, socket.MSG_PEEK)   # an answer (408, 503) or the close
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


def big_post(port, size=50 * 1000 * 1000):
    start = time.perf_counter()
    sent = 0
    with connect(port) as sock:
        sock.sendall(b"POST /cgi-bin/sendsms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        try:
            while sent < size:
                sent += sock.send(b" " * 65536)
        except OSError:
            pass
        answer = sock.recv(200).split(b"\r\n", 1)[0].decode()
    return sent, answer, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-slowloris-")
    try:
        with Bridge(workdir) as bridge:
            port = bridge.http_port
            show("/health alone", health_latencies(port, args.probes))
            loris = Slowloris(port, args.connections)
            try:
                time.sleep(1.0)
                opened = loris.open()
                times = health_latencies(port, args.probes)
                still = loris.open()
                show("/health, %d trickling connections" % args.connections, times)
                print("  trickling connections open: %d before the probes, %d after"
                      % (opened, still))
                start = time.monotonic()
                while loris.open() and time.monotonic() - start < 60:
                    time.sleep(0.5)
                print("  all closed %.1f s after the probes (header_timeout 10 s)"
                      % (time.monotonic() - start))
            finally:
                loris.close()
            sent, answer, took = big_post(port)
            print("50 MB POST: %r after %.3f s; %.1f MB got past the client's send() "
                  "(kernel buffers)" % (answer, took, sent / 1e6))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

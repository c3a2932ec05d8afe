"""What one /health costs as the store grows (figures in HEALTH.md): counts(), the health rules
and GET /health over HTTP on loopback, on a store of `rows` inbound and `rows` outbound messages
(nearly all finished, a few hundred waiting, spread over 30 days); then, where the store can
prune, a pass with nothing to remove and one that removes half, with how long each of its write
transactions holds the lock.

    python bench/bench_health.py [rows] [path]

Runs on any gsmbridge of this layout, so the same script gives the figures before and after a
change (PYTHONPATH=<the other tree>). Not a test: it asserts nothing.
"""

import os
import sys
import tempfile
import threading
import time

import requests
import waitress
from waitress import wasyncore

from gsmbridge import config as configmod
from gsmbridge import overview
from gsmbridge.store import Store
from gsmbridge.web import create_app

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_operators import fill  # noqa: E402  (the same store the operators' bench fills)


def timed(label, fn, repeat=20):
    fn()  # warm the cache
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print("%-48s median %8.2f ms   max %8.2f ms" % (label, times[len(times) // 2], times[-1]))
    return times[len(times) // 2]


def serve(app):
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    stopping = threading.Event()

    def run():
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)

    threading.Thread(target=run, daemon=True).start()
    return "http://127.0.0.1:%s" % server.effective_port, stopping


def main(argv):
    rows = int(argv[1]) if len(argv) > 1 else 1_000_000
    path = argv[2] if len(argv) > 2 else os.path.join(tempfile.mkdtemp(), "health.sqlite3")
    store = Store(path)
    now = time.time()
    if store.counts()["inbound"]["delivered"] == 0:
        start = time.perf_counter()
        fill(store, rows, now)
        print("filled %d inbound + %d outbound in %.1fs" % (rows, rows,
                                                            time.perf_counter() - start))
    store.set_modem("modem", state="up", signal=18, operator="Vodacom", registration=1,
                    registered=True)
    print("store %s: %.0f MB" % (path, os.path.getsize(path) / 1e6))
    config = configmod.for_tests(os.path.dirname(path), store={"path": path})

    timed("store.counts()", store.counts)
    timed("overview.health() (the /health rules)", lambda: overview.health(store, config))
    url, stopping = serve(create_app(store, config))
    session = requests.Session()
    timed("GET /health over HTTP (loopback, waitress)",
          lambda: session.get(url + "/health", timeout=10))
    stopping.set()
    if hasattr(store, "prune"):
        start = time.perf_counter()
        removed = store.prune(keep_days=31)
        print("%-48s %8.2f ms (%s)" % ("prune(keep_days=31): nothing to remove",
                                       (time.perf_counter() - start) * 1000, removed))
        held = time_transactions(store)
        start = time.perf_counter()
        removed = store.prune(keep_days=15)
        seconds = time.perf_counter() - start
        held.sort()
        print("prune(keep_days=15): removed %d inbound + %d outbound in %.1fs; %d write "
              "transactions, median %.1f ms, longest %.1f ms" % (
                  removed["inbound"], removed["outbound"], seconds, len(held),
                  held[len(held) // 2], held[-1]))
        timed("store.counts() after", store.counts)
    store.close()


def time_transactions(store):
    """Record how long each of the store's write transactions holds the write lock (ms)."""
    held = []
    write = store._write

    class Timed:
        def __enter__(self):
            self.inner = write()
            db = self.inner.__enter__()
            self.start = time.perf_counter()
            return db

        def __exit__(self, *exc):
            try:
                return self.inner.__exit__(*exc)
            finally:
                held.append((time.perf_counter() - self.start) * 1000)

    store._write = Timed
    return held


if __name__ == "__main__":
    main(sys.argv)

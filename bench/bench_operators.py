"""What the operators' view costs on a big store.

    python bench/bench_operators.py [rows] [path]

Fills a fresh store with `rows` inbound and `rows` outbound messages spread over 30 days, nearly all
finished (delivered / sent), a few hundred still waiting, then times what one status page view,
one /status, one /health, one Prometheus scrape and the message list's worst cases cost. Not a
test: it asserts nothing.
"""

import os
import sys
import tempfile
import time

from prometheus_client import CollectorRegistry, generate_latest

from gsmbridge import config as configmod
from gsmbridge import overview
from gsmbridge.store import Store
from gsmbridge.web import create_app, statuspage


def timed(label, fn, repeat=10):
    fn()  # warm the cache
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    ms = (time.perf_counter() - start) / repeat * 1000
    print("%-52s %9.2f ms" % (label, ms))
    return result


def fill(store, rows, now):
    """rows each way over 30 days, oldest first; the newest 300 each way still waiting."""
    span = 30 * 86400.0
    db = store._conn()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO inbound (id, modem, sender, text, received_at, pdus, status, head,"
        " next_attempt, delivered_at) VALUES (?, 'modem', ?, 'hello there', ?, '[]', ?, ?, ?, ?)",
        ((("i%d" % i, "+2557%08d" % (i % 5000), t,
           "pending" if i >= rows - 300 else "delivered",
           1 if i >= rows - 300 else 0, t,
           None if i >= rows - 300 else t + 1)
          for i, t in ((i, now - span + span * i / rows) for i in range(rows)))))
    db.executemany(
        "INSERT INTO outbound (id, recipient, text, parts, status, next_attempt, created_at,"
        " sent_at) VALUES (?, ?, 'a reply', 1, ?, ?, ?, ?)",
        ((("o%d" % i, "+2557%08d" % (i % 5000), "queued" if i >= rows - 300 else "sent", t, t,
           None if i >= rows - 300 else t + 2)
          for i, t in ((i, now - span + span * i / rows) for i in range(rows)))))
    db.execute("COMMIT")


def main(argv):
    rows = int(argv[1]) if len(argv) > 1 else 1_000_000
    path = argv[2] if len(argv) > 2 else os.path.join(tempfile.mkdtemp(), "ops.sqlite3")
    store = Store(path)
    now = time.time()
    start = time.perf_counter()
    fill(store, rows, now)
    store.set_modem("modem", state="up", signal=18, operator="Vodacom", registration=1,
                    registered=True)
    print("filled %d inbound + %d outbound in %.1fs (%s, %.0f MB)" % (
        rows, rows, time.perf_counter() - start, path, os.path.getsize(path) / 1e6))
    store.maintenance()
    config = configmod.for_tests(os.path.dirname(path), store={"path": path})

    timed("counts()", store.counts)
    timed("activity(24 h)", lambda: store.activity(time.time() - 86400))
    timed("activity(now, buckets=0) (health, scrape)", lambda: store.activity(time.time(),
                                                                             buckets=0))
    timed("recent(20)", store.recent)
    timed("messages(limit=50)", lambda: store.messages())
    timed("messages(status='queued')", lambda: store.messages(status="queued"))
    timed("messages(number=...) seen recently", lambda: store.messages(number="+255700004999"))
    timed("messages(number=...) never seen (full scan)",
          lambda: store.messages(number="+255799999999"), repeat=3)
    data = timed("overview.snapshot() (GET /status)", lambda: overview.snapshot(store, config))
    app = create_app(store, config)
    with app.app_context():  # the page's template is the app's
        timed("statuspage.render() of that snapshot", lambda: statuspage.render(data))
        page = statuspage.render(data)
    timed("overview.health() (GET /health)", lambda: overview.health(store, config))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(overview.StoreCollector(store, config))
    timed("StoreCollector scrape (GET /metrics, store part)", lambda: generate_latest(registry))
    print("page size: %.1f kB" % (len(page.encode()) / 1000))
    store.close()


if __name__ == "__main__":
    main(sys.argv)

"""How the store's queue queries behave with a million rows waiting.

    python bench/bench_store.py [rows] [path]

Fills a fresh store with `rows` pending inbound messages (from rows/100 senders) and `rows` queued
outbound messages (a third pinned to each of two modems, a third to any), then times the calls the
worker, the forwarder and the status page make. Not a test: it asserts nothing.
"""

import os
import sys
import tempfile
import time

from gsmbridge.store import Store


def timed(label, fn, repeat=20):
    fn()  # warm the cache
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    ms = (time.perf_counter() - start) / repeat * 1000
    print("%-46s %9.3f ms" % (label, ms))
    return result


def fill(store, rows):
    db = store._conn()
    senders = max(1, rows // 100)
    now = time.time()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO inbound (id, modem, sender, text, received_at, pdus, head, next_attempt)"
        " VALUES (?, 'm1', ?, 'hello', ?, '[]', ?, ?)",
        (("i%d" % i, "+2557%08d" % (i % senders), now, 1 if i < senders else 0,
          now + (3600 if i % 2 else -1)) for i in range(rows)))
    db.executemany(
        "INSERT INTO outbound (id, recipient, text, parts, modem, next_attempt, created_at)"
        " VALUES (?, '+255700000001', 'hello', 1, ?, ?, ?)",
        (("o%d" % i, ("m1", "m2", None)[i % 3], now, now) for i in range(rows)))
    db.execute("COMMIT")


def main(argv):
    rows = int(argv[1]) if len(argv) > 1 else 1_000_000
    path = argv[2] if len(argv) > 2 else os.path.join(tempfile.mkdtemp(), "bench.sqlite3")
    store = Store(path)
    start = time.perf_counter()
    fill(store, rows)
    print("filled %d inbound + %d outbound in %.1fs (%s, %.0f MB)" % (
        rows, rows, time.perf_counter() - start, path, os.path.getsize(path) / 1e6))
    store.maintenance()  # PRAGMA optimize, as a running bridge would do

    now = time.time()
    timed("due_inbound(now, 50)", lambda: store.due_inbound(now))
    timed("next_inbound_due()", store.next_inbound_due)
    timed("next_outbound('m1', now)", lambda: store.next_outbound("m1", now))
    timed("next_outbound('m3', now) (only unpinned)", lambda: store.next_outbound("m3", now))
    timed("counts()", store.counts, repeat=5)
    timed("recent(20)", store.recent)
    n = iter(range(10**9))
    timed("add_inbound (commit, fsync)", lambda: store.add_inbound(
        modem="m1", sender="+2557%08d" % next(n), text="x", sent_at=None, parts=1,
        incomplete=False, pdus=[], keys=["bench-%d" % next(n)]))
    due = iter(store.due_inbound(time.time(), limit=100))
    timed("inbound_delivered (moves the sender's head)",
          lambda: store.inbound_delivered(next(due)["id"], response=""))
    numbers = ["+2557%08d" % i for i in range(1000)]
    timed("add_outbound(1,000 recipients)",
          lambda: store.add_outbound(numbers, "x", encoding="gsm7", parts=1), repeat=5)
    store.close()


if __name__ == "__main__":
    main(sys.argv)

"""What a pool of modems buys, and what its routing costs.

    python bench/bench_pool.py [--modems 8] [--delay 1.0] [--messages 64]
    python bench/bench_pool.py --store [--rows 1000000]

The first form runs whole bridges in this process (gsmbridge.app.Bridge, one simulated modem per
[modem:NAME], each on its own pty) whose simulated network takes --delay seconds to accept each
SMS (AT+CMGS), queues --messages SMS and times them out: once with one modem, once with --modems.
The second fills a store with --rows queued messages and times the routing queries the workers
make. Not a test: it asserts nothing.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

from gsmbridge import config
from gsmbridge.app import Bridge
from gsmbridge.store import Store


def throughput(modems, messages, delay, workdir):
    """Messages a second a bridge with `modems` simulated modems sends."""
    data = {"modem:m%d" % i: {"port": "sim://"} for i in range(modems)}
    data["http"] = {"listen": "127.0.0.1:0"}
    data["rapidsms"] = {"url": "http://127.0.0.1:9/backend/"}
    data["store"] = {"path": os.path.join(workdir, "store.sqlite3")}
    bridge = Bridge(config.from_dict(data, base_dir=workdir))
    bridge.start()
    try:
        deadline = time.monotonic() + 60
        while not all(bridge.store.modems().get("m%d" % i, {}).get("state") == "up"
                      for i in range(modems)):
            if time.monotonic() > deadline:
                raise RuntimeError("modems not up")
            time.sleep(0.05)
        for simulator in bridge.simulators.values():
            simulator.modem.set_faults(network_delay=delay)
        numbers = ["+2557%08d" % i for i in range(messages)]
        start = time.monotonic()
        bridge.store.add_outbound(numbers, "pool bench", encoding="gsm7", parts=1)
        while bridge.store.counts()["outbound"]["sent"] < messages:
            time.sleep(0.02)
        elapsed = time.monotonic() - start
        per_modem = {name: len(s.modem.sent_messages()) for name, s in bridge.simulators.items()}
    finally:
        bridge.stop()
    return messages / elapsed, elapsed, per_modem


def timed(label, fn, repeat=200):
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        result = fn()
    ms = (time.perf_counter() - start) / repeat * 1000
    print("%-62s %9.3f ms" % (label, ms))
    return result


def store_costs(rows, workdir):
    path = os.path.join(workdir, "bench.sqlite3")
    store = Store(path)
    pool = {"m%d" % i: {"routes": ["+2557%d" % i], "daily_cap": 20000 if i < 4 else 0,
                        "hourly_cap": 2000 if i < 4 else 0} for i in range(8)}
    store.set_pool(pool)
    db = store._conn()
    now = time.time()
    start = time.perf_counter()
    db.execute("BEGIN")
    # rows queued: a tenth pinned to m0, the rest unpinned to +2557<digit>...: routed to m0..m7
    # for digits 0-7, to no modem for 8 and 9; plus a day of sends by each capped modem
    db.executemany(
        "INSERT INTO outbound (id, recipient, text, parts, modem, route, next_attempt,"
        " created_at) VALUES (?, ?, 'hello', 1, ?, ?, ?, ?)",
        (("q%d" % i, "+2557%d%07d" % (i % 10, i), "m0" if i % 10 == 9 else None,
          store.route_of("+2557%d%07d" % (i % 10, i)), now, now) for i in range(rows)))
    db.executemany(
        "INSERT INTO outbound (id, recipient, text, parts, status, sent_by, sent_at,"
        " next_attempt, created_at) VALUES (?, '+255700000000', 'x', 1, 'sent', ?, ?, ?, ?)",
        (("s%d" % i, "m%d" % (i % 4), now - (i % 86400), now, now) for i in range(4 * 15000)))
    db.executemany(
        "INSERT INTO inbound (id, modem, sender, text, received_at, pdus, head, next_attempt)"
        " VALUES (?, ?, ?, 'hi', ?, '[]', ?, ?)",
        (("i%d" % i, "m%d" % (i % 8), "+2557%08d" % (i % (rows // 100 or 1)), now,
          1 if i < (rows // 100 or 1) else 0, now) for i in range(rows)))
    db.execute("COMMIT")
    print("filled %d queued outbound, %d sent, %d pending inbound in %.1fs (%.0f MB)" % (
        rows, 4 * 15000, rows, time.perf_counter() - start, os.path.getsize(path) / 1e6))
    store.maintenance()

    for i in range(8):
        store.set_modem("m%d" % i, state="up")
    timed("next_outbound, 8 modems up (m0: pinned + routed)",
          lambda: store.next_outbound("m0", now))
    timed("next_outbound, 8 modems up (m7)", lambda: store.next_outbound("m7", now))
    for i in range(1, 4):
        store.set_modem("m%d" % i, state="down")
    timed("next_outbound, m1-m3 down (m7 also takes their numbers)",
          lambda: store.next_outbound("m7", now))
    timed("next_outbound, a modem not in the pool", lambda: store.next_outbound("x", now))
    timed("usage() recounted (15,000 sends in the day)",
          lambda: store.usage("m0", fresh=True), repeat=20)
    timed("available()", store.available)
    timed("modems() (with pool usage)", store.modems)
    timed("due_inbound(now, 50, modems=[m0])", lambda: store.due_inbound(now, modems=["m0"]))
    timed("due_inbound(now, 50, modems=[m0..m7])",
          lambda: store.due_inbound(now, modems=["m%d" % i for i in range(8)]))
    timed("next_inbound_due(modems=[m1, m2])",
          lambda: store.next_inbound_due(modems=["m1", "m2"]))
    timed("pending_inbound_modems() (once, at start)", store.pending_inbound_modems, repeat=3)
    numbers = ["+2557%08d" % i for i in range(1000)]
    timed("add_outbound(1,000 recipients, routed)",
          lambda: store.add_outbound(numbers, "x", encoding="gsm7", parts=1), repeat=5)
    start = time.perf_counter()
    rerouted = dict(pool, m0={"routes": ["+25579"]})
    store.set_pool(rerouted)
    print("%-62s %9.3f ms" % ("set_pool with changed routes (re-routes the whole queue)",
                              (time.perf_counter() - start) * 1000))
    start = time.perf_counter()
    store.set_pool(rerouted)
    print("%-62s %9.3f ms" % ("set_pool unchanged (every start)",
                              (time.perf_counter() - start) * 1000))
    store.close()


def main(argv):
    parser = argparse.ArgumentParser(prog="bench_pool.py")
    parser.add_argument("--modems", type=int, default=8)
    parser.add_argument("--delay", type=float, default=1.0,
                        help="seconds the simulated network takes per SMS (default 1)")
    parser.add_argument("--messages", type=int, default=64,
                        help="SMS queued for the pool (one modem gets a quarter: same work per "
                             "modem would take too long)")
    parser.add_argument("--store", action="store_true", help="time the routing queries instead")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv[1:])
    workdir = tempfile.mkdtemp(prefix="bench-pool-")
    try:
        if args.store:
            store_costs(args.rows, workdir)
            return
        single = max(4, args.messages // 4)
        os.makedirs(os.path.join(workdir, "one"))
        os.makedirs(os.path.join(workdir, "pool"))
        rate1, t1, _ = throughput(1, single, args.delay, os.path.join(workdir, "one"))
        print("1 modem:  %4d SMS in %6.1fs = %6.2f SMS/s" % (single, t1, rate1))
        rate, t, per = throughput(args.modems, args.messages, args.delay,
                                  os.path.join(workdir, "pool"))
        print("%d modems: %4d SMS in %6.1fs = %6.2f SMS/s (x%.2f); per modem: %s" % (
            args.modems, args.messages, t, rate, rate / rate1,
            " ".join("%s=%d" % item for item in sorted(per.items()))))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)

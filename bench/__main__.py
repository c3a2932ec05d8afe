"""`python -m bench [--quick | --tiny] [--only NAME[,NAME]] [--json out.json] [--keep]`

Runs the benchmarks on the simulated modem paced at 115200 baud, prints a table of the figures
against their targets (and beside gammu-smsd's and Kannel's, when they are installed), and
writes everything as JSON. NAME: link, outbound, inbound, api, queue, footprint, load, gammu,
kannel. --quick takes a few minutes, --tiny seconds (for CI: it checks the harness works, its
figures mean little); the full run stays under about twenty minutes on 2 cores.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field

from . import (api, backlog, footprint, gammu, inbound, kannel, link, load, outbound, report,
               texts)

SUITES = {"link": link.run, "outbound": outbound.run, "inbound": inbound.run, "api": api.run,
          "queue": backlog.run, "footprint": footprint.run, "load": load.run,
          "gammu": gammu.run, "kannel": kannel.run}


def _kinds(gsm160, ucs2_70, multi3):
    return {"gsm160": gsm160, "ucs2_70": ucs2_70, "multi3": multi3}


@dataclass
class Sizes:
    network_delay: float = 2.5
    settle: float = 1.0          # seconds after a boot before measuring (boot-time chatter)
    link_repeats: int = 5
    outbound: dict = field(default_factory=lambda: {
        "no_delay": _kinds(200, 200, 100), "network_delay": _kinds(6, 6, 3)})
    inbound: int = 200
    burst: int = 500
    api_rate: int = 200
    api_seconds: float = 10.0
    bulk_repeats: int = 5
    backlog: tuple = (0, 100_000, 1_000_000)
    send_window: float = 5.0
    backlog_seconds: float = 5.0
    idle_seconds: float = 60.0
    gammu_outbound: dict = field(default_factory=lambda: {
        "no_delay": _kinds(8, 8, 4), "network_delay": _kinds(3, 3, 2)})
    gammu_inbound: dict = field(default_factory=lambda: {"default": (8, 16.0),
                                                         "fast": (10, 4.0), "busy": (10, 4.0)})
    pickup: int = 10
    gammu_runs: tuple = (("default", ("no_delay", "network_delay")),
                         ("fast", ("no_delay", "network_delay")), ("busy", ("no_delay",)))
    gammu_pickup: dict = field(default_factory=lambda: {"default": 2, "fast": 4, "busy": 4})
    #: issue 16's bursts: at least 400 messages each way; the pool has eight modems
    load: dict = field(default_factory=lambda: {"outbound": 400, "inbound": 400, "modems": 8,
                                                "pool_outbound": 400, "pool_inbound": 50})
    #: Kannel sends about one SMS in two seconds: fewer outbound messages than the bridge
    kannel: dict = field(default_factory=lambda: {
        "idle_seconds": 30.0, "inbound": 100, "burst": 400, "pickup": 5,
        "outbound": _kinds(40, 20, 10)})


QUICK = Sizes(
    outbound={"no_delay": _kinds(50, 50, 20), "network_delay": _kinds(2, 2, 1)},
    inbound=50, burst=200, api_seconds=3.0, bulk_repeats=3, backlog=(0, 10_000, 100_000),
    send_window=3.0, backlog_seconds=3.0, idle_seconds=10.0,
    gammu_outbound={"no_delay": _kinds(3, 3, 2), "network_delay": _kinds(1, 1, 1)},
    gammu_inbound={"default": (3, 6.0), "fast": (4, 2.0), "busy": (4, 2.0)}, pickup=5,
    gammu_pickup={"default": 1, "fast": 2, "busy": 2},
    load={"outbound": 400, "inbound": 400, "modems": 8, "pool_outbound": 200,
          "pool_inbound": 25},
    kannel={"idle_seconds": 10.0, "inbound": 30, "burst": 100, "pickup": 3,
            "outbound": _kinds(10, 5, 3)})

TINY = Sizes(
    network_delay=0.5, settle=0.2,
    outbound={"no_delay": _kinds(3, 3, 1), "network_delay": _kinds(1, 1, 1)},
    inbound=5, burst=10, api_rate=50, api_seconds=1.0, bulk_repeats=1, backlog=(0, 1000),
    send_window=1.0, backlog_seconds=1.0, idle_seconds=2.0,
    gammu_outbound={"no_delay": _kinds(2, 1, 1)},
    gammu_inbound={"fast": (2, 1.0)}, pickup=2, gammu_pickup={"fast": 1},
    gammu_runs=(("fast", ("no_delay",)),),
    load={"outbound": 5, "inbound": 5, "modems": 2, "pool_outbound": 4, "pool_inbound": 2},
    kannel={"idle_seconds": 1.0, "inbound": 3, "burst": 5, "pickup": 1,
            "outbound": _kinds(2, 1, 1)})


class Context:
    def __init__(self, sizes, root, baud):
        self.sizes = sizes
        self.root = root
        self.baud = baud
        self.settle = sizes.settle

    def workdir(self, name):
        path = os.path.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        return path

    def progress(self, message):
        print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr,
              flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller counts, a few minutes")
    size.add_argument("--tiny", action="store_true", help="smallest counts, for CI")
    parser.add_argument("--only", help="comma-separated suites: " + ", ".join(SUITES))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (logs, stores, wire logs)")
    args = parser.parse_args(argv)

    names = list(SUITES) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error("unknown suite %s (known: %s)" % (", ".join(unknown), ", ".join(SUITES)))
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    sizes = TINY if args.tiny else QUICK if args.quick else Sizes()
    texts.check()

    root = tempfile.mkdtemp(prefix="gsmbridge-bench-")
    ctx = Context(sizes, root, args.baud)
    began = time.monotonic()
    results = {"bench": "gsmbridge", "mode": mode, "date": report.now(),
               "machine": report.machine(),
               **report.commit(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
               "baud": args.baud, "sizes": asdict(sizes), "suites": {}, "errors": {},
               "load_average_before": os.getloadavg()}
    if results["load_average_before"][0] > 0.5:
        ctx.progress("the machine is busy (load %.2f): timings will be noisy"
                     % results["load_average_before"][0])
    try:
        for name in names:
            started = time.monotonic()
            try:
                results["suites"][name] = SUITES[name](ctx)
            except Exception as exc:      # one suite failing must not lose the others' figures
                ctx.progress("%s failed: %s" % (name, exc))
                results["errors"][name] = "".join(traceback.format_exception(exc))[-3000:]
            results.setdefault("suite_seconds", {})[name] = round(time.monotonic() - started, 1)
    finally:
        if args.keep:
            ctx.progress("working directory kept: %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    results["load_average_after"] = os.getloadavg()
    results["rows"] = report.rows(results["suites"])
    results["versus_peers"] = report.versus_peers(results["suites"])
    results["versus_gammu"] = results["versus_peers"]      # the name it had before Kannel

    print(report.table(results["rows"], results["versus_peers"]))
    for name, error in results["errors"].items():
        print("\n%s FAILED:\n%s" % (name, error), file=sys.stderr)
    print("\n%s run, %.0f s, %s" % (mode, results["elapsed_s"], results["date"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True, default=str)
        print("results written to %s" % args.json)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the bridge's CPU goes under load, through one burst each way.

    python -m bench.profile [--py-spy] [--outbound N] [--inbound N] [--out DIR]

Starts a bridge on a simulated modem as the benchmarks do (bench.bridge) and runs a burst of N
sendsms requests, then (in a bridge of its own) a burst of N inbound SMS. By default the bridge
runs under bench.cprofiled (cProfile in every thread, timed by the thread's CPU clock) and
`<name>.txt` lists the functions by their own CPU and by the CPU under them. With --py-spy,
py-spy (`pip install py-spy`) samples the unmodified daemon from outside instead and writes the
samples in collapsed-stack form (`<name>.folded`) with the same kind of summary; it counts a
thread blocked in a system call (fsync, select) as busy, so it shows waits as well as work.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

from .bridge import Bridge
from .inbound import burst
from .load import sendsms_burst


def summarise(folded_path, top=40):
    """(total samples, [(self samples, function)], [(total samples, function)])."""
    own, under = collections.Counter(), collections.Counter()
    total = 0
    with open(folded_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            count = int(count)
            total += count
            frames = stack.split(";")
            own[frames[-1]] += count
            for frame in set(frames[1:]):       # frames[0] is the thread
                under[frame] += count
    return total, own.most_common(top), under.most_common(top)


def write_summary(name, folded_path, out_path):
    total, own, under = summarise(folded_path)
    with open(out_path, "w") as f:
        f.write("%s: %d samples (busy threads only)\n\nself\n" % (name, total))
        for count, (frame, n) in enumerate(own):
            f.write("%6.1f%%  %s\n" % (100.0 * n / max(1, total), frame))
        f.write("\ntotal (in the function or under it)\n")
        for frame, n in under:
            f.write("%6.1f%%  %s\n" % (100.0 * n / max(1, total), frame))


def profiled(pid, name, out_dir, rate, action):
    folded = os.path.join(out_dir, name + ".folded")
    spy = subprocess.Popen([shutil.which("py-spy") or "py-spy", "record", "--pid", str(pid),
                            "--rate", str(rate), "--format", "raw", "--output", folded,
                            "--threads", "--nonblocking", "--gil"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)                       # py-spy attaches
    try:
        result = action()
    finally:
        spy.send_signal(2)                # SIGINT: py-spy writes what it has and exits
        spy.wait(30)
    write_summary(name, folded, os.path.join(out_dir, name + ".txt"))
    return result


def cprofile_summary(name, stats_path, out_path, top=45):
    import io
    import pstats
    text = io.StringIO()
    stats = pstats.Stats(stats_path, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    with open(out_path, "w") as f:
        f.write("%s: CPU time per thread (time.thread_time) under cProfile\n" % name)
        f.write(text.getvalue())


def cprofiled(name, out_dir, action):
    """Run `action(bridge)` in a bridge under cProfile; write its summary."""
    stats = os.path.abspath(os.path.join(out_dir, name + ".pstats"))
    root = tempfile.mkdtemp(prefix="gsmbridge-profile-")
    try:
        with Bridge(root, profile=stats) as bridge:
            time.sleep(1.0)
            result = action(bridge)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cprofile_summary(name, stats, os.path.join(out_dir, name + ".txt"))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--outbound", type=int, default=400)
    parser.add_argument("--inbound", type=int, default=400)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--out", default="bench/profiles")
    parser.add_argument("--py-spy", action="store_true", help="sample with py-spy instead")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if not args.py_spy:
        out = cprofiled("outbound", args.out, lambda b: sendsms_burst(b, args.outbound))
        print("outbound (under cProfile): %.2f ms CPU per message" % out["cpu_ms_per_message"])
        res = cprofiled("inbound", args.out, lambda b: burst(b, args.inbound, b.baud))
        print("inbound (under cProfile): %.2f ms CPU per message"
              % res["bridge_cpu_ms_per_message"])
        return 0
    root = tempfile.mkdtemp(prefix="gsmbridge-profile-")
    try:
        with Bridge(root) as bridge:
            time.sleep(1.0)
            out = profiled(bridge.pid, "outbound", args.out, args.rate,
                           lambda: sendsms_burst(bridge, args.outbound))
            print("outbound: %.2f ms CPU per message" % out["cpu_ms_per_message"])
            res = profiled(bridge.pid, "inbound", args.out, args.rate,
                           lambda: burst(bridge, args.inbound, bridge.baud))
            print("inbound: %.2f ms CPU per message" % res["bridge_cpu_ms_per_message"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

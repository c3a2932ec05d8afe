"""Where the bridge's CPU goes under load, through one burst each way.

    python -m bench.profile [--cprofile | --py-spy] [--outbound N] [--inbound N] [--out DIR]

Starts a bridge on a simulated modem as the benchmarks do (bench.bridge) and runs a burst of N
sendsms requests, then (in a bridge of its own) a burst of N inbound SMS, and writes for each
`<name>.txt`: the code that used the CPU, by its own share (self) and by the share under it
(total), per thread too.

By default the bridge runs under bench.sampled, which charges each thread's own CPU clock to
the stack it is in (`<name>.folded` keeps the stacks). --cprofile runs it under cProfile, timed
by each thread's CPU clock (bench.cprofiled): exact call counts, but its overhead inflates
Python-heavy code several times over. --py-spy samples the unmodified daemon from outside
(`pip install py-spy`) with --gil, which misses the CPU spent in C without the GIL (SQLite,
system calls).
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .bridge import Bridge
from .inbound import burst
from .load import sendsms_burst
from .procs import wait_for


def summarise(folded_path, top=50):
    """(total, [(function, self)], [(function, total)], [(thread, total)]) from collapsed
    stacks ("thread;frame;frame count")."""
    own, under, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(folded_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            count = int(count)
            total += count
            frames = stack.split(";")
            threads[frames[0]] += count
            own[frames[-1]] += count
            for frame in set(frames[1:]):       # frames[0] is the thread
                under[frame] += count
    return total, own.most_common(top), under.most_common(top), threads.most_common()


def write_summary(name, folded_path, out_path, messages=None, unit="samples"):
    total, own, under, threads = summarise(folded_path)
    with open(out_path, "w") as f:
        f.write("%s: %d %s" % (name, total, unit))
        if messages and unit == "us":
            f.write(" of CPU, %.3f ms per message" % (total / 1000.0 / messages))
        f.write("\n\nby thread\n")
        for thread, n in threads:
            f.write("%6.1f%%  %s\n" % (100.0 * n / max(1, total), thread))
        f.write("\nself\n")
        for frame, n in own:
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
        with Bridge(root, profile=("bench.cprofiled", stats)) as bridge:
            time.sleep(1.0)
            result = action(bridge)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cprofile_summary(name, stats, os.path.join(out_dir, name + ".txt"))
    return result


def sampled(name, out_dir, action, messages):
    """Run `action(bridge)` in a bridge under bench.sampled; write its summary. The samples
    from before the burst (the boot) are left out: the stacks are taken again afterwards."""
    folded = os.path.abspath(os.path.join(out_dir, name + ".folded"))
    root = tempfile.mkdtemp(prefix="gsmbridge-profile-")
    try:
        with Bridge(root, profile=("bench.sampled", folded)) as bridge:
            time.sleep(1.0)
            os.kill(bridge.pid, signal.SIGUSR2)          # forget the boot
            time.sleep(0.1)
            result = action(bridge)
            os.kill(bridge.pid, signal.SIGUSR2)
            wait_for(lambda: os.path.exists(folded), 10, 0.05, "the samples")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    write_summary(name, folded, os.path.join(out_dir, name + ".txt"), messages, unit="us")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--outbound", type=int, default=400)
    parser.add_argument("--inbound", type=int, default=400)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--out", default="bench/profiles")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--py-spy", action="store_true", help="sample with py-spy instead")
    how.add_argument("--cprofile", action="store_true", help="cProfile instead")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if not args.py_spy and not args.cprofile:
        out = sampled("outbound", args.out, lambda b: sendsms_burst(b, args.outbound),
                      args.outbound)
        print("outbound (sampled): %.2f ms CPU per message" % out["cpu_ms_per_message"])
        res = sampled("inbound", args.out, lambda b: burst(b, args.inbound, b.baud),
                      args.inbound)
        print("inbound (sampled): %.2f ms CPU per message" % res["bridge_cpu_ms_per_message"])
        return 0
    if args.cprofile:
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

"""The simulated modem as a process of its own, recording when bytes cross its line.

    python -m bench.simproc --link PATH --control 127.0.0.1:PORT --baud 115200 --wire FILE
                            [--network-delay SECONDS]

Like `gsmbridge simulate`, plus a wire log: every chunk the host wrote (">", with the time the
simulator read it), every chunk the host got ("<", with the time its last byte arrived on the
paced line) and every SMS the network handed to the modem ("N", with the time and text). SIGUSR1
writes the log so far to FILE (atomically, JSON) and starts a new one; SIGTERM stops.

Times are time.monotonic(), which on Linux is one clock for every process, so the harness can
compare them with its own.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from gsmbridge.simulator.runner import start_simulator

#: a bound on the log between two dumps (a run that never dumps cannot eat the memory)
MAX_EVENTS = 2_000_000


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.simproc")
    parser.add_argument("--link", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--network-delay", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=30)
    parser.add_argument("--wire", required=True)
    args = parser.parse_args(argv)

    events = []
    lock = threading.Lock()

    def record(direction, data, when):
        with lock:
            if len(events) < MAX_EVENTS:
                text = data if isinstance(data, str) else data.decode("latin-1")
                events.append((when, direction, text))

    sim = start_simulator(args.link, control=args.control, baudrate=args.baud,
                          network_delay=args.network_delay, capacity=args.capacity)
    sim.port.on_wire = record
    deliver = sim.modem.deliver

    def delivered(sender, text, **options):
        record("N", text, time.monotonic())   # the SMS reaches the modem
        return deliver(sender, text, **options)

    sim.modem.deliver = delivered
    stop = threading.Event()
    dumps = threading.Event()

    def dump():
        with lock:
            taken = events[:]
            events.clear()
        temporary = args.wire + ".tmp"
        with open(temporary, "w") as f:
            json.dump(taken, f)
        os.replace(temporary, args.wire)

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: dumps.set())
    print("simulated modem at %s control %s" % (sim.link, sim.control_url), flush=True)
    try:
        while not stop.is_set():
            if dumps.wait(0.2):
                dumps.clear()
                dump()
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

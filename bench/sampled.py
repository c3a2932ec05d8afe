"""Run `gsmbridge` with a sampler that charges each thread's CPU time to where that thread is.

    python -m bench.sampled OUT.folded run -c gsmbridge.ini

Every `INTERVAL` seconds a sampling thread reads every other thread's own CPU clock
(time.pthread_getcpuclockid) and its Python stack (sys._current_frames()), and charges the CPU
the thread used since the last sample to that stack. Unlike cProfile it adds no cost to the
code it measures (so a loop of small calls is not inflated beside one C call), and unlike a
wall-clock sampler it never charges a thread for waiting: a thread blocked in select() or
fsync() uses no CPU and is charged nothing. The CPU of SQLite, of the kernel in a system call,
is charged to the Python line that called it. The sampler's own CPU is left out.

SIGUSR2 the first time forgets what was sampled so far (the boot), the second time writes
OUT.folded: the stacks in collapsed form ("thread;frame;frame <microseconds>"), the input of
bench.profile's summary and of flame graph tools.
"""

import collections
import os
import signal
import sys
import threading
import time

INTERVAL = 0.0005

_stacks = collections.Counter()
_stop = threading.Event()


def _frames(frame):
    out = []
    while frame is not None:
        code = frame.f_code
        out.append("%s (%s:%d)" % (code.co_qualname, _short(code.co_filename), frame.f_lineno))
        frame = frame.f_back
    return out[::-1]


def _short(path):
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in path:
            return path.split(marker, 1)[1].split("/", 1)[-1] if marker.startswith("/lib") \
                else path.split(marker, 1)[1]
    return os.path.relpath(path) if path.startswith("/") else path


def _sample():
    me = threading.get_ident()
    clocks, last = {}, {}
    while not _stop.wait(INTERVAL):
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            try:
                clock = clocks.get(ident)
                if clock is None:
                    clock = clocks[ident] = time.pthread_getcpuclockid(ident)
                used = time.clock_gettime(clock)
            except (OSError, ProcessLookupError):
                continue
            before = last.get(ident)
            last[ident] = used
            if before is None or used <= before:
                continue
            stack = [names.get(ident, "thread")] + _frames(frame)
            _stacks[";".join(stack)] += int((used - before) * 1e6)


def _dump(path):
    taken = dict(_stacks)
    with open(path + ".tmp", "w") as f:
        for stack, micros in sorted(taken.items(), key=lambda item: -item[1]):
            f.write("%s %d\n" % (stack, micros))
    os.replace(path + ".tmp", path)


def main():
    out = sys.argv[1]
    sys.argv = ["gsmbridge"] + sys.argv[2:]
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        if len(signals) == 1:
            _stacks.clear()
        else:
            _dump(out)

    signal.signal(signal.SIGUSR2, on_signal)
    threading.Thread(target=_sample, name="sampler", daemon=True).start()
    from gsmbridge.cli import main as gsmbridge_main
    return gsmbridge_main()


if __name__ == "__main__":
    sys.exit(main())

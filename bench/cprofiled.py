"""Run `gsmbridge` with every thread under cProfile, timed by each thread's own CPU clock.

    python -m bench.cprofiled OUT.pstats run -c gsmbridge.ini

py-spy samples from outside but cannot tell a thread waiting in a system call (an fsync, a
select on the serial port) from one computing; this counts only CPU time
(time.thread_time), so SQLite's and the kernel's work for a thread is charged to the Python
function that asked for it. The profiler's own overhead inflates Python calls, so the shares
matter, not the absolute times. The stats of every thread are written, merged, at exit.
"""

import atexit
import cProfile
import pstats
import sys
import threading
import time

profiles = []
lock = threading.Lock()


def _start_here(*_):
    """The first profile event of a new thread: give it a profiler of its own."""
    sys.setprofile(None)
    profile = cProfile.Profile(time.thread_time)
    with lock:
        profiles.append(profile)
    profile.enable()


def _dump(path):
    with lock:
        taken = list(profiles)
    stats = None
    for profile in taken:
        try:
            profile.create_stats()
        except Exception:
            continue
        if stats is None:
            stats = pstats.Stats(profile)
        else:
            stats.add(profile)
    if stats is not None:
        stats.dump_stats(path)


def main():
    out = sys.argv[1]
    sys.argv = ["gsmbridge"] + sys.argv[2:]
    threading.setprofile(_start_here)
    atexit.register(_dump, out)
    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    main_profile.enable()
    from gsmbridge.cli import main as gsmbridge_main
    try:
        return gsmbridge_main()
    finally:
        main_profile.disable()


if __name__ == "__main__":
    sys.exit(main())

"""The running bridge's upkeep: what `gsmbridge maintenance` does, on a schedule.

A few seconds after the start, then every `[store] upkeep_interval` seconds (an hour by default),
one pass: finished messages, callbacks and status reports older than `[store] keep_days` go, and
so do dedup keys older than 30 days; then SQLite's statistics are refreshed (PRAGMA optimize), a
little free space goes back to the disk and the write-ahead log is folded in without waiting for
anyone. Waiting and failed rows are never touched (store/retention.py says what goes).

The pass runs in a thread of its own, a batch (one short write transaction) at a time with a
pause after each, so the modem workers and the forwarders never wait more than a few
milliseconds for the store. A pass cut short by the stop leaves the rest for the next one.
"""

import logging
import time


class Housekeeper:
    """Prunes and tidies the store on a schedule. One thread runs it (`run`); `step` is one
    pass."""

    #: seconds from the start to the first pass
    first_delay = 5.0
    #: seconds between two batches of a pass: the other writers' turn
    pause = 0.02

    def __init__(self, store, *, keep_days, interval, seen_days=30.0, logger=None):
        self.store = store
        self.keep_days = keep_days
        self.interval = interval
        self.seen_days = seen_days
        self.log = logger or logging.getLogger("gsmbridge.upkeep")
        self._stop = None

    def run(self, stop_event):
        """Thread target: a pass first_delay after the start, then every interval, until
        stop_event is set."""
        self._stop = stop_event
        delay = min(self.first_delay, self.interval)
        while not stop_event.wait(delay):
            try:
                self.step()
            except Exception:
                # A store that cannot be written now (disk full, closing) is no reason to stop:
                # nothing is lost by pruning later.
                if stop_event.is_set():
                    break
                self.log.exception("upkeep pass failed; trying again in %.0fs", self.interval)
            delay = self.interval
        self.log.info("upkeep stopped")

    def step(self):
        """One pass. Returns what prune() removed, with "seconds" and compact()'s figures."""
        started = time.monotonic()
        removed = self.store.prune(keep_days=self.keep_days or None, seen_days=self.seen_days,
                                   pause=self.pause, stop=self._stop)
        self.store.optimize()
        tidied = self.store.compact(checkpoint="PASSIVE")
        seconds = time.monotonic() - started
        if any(removed.values()) or tidied["pages_freed"]:
            self.log.info("upkeep: removed %s; %d free pages given back to the disk; %.2fs",
                          ", ".join("%d %s" % (n, what) for what, n in removed.items()),
                          tidied["pages_freed"], seconds)
        else:
            self.log.debug("upkeep: nothing to remove; %.2fs", seconds)
        return dict(removed, seconds=seconds, **tidied)

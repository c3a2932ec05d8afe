"""How long to wait before trying again: capped exponential backoff, one small object every
retrying part of the bridge shares.

The modem worker waits before reopening a port and before sending a refused message again; the
forwarder and the delivery-report sender wait before offering a row again and hold a receiver that
cannot be reached. Each keeps its own numbers (a port comes back in seconds, a receiver may be
down for an hour), but they all grow the same way, so the rule is written once, here:

    delay(attempt) = min(cap, base * factor ** (attempt - 1))        attempt 1, 2, 3 ...

``jitter`` spreads each wait by up to that fraction either way (0.1: 90% to 110%), so that many
rows, or many modems, that failed together do not all come back in the same instant. Where the
spread goes is the caller's choice: by default the cap is a hard ceiling (a row never waits longer
than ``cap``); ``hard_cap=False`` spreads the capped wait too, which keeps modems that have all
reached the cap from reopening in step.

The object holds no count: the caller knows which attempt it is on (a row's ``attempts``, a
worker's reopen count) and asks for that one, so one object may serve any number of rows.
"""

import random

#: the largest exponent used: beyond it ``factor ** n`` would overflow a float, and every real cap
#: is reached long before (2 ** 64 seconds is longer than the universe has been around)
MAX_EXPONENT = 64


class Backoff:
    """Waits of base, base*factor, base*factor**2 ... seconds, never more than cap (but jitter,
    with ``hard_cap=False``)."""

    def __init__(self, base, cap, factor=2.0, jitter=0.0, *, hard_cap=True):
        if base < 0 or cap < 0 or factor < 1 or not 0 <= jitter < 1:
            raise ValueError("backoff needs base >= 0, cap >= 0, factor >= 1 and 0 <= jitter < 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.hard_cap = hard_cap

    def __repr__(self):
        return "Backoff(base=%r, cap=%r, factor=%r, jitter=%r, hard_cap=%r)" % (
            self.base, self.cap, self.factor, self.jitter, self.hard_cap)

    def delay(self, attempt):
        """Seconds to wait after failed attempt number `attempt` (1 for the first failure; 0 or
        less counts as the first)."""
        exponent = min(max(attempt, 1) - 1, MAX_EXPONENT)
        wait = self.base * self.factor ** exponent
        if not self.jitter:
            return min(self.cap, wait)
        spread = random.uniform(1 - self.jitter, 1 + self.jitter)
        if self.hard_cap:
            return min(self.cap, wait * spread)
        return min(self.cap, wait) * spread

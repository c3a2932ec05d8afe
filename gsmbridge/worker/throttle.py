"""How fast a modem may send: `send_rate` SMS a minute, counted in parts, as carriers count them."""

import time


class TokenBucket:
    """At most `per_minute` SMS a minute, as a bucket of one token refilled at that rate.

    Carriers bar SIMs that send too fast, and they count SMS, so each part of a long message costs
    a token. A message may be sent when a whole token is there; its parts are then all taken, the
    bucket going into debt for the rest, which the next message waits out. 0 means no limit.
    """

    def __init__(self, per_minute, *, burst=1.0, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()

    def _refill(self):
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self):
        """True when a message may be sent now."""
        if self.rate <= 0:
            return True
        self._refill()
        return self.tokens >= 1.0

    def take(self, parts):
        """Spend `parts` SMS (the parts the modem took, successful or not)."""
        if self.rate > 0:
            self._refill()
            self.tokens -= parts

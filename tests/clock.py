"""A settable clock for tests, so retries, backoff and pruning need no sleeping."""


class Clock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

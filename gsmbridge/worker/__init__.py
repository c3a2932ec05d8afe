"""The worker: the thread that owns one modem.

It is the only code that touches the modem's serial port. Inbound it moves SMS from the modem to
the store, and only after the store has committed them does it let the modem forget them (AT+CMGD
for a stored message, AT+CNMA for a routed one). Outbound it takes queued messages from the store,
marks each `sending` (committed) before AT+CMGS, and records the outcome, no faster than
`send_rate`. It may import the modem and the store; the web side never imports it.

One module per job:

    thread.py    ModemWorker: the loop and its recovery (boot, watchdog, reopen, reset, backoff)
    receive.py   committing one inbound message (decode, dedup key, reassembly, commit, done)
    send.py      sending one queued message (claim, send, record, retry or fail)
    throttle.py  TokenBucket: no faster than send_rate

Backoff (gsmbridge.backoff) is importable from here as before.
"""

from gsmbridge.backoff import Backoff

from .send import NO_NETWORK
from .thread import EXIT_WATCHDOG, ModemWorker
from .throttle import TokenBucket

__all__ = ["Backoff", "EXIT_WATCHDOG", "ModemWorker", "NO_NETWORK", "TokenBucket"]

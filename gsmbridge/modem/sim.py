"""The SIM while it starts: waiting it out, and entering its PIN at most once.

A SIM or SMS stack that is still starting answers with vague errors for a while (SIM busy,
"SMS not ready", a plain ERROR on some), so commands at setup are retried on those until a
deadline rather than failed on.  A PIN the SIM refused is remembered for the life of the process
and never sent again: three tries and the SIM wants its PUK, which needs a person.
"""

import time

from .errors import CmeError, ModemError
from .fields import after_colon, unquote

# Errors that mean "the SIM or the SMS stack is still starting": wait and ask again.
BUSY = frozenset({("CME", 14), ("CMS", 314), ("CMS", 515), ("CME", 515), ("CMS", 535),
                  ("CMS", 532)})
# AT+CPIN? and AT+CMGF=0 must work on any modem, so anything vague is also waited out there.
STARTING = BUSY | {("ERROR", None), ("CMS", 302), ("CMS", 500), ("CME", 100), ("CME", 3)}

# (port, PIN) pairs a SIM refused, for the life of the process: a worker that builds a new
# GsmModem for every reconnect must not spend the SIM's three tries and lock it to its PUK.
_REFUSED_PINS = set()

_LOCKED = {"SIM PIN": 11, "SIM PUK": 12, "PH-SIM PIN": 5, "SIM PIN2": 17, "SIM PUK2": 18}


def retrying(port, cmd, *, until, log, done_on=None, timeout=None, retry_on=BUSY):
    """``port.command(cmd)``, retrying ``retry_on`` errors once a second until ``until``."""
    while True:
        try:
            return port.command(cmd, done_on=done_on, timeout=timeout)
        except ModemError as exc:
            if (exc.kind, exc.code) not in retry_on or time.monotonic() >= until:
                raise
            log.info("%s: %s; waiting", port.url, exc)
            port.wait(1.0)


def sim_ready(port, pin, *, until, log):
    """AT+CPIN? until READY, entering ``pin`` when asked; waits out a busy SIM.  CmeError for a
    SIM that stays locked (11 PIN, 12 PUK...) or a PIN refused (16)."""
    entered = False
    refused = (port.url, pin) in _REFUSED_PINS
    while True:
        lines = retrying(port, "AT+CPIN?", until=until, log=log, done_on="+CPIN:",
                         retry_on=STARTING)
        state = unquote(after_colon(lines[0].line)).upper() if lines else "READY"
        if state == "READY":
            return
        if state == "SIM PIN" and pin and not entered and not refused:
            try:
                retrying(port, 'AT+CPIN="%s"' % pin, until=until, log=log)
            except ModemError as exc:
                if not exc.transient:
                    # Never try a refused PIN again: three tries and the SIM wants its PUK.
                    _REFUSED_PINS.add((port.url, pin))
                    log.error("%s: the SIM refused the PIN (%s); not trying it again",
                              port.url, exc)
                raise
            entered = True
            continue
        if state in _LOCKED:
            if state == "SIM PIN" and (entered or refused):
                raise CmeError(16, command="AT+CPIN", line="the PIN was refused; not retried")
            raise CmeError(_LOCKED[state], command="AT+CPIN?", line=lines[0].line)
        if time.monotonic() >= until:
            raise CmeError(14, command="AT+CPIN?", line=lines[0].line)
        port.wait(1.0)

"""``Calls``: incoming voice calls, hung up at once.

A modem used as an SMS gateway must not hold a call: while one rings or is up, some modems
refuse to send SMS, and a caller who gets through hears nothing useful.  Yet a call is worth
counting (and, where SMS costs money, a "missed call" is how people say "call me back"), so each
one is handed to the caller of `take` with who called and when.

What modems say (TS 27.007 and V.250): ``RING`` (or ``+CRING: VOICE`` after AT+CRC=1) every few
seconds while a call rings, and after AT+CLIP=1 (set here after every setup) a
``+CLIP: "<number>",<type>,,,,<CLI validity>`` after each ring (validity 1: withheld, 2: not
available).  ``NO CARRIER`` when the caller gives up first (the AT engine makes it unsolicited
unless a call command is running), Huawei's ``^CEND`` likewise.  The call is hung up with ATH,
or AT+CHUP where ATH is not accepted; it is hung up as soon as the number is known, or
``CLIP_WAIT`` after the first ring when no +CLIP comes.
"""

import time
from dataclasses import dataclass

from .errors import ModemError
from .fields import split_params, to_int, unquote

#: seconds after the first RING to wait for its +CLIP before hanging up without the number
CLIP_WAIT = 1.0

_RINGS = {"RING", "+CRING"}
_ENDS = {"NO CARRIER", "^CEND"}


@dataclass
class Call:
    """One incoming call: ``number`` (None when withheld or not given), ``at`` (epoch seconds
    of its first ring), ``rings`` and ``hung_up`` (False: the caller gave up before we did)."""
    number: str | None
    at: float
    rings: int = 0
    hung_up: bool = False
    _first: float = 0.0             # monotonic time of the first ring
    _clip: bool = False             # a +CLIP came (the number, or word that there is none)


class Calls:
    """The calls on ``port``: ``setup`` after every modem setup, ``take`` from the owner's
    loop; ``unsolicited`` is the port's listener."""

    def __init__(self, port, *, log, clock=time.time):
        self._port = port
        self._log = log
        self._clock = clock
        self._current = None            # the call ringing now
        self._ended = []                # calls over, not yet taken
        self._use_chup = False          # ATH was refused once: AT+CHUP from then on

    def setup(self):
        """Ask for the caller's number with every ring (AT+CLIP=1; not every modem takes it)."""
        try:
            self._port.command("AT+CLIP=1")
        except ModemError as exc:
            self._log.info("%s: AT+CLIP=1: %s; calls will come without numbers",
                           self._port.url, exc)

    def take(self):
        """Hang up the call that rings, if it is time, and hand over every call that is over
        since the last time (oldest first)."""
        call = self._current
        if call is not None and (call._clip or time.monotonic() - call._first >= CLIP_WAIT):
            # A RING or +CLIP already on its way comes before ATH's answer: still this call's.
            self._hang_up()
            if self._current is call:
                self._current = None
                call.hung_up = True
                self._ended.append(call)
        calls, self._ended = self._ended, []
        return calls

    def _hang_up(self):
        for command in (("AT+CHUP",) if self._use_chup else ("ATH", "AT+CHUP")):
            try:
                self._port.command(command)
                return
            except ModemError as exc:
                if exc.kind == "NO CARRIER":        # the call is gone: what we wanted
                    return
                self._log.info("%s: %s: %s", self._port.url, command, exc)
                if command == "ATH":
                    self._use_chup = True
        self._log.warning("%s: the call could not be hung up", self._port.url)

    # --- what the modem says unasked -----------------------------------------------------------

    def unsolicited(self, event):
        name = event.name.upper()
        if name in _RINGS:
            if name == "+CRING" and event.value.upper().startswith(("FAX", "ASYNC", "SYNC",
                                                                    "REL")):
                self._log.info("%s: a %s call", self._port.url, event.value)
            self._ring()
        elif name == "+CLIP":
            call = self._ring(counted=False)
            if call is not None:
                call.number = _number(event.value)
                call._clip = True
                self._port.wake()
        elif name in _ENDS and self._current is not None:
            call, self._current = self._current, None
            self._ended.append(call)
            self._port.wake()

    def _ring(self, counted=True):
        call = self._current
        if call is None:
            call = self._current = Call(number=None, at=self._clock(), _first=time.monotonic())
            self._port.wake()
        if counted:
            call.rings += 1
        return call


def _number(value):
    """The number of a +CLIP, None when withheld or not given (empty, or CLI validity 1/2)."""
    fields = split_params(value)
    number = unquote(fields[0]) if fields else ""
    validity = to_int(fields[5]) if len(fields) > 5 else None
    if validity in (1, 2) or not number:
        return None
    return number[:32]

"""Incoming voice calls on the simulated modem: RING, +CRING, +CLIP, and the commands that
answer or end a call (TS 27.007 and V.250).

A call placed through the control API rings at once and then every ``ring_interval`` seconds:
``RING``, or ``+CRING: VOICE`` after AT+CRC=1, followed by ``+CLIP: "<number>",<type>,,,,0``
after AT+CLIP=1 (type 145 for an international number, 129 for a national one; a withheld
number is ``+CLIP: "",128,,,,1``, CLI validity 1).  It goes on until the host answers (ATA) or
hangs up (ATH, AT+CHUP), or the caller gives up after ``rings`` rings or hangs up through the
control API, when the modem says ``NO CARRIER``: an unsolicited line that looks like a final
result code, which is exactly how real modems say it.  AT+CLCC lists the call, AT+CPAS shows
3 (ringing) or 4 (in a call).  Every call is kept with how it ended, so tests can see that the
host hung up.

The result codes go through the network's notice queue (network.py): whole, and never inside
another command's answer.
"""

from . import render
from .command import Error, integer, registrar

EXTENDED = {}
extended = registrar(EXTENDED)

MAX_CALLS = 1000         # calls kept for GET /calls


class CallError(Exception):
    """A call cannot be placed or ended now (the control API answers 409)."""


class Call:
    """One incoming call: who, how far it got, and how it ended."""

    def __init__(self, number, max_rings, ident, started):
        self.id = ident
        self.number = number          # "" for a withheld number
        self.max_rings = max_rings
        self.rings = 0
        self.state = "ringing"        # "ringing" | "active" | "ended"
        self.answered = False
        self.ended_by = None          # "host" (ATH, AT+CHUP) | "caller" | "reset"
        self.started = started
        self.ended = None

    @property
    def type(self):
        if not self.number:
            return 128
        return 145 if self.number.startswith("+") else 129

    def describe(self):
        return {"id": self.id, "from": self.number, "type": self.type, "rings": self.rings,
                "max_rings": self.max_rings, "state": self.state, "answered": self.answered,
                "ended_by": self.ended_by, "started": self.started, "ended": self.ended}


class CallService:
    """The network's calls to the modem, and the modem's +CLIP/+CRC settings.

    Owned by a `SimulatedModem` and used under its lock.
    """

    def __init__(self, modem, *, ring_interval=3.0, rings=5):
        if not isinstance(ring_interval, (int, float)) or not 0 < ring_interval <= 60:
            raise ValueError("ring_interval is 0 to 60 seconds")
        if isinstance(rings, bool) or not isinstance(rings, int) or not 1 <= rings <= 100:
            raise ValueError("rings is 1 to 100")
        self.modem = modem
        self.ring_interval = float(ring_interval)
        self.rings = rings
        self.calls = []
        self.current = None
        self.clip = 0
        self.crc = 0
        self._next_id = 1

    def defaults(self):
        """ATZ, AT&F and power-up: no caller line identification, plain RING."""
        self.clip = 0
        self.crc = 0

    def reset(self):
        """The modem restarted: a call in progress is dropped."""
        if self.current is not None:
            self._end("reset", say=False)

    # -- the network's side ------------------------------------------------------------------

    def place(self, number, rings=None):
        """A call from `number` ("" withheld) reaches the modem; returns it described."""
        if not isinstance(number, str) or len(number) > 20 or (
                number and not number.lstrip("+").isdigit()) or number == "+":
            raise ValueError('"from" is a phone number ("+255700000001", "0700000001") or ""')
        if rings is None:
            rings = self.rings
        if isinstance(rings, bool) or not isinstance(rings, int) or not 1 <= rings <= 100:
            raise ValueError("rings is 1 to 100")
        if self.current is not None:
            raise CallError("a call is in progress (%s)" % self.current.state)
        if self.modem._cannot_receive():
            raise CallError("the modem cannot be reached: not registered, off or hung")
        call = Call(number, rings, self._next_id, self.modem._now().isoformat())
        self._next_id += 1
        self.current = call
        self.calls.append(call)
        del self.calls[:-MAX_CALLS]
        self._ring(call)
        return call.describe()

    def caller_hangs_up(self):
        """The caller ends the call (POST /calls/end); returns it described."""
        call = self.current
        if call is None:
            raise CallError("no call in progress")
        self._end("caller")
        return call.describe()

    def _ring(self, call):
        if call is not self.current or call.state != "ringing":
            return
        if call.rings >= call.max_rings:
            self._end("caller")             # the caller gave up
            return
        call.rings += 1
        self.modem.notice(["+CRING: VOICE" if self.crc else "RING"], "call")
        if self.clip:
            if call.number:
                line = '+CLIP: %s,%d,,,,0' % (render.quoted(self.modem, call.number), call.type)
            else:
                line = '+CLIP: "",128,,,,1'
            self.modem.notice([line], "call")
        self.modem._schedule(self.ring_interval, lambda: self._ring(call))

    def _end(self, by, say=True):
        call, self.current = self.current, None
        call.state = "ended"
        call.ended_by = by
        call.ended = self.modem._now().isoformat()
        self.modem.withdraw("call")
        if say and by == "caller":
            self.modem.notice(["NO CARRIER"], "call")

    # -- the host's side ---------------------------------------------------------------------

    def answer(self):
        """ATA: take the ringing call (NO CARRIER when there is none, as V.250 says)."""
        call = self.current
        if call is None or call.state != "ringing":
            raise Error("NO CARRIER")
        call.state = "active"
        call.answered = True
        self.modem.withdraw("call")

    def hang_up(self):
        """ATH or AT+CHUP: end the call, ringing or active; OK with no call too."""
        if self.current is not None:
            self._end("host")

    def activity(self):
        """+CPAS <pas>: 0 ready, 3 ringing, 4 call in progress."""
        if self.current is None:
            return 0
        return 3 if self.current.state == "ringing" else 4

    def describe(self):
        return [call.describe() for call in self.calls]

    def forget(self):
        """Drop the ended calls (DELETE /calls); a call in progress stays."""
        self.calls = [call for call in self.calls if call is self.current]


# -- commands ----------------------------------------------------------------------------------

def _answer(modem, op, args):
    modem.calls.answer()
    return []


def _hang_up(modem, op, args):
    if args not in ("", "0"):
        raise Error()
    modem.calls.hang_up()
    return []


BASIC = {"A": _answer, "H": _hang_up}


@extended("+CHUP")
def _chup(modem, op, args):
    if op == "test":
        return []
    if op != "exec":
        raise Error()
    modem.calls.hang_up()
    return []


@extended("+CLIP")
def _clip(modem, op, args):
    if op == "test":
        return [["+CLIP: (0,1)"]]
    if op == "read":
        return [["+CLIP: %d,1" % modem.calls.clip]]     # <m> 1: CLIP provisioned
    if op != "set":
        raise Error()
    modem.calls.clip = integer(args, 0, 1, default=0)
    return []


@extended("+CRC")
def _crc(modem, op, args):
    if op == "test":
        return [["+CRC: (0,1)"]]
    if op == "read":
        return [["+CRC: %d" % modem.calls.crc]]
    if op != "set":
        raise Error()
    modem.calls.crc = integer(args, 0, 1, default=0)
    return []


@extended("+CLCC")
def _clcc(modem, op, args):
    if op == "test":
        return []
    if op != "exec":
        raise Error()
    call = modem.calls.current
    if call is None:
        return []
    stat = 4 if call.state == "ringing" else 0        # 4 incoming, 0 active
    return [['+CLCC: 1,1,%d,0,0,%s,%d' % (stat, render.quoted(modem, call.number), call.type)]]

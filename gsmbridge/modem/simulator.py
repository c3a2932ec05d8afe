"""A simulated GSM modem: the TS 27.005/27.007 command set, bytes in and bytes out.

`SimulatedModem` is the modem's logic without any port: `feed()` gives it the bytes a host wrote,
`data_to_send()` returns the bytes the modem would write back (echo, responses, result codes,
unsolicited result codes).  Time is read from a clock passed in, and `tick()` runs whatever fell
due (a delayed ``+CMGS``, a status report, an unacknowledged ``+CMT`` being redelivered), so the
whole thing runs on a pseudo-terminal (simport.py) or straight from a test.

It behaves as a real modem does where a driver has to cope: echo is on after power-up, lines are
framed ``\\r\\n...\\r\\n``, the ``> `` prompt has no line end, an unread message becomes read once
listed, ``+CMT`` needs ``AT+CNMA`` when ``AT+CSMS=1`` (or the network redelivers it and, as
TS 27.005 section 3.4.4 requires, routing is switched off), a full storage makes the network hold
messages until there is room again.  Faults (`Faults`) switch on the habits of bad modems.

The other direction of the bridge's codec (pdu.py) does the PDU work: the modem decodes what the
host submits and encodes what the "network" delivers.  All public methods take a lock, so a
control thread may call `deliver()` or `set_faults()` while a port thread feeds bytes.
"""

import random
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone

from . import errors, gsm7, pdu

__all__ = ["SimulatedModem", "Faults", "FAULTS"]

CTRL_Z = 0x1A
ESC = 0x1B
BACKSPACE = 0x08

#: TS 27.005 message status: PDU mode number <-> text mode name
STAT_NAMES = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")
MEMORIES = ("SM", "ME", "MT")
CHARSETS = ("IRA", "GSM", "UCS2", "8859-1")
#: commands of TS 27.005: their errors are +CMS ERROR, everything else's +CME ERROR
SMS_COMMANDS = {"+CSMS", "+CPMS", "+CMGF", "+CSCA", "+CSMP", "+CSDH", "+CNMI", "+CNMA", "+CMGL",
                "+CMGR", "+CMGD", "+CMGS", "+CMGW", "+CMSS", "+CMMS"}
#: commands that need the SIM: they fail while it is locked or busy
SIM_COMMANDS = {"+CIMI", "+CPMS", "+CSCA", "+CMGL", "+CMGR", "+CMGD", "+CMGS", "+CMGW", "+CMSS",
                "+CNMA"}


class Error(Exception):
    """A command failed: becomes ERROR, +CME ERROR or +CMS ERROR as AT+CMEE says."""

    def __init__(self, kind="ERROR", code=None):
        super().__init__(kind, code)
        self.kind = kind
        self.code = code


def cme(code):
    return Error("CME", code)


def cms(code):
    return Error("CMS", code)


@dataclass
class Faults:
    """The bad habits switched on at run time (see `SimulatedModem.set_faults`).

    Durations in seconds are given as "from now"; `SimulatedModem.faults()` shows what is left.
    """
    network_delay: float = 0.0    # seconds the network takes to accept each submitted part
    slow_cmgs: float = 0.0        # extra seconds before +CMGS answers
    cms_error: float = 0.0        # fraction of submits answered +CMS ERROR: <cms_error_code>
    cms_error_code: int = 500
    sim_busy: float = 0.0         # for this long, SIM commands answer +CME ERROR: 14
    storage_full: bool = False    # storing answers +CMS ERROR: 322; inbound waits at the network
    hang: float = 0.0             # stop answering: seconds, or -1 until reset/port reopened
    disappear: float = 0.0        # the port goes away for this long (done by the port, simport.py)
    noise: float = 0.0            # chance of a garbage line between two output lines
    urc_storm: float = 0.0        # ^RSSI/+CREG per second, also inside responses
    signal: int = 20              # AT+CSQ <rssi>; 99 = unknown
    registration: int = 1         # +CREG <stat>: 1 home, 5 roaming, 0/2/3 no service
    report_status: int = 0        # TP-ST of generated status reports (0 delivered, 0x40.. failed)


FAULTS = tuple(f.name for f in fields(Faults))
_WINDOWS = ("sim_busy", "hang")   # durations kept as deadlines


def _fault_value(name, value):
    """A fault's value checked and converted to its field's type; ValueError if it is wrong."""
    if name not in FAULTS:
        raise ValueError("unknown fault %r" % name)
    kind = type(getattr(Faults, name))
    if value is None:
        value = getattr(Faults, name)
    if name == "hang" and isinstance(value, bool):
        value = -1.0 if value else 0.0
    if kind is bool:
        if not isinstance(value, (bool, int)):
            raise ValueError("%s is true or false" % name)
        return bool(value)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValueError("bad value for %s: %r" % (name, value)) from None
    if value != value or value < 0 and not (name == "hang" and value == -1):
        raise ValueError("bad value for %s: %r" % (name, value))
    if name in ("cms_error", "noise") and value > 1:
        raise ValueError("%s is a fraction between 0 and 1" % name)
    limit = _LIMITS.get(name)
    if limit and not (value <= limit[0] or value in limit[1:]):
        raise ValueError("%s out of range: %r" % (name, value))
    return value


#: the largest value of integer faults, and other values allowed
_LIMITS = {"signal": (31, 99), "registration": (5,), "report_status": (255,),
           "cms_error_code": (65535,)}


class Message:
    """One storage slot: a PDU (SMSC field included) and its TS 27.005 status."""

    __slots__ = ("stat", "pdu", "length", "kind")

    def __init__(self, stat, pdu_hex, kind):
        self.stat = stat
        self.pdu = pdu_hex
        self.length = tpdu_length(pdu_hex)
        self.kind = kind      # "deliver" | "report" | "submit"


class Memory:
    """A message storage ("SM" on the SIM, "ME" in the phone) with numbered slots."""

    def __init__(self, name, capacity, first_index):
        self.name = name
        self.capacity = capacity
        self.first = first_index
        self.slots = {}

    @property
    def used(self):
        return len(self.slots)

    def indices(self):
        return range(self.first, self.first + self.capacity)

    def add(self, message):
        """Store in the lowest free slot; its index, or None when full."""
        for index in self.indices():
            if index not in self.slots:
                self.slots[index] = message
                return index
        return None

    def get(self, index):
        return self.slots.get(index)

    def delete(self, index):
        return self.slots.pop(index, None) is not None

    def items(self):
        return sorted(self.slots.items())


class Combined:
    """ "MT": SM and ME as one storage, SM's slots first, then ME's (numbered after SM's)."""

    name = "MT"

    def __init__(self, sm, me):
        self.parts = (sm, me)
        self.first = sm.first

    @property
    def capacity(self):
        return sum(m.capacity for m in self.parts)

    @property
    def used(self):
        return sum(m.used for m in self.parts)

    def _locate(self, index):
        offset = 0
        for memory in self.parts:
            local = index - offset
            if memory.first <= local < memory.first + memory.capacity:
                return memory, local
            offset += memory.capacity
        return None, None

    def add(self, message):
        offset = 0
        for memory in self.parts:
            index = memory.add(message)
            if index is not None:
                return index + offset
            offset += memory.capacity
        return None

    def get(self, index):
        memory, local = self._locate(index)
        return memory.get(local) if memory else None

    def delete(self, index):
        memory, local = self._locate(index)
        return memory.delete(local) if memory else False

    def items(self):
        out, offset = [], 0
        for memory in self.parts:
            out += [(index + offset, m) for index, m in memory.items()]
            offset += memory.capacity
        return out


def tpdu_length(pdu_hex):
    """The TPDU's length in octets, the <length> of +CMGS/+CMGL: the PDU without its SMSC field."""
    try:
        smsc_octets = int(pdu_hex[:2], 16)
    except ValueError:
        return len(pdu_hex) // 2
    return max(0, len(pdu_hex) // 2 - 1 - smsc_octets)


def first_octet(pdu_hex):
    """The TPDU's first octet (message type, flags), after the SMSC address field."""
    start = 2 + 2 * int(pdu_hex[:2], 16)
    return int(pdu_hex[start:start + 2], 16)


def split_args(text):
    """'1,"SM",,"a,b"' -> ['1', '"SM"', '', '"a,b"']: commas outside quotes split."""
    args, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            args.append(current.strip())
            current = ""
        else:
            current += ch
    args.append(current.strip())
    return args


def unquote(arg):
    if arg is not None and len(arg) >= 2 and arg[0] == arg[-1] == '"':
        return arg[1:-1]
    return arg


def integer(arg, low, high, default=None):
    """A numeric parameter in [low, high]; an empty one takes `default` (None: required)."""
    if arg in (None, ""):
        if default is None:
            raise Error()
        return default
    try:
        value = int(arg)
    except ValueError:
        raise Error() from None
    if not low <= value <= high:
        raise Error()
    return value


def parse_command_line(line):
    """Split what follows "AT" into commands: [(name, op, args)].

    V.250 syntax: basic commands are a letter (or & and a letter) with an optional number, S
    registers are ``Sn=v`` / ``Sn?``; extended commands start with "+" (or a vendor's "^", "$",
    "%") and run to ";" or the end.  op is "exec", "read" (?), "test" (=?) or "set" (=...).
    Outside quotes spaces are dropped and letters upper-cased.  Raises Error on bad syntax.
    """
    commands, i, n = [], 0, len(line)
    while i < n:
        ch = line[i]
        if ch == ";":
            i += 1
            continue
        if ch in "+^$%#*":
            j, quoted = i + 1, False
            while j < n and (quoted or line[j] != ";"):
                if line[j] == '"':
                    quoted = not quoted
                j += 1
            body = line[i:j]
            i = j
            k = 1
            while k < len(body) and (body[k].isalnum() or body[k] in "_-"):
                k += 1
            name, rest = body[:k], body[k:]
            if len(name) < 2:
                raise Error()
            if rest == "":
                commands.append((name, "exec", ""))
            elif rest == "?":
                commands.append((name, "read", ""))
            elif rest == "=?":
                commands.append((name, "test", ""))
            elif rest.startswith("="):
                commands.append((name, "set", rest[1:]))
            else:
                raise Error()
            continue
        if ch == "&" and i + 1 < n and line[i + 1].isalpha():
            name, i = "&" + line[i + 1], i + 2
        elif ch.isalpha():
            name, i = ch, i + 1
        else:
            raise Error()
        if name == "S":
            j = i
            while j < n and line[j].isdigit():
                j += 1
            if j == i:
                raise Error()
            register, i = line[i:j], j
            if i < n and line[i] == "?":
                commands.append(("S", "read", register))
                i += 1
            elif i < n and line[i] == "=":
                j = i + 1
                while j < n and line[j].isdigit():
                    j += 1
                commands.append(("S", "set", register + "=" + line[i + 1:j]))
                i = j
            else:
                raise Error()
            continue
        if name == "D":        # dial: the rest of the line is its argument
            commands.append(("D", "exec", line[i:]))
            break
        j = i
        while j < n and line[j].isdigit():
            j += 1
        commands.append((name, "exec", line[i:j]))
        i = j
    return commands


def normalise(line):
    """Upper-case and drop spaces outside quotes (V.250 5.2.1), keep quoted strings as given."""
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if quoted or ch == '"':
            out.append(ch)
        elif ch != " ":
            out.append(ch.upper())
    return "".join(out)


def scts_text(ts):
    """A timestamp as text mode shows it: "yy/MM/dd,hh:mm:ss+zz" (zz in quarter hours)."""
    offset = ts.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    return '"%s%+03d"' % (ts.strftime("%y/%m/%d,%H:%M:%S"), quarters)


def address_type(number):
    if number.startswith("+"):
        return 145
    if number.isdigit():
        return 129
    return 208     # alphanumeric (TS 23.040 9.1.2.5: type 101, plan 0000)


def wallclock():
    return datetime.now(timezone.utc).astimezone().replace(microsecond=0)


class SimulatedModem:
    """The modem: feed it the host's bytes, take its answer from `data_to_send()`.

    Options (keyword): pin (None: no PIN), puk, capacity (SIM slots, 30), me_capacity (100),
    first_index (1; some Huawei modems count from 0), smsc, manufacturer, model, revision, imei,
    imsi, operator, operator_numeric, report_delay (seconds before a requested status report,
    1.0), cnma_timeout (seconds the network waits for AT+CNMA, 12.0: TS 24.011's TR2M),
    redelivery_delay (seconds before the network tries again, 10.0), cnma_disables_routing
    (True, as TS 27.005 3.4.4 says),
    reset_time (seconds AT+CFUN=1,1 keeps the modem away, 0.2), seed (for the random faults),
    clock (monotonic seconds), now (aware datetime for timestamps), on_output (called, under the
    modem's lock, whenever there is something new for the port), and any `Faults` field.
    """

    def __init__(self, *, pin=None, puk="12345678", capacity=30, me_capacity=100, first_index=1,
                 smsc="+255790000000", manufacturer="gsmbridge", model="SIM-27005",
                 revision="1.0.0", imei="356938035643809", imsi="640040000000001",
                 operator="SimTel", operator_numeric="64004", report_delay=1.0,
                 cnma_timeout=12.0, redelivery_delay=10.0, cnma_disables_routing=True,
                 reset_time=0.2, seed=None, clock=time.monotonic, now=wallclock,
                 on_output=None, **faults):
        self._lock = threading.RLock()
        self._clock = clock
        self._now = now
        self._random = random.Random(seed)
        self.on_output = on_output
        self.pin = pin
        self.puk = puk
        self.smsc = smsc
        self.identity = {"+CGMI": manufacturer, "+CGMM": model, "+CGMR": revision,
                         "+CGSN": imei, "+CIMI": imsi}
        self.operator = (operator, operator_numeric)
        self.report_delay = report_delay
        self.cnma_timeout = cnma_timeout
        self.redelivery_delay = redelivery_delay
        self.cnma_disables_routing = cnma_disables_routing
        self.reset_time = reset_time
        self.sm = Memory("SM", capacity, first_index)
        self.me = Memory("ME", me_capacity, first_index)
        self.memories = {"SM": self.sm, "ME": self.me, "MT": Combined(self.sm, self.me)}
        self.sent = []            # complete messages the host submitted (dicts, JSON-ready)
        self.rejected = 0         # submits answered with an error by the "network"
        self._partial = {}        # concatenated sends still missing parts
        self._faults = Faults()
        self._deadlines = {}      # window fault -> clock value it ends at
        self._out = bytearray()
        self._at_line_start = True
        self._timers = []         # [(due, callback, survives a reset)]
        self._network = []        # messages the network holds for us: [_Pending]
        self._unacked = None      # the routed +CMT/+CDS waiting for AT+CNMA
        self._mr = 0              # TP-MR of the next submit
        self._concat = self._random.randrange(256)
        self._storm_next = None
        self._storm_count = 0
        self.power_cycle()
        self.set_faults(**faults)

    # -- the host side ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes the host wrote to the port."""
        with self._lock:
            self.tick()
            if self._hung() or self._state == "off":
                return
            self._input += data
            self._process_input()
            self._notify()

    def data_to_send(self) -> bytes:
        """Everything the modem has to write, in order; empties the buffer."""
        with self._lock:
            self.tick()
            out = bytes(self._out)
            self._out.clear()
            return out

    def tick(self):
        """Run what has fallen due: delayed answers, reports, redeliveries, URC storms."""
        with self._lock:
            now = self._clock()
            for name, deadline in list(self._deadlines.items()):
                if now >= deadline:
                    del self._deadlines[name]
                    setattr(self._faults, name, 0.0)
            while True:
                due = [t for t in self._timers if t[0] <= now]
                if not due:
                    break
                self._timers = [t for t in self._timers if t[0] > now]
                for timer in sorted(due, key=lambda t: t[0]):
                    timer[1]()
            self._route_network()
            self._storm()

    def next_timer(self):
        """Seconds until `tick()` has something to do (None: nothing planned).

        Network messages that are due but held (an unacknowledged +CMT, no registration, a
        modem that is off or hung) wait for an event, not for time: they are not counted, or
        the port's pump would spin until the event comes."""
        with self._lock:
            now = self._clock()
            held = self._unacked is not None or self._hung() or self._state == "off" \
                or not self._registered()
            dues = [t[0] for t in self._timers]
            dues += [p.due for p in self._network if not (held and p.due <= now)]
            dues += [d for d in self._deadlines.values() if d != float("inf")]
            if self._storm_next is not None:
                dues.append(self._storm_next)
            if not dues:
                return None
            return max(0.0, min(dues) - now)

    # -- the network side ------------------------------------------------------------------

    def deliver(self, sender, text, *, encoding=None, timestamp=None, smsc=None):
        """An SMS from `sender` reaches the modem; a long text comes as concatenated parts.

        Returns what the network sent: {"from", "text", "parts", "pdus"}.
        """
        with self._lock:
            timestamp = timestamp or self._now()
            self._concat = (self._concat + 1) % 256
            pdus = pdu.deliver_pdus(sender, text, timestamp=timestamp,
                                    concat_reference=self._concat, encoding=encoding,
                                    smsc=smsc or self.smsc, max_parts=255)
            for hex_pdu, _ in pdus:
                self._network.append(_Pending(hex_pdu, "deliver", self._clock()))
            self.tick()
            self._notify()
            return {"from": sender, "text": text, "parts": len(pdus),
                    "pdus": [hex_pdu for hex_pdu, _ in pdus]}

    def deliver_pdu(self, pdu_hex, kind="deliver"):
        """A raw PDU (SMSC field included) reaches the modem as is: malformed ones included."""
        with self._lock:
            self._network.append(_Pending(pdu_hex.upper(), kind, self._clock()))
            self.tick()
            self._notify()
            return {"parts": 1, "pdus": [pdu_hex.upper()]}

    # -- faults and inspection -------------------------------------------------------------

    def sent_messages(self):
        """A copy of `sent`: one dict per SMS the host sent (concatenated parts joined):
        to, text, encoding, parts, reference (TP-MR of the first part), references, pdus,
        status_report (requested), concat ({reference, total} or None)."""
        with self._lock:
            return [dict(entry) for entry in self.sent]

    def clear_sent(self):
        with self._lock:
            self.sent.clear()

    def set_faults(self, **values):
        """Switch faults on or off; see `Faults`.  Unknown names or bad values: ValueError.

        Durations (sim_busy, hang) count from now; hang=True (or -1) lasts until the modem is
        reset or its port reopened.  disappear is done once by the port that runs the modem.
        """
        with self._lock:
            checked = {name: _fault_value(name, value) for name, value in values.items()}
            now = self._clock()
            old_stat = self._reg_stat()
            for name, value in checked.items():
                setattr(self._faults, name, value)
                if name in _WINDOWS:
                    self._deadlines.pop(name, None)
                    if value:
                        self._deadlines[name] = now + value if value > 0 else float("inf")
            if self._reg_stat() != old_stat:
                self._creg_changed()
            if "urc_storm" in checked:
                self._storm_next = now if self._faults.urc_storm > 0 else None
            if checked.get("storage_full") is False:
                self._space_freed()
            self.tick()
            self._notify(force=True)

    def faults(self):
        """The faults as set; windows (sim_busy, hang) as seconds left, -1 until reset."""
        with self._lock:
            self.tick()
            out = {name: getattr(self._faults, name) for name in FAULTS}
            now = self._clock()
            for name in _WINDOWS:
                deadline = self._deadlines.get(name)
                out[name] = 0.0 if deadline is None else (
                    -1.0 if deadline == float("inf") else round(deadline - now, 3))
            return out

    def take_disappear(self):
        """For the port: seconds the port should stay away, once (0: stay)."""
        with self._lock:
            seconds, self._faults.disappear = self._faults.disappear, 0.0
            return seconds

    def state(self):
        """The storages, settings and queues, JSON-ready (for GET /state and tests)."""
        with self._lock:
            storage = {}
            for name in ("SM", "ME"):
                memory = self.memories[name]
                storage[name] = {"used": memory.used, "total": memory.capacity, "messages": [
                    dict(index=index, stat=STAT_NAMES[m.stat], pdu=m.pdu, kind=m.kind)
                    for index, m in memory.items()]}
            return {
                "storage": storage,
                "settings": {"echo": self.echo, "cmee": self.cmee, "cmgf": self.cmgf,
                             "cscs": self.cscs, "csms": self.csms, "cnmi": list(self.cnmi),
                             "cpms": list(self.cpms), "creg": self.creg, "cfun": self.cfun,
                             "pin": self._pin_state, "csca": self.csca, "cmms": self.cmms},
                "network_queue": len(self._network),
                "unacknowledged": self._unacked.pdu if self._unacked else None,
                "sent": len(self.sent),
                "partial_sends": len(self._partial),
                "rejected": self.rejected,
                "state": "hung" if self._hung() else self._state,
            }

    def power_cycle(self):
        """Switch off and on: settings back to defaults, SIM locked again, storage kept."""
        with self._lock:
            self._deadlines.pop("hang", None)
            self._faults.hang = 0.0
            self._state = "command"      # "command" | "prompt" | "busy" | "off"
            self._input = bytearray()
            self._line = bytearray()
            self._held = bytearray()     # input that arrived while busy
            self._prompt = None
            self._last_line = b""
            self._timers = [t for t in self._timers if t[2]]     # the network's go on
            self._answered = []
            self._sregs = {}
            if self._unacked is not None:
                self._network.append(self._unacked.retry(self._clock() + self.redelivery_delay))
                self._unacked = None
            self._pin_state = "SIM PIN" if self.pin else "READY"
            self._pin_tries = 3
            self.cfun = 1
            self.csms = 0
            self.cpms = ["SM", "SM", "SM"]
            self.csca = self.smsc
            self.cops_mode = 0
            self.cops_format = 0
            self.cmms = 0
            self.cgsms = 1
            self._last_submit = None
            self._defaults()

    def hangup(self):
        """The host closed the port.  A hung modem comes back (as after the host's USB reset)."""
        with self._lock:
            if self._hung():
                self.power_cycle()

    # -- internals: output -----------------------------------------------------------------

    def _notify(self, force=False):
        if (force or self._out) and self.on_output is not None:
            self.on_output()

    def _hung(self):
        return "hang" in self._deadlines

    def _write(self, data, echo=False):
        """Append one unit of output; noise may slip in between two complete lines."""
        if self._hung():
            return
        if self._faults.noise and self._at_line_start and not echo \
                and self._random.random() < self._faults.noise:
            junk = bytes(self._random.choice(_JUNK) for _ in range(self._random.randint(1, 8)))
            self._out += junk + b"\r\n"
        self._out += data
        self._at_line_start = data.endswith(b"\n")

    def _frame(self, lines):
        """Information text: V1 frames it "\\r\\n" + lines + "\\r\\n"; V0 ends each line."""
        body = b"".join(line.encode("latin-1", "replace") + b"\r\n" for line in lines)
        return (b"\r\n" + body) if self.verbose else body

    def _urc(self, lines):
        if self.cnmi[0] == 0 and lines[0].split(":")[0] in ("+CMTI", "+CDSI"):
            self._buffered.append(lines)
            return
        self._write(self._frame(lines))
        self._notify()

    def _final(self, error=None):
        if error is None:
            text, number = "OK", "0"
        elif error.kind == "ERROR" or self.cmee == 0:
            text, number = "ERROR", "4"
        elif self.cmee == 1 or error.code is None:
            text = number = "+%s ERROR: %d" % (error.kind, error.code)
        else:
            text = number = "+%s ERROR: %s" % (error.kind, errors.describe(error.kind,
                                                                           error.code)[0])
        if self.verbose:
            self._write(b"\r\n" + text.encode() + b"\r\n")
        else:
            self._write(number.encode() + (b"\r" if number.isdigit() else b"\r\n"))

    def _information(self, blocks):
        """The information text of a command line: one framed block per command that answered.

        A block is a list of groups (lines that belong together, like a +CMGL header and its
        PDU).  A URC storm squeezes URCs in between groups, as real modems do.
        """
        for block in blocks:
            for i, group in enumerate(block):
                if i and self._faults.urc_storm:
                    self._storm_urc()
                framed = self._frame(group)
                self._write(framed if i == 0 or not self.verbose else framed[2:])
            if self._faults.urc_storm:
                self._storm_urc()

    def _respond(self, blocks, error=None):
        """Information text, then the final result code."""
        self._information(blocks)
        self._final(error)

    def _storm_urc(self):
        self._storm_count += 1
        if self._storm_count % 2:
            self._write(self._frame(["^RSSI: %d" % self._faults.signal]))
        else:
            self._write(self._frame(["+CREG: %d" % self._reg_stat()]))

    def _storm(self):
        if self._storm_next is None or self._hung() or self._state == "off":
            return
        now = self._clock()
        if self._faults.urc_storm <= 0:
            self._storm_next = None
            return
        period = 1.0 / self._faults.urc_storm
        sent = 0
        while self._storm_next <= now and sent < 100:
            self._storm_urc()
            self._storm_next += period
            sent += 1
        if self._storm_next <= now:
            self._storm_next = now + period
        if sent:
            self._notify()

    def _schedule(self, delay, callback, network=False):
        """Run callback after delay seconds; a network timer survives the modem's reset."""
        self._timers.append((self._clock() + delay, callback, network))

    # -- internals: input ------------------------------------------------------------------

    def _process_input(self):
        while self._input:
            if self._state == "busy":
                self._held += self._input
                self._input.clear()
                return
            if self._state == "off" or self._hung():
                self._input.clear()
                return
            byte = self._input.pop(0)
            if self._state == "prompt":
                self._prompt_byte(byte)
            else:
                self._command_byte(byte)

    def _echo(self, data):
        if self.echo:
            self._write(data, echo=True)

    def _command_byte(self, byte):
        self._echo(bytes([byte]))
        if byte == 0x0D:
            line, self._line = bytes(self._line), bytearray()
            self._command_line(line)
        elif byte == 0x0A:
            pass
        elif byte == BACKSPACE:
            del self._line[-1:]
        else:
            self._line.append(byte)
            if self._line[-2:].upper() == b"A/":    # repeat the last command line at once
                self._line = bytearray()
                if self._last_line:
                    self._command_line(self._last_line)
            del self._line[1024:]    # a line longer than the buffer is cut (and then fails)

    def _command_line(self, raw):
        """A line ended by CR: find "AT", run its commands, answer once."""
        text = raw.decode("latin-1")
        start = text.upper().find("AT")
        if start < 0:
            return          # no "AT": not a command line (V.250 ignores it)
        self._last_line = raw[start:]
        body = text[start + 2:]
        try:
            commands = parse_command_line(normalise(body))
        except Error as error:
            self._respond([], error)
            return
        blocks = []
        for name, op, args in commands:
            try:
                result = self._run(name, op, args)
            except Error as error:
                self._respond(blocks, error)
                return
            if isinstance(result, _Prompt):
                # A command with a prompt ends the line (27.005: AT+CMGS is the last command).
                self._information(blocks)
                self._start_prompt(result)
                return
            if isinstance(result, _Later):
                self._wait(result, blocks)
                return
            if result:
                blocks.append(result)
        self._respond(blocks)

    def _wait(self, later, blocks):
        """Busy until a delayed answer falls due; input meanwhile waits its turn."""
        self._state = "busy"
        self._answered = blocks
        self._schedule(later.delay, lambda: self._finish_later(later))

    def _start_prompt(self, prompt):
        self._prompt = prompt
        self._state = "prompt"
        if self._faults.urc_storm:
            self._storm_urc()
        self._write(b"\r\n> ")
        self._at_line_start = False

    def _prompt_byte(self, byte):
        prompt = self._prompt
        if byte == ESC:
            self._state, self._prompt = "command", None
            self._final()
            return
        if byte == CTRL_Z:
            self._state, self._prompt = "command", None
            body = bytes(prompt.body)
            try:
                result = prompt.done(body)
            except Error as error:
                self._final(error)
                return
            if isinstance(result, _Later):
                self._wait(result, [])
                return
            self._respond([result] if result else [])
            return
        self._echo(bytes([byte]))
        if byte == 0x0D:
            if prompt.text:
                prompt.body.append(byte)
                self._write(b"\r\n> ")
                self._at_line_start = False
            return
        if byte == 0x0A and not prompt.text:
            return
        prompt.body.append(byte)

    def _finish_later(self, later):
        """A delayed answer falls due: run its action, answer, then the input held meanwhile."""
        if self._state != "busy":
            return      # reset meanwhile
        self._state = "command"
        blocks, self._answered = self._answered, []
        try:
            result = later.action()
        except Error as error:
            self._respond(blocks, error)
        else:
            self._respond(blocks + [result])
        self._input, self._held = self._held + self._input, bytearray()
        self._process_input()
        self._notify()

    # -- internals: commands ---------------------------------------------------------------

    def _defaults(self):
        """V.250/27.007/27.005 settings restored by ATZ and AT&F (and power-up)."""
        self.echo = True
        self.verbose = True
        self.cmee = 0
        self.cmgf = 0
        self.cscs = "IRA"
        self.csdh = 0
        self.csmp = [17, 167, 0, 0]
        self.cnmi = [0, 0, 0, 0, 0]
        self._buffered = []
        self.creg = 0
        self.cgreg = 0

    def _run(self, name, op, args):
        """One command -> list of line groups, a _Prompt or a _Later; raises Error."""
        handler = _BASIC.get(name) if len(name) <= 2 and name[0] not in "+^$%#*" else \
            _EXTENDED.get(name)
        if handler is None:
            raise Error()
        if name in SIM_COMMANDS and op != "test":
            self._check_sim(name)
        return handler(self, op, args)

    def _sim_busy(self):
        return "sim_busy" in self._deadlines

    def _check_sim(self, name):
        """SIM commands fail while the SIM is busy or locked (+CMS codes for 27.005 ones)."""
        sms = name in SMS_COMMANDS
        if self._sim_busy():
            raise cme(14)
        if self._pin_state == "SIM PIN":
            raise cms(311) if sms else cme(11)
        if self._pin_state == "SIM PUK":
            raise cms(316) if sms else cme(12)

    def _reboot(self):
        """AT+CFUN=1,1: away for reset_time, then up as after power-on (storage kept)."""
        self.power_cycle()
        self._state = "off"

        def back():
            self._state = "command"
            self._urc(["+CPIN: %s" % self._pin_state])
        self._schedule(self.reset_time, back)

    def _sim_ready(self):
        return self._pin_state == "READY"

    def _registered(self):
        return self._reg_stat() in (1, 5)

    def _reg_stat(self):
        if self.cfun != 1 or not self._sim_ready() or self.cops_mode == 2:
            return 0
        return self._faults.registration

    def _creg_changed(self):
        stat = self._reg_stat()
        if self.creg == 1:
            self._urc(["+CREG: %d" % stat])
        elif self.creg == 2:
            self._urc(['+CREG: %d,"00A1","1B2C"' % stat if stat in (1, 5) else "+CREG: %d" % stat])

    def _memory(self, which):
        return self.memories[self.cpms[which]]

    # text mode helpers: the TE character set (AT+CSCS) both ways

    def _te_string(self, text):
        if self.cscs == "UCS2":
            return text.encode("utf-16-be").hex().upper()
        if self.cscs == "GSM":
            return "".join(chr(s) for s in gsm7.encode("".join(
                ch if gsm7.is_gsm7(ch) else "?" for ch in text)))
        limit = 0x80 if self.cscs == "IRA" else 0x100
        return "".join(ch if ord(ch) < limit else "?" for ch in text)

    def _from_te(self, raw):
        if self.cscs == "UCS2":
            try:
                return bytes.fromhex(raw).decode("utf-16-be")
            except ValueError:
                raise cms(305) from None
        if self.cscs == "GSM":
            return gsm7.decode([ord(ch) & 0x7F for ch in raw])
        return raw

    def _text_data(self, message):
        """The data line of text mode for a decoded DELIVER or SUBMIT."""
        if message.encoding == "ucs2":
            return message.text.encode("utf-16-be").hex().upper()
        if message.encoding == "8bit":
            return message.data.hex().upper()
        return self._te_string(message.text)

    def _quoted(self, text):
        return '"%s"' % self._te_string(text)

    # listing stored messages

    def _entry(self, index, message, command):
        """The lines of one message in +CMGL (index given) or +CMGR (index None)."""
        prefix = command + ": " + ("%d," % index if index is not None else "")
        if self.cmgf == 0:
            return [prefix + "%d,,%d" % (message.stat, message.length), message.pdu]
        stat = '"%s"' % STAT_NAMES[message.stat]
        try:
            decoded = pdu.decode(message.pdu, incoming=message.kind != "submit")
        except pdu.PduError:
            return [prefix + stat + ',"",,', ""]
        if isinstance(decoded, pdu.StatusReport):
            fo = first_octet(message.pdu)
            return [prefix + "%s,%d,%d,%s,%d,%s,%s,%d" % (
                stat, fo, decoded.reference, self._quoted(decoded.recipient),
                address_type(decoded.recipient), scts_text(decoded.timestamp),
                scts_text(decoded.discharge), decoded.status)]
        if isinstance(decoded, pdu.Submit):
            line = prefix + "%s,%s," % (stat, self._quoted(decoded.recipient))
            if self.csdh:
                line += ",%d,%d" % (address_type(decoded.recipient), len(decoded.text))
            return [line, self._text_data(decoded)]
        line = prefix + "%s,%s,,%s" % (stat, self._quoted(decoded.sender),
                                       scts_text(decoded.timestamp))
        if self.csdh:
            length = len(decoded.data) if decoded.encoding == "8bit" else len(decoded.text)
            if index is None:
                line += ",%d,%d,%d,%d,%s,%d,%d" % (
                    address_type(decoded.sender), first_octet(message.pdu),
                    decoded.pid, decoded.dcs, self._quoted(decoded.smsc or ""),
                    address_type(decoded.smsc or "+"), length)
            else:
                line += ",%d,%d" % (address_type(decoded.sender), length)
        return [line, self._text_data(decoded)]

    # submitting

    def _submit(self, pdu_hex, length):
        """Check a SUBMIT from the host (PDU with SMSC field); a _Later that sends it."""
        if tpdu_length(pdu_hex) != length:
            raise cms(304)
        try:
            submit = pdu.decode(pdu_hex, incoming=False)
        except pdu.PduError:
            raise cms(304) from None
        if not isinstance(submit, pdu.Submit):
            raise cms(304)
        if not self._registered():
            raise cms(331)
        delay = self._faults.network_delay
        now = self._clock()
        if self.cmms and self._last_submit is not None and now - self._last_submit < 5:
            delay /= 2      # AT+CMMS kept the link up
        delay += self._faults.slow_cmgs
        return _Later(delay, lambda: self._submitted(submit, pdu_hex))

    def _submitted(self, submit, pdu_hex):
        """The network's answer to a submit: a reference, or an error now and then."""
        self._last_submit = self._clock()
        if self._faults.cms_error and self._random.random() < self._faults.cms_error:
            self.rejected += 1
            raise cms(self._faults.cms_error_code)
        mr = self._mr
        self._mr = (self._mr + 1) % 256
        self._record(submit, pdu_hex, mr)
        if submit.status_report_request:
            recipient, status = submit.recipient, self._faults.report_status
            sent_at = self._now()
            self._schedule(self.report_delay,
                           lambda: self._report(mr, recipient, status, sent_at), network=True)
        return mr

    def _record(self, submit, pdu_hex, mr):
        """Keep what was sent; parts of one concatenated SMS become one entry."""
        entry = {"to": submit.recipient, "parts": 1, "encoding": submit.encoding,
                 "status_report": submit.status_report_request}
        concat = submit.concat
        if concat is None or concat.total <= 1:
            entry.update(text=submit.text, reference=mr, references=[mr], pdus=[pdu_hex],
                         concat=None)
            self.sent.append(entry)
            return
        key = (submit.recipient, concat.reference, concat.total, concat.bits)
        parts = self._partial.setdefault(key, {})
        parts[concat.sequence] = (submit, pdu_hex, mr)
        if len(parts) < concat.total:
            return
        del self._partial[key]
        ordered = [parts[seq] for seq in sorted(parts)]
        if submit.encoding == "8bit":
            text = ""
        else:      # join the bodies: a pair of septets or UTF-16 units may straddle two parts
            text = pdu.decode_body(submit.encoding, b"".join(s.body for s, _, _ in ordered))
        entry.update(
            text=text, parts=len(ordered),
            reference=ordered[0][2], references=[m for _, _, m in ordered],
            pdus=[p for _, p, _ in ordered],
            status_report=any(s.status_report_request for s, _, _ in ordered),
            concat={"reference": concat.reference, "total": concat.total})
        self.sent.append(entry)

    def _report(self, mr, recipient, status, sent_at):
        """The network's status report for one submitted part."""
        discharge = self._now()
        hex_pdu, _ = pdu.encode_status_report(mr, recipient, status=status, timestamp=sent_at,
                                              discharge=discharge, smsc=self.csca or self.smsc)
        self._network.append(_Pending(hex_pdu, "report", self._clock()))

    # -- internals: the network delivering to us -------------------------------------------

    def _route_network(self):
        """Hand what the network holds to the modem: routed to the host or stored."""
        if self._hung() or self._state == "off" or not self._registered():
            return      # no network, no SMS: the network keeps them
        now = self._clock()
        keep = []
        queue, self._network = self._network, []
        blocked = False
        for item in queue:
            if blocked or item.due > now or not self._deliver_item(item):
                keep.append(item)
                blocked = blocked or self._unacked is not None and item.due <= now
        self._network = keep + self._network

    def _deliver_item(self, item):
        """True when the item left the network: routed or stored (or, in text mode, a PDU
        the modem cannot show: dropped)."""
        mode, mt, _, ds, _ = self.cnmi
        if item.kind == "deliver":
            routed = mt == 2 or mt == 3 and self._message_class(item.pdu) == 3
        else:
            routed = ds == 1
        if routed and mode != 0:
            if self._unacked is not None:
                return False
            if self.cmgf == 0:
                head = ("+CMT: ,%d" if item.kind == "deliver" else "+CDS: %d") % item.length
                self._urc([head, item.pdu])
            else:
                lines = self._text_routed(item)
                if lines is None:
                    return True
                self._urc(lines)
            if self.csms == 1:
                self._unacked = item
                self._schedule(self.cnma_timeout, lambda: self._ack_timeout(item))
            return True
        memory = self._memory(2)
        if self._faults.storage_full:
            index = None
        else:
            index = memory.add(Message(0, item.pdu, item.kind))
        if index is None:
            item.due = self._clock() + self.redelivery_delay   # RP-ERROR memory exceeded
            item.full = True
            return False
        if item.kind == "deliver" and mt in (1, 2, 3):
            self._urc(['+CMTI: "%s",%d' % (memory.name, index)])
        elif item.kind == "report" and ds == 2:
            self._urc(['+CDSI: "%s",%d' % (memory.name, index)])
        return True

    @staticmethod
    def _message_class(pdu_hex):
        try:
            return pdu.decode(pdu_hex, incoming=True).message_class
        except (pdu.PduError, AttributeError):
            return None

    def _text_routed(self, item):
        try:
            decoded = pdu.decode(item.pdu, incoming=True)
        except pdu.PduError:
            return None
        if isinstance(decoded, pdu.StatusReport):
            fo = first_octet(item.pdu)
            return ["+CDS: %d,%d,%s,%d,%s,%s,%d" % (
                fo, decoded.reference, self._quoted(decoded.recipient),
                address_type(decoded.recipient), scts_text(decoded.timestamp),
                scts_text(decoded.discharge), decoded.status)]
        return ["+CMT: %s,,%s" % (self._quoted(decoded.sender), scts_text(decoded.timestamp)),
                self._text_data(decoded)]

    def _ack_timeout(self, item):
        """No AT+CNMA in time: the network will try again later; routing is switched off."""
        if self._unacked is not item:
            return
        self._unacked = None
        self._network.append(item.retry(self._clock() + self.redelivery_delay))
        if self.cnma_disables_routing:
            self.cnmi[1] = self.cnmi[3] = 0

    def _space_freed(self):
        """Storage has room again: the ME tells the network (SMMA), which retries at once."""
        now = self._clock()
        for item in self._network:
            if item.full:
                item.due = now
                item.full = False


class _Pending:
    """A message the network holds for the modem."""

    __slots__ = ("pdu", "kind", "due", "length", "full")

    def __init__(self, pdu_hex, kind, due):
        self.pdu = pdu_hex
        self.kind = kind
        self.due = due
        self.length = tpdu_length(pdu_hex)
        self.full = False

    def retry(self, due):
        return _Pending(self.pdu, self.kind, due)


class _Prompt:
    """A command waiting for its body after "> " (AT+CMGS, AT+CMGW, AT+CNMA=2)."""

    def __init__(self, done, text=False):
        self.done = done          # body bytes -> line groups or _Later; raises Error
        self.text = text          # text mode: CR starts a new line of the body
        self.body = bytearray()


class _Later:
    """An answer that comes after `delay` seconds (the network taking its time)."""

    def __init__(self, delay, action):
        self.delay = delay
        self.action = action      # () -> line groups; raises Error


# -- command handlers: (modem, op, args) -> list of line groups --------------------------

def _flag(name, low=0, high=1):
    def handler(modem, op, args):
        setattr(modem, name, integer(args, low, high, default=0))
        return []
    return handler


def _ok(modem, op, args):
    return []


def _reset(modem, op, args):
    modem._defaults()
    return []


#: ATIn: what the common modems answer (ATI3/4/5 are the fallbacks of some drivers)
_ATI = {3: "+CGMI", 4: "+CGMM", 5: "+CGMR", 1: "+CGMR", 6: "+CGSN"}


def _identify(modem, op, args):
    number = integer(args, 0, 9, default=0)
    identity = modem.identity
    if number in _ATI:
        return [[identity[_ATI[number]]]]
    return [["Manufacturer: " + identity["+CGMI"], "Model: " + identity["+CGMM"],
             "Revision: " + identity["+CGMR"], "IMEI: " + identity["+CGSN"], "+GCAP: +CGSM"]]


_S_DEFAULTS = {0: 0, 3: 13, 4: 10, 5: 8, 7: 60, 8: 2, 10: 14}


def _register(modem, op, args):
    number, _, value = args.partition("=")
    number = int(number)
    if op == "read":
        return [["%03d" % modem._sregs.get(number, _S_DEFAULTS.get(number, 0))]]
    modem._sregs[number] = integer(value, 0, 255)
    return []


def _quiet(modem, op, args):
    if args not in ("", "0"):       # ATQ1 would silence the result codes drivers wait for
        raise Error()
    return []


def _refuse(modem, op, args):
    raise Error()


_BASIC = {
    "E": _flag("echo"), "V": _flag("verbose"), "Q": _quiet, "Z": _reset, "&F": _reset,
    "I": _identify, "S": _register, "D": _refuse,
    "X": _ok, "&C": _ok, "&D": _ok, "&K": _ok, "&W": _ok, "H": _ok, "L": _ok, "M": _ok,
}


def extended(name):
    def register(handler):
        _EXTENDED[name] = handler
        return handler
    return register


_EXTENDED = {}


def _id_command(key):
    def handler(modem, op, args):
        if op == "test":
            return []
        if op != "exec":
            raise Error()
        return [[modem.identity[key]]]
    return handler


for _key, _aliases in (("+CGMI", ("+GMI",)), ("+CGMM", ("+GMM",)), ("+CGMR", ("+GMR",)),
                       ("+CGSN", ("+GSN",)), ("+CIMI", ())):
    for _n in (_key,) + _aliases:
        _EXTENDED[_n] = _id_command(_key)


@extended("+GCAP")
def _gcap(modem, op, args):
    return [["+GCAP: +CGSM"]]


@extended("+CMEE")
def _cmee(modem, op, args):
    if op == "read":
        return [["+CMEE: %d" % modem.cmee]]
    if op == "test":
        return [["+CMEE: (0-2)"]]
    modem.cmee = integer(args, 0, 2, default=0)
    return []


@extended("+CPIN")
def _cpin(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        if modem._sim_busy():
            raise cme(14)
        return [["+CPIN: %s" % modem._pin_state]]
    if op != "set":
        raise Error()
    values = [unquote(a) for a in split_args(args)]
    if modem._sim_busy():
        raise cme(14)
    if modem._pin_state == "READY":
        raise cme(3)
    if modem._pin_state == "SIM PIN":
        if values[0] == modem.pin:
            modem._pin_state = "READY"
            modem._pin_tries = 3
            modem._creg_changed()
            return []
        modem._pin_tries -= 1
        if modem._pin_tries <= 0:
            modem._pin_state = "SIM PUK"
        raise cme(16)
    if len(values) == 2 and values[0] == modem.puk:
        modem.pin = values[1]
        modem._pin_state = "READY"
        modem._pin_tries = 3
        modem._creg_changed()
        return []
    raise cme(16)


@extended("+CSQ")
def _csq(modem, op, args):
    if op == "test":
        return [["+CSQ: (0-31,99),(0-7,99)"]]
    if op != "exec":
        raise Error()
    rssi = modem._faults.signal if modem.cfun == 1 else 99
    return [["+CSQ: %d,99" % rssi]]


@extended("+CREG")
def _creg(modem, op, args):
    if op == "test":
        return [["+CREG: (0-2)"]]
    if op == "read":
        stat = modem._reg_stat()
        line = "+CREG: %d,%d" % (modem.creg, stat)
        if modem.creg == 2 and stat in (1, 5):
            line += ',"00A1","1B2C"'
        return [[line]]
    if op != "set":
        raise Error()
    modem.creg = integer(args, 0, 2)
    return []


@extended("+CGREG")
def _cgreg(modem, op, args):
    if op == "test":
        return [["+CGREG: (0-2)"]]
    if op == "read":
        return [["+CGREG: %d,%d" % (modem.cgreg, modem._reg_stat())]]
    if op != "set":
        raise Error()
    modem.cgreg = integer(args, 0, 2)
    return []


@extended("+COPS")
def _cops(modem, op, args):
    name, numeric = modem.operator
    if op == "test":
        return [['+COPS: (2,"%s","%s","%s"),,(0-4),(0-2)' % (name, name, numeric)]]
    if op == "read":
        if not modem._registered():
            return [["+COPS: %d" % modem.cops_mode]]
        oper = numeric if modem.cops_format == 2 else name
        return [['+COPS: %d,%d,%s' % (modem.cops_mode, modem.cops_format, modem._quoted(oper))]]
    if op != "set":
        raise Error()
    values = split_args(args) + ["", ""]
    mode = integer(values[0], 0, 4)
    fmt = integer(values[1], 0, 2, default=modem.cops_format)
    if mode in (1, 4) and values[2] and unquote(values[2]) not in (name, numeric):
        if mode == 1:
            raise cme(30)    # manual selection of a network that is not there
        mode = 0             # 4: manual, falling back to automatic
    modem.cops_format = fmt
    if mode != 3:
        old_stat = modem._reg_stat()
        modem.cops_mode = 0 if mode == 4 else mode
        if modem._reg_stat() != old_stat:
            modem._creg_changed()
    return []


@extended("+CFUN")
def _cfun(modem, op, args):
    if op == "read":
        return [["+CFUN: %d" % modem.cfun]]
    if op == "test":
        return [["+CFUN: (0,1,4),(0,1)"]]
    if op != "set":
        raise Error()
    values = split_args(args)
    fun = integer(values[0], 0, 4)
    if fun not in (0, 1, 4):
        raise cme(4)
    reset = integer(values[1], 0, 1, default=0) if len(values) > 1 else 0
    if reset:
        if fun != 1:
            raise cme(3)
        modem._schedule(0, modem._reboot)
        return []
    old_stat = modem._reg_stat()
    modem.cfun = fun
    if modem._reg_stat() != old_stat:
        modem._creg_changed()
    return []


@extended("+CPAS")
def _cpas(modem, op, args):
    return [["+CPAS: 0"]] if op == "exec" else [["+CPAS: (0-5)"]]


@extended("+CSCS")
def _cscs(modem, op, args):
    if op == "test":
        return [["+CSCS: (%s)" % ",".join('"%s"' % c for c in CHARSETS)]]
    if op == "read":
        return [['+CSCS: "%s"' % modem.cscs]]
    if op != "set":
        raise Error()
    charset = unquote(args).upper()
    if charset not in CHARSETS:
        raise cme(4)
    modem.cscs = charset
    return []


@extended("+CMGF")
def _cmgf(modem, op, args):
    if op == "test":
        return [["+CMGF: (0,1)"]]
    if op == "read":
        return [["+CMGF: %d" % modem.cmgf]]
    if op != "set":
        raise Error()
    modem.cmgf = integer(args, 0, 1, default=0)
    return []


@extended("+CSDH")
def _csdh(modem, op, args):
    if op == "test":
        return [["+CSDH: (0,1)"]]
    if op == "read":
        return [["+CSDH: %d" % modem.csdh]]
    modem.csdh = integer(args, 0, 1, default=0)
    return []


@extended("+CSMP")
def _csmp(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        return [["+CSMP: %d,%d,%d,%d" % tuple(modem.csmp)]]
    if op != "set":
        raise Error()
    values = split_args(args)
    for i, value in enumerate(values[:4]):
        if value:
            modem.csmp[i] = integer(value, 0, 255)
    return []


@extended("+CSMS")
def _csms(modem, op, args):
    if op == "test":
        return [["+CSMS: (0,1)"]]
    if op == "read":
        return [["+CSMS: %d,1,1,1" % modem.csms]]
    if op != "set":
        raise Error()
    modem.csms = integer(args, 0, 1)
    return [["+CSMS: 1,1,1"]]


@extended("+CSCA")
def _csca(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        number = modem.csca or ""
        return [["+CSCA: %s,%d" % (modem._quoted(number), address_type(number or "0"))]]
    if op != "set":
        raise Error()
    values = split_args(args)
    number = modem._from_te(unquote(values[0]))
    if not number.lstrip("+").isdigit():
        raise cms(304 if modem.cmgf == 0 else 305)
    modem.csca = number
    return []


@extended("+CPMS")
def _cpms(modem, op, args):
    names = ",".join('"%s"' % m for m in MEMORIES)
    if op == "test":
        return [["+CPMS: (%s),(%s),(%s)" % (names, names, names)]]
    if op == "read":
        parts = []
        for which in range(3):
            memory = modem._memory(which)
            parts.append('"%s",%d,%d' % (memory.name, memory.used, memory.capacity))
        return [["+CPMS: " + ",".join(parts)]]
    if op != "set":
        raise Error()
    values = [unquote(a).upper() for a in split_args(args)]
    if len(values) > 3 or any(v not in MEMORIES for v in values):
        raise cms(302)
    for which, value in enumerate(values):
        modem.cpms[which] = value
    counts = []
    for which in range(3):
        memory = modem._memory(which)
        counts.append("%d,%d" % (memory.used, memory.capacity))
    return [["+CPMS: " + ",".join(counts)]]


@extended("+CNMI")
def _cnmi(modem, op, args):
    if op == "test":
        return [["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"]]
    if op == "read":
        return [["+CNMI: %d,%d,%d,%d,%d" % tuple(modem.cnmi)]]
    if op != "set":
        raise Error()
    values = split_args(args)
    if len(values) > 5:
        raise cms(302)
    highs = (3, 3, 3, 2, 1)
    new = list(modem.cnmi)
    for i, value in enumerate(values):
        if value:
            new[i] = integer(value, 0, highs[i])
    modem.cnmi = new
    if new[0] != 0:       # leaving mode 0: flush (bfr 0) or clear (bfr 1) the buffered URCs
        buffered, modem._buffered = modem._buffered, []
        for lines in buffered if new[4] == 0 else ():
            modem._schedule(0, lambda lines=lines: modem._urc(lines))
    return []


@extended("+CNMA")
def _cnma(modem, op, args):
    if op == "test":
        return [["+CNMA: (0-2)"]] if modem.cmgf == 0 else []
    if modem.csms != 1:
        raise Error()
    if modem._unacked is None:
        raise cms(340)
    kind = 0
    length = None
    if op == "set":
        values = split_args(args)
        kind = integer(values[0], 0, 2)
        if len(values) > 1 and values[1]:
            length = integer(values[1], 0, 255)
    item, modem._unacked = modem._unacked, None
    if kind == 2:      # RP-ERROR: the network keeps the message and tries again later
        modem._network.append(item.retry(modem._clock() + modem.redelivery_delay))
        if length:
            return _Prompt(lambda body: [])
    return []


@extended("+CMMS")
def _cmms(modem, op, args):
    if op == "test":
        return [["+CMMS: (0-2)"]]
    if op == "read":
        return [["+CMMS: %d" % modem.cmms]]
    modem.cmms = integer(args, 0, 2, default=0)
    return []


@extended("+CGSMS")
def _cgsms(modem, op, args):
    if op == "test":
        return [["+CGSMS: (0-3)"]]
    if op == "read":
        return [["+CGSMS: %d" % modem.cgsms]]
    if op != "set":
        raise Error()
    modem.cgsms = integer(args, 0, 3)
    return []


_LIST_STATS = {"REC UNREAD": 0, "REC READ": 1, "STO UNSENT": 2, "STO SENT": 3, "ALL": 4}


@extended("+CMGL")
def _cmgl(modem, op, args):
    if op == "test":
        if modem.cmgf == 0:
            return [["+CMGL: (0-4)"]]
        return [['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']]
    if op == "read":
        raise Error()
    if modem.cmgf == 0:
        stat = integer(args or None, 0, 4, default=0)
    else:
        name = unquote(args).upper() if args else "REC UNREAD"
        if name not in _LIST_STATS:
            raise cms(302)
        stat = _LIST_STATS[name]
    groups = []
    for index, message in modem._memory(0).items():
        if stat in (4, message.stat):
            groups.append(modem._entry(index, message, "+CMGL"))
            if message.stat == 0:
                message.stat = 1
    return groups


@extended("+CMGR")
def _cmgr(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    index = integer(args, 0, 100000)
    message = modem._memory(0).get(index)
    if message is None:
        raise cms(321)
    group = modem._entry(None, message, "+CMGR")
    if message.stat == 0:
        message.stat = 1
    return [group]


@extended("+CMGD")
def _cmgd(modem, op, args):
    memory = modem._memory(0)
    if op == "test":
        used = ",".join(str(i) for i, _ in memory.items())
        return [["+CMGD: (%s),(0-4)" % used]]
    if op != "set":
        raise Error()
    values = split_args(args)
    index = integer(values[0], 0, 100000)
    flag = integer(values[1], 0, 4, default=0) if len(values) > 1 else 0
    if flag == 0:
        if not memory.delete(index):
            if not (memory.first <= index < memory.first + memory.capacity):
                raise cms(321)
    else:
        doomed = {1: (1,), 2: (1, 3), 3: (1, 2, 3), 4: (0, 1, 2, 3)}[flag]
        for i, message in memory.items():
            if message.stat in doomed:
                memory.delete(i)
    modem._space_freed()
    return []


@extended("+CMGS")
def _cmgs(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    if modem.cmgf == 0:
        length = integer(args, 1, 180)
        return _Prompt(lambda body: _cmgs_pdu(modem, body, length))
    values = split_args(args)
    number = modem._from_te(unquote(values[0]))
    if not number:
        raise cms(305)
    return _Prompt(lambda body: _cmgs_text(modem, body, number), text=True)


def _cmgs_pdu(modem, body, length):
    hex_pdu = body.decode("latin-1").strip().replace("\r", "").replace("\n", "").upper()
    later = modem._submit(hex_pdu, length)
    action = later.action
    later.action = lambda: [["+CMGS: %d" % action()]]
    return later


def _text_submit(modem, body, number):
    """Text mode: the body (in the TE character set, or hex for UCS2 DCS) as a SUBMIT PDU."""
    fo, vp, pid, dcs = modem.csmp
    raw = body.decode("latin-1")
    if dcs & 0x0C == 0x08:
        try:
            text = bytes.fromhex(raw).decode("utf-16-be")
        except ValueError:
            raise cms(305) from None
        encoding = "ucs2"
    else:
        text = modem._from_te(raw)
        if not gsm7.is_gsm7(text):
            raise cms(305)
        encoding = "gsm7"
    try:
        _, parts = pdu.split(text, encoding=encoding)
        if len(parts) != 1:
            raise cms(305)
        hex_pdu, length = pdu.encode_submit(number, text, reference=0, encoding=encoding,
                                            status_report=bool(fo & 0x20))
    except ValueError:
        raise cms(305) from None
    return hex_pdu, length


def _cmgs_text(modem, body, number):
    hex_pdu, length = _text_submit(modem, body, number)
    later = modem._submit(hex_pdu, length)
    action = later.action
    later.action = lambda: [["+CMGS: %d" % action()]]
    return later


@extended("+CMGW")
def _cmgw(modem, op, args):
    if op == "test":
        return []
    values = split_args(args) if op == "set" else []
    if modem.cmgf == 0:
        if op != "set":
            raise Error()
        length = integer(values[0], 1, 180)
        stat = integer(values[1], 0, 3, default=2) if len(values) > 1 else 2

        def store(body):
            hex_pdu = body.decode("latin-1").strip().upper()
            if tpdu_length(hex_pdu) != length:
                raise cms(304)
            try:
                decoded = pdu.decode(hex_pdu, incoming=stat in (0, 1))
            except pdu.PduError:
                raise cms(304) from None
            kind = "submit" if isinstance(decoded, pdu.Submit) else "deliver"
            return _store(modem, Message(stat, hex_pdu, kind))
        return _Prompt(store)
    number = modem._from_te(unquote(values[0])) if values else ""
    stat_name = unquote(values[2]).upper() if len(values) > 2 and values[2] else "STO UNSENT"
    stat = _LIST_STATS.get(stat_name, 2)

    def store_text(body):
        hex_pdu, _ = _text_submit(modem, body, number or "0")
        return _store(modem, Message(min(stat, 3), hex_pdu, "submit"))
    return _Prompt(store_text, text=True)


def _store(modem, message):
    memory = modem._memory(1)
    index = None if modem._faults.storage_full else memory.add(message)
    if index is None:
        raise cms(322)
    return [["+CMGW: %d" % index]]


@extended("+CMSS")
def _cmss(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    values = split_args(args)
    index = integer(values[0], 0, 100000)
    memory = modem._memory(1)
    message = memory.get(index)
    if message is None:
        raise cms(321)
    if message.kind != "submit":
        raise cms(302)
    later = modem._submit(message.pdu, message.length)
    action = later.action

    def sent():
        mr = action()
        message.stat = 3
        return [["+CMSS: %d" % mr]]
    later.action = sent
    return later


_JUNK = bytes(range(0x80, 0x100)) + b"\x00\x01\x07\x7f"

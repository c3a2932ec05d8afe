"""A simulated GSM modem: the TS 27.005/27.007 command set, bytes in and bytes out.

`SimulatedModem` is the modem's logic without any port: `feed()` gives it the bytes a host wrote,
`data_to_send()` returns the bytes the modem would write back (echo, responses, result codes,
unsolicited result codes).  Time is read from a clock passed in, and `tick()` runs whatever fell
due (a delayed ``+CMGS``, a status report, an unacknowledged ``+CMT`` being redelivered), so the
whole thing runs on a pseudo-terminal (runner.py) or straight from a test.

It behaves as a real modem does where a driver has to cope: echo is on after power-up, lines are
framed ``\\r\\n...\\r\\n``, the ``> `` prompt has no line end, an unread message becomes read once
listed, ``+CMT`` needs ``AT+CNMA`` when ``AT+CSMS=1`` (or the network redelivers it and, as
TS 27.005 section 3.4.4 requires, routing is switched off), a full storage makes the network hold
messages until there is room again.  Faults (`Faults`) switch on the habits of bad modems.

The other direction of the bridge's codec (pdu.py) does the PDU work: the modem decodes what the
host submits and encodes what the "network" delivers.  All public methods take a lock, so a
control thread may call `deliver()` or `set_faults()` while a port thread feeds bytes.

The parts live in their own modules: command-line syntax (command.py), the general and SMS
command handlers (general.py, sms.py), message storage (storage.py), how messages look
on the line (render.py), the network side (network.py), the faults (faults.py), and the SIM
services: identity (identity.py), USSD (ussd.py) and incoming calls (calls.py).  This
module is the state machine that ties them together: input, prompts, delayed answers, output
framing, timers.
"""

import random
import threading
import time
from datetime import datetime, timezone

from ..modem import errors
from . import calls, general, identity, sms, ussd
from .command import Error, Later, Prompt, cme, cms, normalise, parse_command_line
from .faults import FAULTS, NOISE, WINDOWS, Faults, fault_value
from .network import NetworkSide, Notice, Pending
from .storage import STAT_NAMES, Combined, Memory, Message

__all__ = ["SimulatedModem", "Faults", "FAULTS", "Message", "parse_command_line"]

CTRL_Z = 0x1A
ESC = 0x1B
BACKSPACE = 0x08

#: commands of TS 27.005: their errors are +CMS ERROR, everything else's +CME ERROR
SMS_COMMANDS = frozenset(sms.EXTENDED)
#: commands that need the SIM: they fail while it is locked or busy
SIM_COMMANDS = {"+CIMI", "+CPMS", "+CSCA", "+CMGL", "+CMGR", "+CMGD", "+CMGS", "+CMGW", "+CMSS",
                "+CNMA", "+CNUM"}

_BASIC = {**general.BASIC, **calls.BASIC}
_EXTENDED = {**general.EXTENDED, **sms.EXTENDED, **identity.EXTENDED, **ussd.EXTENDED,
             **calls.EXTENDED}


def wallclock():
    return datetime.now(timezone.utc).astimezone().replace(microsecond=0)


class SimulatedModem(NetworkSide):
    """The modem: feed it the host's bytes, take its answer from `data_to_send()`.

    Options (keyword): pin (None: no PIN), puk, capacity (SIM slots, 30), me_capacity (100),
    first_index (1; some Huawei modems count from 0), smsc, manufacturer, model, revision, imei,
    imsi, iccid, own_number (None: the SIM holds none, AT+CNUM answers only OK), operator,
    operator_numeric, ussd_style ("text", "ucs2" or "packed": see ussd.py), ussd_early (the
    +CUSD before the OK), ussd_delay (seconds the network takes to answer, 0.2), ussd_menu
    (ussd.DEFAULT_MENU), ussd_session_timeout (seconds a menu waits for its answer, 30),
    balance (1234.5), currency ("TZS"), ring_interval (seconds between RINGs, 3), rings (RINGs
    before a caller gives up, 5), report_delay (seconds before a requested status report,
    1.0), cnma_timeout (seconds the network waits for AT+CNMA, 12.0: TS 24.011's TR2M),
    redelivery_delay (seconds before the network tries again, 10.0), cnma_disables_routing
    (True, as TS 27.005 3.4.4 says),
    reset_time (seconds AT+CFUN=1,1 keeps the modem away, 0.2), seed (for the random faults),
    clock (monotonic seconds), now (aware datetime for timestamps), on_output (called, under the
    modem's lock, whenever there is something new for the port), and any `Faults` field.

    What the network does (`deliver()`, `deliver_pdu()`, `sent_messages()`, `clear_sent()` and
    the submit/route/redeliver internals) comes from `NetworkSide` in network.py.
    """

    def __init__(self, *, pin=None, puk="12345678", capacity=30, me_capacity=100, first_index=1,
                 smsc="+255790000000", manufacturer="gsmbridge", model="SIM-27005",
                 revision="1.0.0", imei="356938035643809", imsi="640040000000001",
                 iccid="8925504000000000019", own_number=None,
                 operator="SimTel", operator_numeric="64004", ussd_style="text",
                 ussd_early=False, ussd_delay=0.2, ussd_menu=None, ussd_session_timeout=30.0,
                 balance=1234.5, currency="TZS", ring_interval=3.0, rings=5, report_delay=1.0,
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
        identity.check_identity(imei, imsi, iccid, own_number)
        self.identity = {"+CGMI": manufacturer, "+CGMM": model, "+CGMR": revision,
                         "+CGSN": imei, "+CIMI": imsi, "iccid": iccid, "own_number": own_number}
        self.operator = (operator, operator_numeric)
        self.reset_time = reset_time
        self.sm = Memory("SM", capacity, first_index)
        self.me = Memory("ME", me_capacity, first_index)
        self.memories = {"SM": self.sm, "ME": self.me, "MT": Combined(self.sm, self.me)}
        self._faults = Faults()
        self._deadlines = {}      # window fault -> clock value it ends at
        self._out = bytearray()
        self._at_line_start = True
        self._timers = []         # [(due, callback, survives a reset)]
        self._start_network(report_delay=report_delay, cnma_timeout=cnma_timeout,
                            redelivery_delay=redelivery_delay,
                            cnma_disables_routing=cnma_disables_routing)
        self._storm_next = None
        self._storm_count = 0
        self.ussd = ussd.UssdService(self, style=ussd_style, early=ussd_early, delay=ussd_delay,
                                     menu=ussd_menu, balance=balance, currency=currency,
                                     session_timeout=ussd_session_timeout)
        self.calls = calls.CallService(self, ring_interval=ring_interval, rings=rings)
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
            held = self._unacked is not None or self._cannot_receive()
            notices_held = self._cannot_receive() or self._line_in_use()
            dues = [t[0] for t in self._timers]
            dues += [p.due for p in self._network
                     if not ((notices_held if isinstance(p, Notice) else held) and p.due <= now)]
            dues += [d for d in self._deadlines.values() if d != float("inf")]
            if self._storm_next is not None:
                dues.append(self._storm_next)
            if not dues:
                return None
            return max(0.0, min(dues) - now)

    # -- faults and inspection -------------------------------------------------------------

    def set_faults(self, **values):
        """Switch faults on or off; see `Faults`.  Unknown names or bad values: ValueError.

        Durations (sim_busy, hang) count from now; hang=True (or -1) lasts until the modem is
        reset or its port reopened.  disappear is done once by the port that runs the modem.
        """
        with self._lock:
            checked = {name: fault_value(name, value) for name, value in values.items()}
            now = self._clock()
            old_stat = self._reg_stat()
            for name, value in checked.items():
                setattr(self._faults, name, value)
                if name in WINDOWS:
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
            for name in WINDOWS:
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
                             "pin": self._pin_state, "csca": self.csca, "cmms": self.cmms,
                             "clip": self.calls.clip, "crc": self.calls.crc,
                             "cusd": self.ussd.presentation},
                "identity": {"imei": self.identity["+CGSN"], "imsi": self.identity["+CIMI"],
                             "iccid": self.identity["iccid"],
                             "own_number": self.identity["own_number"]},
                "call": self.calls.current.describe() if self.calls.current else None,
                "ussd_session": self.ussd.session.get("text") if self.ussd.session else None,
                "network_queue": sum(isinstance(p, Pending) for p in self._network),
                "unacknowledged": self._unacked.pdu if self._unacked else None,
                "sent": len(self.sent),
                "partial_sends": len(self._partial),
                "rejected": self.rejected,
                "state": "hung" if self._hung() else self._state,
            }

    # -- the SIM services (control API) ---------------------------------------------------

    def place_call(self, number, rings=None):
        """A voice call from `number` ("" withheld) reaches the modem and rings; the caller
        gives up after `rings` rings.  ValueError for a bad number, calls.CallError when a call
        is in progress or the modem cannot be reached."""
        with self._lock:
            call = self.calls.place(number, rings)
            self.tick()
            self._notify()
            return call

    def end_call(self):
        """The caller hangs up the call in progress (calls.CallError when there is none)."""
        with self._lock:
            call = self.calls.caller_hangs_up()
            self.tick()
            self._notify()
            return call

    def calls_made(self):
        """Every call kept, oldest first: from, rings, state, answered, ended_by, times."""
        with self._lock:
            self.tick()
            return self.calls.describe()

    def forget_calls(self):
        with self._lock:
            self.calls.forget()

    def ussd_settings(self, **values):
        """Change the USSD service (style, early, delay, balance, currency, session_timeout,
        menu; ValueError if any is wrong, and then none changes); returns them all."""
        with self._lock:
            self.ussd.configure(**values)
            return self.ussd.describe()

    def ussd_requests(self):
        """What the host asked for over AT+CUSD, oldest first (cancels and expiries too)."""
        with self._lock:
            self.tick()
            return [dict(entry) for entry in self.ussd.requests]

    def forget_ussd_requests(self):
        with self._lock:
            self.ussd.requests.clear()

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
                self._redeliver_later(self._unacked)
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
            self.curc = 1                # Huawei's periodic result codes (^RSSI) on
            self.portsel = 0
            self._last_submit = None
            self.ussd.reset()
            self.calls.reset()
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
            junk = bytes(self._random.choice(NOISE) for _ in range(self._random.randint(1, 8)))
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
        elif error.kind == "NO CARRIER":
            text, number = "NO CARRIER", "3"
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
        if self._storm_count % 2 and self.curc:
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
            if isinstance(result, Prompt):
                # A command with a prompt ends the line (27.005: AT+CMGS is the last command).
                self._information(blocks)
                self._start_prompt(result)
                return
            if isinstance(result, Later):
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
            if isinstance(result, Later):
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
        self.ussd.defaults()
        self.calls.defaults()

    def _run(self, name, op, args):
        """One command -> list of line groups, a Prompt or a Later; raises Error."""
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


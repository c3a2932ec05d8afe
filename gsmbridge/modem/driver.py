"""``GsmModem``: one GSM modem on a serial port, spoken to in AT commands (TS 27.005/27.007).

The shape is pygsm's (``GsmModem(port).boot()``, ``send_sms``, ``next_message``), the insides
are the sans-I/O engine (at.py) and the PDU codec (pdu.py); this module only does the I/O, the
command sequences and the bookkeeping that keeps inbound messages safe:

* nothing is deleted or acknowledged until the caller says so (``done(item)``), after it has
  committed the message: stored messages (``+CMTI``, ``AT+CMGL``) are deleted with ``AT+CMGD``,
  routed ones (``+CMT``/``+CDS`` with ``AT+CSMS=1``) acknowledged with ``AT+CNMA``, so a crash in
  between leaves the message on the SIM or at the network, which redelivers it;
* URCs that arrive during other commands are queued, never lost, and handled by ``poll``;
* a PDU that cannot be decoded is handed out raw with ``error`` set, never dropped or raised.

One thread only.  Errors: ``errors.ModemError`` (and its CmeError/CmsError) for an error final
result, ``ModemTimeout`` when no answer comes (the command is abandoned), ``ModemGone`` when the
port fails or disappears -- after which ``boot()`` reopens it.  Every AT line is logged at DEBUG
on the logger ``gsmbridge.modem``.
"""

import logging
import random
import time
from dataclasses import dataclass

import serial

from . import pdu
from .at import (NEED_DATA, Echo, Engine, Final, Noise, Prompt, Response, Unsolicited,
                 split_params)
from .errors import CmeError, CmsError, ModemError, ModemGone, ModemTimeout
from .reassembly import Reassembler

__all__ = ["GsmModem", "Incoming", "Network", "ModemError", "ModemGone", "ModemTimeout"]

log = logging.getLogger("gsmbridge.modem")

# Errors that mean "the SIM or the SMS stack is still starting": wait and ask again.
_BUSY = frozenset({("CME", 14), ("CMS", 314), ("CMS", 515), ("CME", 515), ("CMS", 535),
                   ("CMS", 532)})
# AT+CPIN? and AT+CMGF=0 must work on any modem, so anything vague is also waited out there.
_STARTING = _BUSY | {("ERROR", None), ("CMS", 302), ("CMS", 500), ("CME", 100), ("CME", 3)}

# URCs after which a modem has restarted and forgotten our settings (CMGF, CNMI, CSMS...).
_RESTART = {"RDY", "^SYSSTART", "MODEM:STARTUP"}

# URCs that say the message storage is full (Huawei's ^SMMEMFULL; other makers announce it
# through +CIEV indicators numbered per model, which are not trusted): sweep at once.
_STORAGE_FULL = {"^SMMEMFULL"}

# +CNMI settings to try, best first.  <mode>,<mt>,<bm>,<ds>,<bfr>: mt=2 routes SMS-DELIVERs as
# +CMT (needs AT+CSMS=1 so that we acknowledge them with +CNMA only after committing), mt=1
# stores them and says +CMTI; ds=1 routes status reports as +CDS, ds=2 stores them (+CDSI).
# Modems reject some combinations (mode 2 or bfr 0 or ds 1 unsupported), hence the lists.
_CNMI_ROUTED = ["2,2,0,1,0", "1,2,0,1,0", "2,2,0,2,0", "1,2,0,2,0", "2,2,0,0,0", "1,2,0,0,0",
                "2,2", "1,2"]
_CNMI_STORED = ["2,1,0,2,0", "1,1,0,2,0", "2,1,0,1,0", "1,1,0,1,0", "2,1,0,0,0", "1,1,0,0,0",
                "2,1", "1,1"]

# A +CMT that a previous run (or instance) never acknowledged makes the modem switch routing off
# when the network gives up on it, TR2M (12-20 s, TS 24.011) after it came: possibly just after
# we set +CNMI.  So +CNMI is checked again this long after every setup.
RECHECK_AFTER_SETUP = 30.0

# (port, PIN) pairs a SIM refused, for the life of the process: a worker that builds a new
# GsmModem for every reconnect must not spend the SIM's three tries and lock it to its PUK.
_REFUSED_PINS = set()

CTRL_Z = b"\x1a"
ESC = b"\x1b"


@dataclass
class Incoming:
    """One inbound SMS or status report as the modem gave it.  Hand it to ``done()`` once it is
    committed."""
    pdu: str                    # raw hex as the modem gave it (kept even when malformed)
    message: "pdu.Deliver | pdu.StatusReport | None"
    error: str | None           # why message is None (the PduError's text)
    index: int | None           # storage index (+CMTI/+CDSI/+CMGL), None for routed +CMT/+CDS
    storage: str | None         # "SM", "ME", "SR"... for stored ones
    routed: bool                # True: +CMT/+CDS, acknowledged with +CNMA by done()


@dataclass
class Network:
    operator: str | None        # as AT+COPS? names it, None when not registered
    registration: int | None    # +CREG <stat>: 0 not searching, 1 home, 2 searching, 3 denied,
                                # 4 unknown, 5 roaming (None: the modem would not say)
    registered: bool            # stat 1 or 5 (on CREG, or on CEREG/CGREG for LTE-only modems)


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _int(text, default=None):
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        return default


def _value(line):
    """``+CSQ: 17,99`` -> ``17,99``."""
    return line.partition(":")[2].strip()


class GsmModem:
    """A GSM modem on ``port``: a device path ("/dev/ttyUSB0") or a pyserial URL
    ("socket://127.0.0.1:7000", "rfc2217://...", "loop://").

    ``receive_mode``: "auto" (routed +CMT when the modem does AT+CSMS=1, else stored +CMTI),
    "routed" or "stored".  ``storage``: the message storage to use ("SM" default, "ME", "MT").
    ``smsc``: put this service centre number in every PDU instead of the SIM's.
    """

    def __init__(self, port, baudrate=115200, pin=None, *, logger=None, command_timeout=10.0,
                 send_timeout=90.0, receive_mode="auto", smsc=None, storage=None,
                 boot_timeout=60.0, reassembly_timeout=3600.0, check_interval=300.0,
                 more_messages=True):
        if receive_mode not in ("auto", "routed", "stored"):
            raise ValueError("receive_mode is auto, routed or stored, not %r" % receive_mode)
        self.port = port
        self.baudrate = baudrate
        self.pin = pin
        self.log = logger or log
        self.command_timeout = command_timeout
        # SIM800's manual allows AT+CMGS 60 s; give up sooner and a sent SMS looks failed.
        self.send_timeout = send_timeout
        self.receive_mode = receive_mode
        self.smsc = smsc
        self.storage = (storage or "SM").upper()
        self.boot_timeout = boot_timeout
        self.check_interval = check_interval
        # AT+CMMS=2 keeps the radio link to the SMSC open between back-to-back sends (TS 27.005
        # 3.5.6), which saves the link setup of every message after the first. A few modems
        # answer every send with +CMS ERROR: 500 once it is on; then it goes off for good.
        self.more_messages = more_messages
        self._cmms = False
        self._woken = False             # wake() was called: poll() returns at once
        self.supports_cnma = False      # AT+CSMS=1 accepted: +CMT/+CDS wait for our +CNMA
        self.routing = None             # after boot: "routed" or "stored"
        self.cnmi = None                # the +CNMI setting the modem accepted
        self.storage_used = None        # from the last +CPMS: (used, total) of the read storage
        self._serial = None
        self._engine = Engine()
        self._stale = False             # a command was abandoned: late answers may still come
        self._needs_setup = False       # the modem restarted behind our back
        self._in_setup = False
        self._echo_off = False          # ATE0 done: an echo now means the modem restarted...
        self._echo_sticky = False       # ...unless it echoes anyway (Huawei E1752)
        self._read_storage = None       # +CPMS <mem1> as last set
        self._notices = []              # (storage, index, attempts) from +CMTI/+CDSI, to read
        self._ready = []                # Incoming read but not yet handed out by poll()
        self._outstanding = {}          # (storage, index) handed out, not yet done() -> when
        self._next_check = None         # when poll() next checks +CNMI and sweeps
        self._cnma_failures = 0
        self._cnma_broken = False       # +CNMA kept failing: receive stored from now on
        self._concat = random.randrange(256)
        self._reassembler = Reassembler(timeout=reassembly_timeout)
        self._messages = []             # for next_message()

    # --- the port ------------------------------------------------------------------------------

    def connect(self):
        """Open the port (again).  ModemGone if it cannot be opened."""
        self.close()
        try:
            try:
                self._serial = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0.1, write_timeout=10,
                    rtscts=False, dsrdtr=False, exclusive=True)
            except (TypeError, ValueError):       # a URL handler without exclusive locking
                self._serial = serial.serial_for_url(
                    self.port, baudrate=self.baudrate, timeout=0.1, write_timeout=10)
        except (serial.SerialException, OSError) as exc:
            self._serial = None
            raise ModemGone("cannot open %s: %s" % (self.port, exc)) from exc
        self._engine = Engine()
        self._stale = False
        self._echo_off = False
        self.log.info("opened %s", self.port)
        return self

    def close(self):
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    @property
    def is_open(self):
        return self._serial is not None

    def _gone(self, exc):
        self.log.warning("%s went away: %s", self.port, exc)
        self.close()
        raise ModemGone("%s: %s" % (self.port, exc)) from exc

    def _write(self, data):
        if self._serial is None:
            raise ModemGone("%s is not open" % self.port)
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as exc:
            raise ModemTimeout("%s: write timed out" % self.port) from exc
        except (serial.SerialException, OSError) as exc:
            self._gone(exc)

    def wake(self):
        """Cut short a poll() that is waiting on the port. Safe from any thread.

        The worker sleeps in poll() when there is nothing to send; this lets a message queued
        meanwhile go out at once instead of after the poll's timeout. A command that is waiting
        for its answer is not affected.
        """
        self._woken = True
        port = self._serial
        if port is not None:
            try:
                port.cancel_read()
            except (AttributeError, NotImplementedError, OSError, serial.SerialException):
                pass            # a URL handler without it: poll() notices at its next read

    def _read(self, timeout, wakeable=False):
        """Feed the engine whatever arrives within ``timeout`` seconds (returns on the first
        bytes).  True if something came; False at the timeout, or at a wake() if wakeable."""
        if self._serial is None:
            raise ModemGone("%s is not open" % self.port)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                waiting = self._serial.in_waiting
                data = self._serial.read(min(max(waiting, 1), 4096))
            except (serial.SerialException, OSError) as exc:
                self._gone(exc)
            if data:
                self._engine.receive_data(data)
                return True
            if time.monotonic() >= deadline or (wakeable and self._woken):
                return False

    def _start(self, cmd, **options):
        """Hand ``cmd`` to the engine and write it; a failed write leaves the engine idle."""
        if self._stale:
            self._settle()
        data = self._engine.command(cmd, **options)
        try:
            self._write(data)
        except BaseException:
            self._engine.abandon()
            raise
        self.log.debug("%s > %s", self.port, cmd)

    def _event(self, deadline):
        """The next engine event, reading the port until ``deadline``; None if none came."""
        while True:
            event = self._engine.next_event()
            if event is not NEED_DATA:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                event = self._engine.next_event()
                return None if event is NEED_DATA else event

    # --- commands ------------------------------------------------------------------------------

    def command(self, cmd, *, timeout=None):
        """Run one AT command -> its information lines (a +CMGR/+CMGL header is followed by its
        body line).  ModemError on an error result, ModemTimeout when none comes."""
        out = []
        for response in self._command(cmd, timeout=timeout):
            out.append(response.line)
            if response.body is not None:
                out.append(response.body)
        return out

    def _command(self, cmd, *, timeout=None, done_on=None):
        self._start(cmd, done_on=done_on)
        deadline = time.monotonic() + (timeout or self.command_timeout)
        responses = []
        while True:
            event = self._event(deadline)
            if event is None:
                self._engine.abandon()
                self._stale = True
                raise ModemTimeout("no answer to %s within %.0f s" % (
                    cmd, timeout or self.command_timeout))
            if isinstance(event, Response):
                self._rx(event)
                responses.append(event)
            elif isinstance(event, Final):
                self._rx(event)
                if event.ok:
                    if done_on:
                        self._settle(limit=0.5)     # let a late OK land while idle
                    return responses
                self._note_error(event.error)
                raise event.error
            else:
                self._other(event)

    def _note_error(self, error):
        """A full message storage (+CMS ERROR: 322, +CME ERROR: 20) is ours to empty: sweep at
        the next poll(), so what is stored gets committed and deleted."""
        if error is not None and (error.kind, error.code) in (("CMS", 322), ("CME", 20)):
            self._storage_full()

    def _storage_full(self):
        if self._next_check is not None and not self._in_setup:
            self.log.warning("%s: message storage full; sweeping it", self.port)
            self._next_check = time.monotonic()

    def _rx(self, event):
        if self.log.isEnabledFor(logging.DEBUG):
            body = getattr(event, "body", None)
            self.log.debug("%s < %s%s", self.port, event.line or "(done)",
                           "" if body is None else " / " + body)

    def _other(self, event):
        """Events that are not the current command's: log, and queue what matters."""
        if isinstance(event, Unsolicited):
            self.log.debug("%s < %s%s", self.port, event.line,
                           "" if event.body is None else " / " + event.body)
            self._unsolicited(event)
        elif isinstance(event, Noise):
            self.log.debug("%s < noise %r", self.port, event.data)
        elif isinstance(event, Echo):
            self.log.debug("%s < echo %s", self.port, event.line)
            if self._in_setup:
                self._echo_sticky = self._echo_sticky or self._echo_off
            elif self._echo_off and not self._echo_sticky and not self._needs_setup:
                self.log.warning("%s: echo is back on: the modem restarted; setting it up again",
                                 self.port)
                self._needs_setup = True
        elif isinstance(event, (Response, Final)):
            self.log.debug("%s < %s", self.port, event.line)
        elif isinstance(event, Prompt):
            self.log.debug("%s < unexpected prompt", self.port)

    def _settle(self, quiet=0.2, limit=2.0):
        """Read until the line has been quiet for ``quiet`` seconds (at most ``limit``), so that
        late answers to an abandoned command land while we are idle."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            while (event := self._engine.next_event()) is not NEED_DATA:
                self._other(event)
            if not self._read(min(quiet, end - time.monotonic())):
                break
        while (event := self._engine.next_event()) is not NEED_DATA:
            self._other(event)
        self._stale = False

    def _wait(self, seconds):
        """Sleep while still taking in URCs."""
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            while (event := self._engine.next_event()) is not NEED_DATA:
                self._other(event)
            self._read(remaining)
        while (event := self._engine.next_event()) is not NEED_DATA:
            self._other(event)

    def _retrying(self, cmd, *, until, done_on=None, timeout=None, retry_on=_BUSY):
        """A command that may meet a starting SIM: retry ``retry_on`` errors until ``until``."""
        while True:
            try:
                return self._command(cmd, done_on=done_on, timeout=timeout)
            except ModemError as exc:
                if (exc.kind, exc.code) not in retry_on or time.monotonic() >= until:
                    raise
                self.log.info("%s: %s; waiting", self.port, exc)
                self._wait(1.0)

    # --- boot ----------------------------------------------------------------------------------

    def boot(self):
        """Open the port and set the modem up for PDU-mode SMS.  Safe to call again after
        ModemGone or a restart.  Returns self; on failure the port is closed again."""
        self.connect()
        try:
            self._write(ESC)           # leave a prompt left over from a previous run
            self._wake()
            self._setup()
            self._initial_sweep(first_check=min(self.check_interval, RECHECK_AFTER_SETUP))
        except BaseException:
            self.close()               # and its lock: the next attempt may be another instance
            raise
        return self

    def _wake(self):
        """AT until the modem answers."""
        until = time.monotonic() + self.boot_timeout
        last = None
        while time.monotonic() < until:
            try:
                self._command("AT", timeout=1.0)
                self._settle(limit=0.5)     # the answers to earlier tries, if they were slow
                return
            except ModemTimeout as exc:
                last = exc
            except ModemError as exc:     # garbage in its line buffer: the next AT is clean
                last = exc
                self._settle()
        raise ModemTimeout("%s does not answer AT: %s" % (self.port, last))

    def _setup(self):
        until = time.monotonic() + self.boot_timeout
        self._needs_setup = False
        self._in_setup = True
        self._echo_off = self._echo_sticky = False
        ok = False
        try:
            self._command("ATE0")
            self._echo_off = True
            self._tolerate("AT+CMEE=1")
            self._sim_ready(until)
            self._retrying("AT+CMGF=0", until=until, retry_on=_STARTING)
            self._select_service(until)
            self._select_storage(until)
            self._select_routing(until)
            if self.more_messages:
                self._cmms = self._tolerate("AT+CMMS=2") is not None
            ok = True
        finally:
            self._in_setup = False
            self._needs_setup = self._needs_setup or not ok    # half set up: again next time
        if self._echo_sticky:
            self.log.info("%s: echo stays on after ATE0; tolerated", self.port)

    def _tolerate(self, cmd, **kw):
        try:
            return self._command(cmd, **kw)
        except ModemError as exc:
            self.log.info("%s: %s (ignored)", self.port, exc)
            return None

    def _sim_ready(self, until):
        """AT+CPIN? until READY, entering the PIN when asked; waits out a busy SIM."""
        entered = False
        while True:
            lines = self._retrying("AT+CPIN?", until=until, done_on="+CPIN:",
                                   retry_on=_STARTING)
            state = _unquote(_value(lines[0].line)).upper() if lines else "READY"
            if state == "READY":
                return
            if state == "SIM PIN" and self.pin and not entered and not self._pin_refused:
                try:
                    self._retrying('AT+CPIN="%s"' % self.pin, until=until)
                except ModemError as exc:
                    if not exc.transient:
                        # Never try a refused PIN again: three tries and the SIM wants its PUK.
                        _REFUSED_PINS.add((self.port, self.pin))
                        self.log.error("%s: the SIM refused the PIN (%s); not trying it again",
                                       self.port, exc)
                    raise
                entered = True
                continue
            if state in ("SIM PIN", "SIM PUK", "PH-SIM PIN", "SIM PIN2", "SIM PUK2"):
                code = {"SIM PIN": 11, "SIM PUK": 12, "PH-SIM PIN": 5, "SIM PIN2": 17,
                        "SIM PUK2": 18}[state]
                if state == "SIM PIN" and (entered or self._pin_refused):
                    raise CmeError(16, command="AT+CPIN", line="the PIN was refused; not retried")
                raise CmeError(code, command="AT+CPIN?", line=lines[0].line)
            if time.monotonic() >= until:
                raise CmeError(14, command="AT+CPIN?", line=lines[0].line)
            self._wait(1.0)

    @property
    def _pin_refused(self):
        return (self.port, self.pin) in _REFUSED_PINS

    def _select_service(self, until):
        """AT+CSMS=1 (phase 2+): routed messages then wait for our +CNMA."""
        self.supports_cnma = False
        if self._cnma_broken and self.receive_mode == "auto":
            self._tolerate("AT+CSMS=0")
            return
        try:
            lines = self._retrying("AT+CSMS=1", until=until)
        except ModemError as exc:
            self.log.info("%s: AT+CSMS=1 refused (%s): no +CNMA, messages will be stored",
                          self.port, exc)
            self._tolerate("AT+CSMS=0")
            return
        fields = split_params(_value(lines[0].line)) if lines else []
        self.supports_cnma = bool(fields) and fields[0] == "1"

    def _select_storage(self, until):
        mem = self.storage
        for cmd in ('AT+CPMS="%s","%s","%s"' % (mem, mem, mem), 'AT+CPMS="%s","%s"' % (mem, mem),
                    'AT+CPMS="%s"' % mem):
            try:
                lines = self._retrying(cmd, until=until)
            except ModemError as exc:
                self.log.info("%s: %s", self.port, exc)
                continue
            self._read_storage = mem
            self._note_cpms(lines)
            return
        self.log.warning("%s: storage %s refused; keeping the modem's default", self.port, mem)
        self._read_storage = None

    def _note_cpms(self, lines):
        if lines:
            fields = split_params(_value(lines[0].line))
            # AT+CPMS=... answers used1,total1,...; AT+CPMS? answers "SM",used1,total1,...
            if fields and fields[0].startswith('"'):
                fields = fields[1:]
            used, total = _int(fields[0]) if fields else None, \
                _int(fields[1]) if len(fields) > 1 else None
            if used is not None:
                self.storage_used = (used, total)

    def _select_routing(self, until):
        routed = self.receive_mode == "routed" or (
            self.receive_mode == "auto" and self.supports_cnma and not self._cnma_broken)
        if self.receive_mode == "routed" and not self.supports_cnma:
            raise ModemError("ERROR", name="receive_mode=routed needs AT+CSMS=1", transient=False,
                             command="AT+CSMS=1")
        choices = (_CNMI_ROUTED if routed else []) + _CNMI_STORED
        if self.receive_mode == "routed":
            choices = _CNMI_ROUTED
        for setting in choices:
            try:
                self._retrying("AT+CNMI=" + setting, until=until)
            except ModemError as exc:
                self.log.info("%s: %s", self.port, exc)
                continue
            self.cnmi = setting
            self.routing = "routed" if setting.split(",")[1] == "2" else "stored"
            self.log.info("%s: receiving %s (AT+CNMI=%s, CNMA %s)", self.port, self.routing,
                          setting, "on" if self.supports_cnma else "off")
            return
        self.cnmi = None
        self.routing = "stored"
        self.log.warning("%s: every AT+CNMI refused: no new-message notices; relying on sweeps",
                         self.port)

    def _stop_routing(self):
        """Fall back to stored messages (+CMTI) for a modem whose +CNMA does not work."""
        self._tolerate("AT+CSMS=0")
        self.supports_cnma = False
        self._cnma_broken = True        # and after a restart too
        for setting in _CNMI_STORED:
            if self._tolerate("AT+CNMI=" + setting) is not None:
                self.cnmi, self.routing = setting, "stored"
                return
        self.cnmi, self.routing = None, "stored"

    def _initial_sweep(self, first_check=None):
        """Queue for poll() what is stored and not handed out already (or handed out long ago
        and never done(): the caller may have failed to commit it)."""
        self._next_check = time.monotonic() + (first_check or self.check_interval)
        try:
            items = self._sweep()
        except ModemError as exc:
            self.log.warning("%s: sweep failed: %s", self.port, exc)
            return
        for item in items:
            self._hand_out_later(item, again_after=self.check_interval)

    def _hand_out_later(self, item, again_after=None):
        key = (item.storage, item.index)
        if item.index is not None:
            handed = self._outstanding.get(key)
            if handed is not None and (again_after is None
                                       or time.monotonic() - handed < again_after):
                return
            self._outstanding[key] = time.monotonic()
        self._ready.append(item)

    def _checkup(self):
        """Every check_interval: is +CNMI still ours (a missed +CNMA makes the modem drop it,
        a restart resets it)?  Then sweep for what came without a notice."""
        self._check_cnmi()
        self._initial_sweep()

    def _check_cnmi(self):
        if not self.cnmi:
            return
        try:
            lines = self._command("AT+CNMI?")
        except ModemError as exc:
            self.log.info("%s: %s", self.port, exc)
            lines = []
        for response in lines:
            have = [_int(f) for f in split_params(_value(response.line))]
            want = [_int(f) for f in self.cnmi.split(",")]
            if have[1:2] != want[1:2] or (len(want) > 3 and have[3:4] != want[3:4]):
                self.log.warning("%s: +CNMI is %s, not %s: setting it again", self.port,
                                 _value(response.line), self.cnmi)
                self._tolerate("AT+CNMI=" + self.cnmi)

    # --- URCs ----------------------------------------------------------------------------------

    def _unsolicited(self, event):
        name = event.name.upper()
        if name in ("+CMTI", "+CDSI"):
            fields = split_params(event.value)
            index = _int(fields[-1])
            storage = _unquote(fields[0]).upper() if len(fields) > 1 else None
            if index is not None:
                self._notices.append([storage, index, 0])
        elif name in ("+CMT", "+CDS"):
            if event.body is None:
                self.log.warning("%s: %s without its PDU", self.port, event.line)
                return
            self._ready.append(self._item(event.body, index=None, storage=None, routed=True))
        elif name in _RESTART:
            self.log.warning("%s: modem restarted (%s); setting it up again", self.port,
                             event.line)
            self._needs_setup = True
        elif name in _STORAGE_FULL:
            self._storage_full()

    @staticmethod
    def _item(pdu_hex, *, index, storage, routed):
        try:
            message = pdu.decode(pdu_hex)
            error = None
        except pdu.PduError as exc:
            message, error = None, str(exc)
        except Exception as exc:          # a codec bug must not cost us the message
            message, error = None, "%s: %s" % (type(exc).__name__, exc)
        return Incoming(pdu=pdu_hex, message=message, error=error, index=index,
                        storage=storage, routed=routed)

    # --- receiving -----------------------------------------------------------------------------

    def poll(self, timeout):
        """Read the port for up to ``timeout`` seconds; returns the inbound items that came
        (as soon as there are some).  Stored ones are read with AT+CMGR."""
        deadline = time.monotonic() + timeout
        while True:
            if self._needs_setup:
                self._redo_setup()
            elif self._next_check is not None and time.monotonic() >= self._next_check:
                self._checkup()
            while (event := self._engine.next_event()) is not NEED_DATA:
                self._other(event)
            self._read_notices()
            if self._ready:
                items, self._ready = self._ready, []
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._woken:
                self._woken = False
                return []
            self._read(remaining, wakeable=True)

    def _redo_setup(self):
        self._settle()
        self._setup()
        self._initial_sweep(first_check=min(self.check_interval, RECHECK_AFTER_SETUP))

    def _read_notices(self):
        notices, self._notices = self._notices, []
        for n, (storage, index, attempts) in enumerate(notices):
            if (storage, index) in self._outstanding:
                continue
            try:
                item = self._read_stored(storage, index)
            except ModemError as exc:
                if exc.transient and attempts < 5:
                    self.log.info("%s: reading %s %s: %s; later", self.port, storage, index, exc)
                    self._notices.append([storage, index, attempts + 1])
                else:
                    self.log.warning("%s: cannot read %s %s: %s (left for a sweep)",
                                     self.port, storage, index, exc)
                continue
            except ModemTimeout:
                self._notices.extend(notices[n:])      # not lost: try again next poll
                raise
            if item is not None:
                self._hand_out_later(item)

    def _use_storage(self, storage):
        if storage and storage != self._read_storage:
            self._command('AT+CPMS="%s"' % storage)
            self._read_storage = storage

    def _read_stored(self, storage, index):
        """AT+CMGR=<index> -> Incoming, or None for an empty slot or a stored outgoing one."""
        self._use_storage(storage)
        storage = self._read_storage
        try:
            lines = self._command("AT+CMGR=%d" % index)
        except ModemError as exc:
            if exc.code == 321:             # gone already (read and deleted by a sweep)
                return None
            raise
        for response in lines:
            if response.line.upper().startswith("+CMGR"):
                stat = _int(split_params(_value(response.line))[0])
                if response.body is None or stat in (2, 3):
                    return None
                return self._item(response.body, index=index, storage=storage, routed=False)
        return None

    def sweep(self):
        """Everything in the read storage (AT+CMGL=4), as Incoming items.  Stored outgoing
        messages are left alone.  Items already handed out and not done() come again.

        Messages found that no notice announced mean the modem stores without telling: its
        +CNMI is no longer ours (see _check_cnmi), so that is checked at once.
        """
        items = self._sweep()
        if self.cnmi and not self._in_setup:
            announced = set(self._outstanding) | {(s, i) for s, i, _ in self._notices}
            if any((item.storage, item.index) not in announced for item in items):
                self._check_cnmi()
        return items

    def _sweep(self):
        self._use_storage(self.storage if self._read_storage else None)
        storage = self._read_storage
        items, listed = [], 0
        try:
            lines = self._command("AT+CMGL=4", timeout=max(self.command_timeout, 30.0))
        except ModemError as exc:
            self.log.warning("%s: AT+CMGL=4 failed (%s); reading slot by slot", self.port, exc)
            lines = None
        if lines is not None:
            for response in lines:
                if not response.line.upper().startswith("+CMGL"):
                    continue
                listed += 1
                fields = split_params(_value(response.line))
                index, stat = _int(fields[0]), _int(fields[1]) if len(fields) > 1 else None
                if index is None or response.body is None or stat in (2, 3):
                    continue
                items.append(self._item(response.body, index=index, storage=storage,
                                        routed=False))
        # Some modems' listings miss messages (gammu's BROKEN_CMGL): compare with the count.
        used = self._storage_count()
        if lines is None or (used is not None and used > listed):
            seen = {item.index for item in items}
            items += self._scan_slots(seen, used)
        return items

    def _storage_count(self):
        try:
            lines = self._command("AT+CPMS?")
        except ModemError:
            return None
        self._note_cpms(lines)
        return self.storage_used[0] if self.storage_used else None

    def _scan_slots(self, seen, used):
        """AT+CMGR on every slot (0 and 1 based modems alike), for modems whose CMGL fails."""
        total = self.storage_used[1] if self.storage_used and self.storage_used[1] else 30
        found = []
        for index in range(0, total + 1):
            if index in seen:
                continue
            try:
                item = self._read_stored(None, index)
            except ModemError:
                continue
            if item is not None:
                found.append(item)
            if used is not None and len(seen) + len(found) >= used:
                break
        return found

    def done(self, item):
        """The caller has committed ``item``: delete it from storage, or acknowledge it."""
        if item.routed:
            if not self.supports_cnma:
                return
            try:
                self._command("AT+CNMA")
                self._cnma_failures = 0
            except ModemError as exc:
                # TS 27.005 3.4.4: without a timely ack the ME turns routing off; turn it on
                # again.  The network redelivers what we failed to acknowledge.
                self._cnma_failures += 1
                if self._cnma_failures >= 3 and self.receive_mode == "auto" \
                        and self.routing == "routed":
                    self.log.warning("%s: AT+CNMA keeps failing (%s); receiving stored instead",
                                     self.port, exc)
                    self._stop_routing()
                else:
                    self.log.warning("%s: AT+CNMA failed (%s); re-issuing AT+CNMI", self.port,
                                     exc)
                    if self.cnmi:
                        self._tolerate("AT+CNMI=" + self.cnmi)
            return
        if item.index is None:
            return
        self._use_storage(item.storage)
        try:
            self._command("AT+CMGD=%d" % item.index)
        except ModemError as exc:
            if exc.code != 321:             # already gone is what we wanted
                raise
        self._outstanding.pop((item.storage, item.index), None)

    def delete(self, index):
        self._command("AT+CMGD=%d" % index)

    def next_message(self, timeout=0):
        """pygsm's convenience: the next complete message, or None after ``timeout`` seconds.

        Parts are joined, and each SMS is deleted (or acknowledged) as soon as it is read, so a
        crash can lose what this returned and the caller did not keep; the bridge's worker uses
        poll()/done() instead.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._messages:
                return self._messages.pop(0)
            for item in self.poll(max(0.0, deadline - time.monotonic())):
                if isinstance(item.message, pdu.Deliver):
                    message = self._reassembler.add(item.message, item.pdu, time.monotonic())
                    if message is not None:
                        self._messages.append(message)
                else:
                    self.log.info("%s: skipping %s", self.port,
                                  item.error or type(item.message).__name__)
                self.done(item)
            self._messages += self._reassembler.expire(time.monotonic())
            if self._messages:
                return self._messages.pop(0)
            if time.monotonic() >= deadline:
                return None

    # --- sending -------------------------------------------------------------------------------

    def send_sms(self, to, text, *, status_report=False, validity=None, max_parts=10,
                 encoding=None, concat_reference=None, skip_parts=0):
        """Send ``text`` to ``to`` (split into up to ``max_parts`` parts) -> the message
        references (TP-MR) of the parts sent, None where a modem gave none.

        Raises ValueError (pdu.TooLong) for a text that does not fit, before anything is
        written; ModemError (CmsError) when the modem or network refuses a part, ModemTimeout
        when it does not answer, ModemGone when the port fails.  Those carry
        ``exc.sent_references`` (the parts that went out before the failure) and
        ``exc.concat_reference``: to finish the message later without sending those parts
        again, call again with ``concat_reference=exc.concat_reference`` and
        ``skip_parts=<parts sent so far>`` -- the same text splits into the same parts, and
        the same reference lets the phone join old and new parts into one message.
        """
        if self._needs_setup:
            self._redo_setup()
        if concat_reference is None:
            self._concat = (self._concat + 1) % 256
            concat_reference = self._concat
        parts = pdu.submit_pdus(to, text, concat_reference=concat_reference, max_parts=max_parts,
                                encoding=encoding, status_report=status_report,
                                validity=validity, smsc=self.smsc)
        references = []
        for hex_pdu, length in parts[skip_parts:]:
            try:
                references.append(self._send_pdu(hex_pdu, length))
            except Exception as exc:
                exc.sent_references = list(references)
                exc.concat_reference = concat_reference
                if self._cmms and isinstance(exc, CmsError) and exc.code == 500:
                    self._cmms = self.more_messages = False
                    self.log.warning("%s: +CMS ERROR: 500 with AT+CMMS=2 on; switching it off",
                                     self.port)
                    self._tolerate("AT+CMMS=0")
                raise
        return references

    def _send_pdu(self, hex_pdu, length):
        cmd = "AT+CMGS=%d" % length
        self._start(cmd, prompt=True)
        try:
            deadline = time.monotonic() + self.command_timeout
            while True:
                event = self._event(deadline)
                if event is None:
                    raise ModemTimeout("no prompt after %s" % cmd)
                if isinstance(event, Prompt):
                    self.log.debug("%s < >", self.port)
                    break
                if isinstance(event, Final):
                    self._rx(event)
                    raise event.error or ModemError("ERROR", name="OK without a prompt",
                                                    command=cmd, line=event.line)
                self._other(event)
            self.log.debug("%s > %s<Ctrl-Z>", self.port, hex_pdu)
            self._write(self._engine.body(hex_pdu))
            deadline = time.monotonic() + self.send_timeout
            reference = None
            while True:
                event = self._event(deadline)
                if event is None:
                    raise ModemTimeout("no +CMGS within %.0f s" % self.send_timeout)
                if isinstance(event, Response) and event.line.upper().startswith("+CMGS"):
                    self._rx(event)
                    reference = _int(split_params(_value(event.line))[0])
                elif isinstance(event, Final):
                    self._rx(event)
                    if event.ok:
                        return reference
                    self._note_error(event.error)
                    raise event.error
                else:
                    self._other(event)
        except ModemTimeout:
            self._leave_prompt()
            raise
        except ModemError:
            raise
        except BaseException:
            if self._serial is not None and self._engine.busy:
                self._leave_prompt()
            raise

    def _leave_prompt(self):
        """ESC, so the modem does not sit at "> " eating our next commands as a PDU."""
        try:
            self._write(self._engine.cancel())
        except ModemGone:
            raise
        except ModemTimeout:
            pass
        self._stale = True

    # --- recovery ------------------------------------------------------------------------------

    def probe(self, timeout=None):
        """ESC, then AT every half second for up to ``timeout`` seconds (command_timeout): True as
        soon as the modem answers at all (an ERROR is an answer too).

        The first thing to try when a command got no answer: a modem left at a "> " prompt, or
        one that was busy for a while, answers again without a reopen.  Modems drop what is
        written while they are stuck, hence AT again and again rather than one long wait.
        """
        if self._serial is None:
            return False
        deadline = time.monotonic() + (timeout or self.command_timeout)
        self._engine.abandon()
        self._write(ESC)
        self._settle(limit=0.5)
        while True:
            try:
                self._command("AT", timeout=max(0.1, min(0.5, deadline - time.monotonic())))
            except ModemError:
                pass
            except ModemTimeout:
                if time.monotonic() < deadline:
                    continue
                return False
            self._settle(limit=0.5)         # late answers to what timed out, while idle
            return True

    def reset(self, command, timeout=None):
        """Write ``command`` (e.g. AT+CFUN=1,1) to restart the modem, then close the port.

        The modem may well not answer (it is being reset because it does not), so no answer
        is no error; ModemGone if the port cannot be opened or fails.  A USB modem restarting
        leaves the bus and comes back, so the caller reopens later with ``boot()``.
        """
        if self._serial is None:
            self.connect()
        try:
            self._engine.abandon()
            self._write(ESC)
            self._settle(limit=0.5)
            try:
                self._command(command, timeout=timeout)
                self.log.warning("%s: %s accepted; the modem restarts", self.port, command)
            except (ModemError, ModemTimeout) as exc:
                self.log.warning("%s: %s: %s", self.port, command, exc)
        finally:
            self.close()

    # --- status --------------------------------------------------------------------------------

    def signal_strength(self):
        """AT+CSQ <rssi>: 0..31 (-113..-51 dBm), None when unknown (99)."""
        for response in self._command("AT+CSQ"):
            if response.line.upper().startswith("+CSQ"):
                rssi = _int(split_params(_value(response.line))[0])
                return None if rssi is None or rssi == 99 else rssi
        return None

    def network(self):
        """The operator (AT+COPS?) and registration (AT+CREG?, CEREG/CGREG for LTE-only)."""
        operator = None
        try:
            for response in self._command("AT+COPS?"):
                if not response.line.upper().startswith("+COPS"):
                    continue
                fields = split_params(_value(response.line))
                if len(fields) >= 3 and fields[2]:
                    operator = _unquote(fields[2])
        except ModemError as exc:
            self.log.info("%s: %s", self.port, exc)
        stat = self._registration("+CREG")
        registered = stat in (1, 5)
        if not registered:
            for other in ("+CEREG", "+CGREG"):
                alt = self._registration(other)
                if alt in (1, 5):
                    registered = True
                    break
        return Network(operator=operator, registration=stat, registered=registered)

    def _registration(self, name):
        try:
            lines = self._command("AT%s?" % name)
        except ModemError:
            return None
        for response in lines:
            if response.line.upper().startswith(name):
                fields = split_params(_value(response.line))
                # <n>,<stat>[,...] in answer to the query (a URC would be <stat>[,...])
                return _int(fields[1]) if len(fields) > 1 else _int(fields[0])
        return None

    def wait_for_network(self, timeout):
        """Ask until the modem is registered or ``timeout`` passes; the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            net = self.network()
            if net.registered or time.monotonic() >= deadline:
                return net
            self._wait(min(2.0, max(0.0, deadline - time.monotonic())))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Setting a ``GsmModem`` up for PDU-mode SMS, and setting it up again after a restart.

The sequence is AT until it answers, ATE0, AT+CMEE=1, the SIM (AT+CPIN, with the PIN at most
once), AT+CMGF=0, AT+CSMS (whether routed messages wait for our +CNMA), AT+CPMS (storage),
AT+CNMI (the best notice setting the modem accepts) and AT+CMMS=2.  A SIM or SMS stack that is
still starting answers with vague errors for a while, so those are waited out rather than
failed on.
"""

import time

from .at import split_params
from .fields import after_colon, to_int, unquote
from .errors import CmeError, ModemError, ModemTimeout
from .port import ESC

# Errors that mean "the SIM or the SMS stack is still starting": wait and ask again.
_BUSY = frozenset({("CME", 14), ("CMS", 314), ("CMS", 515), ("CME", 515), ("CMS", 535),
                   ("CMS", 532)})
# AT+CPIN? and AT+CMGF=0 must work on any modem, so anything vague is also waited out there.
_STARTING = _BUSY | {("ERROR", None), ("CMS", 302), ("CMS", 500), ("CME", 100), ("CME", 3)}

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


class BootMixin:
    """``boot()`` and the setup it runs.  Sets ``supports_cnma``, ``routing``, ``cnmi`` and
    ``storage_used``; ``_needs_setup`` says a restarted modem must be set up again."""

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

    def _redo_setup(self):
        self._settle()
        self._setup()
        self._initial_sweep(first_check=min(self.check_interval, RECHECK_AFTER_SETUP))

    def _echoed(self):
        """An echoed command line came.  During setup that only means ATE0 has not taken yet, or
        never will (Huawei E1752 echoes anyway); after a setup that turned echo off, it means the
        modem restarted and forgot our settings."""
        if self._in_setup:
            self._echo_sticky = self._echo_sticky or self._echo_off
        elif self._echo_off and not self._echo_sticky and not self._needs_setup:
            self.log.warning("%s: echo is back on: the modem restarted; setting it up again",
                             self.port)
            self._needs_setup = True

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

    # --- the SIM -------------------------------------------------------------------------------

    def _sim_ready(self, until):
        """AT+CPIN? until READY, entering the PIN when asked; waits out a busy SIM."""
        entered = False
        while True:
            lines = self._retrying("AT+CPIN?", until=until, done_on="+CPIN:",
                                   retry_on=_STARTING)
            state = unquote(after_colon(lines[0].line)).upper() if lines else "READY"
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

    # --- SMS settings --------------------------------------------------------------------------

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
        fields = split_params(after_colon(lines[0].line)) if lines else []
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
            fields = split_params(after_colon(lines[0].line))
            # AT+CPMS=... answers used1,total1,...; AT+CPMS? answers "SM",used1,total1,...
            if fields and fields[0].startswith('"'):
                fields = fields[1:]
            used, total = to_int(fields[0]) if fields else None, \
                to_int(fields[1]) if len(fields) > 1 else None
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

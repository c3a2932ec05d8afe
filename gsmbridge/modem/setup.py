"""``Setup``: putting a modem into PDU-mode SMS, and what it accepted.

The sequence is AT until it answers, ATE0, AT+CMEE=1, the SIM (AT+CPIN, with the PIN at most
once), AT+CMGF=0, AT+CSMS (whether routed messages wait for our +CNMA), AT+CPMS (storage),
AT+CNMI (the best notice setting the modem accepts) and AT+CMMS=2.  A SIM or SMS stack that is
still starting answers with vague errors for a while, so those are waited out (sim.py).

Modems differ in what they take, so the outcome is a set of facts the rest of the driver asks
this object for: the +CNMI setting and so whether messages come routed or stored, whether
+CNMA works, whether AT+CMMS is on, which storage is being read and how full it is.  It also
watches for the modem forgetting all of it (a restart shows as an echo or a start-up URC) and
sets it up again on ``ensure()``, then tells whoever asked (``after_setup``): the receiver
sweeps the storage then.
"""

import time

from .errors import ModemError, ModemTimeout
from .fields import after_colon, split_params, to_int
from .port import ESC
from .sim import STARTING, retrying, sim_ready

# +CNMI settings to try, best first.  <mode>,<mt>,<bm>,<ds>,<bfr>: mt=2 routes SMS-DELIVERs as
# +CMT (needs AT+CSMS=1 so that we acknowledge them with +CNMA only after committing), mt=1
# stores them and says +CMTI; ds=1 routes status reports as +CDS, ds=2 stores them (+CDSI).
# Modems reject some combinations (mode 2 or bfr 0 or ds 1 unsupported), hence the lists.
_CNMI_ROUTED = ["2,2,0,1,0", "1,2,0,1,0", "2,2,0,2,0", "1,2,0,2,0", "2,2,0,0,0", "1,2,0,0,0",
                "2,2", "1,2"]
_CNMI_STORED = ["2,1,0,2,0", "1,1,0,2,0", "2,1,0,1,0", "1,1,0,1,0", "2,1,0,0,0", "1,1,0,0,0",
                "2,1", "1,1"]

# URCs after which a modem has restarted and forgotten our settings (CMGF, CNMI, CSMS...).
_RESTART = {"RDY", "^SYSSTART", "MODEM:STARTUP"}


class Setup:
    """The settings of the modem behind ``port``, and the commands that make them.

    ``receive_mode``: "auto" (routed when the modem does AT+CSMS=1, else stored), "routed" or
    "stored".  ``storage``: the message storage to read ("SM", "ME", "MT").  ``more_messages``:
    try AT+CMMS=2 (it goes off for good if sends fail with it).
    """

    def __init__(self, port, *, log, pin=None, receive_mode="auto", storage="SM",
                 boot_timeout=60.0, more_messages=True):
        self._port = port
        self._log = log
        self.pin = pin
        self.receive_mode = receive_mode
        self.storage = storage
        self.boot_timeout = boot_timeout
        self._more_messages = more_messages   # AT+CMMS=2 still worth trying
        self._cmms = False                  # AT+CMMS=2 is on
        self._supports_cnma = False         # AT+CSMS=1 accepted: +CMT/+CDS wait for our +CNMA
        self._cnma_broken = False           # +CNMA kept failing: receive stored from now on
        self._routing = None                # "routed" or "stored"
        self._cnmi = None                   # the +CNMI setting the modem accepted
        self._read_storage = None           # +CPMS <mem1> as last set
        self._storage_used = None           # from the last +CPMS: (used, total)
        self._needs_setup = False           # the modem restarted behind our back
        self._in_setup = False
        self._echo_off = False              # ATE0 done: an echo now means a restart...
        self._echo_sticky = False           # ...unless it echoes anyway (Huawei E1752)
        self._after = []

    def after_setup(self, fn):
        """Call ``fn()`` after every setup that succeeded."""
        self._after.append(fn)

    # --- facts ---------------------------------------------------------------------------------

    @property
    def supports_cnma(self):
        return self._supports_cnma

    @property
    def routing(self):
        return self._routing

    @property
    def cnmi(self):
        return self._cnmi

    @property
    def cmms(self):
        return self._cmms

    @property
    def storage_used(self):
        return self._storage_used

    @property
    def needs_setup(self):
        return self._needs_setup

    @property
    def in_progress(self):
        return self._in_setup

    @property
    def may_stop_routing(self):
        """Receiving routed was our choice, not the operator's: it may fall back to stored."""
        return self.receive_mode == "auto" and self._routing == "routed"

    # --- running it ----------------------------------------------------------------------------

    def start(self):
        """The whole setup on a port just opened: ESC (a prompt left over from a previous run),
        AT until the modem answers, then the settings."""
        self._echo_off = False
        self._port.write(ESC)
        self._knock()
        self._run()

    def ensure(self):
        """Set the modem up again if it restarted since the last setup."""
        if self._needs_setup:
            self._port.settle()
            self._run()

    def _knock(self):
        """AT until the modem answers."""
        until = time.monotonic() + self.boot_timeout
        last = None
        while time.monotonic() < until:
            try:
                self._port.command("AT", timeout=1.0)
                self._port.settle(limit=0.5)    # the answers to earlier tries, if they were slow
                return
            except ModemTimeout as exc:
                last = exc
            except ModemError as exc:     # garbage in its line buffer: the next AT is clean
                last = exc
                self._port.settle()
        raise ModemTimeout("%s does not answer AT: %s" % (self._port.url, last))

    def _run(self):
        until = time.monotonic() + self.boot_timeout
        self._needs_setup = False
        self._in_setup = True
        self._echo_off = self._echo_sticky = False
        ok = False
        try:
            self._port.command("ATE0")
            self._echo_off = True
            self._port.tolerate("AT+CMEE=1")
            sim_ready(self._port, self.pin, until=until, log=self._log)
            self._retrying("AT+CMGF=0", until=until, retry_on=STARTING)
            self._select_service(until)
            self._select_storage(until)
            self._select_routing(until)
            if self._more_messages:
                self._cmms = self._port.tolerate("AT+CMMS=2") is not None
            ok = True
        finally:
            self._in_setup = False
            self._needs_setup = self._needs_setup or not ok    # half set up: again next time
        if self._echo_sticky:
            self._log.info("%s: echo stays on after ATE0; tolerated", self._port.url)
        for fn in self._after:
            fn()

    def _retrying(self, cmd, *, until, **kw):
        return retrying(self._port, cmd, until=until, log=self._log, **kw)

    # --- signs of a restart --------------------------------------------------------------------

    def echoed(self):
        """An echoed command line came.  During setup that only means ATE0 has not taken yet, or
        never will (Huawei E1752 echoes anyway); after a setup that turned echo off, it means the
        modem restarted and forgot our settings."""
        if self._in_setup:
            self._echo_sticky = self._echo_sticky or self._echo_off
        elif self._echo_off and not self._echo_sticky and not self._needs_setup:
            self._log.warning("%s: echo is back on: the modem restarted; setting it up again",
                              self._port.url)
            self._needs_setup = True

    def unsolicited(self, event):
        if event.name.upper() in _RESTART:
            self._log.warning("%s: modem restarted (%s); setting it up again", self._port.url,
                              event.line)
            self._needs_setup = True

    # --- SMS service and storage ---------------------------------------------------------------

    def _select_service(self, until):
        """AT+CSMS=1 (phase 2+): routed messages then wait for our +CNMA."""
        self._supports_cnma = False
        if self._cnma_broken and self.receive_mode == "auto":
            self._port.tolerate("AT+CSMS=0")
            return
        try:
            lines = self._retrying("AT+CSMS=1", until=until)
        except ModemError as exc:
            self._log.info("%s: AT+CSMS=1 refused (%s): no +CNMA, messages will be stored",
                           self._port.url, exc)
            self._port.tolerate("AT+CSMS=0")
            return
        fields = split_params(after_colon(lines[0].line)) if lines else []
        self._supports_cnma = bool(fields) and fields[0] == "1"

    def _select_storage(self, until):
        mem = self.storage
        for cmd in ('AT+CPMS="%s","%s","%s"' % (mem, mem, mem), 'AT+CPMS="%s","%s"' % (mem, mem),
                    'AT+CPMS="%s"' % mem):
            try:
                lines = self._retrying(cmd, until=until)
            except ModemError as exc:
                self._log.info("%s: %s", self._port.url, exc)
                continue
            self._read_storage = mem
            self._note_cpms(lines)
            return
        self._log.warning("%s: storage %s refused; keeping the modem's default",
                          self._port.url, mem)
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
                self._storage_used = (used, total)

    @property
    def own_storage(self):
        """The storage we chose, if the modem took it (else None: its default)."""
        return self.storage if self._read_storage else None

    def use_storage(self, storage):
        """Read from ``storage`` (None: wherever we read now) -> the storage now read."""
        if storage and storage != self._read_storage:
            self._port.command('AT+CPMS="%s"' % storage)
            self._read_storage = storage
        return self._read_storage

    def count_stored(self):
        """AT+CPMS? -> how many messages the read storage holds, None if it will not say."""
        try:
            lines = self._port.command("AT+CPMS?")
        except ModemError:
            return None
        self._note_cpms(lines)
        return self._storage_used[0] if self._storage_used else None

    # --- notices -------------------------------------------------------------------------------

    def _select_routing(self, until):
        routed = self.receive_mode == "routed" or (
            self.receive_mode == "auto" and self._supports_cnma and not self._cnma_broken)
        if self.receive_mode == "routed" and not self._supports_cnma:
            raise ModemError("ERROR", name="receive_mode=routed needs AT+CSMS=1", transient=False,
                             command="AT+CSMS=1")
        choices = (_CNMI_ROUTED if routed else []) + _CNMI_STORED
        if self.receive_mode == "routed":
            choices = _CNMI_ROUTED
        for setting in choices:
            try:
                self._retrying("AT+CNMI=" + setting, until=until)
            except ModemError as exc:
                self._log.info("%s: %s", self._port.url, exc)
                continue
            self._cnmi = setting
            self._routing = "routed" if setting.split(",")[1] == "2" else "stored"
            self._log.info("%s: receiving %s (AT+CNMI=%s, CNMA %s)", self._port.url,
                           self._routing, setting, "on" if self._supports_cnma else "off")
            return
        self._cnmi = None
        self._routing = "stored"
        self._log.warning("%s: every AT+CNMI refused: no new-message notices; relying on sweeps",
                          self._port.url)

    def check_cnmi(self):
        """Is +CNMI still ours?  A missed +CNMA makes the modem drop routing, a restart resets
        it; set it again if not."""
        if not self._cnmi:
            return
        try:
            lines = self._port.command("AT+CNMI?")
        except ModemError as exc:
            self._log.info("%s: %s", self._port.url, exc)
            lines = []
        for response in lines:
            have = [to_int(f) for f in split_params(after_colon(response.line))]
            want = [to_int(f) for f in self._cnmi.split(",")]
            if have[1:2] != want[1:2] or (len(want) > 3 and have[3:4] != want[3:4]):
                self._log.warning("%s: +CNMI is %s, not %s: setting it again", self._port.url,
                                  after_colon(response.line), self._cnmi)
                self._port.tolerate("AT+CNMI=" + self._cnmi)

    def restore_cnmi(self):
        """AT+CNMI again, unasked (TS 27.005 3.4.4: a missed +CNMA turns routing off)."""
        if self._cnmi:
            self._port.tolerate("AT+CNMI=" + self._cnmi)

    def stop_routing(self):
        """Fall back to stored messages (+CMTI) for a modem whose +CNMA does not work."""
        self._port.tolerate("AT+CSMS=0")
        self._supports_cnma = False
        self._cnma_broken = True        # and after a restart too
        for setting in _CNMI_STORED:
            if self._port.tolerate("AT+CNMI=" + setting) is not None:
                self._cnmi, self._routing = setting, "stored"
                return
        self._cnmi, self._routing = None, "stored"

    def stop_more_messages(self):
        """AT+CMMS=0, for good: this modem fails sends while it is on."""
        self._cmms = self._more_messages = False
        self._port.tolerate("AT+CMMS=0")

"""``GsmModem``: one GSM modem on a serial port, spoken to in AT commands (TS 27.005/27.007).

The shape is pygsm's (``GsmModem(port).boot()``, ``send_sms``, ``next_message``), the insides
are the sans-I/O engine (at.py) and the PDU codec (pdu.py).  The class is composed here from one
mixin per job, each in its own module:

* port.py -- the port and the command plumbing (open, read, write, ``command``, settle);
* setup.py -- ``boot()``: AT, ATE0, CMEE, PIN, CMGF, CSMS, CPMS, CNMI, CMMS, and again after
  a restart;
* receive.py -- ``poll``, ``sweep``, ``done``: nothing is deleted or acknowledged before
  the caller has committed it;
* send.py -- ``send_sms``, the "> " prompt and ESC;
* health.py -- ``signal_strength``, ``network``, ``probe``, ``reset``.

All the state lives in one object, set up in ``__init__`` below, so it can be read in one place.

One thread only (bar ``wake()``).  Errors: ``errors.ModemError`` (and its CmeError/CmsError) for
an error final result, ``ModemTimeout`` when no answer comes (the command is abandoned),
``ModemGone`` when the port fails or disappears -- after which ``boot()`` reopens it.  Every AT
line is logged at DEBUG on the logger ``gsmbridge.modem``.
"""

import logging
import random

from .at import Engine
from .errors import ModemError, ModemGone, ModemTimeout
from .setup import BootMixin
from .health import HealthMixin, Network
from .port import PortMixin
from .receive import Incoming, ReceiveMixin
from .send import SendMixin
from ..codec.reassembly import Reassembler

__all__ = ["GsmModem", "Incoming", "Network", "ModemError", "ModemGone", "ModemTimeout"]

log = logging.getLogger("gsmbridge.modem")


class GsmModem(ReceiveMixin, SendMixin, HealthMixin, BootMixin, PortMixin):
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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

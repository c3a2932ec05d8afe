"""``GsmModem``: one GSM modem on a serial port, spoken to in AT commands (TS 27.005/27.007).

The shape is pygsm's (``GsmModem(port).boot()``, ``send_sms``, ``next_message``); behind it are
a few objects, each owning its own state and asking the others for what it needs to know:

* ``Port`` (port.py) -- the serial line and the sans-I/O engine: every byte in and out, one
  command at a time, and the URCs, echoes and errors that come besides;
* ``Setup`` (setup.py) -- ``boot()``'s settings and what the modem accepted (CNMI, CNMA,
  CMMS, storage), and setting it up again after a restart;
* ``Receiver`` (receive.py) -- ``poll``, ``sweep``, ``done``, ``next_message``: one path for
  every message in, and nothing deleted or acknowledged before the caller has committed it;
* ``Sender`` (send.py) -- ``send_sms``, the "> " prompt and ESC;
* ``Health`` (health.py) -- ``signal_strength``, ``network``, ``probe``, ``reset``;
* ``Ussd`` (ussd.py) -- USSD requests and their replies, however the modem writes them;
* ``Calls`` (calls.py) -- incoming voice calls, hung up at once and handed over.

``identity()`` reads what the modem and SIM are (identity.py); a port given as ``imei:<IMEI>``
is found afresh at every boot among the serial ports (locate.py).

This module only builds and wires them, so the whole of who-tells-whom is in ``__init__``.

One thread only (bar ``wake()``).  Errors: ``errors.ModemError`` (and its CmeError/CmsError) for
an error final result, ``ModemTimeout`` when no answer comes (the command is abandoned),
``ModemGone`` when the port fails or disappears -- after which ``boot()`` reopens it.  Every AT
line is logged at DEBUG on the logger ``gsmbridge.modem``.
"""

import logging
import time

from . import identity, locate
from .calls import Call, Calls
from .errors import ModemError, ModemGone, ModemTimeout
from .health import Health, Network
from .incoming import Incoming
from .port import Port
from .receive import Receiver
from .send import Sender
from .setup import Setup
from .ussd import Ussd, UssdAnswer

__all__ = ["GsmModem", "Incoming", "Network", "ModemError", "ModemGone", "ModemTimeout",
           "Call", "UssdAnswer"]

log = logging.getLogger("gsmbridge.modem")


class GsmModem:
    """A GSM modem on ``port``: a device path ("/dev/ttyUSB0") or a pyserial URL
    ("socket://127.0.0.1:7000", "rfc2217://...", "loop://").

    ``receive_mode``: "auto" (routed +CMT when the modem does AT+CSMS=1, else stored +CMTI),
    "routed" or "stored".  ``storage``: the message storage to use ("SM" default, "ME", "MT").
    ``smsc``: put this service centre number in every PDU instead of the SIM's.
    ``more_messages``: AT+CMMS=2, keeping the radio link to the SMSC open between back-to-back
    sends (TS 27.005 3.5.6); it goes off for good on a modem that fails sends with it.
    ``port`` may also be ``imei:<IMEI>[@<glob>]``: the serial port whose modem has that IMEI.
    ``ussd_encoding``: "auto", "text", "packed" or "ucs2" (ussd.py); ``ussd_timeout``: seconds a
    USSD request waits for its reply.
    """

    def __init__(self, port, baudrate=115200, pin=None, *, logger=None, command_timeout=10.0,
                 send_timeout=90.0, receive_mode="auto", smsc=None, storage=None,
                 boot_timeout=60.0, reassembly_timeout=3600.0, check_interval=300.0,
                 more_messages=True, ussd_encoding="auto", ussd_timeout=30.0):
        if receive_mode not in ("auto", "routed", "stored"):
            raise ValueError("receive_mode is auto, routed or stored, not %r" % receive_mode)
        logger = logger or log
        self._locate = port if str(port).startswith(locate.PREFIX) else None
        if self._locate:
            locate.parse(port)          # ValueError now rather than at boot
        self._held = None               # the device path registered with locate.hold
        self._log = logger
        self._port = Port(port, baudrate, log=logger, command_timeout=command_timeout)
        self._setup = Setup(self._port, log=logger, pin=pin, receive_mode=receive_mode,
                            storage=(storage or "SM").upper(), boot_timeout=boot_timeout,
                            more_messages=more_messages)
        self._receiver = Receiver(self._port, self._setup, log=logger,
                                  check_interval=check_interval,
                                  reassembly_timeout=reassembly_timeout)
        self._sender = Sender(self._port, self._setup, log=logger, send_timeout=send_timeout,
                              smsc=smsc)
        self._health = Health(self._port, log=logger)
        self._ussd = Ussd(self._port, log=logger, encoding=ussd_encoding, timeout=ussd_timeout)
        self._calls = Calls(self._port, log=logger)
        # A restart shows as an echo or a start-up URC: the setup's to notice.  Messages and a
        # full storage are the receiver's; after every setup it sweeps what came meanwhile.
        self._port.listen(unsolicited=self._setup.unsolicited, echo=self._setup.echoed)
        self._port.listen(unsolicited=self._receiver.unsolicited,
                          error=self._receiver.command_failed)
        self._setup.after_setup(self._receiver.resume)
        # USSD replies and calls come unasked; a restart forgets a USSD session, and AT+CLIP.
        self._port.listen(unsolicited=self._ussd.unsolicited, noise=self._ussd.noise)
        self._port.listen(unsolicited=self._calls.unsolicited)
        self._setup.after_setup(self._ussd.reset)
        self._setup.after_setup(self._calls.setup)

    # --- the port ------------------------------------------------------------------------------

    def boot(self):
        """Open the port and set the modem up for PDU-mode SMS.  Safe to call again after
        ModemGone or a restart.  Returns self; on failure the port is closed again."""
        self._open()
        try:
            self._setup.start()
        except BaseException:
            self.close()               # and its lock: the next attempt may be another instance
            raise
        return self

    def _open(self):
        """Open the port; an ``imei:`` port is looked for first (it may have moved)."""
        self.close()
        if self._locate:
            self._port.url = locate.find(self._locate, self._port.baudrate, self._log)
        self._port.open()
        self._held = self._port.url
        locate.hold(self._held, self._port)

    def connect(self):
        """Open the port (again) without setting the modem up.  ModemGone if it cannot."""
        self._open()
        return self

    def close(self):
        self._port.close()
        held, self._held = self._held, None
        if held is not None:
            locate.release(held, self._port)

    def wake(self):
        """Cut short a poll() that is waiting on the port. Safe from any thread."""
        self._port.wake()

    def command(self, cmd, *, timeout=None):
        """Run one AT command -> its information lines (a +CMGR/+CMGL header is followed by its
        body line).  ModemError on an error result, ModemTimeout when none comes."""
        out = []
        for response in self._port.command(cmd, timeout=timeout):
            out.append(response.line)
            if response.body is not None:
                out.append(response.body)
        return out

    @property
    def port(self):
        """The device path or URL it was made with (for ``imei:``, where it was last found)."""
        return self._port.url

    @property
    def is_open(self):
        return self._port.is_open

    # --- what setup found ----------------------------------------------------------------------

    @property
    def routing(self):
        """After boot: "routed" (+CMT) or "stored" (+CMTI)."""
        return self._setup.routing

    @property
    def cnmi(self):
        """The +CNMI setting the modem accepted (None: it took none)."""
        return self._setup.cnmi

    @property
    def supports_cnma(self):
        """AT+CSMS=1 accepted: routed messages wait for our +CNMA."""
        return self._setup.supports_cnma

    @property
    def storage_used(self):
        """(used, total) of the read storage, from the last +CPMS."""
        return self._setup.storage_used

    @property
    def _needs_setup(self):
        return self._setup.needs_setup

    # --- receiving -----------------------------------------------------------------------------

    def poll(self, timeout):
        """Read the port for up to ``timeout`` seconds -> the inbound ``Incoming`` items that
        came (as soon as there are some).  Hand each to ``done()`` once committed."""
        return self._receiver.poll(timeout)

    def sweep(self):
        """Everything stored (AT+CMGL=4) and whatever else waits, as ``Incoming`` items; those
        handed out before and not done() come again."""
        return self._receiver.sweep()

    def done(self, item):
        """The caller has committed ``item``: delete it from storage, or acknowledge it."""
        self._receiver.done(item)

    def delete(self, index):
        """AT+CMGD=<index> in the storage being read (pygsm's)."""
        self._port.command("AT+CMGD=%d" % index)

    def next_message(self, timeout=0):
        """pygsm's convenience: the next complete message (parts joined), or None after
        ``timeout`` seconds.  Each SMS is deleted as soon as it is read; the bridge's worker
        uses poll()/done() instead."""
        return self._receiver.next_message(timeout)

    # --- sending -------------------------------------------------------------------------------

    def send_sms(self, to, text, *, status_report=False, validity=None, max_parts=10,
                 encoding=None, concat_reference=None, skip_parts=0, while_prompting=None):
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

        ``while_prompting()`` is called once the first AT+CMGS is written, while the modem
        answers it with its prompt: the caller's own work (recording the message before) takes
        that time instead of time between two sends. What it raises ends the send (the prompt
        is left with ESC, nothing was sent).
        """
        return self._sender.send_sms(to, text, status_report=status_report, validity=validity,
                                     max_parts=max_parts, encoding=encoding,
                                     concat_reference=concat_reference, skip_parts=skip_parts,
                                     while_prompting=while_prompting)

    # --- health --------------------------------------------------------------------------------

    def signal_strength(self):
        """AT+CSQ <rssi>: 0..31 (-113..-51 dBm), None when unknown (99)."""
        return self._health.signal_strength()

    def network(self):
        """The operator and registration, as a ``Network``."""
        return self._health.network()

    def wait_for_network(self, timeout):
        """Ask until the modem is registered or ``timeout`` passes; the last ``Network``."""
        return self._health.wait_for_network(timeout)

    def probe(self, timeout=None):
        """ESC, then AT until the modem answers (True) or ``timeout`` passes (False)."""
        return self._health.probe(timeout)

    def reset(self, command, timeout=None):
        """Write ``command`` (e.g. AT+CFUN=1,1) to restart the modem, then close the port."""
        if not self._port.is_open:
            self._open()                # an imei: port is looked for first
        try:
            self._health.reset(command, timeout)
        finally:
            self.close()

    # --- SIM services --------------------------------------------------------------------------

    def identity(self):
        """{manufacturer, model, revision, imei, imsi, iccid, own_number}: what the modem and
        its SIM say they are (None where they would not say)."""
        return identity.read(self._port, self._log)

    def ussd(self, code, timeout=None):
        """Send a USSD request and wait for its reply -> ``UssdAnswer`` (status "done", "more",
        "failed" or "timeout").  Answer a menu ("more") with another call."""
        answer = self._ussd.start(code)
        deadline = None if timeout is None else time.monotonic() + timeout
        while answer is None:
            self._port.wait(0.1)
            answer = self._ussd.answer()
            if answer is None and deadline is not None and time.monotonic() >= deadline:
                self._ussd.cancel()
                answer = UssdAnswer("timeout", error="no reply within %.0f s" % timeout)
        return answer

    def ussd_start(self, code):
        """Send a USSD request without waiting: its ``UssdAnswer`` when known at once, else
        None (then ask ``ussd_answer()``, from the loop that polls)."""
        return self._ussd.start(code)

    def ussd_answer(self):
        """The reply to the request of ``ussd_start`` once it came (or timed out), else None."""
        return self._ussd.answer()

    def ussd_cancel(self):
        """AT+CUSD=2: end the USSD session (an ERROR is harmless)."""
        self._ussd.cancel()

    @property
    def ussd_session_open(self):
        return self._ussd.session_open

    def ussd_ended_by_network(self):
        """Whether the network ended an open USSD session since last asked."""
        return self._ussd.ended_by_network()

    def take_calls(self):
        """Hang up a call that rings (once its number is known) -> the ``Call`` items that are
        over since the last time."""
        return self._calls.take()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

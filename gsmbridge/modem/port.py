"""The port and the command plumbing of a ``GsmModem``: open, close, read, write, run one AT
command, and wait while taking in what the modem says unasked.

Everything the modem sends goes through the sans-I/O engine (at.py); this is the only part that
touches pyserial.  Events that are not the running command's answer are never dropped: they go
to ``_other``, which hands URCs to the receiving side (receive.py) and echoes to the setup
side (setup.py).  A command abandoned on a timeout leaves the line "stale": its late answer is
read and discarded (``_settle``) before the next command is written, so it cannot be taken for
the next command's.
"""

import logging
import time

import serial

from .at import NEED_DATA, Echo, Engine, Final, Noise, Prompt, Response, Unsolicited
from .errors import ModemError, ModemGone, ModemTimeout

ESC = b"\x1b"       # leaves a "> " prompt without sending (TS 27.005 3.5.1)


class PortMixin:
    """I/O for ``GsmModem``: the serial port, the engine, and ``command``.

    Uses ``port``, ``baudrate``, ``log``, ``command_timeout`` and the state set up in
    ``GsmModem.__init__`` (``_serial``, ``_engine``, ``_stale``, ``_woken``).
    """

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

    # --- commands ------------------------------------------------------------------------------

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

    def _tolerate(self, cmd, **kw):
        try:
            return self._command(cmd, **kw)
        except ModemError as exc:
            self.log.info("%s: %s (ignored)", self.port, exc)
            return None

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
            self._echoed()
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

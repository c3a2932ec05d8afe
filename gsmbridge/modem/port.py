"""``Port``: the serial line to one modem and the AT conversation on it.

It owns the pyserial port and the sans-I/O engine (at.py) that makes sense of what comes back,
and with them every byte the driver reads or writes: open, close, read, write, run one command,
wait while taking in what the modem says unasked.  No other part of the driver touches pyserial.

Events that are not the running command's answer are never dropped: they go to whoever asked
for them with ``listen`` -- URCs to the receiver (new messages) and to the setup (a restart),
echoes to the setup, error results to the receiver (a full storage is its to empty).  A command
abandoned on a timeout leaves the line "stale": its late answer is read and discarded
(``settle``) before the next command is written, so it cannot be taken for the next command's.
"""

import logging
import os
import select
import time

import serial

from .at import Engine
from .errors import ModemError, ModemGone, ModemTimeout
from .events import NEED_DATA, Echo, Final, Noise, Prompt, Response, Unsolicited

ESC = b"\x1b"       # leaves a "> " prompt without sending (TS 27.005 3.5.1)

#: a +CUSD reply whose quote is still open this long after the last bytes came is handed over as
#: it is (a text with a quote of its own); a real modem writes a menu's lines in one go
USSD_JOIN_WAIT = 1.0


class Port:
    """The line to the modem at ``url`` (a device path or a pyserial URL), with its engine.

    One thread at a time, bar ``wake()``.  ``command_timeout`` is how long a command waits for
    its final result unless told otherwise.
    """

    def __init__(self, url, baudrate=115200, *, log, command_timeout=10.0):
        self.url = url
        self.baudrate = baudrate
        self.command_timeout = command_timeout
        self._log = log
        self._serial = None
        self._fds = None                # (device, pyserial's cancel pipe): see _direct()
        self._chunks = [(0.0, 0), (0.0, 0)]   # (time, size) of the last two reads: the pace
        self._engine = Engine()
        self._stale = False             # a command was abandoned: late answers may still come
        self._woken = False             # wake() was called: a wakeable read returns at once
        self._unsolicited = []          # listeners, see listen()
        self._echo = []
        self._error = []
        self._noise = []
        self._last_data = 0.0           # when bytes last came (for USSD_JOIN_WAIT)

    def listen(self, *, unsolicited=None, echo=None, error=None, noise=None):
        """Ask for what the modem says besides answers: ``unsolicited(event)`` for each URC,
        ``echo()`` for each echoed command line, ``error(exc)`` for each error result,
        ``noise(event)`` for each line that meant nothing (a stray final result among them)."""
        for listeners, fn in ((self._unsolicited, unsolicited), (self._echo, echo),
                              (self._error, error), (self._noise, noise)):
            if fn is not None:
                listeners.append(fn)

    # --- the port ------------------------------------------------------------------------------

    def open(self):
        """Open the port (again), with a fresh engine.  ModemGone if it cannot be opened."""
        self.close()
        try:
            try:
                self._serial = serial.serial_for_url(
                    self.url, baudrate=self.baudrate, timeout=0.1, write_timeout=10,
                    rtscts=False, dsrdtr=False, exclusive=True)
            except (TypeError, ValueError):       # a URL handler without exclusive locking
                self._serial = serial.serial_for_url(
                    self.url, baudrate=self.baudrate, timeout=0.1, write_timeout=10)
        except (serial.SerialException, OSError) as exc:
            self._serial = None
            raise ModemGone("cannot open %s: %s" % (self.url, exc)) from exc
        self._engine = Engine()
        self._stale = False
        self._fds = self._direct(self._serial)
        self._log.info("opened %s", self.url)

    @staticmethod
    def _direct(port):
        """(device fd, cancel-pipe fd) of a POSIX serial port, for read() to wait on itself.

        pyserial's read(n) waits for n bytes, and told "what is waiting, at least 1" it reads
        the first byte of a chunk alone and the rest at the next call: two wake-ups for every
        chunk a paced line delivers (about ten for each +CMT). Waiting on the descriptors and
        taking whatever has come costs one. Other ports (URL handlers) go through pyserial."""
        fd = getattr(port, "fd", None)
        cancel = getattr(port, "pipe_abort_read_r", None)
        if isinstance(fd, int) and isinstance(cancel, int) and isinstance(port, serial.Serial):
            return fd, cancel
        return None

    def close(self):
        port, self._serial = self._serial, None
        self._fds = None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    @property
    def is_open(self):
        return self._serial is not None

    @property
    def busy(self):
        """A command is in progress (written, its final result not yet read)."""
        return self._engine.busy

    def _gone(self, exc):
        self._log.warning("%s went away: %s", self.url, exc)
        self.close()
        raise ModemGone("%s: %s" % (self.url, exc)) from exc

    def write(self, data):
        if self._serial is None:
            raise ModemGone("%s is not open" % self.url)
        try:
            self._serial.write(data)
        except serial.SerialTimeoutException as exc:
            raise ModemTimeout("%s: write timed out" % self.url) from exc
        except (serial.SerialException, OSError) as exc:
            self._gone(exc)

    def wake(self):
        """Cut short a wakeable ``read`` that is waiting on the port. Safe from any thread.

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
                pass            # a URL handler without it: the read notices at its next turn

    def take_wake(self):
        """Whether wake() was called since the last time this was asked."""
        woken, self._woken = self._woken, False
        return woken

    def read(self, timeout, wakeable=False):
        """Feed the engine whatever arrives within ``timeout`` seconds (returns on the first
        bytes).  True if something came; False at the timeout, or at a wake() if wakeable."""
        if self._serial is None:
            raise ModemGone("%s is not open" % self.url)
        deadline = time.monotonic() + max(timeout, 0.0)
        if self._engine.partial:                # a USSD menu's lines: wait for the rest, briefly
            if time.monotonic() - self._last_data >= USSD_JOIN_WAIT:
                self._engine.release_partial()
                return True
            deadline = min(deadline, self._last_data + USSD_JOIN_WAIT)
        if self._fds is not None:
            if self._read_direct(deadline, wakeable):
                self._last_data = time.monotonic()
                return True
            if self._engine.partial and time.monotonic() - self._last_data >= USSD_JOIN_WAIT:
                self._engine.release_partial()
                return True
            return False
        while True:
            try:
                waiting = self._serial.in_waiting
                data = self._serial.read(min(max(waiting, 1), 4096))
            except (serial.SerialException, OSError) as exc:
                self._gone(exc)
            if data:
                self._engine.receive_data(data)
                self._last_data = time.monotonic()
                return True
            if time.monotonic() >= deadline or (wakeable and self._woken):
                if self._engine.partial and time.monotonic() - self._last_data >= USSD_JOIN_WAIT:
                    self._engine.release_partial()
                    return True
                return False

    def _paced_wait(self, deadline):
        """While a PDU line is arriving at the line's own pace (the last read came as long
        after the one before as its bytes take on the wire: a UART, or a simulated one), sleep
        until the rest of it is due instead of waking for every few bytes. A modem behind USB
        delivers faster than its nominal rate, fails the test, and is read as it comes."""
        remaining = self._engine.body_remaining()
        if not remaining:
            return
        (t0, _), (t1, size) = self._chunks
        byte = 10.0 / self.baudrate
        gap = t1 - t0
        if not (size and 0.5 * size * byte <= gap <= 2.0 * size * byte):
            return
        until = min(t1 + remaining * byte, deadline, time.monotonic() + 0.1)
        pause = until - time.monotonic()
        if pause > 0.0005:
            time.sleep(pause)

    def _read_direct(self, deadline, wakeable):
        """read() on the descriptors until `deadline`: one select, then everything that has
        come. True if something came."""
        fd, cancel = self._fds
        if not (wakeable and self._woken):
            self._paced_wait(deadline)
        while True:
            try:
                ready = select.select((fd, cancel), (), (), max(deadline - time.monotonic(),
                                                                 0.0))[0]
                if cancel in ready:
                    os.read(cancel, 1000)           # wake()'s byte, as pyserial drains it
                data = os.read(fd, 4096) if fd in ready else b""
            except BlockingIOError:
                data = b""
            except (OSError, ValueError) as exc:    # ValueError: closed under us
                self._gone(exc)
            if data:
                self._engine.receive_data(data)
                self._chunks = [self._chunks[1], (time.monotonic(), len(data))]
                return True
            if fd in ready:
                self._gone(serial.SerialException(
                    "device reports readiness to read but returned no data"))
            if time.monotonic() >= deadline or (wakeable and self._woken):
                return False

    # --- commands ------------------------------------------------------------------------------

    def start(self, cmd, **options):
        """Hand ``cmd`` to the engine and write it; a failed write leaves the engine idle."""
        if self._stale:
            self.settle()
        data = self._engine.command(cmd, **options)
        try:
            self.write(data)
        except BaseException:
            self._engine.abandon()
            raise
        self._log.debug("%s > %s", self.url, cmd)

    def next_event(self, deadline):
        """The next engine event, reading the port until ``deadline``; None if none came."""
        while True:
            event = self._engine.next_event()
            if event is not NEED_DATA:
                return event
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.read(remaining):
                event = self._engine.next_event()
                return None if event is NEED_DATA else event

    def command(self, cmd, *, timeout=None, done_on=None):
        """Run one AT command -> its information lines (``at.Response``).  ModemError on an
        error result, ModemTimeout when none comes (the command is then abandoned)."""
        self.start(cmd, done_on=done_on)
        deadline = time.monotonic() + (timeout or self.command_timeout)
        responses = []
        while True:
            event = self.next_event(deadline)
            if event is None:
                self._engine.abandon()
                self._stale = True
                raise ModemTimeout("no answer to %s within %.0f s" % (
                    cmd, timeout or self.command_timeout))
            if isinstance(event, Response):
                self.trace(event)
                responses.append(event)
            elif isinstance(event, Final):
                self.trace(event)
                if event.ok:
                    if done_on:
                        self.settle(limit=0.5)      # let a late OK land while idle
                    return responses
                raise self.refused(event)
            else:
                self.dispatch(event)

    def tolerate(self, cmd, **kw):
        """``command``, with an error result logged and ignored (None)."""
        try:
            return self.command(cmd, **kw)
        except ModemError as exc:
            self._log.info("%s: %s (ignored)", self.url, exc)
            return None

    def refused(self, final):
        """The error of an error result, once the listeners have heard of it."""
        error = final.error
        for listener in self._error:
            listener(error)
        return error

    def body(self, text):
        """After the "> " prompt: write the PDU and Ctrl-Z."""
        self._log.debug("%s > %s<Ctrl-Z>", self.url, text)
        self.write(self._engine.body(text))

    def cancel_prompt(self):
        """ESC, so the modem does not sit at "> " eating our next commands as a PDU."""
        try:
            self.write(self._engine.cancel())
        except ModemGone:
            raise
        except ModemTimeout:
            pass
        self._stale = True

    def interrupt(self):
        """Forget the command in progress, ESC out of any prompt, and let late answers land."""
        self._engine.abandon()
        self.write(ESC)
        self.settle(limit=0.5)

    # --- what is not an answer -----------------------------------------------------------------

    def trace(self, event):
        """Log a line of the current command's answer."""
        if self._log.isEnabledFor(logging.DEBUG):
            body = getattr(event, "body", None)
            self._log.debug("%s < %s%s", self.url, event.line or "(done)",
                            "" if body is None else " / " + body)

    def dispatch(self, event):
        """An event that is not the current command's: log it, and pass on what matters."""
        if isinstance(event, Unsolicited):
            self._log.debug("%s < %s%s", self.url, event.line,
                            "" if event.body is None else " / " + event.body)
            for listener in self._unsolicited:
                listener(event)
        elif isinstance(event, Noise):
            self._log.debug("%s < noise %r", self.url, event.data)
            for listener in self._noise:
                listener(event)
        elif isinstance(event, Echo):
            self._log.debug("%s < echo %s", self.url, event.line)
            for listener in self._echo:
                listener()
        elif isinstance(event, (Response, Final)):
            self._log.debug("%s < %s", self.url, event.line)
        elif isinstance(event, Prompt):
            self._log.debug("%s < unexpected prompt", self.url)

    def pump(self):
        """Dispatch every whole event already read."""
        while (event := self._engine.next_event()) is not NEED_DATA:
            self.dispatch(event)

    def settle(self, quiet=0.2, limit=2.0):
        """Read until the line has been quiet for ``quiet`` seconds (at most ``limit``), so that
        late answers to an abandoned command land while we are idle."""
        end = time.monotonic() + limit
        while time.monotonic() < end:
            self.pump()
            if not self.read(min(quiet, end - time.monotonic())):
                break
        self.pump()
        self._stale = False

    def wait(self, seconds):
        """Sleep while still taking in URCs."""
        end = time.monotonic() + seconds
        while (remaining := end - time.monotonic()) > 0:
            self.pump()
            self.read(remaining)
        self.pump()

"""A simulated modem's serial port: a pseudo-terminal, pumped by its own thread.

Any modem software (gammu, minicom, the bridge) opens the symlink as if it were /dev/ttyUSB0.
The pump can pace bytes at a baud rate (ten bits a byte, both ways: the modem sees a command when
its last byte would have arrived, the host gets the bytes of an answer as they would have
finished arriving) and makes the "disappear" fault real: the pty is closed and the link removed,
then a new pty comes back at the same link, like a USB modem re-enumerating.  Output written
while no program has the port open is dropped, as a USB modem's is.
"""

import errno
import logging
import math
import os
import pty
import select
import threading
import time
import tty
from collections import deque

log = logging.getLogger("gsmbridge.simulator")

#: output kept for a port nobody reads before the oldest is dropped (a real modem drops it all)
MAX_PENDING_OUTPUT = 1 << 20


def replace_link(link, target):
    """Point the symlink `link` at `target`, replacing a stale link; never a real file."""
    if os.path.lexists(link) and not os.path.islink(link):
        raise FileExistsError("%s exists and is not a symlink; not replacing it" % link)
    temporary = "%s.%d.tmp" % (link, os.getpid())
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, link)


def _wait(readers, writers, timeout):
    """(readable, writable) fds within `timeout` seconds, to the microsecond (poll() counts
    whole milliseconds, which alone would add up to a millisecond to every paced byte's time)."""
    if max(readers + writers) < 1024:
        readable, writable, _ = select.select(readers, writers, [], timeout)
        return readable, writable
    poller = select.poll()
    for fd in set(readers + writers):
        poller.register(fd, (select.POLLIN if fd in readers else 0) |
                        (select.POLLOUT if fd in writers else 0))
    ready = poller.poll(math.ceil(timeout * 1000))
    return ([fd for fd, ev in ready if fd in readers and ev & ~select.POLLOUT],
            [fd for fd, ev in ready if ev & select.POLLOUT])


class PtyPort:
    """A modem on a pty linked at `link`, pumped by its own thread."""

    #: most line time one write to the host covers (bytes go out in pieces, each when its last
    #: byte is due, as they trickle out of a UART)
    WRITE_SLICE = 0.002

    def __init__(self, modem, link, baudrate=None, transcript=64 * 1024):
        self.modem = modem
        self.link = os.path.abspath(link)
        self.byte_time = 10.0 / baudrate if baudrate else 0.0   # start + 8 data + stop bits
        #: on_wire(direction, data, when): called from the pump with ">" and the bytes as the
        #: host wrote them (when: time.monotonic() they were read), "<" and the bytes as the host
        #: gets them (when: written to the pty, i.e. their last byte's arrival on a paced line)
        self.on_wire = None
        self.master = None
        self.device = None
        self._open = False          # a program has the port open
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._inbound = deque()     # paced input: (due, bytes)
        self._in_free = 0.0         # when the host's line is free again
        self._out = bytearray()
        self._out_clock = 0.0       # when the last byte handed to the host finished on the line
        self._out_blocked = False   # the pty took no more: wait until it is writable
        self._transcript = deque()
        self._transcript_size = 0
        self._transcript_max = transcript
        self._lock = threading.Lock()
        modem.on_output = self.wake
        self._create()
        self._thread = threading.Thread(target=self._run, name="simulated-modem", daemon=True)
        self._thread.start()

    # -- public ------------------------------------------------------------------------------

    def wake(self):
        """Have the pump look at the modem now (new output, a fault)."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def stop(self):
        self._stopping.set()
        self.wake()
        self._thread.join(5)
        self._destroy()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def transcript(self):
        """The recent traffic as text: '>' lines from the host, '<' lines from the modem."""
        with self._lock:
            return "".join(self._transcript)

    # -- the pty -----------------------------------------------------------------------------

    def _create(self):
        master, slave = pty.openpty()
        tty.setraw(slave)
        self.device = os.ttyname(slave)
        os.close(slave)              # no slave fd of ours: POLLHUP then says nobody has it open
        os.set_blocking(master, False)
        self.master = master
        self._open = False
        replace_link(self.link, self.device)
        log.info("simulated modem at %s (%s)", self.link, self.device)

    def _destroy(self):
        if self.master is not None:
            try:
                os.close(self.master)
            except OSError:
                pass
            self.master = None
        try:
            if os.readlink(self.link) == self.device:
                os.unlink(self.link)
        except OSError:
            pass

    def _disappear(self, seconds):
        log.info("simulated modem: port gone for %.1fs", seconds)
        self._destroy()
        self._inbound.clear()
        self._out.clear()
        self.modem.hangup()
        if self._stopping.wait(seconds):
            return
        self.modem.power_cycle()     # a USB modem that comes back has rebooted
        self._create()

    # -- the pump ----------------------------------------------------------------------------

    def _run(self):
        try:
            while not self._stopping.is_set():
                seconds = self.modem.take_disappear()
                if seconds:
                    self._disappear(seconds)
                    continue
                self._step()
        except Exception:       # the pump must not die silently
            log.exception("simulated modem pump failed")
            raise

    def _step(self):
        now = time.monotonic()
        timeout = 0.05
        timer = self.modem.next_timer()
        if timer is not None:
            timeout = min(timeout, timer)
        if self._inbound:
            timeout = min(timeout, self._inbound[0][0] - now)
        writing = self._open and self._out
        if writing and not self._out_blocked:
            timeout = min(timeout, self._next_write() - now)
        readers = [self._wake_r] + ([self.master] if self._open else [])
        writers = [self.master] if writing and self._out_blocked else []
        readable, writable = _wait(readers, writers, max(0.0, timeout))
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        if writable:
            self._out_blocked = False
        self._check_open()
        if self._open:
            self._read()
        arrived = self._feed_due()
        output = self.modem.data_to_send()
        if output:
            if self._open:
                if not self._out:       # the line was idle: these bytes start on it now
                    self._out_clock = max(self._out_clock, arrived or time.monotonic())
                self._out += output
                self._trace("<", output)
                del self._out[:-MAX_PENDING_OUTPUT]
        if self._open:
            self._write()

    def _check_open(self):
        """Notice a program opening or closing the port (POLLHUP on the master: nobody has it)."""
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        hung_up = any(ev & select.POLLHUP for _, ev in poller.poll(0))
        if hung_up and self._open:
            self._read()                 # what it wrote before closing still counts
            self._open = False
            self._out.clear()
            self.modem.hangup()
            log.debug("simulated modem: port closed")
        elif not hung_up and not self._open:
            self._open = True
            self._in_free = self._out_clock = time.monotonic()
            self._out_blocked = False
            log.debug("simulated modem: port opened")

    def _read(self):
        while True:
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            self._trace(">", data)
            if self.on_wire is not None:
                self.on_wire(">", data, time.monotonic())
            if self.byte_time:
                now = time.monotonic()
                self._in_free = max(now, self._in_free) + len(data) * self.byte_time
                self._inbound.append((self._in_free, data))
            else:
                self.modem.feed(data)

    def _feed_due(self):
        """Hand the modem the input whose last byte has arrived; returns when that was (None
        if nothing was due), so that its answer starts on the line then: the simulator's own
        processing time is not line time (a modem answers "OK" in microseconds)."""
        now = time.monotonic()
        arrived = None
        while self._inbound and self._inbound[0][0] <= now:
            arrived, data = self._inbound.popleft()
            self.modem.feed(data)
        return arrived

    def _slice(self):
        """How many bytes the next write to the host carries."""
        if not self.byte_time:
            return len(self._out)
        return min(len(self._out), max(1, int(self.WRITE_SLICE / self.byte_time)))

    def _next_write(self):
        """When the last byte of the next slice has crossed the line."""
        return self._out_clock + self._slice() * self.byte_time

    def _write(self):
        while self._out and not self._out_blocked:
            count = self._slice()
            if self.byte_time and time.monotonic() < self._next_write() - 1e-6:
                return
            try:
                written = os.write(self.master, self._out[:count])
            except BlockingIOError:
                self._out_blocked = True
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if self.on_wire is not None:
                self.on_wire("<", bytes(self._out[:written]), time.monotonic())
            del self._out[:written]
            self._out_clock += written * self.byte_time
            if written < count:
                self._out_blocked = True

    def _trace(self, direction, data):
        text = "%s %r\n" % (direction, data)
        with self._lock:
            self._transcript.append(text)
            self._transcript_size += len(text)
            while self._transcript_size > self._transcript_max and len(self._transcript) > 1:
                self._transcript_size -= len(self._transcript.popleft())
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %r", direction, data)

"""Runs a `SimulatedModem` on a pseudo-terminal, with an optional HTTP control API.

Any modem software (gammu, minicom, the bridge) opens the symlink as if it were /dev/ttyUSB0.
One thread pumps bytes between the pty and the modem; it can pace them at a baud rate (ten bits
a byte, both ways: the modem sees a command when its last byte would have arrived, the host gets
the bytes of an answer as they would have finished arriving) and makes the "disappear" fault
real: the pty is closed and the link removed, then a new pty comes back at the same link, like a
USB modem re-enumerating.  Output written while no program has the port open is dropped, as a
USB modem's is.

The control API (stdlib http.server, loopback only, no authentication) plays the network:

    POST /inbound  {"from": "+255700000001", "text": "..."}   an SMS arrives (long: in parts)
                   {"pdu": "0791..."}                          a raw PDU arrives, as is
    GET  /sent     what the modem was asked to send, one entry per SMS (parts joined)
    DELETE /sent   forget it
    GET  /faults   POST /faults {"name": value, ...}           see simulator.Faults
    GET  /state    storage, settings, queues
    POST /reset    power-cycle the modem (storage kept)
"""

import argparse
import errno
import ipaddress
import json
import logging
import math
import os
import pty
import select
import signal
import socket
import sys
import threading
import time
import tty
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from . import pdu
from .simulator import SimulatedModem

__all__ = ["Simulator", "start_simulator", "main", "loopback_address"]

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


# -- the control API ------------------------------------------------------------------------

def loopback_address(control):
    """'127.0.0.1:13014', '[::1]:0', 'localhost:8080' -> (host, port, family), loopback only."""
    if isinstance(control, (tuple, list)):
        host, port = control
    else:
        parts = urlsplit("//" + str(control))
        host, port = parts.hostname, parts.port
    if not host or port is None:
        raise ValueError("control address must be HOST:PORT, not %r" % (control,))
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for family, _, _, _, address in infos:
        if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
            raise ValueError("the control API has no authentication: it listens on a loopback "
                             "address only, not %s" % host)
    return infos[0][4][0], int(port), infos[0][0]


class _Handler(BaseHTTPRequestHandler):
    server_version = "gsmbridge-simulator"
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: without TCP_NODELAY the body waits for
    # the client's delayed ACK (40 ms), which would cap a kept-alive client at 25 requests/s.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        log.debug("control: " + format, *args)

    # routes

    def do_GET(self):
        sim = self.server.simulator
        if self.path == "/sent":
            return self._reply(200, sim.modem.sent_messages())
        if self.path == "/faults":
            return self._reply(200, sim.modem.faults())
        if self.path == "/state":
            return self._reply(200, sim.modem.state())
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def do_POST(self):
        sim = self.server.simulator
        body = self._body()
        if body is None:
            return
        if self.path == "/inbound":
            return self._inbound(sim, body)
        if self.path == "/faults":
            try:
                sim.modem.set_faults(**body)
            except (TypeError, ValueError) as exc:
                return self._reply(400, {"error": str(exc)})
            return self._reply(200, sim.modem.faults())
        if self.path == "/reset":
            sim.modem.power_cycle()
            return self._reply(200, sim.modem.state())
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def do_DELETE(self):
        if self.path == "/sent":
            self.server.simulator.modem.clear_sent()
            return self._reply(200, [])
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def _inbound(self, sim, body):
        if "pdu" in body:
            raw = body["pdu"]
            if not isinstance(raw, str) or not raw or len(raw) % 2 or \
                    any(c not in "0123456789abcdefABCDEF" for c in raw):
                return self._reply(400, {"error": "pdu must be a string of hex digits"})
            return self._reply(200, sim.modem.deliver_pdu(raw))
        sender, text = body.get("from"), body.get("text")
        if not isinstance(sender, str) or not sender or not isinstance(text, str):
            return self._reply(400, {"error": 'give "from" (a number or name) and "text"'})
        encoding = body.get("encoding")
        if encoding not in (None, "gsm7", "ucs2"):
            return self._reply(400, {"error": 'encoding is "gsm7" or "ucs2"'})
        try:
            return self._reply(200, sim.modem.deliver(sender, text, encoding=encoding))
        except (pdu.TooLong, ValueError) as exc:
            return self._reply(400, {"error": str(exc)})

    # plumbing

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._reply(400, {"error": "the body must be a JSON object"})
            return None
        if not isinstance(body, dict):
            self._reply(400, {"error": "the body must be a JSON object"})
            return None
        return body

    def _reply(self, status, payload):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, control, simulator):
        host, port, family = loopback_address(control)
        self.address_family = family
        self.simulator = simulator
        super().__init__((host, port), _Handler)


class Simulator:
    """A running simulated modem: `.modem`, `.link`, `.control_url` (None without control).

    Use as a context manager, or call `stop()`.
    """

    def __init__(self, link, control=None, baudrate=None, **options):
        self.modem = SimulatedModem(**options)
        self.server = None
        self.control_url = None
        if control:
            self.server = _ControlServer(control, self)
            host, port = self.server.server_address[:2]
            self.control_url = "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)
        try:
            self.port = PtyPort(self.modem, link, baudrate)
        except BaseException:
            if self.server:
                self.server.server_close()
            raise
        self.link = self.port.link
        if self.server:
            self._server_thread = threading.Thread(
                target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                name="simulator-control", daemon=True)
            self._server_thread.start()

    def transcript(self):
        return self.port.transcript()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.port.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_simulator(link_path, control=None, baudrate=None, **options):
    """Start a simulated modem on a pty linked at `link_path`; returns a running `Simulator`.

    control: "HOST:PORT" (loopback only; port 0 picks a free one) for the HTTP control API.
    baudrate: pace the bytes as a serial line at that speed would.  Other options go to
    `SimulatedModem` (pin, capacity, network_delay, ... and any fault).
    """
    return Simulator(link_path, control=control, baudrate=baudrate, **options)


def main(argv=None):
    """`gsmbridge simulate --link PATH [--control HOST:PORT] [--baud N] [--pin PIN]`."""
    parser = argparse.ArgumentParser(
        prog="gsmbridge simulate",
        description="Run a simulated GSM modem (TS 27.005/27.007) on a pseudo-terminal.")
    parser.add_argument("--link", required=True, help="path of the symlink to the pty")
    parser.add_argument("--control", help="HOST:PORT of the HTTP control API (loopback only)")
    parser.add_argument("--baud", type=int, help="pace the bytes at this baud rate")
    parser.add_argument("--pin", help="the SIM asks for this PIN")
    parser.add_argument("--capacity", type=int, default=30, help="SIM storage slots (30)")
    parser.add_argument("--first-index", type=int, default=1, choices=(0, 1),
                        help="first storage index (1; some Huawei modems count from 0)")
    parser.add_argument("--network-delay", type=float, default=0.0,
                        help="seconds the network takes per submitted part (0)")
    parser.add_argument("--report-delay", type=float, default=1.0,
                        help="seconds before a requested status report arrives (1)")
    parser.add_argument("--cnma-timeout", type=float, default=12.0,
                        help="seconds the network waits for AT+CNMA after +CMT (12)")
    parser.add_argument("--redelivery-delay", type=float, default=10.0,
                        help="seconds before the network retries an SMS it could not deliver (10)")
    parser.add_argument("--seed", type=int, help="seed for the random faults")
    parser.add_argument("--trace", action="store_true", help="log every byte both ways")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.trace else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        sim = start_simulator(args.link, control=args.control, baudrate=args.baud, pin=args.pin,
                              capacity=args.capacity, first_index=args.first_index,
                              network_delay=args.network_delay, report_delay=args.report_delay,
                              cnma_timeout=args.cnma_timeout,
                              redelivery_delay=args.redelivery_delay, seed=args.seed)
    except (OSError, ValueError) as exc:
        print("gsmbridge simulate: %s" % exc, file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print("simulated modem at %s%s" % (
        sim.link, " control %s" % sim.control_url if sim.control_url else ""), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

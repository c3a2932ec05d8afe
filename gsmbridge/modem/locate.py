"""Finding a modem by its IMEI instead of by its path: ``port = imei:356938035643809``.

USB modems get their /dev/ttyUSBn in the order the kernel finds them, which changes with a
replug, a reboot or a hub; two identical dongles even share their /dev/serial/by-id/ name but
for a serial number that some do not have.  The IMEI is the modem's own: each candidate port is
opened, asked ``AT+CGSN``, and the one that answers with the IMEI is taken.  Candidates are
``/dev/serial/by-id/*``, then ``/dev/ttyUSB*`` and ``/dev/ttyACM*``, or the glob after an ``@``
(``imei:356938035643809@/dev/ttyUSB*``); each device once, however many names it has.

A port a modem of this process holds is never probed (the driver registers the ports it opens
with `hold`), nor one another program holds (the port is opened exclusively, and that fails).
One search runs at a time in a process, so two modems looking for themselves do not each hold
the port the other is after.  The driver looks again at every boot, so a modem that came back
under another name after a USB reset is found there.
"""

import glob
import logging
import os
import re
import threading
import weakref

from .errors import ModemError, ModemGone, ModemTimeout
from .identity import imei as read_imei
from .port import ESC, Port

#: where a modem is looked for when the port names no glob, in this order
CANDIDATES = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")

#: seconds one candidate has to answer AT
PROBE_TIMEOUT = 1.5

PREFIX = "imei:"

_held = {}                      # real path -> the ports of this process that opened it (weak)
_held_lock = threading.Lock()
_search = threading.Lock()

log = logging.getLogger("gsmbridge.modem.locate")


def parse(port):
    """``imei:<IMEI>[@<glob>]`` -> (imei, [globs]); ValueError for anything else."""
    match = re.fullmatch(r"imei:(\d{14,17})(?:@(.+))?", port or "")
    if not match:
        raise ValueError("%r is not imei:<14 to 17 digits>[@<glob>]" % (port,))
    return match.group(1), [match.group(2)] if match.group(2) else list(CANDIDATES)


def hold(path, port):
    """``port`` (a Port) has opened ``path``: no search probes it while the port stays open.

    Held ports are known by weak reference and asked whether they are still open, so a port
    that failed, or a modem dropped without closing, frees its path by itself."""
    if isinstance(path, str) and path.startswith("/"):
        real = os.path.realpath(path)
        with _held_lock:
            _held.setdefault(real, weakref.WeakSet()).add(port)


def release(path, port):
    if isinstance(path, str) and path.startswith("/"):
        real = os.path.realpath(path)
        with _held_lock:
            ports = _held.get(real)
            if ports is not None:
                ports.discard(port)
                if not ports:
                    del _held[real]


def held():
    """The real paths the modems of this process hold open now."""
    with _held_lock:
        return {real for real, ports in _held.items() if any(p.is_open for p in list(ports))}


def candidates(globs):
    """The paths the globs match, in order, each device once, leaving out those held."""
    seen, out = held(), []
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real in seen:
                continue
            seen.add(real)
            out.append(path)
    return out


def probe(path, baudrate=115200, timeout=PROBE_TIMEOUT):
    """The IMEI of the modem at ``path``, or None (not a modem, busy, not answering)."""
    port = Port(path, baudrate, log=log, command_timeout=timeout)
    try:
        port.open()
    except ModemGone as exc:
        log.debug("%s: %s", path, exc)
        return None
    try:
        port.write(ESC)                     # a prompt left over from a previous owner
        for _ in range(2):
            try:
                port.command("AT", timeout=timeout)
                break
            except ModemError:
                port.settle(limit=0.5)
                break
            except ModemTimeout:
                continue
        else:
            return None
        port.settle(limit=0.3)
        return read_imei(port, log)
    except (ModemGone, ModemTimeout) as exc:
        log.debug("%s: %s", path, exc)
        return None
    finally:
        port.close()


def find(port, baudrate=115200, logger=None):
    """The path of the modem ``port`` (``imei:...``) names; ModemGone when none answers so."""
    wanted, globs = parse(port)
    logger = logger or log
    with _search:
        tried = []
        for path in candidates(globs):
            found = probe(path, baudrate)
            tried.append(path)
            if found == wanted:
                logger.info("IMEI %s is the modem at %s", wanted, path)
                return path
        raise ModemGone("no modem answers with IMEI %s (tried %s)" % (
            wanted, ", ".join(tried) if tried else "nothing: %s matches no free port"
            % " ".join(globs)))

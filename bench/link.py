"""The simulated line itself: does it pace both directions at 10 bits a byte?

Before anything is blamed on the bridge, this checks the yardstick. A program of our own (plain
pyserial, no bridge) talks to a fresh simulated modem: modem -> host with AT+CMGL=4 listing a
full SIM (kilobytes of PDUs), host -> modem with AT+CMGS (the PDU is most of the bytes). The
figure is the measured time times the baud rate over the bytes moved: 10.0 is exact, a little
more is the program's and the pump's own overhead, less would mean the line is too fast.
"""

import re
import statistics
import time

import serial

from gsmbridge.codec import pdu

from . import texts
from .bridge import Modem
from .procs import Processes

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n")


def _exchange(port, data, pattern, timeout=30.0):
    """Write `data`, read until `pattern`; (seconds, bytes read)."""
    began = time.monotonic()
    port.write(data)
    buffer = b""
    while not pattern.search(buffer):
        if time.monotonic() - began > timeout:
            raise TimeoutError("no %r after %r" % (pattern.pattern, data[:20]))
        buffer += port.read(port.in_waiting or 1)
    return time.monotonic() - began, buffer


def run(ctx):
    procs = Processes()
    try:
        modem = Modem(procs, ctx.workdir("link"), baud=ctx.baud)
        for i in range(25):                        # stored: the modem's CNMI is off at power-up
            modem.inject("+2557%08d" % i, texts.GSM160)
        port = serial.Serial(modem.link, ctx.baud, timeout=0.05)
        try:
            for command in (b"ATE0\r", b"AT+CMGF=0\r"):
                _exchange(port, command, FINAL)
            listing, listed = [], 0
            for _ in range(ctx.sizes.link_repeats):
                seconds, answer = _exchange(port, b"AT+CMGL=4\r", FINAL)
                listed = len(answer) + len(b"AT+CMGL=4\r")
                listing.append(seconds * ctx.baud / listed)
            hex_pdu, length = pdu.encode_submit("+255700000001", texts.GSM160)
            body = hex_pdu.encode() + b"\x1a"
            sending, sent = [], 0
            for _ in range(ctx.sizes.link_repeats):
                _exchange(port, b"AT+CMGS=%d\r" % length, re.compile(rb"\r\n> "))
                seconds, answer = _exchange(port, body, FINAL)
                sent = len(body) + len(answer)
                sending.append(seconds * ctx.baud / sent)
        finally:
            port.close()
    finally:
        procs.stop_all()
    return {"modem_to_host": {"bytes": listed, "bits_per_byte_min": min(listing),
                              "bits_per_byte_median": statistics.median(listing)},
            "host_to_modem": {"bytes": sent, "bits_per_byte_min": min(sending),
                              "bits_per_byte_median": statistics.median(sending)}}

"""The AT protocol as a sans-I/O state machine: bytes from the modem in, events out.

The engine never touches a port.  The driver asks it for the bytes of a command, writes them
itself, feeds whatever the modem sends back (in any chunking) to ``receive_data`` and pulls
events with ``next_event`` until it gets ``NEED_DATA``::

    engine = Engine()
    port.write(engine.command("AT+CSQ"))
    while True:
        event = engine.next_event()
        if event is NEED_DATA:
            engine.receive_data(port.read(64))
        elif isinstance(event, Final):
            break

A modem mixes three kinds of lines on one wire: the answer to the command in progress
(information lines and one final result), unsolicited result codes (URCs) that may arrive at any
moment -- in the middle of another command's answer too -- and junk (echo, line noise).  The job
here is to tell them apart the way real modems need:

* a line whose prefix is a known URC name (``+CMTI``, ``^RSSI``, ``RING``...) and not the current
  command's own prefix is a URC, whenever it comes;
* ``+CMT``/``+CDS``/``+CBM`` (and the ``+CMGR``/``+CMGL`` headers) carry a second line -- the PDU,
  or the text in text mode -- which belongs to them, even if it begins with "OK";
* the ``"> "`` prompt of ``AT+CMGS`` has no line end after it;
* echo left on after ``ATE0``, ``\\r\\r\\n`` line ends, bytes that are not UTF-8 and stray finals
  while idle are all tolerated, never raised on;
* a ``+CUSD`` reply whose quoted string holds line breaks (a USSD menu) arrives as several lines:
  they are joined (with LF) into one event while the quote stays open (``codec.ussd.incomplete``),
  at most ``MAX_USSD`` characters; a line that is plainly something else (a final result, a known
  URC) ends the joining, and so does the driver, by ``release_partial``, when no more comes;
* ``NO CARRIER``, ``BUSY``, ``NO ANSWER`` and ``NO DIALTONE`` are final results only of a command
  about a call (ATD, ATA, ATO, ATH, AT+CHUP); at any other time ``NO CARRIER`` is a caller who hung
  up, so it is Unsolicited and cannot end an unrelated command.

Line ends: any ``\\r`` or ``\\n`` ends a line and empty lines are dropped, so ``\\r\\n``,
``\\r\\r\\n`` and the bare ``\\r`` after an echo all look alike.  (The price: a text-mode body with
a line break in it arrives as several lines.  We run the modem in PDU mode, where bodies are hex.)

The events are defined in events.py and the tables of what modems say (URC names, final
results) in lines.py; this module holds the states, and everything that moves between them.
"""

import re
from collections import deque

from ..codec.ussd import incomplete as ussd_incomplete
from .events import NEED_DATA, Echo, Final, Noise, Prompt, Response, Unsolicited, UsageError
from .fields import split_params
from .lines import (
    BARE_URCS, CALL_RESULTS, FINAL_RESULTS, HEX, INT, NAMED, URC_NAMES, final_result, pdu_shaped,
    urc_name,
)

__all__ = [
    "Engine", "NEED_DATA", "Response", "Final", "Unsolicited", "Prompt", "Echo", "Noise",
    "UsageError", "URC_NAMES", "FINAL_RESULTS", "split_params",
]


_EOL = re.compile(rb"[\r\n]")
_JUNK = "".join(map(chr, range(0x20))) + "\x7f\ufffd "       # stripped from both ends of a line
_QUIET = " \t\x1a\x1b"                                      # edge bytes not worth a Noise
_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f\ufffd]")             # junk inside a line (tab is fine)
_CMD_PREFIX = re.compile(r"^\s*([+^#*$%][A-Za-z0-9_]+)")

MAX_LINE = 4096   # a PDU line is under 400 characters; longer runs without a line end are noise
MAX_USSD = 4096   # a +CUSD reply joined from its lines is released at this length (codec's MAX_RAW)
MAX_USSD_LINES = 40

# Commands whose answer may be NO CARRIER, BUSY, NO ANSWER or NO DIALTONE (V.250 6.3, 27.007 6.5).
_CALL_COMMAND = re.compile(r"^AT\s*(?:[DAOH]|\+CHUP)", re.IGNORECASE)


class _Command:
    """What the engine remembers about the command in progress."""

    def __init__(self, text, prompt, done_on):
        self.text = text
        self.prompt = prompt          # expects "> "
        self.prompted = False         # "> " seen
        self.body = None              # what followed the prompt, for echo matching
        self.done_on = done_on.upper() if done_on else None
        self.prefixes = set()
        rest = text[2:] if text[:2].upper() == "AT" else text
        for part in rest.split(";"):
            m = _CMD_PREFIX.match(part)
            if m:
                self.prefixes.add(m.group(1).upper())
        m = re.match(r"^AT\+CMGF=([01])$", text.strip(), re.IGNORECASE)
        self.sets_mode = int(m.group(1)) if m else None
        self.about_a_call = _CALL_COMMAND.match(text) is not None

    def is_echo(self, line):
        upper = line.upper()
        return upper == self.text.upper() or (
            self.body is not None and upper == self.body.upper())


class Engine:
    """One modem's AT conversation: at most one command at a time, URCs at any time.

    ``state`` is one of ``IDLE``, ``WAITING`` (command written, waiting for its answer),
    ``PROMPT`` (waiting for "> "), ``AT_PROMPT`` (prompt seen, ``body`` not yet called).
    ``pdu_mode`` follows ``AT+CMGF=<n>`` commands that were answered OK.
    """

    def __init__(self, *, pdu_mode=True):
        self.pdu_mode = pdu_mode
        self._buf = bytearray()
        self._pos = 0             # start of the bytes not yet made into events
        self._scan = 0            # bytes before this (from _pos) hold no line end
        self._events = deque()
        self._cmd = None
        self._held = None         # a header waiting for its second line: Response or Unsolicited
        self._partial = None      # [text, lines] of a +CUSD reply whose quote is still open

    # --- the driver's side ------------------------------------------------------------------

    @property
    def busy(self):
        return self._cmd is not None

    @property
    def state(self):
        cmd = self._cmd
        if cmd is None:
            return "IDLE"
        if cmd.prompt and not cmd.prompted:
            return "PROMPT"
        if cmd.prompt and cmd.body is None:
            return "AT_PROMPT"
        return "WAITING"

    @property
    def current(self):
        """The command in progress ("AT+CSQ"), or None."""
        return self._cmd.text if self._cmd else None

    def command(self, cmd, *, prompt=False, done_on=None):
        """The bytes to write for ``cmd`` ("AT+CSQ" or "+CSQ"); the engine now waits for its answer.

        ``prompt``: the command answers "> " first (AT+CMGS, AT+CMGW).  ``done_on``: a response
        prefix that ends the command by itself, for modems that forget the OK (Wavecom answers
        ``AT+CPIN?`` with ``+CPIN: READY`` alone); an OK that comes later anyway is Noise.
        """
        if self._cmd is not None:
            raise UsageError("command %r while %r is in progress" % (cmd, self._cmd.text))
        cmd = cmd.strip()
        if not cmd.upper().startswith("AT"):
            cmd = "AT" + cmd
        if any(c in cmd for c in "\r\n\x1a\x1b"):
            raise ValueError("control character in AT command %r" % cmd)
        data = (cmd + "\r").encode("ascii")
        self._cmd = _Command(cmd, prompt, done_on)
        return data

    def body(self, text):
        """After ``Prompt``: the bytes of the PDU (or text) followed by Ctrl-Z."""
        cmd = self._cmd
        if cmd is None or not cmd.prompt or not cmd.prompted or cmd.body is not None:
            raise UsageError("body() without a prompt")
        cmd.body = text
        return text.encode("ascii") + b"\x1a"

    def cancel(self):
        """ESC: leave a pending prompt without sending.  The engine goes idle at once; what the
        modem says about it (OK on most, nothing on some) arrives as Noise."""
        self._cmd = None
        self._drop_held_response()
        self.release_partial()
        return b"\x1b"

    def abandon(self):
        """The driver gave up waiting (timeout): forget the command; late answers become Noise
        or, for named lines, Unsolicited."""
        self._cmd = None
        self._drop_held_response()
        self.release_partial()

    @property
    def partial(self):
        """A +CUSD reply is being joined from its lines (its quoted string is still open)."""
        return self._partial is not None

    def release_partial(self):
        """The driver has waited long enough for the rest of a +CUSD reply: hand it over as it
        is (the codec reads an odd number of quotes too).  No-op when none is being joined."""
        if self._partial is not None:
            self._release_ussd()

    def receive_data(self, data):
        """Feed bytes read from the modem, in any chunking."""
        if data:
            self._buf += data

    def next_event(self):
        """The next event, or ``NEED_DATA`` when the buffer holds no whole one."""
        while not self._events:
            if not self._step():
                return NEED_DATA
        return self._events.popleft()

    def body_remaining(self):
        """How many bytes of a PDU line are still to come, as far as the buffer shows: the
        header before it (+CMT, +CDS, +CMGR, +CMGL in PDU mode) gives the TPDU's length in
        octets, the line's first two digits the SMSC field's. None when no such line is being
        received. (Call it after next_event() has taken every whole line.) The port uses it to
        wait for the rest of a line that arrives at the line's pace rather than wake for every
        few bytes of it."""
        held = self._held
        if held is None or not self.pdu_mode:
            return None
        value = held.value if isinstance(held, Unsolicited) else held.line.partition(":")[2]
        length = value.rpartition(",")[2].strip()
        if not length.isdigit():
            return None
        pending = bytes(self._buf[self._pos:]).lstrip(b"\r\n")
        smsc = 0
        if len(pending) >= 2:
            try:
                smsc = int(pending[:2], 16)
            except ValueError:
                return None
        return max(0, 2 * (1 + smsc + int(length)) + 1 - len(pending))   # + 1: its CR

    @property
    def pending_bytes(self):
        """Bytes received and not yet made into events (a partial line), for diagnostics."""
        return bytes(self._buf[self._pos:])

    # --- lines -------------------------------------------------------------------------------

    def _step(self):
        """Turn the next line (or prompt) in the buffer into events; False if there is none."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            if pos:
                del buf[:]
                self._pos = self._scan = 0
            return False
        cmd = self._cmd
        if buf[pos] == 0x3E and cmd is not None and cmd.prompt and not cmd.prompted:   # ">"
            if len(buf) - pos < 2:
                return False
            if buf[pos + 1] == 0x20:
                self._pos = self._scan = pos + 2
                self._prompt()
                return True
        m = _EOL.search(buf, max(self._scan, pos), pos + MAX_LINE + 1)
        if m is None:
            if len(buf) - pos > MAX_LINE:       # no line end in sight: flush as noise
                self._events.append(Noise(bytes(buf[pos:pos + MAX_LINE])))
                self._pos = self._scan = pos + MAX_LINE
                return True
            self._scan = len(buf)
            if pos > 65536:                      # keep the buffer from growing at the front
                del buf[:pos]
                self._scan -= pos
                self._pos = 0
            return False
        end = m.start()
        raw = bytes(buf[pos:end])
        self._pos = self._scan = end + 1
        self._line(raw)
        return True

    def _line(self, raw):
        text = raw.decode("utf-8", "replace")
        clean = text.strip(_JUNK)
        if not clean:
            if raw.strip(b" \t"):
                self._events.append(Noise(raw))
            return
        if self._partial is not None and self._join(clean):
            return
        held = self._held
        if held is not None and self._take_body(held, clean):
            return
        if _BAD.search(clean):
            self._events.append(Noise(raw))
            return
        if clean != text.strip(_QUIET):       # junk at the edges: log it, use the rest
            self._events.append(Noise(raw))
        self._classify(clean, raw)

    def _take_body(self, held, line):
        """Give the held header its second line if this is it; True if the line was used."""
        text_mode = not pdu_shaped(held.value if isinstance(held, Unsolicited)
                                    else held.line.partition(":")[2])
        if not text_mode:
            # PDU mode: the body is hex.  Anything that is plainly something else means the
            # header came without one; a garbled line is still taken (the driver keeps bad PDUs).
            if final_result(line) is not None:
                self._release(None)
                return False
            urc = urc_name(line)
            if urc is not None and not HEX.match(line):
                if isinstance(held, Response) and urc not in ("+CMT", "+CDS", "+CBM"):
                    return False            # a one-line URC inside a listing: keep waiting
                self._release(None)
                return False
        self._release(line)
        return True

    def _join(self, line):
        """The next line of a +CUSD reply being joined; False if the line is something else."""
        if final_result(line) is not None or urc_name(line) is not None or _BAD.search(line):
            self._release_ussd()            # the reply ended without closing its quote
            return False
        self._partial[0] += "\n" + line
        self._partial[1] += 1
        text, lines = self._partial
        if not ussd_incomplete(text) or len(text) >= MAX_USSD or lines >= MAX_USSD_LINES:
            self._release_ussd()
        return True

    def _release_ussd(self):
        """The joined +CUSD reply: the answer of AT+CUSD if that is in progress, else a URC."""
        text = self._partial[0]
        self._partial = None
        cmd = self._cmd
        if cmd is not None and "+CUSD" in cmd.prefixes:
            self._events.append(Response(text))
        else:
            self._events.append(Unsolicited("+CUSD", text.partition(":")[2].strip(), None,
                                            text))

    def _release(self, body):
        held, self._held = self._held, None
        if isinstance(held, Response):
            self._events.append(Response(held.line, body))
        else:
            self._events.append(Unsolicited(held.name, held.value, body, held.line))

    def _drop_held_response(self):
        if isinstance(self._held, Response):
            self._events.append(Noise(self._held.line.encode("utf-8", "replace")))
            self._held = None

    def _classify(self, line, raw):
        cmd = self._cmd
        if cmd is not None and cmd.is_echo(line):
            self._events.append(Echo(line))
            return
        if cmd is not None and cmd.prompt and not cmd.prompted and line == ">":
            self._prompt()
            return
        final = final_result(line)
        if final is not None and final[0] in CALL_RESULTS and (
                cmd is None or not cmd.about_a_call):
            self._events.append(Unsolicited(line.upper(), "", None, line))   # a caller hung up
            return
        if final is not None:
            if cmd is None:
                self._events.append(Noise(raw))     # a stray OK, or one after done_on
            else:
                self._finish(final[0], final[1], line)
            return
        m = NAMED.match(line)
        if m:
            name, value = m.group(1).upper(), (m.group(2) or "").strip()
            if name == "+CUSD" and ussd_incomplete(line):
                self._partial = [line, 1]     # a menu: its other lines follow
                return
            if cmd is not None and name in cmd.prefixes:
                self._response(name, value, line)
            elif cmd is None or name in URC_NAMES:
                self._unsolicited(name, value, line)
            else:
                self._response(name, value, line)   # unknown prefix: part of the answer
            return
        if line.upper() in BARE_URCS:
            self._events.append(Unsolicited(line, "", None, line))
        elif cmd is not None:
            self._response(None, "", line)
        else:
            self._events.append(Noise(raw))

    def _response(self, name, value, line):
        cmd = self._cmd
        if name in ("+CMGR", "+CMGL") and self._wants_body(name, value):
            self._held = Response(line)
        else:
            self._events.append(Response(line))
        if cmd.done_on and line.upper().startswith(cmd.done_on):
            if self._held is not None:
                self._release(None)
            self._finish("OK", None, "")

    def _wants_body(self, name, value):
        """Does this +CMGR/+CMGL header have a second line?"""
        parts = split_params(value)
        if pdu_shaped(value):
            return parts[-1].strip() != "0"
        # text mode: a status report is one line; its <fo> (a number) stands where a deliver
        # or submit has an address (a quoted string)
        where = 1 if name == "+CMGR" else 2
        return not (len(parts) > where and INT.match(parts[where]))

    def _unsolicited(self, name, value, line):
        two_lines = name in ("+CMT", "+CBM") or (name == "+CDS" and pdu_shaped(value))
        if two_lines:
            if self._held is not None:
                self._release(None)
            self._held = Unsolicited(name, value, None, line)
        else:
            self._events.append(Unsolicited(name, value, None, line))

    def _prompt(self):
        self._cmd.prompted = True
        self._events.append(Prompt())

    def _finish(self, kind, code, line):
        if isinstance(self._held, Response):
            self._release(None)
        if self._partial is not None:
            self._release_ussd()
        cmd, self._cmd = self._cmd, None
        if kind == "OK" and cmd.sets_mode is not None:
            self.pdu_mode = cmd.sets_mode == 0
        self._events.append(Final(kind, code, line, cmd.text))

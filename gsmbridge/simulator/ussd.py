"""The simulated network's USSD service, and AT+CUSD (TS 27.007 section 7.15) the ways real
modems answer it.

``AT+CUSD=1,"<str>"[,<dcs>]`` sends a request, ``AT+CUSD=2`` ends a session, ``AT+CUSD=<n>``
alone switches the +CUSD result code on (1) or off (0, as after power-up).  The network answers
from a menu: a tree of codes (``*100#``) whose nodes hold a text, a status and, for a menu, the
answers it takes (``"1"``, ``"2"``).  A node with options comes with ``<m>`` 1 (the network waits;
it gives up after ``session_timeout`` seconds with ``+CUSD: 2``); a node may also end the
session (``"status": 2``), refuse (4) or time out (5) with no text.  Unknown codes and answers
get ``+CUSD: 4``.  ``{balance}``, ``{currency}`` and ``{number}`` in a text are filled in.

Three styles of modem:

* ``text``: the standard one.  The request and the reply are in the TE character set of
  AT+CSCS (UCS-2 hex under "UCS2", still with dcs 15, as real modems do), dcs 15; a menu's line
  breaks stay inside the quotes, so the reply spans lines on the wire.
* ``ucs2``: the network answers in UCS-2 and the modem hands it over as hex with dcs 72.
* ``packed``: a Huawei E1550/E173/E171.  The request must be packed GSM 7-bit hex
  (``AA180C3602`` for ``*100#``) and the reply comes packed the same way, dcs 15.  A request
  that is not packed hex is answered ERROR, as those modems do; one that is hex but was never
  packed reaches the network as the garbage it unpacks to.

The reply comes ``delay`` seconds after the request as a +CUSD result code after the OK, or,
with ``early``, before the OK: the modem holds the command until the network answered (input
waits meanwhile, as during a slow +CMGS).  A +CUSD result code goes through the network's notice
queue (network.py): never inside another command's answer, held while an SMS command is in
flight.
"""

import math

from ..codec import gsm7
from ..codec import ussd as codec
from . import render
from .command import Error, Later, cme, integer, registrar, split_args, unquote

EXTENDED = {}
extended = registrar(EXTENDED)

STYLES = ("text", "ucs2", "packed")

#: the menus of the simulated network (override with the ``ussd_menu`` option or POST /ussd)
DEFAULT_MENU = {
    "*100#": {"text": "1. Balance\n2. Bundles", "options": {
        "1": {"text": "Your balance is {balance} {currency}"},
        "2": {"text": "Bundles:\n1. Daily 500MB\n2. Weekly 2GB", "options": {
            "1": {"text": "You have bought Daily 500MB."},
            "2": {"text": "You have bought Weekly 2GB."}}}}},
    "*102#": {"text": "Your balance is {balance} {currency}"},
    "*103#": {"status": 2},          # the network ends the session at once, without a text
    "*104#": {"status": 5},          # the network never answers: the modem's timer runs out
    "*106#": {"text": "Your number is {number}"},
}

MAX_NODES = 500          # a menu from the control API is bounded: it is someone else's input
MAX_DEPTH = 10
MAX_TEXT = 182           # a USSD-String: 182 GSM 7-bit characters
MAX_REQUESTS = 1000      # requests kept for GET /ussd/requests
MAX_DELAY = 600.0


def check_menu(menu):
    """A menu as given (JSON-shaped) checked and normalised; ValueError saying what is wrong.

    ``{code: node}``; a node is a text (shorthand for ``{"text": ...}``) or an object with
    ``text``, ``status`` (0..5), ``options`` (``{answer: node}``) and ``delay`` (seconds).
    """
    count = [0]

    def node(value, where, depth):
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ValueError("a menu has at most %d nodes" % MAX_NODES)
        if depth > MAX_DEPTH:
            raise ValueError("a menu is at most %d levels deep" % MAX_DEPTH)
        if isinstance(value, str):
            value = {"text": value}
        if not isinstance(value, dict):
            raise ValueError("%s: a node is a text or an object" % where)
        unknown = set(value) - {"text", "status", "options", "delay"}
        if unknown:
            raise ValueError("%s: unknown key %s" % (where, sorted(unknown)[0]))
        out = {}
        text = value.get("text")
        if text is not None:
            if not isinstance(text, str) or len(text) > MAX_TEXT:
                raise ValueError("%s: text is a string of at most %d characters" % (where,
                                                                                 MAX_TEXT))
            out["text"] = text
        options = value.get("options")
        if options is not None:
            out["options"] = level(options, where, depth + 1)
        status = value.get("status", 1 if out.get("options") else 0)
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= 5:
            raise ValueError("%s: status is 0..5" % where)
        if status == 1 and not out.get("options"):
            raise ValueError("%s: status 1 (a menu) needs options" % where)
        out["status"] = status
        if "delay" in value:
            out["delay"] = seconds(value["delay"], "%s: delay" % where)
        return out

    def level(value, where, depth):
        if not isinstance(value, dict):
            raise ValueError("%s: a menu is an object of codes" % where)
        out = {}
        for code, child in value.items():
            if not isinstance(code, str) or not code or len(code) > MAX_TEXT:
                raise ValueError("%s: a code is a non-empty string" % where)
            out[code] = node(child, "%s %s" % (where, code) if where else code, depth)
        return out

    return level(menu, "", 0)


def seconds(value, name, high=MAX_DELAY):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0 <= value <= high or math.isnan(value):
        raise ValueError("%s is a number of seconds from 0 to %g" % (name, high))
    return float(value)


class UssdService:
    """The network's USSD side and the modem's +CUSD state (see the module's docstring).

    Owned by a `SimulatedModem` and used under its lock.
    """

    def __init__(self, modem, *, style="text", early=False, delay=0.2, menu=None,
                 balance=1234.5, currency="TZS", session_timeout=30.0):
        self.modem = modem
        self.style = "text"
        self.early = False
        self.delay = 0.2
        self.balance = 0.0
        self.currency = "TZS"
        self.session_timeout = 30.0
        self.menu = check_menu(DEFAULT_MENU)
        self.configure(style=style, early=early, delay=delay, balance=balance,
                       currency=currency, session_timeout=session_timeout,
                       **({"menu": menu} if menu is not None else {}))
        self.requests = []
        self.presentation = 0     # <n>: +CUSD result codes shown (1) or not (0)
        self.session = None       # the menu node waiting for the user's answer
        self._generation = 0      # bumped by every request, cancel and reset: stale timers see it

    # -- settings ----------------------------------------------------------------------------

    def configure(self, **values):
        """Change settings (style, early, delay, balance, currency, session_timeout, menu);
        all are checked before any is set.  ValueError naming the first bad one."""
        checked = {}
        for name, value in values.items():
            if name == "style":
                if value not in STYLES:
                    raise ValueError("style is one of %s" % ", ".join(STYLES))
            elif name == "early":
                if not isinstance(value, bool):
                    raise ValueError("early is true or false")
            elif name == "delay":
                value = seconds(value, "delay")
            elif name == "session_timeout":
                value = seconds(value, "session_timeout", 3600.0)
            elif name == "balance":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                        not math.isfinite(value) or abs(value) >= 1e12:
                    raise ValueError("balance is a number")
                value = float(value)
            elif name == "currency":
                if not isinstance(value, str) or not value.isalnum() or len(value) > 8:
                    raise ValueError("currency is a short code such as TZS")
            elif name == "menu":
                try:
                    value = check_menu(value)
                except ValueError as exc:
                    raise ValueError("menu %s" % exc) from None
            else:
                raise ValueError("unknown USSD setting %r" % name)
            checked[name] = value
        for name, value in checked.items():
            setattr(self, name, value)

    def describe(self):
        """The settings and the session, JSON-ready (GET /ussd)."""
        return {"style": self.style, "early": self.early, "delay": self.delay,
                "balance": self.balance, "currency": self.currency,
                "session_timeout": self.session_timeout, "presentation": self.presentation,
                "session": self.session.get("text") if self.session else None,
                "pending": self._pending(), "menu": self.menu}

    def defaults(self):
        """ATZ, AT&F and power-up: result codes off."""
        self.presentation = 0

    def reset(self):
        """The modem restarted: its session and any reply on the way are gone."""
        self._generation += 1
        self.session = None
        self.modem.withdraw("ussd")

    # -- requests ----------------------------------------------------------------------------

    def request(self, raw, dcs):
        """AT+CUSD=1,<raw>,<dcs>: line groups now, or a `Later` in the early style."""
        modem = self.modem
        if modem._sim_busy():
            raise cme(14)
        if modem._pin_state != "READY":
            raise cme(11 if modem._pin_state == "SIM PIN" else 12)
        if not modem._registered():
            raise cme(30)                    # no network service
        if self._pending():
            raise cme(3)                     # one request at a time
        code = self._read(raw)
        self._generation += 1
        status, text, delay = self._answer(code)
        self._record(code=code, raw=raw, dcs=dcs, status=status, reply=text)
        if status == 1:
            generation = self._generation
            modem._schedule(delay + self.session_timeout,
                            lambda: self._session_expired(generation))
        lines = [self.result_line(status, text)] if self.presentation else None
        if self.early:
            return Later(delay, lambda: [lines] if lines else [])
        if lines:
            modem.notice(lines, "ussd", delay)
        return []

    def cancel(self):
        """AT+CUSD=2: the session ends, a reply on its way is dropped."""
        self._record(cancel=True)
        self.reset()

    def _read(self, raw):
        """The request's text: packed hex for a Huawei, else the TE character set."""
        if self.style == "packed":
            try:
                code = codec.unpack(raw)
            except codec.UssdError:
                raise Error() from None     # not packed: ERROR, as those modems answer
        elif self.modem.cscs == "UCS2":
            try:
                code = bytes.fromhex(raw).decode("utf-16-be")
            except ValueError:
                raise cme(4) from None
        elif self.modem.cscs == "GSM":
            code = gsm7.decode([ord(ch) & 0x7F for ch in raw])
        else:
            code = raw
        if not code:
            raise cme(4)
        if len(code) > MAX_TEXT:
            raise cme(24)                    # text string too long
        return code

    def _answer(self, code):
        """The network's answer to `code`: (status, text or None, delay)."""
        if self.session is not None:
            node = self.session.get("options", {}).get(code)
        else:
            node = self.menu.get(code)
        self.session = None
        if node is None:
            return 4, None, self.delay
        status = node["status"]
        if status == 1:
            self.session = node
        text = node.get("text")
        if text is not None:
            text = (text.replace("{balance}", "%.2f" % self.balance)
                    .replace("{currency}", self.currency)
                    .replace("{number}", self.modem.identity.get("own_number") or "unknown"))
        return status, text, node.get("delay", self.delay)

    def result_line(self, status, text):
        """``+CUSD: <m>[,<str>,<dcs>]`` as this style of modem writes it."""
        if text is None:
            return "+CUSD: %d" % status
        if self.style == "ucs2":
            return '+CUSD: %d,"%s",72' % (status, text.encode("utf-16-be").hex().upper())
        if self.style == "packed":
            septets = "".join(ch if gsm7.is_gsm7(ch) else "?" for ch in text)
            while gsm7.septet_length(septets) > codec.MAX_SEPTETS:
                septets = septets[:-1]
            return '+CUSD: %d,"%s",15' % (status, codec.pack(septets))
        return '+CUSD: %d,"%s",15' % (status, render.te_string(self.modem, text))

    def _session_expired(self, generation):
        """Nobody answered the menu: the network releases the session."""
        if generation != self._generation or self.session is None:
            return
        self.session = None
        self._record(expired=True)
        if self.presentation:
            self.modem.notice(["+CUSD: 2"], "ussd")

    def _pending(self):
        """A reply is on its way (written when it falls due and the line is free)."""
        return any(getattr(item, "owner", None) == "ussd" for item in self.modem._network)

    def _record(self, **entry):
        entry["at"] = self.modem._now().isoformat()
        entry["style"] = self.style
        self.requests.append(entry)
        del self.requests[:-MAX_REQUESTS]


@extended("+CUSD")
def _cusd(modem, op, args):
    service = modem.ussd
    if op == "test":
        return [["+CUSD: (0-2)"]]
    if op == "read":
        return [["+CUSD: %d" % service.presentation]]
    if op != "set":
        raise Error()
    values = split_args(args)
    if len(values) > 3:
        raise Error()
    n = integer(values[0], 0, 2, default=0)
    if n == 2:
        service.cancel()
        return []
    service.presentation = n
    if len(values) < 2 or values[1] == "":
        return []
    dcs = integer(values[2], 0, 255, default=15) if len(values) == 3 else 15
    return service.request(unquote(values[1]), dcs)

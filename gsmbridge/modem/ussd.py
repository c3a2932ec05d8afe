"""``Ussd``: USSD requests (AT+CUSD, TS 27.007 section 7.15) the ways real modems take and answer
them.

A request is ``AT+CUSD=1,"<str>",15``: always ``<n>`` 1, so that the reply comes as a +CUSD
result code.  The reply comes one of two ways, and this part takes either:

* as a result code *after* the OK, 5 to 20 seconds later on real networks: the port hands it to
  ``unsolicited`` whenever it comes, in the middle of another command too, so the caller sends
  SMS meanwhile and asks ``answer()`` now and then;
* as an information line of AT+CUSD itself, *before* the OK (some modems hold the command until
  the network answered): then ``start`` has the answer at once.

What can go wrong, and what it becomes (``UssdAnswer.status``): ``+CUSD: 0`` is "done" and
``1`` "more" (a menu: the network waits for the next answer, in the same session); ``2`` is the
network ending the session -- with the actual answer in it ("done"), or with nothing, or just
"Initiating Release" ("failed"); ``3`` another local client answered, ``4`` not supported (a wrong
code), other codes some modems invent (6 has been seen): "failed"; ``5``, the network's own
time-out, and no reply within ``timeout``: "timeout".  A Quectel EC25 answers OK and then
``+CME ERROR: 100`` when the request failed: an error result that comes while the request waits
is its failure.

How the string is written is per modem (``encoding``): "text" in the TE character set (AT+CSCS,
read here, so that replies decode right), "ucs2" (AT+CSCS="UCS2" around each request), "packed"
(packed GSM 7-bit hex both ways, as Huawei E160/E17x/E15xx want whatever AT+CSCS says), or
"auto": packed for a Huawei (AT+CGMI), else text, and packed after all when a modem refuses a
text request (then replies are packed too); the replies of a modem not known to pack are judged
by the codec (``codec.ussd.looks_packed``).  ``AT+CUSD=2`` ends a session; some Huawei firmware
refuses it, which is harmless.
"""

import time
from dataclasses import dataclass

from ..codec import ussd as codec
from .errors import ModemError, ModemTimeout
from .fields import after_colon, unquote
from .lines import final_result

ENCODINGS = ("auto", "text", "packed", "ucs2")

#: texts of a +CUSD: 2 that only say the session was released, not what the network answered
RELEASE_NOTICES = frozenset(["initiating release", "release", "ussd release",
                             "session released"])

#: refusals of a request in text after which "auto" tries it packed: ERROR, and the +CME ERRORs
#: for an operation not allowed, not supported or unknown
_NOT_TAKEN = frozenset([("ERROR", None), ("CME", 3), ("CME", 4), ("CME", 100)])

#: the "failed" answers' words, by <m>
_FAILED = {
    2: "the network ended the session without an answer",
    3: "another client of the modem answered",
    4: "the network does not support this request (a wrong code?)",
}


@dataclass(frozen=True)
class UssdAnswer:
    """What became of a request: ``status`` "done", "more" (a menu: answer it with another
    request in the same session), "failed" or "timeout"; ``text`` the network's text (None when
    it sent none); ``error`` why it failed or timed out; ``reply`` the +CUSD as decoded (None
    when no +CUSD came)."""
    status: str
    text: str | None = None
    error: str | None = None
    reply: codec.Reply | None = None

    @property
    def session_open(self):
        return self.status == "more"


def outcome(reply):
    """A decoded +CUSD -> `UssdAnswer` (see the module's docstring)."""
    text = reply.text
    if reply.status == 0:
        return UssdAnswer("done", text, None, reply)
    if reply.status == 1:
        return UssdAnswer("more", text, None, reply)
    if reply.status == 2 and text and text.strip().lower() not in RELEASE_NOTICES:
        return UssdAnswer("done", text, None, reply)
    if reply.status == 5:
        return UssdAnswer("timeout", text, "the network timed out", reply)
    error = _FAILED.get(reply.status, "the modem answered +CUSD: %d" % reply.status)
    return UssdAnswer("failed", text, error, reply)


class Ussd:
    """USSD on ``port``: ``start`` a request, then ``answer()`` until it comes; ``cancel``.

    ``timeout``: how long a request waits for its reply (real networks take 5 to 20 s).
    One thread, the port's; ``unsolicited`` and ``noise`` are the port's listeners.
    """

    def __init__(self, port, *, log, encoding="auto", timeout=30.0):
        if encoding not in ENCODINGS:
            raise ValueError("ussd encoding is one of %s, not %r" % (", ".join(ENCODINGS),
                                                                     encoding))
        self._port = port
        self._log = log
        self.encoding = encoding
        self.timeout = timeout
        self._charset = None            # AT+CSCS as last read or set; None: not known
        self._restore = None            # the charset to set again once the request is over
        self._packed = True if encoding == "packed" else None   # None: not decided yet
        self._maker = None              # AT+CGMI, read once
        self._deadline = None           # a request waits for its reply until then (monotonic)
        self._answer = None
        self._session_open = False
        self._released = False          # the network ended an open session unasked

    # --- facts ---------------------------------------------------------------------------------

    @property
    def pending(self):
        """A request waits for its reply."""
        return self._deadline is not None

    @property
    def session_open(self):
        """The last answer was a menu, and the network has not ended the session since."""
        return self._session_open

    @property
    def packed(self):
        """True: requests and replies are packed GSM 7-bit; False: never; None: not decided."""
        return self._packed

    @property
    def charset(self):
        return self._charset

    def ended_by_network(self):
        """Whether the network ended an open session (a menu nobody answered) since last asked."""
        released, self._released = self._released, False
        return released

    # --- requests ------------------------------------------------------------------------------

    def start(self, code):
        """Send ``code`` (a service code such as "*102#", or a menu's answer in an open session)
        -> a `UssdAnswer` when it is known at once (the reply came before the OK, or the request
        was refused), else None: ask `answer()` until it comes."""
        if self.pending:
            return UssdAnswer("failed", error="another USSD request is waiting for its reply")
        self._decide()
        charset = self._request_charset()
        answer, refusal = self._send(code, charset, bool(self._packed))
        if refusal in _NOT_TAKEN and self.encoding == "auto" and self._packed is None:
            # Huawei's kin refuse a request that is not packed, whatever AT+CSCS says.
            packed, again = self._send(code, charset, True)
            if again is None:
                self._log.info("%s: a USSD request in text was refused and taken packed: "
                               "packing from now on", self._port.url)
                self._packed = True
                answer = packed
        if answer is not None:
            self._over(answer)
        return answer

    def _send(self, code, charset, packed):
        """One AT+CUSD=1 -> (the answer if known now, else None; (kind, code) of a refusal)."""
        try:
            line = codec.request(code, charset or "IRA", packed=packed)
        except codec.UssdError as exc:
            return UssdAnswer("failed", error="cannot be sent: %s" % exc), None
        self._answer = None
        self._deadline = time.monotonic() + self.timeout    # before: a URC during it counts
        try:
            responses = self._port.command(line, timeout=self.timeout)
        except ModemError as exc:
            self._deadline = None
            return UssdAnswer("failed", error=str(exc)), (exc.kind, exc.code)
        except ModemTimeout:
            self._deadline = None
            return UssdAnswer("timeout", error="no answer to AT+CUSD within %.0f s"
                                               % self.timeout), None
        for response in responses:
            if response.line.upper().startswith("+CUSD"):
                self._reply(response.line)
        answer, self._answer = self._answer, None
        return answer, None

    def answer(self):
        """The answer to the request in flight once it came (or its time ran out: then the
        session is ended with AT+CUSD=2), else None."""
        answer, self._answer = self._answer, None
        if answer is None and self._deadline is not None and time.monotonic() >= self._deadline:
            self.cancel()
            answer = UssdAnswer("timeout", error="no reply within %.0f s" % self.timeout)
        if answer is not None:
            self._over(answer)
        return answer

    def cancel(self):
        """AT+CUSD=2: end the session, forget a reply on its way.  An ERROR is harmless (some
        Huawei firmware refuses the command; the network ends the session in time anyway)."""
        self._deadline = None
        self._answer = None
        self._session_open = False
        try:
            self._port.command("AT+CUSD=2")
        except ModemError as exc:
            self._log.info("%s: AT+CUSD=2: %s (harmless)", self._port.url, exc)
        self._restore_charset()

    def reset(self):
        """The modem was set up again (after a restart): its charset, a request in flight and
        an open session are gone."""
        if self._deadline is not None:
            self._deadline = None
            self._answer = UssdAnswer("failed", error="the modem restarted")
        self._session_open = False
        self._charset = None
        self._restore = None

    # --- what comes unasked --------------------------------------------------------------------

    def unsolicited(self, event):
        if event.name.upper() == "+CUSD":
            self._reply(event.line)

    def noise(self, event):
        """An error result while no command runs, and a request waits: its failure (Quectel)."""
        if self._deadline is None:
            return
        line = event.data.decode("utf-8", "replace").strip()
        final = final_result(line)
        if final is not None and final[0] != "OK" and final[0] in ("ERROR", "CME", "CMS"):
            self._deadline = None
            self._answer = UssdAnswer("failed", error="the modem said %s" % line)
            self._port.wake()

    def _reply(self, line):
        packed = self._packed if self._packed else (False if self.encoding != "auto" else None)
        try:
            reply = codec.parse(line, charset=self._charset or "IRA", packed=packed)
        except codec.UssdError as exc:
            self._log.warning("%s: unreadable USSD reply %r: %s", self._port.url, line[:80], exc)
            if self._deadline is not None:
                self._deadline = None
                self._answer = UssdAnswer("failed", error="unreadable reply: %s" % exc)
                self._port.wake()
            return
        if self._deadline is None:
            if self._session_open and reply.status != 1:
                self._session_open = False
                self._released = True
                self._port.wake()
            self._log.info("%s: USSD reply with no request waiting: +CUSD: %d%s",
                           self._port.url, reply.status,
                           "" if reply.text is None else " (%d characters)" % len(reply.text))
            return
        self._deadline = None
        self._answer = outcome(reply)
        self._port.wake()

    def _over(self, answer):
        """A request is over (or its menu waits): the charset goes back once the session ends."""
        self._session_open = answer.session_open
        if not answer.session_open:
            self._restore_charset()

    # --- how strings are written ---------------------------------------------------------------

    def _decide(self):
        """auto: a Huawei packs (AT+CGMI); for others the replies tell."""
        if self.encoding != "auto" or self._packed is not None or self._maker is not None:
            return
        try:
            lines = self._port.command("AT+CGMI")
        except ModemError:
            lines = []
        self._maker = " ".join(unquote(after_colon(r.line)) if r.line.startswith("+")
                               else r.line for r in lines).lower()
        if "huawei" in self._maker:
            self._packed = True
            self._log.info("%s: a Huawei modem: USSD packed GSM 7-bit", self._port.url)

    def _request_charset(self):
        """The TE character set the request is written in (read with AT+CSCS? once)."""
        if self._charset is None:
            self._charset = "IRA"
            try:
                for response in self._port.command("AT+CSCS?"):
                    if response.line.upper().startswith("+CSCS"):
                        self._charset = unquote(after_colon(response.line)).upper() or "IRA"
            except ModemError as exc:
                self._log.info("%s: AT+CSCS?: %s; taking IRA", self._port.url, exc)
        if self.encoding == "ucs2" and self._charset != "UCS2":
            self._port.command('AT+CSCS="UCS2"')
            self._restore = self._restore or self._charset
            self._charset = "UCS2"
        return self._charset

    def _restore_charset(self):
        """AT+CSCS back to what it was before "ucs2" requests set it (operator names and the
        like are read in it too)."""
        if self._restore is None or self._session_open:
            return
        charset, self._restore = self._restore, None
        try:
            self._port.command('AT+CSCS="%s"' % charset)
            self._charset = charset
        except ModemError as exc:
            self._log.info('%s: AT+CSCS="%s": %s', self._port.url, charset, exc)

"""The SIM's services, run by a modem's worker between two SMS commands: USSD requests from the
store, the airtime balance watch, the SIM's identity, and incoming calls.

The worker owns the modem, so everything here happens in its thread, one AT command at a time,
never in the middle of a send.  A USSD reply takes 5 to 20 seconds; meanwhile the worker goes
on sending and receiving SMS, and `step` picks the reply up when it has come.  One USSD request
runs at a time (the modem has one session): user requests from the store in their order, and
the balance check when none is waiting and no menu is open.

* **USSD**: a request row (store/ussd.py) is taken, sent, and its answer written back, which
  wakes the HTTP view waiting for it.  A menu ("more") keeps its session open on the modem for
  the session's next answer, until that comes, the caller ends it, the network does, or nobody
  answers within SESSION_IDLE (then AT+CUSD=2).  A request for another session first ends the
  open one: a modem has one.
* **Balance**: ``balance_code`` is sent at start and every ``balance_every``; the first amount in
  the reply (or ``balance_pattern``'s match) is the balance, kept in the modem's state for
  /status, /metrics and /health with the reply and the time of the check.
* **Identity**: IMEI, IMSI, ICCID, own number, maker and model, read at every boot into the
  modem's state.
* **Calls**: a call that rings is hung up at once (the driver does that in ``take_calls``), then
  recorded, counted in the modem's state, and queued for ``call_url`` when there is one.
"""

import re
import time

from gsmbridge import metrics
from gsmbridge.modem.driver import UssdAnswer

#: seconds an open menu waits for its next answer before the worker ends the session
SESSION_IDLE = 60.0
#: seconds before a balance check that could not be made is tried again
BALANCE_RETRY = 600.0

#: the first amount in a text: "1,234.50", "1.234,50", "12 345", "-3.5", "100"
AMOUNT = re.compile(r"-?\d{1,3}(?:[ ,.]\d{3})+(?:[.,]\d+)?|-?\d+(?:[.,]\d+)?")


def shown(code, continues=False):
    """A USSD code as log lines show it: the service code, and no more (what follows it may be
    a mobile-money PIN or an amount: *150*01*1234#); a menu's answer only by its length."""
    if continues:
        return "(an answer of %d characters)" % len(code)
    match = re.match(r"[*#]+[0-9]{1,4}", code)
    rest = code[match.end():] if match else code
    return (match.group(0) if match else "") + re.sub(r"[0-9]", "x", rest)


def parse_amount(text):
    """An amount as written in a USSD text -> float, None when there is none.

    Group separators are told from the decimal one as people write them: with both "," and "."
    the last is the decimal point; a lone separator followed by exactly three digits groups
    thousands ("1,234", "12 345"), otherwise it is the decimal point ("12,50", "0.5")."""
    match = AMOUNT.search(text or "")
    if not match:
        return None
    raw = match.group(0)
    negative = raw.startswith("-")
    digits = raw.lstrip("-")
    marks = [(i, ch) for i, ch in enumerate(digits) if ch in " ,."]
    if marks:
        last, mark = marks[-1]
        tail = digits[last + 1:]
        kinds = {ch for _, ch in marks}
        if mark != " " and (len(kinds) > 1 or (len(marks) == 1 and len(tail) != 3)):
            digits = re.sub(r"[ ,.]", "", digits[:last]) + "." + tail
        else:
            digits = re.sub(r"[ ,.]", "", digits)
    try:
        value = float(digits)
    except ValueError:
        return None
    return -value if negative else value


def balance_of(text, pattern=None):
    """The balance in a reply: ``pattern``'s match (its group, if it has one) read as an amount,
    else the first amount in the text.  None when there is none."""
    if pattern:
        match = re.search(pattern, text or "")
        if not match:
            return None
        return parse_amount(match.group(1) if match.groups() else match.group(0))
    return parse_amount(text)


class SimServices:
    """The SIM services of the modem ``name`` (see the module's docstring)."""

    #: seconds an open menu waits for its next answer (tests make it short)
    session_idle = SESSION_IDLE
    #: seconds before a failed balance check is tried again
    balance_retry = BALANCE_RETRY

    def __init__(self, name, store, *, log, balance_code=None, balance_pattern=None,
                 balance_every=21600.0, post_calls=False, clock=time.time):
        self.modem_name = name
        self.store = store
        self.log = log
        self.balance_code = balance_code
        self.balance_pattern = re.compile(balance_pattern) if balance_pattern else None
        self.balance_every = balance_every
        self.post_calls = post_calls
        self.clock = clock
        self._labels = {"modem": name}
        self._modem = None
        self._inflight = None           # {"kind": "request" | "balance", "row": ...}
        self._session = None            # the store session open on the modem
        self._session_idle = None       # monotonic time the open session is ended at
        self._next_balance = 0.0 if balance_code else None   # monotonic; None: never

    # -- the worker's calls ------------------------------------------------------------------

    def started(self, modem):
        """A modem was (re)booted: what was in flight on the one before is lost; read who the
        modem and SIM are."""
        if self._inflight is not None:
            self._finish(UssdAnswer("failed", error="the modem was reopened before the reply "
                                                    "came"))
        if self._session is not None:
            self.store.ussd_session_ended(self._session, "the modem was reopened")
            self._session = None
        if self._modem is None:             # the first boot of this run
            self.store.ussd_interrupted(self.modem_name)
        self._modem = modem
        identity = modem.identity()
        self.store.set_modem(self.modem_name, identity=identity)
        self.log.info("modem=%s is IMEI %s, SIM %s%s", self.modem_name,
                      identity.get("imei") or "?", identity.get("iccid") or "?",
                      ", number %s" % identity["own_number"] if identity.get("own_number")
                      else "")

    def step(self, modem):
        """One turn, between two SMS commands: calls, then USSD (an answer that came, the
        next request, the balance when due)."""
        self._calls(modem)
        self._ussd(modem)

    # -- calls -------------------------------------------------------------------------------

    def _calls(self, modem):
        for call in modem.take_calls():
            _, count = self.store.add_call(self.modem_name, call.number, call.at,
                                           hung_up=call.hung_up, notify=self.post_calls)
            self.store.set_modem(self.modem_name, calls=count, last_call=call.at)
            metrics.CALLS.labels(**self._labels).inc()
            self.log.info("modem=%s call from %s %s after %d ring(s)", self.modem_name,
                          call.number or "a withheld number",
                          "hung up" if call.hung_up else "ended by the caller", call.rings)

    # -- USSD --------------------------------------------------------------------------------

    def _ussd(self, modem):
        if self._inflight is not None:
            answer = modem.ussd_answer()
            if answer is None:
                return
            self._finish(answer)
        now = time.monotonic()
        if self._session is not None:
            if modem.ussd_ended_by_network() or not modem.ussd_session_open:
                self._end_session(None, "ended by the network")
            elif now >= self._session_idle:
                self._end_session(modem, "no answer within %g s" % self.session_idle)
        row = self.store.next_ussd(self.modem_name)
        if row is not None:
            self._take(modem, row)
        elif self._inflight is None and self._session is None and self._next_balance is not None \
                and now >= self._next_balance:
            self._check_balance(modem)

    def _take(self, modem, row):
        session = row["session"]
        if row["kind"] == "cancel":
            if self._session == session:
                self._end_session(modem, "cancelled")
            self.store.ussd_finished(row["id"], "done", ended="cancelled")
            return
        if row["continues"] and self._session != session:
            self.store.ussd_running(row["id"])
            self.store.ussd_finished(row["id"], "failed", error="the session has ended",
                                     ended="ended before this answer")
            return
        if self._session is not None and self._session != session:
            self._end_session(modem, "a new request replaced it")
        if not self.store.ussd_running(row["id"]):
            return                      # the asker gave up meanwhile
        self.log.info("modem=%s USSD %s", self.modem_name, shown(row["code"], row["continues"]))
        self._inflight = {"kind": "request", "row": row}
        answer = modem.ussd_start(row["code"])
        if answer is not None:
            self._finish(answer)

    def _end_session(self, modem, why):
        session, self._session = self._session, None
        if modem is not None:
            modem.ussd_cancel()
        self.store.ussd_session_ended(session, why)

    def _finish(self, answer):
        inflight, self._inflight = self._inflight, None
        if inflight["kind"] == "balance":
            self._balance_answer(answer)
            return
        row = inflight["row"]
        more = answer.status == "more"
        self.store.ussd_finished(row["id"], answer.status, reply=answer.text,
                                 error=answer.error, ended=None if more else answer.status)
        metrics.USSD.labels(status=answer.status, **self._labels).inc()
        self.log.info("modem=%s USSD %s: %s%s", self.modem_name,
                      shown(row["code"], row.get("continues")), answer.status,
                      ": %s" % answer.error if answer.error else "")
        if more:
            self._session = row["session"]
            self._session_idle = time.monotonic() + self.session_idle

    # -- the balance -------------------------------------------------------------------------

    def _check_balance(self, modem):
        self._next_balance = time.monotonic() + self.balance_every
        self._inflight = {"kind": "balance", "row": None}
        answer = modem.ussd_start(self.balance_code)
        if answer is not None:
            self._finish(answer)

    def _balance_answer(self, answer):
        now = self.clock()
        if answer.status == "more" and self._modem is not None:
            self._modem.ussd_cancel()       # a menu where a balance was expected: leave it
        text = answer.text or ""
        balance = balance_of(text, self.balance_pattern) if answer.status in ("done", "more") \
            else None
        if balance is None:
            error = answer.error or "no amount in the reply %r" % text[:80]
            self.store.set_modem(self.modem_name, balance_error=error, balance_text=text[:200],
                                 balance_tried_at=now)
            self.log.warning("modem=%s balance check (%s) failed: %s", self.modem_name,
                             self.balance_code, error)
            self._next_balance = min(self._next_balance, time.monotonic() + self.balance_retry)
            return
        self.store.set_modem(self.modem_name, balance=balance, balance_text=text[:200],
                             balance_checked_at=now, balance_tried_at=now, balance_error=None)
        self.log.info("modem=%s balance %g", self.modem_name, balance)

"""``Receiver``: inbound messages, handed out once and forgotten only when the caller says so.

Messages come in four ways -- routed (+CMT/+CDS), announced (+CMTI/+CDSI, read with AT+CMGR),
found by a sweep of the storage, or by a sweep slot by slot -- and all of them take one path:

1. each becomes an ``Incoming`` (incoming.py) and is *offered* (``_offer``): a stored one is
   noted as handed out under its slot, so it is not handed out twice while the caller works on
   it (unless it stays undone past a checkup: the caller may have failed to commit it);
2. ``poll`` (or ``sweep``) hands out what was offered;
3. ``done(item)`` -- and nothing else -- deletes a stored one (AT+CMGD) or acknowledges a
   routed one (AT+CNMA), after the caller has committed it.  A crash in between leaves the
   message on the SIM or at the network, which delivers it again.

URCs arriving during other commands are queued by the port, never lost, and taken in by
``poll``.  Every ``check_interval`` (and at once when the storage is full) +CNMI is checked and
the storage swept, for what came without a notice or was handed out and never done().
``next_message`` is pygsm's shortcut over the same path: it joins parts and calls ``done`` as
soon as a part is in its memory.
"""

import time

from ..codec import pdu
from ..codec.reassembly import Reassembler
from .errors import ModemError, ModemTimeout
from .fields import split_params, to_int, unquote
from .incoming import incoming
from .stored import list_stored, read_slot

# URCs that say the message storage is full (Huawei's ^SMMEMFULL; other makers announce it
# through +CIEV indicators numbered per model, which are not trusted): sweep at once.
_STORAGE_FULL = {"^SMMEMFULL"}

# A +CMT that a previous run (or instance) never acknowledged makes the modem switch routing off
# when the network gives up on it, TR2M (12-20 s, TS 24.011) after it came: possibly just after
# we set +CNMI.  So +CNMI is checked again this long after every setup.
RECHECK_AFTER_SETUP = 30.0


class Receiver:
    """Receiving on ``port`` as ``setup`` set the modem up."""

    def __init__(self, port, setup, *, log, check_interval=300.0, reassembly_timeout=3600.0):
        self._port = port
        self._setup = setup
        self._log = log
        self.check_interval = check_interval
        self._notices = []              # [storage, index, attempts] from +CMTI/+CDSI, to read
        self._ready = []                # Incoming offered, not yet handed out
        self._outstanding = {}          # slot handed out (or about to be), not yet done() -> when
        self._next_check = None         # when poll() next checks +CNMI and sweeps
        self._cnma_failures = 0
        self._reassembler = Reassembler(timeout=reassembly_timeout)
        self._messages = []             # joined, for next_message()

    # --- handing out ---------------------------------------------------------------------------

    def poll(self, timeout):
        """Read the port for up to ``timeout`` seconds; returns the inbound items that came
        (as soon as there are some).  Stored ones are read with AT+CMGR."""
        deadline = time.monotonic() + timeout
        while True:
            if self._setup.needs_setup:
                self._setup.ensure()
            elif self._next_check is not None and time.monotonic() >= self._next_check:
                self._checkup()
            self._port.pump()
            self._read_notices()
            if self._ready:
                return self._hand_out()
            remaining = deadline - time.monotonic()
            if self._port.take_wake() or remaining <= 0:
                return []
            self._port.read(remaining, wakeable=True)

    def sweep(self):
        """Everything in the read storage (AT+CMGL=4), as Incoming items, with whatever else
        waits to be handed out.  Items already handed out and not done() come again.

        Messages found that no notice announced mean the modem stores without telling: its
        +CNMI is no longer ours, so that is checked at once.
        """
        items = list_stored(self._port, self._setup, self._log)
        if self._setup.cnmi and not self._setup.in_progress:
            announced = set(self._outstanding) | {(s, i) for s, i, _ in self._notices}
            if any(item.slot not in announced for item in items):
                self._setup.check_cnmi()
        for item in items:
            self._offer(item, again_after=0)
        return self._hand_out()

    def _offer(self, item, again_after=None):
        """The one way in: queue ``item`` to be handed out, unless its slot is out already
        (and was handed out less than ``again_after`` seconds ago) or queued already."""
        slot = item.slot
        if slot is not None:
            handed = self._outstanding.get(slot)
            if handed is not None and (again_after is None
                                       or time.monotonic() - handed < again_after):
                return
            if any(waiting.slot == slot for waiting in self._ready):
                return
            self._outstanding[slot] = time.monotonic()
        self._ready.append(item)

    def _hand_out(self):
        items, self._ready = self._ready, []
        return items

    def done(self, item):
        """The caller has committed ``item``: delete it from storage, or acknowledge it."""
        if item.routed:
            self._acknowledge()
            return
        slot = item.slot
        if slot is None:
            return
        self._setup.use_storage(item.storage)
        try:
            self._port.command("AT+CMGD=%d" % item.index)
        except ModemError as exc:
            if exc.code != 321:             # already gone is what we wanted
                raise
        self._outstanding.pop(slot, None)
        # A copy queued meanwhile must not follow: the slot may hold a new message by then.
        self._ready = [waiting for waiting in self._ready if waiting.slot != slot]

    def _acknowledge(self):
        if not self._setup.supports_cnma:
            return
        try:
            self._port.command("AT+CNMA")
            self._cnma_failures = 0
        except ModemError as exc:
            # TS 27.005 3.4.4: without a timely ack the ME turns routing off; turn it on
            # again.  The network redelivers what we failed to acknowledge.
            self._cnma_failures += 1
            if self._cnma_failures >= 3 and self._setup.may_stop_routing:
                self._log.warning("%s: AT+CNMA keeps failing (%s); receiving stored instead",
                                  self._port.url, exc)
                self._setup.stop_routing()
            else:
                self._log.warning("%s: AT+CNMA failed (%s); re-issuing AT+CNMI",
                                  self._port.url, exc)
                self._setup.restore_cnmi()

    def next_message(self, timeout=0):
        """pygsm's convenience: the next complete message, or None after ``timeout`` seconds.

        Parts are joined, and each SMS is deleted (or acknowledged) as soon as it is read, so a
        crash can lose what this returned and the caller did not keep; the bridge's worker uses
        poll()/done() instead.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self._messages:
                return self._messages.pop(0)
            for item in self.poll(max(0.0, deadline - time.monotonic())):
                if isinstance(item.message, pdu.Deliver):
                    message = self._reassembler.add(item.message, item.pdu, time.monotonic())
                    if message is not None:
                        self._messages.append(message)
                else:
                    self._log.info("%s: skipping %s", self._port.url,
                                   item.error or type(item.message).__name__)
                self.done(item)
            self._messages += self._reassembler.expire(time.monotonic())
            if self._messages:
                return self._messages.pop(0)
            if time.monotonic() >= deadline:
                return None

    # --- what the modem says unasked -----------------------------------------------------------

    def unsolicited(self, event):
        name = event.name.upper()
        if name in ("+CMTI", "+CDSI"):
            fields = split_params(event.value)
            index = to_int(fields[-1])
            storage = unquote(fields[0]).upper() if len(fields) > 1 else None
            if index is not None:
                self._notices.append([storage, index, 0])
        elif name in ("+CMT", "+CDS"):
            if event.body is None:
                self._log.warning("%s: %s without its PDU", self._port.url, event.line)
                return
            self._offer(incoming(event.body, routed=True))
        elif name in _STORAGE_FULL:
            self._storage_full()

    def command_failed(self, error):
        """A full message storage (+CMS ERROR: 322, +CME ERROR: 20) is ours to empty: sweep at
        the next poll(), so what is stored gets committed and deleted."""
        if error is not None and (error.kind, error.code) in (("CMS", 322), ("CME", 20)):
            self._storage_full()

    def _storage_full(self):
        if self._next_check is not None and not self._setup.in_progress:
            self._log.warning("%s: message storage full; sweeping it", self._port.url)
            self._next_check = time.monotonic()

    def _read_notices(self):
        notices, self._notices = self._notices, []
        for n, (storage, index, attempts) in enumerate(notices):
            if (storage, index) in self._outstanding:
                continue
            try:
                item = read_slot(self._port, self._setup, storage, index)
            except ModemError as exc:
                if exc.transient and attempts < 5:
                    self._log.info("%s: reading %s %s: %s; later", self._port.url, storage,
                                   index, exc)
                    self._notices.append([storage, index, attempts + 1])
                else:
                    self._log.warning("%s: cannot read %s %s: %s (left for a sweep)",
                                      self._port.url, storage, index, exc)
                continue
            except ModemTimeout:
                self._notices.extend(notices[n:])      # not lost: try again next poll
                raise
            if item is not None:
                self._offer(item)

    # --- checkups ------------------------------------------------------------------------------

    def resume(self):
        """After a setup: offer what is stored (it may have come while nobody listened), and
        check +CNMI again soon."""
        self._sweep_stored(first_check=min(self.check_interval, RECHECK_AFTER_SETUP))

    def _checkup(self):
        """Every check_interval: is +CNMI still ours (a missed +CNMA makes the modem drop it,
        a restart resets it)?  Then sweep for what came without a notice."""
        self._setup.check_cnmi()
        self._sweep_stored()

    def _sweep_stored(self, first_check=None):
        """Offer what is stored and not handed out already (or handed out long ago and never
        done(): the caller may have failed to commit it)."""
        self._next_check = time.monotonic() + (first_check or self.check_interval)
        try:
            items = list_stored(self._port, self._setup, self._log)
        except ModemError as exc:
            self._log.warning("%s: sweep failed: %s", self._port.url, exc)
            return
        for item in items:
            self._offer(item, again_after=self.check_interval)

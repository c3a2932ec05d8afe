"""Receiving with a ``GsmModem``: notices, reads, sweeps, and deleting or acknowledging only
once the caller has committed.

* nothing is deleted or acknowledged until the caller says so (``done(item)``), after it has
  committed the message: stored messages (``+CMTI``, ``AT+CMGL``) are deleted with ``AT+CMGD``,
  routed ones (``+CMT``/``+CDS`` with ``AT+CSMS=1``) acknowledged with ``AT+CNMA``, so a crash in
  between leaves the message on the SIM or at the network, which redelivers it;
* URCs that arrive during other commands are queued, never lost, and handled by ``poll``;
* a PDU that cannot be decoded is handed out raw with ``error`` set, never dropped or raised;
* every ``check_interval`` (and when storage is full) +CNMI is checked and the storage swept,
  for what came without a notice or was handed out and never done().
"""

import time
from dataclasses import dataclass

from ..codec import pdu
from .at import NEED_DATA, split_params
from .fields import after_colon, to_int, unquote
from .errors import ModemError, ModemTimeout

# URCs after which a modem has restarted and forgotten our settings (CMGF, CNMI, CSMS...).
_RESTART = {"RDY", "^SYSSTART", "MODEM:STARTUP"}

# URCs that say the message storage is full (Huawei's ^SMMEMFULL; other makers announce it
# through +CIEV indicators numbered per model, which are not trusted): sweep at once.
_STORAGE_FULL = {"^SMMEMFULL"}


@dataclass
class Incoming:
    """One inbound SMS or status report as the modem gave it.  Hand it to ``done()`` once it is
    committed."""
    pdu: str                    # raw hex as the modem gave it (kept even when malformed)
    message: "pdu.Deliver | pdu.StatusReport | None"
    error: str | None           # why message is None (the PduError's text)
    index: int | None           # storage index (+CMTI/+CDSI/+CMGL), None for routed +CMT/+CDS
    storage: str | None         # "SM", "ME", "SR"... for stored ones
    routed: bool                # True: +CMT/+CDS, acknowledged with +CNMA by done()


class ReceiveMixin:
    """``poll``, ``sweep``, ``done``, ``delete`` and ``next_message`` for ``GsmModem``.

    Its state: ``_notices`` (+CMTI/+CDSI to read), ``_ready`` (read, not yet handed out),
    ``_outstanding`` (handed out, not yet done()), ``_next_check``, the +CNMA failure count.
    """

    def poll(self, timeout):
        """Read the port for up to ``timeout`` seconds; returns the inbound items that came
        (as soon as there are some).  Stored ones are read with AT+CMGR."""
        deadline = time.monotonic() + timeout
        while True:
            if self._needs_setup:
                self._redo_setup()
            elif self._next_check is not None and time.monotonic() >= self._next_check:
                self._checkup()
            while (event := self._engine.next_event()) is not NEED_DATA:
                self._other(event)
            self._read_notices()
            if self._ready:
                items, self._ready = self._ready, []
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._woken:
                self._woken = False
                return []
            self._read(remaining, wakeable=True)

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
                    self.log.info("%s: skipping %s", self.port,
                                  item.error or type(item.message).__name__)
                self.done(item)
            self._messages += self._reassembler.expire(time.monotonic())
            if self._messages:
                return self._messages.pop(0)
            if time.monotonic() >= deadline:
                return None

    def sweep(self):
        """Everything in the read storage (AT+CMGL=4), as Incoming items.  Stored outgoing
        messages are left alone.  Items already handed out and not done() come again.

        Messages found that no notice announced mean the modem stores without telling: its
        +CNMI is no longer ours (see _check_cnmi), so that is checked at once.
        """
        items = self._sweep()
        if self.cnmi and not self._in_setup:
            announced = set(self._outstanding) | {(s, i) for s, i, _ in self._notices}
            if any((item.storage, item.index) not in announced for item in items):
                self._check_cnmi()
        return items

    def done(self, item):
        """The caller has committed ``item``: delete it from storage, or acknowledge it."""
        if item.routed:
            if not self.supports_cnma:
                return
            try:
                self._command("AT+CNMA")
                self._cnma_failures = 0
            except ModemError as exc:
                # TS 27.005 3.4.4: without a timely ack the ME turns routing off; turn it on
                # again.  The network redelivers what we failed to acknowledge.
                self._cnma_failures += 1
                if self._cnma_failures >= 3 and self.receive_mode == "auto" \
                        and self.routing == "routed":
                    self.log.warning("%s: AT+CNMA keeps failing (%s); receiving stored instead",
                                     self.port, exc)
                    self._stop_routing()
                else:
                    self.log.warning("%s: AT+CNMA failed (%s); re-issuing AT+CNMI", self.port,
                                     exc)
                    if self.cnmi:
                        self._tolerate("AT+CNMI=" + self.cnmi)
            return
        if item.index is None:
            return
        self._use_storage(item.storage)
        try:
            self._command("AT+CMGD=%d" % item.index)
        except ModemError as exc:
            if exc.code != 321:             # already gone is what we wanted
                raise
        self._outstanding.pop((item.storage, item.index), None)

    def delete(self, index):
        self._command("AT+CMGD=%d" % index)

    # --- URCs ----------------------------------------------------------------------------------

    def _unsolicited(self, event):
        name = event.name.upper()
        if name in ("+CMTI", "+CDSI"):
            fields = split_params(event.value)
            index = to_int(fields[-1])
            storage = unquote(fields[0]).upper() if len(fields) > 1 else None
            if index is not None:
                self._notices.append([storage, index, 0])
        elif name in ("+CMT", "+CDS"):
            if event.body is None:
                self.log.warning("%s: %s without its PDU", self.port, event.line)
                return
            self._ready.append(self._item(event.body, index=None, storage=None, routed=True))
        elif name in _RESTART:
            self.log.warning("%s: modem restarted (%s); setting it up again", self.port,
                             event.line)
            self._needs_setup = True
        elif name in _STORAGE_FULL:
            self._storage_full()

    @staticmethod
    def _item(pdu_hex, *, index, storage, routed):
        try:
            message = pdu.decode(pdu_hex)
            error = None
        except pdu.PduError as exc:
            message, error = None, str(exc)
        except Exception as exc:          # a codec bug must not cost us the message
            message, error = None, "%s: %s" % (type(exc).__name__, exc)
        return Incoming(pdu=pdu_hex, message=message, error=error, index=index,
                        storage=storage, routed=routed)

    def _note_error(self, error):
        """A full message storage (+CMS ERROR: 322, +CME ERROR: 20) is ours to empty: sweep at
        the next poll(), so what is stored gets committed and deleted."""
        if error is not None and (error.kind, error.code) in (("CMS", 322), ("CME", 20)):
            self._storage_full()

    def _storage_full(self):
        if self._next_check is not None and not self._in_setup:
            self.log.warning("%s: message storage full; sweeping it", self.port)
            self._next_check = time.monotonic()

    # --- reading storage -----------------------------------------------------------------------

    def _read_notices(self):
        notices, self._notices = self._notices, []
        for n, (storage, index, attempts) in enumerate(notices):
            if (storage, index) in self._outstanding:
                continue
            try:
                item = self._read_stored(storage, index)
            except ModemError as exc:
                if exc.transient and attempts < 5:
                    self.log.info("%s: reading %s %s: %s; later", self.port, storage, index, exc)
                    self._notices.append([storage, index, attempts + 1])
                else:
                    self.log.warning("%s: cannot read %s %s: %s (left for a sweep)",
                                     self.port, storage, index, exc)
                continue
            except ModemTimeout:
                self._notices.extend(notices[n:])      # not lost: try again next poll
                raise
            if item is not None:
                self._hand_out_later(item)

    def _use_storage(self, storage):
        if storage and storage != self._read_storage:
            self._command('AT+CPMS="%s"' % storage)
            self._read_storage = storage

    def _read_stored(self, storage, index):
        """AT+CMGR=<index> -> Incoming, or None for an empty slot or a stored outgoing one."""
        self._use_storage(storage)
        storage = self._read_storage
        try:
            lines = self._command("AT+CMGR=%d" % index)
        except ModemError as exc:
            if exc.code == 321:             # gone already (read and deleted by a sweep)
                return None
            raise
        for response in lines:
            if response.line.upper().startswith("+CMGR"):
                stat = to_int(split_params(after_colon(response.line))[0])
                if response.body is None or stat in (2, 3):
                    return None
                return self._item(response.body, index=index, storage=storage, routed=False)
        return None

    def _sweep(self):
        self._use_storage(self.storage if self._read_storage else None)
        storage = self._read_storage
        items, listed = [], 0
        try:
            lines = self._command("AT+CMGL=4", timeout=max(self.command_timeout, 30.0))
        except ModemError as exc:
            self.log.warning("%s: AT+CMGL=4 failed (%s); reading slot by slot", self.port, exc)
            lines = None
        if lines is not None:
            for response in lines:
                if not response.line.upper().startswith("+CMGL"):
                    continue
                listed += 1
                fields = split_params(after_colon(response.line))
                index, stat = to_int(fields[0]), to_int(fields[1]) if len(fields) > 1 else None
                if index is None or response.body is None or stat in (2, 3):
                    continue
                items.append(self._item(response.body, index=index, storage=storage,
                                        routed=False))
        # Some modems' listings miss messages (gammu's BROKEN_CMGL): compare with the count.
        used = self._storage_count()
        if lines is None or (used is not None and used > listed):
            seen = {item.index for item in items}
            items += self._scan_slots(seen, used)
        return items

    def _storage_count(self):
        try:
            lines = self._command("AT+CPMS?")
        except ModemError:
            return None
        self._note_cpms(lines)
        return self.storage_used[0] if self.storage_used else None

    def _scan_slots(self, seen, used):
        """AT+CMGR on every slot (0 and 1 based modems alike), for modems whose CMGL fails."""
        total = self.storage_used[1] if self.storage_used and self.storage_used[1] else 30
        found = []
        for index in range(0, total + 1):
            if index in seen:
                continue
            try:
                item = self._read_stored(None, index)
            except ModemError:
                continue
            if item is not None:
                found.append(item)
            if used is not None and len(seen) + len(found) >= used:
                break
        return found

    # --- checkups ------------------------------------------------------------------------------

    def _initial_sweep(self, first_check=None):
        """Queue for poll() what is stored and not handed out already (or handed out long ago
        and never done(): the caller may have failed to commit it)."""
        self._next_check = time.monotonic() + (first_check or self.check_interval)
        try:
            items = self._sweep()
        except ModemError as exc:
            self.log.warning("%s: sweep failed: %s", self.port, exc)
            return
        for item in items:
            self._hand_out_later(item, again_after=self.check_interval)

    def _hand_out_later(self, item, again_after=None):
        key = (item.storage, item.index)
        if item.index is not None:
            handed = self._outstanding.get(key)
            if handed is not None and (again_after is None
                                       or time.monotonic() - handed < again_after):
                return
            self._outstanding[key] = time.monotonic()
        self._ready.append(item)

    def _checkup(self):
        """Every check_interval: is +CNMI still ours (a missed +CNMA makes the modem drop it,
        a restart resets it)?  Then sweep for what came without a notice."""
        self._check_cnmi()
        self._initial_sweep()

    def _check_cnmi(self):
        if not self.cnmi:
            return
        try:
            lines = self._command("AT+CNMI?")
        except ModemError as exc:
            self.log.info("%s: %s", self.port, exc)
            lines = []
        for response in lines:
            have = [to_int(f) for f in split_params(after_colon(response.line))]
            want = [to_int(f) for f in self.cnmi.split(",")]
            if have[1:2] != want[1:2] or (len(want) > 3 and have[3:4] != want[3:4]):
                self.log.warning("%s: +CNMI is %s, not %s: setting it again", self.port,
                                 after_colon(response.line), self.cnmi)
                self._tolerate("AT+CNMI=" + self.cnmi)

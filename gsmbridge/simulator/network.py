"""The simulated modem's network side: what the SMSC does with what the host submits, and what
it holds for the modem until the modem can take it.

Submitting: each part gets a TP-MR (or, with the cms_error fault, a +CMS ERROR), parts of one
concatenated SMS are joined into one entry of `sent`, and a requested status report comes back
after report_delay.  Receiving: an SMS waits at the network while the modem is unregistered,
hung or off; then AT+CNMI decides whether it is routed to the host (+CMT/+CDS) or stored
(+CMTI/+CDSI).  A routed message needs AT+CNMA within cnma_timeout when AT+CSMS=1, or the network
tries again after redelivery_delay (and, as TS 27.005 3.4.4 says, routing is switched off); a full
storage makes the network hold messages until the modem says there is room (SMMA).

Other services (a USSD reply, an incoming call's RING) reach the host as `Notice`s through the
same queue: held while the modem cannot receive, and also while a command is in flight (the host
typing a PDU after "> ", or waiting for +CMGS), then written whole between two answers, the way
modems that queue their URCs behind a command do.  (A +CMT, as before, goes out at once: the
simulator shows both habits, and a driver must take both.)

`NetworkSide` is a base class of `SimulatedModem`, not a modem of its own: it works on the
modem's state (its clock, faults, settings and timers) under the modem's lock.
"""

from ..codec import pdu
from . import render
from .command import Later, cms
from .storage import Message, tpdu_length


class Pending:
    """A message the network holds for the modem."""

    __slots__ = ("pdu", "kind", "due", "length", "full")

    def __init__(self, pdu_hex, kind, due):
        self.pdu = pdu_hex
        self.kind = kind
        self.due = due
        self.length = tpdu_length(pdu_hex)
        self.full = False

    def retry(self, due):
        return Pending(self.pdu, self.kind, due)


class Notice:
    """An unsolicited result code some service of the network causes (see the module's
    docstring): its lines, when it is due, and which service sent it (to take it back)."""

    __slots__ = ("lines", "due", "owner")

    def __init__(self, lines, due, owner):
        self.lines = lines
        self.due = due
        self.owner = owner


class NetworkSide:
    """The SMSC's half of the simulated modem (see the module's docstring)."""

    def _start_network(self, *, report_delay, cnma_timeout, redelivery_delay,
                       cnma_disables_routing):
        self.report_delay = report_delay
        self.cnma_timeout = cnma_timeout
        self.redelivery_delay = redelivery_delay
        self.cnma_disables_routing = cnma_disables_routing
        self.sent = []            # complete messages the host submitted (dicts, JSON-ready)
        self.rejected = 0         # submits answered with an error by the "network"
        self._partial = {}        # concatenated sends still missing parts
        self._network = []        # what the network holds for us: [Pending or Notice]
        self._unacked = None      # the routed +CMT/+CDS waiting for AT+CNMA
        self._mr = 0              # TP-MR of the next submit
        self._concat = self._random.randrange(256)

    # -- what reaches the modem --------------------------------------------------------------

    def deliver(self, sender, text, *, encoding=None, timestamp=None, smsc=None):
        """An SMS from `sender` reaches the modem; a long text comes as concatenated parts.

        Returns what the network sent: {"from", "text", "parts", "pdus"}.
        """
        with self._lock:
            timestamp = timestamp or self._now()
            self._concat = (self._concat + 1) % 256
            pdus = pdu.deliver_pdus(sender, text, timestamp=timestamp,
                                    concat_reference=self._concat, encoding=encoding,
                                    smsc=smsc or self.smsc, max_parts=255)
            hexes = [hex_pdu for hex_pdu, _ in pdus]
            self._arrive(hexes, "deliver")
            return {"from": sender, "text": text, "parts": len(pdus), "pdus": hexes}

    def deliver_pdu(self, pdu_hex, kind="deliver"):
        """A raw PDU (SMSC field included) reaches the modem as is: malformed ones included."""
        with self._lock:
            self._arrive([pdu_hex.upper()], kind)
            return {"parts": 1, "pdus": [pdu_hex.upper()]}

    def notice(self, lines, owner, delay=0.0):
        """A service's result code for the host (a list of lines), due after `delay` seconds."""
        self._network.append(Notice(list(lines), self._clock() + delay, owner))

    def withdraw(self, owner):
        """Take back the notices of `owner` not yet written (a cancelled session, an ended call)."""
        self._network = [item for item in self._network
                         if not (isinstance(item, Notice) and item.owner == owner)]

    def _line_in_use(self):
        """A command is in flight: the host is typing after "> " or waits for a late answer."""
        return self._state in ("prompt", "busy")

    def _arrive(self, pdus, kind):
        """The network has these for the modem now: route them at once if it can take them."""
        for hex_pdu in pdus:
            self._network.append(Pending(hex_pdu, kind, self._clock()))
        self.tick()
        self._notify()

    def sent_messages(self):
        """A copy of `sent`: one dict per SMS the host sent (concatenated parts joined):
        to, text, encoding, parts, reference (TP-MR of the first part), references, pdus,
        status_report (requested), concat ({reference, total} or None)."""
        with self._lock:
            return [dict(entry) for entry in self.sent]

    def clear_sent(self):
        with self._lock:
            self.sent.clear()

    # -- submitting ---------------------------------------------------------------------------

    def _submit(self, pdu_hex, length):
        """Check a SUBMIT from the host (PDU with SMSC field); a `Later` whose action
        sends it and returns its TP-MR."""
        if tpdu_length(pdu_hex) != length:
            raise cms(304)
        try:
            submit = pdu.decode(pdu_hex, incoming=False)
        except pdu.PduError:
            raise cms(304) from None
        if not isinstance(submit, pdu.Submit):
            raise cms(304)
        if not self._registered():
            raise cms(331)
        delay = self._faults.network_delay
        now = self._clock()
        if self.cmms and self._last_submit is not None and now - self._last_submit < 5:
            delay /= 2      # AT+CMMS kept the link up
        delay += self._faults.slow_cmgs
        return Later(delay, lambda: self._submitted(submit, pdu_hex))

    def _submitted(self, submit, pdu_hex):
        """The network's answer to a submit: a reference, or an error now and then."""
        self._last_submit = self._clock()
        if self._faults.cms_error and self._random.random() < self._faults.cms_error:
            self.rejected += 1
            raise cms(self._faults.cms_error_code)
        mr = self._mr
        self._mr = (self._mr + 1) % 256
        self._record(submit, pdu_hex, mr)
        if submit.status_report_request:
            recipient, status = submit.recipient, self._faults.report_status
            sent_at = self._now()
            self._schedule(self.report_delay,
                           lambda: self._report(mr, recipient, status, sent_at), network=True)
        return mr

    def _record(self, submit, pdu_hex, mr):
        """Keep what was sent; parts of one concatenated SMS become one entry."""
        entry = {"to": submit.recipient, "parts": 1, "encoding": submit.encoding,
                 "status_report": submit.status_report_request}
        concat = submit.concat
        if concat is None or concat.total <= 1:
            entry.update(text=submit.text, reference=mr, references=[mr], pdus=[pdu_hex],
                         concat=None)
            self.sent.append(entry)
            return
        key = (submit.recipient, concat.reference, concat.total, concat.bits)
        parts = self._partial.setdefault(key, {})
        parts[concat.sequence] = (submit, pdu_hex, mr)
        if len(parts) < concat.total:
            return
        del self._partial[key]
        ordered = [parts[seq] for seq in sorted(parts)]
        if submit.encoding == "8bit":
            text = ""
        else:      # join the bodies: a pair of septets or UTF-16 units may straddle two parts
            text = pdu.decode_body(submit.encoding, b"".join(s.body for s, _, _ in ordered))
        entry.update(
            text=text, parts=len(ordered),
            reference=ordered[0][2], references=[m for _, _, m in ordered],
            pdus=[p for _, p, _ in ordered],
            status_report=any(s.status_report_request for s, _, _ in ordered),
            concat={"reference": concat.reference, "total": concat.total})
        self.sent.append(entry)

    def _report(self, mr, recipient, status, sent_at):
        """The network's status report for one submitted part."""
        discharge = self._now()
        hex_pdu, _ = pdu.encode_status_report(mr, recipient, status=status, timestamp=sent_at,
                                              discharge=discharge, smsc=self.csca or self.smsc)
        self._network.append(Pending(hex_pdu, "report", self._clock()))

    # -- the network delivering to us ---------------------------------------------------------

    def _route_network(self):
        """Hand what the network holds to the modem: routed to the host or stored."""
        if self._cannot_receive():
            return
        now = self._clock()
        keep = []
        queue, self._network = self._network, []
        blocked = False
        for item in queue:
            if isinstance(item, Notice):
                if item.due > now or self._line_in_use():
                    keep.append(item)
                else:
                    self._urc(item.lines)
                continue
            if blocked or item.due > now or not self._deliver_item(item):
                keep.append(item)
                blocked = blocked or self._unacked is not None and item.due <= now
        self._network = keep + self._network

    def _cannot_receive(self):
        """A modem that is hung, off or not registered gets no SMS: the network keeps them."""
        return self._hung() or self._state == "off" or not self._registered()

    def _deliver_item(self, item):
        """True when the item left the network: routed or stored (or, in text mode, a PDU
        the modem cannot show: dropped)."""
        mode, mt, _, ds, _ = self.cnmi
        if item.kind == "deliver":
            routed = mt == 2 or mt == 3 and self._message_class(item.pdu) == 3
        else:
            routed = ds == 1
        if routed and mode != 0:
            if self._unacked is not None:
                return False
            lines = render.routed(self, item.kind, item.pdu, item.length)
            if lines is None:
                return True
            self._urc(lines)
            if self.csms == 1:
                self._unacked = item
                self._schedule(self.cnma_timeout, lambda: self._ack_timeout(item))
            return True
        memory = self._memory(2)
        if self._faults.storage_full:
            index = None
        else:
            index = memory.add(Message(0, item.pdu, item.kind))
        if index is None:
            item.due = self._clock() + self.redelivery_delay   # RP-ERROR memory exceeded
            item.full = True
            return False
        if item.kind == "deliver" and mt in (1, 2, 3):
            self._urc(['+CMTI: "%s",%d' % (memory.name, index)])
        elif item.kind == "report" and ds == 2:
            self._urc(['+CDSI: "%s",%d' % (memory.name, index)])
        return True

    @staticmethod
    def _message_class(pdu_hex):
        try:
            return pdu.decode(pdu_hex, incoming=True).message_class
        except (pdu.PduError, AttributeError):
            return None

    def _ack_timeout(self, item):
        """No AT+CNMA in time: the network will try again later; routing is switched off."""
        if self._unacked is not item:
            return
        self._unacked = None
        self._redeliver_later(item)
        if self.cnma_disables_routing:
            self.cnmi[1] = self.cnmi[3] = 0

    def _space_freed(self):
        """Storage has room again: the ME tells the network (SMMA), which retries at once."""
        now = self._clock()
        for item in self._network:
            if isinstance(item, Pending) and item.full:
                item.due = now
                item.full = False

    def _redeliver_later(self, item):
        """The modem did not take `item` (no +CNMA, an RP-ERROR, a reset while it was
        unacknowledged): the network keeps it and tries again after redelivery_delay."""
        self._network.append(item.retry(self._clock() + self.redelivery_delay))

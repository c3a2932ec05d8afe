"""Committing one inbound message: decode, dedup key, reassembly, commit, and only then tell the
modem it may forget the message (AT+CMGD for a stored one, AT+CNMA for a routed one).

The order is the whole point. An SMS the store has not committed stays the modem's to hand over
again; one it has committed may come again (a crash between the commit and the AT+CMGD, the network
redelivering), and its dedup key (codec.pdu_key) recognises it. A part of a concatenated message is
committed on its own, with its key, before the message is joined, so a part the modem has forgotten
is never only in memory: after a restart the committed parts go back into the reassembler.

A PDU that does not decode, or that this code fails to handle, is kept as a bad PDU with the reason
and the modem is told to forget it: one odd message must never wedge the queue behind it. The store
failing is different: then nothing was committed, so the modem keeps the message.
"""

import dataclasses
import time
from datetime import datetime, timezone

from gsmbridge import metrics
from gsmbridge.codec import Deliver, PduError, Reassembler, StatusReport, decode, pdu_key
from gsmbridge.modem import errors
from gsmbridge.store import StoreError

#: what stops the handling of an item without keeping it as bad: the store (nothing committed, the
#: modem keeps it) or the modem itself (run() recovers it, and the item comes again)
PASS_ON = (StoreError, errors.ModemError, errors.ModemTimeout, errors.ModemGone)

# Stands in for a time stamp the SMSC got wrong while parts are reassembled (the reassembler takes
# the earliest of the parts' time stamps, so any real one wins over it).
_NO_TIME = datetime.max.replace(tzinfo=timezone.utc)


def _iso(timestamp):
    """A message's SCTS for the store: ISO 8601, or None when the SMSC sent no valid one."""
    if timestamp is None or timestamp == _NO_TIME:
        return None
    return timestamp.isoformat()


def _reassemblable(deliver):
    if deliver.timestamp is None:
        return dataclasses.replace(deliver, timestamp=_NO_TIME)
    return deliver


class InboundCommitter:
    """Commits what one modem hands over (the driver's inbound items) to the store.

    It keeps the reassembler of that modem's concatenated messages; the worker thread hands it
    each item with the modem to tell (`take`), and asks it now and then to give up on parts that
    will not be completed (`expire`).
    """

    def __init__(self, name, store, *, reassembly_timeout, log):
        self.modem_name = name
        self.store = store
        self.reassembler = Reassembler(timeout=reassembly_timeout)
        self.log = log
        self._labels = {"modem": name}
        self._received = metrics.RECEIVED.labels(**self._labels)   # looked up once, not per SMS
        self._parts_loaded = False

    def load_parts(self):
        """Parts committed before a restart go back into the reassembler (once per process)."""
        if self._parts_loaded:
            return
        for part in self.store.pending_parts(self.modem_name):
            try:
                deliver = decode(part["pdu"])
            except PduError:
                self.log.error("modem=%s stored part %s no longer decodes", self.modem_name,
                               part["key"])
                continue
            if not isinstance(deliver, Deliver):
                continue
            self._complete(self.reassembler.add(_reassemblable(deliver), part["pdu"], time.time()))
        self._parts_loaded = True

    def take_all(self, modem, items):
        for item in items:
            self.take(modem, item)

    def take(self, modem, item):
        """Commit one inbound item to the store, then let the modem forget it."""
        try:
            self._commit(item)
        except PASS_ON:
            raise
        except Exception as exc:
            self.log.exception("modem=%s could not handle an inbound PDU; keeping it as bad",
                               self.modem_name)
            self._bad(item, "not handled: %s: %s" % (type(exc).__name__, exc))
        modem.done(item)

    def expire(self):
        """Incomplete messages whose parts waited too long are committed as they are."""
        for message in self.reassembler.expire(time.time()):
            self._complete(message)

    def _bad(self, item, error):
        row = self.store.add_bad_pdu(modem=self.modem_name, pdu=item.pdu, error=error)
        metrics.BAD_PDUS.labels(**self._labels).inc()
        self.log.error("modem=%s bad_pdu=%s kept: %s pdu=%s", self.modem_name, row, error,
                       item.pdu)

    def _commit(self, item):
        name = self.modem_name
        message = item.message
        if message is None:
            self._bad(item, item.error or "undecodable")
        elif isinstance(message, StatusReport):
            self.store.add_report(modem=name, reference=message.reference,
                                  recipient=message.recipient, status=message.status, pdu=item.pdu)
            self.log.info("modem=%s status report ref=%s to=%s status=%#x", name,
                          message.reference, message.recipient, message.status)
        elif isinstance(message, Deliver):
            self._commit_deliver(item, message)
        else:
            self._bad(item, "unexpected PDU type %s" % type(message).__name__)

    def _commit_deliver(self, item, message):
        name = self.modem_name
        if message.timestamp is None:
            self.log.warning("modem=%s SMS from %s has no valid SMSC time stamp (%s); kept "
                             "without one", name, message.sender, message.timestamp_error)
        key = pdu_key(item.pdu)
        if message.concat is None or message.concat.total <= 1:
            msg_id = self.store.add_inbound(
                modem=name, sender=message.sender, text=message.text,
                sent_at=_iso(message.timestamp), parts=1, incomplete=False,
                pdus=[item.pdu], keys=[key])
            if msg_id is None:
                self.log.info("modem=%s duplicate SMS from %s ignored", name, message.sender)
            else:
                self._received.inc()
                self.log.info("modem=%s id=%s received from %s (%d chars)", name, msg_id,
                              message.sender, len(message.text), extra={"msg_id": msg_id})
            return
        c = message.concat
        fresh = self.store.add_part(modem=name, key=key, sender=message.sender,
                                    reference=c.reference, total=c.total, sequence=c.sequence,
                                    bits=c.bits, pdu=item.pdu)
        if fresh:
            self._complete(self.reassembler.add(_reassemblable(message), item.pdu, time.time()))
        else:
            self.log.info("modem=%s duplicate part %d/%d from %s ignored", name, c.sequence,
                          c.total, message.sender)

    def _complete(self, message):
        if message is None:
            return
        msg_id = self.store.complete_parts(
            modem=self.modem_name, keys=[pdu_key(p) for p in message.pdus], sender=message.sender,
            text=message.text, sent_at=_iso(message.timestamp), parts=message.parts,
            incomplete=message.incomplete, pdus=message.pdus)
        self._received.inc()
        self.log.info("modem=%s id=%s received from %s in %d/%d parts%s", self.modem_name, msg_id,
                      message.sender, message.parts, message.total,
                      " (incomplete)" if message.incomplete else "", extra={"msg_id": msg_id})


"""The thread that owns one modem.

It is the only code that touches the modem's serial port. Inbound it moves SMS from the modem to the
store, and only after the store has committed them does it let the modem forget them (AT+CMGD for a
stored message, AT+CNMA for a routed one). Outbound it takes queued messages from the store, marks
each `sending` (committed) before AT+CMGS, and records the outcome. When the modem goes away or stops
answering it closes the port, reports the modem down and reopens it with backoff.
"""

import hashlib
import logging
import random
import threading
import time

from gsmbridge.modem import errors
from gsmbridge.modem.pdu import Deliver, StatusReport
from gsmbridge.modem.reassembly import Reassembler

log = logging.getLogger("gsmbridge.worker")


def pdu_key(pdu):
    """The dedup key of a PDU: SHA-1 of its TPDU, i.e. without the SMSC address field.

    The same SMS read twice, or redelivered by the network through another SMSC route, has the same
    TPDU (sender, SCTS and user data), so the key recognises it.
    """
    tpdu = pdu.strip().upper()
    try:
        smsc_octets = int(tpdu[:2], 16)
        if 2 + 2 * smsc_octets <= len(tpdu):
            tpdu = tpdu[2 + 2 * smsc_octets:]
    except ValueError:
        pass
    return hashlib.sha1(tpdu.encode("ascii", "replace")).hexdigest()


class Backoff:
    """Capped exponential backoff with jitter: base, 2*base, 4*base ... cap."""

    def __init__(self, base=1.0, cap=60.0):
        self.base, self.cap, self.failures = base, cap, 0

    def next(self):
        delay = min(self.cap, self.base * (2 ** self.failures))
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self):
        self.failures = 0


class ModemWorker(threading.Thread):
    """Owns one modem for the life of the bridge: boot, receive, send, reconnect."""

    #: how long one serial read waits when there is nothing to send
    idle_poll = 0.1
    #: how often signal and registration are refreshed for the status page
    status_interval = 30.0
    #: how often incomplete concatenated messages are checked for expiry
    expire_interval = 30.0

    def __init__(self, name, store, open_modem, *, max_parts=10, status_reports=False,
                 sweep_interval=60.0, reassembly_timeout=3600.0, max_attempts=5,
                 retry_base=5.0, retry_cap=300.0, reconnect_cap=60.0):
        super().__init__(name="modem-%s" % name, daemon=True)
        self.modem_name = name
        self.store = store
        self.open_modem = open_modem
        self.max_parts = max_parts
        self.status_reports = status_reports
        self.sweep_interval = sweep_interval
        self.reassembler = Reassembler(timeout=reassembly_timeout)
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.reconnect = Backoff(1.0, reconnect_cap)
        self.stopping = threading.Event()
        self.modem = None

    # -- life cycle --------------------------------------------------------------------------

    def stop(self):
        """Ask the worker to finish the message in flight and close the port."""
        self.stopping.set()

    def run(self):
        while not self.stopping.is_set():
            try:
                self._set_state("booting")
                self.modem = self.open_modem()
                self.modem.boot()
                self.reconnect.reset()
                self._set_state("up", last_error=None)
                log.info("modem=%s up", self.modem_name)
                self._serve()
            except Exception as exc:  # any failure of the port or the modem: reconnect
                if self.stopping.is_set():
                    break
                delay = self.reconnect.next()
                log.warning("modem=%s down: %s: %s; reopening in %.1fs",
                            self.modem_name, type(exc).__name__, exc, delay)
                self._set_state("down", last_error="%s: %s" % (type(exc).__name__, exc))
                self._close()
                self.stopping.wait(delay)
        self._close()
        self._set_state("stopped")
        log.info("modem=%s stopped", self.modem_name)

    def _close(self):
        if self.modem is not None:
            try:
                self.modem.close()
            except Exception:
                log.debug("modem=%s close failed", self.modem_name, exc_info=True)
            self.modem = None

    def _set_state(self, state, **fields):
        try:
            self.store.set_modem(self.modem_name, state=state, **fields)
        except Exception:
            log.exception("modem=%s could not record state %s", self.modem_name, state)

    # -- the loop ----------------------------------------------------------------------------

    def _serve(self):
        self._reload_parts()
        self._take_all(self.modem.sweep())
        now = time.monotonic()
        next_sweep = now + self.sweep_interval
        next_status = now
        next_expire = now + self.expire_interval
        while not self.stopping.is_set():
            sent = self._send_one()
            self._take_all(self.modem.poll(0 if sent else self.idle_poll))
            now = time.monotonic()
            if now >= next_sweep:
                self._take_all(self.modem.sweep())
                next_sweep = now + self.sweep_interval
            if now >= next_status:
                self._refresh_status()
                next_status = now + self.status_interval
            if now >= next_expire:
                self._expire_parts()
                next_expire = now + self.expire_interval

    def _refresh_status(self):
        try:
            signal = self.modem.signal_strength()
            net = self.modem.network()
        except errors.ModemError as exc:
            log.info("modem=%s status query failed: %s", self.modem_name, exc)
            return
        self._set_state("up", signal=signal, operator=net.operator,
                        registration=net.registration, registered=net.registered)

    # -- inbound -----------------------------------------------------------------------------

    def _reload_parts(self):
        """Parts committed before a restart go back into the reassembler."""
        from gsmbridge.modem.pdu import PduError, decode

        for part in self.store.pending_parts(self.modem_name):
            try:
                deliver = decode(part["pdu"])
            except PduError:
                log.error("modem=%s stored part %s no longer decodes", self.modem_name, part["key"])
                continue
            self._complete(self.reassembler.add(deliver, part["pdu"], time.time()))

    def _take_all(self, items):
        for item in items:
            self._take(item)

    def _take(self, item):
        """Commit one inbound item to the store, then let the modem forget it."""
        name = self.modem_name
        message = item.message
        if message is None:
            row = self.store.add_bad_pdu(modem=name, pdu=item.pdu, error=item.error or "undecodable")
            log.error("modem=%s bad_pdu=%s kept: %s pdu=%s", name, row, item.error, item.pdu)
        elif isinstance(message, StatusReport):
            self.store.add_report(modem=name, reference=message.reference,
                                  recipient=message.recipient, status=message.status, pdu=item.pdu)
            log.info("modem=%s status report ref=%s to=%s status=%#x", name, message.reference,
                     message.recipient, message.status)
        elif isinstance(message, Deliver):
            key = pdu_key(item.pdu)
            if message.concat is None or message.concat.total <= 1:
                msg_id = self.store.add_inbound(
                    modem=name, sender=message.sender, text=message.text,
                    sent_at=message.timestamp.isoformat(), parts=1, incomplete=False,
                    pdus=[item.pdu], keys=[key])
                if msg_id is None:
                    log.info("modem=%s duplicate SMS from %s ignored", name, message.sender)
                else:
                    log.info("modem=%s id=%s received from %s (%d chars)", name, msg_id,
                             message.sender, len(message.text))
            else:
                c = message.concat
                fresh = self.store.add_part(modem=name, key=key, sender=message.sender,
                                            reference=c.reference, total=c.total,
                                            sequence=c.sequence, bits=c.bits, pdu=item.pdu)
                if fresh:
                    self._complete(self.reassembler.add(message, item.pdu, time.time()))
                else:
                    log.info("modem=%s duplicate part %d/%d from %s ignored", name,
                             c.sequence, c.total, message.sender)
        else:
            log.warning("modem=%s unexpected PDU type %s kept as bad", name, type(message).__name__)
            self.store.add_bad_pdu(modem=name, pdu=item.pdu, error="unexpected PDU type")
        self.modem.done(item)

    def _complete(self, message):
        if message is None:
            return
        msg_id = self.store.complete_parts(
            modem=self.modem_name, keys=[pdu_key(p) for p in message.pdus], sender=message.sender,
            text=message.text, sent_at=message.timestamp.isoformat(), parts=message.parts,
            incomplete=message.incomplete, pdus=message.pdus)
        log.info("modem=%s id=%s received from %s in %d/%d parts%s", self.modem_name, msg_id,
                 message.sender, message.parts, message.total,
                 " (incomplete)" if message.incomplete else "")

    def _expire_parts(self):
        for message in self.reassembler.expire(time.time()):
            self._complete(message)

    # -- outbound ----------------------------------------------------------------------------

    def _send_one(self):
        """Send the oldest queued message, if any. Returns True if one was attempted."""
        row = self.store.next_outbound(self.modem_name, time.time())
        if row is None:
            return False
        msg_id = row["id"]
        self.store.outbound_sending(msg_id)
        wants_report = self.status_reports or bool(row.get("dlr_mask") and row.get("dlr_url"))
        try:
            refs = self.modem.send_sms(row["recipient"], row["text"], status_report=wants_report,
                                       max_parts=self.max_parts, encoding=row.get("encoding"))
        except errors.ModemError as exc:
            attempts = (row.get("attempts") or 0) + 1
            if exc.transient and attempts < self.max_attempts:
                delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
                self.store.outbound_retry(msg_id, error=str(exc), next_attempt=time.time() + delay)
                log.warning("modem=%s id=%s send failed (%s), retry %d in %.0fs", self.modem_name,
                            msg_id, exc, attempts, delay)
            else:
                self.store.outbound_failed(msg_id, error=str(exc))
                log.error("modem=%s id=%s send failed for good: %s", self.modem_name, msg_id, exc)
            return True
        except Exception as exc:
            # The port or the modem failed mid-send: the message goes back in the queue and the
            # outer loop reconnects. It may have left the modem (at-least-once).
            self.store.outbound_retry(msg_id, error="%s: %s" % (type(exc).__name__, exc),
                                      next_attempt=time.time())
            raise
        self.store.outbound_sent(msg_id, references=refs)
        log.info("modem=%s id=%s sent to %s refs=%s", self.modem_name, msg_id, row["recipient"], refs)
        return True

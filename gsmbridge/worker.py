"""The thread that owns one modem.

It is the only code that touches the modem's serial port. Inbound it moves SMS from the modem to the
store, and only after the store has committed them does it let the modem forget them (AT+CMGD for a
stored message, AT+CNMA for a routed one). Outbound it takes queued messages from the store, marks
each `sending` (committed) before AT+CMGS, and records the outcome, no faster than `send_rate`.

It keeps going unattended:

* the port vanishing (USB unplugged, re-enumerated) or failing: close, report the modem down, reopen
  with backoff once the device path is back, boot, carry on;
* a command with no answer: the watchdog escalates -- ESC and AT on the open port, then a reopen,
  then the configured reset command (AT+CFUN=1,1), and after `watchdog_exit_after` failed
  recoveries it stops the bridge with exit status 3 (`EXIT_WATCHDOG`) so that the supervisor starts
  a fresh process;
* lost network registration: sending waits (messages stay queued), the status says "no network",
  and after a while the modem is asked to register again (AT+COPS=0);
* a PDU that does not decode, or a message this code fails to handle, is kept as a bad PDU and the
  modem is told to forget it, so one odd message never wedges the queue behind it.
"""

import dataclasses
import hashlib
import logging
import os
import random
import sqlite3
import threading
import time
from datetime import datetime, timezone

from gsmbridge import metrics
from gsmbridge.modem import errors
from gsmbridge.codec.pdu import Deliver, PduError, StatusReport, decode
from gsmbridge.codec.reassembly import Reassembler

log = logging.getLogger("gsmbridge.worker")

#: the exit status of a bridge whose watchdog gave up on a modem that does not answer
EXIT_WATCHDOG = 3

# Send errors that mean "no network right now": the message is fine and waits, however often.
NO_NETWORK = frozenset({("CMS", 331), ("CME", 30), ("CME", 32)})

# Stands in for a time stamp the SMSC got wrong while parts are reassembled (the reassembler takes
# the earliest of the parts' time stamps, so any real one wins over it).
_NO_TIME = datetime.max.replace(tzinfo=timezone.utc)


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


def _iso(timestamp):
    """A message's SCTS for the store: ISO 8601, or None when the SMSC sent no valid one."""
    if timestamp is None or timestamp == _NO_TIME:
        return None
    return timestamp.isoformat()


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


class TokenBucket:
    """At most `per_minute` SMS a minute, as a bucket of one token refilled at that rate.

    Carriers bar SIMs that send too fast, and they count SMS, so each part of a long message costs
    a token. A message may be sent when a whole token is there; its parts are then all taken, the
    bucket going into debt for the rest, which the next message waits out. 0 means no limit.
    """

    def __init__(self, per_minute, *, burst=1.0, clock=time.monotonic):
        self.rate = per_minute / 60.0
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()

    def _refill(self):
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self):
        """True when a message may be sent now."""
        if self.rate <= 0:
            return True
        self._refill()
        return self.tokens >= 1.0

    def take(self, parts):
        if self.rate > 0:
            self._refill()
            self.tokens -= parts


class ModemWorker(threading.Thread):
    """Owns one modem for the life of the bridge: boot, receive, send, recover.

    `open_modem()` builds a fresh (unopened) GsmModem; one is made for each (re)connection.
    `on_giveup(worker)` is called when the watchdog gives up (the worker has stopped by then); the
    bridge then exits with EXIT_WATCHDOG.
    """

    #: how long one serial read waits when there is nothing to send; a message queued meanwhile
    #: cuts it short (the store's notify calls the modem's wake())
    idle_poll = 0.5
    #: how often signal and registration are refreshed for the status page
    status_interval = 30.0
    #: ... and how often while the modem is not registered
    no_network_interval = 5.0
    #: how long without registration before AT+COPS=0 (and again after as long)
    reregister_after = 120.0
    #: how long AT+COPS=0 may take (modems answer it once they have searched)
    reregister_timeout = 120.0
    #: how often incomplete concatenated messages are checked for expiry
    expire_interval = 30.0
    #: a modem that answered for this long has recovered: its next silence starts a new count
    stable_after = 60.0
    #: how long a modem is left to restart after the reset command
    reset_wait = 10.0
    #: first wait before reopening a port
    reconnect_base = 1.0

    def __init__(self, name, store, open_modem, *, max_parts=10, status_reports=False,
                 sweep_interval=60.0, reassembly_timeout=3600.0, max_attempts=5,
                 retry_base=5.0, retry_cap=300.0, reconnect_cap=60.0, send_rate=0.0,
                 reset_command=None, watchdog_exit_after=5, on_giveup=None):
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
        self.reconnect = Backoff(self.reconnect_base, reconnect_cap)
        self.throttle = TokenBucket(send_rate)
        self.reset_command = reset_command or None
        self.watchdog_exit_after = watchdog_exit_after
        self.on_giveup = on_giveup
        self.stopping = threading.Event()
        self.modem = None
        self.port = None                # the device path, known once a modem was built
        self.gave_up = None             # why the watchdog gave up, once it has
        self.failed_recoveries = 0      # in the current watchdog episode
        self.reset_done = False         # the reset command was tried in this episode
        self._recovering = False        # the watchdog closed the port: the next boot ends that
        self.up_since = None            # monotonic time of the last successful boot
        self.boots = 0
        self.registered = None          # from the last status check (None: not known)
        self._lost_network = None       # monotonic time registration was found lost
        self._next_reregister = None
        self._next_status = 0.0
        self._parts_loaded = False
        self._partial = {}              # outbound id -> (concat reference, refs of parts sent)
        self._labels = {"modem": name}

    # -- life cycle --------------------------------------------------------------------------

    def stop(self):
        """Ask the worker to finish the message in flight and close the port."""
        self.stopping.set()
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake()

    def run(self):
        while not self.stopping.is_set():
            try:
                if self.modem is None:
                    self._bring_up()
                self._serve()
            except Exception as exc:  # any failure of the port, the modem or the store
                if self.stopping.is_set():
                    break
                self._trouble(exc)
        self._close()
        metrics.MODEM_UP.labels(**self._labels).set(0)
        if self.gave_up is None:
            self._set_state("stopped")
        log.info("modem=%s stopped", self.modem_name)

    def _bring_up(self):
        self._set_state("booting")
        self.modem = self.open_modem()
        self.port = getattr(self.modem, "port", None)
        self.modem.boot()
        self._wake = getattr(self.modem, "wake", None)
        if self._wake is not None:
            self.store.on_notify(self._wake)
        if self.boots:
            metrics.RECONNECTS.labels(**self._labels).inc()
        self.boots += 1
        self.up_since = time.monotonic()
        self.reconnect.reset()
        self._next_status = 0.0
        self._set_state("up", last_error=None, recoveries=self.failed_recoveries)
        metrics.MODEM_UP.labels(**self._labels).set(1)
        if self._recovering:
            log.warning("watchdog: modem=%s answers again after %d failed recoveries",
                        self.modem_name, self.failed_recoveries)
        elif self.boots > 1:
            log.warning("modem=%s up again", self.modem_name)
        else:
            log.info("modem=%s up", self.modem_name)
        self._recovering = False

    def _close(self):
        wake, self._wake = getattr(self, "_wake", None), None
        if wake is not None:
            self.store.off_notify(wake)
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

    # -- recovery ----------------------------------------------------------------------------

    def _trouble(self, exc):
        """Something failed: recover, then return to run(), which serves again."""
        metrics.MODEM_UP.labels(**self._labels).set(0)
        reason = "%s: %s" % (type(exc).__name__, exc)
        if isinstance(exc, errors.ModemTimeout):
            self._watchdog(reason)
            return
        self._close()
        self.up_since = None
        delay = self.reconnect.next()
        if isinstance(exc, errors.ModemGone):
            log.warning("modem=%s port gone: %s; reopening when it is back (%.1fs at most)",
                        self.modem_name, exc, delay)
            self._set_state("down", last_error=reason)
            self._wait_for_port(delay)
        else:
            level = logging.ERROR if isinstance(exc, sqlite3.Error) else logging.WARNING
            log.log(level, "modem=%s down: %s; reopening in %.1fs", self.modem_name, reason,
                    delay, exc_info=not isinstance(exc, errors.ModemError))
            self._set_state("down", last_error=reason)
            self.stopping.wait(delay)

    def _watchdog(self, reason):
        """The modem did not answer. Escalate: ESC and AT on the open port; reopen (run() does
        that after this returns); the reset command; at last give up, so that the supervisor
        starts the bridge afresh. A modem that answered for stable_after seconds since its last
        boot starts a new count."""
        name = self.modem_name
        serving = self.modem is not None and self.modem.is_open and self.up_since is not None
        if serving and time.monotonic() - self.up_since >= self.stable_after:
            self.failed_recoveries = 0
            self.reset_done = False
        self._set_state("not answering", last_error=reason,
                        recoveries=self.failed_recoveries)
        if serving:
            log.warning("watchdog: modem=%s did not answer (%s); sending ESC and AT", name,
                        reason)
            try:
                answered = self.modem.probe()
            except Exception as exc:
                log.warning("watchdog: modem=%s probe failed: %s", name, exc)
                answered = False
            if answered:
                log.warning("watchdog: modem=%s answers again; carrying on", name)
                self._set_state("up", last_error=reason)
                metrics.MODEM_UP.labels(**self._labels).set(1)
                self._next_status = 0.0
                return
        self._close()
        self.up_since = None
        self.failed_recoveries += 1
        self._recovering = True
        limit = self.watchdog_exit_after
        log.error("watchdog: modem=%s not answering (%s); failed recovery %d%s", name, reason,
                  self.failed_recoveries, " of %d" % limit if limit else "")
        self._set_state("down", last_error="no answer: " + reason,
                        recoveries=self.failed_recoveries)
        if limit and self.failed_recoveries >= limit:
            self._give_up(reason)
            return
        if self.reset_command and self.failed_recoveries >= 2 and not self.reset_done:
            self.reset_done = True
            self._reset()
        self.stopping.wait(self.reconnect.next())

    def _reset(self):
        name = self.modem_name
        log.warning("watchdog: modem=%s sending %s", name, self.reset_command)
        try:
            modem = self.open_modem()
            self.port = getattr(modem, "port", self.port)
            modem.reset(self.reset_command)
        except Exception as exc:
            log.warning("watchdog: modem=%s reset failed: %s", name, exc)
        self.stopping.wait(self.reset_wait)

    def _give_up(self, reason):
        log.critical("watchdog: modem=%s has not answered through %d recoveries (last: %s); "
                     "giving up: the bridge exits with status %d so that its supervisor starts "
                     "it afresh", self.modem_name, self.failed_recoveries, reason, EXIT_WATCHDOG)
        self.gave_up = reason
        self._set_state("down", last_error="watchdog gave up: " + reason,
                        recoveries=self.failed_recoveries)
        self.stopping.set()
        if self.on_giveup is not None:
            self.on_giveup(self)

    def _wait_for_port(self, delay):
        """Sleep up to `delay`, but a device path that is missing now ends the wait as soon as it
        is back (a USB modem re-enumerating comes back at its /dev/serial/by-id/ path)."""
        path = self.port if isinstance(self.port, str) and self.port.startswith("/") else None
        missing = path is not None and not os.path.exists(path)
        end = time.monotonic() + delay
        while not self.stopping.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            if missing and os.path.exists(path):
                log.info("modem=%s %s is back", self.modem_name, path)
                self.stopping.wait(0.2)      # let udev finish with it (permissions)
                return
            self.stopping.wait(min(0.2 if missing else remaining, remaining))

    # -- the loop ----------------------------------------------------------------------------

    def _serve(self):
        if not self._parts_loaded:
            self._reload_parts()
            self._parts_loaded = True
        now = time.monotonic()
        next_sweep = now + self.sweep_interval
        next_expire = now + self.expire_interval
        while not self.stopping.is_set():
            sent = False
            if self.registered is not False and self.throttle.ready():
                sent = self._send_one()
            self._take_all(self.modem.poll(0 if sent else self.idle_poll))
            now = time.monotonic()
            if now >= next_sweep:
                self._take_all(self.modem.sweep())
                next_sweep = now + self.sweep_interval
            if now >= self._next_status:
                self._refresh_status()
            if now >= next_expire:
                self._expire_parts()
                next_expire = now + self.expire_interval

    def _refresh_status(self):
        """Signal and registration for the status page; lost registration holds sending and,
        after reregister_after, asks the modem to register again."""
        now = time.monotonic()
        try:
            signal = self.modem.signal_strength()
            net = self.modem.network()
        except errors.ModemError as exc:
            log.info("modem=%s status query failed: %s", self.modem_name, exc)
            self._next_status = now + self.status_interval
            return
        if signal is not None:
            metrics.MODEM_SIGNAL.labels(**self._labels).set(signal)
        # registration None: the modem would not say; then sending is not held back.
        known_lost = not net.registered and net.registration is not None
        if known_lost:
            if self._lost_network is None:
                self._lost_network = now
                self._next_reregister = now + self.reregister_after
                log.warning("modem=%s not registered (+CREG %s); sending waits",
                            self.modem_name, net.registration)
            self.registered = False
            self._next_status = now + self.no_network_interval
        else:
            if self._lost_network is not None:
                log.warning("modem=%s registered again after %.0fs", self.modem_name,
                            now - self._lost_network)
            self._lost_network = self._next_reregister = None
            self.registered = net.registered if net.registration is not None else None
            self._next_status = now + self.status_interval
        self._set_state("no network" if known_lost else "up", signal=signal,
                        operator=net.operator, registration=net.registration,
                        registered=net.registered)
        if known_lost and now >= self._next_reregister:
            self._reregister()
            self._next_reregister = time.monotonic() + self.reregister_after

    def _reregister(self):
        log.warning("modem=%s still not registered; asking it to register (AT+COPS=0)",
                    self.modem_name)
        try:
            self.modem.command("AT+COPS=0", timeout=self.reregister_timeout)
        except errors.ModemError as exc:
            log.warning("modem=%s AT+COPS=0: %s", self.modem_name, exc)
        except errors.ModemTimeout:
            # Searching can take minutes; not a hang. A late answer is read and dropped.
            log.warning("modem=%s AT+COPS=0 unanswered after %.0fs", self.modem_name,
                        self.reregister_timeout)

    # -- inbound -----------------------------------------------------------------------------

    def _reload_parts(self):
        """Parts committed before a restart go back into the reassembler."""
        for part in self.store.pending_parts(self.modem_name):
            try:
                deliver = decode(part["pdu"])
            except PduError:
                log.error("modem=%s stored part %s no longer decodes", self.modem_name, part["key"])
                continue
            if not isinstance(deliver, Deliver):
                continue
            self._complete(self.reassembler.add(self._reassemblable(deliver), part["pdu"],
                                                time.time()))

    @staticmethod
    def _reassemblable(deliver):
        if deliver.timestamp is None:
            return dataclasses.replace(deliver, timestamp=_NO_TIME)
        return deliver

    def _take_all(self, items):
        for item in items:
            self._take(item)

    def _take(self, item):
        """Commit one inbound item to the store, then let the modem forget it.

        If handling it fails for any reason but the store's, it is kept as a bad PDU with the
        reason: it must not stay on the modem to fail again at every read. The store failing is
        different: then nothing was committed, so the modem keeps it.
        """
        try:
            self._commit(item)
        except (sqlite3.Error, errors.ModemError, errors.ModemTimeout, errors.ModemGone):
            raise
        except Exception as exc:
            log.exception("modem=%s could not handle an inbound PDU; keeping it as bad",
                          self.modem_name)
            self._bad(item, "not handled: %s: %s" % (type(exc).__name__, exc))
        self.modem.done(item)

    def _bad(self, item, error):
        row = self.store.add_bad_pdu(modem=self.modem_name, pdu=item.pdu, error=error)
        metrics.BAD_PDUS.labels(**self._labels).inc()
        log.error("modem=%s bad_pdu=%s kept: %s pdu=%s", self.modem_name, row, error, item.pdu)

    def _commit(self, item):
        name = self.modem_name
        message = item.message
        if message is None:
            self._bad(item, item.error or "undecodable")
        elif isinstance(message, StatusReport):
            self.store.add_report(modem=name, reference=message.reference,
                                  recipient=message.recipient, status=message.status, pdu=item.pdu)
            log.info("modem=%s status report ref=%s to=%s status=%#x", name, message.reference,
                     message.recipient, message.status)
        elif isinstance(message, Deliver):
            if message.timestamp is None:
                log.warning("modem=%s SMS from %s has no valid SMSC time stamp (%s); kept "
                            "without one", name, message.sender, message.timestamp_error)
            key = pdu_key(item.pdu)
            if message.concat is None or message.concat.total <= 1:
                msg_id = self.store.add_inbound(
                    modem=name, sender=message.sender, text=message.text,
                    sent_at=_iso(message.timestamp), parts=1, incomplete=False,
                    pdus=[item.pdu], keys=[key])
                if msg_id is None:
                    log.info("modem=%s duplicate SMS from %s ignored", name, message.sender)
                else:
                    metrics.RECEIVED.labels(**self._labels).inc()
                    log.info("modem=%s id=%s received from %s (%d chars)", name, msg_id,
                             message.sender, len(message.text))
            else:
                c = message.concat
                fresh = self.store.add_part(modem=name, key=key, sender=message.sender,
                                            reference=c.reference, total=c.total,
                                            sequence=c.sequence, bits=c.bits, pdu=item.pdu)
                if fresh:
                    self._complete(self.reassembler.add(self._reassemblable(message), item.pdu,
                                                        time.time()))
                else:
                    log.info("modem=%s duplicate part %d/%d from %s ignored", name,
                             c.sequence, c.total, message.sender)
        else:
            self._bad(item, "unexpected PDU type %s" % type(message).__name__)

    def _complete(self, message):
        if message is None:
            return
        msg_id = self.store.complete_parts(
            modem=self.modem_name, keys=[pdu_key(p) for p in message.pdus], sender=message.sender,
            text=message.text, sent_at=_iso(message.timestamp), parts=message.parts,
            incomplete=message.incomplete, pdus=message.pdus)
        metrics.RECEIVED.labels(**self._labels).inc()
        log.info("modem=%s id=%s received from %s in %d/%d parts%s", self.modem_name, msg_id,
                 message.sender, message.parts, message.total,
                 " (incomplete)" if message.incomplete else "")

    def _expire_parts(self):
        for message in self.reassembler.expire(time.time()):
            self._complete(message)

    # -- outbound ----------------------------------------------------------------------------

    def _send_one(self):
        """Send the oldest queued message, if any. Returns True if one was attempted.

        The message is committed `sending` before AT+CMGS, so a crash in between is found at the
        next start (store.recover_sending). Parts that went out before a failure are remembered
        (in memory) and not sent again when the message is retried by this process.
        """
        name = self.modem_name
        row = self.store.next_outbound(name, time.time())
        if row is None:
            return False
        msg_id = row["id"]
        if not self.store.outbound_sending(msg_id, modem=name):
            return True
        resume = self._partial.get(msg_id)
        wants_report = self.status_reports or bool(row.get("dlr_mask") and row.get("dlr_url"))
        started = time.monotonic()
        try:
            refs = self.modem.send_sms(
                row["recipient"], row["text"], status_report=wants_report,
                max_parts=self.max_parts, encoding=row.get("encoding"),
                concat_reference=resume[0] if resume else None,
                skip_parts=len(resume[1]) if resume else 0)
        except ValueError as exc:
            # The codec refused the text (pdu.TooLong beyond max_parts, a number it cannot
            # encode) before anything was written: the same text fails the same way again.
            self._partial.pop(msg_id, None)
            self.store.outbound_failed(msg_id, error="%s: %s" % (type(exc).__name__, exc))
            metrics.SEND_FAILED.labels(**self._labels).inc()
            log.error("modem=%s id=%s cannot be sent: %s", name, msg_id, exc)
            return True
        except errors.ModemError as exc:
            self._remember_parts(msg_id, resume, exc)
            self.throttle.take(len(getattr(exc, "sent_references", ())) + 1)
            self._send_refused(row, exc)
            return True
        except Exception as exc:
            # The port or the modem failed mid-send (no answer, port gone): the message goes
            # back in the queue, and run() recovers the modem. The part in flight may have
            # left the modem (at-least-once).
            self._remember_parts(msg_id, resume, exc)
            attempts = row.get("attempts") or 0
            delay = min(self.retry_cap, self.retry_base * 2 ** max(0, attempts - 1))
            self.store.outbound_retry(msg_id, error="%s: %s" % (type(exc).__name__, exc),
                                      next_attempt=time.time() + (delay if attempts else 0))
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            raise
        self.throttle.take(max(1, len(refs)))
        done = (list(resume[1]) if resume else []) + list(refs)
        self._partial.pop(msg_id, None)
        self.store.outbound_sent(msg_id, references=done)
        metrics.SENT.labels(**self._labels).inc()
        metrics.SEND_SECONDS.labels(**self._labels).observe(time.monotonic() - started)
        log.info("modem=%s id=%s sent to %s refs=%s", name, msg_id, row["recipient"], done)
        return True

    def _remember_parts(self, msg_id, resume, exc):
        sent = getattr(exc, "sent_references", None)
        reference = getattr(exc, "concat_reference", None)
        if sent and reference is not None:
            before = list(resume[1]) if resume else []
            self._partial[msg_id] = (reference, before + list(sent))

    def _send_refused(self, row, exc):
        """The modem or the network answered a part with an error."""
        name, msg_id = self.modem_name, row["id"]
        attempts = (row.get("attempts") or 0) + 1
        if (exc.kind, exc.code) in NO_NETWORK:
            # Not the message's fault, and no use trying others: hold sending until the next
            # status check finds the modem registered.
            self.registered = False
            self._next_status = 0.0
            delay = self.retry_base
            self.store.outbound_retry(msg_id, error=str(exc), next_attempt=time.time() + delay)
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            log.warning("modem=%s id=%s not sent: %s; waiting for the network", name, msg_id, exc)
        elif exc.transient and attempts < self.max_attempts:
            delay = min(self.retry_cap, self.retry_base * 2 ** (attempts - 1))
            self.store.outbound_retry(msg_id, error=str(exc), next_attempt=time.time() + delay)
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            log.warning("modem=%s id=%s send failed (%s), retry %d in %.0fs", name, msg_id, exc,
                        attempts, delay)
        else:
            self._partial.pop(msg_id, None)
            self.store.outbound_failed(msg_id, error=str(exc))
            metrics.SEND_FAILED.labels(**self._labels).inc()
            log.error("modem=%s id=%s send failed for good: %s", name, msg_id, exc)

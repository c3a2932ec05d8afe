"""The thread that owns one modem, and keeps it going unattended.

It is the only code that touches the modem's serial port. Its loop sends one queued message when
the rate allows (send.py), hands what the modem receives to be committed (receive.py), sweeps the
modem's storage, refreshes signal and registration for the status page, and expires parts that
will not be completed. Around the loop is its recovery:

* the port vanishing (USB unplugged, re-enumerated) or failing: close, report the modem down, reopen
  with backoff once the device path is back, boot, carry on;
* a command with no answer: the watchdog escalates -- ESC and AT on the open port, then a reopen,
  then the configured reset command (AT+CFUN=1,1), and after `watchdog_exit_after` failed
  recoveries it stops the bridge with exit status 3 (`EXIT_WATCHDOG`) so that the supervisor starts
  a fresh process;
* lost network registration: sending waits (messages stay queued), the status says "no network",
  and after a while the modem is asked to register again (AT+COPS=0);
* the store failing: nothing was committed, so the modem keeps what it had; the worker closes the
  port and starts again after the same backoff, logging it as an error.

Between two SMS commands it also runs the SIM's services (services.py, when given): USSD
requests from the store, the balance watch, incoming calls.
"""

import logging
import os
import threading
import time

from gsmbridge import metrics
from gsmbridge.backoff import Backoff
from gsmbridge.jsonlog import Fields
from gsmbridge.modem import errors
from gsmbridge.store import StoreError

from .receive import InboundCommitter
from .send import OutboundSender
from .throttle import TokenBucket

#: the exit status of a bridge whose watchdog gave up on a modem that does not answer
EXIT_WATCHDOG = 3

#: how much a reopen's wait is spread either way, cap included, so that modems on one hub that
#: failed together do not all come back in the same instant
RECONNECT_JITTER = 0.2


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
                 reset_command=None, watchdog_exit_after=5, on_giveup=None, services=None,
                 claim_ahead=True):
        """claim_ahead: claim the next message while one is sent (send.py's pipeline). Off when
        messages left `sending` by a crash are marked unknown rather than sent again
        ([bridge] resend_unconfirmed = no): a message claimed ahead was never sent, and must
        not end unknown."""
        super().__init__(name="modem-%s" % name, daemon=True)
        self.claim_ahead = claim_ahead
        self.modem_name = name
        self.store = store
        self.open_modem = open_modem
        self.sweep_interval = sweep_interval
        self.log = Fields(logging.getLogger("gsmbridge.worker"), {"modem": name})
        self.inbound = InboundCommitter(name, store, reassembly_timeout=reassembly_timeout,
                                        log=self.log)
        self.outbound = OutboundSender(name, store, retry=Backoff(retry_base, retry_cap),
                                       max_attempts=max_attempts, max_parts=max_parts,
                                       status_reports=status_reports, log=self.log)
        #: the wait before reopening the port, by the count of reopens since the last boot
        self.reconnect = Backoff(self.reconnect_base, reconnect_cap, jitter=RECONNECT_JITTER,
                                 hard_cap=False)
        self.throttle = TokenBucket(send_rate)
        self.reset_command = reset_command or None
        self.watchdog_exit_after = watchdog_exit_after
        self.on_giveup = on_giveup
        self.services = services        # services.SimServices, or None
        self.stopping = threading.Event()
        self.modem = None
        self.port = None                # the device path, known once a modem was built
        self.gave_up = None             # why the watchdog gave up, once it has
        self.failed_recoveries = 0      # in the current watchdog episode
        self.reset_done = False         # the reset command was tried in this episode
        self._recovering = False        # the watchdog closed the port: the next boot ends that
        self._reopens = 0               # reopens since the last successful boot
        self.up_since = None            # monotonic time of the last successful boot
        self.boots = 0
        self.registered = None          # from the last status check (None: not known)
        self._lost_network = None       # monotonic time registration was found lost
        self._next_reregister = None
        self._next_status = 0.0
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
        self._release_claim()
        self._close()
        metrics.MODEM_UP.labels(**self._labels).set(0)
        if self.gave_up is None:
            self._set_state("stopped")
        self.log.info("modem=%s stopped", self.modem_name)

    def _bring_up(self):
        self._set_state("booting")
        self.modem = self.open_modem()
        self.port = getattr(self.modem, "port", None)
        self.modem.boot()
        self._wake = getattr(self.modem, "wake", None)
        if self._wake is not None:
            self.store.on_notify(self._wake, topics=("outbound",))
        if self.boots:
            metrics.RECONNECTS.labels(**self._labels).inc()
        self.boots += 1
        self.up_since = time.monotonic()
        self._reopens = 0
        self._next_status = 0.0
        self._set_state("up", last_error=None, recoveries=self.failed_recoveries)
        metrics.MODEM_UP.labels(**self._labels).set(1)
        if self.services is not None:
            self.services.started(self.modem)
        if self._recovering:
            self.log.warning("watchdog: modem=%s answers again after %d failed recoveries",
                             self.modem_name, self.failed_recoveries)
        elif self.boots > 1:
            self.log.warning("modem=%s up again", self.modem_name)
        else:
            self.log.info("modem=%s up", self.modem_name)
        self._recovering = False

    def _release_claim(self):
        """The message sent last is recorded, and one claimed for the next send goes back to
        the queue (the worker stops, or must recover first); if the store cannot take them now,
        they stay `sending` and the next start deals with them as with any message interrupted
        while sending."""
        try:
            self.outbound.release()
        except Exception:
            self.log.exception("modem=%s could not hand back its claimed message",
                               self.modem_name)

    def _close(self):
        wake, self._wake = getattr(self, "_wake", None), None
        if wake is not None:
            self.store.off_notify(wake)
        if self.modem is not None:
            try:
                self.modem.close()
            except Exception:
                self.log.debug("modem=%s close failed", self.modem_name, exc_info=True)
            self.modem = None

    def _set_state(self, state, **fields):
        try:
            self.store.set_modem(self.modem_name, state=state, **fields)
        except Exception:
            self.log.exception("modem=%s could not record state %s", self.modem_name, state)

    # -- recovery ----------------------------------------------------------------------------

    def _trouble(self, exc):
        """Something failed: recover, then return to run(), which serves again."""
        metrics.MODEM_UP.labels(**self._labels).set(0)
        self._release_claim()        # another modem may send it meanwhile
        reason = "%s: %s" % (type(exc).__name__, exc)
        if isinstance(exc, errors.ModemTimeout):
            self._watchdog(reason)
            return
        self._close()
        self.up_since = None
        delay = self._reopen_delay()
        if isinstance(exc, errors.ModemGone):
            self.log.warning("modem=%s port gone: %s; reopening when it is back (%.1fs at most)",
                             self.modem_name, exc, delay)
            self._set_state("down", last_error=reason)
            self._wait_for_port(delay)
        else:
            level = logging.ERROR if isinstance(exc, StoreError) else logging.WARNING
            self.log.log(level, "modem=%s down: %s; reopening in %.1fs", self.modem_name, reason,
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
            self.log.warning("watchdog: modem=%s did not answer (%s); sending ESC and AT", name,
                             reason)
            try:
                answered = self.modem.probe()
            except Exception as exc:
                self.log.warning("watchdog: modem=%s probe failed: %s", name, exc)
                answered = False
            if answered:
                self.log.warning("watchdog: modem=%s answers again; carrying on", name)
                self._set_state("up", last_error=reason)
                metrics.MODEM_UP.labels(**self._labels).set(1)
                self._next_status = 0.0
                return
        self._close()
        self.up_since = None
        self.failed_recoveries += 1
        self._recovering = True
        limit = self.watchdog_exit_after
        self.log.error("watchdog: modem=%s not answering (%s); failed recovery %d%s", name, reason,
                       self.failed_recoveries, " of %d" % limit if limit else "")
        self._set_state("down", last_error="no answer: " + reason,
                        recoveries=self.failed_recoveries)
        if limit and self.failed_recoveries >= limit:
            self._give_up(reason)
            return
        if self.reset_command and self.failed_recoveries >= 2 and not self.reset_done:
            self.reset_done = True
            self._reset()
        self.stopping.wait(self._reopen_delay())

    def _reset(self):
        name = self.modem_name
        self.log.warning("watchdog: modem=%s sending %s", name, self.reset_command)
        try:
            modem = self.open_modem()
            self.port = getattr(modem, "port", self.port)
            modem.reset(self.reset_command)
        except Exception as exc:
            self.log.warning("watchdog: modem=%s reset failed: %s", name, exc)
        self.stopping.wait(self.reset_wait)

    def _give_up(self, reason):
        self.log.critical("watchdog: modem=%s has not answered through %d recoveries (last: %s); "
                          "giving up: the bridge exits with status %d so that its supervisor "
                          "starts it afresh", self.modem_name, self.failed_recoveries, reason,
                          EXIT_WATCHDOG)
        self.gave_up = reason
        self._set_state("down", last_error="watchdog gave up: " + reason,
                        recoveries=self.failed_recoveries)
        self.stopping.set()
        if self.on_giveup is not None:
            self.on_giveup(self)

    def _reopen_delay(self):
        """The wait before the next reopen: it grows with each reopen since the last boot."""
        self._reopens += 1
        return self.reconnect.delay(self._reopens)

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
                self.log.info("modem=%s %s is back", self.modem_name, path)
                self.stopping.wait(0.2)      # let udev finish with it (permissions)
                return
            self.stopping.wait(min(0.2 if missing else remaining, remaining))

    # -- the loop ----------------------------------------------------------------------------

    def _serve(self):
        self.inbound.load_parts()
        now = time.monotonic()
        next_sweep = now + self.sweep_interval
        next_expire = now + self.expire_interval
        while not self.stopping.is_set():
            outcome = None
            if self.registered is not False and self.throttle.ready():
                # Messages are claimed ahead (send.py) only when no rate limit stands between
                # a claim and its AT+CMGS, and a crash puts claimed messages back in the queue.
                outcome = self.outbound.send_one(
                    self.modem, self.throttle,
                    claim_next=self.claim_ahead and self.throttle.rate <= 0)
                if outcome == "no network":
                    self._hold_sending()
            self.inbound.take_all(self.modem, self.modem.poll(
                self.idle_poll if outcome is None else 0))
            if self.services is not None:
                self.services.step(self.modem)
            now = time.monotonic()
            if now >= min(next_sweep, self._next_status, next_expire):
                self.outbound.flush()   # the message sent last is recorded before other work
            if now >= next_sweep:
                self.inbound.take_all(self.modem, self.modem.sweep())
                next_sweep = now + self.sweep_interval
            if now >= self._next_status:
                self._refresh_status()
            if now >= next_expire:
                self.inbound.expire()
                next_expire = now + self.expire_interval
            if self.outbound.claimed is not None and self.registered is False:
                self.outbound.release()     # the status check found no network: it waits

    def _hold_sending(self):
        """The network refused a send for want of registration: no use trying other messages
        until the next status check, made at once, finds the modem registered."""
        self.registered = False
        self._next_status = 0.0

    def _refresh_status(self):
        """Signal and registration for the status page; lost registration holds sending and,
        after reregister_after, asks the modem to register again."""
        now = time.monotonic()
        try:
            signal = self.modem.signal_strength()
            net = self.modem.network()
        except errors.ModemError as exc:
            self.log.info("modem=%s status query failed: %s", self.modem_name, exc)
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
                self.log.warning("modem=%s not registered (+CREG %s); sending waits",
                                 self.modem_name, net.registration)
            self.registered = False
            self._next_status = now + self.no_network_interval
        else:
            if self._lost_network is not None:
                self.log.warning("modem=%s registered again after %.0fs", self.modem_name,
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
        self.log.warning("modem=%s still not registered; asking it to register (AT+COPS=0)",
                         self.modem_name)
        try:
            self.modem.command("AT+COPS=0", timeout=self.reregister_timeout)
        except errors.ModemError as exc:
            self.log.warning("modem=%s AT+COPS=0: %s", self.modem_name, exc)
        except errors.ModemTimeout:
            # Searching can take minutes; not a hang. A late answer is read and dropped.
            self.log.warning("modem=%s AT+COPS=0 unanswered after %.0fs", self.modem_name,
                             self.reregister_timeout)

"""Wiring: builds the store, the modem workers, the forwarders, the upkeep and the web server from
a Config, runs them, and stops them in order on SIGTERM/SIGINT.

A pool of modems is one worker thread per modem, all pulling from the one store: the store's
routing (next_outbound, set_pool) decides which modem sends what. Inbound goes to RapidSMS
through one forwarder per receiver URL: [rapidsms] url, and each distinct [modem:NAME] url.
Delivery-report callbacks may reach those receivers' origins besides public addresses and
[http] callback_allow (`callback_guard`).

Each modem's worker also runs the SIM's services (worker/services.py: USSD from the HTTP API, the
balance watch, calls); a modem with a call_url has its calls posted by one CallPoster thread
(gsmbridge/calls.py).

With [cluster], a ClusterNode (gsmbridge/cluster/node.py) joins this bridge to the others on the
broker: it names the node in the store, which then places accepted messages (here, or on the
broker), and runs the heartbeats, the outbox relay, the status reports and an intake per modem.
The workers know nothing of it: what the intake takes from the broker is committed to the store,
where the modem's worker finds it like any queued message.

Stopping order matters: first the HTTP server stops taking new messages, then the worker finishes the
SMS in flight and the forwarder the request in flight, then the store closes. Anything not finished
stays in the store and is picked up at the next start.
"""

import logging
import os
import signal
import threading
import time

from gsmbridge.calls import CallPoster
from gsmbridge.config import ConfigError, sim_options
from gsmbridge.dlr import DlrSender
from gsmbridge.forwarder import Forwarder
from gsmbridge.housekeeping import Housekeeper
from gsmbridge.httpserver import HttpServer, ensure_open_files
from gsmbridge.jsonlog import Fields
from gsmbridge.safeurl import CallbackGuard
from gsmbridge.store import Store
from gsmbridge.web import create_app
from gsmbridge.worker import EXIT_WATCHDOG, ModemWorker
from gsmbridge.worker.services import SimServices

log = logging.getLogger("gsmbridge")

#: [modem] receive -> the driver's receive_mode ("poll" is stored receiving: the worker sweeps
#: the storage every sweep_interval whether notices come or not)
RECEIVE_MODES = {"auto": "auto", "cmt": "routed", "cmti": "stored", "poll": "stored"}

#: how long shutdown waits for the SMS in flight before leaving it to the next start
STOP_GRACE = 12.0


def parse_sim_url(port, simulate=None):
    """`sim://?control=127.0.0.1:13014&baud=115200` (and [modem] simulate) -> the options of the
    built-in simulated modem (config.SIM_OPTIONS), as start_simulator takes them."""
    return sim_options(port, simulate)


class InboundView:
    """The store as one forwarder sees it: only the inbound messages of some modems (those whose
    receiver it serves). Everything else is the store's own."""

    def __init__(self, store, modems):
        self.store = store
        self.modems = tuple(modems)

    def due_inbound(self, now, limit=50):
        return self.store.due_inbound(now, limit, modems=self.modems)

    def next_inbound_due(self):
        return self.store.next_inbound_due(modems=self.modems)

    def __getattr__(self, name):
        return getattr(self.store, name)


def forwarding_groups(config, stored_modems=()):
    """{receiver url: [modem names]} -- None as the list means "every modem" (no modem has a url
    of its own). Modems without a url, and modems that left the config but still have messages
    waiting (stored_modems), go to [rapidsms] url."""
    default = config.rapidsms.url
    own = {name: m.url for name, m in config.modems.items() if m.url and m.url != default}
    if not own:
        return {default: None}
    groups = {}
    for name, url in own.items():
        groups.setdefault(url, []).append(name)
    rest = [name for name in config.modems if name not in own]
    rest += [name for name in stored_modems if name not in config.modems and name not in rest]
    if rest:
        groups.setdefault(default, []).extend(rest)
    return groups


def callback_guard(config):
    """Where delivery-report callbacks may go besides public addresses: the origins of every
    receiver URL (RapidSMS's delivery-report view lives next to its backends) and [http]
    callback_allow."""
    return CallbackGuard(origins=[config.rapidsms.url, *(m.url for m in config.modems.values())],
                         allow=config.http.callback_allow)


class Bridge:
    """The running daemon: a worker per modem, a forwarder per receiver URL, one HTTP server,
    one store."""

    def __init__(self, config):
        self.config = config
        os.makedirs(os.path.dirname(os.path.abspath(config.store.path)), exist_ok=True)
        self.store = Store(config.store.path)
        orphans = self.store.set_pool({
            name: {"routes": m.routes, "daily_cap": m.daily_cap, "hourly_cap": m.hourly_cap}
            for name, m in config.modems.items()})
        if orphans:
            log.warning("%d queued message(s) are pinned to a modem this config does not have; "
                        "they wait until it is back", orphans)
        self.simulators = {}
        self.stopping = threading.Event()
        self.exit_status = 0
        self.workers = [self._make_worker(name, modem) for name, modem in config.modems.items()]
        rs = config.rapidsms
        groups = forwarding_groups(config, self.store.pending_inbound_modems()
                                   if len(config.modems) > 1 or config.modem.url else ())
        self.forwarders, self.forwarder_threads = [], []
        for number, (url, modems) in enumerate(groups.items()):
            store = self.store if modems is None else InboundView(self.store, modems)
            forwarder = Forwarder(store, url=url, style=rs.style, timeout=rs.timeout,
                                  identity_name=rs.identity_name, text_name=rs.text_name,
                                  backoff_cap=rs.retry_cap,
                                  numbers={name: m.number for name, m in config.modems.items()
                                           if m.number})
            self.forwarders.append(forwarder)
            self.forwarder_threads.append(threading.Thread(
                target=forwarder.run, args=(self.stopping,), daemon=True,
                name="forwarder" if len(groups) == 1 else "forwarder-%d" % number))
            if modems is not None:
                log.info("inbound from %s goes to %s", ", ".join(modems), forwarder.safe_url)
        self.forwarder = self.forwarders[0]
        self.dlr_sender = DlrSender(self.store, smsc=config.modem.name, timeout=rs.timeout,
                                    backoff_cap=rs.retry_cap, guard=callback_guard(config))
        self.dlr_thread = threading.Thread(target=self.dlr_sender.run, args=(self.stopping,),
                                           name="dlr", daemon=True)
        self.housekeeper = Housekeeper(self.store, keep_days=config.store.keep_days,
                                       interval=config.store.upkeep_interval)
        self.upkeep_thread = threading.Thread(target=self.housekeeper.run,
                                              args=(self.stopping,), name="upkeep", daemon=True)
        call_urls = {name: m.call_url for name, m in config.modems.items() if m.call_url}
        self.call_poster = self.call_thread = None
        if call_urls:
            self.call_poster = CallPoster(self.store, urls=call_urls, timeout=rs.timeout,
                                          backoff_cap=rs.retry_cap)
            self.call_thread = threading.Thread(target=self.call_poster.run,
                                                args=(self.stopping,), name="calls", daemon=True)
        self.cluster = None
        if config.cluster is not None:
            from gsmbridge.cluster import ClusterNode

            self.cluster = ClusterNode(self.store, config.cluster, config.modem_names)
        self.server = self._make_server()

    def _make_worker(self, name, cfg):
        port = cfg.port
        if port.startswith("sim://"):
            from gsmbridge.simulator.runner import start_simulator

            link = os.path.join(os.path.dirname(os.path.abspath(self.config.store.path)),
                                "sim-%s.tty" % name)
            simulator = self.simulators[name] = start_simulator(
                link, **parse_sim_url(port, cfg.simulate))
            log.info("modem=%s simulated modem at %s%s", name, link,
                     " control %s" % simulator.control_url if simulator.control_url else "",
                     extra={"modem": name})
            port = link

        def open_modem():
            from gsmbridge.modem.driver import GsmModem

            return GsmModem(port, baudrate=cfg.baudrate, pin=cfg.pin, smsc=cfg.smsc,
                            receive_mode=RECEIVE_MODES[cfg.receive],
                            command_timeout=cfg.command_timeout, send_timeout=cfg.send_timeout,
                            ussd_encoding=cfg.ussd_encoding, ussd_timeout=cfg.ussd_timeout)

        services = SimServices(name, self.store,
                               log=Fields(logging.getLogger("gsmbridge.worker"), {"modem": name}),
                               balance_code=cfg.balance_code, balance_pattern=cfg.balance_pattern,
                               balance_every=cfg.balance_every, post_calls=bool(cfg.call_url))
        bridge = self.config.bridge
        return ModemWorker(name, self.store, open_modem, max_parts=cfg.max_parts,
                           status_reports=cfg.status_reports, sweep_interval=cfg.sweep_interval,
                           reassembly_timeout=bridge.reassembly_timeout, send_rate=cfg.send_rate,
                           reset_command=cfg.reset_command,
                           watchdog_exit_after=cfg.watchdog_exit_after,
                           on_giveup=self._watchdog_gave_up, services=services,
                           claim_ahead=bridge.resend_unconfirmed)

    def _watchdog_gave_up(self, worker):
        """A modem that no recovery brought back: stop, and exit EXIT_WATCHDOG for the
        supervisor to start a fresh process."""
        self.exit_status = EXIT_WATCHDOG
        self.stopping.set()

    def _make_server(self):
        # Enough threads that RapidSMS's sendsms call, made from inside our own inbound request to
        # it, always finds one free: a bridge that waits there deadlocks.
        return HttpServer(create_app(self.store, self.config), self.config.http, threads=8)

    @property
    def address(self):
        return self.server.address

    def start(self):
        recovered = self.store.recover_sending(resend=self.config.bridge.resend_unconfirmed)
        if recovered:
            log.warning("%d message(s) were being sent when the bridge last stopped: %s", recovered,
                        "queued again" if self.config.bridge.resend_unconfirmed else "marked unknown")
        self.store.forget_receivers()   # the forwarders know nothing of them yet
        if self.cluster is not None:
            from gsmbridge.cluster import NameClash

            try:
                self.cluster.start()
            except NameClash as exc:
                raise ConfigError(exc.section, None, exc.message) from None
        for worker in self.workers:
            worker.start()
        for thread in self.forwarder_threads:
            thread.start()
        self.dlr_thread.start()
        self.upkeep_thread.start()
        if self.call_thread is not None:
            self.call_thread.start()
        self.server_thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self.server_thread.start()
        log.info("listening on http://%s/", self.address)

    def _serve(self):
        """The HTTP server's loop (it stops and closes from its own thread)."""
        try:
            self.server.serve(self.stopping)
        except Exception:
            log.exception("HTTP server failed")
            self.stopping.set()

    def stop(self):
        """Stop taking work, finish what is in flight, close. Safe to call twice.

        Everything shares one deadline, STOP_GRACE seconds from now, so that the process exits
        within supervisord's stopwaitsecs whatever is stuck: an SMS still in flight then stays
        `sending` in the store and is dealt with at the next start (resend_unconfirmed).
        """
        if getattr(self, "_stopped", False):
            return
        self._stopped = True
        log.info("stopping")
        deadline = time.monotonic() + STOP_GRACE
        self.stopping.set()
        if self.cluster is not None:
            self.cluster.stop(timeout=STOP_GRACE / 2)
        for worker in self.workers:
            worker.stop()
        self.store.notify()
        threads = [getattr(self, "server_thread", None), *self.workers, *self.forwarder_threads,
                   self.dlr_thread, getattr(self, "upkeep_thread", None), self.call_thread]
        for thread in threads:
            if thread is not None and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        for worker in self.workers:
            if worker.is_alive():
                log.warning("modem=%s did not finish in %.0fs; its message is left `sending`",
                            worker.modem_name, STOP_GRACE, extra={"modem": worker.modem_name})
        for simulator in self.simulators.values():
            simulator.stop()
        self.store.close()
        log.info("stopped")


def run(config):
    """Run the bridge in the foreground until SIGTERM or SIGINT. Returns the exit status."""
    for warning in config.warnings:
        log.warning("config: %s", warning)
    ensure_open_files(config.http.connections)   # before anything starts: it may refuse
    bridge = Bridge(config)
    done = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %s received", signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bridge.start()
    except ConfigError:                  # a name another node of the cluster has: refused
        bridge.stop()
        raise
    while not done.is_set() and not bridge.stopping.is_set():
        done.wait(1.0)
    bridge.stop()
    if bridge.exit_status:
        log.critical("exiting with status %d (the modem watchdog gave up)", bridge.exit_status)
    return bridge.exit_status

"""Runs a `SimulatedModem` on a pseudo-terminal (ptyport.py), with an optional HTTP control API
(control.py): what `gsmbridge simulate`, the tests and the benchmarks start.
"""

import argparse
import json
import logging
import signal
import sys
import threading

from .control import ControlServer, loopback_address
from .ptyport import PtyPort
from .machine import SimulatedModem

__all__ = ["Simulator", "start_simulator", "main", "loopback_address"]


class Simulator:
    """A running simulated modem: `.modem`, `.link`, `.control_url` (None without control).

    Use as a context manager, or call `stop()`.
    """

    def __init__(self, link, control=None, baudrate=None, **options):
        self.modem = SimulatedModem(**options)
        self.server = None
        self.control_url = None
        if control:
            self.server = ControlServer(control, self)
            host, port = self.server.server_address[:2]
            self.control_url = "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)
        try:
            self.port = PtyPort(self.modem, link, baudrate)
        except BaseException:
            if self.server:
                self.server.server_close()
            raise
        self.link = self.port.link
        if self.server:
            self._server_thread = threading.Thread(
                target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                name="simulator-control", daemon=True)
            self._server_thread.start()

    def transcript(self):
        return self.port.transcript()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.port.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_simulator(link_path, control=None, baudrate=None, **options):
    """Start a simulated modem on a pty linked at `link_path`; returns a running `Simulator`.

    control: "HOST:PORT" (loopback only; port 0 picks a free one) for the HTTP control API.
    baudrate: pace the bytes as a serial line at that speed would.  Other options go to
    `SimulatedModem` (pin, capacity, network_delay, ... and any fault).
    """
    return Simulator(link_path, control=control, baudrate=baudrate, **options)


def main(argv=None):
    """`gsmbridge simulate --link PATH [--control HOST:PORT] [--baud N] [--pin PIN] ...`
    (--help lists the rest: storage, network timings, identity, USSD, calls)."""
    parser = argparse.ArgumentParser(
        prog="gsmbridge simulate",
        description="Run a simulated GSM modem (TS 27.005/27.007) on a pseudo-terminal.")
    parser.add_argument("--link", required=True, help="path of the symlink to the pty")
    parser.add_argument("--control", help="HOST:PORT of the HTTP control API (loopback only)")
    parser.add_argument("--baud", type=int, help="pace the bytes at this baud rate")
    parser.add_argument("--pin", help="the SIM asks for this PIN")
    parser.add_argument("--capacity", type=int, default=30, help="SIM storage slots (30)")
    parser.add_argument("--first-index", type=int, default=1, choices=(0, 1),
                        help="first storage index (1; some Huawei modems count from 0)")
    parser.add_argument("--network-delay", type=float, default=0.0,
                        help="seconds the network takes per submitted part (0)")
    parser.add_argument("--report-delay", type=float, default=1.0,
                        help="seconds before a requested status report arrives (1)")
    parser.add_argument("--cnma-timeout", type=float, default=12.0,
                        help="seconds the network waits for AT+CNMA after +CMT (12)")
    parser.add_argument("--redelivery-delay", type=float, default=10.0,
                        help="seconds before the network retries an SMS it could not deliver (10)")
    parser.add_argument("--seed", type=int, help="seed for the random faults")
    sim = parser.add_argument_group("SIM identity")
    sim.add_argument("--imei", default="356938035643809", help="AT+CGSN (%(default)s)")
    sim.add_argument("--imsi", default="640040000000001", help="AT+CIMI (%(default)s)")
    sim.add_argument("--iccid", default="8925504000000000019",
                     help="AT+CCID, AT^ICCID? and the other forms (%(default)s)")
    sim.add_argument("--own-number", help="AT+CNUM (default: the SIM holds none)")
    ussd = parser.add_argument_group("USSD")
    ussd.add_argument("--ussd-style", default="text", choices=("text", "ucs2", "packed"),
                      help="text: TE character set, dcs 15; ucs2: UCS-2 hex, dcs 72; packed: "
                           "packed GSM 7-bit hex both ways, as Huawei E1550/E173 (text)")
    ussd.add_argument("--ussd-early", action="store_true",
                      help="the +CUSD reply comes before the OK of AT+CUSD")
    ussd.add_argument("--ussd-delay", type=float, default=0.2,
                      help="seconds the network takes to answer (0.2; real ones 5-20)")
    ussd.add_argument("--ussd-menu", metavar="FILE",
                      help='a JSON menu: {"*100#": {"text": "1. Balance", "options": '
                           '{"1": "Your balance is {balance} {currency}"}}}')
    ussd.add_argument("--ussd-session-timeout", type=float, default=30.0,
                      help="seconds a menu waits for its answer before +CUSD: 2 (30)")
    ussd.add_argument("--balance", type=float, default=1234.5,
                      help="airtime balance the network reports (1234.5)")
    ussd.add_argument("--currency", default="TZS", help="its currency (TZS)")
    calls = parser.add_argument_group("incoming calls")
    calls.add_argument("--ring-interval", type=float, default=3.0,
                       help="seconds between RINGs (3)")
    calls.add_argument("--rings", type=int, default=5,
                       help="RINGs before a caller gives up (5)")
    parser.add_argument("--trace", action="store_true", help="log every byte both ways")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.trace else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    menu = None
    if args.ussd_menu:
        try:
            with open(args.ussd_menu, encoding="utf-8") as handle:
                menu = json.load(handle)
        except (OSError, ValueError) as exc:
            print("gsmbridge simulate: --ussd-menu %s: %s" % (args.ussd_menu, exc),
                  file=sys.stderr)
            return 2
    try:
        sim = start_simulator(args.link, control=args.control, baudrate=args.baud, pin=args.pin,
                              capacity=args.capacity, first_index=args.first_index,
                              network_delay=args.network_delay, report_delay=args.report_delay,
                              cnma_timeout=args.cnma_timeout,
                              redelivery_delay=args.redelivery_delay, seed=args.seed,
                              imei=args.imei, imsi=args.imsi, iccid=args.iccid,
                              own_number=args.own_number, ussd_style=args.ussd_style,
                              ussd_early=args.ussd_early, ussd_delay=args.ussd_delay,
                              ussd_menu=menu, ussd_session_timeout=args.ussd_session_timeout,
                              balance=args.balance, currency=args.currency,
                              ring_interval=args.ring_interval, rings=args.rings)
    except (OSError, ValueError) as exc:
        print("gsmbridge simulate: %s" % exc, file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print("simulated modem at %s%s" % (
        sim.link, " control %s" % sim.control_url if sim.control_url else ""), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simulated modem's HTTP control API: plays the network (stdlib http.server, loopback only,
no authentication).

    POST /inbound  {"from": "+255700000001", "text": "..."}   an SMS arrives (long: in parts)
                   {"pdu": "0791..."}                          a raw PDU arrives, as is
    GET  /sent     what the modem was asked to send, one entry per SMS (parts joined)
    DELETE /sent   forget it
    GET  /faults   POST /faults {"name": value, ...}           see faults.Faults
    GET  /state    storage, settings, queues, identity, the call and USSD session in progress
    POST /reset    power-cycle the modem (storage kept)

    GET  /ussd     the USSD service: style, early, delay, balance, currency, session_timeout,
                   menu, and the session in progress
    POST /ussd     {"style": "packed", "balance": 99.5, ...}: change any of those
    GET  /ussd/requests   what the host asked over AT+CUSD (code, raw string, dcs, the
                          network's status and reply; cancels and expiries)
    DELETE /ussd/requests forget them
    POST /calls    {"from": "+255700000001", "rings": 3}: a voice call rings the modem
                   ("from": "" withholds the number); 409 while another call is in progress
    POST /calls/end       the caller hangs up the call in progress (409 when there is none)
    GET  /calls    every call: from, rings, state, answered, ended_by ("host", "caller",
                   "reset"), started, ended
    DELETE /calls  forget the ended calls
"""

import ipaddress
import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..codec import pdu
from .calls import CallError

log = logging.getLogger("gsmbridge.simulator")

#: the largest request body taken (a USSD menu is the biggest thing anyone sends)
MAX_BODY = 1 << 20


def loopback_address(control):
    """'127.0.0.1:13014', '[::1]:0', 'localhost:8080' -> (host, port, family), loopback only."""
    if isinstance(control, (tuple, list)):
        host, port = control
    else:
        parts = urlsplit("//" + str(control))
        host, port = parts.hostname, parts.port
    if not host or port is None:
        raise ValueError("control address must be HOST:PORT, not %r" % (control,))
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for family, _, _, _, address in infos:
        if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
            raise ValueError("the control API has no authentication: it listens on a loopback "
                             "address only, not %s" % host)
    return infos[0][4][0], int(port), infos[0][0]


class _Handler(BaseHTTPRequestHandler):
    server_version = "gsmbridge-simulator"
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: without TCP_NODELAY the body waits for
    # the client's delayed ACK (40 ms), which would cap a kept-alive client at 25 requests/s.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):
        log.debug("control: " + format, *args)

    # routes

    def do_GET(self):
        sim = self.server.simulator
        if self.path == "/sent":
            return self._reply(200, sim.modem.sent_messages())
        if self.path == "/faults":
            return self._reply(200, sim.modem.faults())
        if self.path == "/state":
            return self._reply(200, sim.modem.state())
        if self.path == "/ussd":
            return self._reply(200, sim.modem.ussd_settings())
        if self.path == "/ussd/requests":
            return self._reply(200, sim.modem.ussd_requests())
        if self.path == "/calls":
            return self._reply(200, sim.modem.calls_made())
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def do_POST(self):
        sim = self.server.simulator
        body = self._body()
        if body is None:
            return
        if self.path == "/inbound":
            return self._inbound(sim, body)
        if self.path == "/faults":
            try:
                sim.modem.set_faults(**body)
            except (TypeError, ValueError) as exc:
                return self._reply(400, {"error": str(exc)})
            return self._reply(200, sim.modem.faults())
        if self.path == "/reset":
            sim.modem.power_cycle()
            return self._reply(200, sim.modem.state())
        if self.path == "/ussd":
            try:
                return self._reply(200, sim.modem.ussd_settings(**body))
            except (TypeError, ValueError) as exc:
                return self._reply(400, {"error": str(exc)})
        if self.path == "/calls":
            return self._call(sim, body)
        if self.path == "/calls/end":
            try:
                return self._reply(200, sim.modem.end_call())
            except CallError as exc:
                return self._reply(409, {"error": str(exc)})
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def do_DELETE(self):
        modem = self.server.simulator.modem
        if self.path == "/sent":
            modem.clear_sent()
            return self._reply(200, [])
        if self.path == "/ussd/requests":
            modem.forget_ussd_requests()
            return self._reply(200, [])
        if self.path == "/calls":
            modem.forget_calls()
            return self._reply(200, modem.calls_made())
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def _inbound(self, sim, body):
        if "pdu" in body:
            raw = body["pdu"]
            if not isinstance(raw, str) or not raw or len(raw) % 2 or \
                    any(c not in "0123456789abcdefABCDEF" for c in raw):
                return self._reply(400, {"error": "pdu must be a string of hex digits"})
            return self._reply(200, sim.modem.deliver_pdu(raw))
        sender, text = body.get("from"), body.get("text")
        if not isinstance(sender, str) or not sender or not isinstance(text, str):
            return self._reply(400, {"error": 'give "from" (a number or name) and "text"'})
        encoding = body.get("encoding")
        if encoding not in (None, "gsm7", "ucs2"):
            return self._reply(400, {"error": 'encoding is "gsm7" or "ucs2"'})
        try:
            return self._reply(200, sim.modem.deliver(sender, text, encoding=encoding))
        except (pdu.TooLong, ValueError) as exc:
            return self._reply(400, {"error": str(exc)})

    def _call(self, sim, body):
        number, rings = body.get("from"), body.get("rings")
        unknown = set(body) - {"from", "rings"}
        if unknown:
            return self._reply(400, {"error": "unknown field %r" % sorted(unknown)[0]})
        try:
            return self._reply(200, sim.modem.place_call(number, rings))
        except ValueError as exc:
            return self._reply(400, {"error": str(exc)})
        except CallError as exc:
            return self._reply(409, {"error": str(exc)})

    # plumbing

    def _body(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._reply(400 if length < 0 else 413,
                        {"error": "a body of up to %d bytes, with its Content-Length" % MAX_BODY})
            return None
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self._reply(400, {"error": "the body must be a JSON object"})
            return None
        if not isinstance(body, dict):
            self._reply(400, {"error": "the body must be a JSON object"})
            return None
        return body

    def _reply(self, status, payload):
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ControlServer(ThreadingHTTPServer):
    """The control API on a loopback address; its handlers drive `simulator.modem` (a running
    simulator.Simulator), from their own threads: the modem's lock makes that safe."""

    daemon_threads = True

    def __init__(self, control, simulator):
        host, port, family = loopback_address(control)
        self.address_family = family
        self.simulator = simulator
        super().__init__((host, port), _Handler)

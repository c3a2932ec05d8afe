"""The simulated modem's HTTP control API: plays the network (stdlib http.server, loopback only,
no authentication).

    POST /inbound  {"from": "+255700000001", "text": "..."}   an SMS arrives (long: in parts)
                   {"pdu": "0791..."}                          a raw PDU arrives, as is
    GET  /sent     what the modem was asked to send, one entry per SMS (parts joined)
    DELETE /sent   forget it
    GET  /faults   POST /faults {"name": value, ...}           see faults.Faults
    GET  /state    storage, settings, queues
    POST /reset    power-cycle the modem (storage kept)
"""

import ipaddress
import json
import logging
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ..codec import pdu

log = logging.getLogger("gsmbridge.simulator")


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
        return self._reply(404, {"error": "no such resource: %s" % self.path})

    def do_DELETE(self):
        if self.path == "/sent":
            self.server.simulator.modem.clear_sent()
            return self._reply(200, [])
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

    # plumbing

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
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

"""The HTTP receiver the bridge forwards inbound SMS to (RapidSMS's place), on 127.0.0.1.

It answers 200 at once and records when each request arrived (time.monotonic(), taken as soon as
the request line and headers are read) with its parameters, for latency figures.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True     # no 40 ms delayed-ACK stalls on kept-alive connections

    def log_message(self, *args):
        pass

    def _record(self, fields):
        self.server.sink.add(self._arrived, fields)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self._arrived = time.monotonic()
        query = parse_qs(urlsplit(self.path).query)
        self._record({k: v[-1] for k, v in query.items()})

    def do_POST(self):
        self._arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        self._record({k: v[-1] for k, v in parse_qs(body).items()})


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class Sink:
    """A running receiver: `.url`, `.arrivals` [(time, fields)], `stop()`."""

    def __init__(self):
        self.arrivals = []
        self.lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.sink = self
        self.url = "http://127.0.0.1:%d/backend/kannel-backend/" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def add(self, when, fields):
        with self.lock:
            self.arrivals.append((when, fields))

    def by_text(self):
        """{text: first arrival time}."""
        with self.lock:
            out = {}
            for when, fields in self.arrivals:
                out.setdefault(fields.get("text"), when)
            return out

    def count(self):
        with self.lock:
            return len(self.arrivals)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

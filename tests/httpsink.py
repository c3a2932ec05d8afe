"""A real HTTP server on 127.0.0.1 for tests: it records every request and answers as told.

    sink = HttpSink()                  # listening at once; port 0: the OS picks a free one
    sink.url                           # "http://127.0.0.1:<port>" (no trailing slash)
    sink.set_response(500, "oops")     # every request from now on gets this
    sink.set_response(200, delay=5)    # answer late (a client with a shorter timeout gives up)
    sink.set_handler(fn)               # fn(Request) -> status | (status, body) | (status, body, headers)
    sink.refuse(); sink.accept()       # stop listening (connections refused) / listen again, same port
    sink.wait_for(3)                   # until 3 requests have arrived (or a timeout)
    sink.requests                      # [Request(method, path, query, headers, body, status), ...]
    sink.stop()

It is also a context manager. A request is recorded when it arrives, with the answer the sink
chose (`Request.status`), before any delay: a request the client gave up on is still there, with
`answered` False.
"""

import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from requests.structures import CaseInsensitiveDict


@dataclass
class Request:
    method: str
    path: str                          # without the query string
    query: dict                        # {name: [values]} from the query string
    headers: CaseInsensitiveDict       # {name: value}
    body: bytes
    status: int                        # the status the sink answers (or answered) with
    answered: bool = False             # the answer was written (False: still waiting, or the
                                       # client went away first)
    raw_path: str = field(default="", repr=False)

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def args(self):
        """The query string as {name: last value}."""
        return {k: v[-1] for k, v in self.query.items()}

    @property
    def form(self):
        """A form-urlencoded body as {name: last value} (UTF-8)."""
        parsed = urllib.parse.parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}

    def json(self):
        return json.loads(self.body.decode("utf-8"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class HttpSink:
    """See the module docstring."""

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.requests = []
        self._lock = threading.Condition()
        self._response = (200, b"", 0.0, {})
        self._handler = None
        self._server = None
        self._thread = None
        self._stopping = threading.Event()
        self._listen()

    # -- life cycle ------------------------------------------------------------------------

    def start(self):
        """Listening already happens in the constructor; kept so `HttpSink().start()` reads well."""
        self.accept()
        return self

    def _listen(self):
        self._server = _Server((self.host, self.port), self._make_handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="httpsink-%d" % self.port, daemon=True)
        self._thread.start()

    def _close(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    def refuse(self):
        """Stop listening: connections to the port are refused until accept()."""
        self._close()

    def accept(self):
        """Listen again on the same port."""
        if self._server is None:
            self._listen()

    def stop(self):
        self._stopping.set()       # releases handlers sleeping in a delay
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    # -- behaviour -------------------------------------------------------------------------

    def set_response(self, status=200, body="", *, delay=0.0, headers=None):
        """Answer every following request with this (after delay seconds)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        with self._lock:
            self._response = (status, body, delay, dict(headers or {}))
            self._handler = None

    def set_handler(self, fn):
        """Decide per request: fn(Request) -> status, (status, body) or (status, body, headers).
        Returning None falls back to set_response's answer."""
        with self._lock:
            self._handler = fn

    def wait_for(self, count, timeout=5.0):
        """Wait until at least count requests have arrived. Returns whether they did."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout)

    def clear(self):
        with self._lock:
            self.requests.clear()

    # -- the handler -----------------------------------------------------------------------

    def _answer(self, request):
        with self._lock:
            handler = self._handler
            status, body, delay, headers = self._response
        if handler is not None:
            result = handler(request)
            if result is not None:
                if isinstance(result, int):
                    result = (result,)
                status = result[0]
                body = result[1] if len(result) > 1 else b""
                headers = result[2] if len(result) > 2 else {}
                delay = 0.0
                if isinstance(body, str):
                    body = body.encode("utf-8")
        return status, body, delay, headers

    def _make_handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urllib.parse.urlsplit(self.path)
                request = Request(
                    method=self.command, path=urllib.parse.unquote(split.path),
                    query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
                    headers=CaseInsensitiveDict(self.headers.items()), body=body, status=0,
                    raw_path=self.path)
                status, payload, delay, headers = sink._answer(request)
                request.status = status
                with sink._lock:
                    sink.requests.append(request)
                    sink._lock.notify_all()
                if delay and sink._stopping.wait(delay):
                    return
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    request.answered = True
                except OSError:
                    pass  # the client gave up (timeout) before the answer

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

            def log_message(self, format, *args):
                pass

        return Handler

"""A kept-alive HTTP/1.1 connection to one receiver: what the forwarder sends inbound SMS with.

The forwarder makes one request for every SMS, always to the same receiver, so its connection is
worth keeping. Through `requests` each forward cost about 1.3 ms of CPU (measured: bench/
RESULTS.md, "issue 16"), more than the durable commit of the SMS itself: a new connection every
time (reading only the start of an answer closes it) and requests' own layers. This is
http.client on one connection, kept open between requests, with the rules of
gsmbridge/delivery.py built in:

- no redirect is followed (http.client follows none);
- at most `limit` bytes of an answer are read; when there is more, the connection is closed
  rather than drained;
- `timeout` bounds each socket operation (connect, send, each read), as requests' did;
- a connection the receiver closed while it was idle is noticed before it is used (a kept-alive
  connection is tested for readability first: an idle one must have nothing to read), and a
  request that finds it closed anyway before any answer came is sent once more on a fresh one.
  Delivery is at-least-once with the same X-Message-Id, so a receiver that took the first copy
  and closed without answering recognises the second.
- credentials in the URL (``http://user:pass@host/``) go as Basic authentication, as requests
  sent them; the URL's own query is kept and the parameters added after it.

Only http.client and the standard library: the daemon does not load requests unless it has a
delivery-report callback to make (gsmbridge/guardedhttp.py), which saves its memory too.
"""

import base64
import http.client
import select
import socket
import urllib.parse

__all__ = ["Answer", "Connection", "HttpError", "Timeout", "Unreachable", "Broken"]

USER_AGENT = "gsmbridge"


class HttpError(Exception):
    """A request that got no usable answer. Its text never holds the URL (it may hold the
    sender's number and the message in its query, or a password)."""


class Timeout(HttpError):
    """No connection, or no (whole) answer, within the timeout."""


class Unreachable(HttpError):
    """The receiver could not be reached: name not resolved, connection refused or reset."""


class Broken(HttpError):
    """The receiver answered something that is not HTTP."""


class Answer:
    """A receiver's answer: `status_code`, `reason`, `headers` (case-insensitive `.get`), and
    `text`, the start of the body (at most the limit), decoded by the charset the answer names,
    else as UTF-8, undecodable bytes replaced."""

    __slots__ = ("status_code", "reason", "headers", "text")

    def __init__(self, status_code, reason, headers, text):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        self.text = text


def _decode(data, content_type):
    charset = None
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:                 # a charset Python does not know
        return data.decode("utf-8", "replace")


class Connection:
    """Requests to one receiver, `url` (http:// or https://), over one kept-alive connection.

    One thread at a time. `request(method, params=..., data=..., headers=...)` -> Answer, or an
    HttpError (Timeout, Unreachable, Broken).
    """

    def __init__(self, url, *, timeout, limit=4096):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http:// or https:// URL")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self.limit = limit
        self.path = parts.path or "/"
        self.query = parts.query
        self.headers = {"User-Agent": USER_AGENT}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(("%s:%s" % (user, password)).encode("latin-1", "replace"))
            self.headers["Authorization"] = "Basic " + token.decode("ascii")
        self._conn = None

    def close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def target(self, params=None):
        """The request target: the URL's path and query, with `params` added after it."""
        query = self.query
        if params:
            added = urllib.parse.urlencode(params)
            query = query + "&" + added if query else added
        return self.path + ("?" + query if query else "")

    def request(self, method, *, params=None, data=None, headers=None):
        """Send one request; the answer, its body read up to the limit."""
        if isinstance(data, dict):
            body = urllib.parse.urlencode(data).encode("ascii")
            headers = dict(headers or {}, **{"Content-Type": "application/x-www-form-urlencoded"})
        else:
            body = data
        all_headers = dict(self.headers, **(headers or {}))
        target = self.target(params)
        fresh = self._conn is None or not self._idle_and_open()
        try:
            return self._exchange(method, target, body, all_headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            if fresh:
                raise Unreachable("the connection was closed before an answer") from None
        try:           # the kept-alive connection had been closed: once more, on a new one
            return self._exchange(method, target, body, all_headers)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.close()
            raise Unreachable("the connection was closed before an answer") from None

    # -- below -------------------------------------------------------------------------------

    def _idle_and_open(self):
        """Whether the kept connection is still usable: idle, nothing to read (a readable idle
        socket means the receiver closed it, or sent what it should not have)."""
        sock = self._conn.sock
        if sock is None:
            self.close()
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            readable = True
        if readable:
            self.close()
            return False
        return True

    def _connection(self):
        if self._conn is None:
            cls = (http.client.HTTPSConnection if self.scheme == "https"
                   else http.client.HTTPConnection)
            self._conn = cls(self.host, self.port, timeout=self.timeout)
        return self._conn

    def _exchange(self, method, target, body, headers):
        conn = self._connection()
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(self.limit)
            if not response.isclosed() or response.will_close:
                self.close()    # the rest is never read: the connection goes with it
            return Answer(response.status, response.reason, response.headers,
                          _decode(data, response.getheader("Content-Type")))
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            raise
        except socket.timeout:
            self.close()
            raise Timeout("no answer within %gs" % self.timeout) from None
        except socket.gaierror as exc:
            self.close()
            raise Unreachable("cannot resolve the receiver's name: %s" % exc.strerror) from None
        except (ConnectionError, OSError) as exc:
            self.close()
            raise Unreachable("%s: %s" % (type(exc).__name__, exc.strerror or exc)) from None
        except http.client.HTTPException as exc:
            self.close()
            raise Broken("%s: %s" % (type(exc).__name__, exc)) from None

"""The HTTP server: waitress, with limits so that no caller, slow or greedy, starves the others.

RapidSMS's KannelBackend sends each reply once and never retries, so a reply sent while the server
cannot answer is lost. waitress, left to its defaults, can be made unable to answer by anyone who
can connect: it serves at most 100 connections (then it stops accepting), closes a connection only
after 120 seconds without a byte, so a client trickling one byte now and then keeps its
connection for ever, and takes request bodies of up to 1 GB (into a temporary file) before the
application may refuse them. Here each limit follows [http], and why:

max_body
    waitress refuses a body at `max_request_body_size` bytes. With a Content-Length it looks at
    the header, before reading any of the body, so the refusal (413) costs nothing; a chunked body
    is counted as it arrives, chunk-size lines included, and refused as soon as the count goes
    past the limit, having buffered at most max_body bytes (plus one read). waitress's own check
    is `>=`, hence the +1: a body of exactly max_body bytes is accepted, as the application's
    MAX_CONTENT_LENGTH accepts it. One fix on top: waitress would answer "100 Continue" to a
    request it has already refused (Expect: 100-continue, as curl sends for large bodies) and
    then read the body after all; a refused request here never gets a "100 Continue".

max_header
    The request line and the header fields together (a Kannel GET sendsms carries its whole
    message in the query string). waitress keeps a request's header in memory until its blank
    line, and searches it again on every read, so it must be bounded; beyond it the answer is 431.

header_timeout, body_timeout
    waitress only has an inactivity timeout, which a client sending a byte every few seconds
    never reaches. These are deadlines instead, like nginx's client_header_timeout and
    client_body_timeout: a request's header must be complete within header_timeout of its first
    byte, and its body within body_timeout of the end of its header, however the bytes trickle
    in. A request that misses its deadline is answered 408 and its connection closed. The clock
    stops while the server is answering an earlier request on the same connection (then the
    client waits for us, not we for it).

idle_timeout
    waitress's channel_timeout: a connection for which no answer is being prepared is closed
    after this long without a byte either way (a kept-alive one between requests, a new one that
    sends nothing, one stalled mid-request). Short, because an idle connection holds a place that
    a sender of SMS may need. waitress would cut it to whole seconds; it is set as given.

connections
    How many connections are open at once, all callers together. At the limit the server stops
    accepting: new connections wait in the kernel's listen backlog (1024, as waitress sets it)
    and are served as places free up, which the deadlines above make happen within seconds.
    waitress counts every entry of its socket map (its listening socket and wake-up pipe too);
    here only connections count, and the one count covers every listening address. Each
    connection is a file descriptor: the open-file limit (ulimit -n) is raised to fit, and the
    bridge refuses to start when the hard limit is too low. The loop uses poll(), not select(),
    which fails outright once a descriptor number passes 1023.

connections_per_client
    How many of those one client address may hold; beyond it a new connection is answered 503
    at once and closed, so that one address cannot take every place (0: no cap). Behind a reverse
    proxy every client has the proxy's address: there the proxy must cap per client, and this
    cap be raised to `connections` or set to 0.

What waitress does not bound stays unbounded here too: a client that reads its answer one byte
at a time keeps its connection (the answers are small), and the worker threads are shared by
whoever sends complete requests (rate limits per caller are another matter).

Refusals are logged as one line per kind and minute at most, with a count, never one line per
connection: the callers choose how many there are.
"""

import collections
import json
import logging
import resource
import time

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher
from waitress.utilities import Error, RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from gsmbridge.config import ConfigError

log = logging.getLogger("gsmbridge.http")

#: open files the process needs besides its HTTP connections: the store's per-thread
#: connections, serial ports, log files, the forwarders' and callbacks' own HTTP connections
RESERVED_FILES = 128

#: seconds between two checks of the deadlines (waitress's cleanup_interval, whole seconds)
CHECK_EVERY = 1

#: seconds between two log lines summing up the refusals of one kind
REPORT_EVERY = 60.0

#: the paths whose errors are JSON, as the application answers them (web.wants_json)
JSON_PREFIXES = ("/api/", "/vumi/")
JSON_PATHS = ("/status", "/health", "/openapi.json")


class Refusal(Error):
    """An answer the server gives on its own, the application never seeing the request: worded
    as the application words its errors, JSON on the JSON endpoints and plain text elsewhere,
    and always closing the connection."""

    def __init__(self, code, reason, message, path=""):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.path = path or ""

    def to_response(self, ident=None):
        """(status, headers, body), as waitress's ErrorTask writes them."""
        if self.path.startswith(JSON_PREFIXES) or self.path in JSON_PATHS:
            body = json.dumps({"error": self.message}).encode("utf-8")
            headers = [("Content-Type", "application/json")]
        else:
            body = self.message.encode("utf-8")
            headers = [("Content-Type", "text/plain; charset=utf-8")]
        if self.code == 503:
            headers.append(("Retry-After", "1"))
        return "%d %s" % (self.code, self.reason), headers, body

    def raw(self):
        """The whole answer as bytes, for a connection that no task serves."""
        status, headers, body = self.to_response()
        headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        head = "HTTP/1.1 %s\r\n%s\r\n\r\n" % (status, "\r\n".join("%s: %s" % h for h in headers))
        return head.encode("latin-1") + body


def _reworded(error, request):
    """waitress's own refusals, in the application's words."""
    adj = request.adj
    path = getattr(request, "path", "")
    if isinstance(error, RequestEntityTooLarge):
        return Refusal(413, "Request Entity Too Large", "Request too large (at most %d bytes), "
                       "rejected" % (adj.max_request_body_size - 1), path)
    if isinstance(error, RequestHeaderFieldsTooLarge):
        return Refusal(431, "Request Header Fields Too Large", "Request header too large (at most "
                       "%d bytes with the request line), rejected"
                       % (adj.max_request_header_size - 1))
    return Refusal(error.code, error.reason, "%s: %s" % (error.reason, error.body), path)


class _Parser(HTTPRequestParser):
    """waitress's parser; a request it refuses never gets a "100 Continue"."""

    def received(self, data):
        consumed = super().received(data)
        if self.error is not None:
            if not isinstance(self.error, Refusal):
                self.error = _reworded(self.error, self)
            # The channel sends "100 Continue" when expect_continue is set and the header is
            # done, and then marks the request incomplete again: it would read the body it
            # has just refused.
            self.expect_continue = False
        return consumed


class _Channel(HTTPChannel):
    """One connection: waitress's, plus the clocks of the request being received and its place in
    the per-address count."""

    parser_class = _Parser
    counted = False      # holds one of its address's places
    partial = None       # the request being received, whose clocks these are
    began = 0.0          # monotonic time of its first byte
    header_done = None   # monotonic time its header was complete (None: not yet)

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map=map)
        self.client = addr[0] if isinstance(addr, tuple) and addr else str(addr)
        refusal = server.connections.admit(self)
        if refusal is not None:
            self.answer_and_close(refusal)

    def received(self, data):
        result = super().received(data)
        request = self.request
        if request is None:
            self.partial = None
        else:
            now = time.monotonic()
            if request is not self.partial:
                self.partial, self.began, self.header_done = request, now, None
            if request.headers_finished and self.header_done is None:
                self.header_done = now
        return result

    def overdue(self, now, limits):
        """("header" or "body", Refusal) when the request being received has missed its
        deadline, else None."""
        request = self.request
        if request is None or request is not self.partial or self.will_close \
                or self.close_when_flushed:
            return None
        if self.requests:
            # an earlier request is being answered: the client is waiting for us
            self.began = now
            if self.header_done is not None:
                self.header_done = now
            return None
        if self.header_done is None:
            if now - self.began > limits.header_timeout:
                return "header", Refusal(408, "Request Timeout", "Request header not complete "
                                         "within %g seconds, closed" % limits.header_timeout)
        elif now - self.header_done > limits.body_timeout:
            return "body", Refusal(408, "Request Timeout", "Request body not complete within "
                                   "%g seconds, closed" % limits.body_timeout,
                                   getattr(request, "path", ""))
        return None

    def answer_and_close(self, refusal):
        """Answer with refusal and close, dropping the request being received. For the loop's
        thread, on a connection no task is serving."""
        data = refusal.raw()
        with self.requests_lock:
            if self.request is not None:
                self.request.close()
                self.request = None
            self.partial = None
            self.close_when_flushed = True
        with self.outbuf_lock:
            self.outbufs[-1].append(data)
            self.current_outbuf_count += len(data)
            self.total_outbufs_len += len(data)

    def del_channel(self, map=None):
        super().del_channel(map)
        if self.counted:
            self.counted = False
            self.server.connections.release(self)


class _Connections:
    """Every open connection, whichever listening socket took it: the count against
    `connections`, the counts per address, the deadlines, the refusals' tally."""

    def __init__(self, limits):
        self.limits = limits
        #: fd -> channel: waitress's `active_channels`, shared by every listening socket
        self.channels = {}
        self.per_client = collections.Counter()
        self.tally = collections.Counter()
        self.tally_clients = collections.defaultdict(set)
        self.full = False
        self.next_check = 0.0
        self.next_report = {}   # kind -> monotonic time its next report is due

    def admit(self, channel):
        """None when channel may stay, else the Refusal to answer it with."""
        cap = self.limits.connections_per_client
        if cap and self.per_client[channel.client] >= cap:
            self.note("refused", channel.client)
            return Refusal(503, "Service Unavailable", "Too many connections from your address "
                           "(at most %d at once), closed; retry later" % cap)
        channel.counted = True
        self.per_client[channel.client] += 1
        return None

    def release(self, channel):
        self.per_client[channel.client] -= 1
        if self.per_client[channel.client] <= 0:
            del self.per_client[channel.client]

    def has_room(self):
        full = len(self.channels) >= self.limits.connections
        if full and not self.full:
            self.note("full", None)
        self.full = full
        return not full

    def check(self):
        """Close what is overdue (every CHECK_EVERY seconds at most), and report."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_EVERY
        for channel in list(self.channels.values()):
            late = channel.overdue(now, self.limits)
            if late is not None:
                kind, refusal = late
                channel.answer_and_close(refusal)
                self.note(kind, channel.client)
        due = [kind for kind in self.tally if now >= self.next_report.get(kind, 0.0)]
        if due:
            self.report(due)
            for kind in due:
                self.next_report[kind] = now + REPORT_EVERY

    def note(self, kind, client):
        self.tally[kind] += 1
        if client is not None and len(self.tally_clients[kind]) < 4:
            self.tally_clients[kind].add(client)   # the fourth stands for "others"

    def report(self, kinds):
        """One log line per kind of refusal: how many since its last line, from where."""
        limits = self.limits
        what = {
            "refused": "connection(s) refused: their address already had %d open "
                       "([http] connections_per_client)" % limits.connections_per_client,
            "header": "connection(s) closed: request header not complete within %gs "
                      "([http] header_timeout)" % limits.header_timeout,
            "body": "connection(s) closed: request body not complete within %gs "
                    "([http] body_timeout)" % limits.body_timeout,
            "full": "time(s) all %d connections were in use ([http] connections); new "
                    "ones waited" % limits.connections,
        }
        for kind in sorted(kinds):
            clients = sorted(self.tally_clients.pop(kind, ()))
            if len(clients) == 4:
                clients[3:] = ["others"]
            log.warning("%d %s%s", self.tally.pop(kind), what[kind],
                        " (from %s)" % ", ".join(clients) if clients else "")


class _Server(TcpWSGIServer):
    """One listening socket. Its connections count in the shared _Connections."""

    channel_class = _Channel

    def __init__(self, application, connections, **kw):
        self.connections = connections
        super().__init__(application, **kw)
        self.active_channels = connections.channels

    def readable(self):
        # waitress's readable(), but counting connections only, and in one count for every
        # listening socket
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting and self.connections.has_room()

    def maintenance(self, now):
        super().maintenance(now)   # idle connections: waitress's channel_timeout
        self.connections.check()


def ensure_open_files(connections):
    """Raise the soft open-file limit to fit `connections` connections; ConfigError naming
    [http] connections when the hard limit is too low."""
    need = connections + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise ConfigError("http", "connections", "%d connections need %d open files, but this "
                          "process may open only %d (ulimit -Hn); lower connections or raise "
                          "the limit (supervisord's minfds, systemd's LimitNOFILE)"
                          % (connections, need, hard))
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


class HttpServer:
    """The listening socket(s) for [http] listen, serving one WSGI application on one loop."""

    def __init__(self, application, http, *, threads):
        """http: the [http] section (gsmbridge.config.HttpConfig)."""
        ensure_open_files(http.connections)
        adj = Adjustments(
            host=http.host, port=http.port, threads=threads, ident="gsmbridge",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=http.max_body + 1,
            max_request_header_size=http.max_header + 1,
            connection_limit=http.connections,   # for the record: _Server.readable counts
            cleanup_interval=CHECK_EVERY,
            asyncore_use_poll=True)
        adj.channel_timeout = http.idle_timeout   # Adjustments would cut it to whole seconds
        self.adj = adj
        self.map = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.set_thread_count(threads)
        self.connections = _Connections(http)
        # one listening socket per address the host name stands for ("localhost": ::1 and
        # 127.0.0.1), on one loop
        self.listeners = [_Server(application, self.connections, map=self.map,
                                  dispatcher=self.dispatcher, adj=adj, sockinfo=sockinfo)
                          for sockinfo in adj.listen]

    @property
    def address(self):
        """host:port of the first listening socket ([host]:port for IPv6)."""
        host, port = self.listeners[0].effective_host, self.listeners[0].effective_port
        return "%s:%s" % ("[%s]" % host if ":" in host else host, port)

    def serve(self, stopping, step=0.5):
        """Serve until the threading.Event stopping is set, then close everything.

        The loop runs in steps of `step` seconds and closes from its own thread: waitress's
        close() is not safe from another thread while its loop runs."""
        try:
            while not stopping.is_set():
                wasyncore.loop(timeout=step, map=self.map, use_poll=True, count=1)
        finally:
            self.dispatcher.shutdown()
            wasyncore.close_all(self.map)

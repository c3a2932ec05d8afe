"""Requests the bridge makes for a caller (delivery-report callbacks) go only where they may, and
cost bounded time and memory: gsmbridge/safeurl.py and the capped read of gsmbridge/delivery.py.

Real servers on 127.0.0.1 throughout; a resolver is replaced only in unit tests of the vetting
itself (a name answering with a public address is never connected to: the tests check that
nothing was)."""

import gc
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from gsmbridge import guardedhttp, safeurl
from gsmbridge.dlr import DlrSender
from gsmbridge.forwarder import Forwarder
from gsmbridge.safeurl import REFUSED, CallbackGuard, Refused

FAR = 1e12
#: a global address, never connected to: only a fake resolver ever hands it out
PUBLIC = "93.184.215.14"


def resolver(*answers):
    """A name lookup that gives answers[0] to the first call, answers[1] to the second, and the
    last one from then on; each answer a list of IP address strings. Records every call."""
    calls = []

    def resolve(host, port):
        calls.append((host, port))
        addresses = answers[min(len(calls), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, (a, port)) for a in addresses]

    resolve.calls = calls
    return resolve


# -- what is public ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1",                     # loopback
    "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1",   # private
    "169.254.169.254", "fe80::1", "fe80::1%lo",           # link-local (cloud metadata)
    "100.64.0.1", "100.127.255.254",                      # CGNAT
    "224.0.0.1", "239.255.255.250", "ff02::1",            # multicast
    "0.0.0.0", "::",                                      # unspecified (0.0.0.0 is this host)
    "240.0.0.1", "255.255.255.255",                       # reserved, broadcast
    "192.0.2.1", "198.18.0.1",                            # documentation, benchmarking
    "::ffff:127.0.0.1", "::ffff:10.0.0.1",                # IPv4-mapped
    "2002:7f00:1::1",                                     # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",               # Teredo of 127.0.0.1
    "64:ff9b::7f00:1",                                    # NAT64 of 127.0.0.1
    "::127.0.0.1",                                        # IPv4-compatible
])
def test_non_global_addresses_are_not_public(address):
    assert not safeurl.is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", PUBLIC, "2606:4700:4700::1111"])
def test_global_addresses_are_public(address):
    assert safeurl.is_public(address)


# -- the check once the escapes are filled in ---------------------------------------------------


def test_loopback_is_refused_whether_written_or_resolved():
    guard = CallbackGuard()
    for url in ("http://127.0.0.1:9/dlr?x=1", "http://[::1]:9/", "http://0.0.0.0:9/",
                "http://localhost:9/dlr",        # the system's resolver: a name we control
                "https://LOCALHOST./x"):
        with pytest.raises(Refused) as info:
            guard.check(url)
        assert str(info.value).startswith(REFUSED)


def test_a_name_resolving_to_a_private_address_is_refused():
    resolve = resolver(["10.0.0.5"])
    with pytest.raises(Refused, match="10.0.0.5"):
        CallbackGuard(resolve=resolve).check("http://dlr.example.org/report?id=1")
    assert resolve.calls == [("dlr.example.org", 80)]


def test_a_name_answering_public_and_private_addresses_is_refused():
    with pytest.raises(Refused, match="127.0.0.1"):
        CallbackGuard(resolve=resolver([PUBLIC, "127.0.0.1"])).check("https://x.example/")


def test_a_public_name_passes_the_check_without_any_connection():
    resolve = resolver([PUBLIC])
    CallbackGuard(resolve=resolve).check("https://dlr.example.org:8443/r?type=8")
    assert resolve.calls == [("dlr.example.org", 8443)]


def test_a_name_that_does_not_resolve_is_left_to_the_connection():
    def fails(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    CallbackGuard(resolve=fails).check("http://nowhere.invalid/")


def test_the_receivers_origins_are_allowed_as_written():
    guard = CallbackGuard(origins=["http://127.0.0.1:8000/backend/kannel-backend/?password=x",
                                   "http://LocalHost/backend/"], resolve=resolver(["127.0.0.1"]))
    guard.check("http://127.0.0.1:8000/delivery-report/?message_id=1&status=%d")
    guard.check("http://localhost:80/delivery-report/")            # the default port, spelt out
    for url in ("http://127.0.0.1:8001/", "https://127.0.0.1:8000/", "http://localhost:8000/",
                "http://127.0.0.2:8000/"):
        with pytest.raises(Refused):
            guard.check(url)


def test_callback_allow_networks_and_host_ports():
    guard = CallbackGuard(allow=["10.0.0.0/8", "127.0.0.1:8001", "[::1]:8002",
                                 "dlr.internal:8080"],
                          resolve=resolver(["172.16.0.9"]))
    guard.check("http://10.20.30.40:1234/")
    guard.check("http://127.0.0.1:8001/")
    guard.check("https://[::1]:8002/")
    guard.check("http://dlr.internal:8080/")                # by name, whatever it resolves to
    for url in ("http://127.0.0.1:8002/", "http://[::1]:8001/", "http://other.internal:1/",
                "http://dlr.internal:8081/", "http://192.168.0.1:8001/"):
        with pytest.raises(Refused):
            guard.check(url)


@pytest.mark.parametrize("entry, words", [
    ("10.0.0.1/8", "has host bits set"),
    ("10.0.0.0/33", "not a network"),
    ("localhost", "neither a network"),
    ("127.0.0.1:0", "port 0"),
    ("127.0.0.1:70000", "port 70000"),
    ("[nope]:80", "neither a network"),
    ("http://10.0.0.1/", "neither a network"),
])
def test_bad_allow_entries_are_named(entry, words):
    with pytest.raises(ValueError) as info:
        safeurl.parse_allow([entry])
    assert words in str(info.value) and repr(entry) in str(info.value)


@pytest.mark.parametrize("url, words", [
    ("javascript:alert(1)", "http:// or https://"),
    ("ftp://host/x", "http:// or https://"),
    ("http://[::1/x", "not a URL"),
    ("http://host:99999/", "not a URL"),
    ("http:///path", "no host"),
    ("http://host/\r\nX-Injected: 1", "control characters"),
    ("http://ho st/", "no spaces"),
])
def test_unusable_urls_are_refused_with_a_reason(url, words):
    with pytest.raises(ValueError, match=words):
        safeurl.check_syntax(url)


# -- the check at connect time: what the connection itself does ---------------------------------


def test_the_adapter_refuses_loopback_and_nothing_reaches_the_server(sink):
    session = guardedhttp.guarded_session(CallbackGuard())
    with pytest.raises(Refused):
        session.get(sink.url + "/private?x=1", timeout=5)
    # Refused comes before the socket connects; a request that went out would have had its
    # answer waited for, and the sink records a request before it answers: nothing to wait for
    assert sink.requests == []


def test_dns_rebinding_public_at_check_time_loopback_at_connect_time_is_refused(sink):
    """The name answers a public address to the check, then 127.0.0.1 to the connection (a
    rebinding DNS server with a TTL of 0): the connection checks what it connects to."""
    resolve = resolver([PUBLIC], ["127.0.0.1"])
    guard = CallbackGuard(resolve=resolve)
    url = "http://rebind.example:%d/admin" % sink.port
    guard.check(url)                                       # public: passes
    with pytest.raises(Refused, match="127.0.0.1"):
        guardedhttp.guarded_session(guard).get(url, timeout=5)
    assert resolve.calls == [("rebind.example", sink.port)] * 2
    assert sink.requests == []                              # (as above: get() is synchronous)


def test_dns_rebinding_through_the_delivery_report_sender(store, sink):
    resolve = resolver([PUBLIC], ["127.0.0.1"])
    msg_id = store.add_outbound(["+255700000001"], "x", encoding="gsm7", parts=1,
                                dlr_url="http://rebind.example:%d/?type=%%d" % sink.port,
                                dlr_mask=8)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[1])
    sender = DlrSender(store, guard=CallbackGuard(resolve=resolve), timeout=5)
    assert sender.step(now=FAR) == 1
    (cb,) = store.callbacks(msg_id)
    assert (cb["status"], cb["last_error"]) == ("failed", REFUSED)
    assert len(resolve.calls) == 2                         # checked, then refused at connect
    assert sender.step(now=FAR) == 0                       # never retried
    assert sink.requests == []


def test_the_connection_goes_to_the_address_it_checked_and_keeps_the_name(sink):
    """An allowed name is connected to at exactly the address the guard resolved (here
    127.0.0.1, by a resolver no other part of the system knows), with Host naming it."""
    guard = CallbackGuard(allow=["dlr.internal:%d" % sink.port], resolve=resolver(["127.0.0.1"]))
    session = guardedhttp.guarded_session(guard)
    resp = session.get("http://dlr.internal:%d/report?x=1" % sink.port, timeout=5)
    assert resp.status_code == 200
    (req,) = sink.requests
    assert req.header("Host") == "dlr.internal:%d" % sink.port and req.args == {"x": "1"}


def test_proxies_from_the_environment_are_not_used(sink, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")       # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    session = guardedhttp.guarded_session(CallbackGuard(origins=[sink.url]))
    assert session.get(sink.url + "/", timeout=5).status_code == 200
    assert len(sink.requests) == 1


# -- bounded answers ----------------------------------------------------------------------------


class Misbehaving(http.server.ThreadingHTTPServer):
    """A server on 127.0.0.1 whose answers are the problem: `huge` streams a 100 MB body;
    `drip_headers` and `drip_body` send a byte every 0.1 s for a minute. It records how many
    bytes it got out, and `cut` is set when the client hung up before the end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode, status=200, tls=None):
        self.mode, self.status = mode, status
        self.sent = 0
        self.requests = 0
        self.hosts = []
        self.cut = threading.Event()
        self.stopping = threading.Event()
        super().__init__(("127.0.0.1", 0), _MisbehavingHandler)
        if tls:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _MisbehavingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        server = self.server
        server.requests += 1
        server.hosts.append(self.headers.get("Host"))
        out = self.wfile
        try:
            if server.mode == "fine":
                out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif server.mode == "huge":
                size = 100 * 1024 * 1024
                out.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (server.status, size))
                chunk = b"A" * 65536
                while server.sent < size and not server.stopping.is_set():
                    out.write(chunk)
                    server.sent += len(chunk)
            elif server.mode == "drip_headers":
                out.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                self._drip(out)
            else:
                out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n")
                self._drip(out)
        except OSError:
            server.cut.set()

    def _drip(self, out):
        for _ in range(600):                # a minute, a byte at a time
            if self.server.stopping.wait(0.1):
                return
            out.write(b"a")
            out.flush()
            self.server.sent += 1

    def log_message(self, format, *args):
        pass


@pytest.fixture
def misbehaving():
    servers = []

    def start(mode, status=200, tls=None):
        servers.append(Misbehaving(mode, status, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def rss():
    """This process's resident memory, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def callback_to(store, url):
    msg_id = store.add_outbound(["+255700000001"], "x", encoding="gsm7", parts=1,
                                dlr_url=url + "/dlr?type=%d", dlr_mask=8)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[1])
    return msg_id


@pytest.mark.parametrize("status", [200, 500])
def test_a_100_mb_callback_answer_is_read_only_to_the_cap(store, misbehaving, status):
    server = misbehaving("huge", status)
    msg_id = callback_to(store, server.url)
    sender = DlrSender(store, guard=CallbackGuard(origins=[server.url]), timeout=20)
    gc.collect()
    before = rss()
    sender.step(now=FAR)
    gc.collect()
    grown = rss() - before
    assert server.requests == 1
    assert grown < 30 * 1024 * 1024, "memory grew by %d MB" % (grown // 2**20)
    assert server.cut.wait(10), "the client hung up long before the end"
    assert server.sent < 50 * 1024 * 1024
    (cb,) = store.callbacks(msg_id)
    assert cb["status"] == ("delivered" if status == 200 else "pending")


def test_a_100_mb_answer_from_rapidsms_is_read_only_to_the_cap(store, misbehaving):
    server = misbehaving("huge")
    msg_id = store.add_inbound(modem="m1", sender="+255700000001", text="hi", sent_at=None,
                               parts=1, incomplete=False, pdus=["AA"], keys=["k1"])
    forwarder = Forwarder(store, url=server.url + "/backend/", timeout=20)
    gc.collect()
    before = rss()
    forwarder.step(now=FAR)
    gc.collect()
    grown = rss() - before
    assert grown < 30 * 1024 * 1024, "memory grew by %d MB" % (grown // 2**20)
    assert server.cut.wait(10) and server.sent < 50 * 1024 * 1024
    assert store.get_inbound(msg_id)["status"] == "delivered"


@pytest.mark.parametrize("mode", ["drip_headers", "drip_body"])
def test_a_dripped_answer_is_cut_at_the_deadline(store, misbehaving, mode):
    """A byte every 0.1 s never trips a per-read timeout of 1 s; the deadline for the whole
    exchange (1 s) cuts it all the same."""
    server = misbehaving(mode)
    msg_id = callback_to(store, server.url)
    sender = DlrSender(store, guard=CallbackGuard(origins=[server.url]), timeout=1.0)
    started = time.monotonic()
    sender.step(now=FAR)
    took = time.monotonic() - started
    assert took < 20, "a one-minute answer was waited for (%.0f s)" % took
    assert server.cut.wait(10), "the connection was closed before the answer's end"
    assert server.sent < 300
    (cb,) = store.callbacks(msg_id)
    assert cb["status"] == "pending" and "no answer" in cb["last_error"]


def test_the_deadline_covers_only_its_block(sink):
    """Outside a deadline block, the guarded socket keeps requests' own timeout."""
    session = guardedhttp.guarded_session(CallbackGuard(origins=[sink.url]))
    with safeurl.deadline(5):
        assert session.get(sink.url + "/", timeout=5).status_code == 200
    time.sleep(0.1)
    sink.set_response(200, delay=0.5)
    assert session.get(sink.url + "/", timeout=5).status_code == 200
    with pytest.raises(requests.Timeout):
        with safeurl.deadline(0.2):
            session.get(sink.url + "/", timeout=5)


# -- HTTPS: the name still goes in SNI and the certificate check ---------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(server TLS context, CA file) for a self-signed certificate naming dlr.internal."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = str(where / "cert.pem"), str(where / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=dlr.internal",
                    "-addext", "subjectAltName=DNS:dlr.internal"],
                   check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


def tls_session(port, cafile, resolve, allow=True):
    guard = CallbackGuard(allow=["dlr.internal:%d" % port, "other.internal:%d" % port] if allow
                          else [], resolve=resolve)
    session = requests.Session()
    session.verify = cafile
    return guard, guardedhttp.guarded_session(guard, session)


def test_https_connects_to_the_checked_address_with_the_name_for_the_certificate(
        misbehaving, certificate):
    server = misbehaving("fine", tls=certificate[0])
    guard, session = tls_session(server.port, certificate[1], resolver(["127.0.0.1"]))
    resp = session.get("https://dlr.internal:%d/dlr?type=8" % server.port, timeout=5)
    assert (resp.status_code, resp.text) == (200, "ok")
    assert server.hosts == ["dlr.internal:%d" % server.port]
    # another allowed name on the same address: the certificate does not name it
    with pytest.raises(requests.exceptions.SSLError):
        session.get("https://other.internal:%d/" % server.port, timeout=5)


def test_https_rebinding_is_refused_before_the_handshake(misbehaving, certificate):
    server = misbehaving("fine", tls=certificate[0])
    resolve = resolver([PUBLIC], ["127.0.0.1"])
    guard, session = tls_session(server.port, certificate[1], resolve, allow=False)
    url = "https://dlr.internal:%d/" % server.port
    guard.check(url)
    with pytest.raises(Refused):
        session.get(url, timeout=5)
    assert len(resolve.calls) == 2 and server.requests == 0


def test_a_dripped_https_answer_is_cut_at_the_deadline(store, misbehaving, certificate):
    server = misbehaving("drip_body", tls=certificate[0])
    guard, session = tls_session(server.port, certificate[1], resolver(["127.0.0.1"]))
    msg_id = callback_to(store, "https://dlr.internal:%d" % server.port)
    sender = DlrSender(store, guard=guard, session=session, timeout=1.0)
    started = time.monotonic()
    sender.step(now=FAR)
    assert time.monotonic() - started < 20
    assert server.cut.wait(10) and server.sent < 300
    (cb,) = store.callbacks(msg_id)
    assert cb["status"] == "pending" and "no answer" in cb["last_error"]

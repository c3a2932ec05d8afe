"""The HTTP server's limits, against the real bridge process on loopback (gsmbridge/httpserver.py).

Hostile callers here are raw sockets: connections that send half a header and then a byte a
second, a 50 MB body, one address holding every connection it may. What each test shows is that
the others are still served, and that the server keeps its word about what it closes and when
(README: "What the HTTP server promises"). Times are generous upper bounds, never measurements;
bench/bench_slowloris.py has the figures.
"""

import re
import resource
import select
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for

USER, PASSWORD = "rapidsms", "s3cret"


@pytest.fixture
def start(tmp_path, sink):
    """start(**http) -> a running BridgeProcess with these [http] keys added."""
    bridges = []

    def start(**http):
        bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
        with open(bridge.ini) as f:
            text = f.read()
        keys = "".join("%s = %s\n" % item for item in http.items())
        with open(bridge.ini, "w") as f:
            f.write(text.replace("[http]\n", "[http]\n" + keys, 1))
        bridges.append(bridge)
        return bridge.start()

    yield start
    for bridge in bridges:
        bridge.stop()


# -- raw HTTP ---------------------------------------------------------------------------------------

def connect(bridge, source="127.0.0.1", timeout=10.0):
    """A TCP connection to the bridge from the loopback address source."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", bridge.http_port))
    return sock


def read_answer(sock):
    """(status, {header: value}, body) of the next answer on sock."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed after %r" % data[:200])
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def get(sock, path="/health"):
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path.encode())
    return read_answer(sock)


def closed(sock):
    """True once the server has closed sock (what it sent before is read and dropped)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def health(bridge, source="127.0.0.1"):
    """GET /health on a connection of its own from source: the status code."""
    with connect(bridge, source) as sock:
        return get(sock)[0]


def sendsms(bridge, to, text):
    params = {"username": USER, "password": PASSWORD, "to": to, "text": text}
    return requests.get(bridge.api + "/cgi-bin/sendsms", params=params, timeout=5)


def proc_figures(pid):
    """(resident set in bytes, bytes written to files) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    with open("/proc/%d/io" % pid) as f:
        wchar = next(int(line.split()[1]) for line in f if line.startswith("wchar:"))
    return rss, wchar


class Trickle:
    """n connections from source, each sending the start of a request and then one byte of a
    header field every second, for as long as the server keeps it open. `answers` maps each
    connection's number to the status it was answered with (or "closed")."""

    HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "

    def __init__(self, bridge, n, source):
        self.socks = [connect(bridge, source) for _ in range(n)]
        for sock in self.socks:
            sock.sendall(self.HEAD)
            sock.setblocking(False)
        self.answers = {}
        self.sent = [len(self.HEAD)] * n
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set() and len(self.answers) < len(self.socks):
            for number, sock in enumerate(self.socks):
                if number in self.answers:
                    continue
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    try:
                        self.sent[number] += sock.send(b"x")
                    except OSError:
                        self.answers[number] = "closed"
                    continue
                except OSError:
                    data = b""
                self.answers[number] = int(data.split()[1]) if data.startswith(b"HTTP/") \
                    else "closed"
            self.stopping.wait(1.0)

    def open(self):
        return len(self.socks) - len(self.answers)

    def statuses(self):
        return sorted(self.answers.values(), key=str)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        for sock in self.socks:
            sock.close()


# -- slow headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("source, http, admitted", [
    # from an address of their own: the default per-address cap (100) lets 100 in
    ("127.0.0.2", {}, 100),
    # from the same address as everyone (a reverse proxy on loopback, per-address cap off)
    ("127.0.0.1", {"connections_per_client": 0}, 150),
], ids=["other-address", "same-address"])
def test_connections_trickling_their_header_stall_nothing(start, source, http, admitted):
    bridge = start(**http)   # header_timeout: 10 s
    trickle = Trickle(bridge, 150, source)
    try:
        wait_for(lambda: trickle.open() <= admitted, timeout=10, message="the surplus refused")
        # while they hold their connections, the bridge answers and takes a sendsms
        assert health(bridge) == 200
        resp = sendsms(bridge, "+255700000001", "during the trickle")
        assert resp.status_code == 202, resp.text
        assert trickle.open() == admitted
        wait_for(lambda: [s["text"] for s in bridge.sent()] == ["during the trickle"],
                 message="the SMS sent")
        # and every one of them is closed at its header deadline, trickling as it is
        wait_for(lambda: trickle.open() == 0, timeout=40, interval=0.5,
                 message="trickling connections closed")
        assert trickle.statuses() == [408] * admitted + [503] * (150 - admitted)
        # they were sending all along: no inactivity timeout would have closed them
        assert all(trickle.sent[n] >= len(Trickle.HEAD) + 5
                   for n, status in trickle.answers.items() if status == 408)
    finally:
        trickle.close()
    assert health(bridge) == 200
    wait_for(lambda: "connection(s) closed: request header not complete within 10s"
             in bridge.log(), timeout=5, message="the closes logged")
    assert "Traceback" not in bridge.log()


def test_deadlines_for_body_and_idle_and_the_header_cap(start):
    bridge = start(header_timeout=2, body_timeout=2, idle_timeout=2, max_header=4096)

    # a body trickling in is cut at its deadline: 408, in the endpoint's words (JSON here)
    with connect(bridge) as sock:
        sock.sendall(b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        deadline = time.monotonic() + 30
        while not select.select([sock], [], [], 0.5)[0] and time.monotonic() < deadline:
            sock.sendall(b" ")
        status, _, body = read_answer(sock)
        assert (status, body) == (
            408, b'{"error": "Request body not complete within 2 seconds, closed"}')
        assert closed(sock)

    # a kept-alive connection is served while it is busy, closed once idle
    with connect(bridge) as sock:
        for _ in range(4):
            assert get(sock)[0] == 200
            time.sleep(1)
        sock.settimeout(20)
        assert sock.recv(100) == b""

    # a connection that sends nothing is closed too
    with connect(bridge) as sock:
        sock.settimeout(20)
        assert sock.recv(100) == b""

    # request line and header fields: up to max_header bytes, 431 beyond
    for size, status in ((4000, 200), (4200, 431)):
        with connect(bridge) as sock:
            head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
            sock.sendall(head + b"p" * (size - len(head) - 4) + b"\r\n\r\n")
            answer = read_answer(sock)
            assert answer[0] == status
    assert answer[2] == b"Request header too large (at most 4096 bytes with the request line), " \
                        b"rejected"
    assert health(bridge) == 200


# -- big bodies -----------------------------------------------------------------------------------

FIFTY_MB = 50 * 1000 * 1000


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_50mb_post_is_refused_without_being_read(start, framing):
    bridge = start()
    rss_before, written_before = proc_figures(bridge.proc.pid)
    head = (b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        piece = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % FIFTY_MB
        piece = b" " * 0x10000
    sent = 0
    with connect(bridge) as sock:
        sock.sendall(head)
        try:
            while sent < FIFTY_MB:
                sock.sendall(piece)
                sent += len(piece)
        except (ConnectionResetError, BrokenPipeError):
            pass
        status, headers, body = read_answer(sock)
    assert (status, headers["content-type"]) == (413, "application/json")
    assert body == b'{"error": "Request too large (at most 65536 bytes), rejected"}'
    # what got through before the server closed is what the kernels' buffers hold
    assert sent < 20 * 1000 * 1000
    rss_after, written_after = proc_figures(bridge.proc.pid)
    assert written_after - written_before < 1000 * 1000, "the body went to a file"
    assert rss_after - rss_before < 20 * 1000 * 1000
    assert health(bridge) == 200


def test_expect_100_continue_gets_the_413_instead(start):
    bridge = start()
    with connect(bridge) as sock:
        sock.sendall(b"POST /cgi-bin/sendsms HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % FIFTY_MB)
        status, _, body = read_answer(sock)
        assert (status, body) == (413, b"Request too large (at most 65536 bytes), rejected")
        assert closed(sock)


def test_a_body_of_max_body_bytes_is_the_applications_to_judge(start):
    bridge = start(max_body=2048)

    def post(size):
        body = b'{"to": "+255700000002", "text": "just fits"}'
        body += b" " * (size - len(body))
        return requests.post(bridge.api + "/api/v1/messages", data=body, auth=(USER, PASSWORD),
                             headers={"Content-Type": "application/json"}, timeout=10)

    assert post(2048).status_code == 202
    resp = post(2049)
    assert resp.status_code == 413
    assert resp.json() == {"error": "Request too large (at most 2048 bytes), rejected"}


# -- connections ----------------------------------------------------------------------------------

def held(bridge, n, source="127.0.0.1"):
    """n kept-alive connections, each answered once (so the server has surely taken it)."""
    socks = [connect(bridge, source) for _ in range(n)]
    for sock in socks:
        assert get(sock)[0] == 200
    return socks


def test_one_address_at_its_cap_does_not_shut_out_another(start):
    bridge = start(connections_per_client=5, idle_timeout=120)
    time.sleep(0.5)   # for the server to see the start-up probes' connections closed
    socks = held(bridge, 5)
    try:
        with connect(bridge) as sock:
            status, headers, body = get(sock)
            assert (status, headers["retry-after"]) == (503, "1")
            assert body == b"Too many connections from your address (at most 5 at once), " \
                           b"closed; retry later"
            assert closed(sock)
        assert health(bridge, source="127.0.0.2") == 200
        socks.pop().close()
        wait_for(lambda: health(bridge) == 200, timeout=10, interval=0.2,
                 message="a place free again")
    finally:
        for sock in socks:
            sock.close()
    # one line for them all (the probe above may have been refused too, before the server saw
    # the close)
    wait_for(lambda: re.search(r"WARNING gsmbridge.http [0-9]+ connection\(s\) refused: their "
                               r"address already had 5 open \(\[http\] connections_per_client\) "
                               r"\(from 127.0.0.1\)\n", bridge.log()), timeout=5,
             message="the refusals logged")


def test_the_connection_limit_is_kept(start):
    bridge = start(connections=20, connections_per_client=0, idle_timeout=120)
    time.sleep(0.5)   # for the server to see the start-up probes' connections closed
    socks = held(bridge, 20)
    try:
        waiting = connect(bridge)   # the kernel takes it into the listen backlog
        waiting.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        waiting.settimeout(2)
        with pytest.raises(socket.timeout):
            waiting.recv(100)
        socks.pop().close()
        waiting.settimeout(10)
        assert read_answer(waiting)[0] == 200
        waiting.close()
    finally:
        for sock in socks:
            sock.close()
    assert "time(s) all 20 connections were in use ([http] connections)" in bridge.log()


def test_too_few_open_files_for_the_connections_is_a_config_error(tmp_path, sink):
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    result = subprocess.run([sys.executable, "-m", "gsmbridge", "run", "-c", bridge.ini],
                            preexec_fn=low_limit, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "[http] connections: 1000 connections need 1128 open files, but this process may " \
           "open only 256" in result.stderr


def test_the_open_file_limit_is_raised_to_fit(tmp_path, sink):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1128:
        pytest.skip("the hard open-file limit here is %d" % hard)
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")

    def low_soft_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    with open(bridge.log_path, "w") as log:
        bridge.proc = subprocess.Popen([sys.executable, "-m", "gsmbridge", "run", "-c", bridge.ini],
                                       preexec_fn=low_soft_limit, stdout=log,
                                       stderr=subprocess.STDOUT)
    try:
        bridge.wait_until_up()
        with open("/proc/%d/limits" % bridge.proc.pid) as f:
            line = next(line for line in f if line.startswith("Max open files"))
        assert int(line.split()[3]) >= 1128
        assert health(bridge) == 200
    finally:
        bridge.stop()

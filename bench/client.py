"""A small keep-alive HTTP client (http.client) for the harness's own requests, and an open-loop
load generator that measures accept latency without hiding queueing (coordinated omission).
"""

import base64
import http.client
import json
import threading
import time
from urllib.parse import urlencode, urlsplit


class Client:
    """One persistent connection to one loopback server; reconnects when the server closes it."""

    def __init__(self, base_url, auth=None, timeout=30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.headers = {}
        if auth:
            token = base64.b64encode(("%s:%s" % auth).encode()).decode()
            self.headers["Authorization"] = "Basic " + token
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        """-> (status, body bytes)."""
        all_headers = dict(self.headers, **(headers or {}))
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=all_headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (OSError, http.client.HTTPException):
                self.close()            # a kept-alive connection the server closed: once more
                if attempt == 2:
                    raise

    def get_json(self, path):
        status, data = self.request("GET", path)
        return status, json.loads(data) if data else None

    def post_json(self, path, payload):
        status, data = self.request("POST", path, json.dumps(payload).encode("utf-8"),
                                    {"Content-Type": "application/json"})
        return status, json.loads(data) if data else None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def sendsms_path(to, text, username, password):
    """A Kannel sendsms GET as RapidSMS's KannelBackend makes it (UTF-8, coding 2 for UCS-2)."""
    return "/cgi-bin/sendsms?" + urlencode({
        "username": username, "password": password, "to": to, "text": text,
        "charset": "UTF-8", "coding": "0"})


def open_loop(make_request, *, rate, duration, threads=8, max_requests=None):
    """Issue requests at `rate` per second for `duration` seconds, each at its planned time.

    make_request(client_index, i) -> HTTP status; runs in one of `threads` worker threads
    (each with its own connection). Latency is counted from the planned start, so a stalled
    server is charged for the requests that queued behind it. Bounded by count and time.
    Returns {"latencies_ms": [...], "statuses": {status: n}, "late_ms_max": ...}.
    """
    total = int(rate * duration) if max_requests is None else min(max_requests,
                                                                   int(rate * duration))
    start = time.monotonic() + 0.05
    lock = threading.Lock()
    state = {"next": 0}
    latencies, statuses, lateness = [], {}, []
    hard_stop = start + duration * 3 + 30

    def worker(index):
        while True:
            with lock:
                i = state["next"]
                if i >= total:
                    return
                state["next"] = i + 1
            planned = start + i / rate
            now = time.monotonic()
            if now > hard_stop:
                return
            if planned > now:
                time.sleep(planned - now)
            began = time.monotonic()
            try:
                status = make_request(index, i)
            except Exception as exc:     # counted, not raised: a refused request is a result
                status = type(exc).__name__
            done = time.monotonic()
            with lock:
                latencies.append((done - planned) * 1000)
                lateness.append((began - planned) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(max(0.0, hard_stop - time.monotonic()) + 5)
    elapsed = time.monotonic() - start
    return {"latencies_ms": latencies, "statuses": statuses, "requests": len(latencies),
            "offered_rate": rate, "achieved_rate": len(latencies) / elapsed if elapsed else 0,
            "client_late_ms_max": max(lateness) if lateness else 0.0}

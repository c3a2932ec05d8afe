"""The HTTP API: accept latency at a steady 200 requests a second (open loop, each request timed
from when it was due), for Kannel's sendsms and for the JSON API; then one request with 1,000
recipients. Every accepted message is committed (SQLite WAL, synchronous=FULL) before the 202.
"""

import json
import statistics
import time

from . import texts, wire
from .bridge import PASSWORD, USERNAME, Bridge
from .client import Client, open_loop, sendsms_path
from .procs import Meter


def summary(result, cpu):
    lat = result["latencies_ms"]
    accepted = result["statuses"].get(202, 0)
    return {
        "requests": result["requests"],
        "offered_per_s": result["offered_rate"],
        "achieved_per_s": result["achieved_rate"],
        "statuses": {str(k): v for k, v in result["statuses"].items()},
        "accept_ms_p50": wire.percentile(lat, 50),
        "accept_ms_p99": wire.percentile(lat, 99),
        "accept_ms_max": max(lat) if lat else None,
        "client_late_ms_max": result["client_late_ms_max"],
        "bridge_cpu_ms_per_request": cpu["cpu_s"] * 1000 / max(1, accepted),
        "bridge_cpu_percent": cpu["cpu_percent"],
    }


def steady(bridge, endpoint, rate, duration, threads=8):
    """`rate` requests a second for `duration` seconds at one endpoint -> summary."""
    clients = [Client(bridge.api_url, auth=(USERNAME, PASSWORD)) for _ in range(threads)]

    def one(index, i):
        number = "+2557%08d" % i
        client = clients[index]
        if endpoint == "sendsms":
            status, _ = client.request("GET", sendsms_path(number, texts.GSM160, USERNAME,
                                                           PASSWORD))
        else:
            body = json.dumps({"to": number, "text": texts.GSM160}).encode()
            status, _ = client.request("POST", "/api/v1/messages", body,
                                       {"Content-Type": "application/json"})
        return status

    meter = Meter(bridge.pid)
    try:
        result = open_loop(one, rate=rate, duration=duration, threads=threads)
    finally:
        for client in clients:
            client.close()
    return summary(result, meter.read())


def bulk(bridge, recipients, repeats):
    """One JSON request with `recipients` numbers, `repeats` times -> accepted messages/s."""
    numbers = ["+2558%08d" % i for i in range(recipients)]
    took = []
    for _ in range(repeats):
        began = time.monotonic()
        body = bridge.send(numbers, texts.GSM160)
        took.append(time.monotonic() - began)
        assert len(body["ids"]) == recipients
    median = statistics.median(took)
    return {"recipients": recipients, "repeats": repeats, "request_ms_median": median * 1000,
            "request_ms_max": max(took) * 1000, "accepted_per_s": recipients / median}


def run(ctx):
    out = {}
    with Bridge(ctx.workdir("api"), baud=ctx.baud) as bridge:
        time.sleep(ctx.settle)
        for endpoint in ("sendsms", "json"):
            ctx.progress("api: %s at %d/s for %ss" % (endpoint, ctx.sizes.api_rate,
                                                       ctx.sizes.api_seconds))
            out[endpoint] = steady(bridge, endpoint, ctx.sizes.api_rate, ctx.sizes.api_seconds)
        ctx.progress("api: %d x 1 request with 1,000 recipients" % ctx.sizes.bulk_repeats)
        out["bulk"] = bulk(bridge, 1000, ctx.sizes.bulk_repeats)
    return out

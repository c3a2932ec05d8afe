"""Queue scale: accept latency and send rate with 0, 100,000 and 1,000,000 messages already queued.

The backlog is written straight into a fresh store (Store.add_outbound, 1,000 to a transaction)
before the bridge starts, as a long modem outage would leave it. The backlog is the same
160-character message the other runs send, so the send rates compare; 1,000 more are queued
through the API so that the empty-queue run has something to send too.
"""

import time

from . import api, outbound, texts, wire
from .bridge import Bridge
from .procs import memory


def run(ctx):
    out = {}
    for queued in ctx.sizes.backlog:
        ctx.progress("queue: %d queued (filling the store first)" % queued)
        began = time.monotonic()
        with Bridge(ctx.workdir("queue-%d" % queued), baud=ctx.baud, queued=queued,
                    backlog_text=texts.GSM160) as bridge:
            started = time.monotonic() - began
            bridge.send(["+2559%08d" % i for i in range(1000)], texts.GSM160)
            time.sleep(ctx.settle)
            bridge.modem.wire()
            time.sleep(ctx.sizes.send_window)
            exchanges = wire.exchanges(bridge.modem.wire())
            sending = outbound.analyse(exchanges, len(exchanges), baud=ctx.baud,
                                       network_delay=0.0)
            accept = api.steady(bridge, "json", ctx.sizes.api_rate, ctx.sizes.backlog_seconds)
            out[str(queued)] = {
                "queued": queued,
                "fill_and_start_s": started,
                "messages_per_s": sending.get("messages_per_s"),
                "fraction_of_bound": sending.get("fraction_of_bound"),
                "gap_ms_p99": sending.get("gap_ms_p99"),
                "accept_ms_p50": accept["accept_ms_p50"],
                "accept_ms_p99": accept["accept_ms_p99"],
                "accept_statuses": accept["statuses"],
                "bridge_rss_mb": memory(bridge.pid).get("rss_mb"),
            }

    def spread(key):
        values = [r[key] for r in out.values() if r.get(key)]
        return max(values) / min(values) if values else None

    return {"runs": out,
            "spread": {"accept_ms_p50": spread("accept_ms_p50"),
                       "accept_ms_p99": spread("accept_ms_p99"),
                       "messages_per_s": spread("messages_per_s")}}

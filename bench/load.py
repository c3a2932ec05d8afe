"""Frugality under load: the bridge's CPU per message and its peak memory, with one modem and
with eight.

Outbound, every message is its own sendsms request, as RapidSMS's KannelBackend makes them (and
as Kannel is measured): the CPU per message is the whole of the bridge's work for it, from the
HTTP request through the durable commits and the AT+CMGS exchange to the record of its
reference, idle polling between included, from the first request to the last message's answer.
Inbound, a burst goes through the whole chain (commit, AT+CNMA, forward over HTTP). The peak
RSS (the kernel's VmHWM) is read once both loads have run in the same bridge.

With eight modems (eight simulated modem processes, one bridge), the same loads are spread over
the pool: the outbound messages are unpinned, so whichever worker asks first sends; every modem
gets its share of the inbound burst at once.
"""

import threading
import time

from . import texts, wire
from .bridge import PASSWORD, USERNAME, Bridge
from .client import Client, sendsms_path
from .inbound import burst, text_for
from .procs import Meter, memory, wait_for


def sendsms_burst(bridge, count, text=texts.GSM160):
    """`count` sendsms requests back to back (one client), each a message; wait until every one
    has left a modem. CPU per message, and the rate and share of the line bound (one modem)."""
    modems = bridge.modems
    for modem in modems:
        modem.wire()
        modem.clear_sent()
    client = Client(bridge.api_url)
    meter = Meter(bridge.pid)
    began = time.monotonic()
    for i in range(count):
        status, body = client.request("GET", sendsms_path("+2557%08d" % i, text, USERNAME,
                                                          PASSWORD))
        if status != 202:
            raise RuntimeError("sendsms refused: %s %r" % (status, body[:200]))
    accepted = time.monotonic()
    wait_for(lambda: sum(m.sent_count() for m in modems) >= count,
             count * 0.2 + 60, 0.05, "%d messages to leave the modems" % count)
    cpu = meter.read()
    out = {"messages": count, "modems": len(modems), "accept_s": accepted - began,
           "duration_s": cpu["wall_s"], "cpu_ms_per_message": cpu["cpu_s"] * 1000 / count,
           "cpu_percent": cpu["cpu_percent"]}
    if len(modems) == 1:
        from .outbound import analyse
        exchanges = [e for e in wire.exchanges(bridge.modem.wire()) if e.command_at >= began]
        figures = analyse(exchanges, count, parts=texts.parts(text), baud=bridge.baud,
                          network_delay=0.0)
        for key in ("messages_per_s", "fraction_of_bound", "gap_ms_p50", "gap_ms_p99",
                    "host_ms_per_message", "modem_late_ms_per_message"):
            out[key] = figures.get(key)
    return out


def pool_burst(bridge, per_modem):
    """`per_modem` SMS injected into every modem at once; CPU per SMS until all are at the sink."""
    batches = {m: [text_for("p%d" % n, i) for i in range(per_modem)]
               for n, m in enumerate(bridge.modems)}
    meter = Meter(bridge.pid)

    def inject(modem, batch):
        for i, text in enumerate(batch):
            modem.inject("+2556%08d" % (i % 100), text)

    threads = [threading.Thread(target=inject, args=item) for item in batches.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wanted = {text for batch in batches.values() for text in batch}
    wait_for(lambda: wanted <= set(bridge.sink.by_text()), 60 + len(wanted) * 0.2, 0.1,
             "%d SMS at the sink" % len(wanted))
    cpu = meter.read()
    return {"messages": len(wanted), "modems": len(bridge.modems),
            "duration_s": cpu["wall_s"], "cpu_ms_per_message": cpu["cpu_s"] * 1000 / len(wanted),
            "cpu_percent": cpu["cpu_percent"]}


def run(ctx):
    sizes = ctx.sizes.load
    out = {}
    with Bridge(ctx.workdir("load-1"), baud=ctx.baud) as bridge:
        time.sleep(ctx.settle)
        out["one_modem"] = {"rss_mb_before": memory(bridge.pid)["rss_mb"]}
        ctx.progress("load, one modem: %d sendsms requests" % sizes["outbound"])
        out["one_modem"]["outbound"] = sendsms_burst(bridge, sizes["outbound"])
        ctx.progress("load, one modem: a burst of %d inbound SMS" % sizes["inbound"])
        out["one_modem"]["inbound"] = burst(bridge, sizes["inbound"], ctx.baud)
        out["one_modem"].update(memory(bridge.pid))
    count = sizes["modems"]
    with Bridge(ctx.workdir("load-%d" % count), baud=ctx.baud, modems=count) as bridge:
        time.sleep(ctx.settle * 2)
        pool = out["pool"] = {"modems": count, "rss_mb_before": memory(bridge.pid)["rss_mb"]}
        ctx.progress("load, %d modems: %d sendsms requests" % (count, sizes["pool_outbound"]))
        pool["outbound"] = sendsms_burst(bridge, sizes["pool_outbound"])
        ctx.progress("load, %d modems: %d inbound SMS each at once" % (
            count, sizes["pool_inbound"]))
        pool["inbound"] = pool_burst(bridge, sizes["pool_inbound"])
        pool.update(memory(bridge.pid))
    return out

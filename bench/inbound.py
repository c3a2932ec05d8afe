"""Inbound: from the moment an SMS reaches the modem to the moment its HTTP request reaches the
sink (RapidSMS's place), one at a time; then the throughput of a burst.

The simulated modem routes each SMS to the bridge as +CMT (the bridge's default with a modem that
can acknowledge, AT+CNMA) and hands over the next only after the acknowledgement, as a network
does. "Serial transfer time" is the +CMT line's bytes at 10 bits a byte: the part of the latency
no software can remove. The burst's bound adds the AT+CNMA and its OK, which must cross the line
before the next SMS can.
"""

import time

from . import wire
from .bridge import Bridge
from .procs import Meter, wait_for

CNMA_BYTES = len("AT+CNMA\r") + len("\r\nOK\r\n")


def text_for(tag, i):
    """A 7-bit SMS of ordinary length with a unique tag."""
    return "%s %05d: Nimefika kliniki, mtoto ana homa tangu jana usiku. Naomba ushauri." % (tag, i)


def latencies(bridge, count, spacing, baud):
    """Inject `count` SMS `spacing` seconds apart; per-SMS latency figures."""
    bridge.modem.wire()
    sent = {}
    for i in range(count):
        text = text_for("lat", i)
        sent[text] = bridge.modem.inject("+2557%08d" % (i % 100), text)["pdus"][0].upper()
        time.sleep(spacing)
    wait_for(lambda: set(sent) <= set(bridge.sink.by_text()), 30 + count * 0.2, 0.05,
             "%d SMS at the sink" % count)
    events = bridge.modem.wire()
    arrived = bridge.sink.by_text()
    reached = wire.deliveries(events)
    lines = {pdu: (at, size) for pdu, at, size in wire.routed(events)}
    total, above, after_line, transfer = [], [], [], []
    for text, pdu in sent.items():
        line_at, size = lines[pdu]
        serial = size * 10.0 / baud
        latency = arrived[text] - reached[text]
        total.append(latency * 1000)
        transfer.append(serial * 1000)
        above.append((latency - serial) * 1000)
        after_line.append((arrived[text] - line_at) * 1000)
    p = wire.percentile
    return {
        "messages": count,
        "spacing_s": spacing,
        "latency_ms_p50": p(total, 50), "latency_ms_p99": p(total, 99),
        "serial_transfer_ms": sum(transfer) / len(transfer),
        "above_serial_ms_p50": p(above, 50), "above_serial_ms_p99": p(above, 99),
        "after_last_byte_ms_p50": p(after_line, 50), "after_last_byte_ms_p99": p(after_line, 99),
    }


def burst(bridge, count, baud, pids=None):
    """Inject `count` SMS at once; how fast they all reach the sink, against the line's bound.
    CPU is the bridge's (or that of `pids`: a peer's processes) from the first injection to the
    last SMS at the sink."""
    bridge.modem.wire()
    texts = [text_for("burst", i) for i in range(count)]
    meter = Meter(pids or bridge.pid)
    for i, text in enumerate(texts):
        bridge.modem.inject("+2556%08d" % (i % 100), text)
    wait_for(lambda: set(texts) <= set(bridge.sink.by_text()), 60 + count * 0.2, 0.1,
             "a burst of %d SMS at the sink" % count)
    cpu = meter.read()
    events = bridge.modem.wire()
    reached = wire.deliveries(events)
    arrived = bridge.sink.by_text()
    first = min(reached[t] for t in texts)
    last = max(arrived[t] for t in texts)
    line_bytes = sum(size + CNMA_BYTES for _, _, size in wire.routed(events))
    bound = line_bytes * 10.0 / baud
    duration = last - first
    return {
        "messages": count,
        "duration_s": duration,
        "messages_per_s": count / duration,
        "bound_messages_per_s": count / bound,
        "fraction_of_bound": bound / duration,
        "bridge_cpu_ms_per_message": cpu["cpu_s"] * 1000 / count,
    }


def run(ctx):
    with Bridge(ctx.workdir("inbound"), baud=ctx.baud) as bridge:
        time.sleep(ctx.settle)
        ctx.progress("inbound: %d SMS one at a time" % ctx.sizes.inbound)
        one = latencies(bridge, ctx.sizes.inbound, 0.05, ctx.baud)
        ctx.progress("inbound: a burst of %d" % ctx.sizes.burst)
        many = burst(bridge, ctx.sizes.burst, ctx.baud)
    return {"latency": one, "burst": many}

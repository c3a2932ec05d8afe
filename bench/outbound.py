"""Outbound: how close the bridge keeps the serial line to its bound, and the gap between sends.

For each kind of message, one API request queues N of them; the simulated modem's wire log gives
every AT+CMGS exchange. The line's bound for an exchange is the bytes that must cross it
(AT+CMGS=<len>, the "> " prompt, the PDU and Ctrl-Z, "+CMGS: <mr>" and OK) at 10 bits a byte,
plus the network's delay per part when there is one; the bridge's share is that bound over the
time it actually took per message, back to back. Where the rest went is split into the simulated
modem's own lateness and the host's turnarounds.
"""

import random
import time

from . import texts, wire
from .bridge import Bridge
from .procs import Meter, wait_for


def analyse(exchanges, messages, *, parts=1, baud, network_delay):
    """Rate, share of the bound and gaps of a run of AT+CMGS exchanges, `parts` per message.

    The rate is the steady one, from the first message's last answer to the last message's
    (so it counts the time between messages, which a single message's exchange would not);
    with one message, from its AT+CMGS to its answer.

    The bound per message is its line time plus the network's delay for each part. With AT+CMMS
    (TS 27.005 3.5.6, "more messages to send") the network keeps its relay link up between
    submits, and the simulated modem then takes half its delay for a part sent within 5 s of the
    one before: back to back, that is the best the modem offers, so it is the bound;
    "nominal" is the bound without it.
    """
    if not exchanges:
        return {"error": "no AT+CMGS exchange seen"}
    duration = exchanges[-1].answered_at - exchanges[0].command_at
    line_bytes = sum(e.line_bytes for e in exchanges)
    count = max(1, len(exchanges) / parts)              # messages seen
    line_time = line_bytes * 10.0 / baud / count        # per message
    nominal = line_time + network_delay * parts
    bound = line_time + network_delay * parts / 2
    done = [exchanges[k * parts + parts - 1].answered_at for k in range(len(exchanges) // parts)]
    if len(done) >= 2:
        period = (done[-1] - done[0]) / (len(done) - 1)
    else:
        period = duration / max(1, len(done))
    gaps = [g * 1000 for g in wire.gaps(exchanges)]
    # Where the time beyond the bound went: the simulated modem's own lateness, and the host's
    # turnarounds (prompt -> PDU, answer -> next AT+CMGS), per message.
    modem_late = sum(e.modem_late(baud, network_delay) for e in exchanges) / count
    host = (sum(e.host_turnaround() for e in exchanges) + sum(wire.gaps(exchanges))) / count
    return {
        "messages": messages,
        "parts": len(exchanges),
        "failed_parts": sum(not e.ok for e in exchanges),
        "line_bytes_per_part": line_bytes / len(exchanges),
        "duration_s": duration,
        "seconds_per_message": period,
        "messages_per_s": 1.0 / period if period > 0 else None,
        "bound_seconds_per_message": bound,
        "bound_messages_per_s": 1.0 / bound,
        "fraction_of_bound": bound / period if period > 0 else None,
        "nominal_bound_seconds_per_message": nominal,
        "fraction_of_nominal_bound": nominal / period if period > 0 else None,
        "gap_ms_p50": wire.percentile(gaps, 50),
        "gap_ms_p99": wire.percentile(gaps, 99),
        "gap_ms_max": max(gaps) if gaps else None,
        "gaps": len(gaps),
        "modem_late_ms_per_message": modem_late * 1000,
        "host_ms_per_message": host * 1000,
    }


def send_batch(bridge, text, count, *, network_delay, baud):
    """Queue `count` copies of `text` in one request, wait until the modem sent them all."""
    bridge.modem.wire()                       # forget what came before
    bridge.modem.clear_sent()
    meter = Meter(bridge.pid)
    numbers = ["+2557%08d" % i for i in range(count)]
    began = time.monotonic()
    bridge.send(numbers, text)
    accepted = time.monotonic()
    parts = texts.parts(text)
    budget = count * parts * (network_delay + 0.2) * 3 + 30
    wait_for(lambda: bridge.modem.sent_count() >= count, budget, 0.1,
             "%d messages to leave the modem" % count)
    cpu = meter.read()
    events = bridge.modem.wire()
    exchanges = [e for e in wire.exchanges(events) if e.command_at >= began]
    out = analyse(exchanges, count, parts=parts, baud=baud, network_delay=network_delay)
    if exchanges:
        out["first_send_after_accept_ms"] = (exchanges[0].command_at - accepted) * 1000
    out["bridge_cpu_ms_per_message"] = cpu["cpu_s"] * 1000 / count
    out["bridge_cpu_percent"] = cpu["cpu_percent"]
    return out


def pickup(bridge, samples, *, spread=0.3):
    """With nothing queued, one message accepted at a random moment: ms to its AT+CMGS."""
    out = []
    for i in range(samples):
        time.sleep(random.uniform(0.05, spread))
        bridge.modem.wire()
        before = bridge.modem.sent_count()
        bridge.send(["+2559%08d" % i], texts.GSM160)
        accepted = time.monotonic()
        wait_for(lambda: bridge.modem.sent_count() > before, 30, 0.02, "the message to leave")
        exchanges = wire.exchanges(bridge.modem.wire())
        if exchanges:
            out.append((exchanges[0].command_at - accepted) * 1000)
    return {"samples": len(out), "pickup_ms_p50": wire.percentile(out, 50),
            "pickup_ms_max": max(out) if out else None}


def run(ctx):
    results = {}
    for label, delay in (("no_delay", 0.0), ("network_delay", ctx.sizes.network_delay)):
        with Bridge(ctx.workdir("outbound-" + label), network_delay=delay,
                    baud=ctx.baud) as bridge:
            time.sleep(ctx.settle)     # let boot-time chatter (first status query) pass
            kinds = {}
            for kind, text in texts.KINDS.items():
                count = ctx.sizes.outbound[label][kind]
                ctx.progress("outbound %s: %d x %s" % (label, count, kind))
                kinds[kind] = send_batch(bridge, text, count, network_delay=delay, baud=ctx.baud)
            results[label] = {"network_delay_s": delay, "kinds": kinds}
            if label == "no_delay":
                ctx.progress("outbound: pickup, %d samples" % ctx.sizes.pickup)
                results["pickup"] = pickup(bridge, ctx.sizes.pickup)
    return results

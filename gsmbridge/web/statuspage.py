"""The status page's helpers: the filters templates/status.html renders a snapshot with.

The page (GET /) is one self-contained HTML document rendered from overview.snapshot(). It is made
for an operator glancing at a phone or an old office PC: no build step, no external assets (CSS,
the traffic chart as SVG and a few lines of script are all inline), readable from 320 px wide up,
and still useful without JavaScript (a meta refresh then reloads the page). With JavaScript the
page fetches itself every `refresh` seconds and swaps the figures in place; if the bridge stops
answering it keeps the last figures and says since when it has had no answer.

Phone numbers are shown masked (overview.mask_number) and message texts not at all: the page is
for seeing whether SMS flow, and a screen in a district office is seen by passers-by. Of a SIM's
identity the page shows what finds the SIM and the dongle (ICCID, IMEI) and the gateway's own
number, which its users text anyway; the IMSI, which identifies the subscriber, is masked. Everything
from the store reaches the page through Jinja's autoescaping, modem errors and ids included.

The markup lives in the template; what is here turns parts of the snapshot into the words and
figures the template prints (the chart's geometry, a modem's usage against its caps, the queue
tiles), so the template holds no arithmetic.
"""

import time

from flask import render_template

from gsmbridge import overview
from gsmbridge.web.checks import REFRESH_DEFAULT

#: how the store's statuses look: (css class, words)
STATUS_LOOK = {
    "pending": ("wait", "waiting"),
    "delivered": ("good", "delivered"),
    "failed": ("bad", "failed"),
    "queued": ("wait", "queued"),
    "sending": ("wait", "sending"),
    "sent": ("good", "sent"),
    "unknown": ("bad", "unknown"),
}
MODEM_LOOK = {"up": "good", "booting": "wait", "down": "bad", "stopped": "bad"}
SIGNAL_WORDS = ("none", "marginal", "fair", "good", "excellent")

#: the page's Content-Security-Policy: nothing from anywhere else, scripts and styles inline only
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

#: the chart's drawing area in SVG units; it stretches to the page's width at a fixed height
CHART_WIDTH, CHART_HEIGHT = 480, 100
#: a bar's width, as a share of its hour's slot (two bars, received and sent, per slot)
BAR_SHARE = 0.38
#: the least height of a bar that is not zero, so that one message in an hour still shows
BAR_MIN = 1.5


def render(data, *, refresh=REFRESH_DEFAULT, name="gsmbridge"):
    """The whole page for a snapshot (overview.snapshot()), as a str. Needs an application
    context: the template and its filters are the application's (operators.bp)."""
    return render_template("status.html", data=data, now=data["now"], refresh=refresh,
                           name=name)


# ---------------------------------------------------------------------------------------------
# Words and times


def clock(stamp):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def short_time(stamp, now):
    if not isinstance(stamp, (int, float)):
        return "?"
    if now - stamp < 20 * 3600:
        return time.strftime("%H:%M:%S", time.localtime(stamp))
    return time.strftime("%d %b %H:%M", time.localtime(stamp))


def shorten(text, limit):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def hour_range(start, bucket):
    return "%s–%s" % (time.strftime("%H:%M", time.localtime(start)),
                      time.strftime("%H:%M", time.localtime(start + bucket)))


# ---------------------------------------------------------------------------------------------
# Modems


def modem_look(state):
    """A modem's state -> the css class of its pill."""
    return MODEM_LOOK.get(state, "bad")


def signal(csq):
    """AT+CSQ's rssi -> {bars: [(on, height %)], words, csq, dbm}; None when unknown."""
    bars = overview.signal_bars(csq)
    if bars is None:
        return None
    return {"bars": [(i < bars, height) for i, height in enumerate((25, 50, 75, 100))],
            "words": SIGNAL_WORDS[bars], "csq": csq, "dbm": overview.signal_dbm(csq)}


def usage(state):
    """SMS parts sent in the last 24 hours and hour, each against its cap when it has one:
    [{sent, window, cap (0: none), cap_key, look, percent}]. Amber from 80 % of a cap, red at it."""
    windows = []
    for key, cap_key, window in (("sent_last_day", "daily_cap", "24 h"),
                                 ("sent_last_hour", "hourly_cap", "1 h")):
        sent, cap = state.get(key) or 0, state.get(cap_key) or 0
        share = min(sent / cap, 1.0) if cap else 0.0
        windows.append({"sent": sent, "window": window, "cap": cap, "cap_key": cap_key,
                        "look": "bad" if share >= 1 else "wait" if share >= 0.8 else "",
                        "percent": share * 100})
    return windows


# ---------------------------------------------------------------------------------------------
# Queues


def tiles(counts, now):
    """The queue tiles: [{key, value, words, look, note}], the rare ones only when they count."""
    inbound, outbound = counts["inbound"], counts["outbound"]
    in_age = overview.age(counts.get("oldest_pending_inbound"), now)
    out_age = overview.age(counts.get("oldest_queued_outbound"), now)
    found = [
        tile("in-pending", inbound["pending"], "inbound waiting for RapidSMS",
             stale(in_age), oldest(in_age)),
        tile("in-failed", inbound["failed"], "inbound refused by RapidSMS",
             "bad" if inbound["failed"] else ""),
        tile("out-queued", outbound["queued"], "outbound queued", stale(out_age), oldest(out_age)),
        tile("out-sending", outbound["sending"], "being sent now"),
        tile("out-failed", outbound["failed"], "outbound failed",
             "bad" if outbound["failed"] else ""),
    ]
    if outbound.get("unknown"):
        found.append(tile("out-unknown", outbound["unknown"], "outbound unknown (interrupted)",
                          "bad"))
    found.append(tile("parts", counts["parts"], "parts awaiting the rest of their SMS"))
    found.append(tile("bad-pdus", counts["bad_pdus"], "undecodable PDUs kept",
                      "wait" if counts["bad_pdus"] else ""))
    callbacks = counts.get("callbacks")
    if callbacks and (callbacks.get("pending") or callbacks.get("failed")):
        found.append(tile("dlr", callbacks.get("pending", 0), "delivery reports to send",
                          "bad" if callbacks.get("failed") else "",
                          "%d failed" % callbacks["failed"] if callbacks.get("failed") else ""))
    return found


def tile(key, value, words, look="", note=""):
    return {"key": key, "value": value, "words": words, "look": look, "note": note}


def stale(seconds):
    if seconds is None:
        return ""
    return "bad" if seconds > overview.QUEUE_STALE else "wait" if seconds > 300 else ""


def oldest(seconds):
    return "" if seconds is None else "oldest %s" % overview.duration(seconds)


# ---------------------------------------------------------------------------------------------
# Traffic


def nice_ceiling(value):
    """The chart's top line: the first of 5, 10, 20, 50, 100, 200, ... at or above value."""
    top, steps = 5, (2, 2.5, 2)
    i = 0
    while top < value:
        top = int(top * steps[i % 3])
        i += 1
    return top


def chart(traffic):
    """Received and sent per hour, as the geometry of an SVG bar chart: {top (the value of the
    top line), received, sent, hours: [{label, bars: [(x, y, height, colour)]}], bar (width),
    width, height, grid, base (the lines' heights)}.

    The SVG holds bars and lines only; its labels are HTML around it, so they stay readable on a
    phone and on a wide screen alike.
    """
    ins, outs = traffic["in"], traffic["out"]
    top = nice_ceiling(max(ins + outs + [1]))
    slot = CHART_WIDTH / max(len(ins), 1)
    bar = slot * BAR_SHARE
    hours = []
    for i in range(len(ins)):
        x = i * slot + (slot - 2 * bar) / 2
        bars = []
        for offset, value, colour in ((0, ins[i], "#1d4ed8"), (bar, outs[i], "#c2410c")):
            height = max(CHART_HEIGHT * value / top, BAR_MIN) if value else 0
            bars.append((x + offset, CHART_HEIGHT - height, height, colour))
        label = "%s: %d received, %d sent" % (
            hour_range(traffic["start"] + i * traffic["bucket"], traffic["bucket"]),
            ins[i], outs[i])
        hours.append({"label": label, "bars": bars})
    return {"top": top, "received": sum(ins), "sent": sum(outs), "hours": hours, "bar": bar,
            "width": CHART_WIDTH, "height": CHART_HEIGHT,
            # the top and middle lines, and the bottom one (inside the drawing, half a unit in)
            "grid": (0.5, CHART_HEIGHT / 2), "base": CHART_HEIGHT - 0.5}


# ---------------------------------------------------------------------------------------------
# Latest messages


def row(message, now):
    """One message of the latest, as the table shows it: {id, way, number (masked), when,
    status, look, words, parts, why}."""
    inbound = message.get("direction") == "in"
    status = message.get("status") or "?"
    look, words = STATUS_LOOK.get(status, ("wait", status))
    if inbound and status == "pending" and message.get("attempts"):
        words = "retrying"
    why = message.get("last_error") if status not in ("delivered", "sent") else ""
    message_id = message.get("id")
    return {
        "id": "" if message_id is None else message_id,
        "way": "in" if inbound else "out",
        "number": overview.mask_number(message.get("sender") if inbound
                                       else message.get("recipient")),
        "when": short_time(message.get("received_at") if inbound
                           else message.get("created_at"), now),
        "status": status, "look": look, "words": words,
        "parts": message.get("parts") or 1,
        "why": shorten(why, 120) if why else "",
    }


#: what the template may call, by name
FILTERS = {
    "ago": overview.ago,
    "chart": chart,
    "clock": clock,
    "duration": overview.duration,
    "mask": overview.mask_number,
    "modem_look": modem_look,
    "registration": overview.registration_text,
    "row": row,
    "signal": signal,
    "tiles": tiles,
    "usage": usage,
}

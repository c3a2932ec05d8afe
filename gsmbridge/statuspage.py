"""The status page at GET /: one self-contained HTML document rendered from overview.snapshot().

Made for an operator glancing at a phone or an old office PC: no build step, no external assets
(CSS, the traffic chart as SVG and a few lines of script are all inline), readable from 320 px wide
up, and still useful without JavaScript (a meta refresh then reloads the page). With JavaScript
the page fetches itself every `refresh` seconds and swaps the figures in place; if the bridge
stops answering it keeps the last figures and says since when it has had no answer.

Phone numbers are shown masked (overview.mask_number) and message texts not at all: the page is
for seeing whether SMS flow, and a screen in a district office is seen by passers-by.
"""

import html
import time

from gsmbridge import overview

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

CSS = """
:root{--good:#15803d;--wait:#b45309;--bad:#b91c1c;--ink:#1f2937;--mute:#6b7280;--line:#e5e7eb;
--card:#fff;--bg:#f3f4f6;--in:#1d4ed8;--out:#c2410c}
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:var(--bg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem;padding:.75rem 1rem;
background:#111827;color:#fff}
header h1{font-size:1.15rem;margin:0;font-weight:600}
main{max-width:60rem;margin:0 auto;padding:.75rem}
section{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem;
margin-bottom:.75rem}
h2{font-size:1rem;margin:0 0 .5rem}
.pill{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600;color:#fff;
font-size:.95rem}
.pill.good{background:var(--good)}.pill.wait{background:var(--wait)}.pill.bad{background:var(--bad)}
.alert{border-color:var(--bad);border-left:.35rem solid var(--bad)}
.alert ul{margin:.25rem 0 0;padding-left:1.2rem}
.alert.warn{border-color:var(--wait);border-left-color:var(--wait)}
.offline{background:var(--bad);color:#fff;padding:.5rem 1rem;font-weight:600}
.offline:empty{display:none}
.modems{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:.75rem}
.modem{border:1px solid var(--line);border-radius:.5rem;padding:.6rem}
.modem .top{display:flex;justify-content:space-between;align-items:center;gap:.5rem}
.modem .name{font-weight:600;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .75rem;margin:.5rem 0 0}
dt{color:var(--mute)}dd{margin:0;overflow-wrap:anywhere}
.bars{display:inline-flex;align-items:flex-end;gap:2px;height:1rem;vertical-align:-.1rem;
margin-right:.35rem}
.bars i{display:block;width:.3rem;background:var(--line);border-radius:1px}
.bars i.on{background:var(--ink)}
.error{color:var(--bad)}.note{color:var(--wait);font-weight:600}
.use{white-space:nowrap}
.meter{display:inline-block;width:3.5rem;height:.4rem;margin-left:.35rem;vertical-align:.1rem;
background:var(--line);border-radius:2px;overflow:hidden}
.meter i{display:block;height:100%;background:var(--good)}
.meter.wait i{background:var(--wait)}.meter.bad i{background:var(--bad)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(8.5rem,1fr));gap:.5rem}
.tile{border:1px solid var(--line);border-radius:.5rem;padding:.4rem .6rem}
.tile b{display:block;font-size:1.6rem;line-height:1.2}
.tile small{color:var(--mute)}
.tile.bad{border-color:var(--bad);color:var(--bad)}.tile.wait{border-color:var(--wait);color:var(--wait)}
.plot{position:relative;padding-top:1.1rem}
.plot .top{position:absolute;top:0;left:0;font-size:.8rem;color:var(--mute)}
.chart{width:100%;height:7.5rem;display:block}
.axis{display:flex;justify-content:space-between;font-size:.8rem;color:var(--mute)}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.9rem;margin-top:.25rem}
.key{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;vertical-align:-.05rem;
margin-right:.25rem}
.facts{margin:.5rem 0 0;padding:0;list-style:none;font-size:.9rem}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:.35rem .3rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--mute);font-weight:600}
td.num{font-family:ui-monospace,"DejaVu Sans Mono",monospace;white-space:nowrap}
.dir{font-weight:600;white-space:nowrap}.dir.in{color:var(--in)}.dir.out{color:var(--out)}
.st{font-weight:600}.st.good{color:var(--good)}.st.wait{color:var(--wait)}.st.bad{color:var(--bad)}
.why{display:block;color:var(--mute);font-size:.8rem;overflow-wrap:anywhere}
.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;color:var(--mute);font-size:.8rem}
footer{color:var(--mute);font-size:.85rem;text-align:center;padding:0 1rem 1rem}
footer a{color:inherit}
@media (max-width:34rem){.wide{display:none}main{padding:.5rem}section{padding:.6rem}
.tile b{font-size:1.3rem}table{font-size:.85rem}th,td{padding:.3rem .15rem}}
"""

SCRIPT = """
(function () {
  var every = %d * 1000, since = null;
  var offline = document.getElementById("offline");
  function tick() {
    // location.host, not location.href: a URL with user:password@ in it cannot be fetched
    fetch(location.protocol + "//" + location.host + location.pathname + location.search,
          {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then(function (text) {
        var page = new DOMParser().parseFromString(text, "text/html");
        var view = page.getElementById("view");
        if (!view) throw new Error("not a status page");
        document.getElementById("view").replaceWith(view);
        document.title = page.title;
        since = null;
        offline.textContent = "";
      })
      .catch(function (err) {
        since = since || new Date();
        offline.textContent = "No answer from the bridge since " + since.toLocaleTimeString() +
          " (" + err.message + "): the figures below are from then.";
      })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""

#: the page's Content-Security-Policy: nothing from anywhere else, scripts and styles inline only
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")


def e(value):
    return html.escape("" if value is None else str(value), quote=True)


def render(data, *, refresh=15, name="gsmbridge"):
    """The whole page for a snapshot (overview.snapshot()), as a str."""
    now = data["now"]
    health = data["health"]
    warnings = health.get("warnings") or []
    if not health["ok"]:
        pill, word = '<span class="pill bad">Needs attention</span>', "PROBLEM"
    elif warnings:
        pill = '<span class="pill wait">SMS flowing, %d warning%s</span>' % (
            len(warnings), "" if len(warnings) == 1 else "s")
        word = "WARNING"
    else:
        pill, word = '<span class="pill good">SMS flowing</span>', "OK"
    title = "%s %s" % (word, name)
    body = [
        '<header><h1>%s</h1>%s<span>%s</span></header>' % (
            e(name), pill, e(clock(now))),
        '<main>',
        alert(health),
        modems_section(data["modems"], now),
        queues_section(data["counts"], now),
        traffic_section(data, now),
        recent_section(data["recent"], now),
        '</main>',
        '<footer>Updated %s%s. Refreshes every %d s. '
        '<a href="/status">JSON</a> · <a href="/metrics">metrics</a> · '
        '<a href="/health">health</a> · <a href="/openapi.json">API</a></footer>' % (
            e(clock(now)),
            "; running for %s" % overview.duration(data["uptime"])
            if data.get("uptime") is not None else "", refresh),
    ]
    return "".join([
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<noscript><meta http-equiv="refresh" content="%d"></noscript>' % refresh,
        '<link rel="icon" href="data:,">',
        '<title>%s</title><style>%s</style></head><body>' % (e(title), CSS),
        '<div id="offline" class="offline" role="status" aria-live="polite"></div>',
        '<div id="view">', "\n".join(body), '</div>',
        '<script>%s</script></body></html>\n' % (SCRIPT % refresh),
    ])


def alert(health):
    """What /health says: its reasons for a 503, or the warnings it gives with a 200 (the
    modems of a pool that cannot send while another can)."""
    if not health["ok"]:
        items = "".join("<li>%s</li>" % e(reason) for reason in health["reasons"])
        return ('<section class="alert" id="problems"><h2>What is wrong</h2><ul>%s</ul>'
                '</section>' % items)
    if health.get("warnings"):
        items = "".join("<li>%s</li>" % e(warning) for warning in health["warnings"])
        return ('<section class="alert warn" id="warnings"><h2>Warnings</h2><ul>%s</ul>'
                '<p>SMS still go out through the other modems; messages pinned to these wait '
                'for them.</p></section>' % items)
    return ""


# ---------------------------------------------------------------------------------------------
# Modems


def modems_section(modems, now):
    cards = [modem_card(name, state, now) for name, state in modems.items()]
    if not cards:
        cards = ['<p>No modem configured.</p>']
    return '<section id="modems"><h2>Modems</h2><div class="modems">%s</div></section>' % (
        "".join(cards))


def modem_card(name, state, now):
    status = state.get("state") or "unknown"
    look = MODEM_LOOK.get(status, "bad")
    rows = [
        ("Signal", signal(state.get("signal"))),
        ("Network", e(state.get("operator") or "—")),
        ("Registration", e(overview.registration_text(state.get("registration")))),
        ("Last report", e(overview.ago(state.get("updated_at"), now))),
    ]
    if state.get("routes"):
        rows.append(("Routes", e(" ".join(state["routes"]))))
    if "sent_last_day" in state:
        rows.append(("Sent", usage(state)))
    if state.get("last_error"):
        rows.append(("Last error", '<span class="error">%s</span>' % e(state["last_error"])))
    if not state.get("configured", True):
        rows.append(("Note", "not in the config file (an old name?)"))
    pills = '<span class="pill %s">%s</span>' % (look, e(status))
    if state.get("capped"):
        pills = '<span class="pill wait">capped</span> ' + pills
    flags = "".join(' data-%s="%s"' % (key, "true" if state[key] else "false")
                    for key in ("capped", "available") if key in state)
    return ('<div class="modem" data-modem="%s" data-state="%s"%s><div class="top">'
            '<span class="name">%s</span><span>%s</span></div><dl>%s</dl></div>'
            % (e(name), e(status), flags, e(name), pills,
               "".join("<dt>%s</dt><dd>%s</dd>" % row for row in rows)))


def usage(state):
    """SMS parts sent in the last 24 hours and hour, each against its cap when it has one, with
    a bar beside a cap (amber from 80 %, red at the cap): "312 / 500 in 24 h · 12 in 1 h"."""
    parts = []
    for key, cap_key, window in (("sent_last_day", "daily_cap", "24 h"),
                                 ("sent_last_hour", "hourly_cap", "1 h")):
        sent, cap = state.get(key) or 0, state.get(cap_key) or 0
        if not cap:
            parts.append('<span class="use">%d in %s</span>' % (sent, window))
            continue
        share = min(sent / cap, 1.0)
        look = "bad" if share >= 1 else "wait" if share >= 0.8 else ""
        parts.append('<span class="use" data-cap="%s">%d / %d in %s<span class="meter %s" '
                     'role="img" aria-label="%d%% of the cap"><i style="width:%.0f%%"></i>'
                     '</span></span>' % (cap_key, sent, cap, window, look, share * 100,
                                         share * 100))
    text = " · ".join(parts)
    if state.get("capped"):
        text += ('<br><span class="note">at its cap until older SMS leave the window'
                 '</span>')
    return text


def signal(csq):
    bars = overview.signal_bars(csq)
    if bars is None:
        return "unknown"
    icons = "".join('<i class="%s" style="height:%d%%"></i>' % ("on" if i < bars else "", h)
                    for i, h in enumerate((25, 50, 75, 100)))
    words = ("none", "marginal", "fair", "good", "excellent")[bars]
    return '<span class="bars" aria-hidden="true">%s</span>%s (CSQ %d, %d dBm)' % (
        icons, words, csq, overview.signal_dbm(csq))


# ---------------------------------------------------------------------------------------------
# Queues


def queues_section(counts, now):
    inbound, outbound = counts["inbound"], counts["outbound"]
    in_age = overview.age(counts.get("oldest_pending_inbound"), now)
    out_age = overview.age(counts.get("oldest_queued_outbound"), now)
    tiles = [
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
        tiles.append(tile("out-unknown", outbound["unknown"], "outbound unknown (interrupted)",
                          "bad"))
    tiles.append(tile("parts", counts["parts"], "parts awaiting the rest of their SMS"))
    tiles.append(tile("bad-pdus", counts["bad_pdus"], "undecodable PDUs kept",
                      "wait" if counts["bad_pdus"] else ""))
    callbacks = counts.get("callbacks")
    if callbacks and (callbacks.get("pending") or callbacks.get("failed")):
        tiles.append(tile("dlr", callbacks.get("pending", 0), "delivery reports to send",
                          "bad" if callbacks.get("failed") else "",
                          "%d failed" % callbacks["failed"] if callbacks.get("failed") else ""))
    return '<section id="queues"><h2>Queues</h2><div class="tiles">%s</div></section>' % (
        "".join(tiles))


def stale(seconds):
    if seconds is None:
        return ""
    return "bad" if seconds > overview.QUEUE_STALE else "wait" if seconds > 300 else ""


def oldest(seconds):
    return "" if seconds is None else "oldest %s" % overview.duration(seconds)


def tile(key, value, words, look="", note=""):
    return ('<div class="tile %s" data-count="%s"><b>%d</b><small>%s%s</small></div>'
            % (look, key, value, e(words), "<br>" + e(note) if note else ""))


# ---------------------------------------------------------------------------------------------
# Traffic


def traffic_section(data, now):
    traffic, activity = data["traffic"], data["activity"]
    ins, outs = traffic["in"], traffic["out"]
    facts = [
        "Last 24 h: <b>%d</b> received, <b>%d</b> sent" % (sum(ins), sum(outs)),
        "Last hour: <b>%d</b> received, <b>%d</b> sent" % (ins[-1] if ins else 0,
                                                            outs[-1] if outs else 0),
        "Last received %s · forwarded to RapidSMS %s · sent %s" % tuple(
            e(overview.ago(activity.get(key), now))
            for key in ("last_received", "last_forwarded", "last_sent")),
    ]
    return ('<section id="traffic"><h2>Traffic, last 24 hours</h2>%s'
            '<div class="legend"><span><span class="key" style="background:var(--in)"></span>'
            'received</span><span><span class="key" style="background:var(--out)"></span>sent'
            '</span></div><ul class="facts">%s</ul></section>'
            % (chart(traffic), "".join("<li>%s</li>" % f for f in facts)))


def nice_ceiling(value):
    """The chart's top line: the first of 5, 10, 20, 50, 100, 200, ... at or above value."""
    top, steps = 5, (2, 2.5, 2)
    i = 0
    while top < value:
        top = int(top * steps[i % 3])
        i += 1
    return top


def chart(traffic):
    """Received and sent per hour as an inline SVG bar chart.

    The SVG holds bars and lines only and stretches to the page's width at a fixed height; its
    labels are HTML around it, so they stay readable on a phone and on a wide screen alike.
    """
    ins, outs = traffic["in"], traffic["out"]
    n = max(len(ins), 1)
    width, height = 480.0, 100.0
    top = nice_ceiling(max(ins + outs + [1]))
    slot = width / n
    bar = slot * 0.38
    parts = ['<div class="plot"><span class="top">%d per hour</span>' % top,
             '<svg class="chart" viewBox="0 0 %d %d" preserveAspectRatio="none" role="img" '
             'aria-label="SMS per hour over the last 24 hours: %d received, %d sent">'
             % (width, height, sum(ins), sum(outs))]
    for y in (0.5, height / 2):
        parts.append('<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#d1d5db" '
                     'vector-effect="non-scaling-stroke"/>' % (width, y, y))
    for i in range(len(ins)):
        x = i * slot + (slot - 2 * bar) / 2
        start = traffic["start"] + i * traffic["bucket"]
        label = "%s–%s: %d received, %d sent" % (
            time.strftime("%H:%M", time.localtime(start)),
            time.strftime("%H:%M", time.localtime(start + traffic["bucket"])), ins[i], outs[i])
        parts.append('<g><title>%s</title>' % e(label))
        for offset, value, color in ((0, ins[i], "#1d4ed8"), (bar, outs[i], "#c2410c")):
            h = max(height * value / top, 1.5) if value else 0
            parts.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                         % (x + offset, height - h, bar, h, color))
        parts.append('</g>')
    parts.append('<line x1="0" x2="%d" y1="%.1f" y2="%.1f" stroke="#6b7280" '
                 'vector-effect="non-scaling-stroke"/></svg>' % (width, height - 0.5,
                                                                height - 0.5))
    parts.append('<div class="axis"><span>24 h ago</span><span>12 h ago</span><span>now</span>'
                 '</div></div>')
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Latest messages


def recent_section(messages, now):
    if not messages:
        rows = '<tr><td colspan="5">No messages yet.</td></tr>'
    else:
        rows = "".join(message_row(m, now) for m in messages)
    return ('<section id="recent"><h2>Latest messages</h2><table><thead><tr><th>When</th>'
            '<th>Way</th><th>Number</th><th>Status</th><th class="wide">Id</th></tr></thead>'
            '<tbody>%s</tbody></table></section>' % rows)


def message_row(message, now):
    inbound = message.get("direction") == "in"
    number = message.get("sender") if inbound else message.get("recipient")
    when = message.get("received_at") if inbound else message.get("created_at")
    status = message.get("status") or "?"
    look, words = STATUS_LOOK.get(status, ("wait", status))
    if inbound and status == "pending" and message.get("attempts"):
        words = "retrying"
    why = message.get("last_error") if status not in ("delivered", "sent") else ""
    parts = message.get("parts") or 1
    return ('<tr data-id="%s" data-direction="%s" data-status="%s"><td>%s</td>'
            '<td class="dir %s">%s</td><td class="num">%s</td>'
            '<td><span class="st %s">%s</span>%s%s</td><td class="wide id">%s</td></tr>'
            % (e(message.get("id")), "in" if inbound else "out", e(status),
               e(short_time(when, now)), "in" if inbound else "out",
               "← in" if inbound else "→ out", e(overview.mask_number(number)), look, e(words),
               ' <small>(%d parts)</small>' % parts if parts > 1 else "",
               '<span class="why">%s</span>' % e(shorten(why, 120)) if why else "",
               e(message.get("id"))))


def short_time(stamp, now):
    if not isinstance(stamp, (int, float)):
        return "?"
    if now - stamp < 20 * 3600:
        return time.strftime("%H:%M:%S", time.localtime(stamp))
    return time.strftime("%d %b %H:%M", time.localtime(stamp))


def clock(stamp):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def shorten(text, limit):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"

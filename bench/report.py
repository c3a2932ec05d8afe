"""The results as rows against their targets, the table, and the machine they were taken on."""

import os
import platform
import subprocess
from datetime import datetime, timezone

from . import gammu, kannel


def machine():
    info = {"nproc": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in f
                                if line.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        info["memory_gb"] = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    info["gammu_smsd"] = gammu.version()
    info["kannel"] = kannel.version()
    return info


def commit(root):
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "HEAD")
    if not head:                  # an exported tree (git archive): say which commit it was
        return {"commit": os.environ.get("BENCH_COMMIT"), "dirty": None}
    return {"commit": head, "dirty": bool(git("status", "--porcelain", "--", "gsmbridge"))}


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _get(data, path):
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


#: (label, path into the results, unit, target, "min" (value >= target) or "max" (<= target))
TARGETS = [
    ("link: modem->host pacing (AT+CMGL, no bridge)", "link.modem_to_host.bits_per_byte_min",
     "bit/B", None, None),
    ("link: host->modem pacing (AT+CMGS, no bridge)", "link.host_to_modem.bits_per_byte_min",
     "bit/B", None, None),
]
for _delay in ("no_delay", "network_delay"):
    for _kind in ("gsm160", "ucs2_70", "multi3"):
        _base = "outbound.%s.kinds.%s." % (_delay, _kind)
        TARGETS += [
            ("outbound %s %s: share of line bound" % (_delay, _kind),
             _base + "fraction_of_bound", "%", 0.97, "min"),
            ("outbound %s %s: messages/s" % (_delay, _kind), _base + "messages_per_s", "/s",
             None, None),
        ]
        if _delay == "network_delay":
            TARGETS.append(("outbound %s %s: share of nominal bound (no CMMS)" % (_delay, _kind),
                            _base + "fraction_of_nominal_bound", "%", None, None))
        TARGETS += [
            ("outbound %s %s: gap answer->next AT+CMGS p50" % (_delay, _kind),
             _base + "gap_ms_p50", "ms", 5.0, "max"),
            ("outbound %s %s: gap answer->next AT+CMGS p99" % (_delay, _kind),
             _base + "gap_ms_p99", "ms", 5.0, "max"),
        ]
TARGETS += [
    ("outbound: CPU per 160-char message", "outbound.no_delay.kinds.gsm160."
     "bridge_cpu_ms_per_message", "ms", None, None),
    ("outbound: bridge's turnarounds per 160-char message", "outbound.no_delay.kinds.gsm160."
     "host_ms_per_message", "ms", None, None),
    ("outbound: simulator's own lateness per message", "outbound.no_delay.kinds.gsm160."
     "modem_late_ms_per_message", "ms", None, None),
    ("outbound pickup: accept -> AT+CMGS p50 (idle)", "outbound.pickup.pickup_ms_p50", "ms",
     None, None),
    ("outbound pickup: accept -> AT+CMGS max (idle)", "outbound.pickup.pickup_ms_max", "ms",
     None, None),
    ("inbound: modem -> sink p50", "inbound.latency.latency_ms_p50", "ms", None, None),
    ("inbound: modem -> sink p99", "inbound.latency.latency_ms_p99", "ms", None, None),
    ("inbound: +CMT serial transfer time", "inbound.latency.serial_transfer_ms", "ms", None,
     None),
    ("inbound: above serial transfer p50", "inbound.latency.above_serial_ms_p50", "ms", 1.5,
     "max"),
    ("inbound: above serial transfer p99", "inbound.latency.above_serial_ms_p99", "ms", None,
     None),
    ("inbound burst: messages/s", "inbound.burst.messages_per_s", "/s", None, None),
    ("inbound burst: share of line bound", "inbound.burst.fraction_of_bound", "%", None, None),
    ("inbound burst: CPU per message", "inbound.burst.bridge_cpu_ms_per_message", "ms", 1.0,
     "max"),
    ("api sendsms @200/s: accept p50", "api.sendsms.accept_ms_p50", "ms", None, None),
    ("api sendsms @200/s: accept p99", "api.sendsms.accept_ms_p99", "ms", 20.0, "max"),
    ("api json @200/s: accept p50", "api.json.accept_ms_p50", "ms", None, None),
    ("api json @200/s: accept p99", "api.json.accept_ms_p99", "ms", 20.0, "max"),
    ("api json: CPU per accepted request", "api.json.bridge_cpu_ms_per_request", "ms", None,
     None),
    ("api: 1 request x 1,000 recipients", "api.bulk.accepted_per_s", "msg/s", None, None),
    ("queue 0..max: accept p50 spread", "queue.spread.accept_ms_p50", "x", 1.5, "max"),
    ("queue 0..max: accept p99 spread", "queue.spread.accept_ms_p99", "x", 1.5, "max"),
    ("queue 0..max: send rate spread", "queue.spread.messages_per_s", "x", 1.5, "max"),
    ("idle CPU", "footprint.idle_cpu_percent", "%cpu", 1.0, "max_open"),
    ("idle RSS", "footprint.rss_mb", "MB", 60.0, "max"),
    ("load 1 modem: CPU per outbound SMS (sendsms each)",
     "load.one_modem.outbound.cpu_ms_per_message", "ms", 1.0, "max"),
    ("load 1 modem: outbound share of line bound", "load.one_modem.outbound.fraction_of_bound",
     "%", 0.97, "min"),
    ("load 1 modem: CPU per inbound SMS (burst)",
     "load.one_modem.inbound.bridge_cpu_ms_per_message", "ms", 1.0, "max"),
    ("load 1 modem: inbound burst share of line bound",
     "load.one_modem.inbound.fraction_of_bound", "%", None, None),
    ("load 1 modem: peak RSS", "load.one_modem.peak_rss_mb", "MB", 36.0, "max"),
    ("load 8 modems: CPU per outbound SMS", "load.pool.outbound.cpu_ms_per_message", "ms",
     None, None),
    ("load 8 modems: CPU per inbound SMS", "load.pool.inbound.cpu_ms_per_message", "ms",
     None, None),
    ("load 8 modems: peak RSS", "load.pool.peak_rss_mb", "MB", 40.0, "max"),
]


def rows(results):
    out = []
    for label, path, unit, target, sense in TARGETS:
        value = _get(results, path)
        if value is None and _get(results, path.split(".")[0]) is None:
            continue
        ok = None
        if value is not None and target is not None:
            ok = value < target if sense == "max_open" else \
                value <= target if sense == "max" else value >= target
        out.append({"metric": label, "path": path, "value": value, "unit": unit,
                     "target": target, "sense": sense, "ok": ok})
    return out


#: (label, the bridge's figure, gammu-smsd's (under each setting), Kannel's, "higher" or
#: "lower" is better). A peer's path of None: not measured for that peer.
PEER_ROWS = []
for _delay in ("no_delay", "network_delay"):
    for _kind in ("gsm160", "ucs2_70", "multi3"):
        _path = "%s.kinds.%s.messages_per_s" % (_delay, _kind)
        PEER_ROWS.append(("outbound %s %s msg/s" % (_delay, _kind), "outbound." + _path, _path,
                          "outbound.%s.messages_per_s" % _kind if _delay == "no_delay" else None,
                          "higher"))
PEER_ROWS += [
    ("outbound pickup p50 ms", "outbound.pickup.pickup_ms_p50", "pickup.pickup_ms_p50",
     "pickup.pickup_ms_p50", "lower"),
    ("inbound first seen p50 ms", "inbound.latency.latency_ms_p50",
     "inbound.first_seen_ms_p50", "inbound.latency.latency_ms_p50", "lower"),
    ("inbound burst msg/s", "inbound.burst.messages_per_s", None,
     "inbound.burst.messages_per_s", "higher"),
    ("CPU per inbound SMS ms", "load.one_modem.inbound.bridge_cpu_ms_per_message",
     "inbound.cpu_ms_per_message", "inbound.burst.bridge_cpu_ms_per_message", "lower"),
    ("CPU per outbound SMS ms", "load.one_modem.outbound.cpu_ms_per_message",
     "no_delay.cpu_ms_per_message", "outbound.gsm160.cpu_ms_per_message", "lower"),
    ("peak RSS under load MB", "load.one_modem.peak_rss_mb", "peak_rss_mb", "peak_rss_mb",
     "lower"),
    ("idle CPU %", "footprint.idle_cpu_percent", None, "idle.cpu_percent", "lower"),
    ("idle RSS MB", "footprint.rss_mb", None, "idle.rss_mb", "lower"),
]


def versus_peers(results):
    """The bridge beside gammu-smsd (each setting) and Kannel, row by row, with ratios: above 1
    means the bridge is ahead (faster, or using less)."""
    g = results.get("gammu")
    k = results.get("kannel")
    g = None if not g or "skipped" in g else g
    k = None if not k or "skipped" in k else k
    if g is None and k is None:
        return []
    out = []
    for label, ours, gammu_path, kannel_path, better in PEER_ROWS:
        bridge = _get(results, ours)
        row = {"metric": label, "bridge": bridge, "better": better}
        peers = {}
        for setting in ("default", "fast", "busy"):
            peers[setting] = _get(g, "%s.%s" % (setting, gammu_path)) if g and gammu_path \
                else None
        peers["kannel"] = _get(k, kannel_path) if k and kannel_path else None
        for name, theirs in peers.items():
            row[name] = theirs
            if not bridge or not theirs:
                row["ratio_" + name] = None
            else:
                row["ratio_" + name] = bridge / theirs if better == "higher" else theirs / bridge
        out.append(row)
    for row in out:   # the verdict: against gammu's defaults and fastest sane settings, and Kannel
        ratios = [row["ratio_" + name] for name in ("default", "fast", "kannel")
                  if row["ratio_" + name] is not None]
        row["ok"] = all(r > 1 for r in ratios) if ratios else None
    return out


#: the name this had before Kannel joined
versus_gammu = versus_peers


def _fmt(value, unit=""):
    if value is None:
        return "-"
    if unit == "%":
        return "%.1f%%" % (value * 100)
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


def table(row_list, peer_rows):
    lines = ["%-52s %12s %-6s %10s  %s" % ("metric", "value", "unit", "target", "")]
    for r in row_list:
        target = "" if r["target"] is None else (
            (">= " if r["sense"] == "min" else "< " if r["sense"] == "max_open" else "<= ")
            + _fmt(r["target"], r["unit"]))
        verdict = "" if r["ok"] is None else ("ok" if r["ok"] else "MISS")
        unit = "" if r["unit"] == "%" else r["unit"]
        lines.append("%-52s %12s %-6s %10s  %s" % (r["metric"], _fmt(r["value"], r["unit"]),
                                                   unit, target, verdict))
    if peer_rows:
        lines.append("")
        lines.append("%-36s %9s %9s %9s %9s %9s %7s %7s %7s %7s  %s" % (
            "vs gammu-smsd and Kannel", "bridge", "g.default", "g.fast", "g.busy", "kannel",
            "x def", "x fast", "x busy", "x kan", ""))
        for r in peer_rows:
            verdict = "" if r["ok"] is None else ("ahead" if r["ok"] else "BEHIND")
            lines.append("%-36s %9s %9s %9s %9s %9s %7s %7s %7s %7s  %s" % (
                r["metric"], _fmt(r["bridge"]), _fmt(r["default"]), _fmt(r["fast"]),
                _fmt(r.get("busy")), _fmt(r.get("kannel")), _fmt(r["ratio_default"]),
                _fmt(r["ratio_fast"]), _fmt(r.get("ratio_busy")), _fmt(r.get("ratio_kannel")),
                verdict))
    return "\n".join(lines)

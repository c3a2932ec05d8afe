"""The results as rows against their targets, the table, and the machine they were taken on."""

import os
import platform
import subprocess
from datetime import datetime, timezone

from . import gammu


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
             _base + "fraction_of_bound", "%", 0.90, "min"),
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
    ("inbound: above serial transfer p50", "inbound.latency.above_serial_ms_p50", "ms", 50.0,
     "max"),
    ("inbound: above serial transfer p99", "inbound.latency.above_serial_ms_p99", "ms", None,
     None),
    ("inbound burst: messages/s", "inbound.burst.messages_per_s", "/s", None, None),
    ("inbound burst: share of line bound", "inbound.burst.fraction_of_bound", "%", None, None),
    ("inbound burst: CPU per message", "inbound.burst.bridge_cpu_ms_per_message", "ms", None,
     None),
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


def versus_gammu(results):
    """Bridge vs gammu-smsd rows: outbound rate (higher is better) and inbound first seen."""
    g = results.get("gammu")
    if not g or "skipped" in g:
        return []
    out = []
    for delay in ("no_delay", "network_delay"):
        for kind in ("gsm160", "ucs2_70", "multi3"):
            path = "%s.kinds.%s.messages_per_s" % (delay, kind)
            bridge = _get(results, "outbound." + path)
            row = {"metric": "outbound %s %s msg/s" % (delay, kind), "bridge": bridge,
                   "better": "higher"}
            for setting in ("default", "fast", "busy"):
                theirs = _get(g, "%s.%s" % (setting, path))
                row[setting] = theirs
                row["ratio_" + setting] = bridge / theirs if bridge and theirs else None
            out.append(row)
    for label, ours, their_path in (
            ("outbound pickup p50 ms", "outbound.pickup.pickup_ms_p50", "pickup.pickup_ms_p50"),
            ("inbound first seen p50 ms", "inbound.latency.latency_ms_p50",
             "inbound.first_seen_ms_p50")):
        bridge = _get(results, ours)
        row = {"metric": label, "bridge": bridge, "better": "lower"}
        for setting in ("default", "fast", "busy"):
            theirs = _get(g, "%s.%s" % (setting, their_path))
            row[setting] = theirs
            row["ratio_" + setting] = theirs / bridge if bridge and theirs else None
        out.append(row)
    for row in out:          # the verdict: against its defaults and its fastest sane settings
        ratios = [row.get("ratio_default"), row.get("ratio_fast")]
        row["ok"] = None if None in ratios else all(r > 1 for r in ratios)
    return out


def _fmt(value, unit=""):
    if value is None:
        return "-"
    if unit == "%":
        return "%.1f%%" % (value * 100)
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


def table(row_list, gammu_rows):
    lines = ["%-52s %12s %-6s %10s  %s" % ("metric", "value", "unit", "target", "")]
    for r in row_list:
        target = "" if r["target"] is None else (
            (">= " if r["sense"] == "min" else "< " if r["sense"] == "max_open" else "<= ")
            + _fmt(r["target"], r["unit"]))
        verdict = "" if r["ok"] is None else ("ok" if r["ok"] else "MISS")
        unit = "" if r["unit"] == "%" else r["unit"]
        lines.append("%-52s %12s %-6s %10s  %s" % (r["metric"], _fmt(r["value"], r["unit"]),
                                                   unit, target, verdict))
    if gammu_rows:
        lines.append("")
        lines.append("%-38s %9s %9s %9s %9s %7s %7s %7s  %s" % (
            "vs gammu-smsd", "bridge", "g.default", "g.fast", "g.busy", "x def", "x fast",
            "x busy", ""))
        for r in gammu_rows:
            verdict = "" if r["ok"] is None else ("ahead" if r["ok"] else "BEHIND")
            lines.append("%-38s %9s %9s %9s %9s %7s %7s %7s  %s" % (
                r["metric"], _fmt(r["bridge"]), _fmt(r["default"]), _fmt(r["fast"]),
                _fmt(r.get("busy")), _fmt(r["ratio_default"]), _fmt(r["ratio_fast"]),
                _fmt(r.get("ratio_busy")), verdict))
    return "\n".join(lines)

"""The same workloads through Debian's gammu-smsd (files backend) on the same simulated modem.

gammu-smsd polls: it looks for received SMS every ReceiveFrequency seconds while sending and
every CommTimeout seconds otherwise, and sleeps LoopSleep seconds between rounds. It runs with
its defaults, and with its fastest sane settings (FAST below: one-second polls, no battery or
signal queries between sends; LoopSleep stays 1), and once more, without the network delay, with
LoopSleep 0 (BUSY: it then lists the SIM without pause) to show what polling harder buys.

Outbound: the messages are put in its outbox with gammu-smsd-inject, and its rate is read from
the same wire log as the bridge's. Inbound: SMS reach the modem at spread-out moments (so that
they land anywhere in its polling cycle) and the "first seen" moment is when the message's file
appears in its inbox (the bridge's figure is later still: its HTTP request at the sink).
"""

import os
import random
import subprocess
import threading
import time

from gsmbridge.codec import pdu

from . import texts, wire
from .bridge import Modem
from .outbound import analyse
from .procs import Meter, Processes, memory, wait_for

BINARY = "/usr/bin/gammu-smsd"
INJECT = "/usr/bin/gammu-smsd-inject"

#: gammu-smsd's own defaults, as its manual gives them (nothing is written for them)
DEFAULTS = {}
DEFAULTS_DOC = {"CommTimeout": 30, "ReceiveFrequency": 15, "LoopSleep": 1, "StatusFrequency": 60,
                "CheckBattery": 1, "CheckSignal": 1}
#: the fastest settings that are still sane
FAST = {"CommTimeout": 1, "ReceiveFrequency": 1, "LoopSleep": 1, "StatusFrequency": 0,
        "CheckBattery": 0, "CheckSignal": 0}
#: not sane, for reference: LoopSleep 0 has it list the SIM over and over (about 20% of a core
#: and a serial line never quiet), which no deployment would run
BUSY = dict(FAST, LoopSleep=0)


def available():
    return os.access(BINARY, os.X_OK) and os.access(INJECT, os.X_OK)


def version():
    try:
        out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


class Smsd:
    """One gammu-smsd on a simulated modem, with its files backend in `workdir`."""

    def __init__(self, workdir, settings, *, baud, network_delay):
        self.workdir = workdir
        self.procs = Processes()
        self.dirs = {name: os.path.join(workdir, name) + "/"
                     for name in ("inbox", "outbox", "sent", "error")}
        for path in self.dirs.values():
            os.makedirs(path, exist_ok=True)
        try:
            self.modem = Modem(self.procs, workdir, baud=baud, network_delay=network_delay)
            self.config = os.path.join(workdir, "smsdrc")
            lines = ["[gammu]", "device = %s" % self.modem.link, "connection = at%d" % baud, "",
                     "[smsd]", "service = files", "logfile = %s" % os.path.join(workdir,
                                                                               "smsd.log"),
                     "debuglevel = 0"]
            keys = {"inbox": "inboxpath", "outbox": "outboxpath", "sent": "sentsmspath",
                    "error": "errorsmspath"}
            lines += ["%s = %s" % (keys[name], path) for name, path in self.dirs.items()]
            lines += ["%s = %s" % item for item in settings.items()]
            with open(self.config, "w") as f:
                f.write("\n".join(lines) + "\n")
            self.proc = None
        except BaseException:
            self.stop()
            raise

    def start(self):
        """Start gammu-smsd; returns once it has set the modem up."""
        self.proc = self.procs.start([BINARY, "-c", self.config],
                                     log_path=os.path.join(self.workdir, "smsd.out"))
        # up once it has set the modem up (its AT+CNMI comes near the end of its start)
        wait_for(self._up, 60, 0.1, "gammu-smsd to set up the modem")

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("gammu-smsd exited with %s" % self.proc.returncode)
        state = self.modem.control.get_json("/state")[1]
        return state["settings"]["cnmi"] != [0, 0, 0, 0, 0]

    def inject(self, number, text):
        argv = [INJECT, "-c", self.config, "TEXT", number, "-autolen", "1000",
                "-textutf8", text]
        if pdu.split(text)[0] == "ucs2":
            argv.insert(-2, "-unicode")
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, check=True)

    def count(self, name):
        return len(os.listdir(self.dirs[name]))

    def stop(self):
        self.procs.stop_all()


def number(kind_index, i):
    """Recipients tell the kinds apart in the wire log, whatever order gammu-smsd sends in."""
    return "+2557%d%07d" % (kind_index, i)


def outbound(smsd, counts, *, baud, network_delay, progress):
    """Every kind of message through the outbox, back to back; figures per kind.

    The first kind is in the outbox before gammu-smsd starts; each next kind is put there while
    the last message of the one before is being sent, so that gammu-smsd never finds its outbox
    empty (it would then wait CommTimeout seconds before looking again: that is measured
    separately, as pickup).
    """
    kinds = list(texts.KINDS)
    total = 0
    meter = None
    for k, kind in enumerate(kinds):
        count = counts[kind]
        if k == 0:
            for i in range(count):
                smsd.inject(number(k, i), texts.KINDS[kind])
            smsd.start()
            meter = Meter(smsd.proc.pid)
        else:
            wait_for(lambda: smsd.count("sent") + smsd.count("error") >= total - 1,
                     budget(counts[kinds[k - 1]], kinds[k - 1], network_delay), 0.05,
                     "gammu-smsd to send its messages")
            for i in range(count):
                smsd.inject(number(k, i), texts.KINDS[kind])
        progress("gammu-smsd outbound: %d x %s" % (count, kind))
        total += count
    wait_for(lambda: smsd.count("sent") + smsd.count("error") >= total,
             budget(counts[kinds[-1]], kinds[-1], network_delay), 0.1,
             "gammu-smsd to send its messages")
    cpu = meter.read()
    exchanges = wire.exchanges(smsd.modem.wire())
    out = {"cpu_ms_per_message": cpu["cpu_s"] * 1000 / max(1, total)}
    for k, kind in enumerate(kinds):
        prefix = number(k, 0)[:-7]
        mine = [e for e in exchanges if (e.recipient() or "").startswith(prefix)]
        out[kind] = analyse(mine, counts[kind], parts=texts.parts(texts.KINDS[kind]), baud=baud,
                            network_delay=network_delay)
    out["errors"] = smsd.count("error")
    return out


def kinds_only(figures):
    """The per-kind figures of outbound(), without its totals."""
    return {k: v for k, v in figures.items() if k in texts.KINDS}


def budget(count, kind, network_delay):
    return count * texts.parts(texts.KINDS[kind]) * (network_delay + 3) * 3 + 90


def pickup(smsd, samples, *, spread=2.0):
    """With the outbox idle, a message put there at a random moment: seconds to its AT+CMGS."""
    out = []
    for i in range(samples):
        time.sleep(random.uniform(0, spread))
        smsd.modem.wire()
        before = smsd.count("sent")
        put = time.monotonic()
        smsd.inject(number(9, i), texts.GSM160)
        wait_for(lambda: smsd.count("sent") > before, 120, 0.05, "gammu-smsd to send")
        exchanges = [e for e in wire.exchanges(smsd.modem.wire()) if e.command_at >= put]
        if exchanges:
            out.append((exchanges[0].command_at - put) * 1000)
    return {"samples": len(out), "pickup_ms_p50": wire.percentile(out, 50),
            "pickup_ms_max": max(out) if out else None}


def inbound(smsd, count, spread):
    """SMS reach the modem at random moments over `spread` seconds; when each shows in the inbox."""
    seen = {}
    stop = threading.Event()

    def watch():                  # poll the inbox every 2 ms: a bound far below gammu's cycle
        while not stop.is_set():
            for name in os.listdir(smsd.dirs["inbox"]):
                if name not in seen:
                    seen[name] = time.monotonic()
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    smsd.modem.wire()
    sent = []
    moments = sorted(random.uniform(0, spread) for _ in range(count))
    began = time.monotonic()
    try:
        for i, moment in enumerate(moments):
            delay = began + moment - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            text = "gin %05d: Nimefika kliniki, mtoto ana homa." % i
            smsd.modem.inject("+2557%08d" % i, text)
            sent.append(text)
        wait_for(lambda: len(seen) >= count, 90, 0.05, "gammu-smsd to store %d SMS" % count)
    finally:
        stop.set()
        watcher.join(5)
    reached = wire.deliveries(smsd.modem.wire())
    latencies = []
    for name, when in seen.items():
        with open(os.path.join(smsd.dirs["inbox"], name), "rb") as f:
            body = f.read().decode("utf-8", "replace")
        text = next((t for t in sent if t[:9] in body), None)
        if text is not None:
            latencies.append((when - reached[text]) * 1000)
    return {"messages": count, "spread_s": spread, "matched": len(latencies),
            "first_seen_ms_p50": wire.percentile(latencies, 50),
            "first_seen_ms_p99": wire.percentile(latencies, 99)}


def run(ctx):
    if not available():
        return {"skipped": "gammu-smsd not installed (apt-get install gammu-smsd)"}
    out = {"version": version(), "settings": {"default": DEFAULTS_DOC, "fast": FAST,
                                               "busy": BUSY}}
    configs = {"default": DEFAULTS, "fast": FAST, "busy": BUSY}
    for name, labels in ctx.sizes.gammu_runs:
        settings = configs[name]
        result = {}
        for label in labels:
            delay = ctx.sizes.network_delay if label == "network_delay" else 0.0
            ctx.progress("gammu-smsd (%s settings), %s" % (name, label))
            smsd = Smsd(ctx.workdir("gammu-%s-%s" % (name, label)), settings, baud=ctx.baud,
                        network_delay=delay)
            try:
                figures = outbound(smsd, ctx.sizes.gammu_outbound[label], baud=ctx.baud,
                                   network_delay=delay, progress=ctx.progress)
                result[label] = {"network_delay_s": delay, "kinds": kinds_only(figures),
                                 "errors": figures["errors"],
                                 "cpu_ms_per_message": figures["cpu_ms_per_message"]}
                if label == "no_delay":
                    samples = ctx.sizes.gammu_pickup[name]
                    ctx.progress("gammu-smsd (%s) pickup: %d samples" % (name, samples))
                    result["pickup"] = pickup(smsd, samples)
                    count, spread = ctx.sizes.gammu_inbound[name]
                    ctx.progress("gammu-smsd (%s) inbound: %d SMS over %ds" % (name, count,
                                                                              spread))
                    meter = Meter(smsd.proc.pid)
                    result["inbound"] = inbound(smsd, count, spread)
                    cpu = meter.read()
                    result["inbound"]["gammu_cpu_percent"] = cpu["cpu_percent"]
                    result["inbound"]["cpu_ms_per_message"] = cpu["cpu_s"] * 1000 / count
                result["peak_rss_mb"] = max(result.get("peak_rss_mb", 0.0),
                                            memory(smsd.proc.pid)["peak_rss_mb"])
            finally:
                smsd.stop()
        out[name] = result
    return out

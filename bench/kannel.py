"""The same workloads through Debian's Kannel (bearerbox + smsbox, `smsc = at`) on the same
simulated modem, with the same texts and the same sink in RapidSMS's place.

Kannel is configured as a RapidSMS deployment configures it (RapidSMS's KannelBackend docs): an
AT smsc on the modem's device with the generic modem definition, a sendsms-user that RapidSMS
calls for outbound SMS, and a catch-all sms-service whose get-url is RapidSMS's backend view
(`?id=%p&text=%a`, the same request the bridge's `kannel` style makes). Logs at INFO (log-level
1) to files, as the bridge's. Nothing else is changed from Kannel's defaults; in particular it
keeps no store-file, so messages it holds live only in memory, and its AT driver routes SMS
with AT+CNMI=1,2,0,1,0 under AT+CSMS=0: it neither commits nor acknowledges an SMS before
passing it on. (The bridge commits with fsync, then sends AT+CNMA, before it forwards.)

Its CPU and memory are bearerbox's and smsbox's together. Outbound, Kannel's AT driver sleeps
100 ms (the modem definition's sendline-sleep) before the PDU and again before Ctrl-Z, and sends
about one SMS in two seconds whatever the line; its runs are therefore shorter than the bridge's.
"""

import os
import time

from . import inbound as inbound_suite
from . import texts, wire
from .bridge import PASSWORD, USERNAME, Modem
from .client import Client, sendsms_path
from .outbound import analyse
from .procs import Meter, Processes, free_port, memory, wait_for
from .sink import Sink

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"

CONFIG = """\
group = core
admin-port = {admin_port}
admin-password = bench-admin
admin-allow-ip = "127.0.0.1"
smsbox-port = {smsbox_port}
box-allow-ip = "127.0.0.1"
log-file = "{workdir}/bearerbox.log"
log-level = 1

group = smsc
smsc = at
smsc-id = modem1
modemtype = generic
device = {device}
speed = {baud}

group = modems
id = generic
name = "Generic Modem"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox_port}
sendsms-port = {sendsms_port}
log-file = "{workdir}/smsbox.log"
log-level = 1

group = sendsms-user
username = {username}
password = {password}
default-sender = 255700000000
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = yes
max-messages = 0
get-url = "{sink_url}?id=%p&text=%a"
"""


def available():
    return os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)


def version():
    try:
        with open("/usr/share/doc/kannel/changelog.Debian.gz", "rb") as f:
            import gzip
            first = gzip.decompress(f.read()).split(b"\n", 1)[0].decode()
        return "Kannel " + first.split("(", 1)[1].split(")", 1)[0] + " (Debian)"
    except (OSError, IndexError, ValueError):
        return None


class Kannel:
    """bearerbox and smsbox on a simulated modem, with a sink as RapidSMS; `.modem`, `.sink`,
    `.pids` (both processes), `send(number, text)`. A context manager: everything it started
    is stopped by PID on the way out."""

    def __init__(self, workdir, *, baud, network_delay=0.0):
        self.workdir = workdir
        self.procs = Processes()
        self.sink = Sink()
        try:
            self.modem = Modem(self.procs, workdir, baud=baud, network_delay=network_delay)
            self.sendsms_port = free_port()
            self.config = os.path.join(workdir, "kannel.conf")
            with open(self.config, "w") as f:
                f.write(CONFIG.format(
                    admin_port=free_port(), smsbox_port=free_port(), workdir=workdir,
                    device=self.modem.link, baud=baud, sendsms_port=self.sendsms_port,
                    username=USERNAME, password=PASSWORD, sink_url=self.sink.url))
            self.bearerbox = self.procs.start([BEARERBOX, self.config],
                                              log_path=os.path.join(workdir, "bearerbox.out"))
            # Kannel's AT driver is up once it has set the modem's routing (its AT+CNMI).
            wait_for(self._modem_set_up, 60, 0.1, "bearerbox to set the modem up")
            self.smsbox = self.procs.start([SMSBOX, self.config],
                                           log_path=os.path.join(workdir, "smsbox.out"))
            self.api = Client("http://127.0.0.1:%d" % self.sendsms_port)
            wait_for(self._smsbox_up, 60, 0.1, "smsbox to take sendsms requests")
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self):
        return [self.bearerbox.pid, self.smsbox.pid]

    def _modem_set_up(self):
        if self.bearerbox.poll() is not None:
            raise RuntimeError("bearerbox exited with %s" % self.bearerbox.returncode)
        state = self.modem.control.get_json("/state")[1]
        return state["settings"]["cnmi"] != [0, 0, 0, 0, 0]

    def _smsbox_up(self):
        if self.smsbox.poll() is not None:
            raise RuntimeError("smsbox exited with %s" % self.smsbox.returncode)
        try:
            return self.api.request("GET", "/")[0] > 0
        except OSError:
            return False

    def send(self, number, text):
        """One sendsms request, as RapidSMS's KannelBackend makes it."""
        status, body = self.api.request("GET", sendsms_path(number, text, USERNAME, PASSWORD))
        if status != 202:
            raise RuntimeError("Kannel refused sendsms: %s %r" % (status, body[:200]))

    def stop(self):
        self.procs.stop_all()
        self.sink.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def outbound(kannel, counts, *, baud, progress):
    """Each kind of message, `counts[kind]` sendsms requests back to back; the wire log's rate
    and Kannel's CPU per message (from the first request to the last message's answer)."""
    out = {}
    for kind, text in texts.KINDS.items():
        count = counts[kind]
        progress("kannel outbound: %d x %s" % (count, kind))
        kannel.modem.wire()
        kannel.modem.clear_sent()
        meter = Meter(kannel.pids)
        began = time.monotonic()
        for i in range(count):
            kannel.send("+2557%08d" % i, text)
        accepted = time.monotonic()
        parts = texts.parts(text)
        wait_for(lambda: kannel.modem.sent_count() >= count, count * parts * 10 + 60,
                 0.1, "Kannel to send %d messages" % count)
        cpu = meter.read()
        exchanges = [e for e in wire.exchanges(kannel.modem.wire()) if e.command_at >= began]
        figures = analyse(exchanges, count, parts=parts, baud=baud, network_delay=0.0)
        figures["cpu_ms_per_message"] = cpu["cpu_s"] * 1000 / count
        figures["accept_s"] = accepted - began
        out[kind] = figures
    return out


def pickup(kannel, samples, spread=1.0):
    """With nothing queued, a sendsms at a random moment: ms to its AT+CMGS."""
    import random
    out = []
    for i in range(samples):
        time.sleep(random.uniform(0.05, spread))
        kannel.modem.wire()
        before = kannel.modem.sent_count()
        began = time.monotonic()
        kannel.send("+2559%08d" % i, texts.GSM160)
        wait_for(lambda: kannel.modem.sent_count() > before, 60, 0.02, "Kannel to send")
        exchanges = [e for e in wire.exchanges(kannel.modem.wire()) if e.command_at >= began]
        if exchanges:
            out.append((exchanges[0].command_at - began) * 1000)
    return {"samples": len(out), "pickup_ms_p50": wire.percentile(out, 50),
            "pickup_ms_max": max(out) if out else None}


def run(ctx):
    if not available():
        return {"skipped": "Kannel not installed (apt-get install kannel)"}
    sizes = ctx.sizes.kannel
    out = {"version": version()}
    with Kannel(ctx.workdir("kannel"), baud=ctx.baud) as kannel:
        time.sleep(ctx.settle)
        ctx.progress("kannel: idle for %ds" % sizes["idle_seconds"])
        meter = Meter(kannel.pids)
        time.sleep(sizes["idle_seconds"])
        idle = meter.read()
        mem = memory(kannel.pids)
        out["idle"] = {"cpu_percent": idle["cpu_percent"], "rss_mb": mem["rss_mb"]}
        ctx.progress("kannel inbound: %d SMS one at a time" % sizes["inbound"])
        out["inbound"] = {"latency": inbound_suite.latencies(kannel, sizes["inbound"], 0.05,
                                                             ctx.baud)}
        ctx.progress("kannel inbound: a burst of %d" % sizes["burst"])
        out["inbound"]["burst"] = inbound_suite.burst(kannel, sizes["burst"], ctx.baud,
                                                      pids=kannel.pids)
        out["outbound"] = outbound(kannel, sizes["outbound"], baud=ctx.baud,
                                   progress=ctx.progress)
        ctx.progress("kannel pickup: %d samples" % sizes["pickup"])
        out["pickup"] = pickup(kannel, sizes["pickup"])
        out["peak_rss_mb"] = memory(kannel.pids)["peak_rss_mb"]
    return out

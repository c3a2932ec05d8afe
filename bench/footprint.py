"""Footprint: the bridge's memory and CPU while idle (booted, modem up, nothing to do).

The idle window includes whatever the bridge does on its own timers (the worker's serial polls,
its signal/registration refresh every 30 s, its SIM sweep every 60 s). CPU per message under
load is measured by the outbound, inbound and API runs.
"""

import time

from .bridge import Bridge
from .procs import Meter, memory


def run(ctx):
    seconds = ctx.sizes.idle_seconds
    with Bridge(ctx.workdir("footprint"), baud=ctx.baud) as bridge:
        time.sleep(2 * ctx.settle)      # boot is over, the first status refresh done
        ctx.progress("footprint: idle for %ds" % seconds)
        meter = Meter(bridge.pid)
        modem_meter = Meter(bridge.modem.proc.pid)
        time.sleep(seconds)
        cpu = meter.read()
        mem = memory(bridge.pid)
        modem_cpu = modem_meter.read()
        with open("/proc/%d/status" % bridge.pid) as f:
            threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return {"idle_seconds": cpu["wall_s"], "idle_cpu_percent": cpu["cpu_percent"],
            "idle_cpu_s": cpu["cpu_s"], "rss_mb": mem.get("rss_mb"),
            "peak_rss_mb": mem.get("peak_rss_mb"), "threads": threads,
            "simulator_idle_cpu_percent": modem_cpu["cpu_percent"]}

"""The simulated modem's bad habits: which faults exist, their defaults, and their checking.

`Faults` holds what is switched on; `SimulatedModem.set_faults` checks each value with
`fault_value` first, so a control API client gets a ValueError rather than a modem in a state no
real one could be in.
"""

from dataclasses import dataclass, fields


@dataclass
class Faults:
    """The bad habits switched on at run time (see `SimulatedModem.set_faults`).

    Durations in seconds are given as "from now"; `SimulatedModem.faults()` shows what is left.
    """
    network_delay: float = 0.0    # seconds the network takes to accept each submitted part
    slow_cmgs: float = 0.0        # extra seconds before +CMGS answers
    cms_error: float = 0.0        # fraction of submits answered +CMS ERROR: <cms_error_code>
    cms_error_code: int = 500
    sim_busy: float = 0.0         # for this long, SIM commands answer +CME ERROR: 14
    storage_full: bool = False    # storing answers +CMS ERROR: 322; inbound waits at the network
    hang: float = 0.0             # stop answering: seconds, or -1 until reset/port reopened
    disappear: float = 0.0        # the port goes away for this long (done by the port, runner.py)
    noise: float = 0.0            # chance of a garbage line between two output lines
    urc_storm: float = 0.0        # ^RSSI/+CREG per second, also inside responses
    signal: int = 20              # AT+CSQ <rssi>; 99 = unknown
    registration: int = 1         # +CREG <stat>: 1 home, 5 roaming, 0/2/3 no service
    report_status: int = 0        # TP-ST of generated status reports (0 delivered, 0x40.. failed)


FAULTS = tuple(f.name for f in fields(Faults))
WINDOWS = ("sim_busy", "hang")   # durations kept as deadlines

#: the largest value of integer faults, and other values allowed
LIMITS = {"signal": (31, 99), "registration": (5,), "report_status": (255,),
          "cms_error_code": (65535,)}


def fault_value(name, value):
    """A fault's value checked and converted to its field's type; ValueError if it is wrong."""
    if name not in FAULTS:
        raise ValueError("unknown fault %r" % name)
    kind = type(getattr(Faults, name))
    if value is None:
        value = getattr(Faults, name)
    if name == "hang" and isinstance(value, bool):
        value = -1.0 if value else 0.0
    if kind is bool:
        if not isinstance(value, (bool, int)):
            raise ValueError("%s is true or false" % name)
        return bool(value)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValueError("bad value for %s: %r" % (name, value)) from None
    if value != value or value < 0 and not (name == "hang" and value == -1):
        raise ValueError("bad value for %s: %r" % (name, value))
    if name in ("cms_error", "noise") and value > 1:
        raise ValueError("%s is a fraction between 0 and 1" % name)
    limit = LIMITS.get(name)
    if limit and not (value <= limit[0] or value in limit[1:]):
        raise ValueError("%s out of range: %r" % (name, value))
    return value


#: what a noisy line slips in between two lines of output: bytes no modem sends on purpose
NOISE = bytes(range(0x80, 0x100)) + b"\x00\x01\x07\x7f"

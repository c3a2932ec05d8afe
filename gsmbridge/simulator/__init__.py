"""The built-in simulated GSM modem: a sans-I/O state machine that speaks TS 27.005/27.007 the way
real modems do (and, on request, the way bad ones do), served on a pseudo-terminal.

It is what `gsmbridge simulate`, the tests and the benchmarks drive the bridge against.  It may
import the codec and the modem layer's error table, nothing else of gsmbridge: it must never share
code paths with the driver it tests.
"""

from .command import parse_command_line
from .control import loopback_address
from .faults import FAULTS, Faults
from .machine import SimulatedModem
from .runner import Simulator, main, start_simulator
from .storage import Message

__all__ = [
    "FAULTS", "Faults", "Message", "SimulatedModem", "Simulator", "loopback_address", "main",
    "parse_command_line", "start_simulator",
]

"""Speaking AT to a GSM modem: the sans-I/O engine, the error table and the ``GsmModem`` driver.

* ``Engine`` and its events (at.py) turn the modem's bytes into answers, URCs and noise, with
  no I/O of their own, so they can be driven by anything (the simulator's tests drive them by
  hand);
* ``ModemError`` and its ``CmeError``/``CmsError`` (errors.py) name +CME/+CMS codes and say
  whether the same request may succeed later; ``ModemTimeout`` and ``ModemGone`` are the two
  ways a modem stops answering;
* ``GsmModem`` (driver.py) is the driver over pyserial, built from a ``Port``, a ``Setup``, a
  ``Receiver``, a ``Sender`` and a ``Health``; it hands out ``Incoming`` items and reports a
  ``Network``.

The modem layer stands on its own: it imports the codec (PDUs, the GSM alphabet, reassembly),
the standard library and pyserial, and nothing else of gsmbridge.
"""

from .at import (
    FINAL_RESULTS, NEED_DATA, URC_NAMES, Echo, Engine, Final, Noise, Prompt, Response,
    Unsolicited, UsageError,
)
from .driver import GsmModem
from .errors import CmeError, CmsError, ModemError, ModemGone, ModemTimeout
from .health import Network
from .incoming import Incoming

__all__ = [
    "GsmModem", "Incoming", "Network",
    "ModemError", "CmeError", "CmsError", "ModemTimeout", "ModemGone",
    "Engine", "NEED_DATA", "Response", "Final", "Unsolicited", "Prompt", "Echo", "Noise",
    "UsageError", "URC_NAMES", "FINAL_RESULTS",
]

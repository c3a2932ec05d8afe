"""Speaking AT to a GSM modem: the sans-I/O engine, the error table and the ``GsmModem`` driver.

* ``Engine`` (at.py) turns the modem's bytes into events (events.py) -- answers, URCs, noise --
  with no I/O of its own, so anything can drive it: the driver, or a test by hand;
* ``ModemError`` and its ``CmeError``/``CmsError`` (errors.py) name +CME/+CMS codes and say
  whether the same request may succeed later; ``ModemTimeout`` and ``ModemGone`` are the two
  ways a modem stops answering;
* ``GsmModem`` (driver.py) is the driver over pyserial, built from a ``Port``, a ``Setup``, a
  ``Receiver``, a ``Sender`` and a ``Health``; it hands out ``Incoming`` items and reports a
  ``Network``.

The modem layer stands on its own: it imports the codec (PDUs, the GSM alphabet, reassembly),
the standard library and pyserial, and nothing else of gsmbridge.
"""

from .at import Engine
from .driver import GsmModem
from .errors import CmeError, CmsError, ModemError, ModemGone, ModemTimeout
from .events import NEED_DATA, Echo, Final, Noise, Prompt, Response, Unsolicited, UsageError
from .health import Network
from .incoming import Incoming
from .lines import FINAL_RESULTS, URC_NAMES

__all__ = [
    "GsmModem", "Incoming", "Network",
    "ModemError", "CmeError", "CmsError", "ModemTimeout", "ModemGone",
    "Engine", "NEED_DATA", "Response", "Final", "Unsolicited", "Prompt", "Echo", "Noise",
    "UsageError", "URC_NAMES", "FINAL_RESULTS",
]

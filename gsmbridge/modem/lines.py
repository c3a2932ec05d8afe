"""Which line is which: the names of URCs, the final results, the shape of a PDU-mode header.

The AT engine (at.py) decides with these what each line the modem sends means; they are kept
apart from it because they are tables of what real modems say, and grow as modems are met,
while the engine's states do not.
"""

import re

from .errors import lookup
from .fields import split_params

# URCs we know by name.  Any of them ends up as Unsolicited even inside another command's answer
# unless that command has the same prefix (AT+CREG? answers +CREG:, which is then a Response).
URC_NAMES = frozenset("""
    +CMTI +CMT +CDSI +CDS +CBMI +CBM +CREG +CGREG +CEREG +C5GREG +CRING +CLIP +CCWA +CUSD +CIEV
    +CGEV +CTZV +CTZE +CTZU +CSSI +CSSU +CPIN +CFUN +CSCON +PBREADY +QIND +QUSIM +STIN +WIND
    +ZPASR +ZUSIMR +ZDONR +ZEND +ZSTR
    ^RSSI ^BOOT ^HCSQ ^MODE ^SRVST ^SIMST ^DSFLOWRPT ^NWTIME ^CSNR ^SYSSTART ^STIN ^CEND ^ORIG
    ^CONF ^CONN ^RFSWITCH ^HRSSILVL ^CRSSI ^ACTIVEBAND ^LOCCHD ^EONS ^STN ^SMMEMFULL
    #STN #QSS *PSUTTZ
""".split())

# URCs that are a whole line of words, compared upper case.
BARE_URCS = frozenset([
    "RING", "SMS READY", "CALL READY", "RDY", "PB DONE", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE POWER DOWN",
    "OVER-VOLTAGE WARNNING", "POWERED DOWN", "MODEM:STARTUP",
])

FINAL_RESULTS = frozenset([
    "OK", "ERROR", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE", "COMMAND NOT SUPPORT",
    "TOO MANY PARAMETERS",
])

# Result codes of a call attempt (V.250 6.3.1); at.py makes them finals only of a call command.
CALL_RESULTS = frozenset(["NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE"])

CMX_ERROR = re.compile(r"^\+?(CME|CMS) ERROR\s*:?\s*(.*)$", re.IGNORECASE)
NAMED = re.compile(r"^([+^#*$%][A-Za-z0-9_]+)\s*(?::\s*(.*))?$")
HEX = re.compile(r"^[0-9A-Fa-f]+$")
INT = re.compile(r"^\s*\d+\s*$")


def final_result(line):
    """``(kind, code)`` if the line is a final result, else None."""
    upper = line.upper()
    if upper in FINAL_RESULTS:
        return upper, None
    m = CMX_ERROR.match(line)
    if m:
        kind = m.group(1).upper()
        return kind, lookup(kind, m.group(2))
    return None


def pdu_shaped(value):
    """True for the PDU-mode form of a header, ending in the PDU's length: ``+CMT: ,24``,
    ``+CDS: 25``, ``+CMGR: 0,,24``, ``+CMGL: 1,0,"Alice",24``.  Text-mode headers carry a quoted
    status ("REC UNREAD") or at least two quoted fields (address and time stamp)."""
    parts = split_params(value)
    quoted = [p for p in parts if p.startswith('"')]
    return (INT.match(parts[-1]) is not None and len(quoted) <= 1
            and not any(p.upper().startswith(('"REC', '"STO')) for p in quoted))


def urc_name(line):
    """The URC name of a line if it is a known URC, else None."""
    m = NAMED.match(line)
    if m:
        name = m.group(1).upper()
        return name if name in URC_NAMES else None
    upper = line.upper()
    return upper if upper in BARE_URCS else None

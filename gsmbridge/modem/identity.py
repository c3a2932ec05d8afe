"""What a modem and its SIM say they are: maker, model, IMEI, IMSI, ICCID and the own number.

Read once after each setup for the status page, and the IMEI alone to find a modem by it
(locate.py).  Every reading is lenient: modems answer ``AT+CGSN`` with the bare digits, with
``+CGSN: <imei>`` or quoted, and one that does not know a command answers ERROR; a value that
cannot be read is None, never an exception.

No standard command reads the ICCID (the SIM's serial number), so each maker's is tried in turn:
``AT+CCID`` (u-blox, Telit, SIMCom 800), ``AT^ICCID?`` (Huawei), ``AT+ICCID`` (SIMCom 7xxx),
``AT+QCCID`` (Quectel), and at last 27.007's restricted SIM access, ``AT+CRSM=176,12258,0,0,10``
(READ BINARY of EF_ICCID).  The EF holds the digits nibble-swapped and padded with F, as older
Huawei firmware also gives them ("98..." for "89..."): an ICCID starts with 89 (ITU-T E.118), so
one that starts with 98 is swapped back, and a trailing F dropped.  ``AT+CNUM`` gives the own
number when the SIM holds one (prepaid SIMs often do not; then it is None).
"""

import re

from .errors import ModemError, ModemTimeout
from .fields import after_colon, split_params, to_int, unquote

#: the commands that read the ICCID, in the order tried
ICCID_COMMANDS = ("AT+CCID", "AT^ICCID?", "AT+ICCID", "AT+QCCID", "AT+CRSM=176,12258,0,0,10")

#: how long one identity command may take; an unknown command gets ERROR at once on most modems
TIMEOUT = 5.0

_IMEI = re.compile(r"(?<!\d)(\d{14,17})(?!\d)")
_IMSI = re.compile(r"(?<!\d)(\d{6,15})(?!\d)")
_ICCID = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{18,22})(?![0-9A-Fa-f])")


def _lines(port, command, log):
    """The information lines of ``command``, [] when the modem refuses it or does not answer."""
    try:
        return [response.line for response in port.command(command, timeout=TIMEOUT)]
    except ModemError as exc:
        log.debug("%s: %s: %s", port.url, command, exc)
    except ModemTimeout:
        log.info("%s: %s unanswered", port.url, command)
    return []


def _text(port, command, log):
    """A one-value answer (AT+CGMI "huawei", "+CGMI: huawei", "Manufacturer: Quectel")."""
    for line in _lines(port, command, log):
        value = after_colon(line) if re.match(r"^[+^]?[A-Za-z ]+:", line) else line
        value = unquote(value)
        if value:
            return value[:64]
    return None


def imei(port, log):
    """AT+CGSN -> the IMEI (14 to 17 digits), or None."""
    for line in _lines(port, "AT+CGSN", log):
        match = _IMEI.search(line)
        if match:
            return match.group(1)
    return None


def imsi(port, log):
    for line in _lines(port, "AT+CIMI", log):
        match = _IMSI.search(line)
        if match:
            return match.group(1)
    return None


def normalise_iccid(raw, swapped=False):
    """An ICCID as a modem gave it -> its digits, or None: nibble-swapped ones (``swapped``, or
    starting with 98) swapped back, the F padding dropped."""
    raw = raw.strip().strip('"').upper()
    if not re.fullmatch(r"[0-9A-F]{18,22}", raw):
        return None
    if swapped or raw.startswith("98"):
        raw = "".join(raw[i + 1] + raw[i] for i in range(0, len(raw) - 1, 2)) + \
            (raw[-1] if len(raw) % 2 else "")
    raw = raw.rstrip("F")
    return raw if raw.isdigit() and 18 <= len(raw) <= 20 else None


def iccid(port, log):
    """The SIM's ICCID by the first of ICCID_COMMANDS that gives one, or None."""
    for command in ICCID_COMMANDS:
        for line in _lines(port, command, log):
            if command.startswith("AT+CRSM"):
                fields = split_params(after_colon(line))
                if len(fields) >= 3 and to_int(fields[0]) in (144, 145):
                    value = normalise_iccid(unquote(fields[2]), swapped=True)
                    if value:
                        return value
                continue
            match = _ICCID.search(after_colon(line) if ":" in line else line)
            value = normalise_iccid(match.group(1)) if match else None
            if value:
                return value
    return None


def own_number(port, log):
    """AT+CNUM -> the first number the SIM holds, None when it holds none."""
    for line in _lines(port, "AT+CNUM", log):
        if not line.upper().startswith("+CNUM"):
            continue
        fields = split_params(after_colon(line))
        number = unquote(fields[1]) if len(fields) > 1 else ""
        if re.fullmatch(r"\+?[0-9*#]{3,20}", number):
            return number
    return None


def read(port, log):
    """Everything at once, as a dict for the status page: manufacturer, model, revision, imei,
    imsi, iccid, own_number (None where the modem would not say)."""
    return {
        "manufacturer": _text(port, "AT+CGMI", log),
        "model": _text(port, "AT+CGMM", log),
        "revision": _text(port, "AT+CGMR", log),
        "imei": imei(port, log),
        "imsi": imsi(port, log),
        "iccid": iccid(port, log),
        "own_number": own_number(port, log),
    }

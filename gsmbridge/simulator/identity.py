"""The simulated SIM's identity: its ICCID in the forms real modems give it, and the own number
(AT+CNUM).  The IMEI (AT+CGSN) and IMSI (AT+CIMI) are in general.py with the other identity
commands; the values are options of the modem, checked here.

No standard command reads the ICCID, so each maker has its own; a driver tries them in turn:

    AT+CCID / AT+CCID?     +CCID: <iccid>      u-blox, Telit, many (SIM800: the bare number)
    AT+ICCID               +ICCID: <iccid>     SIMCom SIM7xxx/SIM8xxx, some Sierra
    AT+CICCID              +ICCID: <iccid>     SIMCom A76xx, SIM7600
    AT^ICCID?              ^ICCID: <iccid>     Huawei (older firmware gives it nibble-swapped,
                                               as the EF holds it: 98... for 89...)
    AT+QCCID               +QCCID: <iccid>     Quectel
    AT#CCID                #CCID: <iccid>      Telit
    AT+CRSM=176,12258,0,0,10                   27.007's restricted SIM access: READ BINARY of
                           +CRSM: 144,0,"98.." EF_ICCID (2FE2), nibble-swapped BCD, F-padded

The ICCID can be read before the PIN is given (EF_ICCID needs no PIN; ModemManager relies on
it), not while the SIM is busy.  AT+CNUM needs the PIN, and answers only OK when the SIM holds
no own number, which is common on prepaid SIMs.
"""

from . import render
from .command import Error, cme, integer, registrar, split_args

EXTENDED = {}
extended = registrar(EXTENDED)

EF_ICCID = 0x2FE2
READ_BINARY = 176


def check_identity(imei, imsi, iccid, own_number):
    """ValueError naming the option that is not what a modem would report."""
    for name, value, low, high in (("imei", imei, 14, 16), ("imsi", imsi, 6, 15),
                                   ("iccid", iccid, 18, 20)):
        if not isinstance(value, str) or not value.isdigit() or not low <= len(value) <= high:
            raise ValueError("%s must be %d to %d digits, not %r" % (name, low, high, value))
    if own_number is not None and (
            not isinstance(own_number, str) or not own_number.lstrip("+").isdigit()
            or own_number.count("+") > 1 or "+" in own_number[1:]
            or not 3 <= len(own_number) <= 20):
        raise ValueError("own_number must be a phone number such as +255712345678, not %r"
                         % (own_number,))


def swapped_bcd(digits):
    """"8925..." -> "9852...F7": as the SIM stores it (23.038-style BCD, low nibble first)."""
    padded = digits + "F" * (len(digits) % 2)
    return "".join(padded[i + 1] + padded[i] for i in range(0, len(padded), 2))


def _iccid(prefix, ops=("exec", "read")):
    def handler(modem, op, args):
        if op == "test":
            return []
        if op not in ops:
            raise Error()
        if modem._sim_busy():
            raise cme(14)
        return [[prefix + modem.identity["iccid"]]]
    return handler


for _name, _prefix, _ops in (("+CCID", "+CCID: ", ("exec", "read")),
                             ("+ICCID", "+ICCID: ", ("exec",)),
                             ("+CICCID", "+ICCID: ", ("exec",)),
                             ("^ICCID", "^ICCID: ", ("read",)),
                             ("+QCCID", "+QCCID: ", ("exec",)),
                             ("#CCID", "#CCID: ", ("exec", "read"))):
    EXTENDED[_name] = _iccid(_prefix, _ops)


@extended("+CRSM")
def _crsm(modem, op, args):
    """Restricted SIM access: READ BINARY of EF_ICCID; any other file is not there."""
    if op == "test":
        return []
    if op != "set":
        raise Error()
    values = split_args(args)
    command = integer(values[0], 0, 255)
    fileid = integer(values[1], 0, 65535, default=0) if len(values) > 1 else 0
    if modem._sim_busy():
        raise cme(14)
    if command == READ_BINARY and fileid == EF_ICCID:
        return [['+CRSM: 144,0,"%s"' % swapped_bcd(modem.identity["iccid"])]]
    return [["+CRSM: 106,130"]]         # SW 6A82: file not found


@extended("+CNUM")
def _cnum(modem, op, args):
    if op == "test":
        return []
    if op != "exec":
        raise Error()
    number = modem.identity.get("own_number")
    if not number:
        return []
    return [['+CNUM: "",%s,%d' % (render.quoted(modem, number), render.address_type(number))]]

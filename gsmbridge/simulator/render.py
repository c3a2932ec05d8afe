"""How the simulated modem shows messages to the host: +CMGL/+CMGR entries and routed +CMT/+CDS,
in PDU mode (AT+CMGF=0) and text mode (AT+CMGF=1), and strings in the TE character set
(AT+CSCS) both ways.

PDU mode hands out the stored hex as it is.  Text mode decodes the PDU and writes its fields the
way TS 27.005 section 3 lays them out, which is where drivers that parse text mode go wrong:
quoted addresses in the TE character set, SCTS as "yy/MM/dd,hh:mm:ss+zz", the extra fields of
AT+CSDH=1.  These are functions of the modem (its cmgf, cscs and csdh settings), not methods, so
the command handlers and the network side share them.
"""

from datetime import timedelta

from ..codec import gsm7, pdu
from .command import cms
from .storage import STAT_NAMES


def first_octet(pdu_hex):
    """The TPDU's first octet (message type, flags), after the SMSC address field."""
    start = 2 + 2 * int(pdu_hex[:2], 16)
    return int(pdu_hex[start:start + 2], 16)


def scts_text(ts):
    """A timestamp as text mode shows it: "yy/MM/dd,hh:mm:ss+zz" (zz in quarter hours).

    None (a PDU whose SCTS does not decode) shows as an empty string rather than stopping the
    listing: the message itself is still there to be read."""
    if ts is None:
        return '""'
    offset = ts.utcoffset() or timedelta(0)
    quarters = int(offset.total_seconds() // 900)
    return '"%s%+03d"' % (ts.strftime("%y/%m/%d,%H:%M:%S"), quarters)


def address_type(number):
    if number.startswith("+"):
        return 145
    if number.isdigit():
        return 129
    return 208     # alphanumeric (TS 23.040 9.1.2.5: type 101, plan 0000)


# -- the TE character set (AT+CSCS) both ways ------------------------------------------------

def te_string(modem, text):
    """Text as the host's character set writes it; what it cannot hold becomes "?"."""
    if modem.cscs == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    if modem.cscs == "GSM":
        return "".join(chr(s) for s in gsm7.encode("".join(
            ch if gsm7.is_gsm7(ch) else "?" for ch in text)))
    limit = 0x80 if modem.cscs == "IRA" else 0x100
    return "".join(ch if ord(ch) < limit else "?" for ch in text)


def from_te(modem, raw):
    """A string parameter from the host, in its character set, as text (+CMS ERROR 305 when
    UCS2 hex does not decode)."""
    if modem.cscs == "UCS2":
        try:
            return bytes.fromhex(raw).decode("utf-16-be")
        except ValueError:
            raise cms(305) from None
    if modem.cscs == "GSM":
        return gsm7.decode([ord(ch) & 0x7F for ch in raw])
    return raw


def quoted(modem, text):
    return '"%s"' % te_string(modem, text)


def text_data(modem, message):
    """The data line of text mode for a decoded DELIVER or SUBMIT."""
    if message.encoding == "ucs2":
        return message.text.encode("utf-16-be").hex().upper()
    if message.encoding == "8bit":
        return message.data.hex().upper()
    return te_string(modem, message.text)


def _report_fields(modem, pdu_hex, report):
    """<fo>,<mr>,<ra>,<tora>,<scts>,<dt>,<st>: a status report in text mode, stored or routed."""
    return "%d,%d,%s,%d,%s,%s,%d" % (
        first_octet(pdu_hex), report.reference, quoted(modem, report.recipient),
        address_type(report.recipient), scts_text(report.timestamp),
        scts_text(report.discharge), report.status)


# -- messages ----------------------------------------------------------------------------------

def entry(modem, index, message, command):
    """The lines of one stored message in +CMGL (index given) or +CMGR (index None)."""
    prefix = command + ": " + ("%d," % index if index is not None else "")
    if modem.cmgf == 0:
        return [prefix + "%d,,%d" % (message.stat, message.length), message.pdu]
    stat = '"%s"' % STAT_NAMES[message.stat]
    try:
        decoded = pdu.decode(message.pdu, incoming=message.kind != "submit")
    except pdu.PduError:
        return [prefix + stat + ',"",,', ""]
    if isinstance(decoded, pdu.StatusReport):
        return [prefix + stat + "," + _report_fields(modem, message.pdu, decoded)]
    if isinstance(decoded, pdu.Submit):
        line = prefix + "%s,%s," % (stat, quoted(modem, decoded.recipient))
        if modem.csdh:
            line += ",%d,%d" % (address_type(decoded.recipient), len(decoded.text))
        return [line, text_data(modem, decoded)]
    line = prefix + "%s,%s,,%s" % (stat, quoted(modem, decoded.sender),
                                   scts_text(decoded.timestamp))
    if modem.csdh:
        length = len(decoded.data) if decoded.encoding == "8bit" else len(decoded.text)
        if index is None:
            line += ",%d,%d,%d,%d,%s,%d,%d" % (
                address_type(decoded.sender), first_octet(message.pdu),
                decoded.pid, decoded.dcs, quoted(modem, decoded.smsc or ""),
                address_type(decoded.smsc or "+"), length)
        else:
            line += ",%d,%d" % (address_type(decoded.sender), length)
    return [line, text_data(modem, decoded)]


def routed(modem, kind, pdu_hex, length):
    """The +CMT (kind "deliver") or +CDS (kind "report") lines of a message routed straight to
    the host; None when text mode cannot show it (a malformed PDU: the modem drops it)."""
    if modem.cmgf == 0:
        return [("+CMT: ,%d" if kind == "deliver" else "+CDS: %d") % length, pdu_hex]
    try:
        decoded = pdu.decode(pdu_hex, incoming=True)
    except pdu.PduError:
        return None
    if isinstance(decoded, pdu.StatusReport):
        return ["+CDS: " + _report_fields(modem, pdu_hex, decoded)]
    return ["+CMT: %s,,%s" % (quoted(modem, decoded.sender), scts_text(decoded.timestamp)),
            text_data(modem, decoded)]

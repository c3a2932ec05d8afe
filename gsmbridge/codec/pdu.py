"""SMS PDUs (3GPP TS 23.040): SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT, both ways.

``decode`` reads what a modem hands over (AT+CMGR, +CMGL, +CMT, +CDS) or what a simulator
receives after AT+CMGS; ``encode_*`` build them; ``split`` cuts a long text into parts.

Decoding is strict about structure and lenient about content.  Anything that does not parse
(bad hex, a length pointing past the data, a digit nibble that is not a digit) raises
``PduError`` and nothing else, so the caller can keep the raw PDU as a bad message instead of
crashing.  The one exception is an SMS-DELIVER's service centre time stamp: a date that does not
exist or a zone nibble that is not a digit there comes from a misconfigured SMSC, not from a
broken message, so the message is decoded with ``timestamp`` None and the reason in
``timestamp_error`` rather than lost.  Content that parses but is odd is decoded the way 23.038
tells a phone to show it: a UCS-2 body with an odd octet count or a lone surrogate decodes with
U+FFFD in the broken place, an unknown escape shows the basic-table character, a compressed body
or a reserved alphabet is handed over as 8-bit data or GSM 7-bit text.
"""

import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from . import address, gsm7

__all__ = [
    "PduError",
    "TooLong",
    "Concat",
    "Deliver",
    "Submit",
    "StatusReport",
    "decode",
    "decode_body",
    "parse_udh",
    "split",
    "encode_submit",
    "submit_pdus",
    "encode_deliver",
    "deliver_pdus",
    "encode_status_report",
]


class PduError(ValueError):
    """The PDU is malformed.  The one exception ``decode`` raises for bad input."""


class TooLong(ValueError):
    """The text needs more parts than allowed (``parts`` says how many it would need)."""

    def __init__(self, message: str, parts: int | None = None):
        super().__init__(message)
        self.parts = parts


@dataclass(frozen=True)
class Concat:
    """A concatenated-SMS information element (23.040 9.2.3.24.1 and .8)."""

    reference: int
    total: int
    sequence: int
    bits: int = 8  # 8 (IEI 0x00) or 16 (IEI 0x08)


@dataclass
class Deliver:
    """SMS-DELIVER: a message from the service centre to us."""

    sender: str
    text: str
    data: bytes
    encoding: str  # "gsm7" | "ucs2" | "8bit"
    # SCTS; None when the service centre sent one that is no date (timestamp_error says why):
    # the message itself is fine and must not be lost over its time stamp.
    timestamp: datetime | None
    concat: Concat | None
    smsc: str | None
    pid: int
    dcs: int
    message_class: int | None
    udh: bytes
    status_report_indication: bool
    # The user data after the header in a form that joins across parts: septets (one per
    # byte) for gsm7, UTF-16-BE octets for ucs2, octets for 8bit.  The reassembler joins
    # bodies before decoding so that an escape pair or a surrogate pair some other sender cut
    # in two between parts still comes out whole.  See decode_body().
    body: bytes = field(default=b"", repr=False)
    timestamp_error: str | None = None


@dataclass
class Submit:
    """SMS-SUBMIT: a message from a phone (us) to the service centre."""

    recipient: str
    text: str
    data: bytes
    encoding: str
    reference: int
    concat: Concat | None
    status_report_request: bool
    validity: timedelta | None  # relative or enhanced validity period
    smsc: str | None
    dcs: int
    udh: bytes
    pid: int = 0
    message_class: int | None = None
    validity_until: datetime | None = None  # absolute validity period (TP-VPF 11)
    body: bytes = field(default=b"", repr=False)


@dataclass
class StatusReport:
    """SMS-STATUS-REPORT: what became of a message we submitted with a status report request."""

    reference: int  # TP-MR of the SUBMIT it is about
    recipient: str
    timestamp: datetime  # when the service centre received the SUBMIT
    discharge: datetime  # when the final status (or the last attempt) happened
    status: int  # TP-ST
    smsc: str | None

    @property
    def delivered(self) -> bool:
        """TP-ST 0x00-0x1F: "short message transaction completed" (received, forwarded, replaced
        or a service-centre-specific completion)."""
        return self.status < 0x20

    @property
    def pending(self) -> bool:
        """TP-ST 0x20-0x3F: temporary error, the service centre is still trying."""
        return 0x20 <= self.status < 0x40

    @property
    def failed(self) -> bool:
        """TP-ST 0x40 and up: permanent error, or temporary error with no more attempts."""
        return self.status >= 0x40

    @property
    def final(self) -> bool:
        return not self.pending


# ----------------------------------------------------------------------------- reading


class _Reader:
    """Walks the octets of a PDU; running off the end is a PduError, never an IndexError."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise PduError(f"PDU ends before {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise PduError(
                f"PDU ends inside {what}: needs {count} octets, {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk


_BCD_DIGITS = "0123456789*#abc"  # 0xA-0xE per 23.040 9.1.2.3; 0xF is only a filler


def _bcd_digits(raw: bytes, count: int, what: str) -> str:
    out = []
    for i in range(count):
        nibble = (raw[i // 2] >> (4 * (i % 2))) & 0x0F
        if nibble == 0x0F:
            raise PduError(f"filler nibble F inside {what}")
        out.append(_BCD_DIGITS[nibble])
    return "".join(out)


def _read_address(r: _Reader, what: str) -> str:
    """TP-OA / TP-DA / TP-RA: length in useful semi-octets, type of address, value."""
    length = r.byte(f"{what} length")
    toa = r.byte(f"{what} type")
    if length > 20:
        raise PduError(f"{what} length {length} is more than 20 semi-octets")
    raw = r.take((length + 1) // 2, what)
    ton = (toa >> 4) & 0x07
    if ton == 5:  # alphanumeric, GSM 7-bit packed
        count = length * 4 // 7
        septets = gsm7.unpack(raw, count)
        # A sender that counts whole octets (length 14 for 7 characters) leaves a
        # seven-zero-bit tail that would read as "@".
        if length % 2 == 0 and (length * 4) % 7 == 0 and septets and septets[-1] == 0:
            septets.pop()
        return gsm7.decode(septets)
    digits = _bcd_digits(raw, length, what)
    if ton == 1 and digits:
        return "+" + digits
    return digits


def _read_smsc(r: _Reader) -> str | None:
    """The SMSC address in front of the TPDU: length in octets (type included)."""
    length = r.byte("SMSC length")
    if length == 0:
        return None
    if length > 12:
        raise PduError(f"SMSC address length {length} is more than 12 octets")
    toa = r.byte("SMSC type")
    raw = r.take(length - 1, "SMSC address")
    count = 2 * len(raw)
    if raw and raw[-1] >> 4 == 0x0F:
        count -= 1
    digits = _bcd_digits(raw, count, "SMSC address")
    if not digits:
        return None
    return "+" + digits if (toa >> 4) & 0x07 == 1 else digits


def _semi_octet(b: int, what: str) -> int:
    lo, hi = b & 0x0F, b >> 4
    if lo > 9 or hi > 9:
        raise PduError(f"{what}: octet {b:02X} is not two decimal digits")
    return lo * 10 + hi


def _read_time(r: _Reader, what: str) -> datetime:
    """A service centre time stamp (23.040 9.2.3.11): YYMMDDhhmmss + zone in quarter hours."""
    raw = r.take(7, what)
    yy, mo, dd, hh, mi, ss = (_semi_octet(b, what) for b in raw[:6])
    tz = raw[6]
    lo, hi = tz & 0x0F, tz >> 4
    if hi > 9:
        raise PduError(f"{what}: time zone octet {tz:02X} is not decimal")
    quarters = (lo & 0x07) * 10 + hi
    if lo & 0x08:
        quarters = -quarters
    year = 2000 + yy if yy < 90 else 1900 + yy
    try:
        return datetime(
            year, mo, dd, hh, mi, ss, tzinfo=timezone(timedelta(minutes=15 * quarters))
        )
    except ValueError as exc:
        raise PduError(f"{what}: {exc}") from None


def _relative_validity(vp: int) -> timedelta:
    """TP-VP relative format (23.040 9.2.3.12.1)."""
    if vp <= 143:
        return timedelta(minutes=(vp + 1) * 5)
    if vp <= 167:
        return timedelta(hours=12, minutes=(vp - 143) * 30)
    if vp <= 196:
        return timedelta(days=vp - 166)
    return timedelta(weeks=vp - 192)


def _enhanced_validity(raw: bytes) -> timedelta | None:
    """TP-VP enhanced format (23.040 9.2.3.12.3): a functionality octet then the period."""
    kind = raw[0] & 0x07
    if kind == 0:
        return None
    if kind == 1:
        return _relative_validity(raw[1])
    if kind == 2:
        return timedelta(seconds=raw[1])
    if kind == 3:
        hh, mm, ss = (_semi_octet(b, "enhanced validity period") for b in raw[1:4])
        return timedelta(hours=hh, minutes=mm, seconds=ss)
    raise PduError(f"reserved enhanced validity period format {kind}")


def _parse_dcs(dcs: int) -> tuple[str, int | None]:
    """TP-DCS (23.038 section 4) -> (encoding, message class)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding, and the "marked for automatic deletion" group
        alphabet = (dcs >> 2) & 0x03
        message_class = dcs & 0x03 if dcs & 0x10 else None
        if dcs & 0x20:  # compressed (23.042): nobody sends it; keep the octets as data
            return "8bit", message_class
        return ("gsm7", "8bit", "ucs2", "gsm7")[alphabet], message_class
    if group <= 0xB:  # reserved coding groups: "assumed to be the GSM 7 bit default alphabet"
        return "gsm7", None
    if group <= 0xD:  # message waiting indication, discard / store, GSM 7-bit
        return "gsm7", None
    if group == 0xE:  # message waiting indication, store, UCS-2
        return "ucs2", None
    return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 0x03  # data coding / message class


def parse_udh(udh: bytes) -> list[tuple[int, bytes]]:
    """Split a user data header (without its length octet) into (IEI, data) pairs, in order."""
    ies = []
    i = 0
    while i < len(udh):
        if i + 2 > len(udh):
            raise PduError("user data header ends inside an information element")
        iei, iel = udh[i], udh[i + 1]
        if i + 2 + iel > len(udh):
            raise PduError(f"information element {iei:#04x} is longer than the header")
        ies.append((iei, bytes(udh[i + 2 : i + 2 + iel])))
        i += 2 + iel
    return ies


def _concat_from(ies: list[tuple[int, bytes]]) -> Concat | None:
    """The first usable concatenation element.  23.040 says to ignore one whose total or
    sequence number is zero or whose sequence is past the total; we then treat it as single."""
    for iei, value in ies:
        if iei == 0x00 and len(value) == 3:
            ref, bits = value[0], 8
        elif iei == 0x08 and len(value) == 4:
            ref, bits = (value[0] << 8) | value[1], 16
        else:
            continue
        total, seq = value[-2], value[-1]
        if total >= 1 and 1 <= seq <= total:
            return Concat(reference=ref, total=total, sequence=seq, bits=bits)
    return None


def _read_user_data(r: _Reader, udhi: bool, encoding: str) -> tuple[bytes, bytes]:
    """TP-UDL + TP-UD -> (raw header without UDHL, body as in Deliver.body)."""
    udl = r.byte("user data length")
    if encoding == "gsm7":
        if udl > 160:
            raise PduError(f"user data length {udl} septets is more than 160")
        ud = r.take((udl * 7 + 7) // 8, "user data")
    else:
        if udl > 140:
            raise PduError(f"user data length {udl} octets is more than 140")
        ud = r.take(udl, "user data")
    udh = b""
    header = 0  # octets, UDHL included
    if udhi:
        if not ud:
            raise PduError("user data header indicated but the user data is empty")
        header = 1 + ud[0]
        if header > len(ud):
            raise PduError(f"user data header length {ud[0]} is longer than the user data")
        udh = bytes(ud[1:header])
    if encoding != "gsm7":
        return udh, bytes(ud[header:])
    header_septets = (header * 8 + 6) // 7
    count = udl - header_septets
    if count < 0:
        raise PduError("user data header is longer than the user data length")
    fill = header_septets * 7 - header * 8
    try:
        septets = gsm7.unpack(ud[header:], count, fill)
    except ValueError as exc:
        raise PduError(str(exc)) from None
    return udh, bytes(septets)


def decode_body(encoding: str, body: bytes) -> str:
    """Text from a ``body`` (see Deliver.body); bodies of consecutive parts may be joined first.

    UCS-2 is read as UTF-16 (so surrogate pairs make emoji); a lone surrogate or an odd
    trailing octet becomes U+FFFD.  8-bit data has no text: "".
    """
    if encoding == "gsm7":
        return gsm7.decode(list(body))
    if encoding == "ucs2":
        return bytes(body).decode("utf-16-be", "replace")
    if encoding == "8bit":
        return ""
    raise ValueError(f"unknown encoding {encoding!r}")


def _message(r: _Reader, first: int, dcs: int) -> tuple:
    encoding, message_class = _parse_dcs(dcs)
    udh, body = _read_user_data(r, bool(first & 0x40), encoding)
    concat = _concat_from(parse_udh(udh)) if udh else None
    text = decode_body(encoding, body)
    data = body if encoding == "8bit" else b""
    return encoding, message_class, udh, body, concat, text, data


def _lenient_time(r: _Reader, what: str) -> tuple[datetime | None, str | None]:
    """A time stamp whose 7 octets are there but may not be a date: (datetime, None) or
    (None, why).  A truncated one is still a PduError: then the PDU itself is broken."""
    start = r.pos
    try:
        return _read_time(r, what), None
    except PduError as exc:
        r.pos = start
        r.take(7, what)
        return None, str(exc)


def _decode_deliver(r: _Reader, first: int, smsc: str | None) -> Deliver:
    sender = _read_address(r, "originating address")
    pid = r.byte("protocol identifier")
    dcs = r.byte("data coding scheme")
    timestamp, timestamp_error = _lenient_time(r, "service centre time stamp")
    encoding, message_class, udh, body, concat, text, data = _message(r, first, dcs)
    return Deliver(
        sender=sender,
        text=text,
        data=data,
        encoding=encoding,
        timestamp=timestamp,
        concat=concat,
        smsc=smsc,
        pid=pid,
        dcs=dcs,
        message_class=message_class,
        udh=udh,
        status_report_indication=bool(first & 0x20),
        body=body,
        timestamp_error=timestamp_error,
    )


def _decode_submit(r: _Reader, first: int, smsc: str | None) -> Submit:
    reference = r.byte("message reference")
    recipient = _read_address(r, "destination address")
    pid = r.byte("protocol identifier")
    dcs = r.byte("data coding scheme")
    vpf = (first >> 3) & 0x03
    validity = until = None
    if vpf == 2:
        validity = _relative_validity(r.byte("validity period"))
    elif vpf == 1:
        validity = _enhanced_validity(r.take(7, "validity period"))
    elif vpf == 3:
        until = _read_time(r, "validity period")
    encoding, message_class, udh, body, concat, text, data = _message(r, first, dcs)
    return Submit(
        recipient=recipient,
        text=text,
        data=data,
        encoding=encoding,
        reference=reference,
        concat=concat,
        status_report_request=bool(first & 0x20),
        validity=validity,
        smsc=smsc,
        dcs=dcs,
        udh=udh,
        pid=pid,
        message_class=message_class,
        validity_until=until,
        body=body,
    )


def _decode_status_report(r: _Reader, first: int, smsc: str | None) -> StatusReport:
    reference = r.byte("message reference")
    recipient = _read_address(r, "recipient address")
    timestamp = _read_time(r, "service centre time stamp")
    discharge = _read_time(r, "discharge time")
    status = r.byte("status")
    # TP-PI and the optional PID/DCS/UD after it carry nothing we use.
    return StatusReport(
        reference=reference,
        recipient=recipient,
        timestamp=timestamp,
        discharge=discharge,
        status=status,
        smsc=smsc,
    )


def decode(
    pdu_hex: str, *, incoming: bool = True, with_smsc: bool = True
) -> "Deliver | Submit | StatusReport":
    """Decode a hex PDU.

    incoming=True reads what the network sends us: TP-MTI 0 SMS-DELIVER, 2 SMS-STATUS-REPORT
    (and the reserved 3 as DELIVER, as 23.040 9.2.3.1 asks).  incoming=False reads what a phone
    sends: TP-MTI 1 SMS-SUBMIT (also what +CMGL lists for stored outgoing messages).
    with_smsc: the PDU starts with the SMSC address field, as in +CMGR/+CMGL/+CMT and AT+CMGS.
    Raises PduError, and only PduError, for malformed input.
    """
    if isinstance(pdu_hex, (bytes, bytearray)):
        try:
            pdu_hex = pdu_hex.decode("ascii")
        except UnicodeDecodeError:
            raise PduError("PDU is not ASCII hex") from None
    digits = "".join(pdu_hex.split())
    if not digits:
        raise PduError("empty PDU")
    if len(digits) % 2:
        raise PduError(f"PDU has an odd number of hex digits ({len(digits)})")
    if not re.fullmatch(r"[0-9A-Fa-f]*", digits):
        raise PduError("PDU is not hex")
    r = _Reader(bytes.fromhex(digits))
    try:
        smsc = _read_smsc(r) if with_smsc else None
        first = r.byte("first octet")
        mti = first & 0x03
        if incoming:
            if mti in (0, 3):
                return _decode_deliver(r, first, smsc)
            if mti == 2:
                return _decode_status_report(r, first, smsc)
            raise PduError("SMS-SUBMIT-REPORT (TP-MTI 1) is not handled")
        if mti == 1:
            return _decode_submit(r, first, smsc)
        raise PduError(f"TP-MTI {mti} is not an SMS-SUBMIT")
    except PduError:
        raise
    except (IndexError, ValueError, UnicodeError, OverflowError) as exc:  # a bug, not the input
        raise PduError(f"malformed PDU: {exc}") from exc


# ----------------------------------------------------------------------------- splitting

# (single SMS, each part with an 8-bit reference, each part with a 16-bit reference): the
# 6- or 7-octet concatenation header takes 7 or 8 septets, 3 or 4 UCS-2 code units (rounded up).
_LIMITS = {"gsm7": (160, 153, 152), "ucs2": (70, 67, 66)}


def _choose(text: str, encoding: str | None) -> str:
    if encoding is None:
        return "gsm7" if gsm7.is_gsm7(text) else "ucs2"
    if encoding == "gsm7":
        gsm7.septet_length(text)  # ValueError naming the character
        return encoding
    if encoding == "ucs2":
        return encoding
    raise ValueError(f"encoding must be 'gsm7' or 'ucs2', not {encoding!r}")


def _length(encoding: str, text: str) -> int:
    """Septets (gsm7) or UTF-16 code units (ucs2) of a text already known to fit its encoding."""
    if encoding == "gsm7":
        return gsm7.septet_length(text)
    return len(text.encode("utf-16-be", "surrogatepass")) // 2


def _costs(encoding: str, text: str) -> list[int]:
    """What each character takes: septets (2 for the extension table) or UTF-16 code units (2
    beyond the BMP). split() sizes parts with them."""
    if encoding == "gsm7":
        table = gsm7.SEPTETS
        return [table[ch] for ch in text]
    return [2 if ch > "\uffff" else 1 for ch in text]


_ZWJ = "\u200d"


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _may_cut_before(text: str, i: int) -> bool:
    """False when text[i] belongs with the character before it: a combining mark, a variation
    selector, an emoji modifier or tag, anything either side of a zero-width joiner, the second
    half of a flag.  A phone that shows the parts one by one then still draws them whole."""
    ch, before = text[i], text[i - 1]
    cp = ord(ch)
    if before == _ZWJ or ch == _ZWJ:
        return False
    if unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return False
    if 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return False
    if _is_regional_indicator(ch) and _is_regional_indicator(before):
        run = 0
        j = i - 1
        while j >= 0 and _is_regional_indicator(text[j]):
            run += 1
            j -= 1
        return run % 2 == 0  # flags are pairs: cut only between two pairs
    return True


def split(
    text: str, *, max_parts: int = 10, encoding: str | None = None, bits: int = 8
) -> tuple[str, list[str]]:
    """Cut ``text`` into the parts of a concatenated SMS -> (encoding, parts).

    A single SMS holds 160 septets or 70 UCS-2 code units; each part of a longer one holds 153
    septets or 67 code units (the rest is the concatenation header).  A cut never falls inside
    an escape pair or a surrogate pair, and in UCS-2 it moves back rather than part a
    character from its combining marks, an emoji from its modifiers or a flag in two (unless
    one such cluster is longer than a whole part).  Raises TooLong when more than ``max_parts``
    are needed.  bits=16 sizes the parts for a 16-bit concatenation reference (152 septets /
    66 units).
    """
    encoding = _choose(text, encoding)
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    single, each = _LIMITS[encoding][0], _LIMITS[encoding][1 if bits == 8 else 2]
    if _length(encoding, text) <= single:      # most SMS: one part, no per-character work
        return encoding, [text]
    costs = _costs(encoding, text)
    parts = []
    start = 0
    n = len(text)
    while start < n:
        end = start
        used = 0
        while end < n and used + costs[end] <= each:
            used += costs[end]
            end += 1
        if end < n and encoding == "ucs2":
            cut = end
            while cut > start + 1 and not _may_cut_before(text, cut):
                cut -= 1
            if cut > start + 1 or _may_cut_before(text, cut):
                end = cut
        parts.append(text[start:end])
        start = end
    if len(parts) > max_parts:
        raise TooLong(
            f"text needs {len(parts)} parts of {encoding}, more than max_parts={max_parts}",
            parts=len(parts),
        )
    if len(parts) > 255:
        raise TooLong(f"text needs {len(parts)} parts, a message holds at most 255", len(parts))
    return encoding, parts


# ----------------------------------------------------------------------------- encoding

#: what an address field can carry (looser than address.PHONE_NUMBER: '*' and '#' are digits here)
_NUMBER = re.compile(r"\+?[0-9*#]{1,%d}" % address.MAX_DIGITS)


def _bcd_string(digits: str) -> bytes:
    table = {d: i for i, d in enumerate(_BCD_DIGITS)}
    nibbles = [table[d] for d in digits]
    if len(nibbles) % 2:
        nibbles.append(0x0F)
    return bytes(nibbles[i] | nibbles[i + 1] << 4 for i in range(0, len(nibbles), 2))


def _encode_address(number: str, *, alphanumeric: bool = False) -> bytes:
    """TP-OA/DA/RA: '+' -> international (0x91), digits -> unknown (0x81), else alphanumeric."""
    if _NUMBER.fullmatch(number):
        if number.startswith("+"):
            digits, toa = number[1:], 0x91
        else:
            digits, toa = number, 0x81
        return bytes([len(digits), toa]) + _bcd_string(digits)
    if not alphanumeric:
        raise ValueError(f"not a phone number: {number!r}")
    try:
        septets = gsm7.encode(number)
    except ValueError:
        raise ValueError(f"alphanumeric address {number!r} is not GSM 7-bit") from None
    if not septets or len(septets) > 11:
        raise ValueError(f"alphanumeric address {number!r} must be 1 to 11 septets")
    return bytes([math.ceil(len(septets) * 7 / 4), 0xD0]) + gsm7.pack(septets)


def _encode_smsc(smsc: str | None) -> bytes:
    if not smsc:
        return b"\x00"
    if not _NUMBER.fullmatch(smsc):
        raise ValueError(f"not an SMSC number: {smsc!r}")
    digits, toa = (smsc[1:], 0x91) if smsc.startswith("+") else (smsc, 0x81)
    value = _bcd_string(digits)
    return bytes([len(value) + 1, toa]) + value


def _encode_time(when: datetime) -> bytes:
    """SCTS: a naive datetime is taken as local time, as datetime.astimezone() does."""
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.astimezone()
    offset = when.utcoffset().total_seconds()
    if offset % 900:
        raise ValueError(f"time zone offset {offset} s is not a whole number of quarter hours")
    quarters = int(offset // 900)
    if abs(quarters) > 79:
        raise ValueError("time zone offset too large for a time stamp")
    if not 1990 <= when.year <= 2089:
        raise ValueError("a time stamp holds years 1990 to 2089")

    def swap(v: int) -> int:
        return (v % 10) << 4 | (v // 10)

    fields = [when.year % 100, when.month, when.day, when.hour, when.minute, when.second]
    tz = swap(abs(quarters)) | (0x08 if quarters < 0 else 0)
    return bytes(swap(v) for v in fields) + bytes([tz])


def _encode_validity(validity: timedelta) -> int:
    """The relative TP-VP that lasts at least ``validity`` (capped at 63 weeks)."""
    minutes = math.ceil(validity.total_seconds() / 60)
    if minutes <= 0:
        raise ValueError("validity must be positive")
    if minutes <= 12 * 60:
        return max(0, math.ceil(minutes / 5) - 1)
    if minutes <= 24 * 60:
        return 143 + math.ceil((minutes - 720) / 30)
    days = math.ceil(minutes / 1440)
    if days <= 30:
        return 166 + days
    return min(255, 192 + math.ceil(minutes / 10080))


def _concat_ie(concat: Concat) -> bytes:
    if not 1 <= concat.sequence <= concat.total <= 255:
        raise ValueError(f"bad concatenation numbers: {concat}")
    if concat.bits == 8 and 0 <= concat.reference <= 0xFF:
        return bytes([0x00, 3, concat.reference, concat.total, concat.sequence])
    if concat.bits == 16 and 0 <= concat.reference <= 0xFFFF:
        ref = concat.reference
        return bytes([0x08, 4, ref >> 8, ref & 0xFF, concat.total, concat.sequence])
    raise ValueError(f"bad concatenation reference: {concat}")


def _dcs(encoding: str, message_class: int | None) -> int:
    alphabet = {"gsm7": 0x00, "8bit": 0x04, "ucs2": 0x08}[encoding]
    if message_class is None:
        return alphabet
    if not 0 <= message_class <= 3:
        raise ValueError("message class must be 0..3")
    return 0x10 | alphabet | message_class


def _user_data(encoding: str, text: str, data: bytes | None, concat: Concat | None) -> tuple[bytes, bool]:
    """-> (TP-UDL + TP-UD, UDHI)."""
    header = b""
    if concat is not None:
        ies = _concat_ie(concat)
        header = bytes([len(ies)]) + ies
    if encoding == "gsm7":
        septets = gsm7.encode(text)
        header_septets = (len(header) * 8 + 6) // 7
        udl = header_septets + len(septets)
        if udl > 160:
            raise TooLong(f"{len(septets)} septets do not fit in one part", None)
        fill = header_septets * 7 - len(header) * 8
        return bytes([udl]) + header + gsm7.pack(septets, fill), bool(header)
    if encoding == "ucs2":
        try:
            body = text.encode("utf-16-be")
        except UnicodeEncodeError:
            raise ValueError("text contains a lone surrogate") from None
    else:
        body = bytes(data or b"")
    udl = len(header) + len(body)
    if udl > 140:
        raise TooLong(f"{len(body)} octets do not fit in one part", None)
    return bytes([udl]) + header + body, bool(header)


def _body_encoding(text: str, encoding: str | None, data: bytes | None) -> str:
    if data is not None:
        if encoding not in (None, "8bit"):
            raise ValueError("data is sent as 8bit")
        return "8bit"
    return _choose(text, encoding)


def encode_submit(
    recipient: str,
    text: str,
    *,
    reference: int = 0,
    encoding: str | None = None,
    concat: Concat | None = None,
    status_report: bool = False,
    validity: timedelta | None = None,
    smsc: str | None = None,
    message_class: int | None = None,
    data: bytes | None = None,
) -> tuple[str, int]:
    """One SMS-SUBMIT -> (hex PDU with the SMSC field in front, TPDU length for AT+CMGS=<len>).

    ``data`` sends 8-bit data instead of ``text``.  TooLong if the text does not fit one part.
    """
    encoding = _body_encoding(text, encoding, data)
    ud, udhi = _user_data(encoding, text, data, concat)
    first = 0x01
    if validity is not None:
        first |= 0x10  # TP-VPF relative
    if status_report:
        first |= 0x20
    if udhi:
        first |= 0x40
    tpdu = bytes([first, reference & 0xFF]) + _encode_address(recipient)
    tpdu += bytes([0x00, _dcs(encoding, message_class)])
    if validity is not None:
        tpdu += bytes([_encode_validity(validity)])
    tpdu += ud
    return (_encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


def submit_pdus(
    recipient: str,
    text: str,
    *,
    concat_reference: int,
    max_parts: int = 10,
    encoding: str | None = None,
    status_report: bool = False,
    validity: timedelta | None = None,
    smsc: str | None = None,
    message_class: int | None = None,
    bits: int = 8,
) -> list[tuple[str, int]]:
    """Split ``text`` and encode each part; a concatenation header (8-bit reference
    ``concat_reference & 0xFF`` unless bits=16) when there is more than one part."""
    encoding, parts = _concat_parts(text, max_parts, encoding, bits, concat_reference)
    return [
        encode_submit(recipient, part, encoding=encoding, concat=concat,
                      status_report=status_report, validity=validity, smsc=smsc,
                      message_class=message_class)
        for part, concat in parts
    ]


def _concat_parts(text, max_parts, encoding, bits, concat_reference):
    """(encoding, [(part text, Concat or None)]): ``text`` split, each part with its header
    (reference ``concat_reference`` cut to ``bits``) when there is more than one part."""
    encoding, parts = split(text, max_parts=max_parts, encoding=encoding, bits=bits)
    ref = concat_reference & (0xFF if bits == 8 else 0xFFFF)
    if len(parts) == 1:
        return encoding, [(parts[0], None)]
    return encoding, [(part, Concat(ref, len(parts), seq, bits))
                      for seq, part in enumerate(parts, 1)]


def encode_deliver(
    sender: str,
    text: str,
    *,
    timestamp: datetime,
    encoding: str | None = None,
    concat: Concat | None = None,
    smsc: str | None = None,
    status_report_indication: bool = False,
    message_class: int | None = None,
    pid: int = 0,
    data: bytes | None = None,
) -> tuple[str, int]:
    """One SMS-DELIVER -> (hex PDU with the SMSC field in front, TPDU length).

    ``sender`` may be a number or an alphanumeric name of up to 11 GSM 7-bit septets.
    """
    encoding = _body_encoding(text, encoding, data)
    ud, udhi = _user_data(encoding, text, data, concat)
    first = 0x04  # TP-MMS set: no more messages waiting
    if status_report_indication:
        first |= 0x20
    if udhi:
        first |= 0x40
    tpdu = bytes([first]) + _encode_address(sender, alphanumeric=True)
    tpdu += bytes([pid & 0xFF, _dcs(encoding, message_class)]) + _encode_time(timestamp) + ud
    return (_encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)


def deliver_pdus(
    sender: str,
    text: str,
    *,
    timestamp: datetime,
    concat_reference: int,
    encoding: str | None = None,
    max_parts: int = 10,
    smsc: str | None = None,
    status_report_indication: bool = False,
    bits: int = 8,
) -> list[tuple[str, int]]:
    """Split ``text`` and encode each part as an SMS-DELIVER (what a simulated network sends)."""
    encoding, parts = _concat_parts(text, max_parts, encoding, bits, concat_reference)
    return [
        encode_deliver(sender, part, timestamp=timestamp, encoding=encoding, concat=concat,
                       smsc=smsc, status_report_indication=status_report_indication)
        for part, concat in parts
    ]


def encode_status_report(
    reference: int,
    recipient: str,
    *,
    status: int,
    timestamp: datetime,
    discharge: datetime,
    smsc: str | None = None,
) -> tuple[str, int]:
    """One SMS-STATUS-REPORT -> (hex PDU with the SMSC field in front, TPDU length)."""
    if not 0 <= status <= 0xFF:
        raise ValueError("status must be one octet")
    first = 0x06  # TP-MTI 2, TP-MMS set; TP-SRQ 0: the report is about an SMS-SUBMIT
    tpdu = bytes([first, reference & 0xFF]) + _encode_address(recipient)
    tpdu += _encode_time(timestamp) + _encode_time(discharge) + bytes([status])
    return (_encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)

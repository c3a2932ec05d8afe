"""USSD strings as modems hand them over: the ``+CUSD`` reply of TS 27.007 section 7.15, and the
Cell Broadcast data coding scheme (TS 23.038 section 5) that USSD borrows for its ``<dcs>``.

A reply is ``+CUSD: <m>[,<str>[,<dcs>]]``.  ``<m>`` says where the session stands (0 done,
1 the network waits for an answer, 2 the network ended it, 3 another local client answered,
4 not supported, 5 network time-out); 4 and 5, and often 2, come with no string.  ``<str>`` is
where modems disagree, and a decoder has to meet each of them where it is:

* **Text in the TE character set** (27.007's rule for a GSM 7-bit ``<dcs>``): the modem has
  unpacked the septets and converted them to the charset chosen with ``AT+CSCS``: plain text
  under "IRA"/"8859-1", one character per septet under "GSM", UCS-2 hex under "UCS2" (then the
  ``<dcs>`` still says 15, which misleads a decoder that trusts it), two hex digits per septet
  under "HEX".  Menus come with line breaks inside the quotes, so the string may span lines.
* **UCS-2 hex**: the network sent UCS-2 (``<dcs>`` 72, 0x48) and the modem hands it over as hex.
* **Packed GSM 7-bit hex**: Huawei E1550, E173, E171 and their kin pass the septets on packed,
  as they travel in the air (``<dcs>`` 15), and want the request packed the same way:
  ``AT+CUSD=1,"AA180C3602",15`` for ``*100#``.  Nothing in the reply says so: see `looks_packed`.
* **8-bit data** (``<dcs>`` 68, 0x44, and the like): hex of the octets.

Everything here is pure and raises `UssdError`, and only that, for input it cannot read: a
reply is the network's text, and a garbled one must cost a log line, not the modem's thread.
"""

import re
from dataclasses import dataclass

from . import gsm7

__all__ = [
    "UssdError", "Reply", "DataCoding", "STATUS_NAMES", "MAX_SEPTETS", "scheme", "pack",
    "unpack", "looks_packed", "encode", "request", "decode", "parse", "incomplete",
]

#: ``<m>`` of +CUSD (27.007 7.15) -> a short name
STATUS_NAMES = {
    0: "done",            # no further user action required
    1: "more",            # further user action required: the network waits for an answer
    2: "ended",           # USSD terminated by the network
    3: "other-client",    # another local client has responded
    4: "not-supported",   # operation not supported (e.g. a wrong input value)
    5: "timeout",         # network time-out
}

#: A USSD-String holds 160 octets (TS 24.080), which is 182 packed GSM 7-bit characters.
MAX_SEPTETS = 182
#: The longest ``<str>`` we read: 160 octets as UCS-2 hex is 320 digits; real modems stay far
#: below this bound, which only keeps a hostile or broken line from costing much.
MAX_RAW = 4096

CR = 0x0D

#: 23.038 section 5: the languages of coding groups 0000 and 0010 (GSM 7-bit default alphabet)
_LANGUAGES_0 = ("de", "en", "it", "fr", "es", "nl", "sv", "da", "pt", "fi", "no", "el", "tr",
                "hu", "pl", None)
_LANGUAGES_2 = ("cs", "he", "ar", "ru", "is")

_HEX = re.compile(r"\A[0-9A-Fa-f]*\Z")
_LINE = re.compile(r"\A\s*(?:\+CUSD\s*:)?\s*(\d{1,3})\s*(?:,(.*))?\Z", re.DOTALL | re.IGNORECASE)
_QUOTED = re.compile(r'\A\s*"(.*)"\s*(?:,\s*(\d{1,3})\s*)?\Z', re.DOTALL)
_UNQUOTED = re.compile(r"\A(.*?)\s*(?:,\s*(\d{1,3})\s*)?\Z", re.DOTALL)


class UssdError(ValueError):
    """A USSD string or +CUSD line that cannot be read or written.  The one exception here."""


@dataclass(frozen=True)
class DataCoding:
    """What a CBS data coding scheme (23.038 section 5) says about a USSD string.

    ``alphabet`` is "gsm7", "8bit" or "ucs2" (reserved codings count as GSM 7-bit, as 23.038
    asks); ``language`` an ISO 639 code when the scheme names one; ``prefixed`` True when the
    text itself starts with its language (groups 0001 0000 and 0001 0001); ``compressed`` True
    for 23.042 compression, which no modem we know of hands over and we do not undo.
    """
    alphabet: str
    language: str | None = None
    prefixed: bool = False
    compressed: bool = False


@dataclass(frozen=True)
class Reply:
    """One ``+CUSD`` reply, decoded.

    ``status`` is ``<m>``; ``text`` the decoded string (None when the modem sent none);
    ``dcs`` as given (None when absent); ``encoding`` how the string came: "text" (the TE
    character set as is), "gsm" (one character per septet), "hex" (two hex digits per septet),
    "packed" (packed GSM 7-bit hex), "ucs2" (UCS-2 hex) or "8bit" (hex of octets), None without
    a string; ``raw`` the string between the quotes; ``language`` from the dcs or the text's
    own prefix.
    """
    status: int
    text: str | None = None
    dcs: int | None = None
    encoding: str | None = None
    raw: str | None = None
    language: str | None = None

    @property
    def name(self) -> str:
        """"done", "more", "ended", "other-client", "not-supported", "timeout" or "unknown"
        (some modems invent codes: +CUSD: 6 has been seen)."""
        return STATUS_NAMES.get(self.status, "unknown")

    @property
    def more(self) -> bool:
        """The network waits for an answer (a menu): send it with another AT+CUSD=1."""
        return self.status == 1


def scheme(dcs: int | None) -> DataCoding:
    """The CBS data coding scheme ``dcs`` (0..255) read per 23.038 section 5.

    None (no ``<dcs>``) reads as 27.007's default 0, a GSM 7-bit alphabet.
    """
    if dcs is None:
        dcs = 0
    if not isinstance(dcs, int) or isinstance(dcs, bool) or not 0 <= dcs <= 255:
        raise UssdError("a data coding scheme is 0..255, not %r" % (dcs,))
    group, low = dcs >> 4, dcs & 0x0F
    if group == 0x0:
        return DataCoding("gsm7", language=_LANGUAGES_0[low])
    if group == 0x1:
        if low == 0x0:
            return DataCoding("gsm7", prefixed=True)
        if low == 0x1:
            return DataCoding("ucs2", prefixed=True)
        return DataCoding("gsm7")
    if group == 0x2:
        return DataCoding("gsm7", language=_LANGUAGES_2[low] if low < len(_LANGUAGES_2) else None)
    if group & 0xC == 0x4 or group == 0x9:        # 01xx general data coding, 1001 with a UDH
        compressed = group & 0x2 != 0 and group != 0x9
        return DataCoding(("gsm7", "8bit", "ucs2", "gsm7")[(low >> 2) & 0x3],
                          compressed=compressed)
    if group == 0xF:
        return DataCoding("8bit" if low & 0x4 else "gsm7")
    return DataCoding("gsm7")     # 0011, 1000, 1010..1110: reserved, or WAP's own


# -- packed GSM 7-bit -------------------------------------------------------------------------

def _encoded(text: str) -> list[int]:
    """``text`` as GSM 7-bit septets; UssdError for characters outside the alphabet or more
    than a USSD string holds."""
    try:
        septets = gsm7.encode(text)
    except ValueError as exc:
        raise UssdError(str(exc)) from None
    if len(septets) > MAX_SEPTETS:
        raise UssdError("a USSD string holds %d septets, not %d" % (MAX_SEPTETS, len(septets)))
    return septets


def pack(text: str) -> str:
    """``text`` as packed GSM 7-bit hex, the way a Huawei modem wants the request.

    23.038 6.1.2.3.1: when the last octet would end in 7 spare bits, a CR fills them (so a
    receiver does not read an "@"), and a text that ends with a CR on an octet boundary gets
    another.  Raises UssdError for characters outside the alphabet or more than 182 septets.
    """
    septets = _encoded(text)
    if len(septets) % 8 == 7 or septets and septets[-1] == CR and len(septets) % 8 == 0:
        septets.append(CR)
    return gsm7.pack(septets).hex().upper()


def _septets(raw: str) -> list[int]:
    """The septets in packed hex, without the CR that filled 7 spare bits."""
    if len(raw) % 2 or not _HEX.match(raw):
        raise UssdError("packed GSM 7-bit is an even number of hex digits, not %r" % raw[:40])
    data = bytes.fromhex(raw)
    count = len(data) * 8 // 7
    septets = gsm7.unpack(data, count)
    if count % 8 == 0 and septets and septets[-1] == CR:
        septets.pop()
    return septets


def unpack(raw: str) -> str:
    """Packed GSM 7-bit hex -> text (the inverse of `pack`).  UssdError if it is not hex."""
    return gsm7.decode(_septets(raw))


# Characters real USSD texts are made of: letters (the accented ones of the GSM alphabet too),
# digits, white space and the punctuation a menu or a balance uses.  Left out on purpose: the
# Greek capitals, "@", "¤" and form feed, which octets that were never septets unpack into
# often and human texts hardly ever contain.
_PLAUSIBLE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 \r\n"
    "!\"#%&'()*+,-./:;<=>?_£$¥€[]{}\\^~|§¡¿"
    "èéùìòÇØøÅåÆæßÉÄÖÑÜäöñüà")
# ... and most of a text is plain letters, digits, spaces and the commonest punctuation.
_COMMON = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 \r\n.,:;!?'()/%+=*#-")


def looks_packed(raw: str) -> bool:
    """Whether a reply string with a GSM 7-bit dcs is packed hex rather than plain text.

    A Huawei reply and a plain one carry the same dcs (15); the only evidence is the string.
    Packed it must be: an even number of hex digits, upper case (modems write hex so; "cafe" is
    text to them), not digits only (a plain reply that is a number, "0712345678", is far more
    common than a packed text without one nibble above 9); with zero spare bits after the last
    septet, as a packer leaves them; and unpacking to text: only characters USSD texts use (no
    Greek capitals, no "@", no control characters but CR and LF), nine in ten of them letters,
    digits, spaces or common punctuation, and at least one letter.

    Why that suffices: octets that were never septets unpack into Greek capitals, control
    characters, escapes and rare symbols.  Of random upper-case hex strings this takes about 1 in
    100 of eight digits or more (1 in 35 of fourteen, where the septets fill the octets and no
    spare bits are left to check; 1 in 14 of two to four: a reply that short is ambiguous); it
    takes no word spelt in hex letters ("FACADE", "DEADBEEF"), and every
    real packed reply we tried.  A driver that knows its modem passes ``packed=True`` or False
    to `decode` and `parse` instead: a Huawei modem that took a packed request answers packed,
    and a modem that took a plain one answers plain.
    """
    if not raw or len(raw) % 2 or not _HEX.match(raw) or raw != raw.upper() or raw.isdigit():
        return False
    data = bytes.fromhex(raw)
    spare = len(data) * 8 % 7
    if spare and data[-1] >> (8 - spare):
        return False
    try:
        text = unpack(raw)
    except UssdError:
        return False
    if not text or any(ch not in _PLAUSIBLE for ch in text):
        return False
    common = sum(ch in _COMMON for ch in text)
    return common * 10 >= len(text) * 9 and any(ch.isalpha() for ch in text)


# -- the request -----------------------------------------------------------------------------

def _check_code(code: str) -> None:
    if not isinstance(code, str) or not code:
        raise UssdError("a USSD string is a non-empty text")
    for pos, ch in enumerate(code):
        if ch == '"' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            # A quote would end the parameter early and a CR the command line: either would let
            # the rest of the string run as AT commands of its own.
            raise UssdError("character %r at position %d cannot be sent in a USSD string"
                            % (ch, pos))


def encode(code: str, charset: str = "IRA", packed: bool = False) -> str:
    """The ``<str>`` of AT+CUSD for ``code`` (a service code such as "*102#", or a menu answer).

    A request goes out with dcs 15, so ``code`` must be GSM 7-bit text.  ``packed``: as packed
    GSM 7-bit hex (Huawei's way).  Otherwise in the TE character set, as 27.007 asks: "IRA" and
    "8859-1" as is, "GSM" one character per septet, "UCS2" as UCS-2 hex, "HEX" two hex digits
    per septet.  UssdError for what cannot go on the line.
    """
    _check_code(code)
    if packed:
        return pack(code)
    septets = _encoded(code)
    charset = (charset or "IRA").upper()
    if charset == "UCS2":
        return code.encode("utf-16-be").hex().upper()
    if charset == "GSM":
        return "".join(chr(s) for s in septets)
    if charset == "HEX":
        return "".join("%02X" % s for s in septets)
    limit = 0x80 if charset == "IRA" else 0x100
    if any(ord(ch) >= limit for ch in code):
        raise UssdError("%r cannot be written in the %s character set" % (code, charset))
    return code


def request(code: str, charset: str = "IRA", packed: bool = False) -> str:
    """The whole command line, ``AT+CUSD=1,"<str>",15``, without its line end."""
    return 'AT+CUSD=1,"%s",15' % encode(code, charset, packed)


# -- the reply -------------------------------------------------------------------------------

def _ucs2(raw: str) -> str | None:
    """UCS-2 hex -> text, or None when ``raw`` is not that (a lone surrogate becomes U+FFFD)."""
    if not raw or len(raw) % 4 or not _HEX.match(raw):
        return None
    return bytes.fromhex(raw).decode("utf-16-be", "replace")


def _readable(text: str) -> bool:
    """No control characters but CR and LF, no U+FFFD from a lone surrogate, nothing
    unassigned or private: what UCS-2 hex of a real text decodes to."""
    return all((ch.isprintable() and ch != "\ufffd" and not "\ue000" <= ch <= "\uf8ff")
               or ch in "\r\n" for ch in text)


def _latin_ucs2(raw: str) -> bool:
    """UCS-2 hex of Latin-1 text ("0048006900", "Hi"), from a modem left in (or gone back to)
    AT+CSCS="UCS2" behind its driver's back, or one that hands the network's UCS-2 on under a
    GSM dcs.  Every fourth digit pair "00" is no accident in a plain text."""
    if len(raw) < 8 or len(raw) % 4 or not _HEX.match(raw):
        return False
    if any(raw[i:i + 2] != "00" for i in range(0, len(raw), 4)):
        return False
    return _readable(_ucs2(raw))


def _gsm_chars(raw: str) -> str | None:
    """A string in the "GSM" TE character set (one character per septet) -> text."""
    if any(ord(ch) > 0x7F for ch in raw):
        return None
    return gsm7.decode([ord(ch) for ch in raw])


def decode(raw: str, dcs: int | None = 15, charset: str = "IRA",
           packed: bool | None = None) -> tuple[str, str]:
    """A ``<str>`` of +CUSD -> ``(text, encoding)`` (see `Reply` for the encodings).

    ``charset`` is the TE character set the modem was set to (AT+CSCS); ``packed`` True or
    False when the caller knows whether its modem packs GSM 7-bit strings, None to judge from
    the string (`looks_packed`).  The dcs decides first: UCS-2 and 8-bit strings are hex; a
    GSM 7-bit one is packed hex, or in the TE character set.  Where the dcs and the string
    disagree (a "UCS2" modem reporting 15, a dcs of 72 on a string that is not hex) the string
    wins, since it is what the modem actually did.  A language the text starts with (dcs 16
    and 17) is taken off; `parse` keeps it in `Reply.language`.
    """
    text, encoding, _ = _decode(raw, dcs, charset, packed)
    return text, encoding


def _decode(raw, dcs, charset, packed):
    """`decode`, and the language: (text, encoding, language)."""
    if not isinstance(raw, str):
        raise UssdError("a USSD string is text, not %r" % type(raw).__name__)
    if len(raw) > MAX_RAW:
        raise UssdError("a USSD string of %d characters is longer than any modem sends" % len(raw))
    coding = scheme(dcs)
    if coding.compressed:
        raise UssdError("dcs %d: a compressed USSD string (TS 23.042) cannot be decoded" % dcs)
    charset = (charset or "IRA").upper()
    if packed and coding.alphabet == "gsm7":
        text, encoding = unpack(raw), "packed"
    elif coding.alphabet == "ucs2":
        if coding.prefixed and len(raw) >= 4 and len(raw) % 4 == 0 and _HEX.match(raw):
            # dcs 17: two GSM 7-bit characters packed into two octets, then the UCS-2
            data = bytes.fromhex(raw)
            language = gsm7.decode(gsm7.unpack(data[:2], 2)).lower()
            return data[2:].decode("utf-16-be", "replace"), "ucs2", language
        text = _ucs2(raw)
        # not hex: a modem that converted it to its character set already
        text, encoding = (raw, "text") if text is None else (text, "ucs2")
    elif coding.alphabet == "8bit":
        text = _ucs2(raw) if charset == "UCS2" else None
        if text is not None:
            encoding = "ucs2"
        elif raw and len(raw) % 2 == 0 and _HEX.match(raw):
            text, encoding = bytes.fromhex(raw).decode("latin-1"), "8bit"
        else:
            text, encoding = raw, "text"
    else:
        text, encoding = _gsm7_string(raw, charset, packed)
    if coding.prefixed and coding.alphabet == "gsm7" and len(text) >= 3 and text[2] == "\r":
        return text[3:], encoding, text[:2].lower()
    return text, encoding, coding.language


def _gsm7_string(raw, charset, packed):
    """A string whose dcs says GSM 7-bit: UCS-2 hex under "UCS2" (or of Latin text under any
    charset), packed hex (Huawei), two hex digits a septet under "HEX", a character a septet
    under "GSM", else plain text."""
    # Packed first: UCS-2 hex of real text unpacks to "@"s and control characters, which
    # `looks_packed` refuses, while packed text often passes for UCS-2 of CJK characters.
    if packed is None and looks_packed(raw):
        return unpack(raw), "packed"
    if charset == "UCS2":
        text = _ucs2(raw)
        if text is not None and _readable(text):
            return text, "ucs2"
    if charset != "HEX" and _latin_ucs2(raw):
        return _ucs2(raw), "ucs2"
    if charset == "HEX" and raw and len(raw) % 2 == 0 and _HEX.match(raw):
        return gsm7.decode([b & 0x7F for b in bytes.fromhex(raw)]), "hex"
    if charset == "GSM":
        text = _gsm_chars(raw)
        if text is not None:
            return text, "gsm"
    return raw, "text"


def parse(line: str, charset: str = "IRA", packed: bool | None = None) -> Reply:
    """A ``+CUSD: <m>[,<str>[,<dcs>]]`` line (the "+CUSD:" may be left off) -> `Reply`.

    The string runs from the first quote to the last one before the dcs, so quotes and line
    breaks inside a reply are kept (join the lines of a multi-line reply first: `incomplete`).
    A string without quotes is taken as it stands.  UssdError for anything else.
    """
    if not isinstance(line, str):
        raise UssdError("a +CUSD line is text, not %r" % type(line).__name__)
    if len(line) > MAX_RAW + 32:
        raise UssdError("a +CUSD line of %d characters is longer than any modem sends" % len(line))
    match = _LINE.match(line)
    if not match:
        raise UssdError("not a +CUSD reply: %r" % line[:60])
    status = int(match.group(1))
    rest = match.group(2)
    if rest is None or not rest.strip():
        return Reply(status)
    quoted = _QUOTED.match(rest)
    if quoted:
        raw, dcs_text = quoted.group(1), quoted.group(2)
    else:
        if '"' in rest:
            raise UssdError("cannot read the string of this +CUSD reply: %r" % line[:60])
        unquoted = _UNQUOTED.match(rest.strip())
        raw, dcs_text = unquoted.group(1), unquoted.group(2)
    dcs = int(dcs_text) if dcs_text is not None else None
    if dcs is not None and dcs > 255:
        raise UssdError("dcs %d is not a data coding scheme" % dcs)
    text, encoding, language = _decode(raw, dcs, charset, packed)
    return Reply(status, text, dcs, encoding, raw, language)


def incomplete(line: str) -> bool:
    """True while a +CUSD line opened its string and has not closed it yet.

    Menus come as ``+CUSD: 1,"1. Balance`` LF ``2. Bundles",15``: a driver that ends lines at
    CR or LF joins the next line (with a LF) while this says True.  A text with an odd number
    of quotes of its own fools it; a driver bounds the joining by time and size as well.
    """
    return line.count('"') % 2 == 1

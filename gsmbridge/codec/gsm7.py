"""The GSM 7-bit default alphabet (3GPP TS 23.038 section 6.2.1) and its septet packing.

Text goes through two steps on its way into a PDU: ``encode`` turns characters into septets
(0..127; a character of the extension table becomes the pair ESC 0x1B + code) and ``pack``
squeezes the septets into octets, least significant bit first.  ``unpack`` and ``decode`` undo
them.  The two steps stay separate because a PDU needs the septet count (TP-UDL counts septets)
and, after a user data header, a few fill bits before the first septet.
"""

import re

__all__ = [
    "ESC",
    "is_gsm7",
    "encode",
    "decode",
    "septet_length",
    "pack",
    "unpack",
]

ESC = 0x1B

# The default alphabet, code point = index.  0x1B is the escape to the extension table;
# decode() never looks it up here.  0x09 is "Ç" as drawn in 23.038 (older phones show "ç").
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

# The default alphabet extension table (23.038 6.2.1.1): code after ESC -> character.
EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_BASIC_CODE = {ch: code for code, ch in enumerate(BASIC) if code != ESC}
_EXT_CODE = {ch: code for code, ch in EXTENSION.items()}
#: septets per character (2 for the extension table), for split()'s part sizes
SEPTETS = {**{ch: 1 for ch in _BASIC_CODE}, **{ch: 2 for ch in _EXT_CODE}}

# Whole strings are checked by the regex engine rather than a character at a time in Python:
# every SMS sent goes through these at least twice (the web side counts its parts, the worker
# encodes them), and a loop over 160 characters was most of the codec's cost.
_OUTSIDE = re.compile("[^%s]" % re.escape("".join(SEPTETS)))
_EXTENDED = re.compile("[%s]" % re.escape("".join(_EXT_CODE)))


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a place in the default alphabet or its extension."""
    return _OUTSIDE.search(text) is None


def _not_gsm7(text: str) -> ValueError:
    """The error for the first character of ``text`` that has no GSM 7-bit code."""
    bad = _OUTSIDE.search(text)
    return ValueError(f"character {bad.group()!r} at position {bad.start()} is not in the GSM "
                      "7-bit alphabet")


def encode(text: str) -> list[int]:
    """Text -> septets.  An extension character costs two septets (ESC, code).

    Raises ValueError naming the first character that has no GSM 7-bit code; the caller
    chooses UCS-2 instead (pdu.split does this when no encoding is forced).
    """
    if _OUTSIDE.search(text) is not None:
        raise _not_gsm7(text)
    if _EXTENDED.search(text) is None:
        return [_BASIC_CODE[ch] for ch in text]
    septets = []
    for pos, ch in enumerate(text):
        code = _BASIC_CODE.get(ch)
        if code is not None:
            septets.append(code)
            continue
        code = _EXT_CODE.get(ch)
        if code is None:
            raise ValueError(f"character {ch!r} at position {pos} is not in the GSM 7-bit alphabet")
        septets.append(ESC)
        septets.append(code)
    return septets


def decode(septets: list[int]) -> str:
    """Septets -> text.

    Per 23.038 an escaped code missing from the extension table is shown as the basic-table
    character of that code, ESC ESC (reserved for a further extension table) as a space, and
    so is a lone ESC at the very end (a sender that cut a pair in half).
    """
    out = []
    i = 0
    n = len(septets)
    while i < n:
        code = septets[i] & 0x7F
        i += 1
        if code != ESC:
            out.append(BASIC[code])
            continue
        if i == n:
            out.append(" ")
            break
        nxt = septets[i] & 0x7F
        i += 1
        if nxt == ESC:
            out.append(" ")
        else:
            out.append(EXTENSION.get(nxt) or BASIC[nxt])
    return "".join(out)


def septet_length(text: str) -> int:
    """How many septets ``text`` takes (extension characters count two).  ValueError if not GSM 7-bit."""
    if _OUTSIDE.search(text) is not None:
        raise _not_gsm7(text)
    return len(text) + len(_EXTENDED.findall(text))


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets into octets, least significant bit first (23.038 6.1.2.1.1).

    ``fill_bits`` zero bits come first: after a user data header they bring the first septet to
    a septet boundary counted from the start of the user data (23.040 9.2.3.24).
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    if septets and not (0 <= min(septets) and max(septets) <= 0x7F):
        bad = next(s for s in septets if not 0 <= s <= 0x7F)
        raise ValueError(f"septet out of range: {bad!r}")
    # One integer, septet i at bit 7*i after the fill bits, written out little-endian: the same
    # octets as shifting them out one by one, in fewer Python steps.
    value = 0
    for s in reversed(septets):
        value = (value << 7) | s
    bits = fill_bits + 7 * len(septets)
    return (value << fill_bits).to_bytes((bits + 7) // 8, "little")


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Take ``count`` septets out of ``data``, skipping ``fill_bits`` leading bits.

    Raises ValueError when ``data`` holds fewer than ``count`` septets.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    if count < 0:
        raise ValueError("negative septet count")
    if fill_bits + 7 * count > 8 * len(data):
        raise ValueError(f"{len(data)} octets cannot hold {count} septets after {fill_bits} fill bits")
    value = int.from_bytes(data, "little") >> fill_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]

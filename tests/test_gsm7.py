"""GSM 7-bit alphabet and septet packing (3GPP TS 23.038)."""

import pytest
from hypothesis import given, settings, strategies as st

from gsmbridge.codec import gsm7

GSM_CHARS = gsm7.BASIC.replace("\x1b", "") + "".join(gsm7.EXTENSION.values())


def test_extension_characters_cost_two_septets():
    for ch, code in [("€", 0x65), ("[", 0x3C), ("]", 0x3E), ("{", 0x28), ("}", 0x29),
                     ("~", 0x3D), ("\\", 0x2F), ("^", 0x14), ("|", 0x40), ("\f", 0x0A)]:
        assert gsm7.encode(ch) == [0x1B, code]
        assert gsm7.septet_length(ch) == 2
        assert gsm7.decode([0x1B, code]) == ch


def test_basic_table_positions():
    assert gsm7.encode("@£$¥") == [0, 1, 2, 3]
    assert gsm7.encode("Δ_ΦΓΛΩΠΨΣΘΞ") == list(range(0x10, 0x1B))
    assert gsm7.encode("¡¿§à") == [0x40, 0x60, 0x5F, 0x7F]
    assert gsm7.encode("Aa0 \n\r") == [0x41, 0x61, 0x30, 0x20, 0x0A, 0x0D]


def test_characters_outside_the_alphabet():
    for text in ["ç", "é😀", "`", "Привет", "\t"]:
        assert not gsm7.is_gsm7(text)
    with pytest.raises(ValueError, match="'`'"):
        gsm7.encode("a`b")
    with pytest.raises(ValueError):
        gsm7.septet_length("😀")


def test_unknown_escape_shows_the_basic_character():
    assert gsm7.decode([0x1B, 0x41]) == "A"  # not in the extension table
    assert gsm7.decode([0x41, 0x1B]) == "A "  # lone ESC at the end
    assert gsm7.decode([0x1B, 0x1B, 0x41]) == " A"  # ESC ESC: reserved, a space


def test_pack_known_vector():
    # "hellohello" from the classic SMS-DELIVER example
    assert gsm7.pack(gsm7.encode("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert gsm7.unpack(bytes.fromhex("E8329BFD4697D9EC37"), 10) == gsm7.encode("hellohello")


def test_pack_with_fill_bits_after_a_concat_header():
    # A 6-octet UDH is 48 bits: one fill bit brings the text to septet 7.
    packed = gsm7.pack([0x41], fill_bits=1)
    assert packed == bytes([0x41 << 1])
    assert gsm7.unpack(packed, 1, fill_bits=1) == [0x41]


def test_unpack_too_short():
    with pytest.raises(ValueError):
        gsm7.unpack(b"\x00", 2)


@settings(max_examples=200)
@given(st.text(alphabet=GSM_CHARS, max_size=200))
def test_encode_decode_roundtrip(text):
    septets = gsm7.encode(text)
    assert gsm7.septet_length(text) == len(septets)
    assert gsm7.is_gsm7(text)
    assert gsm7.decode(septets) == text


@settings(max_examples=200)
@given(st.lists(st.integers(0, 127), max_size=200), st.integers(0, 6))
def test_pack_unpack_roundtrip(septets, fill):
    packed = gsm7.pack(septets, fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert gsm7.unpack(packed, len(septets), fill) == septets

"""USSD strings and +CUSD replies (gsmbridge.codec.ussd), against what real modems send.

The examples come from public modem logs: a Huawei E-series dongle in gammu's log on
python-gammu issue 3 (packed request and packed reply, dcs 15), a modem in AT+CSCS="UCS2" on
gammu issues 358 and PR 466 (UCS-2 hex under dcs 15, one with <m> 2 and a text), an Orange menu
on hbjorgo/ATLib PR 13 (plain text spanning lines).  Property tests check round trips and that
no input, however broken, raises anything but UssdError.
"""

import pytest
from hypothesis import assume, given, settings, strategies as st

from gsmbridge.codec import UssdError, gsm7, parse_cusd, ussd, ussd_request

# python-gammu issue 3, a Huawei modem: the request for *100# and the network's answer.
HUAWEI_REQUEST = 'AT+CUSD=1,"AA180C3602",15'
HUAWEI_REPLY = '+CUSD: 0,"A0E09A5E2FB3D9E539E858A7A3C3E2B25B07CAB9723150B12A7501",15'

# gammu issue 358: a modem in AT+CSCS="UCS2"; the network ends the session with the answer.
UCS2_ENDED = (
    '+CUSD: 2,"00480061007600690020006B0065007200650074003A0020003000460074002E002000460065006C'
    "007400F6006C007400F60074007400200065006700790065006E006C00650067003A002000370037003700370046"
    "0074002C002800650062006200F6006C0020007600E0007300E00072006C00E000730072006100200069007300"
    "200066006F0072006400EC007400680061007400F2003A00200037003700370037004600740029002E00200044"
    "00EC006A00630073006F006D00610067003A002000420065006E0063007300F200200041002E00200055006A00"
    "2000540065006C0065006B006F006D002000F6006E006B00690073007A006F006C006700E0006C00F2003A0020"
    '002A0031003100310023",15')

# gammu PR 466 (tests/atgen/smsd-incoming-ussd.c): the same habit, a French network.
UCS2_FRENCH = (
    '+CUSD: 0,"0076006F00740072006500200072006500710075006500740065002000650073007400200065006E00'
    "200063006F0075007200730020006400650020007400720061006900740065006D0065006E0074002E00200076"
    "006500750069006C006C0065007A0020006C0069007200650020006C00650020006D0065007300730061006700"
    '6500200070006C0075007300200074006100720064002E",15')

# hbjorgo/ATLib PR 13: Orange, plain text, a menu over seven lines.
ORANGE_MENU = ('+CUSD: 1,"Compte principal =0F valable jusqu\'au 08/05/2022.\nConso:0F\n'
               'Points OMoney:0\n1-Bonus Credit\n2-Bonus Minutes\n3-Bonus SMS\n'
               '4-Bonus Internet",15')


# -- real modems' replies ----------------------------------------------------------------------

def test_huawei_request_is_packed_gsm7_hex():
    assert ussd_request("*100#", packed=True) == HUAWEI_REQUEST
    assert ussd.pack("*100#") == "AA180C3602"
    assert ussd.unpack("AA182C3602") == "*101#"        # asterisk-chan-dongle issue 116


def test_huawei_reply_is_packed_and_recognised_without_being_told():
    for packed in (None, True):
        reply = parse_cusd(HUAWEI_REPLY, packed=packed)
        assert reply.text == " Aktuelles Guthaben: 9.91 EUR."
        assert (reply.status, reply.name, reply.more, reply.dcs, reply.encoding) == (
            0, "done", False, 15, "packed")
    told_plain = parse_cusd(HUAWEI_REPLY, packed=False)
    assert told_plain.text == told_plain.raw and told_plain.encoding == "text"


def test_ucs2_charset_reply_under_a_gsm_dcs():
    reply = parse_cusd(UCS2_ENDED, charset="UCS2")
    assert (reply.status, reply.name, reply.encoding, reply.dcs) == (2, "ended", "ucs2", 15)
    assert reply.text.startswith("Havi keret: 0Ft. Feltöltött egyenleg: 7777Ft,")
    assert reply.text.endswith("Uj Telekom önkiszolgàlò: *111#")
    french = parse_cusd(UCS2_FRENCH, charset="UCS2")
    assert french.text == ("votre requete est en cours de traitement. veuillez lire le message "
                           "plus tard.")


def test_ucs2_of_latin_text_is_recognised_under_another_charset():
    """A modem gone back to UCS2 (a reset behind the driver's back) still reads right."""
    assert parse_cusd(UCS2_FRENCH, charset="IRA").text.startswith("votre requete")
    assert parse_cusd(UCS2_FRENCH, charset="GSM").encoding == "ucs2"


def test_ucs2_dcs_72():
    text = "Баланс: 100,50 р. Пакет: 2 ГБ"
    hex_text = text.encode("utf-16-be").hex().upper()
    for charset in ("IRA", "GSM", "UCS2"):
        reply = parse_cusd('+CUSD: 0,"%s",72' % hex_text, charset=charset)
        assert (reply.text, reply.encoding) == (text, "ucs2")


def test_ucs2_hex_of_any_script_is_not_taken_for_packed():
    for text in ("Баланс: 100,50 р.", "رصيدك الحالي 500 دينار", "您的余额为 100 元",
                 "Số dư tài khoản: 50.000đ", "ยอดเงินคงเหลือ 100 บาท", "Hi"):
        hex_text = text.encode("utf-16-be").hex().upper()
        assert not ussd.looks_packed(hex_text)
        assert ussd.decode(hex_text, 15, "UCS2") == (text, "ucs2")


def test_packed_reply_under_a_ucs2_charset_is_still_packed():
    """gammu sets AT+CSCS="UCS2" and a Huawei answers packed all the same; packed text often
    decodes as UCS-2 of CJK characters, so the packed reading must come first."""
    packed = ussd.pack("Your balance is 1234.50 TZS")
    assert ussd.decode(packed, 15, "UCS2") == ("Your balance is 1234.50 TZS", "packed")


def test_a_ucs2_dcs_on_text_that_is_not_hex_is_kept_as_text():
    """Some modems convert to the TE charset and still report the network's dcs."""
    reply = parse_cusd('+CUSD: 0,"Balance: 12.00",72')
    assert (reply.text, reply.encoding) == ("Balance: 12.00", "text")


def test_plain_menu_over_several_lines():
    first_line = ORANGE_MENU.split("\n")[0]
    assert ussd.incomplete(first_line) and not ussd.incomplete(ORANGE_MENU)
    reply = parse_cusd(ORANGE_MENU)
    assert reply.more and reply.name == "more" and reply.encoding == "text"
    assert reply.text.split("\n") == [
        "Compte principal =0F valable jusqu'au 08/05/2022.", "Conso:0F", "Points OMoney:0",
        "1-Bonus Credit", "2-Bonus Minutes", "3-Bonus SMS", "4-Bonus Internet"]


@pytest.mark.parametrize("line, status, name", [
    ("+CUSD: 2", 2, "ended"), ("+CUSD: 4", 4, "not-supported"), ("+CUSD: 5", 5, "timeout"),
    ("+CUSD: 3", 3, "other-client"), ("+CUSD:0", 0, "done"), ("+CUSD: 6", 6, "unknown"),
    ("4", 4, "not-supported"), ("+cusd: 5 ", 5, "timeout"), ("+CUSD: 4,", 4, "not-supported"),
])
def test_status_without_text(line, status, name):
    reply = parse_cusd(line)
    assert (reply.status, reply.name, reply.text, reply.dcs, reply.encoding) == (
        status, name, None, None, None)


def test_plain_text_replies():
    assert parse_cusd('+CUSD: 0,"Your balance is 1234.50 TZS",15').text == \
        "Your balance is 1234.50 TZS"
    assert parse_cusd('+CUSD: 2,"Initiating Release",15').name == "ended"
    no_dcs = parse_cusd('+CUSD: 0,"Salio: 500"')
    assert (no_dcs.text, no_dcs.dcs) == ("Salio: 500", None)
    quoted = parse_cusd('+CUSD: 0,"Press "1" to buy",15')
    assert quoted.text == 'Press "1" to buy'
    assert parse_cusd("+CUSD: 0,Saldo 12 EUR,15").text == "Saldo 12 EUR"
    assert parse_cusd('+CUSD: 0 , "spaced" , 15').text == "spaced"
    assert parse_cusd('+CUSD: 0,"",15').text == ""


def test_a_number_is_not_taken_for_packed_hex():
    for number in ("0712345678", "1234", "20", "00", "255712345678"):
        reply = parse_cusd('+CUSD: 0,"%s",15' % number)
        assert (reply.text, reply.encoding) == (number, "text")


def test_hex_looking_words_are_text():
    for word in ("FACADE", "DEADBEEF", "CAFE", "ACCEDE", "BEEF", "cafe12"):
        assert not ussd.looks_packed(word)
        assert parse_cusd('+CUSD: 0,"%s",15' % word).text == word


def test_gsm_and_hex_charsets():
    septets = gsm7.encode("Saldo: 5€ @home")
    as_gsm = "".join(chr(s) for s in septets)
    assert parse_cusd('+CUSD: 0,"%s",15' % as_gsm, charset="GSM").text == "Saldo: 5€ @home"
    as_hex = "".join("%02X" % s for s in gsm7.encode("Hi"))
    assert ussd.decode(as_hex, 15, "HEX") == ("Hi", "hex")


def test_8bit_dcs():
    assert ussd.decode("48656C6C6F", 68) == ("Hello", "8bit")
    assert ussd.decode("Hello there", 68) == ("Hello there", "text")


def test_language_from_the_dcs_and_from_the_text():
    assert parse_cusd('+CUSD: 0,"Guthaben 5 EUR",0').language == "de"
    assert parse_cusd('+CUSD: 0,"Balance 5",1').language == "en"
    prefixed = parse_cusd('+CUSD: 0,"EN\rBalance 5",16')
    assert (prefixed.text, prefixed.language) == ("Balance 5", "en")
    hex17 = ussd.pack("ru")[:4] + "Да".encode("utf-16-be").hex().upper()
    ucs2_prefixed = parse_cusd('+CUSD: 0,"%s",17' % hex17)
    assert (ucs2_prefixed.text, ucs2_prefixed.language) == ("Да", "ru")


def test_data_coding_schemes():
    assert ussd.scheme(15) == ussd.DataCoding("gsm7")
    assert ussd.scheme(72) == ussd.DataCoding("ucs2")
    assert ussd.scheme(68).alphabet == "8bit"
    assert ussd.scheme(0xF4).alphabet == "8bit" and ussd.scheme(0xF0).alphabet == "gsm7"
    assert ussd.scheme(0x60).compressed and ussd.scheme(0x98).alphabet == "ucs2"
    assert ussd.scheme(None).alphabet == "gsm7"
    assert ussd.scheme(0x23) == ussd.DataCoding("gsm7", language="ru")
    assert ussd.scheme(0x35).alphabet == "gsm7"        # reserved: GSM 7-bit, as 23.038 says
    for bad in (-1, 256, "15", True):
        with pytest.raises(UssdError):
            ussd.scheme(bad)
    with pytest.raises(UssdError, match="compressed"):
        ussd.decode("AA", 0x60)


# -- requests ------------------------------------------------------------------------------------

def test_requests_in_each_charset():
    assert ussd_request("*102#") == 'AT+CUSD=1,"*102#",15'
    assert ussd_request("*102#", charset="UCS2") == 'AT+CUSD=1,"002A0031003000320023",15'
    assert ussd.encode("1", charset="HEX") == "31"
    assert ussd.encode("@1", charset="GSM") == "\x001"


def test_requests_that_cannot_go_on_the_line():
    for bad in ('*102#"\r\nAT+CMGD=1,4', "*102#\r", "1\x1a", "", "*1`#", "x" * 183, 102):
        with pytest.raises(UssdError):
            ussd_request(bad)
    with pytest.raises(UssdError):
        ussd.encode("Ñ", charset="IRA")
    assert ussd.encode("Ñ", charset="8859-1") == "Ñ"
    assert len(ussd.pack("x" * 182)) == 2 * 160       # the most a USSD-String holds


def test_cr_padding_of_23038():
    seven = "1234567"                              # 49 bits: 7 spare bits, a CR fills them
    assert gsm7.unpack(bytes.fromhex(ussd.pack(seven)), 8)[-1] == 0x0D
    assert ussd.unpack(ussd.pack(seven)) == seven
    eight_ending_cr = "1234567\r"                  # ends on an octet boundary with a CR: another
    assert ussd.unpack(ussd.pack(eight_ending_cr)) == eight_ending_cr + "\r"
    assert ussd.pack("hellohello") == "E8329BFD4697D9EC37"     # the example everyone quotes


# -- properties -----------------------------------------------------------------------------------

GSM_TEXT = st.text(alphabet=st.sampled_from(
    gsm7.BASIC.replace("\x1b", "") + "".join(gsm7.EXTENSION.values())), max_size=80)
SENTENCE = st.text(alphabet=st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:\n"), min_size=6,
    max_size=160)
REQUEST = st.text(alphabet=st.sampled_from("0123456789*#abcXYZ +-."), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(GSM_TEXT)
def test_pack_unpack_round_trip(text):
    assume(gsm7.septet_length(text) <= ussd.MAX_SEPTETS and not text.endswith("\r"))
    assert ussd.unpack(ussd.pack(text)) == text
    assert parse_cusd('+CUSD: 1,"%s",15' % ussd.pack(text), packed=True).text == text


@settings(max_examples=300, deadline=None)
@given(SENTENCE)
def test_packed_sentences_are_recognised(text):
    assume(any(ch.isalpha() for ch in text))
    packed = ussd.pack(text)
    assume(not packed.isdigit())
    assert ussd.looks_packed(packed)
    assert parse_cusd('+CUSD: 0,"%s",15' % packed).text == text


@settings(max_examples=300, deadline=None)
@given(REQUEST, st.sampled_from(["IRA", "GSM", "UCS2", "HEX", "8859-1"]))
def test_request_round_trip_through_each_charset(code, charset):
    line = ussd_request(code, charset=charset)
    assert line.count('"') == 2 and "\r" not in line and "\n" not in line
    raw = line.split('"')[1]
    assert ussd.decode(raw, 15, charset, packed=False)[0] == code


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.sampled_from(["IRA", "GSM", "UCS2", "HEX", "UTF-8", "", None]),
       st.sampled_from([None, True, False]))
def test_garbage_lines_raise_only_ussd_error(line, charset, packed):
    for candidate in (line, "+CUSD: " + line, '+CUSD: 1,"' + line, '+CUSD: 0,"%s",15' % line):
        try:
            reply = parse_cusd(candidate, charset=charset, packed=packed)
        except UssdError:
            continue
        assert isinstance(reply.status, int) and (reply.text is None or isinstance(reply.text, str))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.one_of(st.none(), st.integers(-5, 300)),
       st.sampled_from(["IRA", "GSM", "UCS2", "HEX"]), st.sampled_from([None, True, False]))
def test_garbage_strings_raise_only_ussd_error(raw, dcs, charset, packed):
    for function in (lambda: ussd.decode(raw, dcs, charset, packed), lambda: ussd.unpack(raw),
                     lambda: ussd.looks_packed(raw), lambda: ussd.encode(raw, charset),
                     lambda: ussd.pack(raw)):
        try:
            function()
        except UssdError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_random_octets_as_hex_raise_only_ussd_error(data):
    raw = data.hex().upper()
    for dcs in (15, 72, 68, 17, 16):
        try:
            ussd.decode(raw, dcs)
        except UssdError:
            pass
    assert isinstance(ussd.looks_packed(raw), bool)


def test_wrong_types_and_sizes_raise_ussd_error():
    for bad in (None, b"+CUSD: 0", 5, "+CUSD: 0," + '"' * 5000, "+CUSD: x", "+CMTI: 1",
                '+CUSD: 0,"abc",300', '+CUSD: 0,"abc"junk', '+CUSD: 0,"AA",96'):
        with pytest.raises(UssdError):
            parse_cusd(bad)
    with pytest.raises(UssdError):
        ussd.decode(b"AA", 15)
    with pytest.raises(UssdError):
        ussd.unpack("ABC")

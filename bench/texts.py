"""The messages the benchmarks send: one full GSM 7-bit SMS, one full UCS-2 SMS, one in 3 parts."""

from gsmbridge.codec import pdu

#: 160 characters of the GSM 7-bit alphabet: exactly one SMS
GSM160 = ("Habari! Kliniki ya mama na mtoto itafunguliwa Jumatatu saa 2 asubuhi. Leta kadi ya "
          "chanjo ya mtoto. Ukikosa, piga simu 0754 000 000. Asante sana. " * 2)[:160]

#: 70 UTF-16 units with letters outside the GSM alphabet: exactly one UCS-2 SMS
UCS2_70 = ("Chanjo: Jumatatu ሰላም ወንድሜ — ክሊኒኩ ሰኞ ይከፈታል። Karibu! ✓ ")
UCS2_70 = (UCS2_70 * 2)[:70]

#: 459 GSM characters: three parts of 153 (the 6-octet concatenation header takes the rest)
MULTI3 = (GSM160 * 3)[:459]

KINDS = {"gsm160": GSM160, "ucs2_70": UCS2_70, "multi3": MULTI3}


def parts(text):
    return len(pdu.split(text)[1])


def check():
    """The texts are what their names say (a codec change must not quietly change the load)."""
    assert pdu.split(GSM160) == ("gsm7", [GSM160]) and len(GSM160) == 160
    assert pdu.split(UCS2_70)[0] == "ucs2" and parts(UCS2_70) == 1
    assert len(UCS2_70.encode("utf-16-be")) == 140
    assert pdu.split(MULTI3)[0] == "gsm7" and parts(MULTI3) == 3

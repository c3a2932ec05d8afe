"""Phone numbers as the bridge takes them from people: in the HTTP API, the config file, the
OpenAPI document.

An SMS address field (TS 23.040 9.1.2.5) holds at most 10 octets of semi-octet digits, so no
number that reaches a phone is longer than MAX_DIGITS. The bridge also asks for at least
MIN_DIGITS: anything shorter is a typo, not a short code (the shortest ones, such as 112, have
three). An optional leading '+' marks the number international (type of number 0x91); any other
character, spaces and dashes included, is refused rather than guessed at, because a message sent
to a wrong number cannot be called back.

The encoder (pdu.py) is looser on purpose: it writes whatever an address field can carry,
'*' and '#' included, since a modem or a network may hand such addresses over.
"""

import re

#: the semi-octets an address value holds at most (10 octets)
MAX_DIGITS = 20
#: the fewest digits the bridge takes as a number (short codes have three)
MIN_DIGITS = 3

#: a phone number as a regular expression, without anchors (fullmatch it, or anchor it: the
#: OpenAPI document does, and builds Kannel's list of numbers from it)
PHONE_NUMBER = r"\+?[0-9]{%d,%d}" % (MIN_DIGITS, MAX_DIGITS)
#: the same in words, for the messages that refuse a number
PHONE_NUMBER_WORDS = "an optional + and %d to %d digits" % (MIN_DIGITS, MAX_DIGITS)

_PHONE_NUMBER = re.compile(PHONE_NUMBER)


def is_phone_number(text):
    """True when text is one phone number (PHONE_NUMBER), nothing around it."""
    return _PHONE_NUMBER.fullmatch(text) is not None


def same_number(a, b):
    """Whether two renderings of a phone number are the same line (+255712..., 0712...,
    255712...): compared on their last 9 digits, the national significant number in most
    countries. Short numbers (under 6 digits) and alphanumeric addresses are compared as they
    are, but for case."""
    da = "".join(ch for ch in a if ch.isdigit())
    db = "".join(ch for ch in b if ch.isdigit())
    if len(da) < 6 or len(db) < 6:
        return a.strip().lower() == b.strip().lower()
    return da[-9:] == db[-9:]

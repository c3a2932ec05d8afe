"""Phone numbers as the store compares them: for routes (a prefix) and for matching status
reports and operators' searches (the same line written several ways)."""

from gsmbridge.codec.address import same_number


def _digits(number):
    return "".join(ch for ch in number if ch.isdigit())


def route_digits(number):
    """A number (or route prefix) as routes compare it: a leading + or 00 dropped, so that
    +25576, 0025576 and 25576 are one prefix, and the national 076 another."""
    number = number.strip()
    if number.startswith("+"):
        return number[1:]
    if number.startswith("00"):
        return number[2:]
    return number


#: whether two renderings of a number are one line: the codec's one definition
_same_number = same_number

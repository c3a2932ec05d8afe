"""Phone numbers as the store compares them: for routes (a prefix) and for matching status
reports and operators' searches (the same line written several ways)."""


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


def _same_number(a, b):
    """Whether two renderings of a phone number are the same line (+255712..., 0712..., 255712...).

    Numbers are compared on their last 9 digits, which is the national significant number in most
    countries; alphanumeric addresses are compared as they are.
    """
    da, db = _digits(a), _digits(b)
    if len(da) < 6 or len(db) < 6:
        return a.strip().lower() == b.strip().lower()
    return da[-9:] == db[-9:]


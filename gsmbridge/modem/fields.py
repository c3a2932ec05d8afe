"""Reading values out of AT information lines (``+CSQ: 17,99``, ``+CPIN: "READY"``).

Shared by the engine (``split_params``) and the driver.  Lenient on purpose: modems differ in
spacing and quoting, and a value that cannot be read is ``None`` rather than an exception, so
one odd answer does not stop the driver.
"""


def unquote(text):
    """``"SM"`` -> ``SM``; anything not quoted comes back stripped."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def to_int(text, default=None):
    """``" 17"`` -> 17; ``default`` for what is not a number (or None)."""
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        return default


def after_colon(line):
    """``+CSQ: 17,99`` -> ``17,99``."""
    return line.partition(":")[2].strip()


def split_params(value):
    """Split an AT parameter list on commas outside quotes: ``a,"b,c",d`` -> ['a', '"b,c"', 'd']."""
    out, cur, quoted = [], [], False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out

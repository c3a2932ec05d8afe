"""Command lines as the simulated modem reads them: V.250 syntax, parameters, and what a
command handler may raise or return.

A handler is ``handler(modem, op, args)``: op is "exec", "read" (``?``), "test" (``=?``) or
"set" (``=...``), args the text after "=".  It returns a list of line groups (lines that belong
together, like a +CMGL header and its PDU), a `Prompt` when the command takes a body after
``> ``, or a `Later` when the answer takes the network's time; it raises `Error` to fail.
"""


class Error(Exception):
    """A command failed: becomes ERROR, +CME ERROR or +CMS ERROR as AT+CMEE says (or, for
    kind "NO CARRIER", that result code: ATA with no call to answer)."""

    def __init__(self, kind="ERROR", code=None):
        super().__init__(kind, code)
        self.kind = kind
        self.code = code


def cme(code):
    return Error("CME", code)


def cms(code):
    return Error("CMS", code)


def split_args(text):
    """'1,"SM",,"a,b"' -> ['1', '"SM"', '', '"a,b"']: commas outside quotes split."""
    args, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            args.append(current.strip())
            current = ""
        else:
            current += ch
    args.append(current.strip())
    return args


def unquote(arg):
    if arg is not None and len(arg) >= 2 and arg[0] == arg[-1] == '"':
        return arg[1:-1]
    return arg


def integer(arg, low, high, default=None):
    """A numeric parameter in [low, high]; an empty one takes `default` (None: required)."""
    if arg in (None, ""):
        if default is None:
            raise Error()
        return default
    try:
        value = int(arg)
    except ValueError:
        raise Error() from None
    if not low <= value <= high:
        raise Error()
    return value


def parse_command_line(line):
    """Split what follows "AT" into commands: [(name, op, args)].

    V.250 syntax: basic commands are a letter (or & and a letter) with an optional number, S
    registers are ``Sn=v`` / ``Sn?``; extended commands start with "+" (or a vendor's "^", "$",
    "%") and run to ";" or the end.  op is "exec", "read" (?), "test" (=?) or "set" (=...).
    Outside quotes spaces are dropped and letters upper-cased.  Raises Error on bad syntax.
    """
    commands, i, n = [], 0, len(line)
    while i < n:
        ch = line[i]
        if ch == ";":
            i += 1
            continue
        if ch in "+^$%#*":
            j, quoted = i + 1, False
            while j < n and (quoted or line[j] != ";"):
                if line[j] == '"':
                    quoted = not quoted
                j += 1
            body = line[i:j]
            i = j
            k = 1
            while k < len(body) and (body[k].isalnum() or body[k] in "_-"):
                k += 1
            name, rest = body[:k], body[k:]
            if len(name) < 2:
                raise Error()
            if rest == "":
                commands.append((name, "exec", ""))
            elif rest == "?":
                commands.append((name, "read", ""))
            elif rest == "=?":
                commands.append((name, "test", ""))
            elif rest.startswith("="):
                commands.append((name, "set", rest[1:]))
            else:
                raise Error()
            continue
        if ch == "&" and i + 1 < n and line[i + 1].isalpha():
            name, i = "&" + line[i + 1], i + 2
        elif ch.isalpha():
            name, i = ch, i + 1
        else:
            raise Error()
        if name == "S":
            j = i
            while j < n and line[j].isdigit():
                j += 1
            if j == i:
                raise Error()
            register, i = line[i:j], j
            if i < n and line[i] == "?":
                commands.append(("S", "read", register))
                i += 1
            elif i < n and line[i] == "=":
                j = i + 1
                while j < n and line[j].isdigit():
                    j += 1
                commands.append(("S", "set", register + "=" + line[i + 1:j]))
                i = j
            else:
                raise Error()
            continue
        if name == "D":        # dial: the rest of the line is its argument
            commands.append(("D", "exec", line[i:]))
            break
        j = i
        while j < n and line[j].isdigit():
            j += 1
        commands.append((name, "exec", line[i:j]))
        i = j
    return commands


def normalise(line):
    """Upper-case and drop spaces outside quotes (V.250 5.2.1), keep quoted strings as given."""
    out, quoted = [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if quoted or ch == '"':
            out.append(ch)
        elif ch != " ":
            out.append(ch.upper())
    return "".join(out)



class Prompt:
    """A command waiting for its body after "> " (AT+CMGS, AT+CMGW, AT+CNMA=2)."""

    def __init__(self, done, text=False):
        self.done = done          # body bytes -> line groups or Later; raises Error
        self.text = text          # text mode: CR starts a new line of the body
        self.body = bytearray()


class Later:
    """An answer that comes after `delay` seconds (the network taking its time)."""

    def __init__(self, delay, action):
        self.delay = delay
        self.action = action      # () -> line groups; raises Error (the network side's own
                                  # returns a TP-MR, which the SMS handlers turn into lines)


def registrar(table):
    """A decorator factory filing handlers in `table` by command name:
    ``extended = registrar(EXTENDED)``, then ``@extended("+CMGF")`` above a handler."""
    def extended(name):
        def register(handler):
            table[name] = handler
            return handler
        return register
    return extended

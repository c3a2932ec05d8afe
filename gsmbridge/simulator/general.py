"""The simulated modem's general commands: V.250 basics (E, V, Q, Z, I, S registers, ...) and
TS 27.007 (identity, +CMEE, +CPIN, +CSQ, +CREG, +COPS, +CFUN, +CSCS, ...).

Handlers are the modem's own code: ``handler(modem, op, args)`` (see command.py) reads and
sets the modem's state directly.  `BASIC` and `EXTENDED` map command names to them.
"""

from . import render
from .command import Error, cme, integer, registrar, split_args, unquote

#: the TE character sets AT+CSCS takes
CHARSETS = ("IRA", "GSM", "UCS2", "8859-1")


# -- V.250 basic commands --------------------------------------------------------------------

def _flag(name, low=0, high=1):
    def handler(modem, op, args):
        setattr(modem, name, integer(args, low, high, default=0))
        return []
    return handler


def _ok(modem, op, args):
    return []


def _reset(modem, op, args):
    modem._defaults()
    return []


#: ATIn: what the common modems answer (ATI3/4/5 are the fallbacks of some drivers)
_ATI = {3: "+CGMI", 4: "+CGMM", 5: "+CGMR", 1: "+CGMR", 6: "+CGSN"}


def _identify(modem, op, args):
    number = integer(args, 0, 9, default=0)
    identity = modem.identity
    if number in _ATI:
        return [[identity[_ATI[number]]]]
    return [["Manufacturer: " + identity["+CGMI"], "Model: " + identity["+CGMM"],
             "Revision: " + identity["+CGMR"], "IMEI: " + identity["+CGSN"], "+GCAP: +CGSM"]]


_S_DEFAULTS = {0: 0, 3: 13, 4: 10, 5: 8, 7: 60, 8: 2, 10: 14}


def _register(modem, op, args):
    number, _, value = args.partition("=")
    number = int(number)
    if op == "read":
        return [["%03d" % modem._sregs.get(number, _S_DEFAULTS.get(number, 0))]]
    modem._sregs[number] = integer(value, 0, 255)
    return []


def _quiet(modem, op, args):
    if args not in ("", "0"):       # ATQ1 would silence the result codes drivers wait for
        raise Error()
    return []


def _refuse(modem, op, args):
    raise Error()


BASIC = {
    "E": _flag("echo"), "V": _flag("verbose"), "Q": _quiet, "Z": _reset, "&F": _reset,
    "I": _identify, "S": _register, "D": _refuse,
    "X": _ok, "&C": _ok, "&D": _ok, "&K": _ok, "&W": _ok, "L": _ok, "M": _ok,
}


# -- extended commands (27.007) --------------------------------------------------------------

EXTENDED = {}
extended = registrar(EXTENDED)


def _id_command(key):
    def handler(modem, op, args):
        if op == "test":
            return []
        if op != "exec":
            raise Error()
        return [[modem.identity[key]]]
    return handler


for _key, _aliases in (("+CGMI", ("+GMI",)), ("+CGMM", ("+GMM",)), ("+CGMR", ("+GMR",)),
                       ("+CGSN", ("+GSN",)), ("+CIMI", ())):
    for _n in (_key,) + _aliases:
        EXTENDED[_n] = _id_command(_key)


@extended("+GCAP")
def _gcap(modem, op, args):
    return [["+GCAP: +CGSM"]]


@extended("+CMEE")
def _cmee(modem, op, args):
    if op == "read":
        return [["+CMEE: %d" % modem.cmee]]
    if op == "test":
        return [["+CMEE: (0-2)"]]
    modem.cmee = integer(args, 0, 2, default=0)
    return []


@extended("+CPIN")
def _cpin(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        if modem._sim_busy():
            raise cme(14)
        return [["+CPIN: %s" % modem._pin_state]]
    if op != "set":
        raise Error()
    values = [unquote(a) for a in split_args(args)]
    if modem._sim_busy():
        raise cme(14)
    if modem._pin_state == "READY":
        raise cme(3)
    if modem._pin_state == "SIM PIN":
        if values[0] == modem.pin:
            return _unlocked(modem)
        modem._pin_tries -= 1
        if modem._pin_tries <= 0:
            modem._pin_state = "SIM PUK"
        raise cme(16)
    if len(values) == 2 and values[0] == modem.puk:
        modem.pin = values[1]
        return _unlocked(modem)
    raise cme(16)


def _unlocked(modem):
    """The right PIN (or PUK): the SIM is ready, and with it the registration can change."""
    modem._pin_state = "READY"
    modem._pin_tries = 3
    modem._creg_changed()
    return []


@extended("+CSQ")
def _csq(modem, op, args):
    if op == "test":
        return [["+CSQ: (0-31,99),(0-7,99)"]]
    if op != "exec":
        raise Error()
    rssi = modem._faults.signal if modem.cfun == 1 else 99
    return [["+CSQ: %d,99" % rssi]]


@extended("+CREG")
def _creg(modem, op, args):
    if op == "test":
        return [["+CREG: (0-2)"]]
    if op == "read":
        stat = modem._reg_stat()
        line = "+CREG: %d,%d" % (modem.creg, stat)
        if modem.creg == 2 and stat in (1, 5):
            line += ',"00A1","1B2C"'
        return [[line]]
    if op != "set":
        raise Error()
    modem.creg = integer(args, 0, 2)
    return []


@extended("+CGREG")
def _cgreg(modem, op, args):
    if op == "test":
        return [["+CGREG: (0-2)"]]
    if op == "read":
        return [["+CGREG: %d,%d" % (modem.cgreg, modem._reg_stat())]]
    if op != "set":
        raise Error()
    modem.cgreg = integer(args, 0, 2)
    return []


@extended("+COPS")
def _cops(modem, op, args):
    name, numeric = modem.operator
    if op == "test":
        return [['+COPS: (2,"%s","%s","%s"),,(0-4),(0-2)' % (name, name, numeric)]]
    if op == "read":
        if not modem._registered():
            return [["+COPS: %d" % modem.cops_mode]]
        oper = numeric if modem.cops_format == 2 else name
        return [['+COPS: %d,%d,%s' % (modem.cops_mode, modem.cops_format,
                                      render.quoted(modem, oper))]]
    if op != "set":
        raise Error()
    values = split_args(args) + ["", ""]
    mode = integer(values[0], 0, 4)
    fmt = integer(values[1], 0, 2, default=modem.cops_format)
    if mode in (1, 4) and values[2] and unquote(values[2]) not in (name, numeric):
        if mode == 1:
            raise cme(30)    # manual selection of a network that is not there
        mode = 0             # 4: manual, falling back to automatic
    modem.cops_format = fmt
    if mode != 3:
        old_stat = modem._reg_stat()
        modem.cops_mode = 0 if mode == 4 else mode
        if modem._reg_stat() != old_stat:
            modem._creg_changed()
    return []


@extended("+CFUN")
def _cfun(modem, op, args):
    if op == "read":
        return [["+CFUN: %d" % modem.cfun]]
    if op == "test":
        return [["+CFUN: (0,1,4),(0,1)"]]
    if op != "set":
        raise Error()
    values = split_args(args)
    fun = integer(values[0], 0, 4)
    if fun not in (0, 1, 4):
        raise cme(4)
    reset = integer(values[1], 0, 1, default=0) if len(values) > 1 else 0
    if reset:
        if fun != 1:
            raise cme(3)
        modem._schedule(0, modem._reboot)
        return []
    old_stat = modem._reg_stat()
    modem.cfun = fun
    if modem._reg_stat() != old_stat:
        modem._creg_changed()
    return []


@extended("+CPAS")
def _cpas(modem, op, args):
    if op == "exec":
        return [["+CPAS: %d" % modem.calls.activity()]]
    return [["+CPAS: (0-5)"]]


@extended("+CSCS")
def _cscs(modem, op, args):
    if op == "test":
        return [["+CSCS: (%s)" % ",".join('"%s"' % c for c in CHARSETS)]]
    if op == "read":
        return [['+CSCS: "%s"' % modem.cscs]]
    if op != "set":
        raise Error()
    charset = unquote(args).upper()
    if charset not in CHARSETS:
        raise cme(4)
    modem.cscs = charset
    return []



@extended("+CGSMS")
def _cgsms(modem, op, args):
    if op == "test":
        return [["+CGSMS: (0-3)"]]
    if op == "read":
        return [["+CGSMS: %d" % modem.cgsms]]
    if op != "set":
        raise Error()
    modem.cgsms = integer(args, 0, 3)
    return []


@extended("^CURC")
def _curc(modem, op, args):
    """Huawei's switch for its periodic result codes (^RSSI, ^MODE, ...): gammu and other Huawei
    drivers send AT^CURC=0 first and give up on an ERROR."""
    if op == "test":
        return [["^CURC: (0-1)"]]
    if op == "read":
        return [["^CURC: %d" % modem.curc]]
    if op != "set":
        raise Error()
    modem.curc = integer(args, 0, 1)
    return []


@extended("^PORTSEL")
def _portsel(modem, op, args):
    """Huawei: which of its ports gets the result codes (0 the modem port, 1 the PCUI port).
    A real dongle sends a +CUSD reply only there; the simulated modem has one port for all."""
    if op == "test":
        return [["^PORTSEL: (0-1)"]]
    if op == "read":
        return [["^PORTSEL: %d" % modem.portsel]]
    if op != "set":
        raise Error()
    modem.portsel = integer(args, 0, 1)
    return []

"""The simulated modem's SMS commands, TS 27.005: settings (+CMGF, +CSMS, +CPMS, +CNMI, ...),
reading and deleting stored messages (+CMGL, +CMGR, +CMGD), and sending (+CMGS, +CMGW, +CMSS)
in PDU and text mode.

Their errors are +CMS ERROR (machine.py looks the names up in `EXTENDED` for that).  Sending
hands the PDU to the network side (network.py), which answers after its delay.
"""

from ..codec import gsm7, pdu
from . import render
from .command import Error, Prompt, cms, integer, registrar, split_args, unquote
from .storage import MEMORIES, STAT_NAMES, Message, tpdu_length

EXTENDED = {}
extended = registrar(EXTENDED)


@extended("+CMGF")
def _cmgf(modem, op, args):
    if op == "test":
        return [["+CMGF: (0,1)"]]
    if op == "read":
        return [["+CMGF: %d" % modem.cmgf]]
    if op != "set":
        raise Error()
    modem.cmgf = integer(args, 0, 1, default=0)
    return []


@extended("+CSDH")
def _csdh(modem, op, args):
    if op == "test":
        return [["+CSDH: (0,1)"]]
    if op == "read":
        return [["+CSDH: %d" % modem.csdh]]
    modem.csdh = integer(args, 0, 1, default=0)
    return []


@extended("+CSMP")
def _csmp(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        return [["+CSMP: %d,%d,%d,%d" % tuple(modem.csmp)]]
    if op != "set":
        raise Error()
    values = split_args(args)
    for i, value in enumerate(values[:4]):
        if value:
            modem.csmp[i] = integer(value, 0, 255)
    return []


@extended("+CSMS")
def _csms(modem, op, args):
    if op == "test":
        return [["+CSMS: (0,1)"]]
    if op == "read":
        return [["+CSMS: %d,1,1,1" % modem.csms]]
    if op != "set":
        raise Error()
    modem.csms = integer(args, 0, 1)
    return [["+CSMS: 1,1,1"]]


@extended("+CSCA")
def _csca(modem, op, args):
    if op == "test":
        return []
    if op == "read":
        number = modem.csca or ""
        return [["+CSCA: %s,%d" % (render.quoted(modem, number),
                                   render.address_type(number or "0"))]]
    if op != "set":
        raise Error()
    values = split_args(args)
    number = render.from_te(modem, unquote(values[0]))
    if not number.lstrip("+").isdigit():
        raise cms(304 if modem.cmgf == 0 else 305)
    modem.csca = number
    return []


@extended("+CPMS")
def _cpms(modem, op, args):
    names = ",".join('"%s"' % m for m in MEMORIES)
    if op == "test":
        return [["+CPMS: (%s),(%s),(%s)" % (names, names, names)]]
    if op == "read":
        parts = []
        for which in range(3):
            memory = modem._memory(which)
            parts.append('"%s",%d,%d' % (memory.name, memory.used, memory.capacity))
        return [["+CPMS: " + ",".join(parts)]]
    if op != "set":
        raise Error()
    values = [unquote(a).upper() for a in split_args(args)]
    if len(values) > 3 or any(v not in MEMORIES for v in values):
        raise cms(302)
    for which, value in enumerate(values):
        modem.cpms[which] = value
    counts = []
    for which in range(3):
        memory = modem._memory(which)
        counts.append("%d,%d" % (memory.used, memory.capacity))
    return [["+CPMS: " + ",".join(counts)]]


@extended("+CNMI")
def _cnmi(modem, op, args):
    if op == "test":
        return [["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)"]]
    if op == "read":
        return [["+CNMI: %d,%d,%d,%d,%d" % tuple(modem.cnmi)]]
    if op != "set":
        raise Error()
    values = split_args(args)
    if len(values) > 5:
        raise cms(302)
    highs = (3, 3, 3, 2, 1)
    new = list(modem.cnmi)
    for i, value in enumerate(values):
        if value:
            new[i] = integer(value, 0, highs[i])
    modem.cnmi = new
    if new[0] != 0:       # leaving mode 0: flush (bfr 0) or clear (bfr 1) the buffered URCs
        buffered, modem._buffered = modem._buffered, []
        for lines in buffered if new[4] == 0 else ():
            modem._schedule(0, lambda lines=lines: modem._urc(lines))
    return []


@extended("+CNMA")
def _cnma(modem, op, args):
    if op == "test":
        return [["+CNMA: (0-2)"]] if modem.cmgf == 0 else []
    if modem.csms != 1:
        raise Error()
    if modem._unacked is None:
        raise cms(340)
    kind = 0
    length = None
    if op == "set":
        values = split_args(args)
        kind = integer(values[0], 0, 2)
        if len(values) > 1 and values[1]:
            length = integer(values[1], 0, 255)
    item, modem._unacked = modem._unacked, None
    if kind == 2:      # RP-ERROR: the network keeps the message and tries again later
        modem._redeliver_later(item)
        if length:
            return Prompt(lambda body: [])
    return []


@extended("+CMMS")
def _cmms(modem, op, args):
    if op == "test":
        return [["+CMMS: (0-2)"]]
    if op == "read":
        return [["+CMMS: %d" % modem.cmms]]
    modem.cmms = integer(args, 0, 2, default=0)
    return []


#: the <stat> of +CMGL in text mode: the four statuses, and "ALL"
_LIST_STATS = {name: stat for stat, name in enumerate(STAT_NAMES + ("ALL",))}


@extended("+CMGL")
def _cmgl(modem, op, args):
    if op == "test":
        if modem.cmgf == 0:
            return [["+CMGL: (0-4)"]]
        return [['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']]
    if op == "read":
        raise Error()
    if modem.cmgf == 0:
        stat = integer(args or None, 0, 4, default=0)
    else:
        name = unquote(args).upper() if args else "REC UNREAD"
        if name not in _LIST_STATS:
            raise cms(302)
        stat = _LIST_STATS[name]
    groups = []
    for index, message in modem._memory(0).items():
        if stat in (4, message.stat):
            groups.append(render.entry(modem, index, message, "+CMGL"))
            if message.stat == 0:
                message.stat = 1
    return groups


@extended("+CMGR")
def _cmgr(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    index = integer(args, 0, 100000)
    message = modem._memory(0).get(index)
    if message is None:
        raise cms(321)
    group = render.entry(modem, None, message, "+CMGR")
    if message.stat == 0:
        message.stat = 1
    return [group]


@extended("+CMGD")
def _cmgd(modem, op, args):
    memory = modem._memory(0)
    if op == "test":
        used = ",".join(str(i) for i, _ in memory.items())
        return [["+CMGD: (%s),(0-4)" % used]]
    if op != "set":
        raise Error()
    values = split_args(args)
    index = integer(values[0], 0, 100000)
    flag = integer(values[1], 0, 4, default=0) if len(values) > 1 else 0
    if flag == 0:
        if not memory.delete(index):
            if not (memory.first <= index < memory.first + memory.capacity):
                raise cms(321)
    else:
        doomed = {1: (1,), 2: (1, 3), 3: (1, 2, 3), 4: (0, 1, 2, 3)}[flag]
        for i, message in memory.items():
            if message.stat in doomed:
                memory.delete(i)
    modem._space_freed()
    return []


@extended("+CMGS")
def _cmgs(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    if modem.cmgf == 0:
        length = integer(args, 1, 180)
        return Prompt(lambda body: _cmgs_pdu(modem, body, length))
    values = split_args(args)
    number = render.from_te(modem, unquote(values[0]))
    if not number:
        raise cms(305)
    return Prompt(lambda body: _cmgs_text(modem, body, number), text=True)


def _cmgs_pdu(modem, body, length):
    hex_pdu = body.decode("latin-1").strip().replace("\r", "").replace("\n", "").upper()
    return _answering(modem._submit(hex_pdu, length), "+CMGS")


def _text_submit(modem, body, number):
    """Text mode: the body (in the TE character set, or hex for UCS2 DCS) as a SUBMIT PDU."""
    fo, vp, pid, dcs = modem.csmp
    raw = body.decode("latin-1")
    if dcs & 0x0C == 0x08:
        try:
            text = bytes.fromhex(raw).decode("utf-16-be")
        except ValueError:
            raise cms(305) from None
        encoding = "ucs2"
    else:
        text = render.from_te(modem, raw)
        if not gsm7.is_gsm7(text):
            raise cms(305)
        encoding = "gsm7"
    try:
        _, parts = pdu.split(text, encoding=encoding)
        if len(parts) != 1:
            raise cms(305)
        hex_pdu, length = pdu.encode_submit(number, text, reference=0, encoding=encoding,
                                            status_report=bool(fo & 0x20))
    except ValueError:
        raise cms(305) from None
    return hex_pdu, length


def _cmgs_text(modem, body, number):
    hex_pdu, length = _text_submit(modem, body, number)
    return _answering(modem._submit(hex_pdu, length), "+CMGS")


@extended("+CMGW")
def _cmgw(modem, op, args):
    if op == "test":
        return []
    values = split_args(args) if op == "set" else []
    if modem.cmgf == 0:
        if op != "set":
            raise Error()
        length = integer(values[0], 1, 180)
        stat = integer(values[1], 0, 3, default=2) if len(values) > 1 else 2

        def store(body):
            hex_pdu = body.decode("latin-1").strip().upper()
            if tpdu_length(hex_pdu) != length:
                raise cms(304)
            try:
                decoded = pdu.decode(hex_pdu, incoming=stat in (0, 1))
            except pdu.PduError:
                raise cms(304) from None
            kind = "submit" if isinstance(decoded, pdu.Submit) else "deliver"
            return _store(modem, Message(stat, hex_pdu, kind))
        return Prompt(store)
    number = render.from_te(modem, unquote(values[0])) if values else ""
    stat_name = unquote(values[2]).upper() if len(values) > 2 and values[2] else "STO UNSENT"
    stat = _LIST_STATS.get(stat_name, 2)

    def store_text(body):
        hex_pdu, _ = _text_submit(modem, body, number or "0")
        return _store(modem, Message(min(stat, 3), hex_pdu, "submit"))
    return Prompt(store_text, text=True)


def _store(modem, message):
    memory = modem._memory(1)
    index = None if modem._faults.storage_full else memory.add(message)
    if index is None:
        raise cms(322)
    return [["+CMGW: %d" % index]]


@extended("+CMSS")
def _cmss(modem, op, args):
    if op == "test":
        return []
    if op != "set":
        raise Error()
    values = split_args(args)
    index = integer(values[0], 0, 100000)
    memory = modem._memory(1)
    message = memory.get(index)
    if message is None:
        raise cms(321)
    if message.kind != "submit":
        raise cms(302)
    return _answering(modem._submit(message.pdu, message.length), "+CMSS", stored=message)


def _answering(later, name, stored=None):
    """A submit's `Later` made to answer "<name>: <TP-MR>" once the network took the message;
    a `stored` one (+CMSS) becomes "STO SENT" then, not before: a refused send stays unsent."""
    send = later.action

    def answer():
        mr = send()
        if stored is not None:
            stored.stat = 3
        return [["%s: %d" % (name, mr)]]
    later.action = answer
    return later


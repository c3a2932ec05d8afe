"""The simulated modem's message storage: numbered slots on the SIM ("SM"), in the phone ("ME"),
and both as one ("MT"), as AT+CPMS selects them.

A slot keeps the PDU as the modem would hand it out (SMSC field included) and its TS 27.005
status; reading an unread message (+CMGR, +CMGL) is what makes it read, not storing it.
"""

#: TS 27.005 message status: PDU mode number <-> text mode name
STAT_NAMES = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")
MEMORIES = ("SM", "ME", "MT")


class Message:
    """One storage slot: a PDU (SMSC field included) and its TS 27.005 status."""

    __slots__ = ("stat", "pdu", "length", "kind")

    def __init__(self, stat, pdu_hex, kind):
        self.stat = stat
        self.pdu = pdu_hex
        self.length = tpdu_length(pdu_hex)
        self.kind = kind      # "deliver" | "report" | "submit"


class Memory:
    """A message storage ("SM" on the SIM, "ME" in the phone) with numbered slots."""

    def __init__(self, name, capacity, first_index):
        self.name = name
        self.capacity = capacity
        self.first = first_index
        self.slots = {}

    @property
    def used(self):
        return len(self.slots)

    def indices(self):
        return range(self.first, self.first + self.capacity)

    def add(self, message):
        """Store in the lowest free slot; its index, or None when full."""
        for index in self.indices():
            if index not in self.slots:
                self.slots[index] = message
                return index
        return None

    def get(self, index):
        return self.slots.get(index)

    def delete(self, index):
        return self.slots.pop(index, None) is not None

    def items(self):
        return sorted(self.slots.items())


class Combined:
    """ "MT": SM and ME as one storage, SM's slots first, then ME's (numbered after SM's)."""

    name = "MT"

    def __init__(self, sm, me):
        self.parts = (sm, me)
        self.first = sm.first

    @property
    def capacity(self):
        return sum(m.capacity for m in self.parts)

    @property
    def used(self):
        return sum(m.used for m in self.parts)

    def _locate(self, index):
        offset = 0
        for memory in self.parts:
            local = index - offset
            if memory.first <= local < memory.first + memory.capacity:
                return memory, local
            offset += memory.capacity
        return None, None

    def add(self, message):
        offset = 0
        for memory in self.parts:
            index = memory.add(message)
            if index is not None:
                return index + offset
            offset += memory.capacity
        return None

    def get(self, index):
        memory, local = self._locate(index)
        return memory.get(local) if memory else None

    def delete(self, index):
        memory, local = self._locate(index)
        return memory.delete(local) if memory else False

    def items(self):
        out, offset = [], 0
        for memory in self.parts:
            out += [(index + offset, m) for index, m in memory.items()]
            offset += memory.capacity
        return out


def tpdu_length(pdu_hex):
    """The TPDU's length in octets, the <length> of +CMGS/+CMGL: the PDU without its SMSC field."""
    try:
        smsc_octets = int(pdu_hex[:2], 16)
    except ValueError:
        return len(pdu_hex) // 2
    return max(0, len(pdu_hex) // 2 - 1 - smsc_octets)


"""``Incoming``: one inbound SMS or status report, as every way of receiving hands it out.

Routed (+CMT/+CDS), announced (+CMTI/+CDSI, then AT+CMGR) or found by a sweep (AT+CMGL, or
AT+CMGR slot by slot), a message becomes an ``Incoming`` here and nowhere else, so it looks the
same whichever way it came.  A PDU that cannot be decoded still becomes one, raw with ``error``
set: the caller keeps it as a bad PDU, and it is deleted only once that is done.
"""

from dataclasses import dataclass

from ..codec import pdu


@dataclass
class Incoming:
    """One inbound SMS or status report as the modem gave it.  Hand it to ``done()`` once it is
    committed."""
    pdu: str                    # raw hex as the modem gave it (kept even when malformed)
    message: "pdu.Deliver | pdu.StatusReport | None"
    error: str | None           # why message is None (the PduError's text)
    index: int | None           # storage index (+CMTI/+CDSI/+CMGL), None for routed +CMT/+CDS
    storage: str | None         # "SM", "ME", "SR"... for stored ones
    routed: bool                # True: +CMT/+CDS, acknowledged with +CNMA by done()

    @property
    def slot(self):
        """(storage, index) of a stored one: what done() deletes; None for a routed one."""
        return None if self.index is None else (self.storage, self.index)


def incoming(pdu_hex, *, index=None, storage=None, routed=False):
    """Decode ``pdu_hex`` into an ``Incoming``; never raises on a bad PDU."""
    try:
        message = pdu.decode(pdu_hex)
        error = None
    except pdu.PduError as exc:
        message, error = None, str(exc)
    except Exception as exc:          # a codec bug must not cost us the message
        message, error = None, "%s: %s" % (type(exc).__name__, exc)
    return Incoming(pdu=pdu_hex, message=message, error=error, index=index, storage=storage,
                    routed=routed)

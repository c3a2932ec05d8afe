"""The dedup key of a received PDU: what says "this SMS was here before".

Modems hand the same SMS over more than once: read again after a restart that came between the
store's commit and AT+CMGD, redelivered by the network when an AT+CNMA went missing, or routed
through another SMSC. Each time the TPDU (originator, SCTS, user data and its header) is the same,
while the SMSC address in front of it may not be, so the key is a hash of the TPDU alone.
"""

import hashlib


def pdu_key(pdu):
    """SHA-1 (hex) of a received PDU's TPDU, i.e. of the hex PDU without its SMSC address field.

    Hex case and surrounding blanks do not change the key. A PDU too short or too odd to have an
    SMSC field is hashed whole: a key is still needed to keep it once.
    """
    tpdu = pdu.strip().upper()
    try:
        smsc_octets = int(tpdu[:2], 16)
        if 2 + 2 * smsc_octets <= len(tpdu):
            tpdu = tpdu[2 + 2 * smsc_octets:]
    except ValueError:
        pass
    return hashlib.sha1(tpdu.encode("ascii", "replace")).hexdigest()

"""What an SMS is on the air: the GSM 7-bit alphabet (TS 23.038), PDUs (TS 23.040) and the joining
of concatenated parts.

Pure functions and plain data, standard library only: no ports, no clocks, no store.  The modem
driver, the simulated modem, the worker and the web side all speak this one codec, and the worker
takes the dedup key it commits with each received PDU from here (dedup.py).
"""

from .dedup import pdu_key
from .gsm7 import is_gsm7, septet_length
from .pdu import (Concat, Deliver, PduError, StatusReport, Submit, TooLong, decode, decode_body,
                  deliver_pdus, encode_deliver, encode_status_report, encode_submit, split,
                  submit_pdus)
from .reassembly import GAP, Reassembler

__all__ = [
    "Concat", "Deliver", "GAP", "PduError", "Reassembler", "StatusReport", "Submit", "TooLong",
    "decode", "decode_body", "deliver_pdus", "encode_deliver", "encode_status_report",
    "encode_submit", "is_gsm7", "pdu_key", "septet_length", "split", "submit_pdus",
]

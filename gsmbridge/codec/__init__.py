"""What an SMS is on the air: the GSM 7-bit alphabet (TS 23.038), PDUs (TS 23.040), the joining
of concatenated parts, what a phone number may look like, and USSD strings as modems hand them
over (TS 27.007 +CUSD).

Pure functions and plain data, standard library only: no ports, no clocks, no store.  The modem
driver, the simulated modem, the worker and the web side all speak this one codec, and the worker
takes the dedup key it commits with each received PDU from here (dedup.py).
"""

from . import ussd
from .address import PHONE_NUMBER, PHONE_NUMBER_WORDS, is_phone_number
from .dedup import pdu_key
from .gsm7 import is_gsm7, septet_length
from .pdu import (Concat, Deliver, PduError, StatusReport, Submit, TooLong, decode, decode_body,
                  deliver_pdus, encode_deliver, encode_status_report, encode_submit, split,
                  submit_pdus)
from .reassembly import GAP, Reassembler
from .ussd import Reply as UssdReply, UssdError, parse as parse_cusd, request as ussd_request

__all__ = [
    "Concat", "Deliver", "GAP", "PHONE_NUMBER", "PHONE_NUMBER_WORDS", "PduError", "Reassembler",
    "StatusReport", "Submit", "TooLong", "UssdError", "UssdReply", "decode", "decode_body",
    "deliver_pdus", "encode_deliver", "encode_status_report", "encode_submit", "is_gsm7",
    "is_phone_number", "parse_cusd", "pdu_key", "septet_length", "split", "submit_pdus", "ussd",
    "ussd_request",
]

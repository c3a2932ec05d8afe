"""``Sender``: sending an SMS, one AT+CMGS per part, through the "> " prompt and out of it.

A send that fails half way says which parts went out (``exc.sent_references``) and under which
concatenation reference, so the caller can finish the message later without sending those parts
again.  A send that times out at the prompt is left with ESC, so the modem does not take our
next commands for the PDU.  A modem that refuses every send with +CMS ERROR: 500 while AT+CMMS=2
is on gets it switched off, for good (the setup owns that setting).
"""

import random
import time

from ..codec import pdu
from .errors import CmsError, ModemError, ModemTimeout
from .events import Final, Prompt, Response
from .fields import after_colon, split_params, to_int


class Sender:
    """Sending on ``port`` as ``setup`` set the modem up.  ``smsc``: put this service centre
    number in every PDU instead of the SIM's.  Owns the concatenation reference counter."""

    def __init__(self, port, setup, *, log, send_timeout=90.0, smsc=None):
        self._port = port
        self._setup = setup
        self._log = log
        # SIM800's manual allows AT+CMGS 60 s; give up sooner and a sent SMS looks failed.
        self.send_timeout = send_timeout
        self.smsc = smsc
        self._concat = random.randrange(256)    # the last concatenation reference used
        self._while_prompting = None            # send_sms's hook, run at the first prompt

    def send_sms(self, to, text, *, status_report=False, validity=None, max_parts=10,
                 encoding=None, concat_reference=None, skip_parts=0, while_prompting=None):
        """Send ``text`` to ``to``; see ``GsmModem.send_sms``."""
        self._setup.ensure()
        if concat_reference is None:
            self._concat = (self._concat + 1) % 256
            concat_reference = self._concat
        parts = pdu.submit_pdus(to, text, concat_reference=concat_reference, max_parts=max_parts,
                                encoding=encoding, status_report=status_report,
                                validity=validity, smsc=self.smsc)
        references = []
        self._while_prompting = while_prompting      # for the first part's prompt only
        try:
            for hex_pdu, length in parts[skip_parts:]:
                try:
                    references.append(self._send_pdu(hex_pdu, length))
                except Exception as exc:
                    exc.sent_references = list(references)
                    exc.concat_reference = concat_reference
                    if self._setup.cmms and isinstance(exc, CmsError) and exc.code == 500:
                        self._log.warning("%s: +CMS ERROR: 500 with AT+CMMS=2 on; switching it "
                                          "off", self._port.url)
                        self._setup.stop_more_messages()
                    raise
        finally:
            self._while_prompting = None
        return references

    def _send_pdu(self, hex_pdu, length):
        cmd = "AT+CMGS=%d" % length
        port = self._port
        port.start(cmd, prompt=True)
        try:
            while_prompting, self._while_prompting = self._while_prompting, None
            if while_prompting is not None:
                while_prompting()
            deadline = time.monotonic() + port.command_timeout
            while True:
                event = port.next_event(deadline)
                if event is None:
                    raise ModemTimeout("no prompt after %s" % cmd)
                if isinstance(event, Prompt):
                    self._log.debug("%s < >", port.url)
                    break
                if isinstance(event, Final):
                    port.trace(event)
                    raise event.error or ModemError("ERROR", name="OK without a prompt",
                                                    command=cmd, line=event.line)
                port.dispatch(event)
            port.body(hex_pdu)
            deadline = time.monotonic() + self.send_timeout
            reference = None
            while True:
                event = port.next_event(deadline)
                if event is None:
                    raise ModemTimeout("no +CMGS within %.0f s" % self.send_timeout)
                if isinstance(event, Response) and event.line.upper().startswith("+CMGS"):
                    port.trace(event)
                    reference = to_int(split_params(after_colon(event.line))[0])
                elif isinstance(event, Final):
                    port.trace(event)
                    if event.ok:
                        return reference
                    raise port.refused(event)
                else:
                    port.dispatch(event)
        except ModemTimeout:
            port.cancel_prompt()
            raise
        except ModemError:
            raise
        except BaseException:
            if port.is_open and port.busy:
                port.cancel_prompt()
            raise

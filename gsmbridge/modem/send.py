"""Sending with a ``GsmModem``: AT+CMGS per part, the "> " prompt, and getting out of it.

A send that fails half way says which parts went out (``exc.sent_references``) and under which
concatenation reference, so the caller can finish the message later without sending those parts
again.  A send that times out at the prompt is left with ESC, so the modem does not take our
next commands for the PDU.
"""

import time

from ..codec import pdu
from .at import Final, Prompt, Response, split_params
from .fields import after_colon, to_int
from .errors import CmsError, ModemError, ModemGone, ModemTimeout


class SendMixin:
    """``send_sms`` for ``GsmModem``.  Keeps ``_concat``, the last concatenation reference, and
    turns AT+CMMS off (``_cmms``, ``more_messages``) for a modem that cannot take it."""

    def send_sms(self, to, text, *, status_report=False, validity=None, max_parts=10,
                 encoding=None, concat_reference=None, skip_parts=0):
        """Send ``text`` to ``to`` (split into up to ``max_parts`` parts) -> the message
        references (TP-MR) of the parts sent, None where a modem gave none.

        Raises ValueError (pdu.TooLong) for a text that does not fit, before anything is
        written; ModemError (CmsError) when the modem or network refuses a part, ModemTimeout
        when it does not answer, ModemGone when the port fails.  Those carry
        ``exc.sent_references`` (the parts that went out before the failure) and
        ``exc.concat_reference``: to finish the message later without sending those parts
        again, call again with ``concat_reference=exc.concat_reference`` and
        ``skip_parts=<parts sent so far>`` -- the same text splits into the same parts, and
        the same reference lets the phone join old and new parts into one message.
        """
        if self._needs_setup:
            self._redo_setup()
        if concat_reference is None:
            self._concat = (self._concat + 1) % 256
            concat_reference = self._concat
        parts = pdu.submit_pdus(to, text, concat_reference=concat_reference, max_parts=max_parts,
                                encoding=encoding, status_report=status_report,
                                validity=validity, smsc=self.smsc)
        references = []
        for hex_pdu, length in parts[skip_parts:]:
            try:
                references.append(self._send_pdu(hex_pdu, length))
            except Exception as exc:
                exc.sent_references = list(references)
                exc.concat_reference = concat_reference
                if self._cmms and isinstance(exc, CmsError) and exc.code == 500:
                    self._cmms = self.more_messages = False
                    self.log.warning("%s: +CMS ERROR: 500 with AT+CMMS=2 on; switching it off",
                                     self.port)
                    self._tolerate("AT+CMMS=0")
                raise
        return references

    def _send_pdu(self, hex_pdu, length):
        cmd = "AT+CMGS=%d" % length
        self._start(cmd, prompt=True)
        try:
            deadline = time.monotonic() + self.command_timeout
            while True:
                event = self._event(deadline)
                if event is None:
                    raise ModemTimeout("no prompt after %s" % cmd)
                if isinstance(event, Prompt):
                    self.log.debug("%s < >", self.port)
                    break
                if isinstance(event, Final):
                    self._rx(event)
                    raise event.error or ModemError("ERROR", name="OK without a prompt",
                                                    command=cmd, line=event.line)
                self._other(event)
            self.log.debug("%s > %s<Ctrl-Z>", self.port, hex_pdu)
            self._write(self._engine.body(hex_pdu))
            deadline = time.monotonic() + self.send_timeout
            reference = None
            while True:
                event = self._event(deadline)
                if event is None:
                    raise ModemTimeout("no +CMGS within %.0f s" % self.send_timeout)
                if isinstance(event, Response) and event.line.upper().startswith("+CMGS"):
                    self._rx(event)
                    reference = to_int(split_params(after_colon(event.line))[0])
                elif isinstance(event, Final):
                    self._rx(event)
                    if event.ok:
                        return reference
                    self._note_error(event.error)
                    raise event.error
                else:
                    self._other(event)
        except ModemTimeout:
            self._leave_prompt()
            raise
        except ModemError:
            raise
        except BaseException:
            if self._serial is not None and self._engine.busy:
                self._leave_prompt()
            raise

    def _leave_prompt(self):
        """ESC, so the modem does not sit at "> " eating our next commands as a PDU."""
        try:
            self._write(self._engine.cancel())
        except ModemGone:
            raise
        except ModemTimeout:
            pass
        self._stale = True

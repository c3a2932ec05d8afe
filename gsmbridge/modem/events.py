"""What the AT engine (at.py) hands the driver: one event per thing the modem said.

Plain frozen values, so they compare, print and pickle well in tests and logs.  ``Final.error``
turns an error result into the exception it means (errors.py).
"""

from dataclasses import dataclass, field

from .errors import from_final

__all__ = ["NEED_DATA", "Response", "Final", "Unsolicited", "Prompt", "Echo", "Noise",
           "UsageError"]


class _Sentinel:
    def __init__(self, name):
        self._name = name

    def __repr__(self):
        return self._name


NEED_DATA = _Sentinel("NEED_DATA")   # no whole event in the buffer yet: feed more bytes


@dataclass(frozen=True)
class Response:
    """An information line of the current command, e.g. ``+CSQ: 17,99``.

    ``body`` is the second line of a ``+CMGR``/``+CMGL`` header (the PDU, or the text in text
    mode); None for every other line, and for a header the modem sent without one.
    """
    line: str
    body: str | None = None


@dataclass(frozen=True)
class Final:
    """The final result that ends the current command.

    ``kind`` is "OK", "ERROR", "CME", "CMS", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE",
    "COMMAND NOT SUPPORT" or "TOO MANY PARAMETERS"; ``code`` the +CME/+CMS number (None if the
    modem gave words we do not know).  A command finished by its ``done_on`` line gets a
    ``Final("OK", None, "")`` of the engine's making.
    """
    kind: str
    code: int | None
    line: str
    command: str | None = field(default=None, compare=False)

    @property
    def ok(self):
        return self.kind == "OK"

    @property
    def error(self):
        """The ``errors.ModemError`` this result means, or None for OK."""
        if self.ok:
            return None
        return from_final(self.kind, self.code, command=self.command, line=self.line)


@dataclass(frozen=True)
class Unsolicited:
    """A URC: ``+CMTI: "SM",3`` is name "+CMTI", value '"SM",3'.

    ``body`` is the second line of ``+CMT``/``+CDS``/``+CBM`` (None for the others, or if it never
    came).  Bare URCs such as ``RING`` or ``SMS Ready`` have the line as name and value "".
    """
    name: str
    value: str
    body: str | None
    line: str


@dataclass(frozen=True)
class Prompt:
    """``> ``: the modem waits for the PDU (send it with ``Engine.body``)."""


@dataclass(frozen=True)
class Echo:
    """The modem repeated what we wrote (echo still on after ATE0)."""
    line: str


@dataclass(frozen=True)
class Noise:
    """Bytes that mean nothing here: undecodable, stray finals while idle, unknown lines. For logs."""
    data: bytes


class UsageError(RuntimeError):
    """The engine was driven wrongly (a command while one is in progress, a body with no prompt)."""

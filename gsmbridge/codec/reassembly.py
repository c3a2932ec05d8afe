"""Joins the parts of concatenated SMS back into messages.

Pure: no clock, no I/O.  The caller passes ``now`` (any monotonic float, seconds) to ``add``
and ``expire``.  Parts may come in any order and more than once; a message whose parts stop
coming is not dropped but handed out by ``expire`` with a visible gap where parts are missing,
marked incomplete.

Parts belong together when they share (sender, reference, total, reference size): two senders
may well use the same reference at the same time, and an 8-bit reference 5 is not a 16-bit 5.
"""

from dataclasses import dataclass, field
from datetime import datetime

from .pdu import Deliver, decode_body

__all__ = ["GAP", "Message", "Reassembler"]

GAP = "[...]"  # stands in for one or more missing parts of an incomplete message


@dataclass
class Message:
    sender: str
    text: str
    timestamp: datetime  # the earliest service centre time stamp among the parts
    parts: int  # how many parts arrived
    total: int  # how many parts the message has
    incomplete: bool
    pdus: list[str]  # the raw PDUs it was made from, in part order


@dataclass
class _Group:
    first_seen: float
    total: int
    parts: dict[int, tuple[Deliver, str]] = field(default_factory=dict)


def _norm(pdu: str) -> str:
    return "".join(pdu.split()).upper()


def _join(delivers: list[Deliver | None]) -> str:
    """Text of the parts in order; None is a missing part.

    Consecutive parts of one encoding are joined before decoding, so an escape pair or a
    surrogate pair cut in two by the sender's splitter comes out whole.
    """
    pieces: list[str] = []
    run_encoding: str | None = None
    run: list[bytes] = []

    def flush() -> None:
        nonlocal run_encoding
        if run_encoding is not None:
            pieces.append(decode_body(run_encoding, b"".join(run)))
        run.clear()
        run_encoding = None

    for part in delivers:
        if part is None:
            flush()
            if not pieces or pieces[-1] != GAP:
                pieces.append(GAP)
        elif not part.body and part.text:  # made by hand, without a body: take its text
            flush()
            pieces.append(part.text)
        else:
            if part.encoding != run_encoding:
                flush()
                run_encoding = part.encoding
            run.append(part.body)
    flush()
    return "".join(pieces)


class Reassembler:
    """Collects parts until a message is whole (``add``) or has waited ``timeout`` s (``expire``)."""

    def __init__(self, timeout: float = 3600.0):
        self.timeout = timeout
        self._groups: dict[tuple, _Group] = {}
        # PDUs of recently completed messages: the same part delivered again after its message
        # was completed must not open a new, forever incomplete, message.
        self._done: dict[str, float] = {}

    def add(self, deliver: Deliver, pdu: str, now: float) -> Message | None:
        """Take one received SMS.  Returns the Message when this completes one (a single SMS
        completes at once), else None (part kept, or a duplicate ignored)."""
        concat = deliver.concat
        if concat is None:
            return Message(
                sender=deliver.sender,
                text=_join([deliver]),
                timestamp=deliver.timestamp,
                parts=1,
                total=1,
                incomplete=False,
                pdus=[pdu],
            )
        self._forget(now)
        if _norm(pdu) in self._done:
            return None
        key = (deliver.sender, concat.reference, concat.total, concat.bits)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(first_seen=now, total=concat.total)
        if concat.sequence in group.parts:
            return None
        group.parts[concat.sequence] = (deliver, pdu)
        if len(group.parts) < group.total:
            return None
        del self._groups[key]
        for _, part_pdu in group.parts.values():
            self._done[_norm(part_pdu)] = now
        return self._message(group, incomplete=False)

    def expire(self, now: float) -> list[Message]:
        """Hand out, marked incomplete, every message whose first part came ``timeout`` or more
        seconds before ``now``.  The text has GAP where parts are missing."""
        self._forget(now)
        out = []
        for key, group in list(self._groups.items()):
            if now - group.first_seen >= self.timeout:
                del self._groups[key]
                out.append(self._message(group, incomplete=True))
        return out

    def pending(self) -> int:
        """How many messages are waiting for parts."""
        return len(self._groups)

    def _forget(self, now: float) -> None:
        # oldest first (insertion order), so stop at the first one still young
        while self._done:
            pdu, when = next(iter(self._done.items()))
            if now - when < self.timeout:
                break
            del self._done[pdu]

    @staticmethod
    def _message(group: _Group, *, incomplete: bool) -> Message:
        ordered = [group.parts.get(seq) for seq in range(1, group.total + 1)]
        present = [p for p in ordered if p is not None]
        first = present[0][0]
        return Message(
            sender=first.sender,
            text=_join([p[0] if p else None for p in ordered]),
            timestamp=min(d.timestamp for d, _ in present),
            parts=len(present),
            total=group.total,
            incomplete=incomplete,
            pdus=[pdu for _, pdu in present],
        )

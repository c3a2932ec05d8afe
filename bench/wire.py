"""Reading the simulated modem's wire log: what crossed the serial line, and when.

The log (bench.simproc) has the host's writes (">", time read by the simulator), what the host
got ("<", time its last byte arrived on the paced line) and the network's deliveries ("N"). Each
direction is joined into one stream with a time for every offset, and the AT+CMGS and +CMT
exchanges are found in the streams.
"""

import bisect
import re
from dataclasses import dataclass

from gsmbridge.codec import pdu

CMGS = re.compile(r"AT\+CMGS=(\d+)\r")
BODY = re.compile(r"([0-9A-Fa-f]*)\x1a")
ANSWER = re.compile(r"\r\n\+CMGS: *\d+\r\n\r\nOK\r\n|\r\n\+CMS ERROR: *[^\r]*\r\n")
PROMPT = "\r\n> "
CMT = re.compile(r"\r\n\+CMT: [^\r]*\r\n([0-9A-Fa-f]+)\r\n")
CNMA = "AT+CNMA\r"
OK = "\r\nOK\r\n"


class Stream:
    """One direction's bytes joined, with the time of the event each offset came in."""

    def __init__(self, events, direction):
        parts, self.ends, self.times = [], [], []
        size = 0
        for when, d, text in events:
            if d != direction:
                continue
            parts.append(text)
            size += len(text)
            self.ends.append(size)
            self.times.append(when)
        self.text = "".join(parts)

    def time_at(self, offset):
        """When the byte at `offset` crossed (the time of the chunk that carried it)."""
        return self.times[bisect.bisect_right(self.ends, offset)]


@dataclass
class Exchange:
    """One AT+CMGS: the host's command, the modem's answer."""
    command_at: float       # the host wrote AT+CMGS
    answered_at: float      # the last byte of +CMGS/OK (or the error) reached the host
    line_bytes: int         # bytes that must cross: command, prompt, PDU, Ctrl-Z, answer
    ok: bool
    pdu: str                # the SUBMIT PDU the host sent (hex, with its SMSC field)
    prompt_at: float        # the prompt's last byte reached the host
    body_at: float          # the host wrote the PDU
    command_bytes: int      # AT+CMGS=<n> CR
    body_bytes: int         # PDU and Ctrl-Z
    answer_bytes: int       # +CMGS: <mr> and OK (or the error)

    def modem_late(self, baud, network_delay=0.0):
        """Seconds the simulated modem took beyond line time (and the network's delay):
        its own processing and scheduling, not the host's."""
        byte = 10.0 / baud
        prompt = self.prompt_at - self.command_at - (self.command_bytes + len(PROMPT)) * byte
        answer = (self.answered_at - self.body_at - network_delay
                  - (self.body_bytes + self.answer_bytes) * byte)
        return prompt + answer

    def host_turnaround(self):
        """Seconds from the prompt reaching the host to the host writing the PDU."""
        return self.body_at - self.prompt_at

    def recipient(self):
        try:
            return pdu.decode(self.pdu, incoming=False).recipient
        except (pdu.PduError, AttributeError):
            return None


def exchanges(events):
    """The AT+CMGS exchanges in order (commands and answers paired in order)."""
    host, modem = Stream(events, ">"), Stream(events, "<")
    commands = []
    for match in CMGS.finditer(host.text):
        body = BODY.search(host.text, match.end())
        body_len = len(body.group(0)) if body else 0
        commands.append((host.time_at(match.start()), len(match.group(0)), body_len,
                         body.group(1) if body else "",
                         host.time_at(body.start()) if body else None))
    answers = [(modem.time_at(m.end() - 1), len(m.group(0)), "+CMGS" in m.group(0))
               for m in ANSWER.finditer(modem.text)]
    prompts = []
    at = modem.text.find(PROMPT)
    while at >= 0:
        prompts.append(modem.time_at(at + len(PROMPT) - 1))
        at = modem.text.find(PROMPT, at + 1)
    # Answers to other commands (a bare ERROR) can only come before a CMGS is answered; keep
    # for each command the first answer after it.
    out, j, k = [], 0, 0
    for command_at, command_bytes, body_bytes, hex_pdu, body_at in commands:
        while j < len(answers) and answers[j][0] < command_at:
            j += 1
        while k < len(prompts) and prompts[k] < command_at:
            k += 1
        if j == len(answers) or k == len(prompts) or body_at is None:
            break
        answered_at, answer_bytes, ok = answers[j]
        j += 1
        out.append(Exchange(
            command_at, answered_at, command_bytes + len(PROMPT) + body_bytes + answer_bytes, ok,
            hex_pdu, prompts[k], body_at, command_bytes, body_bytes, answer_bytes))
        k += 1
    return out


def gaps(exchanges_):
    """Seconds from each answer to the next AT+CMGS."""
    return [b.command_at - a.answered_at for a, b in zip(exchanges_, exchanges_[1:])]


def deliveries(events):
    """{text: time the network handed it to the modem}."""
    out = {}
    for when, d, text in events:
        if d == "N":
            out.setdefault(text, when)
    return out


def routed(events):
    """[(pdu, time its +CMT's last byte reached the host, +CMT bytes)] in order."""
    modem = Stream(events, "<")
    return [(m.group(1).upper(), modem.time_at(m.end() - 1), len(m.group(0)))
            for m in CMT.finditer(modem.text)]


def percentile(values, p):
    """The p-th percentile (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]

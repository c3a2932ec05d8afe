"""Test helper: read a simulated modem's transcript (simulator.Simulator.transcript()) as bytes.

The transcript is the port's traffic as the simulator's pump saw it: a '>' entry for each read of
what the host wrote, a '<' entry for each piece of output, in order. Tests use it to know that the
modem has read something, and what it answered, without reading the port themselves.
"""

import ast


def wire(sim, since=0):
    """What crossed the port after offset `since` of the transcript (len(sim.transcript()) taken
    earlier): (the bytes the host wrote, the bytes the modem sent)."""
    sent, answered = b"", b""
    for line in sim.transcript()[since:].splitlines():
        direction, data = line.split(" ", 1)
        if direction == ">":
            sent += ast.literal_eval(data)
        else:
            answered += ast.literal_eval(data)
    return sent, answered

"""``Health``: what a modem says about itself (signal, network), and getting a silent one back.

``probe`` is the watchdog's first step (ESC, then AT until it answers); ``reset`` its last (a
restart command, then the port is closed, since a USB modem restarting leaves the bus).  It
keeps no state of its own: what it learns, it returns.
"""

import time
from dataclasses import dataclass

from .errors import ModemError, ModemTimeout
from .fields import after_colon, split_params, to_int, unquote


@dataclass
class Network:
    """Where the modem stands with the network, as ``network()`` found it."""
    operator: str | None        # as AT+COPS? names it, None when not registered
    registration: int | None    # +CREG <stat>: 0 not searching, 1 home, 2 searching, 3 denied,
                                # 4 unknown, 5 roaming (None: the modem would not say)
    registered: bool            # stat 1 or 5 (on CREG, or on CEREG/CGREG for LTE-only modems)


class Health:
    """``probe``, ``reset``, ``signal_strength``, ``network`` and ``wait_for_network`` on
    ``port``."""

    def __init__(self, port, *, log):
        self._port = port
        self._log = log

    # --- recovery ------------------------------------------------------------------------------

    def probe(self, timeout=None):
        """ESC, then AT every half second for up to ``timeout`` seconds (command_timeout): True as
        soon as the modem answers at all (an ERROR is an answer too).

        The first thing to try when a command got no answer: a modem left at a "> " prompt, or
        one that was busy for a while, answers again without a reopen.  Modems drop what is
        written while they are stuck, hence AT again and again rather than one long wait.
        """
        port = self._port
        if not port.is_open:
            return False
        deadline = time.monotonic() + (timeout or port.command_timeout)
        port.interrupt()
        while True:
            try:
                port.command("AT", timeout=max(0.1, min(0.5, deadline - time.monotonic())))
            except ModemError:
                pass
            except ModemTimeout:
                if time.monotonic() < deadline:
                    continue
                return False
            port.settle(limit=0.5)          # late answers to what timed out, while idle
            return True

    def reset(self, command, timeout=None):
        """Write ``command`` (e.g. AT+CFUN=1,1) to restart the modem, then close the port.

        The modem may well not answer (it is being reset because it does not), so no answer
        is no error; ModemGone if the port cannot be opened or fails.  A USB modem restarting
        leaves the bus and comes back, so the caller reopens later with ``boot()``.
        """
        port = self._port
        if not port.is_open:
            port.open()
        try:
            port.interrupt()
            try:
                port.command(command, timeout=timeout)
                self._log.warning("%s: %s accepted; the modem restarts", port.url, command)
            except (ModemError, ModemTimeout) as exc:
                self._log.warning("%s: %s: %s", port.url, command, exc)
        finally:
            port.close()

    # --- status --------------------------------------------------------------------------------

    def signal_strength(self):
        """AT+CSQ <rssi>: 0..31 (-113..-51 dBm), None when unknown (99)."""
        for response in self._port.command("AT+CSQ"):
            if response.line.upper().startswith("+CSQ"):
                rssi = to_int(split_params(after_colon(response.line))[0])
                return None if rssi is None or rssi == 99 else rssi
        return None

    def network(self):
        """The operator (AT+COPS?) and registration (AT+CREG?, CEREG/CGREG for LTE-only)."""
        operator = None
        try:
            for response in self._port.command("AT+COPS?"):
                if not response.line.upper().startswith("+COPS"):
                    continue
                fields = split_params(after_colon(response.line))
                if len(fields) >= 3 and fields[2]:
                    operator = unquote(fields[2])
        except ModemError as exc:
            self._log.info("%s: %s", self._port.url, exc)
        stat = self._registration("+CREG")
        registered = stat in (1, 5)
        if not registered:
            for other in ("+CEREG", "+CGREG"):
                alt = self._registration(other)
                if alt in (1, 5):
                    registered = True
                    break
        return Network(operator=operator, registration=stat, registered=registered)

    def _registration(self, name):
        try:
            lines = self._port.command("AT%s?" % name)
        except ModemError:
            return None
        for response in lines:
            if response.line.upper().startswith(name):
                fields = split_params(after_colon(response.line))
                # <n>,<stat>[,...] in answer to the query (a URC would be <stat>[,...])
                return to_int(fields[1]) if len(fields) > 1 else to_int(fields[0])
        return None

    def wait_for_network(self, timeout):
        """Ask until the modem is registered or ``timeout`` passes; the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            net = self.network()
            if net.registered or time.monotonic() >= deadline:
                return net
            self._port.wait(min(2.0, max(0.0, deadline - time.monotonic())))

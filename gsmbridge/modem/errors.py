"""Modem error results: names for +CME/+CMS codes, transient or permanent, and the exceptions.

A modem answers a command that failed with one final result: a plain ``ERROR``, a numbered
``+CME ERROR: <n>`` (TS 27.007 section 9.2, equipment errors) or ``+CMS ERROR: <n>`` (TS 27.005
section 3.2.5, message service errors), or, with ``AT+CMEE=2``, the same errors in words
(``+CME ERROR: SIM busy``).  This module turns either form into a code, a name and a verdict.

The verdict answers one question for the callers that queue messages: *may the very same request
succeed later, unchanged?*

* **transient** -- the modem, the SIM or the network is in a state that can change: busy,
  initialising, no coverage, congestion, a glitch, a full storage that we empty ourselves, even a
  missing SIM or PIN that an operator will fix.  The message is not at fault, so it stays queued.
  Callers still count attempts: an "unknown error" that never clears must not loop forever.
* **permanent** -- the request itself is refused: the number is unassigned or barred, the PDU or a
  parameter is invalid, the subscription forbids it, the command is not supported, a wrong PIN.
  Sending it again unchanged would fail again (or, for a PIN, burn a try).

Codes not in the tables (vendor codes above 511 in particular) are transient: losing a message
to a mis-filed code is worse than a few bounded retries.
"""

import re

__all__ = [
    "ModemError", "CmeError", "CmsError", "ModemTimeout", "ModemGone",
    "describe", "lookup", "from_final", "CME", "CMS",
]

T, P = True, False   # transient, permanent: the second field of every table row

# TS 27.007 section 9.2.1 (general) and 9.2.2 (GPRS/packet domain), plus vendor codes seen on
# real modems.  code: (name, transient)
CME = {
    0: ("phone failure", T),                       # the ME hiccupped
    1: ("no connection to phone", T),
    2: ("phone-adaptor link reserved", T),
    3: ("operation not allowed", P),               # refused in this form (e.g. CPIN when READY)
    4: ("operation not supported", P),             # the modem never will
    5: ("PH-SIM PIN required", T),                 # SIM state: needs an operator, not a new request
    6: ("PH-FSIM PIN required", T),
    7: ("PH-FSIM PUK required", T),
    10: ("SIM not inserted", T),                   # someone may insert it
    11: ("SIM PIN required", T),                   # the driver enters the PIN at boot
    12: ("SIM PUK required", T),                   # needs an operator
    13: ("SIM failure", T),                        # often a loose SIM; may come back
    14: ("SIM busy", T),                           # SIM still initialising after power-up
    15: ("SIM wrong", T),
    16: ("incorrect password", P),                 # a wrong PIN: retrying burns a try
    17: ("SIM PIN2 required", T),
    18: ("SIM PUK2 required", T),
    20: ("memory full", T),                        # we empty the storage ourselves
    21: ("invalid index", P),                      # that slot is empty or out of range
    22: ("not found", P),
    23: ("memory failure", T),
    24: ("text string too long", P),
    25: ("invalid characters in text string", P),
    26: ("dial string too long", P),
    27: ("invalid characters in dial string", P),
    30: ("no network service", T),                 # coverage comes and goes
    31: ("network timeout", T),
    32: ("network not allowed - emergency calls only", T),   # not registered (yet)
    40: ("network personalization PIN required", T),
    41: ("network personalization PUK required", T),
    42: ("network subset personalization PIN required", T),
    43: ("network subset personalization PUK required", T),
    44: ("service provider personalization PIN required", T),
    45: ("service provider personalization PUK required", T),
    46: ("corporate personalization PIN required", T),
    47: ("corporate personalization PUK required", T),
    48: ("hidden key required", T),
    49: ("EAP method not supported", P),
    50: ("incorrect parameters", P),
    51: ("command implemented but currently disabled", P),
    52: ("command aborted by user", T),
    53: ("not attached to network due to MT functionality restrictions", T),
    54: ("modem not allowed - MT restricted to emergency calls only", T),
    55: ("operation not allowed because of MT functionality restrictions", T),
    56: ("fixed dial number only allowed", P),     # the number is not in the FDN list
    57: ("temporarily out of service due to other MT usage", T),
    58: ("language/alphabet not supported", P),
    59: ("unexpected data value", P),
    60: ("system failure", T),
    61: ("data missing", P),
    62: ("call barred", P),
    63: ("message waiting indication subscription failure", P),
    100: ("unknown", T),                           # the usual "try again"; callers count attempts
    103: ("illegal MS", P),
    106: ("illegal ME", P),
    107: ("GPRS services not allowed", P),
    108: ("GPRS services and non-GPRS services not allowed", P),
    111: ("PLMN not allowed", P),
    112: ("location area not allowed", T),         # may roam into an allowed one
    113: ("roaming not allowed in this location area", T),
    114: ("GPRS services not allowed in this PLMN", P),
    115: ("no suitable cells in location area", T),
    122: ("congestion", T),
    132: ("service option not supported", P),
    133: ("requested service option not subscribed", P),
    134: ("service option temporarily out of order", T),
    148: ("unspecified GPRS error", T),
    149: ("PDP authentication failure", P),
    150: ("invalid mobile class", P),
    # vendor: Wavecom/Sierra answer CFUN/CPIN right after power-up with this one
    515: ("please wait, init or command processing in progress", T),
}

# TS 27.005 section 3.2.5.  0..127 are RP cause values (TS 24.011 annex E-2), 128..255 TP-FCS
# values (TS 23.040 9.2.3.22), 300..500 the ME/TA's own, 512.. manufacturer specific.
CMS = {
    1: ("unassigned (unallocated) number", P),
    8: ("operator determined barring", P),
    10: ("call barred", P),
    21: ("short message transfer rejected", P),    # the network refused this SM (often: no credit)
    27: ("destination out of service", T),
    28: ("unidentified subscriber", P),
    29: ("facility rejected", P),
    30: ("unknown subscriber", P),
    38: ("network out of order", T),
    41: ("temporary failure", T),
    42: ("congestion", T),
    47: ("resources unavailable, unspecified", T),
    50: ("requested facility not subscribed", P),
    69: ("requested facility not implemented", P),
    81: ("invalid short message transfer reference value", T),   # a protocol glitch, not the SM
    95: ("invalid message, unspecified", P),
    96: ("invalid mandatory information", P),
    97: ("message type non-existent or not implemented", P),
    98: ("message not compatible with short message protocol state", T),
    99: ("information element non-existent or not implemented", P),
    111: ("protocol error, unspecified", T),
    127: ("interworking, unspecified", T),
    128: ("telematic interworking not supported", P),
    129: ("short message type 0 not supported", P),
    130: ("cannot replace short message", P),
    143: ("unspecified TP-PID error", P),
    144: ("data coding scheme (alphabet) not supported", P),
    145: ("message class not supported", P),
    159: ("unspecified TP-DCS error", P),
    160: ("command cannot be actioned", P),
    161: ("command unsupported", P),
    175: ("unspecified TP-Command error", P),
    176: ("TPDU not supported", P),
    192: ("SC busy", T),
    193: ("no SC subscription", P),
    194: ("SC system failure", T),
    195: ("invalid SME address", P),               # the recipient number is malformed
    196: ("destination SME barred", P),
    # The SC already holds an SM with this reference from us: an earlier attempt that we thought
    # failed (a timeout) went through.  Sending again cannot help; the caller should treat it as sent.
    197: ("SM rejected-duplicate SM", P),
    198: ("TP-VPF not supported", P),
    199: ("TP-VP not supported", P),
    208: ("D0 SIM SMS storage full", T),
    209: ("no SMS storage capability in SIM", P),
    210: ("error in MS", T),
    211: ("memory capacity exceeded", T),
    212: ("SIM application toolkit busy", T),
    213: ("SIM data download error", T),
    255: ("unspecified error cause", T),
    300: ("ME failure", T),                        # the modem glitched; a retry usually works
    301: ("SMS service of ME reserved", T),
    # "not allowed" in the current state: modems say it while the SMS stack is still starting
    # (before "SMS Ready") or while unregistered.  A real misuse shows up as repeated attempts.
    302: ("operation not allowed", T),
    303: ("operation not supported", P),           # the modem never will
    304: ("invalid PDU mode parameter", P),        # our PDU or its length was refused: same again
    305: ("invalid text mode parameter", P),
    310: ("SIM not inserted", T),                  # SIM states: an operator can fix them; the
    311: ("SIM PIN required", T),                  # message itself is fine, keep it queued
    312: ("PH-SIM PIN required", T),
    313: ("SIM failure", T),
    314: ("SIM busy", T),
    315: ("SIM wrong", T),
    316: ("SIM PUK required", T),
    317: ("SIM PIN2 required", T),
    318: ("SIM PUK2 required", T),
    320: ("memory failure", T),
    321: ("invalid memory index", P),              # that slot is empty or out of range
    # Storage full.  For a read/write it clears once we delete what we have committed; some
    # modems also refuse AT+CMGS with it while the storage is full.  Either way the message is
    # fine and the condition goes away when the driver empties the storage: transient.
    322: ("memory full", T),
    # No SMSC: the SIM carries none and none was configured.  Every send fails until an operator
    # sets smsc=, but the messages are fine, so they stay queued (bounded by the attempt count)
    # rather than all failing at once.
    330: ("SMSC address unknown", T),
    331: ("no network service", T),
    332: ("network timeout", T),
    340: ("no +CNMA acknowledgement expected", P),  # the driver re-issues +CNMI instead
    # The classic "try again": real modems give 500 for a send that a second attempt delivers.
    500: ("unknown error", T),
    # 512 and up are manufacturer specific; the names below are the common Siemens/Cinterion,
    # Quectel and Wavecom/Sierra meanings (they disagree, hence both where they do).
    512: ("user abort / MM establishment failure (vendor)", T),   # radio setup failed: retry
    513: ("unable to store / lower layer failure (vendor)", T),
    514: ("invalid status / CP error (vendor)", T),
    515: ("device busy / init in progress (vendor)", T),           # the usual busy
    516: ("invalid length (vendor)", P),
    517: ("invalid character in PDU (vendor)", P),
    518: ("invalid parameter (vendor)", P),
    519: ("invalid length or character (vendor)", P),
    520: ("invalid character in text (vendor)", P),
    521: ("timer expired (vendor)", T),
    522: ("operation temporarily not allowed (vendor)", T),
    527: ("RR or MM busy, retry later (vendor)", T),
    528: ("location update failure, emergency calls only (vendor)", T),
    529: ("PLMN selection failure, emergency calls only (vendor)", T),
    531: ("destination not in FDN phonebook (vendor)", P),
    532: ("SIM not ready (vendor)", T),
    534: ("cell broadcast error unknown (vendor)", T),
    535: ("protocol stack busy (vendor)", T),                      # the other usual busy
    538: ("invalid parameter (vendor)", P),
}

# Final results that carry no code.  kind: (name, transient)
PLAIN = {
    # A bare ERROR says nothing; modems without AT+CMEE give it for everything, busy included.
    "ERROR": ("error", T),
    "COMMAND NOT SUPPORT": ("command not supported", P),   # Huawei's ERROR for unknown commands
    "TOO MANY PARAMETERS": ("too many parameters", P),
    "NO CARRIER": ("no carrier", T),
    "BUSY": ("busy", T),
    "NO ANSWER": ("no answer", T),
    "NO DIALTONE": ("no dialtone", T),
}


def _words(text):
    """The comparable form of an error's name: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _verbose_index(table, extra):
    index = {}
    for code, (name, _) in table.items():
        for part in name.split(" / "):
            index.setdefault(_words(part.replace("(vendor)", "")), code)
    for name, code in extra.items():
        index[_words(name)] = code
    return index


# Words real modems use with AT+CMEE=2 that differ from the spec's names.
_CME_WORDS = _verbose_index(CME, {
    "SIM not ready": 14, "SIM is busy": 14, "no SIM": 10, "SIM PIN necessary": 11,
    "incorrect PIN": 16, "wrong password": 16, "unknown error": 100, "invalid parameter": 50,
    "invalid parameters": 50, "not allowed": 3, "no network": 30,
})
_CMS_WORDS = _verbose_index(CMS, {
    "unknown": 500, "SIM busy": 314, "SIM not ready": 532, "invalid index": 321,
    "memory index invalid": 321, "invalid mem index": 321, "SMSC address unknown": 330,
    "SMS service center address unknown": 330, "network timeout": 332, "no network": 331,
    "invalid PDU mode": 304, "ME failure": 300, "unknown subscriber": 30,
})


def lookup(kind, text):
    """The code of an error given as ``+CME ERROR: <text>``: digits or, with CMEE=2, words.

    ``kind`` is "CME" or "CMS".  Returns None for words we do not know; never raises.
    """
    text = text.strip().strip('"').strip()
    if text.isdigit():
        return int(text)
    index = _CME_WORDS if kind == "CME" else _CMS_WORDS if kind == "CMS" else {}
    return index.get(_words(text))


def describe(kind, code=None):
    """``(name, transient)`` for a final result.

    ``kind`` is "CME", "CMS" or a plain result ("ERROR", "COMMAND NOT SUPPORT", ...).
    Unknown codes and kinds get a made-up name and count as transient (see the module docstring).
    """
    table = CME if kind == "CME" else CMS if kind == "CMS" else None
    if table is not None:
        if code in table:
            return table[code]
        if code is None:
            return ("unrecognised %s error" % kind, T)
        if kind == "CMS" and 512 <= code:
            return ("manufacturer specific error %d" % code, T)
        return ("%s error %d" % (kind, code), T)
    return PLAIN.get(kind, (kind.lower(), T))


class ModemError(Exception):
    """A command ended with an error final result.

    ``kind`` is "CME", "CMS", "ERROR", "COMMAND NOT SUPPORT", ...; ``code`` the number (None for
    plain results or words we could not map); ``name`` a readable name; ``transient`` whether the
    same request may succeed later (see the module docstring).  ``command`` and ``line`` say what
    was asked and what the modem said, for logs.
    """

    def __init__(self, kind, code=None, name=None, transient=None, *, command=None, line=None):
        known_name, known_transient = describe(kind, code)
        self.kind = kind
        self.code = code
        self.name = name if name is not None else known_name
        self.transient = transient if transient is not None else known_transient
        self.command = command
        self.line = line
        super().__init__(str(self))

    def __str__(self):
        if self.kind in ("CME", "CMS"):
            what = "+%s ERROR: %s (%s)" % (self.kind, "?" if self.code is None else self.code,
                                           self.name)
        else:
            what = self.kind
        if self.command:
            what += " after " + self.command
        return what

    def __reduce__(self):   # keep the attributes through pickling (multiprocessing, logging)
        return (_rebuild, (type(self), self.kind, self.code, self.name, self.transient,
                           self.command, self.line))


def _rebuild(cls, kind, code, name, transient, command, line):
    if cls in (CmeError, CmsError):
        return cls(code, name, transient, command=command, line=line)
    return cls(kind, code, name, transient, command=command, line=line)


class CmeError(ModemError):
    """``+CME ERROR: <n>``: an equipment (ME/SIM/network) error, TS 27.007 9.2."""

    def __init__(self, code=None, name=None, transient=None, *, command=None, line=None):
        super().__init__("CME", code, name, transient, command=command, line=line)


class CmsError(ModemError):
    """``+CMS ERROR: <n>``: a message service error, TS 27.005 3.2.5."""

    def __init__(self, code=None, name=None, transient=None, *, command=None, line=None):
        super().__init__("CMS", code, name, transient, command=command, line=line)


class ModemTimeout(Exception):
    """No final result arrived in time; the engine has abandoned the command."""


class ModemGone(Exception):
    """The port went away: a read or write failed, or the device was removed."""


def from_final(kind, code=None, *, command=None, line=None):
    """The exception for an error final result (used by ``at.Final.error``)."""
    if kind == "CME":
        return CmeError(code, command=command, line=line)
    if kind == "CMS":
        return CmsError(code, command=command, line=line)
    return ModemError(kind, code, command=command, line=line)

"""Reading and checking the ini file.

The bridge runs unattended for months, so a typo must stop it at start with a message that names
the section, the key and what is wrong, rather than be ignored and surface weeks later as lost SMS.
Hence the strictness: unknown sections and keys are errors, every value is type-checked, and a
listening address reachable from the network is refused unless a username and password guard it.

`load(path)` reads a file; `from_dict()` and `for_tests()` build the same frozen `Config` from plain
dicts, through the same checks, for tests and tools.
"""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import ipaddress
import os
import re
import urllib.parse
from dataclasses import dataclass, field

from gsmbridge.codec import address
from gsmbridge import safeurl
from gsmbridge.safeurl import mask_url

#: pyserial's URL handlers (serial.serial_for_url), plus our own sim:// for the simulated modem
SERIAL_URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep", "cp2110", "sim")

SECRET = "***"


class ConfigError(ValueError):
    """A config value is missing, unknown or wrong. str() reads "[section] key: what is wrong"."""

    def __init__(self, section, key, message):
        super().__init__(section, key, message)
        self.section = section
        self.key = key
        self.message = message

    def __str__(self):
        where = "[%s]" % self.section if self.section else ""
        if self.key:
            where = "%s %s" % (where, self.key) if where else self.key
        return "%s: %s" % (where, self.message) if where else self.message


# ---------------------------------------------------------------------------------------------
# The sections. Field order is the order check-config prints them in.


@dataclass(frozen=True)
class ModemConfig:
    port: str
    name: str = "modem"
    number: str | None = None
    baudrate: int = 115200
    pin: str | None = None
    smsc: str | None = None
    receive: str = "auto"
    sweep_interval: float = 60.0
    command_timeout: float = 10.0
    send_timeout: float = 90.0
    max_parts: int = 27
    status_reports: bool = False
    send_rate: float = 0.0
    reset_command: str | None = None
    watchdog_exit_after: int = 5
    # the pool: which recipients this modem takes first, its caps, its inbound receiver
    routes: tuple = ()
    daily_cap: int = 0
    hourly_cap: int = 0
    url: str | None = None
    # the SIM's services: USSD, the balance watch, calls; the simulated modem's options
    ussd_encoding: str = "auto"
    ussd_timeout: float = 30.0
    balance_code: str | None = None
    balance_pattern: str | None = None
    balance_every: float = 21600.0
    low_balance: float | None = None
    call_url: str | None = None
    simulate: str | None = None

    @property
    def simulated(self):
        """True when port is sim://: the bridge runs its own simulated modem."""
        return self.port.startswith("sim://")

    @property
    def simulator_options(self):
        """The simulated modem's options, from the sim:// query and `simulate`, as keyword
        arguments of simulator.runner.start_simulator ({} for a real modem)."""
        return sim_options(self.port, self.simulate) if self.simulated else {}


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:13013"
    username: str | None = None
    password: str | None = None
    max_body: int = 65536
    max_recipients: int = 1000
    #: where delivery-report callbacks may go besides public addresses and the receivers' origins
    callback_allow: tuple = ()
    # the HTTP server's limits (gsmbridge/httpserver.py says why each)
    max_header: int = 65536
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 15.0
    connections: int = 1000
    connections_per_client: int = 100
    #: names the bridge is reached by besides its listen address (a reverse proxy's), each
    #: "name" (any port) or "name:port", lowercased: the Host header check (web/guard.py)
    hosts: tuple = ()

    @property
    def host(self):
        return _split_host_port(self.listen)[0]

    @property
    def port(self):
        return _split_host_port(self.listen)[1]

    @property
    def auth_required(self):
        return bool(self.username and self.password)


@dataclass(frozen=True)
class RapidSMSConfig:
    url: str
    style: str = "kannel"
    identity_name: str = "identity"
    text_name: str = "text"
    timeout: float = 10.0
    retry_cap: float = 300.0


@dataclass(frozen=True)
class StoreConfig:
    path: str = "var/gsmbridge.sqlite3"
    # finished messages (delivered, sent) older than this many days are pruned; 0: never
    keep_days: float = 30.0
    # seconds between the running bridge's upkeep passes (pruning, statistics)
    upkeep_interval: float = 3600.0


@dataclass(frozen=True)
class BridgeConfig:
    resend_unconfirmed: bool = True
    reassembly_timeout: float = 3600.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "text"


SECTIONS = {
    "modem": ModemConfig,
    "http": HttpConfig,
    "rapidsms": RapidSMSConfig,
    "store": StoreConfig,
    "bridge": BridgeConfig,
    "log": LogConfig,
}

#: keys whose values never appear in check-config's output
SECRETS = {("modem", "pin"), ("http", "password")}
#: keys holding URLs, shown through mask_url (a query may carry a password)
URLS = {("modem", "url"), ("rapidsms", "url"), ("modem", "call_url")}


@dataclass(frozen=True)
class Config:
    modem: ModemConfig
    http: HttpConfig
    rapidsms: RapidSMSConfig
    store: StoreConfig
    bridge: BridgeConfig
    log: LogConfig
    #: the ini file this came from (None for from_dict)
    path: str | None = None
    #: things that are allowed but probably wrong; the CLI prints them
    warnings: tuple = field(default=())
    #: the pool's other modems, in the file's order ([modem:NAME] sections after the first)
    more_modems: tuple = field(default=())

    @property
    def modems(self):
        """{name: ModemConfig} for every modem the bridge drives, in the file's order; `modem`
        is the first."""
        result = {self.modem.name: self.modem}
        result.update((m.name, m) for m in self.more_modems)
        return result

    @property
    def modem_names(self):
        return tuple(self.modems)

    def masked(self):
        """{section: {key: value}} with secrets shown as "***": safe to print or log. A pool's
        modems come as "modem:NAME" sections; a lone modem as "modem"."""
        out = {}
        for section in SECTIONS:
            if section == "modem" and self.more_modems:
                for modem in self.modems.values():
                    out["modem:%s" % modem.name] = _masked_values("modem", modem)
            else:
                out[section] = _masked_values(section, getattr(self, section))
        return out


def _masked_values(section, values):
    values = dataclasses.asdict(values)
    for key, value in values.items():
        if (section, key) in SECRETS and value:
            values[key] = SECRET
        elif (section, key) in URLS and value:
            values[key] = mask_url(value)
        elif isinstance(value, tuple):
            values[key] = " ".join(value)
    return values


# ---------------------------------------------------------------------------------------------
# Value checks. Each takes the raw string and returns the typed value or raises ValueError with a
# message that reads well after "[section] key: ".


def _int(low=None, high=None):
    def check(raw):
        try:
            value = int(raw, 10)
        except ValueError:
            raise ValueError("%r is not a whole number" % raw) from None
        _in_range(value, low, high)
        return value
    return check


def _float(low=None, high=None, *, above=None):
    def check(raw):
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("%r is not a number" % raw) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("%r is not a finite number" % raw)
        if above is not None and value <= above:
            raise ValueError("%s must be more than %s" % (raw, _num(above)))
        _in_range(value, low, high)
        return value
    return check


def _num(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def _in_range(value, low, high):
    if low is not None and value < low:
        raise ValueError("%s is too small (at least %s)" % (_num(value), _num(low)))
    if high is not None and value > high:
        raise ValueError("%s is too large (at most %s)" % (_num(value), _num(high)))


_BOOLEANS = configparser.ConfigParser.BOOLEAN_STATES


def _bool(raw):
    try:
        return _BOOLEANS[raw.lower()]
    except KeyError:
        raise ValueError("%r is not yes/no (or true/false, on/off, 1/0)" % raw) from None


def _choice(*choices):
    def check(raw):
        value = raw.lower()
        if value not in choices:
            raise ValueError("%r is not one of %s" % (raw, ", ".join(choices)))
        return value
    return check


def _text(raw):
    return raw


def _name(raw):
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", raw):
        raise ValueError("%r must be 1 to 64 letters, digits, '_', '.' or '-'" % raw)
    return raw


def _param_name(raw):
    if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]{1,64}", raw):
        raise ValueError("%r is not a usable HTTP parameter name" % raw)
    return raw


def _pin(raw):
    if not re.fullmatch(r"[0-9]{4,8}", raw):
        # the value is a secret: never echo it back
        raise ValueError("a SIM PIN is 4 to 8 digits")
    return raw


def _phone_number(raw):
    if not address.is_phone_number(raw):
        raise ValueError("%r is not a phone number (%s)" % (raw, address.PHONE_NUMBER_WORDS))
    return raw


def _log_level(raw):
    value = raw.upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("%r is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL" % raw)
    return value


def _split_host_port(raw):
    """'127.0.0.1:13013' or '[::1]:13013' -> (host, port). ValueError when it is neither."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]+)|([^:\[\]\s]+):([0-9]+)", raw)
    if not match:
        raise ValueError("%r is not host:port (use [addr]:port for IPv6)" % raw)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ValueError("%r: port %d is beyond 65535" % (raw, port))
    return host, port


def _host_port(raw):
    _split_host_port(raw)
    return raw


#: one DNS label (RFC 1123): letters, digits and inner hyphens
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"


def _hosts(raw):
    """Host names, separated by spaces or commas: `sms.example.org gsm.lan:8080`. Each is a DNS
    name, an IPv4 address or an [IPv6] address, with an optional port; what a browser would put
    in the Host header, so no scheme, path or wildcard."""
    hosts = []
    for entry in (e for e in re.split(r"[\s,]+", raw.lower()) if e):
        match = re.fullmatch(r"(\[[0-9a-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?", entry)
        name = match and match.group(1)
        if name and name.startswith("["):
            try:
                address6 = ipaddress.IPv6Address(name[1:-1])
                name, ok = "[%s]" % address6.compressed, True   # as a browser writes it
            except ValueError:
                ok = False
        else:
            ok = bool(name and len(name) <= 253
                      and re.fullmatch(r"%s(\.%s)*" % (_LABEL, _LABEL), name))
        if ok and match.group(2) is not None and not 1 <= int(match.group(2)) <= 65535:
            ok = False
        if not ok:
            raise ValueError("%r is not a host name or host:port as a browser sends it in the "
                             "Host header (such as sms.example.org, sms.example.org:8443 or "
                             "[2001:db8::1]:13013; no scheme, path or wildcard)" % entry)
        hosts.append(name if match.group(2) is None else "%s:%d" % (name, int(match.group(2))))
    return tuple(dict.fromkeys(hosts))


def is_loopback(host):
    """True for 'localhost' and any loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serial_port(raw):
    """A device path, a COMn name, a pyserial URL (socket://, rfc2217://, loop://...), sim://, or
    imei:<IMEI>[@<glob>] (the serial port whose modem has that IMEI)."""
    if raw.startswith("/") or re.fullmatch(r"(?i)COM[0-9]+|\\\\\.\\COM[0-9]+", raw):
        return raw
    if raw.startswith("imei:"):
        match = re.fullmatch(r"imei:([0-9]{14,17})(?:@(\S+))?", raw)
        if not match:
            raise ValueError("%r: imei: takes the modem's IMEI (15 digits, as AT+CGSN gives it) "
                             "and optionally @ and the paths to try, e.g. "
                             "imei:356938035643809@/dev/ttyUSB*" % raw)
        if match.group(2) and not match.group(2).startswith("/"):
            raise ValueError("%r: the paths after @ are an absolute glob such as /dev/ttyUSB*"
                             % raw)
        return raw
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise ValueError("%r is not a device path (/dev/...), a pyserial URL (socket://, "
                         "rfc2217://, loop://), imei:<IMEI> or sim://" % raw)
    if scheme not in SERIAL_URL_SCHEMES:
        raise ValueError("%r: unknown scheme %s:// (known: %s)"
                         % (raw, scheme, ", ".join(s + "://" for s in SERIAL_URL_SCHEMES)))
    if scheme in ("socket", "rfc2217"):
        _split_host_port(urllib.parse.urlsplit(raw).netloc)
    if scheme == "sim":
        _sim_url(raw)
    return raw


def _sim_url(raw):
    """sim://[?name=value&...], the options of SIM_OPTIONS (control, baud, and the simulated
    SIM's). The control API has no authentication: loopback only."""
    parts = urllib.parse.urlsplit(raw)
    if parts.netloc or parts.path not in ("", "/"):
        raise ValueError("%r: sim:// takes only options after '?', such as ?control=host:port"
                         % raw)
    try:
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        query = None if parts.query else []
    if query is None:
        raise ValueError("%r: cannot read the query after sim://" % raw)
    _sim_values(query, raw, "sim://")


def _sim_values(pairs, raw, where):
    """[(name, value)] of simulator options -> {start_simulator keyword: typed value}."""
    out = {}
    for key, value in pairs:
        if key not in SIM_OPTIONS:
            raise ValueError("%r: unknown %s option %r (known: %s)"
                             % (raw, where, key, ", ".join(SIM_OPTIONS)))
        check, keyword = SIM_OPTIONS[key]
        try:
            out[keyword] = check(value)
        except ValueError as exc:
            raise ValueError("%r: %s: %s" % (raw, key, exc)) from None
    return out


def _simulate(raw):
    """`simulate`: the simulated modem's options as name=value pairs separated by spaces, e.g.
    `control=127.0.0.1:13014 ussd_style=packed balance=12.5`."""
    pairs = []
    for item in raw.split():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError("%r is not name=value (e.g. control=127.0.0.1:13014)" % item)
        pairs.append((name, value))
    _sim_values(pairs, raw, "simulate")
    return raw


def sim_options(port, simulate=None):
    """The simulated modem's options from a sim:// port and the `simulate` key, as keyword
    arguments of simulator.runner.start_simulator. ValueError for a bad or repeated option."""
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(port).query, keep_blank_values=True)
    options = _sim_values(query, port, "sim://")
    more = _sim_values([item.partition("=")[::2] for item in (simulate or "").split()],
                       simulate, "simulate")
    for keyword in set(options) & set(more):
        raise ValueError("%s is given both in port and in simulate" % keyword)
    options.update(more)
    return options


def _loopback_control(value):
    host, _ = _split_host_port(value)
    if not is_loopback(host):
        raise ValueError("the simulator's control API has no authentication; give it a "
                         "loopback address such as 127.0.0.1:13014")
    return value


def _digits(low, high):
    def check(raw):
        if not re.fullmatch(r"[0-9]{%d,%d}" % (low, high), raw):
            raise ValueError("%r is not %d to %d digits" % (raw, low, high))
        return raw
    return check


def _sim_number(raw):
    if not re.fullmatch(r"\+?[0-9]{3,20}", raw):
        raise ValueError("%r is not a phone number such as +255712345678" % raw)
    return raw


def _sim_word(raw):
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", raw):
        raise ValueError("%r is not a word of letters and digits" % raw)
    return raw


#: the simulated modem's options (sim://?name=value or `simulate = name=value ...`):
#: name -> (check, keyword of simulator.runner.start_simulator)
SIM_OPTIONS = {
    "control": (_loopback_control, "control"),
    "baud": (_int(1), "baudrate"),
    "pin": (_digits(4, 8), "pin"),
    "imei": (_digits(14, 16), "imei"),
    "imsi": (_digits(6, 15), "imsi"),
    "iccid": (_digits(18, 20), "iccid"),
    "own_number": (_sim_number, "own_number"),
    "manufacturer": (_sim_word, "manufacturer"),
    "model": (_sim_word, "model"),
    "ussd_style": (_choice("text", "ucs2", "packed"), "ussd_style"),
    "ussd_early": (_bool, "ussd_early"),
    "ussd_delay": (_float(0, 600), "ussd_delay"),
    "ussd_session_timeout": (_float(0, 3600), "ussd_session_timeout"),
    "balance": (_float(-1e11, 1e11), "balance"),
    "currency": (_sim_word, "currency"),
    "ring_interval": (_float(0.1, 60), "ring_interval"),
    "rings": (_int(1, 100), "rings"),
}


def _routes(raw):
    """Number prefixes, separated by spaces or commas: `+25576 +25577` or `0765, 0766`."""
    prefixes = [p for p in re.split(r"[\s,]+", raw) if p]
    for prefix in prefixes:
        if not re.fullmatch(r"\+?[0-9]{1,20}", prefix):
            raise ValueError("%r is not a number prefix (an optional + and 1 to 20 digits)"
                             % prefix)
    return tuple(dict.fromkeys(prefixes))


def _ussd_code(raw):
    """A USSD service code: what a phone's keypad can dial (*102#, *100*1#, #123#)."""
    if not re.fullmatch(r"[0-9*#+]{1,40}", raw) or not re.search(r"[*#]", raw):
        raise ValueError("%r is not a USSD code such as *102# (digits, * and #)" % raw)
    return raw


def _regex(raw):
    """A regular expression with at most one group (the amount); its syntax is checked now."""
    try:
        pattern = re.compile(raw)
    except re.error as exc:
        raise ValueError("%r is not a regular expression: %s" % (raw, exc)) from None
    if pattern.groups > 1:
        raise ValueError("%r has %d groups; give one, around the amount" % (raw, pattern.groups))
    return raw


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def _duration(low):
    """Seconds, or a number with a unit: 90, 30m, 6h, 1d."""
    def check(raw):
        match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(s|m|min|h|d)?", raw.strip().lower())
        if not match:
            raise ValueError("%r is not a duration such as 6h, 30m or 3600 (seconds)" % raw)
        value = float(match.group(1)) * _UNITS[match.group(2) or "s"]
        _in_range(value, low, None)
        return value
    return check


def _at_command(raw):
    if not re.fullmatch(r"(?i)AT[\x20-\x7e]{0,100}", raw):
        raise ValueError("%r is not an AT command (AT followed by printable characters, such as "
                         "AT+CFUN=1,1)" % raw)
    return raw


def _http_url(raw):
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:
        raise ValueError("%r is not a URL" % mask_url(raw)) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("%r is not an http:// or https:// URL" % mask_url(raw))
    try:
        parts.port
    except ValueError:
        raise ValueError("%r has a bad port" % mask_url(raw)) from None
    return raw


def _keep_days(raw):
    value = _float(0)(raw)
    if 0 < value < 1:
        raise ValueError("%s is too small: 0 (keep every message) or at least 1 (status reports "
                         "for a sent message come for days)" % raw)
    return value


def _callback_allow(raw):
    """Networks and host:port pairs, separated by spaces or commas: `10.0.0.0/8 127.0.0.1:8001`."""
    entries = tuple(dict.fromkeys(e for e in re.split(r"[\s,]+", raw) if e))
    safeurl.parse_allow(entries)
    return entries


def _store_path(raw):
    if raw == ":memory:" or raw.startswith("file:"):
        raise ValueError("%r: the store must be a file (several threads share it)" % raw)
    return raw


# (check, required). A key is optional when its dataclass field has a default; an empty value
# means "not set" for optional keys whose default is None, and is an error for the others.
CHECKS = {
    "modem": {
        "port": _serial_port,
        "name": _name,
        "number": _phone_number,
        "baudrate": _int(1),
        "pin": _pin,
        "smsc": _phone_number,
        "receive": _choice("auto", "cmt", "cmti", "poll"),
        "sweep_interval": _float(above=0),
        "command_timeout": _float(above=0),
        # 5 s lets tests run fast; real modems need 60 s or more (SIM800: AT+CMGS up to 60 s)
        "send_timeout": _float(5),
        "max_parts": _int(1, 255),
        "status_reports": _bool,
        "send_rate": _float(0),
        "reset_command": _at_command,
        "watchdog_exit_after": _int(0),
        "routes": _routes,
        "daily_cap": _int(0),
        "hourly_cap": _int(0),
        "url": _http_url,
        "ussd_encoding": _choice("auto", "text", "packed", "ucs2"),
        "ussd_timeout": _float(5, 120),
        "balance_code": _ussd_code,
        "balance_pattern": _regex,
        "balance_every": _duration(60),
        "low_balance": _float(),
        "call_url": _http_url,
        "simulate": _simulate,
    },
    "http": {
        "listen": _host_port,
        "username": _text,
        "password": _text,
        "max_body": _int(1024),
        "max_recipients": _int(1),
        "callback_allow": _callback_allow,
        "max_header": _int(1024, 1048576),
        # the server checks them once a second: less than a second would not be kept
        "header_timeout": _float(1, 3600),
        "body_timeout": _float(1, 3600),
        "idle_timeout": _float(1, 3600),
        "connections": _int(1, 100000),
        "connections_per_client": _int(0),
        "hosts": _hosts,
    },
    "rapidsms": {
        "url": _http_url,
        "style": _choice("kannel", "http", "json", "vumi", "httprouter", "rapidpro"),
        "identity_name": _param_name,
        "text_name": _param_name,
        "timeout": _float(above=0),
        "retry_cap": _float(above=0),
    },
    "store": {"path": _store_path, "keep_days": _keep_days,
              "upkeep_interval": _float(60)},
    "bridge": {
        "resend_unconfirmed": _bool,
        "reassembly_timeout": _float(above=0),
    },
    "log": {
        "level": _log_level,
        "format": _choice("text", "json"),
    },
}


# ---------------------------------------------------------------------------------------------
# Building a Config


def _suggest(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    return " (did you mean %r?)" % close[0] if close else ""


def _kind(section):
    """The section's kind: "modem" for [modem] and [modem:NAME], else its name."""
    kind, colon, _ = section.partition(":")
    return "modem" if colon and kind == "modem" else section


def _build(sections, base_dir, path=None):
    """sections: {section: {key: raw string}} -> Config. Raises ConfigError."""
    for section, values in sections.items():
        kind = _kind(section)
        if kind not in SECTIONS:
            raise ConfigError(section, None, "unknown section%s; known sections: %s"
                              % (_suggest(section, SECTIONS), ", ".join(SECTIONS)
                                 + ", modem:NAME"))
        if kind != section:
            try:
                _name(section.partition(":")[2])
            except ValueError as exc:
                raise ConfigError(section, None, "the modem's name %s" % exc) from None
        for key in values:
            if key not in CHECKS[kind]:
                raise ConfigError(section, key, "unknown key%s; known keys: %s"
                                  % (_suggest(key, CHECKS[kind]), ", ".join(CHECKS[kind])))

    built = {section: _build_section(section, sections.get(section, {}))
             for section in SECTIONS if section != "modem"}

    http = built["http"]
    if bool(http.get("username")) != bool(http.get("password")):
        missing = "password" if http.get("username") else "username"
        other = "username" if missing == "password" else "password"
        raise ConfigError("http", missing, "%s is set but %s is not; set both or neither"
                          % (other, missing))
    connections = http.get("connections", HttpConfig.connections)
    per_client = http.setdefault("connections_per_client",
                                 min(HttpConfig.connections_per_client, connections))
    if per_client > connections:
        raise ConfigError("http", "connections_per_client", "%d is more than connections (%d); "
                          "use 0 for no cap per client address" % (per_client, connections))
    listen = http.get("listen", HttpConfig.listen)
    host, _ = _split_host_port(listen)
    if not is_loopback(host) and not http.get("username"):
        raise ConfigError("http", "listen", "%r is not loopback and no username/password is set"
                          % listen)

    store_path = built["store"].get("path", StoreConfig.path)
    store_path = os.path.expanduser(store_path)
    built["store"]["path"] = os.path.normpath(os.path.join(base_dir, store_path))

    warnings = []
    style = built["rapidsms"].get("style", RapidSMSConfig.style)
    _check_slash("rapidsms", built["rapidsms"]["url"], style, warnings)

    modems = _build_modems(sections, style, warnings)
    built = {name: SECTIONS[name](**kwargs) for name, kwargs in built.items()}
    return Config(modem=modems[0], **built, path=path, warnings=tuple(warnings),
                  more_modems=tuple(modems[1:]))


def _build_section(section, values):
    """One section's {key: raw} -> {key: typed value}, defaults left out."""
    cls = SECTIONS[_kind(section)]
    checks = CHECKS[_kind(section)]
    kwargs = {}
    for fld in dataclasses.fields(cls):
        raw = values.get(fld.name)
        raw = raw.strip() if raw is not None else None
        required = fld.default is dataclasses.MISSING
        if raw is None or raw == "":
            if required:
                raise ConfigError(section, fld.name, "is required")
            if fld.default is None or raw is None:
                continue
            raise ConfigError(section, fld.name, "is empty; remove the line to get the "
                              "default (%s)" % _show_default(fld.default))
        try:
            kwargs[fld.name] = checks[fld.name](raw)
        except ValueError as exc:
            message = str(exc)
            if re.search(r"\s[;#]", raw) and (_kind(section), fld.name) not in SECRETS:
                message += " (comments must be on a line of their own)"
            raise ConfigError(section, fld.name, message) from None
    return kwargs


#: the path of a receive URL of RapidPro's courier for a Kannel channel (TextIt's included)
COURIER_RECEIVE = re.compile(r"/c/kn/[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
                             r"/receive/?")


def _check_slash(section, url, style, warnings):
    """Warnings for a receiver URL that its style's receiver will not take as it is."""
    path = urllib.parse.urlsplit(url).path
    if style == "rapidpro":
        # courier routes /c/kn/<channel uuid>/receive with or without a trailing slash
        if not COURIER_RECEIVE.search(path):
            warnings.append("[%s] url: %r is not a RapidPro receive URL; courier's Kannel "
                            "channel receives at https://<host>/c/kn/<channel uuid>/receive"
                            % (section, mask_url(url)))
        return
    # httprouter's /router/receive matches with or without a slash; the backend views need one
    if style != "httprouter" and not path.endswith("/"):
        warnings.append("[%s] url: %r does not end with '/'; RapidSMS's backend views "
                        "need the trailing slash (Django answers a redirect or 404 without it)"
                        % (section, mask_url(url)))


def _build_modems(sections, style, warnings):
    """The pool, in the file's order: [modem] (named by its name key) and [modem:NAME]
    sections. Two modems may not share a name, a number (a sendsms `from` naming it pins a
    message to its modem), a serial port or a simulator's control address, and all must take
    the same longest message (max_parts: the HTTP API checks against it)."""
    names = [s for s in sections if _kind(s) == "modem"] or ["modem"]
    modems, seen_names, seen_ports, seen_numbers = [], {}, {}, {}
    for section in names:
        kwargs = _build_section(section, sections.get(section, {}))
        if section != "modem":
            name = section.partition(":")[2]
            if kwargs.get("name", name) != name:
                raise ConfigError(section, "name", "is %r but the section is named %r; leave "
                                  "name out of [modem:NAME] sections" % (kwargs["name"], name))
            kwargs["name"] = name
        modem = ModemConfig(**kwargs)
        other = seen_names.setdefault(modem.name.lower(), section)
        if other != section:
            raise ConfigError(section, "name" if section == "modem" else None,
                              "the modem name %r is [%s]'s too; every modem needs its own "
                              "(it is the smsc name in sendsms)" % (modem.name, other))
        if modem.number:
            other = seen_numbers.setdefault(re.sub(r"^(\+|00)", "", modem.number), section)
            if other != section:
                raise ConfigError(section, "number", "%r is [%s]'s too: every SIM has its own "
                                  "number" % (modem.number, other))
        try:
            identities = _port_identities(modem.port, modem.simulate)
        except ValueError as exc:
            raise ConfigError(section, "simulate", str(exc)) from None
        for port in identities:
            other = seen_ports.setdefault(port, section)
            if other != section:
                raise ConfigError(section, "port", "%r is [%s]'s too: one serial port (or "
                                  "simulator control address) per modem" % (modem.port, other))
        if modems and modem.max_parts != modems[0].max_parts:
            raise ConfigError(section, "max_parts", "is %d but [%s] has %d: every modem of a "
                              "pool takes the same longest message (the HTTP API refuses longer "
                              "ones), so set it alike in every modem section"
                              % (modem.max_parts, names[0], modems[0].max_parts))
        if modem.send_timeout < 60 and not modem.simulated:
            warnings.append("[%s] send_timeout: %g s is shorter than a real modem may take to "
                            "send (up to 60 s): a message it sent late would count as failed "
                            "and go again" % (section, modem.send_timeout))
        if modem.url:
            _check_slash(section, modem.url, style, warnings)
        if modem.simulate and not modem.simulated:
            raise ConfigError(section, "simulate", "is for the simulated modem (port = sim://); "
                              "remove it for a real one")
        if modem.simulated:
            try:
                sim_options(modem.port, modem.simulate)
            except ValueError as exc:
                raise ConfigError(section, "simulate", str(exc)) from None
        if modem.low_balance is not None and not modem.balance_code:
            warnings.append("[%s] low_balance: set without balance_code, so the balance is "
                            "never checked" % section)
        modems.append(modem)
    return modems


def _port_identities(port, simulate=None):
    """What two modems may not share: a device (symlinks resolved), an IMEI, or a simulator's
    control address (a sim:// without one gets a link of its own)."""
    if port.startswith("sim://"):
        control = sim_options(port, simulate).get("control")
        if control and not control.endswith(":0"):
            return ["sim-control:" + control]
        return []
    if port.startswith("imei:"):
        return ["imei:" + port[5:].partition("@")[0]]
    if port.startswith("/"):
        return [os.path.realpath(port)]
    if port == "loop://":
        return []
    return [port]


def _show_default(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return " ".join(value) or "none"
    return _num(value)


def load(path):
    """Read and check the ini file at path. Relative paths in it are relative to its directory."""
    parser = configparser.ConfigParser(
        interpolation=None,             # a '%' in a password is just a '%'
        default_section="\0none",       # a [DEFAULT] section is a typo like any other
        strict=True,                    # duplicate sections and keys are errors
        empty_lines_in_values=False,
    )
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh, source=path)
    except FileNotFoundError:
        raise ConfigError(None, None, "no such file") from None
    except OSError as exc:
        raise ConfigError(None, None, "cannot read: %s" % (exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(None, None, "not UTF-8 text (byte %d)" % exc.start) from None
    except configparser.DuplicateOptionError as exc:
        raise ConfigError(exc.section, exc.option, "given twice (line %s)" % exc.lineno) from None
    except configparser.DuplicateSectionError as exc:
        raise ConfigError(exc.section, None, "section given twice (line %s)" % exc.lineno) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(None, None, "line %d: a key before any [section]" % exc.lineno) from None
    except configparser.Error as exc:
        raise ConfigError(None, None, "cannot parse: %s" % exc.message.replace("\n", " ")) from None
    sections = {name: dict(parser.items(name, raw=True)) for name in parser.sections()}
    base_dir = os.path.dirname(os.path.abspath(path))
    return _build(sections, base_dir, path=os.path.abspath(path))


def _as_raw(value):
    """A dict value as the string the ini file would hold (None: not set)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def from_dict(data, *, base_dir=None):
    """{section: {key: value}} -> Config, through the same checks as load().

    Values may be strings, as in the ini file, or ints/floats/bools; None leaves a key unset.
    A relative store path is taken relative to base_dir (default: the current directory).
    """
    sections = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(section, None, "must be a dict of keys")
        sections[section] = {str(k): _as_raw(v) for k, v in values.items()
                             if _as_raw(v) is not None}
    return _build(sections, os.path.abspath(base_dir or os.getcwd()))


def for_tests(base_dir=None, **sections):
    """A valid Config for tests: the simulated modem, RapidSMS on 127.0.0.1:8000, the store under
    base_dir; keyword arguments override whole keys per section, e.g. http={"username": "u"}."""
    data = {
        "modem": {"port": "sim://"},
        "rapidsms": {"url": "http://127.0.0.1:8000/backend/kannel-backend/"},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return from_dict(data, base_dir=base_dir)

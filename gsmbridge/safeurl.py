"""Where the bridge may send a request a caller asked for, and sending it only there.

A caller's dlr-url is a URL the bridge GETs on that caller's behalf. Left alone, that makes the
bridge a proxy into the network it sits in: a router's admin page on 192.168.1.1, a metrics
endpoint on 127.0.0.1, a cloud's metadata service on 169.254.169.254. So a callback goes only to
public addresses, and besides them to:

- the origins (scheme, host and port, as written) of ``[rapidsms] url`` and of each modem's
  ``url``: RapidSMS's own delivery-report view sits next to its backend view, often on loopback;
- what ``[http] callback_allow`` lists: networks (``10.0.0.0/8``, ``127.0.0.1``) and host:port
  pairs (``127.0.0.1:8001``, ``[::1]:8001``, ``dlr.internal:8080``).

"Not public" is wide on purpose: loopback, private, link-local, CGNAT (100.64/10), multicast,
reserved and unspecified addresses, and the IPv6 forms that carry an IPv4 address inside
(IPv4-mapped, 6to4, Teredo, NAT64), which a translator on the path turns back into 127.0.0.1.

Why the URL is checked twice. `CallbackGuard.check` looks at it once the escapes are filled in:
it refuses early, with a clear reason, before anything is opened. But the name is resolved again
when the connection is made, and the answer may have changed in between: a DNS server the caller
runs can give a public address to the check and 127.0.0.1 to the connect a moment later (DNS
rebinding, with a TTL of 0). So the check that counts is the one at connect time: the
connections of `GuardedAdapter` (gsmbridge/guardedhttp.py, the requests side of this, kept
apart so that only a bridge making callbacks loads requests) resolve the name themselves, check every address, connect to
exactly an address they checked, and check the socket's peer once connected. The Host header,
TLS's SNI and the certificate check still use the name from the URL. Proxies from the
environment are not used (a proxy would resolve the name on its own).

An answer is bounded in time as a whole: inside `deadline(seconds)`, every socket operation of a
guarded connection (connect, send, each read of the status line, headers and body) gets at most
the time left, so an answer dripped a byte at a time ends on time, which requests' own timeout
(per read) cannot do. How much of the body is read is up to the caller (a few KB at most: see
gsmbridge/delivery.py).
"""

import contextlib
import ipaddress
import re
import socket
import threading
import time
import urllib.parse


#: a URL inside any text (up to a space, a quote or an angle bracket)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_USERINFO = re.compile(r"^([^:]+://)[^/?#]*@")
_QUERY_ITEM = re.compile(r"([^&;=]*)(=?)[^&;]*")


def _mask_one(url):
    url = _USERINFO.sub(r"\1***@", url)
    base, question, rest = url.partition("?")
    if not question:
        return url
    query, hashmark, fragment = rest.partition("#")
    query = _QUERY_ITEM.sub(lambda m: m.group(1) + "=***" if m.group(2) else
                            ("***" if m.group(1) else ""), query)
    return base + "?" + query + hashmark + fragment


def mask_url(text):
    """Every URL in text with its user info and its query string's values hidden:
    ``https://u:p@host/r/?password=x&id=7`` -> ``https://***@host/r/?password=***&id=***``.

    The one masking function: whatever logs or prints a URL goes through it (the query of
    [rapidsms] url may hold httprouter's password; a dlr-url's, a phone number)."""
    return _URL.sub(lambda m: _mask_one(m.group(0)), str(text))


__all__ = ["REFUSED", "Refused", "CallbackGuard", "GuardedAdapter", "guarded_session",
           "check_syntax", "is_public", "parse_allow", "deadline"]

#: the reason kept for a callback refused because of where it goes
REFUSED = "refused: resolves to a private address"

DEFAULT_PORTS = {"http": 80, "https": 443}

#: IPv4 ranges Python's is_global lets through but a callback must not reach
_IPV4_NOT_PUBLIC = (ipaddress.ip_network("100.64.0.0/10"),)   # CGNAT: the ISP's side of a NAT
#: NAT64 prefixes: a translator turns 64:ff9b::7f00:1 into 127.0.0.1
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Refused(Exception):
    """A request to an address that is not allowed. Deliberately not an OSError nor a requests
    exception: neither urllib3 nor requests retries or wraps it, so it reaches the caller as it
    is, with nothing sent."""

    def __init__(self, address):
        super().__init__("%s (%s)" % (REFUSED, address))
        self.address = address


# -- what is public --------------------------------------------------------------------------


def is_public(address):
    """True when an address (str or ipaddress object) is one of the internet's: not loopback,
    private, link-local, CGNAT, multicast, reserved or unspecified, and no IPv6 wrapping of an
    IPv4 address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip.version == 6:
        if ip.ipv4_mapped or ip.sixtofour or ip.teredo or any(ip in net for net in _NAT64):
            return False
    elif any(ip in net for net in _IPV4_NOT_PUBLIC):
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


# -- the URL itself ----------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_syntax(url):
    """(scheme, host, port) of an http(s) URL a request can be made to; ValueError with a
    reason that reads well after "dlr-url field misformed: " otherwise.

    Works on a dlr-url template too: an escape such as %d is just text here."""
    if _CONTROL.search(url):
        raise ValueError("a URL has no control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("not a URL (a bad host or port)") from None
    if " " in parts.netloc:
        raise ValueError("a host has no spaces")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("an http:// or https:// URL is needed")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if port == 0:
        raise ValueError("port 0 cannot be called")
    return scheme, _host_key(parts.hostname), port or DEFAULT_PORTS[scheme]


def origin_of(url):
    """(scheme, host, port) of a URL, the port made explicit: what an allowed origin is."""
    return check_syntax(url)


def _host_key(host):
    """A host as compared: lower case, no trailing dot, an IP address in its short form."""
    host = host.lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


# -- [http] callback_allow ---------------------------------------------------------------------

_HOST_PORT = re.compile(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([A-Za-z0-9.\-]+):([0-9]{1,5})")


def parse_allow(entries):
    """Entries of [http] callback_allow -> (networks, endpoints).

    An entry is a network (``10.0.0.0/8``; a lone address is a network of one) or a host:port
    (``127.0.0.1:8001``, ``[::1]:8001``, ``dlr.internal:8080``: that port only; a name matches
    a URL that names the host so). ValueError names the first entry that is neither."""
    networks, endpoints = [], set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=True))
            continue
        except ValueError as exc:
            if re.fullmatch(r"[0-9A-Fa-f:.]+/[0-9]+", entry):
                raise ValueError("%r is not a network (%s)" % (entry, exc)) from None
        match = _HOST_PORT.fullmatch(entry)
        if not match:
            raise ValueError("%r is neither a network (10.0.0.0/8, 127.0.0.1) nor host:port "
                             "(127.0.0.1:8001, [::1]:8001, dlr.internal:8080)" % entry)
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if not 0 < port <= 65535:
            raise ValueError("%r: port %d is not 1 to 65535" % (entry, port))
        if match.group(1):
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError("%r: %s is not an IPv6 address" % (entry, host)) from None
        endpoints.add((_host_key(host), port))
    return tuple(networks), frozenset(endpoints)


# -- the guard ---------------------------------------------------------------------------------


def resolve(host, port):
    """[(family, sockaddr)] for a TCP connection to host:port, as the system resolves it."""
    return [(family, sockaddr) for family, _, _, _, sockaddr
            in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class CallbackGuard:
    """Which callback URLs may be fetched: public addresses, the allowed origins, and what
    callback_allow lists. `resolve` is the name lookup, replaceable in a unit test."""

    def __init__(self, origins=(), allow=(), resolve=resolve):
        self.origins = frozenset(origin_of(url) for url in origins if url)
        self.networks, self.endpoints = parse_allow(allow)
        self.resolve = resolve

    def permits(self, scheme, host, port, address):
        """May a connection for scheme://host:port go to this address?"""
        host = _host_key(host)
        if (scheme, host, port) in self.origins:
            return True
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if is_public(ip) or any(ip in net for net in self.networks):
            return True
        return (str(ip), port) in self.endpoints or (host, port) in self.endpoints

    def addresses(self, scheme, host, port):
        """Resolve host and check every address: [(family, sockaddr)] to connect to, all of
        them allowed. Refused when any is not (a name that answers with both a public and a
        private address is up to something); socket.gaierror when the name does not resolve."""
        try:
            ip = ipaddress.ip_address(host)     # an address as the URL wrote it: no lookup
            found = [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, (str(ip), port))]
        except ValueError:
            found = self.resolve(host.rstrip("."), port)
        for _, sockaddr in found:
            if not self.permits(scheme, host, port, sockaddr[0]):
                raise Refused(sockaddr[0])
        return found

    def check(self, url):
        """Refused when url goes where a callback may not; ValueError when it is no usable
        http(s) URL. A name that does not resolve passes: the connection will fail on its own
        and be retried like any unreachable receiver. (The lookup is the system's: a deadline
        does not shorten it.)"""
        scheme, host, port = check_syntax(url)
        if (scheme, host, port) in self.origins:
            return
        try:
            self.addresses(scheme, host, port)
        except OSError:
            pass


# -- one deadline for a whole exchange ----------------------------------------------------------

_local = threading.local()


@contextlib.contextmanager
def deadline(seconds):
    """Within the block, the guarded connections of this thread finish every socket operation
    by `seconds` from now, or raise socket.timeout."""
    previous = getattr(_local, "until", None)
    _local.until = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.until = previous


def time_left():
    until = getattr(_local, "until", None)
    if until is None:
        return None
    left = until - time.monotonic()
    if left <= 0:
        raise socket.timeout("the deadline for the whole answer has passed")
    return left

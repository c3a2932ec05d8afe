"""The requests side of gsmbridge/safeurl.py: a requests session whose connections go only where
a `safeurl.CallbackGuard` allows, each socket operation cut at the thread's `safeurl.deadline`.

Kept apart from safeurl (whose checks config and the web side use) so that requests and urllib3
are loaded only by a bridge that has a delivery-report callback to make. Why each check is made
where it is: safeurl's docstring.
"""

import socket
import ssl
import sys

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from gsmbridge.safeurl import Refused, time_left

__all__ = ["GuardedAdapter", "guarded_session"]


class _Bounded:
    """A socket whose every operation is cut at the thread's deadline (if one is set), on top of
    the per-operation timeout urllib3 asks for."""

    _wanted = None      # the per-operation timeout urllib3 set

    def settimeout(self, value):
        self._wanted = value
        super().settimeout(value)

    def _arm(self):
        left, wanted = time_left(), self._wanted
        if left is not None and (wanted is None or left < wanted):
            wanted = left
        socket.socket.settimeout(self, wanted)

    def connect(self, address):
        self._arm()
        return super().connect(address)

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def send(self, *args, **kwargs):
        self._arm()
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self._arm()
        return super().sendall(*args, **kwargs)


class _BoundedSocket(_Bounded, socket.socket):
    pass


class _BoundedTLSSocket(_Bounded, ssl.SSLSocket):
    pass


def _bounded_tls(sock):
    """The TLS socket urllib3 made around a _BoundedSocket, made _Bounded itself: the same
    object (a subclass adding no slots, so its class can be swapped), its reads cut at the
    deadline too. The handshake before it was bounded by the time left when it began."""
    if isinstance(sock, ssl.SSLSocket) and not isinstance(sock, _Bounded):
        wanted = sock.gettimeout()
        sock.__class__ = _BoundedTLSSocket
        sock._wanted = wanted
    return sock


# -- connections that connect only where the guard allows ---------------------------------------


class _GuardedConnection:
    """urllib3 connection behaviour: resolve, check, connect to exactly the address checked."""

    guard = None        # set on the classes GuardedAdapter makes
    scheme_name = "http"

    def _new_conn(self):
        host, port = self.host, self.port
        try:
            candidates = self.guard.addresses(self.scheme_name, host, port)
        except socket.gaierror as exc:
            raise NameResolutionError(host, self, exc) from exc
        timeout = self.timeout if isinstance(self.timeout, (int, float)) else None
        error = None
        for family, sockaddr in candidates:
            sock = _BoundedSocket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                peer = sock.getpeername()[0]
                if not self.guard.permits(self.scheme_name, host, port, peer):
                    raise Refused(peer)
                sys.audit("http.client.connect", self, host, port)
                return sock
            except Refused:
                sock.close()
                raise
            except socket.timeout as exc:
                sock.close()
                raise ConnectTimeoutError(self, "Connection to %s timed out" % host) from exc
            except OSError as exc:
                sock.close()
                error = exc
        raise NewConnectionError(self, "Failed to establish a new connection: %s" % error)


class _GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    scheme_name = "https"

    def connect(self):
        super().connect()
        self.sock = _bounded_tls(self.sock)


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections go only where `guard` allows, within `deadline`s.
    Mount it for both http:// and https:// (`guarded_session` does)."""

    def __init__(self, guard, **kwargs):
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        guard = self.guard
        http = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), {"guard": guard})
        https = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"guard": guard})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }

    def proxy_manager_for(self, proxy, **kwargs):
        raise requests.exceptions.InvalidURL("callbacks do not go through a proxy")


def guarded_session(guard, session=None):
    """A requests session (or `session`, changed) whose requests go only where guard allows,
    never through a proxy from the environment."""
    session = session or requests.Session()
    session.trust_env = False
    session.proxies = {}
    adapter = GuardedAdapter(guard)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session

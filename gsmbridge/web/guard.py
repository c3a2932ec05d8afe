"""What a web page must not make the operator's browser do to the bridge.

The bridge's callers are servers (RapidSMS's backends, courier, curl) and the operator's browser
(the status page). A page on any other site can make that browser send requests too: a form that
posts, an <img> that GETs, with the basic-auth credentials the browser has cached for the bridge,
and, through DNS rebinding, a page that reads the answers of a bridge that has no credentials at
all. create_app runs check_request before every view, so no endpoint, present or future, can
leave these out:

- **Host**, on every request, when no credentials are configured (the bridge then listens on
  loopback only, as gsmbridge.config insists): the Host header must name the bridge, that is
  its listen address, `localhost`, `127.0.0.1` or `[::1]` with the port it listens on, or a name
  in `[http] hosts`. A rebinding page's requests carry its own name (`evil.example:13013`), so
  they are answered 421 and it reads nothing. With credentials, a rebinding page gets a 401
  and a password prompt for its own name, and does not know the password: the check is not
  needed then, and applies only when `[http] hosts` is given (the operator asked for it).
- **Cross-site requests**, on every request that queues an SMS or changes state (any method
  but GET, HEAD and OPTIONS, and the views marked with changes_state, such as Kannel's sendsms,
  which sends on GET): refused 403 when the browser says the request comes from another site.
  `Sec-Fetch-Site` (set by the browser, never by the page) must be `same-origin` or `none`;
  `Origin` must be the bridge's own (http or https with the Host the request was sent to, or a
  name in `[http] hosts`), or `null` with `Sec-Fetch-Site: same-origin`, which is how Chromium
  labels a form posted from one of the bridge's pages when it says `Referrer-Policy: no-referrer`
  (as the status page does; its fetch() calls carry the real Origin).
  Servers send neither header, so RapidSMS, courier and curl are not affected.

The third check, that a JSON body is labelled application/json (an HTML form cannot send that
without a CORS preflight the bridge never grants), is checks.json_request_body, the one way a
view reads a JSON body.
"""

import re
import urllib.parse

from flask import current_app, request

from gsmbridge.config import is_loopback
from gsmbridge.web.checks import Refused, log, served

#: methods that change nothing (RFC 9110 9.2.1); any other is checked as if it sent an SMS
SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
#: Sec-Fetch-Site values of a request the operator made on the bridge's own page, or typed in
SAME_SITE_FETCHES = frozenset(("same-origin", "none"))
#: listen addresses reached through loopback as well
UNSPECIFIED = frozenset(("0.0.0.0", "::"))
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

#: Host (or an Origin's host): a name or an [IPv6 address], and an optional port
HOST = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]/@\s]+)(?::([0-9]{1,5}))?")

#: how much of a caller's header goes into an answer or a log line
SHOWN = 80


def changes_state(view):
    """Mark a view that queues an SMS or changes state even when called with GET, so that its
    GETs are checked for cross-site origins too. Views taking POST (or PUT, DELETE...) are
    checked whether marked or not."""
    view.changes_state = True
    return view


def check_request():
    """create_app's before_request: the Host check, then the cross-site check; Refused on
    failure, before any view runs or any body is read."""
    config = served().config
    check_host(config)
    view = current_app.view_functions.get(request.endpoint)
    if request.method not in SAFE_METHODS or getattr(view, "changes_state", False):
        check_same_origin(config)


# ---------------------------------------------------------------------------------------------
# Host


def host_check_applies(config):
    """Without credentials, always; with them, only when [http] hosts is given (see above)."""
    return not config.http.auth_required or bool(config.http.hosts)


def check_host(config):
    if not host_check_applies(config):
        return
    host = request.environ.get("HTTP_HOST")
    if host is None:
        return  # every browser sends Host: a request without one is not a browser's
    if is_own_host(host, config, listening_port(config)):
        return
    log.warning("refused %s %s for Host %r from %s: not a name of this bridge", request.method,
                request.path[:SHOWN], host[:SHOWN], request.remote_addr)
    raise Refused(421, "Host %r is not a name of this bridge, refused: it answers to its listen "
                       "address, localhost and the names in [http] hosts (a web page on another "
                       "site may be reaching it through DNS rebinding)" % host[:SHOWN])


def listening_port(config):
    """The port the request came in on: the server's SERVER_PORT (waitress gives the bound
    socket's, which is [http] listen's unless that says port 0), else listen's."""
    try:
        return int(request.environ["SERVER_PORT"])
    except (KeyError, ValueError):
        return config.http.port


def split_host(value, default_port=None):
    """'Name:port' -> ('name', port); a missing port is default_port; None when misformed."""
    match = HOST.fullmatch(value.strip().lower())
    if not match:
        return None
    port = int(match.group(2)) if match.group(2) else default_port
    return match.group(1), port


def own_names(config, port):
    """{(name, port)} the bridge answers to by its listen address; port None: any port."""
    listen = config.http.host.lower()
    names = {"[%s]" % listen if ":" in listen else listen}
    if is_loopback(listen) or listen in UNSPECIFIED:
        names.update(LOOPBACK_NAMES)
    pairs = {(name, port) for name in names}
    pairs.update(split_host(entry) for entry in config.http.hosts)  # "name": (name, None)
    return pairs


def is_own_host(host, config, port):
    """Whether a Host header names this bridge: a name without a port means port 80 (the bridge
    speaks plain HTTP; behind a TLS proxy the proxy's name is in [http] hosts)."""
    parsed = split_host(host, default_port=80)
    if parsed is None:
        return False
    names = own_names(config, port)
    return parsed in names or (parsed[0], None) in names


# ---------------------------------------------------------------------------------------------
# Cross-site requests


def check_same_origin(config):
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site is not None and site.strip().lower() not in SAME_SITE_FETCHES:
        refuse_cross_site("the browser says it comes from another site (Sec-Fetch-Site: %s)"
                          % site.strip()[:SHOWN])
    if origin is None:
        return  # a server, or a browser too old to say: nothing to go on
    if origin.strip() == "null" and site is not None and site.strip().lower() == "same-origin":
        return
    if not is_own_origin(origin, config):
        refuse_cross_site("it comes from a page on %r (Origin), not from this bridge's own"
                          % origin[:SHOWN])


def is_own_origin(origin, config):
    """Whether an Origin header is the bridge's own: http or https, and the Host the request
    was sent to or a name in [http] hosts (a proxy that rewrites Host)."""
    parts = urllib.parse.urlsplit(origin.strip().lower())
    if parts.scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return False
    host = request.environ.get("HTTP_HOST")
    if host is not None and parts.netloc == host.strip().lower():
        return True
    parsed = split_host(parts.netloc, default_port=443 if parts.scheme == "https" else 80)
    if parsed is None:
        return False
    for entry in config.http.hosts:
        name, port = split_host(entry)
        if parsed[0] == name and port in (None, parsed[1]):
            return True
    return False


def refuse_cross_site(why):
    log.warning("refused a cross-site %s %s from %s: %s", request.method, request.path[:SHOWN],
                request.remote_addr, why)
    raise Refused(403, "Cross-site request refused: %s; a web page may not make a browser "
                       "send SMS or change anything here. (Servers calling the bridge send "
                       "neither Origin nor Sec-Fetch-Site.)" % why)

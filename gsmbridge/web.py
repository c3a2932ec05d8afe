"""The HTTP API: Kannel's /cgi-bin/sendsms, a JSON API, and the operators' view (the status page
at /, /status, /health, /metrics), described by the OpenAPI document at /openapi.json.

The views are thin on purpose: they check the request, commit the message to the store and answer.
They never touch the modem; its worker picks the message up from the store. A 202 therefore means
"committed to disk", which matters because RapidSMS's KannelBackend ignores our answer and never
retries: whatever we accept must not be lost, and whatever we cannot take must be refused loudly.

Bad input of any kind gets a 4xx with a plain reason, never a 500 or a traceback. The query string
and form body are parsed here from their raw bytes, because the text must be decoded in the charset
the caller names, and because a literal '+' in `to` may be a separator or an international prefix.
Credentials and query strings are never logged; every log line about a message starts with
id=<its id>, so one grep finds a message's whole story in the bridge's log.
"""

import codecs
import hmac
import json
import logging
import re
import socket
import time
import urllib.parse

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException

from gsmbridge import metrics, openapi, overview, safeurl, statuspage
from gsmbridge.codec import pdu
from gsmbridge.store import INBOUND_STATUSES, OUTBOUND_STATUSES

log = logging.getLogger("gsmbridge.web")

ACCEPTED = "0: Accepted for delivery"
AUTH_FAILED = "Authorization failed for sendsms"
NOT_ROUTABLE = "Not routable. Do not try again."
TEMPORARY = "Temporal failure, try again later."
UNKNOWN = "Unknown request."

#: a modem that has not reported for this long counts as stuck for /health (the worker reports
#: every 30 s while idle, but one long multipart send may hold it for minutes)
HEALTH_STALE = overview.MODEM_STALE

#: GET /api/v1/messages: how many messages by default and at most
LIST_DEFAULT, LIST_MAX = 50, 1000
#: the classic text format every Prometheus reads (prometheus_client >= 0.22 would say 1.0.0;
#: with our plain metric names the body is the same)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the status page's refresh interval by default, and the bounds of ?refresh=
REFRESH_DEFAULT, REFRESH_MIN, REFRESH_MAX = 15, 2, 3600

NUMBER = re.compile(r"\+?[0-9]{3,20}")
MAX_SENDER = 64
MAX_URL = 2048

#: charset names Kannel users write that Python does not know
CHARSET_ALIASES = {"ucs-2": "utf-16-be", "ucs2": "utf-16-be", "ucs-2be": "utf-16-be",
                   "ucs2be": "utf-16-be", "unicode": "utf-16-be", "utf-16": "utf-16"}


class Refused(Exception):
    """A request we answer with status and a plain reason (a 4xx, or 503 for the store)."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


# ---------------------------------------------------------------------------------------------
# Parsing, pure functions of bytes and strings


def parse_form(raw):
    """application/x-www-form-urlencoded bytes -> [(name, raw value bytes)], values still encoded.

    Values stay encoded so that each can be decoded its own way: `text` in the caller's charset,
    `to` with a literal '+' kept (see split_numbers). Fields without '=' have an empty value.
    """
    fields = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        name, _, value = chunk.partition(b"=")
        fields.append((form_bytes(name).decode("utf-8", "replace"), value))
    return fields


def form_bytes(raw):
    """An encoded form value -> its bytes ('+' is a space, %XX a byte)."""
    return urllib.parse.unquote_to_bytes(raw.replace(b"+", b" "))


def split_numbers(value):
    """The `to` field -> the numbers in it.

    Numbers are separated by white space or '+' (Kannel). A '+' that starts a run of digits is an
    international prefix; any other '+' (after a digit, or not before one) separates. The value
    comes unquoted with its literal '+' kept, so 'to=%2B2557001+%2B2557002' (what requests sends
    for '+2557001 +2557002') arrives as '+2557001++2557002' and gives ['+2557001', '+2557002'],
    and a hand-written 'to=+2557001' keeps its prefix instead of losing it to a space.
    """
    return re.sub(r"(?<=[^\s+])\+|\+(?![0-9])", " ", value).split()


def lookup_charset(name):
    """A charset name -> a Python codec name; Refused(400) for unknown or non-text codecs."""
    key = name.strip().lower()
    key = CHARSET_ALIASES.get(key, key)
    try:
        info = codecs.lookup(key)
    except (LookupError, ValueError):
        raise Refused(400, "Unknown charset %r, rejected" % name[:40]) from None
    if not getattr(info, "_is_text_encoding", True):
        raise Refused(400, "Unknown charset %r, rejected" % name[:40])
    return info.name


def decode_text(data, charset, what="text"):
    """Bytes -> str in charset, strictly; Refused(400) saying so when they do not decode."""
    try:
        text = data.decode(charset, "strict")
    except Exception:  # any codec, any failure: the caller sent bytes that are not this charset
        raise Refused(400, "The %s is not valid %s, rejected" % (what, charset)) from None
    check_unicode(text, what)
    return text


def check_unicode(text, what):
    """Lone surrogates (from JSON "\\ud800" or odd codecs) cannot be stored or sent."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Refused(400, "The %s contains an unpaired surrogate, rejected" % what) from None


def check_numbers(numbers, max_recipients):
    for number in numbers:
        if not NUMBER.fullmatch(number):
            raise Refused(400, "Receiver number %r misformed (an optional + and 3 to 20 digits), "
                          "rejected" % number[:40])
    if len(numbers) > max_recipients:
        raise Refused(400, "Too many receivers: %d, at most %d, rejected"
                      % (len(numbers), max_recipients))


def count_parts(text, max_parts):
    """(encoding, parts) the modem will send text as; Refused(400) when it is longer than allowed.

    GSM 7-bit whenever every character is in the GSM alphabet, whatever `coding` the caller gave:
    coding says what the text may need, not what it must cost.
    """
    if not text:
        raise Refused(400, "Empty text, rejected")
    try:
        encoding, parts = pdu.split(text, max_parts=max_parts)
    except pdu.TooLong as exc:
        total = "%d parts" % exc.parts if exc.parts else "more than %d parts" % max_parts
        raise Refused(400, "Message too long: %s, at most %d" % (total, max_parts)) from None
    return encoding, len(parts)


def check_url(url, what):
    try:
        if len(url) > MAX_URL:
            raise ValueError("longer than %d characters" % MAX_URL)
        safeurl.check_syntax(url)
    except ValueError as exc:
        raise Refused(400, "%s field misformed (%s), rejected" % (what, exc)) from None
    check_unicode(url, what)
    return url


def small_int(value, what, low, high):
    value = value.strip()
    if not re.fullmatch(r"-?[0-9]{1,6}", value) or not low <= int(value) <= high:
        raise Refused(400, "%s field misformed (a whole number %d to %d), rejected"
                      % (what, low, high))
    return int(value)


def credentials_match(config, username, password):
    """Constant-time check of a username/password pair against [http]."""
    if username is None or password is None:
        return False
    ok_user = hmac.compare_digest(username.encode("utf-8", "replace"),
                                  config.http.username.encode("utf-8"))
    ok_pass = hmac.compare_digest(password.encode("utf-8", "replace"),
                                  config.http.password.encode("utf-8"))
    return ok_user and ok_pass


def basic_auth_ok(config):
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    return credentials_match(config, auth.username, auth.password)


# ---------------------------------------------------------------------------------------------
# /cgi-bin/sendsms


class SendsmsRequest:
    """The fields of one sendsms call, from the query string plus a form or text/plain body.

    The first occurrence of a field wins, as in Kannel; `to` gathers every occurrence.
    """

    ALIASES = {"user": "username", "pass": "password", "dlrmask": "dlr-mask", "dlrurl": "dlr-url"}
    HEADERS = {"X-Kannel-Username": "username", "X-Kannel-Password": "password",
               "X-Kannel-To": "to", "X-Kannel-From": "from", "X-Kannel-SMSC": "smsc",
               "X-Kannel-Coding": "coding", "X-Kannel-DLR-Mask": "dlr-mask",
               "X-Kannel-DLR-Url": "dlr-url", "X-Kannel-Validity": "validity",
               "X-Kannel-UDH": "udh"}

    def __init__(self, max_body):
        self.raw = {}          # name -> encoded value bytes (first occurrence)
        self.plain = {}        # name -> str, from X-Kannel-* headers (not URL-encoded)
        self.to = []           # every `to`, decoded with '+' kept
        self.body_text = None  # the text/plain body, undecoded
        self.body_charset = None
        query = request.query_string
        if len(query) > max_body:
            raise Refused(414, "Request-URI too long (at most %d bytes), rejected" % max_body)
        self._add(parse_form(query))
        if request.method == "POST":
            self._add_body()

    def _add(self, fields):
        for name, value in fields:
            name = self.ALIASES.get(name, name)
            if name == "to":
                self.to.append(self._utf8(urllib.parse.unquote_to_bytes(value), "to"))
            else:
                self.raw.setdefault(name, value)

    def _add_body(self):
        mimetype = request.mimetype
        body = request.get_data(cache=True)  # raises 413 beyond MAX_CONTENT_LENGTH
        if mimetype in ("", "application/x-www-form-urlencoded"):
            self._add(parse_form(body))
        elif mimetype == "text/plain":
            self.body_text = body
            self.body_charset = request.mimetype_params.get("charset")
            for header, name in self.HEADERS.items():
                value = request.headers.get(header)
                if value is None:
                    continue
                value = self._utf8(value.encode("latin-1", "replace"), header)
                if name == "to":
                    self.to.append(value)
                else:
                    self.plain.setdefault(name, value)
        else:
            raise Refused(415, "Unsupported content-type, rejected")

    @staticmethod
    def _utf8(data, what):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "%s field is not UTF-8, rejected" % what) from None
        check_unicode(text, what)
        return text

    def get(self, name, default=None):
        """A field other than text, decoded as UTF-8."""
        if name in self.raw:
            return self._utf8(form_bytes(self.raw[name]), name)
        return self.plain.get(name, default)

    def text_bytes(self):
        if "text" in self.raw:
            return form_bytes(self.raw["text"])
        return self.body_text


def sendsms(store, config):
    if request.method == "HEAD":
        raise Refused(405, "Method not allowed", {"Allow": "GET, POST"})
    req = SendsmsRequest(config.http.max_body)

    if config.http.auth_required:
        username, password = req.get("username"), req.get("password")
        if username is None and password is None:
            ok = basic_auth_ok(config)
        else:
            ok = credentials_match(config, username, password)
        if not ok:
            log.warning("sendsms refused: bad credentials from %s", request.remote_addr)
            raise Refused(403, AUTH_FAILED)

    smsc = pinned_modem(config, req.get("smsc"))

    if not req.to:
        raise Refused(400, "Missing receiver number, rejected")
    numbers = [n for value in req.to for n in split_numbers(value)]
    if not numbers:
        raise Refused(400, "Empty receiver number not allowed, rejected")
    check_numbers(numbers, config.http.max_recipients)

    coding = small_int(req.get("coding") or "0", "coding", 0, 2)
    if req.get("udh"):
        raise Refused(400, "udh is not supported (text only), rejected")
    charset = req.get("charset") or req.body_charset or ("UTF-16BE" if coding == 2 else "UTF-8")
    data = req.text_bytes()
    if not data:
        raise Refused(400, "Empty text, rejected")
    text = decode_text(data, lookup_charset(charset))
    encoding, parts = count_parts(text, config.modem.max_parts)

    sender = req.get("from") or None
    if sender is not None and len(sender) > MAX_SENDER:
        raise Refused(400, "from field misformed (at most %d characters), rejected" % MAX_SENDER)
    dlr_mask = small_int(req.get("dlr-mask") or "0", "dlr-mask", 0, 255)
    dlr_url = req.get("dlr-url") or None
    if dlr_url is not None:
        check_url(dlr_url, "dlr-url")
    if req.get("validity"):
        small_int(req.get("validity"), "validity", -1, 999999)

    ids = add_outbound(store, numbers, text, encoding=encoding, parts=parts,
                       modem=smsc, sender=sender, dlr_url=dlr_url, dlr_mask=dlr_mask)
    log_accepted("sendsms", ids, numbers, parts, encoding, modem=smsc)
    return Response(ACCEPTED, 202, mimetype="text/plain")


def pinned_modem(config, smsc):
    """The modem a message is pinned to, from Kannel's `smsc`: None (empty or not given: any
    modem may send it) or one of the configured modems' names; Refused(403) for any other name,
    with Kannel's words, because a message for a modem this bridge does not have would wait
    forever. The name must match exactly, as Kannel's smsc-id does."""
    smsc = (smsc or "").strip()
    if smsc and smsc not in config.modem_names:
        raise Refused(403, NOT_ROUTABLE)
    return smsc or None


def add_outbound(store, numbers, text, **fields):
    """store.add_outbound, with a store failure answered 503 (nothing was committed)."""
    try:
        return store.add_outbound(numbers, text, **fields)
    except Exception:
        log.exception("could not store an outbound message")
        raise Refused(503, TEMPORARY) from None


def log_accepted(via, ids, numbers, parts, encoding, modem=None):
    """One INFO line per message accepted, starting with its id (a message's lines all do);
    modem: the modem it is pinned to, if any."""
    for msg_id, number in zip(ids, numbers):
        log.info("id=%s accepted via %s for %s: %d part(s) %s%s", msg_id, via,
                 overview.mask_number(number), parts, encoding,
                 ", pinned to modem %s" % modem if modem else "")


def describe_ids(ids):
    ids = [str(i) for i in ids]
    return ids[0] if len(ids) == 1 else "%s..%s" % (ids[0], ids[-1]) if ids else "-"


# ---------------------------------------------------------------------------------------------
# The JSON API


API_FIELDS = ("to", "text", "dlr_url", "smsc")


def require_basic_auth(config):
    if config.http.auth_required and not basic_auth_ok(config):
        raise Refused(401, "Authorization failed",
                      {"WWW-Authenticate": 'Basic realm="gsmbridge", charset="UTF-8"'})


def post_message(store, config):
    require_basic_auth(config)
    body = request.get_data(cache=True)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, "The body is not JSON: %s" % str(exc)[:100]) from None
    if not isinstance(data, dict):
        raise Refused(400, "The body must be a JSON object with to and text")
    for key in data:
        if key not in API_FIELDS:
            raise Refused(400, "Unknown field %r (known: %s)"
                          % (str(key)[:40], ", ".join(API_FIELDS)))
    smsc = data.get("smsc")
    if smsc is not None and not isinstance(smsc, str):
        raise Refused(400, "smsc must be a modem's name (or null or \"\" for any modem)")
    smsc = pinned_modem(config, smsc)

    to = data.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(n, str) for n in to):
        raise Refused(400, "to must be a phone number or a non-empty list of them")
    numbers = [n.strip() for n in to]
    check_numbers(numbers, config.http.max_recipients)

    text = data.get("text")
    if not isinstance(text, str):
        raise Refused(400, "text must be a string")
    check_unicode(text, "text")
    encoding, parts = count_parts(text, config.modem.max_parts)

    dlr_url = data.get("dlr_url")
    if dlr_url is not None:
        if not isinstance(dlr_url, str):
            raise Refused(400, "dlr_url must be a string")
        check_url(dlr_url, "dlr_url")

    ids = add_outbound(store, numbers, text, encoding=encoding, parts=parts, modem=smsc,
                       dlr_url=dlr_url, dlr_mask=31 if dlr_url else 0)
    log_accepted("api", ids, numbers, parts, encoding, modem=smsc)
    answer = {"id": ids[0], "ids": ids, "status": "queued", "parts": parts, "encoding": encoding}
    response = json_response(answer, 202)
    response.headers["Location"] = "/api/v1/messages/%s" % urllib.parse.quote(str(ids[0]))
    return response


def get_message(store, config, message_id):
    require_basic_auth(config)
    try:
        message = store.get_outbound(message_id)
    except Exception:
        log.exception("id=%s could not read the outbound message", message_id[:64])
        raise Refused(503, TEMPORARY) from None
    if message is None:
        raise Refused(404, "No message %r" % message_id[:64])
    message = dict(message)
    for callback in message.get("callbacks") or ():   # the dlr-url's answer is not ours to show
        if callback.get("last_error"):
            callback["last_error"] = re.sub(r"(?s)^(HTTP \d+)\b.*", r"\1", callback["last_error"])
    if "to" not in message and "recipient" in message:
        message["to"] = message["recipient"]
    return json_response(message)


# ---------------------------------------------------------------------------------------------
# Operators' view


def list_messages(store, config):
    """GET /api/v1/messages?direction=in|out&status=S&number=N&limit=L: the newest messages,
    both ways unless direction says, numbers and texts in full (this is the authenticated API;
    the status page masks them)."""
    require_basic_auth(config)
    args = request.args
    direction = args.get("direction") or None
    if direction not in (None, "in", "out"):
        raise Refused(400, "direction must be in or out")
    status = args.get("status") or None
    allowed = {"in": INBOUND_STATUSES, "out": OUTBOUND_STATUSES,
               None: INBOUND_STATUSES + OUTBOUND_STATUSES}[direction]
    if status is not None and status not in allowed:
        raise Refused(400, "status must be one of %s" % ", ".join(sorted(set(allowed))))
    number = args.get("number") or None
    if number is not None:
        if len(number) > MAX_SENDER:
            raise Refused(400, "number is too long (at most %d characters)" % MAX_SENDER)
        check_unicode(number, "number")
    limit = small_int(args.get("limit") or str(LIST_DEFAULT), "limit", 1, LIST_MAX)
    try:
        messages = store.messages(direction=direction, status=status, number=number, limit=limit)
    except Exception:
        log.exception("could not list messages")
        raise Refused(503, TEMPORARY) from None
    for message in messages:
        if message["direction"] == "out":
            message.setdefault("to", message.get("recipient"))
        else:
            message.setdefault("from", message.get("sender"))
    return json_response({"messages": messages, "count": len(messages)})


def health(store, config):
    """GET /health: 200 {"ok": true} when the bridge can take and deliver messages, else 503
    {"ok": false, "reason": "..."} with every reason found, joined by "; ".

    No credentials needed (it shows no message). The rules (gsmbridge/overview.py):
    the store is readable, its directory writable and its disk has at least 20 MB free; every
    configured modem is "up", has reported within 5 minutes and is not known to be unregistered
    from the network; no inbound message has waited over an hour for RapidSMS; and the outbound
    queue is not stalled (a message queued over an hour while nothing was sent for 15 minutes).
    In a pool of modems, one that is fine is enough: the others are listed in "warnings"
    with the 200 (their unpinned messages go out through the modems that can send).
    """
    reasons, warnings = overview.health_report(store, config)
    if reasons:
        log.debug("health: %s", "; ".join(reasons))
        return json_response({"ok": False, "reason": "; ".join(reasons)}, 503)
    return json_response({"ok": True, "warnings": warnings} if warnings else {"ok": True})


def snapshot(store, config, started_at):
    try:
        return overview.snapshot(store, config, started_at=started_at)
    except Exception:
        log.exception("status: could not read the store")
        raise Refused(503, TEMPORARY) from None


def status(store, config, started_at):
    """GET /status: what the status page shows, as JSON (numbers and texts unmasked)."""
    require_basic_auth(config)
    return json_response(snapshot(store, config, started_at))


def status_page(store, config, started_at):
    """GET /: the status page (HTML, self-contained; gsmbridge/statuspage.py)."""
    require_basic_auth(config)
    refresh = request.args.get("refresh")
    refresh = (small_int(refresh, "refresh", REFRESH_MIN, REFRESH_MAX) if refresh
               else REFRESH_DEFAULT)
    page = statuspage.render(snapshot(store, config, started_at), refresh=refresh,
                             name="gsmbridge on %s" % socket.gethostname())
    response = Response(page, 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = statuspage.CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def prometheus(store, config, registry):
    """GET /metrics: the process's counters (gsmbridge.metrics.REGISTRY) and the store's queue
    depths read now (overview.StoreCollector), in Prometheus's text format."""
    require_basic_auth(config)
    body = generate_latest(metrics.REGISTRY) + generate_latest(registry)
    return Response(body, 200, headers={"Content-Type": METRICS_CONTENT_TYPE})


def openapi_document(store, config):
    """GET /openapi.json: the OpenAPI 3 description of this API (no credentials needed)."""
    return json_response(openapi.document(config))


# ---------------------------------------------------------------------------------------------
# The application


def json_response(data, status=200):
    body = json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
    return Response(body + "\n", status, mimetype="application/json")


def wants_json():
    return (request.path.startswith(("/api/", "/vumi/"))
            or request.path in ("/status", "/health", "/openapi.json"))


def error_response(status, message, headers=None):
    if wants_json():
        response = json_response({"error": message}, status)
    else:
        response = Response(message, status, mimetype="text/plain")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def create_app(store, config):
    """The Flask application serving store according to config (a gsmbridge.config.Config)."""
    app = Flask("gsmbridge")
    app.config["MAX_CONTENT_LENGTH"] = config.http.max_body
    started_at = time.time()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(overview.StoreCollector(store, config))

    def view(func, *args):
        def run(**kwargs):
            return func(store, config, *args, **kwargs)
        run.__name__ = func.__name__
        return run

    app.add_url_rule("/cgi-bin/sendsms", view_func=view(sendsms), methods=["GET", "POST"])
    app.add_url_rule("/api/v1/messages", view_func=view(post_message), methods=["POST"])
    app.add_url_rule("/api/v1/messages", view_func=view(list_messages), methods=["GET"])
    app.add_url_rule("/api/v1/messages/<message_id>", view_func=view(get_message),
                     methods=["GET"])
    app.add_url_rule("/", view_func=view(status_page, started_at), methods=["GET"])
    app.add_url_rule("/health", view_func=view(health), methods=["GET"])
    app.add_url_rule("/status", view_func=view(status, started_at), methods=["GET"])
    app.add_url_rule("/metrics", view_func=view(prometheus, registry), methods=["GET"])
    app.add_url_rule("/openapi.json", view_func=view(openapi_document), methods=["GET"])
    from gsmbridge.dialects import dialect_blueprint  # here: dialects imports this module
    app.register_blueprint(dialect_blueprint(store, config))

    @app.errorhandler(Refused)
    def refused(exc):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code is None or exc.code < 400:
            return exc
        headers = {}
        if exc.code == 404:
            message = UNKNOWN
        elif exc.code == 405:
            message = "Method not allowed"
            headers = {k: v for k, v in exc.get_headers() if k == "Allow"}
        elif exc.code == 413:
            message = "Request too large (at most %d bytes), rejected" % config.http.max_body
        else:
            message = exc.name
        return error_response(exc.code or 500, message, headers)

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "Internal error.")

    return app

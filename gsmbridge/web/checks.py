"""What every view of the HTTP API checks, and the limits it checks against.

A view validates with these, hands the message to the store and answers; nothing else. Keeping
the checks in one place means every endpoint, whatever dialect it speaks, refuses the same things
the same way: a Refused carries the status and a plain reason, and create_app turns it into the
answer (JSON or text, as the endpoint speaks). Bad input never becomes a 500 or a traceback.

The limits live here (and the configurable ones in gsmbridge.config) so that the OpenAPI document
can read them rather than repeat them. Credentials are compared in constant time and never logged.
"""

import hmac
import json
import logging
import re
import urllib.parse
from dataclasses import dataclass

from flask import Response, current_app, request

from gsmbridge import overview, safeurl
from gsmbridge.codec import address, pdu
from gsmbridge.store import PRIORITIES

#: one logger for the whole HTTP side: operators filter the bridge's log on it
log = logging.getLogger("gsmbridge.web")

NOT_ROUTABLE = "Not routable. Do not try again."
TEMPORARY = "Temporal failure, try again later."

#: a sender (Kannel's `from`, Vumi's `from_addr`) and a number to filter by, in characters
MAX_SENDER = 64
#: a delivery-report URL, in characters
MAX_URL = 2048
#: Vumi's in_reply_to: one of our message ids, logged with the reply's
MAX_IN_REPLY_TO = 64
#: the ranges of sendsms's number fields: coding (7-bit, 8-bit, UCS-2), dlr-mask (Kannel's
#: eight report types) and validity (minutes, -1 for none; taken for compatibility only)
CODING = (0, 2)
DLR_MASK = (0, 255)
VALIDITY = (-1, 999999)
#: a message's priority: Kannel's range (0 to 3, higher goes out first; RapidPro's courier
#: sends 1 for a reply in a conversation), which is the store's
PRIORITY = PRIORITIES
#: GET /api/v1/messages: how many messages by default, and the range of ?limit=
LIST_DEFAULT = 50
LIST_LIMIT = (1, 1000)
#: the status page's refresh interval by default, and the range of ?refresh=
REFRESH_DEFAULT = 15
REFRESH = (2, 3600)

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="gsmbridge", charset="UTF-8"'}


class Refused(Exception):
    """A request we answer with status and a plain reason (a 4xx, or 503 for the store)."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Served:
    """What one application serves: create_app's arguments, passed in rather than imported, so
    that a process (a test) may run several bridges side by side."""

    store: object
    config: object
    #: when the application was made: the status page's "running for"
    started_at: float
    #: the store's gauges for /metrics (overview.StoreCollector), on a registry of this app's own
    registry: object


def served():
    """The Served of the application handling the current request."""
    return current_app.extensions["gsmbridge"]


# ---------------------------------------------------------------------------------------------
# Forms, from their raw bytes


def parse_form(raw):
    """application/x-www-form-urlencoded bytes -> [(name, raw value bytes)], values still encoded.

    Values stay encoded so that each can be decoded its own way: sendsms's `text` in the caller's
    charset, a number with a literal '+' kept (see kannel.split_numbers). Fields without '=' have
    an empty value.
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


# ---------------------------------------------------------------------------------------------
# JSON bodies


def is_json_type(mimetype):
    """application/json, or a type with the +json suffix (RFC 6839), parameters aside."""
    return mimetype == "application/json" or (mimetype.startswith("application/")
                                              and mimetype.endswith("+json"))


def json_request_body():
    """The body of a request that must carry JSON, still bytes; Refused(415) unless its
    Content-Type says JSON.

    A body labelled text/plain or as a form is what an HTML form on any web site can make the
    operator's browser post, with no CORS preflight; JSON the bridge reads must come labelled
    application/json, which a page can only send with a preflight that the bridge never grants.
    The body is read first, so an oversized one is a 413 whatever it says it is.
    """
    body = request.get_data(cache=True)  # raises 413 beyond MAX_CONTENT_LENGTH
    if not is_json_type(request.mimetype):
        given = request.headers.get("Content-Type")
        raise Refused(415, "The body must be JSON with Content-Type: application/json (%s), "
                           "rejected" % ("not %r" % given[:60] if given else "none was given"))
    return body


def json_object(body, shape, fields=None):
    """A JSON body (bytes or str) -> the object in it. Refused(400) when it is not JSON, when it
    is not an object ("The body must be a JSON object " + shape), and, with `fields`, when it
    has a field not among them: a typo is refused, not left unnoticed."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Refused(400, "The body is not JSON: %s" % str(exc)[:100]) from None
    if not isinstance(data, dict):
        raise Refused(400, "The body must be a JSON object %s" % shape)
    unknown = [key for key in data if key not in fields] if fields is not None else []
    if unknown:
        raise Refused(400, "Unknown field %r (known: %s)" % (str(unknown[0])[:40],
                                                              ", ".join(fields)))
    return data


# ---------------------------------------------------------------------------------------------
# Values


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
        if not address.is_phone_number(number):
            raise Refused(400, "Receiver number %r misformed (%s), rejected"
                          % (number[:40], address.PHONE_NUMBER_WORDS))
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


def pinned_modem(config, smsc):
    """The modem a message is pinned to, from Kannel's `smsc` (or the JSON API's): None (empty
    or not given: any modem may send it) or one of the configured modems' names; Refused(403)
    for any other name, with Kannel's words, because a message for a modem this bridge does not
    have would wait forever. The name must match exactly, as Kannel's smsc-id does."""
    smsc = (smsc or "").strip()
    if smsc and smsc not in config.modem_names:
        raise Refused(403, NOT_ROUTABLE)
    return smsc or None


def modem_of_sender(config, sender):
    """The modem a sender address (Kannel's `from`) names, or None: one whose name it is, or
    whose SIM's number ([modem] number) it is, in any rendering (+255..., 0..., 255...).

    RapidPro's courier sends its channel's address as `from`. With one RapidPro channel per
    modem, the reply must leave through the SIM the contact wrote to, or it comes from a number
    the conversation never saw: so a `from` that names a modem pins the message to it, as
    `smsc` would. Any other `from` is only recorded (a modem cannot choose its sender)."""
    sender = (sender or "").strip()
    if not sender:
        return None
    for name, modem in config.modems.items():
        if sender == name or modem.number and address.same_number(sender, modem.number):
            return name
    return None


# ---------------------------------------------------------------------------------------------
# Credentials


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


def credentials_ok(config, username, password):
    """Whether a request carries the [http] credentials the way Kannel's sendsms takes them
    (and /http/send, like it): as username/password parameters when either is given, else as
    HTTP basic auth."""
    if username is None and password is None:
        return basic_auth_ok(config)
    return credentials_match(config, username, password)


def require_basic_auth(config):
    if config.http.auth_required and not basic_auth_ok(config):
        raise Refused(401, "Authorization failed", BASIC_CHALLENGE)


# ---------------------------------------------------------------------------------------------
# Handing over and answering


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


def json_response(data, status=200):
    body = json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
    return Response(body + "\n", status, mimetype="application/json")

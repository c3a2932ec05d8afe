"""Kannel's /cgi-bin/sendsms: what RapidSMS's KannelBackend (and rapidsms-httprouter's
ROUTER_URL, and RapidPro's courier for its Kannel channel) calls to send an SMS.

KannelBackend ignores our answer and never retries, so a 202 means "committed to disk", and
whatever we cannot take is refused loudly with Kannel's own words. The query string and form body
are parsed here from their raw bytes, because the text must be decoded in the charset the caller
names, and because a literal '+' in `to` may be a separator or an international prefix.
Credentials and query strings are never logged.

Text with `coding=2` and no charset is UTF-16BE, Kannel's rule, which current courier relies on:
it sends the raw UTF-16BE bytes percent-encoded (an emoji as its surrogate pair), and an odd
number of bytes or a lone surrogate is refused with 400. `priority` (0 to 3) orders the queue:
courier's replies (priority=1) go ahead of bulk messages. A `from` that names a modem (its name,
or its SIM's `number`) pins the message to it when no `smsc` is given (see checks.modem_of_sender).
"""

import codecs
import re
import urllib.parse

from flask import Blueprint, Response, request

from gsmbridge.web.checks import (CODING, DLR_MASK, MAX_SENDER, PRIORITY, VALIDITY, Refused,
                                  add_outbound, check_numbers, check_unicode, check_url,
                                  count_parts, credentials_ok, decode_text, form_bytes, log,
                                  log_accepted, modem_of_sender, parse_form, pinned_modem,
                                  served, small_int)
from gsmbridge.web.guard import changes_state

ACCEPTED = "0: Accepted for delivery"
AUTH_FAILED = "Authorization failed for sendsms"

#: charset names Kannel users write that Python does not know
CHARSET_ALIASES = {"ucs-2": "utf-16-be", "ucs2": "utf-16-be", "ucs-2be": "utf-16-be",
                   "ucs2be": "utf-16-be", "unicode": "utf-16-be", "utf-16": "utf-16"}

bp = Blueprint("kannel", __name__)


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


class SendsmsRequest:
    """The fields of one sendsms call, from the query string plus a form or text/plain body.

    The first occurrence of a field wins, as in Kannel; `to` gathers every occurrence.
    """

    ALIASES = {"user": "username", "pass": "password", "dlrmask": "dlr-mask", "dlrurl": "dlr-url"}
    HEADERS = {"X-Kannel-Username": "username", "X-Kannel-Password": "password",
               "X-Kannel-To": "to", "X-Kannel-From": "from", "X-Kannel-SMSC": "smsc",
               "X-Kannel-Coding": "coding", "X-Kannel-DLR-Mask": "dlr-mask",
               "X-Kannel-DLR-Url": "dlr-url", "X-Kannel-Validity": "validity",
               "X-Kannel-UDH": "udh", "X-Kannel-Priority": "priority"}

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


@bp.route("/cgi-bin/sendsms", methods=["GET", "POST"])
@changes_state  # sends on GET too: a cross-site <img> must not
def sendsms():
    if request.method == "HEAD":
        raise Refused(405, "Method not allowed", {"Allow": "GET, POST"})
    store, config = served().store, served().config
    req = SendsmsRequest(config.http.max_body)

    if config.http.auth_required and not credentials_ok(config, req.get("username"),
                                                        req.get("password")):
        log.warning("sendsms refused: bad credentials from %s", request.remote_addr)
        raise Refused(403, AUTH_FAILED)

    smsc = pinned_modem(config, req.get("smsc"))

    if not req.to:
        raise Refused(400, "Missing receiver number, rejected")
    numbers = [n for value in req.to for n in split_numbers(value)]
    if not numbers:
        raise Refused(400, "Empty receiver number not allowed, rejected")
    check_numbers(numbers, config.http.max_recipients)

    coding = small_int(req.get("coding") or "0", "coding", *CODING)
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
    if smsc is None:
        smsc = modem_of_sender(config, sender)
    priority = small_int(req.get("priority") or "0", "priority", *PRIORITY)
    dlr_mask = small_int(req.get("dlr-mask") or "0", "dlr-mask", *DLR_MASK)
    dlr_url = req.get("dlr-url") or None
    if dlr_url is not None:
        check_url(dlr_url, "dlr-url")
    if req.get("validity"):
        small_int(req.get("validity"), "validity", *VALIDITY)

    ids = add_outbound(store, numbers, text, encoding=encoding, parts=parts, modem=smsc,
                       sender=sender, dlr_url=dlr_url, dlr_mask=dlr_mask, priority=priority)
    log_accepted("sendsms", ids, numbers, parts, encoding, modem=smsc)
    return Response(ACCEPTED, 202, mimetype="text/plain")

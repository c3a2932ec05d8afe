"""Send endpoints in the dialects of RapidSMS backends other than Kannel's.

Whatever RapidSMS a deployment runs, it should reach the bridge with configuration alone:

- ``POST /vumi/send`` takes what RapidSMS's ``VumiBackend`` posts: a JSON Vumi message
  ``{"content", "to_addr": [...], "session_event", "metadata": {"rapidsms_msg_id"},
  "in_reply_to"?, "from_addr"?, "endpoint"?}`` plus whatever the backend's ``sendsms_params``
  add, with HTTP basic auth (``sendsms_user``/``sendsms_pass``). VumiBackend treats any answer
  but 200 as a failure and never retries, so the answer is 200 once the message is committed,
  with a JSON body shaped like the message Vumi's HTTP API returns.
  A ``transport_name`` that is one of our modems' names pins the message to that modem, as
  sendsms's ``smsc`` does. VumiBackend sends one when its ``sendsms_params`` has it, so a
  backend per modem (each getting that modem's inbound through its [modem:NAME] url) answers
  people from the SIM they wrote to. Any other value is the name of a Vumi transport from some
  other setup and is ignored, not refused: the message goes out through any modem. The
  answer's ``transport_name`` is the modem that will send the message when that is already
  known (it is pinned, or the bridge has one modem only), else null: in a pool, whichever modem
  is free takes an unpinned message later, and GET /api/v1/messages/<id> then says which one
  did (``sent_by``).
- ``POST /http/send`` takes what rapidsms-threadless-router's ``HttpBackend`` posts to its
  ``outgoing_url``: a form with the number and the text, named as [rapidsms] identity_name and
  text_name say (``identity`` and ``text`` are taken too, which is what that backend sends).
  Credentials come as username/password parameters (in the URL's query, as its backend cannot do
  basic auth) or as basic auth.
- rapidsms-httprouter needs nothing here: its ROUTER_URL template can name Kannel's
  ``/cgi-bin/sendsms`` directly (see kannel.py).

Validation, authentication and the store call are checks.py's, so every endpoint refuses the same
things the same way; a 4xx says why. Answers carry ``X-Message-Id`` with the new message's id.
"""

import urllib.parse
from datetime import datetime, timezone

from flask import Blueprint, Response, request

from gsmbridge.web.checks import (BASIC_CHALLENGE, MAX_IN_REPLY_TO, MAX_SENDER, Refused,
                                  add_outbound, check_numbers, check_unicode, count_parts,
                                  credentials_ok, decode_text, form_bytes, json_object,
                                  json_request_body, json_response, log, log_accepted,
                                  parse_form, require_basic_auth, served)
from gsmbridge.web.guard import changes_state

#: the fields the threadless router's HttpBackend itself sends
DEFAULT_IDENTITY, DEFAULT_TEXT = "identity", "text"

bp = Blueprint("dialects", __name__)


# ---------------------------------------------------------------------------------------------
# Vumi


@bp.route("/vumi/send", methods=["POST"])
@changes_state
def vumi():
    store, config = served().store, served().config
    require_basic_auth(config)
    data = vumi_message(json_request_body())

    content = data.get("content")
    if content is None:
        raise Refused(400, "content is empty (a Vumi message without text cannot be an SMS)")
    if not isinstance(content, str):
        raise Refused(400, "content must be a string")
    check_unicode(content, "content")

    to_addr = data.get("to_addr")
    numbers = [to_addr] if isinstance(to_addr, str) else to_addr
    if not isinstance(numbers, list) or not numbers or not all(isinstance(n, str) for n in numbers):
        raise Refused(400, "to_addr must be a phone number or a non-empty list of them")
    numbers = [n.strip() for n in numbers]
    check_numbers(numbers, config.http.max_recipients)

    sender = optional_string(data, "from_addr", MAX_SENDER)
    in_reply_to = optional_string(data, "in_reply_to", MAX_IN_REPLY_TO)
    metadata = data.get("metadata")
    rapidsms_id = metadata.get("rapidsms_msg_id") if isinstance(metadata, dict) else None

    transport = data.get("transport_name")
    modem = transport if isinstance(transport, str) and transport in config.modem_names else None

    encoding, parts = count_parts(content, config.modem.max_parts)
    ids = add_outbound(store, numbers, content, encoding=encoding, parts=parts, sender=sender,
                       modem=modem)
    log_accepted("vumi", ids, numbers, parts, encoding, modem=modem)
    # in_reply_to is the inbound id the bridge gave RapidSMS as message_id: this line ties a
    # reply to the SMS it answers.
    for msg_id in ids:
        log.info("id=%s in_reply_to=%s rapidsms_msg_id=%s", msg_id, in_reply_to or "-",
                 rapidsms_id if rapidsms_id is not None else "-")
    answer = {
        "message_version": "20110921",
        "message_type": "user_message",
        "message_id": ids[0],
        "message_ids": ids,
        "in_reply_to": in_reply_to,
        "session_event": None,
        "to_addr": to_addr,
        "from_addr": sender,
        "content": content,
        "transport_name": modem or (config.modem.name if len(config.modem_names) == 1
                                    else None),
        "transport_type": "sms",
        "timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "helper_metadata": {},
        "transport_metadata": {},
        "status": "queued",
        "parts": parts,
        "encoding": encoding,
    }
    response = json_response(answer, 200)
    response.headers["X-Message-Id"] = str(ids[0])
    return response


def vumi_message(body):
    """A request body -> the JSON object in it, which Vumi writes in UTF-8 only; Refused(400)
    otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "The body is not UTF-8") from None
    return json_object(text, "(a Vumi message)")


def optional_string(data, key, max_length):
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise Refused(400, "%s must be a string of at most %d characters" % (key, max_length))
    check_unicode(value, key)
    return value


# ---------------------------------------------------------------------------------------------
# rapidsms-threadless-router's http backend


@bp.route("/http/send", methods=["POST"])
@changes_state
def threadless():
    store, config = served().store, served().config
    fields = {}
    for name, value in parse_form(request.query_string):
        fields.setdefault(name, value)
    if request.mimetype not in ("", "application/x-www-form-urlencoded"):
        raise Refused(415, "Unsupported content-type (a form is expected), rejected")
    for name, value in parse_form(request.get_data(cache=True)):
        fields.setdefault(name, value)

    def field(name):
        if name not in fields:
            return None
        return decode_text(form_bytes(fields[name]), "utf-8", name)

    username = field("username") if "username" in fields else field("user")
    password = field("password") if "password" in fields else field("pass")
    if config.http.auth_required and not credentials_ok(config, username, password):
        log.warning("http send refused: bad credentials from %s", request.remote_addr)
        raise Refused(401, "Authorization failed", BASIC_CHALLENGE)

    identity_name = pick(fields, config.rapidsms.identity_name, DEFAULT_IDENTITY)
    text_name = pick(fields, config.rapidsms.text_name, DEFAULT_TEXT)
    if identity_name is None:
        raise Refused(400, "Missing receiver number (%s), rejected" % config.rapidsms.identity_name)
    # A literal '+' is the number's international prefix, not an encoded space.
    number = decode_text(urllib.parse.unquote_to_bytes(fields[identity_name]), "utf-8",
                         identity_name).strip()
    check_numbers([number], 1)
    text = field(text_name) if text_name is not None else None
    if not text:
        raise Refused(400, "Empty text, rejected")
    encoding, parts = count_parts(text, config.modem.max_parts)

    ids = add_outbound(store, [number], text, encoding=encoding, parts=parts)
    log_accepted("http", ids, [number], parts, encoding)
    response = Response("Accepted for delivery: %s\n" % ids[0], 200, mimetype="text/plain")
    response.headers["X-Message-Id"] = str(ids[0])
    return response


def pick(fields, configured, default):
    """The field name present: the configured one, else the backend's own default."""
    for name in (configured, default):
        if name in fields:
            return name
    return None

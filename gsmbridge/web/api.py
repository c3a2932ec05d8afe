"""The JSON API: POST /api/v1/messages sends, GET /api/v1/messages/<id> tells what became of a
message, GET /api/v1/messages lists the newest both ways.

For callers that are not RapidSMS's backends: JSON in, JSON out, HTTP basic auth. Numbers and
texts are shown in full here (the caller holds the credentials); the status page masks them.
"""

import re
import urllib.parse

from flask import Blueprint, request

from gsmbridge.store import INBOUND_STATUSES, OUTBOUND_STATUSES
from gsmbridge.web.checks import (LIST_DEFAULT, LIST_LIMIT, MAX_SENDER, PRIORITY, TEMPORARY,
                                  Refused, add_outbound, check_numbers, check_unicode, check_url,
                                  count_parts, json_object, json_request_body, json_response, log,
                                  log_accepted, pinned_modem, require_basic_auth, served,
                                  small_int)
from gsmbridge.web.guard import changes_state

#: the fields of POST /api/v1/messages; any other is refused, so a typo does not go unnoticed
API_FIELDS = ("to", "text", "dlr_url", "smsc", "priority")

bp = Blueprint("api", __name__)


@bp.route("/api/v1/messages", methods=["POST"])
@changes_state
def post_message():
    store, config = served().store, served().config
    require_basic_auth(config)
    data = json_object(json_request_body(), "with to and text", API_FIELDS)
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

    priority = data.get("priority", 0)
    if priority is None:
        priority = 0
    if isinstance(priority, bool) or not isinstance(priority, int) \
            or not PRIORITY[0] <= priority <= PRIORITY[1]:
        raise Refused(400, "priority must be a whole number %d to %d (higher goes out first)"
                      % PRIORITY)

    ids = add_outbound(store, numbers, text, encoding=encoding, parts=parts, modem=smsc,
                       dlr_url=dlr_url, dlr_mask=31 if dlr_url else 0, priority=priority)
    log_accepted("api", ids, numbers, parts, encoding, modem=smsc)
    answer = {"id": ids[0], "ids": ids, "status": "queued", "parts": parts, "encoding": encoding}
    response = json_response(answer, 202)
    response.headers["Location"] = "/api/v1/messages/%s" % urllib.parse.quote(str(ids[0]))
    return response


@bp.route("/api/v1/messages/<message_id>", methods=["GET"])
def get_message(message_id):
    store, config = served().store, served().config
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


@bp.route("/api/v1/messages", methods=["GET"])
def list_messages():
    """GET /api/v1/messages?direction=in|out&status=S&number=N&limit=L: the newest messages,
    both ways unless direction says, numbers and texts in full (this is the authenticated API;
    the status page masks them)."""
    store, config = served().store, served().config
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
    limit = small_int(args.get("limit") or str(LIST_DEFAULT), "limit", *LIST_LIMIT)
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

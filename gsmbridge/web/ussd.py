"""USSD over HTTP: ``POST /api/v1/ussd`` asks a modem's network, ``DELETE /api/v1/ussd/<session>``
ends a menu.

The view never touches the modem: it commits the request to the store (store/ussd.py) and waits
on the store's notify until the modem's worker has written the answer, or the time is up.  A
reply takes 5 to 20 s on real networks, so the answer comes late, and each waiting request holds
one of the server's threads: a modem takes at most MAX_ACTIVE requests at once (more get 429),
and a modem that is not up is refused at once (503) rather than waited for.

    POST /api/v1/ussd {"code": "*102#", "modem": "airtel"}       (modem: optional with one)
    200 {"modem", "code", "reply", "status", "session", "error"}
    POST /api/v1/ussd {"session": "<session>", "code": "1"}      the menu's next answer
    DELETE /api/v1/ussd/<session>                                  end it (AT+CUSD=2)

``status`` is "done", "more" (a menu: the network waits for the next answer, in the session),
"failed" or "timeout"; ``error`` says why for the last two.
"""

import re
import time

from flask import Blueprint

from gsmbridge.codec import ussd as codec
from gsmbridge.store import MODEM_STALE, USSD_QUEUE_WAIT
from gsmbridge.web.checks import (TEMPORARY, Refused, check_unicode, json_object,
                                  json_request_body, json_response, log, require_basic_auth,
                                  served)

#: the fields of POST /api/v1/ussd
USSD_FIELDS = ("code", "modem", "session")
#: the longest code or answer taken, in characters (a USSD string holds 182 GSM characters)
MAX_CODE = 160
#: requests of one modem queued or waiting for their reply at once
MAX_ACTIVE = 3
#: seconds the view waits beyond the worker's deadlines, for its answer to be written
GRACE = 3.0
SESSION = re.compile(r"[0-9a-f]{16}")

bp = Blueprint("ussd", __name__)


def answer(row, ended=None):
    """A request row as the API answers it."""
    status = row["status"]
    if status in ("queued", "running"):
        status = "timeout"
    return {"modem": row["modem"], "code": row["code"], "reply": row["reply"],
            "status": status, "session": row["session"],
            "error": row["error"] if status != "timeout" or row["error"]
            else "no reply in time"}


def _code(data):
    code = data.get("code")
    if not isinstance(code, str) or not code.strip():
        raise Refused(400, "code must be a USSD code such as *102#, or a menu's answer")
    code = code.strip()
    check_unicode(code, "code")
    if len(code) > MAX_CODE:
        raise Refused(400, "code is too long (at most %d characters)" % MAX_CODE)
    try:
        codec.encode(code)
    except codec.UssdError as exc:
        raise Refused(400, "code cannot be sent: %s" % exc) from None
    return code


def _modem(config, name):
    if name is None or name == "":
        if len(config.modem_names) == 1:
            return config.modem_names[0]
        raise Refused(400, "modem is required: this bridge has %s"
                      % ", ".join(config.modem_names))
    if not isinstance(name, str):
        raise Refused(400, "modem must be a modem's name")
    if name not in config.modem_names:
        raise Refused(404, "No modem named %r" % name[:64])
    return name


def _check_up(store, name):
    state = store.modems().get(name) or {}
    updated = state.get("updated_at")
    if state.get("state") != "up" or not isinstance(updated, (int, float)) or \
            time.time() - updated > MODEM_STALE:
        raise Refused(503, "modem %s is %s; try again later" % (
            name, state.get("state") or "not started"), {"Retry-After": "30"})


@bp.route("/api/v1/ussd", methods=["POST"])
def post_ussd():
    store, config = served().store, served().config
    require_basic_auth(config)
    data = json_object(json_request_body(), 'with "code"', USSD_FIELDS)
    code = _code(data)
    session = data.get("session")
    try:
        if session is not None:
            if not isinstance(session, str) or not SESSION.fullmatch(session):
                raise Refused(404, "No USSD session %r" % str(session)[:64])
            last = store.ussd_session(session)
            if last is None:
                raise Refused(404, "No USSD session %r" % session)
            name = last["modem"]
            if data.get("modem") not in (None, "", name):
                raise Refused(400, "session %s is modem %s's" % (session, name))
            if not last["open"]:
                raise Refused(409, "USSD session %s has ended (%s); start a new one"
                              % (session, last["ended"] or last["status"]))
        else:
            name = _modem(config, data.get("modem"))
        _check_up(store, name)
        row = store.add_ussd(name, code, session=session, max_active=MAX_ACTIVE)
    except Refused:
        raise
    except Exception:
        log.exception("could not queue a USSD request")
        raise Refused(503, TEMPORARY) from None
    if row is None:
        raise Refused(429, "modem %s has %d USSD requests in hand; try again shortly"
                      % (name, MAX_ACTIVE), {"Retry-After": "10"})
    log.info("ussd=%s session=%s queued for modem %s", row["id"], row["session"], name)
    try:
        done = _wait(store, row, config.modems[name].ussd_timeout)
    except Exception:               # the store closing under us (the bridge stopping)
        log.exception("ussd=%s could not be read back", row["id"])
        raise Refused(503, TEMPORARY) from None
    return json_response(answer(done))


def _wait(store, row, reply_timeout):
    """Wait on the store until the worker has answered ``row``, or it cannot any more."""
    queued_until = row["created_at"] + USSD_QUEUE_WAIT
    while True:
        current = store.ussd_request(row["id"])
        if current["status"] not in ("queued", "running"):
            return current
        now = time.time()
        if current["status"] == "queued":
            if now >= queued_until:
                return store.give_up_ussd(row["id"])
            until = queued_until
        else:
            until = (current["started_at"] or now) + reply_timeout + GRACE
            if now >= until:
                return current
        store.wait(min(1.0, max(0.05, until - now)))


@bp.route("/api/v1/ussd/<session>", methods=["DELETE"])
def delete_ussd(session):
    store, config = served().store, served().config
    require_basic_auth(config)
    if not SESSION.fullmatch(session):
        raise Refused(404, "No USSD session %r" % session[:64])
    try:
        last = store.end_ussd_session(session)
    except Exception:
        log.exception("could not end a USSD session")
        raise Refused(503, TEMPORARY) from None
    if last is None:
        raise Refused(404, "No USSD session %r" % session)
    log.info("session=%s ended by the caller", session)
    return json_response({"session": session, "modem": last["modem"], "status": "ended",
                          "was_open": last["open"]})

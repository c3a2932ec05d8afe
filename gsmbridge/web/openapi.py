"""The OpenAPI 3 description of the bridge's HTTP API, served at GET /openapi.json.

Written by hand, next to the code it describes, and checked against the real server by
tests/test_openapi.py (schemathesis generates requests from it, valid and invalid, and every answer
must be documented, match its schema, and never be a 5xx). Its numbers are not written here: the
fixed limits come from checks.py, the phone-number pattern from gsmbridge.codec.address, the
statuses from the store, and the limits the config file sets (recipients per request) from the
config when one is given, else from its defaults.
"""

import copy

from gsmbridge.codec.address import PHONE_NUMBER
from gsmbridge.config import HttpConfig
from gsmbridge.store import INBOUND_STATUSES, OUTBOUND_STATUSES
from gsmbridge.web.checks import (CODING, DLR_MASK, LIST_DEFAULT, LIST_LIMIT, MAX_IN_REPLY_TO,
                                  MAX_SENDER, MAX_URL, PRIORITY, REFRESH, VALIDITY)
from gsmbridge.web.ussd import MAX_ACTIVE as USSD_MAX_ACTIVE, MAX_CODE as USSD_MAX_CODE

NUMBER_PATTERN = "^%s$" % PHONE_NUMBER
#: what Kannel's `to` takes: numbers separated by spaces or '+'
NUMBERS_PATTERN = "^%s([ +]+%s)*$" % (PHONE_NUMBER, PHONE_NUMBER)


def nullable(schema):
    return dict(schema, nullable=True)


def integer(limits, **schema):
    """An integer schema between limits, a (low, high) pair of checks.py."""
    return dict({"type": "integer", "minimum": limits[0], "maximum": limits[1]}, **schema)


def numbers(max_items):
    """One phone number, or a list of them."""
    return {"oneOf": [
        {"type": "string", "pattern": NUMBER_PATTERN},
        {"type": "array", "minItems": 1, "maxItems": max_items,
         "items": {"type": "string", "pattern": NUMBER_PATTERN}}]}


EPOCH = {"type": "number", "description": "seconds since the epoch, UTC"}
WARNINGS = {"type": "array", "items": {"type": "string"},
            "description": "the modems of a pool that cannot send, while another can (their "
                           "unpinned messages go out through it), and a receiver (RapidSMS) "
                           "that has not taken messages for less than 10 minutes"}
TEXT_ERROR = {"description": "refused, with the reason as plain text",
              "content": {"text/plain": {"schema": {"type": "string"}}}}


def json_error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


UNAUTHORIZED = {
    "description": "credentials are configured ([http] username/password) and were not given",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                "text/plain": {"schema": {"type": "string"}}},
}
UNAVAILABLE = json_error("the store cannot be read or written just now; try again later")
#: guard.py's refusals, which every endpoint may answer in its own kind (JSON or text)
CROSS_SITE = ("a browser sent it from a page on another site (Sec-Fetch-Site other than "
              "same-origin or none, or an Origin that is not the bridge's own)")
NOT_JSON = json_error("the body is not labelled application/json (or application/*+json)")


def either_error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                        "text/plain": {"schema": {"type": "string"}}}}


MISDIRECTED = either_error("the Host header is not a name of this bridge (checked when no "
                           "credentials are configured, or when [http] hosts is set)")

SENDSMS_FIELDS = {
    "username": {"type": "string", "description": "[http] username (alias: user)"},
    "password": {"type": "string", "description": "[http] password (alias: pass)"},
    "to": {"type": "string", "pattern": NUMBERS_PATTERN,
           "description": "receiver number(s); several separated by spaces or '+'"},
    "text": {"type": "string", "minLength": 1,
             "description": "the message, in `charset` (UTF-8 by default; UTF-16BE with coding=2)"},
    "charset": {"type": "string", "description": "the charset of text, e.g. UTF-8, UCS-2"},
    "coding": integer(CODING, description="Kannel's coding; the bridge picks GSM 7-bit "
                                          "whenever it can"),
    "from": {"type": "string", "maxLength": MAX_SENDER,
             "description": "sender, recorded; when it is a modem's name or its SIM's number "
                            "([modem] number) and no smsc is given, the message is pinned to "
                            "that modem"},
    "smsc": {"type": "string", "description": "a modem name to send through (empty: any)"},
    "dlr-mask": integer(DLR_MASK, description="Kannel's delivery-report mask (alias: dlrmask)"),
    "dlr-url": {"type": "string", "format": "uri", "maxLength": MAX_URL,
                "description": "delivery-report URL template (alias: dlrurl); http(s) only. "
                               "Called only at public addresses, the receivers' origins and "
                               "[http] callback_allow"},
    "validity": integer(VALIDITY, description="accepted for compatibility"),
    "priority": integer(PRIORITY, description="higher goes out first (RapidPro sends 1 for "
                                              "replies); the same priority in arrival order"),
}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}}},
    "SendRequest": {
        "type": "object", "required": ["to", "text"], "additionalProperties": False,
        "properties": {
            "to": numbers(HttpConfig.max_recipients),
            "text": {"type": "string", "minLength": 1},
            "dlr_url": {"type": "string", "format": "uri", "maxLength": MAX_URL, "nullable": True,
                        "description": "delivery-report callbacks to this URL (null: none)"},
            "smsc": {"type": "string", "nullable": True,
                     "description": "the name of the modem to send through (its [modem:NAME] "
                                    "section), as Kannel's smsc; null or empty: any modem. "
                                    "A name the bridge has no modem by is refused (403)."},
            "priority": integer(PRIORITY, nullable=True,
                                description="higher goes out first; the same priority in "
                                            "arrival order (default 0)"),
        },
    },
    "Accepted": {
        "type": "object", "required": ["id", "ids", "status", "parts", "encoding"],
        "properties": {
            "id": {"type": "string", "description": "the first message's id"},
            "ids": {"type": "array", "items": {"type": "string"},
                    "description": "one message per receiver, in order"},
            "status": {"type": "string", "enum": ["queued"]},
            "parts": {"type": "integer", "minimum": 1},
            "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]},
        },
    },
    "OutboundMessage": {
        "type": "object",
        "required": ["id", "to", "recipient", "text", "status", "parts", "attempts",
                     "created_at"],
        "properties": {
            "id": {"type": "string"},
            "direction": {"type": "string", "enum": ["out"]},
            "to": {"type": "string"},
            "recipient": {"type": "string"},
            "text": {"type": "string"},
            "encoding": nullable({"type": "string"}),
            "parts": {"type": "integer"},
            "status": {"type": "string", "enum": list(OUTBOUND_STATUSES)},
            "attempts": {"type": "integer"},
            "last_error": nullable({"type": "string"}),
            "modem": nullable({"type": "string"}),
            "sender": nullable({"type": "string"}),
            "sent_by": nullable({"type": "string"}),
            "dlr_url": nullable({"type": "string"}),
            "dlr_mask": {"type": "integer"},
            "priority": {"type": "integer"},
            "references": {"type": "array", "items": {"type": "integer"},
                           "description": "TP-MR of each part, once sent"},
            "created_at": EPOCH,
            "next_attempt": nullable(EPOCH),
            "sending_at": nullable(EPOCH),
            "sent_at": nullable(EPOCH),
            "delivered_at": nullable(EPOCH),
            "failed_at": nullable(EPOCH),
            "reports": {"type": "array", "items": {"type": "object"},
                        "description": "per part: reference, TP-ST of its status report"},
        },
    },
    "InboundMessage": {
        "type": "object",
        "required": ["id", "direction", "sender", "text", "status", "received_at"],
        "properties": {
            "id": {"type": "string"},
            "direction": {"type": "string", "enum": ["in"]},
            "from": {"type": "string"},
            "sender": {"type": "string"},
            "modem": {"type": "string"},
            "text": {"type": "string"},
            "sent_at": nullable({"type": "string",
                                 "description": "the SMSC's timestamp, ISO 8601 with offset"}),
            "received_at": EPOCH,
            "parts": {"type": "integer"},
            "incomplete": {"type": "boolean"},
            "status": {"type": "string", "enum": list(INBOUND_STATUSES)},
            "attempts": {"type": "integer"},
            "last_error": nullable({"type": "string"}),
            "response": nullable({"type": "string"}),
            "next_attempt": nullable(EPOCH),
            "last_attempt": nullable(EPOCH),
            "delivered_at": nullable(EPOCH),
            "failed_at": nullable(EPOCH),
        },
    },
    "MessageList": {
        "type": "object", "required": ["messages", "count"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "messages": {"type": "array", "items": {"oneOf": [
                {"$ref": "#/components/schemas/InboundMessage"},
                {"allOf": [{"$ref": "#/components/schemas/OutboundMessage"},
                           {"required": ["direction"]}]}]}},
        },
    },
    "Modem": {
        "type": "object", "required": ["state"],
        "properties": {
            "state": {"type": "string",
                      "description": "up, booting, no network, not answering, down, stopped, "
                                     "or not started"},
            "signal": nullable({"type": "integer", "description": "AT+CSQ rssi, 0-31"}),
            "operator": nullable({"type": "string"}),
            "registration": nullable({"type": "integer", "description": "27.007 <stat>"}),
            "registered": nullable({"type": "boolean"}),
            "last_error": nullable({"type": "string"}),
            "updated_at": nullable(EPOCH),
            "configured": {"type": "boolean",
                           "description": "false for a modem in the store but not the config"},
            "recoveries": {"type": "integer", "minimum": 0,
                           "description": "failed recoveries before the modem last came up"},
            "routes": {"type": "array", "items": {"type": "string"},
                       "description": "number prefixes this modem sends to first ([modem:NAME] "
                                      "routes)"},
            "daily_cap": {"type": "integer", "minimum": 0,
                          "description": "SMS parts it may send in 24 hours; 0: no cap"},
            "hourly_cap": {"type": "integer", "minimum": 0,
                           "description": "SMS parts it may send in an hour; 0: no cap"},
            "sent_last_hour": {"type": "integer", "minimum": 0,
                               "description": "SMS parts it sent in the last hour"},
            "sent_last_day": {"type": "integer", "minimum": 0,
                              "description": "SMS parts it sent in the last 24 hours"},
            "capped": {"type": "boolean",
                       "description": "at its daily or hourly cap: it sends nothing until older "
                                      "sends leave the window"},
            "available": {"type": "boolean",
                          "description": "it can take outbound now: up, reported within 5 "
                                         "minutes, not capped. Messages routed only to a modem "
                                         "that is not go to the others; pinned ones wait."},
        },
    },
    "Counts": {
        "type": "object",
        "required": ["inbound", "outbound", "parts", "bad_pdus", "reports",
                     "oldest_pending_inbound", "oldest_queued_outbound"],
        "properties": {
            "inbound": {"type": "object", "additionalProperties": {"type": "integer"},
                        "required": list(INBOUND_STATUSES)},
            "outbound": {"type": "object", "additionalProperties": {"type": "integer"},
                         "required": list(OUTBOUND_STATUSES)},
            "callbacks": {"type": "object", "additionalProperties": {"type": "integer"}},
            "parts": {"type": "integer"},
            "bad_pdus": {"type": "integer"},
            "reports": {"type": "integer"},
            "oldest_pending_inbound": nullable(EPOCH),
            "oldest_queued_outbound": nullable(EPOCH),
        },
    },
    "Status": {
        "type": "object",
        "required": ["now", "uptime", "modems", "counts", "activity", "traffic", "recent",
                     "health"],
        "properties": {
            "now": EPOCH,
            "uptime": nullable({"type": "number", "description": "seconds since start"}),
            "modems": {"type": "object",
                       "additionalProperties": {"$ref": "#/components/schemas/Modem"}},
            "counts": {"$ref": "#/components/schemas/Counts"},
            "receivers": {
                "type": "object",
                "description": "what each receiver (RapidSMS URL, without credentials or "
                               "query) answered last, by URL",
                "additionalProperties": {
                    "type": "object", "required": ["state", "since"],
                    "properties": {
                        "state": {"type": "string",
                                  "enum": ["up", "failing", "not there", "not answering"]},
                        "status": nullable({"type": "integer",
                                            "description": "the HTTP status it answers"}),
                        "error": nullable({"type": "string"}),
                        "since": EPOCH, "updated_at": EPOCH}}},
            "activity": {
                "type": "object",
                "required": ["last_received", "last_forwarded", "last_sent"],
                "properties": {"last_received": nullable(EPOCH),
                               "last_forwarded": nullable(EPOCH),
                               "last_sent": nullable(EPOCH)}},
            "traffic": {
                "type": "object", "required": ["start", "bucket", "in", "out"],
                "description": "messages received (in) and sent (out) per bucket since start",
                "properties": {"start": EPOCH, "bucket": {"type": "number"},
                               "in": {"type": "array", "items": {"type": "integer"}},
                               "out": {"type": "array", "items": {"type": "integer"}}}},
            "recent": {"type": "array", "items": {"type": "object", "required": ["direction"],
                                                  "properties": {"direction": {
                                                      "type": "string",
                                                      "enum": ["in", "out"]}}}},
            "health": {"type": "object", "required": ["ok", "reasons"],
                       "properties": {"ok": {"type": "boolean"},
                                      "reasons": {"type": "array",
                                                  "items": {"type": "string"}},
                                      "warnings": WARNINGS}},
        },
    },
    "Health": {
        "type": "object", "required": ["ok"],
        "properties": {"ok": {"type": "boolean"},
                       "reason": {"type": "string", "description": "every problem found, "
                                                                  "joined by '; '"},
                       "warnings": WARNINGS},
    },
    "VumiMessage": {
        "type": "object", "required": ["content", "to_addr"],
        "description": "A Vumi user message, as RapidSMS's VumiBackend posts it (with its "
                       "sendsms_params added). Other fields are taken and ignored.",
        "properties": {
            "content": {"type": "string", "minLength": 1},
            "to_addr": numbers(HttpConfig.max_recipients),
            "from_addr": {"type": "string", "maxLength": MAX_SENDER, "nullable": True,
                          "description": "sender, recorded only"},
            "in_reply_to": {"type": "string", "maxLength": MAX_IN_REPLY_TO, "nullable": True,
                            "description": "the message_id of the inbound message answered "
                                           "(logged with the reply's id)"},
            "transport_name": {"description": "one of the bridge's modem names pins the "
                                              "message to that modem; anything else is ignored "
                                              "(any modem sends it)"},
            "session_event": {"description": "ignored (an SMS has no session)"},
            "metadata": {"description": "rapidsms_msg_id is logged with the message's id"},
        },
    },
    "VumiAccepted": {
        "type": "object",
        "required": ["message_id", "message_ids", "message_type", "to_addr", "content",
                     "transport_name", "transport_type", "status", "parts", "encoding"],
        "description": "The message as committed, shaped like Vumi's HTTP API answers.",
        "properties": {
            "message_version": {"type": "string"},
            "message_type": {"type": "string", "enum": ["user_message"]},
            "message_id": {"type": "string",
                           "description": "the first message's id (GET /api/v1/messages/{id})"},
            "message_ids": {"type": "array", "items": {"type": "string"},
                            "description": "one message per receiver, in order"},
            "in_reply_to": nullable({"type": "string"}),
            "session_event": nullable({"type": "string"}),
            "to_addr": {"oneOf": [{"type": "string"},
                                  {"type": "array", "items": {"type": "string"}}]},
            "from_addr": nullable({"type": "string"}),
            "content": {"type": "string"},
            "transport_name": nullable({
                "type": "string",
                "description": "the modem that will send it when that is known already (it "
                               "is pinned, or the bridge has one modem); null in a pool, where "
                               "whichever modem is free takes it (sent_by in "
                               "GET /api/v1/messages/{id} says which did)"}),
            "transport_type": {"type": "string", "enum": ["sms"]},
            "timestamp": {"type": "string", "description": "UTC, Vumi's format"},
            "helper_metadata": {"type": "object"},
            "transport_metadata": {"type": "object"},
            "status": {"type": "string", "enum": ["queued"]},
            "parts": {"type": "integer", "minimum": 1},
            "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]},
        },
    },
}

BASIC = [{"basicAuth": []}, {}]

PATHS = {
    "/cgi-bin/sendsms": {
        "get": {
            "summary": "Send an SMS, Kannel style",
            "description": "Kannel's sendsms: what RapidSMS's KannelBackend calls. The first "
                           "occurrence of a field wins; `to` may be given several times. "
                           "Credentials as username/password or HTTP basic auth.",
            "security": BASIC,
            # An empty value counts as not given (RapidSMS sends smsc= and from= empty).
            "parameters": [
                dict({"name": name, "in": "query", "required": name in ("to", "text"),
                      "schema": schema}, **({} if name in ("to", "text")
                                            else {"allowEmptyValue": True}))
                for name, schema in SENDSMS_FIELDS.items()],
            "responses": {
                "202": {"description": "committed to the store",
                        "content": {"text/plain": {"schema": {
                            "type": "string", "enum": ["0: Accepted for delivery"]}}}},
                "400": TEXT_ERROR, "403": TEXT_ERROR, "405": TEXT_ERROR, "413": TEXT_ERROR,
                "414": TEXT_ERROR, "503": TEXT_ERROR,
            },
        },
        "post": {
            "summary": "Send an SMS, Kannel style, fields in the body",
            "description": "The same fields as a form, or the text as a text/plain body with "
                           "the other fields in the query or, for a text/plain body only, in "
                           "Kannel's X-Kannel-To, X-Kannel-From, X-Kannel-Coding, "
                           "X-Kannel-Username, X-Kannel-Password, X-Kannel-DLR-Mask, "
                           "X-Kannel-DLR-Url, X-Kannel-Priority headers.",
            "security": BASIC,
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["to", "text"],
                    "properties": SENDSMS_FIELDS}},
                "text/plain": {"schema": {"type": "string", "minLength": 1}},
            }},
            "responses": {
                "202": {"description": "committed to the store",
                        "content": {"text/plain": {"schema": {
                            "type": "string", "enum": ["0: Accepted for delivery"]}}}},
                "400": TEXT_ERROR, "403": TEXT_ERROR, "413": TEXT_ERROR, "414": TEXT_ERROR,
                "415": TEXT_ERROR, "503": TEXT_ERROR,
            },
        },
    },
    "/api/v1/messages": {
        "post": {
            "summary": "Send an SMS to one or more numbers",
            "security": BASIC,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/SendRequest"}}}},
            "responses": {
                "202": {"description": "committed; one message per receiver",
                        "headers": {"Location": {"schema": {"type": "string"},
                                                 "description": "the first message"}},
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Accepted"}}}},
                "400": json_error("refused, with the reason"),
                "401": UNAUTHORIZED,
                "403": json_error("smsc names no modem of this bridge: "
                                  "\"Not routable. Do not try again.\"; or " + CROSS_SITE),
                "413": json_error("the body is too large"),
                "415": NOT_JSON,
                "503": UNAVAILABLE,
            },
        },
        "get": {
            "summary": "The newest messages, both ways, filtered",
            "description": "An empty filter counts as not given.",
            "security": BASIC,
            "parameters": [
                {"name": "direction", "in": "query", "required": False,
                 "allowEmptyValue": True,
                 "schema": {"type": "string", "enum": ["in", "out"]}},
                {"name": "status", "in": "query", "required": False,
                 "allowEmptyValue": True,
                 "description": "inbound: %s; outbound: %s" % (", ".join(INBOUND_STATUSES),
                                                                  ", ".join(OUTBOUND_STATUSES)),
                 "schema": {"type": "string", "enum": list(dict.fromkeys(
                     INBOUND_STATUSES + OUTBOUND_STATUSES))}},
                {"name": "number", "in": "query", "required": False,
                 "allowEmptyValue": True,
                 "description": "matched on its last 9 digits, or anywhere when shorter",
                 "schema": {"type": "string", "maxLength": MAX_SENDER}},
                {"name": "limit", "in": "query", "required": False,
                 "allowEmptyValue": True,
                 "schema": integer(LIST_LIMIT, default=LIST_DEFAULT)},
            ],
            "responses": {
                "200": {"description": "newest first",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/MessageList"}}}},
                "400": json_error("a bad filter (e.g. a status the direction does not have)"),
                "401": UNAUTHORIZED,
                "503": UNAVAILABLE,
            },
        },
    },
    "/api/v1/messages/{message_id}": {
        "get": {
            "summary": "One outbound message and its status",
            "security": BASIC,
            "parameters": [{"name": "message_id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}],
            "responses": {
                "200": {"description": "the message",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/OutboundMessage"}}}},
                "401": UNAUTHORIZED,
                "404": json_error("no such message"),
                "503": UNAVAILABLE,
            },
        },
    },
    "/": {
        "get": {
            "summary": "The status page (HTML, refreshes itself)",
            "security": BASIC,
            "parameters": [{"name": "refresh", "in": "query", "required": False,
                            "allowEmptyValue": True,
                            "description": "seconds between refreshes",
                            "schema": integer(REFRESH)}],
            "responses": {
                "200": {"description": "the page",
                        "content": {"text/html": {"schema": {"type": "string"}}}},
                "400": TEXT_ERROR,
                "401": UNAUTHORIZED,
                "503": TEXT_ERROR,
            },
        },
    },
    "/status": {
        "get": {
            "summary": "What the status page shows, as JSON",
            "security": BASIC,
            "responses": {
                "200": {"description": "modems, queue depths, traffic, recent messages, health",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Status"}}}},
                "401": UNAUTHORIZED,
                "503": UNAVAILABLE,
            },
        },
    },
    "/health": {
        "get": {
            "summary": "Whether the bridge can take and deliver messages",
            "description": "200 when it can; 503 with every reason found when not: the store "
                           "unreadable, unwritable or its disk nearly full; a modem not up, "
                           "silent for 5 minutes or unregistered (in a pool of modems: every "
                           "one of them; while one can send, the others are listed in "
                           "warnings with the 200); an inbound message waiting over an hour "
                           "for RapidSMS; outbound stalled (a message queued over an hour and "
                           "nothing sent for 15 minutes); RapidSMS not taking messages for 10 "
                           "minutes (answering 401, 403, 404, 405, 410..., failing, or silent; "
                           "before that, a warning with the 200).",
            "security": [],
            "responses": {
                "200": {"description": "healthy", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "not healthy, and why", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Health"}}}},
            },
        },
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "description": "Counters of the running process, and queue depths read from the "
                           "store at scrape time.",
            "security": BASIC,
            "responses": {
                "200": {"description": "Prometheus text exposition format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": UNAUTHORIZED,
            },
        },
    },
    "/vumi/send": {
        "post": {
            "summary": "Send an SMS, Vumi style (RapidSMS's VumiBackend)",
            "description": "Point the backend's sendsms_url here, with sendsms_user and "
                           "sendsms_pass as [http] username and password. 200 once committed "
                           "(VumiBackend takes any other status as a failure and does not "
                           "retry).",
            "security": BASIC,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/VumiMessage"}}}},
            "responses": {
                "200": {"description": "committed; one message per receiver",
                        "headers": {"X-Message-Id": {"schema": {"type": "string"},
                                                     "description": "the first message"}},
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/VumiAccepted"}}}},
                "400": json_error("refused, with the reason"),
                "401": UNAUTHORIZED,
                "403": json_error(CROSS_SITE),
                "413": json_error("the body is too large"),
                "415": NOT_JSON,
                "503": UNAVAILABLE,
            },
        },
    },
    "/http/send": {
        "post": {
            "summary": "Send an SMS, rapidsms-threadless-router style (its http backend)",
            "description": "Point the backend's outgoing_url here, with username and password "
                           "in its query (that backend cannot do basic auth; basic auth works "
                           "too). The number and text fields are named as [rapidsms] "
                           "identity_name and text_name say; identity and text are taken too.",
            "security": BASIC,
            "parameters": [
                {"name": name, "in": "query", "required": False, "allowEmptyValue": True,
                 "schema": {"type": "string"}, "description": "[http] %s" % name}
                for name in ("username", "password")],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["identity", "text"],
                    "properties": {
                        "identity": {"type": "string", "pattern": NUMBER_PATTERN,
                                     "description": "the receiver's number"},
                        "text": {"type": "string", "minLength": 1,
                                 "description": "the message, UTF-8"},
                    }}}}},
            "responses": {
                "200": {"description": "committed",
                        "headers": {"X-Message-Id": {"schema": {"type": "string"},
                                                     "description": "the message's id"}},
                        "content": {"text/plain": {"schema": {
                            "type": "string", "pattern": "^Accepted for delivery: "}}}},
                "400": TEXT_ERROR, "401": UNAUTHORIZED, "403": TEXT_ERROR, "413": TEXT_ERROR,
                "415": TEXT_ERROR, "503": TEXT_ERROR,
            },
        },
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}}},
        },
    },
}

# -- the SIM's services: USSD, the balance watch, identity, calls --------------------------------

NULLABLE_TEXT = {"type": "string", "nullable": True}

SCHEMAS["Modem"]["properties"].update({
    "identity": {
        "type": "object",
        "description": "what the modem and its SIM say they are, read at every boot; null "
                       "where the modem would not say",
        "properties": {key: dict(NULLABLE_TEXT, description=words) for key, words in (
            ("manufacturer", "AT+CGMI"), ("model", "AT+CGMM"), ("revision", "AT+CGMR"),
            ("imei", "AT+CGSN"), ("imsi", "AT+CIMI"),
            ("iccid", "the SIM's serial number (AT+CCID, AT^ICCID?, ... AT+CRSM)"),
            ("own_number", "AT+CNUM: null when the SIM holds none"))}},
    "balance": nullable({"type": "number",
                         "description": "the airtime balance the last check read"}),
    "balance_text": nullable({"type": "string",
                              "description": "the network's reply to balance_code"}),
    "balance_checked_at": nullable(dict(EPOCH, description="when the balance was last read")),
    "balance_tried_at": nullable(dict(EPOCH, description="when it was last asked for")),
    "balance_error": nullable({"type": "string",
                               "description": "why the last check found no balance"}),
    "low_balance": {"type": "number",
                    "description": "[modem] low_balance: /health warns below it"},
    "calls": {"type": "integer", "minimum": 0,
              "description": "incoming voice calls the modem has had (each hung up at once)"},
    "last_call": nullable(dict(EPOCH, description="when the latest call rang")),
})
PATHS["/health"]["get"]["description"] += (
    " A modem whose airtime balance is below its low_balance is listed in warnings too (SMS "
    "still flow; the SIM needs topping up).")
SCHEMAS["Status"]["properties"]["health"]["properties"]["low_balance"] = {
    "type": "array", "items": {"type": "string"},
    "description": "the modems whose balance is below their low_balance"}

SCHEMAS.update({
    "UssdRequest": {
        "type": "object", "required": ["code"], "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "minLength": 1, "maxLength": USSD_MAX_CODE,
                     "description": "a service code (*102#), or in a session the menu's next "
                                    "answer (1); GSM 7-bit characters, no quotes"},
            "modem": {"type": "string", "nullable": True,
                      "description": "the modem to ask through; may be left out when the "
                                     "bridge has one (or when continuing a session)"},
            "session": {"type": "string", "nullable": True,
                        "description": "continue this session (a menu that answered more)"},
        },
    },
    "UssdAnswer": {
        "type": "object", "required": ["modem", "code", "reply", "status", "session", "error"],
        "properties": {
            "modem": {"type": "string"},
            "code": {"type": "string"},
            "reply": nullable({"type": "string", "description": "the network's text"}),
            "status": {"type": "string", "enum": ["done", "more", "failed", "timeout"],
                       "description": "more: a menu, the network waits for the next answer "
                                      "in this session"},
            "session": {"type": "string",
                        "description": "the session: POST its next answer with it, or "
                                       "DELETE /api/v1/ussd/{session} to end it"},
            "error": nullable({"type": "string",
                               "description": "why it failed or timed out"}),
        },
    },
    "UssdEnded": {
        "type": "object", "required": ["session", "modem", "status", "was_open"],
        "properties": {
            "session": {"type": "string"},
            "modem": {"type": "string"},
            "status": {"type": "string", "enum": ["ended"]},
            "was_open": {"type": "boolean",
                         "description": "false when the session had ended already"},
        },
    },
})

RETRY_LATER = {"Retry-After": {"schema": {"type": "string"}, "required": False,
                               "description": "seconds to wait"}}

PATHS.update({
    "/api/v1/ussd": {
        "post": {
            "summary": "Ask the network a USSD code (a balance, a menu) through a modem",
            "description": "Answers once the network did (5 to 20 s on real networks), or the "
                           "time is up (status timeout). The request waits its turn between "
                           "the modem's SMS commands. A menu answers status more: send its "
                           "next answer with the session; a session nobody answers ends after "
                           "a minute. At most %d requests per modem at once." % USSD_MAX_ACTIVE,
            "security": BASIC,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/UssdRequest"}}}},
            "responses": {
                "200": {"description": "what the network answered, or why it did not",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/UssdAnswer"}}}},
                "400": json_error("refused, with the reason (e.g. modem left out in a pool)"),
                "401": UNAUTHORIZED,
                "404": json_error("no such modem, or no such session"),
                "409": json_error("the session has ended"),
                "413": json_error("the body is too large"),
                "415": NOT_JSON,
                "429": dict(json_error("the modem has as many USSD requests in hand as it "
                                       "takes"), headers=RETRY_LATER),
                "503": dict(json_error("the modem is not up, or the store cannot be written"),
                            headers=RETRY_LATER),
            },
        },
    },
    "/api/v1/ussd/{session}": {
        "delete": {
            "summary": "End a USSD session (a menu)",
            "security": BASIC,
            "parameters": [{"name": "session", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1}}],
            "responses": {
                "200": {"description": "ended (the modem sends AT+CUSD=2 if it is still open)",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/UssdEnded"}}}},
                "401": UNAUTHORIZED,
                "404": json_error("no such session"),
                "503": UNAVAILABLE,
            },
        },
    },
})


for _path in PATHS.values():
    for _operation in _path.values():
        _operation["responses"]["421"] = MISDIRECTED


def document(config=None):
    """The OpenAPI document as a dict; with a Config, its limits filled in."""
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": "gsmbridge",
            "version": "1",
            "description": "An SMS gateway between a GSM modem and RapidSMS. When [http] "
                           "username and password are set, every endpoint but /health and "
                           "/openapi.json needs them (HTTP basic auth; sendsms also takes them "
                           "as parameters). Requests that send (every POST, and sendsms's GET) "
                           "are refused 403 when a browser sends them from a page on another "
                           "site; servers send no Origin or Sec-Fetch-Site and are not "
                           "affected. JSON bodies must be labelled application/json (415).",
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
    }
    if config is not None:
        schemas = doc["components"]["schemas"]
        for name, field in (("SendRequest", "to"), ("VumiMessage", "to_addr")):
            schemas[name]["properties"][field]["oneOf"][1]["maxItems"] = \
                config.http.max_recipients
        form = (doc["paths"]["/http/send"]["post"]["requestBody"]["content"]
                ["application/x-www-form-urlencoded"]["schema"])
        names = {"identity": config.rapidsms.identity_name, "text": config.rapidsms.text_name}
        if any(default != name for default, name in names.items()):
            # either name is taken: neither one is required on its own
            form["required"] = []
            for default, name in names.items():
                form["properties"].setdefault(name, form["properties"][default])
    return doc

"""A stand-in for RapidPro's courier, its Kannel ("KN") channel both ways, on 127.0.0.1.

Written field by field from nyaruka/courier v26.3.38 (`handlers/kannel/handler.go`, its
`handler_test.go`, `handlers/forms.go`, `core/channels/responses.go`, `core/models/msg.go`,
`web/server.go`) and gocommon's `urns/phone.go`; read there, not copied. What it does as courier
does:

- `POST /c/kn/<channel uuid>/receive` (a trailing slash is stripped, as courier's router does;
  any other method is answered 405). Fields come from the query string and a form body, and the
  last value of a field wins. `id`, `ts` (an integer, not 0) and `sender` are required: a missing
  one is answered 400 with a JSON body naming it ("field 'sender' required"); a `ts` that is not
  an integer 400 too. `message` may be empty. `sender` is read as a phone number of the channel's
  country, short codes allowed, sender ids not (libphonenumber, through the `phonenumbers`
  package): "MPESA" is answered 400 "not a possible number". A message whose channel, URN and
  `id` were seen before is answered 200 with the first one's uuid and not stored again.
- `GET /c/kn/<channel uuid>/status?uuid=<msg uuid>&status=<n>`: 1 delivered (D), 2 and 16
  errored (E), 4 and 8 sent (S); 0 or no status 400 "field 'status' required"; another number
  200 "Ignored".
- `send()` makes the sendsms request exactly as the handler's Send builds it: the channel's send
  URL (its own query kept) with `username`, `password`, `from`, `to`, `text`, `dlr-mask` (27),
  `dlr-url`, `priority=1` for a high-priority message, url.Values.Encode's order (by key) and
  escaping (space as '+', all but letters, digits and -_.~ as %XX); Unicode as UTF-16BE bytes with
  `coding=2` and no charset (current courier) or, with `legacy_unicode`, UTF-8 with
  `coding=2&charset=utf8` (older courier). The answer counts as courier counts it: 2xx wired,
  5xx or no answer retried, 429 throttled, any other status failed for good.

Where it differs, and why: the dlr-url is http://127.0.0.1:<port>/... rather than
https://<courier's domain>/... (a loopback test has no certificate the bridge would trust);
"smart" encoding keeps a text whose every character is GSM 7-bit and sends any other as Unicode,
without courier's table of look-alike substitutions (no text of the tests needs one); multipart
bodies and the channel's "ignore_sent" option are left out. `fail_after_accept` is a fault
courier does not have: the message is stored and the answer is 503, as if the reply were lost.
"""

import http.client
import json
import re
import threading
import urllib.parse
import uuid as uuidlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import phonenumbers

from gsmbridge.codec import gsm7

#: dlr-mask bits as courier's statusMapping reads them
STATUS_MAPPING = {1: "D", 2: "E", 4: "S", 8: "S", 16: "E"}
#: courier registers for these by default: 1 + 2 + 8 + 16
DEFAULT_DLR_MASK = "27"
NOT_A_NUMBER = "not a possible number"

_ALT_SHORT_CODE = re.compile(r"[1-9][0-9]{2,5}")


@dataclass
class Channel:
    uuid: str
    address: str               # what courier sends as `from`
    country: str               # ISO 3166 alpha-2, for reading national numbers
    send_url: str
    username: str
    password: str
    encoding: str = "S"        # D default, S smart, U Unicode
    use_national: bool = False
    dlr_mask: str = DEFAULT_DLR_MASK


@dataclass
class MsgIn:
    uuid: str
    channel_uuid: str
    urn: str
    text: str
    external_id: str
    received_on: int


@dataclass
class Sent:
    """One send as courier made it, and what courier made of the answer."""
    msg_uuid: str
    url: str                   # the request target as sent (path and query)
    status: int | None         # the HTTP status, None when no answer came
    body: str
    result: str                # wired, retry, throttled, failed


@dataclass
class Hit:
    method: str
    raw_path: str
    content_type: str
    body: bytes
    status: int = 0
    answer: dict = field(default_factory=dict)


def parse_number(raw, country):
    """gocommon's urns.ParseNumber with allowShort=True, allowSenderID=False, as the Kannel
    handler calls it: the E.164 number, a short code, or ValueError("not a possible number")."""
    raw = raw.strip()
    plus = raw.startswith("+")
    text = re.sub(r"[^0-9A-Za-z]", "", raw)
    if plus:
        text = "+" + text
    parsed = None
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        pass
    if parsed is not None and phonenumbers.is_possible_number_with_reason(parsed) == \
            phonenumbers.ValidationResult.IS_POSSIBLE:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(text) >= 11 and not text.startswith("0"):
        try:
            with_plus = phonenumbers.parse("+" + text, country)
        except phonenumbers.NumberParseException:
            with_plus = None
        if with_plus is not None and phonenumbers.is_possible_number_with_reason(with_plus) == \
                phonenumbers.ValidationResult.IS_POSSIBLE:
            return phonenumbers.format_number(with_plus, phonenumbers.PhoneNumberFormat.E164)
    if parsed is not None and country:
        if phonenumbers.is_possible_short_number_for_region(parsed, country):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        if _ALT_SHORT_CODE.fullmatch(text):
            return text
    raise ValueError(NOT_A_NUMBER)


def go_query_encode(pairs):
    """Go's url.Values.Encode: sorted by key, QueryEscape'd (str as UTF-8, bytes as they are)."""
    return "&".join("%s=%s" % (urllib.parse.quote_plus(k, safe="~"),
                               urllib.parse.quote_plus(v, safe="~"))
                    for k, v in sorted(pairs, key=lambda kv: kv[0]))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class Courier:
    """See the module docstring. `courier.url` is "http://127.0.0.1:<port>"."""

    def __init__(self, host="127.0.0.1", port=0):
        self.channels = {}
        self.msgs = []                 # MsgIn, in the order written
        self.statuses = {}             # msg uuid -> ["S", "D", ...] in the order received
        self.hits = []                 # every request to the two endpoints (Hit)
        self.sends = []                # Sent
        self.fail_after_accept = 0
        self._seen = {}                # (channel, urn, external id) -> msg uuid
        self._lock = threading.Condition()
        self._server = _Server((host, port), self._handler())
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def add_channel(self, **fields):
        channel = Channel(uuid=str(uuidlib.uuid4()), **fields)
        self.channels[channel.uuid] = channel
        return channel

    def receive_url(self, channel):
        return "%s/c/kn/%s/receive" % (self.url, channel.uuid)

    # -- inbound: Kannel -> courier ------------------------------------------------------------

    def _receive(self, channel, form):
        missing = [name for name in ("id", "ts", "sender") if not form.get(name)]
        ts = form.get("ts")
        if ts:
            if not re.fullmatch(r"[+-]?[0-9]+", ts):
                return 400, error_body('schema: error converting value for "ts"')
            if int(ts) == 0:          # validate:"required" on an int64: zero is missing
                missing.insert(1 if "id" in missing else 0, "ts")
        if missing:
            return 400, validation_body(missing)
        try:
            number = parse_number(form["sender"], channel.country)
        except ValueError as exc:
            return 400, error_body(str(exc))
        urn = "tel:" + number
        key = (channel.uuid, urn, form["id"])
        with self._lock:
            first = self._seen.get(key)
            if first is None:
                msg = MsgIn(uuid=str(uuidlib.uuid4()), channel_uuid=channel.uuid, urn=urn,
                            text=form.get("message", ""), external_id=form["id"],
                            received_on=int(ts))
                self.msgs.append(msg)
                self._seen[key] = msg.uuid
                self._lock.notify_all()
            else:
                msg = next(m for m in self.msgs if m.uuid == first)
            if self.fail_after_accept:
                self.fail_after_accept -= 1
                return 503, error_body("stored, but the answer is lost (a test's fault)")
        return 200, {"message": "Message Accepted", "data": [{
            "type": "msg", "channel_uuid": channel.uuid, "msg_uuid": msg.uuid, "text": msg.text,
            "urn": msg.urn, "external_id": msg.external_id, "received_on": msg.received_on}]}

    # -- status: Kannel -> courier --------------------------------------------------------------

    def _status(self, channel, form):
        status = form.get("status") or ""
        if status and not re.fullmatch(r"[+-]?[0-9]+", status):
            return 400, error_body('schema: error converting value for "status"')
        missing = []
        msg_uuid = form.get("uuid") or ""
        if not msg_uuid:
            missing.append("uuid")
        if not status or int(status) == 0:
            missing.append("status")
        if missing:
            return 400, validation_body(missing)
        try:
            uuidlib.UUID(msg_uuid)
        except ValueError:
            return 400, validation_body(["uuid"], tag="uuid")
        letter = STATUS_MAPPING.get(int(status))
        if letter is None:
            return 200, {"message": "Ignored", "data": [
                {"type": "info", "info": "ignoring unknown status '%d'" % int(status)}]}
        with self._lock:
            self.statuses.setdefault(msg_uuid, []).append(letter)
            self._lock.notify_all()
        return 200, {"message": "Status Update Accepted", "data": [
            {"type": "status", "channel_uuid": channel.uuid, "status": letter}]}

    # -- outbound: courier -> Kannel ------------------------------------------------------------

    def dlr_url(self, channel, msg_uuid):
        return "%s/c/kn/%s/status?uuid=%s&status=%%d" % (self.url, channel.uuid, msg_uuid)

    def build_send(self, channel, urn_path, text, *, high_priority=False, msg_uuid=None,
                   legacy_unicode=False):
        """(msg uuid, the request target) of the GET courier's Send makes."""
        msg_uuid = msg_uuid or str(uuidlib.uuid4())
        form = {"username": channel.username, "password": channel.password,
                "from": channel.address, "text": text, "to": urn_path,
                "dlr-url": self.dlr_url(channel, msg_uuid), "dlr-mask": channel.dlr_mask}
        if high_priority:
            form["priority"] = "1"
        if channel.use_national:
            parsed = phonenumbers.parse(urn_path, channel.country)
            form["to"] = str(parsed.national_number)
        encoding = channel.encoding
        if encoding == "S":
            encoding = "D" if gsm7.is_gsm7(text) else "U"
        if encoding == "U":
            form["coding"] = "2"
            if legacy_unicode:
                form["charset"] = "utf8"
            else:
                form["text"] = text.encode("utf-16-be")
        encoded = go_query_encode(form.items())
        url = channel.send_url + ("&" if "?" in channel.send_url else "?") + encoded
        return msg_uuid, url

    def send(self, channel, urn_path, text, **kwargs):
        """Make one send as courier does; the Sent it made (also kept in `sends`)."""
        msg_uuid, url = self.build_send(channel, urn_path, text, **kwargs)
        parts = urllib.parse.urlsplit(url)
        target = parts.path + "?" + parts.query
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            conn.request("GET", target)      # as built: nothing re-quoted on the way
            resp = conn.getresponse()
            status, body = resp.status, resp.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as exc:
            status, body = None, str(exc)
        finally:
            conn.close()
        if status is None or status // 100 == 5:
            result = "retry"
        elif status == 429:
            result = "throttled"
        elif status // 100 != 2:
            result = "failed"
        else:
            result = "wired"
        sent = Sent(msg_uuid=msg_uuid, url=target, status=status, body=body, result=result)
        with self._lock:
            self.sends.append(sent)
        return sent

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for(self, predicate, timeout=30.0):
        """Wait until predicate() (called under the lock) is true; returns its last value."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout)

    # -- HTTP ------------------------------------------------------------------------------------

    def _answer(self, method, raw_path, content_type, body):
        parts = urllib.parse.urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"     # chi's StripSlashes
        match = re.fullmatch(r"/c/kn/([^/]+)/(receive|status)", path)
        if not match:
            return 404, {"message": "Not Found", "data": [
                {"type": "error", "error": "not found: %s" % parts.path}]}
        allowed = "POST" if match.group(2) == "receive" else "GET"
        if method != allowed:
            return 405, {"message": "Method Not Allowed", "data": [
                {"type": "error", "error": "method not allowed: %s" % method}]}
        channel = self.channels.get(match.group(1))
        if channel is None:
            return 400, error_body("channel not found")
        pairs = []
        if method == "POST" and content_type == "application/x-www-form-urlencoded":
            pairs += urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                            keep_blank_values=True)
        pairs += urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        form = dict(pairs)                        # the last value of a field wins
        if match.group(2) == "receive":
            return self._receive(channel, form)
        return self._status(channel, form)

    def _handler(self):
        courier = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                hit = Hit(self.command, self.path, content_type, body)
                status, answer = courier._answer(self.command, self.path, content_type, body)
                hit.status, hit.answer = status, answer
                with courier._lock:
                    courier.hits.append(hit)
                    courier._lock.notify_all()
                data = (json.dumps(answer) + "\n").encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler


def error_body(text):
    return {"message": "Error", "data": [{"type": "error", "error": text}]}


def validation_body(names, tag="required"):
    """courier's WriteError for go-playground validator errors: the error's own text, then one
    "field '<name>' <tag>" per field."""
    first = "\n".join("Key: '%s' Error:Field validation for '%s' failed on the '%s' tag"
                      % (name, name, tag) for name in names)
    return {"message": "Error", "data": [{"type": "error", "error": first}] + [
        {"type": "error", "error": "field '%s' %s" % (name, tag)} for name in names]}

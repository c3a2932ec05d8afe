"""The HTTP API, through a real waitress server on 127.0.0.1 and the real store.

RapidSMS's own KannelBackend (2.2.0) makes the sendsms requests where it matters, so what is tested
is what RapidSMS really sends; what got committed is read back from the store.
"""

import ast
import contextlib
import http.client
import json
import logging
import os
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webserver import served
import gsmbridge
from gsmbridge import config as configmod
from gsmbridge.store import Store
from gsmbridge.web import create_app

USER, PASSWORD = "rapidsms", "s3cret pass%&+"
A, B = "+255700000001", "+255700000002"


class Served:
    def __init__(self, url, store, config):
        self.url, self.store, self.config = url, store, config

    def sendsms(self, method="GET", auth=True, **params):
        if auth and self.config.http.auth_required:
            params.setdefault("username", USER)
            params.setdefault("password", PASSWORD)
        kwargs = {"params": params} if method == "GET" else {"data": params}
        return requests.request(method, self.url + "/cgi-bin/sendsms", timeout=10, **kwargs)

    def raw(self, method, target, body=None, headers=None):
        """A request exactly as given, bypassing requests' URL re-quoting."""
        host, port = urllib.parse.urlsplit(self.url).netloc.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace"), resp
        finally:
            conn.close()

    def outbound(self):
        """Every outbound message committed, oldest first."""
        rows = [r for r in self.store.recent(limit=10000) if r["direction"] == "out"]
        return sorted(rows, key=lambda r: r["seq"])


def open_store(cfg):
    os.makedirs(os.path.dirname(cfg.store.path), exist_ok=True)
    return Store(cfg.store.path)


@contextlib.contextmanager
def serving(store, config):
    """create_app served by waitress on 127.0.0.1, an ephemeral port, in a thread."""
    with served(create_app(store, config)) as url:
        yield Served(url, store, config)


@pytest.fixture
def serve(tmp_path):
    """serve(**config sections) -> a running Served; everything is stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(**sections):
            base = tmp_path / ("bridge%d" % len(started))
            cfg = configmod.for_tests(str(base), **sections)
            store = open_store(cfg)
            stack.callback(store.close)
            started.append(store)
            return stack.enter_context(serving(store, cfg))
        started = []
        yield start


@pytest.fixture
def bridge(serve):
    return serve(http={"username": USER, "password": PASSWORD})


@pytest.fixture
def open_bridge(serve):
    """No credentials configured (loopback); the longest message 10 parts, the limit its
    refusals are written against (the shipped default is larger: test_long_texts_...)."""
    return serve(modem={"max_parts": 10})


@pytest.fixture
def rapidsms(bridge, monkeypatch):
    """RapidSMS 2.2.0's KannelBackend, configured the way the README says, aimed at the bridge."""
    outgoing = pytest.importorskip("rapidsms.backends.kannel.outgoing")
    # reverse() needs Django's URLconf; RapidSMS's is "delivery-report/" under the project.
    monkeypatch.setattr(outgoing, "reverse", lambda name: "/delivery-report/")
    return outgoing.KannelBackend(
        None, "kannel-backend",
        sendsms_url=bridge.url + "/cgi-bin/sendsms",
        sendsms_params={"smsc": "", "from": "", "username": USER, "password": PASSWORD},
        charset="UTF-8", coding=2, encode_errors="strict",
        delivery_report_url="http://127.0.0.1:8000")


def dlr_url(message_id):
    return ("http://127.0.0.1:8000/delivery-report/?message_id=%s&status=%%d&status_text=%%A"
            "&smsc=%%i&sms_id=%%I&date_sent=%%t&identity=%%p" % message_id)


# -- what RapidSMS sends ---------------------------------------------------------------------------

def test_rapidsms_ascii(bridge, rapidsms):
    rapidsms.send("a1b2", "Hello there, your appointment is on Monday.", [A])
    [msg] = bridge.outbound()
    assert msg["recipient"] == A
    assert msg["text"] == "Hello there, your appointment is on Monday."
    assert (msg["encoding"], msg["parts"], msg["status"]) == ("gsm7", 1, "queued")
    assert msg["modem"] is None and msg["sender"] is None
    assert msg["dlr_mask"] == 31
    assert msg["dlr_url"] == dlr_url("a1b2")


def test_rapidsms_long_text(bridge, rapidsms):
    text = ("Reminder: bring the child's health card. " * 10)[:400]
    rapidsms.send("c3", text, [A])
    [msg] = bridge.outbound()
    assert msg["text"] == text
    assert (msg["encoding"], msg["parts"]) == ("gsm7", 3)  # 153 + 153 + 94 septets


def test_rapidsms_unicode_coding_2(bridge, rapidsms):
    text = "Habari 😀 — karibu! Ελληνικά ✓"
    rapidsms.send("d4", text, [A, B])
    msgs = bridge.outbound()
    assert [m["recipient"] for m in msgs] == [A, B]
    for msg in msgs:
        assert msg["text"] == text
        assert (msg["encoding"], msg["parts"]) == ("ucs2", 1)
        assert msg["dlr_url"] == dlr_url("d4")


def test_coding_2_does_not_force_ucs2(bridge, rapidsms):
    """coding says what the text may need: an all-GSM text goes 7-bit, at 160 per SMS."""
    rapidsms.send("e5", "x" * 160, [A])
    [msg] = bridge.outbound()
    assert (msg["encoding"], msg["parts"]) == ("gsm7", 1)


def test_answer_is_kannels(bridge):
    resp = bridge.sendsms(to=A, text="hi")
    assert (resp.status_code, resp.text) == (202, "0: Accepted for delivery")


# -- the `to` field --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw_to, numbers", [
    ("%2B255700000001+%2B255700000002", [A, B]),    # requests/RapidSMS: "+2557.. +2557.."
    ("%2B255700000001%20%2B255700000002", [A, B]),
    ("+255700000001", [A]),                          # a hand-typed literal '+' keeps the prefix
    ("+255700000001+255700000002", [A, "255700000002"]),
    ("255700000001+255700000002", ["255700000001", "255700000002"]),
    ("0712345678", ["0712345678"]),
])
def test_to_field_splitting(open_bridge, raw_to, numbers):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%s&text=hi" % raw_to)
    assert status == 202, body
    assert [m["recipient"] for m in open_bridge.outbound()] == numbers


def test_to_given_twice_sends_to_both(open_bridge):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%2B255700000001&text=hi"
                                             "&to=%2B255700000002")
    assert status == 202
    assert [m["recipient"] for m in open_bridge.outbound()] == [A, B]


@pytest.mark.parametrize("params, status, message", [
    ({"text": "hi"}, 400, "Missing receiver number, rejected"),
    ({"to": "  ", "text": "hi"}, 400, "Empty receiver number not allowed, rejected"),
    ({"to": A + " 07123x5", "text": "hi"}, 400, "'07123x5'"),
    ({"to": "12", "text": "hi"}, 400, "'12' misformed"),
    ({"to": A}, 400, "Empty text, rejected"),
    ({"to": A, "text": ""}, 400, "Empty text, rejected"),
    ({"to": A, "text": "a" * 2000}, 400, "Message too long: 14 parts, at most 10"),
    ({"to": A, "text": "😀" * 400}, 400, "Message too long: 13 parts, at most 10"),
    ({"to": A, "text": "hi", "coding": "3"}, 400, "coding field misformed"),
    ({"to": A, "text": "hi", "coding": "x"}, 400, "coding field misformed"),
    ({"to": A, "text": "hi", "dlr-mask": "all"}, 400, "dlr-mask field misformed"),
    ({"to": A, "text": "hi", "dlr-url": "javascript:alert(1)"}, 400, "dlr-url field misformed"),
    ({"to": A, "text": "hi", "dlr-url": "http://[::1/dlr"}, 400, "dlr-url field misformed"),
    ({"to": A, "text": "hi", "dlr-url": "http://rs:99999/dlr"}, 400, "dlr-url field misformed"),
    ({"to": A, "text": "hi", "dlr-url": "http:///dlr?type=%d"}, 400, "dlr-url field misformed"),
    ({"to": A, "text": "hi", "charset": "klingon"}, 400, "Unknown charset 'klingon'"),
    ({"to": A, "text": "hi", "charset": "rot13"}, 400, "Unknown charset 'rot13'"),
    ({"to": A, "text": "hi", "smsc": "usb0-modem"}, 403, "Not routable. Do not try again."),
])
def test_refusals(open_bridge, params, status, message):
    resp = open_bridge.sendsms(**params)
    assert resp.status_code == status
    assert message in resp.text
    assert "Traceback" not in resp.text
    assert open_bridge.outbound() == []


def test_too_many_recipients(serve):
    bridge = serve(http={"max_recipients": 3})
    resp = bridge.sendsms(to=" ".join("+25570000000%d" % i for i in range(4)), text="hi")
    assert resp.status_code == 400
    assert resp.text == "Too many receivers: 4, at most 3, rejected"
    assert bridge.sendsms(to=" ".join("+25570000000%d" % i for i in range(3)),
                          text="hi").status_code == 202


def test_smsc_naming_our_modem_pins_it(open_bridge):
    assert open_bridge.sendsms(to=A, text="hi", smsc="modem").status_code == 202
    [msg] = open_bridge.outbound()
    assert msg["modem"] == "modem"


def test_sender_and_deprecated_dlr_names(open_bridge):
    resp = open_bridge.sendsms(to=A, text="hi", **{"from": "Clinic", "dlrmask": "3",
                                                   "dlrurl": "http://127.0.0.1:9/dlr?s=%d"})
    assert resp.status_code == 202
    [msg] = open_bridge.outbound()
    assert (msg["sender"], msg["dlr_mask"], msg["dlr_url"]) == ("Clinic", 3,
                                                               "http://127.0.0.1:9/dlr?s=%d")


# -- charsets --------------------------------------------------------------------------------------

@pytest.mark.parametrize("query, text", [
    ("text=caf%C3%A9", "café"),                                    # default UTF-8
    ("text=caf%E9&charset=ISO-8859-1", "café"),
    ("text=caf%E9&charset=windows-1252", "café"),
    ("text=%00c%00a%00f%00%E9&coding=2", "café"),                  # coding 2: UTF-16BE default
    ("text=%00c%00a%00f%00%E9&coding=2&charset=UCS-2", "café"),
    ("text=%D8%3D%DE%00&coding=2", "😀"),
    ("text=%F0%9F%98%80&coding=2&charset=UTF-8", "😀"),            # RapidSMS with charset UTF-8
    ("text=a+b%2Bc", "a b+c"),
])
def test_text_is_decoded_in_the_given_charset(open_bridge, query, text):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%2B255700000001&" + query)
    assert (status, body) == (202, "0: Accepted for delivery")
    [msg] = open_bridge.outbound()
    assert msg["text"] == text


@pytest.mark.parametrize("query, charset", [
    ("text=caf%E9", "utf-8"),
    ("text=%FF%FE%00&charset=UTF-8", "utf-8"),
    ("text=%00c%00&coding=2", "utf-16-be"),                         # odd byte count
    ("text=%DE%00%D8%3D&coding=2", "utf-16-be"),                    # surrogates the wrong way
    ("text=caf%E9&charset=ascii", "ascii"),
])
def test_undecodable_text_is_refused(open_bridge, query, charset):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%2B255700000001&" + query)
    assert status == 400
    assert body == "The text is not valid %s, rejected" % charset
    assert open_bridge.outbound() == []


# -- RapidPro's courier ----------------------------------------------------------------------------

@pytest.mark.parametrize("query, text", [
    # courier's handler_test.go: "☺" and "Hi ☺" as UTF-16BE bytes, coding=2, no charset; Go's
    # QueryEscape writes the byte 0x20 as '+'
    ("text=%26%3A&coding=2", "\u263a"),
    ("text=%00H%00i%00+%26%3A&coding=2", "Hi \u263a"),
    # emoji are surrogate pairs in UTF-16: a face, a thumb with its skin tone, a flag
    ("text=%D8%3D%DE%00%00+%D8%3D%DC%4D%D8%3C%DF%FD%00+%D8%3C%DD%F9%D8%3C%DD%FF&coding=2",
     "\U0001F600 \U0001F44D\U0001F3FD \U0001F1F9\U0001F1FF"),
    ("text=%00%2B%00%26%00%25&coding=2", "+&%"),                    # bytes that are separators
])
def test_courier_s_utf16be_text_without_a_charset(open_bridge, query, text):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%2B255700000001&" + query)
    assert (status, body) == (202, "0: Accepted for delivery")
    [msg] = open_bridge.outbound()
    assert (msg["text"], msg["encoding"]) == (text, "gsm7" if text == "+&%" else "ucs2")


@pytest.mark.parametrize("query", [
    "text=%00H%00i%26&coding=2",                   # an odd number of bytes
    "text=%00H%D8%3D&coding=2",                    # a high surrogate with nothing after it
    "text=%DE%00%00H&coding=2",                    # a low surrogate alone
    "text=%D8%3D%D8%3D%DE%00&coding=2",            # a high surrogate before a pair
])
def test_utf16be_that_is_not_whole_is_refused(open_bridge, query):
    status, body, _ = open_bridge.raw("GET", "/cgi-bin/sendsms?to=%2B255700000001&" + query)
    assert (status, body) == (400, "The text is not valid utf-16-be, rejected")
    assert open_bridge.outbound() == []


def test_long_texts_go_out_whole_with_the_shipped_default(serve):
    bridge = serve()                                # max_parts as shipped
    for text, parts, encoding in (("a" * 1600, 11, "gsm7"), ("a" * 4096, 27, "gsm7"),
                                  ("\u0436" * 1600, 24, "ucs2")):
        resp = bridge.sendsms(to=A, text=text.encode("utf-16-be"), coding="2")
        assert resp.status_code == 202, resp.text
        assert (bridge.outbound()[-1]["parts"], bridge.outbound()[-1]["encoding"]) == \
            (parts, encoding)
    resp = bridge.sendsms(to=A, text="a" * (27 * 153 + 1))
    assert (resp.status_code, resp.text) == (400, "Message too long: 28 parts, at most 27")


def test_sendsms_priority(open_bridge):
    for priority in ("1", "", "3"):
        assert open_bridge.sendsms(to=A, text="hi", priority=priority).status_code == 202
    assert [m["priority"] for m in open_bridge.outbound()] == [1, 0, 3]
    for priority in ("4", "-1", "high"):
        resp = open_bridge.sendsms(to=A, text="hi", priority=priority)
        assert (resp.status_code, resp.text) == (
            400, "priority field misformed (a whole number 0 to 3), rejected")
    assert len(open_bridge.outbound()) == 3


def test_from_naming_a_modem_or_its_number_pins_the_message(serve):
    pool = serve(modem={"number": "+255700000100"},
                 **{"modem:airtel": {"port": "sim://", "number": "0780000200"}})
    cases = [({"from": "+255700000100"}, "modem"), ({"from": "0700000100"}, "modem"),
             ({"from": "255780000200"}, "airtel"), ({"from": "airtel"}, "airtel"),
             ({"from": "Clinic"}, None), ({"from": ""}, None), ({}, None),
             ({"from": "+255700000100", "smsc": "airtel"}, "airtel")]   # smsc says it first
    for params, modem in cases:
        assert pool.sendsms(to=A, text="hi", **params).status_code == 202
        assert pool.outbound()[-1]["modem"] == modem, params
        assert pool.outbound()[-1]["sender"] == (params.get("from") or None)


# -- POST ------------------------------------------------------------------------------------------

def test_post_form(bridge):
    resp = bridge.sendsms("POST", to=A, text="Jambo 😀", charset="UTF-8", coding="2")
    assert resp.status_code == 202
    [msg] = bridge.outbound()
    assert (msg["text"], msg["encoding"]) == ("Jambo 😀", "ucs2")


def test_post_form_with_credentials_in_query(bridge):
    query = urllib.parse.urlencode({"username": USER, "password": PASSWORD})
    status, body, _ = bridge.raw("POST", "/cgi-bin/sendsms?" + query,
                                 body=b"to=%2B255700000001&text=caf%E9&charset=latin-1",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 202, body
    assert bridge.outbound()[0]["text"] == "café"


def test_post_text_plain_with_kannel_headers(bridge):
    status, body, _ = bridge.raw("POST", "/cgi-bin/sendsms", body="Ωmega 😀".encode("utf-16-be"),
                                 headers={"Content-Type": "text/plain; charset=UTF-16BE",
                                          "X-Kannel-Username": USER,
                                          "X-Kannel-Password": PASSWORD,
                                          "X-Kannel-To": A + " " + B,
                                          "X-Kannel-DLR-Mask": "1",
                                          "X-Kannel-DLR-Url": "http://127.0.0.1:9/d?%d"})
    assert (status, body) == (202, "0: Accepted for delivery")
    msgs = bridge.outbound()
    assert [m["recipient"] for m in msgs] == [A, B]
    assert {(m["text"], m["encoding"], m["dlr_mask"]) for m in msgs} == {("Ωmega 😀", "ucs2", 1)}


def test_post_other_content_type(open_bridge):
    status, body, _ = open_bridge.raw("POST", "/cgi-bin/sendsms?to=%2B255700000001&text=x",
                                      body=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert (status, body) == (415, "Unsupported content-type, rejected")


def test_oversized_body_and_query(serve):
    bridge = serve(http={"max_body": 2048})
    resp = requests.post(bridge.url + "/cgi-bin/sendsms", data={"to": A, "text": "x" * 3000},
                         timeout=10)
    assert resp.status_code == 413 and "at most 2048 bytes" in resp.text
    resp = requests.get(bridge.url + "/cgi-bin/sendsms", params={"to": A, "text": "x" * 3000},
                        timeout=10)
    assert resp.status_code == 414
    resp = requests.post(bridge.url + "/api/v1/messages", json={"to": A, "text": "x" * 3000},
                         timeout=10)
    assert resp.status_code == 413 and resp.json()["error"].startswith("Request too large")
    # chunked, no Content-Length: still cut off
    resp = requests.post(bridge.url + "/api/v1/messages", data=iter([b"{" + b" " * 1500] * 3),
                         timeout=10)
    assert resp.status_code == 413
    assert bridge.outbound() == []


# -- credentials -----------------------------------------------------------------------------------

@pytest.mark.parametrize("creds", [
    {},
    {"username": USER},
    {"username": USER, "password": "wrong"},
    {"username": "rapidsmsx", "password": PASSWORD},
    {"user": USER, "pass": PASSWORD + " "},
])
def test_sendsms_bad_credentials(bridge, creds):
    resp = bridge.sendsms(auth=False, to=A, text="hi", **creds)
    assert (resp.status_code, resp.text) == (403, "Authorization failed for sendsms")
    assert bridge.outbound() == []


def test_sendsms_credentials_three_ways(bridge):
    assert bridge.sendsms(auth=False, to=A, text="1", username=USER,
                          password=PASSWORD).status_code == 202
    assert bridge.sendsms(auth=False, to=A, text="2", user=USER,
                          **{"pass": PASSWORD}).status_code == 202
    resp = requests.get(bridge.url + "/cgi-bin/sendsms", params={"to": A, "text": "3"},
                        auth=(USER, PASSWORD), timeout=10)
    assert resp.status_code == 202
    assert [m["text"] for m in bridge.outbound()] == ["1", "2", "3"]


def test_json_api_and_status_need_basic_auth(bridge):
    for method, path in (("POST", "/api/v1/messages"), ("GET", "/api/v1/messages/x"),
                         ("GET", "/status")):
        resp = requests.request(method, bridge.url + path, json={"to": A, "text": "hi"},
                                timeout=10)
        assert resp.status_code == 401, path
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
        resp = requests.request(method, bridge.url + path, json={"to": A, "text": "hi"},
                                auth=(USER, "nope"), timeout=10)
        assert resp.status_code == 401, path
    resp = requests.get(bridge.url + "/status", auth=(USER, PASSWORD), timeout=10)
    assert resp.status_code == 200
    assert bridge.outbound() == []


def test_credentials_never_logged(bridge, caplog):
    caplog.set_level(logging.DEBUG)
    bridge.sendsms(to=A, text="hi")
    bridge.sendsms(auth=False, to=A, text="hi", username=USER, password="wrong-secret")
    # the server side's logs (the client here, urllib3, logs its own URLs: not ours to judge)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))
    assert "bad credentials" in logged  # the refusal is logged, never the secret
    assert "wrong-secret" not in logged
    assert PASSWORD not in logged and urllib.parse.quote_plus(PASSWORD) not in logged


# -- JSON API --------------------------------------------------------------------------------------

def api(bridge, method, path, **kwargs):
    kwargs.setdefault("auth", (USER, PASSWORD))
    return requests.request(method, bridge.url + path, timeout=10, **kwargs)


def test_json_send_and_read_back(bridge):
    resp = api(bridge, "POST", "/api/v1/messages",
               json={"to": [A, B], "text": "Chanjo kesho 💉", "dlr_url": "http://127.0.0.1:9/d"})
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "queued" and body["parts"] == 1 and body["encoding"] == "ucs2"
    assert len(body["ids"]) == 2 and body["id"] == body["ids"][0]
    assert resp.headers["Location"] == "/api/v1/messages/%s" % body["id"]

    msg = api(bridge, "GET", "/api/v1/messages/%s" % body["ids"][1]).json()
    assert msg["id"] == body["ids"][1]
    assert (msg["to"], msg["text"], msg["status"], msg["parts"]) == (B, "Chanjo kesho 💉",
                                                                      "queued", 1)
    assert msg["attempts"] == 0 and msg["last_error"] is None
    assert isinstance(msg["created_at"], float)
    assert msg["sent_at"] is None and msg["delivered_at"] is None
    stored = bridge.store.get_outbound(body["ids"][1])
    assert (stored["dlr_url"], stored["dlr_mask"]) == ("http://127.0.0.1:9/d", 31)


def test_json_smsc_pins_to_a_modem_of_the_pool(serve):
    pool = serve(**{"modem:airtel": {"port": "sim://"}})
    for smsc, modem in (("airtel", "airtel"), ("modem", "modem"), (None, None), ("", None)):
        resp = api(pool, "POST", "/api/v1/messages", json={"to": A, "text": "hi", "smsc": smsc})
        assert resp.status_code == 202, resp.text
        assert pool.store.get_outbound(resp.json()["id"])["modem"] == modem
    resp = api(pool, "GET", "/api/v1/messages/%s" % pool.outbound()[0]["id"])
    assert resp.json()["modem"] == "airtel"


def test_json_priority(bridge):
    for priority, stored in ((2, 2), (None, 0), (0, 0)):
        resp = api(bridge, "POST", "/api/v1/messages",
                   json={"to": A, "text": "hi", "priority": priority})
        assert resp.status_code == 202, resp.text
        assert bridge.store.get_outbound(resp.json()["id"])["priority"] == stored
    for priority in (4, -1, "1", True, 1.5):
        resp = api(bridge, "POST", "/api/v1/messages",
                   json={"to": A, "text": "hi", "priority": priority})
        assert resp.status_code == 400 and "priority" in resp.json()["error"]
    assert len(bridge.outbound()) == 3


@pytest.mark.parametrize("smsc", ["vodacom", "Airtel", "airtel,modem"])
def test_json_smsc_naming_no_modem_is_refused_as_kannel_does(serve, smsc):
    pool = serve(**{"modem:airtel": {"port": "sim://"}})
    resp = api(pool, "POST", "/api/v1/messages", json={"to": [A, B], "text": "hi", "smsc": smsc})
    assert resp.status_code == 403
    assert resp.json() == {"error": "Not routable. Do not try again."}
    assert pool.outbound() == []


def test_json_single_number(bridge):
    resp = api(bridge, "POST", "/api/v1/messages", json={"to": A, "text": "x" * 161})
    assert resp.status_code == 202 and resp.json()["parts"] == 2
    assert len(resp.json()["ids"]) == 1


def test_json_unknown_id(bridge):
    resp = api(bridge, "GET", "/api/v1/messages/0123456789abcdef")
    assert resp.status_code == 404
    assert resp.json() == {"error": "No message '0123456789abcdef'"}


@pytest.mark.parametrize("body, words", [
    (b"{", "not JSON"),
    (b"\xff\xfe{", "not JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"to": "+255700000001"}', "text must be a string"),
    (b'{"to": [], "text": "x"}', "non-empty list"),
    (b'{"to": 255700000001, "text": "x"}', "to must be"),
    (b'{"to": "+2557 0000 0001", "text": "x"}', "misformed"),
    (b'{"to": "+255700000001", "text": ""}', "Empty text"),
    (b'{"to": "+255700000001", "text": "\\ud800"}', "unpaired surrogate"),
    (b'{"to": "+255700000001", "txt": "x"}', "Unknown field 'txt'"),
    (b'{"to": "+255700000001", "text": "x", "dlr_url": "ftp://x"}', "dlr_url field misformed"),
    (b'{"to": "+255700000001", "text": "x", "dlr_url": "http://h/\\r\\nX: 1"}',
     "dlr_url field misformed"),
    (b'{"to": "+255700000001", "text": "x", "smsc": ["modem"]}', "smsc must be"),
    (b"[" * 50000 + b"]" * 50000, "not JSON"),
])
def test_json_refusals(bridge, body, words):
    resp = api(bridge, "POST", "/api/v1/messages", data=body,
               headers={"Content-Type": "application/json"})
    assert resp.status_code in (400, 413)
    assert words in resp.json()["error"] or resp.status_code == 413
    assert bridge.outbound() == []


# -- errors everywhere -----------------------------------------------------------------------------

def test_unknown_path_and_wrong_methods(open_bridge):
    resp = requests.get(open_bridge.url + "/cgi-bin/sendsmsx", timeout=10)
    assert (resp.status_code, resp.text) == (404, "Unknown request.")
    resp = requests.get(open_bridge.url + "/api/v2/x", timeout=10)
    assert resp.status_code == 404 and resp.json() == {"error": "Unknown request."}
    resp = requests.put(open_bridge.url + "/cgi-bin/sendsms", timeout=10)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    resp = requests.delete(open_bridge.url + "/api/v1/messages", timeout=10)
    assert resp.status_code == 405 and resp.json() == {"error": "Method not allowed"}
    resp = requests.head(open_bridge.url + "/cgi-bin/sendsms?to=%2B255700000001&text=x", timeout=10)
    assert resp.status_code == 405
    assert open_bridge.outbound() == []


def test_store_failure_is_temporary_not_500(open_bridge):
    open_bridge.store.close()
    resp = open_bridge.sendsms(to=A, text="hi")
    assert (resp.status_code, resp.text) == (503, "Temporal failure, try again later.")
    resp = requests.post(open_bridge.url + "/api/v1/messages", json={"to": A, "text": "hi"},
                         timeout=10)
    assert resp.status_code == 503 and "Traceback" not in resp.text
    resp = requests.get(open_bridge.url + "/health", timeout=10)
    assert resp.status_code == 503 and resp.json()["ok"] is False


# -- health and status -----------------------------------------------------------------------------

def test_health_follows_the_modem(open_bridge):
    store = open_bridge.store

    def health():
        resp = requests.get(open_bridge.url + "/health", timeout=10)
        return resp.status_code, resp.json()

    assert health() == (503, {"ok": False, "reason": "modem modem has not started"})
    store.set_modem("modem", state="booting")
    assert health() == (503, {"ok": False, "reason": "modem modem is booting"})
    store.set_modem("modem", state="up", signal=17)
    assert health() == (200, {"ok": True})
    store.set_modem("modem", state="down", last_error="ModemGone: port vanished")
    assert health() == (503, {"ok": False,
                              "reason": "modem modem is down: ModemGone: port vanished"})
    store.set_modem("modem", state="up", updated_at=time.time() - 3600)
    status, body = health()
    assert status == 503 and "has not reported for 3600 s" in body["reason"]


def test_status(open_bridge):
    open_bridge.store.set_modem("modem", state="up", signal=20, operator="Vodacom")
    open_bridge.sendsms(to=A, text="hi")
    resp = requests.get(open_bridge.url + "/status", timeout=10)
    assert resp.status_code == 200
    data = resp.json()
    assert data["counts"]["outbound"]["queued"] == 1
    assert data["modems"]["modem"]["operator"] == "Vodacom"
    assert [r["text"] for r in data["recent"]] == ["hi"]


# -- anything at all: never a 5xx ------------------------------------------------------------------

FIELDS = ["to", "text", "charset", "coding", "smsc", "from", "username", "user", "password",
          "pass", "dlr-mask", "dlr-url", "dlrmask", "validity", "udh", "x"]
SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "&=#%")
encoded = st.one_of(
    st.text(alphabet=SAFE, max_size=20),
    st.binary(max_size=20).map(lambda b: "".join("%%%02X" % c for c in b)),
    st.sampled_from(["%", "%Z", "%2", "+", "%2B255700000001", "255700000001", "UTF-8", "utf-16",
                     "UCS-2", "latin-1", "0", "1", "2", "-1", "31", "modem", "rot13", "idna",
                     "http://127.0.0.1:9/x?%d", "%F0%9F%98%80", "%D8%00"]),
)
field = st.tuples(st.one_of(st.sampled_from(FIELDS), st.text(alphabet=SAFE, max_size=8)),
                  st.lists(encoded, max_size=4).map("".join))
# Random fields, then (usually) a valid to and text: the first occurrence of a field wins, so the
# random ones override the valid ones and the checks behind "Missing receiver" get exercised too.
query = st.one_of(
    st.tuples(st.lists(field, max_size=8), st.booleans()).map(
        lambda t: "&".join(["%s=%s" % f for f in t[0]]
                           + (["to=%2B255700000001", "text=hello"] if t[1] else []))),
    st.text(alphabet=SAFE + "&=%", max_size=60),
)


FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_bridge(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    cfg = configmod.for_tests(str(base), modem={"max_parts": 3})
    store = open_store(cfg)
    with serving(store, cfg) as served:
        yield served
    store.close()


def assert_not_5xx(status, body):
    assert status < 500, body
    assert "Traceback" not in body


@FUZZ
@given(q=query, method=st.sampled_from(["GET", "POST"]))
def test_fuzz_sendsms_query(fuzz_bridge, q, method):
    status, body, _ = fuzz_bridge.raw(method, "/cgi-bin/sendsms?" + q)
    assert_not_5xx(status, body)


@FUZZ
@given(body=st.one_of(query.map(str.encode), st.binary(max_size=200)),
       ctype=st.sampled_from(["application/x-www-form-urlencoded", "text/plain",
                              "text/plain; charset=UTF-16BE", "text/plain; charset=nope",
                              "application/json", "multipart/form-data; boundary=x", ""]),
       headers=st.dictionaries(st.sampled_from(["X-Kannel-To", "X-Kannel-Coding",
                                                "X-Kannel-Username", "X-Kannel-DLR-Mask"]),
                               st.text(alphabet=SAFE + " ", max_size=20), max_size=3))
def test_fuzz_sendsms_body(fuzz_bridge, body, ctype, headers):
    if ctype:
        headers["Content-Type"] = ctype
    status, text, _ = fuzz_bridge.raw("POST", "/cgi-bin/sendsms", body=body, headers=headers)
    assert_not_5xx(status, text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)
api_bodies = st.one_of(
    st.fixed_dictionaries({"to": st.one_of(st.just(A), st.lists(st.just(B), max_size=3),
                                           json_values),
                           "text": st.one_of(st.text(max_size=600), json_values)},
                          optional={"dlr_url": json_values,
                                    "smsc": st.one_of(st.sampled_from(["modem", ""]),
                                                      json_values)}
                          ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
)


@FUZZ
@given(body=api_bodies, path=st.sampled_from(["/api/v1/messages", "/api/v1/messages/%00x",
                                              "/health", "/status", "/"]),
       method=st.sampled_from(["GET", "POST", "DELETE"]))
def test_fuzz_json_api(fuzz_bridge, body, path, method):
    status, text, _ = fuzz_bridge.raw(method, path, body=body,
                                      headers={"Content-Type": "application/json"})
    if path != "/health":
        assert_not_5xx(status, text)


# -- the package's walls -------------------------------------------------------------------------

def test_the_web_side_imports_nothing_of_the_modems_side():
    """web -> store -> modem: a view that reached the modem (or a worker) would hold RapidSMS's
    request for as long as a send takes, and a 202 would no longer mean "committed"."""
    root = os.path.dirname(os.path.dirname(gsmbridge.__file__))
    code = "import sys, gsmbridge.web; print(' '.join(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=dict(os.environ, PYTHONPATH=root)).stdout.split()
    assert "gsmbridge.web.operators" in loaded
    walls = ("gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.worker", "gsmbridge.forwarder",
             "gsmbridge.delivery", "gsmbridge.app", "gsmbridge.cli")
    assert [m for m in loaded if m.startswith(walls)] == []


def test_the_web_modules_import_each_other_one_way():
    """No cycle among gsmbridge/web's modules: checks.py at the bottom, importing none of them,
    the views above it, __init__.py (create_app) on top, reaching them all."""
    folder = os.path.join(os.path.dirname(gsmbridge.__file__), "web")
    modules = {f[:-3] for f in os.listdir(folder) if f.endswith(".py")}
    imports = {}
    for name in modules:
        with open(os.path.join(folder, name + ".py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imports[name] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = "gsmbridge.web" if node.level else ""      # from . import x
                module = ".".join(filter(None, (base, node.module)))
                if module == "gsmbridge.web":
                    imports[name].update(alias.name for alias in node.names)
                elif module.startswith("gsmbridge.web."):
                    imports[name].add(module.split(".")[2])
        imports[name] &= modules
    assert imports["checks"] == set()
    order = []

    def visit(name, path):
        assert name not in path, "import cycle: %s" % " -> ".join(path + (name,))
        if name not in order:
            for other in sorted(imports[name]):
                visit(other, path + (name,))
            order.append(name)

    visit("__init__", ())
    assert sorted(order) == sorted(modules)

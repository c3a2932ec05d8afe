"""RapidSMS's other dialects, request by request, against the real bridge on 127.0.0.1.

Outbound: RapidSMS 2.2.0's own VumiBackend posts to /vumi/send; rapidsms-threadless-router's
HttpBackend (Python 2, not installable here) and rapidsms-httprouter's ROUTER_URL are reproduced
exactly as their source builds the request: threadless posts
`urllib.urlencode({'text', 'identity'})` to its outgoing_url; httprouter fills its template with
`quote_plus` of each UTF-8 value and GETs it. What got committed is read back from the store.

Inbound: the forwarder's vumi and httprouter styles against a recording HTTP server.
"""

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmbridge import config as configmod
from gsmbridge.forwarder import Forwarder
from gsmbridge.store import Store
from test_web import assert_not_5xx, open_store, serving

USER, PASSWORD = "rapidsms", "s3cret pass%&+"
A, B = "+255700000001", "+255700000002"
TEXT = "Habari 😀 ñ € 中文 [x] {y} & a=b+c %20 100%\nnew line"


@pytest.fixture
def serve(tmp_path):
    """serve(**config sections) -> a running bridge (test_web.Served); stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(**sections):
            sections.setdefault("http", {"username": USER, "password": PASSWORD})
            # the longest message its refusals are written against (not the shipped default)
            for name in ["modem"] + [n for n in sections if n.startswith("modem:")]:
                sections[name] = dict({"max_parts": 10}, **sections.get(name, {}))
            cfg = configmod.for_tests(str(tmp_path / "bridge"), **sections)
            store = open_store(cfg)
            stack.callback(store.close)
            return stack.enter_context(serving(store, cfg))
        yield start


@pytest.fixture
def bridge(serve):
    return serve()


def committed(bridge):
    """Every outbound message committed, oldest first."""
    return bridge.outbound()


# -- Vumi: RapidSMS's VumiBackend -> /vumi/send -----------------------------------------------


def vumi_backend(bridge, **config):
    outgoing = pytest.importorskip("rapidsms.backends.vumi.outgoing")
    config.setdefault("sendsms_url", bridge.url + "/vumi/send")
    config.setdefault("sendsms_user", USER)
    config.setdefault("sendsms_pass", PASSWORD)
    return outgoing.VumiBackend(None, "vumi-backend", **config)


@pytest.mark.parametrize("text, encoding, parts", [
    ("hello", "gsm7", 1),
    (TEXT, "ucs2", 1),
    (" ".join("w%03d" % i for i in range(80)), "gsm7", 3),
    ("😀" * 100, "ucs2", 4),
])
def test_vumi_backend_send_is_committed(bridge, text, encoding, parts):
    backend = vumi_backend(bridge)
    backend.send(id_=7, text=text, identities=[A], context={"external_id": "abc123"})
    [row] = committed(bridge)
    assert (row["recipient"], row["text"]) == (A, text)
    assert (row["encoding"], row["parts"]) == (encoding, parts)


def test_vumi_answer_is_200_json_like_vumis(bridge):
    backend = vumi_backend(bridge)
    kwargs = backend.prepare_request(12, TEXT, [A], {"external_id": "in-1"})
    resp = requests.post(timeout=10, **kwargs)
    assert resp.status_code == 200        # VumiBackend raises on anything but 200
    body = resp.json()
    [row] = committed(bridge)
    assert body["message_id"] == row["id"] == resp.headers["X-Message-Id"]
    assert body["in_reply_to"] == "in-1"
    assert (body["content"], body["to_addr"], body["transport_type"]) == (TEXT, [A], "sms")
    assert body["status"] == "queued"


def test_vumi_several_identities_and_sendsms_params(bridge):
    # sendsms_params end up as extra keys of the JSON body; they must not be refused.
    backend = vumi_backend(bridge, sendsms_params={"transport_name": "x", "helper_metadata": {}})
    backend.send(id_=1, text="to both", identities=[A, B],
                 context={"from_addr": "12345", "endpoint": "default"})
    rows = committed(bridge)
    assert [(r["recipient"], r["text"], r["sender"]) for r in rows] == [
        (A, "to both", "12345"), (B, "to both", "12345")]


def test_vumi_transport_name_of_a_modem_pins_the_message(serve):
    pool = serve(**{"modem:airtel": {"port": "sim://"}})
    answers = {}
    for transport in ("airtel", "modem", "x", None):
        params = {} if transport is None else {"transport_name": transport}
        kwargs = vumi_backend(pool, sendsms_params=params).prepare_request(1, "hi", [A], {})
        resp = requests.post(timeout=10, **kwargs)
        assert resp.status_code == 200, resp.text
        answers[transport] = resp.json()["transport_name"]
    assert [r["modem"] for r in committed(pool)] == ["airtel", "modem", None, None]
    # the modem that will send it, when known; in a pool an unpinned message's is not yet
    assert answers == {"airtel": "airtel", "modem": "modem", "x": None, None: None}


@pytest.mark.parametrize("transport", ["x", 5, ["modem"], None])
def test_vumi_answer_names_the_one_modem_whatever_the_transport_name(bridge, transport):
    resp = requests.post(bridge.url + "/vumi/send", auth=(USER, PASSWORD), timeout=10,
                         json={"content": "hi", "to_addr": [A], "transport_name": transport})
    assert resp.status_code == 200 and resp.json()["transport_name"] == "modem"
    assert [r["modem"] for r in committed(bridge)] == [None]


def test_vumi_errors_are_json_whoever_answers(serve):
    bridge = serve(http={"username": USER, "password": PASSWORD, "max_body": 1024})
    resp = requests.post(bridge.url + "/vumi/send", auth=(USER, PASSWORD), timeout=10,
                         json={"content": "x" * 2000, "to_addr": [A]})
    assert resp.status_code == 413 and "too large" in resp.json()["error"]
    resp = requests.get(bridge.url + "/vumi/send", timeout=10)
    assert resp.status_code == 405 and resp.json() == {"error": "Method not allowed"}


def test_vumi_needs_the_credentials(bridge):
    wrong = vumi_backend(bridge, sendsms_pass="wrong")
    with pytest.raises(requests.HTTPError) as err:
        wrong.send(id_=1, text="hi", identities=[A])
    assert err.value.response.status_code == 401
    none = vumi_backend(bridge, sendsms_user=None, sendsms_pass=None)
    with pytest.raises(requests.HTTPError):
        none.send(id_=1, text="hi", identities=[A])
    assert committed(bridge) == []


def test_vumi_without_auth_configured(serve):
    bridge = serve(http={})
    vumi_backend(bridge, sendsms_user=None, sendsms_pass=None).send(
        id_=1, text="hi", identities=[A])
    assert [r["text"] for r in committed(bridge)] == ["hi"]


@pytest.mark.parametrize("body, words", [
    (b"not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"to_addr": [A], "content": None}).encode(), "content is empty"),
    (json.dumps({"to_addr": [A], "content": ""}).encode(), "Empty text"),
    (json.dumps({"to_addr": [A], "content": 5}).encode(), "content must be a string"),
    (json.dumps({"to_addr": [A], "content": "\ud800"}).encode(), "unpaired surrogate"),
    (json.dumps({"to_addr": [], "content": "hi"}).encode(), "to_addr"),
    (json.dumps({"content": "hi"}).encode(), "to_addr"),
    (json.dumps({"to_addr": ["07-12"], "content": "hi"}).encode(), "misformed"),
    (json.dumps({"to_addr": [A], "content": "x" * 1531}).encode(), "too long"),
    (json.dumps({"to_addr": [A], "content": "hi", "from_addr": "x" * 65}).encode(), "from_addr"),
])
def test_vumi_refusals_say_why(bridge, body, words):
    resp = requests.post(bridge.url + "/vumi/send", data=body, auth=(USER, PASSWORD),
                         headers={"content-type": "application/json"}, timeout=10)
    assert resp.status_code == 400
    assert words in resp.json()["error"]
    assert committed(bridge) == []


def test_vumi_get_is_not_allowed(bridge):
    assert requests.get(bridge.url + "/vumi/send", timeout=10).status_code == 405


# -- rapidsms-threadless-router's HttpBackend -> /http/send -------------------------------------


def threadless_send(outgoing_url, identity, text):
    """What HttpBackend.send does: urllib2.urlopen(url, urllib.urlencode(data)), a form POST.
    (Under Python 2, urlencode of a non-ASCII unicode text fails before anything is sent; a
    UTF-8 byte string goes through, percent-encoded, as here.)"""
    data = urllib.parse.urlencode({"text": text, "identity": identity}).encode("ascii")
    with urllib.request.urlopen(outgoing_url, data, timeout=10) as resp:
        return resp.status, resp.read().decode()


def credentials_query():
    return urllib.parse.urlencode({"username": USER, "password": PASSWORD})


def test_threadless_router_form_is_committed(bridge):
    status, body = threadless_send(bridge.url + "/http/send?" + credentials_query(), A, TEXT)
    [row] = committed(bridge)
    assert status == 200 and row["id"] in body
    assert (row["recipient"], row["text"], row["encoding"]) == (A, TEXT, "ucs2")


def test_threadless_configured_field_names(serve):
    bridge = serve(rapidsms={"url": "http://127.0.0.1:8000/http/simple-http/", "style": "http",
                             "identity_name": "phone", "text_name": "message"})
    resp = requests.post(bridge.url + "/http/send", auth=(USER, PASSWORD), timeout=10,
                         data={"phone": A, "message": "named", "identity": B, "text": "other"})
    assert resp.status_code == 200
    # the backend's own names are understood too
    resp = requests.post(bridge.url + "/http/send", auth=(USER, PASSWORD), timeout=10,
                         data={"identity": B, "text": "default names"})
    assert resp.status_code == 200
    assert [(r["recipient"], r["text"]) for r in committed(bridge)] == [
        (A, "named"), (B, "default names")]


def test_threadless_literal_plus_is_the_prefix(bridge):
    resp = requests.post(bridge.url + "/http/send", auth=(USER, PASSWORD), timeout=10,
                         data=b"identity=+255700000001&text=a+b",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200
    [row] = committed(bridge)
    assert (row["recipient"], row["text"]) == (A, "a b")


@pytest.mark.parametrize("query, auth, status", [
    ("", None, 401),
    ("?username=rapidsms&password=wrong", None, 401),
    ("", (USER, "wrong"), 401),
    ("", (USER, PASSWORD), 200),
    ("?user=rapidsms&pass=" + urllib.parse.quote(PASSWORD), None, 200),
])
def test_threadless_credentials(bridge, query, auth, status):
    resp = requests.post(bridge.url + "/http/send" + query, auth=auth, timeout=10,
                         data={"identity": A, "text": "hi"})
    assert resp.status_code == status
    assert len(committed(bridge)) == (1 if status == 200 else 0)


@pytest.mark.parametrize("data, headers, status, words", [
    ({"text": "hi"}, None, 400, "Missing receiver"),
    ({"identity": A}, None, 400, "Empty text"),
    ({"identity": A, "text": ""}, None, 400, "Empty text"),
    ({"identity": "nobody", "text": "hi"}, None, 400, "misformed"),
    (b"identity=%2B255700000001&text=%FF", None, 400, "not valid utf-8"),
    ('{"identity": "x"}', {"content-type": "application/json"}, 415, "content-type"),
])
def test_threadless_refusals(bridge, data, headers, status, words):
    if isinstance(data, bytes):
        headers = {"content-type": "application/x-www-form-urlencoded"}
    resp = requests.post(bridge.url + "/http/send", auth=(USER, PASSWORD), timeout=10,
                         data=data, headers=headers)
    assert resp.status_code == status
    assert words in resp.text
    assert committed(bridge) == []


# -- rapidsms-httprouter's ROUTER_URL -> /cgi-bin/sendsms ---------------------------------------


def router_url(base, username, password):
    """The ROUTER_URL the README gives: credentials URL-encoded with each '%' doubled (the
    template itself goes through Python's % operator), and '+' put back before the recipient
    (%%2B), because httprouter keeps numbers as bare digits."""
    def literal(value):
        return urllib.parse.quote_plus(value).replace("%", "%%")
    return (base + "/cgi-bin/sendsms?username=%s&password=%s"
            "&smsc=%%(backend)s&to=%%%%2B%%(recipient)s&text=%%(text)s"
            % (literal(username), literal(password)))


def httprouter_send(template, backend, recipient, text, msg_id):
    """HttpRouterThread.build_send_url and fetch_url: quote_plus of each value's UTF-8 bytes,
    `ROUTER_URL % params`, urlopen; any 2xx counts as sent."""
    params = {"backend": backend, "recipient": recipient, "text": text, "id": msg_id}
    params = {k: urllib.parse.quote_plus(str(v).encode("utf-8")) for k, v in params.items()}
    try:
        with urllib.request.urlopen(template % params, timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_httprouter_template_is_committed_to_the_named_modem(bridge):
    template = router_url(bridge.url, USER, PASSWORD)
    # httprouter normalizes numbers to digits: "+255700000001" comes back as "255700000001"
    assert httprouter_send(template, "modem", A[1:], TEXT, 41) == 202
    [row] = committed(bridge)
    assert (row["recipient"], row["text"], row["modem"]) == (A, TEXT, "modem")


def test_httprouter_long_text(bridge):
    text = " ".join("w%03d" % i for i in range(80)) + " 😀"
    assert httprouter_send(router_url(bridge.url, USER, PASSWORD), "modem", A[1:], text, 1) == 202
    [row] = committed(bridge)
    assert (row["text"], row["parts"]) == (text, 6)


def test_httprouter_refusals_leave_it_queued_there(bridge):
    # a backend that is not this bridge's modem, or wrong credentials: a 4xx, which httprouter
    # logs and keeps the message queued for later ('Q'), so nothing is lost on either side.
    assert httprouter_send(router_url(bridge.url, USER, PASSWORD), "console", A[1:], "hi", 1) == 403
    assert httprouter_send(router_url(bridge.url, USER, "wrong"), "modem", A[1:], "hi", 2) == 403
    assert committed(bridge) == []


# -- inbound: the forwarder's vumi and httprouter styles ------------------------------------


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "store.sqlite3"))
    yield s
    s.close()




def add_inbound(store, sender=A, text=TEXT):
    return store.add_inbound(modem="modem", sender=sender, text=text,
                             sent_at="2024-05-01T10:00:00+03:00", parts=2, incomplete=False,
                             pdus=["AA", "BB"], keys=["k-%s-%f" % (sender, time.time())])


def forwarder(store, url, style):
    return Forwarder(store, url=url, style=style, timeout=5.0, backoff_base=0.01,
                     backoff_cap=0.05)


def test_vumi_style_posts_what_vumibackendview_requires(store, sink):
    msg_id = add_inbound(store)
    assert forwarder(store, sink.url + "/backend/vumi-backend/", "vumi").step() == 1
    [req] = sink.requests
    assert (req.method, req.path) == ("POST", "/backend/vumi-backend/")
    assert req.header("content-type") == "application/json; charset=utf-8"
    assert "😀".encode("utf-8") in req.body          # UTF-8, which the view decodes
    assert req.headers["X-Message-Id"] == msg_id
    body = req.json()
    # VumiForm's required fields, all non-empty strings
    for field in ("message_id", "to_addr", "from_addr", "transport_name", "transport_type"):
        assert isinstance(body[field], str) and body[field], field
    assert body["message_id"] == msg_id                # RapidSMS keeps it as external_id
    assert (body["from_addr"], body["content"]) == (A, TEXT)
    assert (body["to_addr"], body["transport_name"], body["transport_type"]) == (
        "modem", "modem", "sms")
    assert body["in_reply_to"] is None and body["session_event"] is None
    assert body["transport_metadata"]["gsmbridge"]["parts"] == 2
    assert store.get_inbound(msg_id)["status"] == "delivered"


def test_vumi_style_retries_with_the_same_message_id(store, sink):
    answers = iter([500, 200])
    sink.set_handler(lambda request: next(answers))
    msg_id = add_inbound(store)
    fwd = forwarder(store, sink.url + "/backend/vumi-backend/", "vumi")
    fwd.step(now=1e12)
    fwd.step(now=1e12)
    assert [r.json()["message_id"] for r in sink.requests] == [msg_id, msg_id]
    assert {r.headers["X-Message-Id"] for r in sink.requests} == {msg_id}


def test_vumi_style_form_failure_is_kept_as_failed(store, sink):
    sink.set_response(400, "form failed to validate")   # what VumiBackendView answers
    msg_id = add_inbound(store)
    forwarder(store, sink.url + "/backend/vumi-backend/", "vumi").step()
    row = store.get_inbound(msg_id)
    assert row["status"] == "failed" and "form failed" in row["last_error"]


def test_httprouter_style_is_routers_receive(store, sink):
    msg_id = add_inbound(store)
    url = sink.url + "/router/receive?password=" + urllib.parse.quote("p&w %")
    assert forwarder(store, url, "httprouter").step() == 1
    [req] = sink.requests
    assert (req.method, req.path) == ("GET", "/router/receive")
    assert req.args == {"password": "p&w %", "backend": "modem", "sender": A, "message": TEXT}
    assert "sender=%2B255700000001" in req.raw_path   # '+' encoded, not a space
    assert req.headers["X-Message-Id"] == msg_id
    assert store.get_inbound(msg_id)["status"] == "delivered"


@pytest.mark.parametrize("style, url, warns", [
    ("httprouter", "http://127.0.0.1:8000/router/receive", False),
    ("vumi", "http://127.0.0.1:8000/backend/vumi-backend", True),
    ("vumi", "http://127.0.0.1:8000/backend/vumi-backend/", False),
])
def test_config_takes_the_new_styles(tmp_path, style, url, warns):
    cfg = configmod.for_tests(str(tmp_path), rapidsms={"url": url, "style": style})
    assert cfg.rapidsms.style == style
    assert bool(cfg.warnings) == warns


# -- fuzzing: whatever arrives, a 2xx or a 4xx with a reason, never a 500 ---------------------

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)
vumi_bodies = st.one_of(
    st.fixed_dictionaries(
        {"to_addr": st.one_of(st.just([A]), st.lists(st.just(B), max_size=3), json_values),
         "content": st.one_of(st.text(max_size=600), json_values)},
        optional={"from_addr": json_values, "in_reply_to": json_values, "metadata": json_values,
                  "session_event": json_values, "endpoint": json_values,
                  "transport_name": st.one_of(st.just("modem"), json_values)},
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
)
form_values = st.one_of(st.just("%2B255700000001"), st.text(max_size=40).map(urllib.parse.quote),
                        st.text(alphabet="%+&=abc0123456789", max_size=20))
form_bodies = st.one_of(
    st.lists(st.tuples(st.sampled_from(["identity", "text", "phone", "username", "password",
                                        "user", "pass", "x"]), form_values), max_size=6)
    .map(lambda fields: "&".join("%s=%s" % f for f in fields).encode()),
    st.binary(max_size=100),
)


@pytest.fixture(scope="module")
def fuzz_bridge(tmp_path_factory):
    cfg = configmod.for_tests(str(tmp_path_factory.mktemp("fuzz")), modem={"max_parts": 3},
                              rapidsms={"url": "http://127.0.0.1:8000/", "identity_name": "phone"})
    store = open_store(cfg)
    with serving(store, cfg) as served:
        yield served
    store.close()


@FUZZ
@given(body=vumi_bodies, ctype=st.sampled_from(["application/json", "text/plain", ""]))
def test_fuzz_vumi_send(fuzz_bridge, body, ctype):
    status, text, _ = fuzz_bridge.raw("POST", "/vumi/send", body=body,
                                      headers={"Content-Type": ctype} if ctype else {})
    assert_not_5xx(status, text)
    # a body not labelled JSON is never read as JSON (a cross-site form can post text/plain)
    assert status in ((200, 400) if ctype == "application/json" else (415,))


@FUZZ
@given(body=form_bodies, query=form_bodies,
       ctype=st.sampled_from(["application/x-www-form-urlencoded", "text/plain", ""]))
def test_fuzz_http_send(fuzz_bridge, body, query, ctype):
    target = "/http/send?" + urllib.parse.quote(query, safe="%&=+")
    status, text, _ = fuzz_bridge.raw("POST", target, body=body,
                                      headers={"Content-Type": ctype} if ctype else {})
    assert_not_5xx(status, text)

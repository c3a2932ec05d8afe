"""What a web page can make the operator's browser do to the bridge: nothing that sends.

Against the real bridge (waitress on 127.0.0.1, the real store), with and without credentials:
a JSON body not labelled application/json is refused 415; a sending request a browser labels
cross-site (Origin, Sec-Fetch-Site) is refused 403; a Host that is not the bridge's name is
refused 421 when no credentials guard it (DNS rebinding). Servers (python requests, as RapidSMS's
backends use it; RapidSMS 2.2.0's own KannelBackend) send none of those headers and are served
as before. Last, headless Chromium does it for real: the status page's own requests go through,
a page on another site and a rebound name get nothing.
"""

import contextlib
import json
import os
import shutil
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from gsmbridge import config as configmod
from test_web import open_store, serving

USER, PASSWORD = "rapidsms", "s3cret pass%&+"
A = "+255700000001"
EVIL = "http://evil.example"


@pytest.fixture
def serve(tmp_path):
    """serve(**config sections) -> a running bridge (test_web.Served); stopped after the test."""
    with contextlib.ExitStack() as stack:
        def start(**sections):
            cfg = configmod.for_tests(str(tmp_path / ("bridge%d" % len(stores))), **sections)
            store = open_store(cfg)
            stores.append(store)
            stack.callback(store.close)
            return stack.enter_context(serving(store, cfg))
        stores = []
        yield start


CREDENTIALS = {"open": {}, "credentials": {"username": USER, "password": PASSWORD}}


@pytest.fixture(params=sorted(CREDENTIALS))
def bridge(request, serve):
    """The bridge without credentials (loopback only) and with them."""
    return serve(http=CREDENTIALS[request.param])


def auth_of(bridge):
    return (USER, PASSWORD) if bridge.config.http.auth_required else None


# Every endpoint that queues an SMS, called as its real caller calls it (python requests, as
# RapidSMS's backends do); `headers` adds what a browser would add.

def sendsms_get(bridge, headers):
    params = {"to": A, "text": "hi", "smsc": "", "from": ""}
    if bridge.config.http.auth_required:
        params.update(username=USER, password=PASSWORD)
    return requests.get(bridge.url + "/cgi-bin/sendsms", params=params, headers=headers,
                        timeout=10)


def sendsms_form(bridge, headers):
    data = {"to": A, "text": "hi"}
    if bridge.config.http.auth_required:
        data.update(username=USER, password=PASSWORD)
    return requests.post(bridge.url + "/cgi-bin/sendsms", data=data, headers=headers, timeout=10)


def sendsms_text(bridge, headers):
    """Kannel's text/plain POST: what a cross-site <form enctype="text/plain"> can also send."""
    headers = dict({"Content-Type": "text/plain; charset=utf-8", "X-Kannel-To": A}, **headers)
    return requests.post(bridge.url + "/cgi-bin/sendsms", data="hi".encode(), headers=headers,
                         auth=auth_of(bridge), timeout=10)


def api_json(bridge, headers):
    return requests.post(bridge.url + "/api/v1/messages", json={"to": A, "text": "hi"},
                         headers=headers, auth=auth_of(bridge), timeout=10)


def vumi_json(bridge, headers):
    """What RapidSMS's VumiBackend posts (requests.post with data=json.dumps and its header)."""
    body = json.dumps({"content": "hi", "to_addr": [A], "session_event": None,
                       "metadata": {"rapidsms_msg_id": 1}})
    return requests.post(bridge.url + "/vumi/send", data=body, timeout=10, auth=auth_of(bridge),
                         headers=dict({"content-type": "application/json"}, **headers))


def http_form(bridge, headers):
    """rapidsms-threadless-router's HttpBackend: a form, credentials in the query."""
    query = "?" + urllib.parse.urlencode({"username": USER, "password": PASSWORD})
    return requests.post(bridge.url + "/http/send" + query, data={"identity": A, "text": "hi"},
                         headers=headers, timeout=10)


SENDERS = [sendsms_get, sendsms_form, sendsms_text, api_json, vumi_json, http_form]


def own_origin(bridge):
    return bridge.url  # "http://127.0.0.1:PORT": the origin of the status page


# -- servers are served as before --------------------------------------------------------------

@pytest.mark.parametrize("send", SENDERS)
def test_servers_send_no_browser_headers_and_are_served(bridge, send):
    resp = send(bridge, {})
    assert resp.status_code in (200, 202), resp.text
    assert [m["text"] for m in bridge.outbound()] == ["hi"]


def test_rapidsms_kannel_backend_is_served(bridge, monkeypatch):
    """RapidSMS 2.2.0's KannelBackend itself (requests.get, no Origin, no Sec-Fetch-*)."""
    outgoing = pytest.importorskip("rapidsms.backends.kannel.outgoing")
    monkeypatch.setattr(outgoing, "reverse", lambda name: "/delivery-report/")
    params = {"smsc": "", "from": ""}
    if bridge.config.http.auth_required:
        params.update(username=USER, password=PASSWORD)
    backend = outgoing.KannelBackend(
        None, "kannel-backend", sendsms_url=bridge.url + "/cgi-bin/sendsms",
        sendsms_params=params, charset="UTF-8", coding=2, encode_errors="strict",
        delivery_report_url="http://127.0.0.1:8000")
    backend.send(id_=7, text="Habari", identities=[A])
    assert [m["text"] for m in bridge.outbound()] == ["Habari"]


# -- cross-site requests ------------------------------------------------------------------------

@pytest.mark.parametrize("send", SENDERS)
def test_a_foreign_origin_is_refused_and_nothing_is_queued(bridge, send):
    for origin in (EVIL, "null", "https://evil.example:8443",
                   own_origin(bridge).replace("127.0.0.1", "localhost")):
        resp = send(bridge, {"Origin": origin})
        assert resp.status_code == 403, (origin, resp.text)
        assert "Cross-site request refused" in resp.text and "Origin" in resp.text
    assert bridge.outbound() == []


@pytest.mark.parametrize("send", SENDERS)
def test_a_cross_site_fetch_is_refused_and_nothing_is_queued(bridge, send):
    for site in ("cross-site", "same-site", "Cross-Site", "something-new"):
        resp = send(bridge, {"Sec-Fetch-Site": site})
        assert resp.status_code == 403, (site, resp.text)
        assert "Sec-Fetch-Site: %s" % site in resp.text
    # the browser's word wins over an Origin that looks like ours
    resp = send(bridge, {"Sec-Fetch-Site": "cross-site", "Origin": own_origin(bridge)})
    assert resp.status_code == 403
    assert bridge.outbound() == []


@pytest.mark.parametrize("send", SENDERS)
def test_the_bridges_own_pages_may_send(bridge, send):
    own = own_origin(bridge)
    for headers in ({"Origin": own, "Sec-Fetch-Site": "same-origin"},
                    {"Origin": own},                                 # a browser without Fetch
                    {"Origin": own.upper().replace("HTTP", "http")},  # hosts are caseless
                    {"Sec-Fetch-Site": "none"},                      # typed in the address bar
                    # a form posted from one of the bridge's pages, which say
                    # Referrer-Policy: no-referrer (what Chromium 156 sends then)
                    {"Origin": "null", "Sec-Fetch-Site": "same-origin"}):
        resp = send(bridge, headers)
        assert resp.status_code in (200, 202), (headers, resp.text)
    assert len(bridge.outbound()) == 5


def test_reading_is_not_refused_cross_site(bridge):
    """A page may make the browser read (the answer stays unreadable to it: no CORS); only
    sending is refused. The status page's links and the operator's bookmarks keep working."""
    headers = {"Sec-Fetch-Site": "cross-site", "Origin": EVIL}
    for path in ("/", "/status", "/health", "/api/v1/messages", "/openapi.json", "/metrics"):
        resp = requests.get(bridge.url + path, headers=headers, auth=auth_of(bridge), timeout=10)
        assert resp.status_code in (200, 503), (path, resp.status_code, resp.text)


def test_an_origin_named_in_hosts_is_the_bridges_own(serve):
    """Behind a proxy that rewrites Host (nginx's default), Origin has the public name."""
    bridge = serve(http={"hosts": "sms.example.org"})
    resp = api_json(bridge, {"Origin": "https://sms.example.org"})
    assert resp.status_code == 202, resp.text
    resp = api_json(bridge, {"Origin": "https://sms.example.org.evil.example"})
    assert resp.status_code == 403
    other = serve(http={"hosts": "sms.example.org:8443"})
    assert api_json(other, {"Origin": "https://sms.example.org:8443"}).status_code == 202
    assert api_json(other, {"Origin": "https://sms.example.org"}).status_code == 403
    assert len(bridge.outbound()) == 1 and len(other.outbound()) == 1


def test_refusals_are_logged_without_the_query(serve, caplog):
    bridge = serve(http=CREDENTIALS["credentials"])
    caplog.set_level("WARNING", logger="gsmbridge.web")
    assert sendsms_get(bridge, {"Sec-Fetch-Site": "cross-site"}).status_code == 403
    [line] = [r.getMessage() for r in caplog.records if r.name == "gsmbridge.web"]
    assert "cross-site GET /cgi-bin/sendsms" in line and "Sec-Fetch-Site: cross-site" in line
    assert "password" not in line and urllib.parse.quote_plus(PASSWORD) not in line


# -- JSON only when labelled JSON ---------------------------------------------------------------

BODY = json.dumps({"to": A, "text": "hi"})
VUMI = json.dumps({"content": "hi", "to_addr": [A]})


@pytest.mark.parametrize("path, body", [("/api/v1/messages", BODY), ("/vumi/send", VUMI)])
@pytest.mark.parametrize("ctype", ["text/plain", "text/plain; charset=utf-8",
                                   "application/x-www-form-urlencoded", "multipart/form-data",
                                   "application/jsonx", "text/json", None])
def test_json_not_labelled_json_is_refused(bridge, path, body, ctype):
    """What an HTML form on any site can post without a preflight (text/plain, a form), sent
    as an old browser would, without Origin: still refused, on the label alone."""
    headers = {"Content-Type": ctype} if ctype else {}
    resp = requests.post(bridge.url + path, data=body.encode(), headers=headers,
                         auth=auth_of(bridge), timeout=10)
    assert resp.status_code == 415, resp.text
    assert "application/json" in resp.json()["error"]
    assert bridge.outbound() == []


def test_a_form_posted_to_the_json_api_is_refused(bridge):
    resp = requests.post(bridge.url + "/api/v1/messages", data={"to": A, "text": "hi"},
                         auth=auth_of(bridge), timeout=10)
    assert resp.status_code == 415
    assert resp.json()["error"] == ("The body must be JSON with Content-Type: application/json "
                                    "(not 'application/x-www-form-urlencoded'), rejected")
    assert bridge.outbound() == []


@pytest.mark.parametrize("path, body", [("/api/v1/messages", BODY), ("/vumi/send", VUMI)])
@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "Application/JSON", "application/vnd.api+json",
                                   "application/merge-patch+json; charset=UTF-8"])
def test_json_labelled_json_is_taken(bridge, path, body, ctype):
    resp = requests.post(bridge.url + path, data=body.encode(), headers={"Content-Type": ctype},
                         auth=auth_of(bridge), timeout=10)
    assert resp.status_code in (200, 202), resp.text
    assert [m["text"] for m in bridge.outbound()] == ["hi"]


# -- Host ---------------------------------------------------------------------------------------

def get(bridge, path, host, auth=None):
    return requests.get(bridge.url + path, headers={"Host": host}, auth=auth, timeout=10)


def port_of(bridge):
    return urllib.parse.urlsplit(bridge.url).port


def test_a_foreign_host_reads_nothing_from_a_bridge_without_credentials(serve):
    bridge = serve()
    port = port_of(bridge)
    for host in ("evil.example:%d" % port, "evil.example", "127.0.0.1.evil.example:%d" % port,
                 "localhost", "127.0.0.1:%d" % (port + 1), "127.0.0.1:%dx" % port, ""):
        resp = get(bridge, "/status", host)
        assert resp.status_code == 421, (host, resp.text)
        assert "not a name of this bridge" in resp.json()["error"]
    # every endpoint, the status page and the sending ones too
    host = "evil.example:%d" % port
    for path in ("/", "/health", "/metrics", "/api/v1/messages", "/openapi.json"):
        resp = get(bridge, path, host)
        assert resp.status_code == 421 and "DNS rebinding" in resp.text, path
    resp = requests.get(bridge.url + "/cgi-bin/sendsms", params={"to": A, "text": "hi"},
                        headers={"Host": host}, timeout=10)
    assert resp.status_code == 421
    assert bridge.outbound() == []


def test_the_bridges_own_names_are_served(serve):
    bridge = serve()
    port = port_of(bridge)
    for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LocalHost:%d" % port,
                 "[::1]:%d" % port):
        resp = get(bridge, "/status", host)
        assert resp.status_code == 200, (host, resp.text)
        assert "modems" in resp.json()
    # a client that sends no Host at all is not a browser (HTTP/1.0)
    status, body, _ = bridge.raw("GET", "/health", headers={})
    assert status in (200, 503)


def test_configured_hosts_are_honoured(serve):
    bridge = serve(http={"hosts": "sms.example.org, gsm.lan:8080 [2001:db8::1]"})
    port = port_of(bridge)
    for host in ("sms.example.org", "SMS.example.org:8443", "gsm.lan:8080",
                 "[2001:db8::1]:%d" % port, "127.0.0.1:%d" % port):
        assert get(bridge, "/status", host).status_code == 200, host
    for host in ("gsm.lan:8081", "gsm.lan", "example.org", "evil.example:%d" % port):
        assert get(bridge, "/status", host).status_code == 421, host


def test_with_credentials_the_host_is_not_checked_unless_hosts_is_set(serve):
    """A rebinding page gets a password prompt for its own name and does not know the password;
    a configured hosts list is honoured all the same."""
    bridge = serve(http=CREDENTIALS["credentials"])
    host = "evil.example:%d" % port_of(bridge)
    assert get(bridge, "/status", host).status_code == 401
    assert get(bridge, "/status", host, auth=(USER, PASSWORD)).status_code == 200
    strict = serve(http=dict(CREDENTIALS["credentials"], hosts="sms.example.org"))
    assert get(strict, "/status", host, auth=(USER, PASSWORD)).status_code == 421
    assert get(strict, "/status", "sms.example.org", auth=(USER, PASSWORD)).status_code == 200
    port = port_of(strict)
    assert get(strict, "/status", "127.0.0.1:%d" % port, auth=(USER, PASSWORD)).status_code == 200


# -- [http] hosts in the config -----------------------------------------------------------------

def test_hosts_are_read_and_normalised():
    cfg = configmod.for_tests("/tmp", http={"hosts": "SMS.Example.org,gsm.lan:08080  [0::1]:80"})
    assert cfg.http.hosts == ("sms.example.org", "gsm.lan:8080", "[::1]:80")
    assert configmod.for_tests("/tmp").http.hosts == ()


@pytest.mark.parametrize("value", ["https://sms.example.org", "sms.example.org/", "*.example.org",
                                   "sms.example.org:0", "sms.example.org:70000", "a..b", "-a.b",
                                   "[1.2.3.4]", "::1", "user@sms.example.org", "sms_x.org"])
def test_bad_hosts_name_the_key(tmp_path, value):
    path = tmp_path / "gsmbridge.ini"
    path.write_text("[modem]\nport = sim://\n[rapidsms]\nurl = http://127.0.0.1:8000/k/\n"
                    "[http]\nhosts = sms.example.org %s\n" % value)
    with pytest.raises(configmod.ConfigError) as err:
        configmod.load(str(path))
    assert (err.value.section, err.value.key) == ("http", "hosts")
    assert str(err.value).startswith("[http] hosts: %r is not a host name" % value.lower())


# -- in a real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
needs_chromium = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver")

#: evil.example resolves to 127.0.0.1 in the browser: a rebound name, and another site
RESOLVER_RULES = "MAP evil.example 127.0.0.1"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run",
                "--host-resolver-rules=%s" % RESOLVER_RULES):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


@contextlib.contextmanager
def attacker_site(html):
    """A web server on 127.0.0.1 serving one page, as http://evil.example:PORT/ in the browser."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://evil.example:%d/" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


FETCH = """
const [path, options, done] = arguments;
fetch(location.protocol + "//" + location.host + path, options).then(
    r => r.text().then(t => done([r.status, t])), e => done([0, String(e)]));
"""


@needs_chromium
@pytest.mark.parametrize("credentials", sorted(CREDENTIALS))
def test_in_chromium_the_status_page_may_send_and_another_site_may_not(serve, browser,
                                                                       credentials):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bridge = serve(http=CREDENTIALS[credentials])
    auth = "%s:%s@" % (urllib.parse.quote(USER), urllib.parse.quote(PASSWORD, safe="")) \
        if credentials == "credentials" else ""
    base = bridge.url.replace("http://", "http://" + auth)

    # The status page, and requests from it: same-origin, with the browser's cached basic
    # auth (a URL with credentials in it cannot be fetched: FETCH builds it from location.host)
    browser.get(base + "/")
    assert "gsmbridge on" in browser.title
    post = {"method": "POST", "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"to": A, "text": "from the page"})}
    status, text = browser.execute_async_script(FETCH, "/api/v1/messages", post)
    assert status == 202, text
    status, text = browser.execute_async_script(
        FETCH, "/cgi-bin/sendsms?" + urllib.parse.urlencode({"to": A, "text": "from the page",
                                                            "username": USER,
                                                            "password": PASSWORD}), {})
    assert status == 202, text
    assert [m["text"] for m in bridge.outbound()] == ["from the page"] * 2

    # A page on another site: a text/plain form whose body is JSON (name=value: the '=' lands
    # inside the text), a urlencoded form to sendsms and to /http/send, and an <img> that GETs
    # sendsms. Each lands on the bridge, and is refused.
    target = bridge.url
    query = urllib.parse.urlencode({"to": A, "text": "from evil", "username": USER,
                                    "password": PASSWORD})
    forms = {
        "json": '<form id=f method=post enctype="text/plain" action="%s/api/v1/messages">'
                '<input name=\'{"to": "%s", "text": "from evil\' value=\' x"}\'>'
                '</form>' % (target, A),
        "sendsms": '<form id=f method=post action="%s/cgi-bin/sendsms?%s">'
                   '<input name=x value=y></form>' % (target, query),
        "vumi": '<form id=f method=post enctype="text/plain" action="%s/vumi/send">'
                '<input name=\'{"to_addr": ["%s"], "content": "from evil\' value=\' x"}\'>'
                '</form>' % (target, A),
        "http": '<form id=f method=post action="%s/http/send?%s">'
                '<input name=identity value="%s"><input name=text value="from evil"></form>'
                % (target, query, A),
    }
    for name, form in forms.items():
        page = "<!doctype html><body>%s<script>document.getElementById('f').submit()</script>" \
            % form
        with attacker_site(page) as url:
            browser.get(url)
            WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(target))
            body = browser.find_element(By.TAG_NAME, "body").text
        assert "Cross-site request refused" in body, (name, body)

    img = ('<!doctype html><img id=i src="%s/cgi-bin/sendsms?%s" '
           'onerror="document.title=\'refused\'" onload="document.title=\'loaded\'">'
           % (target, query))
    with attacker_site(img) as url:
        browser.get(url)
        WebDriverWait(browser, 20).until(lambda d: d.title in ("refused", "loaded"))
    assert [m["text"] for m in bridge.outbound()] == ["from the page"] * 2

    if credentials == "open":
        # DNS rebinding: the browser reaches the bridge under the attacker's name
        browser.get("http://evil.example:%d/status" % port_of(bridge))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "not a name of this bridge" in body and "modems" not in body

"""The ini file: the sample works as shipped, typos and bad values stop the bridge with a message
naming section and key, and secrets never show in check-config's output."""

import configparser
import dataclasses
import os
import re
import subprocess
import sys

import pytest

from gsmbridge import config
from gsmbridge.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "etc", "gsmbridge.ini")

MINIMAL = """\
[modem]
port = sim://

[rapidsms]
url = http://127.0.0.1:8000/backend/kannel-backend/
"""


def write(tmp_path, text, name="gsmbridge.ini"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_with(tmp_path, extra):
    return config.load(write(tmp_path, MINIMAL + extra))


def error_of(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    return info.value


# -- the sample ----------------------------------------------------------------------------------

def test_sample_runs_on_the_simulated_modem_with_rapidsms_kannel_view():
    cfg = config.load(SAMPLE)
    assert cfg.modem.port == "sim://"
    assert cfg.modem.simulated
    assert cfg.rapidsms.url == "http://127.0.0.1:8000/backend/kannel-backend/"
    assert cfg.rapidsms.style == "kannel"
    assert cfg.http.host == "127.0.0.1" and cfg.http.port == 13013
    assert not cfg.http.auth_required
    assert cfg.store.path == os.path.join(REPO, "etc", "var", "gsmbridge.sqlite3")
    assert cfg.warnings == ()


def test_sample_documents_every_key():
    """Every key the loader knows appears in the sample, set or commented out."""
    text = open(SAMPLE, encoding="utf-8").read()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    assert set(parser.sections()) == set(config.SECTIONS)
    body = {}
    for section in config.SECTIONS:
        match = re.search(r"^\[%s\]\n(.*?)(?=^\[|\Z)" % section, text, re.S | re.M)
        body[section] = match.group(1)
    for section, cls in config.SECTIONS.items():
        for fld in dataclasses.fields(cls):
            assert re.search(r"^;?\s*%s = " % fld.name, body[section], re.M), \
                "[%s] %s is not documented in the sample" % (section, fld.name)


def test_every_key_the_sample_shows_is_one_the_loader_takes():
    """The other way round: every `key = ` line of the sample, set, commented out or in an
    example ([modem:NAME] sections in comments too), is a key of its section that the loader
    accepts, so the sample shows no key that a file could not use."""
    section, seen = None, set()
    with open(SAMPLE, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            header = re.match(r"[;#]?\s*\[([a-z]+)(?::[^\]]+)?\]\s*$", line)
            if header:
                section = header.group(1)
                continue
            key = re.match(r"[;#]?\s*([a-z_]+) = ", line)
            if key:
                assert key.group(1) in config.CHECKS.get(section, ()), \
                    "line %d: [%s] %s is not a key the loader takes" % (number, section,
                                                                          key.group(1))
                seen.add((section, key.group(1)))
    assert set(config.SECTIONS) <= {section for section, _ in seen}


def test_defaults_for_a_minimal_file(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.modem == config.ModemConfig(port="sim://")
    assert cfg.modem.baudrate == 115200 and cfg.modem.receive == "auto"
    # 27 parts: every GSM text RapidPro allows (4,096 characters) goes out whole
    assert cfg.modem.max_parts == 27 and cfg.modem.status_reports is False
    assert cfg.http.listen == "127.0.0.1:13013" and cfg.http.max_body == 65536
    assert (cfg.http.connections, cfg.http.connections_per_client) == (1000, 100)
    assert (cfg.http.header_timeout, cfg.http.body_timeout, cfg.http.idle_timeout) == (10, 30, 15)
    assert cfg.bridge.resend_unconfirmed is True
    assert cfg.log.level == "INFO" and cfg.log.format == "text"
    assert cfg.store.path == str(tmp_path / "var" / "gsmbridge.sqlite3")
    assert cfg.modems == {"modem": cfg.modem}
    assert cfg.modem_names == ("modem",)


def test_typed_values(tmp_path):
    cfg = load_with(tmp_path, """
[http]
listen = [::1]:8080
max_recipients = 5
[bridge]
resend_unconfirmed = off
reassembly_timeout = 90.5
[log]
level = debug
format = JSON
[store]
path = /var/lib/gsmbridge/db.sqlite3
""")
    assert (cfg.http.host, cfg.http.port) == ("::1", 8080)
    assert cfg.http.max_recipients == 5
    assert cfg.bridge.resend_unconfirmed is False and cfg.bridge.reassembly_timeout == 90.5
    assert cfg.log.level == "DEBUG" and cfg.log.format == "json"
    assert cfg.store.path == "/var/lib/gsmbridge/db.sqlite3"


def test_config_is_frozen(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.http.listen = "0.0.0.0:1"


@pytest.mark.parametrize("port", [
    "/dev/ttyUSB0",
    "/dev/serial/by-id/usb-HUAWEI_Technology_HUAWEI_Mobile-if00-port0",
    "socket://192.0.2.7:7000",
    "rfc2217://localhost:2217",
    "loop://",
    "sim://",
    "sim://?control=127.0.0.1:13014",
    "sim://?control=127.0.0.1:13014&baud=9600",
])
def test_accepted_ports(tmp_path, port):
    cfg = config.load(write(tmp_path, MINIMAL.replace("sim://", port)))
    assert cfg.modem.port == port


# -- errors name the section and the key ---------------------------------------------------------

@pytest.mark.parametrize("extra, section, key, words", [
    ("[htp]\n", "htp", None, "did you mean 'http'"),
    ("[DEFAULT]\nlevel = INFO\n", "DEFAULT", None, "unknown section"),
    ("[http]\nlisen = 127.0.0.1:1\n", "http", "lisen", "did you mean 'listen'"),
    ("[http]\nlisten = 0.0.0.0:13013\n", "http", "listen",
     "'0.0.0.0:13013' is not loopback and no username/password is set"),
    ("[http]\nlisten = 192.0.2.1:13013\n", "http", "listen", "not loopback"),
    ("[http]\nlisten = localhost\n", "http", "listen", "not host:port"),
    ("[http]\nlisten = 127.0.0.1:99999\n", "http", "listen", "beyond 65535"),
    ("[http]\nusername = rapidsms\n", "http", "password", "set both or neither"),
    ("[http]\npassword = secret\n", "http", "username", "set both or neither"),
    ("[http]\nmax_body = lots\n", "http", "max_body", "not a whole number"),
    ("[http]\nmax_header = 100\n", "http", "max_header", "too small (at least 1024)"),
    ("[http]\nheader_timeout = 0.5\n", "http", "header_timeout", "too small (at least 1)"),
    ("[http]\nbody_timeout = soon\n", "http", "body_timeout", "not a number"),
    ("[http]\nidle_timeout = 7200\n", "http", "idle_timeout", "too large (at most 3600)"),
    ("[http]\nconnections = 0\n", "http", "connections", "too small (at least 1)"),
    ("[http]\nconnections_per_client = -1\n", "http", "connections_per_client", "too small"),
    ("[http]\nconnections = 50\nconnections_per_client = 60\n", "http",
     "connections_per_client", "60 is more than connections (50); use 0 for no cap"),
    ("[modem]\nbaudrate = 0\n", "modem", "baudrate", "too small"),
    ("[modem]\nmax_parts = 256\n", "modem", "max_parts", "too large"),
    ("[modem]\nreceive = push\n", "modem", "receive", "auto, cmt, cmti, poll"),
    ("[modem]\nreceive = cmt ; routed\n", "modem", "receive", "comments must be on a line"),
    ("[modem]\nstatus_reports = maybe\n", "modem", "status_reports", "not yes/no"),
    ("[modem]\nsend_timeout = 0\n", "modem", "send_timeout", "at least 5"),
    ("[modem]\ncommand_timeout = inf\n", "modem", "command_timeout", "not a finite number"),
    ("[modem]\nsmsc = +255-75\n", "modem", "smsc", "not a phone number"),
    ("[modem]\nnumber = Vodacom\n", "modem", "number", "not a phone number"),
    ("[modem]\nbaudrate =\n", "modem", "baudrate", "is empty"),
    ("[rapidsms]\nstyle = soap\n", "rapidsms", "style", "kannel, http, json"),
    ("[rapidsms]\ntimeout = -1\n", "rapidsms", "timeout", "more than 0"),
    ("[store]\npath = :memory:\n", "store", "path", "must be a file"),
    ("[log]\nlevel = LOUD\n", "log", "level", "not one of DEBUG"),
    ("[http]\ncallback_allow = 10.0.0.1/8\n", "http", "callback_allow", "host bits set"),
    ("[http]\ncallback_allow = 127.0.0.1:8001 intranet\n", "http", "callback_allow",
     "'intranet' is neither a network"),
    ("[http]\ncallback_allow = 127.0.0.1:99999\n", "http", "callback_allow", "port 99999"),
    ("[http]\ncallback_allow =\n", "http", "callback_allow", "is empty"),
])
def test_bad_values(tmp_path, extra, section, key, words):
    # later sections of the same name would be duplicates: merge the extra into the file instead
    text = MINIMAL
    header = extra.split("\n", 1)[0]
    if header in text:
        text = text.replace(header + "\n", extra)
    else:
        text += extra
    exc = error_of(tmp_path, text)
    assert (exc.section, exc.key) == (section, key)
    assert words in str(exc)
    assert str(exc).startswith("[%s] %s: " % (section, key) if key else "[%s]: " % section)


@pytest.mark.parametrize("port, words", [
    ("ttyUSB0", "not a device path"),
    ("COM", "not a device path"),
    ("ftp://modem", "unknown scheme ftp://"),
    ("socket://modem", "not host:port"),
    ("sim://?control=0.0.0.0:13014", "loopback"),
    ("sim://?controll=127.0.0.1:1", "unknown sim:// option 'controll'"),
    ("sim://?baud=fast", "not a whole number"),
])
def test_bad_ports(tmp_path, port, words):
    exc = error_of(tmp_path, MINIMAL.replace("sim://", port))
    assert (exc.section, exc.key) == ("modem", "port")
    assert words in str(exc)


def test_required_keys(tmp_path):
    exc = error_of(tmp_path, MINIMAL.replace("port = sim://\n", ""))
    assert str(exc) == "[modem] port: is required"
    url_line = "url = http://127.0.0.1:8000/backend/kannel-backend/\n"
    exc = error_of(tmp_path, MINIMAL.replace(url_line, "url =\n"))
    assert str(exc) == "[rapidsms] url: is required"
    exc = error_of(tmp_path, MINIMAL.replace("http://127.0.0.1", "ftp://127.0.0.1"))
    assert (exc.section, exc.key) == ("rapidsms", "url")


def test_file_level_errors(tmp_path):
    assert "no such file" in str(pytest.raises(ConfigError, config.load,
                                               str(tmp_path / "missing.ini")).value)
    exc = error_of(tmp_path, "port = sim://\n" + MINIMAL)
    assert "before any [section]" in str(exc)
    exc = error_of(tmp_path, MINIMAL + "[modem]\nbaudrate = 9600\n")
    assert exc.section == "modem" and "given twice" in str(exc)
    exc = error_of(tmp_path, MINIMAL + "[http]\nmax_body = 2000\nmax_body = 3000\n")
    assert (exc.section, exc.key) == ("http", "max_body") and "given twice" in str(exc)
    (tmp_path / "latin1.ini").write_bytes(MINIMAL.encode() + b"[log]\n; caf\xe9\n")
    assert "not UTF-8" in str(pytest.raises(ConfigError, config.load,
                                            str(tmp_path / "latin1.ini")).value)


def test_percent_in_password_is_literal(tmp_path):
    cfg = load_with(tmp_path, "[http]\nusername = rapidsms\npassword = 100%(x)s\n")
    assert cfg.http.password == "100%(x)s"


# -- warnings, secrets, paths --------------------------------------------------------------------

def test_url_without_trailing_slash_warns(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL.replace("kannel-backend/", "kannel-backend")))
    assert len(cfg.warnings) == 1
    assert "[rapidsms] url" in cfg.warnings[0] and "trailing slash" in cfg.warnings[0]


def test_the_per_client_cap_follows_a_smaller_connection_limit(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL + "[http]\nconnections = 40\n"))
    assert (cfg.http.connections, cfg.http.connections_per_client) == (40, 40)


COURIER_URL = "https://textit.example/c/kn/8eb23e93-5ecb-45ba-b726-3b064e0c56ab/receive"


@pytest.mark.parametrize("url", [COURIER_URL, COURIER_URL + "/"])
def test_a_courier_receive_url_needs_no_trailing_slash(tmp_path, url):
    cfg = config.from_dict({"modem": {"port": "sim://", "url": url},
                            "rapidsms": {"url": url, "style": "rapidpro"}}, base_dir=str(tmp_path))
    assert cfg.warnings == () and cfg.rapidsms.style == "rapidpro"


def test_a_rapidpro_url_that_is_not_courier_s_receive_url_warns(tmp_path):
    cfg = config.from_dict({"modem": {"port": "sim://"},
                            "rapidsms": {"url": COURIER_URL.replace("receive", "status"),
                                         "style": "rapidpro"}}, base_dir=str(tmp_path))
    [warning] = cfg.warnings
    assert "[rapidsms] url" in warning and "/c/kn/<channel uuid>/receive" in warning


def test_two_modems_may_not_share_a_number(tmp_path):
    with pytest.raises(ConfigError) as exc:
        config.from_dict({"modem:a": {"port": "sim://", "number": "+255700000100"},
                          "modem:b": {"port": "sim://", "number": "255700000100"},
                          "rapidsms": {"url": COURIER_URL, "style": "rapidpro"}},
                         base_dir=str(tmp_path))
    assert (exc.value.section, exc.value.key) == ("modem:b", "number")
    assert "[modem:a]'s too" in str(exc.value)


def test_masked_hides_secrets_only(tmp_path):
    cfg = load_with(tmp_path, "[http]\nlisten = 0.0.0.0:13013\nusername = rapidsms\n"
                              "password = s3cret\n")
    cfg = dataclasses.replace(cfg, modem=dataclasses.replace(cfg.modem, pin="4321"))
    masked = cfg.masked()
    assert masked["http"]["password"] == "***"
    assert masked["modem"]["pin"] == "***"
    assert masked["http"]["username"] == "rapidsms"
    assert masked["http"]["listen"] == "0.0.0.0:13013"
    assert "s3cret" not in repr(masked) and "4321" not in repr(masked)
    assert set(masked) == set(config.SECTIONS)
    assert config.for_tests().masked()["http"]["password"] is None


def test_callback_allow_takes_networks_and_host_ports(tmp_path):
    cfg = load_with(tmp_path, "[http]\ncallback_allow = 10.0.0.0/8, 127.0.0.1:8001\n"
                              "    [::1]:8002 dlr.internal:8080 10.0.0.0/8\n")
    assert cfg.http.callback_allow == ("10.0.0.0/8", "127.0.0.1:8001", "[::1]:8002",
                                       "dlr.internal:8080")
    assert cfg.masked()["http"]["callback_allow"] == "10.0.0.0/8 127.0.0.1:8001 [::1]:8002 " \
                                                     "dlr.internal:8080"
    assert config.load(write(tmp_path, MINIMAL)).http.callback_allow == ()


SECRET_URLS = """\
[modem]
port = sim://

[modem:b]
port = sim://?control=127.0.0.1:13015
url = http://bridge:s3cret-b@127.0.0.1:8000/router/receive?password=s3cret-c

[rapidsms]
url = http://127.0.0.1:8000/router/receive/?password=s3cret-a&x=1
style = kannel
"""


def test_check_config_never_prints_a_url_password(tmp_path):
    """httprouter users put ROUTER_PASSWORD in the url's query (the README says so): it is
    printed as ***, in the values and in the warnings alike."""
    path = write(tmp_path, SECRET_URLS)
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "check-config", "-c", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert "s3cret" not in text
    assert "url = http://127.0.0.1:8000/router/receive/?password=***&x=***" in text
    assert "url = http://***@127.0.0.1:8000/router/receive?password=***" in text
    assert "warning: [modem:b] url:" in text            # the warning is there, masked too


def test_a_bad_url_is_named_without_its_password(tmp_path):
    path = write(tmp_path, SECRET_URLS.replace("8000/router/receive/?", "99999/router/?"))
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "check-config", "-c", path],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "[rapidsms] url:" in out.stderr and "bad port" in out.stderr
    assert "s3cret" not in out.stdout + out.stderr


def test_pin_errors_do_not_echo_the_pin(tmp_path):
    exc = error_of(tmp_path, MINIMAL.replace("port = sim://", "port = sim://\npin = 12x45"))
    assert (exc.section, exc.key) == ("modem", "pin")
    assert "12x45" not in str(exc)


def test_relative_store_path_is_relative_to_the_ini(tmp_path, monkeypatch):
    sub = tmp_path / "etc"
    sub.mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = config.load(write(sub, MINIMAL + "[store]\npath = data/bridge.db\n"))
    assert cfg.store.path == str(sub / "data" / "bridge.db")


# -- from_dict / for_tests ------------------------------------------------------------------------

def test_from_dict_checks_like_load(tmp_path):
    cfg = config.from_dict({
        "modem": {"port": "loop://", "max_parts": 3, "status_reports": True, "pin": None},
        "http": {"listen": "127.0.0.1:0"},
        "rapidsms": {"url": "https://rapidsms.example/backend/kannel-backend/"},
    }, base_dir=str(tmp_path))
    assert cfg.modem.max_parts == 3 and cfg.modem.status_reports is True and cfg.modem.pin is None
    assert cfg.http.port == 0
    assert cfg.store.path == str(tmp_path / "var" / "gsmbridge.sqlite3")
    with pytest.raises(ConfigError) as info:
        config.from_dict({"modem": {"port": "loop://", "max_part": 3},
                          "rapidsms": {"url": "http://x/"}})
    assert (info.value.section, info.value.key) == ("modem", "max_part")


def test_for_tests_overrides(tmp_path):
    cfg = config.for_tests(str(tmp_path), http={"username": "u", "password": "p",
                                                "listen": "0.0.0.0:0"})
    assert cfg.http.auth_required and cfg.modem.port == "sim://"
    assert cfg.store.path.startswith(str(tmp_path))
    with pytest.raises(ConfigError, match=r"\[http\] listen: "):
        config.for_tests(http={"listen": "0.0.0.0:0"})

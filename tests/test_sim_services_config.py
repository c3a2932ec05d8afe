"""The SIM services' keys in the ini file, and the balance watch as the operators' view reads it
from the store (a real store behind a real server on loopback).
"""

import os
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gsmbridge import app, config
from gsmbridge.config import ConfigError
from gsmbridge.store import Store
from gsmbridge.web import create_app
from webserver import served

MINIMAL = """\
[modem]
port = sim://
{modem}

[rapidsms]
url = http://127.0.0.1:8000/backend/kannel-backend/
"""


def load(tmp_path, modem="", more=""):
    path = tmp_path / "gsmbridge.ini"
    path.write_text(MINIMAL.format(modem=modem) + more, encoding="utf-8")
    return config.load(str(path))


def error_of(tmp_path, modem="", more=""):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, modem, more)
    return info.value


def test_the_services_keys_and_their_defaults(tmp_path):
    cfg = load(tmp_path)
    modem = cfg.modem
    assert (modem.ussd_encoding, modem.ussd_timeout, modem.balance_code, modem.balance_every,
            modem.low_balance, modem.call_url) == ("auto", 30.0, None, 21600.0, None, None)
    cfg = load(tmp_path, "ussd_encoding = packed\nussd_timeout = 20\nbalance_code = *100*1#\n"
                         "balance_pattern = Salio ([0-9.,]+)\nbalance_every = 30m\n"
                         "low_balance = 1000\ncall_url = https://calls.example.org/in?key=s3cret")
    modem = cfg.modem
    assert (modem.ussd_encoding, modem.balance_code, modem.balance_every, modem.low_balance) == (
        "packed", "*100*1#", 1800.0, 1000.0)
    masked = cfg.masked()["modem"]
    assert "s3cret" not in masked["call_url"], "a URL's query is masked like every receiver's"


@pytest.mark.parametrize("raw, seconds", [("6h", 21600.0), ("90", 90.0), ("1d", 86400.0),
                                          ("2.5 h", 9000.0), ("45min", 2700.0)])
def test_balance_every_takes_units(tmp_path, raw, seconds):
    assert load(tmp_path, "balance_code = *102#\nbalance_every = %s" % raw).modem.balance_every \
        == seconds


@pytest.mark.parametrize("line, key, words", [
    ("ussd_encoding = gsm", "ussd_encoding", "not one of auto, text, packed, ucs2"),
    ("balance_code = 102", "balance_code", "not a USSD code"),
    ('balance_code = *102#"', "balance_code", "not a USSD code"),
    ("balance_pattern = Salio ([0-9]+", "balance_pattern", "not a regular expression"),
    ("balance_pattern = (a)(b)", "balance_pattern", "give one, around the amount"),
    ("balance_every = 10", "balance_every", "too small"),
    ("balance_every = often", "balance_every", "not a duration"),
    ("ussd_timeout = 500", "ussd_timeout", "too large"),
    ("call_url = ftp://x/", "call_url", "not an http:// or https:// URL"),
    ("simulate = ussd_style=weird", "simulate", "not one of text, ucs2, packed"),
    ("simulate = control=10.0.0.1:13014", "simulate", "loopback"),
    ("simulate = colour=blue", "simulate", "unknown simulate option 'colour'"),
    ("simulate = imei", "simulate", "not name=value"),
    ("simulate = imei=12", "simulate", "not 14 to 16 digits"),
])
def test_bad_values_name_their_key(tmp_path, line, key, words):
    exc = error_of(tmp_path, line)
    assert (exc.section, exc.key) == ("modem", key) and words in exc.message, str(exc)


def test_simulator_options_from_the_port_and_the_simulate_key(tmp_path):
    cfg = load(tmp_path, "simulate = control=127.0.0.1:13015 ussd_style=packed balance=12.5 "
                         "ussd_early=yes imei=490154203237518 rings=3")
    assert cfg.modem.simulator_options == {
        "control": "127.0.0.1:13015", "ussd_style": "packed", "balance": 12.5,
        "ussd_early": True, "imei": "490154203237518", "rings": 3}
    assert app.parse_sim_url("sim://?control=127.0.0.1:1&baud=9600&own_number=%2B2557") == {
        "control": "127.0.0.1:1", "baudrate": 9600, "own_number": "+2557"}
    path = tmp_path / "both.ini"
    path.write_text(MINIMAL.replace("port = sim://", "port = sim://?control=127.0.0.1:1")
                    .format(modem="simulate = control=127.0.0.1:2"), encoding="utf-8")
    with pytest.raises(ConfigError, match="control is given both in port and in simulate"):
        config.load(str(path))


def test_simulate_is_for_the_simulated_modem_only(tmp_path):
    path = tmp_path / "real.ini"
    path.write_text(MINIMAL.replace("port = sim://", "port = /dev/ttyUSB0")
                    .format(modem="simulate = balance=5"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert info.value.key == "simulate" and "port = sim://" in info.value.message


@pytest.mark.parametrize("port", ["imei:356938035643809", "imei:356938035643809@/dev/ttyUSB*",
                                  "imei:35693803564380912@/dev/serial/by-id/usb-HUAWEI*"])
def test_imei_ports(tmp_path, port):
    path = tmp_path / "imei.ini"
    path.write_text(MINIMAL.replace("port = sim://", "port = " + port).format(modem=""),
                    encoding="utf-8")
    cfg = config.load(str(path))
    assert cfg.modem.port == port and not cfg.modem.simulated
    assert cfg.modem.simulator_options == {}


@pytest.mark.parametrize("port, words", [
    ("imei:3569", "imei: takes the modem's IMEI"),
    ("imei:356938035643809@ttyUSB*", "absolute glob"),
    ("imei:35693803564380x", "imei: takes the modem's IMEI"),
])
def test_bad_imei_ports(tmp_path, port, words):
    path = tmp_path / "imei.ini"
    path.write_text(MINIMAL.replace("port = sim://", "port = " + port).format(modem=""),
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert info.value.key == "port" and words in info.value.message


def test_two_modems_may_not_share_an_imei(tmp_path):
    path = tmp_path / "pool.ini"
    path.write_text("[modem:a]\nport = imei:356938035643809@/dev/ttyUSB*\n"
                    "[modem:b]\nport = imei:356938035643809\n"
                    "[rapidsms]\nurl = http://127.0.0.1:8000/backend/kannel-backend/\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert (info.value.section, info.value.key) == ("modem:b", "port")


def test_low_balance_without_balance_code_is_a_warning(tmp_path):
    cfg = load(tmp_path, "low_balance = 100")
    assert any("low_balance" in w and "never checked" in w for w in cfg.warnings)


def test_the_sample_serves_the_simulators_control_api_on_loopback():
    sample = os.path.join(os.path.dirname(__file__), "..", "etc", "gsmbridge.ini")
    cfg = config.load(sample)
    assert cfg.modem.port == "sim://"
    assert cfg.modem.simulator_options == {"control": "127.0.0.1:13014"}
    out = subprocess.run([sys.executable, "-m", "gsmbridge", "check-config", "-c", sample],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "simulate = control=127.0.0.1:13014" in out.stdout


# --- the balance as the operators' view reads it ---------------------------------------------

@pytest.fixture
def pool(tmp_path):
    cfg = config.from_dict({
        "modem:vodacom": {"port": "sim://", "balance_code": "*102#", "low_balance": 1000},
        "modem:airtel": {"port": "sim://", "balance_code": "*102#", "low_balance": 1000},
        "modem:spare": {"port": "sim://"},
        "rapidsms": {"url": "http://127.0.0.1:8000/backend/kannel-backend/"},
    }, base_dir=str(tmp_path))
    os.makedirs(os.path.dirname(cfg.store.path), exist_ok=True)
    store = Store(cfg.store.path)
    with served(create_app(store, cfg)) as url:
        yield store, url
    store.close()


def gauge(url, name):
    text = requests.get(url + "/metrics", timeout=10).text
    return {sample.labels["modem"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == name}


def test_health_warns_of_each_modem_below_its_low_balance_and_no_other(pool):
    store, url = pool
    now = time.time()
    for name, balance in (("vodacom", 1500.0), ("airtel", 250.5), ("spare", 3.0)):
        store.set_modem(name, state="up", registered=True, balance=balance,
                        balance_checked_at=now - 60)
    health = requests.get(url + "/health", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"ok": True, "warnings": [
        "modem airtel: airtime balance 250.5 is below low_balance 1000"]}
    assert gauge(url, "gsmbridge_modem_balance") == {"vodacom": 1500.0, "airtel": 250.5,
                                                     "spare": 3.0}
    assert gauge(url, "gsmbridge_modem_balance_checked_timestamp_seconds")["airtel"] == \
        pytest.approx(now - 60)
    status = requests.get(url + "/status", timeout=10).json()
    assert status["health"]["low_balance"] == ["airtel"]
    assert status["modems"]["airtel"]["low_balance"] == 1000.0
    assert "low_balance" not in status["modems"]["spare"]
    page = requests.get(url + "/", timeout=10).text
    assert "Top the SIM up" in page and "SMS still go out through the other modems" not in page
    store.set_modem("airtel", balance=5000.0)
    assert requests.get(url + "/health", timeout=10).json() == {"ok": True}
    assert "Top the SIM up" not in requests.get(url + "/", timeout=10).text


def test_a_low_balance_does_not_hide_a_modem_that_is_down(pool):
    store, url = pool
    store.set_modem("vodacom", state="up", registered=True, balance=10.0)
    store.set_modem("airtel", state="down", last_error="ModemGone: unplugged")
    store.set_modem("spare", state="up", registered=True)
    warnings = requests.get(url + "/health", timeout=10).json()["warnings"]
    assert warnings == ["modem airtel is down: ModemGone: unplugged",
                        "modem vodacom: airtime balance 10 is below low_balance 1000"]
    page = requests.get(url + "/", timeout=10).text
    assert "Top the SIM up" in page and "SMS still go out through the other modems" in page


def test_ussd_to_a_modem_that_is_not_up_or_has_its_hands_full(pool):
    store, url = pool
    resp = requests.post(url + "/api/v1/ussd", json={"code": "*102#", "modem": "spare"},
                         timeout=10)
    assert resp.status_code == 503 and "modem spare is not started" in resp.json()["error"]
    assert resp.headers["Retry-After"] == "30"
    store.set_modem("spare", state="down", last_error="ModemGone: unplugged")
    resp = requests.post(url + "/api/v1/ussd", json={"code": "*102#", "modem": "spare"},
                         timeout=10)
    assert resp.status_code == 503 and "modem spare is down" in resp.json()["error"]
    store.set_modem("vodacom", state="up", registered=True)
    for _ in range(3):
        assert store.add_ussd("vodacom", "*102#") is not None
    resp = requests.post(url + "/api/v1/ussd", json={"code": "*102#", "modem": "vodacom"},
                         timeout=10)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "10"
    resp = requests.post(url + "/api/v1/ussd", json={"code": "*102#"}, timeout=10)
    assert resp.status_code == 400 and "vodacom, airtel, spare" in resp.json()["error"]

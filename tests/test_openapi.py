"""The HTTP API against its OpenAPI document, fuzzed by schemathesis.

The document is fetched from the real server's /openapi.json (waitress on 127.0.0.1, the real
store) and schemathesis generates requests from it, valid ones and deliberately invalid ones. Every
answer must be a documented status with a documented content type, match its schema, and never be
a 5xx; invalid requests must be refused with a 4xx.
"""

import contextlib
import os

import pytest
import requests
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance, negative_data_rejection, response_headers_conformance,
    response_schema_conformance, status_code_conformance)

from webserver import served
from gsmbridge import config as configmod  # noqa: E402
from gsmbridge.store import Store  # noqa: E402
from gsmbridge.web import create_app, openapi  # noqa: E402

AUTH = ("rapidsms", "s3cret")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]


@contextlib.contextmanager
def serving(store, config):
    with served(create_app(store, config)) as url:
        yield url


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("openapi")
    # a pool of two, one of them down: smsc has a name to pin to, /health and /status warnings
    cfg = configmod.for_tests(str(base), http={"username": AUTH[0], "password": AUTH[1]},
                              modem={"max_parts": 3, "routes": "+25576", "daily_cap": 500},
                              **{"modem:spare": {"port": "sim://", "max_parts": 3}})
    os.makedirs(os.path.dirname(cfg.store.path), exist_ok=True)
    store = Store(cfg.store.path)
    store.set_pool({name: {"routes": m.routes, "daily_cap": m.daily_cap,
                           "hourly_cap": m.hourly_cap} for name, m in cfg.modems.items()})
    # something in every list, so the schemas of real rows get checked too
    store.set_modem("modem", state="up", signal=20, operator="Vodacom", registration=1,
                    registered=True)
    store.set_modem("spare", state="down", last_error="ModemGone: port vanished")
    store.add_inbound(modem="modem", sender="+255700000009", text="hi", sent_at=None,
                      pdus=["00"], keys=["k"])
    [msg_id] = store.add_outbound(["+255700000001"], "hello", encoding="gsm7", parts=1)
    store.outbound_sending(msg_id, modem="modem")
    store.outbound_sent(msg_id, references=[5])
    with serving(store, cfg) as url:
        yield url
    store.close()


# The document as the code builds it; test_the_document_is_what_the_server_serves checks that
# /openapi.json serves this very document. (schemathesis's from_fixture, which would load it from
# the server, does not work with pytest 9 yet.)
schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_document(case, server):
    case.call_and_validate(base_url=server, auth=AUTH, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_without_credentials_matches_its_document(case, server):
    case.call_and_validate(base_url=server, checks=CHECKS)


def test_status_and_health_of_a_pool_match_their_schemas(server):
    """The pool's keys are really there (the fuzzing above only checks what it is given)."""
    status = requests.get(server + "/status", auth=AUTH, timeout=10).json()
    documented = set(openapi.SCHEMAS["Modem"]["properties"])
    for name, modem in status["modems"].items():
        assert set(modem) <= documented, (name, set(modem) - documented)
    assert status["modems"]["modem"]["routes"] == ["+25576"]
    assert status["modems"]["modem"]["sent_last_day"] == 1
    assert status["health"]["warnings"] == ["modem spare is down: ModemGone: port vanished"]
    health = requests.get(server + "/health", timeout=10).json()
    assert set(health) <= set(openapi.SCHEMAS["Health"]["properties"])
    assert health["warnings"] == status["health"]["warnings"]


def test_the_document_is_what_the_server_serves(server):
    served = requests.get(server + "/openapi.json", timeout=10).json()
    assert served["openapi"].startswith("3.")
    assert set(served["paths"]) == set(openapi.PATHS)
    assert served == openapi.document(configmod.for_tests("/tmp"))
    assert served == openapi.document()  # the default limits are the ones fuzzed above


def test_the_document_takes_its_limits_and_field_names_from_the_config():
    cfg = configmod.for_tests("/tmp", http={"max_recipients": 5},
                              rapidsms={"identity_name": "phone", "text_name": "message"})
    doc = openapi.document(cfg)
    schemas = doc["components"]["schemas"]
    assert schemas["SendRequest"]["properties"]["to"]["oneOf"][1]["maxItems"] == 5
    assert schemas["VumiMessage"]["properties"]["to_addr"]["oneOf"][1]["maxItems"] == 5
    form = (doc["paths"]["/http/send"]["post"]["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]["schema"])
    assert {"phone", "message", "identity", "text"} <= set(form["properties"])
    assert form["required"] == []       # either name is taken
    assert openapi.PATHS["/http/send"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]["schema"]["required"] == ["identity", "text"]

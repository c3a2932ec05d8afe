"""The HTTP side of the bridge: Kannel's /cgi-bin/sendsms (kannel.py), a JSON API (api.py), the
send endpoints of RapidSMS's other backends (dialects.py), USSD (ussd.py), and the operators'
view (the status page at /, /status, /health, /metrics, /openapi.json: operators.py), as one
Flask application.

Before any view, guard.py refuses what a web page could make the operator's browser do (a
foreign Host, a cross-site request that sends). The views are thin on purpose: they check the
request (checks.py), commit the message to the store and answer. They never touch the modem;
its worker picks the message up from the store. A 202 therefore means "committed to disk",
which matters because RapidSMS's KannelBackend ignores our answer and never retries: whatever
we accept must not be lost, and whatever we cannot take must be refused loudly.

Bad input of any kind gets a 4xx with a plain reason, never a 500 or a traceback. Credentials
and query strings are never logged; every log line about a message starts with id=<its id>, so
one grep finds a message's whole story in the bridge's log.
"""

import time

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from gsmbridge import overview
from gsmbridge.web import api, dialects, guard, kannel, operators, ussd
from gsmbridge.web.checks import Refused, Served, json_response, log

__all__ = ["create_app"]

UNKNOWN = "Unknown request."


def create_app(store, config):
    """The Flask application serving store according to config (a gsmbridge.config.Config)."""
    app = Flask("gsmbridge")
    app.config["MAX_CONTENT_LENGTH"] = config.http.max_body
    registry = CollectorRegistry(auto_describe=False)
    registry.register(overview.StoreCollector(store, config))
    app.extensions["gsmbridge"] = Served(store=store, config=config, started_at=time.time(),
                                         registry=registry)
    # the Host and cross-site checks, before every view (guard.py says why)
    app.before_request(guard.check_request)
    for blueprint in (kannel.bp, api.bp, operators.bp, dialects.bp, ussd.bp):
        app.register_blueprint(blueprint)

    @app.errorhandler(Refused)
    def refused(exc):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.code is None or exc.code < 400:
            return exc
        headers = {}
        if exc.code == 404:
            message = UNKNOWN
        elif exc.code == 405:
            message = "Method not allowed"
            headers = {k: v for k, v in exc.get_headers() if k == "Allow"}
        elif exc.code == 413:
            message = "Request too large (at most %d bytes), rejected" % config.http.max_body
        else:
            message = exc.name
        return error_response(exc.code or 500, message, headers)

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return error_response(500, "Internal error.")

    return app


def wants_json():
    """Whether the path speaks JSON, errors included (an unknown path under /api/ as well)."""
    return (request.path.startswith(("/api/", "/vumi/"))
            or request.path in ("/status", "/health", "/openapi.json"))


def error_response(status, message, headers=None):
    if wants_json():
        response = json_response({"error": message}, status)
    else:
        response = Response(message, status, mimetype="text/plain")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response

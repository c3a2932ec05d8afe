"""The operators' endpoints: the status page at /, the same figures as JSON at /status, /health
for monitoring, /metrics for Prometheus, and /openapi.json describing the whole API.

All of them only read (gsmbridge.overview reads the store). /health and /openapi.json need no
credentials, as they show no message; the others do when [http] has them.
"""

import socket

from flask import Blueprint, Response, request
from prometheus_client import generate_latest

from gsmbridge import metrics, overview
from gsmbridge.web import openapi, statuspage
from gsmbridge.web.checks import (REFRESH, REFRESH_DEFAULT, TEMPORARY, Refused, json_response, log,
                                  require_basic_auth, served, small_int)

#: the classic text format every Prometheus reads (prometheus_client >= 0.22 would say 1.0.0;
#: with our plain metric names the body is the same)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

bp = Blueprint("operators", __name__, template_folder="templates")
for _name, _filter in statuspage.FILTERS.items():
    bp.add_app_template_filter(_filter, _name)


def snapshot():
    try:
        return overview.snapshot(served().store, served().config, started_at=served().started_at)
    except Exception:
        log.exception("status: could not read the store")
        raise Refused(503, TEMPORARY) from None


@bp.route("/", methods=["GET"])
def status_page():
    """GET /: the status page (HTML, self-contained; templates/status.html)."""
    require_basic_auth(served().config)
    refresh = request.args.get("refresh")
    refresh = small_int(refresh, "refresh", *REFRESH) if refresh else REFRESH_DEFAULT
    page = statuspage.render(snapshot(), refresh=refresh,
                             name="gsmbridge on %s" % socket.gethostname())
    response = Response(page, 200, mimetype="text/html")
    response.headers["Content-Security-Policy"] = statuspage.CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/status", methods=["GET"])
def status():
    """GET /status: what the status page shows, as JSON (numbers and texts unmasked)."""
    require_basic_auth(served().config)
    return json_response(snapshot())


@bp.route("/health", methods=["GET"])
def health():
    """GET /health: 200 {"ok": true} when the bridge can take and deliver messages, else 503
    {"ok": false, "reason": "..."} with every reason found, joined by "; ".

    No credentials needed (it shows no message). The rules (gsmbridge/overview.py):
    the store is readable, its directory writable and its disk has at least 20 MB free; every
    configured modem is "up", has reported within 5 minutes and is not known to be unregistered
    from the network; no inbound message has waited over an hour for RapidSMS; the outbound
    queue is not stalled (a message queued over an hour while nothing was sent for 15 minutes);
    and RapidSMS has not failed to take messages for 10 minutes (answering 401, 403, 404, 405,
    410..., failing or silent: before that it is listed in "warnings" with the 200).
    In a pool of modems, one that is fine is enough: the others are listed in "warnings"
    with the 200 (their unpinned messages go out through the modems that can send). A modem
    whose airtime balance is below its low_balance is listed in "warnings" too.
    """
    reasons, warnings = overview.health_report(served().store, served().config)
    if reasons:
        log.debug("health: %s", "; ".join(reasons))
        return json_response({"ok": False, "reason": "; ".join(reasons)}, 503)
    return json_response({"ok": True, "warnings": warnings} if warnings else {"ok": True})


@bp.route("/metrics", methods=["GET"])
def prometheus():
    """GET /metrics: the process's counters (gsmbridge.metrics.REGISTRY) and the store's queue
    depths read now (overview.StoreCollector), in Prometheus's text format."""
    require_basic_auth(served().config)
    body = generate_latest(metrics.REGISTRY) + generate_latest(served().registry)
    return Response(body, 200, headers={"Content-Type": METRICS_CONTENT_TYPE})


@bp.route("/openapi.json", methods=["GET"])
def openapi_document():
    """GET /openapi.json: the OpenAPI 3 description of this API (no credentials needed)."""
    return json_response(openapi.document(served().config))

"""The `gsmbridge` command: run, check-config, simulate, send, status, messages.

`send`, `status` and `messages` talk to a running bridge over its HTTP API, finding its address and
credentials in the same ini file the bridge was started with.
"""

import argparse
import json
import logging
import sys
import time

EXIT_CONFIG = 2


def _load(path):
    """Load and validate the config, or print what is wrong and exit 2."""
    from gsmbridge.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as exc:
        print("gsmbridge: %s: %s" % (path, exc), file=sys.stderr)
        sys.exit(EXIT_CONFIG)


def setup_logging(config):
    level = getattr(logging, config.log.level.upper(), logging.INFO)
    if config.log.format == "json":
        from gsmbridge.jsonlog import JsonFormatter

        formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # requests/urllib3 log full URLs (with their query strings) at DEBUG: keep them quiet.
    logging.getLogger("urllib3").setLevel(max(level, logging.INFO))


def cmd_run(args):
    from gsmbridge import app
    from gsmbridge.config import ConfigError

    config = _load(args.config)
    setup_logging(config)
    try:
        return app.run(config)
    except ConfigError as exc:   # what only the running process can tell (e.g. open-file limits)
        print("gsmbridge: %s: %s" % (args.config, exc), file=sys.stderr)
        return EXIT_CONFIG


def cmd_check_config(args):
    config = _load(args.config)
    for section, values in config.masked().items():
        print("[%s]" % section)
        for key, value in values.items():
            print("%s = %s" % (key, value))
        print()
    for warning in config.warnings:
        print("warning: %s" % warning)
    print("%s: OK" % args.config)
    return 0


def cmd_simulate(args, rest):
    from gsmbridge.simulator import runner

    return runner.main(rest)


def _api(config):
    """(base url, auth) of the bridge described by config."""
    host = config.http.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = "[%s]" % host
    auth = (config.http.username, config.http.password) if config.http.username else None
    return "http://%s:%d" % (host, config.http.port), auth


def _request(method, url, **kwargs):
    import requests

    from gsmbridge.delivery import describe_error
    from gsmbridge.safeurl import mask_url

    try:
        return requests.request(method, url, timeout=10, **kwargs)
    except requests.RequestException as exc:
        print("gsmbridge: cannot reach the bridge at %s: %s" % (mask_url(url), describe_error(exc)),
              file=sys.stderr)
        sys.exit(1)


def cmd_send(args):
    config = _load(args.config)
    base, auth = _api(config)
    resp = _request("POST", base + "/api/v1/messages", auth=auth,
                    json={"to": args.to, "text": args.text})
    if resp.status_code != 202:
        print("gsmbridge: refused (%d): %s" % (resp.status_code, resp.text.strip()), file=sys.stderr)
        return 1
    body = resp.json()
    for msg_id, to in zip(body.get("ids", [body["id"]]), args.to):
        print("%s queued for %s (%d part%s)" % (msg_id, to, body["parts"],
                                                "" if body["parts"] == 1 else "s"))
    return 0


def cmd_status(args):
    """Print the bridge's /status as tables; exit 0 when healthy, 1 when not or unreachable."""
    config = _load(args.config)
    base, auth = _api(config)
    resp = _request("GET", base + "/status", auth=auth)
    if resp.status_code != 200:
        print("gsmbridge: status failed (%d): %s" % (resp.status_code, resp.text.strip()),
              file=sys.stderr)
        return 1
    data = resp.json()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(format_status(data, base))
    return 0 if data.get("health", {}).get("ok") else 1


def format_status(data, base):
    """/status as the text `gsmbridge status` prints."""
    from gsmbridge import overview

    now = data.get("now") or time.time()
    health = data.get("health", {})
    lines = ["gsmbridge at %s: %s" % (base, "OK" if health.get("ok") else "PROBLEM")]
    lines += ["  - %s" % reason for reason in health.get("reasons", [])]
    lines += ["  warning: %s" % warning for warning in health.get("warnings", [])]
    if data.get("uptime") is not None:
        lines.append("running for %s" % overview.duration(data["uptime"]))

    rows = []
    for name, modem in sorted(data.get("modems", {}).items()):
        csq = modem.get("signal")
        bars = overview.signal_bars(csq)
        signal = "unknown" if bars is None else "%s %s (CSQ %d)" % (
            "#" * bars + "." * (4 - bars), ("none", "marginal", "fair", "good", "excellent")[bars],
            csq)
        rows.append([name, modem.get("state") or "?", signal, modem.get("operator") or "-",
                     overview.registration_text(modem.get("registration")),
                     overview.ago(modem.get("updated_at"), now)])
        if modem.get("last_error"):
            rows.append(["", "last error: %s" % modem["last_error"]])
    lines += ["", table(["MODEM", "STATE", "SIGNAL", "OPERATOR", "REGISTRATION", "LAST REPORT"],
                        rows)]
    if data.get("cluster"):
        lines += ["", format_cluster(data["cluster"])]

    counts = data.get("counts", {})
    inbound, outbound = counts.get("inbound", {}), counts.get("outbound", {})
    callbacks = counts.get("callbacks") or {}

    def oldest(key):
        seconds = overview.age(counts.get(key), now)
        return "" if seconds is None else overview.duration(seconds)

    queues = [
        ["inbound waiting for RapidSMS", inbound.get("pending", 0), oldest("oldest_pending_inbound")],
        ["inbound refused by RapidSMS", inbound.get("failed", 0), ""],
        ["outbound queued", outbound.get("queued", 0), oldest("oldest_queued_outbound")],
        ["outbound sending", outbound.get("sending", 0), ""],
        ["outbound failed", outbound.get("failed", 0), ""],
        ["outbound unknown (interrupted)", outbound.get("unknown", 0), ""],
        ["parts awaiting reassembly", counts.get("parts", 0), ""],
        ["undecodable PDUs kept", counts.get("bad_pdus", 0), ""],
    ]
    if callbacks:
        queues.append(["delivery reports to send", callbacks.get("pending", 0), ""])
        queues.append(["delivery reports failed", callbacks.get("failed", 0), ""])
    lines += ["", table(["QUEUE", "COUNT", "OLDEST"], queues, right=[1])]

    traffic = data.get("traffic", {})
    ins, outs = traffic.get("in") or [0], traffic.get("out") or [0]
    activity = data.get("activity", {})
    lines += ["", table(["TRAFFIC", "RECEIVED", "SENT"],
                        [["last hour", ins[-1], outs[-1]],
                         ["last 24 hours", sum(ins), sum(outs)]], right=[1, 2])]
    lines.append("last received %s, forwarded %s, sent %s" % tuple(
        overview.ago(activity.get(key), now)
        for key in ("last_received", "last_forwarded", "last_sent")))
    return "\n".join(lines)


def format_cluster(cluster):
    """The cluster as `gsmbridge status` prints it: every node heard and its modems."""
    from gsmbridge import overview

    rows = []
    for name, node in sorted((cluster.get("nodes") or {}).items()):
        label = name + (" (this node)" if node.get("this") else "")
        heard = "%s ago%s" % (overview.duration(node.get("age") or 0),
                              ", STOPPED" if node.get("stopped") else
                              ", DOWN" if node.get("down") else "")
        for index, modem in enumerate(node.get("modems") or [{}]):
            first = index == 0
            rows.append([label if first else "", modem.get("name") or "-",
                         modem.get("state") or "-" if modem else "",
                         ("yes" if modem.get("can_send") else "no") if modem else "",
                         " ".join(modem.get("routes") or ()) or "-" if modem else "",
                         node.get("outbox") if first and node.get("outbox") is not None else "",
                         heard if first else ""])
    return table(["NODE", "MODEM", "STATE", "CAN SEND", "ROUTES", "OUTBOX", "LAST HEARTBEAT"],
                 rows)


def table(header, rows, right=()):
    """Rows as aligned columns under an upper-case header; short rows leave the rest blank."""
    rows = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in header]
    for row in rows:
        if len(row) < len(header) and len(row) == 2 and not row[0]:
            continue  # a note row spans the line
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells):
        if len(cells) == 2 and not cells[0] and len(header) > 2:
            return " " * (widths[0] + 2) + cells[1]
        out = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
               for i, c in enumerate(cells)]
        return "  ".join(out).rstrip()

    return "\n".join([line(header)] + [line(row) for row in rows])


def cmd_messages(args):
    """List recent messages through GET /api/v1/messages."""
    config = _load(args.config)
    base, auth = _api(config)
    params = {"limit": args.limit}
    for name in ("direction", "status", "number"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    resp = _request("GET", base + "/api/v1/messages", auth=auth, params=params)
    if resp.status_code != 200:
        print("gsmbridge: messages failed (%d): %s" % (resp.status_code, _reason(resp)),
              file=sys.stderr)
        return 1
    messages = resp.json()["messages"]
    if args.json:
        print(json.dumps(messages, indent=2, sort_keys=True, ensure_ascii=False))
        return 0
    if not messages:
        print("no messages")
        return 0
    rows = []
    for m in messages:
        inbound = m.get("direction") == "in"
        when = m.get("received_at") if inbound else m.get("created_at")
        rows.append([time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)) if when else "?",
                     "in" if inbound else "out",
                     (m.get("sender") if inbound else m.get("recipient")) or "?",
                     m.get("status") or "?", m.get("parts") or 1, m.get("attempts") or 0,
                     m.get("id"), _shorten(m.get("text") or "", args.width)])
        if m.get("last_error") and m.get("status") not in ("delivered", "sent"):
            rows.append(["", "error: %s" % m["last_error"]])
    print(table(["WHEN", "WAY", "NUMBER", "STATUS", "PARTS", "TRIES", "ID", "TEXT"], rows,
                right=[4, 5]))
    return 0


def _reason(resp):
    try:
        return resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return resp.text.strip()


def _shorten(text, width):
    text = " ".join(text.split())
    return text if len(text) <= width else text[:max(width - 3, 1)] + "..."


def build_parser():
    parser = argparse.ArgumentParser(prog="gsmbridge",
                                     description="SMS gateway between a GSM modem and RapidSMS")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p):
        p.add_argument("-c", "--config", default="etc/gsmbridge.ini",
                       help="the ini file (default: %(default)s)")
        return p

    with_config(sub.add_parser("run", help="run the bridge in the foreground"))
    with_config(sub.add_parser("check-config", help="validate and print the effective config"))
    sub.add_parser("simulate", help="run a simulated modem on a pseudo-terminal", add_help=False)
    send = with_config(sub.add_parser("send", help="queue an SMS through a running bridge"))
    send.add_argument("--to", required=True, action="append", help="recipient (repeatable)")
    send.add_argument("--text", required=True)
    status = with_config(sub.add_parser(
        "status", help="show a running bridge's modems, queues and traffic (exit 1 if unhealthy)"))
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    messages = with_config(sub.add_parser("messages", help="list a running bridge's recent "
                                                           "messages, newest first"))
    messages.add_argument("--direction", choices=["in", "out"], help="only inbound or outbound")
    messages.add_argument("--status", help="only this status (in: pending, delivered, failed; "
                                           "out: queued, sending, sent, delivered, failed, unknown)")
    messages.add_argument("--number", help="only this number (its last 9 digits match)")
    messages.add_argument("--limit", type=int, default=20, help="how many (default %(default)s)")
    messages.add_argument("--width", type=int, default=40,
                          help="text shown up to this many characters (default %(default)s)")
    messages.add_argument("--json", action="store_true", help="print the raw JSON, texts whole")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        return cmd_simulate(None, argv[1:])
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "check-config": cmd_check_config, "send": cmd_send,
               "status": cmd_status, "messages": cmd_messages}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

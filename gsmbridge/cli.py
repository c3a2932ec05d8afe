"""The `gsmbridge` command: run, check-config, simulate, send, status.

`send` and `status` talk to a running bridge over its HTTP API, finding its address and credentials
in the same ini file the bridge was started with.
"""

import argparse
import json
import logging
import sys

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
        from gsmbridge.logfmt import JsonFormatter

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

    config = _load(args.config)
    setup_logging(config)
    return app.run(config)


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
    from gsmbridge.modem import simport

    return simport.main(rest)


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

    try:
        return requests.request(method, url, timeout=10, **kwargs)
    except requests.RequestException as exc:
        print("gsmbridge: cannot reach the bridge at %s: %s" % (url, exc), file=sys.stderr)
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
    config = _load(args.config)
    base, auth = _api(config)
    resp = _request("GET", base + "/status", auth=auth)
    if resp.status_code != 200:
        print("gsmbridge: status failed (%d): %s" % (resp.status_code, resp.text.strip()),
              file=sys.stderr)
        return 1
    data = resp.json()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    for name, modem in sorted(data.get("modems", {}).items()):
        print("modem %-10s %-8s operator=%s signal=%s registered=%s%s" % (
            name, modem.get("state"), modem.get("operator"), modem.get("signal"),
            modem.get("registered"),
            "  last error: %s" % modem["last_error"] if modem.get("last_error") else ""))
    for direction, counts in sorted(data.get("counts", {}).items()):
        if isinstance(counts, dict):
            print("%-8s %s" % (direction, "  ".join("%s=%s" % kv for kv in sorted(counts.items()))))
        else:
            print("%-8s %s" % (direction, counts))
    return 0


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
    status = with_config(sub.add_parser("status", help="show a running bridge's status"))
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        return cmd_simulate(None, argv[1:])
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "check-config": cmd_check_config, "send": cmd_send,
               "status": cmd_status}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

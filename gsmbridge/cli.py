"""The `gsmbridge` command: run, check-config, simulate, send, status, messages, ussd, requeue,
maintenance.

`send`, `status`, `messages` and `ussd` talk to a running bridge over its HTTP API, finding its
address and credentials in the same ini file the bridge was started with. `requeue` and
`maintenance` open its store (the file [store] path names) directly: both are safe while the
bridge runs, in short transactions the bridge's own writes wait a few milliseconds for.
"""

import argparse
import json
import logging
import os
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
    # Neither format shows the caller's file and line, thread or process: not collecting them
    # for every line (the logging HOWTO's "Optimization") makes each INFO line about a message
    # a third cheaper.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
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

    kwargs.setdefault("timeout", 10)
    try:
        return requests.request(method, url, **kwargs)
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
    lines += ["  ! %s" % warning for warning in health.get("warnings", [])]
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
        rows += [["", note] for note in service_notes(modem, now)]
    lines += ["", table(["MODEM", "STATE", "SIGNAL", "OPERATOR", "REGISTRATION", "LAST REPORT"],
                        rows)]

    receivers = data.get("receivers") or {}
    if receivers:
        rows = []
        for name, state in sorted(receivers.items()):
            words = state.get("state") or "?"
            if state.get("status"):
                words += " (%s)" % overview.status_text(state["status"])
            since = overview.age(state.get("since"), now)
            rows.append([name, words, "" if since is None else overview.duration(since)])
            if state.get("state") != "up" and state.get("error"):
                rows.append(["", "last error: %s" % _shorten(state["error"], 100)])
        lines += ["", table(["RECEIVER", "STATE", "FOR"], rows)]

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


def service_notes(modem, now):
    """The SIM's services of a modem in /status, as the lines under its row: the balance, who
    the modem and SIM are, the calls."""
    from gsmbridge import overview

    notes = []
    if modem.get("balance") is not None or modem.get("balance_error"):
        if modem.get("balance") is not None:
            low = modem.get("low_balance")
            words = "balance %s (checked %s)%s" % (
                "%g" % modem["balance"], overview.ago(modem.get("balance_checked_at"), now),
                ", BELOW low_balance %g" % low if low is not None and modem["balance"] < low
                else "")
        else:
            words = "balance unknown"
        if modem.get("balance_error"):
            words += "; last check failed: %s" % modem["balance_error"]
        notes.append(words)
    identity = modem.get("identity") or {}
    facts = ["%s %s" % (label, identity[key]) for key, label in (
        ("imei", "IMEI"), ("imsi", "IMSI"), ("iccid", "ICCID"), ("own_number", "number"))
        if identity.get(key)]
    if facts:
        notes.append(", ".join(facts))
    if modem.get("calls"):
        notes.append("%d call%s, the last %s" % (modem["calls"], "" if modem["calls"] == 1
                                                 else "s", overview.ago(modem.get("last_call"),
                                                                        now)))
    return notes


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


def cmd_ussd(args):
    """A USSD request through POST /api/v1/ussd: print the reply; a menu's session to answer."""
    from gsmbridge.web.ussd import GRACE
    from gsmbridge.store import USSD_QUEUE_WAIT

    config = _load(args.config)
    base, auth = _api(config)
    if args.end:
        resp = _request("DELETE", base + "/api/v1/ussd/" + args.end, auth=auth)
        if resp.status_code != 200:
            print("gsmbridge: ussd failed (%d): %s" % (resp.status_code, _reason(resp)),
                  file=sys.stderr)
            return 1
        print("session %s ended" % args.end)
        return 0
    if not args.code:
        print("gsmbridge: ussd needs a code (e.g. '*102#'), or --end SESSION", file=sys.stderr)
        return 2
    body = {"code": args.code}
    if args.modem:
        body["modem"] = args.modem
    if args.session:
        body["session"] = args.session
    longest = max(m.ussd_timeout for m in config.modems.values())
    resp = _request("POST", base + "/api/v1/ussd", auth=auth, json=body,
                    timeout=USSD_QUEUE_WAIT + longest + GRACE + 10)
    if resp.status_code != 200:
        print("gsmbridge: ussd failed (%d): %s" % (resp.status_code, _reason(resp)),
              file=sys.stderr)
        return 1
    answer = resp.json()
    if args.json:
        print(json.dumps(answer, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        if answer.get("reply") is not None:
            print(answer["reply"])
        if answer["status"] == "more":
            print("(a menu: answer with gsmbridge ussd -c %s --session %s ANSWER, or end it "
                  "with --end %s)" % (args.config, answer["session"], answer["session"]))
        elif answer["status"] != "done":
            print("%s: %s" % (answer["status"], answer.get("error") or "no reply"),
                  file=sys.stderr)
    return 0 if answer["status"] in ("done", "more") else 1


def _usage(message):
    """A command line that makes no sense: say why, exit 2 (as argparse does)."""
    print("gsmbridge: %s" % message, file=sys.stderr)
    return EXIT_CONFIG


def _open_store(config):
    """The store the config names, or None (said why) when there is none: requeue and
    maintenance never create one."""
    from gsmbridge.store import Store

    if not os.path.exists(config.store.path):
        print("gsmbridge: no store at %s (has the bridge run with this config?)"
              % config.store.path, file=sys.stderr)
        return None
    return Store(config.store.path)


#: what `requeue` says it did, per direction
REQUEUED = {"in": ("inbound message", "RapidSMS gets %(it)s again, with the same id%(s)s"),
            "out": ("outbound message", "the modem sends %(it)s again, with the same id%(s)s"),
            "callbacks": ("delivery-report callback", "the bridge makes %(it)s again")}


def cmd_requeue(args):
    """Put failed rows back in their queue; exit 0, 1 when an --id could not be, 2 when the
    request makes no sense."""
    from gsmbridge.store import CALLBACK_STATUSES, INBOUND_STATUSES, OUTBOUND_STATUSES, why_not

    known = set(INBOUND_STATUSES) | set(OUTBOUND_STATUSES) | set(CALLBACK_STATUSES)
    if args.status not in known:
        return _usage("requeue: --status %r is not a status (they are: %s)"
                      % (args.status, ", ".join(sorted(known))))
    if args.direction is None and not args.ids:
        return _usage("requeue: say what to put back: --direction in, out or callbacks (every "
                      "%s one), or --id ID" % args.status)
    if args.direction is not None and why_not(args.direction, args.status):
        return _usage("requeue: %s" % why_not(args.direction, args.status))
    config = _load(args.config)
    store = _open_store(config)
    if store is None:
        return 1
    try:
        return _requeue(store, args)
    finally:
        store.close()


def _requeue(store, args):
    from gsmbridge.store import why_not

    status, exit_status = args.status, 0
    if not args.ids:
        groups = {args.direction: None}
    else:
        groups = {}
        for msg_id in dict.fromkeys(args.ids):
            found = store.locate(msg_id)
            ways = [way for way, _ in found]
            if args.direction is not None:
                way = args.direction
            elif "in" in ways or "out" in ways:
                way = "in" if "in" in ways else "out"
            elif ways:
                way = "callbacks"
            else:
                print("gsmbridge: requeue: no message or callback has the id %r" % msg_id,
                      file=sys.stderr)
                exit_status = 1
                continue
            if why_not(way, status):
                return _usage("requeue: --id %s (%s): %s" % (msg_id, REQUEUED[way][0],
                                                              why_not(way, status)))
            groups.setdefault(way, []).append(msg_id)
    for way, ids in groups.items():
        noun, effect = REQUEUED[way]
        if ids is None:
            count = store.requeue(way, status=status)
        else:
            count = 0
            for msg_id in ids:
                moved = store.requeue(way, status=status, ids=[msg_id])
                count += moved
                if not moved:
                    exit_status = 1
                    print("gsmbridge: requeue: %s" % _not_requeued(store, way, msg_id, status),
                          file=sys.stderr)
        plural = "" if count == 1 else "s"
        if count:
            print("requeued %d %s %s%s: %s" % (count, status, noun, plural, effect % {
                "it": "it" if count == 1 else "them", "s": plural}))
        elif ids is None:
            print("nothing to requeue: no %s %ss" % (status, noun))
    return exit_status


def _not_requeued(store, way, msg_id, status):
    """Why --id msg_id moved nothing, in words."""
    found = [(w, s) for w, s in store.locate(msg_id) if w == way]
    if not found:
        return "no %s has the id %r" % (REQUEUED[way][0], msg_id)
    return "%s %s is %s, not %s; left as it is" % (
        REQUEUED[way][0], msg_id, ", ".join(sorted({s for _, s in found})), status)


def cmd_maintenance(args):
    """Prune, tidy and optionally check the store; exit 0, 1 when --check found problems."""
    config = _load(args.config)
    keep_days = config.store.keep_days if args.keep_days is None else args.keep_days
    if keep_days and keep_days < 1:
        return _usage("maintenance: --keep-days is 0 (keep every message) or at least 1")
    store = _open_store(config)
    if store is None:
        return 1
    try:
        return _maintenance(store, config, keep_days, args)
    finally:
        store.close()


def _maintenance(store, config, keep_days, args):
    started = time.monotonic()
    print("store %s (%.1f MB)" % (config.store.path, _megabytes(config.store.path)))
    removed = store.prune(keep_days=keep_days or None)
    if keep_days:
        cutoff = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() - keep_days * 86400))
        print("removed what finished before %s (keep_days = %g): %d inbound delivered, %d "
              "outbound sent or delivered, %d callbacks made, %d status reports"
              % (cutoff, keep_days, removed["inbound"], removed["outbound"],
                 removed["callbacks"], removed["reports"]))
    else:
        print("messages are kept for ever (keep_days = 0)")
    print("forgot %d dedup keys older than 30 days" % removed["seen"])
    counts = store.counts()
    print("kept: %d inbound waiting, %d failed; %d outbound queued or sending, %d failed, %d "
          "unknown; %d callbacks waiting, %d failed" % (
              counts["inbound"]["pending"], counts["inbound"]["failed"],
              counts["outbound"]["queued"] + counts["outbound"]["sending"],
              counts["outbound"]["failed"], counts["outbound"]["unknown"],
              counts["callbacks"]["pending"], counts["callbacks"]["failed"]))
    store.optimize()
    print("statistics refreshed (PRAGMA optimize)")
    if args.vacuum:
        before, after = store.vacuum()
        print("file rewritten (VACUUM): %.1f MB -> %.1f MB" % (before / 1e6, after / 1e6))
    tidied = store.compact(pages=None, checkpoint="TRUNCATE")
    page = tidied["page_size"]
    if tidied["auto_vacuum"] == "incremental":
        print("free space: %d pages (%.1f MB) given back to the disk" % (
            tidied["pages_freed"], tidied["pages_freed"] * page / 1e6))
    elif tidied["free_pages"]:
        print("free space: %d pages (%.1f MB) kept for reuse; `gsmbridge maintenance --vacuum`, "
              "with the bridge stopped, gives them back to the disk" % (
                  tidied["free_pages"], tidied["free_pages"] * page / 1e6))
    print("write-ahead log: %s" % (
        "%.1f MB, busy (the bridge was writing): folded in at its next checkpoint"
        % (tidied["wal_bytes"] / 1e6) if tidied["wal_busy"] else
        "%.1f MB folded into the database, %.1f MB left" % (tidied["wal_bytes_before"] / 1e6,
                                                            tidied["wal_bytes"] / 1e6)))
    exit_status = 0
    if args.check:
        problems = store.check()
        drift = [p for p in problems if p.startswith("tallies:")]
        if drift:
            store.recount()
        for problem in problems:
            print("problem: %s%s" % (problem, " (recounted)" if problem in drift else ""))
        print("check: %s" % ("OK" if not problems else "%d problem(s)" % len(problems)))
        exit_status = 1 if problems else 0
    print("done in %.1fs; %.1f MB" % (time.monotonic() - started,
                                      _megabytes(config.store.path)))
    return exit_status


def _megabytes(path):
    return os.path.getsize(path) / 1e6


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
    ussd = with_config(sub.add_parser(
        "ussd", help="ask the network a USSD code through a running bridge's modem (exit 1 "
                     "when it failed or timed out)"))
    ussd.add_argument("code", nargs="?", help="the code, e.g. '*102#' (quote it: # starts a "
                                              "shell comment), or a menu's answer")
    ussd.add_argument("--modem", help="the modem to ask through (needed with several)")
    ussd.add_argument("--session", help="answer the menu of this session")
    ussd.add_argument("--end", metavar="SESSION", help="end this session's menu")
    ussd.add_argument("--json", action="store_true", help="print the raw JSON")
    requeue = with_config(sub.add_parser(
        "requeue", help="put failed messages or callbacks back in their queue, with the same "
                        "ids (safe while the bridge runs)"))
    requeue.add_argument("--direction", choices=["in", "out", "callbacks"],
                         help="in: to RapidSMS again; out: to the modem again; callbacks: "
                              "delivery reports again")
    requeue.add_argument("--status", default="failed",
                         help="the rows to put back: failed (the default); outbound also "
                              "unknown (interrupted while sending: it may have gone out)")
    requeue.add_argument("--id", dest="ids", action="append", metavar="ID",
                         help="only this message (repeatable); for callbacks, a callback's id "
                              "or its message's")
    maintenance = with_config(sub.add_parser(
        "maintenance", help="prune finished messages older than [store] keep_days and tidy "
                            "the store (safe while the bridge runs)"))
    maintenance.add_argument("--keep-days", type=float, metavar="DAYS",
                             help="instead of [store] keep_days (0: keep every message)")
    maintenance.add_argument("--vacuum", action="store_true",
                             help="rewrite the whole file, giving all free space back (holds "
                                  "the store throughout: stop the bridge first)")
    maintenance.add_argument("--check", action="store_true",
                             help="also check the store's consistency (reads every row)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        return cmd_simulate(None, argv[1:])
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "check-config": cmd_check_config, "send": cmd_send,
               "status": cmd_status, "messages": cmd_messages, "ussd": cmd_ussd,
               "requeue": cmd_requeue, "maintenance": cmd_maintenance}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

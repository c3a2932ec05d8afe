"""What an operator needs to know about a running bridge, read from the store.

One `snapshot()` feeds the status page, GET /status and `gsmbridge status`; `problems()` is what
GET /health answers; `StoreCollector` gives the same queue depths, and each modem's sends against
its caps, to Prometheus at scrape time.
Everything here only reads: the store is the truth (the worker records the modem's state in it, the
forwarder the deliveries), so the numbers are right across restarts and whichever thread asks.

The health rules, each a reason for 503 (there may be several):

- the store cannot be read, its directory is not writable (a read-only remount after SD card
  errors, wrong owner) or its disk has less than MIN_FREE_BYTES free;
- a configured modem has not started, is not "up" (booting, down, stopped), has not reported for
  MODEM_STALE seconds (the worker reports every 30 s; one long send may hold it a few minutes) or
  says it is not registered on the network (AT+CREG/CEREG: searching, denied, ...). In a pool of
  several modems this is a reason only when no modem is fine: while one can send, the others'
  unpinned messages go out through it, so the bridge is healthy and the modems that are not
  fine are listed as warnings (GET /health: 200 {"ok": true, "warnings": [...]});
- inbound: a message has waited for RapidSMS more than QUEUE_STALE seconds (RapidSMS down or
  refusing it, or the forwarder stuck);
- outbound: a message has been queued more than QUEUE_STALE seconds and the modem has sent
  nothing for SEND_STALE seconds (a long but moving queue is not a problem; a stalled one is);
- a receiver (RapidSMS: [rapidsms] url, a modem's url) has not taken messages for RECEIVER_STALE
  seconds: it answers that it is not there (401, 403, 404, 405, 410, ...), fails (5xx), or does
  not answer. Before that it is a warning (GET /health: 200 with "warnings"): a RapidSMS deploy
  answers 404 for a while, and the messages wait for it, held and retried.

A warning, never a reason for 503: a modem whose airtime balance (the balance watch, [modem]
balance_code) is below its low_balance.  SMS still flow, but not for long: a prepaid SIM that
runs out of credit is the commonest silent outage of an SMS service.
"""

import http
import os
import time

from prometheus_client.core import GaugeMetricFamily

# MODEM_STALE, seconds without a modem report before /health calls the modem stuck, is the store's:
# the pool stops routing to a modem after the same silence, so the two cannot disagree.
from gsmbridge.store import MODEM_STALE

#: seconds a message may wait in a queue before /health looks at why
QUEUE_STALE = 3600.0
#: seconds without any send, with an old message queued, before outbound counts as stalled
SEND_STALE = 900.0
#: seconds a receiver may answer "not there", fail or not answer before /health fails (until
#: then it is a warning)
RECEIVER_STALE = 600.0
#: free bytes on the store's disk below which /health fails (SQLite needs room to commit)
MIN_FREE_BYTES = 20 * 1024 * 1024

#: the traffic chart: 24 buckets of an hour, the last one ending now
BUCKET = 3600.0
BUCKETS = 24

#: 27.007 +CREG/+CGREG/+CEREG <stat>
REGISTRATION = {
    0: "not registered",
    1: "registered (home)",
    2: "searching",
    3: "registration denied",
    4: "unknown",
    5: "registered (roaming)",
    6: "registered for SMS only (home)",
    7: "registered for SMS only (roaming)",
    8: "emergency calls only",
    9: "registered (home, CSFB not preferred)",
    10: "registered (roaming, CSFB not preferred)",
}


def snapshot(store, config, *, now=None, recent=20, started_at=None):
    """Everything the status page shows, as one JSON-able dict (the body of GET /status).

    Keys: now, uptime (seconds since started_at, or None), modems {name: {...}}, counts
    (store.counts()), receivers (store.receivers(): what each RapidSMS URL answers), activity
    {last_received, last_forwarded, last_sent}, traffic {start, bucket, in: [24 counts], out:
    [24 counts]}, recent (store.recent()), health {ok, reasons, and warnings when some modems
    of a pool cannot send but another can, or a receiver has not taken messages for a while}.
    Raises whatever the store raises when it cannot be read.
    """
    now = time.time() if now is None else now
    start = now - BUCKET * BUCKETS
    activity = store.activity(start, bucket=BUCKET, buckets=BUCKETS)
    data = {
        "now": now,
        "uptime": None if started_at is None else now - started_at,
        "modems": modems_with_config(store.modems(), config),
        "counts": store.counts(),
        "receivers": store.receivers(),
        "activity": {key: activity[key] for key in ("last_received", "last_forwarded",
                                                    "last_sent")},
        "traffic": {"start": start, "bucket": BUCKET, "in": activity["in"],
                    "out": activity["out"]},
        "recent": store.recent(limit=recent),
    }
    reasons = problems(data, config, now=now, disk=disk_problem(config.store.path))
    data["health"] = {"ok": not reasons, "reasons": reasons}
    found = warnings(data, config, now=now)
    if found:
        data["health"]["warnings"] = found
    low = [name for name in config.modem_names if low_balance(name, data["modems"], config)]
    if low:
        data["health"]["low_balance"] = low
    return data


def modems_with_config(modems, config):
    """The store's modem records, every configured modem included (a missing one as not
    started): the configured ones in the config file's order, then any others by name."""
    result = {}
    for name, modem in config.modems.items():
        result[name] = dict(modems.get(name) or {"state": "not started", "updated_at": None},
                            configured=True)
        if getattr(modem, "low_balance", None) is not None:
            result[name]["low_balance"] = modem.low_balance
    for name, state in sorted(modems.items()):
        result.setdefault(name, dict(state, configured=False))
    return result


def health(store, config, *, now=None):
    """[reasons] the bridge cannot take or deliver messages; [] when it can (GET /health)."""
    return health_report(store, config, now=now)[0]


def health_report(store, config, *, now=None):
    """(reasons, warnings): what makes GET /health answer 503, and what it lists with a 200
    (the modems of a pool that cannot send while another can, a receiver not taking messages
    for less than RECEIVER_STALE). Its cost does not grow with the store."""
    now = time.time() if now is None else now
    try:
        data = {"modems": modems_with_config(store.modems(), config), "counts": store.counts(),
                "receivers": store.receivers(), "activity": store.activity(now, buckets=0)}
    except Exception:
        return ["the store cannot be read"], []
    return (problems(data, config, now=now, disk=disk_problem(config.store.path)),
            warnings(data, config, now=now))


def _modem_problems(data, config, now):
    """(modem problems, whether they are only warnings: a pool with a modem that is fine)."""
    found = [reason for reason in (modem_problem(name, data["modems"].get(name), now)
                                   for name in config.modem_names) if reason]
    return found, len(config.modem_names) > 1 and len(found) < len(config.modem_names)


def warnings(data, config, *, now):
    """The modems of a pool that cannot send, while another can, the receivers that have not
    taken messages for less than RECEIVER_STALE, and the modems whose airtime balance is below
    their low_balance; [] when there are none."""
    found, pool_is_fine = _modem_problems(data, config, now)
    found = (found if pool_is_fine else []) + _receiver_problems(data, now, lasting=False)
    for name in config.modem_names:
        low = low_balance(name, data["modems"], config)
        if low:
            found.append(low)
    return found


def _receiver_problems(data, now, *, lasting):
    """The receivers not taking messages: for RECEIVER_STALE or longer (lasting), or not yet."""
    found = []
    for name, state in sorted((data.get("receivers") or {}).items()):
        reason = receiver_problem(name, state, now)
        since = age(state.get("since"), now)
        if reason and lasting == (since is not None and since >= RECEIVER_STALE):
            found.append(reason)
    return found


def receiver_problem(name, state, now):
    """A receiver's state in words when it is not taking messages, else None."""
    what = state.get("state")
    if what in (None, "up"):
        return None
    if what == "not answering":
        words = "does not answer"
    else:
        words = "answers %s" % status_text(state.get("status"))
        if what == "not there":
            words += " (not there: a wrong URL or password, or a deploy under way)"
    since = age(state.get("since"), now)
    return "receiver %s %s%s; inbound messages wait and are retried" % (
        name, words, "" if since is None else " for %s" % duration(since))


def status_text(status):
    """404 -> "HTTP 404 Not Found"."""
    try:
        return "HTTP %d %s" % (status, http.HTTPStatus(status).phrase)
    except (TypeError, ValueError):
        return "HTTP %s" % status


def low_balance(name, modems, config):
    """The warning for a modem whose last balance is below its low_balance, else None."""
    limit = getattr(config.modems[name], "low_balance", None)
    balance = (modems.get(name) or {}).get("balance")
    if limit is None or not isinstance(balance, (int, float)) or isinstance(balance, bool) \
            or balance >= limit:
        return None
    return "modem %s: airtime balance %s is below low_balance %s" % (name, _amount(balance),
                                                                     _amount(limit))


def _amount(value):
    return ("%.2f" % value).rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def problems(data, config, *, now, disk=None):
    """The health rules (see the module docstring) applied to a snapshot."""
    reasons = [disk] if disk else []
    found, pool_is_fine = _modem_problems(data, config, now)
    if not pool_is_fine:
        reasons.extend(found)
    counts, activity = data["counts"], data["activity"]
    waiting = age(counts.get("oldest_pending_inbound"), now)
    if waiting is not None and waiting > QUEUE_STALE:
        reasons.append("inbound: a message has waited %s for RapidSMS (%d pending, last "
                       "forwarded %s)" % (duration(waiting), counts["inbound"]["pending"],
                                          ago(activity.get("last_forwarded"), now)))
    queued = age(counts.get("oldest_queued_outbound"), now)
    idle = age(activity.get("last_sent"), now)
    if queued is not None and queued > QUEUE_STALE and (idle is None or idle > SEND_STALE):
        reasons.append("outbound: nothing sent %s; %d queued, the oldest for %s"
                       % ("ever" if idle is None else "for " + duration(idle),
                          counts["outbound"]["queued"], duration(queued)))
    reasons.extend(_receiver_problems(data, now, lasting=True))
    return reasons


def modem_problem(name, state, now):
    if not state or state.get("state") == "not started":
        return "modem %s has not started" % name
    if state.get("state") != "up":
        error = state.get("last_error")
        words = "has no network" if state.get("state") == "no network" else "is %s" % (
            state.get("state") or "unknown")
        return "modem %s %s%s" % (name, words, ": %s" % error if error else "")
    since = age(state.get("updated_at"), now)
    if since is None or since > MODEM_STALE:
        return "modem %s has not reported for %s" % (
            name, "a long time" if since is None else "%d s" % since)
    if state.get("registered") is False:
        return "modem %s is not registered on the network (%s)" % (
            name, registration_text(state.get("registration")))
    return None


def disk_problem(path):
    """Why the store's directory cannot take writes, or None. Cheap: no write is made."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        return "the store's directory cannot be read: %s" % exc.strerror
    if stat.f_flag & os.ST_RDONLY:
        return "the store's file system is mounted read-only"
    if not os.access(directory, os.W_OK) or (os.path.exists(path)
                                             and not os.access(path, os.W_OK)):
        return "the store is not writable by this user"
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return "the store's disk is nearly full: %.1f MB free" % (free / 1e6)
    return None


# ---------------------------------------------------------------------------------------------
# Words for people


def registration_text(stat):
    if stat is None:
        return "unknown"
    return REGISTRATION.get(stat, "status %s" % stat)


def signal_bars(csq):
    """AT+CSQ <rssi> (0-31, 99 or None unknown) -> 0..4 bars, None when unknown.

    The usual reading of 27.007's scale: below 2 (-109 dBm) no service to speak of, 2-9 marginal,
    10-14 fair, 15-19 good, 20 and up (-73 dBm) excellent.
    """
    if csq is None or not isinstance(csq, int) or not 0 <= csq <= 31:
        return None
    return 0 if csq < 2 else 1 if csq < 10 else 2 if csq < 15 else 3 if csq < 20 else 4


def signal_dbm(csq):
    if csq is None or not isinstance(csq, int) or not 0 <= csq <= 31:
        return None
    return -113 + 2 * csq


def mask_number(number):
    """A phone number with its middle hidden: +255700000001 -> +25570****001.

    The last 3 digits stay (to tell numbers apart), at least 4 are hidden, and at most the first
    5 stay (country and network). Short codes (6 digits or fewer) and alphanumeric senders
    ("MyBank") are not personal and stay as they are.
    """
    if not number:
        return number or ""
    number = str(number)
    prefix = "+" if number.startswith("+") else ""
    digits = number[len(prefix):]
    if not digits.isdigit() or len(digits) <= 6:
        return number
    keep = max(0, min(5, len(digits) - 3 - 4))
    return prefix + digits[:keep] + "*" * (len(digits) - keep - 3) + digits[-3:]


def age(stamp, now):
    """Seconds since an epoch stamp; None when there is none."""
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return max(0.0, now - stamp)
    return None


def duration(seconds):
    """3 s, 5 min, 2 h 10 min, 3 d 4 h."""
    seconds = int(seconds)
    if seconds < 90:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 90:
        return "%d min" % minutes
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return "%d h %d min" % (hours, minutes) if minutes else "%d h" % hours
    days, hours = divmod(hours, 24)
    return "%d d %d h" % (days, hours) if hours else "%d d" % days


def ago(stamp, now):
    seconds = age(stamp, now)
    return "never" if seconds is None else "%s ago" % duration(seconds)


# ---------------------------------------------------------------------------------------------
# Prometheus


class StoreCollector:
    """Queue depths, latest events and each modem's sends against its caps (POOL_GAUGES), read
    from the store at scrape time.

    Register it on a registry of its own per app (the module REGISTRY in gsmbridge.metrics holds
    the process's counters); /metrics renders both. A store that cannot be read gives
    gsmbridge_store_ok 0 and nothing else, never a failed scrape.
    """

    def __init__(self, store, config):
        self.store = store
        self.config = config

    def describe(self):
        return []   # collected only at scrape time: nothing to check when registering

    def collect(self):
        now = time.time()
        ok = GaugeMetricFamily("gsmbridge_store_ok", "1 when the store could be read")
        try:
            counts = self.store.counts()
            activity = self.store.activity(now, buckets=0)
            modems = self.store.modems()
            receivers = self.store.receivers()
        except Exception:
            ok.add_metric([], 0)
            yield ok
            return
        ok.add_metric([], 1)
        yield ok
        for direction in ("inbound", "outbound", "callbacks"):
            if direction not in counts:
                continue
            family = GaugeMetricFamily(
                "gsmbridge_%s_messages" % direction if direction != "callbacks"
                else "gsmbridge_dlr_callbacks",
                "%s in the store by status" % ("delivery-report callbacks" if direction ==
                                               "callbacks" else direction + " messages"),
                labels=["status"])
            for status, count in sorted(counts[direction].items()):
                family.add_metric([status], count)
            yield family
        yield GaugeMetricFamily("gsmbridge_parts_waiting",
                                "parts of concatenated SMS awaiting their siblings",
                                value=counts["parts"])
        yield GaugeMetricFamily("gsmbridge_bad_pdus_stored", "undecodable PDUs kept aside",
                                value=counts["bad_pdus"])
        for key, name, help in (
                ("oldest_pending_inbound", "oldest_pending_inbound",
                 "when the oldest inbound message still to forward was received"),
                ("oldest_queued_outbound", "oldest_queued_outbound",
                 "when the oldest outbound message still queued was accepted")):
            if counts.get(key) is not None:
                yield GaugeMetricFamily("gsmbridge_%s_timestamp_seconds" % name, help,
                                        value=counts[key])
        for key, help in (("last_received", "when the newest SMS was received"),
                          ("last_forwarded", "when an inbound SMS was last delivered to RapidSMS"),
                          ("last_sent", "when the modem last took an SMS to send")):
            if activity.get(key) is not None:
                yield GaugeMetricFamily("gsmbridge_%s_timestamp_seconds" % key, help,
                                        value=activity[key])
        updated = GaugeMetricFamily("gsmbridge_modem_updated_timestamp_seconds",
                                    "when the modem's worker last reported its state",
                                    labels=["modem"])
        for name, state in sorted(modems.items()):
            if isinstance(state.get("updated_at"), (int, float)):
                updated.add_metric([name], state["updated_at"])
        yield updated
        taking = GaugeMetricFamily("gsmbridge_receiver_up",
                                   "1 while the receiver (RapidSMS) takes messages, 0 while it "
                                   "is not there, fails or does not answer", labels=["receiver"])
        for name, state in sorted(receivers.items()):
            taking.add_metric([name], 1 if state.get("state") == "up" else 0)
        yield taking
        yield from pool_metrics(modems)
        yield from service_metrics(modems)
        data = {"modems": modems_with_config(modems, self.config), "counts": counts,
                "receivers": receivers, "activity": activity}
        healthy = not problems(data, self.config, now=now,
                               disk=disk_problem(self.config.store.path))
        yield GaugeMetricFamily("gsmbridge_healthy", "1 when GET /health answers 200",
                                value=1 if healthy else 0)


#: per-modem gauges of a pool, from store.modems(): (metric, key, help)
POOL_GAUGES = (
    ("gsmbridge_modem_sent_last_hour", "sent_last_hour",
     "SMS parts the modem sent in the last hour (what its hourly_cap counts)"),
    ("gsmbridge_modem_sent_last_day", "sent_last_day",
     "SMS parts the modem sent in the last 24 hours (what its daily_cap counts)"),
    ("gsmbridge_modem_hourly_cap", "hourly_cap",
     "the modem's hourly_cap in SMS parts; absent when it has none"),
    ("gsmbridge_modem_daily_cap", "daily_cap",
     "the modem's daily_cap in SMS parts; absent when it has none"),
    ("gsmbridge_modem_capped", "capped",
     "1 while the modem is at its hourly or daily cap"),
    ("gsmbridge_modem_available", "available",
     "1 when the modem can take outbound now (up, reporting, under its caps)"),
)


def pool_metrics(modems):
    """The pool's gauges, one sample per modem that has the key (store.modems() gives them for
    every modem of the pool). A cap of 0 means none and is left out, so that an alert on
    sent_last_day / daily_cap never divides by zero."""
    for metric, key, help in POOL_GAUGES:
        family = GaugeMetricFamily(metric, help, labels=["modem"])
        for name, state in sorted(modems.items()):
            value = state.get(key)
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, (int, float)) or (key.endswith("_cap") and not value):
                continue
            family.add_metric([name], value)
        yield family


#: per-modem gauges of the SIM's services, from the modem's state: (metric, key, help)
SERVICE_GAUGES = (
    ("gsmbridge_modem_balance", "balance",
     "the SIM's airtime balance as its last check read it ([modem] balance_code)"),
    ("gsmbridge_modem_balance_checked_timestamp_seconds", "balance_checked_at",
     "when the balance was last read"),
    ("gsmbridge_modem_calls", "calls", "incoming voice calls the modem has had (hung up)"),
)


def service_metrics(modems):
    """The SIM services' gauges, one sample per modem that has the value."""
    for metric, key, help in SERVICE_GAUGES:
        family = GaugeMetricFamily(metric, help, labels=["modem"])
        for name, state in sorted(modems.items()):
            value = state.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                family.add_metric([name], value)
        yield family

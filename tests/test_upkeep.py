"""The store's upkeep: tallies that always equal a full count (so /health costs the same on any
store), pruning that takes only old finished rows and never a waiting or failed one, in small
batches, `gsmbridge maintenance`, and the running bridge's own hourly pass."""

import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgeproc import BridgeProcess, wait_for
from clock import Clock
from gsmbridge import config as configmod
from gsmbridge.housekeeping import Housekeeper
from gsmbridge.store import Store
from gsmbridge.store.schema import _MIGRATIONS, _split_sql

FAR = 1e12
DAY = 86400.0


def full_count(path):
    """What counts() must say, counted row by row through a connection of the test's own."""
    db = sqlite3.connect(path)
    try:
        counts = {}
        for table in ("inbound", "outbound", "callbacks"):
            counts[table] = {status: n for status, n in db.execute(
                "SELECT status, COUNT(*) FROM %s GROUP BY status" % table)}
        for table in ("parts", "bad_pdus", "reports"):
            counts[table] = db.execute("SELECT COUNT(*) FROM %s" % table).fetchone()[0]
        return counts
    finally:
        db.close()


def tallied(store):
    """counts() in full_count's shape (statuses with no row left out)."""
    counts = store.counts()
    return {key: ({s: n for s, n in value.items() if n} if isinstance(value, dict) else value)
            for key, value in counts.items() if not key.startswith("oldest_")}


# -- the tallies -------------------------------------------------------------------------------


class Scenario:
    """Every transition the store makes, one operation at a time, each on a row picked by a
    number: what the property test draws from, and what the trigger test walks through."""

    def __init__(self, store, clock):
        self.store, self.clock, self.n = store, clock, 0

    def _pick(self, rows, arg):
        return rows[arg % len(rows)] if rows else None

    def _ids(self, sql, *params):
        return [r[0] for r in self.store._conn().execute(sql, params)]

    def run(self, op, arg):
        s, self.n = self.store, self.n + 1
        if op == "receive":
            s.add_inbound(modem="m1", sender="+25570000000%d" % (arg % 3), text="t%d" % self.n,
                          sent_at=None, pdus=["AA"], keys=["k%d" % self.n])
        elif op == "part":
            s.add_part(modem="m1", key="p%d" % self.n, sender="+2557000001%d" % (arg % 2),
                       reference=arg % 2, total=2, sequence=1 + self.n % 2, bits=8, pdu="P")
        elif op == "join":
            parts = s.pending_parts("m1")
            if parts:
                sender = parts[arg % len(parts)]["sender"]
                keys = [p["key"] for p in parts if p["sender"] == sender]
                s.complete_parts(modem="m1", keys=keys, sender=sender, text="joined",
                                 sent_at=None, parts=len(keys), incomplete=False, pdus=["P"])
        elif op == "bad":
            s.add_bad_pdu(modem="m1", pdu="BAD%d" % (arg % 3), error="nonsense")
        elif op in ("deliver", "refuse", "retry"):
            row = self._pick(s.due_inbound(FAR), arg)
            if row is None:
                return
            if op == "deliver":
                s.inbound_delivered(row["id"], response="ok")
            elif op == "refuse":
                s.inbound_failed(row["id"], error="HTTP 400")
            else:
                s.inbound_retry(row["id"], error="HTTP 500", next_attempt=self.clock.now + 1)
        elif op == "queue":
            s.add_outbound(["+25571000000%d" % (arg % 3)], "x", encoding="gsm7", parts=1,
                           dlr_url="http://127.0.0.1:1/?t=%d", dlr_mask=31 if arg % 2 else 0)
        elif op == "claim":
            row = s.next_outbound("m1", FAR)
            if row is not None:
                s.outbound_sending(row["id"], modem="m1")
        elif op in ("sent", "out_retry", "out_fail"):
            seq = self._pick(self._ids("SELECT id FROM outbound WHERE status = 'sending'"), arg)
            if seq is None:
                return
            if op == "sent":
                s.outbound_sent(seq, references=[self.n % 256])
            elif op == "out_retry":
                s.outbound_retry(seq, error="+CMS ERROR: 500", next_attempt=self.clock.now)
            else:
                s.outbound_failed(seq, error="+CMS ERROR: 21")
        elif op == "crash":
            s.recover_sending(resend=bool(arg % 2))
        elif op == "report":
            row = self._pick(s._conn().execute(
                "SELECT o.recipient, r.reference FROM outbound_refs r JOIN outbound o"
                " ON o.seq = r.outbound_seq").fetchall(), arg)
            if row is not None:
                s.add_report(modem="m1", reference=row[1], recipient=row[0],
                             status=(0, 0x20, 0x46)[arg % 3], pdu="R%d" % self.n)
        elif op in ("made", "cb_refused", "cb_retry"):
            row = self._pick(s.due_callbacks(FAR), arg)
            if row is None:
                return
            if op == "made":
                s.callback_delivered(row["id"], response="ok")
            elif op == "cb_refused":
                s.callback_failed(row["id"], error="HTTP 400")
            else:
                s.callback_retry(row["id"], error="HTTP 500", next_attempt=self.clock.now)
        elif op == "requeue":
            direction, status = (("in", "failed"), ("out", "failed"), ("out", "unknown"),
                                 ("callbacks", "failed"))[arg % 4]
            s.requeue(direction, status=status, batch=2)
        elif op == "tick":
            self.clock.now += (arg % 5) * 10 * DAY
        elif op == "prune":
            s.prune(keep_days=(1, 30)[arg % 2], batch=2)
        elif op == "hand_delete":      # what an operator may do in the sqlite3 shell
            table = ("bad_pdus", "parts", "inbound")[arg % 3]
            with s._write() as db:
                # (an inbound row the operator deletes is a finished one: deleting a pending
                # sender's head by hand would break the head order, which check() reports)
                db.execute("DELETE FROM %s WHERE rowid IN (SELECT rowid FROM %s%s LIMIT 1)"
                           % (table, table, " WHERE status != 'pending'" if table == "inbound"
                              else "") if table != "parts" else
                           "DELETE FROM parts WHERE key IN (SELECT key FROM parts LIMIT 1)")
        else:
            raise ValueError(op)


OPS = ("receive", "part", "join", "bad", "deliver", "refuse", "retry", "queue", "claim", "sent",
       "out_retry", "out_fail", "crash", "report", "made", "cb_refused", "cb_retry", "requeue",
       "tick", "prune", "hand_delete")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 50)), max_size=40))
def test_the_tallies_equal_a_full_count_after_any_mix_of_operations(ops):
    clock = Clock(1_700_000_000.0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "s.db")
        store = Store(path, clock=clock)
        scenario = Scenario(store, clock)
        try:
            for op, arg in ops:
                scenario.run(op, arg)
                assert tallied(store) == full_count(path), (op, arg)
            assert store.tally_drift() == [] and store.check() == []
        finally:
            store.close()


#: a fixed walk through every transition: each trigger has work to do in it
EVERY_TRANSITION = [
    ("receive", 0), ("receive", 1), ("receive", 2), ("part", 0), ("part", 0), ("join", 0),
    ("bad", 0), ("bad", 0), ("bad", 1), ("deliver", 0), ("refuse", 0), ("requeue", 0),
    ("queue", 1), ("queue", 1), ("queue", 0), ("claim", 0), ("sent", 0), ("claim", 0),
    ("out_fail", 0), ("claim", 0), ("crash", 0), ("report", 0), ("made", 0), ("made", 0),
    ("cb_refused", 0), ("requeue", 3), ("requeue", 1), ("requeue", 2), ("tick", 4),
    ("prune", 0), ("hand_delete", 0), ("hand_delete", 1), ("hand_delete", 2),
]


def test_every_trigger_is_needed_and_the_check_sees_one_missing(tmp_path):
    """Without any one of the triggers, the walk above leaves the tallies wrong, and check()
    says so: the property test above can fail whichever transition forgets its count."""
    names = [r[0] for r in Store(str(tmp_path / "names.db"))._conn().execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%tally%'"
        " ORDER BY name")]
    assert len(names) == 15                    # the tallies' own (the cluster has others)
    for name in [None] + names:
        clock = Clock(1_700_000_000.0)
        path = str(tmp_path / ("%s.db" % name))
        store = Store(path, clock=clock)
        if name:
            store._conn().execute("DROP TRIGGER %s" % name)
        scenario = Scenario(store, clock)
        wrong = []
        for op, arg in EVERY_TRANSITION:
            scenario.run(op, arg)
            if tallied(store) != full_count(path):
                wrong.append(op)
        if name is None:
            assert wrong == [] and store.check() == []
        else:
            assert wrong, "%s had nothing to do" % name
            # and it stays wrong: the tallies are the sum of what the triggers did
            assert any(p.startswith("tallies: ") for p in store.check()), name
            store.recount()
            assert tallied(store) == full_count(path) and store.tally_drift() == []
        store.close()


def test_a_store_of_the_version_before_is_counted_when_it_is_opened(tmp_path):
    path = str(tmp_path / "v3.db")
    db = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2, 3):
        for statement in _split_sql(_MIGRATIONS[version]):
            db.execute(statement)
    db.execute("PRAGMA user_version = 3")
    db.executemany("INSERT INTO inbound (id, modem, sender, text, received_at, pdus, status,"
                   " head, next_attempt) VALUES (?, 'm', ?, 't', 0, '[]', ?, ?, 0)",
                   [("i%d" % i, "+%d" % i, ("pending", "delivered", "failed")[i % 3],
                     int(i % 3 == 0)) for i in range(10)])
    db.executemany("INSERT INTO outbound (id, recipient, text, parts, status, next_attempt,"
                   " created_at) VALUES (?, '+1', 't', 1, ?, 0, 0)",
                   [("o%d" % i, ("queued", "sent")[i % 2]) for i in range(5)])
    db.execute("INSERT INTO bad_pdus (modem, pdu, error, received_at, last_seen_at)"
               " VALUES ('m', 'XX', 'e', 0, 0)")
    db.close()
    store = Store(path)
    assert store.counts()["inbound"] == {"pending": 4, "delivered": 3, "failed": 3}
    assert store.counts()["outbound"]["queued"] == 3 and store.counts()["bad_pdus"] == 1
    assert tallied(store) == full_count(path) and store.check() == []
    store.close()


def test_counts_reads_only_the_tallies_and_two_index_seeks(store):
    """The cost of /health's counts does not grow with the store: no statement scans a table."""
    for i in range(50):
        store.add_inbound(modem="m", sender="+%d" % i, text="t", sent_at=None, pdus=[],
                          keys=["k%d" % i])
    db = store._conn()
    statements = []
    db.set_trace_callback(statements.append)
    store.counts()
    db.set_trace_callback(None)
    queries = [s for s in statements if s.startswith("SELECT")]
    assert len(queries) == 3
    for query in queries:
        plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + query))
        assert "SCAN inbound" not in plan and "SCAN outbound" not in plan, (query, plan)
        assert "COUNT" not in query.upper()


# -- pruning -----------------------------------------------------------------------------------


def old_and_new(store, clock):
    """Rows of every kind, most of them 100 days old; returns {name: id}."""
    ids = {}
    n = iter(range(10**6))

    def receive(name):
        ids[name] = store.add_inbound(modem="m1", sender="+2557%08d" % next(n), text=name,
                                      sent_at=None, pdus=[], keys=[name])
        return ids[name]

    def queue(name, modem="m1", dlr=False):
        ids[name] = store.add_outbound(["+2557%08d" % next(n)], name, encoding="gsm7", parts=1,
                                       modem=modem, dlr_url="http://127.0.0.1:1/?t=%d"
                                       if dlr else None, dlr_mask=31 if dlr else 0)[0]
        return ids[name]

    start = clock.now
    store.inbound_delivered(receive("in delivered"), response="ok")
    store.inbound_failed(receive("in failed"), error="HTTP 400")
    receive("in pending")
    for name in ("out sent", "out delivered", "out failed", "out unknown"):
        store.outbound_sending(queue(name, dlr=True), modem="m1")
    queue("out queued")
    store.outbound_sent(ids["out sent"], references=[1])
    store.outbound_sent(ids["out delivered"], references=[2])
    store.outbound_failed(ids["out failed"], error="+CMS ERROR: 21")
    store.recover_sending(resend=False)                 # "out unknown"
    store.add_report(modem="m1", reference=2,
                     recipient=store.get_outbound(ids["out delivered"])["recipient"], status=0,
                     pdu="R1")
    for cb in store.callbacks():
        if cb["type"] == 8:
            store.callback_delivered(cb["id"], response="ok")
        elif cb["type"] == 16:
            store.callback_failed(cb["id"], error="HTTP 400")
    # type 1 of "out delivered" stays pending
    clock.now = start + 100 * DAY
    store.inbound_delivered(receive("in delivered lately"), response="ok")
    receive("in received 100 days ago, still waiting")
    clock.now = start + 101 * DAY
    return ids


def test_prune_takes_old_finished_rows_and_nothing_waiting_or_failed(store, clock):
    ids = old_and_new(store, clock)
    clock.now -= 0.5 * DAY
    store.inbound_delivered(ids["in pending"], response="late")   # received 100 days ago
    clock.now += 0.5 * DAY
    removed = store.prune(keep_days=30)
    assert removed == {"seen": 3, "inbound": 1, "outbound": 2, "callbacks": 2, "reports": 1}
    gone = {name for name, i in ids.items()
            if (store.get_inbound(i) if name.startswith("in") else store.get_outbound(i)) is None}
    assert gone == {"in delivered", "out sent", "out delivered"}
    assert store.get_inbound(ids["in pending"])["status"] == "delivered"     # delivered lately
    assert store.get_outbound(ids["out queued"])["status"] == "queued"
    assert {c["status"] for c in store.callbacks()} == {"failed", "pending"}
    assert store.reports() == []
    assert store.check() == [] and store.tally_drift() == []
    assert store.prune(keep_days=30) == dict.fromkeys(removed, 0)            # idempotent


def test_prune_without_keep_days_keeps_every_message(store, clock):
    old_and_new(store, clock)
    before = store.counts()
    clock.now += 60 * DAY
    removed = store.prune(keep_days=0)
    assert removed["seen"] > 0 and removed["inbound"] == removed["outbound"] == 0
    assert store.counts() == before


def test_status_reports_stay_while_one_may_still_come(store, clock):
    msg_id = store.add_outbound(["+255700000001"], "x", encoding="gsm7", parts=1)[0]
    store.outbound_sending(msg_id, modem="m1")
    store.outbound_sent(msg_id, references=[7])
    store.add_report(modem="m1", reference=7, recipient="+255700000001", status=0x20, pdu="R")
    clock.now += 2 * DAY
    assert store.prune(keep_days=1)["reports"] == 0      # within REPORT_WINDOW (3 days)
    clock.now += 2 * DAY
    assert store.prune(keep_days=1)["reports"] == 1


def test_prune_goes_in_small_transactions_and_stops_when_asked(store, clock):
    for i in range(23):
        msg_id = store.add_inbound(modem="m1", sender="+%d" % i, text="t", sent_at=None, pdus=[],
                                   keys=["k%d" % i])
        store.inbound_delivered(msg_id, response="ok")
    clock.now += 40 * DAY
    begun = []
    store._conn().set_trace_callback(
        lambda sql: begun.append(sql) if sql.startswith("BEGIN IMMEDIATE") else None)
    assert store.prune(keep_days=30, seen_days=365, batch=5)["inbound"] == 23
    store._conn().set_trace_callback(None)
    assert len(begun) == 1 + 5 + 1 + 1 + 1 + 1   # seen, 5 of inbound, then one per other walk
    stop = threading.Event()
    stop.set()
    for i in range(3):
        msg_id = store.add_inbound(modem="m1", sender="+9%d" % i, text="t", sent_at=None,
                                   pdus=[], keys=["s%d" % i])
        store.inbound_delivered(msg_id, response="ok")
    clock.now += 40 * DAY
    assert store.prune(keep_days=30, stop=stop)["inbound"] == 0


def test_a_new_store_gives_pruned_space_back_to_the_disk(store, clock):
    for i in range(400):
        msg_id = store.add_outbound(["+255700000001"], "x" * 1500, encoding="gsm7", parts=10)[0]
        store.outbound_sending(msg_id, modem="m1")
        store.outbound_sent(msg_id, references=[i % 256])
    store.compact(checkpoint="TRUNCATE")
    size = os.path.getsize(store.path)
    clock.now += 40 * DAY
    assert store.prune(keep_days=30)["outbound"] == 400
    tidied = store.compact(pages=None, checkpoint="TRUNCATE")
    assert tidied["auto_vacuum"] == "incremental" and tidied["pages_freed"] > 100
    assert tidied["free_pages"] == 0 and tidied["wal_bytes"] == 0
    assert os.path.getsize(store.path) < size / 2


def test_an_older_store_is_vacuumed_into_one_that_can(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE filler (x)")     # made before auto_vacuum was chosen: none
    db.commit()
    db.close()
    store = Store(path)
    store._conn().execute("DROP TABLE filler")
    assert store.compact()["auto_vacuum"] == "none"
    store.vacuum()
    assert store.compact()["auto_vacuum"] == "incremental" and store.check() == []
    store.close()


def test_housekeeper_prunes_and_tidies_in_one_pass(store, clock):
    ids = old_and_new(store, clock)
    keeper = Housekeeper(store, keep_days=30, interval=3600)
    result = keeper.step()
    assert result["inbound"] == 1 and result["outbound"] == 2
    assert store.get_inbound(ids["in failed"])["status"] == "failed"


# -- the command and the daemon ----------------------------------------------------------------


def gsmbridge(ini, *args):
    return subprocess.run([sys.executable, "-m", "gsmbridge", *args, "-c", str(ini)],
                          capture_output=True, text=True, timeout=60)


def test_maintenance_command_prunes_only_old_finished_rows(tmp_path):
    ini = tmp_path / "gsmbridge.ini"
    ini.write_text("[modem]\nport = sim://\n[rapidsms]\nurl = http://127.0.0.1:9/backend/\n"
                   "[store]\npath = store.sqlite3\nkeep_days = 30\n")
    then = Clock(time.time() - 101 * DAY)
    store = Store(str(tmp_path / "store.sqlite3"), clock=then)
    ids = old_and_new(store, then)
    store.close()

    p = gsmbridge(ini, "maintenance", "--keep-days", "0")
    assert p.returncode == 0, p.stderr
    assert "messages are kept for ever" in p.stdout
    p = gsmbridge(ini, "maintenance", "--check")
    assert p.returncode == 0, p.stdout + p.stderr
    assert ("1 inbound delivered, 2 outbound sent or delivered, 2 callbacks made, 1 status "
            "reports" in p.stdout)
    assert "kept: 2 inbound waiting, 1 failed; 1 outbound queued or sending, 1 failed, 1 unknown"\
        in p.stdout
    assert "check: OK" in p.stdout and "free space:" in p.stdout
    store = Store(str(tmp_path / "store.sqlite3"))
    assert store.get_inbound(ids["in delivered"]) is None
    assert store.get_outbound(ids["out queued"])["status"] == "queued"
    assert store.get_inbound(ids["in pending"])["status"] == "pending"
    store.close()
    p = gsmbridge(ini, "maintenance", "--keep-days", "0.5")
    assert p.returncode == 2 and "--keep-days" in p.stderr


def test_keep_days_below_a_day_is_refused_naming_the_key(tmp_path):
    with pytest.raises(configmod.ConfigError, match="keep_days"):
        configmod.for_tests(str(tmp_path), store={"keep_days": "0.5"})
    assert configmod.for_tests(str(tmp_path), store={"keep_days": "0"}).store.keep_days == 0
    with pytest.raises(configmod.ConfigError, match="upkeep_interval"):
        configmod.for_tests(str(tmp_path), store={"upkeep_interval": "5"})


def test_the_running_bridge_prunes_by_itself_and_maintenance_runs_beside_it(tmp_path, sink):
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    path = str(tmp_path / "store.sqlite3")
    then = Clock(time.time() - 100 * DAY)
    store = Store(path, clock=then)
    done = store.add_inbound(modem="modem", sender="+255700000041", text="old", sent_at=None,
                             pdus=[], keys=["a"])
    store.inbound_delivered(done, response="ok")
    refused = store.add_inbound(modem="modem", sender="+255700000042", text="refused",
                                sent_at=None, pdus=[], keys=["b"])
    store.inbound_failed(refused, error="HTTP 400")
    waiting = store.add_outbound(["+255700000043"], "for a modem not here", encoding="gsm7",
                                 parts=1, modem="elsewhere")[0]
    store.close()
    bridge.start()
    try:
        reader = Store(path)
        wait_for(lambda: reader.get_inbound(done) is None, timeout=30,
                 message="the old delivered message pruned by the running bridge")
        assert reader.get_inbound(refused)["status"] == "failed"
        assert reader.get_outbound(waiting)["status"] == "queued"
        reader.close()
        def logged():
            with open(bridge.log_path, errors="replace") as log:
                return "upkeep: removed 2 seen, 1 inbound, 0 outbound" in log.read()

        wait_for(logged, timeout=10, message="the upkeep pass logged")
        p = gsmbridge(bridge.ini, "maintenance", "--check")
        assert p.returncode == 0 and "check: OK" in p.stdout, p.stdout + p.stderr
        bridge.inject("+255700000044", "after maintenance")
        wait_for(lambda: [r for r in sink.requests if r.args.get("text") == "after maintenance"],
                 message="the bridge still forwards")
    finally:
        bridge.stop()

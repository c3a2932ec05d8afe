"""The durable store: SQLite queues for inbound and outbound SMS and their states.

The store is the only hand-off between the modem worker, the forwarder and the web side, so every
write is one short transaction that is committed (WAL, ``synchronous=FULL``) before the method
returns: once the caller has an id back, the message survives a crash, a SIGKILL or a power cut.

Times. Every time the bridge takes itself (``received_at``, ``next_attempt``, ``created_at``,
``sent_at`` of an outbound message, ...) is a float: seconds since the epoch, UTC, as from
``time.time()``. The one exception is an inbound message's ``sent_at``: that is the SMSC's
timestamp (SCTS), kept as the ISO 8601 string the worker gives, with the SMSC's UTC offset, because
the offset is part of what the network said.

Rows come back as plain dicts, ready for ``json.dumps``.

Inbound delivery is in arrival order per sender. Each sender's oldest pending message is marked as
its *head* (a column kept in the same transactions that change the statuses), so finding what is
due is one index range scan however many messages wait behind it.

Delivery reports. A message sent with a dlr_url gets delivery-report callbacks (Kannel's types: 8
taken by the SMSC, 16 refused by it, 1 delivered to the phone, 2 not delivered, 4 still queued at
the SMSC). Each is queued in the `callbacks` table by the very transaction that records its cause
(outbound_sent, outbound_failed, add_report), so a crash can lose neither the event nor its
callback; gsmbridge/dlr.py delivers them.

Threads. One ``Store`` object is shared; each thread gets its own connection (``threading.local``).
``wait()``/``notify()`` only wake sleepers up; the data always goes through SQLite.
"""

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime

log = logging.getLogger("gsmbridge.store")

#: the schema version this code writes (PRAGMA user_version)
SCHEMA_VERSION = 3

INBOUND_STATUSES = ("pending", "delivered", "failed")
OUTBOUND_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "unknown")
CALLBACK_STATUSES = ("pending", "delivered", "failed")

#: Kannel's delivery-report types (dlr-mask bits)
DLR_DELIVERED = 1          # delivered to the phone
DLR_UNDELIVERED = 2        # not delivered to the phone (given up)
DLR_QUEUED = 4             # queued on the SMSC (a report with a temporary status)
DLR_SMSC_ACK = 8           # delivered to the SMSC (+CMGS for every part)
DLR_SMSC_REJECT = 16       # not delivered to the SMSC (a permanent error)

#: a status report answers the newest message sent with its TP-MR to its number within this long;
#: TP-MR wraps at 256, so an older one is more likely another message's reference
REPORT_WINDOW = 3 * 86400.0

_SCHEMA_V1 = """
CREATE TABLE inbound (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order
    id           TEXT NOT NULL UNIQUE,
    modem        TEXT NOT NULL,
    sender       TEXT NOT NULL,
    text         TEXT NOT NULL,
    sent_at      TEXT,                                -- SCTS, ISO 8601 with the SMSC's offset
    received_at  REAL NOT NULL,
    parts        INTEGER NOT NULL DEFAULT 1,
    incomplete   INTEGER NOT NULL DEFAULT 0,
    pdus         TEXT NOT NULL,                       -- JSON list of hex PDUs
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'delivered', 'failed')),
    head         INTEGER NOT NULL DEFAULT 0,          -- 1: the oldest pending message of its sender
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_attempt REAL,
    last_error   TEXT,
    response     TEXT,
    delivered_at REAL,
    failed_at    REAL
);
CREATE INDEX inbound_sender_pending ON inbound (sender, seq) WHERE status = 'pending';
CREATE INDEX inbound_due ON inbound (next_attempt, seq) WHERE head = 1;
CREATE INDEX inbound_status ON inbound (status, seq);

CREATE TABLE seen (
    key     TEXT NOT NULL,                            -- SHA-1 of the TPDU
    modem   TEXT NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (key, modem)
) WITHOUT ROWID;
CREATE INDEX seen_at ON seen (seen_at);

CREATE TABLE parts (                                  -- concatenated parts awaiting their siblings
    modem       TEXT NOT NULL,
    key         TEXT NOT NULL,
    sender      TEXT NOT NULL,
    reference   INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    bits        INTEGER NOT NULL,
    pdu         TEXT NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (modem, key)
) WITHOUT ROWID;

CREATE TABLE bad_pdus (                               -- undecodable PDUs, kept with the reason
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    modem        TEXT NOT NULL,
    pdu          TEXT NOT NULL,
    error        TEXT NOT NULL,
    received_at  REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    times        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (modem, pdu)
);

CREATE TABLE outbound (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,   -- queue order
    id           TEXT NOT NULL UNIQUE,
    recipient    TEXT NOT NULL,
    text         TEXT NOT NULL,
    encoding     TEXT,
    parts        INTEGER NOT NULL,
    modem        TEXT,                                -- NULL: any modem may send it
    sender       TEXT,
    dlr_url      TEXT,
    dlr_mask     INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                 ('queued', 'sending', 'sent', 'delivered', 'failed', 'unknown')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error   TEXT,
    refs         TEXT,                                -- JSON list of TP-MR, one per part
    sent_by      TEXT,                                -- the modem that took it
    created_at   REAL NOT NULL,
    sending_at   REAL,
    sent_at      REAL,
    delivered_at REAL,
    failed_at    REAL
);
CREATE INDEX outbound_queue ON outbound (modem, seq) WHERE status = 'queued';
CREATE INDEX outbound_status ON outbound (status, seq);

CREATE TABLE outbound_refs (                          -- one row per sent part, for status reports
    outbound_seq INTEGER NOT NULL REFERENCES outbound (seq) ON DELETE CASCADE,
    part         INTEGER NOT NULL,
    modem        TEXT,
    reference    INTEGER NOT NULL,
    status       INTEGER,                             -- TP-ST of the latest report, NULL before one
    reported_at  REAL,
    PRIMARY KEY (outbound_seq, part)
) WITHOUT ROWID;
CREATE INDEX outbound_refs_reference ON outbound_refs (reference, outbound_seq);

CREATE TABLE reports (                                -- SMS-STATUS-REPORTs as received
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    modem       TEXT NOT NULL,
    reference   INTEGER NOT NULL,
    recipient   TEXT NOT NULL,
    status      INTEGER NOT NULL,
    pdu         TEXT NOT NULL,
    received_at REAL NOT NULL,
    outbound_id TEXT,                                 -- the message it was matched to, if any
    UNIQUE (modem, pdu)
);

CREATE TABLE modems (
    name       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,                         -- JSON object, merged by set_modem
    updated_at REAL NOT NULL
);
"""

_SCHEMA_V2 = """
CREATE TABLE callbacks (                              -- delivery-report callbacks to make
    id           INTEGER PRIMARY KEY AUTOINCREMENT,   -- order of the events
    outbound_id  TEXT NOT NULL,
    type         INTEGER NOT NULL,                    -- Kannel DLR type: 1, 2, 4, 8 or 16
    dlr_url      TEXT NOT NULL,                       -- the template, escapes not yet filled in
    text         TEXT NOT NULL,                       -- %A: "ACK", the error, "id:.. stat:.."
    smsc         TEXT,                                -- %i: the modem
    recipient    TEXT NOT NULL,                       -- %p
    sender       TEXT,                                -- %P
    event_at     REAL NOT NULL,                       -- %t
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_attempt REAL,
    last_error   TEXT,
    response     TEXT,
    created_at   REAL NOT NULL,
    delivered_at REAL,
    failed_at    REAL
);
CREATE INDEX callbacks_due ON callbacks (next_attempt, id) WHERE status = 'pending';
CREATE INDEX callbacks_outbound ON callbacks (outbound_id, id);
CREATE INDEX callbacks_status ON callbacks (status, id);
"""

_SCHEMA_V3 = """
ALTER TABLE outbound ADD COLUMN route TEXT NOT NULL DEFAULT '';  -- pool modems whose routes match
CREATE INDEX outbound_route ON outbound (route, seq) WHERE status = 'queued' AND modem IS NULL;
CREATE INDEX outbound_sent_by ON outbound (sent_by, sent_at, parts) WHERE sent_at IS NOT NULL;
CREATE INDEX inbound_due_modem ON inbound (modem, next_attempt, seq) WHERE head = 1;
CREATE TABLE pool (                                   -- the modems' routes and caps (set_pool)
    name       TEXT PRIMARY KEY,
    routes     TEXT NOT NULL,                         -- JSON list of prefixes as configured
    daily_cap  INTEGER NOT NULL DEFAULT 0,
    hourly_cap INTEGER NOT NULL DEFAULT 0
);
"""

#: schema version -> script taking the database from the version before to it
_MIGRATIONS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3}

# The queries that must stay fast with a million rows queued; tests check their plans.
DUE_INBOUND_SQL = (
    "SELECT * FROM inbound WHERE head = 1 AND next_attempt <= ? "
    "ORDER BY next_attempt, seq LIMIT ?")
NEXT_INBOUND_DUE_SQL = "SELECT MIN(next_attempt) FROM inbound WHERE head = 1"
NEXT_OUTBOUND_PINNED_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_queue"
    " WHERE status = 'queued' AND modem = ? AND next_attempt <= ? "
    "ORDER BY seq LIMIT 1")
NEXT_OUTBOUND_ANY_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_queue"
    " WHERE status = 'queued' AND modem IS NULL AND next_attempt <= ? "
    "ORDER BY seq LIMIT 1")
# The pool: an unpinned message's route is the set of modems whose prefixes match its recipient
# ('' for none), so "the oldest one this modem may take" is one index seek per route value.
NEXT_OUTBOUND_ROUTE_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_route"
    " WHERE status = 'queued' AND modem IS NULL AND route = ? AND next_attempt <= ? "
    "ORDER BY seq LIMIT 1")
# SMS (parts) a modem sent since a time: its caps. At most a cap's worth of index entries.
SENT_SINCE_SQL = (
    "SELECT COALESCE(SUM(parts), 0) FROM outbound INDEXED BY outbound_sent_by"
    " WHERE sent_by = ? AND sent_at >= ?")
DUE_INBOUND_OF_MODEM_SQL = (
    "SELECT * FROM inbound INDEXED BY inbound_due_modem"
    " WHERE head = 1 AND modem = ? AND next_attempt <= ? ORDER BY next_attempt, seq LIMIT ?")
NEXT_INBOUND_DUE_OF_MODEM_SQL = (
    "SELECT MIN(next_attempt) FROM inbound INDEXED BY inbound_due_modem"
    " WHERE head = 1 AND modem = ?")
# Several indexes cover `status = ...`; without statistics the planner may pick the wrong one, so
# the per-sender and per-modem queue lookups name theirs.
OLDEST_PENDING_OF_SENDER_SQL = (
    "SELECT seq FROM inbound INDEXED BY inbound_sender_pending"
    " WHERE sender = ? AND status = 'pending' ORDER BY seq LIMIT 1")
DEMOTE_HEADS_SQL = (
    "UPDATE inbound INDEXED BY inbound_sender_pending SET head = 0"
    " WHERE sender = ? AND status = 'pending' AND head = 1 AND seq != ?")
COUNT_INBOUND_SQL = "SELECT status, COUNT(*) FROM inbound GROUP BY status"
COUNT_OUTBOUND_SQL = "SELECT status, COUNT(*) FROM outbound GROUP BY status"
# A message's callbacks go in the order of their events: only its oldest pending one is offered.
DUE_CALLBACKS_SQL = (
    "SELECT * FROM callbacks AS c INDEXED BY callbacks_due"
    " WHERE c.status = 'pending' AND c.next_attempt <= ? AND NOT EXISTS ("
    "SELECT 1 FROM callbacks AS p INDEXED BY callbacks_outbound"
    " WHERE p.outbound_id = c.outbound_id AND p.id < c.id AND p.status = 'pending')"
    " ORDER BY c.next_attempt, c.id LIMIT ?")
NEXT_CALLBACK_DUE_SQL = (
    "SELECT MIN(next_attempt) FROM callbacks INDEXED BY callbacks_due WHERE status = 'pending'")
COUNT_CALLBACKS_SQL = "SELECT status, COUNT(*) FROM callbacks GROUP BY status"

#: a modem whose worker has not reported its state for this long is not counted on for routing
MODEM_STALE = 300.0
#: the caps' windows, seconds
HOUR, DAY = 3600.0, 86400.0
#: how long a modem's sent counts are reused before they are counted again (sends by this Store
#: object recount at once; this only bounds how late a window's oldest send is let go)
USAGE_TTL = 5.0

#: a status report's TP-ST: below 0x20 done (0x00-0x02 delivered), 0x20-0x3F still trying,
#: 0x40 and above given up (TS 23.040 9.2.3.15)
_ST_PENDING = 0x20
_ST_FAILED = 0x40


class StoreClosed(RuntimeError):
    """The store was closed; nothing more can be read or written through it."""


def new_id():
    """A short random id: 16 hex digits (64 bits), unique enough for every message a bridge sees."""
    return secrets.token_hex(8)


def _iso(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError("sent_at must be an ISO 8601 string, a datetime or None, not %r" % (value,))


def _digits(number):
    return "".join(ch for ch in number if ch.isdigit())


def route_digits(number):
    """A number (or route prefix) as routes compare it: a leading + or 00 dropped, so that
    +25576, 0025576 and 25576 are one prefix, and the national 076 another."""
    number = number.strip()
    if number.startswith("+"):
        return number[1:]
    if number.startswith("00"):
        return number[2:]
    return number


def _same_number(a, b):
    """Whether two renderings of a phone number are the same line (+255712..., 0712..., 255712...).

    Numbers are compared on their last 9 digits, which is the national significant number in most
    countries; alphanumeric addresses are compared as they are.
    """
    da, db = _digits(a), _digits(b)
    if len(da) < 6 or len(db) < 6:
        return a.strip().lower() == b.strip().lower()
    return da[-9:] == db[-9:]


class Store:
    """SQLite queues shared by the bridge's threads. See the module docstring for the rules."""

    def __init__(self, path, *, timeout=30.0, clock=time.time):
        path = os.fspath(path)
        if path in ("", ":memory:") or "mode=memory" in path:
            raise ValueError("the store needs a file: an in-memory database is not shared by threads")
        self.path = path
        self.timeout = timeout
        self.clock = clock
        self._local = threading.local()
        self._connections = []
        self._lock = threading.Lock()
        self._closed = False
        self._cond = threading.Condition()
        self._listeners = []
        self._generation = 0
        self._pool = {}                 # name -> {"routes", "daily_cap", "hourly_cap"}
        self._prefixes = []             # [(digits, modem)], longest first
        self._route_values = [""]       # every route a message can have
        self._usage = {}                # modem -> (counted at, sent last hour, sent last day)
        self._usage_lock = threading.Lock()
        self._open()
        self._load_pool()

    # -- connections and transactions ------------------------------------------------------

    def _open(self):
        db = self._conn()
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("store %s: WAL not available (journal_mode=%s); commits stay durable but "
                        "readers will wait for writers", self.path, mode)
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError("store %s has schema version %d; this gsmbridge knows up to %d"
                                   % (self.path, version, SCHEMA_VERSION))
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _split_sql(_MIGRATIONS[target]):
                    db.execute(statement)
                db.execute("PRAGMA user_version=%d" % target)
                log.info("store %s: schema version %d", self.path, target)

    def _conn(self):
        if self._closed:
            raise StoreClosed("store %s is closed" % self.path)
        db = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread=False only so close() can close every thread's connection; each
            # connection is otherwise used by the thread that made it.
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                 check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout=%d" % int(self.timeout * 1000))
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self):
        """One write transaction: BEGIN IMMEDIATE (so writers queue at the start, not midway),
        COMMIT on success, ROLLBACK on any error."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextmanager
    def _read(self):
        """A consistent snapshot for reads of several statements."""
        db = self._conn()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    def close(self):
        """Close every thread's connection. Later calls raise StoreClosed."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            try:
                db.close()
            except sqlite3.Error:
                log.debug("closing a connection failed", exc_info=True)
        self.notify()

    # -- wake-ups --------------------------------------------------------------------------

    def wait(self, timeout):
        """Sleep until notify() or timeout.

        A notify() that came after this thread's previous wait() returned makes this one return at
        once, so a wake-up sent while the caller was busy is not lost. Spurious returns are
        possible; callers re-check the store.
        """
        with self._cond:
            seen = getattr(self._local, "generation", -1)
            self._cond.wait_for(lambda: self._generation != seen, timeout)
            self._local.generation = self._generation

    def notify(self):
        """Wake every thread sleeping in wait(), and call the on_notify() listeners."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("store: a notify listener failed")

    def on_notify(self, listener):
        """Call `listener()` after every notify().

        For a thread that sleeps somewhere other than wait(): a modem worker sleeps in a serial
        read, and its modem's wake() cuts that short when a message is queued. A wake-up only:
        the message itself still goes through SQLite.
        """
        with self._cond:
            self._listeners.append(listener)

    def off_notify(self, listener):
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- inbound, written by the worker ----------------------------------------------------

    def seen(self, key, modem=None):
        """Whether a PDU with this dedup key was stored before (by `modem`, or by any modem)."""
        db = self._conn()
        if modem is None:
            row = db.execute("SELECT 1 FROM seen WHERE key = ? LIMIT 1", (key,)).fetchone()
        else:
            row = db.execute("SELECT 1 FROM seen WHERE key = ? AND modem = ?", (key, modem)).fetchone()
        return row is not None

    def add_inbound(self, *, modem, sender, text, sent_at, parts=1, incomplete=False, pdus, keys):
        """Store a received message. Returns its new id, or None when every key was seen before
        (the same SMS read twice, or redelivered by the network)."""
        now = self.clock()
        with self._write() as db:
            fresh = sum(_mark_seen(db, key, modem, now) for key in keys)
            if keys and not fresh:
                return None
            msg_id = self._insert_inbound(db, now, modem, sender, text, sent_at, parts, incomplete,
                                          pdus)
        self.notify()
        return msg_id

    def add_part(self, *, modem, key, sender, reference, total, sequence, bits, pdu):
        """Store one part of a concatenated message. False if this part was seen before."""
        now = self.clock()
        with self._write() as db:
            if not _mark_seen(db, key, modem, now):
                return False
            db.execute("INSERT INTO parts (modem, key, sender, reference, total, sequence, bits, pdu,"
                       " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (modem, key, sender, int(reference), int(total), int(sequence), int(bits),
                        pdu, now))
        return True

    def pending_parts(self, modem):
        """The parts still waiting for their siblings, oldest first, to reload the reassembler."""
        rows = self._conn().execute(
            "SELECT * FROM parts WHERE modem = ? ORDER BY received_at, sender, reference, sequence",
            (modem,)).fetchall()
        return [dict(row) for row in rows]

    def complete_parts(self, *, modem, keys, sender, text, sent_at, parts, incomplete, pdus):
        """In one transaction: the joined message goes in, the parts it was made from go out."""
        now = self.clock()
        with self._write() as db:
            for key in keys:
                _mark_seen(db, key, modem, now)
                db.execute("DELETE FROM parts WHERE modem = ? AND key = ?", (modem, key))
            msg_id = self._insert_inbound(db, now, modem, sender, text, sent_at, parts, incomplete,
                                          pdus)
        self.notify()
        return msg_id

    def add_bad_pdu(self, *, modem, pdu, error):
        """Keep a PDU that could not be decoded, with the reason. The same PDU again only counts."""
        now = self.clock()
        with self._write() as db:
            db.execute("INSERT INTO bad_pdus (modem, pdu, error, received_at, last_seen_at)"
                       " VALUES (?, ?, ?, ?, ?) ON CONFLICT (modem, pdu) DO UPDATE SET"
                       " times = times + 1, last_seen_at = excluded.last_seen_at,"
                       " error = excluded.error", (modem, pdu, str(error), now, now))
            return db.execute("SELECT id FROM bad_pdus WHERE modem = ? AND pdu = ?",
                              (modem, pdu)).fetchone()[0]

    def bad_pdus(self, limit=100):
        rows = self._conn().execute("SELECT * FROM bad_pdus ORDER BY id DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [dict(row) for row in rows]

    def add_report(self, *, modem, reference, recipient, status, pdu):
        """Store a status report and apply it to the outbound message it answers.

        Returns the report's id, or None if this very report was stored before. The message is
        the one most recently sent (within REPORT_WINDOW) with that TP-MR to that number; TP-MR
        wraps at 256, so a part still awaiting its final report is preferred over one that has
        had it. The message becomes `delivered` once every part is reported delivered, `failed`
        as soon as one part is reported failed; a pending report (0x20-0x3F) is only recorded.
        The delivery-report callback this calls for (1, 2 or 4) is queued in the same transaction.
        """
        now = self.clock()
        reference, status = int(reference), int(status)
        queued = False
        with self._write() as db:
            cur = db.execute("INSERT OR IGNORE INTO reports (modem, reference, recipient, status,"
                             " pdu, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (modem, reference, recipient, status, pdu, now))
            if not cur.rowcount:
                return None
            report_id = cur.lastrowid
            match = self._match_report(db, modem, reference, recipient, now)
            if match is not None:
                seq, part, msg_id = match
                db.execute("UPDATE reports SET outbound_id = ? WHERE id = ?", (msg_id, report_id))
                # A late "still trying" never overwrites a part's final status.
                cur = db.execute("UPDATE outbound_refs SET status = ?, reported_at = ?"
                                 " WHERE outbound_seq = ? AND part = ? AND (? NOT BETWEEN ? AND ?"
                                 " OR status IS NULL OR status BETWEEN ? AND ?)",
                                 (status, now, seq, part, status, _ST_PENDING, _ST_FAILED - 1,
                                  _ST_PENDING, _ST_FAILED - 1))
                settled = self._settle_outbound(db, seq, now)
                text = "id:%d stat:%s err:%03d" % (reference, _report_word(status), status)
                if settled == "delivered":
                    queued = _queue_callback(db, seq, DLR_DELIVERED, text, now)
                elif settled == "failed":
                    queued = _queue_callback(db, seq, DLR_UNDELIVERED, text, now)
                elif (cur.rowcount and _ST_PENDING <= status < _ST_FAILED
                      and _outbound_status(db, seq) == "sent"):
                    queued = _queue_callback(db, seq, DLR_QUEUED, text, now)
        if queued:
            self.notify()
        return report_id

    def _match_report(self, db, modem, reference, recipient, now):
        """(outbound seq, part, id) of the sent part a report answers, or None."""
        rows = db.execute(
            "SELECT r.outbound_seq, r.part, r.status, o.id, o.recipient, o.sent_at"
            " FROM outbound_refs r JOIN outbound o ON o.seq = r.outbound_seq"
            " WHERE r.reference = ? AND (r.modem = ? OR r.modem IS NULL) AND o.sent_at >= ?",
            (reference, modem, now - REPORT_WINDOW)).fetchall()
        rows = [row for row in rows if _same_number(row["recipient"], recipient)]
        if not rows:
            return None

        def preference(row):
            awaiting = row["status"] is None or _ST_PENDING <= row["status"] < _ST_FAILED
            return (awaiting, row["sent_at"], row["outbound_seq"])

        best = max(rows, key=preference)
        return best["outbound_seq"], best["part"], best["id"]

    def _settle_outbound(self, db, seq, now):
        """Apply the parts' report statuses to a sent message: "delivered", "failed" or None
        (no change)."""
        statuses = [row[0] for row in db.execute(
            "SELECT status FROM outbound_refs WHERE outbound_seq = ?", (seq,))]
        failed = [s for s in statuses if s is not None and s >= _ST_FAILED]
        if failed:
            cur = db.execute("UPDATE outbound SET status = 'failed', failed_at = ?, last_error = ?"
                             " WHERE seq = ? AND status = 'sent'",
                             (now, "status report: not delivered (TP-ST 0x%02X)" % failed[0], seq))
            return "failed" if cur.rowcount else None
        if statuses and all(s is not None and s < _ST_PENDING for s in statuses):
            cur = db.execute("UPDATE outbound SET status = 'delivered', delivered_at = ?"
                             " WHERE seq = ? AND status = 'sent'", (now, seq))
            return "delivered" if cur.rowcount else None
        return None

    def reports(self, limit=100):
        rows = self._conn().execute("SELECT * FROM reports ORDER BY id DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [dict(row) for row in rows]

    def _insert_inbound(self, db, now, modem, sender, text, sent_at, parts, incomplete, pdus):
        if not isinstance(sender, str) or not isinstance(text, str):
            raise TypeError("sender and text must be str")
        msg_id = new_id()
        # The new message is its sender's head unless an older one of theirs is still pending.
        older = db.execute(OLDEST_PENDING_OF_SENDER_SQL, (sender,)).fetchone()
        db.execute("INSERT INTO inbound (id, modem, sender, text, sent_at, received_at, parts,"
                   " incomplete, pdus, head, next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (msg_id, modem, sender, text, _iso(sent_at), now, int(parts), int(bool(incomplete)),
                    json.dumps(list(pdus)), 0 if older else 1, now))
        return msg_id

    # -- inbound, read by the forwarder ----------------------------------------------------

    def due_inbound(self, now, limit=50, *, modems=None):
        """For each sender only its oldest pending message, and only if it is due: delivering
        these keeps every sender's messages in arrival order. Earliest due first.

        modems: only messages received by these modems (a forwarder per receiver URL: a modem
        with a url of its own). A sender's message still waits for their older one received by
        another modem."""
        if modems is None:
            rows = self._conn().execute(DUE_INBOUND_SQL, (now, limit)).fetchall()
        else:
            with self._read() as db:
                rows = [row for modem in modems
                        for row in db.execute(DUE_INBOUND_OF_MODEM_SQL, (modem, now, limit))]
            rows = sorted(rows, key=lambda row: (row["next_attempt"], row["seq"]))[:limit]
        return [_inbound_dict(row) for row in rows]

    def next_inbound_due(self, *, modems=None):
        """When the next pending message is due (epoch seconds), or None if nothing is pending
        (of these modems, when given)."""
        if modems is None:
            return self._conn().execute(NEXT_INBOUND_DUE_SQL).fetchone()[0]
        with self._read() as db:
            times = [db.execute(NEXT_INBOUND_DUE_OF_MODEM_SQL, (modem,)).fetchone()[0]
                     for modem in modems]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def pending_inbound_modems(self):
        """The modems whose received messages still wait for the forwarder (one scan of the
        pending messages: for the start, to find modems that left the config)."""
        return [row[0] for row in self._conn().execute(
            "SELECT DISTINCT modem FROM inbound INDEXED BY inbound_status"
            " WHERE status = 'pending' ORDER BY modem")]

    def get_inbound(self, id):
        row = self._conn().execute("SELECT * FROM inbound WHERE id = ?", (id,)).fetchone()
        return None if row is None else _inbound_dict(row)

    def inbound_delivered(self, id, *, response):
        """The receiver took it (2xx). `response` is kept (its first 1,000 characters)."""
        now = self.clock()
        self._finish_inbound(id, "status = 'delivered', delivered_at = ?, response = ?,"
                             " last_error = NULL", (now, (response or "")[:1000]), now)

    def inbound_failed(self, id, *, error):
        """The receiver refused it for good (4xx). Kept, visible in status, never retried."""
        now = self.clock()
        self._finish_inbound(id, "status = 'failed', failed_at = ?, last_error = ?",
                             (now, str(error)), now)

    def _finish_inbound(self, id, assignments, params, now):
        with self._write() as db:
            row = db.execute("SELECT seq, sender, status FROM inbound WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            if row["status"] != "pending":
                return
            db.execute("UPDATE inbound SET " + assignments + ", head = 0, attempts = attempts + 1,"
                       " last_attempt = ? WHERE seq = ?", (*params, now, row["seq"]))
            _promote_head(db, row["sender"])
        self.notify()

    def inbound_retry(self, id, *, error, next_attempt):
        """Not delivered this time (5xx, timeout, connection error): try again at next_attempt."""
        now = self.clock()
        with self._write() as db:
            cur = db.execute("UPDATE inbound SET attempts = attempts + 1, last_attempt = ?,"
                             " last_error = ?, next_attempt = ? WHERE id = ? AND status = 'pending'",
                             (now, str(error), float(next_attempt), id))
            if not cur.rowcount and not _exists(db, "inbound", id):
                raise KeyError(id)

    def requeue_inbound(self, ids=None):
        """Put failed inbound messages back in the queue (all of them when ids is None), e.g. once
        the receiver's configuration is fixed. Returns how many. Order per sender is kept."""
        now = self.clock()
        with self._write() as db:
            if ids is None:
                senders = [r[0] for r in db.execute(
                    "SELECT DISTINCT sender FROM inbound WHERE status = 'failed'")]
                count = db.execute("UPDATE inbound SET status = 'pending', next_attempt = ?,"
                                   " failed_at = NULL WHERE status = 'failed'", (now,)).rowcount
            else:
                senders, count = set(), 0
                for msg_id in ids:
                    row = db.execute("SELECT sender FROM inbound WHERE id = ? AND status = 'failed'",
                                     (msg_id,)).fetchone()
                    if row is not None:
                        senders.add(row[0])
                        count += db.execute(
                            "UPDATE inbound SET status = 'pending', next_attempt = ?,"
                            " failed_at = NULL WHERE id = ?", (now, msg_id)).rowcount
            for sender in senders:
                _promote_head(db, sender)
        if count:
            self.notify()
        return count

    # -- outbound, written by the web side -------------------------------------------------

    def add_outbound(self, recipients, text, *, encoding, parts, modem=None, sender=None,
                     dlr_url=None, dlr_mask=0):
        """Queue one message per recipient, all in one transaction. Returns their ids in order."""
        if isinstance(recipients, str):
            raise TypeError("recipients must be a list of numbers, not one string")
        recipients = list(recipients)
        if not recipients:
            raise ValueError("no recipients")
        for number in recipients:
            if not isinstance(number, str) or not number.strip():
                raise ValueError("bad recipient %r" % (number,))
        if not isinstance(text, str):
            raise TypeError("text must be str")
        if int(parts) < 1:
            raise ValueError("parts must be at least 1")
        now = self.clock()
        ids = [new_id() for _ in recipients]
        with self._write() as db:
            db.executemany(
                "INSERT INTO outbound (id, recipient, text, encoding, parts, modem, sender, dlr_url,"
                " dlr_mask, next_attempt, created_at, route)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(msg_id, number, text, encoding, int(parts), modem, sender, dlr_url,
                  int(dlr_mask or 0), now, now, self.route_of(number))
                 for msg_id, number in zip(ids, recipients)])
        self.notify()
        return ids

    def get_outbound(self, id):
        """One outbound message with its part references and their report status, or None."""
        with self._read() as db:
            row = db.execute("SELECT * FROM outbound WHERE id = ?", (id,)).fetchone()
            if row is None:
                return None
            result = _outbound_dict(row)
            result["reports"] = [dict(r) for r in db.execute(
                "SELECT part, reference, status, reported_at FROM outbound_refs"
                " WHERE outbound_seq = ? ORDER BY part", (row["seq"],))]
            result["callbacks"] = [dict(r) for r in db.execute(
                "SELECT id, type, text, status, attempts, last_error, created_at, delivered_at,"
                " failed_at FROM callbacks WHERE outbound_id = ? ORDER BY id", (id,))]
        return result

    # -- outbound, read by the worker ------------------------------------------------------

    def next_outbound(self, modem, now):
        """The oldest queued message, due by `now`, that this modem should send: pinned to it,
        or unpinned and either routed to it (its prefixes match the recipient), routed nowhere,
        or routed only to modems that cannot send now (see available()). None when there is
        none, or when this modem is at one of its caps (then even its pinned messages wait).

        Workers pull, so an unrouted message goes to whichever modem asks first: the least
        busy one. The cost is one index seek per route value, however long the queue.
        """
        if modem in self._pool and self.capped(modem):
            return None
        values = self._route_values
        if len(values) > 1:
            usable = set(self.available())
            values = [v for v in values
                      if not v or modem in v.split(",") or usable.isdisjoint(v.split(","))]
        with self._read() as db:
            candidates = [db.execute(NEXT_OUTBOUND_PINNED_SQL, (modem, now)).fetchone()]
            candidates += [db.execute(NEXT_OUTBOUND_ROUTE_SQL, (value, now)).fetchone()
                           for value in values]
        candidates = [row for row in candidates if row is not None]
        if not candidates:
            return None
        return _outbound_dict(min(candidates, key=lambda row: row["seq"]))

    def outbound_sending(self, id, *, modem=None):
        """Claim a queued message for sending; commit this BEFORE AT+CMGS.

        Returns False if it is no longer queued (another modem's worker took it first), or is
        pinned to another modem: skip it then. `modem` records which modem sends it, for
        matching status reports and counting its caps.
        """
        now = self.clock()
        with self._write() as db:
            cur = db.execute("UPDATE outbound SET status = 'sending', attempts = attempts + 1,"
                             " sending_at = ?, sent_by = COALESCE(?, modem)"
                             " WHERE id = ? AND status = 'queued'"
                             " AND (? IS NULL OR modem IS NULL OR modem = ?)",
                             (now, modem, id, modem, modem))
            if cur.rowcount:
                return True
            if not _exists(db, "outbound", id):
                raise KeyError(id)
            return False

    def outbound_sent(self, id, *, references):
        """The modem took every part; `references` are their TP-MRs, in part order (None for a
        part the modem gave none). Queues the type 8 callback if the message asked for it."""
        now = self.clock()
        references = [None if r is None else int(r) for r in references]
        with self._write() as db:
            row = db.execute("SELECT seq, sent_by, modem FROM outbound WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            db.execute("UPDATE outbound SET status = 'sent', sent_at = ?, refs = ?, last_error = NULL"
                       " WHERE seq = ?", (now, json.dumps(references), row["seq"]))
            db.execute("DELETE FROM outbound_refs WHERE outbound_seq = ?", (row["seq"],))
            db.executemany("INSERT INTO outbound_refs (outbound_seq, part, modem, reference)"
                           " VALUES (?, ?, ?, ?)",
                           [(row["seq"], part, row["sent_by"] or row["modem"], ref)
                            for part, ref in enumerate(references) if ref is not None])
            queued = _queue_callback(db, row["seq"], DLR_SMSC_ACK, "ACK", now)
        self._forget_usage(row["sent_by"] or row["modem"])
        if queued:
            self.notify()

    def outbound_retry(self, id, *, error, next_attempt):
        """Back in the queue after a transient failure, due again at next_attempt."""
        with self._write() as db:
            cur = db.execute("UPDATE outbound SET status = 'queued', last_error = ?, next_attempt = ?"
                             " WHERE id = ? AND status IN ('sending', 'queued')",
                             (str(error), float(next_attempt), id))
            if not cur.rowcount and not _exists(db, "outbound", id):
                raise KeyError(id)
        self.notify()

    def outbound_failed(self, id, *, error):
        """Given up: a permanent error (or too many transient ones). Queues the type 16 callback
        (once) if the message asked for it."""
        now = self.clock()
        with self._write() as db:
            row = db.execute("SELECT seq, status FROM outbound WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            db.execute("UPDATE outbound SET status = 'failed', failed_at = ?, last_error = ?"
                       " WHERE seq = ?", (now, str(error), row["seq"]))
            queued = False
            if row["status"] != "failed":
                queued = _queue_callback(db, row["seq"], DLR_SMSC_REJECT, _short(error), now)
        if queued:
            self.notify()

    def recover_sending(self, *, resend):
        """At start: messages left `sending` by a crash may or may not have left the modem.

        resend=True puts them back in the queue (at-least-once); resend=False marks them
        `unknown` (at-most-once). Returns how many there were.
        """
        now = self.clock()
        with self._write() as db:
            if resend:
                count = db.execute(
                    "UPDATE outbound SET status = 'queued', next_attempt = ?, last_error ="
                    " 'interrupted while sending; queued again' WHERE status = 'sending'",
                    (now,)).rowcount
            else:
                count = db.execute(
                    "UPDATE outbound SET status = 'unknown', failed_at = ?, last_error ="
                    " 'interrupted while sending; it may or may not have gone out'"
                    " WHERE status = 'sending'", (now,)).rowcount
        if count:
            self.notify()
        return count

    # -- delivery-report callbacks, read by the DLR sender ---------------------------------

    def due_callbacks(self, now, limit=50):
        """Callbacks due by `now`, earliest first; of each message only its oldest pending one,
        so a receiver hears a message's events in order (8 before 1).
        keys: id outbound_id type dlr_url text smsc recipient sender event_at status attempts
              next_attempt last_attempt last_error response created_at delivered_at failed_at"""
        rows = self._conn().execute(DUE_CALLBACKS_SQL, (now, limit)).fetchall()
        return [dict(row) for row in rows]

    def next_callback_due(self):
        """When the next pending callback is due (epoch seconds), or None if none is pending."""
        return self._conn().execute(NEXT_CALLBACK_DUE_SQL).fetchone()[0]

    def callback_delivered(self, id, *, response):
        """The receiver took it (2xx). The start of its answer is kept."""
        now = self.clock()
        self._finish_callback(id, "status = 'delivered', delivered_at = ?, response = ?,"
                              " last_error = NULL", (now, (response or "")[:1000]), now)

    def callback_failed(self, id, *, error):
        """The receiver refused it for good (4xx): kept, visible, never retried."""
        now = self.clock()
        self._finish_callback(id, "status = 'failed', failed_at = ?, last_error = ?",
                              (now, str(error)), now)

    def _finish_callback(self, id, assignments, params, now):
        with self._write() as db:
            row = db.execute("SELECT status FROM callbacks WHERE id = ?", (id,)).fetchone()
            if row is None:
                raise KeyError(id)
            if row["status"] != "pending":
                return
            db.execute("UPDATE callbacks SET " + assignments + ", attempts = attempts + 1,"
                       " last_attempt = ? WHERE id = ?", (*params, now, id))
        self.notify()  # the message's next callback may now be due

    def callback_retry(self, id, *, error, next_attempt):
        """Not taken this time (5xx, timeout, connection error): try again at next_attempt."""
        now = self.clock()
        with self._write() as db:
            cur = db.execute("UPDATE callbacks SET attempts = attempts + 1, last_attempt = ?,"
                             " last_error = ?, next_attempt = ? WHERE id = ? AND status = 'pending'",
                             (now, str(error), float(next_attempt), id))
            if not cur.rowcount and not _exists(db, "callbacks", id):
                raise KeyError(id)

    def requeue_callbacks(self, ids=None):
        """Failed callbacks back to pending (all of them when ids is None), e.g. once the
        receiver is fixed. Returns how many."""
        now = self.clock()
        with self._write() as db:
            if ids is None:
                count = db.execute("UPDATE callbacks SET status = 'pending', next_attempt = ?,"
                                   " failed_at = NULL WHERE status = 'failed'", (now,)).rowcount
            else:
                count = sum(db.execute("UPDATE callbacks SET status = 'pending', next_attempt = ?,"
                                       " failed_at = NULL WHERE id = ? AND status = 'failed'",
                                       (now, int(i))).rowcount for i in ids)
        if count:
            self.notify()
        return count

    def callbacks(self, outbound_id=None, limit=100):
        """The latest callbacks (of one message, or of all), newest first."""
        db = self._conn()
        if outbound_id is None:
            rows = db.execute("SELECT * FROM callbacks ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = db.execute("SELECT * FROM callbacks WHERE outbound_id = ? ORDER BY id DESC"
                              " LIMIT ?", (outbound_id, limit))
        return [dict(row) for row in rows]

    # -- the pool: routes and caps ---------------------------------------------------------

    def set_pool(self, modems):
        """Record the pool's modems: {name: {"routes": [prefixes], "daily_cap": n,
        "hourly_cap": n}} (caps in SMS parts, 0 = none). Called at start.

        Kept in the store, so that every Store object on the file routes alike. When the routes
        differ from those recorded, the queued unpinned messages are routed again (one UPDATE;
        seconds for a million). Returns how many queued messages are pinned to a modem not in
        the pool: those wait until it comes back, and the caller should say so.
        """
        pool = {}
        for name, settings in modems.items():
            routes = [str(r) for r in settings.get("routes") or ()]
            for prefix in routes:
                if not route_digits(prefix).isdigit():
                    raise ValueError("route %r of modem %s is not a number prefix"
                                     % (prefix, name))
            pool[str(name)] = {"routes": routes,
                               "daily_cap": int(settings.get("daily_cap") or 0),
                               "hourly_cap": int(settings.get("hourly_cap") or 0)}
        with self._write() as db:
            before = _read_pool(db)
            if before != pool:
                db.execute("DELETE FROM pool")
                db.executemany("INSERT INTO pool (name, routes, daily_cap, hourly_cap)"
                               " VALUES (?, ?, ?, ?)",
                               [(name, json.dumps(p["routes"]), p["daily_cap"], p["hourly_cap"])
                                for name, p in pool.items()])
            self._use_pool(pool)
            if _routes_of(before) != _routes_of(pool):
                db.create_function("gsmbridge_route", 1, self.route_of, deterministic=True)
                count = db.execute("UPDATE outbound SET route = gsmbridge_route(recipient)"
                                   " WHERE status IN ('queued', 'sending')").rowcount
                log.info("store %s: routes changed; %d queued message(s) routed again",
                         self.path, count)
            orphans = db.execute(
                "SELECT COUNT(*) FROM outbound INDEXED BY outbound_queue WHERE status = 'queued'"
                " AND modem IS NOT NULL AND modem NOT IN (SELECT name FROM pool)").fetchone()[0]
        self.notify()
        return orphans if pool else 0

    def pool(self):
        """The pool as set_pool recorded it: {name: {"routes", "daily_cap", "hourly_cap"}}."""
        return {name: dict(p, routes=list(p["routes"])) for name, p in self._pool.items()}

    def _load_pool(self):
        with self._read() as db:
            self._use_pool(_read_pool(db))

    def _use_pool(self, pool):
        self._pool = pool
        prefixes = [(route_digits(prefix), name) for name, p in pool.items()
                    for prefix in p["routes"]]
        self._prefixes = sorted(set(prefixes), key=lambda item: (-len(item[0]), item))
        # every route a recipient can have: the modems matching one of the prefixes (a number
        # matches exactly the prefixes of the longest prefix it starts with), or none
        values = {""}
        for digits, _ in self._prefixes:
            values.add(self._route(digits))
        self._route_values = sorted(values)
        with self._usage_lock:
            self._usage.clear()

    def route_of(self, recipient):
        """The route an unpinned message to `recipient` gets: the names of the pool modems one
        of whose prefixes starts it, joined by ",", sorted; "" when none."""
        return self._route(route_digits(recipient))

    def _route(self, digits):
        return ",".join(sorted({name for prefix, name in self._prefixes
                                if digits.startswith(prefix)}))

    def usage(self, modem, *, fresh=False):
        """(SMS sent in the last hour, in the last day) by a modem: parts of messages whose
        sent_at falls in the window, as carriers count. Counted again at most every
        USAGE_TTL seconds, and at once after this Store recorded a send by that modem."""
        now = self.clock()
        with self._usage_lock:
            cached = self._usage.get(modem)
        if cached is not None and not fresh and now - cached[0] < USAGE_TTL:
            return cached[1], cached[2]
        with self._read() as db:
            hour = db.execute(SENT_SINCE_SQL, (modem, now - HOUR)).fetchone()[0]
            day = db.execute(SENT_SINCE_SQL, (modem, now - DAY)).fetchone()[0]
        with self._usage_lock:
            self._usage[modem] = (now, hour, day)
        return hour, day

    def _forget_usage(self, modem):
        with self._usage_lock:
            self._usage.pop(modem, None)

    def capped(self, modem):
        """Whether a pool modem has sent its daily_cap or hourly_cap of SMS (rolling windows).
        A message that starts under the cap goes out whole, so a cap may be passed by the
        parts of one long message."""
        settings = self._pool.get(modem)
        if not settings or not (settings["daily_cap"] or settings["hourly_cap"]):
            return False
        hour, day = self.usage(modem)
        return bool(settings["hourly_cap"] and hour >= settings["hourly_cap"]
                    or settings["daily_cap"] and day >= settings["daily_cap"])

    def available(self, modems=None):
        """The pool modems that can send now: state "up" (booted, registered), reported within
        MODEM_STALE seconds, and under their caps. modems: store.modems()'s rows, if read."""
        if modems is None:
            modems = {row["name"]: {"state": json.loads(row["state"]).get("state"),
                                    "updated_at": row["updated_at"]}
                      for row in self._conn().execute(
                          "SELECT name, state, updated_at FROM modems")}
        now = self.clock()
        return [name for name in self._pool
                if (modems.get(name) or {}).get("state") == "up"
                and now - ((modems.get(name) or {}).get("updated_at") or 0) < MODEM_STALE
                and not self.capped(name)]

    # -- the operators' view ---------------------------------------------------------------

    def set_modem(self, name, **state):
        """Merge state into what is known of a modem (state, operator, registration, signal,
        last_error, ...; any JSON-able values). updated_at defaults to now."""
        now = self.clock()
        updated_at = state.pop("updated_at", None) or now
        with self._write() as db:
            row = db.execute("SELECT state FROM modems WHERE name = ?", (name,)).fetchone()
            merged = json.loads(row[0]) if row else {}
            merged.update(state)
            db.execute("INSERT INTO modems (name, state, updated_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET state = excluded.state,"
                       " updated_at = excluded.updated_at",
                       (name, json.dumps(merged, default=str), updated_at))

    def modems(self):
        """{name: {state..., "updated_at": epoch}}. A pool modem (set_pool) also has "routes",
        "daily_cap", "hourly_cap", "sent_last_hour", "sent_last_day" (SMS parts), "capped" and
        "available" (see available())."""
        result = {}
        for row in self._conn().execute("SELECT name, state, updated_at FROM modems ORDER BY name"):
            state = json.loads(row["state"])
            state["updated_at"] = row["updated_at"]
            result[row["name"]] = state
        if self._pool:
            usable = self.available(result)
            for name, settings in self._pool.items():
                hour, day = self.usage(name)
                state = result.setdefault(name, {"state": "not started", "updated_at": None})
                state.update(routes=list(settings["routes"]), daily_cap=settings["daily_cap"],
                             hourly_cap=settings["hourly_cap"], sent_last_hour=hour,
                             sent_last_day=day, capped=self.capped(name),
                             available=name in usable)
        return result

    def counts(self):
        """Queue depths: {"inbound": {status: n}, "outbound": {status: n}, "callbacks":
        {status: n}, "parts", "bad_pdus",
        "reports", "oldest_pending_inbound", "oldest_queued_outbound"} (the last two are
        epoch seconds or None)."""
        with self._read() as db:
            inbound = dict.fromkeys(INBOUND_STATUSES, 0)
            inbound.update(db.execute(COUNT_INBOUND_SQL).fetchall())
            outbound = dict.fromkeys(OUTBOUND_STATUSES, 0)
            outbound.update(db.execute(COUNT_OUTBOUND_SQL).fetchall())
            oldest_in = db.execute("SELECT received_at FROM inbound WHERE status = 'pending'"
                                   " ORDER BY status, seq LIMIT 1").fetchone()
            oldest_out = db.execute("SELECT created_at FROM outbound WHERE status = 'queued'"
                                    " ORDER BY status, seq LIMIT 1").fetchone()
            callbacks = dict.fromkeys(CALLBACK_STATUSES, 0)
            callbacks.update(db.execute(COUNT_CALLBACKS_SQL).fetchall())
            return {
                "inbound": inbound,
                "outbound": outbound,
                "callbacks": callbacks,
                "parts": db.execute("SELECT COUNT(*) FROM parts").fetchone()[0],
                "bad_pdus": db.execute("SELECT COUNT(*) FROM bad_pdus").fetchone()[0],
                "reports": db.execute("SELECT COUNT(*) FROM reports").fetchone()[0],
                "oldest_pending_inbound": oldest_in[0] if oldest_in else None,
                "oldest_queued_outbound": oldest_out[0] if oldest_out else None,
            }

    def recent(self, limit=20):
        """The latest messages both ways, newest first. Each has "direction": "in" or "out";
        inbound rows leave out the raw PDUs."""
        with self._read() as db:
            inbound = [_inbound_dict(r) for r in db.execute(
                "SELECT * FROM inbound ORDER BY seq DESC LIMIT ?", (limit,))]
            outbound = [_outbound_dict(r) for r in db.execute(
                "SELECT * FROM outbound ORDER BY seq DESC LIMIT ?", (limit,))]
        for row in inbound:
            row.pop("pdus")
            row["direction"] = "in"
        for row in outbound:
            row["direction"] = "out"
        merged = sorted(inbound + outbound, reverse=True,
                        key=lambda r: r["received_at"] if r["direction"] == "in" else r["created_at"])
        return merged[:limit]

    # -- upkeep ----------------------------------------------------------------------------

    def maintenance(self, *, seen_days=30.0, keep_days=None, now=None):
        """Periodic upkeep; returns what it removed.

        Forgets dedup keys older than seen_days (a network redelivers within hours, a SIM is swept
        within minutes; keys of parts still waiting are kept). With keep_days, also deletes
        inbound messages delivered, outbound messages sent or delivered, and callbacks made,
        longer ago than that; failed and unknown ones are never deleted here.
        """
        now = self.clock() if now is None else now
        removed = {"seen": 0, "inbound": 0, "outbound": 0, "callbacks": 0}
        with self._write() as db:
            removed["seen"] = db.execute(
                "DELETE FROM seen WHERE seen_at < ? AND NOT EXISTS (SELECT 1 FROM parts"
                " WHERE parts.modem = seen.modem AND parts.key = seen.key)",
                (now - seen_days * 86400,)).rowcount
        if keep_days is not None:
            cutoff = now - keep_days * 86400
            with self._write() as db:
                removed["inbound"] = db.execute(
                    "DELETE FROM inbound WHERE status = 'delivered' AND delivered_at < ?",
                    (cutoff,)).rowcount
                removed["outbound"] = db.execute(
                    "DELETE FROM outbound WHERE status IN ('sent', 'delivered')"
                    " AND COALESCE(delivered_at, sent_at) < ?", (cutoff,)).rowcount
                removed["callbacks"] = db.execute(
                    "DELETE FROM callbacks WHERE status = 'delivered' AND delivered_at < ?",
                    (cutoff,)).rowcount
        self._conn().execute("PRAGMA optimize")
        return removed

    def check(self):
        """Consistency problems, as sentences; [] when all is well."""
        problems = []
        with self._read() as db:
            result = db.execute("PRAGMA quick_check").fetchall()
            if [tuple(r) for r in result] != [("ok",)]:
                problems.extend("sqlite: %s" % r[0] for r in result)
            for sender, heads, oldest, head in db.execute(
                    "SELECT sender, SUM(head), MIN(seq), MIN(CASE WHEN head = 1 THEN seq END)"
                    " FROM inbound WHERE status = 'pending' GROUP BY sender"):
                if heads != 1 or head != oldest:
                    problems.append("inbound: sender %s has %d head(s), oldest pending seq %s,"
                                    " head seq %s" % (sender, heads, oldest, head))
            stray = db.execute("SELECT COUNT(*) FROM inbound WHERE head = 1 AND status != 'pending'"
                               ).fetchone()[0]
            if stray:
                problems.append("inbound: %d finished messages still marked head" % stray)
        return problems


    # -- read-only queries for the operators' view (web.py, overview.py) -------------------

    #: how many of the newest rows each way activity() looks at: its cost stays bounded however
    #: many rows are kept (one modem moves at most about 20,000 SMS a day)
    ACTIVITY_SCAN = 50000

    def activity(self, since, *, bucket=3600.0, buckets=24):
        """Traffic and the latest events, for the status page and /health.

        {"in": [n per bucket], "out": [n per bucket], "last_received", "last_forwarded",
        "last_sent"}: bucket i counts inbound messages received, and outbound ones the modem took
        (sent_at), from since + i * bucket on; the last_* are epoch seconds or None. Only the
        newest ACTIVITY_SCAN rows of each table are looked at.
        """
        result = {"in": [0] * buckets, "out": [0] * buckets}
        newest = "(SELECT %s AS t FROM %s ORDER BY seq DESC LIMIT %d)"
        with self._read() as db:
            for way, column, table in (("in", "received_at", "inbound"),
                                       ("out", "sent_at", "outbound")) if buckets else ():
                rows = db.execute("SELECT CAST((t - ?) / ? AS INTEGER), COUNT(*) FROM "
                                  + newest % (column, table, self.ACTIVITY_SCAN)
                                  + " WHERE t >= ? GROUP BY 1", (since, bucket, since))
                for index, count in rows:
                    if 0 <= index < buckets:
                        result[way][index] = count
            for key, column, table in (("last_received", "received_at", "inbound"),
                                       ("last_forwarded", "delivered_at", "inbound"),
                                       ("last_sent", "sent_at", "outbound")):
                # finished messages are mostly the newest ones: stop after the first hundred
                result[key] = db.execute(
                    "SELECT MAX(t) FROM (SELECT t FROM " + newest % (column, table, self.ACTIVITY_SCAN)
                    + " WHERE t IS NOT NULL LIMIT 100)").fetchone()[0]
        return result

    def messages(self, *, direction=None, status=None, number=None, limit=50):
        """The newest messages, as recent() gives them, filtered by direction ("in"/"out"),
        status, and number: matched on its last 9 digits (0712..., +255712... and 255712... are
        the same line), or anywhere in the address when shorter or alphanumeric."""
        found = []
        with self._read() as db:
            for way, table, column, statuses, as_dict in (
                    ("in", "inbound", "sender", INBOUND_STATUSES, _inbound_dict),
                    ("out", "outbound", "recipient", OUTBOUND_STATUSES, _outbound_dict)):
                if direction not in (None, way) or status not in (None, *statuses):
                    continue
                where, params = ["1"], []
                if status is not None:
                    where.append("status = ?")
                    params.append(status)
                if number:
                    digits = _digits(number)
                    where.append("substr(%s, -9) = ?" % column if len(digits) >= 9
                                 else "instr(lower(%s), ?) > 0" % column)
                    params.append(digits[-9:] if len(digits) >= 9 else number.lower())
                for row in db.execute("SELECT * FROM %s WHERE %s ORDER BY seq DESC LIMIT ?"
                                      % (table, " AND ".join(where)), (*params, limit)):
                    message = as_dict(row)
                    message.pop("pdus", None)
                    message["direction"] = way
                    found.append(message)
        found.sort(reverse=True, key=lambda m: m["received_at" if m["direction"] == "in"
                                                else "created_at"])
        return found[:limit]


# -- helpers ---------------------------------------------------------------------------------

def _split_sql(script):
    """Split a schema script into statements (it has no semicolons inside strings or triggers)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _read_pool(db):
    return {row["name"]: {"routes": json.loads(row["routes"]), "daily_cap": row["daily_cap"],
                          "hourly_cap": row["hourly_cap"]}
            for row in db.execute("SELECT * FROM pool ORDER BY name")}


def _routes_of(pool):
    return {name: sorted(route_digits(r) for r in p["routes"]) for name, p in pool.items()
            if p["routes"]}


def _mark_seen(db, key, modem, now):
    """Record a dedup key; 1 if it is new, 0 if it was seen before."""
    return db.execute("INSERT OR IGNORE INTO seen (key, modem, seen_at) VALUES (?, ?, ?)",
                      (key, modem, now)).rowcount


def _promote_head(db, sender):
    """Make the sender's oldest pending message its head (and no other)."""
    oldest = db.execute(OLDEST_PENDING_OF_SENDER_SQL, (sender,)).fetchone()
    db.execute(DEMOTE_HEADS_SQL, (sender, oldest[0] if oldest else -1))
    if oldest is not None:
        db.execute("UPDATE inbound SET head = 1 WHERE seq = ? AND head = 0", (oldest[0],))


def _queue_callback(db, seq, type, text, now):
    """Queue a delivery-report callback for outbound message `seq` if it asked for this type
    (dlr_url set and type in dlr_mask). Part of the caller's transaction. True if queued."""
    row = db.execute("SELECT id, recipient, sender, dlr_url, dlr_mask, sent_by, modem"
                     " FROM outbound WHERE seq = ?", (seq,)).fetchone()
    if row is None or not row["dlr_url"] or not (row["dlr_mask"] & type):
        return False
    db.execute("INSERT INTO callbacks (outbound_id, type, dlr_url, text, smsc, recipient, sender,"
               " event_at, next_attempt, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row["id"], type, row["dlr_url"], text, row["sent_by"] or row["modem"],
                row["recipient"], row["sender"], now, now, now))
    return True


def _outbound_status(db, seq):
    row = db.execute("SELECT status FROM outbound WHERE seq = ?", (seq,)).fetchone()
    return row[0] if row else None


def _report_word(status):
    """A TP-ST (TS 23.040 9.2.3.15) as the word SMSCs use in their receipts' stat: field."""
    if status < _ST_PENDING:
        return "DELIVRD"
    if status < _ST_FAILED:
        return "ENROUTE"
    if status == 0x46:
        return "EXPIRED"        # validity period expired
    if status in (0x47, 0x48):
        return "DELETED"        # deleted by the sender or the SC's administration
    return "UNDELIV"


def _short(text, limit=160):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _exists(db, table, id):
    return db.execute("SELECT 1 FROM %s WHERE id = ?" % table, (id,)).fetchone() is not None


def _inbound_dict(row):
    d = dict(row)
    d["incomplete"] = bool(d["incomplete"])
    d["pdus"] = json.loads(d["pdus"])
    del d["head"]
    return d


def _outbound_dict(row):
    d = dict(row)
    refs = d.pop("refs")
    d["references"] = json.loads(refs) if refs else []
    return d

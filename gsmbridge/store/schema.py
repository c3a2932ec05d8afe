"""The store's schema and its migrations (PRAGMA user_version).

Each version is a script that takes the database from the version before to it, so a store made
by any older gsmbridge is brought up to date in place when it is opened, and one made by a newer
gsmbridge is refused rather than misread.
"""

import sqlite3

#: the schema version this code writes (PRAGMA user_version)
SCHEMA_VERSION = 5

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

# A message's priority (Kannel's sendsms `priority`, 0 to 3; RapidPro's courier sends 1 for a
# reply in a conversation): the queue indexes order by it first, so "the next message this modem
# sends" stays one index seek and a reply goes ahead of the bulk queued before it.
_SCHEMA_V4 = """
ALTER TABLE outbound ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
DROP INDEX outbound_queue;
CREATE INDEX outbound_queue ON outbound (modem, priority DESC, seq) WHERE status = 'queued';
DROP INDEX outbound_route;
CREATE INDEX outbound_route ON outbound (route, priority DESC, seq)
    WHERE status = 'queued' AND modem IS NULL;
"""

#: the tables whose rows the tallies count: table -> the statuses their CHECK allows (("",):
#: one count for the table)
TALLIED = {
    "inbound": ("pending", "delivered", "failed"),
    "outbound": ("queued", "sending", "sent", "delivered", "failed", "unknown"),
    "callbacks": ("pending", "delivered", "failed"),
    "parts": ("",), "bad_pdus": ("",), "reports": ("",),
}


def _tally_triggers(table, statuses):
    """The triggers that keep a table's tallies in step with its rows, inside the very statement
    (so the very transaction) that inserts, deletes or moves a row: no code path can forget.

    Every (table, status) row of the tallies exists from the start (tally_seed_sql), so each
    change is one UPDATE by primary key, and the tallies are exactly the sum of what the triggers
    added and took away: a count gone wrong stays wrong, for check() to see. A new status needs
    its row seeded by the migration that allows it."""
    column = "status" if statuses != ("",) else None
    new = "NEW.status" if column else "''"
    old = "OLD.status" if column else "''"
    change = "UPDATE tallies SET n = n %%s 1 WHERE name = '%s' AND status = %%s;" % table
    plus, minus = change % ("+", new), change % ("-", old)
    statements = [
        "CREATE TRIGGER %s_tally_insert AFTER INSERT ON %s BEGIN %s END;" % (table, table, plus),
        "CREATE TRIGGER %s_tally_delete AFTER DELETE ON %s BEGIN %s END;" % (table, table, minus),
    ]
    if column:
        statements.append(
            "CREATE TRIGGER %s_tally_update AFTER UPDATE OF status ON %s"
            " WHEN OLD.status IS NOT NEW.status BEGIN %s %s END;" % (table, table, minus, plus))
    return "\n".join(statements)


def tally_seed_sql():
    """Statements that make every tallies row and fill it with a full count (the migration, and
    recount() after emptying the table)."""
    rows = ", ".join("('%s', '%s')" % (table, status)
                     for table, statuses in TALLIED.items() for status in statuses)
    statements = ["INSERT INTO tallies (name, status) VALUES %s;" % rows]
    for table, statuses in TALLIED.items():
        where = " WHERE status = tallies.status" if statuses != ("",) else ""
        statements.append("UPDATE tallies SET n = (SELECT COUNT(*) FROM %s%s) WHERE name = '%s';"
                          % (table, where, table))
    return statements


def tally_rows_sql(table):
    """A query giving (name, status, n) for a table's rows, counted in full: what the tallies
    must equal (check() compares)."""
    if TALLIED[table] != ("",):
        return "SELECT '%s', status, COUNT(*) FROM %s GROUP BY status" % (table, table)
    return "SELECT '%s', '', COUNT(*) FROM %s" % (table, table)


_SCHEMA_V5 = """
CREATE TABLE tallies (                                -- row counts, kept by triggers: O(1) counts()
    name   TEXT NOT NULL,                             -- the table
    status TEXT NOT NULL DEFAULT '',                  -- its rows' status ('' for one count)
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, status)
) WITHOUT ROWID;
%s
%s
CREATE TABLE receivers (                              -- what the forwarders' receivers answer
    name       TEXT PRIMARY KEY,                      -- the URL, without credentials or query
    state      TEXT NOT NULL,                         -- up, failing, not there, not answering
    status     INTEGER,                               -- the HTTP status it answers, if any
    error      TEXT,
    since      REAL NOT NULL,                         -- when it came to this state
    updated_at REAL NOT NULL
);
""" % ("\n".join(tally_seed_sql()),
       "\n".join(_tally_triggers(t, s) for t, s in TALLIED.items()))

#: schema version -> script taking the database from the version before to it
_MIGRATIONS = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4,
               5: _SCHEMA_V5}


def _split_sql(script):
    """Split a schema script into statements: at each semicolon that ends one, as SQLite reads
    them, so a trigger's body stays whole. Comments ("--" to the end of a line; none inside
    strings) are dropped."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    statements, current = [], ""
    for piece in "\n".join(lines).split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current.strip().rstrip(";"))
            current = ""
    if current.strip(" \n;"):
        statements.append(current.strip().rstrip(";"))
    return statements

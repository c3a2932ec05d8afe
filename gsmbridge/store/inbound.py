"""Inbound: received messages, concatenated parts awaiting their siblings, dedup keys and
undecodable PDUs (written by the modem worker), and the queue the forwarder works through.

Delivery is in arrival order per sender. Each sender's oldest pending message is marked as its
*head* (a column kept in the same transactions that change the statuses), so finding what is due
is one index range scan however many messages wait behind it.
"""

import json

from .rows import _exists, _inbound_dict, _iso, new_id

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
DUE_INBOUND_SQL = (
    "SELECT * FROM inbound WHERE head = 1 AND next_attempt <= ? "
    "ORDER BY next_attempt, seq LIMIT ?")
NEXT_INBOUND_DUE_SQL = "SELECT MIN(next_attempt) FROM inbound WHERE head = 1"
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


class InboundMixin:
    """Store's inbound queue: written by the worker, read and settled by the forwarder."""

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
        self.notify("inbound")
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
        self.notify("inbound")
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
            promoted = _promote_head(db, row["sender"])
        if promoted:                # the sender's next message is due now: wake the forwarder
            self.notify("inbound")

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
            self.notify("inbound")
        return count


def _mark_seen(db, key, modem, now):
    """Record a dedup key; 1 if it is new, 0 if it was seen before."""
    return db.execute("INSERT OR IGNORE INTO seen (key, modem, seen_at) VALUES (?, ?, ?)",
                      (key, modem, now)).rowcount


def _promote_head(db, sender):
    """Make the sender's oldest pending message its head (and no other). True if one became
    head that was not."""
    oldest = db.execute(OLDEST_PENDING_OF_SENDER_SQL, (sender,)).fetchone()
    db.execute(DEMOTE_HEADS_SQL, (sender, oldest[0] if oldest else -1))
    if oldest is None:
        return False
    return db.execute("UPDATE inbound SET head = 1 WHERE seq = ? AND head = 0",
                      (oldest[0],)).rowcount > 0


"""Outbound: the send queue (written by the web side) and the states a message goes through
as a modem worker sends it (queued, sending, sent, failed, unknown).

Which modem takes an unpinned message is decided by the pool (pool.py): workers pull, and
next_outbound offers each only what its routes and caps allow.

The queue's order is priority first (Kannel's `priority`, 0 to 3, higher first), then arrival:
a reply in a conversation (RapidPro's courier sends priority=1) goes ahead of the bulk queued
before it. Within one priority the queue is first in, first out. Nothing promises more than
that for one recipient: a higher-priority message to a number may go ahead of an earlier bulk
one to the same number (as in courier's own queues), and a message waiting for a retry lets
the later ones go by, whatever their priority.
"""

import json

from .callbacks import DLR_SMSC_ACK, DLR_SMSC_REJECT, _queue_callback
from .rows import _exists, _outbound_dict, _short, new_id

#: the range of a message's priority, as Kannel's sendsms takes it: 0 to 3, higher goes first
PRIORITIES = (0, 3)

# Tests check the plans of this module's *_SQL queries: each must use the index meant for it.
NEXT_OUTBOUND_PINNED_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_queue"
    " WHERE status = 'queued' AND modem = ? AND next_attempt <= ? "
    "ORDER BY priority DESC, seq LIMIT 1")
NEXT_OUTBOUND_ANY_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_queue"
    " WHERE status = 'queued' AND modem IS NULL AND next_attempt <= ? "
    "ORDER BY priority DESC, seq LIMIT 1")
# Each is one seek in its index, which is ordered (priority DESC, seq) like the query.
# The pool: an unpinned message's route is the set of modems whose prefixes match its recipient
# ('' for none), so "the oldest one this modem may take" is one index seek per route value.
NEXT_OUTBOUND_ROUTE_SQL = (
    "SELECT * FROM outbound INDEXED BY outbound_route"
    " WHERE status = 'queued' AND modem IS NULL AND route = ? AND next_attempt <= ? "
    "ORDER BY priority DESC, seq LIMIT 1")


class OutboundMixin:
    """Store's outbound queue: queued by the web side, claimed and settled by modem workers."""

    # -- outbound, written by the web side -------------------------------------------------

    def add_outbound(self, recipients, text, *, encoding, parts, modem=None, sender=None,
                     dlr_url=None, dlr_mask=0, priority=0):
        """Queue one message per recipient, all in one transaction. Returns their ids in order.

        priority (0 to 3): higher goes out first; equal priorities in the order queued."""
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
        priority = int(priority or 0)
        if not PRIORITIES[0] <= priority <= PRIORITIES[1]:
            raise ValueError("priority must be %d to %d, not %d" % (*PRIORITIES, priority))
        now = self.clock()
        ids = [new_id() for _ in recipients]
        usable = self._placing()            # in a cluster: which modems here can send (cluster.py)
        with self._write() as db:
            idle = self._idle_modems(db, usable, now)
            db.executemany(
                "INSERT INTO outbound (id, recipient, text, encoding, parts, modem, sender, dlr_url,"
                " dlr_mask, next_attempt, created_at, route, priority)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(msg_id, number, text, encoding, int(parts), modem, sender, dlr_url,
                  int(dlr_mask or 0), now, now, self.route_of(number), priority)
                 for msg_id, number in zip(ids, recipients)])
            self._place(db, ids, recipients, modem, idle)
        self.notify("outbound")
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
        """The first queued message (highest priority, then oldest), due by `now`, that this
        modem should send: pinned to it, or unpinned and either routed to it (its prefixes
        match the recipient), routed nowhere, or routed only to modems that cannot send now
        (see available()). None when there is none, or when this modem is at one of its caps
        (then even its pinned messages wait).

        Workers pull, so an unrouted message goes to whichever modem asks first: the least
        busy one. The cost is one index seek per route value, however long the queue.
        """
        if modem in self._pool and self.capped(modem):
            return None
        values = self._routes_for(modem)
        with self._read() as db:
            row = _oldest_for(db, modem, now, values)
        return None if row is None else _outbound_dict(row)

    def _routes_for(self, modem):
        """The route values whose messages `modem` may take now (next_outbound)."""
        values = self._route_values
        if len(values) > 1:
            usable = set(self.available())
            values = [v for v in values
                      if not v or modem in v.split(",") or usable.isdisjoint(v.split(","))]
        return values

    def outbound_sending(self, id, *, modem=None, claim_next=None):
        """Claim a queued message for sending; commit this BEFORE AT+CMGS.

        Returns False if it is no longer queued (another modem's worker took it first), or is
        pinned to another modem: skip it then. `modem` records which modem sends it, for
        matching status reports and counting its caps.

        claim_next: a modem's name: the message after this one is claimed for it in the same
        transaction (as outbound_sent(claim_next=) does) and returned instead of True.
        """
        now = self.clock()
        values = self._claimable(claim_next)
        with self._write() as db:
            if _claim(db, id, modem, now):
                if values is not None:
                    return self._claim_next(db, claim_next, now, values) or True
                return True
            if not _exists(db, "outbound", id):
                raise KeyError(id)
            return False

    def _claimable(self, modem):
        """The route values a claim_next for `modem` looks in (read before the write
        transaction: they may need reads of their own), or None: no claim (none asked for,
        or a modem with a cap, whose count must include the message before)."""
        if modem is None:
            return None
        settings = self._pool.get(modem)
        if settings and (settings["daily_cap"] or settings["hourly_cap"]):
            return None
        return self._routes_for(modem)

    def _claim_next(self, db, modem, now, values):
        candidate = _oldest_for(db, modem, now, values)
        if candidate is not None and _claim(db, candidate["id"], modem, now):
            return _outbound_dict(candidate)
        return None

    def outbound_sent(self, id, *, references, claim_next=None):
        """The modem took every part; `references` are their TP-MRs, in part order (None for a
        part the modem gave none). Queues the type 8 callback if the message asked for it.

        claim_next: a modem's name. In the same transaction, the message next_outbound() would
        give that modem is claimed for it (as outbound_sending() claims) and returned, as
        next_outbound() returns it (None when there is none): while a queue drains, one
        durable commit a message instead of two. A modem with a cap claims nothing here (its
        count must include this message first): its next message takes the two steps."""
        now = self.clock()
        references = [None if r is None else int(r) for r in references]
        values = self._claimable(claim_next)
        claimed = None
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
            if values is not None:
                claimed = self._claim_next(db, claim_next, now, values)
        self._forget_usage(row["sent_by"] or row["modem"])
        # "sent" wakes what waits for this modem to be free (a cluster's intake, its status
        # reports to relay); "callbacks" the delivery-report sender, when a callback was queued
        self.notify(*(("callbacks", "sent") if queued else ("sent",)))
        return claimed

    def outbound_unclaim(self, id):
        """A message claimed for sending that its modem's worker will not send after all (it
        is stopping): queued again as before, the attempt the claim counted taken back."""
        with self._write() as db:
            cur = db.execute("UPDATE outbound SET status = 'queued',"
                             " attempts = MAX(attempts - 1, 0) WHERE id = ? AND status = 'sending'",
                             (id,))
        if cur.rowcount:
            self.notify("outbound")

    def outbound_retry(self, id, *, error, next_attempt):
        """Back in the queue after a transient failure, due again at next_attempt."""
        with self._write() as db:
            cur = db.execute("UPDATE outbound SET status = 'queued', last_error = ?, next_attempt = ?"
                             " WHERE id = ? AND status IN ('sending', 'queued')",
                             (str(error), float(next_attempt), id))
            if not cur.rowcount and not _exists(db, "outbound", id):
                raise KeyError(id)
        self.notify("outbound")

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
            self.notify("callbacks")

    def recover_sending(self, *, resend):
        """At start: messages left `sending` by a crash may or may not have left the modem.

        resend=True puts them back in the queue (at-least-once); resend=False marks them
        `unknown` (at-most-once). Returns how many there were. (A message another node of a
        cluster sends is that node's to recover: its `sending` here is that node's report.)
        """
        now = self.clock()
        with self._write() as db:
            if resend:
                count = db.execute(
                    "UPDATE outbound SET status = 'queued', next_attempt = ?, last_error ="
                    " 'interrupted while sending; queued again' WHERE status = 'sending'"
                    " AND relay IS NULL", (now,)).rowcount
            else:
                count = db.execute(
                    "UPDATE outbound SET status = 'unknown', failed_at = ?, last_error ="
                    " 'interrupted while sending; it may or may not have gone out'"
                    " WHERE status = 'sending' AND relay IS NULL", (now,)).rowcount
        if count:
            self.notify("outbound")
        return count


def _oldest_for(db, modem, now, values):
    """The first queued message (highest priority, then oldest) due by `now` pinned to `modem`
    or on one of the route `values`, or None."""
    candidates = [db.execute(NEXT_OUTBOUND_PINNED_SQL, (modem, now)).fetchone()]
    candidates += [db.execute(NEXT_OUTBOUND_ROUTE_SQL, (value, now)).fetchone()
                   for value in values]
    candidates = [row for row in candidates if row is not None]
    return min(candidates, key=lambda row: (-row["priority"], row["seq"])) if candidates \
        else None


def _claim(db, id, modem, now):
    """Mark a queued message `sending` by `modem` (counting the attempt); False if it is no
    longer queued or is pinned to another modem."""
    return db.execute("UPDATE outbound SET status = 'sending', attempts = attempts + 1,"
                      " sending_at = ?, sent_by = COALESCE(?, modem)"
                      " WHERE id = ? AND status = 'queued'"
                      " AND (? IS NULL OR modem IS NULL OR modem = ?)",
                      (now, modem, id, modem, modem)).rowcount > 0

"""Status reports (SMS-STATUS-REPORT, TS 23.040 9.2.2.3): stored as received, matched to the
sent part they answer, and applied to its message, queueing the delivery-report callback they
call for in the same transaction."""

from .callbacks import DLR_DELIVERED, DLR_QUEUED, DLR_UNDELIVERED, _queue_callback
from .numbers import _same_number

#: a status report answers the newest message sent with its TP-MR to its number within this long;
#: TP-MR wraps at 256, so an older one is more likely another message's reference
REPORT_WINDOW = 3 * 86400.0

#: a status report's TP-ST: below 0x20 done (0x00-0x02 delivered), 0x20-0x3F still trying,
#: 0x40 and above given up (TS 23.040 9.2.3.15)
_ST_PENDING = 0x20
_ST_FAILED = 0x40


class ReportsMixin:
    """Store's status reports, written by the worker."""

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
            self.notify("callbacks")
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


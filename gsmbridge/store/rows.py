"""Rows as the store hands them out (plain dicts, ready for json.dumps), and the small helpers
every part of the store shares."""

import json
import secrets
from datetime import datetime

INBOUND_STATUSES = ("pending", "delivered", "failed")
OUTBOUND_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "unknown")


def new_id():
    """A short random id: 16 hex digits (64 bits), unique enough for every message a bridge sees."""
    return secrets.token_hex(8)


def _iso(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError("sent_at must be an ISO 8601 string, a datetime or None, not %r" % (value,))


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

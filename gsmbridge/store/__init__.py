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

Threads. One ``Store`` object is shared; each thread gets its own connection (``threading.local``).
``wait()``/``notify()`` only wake sleepers up; the data always goes through SQLite.

Layout. ``Store`` is composed of one class per part, each in a module named for it:

    schema.py       tables, indexes and migrations (PRAGMA user_version)
    connections.py  per-thread connections, transactions, wait()/notify()
    inbound.py      received messages, parts, dedup keys, bad PDUs; the forwarder's queue
    outbound.py     the send queue and its states
    pool.py         modems' routes and caps
    reports.py      status reports, matched to sent parts
    callbacks.py    delivery-report callbacks (Kannel dlr-url)
    ussd.py         USSD requests, from the HTTP API to a modem's worker and back
    calls.py        incoming calls, and the queue of their notifications (call_url)
    views.py        the operators' read queries
    tallies.py      counts(): queue depths in constant time, kept by triggers
    receivers.py    what the forwarders' receivers answer, for /health
    requeue.py      finished rows back in their queue (gsmbridge requeue)
    retention.py    pruning what is finished, in small batches
    upkeep.py       maintenance(), compact(), check()
    errors.py       StoreError and StoreClosed: what every public method raises where SQLite
                    refused, so no caller catches (or imports) sqlite3
    rows.py, numbers.py   row dicts, ids, number comparison

Every name the single-module store had is importable from here as before.
"""

import os
import threading
import time

from . import calls as _calls, ussd as _ussd
from .calls import CALL_STATUSES, CallsMixin
from .callbacks import (CALLBACK_STATUSES, COUNT_CALLBACKS_SQL, DLR_DELIVERED, DLR_QUEUED,
                        DLR_SMSC_ACK, DLR_SMSC_REJECT, DLR_UNDELIVERED, DUE_CALLBACKS_SQL,
                        NEXT_CALLBACK_DUE_SQL, CallbacksMixin)
from .connections import TOPICS, Connections
from .errors import StoreClosed, StoreError, raises_store_errors
from .inbound import (DEMOTE_HEADS_SQL, DUE_INBOUND_OF_MODEM_SQL, DUE_INBOUND_SQL,
                      NEXT_INBOUND_DUE_OF_MODEM_SQL, NEXT_INBOUND_DUE_SQL,
                      OLDEST_PENDING_OF_SENDER_SQL, InboundMixin)
from .numbers import route_digits
from .outbound import (NEXT_OUTBOUND_ANY_SQL, NEXT_OUTBOUND_PINNED_SQL, NEXT_OUTBOUND_ROUTE_SQL,
                       PRIORITIES, OutboundMixin)
from .pool import DAY, HOUR, MODEM_STALE, SENT_SINCE_SQL, USAGE_TTL, PoolMixin
from .receivers import RECEIVER_STATES, ReceiversMixin
from .reports import REPORT_WINDOW, ReportsMixin
from .requeue import DIRECTIONS, REQUEUEABLE, RequeueMixin, why_not
from .retention import PRUNE_BATCH, RetentionMixin
from .rows import INBOUND_STATUSES, OUTBOUND_STATUSES, new_id
from .schema import SCHEMA_VERSION, _split_sql
from .tallies import (OLDEST_PENDING_INBOUND_SQL, OLDEST_QUEUED_OUTBOUND_SQL, TALLIES_SQL,
                      TalliesMixin)
from .upkeep import UpkeepMixin
from .ussd import QUEUE_WAIT as USSD_QUEUE_WAIT, USSD_STATUSES, UssdMixin
from .views import COUNT_INBOUND_SQL, COUNT_OUTBOUND_SQL, ViewsMixin

__all__ = [
    "Store", "StoreError", "StoreClosed", "SCHEMA_VERSION", "new_id", "route_digits",
    "INBOUND_STATUSES", "OUTBOUND_STATUSES", "CALLBACK_STATUSES", "PRIORITIES",
    "DLR_DELIVERED", "DLR_UNDELIVERED", "DLR_QUEUED", "DLR_SMSC_ACK", "DLR_SMSC_REJECT",
    "REPORT_WINDOW", "MODEM_STALE", "HOUR", "DAY", "USAGE_TTL",
    "DUE_INBOUND_SQL", "NEXT_INBOUND_DUE_SQL", "DUE_INBOUND_OF_MODEM_SQL",
    "NEXT_INBOUND_DUE_OF_MODEM_SQL", "OLDEST_PENDING_OF_SENDER_SQL", "DEMOTE_HEADS_SQL",
    "NEXT_OUTBOUND_PINNED_SQL", "NEXT_OUTBOUND_ANY_SQL", "NEXT_OUTBOUND_ROUTE_SQL",
    "SENT_SINCE_SQL", "COUNT_INBOUND_SQL", "COUNT_OUTBOUND_SQL", "DUE_CALLBACKS_SQL",
    "NEXT_CALLBACK_DUE_SQL", "COUNT_CALLBACKS_SQL",
    "RECEIVER_STATES", "DIRECTIONS", "REQUEUEABLE", "why_not", "PRUNE_BATCH",
    "TALLIES_SQL", "OLDEST_PENDING_INBOUND_SQL", "OLDEST_QUEUED_OUTBOUND_SQL",
    "USSD_STATUSES", "USSD_QUEUE_WAIT", "CALL_STATUSES",
]


@raises_store_errors
class Store(InboundMixin, OutboundMixin, ReportsMixin, CallbacksMixin, PoolMixin, ViewsMixin,
            TalliesMixin, ReceiversMixin, RequeueMixin, RetentionMixin, UpkeepMixin, UssdMixin,
            CallsMixin, Connections):
    """SQLite queues shared by the bridge's threads. See the package docstring for the rules."""

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
        # wake-ups: one condition per queue and one for any, all on one lock (Connections.wait)
        wake_lock = threading.Lock()
        self._cond = threading.Condition(wake_lock)
        self._conds = {topic: threading.Condition(wake_lock) for topic in TOPICS}
        self._conds[None] = self._cond
        self._listeners = []
        self._generations = dict.fromkeys(TOPICS, 0)
        self._pool = {}                 # name -> {"routes", "daily_cap", "hourly_cap"}
        self._prefixes = []             # [(digits, modem)], longest first
        self._route_values = [""]       # every route a message can have
        self._usage = {}                # modem -> (counted at, sent last hour, sent last day)
        self._usage_lock = threading.Lock()
        self._open()
        self._add_tables(_ussd.SCHEMA + _calls.SCHEMA)
        self._load_pool()

    def _add_tables(self, script):
        """Tables that only add to the numbered schema (schema.py), made when missing: an older
        gsmbridge opening the same file leaves them alone."""
        with self._write() as db:
            for statement in _split_sql(script):
                db.execute(statement)

"""Per-thread SQLite connections, transactions and wake-ups: the base every part of Store uses.

Each thread gets its own connection (``threading.local``); every write is one ``BEGIN IMMEDIATE``
transaction committed before the method returns. ``wait()``/``notify()`` only wake sleepers up;
the data always goes through SQLite.
"""

import logging
import sqlite3
from contextlib import contextmanager

from .errors import StoreClosed
from .schema import _MIGRATIONS, SCHEMA_VERSION, _split_sql

log = logging.getLogger("gsmbridge.store")

#: what a wake-up may be about: the queue that changed
TOPICS = ("inbound", "outbound", "callbacks")


class Connections:
    """The connection, transaction and wake-up machinery of Store (which sets the attributes up)."""

    # -- connections and transactions ------------------------------------------------------

    def _open(self):
        db = self._conn()
        if db.execute("PRAGMA page_count").fetchone()[0] == 0:
            # A new file: space freed by pruning can then go back to the disk a little at a
            # time (upkeep's incremental vacuum). Only possible before the first table is made.
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
    #
    # Each wake-up says which queue changed ("inbound", "outbound", "callbacks"), and each
    # sleeper says which it serves: a message received wakes the forwarder only, not the modem
    # workers nor the delivery-report sender (each of which would look at its queue for nothing,
    # twice for every SMS). notify() without a topic wakes everyone (close, stop).

    def wait(self, timeout, topics=None):
        """Sleep until notify() of one of `topics` (any, when None) or timeout.

        A notify() that came after this thread's previous wait() returned makes this one return at
        once, so a wake-up sent while the caller was busy is not lost. Spurious returns are
        possible; callers re-check the store.
        """
        topics = TOPICS if topics is None else tuple(topics)
        # A sleeper for one queue waits on that queue's condition, so that a notify() about
        # another one does not even wake it; any other sleeper waits on the condition of all.
        cond = self._conds[topics[0] if len(topics) == 1 else None]
        with cond:
            seen = getattr(self._local, "generations", None)
            if seen is None:
                seen = self._local.generations = {}
            generations = self._generations
            cond.wait_for(lambda: any(generations[t] != seen.get(t, -1) for t in topics),
                          timeout)
            for topic in topics:
                seen[topic] = generations[topic]

    def notify(self, *topics):
        """Wake the threads sleeping in wait() for one of `topics` (every one, when none is
        given), and call the on_notify() listeners of those topics."""
        topics = topics or TOPICS
        with self._cond:             # the lock every condition of _conds shares
            for topic in topics:
                self._generations[topic] += 1
                self._conds[topic].notify_all()
            self._conds[None].notify_all()
            listeners = [fn for fn, wanted in self._listeners
                         if wanted is None or not wanted.isdisjoint(topics)]
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("store: a notify listener failed")

    def on_notify(self, listener, topics=None):
        """Call `listener()` after every notify() of one of `topics` (any, when None).

        For a thread that sleeps somewhere other than wait(): a modem worker sleeps in a serial
        read, and its modem's wake() cuts that short when a message is queued. A wake-up only:
        the message itself still goes through SQLite.
        """
        with self._cond:
            self._listeners.append((listener, None if topics is None else frozenset(topics)))

    def off_notify(self, listener):
        with self._cond:
            self._listeners = [entry for entry in self._listeners if entry[0] != listener]

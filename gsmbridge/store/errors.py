"""What the store raises, so that nothing above it needs to know SQLite is underneath.

`StoreError` is anything SQLite refused: the disk full or failing, the file locked past the
timeout, a constraint or trigger. Every write is one transaction, so a StoreError means nothing of
that call was committed, and the caller may keep what it holds (the worker leaves the SMS on the
modem, the forwarder leaves the row pending). `StoreClosed` is a StoreError raised once `close()`
has been called.

The translation happens at one wall: `raises_store_errors` wraps every public method of the Store
class, so a method added later is covered without remembering to.

StoreError derives from sqlite3.DatabaseError, and StoreClosed still from RuntimeError, so code
written against the store's earlier contract keeps catching what it caught; code above the store
catches StoreError and never imports sqlite3.
"""

import functools
import inspect
import sqlite3


class StoreError(sqlite3.DatabaseError):
    """SQLite refused a read or a write; nothing of the call was committed."""


class StoreClosed(StoreError, RuntimeError):
    """The store was closed; nothing more can be read or written through it."""


def _translated(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except StoreError:
            raise
        except sqlite3.Error as exc:
            error = StoreError(str(exc))
            for name in ("sqlite_errorcode", "sqlite_errorname"):   # Python 3.11+
                if hasattr(exc, name):
                    setattr(error, name, getattr(exc, name))
            raise error from exc
    return call


def raises_store_errors(cls):
    """Class decorator: every public method of `cls` (and its __init__) raises StoreError where
    sqlite3 raised one of its own errors."""
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        if name == "__init__" or not name.startswith("_"):
            setattr(cls, name, _translated(member))
    return cls

"""Fixtures shared by the test modules: a store on a clock the test moves, and an HTTP sink.

The sink (tests/httpsink.py) is a real HTTP server on 127.0.0.1 standing in for RapidSMS or a
delivery-report receiver.
"""

import pytest

from clock import Clock
from gsmbridge.store import Store
from httpsink import HttpSink


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    s = Store(str(tmp_path / "store.sqlite3"), clock=clock)
    yield s
    s.close()


@pytest.fixture
def sink():
    s = HttpSink()
    yield s
    s.stop()

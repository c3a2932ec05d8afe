"""Fixtures shared by the test modules: a store on a clock the test moves, an HTTP sink, and a
whole bridge process forwarding to that sink (modules may override any of them).

The sink (tests/httpsink.py) is a real HTTP server on 127.0.0.1 standing in for RapidSMS or a
delivery-report receiver.
"""

import pytest

from bridgeproc import BridgeProcess
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


@pytest.fixture
def bridge(tmp_path, sink):
    b = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    b.start()
    yield b
    b.stop()

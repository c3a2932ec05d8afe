"""Fixtures shared by the test modules: a store on a clock the test moves, an HTTP sink, and a
whole bridge process forwarding to that sink (modules may override any of them). Temporary files
go to a tmpfs when there is a roomy one (see _use_memory_for_temporary_files).

The sink (tests/httpsink.py) is a real HTTP server on 127.0.0.1 standing in for RapidSMS or a
delivery-report receiver.
"""

import os
import tempfile

import pytest

from bridgeproc import BridgeProcess
from clock import Clock
from gsmbridge.store import Store
from httpsink import HttpSink


def _use_memory_for_temporary_files(path="/dev/shm", room=1 << 30):
    """Put tmp_path, tempfile's files and those of the processes the tests start on a tmpfs.

    The store commits durably: every commit is an fsync, and on a disk shared with other work
    those fsyncs are most of the suite's time. On a tmpfs they cost nothing, and nothing the tests
    check needs a disk: a SIGKILLed process loses no page cache, and a power cut cannot be tested.
    Skipped when TMPDIR is set (the caller chose) or the tmpfs is small (a container's /dev/shm).
    """
    if os.environ.get("TMPDIR") or not os.access(path, os.W_OK | os.X_OK):
        return
    stat = os.statvfs(path)
    if stat.f_bavail * stat.f_frsize < room:
        return
    os.environ["TMPDIR"] = path           # for the bridges, simulators and tools tests start
    tempfile.tempdir = path               # for pytest's tmp_path and tempfile in this process


_use_memory_for_temporary_files()


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

"""The one backoff rule every retrying part shares, with each caller's numbers."""

import random

import pytest

from gsmbridge.backoff import Backoff
from gsmbridge.store import Store
from gsmbridge.worker import ModemWorker


def test_waits_double_from_base_up_to_the_cap():
    b = Backoff(5.0, 300.0)
    assert [b.delay(n) for n in (1, 2, 3, 4, 6, 7, 100)] == [5, 10, 20, 40, 160, 300, 300]
    assert b.delay(0) == b.delay(-3) == 5          # no attempt yet counts as the first


def test_a_huge_attempt_count_neither_overflows_nor_passes_the_cap():
    assert Backoff(1.0, 60.0).delay(10 ** 6) == 60
    assert Backoff(1.0, 60.0, jitter=0.2, hard_cap=False).delay(5000) <= 72


def test_another_factor():
    assert [Backoff(1.0, 100.0, factor=3).delay(n) for n in (1, 2, 3, 4, 5)] == [1, 3, 9, 27, 81]


def test_jitter_under_a_hard_cap_never_passes_the_cap():
    b = Backoff(2.0, 300.0, jitter=0.1)
    for attempt, plain in ((1, 2), (3, 8), (8, 256), (9, 300), (40, 300)):
        waits = [b.delay(attempt) for _ in range(200)]
        assert all(plain * 0.9 <= w <= min(300, plain * 1.1) for w in waits)
        if plain * 1.1 < 300:
            assert len(set(waits)) > 1             # spread, not one value


def test_jitter_over_a_soft_cap_spreads_around_the_cap():
    """Modems that all reached the cap must not all reopen in the same instant."""
    b = Backoff(1.0, 60.0, jitter=0.2, hard_cap=False)
    waits = [b.delay(20) for _ in range(500)]
    assert all(48 <= w <= 72 for w in waits)
    assert min(waits) < 55 and max(waits) > 65


def test_bad_numbers_are_refused():
    for args in ((-1, 10), (1, -1), (1, 10, 0.5), (1, 10, 2, 1.0)):
        with pytest.raises(ValueError):
            Backoff(*args)


def test_the_worker_keeps_its_numbers(tmp_path):
    """Reopening: 1 s doubling to reconnect_cap, spread +-20% around it; a refused send: retry_base
    doubling to retry_cap, no spread."""
    store = Store(str(tmp_path / "store.sqlite3"))
    try:
        w = ModemWorker("m1", store, lambda: None, retry_base=5.0, retry_cap=300.0,
                        reconnect_cap=60.0)
        random.seed(7)
        for attempt, plain in ((1, 1), (2, 2), (6, 32), (7, 60), (30, 60)):
            assert plain * 0.8 <= w.reconnect.delay(attempt) <= plain * 1.2
        assert [w.outbound.retry.delay(n) for n in (1, 2, 3, 7)] == [5, 10, 20, 300]
    finally:
        store.close()

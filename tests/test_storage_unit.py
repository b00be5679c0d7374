"""Fast unit layer for storing turns (orchestrator/storage/turns.py) over fakes: all or nothing, the
retry of a turn the databases refused, and the report when it is lost. The same rules are tested
against a real MariaDB and Milvus Lite in test_storage_faults.py."""
from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np

from orchestrator.storage.turns import TurnRecord, TurnStore, store_turn
from tests.fakes.gateway import FakeDb, FakeMemory


def record(index: int = 0) -> TurnRecord:
    now = dt.datetime(2026, 1, 1)
    return TurnRecord("s1", "u1", index, "completed", "안녕하세요", "반가워요.", now, now, 1000, 800, {}, {}, 0)


async def embed(texts):
    return np.ones((len(texts), 4), np.float32)


class Reports(list):
    async def __call__(self, message: str) -> None:
        self.append(message)


async def test_a_failed_vector_write_leaves_neither_row_nor_vectors():
    db, memory = FakeDb(), FakeMemory(fail_add=True)
    try:
        await store_turn(db, memory, embed, record())
    except RuntimeError:
        pass
    assert db.stored == [] and memory.rows == []


async def test_vectors_that_could_not_be_deleted_are_deleted_on_a_later_try():
    db, memory = FakeDb(), FakeMemory(fail_add=True, fail_forget=True)
    reports = Reports()
    store = TurnStore(db, memory, embed, timeout_s=1.0, retry_s=60.0)
    assert await store.store(record(), reports) is None
    assert db.stored == [] and len(memory.rows) == 2 and len(store.orphans) == 1  # vectors without a row...
    memory.fail_add = memory.fail_forget = False
    assert await store.retry_now()
    assert store.orphans == set() and store.pending == []
    [row] = db.stored                                                           # ...gone; the turn stored once
    assert {r["turn_id"] for r in memory.rows} == {row.id} and len(memory.rows) == 2
    assert len(reports) == 1 and "not stored yet" in reports[0]
    await store.close(1.0)


async def test_a_stalled_database_is_bounded_and_the_turn_retried_until_it_is_stored():
    db, memory = FakeDb(), FakeMemory()
    stall = asyncio.Event()
    original = db.transaction

    class Stalled:
        async def __aenter__(self):
            await stall.wait()

        async def __aexit__(self, *exc):
            return False

    db.transaction = lambda: Stalled()
    reports = Reports()
    store = TurnStore(db, memory, embed, timeout_s=0.05, retry_s=60.0)
    assert await asyncio.wait_for(store.store(record(), reports), 1.0) is None
    assert "TimeoutError" in reports[0] and len(store.pending) == 1
    db.transaction = original
    await asyncio.wait_for(store._worker, 5.0)  # the background retry stores it and stops
    assert len(db.stored) == 1 and len(memory.rows) == 2 and store.pending == []
    await store.close(1.0)


async def test_a_turn_that_stays_unstored_is_reported_lost_after_the_retry_window():
    db, memory = FakeDb(), FakeMemory(fail_add=True)
    reports = Reports()
    store = TurnStore(db, memory, embed, timeout_s=1.0, retry_s=0.0)
    await store.store(record(3), reports)
    await store.retry_now()
    assert store.pending == [] and db.stored == [] and memory.rows == []
    assert len(reports) == 2 and "turn 3 could not be stored" in reports[1]
    await store.close(1.0)

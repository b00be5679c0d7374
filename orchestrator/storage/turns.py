"""Storing a finished turn in MariaDB and Milvus: completely or not at all, and retried until it is.

Embeddings are computed first (nothing written yet); the DB row is flushed inside a transaction,
the vectors go to Milvus, then the DB commits. If anything fails after the row was flushed, the DB
rolls back and the turn's vectors are deleted by its row id (also those of an insert that was cut
off by a timeout); vectors that could not be deleted then are deleted on a later try.

`TurnStore` bounds every attempt (`storage_timeout_s`) and keeps a turn that could not be stored,
retrying it with backoff for `store_retry_s`; the client hears of the delay and, if it comes to
that, of the loss (an `error` event each), never a silent drop.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from orchestrator.metrics import TURNS_UNSTORED
from orchestrator.storage.db import Turn

log = logging.getLogger("orchestrator.storage")

Report = Callable[[str], Awaitable[None]]   # tells the turn's client (an `error` event)


@dataclass
class TurnRecord:
    session_id: str
    user_id: str
    turn_index: int
    status: str
    user_text: str
    assistant_text: str
    started_at: object
    ended_at: object
    user_audio_ms: int
    assistant_audio_ms: int
    timings: dict
    model_versions: dict
    memory_hits: int
    error: str | None = None   # a failed turn: why


async def store_turn(db, memory, embed, record: TurnRecord, orphans: set[int] | None = None) -> int:
    """Returns the turn id. `embed(texts) -> ndarray` (the Triton embedder). A row id whose vectors
    could not be taken back out after a failure is added to `orphans`."""
    texts = [("user", record.user_text), ("assistant", record.assistant_text)]
    texts = [(role, t) for role, t in texts if t.strip()]
    vectors = await embed([t for _, t in texts]) if texts else None
    turn_id = None
    try:
        async with db.transaction() as s:
            row = Turn(session_id=record.session_id, turn_index=record.turn_index, status=record.status,
                       user_text=record.user_text, assistant_text=record.assistant_text,
                       started_at=record.started_at, ended_at=record.ended_at, user_audio_ms=record.user_audio_ms,
                       assistant_audio_ms=record.assistant_audio_ms, timings=record.timings,
                       model_versions=record.model_versions, memory_hits=record.memory_hits, error=record.error)
            s.add(row)
            await s.flush()
            turn_id = row.id
            if texts:
                rows = [{"user_id": record.user_id, "session_id": record.session_id, "turn_id": turn_id,
                         "role": role, "text": t} for role, t in texts]
                await memory.add(rows, vectors)
        return turn_id
    except BaseException:
        if turn_id is not None and texts:  # the DB did not commit: take the row's vectors back out
            try:
                await memory.forget_turns([turn_id])
            except Exception:  # noqa: BLE001 - Milvus is down too: deleted on a later try
                log.warning("vectors of uncommitted row %d not deleted yet", turn_id)
                if orphans is not None:
                    orphans.add(turn_id)
        raise


def describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Pending:
    record: TurnRecord
    report: Report
    first_failed: float = field(default_factory=time.monotonic)
    attempts: int = 1


class TurnStore:
    """Stores turns for every session; keeps and retries the ones the databases refused."""

    def __init__(self, db, memory, embed: Callable, timeout_s: float, retry_s: float):
        self.db, self.memory, self.embed = db, memory, embed
        self.timeout_s, self.retry_s = timeout_s, retry_s
        self.pending: list[Pending] = []
        self.orphans: set[int] = set()  # row ids (never committed) whose vectors are still to delete
        self._worker: asyncio.Task | None = None

    async def _attempt(self, record: TurnRecord) -> int:
        try:
            return await asyncio.wait_for(store_turn(self.db, self.memory, self.embed, record, self.orphans),
                                          self.timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer within {self.timeout_s:g} s") from None

    async def store(self, record: TurnRecord, report: Report) -> int | None:
        """The row id, or None when the turn waits for a retry (the client is told)."""
        try:
            turn_id = await self._attempt(record)
        except Exception as exc:  # noqa: BLE001 - kept and retried, reported to the client
            log.warning("[session %s] storing turn %d failed (%s); retrying for %g s", record.session_id,
                        record.turn_index, exc, self.retry_s)
            self.pending.append(Pending(record, report))
            TURNS_UNSTORED.set(len(self.pending))
            self._start_worker()
            await report(f"turn {record.turn_index} not stored yet ({describe(exc)}); retrying for {self.retry_s:g} s")
            return None
        log.info("[session %s] stored turn %d (%s) as row %d", record.session_id, record.turn_index,
                 record.status, turn_id)
        return turn_id

    def _start_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._retry_loop(), name="turn-store-retry")

    async def _retry_loop(self) -> None:
        """Back-off from 1 s, doubling to 10 s while nothing gets through; ends when nothing waits."""
        delay = 1.0
        while self.pending or self.orphans:
            await asyncio.sleep(delay)
            progressed = await self.retry_now()
            delay = 1.0 if progressed else min(delay * 2, 10.0)

    async def retry_now(self) -> bool:
        """One pass over what waits: True if anything was stored or cleaned up."""
        progressed = False
        if self.orphans:
            try:
                await asyncio.wait_for(self.memory.forget_turns(sorted(self.orphans)), self.timeout_s)
                log.info("deleted the vectors of uncommitted rows %s", sorted(self.orphans))
                self.orphans.clear()
                progressed = True
            except Exception:  # noqa: BLE001
                pass
        for item in list(self.pending):
            record = item.record
            try:
                turn_id = await self._attempt(record)
            except Exception as exc:  # noqa: BLE001
                item.attempts += 1
                if time.monotonic() - item.first_failed >= self.retry_s:
                    self.pending.remove(item)
                    log.error("[session %s] turn %d lost after %d tries: %s", record.session_id,
                              record.turn_index, item.attempts, exc)
                    await item.report(f"turn {record.turn_index} could not be stored ({item.attempts} tries): "
                                      f"{describe(exc)}")
                continue
            self.pending.remove(item)
            progressed = True
            log.info("[session %s] stored turn %d as row %d after %d tries", record.session_id,
                     record.turn_index, turn_id, item.attempts + 1)
        TURNS_UNSTORED.set(len(self.pending))
        return progressed

    async def close(self, timeout_s: float) -> None:
        """Shutdown: one last bounded try; what still fails is logged as lost."""
        if self._worker is not None:
            self._worker.cancel()
        if self.pending or self.orphans:
            try:
                await asyncio.wait_for(self.retry_now(), timeout_s)
            except asyncio.TimeoutError:
                pass
        for item in self.pending:
            log.error("[session %s] turn %d lost at shutdown", item.record.session_id, item.record.turn_index)

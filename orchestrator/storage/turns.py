"""Storing a finished turn in MariaDB and Milvus: completely or not at all.

Embeddings are computed first (nothing written yet); the DB row is flushed inside a transaction,
the vectors go to Milvus, then the DB commits. A Milvus failure rolls the DB back; a commit failure
deletes the vectors just written.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.storage.db import Turn

log = logging.getLogger("orchestrator.storage")


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


async def store_turn(db, memory, embed, record: TurnRecord) -> int:
    """Returns the turn id. `embed(texts) -> ndarray` (the Triton embedder)."""
    texts = [("user", record.user_text), ("assistant", record.assistant_text)]
    texts = [(role, t) for role, t in texts if t.strip()]
    vectors = await embed([t for _, t in texts]) if texts else None
    milvus_ids: list[int] = []
    try:
        async with db.transaction() as s:
            row = Turn(session_id=record.session_id, turn_index=record.turn_index, status=record.status,
                       user_text=record.user_text, assistant_text=record.assistant_text,
                       started_at=record.started_at, ended_at=record.ended_at, user_audio_ms=record.user_audio_ms,
                       assistant_audio_ms=record.assistant_audio_ms, timings=record.timings,
                       model_versions=record.model_versions, memory_hits=record.memory_hits)
            s.add(row)
            await s.flush()
            if texts:
                rows = [{"user_id": record.user_id, "session_id": record.session_id, "turn_id": row.id,
                         "role": role, "text": t} for role, t in texts]
                milvus_ids = await memory.add(rows, vectors)
            turn_id = row.id
        return turn_id
    except BaseException:
        if milvus_ids:  # the DB did not commit: take the vectors back out
            try:
                await memory.delete(milvus_ids)
            except Exception:  # noqa: BLE001
                log.exception("could not delete vectors %s of a failed turn", milvus_ids)
        raise

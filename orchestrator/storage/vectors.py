"""Turn memory in Milvus (Milvus Lite file by default, standalone via MILVUS_URI=http://...).

Every user and assistant turn is stored with its embedding; recall returns the same user's most
similar past turns. FLAT index: exact search stays fast at these sizes, and graph indexes return too
few hits under a selective filter. Filters: Milvus Lite does not take `filter_params` templates, so
ids are checked against the protocol's id charset and quoted; anything else is refused before it
reaches an expression.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.protocol import ID_PATTERN

log = logging.getLogger("orchestrator.memory")
DIM = 384
MAX_TEXT = 2000
SAFE_ID = re.compile(ID_PATTERN)


def id_literal(value: str) -> str:
    """A quoted Milvus string literal for an id; refuses anything outside [A-Za-z0-9_.-]."""
    if not isinstance(value, str) or not SAFE_ID.match(value):
        raise ValueError(f"unsafe id for a filter: {value!r}")
    return f'"{value}"'


@dataclass
class MemoryHit:
    text: str
    role: str
    score: float
    session_id: str
    turn_id: int


def _pymilvus():
    """pymilvus parses a MILVUS_URI environment variable when first imported and rejects a Milvus Lite
    file path; our setting of that name may be one (MILVUS_URI=/srv/voice/milvus.db), so it is hidden
    while pymilvus loads."""
    saved = os.environ.pop("MILVUS_URI", None)
    try:
        import pymilvus
    finally:
        if saved is not None:
            os.environ["MILVUS_URI"] = saved
    return pymilvus


class VectorMemory:
    """Every call is bounded by `timeout_s`; after a failed call the client is rebuilt on the next one
    (a restarted Milvus is found again at once, not after gRPC's reconnect back-off)."""

    def __init__(self, uri: str, collection: str = "turns", dim: int = DIM, timeout_s: float = 10.0):
        if "://" not in uri:  # Milvus Lite: a local .db file whose folder must exist
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.uri, self.collection, self.dim, self.timeout_s = uri, collection, dim, timeout_s
        self.client = None
        self._lock = asyncio.Lock()  # Milvus Lite is one in-process engine: serialise calls
        self._connect()

    def _connect(self) -> None:
        MilvusClient = _pymilvus().MilvusClient  # noqa: N806

        client = MilvusClient(self.uri, timeout=self.timeout_s, dedicated=True)  # its own channel, closed with it
        try:
            self._ensure_collection(client)
        except Exception:
            client.close()
            raise
        self.client = client

    def _ensure_collection(self, client) -> None:
        DataType = _pymilvus().DataType  # noqa: N806

        if client.has_collection(self.collection, timeout=self.timeout_s):
            client.load_collection(self.collection, timeout=self.timeout_s)
            return
        schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("user_id", DataType.VARCHAR, max_length=64)
        schema.add_field("session_id", DataType.VARCHAR, max_length=64)
        schema.add_field("turn_id", DataType.INT64)
        schema.add_field("role", DataType.VARCHAR, max_length=16)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT * 4)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        index.add_index("embedding", index_type="FLAT", metric_type="IP")
        client.create_collection(self.collection, schema=schema, index_params=index, timeout=self.timeout_s)
        client.load_collection(self.collection, timeout=self.timeout_s)

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass

    async def _call(self, method: str, *args, **kwargs):
        """`self.client.<method>(*args, timeout=…)` in a thread, reconnecting first if the last call failed."""
        async with self._lock:
            try:
                return await asyncio.wait_for(asyncio.to_thread(self._call_sync, method, *args, **kwargs),
                                              self.timeout_s + 2.0)
            except Exception:
                self._drop_client()
                raise

    def _call_sync(self, method: str, *args, **kwargs):
        if self.client is None:
            self._connect()
        return getattr(self.client, method)(*args, timeout=self.timeout_s, **kwargs)

    async def ping(self) -> bool:
        try:
            return bool(await self._call("has_collection", self.collection))
        except Exception:  # noqa: BLE001
            return False

    async def add(self, rows: list[dict], vectors: np.ndarray) -> list[int]:
        data = [{**r, "text": r["text"][:MAX_TEXT], "embedding": v.astype(np.float32).tolist()}
                for r, v in zip(rows, vectors)]
        result = await self._call("insert", self.collection, data)
        return list(result["ids"])

    async def forget_turns(self, turn_ids: list[int]) -> None:
        """Delete the vectors of these turn rows."""
        if turn_ids:
            ids = ", ".join(str(int(t)) for t in turn_ids)
            await self._call("delete", self.collection, filter=f"turn_id in [{ids}]")

    async def recall(self, user_id: str, vector: np.ndarray, top_k: int, min_score: float,
                     exclude_session: str | None = None) -> list[MemoryHit]:
        flt = f"user_id == {id_literal(user_id)}"
        if exclude_session:
            flt += f" and session_id != {id_literal(exclude_session)}"
        result = await self._call("search", self.collection, data=[vector.astype(np.float32).tolist()],
                                  filter=flt, limit=top_k,
                                  output_fields=["text", "role", "session_id", "turn_id"],
                                  search_params={"metric_type": "IP"})
        hits = [MemoryHit(h["entity"]["text"], h["entity"]["role"], float(h["distance"]), h["entity"]["session_id"],
                          int(h["entity"]["turn_id"])) for h in result[0]]
        return [h for h in hits if h.score >= min_score]

    async def count(self, user_id: str) -> int:
        rows = await self._call("query", self.collection, filter=f"user_id == {id_literal(user_id)}",
                                output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    async def turn_ids(self) -> set[int]:
        """The turn rows that have vectors (consistency checks, the soak benchmark)."""
        rows = await self._call("query", self.collection, filter="turn_id >= 0", output_fields=["turn_id"])
        return {int(r["turn_id"]) for r in rows}

    def close(self) -> None:
        self._drop_client()

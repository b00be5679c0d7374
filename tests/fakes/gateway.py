"""A scripted stand-in for TritonGateway, DB and Milvus: the fast unit layer beside the real tests.

VAD: a window is voiced when its mean |sample| is above a level (the tests write loud or silent
frames). STT/LLM/TTS answer from scripts, with optional delays and failures, and record calls and
cancellations so tests can assert what reached "Triton".
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from orchestrator.triton_client import StreamItem, TritonCallError, Transcript


@dataclass
class FakeGateway:
    transcript: str = "안녕하세요"
    reply: list[str] = field(default_factory=lambda: ["네, ", "반가워요. ", "좋은 하루예요."])
    stt_delay_s: float = 0.0
    llm_delay_s: float = 0.0           # before each delta
    tts_delay_s: float = 0.0
    fail: dict = field(default_factory=dict)  # stage -> message: that stage raises TritonCallError
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def _maybe_fail(self, stage: str) -> None:
        if stage in self.fail:
            raise TritonCallError(stage, self.fail[stage])

    async def vad(self, model, window, state):
        self.calls.append("vad")
        self._maybe_fail("vad")
        return (0.9 if float(np.abs(window).mean()) > 0.05 else 0.05), state

    async def transcribe(self, model, pcm, *, language="ko", partial=False, beam_size=1, window_s=0):
        self.calls.append("stt.partial" if partial else "stt")
        try:
            await asyncio.sleep(self.stt_delay_s)
        except asyncio.CancelledError:
            self.cancelled.append("stt.partial" if partial else "stt")
            raise
        self._maybe_fail("stt")
        return Transcript(self.transcript, "1", {})

    async def embed(self, model, texts, kind="passage"):
        self.calls.append(f"embed.{kind}")
        self._maybe_fail("embed")
        return np.ones((len(texts), 4), np.float32)

    async def _stream(self, stage: str, items: list[tuple[np.ndarray, dict]], delay_s: float):
        self.calls.append(stage)
        try:
            self._maybe_fail(stage)
            for data, info in items:
                await asyncio.sleep(delay_s)
                yield StreamItem(data, info, "1", False)
            yield StreamItem(items[0][0][:0], {"status": "done"}, "1", True)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.append(stage)
            raise

    def llm_stream(self, model, messages, options, request_id=""):
        self.last_messages = messages
        return self._stream("llm", [(np.array([d.encode()], dtype=object), {}) for d in self.reply],
                            self.llm_delay_s)

    def tts_stream(self, model, text, options, request_id=""):
        return self._stream("tts", [(np.full(2400, 100, np.int16), {"sample_rate": 24000})], self.tts_delay_s)


@dataclass
class FakeUser:
    voice_id: str | None = None


class FakeDb:
    def __init__(self):
        self.stored: list = []

    async def start_session(self, session_id, user_id):
        return FakeUser()

    async def next_turn_index(self, session_id):
        return 0

    async def end_session(self, session_id):
        pass


class FakeMemory:
    def __init__(self, fail: bool = False):
        self.fail, self.rows = fail, []

    async def recall(self, user_id, vector, top_k, min_score, exclude_session=None):
        if self.fail:
            raise RuntimeError("milvus down")
        return []


class _FakeTx:
    def __init__(self, db):
        self.db = db

    def add(self, row):
        self.row = row

    async def flush(self):
        self.row.id = len(self.db.stored) + 1


class _Transaction:
    def __init__(self, db):
        self.db, self.tx = db, _FakeTx(db)

    async def __aenter__(self):
        return self.tx

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.stored.append(self.tx.row)
        return False


def _transaction(self):
    return _Transaction(self)


FakeDb.transaction = _transaction


async def _add(self, rows, vectors):
    self.rows += rows
    return list(range(len(self.rows) - len(rows), len(self.rows)))


async def _delete(self, ids):
    self.rows = [r for i, r in enumerate(self.rows) if i not in ids]


FakeMemory.add, FakeMemory.delete = _add, _delete

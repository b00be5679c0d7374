"""A scripted stand-in for TritonGateway, DB and Milvus: the fast unit layer beside the real tests.

VAD: a window is voiced when its mean |sample| is above a level (the tests write loud or silent
frames). STT/LLM/TTS answer from scripts, with optional delays and failures, and record calls and
cancellations so tests can assert what reached "Triton".
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from orchestrator.session import Services
from orchestrator.storage.turns import TurnStore
from orchestrator.triton_client import StreamItem, TritonCallError, Transcript


@dataclass
class FakeGateway:
    transcript: str = "안녕하세요"
    reply: list[str] = field(default_factory=lambda: ["네, ", "반가워요. ", "좋은 하루예요."])
    stt_delay_s: float = 0.0
    llm_delay_s: float = 0.0           # before each delta
    tts_delay_s: float = 0.0
    tts_audio_s: float = 0.1           # the audio of each sentence
    enroll_delay_s: float = 0.0
    fail: dict = field(default_factory=dict)  # stage -> message: that stage raises TritonCallError
    calls: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)   # what successive partial STT calls return
    prefixes: list[str] = field(default_factory=list)   # the prefix each final STT call was given
    stt_vads: list[bool] = field(default_factory=list)  # whether each final STT call asked for Whisper's VAD
    stt_orders: list = field(default_factory=list)      # the turn order each final STT call carried
    tts_options: list[dict] = field(default_factory=list)  # the OPTIONS of each TTS call
    llm_options: list[dict] = field(default_factory=list)  # the OPTIONS of each LLM call

    def _maybe_fail(self, stage: str) -> None:
        if stage in self.fail:
            raise TritonCallError(stage, self.fail[stage])

    async def vad(self, model, window, state):
        self.calls.append("vad")
        self._maybe_fail("vad")
        return (0.9 if float(np.abs(window).mean()) > 0.05 else 0.05), state

    async def transcribe(self, model, pcm, *, language="ko", partial=False, beam_size=1, window_s=0, prefix="",
                         vad=True, order=None):
        self.calls.append("stt.partial" if partial else "stt")
        if not partial:
            self.prefixes.append(prefix)
            self.stt_vads.append(vad)
            self.stt_orders.append(order)
        elif self.partials:  # scripted partial transcripts, one per call
            self._maybe_fail("stt")
            return Transcript(self.partials.pop(0), "1", {})
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
        self.llm_options.append(options)
        started = {"ttft_ms": 50.0, "prompt_tokens": 120, "prompt_cached": 100}  # as the model's first INFO
        return self._stream("llm", [(np.array([d.encode()], dtype=object), {"index": i, **(started if i == 0 else {})})
                                    for i, d in enumerate(self.reply)], self.llm_delay_s)

    async def llm_prefill(self, model, messages, request_id=""):
        self.calls.append("llm.prefill")
        self.prefilled = [*getattr(self, "prefilled", []), messages]
        self._maybe_fail("llm.prefill")
        return {"status": "done", "prefilled": 1}

    async def enroll_voice(self, model, voice_id, pcm, rate):
        self.calls.append("enroll")
        await asyncio.sleep(self.enroll_delay_s)
        self._maybe_fail("enroll")
        return {"voice": voice_id, "similarity": 0.7, "enroll_ms": self.enroll_delay_s * 1000}

    def tts_stream(self, model, text, options, request_id=""):
        self.tts_options.append(options)
        return self._stream("tts", [(np.full(int(24000 * self.tts_audio_s), 100, np.int16), {"sample_rate": 24000})],
                            self.tts_delay_s)


@dataclass
class FakeUser:
    voice_id: str | None = None


class FakeDb:
    """Turn rows in a list; a transaction appends its row only when it commits."""

    def __init__(self):
        self.stored: list = []

    async def start_session(self, session_id, user_id):
        return FakeUser()

    async def next_turn_index(self, session_id):
        return 0

    async def end_session(self, session_id):
        pass

    async def set_voice(self, user_id, voice_id):
        self.voices = {**getattr(self, "voices", {}), user_id: voice_id}

    def transaction(self):
        return _Transaction(self)


class _Transaction:
    next_id = 0

    def __init__(self, db):
        self.db = db

    def add(self, row):
        self.row = row

    async def flush(self):
        _Transaction.next_id += 1  # like AUTO_INCREMENT: an id is never reused, even after a rollback
        self.row.id = _Transaction.next_id

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.stored.append(self.row)
        return False


class FakeMemory:
    """Vectors as rows in a list; `fail` makes recall fail, `fail_add` / `fail_forget` the writes."""

    def __init__(self, fail: bool = False, fail_add: bool = False, fail_forget: bool = False):
        self.fail, self.fail_add, self.fail_forget, self.rows = fail, fail_add, fail_forget, []

    async def recall(self, user_id, vector, top_k, min_score, exclude_session=None):
        if self.fail:
            raise RuntimeError("milvus down")
        return []

    async def add(self, rows, vectors):
        self.rows += rows
        if self.fail_add:  # written, but the call failed (a timeout after the insert went through)
            raise RuntimeError("milvus insert failed")
        return list(range(len(self.rows) - len(rows), len(self.rows)))

    async def forget_turns(self, turn_ids):
        if self.fail_forget:
            raise RuntimeError("milvus delete failed")
        self.rows = [r for r in self.rows if r["turn_id"] not in turn_ids]


def fake_services(cfg, gateway, db=None, memory=None) -> Services:
    """Services over fakes, with the real TurnStore (its retries run on the fakes)."""
    db, memory = db or FakeDb(), memory or FakeMemory()

    async def embed(texts):
        return await gateway.embed(cfg.embedder_model, texts, kind="passage")

    return Services(cfg, gateway, db, memory, TurnStore(db, memory, embed, cfg.storage_timeout_s, cfg.store_retry_s))

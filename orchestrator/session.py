"""One conversation over one socket: the turn state machine (listening → user speaking → responding).

Audio frames flow forward only: socket → VAD → (end of turn) STT → memory → LLM → splitter → TTS →
socket. Each user turn gets a new `turn_id`; a barge-in cancels the running answer (and its Triton
requests) and bumps the id, and the transport drops anything tagged with an older id.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np
from pydantic import ValidationError

from orchestrator import protocol as P
from orchestrator.metrics import BARGE_INS, ERRORS, TURNS, TurnClock, now
from orchestrator.stages.respond import ResponseResult, build_messages, respond
from orchestrator.stages.vad import VadSegmenter
from orchestrator.storage.db import utcnow
from orchestrator.storage.turns import TurnRecord, store_turn
from orchestrator.triton_client import TritonCallError

log = logging.getLogger("orchestrator.session")


@dataclass
class Services:
    settings: object
    gateway: object
    db: object
    memory: object


class SessionLog(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[session {self.extra['session']}] {msg}", kwargs


class VoiceSession:
    def __init__(self, session_id: str, services: Services, send_json: Callable[[dict], Awaitable[None]],
                 send_bytes: Callable[[bytes], Awaitable[None]]):
        self.id, self.svc, self.cfg = session_id, services, services.settings
        self._send_json, self._send_bytes = send_json, send_bytes
        self.log = SessionLog(log, {"session": session_id})
        self.user_id: str | None = None
        self.voice = self.cfg.tts_voice
        self.output_rate = self.cfg.output_sample_rate
        self.turn_id = 0
        self.turn_index = 0
        self.history: list[tuple[str, str]] = []
        self.vad = VadSegmenter(services.gateway, self.cfg.vad_model, self.cfg.vad_threshold,
                                self.cfg.vad_min_speech_ms, self.cfg.vad_end_silence_ms,
                                max_utterance_s=self.cfg.max_utterance_s)
        self.audio_in: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=500)
        self.response_task: asyncio.Task | None = None
        self.partial_task: asyncio.Task | None = None
        self.background: set[asyncio.Task] = set()
        self.last_partial = 0.0
        self.audio_turn, self.audio_seq = 0, 0  # binary frame numbering per turn
        self.vad_task = asyncio.create_task(self._vad_loop())

    # ---------------------------------------------------------------- transport helpers
    async def send(self, type_: str, **fields) -> None:
        await self._send_json(P.server_event(type_, **fields))

    async def error(self, code: str, message: str, turn_id: int | None = None) -> None:
        ERRORS.labels(code).inc()
        self.log.warning("error %s: %s", code, message)
        await self._send_json(P.error_event(code, message, turn_id))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    @property
    def responding(self) -> bool:
        return self.response_task is not None and not self.response_task.done()

    # ---------------------------------------------------------------- inbound
    async def handle_text(self, raw: str) -> None:
        try:
            event = P.client_message.validate_json(raw)
        except ValidationError as exc:
            errors = exc.errors()
            if any(e["type"] == "json_invalid" for e in errors):
                return await self.error(P.ErrorCode.BAD_JSON, "text frames must be JSON events")
            if any(e["type"] in ("union_tag_invalid", "union_tag_not_found") for e in errors):
                return await self.error(P.ErrorCode.UNKNOWN_EVENT, "unknown event type")
            return await self.error(P.ErrorCode.INVALID_EVENT, "; ".join(
                f"{'.'.join(map(str, e['loc'][1:])) or 'event'}: {e['msg']}" for e in errors[:3]))
        if isinstance(event, P.SessionStart):
            return await self.start(event)
        if self.user_id is None:
            return await self.error(P.ErrorCode.NOT_STARTED, "send session.start first")
        if isinstance(event, P.InputAudioCommit):
            end = self.vad.force_end()
            if end is not None:
                await self._end_of_turn(end.audio)
        elif isinstance(event, P.InputAudioClear):
            self.vad.reset()
        elif isinstance(event, P.ResponseCancel):
            await self.interrupt("client")
        elif isinstance(event, P.SessionEnd):
            await self.close()

    async def handle_audio(self, data: bytes) -> None:
        if self.user_id is None:
            return await self.error(P.ErrorCode.NOT_STARTED, "send session.start before audio")
        if len(data) > self.cfg.max_frame_bytes:
            return await self.error(P.ErrorCode.FRAME_TOO_LARGE,
                                    f"audio frame of {len(data)} bytes > {self.cfg.max_frame_bytes}")
        if len(data) == 0 or len(data) % 2:
            return await self.error(P.ErrorCode.BAD_AUDIO_FRAME, "audio frames are PCM16: an even, non-zero length")
        try:
            self.audio_in.put_nowait(np.frombuffer(data, dtype=np.int16).copy())
        except asyncio.QueueFull:
            await self.error(P.ErrorCode.BAD_AUDIO_FRAME, "audio arriving faster than real time; frame dropped")

    async def start(self, event: P.SessionStart) -> None:
        if self.user_id is not None:
            return await self.error(P.ErrorCode.ALREADY_STARTED, "session already started")
        try:
            user = await self.svc.db.start_session(self.id, event.user_id)
        except PermissionError as exc:
            return await self.error(P.ErrorCode.SESSION_FORBIDDEN, str(exc))
        self.user_id = event.user_id
        self.output_rate = event.output_sample_rate or self.output_rate
        self.voice = user.voice_id or self.voice
        self.turn_index = await self.svc.db.next_turn_index(self.id)
        self.log.info("started for user %s (voice %s)", self.user_id, self.voice)
        await self.send("session.started", session_id=self.id, user_id=self.user_id, voice=self.voice,
                        input_sample_rate=16000, output_sample_rate=self.output_rate)
        if event.voice_reference:
            await self._enroll(event.voice_reference)

    async def _enroll(self, b64: str) -> None:
        try:
            pcm = np.frombuffer(base64.b64decode(b64, validate=True), dtype=np.int16)
        except (binascii.Error, ValueError):
            return await self.error(P.ErrorCode.VOICE_ENROLL_FAILED, "voice_reference must be base64 PCM16")
        if not 3.0 <= len(pcm) / 16000 <= 15.0:
            return await self.error(P.ErrorCode.VOICE_ENROLL_FAILED, "voice_reference must be 3–15 s of 16 kHz audio")

        async def enroll() -> None:
            voice_id = f"user_{self.user_id}"
            try:
                info = await self.svc.gateway.enroll_voice(self.cfg.tts_model, voice_id, pcm, 16000)
                await self.svc.db.set_voice(self.user_id, voice_id)
            except TritonCallError as exc:
                return await self.error(P.ErrorCode.VOICE_ENROLL_FAILED, exc.message)
            self.voice = voice_id
            await self.send("voice.enrolled", **info)

        self._spawn(enroll())

    # ---------------------------------------------------------------- VAD loop and turn taking
    async def _vad_loop(self) -> None:
        while (pcm := await self.audio_in.get()) is not None:
            # while the bot answers, user speech must last longer to count as a barge-in (echo, coughs)
            self.vad.min_speech_ms = self.cfg.barge_in_min_speech_ms if self.responding else self.cfg.vad_min_speech_ms
            try:
                events = await self.vad.feed(pcm)
            except TritonCallError as exc:
                await self.error(P.ErrorCode.STAGE_FAILED, f"vad: {exc.message}")
                continue
            for event in events:
                if event.kind == "start":
                    if self.responding:
                        await self.interrupt("speech")
                    await self.send("speech.started", turn_id=self.turn_id + 1)
                elif event.kind == "end":
                    await self._end_of_turn(event.audio)
            if self.vad.speaking:
                self._maybe_partial()

    def _maybe_partial(self) -> None:
        if not self.cfg.stt_enabled or (self.partial_task and not self.partial_task.done()):
            return
        if self.vad.speech_ms < 500 or now() - self.last_partial < self.cfg.partial_interval_ms / 1000:
            return
        self.last_partial = now()
        turn_id, audio = self.turn_id + 1, self.vad.utterance_audio

        async def partial() -> None:
            try:
                result = await self.svc.gateway.transcribe(self.cfg.stt_model, audio, partial=True)
            except TritonCallError:
                return  # partials are best effort; the final transcript reports errors
            if result.text and self.vad.speaking and turn_id == self.turn_id + 1:
                await self.send("transcript.partial", turn_id=turn_id, text=result.text)

        self.partial_task = self._spawn(partial())

    async def _end_of_turn(self, audio: np.ndarray) -> None:
        if self.responding:
            await self.interrupt("speech")
        self.turn_id += 1
        clock = TurnClock()
        await self.send("speech.stopped", turn_id=self.turn_id, audio_ms=len(audio) * 1000 // 16000)
        self.response_task = asyncio.create_task(self._run_turn(self.turn_id, audio, clock))

    async def interrupt(self, reason: str) -> None:
        """Barge-in: cancel the answer in flight; its Triton streams are cancelled with it."""
        task = self.response_task
        if task is None or task.done():
            return
        BARGE_INS.inc()
        self.log.info("barge-in (%s) cancels turn %d", reason, self.turn_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # ---------------------------------------------------------------- one turn
    async def _run_turn(self, turn_id: int, audio: np.ndarray, clock: TurnClock) -> None:
        started = utcnow()
        result = ResponseResult(sample_rate=self.output_rate)
        user_text, hits, status = "", [], "failed"
        versions: dict = {}
        try:
            if not self.cfg.stt_enabled:
                return
            transcript = await self.svc.gateway.transcribe(self.cfg.stt_model, audio)
            clock.mark("stt_done")
            versions["stt"] = transcript.model_version
            user_text = transcript.text
            await self.send("transcript.final", turn_id=turn_id, text=user_text,
                            stt_ms=clock.ms()["stt_done"])
            if not user_text:  # silence / noise: no text, no answer, nothing stored
                status = "empty"
                return await self.send("response.done", turn_id=turn_id, status="empty", timings=clock.ms())
            if not self.cfg.llm_enabled:
                status = "completed"
                return
            hits = await self._recall(user_text)
            clock.mark("memory_done")
            await self.send("response.started", turn_id=turn_id, memory_hits=len(hits))
            await respond(
                self.svc.gateway, llm_model=self.cfg.llm_model, tts_model=self.cfg.tts_model if self.cfg.tts_enabled else None,
                messages=build_messages(self.cfg.system_prompt, self.history[-self.cfg.history_turns:], hits, user_text),
                llm_options={"max_tokens": self.cfg.llm_max_tokens, "temperature": self.cfg.llm_temperature,
                             "threads": self.cfg.llm_threads or None},
                tts_options={"voice": self.voice, "sample_rate": self.output_rate}, clock=clock,
                request_id=f"{self.id}-{turn_id}", on_text=lambda d: self._text_out(turn_id, d),
                on_audio=lambda pcm, rate: self._audio_out(turn_id, pcm, rate), result=result)
            status = "completed"
            self.history.append((user_text, result.text))
            await self.send("response.done", turn_id=turn_id, status=status, text=result.text,
                            timings=clock.ms(), llm=result.llm, model_versions={**versions, **result.versions})
        except asyncio.CancelledError:
            status = "interrupted"
            if user_text:
                self.history.append((user_text, result.text))
            self._spawn(self.send("response.done", turn_id=turn_id, status=status, text=result.text,
                                  timings=clock.ms()))
            raise
        except TritonCallError as exc:
            await self.error(P.ErrorCode.STAGE_FAILED, str(exc), turn_id)
        finally:
            TURNS.labels(status).inc()
            if user_text and status in ("completed", "interrupted"):
                self._spawn(self._store(TurnRecord(
                    self.id, self.user_id, self.turn_index, status, user_text, result.text, started, utcnow(),
                    len(audio) * 1000 // 16000, result.audio_samples * 1000 // max(result.sample_rate, 1),
                    {**clock.ms(), "endpoint_silence_ms": self.cfg.vad_end_silence_ms, "llm": result.llm},
                    {**versions, **result.versions}, len(hits))))
                self.turn_index += 1

    async def _recall(self, text: str) -> list:
        vector = (await self.svc.gateway.embed(self.cfg.embedder_model, [text], kind="query"))[0]
        return await self.svc.memory.recall(self.user_id, vector, self.cfg.memory_top_k, self.cfg.memory_min_score,
                                            exclude_session=self.id)

    async def _store(self, record: TurnRecord) -> None:
        async def embed(texts):
            return await self.svc.gateway.embed(self.cfg.embedder_model, texts, kind="passage")

        try:
            turn_row = await store_turn(self.svc.db, self.svc.memory, embed, record)
            self.log.info("stored turn %d (%s) as row %d", record.turn_index, record.status, turn_row)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the session goes on
            self.log.exception("storing turn %d failed", record.turn_index)
            await self.error(P.ErrorCode.STORAGE_FAILED, f"turn not stored: {type(exc).__name__}")

    async def _text_out(self, turn_id: int, delta: str) -> None:
        if turn_id == self.turn_id:  # stale answers are dropped here
            await self.send("response.text.delta", turn_id=turn_id, delta=delta)

    async def _audio_out(self, turn_id: int, pcm: bytes, rate: int) -> None:
        if turn_id != self.turn_id:
            return
        seq = self.audio_seq = self.audio_seq + 1 if self.audio_turn == turn_id else 0
        self.audio_turn = turn_id
        if seq == 0:
            await self.send("response.audio.started", turn_id=turn_id, sample_rate=rate)
        await self._send_bytes(P.pack_audio(turn_id, seq, rate, pcm))

    # ---------------------------------------------------------------- shutdown
    async def close(self) -> None:
        await self.interrupt("close")
        if self.audio_in.full():
            self.vad_task.cancel()
        else:
            self.audio_in.put_nowait(None)
        await asyncio.gather(self.vad_task, return_exceptions=True)
        if self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
        if self.user_id:
            await self.svc.db.end_session(self.id)
        self.log.info("closed")

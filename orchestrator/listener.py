"""The listener: audio in → VAD → speech start, pause, resume, end of turn; partial transcripts.

It never waits on a turn: it tells its owner (the session) what the user does through `ListenerEvents`
and keeps listening. Partial transcripts are best effort and yield to the critical path: none starts
once the user has gone quiet, and the one in flight is cancelled when a pause starts the final STT.
The words two successive partials agree on (`agreed_text`, LocalAgreement-2) are the final STT's
forced prefix: a little more accurate on human speech, not faster (CTranslate2 steps through forced
tokens one by one; README).
A failing VAD model falls back to an energy gate (reported once per `error_interval_s`).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Protocol

import numpy as np

from orchestrator.metrics import now
from orchestrator.stages.vad import WINDOW_MS, VadSegmenter
from orchestrator.triton_client import TritonCallError

log = logging.getLogger("orchestrator.listener")


class ListenerEvents(Protocol):
    async def on_speech_started(self) -> None: ...
    async def on_pause(self, audio: np.ndarray, speech_end: float) -> None: ...
    async def on_resume(self) -> None: ...
    async def on_end(self, audio: np.ndarray, speech_end: float) -> None: ...
    async def on_partial(self, text: str) -> None: ...
    async def on_vad_error(self, message: str) -> None: ...


class Listener:
    def __init__(self, session_id: str, gateway, cfg, events: ListenerEvents, responding: Callable[[], bool]):
        self.session_id, self.gateway, self.cfg, self.events = session_id, gateway, cfg, events
        self.responding = responding
        self.vad = VadSegmenter(gateway, cfg.vad_model, cfg.vad_threshold, cfg.vad_min_speech_ms,
                                cfg.vad_end_silence_ms, pause_ms=cfg.speculative_pause_ms,
                                max_utterance_s=cfg.max_utterance_s)
        self.audio_in: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=cfg.max_queued_frames)
        self.partial_task: asyncio.Task | None = None
        self.last_partial = 0.0
        self.partials: list[str] = []  # the partial transcripts of the utterance in progress, in order
        self.last_vad_error = -1e9
        self.manual = False          # no turn detection: audio only collects until force_end (commit)
        self.manual_audio: list[np.ndarray] = []
        self.task = asyncio.create_task(self._loop(), name=f"listener-{session_id}")

    def push(self, pcm: np.ndarray) -> bool:
        """Queue audio; False when the queue is full (audio faster than real time) or, without turn
        detection, when the uncommitted audio exceeds max_utterance_s."""
        if self.manual:  # no VAD to wait for: the audio is ready for a commit at once
            if sum(map(len, self.manual_audio)) + len(pcm) > self.cfg.max_utterance_s * 16000:
                return False
            self.manual_audio.append(pcm)
            return True
        try:
            self.audio_in.put_nowait(pcm)
            return True
        except asyncio.QueueFull:
            return False

    def force_end(self) -> np.ndarray | None:
        """input_audio.commit: the utterance so far, or None."""
        self.cancel_partial()
        if self.manual:
            audio, self.manual_audio = self.manual_audio, []
            return np.concatenate(audio) if audio else None
        event = self.vad.force_end()
        return None if event is None else event.audio

    def set_manual(self, manual: bool) -> None:
        """Switch turn detection off (the client commits) or back on; the turn in progress is dropped."""
        if manual != self.manual:
            self.clear()
            self.manual = manual

    def tune(self, threshold: float, end_silence_ms: int, prefix_ms: int) -> None:
        """Per-session turn detection (a client's session.update); the speculative pause stays shorter
        than the endpoint."""
        self.vad.threshold, self.vad.end_silence_ms, self.vad.preroll_ms = threshold, end_silence_ms, prefix_ms
        if self.cfg.speculative_pause_ms:
            self.vad.pause_ms = max(WINDOW_MS, min(self.cfg.speculative_pause_ms, end_silence_ms - 2 * WINDOW_MS))

    @property
    def agreed_text(self) -> str:
        """The words the last two partials of this utterance start with (each partial saw more audio)."""
        if not self.cfg.stt_prefix_from_partials or len(self.partials) < 2:
            return ""
        agreed = []
        for a, b in zip(self.partials[-2].split(), self.partials[-1].split()):
            if a != b:
                break
            agreed.append(a)
        return " ".join(agreed)

    def clear(self) -> None:
        self.cancel_partial()
        self.partials = []
        self.manual_audio = []
        self.vad.reset()

    def cancel_partial(self) -> None:
        if self.partial_task and not self.partial_task.done():
            self.partial_task.cancel()  # cancels the gRPC call; a queued request is skipped by the model

    async def close(self) -> None:
        self.cancel_partial()
        if self.audio_in.full():
            self.task.cancel()
        else:
            self.audio_in.put_nowait(None)
        await asyncio.gather(self.task, return_exceptions=True)
        if self.partial_task:
            await asyncio.gather(self.partial_task, return_exceptions=True)

    # ------------------------------------------------------------ the loop
    async def _loop(self) -> None:
        while (pcm := await self.audio_in.get()) is not None:
            try:
                await self._feed(pcm)
            except Exception:  # noqa: BLE001 - the listener outlives any single bad window
                log.exception("[session %s] listener: window failed", self.session_id)

    async def _feed(self, pcm: np.ndarray) -> None:
        # while the bot answers, user speech must last longer to count as a barge-in (echo, coughs)
        self.vad.min_speech_ms = self.cfg.barge_in_min_speech_ms if self.responding() else self.cfg.vad_min_speech_ms
        events = await self.vad.feed(pcm)
        if self.vad.last_error is not None and now() - self.last_vad_error > self.cfg.error_interval_s:
            self.last_vad_error = now()
            message = getattr(self.vad.last_error, "message", str(self.vad.last_error))
            await self.events.on_vad_error(f"vad: {message}; using an energy gate until it recovers")
        for event in events:
            speech_end = now() - self.vad.silence_ms / 1000
            if event.kind == "start":
                self.partials = []
                await self.events.on_speech_started()
            elif event.kind == "pause":
                self.cancel_partial()
                await self.events.on_pause(event.audio, speech_end)
            elif event.kind == "resume":
                await self.events.on_resume()
            elif event.kind == "end":
                self.cancel_partial()
                await self.events.on_end(event.audio, now() - self.vad.end_silence_ms / 1000)
        if self.vad.speaking and self.vad.silence_ms == 0:
            self._maybe_partial()

    def _maybe_partial(self) -> None:
        if not self.cfg.stt_enabled or (self.partial_task and not self.partial_task.done()):
            return
        if self.vad.speech_ms < 500 or now() - self.last_partial < self.cfg.partial_interval_ms / 1000:
            return
        self.last_partial = now()
        audio = self.vad.utterance_audio

        async def partial() -> None:
            try:
                result = await self.gateway.transcribe(self.cfg.stt_model, audio, partial=True)
            except TritonCallError:
                return  # partials are best effort; the final transcript reports errors
            self.partials.append(result.text)
            if result.text and self.vad.speaking and self.vad.silence_ms < WINDOW_MS * 2:
                await self.events.on_partial(result.text)

        self.partial_task = asyncio.create_task(partial())

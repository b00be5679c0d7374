"""The voice a session speaks in: the user's saved voice or the stock one, a voice enrolled from a
reference clip (in the background: the session talks on in its current voice until `voice.enrolled`),
a client's choice (the realtime endpoint's session.update), and the reply fallbacks' audio made ready
in the `tts` model's phrase cache for whichever voice is current."""
from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from typing import Awaitable, Callable

import numpy as np

from orchestrator import protocol as P
from orchestrator.metrics import FALLBACK_AUDIO
from orchestrator.stages.respond import prepare_fallbacks
from orchestrator.storage.turns import describe
from orchestrator.triton_client import TritonCallError

REFERENCE_S = (3.0, 15.0)  # a session's voice_reference: seconds of 16 kHz PCM16


class SessionVoice:
    """`spawn(coro)` runs background work the session waits for at its end; `error(code, message)` and
    `send(type, **fields)` are the session's events; `log` names the session."""

    def __init__(self, session_id: str, services, name: str, spawn: Callable[..., asyncio.Task],
                 error: Callable[..., Awaitable[None]], send: Callable[..., Awaitable[None]],
                 log: logging.LoggerAdapter):
        self.session_id, self.svc, self.cfg = session_id, services, services.settings
        self.name = name
        self._spawn, self._error, self._send, self.log = spawn, error, send, log
        self.preparing: asyncio.Task | None = None  # the fallbacks' audio being made for this voice
        self.closed = False

    def use(self, name: str) -> None:
        """Speak in `name` from the next sentence on."""
        if name != self.name:
            self.name = name
            self.prepare_fallbacks()

    def prepare_fallbacks(self) -> None:
        """Have the `tts` model make the reply fallbacks' audio for the current voice into its phrase
        cache, as background work (it yields to every turn's critical path); a voice change or the
        session's end cancels it."""
        if self.preparing is not None:
            self.preparing.cancel()
        if self.closed:  # an enrolment that settles while the session closes
            return
        if self.cfg.fallback_audio_cached and self.cfg.tts_enabled and self.cfg.tts_model:
            self.preparing = self._spawn(self._prepare(self.name))

    async def _prepare(self, voice: str) -> None:
        """Only speed is at stake: a failure is logged, and a fallback is then synthesised when said."""
        started = time.perf_counter()
        try:
            made = await prepare_fallbacks(self.svc.gateway, self.cfg.tts_model, voice, self.cfg.reply_fallbacks,
                                           request_id=f"{self.session_id}-prepare")
        except TritonCallError as exc:
            FALLBACK_AUDIO.labels("failed").inc()
            return self.log.warning("fallback audio not prepared for voice %s: %s", voice, exc.message)
        FALLBACK_AUDIO.labels("ready").inc()
        self.log.info("fallback audio ready for voice %s (%d sentences, %.1f s)", voice, made,
                      time.perf_counter() - started)

    async def enroll(self, user_id: str, b64: str) -> None:
        """Check the reference now (an `error` event if unfit), then fit it in the background: saved as
        the user's voice, announced by `voice.enrolled`, spoken from the next sentence on. The fallbacks'
        audio is made once the enrolment has settled, for the voice the session then speaks in (made
        beside the fit, it slowed it, and for a voice about to be replaced)."""
        try:
            pcm = np.frombuffer(base64.b64decode(b64, validate=True), dtype=np.int16)
        except (binascii.Error, ValueError):
            return await self._refused(P.ErrorCode.VOICE_ENROLL_FAILED, "voice_reference must be base64 PCM16")
        low, high = REFERENCE_S
        if not low <= len(pcm) / 16000 <= high:
            return await self._refused(P.ErrorCode.VOICE_ENROLL_FAILED,
                                       f"voice_reference must be {low:g}–{high:g} s of 16 kHz audio")
        if self.svc.enrollments is not None and not self.svc.enrollments.allow(user_id):
            return await self._refused(P.ErrorCode.RATE_LIMITED, f"more than {self.cfg.enrollments_per_hour} voice "
                                       "enrolments an hour for this user; the session goes on in its current voice")
        self._spawn(self._fit(user_id, pcm))

    async def _refused(self, code: str, message: str) -> None:
        self.prepare_fallbacks()  # the session goes on in its current voice
        await self._error(code, message)

    async def _fit(self, user_id: str, pcm: np.ndarray) -> None:
        voice_id = f"user_{user_id}"
        try:
            info = await self.svc.gateway.enroll_voice(self.cfg.tts_model, voice_id, pcm, 16000)
        except TritonCallError as exc:
            return await self._refused(P.ErrorCode.VOICE_ENROLL_FAILED, exc.message)
        try:  # saved before it is announced: the user's next session starts in it
            await asyncio.wait_for(self.svc.db.set_voice(user_id, voice_id), self.cfg.storage_timeout_s)
        except Exception as exc:  # noqa: BLE001
            await self._error(P.ErrorCode.STORAGE_FAILED, f"the voice serves this session but was not saved "
                                                          f"for later ones ({describe(exc)})")
        self.name = voice_id
        await self._send("voice.enrolled", **info)
        self.prepare_fallbacks()

    def close(self) -> None:
        self.closed = True
        if self.preparing is not None:
            self.preparing.cancel()

"""One conversation over one socket: a `Listener` (VAD, endpointing, partials) and `Turn`s (STT →
recall → LLM → TTS → store), wired together here.

Turn taking: at a short pause the next turn starts speculatively (its output held back); when the
endpoint is confirmed it is committed and its held output flows; if the user speaks on, it is
cancelled in Triton and leaves no trace. User speech while the bot answers is a barge-in: the
committed turn is cancelled (bounded wait) and stored as interrupted.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np
from pydantic import ValidationError

from orchestrator import protocol as P
from orchestrator.listener import Listener
from orchestrator.metrics import BARGE_INS, ERRORS, SPECULATIONS, TurnClock
from orchestrator.session_voice import SessionVoice
from orchestrator.turn import (NEXT_WORDS, MemoryUnavailable, Outbox, Turn, TurnContext, TurnHandle, recall_memories,
                               turn_messages)
from orchestrator.storage.turns import TurnRecord, describe
from orchestrator.triton_client import TritonCallError

log = logging.getLogger("orchestrator.session")


@dataclass
class Services:
    settings: object
    gateway: object
    db: object
    memory: object
    turns: object               # storage.turns.TurnStore: stores (and retries) finished turns
    enrollments: object = None  # auth.RateLimit per user, or None


@dataclass
class ConversationOptions:
    """What a client may change per session (the realtime endpoint's session.update)."""
    instructions: str
    auto_respond: bool = True         # answer when the user's turn ends; else on request_response()
    interrupt_on_speech: bool = True  # the user speaking stops the answer in flight (barge-in)
    speak: bool = True                # False: text replies only


class SessionLog(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        return f"[session {self.extra['session']}] {msg}", kwargs


class VoiceSession:
    def __init__(self, session_id: str, services: Services, send_json: Callable[[dict], Awaitable[None]],
                 send_bytes: Callable[[bytes], Awaitable[None]], key_user: str | None = None):
        self.id, self.svc, self.cfg = session_id, services, services.settings
        self.key_user = key_user  # the user of the client's API key: the only user it may speak as
        self._send_json, self._send_bytes = send_json, send_bytes
        self.log = SessionLog(log, {"session": session_id})
        self.user_id: str | None = None
        self.output_rate = self.cfg.output_sample_rate
        self.turn_id = 0
        self.turn_index = 0
        self.history: list[tuple[str, str]] = []
        self.options = ConversationOptions(self.cfg.system_prompt)
        self.unanswered: list[str] = []                # user words not answered yet (auto_respond off, typed text)
        self.current: TurnHandle | None = None       # the committed turn (answering, or done)
        self.speculative: TurnHandle | None = None   # started at a pause, not committed yet
        self.transcribing: TurnHandle | None = None  # a transcription whose answer waits (auto_respond off)
        self.prefilling: asyncio.Task | None = None  # the LLM evaluating the prompt of the turn being spoken
        self.recalled: tuple[str, list] | None = None  # (partial, memories) the latest prefill recalled
        self.background: set[asyncio.Task] = set()
        self.closed = False
        self._error_window, self._errors_sent, self._errors_dropped = 0.0, 0, 0
        self.listener = Listener(session_id, services.gateway, self.cfg, self, lambda: self.responding)
        self.voice = SessionVoice(session_id, services, self.cfg.tts_voice, self._spawn, self.error, self.send,
                                  self.log)

    # ---------------------------------------------------------------- transport helpers
    async def send(self, type_: str, **fields) -> None:
        await self._send_json(P.server_event(type_, **fields))

    async def error(self, code: str, message: str, turn_id: int | None = None) -> None:
        """An error event; past `max_errors_per_s` in one second the rest are counted, and the next
        error after that second says how many were left out (a flood never floods the client or log)."""
        ERRORS.labels(code).inc()
        now = time.monotonic()
        if now - self._error_window >= 1.0:
            self._error_window, self._errors_sent = now, 0
        if self._errors_sent >= self.cfg.max_errors_per_s:
            self._errors_dropped += 1
            if self._errors_dropped == 1:  # one summary at the end of this second
                self._spawn(self._error_summary(self._error_window + 1.0 - now))
            return
        self._errors_sent += 1
        self.log.warning("error %s: %s", code, message)
        await self._send_json(P.error_event(code, message, turn_id))

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    @property
    def responding(self) -> bool:
        return self.current is not None and not self.current.ended and self.current.turn.answer

    # ---------------------------------------------------------------- inbound
    async def _error_summary(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        dropped, self._errors_dropped = self._errors_dropped, 0
        self.log.warning("%d error events not sent (more than %d a second)", dropped, self.cfg.max_errors_per_s)
        await self._send_json(P.error_event(P.ErrorCode.TOO_MANY_ERRORS,
                                            f"{dropped} more errors in that second were not sent"))

    async def handle_text(self, raw: str) -> None:
        if self.closed:
            return await self.error(P.ErrorCode.SESSION_ENDED, "the session has ended")
        if len(raw) > self.cfg.max_text_bytes:
            return await self.error(P.ErrorCode.FRAME_TOO_LARGE,
                                    f"text frame of {len(raw)} characters > {self.cfg.max_text_bytes}")
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
            await self.commit_input()
        elif isinstance(event, P.InputAudioClear):
            await self.clear_input()
        elif isinstance(event, P.ResponseCancel):
            await self.interrupt("client")
        elif isinstance(event, P.SessionEnd):
            await self.close()

    async def handle_audio(self, data: bytes) -> None:
        if self.closed:
            return await self.error(P.ErrorCode.SESSION_ENDED, "the session has ended: audio is not taken")
        if self.user_id is None:
            return await self.error(P.ErrorCode.NOT_STARTED, "send session.start before audio")
        if len(data) > self.cfg.max_frame_bytes:
            return await self.error(P.ErrorCode.FRAME_TOO_LARGE,
                                    f"audio frame of {len(data)} bytes > {self.cfg.max_frame_bytes}")
        if len(data) == 0 or len(data) % 2:
            return await self.error(P.ErrorCode.BAD_AUDIO_FRAME, "audio frames are PCM16: an even, non-zero length")
        if not self.listener.push(np.frombuffer(data, dtype=np.int16).copy()):
            await self.error(P.ErrorCode.BAD_AUDIO_FRAME, "audio arriving faster than real time; frame dropped")

    async def commit_input(self) -> bool:
        """End the user's turn now (push-to-talk release); False when no audio is waiting."""
        audio = self.listener.force_end()
        if audio is None or len(audio) == 0:
            return False
        await self.on_end(audio, time.monotonic())
        return True

    async def clear_input(self) -> None:
        self.listener.clear()
        await self._drop_speculation()

    async def start(self, event: P.SessionStart) -> None:
        if self.user_id is not None:
            return await self.error(P.ErrorCode.ALREADY_STARTED, "session already started")
        user_id = event.user_id or self.key_user
        if user_id is None:
            return await self.error(P.ErrorCode.INVALID_EVENT, "user_id: required without an API key")
        if self.key_user is not None and user_id != self.key_user:
            return await self.error(P.ErrorCode.SESSION_FORBIDDEN, "user_id differs from the API key's user")
        bound = self.cfg.storage_timeout_s
        try:
            user = await asyncio.wait_for(self.svc.db.start_session(self.id, user_id), bound)
            turn_index = await asyncio.wait_for(self.svc.db.next_turn_index(self.id), bound)
        except PermissionError as exc:
            return await self.error(P.ErrorCode.SESSION_FORBIDDEN, str(exc))
        except Exception as exc:  # noqa: BLE001 - unreachable or stalled MariaDB: the client may try again
            self.log.warning("session start failed: %s", describe(exc))
            return await self.error(P.ErrorCode.STORAGE_FAILED,
                                    f"the database is unavailable ({describe(exc)}); send session.start again later")
        self.user_id, self.turn_index = user_id, turn_index
        self.output_rate = event.output_sample_rate or self.output_rate
        self.voice.name = user.voice_id or self.voice.name
        self.log.info("started for user %s (voice %s)", self.user_id, self.voice.name)
        await self.send("session.started", session_id=self.id, user_id=self.user_id, voice=self.voice.name,
                        input_sample_rate=16000, output_sample_rate=self.output_rate)
        if event.voice_reference:
            await self.voice.enroll(self.user_id, event.voice_reference)
        else:
            self.voice.prepare_fallbacks()

    # ---------------------------------------------------------------- listener events
    async def on_speech_started(self) -> None:
        self.recalled = None  # a new utterance: the memories of the last one's words are not its own
        if self.responding and self.options.interrupt_on_speech:
            await self.interrupt("speech")
        await self.send("speech.started", turn_id=self.turn_id + 1)

    async def on_partial(self, text: str) -> None:
        await self.send("transcript.partial", turn_id=self.turn_id + 1, text=text)
        if (self.cfg.llm_enabled and self.cfg.llm_prefill_from_partials and self.options.auto_respond
                and self.user_id and not self.responding and (self.prefilling is None or self.prefilling.done())):
            self.prefilling = self._spawn(self._prefill(text))

    def _answered(self, user: str, reply: str) -> None:
        """A reply is made and has yet to play: meanwhile the LLM evaluates the next turn's prompt up to
        the user's words, this exchange in its history. When the history window moves on, the whole
        history is evaluated anew (1.9 and 3.4 s to the LLM's first token on a Zen 3 VM, where the partials'
        prefill had not done it in time)."""
        if (self.cfg.llm_enabled and self.cfg.llm_prefill_after_reply and self.options.auto_respond
                and not self.closed and (self.prefilling is None or self.prefilling.done())):
            self.prefilling = self._spawn(self._prefill(NEXT_WORDS, [*self.history, (user, reply)]))

    async def _prefill(self, partial: str, history: list | None = None) -> None:
        """Best effort, beside the user's speech: the LLM evaluates this turn's prompt up to the words
        heard so far, so that the turn's own prompt costs only its last words (llm.prefill). With
        `history` (after a reply: the words are a placeholder) no memories are recalled."""
        try:
            hits = []
            if history is None:
                hits = await recall_memories(self.svc, self.user_id, self.id, partial)
                self.recalled = (partial, hits)
            messages = turn_messages(self.cfg, self.options.instructions, self.history if history is None else history,
                                     hits, partial)
            info = await self.svc.gateway.llm_prefill(self.cfg.llm_model, messages, request_id=f"{self.id}-prefill")
            self.log.debug("prefill: %s", info)
        except (TritonCallError, MemoryUnavailable) as exc:  # the turn evaluates its whole prompt instead
            self.log.info("prefill skipped: %s", exc)
        except Exception:  # noqa: BLE001 - best effort: never the session's end, always in the log
            self.log.exception("prefill failed")

    async def on_vad_error(self, message: str) -> None:
        await self.error(P.ErrorCode.STAGE_FAILED, message)

    async def on_pause(self, audio: np.ndarray, speech_end: float) -> None:
        """Speculative end of turn: run the models now, speak only once the endpoint is confirmed."""
        await self._drop_speculation()
        self.speculative = self._start_turn(audio, speech_end, speculative=True, answer=self.options.auto_respond)

    async def on_resume(self) -> None:
        if self.speculative is not None:
            SPECULATIONS.labels("cancelled").inc()
            self.log.info("user went on: speculative turn %d cancelled", self.speculative.turn_id)
        await self._drop_speculation()

    async def on_end(self, audio: np.ndarray, speech_end: float) -> None:
        handle, self.speculative = self.speculative, None
        if self.responding and (self.options.auto_respond or self.options.interrupt_on_speech):
            await self.interrupt("speech")
        if handle is None or handle.turn_id != self.turn_id + 1:
            if handle is not None:
                await handle.cancel(self.cfg.turn_cancel_timeout_s)
            handle = self._start_turn(audio, speech_end, speculative=False, answer=self.options.auto_respond)
        if handle.speculative:
            SPECULATIONS.labels("committed").inc()
        self.turn_id = handle.turn_id
        await self.send("speech.stopped", turn_id=self.turn_id, audio_ms=len(audio) * 1000 // 16000,
                        speculative=handle.speculative)
        if handle.turn.answer:
            self.current = handle
        else:
            self.transcribing = handle
        await handle.commit()

    async def _drop_speculation(self) -> None:
        handle, self.speculative = self.speculative, None
        if handle is not None:
            await handle.cancel(self.cfg.turn_cancel_timeout_s)

    def add_user_text(self, text: str) -> None:
        """A typed user message: answered by the next request_response() (or with the next spoken turn)."""
        self.unanswered.append(text)

    async def request_response(self, instructions: str | None = None) -> bool:
        """Answer what the user said or typed since the last answer; False (and an error) if busy."""
        if self.responding:
            await self.error(P.ErrorCode.RESPONSE_ACTIVE, "a response is already in progress; cancel it first")
            return False
        self._spawn(self._answer_unanswered(instructions))
        return True

    async def _answer_unanswered(self, instructions: str | None) -> None:
        if self.transcribing is not None:  # the words just committed: a bounded wait for their transcript
            await self.transcribing.wait(self.cfg.triton_timeout_s)
        if not self.unanswered:
            return await self.error(P.ErrorCode.NO_INPUT, "nothing new to answer: speak, commit audio or add a "
                                                          "user message first")
        text, self.unanswered = " ".join(self.unanswered), []
        handle = self._start_turn(np.zeros(0, np.int16), time.monotonic(), speculative=False, text=text,
                                  instructions=instructions)
        self.turn_id, self.current = handle.turn_id, handle
        await handle.commit()

    def _start_turn(self, audio: np.ndarray, speech_end: float, *, speculative: bool, answer: bool = True,
                    text: str | None = None, instructions: str | None = None) -> TurnHandle:
        def remember(user: str, assistant: str) -> None:
            self.history.append((user, assistant))

        def next_index() -> int:
            self.turn_index += 1
            return self.turn_index - 1

        ctx = TurnContext(self.id, self.user_id, self.voice.name, self.output_rate, list(self.history),
                          instructions or self.options.instructions, self.options.speak,
                          lambda record: self._spawn(self._store(record)),
                          remember, next_index, heard=self.unanswered.append, recalled=lambda: self.recalled,
                          answered=self._answered)
        turn = Turn(self.turn_id + 1, audio, TurnClock(speech_end=speech_end), ctx, self.svc,
                    Outbox(self._send_any), text_input=text, answer=answer,
                    stt_prefix=self.listener.agreed_text if text is None else "",
                    stt_vad=self.listener.manual or self.cfg.stt_whisper_vad)
        return TurnHandle(turn, speculative=speculative)

    async def _send_any(self, item: dict | bytes) -> None:
        await (self._send_bytes(item) if isinstance(item, bytes) else self._send_json(item))

    async def interrupt(self, reason: str) -> None:
        """Barge-in: cancel the answer in flight; its Triton streams are cancelled with it."""
        handle = self.current
        if handle is None or handle.ended:
            return
        BARGE_INS.inc()
        self.log.info("barge-in (%s) cancels turn %d", reason, handle.turn_id)
        await handle.cancel(self.cfg.turn_cancel_timeout_s)

    async def _store(self, record: TurnRecord) -> None:
        async def report(message: str) -> None:  # a turn that waits for a retry, or is lost
            await self.error(P.ErrorCode.STORAGE_FAILED, message)

        await self.svc.turns.store(record, report)

    # ---------------------------------------------------------------- shutdown
    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.voice.close()
        if self.prefilling is not None:
            self.prefilling.cancel()
        await self._drop_speculation()
        await self.interrupt("close")
        if self.transcribing is not None:
            await self.transcribing.cancel(self.cfg.turn_cancel_timeout_s)
        await self.listener.close()
        if self.current is not None:
            await self.current.wait(self.cfg.turn_cancel_timeout_s)
        if self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
        if self.user_id:
            try:
                await asyncio.wait_for(self.svc.db.end_session(self.id), self.cfg.storage_timeout_s)
            except Exception as exc:  # noqa: BLE001 - the session row keeps ended_at empty
                self.log.warning("could not mark the session ended: %s", describe(exc))
        self.log.info("closed")

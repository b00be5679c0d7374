"""`/v1/realtime`: the OpenAI Realtime protocol (GA and beta dialects) over the same `VoiceSession`
(listener + turns) as `/ws/voice`. This module only translates: client events become session calls,
the session's events become Realtime events. No turn logic lives here.

Audio in is PCM16 24 kHz (base64), resampled to the pipeline's 16 kHz as a stream; replies are
synthesised at 24 kHz. Each user turn is a conversation item; each answer is a response with one
assistant item whose content part carries the audio and its transcript (or text, text-only).
"""
from __future__ import annotations

import base64
import binascii
import contextvars
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import numpy as np
import soxr

from orchestrator import protocol as P
from orchestrator.realtime.config import RATE, ConfigError, RealtimeConfig
from orchestrator.session import Services, VoiceSession

log = logging.getLogger("orchestrator.realtime")

CLIENT_EVENT = contextvars.ContextVar("client_event_id", default=None)  # errors name the event that caused them
SERVER_ERRORS = {P.ErrorCode.STAGE_FAILED, P.ErrorCode.STORAGE_FAILED, P.ErrorCode.VOICE_ENROLL_FAILED}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:22]}"


DIALECT_NAMES = {  # name -> (GA, beta)
    "audio_delta": ("response.output_audio.delta", "response.audio.delta"),
    "audio_done": ("response.output_audio.done", "response.audio.done"),
    "transcript_delta": ("response.output_audio_transcript.delta", "response.audio_transcript.delta"),
    "transcript_done": ("response.output_audio_transcript.done", "response.audio_transcript.done"),
    "text_delta": ("response.output_text.delta", "response.text.delta"),
    "text_done": ("response.output_text.done", "response.text.done"),
    "item_added": ("conversation.item.added", "conversation.item.created"),
    "audio_part": ("output_audio", "audio"),
    "text_part": ("output_text", "text"),
}


@dataclass
class Names:
    """Event and content names that differ between the dialects."""
    beta: bool

    def __getattr__(self, name: str) -> str:
        return DIALECT_NAMES[name][self.beta]


@dataclass
class Response:
    id: str
    item_id: str
    text: str = ""
    audio_samples: int = 0
    cancelled_by_client: bool = False


@dataclass
class UserItem:
    id: str
    partial: str = ""
    audio_ms: int = 0
    content: list = field(default_factory=lambda: [{"type": "input_audio", "transcript": None}])


class RealtimeConnection:
    def __init__(self, services: Services, send_text: Callable[[str], Awaitable[None]], *, beta: bool, user_id: str,
                 model: str):
        self.svc, self.cfg, self.beta, self.user_id = services, services.settings, beta, user_id
        self.names = Names(beta)
        self._send_text = send_text
        self.config = RealtimeConfig(new_id("sess"), model, self.cfg.system_prompt)
        self.session = VoiceSession(self.config.session_id, services, self._on_session_event, self._on_session_audio,
                                    key_user=user_id)
        self.resampler = soxr.ResampleStream(RATE, 16000, 1, dtype="int16")
        self.input_samples = 0                       # 24 kHz samples received (audio_start_ms / audio_end_ms)
        self.user_items: dict[int, UserItem] = {}    # turn id → the user's item
        self.responses: dict[int, Response] = {}     # turn id → the answer
        self.last_item_id: str | None = None
        self.items: dict[str, dict] = {}             # item id → the item as last sent (conversation.item.retrieve)
        self.own_voice = self.cfg.tts_voice          # the session's voice before any session.update

    # ---------------------------------------------------------------- lifecycle
    async def open(self) -> bool:
        """Start the session (session.created); False if it could not start (an error event says why)."""
        await self.session.start(P.SessionStart(type="session.start", user_id=self.user_id, output_sample_rate=RATE))
        self.own_voice = self.session.voice.name
        return self.session.user_id is not None

    async def close(self) -> None:
        await self.session.close()

    async def emit(self, type_: str, **fields) -> None:
        await self._send_text(json.dumps({"type": type_, "event_id": new_id("event"), **fields}, ensure_ascii=False))

    async def error(self, code: str, message: str, param: str | None = None, kind: str = "invalid_request_error"):
        await self.emit("error", error={"type": kind, "code": code, "message": message, "param": param,
                                        "event_id": CLIENT_EVENT.get()})

    # ---------------------------------------------------------------- client → server
    async def handle_text(self, raw: str) -> None:
        if len(raw) > self.cfg.max_text_bytes:
            return await self.error("event_too_large", f"an event of {len(raw)} characters > {self.cfg.max_text_bytes}")
        try:
            event = json.loads(raw)
        except ValueError:
            return await self.error("invalid_json", "events are JSON objects")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return await self.error("invalid_event", "an event is an object with a string \"type\"", "type")
        event_id = event.get("event_id")
        CLIENT_EVENT.set(event_id if isinstance(event_id, str) else None)
        handler = self.HANDLERS.get(event["type"])
        if handler is None:
            return await self.error("unknown_event", f"unsupported event type {event['type']!r}", "type")
        try:
            await handler(self, event)
        except ConfigError as exc:
            await self.error("invalid_value", str(exc), exc.param)
        finally:
            CLIENT_EVENT.set(None)

    async def handle_bytes(self, _data: bytes) -> None:
        await self.error("invalid_event", "binary frames are not part of this protocol: send "
                                          "input_audio_buffer.append with base64 PCM16")

    async def _session_update(self, event: dict) -> None:
        self.config.update(event.get("session"), self.beta)
        options, detection = self.session.options, self.config.turn_detection
        options.instructions = self.config.instructions
        options.speak = not self.config.text_only
        options.auto_respond = detection is not None and detection.create_response
        options.interrupt_on_speech = detection is not None and detection.interrupt_response
        self.session.listener.set_manual(detection is None)
        if detection is not None:
            self.session.listener.tune(detection.threshold, detection.silence_duration_ms,
                                       detection.prefix_padding_ms)
        self.session.voice.use(self.config.server_voice or self.own_voice)
        await self.emit("session.updated", session=self.config.render(self.beta))

    async def _append(self, event: dict) -> None:
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            return await self.error("invalid_value", "audio must be base64 PCM16", "audio")
        if not data or len(data) % 2:
            return await self.error("invalid_value", "audio must be PCM16: an even, non-zero byte count", "audio")
        pcm24 = np.frombuffer(data, dtype=np.int16)
        self.input_samples += len(pcm24)
        pcm16k = self.resampler.resample_chunk(pcm24)
        step = self.cfg.max_frame_bytes // 2
        for start in range(0, len(pcm16k), step):
            await self.session.handle_audio(pcm16k[start:start + step].tobytes())

    async def _commit(self, _event: dict) -> None:
        if not await self.session.commit_input():
            await self.error("input_audio_buffer_commit_empty", "no audio to commit: the buffer is empty (with "
                                                                "server_vad, only speech in progress is buffered)")

    async def _clear(self, _event: dict) -> None:
        await self.session.clear_input()
        await self.emit("input_audio_buffer.cleared")

    async def _item_create(self, event: dict) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type", "message") != "message" or item.get("role") != "user":
            return await self.error("invalid_value", "only user messages can be added", "item")
        parts = item.get("content")
        texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") in ("input_text", "text")] \
            if isinstance(parts, list) else []
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts) or len(texts) != len(parts):
            return await self.error("invalid_value", "user messages here carry input_text parts only", "item.content")
        text = " ".join(t.strip() for t in texts)[:2000]
        self.session.add_user_text(text)
        user_item = UserItem(item.get("id") if isinstance(item.get("id"), str) else new_id("item"),
                             content=[{"type": "input_text", "text": text}])
        await self._item_added(user_item, done=True)

    async def _response_create(self, event: dict) -> None:
        options = event.get("response") or {}
        if not isinstance(options, dict):
            return await self.error("invalid_value", "response must be an object", "response")
        if options.get("conversation") == "none":
            return await self.error("invalid_value", "out-of-band responses are not supported", "response.conversation")
        instructions = options.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            return await self.error("invalid_value", "instructions must be a string", "response.instructions")
        await self.session.request_response(instructions)

    async def _response_cancel(self, _event: dict) -> None:
        if not self.session.responding:
            return await self.error("response_cancel_not_active", "there is no response in progress to cancel")
        response = self.responses.get(self.session.current.turn_id)
        if response is not None:
            response.cancelled_by_client = True
        await self.session.interrupt("client")

    async def _truncate(self, event: dict) -> None:
        item_id, audio_end_ms = event.get("item_id"), event.get("audio_end_ms")
        response = next((r for r in self.responses.values() if r.item_id == item_id), None)
        if response is None:
            return await self.error("item_not_found", f"no assistant item {item_id!r}", "item_id")
        if isinstance(audio_end_ms, bool) or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            return await self.error("invalid_value", "audio_end_ms must be a non-negative integer", "audio_end_ms")
        # a client's playback clock may run past what was sent: what was heard is at most all of it
        audio_end_ms = min(audio_end_ms, response.audio_samples * 1000 // RATE)
        await self.emit("conversation.item.truncated", item_id=item_id, content_index=event.get("content_index", 0),
                        audio_end_ms=audio_end_ms)

    async def _retrieve(self, event: dict) -> None:
        item = self.items.get(event.get("item_id"))
        if item is None:
            return await self.error("item_not_found", f"no item {event.get('item_id')!r}", "item_id")
        await self.emit("conversation.item.retrieved", item=item)

    HANDLERS = {"session.update": _session_update, "input_audio_buffer.append": _append,
                "input_audio_buffer.commit": _commit, "input_audio_buffer.clear": _clear,
                "conversation.item.create": _item_create, "response.create": _response_create,
                "response.cancel": _response_cancel, "conversation.item.truncate": _truncate,
                "conversation.item.retrieve": _retrieve}

    # ---------------------------------------------------------------- session → client
    async def _on_session_event(self, event: dict) -> None:
        kind, turn_id = event["type"], event.get("turn_id")
        if kind == "session.started":
            await self.emit("session.created", session=self.config.render(self.beta))
        elif kind == "error":
            server_side = event["code"] in SERVER_ERRORS
            await self.error(event["code"], event["message"], kind="server_error" if server_side else
                             "invalid_request_error")
        elif kind == "speech.started":
            item = self.user_items.setdefault(turn_id, UserItem(new_id("item")))
            await self.emit("input_audio_buffer.speech_started", item_id=item.id,
                            audio_start_ms=max(0, self.input_samples * 1000 // RATE - self._prefix_ms()))
        elif kind == "transcript.partial":
            await self._partial(self.user_items.setdefault(turn_id, UserItem(new_id("item"))), event["text"])
        elif kind == "speech.stopped":
            self.user_items.setdefault(turn_id, UserItem(new_id("item"))).audio_ms = event["audio_ms"]
            await self._committed(turn_id)
        elif kind == "transcript.final":
            item = self.user_items.setdefault(turn_id, UserItem(new_id("item")))
            item.content = [{"type": "input_audio", "transcript": event["text"]}]
            await self.emit("conversation.item.input_audio_transcription.completed", item_id=item.id,
                            content_index=0, transcript=event["text"],
                            usage={"type": "duration", "seconds": item.audio_ms / 1000})
            if not self.beta:
                await self.emit("conversation.item.done", item=self._user_item(item))
        elif kind == "response.started":
            await self._response(turn_id)
        elif kind == "response.text.delta":
            response = await self._response(turn_id)
            response.text += event["delta"]
            name = self.names.text_delta if self.config.text_only else self.names.transcript_delta
            await self.emit(name, **self._where(response), delta=event["delta"])
        elif kind == "response.done":
            await self._response_done(turn_id, event["status"])

    async def _on_session_audio(self, frame: bytes) -> None:
        turn_id, _seq, _rate, pcm = P.unpack_audio(frame)
        response = await self._response(turn_id)
        response.audio_samples += len(pcm) // 2
        await self.emit(self.names.audio_delta, **self._where(response), delta=base64.b64encode(pcm).decode())

    def _prefix_ms(self) -> int:
        detection = self.config.turn_detection
        return detection.prefix_padding_ms if detection else 0

    async def _partial(self, item: UserItem, text: str) -> None:
        """Our partials are whole re-transcriptions; `delta` is what extends the previous one (empty when
        Whisper revised it) and `transcript` (our addition) is the full partial."""
        delta = text[len(item.partial):] if text.startswith(item.partial) else ""
        item.partial = text
        await self.emit("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0,
                        delta=delta, transcript=text)

    async def _committed(self, turn_id: int) -> None:
        item = self.user_items.setdefault(turn_id, UserItem(new_id("item")))
        if self.config.turn_detection is not None:
            await self.emit("input_audio_buffer.speech_stopped", item_id=item.id,
                            audio_end_ms=self.input_samples * 1000 // RATE)
        await self.emit("input_audio_buffer.committed", item_id=item.id, previous_item_id=self.last_item_id)
        await self._item_added(item, done=False)

    async def _item_added(self, item: UserItem, done: bool) -> None:
        previous, self.last_item_id = self.last_item_id, item.id
        await self.emit(self.names.item_added, previous_item_id=previous, item=self._user_item(item))
        if done and not self.beta:
            await self.emit("conversation.item.done", item=self._user_item(item))

    def _user_item(self, item: UserItem) -> dict:
        self.items[item.id] = {"id": item.id, "object": "realtime.item", "type": "message", "role": "user",
                               "status": "completed", "content": item.content}
        return self.items[item.id]

    def _where(self, response: Response) -> dict:
        return {"response_id": response.id, "item_id": response.item_id, "output_index": 0, "content_index": 0}

    def _assistant_item(self, response: Response, status: str) -> dict:
        part = ({"type": self.names.text_part, "text": response.text} if self.config.text_only
                else {"type": self.names.audio_part, "transcript": response.text})
        self.items[response.item_id] = {"id": response.item_id, "object": "realtime.item", "type": "message",
                                        "role": "assistant", "status": status,
                                        "content": [part] if status != "in_progress" else []}
        return self.items[response.item_id]

    def _part(self, response: Response) -> dict:
        """A content part as response.content_part.* carry it (the same names in both dialects)."""
        return {"type": "text", "text": response.text} if self.config.text_only else \
            {"type": "audio", "transcript": response.text}

    def _response_object(self, response: Response, status: str, output: list, details: dict | None = None) -> dict:
        modalities = ["text"] if self.config.text_only else (["audio", "text"] if self.beta else ["audio"])
        return {"id": response.id, "object": "realtime.response", "status": status, "status_details": details,
                "output": output, ("modalities" if self.beta else "output_modalities"): modalities, "usage": None}

    async def _response(self, turn_id: int) -> Response:
        """The response of a turn, announced (created, output item, content part) on first use."""
        if turn_id in self.responses:
            return self.responses[turn_id]
        response = self.responses[turn_id] = Response(new_id("resp"), new_id("item"))
        await self.emit("response.created", response=self._response_object(response, "in_progress", []))
        item = self._assistant_item(response, "in_progress")
        await self.emit("response.output_item.added", response_id=response.id, output_index=0, item=item)
        previous, self.last_item_id = self.last_item_id, response.item_id
        await self.emit(self.names.item_added, previous_item_id=previous, item=item)
        await self.emit("response.content_part.added", **self._where(response), part=self._part(response))
        return response

    async def _response_done(self, turn_id: int, status: str) -> None:
        if status == "empty" and turn_id not in self.responses:
            return  # silence or noise: no answer at all
        response = await self._response(turn_id)
        where = self._where(response)
        if self.config.text_only:
            await self.emit(self.names.text_done, **where, text=response.text)
        else:
            await self.emit(self.names.audio_done, **where)
            await self.emit(self.names.transcript_done, **where, transcript=response.text)
        final, details = {"completed": ("completed", None), "empty": ("completed", None),
                          "interrupted": ("cancelled", {"type": "cancelled", "reason": "client_cancelled"
                                                        if response.cancelled_by_client else "turn_detected"}),
                          "failed": ("failed", {"type": "failed", "error": {"type": "server_error",
                                                                           "code": "stage_failed"}})}[status]
        item = self._assistant_item(response, "completed" if final == "completed" else "incomplete")
        await self.emit("response.content_part.done", **where, part=self._part(response))
        await self.emit("response.output_item.done", response_id=response.id, output_index=0, item=item)
        if not self.beta:
            await self.emit("conversation.item.done", item=item)
        await self.emit("response.done", response=self._response_object(response, final, [item], details))

"""The one event vocabulary of the voice socket (JSON text frames) + the binary audio framing.

Client → server
  binary frame                 PCM16 little-endian mono 16 kHz, even length, ≤ MAX_FRAME_BYTES
  {"type": "session.start", "user_id": "u1"?, "voice_reference": "<base64 PCM16 16 kHz, 3–15 s>"?,
   "output_sample_rate": 24000|16000?}
  {"type": "input_audio.commit"}     end the user's turn now (push-to-talk release)
  {"type": "input_audio.clear"}      drop the audio of the turn in progress
  {"type": "response.cancel"}        stop the bot's answer (client-side barge-in)
  {"type": "session.end"}
Server → client
  session.started, voice.enrolled, speech.started, speech.stopped {speculative}, transcript.partial,
  transcript.final, response.started, response.text.delta, response.audio.started,
  response.done {status: completed|interrupted|empty|failed}, error
  binary frame: AUDIO_HEADER (magic b"VAUD", turn_id u32, seq u32, sample_rate u32) + PCM16 mono
"""
from __future__ import annotations

import struct
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
AUDIO_HEADER = struct.Struct("<4sIII")
AUDIO_MAGIC = b"VAUD"


class ClientEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionStart(ClientEvent):
    type: Literal["session.start"]
    user_id: str | None = Field(None, pattern=ID_PATTERN)  # with API keys: the key's user (may be omitted)
    voice_reference: str | None = Field(None, max_length=1_000_000)  # base64 PCM16 16 kHz
    output_sample_rate: Literal[24000, 16000] | None = None


class InputAudioCommit(ClientEvent):
    type: Literal["input_audio.commit"]


class InputAudioClear(ClientEvent):
    type: Literal["input_audio.clear"]


class ResponseCancel(ClientEvent):
    type: Literal["response.cancel"]


class SessionEnd(ClientEvent):
    type: Literal["session.end"]


ClientMessage = Annotated[Union[SessionStart, InputAudioCommit, InputAudioClear, ResponseCancel, SessionEnd],
                          Field(discriminator="type")]
client_message = TypeAdapter(ClientMessage)


def server_event(type_: str, **fields: Any) -> dict:
    """Every server event is {"type": ..., ...fields}; types are listed in the module docstring."""
    return {"type": type_, **{k: v for k, v in fields.items() if v is not None}}


class ErrorCode:
    BAD_JSON = "bad_json"
    UNKNOWN_EVENT = "unknown_event"
    INVALID_EVENT = "invalid_event"
    BAD_AUDIO_FRAME = "bad_audio_frame"
    FRAME_TOO_LARGE = "frame_too_large"
    NOT_STARTED = "session_not_started"
    ALREADY_STARTED = "session_already_started"
    BAD_SESSION_ID = "bad_session_id"
    SESSION_FORBIDDEN = "session_forbidden"
    SESSION_BUSY = "session_busy"
    SESSION_ENDED = "session_ended"
    TOO_MANY_ERRORS = "too_many_errors"
    SERVER_BUSY = "server_busy"
    RATE_LIMITED = "rate_limited"
    START_TIMEOUT = "start_timeout"
    UTTERANCE_TOO_LONG = "utterance_too_long"
    STAGE_FAILED = "stage_failed"
    VOICE_ENROLL_FAILED = "voice_enroll_failed"
    STORAGE_FAILED = "storage_failed"
    RESPONSE_ACTIVE = "conversation_already_has_active_response"
    NO_INPUT = "no_user_input"


def error_event(code: str, message: str, turn_id: int | None = None) -> dict:
    return server_event("error", code=code, message=message, turn_id=turn_id)


def pack_audio(turn_id: int, seq: int, sample_rate: int, pcm: bytes) -> bytes:
    return AUDIO_HEADER.pack(AUDIO_MAGIC, turn_id, seq, sample_rate) + pcm


def unpack_audio(frame: bytes) -> tuple[int, int, int, bytes]:
    magic, turn_id, seq, rate = AUDIO_HEADER.unpack_from(frame)
    if magic != AUDIO_MAGIC:
        raise ValueError("not an audio frame")
    return turn_id, seq, rate, frame[AUDIO_HEADER.size:]

"""Fast unit layer for /v1/realtime: the protocol adapter over a real VoiceSession and a scripted fake
gateway. Both dialects, turn detection modes, cancel, text input and every bad input. The same
endpoint is tested with the official SDKs and a browser against real Triton in test_realtime_clients.py."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from orchestrator.realtime.adapter import RealtimeConnection
from orchestrator.settings import Settings
from tests.fakes.gateway import FakeGateway, fake_services
from tests.fakes.recorder import EventRecorder

CHUNK = 960  # 40 ms at 24 kHz
LOUD = base64.b64encode(np.full(CHUNK, 8000, np.int16).tobytes()).decode()
QUIET = base64.b64encode(np.zeros(CHUNK, np.int16).tobytes()).decode()


class Realtime(EventRecorder):
    def __init__(self, gateway: FakeGateway | None = None, beta: bool = False, **settings):
        super().__init__()
        self.gw = gateway or FakeGateway()
        # the fallbacks' audio prepared at session start would add TTS calls to every count (tested on its own)
        cfg = Settings(_env_file=None, **{"partial_interval_ms": 100000, "fallback_audio_cached": False, **settings})
        self.conn = RealtimeConnection(fake_services(cfg, self.gw), self._text, beta=beta,
                                       user_id="u1", model="test-model")

    async def _text(self, raw: str) -> None:
        self.record(json.loads(raw))

    async def send(self, type_: str, **fields) -> None:
        await self.conn.handle_text(json.dumps({"type": type_, **fields}))

    async def audio(self, chunk: str, n: int) -> None:
        for _ in range(n):
            await self.send("input_audio_buffer.append", audio=chunk)
        await self.drain_listener(self.conn.session.listener)

    async def speak(self) -> None:
        await self.audio(LOUD, 15)
        await self.audio(QUIET, 25)


@pytest.fixture
async def rt():
    session = Realtime()
    await session.conn.open()
    yield session
    await session.conn.close()


async def test_ga_spoken_turn_speaks_the_ga_dialect_with_an_event_id_on_every_event(rt):
    assert rt.events[0]["type"] == "session.created"
    assert rt.events[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    await rt.speak()
    done = await rt.wait_for("response.done")
    assert done["response"]["status"] == "completed"
    types = rt.types()
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
             "conversation.item.added", "conversation.item.input_audio_transcription.completed", "response.created",
             "response.output_item.added", "response.content_part.added", "response.output_audio_transcript.delta",
             "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.done",
             "response.content_part.done", "response.output_item.done", "response.done"]
    assert [types.index(t) for t in order] == sorted(types.index(t) for t in order), types
    assert not [t for t in types if t.startswith("response.audio")], "beta names leaked into GA"
    assert all(e["event_id"].startswith("event_") for e in rt.events)
    assert len({e["event_id"] for e in rt.events}) == len(rt.events)
    user_item = rt.of("input_audio_buffer.committed")[0]["item_id"]
    assert rt.of("conversation.item.input_audio_transcription.completed")[0] == {
        **rt.of("conversation.item.input_audio_transcription.completed")[0], "item_id": user_item,
        "transcript": "안녕하세요"}
    transcript = "".join(e["delta"] for e in rt.of("response.output_audio_transcript.delta"))
    assert transcript == "네, 반가워요. 좋은 하루예요." and done["response"]["output"][0]["content"][0]["transcript"] == transcript
    audio = b"".join(base64.b64decode(e["delta"]) for e in rt.of("response.output_audio.delta"))
    assert len(audio) > 0 and len(audio) % 2 == 0


async def test_beta_dialect_names():
    rt = Realtime(beta=True)
    await rt.conn.open()
    await rt.send("session.update", session={"modalities": ["audio", "text"], "input_audio_format": "pcm16",
                                             "voice": "alloy", "turn_detection": {"type": "server_vad"}})
    updated = await rt.wait_for("session.updated")
    assert updated["session"]["voice"] == "alloy" and updated["session"]["input_audio_format"] == "pcm16"
    await rt.speak()
    await rt.wait_for("response.done")
    types = rt.types()
    assert {"response.audio.delta", "response.audio_transcript.delta", "response.audio.done",
            "conversation.item.created"} <= set(types)
    assert not [t for t in types if "output_audio" in t or t == "conversation.item.added"]
    await rt.conn.close()


async def test_session_update_is_honoured(rt):
    await rt.send("session.update", session={
        "type": "realtime", "instructions": "항상 존댓말로 짧게.",
        "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}},
                  "output": {"voice": "marin"}}})
    session = (await rt.wait_for("session.updated"))["session"]
    assert session["instructions"] == "항상 존댓말로 짧게."
    assert session["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert rt.conn.session.listener.vad.end_silence_ms == 400  # eagerness high: a shorter endpoint
    await rt.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "threshold": 0.7, "silence_duration_ms": 900, "prefix_padding_ms": 200}}}})
    vad = rt.conn.session.listener.vad
    assert (vad.threshold, vad.end_silence_ms, vad.preroll_ms) == (0.7, 900, 200)
    await rt.speak()
    await rt.wait_for("response.done")
    assert rt.gw.last_messages[0] == {"role": "system", "content": "항상 존댓말로 짧게."}


async def test_manual_turns_commit_then_respond_on_request(rt):
    await rt.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    await rt.audio(LOUD, 20)
    assert not rt.of("input_audio_buffer.speech_started")  # no turn detection
    await rt.send("input_audio_buffer.commit")
    committed = await rt.wait_for("input_audio_buffer.committed")
    await rt.wait_for("conversation.item.input_audio_transcription.completed", item_id=committed["item_id"])
    assert not rt.of("response.created") and not rt.of("input_audio_buffer.speech_stopped")
    await rt.send("response.create")
    done = await rt.wait_for("response.done")
    assert done["response"]["status"] == "completed"


async def test_create_response_false_waits_for_response_create(rt):
    await rt.send("session.update", session={"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", "create_response": False}}}})
    await rt.speak()
    await rt.wait_for("conversation.item.input_audio_transcription.completed")
    assert not rt.of("response.created")
    await rt.send("response.create", response={"instructions": "한 문장으로."})
    await rt.wait_for("response.done")
    assert rt.gw.last_messages[0]["content"] == "한 문장으로." and rt.gw.last_messages[-1]["content"] == "안녕하세요"


async def test_text_item_and_text_only_reply(rt):
    await rt.send("session.update", session={"type": "realtime", "output_modalities": ["text"]})
    await rt.send("conversation.item.create", item={"type": "message", "role": "user",
                                                    "content": [{"type": "input_text", "text": "서울 날씨 어때요?"}]})
    added = await rt.wait_for("conversation.item.added")
    assert added["item"]["content"] == [{"type": "input_text", "text": "서울 날씨 어때요?"}]
    await rt.send("response.create")
    done = await rt.wait_for("response.done")
    assert done["response"]["output"][0]["content"][0] == {"type": "output_text", "text": "네, 반가워요. 좋은 하루예요."}
    assert rt.of("response.output_text.delta") and not rt.of("response.output_audio.delta")
    assert "tts" not in rt.gw.calls and rt.gw.last_messages[-1]["content"] == "서울 날씨 어때요?"


async def test_response_cancel_and_truncate():
    rt = Realtime(FakeGateway(llm_delay_s=0.3))
    await rt.conn.open()
    await rt.send("response.cancel", event_id="c0")
    error = await rt.wait_for("error")
    assert error["error"]["code"] == "response_cancel_not_active" and error["error"]["event_id"] == "c0"
    await rt.speak()
    created = await rt.wait_for("response.created")
    await rt.send("response.cancel")
    done = await rt.wait_for("response.done")
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "client_cancelled"
    item_id = done["response"]["output"][0]["id"]
    await rt.send("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=0)
    assert (await rt.wait_for("conversation.item.truncated"))["item_id"] == item_id
    await rt.conn.close()


async def test_barge_in_cancels_the_response_with_reason_turn_detected():
    rt = Realtime(FakeGateway(llm_delay_s=0.3))
    await rt.conn.open()
    await rt.speak()
    await rt.wait_for("response.created")
    await rt.audio(LOUD, 15)
    done = await rt.wait_for("response.done")
    assert done["response"]["status"] == "cancelled"
    assert done["response"]["status_details"]["reason"] == "turn_detected"
    await rt.conn.close()


@pytest.mark.parametrize("event, code, param", [
    ("not json", "invalid_json", None),
    ({"event_id": "e1", "type": "no.such.event"}, "unknown_event", "type"),
    ({"event_id": "e1", "type": "input_audio_buffer.append", "audio": "%%%"}, "invalid_value", "audio"),
    ({"event_id": "e1", "type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()},
     "invalid_value", "audio"),
    ({"event_id": "e1", "type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty", None),
    ({"event_id": "e1", "type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcmu"}}}}}, "invalid_value", "session.audio.input.format"),
    ({"event_id": "e1", "type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}}, "invalid_value",
     "session.audio.input.turn_detection.threshold"),
    ({"event_id": "e1", "type": "session.update", "session": {"tools": [{"type": "function", "name": "f"}]}},
     "invalid_value", "session.tools"),
    ({"event_id": "e1", "type": "conversation.item.create", "item": {"type": "message", "role": "system",
                                                                     "content": []}}, "invalid_value", "item"),
    ({"event_id": "e1", "type": "conversation.item.truncate", "item_id": "item_x", "audio_end_ms": 0},
     "item_not_found", "item_id"),
    ({"event_id": "e1", "type": "response.create"}, "no_user_input", None),
])
async def test_bad_input_gets_an_error_event_and_the_session_goes_on(rt, event, code, param):
    await rt.conn.handle_text(event if isinstance(event, str) else json.dumps(event))
    error = (await rt.wait_for("error"))["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error" and error["message"]
    if isinstance(event, dict):
        assert error["event_id"] == "e1"
    await rt.speak()
    assert (await rt.wait_for("response.done"))["response"]["status"] == "completed"


async def test_stage_failure_ends_the_response_as_failed():
    rt = Realtime(FakeGateway(fail={"llm": "llm stub died"}))
    await rt.conn.open()
    await rt.speak()
    done = await rt.wait_for("response.done")
    assert done["response"]["status"] == "failed"
    error = rt.of("error")[0]["error"]
    assert error["type"] == "server_error" and "llm stub died" in error["message"]
    await rt.conn.close()


@pytest.mark.parametrize("beta", [False, True])
async def test_every_event_validates_against_the_official_sdk_types(beta):
    """The openai SDK's own pydantic types (openai-agents rejects events that fail them)."""
    if beta:
        from openai.types.beta.realtime import RealtimeServerEvent
    else:
        from openai.types.realtime import RealtimeServerEvent
    import typing

    members = typing.get_args(typing.get_args(RealtimeServerEvent)[0])
    by_type = {m.model_fields["type"].annotation.__args__[0]: m for m in members}
    rt = Realtime(FakeGateway(llm_delay_s=0.05), beta=beta)
    await rt.conn.open()
    await rt.send("session.update", session={} if beta else {"type": "realtime"})
    await rt.speak()
    created = await rt.wait_for("response.created")
    await rt.wait_for("response.done")
    await rt.send("conversation.item.retrieve", item_id=created["response"]["id"])  # not an item: error
    await rt.send("conversation.item.retrieve", item_id=rt.of("input_audio_buffer.committed")[0]["item_id"])
    await rt.wait_for("conversation.item.retrieved")
    await rt.send("conversation.item.create", item={"type": "message", "role": "user",
                                                    "content": [{"type": "input_text", "text": "네"}]})
    await rt.conn.close()
    for event in rt.events:
        if event["type"] == "conversation.item.input_audio_transcription.delta":
            event = {k: v for k, v in event.items() if k != "transcript"}  # our documented addition
        by_type[event["type"]].model_validate(event)
    assert {"session.created", "session.updated", "response.done", "error", "conversation.item.retrieved"} <= \
        set(rt.types())

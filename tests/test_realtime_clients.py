"""/v1/realtime against real Triton, MariaDB and Milvus Lite, driven by clients nobody here wrote: the
official `openai` SDK (GA `client.realtime` and beta `client.beta.realtime`, via websocket_base_url)
and the `openai-agents` realtime runner. Each finishes a spoken turn from real speech, is barged in
on, and cancels an answer (tests/realtime_script.py)."""
from __future__ import annotations

import asyncio
import base64

import pytest
import websockets
from openai import AsyncOpenAI

from benchmarks.stack import AppServer, make_settings
from tests.realtime_script import Driver, speech_24k, turn_barge_in_cancel

# One user per client: what one test said is recalled as memory in the next test of the same user, and
# the answer to speech heard before (recited memory, dropped by the reply guard) can end before the
# barge-in lands.
KEYS = {client: (f"test-realtime-key-{client}-0123456789", f"rt-user-{client}") for client in ("ga", "beta", "agents")}
KEY = KEYS["ga"][0]


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    # unlimited sentences: answers last long enough to be barged in on before they are fully sent
    settings = make_settings(triton, tmp_path_factory.mktemp("realtime"), llm_max_tokens=96, max_reply_sentences=0,
                             api_keys=",".join(f"{key}:{user}" for key, user in KEYS.values()))
    with AppServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def speech():
    pcm, material = speech_24k(3)
    print(f"\nrealtime clients speak {material}")
    return pcm


class SdkDriver(Driver):
    """The official SDK's connection manager (GA or beta)."""

    def __init__(self, connection, beta: bool):
        super().__init__()
        self.conn, self.beta = connection, beta
        if beta:
            self.audio_delta = "response.audio.delta"
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.conn:
            self.record(event.model_dump(mode="json"))

    async def append(self, pcm: bytes) -> None:
        await self.conn.input_audio_buffer.append(audio=base64.b64encode(pcm).decode())

    async def cancel(self) -> None:
        await self.conn.response.cancel()


async def test_openai_sdk_ga(app, speech):
    client = AsyncOpenAI(api_key=KEY, websocket_base_url=f"{app.ws}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        driver = SdkDriver(conn, beta=False)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 24000},
                      "turn_detection": {"type": "server_vad", "silence_duration_ms": 600}},
            "output": {"voice": "marin"}}})
        updated = await driver.wait_for("session.updated", timeout=10)
        assert updated["session"]["audio"]["output"]["voice"] == "marin"
        seen = await turn_barge_in_cancel(driver, speech)
        print(f"GA: heard {seen['transcript']!r} → {seen['reply']!r} ({seen['reply_audio_s']:.1f} s audio)")
        assert not driver.of("error"), driver.of("error")
        driver.reader.cancel()


async def test_openai_sdk_beta(app, speech):
    client = AsyncOpenAI(api_key=KEYS["beta"][0], websocket_base_url=f"{app.ws}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        driver = SdkDriver(conn, beta=True)
        await conn.session.update(session={"modalities": ["audio", "text"], "input_audio_format": "pcm16",
                                           "turn_detection": {"type": "server_vad"}})
        updated = await driver.wait_for("session.updated", timeout=10)
        assert updated["session"]["input_audio_format"] == "pcm16"
        seen = await turn_barge_in_cancel(driver, speech)
        print(f"beta: heard {seen['transcript']!r} → {seen['reply']!r}")
        assert {"response.audio.delta", "response.audio_transcript.delta"} <= set(driver.types())
        assert not [t for t in driver.types() if "output_audio" in t]
        assert not driver.of("error"), driver.of("error")
        driver.reader.cancel()


class AgentsDriver(Driver):
    """The openai-agents RealtimeRunner session: its raw server events are recorded."""

    def __init__(self, session):
        super().__init__()
        self.session, self.agent_events = session, []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.session:
            self.agent_events.append(event.type)
            if event.type == "raw_model_event" and event.data.type == "raw_server_event":
                self.record(event.data.data)

    async def append(self, pcm: bytes) -> None:
        await self.session.send_audio(pcm)

    async def cancel(self) -> None:
        """session.interrupt() only stops playback when the server cancels on speech; a cancel is forced."""
        from agents.realtime.model_inputs import RealtimeModelSendInterrupt

        await self.session.model.send_event(RealtimeModelSendInterrupt(force_response_cancel=True))


async def test_openai_agents_realtime_runner(app, speech):
    from agents.realtime import RealtimeAgent, RealtimeRunner

    agent = RealtimeAgent(name="비서", instructions="짧고 친절하게 한국어로 답하세요.")
    runner = RealtimeRunner(agent, config={"model_settings": {"model_name": "gpt-realtime"}})
    session = await runner.run(model_config={"url": f"{app.ws}/v1/realtime?model=gpt-realtime",
                                                "api_key": KEYS["agents"][0]})
    async with session:
        driver = AgentsDriver(session)
        await driver.wait_until(lambda: len(driver.of("session.updated")) >= 1, timeout=10)
        seen = await turn_barge_in_cancel(driver, speech)
        print(f"agents: heard {seen['transcript']!r} → {seen['reply']!r}")
        assert {"audio", "audio_interrupted", "history_updated"} <= set(driver.agent_events), driver.agent_events
        assert "error" not in driver.agent_events, [e for e in driver.of("error")]
        driver.reader.cancel()


async def test_a_wrong_key_is_refused_at_the_handshake(app):
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{app.ws}/v1/realtime", additional_headers={"Authorization": "Bearer nope"}):
            pass
    assert refused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{app.ws}/v1/realtime"):
            pass
    async with websockets.connect(f"{app.ws}/v1/realtime",
                                  subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"]) as ws:
        assert ws.subprotocol == "realtime"
        assert '"session.created"' in await asyncio.wait_for(ws.recv(), 10)

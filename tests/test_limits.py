"""Bounded resources on a real app: session caps (server and per key), sockets that never start a
session, oversized events. Each limit refuses with an error event the client can read."""
from __future__ import annotations

import asyncio
import uuid
from contextlib import asynccontextmanager

import pytest
import websockets

from benchmarks.stack import AppServer, make_settings
from orchestrator.client import VoiceClient

ALICE, BOB = "limits-alice-key-0123456789", "limits-bob-key-0123456789"


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("limits"), api_keys=f"{ALICE}:alice,{BOB}:bob",
                             max_sessions=2, max_sessions_per_user=1, start_timeout_s=1.0)
    with AppServer(settings) as server:
        yield server


def sid() -> str:
    return f"lim-{uuid.uuid4().hex}"


@asynccontextmanager
async def admitted(app, key: str):
    """A socket the caps let in: the places of sockets closed just before are freed once the server
    has seen them close, so a refusal (server_busy at once) is retried."""
    for _ in range(50):
        client = VoiceClient(app.ws, sid(), api_key=key)
        await client.__aenter__()
        try:
            await client.wait_for("error", timeout=0.3, code="server_busy")
        except asyncio.TimeoutError:
            try:
                yield client
            finally:
                await client.__aexit__(None, None, None)
            return
        await client.__aexit__(None, None, None)
    raise AssertionError("never admitted")


async def refused(app, key: str) -> dict:
    async with VoiceClient(app.ws, sid(), api_key=key) as client:
        error = await client.wait_for("error", timeout=10)
        await asyncio.wait_for(client.ws.wait_closed(), 10)
        assert client.ws.close_code == 1013
        return error


async def test_session_caps_per_key_and_per_server(app):
    async with VoiceClient(app.ws, sid(), api_key=ALICE) as alice:
        await alice.start(None)
        assert (await refused(app, ALICE))["code"] == "server_busy"  # one per key
        async with VoiceClient(app.ws, sid(), api_key=BOB) as bob:
            await bob.start(None)
            error = await refused(app, BOB)  # the server's two are taken
            assert error["code"] == "server_busy" and "server" in error["message"]
    async with admitted(app, ALICE) as again:  # closed sessions free their places
        await again.start(None)


async def test_a_socket_that_never_starts_is_closed(app):
    async with admitted(app, ALICE) as idle:
        assert (await idle.wait_for("error", timeout=5))["code"] == "start_timeout"
        await asyncio.wait_for(idle.ws.wait_closed(), 5)
        assert idle.ws.close_code == 4408


async def test_an_oversized_event_gets_an_error_and_the_session_goes_on(app):
    async with admitted(app, ALICE) as client:
        await client.ws.send("{" + "x" * 3_000_000 + "}")
        assert (await client.wait_for("error", timeout=10))["code"] == "frame_too_large"
        assert (await client.start(None))["user_id"] == "alice"
    headers = {"Authorization": f"Bearer {BOB}"}
    for _ in range(50):
        async with websockets.connect(f"{app.ws}/v1/realtime", additional_headers=headers, max_size=None) as ws:
            if '"session.created"' not in await ws.recv():  # refused while earlier sockets close: retry
                await asyncio.sleep(0.1)
                continue
            await ws.send("{" + "x" * 3_000_000 + "}")
            assert '"event_too_large"' in await asyncio.wait_for(ws.recv(), 10)
            break
    else:
        raise AssertionError("never admitted")


CAROL = "limits-carol-key-0123456789"


@pytest.fixture(scope="module")
def rate_app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("rates"), api_keys=f"{ALICE}:alice,{BOB}:bob,{CAROL}:carol",
                             connections_per_minute=3, enrollments_per_hour=1)
    with AppServer(settings) as server:
        yield server


async def test_connection_rate_is_limited_per_key(rate_app):
    for _ in range(3):
        async with VoiceClient(rate_app.ws, sid(), api_key=ALICE) as client:
            await client.start(None)
    async with VoiceClient(rate_app.ws, sid(), api_key=ALICE) as client:
        error = await client.wait_for("error", timeout=10)
        await asyncio.wait_for(client.ws.wait_closed(), 10)
        assert error["code"] == "rate_limited" and client.ws.close_code == 1013
    async with VoiceClient(rate_app.ws, sid(), api_key=BOB) as bob:  # another key is not affected
        assert (await bob.start(None))["user_id"] == "bob"


async def test_voice_enrolments_are_rate_limited_per_user(rate_app):
    from benchmarks.voice_clone import dev_speakers, load
    from tests.audio_fixtures import to_pcm16

    reference = to_pcm16(load(dev_speakers()["zeroth_104"][0]))
    async with VoiceClient(rate_app.ws, sid(), api_key=CAROL) as first:
        await first.start(None, voice_reference=reference)
        await asyncio.sleep(0.5)
        assert first.find("error") is None  # accepted: the fit runs in the background
    async with VoiceClient(rate_app.ws, sid(), api_key=CAROL) as second:
        assert (await second.start(None, voice_reference=reference))["voice"] == "default"
        error = await second.wait_for("error", timeout=10)
        assert error["code"] == "rate_limited" and "enrolments" in error["message"]
        await asyncio.sleep(0.3)
        assert second.ws.close_code is None  # the session goes on in the stock voice

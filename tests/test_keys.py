"""API keys decide who a client is (orchestrator/auth.py), on every route of a real app. Each rule's
test fails when the rule is removed."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import websockets

from benchmarks.stack import AppServer, make_settings
from orchestrator.auth import KeyRing, check_exposure
from orchestrator.client import VoiceClient

ALICE, BOB, ADMIN = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef", "admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("keys"), api_keys=f"{ALICE}:alice,{BOB}:bob",
                             admin_key=ADMIN)
    with AppServer(settings) as server:
        yield server


def test_keyring_parsing_and_exposure(tmp_path):
    file = tmp_path / "keys.txt"
    file.write_text(f"# comment\n{ALICE}:alice\n")
    ring = KeyRing(f"{BOB}:bob", str(file))
    assert ring.user_for(ALICE) == "alice" and ring.user_for(BOB) == "bob" and ring.user_for("nope") is None
    with pytest.raises(ValueError):
        KeyRing("short:alice")
    assert check_exposure(ring, "0.0.0.0") is None
    assert "loopback" in check_exposure(KeyRing(), "127.0.0.1")
    with pytest.raises(ValueError):
        check_exposure(KeyRing(), "0.0.0.0")


async def test_voice_socket_needs_a_key_and_speaks_only_as_its_user(app):
    with pytest.raises(websockets.InvalidStatus):
        async with VoiceClient(app.ws, f"k-{uuid.uuid4().hex}"):
            pass
    session_id = f"k-{uuid.uuid4().hex}"
    async with VoiceClient(app.ws, session_id, api_key=ALICE) as client:
        await client.send_json({"type": "session.start", "user_id": "bob"})
        assert (await client.wait_for("error", timeout=10))["code"] == "session_forbidden"
        started = await client.start(None)
        assert started["user_id"] == "alice"
    for _ in range(50):  # bob cannot join alice's session (once her socket is closed server-side)
        async with VoiceClient(app.ws, session_id, api_key=BOB) as client:
            try:
                await client.send_json({"type": "session.start"})
            except websockets.ConnectionClosed:
                pass  # refused as busy: the error event came first
            code = (await client.wait_for("error", timeout=10))["code"]
        if code != "session_busy":
            break
        await asyncio.sleep(0.1)
    assert code == "session_forbidden"


async def test_http_routes_check_keys_and_owners(app):
    session_id = f"k-{uuid.uuid4().hex}"
    async with VoiceClient(app.ws, session_id, api_key=ALICE) as client:
        await client.start("alice")
    url = f"{app.http}/api/sessions/{session_id}/turns"
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, headers={"Authorization": f"Bearer {BOB}"})).status_code == 404
        assert (await http.get(url, headers={"Authorization": f"Bearer {ALICE}"})).status_code == 200
        load = f"{app.http}/api/admin/models/vad/load"
        assert (await http.post(load, headers={"Authorization": f"Bearer {ALICE}"})).status_code == 403
        assert (await http.post(load, headers={"Authorization": f"Bearer {ADMIN}"})).status_code == 200
        assert (await http.get(f"{app.http}/api/health/")).status_code in (200, 503)  # open: probes have no key
        assert (await http.get(f"{app.http}/")).status_code == 200


async def test_foreign_browser_origins_are_refused(app):
    headers = {"Authorization": f"Bearer {ALICE}"}
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{app.ws}/v1/realtime", additional_headers=headers,
                                      origin="http://evil.example"):
            pass
    async with websockets.connect(f"{app.ws}/v1/realtime", additional_headers=headers,
                                  origin=app.http) as ws:  # the server's own page
        assert '"session.created"' in await ws.recv()


async def test_one_socket_per_session(app):
    session_id = f"k-{uuid.uuid4().hex}"
    async with VoiceClient(app.ws, session_id, api_key=ALICE) as first:
        await first.start(None)
        async with VoiceClient(app.ws, session_id, api_key=ALICE) as second:
            assert (await second.wait_for("error", timeout=10))["code"] == "session_busy"
        await first.send_json({"type": "session.end"})

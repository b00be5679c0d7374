"""Memory across sessions, for real (MariaDB + Milvus Lite + e5 + the LLM through Triton): facts a
user told in one session are recalled in a later session of the same user, never for another user.
Typed turns over /v1/realtime (conversation.item.create), so the test hears no TTS-made speech."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from benchmarks.stack import AppServer, make_settings

ALICE, BOB = "memory-alice-key-0123456789", "memory-bob-key-0123456789"


@pytest.fixture(scope="module")
def app(triton, tmp_path_factory):
    settings = make_settings(triton, tmp_path_factory.mktemp("memory"), llm_max_tokens=48,
                             api_keys=f"{ALICE}:alice,{BOB}:bob")
    with AppServer(settings) as server:
        yield server


async def typed_session(app, key: str, lines: list[str]) -> tuple[str, list[str]]:
    """One realtime session: each line typed, then answered; returns (session id, replies)."""
    replies = []
    async with websockets.connect(f"{app.ws}/v1/realtime", additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        created = json.loads(await ws.recv())
        assert created["type"] == "session.created"
        for line in lines:
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": line}]}}))
            await ws.send(json.dumps({"type": "response.create"}))
            while (event := json.loads(await asyncio.wait_for(ws.recv(), 120)))["type"] != "response.done":
                assert event["type"] != "error", event
            replies.append(event["response"]["output"][0]["content"][0]["transcript"])
    return created["session"]["id"], replies


async def stored_turns(app, key: str, session_id: str, n: int) -> list[dict]:
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            rows = (await http.get(f"{app.http}/api/sessions/{session_id}/turns",
                                   headers={"Authorization": f"Bearer {key}"})).json()
            if len(rows) >= n:
                return rows
            await asyncio.sleep(0.2)
    raise AssertionError(f"{session_id}: {len(rows)} of {n} turns stored")


async def test_facts_told_in_one_session_are_recalled_in_the_next_for_that_user_only(app):
    first, _ = await typed_session(app, ALICE, ["제 이름은 민수예요.", "고양이를 두 마리 키워요."])
    await stored_turns(app, ALICE, first, 2)
    second, replies = await typed_session(app, ALICE, ["제 이름이 뭐라고 했죠?", "제가 고양이를 몇 마리 키운다고 했죠?"])
    rows = await stored_turns(app, ALICE, second, 2)
    print(f"\nalice, later session: {replies}; memory hits {[r['memory_hits'] for r in rows]}")
    assert all(r["memory_hits"] >= 1 for r in rows), rows
    other, bob_replies = await typed_session(app, BOB, ["제 이름이 뭐라고 했죠?"])
    bob_rows = await stored_turns(app, BOB, other, 1)
    assert bob_rows[0]["memory_hits"] == 0 and "민수" not in bob_replies[0], (bob_rows, bob_replies)

"""Faults injected for real: the `llm` model process is SIGKILLed mid-answer. The client gets an
`error` and `response.done {status: failed}` within the stream gap timeout, health reports the model
as not ready while the orchestrator has Triton reload it, and the next turn is answered."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from benchmarks.stack import AppServer, make_settings
from orchestrator.metrics import MODEL_RELOADS
from tests.conftest import triton_counter
from tests.test_shutdown import processes
from triton_models.launcher import TritonServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with TritonServer(ROOT / "model_repository", http_port=18700, grpc_port=18701, metrics_port=18702,
                      load_models=["vad", "embedder", "llm"]) as triton:
        settings = make_settings(triton, tmp_path_factory.mktemp("faults"), stt_enabled=False, tts_enabled=False,
                                 llm_max_tokens=800, max_reply_sentences=0, triton_stream_gap_s=5.0)
        with AppServer(settings) as app:
            yield triton, app


async def ask(ws, text: str) -> None:
    await ws.send(json.dumps({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}}))
    await ws.send(json.dumps({"type": "response.create"}))


async def next_of(ws, *types: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if event["type"] in types:
            return event


async def test_a_request_queued_behind_a_long_answer_is_not_taken_for_a_dead_model(stack):
    """Every llama.cpp context busy: a turn's answer waits for long
    generations already running (longer than the 5 s stream gap). The model's heartbeats keep it
    alive; before them the orchestrator reloaded the healthy model (and failed them all)."""
    triton, app = stack
    from orchestrator.triton_client import TritonGateway

    import tritonclient.http as httpclient

    gateway = TritonGateway(triton.grpc_url, stream_gap_s=5.0)
    config = httpclient.InferenceServerClient(f"127.0.0.1:{triton.http_port}").get_model_config("llm")
    contexts = int(config["parameters"]["contexts"]["string_value"])  # as served: fill every one
    long_text, started = [[] for _ in range(contexts)], [asyncio.Event() for _ in range(contexts)]

    async def long_generation(k: int) -> float:
        t0 = time.monotonic()
        async for item in gateway.llm_stream("llm", [{"role": "user", "content": f"Write a very long story about cat number {k + 1}, at least 1000 words."}],
                                             {"max_tokens": 400, "temperature": 0.0}):
            if not item.final:
                long_text[k].append(item.data.reshape(-1)[0].decode())
                started[k].set()
        return time.monotonic() - t0

    reloads_before = MODEL_RELOADS.labels("llm")._value.get()
    try:
        async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
            await next_of(ws, "session.created")
            long_tasks = [asyncio.create_task(long_generation(k)) for k in range(contexts)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 60)
            t0 = time.monotonic()
            await ask(ws, "안녕하세요!")
            done = await next_of(ws, "response.done", timeout=240)
            waited, long_s = time.monotonic() - t0, min(await asyncio.gather(*long_tasks))
    finally:
        await gateway.close()
    print(f"\nthe turn ended {waited:.1f} s after its question, behind generations of {long_s:.1f} s or more "
          f"({''.join(long_text[0])[:40]!r}...)")
    assert waited > 5.0, "the test needs the turn to wait longer than the stream gap"
    assert done["response"]["status"] == "completed", done
    assert MODEL_RELOADS.labels("llm")._value.get() == reloads_before  # the healthy model was left alone


async def until_session_ended(database_url: str, session_id: str, timeout_s: float = 30) -> None:
    """Wait until the server has closed the session (its row's ended_at: the last step of Session.close)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                async with engine.connect() as conn:
                    query = text("SELECT ended_at FROM sessions WHERE id = :id")
                    if await conn.scalar(query, {"id": session_id}) is not None:
                        return
                await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


def streams_in_flight(triton) -> list[str]:
    """The metric per model, for a failure's message."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{triton.metrics_port}/metrics") as reply:
        return [line for line in reply.read().decode().splitlines() if line.startswith("voice_streams_in_flight{")]


async def test_killed_llm_process_fails_the_turn_cleanly_and_is_reloaded(stack):
    triton, app = stack
    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
        session_id = (await next_of(ws, "session.created"))["session"]["id"]
        await ask(ws, "한국의 역사에 대해 아주 길고 자세하게 이야기해 주세요.")
        for _ in range(1000):  # the turn's generation is in flight (the model tracks its stream): kill it then
            if await triton_counter(triton, "voice_streams_in_flight") == 1:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the turn's LLM stream never showed in the model's metrics")
        stubs = [pid for pid, (ppid, cmd) in processes().items()
                 if ppid == triton.proc.pid and "backend_stub" in cmd and "/llm/" in cmd]
        assert len(stubs) == 1
        killed_at = time.monotonic()
        os.kill(stubs[0], signal.SIGKILL)
        error = await next_of(ws, "error", timeout=30)
        done = await next_of(ws, "response.done", timeout=30)
        print(f"\nfailed {time.monotonic() - killed_at:.1f} s after the kill: {error['error']['message']}")
        assert done["response"]["status"] == "failed" and error["error"]["type"] == "server_error"
        async with httpx.AsyncClient() as http:
            states = []
            for _ in range(300):  # health says so while the model is reloaded, then recovers
                r = await http.get(f"{app.http}/api/health/")
                states.append((r.status_code, r.json()["models"]["llm"]["ready"]))
                if r.status_code == 200 and (503, False) in states:
                    break
                await asyncio.sleep(0.5)
        assert (503, False) in states and states[-1] == (200, True), states[-5:]
        # the reloaded model counts its own streams (none yet), not the killed process's last count
        assert await triton_counter(triton, "voice_streams_in_flight") == 0, streams_in_flight(triton)
        await ask(ws, "안녕하세요!")
        again = await next_of(ws, "response.done", timeout=120)
        assert again["response"]["status"] == "completed", again
    # closed: the next turn's prefill (made once the reply was, it may reach the model after the client
    # left) is cancelled when the server closes the session, mid-step (llm_abort.py); no stream is left
    await until_session_ended(app.settings.database_url, session_id)
    for _ in range(40):
        if await triton_counter(triton, "voice_streams_in_flight") == 0:
            break
        await asyncio.sleep(0.25)  # a stream's thread ends just after its final response
    assert await triton_counter(triton, "voice_streams_in_flight") == 0, streams_in_flight(triton)

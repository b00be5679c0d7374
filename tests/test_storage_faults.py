"""Storage faults injected for real, under real turns (Triton, MariaDB, Milvus Lite):

- MariaDB stalled: the `turns` table locked by another connection (LOCK TABLES ... WRITE);
- MariaDB unreachable: the app reaches it through a TCP forwarder that is stopped;
- Milvus stopped: a standalone Milvus Lite server process is SIGKILLed, then started again.

Each time the user still hears a clear outcome (an `error`, and `response.done failed` when the turn
could not run), the server heals when the database is back, a turn that could not be stored is stored
by a retry, and no turn row is left without its vectors or vectors without their row.
"""
from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from benchmarks.stack import AppServer, MilvusProcess, make_settings, stored_turns
from tests.tcp_proxy import TcpProxy
from tests.test_faults import ask, next_of
from triton_models.launcher import TritonServer

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 2.0  # storage_timeout_s in these tests


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("storage_faults")
    milvus = MilvusProcess(tmp / "milvus").start()
    proxy = TcpProxy("127.0.0.1", 3306).start()
    with TritonServer(ROOT / "model_repository", http_port=18710, grpc_port=18711, metrics_port=18712,
                      load_models=["vad", "embedder", "llm"]) as triton:
        settings = make_settings(
            triton, tmp, stt_enabled=False, tts_enabled=False, llm_max_tokens=24, max_reply_sentences=1,
            storage_timeout_s=BOUND_S, store_retry_s=120.0, milvus_uri=milvus.uri,
            database_url=f"mysql+asyncmy://voice:voice@127.0.0.1:{proxy.port}/voicechat_storage_faults")
        with AppServer(settings) as app:
            yield app, proxy, milvus
    proxy.close()
    milvus.stop()


async def health_of(app) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{app.http}/api/health/")
        return r.status_code, r.json()


async def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {timeout:g} s: {what}")


async def unstored(app) -> int:
    return (await health_of(app))[1]["turns_unstored"]


async def stored(app) -> tuple[dict[int, str], set[int]]:
    """({turn row id: status}, {turn ids with vectors})."""
    rows, vectors = await stored_turns(app.settings.database_url, app.settings.milvus_uri,
                                       app.settings.milvus_collection)
    return {r.id: r.status for r in rows}, vectors


async def assert_whole(app) -> dict[int, str]:
    """Every turn row has its vectors and every vector its row (nothing half-stored), once the stores
    in flight (vectors are written just before their row commits) have ended."""
    for _ in range(40):
        first = await stored(app)
        await asyncio.sleep(0.25)
        if await stored(app) == first and not await unstored(app):
            break
    rows, vectors = first
    assert set(rows) == vectors, (rows, vectors)
    return rows


async def answered(ws, text: str) -> dict:
    await ask(ws, text)
    return await next_of(ws, "response.done", timeout=120)


async def test_a_stalled_mariadb_is_bounded_and_the_turn_is_stored_once_it_is_free(stack):
    app, _, _ = stack
    import asyncmy

    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
        await next_of(ws, "session.created")
        before = len(await assert_whole(app))
        locker = await asyncmy.connect(host="127.0.0.1", port=3306, user="voice", password="voice",
                                       database="voicechat_storage_faults")
        try:
            async with locker.cursor() as cur:
                await cur.execute("LOCK TABLES turns WRITE")
            done = await answered(ws, "안녕하세요!")
            assert done["response"]["status"] == "completed"  # the user is answered all the same
            t0 = time.monotonic()
            error = await next_of(ws, "error", timeout=BOUND_S * 4)
            print(f"\nstorage error {time.monotonic() - t0:.1f} s after response.done: {error['error']['message']}")
            assert error["error"]["code"] == "storage_failed" and "retrying" in error["error"]["message"]
            assert await unstored(app) == 1
        finally:
            async with locker.cursor() as cur:
                await cur.execute("UNLOCK TABLES")
            locker.close()
        await until(lambda: _zero(unstored(app)), 30, "the retry stores the turn")
        rows = await assert_whole(app)
        assert len(rows) == before + 1
        assert (await answered(ws, "고마워요."))["response"]["status"] == "completed"
        await until(lambda: _count(app, before + 2), 15, "the next turn is stored at once")


async def _zero(value) -> bool:
    return (await value) == 0


async def _count(app, n: int) -> bool:
    rows, vectors = await stored(app)
    return len(rows) == n and set(rows) == vectors


async def test_an_unreachable_mariadb_fails_starts_quickly_and_the_server_heals(stack):
    app, proxy, _ = stack
    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
        await next_of(ws, "session.created")
        before = len(await assert_whole(app))
        proxy.stop()
        try:
            done = await answered(ws, "오늘 기분이 좋아요.")
            assert done["response"]["status"] == "completed"
            error = await next_of(ws, "error", timeout=BOUND_S * 4)
            assert error["error"]["code"] == "storage_failed", error
            status, body = await health_of(app)
            assert status == 503 and body["database"] is False and body["turns_unstored"] == 1
            t0 = time.monotonic()  # a new session cannot start: it is told so, within the bound
            async with websockets.connect(f"{app.ws}/v1/realtime") as other:
                refused = await next_of(other, "error", timeout=BOUND_S * 4)
                assert refused["error"]["code"] == "storage_failed"
                assert "database is unavailable" in refused["error"]["message"]
            assert time.monotonic() - t0 < BOUND_S * 3
        finally:
            proxy.start()
        await until(lambda: _zero(unstored(app)), 30, "the retry stores the turn")
        assert (await health_of(app))[0] == 200
        assert len(await assert_whole(app)) == before + 1
    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:  # new sessions start again
        await next_of(ws, "session.created")
        assert (await answered(ws, "다시 왔어요."))["response"]["status"] == "completed"


async def test_a_stopped_milvus_fails_the_turn_cleanly_and_a_restarted_one_is_found_again(stack):
    app, _, milvus = stack
    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
        await next_of(ws, "session.created")
        before = len(await assert_whole(app))
        assert (await answered(ws, "저는 고양이를 좋아해요."))["response"]["status"] == "completed"
        await until(lambda: _count(app, before + 1), 15, "the first turn is stored")
        before += 1
        milvus.kill()
        try:
            t0 = time.monotonic()
            await ask(ws, "제가 뭘 좋아한다고 했죠?")
            error = await next_of(ws, "error", timeout=BOUND_S * 6)
            done = await next_of(ws, "response.done", timeout=BOUND_S * 6)
            print(f"\nturn failed {time.monotonic() - t0:.1f} s after the question: {error['error']['message']}")
            assert done["response"]["status"] == "failed" and "memory" in error["error"]["message"]
            status, body = await health_of(app)
            assert status == 503 and body["vector_db"] is False
        finally:
            milvus.start()
        await until(lambda: _healthy(app), 30, "health recovers")
        assert (await answered(ws, "제가 뭘 좋아한다고 했죠?"))["response"]["status"] == "completed"
        # the failed turn (stored with its reason by a retry) and the one after the restart, each whole
        await until(lambda: _count(app, before + 2), 30, "both turns are stored whole")
        rows, _ = await stored(app)
        assert sorted(rows.values()).count("failed") == 1


async def _healthy(app) -> bool:
    return (await health_of(app))[0] == 200


async def test_a_stalled_milvus_is_bounded(stack):
    """SIGSTOP: Milvus accepts connections but never answers; the turn still ends within the bound."""
    app, _, milvus = stack
    async with websockets.connect(f"{app.ws}/v1/realtime") as ws:
        await next_of(ws, "session.created")
        milvus.proc.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            await ask(ws, "안녕하세요!")
            done = await next_of(ws, "response.done", timeout=BOUND_S * 6)
            took = time.monotonic() - t0
            print(f"\nturn ended {took:.1f} s after the question with Milvus stalled")
            assert done["response"]["status"] == "failed" and took < BOUND_S * 4
        finally:
            milvus.proc.send_signal(signal.SIGCONT)
        await until(lambda: _healthy(app), 30, "health recovers")
        assert (await answered(ws, "고마워요."))["response"]["status"] == "completed"
        await assert_whole(app)

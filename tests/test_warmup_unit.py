"""The models' first calls made at start (orchestrator/warmup.py), against the scripted gateway; the
same warm-up runs for real in every app the Triton tests start."""
from __future__ import annotations

from orchestrator.settings import Settings
from orchestrator.stages.respond import fallback_sentences
from orchestrator.warmup import warm_up
from tests.fakes.gateway import FakeGateway, fake_services


async def test_the_warm_up_calls_each_model_once_and_a_failure_leaves_the_rest():
    cfg = Settings(_env_file=None)
    sentences = [s for f in cfg.reply_fallbacks for s in fallback_sentences(f)]
    gw = FakeGateway()
    took = await warm_up(fake_services(cfg, gw))
    assert gw.calls == ["stt.partial", "stt", "embed.query", "llm.prefill", *["tts"] * len(sentences)]
    assert set(took) == {"stt", "stt final", "embedder", "llm", "tts"}
    assert gw.prefilled[0][0]["content"] == cfg.system_prompt  # the default prompt, as a turn builds it
    assert all(o == {"voice": cfg.tts_voice, "prepare": True} for o in gw.tts_options)
    broken = FakeGateway(fail={"llm.prefill": "model not ready"})
    took = await warm_up(fake_services(cfg, broken))
    assert "llm" not in took and "tts" in took
    quiet = FakeGateway()
    await warm_up(fake_services(Settings(_env_file=None, llm_enabled=False, tts_enabled=False), quiet))
    assert quiet.calls == ["stt.partial", "stt", "embed.query"]


async def test_the_warm_up_stops_once_a_session_is_open():
    """It is for a server idling before its first user: beside a first turn it only competes."""
    import asyncio

    cfg = Settings(_env_file=None)
    gw = FakeGateway(llm_delay_s=0.0)
    slow_prefill = gw.llm_prefill

    async def prefill(*args, **kwargs):
        await asyncio.sleep(5.0)
        return await slow_prefill(*args, **kwargs)

    gw.llm_prefill = prefill
    sessions: list[str] = []
    warming = asyncio.create_task(warm_up(fake_services(cfg, gw), users_present=lambda: bool(sessions)))
    await asyncio.sleep(0.1)  # in the LLM's prefill now
    sessions.append("s1")
    async with asyncio.timeout(1.0):  # the prefill in flight is cancelled, not waited for
        took = await warming
    assert set(took) == {"stt", "stt final", "embedder"} and "tts" not in gw.calls


async def test_a_warm_up_cancelled_at_shutdown_cancels_its_step_in_flight():
    import asyncio

    gw = FakeGateway()
    cancelled = []

    async def prefill(*args, **kwargs):
        try:
            await asyncio.sleep(5.0)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    gw.llm_prefill = prefill
    warming = asyncio.create_task(warm_up(fake_services(Settings(_env_file=None), gw)))
    await asyncio.sleep(0.1)
    warming.cancel()
    await asyncio.gather(warming, return_exceptions=True)
    await asyncio.sleep(0)
    assert cancelled == [True]

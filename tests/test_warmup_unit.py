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

"""benchmarks/voice_latency.py's outside-models share: each turn against the same clip's models in-process."""
from __future__ import annotations

import pytest

from benchmarks.voice_latency import outside_share
from orchestrator.settings import Settings
from orchestrator.stages.respond import fallback_sentences

IN_PROCESS = {"a.wav": {"first_sentence": 800.0, "first_audio": 1800.0},
              "b.wav": {"first_sentence": 400.0, "first_audio": 1000.0}}


def rows(fallback: str) -> list[dict]:
    return [{"clip": "a.wav", "first_audio": 2250.0, "reply": "오늘은 날씨가 맑아요."},   # LLM, 200 outside
            {"clip": "b.wav", "first_audio": 1450.0, "reply": "오늘은 비가 와요."},       # LLM, 200 outside
            {"clip": "a.wav", "first_audio": 1100.0, "reply": fallback},               # fallback
            {"clip": "b.wav", "first_audio": None, "reply": fallback}]                 # no audio: left out


@pytest.mark.parametrize("cached", [True, False])
def test_each_turn_is_paired_with_its_own_clip_and_its_kind_of_reply(cached):
    fallback = fallback_sentences(Settings(_env_file=None).reply_fallbacks[0])[0]
    summary = {"endpoint": {"p50": 650.0}, "tts_sentences": {"phrases_cached_total": 4 if cached else 0}}
    share = outside_share(summary, rows(fallback), IN_PROCESS, 250)
    llm = share["llm_replies"]
    assert llm["turns"] == 2 and llm["outside_p50_ms"] == pytest.approx(200.0)
    assert llm["share"] == pytest.approx((200 / 2250 + 200 / 1450) / 2, abs=1e-3)
    served = share["fallback_replies"]
    assert served["turns"] == 1
    # from the cache a fallback's models end at the LLM's first sentence; said anew, at the first audio
    assert served["outside_p50_ms"] == pytest.approx(1100 - 250 - (800 if cached else 1800))

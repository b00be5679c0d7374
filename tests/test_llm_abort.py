"""A cancel stops a llama.cpp evaluation in the middle of the call (triton_models/llm_abort.py), on the
real GGUF the `llm` model serves, and the context's KV cache stays whole after it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from triton_models import decoupled
from triton_models.llm import GenOptions

GGUF = sorted((Path(__file__).resolve().parent.parent / "model_repository" / "llm").glob("*/*.gguf"))
LONG = [{"role": "system", "content": "당신은 친절한 한국어 음성 비서입니다. 짧고 자연스럽게 대답하세요. " * 12},
        {"role": "user", "content": "오늘 날씨 어때요"}]
ANSWER = GenOptions(max_tokens=8, temperature=0.0, seed=1)


@pytest.fixture(scope="module")
def engine():
    from triton_models.llm import LlamaCppEngine

    assert GGUF, "export the llm first (scripts/setup.sh)"
    return LlamaCppEngine(GGUF[-1], n_threads=2, contexts=1)


def after(seconds: float):
    """A cancel check that turns true `seconds` from now."""
    t0 = time.monotonic()
    return lambda: time.monotonic() - t0 > seconds


def from_scratch(engine) -> str:
    engine.llm.n_tokens = 0  # nothing cached: the whole prompt evaluated anew
    return "".join(engine.generate(LONG, ANSWER))


def test_a_cancelled_prefill_stops_inside_its_step_and_leaves_the_cache_whole(engine):
    engine.llm.n_tokens = 0
    t0 = time.monotonic()
    stats: dict = {}
    evaluated = engine.prefill(LONG, stats, step=4096, stop=after(0.2))  # the whole prompt is one step
    aborted_s = time.monotonic() - t0
    engine.llm.n_tokens = 0
    t0 = time.monotonic()
    whole = engine.prefill(LONG, {}, step=4096)
    whole_s = time.monotonic() - t0
    print(f"\nprefill of {whole} tokens: {whole_s:.2f} s whole, cancelled after 0.2 s: gone at {aborted_s:.2f} s")
    assert evaluated == 0 and stats["prefilled"] == 0 and whole > 250
    assert aborted_s < 0.2 + (whole_s - 0.2) / 2
    # an abort in a later step keeps what the steps before it evaluated, and nothing of its own
    engine.llm.n_tokens = 0
    engine.prefill(LONG, stats, step=64, stop=after(whole_s / 2))
    assert 0 < stats["prefilled"] < whole and engine.llm.n_tokens == stats["prefilled"]
    continued = "".join(engine.generate(LONG, ANSWER))
    assert continued == from_scratch(engine)


def test_a_cancelled_generation_stops_inside_its_prompt_and_the_next_one_is_whole(engine):
    engine.llm.n_tokens = 0
    decoupled._serving.stopped = after(0.2)  # what a Triton stream's thread carries (decoupled.cancel_check)
    try:
        t0 = time.monotonic()
        deltas = list(engine.generate(LONG, ANSWER))
        aborted_s = time.monotonic() - t0
    finally:
        del decoupled._serving.stopped
    expected = from_scratch(engine)
    engine.llm.n_tokens = 0
    t0 = time.monotonic()
    next(iter(engine.generate(LONG, ANSWER)))
    first_s = time.monotonic() - t0
    print(f"\ngeneration cancelled 0.2 s in: ended at {aborted_s:.2f} s; its prompt takes {first_s:.2f} s")
    assert deltas == [] and aborted_s < 0.2 + (first_s - 0.2) / 2
    assert "".join(engine.generate(LONG, ANSWER)) == expected

"""How the llm model groups its deltas into responses (fast unit layer: a timed list of deltas stands in
for llama.cpp; the model's own stream runs through Triton in test_llm_triton.py)."""
from __future__ import annotations

import time

from triton_models.llm import coalesce


def timed(deltas: list[str], gap_s: float):
    """Deltas as a generator makes them, one every gap_s; yields (delta, when it was made)."""
    for delta in deltas:
        time.sleep(gap_s)
        yield delta


def test_the_first_clause_goes_a_delta_at_a_time_and_the_rest_is_grouped():
    deltas = ["안녕", "하세요", ",", " 오늘", "은", " 날씨", "가", " 좋", "네요", "."]
    sent = list(coalesce(timed(deltas, 0.01), window_s=0.2))
    # up to the clause's comma: each delta alone, the comma included, as soon as it was made
    assert sent[:3] == ["안녕", "하세요", ","]
    # after it: grouped (10 ms apart inside a 200 ms window), nothing lost
    assert len(sent) < len(deltas)
    assert "".join(sent) == "".join(deltas)


def test_a_clause_without_punctuation_ends_at_first_clause_chars():
    deltas = ["오늘", " 날씨", "가", " 정말", " 좋아", "서", " 산책", "하기", " 좋", "겠", "어요"]
    sent = list(coalesce(timed(deltas, 0.01), window_s=0.2, first_clause_chars=8))
    # "오늘 날씨가 정말 좋아" has a space past its 8th character: the clause ends with " 좋아"
    assert sent[:5] == deltas[:5] and sent[5] != deltas[5]
    assert len(sent) < len(deltas) and "".join(sent) == "".join(deltas)


def test_the_clauses_last_delta_is_not_held_for_the_next_one():
    def stalls_after_the_comma():
        yield from ["네", ","]
        time.sleep(0.3)  # the model is slow to go on; the comma must not wait for it
        yield " 좋아요"

    t0 = time.perf_counter()
    arrivals = []
    for piece in coalesce(stalls_after_the_comma(), window_s=0.06):
        arrivals.append((piece, time.perf_counter() - t0))
    assert arrivals[1][0] == "," and arrivals[1][1] < 0.1


def test_how_the_generation_started_is_known_at_its_first_delta():
    """A reply stopped early (its opening held back) never gets the final INFO: the first delta's says
    how much of the prompt was cached and how long the context was waited for."""
    from triton_models.llm import GenOptions, stream_chat

    class Engine:
        name = "scripted"

        def generate(self, messages, opts, stats):
            stats.update(prompt_tokens=300, prompt_cached=280, context_wait_ms=1.5)
            yield "네"
            stats["tokens"] = 2
            yield "."

    summary: dict = {}
    deltas = stream_chat(Engine(), [], GenOptions(), summary)
    assert next(deltas) == "네"
    assert summary["prompt_tokens"] == 300 and summary["prompt_cached"] == 280 and summary["context_wait_ms"] == 1.5
    assert "ttft_ms" in summary and "tokens" not in summary  # the rest only at the end
    assert list(deltas) == ["."] and summary["tokens"] == 2

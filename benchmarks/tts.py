"""Korean TTS: intelligibility (CER through our Whisper `stt` model), time to first chunk and RTF,
through Triton vs the same service in-process. Zero-shot voices on human speakers: voice_clone.py.

    .venv/bin/python -m benchmarks.tts [--sentences 32] [--set tense|everyday] [--ahead S]

`--set` reads another sentence set of benchmarks/corpus.py (the front end's tense-consonant checks)
and writes results/tts_<set>.json|png instead of results/tts.json|png. Each sentence is asked for as
a later sentence of a reply whose listener has S seconds of audio still to play (`lead_s`; default 0,
the listener dry: phrases); with enough ahead, the engine speaks it in one call (`_ahead<S>` in the name).
"""
from __future__ import annotations

import argparse
import asyncio
import time

import kocer
import numpy as np

from benchmarks.common import RESULTS, ROOT, bar_plot, percentiles, triton, write
from benchmarks.corpus import TTS_SENTENCES, TTS_SETS


async def run_triton(url: str, sentences: list[str], options: dict) -> list[dict]:
    from orchestrator.triton_client import TritonGateway

    gw = TritonGateway(url)
    rows = []
    for text in sentences:
        t0 = time.perf_counter()
        first, chunks = None, []
        async for item in gw.tts_stream("tts", text, options):
            if not item.final:
                first = first or time.perf_counter()
                chunks.append(item.data)
        total = time.perf_counter() - t0
        pcm = np.concatenate(chunks)
        hyp = (await gw.transcribe("stt", pcm, beam_size=5)).text
        rows.append({"text": text, "hyp": hyp, "ttfc_ms": (first - t0) * 1000, "rtf": total / (len(pcm) / 16000)})
    await gw.close()
    return rows


async def run_in_process(sentences: list[str], stt_url: str, options: dict) -> list[dict]:
    from orchestrator.triton_client import TritonGateway
    from triton_models.tts import TtsService

    service = TtsService("kokoro", ROOT / "model_repository" / "tts" / "1" / "kokoro", None)
    gw = TritonGateway(stt_url)
    rows = []
    for text in sentences:
        t0 = time.perf_counter()
        first, chunks = None, []
        for pcm, _info in service.chunks(text, options):
            first = first or time.perf_counter()
            chunks.append(pcm)
        total = time.perf_counter() - t0
        pcm = np.concatenate(chunks)
        hyp = (await gw.transcribe("stt", pcm, beam_size=5)).text
        rows.append({"text": text, "hyp": hyp, "ttfc_ms": (first - t0) * 1000, "rtf": total / (len(pcm) / 16000)})
    await gw.close()
    return rows


def summarise(rows) -> dict:
    return {"cer": round(kocer.cer([r["text"] for r in rows], [r["hyp"] for r in rows]), 4),
            "ttfc_ms": percentiles(r["ttfc_ms"] for r in rows), "rtf": percentiles(r["rtf"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=len(TTS_SENTENCES))
    parser.add_argument("--set", choices=list(TTS_SETS), default="tts")
    parser.add_argument("--ahead", type=float, default=0.0, help="seconds of audio ahead of each sentence")
    args = parser.parse_args()
    sentences = TTS_SETS[args.set][: args.sentences]
    name = ("tts" if args.set == "tts" else f"tts_{args.set}") + (f"_ahead{args.ahead:g}" if args.ahead else "")
    options = {"sample_rate": 16000, **({"lead_s": args.ahead} if args.ahead else {})}
    with triton(["stt", "tts"]) as server:
        via = asyncio.run(run_triton(server.grpc_url, sentences, options))
        local = asyncio.run(run_in_process(sentences, server.grpc_url, options))
    t, p = summarise(via), summarise(local)
    png = bar_plot(RESULTS / f"{name}.png", "Korean TTS (Kokoro + g2pkk front end)",
                   {"TTFC p50 (ms)": {"triton": t["ttfc_ms"]["p50"], "in-process": p["ttfc_ms"]["p50"]},
                    "CER x1000": {"triton": t["cer"] * 1000, "in-process": p["cer"] * 1000},
                    "RTF x1000": {"triton": t["rtf"]["p50"] * 1000, "in-process": p["rtf"]["p50"] * 1000}}, "value")
    worst = sorted(via, key=lambda r: -kocer.cer(r["text"], r["hyp"]))[:5]
    write(name, {"set": args.set, "sentences": len(sentences), "ahead_s": args.ahead, "engine": "kokoro", "voice": "default", "triton": t, "in_process": p,
                  "targets": {"cer": 0.12, "ttfc_ms": 300},
                  "worst": [{"text": r["text"], "hyp": r["hyp"]} for r in worst], "plot": str(png)})


if __name__ == "__main__":
    main()

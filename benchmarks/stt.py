"""Whisper STT: per-clip latency through Triton vs the same engine in-process, RTF and CER.

    .venv/bin/python -m benchmarks.stt [--clips 8] [--beam 1]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import kocer

from benchmarks.common import RESULTS, ROOT, bar_plot, percentiles, triton, write
from benchmarks.corpus import stt_clips, to_pcm16


async def through_triton(url: str, clips, beam: int) -> list[dict]:
    from orchestrator.triton_client import TritonGateway

    gateway = TritonGateway(url)
    await gateway.transcribe("stt", to_pcm16(clips[0][0]))  # warm-up
    rows = []
    for audio, ref in clips:
        t0 = time.perf_counter()
        result = await gateway.transcribe("stt", to_pcm16(audio), beam_size=beam)
        rows.append({"ms": (time.perf_counter() - t0) * 1000, "text": result.text, "ref": ref})
    await gateway.close()
    return rows


def in_process(clips, beam: int) -> list[dict]:
    from triton_models.common import pcm16_to_float
    from triton_models.stt import SttOptions, WhisperTranscriber

    engine = WhisperTranscriber(ROOT / "model_repository" / "stt" / "1" / "whisper")
    engine.transcribe(pcm16_to_float(to_pcm16(clips[0][0])))
    rows = []
    for audio, ref in clips:
        t0 = time.perf_counter()
        out = engine.transcribe(pcm16_to_float(to_pcm16(audio)), SttOptions(beam_size=beam))
        rows.append({"ms": (time.perf_counter() - t0) * 1000, "text": out["text"], "ref": ref})
    return rows


def summarise(rows, clips) -> dict:
    durations = [len(a) / 16000 for a, _ in clips]
    return {"latency_ms": percentiles(r["ms"] for r in rows),
            "rtf": percentiles(r["ms"] / 1000 / d for r, d in zip(rows, durations)),
            "cer": round(kocer.cer([r["ref"] for r in rows], [r["text"] for r in rows]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--beam", type=int, default=1)
    args = parser.parse_args()
    clips = stt_clips(args.clips)
    with triton(["stt"]) as server:
        via_triton = asyncio.run(through_triton(server.grpc_url, clips, args.beam))
    local = in_process(clips, args.beam)
    t, p = summarise(via_triton, clips), summarise(local, clips)
    overhead = [a["ms"] - b["ms"] for a, b in zip(via_triton, local)]
    png = bar_plot(RESULTS / "stt.png", "Whisper base STT latency (ms)",
                   {"p50": {"triton": t["latency_ms"]["p50"], "in-process": p["latency_ms"]["p50"]},
                    "p95": {"triton": t["latency_ms"]["p95"], "in-process": p["latency_ms"]["p95"]}}, "ms")
    write("stt", {"clips": len(clips), "audio_s": round(sum(len(a) for a, _ in clips) / 16000, 1), "beam": args.beam,
                  "triton": t, "in_process": p, "triton_overhead_ms": percentiles(overhead), "plot": str(png),
                  "samples": [{"ref": r["ref"], "triton": r["text"], "ms": round(r["ms"], 1)} for r in via_triton]})


if __name__ == "__main__":
    main()

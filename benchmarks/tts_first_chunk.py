"""Where the Kokoro first-chunk latency goes, and what a smaller first chunk costs in intelligibility.

    .venv/bin/python -m benchmarks.tts_first_chunk [--sizes 6 10 14 18 24 24w] [--sentences 32]

A size with a "w" suffix decodes the first phrase in two windows (KokoroEngine.decode_windowed:
lead-in + 20 frames first, then the rest with a crossfade), as the `tts` model does for a reply's
first sentence.

1. Cost model of one Kokoro call on this CPU: wall time against the raw audio it decodes (a linear
   fit: fixed ms + ms per audio second), and how much of that audio is the lead-in/tail silence the
   model generates around every phrase (trimmed before sending, but decoded all the same).
2. A sweep of the first-chunk size (phonemes): time to first chunk p50 and CER through our Whisper,
   in-process (the Triton path measured the same within noise in benchmarks/tts.py). The shortest
   possible phrase, one syllable, is in the cost table: its decoded lead-in and tail silence alone
   put it near or past 300 ms on this CPU.
"""
from __future__ import annotations

import argparse
import time

import kocer
import numpy as np

from benchmarks.common import RESULTS, ROOT, percentiles, write
from benchmarks.corpus import TTS_SENTENCES

PROBES = ["네", "안녕하세요", "오늘 날씨가 좋네요", "내일 아침 아홉 시에 회의가 있습니다",
          "우리 반 학생들은 모두 시험을 잘 봤어요 그리고 선생님께서 칭찬해 주셨습니다"]


def call_cost(engine, repeats: int = 3) -> dict:
    """Wall ms of one model call against the raw audio seconds it returns, and its silent share."""
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    rows = []
    for text in PROBES:
        tokens = engine.tokens(to_phonemes(text))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            audio = engine.decode(tokens)
            times.append((time.perf_counter() - t0) * 1000)
        loud = np.flatnonzero(np.abs(audio) > 0.01)
        lead = loud[0] / 24000 if len(loud) else 0.0
        tail = (len(audio) - loud[-1]) / 24000 if len(loud) else 0.0
        rows.append({"text": text, "phonemes": len(tokens), "raw_audio_s": round(len(audio) / 24000, 3),
                     "lead_silence_s": round(lead, 3), "tail_silence_s": round(tail, 3), "ms": round(min(times), 1)})
    secs, ms = np.array([r["raw_audio_s"] for r in rows]), np.array([r["ms"] for r in rows])
    slope, intercept = np.polyfit(secs, ms, 1)
    return {"rows": rows, "fit": {"fixed_ms": round(float(intercept), 1), "ms_per_audio_s": round(float(slope), 1)},
            "silent_share": round(float(sum(r["lead_silence_s"] + r["tail_silence_s"] for r in rows) / secs.sum()), 3)}


def sweep(engine, stt, sizes: list[str], sentences: list[str]) -> list[dict]:
    """Every size on every sentence, interleaved, so drift in the machine's load hits all sizes alike."""
    from RealTime_zeroshot_TTS_ko.engines.base import resample
    from triton_models.stt import SttOptions

    ttfc: dict[str, list[float]] = {n: [] for n in sizes}
    hyps: dict[str, list[str]] = {n: [] for n in sizes}
    for text in sentences:
        for size in sizes:
            t0 = time.perf_counter()
            first, chunks = None, []
            for chunk in engine.stream(text, first_chunk_phonemes=int(size.rstrip("w")),
                                       windowed_first=size.endswith("w")):
                first = first or time.perf_counter()
                chunks.append(chunk.audio)
            ttfc[size].append((first - t0) * 1000)
            pcm = resample(np.concatenate(chunks), engine.sample_rate, 16000)
            hyps[size].append(stt.transcribe(pcm, SttOptions.from_dict({"beam_size": 5}))["text"])
    return [{"first_chunk_phonemes": n, "ttfc_ms": percentiles(ttfc[n]), "cer": round(kocer.cer(sentences, hyps[n]), 4)}
            for n in sizes]


def plot(rows: list[dict], path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs, ys = [r["ttfc_ms"]["p50"] for r in rows], [r["cer"] for r in rows]
    ax.plot(xs, ys, "o-")
    for r, x, y in zip(rows, xs, ys):
        ax.annotate(f"{r['first_chunk_phonemes']} ph", (x, y), textcoords="offset points", xytext=(4, 4))
    ax.axvline(300, ls="--", c="grey", label="TTFC target 300 ms")
    ax.axhline(0.12, ls=":", c="grey", label="CER target 0.12")
    ax.set_xlabel("time to first chunk p50 (ms)")
    ax.set_ylabel("CER (Whisper base)")
    ax.set_title("Kokoro first-chunk size: latency vs intelligibility")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["6", "10", "14", "18", "24", "24w"])
    parser.add_argument("--sentences", type=int, default=len(TTS_SENTENCES))
    parser.add_argument("--name", default="tts_first_chunk", help="results file name")
    parser.add_argument("--precision", default="int8", choices=("int8", "float"), help="Kokoro's graph (kokoro_graph.py)")
    args = parser.parse_args()
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine
    from triton_models.stt import WhisperTranscriber

    engine = KokoroEngine.from_dir(ROOT / "model_repository" / "tts" / "1" / "kokoro", precision=args.precision)
    stt = WhisperTranscriber(ROOT / "model_repository" / "stt" / "1" / "whisper")
    list(engine.stream("워밍업 문장입니다. 조금 더 길게 말해 봅니다."))
    cost = call_cost(engine)
    rows = sweep(engine, stt, args.sizes, TTS_SENTENCES[: args.sentences])
    png = plot(rows, RESULTS / f"{args.name}.png")
    write(args.name, {"engine": f"kokoro {args.precision} (onnxruntime, 2 threads)", "call_cost": cost, "sweep": rows,
                              "targets": {"ttfc_ms": 300, "cer": 0.12}, "plot": str(png)})


if __name__ == "__main__":
    main()

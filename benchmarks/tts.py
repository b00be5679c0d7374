"""Korean TTS: intelligibility (CER through our Whisper `stt` model), time to first chunk, RTF, and
zero-shot speaker similarity — through Triton vs the same service in-process.

    .venv/bin/python -m benchmarks.tts [--sentences 32]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import kocer
import numpy as np
from scipy.signal import resample_poly

from benchmarks.common import RESULTS, ROOT, bar_plot, percentiles, triton, write
from benchmarks.corpus import TTS_SENTENCES

HELD_OUT = ["새로운 문장으로 목소리가 얼마나 비슷한지 확인해 봅시다.", "오늘 저녁에는 친구들과 함께 식사를 할 거예요."]


def reference_voice() -> np.ndarray:
    """A 'user' reference clip: the male pack, pitched down 2 semitones (not in the search space)."""
    import librosa

    from RealTime_zeroshot_TTS_ko import load_engine

    engine = load_engine("kokoro")
    ref = engine.synthesize("저는 오늘 아침 일찍 일어나서 운동을 하고 맛있는 아침을 먹었습니다. 그리고 회사에 출근했어요.", "jm_kumo")
    return librosa.effects.pitch_shift(ref, sr=24000, n_steps=-2.0)


async def run_triton(url: str, sentences: list[str], ref24: np.ndarray) -> dict:
    from orchestrator.triton_client import TritonGateway
    from RealTime_zeroshot_TTS_ko.voice_fit import similarity, speaker_embedding

    gw = TritonGateway(url)
    rows = []
    for text in sentences:
        t0 = time.perf_counter()
        first, chunks = None, []
        async for item in gw.tts_stream("tts", text, {"sample_rate": 16000}):
            if not item.final:
                first = first or time.perf_counter()
                chunks.append(item.data)
        total = time.perf_counter() - t0
        pcm = np.concatenate(chunks)
        hyp = (await gw.transcribe("stt", pcm, beam_size=5)).text
        rows.append({"text": text, "hyp": hyp, "ttfc_ms": (first - t0) * 1000, "rtf": total / (len(pcm) / 16000)})
    t0 = time.perf_counter()
    ref16 = (resample_poly(ref24, 2, 3) * 32767).astype(np.int16)
    info = await gw.enroll_voice("tts", "bench_voice", ref16, 16000)
    enroll_s = time.perf_counter() - t0
    target = speaker_embedding(ref24, 24000)
    sims = {}
    for voice in ("bench_voice", "default"):
        audio = []
        for text in HELD_OUT:
            audio += [i.data for i in [x async for x in gw.tts_stream("tts", text, {"voice": voice})] if not i.final]
        pcm = np.concatenate(audio).astype(np.float32) / 32768
        sims[voice] = round(similarity(speaker_embedding(pcm, 24000), target), 4)
    await gw.close()
    return {"rows": rows, "enroll_s": round(enroll_s, 2), "fit": info, "similarity": sims}


async def run_in_process(sentences: list[str], stt_url: str) -> list[dict]:
    from orchestrator.triton_client import TritonGateway
    from triton_models.tts import TtsService

    service = TtsService("kokoro", ROOT / "model_repository" / "tts" / "1" / "kokoro", None)
    gw = TritonGateway(stt_url)
    rows = []
    for text in sentences:
        t0 = time.perf_counter()
        first, chunks = None, []
        for pcm, _info in service.chunks(text, {"sample_rate": 16000}):
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
    args = parser.parse_args()
    sentences = TTS_SENTENCES[: args.sentences]
    ref = reference_voice()
    with triton(["stt", "tts"]) as server:
        via = asyncio.run(run_triton(server.grpc_url, sentences, ref))
        local = asyncio.run(run_in_process(sentences, server.grpc_url))
    t, p = summarise(via["rows"]), summarise(local)
    png = bar_plot(RESULTS / "tts.png", "Korean TTS (Kokoro + g2pkk front end)",
                   {"TTFC p50 (ms)": {"triton": t["ttfc_ms"]["p50"], "in-process": p["ttfc_ms"]["p50"]},
                    "CER x1000": {"triton": t["cer"] * 1000, "in-process": p["cer"] * 1000},
                    "RTF x1000": {"triton": t["rtf"]["p50"] * 1000, "in-process": p["rtf"]["p50"] * 1000}}, "value")
    worst = sorted(via["rows"], key=lambda r: -kocer.cer(r["text"], r["hyp"]))[:5]
    write("tts", {"sentences": len(sentences), "engine": "kokoro", "voice": "default", "triton": t, "in_process": p,
                  "targets": {"cer": 0.12, "ttfc_ms": 300},
                  "zero_shot": {"enroll_s": via["enroll_s"], "similarity_to_reference": via["similarity"],
                                "fit": via["fit"]},
                  "worst": [{"text": r["text"], "hyp": r["hyp"]} for r in worst], "plot": str(png)})


if __name__ == "__main__":
    main()

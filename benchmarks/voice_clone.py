"""Zero-shot voices on human speakers: does a voice fitted to a person's reference clip sound more like
them than the stock voice, and than the best single shipped voice?

Material: human recordings only. By default ../shared/ko_speech_dev grouped by speaker (a speaker needs
two clips or more); `--speaker NAME=PATH` takes any folder (or glob) of one person's clips instead.
Per speaker and fold: the reference is a run of consecutive clips of 6–15 s (cut at 15 s), the targets
are all the speaker's *other* clips, never the reference. Similarity: Resemblyzer cosine between
speech synthesised for three sentences that no reference says and the mean embedding of the targets.
`--reference-channel phone` sends each reference through a phone line's band (300-3400 Hz) first;
`--reference-s 3` makes every reference exactly 3 s (the shortest a session may send) instead of 6-15 s.
Enrolment is the request a session makes (Triton's `tts` model, timed); CER of fitted voices is read
by our `stt` model on the TTS sentence set (all 32 by default: on 16, one misheard character moved a
voice's CER by 0.004 and the same voice read 0.09-0.12 from one CPU to another).

    .venv/bin/python -m benchmarks.voice_clone [--folds 3] [--cer-sentences 10] [--speaker NAME=PATH ...]
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import time
from pathlib import Path

import kocer
import numpy as np
import soundfile as sf
from tqdm import tqdm

from benchmarks.common import RESULTS, bar_plot, triton, write
from benchmarks.corpus import HUMAN_DEV, TTS_SENTENCES, to_16k

EVAL_SENTENCES = ["새로운 문장으로 목소리가 얼마나 비슷한지 확인해 봅시다.", "오늘 저녁에는 친구들과 함께 식사를 할 거예요.",
                  "주말마다 가까운 공원에서 자전거를 타곤 합니다."]
REF_MIN_S, REF_MAX_S = 6.0, 15.0


def phone_line(audio: np.ndarray, sr: int = 16000) -> np.ndarray:
    """The reference as a phone line or a narrowband headset carries it: 300-3400 Hz."""
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(4, [300, 3400], btype="band", fs=sr, output="sos"), audio).astype(np.float32)


CHANNELS = {"as recorded": lambda audio: audio, "phone": phone_line}


def dev_speakers() -> dict[str, list[Path]]:
    """ko_speech_dev's clips by speaker: the table's speaker column, untranscribed extras by name prefix."""
    table = (HUMAN_DEV / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    by_prefix, speakers = {}, {}
    for line in table:
        name, speaker = line.split("\t")[:2]
        by_prefix["_".join(name.split("_")[:2])] = speaker
        speakers.setdefault(speaker, []).append(HUMAN_DEV / name)
    for path in sorted((HUMAN_DEV / "extra_no_transcript").glob("*.wav")):
        speaker = by_prefix.get("_".join(path.name.split("_")[:2]))
        if speaker:
            speakers[speaker].append(path)
    return speakers


def load(path: Path) -> np.ndarray:
    audio, sr = sf.read(path, dtype="float32")
    return to_16k(audio if audio.ndim == 1 else audio.mean(axis=1), sr)


def folds(clips: list[np.ndarray], n: int, length_s: float | None = None) -> list[tuple[np.ndarray, list[int]]]:
    """(reference, indices of its clips) for up to n folds, each starting at another clip; `length_s`
    makes each reference exactly that long instead of REF_MIN_S-REF_MAX_S."""
    low, high = (length_s, length_s) if length_s else (REF_MIN_S, REF_MAX_S)
    out = []
    for start in np.linspace(0, len(clips) - 1, num=min(n, len(clips)), dtype=int):
        used, ref = [], np.zeros(0, np.float32)
        for i in list(range(start, len(clips))) + list(range(start)):
            if len(ref) >= low * 16000 or len(used) == len(clips) - 1:
                break
            used.append(i)
            ref = np.concatenate([ref, clips[i]])
        if len(ref) >= low * 16000:
            out.append((ref[: int(high * 16000)], used))
    return out


async def synth(gw, voice: str, sentences: list[str]) -> list[np.ndarray]:
    out = []
    for text in sentences:
        chunks = [i.data for i in [x async for x in gw.tts_stream("tts", text, {"voice": voice})] if not i.final]
        out.append(np.concatenate(chunks).astype(np.float32) / 32768)
    return out


async def cer(gw, voice: str, sentences: list[str]) -> float:
    from scipy.signal import resample_poly

    hyps = []
    for text, audio in zip(sentences, await synth(gw, voice, sentences)):
        pcm = (resample_poly(audio, 2, 3) * 32767).astype(np.int16)
        hyps.append((await gw.transcribe("stt", pcm, beam_size=5)).text)
    return round(kocer.cer(sentences, hyps), 4)


async def run(url: str, speakers: dict[str, list[Path]], n_folds: int, cer_sentences: list[str],
              channel: str = "as recorded", reference_s: float | None = None) -> list[dict]:
    from orchestrator.triton_client import TritonGateway
    from RealTime_zeroshot_TTS_ko.voice_fit import similarity, speaker_embedding

    gw = TritonGateway(url)
    packs = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    stock = {v: speaker_embedding(np.concatenate(await synth(gw, v, EVAL_SENTENCES)), 24000)
             for v in tqdm(["default", *packs], desc="stock voices")}
    stock_cer = await cer(gw, "default", cer_sentences)
    rows = []
    for speaker, paths in speakers.items():
        clips = [load(p) for p in paths]
        for k, (ref, used) in enumerate(tqdm(folds(clips, n_folds, reference_s), desc=speaker)):
            targets = [c for i, c in enumerate(clips) if i not in used]
            target = np.mean([speaker_embedding(c, 16000) for c in targets], axis=0)
            voice = f"bench_{speaker}_{k}"
            t0 = time.perf_counter()
            sent = np.clip(CHANNELS[channel](ref), -1, 1)  # the targets stay as recorded
            info = await gw.enroll_voice("tts", voice, (sent * 32767).astype(np.int16), 16000)
            enroll_s = time.perf_counter() - t0
            fitted = speaker_embedding(np.concatenate(await synth(gw, voice, EVAL_SENTENCES)), 24000)
            singles = {v: similarity(stock[v], target) for v in packs}
            best = max(singles, key=singles.get)
            rows.append({"speaker": speaker, "fold": k, "reference": [paths[i].name for i in used],
                         "reference_s": round(len(ref) / 16000, 1), "targets": len(targets),
                         "fitted": round(similarity(fitted, target), 4),
                         "stock": round(similarity(stock["default"], target), 4),
                         "best_single": round(singles[best], 4), "best_single_voice": best,
                         "enroll_s": round(enroll_s, 2), "cer_fitted": await cer(gw, voice, cer_sentences),
                         "cer_stock": stock_cer, "fit": info})
            print(rows[-1])
    await gw.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5, help="references per speaker, each from other clips")
    parser.add_argument("--cer-sentences", type=int, default=len(TTS_SENTENCES))
    parser.add_argument("--speaker", action="append", default=[], help="NAME=DIR or NAME=GLOB of one person's clips")
    parser.add_argument("--name", default="voice_clone", help="results file name")
    parser.add_argument("--reference-channel", choices=list(CHANNELS), default="as recorded",
                        help="what the reference goes through before it is sent (the targets never do)")
    parser.add_argument("--reference-s", type=float, default=None,
                        help="every reference exactly this long (seconds) instead of 6-15 s")
    args = parser.parse_args()
    if args.speaker:
        speakers = {}
        for spec in args.speaker:
            name, path = spec.split("=", 1)
            speakers[name] = sorted(Path(p) for p in (glob.glob(f"{path}/*.wav") if Path(path).is_dir() else glob.glob(path)))
    else:
        speakers = dev_speakers()
    skipped = [s for s, p in speakers.items() if len(p) < 2]
    speakers = {s: p for s, p in speakers.items() if len(p) >= 2}
    with triton(["stt", "tts"]) as server:
        rows = asyncio.run(run(server.grpc_url, speakers, args.folds, TTS_SENTENCES[: args.cer_sentences],
                               args.reference_channel, args.reference_s))
    per_speaker = {}
    for s in speakers:
        mine = [r for r in rows if r["speaker"] == s]
        per_speaker[s] = {k: round(float(np.mean([r[k] for r in mine])), 4)
                          for k in ("fitted", "stock", "best_single", "enroll_s", "cer_fitted")}
        per_speaker[s]["gain_over_stock"] = round(per_speaker[s]["fitted"] - per_speaker[s]["stock"], 4)
    summary = {"mean_gain_over_stock": round(float(np.mean([r["fitted"] - r["stock"] for r in rows])), 4),
               "folds_fitted_above_stock": f"{sum(r['fitted'] > r['stock'] for r in rows)}/{len(rows)}",
               "folds_fitted_above_best_single": f"{sum(r['fitted'] > r['best_single'] for r in rows)}/{len(rows)}",
               "speakers_fitted_above_stock_and_best_single":
                   f"{sum(v['fitted'] > max(v['stock'], v['best_single']) for v in per_speaker.values())}/{len(per_speaker)}",
               "enroll_s_max": max(r["enroll_s"] for r in rows), "cer_fitted_max": max(r["cer_fitted"] for r in rows)}
    png = bar_plot(RESULTS / f"{args.name}.png", "Speaker similarity to held-out human clips (Resemblyzer)",
                   {f"{r['speaker']} #{r['fold']}": {"fitted": r["fitted"], "stock": r["stock"],
                                                     "best single": r["best_single"]} for r in rows}, "cosine")
    write(args.name, {"material": "human speech only; references never scored against",
                      "reference_channel": args.reference_channel,
                      "reference_s": args.reference_s or f"{REF_MIN_S:g}-{REF_MAX_S:g}", "speakers": per_speaker,
                      "summary": summary, "skipped_speakers (one clip)": skipped,
                      "targets": {"gain_over_stock": 0.05, "enroll_s": 15, "cer": 0.13}, "folds": rows,
                      "plot": str(png)})


if __name__ == "__main__":
    main()

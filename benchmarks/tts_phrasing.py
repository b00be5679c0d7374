"""How a streamed sentence is cut into Kokoro calls, and what the listener hears (CER by our Whisper).

    .venv/bin/python -m benchmarks.tts_phrasing [--sets tense,everyday,tts]

In-process, stock voice, on benchmarks/corpus.py's sets; per sentence, the same audio the engine
streams in each way (KokoroEngine.phrase, the one call path and the windowed first phrase):
- "phrases, own style": pieces of 24, 48, ... phonemes (phrase_chunks), each with the style row of
  its own length, as before 2026-11-28;
- "phrases, sentence style": the same pieces with the whole sentence's style row (now, when the
  listener has no audio ahead of the sentence);
- "one call": the whole sentence (now, when the audio ahead covers the call);
plus the windowed first phrase (a reply's first sentence) with either style, and with its rest
decoded as before 2026-11-28 evening (the whole phrase again from frame 0, instead of from just
before the cut with the harmonic source's phase carried over). Also the synthesis time, the first
chunk's time and how long a listener who starts playing at the first chunk waits between chunks.
"""
from __future__ import annotations

import argparse
import time

import kocer
import numpy as np
from tqdm import tqdm

from benchmarks.common import RESULTS, ROOT, bar_plot, write
from benchmarks.corpus import TTS_SETS
WHOLE_REST = 10 ** 6  # left context frames that reach frame 0: the rest is the whole one-call decode
# name: (cut into phrases, style row of the whole sentence, first phrase windowed: False or the engine's
# first_window rule, "always" or "auto" (where this CPU decodes the rest before the window has played),
# rest's left context)
MODES = {"phrases, own style": (True, False, False, 0), "phrases, sentence style": (True, True, False, 0),
         "one call": (False, True, False, 0), "windowed first, own style": (True, False, "always", 0),
         "windowed first, sentence style": (True, True, "always", 0),
         "windowed first where the CPU affords it (auto)": (True, True, "auto", 0),
         "windowed first, sentence style, whole rest (before)": (True, True, "always", WHOLE_REST)}


def speak(engine, text: str, phrases: bool, sentence_style: bool, windowed: bool | str,
          left_context: int) -> tuple[np.ndarray, list[float], list[int]]:
    """The sentence's audio, each chunk's time after the start (s) and its length (samples)."""
    from RealTime_zeroshot_TTS_ko.engines.kokoro import FIRST_PIECE, PIECE_MAX, phrase_chunks
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    default, rule = engine.left_context_frames, engine.first_window
    engine.left_context_frames = left_context or default
    engine.first_window = windowed or rule
    try:
        started, parts, times = time.perf_counter(), [], []
        phonemes = to_phonemes(text)
        n_tokens = len(engine.tokens(phonemes))
        pieces = phrase_chunks(phonemes, first_max=FIRST_PIECE if phrases else PIECE_MAX)
        for audio, _, _ in engine.speak_pieces(pieces, windowed_first=bool(windowed),
                                               style_tokens=n_tokens if sentence_style else 0):
            parts.append(audio)
            times.append(time.perf_counter() - started)
    finally:
        engine.left_context_frames, engine.first_window = default, rule
    return np.concatenate(parts), times, [len(a) for a in parts]


def listener_wait(times: list[float], lengths: list[int], rate: int) -> float:
    """Seconds a listener who starts playing at the first chunk waits for later chunks."""
    playing_until, waited = times[0], 0.0
    for ready, length in zip(times, lengths):
        waited += max(0.0, ready - playing_until)
        playing_until = max(playing_until, ready) + length / rate
    return waited


def main() -> None:
    from RealTime_zeroshot_TTS_ko.engines.base import resample
    from RealTime_zeroshot_TTS_ko.engines.kokoro import SAMPLE_RATE, KokoroEngine
    from triton_models.stt import SttOptions, WhisperTranscriber

    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="tense,everyday,tts")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES), help="a subset of MODES")
    parser.add_argument("--name", default="tts_phrasing", help="results file name")
    args = parser.parse_args()
    modes = args.modes
    engine = KokoroEngine.from_dir(next((ROOT / "model_repository" / "tts").glob("*/kokoro")))
    stt = WhisperTranscriber(next((ROOT / "model_repository" / "stt").glob("*/whisper")))
    results = {}
    for name in args.sets.split(","):
        sentences = TTS_SETS[name]
        hyps = {m: [] for m in modes}
        seconds, firsts, waits = ({m: [] for m in modes} for _ in range(3))
        for k, text in enumerate(tqdm(sentences, desc=name)):
            order = modes[k % len(modes):] + modes[:k % len(modes)]  # no mode always runs first
            for mode in order:  # interleaved per sentence: the machine's drift hits all alike
                audio, times, lengths = speak(engine, text, *MODES[mode])
                seconds[mode].append(times[-1])
                firsts[mode].append(times[0])
                waits[mode].append(listener_wait(times, lengths, SAMPLE_RATE))
                hyps[mode].append(stt.transcribe(resample(audio, SAMPLE_RATE, 16000), SttOptions(beam_size=5))["text"])
        results[name] = {m: {"cer": round(kocer.cer(list(sentences), hyps[m]), 4), "synth_s": round(sum(seconds[m]), 1),
                             "first_chunk_ms_p50": round(1000 * float(np.median(firsts[m]))),
                             "listener_wait_ms_mean": round(1000 * float(np.mean(waits[m]))),
                             "sentences_with_wait_over_100ms": int(sum(w > 0.1 for w in waits[m])),
                             "hyps": hyps[m]} for m in modes}
        print(name, {m: r["cer"] for m, r in results[name].items()})
    groups = {f"{name} CER x1000": {m: r["cer"] * 1000 for m, r in res.items()} for name, res in results.items()}
    groups |= {f"{name} wait ms": {m: r["listener_wait_ms_mean"] for m, r in res.items()} for name, res in results.items()}
    png = bar_plot(RESULTS / f"{args.name}.png", "Streamed sentence: Kokoro calls vs CER and listener wait (in-process)",
                   groups, "CER x1000 / mean wait ms")
    write(args.name, {"sentences": {n: len(TTS_SETS[n]) for n in results}, "results": results, "plot": str(png)})


if __name__ == "__main__":
    main()

"""How a streamed sentence is cut into Kokoro calls, and what the listener hears (CER by our Whisper).

    .venv/bin/python -m benchmarks.tts_phrasing [--sets tense,everyday,tts]

In-process, stock voice, on benchmarks/corpus.py's sets; per sentence, the same audio the engine
streams in each way (KokoroEngine.phrase, the one call path and the windowed first phrase):
- "phrases, own style": pieces of 24, 48, ... phonemes (phrase_chunks), each with the style row of
  its own length, as before 2026-11-28;
- "phrases, sentence style": the same pieces with the whole sentence's style row (now, when the
  listener has no audio ahead of the sentence);
- "one call": the whole sentence (now, when the audio ahead covers the call);
plus the windowed first phrase (a reply's first sentence) with either style. Also the synthesis time.
"""
from __future__ import annotations

import argparse
import time

import kocer
import numpy as np
from tqdm import tqdm

from benchmarks.common import RESULTS, ROOT, bar_plot, write
from benchmarks.corpus import TTS_SETS
# name: (cut into phrases, style row of the whole sentence, first phrase windowed)
MODES = {"phrases, own style": (True, False, False), "phrases, sentence style": (True, True, False),
         "one call": (False, True, False), "windowed first, own style": (True, False, True),
         "windowed first, sentence style": (True, True, True)}


def speak(engine, text: str, phrases: bool, sentence_style: bool, windowed: bool) -> np.ndarray:
    from RealTime_zeroshot_TTS_ko.engines.kokoro import FIRST_PIECE, PIECE_MAX, phrase_chunks
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    phonemes = to_phonemes(text)
    n_tokens = len(engine.tokens(phonemes))
    pieces = phrase_chunks(phonemes, first_max=FIRST_PIECE if phrases else PIECE_MAX)
    parts = [audio for i, piece in enumerate(pieces)
             for audio, _ in engine.phrase(piece, windowed=windowed and i == 0,
                                           style_tokens=n_tokens if sentence_style else 0)]
    return np.concatenate(parts)


def main() -> None:
    from RealTime_zeroshot_TTS_ko.engines.base import resample
    from RealTime_zeroshot_TTS_ko.engines.kokoro import SAMPLE_RATE, KokoroEngine
    from triton_models.stt import SttOptions, WhisperTranscriber

    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default="tense,everyday,tts")
    args = parser.parse_args()
    engine = KokoroEngine.from_dir(next((ROOT / "model_repository" / "tts").glob("*/kokoro")))
    stt = WhisperTranscriber(next((ROOT / "model_repository" / "stt").glob("*/whisper")))
    results = {}
    for name in args.sets.split(","):
        sentences = TTS_SETS[name]
        hyps = {m: [] for m in MODES}
        seconds = {m: 0.0 for m in MODES}
        for text in tqdm(sentences, desc=name):
            for mode, how in MODES.items():  # interleaved per sentence: the machine's drift hits all alike
                started = time.perf_counter()
                audio = speak(engine, text, *how)
                seconds[mode] += time.perf_counter() - started
                hyps[mode].append(stt.transcribe(resample(audio, SAMPLE_RATE, 16000), SttOptions(beam_size=5))["text"])
        results[name] = {m: {"cer": round(kocer.cer(list(sentences), hyps[m]), 4), "synth_s": round(seconds[m], 1),
                             "hyps": hyps[m]} for m in MODES}
        print(name, {m: r["cer"] for m, r in results[name].items()})
    png = bar_plot(RESULTS / "tts_phrasing.png", "Streamed sentence: Kokoro calls vs CER (in-process)",
                   {f"{name} CER x1000": {m: r["cer"] * 1000 for m, r in res.items()} for name, res in results.items()},
                   "CER x1000")
    write("tts_phrasing", {"sentences": {n: len(TTS_SETS[n]) for n in results}, "results": results, "plot": str(png)})


if __name__ == "__main__":
    main()

"""Smart Turn v3.2 (pipecat-ai's turn-completion ONNX) on human Korean speech: would it cut people off?

Material: every human clip of ../shared/ko_speech_dev (transcribed and extra). "Complete" samples are
whole utterances followed by 250 ms of silence (the moment our speculative turn starts); "incomplete"
samples are the same utterances cut at a pause between words inside the sentence (a low-energy
gap of >= 60 ms between 20 % and 85 % of the speech), followed by 250 ms of silence. If the model
committed turns early, every incomplete sample it scores > 0.5 is a user cut off mid-sentence.

    .venv/bin/python -m benchmarks.smart_turn
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import percentiles, write
from benchmarks.corpus import HUMAN_DEV, to_16k, trim_to_speech

FRAME = 320  # 20 ms
PAUSE_S = 0.25
CUTOFF_TARGET = 0.05


def model_path() -> Path:
    spec = importlib.util.find_spec("pipecat")  # locates the wheel without importing it
    return Path(spec.submodule_search_locations[0]) / "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"


class SmartTurn:
    def __init__(self, threads: int = 1):
        import onnxruntime as ort
        from transformers import WhisperFeatureExtractor

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path()), opts, providers=["CPUExecutionProvider"])
        self.features = WhisperFeatureExtractor(chunk_length=8)

    def complete_probability(self, audio: np.ndarray) -> float:
        audio = audio[-8 * 16000:]
        audio = np.pad(audio, (8 * 16000 - len(audio), 0))  # the last 8 s, zero-padded at the front
        feats = self.features(audio, sampling_rate=16000, padding="max_length", max_length=128000, truncation=True,
                              do_normalize=True, return_tensors="np").input_features.astype(np.float32)
        return float(np.asarray(self.session.run(None, {"input_features": feats})[0]).reshape(-1)[0])


def inner_pauses(audio: np.ndarray, min_gap_s: float = 0.06) -> list[int]:
    """Sample offsets where a between-word gap starts, inside the middle of the utterance."""
    n = len(audio) // FRAME
    rms = np.sqrt(np.mean(audio[: n * FRAME].reshape(n, FRAME) ** 2, axis=1))
    quiet = rms < rms.max() / 20
    voiced = np.nonzero(~quiet)[0]
    first, last = voiced[0], voiced[-1]
    cuts, run_start = [], None
    for i in range(first, last):
        if quiet[i] and run_start is None:
            run_start = i
        elif not quiet[i] and run_start is not None:
            if (i - run_start) * FRAME / 16000 >= min_gap_s and \
                    first + 0.2 * (last - first) <= run_start <= first + 0.85 * (last - first):
                cuts.append(run_start * FRAME)
            run_start = None
    return cuts


def human_recordings() -> list[tuple[str, np.ndarray]]:
    out = []
    for wav in sorted(HUMAN_DEV.glob("**/*.wav")):
        audio, sr = sf.read(wav, dtype="float32")
        out.append((wav.name, trim_to_speech(to_16k(audio, sr))))
    return out


def main() -> None:
    model = SmartTurn()
    silence = np.zeros(int(PAUSE_S * 16000), np.float32)
    complete, incomplete, per_utterance, times = [], [], [], []
    for name, audio in human_recordings():
        t0 = time.perf_counter()
        complete.append(model.complete_probability(np.concatenate([audio, silence])))
        times.append((time.perf_counter() - t0) * 1000)
        probs = [model.complete_probability(np.concatenate([audio[:cut], silence])) for cut in inner_pauses(audio)]
        incomplete += probs
        if probs:
            per_utterance.append({"clip": name, "pauses": len(probs), "cut_off": any(p > 0.5 for p in probs),
                                  "probabilities": [round(p, 3) for p in probs]})
    cut_pauses = float(np.mean([p > 0.5 for p in incomplete]))
    cut_users = float(np.mean([u["cut_off"] for u in per_utterance]))
    result = {
        "material": "ko_speech_dev, all human clips (2 male speakers); cuts at inner word gaps >= 60 ms",
        "complete_utterances": len(complete), "complete_recognised": round(float(np.mean([p > 0.5 for p in complete])), 3),
        "inner_pauses": len(incomplete), "pauses_judged_complete": round(cut_pauses, 3),
        "utterances_with_pauses": len(per_utterance), "utterances_cut_off": round(cut_users, 3),
        "target_cut_off": CUTOFF_TARGET, "adopted": cut_users <= CUTOFF_TARGET,
        "latency_ms": percentiles(times), "per_utterance": per_utterance}
    write("smart_turn", result)


if __name__ == "__main__":
    main()

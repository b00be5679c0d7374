"""Voices: Kokoro style packs, their blends, and zero-shot voices fitted to a reference clip.

A Kokoro voice is a (510, 256) style table (one row per utterance length). Blends are weighted sums
of the shipped packs. Zero-shot fitting searches blend weights so that the Resemblyzer (GE2E) speaker
embedding of our output moves toward the reference's, then matches speaking rate and pitch.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("tts.voices")
DEFAULT_BLEND = {"jf_alpha": 1 / 3, "jf_nezumi": 1 / 3, "jf_gongitsune": 1 / 3}  # CER 0.096 in research
VOICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class VoiceProfile:
    style: np.ndarray                 # (510, 256) float32
    speed: float = 1.0
    pitch_semitones: float = 0.0      # applied after synthesis
    weights: dict[str, float] = field(default_factory=dict)
    similarity: float | None = None   # to its reference, when fitted


class VoiceBank:
    def __init__(self, packs: dict[str, np.ndarray], voice_dir: Path | None = None):
        self.packs = {k: v.reshape(v.shape[0], -1).astype(np.float32) for k, v in packs.items()}
        self.voice_dir = Path(voice_dir) if voice_dir else None
        self.profiles: dict[str, VoiceProfile] = {k: VoiceProfile(v, weights={k: 1.0}) for k, v in self.packs.items()}
        self.profiles["default"] = self.blend(DEFAULT_BLEND)
        self._lock = threading.Lock()

    @classmethod
    def from_npz(cls, path: Path, voice_dir: Path | None = None) -> "VoiceBank":
        with np.load(str(path)) as npz:
            return cls({k: npz[k] for k in npz.files}, voice_dir)

    def blend(self, weights: dict[str, float]) -> VoiceProfile:
        total = sum(weights.values())
        style = sum(self.packs[k] * (w / total) for k, w in weights.items())
        return VoiceProfile(style.astype(np.float32), weights={k: w / total for k, w in weights.items()})

    def get(self, voice: str) -> VoiceProfile:
        voice = voice or "default"
        if voice in self.profiles:
            return self.profiles[voice]
        if self.voice_dir and VOICE_ID.match(voice) and (self.voice_dir / f"{voice}.npz").exists():
            with self._lock:
                self.profiles[voice] = self._load(self.voice_dir / f"{voice}.npz")
            return self.profiles[voice]
        raise KeyError(f"unknown voice {voice!r}")

    def add(self, voice: str, profile: VoiceProfile) -> None:
        if not VOICE_ID.match(voice) or voice in self.packs or voice == "default":
            raise ValueError(f"bad voice id {voice!r}")
        with self._lock:
            self.profiles[voice] = profile
            if self.voice_dir:
                self.voice_dir.mkdir(parents=True, exist_ok=True)
                tmp = self.voice_dir / f".{voice}.tmp.npz"
                np.savez(tmp, style=profile.style, speed=profile.speed, pitch=profile.pitch_semitones,
                         names=np.array(list(profile.weights)), weights=np.array(list(profile.weights.values())),
                         similarity=np.nan if profile.similarity is None else profile.similarity)
                tmp.replace(self.voice_dir / f"{voice}.npz")

    @staticmethod
    def _load(path: Path) -> VoiceProfile:
        with np.load(str(path)) as z:
            sim = float(z["similarity"])
            return VoiceProfile(z["style"], float(z["speed"]), float(z["pitch"]),
                                dict(zip(map(str, z["names"]), map(float, z["weights"]))),
                                None if np.isnan(sim) else sim)


# ---------------------------------------------------------------- zero-shot fitting

_encoder = None
FIT_SENTENCES = ["안녕하세요, 저는 여러분의 목소리를 배우고 있습니다."]


def speaker_encoder():
    global _encoder
    if _encoder is None:
        from resemblyzer import VoiceEncoder

        _encoder = VoiceEncoder(device="cpu", verbose=False)
    return _encoder


def speaker_embedding(audio: np.ndarray, sr: int) -> np.ndarray:
    from resemblyzer import preprocess_wav

    return speaker_encoder().embed_utterance(preprocess_wav(audio.astype(np.float32), source_sr=sr))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def median_pitch(audio: np.ndarray, sr: int) -> float:
    import librosa

    audio = audio.astype(np.float32)
    f0 = librosa.yin(audio, fmin=70, fmax=400, sr=sr, frame_length=1024)
    hop = 256
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=hop)[0][: len(f0)]
    voiced = f0[(rms[: len(f0)] > 0.3 * rms.max()) & (f0 < 390)]  # loud frames only: skip unvoiced noise
    return float(np.median(voiced)) if len(voiced) else 0.0


def syllable_rate(audio: np.ndarray, sr: int) -> float:
    """Energy peaks (syllable nuclei) per second of voiced audio: a rate comparable across clips."""
    import scipy.signal as ss

    hop = int(0.01 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(audio, int(0.03 * sr))[::hop]
    env = np.sqrt((frames ** 2).mean(axis=1))
    env = ss.savgol_filter(env, 7, 2) if len(env) > 7 else env
    voiced = env > 0.1 * env.max()
    peaks, _ = ss.find_peaks(env, height=0.2 * env.max(), distance=8, prominence=0.05 * env.max())
    seconds = voiced.sum() * 0.01
    return len(peaks) / seconds if seconds > 0.3 else 0.0


def fit_voice(engine, reference: np.ndarray, sr: int, *, rounds: int = 1, seed: int = 0) -> VoiceProfile:
    """Search pack blends maximising speaker similarity to the reference; then match rate and pitch."""
    t0 = time.perf_counter()
    if not 3.0 <= len(reference) / sr <= 30.0:
        raise ValueError("reference clip must be 3–30 s long")
    target = speaker_embedding(reference, sr)
    bank, names = engine.voices, sorted(engine.voices.packs)
    rng = np.random.default_rng(seed)

    def score(weights: np.ndarray) -> tuple[float, VoiceProfile, np.ndarray]:
        profile = bank.blend(dict(zip(names, weights)))
        bank.profiles["_fit"] = profile
        audio = np.concatenate([engine.synthesize(s, "_fit") for s in FIT_SENTENCES])
        return similarity(speaker_embedding(audio, engine.sample_rate), target), profile, audio

    candidates = [np.eye(len(names))[i] for i in range(len(names))] + [np.full(len(names), 1 / len(names))]
    best = max((score(w) + (w,) for w in candidates), key=lambda r: r[0])
    for r in range(rounds):  # local search around the best blend
        for _ in range(4):
            w = np.clip(best[3] + rng.normal(0, 0.35 / (r + 1), len(names)), 0, None)
            if w.sum() == 0:
                continue
            trial = score(w / w.sum()) + (w / w.sum(),)
            if trial[0] > best[0]:
                best = trial
    bank.profiles.pop("_fit", None)
    sim, profile, audio, _ = best
    ref_rate, out_rate = syllable_rate(reference, sr), syllable_rate(audio, engine.sample_rate)
    if ref_rate and out_rate:
        profile.speed = float(np.clip(ref_rate / out_rate, 0.8, 1.25))
    ref_f0, out_f0 = median_pitch(reference, sr), median_pitch(audio, engine.sample_rate)
    if ref_f0 and out_f0:
        profile.pitch_semitones = float(np.clip(12 * np.log2(ref_f0 / out_f0), -4, 4))
    profile.similarity = sim
    log.info("fitted voice: sim=%.3f speed=%.2f pitch=%+.1f st in %.1fs", sim, profile.speed,
             profile.pitch_semitones, time.perf_counter() - t0)
    return profile

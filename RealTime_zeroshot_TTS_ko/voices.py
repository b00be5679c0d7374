"""Voices: Kokoro style packs, their blends, and the zero-shot voices fitted to a reference clip
(voice_fit.py), kept per voice id in voice_dir so they survive restarts.

A Kokoro voice is a (510, 256) style table (one row per utterance length). Blends are weighted sums
of the shipped packs.
"""
from __future__ import annotations

import logging
import re
import threading
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
    pitch_semitones: float = 0.0      # moves the decoder's F0 input
    weights: dict[str, float] = field(default_factory=dict)
    similarity: float | None = None   # to its reference clip, when fitted
    formant: float = 1.0              # spectral-envelope scale (voice_dsp.warp)
    eq_gains: np.ndarray | None = None  # per-band equaliser gains in dB (voice_dsp)

    @property
    def f0_scale(self) -> float:
        return float(2.0 ** (self.pitch_semitones / 12.0))


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

    def check_id(self, voice: str) -> None:
        if not VOICE_ID.match(voice) or voice in self.packs or voice == "default":
            raise ValueError(f"bad voice id {voice!r}")

    def add(self, voice: str, profile: VoiceProfile) -> None:
        """Keep a fitted voice (and write it to voice_dir: it survives restarts). Writes are serialised
        by the bank's lock and land atomically, so two enrolments never mix."""
        self.check_id(voice)
        with self._lock:
            self.profiles[voice] = profile
            if self.voice_dir:
                self.voice_dir.mkdir(parents=True, exist_ok=True)
                tmp = self.voice_dir / f".{voice}.tmp.npz"
                np.savez(tmp, style=profile.style, speed=profile.speed, pitch=profile.pitch_semitones,
                         names=np.array(list(profile.weights)), weights=np.array(list(profile.weights.values())),
                         similarity=np.nan if profile.similarity is None else profile.similarity,
                         formant=profile.formant,
                         eq_gains=np.zeros(0) if profile.eq_gains is None else profile.eq_gains)
                tmp.replace(self.voice_dir / f"{voice}.npz")

    @staticmethod
    def _load(path: Path) -> VoiceProfile:
        with np.load(str(path)) as z:
            sim = float(z["similarity"])
            gains = z["eq_gains"] if "eq_gains" in z.files and z["eq_gains"].size else None
            return VoiceProfile(z["style"], float(z["speed"]), float(z["pitch"]),
                                dict(zip(map(str, z["names"]), map(float, z["weights"]))),
                                None if np.isnan(sim) else sim,
                                float(z["formant"]) if "formant" in z.files else 1.0, gains)

"""Korean test audio: a clip from ../shared/data when one is there, else speech our TTS makes.

The made clips are real audio (Kokoro-82M speaking our G2P output), cached under .cache/test_audio.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "test_audio"
SHARED_DATA = ROOT.parent / "shared" / "data"
SENTENCES = [
    "안녕하세요, 오늘 날씨가 정말 좋네요.",
    "내일 아침 아홉 시에 회의가 있습니다.",
    "저는 커피보다 녹차를 더 좋아해요.",
]


def _to_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != 16000:
        g = np.gcd(sr, 16000)
        audio = resample_poly(audio, 16000 // g, sr // g)
    return audio.astype(np.float32)


def shared_clip() -> tuple[np.ndarray, str] | None:
    """(16 kHz float audio, reference text) of the first shared clip with a .txt transcript."""
    for wav in sorted(SHARED_DATA.glob("**/*.wav")) if SHARED_DATA.exists() else []:
        txt = wav.with_suffix(".txt")
        if txt.exists():
            audio, sr = sf.read(wav, dtype="float32")
            return _to_16k(audio, sr), txt.read_text(encoding="utf-8").strip()
    return None


_engine = None


def synth_clip(text: str, voice: str = "default", pad_s: float = 0.4) -> np.ndarray:
    """16 kHz float32 speech of `text`, with a little silence either side (cached on disk)."""
    global _engine
    key = hashlib.sha1(json.dumps([text, voice, pad_s]).encode()).hexdigest()[:16]
    path = CACHE / f"{key}.wav"
    if path.exists():
        return sf.read(path, dtype="float32")[0]
    if _engine is None:
        from RealTime_zeroshot_TTS_ko import load_engine

        _engine = load_engine("kokoro")
    audio = _to_16k(_engine.synthesize(text, voice), _engine.sample_rate)
    pad = np.zeros(int(pad_s * 16000), np.float32)
    audio = np.concatenate([pad, audio, pad])
    CACHE.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, 16000)
    return audio


def korean_clip() -> tuple[np.ndarray, str]:
    """The clip the STT tests use: shared data if present, else our TTS speaking SENTENCES."""
    shared = shared_clip()
    if shared:
        return shared
    text = " ".join(SENTENCES)
    return synth_clip(text), text


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, level, int(seconds * 16000))).astype(np.float32)

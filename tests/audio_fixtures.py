"""Korean test audio (shared with the benchmarks: benchmarks/corpus.py)."""
from __future__ import annotations

import numpy as np

from benchmarks.corpus import HUMAN_DEV, human_clips, shared_clips, synth_clip, to_pcm16  # noqa: F401

SENTENCES = [
    "안녕하세요, 오늘 날씨가 정말 좋네요.",
    "내일 아침 아홉 시에 회의가 있습니다.",
    "저는 커피보다 녹차를 더 좋아해요.",
]


def korean_clip() -> tuple[np.ndarray, str]:
    """The STT tests' clip: the first shared clip if present, else the first human recording of
    ko_speech_dev (a Zeroth speaker reading a news sentence), else our TTS speaking SENTENCES."""
    shared = shared_clips()
    if shared:
        return shared[0]
    if (HUMAN_DEV / "transcripts.tsv").exists():
        audio, text, _name = human_clips()[0]
        return audio, text
    text = " ".join(SENTENCES)
    return synth_clip(text), text


def spoken_turns(n: int) -> list[np.ndarray]:
    """n utterances for a conversation test: human recordings of ko_speech_dev (the shortest first),
    else our TTS speaking SENTENCES."""
    if (HUMAN_DEV / "transcripts.tsv").exists():
        return sorted((audio for audio, _text, _name in human_clips()), key=len)[:n]
    return [synth_clip(text) for text in SENTENCES[:n]]


def noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(0, level, int(seconds * 16000))).astype(np.float32)

"""The engine interface every Korean TTS engine implements (kokoro, melo+openvoice, espeak)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass
class SynthChunk:
    audio: np.ndarray  # float32 mono in [-1, 1] at the engine's sample_rate
    text: str          # what this chunk says (phonemes or text, for logs)
    last: bool         # last chunk of the sentence


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Polyphase resampling of float mono audio (scipy reduces src/dst by their gcd itself)."""
    if src == dst:
        return audio
    from scipy.signal import resample_poly

    return resample_poly(audio, dst, src).astype(np.float32)


class TtsEngine(ABC):
    sample_rate: int
    voices = None  # a voice bank whose .get(voice) raises KeyError for unknown voices; None: one stock voice

    def check_voice(self, voice: str) -> None:
        """ValueError for a voice this engine cannot speak."""
        if self.voices is None:
            if voice != "default":
                raise ValueError(f"unknown voice {voice!r}")
            return
        try:
            self.voices.get(voice)
        except KeyError as exc:
            raise ValueError(str(exc)) from None

    def urgent(self, lead: bool = False):
        """Synthesis by this thread inside the block is a reply's first audio (with `lead`: a later
        chunk its listener is about to run out of audio for): engines that share one session between
        conversations let it go first (kokoro: engines/run_gate.py)."""
        return nullcontext()

    def enroll(self, voice_id: str, reference: np.ndarray, sr: int, pause=None) -> dict:
        """Zero-shot voice from a reference clip; engines that can, override this."""
        raise ValueError("this TTS engine has no zero-shot voices")

    @abstractmethod
    def stream(self, text: str, voice: str = "default", speed: float | None = None,
               windowed_first: bool = False, ahead_s: float = 0.0) -> Iterator[SynthChunk]:
        """Audio for one sentence, in chunks, as soon as each is ready. `windowed_first`: the first
        audio as early as the engine can make it (a reply's first sentence); `ahead_s`: audio the
        listener has yet to play before this sentence, time an engine may spend on fewer, longer calls.
        Engines that make one call per sentence ignore both."""

    def synthesize(self, text: str, voice: str = "default", speed: float | None = None) -> np.ndarray:
        chunks = [c.audio for c in self.stream(text, voice, speed)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)

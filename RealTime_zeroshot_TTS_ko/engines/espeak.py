"""espeak-ng Korean (Debian package): a formant fallback only — Whisper reads it at CER ~0.75."""
from __future__ import annotations

import io
import shutil
import subprocess
from typing import Iterator

import numpy as np
import soundfile as sf

from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine
from RealTime_zeroshot_TTS_ko.text.normalize import normalize


class EspeakEngine(TtsEngine):
    sample_rate = 22050

    def __init__(self, binary: str = "espeak-ng"):
        self.binary = shutil.which(binary)
        if not self.binary:
            raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")

    def stream(self, text: str, voice: str = "default", speed: float | None = None,
               windowed_first: bool = False, ahead_s: float = 0.0) -> Iterator[SynthChunk]:
        wpm = str(int(170 * (speed or 1.0)))
        wav = subprocess.run([self.binary, "-v", "ko", "-s", wpm, "--stdout", normalize(text)],
                             capture_output=True, check=True, timeout=30).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        assert rate == self.sample_rate
        yield SynthChunk(np.asarray(audio, np.float32), text, last=True)

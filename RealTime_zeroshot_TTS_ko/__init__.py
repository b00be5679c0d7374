"""RealTime_zeroshot_TTS_ko: Korean streaming TTS with zero-shot voices.

Front end (text/): normalisation, g2pkk standard pronunciation, IPA/jamo symbols, sentence splitter.
Engines (engines/): Kokoro-82M ONNX (default), MeloTTS-KR + OpenVoice v2 (production checkpoints),
espeak-ng (fallback). Voices (voices.py): stock packs, blends, and voices fitted to a reference clip.
"""
import os

# numba (librosa's pitch tracker, used by voice fits) compiles for the host CPU, and its code for AMD
# Zen 5 ("znver5", llvmlite 0.50) crashes librosa.yin with a segfault, which took the `tts` model's
# process down at its warm-up. Generic x86-64 code is ample for a fit's few calls; an operator's
# NUMBA_CPU_NAME wins. Set before numba is first imported (it reads this once).
os.environ.setdefault("NUMBA_CPU_NAME", "generic")

from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine
from RealTime_zeroshot_TTS_ko.frontend import to_phonemes, to_pronunciation
from RealTime_zeroshot_TTS_ko.text.splitter import SentenceSplitter, split_sentences

__all__ = ["SynthChunk", "TtsEngine", "SentenceSplitter", "split_sentences", "to_phonemes", "to_pronunciation",
           "load_engine"]


def load_engine(name: str, weights_dir=None, **kwargs) -> TtsEngine:
    """Engine by name: kokoro | melo | espeak. weights_dir: the model-repository version folder."""
    if name == "kokoro":
        from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine

        return KokoroEngine.from_dir(weights_dir, **kwargs) if weights_dir else KokoroEngine.from_packages(**kwargs)
    if name == "espeak":
        from RealTime_zeroshot_TTS_ko.engines.espeak import EspeakEngine

        return EspeakEngine()
    if name == "melo":
        from RealTime_zeroshot_TTS_ko.engines.melo import MeloOpenVoiceEngine

        return MeloOpenVoiceEngine.from_settings(weights_dir, **kwargs)
    raise ValueError(f"unknown TTS engine {name!r} (kokoro, melo, espeak)")

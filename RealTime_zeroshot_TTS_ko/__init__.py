"""RealTime_zeroshot_TTS_ko: Korean streaming TTS with zero-shot voices.

Front end (text/): normalisation, g2pkk standard pronunciation, IPA/jamo symbols, sentence splitter.
Engines (engines/): Kokoro-82M ONNX (default), MeloTTS-KR + OpenVoice v2 (production checkpoints),
espeak-ng (fallback). Voices (voices.py): stock packs, blends, and voices fitted to a reference clip.
"""
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

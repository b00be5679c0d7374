"""The text front end shared by every engine: normalise → standard pronunciation → engine symbols."""
from __future__ import annotations

from RealTime_zeroshot_TTS_ko.text.g2p import pronounce
from RealTime_zeroshot_TTS_ko.text.ipa import hangul_to_ipa
from RealTime_zeroshot_TTS_ko.text.normalize import normalize


def to_pronunciation(text: str) -> str:
    """Written Korean → normalised → pronounced Hangul (the input of every symbol mapping)."""
    return pronounce(normalize(text))


def to_phonemes(text: str) -> str:
    """Kokoro's symbols: IPA within its vocabulary."""
    return hangul_to_ipa(to_pronunciation(text))

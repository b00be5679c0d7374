"""Pronounced Hangul → jamo → IPA restricted to Kokoro's symbol vocabulary.

Input is g2pkk output, so sound changes (liaison, tensification, nasalisation) are already applied;
what remains is a phone-level table plus lenis voicing between voiced sounds. Kokoro has no symbol
for tense consonants: they are the plain consonant after a glottal onset (ʔk, ʔs), as phoneticians often write
them, except after a stop coda, whose closure already holds them (학꾜 → hakkjo). Without the onset
Whisper heard 떡 as 덕 and 빵 as 방: stock voice CER 0.203 → 0.166 on 30 sentences rich in tense
consonants, 0.223 → 0.183 on 24 everyday ones, 0.108 → 0.102 on the 32 of benchmarks/corpus.py.
"""
from __future__ import annotations

import re

from jamo import hangul_to_jamo

INITIAL = {
    "ᄀ": "k", "ᄁ": "ʔk", "ᄂ": "n", "ᄃ": "t", "ᄄ": "ʔt", "ᄅ": "ɾ", "ᄆ": "m", "ᄇ": "p", "ᄈ": "ʔp",
    "ᄉ": "s", "ᄊ": "ʔs", "ᄋ": "", "ᄌ": "ʨ", "ᄍ": "ʔʨ", "ᄎ": "ʨʰ", "ᄏ": "kʰ", "ᄐ": "tʰ", "ᄑ": "pʰ",
    "ᄒ": "h",
}
VOICED_LENIS = {"ᄀ": "ɡ", "ᄃ": "d", "ᄇ": "b", "ᄌ": "ʥ"}
MEDIAL = {
    "ᅡ": "a", "ᅢ": "ɛ", "ᅣ": "ja", "ᅤ": "jɛ", "ᅥ": "ʌ", "ᅦ": "e", "ᅧ": "jʌ", "ᅨ": "je", "ᅩ": "o",
    "ᅪ": "wa", "ᅫ": "wɛ", "ᅬ": "we", "ᅭ": "jo", "ᅮ": "u", "ᅯ": "wʌ", "ᅰ": "we", "ᅱ": "ɥi",
    "ᅲ": "ju", "ᅳ": "ɯ", "ᅴ": "ɰi", "ᅵ": "i",
}
FINAL = {  # after G2P only the seven representative codas remain; the rest are reduced here
    "ᆨ": "k", "ᆩ": "k", "ᆪ": "k", "ᆿ": "k", "ᆫ": "n", "ᆬ": "n", "ᆭ": "n", "ᆮ": "t", "ᆺ": "t",
    "ᆻ": "t", "ᆽ": "t", "ᆾ": "t", "ᇀ": "t", "ᇂ": "t", "ᆯ": "l", "ᆰ": "k", "ᆱ": "m", "ᆲ": "l",
    "ᆳ": "l", "ᆴ": "l", "ᆵ": "p", "ᆶ": "l", "ᆷ": "m", "ᆸ": "p", "ᆹ": "p", "ᇁ": "p", "ᆼ": "ŋ",
}
VOICED_CODAS = {"ᆫ", "ᆯ", "ᆷ", "ᆼ"}
PUNCT = {".": ".", ",": ",", "?": "?", "!": "!", "…": "…", ";": ";", ":": ":", "。": ".", "？": "?",
         "！": "!", "、": ",", "~": "…"}


def hangul_to_ipa(text: str) -> str:
    """IPA for pronounced Hangul; spaces kept, punctuation mapped, anything else dropped."""
    out: list[str] = []
    prev_voiced = False  # previous phone was a vowel or a voiced coda (within a word)
    prev_coda_l = False
    for ch in hangul_to_jamo(text):
        if ch in INITIAL:
            if ch == "ᄅ" and prev_coda_l:
                out.append("l")  # ㄹㄹ is a lateral geminate
            elif ch in VOICED_LENIS and prev_voiced:
                out.append(VOICED_LENIS[ch])
            else:
                out.append(INITIAL[ch])
            prev_coda_l = False
        elif ch in MEDIAL:
            out.append(MEDIAL[ch])
            prev_voiced, prev_coda_l = True, False
        elif ch in FINAL:
            out.append(FINAL[ch])
            prev_voiced, prev_coda_l = ch in VOICED_CODAS, ch == "ᆯ"
        elif ch.isspace():
            out.append(" ")
            prev_voiced = False  # keep prev_coda_l: g2pkk links ㄹ+ㄹ across words (오늘 날씨 → 오늘 랄씨)
        elif ch in PUNCT:
            out.append(PUNCT[ch])
            prev_voiced = prev_coda_l = False
    ipa = re.sub(r"([ktp])ʔ", r"\1", "".join(out))  # a stop coda's closure carries the tension
    ipa = re.sub(r"\s+([.,?!…;:])", r"\1", ipa)
    return re.sub(r"\s+", " ", ipa).strip()

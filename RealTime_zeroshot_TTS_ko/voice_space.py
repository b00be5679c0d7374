"""The voice space zero-shot fits search (voice_fit.py): styles around the stock voice, made once per
model by `export tts` and kept beside the weights, each with its audio for the search's two sentences
and its CER as heard by Whisper, pooled and per sentence; a style less intelligible than stock is
never chosen."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from RealTime_zeroshot_TTS_ko.voice_dsp import band_levels, warp
from RealTime_zeroshot_TTS_ko.voices import DEFAULT_BLEND, VoiceProfile

SPACE_SENTENCE = "저는 매일 아침 일곱 시에 일어나서 물을 한 잔 마십니다."   # the search's sentence
CHECK_SENTENCE = "오늘 오후에 시장에 가서 과일과 채소를 사 왔어요."         # the held-out check's sentence
CER_SENTENCES = ["내일은 비가 온다고 하니까 우산을 꼭 챙기세요.", "이 책은 도서관에서 빌려 온 거예요.",
                 "우리 집 강아지는 산책을 정말 좋아합니다.", "점심으로 김치찌개를 먹을까 해요.",
                 "다음 주 월요일에 다시 전화 드리겠습니다.", "창문을 열면 바람이 시원하게 들어와요.",
                 "지하철을 타고 회사까지 사십 분 정도 걸립니다.", "동생이 어제 새 자전거를 샀어요.",
                 "이번 여름에는 바다로 여행을 가고 싶어요.", "회의 자료는 이메일로 보내 드렸습니다.",
                 "저녁에 친구와 영화를 보기로 했어요.", "감기에 걸려서 병원에 다녀왔습니다."]
# A style is excluded when it reads worse than the stock voice by more than CER_MARGIN pooled *and* on
# significantly more of the sentences than it reads better (one-sided sign test, EXCLUDE_P): 12 sentences
# put a character at 0.005, and the check's pooled CER did not rank 18 voices as 16 other sentences did
# (Spearman 0.06, Zen 3 VM): a bare margin admitted or excluded moves by two or three misheard characters,
# differently on each CPU.
CER_MARGIN, EXCLUDE_P = 0.01, 0.05
# How far from the stock voice toward each pack. The 12-sentence check admits every move up to the packs
# themselves on a fast CPU, but it cannot hear what streaming costs them: fits that chose a pure pack
# read the TTS set at CER 0.12 in one call per sentence and 0.15-0.17 streamed through Triton (stock
# 0.10), the 0.4 moves at 0.10-0.115 streamed from 6-15 s references (+0.085 over stock instead of +0.076
# for 0.2 alone), though up to 0.151 from 3 s ones (toward jm_kumo; Zen 4, results/voice_space_moves_zen4.json,
# voice_clone_zen4_packs.json, voice_clone_zen4_moves04.json, voice_clone_3s_zen4_moves04.json):
MOVES = (0.2, 0.4)
SPACE_RANDOM, SPACE_SEED = 0, 0  # random timbre offsets: CER 0.20 on our TTS set, unseen by the 12-sentence check
TIMBRE = slice(0, 128)


class VoiceSpace:
    """Styles around the stock voice with their audio for SPACE_SENTENCE and CHECK_SENTENCE (24 kHz)
    and their CER on CER_SENTENCES, pooled and per sentence (styles × sentences; NaN: not measured).
    Style 0 is the stock voice."""

    def __init__(self, names: list[str], tables: np.ndarray, weights: np.ndarray, offsets: np.ndarray,
                 search_audio: list[np.ndarray], check_audio: list[np.ndarray], cer: np.ndarray,
                 sentence_cer: np.ndarray | None = None):
        self.names, self.tables, self.weights, self.offsets = names, tables, weights, offsets
        self.search_audio, self.check_audio, self.cer = search_audio, check_audio, cer
        self.sentence_cer = sentence_cer
        self._levels: dict[tuple[int, float], np.ndarray] = {}

    def levels(self, style: int, formant: float = 1.0) -> np.ndarray:
        """The long-term band levels of a style's stored search audio at a formant factor (16 kHz):
        measured once per space, shared by every fit and scorer (the audio never changes)."""
        key = (style, formant)
        if key not in self._levels:
            self._levels[key] = band_levels(warp(self.search_audio[style], formant, 24000, 16000), 16000)
        return self._levels[key]

    def profile(self, i: int) -> VoiceProfile:
        style = np.tensordot(self.weights[i], self.tables, axes=1) + self.offsets[i][None, :]
        return VoiceProfile(style.astype(np.float32),
                            weights={n: round(float(w), 4) for n, w in zip(self.names, self.weights[i]) if abs(w) > 1e-3})

    def intelligible(self) -> list[int]:
        """The styles a fit may choose: all but those less intelligible than the stock voice (CER_MARGIN
        pooled and, where measured per sentence, on significantly more sentences: `worse_than_stock`)."""
        if np.isnan(self.cer).any():
            return [0]
        return [i for i in range(len(self.weights)) if not self.worse_than_stock(i)]

    def worse_than_stock(self, i: int) -> bool:
        if self.cer[i] <= self.cer[0] + CER_MARGIN:
            return False
        if self.sentence_cer is None:  # a space saved before per-sentence CER: the pooled margin alone
            return True
        return sign_test(self.sentence_cer[i] - self.sentence_cer[0]) < EXCLUDE_P

    @staticmethod
    def styles(names: list[str], tables: np.ndarray, seed: int = SPACE_SEED) -> tuple[np.ndarray, np.ndarray]:
        """(weights over the packs, timbre offset) per style: the stock blend; the stock blend moved
        MOVES of the way toward each pack; SPACE_RANDOM points around it on the timbre half, scaled by
        how much the packs themselves differ there."""
        k = len(names)
        stock = np.array([DEFAULT_BLEND.get(n, 0.0) for n in names])
        weights = [stock] + [(1 - t) * stock + t * np.eye(k)[i] for t in MOVES for i in range(k)]
        rng = np.random.default_rng(seed)
        offsets = np.zeros((len(weights) + SPACE_RANDOM, tables.shape[-1]), np.float32)
        spread = tables[:, 20:200].mean(axis=1)[:, TIMBRE].std(axis=0)
        offsets[len(weights):, TIMBRE] = rng.normal(0, 1, (SPACE_RANDOM, TIMBRE.stop)) * spread * 0.3
        weights += [stock] * SPACE_RANDOM
        return np.asarray(weights, np.float32), offsets

    @classmethod
    def build(cls, engine, listen=None, progress: bool = True) -> "VoiceSpace":
        """`listen(audio_16k) -> text` (Whisper) measures each style's CER; without it only the stock
        style may be chosen."""
        import kocer

        names = sorted(engine.voices.packs)
        tables = np.stack([engine.voices.packs[k] for k in names])
        weights, offsets = cls.styles(names, tables)
        space = cls(names, tables, weights, offsets, [], [], np.full(len(weights), np.nan),
                    np.full((len(weights), len(CER_SENTENCES)), np.nan))
        search, check = engine.tokens(phonemes_of(SPACE_SENTENCE)), engine.tokens(phonemes_of(CHECK_SENTENCE))
        steps = range(len(weights))
        if progress:
            from tqdm import tqdm

            steps = tqdm(steps, desc="voice space (styles: audio, CER)")
        for i in steps:
            profile = space.profile(i)
            space.search_audio.append(speak_trimmed(engine, search, profile))
            space.check_audio.append(speak_trimmed(engine, check, profile))
            if listen is not None:
                heard = [listen(warp(engine.synthesize(text, profile), 1.0, engine.sample_rate, 16000))
                         for text in CER_SENTENCES]
                space.cer[i] = kocer.cer(CER_SENTENCES, heard)
                space.sentence_cer[i] = [kocer.cer([ref], [hyp]) for ref, hyp in zip(CER_SENTENCES, heard)]
        return space

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")

        def pack(clips):
            return np.concatenate([(c * 32767).astype(np.int16) for c in clips]), np.array([len(c) for c in clips])

        (sa, sl), (ca, cl) = pack(self.search_audio), pack(self.check_audio)
        per_sentence = {} if self.sentence_cer is None else {"sentence_cer": self.sentence_cer}
        np.savez(tmp, names=np.array(self.names), weights=self.weights, offsets=self.offsets, cer=self.cer,
                 **per_sentence, search_audio=sa, search_lengths=sl, check_audio=ca, check_lengths=cl)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, engine) -> "VoiceSpace":
        def unpack(audio, lengths):
            return [a.astype(np.float32) / 32767 for a in np.split(audio, np.cumsum(lengths)[:-1])]

        with np.load(str(path)) as z:
            names = [str(n) for n in z["names"]]
            tables = np.stack([engine.voices.packs[k] for k in names])
            return cls(names, tables, z["weights"], z["offsets"], unpack(z["search_audio"], z["search_lengths"]),
                       unpack(z["check_audio"], z["check_lengths"]), z["cer"],
                       z["sentence_cer"] if "sentence_cer" in z.files else None)


def sign_test(differences: np.ndarray) -> float:
    """One-sided sign test: the chance of at least this many positive differences among the nonzero
    ones if either sign were as likely (1.0 when none is positive)."""
    from math import comb

    worse, differ = int((differences > 0).sum()), int((differences != 0).sum())
    return sum(comb(differ, k) for k in range(worse, differ + 1)) / 2 ** differ if worse else 1.0


def space_cache_path(packs: dict[str, np.ndarray]) -> Path:
    """Where a space built from these voice packs (VoiceBank.packs) by this recipe is cached
    (KOKORO_VOICE_SPACE_CACHE or ~/.cache)."""
    import hashlib
    import os

    sentences = [SPACE_SENTENCE, CHECK_SENTENCE, *CER_SENTENCES]  # their phonemes: a front-end change rebuilds it
    key = hashlib.sha256(repr(("per-sentence CER", MOVES, SPACE_RANDOM, SPACE_SEED, sentences, [phonemes_of(s) for s in sentences])).encode())
    for name in sorted(packs):
        key.update(name.encode() + packs[name].tobytes())
    root = Path(os.environ.get("KOKORO_VOICE_SPACE_CACHE") or Path.home() / ".cache" / "RealTime_zeroshot_TTS_ko")
    return root / f"voice_space-{key.hexdigest()[:16]}.npz"


def phonemes_of(text: str) -> str:
    from RealTime_zeroshot_TTS_ko.frontend import to_phonemes

    return to_phonemes(text)


def speak_trimmed(engine, tokens: list[int], profile: VoiceProfile) -> np.ndarray:
    from RealTime_zeroshot_TTS_ko.engines.kokoro import trim_silence

    return trim_silence(engine.decode(tokens, profile))

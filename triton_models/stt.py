"""Whisper speech-to-text (faster-whisper / CTranslate2) as a Triton Python-backend model.

Why CTranslate2 and not an ONNX encoder + Python decoder: the weights ship in CTranslate2 format,
CTranslate2 runs encoder and greedy/beam decoding fused with int8 kernels on CPU (RTF ~0.12 here)
and float16 on CUDA, and a split would move the 1500x512 encoder states across a process boundary
per request for no gain. The same engine class runs in-process for the benchmark.

Silence never yields text: an energy gate, Silero VAD (the orchestrator listener's, or faster-whisper's
own for audio no VAD segmented), Whisper's own no-speech probability, and a list of the well-known
subtitle hallucinations.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_models.common import model_params, optional, pcm16_to_float, request_json

SAMPLE_RATE = 16000
# Whisper's encoder sees the utterance padded to the smallest of these windows that leaves MIN_PAD_S
# of padding, instead of 30 s (ctranslate2 4.8.5 accepts fewer than 3000 feature frames). The decoder
# dominates the time (~10 ms a token on two threads, ~6 on one: see short_window_model; the encoder
# takes 80 / 125 / 490 ms at 10 / 15 / 30 s). Measured
# on the 11 human clips of ko_speech_dev (3-10 s, 2 cores, no Whisper VAD): 15 s only 577 ms mean /
# CER 0.078, 10 s wherever 0.5 s of padding was left 501 ms / 0.076; an 8 s window around 7.3 s of
# speech made Whisper loop, hence the 2 s kept.
SHORT_WINDOWS_S = (10, 15)
MIN_PAD_S = 2.0
MAX_PREFIX = 300  # characters
TOKENS_PER_S, TOKENS_MIN = 12, 16   # decoding bound: Korean read speech is ~4-7 tokens per second
# Phrases Whisper invents on silence/noise (YouTube subtitle credits): dropped when decoding was weak.
SUBTITLE_CREDITS = re.compile(
    r"(시청해\s*주셔서\s*감사|구독과\s*좋아요|구독\s*부탁|좋아요와\s*구독|다음\s*영상에서|자막\s*제공|"
    r"MBC\s*뉴스|KBS\s*뉴스|^감사합니다\.?$)"
)
# Never speech: punctuation only, or a sound tag such as "(음악)" / "[박수]". Always dropped.
NON_SPEECH = re.compile(r"^\s*(\(.*\)|\[.*\]|[\s.,!?…~-]*)\s*$")


@dataclass
class SttOptions:
    language: str = "ko"
    beam_size: int = 1
    partial: bool = False  # partial transcripts: greedy and without the VAD pass
    window_s: int = 0      # encoder window; 0 = the smallest short one the utterance fits (benchmarks: 30)
    prefix: str = ""       # words the transcript must start with (the partials agreed on them)
    # Silero VAD inside faster-whisper before a final. A caller whose own VAD segmented the speech
    # (the orchestrator's listener) turns it off: on the human dev clips the second pass cut syllables
    # (CER 0.093 with it, 0.078 without) and cost ~50 ms
    vad: bool = True
    order: float | None = None  # a final's turn: when its user stopped speaking (an earlier turn goes first)

    @classmethod
    def from_dict(cls, d: dict | None) -> "SttOptions":
        d = d or {}
        opts = cls(language=str(d.get("language", "ko")), beam_size=int(d.get("beam_size", 1)),
                   partial=bool(d.get("partial", False)), window_s=int(d.get("window_s", 0)),
                   prefix=str(d.get("prefix", "") or "").strip(), vad=bool(d.get("vad", True)),
                   order=optional(d, "order", float))
        if opts.window_s and not 5 <= opts.window_s <= 30:
            raise ValueError("window_s must be 0 (auto) or 5..30")
        if not 1 <= opts.beam_size <= 8:
            raise ValueError("beam_size must be in 1..8")
        if len(opts.prefix) > MAX_PREFIX:
            raise ValueError(f"prefix longer than {MAX_PREFIX} characters")
        if not re.fullmatch(r"[a-z]{2,3}", opts.language):
            raise ValueError(f"bad language code {opts.language!r}")
        return opts


def encoder_window_s(duration_s: float, requested: int = 0) -> int:
    """The padded window Whisper encodes: the requested one, or else the smallest short one, when the
    utterance fits in it with MIN_PAD_S to spare; otherwise 30 s."""
    for window in (requested,) if requested else SHORT_WINDOWS_S:
        if window < 30 and duration_s <= window - MIN_PAD_S:
            return window
    return 30


def max_new_tokens(duration_s: float) -> int:
    return min(440, TOKENS_MIN + int(TOKENS_PER_S * min(duration_s, 30.0)))


def short_window_model(model_dir: str, encoder_threads: int = 0, **kwargs):
    """faster-whisper's WhisperModel whose encoder sees only `window_frames` feature frames.

    faster-whisper 1.2 pads every segment's features to 3000 frames (30 s) whatever its chunk_length;
    the segment's content fits in the window (chunk_length = window), so the rest is zero padding and
    is cut here before the encoder.

    `encoder_threads` (on CPU, when it differs from `cpu_threads`) runs the encoder in a second
    CTranslate2 instance of the same weights with that many threads: the encoder's large matrix
    products gain from a second core, the decoder's per-token steps are too small to and lose time
    synchronising two threads (11 human clips, 2 cores, identical transcripts: 534 ms mean with 2
    threads for both, 344 ms with 1, 293 ms with 2 for the encoder and 1 for the decoder).
    """
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import get_ctranslate2_storage

    class ShortWindowWhisper(WhisperModel):
        window_frames = 0
        encoder = None  # the encoder's own ctranslate2.models.Whisper, if any

        def encode(self, features: np.ndarray):
            if self.window_frames:
                features = features[..., : self.window_frames]
            if self.encoder is None:
                return super().encode(features)
            if features.ndim == 2:
                features = np.expand_dims(features, 0)
            return self.encoder.encode(get_ctranslate2_storage(features), to_cpu=False)

    model = ShortWindowWhisper(model_dir, **kwargs)
    if encoder_threads and model.model.device == "cpu" and encoder_threads != kwargs.get("cpu_threads"):
        model.encoder = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type=kwargs.get("compute_type", "default"),
                                                   intra_threads=encoder_threads)
    return model


class WhisperTranscriber:
    def __init__(self, model_dir: str | Path, device: str = "auto", compute_type: str = "auto",
                 encoder_threads: int = 2, decoder_threads: int = 1, min_rms: float = 0.004, priority=None):
        import ctranslate2

        from triton_models.priority import CriticalPath

        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        if compute_type == "auto":
            compute_type = "int8_float16" if device == "cuda" else "int8"
        self.device, self.min_rms = device, min_rms
        self.priority = priority or CriticalPath(enabled=False)
        self.model = short_window_model(str(model_dir), encoder_threads, device=device, compute_type=compute_type,
                                        cpu_threads=decoder_threads, num_workers=1)

    def transcribe(self, audio: np.ndarray, options: SttOptions | None = None) -> dict:
        """A final is critical-path work; a partial first waits for critical work to finish."""
        opts = options or SttOptions()
        if opts.partial:
            self.priority.yield_to_critical()
            return self._transcribe(audio, opts)
        self.priority.yield_to_earlier(opts.order)  # another conversation's turn that ended first
        with self.priority.critical("stt", opts.order):
            return self._transcribe(audio, opts)

    def _transcribe(self, audio: np.ndarray, opts: SttOptions) -> dict:
        t0 = time.perf_counter()
        duration = len(audio) / SAMPLE_RATE
        result = {"text": "", "language": opts.language, "audio_s": round(duration, 3), "segments": 0}
        if len(audio) < SAMPLE_RATE // 10 or float(np.sqrt(np.mean(audio ** 2))) < self.min_rms:
            return {**result, "reason": "silence", "infer_ms": 0.0}
        window = encoder_window_s(duration, opts.window_s)
        self.model.window_frames = window * 100 if window < 30 else 0
        segments, _info = self.model.transcribe(
            audio, language=opts.language, task="transcribe", beam_size=opts.beam_size,
            chunk_length=window, max_new_tokens=max_new_tokens(duration),
            temperature=0.0, condition_on_previous_text=False, without_timestamps=True,
            no_repeat_ngram_size=3, vad_filter=opts.vad and not opts.partial, prefix=opts.prefix or None,
            vad_parameters={"min_silence_duration_ms": 300, "speech_pad_ms": 200},
        )
        kept = [s for s in segments if not (s.no_speech_prob > 0.6 and s.avg_logprob < -0.7)
                and s.avg_logprob > -1.5]
        text = " ".join(s.text.strip() for s in kept).strip()
        weak = any(s.no_speech_prob > 0.2 or s.avg_logprob < -0.5 for s in kept)
        if NON_SPEECH.match(text) or (weak and SUBTITLE_CREDITS.search(text)):
            text = ""
        result.update(text=text, segments=len(kept), window_s=window, infer_ms=round((time.perf_counter() - t0) * 1000, 1))
        return result


class TritonPythonModel:
    """Input AUDIO int16[-1] (16 kHz mono) + OPTIONS json; output TRANSCRIPT json."""

    def initialize(self, args):
        params = model_params(args)
        model_dir = Path(args["model_repository"]) / args["model_version"] / params.get("weights", "whisper")
        from triton_models.priority import CriticalPath

        self.engine = WhisperTranscriber(model_dir, params.get("device", "auto"), params.get("compute_type", "auto"),
                                         int(params.get("encoder_threads", "2")), int(params.get("decoder_threads", "1")),
                                         priority=CriticalPath())

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        from triton_models.common import json_array

        responses = []
        for request in requests:
            if request.is_cancelled():  # a partial cancelled while queued yields to the final
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "stt: cancelled", pb_utils.TritonError.CANCELLED)))
                continue
            try:
                pcm = pb_utils.get_input_tensor_by_name(request, "AUDIO").as_numpy().reshape(-1)
                if pcm.dtype != np.int16:
                    raise ValueError("AUDIO must be int16 PCM")
                opts = SttOptions.from_dict(request_json(pb_utils, request, "OPTIONS", {}))
                if len(pcm) > SAMPLE_RATE * 60:
                    raise ValueError("AUDIO longer than 60 s")
                out = self.engine.transcribe(pcm16_to_float(pcm), opts)
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("TRANSCRIPT", json_array(out))]))
            except (ValueError, json.JSONDecodeError) as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"stt: {exc}")))
        return responses

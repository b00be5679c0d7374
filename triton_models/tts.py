"""Streaming Korean TTS (RealTime_zeroshot_TTS_ko) as a decoupled Triton model.

Synthesis request: TEXT (utf-8) + OPTIONS {"voice", "speed", "sample_rate": 24000|16000}; responses
stream AUDIO int16 chunks (sentence by sentence, long sentences in phrases) with INFO json, and a
last response with INFO {"status": "done"|"cancelled", ...} and FINAL. {"cache": true} serves and keeps
its sentences in the phrase cache (phrase_cache.py); {"prepare": true} only makes them into it.
Enrolment request: REFERENCE int16 PCM + OPTIONS {"enroll": voice_id, "reference_rate": 16000};
one final response whose INFO holds the fitted voice (similarity, speed, pitch, weights, enrol_ms).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from triton_models.common import ModelMetric, float_to_pcm16, json_array, model_params, optional, request_json
from triton_models.phrase_cache import PhraseCache

MAX_TEXT = 2000
log = logging.getLogger("triton.tts")
RATES = (24000, 16000)


@dataclass
class _Reply:
    """One request's audio as its listener gets it: the output rate, whether its first chunk starts a
    reply, and playback's clock (audio sent ahead of the listener since `started`)."""
    rate: int
    first: bool
    lead: float
    lead_min: float
    order: float | None
    streamed: bool
    started: float  # playback's clock (a reply's: from its first chunk)

    def ahead(self) -> float:
        """Audio the listener has yet to play."""
        return max(0.0, self.lead - (time.monotonic() - self.started))

    def sent(self, seconds: float, starts_reply: bool) -> None:
        """A chunk of `seconds` leaves for the listener; a reply's first chunk starts playback's clock."""
        if starts_reply:
            self.started = time.monotonic()
        self.lead += seconds


class TtsService:
    """What the Triton model does, usable in-process (benchmarks) with the same code."""

    def __init__(self, engine_name: str, weights_dir: Path | None, voice_dir: Path | None, threads: int = 2,
                 priority=None, preempt: bool = True, stop_for_critical: bool = True, precision: str = "auto",
                 one_call: bool = True, first_window: str = "auto"):
        from RealTime_zeroshot_TTS_ko import load_engine

        from triton_models.priority import CriticalPath

        self.priority = priority or CriticalPath(enabled=False)
        self.phrases = PhraseCache()
        self.on_cached_phrase = lambda: None  # a sentence served from the phrase cache (a metric)
        kwargs = {"threads": threads, "voice_dir": voice_dir, "preempt": preempt,
                  "preempt_leads": stop_for_critical, "precision": precision,
                  "one_call": one_call, "first_window": first_window} if engine_name == "kokoro" else {}
        self.engine = load_engine(engine_name, weights_dir, **kwargs)
        if (gate := getattr(self.engine, "gate", None)) and self.priority.enabled and stop_for_critical:
            from RealTime_zeroshot_TTS_ko.engines.run_gate import BACKGROUND, LEAD

            # a decode in progress stops for critical work in the other models (a lead decode: for
            # another turn's final transcript or first clause) and starts over after it
            gate.watch(LEAD, self.priority.first_audio, self.priority.yield_to_first_audio)
            gate.watch(BACKGROUND, self.priority.busy, self.priority.yield_to_critical)
        # warm the front end and the ONNX session with a reply-length sentence: it also teaches Kokoro its
        # cost per decoded frame on this CPU, which decides whether a reply's first phrase is windowed
        self.engine.synthesize("네, 안녕하세요. 오늘은 무엇을 도와드릴까요?")
        if hasattr(self.engine, "warm_enrolment"):  # in the background: the model serves at once
            threading.Thread(target=self._warm_enrolment, name="tts-warm-enrolment", daemon=True).start()

    def _warm_enrolment(self) -> None:
        try:
            seconds = self.engine.warm_enrolment(pause=self.priority.yield_to_critical)
            log.info("zero-shot enrolment ready (warmed in %.1f s)", seconds)
        except ValueError as exc:  # no voice space: enrolments will say so
            log.info("zero-shot enrolment unavailable: %s", exc)
        except Exception:  # noqa: BLE001 - a first enrolment then warms up itself
            log.exception("zero-shot enrolment warm-up failed")

    def validate(self, text: str, options: dict) -> tuple[str, int]:
        text = (text or "").strip()
        if not text:
            raise ValueError("TEXT is empty")
        if len(text) > MAX_TEXT:
            raise ValueError(f"TEXT longer than {MAX_TEXT} characters")
        rate = int(options.get("sample_rate", self.engine.sample_rate))
        allowed = sorted({self.engine.sample_rate, *RATES}, reverse=True)
        if rate not in allowed:
            raise ValueError(f"sample_rate must be one of {allowed}")
        self.engine.check_voice(str(options.get("voice", "default")))
        return text, rate

    def chunks(self, text: str, options: dict, gone=None):
        """`_chunks`; once `gone()` is true (the request was cancelled), no engine run starts (over)
        for it and the stream ends (engines/run_gate.py)."""
        from RealTime_zeroshot_TTS_ko.engines.run_gate import RunAbandoned

        gate = getattr(self.engine, "gate", None)
        if gone is None or gate is None:
            yield from self._chunks(text, options)
            return
        with gate.abandon_when(gone):
            try:
                yield from self._chunks(text, options)
            except RunAbandoned:
                log.info("tts stream cancelled: its engine runs abandoned")

    def _chunks(self, text: str, options: dict):
        """Yield (pcm16, info) per audio chunk. Critical-path work: a reply's first chunk (OPTIONS
        {"first": true}), and any chunk of a reply whose listener is about to run out of audio: the
        reply's audio sent but not yet played ({"lead_s"}, from the orchestrator; 0 for its first
        sentence), plus what this request made, minus the time it has taken, is below
        {"lead_min_s"} (default 0: off). Every other chunk first yields to critical work. A reply's
        first chunk stops another stream's decode in progress, a lead chunk a background one (the engine's
        `urgent()`); a lead decode also stops for another turn's first-audio work elsewhere. A reply's
        first chunk waits for another conversation's first-audio work whose turn ended before its own
        ({"order"}: when the user stopped speaking, epoch seconds); a chunk critical for its lead
        waits for any turn's first-audio work (priority.py)."""
        from RealTime_zeroshot_TTS_ko import split_sentences

        text, rate = self.validate(text, options)
        voice, speed = str(options.get("voice", "default")), options.get("speed")
        # {"cache": true}: sentences served from, or kept in, the phrase cache; {"prepare": true}: made
        # into it as background work, nothing streamed
        prepare = bool(options.get("prepare", False))
        cache = prepare or bool(options.get("cache", False))
        reply = _Reply(rate, first=bool(options.get("first", False)) and not prepare,
                       lead=float(options.get("lead_s", 0.0)),
                       lead_min=0.0 if prepare else float(options.get("lead_min_s", 0.0)),
                       order=optional(options, "order", float), streamed=not prepare, started=time.monotonic())
        for s_idx, sentence in enumerate(split_sentences(text)):
            key = PhraseCache.key(voice, speed, sentence) if cache else None
            if key is not None and (kept := self.phrases.get(key)) is not None:
                if not prepare:
                    self.on_cached_phrase()
                    yield from self._kept(kept, s_idx, sentence, reply)
                continue
            if prepare and not self.phrases.claim(key):  # kept, or being made by another preparation
                continue
            try:
                yield from self._made(sentence, s_idx, voice, speed, key, reply)
            finally:
                if prepare:
                    self.phrases.release(key)

    def _out(self, audio: np.ndarray, reply: "_Reply", **info) -> tuple[np.ndarray, dict]:
        """A chunk as the listener gets it: PCM16 at the reply's rate, and what it is."""
        from RealTime_zeroshot_TTS_ko.engines.base import resample

        return float_to_pcm16(resample(audio, self.engine.sample_rate, reply.rate)), {**info, "sample_rate": reply.rate}

    def _kept(self, kept: list, s_idx: int, sentence: str, reply: "_Reply"):
        """A sentence served from the phrase cache."""
        for c_idx, audio in enumerate(kept):
            reply.sent(len(audio) / self.engine.sample_rate, reply.first and s_idx == 0 and c_idx == 0)
            yield self._out(audio, reply, sentence=s_idx, chunk=c_idx, text=sentence,
                            last_in_sentence=c_idx == len(kept) - 1, cached=True)

    def _made(self, sentence: str, s_idx: int, voice: str, speed, key, reply: "_Reply"):
        """A sentence synthesised, chunk by chunk; kept in the phrase cache under `key` once made whole
        (a cancelled request never gets there)."""
        made, generation = [], self.phrases.generation(voice) if key is not None else None
        pieces = self.engine.stream(sentence, voice, speed, windowed_first=reply.first and s_idx == 0,
                                    ahead_s=reply.ahead())
        for c_idx in itertools.count():
            reply_start = reply.first and s_idx == 0 and c_idx == 0
            chunk = self._next_piece(pieces, reply_start, reply.lead_min > 0 and reply.ahead() < reply.lead_min,
                                     reply.order)
            if chunk is None:
                break
            reply.sent(len(chunk.audio) / self.engine.sample_rate, reply_start)
            made.append(chunk.audio)
            if reply.streamed:
                yield self._out(chunk.audio, reply, sentence=s_idx, chunk=c_idx, text=sentence,
                                last_in_sentence=chunk.last)
        if key is not None:
            self.phrases.put(key, made, generation)

    def _next_piece(self, pieces, reply_start: bool, lead_short: bool, order: float | None):
        """The engine's next chunk, under the critical-path rule: a reply's first chunk, or one its
        listener is about to run dry without, is critical work; any other waits for critical work."""
        if not (reply_start or lead_short):
            self.priority.yield_to_critical()
            return next(pieces, None)
        if reply_start:  # another conversation's turn that ended first goes first
            self.priority.yield_to_earlier(order)
        else:  # this listener's lead comes after another conversation's first audio
            self.priority.yield_to_first_audio()
        with self.priority.critical("tts", order if reply_start else None), self.engine.urgent(lead=not reply_start):
            return next(pieces, None)

    def enroll(self, voice_id: str, reference: np.ndarray, rate: int) -> dict:
        t0 = time.perf_counter()
        info = self.engine.enroll(voice_id, reference.astype(np.float32) / 32768.0, rate,
                                  pause=self.priority.yield_to_critical)  # background work
        self.phrases.forget(voice_id)  # said in the voice this id had
        return {**info, "enroll_ms": round((time.perf_counter() - t0) * 1000, 1)}


class TritonPythonModel:
    def initialize(self, args):
        import os

        params = model_params(args)
        weights = Path(args["model_repository"]) / args["model_version"] / params.get("weights", "kokoro")
        voice_dir = Path(os.environ.get("VOICE_DIR") or Path(args["model_repository"]) / "voices")
        self.chunks_made = ModelMetric("voice_tts_chunks_total", "audio chunks synthesised, cancelled streams included", args)
        from triton_models.decoupled import Streams
        from triton_models.priority import CriticalPath

        self.streams = Streams("tts", args)

        self.service = TtsService(params.get("engine", "kokoro"), weights, voice_dir, int(params.get("threads", "2")),
                                  priority=CriticalPath(), preempt=params.get("preempt", "1") != "0",
                                  stop_for_critical=params.get("stop_for_critical", "1") != "0",
                                  precision=params.get("precision", "auto"),
                                  one_call=params.get("one_call", "1") != "0",
                                  first_window=params.get("first_window", "auto"))
        self.preempted = ModelMetric("voice_tts_preempted_total",
                                     "decodes stopped (and started over) for a more urgent one", args)
        if gate := getattr(self.service.engine, "gate", None):
            gate.on_preempt = self.preempted.add
        # sentences longer than a first phrase: spoken as one Kokoro call (audio ahead) or in phrases
        self.sentences = {kind: ModelMetric(f"voice_tts_sentences_{kind.replace(' ', '_')}_total",
                                            f"sentences longer than a first phrase streamed {how}", args)
                          for kind, how in (("one call", "as one Kokoro call"), ("phrases", "in phrases"))}
        self.service.on_cached_phrase = ModelMetric("voice_tts_phrases_cached_total",
                                                    "sentences served from the phrase cache", args).add
        if hasattr(self.service.engine, "on_sentence"):
            self.service.engine.on_sentence = self.count_sentence

    def count_sentence(self, kind: str) -> None:
        if kind in self.sentences:
            self.sentences[kind].add()

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        from triton_models.decoupled import reject, request_cancelled

        empty = np.zeros(0, np.int16)
        for request in requests:
            try:
                options = request_json(pb_utils, request, "OPTIONS", {}) or {}
                ref = pb_utils.get_input_tensor_by_name(request, "REFERENCE")
                text_t = pb_utils.get_input_tensor_by_name(request, "TEXT")
                text = text_t.as_numpy().reshape(-1)[0].decode("utf-8") if text_t is not None else ""
                if ref is not None:
                    reference, voice_id = ref.as_numpy().reshape(-1).copy(), str(options.get("enroll", ""))
                    rate = int(options.get("reference_rate", 16000))

                    def produce(summary, reference=reference, voice_id=voice_id, rate=rate):
                        info = self.service.enroll(voice_id, reference, rate)
                        yield [pb_utils.Tensor("AUDIO", empty), pb_utils.Tensor("INFO", json_array(info))]
                else:
                    self.service.validate(text, options)

                    def produce(summary, text=text, options=options):
                        chunks = self.service.chunks(text, options, gone=request_cancelled)
                        for pcm, info in self.chunks_made.counting(chunks):
                            yield [pb_utils.Tensor("AUDIO", pcm), pb_utils.Tensor("INFO", json_array(info))]
            except (ValueError, UnicodeDecodeError) as exc:
                reject(pb_utils, request, "tts", str(exc))
                continue
            self.streams.serve(pb_utils, request, produce,
                               lambda summary: [pb_utils.Tensor("AUDIO", empty), pb_utils.Tensor("INFO", json_array(summary))])
        return None

    def finalize(self):
        self.streams.finalize()

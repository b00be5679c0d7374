"""Timing and Prometheus metrics: one clock and one helper, so benchmarks, metrics and turn rows agree."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0)

STAGE_LATENCY = Histogram("voice_stage_latency_seconds", "Per-stage latency of a turn, from end of user speech",
                          ["stage"], buckets=BUCKETS)
TURNS = Counter("voice_turns_total", "Turns by final status", ["status"])
ERRORS = Counter("voice_errors_total", "Error events sent to clients", ["code"])
SPECULATIONS = Counter("voice_speculations_total", "Turns started at a pause, by outcome: committed at the endpoint "
                       "or cancelled because the user went on", ["outcome"])
BARGE_INS = Counter("voice_barge_ins_total", "Bot answers interrupted by user speech")
MODEL_RELOADS = Counter("voice_model_reloads_total", "Models reloaded because their process died or went silent",
                        ["model"])
FALLBACK_AUDIO = Counter("voice_fallback_audio_prepared_total", "Preparations of the reply fallbacks' audio in a "
                         "session's voice (the tts model's phrase cache), by outcome: ready or failed", ["outcome"])
TURNS_UNSTORED = Gauge("voice_turns_unstored", "Finished turns waiting for a storage retry")


def now() -> float:
    return time.monotonic()


@dataclass
class TurnClock:
    """Marks on one monotonic clock; all stage timings are ms since the end of user speech."""
    speech_end: float = field(default_factory=now)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        """The first time a stage is reached counts; later marks of it are ignored."""
        if stage in self.marks:
            return
        self.marks[stage] = now()
        STAGE_LATENCY.labels(stage).observe(self.marks[stage] - self.speech_end)

    @functools.cached_property
    def order(self) -> float:
        """When the user stopped speaking, on the wall clock the models share (epoch seconds, the same
        value for every stage): the turn's place in line on the critical path (triton_models/priority.py)."""
        return time.time() - (now() - self.speech_end)

    def ms(self) -> dict[str, float]:
        return {k: round((v - self.speech_end) * 1000, 1) for k, v in self.marks.items()}

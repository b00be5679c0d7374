"""VAD stage: Silero (served by Triton) over 32 ms windows → speech start / end-of-turn events.

Endpointing: speech starts after `min_speech_ms` of voiced windows (a pre-roll of audio is kept so the
first syllable is not cut); after `pause_ms` of unvoiced windows a "pause" event offers the utterance so
far (speculative end of turn), "resume" says the user went on, and the turn ends after `end_silence_ms`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WINDOW, CONTEXT = 512, 64  # samples at 16 kHz: 32 ms new audio + 4 ms context (the Silero v5 graph)
WINDOW_MS = WINDOW * 1000 // 16000


@dataclass
class VadEvent:
    kind: str                  # "start" | "pause" | "resume" | "end"
    audio: np.ndarray | None = None  # the utterance (int16), on "pause" and "end"
    speech_ms: int = 0


@dataclass
class VadSegmenter:
    gateway: object
    model: str = "vad"
    threshold: float = 0.5
    min_speech_ms: int = 200
    end_silence_ms: int = 600
    pause_ms: int = 250             # speculative end of turn; 0 = never
    preroll_ms: int = 300
    max_utterance_s: float = 30.0
    state: np.ndarray = field(default_factory=lambda: np.zeros((2, 1, 128), np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    speaking: bool = False
    voiced_ms: int = 0
    silence_ms: int = 0
    utterance: list = field(default_factory=list)
    preroll: list = field(default_factory=list)
    last_prob: float = 0.0
    paused: bool = False            # a "pause" was offered for the current silence
    fallback_rms: float = 0.02      # while the VAD model fails, windows louder than this count as voiced
    last_error: Exception | None = None  # the latest VAD model failure (cleared by a good call)

    @property
    def utterance_audio(self) -> np.ndarray:
        return np.concatenate(self.utterance) if self.utterance else np.zeros(0, np.int16)

    @property
    def speech_ms(self) -> int:
        return sum(len(u) for u in self.utterance) * 1000 // 16000

    def reset(self) -> None:
        """Drop the turn in progress (input_audio.clear / after commit); keep the recurrent state."""
        self.speaking, self.voiced_ms, self.silence_ms, self.paused = False, 0, 0, False
        self.utterance, self.preroll = [], []

    def force_end(self) -> VadEvent | None:
        """End the user's turn now (input_audio.commit)."""
        if not self.utterance:
            self.reset()
            return None
        event = VadEvent("end", self.utterance_audio, self.speech_ms)
        self.reset()
        return event

    async def feed(self, pcm: np.ndarray) -> list[VadEvent]:
        events: list[VadEvent] = []
        self.pending = np.concatenate([self.pending, pcm])
        while len(self.pending) >= WINDOW:
            window, self.pending = self.pending[:WINDOW], self.pending[WINDOW:]
            events += await self._window(window)
        return events

    async def _window(self, window: np.ndarray) -> list[VadEvent]:
        audio = window.astype(np.float32) / 32768.0
        try:
            prob, self.state = await self.gateway.vad(self.model, np.concatenate([self.context, audio]), self.state)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - a failing VAD model must not leave the session deaf
            self.last_error = exc
            prob = 1.0 if float(np.sqrt(np.mean(audio ** 2))) >= self.fallback_rms else 0.0
        self.context = audio[-CONTEXT:]
        self.last_prob = prob
        voiced = prob >= self.threshold
        if not self.speaking:
            self.preroll.append(window)
            self.preroll = self.preroll[-max(1, self.preroll_ms // WINDOW_MS):]
            self.voiced_ms = self.voiced_ms + WINDOW_MS if voiced else 0
            if self.voiced_ms >= self.min_speech_ms:
                self.speaking, self.silence_ms = True, 0
                self.utterance, self.preroll = list(self.preroll), []
                return [VadEvent("start")]
            return []
        self.utterance.append(window)
        # hysteresis: once speaking, a lower threshold keeps weak syllables in the turn
        if prob >= self.threshold - 0.15:
            self.silence_ms = 0
            if self.paused:
                self.paused = False
                return [VadEvent("resume")]
            return []
        self.silence_ms += WINDOW_MS
        if self.silence_ms >= self.end_silence_ms or self.speech_ms >= self.max_utterance_s * 1000:
            return [self.force_end()]
        if self.pause_ms and not self.paused and self.silence_ms >= self.pause_ms:
            self.paused = True
            return [VadEvent("pause", self.utterance_audio, self.speech_ms)]
        return []

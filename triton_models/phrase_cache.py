"""Audio of phrases a conversation says again and again (the reply guard's fallbacks), kept per voice.

A reply's first sentence costs the `tts` model 0.3–1 s on a 2-core CPU; when that sentence is one of
a few fixed phrases, its audio made once serves every later turn at once. Only requests that ask for
it are cached (OPTIONS {"cache": true}); an enrolment replaces its voice, so it forgets that voice's
phrases. Bounded: the least recently used phrase goes first.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

MAX_PHRASES = 256  # a 2 s phrase at 24 kHz float32 is ~190 KB: ~50 MB at most


class PhraseCache:
    def __init__(self, max_phrases: int = MAX_PHRASES):
        self.max_phrases = max_phrases
        self._audio: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
        self._generation: dict[str, int] = {}  # per voice: how often it was forgotten
        self._making: set[tuple] = set()  # phrases a preparation is making now
        self._lock = threading.Lock()  # Triton's execute threads and streams' producer threads

    @staticmethod
    def key(voice: str, speed, sentence: str) -> tuple:
        return voice, None if speed is None else round(float(speed), 3), sentence

    def get(self, key: tuple) -> list[np.ndarray] | None:
        """The phrase's chunks (engine rate), or None."""
        with self._lock:
            chunks = self._audio.get(key)
            if chunks is not None:
                self._audio.move_to_end(key)
            return chunks

    def generation(self, voice: str) -> int:
        """Taken before a phrase is made: `put` keeps it only if its voice was not forgotten meanwhile."""
        with self._lock:
            return self._generation.get(voice, 0)

    def put(self, key: tuple, chunks: list[np.ndarray], generation: int | None = None) -> None:
        """A phrase made whole (a cancelled one is never put: its audio would end early), made in the
        voice as it was at `generation` (a phrase begun before an enrolment replaced it is dropped)."""
        if not chunks:
            return
        with self._lock:
            if generation is not None and generation != self._generation.get(key[0], 0):
                return
            self._audio[key] = [c.copy() for c in chunks]
            self._audio.move_to_end(key)
            while len(self._audio) > self.max_phrases:
                self._audio.popitem(last=False)

    def claim(self, key: tuple) -> bool:
        """For a preparation: False when the phrase is kept or another preparation is making it (two
        sessions, or the server's warm-up and a session, preparing the same voice's fallbacks make
        each phrase once); else it is this one's to make, until `release`."""
        with self._lock:
            if key in self._audio or key in self._making:
                return False
            self._making.add(key)
            return True

    def release(self, key: tuple) -> None:
        with self._lock:
            self._making.discard(key)

    def forget(self, voice: str) -> None:
        with self._lock:
            self._generation[voice] = self._generation.get(voice, 0) + 1
            for key in [k for k in self._audio if k[0] == voice]:
                del self._audio[key]

    def __contains__(self, key: tuple) -> bool:
        with self._lock:
            return key in self._audio

    def __len__(self) -> int:
        with self._lock:
            return len(self._audio)

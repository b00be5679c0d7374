"""Two cores, one critical path: a scheduling rule shared by the models of one Triton server.

Critical work (a final transcript, the LLM until its first clause, the first TTS chunk of a reply)
leaves a mark in a shared folder while it runs; background work (partial transcripts, the LLM's later
tokens, later TTS chunks) waits while any mark is present, at most `max_wait_s` per step, so it is
slowed but never starved. The models run in separate processes, hence a folder (in /dev/shm: no disk
I/O), one per Triton server (`VOICE_PRIORITY_DIR`, set by the launcher). `VOICE_PRIORITY=0` turns the
rule off (a GPU server, where the stages do not share two cores).
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

STALE_S = 20.0  # a mark older than this was left by a crashed process: removed


class CriticalPath:
    def __init__(self, folder: str | Path | None = None, *, enabled: bool | None = None,
                 poll_s: float = 0.005, max_wait_s: float = 1.5):
        self.folder = Path(folder or os.environ.get("VOICE_PRIORITY_DIR") or f"/dev/shm/voice-priority-{os.getuid()}")
        self.enabled = os.environ.get("VOICE_PRIORITY", "1") != "0" if enabled is None else enabled
        self.poll_s, self.max_wait_s = poll_s, max_wait_s
        self._ids = itertools.count()
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def critical(self, what: str):
        """Mark critical-path work for as long as the block runs."""
        if not self.enabled:
            yield
            return
        mark = self.folder / f"{what}.{os.getpid()}.{threading.get_ident()}.{next(self._ids)}"
        mark.touch()
        try:
            yield
        finally:
            mark.unlink(missing_ok=True)

    def busy(self) -> bool:
        now = time.time()
        for entry in os.scandir(self.folder):
            try:
                if now - entry.stat().st_mtime < STALE_S:
                    return True
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
        return False

    def yield_to_critical(self) -> float:
        """Background work calls this between steps; returns the seconds it waited."""
        if not self.enabled:
            return 0.0
        t0 = time.monotonic()
        while self.busy() and time.monotonic() - t0 < self.max_wait_s:
            time.sleep(self.poll_s)
        return time.monotonic() - t0

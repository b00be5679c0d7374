"""Two cores, one critical path: a scheduling rule shared by the models of one Triton server.

Critical work (a final transcript, the LLM until its first clause, the first TTS chunk of a reply)
leaves a mark in a shared folder while it runs; background work (partial transcripts, the LLM's later
tokens, later TTS chunks) waits while any mark is present, at most `max_wait_s` per step, so it is
slowed but never starved. The models run in separate processes, hence a folder (in /dev/shm: no disk
I/O), one per Triton server (`VOICE_PRIORITY_DIR`, set by the launcher). `VOICE_PRIORITY=0` turns the
rule off (a GPU server, where the stages do not share two cores).

Between conversations: a turn's first-audio work (final STT, the LLM's first clause, the reply's
first TTS chunk) carries its `order` (when its user stopped speaking, epoch seconds). Such work of a
later turn waits while an earlier turn's runs (`yield_to_earlier`): two turns ending together share
two cores and both answer late; first come, first served, the first answers as if alone and the
second no later. A reply's later chunk that is critical only because its listener is about to run
dry waits while any turn's first-audio work runs (`yield_to_first_audio`). Both waits are bounded.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

STALE_S = 20.0  # a mark older than this was left by a crashed process: removed


_PROC = os.path.isdir("/proc/self")  # without /proc only the age rule applies


def _process_gone(pid: int) -> bool:
    """Has the process that left a mark died (a killed model stub)? Its marks go at once, not after
    STALE_S: they would slow every model's background work by max_wait_s a step meanwhile."""
    if not _PROC:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"  # a zombie not yet reaped
    except FileNotFoundError:
        return True
    except OSError:
        return False


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
    def critical(self, what: str, order: float | None = None):
        """Mark critical-path work for as long as the block runs; `order` ranks a turn's first-audio
        work against other turns' (yield_to_earlier)."""
        if not self.enabled:
            yield
            return
        rank = f"@{round(order * 1000)}" if order else ""
        mark = self.folder / f"{what}{rank}.{os.getpid()}.{threading.get_ident()}.{next(self._ids)}"
        mark.touch()
        try:
            yield
        finally:
            mark.unlink(missing_ok=True)

    def _live_marks(self):
        """Names of the marks present; a stale one, or a dead process's, is removed instead."""
        now = time.time()
        for entry in os.scandir(self.folder):
            try:
                pid = entry.name.rsplit(".", 3)[1]
                if now - entry.stat().st_mtime < STALE_S and not (pid.isdigit() and _process_gone(int(pid))):
                    yield entry.name
                else:
                    os.unlink(entry.path)
            except (FileNotFoundError, IndexError):
                pass

    def busy(self) -> bool:
        return any(True for _ in self._live_marks())

    def first_audio(self, before: float | None = None) -> bool:
        """Is a turn's first-audio work running (of a turn that ended before `before`, when given)?"""
        mine = None if before is None else round(before * 1000)
        ranks = (name.split(".", 1)[0].partition("@")[2] for name in self._live_marks())
        return any(rank and (mine is None or int(rank) < mine) for rank in ranks)

    def _wait(self, busy) -> float:
        t0 = time.monotonic()
        while busy() and time.monotonic() - t0 < self.max_wait_s:
            time.sleep(self.poll_s)
        return time.monotonic() - t0

    def yield_to_critical(self) -> float:
        """Background work calls this between steps; returns the seconds it waited."""
        return self._wait(self.busy) if self.enabled else 0.0

    def yield_to_earlier(self, order: float | None) -> float:
        """A turn's first-audio work calls this before (and between) its steps: it waits while an
        earlier turn's runs; returns the seconds it waited."""
        return self._wait(lambda: self.first_audio(before=order)) if self.enabled and order else 0.0

    def yield_to_first_audio(self) -> float:
        """A reply's later chunk, critical only because its listener is about to run dry, waits while
        any turn's first-audio work runs: another conversation's first audio does not queue behind
        it (and llama.cpp's first clause does not share the cores with it)."""
        return self._wait(self.first_audio) if self.enabled else 0.0

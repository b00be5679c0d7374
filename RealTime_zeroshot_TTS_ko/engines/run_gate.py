"""One ONNX session pair, one run at a time, by urgency: a reply's first audio, then a reply's later
chunk whose listener is about to run dry (a lead), then background work.

A Kokoro decode of a reply's later phrase takes 1–2.5 s on two cores. Behind a plain lock, the first
chunk of another conversation's reply waited for it. Here a more urgent run stops a less urgent run
in progress (onnxruntime's `RunOptions.terminate`: the run ends at its next node) and goes next; the
stopped run starts over once the urgent threads are done (a first chunk makes several runs: text
side, first window). First-audio runs never stop each other.

Work in other processes (the final transcript, the LLM's first clause) cannot stop a run directly;
`watch(level, stop_when, before_restart)` makes the gate stop a run of that level in progress when
`stop_when()` turns true (a lead run: another turn's first-audio work; a background run: any critical
work), which a decode in progress would otherwise halve the two cores of. The run then waits with
`before_restart()` and starts over; each run is stopped at most once that way, so it is delayed by
one decode at most.

A run for a request that is gone (a cancelled reply: barge-in) is neither started nor started over
(`abandon_when`): it raises RunAbandoned, and its stream ends. Otherwise a cancelled stream's last
chunk, a whole sentence at times, would keep being stopped and started over beside the next turn.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, TypeVar

log = logging.getLogger("tts.run_gate")
T = TypeVar("T")
BACKGROUND, LEAD, FIRST_AUDIO = 0, 1, 2


class RunAbandoned(Exception):
    """The request a run was for is gone: the run was not started (over)."""


class RunGate:
    def __init__(self, preempt: bool = True, preempt_leads: bool = True, poll_s: float = 0.01):
        self.preempt = preempt  # False: urgent runs only go first, a run in progress always finishes
        self.preempt_leads = preempt and preempt_leads  # False: only background runs are ever stopped
        self.preempted = 0      # runs stopped (and started over) for a more urgent one
        self.on_preempt: Callable[[], object] | None = None  # told of each (a metric)
        self._watches: dict[int, tuple[Callable[[], bool], Callable[[], object]]] = {}
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._running = None    # the RunOptions of the run in progress
        self._running_level = BACKGROUND
        self._threads = {LEAD: 0, FIRST_AUDIO: 0}  # threads inside urgent(), by level
        self._local = threading.local()

    def watch(self, level: int, stop_when: Callable[[], bool], before_restart: Callable[[], object]) -> None:
        """Stop a run of `level` (LEAD or BACKGROUND) in progress when `stop_when()` turns true."""
        if level == FIRST_AUDIO or level == LEAD and not self.preempt_leads or not self.preempt:
            return
        self._watches[level] = (stop_when, before_restart)

    @contextmanager
    def urgent(self, lead: bool = False):
        """Runs made by this thread inside the block are urgent: a reply's first audio, or with
        `lead` a later chunk its listener is about to run out of audio for."""
        if getattr(self._local, "level", BACKGROUND):  # nested: already counted
            yield
            return
        level = LEAD if lead else FIRST_AUDIO
        self._local.level = level
        with self._cond:
            self._threads[level] += 1
        try:
            yield
        finally:
            self._local.level = BACKGROUND
            with self._cond:
                self._threads[level] -= 1
                self._cond.notify_all()

    @contextmanager
    def abandon_when(self, gone: Callable[[], bool]):
        """Runs by this thread inside the block raise RunAbandoned instead of starting (over) once
        `gone()` is true."""
        before, self._local.gone = getattr(self._local, "gone", None), gone
        try:
            yield
        finally:
            self._local.gone = before

    def _stoppable(self, level: int) -> bool:
        """Is the run in progress less urgent than a run of `level`, and may it be stopped?"""
        running = self._running_level
        return running < level and (running == BACKGROUND or self.preempt_leads)

    def _clear(self, level: int) -> bool:
        """May a run of `level` start now: nothing runs and no more urgent thread is inside urgent()?"""
        return self._running is None and not any(n for lvl, n in self._threads.items() if lvl > level)

    def run(self, fn: Callable[[object], T]) -> T:
        """`fn(run_options)` under the gate. A run stopped for a more urgent one is called again, from
        the start, after it."""
        import onnxruntime as ort

        level = getattr(self._local, "level", BACKGROUND)
        watched = self._watches.get(level)
        gone = getattr(self._local, "gone", None)
        while True:
            if gone is not None and gone():
                raise RunAbandoned()
            options = ort.RunOptions()
            with self._cond:
                if level and self.preempt and self._running is not None and self._stoppable(level):
                    self._running.terminate = True
                self._cond.wait_for(lambda: self._clear(level))
                self._running, self._running_level = options, level
            done, stopped_from_outside = threading.Event(), threading.Event()
            if watched:
                threading.Thread(target=self._watch, args=(watched[0], options, done, stopped_from_outside),
                                 daemon=True).start()
            try:
                return fn(options)
            except Exception:
                if level == FIRST_AUDIO or not options.terminate:
                    raise
                self.preempted += 1
                if self.on_preempt is not None:
                    self.on_preempt()
                log.debug("a run stopped for a more urgent one: starting over")
            finally:
                done.set()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
            if watched and stopped_from_outside.is_set():
                before_restart, watched = watched[1], None  # once per run
                before_restart()

    def _watch(self, stop_when, options, done: threading.Event, stopped: threading.Event) -> None:
        """Stop the run `options` belongs to when `stop_when()` turns true. Work already there when the
        run started is not watched for: the caller yielded to it first (bounded), as it started. (Work
        that starts between that yield and the run, during the text front end, is missed: a gap of
        ~5-10 % of a chunk's time, left so that no decode waits twice for one piece of work.)"""
        if stop_when():
            return
        while not done.wait(self.poll_s):
            if stop_when():
                stopped.set()
                options.terminate = True
                return

"""One ONNX session pair, one run at a time: urgent runs go first and stop a background run in progress.

A Kokoro decode of a reply's later phrase takes 1–2.5 s on two cores. Behind a plain lock, the first
chunk of another conversation's reply waited for it. Here a run made inside `urgent()` stops the
background run in progress (onnxruntime's `RunOptions.terminate`: the run ends at its next node) and
goes next; the stopped run starts over once no thread is inside `urgent()` (a first chunk makes
several runs: text side, first window). Urgent runs never stop each other.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, TypeVar

log = logging.getLogger("tts.run_gate")
T = TypeVar("T")


class RunGate:
    def __init__(self, preempt: bool = True):
        self.preempt = preempt  # False: urgent runs only go first, a run in progress always finishes
        self.preempted = 0      # background runs stopped for an urgent one
        self.on_preempt: Callable[[], object] | None = None  # told of each (a metric)
        self._cond = threading.Condition()
        self._running = None    # the RunOptions of the run in progress
        self._running_urgent = False
        self._urgent_threads = 0  # threads inside urgent(): background runs wait for them
        self._local = threading.local()

    @contextmanager
    def urgent(self):
        """Runs made by this thread inside the block are urgent (a reply's first audio)."""
        if getattr(self._local, "urgent", False):  # nested: already counted
            yield
            return
        self._local.urgent = True
        with self._cond:
            self._urgent_threads += 1
        try:
            yield
        finally:
            self._local.urgent = False
            with self._cond:
                self._urgent_threads -= 1
                self._cond.notify_all()

    def run(self, fn: Callable[[object], T]) -> T:
        """`fn(run_options)` under the gate. A background `fn` stopped for an urgent run is called
        again, from the start, after it."""
        import onnxruntime as ort

        urgent = getattr(self._local, "urgent", False)
        while True:
            options = ort.RunOptions()
            with self._cond:
                if urgent:
                    if self.preempt and self._running is not None and not self._running_urgent:
                        self._running.terminate = True
                    self._cond.wait_for(lambda: self._running is None)
                else:
                    self._cond.wait_for(lambda: self._running is None and not self._urgent_threads)
                self._running, self._running_urgent = options, urgent
            try:
                return fn(options)
            except Exception:
                if urgent or not options.terminate:
                    raise
                self.preempted += 1
                if self.on_preempt is not None:
                    self.on_preempt()
                log.debug("background run stopped for an urgent one: starting over")
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

"""Serving decoupled (streaming) Triton requests from generators, the same way for every model.

Rules learned on Triton 2.51 (see RESEARCH.md): `execute()` must return at once for one instance to
interleave streams, so each request runs in its own thread; cancellation is polled before every
item; the stream ends with a *data* response carrying the FINAL flag (a flag-only FINAL is never
seen by the aio client and can wedge a model unload when a cancel races it).

`Streams` tracks the threads in flight (a gauge on Triton's metrics port) so that `finalize()` (an
unload, a version swap, shutdown) can stop them like a cancel and wait for them, bounded, instead of
leaving threads writing to senders of a model that is going away.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

from triton_models.common import ModelMetric

log = logging.getLogger("triton.decoupled")


class Streams:
    """The in-flight streams of one model instance."""

    def __init__(self, name: str, args: dict | None = None):
        self.name = name
        self._live: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.gauge = ModelMetric("voice_streams_in_flight", "decoupled requests being served", args, gauge=True)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._live)

    def _track(self, thread: threading.Thread, live: bool) -> None:
        with self._lock:
            (self._live.add if live else self._live.discard)(thread)
            self.gauge.set(len(self._live))

    def serve(self, pb_utils, request, produce: Callable[[dict], Iterator[list]],
              final_tensors: Callable[[dict], list]) -> None:
        """Run `produce(summary)` in a thread; send each yielded tensor list as one response.

        `final_tensors(summary)` builds the last response; summary holds status (done, cancelled,
        shutdown), items, elapsed_ms, and whatever `produce` put in it (token counts, timings).
        """
        if self.stopping.is_set():
            return reject(pb_utils, request, self.name, "the model is shutting down")
        sender = request.get_response_sender()

        def stopped(summary: dict) -> bool:
            if sender.is_cancelled():
                summary["status"] = "cancelled"
            elif self.stopping.is_set():
                summary["status"] = "shutdown"
            return summary["status"] != "done"

        def run() -> None:
            t0 = time.perf_counter()
            summary = {"status": "done", "items": 0}
            try:
                if not stopped(summary):
                    items = produce(summary)
                    try:
                        for tensors in items:
                            if stopped(summary):  # polled per item: at most one item made after a cancel
                                break
                            sender.send(pb_utils.InferenceResponse(output_tensors=tensors))
                            summary["items"] += 1
                    finally:
                        items.close()  # stops the engine (llama.cpp stream, transformers thread) at once
                summary["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                sender.send(pb_utils.InferenceResponse(output_tensors=final_tensors(summary)),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            except ValueError as exc:  # bad input: the client gets a typed error, the model goes on
                fail(pb_utils, sender, f"{self.name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - report, never kill the model
                log.exception("%s stream failed", self.name)
                fail(pb_utils, sender, f"{self.name}: {type(exc).__name__}: {exc}")
            finally:
                self._track(threading.current_thread(), live=False)

        thread = threading.Thread(target=run, name=f"{self.name}-stream", daemon=True)
        self._track(thread, live=True)
        thread.start()

    def finalize(self, timeout_s: float = 10.0) -> int:
        """Stop every stream (each ends with a final `shutdown` response) and wait at most `timeout_s`
        for their threads; returns how many were still running."""
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        with self._lock:
            live = list(self._live)
        for thread in live:
            thread.join(max(0.0, deadline - time.monotonic()))
        left = self.in_flight
        if left:
            log.warning("%s: %d streams still running at finalize", self.name, left)
        return left


def fail(pb_utils, sender, message: str) -> None:
    try:
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
    except Exception:  # noqa: BLE001 - the stream was already closed (a send failed after FINAL)
        log.exception("could not report: %s", message)


def reject(pb_utils, request, name: str, message: str) -> None:
    """Answer a decoupled request that failed validation with one final error response."""
    fail(pb_utils, request.get_response_sender(), f"{name}: {message}")

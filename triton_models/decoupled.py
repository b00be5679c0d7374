"""Serving decoupled (streaming) Triton requests from generators, the same way for every model.

Rules learned on Triton 2.51 (see RESEARCH.md): `execute()` must return at once for one instance to
interleave streams, so each request runs in its own thread; cancellation is polled before every
item; the stream ends with a *data* response carrying the FINAL flag (a flag-only FINAL is never
seen by the aio client and can wedge a model unload when a cancel races it).

`Streams` tracks the threads in flight (a gauge on Triton's metrics port) so that `finalize()` (an
unload, a version swap, shutdown) can stop them like a cancel and wait for them, bounded, instead of
leaving threads writing to senders of a model that is going away.

A stream that has sent nothing for HEARTBEAT_S (waiting its turn for the engine behind other
streams, or yielding to another session's critical work) sends a heartbeat: a response whose INFO
says `"heartbeat": true`. The orchestrator bounds the silence of a stream to find a dead model
process; a busy one must not look dead (under load that made it reload healthy models).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

from triton_models.common import SERVER_CALLS, ModelMetric

log = logging.getLogger("triton.decoupled")

HEARTBEAT_S = 2.0
_serving = threading.local()  # the request the current stream thread serves


def cancel_check() -> Callable[[], bool] | None:
    """Called from a `produce` generator: its request's cancel check, to be asked from any thread
    (None outside a stream: an engine used in-process)."""
    return getattr(_serving, "stopped", None)


def request_cancelled() -> bool:
    """Called from a `produce` generator: has its request been cancelled (or the model stopped)?"""
    check = cancel_check()
    return bool(check and check())


class Streams:
    """The in-flight streams of one model instance."""

    def __init__(self, name: str, args: dict | None = None):
        self.name = name
        self._live: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.gauge = ModelMetric("voice_streams_in_flight", "decoupled requests being served", args, gauge=True)
        # Triton keeps a killed model process's series (same model and version labels) at its last value:
        # a reloaded model reported the dead one's streams as its own until its first stream ended
        self.gauge.set(0)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._live)

    def _track(self, thread: threading.Thread, live: bool) -> None:
        with self._lock:
            (self._live.add if live else self._live.discard)(thread)
            self.gauge.set(len(self._live))

    def serve(self, pb_utils, request, produce: Callable[[dict], Iterator[list]],
              final_tensors: Callable[[dict], list], heartbeat_s: float = HEARTBEAT_S) -> None:
        """Run `produce(summary)` in a thread; send each yielded tensor list as one response.

        `final_tensors(summary)` builds the last response (and the heartbeats); summary holds status
        (done, cancelled, shutdown), items, elapsed_ms, and whatever `produce` put in it.
        """
        if self.stopping.is_set():
            return reject(pb_utils, request, self.name, "the model is shutting down")
        with SERVER_CALLS:
            sender = request.get_response_sender()
        closed, last_sent = threading.Event(), [time.monotonic()]

        def send(response, final: bool = False) -> None:
            with SERVER_CALLS:  # heartbeats and other streams send too; nothing may follow the FINAL response
                if closed.is_set():
                    return
                last_sent[0] = time.monotonic()
                if final:
                    closed.set()
                    sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
                else:
                    sender.send(response)

        def cancelled() -> bool:
            with SERVER_CALLS:
                # after the FINAL response the server may have freed the request's response factory:
                # tritonserver 2.51 crashes (SIGSEGV in TRITONBACKEND_ResponseFactoryIsCancelled) when
                # it is asked then, as the heartbeat thread could between its wait and this call
                return closed.is_set() or sender.is_cancelled()

        def stopped(summary: dict) -> bool:
            if cancelled():
                summary["status"] = "cancelled"
            elif self.stopping.is_set():
                summary["status"] = "shutdown"
            return summary["status"] != "done"

        def heartbeat() -> None:
            while not closed.wait(heartbeat_s / 4):
                if cancelled() or self.stopping.is_set():
                    return
                if time.monotonic() - last_sent[0] >= heartbeat_s:
                    send(pb_utils.InferenceResponse(output_tensors=final_tensors({"status": "busy", "heartbeat": True})))

        def run() -> None:
            t0 = time.perf_counter()
            summary = {"status": "done", "items": 0}
            _serving.stopped = lambda: cancelled() or self.stopping.is_set()
            try:
                if not stopped(summary):
                    items = produce(summary)
                    try:
                        for tensors in items:
                            if stopped(summary):  # polled per item: at most one item made after a cancel
                                break
                            send(pb_utils.InferenceResponse(output_tensors=tensors))
                            summary["items"] += 1
                    finally:
                        items.close()  # stops the engine (llama.cpp stream, transformers thread) at once
                    stopped(summary)  # a producer that ended early for a cancel (request_cancelled)
                summary["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
                send(pb_utils.InferenceResponse(output_tensors=final_tensors(summary)), final=True)
            except Exception as exc:  # noqa: BLE001 - report, never kill the model
                if isinstance(exc, ValueError):  # bad input: the client gets a typed error, the model goes on
                    message = f"{self.name}: {exc}"
                else:
                    log.exception("%s stream failed", self.name)
                    message = f"{self.name}: {type(exc).__name__}: {exc}"
                try:
                    send(error_response(pb_utils, message), final=True)
                except Exception:  # noqa: BLE001 - the stream is gone (the failure was a send)
                    log.exception("could not report: %s", message)
            finally:
                closed.set()
                self._track(threading.current_thread(), live=False)

        thread = threading.Thread(target=run, name=f"{self.name}-stream", daemon=True)
        self._track(thread, live=True)
        thread.start()
        threading.Thread(target=heartbeat, name=f"{self.name}-heartbeat", daemon=True).start()

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


def error_response(pb_utils, message: str):
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))


def reject(pb_utils, request, name: str, message: str) -> None:
    """Answer a decoupled request that failed validation with one final error response."""
    with SERVER_CALLS:
        request.get_response_sender().send(error_response(pb_utils, f"{name}: {message}"),
                                           flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

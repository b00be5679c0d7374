"""Serving a decoupled (streaming) Triton request from a generator, the same way for every model.

Rules learned on Triton 2.51 (see RESEARCH.md): `execute()` must return at once for one instance to
interleave streams, so each request runs in its own thread; cancellation is polled before every
item; the stream ends with a *data* response carrying the FINAL flag (a flag-only FINAL is never
seen by the aio client and can wedge a model unload when a cancel races it).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger("triton.decoupled")


def serve_stream(pb_utils, request, produce: Callable[[dict], Iterator[list]],
                 final_tensors: Callable[[dict], list], name: str) -> None:
    """Run `produce(summary)` in a thread; send each yielded tensor list as one response.

    `final_tensors(summary)` builds the last response; summary holds status, items, elapsed_ms,
    error, and whatever `produce` put in it (token counts, timings).
    """
    sender = request.get_response_sender()

    def run() -> None:
        t0 = time.perf_counter()
        summary = {"status": "done", "items": 0}
        try:
            if sender.is_cancelled():
                summary["status"] = "cancelled"
            else:
                items = produce(summary)
                try:
                    for tensors in items:
                        if sender.is_cancelled():  # polled per item: at most one item made after a cancel
                            summary["status"] = "cancelled"
                            break
                        sender.send(pb_utils.InferenceResponse(output_tensors=tensors))
                        summary["items"] += 1
                finally:
                    items.close()  # stops the engine (llama.cpp stream, transformers thread) at once
        except ValueError as exc:  # bad input: the client gets a typed error, the model goes on
            summary = {"status": "error", "error": str(exc)}
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{name}: {exc}")),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        except Exception as exc:  # noqa: BLE001 - report, never kill the model
            log.exception("%s stream failed", name)
            summary = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{name}: {summary['error']}")),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            return
        summary["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        sender.send(pb_utils.InferenceResponse(output_tensors=final_tensors(summary)),
                    flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    threading.Thread(target=run, name=f"{name}-stream", daemon=True).start()


def reject(pb_utils, request, name: str, message: str) -> None:
    """Answer a decoupled request that failed validation with one final error response."""
    request.get_response_sender().send(
        pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{name}: {message}")),
        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

"""Cancelling a llama.cpp evaluation in the middle, not only between calls.

A cancelled request is seen between tokens (generation) or prefill steps, but one `eval` is a single
native call: one 256-token batch of a cold prompt took 8.6 s on two contended cores (Zen 3 VM), and a
16-token prefill step up to 5.6 s, during which a cancelled stream stayed in flight. llama.cpp asks an abort callback between graph nodes (llama_set_abort_callback); ours is a
native function (numba) that reads one byte, so the compute threads never wait for Python's GIL, and a
watcher thread sets that byte when the request's cancel check says so. An aborted `eval` raises
`RuntimeError` ("llama_decode returned 2") with the context's token count unchanged: the next `eval`
drops the KV cells past it first.
"""
from __future__ import annotations

import ctypes
import logging
import os
import threading
from contextlib import contextmanager
from typing import Callable

log = logging.getLogger("triton.llm")
POLL_S = 0.02  # how often the watcher asks the cancel check (~0.1 ms a call)
_callback = None


def _native_callback():
    """The C function `bool aborted(uint8_t *flag)`, compiled once (None without numba)."""
    global _callback
    if _callback is None:
        try:
            os.environ.setdefault("NUMBA_CPU_NAME", "generic")  # as RealTime_zeroshot_TTS_ko does (Zen 5)
            import numba
            from numba import types

            @numba.cfunc(types.boolean(types.CPointer(types.uint8)), nopython=True)
            def aborted(flag):
                return flag[0] != 0

            _callback = ctypes.cast(aborted.ctypes, ctypes.c_void_p), aborted  # keep the cfunc alive
        except Exception as exc:  # noqa: BLE001 - cancels then wait for the running call to end
            log.warning("llama.cpp evaluations cannot be aborted mid-call: %s", exc)
            _callback = (None, None)
    return _callback[0]


class Abortable:
    """One llama.cpp context's abort flag, installed as its abort callback."""

    def __init__(self, llm):
        import llama_cpp

        self.flag = ctypes.c_uint8(0)
        callback = _native_callback()
        self.enabled = callback is not None
        if self.enabled:
            lib = llama_cpp.llama_cpp._lib
            lib.llama_set_abort_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            lib.llama_set_abort_callback.restype = None
            lib.llama_set_abort_callback(llm.ctx, callback, ctypes.addressof(self.flag))

    @property
    def aborted(self) -> bool:
        return bool(self.flag.value)

    @contextmanager
    def watching(self, stop: Callable[[], bool] | None):
        """While the block runs, a `stop()` that turns true aborts the evaluation in progress (and any
        later one in the block: the caller sees `aborted` and ends)."""
        self.flag.value = 0
        if not self.enabled or stop is None:
            yield self
            return
        done = threading.Event()

        def watch() -> None:
            while not done.wait(POLL_S):
                if stop():
                    self.flag.value = 1
                    return

        watcher = threading.Thread(target=watch, name="llm-abort-watch", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            done.set()
            watcher.join()
            self.flag.value = 0

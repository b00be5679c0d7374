"""The models' first calls, made once when the orchestrator starts instead of in a user's first turn.

Measured on a fresh `scripts/run.sh` (Zen 4 VM): the first turn after a start took 2.3 s to its final
transcript and 1.3 s more to the LLM's first token (the whole system prompt evaluated, the embedder's
first search), against 0.75 s and 0.15 s in the next session. Here, in the background: a partial and
a final transcript of noise, a query embedding, the LLM's prefill of the default prompt (a turn
then finds it in a context's KV cache) and the fallbacks' audio in the default voice. A failure is
logged and changes nothing (a model that is down fails its turns as it would have). It is for a server
that idles before its first user: once a session is open it stops, the step in flight cancelled (the
users' own calls warm the models then; beside a first turn and an enrolment it slowed both: a session
with a voice reference right after a start enrolled in 57 s against 25 s without it, Zen 3 VM).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import numpy as np

from orchestrator.stages.respond import prepare_fallbacks
from orchestrator.turn import NEXT_WORDS, turn_messages

log = logging.getLogger("orchestrator.warmup")
USERS_POLL_S = 0.2


async def warm_up(svc, users_present: Callable[[], bool] = lambda: False,
                  status: dict | None = None) -> dict[str, float]:
    """Seconds each step took (a failed or stopped step is left out). `status` (the health endpoint's)
    follows it: {"state": "running" | "done" | "stopped", "took_s": {step: seconds}}."""
    cfg, gateway = svc.settings, svc.gateway
    # loud enough to pass the stt model's silence gate, and without its VAD pass: Whisper itself runs
    noise = np.random.default_rng(0).normal(0, 3000, 16000 * 2).astype(np.int16)
    steps = [("stt", lambda: gateway.transcribe(cfg.stt_model, noise, partial=True)),
             ("stt final", lambda: gateway.transcribe(cfg.stt_model, noise, window_s=cfg.stt_window_s, vad=False)),
             ("embedder", lambda: gateway.embed(cfg.embedder_model, [NEXT_WORDS], kind="query"))]
    if cfg.llm_enabled:
        messages = turn_messages(cfg, cfg.system_prompt, [], [], NEXT_WORDS)
        steps.append(("llm", lambda: gateway.llm_prefill(cfg.llm_model, messages, request_id="warm-up")))
    if cfg.tts_enabled and cfg.fallback_audio_cached:
        steps.append(("tts", lambda: prepare_fallbacks(gateway, cfg.tts_model, cfg.tts_voice, cfg.reply_fallbacks,
                                                       request_id="warm-up")))
    status = {} if status is None else status
    took = status.setdefault("took_s", {})
    status["state"] = "running"
    for name, call in steps:
        started, step = time.perf_counter(), asyncio.ensure_future(call())
        try:
            while not step.done() and not users_present():
                await asyncio.wait({step}, timeout=USERS_POLL_S)
        except asyncio.CancelledError:  # the server's shutdown: the step in flight goes with it
            step.cancel()
            raise
        if not step.done():
            step.cancel()
            await asyncio.gather(step, return_exceptions=True)
            log.info("warm-up stopped at %s: a session is open (done: %s)", name, ", ".join(took) or "nothing")
            status["state"] = "stopped"
            return took
        try:
            step.result()
        except Exception as exc:  # noqa: BLE001 - best effort: never the server's end, always in the log
            log.warning("warm-up: %s failed (%s); its first turn pays instead", name, exc)
            continue
        took[name] = round(time.perf_counter() - started, 2)
    log.info("warm-up done: %s", ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    status["state"] = "done"
    return took

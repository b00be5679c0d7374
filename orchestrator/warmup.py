"""The models' first calls, made once when the orchestrator starts instead of in a user's first turn.

Measured on a fresh `scripts/run.sh` (Zen 4 VM): the first turn after a start took 2.3 s to its final
transcript and 1.3 s more to the LLM's first token (the whole system prompt evaluated, the embedder's
first search), against 0.75 s and 0.15 s in the next session. Here, in the background: a partial and
a final transcript of noise, a query embedding, the LLM's prefill of the default prompt (a turn
then finds it in a context's KV cache) and the fallbacks' audio in the default voice. A failure is
logged and changes nothing (a model that is down fails its turns as it would have).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from orchestrator.stages.respond import prepare_fallbacks
from orchestrator.turn import turn_messages

log = logging.getLogger("orchestrator.warmup")
GREETING = "안녕하세요"  # the prefill's user words: the prompt's prefix before them is what is kept


async def warm_up(svc) -> dict[str, float]:
    """Seconds each step took (a failed step is left out)."""
    cfg, gateway = svc.settings, svc.gateway
    # loud enough to pass the stt model's silence gate, and without its VAD pass: Whisper itself runs
    noise = np.random.default_rng(0).normal(0, 3000, 16000 * 2).astype(np.int16)
    steps = [("stt", lambda: gateway.transcribe(cfg.stt_model, noise, partial=True)),
             ("stt final", lambda: gateway.transcribe(cfg.stt_model, noise, window_s=cfg.stt_window_s, vad=False)),
             ("embedder", lambda: gateway.embed(cfg.embedder_model, [GREETING], kind="query"))]
    if cfg.llm_enabled:
        messages = turn_messages(cfg, cfg.system_prompt, [], [], GREETING)
        steps.append(("llm", lambda: gateway.llm_prefill(cfg.llm_model, messages, request_id="warm-up")))
    if cfg.tts_enabled and cfg.fallback_audio_cached:
        steps.append(("tts", lambda: prepare_fallbacks(gateway, cfg.tts_model, cfg.tts_voice, cfg.reply_fallbacks,
                                                       request_id="warm-up")))
    took = {}
    for name, call in steps:
        started = time.perf_counter()
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - best effort: never the server's end, always in the log
            log.warning("warm-up: %s failed (%s); its first turn pays instead", name, exc)
            continue
        took[name] = round(time.perf_counter() - started, 2)
    log.info("warm-up done: %s", ", ".join(f"{k} {v:.1f} s" for k, v in took.items()))
    return took

"""The single place that talks gRPC to Triton (tritonclient aio): unary calls, streams, cancel, readiness.

Streams: one gRPC stream per generation; leaving the `async for` early (barge-in, error) cancels the
stream, which Triton turns into `is_cancelled()` inside the model within a few ms. A plain `break`
would cancel nothing, so every stream here is an async generator whose `finally` cancels.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput
from tritonclient.utils import InferenceServerException

from orchestrator.metrics import MODEL_RELOADS
from triton_models.common import json_array, parse_json_array

log = logging.getLogger("orchestrator.triton")


class TritonCallError(RuntimeError):
    """A model answered with an error (bad input, model failure) or is unavailable."""

    def __init__(self, model: str, message: str):
        super().__init__(f"{model}: {message}")
        self.model, self.message = model, message


@dataclass
class Transcript:
    text: str
    model_version: str
    info: dict = field(default_factory=dict)


@dataclass
class StreamItem:
    """One streamed response: payload tensors + INFO json + which model version produced it."""
    data: np.ndarray
    info: dict
    model_version: str
    final: bool


def _input(name: str, array: np.ndarray) -> InferInput:
    dtype = {np.dtype(np.int16): "INT16", np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64",
             np.dtype(object): "BYTES"}[array.dtype]
    tensor = InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


BROKEN_STUB = ("is not healthy", "Stub process")  # Triton's words for a model whose process died


class TritonGateway:
    def __init__(self, url: str, *, lazy_load: bool = False, timeout_s: float = 60.0, stream_gap_s: float = 20.0):
        self.url, self.lazy_load, self.timeout_s, self.stream_gap_s = url, lazy_load, timeout_s, stream_gap_s
        self.client = grpcaio.InferenceServerClient(url)
        self._load_locks: dict[str, asyncio.Lock] = {}
        self.broken: set[str] = set()          # models being healed (reloaded): not ready for health
        self._healing: dict[str, asyncio.Task] = {}

    def _heal(self, model: str, why: str) -> None:
        """A model whose process died (or went silent mid-stream) is reloaded in the background;
        Triton itself keeps calling it READY."""
        if model in self._healing:
            return
        log.error("model %s is broken (%s): reloading it", model, why)
        MODEL_RELOADS.labels(model).inc()
        self.broken.add(model)

        async def reload() -> None:
            try:  # load_model alone keeps a loaded model whose process died as it is: unload first
                await asyncio.wait_for(self._unload_and_load(model), 300)
                self.broken.discard(model)
                log.info("model %s reloaded", model)
            except (InferenceServerException, asyncio.TimeoutError) as exc:
                log.error("reloading %s failed: %s", model, exc)
            finally:
                self._healing.pop(model, None)

        self._healing[model] = asyncio.create_task(reload())

    async def _unload_and_load(self, model: str) -> None:
        # the dead instance stays UNLOADING for good (its in-flight request never ends); a load after the
        # unload starts a fresh instance at once (Triton 2.51)
        await self.client.unload_model(model)
        for _ in range(10):
            if (await self.model_status([model]))[model]["state"] != "READY":
                break
            await asyncio.sleep(0.2)
        await self.client.load_model(model)

    def _error(self, model: str, message: str) -> TritonCallError:
        if any(marker in message for marker in BROKEN_STUB):
            self._heal(model, message)
        return TritonCallError(model, message)

    async def close(self) -> None:
        for task in list(self._healing.values()):
            task.cancel()
        await self.client.close()

    # ------------------------------------------------------------ readiness and model control
    async def server_ready(self) -> bool:
        try:
            return await self.client.is_server_ready()
        except InferenceServerException:
            return False

    async def model_status(self, names: list[str]) -> dict[str, dict]:
        """name -> {ready, version, state} for the given models."""
        out: dict[str, dict] = {n: {"ready": False, "version": None, "state": "UNKNOWN"} for n in names}
        try:
            index = await self.client.get_model_repository_index(as_json=True)
        except InferenceServerException as exc:
            return {n: {**v, "state": f"unreachable: {exc.message()}"} for n, v in out.items()}
        for m in index.get("models", []):
            if m["name"] in out and (m.get("state") == "READY" or out[m["name"]]["state"] != "READY"):
                out[m["name"]] = {"ready": m.get("state") == "READY", "version": m.get("version"),
                                  "state": m.get("state", "UNKNOWN"), "reason": m.get("reason", "")}
        return out

    async def ensure_loaded(self, model: str) -> None:
        """A model being healed is waited for (bounded), rather than failing every request meanwhile;
        LAZY_LOAD: load a model on first use (explicit model-control mode)."""
        healing = self._healing.get(model)
        if healing is not None:
            await asyncio.wait({healing}, timeout=self.timeout_s)  # never cancels the reload itself
        if not self.lazy_load:
            return
        if await self.client.is_model_ready(model):
            return
        lock = self._load_locks.setdefault(model, asyncio.Lock())
        async with lock:
            if not await self.client.is_model_ready(model):
                log.info("lazy-loading model %s", model)
                try:
                    await self.client.load_model(model)
                except InferenceServerException as exc:
                    raise TritonCallError(model, f"load failed: {exc.message()}") from None

    async def load_model(self, model: str) -> str:
        """(Re)load a model so Triton picks up a new version; returns the version now serving."""
        try:
            await self.client.load_model(model)
        except InferenceServerException as exc:
            raise TritonCallError(model, f"load failed: {exc.message()}") from None
        return (await self.model_status([model]))[model]["version"]

    # ------------------------------------------------------------ unary models
    async def infer(self, model: str, inputs: list[InferInput], outputs: list[str]):
        await self.ensure_loaded(model)
        try:
            result = await self.client.infer(model, inputs, client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise self._error(model, exc.message() or str(exc)) from None
        return result, {name: result.as_numpy(name) for name in outputs}

    async def vad(self, model: str, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        _, out = await self.infer(model, [_input("input", window.reshape(1, -1).astype(np.float32)),
                                          _input("state", state)], ["output", "stateN"])
        return float(out["output"].reshape(-1)[0]), out["stateN"]

    async def transcribe(self, model: str, pcm: np.ndarray, *, language: str = "ko", partial: bool = False,
                         beam_size: int = 1, window_s: int = 0, prefix: str = "", vad: bool = True,
                         order: float | None = None) -> Transcript:
        opts = {"language": language, "partial": partial, "beam_size": beam_size, "window_s": window_s,
                "prefix": prefix, "vad": vad, "order": order}
        result, out = await self.infer(model, [_input("AUDIO", pcm.astype(np.int16).reshape(-1)),
                                               _input("OPTIONS", json_array(opts))], ["TRANSCRIPT"])
        info = parse_json_array(out["TRANSCRIPT"])
        return Transcript(info.get("text", ""), result.get_response().model_version, info)

    async def embed(self, model: str, texts: list[str], kind: str = "passage") -> np.ndarray:
        arr = np.array([t.encode("utf-8") for t in texts], dtype=object)
        _, out = await self.infer(model, [_input("TEXT", arr), _input("OPTIONS", json_array({"kind": kind}))],
                                  ["EMBEDDING"])
        return out["EMBEDDING"]

    # ------------------------------------------------------------ streaming models
    async def stream(self, model: str, inputs: list[InferInput], data_output: str,
                     request_id: str = "", gap_s: float | None = None) -> AsyncIterator[StreamItem]:
        """Yield responses of one decoupled request; cancels the request if the consumer stops early.
        `gap_s` (default: the gateway's) bounds the silence between two responses."""
        gap_s = gap_s or self.stream_gap_s
        await self.ensure_loaded(model)

        async def requests():
            yield {"model_name": model, "inputs": inputs, "request_id": request_id}

        responses = self.client.stream_infer(requests())
        finished = False
        try:
            while True:
                try:  # a stream that goes silent (a dead or stalled model process) fails, never hangs
                    result, error = await asyncio.wait_for(anext(responses), gap_s)
                except StopAsyncIteration:
                    return
                except asyncio.TimeoutError:
                    self._heal(model, f"no response for {gap_s:g} s")
                    raise TritonCallError(model, f"no response for {gap_s:g} s") from None
                if error is not None:
                    finished = True
                    raise self._error(model, error.message() if hasattr(error, "message") else str(error))
                response = result.get_response()
                final = response.parameters["triton_final_response"].bool_param \
                    if "triton_final_response" in response.parameters else False
                # set before the yield: a consumer that stops at the final item must not cancel a finished
                # request (a cancel racing the final response wedges the model version in UNLOADING)
                finished = final
                info = parse_json_array(result.as_numpy("INFO"))
                if final and info.get("status") == "shutdown":  # unloaded mid-stream: not a whole answer
                    raise TritonCallError(model, "the model was unloaded mid-stream")
                if info.get("heartbeat") and not final:  # busy (queued or yielding), alive: nothing to yield
                    continue
                yield StreamItem(result.as_numpy(data_output), info, response.model_version, final)
                if final:
                    return
        finally:
            if not finished:
                responses.cancel()
                log.debug("cancelled %s stream %s", model, request_id)

    def llm_stream(self, model: str, messages: list[dict], options: dict, request_id: str = ""):
        return self.stream(model, [_input("MESSAGES", json_array(messages)), _input("OPTIONS", json_array(options))],
                           "DELTA", request_id)

    async def llm_prefill(self, model: str, messages: list[dict], request_id: str = "") -> dict:
        """Have the LLM evaluate a turn's prompt before its final words are known (its last user message
        is a partial transcript): the generation then starts from the KV cache. Its summary."""
        info: dict = {}
        async for item in self.llm_stream(model, messages, {"prefill": True}, request_id):
            if item.final:
                info = item.info
        return info

    def tts_stream(self, model: str, text: str, options: dict, request_id: str = ""):
        text_arr = np.array([text.encode("utf-8")], dtype=object)
        return self.stream(model, [_input("TEXT", text_arr), _input("OPTIONS", json_array(options))], "AUDIO",
                           request_id)

    async def enroll_voice(self, model: str, voice_id: str, pcm: np.ndarray, rate: int) -> dict:
        inputs = [_input("REFERENCE", pcm.astype(np.int16).reshape(-1)),
                  _input("OPTIONS", json_array({"enroll": voice_id, "reference_rate": rate}))]
        info: dict = {}
        # a voice fit answers once, at the end (tens of seconds on a CPU): only a generous bound
        async for item in self.stream(model, inputs, "AUDIO", gap_s=max(self.timeout_s, 600.0)):
            if "voice" in item.info:
                info = {**item.info, "model_version": item.model_version}
        return info

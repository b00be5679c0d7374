"""Helpers shared by the Triton models and their clients: tensor dtypes and JSON-in-BYTES tensors."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

_DTYPES = {
    "TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_FP64": np.float64,
    "TYPE_INT64": np.int64, "TYPE_INT32": np.int32, "TYPE_INT16": np.int16, "TYPE_INT8": np.int8,
    "TYPE_UINT8": np.uint8, "TYPE_BOOL": np.bool_, "TYPE_STRING": np.object_,
}
T = TypeVar("T")


def np_dtype(triton_type: str):
    return _DTYPES[triton_type]


def json_array(obj: Any) -> np.ndarray:
    """A JSON document as a 1-element BYTES tensor."""
    return np.array([json.dumps(obj, ensure_ascii=False).encode("utf-8")], dtype=np.object_)


def parse_json_array(arr: np.ndarray) -> Any:
    raw = arr.reshape(-1)[0]
    return json.loads(raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw)


def request_json(pb_utils, request, name: str, default: Any = None) -> Any:
    """Read a JSON BYTES input of a Triton request (None when absent and no default)."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    return parse_json_array(tensor.as_numpy())


VERSION_PARAMS = "params.json"


# What a version is (its engine and weights) lives in its folder; everything else is how the model is
# served (threads, contexts, scheduling rules), which config.pbtxt or a load's config override decides.
# (A list of the serving keys instead let a new one, stop_for_critical, be pinned by params.json.)
VERSION_KEYS = frozenset({"engine", "weights", "variant", "sample_rate"})


def optional(options: dict, key: str, cast: Callable[[Any], T]) -> T | None:
    """A request option that may be absent or null: `cast` of it, or None."""
    value = options.get(key)
    return None if value is None else cast(value)


def model_params(args: dict) -> dict[str, str]:
    """The string parameters of a model's config.pbtxt, overridden by its version folder's params.json
    (what `export` wrote for that version: its VERSION_KEYS)."""
    config = json.loads(args["model_config"])
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    version_file = Path(args.get("model_repository", "")) / str(args.get("model_version", "")) / VERSION_PARAMS
    if args.get("model_repository") and version_file.is_file():
        params |= {k: str(v) for k, v in json.loads(version_file.read_text()).items() if k in VERSION_KEYS}
    return params


def pcm16_to_float(pcm: np.ndarray | bytes) -> np.ndarray:
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        pcm = np.frombuffer(pcm, dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def bootstrap_source(module: str) -> str:
    """The `model.py` Triton loads: puts our code and the venv on sys.path, then re-exports a model.

    The Python-backend stub runs an isolated interpreter that ignores PYTHONPATH, so the launcher
    passes the paths in VOICE_PYTHONPATH (in the GPU container: the image's site-packages + /app).
    """
    return (
        f"# Written by `python -m export`; the implementation lives in {module.replace('.', '/')}.py\n"
        "import os, sys\n"
        "sys.path[:0] = [p for p in os.environ.get('VOICE_PYTHONPATH', '').split(os.pathsep) if p]\n"
        f"from {module} import TritonPythonModel  # noqa: E402,F401\n"
    )


# Every call a model's threads make into the Triton server (a response sent, is_cancelled, a metric
# update) takes this lock: calls from two stream threads at once crashed tritonserver 2.51 (SIGSEGV in
# libtriton_python.so) as soon as two llama.cpp contexts generated side by side.
SERVER_CALLS = threading.RLock()


class ModelMetric:
    """A counter (or gauge) on Triton's metrics port (a Python-backend custom metric), labelled with the
    model and version; a no-op outside Triton (in-process benchmarks)."""

    def __init__(self, name: str, description: str, args: dict | None, gauge: bool = False):
        self.family = self.metric = None
        if args is None:
            return
        import triton_python_backend_utils as pb_utils

        kind = pb_utils.MetricFamily.GAUGE if gauge else pb_utils.MetricFamily.COUNTER
        # the family must outlive its metric (Triton refuses to count on a metric whose family is gone)
        self.family = pb_utils.MetricFamily(name=name, description=description, kind=kind)
        self.metric = self.family.Metric(labels={"model": args["model_name"], "version": args["model_version"]})

    def add(self, n: int = 1) -> None:
        if self.metric is not None:
            with SERVER_CALLS:
                self.metric.increment(n)

    def set(self, value: float) -> None:
        if self.metric is not None:
            with SERVER_CALLS:
                self.metric.set(value)

    def counting(self, items):
        """Pass items through, counting each as it is made."""
        for item in items:
            self.add()
            yield item

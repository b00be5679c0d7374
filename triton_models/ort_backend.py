"""A Python-based Triton backend named `onnxruntime` for the lite CPU server.

It serves `<model>/<version>/model.onnx` with onnxruntime, honouring the config's inputs, outputs,
`reshape` and the `intra_op_thread_count` parameter the real onnxruntime backend also reads. The
GPU container ignores this file and uses its native onnxruntime backend on the same repository.
"""
from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

from triton_models.common import np_dtype


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_thread_count", "1"))
        opts.inter_op_num_threads = 1
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.inputs = [(i["name"], np_dtype(i["data_type"]), (i.get("reshape") or {}).get("shape"))
                       for i in config["input"]]
        self.outputs = [(o["name"], np_dtype(o["data_type"])) for o in config["output"]]

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {}
            for name, dtype, reshape in self.inputs:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    continue
                value = tensor.as_numpy().astype(dtype, copy=False)
                feed[name] = value.reshape([int(d) for d in reshape]) if reshape is not None else value
            try:
                results = self.session.run([name for name, _ in self.outputs], feed)
            except Exception as exc:  # bad shapes / dtypes: a clear per-request error
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"onnxruntime: {exc}")))
                continue
            responses.append(pb_utils.InferenceResponse([
                pb_utils.Tensor(name, np.asarray(value).astype(dtype, copy=False))
                for (name, dtype), value in zip(self.outputs, results)
            ]))
        return responses

"""Kokoro's int8 graph rewritten with float weights (engines/kokoro_graph.py): the form a GPU runs.

A small model quantized by onnxruntime's own quantize_dynamic checks the rewrite operator by operator;
the real Kokoro weights and our Whisper check that the float voice says the same words.
"""
from __future__ import annotations

import kocer
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_tts_window import INTELLIGIBILITY_SENTENCES

QUANTIZED_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeLSTM"}


def small_model(path):
    """MatMul → Conv (with bias) → bidirectional LSTM, float weights large enough to be quantized."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = lambda *shape: numpy_helper.from_array(rng.normal(0, 0.2, shape).astype(np.float32))  # noqa: E731
    inits = [w(16, 32), w(32, 32, 3), w(32), w(2, 64, 32), w(2, 64, 16), w(2, 128)]
    for tensor, name in zip(inits, ["mm_w", "conv_w", "conv_b", "lstm_w", "lstm_r", "lstm_b"]):
        tensor.name = name
    nodes = [helper.make_node("MatMul", ["x", "mm_w"], ["h"]),                        # [1, T, 32]
             helper.make_node("Transpose", ["h"], ["h_t"], perm=[0, 2, 1]),           # [1, 32, T]
             helper.make_node("Conv", ["h_t", "conv_w", "conv_b"], ["c"], pads=[1, 1], kernel_shape=[3]),
             helper.make_node("Transpose", ["c"], ["c_t"], perm=[2, 0, 1]),           # [T, 1, 32]
             helper.make_node("LSTM", ["c_t", "lstm_w", "lstm_r", "lstm_b"], ["y"], hidden_size=16,
                              direction="bidirectional")]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)


def run(model_or_path, x):
    import onnxruntime as ort

    source = model_or_path if isinstance(model_or_path, (str, bytes)) else model_or_path.SerializeToString()
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("per_channel", [False, True])
def test_unit_dequantized_matches_the_float_model_it_was_quantized_from(tmp_path, per_channel):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from RealTime_zeroshot_TTS_ko.engines.kokoro_graph import dequantized

    small_model(str(tmp_path / "float.onnx"))
    quantize_dynamic(str(tmp_path / "float.onnx"), str(tmp_path / "int8.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Conv", "LSTM"], per_channel=per_channel)
    quantized = onnx.load(str(tmp_path / "int8.onnx"))
    assert {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM"} <= {n.op_type for n in quantized.graph.node}
    rewritten = dequantized(quantized)
    assert not QUANTIZED_OPS & {n.op_type for n in rewritten.graph.node}
    assert {n.op_type for n in quantized.graph.node} & QUANTIZED_OPS  # the input is left as it was
    x = np.random.default_rng(1).normal(0, 1, (1, 20, 16)).astype(np.float32)
    original, int8, rewritten_out = run(str(tmp_path / "float.onnx"), x), run(str(tmp_path / "int8.onnx"), x), run(rewritten, x)
    # the weights are the int8 ones, dequantized: closer to the original than int8 activations allow
    assert np.abs(rewritten_out - original).max() < 0.05
    assert np.abs(rewritten_out - original).mean() < np.abs(int8 - original).mean()


@pytest.fixture(scope="module")
def weights_dir():
    return next((ROOT / "model_repository" / "tts").glob("*/kokoro"))


def test_unit_precision_is_checked(weights_dir):
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine

    with pytest.raises(ValueError, match="precision"):
        KokoroEngine.from_dir(weights_dir, precision="fp8")


def test_float_kokoro_speaks_the_same_words(weights_dir):
    from RealTime_zeroshot_TTS_ko.engines.base import resample
    from RealTime_zeroshot_TTS_ko.engines.kokoro import KokoroEngine
    from triton_models.stt import SttOptions, WhisperTranscriber

    engines = {p: KokoroEngine.from_dir(weights_dir, precision=p) for p in ("int8", "float")}
    assert engines["float"].precision == "float" and engines["int8"].precision == "int8"
    stt = WhisperTranscriber(next((ROOT / "model_repository" / "stt").glob("*/whisper")))
    hyps = {p: [] for p in engines}
    durations = {p: [] for p in engines}
    for text in INTELLIGIBILITY_SENTENCES:
        for p, engine in engines.items():
            audio = np.concatenate([c.audio for c in engine.stream(text)])
            durations[p].append(len(audio) / engine.sample_rate)
            hyps[p].append(stt.transcribe(resample(audio, 24000, 16000), SttOptions(beam_size=5))["text"])
    cer = {p: kocer.cer(INTELLIGIBILITY_SENTENCES, hyps[p]) for p in engines}
    print(f"\nCER {cer}; float heard as {hyps['float']}")
    assert cer["float"] <= max(0.12, cer["int8"] + 0.03)
    # the same prosody model: each sentence lasts as long (within 5 %) in both
    ratio = np.array(durations["float"]) / np.array(durations["int8"])
    assert np.all(np.abs(ratio - 1) < 0.05), ratio

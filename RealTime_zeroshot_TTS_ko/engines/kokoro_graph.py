"""Kokoro's shipped graph is dynamically quantized (onnxruntime's quantize_dynamic): every MatMul,
Conv and LSTM takes int8 weights and quantizes its input at run time. Those operators run on the CPU
only: on a GPU, onnxruntime moves each one and its tensors back to the host (~550 copies a call).
`dequantized` rewrites them as float operators over the dequantized weights (w - zero) * scale:
the same weights, without the run-time quantization of activations.

The patterns rewritten, as quantize_dynamic writes them:
  x → DynamicQuantizeLinear → MatMulInteger(xq, Wq, xz, Wz) → Cast → Mul(x_scale · W_scale)
  x → DynamicQuantizeLinear → ConvInteger(…) [→ Add(bias quantized by x_scale · W_scale)] → Cast → Mul(…)
  DynamicQuantizeLSTM(X, Wq [dirs, in, 4h], Rq, B, …, W_scale, W_zero, R_scale, R_zero)
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np


def dequantized(model):
    """A float copy of a dynamically quantized ONNX model (onnx.ModelProto); the input is unchanged."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(weights[name])

    def only_consumer(name: str, op: str):
        (node,) = consumers[name]
        if node.op_type != op:
            raise ValueError(f"unexpected {node.op_type} after {name}: not a quantize_dynamic pattern")
        return node

    def add_weight(name: str, value: np.ndarray) -> str:
        if name not in added:  # a weight some operators share is dequantized once
            added.add(name)
            graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    removed, replaced, added = set(), {}, set()
    for node in graph.node:
        if node.op_type in ("MatMulInteger", "ConvInteger"):
            quantize = producer[node.input[0]]
            if quantize.op_type != "DynamicQuantizeLinear":
                raise ValueError(f"{node.name}: its input is not quantized at run time")
            chain, out = [node], node.output[0]
            bias = None
            if node.op_type == "ConvInteger" and consumers[out][0].op_type == "Add":
                add = only_consumer(out, "Add")
                bias = _float_bias(add, out, producer, weights)
                chain.append(add)
                out = add.output[0]
            cast = only_consumer(out, "Cast")
            scale_mul = only_consumer(cast.output[0], "Mul")
            chain += [cast, scale_mul]
            scales = producer[scale_mul.input[1]]
            (w_scale,) = [array(n) for n in scales.input if n in weights]
            w, w_zero = array(node.input[1]).astype(np.float32), array(node.input[3]).astype(np.float32)
            if node.op_type == "ConvInteger":  # per output channel is the first axis: [out, in, k]
                w_scale, w_zero = (v.reshape(-1, *[1] * (w.ndim - 1)) if v.ndim else v for v in (w_scale, w_zero))
            inputs = [quantize.input[0], add_weight(node.input[1] + "_float", (w - w_zero) * w_scale)]
            if bias is not None:
                inputs.append(add_weight(*bias))
            op = "MatMul" if node.op_type == "MatMulInteger" else "Conv"
            new = helper.make_node(op, inputs, [scale_mul.output[0]], name=(node.name or node.output[0]) + "_float")
            if op == "Conv":
                new.attribute.extend(node.attribute)
            replaced[node.output[0]] = new
            removed.update(n.output[0] for n in chain)
        elif node.op_type == "DynamicQuantizeLSTM":
            replaced[node.output[0]] = _float_lstm(node, array, add_weight)
    # nodes are named by their first output: the new node takes the place of the quantized operator
    nodes = [onnx.NodeProto.FromString(replaced.get(n.output[0], n).SerializeToString()) for n in graph.node
             if n.output[0] in replaced or n.output[0] not in removed]
    del graph.node[:]
    graph.node.extend(_live(nodes, graph))
    used = {name for n in graph.node for name in n.input}
    for i in reversed(range(len(graph.initializer))):
        if graph.initializer[i].name not in used:
            del graph.initializer[i]
    return model


def _float_bias(add, conv_out: str, producer, weights) -> tuple[str, np.ndarray]:
    """A new name and the value of the float bias that quantize_dynamic quantized as
    Cast(Floor(bias / (x_scale · W_scale)))."""
    from onnx import numpy_helper

    node = producer[next(n for n in add.input if n != conv_out)]
    while node.op_type != "Div":  # Reshape ← Cast ← Floor ← Div(bias, scales)
        node = producer[node.input[0]]
    return node.input[0] + "_float", numpy_helper.to_array(weights[node.input[0]])


def _float_lstm(node, array, add_weight):
    """ONNX LSTM from com.microsoft DynamicQuantizeLSTM: weights dequantized per direction and
    transposed from [dirs, in, 4·hidden] to ONNX's [dirs, 4·hidden, in]."""
    from onnx import helper

    x, w, r, b, seq, h0, c0, peep, w_scale, w_zero, r_scale, r_zero = (list(node.input) + [""] * 12)[:12]

    def weight(name, scale, zero):
        w = array(name).astype(np.float32)
        # per direction [dirs], or per direction and gate channel [dirs, 4·hidden] (the last axis of w)
        shape = lambda v: v.reshape(v.shape[0], 1, -1) if v.ndim == 2 else v.reshape(-1, 1, 1)  # noqa: E731
        value = (w - shape(array(zero).astype(np.float32))) * shape(array(scale))
        return add_weight(name + "_float", value.transpose(0, 2, 1))

    inputs = [x, weight(w, w_scale, w_zero), weight(r, r_scale, r_zero), b, seq, h0, c0, peep]
    while inputs and not inputs[-1]:
        inputs.pop()
    lstm = helper.make_node("LSTM", inputs, list(node.output), name=(node.name or node.output[0]) + "_float")
    lstm.attribute.extend(node.attribute)
    return lstm


def _live(nodes: list, graph) -> list:
    """The nodes that some graph output still needs, in their order."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(n for n in node.input if n)
    return keep[::-1]


# The harmonic source (SineGen) integrates F0 into a phase: CumSum over the decoder's F0 points,
# in cycles per harmonic. A decoder window that starts later starts that sum at zero, so its sines
# carry another phase than the one-call audio's (correlation 0.1-0.2 at a seam).
SINE_PHASE_SUM, SINE_PHASE_USE = ("/decoder/decoder/generator/m_source/l_sin_gen/CumSum",
                                  "/decoder/decoder/generator/m_source/l_sin_gen/Mul_2")
PHASE_OFFSET, PHASE = "phase_offset", "phase"  # (1, 1, harmonics) in; (1, F0 points, harmonics) out


def carry_phase(model):
    """Kokoro's graph with the harmonic source's phase as an input offset and an output, in place: a
    window decoded from frame s with the phase the previous window reached at s continues its sines.
    With a zero offset the audio is unchanged (the offset is added to the running sum)."""
    from onnx import TensorProto, helper

    graph = model.graph
    phase_sum = next(n for n in graph.node if n.name == SINE_PHASE_SUM)
    use = next(n for n in graph.node if n.name == SINE_PHASE_USE)
    graph.input.append(helper.make_tensor_value_info(PHASE_OFFSET, TensorProto.FLOAT, [1, 1, None]))
    add = helper.make_node("Add", [phase_sum.output[0], PHASE_OFFSET], [PHASE], name=SINE_PHASE_SUM + "Offset")
    graph.node.insert(list(graph.node).index(use), add)
    use.input[0] = PHASE
    graph.output.append(helper.make_tensor_value_info(PHASE, TensorProto.FLOAT, [1, None, None]))
    return model

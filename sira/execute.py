"""Executing a model for verification, in float32 or float64.

The analysis is sound for the mathematical semantics of the model. Its
float32 execution is an approximation of those semantics whose error can be
large where a value is the small difference of two large ones (a batch-norm
with a large factor after a long dot product); no tolerance read off the
output can bound that. Verification therefore executes a float64 copy of
the model (error ~1e-16 relative to the terms involved) node by node with
qonnx's own op implementations, and can also check the original float32
execution.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from .model import quiet, topological_order


def to_float64(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` whose float32 tensors, initializers and casts are
    float64."""
    m = ModelWrapper(model.model.SerializeToString())
    g = m.graph
    for i, init in enumerate(g.initializer):
        if init.data_type == TensorProto.FLOAT:
            arr = numpy_helper.to_array(init).astype(np.float64)
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, init.name))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
            if a.type == a.TENSOR and a.t.data_type == TensorProto.FLOAT:
                arr = numpy_helper.to_array(a.t).astype(np.float64)
                a.t.CopyFrom(numpy_helper.from_array(arr, a.t.name))
    return m


def _quant_float64(node, ctx) -> None:
    """qonnx's Quant, without the float32 cast its node wrapper applies."""
    from qonnx.custom_op.general.intquant import int_quant

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attrs.get("rounding_mode", b"ROUND")
    x, s, z, b = (ctx[i] for i in node.input[:4])
    ctx[node.output[0]] = np.asarray(
        int_quant(x, s, z, b, attrs.get("signed", 1), attrs.get("narrow", 0), mode.decode() if isinstance(mode, bytes) else mode),
        dtype=np.float64,
    )


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    total = max(0, (-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def _conv_float64(node, ctx) -> None:
    """ONNX Conv in float64, which onnxruntime has no kernel for: zero
    padding (explicit or auto_pad), strides, dilations, groups, bias."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    w = np.asarray(ctx[node.input[1]], dtype=np.float64)
    nsp = w.ndim - 2
    kernel = w.shape[2:]
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    group = int(attrs.get("group", 1))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [_same_pads(x.shape[2 + i], kernel[i], strides[i], dilations[i], auto_pad == "SAME_UPPER") for i in range(nsp)]
    else:
        flat = list(attrs.get("pads", [0] * 2 * nsp)) if auto_pad != "VALID" else [0] * 2 * nsp
        pads = [(flat[i], flat[i + nsp]) for i in range(nsp)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    out_sp = [(xp.shape[2 + i] - (kernel[i] - 1) * dilations[i] - 1) // strides[i] + 1 for i in range(nsp)]
    cg, og = x.shape[1] // group, w.shape[0] // group
    y = np.zeros((x.shape[0], w.shape[0], *out_sp))
    for g in range(group):
        xs, wg = xp[:, g * cg : (g + 1) * cg], w[g * og : (g + 1) * og]
        for k in np.ndindex(*kernel):
            window = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (out_sp[i] - 1) * strides[i] + 1, strides[i]) for i in range(nsp))
            y[:, g * og : (g + 1) * og] += np.einsum("nc...,oc->no...", xs[(slice(None), slice(None)) + window], wg[(slice(None), slice(None)) + k])
    if len(node.input) > 2 and node.input[2]:
        y += np.asarray(ctx[node.input[2]], dtype=np.float64).reshape((1, -1) + (1,) * nsp)
    ctx[node.output[0]] = y


#: op types whose qonnx node wrapper rounds the result to float32, or that
#: onnxruntime cannot execute in float64
_WIDE_KERNELS = {"Quant": _quant_float64, "IntQuant": _quant_float64, "Conv": _conv_float64}


def execute_all(model: ModelWrapper, feed: dict, dtype=np.float64) -> dict:
    """Every tensor of ``model`` for one input ``feed``, executed node by node
    with qonnx; for float64, ops whose qonnx wrapper returns float32 run
    qonnx's underlying function directly, and other float outputs are
    promoted, so the whole run keeps its precision."""
    from qonnx.core.onnx_exec import execute_node
    from qonnx.util.basic import get_preferred_qonnx_opset

    ctx = model.make_empty_exec_context()
    for name, value in feed.items():
        ctx[name] = np.asarray(value, dtype=dtype)
    opsets = model.get_opset_imports()
    with quiet():
        for node in topological_order(model):
            if dtype == np.float64 and node.op_type in _WIDE_KERNELS:
                _WIDE_KERNELS[node.op_type](node, ctx)
                continue
            execute_node(node, ctx, model.graph, opsets.get(node.domain, get_preferred_qonnx_opset()), True)
            for o in node.output:
                v = ctx.get(o)
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype != dtype:
                    ctx[o] = v.astype(dtype)
    return ctx

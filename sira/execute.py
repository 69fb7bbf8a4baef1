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


#: op types whose qonnx node wrapper rounds the result to float32
_WIDE_KERNELS = {"Quant": _quant_float64, "IntQuant": _quant_float64}


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

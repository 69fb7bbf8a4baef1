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

from .errors import SiraError
from .model import node_attrs, quiet, topological_order


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

    attrs = node_attrs(node)
    x, s, z, b = (ctx[i] for i in node.input[:4])
    ctx[node.output[0]] = np.asarray(
        int_quant(x, s, z, b, attrs.get("signed", 1), attrs.get("narrow", 0), attrs.get("rounding_mode", "ROUND")), dtype=np.float64
    )


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    total = max(0, (-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def _spatial_pads(attrs: dict, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis from ``pads`` or ``auto_pad``."""
    nsp = len(kernel)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return [_same_pads(sizes[i], kernel[i], strides[i], dilations[i], auto_pad == "SAME_UPPER") for i in range(nsp)]
    flat = list(attrs.get("pads", [0] * 2 * nsp)) if auto_pad != "VALID" else [0] * 2 * nsp
    return [(flat[i], flat[i + nsp]) for i in range(nsp)]


def _conv_float64(node, ctx) -> None:
    """ONNX Conv in float64, which onnxruntime has no kernel for: zero
    padding (explicit or auto_pad), strides, dilations, groups, bias."""
    attrs = node_attrs(node)
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    w = np.asarray(ctx[node.input[1]], dtype=np.float64)
    nsp = w.ndim - 2
    kernel = w.shape[2:]
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    group = int(attrs.get("group", 1))
    pads = _spatial_pads(attrs, x.shape[2:], kernel, strides, dilations)
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


def _global_average_pool_float64(node, ctx) -> None:
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    ctx[node.output[0]] = x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def _average_pool_float64(node, ctx) -> None:
    """ONNX AveragePool in float64: explicit or SAME pads, strides,
    dilations, ceil_mode, count_include_pad."""
    attrs = node_attrs(node)
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    kernel = list(attrs["kernel_shape"])
    nsp = len(kernel)
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    pads = _spatial_pads(attrs, x.shape[2:], kernel, strides, dilations)
    out_shape = ctx[node.output[0]].shape[2:] if ctx.get(node.output[0]) is not None else None
    if out_shape is None:
        rnd = np.ceil if attrs.get("ceil_mode", 0) else np.floor
        out_shape = [int(rnd((x.shape[2 + i] + sum(pads[i]) - (kernel[i] - 1) * dilations[i] - 1) / strides[i])) + 1 for i in range(nsp)]
    extra = [max(0, (out_shape[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - (x.shape[2 + i] + sum(pads[i]))) for i in range(nsp)]
    widths = [(0, 0), (0, 0)] + [(pads[i][0], pads[i][1] + extra[i]) for i in range(nsp)]
    xp = np.pad(x, widths)
    inside = np.pad(np.ones(x.shape[2:]), [(pads[i][0], pads[i][1] + extra[i]) for i in range(nsp)])
    counted = np.pad(np.ones(x.shape[2:]), [pads[i] for i in range(nsp)], constant_values=1.0 if attrs.get("count_include_pad", 0) else 0.0)
    counted = np.pad(counted, [(0, e) for e in extra])
    total = np.zeros(x.shape[:2] + tuple(out_shape))
    count = np.zeros(tuple(out_shape))
    for k in np.ndindex(*kernel):
        window = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (out_shape[i] - 1) * strides[i] + 1, strides[i]) for i in range(nsp))
        total += xp[(slice(None), slice(None)) + window] * inside[window]
        count += counted[window]
    ctx[node.output[0]] = total / count


def _leaky_relu_float64(node, ctx) -> None:
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    alpha = float(np.float32(node_attrs(node).get("alpha", 0.01)))
    ctx[node.output[0]] = np.where(x >= 0, x, alpha * x)


def _hard_sigmoid_float64(node, ctx) -> None:
    x = np.asarray(ctx[node.input[0]], dtype=np.float64)
    attrs = node_attrs(node)
    alpha, beta = float(np.float32(attrs.get("alpha", 0.2))), float(np.float32(attrs.get("beta", 0.5)))
    ctx[node.output[0]] = np.clip(alpha * x + beta, 0.0, 1.0)


#: float64 kernels for ops onnxruntime has no double implementation of (used
#: only when it refuses the node)
_FLOAT64_FALLBACKS = {
    "GlobalAveragePool": _global_average_pool_float64,
    "AveragePool": _average_pool_float64,
    "LeakyRelu": _leaky_relu_float64,
    "HardSigmoid": _hard_sigmoid_float64,
}


#: op types whose qonnx node wrapper rounds the result to float32, or that
#: onnxruntime cannot execute in float64
_WIDE_KERNELS = {"Quant": _quant_float64, "IntQuant": _quant_float64, "Conv": _conv_float64}


class Executor:
    """Runs a model node by node with qonnx's op implementations, like
    qonnx's ``execute_onnx``, but prepares every node once: a standard ONNX
    node gets one onnxruntime session, reused for every input (qonnx builds
    a new session per node per call, which dominated verification time).

    With ``dtype=np.float64`` it runs a float64 copy of the model; ops whose
    qonnx wrapper returns float32, or that onnxruntime cannot run in
    float64, use the float64 kernels above, and other float outputs are
    promoted, so the whole run keeps its precision.
    """

    def __init__(self, model: ModelWrapper, dtype=np.float64):
        from qonnx.custom_op.registry import is_custom_op
        from qonnx.util.basic import get_preferred_qonnx_opset

        self.dtype = dtype
        self.model = to_float64(model) if dtype == np.float64 else model
        graph = self.model.graph
        self.template = self.model.make_empty_exec_context()
        infos = {v.name: v for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
        opsets = self.model.get_opset_imports()
        self.steps = []
        for node in topological_order(self.model):
            opset = opsets.get(node.domain, get_preferred_qonnx_opset())
            if dtype == np.float64 and node.op_type in _WIDE_KERNELS:
                self.steps.append((node, _WIDE_KERNELS[node.op_type]))
            elif is_custom_op(node.domain, node.op_type):
                self.steps.append((node, self._custom(node, opset)))
            else:
                self.steps.append((node, self._session_or_kernel(node, infos, opset)))

    def _session_or_kernel(self, node, infos: dict, opset: int):
        try:
            return self._session(node, infos, opset)
        except Exception as e:
            if self.dtype == np.float64 and node.op_type in _FLOAT64_FALLBACKS:
                return _FLOAT64_FALLBACKS[node.op_type]
            raise SiraError(
                f"node '{node.name}' ({node.op_type}) cannot be executed for verification in {np.dtype(self.dtype).name}: "
                f"{str(e).splitlines()[0]}; verify with --precision float32 or report the op"
            ) from None

    def _custom(self, node, opset: int):
        from qonnx.custom_op import registry

        graph = self.model.graph

        def run(_node, ctx):
            registry.getCustomOp(node, onnx_opset_version=opset).execute_node(ctx, graph)

        return run

    def _session(self, node, infos: dict, opset: int):
        import onnxruntime as rt

        def info(name):
            if name in infos:
                return infos[name]
            value = np.asarray(self.template[name])
            return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))

        graph = helper.make_graph([node], "node", [info(i) for i in node.input if i], [info(o) for o in node.output if o])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        proto.ir_version = min(proto.ir_version, 10)
        options = rt.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = rt.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o for o in node.output if o]

        def run(_node, ctx):
            results = session.run(names, {i: ctx[i] for i in node.input if i})
            for name, value in zip(names, results):
                ctx[name] = value

        return run

    def run(self, feed: dict) -> dict:
        """Every tensor of the model for one input ``feed``."""
        ctx = dict(self.template)
        for name, value in feed.items():
            ctx[name] = np.asarray(value, dtype=self.dtype)
        with quiet():
            for node, step in self.steps:
                step(node, ctx)
                if self.dtype == np.float64:
                    for o in node.output:
                        v = ctx.get(o)
                        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype != np.float64:
                            ctx[o] = v.astype(np.float64)
        return ctx


def execute_all(model: ModelWrapper, feed: dict, dtype=np.float64) -> dict:
    """Every tensor of ``model`` for one input ``feed`` (see :class:`Executor`;
    to run many inputs, build one Executor and reuse it)."""
    return Executor(model, dtype).run(feed)

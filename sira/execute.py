"""Executing a model for verification, in float32 or float64.

(Slightly longer than sira's usual module: the per-op float64 steps and
the executor that batches them belong together; the array kernels
themselves are in :mod:`sira.exec_kernels`.)

The analysis is sound for the mathematical semantics of the model. Its
float32 execution is an approximation of those semantics whose error can be
large where a value is the small difference of two large ones (a batch-norm
with a large factor after a long dot product); no tolerance read off the
output can bound that. Verification therefore executes a float64 copy of
the model (error ~1e-16 relative to the terms involved), and can also check
the original float32 execution with qonnx's own op implementations.

In float64 the ops that dominate a quantized network (Conv, MatMul, Gemm,
the QONNX quantizers, MultiThreshold, Reshape) run on the whole-array
kernels of :mod:`sira.exec_kernels`; every other standard op runs in one
onnxruntime session per node and every other custom op through qonnx.
:meth:`Executor.run_many` stacks many inputs along the batch axis and runs
each node once per batch; a node that could mix samples (one whose batch
axis is not a plain batch axis, see :func:`_batchable`) runs sample by
sample inside the batch. Batching changes no integer-valued result; a float
result can differ in its last bits, as BLAS may sum the product of many
rows in another order than the product of one.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from typing import Iterable, Iterator, Optional

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from . import exec_kernels as kernels
from .errors import SiraError
from .model import node_attrs, quiet, topological_order
from .modelfile import wrap

#: memory one batch of :meth:`Executor.run_many` may take (every tensor of
#: every sample, plus the largest im2col matrix)
BATCH_BYTES = 128 * 2**20
#: most samples in one batch
MAX_BATCH = 256
#: batches of :meth:`Executor.run_many` run side by side, one per core (at
#: most two: the machines sira targets, and twice the batch memory)
WORKERS = max(1, min(2, os.cpu_count() or 1))


@functools.lru_cache(maxsize=None)
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that run a batch beside the calling thread."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS - 1, thread_name_prefix="sira-batch")


#: memory the tensors of one input of the model may take in float64; a model
#: past it is refused before anything is allocated (the whole machine
#: would be spent on one frame)
MAX_SAMPLE_BYTES = 2**29


def check_sample_memory(model: ModelWrapper) -> None:
    """Refuse, before any allocation, a model whose tensors for one input
    would take more than :data:`MAX_SAMPLE_BYTES` in float64, naming the
    largest tensor (usually a batch dimension set far above 1)."""
    sizes = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            sizes[vi.name] = (math.prod(dims), dims)
    total = 8 * sum(n for n, _ in sizes.values())
    if total > MAX_SAMPLE_BYTES:
        name, (_, dims) = max(sizes.items(), key=lambda kv: kv[1][0])
        batch = dims[0]
        hint = (f"its batch dimension is {batch}: set it to 1 (a dataflow accelerator streams one frame at a time)"
                if batch > 1 else "check the shapes the model declares")  # fmt: skip
        raise SiraError(f"executing one input of this model takes {total / 2**30:.1f} GiB (tensor '{name}' has shape {dims}), "
                        f"more than sira's limit of {MAX_SAMPLE_BYTES // 2**20} MiB; {hint}")  # fmt: skip


def to_float64(model: ModelWrapper) -> ModelWrapper:
    """A copy of ``model`` whose float32 tensors, initializers and casts are
    float64."""
    m = wrap(model.model.SerializeToString())
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


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    total = max(0, (-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def spatial_pads(attrs: dict, sizes, kernel, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis from ``pads`` or ``auto_pad``."""
    nsp = len(kernel)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return [_same_pads(sizes[i], kernel[i], strides[i], dilations[i], auto_pad == "SAME_UPPER") for i in range(nsp)]
    flat = list(attrs.get("pads", [0] * 2 * nsp)) if auto_pad != "VALID" else [0] * 2 * nsp
    return [(flat[i], flat[i + nsp]) for i in range(nsp)]


def window_attrs(attrs: dict, nsp: int) -> tuple[list[int], list[int]]:
    return list(attrs.get("strides", [1] * nsp)), list(attrs.get("dilations", [1] * nsp))


def _f64(ctx: dict, name: str):
    """Input ``name`` as float64 (None for an omitted optional input)."""
    return np.asarray(ctx[name], dtype=np.float64) if name else None


def _optional(node, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


# --------------------------------------------------------------------------
# float64 kernels bound to nodes: make_step(node, attrs, opset) -> step(ctx)
# --------------------------------------------------------------------------


def _conv_step(node, attrs: dict, _opset: int):
    group = int(attrs.get("group", 1))

    def step(ctx):
        x, w = _f64(ctx, node.input[0]), _f64(ctx, node.input[1])
        strides, dilations = window_attrs(attrs, w.ndim - 2)
        pads = spatial_pads(attrs, x.shape[2:], w.shape[2:], strides, dilations)
        ctx[node.output[0]] = kernels.conv(x, w, _f64(ctx, _optional(node, 2)), strides, dilations, pads, group)

    return step


def _matmul_step(node, _attrs: dict, _opset: int):
    def step(ctx):
        ctx[node.output[0]] = kernels.dot(_f64(ctx, node.input[0]), _f64(ctx, node.input[1]))

    return step


def _gemm_step(node, attrs: dict, _opset: int):
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))

    def step(ctx):
        a, b, c = (_f64(ctx, _optional(node, i)) for i in range(3))
        ctx[node.output[0]] = kernels.gemm(a, b, c, alpha, beta, trans_a, trans_b)

    return step


def _quant_step(node, attrs: dict, _opset: int):
    signed, narrow, mode = attrs.get("signed", 1), attrs.get("narrow", 0), attrs.get("rounding_mode", "ROUND")

    def step(ctx):
        x, s, z, b = (_f64(ctx, i) for i in node.input[:4])
        ctx[node.output[0]] = kernels.int_quant(x, s, z, b, signed, narrow, mode)

    return step


def _bipolar_quant_step(node, _attrs: dict, _opset: int):
    def step(ctx):
        ctx[node.output[0]] = kernels.bipolar_quant(_f64(ctx, node.input[0]), _f64(ctx, node.input[1]))

    return step


def _trunc_step(node, attrs: dict, opset: int):
    """Trunc in the version qonnx picks for the model's opset of its domain."""
    from qonnx.custom_op.registry import getCustomOp

    mode = attrs.get("rounding_mode", "FLOOR")
    if type(getCustomOp(node, onnx_opset_version=opset)).__name__ == "Trunc_v1":

        def step(ctx):
            x, s, z, in_bits, out_bits = (_f64(ctx, i) for i in node.input[:5])
            ctx[node.output[0]] = kernels.trunc_v1(x, s, z, in_bits, out_bits, mode)

    else:
        signed, narrow = attrs.get("signed", 1), attrs.get("narrow", 0)

        def step(ctx):
            x, s, z, _in_bits, out_scale, out_bits = (_f64(ctx, i) for i in node.input[:6])
            ctx[node.output[0]] = kernels.trunc_v2(x, s, z, out_scale, out_bits, signed, narrow, mode)

    return step


def _multithreshold_step(node, attrs: dict, _opset: int):
    out_scale, out_bias = float(attrs.get("out_scale", 1.0)), float(attrs.get("out_bias", 0.0))
    layout = attrs.get("data_layout", "")

    def step(ctx):
        x, t = _f64(ctx, node.input[0]), _f64(ctx, node.input[1])
        ctx[node.output[0]] = kernels.multithreshold(x, t, out_scale, out_bias, layout)

    return step


def _reshape_target(in_shape, shape, allowzero: bool) -> tuple:
    """ONNX Reshape's output shape: 0 copies the input's dimension (unless
    ``allowzero``), -1 takes what is left."""
    dims = [int(in_shape[i]) if d == 0 and not allowzero else int(d) for i, d in enumerate(shape)]
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(in_shape) // known if known else 0
    return tuple(dims)


def _reshape_step(node, attrs: dict, _opset: int):
    allowzero = bool(attrs.get("allowzero", 0))

    def step(ctx):
        x = ctx[node.input[0]]
        ctx[node.output[0]] = np.reshape(x, _reshape_target(np.shape(x), np.asarray(ctx[node.input[1]]), allowzero))

    return step


def _global_average_pool_step(node, _attrs: dict, _opset: int):
    def step(ctx):
        ctx[node.output[0]] = kernels.global_average_pool(_f64(ctx, node.input[0]))

    return step


def _average_pool_step(node, attrs: dict, _opset: int):
    """AveragePool: explicit or SAME pads, strides, dilations, ceil_mode,
    count_include_pad; the output size is the model's when it has one."""
    kernel = list(attrs["kernel_shape"])
    strides, dilations = window_attrs(attrs, len(kernel))

    def step(ctx):
        x = _f64(ctx, node.input[0])
        pads = spatial_pads(attrs, x.shape[2:], kernel, strides, dilations)
        known = ctx.get(node.output[0])
        if known is not None:
            out_shape = list(np.shape(known)[2:])
        else:
            rnd = math.ceil if attrs.get("ceil_mode", 0) else math.floor
            out_shape = [rnd((x.shape[2 + i] + sum(pads[i]) - (kernel[i] - 1) * dilations[i] - 1) / strides[i]) + 1 for i in range(len(kernel))]
        ctx[node.output[0]] = kernels.average_pool(x, kernel, strides, dilations, pads, out_shape, bool(attrs.get("count_include_pad", 0)))

    return step


def _leaky_relu_step(node, attrs: dict, _opset: int):
    alpha = float(np.float32(attrs.get("alpha", 0.01)))

    def step(ctx):
        ctx[node.output[0]] = kernels.leaky_relu(_f64(ctx, node.input[0]), alpha)

    return step


def _hard_sigmoid_step(node, attrs: dict, _opset: int):
    alpha, beta = float(np.float32(attrs.get("alpha", 0.2))), float(np.float32(attrs.get("beta", 0.5)))

    def step(ctx):
        ctx[node.output[0]] = kernels.hard_sigmoid(_f64(ctx, node.input[0]), alpha, beta)

    return step


def _numpy_step(fn):
    """A kernel for an elementwise op that numpy computes correctly rounded,
    as IEEE arithmetic defines it (so exactly what onnxruntime computes):
    one vectorised call instead of an onnxruntime session per node."""

    def make(node, _attrs: dict, _opset: int):
        def step(ctx):
            with np.errstate(all="ignore"):
                ctx[node.output[0]] = fn(*(_f64(ctx, name) for name in node.input))

        return step

    return make


def _variadic(fn):
    return lambda *xs: functools.reduce(fn, xs)


#: correctly rounded elementwise ops (no transcendental: libm results may
#: differ in the last bit between implementations)
_NUMPY_ELEMENTWISE = {
    "Add": np.add,
    "Sub": np.subtract,
    "Mul": np.multiply,
    "Div": np.divide,
    "Neg": np.negative,
    "Abs": np.abs,
    "Relu": lambda x: np.maximum(x, 0.0),
    "Max": _variadic(np.maximum),
    "Min": _variadic(np.minimum),
    "Sum": _variadic(np.add),
    "Identity": lambda x: x,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Sqrt": np.sqrt,
}

#: float64 kernels used in place of onnxruntime / qonnx: the ops that carry
#: the work of a quantized network, and those whose qonnx wrapper rounds the
#: result to float32 (Quant) or that onnxruntime cannot run in float64 (Conv)
_FLOAT64_KERNELS = {
    "Conv": _conv_step,
    "MatMul": _matmul_step,
    "Gemm": _gemm_step,
    "Quant": _quant_step,
    "IntQuant": _quant_step,
    "BipolarQuant": _bipolar_quant_step,
    "Trunc": _trunc_step,
    "MultiThreshold": _multithreshold_step,
    "Reshape": _reshape_step,
    **{op: _numpy_step(fn) for op, fn in _NUMPY_ELEMENTWISE.items()},
}

#: float64 kernels for ops onnxruntime has no double implementation of (used
#: only when it refuses the node)
_FLOAT64_FALLBACKS = {
    "GlobalAveragePool": _global_average_pool_step,
    "AveragePool": _average_pool_step,
    "LeakyRelu": _leaky_relu_step,
    "HardSigmoid": _hard_sigmoid_step,
}


# --------------------------------------------------------------------------
# batching: which nodes may see many samples stacked along axis 0
# --------------------------------------------------------------------------

#: ops computing each element from the elements at the same (broadcast) index
_ELEMENTWISE = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Relu", "LeakyRelu", "PRelu", "HardSigmoid",
        "Sigmoid", "Tanh", "Clip", "Abs", "Neg", "Sqrt", "Exp", "Log", "Floor", "Ceil", "Round", "Sign", "Identity",
        "Cast", "Erf", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or", "Where",
        "Quant", "IntQuant", "BipolarQuant", "Trunc",
    }
)  # fmt: skip
#: ops computing each index of axis 0 of their first input on its own
_ROWWISE = frozenset({"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LRN", "InstanceNormalization"})


class _NotBatchable(Exception):
    """A node's per-sample results cannot be stacked along axis 0."""


def _rows_match(moving: list, fixed: list) -> bool:
    """Numpy broadcasting pairs the stacked rows of ``moving`` with each
    other and never with a row of a ``fixed`` operand: the moving operands
    share rank and row count, a fixed one has a lower rank or a single row."""
    nd = np.ndim(moving[0])
    if nd == 0 or any(np.ndim(m) != nd or np.shape(m)[0] != np.shape(moving[0])[0] for m in moving):
        return False
    return all(np.ndim(f) < nd or np.shape(f)[0] == 1 for f in fixed)


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _batchable(node, attrs: dict, ctx: dict, dynamic: frozenset) -> bool:
    """Whether running ``node`` once on stacked samples gives the stack of
    its per-sample results."""
    names = [i for i in node.input if i]
    moving = [ctx[i] for i in names if i in dynamic]
    fixed = [ctx[i] for i in names if i not in dynamic]
    if node.op_type in _ELEMENTWISE:
        return _rows_match(moving, fixed)
    if node.input[0] not in dynamic or len(moving) != 1 or np.ndim(moving[0]) == 0:
        return False
    x, op = moving[0], node.op_type
    if op in _ROWWISE:
        return len([o for o in node.output if o]) == 1
    if op == "BatchNormalization":
        return not attrs.get("training_mode", 0) and len([o for o in node.output if o]) == 1
    if op == "MatMul":
        b = fixed[0]
        return x.ndim >= 2 and np.ndim(b) <= x.ndim and (np.ndim(b) < x.ndim or x.ndim == 2 or np.shape(b)[0] == 1)
    if op == "Gemm":
        return not attrs.get("transA", 0) and all(np.ndim(c) < 2 or np.shape(c)[0] == 1 for c in fixed[1:])
    if op == "Flatten":
        return _axis(attrs.get("axis", 1), x.ndim) != 0
    if op == "Transpose":
        return x.ndim == 1 or (attrs.get("perm") is not None and attrs["perm"][0] == 0)
    if op in ("Softmax", "LogSoftmax"):
        return x.ndim >= 2 and _axis(attrs.get("axis", -1), x.ndim) != 0
    if op == "MultiThreshold":
        return kernels.multithreshold_channel_axis(attrs.get("data_layout", ""), x.ndim) != 0
    return False


def _reshape_rows(node, attrs: dict, ctx: dict, samples: int, dynamic: frozenset):
    """A Reshape of stacked samples to a constant shape that keeps each
    sample's leading dimension: the stacked result, or None when the
    reshape moves it."""
    x, shape = ctx[node.input[0]], np.asarray(ctx[node.input[1]])
    rows = np.shape(x)[0] // samples if np.ndim(x) else 0
    if node.input[1] not in dynamic and rows and np.shape(x)[0] == rows * samples:
        per_sample = _reshape_target((rows,) + np.shape(x)[1:], shape, bool(attrs.get("allowzero", 0)))
        if per_sample and per_sample[0] == rows:
            return np.reshape(x, (np.shape(x)[0],) + per_sample[1:])
    return None


def _dynamic_tensors(model: ModelWrapper, order: list) -> frozenset:
    """The tensors that depend on a graph input (the rest is constant)."""
    inits = {i.name for i in model.graph.initializer}
    dynamic = {i.name for i in model.graph.input if i.name not in inits}
    for node in order:
        if any(i in dynamic for i in node.input if i):
            dynamic.update(o for o in node.output if o)
    return frozenset(dynamic)


def _stack(parts: list) -> np.ndarray:
    """Per-sample results stacked along axis 0 (same shape, rank >= 1)."""
    first = parts[0]
    if not isinstance(first, np.ndarray) or first.ndim == 0 or any(np.shape(p) != first.shape for p in parts):
        raise _NotBatchable
    return np.concatenate(parts)


def _im2col_bytes(node, attrs: dict, template: dict) -> int:
    """Size of a Conv's im2col matrix for one sample: a column of
    (input channels per group x kernel) per output position and group."""
    y, w = template.get(node.output[0]), template.get(node.input[1])
    if y is None or w is None or np.ndim(w) < 2 or np.ndim(y) < 2:
        return 0
    positions = np.size(y) // max(1, np.shape(y)[1])
    return positions * int(attrs.get("group", 1)) * math.prod(np.shape(w)[1:]) * 8


class Executor:
    """Runs a model node by node, preparing every node once: a standard ONNX
    node gets one onnxruntime session, reused for every input (qonnx builds
    a new session per node per call), a custom op its qonnx implementation,
    and in float64 the ops of :data:`_FLOAT64_KERNELS` a whole-array kernel.
    Nodes that depend on no graph input are computed once, here.

    With ``dtype=np.float64`` it runs a float64 copy of the model; float
    outputs of other precisions are promoted, so the whole run keeps its
    precision. ``dtype=np.float32`` runs the model as qonnx does.
    """

    def __init__(self, model: ModelWrapper, dtype=np.float64, hook=None):
        from qonnx.custom_op.registry import is_custom_op
        from qonnx.util.basic import get_preferred_qonnx_opset

        self.dtype = dtype
        #: called as hook(node, ctx, samples, first) after every node: may
        #: rewrite the node's outputs in ctx (``samples`` stacked feeds, the
        #: first being number ``first`` of the run)
        self.hook = hook or (lambda node, ctx, samples, first: None)
        check_sample_memory(model)
        self.model = to_float64(model) if dtype == np.float64 else model
        graph = self.model.graph
        self.template = self.model.make_empty_exec_context()
        order = topological_order(self.model)
        self.dynamic = _dynamic_tensors(self.model, order)
        self.inputs = [i.name for i in graph.input if i.name in self.dynamic]
        infos = {v.name: v for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
        opsets = self.model.get_opset_imports()
        self.steps = []
        for node in order:
            opset = opsets.get(node.domain, get_preferred_qonnx_opset())
            attrs = node_attrs(node)
            if dtype == np.float64 and node.op_type in _FLOAT64_KERNELS:
                step = _FLOAT64_KERNELS[node.op_type](node, attrs, opset)
            elif is_custom_op(node.domain, node.op_type):
                step = self._custom(node, opset)
            else:
                step = self._session_or_kernel(node, attrs, infos, opset)
            self.steps.append((node, attrs, step))
        self._fold_constants()
        self.batch_size = self._batch_size()
        self._batching = dtype == np.float64

    def _fold_constants(self) -> None:
        """Compute the nodes that read no graph input into the template
        (the unfolded model stays for a feed that overrides a constant)."""
        self._unfolded = (dict(self.template), self.steps)
        self.template = dict(self.template)
        with quiet():
            for node, _attrs, step in self.steps:
                if not any(o in self.dynamic for o in node.output):
                    step(self.template)
                    self._promote(node, self.template)
                    self.hook(node, self.template, 1, 0)
        self.steps = [s for s in self.steps if any(o in self.dynamic for o in s[0].output)]

    @property
    def all_steps(self) -> list:
        """Every node's prepared step, the constant ones included."""
        return self._unfolded[1]

    def _batch_size(self) -> int:
        """Samples per batch of :meth:`run_many` within :data:`BATCH_BYTES`:
        every tensor of a sample, plus the largest im2col matrix."""
        per_sample = sum(np.asarray(self.template[n]).nbytes for n in self.dynamic if n in self.template)
        per_sample += max((_im2col_bytes(node, attrs, self.template) for node, attrs, _ in self.steps if node.op_type == "Conv"), default=0)
        return int(max(1, min(MAX_BATCH, BATCH_BYTES // max(per_sample, 1))))

    def _session_or_kernel(self, node, attrs: dict, infos: dict, opset: int):
        try:
            return self._session(node, infos, opset)
        except Exception as e:
            if self.dtype == np.float64 and node.op_type in _FLOAT64_FALLBACKS:
                return _FLOAT64_FALLBACKS[node.op_type](node, attrs, opset)
            raise SiraError(
                f"node '{node.name}' ({node.op_type}) cannot be executed for verification in {np.dtype(self.dtype).name}: "
                f"{str(e).splitlines()[0]}; verify with --precision float32 or report the op"
            ) from None

    def _custom(self, node, opset: int):
        from qonnx.custom_op import registry

        graph = self.model.graph

        def step(ctx):
            registry.getCustomOp(node, onnx_opset_version=opset).execute_node(ctx, graph)

        return step

    def _session(self, node, infos: dict, opset: int):
        """One onnxruntime session for ``node``; the batch axis of the
        tensors that depend on a graph input is left open, so the session
        takes one sample or many."""
        import onnxruntime as rt

        def info(name):
            if name in infos:
                vi = type(infos[name])()
                vi.CopyFrom(infos[name])
            else:
                value = np.asarray(self.template[name])
                vi = helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape))
            dims = vi.type.tensor_type.shape.dim
            if name in self.dynamic and vi.type.tensor_type.HasField("shape") and len(dims):
                dims[0].Clear()
                dims[0].dim_param = "batch"
            return vi

        graph = helper.make_graph([node], "node", [info(i) for i in node.input if i], [info(o) for o in node.output if o])
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        proto.ir_version = min(proto.ir_version, 10)
        options = rt.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = rt.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        names = [o for o in node.output if o]

        def step(ctx):
            results = session.run(names, {i: ctx[i] for i in node.input if i})
            for name, value in zip(names, results):
                ctx[name] = value

        return step

    def _promote(self, node, ctx: dict) -> None:
        if self.dtype == np.float64:
            for o in node.output:
                v = ctx.get(o)
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.dtype != np.float64:
                    ctx[o] = v.astype(np.float64)

    def run(self, feed: dict, first: int = 0) -> dict:
        """Every tensor of the model for one input ``feed`` (which may also
        override an initializer); ``first`` numbers it for the hook."""
        template, steps = self._unfolded if any(name not in self.dynamic for name in feed) else (self.template, self.steps)
        ctx = dict(template)
        for name, value in feed.items():
            ctx[name] = np.asarray(value, dtype=self.dtype)
        with quiet():
            for node, _attrs, step in steps:
                step(ctx)
                self._promote(node, ctx)
                self.hook(node, ctx, 1, first)
        return ctx

    def run_many(self, feeds: Iterable[dict], batch_size: Optional[int] = None) -> Iterator[dict]:
        """Every tensor of the model for each of ``feeds``, in order.

        In float64, feeds that give exactly the graph inputs run in batches
        of at most ``batch_size`` (default :attr:`batch_size`) samples
        stacked along axis 0, :data:`WORKERS` batches side by side. Integer-valued results are those :meth:`run` gives; a float
        result can differ from it in its last bits, as BLAS may sum a
        product of many rows in another order than a product of one row
        (two models compared on the same batches see the same order)."""
        feeds = list(feeds)
        size = (batch_size or self.batch_size) if self._batching else 1
        if size > 1 and len(feeds) > size:  # as many batches as a multiple of the workers, of even sizes
            count = -(-len(feeds) // size)
            size = -(-len(feeds) // (-(-count // WORKERS) * WORKERS))
        chunks = [(start, feeds[start : start + size]) for start in range(0, len(feeds), size)]
        while chunks:
            group = []
            while chunks and len(group) < WORKERS and self._stackable(chunks[0][1]):
                group.append(chunks.pop(0))
            if group:
                try:  # every batch split before the first sample is yielded: a retry repeats none
                    split = [list(self._split(ctx, len(chunk))) for ctx, (_start, chunk) in zip(self._run_batches(group), group)]
                    for samples in split:
                        yield from samples
                    continue
                except _NotBatchable:
                    self._batching = False
                    chunks[:0] = group
            start, chunk = chunks.pop(0)
            yield from (self.run(feed, start + i) for i, feed in enumerate(chunk))

    def _stackable(self, chunk: list) -> bool:
        """Whether ``chunk`` runs as one batch: several feeds of exactly the
        graph inputs, while the model has proven batchable."""
        return len(chunk) > 1 and self._batching and all(set(feed) == set(self.inputs) for feed in chunk)

    def _run_batches(self, group: list) -> list:
        """The stacked contexts of the (start, feeds) batches of ``group``,
        run side by side: the first in this thread, each other on a worker
        thread (numpy's array loops and BLAS release the GIL)."""
        if len(group) == 1:
            return [self._run_batch(group[0][1], group[0][0])]
        futures = [_pool().submit(self._run_batch, chunk, start) for start, chunk in group[1:]]
        try:
            first = self._run_batch(group[0][1], group[0][0])
        finally:
            concurrent.futures.wait(futures)
        return [first] + [f.result() for f in futures]

    def _run_batch(self, feeds: list, first: int = 0) -> dict:
        """Every tensor for ``feeds`` stacked along axis 0."""
        samples = len(feeds)
        ctx = dict(self.template)
        for name in self.inputs:
            ctx[name] = _stack([np.asarray(feed[name], dtype=self.dtype) for feed in feeds])
        with quiet():
            for node, attrs, step in self.steps:
                if node.op_type == "Reshape":
                    stacked = _reshape_rows(node, attrs, ctx, samples, self.dynamic)
                    if stacked is not None:
                        ctx[node.output[0]] = stacked
                    else:
                        self._per_sample(node, step, ctx, samples)
                elif _batchable(node, attrs, ctx, self.dynamic):
                    step(ctx)
                else:
                    self._per_sample(node, step, ctx, samples)
                self._promote(node, ctx)
                self.hook(node, ctx, samples, first)
        return ctx

    def _per_sample(self, node, step, ctx: dict, samples: int) -> None:
        """Run ``node`` on each sample's slice of its stacked inputs and stack
        the results."""
        names = [i for i in node.input if i]
        rows = {i: _rows(ctx[i], samples) for i in names if i in self.dynamic}
        outputs = [o for o in node.output if o]
        parts = {o: [] for o in outputs}
        for k in range(samples):
            sub = {i: ctx[i][k * rows[i] : (k + 1) * rows[i]] if i in rows else ctx[i] for i in names}
            sub.update((o, self.template.get(o)) for o in outputs)
            step(sub)
            for o in outputs:
                parts[o].append(sub[o])
        for o in outputs:
            ctx[o] = _stack(parts[o])

    def _split(self, ctx: dict, samples: int) -> Iterator[dict]:
        """The per-sample contexts (views) of a stacked one."""
        rows = {n: _rows(ctx[n], samples) for n in self.dynamic if n in ctx}
        for k in range(samples):
            sample = dict(ctx)
            sample.update((n, ctx[n][k * r : (k + 1) * r]) for n, r in rows.items())
            yield sample


def _rows(value, samples: int) -> int:
    """Rows per sample of a stacked tensor."""
    if np.ndim(value) == 0 or np.shape(value)[0] % samples:
        raise _NotBatchable
    return np.shape(value)[0] // samples


def execute_all(model: ModelWrapper, feed: dict, dtype=np.float64) -> dict:
    """Every tensor of ``model`` for one input ``feed`` (see :class:`Executor`;
    to run many inputs, build one Executor and use :meth:`Executor.run_many`)."""
    return Executor(model, dtype).run(feed)

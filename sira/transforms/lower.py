"""Lowering: rewrite a QONNX model into the few ops that scale/bias
aggregation works on.

(Longer than sira's usual module: it is a list of small passes, each with
its exactness argument, that share one graph rewriter; :class:`Lower`
runs them in order.)

After :class:`Lower` a model has no BatchNormalization, Gemm, Conv bias
input or zero-padding Pad in front of a Conv; constant (weight) quantizers
are integer initializers whose scale is a Mul after the MatMul/Conv;
activation quantizers have unit scale and zero zero-point, their scale and
zero-point being explicit Div/Add/Mul nodes around them; subtractions of a
constant are additions, divisions by a power of two multiplications; and
every constant belongs to exactly one node, every Mul/Add with a constant
operand to one consumer, so a later pass can neutralize a constant for one
path without touching another (the reference's shared-constant defect).

Every pass is a qonnx ``Transformation`` that leaves the model computing the
same function; tensor names of the graph's inputs and outputs never change,
new tensors get readable names derived from the node they come from.
Exactness, in the float64 execution :func:`sira.verify_equivalent` uses:

* bit-identical values: FusePadIntoConv, ExtractConvBias,
  ExtractQuantScaleZeroPt (it spells out qonnx's own ``x/s + z`` ... ``(q -
  z)*s`` arithmetic in the same order), SubConstToAdd (``x - c`` is ``x +
  (-c)`` in IEEE arithmetic), DivByConstToMul (only for power-of-two
  divisors, whose reciprocal is exact; ``x/3`` stays a Div because
  ``x*(1/3)`` can round differently and flip a following quantizer),
  DuplicateForkingConstOps, the transposes of GemmToMatMul;
* a scale moved across a dot product, ``(x @ W) * s`` for ``x @ (W * s)``
  (FoldWeightQuant, Gemm's alpha): identical whenever the dot product is
  computed exactly, which it is for quantized operands (sums of products of
  float32 grids far below 2**53); with float operands the last bit may
  differ;
* BatchNormToAffine: ``A = gamma/sqrt(var + eps)`` and ``B = beta - mean*A``
  are computed in float64 and rounded once to the model's float32; the
  affine map differs from batch normalization by that rounding only (no
  float32 constant can hold A exactly), so a BN that only feeds quantizer
  chains stays a BN, which the threshold pass handles exactly.

A pass that cannot do a rewrite exactly (an unknown shape, a non-constant
parameter, a weight quantizer whose integers differ between float32 and
float64 division) leaves that node as it is.
"""

from __future__ import annotations

import copy
from typing import Callable, Optional, Sequence

import numpy as np
from onnx import NodeProto, helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.general.intquant import int_quant
from qonnx.transformation.base import Transformation
from qonnx.transformation.general import RemoveUnusedTensors

from sira import numerics as nx
from sira.model import fresh_name, node_attr, reinfer_shapes, topological_order
from sira.ops import Trait, ops_with

#: quantizers whose output is a scaled integer of their input
QUANTIZERS = ops_with(Trait.SCALED_QUANTIZER)
#: quantizers of real values (weights): what FoldWeightQuant folds
REAL_QUANTIZERS = ops_with(Trait.REAL_QUANTIZER)


def _set_attr(node: NodeProto, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


class _Rewrite:
    """One sweep of a pass over a model: node lookup (in topological order,
    by index), fresh readable names, private constants, and the node list
    rebuilt once at the end. New nodes are placed right after the node they
    were added for, then the whole list is sorted topologically."""

    def __init__(self, model: ModelWrapper):
        self.model = model
        g = model.graph
        self.nodes: list[NodeProto] = topological_order(model)
        self.keys = [(k, 0) for k in range(len(self.nodes))]
        self.removed: set[int] = set()
        self.changed = False
        self.outputs = {o.name for o in g.output}
        self.initializers = {i.name: i for i in g.initializer}
        self.values: dict[str, np.ndarray] = {}
        self.producer = {o: k for k, n in enumerate(self.nodes) for o in n.output if o}
        self.readers: dict[str, list[int]] = {}
        for k, n in enumerate(self.nodes):
            self._register(k)
        self.tensor_names = set(self.initializers) | set(self.producer) | set(self.readers)
        self.tensor_names |= {v.name for v in list(g.input) + list(g.output) + list(g.value_info)}
        self.node_names = {n.name for n in self.nodes}

    def _register(self, k: int) -> None:
        for t in dict.fromkeys(self.nodes[k].input):
            if t:
                self.readers.setdefault(t, []).append(k)

    # ---- names and constants

    def name(self, base: str) -> str:
        """An unused tensor name: ``base``, else ``base_1``, ``base_2``, ..."""
        return fresh_name(base, self.tensor_names)

    def node_name(self, base: str) -> str:
        return fresh_name(base, self.node_names)

    def const(self, base: str, value) -> str:
        """A new initializer holding ``value``, private to its one user."""
        name = self.name(base)
        value = np.asarray(value)
        self.model.set_initializer(name, value)
        self.values[name] = value
        return name

    def value(self, t: str) -> Optional[np.ndarray]:
        """The value of ``t`` if it is an initializer, else None."""
        if t not in self.values and t in self.initializers:
            self.values[t] = numpy_helper.to_array(self.initializers[t])
        return self.values.get(t)

    def op(self, op_type: str, base: str, inputs: Sequence[str], const=None, out: Optional[str] = None) -> NodeProto:
        """A new node named after ``base``; ``const`` becomes a private
        initializer appended to its inputs; it writes ``out`` or a new
        tensor ``<node name>_out``."""
        name = self.node_name(base)
        ins = list(inputs) + ([self.const(f"{name}_param", const)] if const is not None else [])
        return helper.make_node(op_type, ins, [out or self.name(f"{name}_out")], name=name)

    # ---- graph edits

    def users(self, t: str) -> list[int]:
        """Indices of the live nodes reading ``t``."""
        return [k for k in self.readers.get(t, []) if k not in self.removed]

    def sole_user(self, t: str, k: int) -> bool:
        return self.users(t) == [k] and t not in self.outputs

    def producer_of(self, t: str) -> Optional[NodeProto]:
        k = self.producer.get(t)
        return self.nodes[k] if k is not None and k not in self.removed else None

    def add(self, nodes: Sequence[NodeProto], after: int) -> None:
        """Insert ``nodes`` (in order) after node ``after``."""
        for n in nodes:
            self.nodes.append(n)
            k = len(self.nodes) - 1
            self.keys.append((self.keys[after][0], k))
            self._register(k)
            self.producer.update({o: k for o in n.output if o})
        self.changed = True

    def replace(self, k: int, nodes: Sequence[NodeProto]) -> None:
        """Replace node ``k`` by ``nodes``."""
        self.remove(k)
        self.add(nodes, after=k)

    def remove(self, k: int) -> None:
        self.removed.add(k)
        self.changed = True

    def retarget(self, k: int, base: str) -> str:
        """Node ``k`` writes a new tensor named after ``base`` instead of its
        first output; returns the new name."""
        new = self.name(base)
        self.nodes[k].output[0] = new
        self.producer[new] = k
        self.changed = True
        return new

    def rewire(self, k: int, old: str, new: str) -> None:
        """Node ``k`` reads ``new`` wherever it read ``old``."""
        node = self.nodes[k]
        for i, t in enumerate(node.input):
            if t == old:
                node.input[i] = new
        self.readers[old] = [j for j in self.readers.get(old, []) if j != k]
        if k not in self.readers.setdefault(new, []):
            self.readers[new].append(k)
        self.changed = True

    def finish(self) -> tuple[ModelWrapper, bool]:
        """Write the node list back (sorted), infer shapes of new tensors."""
        model = self.model
        if not self.changed:
            return model, False
        g = model.graph
        live = sorted((self.keys[k], k) for k in range(len(self.nodes)) if k not in self.removed)
        nodes = [copy.deepcopy(self.nodes[k]) for _, k in live]
        del g.node[:]
        g.node.extend(nodes)
        ordered = [copy.deepcopy(n) for n in topological_order(model)]
        del g.node[:]
        g.node.extend(ordered)
        return reinfer_shapes(model, cleanup=False), False


def _aligned(v: np.ndarray, ndim: int) -> np.ndarray:
    """``v`` with leading unit axes up to ``ndim`` (numpy broadcasting
    alignment)."""
    return v.reshape((1,) * (ndim - v.ndim) + v.shape)


def _relayout_const_producer(rw: _Rewrite, t: str, user: int, fn: Callable[[np.ndarray], np.ndarray], suffix: str) -> Optional[str]:
    """Recompute ``t`` - the output of a constant elementwise node (a weight
    quantizer or a Mul of constants) read only by node ``user`` - in another
    layout: ``fn`` (a transpose or reshape, no arithmetic) is applied to every
    operand with more than one element, after aligning it to the output rank.
    Returns the new output name, or None if ``t`` is not such a tensor."""
    node = rw.producer_of(t)
    if node is None or node.op_type not in QUANTIZERS | {"Mul"} or not rw.sole_user(t, user):
        return None
    values = [rw.value(i) for i in node.input]
    if any(v is None for v in values):
        return None
    ndim = max(v.ndim for v in values)
    for i, v in enumerate(values):
        if v.size > 1:
            node.input[i] = rw.const(f"{node.input[i]}_{suffix}", fn(_aligned(v, ndim)))
    return rw.retarget(rw.producer[t], f"{t}_{suffix}")


# --------------------------------------------------------------------------
# the passes
# --------------------------------------------------------------------------


class BatchNormToAffine(Transformation):
    """Inference BatchNormalization -> ``Mul(A)`` then ``Add(B)`` with
    ``A = gamma/sqrt(var + eps)``, ``B = beta - mean*A`` per channel, shaped
    ``[1, C, 1, ...]``.

    Why: aggregation folds per-channel scale and bias into one Mul and one
    Add; a BN node is both at once. Unlike qonnx's BatchNormToAffine the
    constants are computed in float64 and rounded once (qonnx rounds each
    step in float32), and the node's parameters are not modified in place.
    A BN with non-constant parameters, unknown input rank or used training
    outputs is left as it is, and so is a BN whose every path ends in a
    quantizer through monotone elementwise ops: the threshold pass derives
    that chain's thresholds from BN's exact semantics (the square root
    enclosed), where float32 constants A and B would move values lying
    within their rounding of a rounding boundary to its other side.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type != "BatchNormalization" or any(o for o in n.output[1:]):
                continue
            if ends_in_quantizers(model, n.output[0]):
                continue
            params = [rw.value(t) for t in n.input[1:5]]
            shape = model.get_tensor_shape(n.input[0])
            if any(p is None for p in params) or shape is None or len(shape) < 2:
                continue
            gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
            a = gamma / np.sqrt(var + float(node_attr(n, "epsilon", 1e-5)))
            b = beta - mean * a
            channel = (1, -1) + (1,) * (len(shape) - 2)
            dtype = params[0].dtype
            base = n.name or n.output[0]
            mul = rw.op("Mul", f"{base}_mul", [n.input[0]], const=a.reshape(channel).astype(dtype))
            add = rw.op("Add", f"{base}_add", [mul.output[0]], const=b.reshape(channel).astype(dtype), out=n.output[0])
            rw.replace(k, [mul, add])
        return rw.finish()


def ends_in_quantizers(model: ModelWrapper, tensor: str, depth: int = 8) -> bool:
    """Whether ``tensor`` reaches a quantizer along a chain the threshold
    pass converts: one reader at each step, each an op with an exact
    monotone semantics whose other operands are constants."""
    from sira.semantics import SEMANTICS

    consumers = model.find_consumers(tensor)
    if len(consumers) != 1 or depth == 0 or tensor in {o.name for o in model.graph.output}:
        return False
    (c,) = consumers
    if c.op_type in REAL_QUANTIZERS:
        return c.input[0] == tensor
    constants = {i.name for i in model.graph.initializer}
    if c.op_type not in SEMANTICS or any(i and i != tensor and i not in constants for i in c.input):
        return False
    return ends_in_quantizers(model, c.output[0], depth - 1)


def gemm_matmul_name(gemm: str) -> str:
    """Name of the MatMul that :class:`GemmToMatMul` makes of Gemm ``gemm``:
    reports on the original model name the layer by its Gemm."""
    return f"{gemm}_matmul"


class GemmToMatMul(Transformation):
    """``Gemm(A, B, C)`` -> ``MatMul(A', B')``, then ``Mul(alpha)`` if
    alpha != 1, then ``Add(beta*C)`` if C is given (``Mul(beta)`` on C if
    beta != 1).

    Transposes (transA/transB) are folded into constants: a constant B is
    transposed as an initializer, and a B computed by a weight quantizer
    read only by this Gemm gets its quantizer's constants transposed, so the
    weight stays a quantized constant that FoldWeightQuant turns into an
    integer initializer. A dynamic operand gets a Transpose node.

    Written instead of qonnx's GemmToMatMul, which leaves Transpose nodes on
    weights, does not allow a missing C, and removes "identity" Mul/Add
    nodes with a tolerance of 1e-5 (Mul by 1.000001 would be dropped).
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type != "Gemm":
                continue
            base = n.name or n.output[0]
            nodes: list[NodeProto] = []
            a = self._transposed(rw, n.input[0], k, base, nodes) if node_attr(n, "transA", 0) else n.input[0]
            b = self._transposed(rw, n.input[1], k, base, nodes) if node_attr(n, "transB", 0) else n.input[1]
            c = n.input[2] if len(n.input) > 2 and n.input[2] else None
            alpha, beta = float(node_attr(n, "alpha", 1.0)), float(node_attr(n, "beta", 1.0))
            y = n.output[0]
            last = alpha == 1.0 and c is None
            nodes.append(rw.op("MatMul", gemm_matmul_name(base), [a, b], out=y if last else None))
            if alpha != 1.0:
                nodes.append(rw.op("Mul", f"{base}_alpha", [nodes[-1].output[0]], const=np.float32(alpha), out=y if c is None else None))
            if c is not None:
                acc = nodes[-1].output[0]
                if beta != 1.0:
                    nodes.append(rw.op("Mul", f"{base}_beta", [c], const=np.float32(beta)))
                    c = nodes[-1].output[0]
                nodes.append(rw.op("Add", f"{base}_bias", [acc, c], out=y))
            rw.replace(k, nodes)
        return rw.finish()

    @staticmethod
    def _transposed(rw: _Rewrite, t: str, user: int, base: str, nodes: list) -> str:
        v = rw.value(t)
        if v is not None:
            return rw.const(f"{t}_T", v.T)
        moved = _relayout_const_producer(rw, t, user, np.transpose, "T")
        if moved is not None:
            return moved
        nodes.append(rw.op("Transpose", f"{base}_transpose", [t]))
        return nodes[-1].output[0]


def _exact_reciprocal(c: np.ndarray) -> Optional[np.ndarray]:
    """``1/c`` in c's dtype if it is exact (c is a power of two), else None."""
    c64 = c.astype(np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        inv = (1.0 / c64).astype(c.dtype)
    if np.all(np.isfinite(inv)) and np.all(inv.astype(np.float64) * c64 == 1.0):
        return inv
    return None


class DivByConstToMul(Transformation):
    """``Div(x, c)`` with a constant power-of-two ``c`` -> ``Mul(x, 1/c)``.

    Both compute the correctly rounded ``x * 2**-k``, so the values are
    identical. Any other divisor stays a Div: ``x * fl(1/c)`` is not
    ``fl(x/c)`` in general, and a following quantizer can round the two
    differently (qonnx's ConvertDivToMul converts every Div). Aggregation
    handles a constant Div like a Mul.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            c = rw.value(n.input[1]) if n.op_type == "Div" else None
            inv = _exact_reciprocal(c) if c is not None and c.dtype.kind == "f" else None
            if inv is not None:
                rw.replace(k, [rw.op("Mul", f"{n.name or n.output[0]}_mul", [n.input[0]], const=inv, out=n.output[0])])
        return rw.finish()


class GlobalAveragePoolToSum(Transformation):
    """``GlobalAveragePool(x)`` (or a ``ReduceMean`` over every spatial axis,
    as Brevitas exports adaptive average pooling) -> ``Div(ReduceSum(x,
    spatial axes), n)``.

    The window sum of an integer tensor is an integer tensor, and the 1/n
    becomes a constant Div that aggregation moves past the next MAC layer
    with the other scales (a global average pool before the classifier
    would otherwise leave that MatMul on floats). Exact in float64: both
    forms add the window and divide the sum by n once.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        opset = model.get_opset_imports().get("", 13)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type not in ("GlobalAveragePool", "ReduceMean"):
                continue
            shape = model.get_tensor_shape(n.input[0])
            if shape is None or len(shape) < 3:
                continue
            axes = list(range(2, len(shape)))
            if n.op_type == "ReduceMean" and not _reduces_spatial_axes(rw, n, len(shape)):
                continue
            base = n.name or n.output[0]
            if opset >= 13:
                total = rw.op("ReduceSum", f"{base}_sum", [n.input[0]], const=np.asarray(axes, dtype=np.int64))
            else:
                total = rw.op("ReduceSum", f"{base}_sum", [n.input[0]])
                _set_attr(total, "axes", axes)
            _set_attr(total, "keepdims", int(node_attr(n, "keepdims", 1)))
            count = np.float32(np.prod([shape[a] for a in axes]))
            rw.replace(k, [total, rw.op("Div", f"{base}_count", [total.output[0]], const=count, out=n.output[0])])
        return rw.finish()


class AveragePoolToSum(Transformation):
    """``AveragePool(x)`` -> ``Div(Conv(x, ones), n)``: the window sum as a
    depthwise convolution with all-one weights (group = channels, the pool's
    kernel, strides, dilations and pads), then a constant Div by the window
    size n.

    The window sum of an integer tensor is an integer tensor, and the Div
    joins the next chain's scale (a ``TruncAvgPool2d``'s Trunc, a
    quantizer): average pooling becomes a VVAU and thresholds. Only when
    every window divides by the same n: no padding, or padding counted
    (``count_include_pad``), and no ``ceil_mode`` window past the input;
    other pools are left as they are.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type != "AveragePool":
                continue
            shape = model.get_tensor_shape(n.input[0])
            out_shape = model.get_tensor_shape(n.output[0])
            if shape is None or out_shape is None or len(shape) < 3:
                continue
            kernel = [int(v) for v in node_attr(n, "kernel_shape", [])]
            nsp = len(shape) - 2
            strides = [int(v) for v in node_attr(n, "strides", [1] * nsp)]
            dilations = [int(v) for v in node_attr(n, "dilations", [1] * nsp)]
            pads = [int(v) for v in node_attr(n, "pads", [0] * 2 * nsp)]
            auto_pad = node_attr(n, "auto_pad", "NOTSET")
            auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
            if len(kernel) != nsp or auto_pad not in ("NOTSET", "VALID", ""):
                continue
            if any(pads) and not node_attr(n, "count_include_pad", 0):
                continue
            inside = [(out_shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 <= shape[2 + i] + pads[i] + pads[i + nsp] for i in range(nsp)]
            if not all(inside):
                continue  # a ceil_mode window counts fewer cells
            channels = int(shape[1])
            base = n.name or n.output[0]
            ones = np.ones((channels, 1, *kernel), dtype=np.float32)
            conv = rw.op("Conv", f"{base}_sum", [n.input[0]], const=ones)
            for name, value in (("kernel_shape", kernel), ("strides", strides), ("dilations", dilations), ("pads", pads), ("group", channels)):
                _set_attr(conv, name, value)
            count = np.float32(np.prod(kernel))
            rw.replace(k, [conv, rw.op("Div", f"{base}_count", [conv.output[0]], const=count, out=n.output[0])])
        return rw.finish()


def _reduces_spatial_axes(rw: "_Rewrite", n: NodeProto, rank: int) -> bool:
    """Whether a ReduceMean is a global average pool: over every spatial axis
    (2..rank-1) of an NC... tensor."""
    if node_attr(n, "noop_with_empty_axes", 0):
        return False
    axes = rw.value(n.input[1]) if len(n.input) > 1 and n.input[1] else node_attr(n, "axes")
    if axes is None:
        return False
    return sorted(int(a) % rank for a in np.asarray(axes).reshape(-1)) == list(range(2, rank))


class SubConstToAdd(Transformation):
    """``Sub(x, c)`` with a constant ``c`` -> ``Add(x, -c)`` (IEEE ``x - c``
    is ``x + (-c)``: exact). The negated constant is a new initializer, so
    another user of ``c`` is not affected (qonnx's ConvertSubToAdd negates
    the shared initializer in place)."""

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            c = rw.value(n.input[1]) if n.op_type == "Sub" else None
            if c is not None and c.dtype.kind == "f":
                rw.replace(k, [rw.op("Add", f"{n.name or n.output[0]}_add", [n.input[0]], const=-c, out=n.output[0])])
        return rw.finish()


class FusePadIntoConv(Transformation):
    """A Pad that only zero-pads spatial axes (mode constant, value 0,
    non-negative pads, none on batch or channel) and feeds nothing but one
    Conv's data input is merged into the Conv's ``pads``.

    Exact: the Conv sees the same zero border. Pads given as attributes
    (opset < 11) or as constant inputs (with optional axes, opset 18) are
    handled; a Conv with ``auto_pad`` other than NOTSET is left alone.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, conv in enumerate(list(rw.nodes)):
            if conv.op_type != "Conv" or node_attr(conv, "auto_pad", "NOTSET") != "NOTSET":
                continue
            pad = rw.producer_of(conv.input[0])
            if pad is None or pad.op_type != "Pad" or not rw.sole_user(conv.input[0], k):
                continue
            amounts = self._zero_pads(rw, pad, model.get_tensor_shape(pad.input[0]))
            if amounts is None:
                continue
            begin, end = amounts
            spatial = len(begin) - 2
            pads = list(node_attr(conv, "pads", [0] * (2 * spatial)))
            _set_attr(conv, "pads", [int(p + b) for p, b in zip(pads[:spatial], begin[2:])] + [int(p + e) for p, e in zip(pads[spatial:], end[2:])])
            rw.remove(rw.producer[pad.output[0]])
            rw.rewire(k, conv.input[0], pad.input[0])
        return rw.finish()

    @staticmethod
    def _zero_pads(rw: _Rewrite, pad: NodeProto, shape) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(begin, end) pads over all axes if ``pad`` zero-pads spatial axes
        only, else None."""
        if node_attr(pad, "mode", "constant") != "constant" or shape is None:
            return None
        if node_attr(pad, "pads") is not None:  # opset < 11: attributes
            pads, value, axes = node_attr(pad, "pads"), node_attr(pad, "value", 0.0), None
        else:
            given = (list(pad.input[1:]) + ["", ""])[:3]
            pads, value, axes = (rw.value(t) if t else None for t in given)
            if pads is None or any(t and v is None for t, v in zip(given, (pads, value, axes))):
                return None  # an operand computed at run time
        rank = len(shape)
        axes = np.arange(rank) if axes is None else np.asarray(axes).reshape(-1) % rank
        pads = np.asarray(pads, dtype=np.int64).reshape(2, -1)
        begin, end = np.zeros(rank, np.int64), np.zeros(rank, np.int64)
        begin[axes], end[axes] = pads[0], pads[1]
        if np.any(np.asarray(value if value is not None else 0.0) != 0) or np.any(begin < 0) or np.any(end < 0):
            return None
        if np.any(begin[:2]) or np.any(end[:2]):
            return None
        return begin, end


class ExtractConvBias(Transformation):
    """``Conv(x, W, b)`` -> ``Conv(x, W)`` then ``Add(b)`` with ``b`` shaped
    ``[1, C, 1, ...]``.

    Why: the bias joins the layer's aggregated bias; the Conv computes the
    pure dot product. A bias computed by a constant quantizer (a quantized
    bias) gets its quantizer's constants reshaped instead. Exact (the same
    sum, the bias added last).
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type != "Conv" or len(n.input) < 3 or not n.input[2]:
                continue
            w_shape = model.get_tensor_shape(n.input[1])
            if w_shape is None:
                continue
            channel = (1, -1) + (1,) * (len(w_shape) - 2)
            bias = n.input[2]
            v = rw.value(bias)
            if v is not None:
                operands, const = [], v.reshape(channel)
            else:
                shaped = _relayout_const_producer(rw, bias, k, lambda u: u.reshape(channel), "channel")
                if shaped is None:
                    continue
                operands, const = [shaped], None
            base = n.name or n.output[0]
            y = n.output[0]
            del n.input[2]
            acc = rw.retarget(k, f"{base}_acc")
            add = rw.op("Add", f"{base}_bias", [acc] + operands, const=const, out=y)
            rw.add([add], after=k)
        return rw.finish()


def _integer_weights(x: np.ndarray, s: np.ndarray, z: np.ndarray, bits: np.ndarray, node: NodeProto) -> Optional[np.ndarray]:
    """``round(clip(x/s + z)) - z`` of a constant integer quantizer, if it is
    an exact float32 integer tensor and the same in float32 and float64
    arithmetic (the division could round to the other side of a tie)."""
    signed, narrow = int(node_attr(node, "signed", 1)), int(node_attr(node, "narrow", 0))
    mode = node_attr(node, "rounding_mode", "ROUND")

    def integers(dtype):
        xs = x.astype(dtype) / s.astype(dtype)
        return int_quant(xs, np.asarray(1.0, dtype), z.astype(dtype), bits, signed, narrow, mode)

    w = integers(np.float64)
    if not np.array_equal(w, integers(np.float32)) or not np.all(w == np.round(w)) or np.max(np.abs(w), initial=0) >= 2**24:
        return None
    return w


def _channel_scale(mac: NodeProto, t: str, w: np.ndarray, s: np.ndarray) -> Optional[np.ndarray]:
    """The scale to apply after ``mac`` when its weight input ``t`` is
    ``w * s``: a scalar, or one value per output channel; None if ``t`` is
    not the weight of a MatMul/Conv or ``s`` varies within an output
    channel."""
    if mac.op_type not in ("MatMul", "Conv") or list(mac.input).count(t) != 1 or mac.input[1] != t:
        return None
    if mac.op_type == "MatMul" and w.ndim != 2:
        return None
    axis = 1 if mac.op_type == "MatMul" else 0
    if s.size == 1:
        return s.reshape(())
    sb = np.broadcast_to(s, w.shape)
    first = sb[tuple(slice(None) if a == axis else slice(0, 1) for a in range(w.ndim))]
    if not np.array_equal(np.broadcast_to(first, w.shape), sb):
        return None
    per_channel = first.reshape(-1)
    return per_channel if axis == 1 else per_channel.reshape((1, -1) + (1,) * (w.ndim - 2))


class FoldWeightQuant(Transformation):
    """A quantizer of a constant (weights, biases) becomes an integer
    initializer ``W = round(clip(x/s + z)) - z`` (the zero-point is part of
    the integer; BipolarQuant: ``W = +-1``) times its scale ``s``:

    * a MatMul/Conv reading it as its weight reads ``W`` and is followed by
      ``Mul(s)`` - when ``s`` is a scalar or per output channel;
    * any other reader gets the dequantized constant as a plain initializer
      when float32 holds ``W*s`` exactly (typical for power-of-two scales),
      else ``Mul(W, s)``.

    Why: a MAC layer then multiplies integers, and its weight scale is an
    ordinary Mul that aggregation can collect. Exact: the integers are the
    quantizer's own (a weight whose integers differ between float32 and
    float64 division is left quantized); see the module docstring for the
    scale moved across the dot product.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type not in REAL_QUANTIZERS:
                continue
            values = [rw.value(t) for t in n.input]
            if any(v is None for v in values):
                continue
            x, s = values[0], values[1]
            if n.op_type == "BipolarQuant":
                w = np.where(x >= 0, 1.0, -1.0)
            else:
                w = _integer_weights(x, s, values[2], values[3], n)
                if w is None:
                    continue
            w = np.broadcast_to(w, np.broadcast_shapes(w.shape, s.shape)).astype(x.dtype)
            self._fold(rw, k, n, w, s)
        return rw.finish()

    @staticmethod
    def _fold(rw: _Rewrite, k: int, n: NodeProto, w: np.ndarray, s: np.ndarray) -> None:
        t = n.output[0]
        base = n.name or t
        w_name = rw.const(f"{base}_int", w)
        others = []
        for u in rw.users(t):
            mac = rw.nodes[u]
            scale = _channel_scale(mac, t, w, s)
            if scale is None:
                others.append(u)
                continue
            rw.rewire(u, t, w_name)
            y = mac.output[0]
            acc = rw.retarget(u, f"{mac.name or y}_acc")
            rw.add([rw.op("Mul", f"{mac.name or y}_weight_scale", [acc], const=scale, out=y)], after=u)
        if not others and t not in rw.outputs:
            rw.replace(k, [])
            return
        value = w.astype(np.float64) * s.astype(np.float64)
        if np.array_equal(value.astype(w.dtype).astype(np.float64), value):
            plain = rw.const(f"{base}_value", value.astype(w.dtype))
            for u in others:
                rw.rewire(u, t, plain)
            keep = t in rw.outputs
        else:
            keep = True
        rw.replace(k, [rw.op("Mul", f"{base}_dequant", [w_name], const=s, out=t)] if keep else [])


def _constant_tensors(rw: _Rewrite) -> set:
    """Tensors computed from initializers alone."""
    const = set(rw.initializers)
    for n in rw.nodes:
        if all(i in const for i in n.input if i):
            const.update(o for o in n.output if o)
    return const


class ExtractQuantScaleZeroPt(Transformation):
    """Activation quantizers get unit scale and zero zero-point:
    ``Quant(x, s, z)`` -> ``Div(s)``, ``Add(z)``, ``Quant(x', 1, 0)``,
    ``Add(-z)``, ``Mul(s)`` (each step only where needed).

    Exact: qonnx computes ``(clip(round(x/s + z)) - z) * s``; the nodes
    perform the same operations in the same order (a Div, not a Mul by
    ``1/s``, which would round differently). The same for

    * BipolarQuant(x, s) -> BipolarQuant(x, 1), Mul(s);
    * Trunc v1 (5 inputs): as Quant;
    * Trunc v2 (6 inputs, output scale ``o``): with ``t = 2**round(log2(o/s))``
      the unit form is ``Div(t)`` then ``Trunc(x'', 1/t, 0, ., 1)``, whose
      output is the integer level ``r`` itself (it computes ``round(x''*t)
      / t`` with the same ``t``), followed by ``Add(-z/t)`` and ``Mul(o)``:
      qonnx's ``(r - z/t)*o``, exact since ``t`` is a power of two.

    Quantizers of constants (FoldWeightQuant's business) and quantizers with
    non-constant parameters are left alone. Every new constant is private,
    so the Div and the Mul of one quantizer can later be changed
    independently.
    """

    def apply(self, model):
        rw = _Rewrite(model)
        constant = _constant_tensors(rw)
        for k, n in enumerate(list(rw.nodes)):
            if n.op_type not in QUANTIZERS or n.input[0] in constant:
                continue
            if n.op_type == "BipolarQuant":
                self._bipolar(rw, k, n)
            else:
                self._integer(rw, k, n)
        return rw.finish()

    @staticmethod
    def _bipolar(rw: _Rewrite, k: int, n: NodeProto) -> None:
        s = rw.value(n.input[1])
        if s is None or np.all(s == 1):
            return
        base = n.name or n.output[0]
        y = n.output[0]
        n.input[1] = rw.const(f"{base}_unit_scale", np.ones((), s.dtype))
        q = rw.retarget(k, f"{base}_int")
        rw.add([rw.op("Mul", f"{base}_rescale", [q], const=s, out=y)], after=k)

    @staticmethod
    def _integer(rw: _Rewrite, k: int, n: NodeProto) -> None:
        s, z = rw.value(n.input[1]), rw.value(n.input[2])
        if s is None or z is None:
            return
        v2 = n.op_type == "Trunc" and len(n.input) >= 6
        out_scale, t, offset = s, None, z
        if v2:
            o = rw.value(n.input[4])
            if o is None:
                return
            t = nx.trunc_step(s, o).astype(o.dtype)
            out_scale, offset = o, (z.astype(np.float64) / t).astype(z.dtype)
            if np.all(o == 1) and np.all(s.astype(np.float64) * t == 1) and np.all(z == 0):
                return
        elif np.all(s == 1) and np.all(z == 0):
            return
        base = n.name or n.output[0]
        pre, post = [], []
        x = n.input[0]
        if np.any(s != 1):
            pre.append(rw.op("Div", f"{base}_descale", [x], const=s))
            x = pre[-1].output[0]
        if np.any(z != 0):
            pre.append(rw.op("Add", f"{base}_zeropt", [x], const=z))
            x = pre[-1].output[0]
        if v2 and np.any(t != 1):
            pre.append(rw.op("Div", f"{base}_shift", [x], const=t))
            x = pre[-1].output[0]
        n.input[0] = x
        n.input[1] = rw.const(f"{base}_unit_scale", (1.0 / t).astype(s.dtype) if v2 else np.ones((), s.dtype))
        n.input[2] = rw.const(f"{base}_zero_zeropt", np.zeros((), z.dtype))
        if v2:
            n.input[4] = rw.const(f"{base}_trunc_scale", np.ones((), t.dtype))
        y = n.output[0]
        cur = rw.retarget(k, f"{base}_int")
        rescale = np.any(out_scale != 1)
        if np.any(offset != 0):
            post.append(rw.op("Add", f"{base}_unzeropt", [cur], const=-offset, out=None if rescale else y))
            cur = post[-1].output[0]
        if rescale:
            post.append(rw.op("Mul", f"{base}_rescale", [cur], const=out_scale, out=y))
        rw.replace(k, pre + [n] + post)


class DuplicateForkingConstOps(Transformation):
    """Make every constant private to one path:

    * a Mul or Add with a constant operand whose output has several readers
      (or is also a graph output) is copied once per extra reader, each copy
      with its own copy of the constant (walking the graph backwards, so a
      chain Mul -> Add in front of a fork is duplicated as a whole);
    * an initializer read by several nodes (or twice by one) gets a copy per
      extra use.

    Why: aggregation neutralizes a scale or bias constant (sets it to 1 or
    0) for the path it aggregates; a constant shared with another path would
    change that path too. Exact (copies compute the same values).
    """

    def apply(self, model):
        rw = _Rewrite(model)
        for k in reversed(range(len(rw.nodes))):
            n = rw.nodes[k]
            if n.op_type not in ("Mul", "Add") or all(rw.value(i) is None for i in n.input):
                continue
            y = n.output[0]
            readers = rw.users(y)
            for u in readers if y in rw.outputs else readers[1:]:
                inputs = [rw.const(i, rw.value(i)) if rw.value(i) is not None else i for i in n.input]
                twin = helper.make_node(n.op_type, inputs, [rw.name(y)], name=rw.node_name(n.name or y))
                rw.add([twin], after=k)
                rw.rewire(u, y, twin.output[0])
        seen: set[str] = set()
        for k, n in enumerate(rw.nodes):
            if k in rw.removed:
                continue
            for i, t in enumerate(n.input):
                if rw.value(t) is None:
                    continue
                if t in seen:
                    n.input[i] = rw.const(t, rw.value(t))
                    rw.changed = True
                seen.add(t)
        return rw.finish()


class Lower(Transformation):
    """All lowering passes in order, then unused tensors removed:

    1. FusePadIntoConv, BatchNormToAffine, ExtractConvBias, GemmToMatMul,
       GlobalAveragePoolToSum, AveragePoolToSum - the MAC layers become MatMul/Conv followed by
       Mul/Add, with weights still quantized (GemmToMatMul transposes the
       weight quantizers' constants so FoldWeightQuant sees MatMul weights),
       and average pools become integer sums and a constant Div;
    2. FoldWeightQuant - integer weights, weight scales after the MACs;
    3. ExtractQuantScaleZeroPt - unit activation quantizers;
    4. SubConstToAdd, DivByConstToMul - also on the Div/Add nodes that step 3
       created (a power-of-two quantizer scale becomes a Mul);
    5. DuplicateForkingConstOps - last, so it sees every constant.

    Each pass infers the shapes of the tensors it creates.
    """

    PASSES = (
        FusePadIntoConv,
        BatchNormToAffine,
        ExtractConvBias,
        GemmToMatMul,
        GlobalAveragePoolToSum,
        AveragePoolToSum,
        FoldWeightQuant,
        ExtractQuantScaleZeroPt,
        SubConstToAdd,
        DivByConstToMul,
        DuplicateForkingConstOps,
    )

    def apply(self, model):
        for step in self.PASSES:
            model = model.transform(step(), make_deepcopy=False, cleanup=False)
        return model.transform(RemoveUnusedTensors(), make_deepcopy=False, cleanup=False), False

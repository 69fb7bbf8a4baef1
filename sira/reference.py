"""The reference semantics: a model evaluated exactly.

Every float constant is the rational it stores, every operation is the
real-number operation, and every quantizer rounds the exact value of its
input. That is what sira's integer hardware computes, and the standard that
transforms and builds are checked against. A float32 (or float64) execution
of the original model is an approximation of it: where a value lies closer
to a rounding boundary than the execution's rounding error, the execution
may round it to the other side.

:class:`Reference` computes it at the speed of float64 execution:

1. :func:`error_bounds` proves, once per model, for every tensor a bound
   ``err`` on ``|float64 value - exact value|`` (and whether the float64
   value is exact: integer grids below 2**53, power-of-two divisions),
   from the analysis' ranges and the op (rules in :data:`BOUND_RULES`).
2. The model runs in float64 (batched, :class:`sira.execute.Executor`).
   After each quantizer (Quant, BipolarQuant, Trunc, MultiThreshold) the
   elements whose input lies within its error bound of a rounding boundary
   are decided again in exact arithmetic: the input's exact value at that
   element is recomputed from the nearest exactly known tensors with
   rationals (:meth:`Reference.exact_value`; square roots and sigmoids as
   rational enclosures refined until they decide). Every other element's
   float64 decision is provably the exact one.
3. Downstream of a quantizer the run continues from the exact decisions, so
   one flip never propagates as float noise.

Each run reports what the float64 execution of the model would have decided
differently (:class:`Flip`: quantizer, element, and the exact distance of
the value from the boundary, in steps of the quantizer). An element that no
precision decides (possible only with an op that has no exact rule here)
keeps the float64 decision and is counted as ``unresolved``; a quantizer
after an op with no error bound rule keeps all its float64 decisions and is
named in ``unbounded`` (both are reported, see sira.verification).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import threading
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from . import numerics as nx
from .analysis import RangeReport
from .exec_kernels import int_limits, multithreshold_channel_axis, threshold_distance
from .execute import Executor, spatial_pads, window_attrs
from .model import node_attrs
from .semantics import interval_eval, sqrt_enclosure

#: unit roundoff of float64
U = 2.0**-53
#: precisions (bits) tried in turn for irrational enclosures
PRECISIONS = (64, 160, 480)
#: most elements decided exactly per quantizer per batch; past it the rest
#: keep their float64 decision and are counted unresolved
MAX_EXACT_PER_NODE = 200_000

QUANTIZER_OPS = frozenset({"Quant", "IntQuant", "BipolarQuant", "Trunc", "MultiThreshold"})


@dataclasses.dataclass(frozen=True)
class Bound:
    """Float64 execution error of one tensor: ``|computed - exact| <= err``
    elementwise; ``exact`` when the computed value is the exact one;
    ``grid`` an exponent g with every exact value a multiple of 2**g
    (None when unknown)."""

    err: float
    exact: bool
    grid: Optional[int]

    @staticmethod
    def of_exact(grid: Optional[int]) -> "Bound":
        return Bound(0.0, True, grid)


UNBOUNDED = Bound(math.inf, False, None)


@dataclasses.dataclass(frozen=True)
class Flip:
    """An element the float64 execution rounds to the other side of a
    boundary than the exact value does."""

    node: str
    sample: int
    index: tuple
    float_value: float
    exact_value: float
    margin: float  # exact distance of the quantizer's input from the boundary, in steps


@dataclasses.dataclass
class RunNotes:
    """What one batch of reference runs decided exactly."""

    checked: dict = dataclasses.field(default_factory=dict)  # node -> elements decided exactly
    flips: list = dataclasses.field(default_factory=list)
    unresolved: dict = dataclasses.field(default_factory=dict)  # node -> count
    #: quantizers whose input has no proven error bound (an op without a
    #: bound rule before them): their float64 decisions are kept as they are
    unbounded: set = dataclasses.field(default_factory=set)


# --------------------------------------------------------------------------
# static error bounds
# --------------------------------------------------------------------------


def _grid(values) -> Optional[int]:
    a = np.asarray(values, dtype=np.float64)
    if not a.size or not np.all(np.isfinite(a)):
        return None
    return nx.common_grid_exponent(a)


def _fits(magnitude: float, grid: Optional[int]) -> bool:
    """Whether every multiple of 2**grid up to ``magnitude`` (and every
    partial sum of such terms up to it) is a float64."""
    return grid is not None and math.isfinite(magnitude) and magnitude < math.ldexp(1.0, min(grid + 52, 1023))


@dataclasses.dataclass
class _BoundContext:
    """What a bound rule reads: the analysis, the node, its input bounds."""

    report: RangeReport
    node: object
    inputs: list  # Bound per input (None for an omitted one)

    def magnitude(self, name: str) -> float:
        """Largest |value| the exact semantics gives tensor ``name``."""
        r = self.report.ranges.get(name)
        if r is None:
            return math.inf
        if r.is_const:
            v = np.asarray(r.value, dtype=np.float64)
            return float(np.max(np.abs(v), initial=0.0))
        return float(max(np.max(np.abs(r.lo), initial=0.0), np.max(np.abs(r.hi), initial=0.0)))

    def const(self, i: int) -> Optional[np.ndarray]:
        if i >= len(self.node.input) or not self.node.input[i]:
            return None
        r = self.report.ranges.get(self.node.input[i])
        return np.asarray(r.value, dtype=np.float64) if r is not None and r.is_const else None

    @property
    def out(self) -> float:
        return self.magnitude(self.node.output[0])

    def inexact(self, err: float) -> Bound:
        return Bound(err, False, None) if math.isfinite(err) else UNBOUNDED


BOUND_RULES: dict[str, Callable[[_BoundContext], Bound]] = {}


def bound_rule(*op_types: str):
    """Register the float64 error bound of ``op_types``."""

    def register(fn):
        for t in op_types:
            BOUND_RULES[t] = fn
        return fn

    return register


def _present(c: _BoundContext) -> list:
    return [b for b in c.inputs if b is not None]


#: ops that move or select values (and the 1-Lipschitz ones that pick one
#: of their inputs): the error of the output is the largest input error
MOVEMENT = frozenset(
    {
        "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Concat", "Pad", "Gather", "Split",
        "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "Identity",
    }
)  # fmt: skip
SELECTING = frozenset({"Relu", "Max", "Min", "Clip", "MaxPool", "GlobalMaxPool", "Neg", "Abs"})


@bound_rule(*MOVEMENT, *SELECTING)
def _moved(c: _BoundContext) -> Bound:
    ins = [b for i, b in enumerate(c.inputs) if b is not None and not _integer_input(c.node, i)]
    if not ins:
        return Bound.of_exact(None)
    grids = [b.grid for b in ins]
    grid = None if any(g is None for g in grids) else min(grids)
    if c.node.op_type in ("Pad", "Clip"):
        # a constant pad value or limit joins the values: the grid holds only if it is on it
        for i in range(1, len(c.node.input)):
            v = c.const(i)
            if v is not None and v.dtype.kind == "f" and grid is not None:
                g = _grid(v)
                grid = None if g is None else min(grid, g)
    if all(b.exact for b in ins):
        return Bound.of_exact(grid)
    return c.inexact(max(b.err for b in ins))


def _integer_input(node, i: int) -> bool:
    """Shape, index and count inputs of movement ops (not data)."""
    return (node.op_type, i) in {("Reshape", 1), ("Slice", 1), ("Slice", 2), ("Slice", 3), ("Slice", 4), ("Pad", 1), ("Pad", 3),
                                 ("Gather", 1), ("Split", 1), ("Expand", 1), ("Tile", 1), ("Squeeze", 1), ("Unsqueeze", 1)}  # fmt: skip


@bound_rule("Add", "Sub", "Sum")
def _sum(c: _BoundContext) -> Bound:
    ins = _present(c)
    grids = [b.grid for b in ins]
    grid = None if any(g is None for g in grids) else min(grids)
    total = sum(c.magnitude(n) for n in c.node.input if n)
    if all(b.exact for b in ins) and _fits(total, grid):
        return Bound.of_exact(grid)
    err = sum(b.err for b in ins)
    return c.inexact(err * (1 + 4 * U) + 2 * U * (c.out + err) * (len(ins) - 1))


@bound_rule("Mul")
def _mul(c: _BoundContext) -> Bound:
    a, b = c.inputs[0], c.inputs[1]
    ma, mb = (c.magnitude(n) for n in c.node.input[:2])
    grid = None if a.grid is None or b.grid is None else a.grid + b.grid
    if a.exact and b.exact and _fits(ma * mb, grid):
        return Bound.of_exact(grid)
    err = a.err * (mb + b.err) + b.err * ma
    return c.inexact(err * (1 + 4 * U) + 2 * U * (c.out + err))


@bound_rule("Div")
def _div(c: _BoundContext) -> Bound:
    a = c.inputs[0]
    d = c.const(1)
    if d is None or not np.all(np.isfinite(d)) or np.any(d == 0):
        return UNBOUNDED
    low = float(np.min(np.abs(d)))
    mant, _exp = np.frexp(np.abs(d))
    if a.exact and np.all(mant == 0.5):  # powers of two: exact division (no underflow in quantized models)
        shift = int(np.max(np.log2(np.abs(d))))
        grid = None if a.grid is None else a.grid - shift
        if grid is not None and grid > -1000:
            return Bound.of_exact(grid)
    err = a.err / low
    return c.inexact(err * (1 + 4 * U) + 2 * U * (c.out + err))


def _weight_norm(w: np.ndarray, axis_out: int) -> float:
    """Largest sum of |w| over one output's terms."""
    moved = np.moveaxis(np.abs(w), axis_out, 0).reshape(w.shape[axis_out], -1)
    return float(np.max(np.sum(moved, axis=1), initial=0.0))


def _mac_bound(c: _BoundContext, x: Bound, w_bound: Bound, w: Optional[np.ndarray], k: int, w_norm: float,
               bias: Optional[Bound], bias_mag: float, scale: float = 1.0) -> Bound:  # fmt: skip
    """Bound of sum_k x*w (+ bias), ``scale`` folding Gemm's alpha."""
    mx = c.magnitude(c.node.input[0])
    total = scale * w_norm * mx + bias_mag
    grids = [x.grid, w_bound.grid]
    grid = None if None in grids else grids[0] + grids[1]
    if bias is not None:
        grid = None if grid is None or bias.grid is None else min(grid, bias.grid)
    exact_in = x.exact and w_bound.exact and (bias is None or bias.exact) and scale == 1.0
    if exact_in and _fits(total, grid):
        return Bound.of_exact(grid)
    err = scale * w_norm * x.err + (bias.err if bias is not None else 0.0)
    if w is None:
        err += scale * k * (mx + x.err) * w_bound.err
    gamma = (k + 3) * U / (1 - (k + 3) * U)
    return c.inexact(err * (1 + 4 * U) + gamma * (total + err) * 2)


@bound_rule("MatMul")
def _matmul(c: _BoundContext) -> Bound:
    x, wb = c.inputs[0], c.inputs[1]
    w = c.const(1)
    shape = c.report.ranges[c.node.input[1]].shape if c.node.input[1] in c.report.ranges else None
    if shape is None or len(shape) < 1:
        return UNBOUNDED
    k = shape[-2] if len(shape) >= 2 else shape[0]
    norm = _weight_norm(w, -1) if w is not None else k * c.magnitude(c.node.input[1])
    return _mac_bound(c, x, wb, w, k, norm, None, 0.0)


@bound_rule("Gemm")
def _gemm(c: _BoundContext) -> Bound:
    attrs = node_attrs(c.node)
    alpha, beta = abs(float(attrs.get("alpha", 1.0))), abs(float(attrs.get("beta", 1.0)))
    x, wb = c.inputs[0], c.inputs[1]
    w = c.const(1)
    shape = c.report.ranges[c.node.input[1]].shape
    trans_b = bool(attrs.get("transB", 0))
    k = shape[1] if trans_b else shape[0]
    norm = (_weight_norm(w, 0 if trans_b else 1) if w is not None else k * c.magnitude(c.node.input[1]))
    bias = c.inputs[2] if len(c.inputs) > 2 else None
    bias_mag = beta * c.magnitude(c.node.input[2]) if bias is not None else 0.0
    if bias is not None and beta != 1.0:
        bias = Bound(bias.err * beta, False, None)
    return _mac_bound(c, x, wb, w, k, norm, bias, bias_mag, alpha)


@bound_rule("Conv")
def _conv(c: _BoundContext) -> Bound:
    x, wb = c.inputs[0], c.inputs[1]
    w = c.const(1)
    shape = c.report.ranges[c.node.input[1]].shape
    k = int(np.prod(shape[1:]))
    norm = _weight_norm(w, 0) if w is not None else k * c.magnitude(c.node.input[1])
    bias = c.inputs[2] if len(c.inputs) > 2 else None
    bias_mag = c.magnitude(c.node.input[2]) if bias is not None else 0.0
    return _mac_bound(c, x, wb, w, k, norm, bias, bias_mag)


def _pool_size(c: _BoundContext) -> int:
    if c.node.op_type == "GlobalAveragePool":
        shape = c.report.ranges[c.node.input[0]].shape
        return int(np.prod(shape[2:]))
    return int(np.prod(node_attrs(c.node)["kernel_shape"]))


@bound_rule("AveragePool", "GlobalAveragePool")
def _average(c: _BoundContext) -> Bound:
    x = c.inputs[0]
    k = _pool_size(c)
    mx = c.magnitude(c.node.input[0])
    attrs = node_attrs(c.node)
    padded = any(attrs.get("pads", [])) or attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or attrs.get("ceil_mode", 0)
    if x.exact and k & (k - 1) == 0 and not padded and _fits(k * mx, x.grid):
        return Bound.of_exact(None if x.grid is None else x.grid - int(math.log2(k)))
    gamma = (k + 3) * U / (1 - (k + 3) * U)
    return c.inexact(x.err * (1 + 4 * U) + 2 * gamma * (mx + x.err))


@bound_rule("BatchNormalization")
def _batchnorm(c: _BoundContext) -> Bound:
    x = c.inputs[0]
    params = [c.const(i) for i in range(1, 5)]
    if any(p is None for p in params):
        return UNBOUNDED
    gamma, beta, mean, var = (p.reshape(-1) for p in params)
    eps = float(node_attrs(c.node).get("epsilon", 1e-5))
    a = np.abs(gamma) / np.sqrt(var + eps) * (1 + 8 * U)
    mx = c.magnitude(c.node.input[0])
    terms = float(np.max(a * (mx + x.err) + a * np.abs(mean) + np.abs(beta), initial=0.0))
    return c.inexact(float(np.max(a, initial=0.0)) * x.err * (1 + 4 * U) + 32 * U * terms)


def _lipschitz(factor: Callable[[dict], float], libm_ulps: float):
    def rule(c: _BoundContext) -> Bound:
        x = c.inputs[0]
        lip = factor(node_attrs(c.node))
        return c.inexact(lip * x.err * (1 + 4 * U) + libm_ulps * U * (c.out + lip * x.err) + 4 * U * lip * c.magnitude(c.node.input[0]))

    return rule


bound_rule("Sigmoid")(_lipschitz(lambda a: 0.25, 16))
bound_rule("Tanh")(_lipschitz(lambda a: 1.0, 16))
bound_rule("LeakyRelu")(_lipschitz(lambda a: max(1.0, abs(float(a.get("alpha", 0.01)))), 2))
bound_rule("HardSigmoid")(_lipschitz(lambda a: abs(float(a.get("alpha", 0.2))), 4))


@bound_rule("Softmax")
def _softmax(c: _BoundContext) -> Bound:
    """|softmax(x + d) - softmax(x)| <= expm1(2 max|d|) elementwise; the
    evaluation (exp, a sum of the axis, a division) adds (n + 24) ulps."""
    x = c.inputs[0]
    shape = c.report.ranges[c.node.input[0]].shape
    n = shape[int(node_attrs(c.node).get("axis", -1))]
    return c.inexact(math.expm1(2 * x.err) * (1 + 4 * U) + (n + 24) * U)


def _quantizer_bound(c: _BoundContext) -> Bound:
    """A quantizer's output after exact decisions, ``scale * level + bias``
    computed in float64: exact when every such value is a float64 (on the
    grid of scale and bias, below 2**53 steps of it)."""
    r = c.report.ranges.get(c.node.output[0])
    if r is None or not r.is_scaled_int:
        return UNBOUNDED
    grid = _grid(np.concatenate([np.ravel(r.scale), np.ravel(r.bias)]))
    if _fits(c.out, grid):
        return Bound.of_exact(grid)
    return c.inexact(2 * U * c.out)


for _op in QUANTIZER_OPS:
    BOUND_RULES[_op] = _quantizer_bound


def error_bounds(report: RangeReport) -> dict[str, Bound]:
    """The float64 error bound of every tensor of ``report.model`` (graph
    inputs and initializers exact; ops without a rule unbounded)."""
    from .model import topological_order

    model = report.model
    bounds: dict[str, Bound] = {}
    for init in model.graph.initializer:
        value = np.asarray(model.get_initializer(init.name))
        bounds[init.name] = Bound.of_exact(_grid(value) if value.dtype.kind == "f" else None)
    for inp in model.graph.input:
        if inp.name not in bounds:
            r = report.input_ranges.get(inp.name)
            grid = _grid(np.concatenate([np.ravel(r.scale), np.ravel(r.bias)])) if r is not None and r.is_scaled_int else None
            bounds[inp.name] = Bound.of_exact(grid)
    for node in topological_order(model):
        rule = BOUND_RULES.get(node.op_type)
        ins = [bounds.get(i, UNBOUNDED) if i else None for i in node.input]
        if rule is None:
            b = UNBOUNDED
        else:
            try:
                b = rule(_BoundContext(report, node, ins))
            except (KeyError, IndexError, ValueError, TypeError):
                b = UNBOUNDED
        for o in node.output:
            if o:
                bounds[o] = b
    return bounds


# --------------------------------------------------------------------------
# exact decisions of the quantizers
# --------------------------------------------------------------------------


def _elem(a, shape, idx):
    """Element ``idx`` of ``a`` broadcast to ``shape``."""
    return np.broadcast_to(np.asarray(a), shape)[idx]


def _exact_steps(x, s, z) -> np.ndarray:
    """Where x / s + z is computed without rounding."""
    with np.errstate(all="ignore"):
        ratio = x / s
        back = ratio * s
        t = ratio + z
        ok = (back == x) & (nx.two_product_err(ratio, np.broadcast_to(s, ratio.shape), back) == 0)
        ok &= nx.two_sum_err(ratio, np.broadcast_to(z, ratio.shape), t) == 0
    return ok & np.isfinite(t)


class _Quantizer:
    """One quantizer node's decisions: ``margin(ctx)`` is the float64
    distance of each input element from the nearest decision boundary (in
    input units), ``exact(x, idx, ctx)`` the exact output for an exact input
    value ``x`` at stacked index ``idx``, ``level(...)`` the value the
    decision is compared by."""

    def __init__(self, node, attrs: dict, opset_trunc_v1: bool):
        self.node = node
        self.op = node.op_type
        self.attrs = attrs
        self.trunc_v1 = opset_trunc_v1

    def _params(self, ctx) -> list:
        return [np.asarray(ctx[i], dtype=np.float64) if i else None for i in self.node.input]

    def margin(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        """Per input element, the float64 distance from the nearest decision
        boundary (in input units) and the magnitude of the terms it was
        computed from (its own rounding error is a few ulps of that)."""
        p = self._params(ctx)
        x = p[0]
        with np.errstate(all="ignore"):
            if self.op == "BipolarQuant":
                return np.abs(x), np.abs(x)
            if self.op == "MultiThreshold":
                t = p[1].reshape(-1, p[1].shape[-1]) if p[1].ndim != 2 else p[1]
                best = threshold_distance(x, t, multithreshold_channel_axis(self.attrs.get("data_layout", ""), x.ndim))
                return best, np.abs(x) + best
            s, z = p[1], p[2]
            tq = x / s + z
            terms = np.abs(x) + np.abs(z * s)
            if self.op == "Quant" or self.op == "IntQuant":
                bits = p[3]
                signed, narrow = self.attrs.get("signed", 1), self.attrs.get("narrow", 0)
                if np.all(bits == 1) and signed:
                    return np.abs(tq) * np.abs(s), terms
                lo, hi = int_limits(signed, narrow, bits)
                half = nx.rounding_mode(self.attrs.get("rounding_mode", "ROUND")) in ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN")
                d = np.abs(tq - (np.floor(tq) + 0.5)) if half else np.abs(tq - np.round(tq))
                outside = (tq < lo - 1) | (tq > hi + 1)
                return np.where(outside, np.inf, d * np.abs(s)), terms
            # Trunc: its first rounding (to the input grid) is the only float decision
            d = np.abs(tq - (np.floor(tq) + 0.5))
            return d * np.abs(s), terms

    def near(self, ctx, bound: Bound) -> np.ndarray:
        """The input elements (``np.argwhere`` rows) whose float64 decision
        is not proven: the float64 distance from the boundary is at most
        the input's error bound plus a few ulps of the terms and of the
        distance itself (``exact_steps`` elements of an exact input are
        proven). For a multi-bit Quant or a Trunc a cheap whole-array
        screen (a few in-place passes against a bound on that slack over
        every element) keeps a superset, on which the exact per-element
        test is then made; any other quantizer is tested on every element."""
        p = self._params(ctx)
        if self.op not in ("Quant", "IntQuant", "Trunc") or p[0].ndim == 0:
            return self._near_all(ctx, bound)
        x, s, z = p[0], p[1], p[2]
        if self.op != "Trunc" and np.all(p[3] == 1) and self.attrs.get("signed", 1):
            return self._near_all(ctx, bound)
        half = self.op == "Trunc" or nx.rounding_mode(self.attrs.get("rounding_mode", "ROUND")) in ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN")
        abs_s = np.abs(s)
        with np.errstate(all="ignore"):
            # the slack of every element is below this: terms |x| + |z s| and a margin of at most |s| / 2
            top = float(max(np.max(x, initial=0.0), -np.min(x, initial=0.0))) + float(np.max(np.abs(z * s), initial=0.0))
            slack_max = (bound.err * (1 + 2.0**-20) + 8 * U * (top + float(np.max(abs_s, initial=0.0))) + 1e-300) * (1 + 2.0**-30)
            tq = np.divide(x, s)
            tq = np.add(tq, z, out=tq) if np.shape(tq) == np.broadcast_shapes(np.shape(tq), np.shape(z)) else tq + z
            ref = np.floor(tq) if half else np.round(tq)
            if half:
                ref += 0.5
            d = np.subtract(tq, ref, out=ref)
            np.abs(d, out=d)
            # d * |s| <= slack implies d <= slack / |s| (1 + 2**-40), whatever the roundings
            far = np.greater(d, (slack_max / abs_s) * (1 + 2.0**-40)) if np.isfinite(slack_max) else np.zeros(np.shape(x), dtype=bool)
        if far.all():  # the common case: one pass, no index list
            return np.empty((0, x.ndim), dtype=np.intp)
        cand = np.argwhere(~far)
        at = tuple(cand.T)
        shape = np.shape(x)
        pick = lambda a: np.broadcast_to(a, shape)[at]  # noqa: E731
        xs, ss, zs = x[at], pick(s), pick(z)
        with np.errstate(all="ignore"):
            tq = xs / ss + zs
            terms = np.abs(xs) + np.abs(zs * ss)
            if self.op == "Trunc":
                margin = np.abs(tq - (np.floor(tq) + 0.5)) * np.abs(ss)
            else:
                lo, hi = int_limits(self.attrs.get("signed", 1), self.attrs.get("narrow", 0), pick(p[3]))
                dd = np.abs(tq - (np.floor(tq) + 0.5)) if half else np.abs(tq - np.round(tq))
                margin = np.where((tq < lo - 1) | (tq > hi + 1), np.inf, dd * np.abs(ss))
            if bound.exact:
                margin = np.where(_exact_steps(xs, ss, zs), np.inf, margin)
            slack = bound.err * (1 + 2.0**-20) + 8 * U * (terms + np.where(np.isfinite(margin), margin, 0.0)) + 1e-300 if math.isfinite(bound.err) else np.inf
        return cand[~(margin > slack)]

    def _near_all(self, ctx, bound: Bound) -> np.ndarray:
        """:meth:`near` tested on every element."""
        margin, terms = self.margin(ctx)
        if bound.exact:
            margin = np.where(self.exact_steps(ctx), np.inf, margin)
        with np.errstate(all="ignore"):
            slack = bound.err * (1 + 2.0**-20) + 8 * U * (terms + np.where(np.isfinite(margin), margin, 0.0)) + 1e-300 if math.isfinite(bound.err) else np.inf
        return np.argwhere(~(margin > slack))

    def margin_steps(self, ctx) -> np.ndarray:
        """The float64 distance of each input element from its nearest
        boundary, in steps of the quantizer's input grid (for reports)."""
        margin, _terms = self.margin(ctx)
        if self.op in ("BipolarQuant", "MultiThreshold"):
            return margin
        with np.errstate(all="ignore"):
            return margin / np.abs(self._params(ctx)[1])

    def exact_steps(self, ctx) -> np.ndarray:
        """Where x / s + z is computed without rounding (then the float
        decision on an exact x is the exact one)."""
        p = self._params(ctx)
        return _exact_steps(p[0], p[1], p[2])

    def exact(self, x: Fraction, idx: tuple, ctx) -> Fraction:
        """The exact output at stacked index ``idx`` for exact input ``x``."""
        p = self._params(ctx)
        shape = p[0].shape
        f = lambda a: Fraction(float(_elem(a, shape, idx)))  # noqa: E731
        if self.op == "BipolarQuant":
            return (1 if x >= 0 else -1) * f(p[1])
        if self.op == "MultiThreshold":
            t = p[1].reshape(-1, p[1].shape[-1]) if p[1].ndim != 2 else p[1]
            axis = multithreshold_channel_axis(self.attrs.get("data_layout", ""), len(shape))
            row = t[idx[axis] if t.shape[0] > 1 else 0]
            count = sum(1 for v in row if x >= Fraction(float(v)))
            return Fraction(float(self.attrs.get("out_scale", 1.0))) * count + Fraction(float(self.attrs.get("out_bias", 0.0)))
        s, z = f(p[1]), f(p[2])
        mode = self.attrs.get("rounding_mode", "ROUND" if self.op in ("Quant", "IntQuant") else "FLOOR")
        if self.op in ("Quant", "IntQuant"):
            bits = int(_elem(p[3], shape, idx))
            signed, narrow = self.attrs.get("signed", 1), self.attrs.get("narrow", 0)
            if bits == 1 and signed:
                level = 1 if x / s + z >= 0 else -1
            else:
                lo, hi = int_limits(signed, narrow, bits)
                level = nx.quantize_fraction(x, s, z, int(lo), int(hi), mode)
            return (level - z) * s
        y = Fraction(nx.round_fraction(x / s + z, "ROUND"))
        if self.trunc_v1:
            k = int(_elem(p[3], shape, idx)) - int(_elem(p[4], shape, idx))
            return (nx.round_fraction(y / 2**k, mode) - z) * s
        out_scale = f(p[4])
        t = Fraction(float(nx.trunc_step(float(s), float(out_scale))))
        signed, narrow = self.attrs.get("signed", 1), self.attrs.get("narrow", 0)
        lo, hi = int_limits(signed, narrow, int(_elem(p[5], shape, idx)))
        v = min(max(y / t, Fraction(int(lo))), Fraction(int(hi)))
        return (nx.round_fraction(v, mode) - z / t) * out_scale

    def steps(self, x: Fraction, idx: tuple, ctx) -> float:
        """The exact distance of ``x`` from its nearest boundary, in steps of
        the quantizer's input grid (for reports)."""
        p = self._params(ctx)
        shape = p[0].shape
        if self.op in ("BipolarQuant", "MultiThreshold"):
            return float(abs(x)) if self.op == "BipolarQuant" else math.nan
        s, z = Fraction(float(_elem(p[1], shape, idx))), Fraction(float(_elem(p[2], shape, idx)))
        t = x / s + z
        mode = nx.rounding_mode(self.attrs.get("rounding_mode", "ROUND" if self.op in ("Quant", "IntQuant") else "FLOOR"))
        if self.op in ("Quant", "IntQuant") and mode not in ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN"):
            return float(abs(t - round(t)))
        return float(abs(t - (math.floor(t) + Fraction(1, 2))))


# --------------------------------------------------------------------------
# the reference executor
# --------------------------------------------------------------------------


class _NoExactRule(Exception):
    pass


Interval = tuple  # (Fraction lo, Fraction hi)


def _imul(a: Interval, b: Interval) -> Interval:
    c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(c), max(c)


def exact_dot(a: np.ndarray, b: np.ndarray) -> Fraction:
    """sum(a*b) of two float64 vectors, exactly."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    keep = (a != 0) & (b != 0)
    a, b = a[keep], b[keep]
    if not a.size:
        return Fraction(0)
    ma, ea = np.frexp(a)
    mb, eb = np.frexp(b)
    ia = (ma * 2.0**53).astype(np.int64)
    ib = (mb * 2.0**53).astype(np.int64)
    e = (ea.astype(np.int64) - 53) + (eb.astype(np.int64) - 53)
    low = int(e.min())
    total = sum(int(x) * int(y) << int(s) for x, y, s in zip(ia, ib, e - low))
    return Fraction(total) * Fraction(2) ** low


class Reference:
    """The model of ``report`` evaluated in the reference semantics (see the
    module docstring). ``run_many(feeds)`` yields, per feed, every tensor;
    :attr:`notes` accumulates what was decided exactly."""

    def __init__(self, report: RangeReport):
        from qonnx.custom_op.registry import getCustomOp

        from .model import topological_order

        self.report = report
        self.bounds = error_bounds(report)
        self.notes = RunNotes()
        self._quantizers = {}
        opsets = report.model.get_opset_imports()
        order = topological_order(report.model)
        for node in order:
            if node.op_type in QUANTIZER_OPS:
                v1 = False
                if node.op_type == "Trunc":
                    op = getCustomOp(node, onnx_opset_version=opsets.get(node.domain, 1))
                    v1 = type(op).__name__ == "Trunc_v1"
                self._quantizers[node.name] = _Quantizer(node, node_attrs(node), v1)
        #: the batch a hook call is deciding (its context and sample count),
        #: per thread: the executor may run two batches side by side
        self._batch = threading.local()
        self._order = {n.name: i for i, n in enumerate(order)}
        self._notes_lock = threading.Lock()
        self.executor: Optional[Executor] = None  # constants are folded (and decided) while it is built
        self.executor = Executor(report.model, hook=self._after)
        self.producers = {o: n for n, _a, _s in self.executor.all_steps for o in n.output}
        self._steps = {id(n): s for n, _a, s in self.executor.all_steps}
        self._index_maps: dict = {}

    # -- running -------------------------------------------------------

    def quantizers(self) -> list:
        """The quantizer nodes, in graph order."""
        return list(self._quantizers.values())

    def run_many(self, feeds: Iterable[dict], batch_size: Optional[int] = None) -> Iterator[dict]:
        """Every tensor, per feed, in the reference semantics."""
        return self.executor.run_many(feeds, batch_size)

    def _after(self, node, ctx: dict, samples: int, first: int) -> None:
        """Executor hook: decide a quantizer's near-boundary elements exactly."""
        q = self._quantizers.get(node.name)
        if q is None:
            return
        bound = self.bounds.get(node.input[0], UNBOUNDED)
        if bound.exact and q.op in ("BipolarQuant", "MultiThreshold"):
            return  # comparisons of exact floats
        if not math.isfinite(bound.err):
            self.notes.unbounded.add(node.name)
            return
        x = np.asarray(ctx[node.input[0]], dtype=np.float64)
        near = q.near(ctx, bound)
        if not near.size:
            return
        out = np.array(ctx[node.output[0]], dtype=np.float64)
        self._batch.samples, self._batch.ctx = samples, ctx
        rows = max(1, x.shape[0] // samples) if x.ndim else 1
        checked = unresolved = 0
        flips = []
        for idx in map(tuple, near):
            if checked >= MAX_EXACT_PER_NODE:
                unresolved += 1
                continue
            checked += 1
            k = idx[0] // rows if x.ndim else 0
            local = ((idx[0] % rows,) + idx[1:]) if x.ndim else idx
            value = self._decide(q, node.input[0], k, local, idx, ctx, bound)
            if value is None:
                unresolved += 1
                continue
            exact, xval = value
            if float(exact) != out[idx]:
                flips.append(Flip(node.name, first + k, local, float(out[idx]), float(exact), q.steps(xval, idx, ctx)))
                out[idx] = float(exact)
        self._note(node.name, checked, unresolved, flips)
        ctx[node.output[0]] = out

    def _note(self, node: str, checked: int, unresolved: int, flips: list) -> None:
        """Add one quantizer's decisions on one batch to :attr:`notes`, the
        flips kept in (sample, graph order, element) order whatever order
        the batches finish in."""
        with self._notes_lock:
            self.notes.checked[node] = self.notes.checked.get(node, 0) + checked
            if unresolved:
                self.notes.unresolved[node] = self.notes.unresolved.get(node, 0) + unresolved
            for flip in flips:
                bisect.insort(self.notes.flips, flip, key=lambda f: (f.sample, self._order.get(f.node, -1), f.index))

    def _decide(self, q: _Quantizer, name: str, k: int, local: tuple, idx: tuple, ctx, bound: Bound):
        """(exact output, exact input) at one element, or None when no
        precision decides it."""
        if bound.exact:
            x = Fraction(float(ctx[name][idx]))
            return q.exact(x, idx, ctx), x
        for prec in PRECISIONS:
            try:
                lo, hi = self.exact_value(name, k, local, prec)
            except _NoExactRule:
                return None
            a, b = q.exact(lo, idx, ctx), q.exact(hi, idx, ctx)
            if a == b:
                return a, (lo + hi) / 2
        return None

    # -- exact values of single elements -------------------------------

    def _stacked(self, name: str, k: int, local: tuple):
        if self.executor is None:
            raise _NoExactRule("a constant computed from inexact constants")
        ctx = getattr(self._batch, "ctx", {})
        v = np.asarray(ctx[name] if name in ctx else self.executor.template[name])
        if name in self.executor.dynamic and v.ndim:
            rows = v.shape[0] // getattr(self._batch, "samples", 1)
            return v[(k * rows + local[0],) + tuple(local[1:])]
        return v[local] if v.ndim else v

    def _shape(self, name: str) -> tuple:
        return tuple(np.shape(self.executor.template[name]))

    def exact_value(self, name: str, k: int, local: tuple, prec: int) -> Interval:
        """A rational interval holding the exact value of ``name`` at
        ``local`` (an index into one sample's tensor) of sample ``k`` of the
        current batch: a point wherever the ops are rational."""
        if self.executor is None:
            raise _NoExactRule("a constant computed from inexact constants")
        b = self.bounds.get(name)
        if b is not None and b.exact or name not in self.producers:
            v = Fraction(float(self._stacked(name, k, local)))
            return v, v
        node = self.producers[name]
        op = node.op_type
        if op in _ELEMENT_RULES:
            return _ELEMENT_RULES[op](self, node, k, local, prec)
        if op in MOVEMENT:
            src, src_idx = self._moved_from(node, local)
            if src is None:
                v = Fraction(0)
                return v, v
            return self.exact_value(src, k, src_idx, prec)
        raise _NoExactRule(op)

    def _operand(self, node, i: int, k: int, local: tuple, prec: int) -> Interval:
        """Input ``i`` of an elementwise node at the output index ``local``
        (numpy broadcasting)."""
        name = node.input[i]
        shape = self._shape(name)
        out_rank = len(local)
        sub = local[out_rank - len(shape):] if shape else ()
        idx = tuple(j if d > 1 else 0 for j, d in zip(sub, shape))
        return self.exact_value(name, k, idx, prec)

    def _moved_from(self, node, local: tuple):
        """(source tensor, its index) of output element ``local`` of a data
        movement node, found by running the node on coded indices."""
        key = id(node)
        if key not in self._index_maps:
            ctx = dict(self.executor.template)
            sources = []
            for i, name in enumerate(node.input):
                if not name or _integer_input(node, i):
                    continue
                shape = self._shape(name)
                sources.append(name)
                code = float(len(sources)) * 2.0**40
                ctx[name] = (np.arange(int(np.prod(shape)), dtype=np.float64) + code).reshape(shape)
            step = self._steps[id(node)]
            step(ctx)
            self._index_maps[key] = (sources, np.asarray(ctx[node.output[0]], dtype=np.float64))
        sources, codes = self._index_maps[key]
        code = int(codes[local])
        which, flat = divmod(code, 2**40)
        if which == 0:
            return None, None
        src = sources[which - 1]
        return src, tuple(int(i) for i in np.unravel_index(flat, self._shape(src)))


def _ew_binary(fn):
    def rule(ref: Reference, node, k, local, prec):
        vals = [ref._operand(node, i, k, local, prec) for i in range(len(node.input)) if node.input[i]]
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return out

    return rule


def _idiv(a: Interval, b: Interval) -> Interval:
    if b[0] <= 0 <= b[1]:
        raise _NoExactRule("Div by an interval holding 0")
    return _imul(a, (1 / b[1], 1 / b[0]) if b[0] > 0 else (1 / b[1], 1 / b[0]))


_ELEMENT_RULES: dict[str, Callable] = {
    "Add": _ew_binary(lambda a, b: (a[0] + b[0], a[1] + b[1])),
    "Sum": _ew_binary(lambda a, b: (a[0] + b[0], a[1] + b[1])),
    "Sub": _ew_binary(lambda a, b: (a[0] - b[1], a[1] - b[0])),
    "Mul": _ew_binary(_imul),
    "Div": _ew_binary(_idiv),
    "Max": _ew_binary(lambda a, b: (max(a[0], b[0]), max(a[1], b[1]))),
    "Min": _ew_binary(lambda a, b: (min(a[0], b[0]), min(a[1], b[1]))),
}


def _unary(fn):
    def rule(ref: Reference, node, k, local, prec):
        lo, hi = ref._operand(node, 0, k, local, prec)
        return fn(ref, node, local, lo, hi, prec)

    return rule


def _clip(ref, node, local, lo, hi, prec):
    attrs = node_attrs(node)
    limits = []
    for i, key in ((1, "min"), (2, "max")):
        if len(node.input) > i and node.input[i]:
            limits.append(Fraction(float(np.asarray(ref.executor.template[node.input[i]]).reshape(-1)[0])))
        elif key in attrs:
            limits.append(Fraction(float(np.float32(attrs[key]))))
        else:
            limits.append(None)
    f = lambda v: min(max(v, limits[0]) if limits[0] is not None else v, limits[1]) if limits[1] is not None else (max(v, limits[0]) if limits[0] is not None else v)  # noqa: E731
    return f(lo), f(hi)


def _batchnorm_exact(ref, node, local, lo, hi, prec):
    c = local[1] if len(local) > 1 else 0
    g, b, m, v = (Fraction(float(np.asarray(ref.executor.template[n]).reshape(-1)[c])) for n in node.input[1:5])
    eps = Fraction(float(np.float32(node_attrs(node).get("epsilon", 1e-5))))
    r_lo, r_hi = sqrt_enclosure(v + eps, prec)
    a = _imul((g, g), (1 / r_hi, 1 / r_lo))
    y = _imul((lo - m, hi - m), a)
    return y[0] + b, y[1] + b


def _monotone_mp(fn_name: str):
    def rule(ref, node, local, lo, hi, prec):
        from mpmath import iv

        fn = getattr(iv, fn_name) if fn_name != "sigmoid" else (lambda x: 1 / (1 + iv.exp(-x)))
        return interval_eval(fn, lo, prec)[0], interval_eval(fn, hi, prec)[1]

    return rule


def _leaky(ref, node, local, lo, hi, prec):
    alpha = Fraction(float(np.float32(node_attrs(node).get("alpha", 0.01))))
    f = lambda v: v if v >= 0 else alpha * v  # noqa: E731
    return (f(lo), f(hi)) if alpha >= 0 else (min(f(lo), f(hi), Fraction(0)), max(f(lo), f(hi)))


def _hard_sigmoid(ref, node, local, lo, hi, prec):
    attrs = node_attrs(node)
    a, b = Fraction(float(np.float32(attrs.get("alpha", 0.2)))), Fraction(float(np.float32(attrs.get("beta", 0.5))))
    f = lambda v: min(max(a * v + b, Fraction(0)), Fraction(1))  # noqa: E731
    return (f(lo), f(hi)) if a >= 0 else (f(hi), f(lo))


_ELEMENT_RULES.update(
    {
        "Relu": _unary(lambda r, n, l, lo, hi, p: (max(lo, Fraction(0)), max(hi, Fraction(0)))),
        "Neg": _unary(lambda r, n, l, lo, hi, p: (-hi, -lo)),
        "Abs": _unary(lambda r, n, l, lo, hi, p: (abs(lo), abs(hi)) if lo >= 0 else ((abs(hi), abs(lo)) if hi <= 0 else (Fraction(0), max(-lo, hi)))),
        "Identity": _unary(lambda r, n, l, lo, hi, p: (lo, hi)),
        "Clip": _unary(_clip),
        "BatchNormalization": _unary(_batchnorm_exact),
        "Sigmoid": _unary(_monotone_mp("sigmoid")),
        "Tanh": _unary(_monotone_mp("tanh")),
        "LeakyRelu": _unary(_leaky),
        "HardSigmoid": _unary(_hard_sigmoid),
    }
)


def _terms(ref: Reference, name: str, k: int, indices: list, prec: int) -> list:
    """Exact intervals of ``name`` at many indices of sample ``k``."""
    return [ref.exact_value(name, k, idx, prec) for idx in indices]


def _dot(ref: Reference, x_name: str, k: int, x_idx: list, w: np.ndarray, prec: int) -> Interval:
    """sum_i x[x_idx[i]] * w[i] exactly, x read from sample ``k``."""
    b = ref.bounds.get(x_name)
    if b is not None and b.exact or x_name not in ref.producers:
        xs = np.array([ref._stacked(x_name, k, idx) for idx in x_idx], dtype=np.float64)
        v = exact_dot(xs, w)
        return v, v
    lo = hi = Fraction(0)
    for (a, c), wi in zip(_terms(ref, x_name, k, x_idx, prec), w):
        p = _imul((a, c), (Fraction(float(wi)),) * 2)
        lo, hi = lo + p[0], hi + p[1]
    return lo, hi


def _const(ref: Reference, name: str) -> Optional[np.ndarray]:
    if not name or name in ref.executor.dynamic:
        return None
    return np.asarray(ref.executor.template[name], dtype=np.float64)


def _matmul_exact(ref: Reference, node, k, local, prec):
    w = _const(ref, node.input[1])
    if w is None or w.ndim != 2:
        raise _NoExactRule("MatMul with a dynamic or batched right operand")
    kdim = w.shape[0]
    x_idx = [tuple(local[:-1]) + (i,) for i in range(kdim)]
    return _dot(ref, node.input[0], k, x_idx, w[:, local[-1]], prec)


def _gemm_exact(ref: Reference, node, k, local, prec):
    attrs = node_attrs(node)
    if attrs.get("transA", 0):
        raise _NoExactRule("Gemm with transA")
    w = _const(ref, node.input[1])
    if w is None:
        raise _NoExactRule("Gemm with a dynamic right operand")
    if attrs.get("transB", 0):
        w = w.T
    x_idx = [(local[0], i) for i in range(w.shape[0])]
    lo, hi = _dot(ref, node.input[0], k, x_idx, w[:, local[1]], prec)
    alpha = Fraction(float(np.float32(attrs.get("alpha", 1.0))))
    lo, hi = _imul((lo, hi), (alpha, alpha))
    if len(node.input) > 2 and node.input[2]:
        beta = Fraction(float(np.float32(attrs.get("beta", 1.0))))
        c = _const(ref, node.input[2])
        cv = Fraction(float(np.broadcast_to(c, ref._shape(node.output[0]))[local]))
        lo, hi = lo + beta * cv, hi + beta * cv
    return lo, hi


def _window(ref: Reference, node, local, in_shape, kernel, attrs):
    """Input spatial positions of output position ``local[2:]``, each with
    whether it lies inside the input (False: padding)."""
    nsp = len(kernel)
    strides, dilations = window_attrs(attrs, nsp)
    pads = spatial_pads(attrs, in_shape[2:], kernel, strides, dilations)
    out = []
    for offs in np.ndindex(*kernel):
        pos = tuple(local[2 + i] * strides[i] - pads[i][0] + offs[i] * dilations[i] for i in range(nsp))
        inside = all(0 <= pos[i] < in_shape[2 + i] for i in range(nsp))
        padded = all(-pads[i][0] <= pos[i] < in_shape[2 + i] + pads[i][1] for i in range(nsp))
        out.append((offs, pos, inside, padded))
    return out


def _conv_exact(ref: Reference, node, k, local, prec):
    w = _const(ref, node.input[1])
    if w is None:
        raise _NoExactRule("Conv with dynamic weights")
    attrs = node_attrs(node)
    in_shape = ref._shape(node.input[0])
    group = int(attrs.get("group", 1))
    oc = local[1]
    per_group_out = w.shape[0] // group
    cin = w.shape[1]
    g = oc // per_group_out
    x_idx, ws = [], []
    for offs, pos, inside, _padded in _window(ref, node, local, in_shape, w.shape[2:], attrs):
        if not inside:
            continue
        for ci in range(cin):
            x_idx.append((local[0], g * cin + ci) + pos)
            ws.append(w[(oc, ci) + offs])
    lo, hi = _dot(ref, node.input[0], k, x_idx, np.asarray(ws), prec)
    if len(node.input) > 2 and node.input[2]:
        b = Fraction(float(_const(ref, node.input[2]).reshape(-1)[oc]))
        lo, hi = lo + b, hi + b
    return lo, hi


def _pool_exact(ref: Reference, node, k, local, prec):
    in_shape = ref._shape(node.input[0])
    attrs = node_attrs(node)
    if node.op_type.startswith("Global"):
        cells = [(local[0], local[1]) + pos for pos in np.ndindex(*in_shape[2:])]
        count = len(cells)
    else:
        window = _window(ref, node, local, in_shape, list(attrs["kernel_shape"]), attrs)
        cells = [(local[0], local[1]) + pos for _o, pos, inside, _p in window if inside]
        include = bool(attrs.get("count_include_pad", 0))
        count = sum(1 for _o, _pos, inside, padded in window if (padded if include else inside))
    vals = _terms(ref, node.input[0], k, cells, prec)
    if node.op_type.endswith("MaxPool"):
        return max(v[0] for v in vals), max(v[1] for v in vals)
    return sum(v[0] for v in vals) / count, sum(v[1] for v in vals) / count


_ELEMENT_RULES.update(
    {
        "MatMul": _matmul_exact,
        "Gemm": _gemm_exact,
        "Conv": _conv_exact,
        "AveragePool": _pool_exact,
        "GlobalAveragePool": _pool_exact,
        "MaxPool": _pool_exact,
        "GlobalMaxPool": _pool_exact,
    }
)

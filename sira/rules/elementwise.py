"""Elementwise rules: arithmetic (Add, Sub, Mul, Div, BatchNormalization),
piecewise-linear activations (Relu, LeakyRelu, Abs, Clip, Max, Min,
HardSigmoid) and integer-valued ops (Floor, Ceil, Round, Sign, Neg); the
smooth activations are in :mod:`sira.rules.smooth`.

Conventions shared by every rule here:

* Real bounds come from the exact end points (and interior extrema) of each
  elementwise function; where float64 evaluation is inexact they are rounded
  outward, so they hold for the mathematical semantics of the op.
* Constant operands are folded into the scaled-integer form and recorded in
  the provenance (``scale_sources``/``bias_sources``). Nonlinear ops are
  requantization-like reset points: their outputs start with empty
  provenance, because neutralizing a scale or bias upstream of them would
  change what they compute.
* With two dynamic operands the bounds are those of independently varying
  operands: always sound, attained only if the operands really are
  independent, which the analysis cannot know — such outputs are marked
  sound (``exact=False``). The same tensor on both sides (``x - x``,
  ``x * x``) is recognized and handled exactly.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange
from ..semantics import batchnorm_bounds
from .registry import EXACT, RuleContext, rule

_INF = np.inf
#: largest numerator / denominator of a slope kept exact in the integer form
_MAX_SLOPE_TERM = 2**16


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------


def _out_shape(ctx: RuleContext, *ranges: ScaledIntRange) -> tuple:
    return ctx.out_shape(0, fallback=np.broadcast_shapes(*(r.shape for r in ranges)))


def _notes(*ranges: ScaledIntRange) -> tuple:
    return tuple(n for r in ranges for n in r.notes)


def _real(shape, lo, hi, *srcs: ScaledIntRange, exact: bool = True, note: str = "") -> ScaledIntRange:
    """A real-only range; notes and exactness inherited from ``srcs``."""
    notes = _notes(*srcs) + ((note,) if note else ())
    return ScaledIntRange.real(shape, lo, hi, exact=exact and all(r.exact for r in srcs), notes=notes)


def _reset(r: ScaledIntRange) -> ScaledIntRange:
    """Provenance cleared: the output of a nonlinear op is a reset point."""
    return r.replace(scale_sources=frozenset(), bias_sources=frozenset())


def _dynamic(r: ScaledIntRange) -> ScaledIntRange:
    """Result of two dynamic operands: sound, tight only if independent."""
    return r.replace(exact=False)


def float_attr(ctx: RuleContext, name: str, default: float) -> float:
    """A float attribute; the default rounded to float32 like a stored one
    (ONNX float attributes are float32: the default 0.2 means 0.2f)."""
    return float(ctx.attr(name, float(np.float32(default))))


def _same_tensor(ctx: RuleContext) -> bool:
    return bool(ctx.input_name(0)) and ctx.input_name(0) == ctx.input_name(1)


def _dyadic(alpha: np.ndarray):
    """``(p, r)`` integer arrays with ``alpha == p / r`` exactly and small
    terms (every float is a dyadic rational, so r is a power of two), else
    None."""
    p = np.empty(alpha.shape, dtype=np.int64)
    r = np.empty(alpha.shape, dtype=np.int64)
    for idx, a in np.ndenumerate(alpha):
        f = Fraction(float(a))
        if abs(f.numerator) > _MAX_SLOPE_TERM or f.denominator > _MAX_SLOPE_TERM:
            return None
        p[idx], r[idx] = f.numerator, f.denominator
    return p, r


def _min_all(arrays):
    return functools.reduce(np.minimum, arrays)


def _max_all(arrays):
    return functools.reduce(np.maximum, arrays)


# --------------------------------------------------------------------------
# Add, Sub, Mul, Div
# --------------------------------------------------------------------------


@rule("Add", exactness=EXACT)
def add_rule(ctx: RuleContext):
    """y = a + b (broadcasting).

    Exact with a constant operand: the bias absorbs it (its name joins
    ``bias_sources``). ``x + x`` is ``2x``, exact. Two dynamic operands:
    exact bounds for independent operands (marked sound, see module doc);
    the integer form is kept when the scales share a grid (equal, integer or
    power-of-two ratio, e.g. a residual join of scales s and s/2).
    """
    a, b = ctx.inp(0), ctx.inp(1)
    shape = _out_shape(ctx, a, b)
    if ctx.is_const(1):
        return [a.add_const(b.value, source=ctx.input_name(1), out_shape=shape)]
    if ctx.is_const(0):
        return [b.add_const(a.value, source=ctx.input_name(0), out_shape=shape)]
    if _same_tensor(ctx):
        return [a.mul_const(2.0, out_shape=shape)]
    return [_dynamic(a.add(b, out_shape=shape))]


@rule("Sub", exactness=EXACT)
def sub_rule(ctx: RuleContext):
    """y = a - b (broadcasting).

    Exact with a constant operand (``x - c`` moves the bias, ``c - x`` also
    negates the scale). ``x - x`` is exactly 0. Two dynamic operands: as
    Add, on ``a + (-b)``.
    """
    a, b = ctx.inp(0), ctx.inp(1)
    shape = _out_shape(ctx, a, b)
    if ctx.is_const(1):
        return [a.add_const(-np.asarray(b.value, dtype=np.float64), source=ctx.input_name(1), out_shape=shape)]
    if ctx.is_const(0):
        return [b.neg().add_const(a.value, source=ctx.input_name(0), out_shape=shape)]
    if _same_tensor(ctx):
        return [ScaledIntRange.scaled(shape, 0, 0, 1.0, 0.0, exact=a.exact, notes=a.notes)]
    return [_dynamic(a.sub(b, out_shape=shape))]


@rule("Mul", exactness=EXACT)
def mul_rule(ctx: RuleContext):
    """y = a * b (broadcasting).

    Exact with a constant factor: scale and bias are multiplied (the name
    joins ``scale_sources``); a zero factor gives the constant 0 on the
    grid of scale 1, never a zero scale. ``x * x`` is an exact square (its
    minimum is 0 when x straddles 0). Two dynamic operands: exact four-corner
    bounds for independent operands (marked sound); integer form q1*q2 with
    scale s1*s2 when both biases are 0.
    """
    a, b = ctx.inp(0), ctx.inp(1)
    shape = _out_shape(ctx, a, b)
    if ctx.is_const(1):
        return [a.mul_const(b.value, source=ctx.input_name(1), out_shape=shape)]
    if ctx.is_const(0):
        return [b.mul_const(a.value, source=ctx.input_name(0), out_shape=shape)]
    if _same_tensor(ctx):
        return [a.square(out_shape=shape)]
    return [_dynamic(a.mul(b, out_shape=shape))]


@rule("Div", exactness=EXACT)
def div_rule(ctx: RuleContext):
    """y = a / b (float division, broadcasting).

    Constant non-zero divisor: the integer form is that of ``a * (1/c)``
    (scale s/c and bias b/c in float64, so the grid is exact up to the
    rounding of 1/c) while the real bounds are the exact quotients rounded
    outward — exact. ``x / x`` is 1 when x excludes 0. Otherwise the
    quotient of the two intervals: exact corners when the divisor excludes
    0 (marked sound for two dynamic operands), and an unbounded range with
    a note where the divisor contains or touches 0 — never a finite bound
    that division by a value near 0 could break.
    """
    a, b = ctx.inp(0), ctx.inp(1)
    shape = _out_shape(ctx, a, b)
    if ctx.is_const(1) and np.all(np.asarray(b.value) != 0):
        return [a.div_const(b.value, source=ctx.input_name(1), out_shape=shape)]
    if _same_tensor(ctx):
        return [_div_self(a, shape)]
    q = a.div(b, out_shape=shape)
    return [_dynamic(q) if not (ctx.is_const(0) or ctx.is_const(1)) else q]


def _div_self(x: ScaledIntRange, shape) -> ScaledIntRange:
    """x / x: exactly 1 where x excludes 0; NaN at 0, so unbounded (with a
    note) where the range contains it."""
    nonzero = (x.lo > 0) | (x.hi < 0)
    if np.all(nonzero):
        return ScaledIntRange.scaled(shape, 1, 1, 1.0, 0.0, exact=x.exact, notes=x.notes)
    note = "x / x with x reaching 0: NaN there, range unbounded"
    return _real(shape, np.where(nonzero, 1.0, -_INF), np.where(nonzero, 1.0, _INF), x, exact=False, note=note)


# --------------------------------------------------------------------------
# BatchNormalization
# --------------------------------------------------------------------------


def _channel_param(ctx: RuleContext, i: int, what: str, ndim: int) -> np.ndarray:
    """Parameter ``i`` laid out along axis 1 of an ``ndim``-D tensor."""
    v = np.asarray(ctx.const(i, what), dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RuleError(f"{what} ('{ctx.input_name(i)}') contains NaN or Inf")
    lead = 1 if ndim >= 2 else 0
    return v.reshape((1,) * lead + v.shape + (1,) * (ndim - lead - v.ndim))


@rule("BatchNormalization", exactness=EXACT)
def batchnorm_rule(ctx: RuleContext):
    """Inference-mode BatchNormalization: y = A*(x - mean) + beta per channel
    (axis 1), A = gamma / sqrt(var + epsilon).

    Exact: y is monotone per channel (decreasing where gamma < 0), and the
    real bounds are computed from the parameters with outward rounding at
    every step, so they hold for the exact semantics. The integer form is
    kept: scale*A, bias*A + (beta - mean*A) with A in float64 (exact up to
    its rounding); gamma and var join ``scale_sources``, beta and mean
    ``bias_sources``. Parameters must be constants; training mode is
    rejected.
    """
    if int(ctx.attr("training_mode", 0)) or len([o for o in ctx.node.output if o]) > 1:
        raise RuleError("training-mode BatchNormalization (batch statistics, extra outputs) has no static range; export the model in inference (eval) mode")
    x = ctx.inp(0)
    shape = ctx.out_shape(0, fallback=x.shape)
    nd = len(shape)
    gamma = _channel_param(ctx, 1, "scale (gamma, input 1)", nd)
    beta = _channel_param(ctx, 2, "bias (beta, input 2)", nd)
    mean = _channel_param(ctx, 3, "mean (input 3)", nd)
    var = _channel_param(ctx, 4, "variance (input 4)", nd)
    eps = float_attr(ctx, "epsilon", 1e-5)
    if np.any(nx.add_down(var, eps) <= 0):
        raise RuleError(f"variance + epsilon is not positive (min {np.min(var + eps):g}); the normalization divides by its square root")
    lo, hi = batchnorm_bounds(x.lo, x.hi, gamma, beta, mean, var, eps)
    if not x.is_scaled_int:
        return [_real(shape, lo, hi, x)]
    A = gamma / np.sqrt(var + eps)
    r = x.mul_const(A, source=ctx.input_name(1), out_shape=shape).add_const(beta - mean * A, source=ctx.input_name(2), out_shape=shape)
    r = r.replace(
        scale_sources=r.scale_sources | {ctx.input_name(4)},
        bias_sources=r.bias_sources | {ctx.input_name(3)},
    )
    return [r.with_bounds(lo, hi)]


# --------------------------------------------------------------------------
# Relu, LeakyRelu, Abs: f(v) = v for v >= 0, alpha*v for v < 0
# --------------------------------------------------------------------------


def _kink_real(x: ScaledIntRange, alpha: np.ndarray):
    """Exact real bounds of f over [lo, hi]: f is monotone on each side of
    0, so the extremes are among f(lo), f(hi) and f(0) = 0."""

    def f(v, mul):
        return np.where(v >= 0, v, mul(alpha, v))

    straddle = (x.lo < 0) & (x.hi > 0)
    lo = _min_all([f(x.lo, nx.mul_down), f(x.hi, nx.mul_down), np.where(straddle, 0.0, _INF)])
    hi = _max_all([f(x.lo, nx.mul_up), f(x.hi, nx.mul_up), np.where(straddle, 0.0, -_INF)])
    return lo, hi


def _kink_int(x: ScaledIntRange, alpha: np.ndarray, name: str, lo, hi, shape) -> ScaledIntRange:
    """Integer form of f(x) when x straddles 0 somewhere.

    With the bias folded (x = s*q', 0 at q' = 0) and alpha = p/r:
    f(x) = (s/r) * g(q'), g(q') = r*q' on the non-negative side, p*q' on the
    other; g is monotone on each side, so its extremes are among g(qlo'),
    g(qhi') and g(0) = 0 — exact integer bounds."""
    folded = x.centered_int_bounds()
    if folded is None:
        # for a negative slope 0 is the minimum, attained only if on the grid
        loose = bool(np.any(alpha < 0)) and x.misses_any((0.0,))
        return _real(shape, lo, hi, x, exact=not loose, note=f"{name}: 0 is not on the input grid (bias/scale is not an integer); integer form dropped")
    ratio = _dyadic(alpha)
    if ratio is None:
        return _real(shape, lo, hi, x, note=f"{name}: slope {np.ravel(alpha)[0]:g} is not a short binary fraction; integer form dropped")
    p, r = ratio
    qlo, qhi = folded
    pos_up = x.scale > 0  # the non-negative side is q' >= 0 for a positive scale

    def g(q):
        nonneg = np.where(pos_up, q >= 0, q <= 0)
        return np.where(nonneg, nx.int_mul(r, q), nx.int_mul(p, q))

    straddle = (qlo < 0) & (qhi > 0)
    zero = np.zeros((1,) * len(shape), dtype=np.int64)
    glo, ghi = g(qlo), g(qhi)
    out_lo = np.where(straddle, nx.int_minimum(glo, ghi, zero), nx.int_minimum(glo, ghi))
    out_hi = np.where(straddle, nx.int_maximum(glo, ghi, zero), nx.int_maximum(glo, ghi))
    return ScaledIntRange.scaled(
        shape, nx.as_int(out_lo), nx.as_int(out_hi), x.scale / r, 0.0, exact=x.exact, clamp_lo=lo, clamp_hi=hi, notes=x.notes
    )


def _kink(x: ScaledIntRange, alpha, name: str) -> ScaledIntRange:
    """f(v) = v (v >= 0), alpha*v (v < 0), elementwise. Exact, except that
    for a negative slope the minimum f(0) = 0 is not attained when x lives
    on a grid that misses 0 (then marked sound)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if not np.all(np.isfinite(alpha)):
        raise RuleError(f"slope alpha={alpha} is not finite")
    shape = x.shape
    lo, hi = _kink_real(x, alpha)
    if not x.is_scaled_int:
        return _real(shape, lo, hi, x)
    if np.all(x.lo >= 0):
        return _reset(x)
    if np.all(x.hi <= 0):
        return _reset(x.mul_const(alpha, out_shape=shape))
    return _kink_int(x, alpha, name, lo, hi, shape)


@rule("Relu", exactness=EXACT)
def relu_rule(ctx: RuleContext):
    """y = max(x, 0). Exact: real bounds [max(lo, 0), max(hi, 0)].

    Integer form: unchanged where x >= 0 throughout; otherwise kept when 0
    lies on the grid (bias 0, or bias/scale an exact integer k, folded into
    q' = q + k with bias 0): q' -> max(q', 0) for a positive scale, min(q', 0)
    for a negative one. Else dropped with a note (a following quantizer
    restores it)."""
    return [_kink(ctx.inp(0), 0.0, "Relu")]


@rule("LeakyRelu", exactness=EXACT)
def leaky_relu_rule(ctx: RuleContext):
    """y = x (x >= 0), alpha*x (x < 0). Exact real bounds for any alpha
    (also negative, with the extremum at 0).

    Integer form as for Relu, with the grid refined to scale/r where alpha
    = p/r is a short binary fraction (e.g. 1/8: q' -> 8q' or q'); a slope
    like 0.01 has no short exact fraction and drops the integer form."""
    return [_kink(ctx.inp(0), float_attr(ctx, "alpha", 0.01), "LeakyRelu")]


@rule("Abs", exactness=EXACT)
def abs_rule(ctx: RuleContext):
    """y = |x|. Exact; integer form q' -> |q'| when 0 lies on the grid (and
    the input's own form, or its negation, when x keeps one sign)."""
    return [_kink(ctx.inp(0), -1.0, "Abs")]


# --------------------------------------------------------------------------
# Max, Min, Clip, HardSigmoid
# --------------------------------------------------------------------------


def _nary_extreme(ctx: RuleContext, take_max: bool):
    ins = [r for r in ctx.inputs if r is not None]
    if not ins:
        raise RuleError("needs at least one input")
    shape = ctx.out_shape(0, fallback=np.broadcast_shapes(*(r.shape for r in ins)))
    out = functools.reduce(lambda acc, r: acc.maximum(r, shape) if take_max else acc.minimum(r, shape), ins[1:], ins[0].broadcast(shape))
    if sum(not r.is_const for r in ins) > 1:
        out = _dynamic(out)
    return [out]


@rule("Max", exactness=EXACT)
def max_rule(ctx: RuleContext):
    """y = max(x1, ..., xn) elementwise (broadcasting). Exact for a single
    dynamic operand (e.g. max(x, c)); several dynamic operands are exact
    only if independent (marked sound). Integer form kept when the operands
    share a grid (see :meth:`ScaledIntRange.maximum`)."""
    return _nary_extreme(ctx, take_max=True)


@rule("Min", exactness=EXACT)
def min_rule(ctx: RuleContext):
    """y = min(x1, ..., xn) elementwise; as Max."""
    return _nary_extreme(ctx, take_max=False)


def _clip_bounds(ctx: RuleContext):
    """The (lower, upper) bound ranges of a Clip node, None where absent:
    inputs 1 and 2 from opset 11 on, attributes min / max before."""
    if ctx.opset >= 11:
        return tuple(ctx.inp(i) if ctx.has_input(i) else None for i in (1, 2))
    out = []
    for name in ("min", "max"):
        v = ctx.attr(name)
        out.append(None if v is None else ScaledIntRange.constant(np.float64(v)))
    return tuple(out)


@rule("Clip", exactness=EXACT)
def clip_rule(ctx: RuleContext):
    """y = min(max(x, lo), hi) (ONNX: lo > hi gives hi). Exact with constant
    bounds; the integer form is kept where each present bound lies on the
    input grid (e.g. ReLU6 after a Quant of scale 6/2^k), dropped with a
    note otherwise. Dynamic bounds are allowed (marked sound)."""
    x = ctx.inp(0)
    shape = ctx.out_shape(0, fallback=x.shape)
    lower, upper = _clip_bounds(ctx)
    r = x.broadcast(shape)
    if lower is not None:
        r = r.maximum(lower, shape)
    if upper is not None:
        r = r.minimum(upper, shape)
    if any(b is not None and not b.is_const for b in (lower, upper)):
        r = _dynamic(r)
    return [r]


@rule("HardSigmoid", exactness=EXACT)
def hard_sigmoid_rule(ctx: RuleContext):
    """y = max(0, min(1, alpha*x + beta)). Exact: an affine map (outward
    rounded) then a clamp; the integer form survives where 0 and 1 lie on
    the grid of alpha*x + beta."""
    x = ctx.inp(0)
    alpha = float_attr(ctx, "alpha", 0.2)
    beta = float_attr(ctx, "beta", 0.5)
    y = x.mul_const(alpha).add_const(beta)
    y = y.maximum(ScaledIntRange.constant(np.float64(0.0)), x.shape)
    return [y.minimum(ScaledIntRange.constant(np.float64(1.0)), x.shape)]


# --------------------------------------------------------------------------
# integer-valued ops and negation
# --------------------------------------------------------------------------


@rule("Floor", exactness=EXACT)
def floor_rule(ctx: RuleContext):
    """y = floor(x). Exact; integers (scale 1, bias 0) when bounded."""
    return [ctx.inp(0).monotone_image(np.floor, integers=True)]


@rule("Ceil", exactness=EXACT)
def ceil_rule(ctx: RuleContext):
    """y = ceil(x). Exact; integers (scale 1, bias 0) when bounded."""
    return [ctx.inp(0).monotone_image(np.ceil, integers=True)]


@rule("Round", exactness=EXACT)
def round_rule(ctx: RuleContext):
    """y = round(x), ties to even as ONNX specifies. Exact; integers."""
    return [ctx.inp(0).monotone_image(np.round, integers=True)]


@rule("Sign", exactness=EXACT)
def sign_rule(ctx: RuleContext):
    """y = sign(x) in {-1, 0, 1}. Exact; integers."""
    return [ctx.inp(0).monotone_image(np.sign, integers=True)]


@rule("Neg", exactness=EXACT)
def neg_rule(ctx: RuleContext):
    """y = -x. Exact; a linear op, so the integer form and its provenance
    are kept (scale and bias negated)."""
    return [ctx.inp(0).neg()]

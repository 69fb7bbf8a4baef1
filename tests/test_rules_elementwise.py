"""Elementwise rules.

Exhaustive small-bitwidth checks in the spirit of LLVM's ConstantRange
tests: every integer interval [a, b] with -8 <= a <= b <= 7 (136 of them)
is laid out along one axis of an input range, for several scales and
biases; one rule call handles them all (pairs of intervals for binary ops
via broadcasting), and brute force over every grid point (every pair of
points) checks that the result is sound — every value inside the real
bounds and, for scaled-int results, on the grid inside [int_lo, int_hi] —
and tight for exact rules — the extremes are attained.

Then end-to-end checks on real ONNX models against qonnx / onnxruntime
execution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

import sira
from sira import ScaledIntRange
from sira.errors import RuleError, SiraError
from sira.rules import EXACT, RULES
from tests.helpers import make_model, quant_node
from tests.rules_harness import check_node, check_ranges, rule_outputs

# every integer interval [a, b] within 4 bits, one per position
_A, _B = np.array([(a, b) for a in range(-8, 8) for b in range(a, 8)]).T
_Q = np.arange(-8, 8)
_MASK = (_Q >= _A[:, None]) & (_Q <= _B[:, None])  # (136, 16): q in interval i
N = len(_A)

UNARY_GRIDS = [(s, b) for s in (1.0, 0.25, -0.5) for b in (0.0, 0.125, 0.5)]


def intervals(scale, bias, shape=(N,)) -> ScaledIntRange:
    """All 136 intervals as one range, laid out along the axis of length N."""
    return ScaledIntRange.scaled(shape, _A.reshape(shape), _B.reshape(shape), scale, bias)


def const(v) -> ScaledIntRange:
    return ScaledIntRange.constant(np.asarray(v, dtype=np.float32))


def apply(op, inputs, attrs=None, opset=13, names=None, out_shape=None) -> ScaledIntRange:
    """Call the registered rule for ``op`` on hand-made input ranges."""
    names = names or [f"in{i}" if r is not None else "" for i, r in enumerate(inputs)]
    node = helper.make_node(op, names, ["y"], **(attrs or {}))
    shape = out_shape or np.broadcast_shapes(*(r.shape for r in inputs if r is not None))
    (out,) = rule_outputs(node, inputs, [shape], opset=opset)
    assert out.shape == tuple(shape)
    return out


def _full(a, shape):
    return np.broadcast_to(np.asarray(a), shape)


def check(r: ScaledIntRange, y, mask, tight=True, rtol=0.0, tight_where=None, hull=None, atol=0.0):
    """Brute-force soundness and tightness.

    ``y[..., k]`` are the op's results at every input point k of the
    element ``...`` of ``r``; ``mask`` marks the points that exist (NaN
    results are excluded: a range bounds real values). ``rtol`` absorbs
    the rounding of the float64 reference itself (``atol`` its cancellation
    in sums of inexact terms). ``hull`` (values, mask)
    replaces the points for the real-bound tightness check (e.g. adding an
    interior extremum that lies between grid points)."""
    shape = y.shape[:-1]
    assert r.shape == shape
    mask = mask & ~np.isnan(y)
    lo, hi = _full(r.lo, shape)[..., None], _full(r.hi, shape)[..., None]
    assert not np.isnan(lo).any() and not np.isnan(hi).any()
    tol = np.where(np.isfinite(y), rtol * np.abs(y), 0.0)
    bad = mask & ~((y >= lo - tol) & (y <= hi + tol))
    assert not bad.any(), f"unsound: value {y[bad][:3]} outside [{np.broadcast_to(lo, y.shape)[bad][:3]}, {np.broadcast_to(hi, y.shape)[bad][:3]}]"
    q = None
    if r.is_scaled_int:
        s, b = _full(r.scale, shape)[..., None], _full(r.bias, shape)[..., None]
        with np.errstate(all="ignore"):
            qf = (y - b) / s
        q = np.round(qf)
        off = mask & ~(np.abs(qf - q) <= 1e-9 * np.maximum(1.0, np.abs(qf)))
        assert not off.any(), f"off the integer grid: {qf[off][:3]}"
        qlo = _full(r.int_lo, shape).astype(np.float64)[..., None]
        qhi = _full(r.int_hi, shape).astype(np.float64)[..., None]
        out = mask & ~((q >= qlo) & (q <= qhi))
        assert not out.any(), "integer part outside [int_lo, int_hi]"
    if not tight:
        return
    sel = mask.any(-1) if tight_where is None else mask.any(-1) & tight_where
    hy, hmask = hull if hull is not None else (y, mask)
    for bound, ext, fill in ((lo[..., 0], np.min, np.inf), (hi[..., 0], np.max, -np.inf)):
        attained = ext(np.where(hmask, hy, fill), axis=-1)
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite (and equal)
            close = (attained == bound) | (np.abs(attained - bound) <= rtol * np.abs(attained) + atol + 1e-300)
        assert np.all(close | ~sel), f"not tight: attained {attained[~close & sel][:3]} vs bound {bound[~close & sel][:3]}"
    if q is not None:
        qmin = np.min(np.where(mask, q, np.inf), axis=-1)
        qmax = np.max(np.where(mask, q, -np.inf), axis=-1)
        assert np.all((qmin == qlo[..., 0]) | ~sel) and np.all((qmax == qhi[..., 0]) | ~sel), "integer bounds not attained"


def unary_points(scale, bias):
    """Input values (N, 16) at every grid point and the mask of those in each interval."""
    return np.broadcast_to(scale * _Q + bias, (N, 16)).astype(np.float64), _MASK


def check_unary(r, x, v, mask, ref, critical=(), **kw):
    """``check`` for a unary op. An op with interior extrema (``critical``)
    is exact where they are attainable; otherwise (an extremum between grid
    points) the rule must say so, and is checked against the interval hull."""
    with np.errstate(all="ignore"):
        y = ref(v)
    hull = None
    if critical:
        cs = np.broadcast_to(np.array(critical, dtype=np.float64), (N, len(critical)))
        inside = (x.lo[:, None] < cs) & (cs < x.hi[:, None])
        with np.errstate(all="ignore"):
            hull = (np.concatenate([y, ref(cs)], axis=1), np.concatenate([mask, inside], axis=1))
        if r.exact:
            hull = (hull[0], np.concatenate([mask, inside & np.isin(cs, v[0])], axis=1))
    else:
        assert r.exact
    check(r, y, mask, hull=hull, **kw)


# --------------------------------------------------------------------------
# reference implementations (float64, independent of the rules' code)
# --------------------------------------------------------------------------

f32 = lambda v: float(np.float32(v))  # noqa: E731  (attributes are stored as float32)
_erf = np.vectorize(math.erf)
SELU_A, SELU_G = f32(1.67326319217681884765625), f32(1.05070102214813232421875)


def _celu(a):
    return lambda v: np.maximum(0, v) + np.minimum(0, a * (np.exp(v / a) - 1))


# (op, attributes, reference, rtol, interior extrema)
UNARY = [
    ("Relu", {}, lambda v: np.maximum(v, 0), 0.0),
    ("LeakyRelu", {"alpha": 0.125}, lambda v: np.where(v >= 0, v, 0.125 * v), 0.0),
    ("LeakyRelu", {"alpha": 0.01}, lambda v: np.where(v >= 0, v, f32(0.01) * v), 0.0),
    ("LeakyRelu", {"alpha": -0.5}, lambda v: np.where(v >= 0, v, -0.5 * v), 0.0, (0.0,)),
    ("Abs", {}, np.abs, 0.0, (0.0,)),
    ("Neg", {}, np.negative, 0.0),
    ("Floor", {}, np.floor, 0.0),
    ("Ceil", {}, np.ceil, 0.0),
    ("Round", {}, np.round, 0.0),
    ("Sign", {}, np.sign, 0.0),
    ("Sigmoid", {}, lambda v: 1 / (1 + np.exp(-v)), 1e-13),
    ("Tanh", {}, np.tanh, 1e-13),
    ("Erf", {}, _erf, 1e-13),
    ("Exp", {}, np.exp, 1e-13),
    ("Softplus", {}, lambda v: np.log1p(np.exp(v)), 1e-13),
    ("Elu", {}, lambda v: np.where(v > 0, v, np.exp(v) - 1), 1e-13),
    ("Elu", {"alpha": -0.5}, lambda v: np.where(v > 0, v, -0.5 * (np.exp(v) - 1)), 1e-13, (0.0,)),
    ("Selu", {}, lambda v: SELU_G * np.where(v > 0, v, SELU_A * (np.exp(v) - 1)), 1e-13),
    ("Celu", {}, _celu(1.0), 1e-13),
    ("Celu", {"alpha": 0.3}, _celu(f32(0.3)), 1e-13),
    ("Celu", {"alpha": -2.0}, _celu(-2.0), 1e-13),
    ("HardSigmoid", {}, lambda v: np.clip(f32(0.2) * v + 0.5, 0, 1), 1e-15),
    ("HardSigmoid", {"alpha": 0.25, "beta": 0.5}, lambda v: np.clip(0.25 * v + 0.5, 0, 1), 0.0),
    ("HardSwish", {}, lambda v: v * np.clip(v / 6 + 0.5, 0, 1), 1e-13, (-1.5,)),
]


@pytest.mark.parametrize("op,attrs,ref,rtol,critical", [u if len(u) == 5 else u + ((),) for u in UNARY], ids=[f"{u[0]}{u[1] or ''}" for u in UNARY])
def test_unary_exhaustive(op, attrs, ref, rtol, critical):
    assert RULES[op].exactness == EXACT
    for s, b in UNARY_GRIDS:
        v, mask = unary_points(s, b)
        x = intervals(s, b)
        check_unary(apply(op, [x], attrs), x, v, mask, ref, critical, rtol=rtol)


#: piecewise-linear unary ops, monotone in their input (either way): float32
#: execution reaches their exact bounds to an ulp
MONOTONE = ["Relu", "LeakyRelu", "Neg", "Floor", "Ceil", "Round", "Sign", "HardSigmoid"]


@pytest.mark.parametrize("op", MONOTONE)
def test_monotone_unary_in_a_model(op):
    """qonnx execution stays in the range and on its grid, and the
    saturated corners of the quantizer reach the exact bounds."""
    check_node(op, (2, 3), quant={"scale": np.array([[0.25, 0.5, 1.0]]), "bits": 4}, exact=True)


@pytest.mark.parametrize("op,ref", [("Log", np.log), ("Sqrt", np.sqrt)])
def test_domain_restricted_exhaustive(op, ref):
    """Inside the domain the bounds are sound and tight; a proven input range
    reaching below 0, where the op is NaN, is an error naming the reason."""
    for s, b in UNARY_GRIDS:
        v, mask = unary_points(s, b)
        x = intervals(s, b)
        inside = np.asarray(x.lo >= 0)
        if np.any(~inside):
            with pytest.raises(RuleError, match="reaches below 0"):
                apply(op, [x])
        x_in = ScaledIntRange.scaled((int(inside.sum()),), _A[inside], _B[inside], s, b)
        r = apply(op, [x_in])
        with np.errstate(all="ignore"):
            check(r, ref(v[inside]), mask[inside], rtol=1e-13)
        assert r.exact


def test_relu_integer_form():
    # bias on the grid (bias/scale = 2) is folded: bias 0, q' = max(q + 2, 0)
    r = apply("Relu", [ScaledIntRange.scaled((), -5, 3, 0.25, 0.5)])
    assert r.is_scaled_int and np.all(r.bias == 0) and (r.int_bounds() == (0, 5))
    # negative scale mirrors: s*q' >= 0 for q' <= 0
    r = apply("Relu", [ScaledIntRange.scaled((), -3, 4, -0.5, 0.0)])
    assert r.int_bounds() == (-3, 0) and r.lo == 0 and r.hi == 1.5
    # 0 off the grid: integer form dropped, with a note
    r = apply("Relu", [ScaledIntRange.scaled((), -5, 3, 0.25, 0.1)])
    assert not r.is_scaled_int and "not on the input grid" in r.notes[-1]
    # all non-negative: identity, even with 0 off the grid
    x = ScaledIntRange.scaled((), 1, 3, 0.25, 0.1)
    r = apply("Relu", [x])
    assert r.is_scaled_int and r.int_bounds() == (1, 3) and r.bias == x.bias


def test_relu_huge_integers():
    """Integer parts beyond int64 stay exact (Python ints)."""
    r = apply("Relu", [ScaledIntRange.scaled((2,), [-(2**70), 5], [2**70 + 1, 7], 1.0, 0.0)])
    assert int(r.int_hi[0]) == 2**70 + 1 and int(r.int_lo[0]) == 0
    r = apply("LeakyRelu", [ScaledIntRange.scaled((), -(2**70), 3, 1.0, 0.0)], {"alpha": 0.25})
    assert r.int_bounds() == (-(2**70), 12) and r.scale == 0.25


def test_leaky_relu_grid():
    r = apply("LeakyRelu", [ScaledIntRange.scaled((), -8, 7, 0.5, 0.0)], {"alpha": 0.125})
    assert r.is_scaled_int and r.scale == 0.0625 and r.int_bounds() == (-8, 56)
    r = apply("LeakyRelu", [ScaledIntRange.scaled((), -8, 7, 0.5, 0.0)], {"alpha": 0.01})
    assert not r.is_scaled_int and "short binary fraction" in r.notes[-1]


# --------------------------------------------------------------------------
# binary ops, two dynamic operands
# --------------------------------------------------------------------------

BINARY_GRIDS = [
    ((1.0, 0.0), (1.0, 0.0)),
    ((0.25, 0.0), (0.125, 0.0)),  # residual join of scales s and s/2
    ((0.25, 0.125), (0.25, 0.125)),
    ((0.25, 0.125), (-0.5, 0.5)),  # scales of opposite sign
    ((1.0, 0.5), (0.3, 0.0)),  # no common grid
]

BINARY = [
    ("Add", np.add, 1e-14),  # the grid of scale 0.3 is inexact in float64: a few ulps
    ("Sub", np.subtract, 1e-14),
    ("Mul", np.multiply, 1e-14),
    ("Div", np.divide, 1e-14),
    ("Max", np.maximum, 1e-14),
    ("Min", np.minimum, 1e-14),
]


def binary_points(gx, gy, ref):
    """Results (N, N, 256) of ref over every pair of points of every pair of intervals."""
    vx = gx[0] * _Q + gx[1]
    vy = gy[0] * _Q + gy[1]
    with np.errstate(all="ignore"):
        y = ref(vx[None, None, :, None], vy[None, None, None, :])
    y = np.broadcast_to(y, (N, N, 16, 16)).reshape(N, N, 256)
    mask = (_MASK[:, None, :, None] & _MASK[None, :, None, :]).reshape(N, N, 256)
    return y, mask


@pytest.mark.parametrize("op,ref,rtol", BINARY, ids=[b[0] for b in BINARY])
def test_binary_dynamic_exhaustive(op, ref, rtol):
    """All 136 x 136 interval pairs at once, for each pair of grids."""
    for gx, gy in BINARY_GRIDS:
        x = intervals(*gx, shape=(N, 1))
        y = intervals(*gy, shape=(1, N))
        r = apply(op, [x, y])
        vals, mask = binary_points(gx, gy, ref)
        tight_where = None
        if op == "Div":  # divisor intervals containing 0 give unbounded quotients
            tight_where = np.broadcast_to((y.lo > 0) | (y.hi < 0), (N, N))
            assert np.all(np.isinf(_full(r.lo, (N, N))[~tight_where]))
        check(r, vals, mask, rtol=rtol, atol=rtol * 16, tight_where=tight_where)
        assert not r.exact  # independence of two dynamic operands is not known
        if op in ("Add", "Sub") and gy[0] != 0.3:
            assert r.is_scaled_int  # common grid kept, also for s and s/2 and opposite signs
        if op == "Mul" and gx[1] == gy[1] == 0:
            assert r.is_scaled_int


@pytest.mark.parametrize(
    "op,ref",
    [("Add", lambda v: v + v), ("Sub", lambda v: v - v), ("Mul", lambda v: v * v), ("Div", lambda v: v / v)],
)
def test_same_tensor_exact(op, ref):
    """x op x with the same tensor: correlation recognized, exact bounds."""
    for s, b in UNARY_GRIDS:
        v, mask = unary_points(s, b)
        x = intervals(s, b)
        r = apply(op, [x, x], names=["x", "x"])
        if op == "Div":  # 1 where x excludes 0, unbounded (NaN at 0) elsewhere
            with np.errstate(all="ignore"):
                check(r, ref(v), mask, tight_where=(x.lo > 0) | (x.hi < 0))
        else:
            check_unary(r, x, v, mask, ref, critical=(0.0,) if op == "Mul" else ())
        if op == "Mul" and (b == 0.0 or (b == 0.5 and s != 1.0)):
            assert r.is_scaled_int  # 0 on the grid: x*x = s^2 * q'^2


# --------------------------------------------------------------------------
# constant operands (scalar and per-channel)
# --------------------------------------------------------------------------

CHANNEL_CONST = np.array([[2.0, -0.5, 0.3, 0.0, 3.0]], dtype=np.float32)  # shape (1, 5)
C = CHANNEL_CONST.shape[1]


def per_channel_points(scale, bias, fn):
    v = (scale * _Q + bias)[None, None, :]
    with np.errstate(all="ignore"):
        y = fn(v, CHANNEL_CONST.astype(np.float64)[..., None])
    return np.broadcast_to(y, (N, C, 16)), np.broadcast_to(_MASK[:, None, :], (N, C, 16))


CONST_OPS = [
    ("Add", False, np.add),
    ("Add", True, lambda v, c: c + v),
    ("Sub", False, np.subtract),
    ("Sub", True, lambda v, c: c - v),
    ("Mul", False, np.multiply),
    ("Mul", True, lambda v, c: c * v),
    ("Div", False, np.divide),
    ("Div", True, lambda v, c: c / v),
    ("Max", False, np.maximum),
    ("Min", True, lambda v, c: np.minimum(c, v)),
]


@pytest.mark.parametrize("op,const_first,ref", CONST_OPS, ids=[f"{o[0]}-{'cx' if o[1] else 'xc'}" for o in CONST_OPS])
def test_const_operand_exhaustive(op, const_first, ref):
    """Per-channel constant (including 0 and non-dyadic 0.3) on either side."""
    c = const(CHANNEL_CONST)
    for s, b in UNARY_GRIDS:
        x = intervals(s, b, shape=(N, 1))
        r = apply(op, [c, x] if const_first else [x, c], names=["c", "x"] if const_first else ["x", "c"])
        vals, mask = per_channel_points(s, b, lambda v, cc: ref(v, cc))
        tight_where = None
        if op == "Div":
            divisor_lo, divisor_hi = (x.lo, x.hi) if const_first else (c.lo, c.hi)
            tight_where = np.broadcast_to((divisor_lo > 0) | (divisor_hi < 0), (N, C))
        check(r, vals, mask, rtol=1e-15 if op == "Div" else 0.0, tight_where=tight_where)
        if op in ("Add", "Sub", "Mul"):
            assert r.is_scaled_int and r.exact
            assert np.all(r.scale != 0)  # a zero factor does not make a zero scale
        if op in ("Add", "Sub"):
            assert "c" in r.bias_sources
        if op == "Mul":
            assert "c" in r.scale_sources


def test_div_by_constant_keeps_grid():
    x = intervals(0.25, 0.125)
    r = apply("Div", [x, const(4.0)], names=["x", "c"])
    assert r.is_scaled_int and r.scale == 0.0625 and r.bias == 0.03125 and "c" in r.scale_sources and r.exact
    # 1/3 is rounded in float64: the real bounds still enclose the exact quotients
    r = apply("Div", [ScaledIntRange.scaled((), 1, 1, 1.0, 0.0), const(3.0)])
    assert r.lo <= 1 / 3 <= r.hi and r.lo < r.hi and r.is_scaled_int
    from fractions import Fraction

    assert Fraction(float(r.lo)) < Fraction(1, 3) < Fraction(float(r.hi))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_const_operand_real_input(op):
    """A dynamic operand without integer form (e.g. a float input)."""
    x = ScaledIntRange.real((1, 3), -2.0, [[1.0, 2.0, 3.0]])
    c = np.array([[0.5, -4.0, 3.0]], dtype=np.float32)
    r = apply(op, [x, const(c)])
    ref = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
    ends = ref(np.stack([np.full((1, 3), -2.0), [[1.0, 2.0, 3.0]]]), c.astype(np.float64))
    assert np.allclose(r.lo, ends.min(0), rtol=1e-15) and np.allclose(r.hi, ends.max(0), rtol=1e-15)
    assert np.all(r.lo <= ends.min(0)) and np.all(r.hi >= ends.max(0)) and not r.is_scaled_int


def test_clip_exhaustive():
    bounds = [(0.0, 1.0), (-0.25, 1.5), (-0.3, 0.7), (None, 0.5), (-1.0, None), (1.0, -1.0), (None, None)]
    for s, b in UNARY_GRIDS:
        v, mask = unary_points(s, b)
        x = intervals(s, b)
        for lo, hi in bounds:
            lo32, hi32 = (-np.inf if lo is None else f32(lo)), (np.inf if hi is None else f32(hi))
            ref = np.minimum(np.maximum(v, lo32), hi32)
            inputs = [x, None if lo is None else const(lo), None if hi is None else const(hi)]
            r = apply("Clip", inputs)
            check(r, ref, mask)
            attrs = {k: val for k, val in (("min", lo), ("max", hi)) if val is not None}
            r10 = apply("Clip", [x], attrs, opset=10)
            assert np.array_equal(r10.lo, r.lo) and np.array_equal(r10.hi, r.hi)
            grid = lambda c: c is None or ((float(np.float32(c)) - b) / s).is_integer()  # noqa: E731
            if grid(lo) and grid(hi):
                assert r.is_scaled_int and r.exact
            assert not r.scale_sources and not r.bias_sources


def test_max_min_nary():
    """Max/Min of two dynamic operands and a per-channel constant, every pair
    of 3-bit intervals (36 x 36) against brute force."""
    q = np.arange(-4, 4)
    a, b = np.array([(i, j) for i in q for j in q if i <= j]).T
    n = len(a)
    m = (q >= a[:, None]) & (q <= b[:, None])
    c = np.array([0.5, -1.0, 0.25], dtype=np.float32)
    x = ScaledIntRange.scaled((n, 1, 1), a.reshape(n, 1, 1), b.reshape(n, 1, 1), 0.25, 0.0)
    y = ScaledIntRange.scaled((1, n, 1), a.reshape(1, n, 1), b.reshape(1, n, 1), 0.25, 0.0)
    v = 0.25 * q
    mask = np.broadcast_to(m[:, None, None, :, None] & m[None, :, None, None, :], (n, n, 3, 8, 8)).reshape(n, n, 3, 64)
    for op, fn in (("Max", np.maximum), ("Min", np.minimum)):
        r = apply(op, [x, y, const(c)])
        assert r.is_scaled_int and not r.exact  # the constants lie on the grid of 0.25 ...
        vals = fn(fn(v[:, None], v[None, :])[None, :, :], c.astype(np.float64)[:, None, None])
        check(r, np.broadcast_to(vals.reshape(1, 1, 3, 64), (n, n, 3, 64)), mask)
    # ... 0.3 does not: with it alone the grid is lost
    r = apply("Max", [x, const(0.3)])
    assert not r.is_scaled_int and "integer grid" in r.notes[-1]


def test_batchnorm_exhaustive():
    gamma = np.array([1.5, -2.0, 0.0, 0.3], dtype=np.float32)
    beta = np.array([0.1, -0.25, 0.5, 0.0], dtype=np.float32)
    mean = np.array([0.5, -1.0, 0.0, 0.2], dtype=np.float32)
    var = np.array([1.0, 0.25, 2.0, 0.01], dtype=np.float32)
    eps = f32(1e-5)
    A = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    for s, b in UNARY_GRIDS:
        x = intervals(s, b, shape=(N, 1))
        r = apply("BatchNormalization", [x, const(gamma), const(beta), const(mean), const(var)], names=["x", "g", "b", "m", "v"], out_shape=(N, 4))
        v = (s * _Q + b)[None, None, :]
        vals = (v - mean[None, :, None]) * A[None, :, None] + beta[None, :, None]
        check(r, np.broadcast_to(vals, (N, 4, 16)), np.broadcast_to(_MASK[:, None, :], (N, 4, 16)), rtol=1e-14)
        assert r.is_scaled_int and r.scale_sources == {"g", "v"} and r.bias_sources == {"b", "m"}
        assert np.all(r.scale.reshape(-1)[[0, 3]] * s > 0) and r.scale.reshape(-1)[1] * s < 0


def test_batchnorm_errors():
    x = intervals(1.0, 0.0, (N, 1))
    params = [const(np.ones(2)), const(np.zeros(2)), const(np.zeros(2))]
    with pytest.raises(RuleError, match="not positive"):
        apply("BatchNormalization", [x, *params, const([-1.0, 1.0])], out_shape=(N, 2))
    with pytest.raises(RuleError, match="inference"):
        apply("BatchNormalization", [x, *params, const([1.0, 1.0])], {"training_mode": 1}, out_shape=(N, 2))
    with pytest.raises(RuleError, match="must be a constant"):
        apply("BatchNormalization", [x, ScaledIntRange.scaled((2,), 0, 1), *params[1:], const([1.0, 1.0])], out_shape=(N, 2))


# --------------------------------------------------------------------------
# unbounded inputs, provenance, errors
# --------------------------------------------------------------------------

_ALL_UNARY = sorted({u[0] for u in UNARY} | {"Log", "Sqrt"})


@pytest.mark.parametrize("op", _ALL_UNARY)
def test_unbounded_input_never_nan(op):
    for x in (ScaledIntRange.unbounded((3,)), ScaledIntRange.real((2,), [-np.inf, 1.0], [0.0, np.inf])):
        r = apply(op, [x])
        assert not np.isnan(r.lo).any() and not np.isnan(r.hi).any() and np.all(r.lo <= r.hi)
    r = apply(op, [ScaledIntRange.real((), -np.inf, -5.0)])  # below Log/Sqrt's domain: unbounded, still no NaN
    assert not np.isnan(r.lo) and not np.isnan(r.hi)


def test_saturating_codomains():
    x = ScaledIntRange.unbounded(())
    assert (apply("Sigmoid", [x]).lo, apply("Sigmoid", [x]).hi) == (0.0, 1.0)
    assert (apply("Tanh", [x]).lo, apply("Tanh", [x]).hi) == (-1.0, 1.0)
    assert (apply("Relu", [x]).lo, apply("Relu", [x]).hi) == (0.0, np.inf)
    assert apply("HardSwish", [x]).lo == pytest.approx(-0.375)


def test_dynamic_divisor_with_infinite_bounds():
    r = apply("Div", [ScaledIntRange.real((), -2.0, 3.0), ScaledIntRange.real((), 1.0, np.inf)])
    assert r.lo == -2.0 and r.hi == 3.0
    r = apply("Div", [ScaledIntRange.real((), 1.0, np.inf), ScaledIntRange.real((), 2.0, np.inf)])
    assert r.lo == 0.0 and r.hi == np.inf


def test_provenance():
    x = ScaledIntRange.scaled((1, 2), -4, 4, 0.5, 0.0, scale_sources=frozenset({"s"}))
    m = apply("Mul", [x, const([[2.0, 4.0]])], names=["x", "w"])
    assert m.scale_sources == {"s", "w"} and not m.bias_sources
    a = apply("Add", [m, const([[1.0, 2.0]])], names=["m", "d"])
    assert a.scale_sources == {"s", "w"} and a.bias_sources == {"d"}
    assert apply("Neg", [a]).scale_sources == {"s", "w"}
    for op in ("Relu", "Abs", "Clip", "Sigmoid", "Floor"):
        r = apply(op, [a])
        assert not r.scale_sources and not r.bias_sources, op


def test_celu_alpha_zero_is_an_error():
    with pytest.raises(RuleError, match="non-zero"):
        apply("Celu", [intervals(1.0, 0.0)], {"alpha": 0.0})


# --------------------------------------------------------------------------
# end to end on ONNX models
# --------------------------------------------------------------------------

RNG = np.random.default_rng(1234)


def _feed(shape, lo, hi, n_random=64):
    """Random rows plus rows at the extremes and at 0."""
    rows = [np.full(shape[1:], lo), np.full(shape[1:], hi), np.zeros(shape[1:])]
    rand = RNG.uniform(lo, hi, size=(shape[0] - len(rows),) + tuple(shape[1:]))
    return np.concatenate([np.stack(rows), rand]).astype(np.float32)


def _check_model(model, feed, spec, skip=()):
    """Every dynamic tensor but ``skip`` through the shared harness."""
    checked = check_ranges(model, spec, [feed], skip=skip)
    return checked.report, checked.runs[0]


def _inits(**kw):
    return {k: np.asarray(v, dtype=np.float32) for k, v in kw.items()}


def test_e2e_quant_mul_add_relu_quant():
    nodes = [
        quant_node("x", "s1", "z", "b4", "q1"),
        helper.make_node("Mul", ["q1", "c"], ["m"]),
        helper.make_node("Add", ["m", "d"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        quant_node("r", "s2", "z", "b4", "q2", signed=0),
    ]
    inits = _inits(s1=0.25, s2=0.5, z=0.0, b4=4.0, c=[[0.5, -1.0, 2.0, 0.25]], d=[[0.25, -0.5, 1.0, 0.125]])
    model = make_model(nodes, {"x": (67, 4)}, {"q2": (67, 4)}, inits)
    report, _ = _check_model(model, {"x": _feed((67, 4), -2.0, 2.0)}, (-2.0, 2.0))
    a, r = report["a"], report["r"]
    assert a.is_scaled_int and a.scale_sources >= {"c"} and a.bias_sources == {"d"}
    # bias/scale = 2 in every channel: Relu folds it and keeps the grid
    assert r.is_scaled_int and np.all(r.bias == 0) and not r.scale_sources
    assert report["q2"].is_scaled_int


def test_e2e_residual_add_scales_s_and_half_s():
    nodes = [
        quant_node("x", "sa", "z", "b4", "a"),
        quant_node("x", "sb", "z", "b4", "b"),
        helper.make_node("Add", ["a", "b"], ["y"]),
        helper.make_node("Sub", ["a", "b"], ["d"]),
    ]
    model = make_model(nodes, {"x": (67, 8)}, {"y": (67, 8), "d": (67, 8)}, _inits(sa=0.5, sb=0.25, z=0.0, b4=4.0))
    report, _ = _check_model(model, {"x": _feed((67, 8), -3.0, 3.0)}, (-3.0, 3.0))
    for name in ("y", "d"):
        assert report[name].is_scaled_int and np.all(np.abs(report[name].scale) == 0.25)


def test_e2e_batchnorm_negative_gamma():
    nodes = [
        quant_node("x", "s", "z", "b4", "q"),
        helper.make_node("BatchNormalization", ["q", "g", "beta", "mu", "var"], ["y"], epsilon=1e-3),
    ]
    inits = _inits(s=0.25, z=0.0, b4=4.0, g=[1.5, -2.0, 0.5], beta=[0.1, 0.2, -0.3], mu=[0.5, -0.25, 0.0], var=[1.0, 0.5, 4.0])
    model = make_model(nodes, {"x": (19, 3, 2, 2)}, {"y": (19, 3, 2, 2)}, inits)
    report, _ = _check_model(model, {"x": _feed((19, 3, 2, 2), -2.5, 2.5)}, (-2.5, 2.5))
    y = report["y"]
    assert y.is_scaled_int and y.per_channel("scale")[1] < 0 < y.per_channel("scale")[0]
    assert y.hi.reshape(-1)[1] == pytest.approx(-2.0 * (-2.0 + 0.25) / np.sqrt(0.5 + 1e-3) + 0.2, rel=1e-6)


def test_e2e_div_dynamic_divisor():
    """A divisor whose range excludes 0 gives finite bounds; one whose range
    contains 0 makes the model compute inf (or NaN for 0/0) on part of its
    input range, which the analysis reports as an error naming the node
    instead of a range that a later quantizer would clip to a finite one."""
    nodes = [
        quant_node("x", "s", "z", "b4", "a"),
        quant_node("y", "s", "z", "b3", "u", signed=0),
        helper.make_node("Add", ["u", "one"], ["pos"]),
        helper.make_node("Div", ["a", "pos"], ["safe"]),
    ]
    inits = _inits(s=0.5, z=0.0, b4=4.0, b3=3.0, one=1.0)
    model = make_model(nodes, {"x": (67, 4), "y": (67, 4)}, {"safe": (67, 4)}, inits)
    feed = {"x": _feed((67, 4), -3.0, 3.0), "y": _feed((67, 4), -2.0, 2.0)}
    report, _ = _check_model(model, feed, {"x": {"min": -3, "max": 3}, "y": {"min": -2, "max": 2}})
    safe = report["safe"]
    assert np.all(np.isfinite(safe.lo)) and np.all(np.isfinite(safe.hi))

    straddle = [quant_node("x", "s", "z", "b4", "a"), quant_node("y", "s", "z", "b4", "b"),
                helper.make_node("Div", ["a", "b"], ["straddle"], name="div_by_data"), quant_node("straddle", "s", "z", "b4", "q")]
    model = make_model(straddle, {"x": (67, 4), "y": (67, 4)}, {"q": (67, 4)}, inits)
    with pytest.raises(SiraError, match="node 'div_by_data' \\(Div\\): can produce an infinite value"):
        sira.analyze(model, {"x": {"min": -3, "max": 3}, "y": {"min": -2, "max": 2}})


@pytest.mark.parametrize("opset", [13, 10])
def test_e2e_clip_on_and_off_grid(opset):
    if opset >= 11:
        nodes = [helper.make_node("Clip", ["q", "lo1", "hi1"], ["on"]), helper.make_node("Clip", ["q", "lo2", "hi2"], ["off"])]
        extra = _inits(lo1=0.0, hi1=1.5, lo2=0.1, hi2=1.3)
    else:
        nodes = [helper.make_node("Clip", ["q"], ["on"], min=0.0, max=1.5), helper.make_node("Clip", ["q"], ["off"], min=0.1, max=1.3)]
        extra = {}
    nodes = [quant_node("x", "s", "z", "b4", "q")] + nodes
    model = make_model(nodes, {"x": (67, 4)}, {"on": (67, 4), "off": (67, 4)}, {**_inits(s=0.25, z=0.0, b4=4.0), **extra}, opset=opset)
    report, _ = _check_model(model, {"x": _feed((67, 4), -2.0, 2.0)}, (-2.0, 2.0))
    on, off = report["on"], report["off"]
    assert on.is_scaled_int and on.int_bounds() == (0, 6)
    assert not off.is_scaled_int and any("integer grid" in n for n in off.notes)
    assert off.lo.min() == np.float32(0.1) and off.hi.max() == np.float32(1.3)


@pytest.mark.parametrize("span", [30.0, 1e4])
def test_e2e_sigmoid_tanh_vs_onnxruntime(span):
    nodes = [helper.make_node("Sigmoid", ["x"], ["sg"]), helper.make_node("Tanh", ["x"], ["th"])]
    model = make_model(nodes, {"x": (1, 512)}, {"sg": (1, 512), "th": (1, 512)})
    x = np.concatenate([[-span, span, 0.0, -1e-8, 1e-8], RNG.normal(0, span / 4, 507).clip(-span, span)])
    report, values = _check_model(model, {"x": x.reshape(1, 512).astype(np.float32)}, (-span, span))
    # onnxruntime's float32 Sigmoid returns 0 at -30 (exact: 9.4e-14): the
    # containment check above allows float32 execution error, the bounds
    # themselves are the exact ones, within the codomains
    sg, th = report["sg"], report["th"]
    assert sg.lo.min() == pytest.approx(np.exp(-span) / (1 + np.exp(-span)), rel=1e-12, abs=1e-300) and sg.hi.max() <= 1.0
    assert th.lo.min() >= -1.0 and th.hi.max() <= 1.0


def test_bounds_of_different_compact_shapes():
    """A uniform lower and a per-channel upper bound (compact shapes (1, 1)
    and (1, 3)) go through every kind of rule without broadcasting errors."""
    x = ScaledIntRange.scaled((2, 3), -2, [[1, 2, 3]], 0.5, 0.0)
    assert x.int_lo.shape != x.int_hi.shape
    zero = apply("Mul", [x, const(0.0)], names=["x", "c"])
    assert zero.is_scaled_int and np.all(zero.lo == 0) and np.all(zero.hi == 0) and np.all(zero.scale != 0)
    for op, extra in (("Relu", []), ("Abs", []), ("Clip", [const(0.0), const(1.0)]), ("Max", [const(0.5)]), ("Sigmoid", []), ("Floor", [])):
        r = apply(op, [x, *extra])
        assert r.shape == (2, 3) and np.all(_full(r.hi, (2, 3))[0] >= _full(r.lo, (2, 3))[0]), op
    assert apply("Relu", [x]).int_hi.reshape(-1).tolist() == [1, 2, 3]

"""Rules for Softmax, LogSoftmax, TopK, ArgMax, ArgMin and Cast.

The first five compare or normalize along one axis, so they need the bounds
of every element along that axis; only that axis is broadcast to full
length, the others stay compact. Cast is a type conversion: a rounding map,
monotone, so still exact.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange, compact
from .registry import EXACT, RuleContext, rule

_EPS = np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny


def _axis(ctx: RuleContext, ndim: int, default: int) -> int:
    """The node's ``axis`` attribute, checked and made non-negative."""
    if ndim == 0:
        raise RuleError(f"{ctx.op_type} needs an input of rank >= 1")
    axis = int(ctx.attr("axis", default))
    if not -ndim <= axis < ndim:
        raise RuleError(f"axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim


def _full_along(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Broadcast a compact field to length ``n`` along ``axis`` only."""
    shape = list(a.shape)
    shape[axis] = n
    return np.broadcast_to(a, shape)


def _exclusive(t: np.ndarray, fn: np.ufunc, identity: float) -> tuple[np.ndarray, np.ndarray]:
    """For every i along the last axis, ``fn`` (np.add, np.maximum) over the
    j < i and over the j > i. Combining the two gives the reduction over all
    j != i without subtracting a term out again (no cancellation)."""
    ident = np.full_like(t[..., :1], identity)
    before = np.concatenate([ident, fn.accumulate(t, axis=-1)[..., :-1]], axis=-1)
    after = np.concatenate([fn.accumulate(t[..., ::-1], axis=-1)[..., ::-1][..., 1:], ident], axis=-1)
    return before, after


# --------------------------------------------------------------------------
# Softmax / LogSoftmax
# --------------------------------------------------------------------------


def _log_sum_exp_others(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log sum_{j != i} exp(v_j) for every i along the last axis, and a bound
    of its absolute error.

    Prefix and suffix log-sum-exp accumulations (np.logaddexp: stable for any
    spread, no overflow or underflow), combined, so that no term is ever
    subtracted out again. Each logaddexp is 1-Lipschitz in its arguments and
    adds an error of about eps/2*(|result| + 5); every result depends on
    n - 1 of them, so eps*n*(max|v| + log n + 5) bounds the error with a
    factor 2 to spare for the accuracy of exp and log1p."""
    n = v.shape[-1]
    before, after = _exclusive(v, np.logaddexp, -np.inf)
    with np.errstate(invalid="ignore"):
        lse = np.logaddexp(before, after)
    mag = np.max(np.where(np.isfinite(v), np.abs(v), 0.0), axis=-1, keepdims=True)
    return lse, _EPS * n * (mag + np.log(n) + 5.0)


def _softmax_logits(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward bounds (L_min, L_max) of L_i = log sum_{j != i} exp(x_j - x_i)
    along the last axis. Softmax is 1/(1 + e^L), decreasing in L; L is
    largest at x_i = lo_i with the others at hi, smallest the other way."""
    up, up_err = _log_sum_exp_others(hi)
    dn, dn_err = _log_sum_exp_others(lo)
    with np.errstate(invalid="ignore"):
        # no other term at all (n = 1, or all others always -inf): L = -inf
        l_max = np.where(up == -np.inf, -np.inf, up - lo)
        l_min = np.where(dn == -np.inf, -np.inf, dn - hi)
        # margins only where finite: an infinite L is exact (y is 0 or 1)
        # plus the rounding of the subtraction itself (half an ulp of its result)
        l_max = np.where(np.isfinite(l_max), l_max + up_err + _EPS * np.abs(l_max), l_max)
        l_min = np.where(np.isfinite(l_min), l_min - dn_err - _EPS * np.abs(l_min), l_min)
    return np.where(np.isnan(l_min), -np.inf, l_min), np.where(np.isnan(l_max), np.inf, l_max)


def _softmax_view(ctx: RuleContext, x: ScaledIntRange):
    """The softmax axes of ``x`` flattened into one last axis (opset < 13
    normalizes over all axes from ``axis`` on, later opsets over one axis).
    Returns (lo, hi, restore) with ``restore`` mapping a result back."""
    ndim = x.ndim
    if ctx.opset < 13:
        axis = _axis(ctx, ndim, 1)
        axes = list(range(axis, ndim))
    else:
        axes = [_axis(ctx, ndim, -1)]
    keep = [i for i in range(ndim) if i not in axes]
    common = [max(x.lo.shape[i], x.hi.shape[i]) if i in keep else x.shape[i] for i in range(ndim)]
    perm = keep + axes
    lead = [common[i] for i in keep]

    def to_view(a):
        return np.transpose(np.broadcast_to(a, common), perm).reshape(lead + [-1])

    def restore(a):
        full = a.reshape(lead + [x.shape[i] for i in axes])
        return compact(np.transpose(full, np.argsort(perm)), x.shape)

    return to_view(x.lo), to_view(x.hi), restore


@rule("Softmax", exactness=EXACT)
def softmax_rule(ctx: RuleContext):
    """Softmax: y_i = 1 / (1 + sum_{j != i} exp(x_j - x_i)).

    Exact up to outward rounding: y_i is increasing in x_i and decreasing in
    every other x_j, so its bounds are attained with x_i at one end of its
    range and the others at the opposite end. Computed with log-sum-exp
    stabilization and rigorous error margins; always within [0, 1]."""
    x = ctx.inp(0)
    lo, hi, restore = _softmax_view(ctx, x)
    l_min, l_max = _softmax_logits(lo, hi)
    sp_lo = np.logaddexp(0.0, l_max)  # softplus; y = exp(-softplus(L))
    sp_hi = np.logaddexp(0.0, l_min)
    # exp(-sp) is off by a few ulps plus the error of sp (a few ulps of sp);
    # an infinite L gives exactly 0 or 1
    with np.errstate(invalid="ignore"):
        y_lo = np.exp(-sp_lo) * (1.0 - 8.0 * _EPS * (sp_lo + 2.0)) - _TINY
        y_hi = np.exp(-sp_hi) * (1.0 + 8.0 * _EPS * (sp_hi + 2.0)) + _TINY
    y_lo = np.where(np.isfinite(l_max), np.clip(y_lo, 0.0, 1.0), np.where(l_max < 0, 1.0, 0.0))
    y_hi = np.where(np.isfinite(l_min), np.clip(y_hi, 0.0, 1.0), np.where(l_min < 0, 1.0, 0.0))
    return [ScaledIntRange.real(x.shape, restore(y_lo), restore(y_hi), exact=x.exact)]


@rule("LogSoftmax", exactness=EXACT)
def log_softmax_rule(ctx: RuleContext):
    """LogSoftmax: log y_i = -softplus(log sum_{j != i} exp(x_j - x_i)).

    Exact up to outward rounding, by the same monotonicity as Softmax;
    always <= 0."""
    x = ctx.inp(0)
    lo, hi, restore = _softmax_view(ctx, x)
    l_min, l_max = _softmax_logits(lo, hi)
    sp_lo = np.logaddexp(0.0, l_max)
    sp_hi = np.logaddexp(0.0, l_min)
    # an infinite L gives exactly 0 or -inf
    out_lo = np.where(np.isfinite(l_max), -(sp_lo * (1.0 + 8.0 * _EPS) + _TINY), -sp_lo)
    out_hi = np.where(np.isfinite(l_min), np.minimum(-(sp_hi * (1.0 - 8.0 * _EPS)) + _TINY, 0.0), -sp_hi)
    return [ScaledIntRange.real(x.shape, restore(out_lo), restore(out_hi), exact=x.exact)]


# --------------------------------------------------------------------------
# TopK
# --------------------------------------------------------------------------


def _order_stats(a: np.ndarray, axis: int, k: int, largest: bool) -> np.ndarray:
    """The first k order statistics of ``a`` along ``axis``, largest (or
    smallest) first. A field uniform along the axis stays uniform. Works on
    exact integer (object) arrays too."""
    n = a.shape[axis]
    if n == 1:
        return a
    picks = np.arange(n - 1, n - 1 - k, -1) if largest else np.arange(k)
    return np.take(np.sort(a, axis=axis), picks, axis=axis)


def _topk_values(x: ScaledIntRange, axis: int, k: int, largest: bool, ordered: bool, out_shape: tuple) -> ScaledIntRange:
    """Values output of TopK. The j-th largest (smallest) element is a
    monotone function of every input, so its bounds are the j-th order
    statistics of lo and of hi: exact when the output is sorted. Unsorted,
    each position holds one of the k, bounded by the hull of their bounds."""

    def stat(a: np.ndarray, is_lo: bool, big: bool = largest) -> np.ndarray:
        st = _order_stats(a, axis, k, big)
        if ordered or st.shape[axis] == 1:
            return st
        return np.min(st, axis=axis, keepdims=True) if is_lo else np.max(st, axis=axis, keepdims=True)

    lo, hi = stat(x.lo, True), stat(x.hi, False)
    exact = x.exact and ordered
    notes = x.notes if ordered else x.notes + ("TopK with sorted=0: each position bounded by the hull of the k values",)
    real = ScaledIntRange.real(out_shape, lo, hi, exact=exact, notes=notes)
    if not x.is_scaled_int:
        return real
    if x.scale.shape[axis] != 1 or x.bias.shape[axis] != 1:
        return real.with_note("scale or bias varies along the TopK axis: integer form dropped")

    def int_stat(q: np.ndarray, is_lo: bool) -> np.ndarray:
        same = stat(q, is_lo)
        if np.all(x.scale > 0):
            return same
        # with s < 0 the j-th largest real is s times the j-th smallest integer
        other = stat(q, is_lo, not largest)
        return other if np.all(x.scale < 0) else nx.as_int(np.where(x.scale > 0, same, other))

    return ScaledIntRange.scaled(
        out_shape,
        int_stat(x.int_lo, True),
        int_stat(x.int_hi, False),
        x.scale,
        x.bias,
        exact=exact,
        clamp_lo=lo,
        clamp_hi=hi,
        scale_sources=x.scale_sources,
        bias_sources=x.bias_sources,
        notes=notes,
    )


@rule("TopK", exactness=EXACT)
def topk_rule(ctx: RuleContext):
    """TopK: output 0 holds the values, output 1 the indices.

    Values: the order statistics of the bounds — exact when sorted=1 (the
    default), the hull of the k when sorted=0. Integer form kept when scale
    and bias are uniform along the axis. Indices: the integer range
    [0, n - 1] with scale 1, sound (the reference put this range on the
    values output, defect D1)."""
    x = ctx.inp(0)
    axis = _axis(ctx, x.ndim, -1)
    if ctx.opset < 10:
        k = ctx.attr("k", None)
        if k is None:
            raise RuleError("attribute k is missing; TopK before opset 10 takes k as an attribute")
    else:
        kv = np.asarray(ctx.const(1, "K (input 1)")).reshape(-1)
        if kv.size != 1:
            raise RuleError(f"K must hold one value, got {kv.size}")
        k = kv[0]
    k, n = int(k), x.shape[axis]
    if not 1 <= k <= n:
        raise RuleError(f"K={k} is outside [1, {n}] (the length of axis {axis})")
    shape = list(x.shape)
    shape[axis] = k
    out_shape = ctx.out_shape(0, fallback=shape)
    values = _topk_values(x, axis, k, bool(ctx.attr("largest", 1)), bool(ctx.attr("sorted", 1)), out_shape)
    indices = ScaledIntRange.scaled(ctx.out_shape(1, fallback=shape), 0, n - 1, 1.0, 0.0, exact=False)
    return [values, indices.with_note(f"TopK indices: any position along axis {axis}")]


# --------------------------------------------------------------------------
# ArgMax / ArgMin
# --------------------------------------------------------------------------


def _winner_range(lo: np.ndarray, hi: np.ndarray, axis: int, n: int, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest index that can be the argmax along ``axis``.

    With ties going to the first index, i can win iff hi_i > lo_j for every
    j < i and hi_i >= lo_j for every j > i: the witness x_i = hi_i, x_j = lo_j
    then makes i the argmax, and if the condition fails some j beats or ties
    x_i <= hi_i for every input. Ties to the last index: the mirror image."""
    lo_f = np.moveaxis(_full_along(lo, axis, n), axis, -1)
    hi_f = np.moveaxis(_full_along(hi, axis, n), axis, -1)
    if last:
        lo_f, hi_f = lo_f[..., ::-1], hi_f[..., ::-1]
    before, after = _exclusive(lo_f, np.maximum, -np.inf)
    can = (hi_f > before) & (hi_f >= after)
    first = np.argmax(can, axis=-1)
    final = n - 1 - np.argmax(can[..., ::-1], axis=-1)
    if last:
        first, final = n - 1 - final, n - 1 - first
    return np.expand_dims(first, axis), np.expand_dims(final, axis)


def _arg_extreme(ctx: RuleContext, largest: bool) -> list[ScaledIntRange]:
    x = ctx.inp(0)
    axis = _axis(ctx, x.ndim, 0)
    lo, hi = (x.lo, x.hi) if largest else (-x.hi, -x.lo)
    first, final = _winner_range(lo, hi, axis, x.shape[axis], bool(ctx.attr("select_last_index", 0)))
    shape = list(x.shape)
    shape[axis] = 1
    if not ctx.attr("keepdims", 1):
        del shape[axis]
        first, final = np.squeeze(first, axis=axis), np.squeeze(final, axis=axis)
    out_shape = ctx.out_shape(0, fallback=shape)
    return [ScaledIntRange.scaled(out_shape, first, final, 1.0, 0.0, exact=x.exact)]


@rule("ArgMax", exactness=EXACT)
def argmax_rule(ctx: RuleContext):
    """ArgMax: the integer range of the indices that can win, scale 1.

    Exact: both ends are attained (see :func:`_winner_range`); [0, n - 1]
    when the input ranges overlap enough."""
    return _arg_extreme(ctx, largest=True)


@rule("ArgMin", exactness=EXACT)
def argmin_rule(ctx: RuleContext):
    """ArgMin: ArgMax of the negated input. Exact."""
    return _arg_extreme(ctx, largest=False)


# --------------------------------------------------------------------------
# Cast
# --------------------------------------------------------------------------

_INT_TYPES = {
    TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.INT8: (-(2**7), 2**7 - 1),
    TensorProto.UINT16: (0, 2**16 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1),
    TensorProto.UINT32: (0, 2**32 - 1),
    TensorProto.INT32: (-(2**31), 2**31 - 1),
    TensorProto.UINT64: (0, 2**64 - 1),
    TensorProto.INT64: (-(2**63), 2**63 - 1),
    TensorProto.UINT4: (0, 15),
    TensorProto.INT4: (-8, 7),
}

#: float type -> (significand bits, numpy type used to round to it)
_FLOAT_TYPES = {
    TensorProto.FLOAT: (24, np.float32),
    TensorProto.DOUBLE: (53, np.float64),
    TensorProto.FLOAT16: (11, np.float16),
    TensorProto.BFLOAT16: (8, ml_dtypes.bfloat16),
}


#: relative distance between the exact values a range describes and their
#: float32 evaluation at run time that casts allow for (16 float32 ulps)
_RUNTIME_SLACK = 2.0**-20


def _monotone_bounds(x: ScaledIntRange, f) -> tuple[np.ndarray, np.ndarray, bool]:
    """A monotone map ``f`` applied to the bounds, widened first so that it
    also bounds float32 run-time values just beyond an exact bound (7*0.7f
    is 6.99999988 exactly but 7.0 in float32). Exact where the widening
    does not change the result."""
    wlo = nx.add_down(x.lo, -_RUNTIME_SLACK * np.abs(x.lo))
    whi = nx.add_up(x.hi, _RUNTIME_SLACK * np.abs(x.hi))
    with np.errstate(over="ignore"):
        lo, hi = f(wlo), f(whi)
        exact = x.exact and np.array_equal(lo, f(x.lo)) and np.array_equal(hi, f(x.hi))
    return lo, hi, exact


def _cast_int(x: ScaledIntRange, type_name: str, tmin: int, tmax: int) -> ScaledIntRange:
    """Float -> integer truncates toward zero, a monotone map, so the
    integer range is [trunc(lo), trunc(hi)]. Values outside the type's range
    convert to unspecified values: then the whole type range, loose."""
    lo, hi, exact = _monotone_bounds(x, np.trunc)
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and lo.min() >= tmin and hi.max() <= tmax:
        return ScaledIntRange.scaled(x.shape, nx.as_int(lo), nx.as_int(hi), 1.0, 0.0, exact=exact, notes=x.notes)
    return ScaledIntRange.scaled(x.shape, tmin, tmax, 1.0, 0.0, exact=False, notes=x.notes + (f"Cast to {type_name}: values may fall outside the type and convert to unspecified values",))


def _cast_bool(x: ScaledIntRange) -> ScaledIntRange:
    """x != 0 as {0, 1}. Exact unless 0 lies strictly inside the range
    (then it is not known that 0 is attained)."""
    can_be_zero = (x.lo <= 0) & (x.hi >= 0)
    can_be_nonzero = (x.lo != 0) | (x.hi != 0)
    exact = x.exact and not np.any((x.lo < 0) & (x.hi > 0))
    return ScaledIntRange.scaled(x.shape, np.where(can_be_zero, 0, 1), np.where(can_be_nonzero, 1, 0), 1.0, 0.0, exact=exact, notes=x.notes)


def _cast_float(x: ScaledIntRange, type_name: str, bits: int, np_type) -> ScaledIntRange:
    """Identity when the values fit the target: magnitudes up to 2**bits and
    either at least float32 precision (the analyzed tensors are float32) or
    an integer grid. Otherwise round-to-nearest, a monotone map applied to
    the bounds; the values leave the integer grid."""
    mag = float(max(np.max(np.abs(x.lo)), np.max(np.abs(x.hi))))
    integer_grid = x.is_scaled_int and nx.is_integral(x.scale) and nx.is_integral(x.bias)
    if mag <= 2.0**bits and (bits >= 24 or integer_grid):
        return x
    lo, hi, exact = _monotone_bounds(x, lambda a: a.astype(np_type).astype(np.float64))
    return ScaledIntRange.real(x.shape, lo, hi, exact=exact, notes=x.notes + (f"Cast to {type_name} rounds: integer form dropped",))


@rule("Cast", exactness=EXACT)
def cast_rule(ctx: RuleContext):
    """Cast: to integer types truncation toward zero, to bool x != 0, to
    float types round-to-nearest; all monotone, so exact (see the helpers
    for when the integer form survives)."""
    x = ctx.inp(0)
    to = int(ctx.attr("to", 0))
    name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
    if to == TensorProto.BOOL:
        return [_cast_bool(x)]
    if to in _INT_TYPES:
        return [_cast_int(x, name, *_INT_TYPES[to])]
    if to in _FLOAT_TYPES:
        return [_cast_float(x, name, *_FLOAT_TYPES[to])]
    if name.startswith("FLOAT"):
        return [ScaledIntRange.unbounded(x.shape, note=f"Cast to {name}: no rounding model for this type")]
    raise RuleError(f"Cast to {name} is not supported for range analysis")

"""Pooling and reduction rules: MaxPool, GlobalMaxPool, AveragePool,
GlobalAveragePool, ReduceSum, ReduceMean, ReduceMax, ReduceMin.

All of them are separable window reductions: an N-d pooling window is the
product of one 1-D window per pooled axis, and max, min and sum over a
product window can be taken one axis after the other. A whole-axis reduction
is one window covering the axis. Every rule is therefore built from
:class:`Windows` (the geometry of one axis) and three 1-D reductions on
compact arrays; an axis along which a field is uniform is never
materialized, so a per-channel input stays per-channel unless borders make
the result differ per position.

* Max/min: the real bounds are the window extremes of the input bounds
  (exact; MaxPool pads with -inf, so padded slots are ignored). The integer
  form survives when scale and bias are uniform within every window: the
  extreme of the reals is then scale times the extreme of the integers (the
  same extreme for a positive scale, the opposite one for a negative scale).
* Sum/mean: the real bounds are window sums of the bounds (divided by the
  divisor, axis by axis), rounded outward. The integer form is the exact
  integer window sum with scale s/n and bias (sum of the window's biases)/n
  — never a "mean of integers", which is no integer grid (the reference's
  defect D6). It needs the scale to be uniform within every window, or, for
  whole-axis reductions, every scale to be an integer multiple of the
  smallest. s/n and the bias are float64 roundings (exact when n is a power
  of two); the real bounds are computed independently of them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange, compact, integer_ratio
from .registry import EXACT, RuleContext, rule

# --------------------------------------------------------------------------
# window geometry
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Windows:
    """Geometry of a window reduction along one axis.

    ``index[o, j]`` is the input position read by slot ``j`` of output ``o``.
    Slots outside the input (padding, ceil-mode overhang) are False in
    ``valid`` and read a valid position of the same window instead, so
    extremes can be taken over all slots without masking. ``divisor[o]`` is
    what an average divides by.
    """

    index: np.ndarray
    valid: np.ndarray
    divisor: np.ndarray

    @classmethod
    def whole(cls, length: int) -> "Windows":
        """One window covering the whole axis (reductions, global pooling)."""
        return cls(np.arange(length)[None, :], np.ones((1, length), dtype=bool), np.array([length]))

    @classmethod
    def sliding(cls, length: int, out_len: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int, count_include_pad: bool) -> "Windows":
        """Windows of a pooling op; output ``o`` starts at ``o*stride - pad_begin``."""
        pos = np.arange(out_len)[:, None] * stride - pad_begin + np.arange(kernel)[None, :] * dilation
        valid = (pos >= 0) & (pos < length)
        if not np.all(valid.any(axis=1)):
            o = int(np.argmin(valid.any(axis=1)))
            raise RuleError(
                f"pooling window {o} of {out_len} along an axis of length {length} covers only padding "
                f"(kernel {kernel}, stride {stride}, dilation {dilation}, pads {pad_begin}/{pad_end}): either the pads are too "
                "large for the kernel, or (ceil_mode=1) the inferred output shape counts a last window that starts in the "
                "end padding, which onnxruntime drops; reduce the pads or fix the output shape"
            )
        first = pos[np.arange(out_len), np.argmax(valid, axis=1)]
        in_padded = (pos >= -pad_begin) & (pos < length + pad_end)
        divisor = (in_padded if count_include_pad else valid).sum(axis=1)
        return cls(np.where(valid, pos, first[:, None]), valid, divisor)

    @property
    def count(self) -> np.ndarray:
        """Number of input elements (not padding) in each window."""
        return self.valid.sum(axis=1)

    @property
    def out_len(self) -> int:
        return self.index.shape[0]

    @property
    def is_whole(self) -> bool:
        """One window reading every position of the axis once."""
        return self.out_len == 1 and np.array_equal(np.sort(self.index[0]), np.arange(self.index.shape[1])) and bool(self.valid.all())


def _on_axis(v: np.ndarray, ndim: int, ax: int) -> np.ndarray:
    """A 1-D per-output vector laid along ``ax`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[ax] = v.shape[0]
    return v.reshape(shape)


def _slots_valid(w: Windows, ndim: int, ax: int) -> np.ndarray:
    """``w.valid`` laid along (ax, ax+1) of a gathered array."""
    shape = [1] * (ndim + 1)
    shape[ax], shape[ax + 1] = w.valid.shape
    return w.valid.reshape(shape)


# --------------------------------------------------------------------------
# 1-D reductions on compact arrays (a.shape[ax] is 1 or the axis length)
# --------------------------------------------------------------------------


def _win_extreme(a: np.ndarray, w: Windows, ax: int, largest: bool) -> np.ndarray:
    """Window max (or min) along ``ax``. Exact for any dtype."""
    if a.shape[ax] == 1:
        return a
    g = np.take(a, w.index, axis=ax)
    return np.max(g, axis=ax + 1) if largest else np.min(g, axis=ax + 1)


def _win_int_sum(q: np.ndarray, w: Windows, ax: int) -> np.ndarray:
    """Exact integer window sum along ``ax`` (padding contributes nothing)."""
    if q.shape[ax] == 1:
        return nx.int_mul(q, _on_axis(w.count, q.ndim, ax))
    g = np.where(_slots_valid(w, q.ndim, ax), np.take(q, w.index, axis=ax), 0)
    return nx.int_sum(g, axis=ax + 1)


_ROUNDED = {
    -1: (nx.mul_down, nx.div_down, nx.sum_down),
    0: (np.multiply, np.divide, np.sum),
    +1: (nx.mul_up, nx.div_up, nx.sum_up),
}


def _win_float_sum(a: np.ndarray, w: Windows, ax: int, direction: int, average: bool) -> np.ndarray:
    """Window sum (or mean, with ``w.divisor``) of a float field along
    ``ax``, rounded down, to nearest or up (``direction`` -1, 0, +1); padding
    contributes 0. The mean of a field that is uniform along the axis is the
    field itself wherever no padding is counted: it stays uniform, unrounded."""
    mul, div, total_of = _ROUNDED[direction]
    count = _on_axis(w.count.astype(np.float64), a.ndim, ax)
    divisor = _on_axis(w.divisor.astype(np.float64), a.ndim, ax)
    if a.shape[ax] == 1:
        total = mul(a, count)
        if not average:
            return total
        if np.all(count == divisor):
            return a
        return np.where(count == divisor, a, div(total, divisor))
    g = np.where(_slots_valid(w, a.ndim, ax), np.take(a, w.index, axis=ax), 0.0)
    total = total_of(g, axis=ax + 1)
    return div(total, divisor) if average else total


Reducer = Callable[[np.ndarray, Windows, int], np.ndarray]


def _apply(a: np.ndarray, wins: dict[int, Windows], fn: Reducer) -> np.ndarray:
    """Reduce ``a`` axis by axis with ``fn``."""
    for ax, w in wins.items():
        a = fn(a, w, ax)
    return a


def _uniform_in_windows(a: np.ndarray, wins: dict[int, Windows]) -> bool:
    """True when the field takes one value within every window."""
    hi = _apply(a, wins, lambda v, w, ax: _win_extreme(v, w, ax, True))
    lo = _apply(a, wins, lambda v, w, ax: _win_extreme(v, w, ax, False))
    return bool(np.all(hi == lo))


def _divisor(wins: dict[int, Windows], ndim: int) -> np.ndarray:
    """Product of the per-axis divisors, as a compact float array."""
    d = np.ones((1,) * ndim, dtype=np.float64)
    for ax, w in wins.items():
        d = d * _on_axis(w.divisor.astype(np.float64), ndim, ax)
    return d


# --------------------------------------------------------------------------
# the two reductions on ranges
# --------------------------------------------------------------------------


def window_extreme(x: ScaledIntRange, wins: dict[int, Windows], out_shape, largest: bool) -> ScaledIntRange:
    """Window max (``largest``) or min of ``x``. Exact.

    The integer form is kept when scale and bias are uniform within every
    window: max(s*q + b) is s*max(q) + b for s > 0 and s*min(q) + b for s < 0,
    chosen per element."""
    lo = compact(_apply(x.lo, wins, lambda a, w, ax: _win_extreme(a, w, ax, largest)), out_shape)
    hi = compact(_apply(x.hi, wins, lambda a, w, ax: _win_extreme(a, w, ax, largest)), out_shape)
    if not x.is_scaled_int:
        return ScaledIntRange.derived(out_shape, lo, hi, (x,))
    if not (_uniform_in_windows(x.scale, wins) and _uniform_in_windows(x.bias, wins)):
        return ScaledIntRange.derived(out_shape, lo, hi, (x,), notes=("scale or bias differs within a pooling window: integer form dropped",))
    scale = _apply(x.scale, wins, lambda a, w, ax: _win_extreme(a, w, ax, True))
    bias = _apply(x.bias, wins, lambda a, w, ax: _win_extreme(a, w, ax, True))

    def int_extreme(q: np.ndarray) -> np.ndarray:
        same = _apply(q, wins, lambda a, w, ax: _win_extreme(a, w, ax, largest))
        if np.all(scale > 0):
            return same
        other = _apply(q, wins, lambda a, w, ax: _win_extreme(a, w, ax, not largest))
        if np.all(scale < 0):
            return other
        return nx.as_int(np.where(scale > 0, same, other))

    grid = (
        compact(int_extreme(x.int_lo), out_shape),
        compact(int_extreme(x.int_hi), out_shape),
        compact(scale, out_shape),
        compact(bias, out_shape),
    )
    return ScaledIntRange.derived(out_shape, lo, hi, (x,), grid)


def window_sum(x: ScaledIntRange, wins: dict[int, Windows], out_shape, average: bool = False) -> ScaledIntRange:
    """Window sum of ``x``, or its mean (``average``: divided by the windows'
    divisors n). Exact up to outward rounding of the real bounds, which are
    averaged axis by axis (the divisor of a product window is the product of
    the per-axis divisors).

    Integer form: q = the exact window sum of the integers, scale s/n, bias
    (window sum of the biases)/n; kept when the scale is uniform within every
    window, or for whole-axis sums when all scales are integer multiples of
    the smallest."""
    lo = _apply(x.lo, wins, lambda a, w, ax: _win_float_sum(a, w, ax, -1, average))
    hi = _apply(x.hi, wins, lambda a, w, ax: _win_float_sum(a, w, ax, +1, average))
    real = ScaledIntRange.real(out_shape, compact(lo, out_shape), compact(hi, out_shape), exact=x.exact, notes=x.notes)
    if not x.is_scaled_int:
        return real
    if _uniform_in_windows(x.scale, wins):
        qlo, qhi = x.int_lo, x.int_hi
        scale = _apply(x.scale, wins, lambda a, w, ax: _win_extreme(a, w, ax, True))
    else:
        common = _common_unit(x, wins)
        if common is None:
            return real.with_note("scales within a summation window are no integer multiples of one unit: integer form dropped")
        qlo, qhi, scale = common
    bias = _apply(x.bias, wins, lambda a, w, ax: _win_float_sum(a, w, ax, 0, average))
    if average:
        scale = scale / _divisor(wins, x.ndim)
    r = ScaledIntRange.scaled(
        out_shape,
        compact(_apply(qlo, wins, _win_int_sum), out_shape),
        compact(_apply(qhi, wins, _win_int_sum), out_shape),
        compact(scale, out_shape),
        compact(bias, out_shape),
        exact=x.exact,
        scale_sources=x.scale_sources,
        bias_sources=x.bias_sources,
        notes=x.notes,
    )
    # the sound bounds, not those of the rounded scale s/n
    return r.with_bounds(real.lo, real.hi)


def _common_unit(x: ScaledIntRange, wins: dict[int, Windows]):
    """Integer form of a whole-axis sum whose scale varies along a reduced
    axis (per-channel scales summed over channels, say): s_i*q_i = t*(k_i*q_i)
    with t the smallest |scale| over the reduced axes and k_i = s_i/t, when
    every k_i is an exact integer (power-of-two ratios, for instance).
    Returns the bounds of k*q and t, or None."""
    if not all(w.is_whole for w in wins.values()):
        return None
    t = np.min(np.abs(x.scale), axis=tuple(wins), keepdims=True)
    k = integer_ratio(x.scale, t)
    if k is None:
        return None
    qlo, qhi = nx.int_range_product(k, k, x.int_lo, x.int_hi)
    return qlo, qhi, t


# --------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------


def _ints_attr(ctx: RuleContext, name: str, n: int, default: int, minimum: int) -> list[int]:
    v = ctx.attr(name, None)
    if v is None:
        return [default] * n
    v = [int(i) for i in v]
    if len(v) != n:
        raise RuleError(f"attribute {name} has {len(v)} values; expected {n} for this input's spatial axes")
    if any(i < minimum for i in v):
        raise RuleError(f"attribute {name}={v} has a value below {minimum}")
    return v


def _pool_geometry(ctx: RuleContext, in_shape: tuple, count_include_pad: bool = False) -> tuple[dict[int, Windows], tuple]:
    """Per spatial axis the windows of a MaxPool/AveragePool node, and its
    output shape (the inferred one, else computed as ONNX specifies)."""
    if len(in_shape) < 3:
        raise RuleError(f"input has shape {list(in_shape)}; pooling needs (N, C, spatial...) with at least one spatial axis")
    kernel = ctx.attr("kernel_shape", None)
    if not kernel:
        raise RuleError("attribute kernel_shape is missing; it is required (e.g. kernel_shape=[2, 2] for a 2x2 window)")
    nsp = len(in_shape) - 2
    kernel = _ints_attr(ctx, "kernel_shape", nsp, 1, 1)
    strides = _ints_attr(ctx, "strides", nsp, 1, 1)
    dilations = _ints_attr(ctx, "dilations", nsp, 1, 1)
    pads = _ints_attr(ctx, "pads", 2 * nsp, 0, 0)
    auto_pad = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise RuleError(f"auto_pad={auto_pad!r} is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    geometry = []
    for i in range(nsp):
        length, k, s, d = in_shape[2 + i], kernel[i], strides[i], dilations[i]
        extent = (k - 1) * d + 1
        if auto_pad.startswith("SAME"):
            out = -(-length // s)
            total = max((out - 1) * s + extent - length, 0)
            pb = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            pe = total - pb
        else:
            pb, pe = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + nsp])
            span = length + pb + pe - extent
            if span < 0:
                raise RuleError(f"kernel extent {extent} exceeds the padded input length {length + pb + pe} on spatial axis {i}")
            out = (-(-span // s) if ceil_mode else span // s) + 1
            if ceil_mode and (out - 1) * s >= length + pb:
                out -= 1  # the last window may not start in the end padding
        geometry.append((length, k, s, d, pb, pe, out))
    out_shape = ctx.out_shape(0, fallback=tuple(in_shape[:2]) + tuple(g[-1] for g in geometry))
    wins = {
        2 + i: Windows.sliding(length, out_shape[2 + i], k, s, d, pb, pe, count_include_pad)
        for i, (length, k, s, d, pb, pe, _) in enumerate(geometry)
    }
    return wins, out_shape


def _global_geometry(in_shape: tuple) -> tuple[dict[int, Windows], tuple]:
    if len(in_shape) < 3:
        raise RuleError(f"input has shape {list(in_shape)}; global pooling needs (N, C, spatial...)")
    wins = {ax: Windows.whole(in_shape[ax]) for ax in range(2, len(in_shape))}
    return wins, tuple(in_shape[:2]) + (1,) * (len(in_shape) - 2)


def _reduce_axes(ctx: RuleContext, ndim: int) -> Optional[list[int]]:
    """Reduced axes of a Reduce* node (from input 1 or the ``axes``
    attribute, by opset); None for a no-op (empty axes with
    noop_with_empty_axes=1)."""
    if ctx.has_input(1):
        axes = [int(a) for a in np.asarray(ctx.const(1, "axes (input 1)")).reshape(-1)]
    else:
        axes = [int(a) for a in (ctx.attr("axes", None) or [])]
    if not axes:
        return None if ctx.attr("noop_with_empty_axes", 0) else list(range(ndim))
    if any(not -ndim <= a < ndim for a in axes):
        raise RuleError(f"axes {axes} out of range for a tensor of rank {ndim}")
    norm = sorted({a % ndim for a in axes})
    if len(norm) != len(axes):
        raise RuleError(f"axes {axes} name an axis twice")
    return norm


def _squeeze(r: ScaledIntRange, axes: list[int], out_shape: tuple) -> ScaledIntRange:
    """Drop reduced axes (length 1 in every compact field): keepdims=0."""
    def sq(a):
        return None if a is None else np.squeeze(a, axis=tuple(axes))

    return r.replace(shape=tuple(out_shape), lo=sq(r.lo), hi=sq(r.hi), int_lo=sq(r.int_lo), int_hi=sq(r.int_hi), scale=sq(r.scale), bias=sq(r.bias))


def _reduce(ctx: RuleContext, combine: Callable[[ScaledIntRange, dict, tuple], ScaledIntRange]) -> list[ScaledIntRange]:
    """Shared body of the Reduce* rules: axes, keepdims, no-op."""
    x = ctx.inp(0)
    axes = _reduce_axes(ctx, x.ndim)
    if axes is None:
        return [x]
    wins = {ax: Windows.whole(x.shape[ax]) for ax in axes}
    kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    r = combine(x, wins, kept)
    if ctx.attr("keepdims", 1):
        return [r]
    return [_squeeze(r, axes, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


# --------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------


@rule("MaxPool", exactness=EXACT)
def max_pool_rule(ctx: RuleContext):
    """MaxPool: window max of the bounds (padding is -inf, i.e. ignored).

    Exact. Integer form kept when scale and bias are uniform within every
    window (per-tensor or per-channel), any scale sign. The optional Indices
    output gets the sound integer range [0, numel - 1] (flat positions in the
    input), not tight."""
    x = ctx.inp(0)
    wins, out_shape = _pool_geometry(ctx, x.shape)
    outs = [window_extreme(x, wins, out_shape, largest=True)]
    if len(ctx.node.output) > 1:
        numel = math.prod(x.shape)
        idx = ScaledIntRange.scaled(ctx.out_shape(1, fallback=out_shape), 0, max(numel - 1, 0), 1.0, 0.0, exact=False)
        outs.append(idx.with_note("MaxPool indices: any flat position of the input"))
    return outs


@rule("GlobalMaxPool", exactness=EXACT)
def global_max_pool_rule(ctx: RuleContext):
    """GlobalMaxPool: max over all spatial positions. Exact (see MaxPool)."""
    x = ctx.inp(0)
    wins, out_shape = _global_geometry(x.shape)
    return [window_extreme(x, wins, out_shape, largest=True)]


@rule("AveragePool", exactness=EXACT)
def average_pool_rule(ctx: RuleContext):
    """AveragePool: window mean of the bounds, padding counted as zeros when
    count_include_pad=1 and left out of the divisor otherwise.

    Exact up to outward rounding. Integer form: the exact integer window sum
    with scale s/n and bias (window sum of biases)/n, n the divisor. n only
    varies at borders with count_include_pad=0 (or ceil-mode overhang), and
    only there does the scale vary per position."""
    x = ctx.inp(0)
    include_pad = bool(ctx.attr("count_include_pad", 0))
    wins, out_shape = _pool_geometry(ctx, x.shape, count_include_pad=include_pad)
    return [window_sum(x, wins, out_shape, average=True)]


@rule("GlobalAveragePool", exactness=EXACT)
def global_average_pool_rule(ctx: RuleContext):
    """GlobalAveragePool: mean over all spatial positions. Exact up to
    outward rounding; integer form = integer sum, scale s/(H*W...)."""
    x = ctx.inp(0)
    wins, out_shape = _global_geometry(x.shape)
    return [window_sum(x, wins, out_shape, average=True)]


@rule("ReduceSum", exactness=EXACT)
def reduce_sum_rule(ctx: RuleContext):
    """ReduceSum: exact integer sum with the same scale, biases summed.
    Real bounds exact up to outward rounding."""
    return _reduce(ctx, lambda x, wins, shape: window_sum(x, wins, shape))


@rule("ReduceMean", exactness=EXACT)
def reduce_mean_rule(ctx: RuleContext):
    """ReduceMean: ReduceSum with scale and bias divided by the count.
    Exact up to outward rounding."""
    return _reduce(ctx, lambda x, wins, shape: window_sum(x, wins, shape, average=True))


@rule("ReduceMax", exactness=EXACT)
def reduce_max_rule(ctx: RuleContext):
    """ReduceMax: max of the bounds over the reduced axes. Exact."""
    return _reduce(ctx, lambda x, wins, shape: window_extreme(x, wins, shape, largest=True))


@rule("ReduceMin", exactness=EXACT)
def reduce_min_rule(ctx: RuleContext):
    """ReduceMin: min of the bounds over the reduced axes. Exact."""
    return _reduce(ctx, lambda x, wins, shape: window_extreme(x, wins, shape, largest=False))

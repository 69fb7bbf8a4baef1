"""Float64 kernels for verification: the ops that dominate the execution of
a quantized network, written as whole-array numpy so that every sample of a
batch goes through one BLAS call per layer.

* Convolution is an im2col (a strided view of the padded input, copied once
  into a matrix) times the weight matrix; the groups of a grouped or
  depthwise convolution are the batch axis of one ``matmul``.
* Products of integer-valued operands are exact: in float64 whenever every
  partial sum stays below 2**53 (checked from the operands' magnitudes),
  otherwise recomputed in int64. A convolution of integers whose partial
  sums stay below 2**24 (an integer accumulator of a rewritten model) copies
  and multiplies float32, which is as exact there and half the bytes.
* The quantizers follow qonnx's formulas operation for operation (divide,
  add the zero point, clip, round with the node's mode, subtract, multiply),
  so they produce the same float64 values qonnx's functions compute.
* MultiThreshold counts the thresholds at or below each value: by one
  whole-array comparison per threshold when there are few, by numpy's
  binary search over each channel's sorted thresholds when there are many.

Every kernel takes and returns arrays; :mod:`sira.execute` binds them to
nodes.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: below this bound on |sum of products| float64 sums of integers are exact
EXACT_FLOAT_SUM = 2.0**53
#: below this bound on |sum of products| float32 sums of integers are exact
EXACT_FLOAT32_SUM = 2.0**24
#: below this bound an int64 accumulation cannot overflow
EXACT_INT64_SUM = 2.0**62


# --------------------------------------------------------------------------
# products
# --------------------------------------------------------------------------


def _absmax(a: np.ndarray) -> float:
    return float(max(a.max(initial=0.0), -a.min(initial=0.0))) if a.size else 0.0


def _integer_valued(a: np.ndarray) -> bool:
    return bool(np.all(a == np.rint(a)))


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` (numpy / ONNX MatMul semantics) through BLAS in float64."""
    bound = _absmax(a) * _absmax(np.sum(np.abs(b), axis=-2 if b.ndim > 1 else 0))
    return _exact(np.matmul(a, b), a, b, bound)


def _exact(y: np.ndarray, a: np.ndarray, b: np.ndarray, bound: float) -> np.ndarray:
    """``y = a @ b`` as BLAS computed it, or recomputed in int64 when both
    operands hold integers and ``bound`` (on the sum of |products| of any
    output) reaches 2**53, where float64 stops counting exactly: integer
    results never depend on the summation order."""
    if bound < EXACT_FLOAT_SUM or not bound < EXACT_INT64_SUM or not (_integer_valued(a) and _integer_valued(b)):
        return y
    return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(np.float64)


def gemm(a, b, c, alpha: float, beta: float, trans_a: bool, trans_b: bool) -> np.ndarray:
    """ONNX Gemm: ``alpha * A' @ B' + beta * C``."""
    y = dot(a.T if trans_a else a, b.T if trans_b else b)
    if alpha != 1.0:
        y = alpha * y
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else beta * c)
    return y


#: output positions per sample from which a convolution multiplies each
#: sample's im2col matrix on its own (the products come out in the output's
#: order, and a 1x1 kernel needs no copy); below it, one product for the
#: whole batch (BLAS is slow on narrow matrices)
PER_SAMPLE_POSITIONS = 256


def conv(x, w, bias, strides, dilations, pads, group: int) -> np.ndarray:
    """ONNX Conv (any number of spatial axes): the weights times the im2col
    matrix of the samples, the groups batched in one ``matmul``.

    ``pads`` is one (before, after) pair per spatial axis. The im2col matrix
    has one column per output position (Caffe's layout), so its copy reads
    the input row by row."""
    n, c = x.shape[:2]
    kernel = w.shape[2:]
    nsp = len(kernel)
    bound_x = _absmax(x)
    cg, og = c // group, w.shape[0] // group
    wmat = w.reshape(group, og, -1)
    bound = _absmax(np.sum(np.abs(wmat), axis=-1)) * bound_x
    if bound < EXACT_FLOAT32_SUM and _integer_valued(wmat) and _integer_valued(x):
        x, wmat = x.astype(np.float32), wmat.astype(np.float32)  # exact: half the bytes to copy and multiply
    if any(p for pair in pads for p in pair):
        x = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads])
    extents = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    windows = sliding_window_view(x, extents, axis=tuple(range(2, 2 + nsp)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(slice(None, None, d) for d in dilations)]
    out_sp = windows.shape[2 : 2 + nsp]
    grouped = windows.reshape((n, group, cg) + out_sp + tuple(kernel))
    out_axes, kernel_axes = tuple(range(3, 3 + nsp)), tuple(range(3 + nsp, 3 + 2 * nsp))
    if math.prod(out_sp) >= PER_SAMPLE_POSITIONS:
        # (n, G, Cg, *out, *kernel) -> (n, G, Cg, *kernel, *out) -> (n, G, Cg*kernel, out): one copy (none
        # for a 1x1 kernel at stride 1), one product per sample, already in the output's order
        cols = grouped.transpose((0, 1, 2) + kernel_axes + out_axes).reshape(n, group, cg * math.prod(kernel), -1)
        y = _exact(np.matmul(wmat, cols), wmat, cols, bound)  # (n, G, Og, out)
        y = y.astype(np.float64, copy=False).reshape((n, group * og) + out_sp)
    else:
        # (n, G, Cg, *out, *kernel) -> (G, Cg, *kernel, n, *out) -> (G, Cg*kernel, n*out): one copy, one product
        cols = grouped.transpose((1, 2) + kernel_axes + (0,) + out_axes).reshape(group, cg * math.prod(kernel), -1)
        y = _exact(np.matmul(wmat, cols), wmat, cols, bound)  # (G, Og, n*out)
        y = y.reshape((group, og, n) + out_sp).transpose((2, 0, 1) + out_axes)
        y = np.ascontiguousarray(y, dtype=np.float64).reshape((n, group * og) + out_sp)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * nsp)
    return y


# --------------------------------------------------------------------------
# quantizers (qonnx's formulas)
# --------------------------------------------------------------------------


def _round_up(y):
    return np.sign(y) * np.ceil(np.abs(y))


def _round_half_up(y):
    return np.sign(y) * np.floor(np.abs(y) + 0.5)


def _round_half_down(y):
    return np.sign(y) * np.ceil(np.abs(y) - 0.5)


#: qonnx's rounding modes with its float formulas (HALF_UP adds 0.5 to |y|
#: in float64, as qonnx does); ROUND is numpy's half-to-even ``round``
ROUNDERS = {
    "ROUND": np.rint,
    "HALF_EVEN": np.rint,
    "CEIL": np.ceil,
    "FLOOR": np.floor,
    "UP": _round_up,
    "DOWN": np.trunc,
    "HALF_UP": _round_half_up,
    "HALF_DOWN": _round_half_down,
}


def rounder(mode: str):
    """The rounding function of a QONNX rounding mode (case-insensitive)."""
    try:
        return ROUNDERS[mode.upper()]
    except KeyError:
        raise ValueError(f"unknown rounding mode {mode!r}; expected one of {', '.join(ROUNDERS)}") from None


def int_limits(signed, narrow, bits):
    """qonnx's min_int / max_int, computed in the bit width's own type (a
    float64 array here) as qonnx computes them."""
    lo = -(2 ** (bits - 1)) + 1 if signed and narrow else -(2 ** (bits - 1)) if signed else 0 * bits
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 2 if narrow else 2**bits - 1
    return lo, hi


def _inplace(op, y, v):
    """``op(y, v)``, written into ``y`` when the result has ``y``'s shape
    (the same values, one array less)."""
    if isinstance(y, np.ndarray) and y.ndim and np.broadcast_shapes(y.shape, np.shape(v)) == y.shape:
        return op(y, v, out=y)
    return op(y, v)


def _clip_like_qonnx(y, lo, hi) -> np.ndarray:
    """qonnx's ``where(y > hi, hi, y)`` then ``where(y < lo, lo, y)``, in
    place (NaN stays NaN, every other element keeps its own bits)."""
    shape = np.broadcast_shapes(np.shape(y), np.shape(lo), np.shape(hi))
    if not isinstance(y, np.ndarray) or y.shape != shape:
        y = np.array(np.broadcast_to(y, shape))
    np.copyto(y, hi, where=y > hi)
    np.copyto(y, lo, where=y < lo)
    return y


def int_quant(x, scale, zeropt, bits, signed: bool, narrow: bool, rounding_mode: str) -> np.ndarray:
    """QONNX Quant / IntQuant: ``(R(clip(x / s + z)) - z) * s``, 1-bit signed
    being the sign (>= 0 -> +1)."""
    y = _inplace(np.add, np.divide(x, scale), zeropt)
    if bits == 1 and signed:
        y = np.where(y >= 0.0, 1.0, -1.0)
    else:
        y = rounder(rounding_mode)(_clip_like_qonnx(y, *int_limits(signed, narrow, bits)))
    return _inplace(np.multiply, _inplace(np.subtract, y, zeropt), scale)


def bipolar_quant(x, scale) -> np.ndarray:
    """QONNX BipolarQuant: ``sign(x) * s`` with sign(0) = +1."""
    return np.where(x >= 0.0, 1.0, -1.0) * scale


def trunc_v1(x, scale, zeropt, in_bits, out_bits, rounding_mode: str) -> np.ndarray:
    """QONNX Trunc (version 1): drop ``in_bits - out_bits`` low bits."""
    y = np.round(x / scale + zeropt)
    y = rounder(rounding_mode)(y / 2.0 ** (in_bits - out_bits))
    return (y - zeropt) * scale


def trunc_v2(x, scale, zeropt, out_scale, out_bits, signed: bool, narrow: bool, rounding_mode: str) -> np.ndarray:
    """QONNX Trunc (version 2): rescale by the power of two nearest to
    ``out_scale / scale``, clip to the output width, round."""
    y = np.round(x / scale + zeropt)
    t = 2 ** np.round(np.log2(out_scale / scale))
    y = y / t
    lo, hi = int_limits(signed, narrow, out_bits)
    y = np.where(y > hi, hi, y)
    y = np.where(y < lo, lo, y)
    y = rounder(rounding_mode)(y)
    return (y - zeropt / t) * out_scale


def multithreshold_channel_axis(data_layout: str, ndim: int) -> int:
    """The channel axis qonnx's MultiThreshold uses: from ``data_layout``,
    else guessed from the rank (NC, NWC, NCHW), else 1."""
    if not data_layout and ndim < 5:
        data_layout = {2: "NC", 3: "NWC", 4: "NCHW"}.get(ndim, "")
    return data_layout.index("C") if "C" in data_layout else 1


def _count_sorted(x: np.ndarray, thresholds: np.ndarray, axis: int) -> np.ndarray:
    """#{t : x >= T[c, t]} for thresholds sorted along t: numpy's binary
    search, one call per channel (a NaN counts no threshold, as x >= t is
    false for it)."""
    count = np.empty(x.shape)
    if thresholds.shape[0] == 1:
        count[...] = np.searchsorted(thresholds[0], x, side="right")
    else:
        moved, out = np.moveaxis(x, axis, 0), np.moveaxis(count, axis, 0)
        for c in range(moved.shape[0]):
            out[c] = np.searchsorted(thresholds[c], moved[c], side="right")
    count[np.isnan(x)] = 0
    return count


#: elements of a MultiThreshold input compared with every threshold before
#: the next: a block that stays in the core's cache across the comparisons
COUNT_BLOCK = 2**16


def _count_linear(x: np.ndarray, thresholds: np.ndarray, channel: tuple) -> np.ndarray:
    """#{t : x >= T[c, t]}, one comparison per threshold over a block of
    whole samples at a time (counted in the narrowest integer type that
    holds the count). A block and thresholds that float32 holds exactly
    (integer accumulators below 2**24) are compared in float32: the same
    comparisons, half the bytes."""
    count = np.zeros(x.shape, dtype=np.min_scalar_type(thresholds.shape[1]))
    if x.ndim == 0:
        count[...] = np.sum(x >= thresholds.reshape(-1))
        return count
    rows = x.shape[0] if channel[0] > 1 else max(1, COUNT_BLOCK // max(1, x[0].size))  # blocks keep the channel axis whole
    reached = np.empty((min(rows, x.shape[0]),) + x.shape[1:], dtype=bool)
    narrow_thresholds = thresholds.astype(np.float32)
    columns = {thresholds.dtype: [thresholds[:, t].reshape(channel) for t in range(thresholds.shape[1])]}
    if x.dtype != np.float32 and np.array_equal(narrow_thresholds, thresholds):
        columns[np.dtype(np.float32)] = [narrow_thresholds[:, t].reshape(channel) for t in range(thresholds.shape[1])]
    for start in range(0, x.shape[0], rows):
        block, counted = x[start : start + rows], count[start : start + rows]
        if np.dtype(np.float32) in columns and block.dtype != np.float32:
            narrow = block.astype(np.float32)
            block = narrow if np.array_equal(narrow, block) else block
        hit = reached[: block.shape[0]]
        for column in columns.get(block.dtype, columns[thresholds.dtype]):
            np.greater_equal(block, column, out=hit)
            np.add(counted, hit, out=counted, casting="unsafe")
    return count


#: MultiThreshold counts by comparisons up to this many thresholds per
#: channel, by binary search beyond (when they are sorted)
LINEAR_THRESHOLDS = 16


def multithreshold(x, thresholds, out_scale: float, out_bias: float, data_layout: str = "") -> np.ndarray:
    """qonnx MultiThreshold: ``out_scale * #{t : x >= T[c, t]} + out_bias``
    per channel ``c`` (one row of thresholds for all channels if T has one)."""
    axis = multithreshold_channel_axis(data_layout, x.ndim)
    thresholds = thresholds.reshape(-1, thresholds.shape[-1]) if thresholds.ndim != 2 else thresholds
    channel = tuple(thresholds.shape[0] if i == axis else 1 for i in range(x.ndim))
    steps = thresholds.shape[1]
    if steps > LINEAR_THRESHOLDS and np.all(np.diff(thresholds, axis=1) >= 0):
        count = _count_sorted(x, thresholds, axis)
    else:
        count = _count_linear(x, thresholds, channel)
    return out_scale * count + out_bias


def threshold_distance(x: np.ndarray, thresholds: np.ndarray, axis: int) -> np.ndarray:
    """Per element, the smallest float64 |x - T[c, t]| over its channel's
    thresholds (T: (1 or C, steps)), as the minimum over every threshold
    computes it. With many finite thresholds only the two around x (a
    binary search in the sorted row) are measured: the rounded difference is
    monotone in the exact one, so the nearest threshold gives the minimum."""
    steps = thresholds.shape[1]
    if steps <= LINEAR_THRESHOLDS or not np.all(np.isfinite(thresholds)):
        channel = tuple(thresholds.shape[0] if i == axis else 1 for i in range(x.ndim))
        best = np.full(x.shape, np.inf)
        with np.errstate(invalid="ignore"):
            for j in range(steps):
                np.minimum(best, np.abs(x - thresholds[:, j].reshape(channel)), out=best)
        return best
    rows = np.sort(thresholds, axis=1)

    def nearest(row, v):
        pos = np.searchsorted(row, v)
        below, above = row[np.maximum(pos - 1, 0)], row[np.minimum(pos, steps - 1)]
        with np.errstate(invalid="ignore"):
            return np.minimum(np.abs(v - below), np.abs(v - above))

    if rows.shape[0] == 1:
        return nearest(rows[0], x)
    best = np.empty(x.shape)
    moved, out = np.moveaxis(x, axis, 0), np.moveaxis(best, axis, 0)
    for c in range(moved.shape[0]):
        out[c] = nearest(rows[c], moved[c])
    return best


# --------------------------------------------------------------------------
# ops onnxruntime has no float64 kernel for
# --------------------------------------------------------------------------


def average_pool(x, kernel, strides, dilations, pads, out_shape, count_include_pad: bool) -> np.ndarray:
    """ONNX AveragePool; ``out_shape`` (spatial) fixes ceil_mode's extra
    windows, which count only their cells inside the padded input."""
    nsp = len(kernel)
    extra = [max(0, (out_shape[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - (x.shape[2 + i] + sum(pads[i]))) for i in range(nsp)]
    widths = [(pads[i][0], pads[i][1] + extra[i]) for i in range(nsp)]
    xp = np.pad(x, [(0, 0), (0, 0)] + widths)
    inside = np.pad(np.ones(x.shape[2:]), widths)
    counted = np.pad(np.ones(x.shape[2:]), [tuple(p) for p in pads], constant_values=1.0 if count_include_pad else 0.0)
    counted = np.pad(counted, [(0, e) for e in extra])
    total = np.zeros(x.shape[:2] + tuple(out_shape))
    count = np.zeros(tuple(out_shape))
    for k in np.ndindex(*kernel):
        window = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + (out_shape[i] - 1) * strides[i] + 1, strides[i]) for i in range(nsp))
        total += xp[(slice(None), slice(None)) + window] * inside[window]
        count += counted[window]
    return total / count


def global_average_pool(x) -> np.ndarray:
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def leaky_relu(x, alpha: float) -> np.ndarray:
    return np.where(x >= 0, x, alpha * x)


def hard_sigmoid(x, alpha: float, beta: float) -> np.ndarray:
    return np.clip(alpha * x + beta, 0.0, 1.0)

"""Exact integer arithmetic and sound floating-point bounds.

(Longer than sira's usual module: it is the one home of directed rounding,
error-free transforms and exact integer kernels, which must not be
re-implemented elsewhere.)

Two rules hold everywhere in sira (they are what the published reference got
wrong by working in float32):

* integer parts are exact: ``int64`` while every operand and result provably
  stays below 2**62 in magnitude, Python integers (object arrays) beyond;
* real bounds that come out of inexact float arithmetic are rounded outward,
  so an interval is never narrower than the set of values it describes.

Every array here is a NumPy array in the *compact* form used by
:class:`sira.range.ScaledIntRange`: broadcastable to the tensor shape, with
length-1 axes where the data does not vary.
"""

from __future__ import annotations

import functools
from fractions import Fraction
import numpy as np

#: Magnitude below which int64 arithmetic on two operands cannot overflow.
INT64_SAFE = 2**62
#: Largest magnitude below which every integer is exactly a float64.
FLOAT_EXACT_INT = 2**53
_EPS = np.finfo(np.float64).eps  # 2**-52
_TINY = np.finfo(np.float64).tiny  # smallest normal; covers underflow
#: magnitude of a product above which Dekker's error term is exact
_DEKKER_SAFE = 2.0**-960


# --------------------------------------------------------------------------
# exact integers
# --------------------------------------------------------------------------


def absmax(a: np.ndarray) -> int:
    """Largest magnitude in an integer array, as a Python int (0 if empty)."""
    if a.size == 0:
        return 0
    if a.dtype == object:
        return max(abs(int(v)) for v in a.flat)
    return max(abs(int(a.max())), abs(int(a.min())))


def as_int(values) -> np.ndarray:
    """An exact integer array: int64 when every value fits below 2**62, else
    an object array of Python ints. Raises ValueError on non-integral input."""
    arr = np.asarray(values)
    if arr.dtype == object:
        ints = np.empty(arr.shape, dtype=object)
        for idx, v in np.ndenumerate(arr):
            if isinstance(v, (float, np.floating)) and not float(v).is_integer():
                raise ValueError(f"non-integral value {v!r}")
            ints[idx] = int(v)
        return _demote(ints)
    if arr.dtype.kind == "b":
        return arr.astype(np.int64)
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) >= INT64_SAFE:
            return _demote(arr.astype(object))
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise ValueError("non-integral or non-finite value in integer array")
        if arr.size == 0 or np.abs(arr).max() < INT64_SAFE:
            return arr.astype(np.int64)
        return _demote(np.vectorize(lambda v: int(v), otypes=[object])(arr))
    raise ValueError(f"cannot make an integer array from dtype {arr.dtype}")


def rint_int(a: np.ndarray) -> np.ndarray:
    """Nearest integers of a finite float array as an exact integer array
    (the fast path of :func:`as_int` for values known to be near-integral)."""
    r = np.rint(np.asarray(a, dtype=np.float64))
    if r.size == 0 or (np.all(np.isfinite(r)) and np.abs(r).max() < INT64_SAFE):
        return r.astype(np.int64)
    return as_int(r)


def _demote(obj: np.ndarray) -> np.ndarray:
    """Object array of Python ints -> int64 when that is safe."""
    # arithmetic on 0-d object arrays yields a bare Python int: re-wrap it
    obj = np.asarray(obj, dtype=object)
    if obj.size == 0 or absmax(obj) < INT64_SAFE:
        return np.array([int(v) for v in obj.flat], dtype=np.int64).reshape(obj.shape)
    return obj


def _promote_if(a: np.ndarray, b: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    if bound < INT64_SAFE and a.dtype != object and b.dtype != object:
        return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)
    return a.astype(object), b.astype(object)


def int_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact elementwise sum of two integer arrays (broadcasting)."""
    a2, b2 = _promote_if(a, b, absmax(a) + absmax(b))
    return _demote(a2 + b2) if a2.dtype == object else a2 + b2


def int_neg(a: np.ndarray) -> np.ndarray:
    return _demote(-a.astype(object)) if a.dtype == object else -a


def int_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact elementwise product of two integer arrays (broadcasting)."""
    a2, b2 = _promote_if(a, b, absmax(a) * absmax(b))
    return _demote(a2 * b2) if a2.dtype == object else a2 * b2


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matrix product (numpy matmul broadcasting rules)."""
    k = a.shape[-1] if a.ndim else 1
    a2, b2 = _promote_if(a, b, max(k, 1) * absmax(a) * absmax(b))
    if a2.dtype == object:
        return _demote(np.matmul(a2, b2))
    return np.matmul(a2, b2)


def int_sum(a: np.ndarray, axis=None, keepdims: bool = False) -> np.ndarray:
    """Exact sum of an integer array along ``axis``."""
    n = a.size if axis is None else int(np.prod([a.shape[i] for i in np.atleast_1d(axis)]))
    if a.dtype != object and max(n, 1) * absmax(a) < INT64_SAFE:
        return np.sum(a, axis=axis, keepdims=keepdims)
    return _demote(np.asarray(np.sum(a.astype(object), axis=axis, keepdims=keepdims), dtype=object))


def int_range_product(alo, ahi, blo, bhi) -> tuple[np.ndarray, np.ndarray]:
    """Exact bounds of x*y for x in [alo, ahi], y in [blo, bhi] (elementwise)."""
    corners = [int_mul(alo, blo), int_mul(alo, bhi), int_mul(ahi, blo), int_mul(ahi, bhi)]
    lo = corners[0]
    hi = corners[0]
    for c in corners[1:]:
        lo = np.minimum(lo, c)
        hi = np.maximum(hi, c)
    return lo, hi


def _int_extreme(fn, arrays) -> np.ndarray:
    """Elementwise min / max of exact integer arrays. Once one of them holds
    Python ints, everything is kept as object arrays: numpy hands back a
    0-d result as a bare int, which it would then force into int64."""
    arrs = [np.asarray(a) for a in arrays]
    if all(a.dtype != object for a in arrs):
        return functools.reduce(fn, arrs)
    return as_int(functools.reduce(lambda u, v: np.asarray(fn(u, v), dtype=object), [a.astype(object) for a in arrs]))


def int_minimum(*arrays) -> np.ndarray:
    """Exact elementwise minimum of integer arrays (broadcasting)."""
    return _int_extreme(np.minimum, arrays)


def int_maximum(*arrays) -> np.ndarray:
    """Exact elementwise maximum of integer arrays (broadcasting)."""
    return _int_extreme(np.maximum, arrays)


def int_linear_bounds(op, qlo, qhi, w, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer range of ``op(q, w)`` for q elementwise in [qlo, qhi]
    and point integer weights, ``op`` a bilinear map that sums ``n_terms``
    products per output (a matrix product, a convolution).

    The per-term extremes add up to (lo+hi)@w -/+ (hi-lo)@|w|, all halved:
    two products instead of four, integral because the doubled form is. They
    run in float64 (BLAS speed) when every partial sum is provably below
    2**53, in int64 below 2**62, in Python integers beyond."""
    bound = 2 * n_terms * max(absmax(qlo), absmax(qhi), 1) * max(absmax(w), 1)
    if bound < FLOAT_EXACT_INT:
        kind, cast = np.float64, (lambda a: a.astype(np.int64))
    elif bound < INT64_SAFE:
        kind, cast = np.int64, (lambda a: a)
    else:
        kind, cast = object, as_int
    wk = w.astype(kind)
    lo_k, hi_k = qlo.astype(kind), qhi.astype(kind)
    center = op(lo_k + hi_k, wk)
    spread = op(hi_k - lo_k, np.abs(wk))
    return cast((center - spread) // 2), cast((center + spread) // 2)


def is_integral(values: np.ndarray) -> bool:
    """True when every element is a finite integer value."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return True
    if arr.dtype == object:
        return all(isinstance(v, (int, np.integer)) or float(v).is_integer() for v in arr.flat)
    return bool(np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))


# --------------------------------------------------------------------------
# sound float bounds
# --------------------------------------------------------------------------


def int_to_float_bounds(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 lower and upper bounds of integers (equal where exact)."""
    if q.dtype != object and (q.size == 0 or absmax(q) <= FLOAT_EXACT_INT):
        f = q.astype(np.float64)
        return f, f

    def down(v):
        f = float(v)
        return f if f <= v else float(np.nextafter(f, -np.inf))

    def up(v):
        f = float(v)
        return f if f >= v else float(np.nextafter(f, np.inf))

    qo = q.astype(object)
    return (
        np.vectorize(down, otypes=[np.float64])(qo).reshape(q.shape),
        np.vectorize(up, otypes=[np.float64])(qo).reshape(q.shape),
    )


def two_product_err(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Exact rounding error a*b - p of p = fl(a*b) (Dekker/Veltkamp), finite inputs."""
    factor = 134217729.0  # 2**27 + 1
    with np.errstate(over="ignore", invalid="ignore"):
        ca = factor * a
        ah = ca - (ca - a)
        al = a - ah
        cb = factor * b
        bh = cb - (cb - b)
        bl = b - bh
        return ((ah * bh - p) + ah * bl + al * bh) + al * bl


def two_sum_err(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Exact rounding error a+b - s of s = fl(a+b) (Knuth), finite inputs."""
    with np.errstate(over="ignore", invalid="ignore"):
        bb = s - a
        return (a - (s - bb)) + (b - bb)


def mul0(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Product with the interval convention 0 * inf = 0."""
    with np.errstate(invalid="ignore"):
        p = np.multiply(a, b)
    return np.where((np.asarray(a) == 0) | (np.asarray(b) == 0), 0.0, p)


def _directed(r: np.ndarray, err: np.ndarray, direction: int, finite_args: np.ndarray) -> np.ndarray:
    """Round a correctly rounded result r with exact error err (true = r + err)
    one step in ``direction`` where that is needed to enclose the true value.
    A finite true value that overflowed to the infinity on the wrong side
    (+inf for a lower bound) steps back to the largest float."""
    r = np.asarray(r, dtype=np.float64)
    need = (err < 0) if direction < 0 else (err > 0)
    wrong_infinity = np.isinf(r) & finite_args & ((r > 0) if direction < 0 else (r < 0))
    need = (need & np.isfinite(r)) | wrong_infinity
    if not np.any(need):
        return r
    return np.where(need, np.nextafter(r, -np.inf if direction < 0 else np.inf), r)


def _add_parts(a, b):
    """fl(a + b), its exact error and which arguments are finite: what both
    directed sums round from."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        r = a + b
    return r, two_sum_err(a, b, r), np.isfinite(a) & np.isfinite(b)


def _add_directed(a, b, direction: int) -> np.ndarray:
    r, err, finite = _add_parts(a, b)
    r = np.where(np.isnan(r), -np.inf if direction < 0 else np.inf, r)
    return _directed(r, err, direction, finite)


def _mul_parts(a, b):
    """fl(a * b) (0 * inf = 0), its exact error, where it may have
    underflowed and which arguments are finite. The error term is exact
    only while the product does not underflow: there :func:`_mul_step`
    steps unconditionally."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        r = mul0(a, b)
    finite = np.isfinite(a) & np.isfinite(b)
    err = two_product_err(a, b, r)
    tiny = finite & (a != 0) & (b != 0) & (np.abs(r) < _DEKKER_SAFE)
    return r, err, tiny, finite


def _mul_step(r, err, tiny, finite, direction: int) -> np.ndarray:
    return _directed(r, np.where(tiny, float(direction), err), direction, finite)


def _mul_directed(a, b, direction: int) -> np.ndarray:
    return _mul_step(*_mul_parts(a, b), direction)


def same_points(lo, hi) -> bool:
    """Whether an interval's two bound arrays are the same points (then one
    evaluation gives both directed results)."""
    return lo is hi or (np.shape(lo) == np.shape(hi) and bool(np.array_equal(lo, hi)))


def add_interval(lo, hi, k) -> tuple[np.ndarray, np.ndarray]:
    """(add_down(lo, k), add_up(hi, k)): the sound bounds of x + k over
    x in [lo, hi] for a point k, from one sum where lo and hi are points."""
    if not same_points(lo, hi):
        return add_down(lo, k), add_up(hi, k)
    r, err, finite = _add_parts(lo, k)
    nan = np.isnan(r)
    return (_directed(np.where(nan, -np.inf, r), err, -1, finite),
            _directed(np.where(nan, np.inf, r), err, +1, finite))  # fmt: skip


def add_down(a, b) -> np.ndarray:
    """Largest float64 <= a + b (directed rounding by an error-free sum)."""
    return _add_directed(a, b, -1)


def add_up(a, b) -> np.ndarray:
    """Smallest float64 >= a + b."""
    return _add_directed(a, b, +1)


def mul_down(a, b) -> np.ndarray:
    """Largest float64 <= a * b, with 0 * inf = 0."""
    return _mul_directed(a, b, -1)


def mul_up(a, b) -> np.ndarray:
    """Smallest float64 >= a * b, with 0 * inf = 0."""
    return _mul_directed(a, b, +1)


def mul_is_exact(a, b) -> bool:
    """Whether every float64 product a*b (broadcasting) is exact."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    p = a * b
    return bool(np.all(np.isfinite(p)) and np.all(two_product_err(a, b, p) == 0))


def interval_mul(alo, ahi, blo, bhi) -> tuple[np.ndarray, np.ndarray]:
    """Sound bounds of x*y for x in [alo, ahi], y in [blo, bhi].

    Where an operand is a point (the threshold screen's inputs and a layer's
    constants) the product is monotone in the other with the point's sign,
    so two directed products give the bounds, and one product with its
    error term when both are points; the same bounds as the general form's
    minimum and maximum over the four corner products, at a fraction of the
    cost."""
    a_point, b_point = same_points(alo, ahi), same_points(blo, bhi)
    if a_point and b_point:
        parts = _mul_parts(alo, blo)
        return _mul_step(*parts, -1), _mul_step(*parts, +1)
    if b_point:
        return _mul_by_point(alo, ahi, blo)
    if a_point:
        return _mul_by_point(blo, bhi, alo)
    pairs = [(alo, blo), (alo, bhi), (ahi, blo), (ahi, bhi)]
    # pairwise (not np.minimum.reduce over a list): the compact bounds may
    # have different shapes, e.g. a uniform lo with a per-channel hi
    lo = functools.reduce(np.minimum, [mul_down(x, y) for x, y in pairs])
    hi = functools.reduce(np.maximum, [mul_up(x, y) for x, y in pairs])
    return lo, hi


def _mul_by_point(lo, hi, k) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of x*k over x in [lo, hi], k a point: x*k is non-decreasing in
    x for k >= 0 and non-increasing for k < 0 (0 * inf = 0 keeps k = 0 at 0)."""
    neg = np.asarray(k) < 0
    return mul_down(np.where(neg, hi, lo), k), mul_up(np.where(neg, lo, hi), k)


def affine_bounds(scale, qlo, qhi, bias) -> tuple[np.ndarray, np.ndarray]:
    """Sound real bounds of scale*q + bias for integer q in [qlo, qhi].

    The result is exact (no widening) wherever the float64 evaluation happens
    to be exact, which error-free transforms detect; elsewhere it is widened
    by a rigorous a-priori bound of the rounding error.
    """
    scale = np.asarray(scale, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    flo_d, flo_u = int_to_float_bounds(qlo)
    fhi_d, fhi_u = int_to_float_bounds(qhi)
    # with scale >= 0 the low end comes from qlo, else from qhi
    pos = scale >= 0
    qa_d = np.where(pos, flo_d, fhi_d)
    qa_u = np.where(pos, flo_u, fhi_u)
    qb_d = np.where(pos, fhi_d, flo_d)
    qb_u = np.where(pos, fhi_u, flo_u)
    # the low end is scale*qa with qa's rounding direction matching the scale sign
    lo = _affine_end(scale, np.where(pos, qa_d, qa_u), bias, -1)
    hi = _affine_end(scale, np.where(pos, qb_u, qb_d), bias, +1)
    return lo, hi


def _affine_end(scale, q, bias, direction: int) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        p = scale * q
        r = p + bias
    e1 = two_product_err(scale, q, p)
    e2 = two_sum_err(p, bias, r)
    inexact = ~((e1 == 0) & (e2 == 0)) | ~np.isfinite(r)
    if not np.any(inexact):
        return r
    err = 2.0 * _EPS * (np.abs(p) + np.abs(r)) + _TINY
    with np.errstate(over="ignore", invalid="ignore"):
        widened = r + direction * err
    widened = np.where(np.isnan(widened), -np.inf if direction < 0 else np.inf, widened)
    return np.where(inexact, widened, r)


def round_outward(lo: np.ndarray, hi: np.ndarray, rel_ops: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Widen bounds computed by ``rel_ops`` correctly rounded float64 operations."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        lo2 = lo - rel_ops * _EPS * np.abs(lo) - _TINY
        hi2 = hi + rel_ops * _EPS * np.abs(hi) + _TINY
    return np.where(np.isfinite(lo), lo2, lo), np.where(np.isfinite(hi), hi2, hi)


def float32_down(x) -> np.ndarray:
    """Largest float32 <= x (elementwise, returned as float64)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = x.astype(np.float32)
    f = np.where(f.astype(np.float64) > x, np.nextafter(f, np.float32(-np.inf)), f)
    return f.astype(np.float64)


def float32_up(x) -> np.ndarray:
    """Smallest float32 >= x (elementwise, returned as float64)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        f = x.astype(np.float32)
    f = np.where(f.astype(np.float64) < x, np.nextafter(f, np.float32(np.inf)), f)
    return f.astype(np.float64)


# --------------------------------------------------------------------------
# exact rounding (QONNX semantics)
# --------------------------------------------------------------------------

ROUNDING_MODES = ("ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN")


def rounding_mode(mode: str) -> str:
    """The canonical (upper-case) name of a QONNX rounding mode; ValueError
    for a mode QONNX does not define, so every rounding path rejects the
    same modes with the same message."""
    m = str(mode).upper()
    if m not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {mode!r}; expected one of {', '.join(ROUNDING_MODES)}")
    return m


def round_fraction(x: Fraction | int, mode: str) -> int:
    """Round an exact rational the way QONNX's ``resolve_rounding_mode`` does.

    ROUND and HALF_EVEN are numpy's half-to-even; UP rounds away from zero;
    DOWN truncates toward zero; HALF_UP / HALF_DOWN break ties away from /
    toward zero.
    """
    m = rounding_mode(mode)
    x = Fraction(x)
    fl = x.numerator // x.denominator
    ce = -((-x.numerator) // x.denominator)
    away, toward = (ce, fl) if x > 0 else (fl, ce)
    if m in ("ROUND", "HALF_EVEN"):
        return round(x)  # Fraction.__round__ is half-to-even
    if m in ("CEIL", "FLOOR", "UP", "DOWN"):
        return {"CEIL": ce, "FLOOR": fl, "UP": away, "DOWN": toward}[m]
    twice = 2 * x
    if twice.denominator == 1 and twice.numerator % 2 != 0:  # an exact tie
        return away if m == "HALF_UP" else toward
    return round(x)


def round_floats(v: np.ndarray, mode: str, as_qonnx_executes: bool = False) -> np.ndarray:
    """QONNX rounding of a float array, elementwise, in the array's dtype.

    By default the result is the exact rounding of each float's value (the
    same integer :func:`round_fraction` gives): ROUND, CEIL, FLOOR, UP and
    DOWN are exact float operations, and a HALF_UP / HALF_DOWN tie is
    detected exactly (``|v| - floor(|v|)`` is exact; ``v - floor(v)`` is
    not for negative v: -0.49999999999999994 - (-1) rounds to 0.5). With ``as_qonnx_executes``
    HALF_UP / HALF_DOWN are qonnx's float formulas ``sign(v) * floor(|v| +
    0.5)`` and ``sign(v) * ceil(|v| - 0.5)``, whose addition can itself round
    (0.49999999999999994 goes to 1): what qonnx's execution computes, for
    bounds that must hold for it and for bit-identical constant folding.
    """
    m = rounding_mode(mode)
    v = np.asarray(v)
    if m in ("ROUND", "HALF_EVEN"):
        return np.round(v)
    if m == "CEIL":
        return np.ceil(v)
    if m == "FLOOR":
        return np.floor(v)
    if m == "UP":
        return np.sign(v) * np.ceil(np.abs(v))
    if m == "DOWN":
        return np.trunc(v)
    if as_qonnx_executes:
        if m == "HALF_UP":
            return np.sign(v) * np.floor(np.abs(v) + v.dtype.type(0.5))
        return np.sign(v) * np.ceil(np.abs(v) - v.dtype.type(0.5))
    mag = np.abs(v)
    tie = (mag - np.floor(mag)) == 0.5
    away = np.sign(v) * np.ceil(mag)
    return np.where(tie, away if m == "HALF_UP" else np.trunc(v), np.round(v))


def trunc_step(scale, out_scale) -> np.ndarray:
    """The power of two a QONNX Trunc (v2, with an output scale) divides its
    integer by: 2**ROUND(log2(out_scale / scale)) in float64, qonnx's own
    formula (the log is rounded, so out_scale need not be an exact power-of-two
    multiple of scale)."""
    ratio = np.asarray(out_scale, dtype=np.float64) / np.asarray(scale, dtype=np.float64)
    return 2.0 ** round_floats(np.log2(ratio), "ROUND")


def quantize_fraction(x: Fraction, scale: Fraction, zeropt: Fraction, qmin: int, qmax: int, mode: str) -> int:
    """QONNX Quant's integer for an exact rational input: round(clip(x/scale
    + zeropt, qmin, qmax)) with the node's rounding mode (the mathematical
    semantics; qonnx's float32 execution approximates it)."""
    v = x / scale + zeropt
    return round_fraction(min(max(v, Fraction(qmin)), Fraction(qmax)), mode)


def to_fraction(v) -> Fraction:
    """Exact rational value of a finite float or integer."""
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    return Fraction(float(v))


# --------------------------------------------------------------------------
# QONNX integer datatypes
# --------------------------------------------------------------------------


def narrowest_int_type(lo: int, hi: int) -> str:
    """Name of the narrowest QONNX integer datatype holding [lo, hi].

    ``BINARY`` for [0, 1], ``UINTn`` when lo >= 0, else ``INTn``.
    """
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty integer range [{lo}, {hi}]")
    if lo >= 0:
        bits = max(hi.bit_length(), 1)
        return "BINARY" if bits == 1 else f"UINT{bits}"
    # a negative hi needs no more bits than lo does
    bits = max((-lo - 1).bit_length(), max(hi, 0).bit_length()) + 1
    return f"INT{bits}"


def int_type_width(lo: int, hi: int) -> int:
    """Bit width of :func:`narrowest_int_type` (BINARY counts 1)."""
    name = narrowest_int_type(lo, hi)
    return 1 if name == "BINARY" else int(name.removeprefix("U").removeprefix("INT"))


def a2q_bound_width(K: int, N: int, M: int, signed_input: bool) -> int:
    """A2Q's datatype bound (the accumulator FINN falls back to): the signed
    width that no K-term dot product of N-bit inputs and M-bit signed
    weights can overflow.

    ``ceil(alpha + log2(1 + 2**-alpha) + 1)`` with ``alpha = log2(K) + N + M
    - 1 - signed`` is ``1 + ceil(log2(2**alpha + 1))``, and ``2**alpha`` is
    an integer, so the width is ``1 + bit_length(2**alpha)`` exactly (no
    float logarithm)."""
    if K < 1 or N < 1 or M < 1:
        raise ValueError(f"K, N and M must be positive, got K={K}, N={N}, M={M}")
    magnitude = K << (N + M - 1 - int(bool(signed_input)))
    return magnitude.bit_length() + 1


# --------------------------------------------------------------------------
# sound sums and quotients
# --------------------------------------------------------------------------


def _grid_exponent(a: np.ndarray) -> np.ndarray:
    """Per element of a finite array, the largest e such that the element is
    an integer multiple of 2**e (a huge e for zeros, which lie on every grid)."""
    mant, exp = np.frexp(a)
    m = (np.abs(mant) * 2.0**53).astype(np.int64)  # the 53-bit significand
    low = m & -m  # its lowest set bit
    tz = np.round(np.log2(np.where(low > 0, low, 1))).astype(np.int64)
    return np.where(m > 0, exp.astype(np.int64) - 53 + tz, 2**20)


def _sum_is_exact(a: np.ndarray, axis: int) -> np.ndarray:
    """Where the float64 sum along ``axis`` is exact in any summation order:
    every term finite and a multiple of a common 2**e, and the total magnitude
    below 2**(52+e), so that every partial sum is representable."""
    finite = np.isfinite(a)
    safe = np.where(finite, a, 0.0)
    e = np.min(_grid_exponent(safe), axis=axis)
    mag = np.sum(np.abs(safe), axis=axis)
    limit = np.ldexp(1.0, np.clip(e + 52, -1074, 1023).astype(np.int32))
    return np.all(finite, axis=axis) & (mag < limit)


def _sum_directed(a, axis: int, direction: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[axis]
    with np.errstate(invalid="ignore", over="ignore"):
        s = np.sum(a, axis=axis)
        mag = np.sum(np.abs(a), axis=axis)
        # |fl(sum) - sum| <= gamma_(n-1) * sum|a_i|; doubled for the rounding of mag itself
        widened = s + direction * (2.0 * (n + 1) * _EPS * mag + _TINY)
    bad = -np.inf if direction < 0 else np.inf
    widened = np.where(np.isnan(widened), bad, widened)
    s = np.where(np.isnan(s), bad, s)
    return np.where(_sum_is_exact(a, axis), s, np.where(np.isfinite(s), widened, s))


def sum_down(a, axis: int) -> np.ndarray:
    """A float64 lower bound of the exact sum along ``axis`` (the exact sum
    itself when float64 summation is provably exact, e.g. on a common grid)."""
    return _sum_directed(a, axis, -1)


def sum_up(a, axis: int) -> np.ndarray:
    """A float64 upper bound of the exact sum along ``axis``."""
    return _sum_directed(a, axis, +1)


def _div_directed(a, b, direction: int) -> np.ndarray:
    """Round a/b (b finite, non-zero) one step in ``direction`` where the
    correctly rounded quotient q is not already on the right side.

    The residual a - q*b is exact as r - e with r = a - fl(q*b) (exact by
    Sterbenz's lemma) and e the error of fl(q*b); its sign, times the sign of
    b, is the sign of a/b - q. Where under- or overflow could spoil that
    argument, the quotient is stepped unconditionally."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        q = a / b
        p = q * b
        e = two_product_err(q, b, p)
        r = a - p
    err_sign = np.sign(r - e) * np.sign(b)  # sign of a/b - q
    reliable = (np.abs(p) > 2.0**-900) & (np.abs(q) < 2.0**900) & (np.abs(b) < 2.0**900) & np.isfinite(q)
    need = (err_sign < 0) if direction < 0 else (err_sign > 0)
    need = np.where(reliable, need, np.isfinite(a) & (a != 0))
    return np.where(need, np.nextafter(q, -np.inf if direction < 0 else np.inf), q)


def div_down(a, b) -> np.ndarray:
    """Largest float64 <= a / b for finite non-zero b (a may be infinite)."""
    return _div_directed(a, b, -1)


def div_up(a, b) -> np.ndarray:
    """Smallest float64 >= a / b for finite non-zero b (a may be infinite)."""
    return _div_directed(a, b, +1)


def linear_bounds(op, lo, hi, w, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Sound real bounds of ``op(x, w)`` for x in [lo, hi] and point weights.

    The float64 sums are exact when inputs and weights lie on power-of-two
    grids with small enough totals (the common case: quantized values);
    otherwise they are widened by (n+2)*eps*sum|x_k*w_k| (twice the
    classical bound gamma_(n+1) on the rounding error of an n-term dot
    product, covering the rounding of the magnitude itself) plus the smallest
    normal for underflow. An infinite input bound makes exactly those outputs
    infinite that a non-zero weight connects it to (0 * inf = 0).
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    flo = np.where(np.isfinite(lo), lo, 0.0)
    fhi = np.where(np.isfinite(hi), hi, 0.0)
    wpos = np.maximum(w, 0.0)
    wneg = np.minimum(w, 0.0)
    mag = op(np.maximum(np.abs(flo), np.abs(fhi)), np.abs(w))
    err = (n_terms + 2) * _EPS * mag + _TINY
    # on a common grid 2**e every product and partial sum is exact while the
    # magnitude stays below 2**(53+e) (2**(51+e) leaves room for mag's rounding)
    e = common_grid_exponent(flo, fhi) + common_grid_exponent(w)
    if e >= -1074:
        err = np.where(mag < np.ldexp(1.0, min(e + 51, 1023)), 0.0, err)
    out_lo = (op(flo, wpos) + op(fhi, wneg)) - err
    out_hi = (op(fhi, wpos) + op(flo, wneg)) + err
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        return out_lo, out_hi
    neg_inf = (lo == -np.inf).astype(np.float64)
    pos_inf = (hi == np.inf).astype(np.float64)
    to_minus = op(neg_inf, (w > 0).astype(np.float64)) + op(pos_inf, (w < 0).astype(np.float64))
    to_plus = op(pos_inf, (w > 0).astype(np.float64)) + op(neg_inf, (w < 0).astype(np.float64))
    return np.where(to_minus > 0, -np.inf, out_lo), np.where(to_plus > 0, np.inf, out_hi)


def interval_div(alo, ahi, blo, bhi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sound bounds of x / y for x in [alo, ahi], y in [blo, bhi].

    Where [blo, bhi] does not contain 0 the quotient is monotone in each
    argument, so the four corners (rounded outward) are exact bounds.
    Where it contains or touches 0 the quotient is unbounded (or NaN):
    those elements get [-inf, inf]. Returns (lo, hi, zero_mask)."""
    blo = np.asarray(blo, dtype=np.float64)
    bhi = np.asarray(bhi, dtype=np.float64)
    zero = (blo <= 0) & (bhi >= 0)
    blo_s = np.where(zero, 1.0, blo)
    bhi_s = np.where(zero, 1.0, bhi)
    corners = [(alo, blo_s), (alo, bhi_s), (ahi, blo_s), (ahi, bhi_s)]
    with np.errstate(all="ignore"):
        lo = functools.reduce(np.minimum, [_div_corner(x, y, down=True) for x, y in corners])
        hi = functools.reduce(np.maximum, [_div_corner(x, y, down=False) for x, y in corners])
    return np.where(zero, -np.inf, lo), np.where(zero, np.inf, hi), zero


def _div_corner(x, y, down: bool) -> np.ndarray:
    """Bound of x / y at a corner of the box (y != 0), rounded outward.

    An infinite bound stands for an unbounded side, so a corner with an
    infinite divisor is a limit: 0 for a finite dividend; for an infinite
    one, the quotients along the two edges into that corner tend to 0 and
    to +-inf, so both are candidates."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fin = np.isfinite(y)
    q = (div_down if down else div_up)(x, np.where(fin, y, 1.0))
    signed_inf = np.sign(x) * np.sign(y) * np.inf
    both = (np.minimum if down else np.maximum)(0.0, signed_inf)
    return np.where(fin, q, np.where(np.isfinite(x), 0.0, both))


def common_grid_exponent(*arrays) -> int:
    """The largest e such that every finite element of the arrays is an
    integer multiple of 2**e (a huge e when all are zero). Sums and products
    of such values are exact in float64 while they stay below 2**(53+e)."""
    exps = [int(np.min(_grid_exponent(np.where(np.isfinite(a), a, 0.0)))) for a in map(np.asarray, arrays) if np.size(a)]
    return min(exps, default=2**20)

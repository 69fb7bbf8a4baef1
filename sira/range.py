"""The value type of the analysis: :class:`ScaledIntRange`.

A ``ScaledIntRange`` describes every value a tensor can take:

* ``lo``/``hi`` — a real interval per element, sound (never narrower than
  reality) and rounded outward where float arithmetic produced it;
* optionally the scaled-integer form ``value = scale * q + bias`` with ``q``
  an integer in ``[int_lo, int_hi]`` (exact integers, see
  :mod:`sira.numerics`), ``scale`` and ``bias`` in float64;
* for constants, the ``value`` itself;
* the provenance of scale and bias: the names of the constant tensors whose
  values were folded into them since the last requantization point. The
  scale/bias aggregation pass neutralizes exactly these.

Arrays are stored *compact*: same rank as the tensor, length 1 on every axis
along which the data does not vary. A per-channel range of an NCHW tensor is
stored as shape ``(1, C, 1, 1)``; nothing is materialized per element unless
the data really differs per element (zero-padding borders, for instance).

The arithmetic that rules share lives here (in the spirit of LLVM's
``ConstantRange``): adding or multiplying by constants, adding or multiplying
two ranges, unions, data movement. Rules stay small by composing it.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Callable, Optional, Sequence

import numpy as np

from . import numerics as nx

Shape = tuple[int, ...]

#: relative error allowed for a float64 scale/bias derived through a chain of
#: float64 operations (2**-40: thousands of roundings)
GRID_ROUNDING = 2.0**-40


def compact(a, shape: Sequence[int]) -> np.ndarray:
    """Bring ``a`` to the rank of ``shape`` and collapse every axis along which
    it is constant to length 1."""
    arr = np.asarray(a)
    ndim = len(shape)
    if arr.ndim > ndim:
        # leading axes must be broadcast-trivial
        lead = arr.ndim - ndim
        if any(d != 1 for d in arr.shape[:lead]):
            raise ValueError(f"array of shape {arr.shape} does not broadcast to {tuple(shape)}")
        arr = arr.reshape(arr.shape[lead:])
    if arr.ndim < ndim:
        arr = arr.reshape((1,) * (ndim - arr.ndim) + arr.shape)
    for ax in range(ndim):
        if arr.shape[ax] > 1:
            first = arr.take([0], axis=ax)
            if np.all(arr == first):
                arr = first
    return arr


def _full(a: np.ndarray, shape: Shape) -> np.ndarray:
    return np.broadcast_to(a, shape)


def _is_scalar_compact(a: Optional[np.ndarray]) -> bool:
    return a is None or a.size == 1


@dataclasses.dataclass(frozen=True, eq=False)
class ScaledIntRange:
    """Sound range of a tensor, and its scaled-integer form where one exists."""

    shape: Shape
    lo: np.ndarray
    hi: np.ndarray
    int_lo: Optional[np.ndarray] = None
    int_hi: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    bias: Optional[np.ndarray] = None
    value: Optional[np.ndarray] = None
    scale_sources: frozenset = frozenset()
    bias_sources: frozenset = frozenset()
    #: bounds are attained (tight), not merely sound
    exact: bool = True
    #: produced by the fallback for an op without a rule
    fallback: bool = False
    #: human-readable remarks (why a range is loose, what was lost)
    notes: tuple = ()

    # ------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------

    @classmethod
    def real(cls, shape, lo, hi, *, exact: bool = True, **kw) -> "ScaledIntRange":
        """A range with only real bounds (no integer grid known)."""
        shape = tuple(int(d) for d in shape)
        lo = compact(np.asarray(lo, dtype=np.float64), shape)
        hi = compact(np.asarray(hi, dtype=np.float64), shape)
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)):
            raise ValueError("NaN in range bounds")
        if np.any(lo > hi):
            raise ValueError("empty range: a lower bound exceeds its upper bound")
        return cls(shape=shape, lo=lo, hi=hi, exact=exact, **kw)

    @classmethod
    def scaled(
        cls,
        shape,
        int_lo,
        int_hi,
        scale=1.0,
        bias=0.0,
        *,
        exact: bool = True,
        clamp_lo=None,
        clamp_hi=None,
        rounded: bool = False,
        **kw,
    ) -> "ScaledIntRange":
        """A scaled-integer range ``scale*q + bias``, q in [int_lo, int_hi].

        Real bounds are derived from the integer range with outward rounding;
        ``clamp_lo``/``clamp_hi`` are other sound real bounds known to the
        caller, which the grid bounds tighten (see GRID_ROUNDING);
        ``rounded`` says the scale or bias came out of inexact float64
        arithmetic and no such bounds exist, so the grid bounds are widened
        by GRID_ROUNDING.
        """
        shape = tuple(int(d) for d in shape)
        qlo = compact(nx.as_int(int_lo), shape)
        qhi = compact(nx.as_int(int_hi), shape)
        s = compact(np.asarray(scale, dtype=np.float64), shape)
        b = compact(np.asarray(bias, dtype=np.float64), shape)
        if not np.all(np.isfinite(s)) or np.any(s == 0):
            raise ValueError("scale must be finite and non-zero")
        if not np.all(np.isfinite(b)):
            raise ValueError("bias must be finite")
        if np.any(qlo > qhi):
            raise ValueError("empty integer range")
        lo, hi = nx.affine_bounds(s, qlo, qhi, b)
        # A derived scale or bias (a product, a quotient) is float64-rounded,
        # so its grid bounds may sit an ulp inside the truth: where the caller
        # has sound bounds of its own, the grid only tightens them when it
        # says more than that rounding could.
        if clamp_lo is not None:
            lo = np.maximum(np.asarray(clamp_lo, dtype=np.float64), lo - GRID_ROUNDING * np.abs(lo))
        if clamp_hi is not None:
            hi = np.minimum(np.asarray(clamp_hi, dtype=np.float64), hi + GRID_ROUNDING * np.abs(hi))
        if rounded and clamp_lo is None and clamp_hi is None:
            lo, hi = lo - GRID_ROUNDING * np.abs(lo), hi + GRID_ROUNDING * np.abs(hi)
        return cls(
            shape=shape,
            lo=compact(lo, shape),
            hi=compact(hi, shape),
            int_lo=qlo,
            int_hi=qhi,
            scale=s,
            bias=b,
            exact=exact,
            **kw,
        )

    @classmethod
    def constant(cls, value, source: Optional[str] = None) -> "ScaledIntRange":
        """A point range holding a constant tensor. Integer-valued constants get
        the trivial grid (scale 1, bias 0) so they take part in integer rules."""
        v = np.asarray(value)
        shape = tuple(int(d) for d in v.shape)
        if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ValueError("constant holds NaN or Inf")
        if v.dtype.kind in "iub" or (v.dtype.kind == "f" and nx.is_integral(v)):
            return cls.on_grid(v, nx.as_int(v), 1.0, 0.0)
        f = compact(v.astype(np.float64), shape)
        return cls(shape=shape, lo=f, hi=f, value=v)

    @classmethod
    def on_grid(cls, value, q, scale, bias, **kw) -> "ScaledIntRange":
        """A constant whose integers ``q`` are known (value = scale*q + bias up
        to the float rounding of ``value``): a quantized weight tensor. Bounds
        are the value itself; nothing is recomputed per element."""
        v = np.asarray(value)
        shape = tuple(int(d) for d in v.shape)
        qc = compact(nx.as_int(q), shape)
        if nx.absmax(qc) > nx.FLOAT_EXACT_INT:  # the float value may not hold it exactly
            return dataclasses.replace(cls.scaled(shape, qc, qc, scale, bias, **kw), value=v)
        f = compact(v.astype(np.float64), shape)
        return cls(
            shape=shape,
            lo=f,
            hi=f,
            int_lo=qc,
            int_hi=qc,
            scale=compact(np.asarray(scale, dtype=np.float64), shape),
            bias=compact(np.asarray(bias, dtype=np.float64), shape),
            value=v,
            **kw,
        )

    @classmethod
    def unbounded(cls, shape, *, note: str = "", fallback: bool = False) -> "ScaledIntRange":
        return cls.real(shape, -np.inf, np.inf, exact=False, fallback=fallback, notes=(note,) if note else ())

    @classmethod
    def derived(cls, shape, lo, hi, parents: Sequence["ScaledIntRange"], grid=None, *, exact=None, notes=()) -> "ScaledIntRange":
        """The result of an op on ``parents``: sound real bounds [lo, hi] and,
        when ``grid`` = (int_lo, int_hi, scale, bias) is given, the integer
        form, which tightens them. Provenance is the union of the parents';
        exactness their conjunction unless given."""
        exact = all(p.exact for p in parents) if exact is None else exact
        notes = tuple(n for p in parents for n in p.notes) + tuple(notes)
        if grid is None:
            return cls.real(shape, lo, hi, exact=exact, notes=notes)
        qlo, qhi, scale, bias = grid
        return cls.scaled(
            shape,
            qlo,
            qhi,
            scale,
            bias,
            exact=exact,
            clamp_lo=lo,
            clamp_hi=hi,
            scale_sources=frozenset().union(*(p.scale_sources for p in parents)),
            bias_sources=frozenset().union(*(p.bias_sources for p in parents)),
            notes=notes,
        )

    def replace(self, **changes) -> "ScaledIntRange":
        return dataclasses.replace(self, **changes)

    def with_note(self, note: str) -> "ScaledIntRange":
        return dataclasses.replace(self, notes=self.notes + (note,))

    def loose(self, note: str = "") -> "ScaledIntRange":
        """The same range, marked sound-but-not-tight."""
        notes = self.notes + ((note,) if note else ())
        return dataclasses.replace(self, exact=False, notes=notes)

    def drop_int(self, note: str = "") -> "ScaledIntRange":
        """The same real range without integer information."""
        notes = self.notes + ((note,) if note else ())
        return dataclasses.replace(
            self, int_lo=None, int_hi=None, scale=None, bias=None, scale_sources=frozenset(), bias_sources=frozenset(), notes=notes
        )

    # ------------------------------------------------------------------
    # inspection
    # ------------------------------------------------------------------

    @property
    def is_scaled_int(self) -> bool:
        return self.int_lo is not None

    @property
    def is_const(self) -> bool:
        return self.value is not None

    @property
    def is_point(self) -> bool:
        return bool(np.all(self.lo == self.hi))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def full(self, field: str) -> np.ndarray:
        """A field broadcast to the tensor shape (read-only view)."""
        return _full(getattr(self, field), self.shape)

    def int_bounds(self) -> tuple[int, int]:
        """Overall integer range as Python ints."""
        if not self.is_scaled_int:
            raise ValueError("range has no integer form")
        return int(np.min(self.int_lo)), int(np.max(self.int_hi))

    def integer_value_bounds(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Compact exact bounds of the tensor's *values* when they are all
        integers (scaled-int with integral scale and bias: an accumulator,
        a bipolar tensor 2q - 1, levels with an integer offset), else None."""
        if not self.is_scaled_int:
            return None
        s, b = self.scale, self.bias
        if not (np.all(s == np.round(s)) and np.all(b == np.round(b))):
            return None
        si, bi = nx.as_int(s), nx.as_int(b)
        at_lo = nx.int_add(nx.int_mul(si, self.int_lo), bi)
        at_hi = nx.int_add(nx.int_mul(si, self.int_hi), bi)
        return np.minimum(at_lo, at_hi), np.maximum(at_lo, at_hi)

    def integer_values(self) -> Optional[tuple[int, int]]:
        """Overall range of :meth:`integer_value_bounds` as Python ints."""
        bounds = self.integer_value_bounds()
        return None if bounds is None else (int(np.min(bounds[0])), int(np.max(bounds[1])))

    def is_bipolar(self) -> bool:
        """Values are +-1 only: integers in [-1, 1] on a grid of step 2
        through the odd numbers."""
        vr = self.integer_values()
        return vr is not None and vr[0] >= -1 and vr[1] <= 1 and bool(np.all(self.scale % 2 == 0) and np.all(self.bias % 2 != 0))

    def const_value(self) -> np.ndarray:
        if self.value is None:
            raise ValueError("range is not a constant")
        return self.value

    def uniform_scale_bias(self) -> bool:
        return self.is_scaled_int and self.scale.size == 1 and self.bias.size == 1

    def zero_bias_form(self, max_den: int = 16) -> Optional["ScaledIntRange"]:
        """The same set of values as a grid with zero bias, or None.

        ``s*q + b`` with ``b/s = a/d`` (exact rational, d <= max_den) equals
        ``(s/d) * (d*q + a)``: an integer zero-point (d = 1) or the half-step
        offset of a bipolar tensor (values +-s as 2s*q - s, d = 2) folds into
        the integer part. MAC rules need zero-bias operands."""
        if not self.is_scaled_int:
            return None
        if np.all(self.bias == 0):
            return self
        shape = np.broadcast_shapes(self.bias.shape, self.scale.shape)
        b = np.broadcast_to(self.bias, shape)
        sc = np.broadcast_to(self.scale, shape)
        num = np.empty(shape, dtype=object)
        den = np.empty(shape, dtype=np.int64)
        for idx in np.ndindex(*shape):
            ratio = Fraction(float(b[idx])) / Fraction(float(sc[idx]))
            if ratio.denominator > max_den:
                return None
            num[idx], den[idx] = ratio.numerator, ratio.denominator
        d = nx.as_int(den)
        offset = nx.as_int(num)
        return dataclasses.replace(
            ScaledIntRange.scaled(
                self.shape,
                nx.int_add(nx.int_mul(d, self.int_lo), offset),
                nx.int_add(nx.int_mul(d, self.int_hi), offset),
                sc / den,
                0.0,
                exact=self.exact,
                clamp_lo=self.lo,
                clamp_hi=self.hi,
                scale_sources=self.scale_sources,
                bias_sources=self.bias_sources,
                notes=self.notes,
            ),
            value=self.value,
        )

    # ------------------------------------------------------------------
    # arithmetic (shared by the op rules)
    # ------------------------------------------------------------------

    def add_const(self, c, source: Optional[str] = None, out_shape=None) -> "ScaledIntRange":
        """self + c for a constant array c (broadcasting). Exact."""
        c = np.asarray(c, dtype=np.float64)
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, c.shape))
        c = compact(c, shape)
        lo, hi = _add_bounds(self.lo, self.hi, c, c)
        if self.is_scaled_int:
            r = ScaledIntRange.scaled(
                shape,
                self.int_lo,
                self.int_hi,
                self.scale,
                self.bias + c,
                exact=self.exact,
                clamp_lo=lo,
                clamp_hi=hi,
                scale_sources=self.scale_sources,
                bias_sources=self.bias_sources | ({source} if source else set()),
                notes=self.notes,
            )
            return r
        return ScaledIntRange.real(shape, lo, hi, exact=self.exact, notes=self.notes)

    def mul_const(self, c, source: Optional[str] = None, out_shape=None) -> "ScaledIntRange":
        """self * c for a constant array c (broadcasting). Exact.

        A zero factor makes its elements the constant 0 (grid scale 1)."""
        c = np.asarray(c, dtype=np.float64)
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, c.shape))
        c = compact(c, shape)
        lo, hi = nx.interval_mul(self.lo, self.hi, c, c)
        if self.is_scaled_int:
            zero = c == 0
            if np.any(zero):
                qlo = np.where(zero, 0, self.int_lo)
                qhi = np.where(zero, 0, self.int_hi)
                s = np.where(zero, 1.0, self.scale * c)
                bias = np.where(zero, 0.0, self.bias * c)
            else:
                qlo, qhi, s, bias = self.int_lo, self.int_hi, self.scale * c, self.bias * c
            return ScaledIntRange.scaled(
                shape,
                qlo,
                qhi,
                s,
                bias,
                exact=self.exact,
                clamp_lo=lo,
                clamp_hi=hi,
                scale_sources=self.scale_sources | ({source} if source else set()),
                bias_sources=self.bias_sources,
                notes=self.notes,
            )
        return ScaledIntRange.real(shape, lo, hi, exact=self.exact, notes=self.notes)

    def neg(self) -> "ScaledIntRange":
        return self.mul_const(-1.0)

    def add(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """self + other for two independent dynamic ranges.

        Real bounds are exact for independent operands. The integer form is
        kept when the two scales are in a rational ratio a/b with small a, b
        (equal scales, integer and power-of-two ratios included): then
        s1*q1 + s2*q2 = t*(a*q1' ...) with t = s2/b, q = a*q1 + b*q2.
        """
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo, hi = _add_bounds(self.lo, self.hi, other.lo, other.hi)
        if not (self.is_scaled_int and other.is_scaled_int):
            return ScaledIntRange.derived(shape, lo, hi, (self, other))
        ratio = common_grid(self.scale, other.scale)
        if ratio is None:
            return ScaledIntRange.derived(shape, lo, hi, (self, other), notes=("scales of the two operands have no common integer grid",))
        ka, kb, t = ratio
        # ka is negative for scales of opposite sign (a - b is a + (-b)):
        # then ka*q1 is largest at q1's low end
        alo, ahi = nx.int_range_product(ka, ka, self.int_lo, self.int_hi)
        blo, bhi = nx.int_range_product(kb, kb, other.int_lo, other.int_hi)
        grid = (nx.int_add(alo, blo), nx.int_add(ahi, bhi), t, self.bias + other.bias)
        return ScaledIntRange.derived(shape, lo, hi, (self, other), grid)

    def sub(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        return self.add(other.neg(), out_shape=out_shape)

    def mul(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """self * other for two independent dynamic ranges.

        Real bounds: exact four-corner product. Integer form when both biases
        are zero: scale s1*s2, q the exact integer interval product."""
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo, hi = nx.interval_mul(self.lo, self.hi, other.lo, other.hi)
        if (
            self.is_scaled_int
            and other.is_scaled_int
            and np.all(self.bias == 0)
            and np.all(other.bias == 0)
        ):
            qlo, qhi = nx.int_range_product(self.int_lo, self.int_hi, other.int_lo, other.int_hi)
            return ScaledIntRange.derived(shape, lo, hi, (self, other), (qlo, qhi, self.scale * other.scale, 0.0))
        return ScaledIntRange.derived(shape, lo, hi, (self, other))

    def union(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """The hull of two ranges (for ops whose output is one of its inputs,
        e.g. Max/Min/Where). Keeps the integer form when the grids agree."""
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo = np.minimum(self.lo, other.lo)
        hi = np.maximum(self.hi, other.hi)
        if (
            self.is_scaled_int
            and other.is_scaled_int
            and _same(self.scale, other.scale)
            and _same(self.bias, other.bias)
        ):
            grid = (np.minimum(self.int_lo, other.int_lo), np.maximum(self.int_hi, other.int_hi), self.scale, self.bias)
            return ScaledIntRange.derived(shape, lo, hi, (self, other), grid)
        return ScaledIntRange.derived(shape, lo, hi, (self, other))

    def clip_real(self, lo_bound, hi_bound) -> "ScaledIntRange":
        """Intersect with [lo_bound, hi_bound] where the op is a clamp whose
        bounds lie on the grid; falls back to real bounds otherwise."""
        lo = np.minimum(np.maximum(self.lo, lo_bound), hi_bound)
        hi = np.maximum(np.minimum(self.hi, hi_bound), lo_bound)
        if self.is_scaled_int:
            q_a = _grid_index(lo_bound, self.scale, self.bias)
            q_b = _grid_index(hi_bound, self.scale, self.bias)
            if q_a is not None and q_b is not None:
                pos = self.scale > 0
                qmin = np.where(pos, q_a, q_b)
                qmax = np.where(pos, q_b, q_a)
                qlo = np.minimum(np.maximum(self.int_lo, qmin), qmax)
                qhi = np.maximum(np.minimum(self.int_hi, qmax), qmin)
                grid = (nx.as_int(qlo), nx.as_int(qhi), self.scale, self.bias)
                return ScaledIntRange.derived(self.shape, lo, hi, (self,), grid)
        return ScaledIntRange.derived(self.shape, lo, hi, (self,))

    # ------------------------------------------------------------------
    # data movement
    # ------------------------------------------------------------------

    def move(self, fn: Callable[[np.ndarray], np.ndarray], out_shape) -> "ScaledIntRange":
        """Apply a pure data-movement function (reshape, transpose, slice,
        gather, ...) to every field. ``fn`` maps a full-shape array to the
        full output array; fields that are uniform stay uniform without being
        materialized. Exact."""
        out_shape = tuple(int(d) for d in out_shape)

        def mv(a):
            if a.size == 1:
                return a.reshape((1,) * len(out_shape))
            return compact(fn(_full(a, self.shape)), out_shape)

        value = None if self.value is None else np.asarray(fn(self.value)).reshape(out_shape)
        return self.map_fields(mv, out_shape, value)

    def map_fields(self, fn: Callable[[np.ndarray], np.ndarray], out_shape, value) -> "ScaledIntRange":
        """The range with ``fn`` applied to every per-element field (bounds,
        integer bounds, scale, bias), a new shape and constant value."""
        fields = ("lo", "hi", "int_lo", "int_hi", "scale", "bias")
        moved = {f: (None if getattr(self, f) is None else fn(getattr(self, f))) for f in fields}
        return dataclasses.replace(self, shape=tuple(out_shape), value=value, **moved)

    def per_channel(self, field: str, axis: int = 1, reduce: str = "min") -> np.ndarray:
        """A field reduced to one value per index of ``axis`` (hull over the
        other axes): what reports and hardware widths use."""
        a = getattr(self, field)
        if self.ndim == 0:
            return np.asarray(a).reshape(1)
        axis = axis % self.ndim
        others = tuple(i for i in range(self.ndim) if i != axis)
        f = np.min if reduce == "min" else np.max
        red = f(a, axis=others) if others else a
        return np.broadcast_to(np.asarray(red).reshape(-1), (self.shape[axis],)) if red.size == 1 else np.asarray(red).reshape(-1)


def concat_ranges_field(ranges: Sequence[ScaledIntRange], field: str, axis: int, out_shape) -> np.ndarray:
    """One field of a concatenation, compact: parts are broadcast to a common
    compact shape on the other axes, then joined along ``axis``."""
    parts = []
    for r in ranges:
        a = getattr(r, field)
        target = list(a.shape)
        target[axis] = r.shape[axis]
        parts.append(np.broadcast_to(a, target))
    common = [1] * len(out_shape)
    for p in parts:
        for i, d in enumerate(p.shape):
            if i != axis and d > 1:
                common[i] = out_shape[i]
    aligned = []
    for p in parts:
        t = list(common)
        t[axis] = p.shape[axis]
        aligned.append(np.broadcast_to(p, t))
    return compact(np.concatenate(aligned, axis=axis), out_shape)


def concat_ranges(ranges: Sequence[ScaledIntRange], axis: int, out_shape) -> ScaledIntRange:
    """Concatenation along ``axis``. Exact. Integer form kept when every part
    has one: with one common scale when the parts' per-tensor scales share a
    grid (see :func:`part_grid_factors`), else with scales per position
    along ``axis``."""
    out_shape = tuple(int(d) for d in out_shape)
    axis = axis % len(out_shape)

    def cat(field):
        return concat_ranges_field(ranges, field, axis, out_shape)

    lo, hi = cat("lo"), cat("hi")
    value = np.concatenate([r.value for r in ranges], axis=axis) if all(r.is_const for r in ranges) else None
    if not all(r.is_scaled_int for r in ranges):
        return ScaledIntRange.derived(out_shape, lo, hi, ranges).replace(value=value)
    factors = part_grid_factors(ranges)
    if factors is None:  # scales differ per position along the axis
        grid = (cat("int_lo"), cat("int_hi"), cat("scale"), cat("bias"))
    else:  # one common scale t: part i contributes k_i * q_i
        k, t = factors
        scaled = [nx.int_range_product(np.asarray(ki), np.asarray(ki), r.int_lo, r.int_hi) for ki, r in zip(k, ranges)]
        parts = [dataclasses.replace(r, int_lo=a, int_hi=b) for r, (a, b) in zip(ranges, scaled)]
        grid = (concat_ranges_field(parts, "int_lo", axis, out_shape), concat_ranges_field(parts, "int_hi", axis, out_shape), t, cat("bias"))
    return ScaledIntRange.derived(out_shape, lo, hi, ranges, grid).replace(value=value)


def part_grid_factors(ranges: Sequence[ScaledIntRange]):
    """Integers k_i and one scale t with scale_i = k_i * t for parts with
    per-tensor scales (folding :func:`common_grid` over the parts), or None.
    Concat and residual joins of branches quantized with different scales
    keep one grid this way."""
    if not all(r.scale.size == 1 for r in ranges):
        return None
    t = ranges[0].scale.reshape(-1)[:1]
    k = [1]
    for r in ranges[1:]:
        g = common_grid(t, r.scale.reshape(-1)[:1])
        if g is None:
            return None
        ka, kb, t = g
        k = [ki * int(np.asarray(ka).reshape(-1)[0]) for ki in k] + [int(np.asarray(kb).reshape(-1)[0])]
    return k, float(np.asarray(t).reshape(-1)[0])


def common_grid(s1: np.ndarray, s2: np.ndarray, max_factor: int = 2**20):
    """Integer factors (ka, kb) and a scale t with s1 = ka*t and s2 = kb*t
    elementwise, or None. Found exactly with rationals: s1/s2 = ka/kb in
    lowest terms, t = s2/kb. Equal scales give (1, 1, s1)."""
    if _same(s1, s2):
        one = np.ones((1,) * max(s1.ndim, s2.ndim), dtype=np.int64)
        return one, one, s1 if s1.ndim >= s2.ndim else s2
    shape = np.broadcast_shapes(s1.shape, s2.shape)
    a = np.broadcast_to(s1, shape)
    b = np.broadcast_to(s2, shape)
    ka = np.empty(shape, dtype=np.int64)
    kb = np.empty(shape, dtype=np.int64)
    t = np.empty(shape, dtype=np.float64)
    for idx in np.ndindex(*shape):
        r = Fraction(float(a[idx])) / Fraction(float(b[idx]))
        num, den = r.numerator, r.denominator
        if abs(num) > max_factor or den > max_factor:
            return None
        ka[idx] = abs(num) if num > 0 else -abs(num)
        kb[idx] = den
        t[idx] = float(Fraction(float(b[idx])) / den)
        # the common unit must reproduce both scales exactly
        if Fraction(float(t[idx])) * den != Fraction(float(b[idx])):
            return None
    # a negative ratio moves the sign into ka; keep t with the sign of s2
    return ka, kb, t


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        return bool(np.all(a == b))
    except ValueError:
        return False


def _grid_index(v, scale, bias):
    """Integer k with v == scale*k + bias for every element, else None."""
    v = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        return None
    k = np.round((v - bias) / scale)
    if np.all(scale * k + bias == v):
        return k.astype(np.int64)
    return None


def _add_bounds(alo, ahi, blo, bhi):
    return nx.add_down(alo, blo), nx.add_up(ahi, bhi)


def move_along(r: ScaledIntRange, fn: Callable[[np.ndarray], np.ndarray], out_shape, axes: Sequence[int]) -> ScaledIntRange:
    """:meth:`ScaledIntRange.move` for a movement that acts on ``axes`` only
    and maps every other axis 1:1 (slicing, take, pad, repeat along
    ``axes``; transposition or inserting/removing length-1 axes with no
    ``axes`` at all). ``fn`` must accept arrays whose other axes have any
    length; each field is broadcast along ``axes`` alone, so per-channel data
    is never materialized per element. Exact."""
    out_shape = tuple(int(d) for d in out_shape)
    touched = {a % r.ndim for a in axes} if r.ndim else set()

    def mv(a):
        if a.size == 1:
            return a.reshape((1,) * len(out_shape))
        target = tuple(r.shape[i] if i in touched else d for i, d in enumerate(a.shape))
        return compact(fn(np.broadcast_to(a, target)), out_shape)

    value = None if r.value is None else np.broadcast_to(fn(r.value), out_shape).copy()
    return r.map_fields(mv, out_shape, value)

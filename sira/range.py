"""The value type of the analysis: :class:`ScaledIntRange`.

(Longer than sira's usual module: the value type owns all interval and
grid arithmetic, and its methods and the helpers they share stay in one
place rather than spread over modules that would each need the class.)

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
``ConstantRange``), and rules carry no versions of their own: constants
added, multiplied or divided in; sums, products and quotients of two ranges;
hulls, clamps and elementwise max/min (sharing a grid where they can); the
bounds of a dot product with constant weights; images under monotone maps;
data movement. Grid membership is decided in one place,
:func:`grid_match`, exactly in the rationals. Every range is checked
against its invariants when it is built or edited (see
:func:`_check_invariants`).
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
#: relative disagreement allowed between real bounds and grid bounds: a
#: constant's real value is its stored float32 value, the grid's is exact
_CONSISTENCY = 2.0**-20
#: relative distance below which an off-grid verdict in float64 may be an
#: artifact of rounding and is settled with rationals
_NEAR_MISS = 2.0**-40


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
            at = (slice(None),) * ax
            first = arr[at + (slice(0, 1),)]  # views, not copies
            # the second slice settles most non-constant axes without a full pass
            if np.array_equal(arr[at + (slice(1, 2),)], first) and np.all(arr == first):
                arr = np.array(first)
    return arr


def _full(a: np.ndarray, shape: Shape) -> np.ndarray:
    return np.broadcast_to(a, shape)


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

    def __post_init__(self):
        _check_invariants(self)

    # ------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------

    @classmethod
    def real(cls, shape, lo, hi, *, exact: bool = True, **kw) -> "ScaledIntRange":
        """A range with only real bounds (no integer grid known)."""
        shape = tuple(int(d) for d in shape)
        lo = compact(np.asarray(lo, dtype=np.float64), shape)
        hi = compact(np.asarray(hi, dtype=np.float64), shape)
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
        if np.any(qlo > qhi):
            raise ValueError("empty integer range: int_lo exceeds int_hi")
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
        """The range with some fields changed; the invariants are checked
        again (see :func:`_check_invariants`)."""
        return dataclasses.replace(self, **changes)

    def with_bounds(self, lo, hi) -> "ScaledIntRange":
        """The range with real bounds computed soundly for the exact semantics
        of an op. Used where the grid's float64 scale is a rounded value (1/c,
        BN's multiplier, s*s, s/n): the grid is exact only up to that
        rounding, and its own bounds must not narrow the sound ones."""
        return self.replace(lo=compact(np.asarray(lo, dtype=np.float64), self.shape), hi=compact(np.asarray(hi, dtype=np.float64), self.shape))

    def broadcast(self, shape) -> "ScaledIntRange":
        """The range laid out on ``shape`` (ONNX broadcasting), provenance
        cleared: what an op that passes one operand through produces."""
        if self.is_scaled_int:
            return ScaledIntRange.scaled(
                shape, self.int_lo, self.int_hi, self.scale, self.bias, exact=self.exact, clamp_lo=self.lo, clamp_hi=self.hi, notes=self.notes
            )
        return ScaledIntRange.real(shape, self.lo, self.hi, exact=self.exact, notes=self.notes)

    def with_note(self, note: str) -> "ScaledIntRange":
        return dataclasses.replace(self, notes=self.notes + (note,))

    def loose(self, note: str = "") -> "ScaledIntRange":
        """The same range, marked sound-but-not-tight."""
        notes = self.notes + ((note,) if note else ())
        return dataclasses.replace(self, exact=False, notes=notes)

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
        grid = ScaledIntRange.scaled(
            self.shape,
            nx.int_add(nx.int_mul(d, self.int_lo), offset),
            nx.int_add(nx.int_mul(d, self.int_hi), offset),
            sc / den,
            0.0,
            exact=self.exact,
            scale_sources=self.scale_sources,
            bias_sources=self.bias_sources,
            notes=self.notes,
        )
        # the same values, so the same real bounds: a constant's are its
        # stored (float32) value, which the grid reproduces only up to rounding
        return grid.replace(lo=self.lo, hi=self.hi, value=self.value)

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
        are zero, or fold into the integer parts (:meth:`zero_bias_form`: an
        integer offset such as thresholds' always-reached levels, a bipolar
        half step): scale s1*s2, q the exact integer interval product."""
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo, hi = nx.interval_mul(self.lo, self.hi, other.lo, other.hi)
        a, b = self, other
        if a.is_scaled_int and b.is_scaled_int and not (np.all(a.bias == 0) and np.all(b.bias == 0)):
            a, b = a.zero_bias_form() or a, b.zero_bias_form() or b
        if a.is_scaled_int and b.is_scaled_int and np.all(a.bias == 0) and np.all(b.bias == 0):
            qlo, qhi = nx.int_range_product(a.int_lo, a.int_hi, b.int_lo, b.int_hi)
            return ScaledIntRange.derived(shape, lo, hi, (self, other), (qlo, qhi, a.scale * b.scale, 0.0))
        return ScaledIntRange.derived(shape, lo, hi, (self, other))

    def square(self, out_shape=None) -> "ScaledIntRange":
        """self * self (one tensor, not two independent ones): exact,
        including the minimum 0 when the range straddles 0. Integer form
        q'*q' with scale s*s when 0 lies on the grid (see
        :meth:`centered_int_bounds`); otherwise real, and loose if the
        minimum 0 is off the grid."""
        shape = tuple(out_shape) if out_shape is not None else self.shape
        straddle = (self.lo < 0) & (self.hi > 0)
        lo = np.where(straddle, 0.0, np.minimum(nx.mul_down(self.lo, self.lo), nx.mul_down(self.hi, self.hi)))
        hi = np.maximum(nx.mul_up(self.lo, self.lo), nx.mul_up(self.hi, self.hi))
        centered = self.centered_int_bounds()
        if centered is None:
            return ScaledIntRange.real(shape, lo, hi, exact=self.exact and not self.misses_any((0.0,)), notes=self.notes)
        qlo, qhi = centered
        at_lo, at_hi = nx.int_mul(qlo, qlo), nx.int_mul(qhi, qhi)
        sq_lo = np.where((qlo < 0) & (qhi > 0), 0, nx.int_minimum(at_lo, at_hi))
        r = ScaledIntRange.scaled(shape, sq_lo, nx.int_maximum(at_lo, at_hi), self.scale * self.scale, 0.0, exact=self.exact, notes=self.notes)
        if np.all(self.bias == 0):  # bilinear in the scale: the provenance carries over, as in ``mul``
            r = r.replace(scale_sources=self.scale_sources, bias_sources=self.bias_sources)
        return r.with_bounds(lo, hi)

    def div(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """self / other for independent operands: the exact four corners,
        rounded outward, where the divisor excludes 0; unbounded (with a
        note, and loose) where it contains or touches 0, never a finite
        bound that division by a value near 0 could break. Off the grid."""
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo, hi, zero = nx.interval_div(self.lo, self.hi, other.lo, other.hi)
        if not np.any(zero):
            return ScaledIntRange.derived(shape, lo, hi, (self, other), exact=self.exact and other.exact)
        note = (
            f"divisor range [{np.min(other.lo):g}, {np.max(other.hi):g}] contains 0: the quotient is unbounded "
            "(or NaN) there; bound the divisor away from 0 (e.g. add an epsilon or clip it) for a finite range"
        )
        return ScaledIntRange.derived(shape, lo, hi, (self, other), exact=False, notes=(note,))

    def div_const(self, c, source: Optional[str] = None, out_shape=None) -> "ScaledIntRange":
        """self / c for a constant non-zero array c. Exact: the real bounds
        are the exact quotients rounded outward; the integer form is that of
        ``self * (1/c)`` (scale s/c, bias b/c in float64, so the grid is
        exact up to the rounding of 1/c), dropped with a note where s/c
        over- or underflows."""
        c = np.asarray(c, dtype=np.float64)
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, c.shape))
        lo, hi, _ = nx.interval_div(self.lo, self.hi, c, c)
        if not self.is_scaled_int:
            return ScaledIntRange.real(shape, lo, hi, exact=self.exact, notes=self.notes)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            recip = 1.0 / c
            new_scale = self.scale * recip
        if not (np.all(np.isfinite(new_scale)) and np.all(new_scale != 0)):
            note = "Div: the divided scale over- or underflows float64; integer form dropped"
            return ScaledIntRange.real(shape, lo, hi, exact=self.exact, notes=self.notes + (note,))
        return self.mul_const(recip, source=source, out_shape=shape).with_bounds(lo, hi)

    def linear_bounds(self, op: Callable, w: np.ndarray, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
        """Sound real bounds of ``op(x, w)`` for x in this range and point
        weights w, ``op`` a bilinear map summing ``n_terms`` products per
        output (x @ W, a convolution): per output, the positive weights times
        the input's upper end plus the negative ones times its lower end (and
        the mirror), rounded outward. Exact for independent elements."""
        return nx.linear_bounds(op, self.lo, self.hi, w, n_terms)

    def int_linear_bounds(self, op: Callable, wq: np.ndarray, n_terms: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact bounds of ``op(q, wq)`` for q in [int_lo, int_hi] and point
        integer weights: the integer part of a layer with constant weights."""
        return nx.int_linear_bounds(op, self.int_lo, self.int_hi, wq, n_terms)

    def monotone_image(self, f: Callable[[np.ndarray], np.ndarray], integers: bool = False) -> "ScaledIntRange":
        """The range of f(x) for a non-decreasing elementwise f that float64
        evaluates exactly (floor, ceil, round, sign): [f(lo), f(hi)], exact.
        With ``integers`` (f takes integer values) a finite result is an
        integer grid of scale 1."""
        lo, hi = f(self.lo), f(self.hi)
        if integers and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
            return ScaledIntRange.scaled(self.shape, nx.as_int(lo), nx.as_int(hi), 1.0, 0.0, exact=self.exact, notes=self.notes)
        return ScaledIntRange.real(self.shape, lo, hi, exact=self.exact, notes=self.notes)

    def union(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """The hull of two ranges (for ops whose output is one of its inputs,
        e.g. Where, or a nearest Resize that may pick either neighbour).
        Keeps the integer form when both lie on one grid (see
        :meth:`_shared_grid`). Exact: both end points are attained."""
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        lo = np.minimum(self.lo, other.lo)
        hi = np.maximum(self.hi, other.hi)
        shared = self._shared_grid(other)
        if shared is None:
            return ScaledIntRange.derived(shape, lo, hi, (self, other))
        qa, qb, scale, bias = shared
        grid = (nx.int_minimum(qa[0], qb[0]), nx.int_maximum(qa[1], qb[1]), scale, bias)
        return ScaledIntRange.derived(shape, lo, hi, (self, other), grid)

    def maximum(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """max(self, other) elementwise: exact real bounds for independent
        operands. When one operand dominates the other everywhere the result
        is that operand; otherwise the integer form is kept when both lie on
        one grid (same scale and bias, a constant on the other's grid, or
        scales in a small rational ratio with equal biases)."""
        return self._extreme(other, out_shape, take_max=True)

    def minimum(self, other: "ScaledIntRange", out_shape=None) -> "ScaledIntRange":
        """min(self, other) elementwise; as :meth:`maximum`."""
        return self._extreme(other, out_shape, take_max=False)

    def _extreme(self, other: "ScaledIntRange", out_shape, take_max: bool) -> "ScaledIntRange":
        shape = tuple(out_shape) if out_shape is not None else tuple(np.broadcast_shapes(self.shape, other.shape))
        pick = np.maximum if take_max else np.minimum
        lo, hi = pick(self.lo, other.lo), pick(self.hi, other.hi)

        def dominates(u, v):  # u is the result wherever it is defined
            return bool(np.all(u.lo >= v.hi) if take_max else np.all(u.hi <= v.lo))

        if dominates(self, other):
            return self.broadcast(shape)
        if dominates(other, self):
            return other.broadcast(shape)
        shared = self._shared_grid(other)
        if shared is not None:
            qa, qb, scale, bias = shared
            # a larger value is a larger q for a positive scale, a smaller one otherwise
            up = (scale > 0) == take_max
            qlo = np.where(up, nx.int_maximum(qa[0], qb[0]), nx.int_minimum(qa[0], qb[0]))
            qhi = np.where(up, nx.int_maximum(qa[1], qb[1]), nx.int_minimum(qa[1], qb[1]))
            return ScaledIntRange.scaled(
                shape, nx.as_int(qlo), nx.as_int(qhi), scale, bias, exact=self.exact and other.exact,
                clamp_lo=lo, clamp_hi=hi, notes=self.notes + other.notes,
            )
        notes = ("the operands do not lie on one integer grid (e.g. a clip bound off the input's grid); integer form dropped",) if self.is_scaled_int or other.is_scaled_int else ()
        return ScaledIntRange.real(shape, lo, hi, exact=self.exact and other.exact, notes=self.notes + other.notes + notes)

    def _shared_grid(self, other: "ScaledIntRange"):
        """Integer bounds of both ranges on one grid, with its scale and
        bias: the grid of either when the other lies on it (see
        :meth:`grid_bounds`), else, for equal biases and scales in a small
        rational ratio, their common refinement (see :func:`common_grid`);
        None when there is none."""
        for g in (self, other):
            qa, qb = self.grid_bounds(g), other.grid_bounds(g)
            if qa is not None and qb is not None:
                return qa, qb, g.scale, g.bias
        if not (self.is_scaled_int and other.is_scaled_int and _same(self.bias, other.bias)):
            return None
        found = common_grid(self.scale, other.scale)
        if found is None:
            return None
        ka, kb, t = found
        qa = nx.int_range_product(ka, ka, self.int_lo, self.int_hi)
        qb = nx.int_range_product(kb, kb, other.int_lo, other.int_hi)
        return qa, qb, t, self.bias

    def clip_real(self, lo_bound, hi_bound) -> "ScaledIntRange":
        """Intersect with [lo_bound, hi_bound] (arrays; -inf/inf for no
        bound), as a clamp does. The integer form is kept where the finite
        bounds lie exactly on the grid; real bounds only otherwise."""
        lo_bound = np.asarray(lo_bound, dtype=np.float64)
        hi_bound = np.asarray(hi_bound, dtype=np.float64)
        lo = np.minimum(np.maximum(self.lo, lo_bound), hi_bound)
        hi = np.maximum(np.minimum(self.hi, hi_bound), lo_bound)
        if not self.is_scaled_int:
            return ScaledIntRange.derived(self.shape, lo, hi, (self,))
        has_lo, has_hi = np.isfinite(lo_bound), np.isfinite(hi_bound)
        q_a = self.grid_index(np.where(has_lo, lo_bound, 0.0), where=has_lo)
        q_b = self.grid_index(np.where(has_hi, hi_bound, 0.0), where=has_hi)
        if q_a is None or q_b is None:
            return ScaledIntRange.derived(self.shape, lo, hi, (self,))
        pos = self.scale > 0

        def clamp(q):
            # max with the lower bound first, then min with the upper one (so
            # lo > hi gives hi); a negative scale swaps them in q-space
            up = np.where(has_lo, nx.int_maximum(q, q_a), q)
            up = np.where(has_hi, nx.int_minimum(up, q_b), up)
            down = np.where(has_lo, nx.int_minimum(q, q_a), q)
            down = np.where(has_hi, nx.int_maximum(down, q_b), down)
            return nx.as_int(np.where(pos, up, down))

        grid = (clamp(self.int_lo), clamp(self.int_hi), self.scale, self.bias)
        return ScaledIntRange.derived(self.shape, lo, hi, (self,), grid)

    def hull_along(self, axes: Sequence[int], out_shape, regroup=lambda a: a) -> "ScaledIntRange":
        """Every output element is *some* element along ``axes`` (which one
        is not known statically): the hull over those axes, per position of
        the other axes. ``regroup`` maps the reduced compact arrays to the
        output's rank. The integer form survives when scale and bias do not
        vary along ``axes``."""
        axes = tuple(axes)

        def red(a, f):
            return regroup(f(a, axis=axes, keepdims=True))

        lo, hi = red(self.lo, np.min), red(self.hi, np.max)
        if self.is_scaled_int and all(self.scale.shape[a] == 1 and self.bias.shape[a] == 1 for a in axes):
            grid = (red(self.int_lo, np.min), red(self.int_hi, np.max), regroup(self.scale), regroup(self.bias))
            return ScaledIntRange.derived(out_shape, lo, hi, (self,), grid)
        return ScaledIntRange.derived(out_shape, lo, hi, (self,))

    # ------------------------------------------------------------------
    # the integer grid
    # ------------------------------------------------------------------

    def grid_index(self, v, where=None) -> Optional[np.ndarray]:
        """Compact integers k with ``scale*k + bias == v`` exactly (as
        rationals) for every element (every element where ``where`` is
        set; 0 elsewhere), or None when some value is off the grid."""
        if not self.is_scaled_int:
            return None
        k, on = grid_match(v, self.scale, self.bias)
        if where is not None:
            on = on | ~np.asarray(where, dtype=bool)
            k = np.where(on & np.asarray(where, dtype=bool), k, 0)
        return nx.as_int(k) if np.all(on) else None

    def grid_bounds(self, g: "ScaledIntRange") -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Integer bounds of this range on the grid of ``g``: its own when it
        has that grid, the exact index of a point range lying on it, else
        None."""
        if not g.is_scaled_int:
            return None
        if self.is_scaled_int and _same(self.scale, g.scale) and _same(self.bias, g.bias):
            return self.int_lo, self.int_hi
        if np.all(self.lo == self.hi) and np.all(np.isfinite(self.lo)):
            k = g.grid_index(self.lo)
            if k is not None:
                return k, k
        return None

    def centered_int_bounds(self) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """Bounds of q' = q + bias/scale when that shift is an exact integer
        everywhere, so that the values are ``scale * q'`` (bias 0) and real
        0 sits at q' = 0; None when 0 is off the grid somewhere."""
        if not self.is_scaled_int:
            return None
        k = self.grid_index(np.zeros_like(self.bias))
        if k is None:
            return None
        shift = nx.int_neg(k)  # 0 = scale*k + bias, so bias = scale*(-k)
        return nx.int_add(self.int_lo, shift), nx.int_add(self.int_hi, shift)

    def misses_any(self, points: Sequence[float]) -> bool:
        """True when a point c lies strictly inside some element's range but
        the range is known to take only grid values and c is not one of
        them: an interior extremum at c is then not attained (bounds over
        the interval stay sound, just not tight)."""
        if not self.is_scaled_int:
            return False
        for c in points:
            inside = (self.lo < c) & (c < self.hi)
            # checked on the compact grid arrays, not per element of the bounds
            if np.any(inside & ~grid_match(np.float64(c), self.scale, self.bias)[1]):
                return True
        return False

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


#: largest integer factor a Concat's parts are aligned with: float32 scales
#: of independently trained branches have a dyadic common grid with factors
#: of about 2**24 (the mantissa) times their exponent spread; the joined
#: integer is that much wider, which hardware carries exactly, while scales
#: with no common grid this fine stay unaligned (and are refused by lowering)
CONCAT_MAX_FACTOR = 2**32


def part_grid_factors(ranges: Sequence[ScaledIntRange], max_factor: int = 2**20):
    """Integers k_i and one scale t with scale_i = k_i * t for parts with
    per-tensor scales (folding :func:`common_grid` over the parts), or None.
    Concat and residual joins of branches quantized with different scales
    keep one grid this way; ``max_factor`` bounds each pairwise ratio's
    terms (Concat passes :data:`CONCAT_MAX_FACTOR`)."""
    if not all(r.scale.size == 1 for r in ranges):
        return None
    t = ranges[0].scale.reshape(-1)[:1]
    k = [1]
    for r in ranges[1:]:
        g = common_grid(t, r.scale.reshape(-1)[:1], max_factor)
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


def grid_match(v, scale, bias) -> tuple[np.ndarray, np.ndarray]:
    """Per element, a grid index k of v (float64, integral) and whether
    ``scale*k + bias == v`` holds exactly as rational numbers.

    The nearest index is checked with error-free transforms (the product
    and the sum exact and equal to v); a near miss, where float64 rounding
    may hide an exact identity (a non-dyadic scale such as 0.1), is settled
    with rationals, element by element — there are few of them, as the
    arrays are compact."""
    v, scale, bias = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (v, scale, bias)))
    shape = v.shape
    v, scale, bias = (np.atleast_1d(a) for a in (v, scale, bias))
    finite = np.isfinite(v) & np.isfinite(scale) & np.isfinite(bias) & (scale != 0)
    with np.errstate(all="ignore"):
        k = np.rint((v - bias) / scale)
    k = np.where(finite & np.isfinite(k) & (np.abs(k) < nx.FLOAT_EXACT_INT), k, 0.0)
    p = nx.mul_down(scale, k)
    on = finite & (p == nx.mul_up(scale, k)) & (nx.add_down(p, bias) == v) & (nx.add_up(p, bias) == v)
    with np.errstate(all="ignore"):
        near = finite & ~on & (np.abs((p + bias) - v) <= _NEAR_MISS * (np.abs(v) + np.abs(bias) + np.abs(p)))
    if np.any(near):
        k, on = k.copy(), on.copy()
        for idx in zip(*np.nonzero(near)):
            q = (Fraction(float(v[idx])) - Fraction(float(bias[idx]))) / Fraction(float(scale[idx]))
            if q.denominator == 1 and abs(q.numerator) < nx.FLOAT_EXACT_INT:
                k[idx], on[idx] = float(q.numerator), True
    return k.reshape(shape), on.reshape(shape)


def integer_ratio(scale: np.ndarray, unit: np.ndarray, max_factor: int = 2**20) -> Optional[np.ndarray]:
    """Integers k with ``scale == k * unit`` exactly (elementwise,
    broadcasting) and |k| <= max_factor, or None. Sums of terms with such
    scales (per-channel scales that are power-of-two multiples of the
    smallest, say) share the grid of ``unit``."""
    with np.errstate(all="ignore"):
        k = np.rint(np.asarray(scale, dtype=np.float64) / unit)
    if not (np.all(np.isfinite(k)) and np.all(np.abs(k) <= max_factor)):
        return None
    exact = (nx.mul_down(k, unit) == scale) & (nx.mul_up(k, unit) == scale)
    return nx.as_int(k) if np.all(exact) else None


def _check_invariants(r: ScaledIntRange) -> None:
    """What every range satisfies, checked on construction and on every
    :meth:`~ScaledIntRange.replace`: fields broadcast to the shape, no NaN,
    lo <= hi, int_lo <= int_hi, a finite non-zero scale and a finite bias,
    and real bounds that meet the grid's bounds (up to the float32 rounding
    of a stored constant). Vectorized over the compact arrays."""
    fields = [r.lo, r.hi] + ([r.int_lo, r.int_hi, r.scale, r.bias] if r.int_lo is not None else [])
    try:
        np.broadcast_shapes(r.shape, *(np.shape(a) for a in fields))
    except ValueError:
        raise ValueError(f"range fields of shapes {[np.shape(a) for a in fields]} do not broadcast to {list(r.shape)}") from None
    if any(np.ndim(a) > len(r.shape) for a in fields):
        raise ValueError(f"a range field has more axes than the tensor shape {list(r.shape)}")
    # a constant's bounds are one array: one pass for NaN, none for order
    if np.any(np.isnan(r.lo)) or (r.hi is not r.lo and np.any(np.isnan(r.hi))):
        raise ValueError("NaN in range bounds")
    if r.hi is not r.lo and np.any(r.lo > r.hi):
        raise ValueError("empty range: a lower bound exceeds its upper bound")
    if r.int_lo is None:
        if any(f is not None for f in (r.int_hi, r.scale, r.bias)):
            raise ValueError("a partial integer form: int_lo, int_hi, scale and bias go together")
        return
    if r.int_hi is None or r.scale is None or r.bias is None:
        raise ValueError("a partial integer form: int_lo, int_hi, scale and bias go together")
    if r.int_hi is not r.int_lo and np.any(r.int_lo > r.int_hi):
        raise ValueError("empty integer range: int_lo exceeds int_hi")
    if not np.all(np.isfinite(r.scale)) or np.any(r.scale == 0):
        raise ValueError("scale must be finite and non-zero")
    if not np.all(np.isfinite(r.bias)):
        raise ValueError("bias must be finite")
    if r.value is not None:
        return  # a constant's bounds and grid are both computed from its value
    # plain float64 is enough against a tolerance of 2**-20 of the terms'
    # magnitudes (the error-free bounds cost more than the whole analysis)
    with np.errstate(invalid="ignore", over="ignore"):
        scale = np.asarray(r.scale, dtype=np.float64)
        a = scale * np.asarray(r.int_lo, dtype=np.float64)
        b = scale * np.asarray(r.int_hi, dtype=np.float64)
        glo, ghi = np.minimum(a, b) + r.bias, np.maximum(a, b) + r.bias
        slack = _CONSISTENCY * (np.abs(a) + np.abs(b) + np.abs(r.bias))
        meets = (r.lo <= ghi + slack) & (glo - slack <= r.hi)
    if not np.all(meets):
        raise ValueError("real bounds and integer grid disagree: [lo, hi] misses every grid value scale*q + bias with q in [int_lo, int_hi]")


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

"""The value type (sira/range.py) against brute force.

In the spirit of LLVM's ConstantRangeTest: every integer interval [a, b]
within 3 bits signed (36 of them; 4 bits, 136, for unary operations) is laid
out along one axis of a range, for scales and biases that include
non-dyadic ones (1/3, 0.1). Binary operations see every pair of intervals
at once through broadcasting. Brute force enumerates every element (every
pair of elements) in exact rational arithmetic and checks

* soundness, always: every value lies in [lo, hi] and, for scaled-int
  results, on the grid scale*q + bias with q in [int_lo, int_hi], exactly;
* exactness where the method claims it: the extremes are attained (equal
  for dyadic grids; within the documented float64 rounding otherwise) and
  the integer bounds are attained.

Values are compared through their rank among the exact rationals of all
element pairs, so the per-interval-pair minima and maxima are numpy
reductions, not Python loops.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sira.range import GRID_ROUNDING, ScaledIntRange, grid_match, integer_ratio

# every integer interval within 3 bits signed, one per position
_A3, _B3 = (np.array(v) for v in zip(*[(a, b) for a in range(-4, 4) for b in range(a, 4)]))
_Q3 = np.arange(-4, 4)
_M3 = (_Q3 >= _A3[:, None]) & (_Q3 <= _B3[:, None])  # (36, 8): q in interval i
# every integer interval within 4 bits signed
_A4, _B4 = (np.array(v) for v in zip(*[(a, b) for a in range(-8, 8) for b in range(a, 8)]))
_Q4 = np.arange(-8, 8)
_M4 = (_Q4 >= _A4[:, None]) & (_Q4 <= _B4[:, None])

DYADIC = [(1.0, 0.0), (0.25, 0.5), (-0.5, 0.125)]
NON_DYADIC = [(1 / 3, 0.0), (0.1, 0.1), (-0.1, 0.0)]
GRIDS = DYADIC + NON_DYADIC


def F(v) -> Fraction:
    return Fraction(float(v))


def column(scale, bias) -> ScaledIntRange:
    """The 36 3-bit intervals along axis 0 of a (36, 1) range."""
    return ScaledIntRange.scaled((len(_A3), 1), _A3[:, None], _B3[:, None], scale, bias)


def row(scale, bias) -> ScaledIntRange:
    """The 36 3-bit intervals along axis 1 of a (1, 36) range."""
    return ScaledIntRange.scaled((1, len(_A3)), _A3[None, :], _B3[None, :], scale, bias)


def grid_values(scale, bias, q) -> list[Fraction]:
    return [F(scale) * int(k) + F(bias) for k in q]


def pair_extremes(values: list[Fraction]):
    """Exact min and max over every interval pair (i, j) of a table of
    values ``values[qa * 8 + qb]`` for element pairs: arrays (36, 36) of
    Fractions (object)."""
    order = sorted(set(values))
    rank = np.array([order.index(v) for v in values]).reshape(8, 8)
    # pair (i, j) covers qa in interval i and qb in interval j
    mask = _M3[:, None, :, None] & _M3[None, :, None, :]  # (36, 36, 8, 8)
    big = len(order)
    rmin = np.where(mask, rank, big).min(axis=(2, 3))
    rmax = np.where(mask, rank, -1).max(axis=(2, 3))
    table = np.array(order, dtype=object)
    return table[rmin], table[rmax]


def assert_bounds(r: ScaledIntRange, vmin, vmax, exact: bool, dyadic: bool) -> None:
    """[lo, hi] contains [vmin, vmax] (exact rationals, object arrays) and,
    where ``exact``, is tight: equal for dyadic grids, within the float64
    rounding allowance of a derived grid (relative to the largest value)
    otherwise."""
    shape = np.broadcast_shapes(r.shape, np.shape(vmin))
    lo = _fractions(np.broadcast_to(r.lo, shape))
    hi = _fractions(np.broadcast_to(r.hi, shape))
    vmin = np.broadcast_to(vmin, shape)
    vmax = np.broadcast_to(vmax, shape)
    assert np.all(lo <= vmin) and np.all(vmax <= hi), (r.lo, r.hi, vmin, vmax)
    if exact and dyadic:
        assert np.all(lo == vmin) and np.all(hi == vmax), (r.lo, r.hi, vmin, vmax)
    elif exact:
        # cancellation: a derived grid is exact up to rounding relative to the operands' magnitude
        mag = max(max(abs(v) for v in vmin.flat), max(abs(v) for v in vmax.flat))
        slack = Fraction(2.0**-38) * mag + Fraction(2.0**-1000)
        assert np.all(vmin - lo <= slack) and np.all(hi - vmax <= slack), (r.lo, r.hi, vmin, vmax)


@functools.lru_cache(maxsize=None)
def _fraction(v: float) -> Fraction:
    return Fraction(v)


def _fractions(a: np.ndarray) -> np.ndarray:
    """Exact rational values of a float array (object array)."""
    return np.array([_fraction(float(v)) for v in a.flat], dtype=object).reshape(a.shape)


def assert_on_grid(r: ScaledIntRange, points, where, tight: bool) -> None:
    """Every value ``points[p]`` (Fractions) with ``where[..., p]`` lies on
    the grid of ``r`` within [int_lo, int_hi]; with ``tight`` the integer
    bounds are attained. ``r`` must have a uniform scale and bias."""
    assert r.is_scaled_int and r.scale.size == 1 and r.bias.size == 1
    s, b = F(r.scale.reshape(-1)[0]), F(r.bias.reshape(-1)[0])
    ks = [(v - b) / s for v in points]
    assert all(k.denominator == 1 for k, w in zip(ks, np.moveaxis(where, -1, 0)) if np.any(w)), "a value is off the result grid"
    k = np.array([int(k) if k.denominator == 1 else 0 for k in ks])
    kmin = np.where(where, k, np.iinfo(np.int64).max).min(axis=-1)
    kmax = np.where(where, k, np.iinfo(np.int64).min).max(axis=-1)
    qlo = np.broadcast_to(r.int_lo, kmin.shape)
    qhi = np.broadcast_to(r.int_hi, kmin.shape)
    assert np.all(qlo <= kmin) and np.all(kmax <= qhi)
    if tight:
        assert np.array_equal(qlo, kmin) and np.array_equal(qhi, kmax)


PAIR_MASK = (_M3[:, None, :, None] & _M3[None, :, None, :]).reshape(36, 36, 64)


def _binary_case(op, ga, gb, exact=True, grid_tight=True):
    """Check ``op(column(ga), row(gb))`` against the exact ``op`` on every
    element pair; returns the result for further checks."""
    a, b = column(*ga), row(*gb)
    r = op["range"](a, b)
    va, vb = grid_values(*ga, _Q3), grid_values(*gb, _Q3)
    values = [op["exact"](x, y) for x in va for y in vb]
    vmin, vmax = pair_extremes(values)
    dyadic = ga in DYADIC and gb in DYADIC
    assert_bounds(r, vmin, vmax, exact, dyadic)
    if r.is_scaled_int:
        assert_on_grid(r, values, PAIR_MASK, grid_tight)
    return r


ADD = {"range": lambda a, b: a.add(b), "exact": lambda x, y: x + y}
SUB = {"range": lambda a, b: a.sub(b), "exact": lambda x, y: x - y}
MUL = {"range": lambda a, b: a.mul(b), "exact": lambda x, y: x * y}
MAX = {"range": lambda a, b: a.maximum(b), "exact": max}
MIN = {"range": lambda a, b: a.minimum(b), "exact": min}
UNION_PAIRS = [(ga, gb) for ga in GRIDS for gb in GRIDS if ga == gb] + [
    (DYADIC[0], DYADIC[1]),
    (NON_DYADIC[0], DYADIC[0]),
    ((0.25, 0.0), (0.5, 0.0)),
    ((0.1, 0.0), (-0.2, 0.0)),
]
SHARED = [(g, g) for g in GRIDS] + [((0.25, 0.0), (0.5, 0.0)), ((1 / 3, 0.0), (1 / 6, 0.0)), ((0.1, 0.0), (-0.2, 0.0)), ((0.25, 0.5), (1 / 3, 0.0))]


@pytest.mark.parametrize("ga,gb", SHARED)
@pytest.mark.parametrize("op", [ADD, SUB], ids=["add", "sub"])
def test_add_sub_exhaustive(op, ga, gb):
    r = _binary_case(op, ga, gb)
    ratio = F(ga[0]) / F(gb[0])
    if ratio.numerator <= 2**20 and ratio.denominator <= 2**20 and (ga in DYADIC) == (gb in DYADIC):
        assert r.is_scaled_int, "scales in a small rational ratio share a grid"


@pytest.mark.parametrize("ga,gb", [((1.0, 0.0), (1.0, 0.0)), ((0.25, 0.0), (-0.5, 0.0)), ((1 / 3, 0.0), (0.1, 0.0)), ((0.25, 0.5), (1.0, 0.0))])
def test_mul_exhaustive(ga, gb):
    """Products: exact real bounds; with zero biases, or biases that fold
    into the integer parts (0.5 on the grid 0.25 is 2 steps), the integer
    form q1*q2 on the scale s1*s2, a grid in the rationals where that product
    is a float64 (else up to its rounding: the integer bounds are still exact)."""
    exact_scale = F(ga[0]) * F(gb[0]) == F(ga[0] * gb[0])
    if exact_scale:
        r = _binary_case(MUL, ga, gb)
    else:
        r = MUL["range"](column(*ga), row(*gb))
        prods = np.array([qa * qb for qa in _Q3 for qb in _Q3])
        assert np.array_equal(np.broadcast_to(r.int_lo, (36, 36)), np.where(PAIR_MASK, prods, 99).min(axis=-1))
        assert np.array_equal(np.broadcast_to(r.int_hi, (36, 36)), np.where(PAIR_MASK, prods, -99).max(axis=-1))
    assert r.is_scaled_int == (column(*ga).zero_bias_form() is not None and row(*gb).zero_bias_form() is not None)


@pytest.mark.parametrize("ga,gb", SHARED + [(DYADIC[1], DYADIC[0])])
@pytest.mark.parametrize("op", [MAX, MIN], ids=["max", "min"])
def test_max_min_exhaustive(op, ga, gb):
    r = _binary_case(op, ga, gb)
    if ga == gb or ga[1] == gb[1] == 0.0:
        assert r.is_scaled_int


@pytest.mark.parametrize("ga,gb", UNION_PAIRS)
def test_union_exhaustive(ga, gb):
    """The hull of two ranges: [min lo, max hi], kept on the grid when shared."""
    a, b = column(*ga), row(*gb)
    r = a.union(b)
    va, vb = grid_values(*ga, _Q3), grid_values(*gb, _Q3)
    ends = [[(va[_A3[i] + 4], va[_B3[i] + 4], vb[_A3[j] + 4], vb[_B3[j] + 4]) for j in range(36)] for i in range(36)]
    lo = np.array([[min(e) for e in row_] for row_ in ends], dtype=object)
    hi = np.array([[max(e) for e in row_] for row_ in ends], dtype=object)
    assert_bounds(r, lo, hi, exact=True, dyadic=ga in DYADIC and gb in DYADIC)
    # one grid: the same, or a common refinement of scales in a small ratio with equal biases
    assert r.is_scaled_int == (ga == gb or ga[0] / gb[0] in (0.5, -0.5))
    if r.is_scaled_int:
        where = np.concatenate([np.broadcast_to(_M3[:, None, :], (36, 36, 8)), np.broadcast_to(_M3[None, :, :], (36, 36, 8))], axis=-1)
        assert_on_grid(r, va + vb, where, tight=True)


def test_max_with_a_constant_on_the_grid():
    """max(x, c) keeps the grid when c is exactly a grid value, also for a
    non-dyadic scale: the float 0.2 is exactly 2 * 0.1, but the float 0.3
    is not 3 * 0.1, so it is off the grid."""
    x = ScaledIntRange.scaled((36,), _A3, _B3, 0.1, 0.0)
    on = x.maximum(ScaledIntRange.constant(np.float64(0.2)))
    assert on.is_scaled_int and np.array_equal(on.int_lo, np.maximum(_A3, 2))
    assert F(0.3) != 3 * F(0.1)
    assert not x.maximum(ScaledIntRange.constant(np.float64(0.3))).is_scaled_int


def _clamp(v: Fraction, c_lo: float, c_hi: float) -> Fraction:
    """ONNX Clip on an exact value: max with the lower bound, then min with
    the upper one; an infinite bound is absent."""
    v = max(v, F(c_lo)) if np.isfinite(c_lo) else v
    return min(v, F(c_hi)) if np.isfinite(c_hi) else v


@pytest.mark.parametrize("g", GRIDS)
def test_clip_exhaustive(g):
    """clip_real for every pair of clamp bounds taken from the grid values
    around the intervals, midpoints between some of them and an absent
    (infinite) bound."""
    s, b = g
    x = ScaledIntRange.scaled((36,), _A3, _B3, s, b)
    pts = sorted(set(float(v) for v in grid_values(s, b, range(-5, 5))))
    # every grid value around the intervals, and off-grid values at the ends and inside
    cands = pts + [(p + q) / 2 for p, q in list(zip(pts, pts[1:]))[::4]]
    vals = grid_values(s, b, _Q3)
    for c_lo in [-np.inf] + cands:
        for c_hi in cands + [np.inf]:
            if not c_lo <= c_hi:
                continue
            r = x.clip_real(np.float64(c_lo), np.float64(c_hi))
            clipped = [_clamp(v, c_lo, c_hi) for v in vals]
            order = sorted(set(clipped))
            rank = np.array([order.index(v) for v in clipped])
            table = np.array(order, dtype=object)
            vmin = table[np.where(_M3, rank, len(order)).min(axis=1)]
            vmax = table[np.where(_M3, rank, -1).max(axis=1)]
            assert_bounds(r, vmin, vmax, exact=True, dyadic=g in DYADIC)
            on_grid = all(not np.isfinite(c) or grid_match(np.float64(c), s, b)[1] for c in (c_lo, c_hi))
            assert r.is_scaled_int == bool(on_grid)
            if r.is_scaled_int:
                assert_on_grid(r, clipped, _M3, tight=True)


@pytest.mark.parametrize("g", GRIDS)
def test_div_exhaustive(g):
    """Quotients of every pair of intervals: the exact corners (rounded
    outward) where the divisor excludes 0, unbounded where it does not."""
    a, b = column(*g), row(1.0, 0.5)
    r = a.div(b)
    va, vb = grid_values(*g, _Q3), grid_values(1.0, 0.5, _Q3)
    values = [x / y for x in va for y in vb]
    vmin, vmax = pair_extremes(values)
    away = (_A3 + 0.5 > 0) | (_B3 + 0.5 < 0)  # divisor intervals that exclude 0
    part = ScaledIntRange.real((36, int(away.sum())), np.broadcast_to(r.lo, (36, 36))[:, away], np.broadcast_to(r.hi, (36, 36))[:, away])
    assert_bounds(part, vmin[:, away], vmax[:, away], exact=True, dyadic=False)
    assert np.all(np.broadcast_to(r.lo, (36, 36))[:, ~away] == -np.inf)
    r0 = a.div(row(1.0, 0.0))
    zero = (_A3 <= 0) & (_B3 >= 0)
    assert np.all(np.broadcast_to(r0.lo, (36, 36))[:, zero] == -np.inf) and not r0.exact
    assert np.all(np.isfinite(np.broadcast_to(r0.lo, (36, 36))[:, ~zero]))


@pytest.mark.parametrize("g", GRIDS)
@pytest.mark.parametrize("c", [3.0, -0.25, 0.1, 1 / 3])
def test_const_arithmetic_exhaustive(g, c):
    """add_const, mul_const and div_const: sound and tight real bounds; the
    grid is exact (in rationals) where the float64 product is."""
    x = ScaledIntRange.scaled((136,), _A4, _B4, *g)
    vals = grid_values(*g, _Q4)
    for r, f in ((x.add_const(c), lambda v: v + F(c)), (x.mul_const(c), lambda v: v * F(c)), (x.div_const(c), lambda v: v / F(c))):
        out = [f(v) for v in vals]
        order = sorted(set(out))
        rank = np.array([order.index(v) for v in out])
        table = np.array(order, dtype=object)
        vmin = table[np.where(_M4, rank, len(order)).min(axis=1)]
        vmax = table[np.where(_M4, rank, -1).max(axis=1)]
        assert_bounds(r, vmin, vmax, exact=True, dyadic=False)
        assert r.is_scaled_int


@pytest.mark.parametrize("g", GRIDS)
def test_square_exhaustive(g):
    """x * x of one tensor: exact, 0 included where the interval straddles
    0; on the grid s*s when 0 is a grid value, with attained integer bounds."""
    x = ScaledIntRange.scaled((136,), _A4, _B4, *g)
    r = x.square()
    vals = [v * v for v in grid_values(*g, _Q4)]
    order = sorted(set(vals))
    rank = np.array([order.index(v) for v in vals])
    table = np.array(order, dtype=object)
    vmin = table[np.where(_M4, rank, len(order)).min(axis=1)]
    vmax = table[np.where(_M4, rank, -1).max(axis=1)]
    zero_on_grid = (F(g[1]) / F(g[0])).denominator == 1
    # off the grid, 0 is a bound that is not attained where the interval straddles it
    attained = np.array([zero_on_grid or not (x.lo[i] < 0 < x.hi[i]) for i in range(136)])
    assert r.exact == bool(np.all(attained))
    assert_bounds(r, vmin, vmax, exact=False, dyadic=False)
    part = ScaledIntRange.real((int(attained.sum()),), r.lo[attained], r.hi[attained])
    assert_bounds(part, vmin[attained], vmax[attained], exact=True, dyadic=g in DYADIC)
    assert r.is_scaled_int == zero_on_grid
    if r.is_scaled_int:
        shift = int(F(g[1]) / F(g[0]))
        sq = (_Q4 + shift) ** 2
        assert np.array_equal(r.int_lo, np.where(_M4, sq, 999).min(axis=1))
        assert np.array_equal(r.int_hi, np.where(_M4, sq, -1).max(axis=1))


@pytest.mark.parametrize("g", GRIDS)
@pytest.mark.parametrize("f", [np.floor, np.ceil, np.round, np.sign], ids=["floor", "ceil", "round", "sign"])
def test_monotone_image_exhaustive(f, g):
    x = ScaledIntRange.scaled((136,), _A4, _B4, *g)
    r = x.monotone_image(f, integers=True)
    assert r.is_scaled_int and r.exact
    # float64 grid values (the op sees floats), then f, per interval
    v = np.array([float(g[0] * q + g[1]) for q in _Q4])
    fx = f(v)
    lo = np.where(_M4, fx, np.inf).min(axis=1)
    hi = np.where(_M4, fx, -np.inf).max(axis=1)
    # the range's own bounds are outward-rounded values: f of them is at most one integer wider
    assert np.all(r.lo <= lo) and np.all(r.hi >= hi)
    assert np.all(lo - r.lo <= 1) and np.all(r.hi - hi <= 1)


# --------------------------------------------------------------------------
# grid membership
# --------------------------------------------------------------------------


@pytest.mark.parametrize("g", GRIDS + [(3.0, 1.0), (1e-3, 0.7)])
def test_grid_match_is_exact_in_rationals(g):
    """grid_match says "on" exactly when (v - b) / s is an integer as a
    rational, for grid values, their float64 neighbours and midpoints."""
    s, b = g
    cands = []
    for q in range(-40, 40):
        v = float(s * q + b)
        cands += [v, np.nextafter(v, np.inf), np.nextafter(v, -np.inf), float(s * (q + 0.5) + b)]
    v = np.array(cands)
    k, on = grid_match(v, s, b)
    for vi, ki, oi in zip(v, k, on):
        q = (F(vi) - F(b)) / F(s)
        assert bool(oi) == (q.denominator == 1), (vi, q)
        if oi:
            assert ki == q


def test_grid_index_needs_every_element_on_the_grid():
    x = ScaledIntRange.scaled((4,), 0, 7, 0.25, 0.5)
    assert x.grid_index(np.array([0.5, 0.75, 2.25, -1.0])).tolist() == [0, 1, 7, -6]
    assert x.grid_index(np.array([0.5, 0.6, 2.25, -1.0])) is None
    where = np.array([True, False, True, True])
    assert x.grid_index(np.array([0.5, 0.6, 2.25, -1.0]), where=where).tolist() == [0, 0, 7, -6]
    assert x.grid_index(np.array([np.inf, 0.5, 0.5, 0.5])) is None


def test_centered_int_bounds_and_missed_points():
    x = ScaledIntRange.scaled((36,), _A3, _B3, 0.25, 0.5)  # 0 at q = -2
    qlo, qhi = x.centered_int_bounds()
    assert np.array_equal(qlo, _A3 + 2) and np.array_equal(qhi, _B3 + 2)
    assert ScaledIntRange.scaled((36,), _A3, _B3, 0.25, 0.125).centered_int_bounds() is None
    assert not x.misses_any([0.0])
    assert ScaledIntRange.scaled((1,), -4, 3, 0.5, 0.25).misses_any([0.0])


def test_integer_ratio():
    assert integer_ratio(np.array([0.5, 0.25, -1.0]), np.array(0.25)).tolist() == [2, 1, -4]
    assert integer_ratio(np.array([0.3]), np.array(0.1)) is None  # 0.3 != 3 * 0.1 exactly
    assert integer_ratio(np.array([0.2]), np.array(0.1)).tolist() == [2]
    assert integer_ratio(np.array([2.0**30]), np.array(1.0)) is None  # beyond the factor limit


# --------------------------------------------------------------------------
# dot products
# --------------------------------------------------------------------------

_W = np.array([(w0, w1) for w0 in range(-2, 3) for w1 in range(-2, 3)], dtype=np.float64).T  # (2, 25)


@pytest.mark.parametrize("g", [(1.0, 0.0), (0.25, 0.5), (0.1, 0.0)])
def test_linear_bounds_exhaustive(g):
    """x @ W for x of two elements, each in one of the 36 intervals (all
    1296 pairs), and every weight column in {-2..2}^2: real bounds sound
    and tight; integer bounds exact."""
    s, b = g
    ia, ib = np.meshgrid(np.arange(36), np.arange(36), indexing="ij")
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    qlo = np.stack([_A3[ia], _A3[ib]], axis=1)  # (1296, 2)
    qhi = np.stack([_B3[ia], _B3[ib]], axis=1)
    x = ScaledIntRange.scaled((1296, 2), qlo, qhi, s, b)

    def op(a, w):
        return np.broadcast_to(a, a.shape[:-1] + (2,)) @ w

    lo, hi = x.linear_bounds(op, _W, 2)
    qlo_out, qhi_out = x.int_linear_bounds(op, _W.astype(np.int64), 2)
    # brute force over every element pair of every interval pair
    pts = np.array([(qa, qb) for qa in _Q3 for qb in _Q3])  # (64, 2)
    qdot = pts @ _W.astype(np.int64)  # (64, 25), exact
    mask = PAIR_MASK.reshape(1296, 64)
    kmin = np.where(mask[:, :, None], qdot[None], 10**9).min(axis=1)
    kmax = np.where(mask[:, :, None], qdot[None], -(10**9)).max(axis=1)
    assert np.array_equal(qlo_out, kmin) and np.array_equal(qhi_out, kmax)
    # real value of x @ w = s * (q @ w) + b * sum(w): monotone in q @ w per column
    sw = _W.sum(axis=0)
    for j in range(_W.shape[1]):
        for i in range(0, 1296, 7):
            ends = [F(s) * int(k) + F(b) * int(sw[j]) for k in (kmin[i, j], kmax[i, j])]
            vmin, vmax = min(ends), max(ends)
            assert F(lo[i, j]) <= vmin and vmax <= F(hi[i, j])
            if g != (0.1, 0.0):
                assert F(lo[i, j]) == vmin and F(hi[i, j]) == vmax


# --------------------------------------------------------------------------
# invariants
# --------------------------------------------------------------------------


def test_constructors_and_replace_check_invariants():
    x = ScaledIntRange.scaled((3,), 0, 7, 0.5, 0.0)
    with pytest.raises(ValueError, match="lower bound exceeds"):
        x.replace(lo=np.array([5.0]), hi=np.array([1.0]))
    with pytest.raises(ValueError, match="int_lo exceeds"):
        x.replace(int_lo=np.array([8]))
    with pytest.raises(ValueError, match="disagree"):
        x.replace(lo=np.array([100.0]), hi=np.array([200.0]))
    with pytest.raises(ValueError, match="scale"):
        ScaledIntRange.scaled((3,), 0, 7, 0.0, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        ScaledIntRange.real((3,), np.nan, 1.0)
    with pytest.raises(ValueError, match="partial"):
        x.replace(scale=None)
    with pytest.raises(ValueError, match="broadcast"):
        x.replace(lo=np.zeros(4), hi=np.ones(4))
    # a tighter sound bound inside the grid's bounds is fine
    assert x.with_bounds(0.5, 3.0).lo.tolist() == [0.5]


# --------------------------------------------------------------------------
# larger values (hypothesis): Python integers past 2**62
# --------------------------------------------------------------------------

_BIG = st.integers(-(2**70), 2**70)


@settings(max_examples=60, deadline=None)
@given(_BIG, _BIG, _BIG, _BIG, st.sampled_from([1.0, 0.5, -0.25, 2.0**-30]))
def test_add_mul_with_huge_integers(a, b, c, d, s):
    alo, ahi = sorted((a, b))
    blo, bhi = sorted((c, d))
    x = ScaledIntRange.scaled((1,), alo, ahi, s, 0.0)
    y = ScaledIntRange.scaled((1,), blo, bhi, s, 0.0)
    total = x.add(y)
    assert int(total.int_lo[0]) == alo + blo and int(total.int_hi[0]) == ahi + bhi
    prod = x.mul(y)
    corners = [alo * blo, alo * bhi, ahi * blo, ahi * bhi]
    assert int(prod.int_lo[0]) == min(corners) and int(prod.int_hi[0]) == max(corners)
    for r, lo, hi in ((total, alo + blo, ahi + bhi), (prod, min(corners), max(corners))):
        sr = F(r.scale.reshape(-1)[0])
        ends = sorted((sr * lo, sr * hi))
        assert F(r.lo[0]) <= ends[0] and ends[1] <= F(r.hi[0])
        assert ends[0] - F(r.lo[0]) <= abs(ends[0]) * Fraction(GRID_ROUNDING) * 4 + Fraction(2.0**-1000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_BIG, _BIG), min_size=1, max_size=4), st.lists(st.integers(-(2**40), 2**40), min_size=4, max_size=4))
def test_int_linear_bounds_with_huge_integers(bounds, w):
    qlo = np.array([min(p) for p in bounds], dtype=object)
    qhi = np.array([max(p) for p in bounds], dtype=object)
    n = len(bounds)
    x = ScaledIntRange.scaled((n,), qlo, qhi, 1.0, 0.0)
    wq = np.array(w[:n], dtype=object)
    lo, hi = x.int_linear_bounds(lambda a, ww: np.broadcast_to(a, (n,)) @ ww, wq, n)
    exp_lo = sum(min(l * wi, h * wi) for l, h, wi in zip(qlo, qhi, wq))
    exp_hi = sum(max(l * wi, h * wi) for l, h, wi in zip(qlo, qhi, wq))
    assert int(lo) == exp_lo and int(hi) == exp_hi


@settings(max_examples=100, deadline=None)
@given(st.integers(-(2**60), 2**60), st.sampled_from(GRIDS + [(2.0**-20, 3.0)]))
def test_grid_match_large_indices(k, g):
    s, b = g
    v = float(F(s) * k + F(b))
    kk, on = grid_match(np.float64(v), s, b)
    q = (F(v) - F(b)) / F(s)
    if on:
        assert q.denominator == 1 and kk == q
    elif abs(q) < 2**50:
        assert q.denominator != 1


def test_zero_bias_form_of_a_stored_constant():
    """A weight constant with zero-points (stored in float32, so only close
    to its exact grid values) folds the zero-point into the integers and
    keeps its own real bounds."""
    q = np.array([[-3, 5, 0]])
    s = np.array([[0.3, 0.1, 0.7]])
    z = np.array([[1.0, -2.0, 4.0]])  # zero-points whose products with s are exact
    value = ((q - z) * s).astype(np.float32)
    r = ScaledIntRange.on_grid(value, q, s, -z * s)
    g = r.zero_bias_form()
    assert np.all(g.bias == 0) and np.array_equal(g.int_lo, q - z) and np.array_equal(g.int_hi, q - z)
    assert np.array_equal(g.lo, r.lo) and np.array_equal(g.hi, r.hi) and g.value is r.value

"""Exact integers and sound float bounds (sira/numerics.py) against exact
rational arithmetic.

Small operands are enumerated exhaustively (every 3-bit interval pair, every
grid value for dyadic and non-dyadic scales); hypothesis draws large ones:
integers past 2**62, where arithmetic moves to Python ints, and arbitrary
finite floats for the directed roundings.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sira import numerics as nx

_IV = [(a, b) for a in range(-4, 4) for b in range(a, 4)]  # every 3-bit interval
_LO = np.array([a for a, _ in _IV])
_HI = np.array([b for _, b in _IV])
SCALES = [1.0, 0.25, -0.5, 1 / 3, 0.1, -0.1, 3.0]
BIASES = [0.0, 0.5, 0.1, -1 / 3]

_FLOATS = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)
_BIG = st.integers(-(2**80), 2**80)


def F(v) -> Fraction:
    return Fraction(float(v))


# --------------------------------------------------------------------------
# exact integers
# --------------------------------------------------------------------------


def test_int_range_product_exhaustive():
    """Every pair of 3-bit intervals: the product range is attained exactly."""
    alo, ahi = _LO[:, None], _HI[:, None]
    blo, bhi = _LO[None, :], _HI[None, :]
    lo, hi = nx.int_range_product(alo, ahi, blo, bhi)
    for i, (a0, a1) in enumerate(_IV):
        for j, (b0, b1) in enumerate(_IV):
            prods = [x * y for x in range(a0, a1 + 1) for y in range(b0, b1 + 1)]
            assert lo[i, j] == min(prods) and hi[i, j] == max(prods)


def test_int_min_max_sum_matmul_small():
    a = np.arange(-4, 4).reshape(2, 4)
    b = np.arange(3, -5, -1).reshape(2, 4)
    assert np.array_equal(nx.int_minimum(a, b), np.minimum(a, b))
    assert np.array_equal(nx.int_maximum(a, b, np.zeros((1, 1), dtype=np.int64)), np.maximum(np.maximum(a, b), 0))
    assert np.array_equal(nx.int_sum(a, axis=1), a.sum(axis=1))
    assert np.array_equal(nx.int_matmul(a, b.T), a @ b.T)


@settings(max_examples=80, deadline=None)
@given(st.lists(_BIG, min_size=4, max_size=4), st.lists(_BIG, min_size=4, max_size=4))
def test_big_integers_stay_exact(xs, ys):
    """Past 2**62 the arithmetic moves to Python ints and stays exact; it
    comes back to int64 when the values are small again."""
    a = nx.as_int(np.array(xs, dtype=object))
    b = nx.as_int(np.array(ys, dtype=object))
    assert [int(v) for v in nx.int_add(a, b)] == [x + y for x, y in zip(xs, ys)]
    assert [int(v) for v in nx.int_mul(a, b)] == [x * y for x, y in zip(xs, ys)]
    assert [int(v) for v in nx.int_minimum(a, b)] == [min(x, y) for x, y in zip(xs, ys)]
    assert [int(v) for v in nx.int_maximum(a, b)] == [max(x, y) for x, y in zip(xs, ys)]
    assert int(nx.int_sum(a)) == sum(xs)
    assert int(nx.int_matmul(a.reshape(1, 4), b.reshape(4, 1))[0, 0]) == sum(x * y for x, y in zip(xs, ys))
    lo, hi = nx.int_range_product(nx.int_minimum(a, b), nx.int_maximum(a, b), a[:1], a[:1])
    for x, y, l, h in zip(xs, ys, lo, hi):
        ends = (min(x, y) * xs[0], max(x, y) * xs[0])
        assert int(l) == min(ends) and int(h) == max(ends)
    small = nx.int_add(a, nx.int_neg(a))
    assert small.dtype == np.int64 and not np.any(small)


def test_as_int_and_absmax():
    assert nx.as_int(np.array([2.0**70])).dtype == object
    assert nx.as_int(np.array([3.0, -4.0])).dtype == np.int64
    assert nx.absmax(np.array([2**70, -(2**71)], dtype=object)) == 2**71
    with pytest.raises(ValueError):
        nx.as_int(np.array([0.5]))


def test_int_linear_bounds_exhaustive():
    """Two-term dot products over every pair of 3-bit intervals and every
    weight pair in {-3..3}^2: exact."""
    ia, ib = np.meshgrid(np.arange(len(_IV)), np.arange(len(_IV)), indexing="ij")
    qlo = np.stack([_LO[ia.ravel()], _LO[ib.ravel()]], axis=1)
    qhi = np.stack([_HI[ia.ravel()], _HI[ib.ravel()]], axis=1)
    w = np.array([(u, v) for u in range(-3, 4) for v in range(-3, 4)], dtype=np.int64).T
    lo, hi = nx.int_linear_bounds(lambda a, ww: a @ ww, qlo, qhi, w, 2)
    exp_lo = np.minimum(qlo[:, :1] * w[0], qhi[:, :1] * w[0]) + np.minimum(qlo[:, 1:] * w[1], qhi[:, 1:] * w[1])
    exp_hi = np.maximum(qlo[:, :1] * w[0], qhi[:, :1] * w[0]) + np.maximum(qlo[:, 1:] * w[1], qhi[:, 1:] * w[1])
    assert np.array_equal(lo, exp_lo) and np.array_equal(hi, exp_hi)


def test_narrowest_int_type_exhaustive():
    for lo in range(-20, 20):
        for hi in range(lo, 20):
            name = nx.narrowest_int_type(lo, hi)
            bits = nx.int_type_width(lo, hi)
            if name.startswith("INT"):
                assert -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1)
                assert bits == 2 or not (-(2 ** (bits - 2)) <= lo and hi < 2 ** (bits - 2))
            else:
                assert lo >= 0 and hi < 2**bits and (bits == 1 or hi >= 2 ** (bits - 1))


# --------------------------------------------------------------------------
# sound float bounds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("bias", BIASES)
def test_affine_bounds_exhaustive(scale, bias):
    """scale*q + bias for every 3-bit interval of q: sound; exact where
    float64 evaluation is (dyadic scale and bias), within a few rounding
    steps otherwise."""
    dyadic = scale in (1.0, 0.25, -0.5, 3.0) and bias in (0.0, 0.5)
    lo, hi = nx.affine_bounds(np.float64(scale), _LO, _HI, np.float64(bias))
    for i, (a, b) in enumerate(_IV):
        ends = sorted(F(scale) * q + F(bias) for q in (a, b))
        assert F(lo[i]) <= ends[0] and ends[1] <= F(hi[i])
        for bound, end in ((lo[i], ends[0]), (hi[i], ends[1])):
            if dyadic:
                assert F(bound) == end
            else:
                assert abs(F(bound) - end) <= Fraction(2.0**-48) * (abs(end) + 4)


@settings(max_examples=60, deadline=None)
@given(st.integers(-(2**70), 2**70), st.sampled_from(SCALES), st.sampled_from(BIASES))
def test_affine_bounds_huge_integers(q, scale, bias):
    qa = nx.as_int(np.array([q], dtype=object))
    lo, hi = nx.affine_bounds(np.float64(scale), qa, qa, np.float64(bias))
    exact = F(scale) * q + F(bias)
    assert F(lo[0]) <= exact <= F(hi[0])


@settings(max_examples=200, deadline=None)
@given(_FLOATS, _FLOATS)
def test_directed_roundings(a, b):
    """add/mul/div down and up enclose the exact result (also when it under-
    or overflows) and are the nearest floats on their side."""
    fa, fb = F(a), F(b)
    cases = [(nx.add_down, nx.add_up, fa + fb), (nx.mul_down, nx.mul_up, fa * fb)]
    if b != 0:
        cases.append((nx.div_down, nx.div_up, fa / fb))
    for down, up, exact in cases:
        d, u = float(down(np.float64(a), np.float64(b))), float(up(np.float64(a), np.float64(b)))
        assert d == -np.inf or F(d) <= exact
        assert u == np.inf or exact <= F(u)
        # tight away from under- and overflow, where the bounds step unconditionally
        if all(2.0**-900 < abs(v) < 2.0**800 for v in (a, b, exact)):
            assert np.nextafter(d, np.inf) >= u


def _grid_intervals(scale, bias):
    """The 36 3-bit intervals of a grid as exact end points and as floats."""
    ends = [(F(scale) * a + F(bias), F(scale) * b + F(bias)) for a, b in _IV]
    ends = [tuple(sorted(e)) for e in ends]
    lo = np.array([float(e[0]) for e in ends])
    hi = np.array([float(e[1]) for e in ends])
    # the float end points enclose the exact ones
    lo = np.where([F(l) > e[0] for l, e in zip(lo, ends)], np.nextafter(lo, -np.inf), lo)
    hi = np.where([F(h) < e[1] for h, e in zip(hi, ends)], np.nextafter(hi, np.inf), hi)
    return lo, hi


@pytest.mark.parametrize("sa,sb", [(1.0, 0.25), (1 / 3, -0.1), (0.1, 3.0)])
def test_interval_mul_and_div_exhaustive(sa, sb):
    """Every pair of float intervals taken from two grids: products and
    quotients of the float end points are enclosed (the extremes of x*y and
    x/y over a box lie at its corners), and the divisor containing 0 gives
    an unbounded quotient."""
    alo, ahi = _grid_intervals(sa, 0.0)
    blo, bhi = _grid_intervals(sb, 0.5)
    lo, hi = nx.interval_mul(alo[:, None], ahi[:, None], blo[None, :], bhi[None, :])
    qlo, qhi, zero = nx.interval_div(alo[:, None], ahi[:, None], blo[None, :], bhi[None, :])
    zero = np.broadcast_to(zero, qlo.shape)
    for i in range(len(_IV)):
        for j in range(len(_IV)):
            xs, ys = (F(alo[i]), F(ahi[i])), (F(blo[j]), F(bhi[j]))
            prods = [x * y for x in xs for y in ys]
            assert F(lo[i, j]) <= min(prods) and max(prods) <= F(hi[i, j])
            if ys[0] <= 0 <= ys[1]:
                assert zero[i, j] and qlo[i, j] == -np.inf and qhi[i, j] == np.inf
            else:
                quots = [x / y for x in xs for y in ys]
                assert F(qlo[i, j]) <= min(quots) and max(quots) <= F(qhi[i, j])


def _corner_mul(alo, ahi, blo, bhi):
    """interval_mul's general form: min and max of the four directed corner products."""
    pairs = [(alo, blo), (alo, bhi), (ahi, blo), (ahi, bhi)]
    return (np.minimum.reduce([nx.mul_down(x, y) for x, y in pairs]),
            np.maximum.reduce([nx.mul_up(x, y) for x, y in pairs]))  # fmt: skip


def test_interval_mul_point_operands_equal_the_corner_form():
    """Where an operand is a point, interval_mul takes two directed products
    (one, with both directed roundings of it, when both are points): the
    same bounds as the four corners, also at zeros, infinities, products
    that round or overflow. Where a product underflows, the corner form
    steps every corner unconditionally; the point form steps only the
    corner it keeps, so it may be tighter, and it still encloses the exact
    products."""
    normal = [0.0, -0.0, 1.0, -1.0, 0.1, -1 / 3, 3.0, 1e300, -1e300, np.inf, -np.inf]
    for pts, equal in [(np.array(normal), True), (np.array(normal + [-1e-300, 2.0**-1074]), False)]:
        ivs = [(a, b) for a in pts for b in pts if a <= b]
        lo = np.array([a for a, _ in ivs])[:, None]
        hi = np.array([b for _, b in ivs])[:, None]
        k = pts[None, :]
        p = pts[:, None]
        for args in [(lo, hi, k, k), (k, k, lo, hi), (p, p, k, k)]:
            got, want = nx.interval_mul(*args), _corner_mul(*args)
            if equal:
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
                continue
            assert np.all(got[0] >= want[0]) and np.all(got[1] <= want[1])
            xl, xh, yl, yh = np.broadcast_arrays(*args)
            for idx in np.ndindex(*xl.shape):
                if all(np.isfinite(v[idx]) for v in (xl, xh, yl, yh)):
                    prods = [F(x[idx]) * F(y[idx]) for x in (xl, xh) for y in (yl, yh)]
                    g_lo, g_hi = got[0][idx], got[1][idx]
                    assert (g_lo == -np.inf or F(g_lo) <= min(prods)) and (g_hi == np.inf or max(prods) <= F(g_hi))


def test_add_interval_equals_the_directed_sums():
    pts = np.array([0.0, 1.0, -0.1, 1 / 3, 1e308, -1e308, 2.0**-1074, np.inf, -np.inf])
    a, k = pts[:, None], pts[None, :]
    for lo, hi in [(a, a), (a, a.copy()), (a, np.nextafter(a, np.inf))]:
        got = nx.add_interval(lo, hi, k)
        np.testing.assert_array_equal(got[0], nx.add_down(lo, k))
        np.testing.assert_array_equal(got[1], nx.add_up(hi, k))


def test_interval_div_infinite_ends():
    lo, hi, zero = nx.interval_div(np.array([1.0]), np.array([np.inf]), np.array([2.0]), np.array([np.inf]))
    assert lo[0] == 0.0 and hi[0] == np.inf and not zero[0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=12))
def test_sum_down_up_enclose_the_exact_sum(xs):
    a = np.array(xs)[None, :]
    exact = sum(F(x) for x in xs)
    assert F(nx.sum_down(a, axis=1)[0]) <= exact <= F(nx.sum_up(a, axis=1)[0])


def test_sum_on_a_common_grid_is_exact():
    a = np.array([[0.25, 0.5, -0.75, 1024.0]])
    assert nx.sum_down(a, axis=1)[0] == nx.sum_up(a, axis=1)[0] == 1024.0


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.1])
def test_linear_bounds_exhaustive(scale):
    """Two-term dot products of float intervals from a grid with every
    weight pair from a small set: sound, and exact on power-of-two grids."""
    alo, ahi = _grid_intervals(scale, 0.0)
    ia, ib = np.meshgrid(np.arange(len(_IV)), np.arange(len(_IV)), indexing="ij")
    lo = np.stack([alo[ia.ravel()], alo[ib.ravel()]], axis=1)
    hi = np.stack([ahi[ia.ravel()], ahi[ib.ravel()]], axis=1)
    for ws in ([-2.0, -0.5, 0.0, 2.0], [-2.0, 0.0, 1 / 3]):
        w = np.array([(u, v) for u in ws for v in ws]).T
        out_lo, out_hi = nx.linear_bounds(lambda a, ww: a @ ww, lo, hi, w, 2)
        # exact when inputs and weights share a power-of-two grid
        exact = scale == 0.25 and 1 / 3 not in ws
        for i in range(0, lo.shape[0], 5):
            for j in range(w.shape[1]):
                terms = [sorted((F(lo[i, k]) * F(w[k, j]), F(hi[i, k]) * F(w[k, j]))) for k in range(2)]
                vmin, vmax = sum(t[0] for t in terms), sum(t[1] for t in terms)
                assert F(out_lo[i, j]) <= vmin and vmax <= F(out_hi[i, j])
                if exact:
                    assert F(out_lo[i, j]) == vmin and F(out_hi[i, j]) == vmax


def test_linear_bounds_with_infinite_inputs():
    lo, hi = nx.linear_bounds(lambda a, w: a @ w, np.array([[-np.inf, 0.0]]), np.array([[1.0, 2.0]]), np.array([[1.0], [-1.0]]), 2)
    assert lo[0, 0] == -np.inf and hi[0, 0] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.integers(-(2**70), 2**70))
def test_int_to_float_bounds(q):
    d, u = nx.int_to_float_bounds(nx.as_int(np.array([q], dtype=object)))
    assert F(d[0]) <= q <= F(u[0])


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e30, 1e30, allow_nan=False))
def test_float32_down_up(x):
    d, u = nx.float32_down(np.float64(x)), nx.float32_up(np.float64(x))
    assert F(d) <= F(x) <= F(u)
    assert float(np.float32(d)) == float(d) and float(np.float32(u)) == float(u)

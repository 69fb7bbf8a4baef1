"""MatMul, Gemm, Conv, ConvTranspose rules against qonnx execution.

Soundness: random inputs and box corners lie inside the ranges and on the
integer grid. Tightness (exact rules): for every output element, the input
that sets each element to its high end where the element's weight is
positive and to its low end elsewhere (the sign pattern comes from the
Jacobian of a float twin of the op, measured by executing it on one-hot
inputs) drives the output to exactly the computed high end, and the mirror
pattern to the low end.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import sira
from sira.errors import RuleError, SiraError
from sira.range import ScaledIntRange
from tests.helpers import assert_contains, execute, make_model, quant_node
from tests.rules_harness import assert_attains, check_ranges, rule_outputs

FAST = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------
# harness
# --------------------------------------------------------------------------


def _model(make_op, x_shape, w_int, w_scale, *, quant_in=None, bias=None):
    """Quant(x)? -> op(x, Quant(W) [, B]) -> y. ``quant_in`` is
    (scale, zero-point, bits, signed)."""
    nodes, inits, x = [], {}, "x"
    if quant_in is not None:
        s, z, bits, signed = quant_in
        nodes.append(quant_node("x", "si", "zi", "bi", "xq", signed=int(signed)))
        inits.update(si=np.asarray(s, np.float32), zi=np.asarray(z, np.float32), bi=np.float32(bits))
        x = "xq"
    w_scale = np.asarray(w_scale, np.float32)
    inits.update(Wf=(w_int * w_scale).astype(np.float32), sw=w_scale, zw=np.float32(0), bw=np.float32(8))
    nodes.append(quant_node("Wf", "sw", "zw", "bw", "W"))
    if bias is not None:
        inits["B"] = np.asarray(bias, np.float32)
    nodes.append(make_op(x, "W", "B" if bias is not None else None, "y"))
    return make_model(nodes, {"x": x_shape}, {"y": None}, inits)


def _with_batch(shape, axis, n):
    s = list(shape)
    s[axis] = n
    return tuple(s)


def _jacobian(make_op, x_shape, w_int, batch_axis, out_batch_axis):
    """d y / d x of the op with integer weights, one row per input element
    of one sample (exact: integer arithmetic in float32)."""
    sample = np.moveaxis(np.zeros(_with_batch(x_shape, batch_axis, 1)), batch_axis, 0).shape[1:]
    n_in = int(np.prod(sample))
    model = make_model([make_op("x", "Wi", None, "y")], {"x": _with_batch(x_shape, batch_axis, n_in)}, {"y": None}, {"Wi": w_int.astype(np.float32)})
    onehot = np.moveaxis(np.eye(n_in).reshape((n_in,) + sample), 0, batch_axis)
    y = execute(model, {"x": onehot})["y"]
    return np.moveaxis(y, out_batch_axis, 0).reshape(n_in, -1)


def check_linear(make_op, x_shape, w_int, w_scale, lo, hi, *, axis=1, batch_axis=0, out_batch_axis=0, quant_in=None, bias=None, rng=None, n_random=6):
    """Analyze and execute; assert containment everywhere and, for exact
    results, that the sign patterns attain both ends of every output."""
    rng = rng or np.random.default_rng(0)
    one = _with_batch(x_shape, batch_axis, 1)
    sample = np.moveaxis(np.zeros(one), batch_axis, 0).shape[1:]
    chan = [1] * len(one)
    chan[axis] = -1
    lo_s = np.moveaxis(np.broadcast_to(np.reshape(lo, chan), one), batch_axis, 0)[0]
    hi_s = np.moveaxis(np.broadcast_to(np.reshape(hi, chan), one), batch_axis, 0)[0]
    jac = _jacobian(make_op, x_shape, w_int, batch_axis, out_batch_axis)
    pos = jac.T > 0  # (outputs, inputs)
    pat_max = np.where(pos, hi_s.reshape(-1), lo_s.reshape(-1))
    pat_min = np.where(pos, lo_s.reshape(-1), hi_s.reshape(-1))
    rand = rng.uniform(lo_s.reshape(-1), hi_s.reshape(-1), size=(n_random, lo_s.size))
    samples = np.concatenate([pat_max, pat_min, rand, lo_s.reshape(1, -1), hi_s.reshape(1, -1)])
    xs = np.moveaxis(samples.reshape((len(samples),) + sample), 0, batch_axis)
    model = _model(make_op, xs.shape, w_int, w_scale, quant_in=quant_in, bias=bias)
    spec = {"x": {"min": list(np.ravel(lo)), "max": list(np.ravel(hi)), "axis": axis}}
    checked = check_ranges(model, spec, [{"x": xs}], ["y"], tol=1e-5)
    r, y = checked["y"], checked.runs[0]["y"]
    if r.exact:
        n_out = pos.shape[0]
        flat = np.moveaxis(y, out_batch_axis, 0).reshape(len(samples), -1)
        rhi = np.moveaxis(np.broadcast_to(r.hi, r.shape), out_batch_axis, 0)[0].reshape(-1)
        rlo = np.moveaxis(np.broadcast_to(r.lo, r.shape), out_batch_axis, 0)[0].reshape(-1)
        got_hi = flat[np.arange(n_out), np.arange(n_out)]
        got_lo = flat[n_out + np.arange(n_out), np.arange(n_out)]
        assert_attains(rlo, rhi, got_lo, got_hi, atol=1e-5 * (1 + np.abs(rhi) + np.abs(rlo)), name="y")
    return r


def _ranges(draw, n):
    lo = np.array(draw(st.lists(st.integers(-8, 8), min_size=n, max_size=n)), dtype=np.float64) / 4
    width = np.array(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)), dtype=np.float64) / 4
    return lo, lo + width


def _weights(draw, shape, rng):
    w = rng.integers(-5, 6, size=shape)
    if draw(st.booleans()):
        w[rng.random(shape) < 0.3] = 0
    return w


def _weight_scale(draw, rng, n, axis, ndim):
    kind = draw(st.sampled_from(["one", "pow2", "tensor", "channel"]))
    if kind == "one":
        return np.float32(1)
    if kind == "pow2":
        return np.float32(2.0 ** draw(st.integers(-4, 2)))
    if kind == "tensor":
        return np.float32(rng.uniform(0.01, 2))
    shape = [1] * ndim
    shape[axis] = n
    return rng.uniform(0.01, 2, size=shape).astype(np.float32)


def _quant_in(draw, rng):
    """None (real input) or a Quant with power-of-two / random scale and
    maybe a non-zero integer zero-point (a non-zero bias)."""
    kind = draw(st.sampled_from(["none", "pow2", "float", "zeropoint"]))
    if kind == "none":
        return None
    s = np.float32(2.0 ** draw(st.integers(-3, 0))) if kind != "float" else np.float32(rng.uniform(0.05, 0.5))
    z = np.float32(draw(st.integers(-3, 3))) if kind == "zeropoint" else np.float32(0)
    return s, z, 6, True


def matmul_op(x, w, b, y):
    return helper.make_node("MatMul", [x, w], [y])


def conv_op(**attrs):
    def make(x, w, b, y):
        return helper.make_node("Conv", [x, w] + ([b] if b else []), [y], **attrs)

    return make


def conv_transpose_op(**attrs):
    def make(x, w, b, y):
        return helper.make_node("ConvTranspose", [x, w] + ([b] if b else []), [y], **attrs)

    return make


# --------------------------------------------------------------------------
# MatMul
# --------------------------------------------------------------------------


@FAST
@given(st.data())
def test_matmul_constant_weights(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    k, n = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    lo, hi = _ranges(data.draw, k)
    w = _weights(data.draw, (k, n), rng)
    sw = _weight_scale(data.draw, rng, n, 1, 2)
    qin = _quant_in(data.draw, rng)
    r = check_linear(matmul_op, (1, k), w, sw, lo, hi, quant_in=qin, rng=rng)
    assert r.exact
    assert r.is_scaled_int == (qin is not None)
    if qin is not None:
        np.testing.assert_array_equal(np.broadcast_to(r.scale, (1, n)), np.broadcast_to(np.float64(qin[0]) * np.asarray(sw, np.float64).reshape(1, -1), (1, n)))
        assert r.scale_sources == {name for name, v in (("si", qin[0]), ("sw", sw)) if np.any(v != 1)}


@FAST
@given(st.data())
def test_matmul_constant_on_the_left_with_batch(data):
    """W @ x with x (B, K, 1): the constant is the left operand and the
    batch axis is broadcast."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    k, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    lo, hi = _ranges(data.draw, k)
    w = _weights(data.draw, (n, k), rng)
    sw = _weight_scale(data.draw, rng, n, 0, 2)

    def op(x, wn, b, y):
        return helper.make_node("MatMul", [wn, x], [y])

    r = check_linear(op, (1, k, 1), w, sw, lo, hi, quant_in=(np.float32(0.25), np.float32(0), 8, True), rng=rng)
    assert r.exact and r.is_scaled_int


def test_matmul_brute_force_corners():
    """Tiny case: the range is exactly the hull over all box corners."""
    rng = np.random.default_rng(1)
    k, n = 3, 2
    w = rng.integers(-4, 5, size=(k, n)).astype(np.float32)
    lo, hi = np.array([-1.0, 0.5, -2.0]), np.array([2.0, 0.5, -0.5])
    corners = np.array(list(itertools.product(*zip(lo, hi))))
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], {"x": corners.shape}, {"y": None}, {"W": w})
    r = sira.analyze(model, {"x": {"min": list(lo), "max": list(hi), "axis": 1}})["y"]
    y = execute(model, {"x": corners})["y"]
    np.testing.assert_array_equal(r.lo.reshape(-1), y.min(axis=0))
    np.testing.assert_array_equal(r.hi.reshape(-1), y.max(axis=0))


def test_matmul_1d_operands():
    w = np.array([[1, -2], [3, 0], [-1, 1]], np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], {"x": (3,)}, {"y": None}, {"W": w})
    r = sira.analyze(model, (-1, 2))["y"]
    assert r.shape == (2,)
    np.testing.assert_array_equal(r.lo, [-6, -5])
    np.testing.assert_array_equal(r.hi, [9, 4])


def test_matmul_per_k_activation_scale_drops_int_form():
    rng = np.random.default_rng(2)
    w = rng.integers(-3, 4, size=(3, 2))
    s = np.array([[0.5, 0.25, 1.0]], np.float32)
    r = check_linear(matmul_op, (1, 3), w, np.float32(1), np.array([-1.0, 0, 1]), np.array([1.0, 2, 3]), quant_in=(s, np.float32(0), 4, True), rng=rng)
    assert not r.is_scaled_int and r.exact
    assert any("contraction axis" in n for n in r.notes)


def test_matmul_per_k_weight_scale_drops_int_form():
    rng = np.random.default_rng(3)
    w = rng.integers(-3, 4, size=(3, 2))
    sw = np.array([[0.5], [0.25], [1.0]], np.float32)
    r = check_linear(matmul_op, (1, 3), w, sw, np.array([-1.0, 0, 1]), np.array([1.0, 2, 3]), quant_in=(np.float32(0.5), np.float32(0), 4, True), rng=rng)
    assert not r.is_scaled_int
    assert any("per-input-channel weight scale" in n for n in r.notes)


def test_matmul_float_weights_keep_real_bounds():
    w = np.array([[0.1, -0.3], [0.7, 0.2]], np.float32)
    nodes = [quant_node("x", "s", "z", "b", "xq"), helper.make_node("MatMul", ["xq", "W"], ["y"])]
    model = make_model(nodes, {"x": (4, 2)}, {"y": None}, {"W": w, "s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4)})
    r = sira.analyze(model, (-1, 1))["y"]
    assert not r.is_scaled_int and any("integer grid" in n for n in r.notes)
    for x in itertools.product([-1, 1], repeat=2):
        assert_contains(r, execute(model, {"x": np.tile(np.array(x, np.float32), (4, 1))})["y"])


def test_matmul_zero_point_gives_bias():
    """Input s*(q - z): output bias -s*z*sum(W) per column, exact."""
    w = np.array([[1, -2], [3, 4]], np.float32)
    nodes = [quant_node("x", "s", "z", "b", "xq", signed=0), helper.make_node("MatMul", ["xq", "W"], ["y"])]
    model = make_model(nodes, {"x": (1, 2)}, {"y": None}, {"W": w, "s": np.float32(0.5), "z": np.float32(3), "b": np.float32(4)})
    r = sira.analyze(model, (-1.5, 6))["y"]
    np.testing.assert_array_equal(r.bias.reshape(-1), -0.5 * 3 * w.sum(axis=0))
    assert r.bias_sources == {"z"}
    np.testing.assert_array_equal(np.broadcast_to(r.int_lo, (1, 2)), [[0, 15 * -2]])
    np.testing.assert_array_equal(np.broadcast_to(r.int_hi, (1, 2)), [[15 * 4, 15 * 4]])


def test_matmul_integers_beyond_2_53_stay_exact():
    """Integer parts are exact Python ints beyond int64 and float64."""
    w = np.array([[3, -1], [5, 7], [-2, 1]], np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], {"x": (1, 3)}, {"y": None}, {"W": w})
    big = 2**61 + 12345
    r = sira.analyze(model, {"x": {"int_min": -big, "int_max": big, "scale": 1}})["y"]
    wi = w.astype(np.int64)
    expect_hi = [big * int(np.abs(wi[:, j]).sum()) for j in range(2)]
    assert [int(v) for v in r.int_hi.reshape(-1)] == expect_hi
    assert [int(v) for v in r.int_lo.reshape(-1)] == [-v for v in expect_hi]
    assert r.int_hi.dtype == object  # beyond 2**62
    mid = 2**55 + 1  # products beyond 2**53, sums below 2**62: int64 path
    r = sira.analyze(model, {"x": {"int_min": 0, "int_max": mid, "scale": 1}})["y"]
    assert [int(v) for v in np.broadcast_to(r.int_hi, (1, 2)).reshape(-1)] == [mid * 8, mid * 8]
    assert r.int_hi.dtype == np.int64


def test_matmul_two_dynamic_operands_brute_force():
    """Term-wise bound is attained for independent operands (all corners of
    both boxes), unlike midpoint-radius."""
    alo, ahi = np.array([-1.0, 0.5]), np.array([2.0, 1.5])
    blo, bhi = np.array([-3.0, -1.0]), np.array([1.0, 2.0])
    corners = list(itertools.product(*zip(np.concatenate([alo, blo]), np.concatenate([ahi, bhi]))))
    a = np.array([c[:2] for c in corners]).reshape(-1, 1, 2)
    b = np.array([c[2:] for c in corners]).reshape(-1, 2, 1)
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": a.shape, "b": b.shape}, {"y": None})
    spec = {"a": {"min": list(alo), "max": list(ahi), "axis": 2}, "b": {"min": list(blo), "max": list(bhi), "axis": 1}}
    r = sira.analyze(model, spec)["y"]
    y = execute(model, {"a": a, "b": b})["y"]
    # terms [-6, 3] and [-1.5, 3]; midpoint-radius would give [-8, 8]
    assert float(r.lo.min()) == y.min() == -7.5
    assert float(r.hi.max()) == y.max() == 6
    assert not r.exact and any("correlated" in n for n in r.notes)


@FAST
@given(st.data())
def test_matmul_two_dynamic_quantized(data):
    """Attention-like: Quant(a) @ Quant(b) keeps the integer form (integer
    zero-points folded into the grid) and contains every execution."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    za, zb = (np.float32(data.draw(st.integers(-2, 2))) for _ in range(2))
    nodes = [
        quant_node("a", "sa", "za", "ba", "aq"),
        quant_node("b", "sb", "zb", "bb", "bq"),
        helper.make_node("MatMul", ["aq", "bq"], ["y"]),
    ]
    inits = dict(sa=np.float32(0.25), za=za, ba=np.float32(4), sb=np.float32(0.5), zb=zb, bb=np.float32(3))
    model = make_model(nodes, {"a": (2, m, k), "b": (2, k, n)}, {"y": None}, inits)
    lo, hi = sorted(rng.uniform(-3, 3, size=2))
    rep = sira.analyze(model, (lo, hi))
    r = rep["y"]
    assert r.is_scaled_int and np.all(r.bias == 0) and np.all(r.scale == 0.125)
    feeds = [{"a": rng.uniform(lo, hi, (2, m, k)), "b": rng.uniform(lo, hi, (2, k, n))} for _ in range(3)]
    feeds += [{"a": np.full((2, m, k), va), "b": np.full((2, k, n), vb)} for va in (lo, hi) for vb in (lo, hi)]
    for feed in feeds:
        assert_contains(r, execute(model, feed)["y"], tol=1e-5)
    # k identical independent terms, each bounded by its four corners
    a, b = rep["aq"], rep["bq"]
    corners = [float(u * v) for u in (a.lo.min(), a.hi.max()) for v in (b.lo.min(), b.hi.max())]
    assert float(r.hi.max()) == k * max(corners) and float(r.lo.min()) == k * min(corners)


def test_matmul_same_operand_is_sound():
    model = make_model([helper.make_node("MatMul", ["x", "x"], ["y"])], {"x": (2, 2)}, {"y": None})
    r = sira.analyze(model, (-1, 2))["y"]
    assert not r.exact
    np.testing.assert_array_equal(np.broadcast_to(r.lo, (2, 2)), -4)
    np.testing.assert_array_equal(np.broadcast_to(r.hi, (2, 2)), 8)


def test_matmul_infinite_bounds():
    """0 * inf = 0: an unbounded input reaches only outputs with a non-zero
    weight on it."""
    x = ScaledIntRange.real((1, 2), [[-np.inf, 0.0]], [[1.0, 2.0]])
    w = ScaledIntRange.constant(np.array([[1.0, 0.0], [2.0, -3.0]], np.float32))
    (r,) = rule_outputs(helper.make_node("MatMul", ["x", "W"], ["y"]), [x, w], [(1, 2)])
    np.testing.assert_array_equal(r.lo, [[-np.inf, -6.0]])
    np.testing.assert_array_equal(r.hi, [[5.0, 0.0]])
    # two dynamic operands: a factor that may be zero does not stop the infinity
    y = ScaledIntRange.real((2, 2), [[0.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0], [1.0, 1.0]])
    (r,) = rule_outputs(helper.make_node("MatMul", ["x", "y"], ["z"]), [x, y], [(1, 2)])
    np.testing.assert_array_equal(r.lo, [[-np.inf, 0.0]])
    np.testing.assert_array_equal(r.hi, [[3.0, 2.0]])


def test_matmul_mismatched_shapes():
    x = ScaledIntRange.real((2, 3), -1, 1)
    w = ScaledIntRange.constant(np.ones((4, 2), np.float32))
    with pytest.raises(RuleError, match="contraction sizes differ"):
        rule_outputs(helper.make_node("MatMul", ["x", "W"], ["y"]), [x, w], [None])


# --------------------------------------------------------------------------
# Gemm
# --------------------------------------------------------------------------


@FAST
@given(st.data())
def test_gemm_attributes(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    k, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    trans_a, trans_b = data.draw(st.booleans()), data.draw(st.booleans())
    alpha = data.draw(st.sampled_from([1.0, 0.5, -2.0, 0.3]))
    beta = data.draw(st.sampled_from([1.0, -0.5, 0.0]))
    c_shape = data.draw(st.sampled_from([None, (n,), (1, n)]))
    lo, hi = _ranges(data.draw, k)
    w = _weights(data.draw, (n, k) if trans_b else (k, n), rng)
    c = None if c_shape is None else rng.integers(-4, 5, size=c_shape).astype(np.float32)

    def make_op(x, wn, b, y):
        return helper.make_node("Gemm", [x, wn] + ([b] if b else []), [y], transA=int(trans_a), transB=int(trans_b), alpha=alpha, beta=beta)

    qin = (np.float32(0.5), np.float32(0), 5, True)
    if trans_a:
        r = check_linear(make_op, (k, 1), w, np.float32(0.25), lo, hi, axis=0, batch_axis=1, out_batch_axis=0, quant_in=qin, bias=c, rng=rng)
    else:
        r = check_linear(make_op, (1, k), w, np.float32(0.25), lo, hi, quant_in=qin, bias=c, rng=rng)
    assert r.exact and r.is_scaled_int
    np.testing.assert_allclose(np.asarray(r.scale).reshape(-1), 0.5 * 0.25 * alpha)
    if c is not None and beta != 0:
        assert "B" in r.bias_sources


def test_gemm_bias_exact():
    nodes = [helper.make_node("Gemm", ["x", "W", "C"], ["y"], alpha=2.0, beta=0.5, transB=1)]
    w = np.array([[1, -1], [2, 0], [0, 3]], np.float32)  # (N=3, K=2)
    c = np.array([1.0, 2.0, -4.0], np.float32)
    model = make_model(nodes, {"x": (1, 2)}, {"y": None}, {"W": w, "C": c})
    r = sira.analyze(model, {"x": {"int_min": 0, "int_max": 3, "scale": 1}})["y"]
    np.testing.assert_array_equal(r.bias.reshape(-1), 0.5 * c)
    np.testing.assert_array_equal(r.lo.reshape(-1), [2 * -3 + 0.5, 0 + 1, 0 - 2])
    np.testing.assert_array_equal(r.hi.reshape(-1), [2 * 3 + 0.5, 2 * 6 + 1, 2 * 9 - 2])
    assert r.bias_sources == {"C"}


# --------------------------------------------------------------------------
# Conv
# --------------------------------------------------------------------------


def _draw_grouping(data):
    """A seeded rng, 1 or 2 spatial dims, and a dense, grouped or depthwise
    channel grouping with its input channel count."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    dims = data.draw(st.sampled_from([1, 2]))
    kind = data.draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    group = {"dense": 1, "grouped": 2, "depthwise": data.draw(st.integers(1, 3))}[kind]
    cin = group * (data.draw(st.integers(1, 2)) if kind != "depthwise" else 1)
    return rng, dims, kind, group, cin


@FAST
@given(st.data())
def test_conv_property(data):
    rng, dims, kind, group, cin = _draw_grouping(data)
    cout = group * data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    strides = [data.draw(st.integers(1, 2)) for _ in range(dims)]
    dil = [data.draw(st.integers(1, 2)) for _ in range(dims)]
    pads = [data.draw(st.integers(0, 2)) for _ in range(2 * dims)]
    spatial = tuple(data.draw(st.integers(1, 5)) for _ in range(dims))
    for i, (k, d, size) in enumerate(zip(kernel, dil, spatial)):  # the kernel must fit the padded input
        pads[dims + i] = max(pads[dims + i], (k - 1) * d + 1 - size - pads[i])
    w = _weights(data.draw, (cout, cin // group) + kernel, rng)
    sw = _weight_scale(data.draw, rng, cout, 0, 2 + dims)
    lo, hi = _ranges(data.draw, cin)
    qin = _quant_in(data.draw, rng)
    bias = rng.integers(-3, 4, size=cout).astype(np.float32) if data.draw(st.booleans()) else None
    op = conv_op(group=group, strides=strides, dilations=dil, pads=pads)
    r = check_linear(op, (1, cin) + spatial, w, sw, lo, hi, quant_in=qin, bias=bias, rng=rng)
    assert r.exact
    assert r.is_scaled_int == (qin is not None)


@FAST
@given(st.data())
def test_conv_auto_pad(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    mode = data.draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    k, s = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    size = data.draw(st.integers(k, 7))
    w = _weights(data.draw, (2, 1, k, k), rng)
    lo, hi = _ranges(data.draw, 1)
    r = check_linear(conv_op(auto_pad=mode, strides=[s, s]), (1, 1, size, size), w, np.float32(1), lo, hi, rng=rng, n_random=2)
    assert r.exact


def test_conv_border_and_interior():
    """All-ones 3x3 kernel, pad 1, inputs in [0, 1]: corners see 4 taps,
    edges 6, the interior 9; per-channel input stays per-channel where it
    can (the integer bounds are per element only because of the border)."""
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], {"x": (1, 1, 4, 5)}, {"y": None}, {"W": np.ones((1, 1, 3, 3), np.float32)})
    r = sira.analyze(model, {"x": {"datatype": "UINT2"}})["y"]
    expect = np.array([[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]]) * 3
    np.testing.assert_array_equal(r.hi.reshape(4, 5), expect)
    np.testing.assert_array_equal(r.int_hi.reshape(4, 5), expect)
    assert np.all(r.lo == 0) and r.lo.size == 1


def test_conv_spatially_varying_bias():
    """Zero-point input and zero padding: border outputs see zeros, not the
    input bias, so the output bias is per element, and exact."""
    w = np.array([[[[1, 2], [3, -1]]]], np.float32)
    nodes = [quant_node("x", "s", "z", "b", "xq", signed=0), helper.make_node("Conv", ["xq", "W"], ["y"], pads=[1, 0, 0, 0])]
    inits = {"W": w, "s": np.float32(0.5), "z": np.float32(2), "b": np.float32(3)}
    model = make_model(nodes, {"x": (1, 1, 3, 3)}, {"y": None}, inits)
    r = sira.analyze(model, (-1, 2.5))["y"]
    assert r.shape == (1, 1, 3, 2)
    b_in = -0.5 * 2
    taps = np.array([[w[0, 0, 1].sum()] * 2, [w.sum()] * 2, [w.sum()] * 2])  # first row: only the kernel's second row is inside
    np.testing.assert_array_equal(np.broadcast_to(r.bias, r.shape)[0, 0], b_in * taps)
    rng = np.random.default_rng(4)
    for x in [rng.uniform(-1, 2.5, (1, 1, 3, 3)) for _ in range(5)] + [np.full((1, 1, 3, 3), v) for v in (-1, 2.5)]:
        assert_contains(r, execute(model, {"x": x})["y"], tol=1e-6)


def test_conv_per_channel_activation_scale():
    """Depthwise keeps the integer form with a per-channel activation scale;
    a dense conv cannot factor it out and says so."""
    s = np.array([0.5, 0.25], np.float32).reshape(1, 2, 1, 1)
    lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    rng = np.random.default_rng(5)
    w = rng.integers(-3, 4, size=(2, 1, 3, 3))
    r = check_linear(conv_op(group=2, pads=[1, 1, 1, 1]), (1, 2, 4, 4), w, np.float32(1), lo, hi, quant_in=(s, np.float32(0), 4, True), rng=rng)
    assert r.is_scaled_int and r.exact
    np.testing.assert_array_equal(np.asarray(r.scale).reshape(-1), [0.5, 0.25])
    w = rng.integers(-3, 4, size=(3, 2, 3, 3))
    r = check_linear(conv_op(pads=[1, 1, 1, 1]), (1, 2, 4, 4), w, np.float32(1), lo, hi, quant_in=(s, np.float32(0), 4, True), rng=rng)
    assert not r.is_scaled_int and r.exact
    assert any("depthwise" in n for n in r.notes)


def test_conv_per_element_input():
    """A spatially varying input (the output of a padded conv) goes through
    the direct convolution, with the integer form."""
    ones = np.ones((2, 2, 3, 3), np.float32)
    w2 = np.array([[[[1, -2], [0, 3]], [[-1, 1], [2, 0]]]], np.float32)
    nodes = [
        quant_node("x", "s", "z", "b", "xq"),
        helper.make_node("Conv", ["xq", "W1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["h", "W2"], ["y"], pads=[0, 1, 1, 0], strides=[2, 1]),
    ]
    model = make_model(nodes, {"x": (1, 2, 4, 4)}, {"y": None}, {"W1": ones, "W2": w2, "s": np.float32(0.5), "z": np.float32(0), "b": np.float32(3)})
    rep = sira.analyze(model, (-1, 1))
    assert rep["h"].int_hi.shape[2:] == (4, 4)
    r = rep["y"]
    assert r.is_scaled_int and r.exact
    rng = np.random.default_rng(6)
    ys = [execute(model, {"x": x})["y"] for x in [rng.uniform(-1, 1, (1, 2, 4, 4)) for _ in range(4)] + [np.full((1, 2, 4, 4), v) for v in (-1, 1)]]
    for y in ys:
        assert_contains(r, y)


def test_conv_dynamic_weights_rejected():
    model = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")], {"x": (1, 1, 3, 3), "w": (1, 1, 2, 2)}, {"y": None})
    with pytest.raises(SiraError, match=r"conv0.*computed at run time.*constant weights"):
        sira.analyze(model, (-1, 1))


def test_conv_malformed_group():
    x = ScaledIntRange.real((1, 4, 3, 3), -1, 1)
    w = ScaledIntRange.constant(np.ones((2, 3, 1, 1), np.float32))
    with pytest.raises(RuleError, match="group=2"):
        rule_outputs(helper.make_node("Conv", ["x", "W"], ["y"], group=2), [x, w], [None])
    with pytest.raises(RuleError, match="kernel extent"):
        rule_outputs(helper.make_node("Conv", ["x", "W"], ["y"]), [x, ScaledIntRange.constant(np.ones((2, 4, 5, 1), np.float32))], [None])


def test_conv_3d():
    rng = np.random.default_rng(7)
    w = rng.integers(-2, 3, size=(2, 1, 2, 2, 2))
    check_linear(conv_op(pads=[1, 0, 1, 0, 1, 1], strides=[1, 2, 1]), (1, 1, 3, 3, 2), w, np.float32(0.5), np.array([-1.0]), np.array([2.0]), quant_in=(np.float32(0.5), np.float32(1), 4, True), rng=rng)


# --------------------------------------------------------------------------
# ConvTranspose
# --------------------------------------------------------------------------


@FAST
@given(st.data())
def test_conv_transpose_property(data):
    rng, dims, kind, group, cin = _draw_grouping(data)
    og = 1 if kind == "depthwise" else data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(dims))
    strides = [data.draw(st.integers(1, 3)) for _ in range(dims)]
    dil = [data.draw(st.integers(1, 2)) for _ in range(dims)]
    out_pad = [data.draw(st.integers(0, s - 1)) for s in strides]
    spatial = tuple(data.draw(st.integers(1, 4)) for _ in range(dims))
    full = [s * (i - 1) + p + (k - 1) * d + 1 for s, i, p, k, d in zip(strides, spatial, out_pad, kernel, dil)]
    pads = [data.draw(st.integers(0, max(0, (f - 1) // 2))) for f in full * 2]
    w = _weights(data.draw, (cin, og) + kernel, rng)
    sw = _weight_scale(data.draw, rng, og, 1, 2 + dims)
    lo, hi = _ranges(data.draw, cin)
    qin = _quant_in(data.draw, rng)
    bias = rng.integers(-3, 4, size=og * group).astype(np.float32) if data.draw(st.booleans()) else None
    op = conv_transpose_op(group=group, strides=strides, dilations=dil, pads=pads, output_padding=out_pad)
    r = check_linear(op, (1, cin) + spatial, w, sw, lo, hi, quant_in=qin, bias=bias, rng=rng)
    assert r.exact and r.is_scaled_int == (qin is not None)


@pytest.mark.parametrize("attrs", [dict(auto_pad="SAME_UPPER", strides=[2]), dict(auto_pad="SAME_LOWER", strides=[2]), dict(output_shape=[6], strides=[2]), dict(auto_pad="VALID", strides=[3])])
def test_conv_transpose_output_shape_modes(attrs):
    rng = np.random.default_rng(8)
    w = rng.integers(-3, 4, size=(1, 2, 3))
    check_linear(conv_transpose_op(**attrs), (1, 1, 4), w, np.float32(1), np.array([-1.0]), np.array([2.0]), rng=rng, n_random=2)


def test_conv_transpose_per_element_input():
    """ConvTranspose of a per-element range (after a padded conv)."""
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["h", "W2"], ["y"], strides=[2, 2], pads=[0, 1, 1, 0]),
    ]
    w2 = np.array([[[[1, -2], [0, 3]], [[-1, 1], [2, 0]]]], np.float32)  # (C=1, O=2, 2, 2)
    model = make_model(nodes, {"x": (1, 1, 3, 3)}, {"y": None}, {"W1": np.ones((1, 1, 3, 3), np.float32), "W2": w2})
    r = sira.analyze(model, {"x": {"datatype": "INT3"}})["y"]
    assert r.is_scaled_int and r.int_lo.shape[2:] != (1, 1)
    rng = np.random.default_rng(9)
    for x in [rng.integers(-4, 4, (1, 1, 3, 3)) for _ in range(4)] + [np.full((1, 1, 3, 3), v) for v in (-4, 3)]:
        assert_contains(r, execute(model, {"x": x})["y"])


# --------------------------------------------------------------------------
# exact integers against a pure-Python reference
# --------------------------------------------------------------------------


def _reference_bounds(lo, hi, w, group, strides, pads, dilations, out_sp, transposed):
    """Per-term extremes summed with Python ints, loop by loop (2-D)."""
    c_in = lo.shape[1]
    cg = c_in // group
    og = w.shape[1] if transposed else w.shape[0] // group
    c_out = og * group
    acc_lo = [[[0] * out_sp[1] for _ in range(out_sp[0])] for _ in range(c_out)]
    acc_hi = [[[0] * out_sp[1] for _ in range(out_sp[0])] for _ in range(c_out)]
    for c, o_, ky, kx in itertools.product(range(c_in), range(og), range(w.shape[2]), range(w.shape[3])):
        g, c_ = divmod(c, cg)
        o = g * og + o_
        wv = int(w[c, o_, ky, kx]) if transposed else int(w[o, c_, ky, kx])
        if transposed:
            pairs = [((iy * strides[0] - pads[0] + ky * dilations[0], ix * strides[1] - pads[1] + kx * dilations[1]), (iy, ix)) for iy in range(lo.shape[2]) for ix in range(lo.shape[3])]
        else:
            pairs = [((y, x), (y * strides[0] - pads[0] + ky * dilations[0], x * strides[1] - pads[1] + kx * dilations[1])) for y in range(out_sp[0]) for x in range(out_sp[1])]
        for (y, x), (iy, ix) in pairs:
            if 0 <= y < out_sp[0] and 0 <= x < out_sp[1] and 0 <= iy < lo.shape[2] and 0 <= ix < lo.shape[3]:
                a, b = wv * int(lo[0, c, iy, ix]), wv * int(hi[0, c, iy, ix])
                acc_lo[o][y][x] += min(a, b)
                acc_hi[o][y][x] += max(a, b)
    return acc_lo, acc_hi


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("magnitude", [2**10, 2**50, 2**61])  # float64, int64, Python-int paths
def test_exact_integer_convolution(transposed, magnitude):
    """Per-channel and per-element integer inputs, small to beyond 2**62,
    through Conv and ConvTranspose: bounds equal the Python-int reference."""
    rng = np.random.default_rng(magnitude % 1000 + transposed)
    for trial in range(6):
        group = [1, 2, 4][trial % 3]
        c_in, og = 4, [2, 1, 1][trial % 3]
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        strides, dilations = tuple(int(v) for v in rng.integers(1, 3, 2)), tuple(int(v) for v in rng.integers(1, 3, 2))
        pads = [int(v) for v in rng.integers(0, 2, 4)]
        in_sp = (5, 6)
        w = rng.integers(-9, 10, size=(c_in, og) + k if transposed else (og * group, c_in // group) + k)
        varying = (1, c_in) + (in_sp if trial % 2 else (1, 1))  # per element or per channel
        base = rng.integers(-magnitude, magnitude, size=varying, dtype=np.int64).astype(object)
        lo = np.broadcast_to(base - rng.integers(0, 50, size=varying), (1, c_in) + in_sp)
        hi = np.broadcast_to(base + rng.integers(0, 50, size=varying), (1, c_in) + in_sp)
        x = ScaledIntRange.scaled((1, c_in) + in_sp, lo, hi, 1.0)
        assert x.int_lo.shape == varying
        op = "ConvTranspose" if transposed else "Conv"
        node = helper.make_node(op, ["x", "W"], ["y"], group=group, strides=list(strides), dilations=list(dilations), pads=pads)
        (r,) = rule_outputs(node, [x, ScaledIntRange.constant(w.astype(np.float32))], [None])
        ref_lo, ref_hi = _reference_bounds(lo, hi, w, group, strides, pads[:2], dilations, r.shape[2:], transposed)
        assert np.broadcast_to(r.int_lo, r.shape)[0].tolist() == ref_lo
        assert np.broadcast_to(r.int_hi, r.shape)[0].tolist() == ref_hi


def test_gemm_dynamic_c_is_sound():
    x = ScaledIntRange.scaled((1, 2), 0, 3, 0.5)
    w = ScaledIntRange.constant(np.array([[1, -1, 0], [2, 0, 3]], np.float32))
    c = ScaledIntRange.scaled((3,), [-1, 0, 2], [1, 0, 4], 0.5)
    (r,) = rule_outputs(helper.make_node("Gemm", ["x", "W", "C"], ["y"], beta=2.0), [x, w, c], [(1, 3)])
    np.testing.assert_array_equal(r.lo.reshape(-1), [0 - 1, -1.5 + 0, 0 + 2])
    np.testing.assert_array_equal(r.hi.reshape(-1), [4.5 + 1, 0 + 0, 4.5 + 4])
    assert r.is_scaled_int and not r.exact

"""Quantizer rules, checked exhaustively against qonnx's own implementation
of the ops: every rounding mode, signed/unsigned, narrow range, bit widths
1-4, several scales and zero-points, and every interval of a fine grid of
inputs including exact rounding ties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from onnx import helper
from qonnx.custom_op.general.intquant import int_quant
from qonnx.custom_op.general.multithreshold import multithreshold
from qonnx.custom_op.general.trunc import trunc_v1, trunc_v2

from sira import ScaledIntRange
from sira.errors import RuleError
from tests.helpers import QONNX_DOMAIN, execute, make_model, quant_node
from tests.rules_harness import rule_outputs

MODES = ["ROUND", "HALF_EVEN", "CEIL", "FLOOR", "UP", "DOWN", "HALF_UP", "HALF_DOWN"]
# grid of inputs: multiples of 1/16 hit every tie of scales 0.25 and 0.5 exactly
GRID = np.arange(-48, 49, dtype=np.float64) / 16.0


def _const(v):
    return ScaledIntRange.constant(np.asarray(v, dtype=np.float32))


def _intervals(points, step=3):
    pts = points[::step]
    return [(a, b) for a, b in itertools.combinations_with_replacement(pts, 2)]


def _levels(r, ys):
    s = float(np.asarray(r.scale).reshape(-1)[0])
    bias = float(np.asarray(r.bias).reshape(-1)[0])
    q = (np.asarray(ys, dtype=np.float64) - bias) / s
    assert np.allclose(q, np.round(q), atol=1e-6), "off grid"
    return np.round(q).astype(np.int64)


def _check_interval(r, a, b, fn, exact_fn=None):
    """Brute force: every grid value in [a, b] maps inside r (on its grid),
    and r's integer bounds are attained (exact rule) - by qonnx's float32
    execution ``fn`` or by the exact rational semantics ``exact_fn``, which
    can differ at a rounding tie that float32 division creates or hides."""
    xs = GRID[(GRID >= a) & (GRID <= b)]
    xs = np.unique(np.concatenate([xs, [a, b]])).astype(np.float32)
    ys = fn(xs).astype(np.float64)
    q = _levels(r, ys)
    qlo, qhi = int(np.min(r.int_lo)), int(np.max(r.int_hi))
    assert q.min() >= qlo and q.max() <= qhi, f"unsound on [{a}, {b}]: {q.min()}..{q.max()} vs {qlo}..{qhi}"
    ends = np.array([a, b], dtype=np.float32)  # monotone: extremes sit at the ends
    attained = q if exact_fn is None else np.concatenate([q, _levels(r, exact_fn(ends))])
    assert attained.min() == qlo and attained.max() == qhi, f"not tight on [{a}, {b}]: {attained.min()}..{attained.max()} vs {qlo}..{qhi}"
    f32 = 2.0**-23 * np.abs(ys).max()  # float32 rounding of the executed product
    assert np.all(r.lo <= ys.min() + f32) and np.all(r.hi >= ys.max() - f32)


def _exact_quant(xs, scale, zp, bits, signed, narrow, mode):
    """QONNX Quant in exact rational arithmetic (the mathematical semantics)."""
    from fractions import Fraction

    from sira.numerics import round_fraction
    from sira.rules.quant import int_limits

    s, z = Fraction(float(np.float32(scale))), Fraction(float(np.float32(zp)))
    out = []
    for x in xs:
        v = Fraction(float(x)) / s + z
        if bits == 1 and signed:
            q = 1 if v >= 0 else -1
        else:
            lo, hi = int_limits(bool(signed), bool(narrow), bits)
            q = round_fraction(min(max(v, Fraction(lo)), Fraction(hi)), mode)
        out.append(float((q - z) * s))
    return np.array(out)


# the fast tier samples every 16th grid point as an interval end, the slow
# tier every 5th (all intervals of that sub-grid, every mode and flag)
TIERS = [pytest.param(16, id="fast"), pytest.param(5, id="full", marks=pytest.mark.slow)]


@pytest.mark.parametrize("step", TIERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signed,narrow", [(1, 0), (1, 1), (0, 0), (0, 1)])
def test_quant_exhaustive(mode, signed, narrow, step):
    for bits, scale, zp in itertools.product([1, 2, 4], [0.25, 0.3], [0.0, 1.0]):
        if bits == 1 and not signed and narrow:
            continue  # no levels left
        node = quant_node("x", "s", "z", "b", "y", signed=signed, narrow=narrow, rounding_mode=mode)
        fn = lambda xs: int_quant(xs, np.float32(scale), np.float32(zp), np.float32(bits), signed, narrow, mode)  # noqa: E731
        exact = lambda xs: _exact_quant(xs, scale, zp, bits, signed, narrow, mode)  # noqa: E731
        for a, b in _intervals(GRID, step=step):
            x = ScaledIntRange.real((1,), a, b)
            (r,) = rule_outputs(node, [x, _const(scale), _const(zp), _const(bits)], [(1,)])
            _check_interval(r, a, b, fn, exact)


def test_quant_tie_half_even_vs_half_up():
    """x/s exactly on .5: ROUND (half-even) and HALF_UP must differ."""
    node_even = quant_node("x", "s", "z", "b", "y", signed=1, rounding_mode="ROUND")
    node_up = quant_node("x", "s", "z", "b", "y", signed=1, rounding_mode="HALF_UP")
    x = ScaledIntRange.real((1,), 0.625, 0.625)  # 2.5 steps of 0.25
    args = [x, _const(0.25), _const(0.0), _const(4)]
    (even,) = rule_outputs(node_even, args, [(1,)])
    (up,) = rule_outputs(node_up, args, [(1,)])
    assert (int(even.int_lo.item()), int(even.int_hi.item())) == (2, 2)
    assert (int(up.int_lo.item()), int(up.int_hi.item())) == (3, 3)


def test_quant_per_channel_constant_weights_are_exact_integers():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 4)).astype(np.float32)
    scale = (np.abs(w).max(axis=0, keepdims=True) / 7).astype(np.float32)
    node = quant_node("w", "s", "z", "b", "y", signed=1, narrow=1)
    (r,) = rule_outputs(node, [_const(w), _const(scale), _const(0.0), _const(4)], [(6, 4)])
    expected = int_quant(w, scale, np.float32(0), np.float32(4), 1, 1, "ROUND")
    q = np.round(expected / scale).astype(np.int64)
    assert r.is_const and np.array_equal(r.value, expected)
    assert np.array_equal(np.broadcast_to(r.int_lo, (6, 4)), q) and np.array_equal(np.broadcast_to(r.int_hi, (6, 4)), q)
    assert r.scale.shape == (1, 4)


def test_quant_unbounded_input_is_clipped():
    node = quant_node("x", "s", "z", "b", "y", signed=0)
    (r,) = rule_outputs(node, [ScaledIntRange.unbounded((1, 3)), _const(0.5), _const(0.0), _const(3)], [(1, 3)])
    assert r.int_bounds() == (0, 7) and float(r.hi.max()) == 3.5


@pytest.mark.parametrize("bad_scale", [0.0, -0.5])
def test_quant_bad_scale(bad_scale):
    node = quant_node("x", "s", "z", "b", "y")
    with pytest.raises(RuleError, match="scale"):
        rule_outputs(node, [ScaledIntRange.real((1,), 0, 1), _const(bad_scale), _const(0.0), _const(4)], [(1,)])


@pytest.mark.parametrize("bits", [0, 65, 2.5])
def test_quant_bad_bitwidth(bits):
    node = quant_node("x", "s", "z", "b", "y")
    with pytest.raises(RuleError, match="bit width"):
        rule_outputs(node, [ScaledIntRange.real((1,), 0, 1), _const(1.0), _const(0.0), _const(bits)], [(1,)])


def test_bipolar_quant_exhaustive():
    node = helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=QONNX_DOMAIN)
    for scale in (1.0, 0.5, 3.0):
        fn = lambda xs: np.where(xs / np.float32(scale) >= 0, 1.0, -1.0) * scale  # noqa: E731
        for a, b in _intervals(GRID, step=4):
            (r,) = rule_outputs(node, [ScaledIntRange.real((1,), a, b), _const(scale)], [(1,)])
            _check_interval(r, a, b, fn)


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "CEIL"])
def test_trunc_v1_exhaustive(mode):
    node = helper.make_node("Trunc", ["x", "s", "z", "ib", "ob"], ["y"], domain=QONNX_DOMAIN, rounding_mode=mode)
    s = 0.25
    fn = lambda xs: trunc_v1(xs, np.float32(s), np.float32(0), np.float32(6), np.float32(4), mode)  # noqa: E731
    for a, b in _intervals(GRID, step=4):
        (r,) = rule_outputs(node, [ScaledIntRange.real((1,), a, b), _const(s), _const(0.0), _const(6), _const(4)], [(1,)])
        _check_interval(r, a, b, fn)


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND"])
def test_trunc_v2_exhaustive(mode):
    node = helper.make_node("Trunc", ["x", "s", "z", "ib", "os", "ob"], ["y"], domain=QONNX_DOMAIN, rounding_mode=mode, signed=1, narrow=0)
    s, out_s = 0.125, 0.5
    fn = lambda xs: trunc_v2(xs, np.float32(s), np.float32(0), np.float32(8), 0, 1, np.float32(out_s), np.float32(4), mode)  # noqa: E731
    for a, b in _intervals(GRID, step=4):
        args = [ScaledIntRange.real((1,), a, b), _const(s), _const(0.0), _const(8), _const(out_s), _const(4)]
        (r,) = rule_outputs(node, args, [(1,)])
        _check_interval(r, a, b, fn)


def test_multithreshold_per_channel_exhaustive():
    T = np.array([[-1.0, 0.0, 0.5], [0.25, 0.25, 2.0]], dtype=np.float32)
    node = helper.make_node("MultiThreshold", ["x", "T"], ["y"], domain=QONNX_DOMAIN, out_scale=0.5, out_bias=-1.0, out_dtype="UINT2")
    for a, b in _intervals(GRID, step=4):
        x = ScaledIntRange.real((1, 2), a, b)
        (r,) = rule_outputs(node, [x, _const(T)], [(1, 2)])
        xs = GRID[(GRID >= a) & (GRID <= b)]
        xs = np.unique(np.concatenate([xs, [a, b]]))
        vals = np.stack([multithreshold(np.full((1, 2), v, dtype=np.float32), T, 0.5, -1.0) for v in xs])
        lo = np.broadcast_to(r.lo, (1, 2))
        hi = np.broadcast_to(r.hi, (1, 2))
        assert np.array_equal(vals.min(axis=0), lo) and np.array_equal(vals.max(axis=0), hi)


def test_quant_in_a_model_matches_execution_at_ties():
    """End to end: input on a grid whose points hit rounding ties exactly."""
    m = make_model(
        [quant_node("x", "s", "z", "b", "y", signed=1, narrow=1, rounding_mode="ROUND")],
        {"x": [1, 5]},
        {"y": [1, 5]},
        {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(3)},
    )
    import sira

    rep = sira.analyze(m, {"inputs": {"x": {"int_min": -9, "int_max": 9, "scale": 0.25}}})
    r = rep["y"]
    assert r.int_bounds() == (-3, 3)
    for k in range(-9, 10):
        out = execute(m, {"x": np.full((1, 5), k * 0.25)})["y"]
        q = out / 0.5
        assert np.all((q >= -3) & (q <= 3))


def test_qcdq_pair_is_fused_and_exact():
    """A QuantizeLinear/DequantizeLinear pair becomes a Quant on load and
    keeps its grid: int8 with zero-point 3 and scale 0.1."""
    import sira

    m = make_model(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"]),
        ],
        {"x": [1, 4]},
        {"y": [1, 4]},
        {"s": np.float32(0.1), "zp": np.int8(3)},
    )
    rep = sira.analyze(m, (-2.0, 2.0))
    y = rep["y"]
    assert [n.op_type for n in rep.model.graph.node] == ["Quant"]
    assert y.is_scaled_int and np.isclose(float(y.scale.reshape(-1)[0]), 0.1)
    # q = round(x/0.1) + 3 in [-17, 23]; as the Quant's grid: (q - 3) in [-20, 20]
    assert (float(y.lo.min()), float(y.hi.max())) == pytest.approx((-2.0, 2.0))
    for x in (-2.0, -0.05, 0.05, 2.0):
        out = execute(rep.model, {rep.model.graph.input[0].name: np.full((1, 4), x)})["y"]
        assert np.all((out >= y.lo - 1e-6) & (out <= y.hi + 1e-6))


def test_standalone_quantize_and_dequantize_linear():
    ql = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"])
    (q,) = rule_outputs(ql, [ScaledIntRange.real((1, 4), -2.0, 2.0), _const(0.1), ScaledIntRange.constant(np.int8(3))], [(1, 4)])
    assert q.int_bounds() == (-17, 23) and np.all(q.scale == 1)
    (sat,) = rule_outputs(ql, [ScaledIntRange.real((1, 4), -100.0, 100.0), _const(0.1), ScaledIntRange.constant(np.uint8(0))], [(1, 4)])
    assert sat.int_bounds() == (0, 255)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"])
    (y,) = rule_outputs(dq, [q, _const(0.1), ScaledIntRange.constant(np.int8(3))], [(1, 4)])
    assert y.int_bounds() == (-17, 23)
    assert float(y.lo.min()) == pytest.approx(-2.0) and float(y.hi.max()) == pytest.approx(2.0)

"""Non-monotone elementwise sub-graphs as exact piecewise thresholds: the
breakpoint search against exact rational evaluation and independent
rounding, and the graph rewrite against the reference semantics."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import helper

import sira
from sira.rules.quant import int_limits
from sira.semantics import Clip, Divide, Offset, Scale, Sigmoid
from sira.transforms.thresholds import ConvertDagsToPiecewiseThresholds, ElementwiseDag, NotConvertible, Requantizer, breakpoints
from sira.transforms.thresholds.piecewise import Step
from sira.hls.simulate import unavailable
from sira.transforms.to_hw import lower_to_hw
from tests.helpers import make_model, quant_node


def requant(C, scale, bits=4, signed=False, mode="ROUND"):
    qmin, qmax = int_limits(signed, False, bits)
    return Requantizer(np.full(C, scale), np.zeros(C), qmin, qmax, mode, False, "X")


def dag(steps, rq, C, in_scale=None):
    return ElementwiseDag("q", tuple(steps), rq, C, steps[-1].output, np.ones(C) if in_scale is None else np.asarray(in_scale, float), np.zeros(C))


def silu(k, C):
    """x = k*q; x * sigmoid(x)."""
    return [Step("x", ("q",), Scale(np.asarray(k, float))), Step("s", ("x",), Sigmoid()), Step("y", ("x", "s"), kind="Mul")]


def _every_integer_exact(d, lo, hi):
    """The piecewise form agrees with the exact rational evaluation at every
    integer of every channel's range."""
    C = d.channels
    pw = breakpoints(d, np.full(C, lo), np.full(C, hi))
    for c in range(C):
        q = np.arange(lo, hi + 1)
        assert list(pw.count(c, q)) == [d.exact(c, int(v)) for v in q]
    return pw


def test_silu_levels_dip_below_zero_and_rise_exactly():
    """SiLU falls to its minimum -0.278 near x = -1.28 and rises again: one
    falling breakpoint, several rising ones; negative scales mirror it."""
    rq = requant(2, 1 / 8, bits=4, signed=True)
    d = dag(silu([0.05, -0.07], 2), rq, 2)
    pw = _every_integer_exact(d, -80, 80)
    assert np.all(np.sum(pw.down < pw.pad, axis=1) >= 1) and np.all(np.sum(pw.up < pw.pad, axis=1) >= 2)
    # the negative scale is the mirror image of a positive one
    mirrored = dag(silu([-0.05], 1), requant(1, 1 / 8, bits=4, signed=True), 1)
    assert [mirrored.exact(0, q) for q in range(-40, 41)] == [d.exact(0, -q) for q in range(-40, 41)]


def test_hardswish_like_chain_with_clip_and_division():
    """x * clip(x + 3, 0, 6) / 6 at x = q/4: flat zero, a dip, then a rise."""
    steps = [
        Step("x", ("q",), Scale(np.array([0.25]))),
        Step("a", ("x",), Offset(np.array([3.0]))),
        Step("c", ("a",), Clip(0.0, 6.0)),
        Step("p", ("x", "c"), kind="Mul"),
        Step("y", ("p",), Divide(np.array([6.0]))),
    ]
    d = dag(steps, requant(1, 1 / 16, bits=4, signed=True), 1)
    pw = _every_integer_exact(d, -30, 30)
    assert np.sum(pw.down < pw.pad) >= 1


@pytest.mark.parametrize("mode, rounder", [("ROUND", round), ("HALF_UP", lambda v: int(np.floor(v + Fraction(1, 2))))])
def test_ties_follow_the_rounding_mode(mode, rounder):
    """q*q/2 hits every half-integer for odd q: half-to-even and half-up give
    different levels, each as QONNX rounds them (independent Fractions)."""
    steps = [Step("y", ("q", "q"), kind="Mul"), Step("h", ("y",), Divide(np.array([2.0])))]
    d = dag(steps, requant(1, 1.0, bits=4, mode=mode), 1)
    pw = breakpoints(d, np.array([-7]), np.array([7]))
    want = [min(max(rounder(Fraction(q * q, 2)), 0), 15) for q in range(-7, 8)]
    assert list(pw.count(0, np.arange(-7, 8))) == want


def test_too_many_points_is_refused_with_the_reason():
    d = dag(silu([0.01], 1), requant(1, 1 / 8, signed=True), 1)
    with pytest.raises(NotConvertible, match="max_points=100"):
        breakpoints(d, np.array([-100]), np.array([100]), max_points=100)


def test_silu_after_an_integer_tensor_is_rewritten_and_equivalent():
    """acc -> Mul(s) -> {Sigmoid, Mul} -> Quant becomes two MultiThresholds,
    checked against the reference semantics on samples of the whole range
    and exhaustively at every integer."""
    C, lo, hi = 3, -120, 120
    nodes = [
        helper.make_node("Mul", ["acc", "s"], ["x"]),
        helper.make_node("Sigmoid", ["x"], ["g"]),
        helper.make_node("Mul", ["x", "g"], ["m"]),
        quant_node("m", "s2", "zero", "bits", "y", signed=1),
    ]
    inits = {"s": np.array([0.03, -0.045, 0.02], np.float32).reshape(1, C), "s2": np.float32(0.125), "zero": np.float32(0), "bits": np.float32(4)}
    m = make_model(nodes, {"acc": [hi - lo + 1, C]}, {"y": [hi - lo + 1, C]}, inits)
    spec = {"inputs": {"acc": {"int_min": lo, "int_max": hi}}}
    p = ConvertDagsToPiecewiseThresholds(spec)
    out = m.transform(p)
    ops = [n.op_type for n in out.graph.node]
    assert ops.count("MultiThreshold") == 2 and "Sigmoid" not in ops, ops
    (done,) = p.report.converted
    assert done.falling_per_row >= 1 and done.channels == C
    assert sira.verify_equivalent(m, out, spec, samples=100, label="piecewise").ok
    from sira.execute import execute_all, to_float64

    x = np.repeat(np.arange(lo, hi + 1, dtype=np.float64)[:, None], C, axis=1)
    assert np.array_equal(execute_all(to_float64(out), {"acc": x})["y"], execute_all(to_float64(m), {"acc": x})["y"])


def test_silu_rising_over_the_whole_range_is_one_multithreshold():
    """On a range above SiLU's minimum the levels only rise: one
    MultiThreshold carries the quantizer's levels, no difference or range
    quantizer is needed."""
    nodes = [
        helper.make_node("Mul", ["acc", "s"], ["x"]),
        helper.make_node("Sigmoid", ["x"], ["g"]),
        helper.make_node("Mul", ["x", "g"], ["m"]),
        quant_node("m", "s2", "zero", "bits", "y", signed=1),
    ]
    inits = {"s": np.float32(0.04), "s2": np.float32(0.125), "zero": np.float32(0), "bits": np.float32(4)}
    m = make_model(nodes, {"acc": [64, 2]}, {"y": [64, 2]}, inits)
    spec = {"inputs": {"acc": {"int_min": 0, "int_max": 60}}}
    out = m.transform(ConvertDagsToPiecewiseThresholds(spec))
    assert [n.op_type for n in out.graph.node] == ["MultiThreshold", "Mul"]
    assert sira.verify_equivalent(m, out, spec, samples=100, label="piecewise").ok


def test_a_product_of_two_inputs_is_left_with_the_reason():
    nodes = [helper.make_node("Mul", ["acc", "b"], ["m"]), quant_node("m", "s2", "zero", "bits", "y", signed=1)]
    inits = {"s2": np.float32(0.125), "zero": np.float32(0), "bits": np.float32(4)}
    m = make_model(nodes, {"acc": [4, 2], "b": [4, 2]}, {"y": [4, 2]}, inits)
    spec = {"inputs": {"acc": {"int_min": -9, "int_max": 9}, "b": {"int_min": -9, "int_max": 9}}}
    p = ConvertDagsToPiecewiseThresholds(spec)
    out = m.transform(p)
    assert "Quant" in [n.op_type for n in out.graph.node]
    (left,) = p.report.unconverted
    assert "reads 2 run-time tensors" in left.reason


def _silu_map(C=3):
    """acc [1, C, 11, 11] -> per-channel SiLU -> 4-bit Quant."""
    nodes = [
        helper.make_node("Mul", ["acc", "s"], ["x"]),
        helper.make_node("Sigmoid", ["x"], ["g"]),
        helper.make_node("Mul", ["x", "g"], ["m"]),
        quant_node("m", "s2", "zero", "bits", "y", signed=1),
    ]
    inits = {"s": np.array([0.03, -0.045, 0.02], np.float32).reshape(1, C, 1, 1), "s2": np.float32(1.0), "zero": np.float32(0), "bits": np.float32(4)}
    return make_model(nodes, {"acc": [1, C, 11, 11]}, {"y": [1, C, 11, 11]}, inits)


@pytest.mark.slow
@pytest.mark.skipif(bool(unavailable()), reason="C simulation unavailable")
def test_piecewise_layers_are_bit_exact_in_c_simulation(tmp_path):
    """The two counts, their difference, the base and the range quantizer
    lower to Thresholding and Elementwise layers whose generated C++ gives,
    at every integer of the range, what the original SiLU graph gives."""
    from sira.execute import execute_all, to_float64
    from sira.hls import build_layers
    from sira.hls.dataflow import plan

    spec = {"inputs": {"acc": {"int_min": -60, "int_max": 60}}}
    m = _silu_map()
    out = sira.load(m.transform(ConvertDagsToPiecewiseThresholds(spec)))
    layers = lower_to_hw(out, spec)
    assert sorted(layer.kind for layer in layers) == ["Elementwise", "Elementwise", "Elementwise", "Thresholding", "Thresholding"]
    every = np.arange(-60, 61, dtype=np.float64).reshape(1, 1, 11, 11)
    frames = [np.broadcast_to(every, (1, 3, 11, 11)), np.broadcast_to(every[..., ::-1, ::-1], (1, 3, 11, 11))]
    name = out.graph.input[0].name
    r = build_layers(layers, str(tmp_path / "silu"), [{name: np.moveaxis(f, 1, -1)} for f in frames], run_csim=True)
    assert r.csim.passed and r.csim.exact == r.csim.samples == len(frames), r.csim.summary()
    y = out.graph.output[0].name
    df = plan(layers, [y])
    for f in frames:
        want = np.moveaxis(execute_all(to_float64(m), {"acc": f})["y"], 1, -1)
        assert np.array_equal(np.asarray(df.reference({name: np.moveaxis(f, 1, -1)})[y]).reshape(want.shape), want)


def test_a_scale_before_the_mac_is_taken_off_so_the_thresholds_read_the_integer():
    """x -> Mul(1/4) -> MatMul(W) -> SiLU -> Quant: the accumulator's grid
    scale 1/4 is the input Mul's; it is set to 1 (and the Mul removed), and
    the thresholds compare the integer accumulator."""
    w = np.array([[3, -2, 1], [1, 4, -3], [-2, 2, 2], [4, -1, 1]], np.float32)
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["xs"]),
        helper.make_node("MatMul", ["xs", "w"], ["acc"]),
        helper.make_node("Mul", ["acc", "s"], ["a"]),
        helper.make_node("Sigmoid", ["a"], ["g"]),
        helper.make_node("Mul", ["a", "g"], ["m"]),
        quant_node("m", "s2", "zero", "bits", "y", signed=1),
    ]
    inits = {"k": np.float32(0.25), "w": w, "s": np.float32(0.4), "s2": np.float32(0.25), "zero": np.float32(0), "bits": np.float32(4)}
    m = make_model(nodes, {"x": [1, 4]}, {"y": [1, 3]}, inits)
    spec = {"inputs": {"x": {"int_min": -8, "int_max": 7}}}
    p = ConvertDagsToPiecewiseThresholds(spec)
    out = m.transform(p)
    ops = [n.op_type for n in out.graph.node]
    assert ops[0] == "MatMul" and ops.count("MultiThreshold") == 2, ops
    assert p.report.converted[0].input == "acc"
    assert sira.verify_equivalent(m, out, spec, samples=200, label="piecewise").ok

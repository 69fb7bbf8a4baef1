"""Scale/bias aggregation on lowered graphs: MACs end up on pure integers,
the model computes the same function, shared constants and residual joins
are handled, what cannot be aggregated is reported."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import sira
from tests.helpers import make_model, quant_node
from sira.transforms.aggregate import AggregateScaleBias, mac_float_islands

GRID = {"inputs": {"*": {"int_min": -20, "int_max": 20, "scale": 0.05}}}


def _unit_quant(inp, out, bits, prefix, inits, signed=1):
    inits[f"{prefix}_s"] = np.float32(1.0)
    inits[f"{prefix}_z"] = np.float32(0.0)
    inits[f"{prefix}_b"] = np.float32(bits)
    return quant_node(inp, f"{prefix}_s", f"{prefix}_z", f"{prefix}_b", out, signed=signed)


def _layer(x, name, k, n, rng, inits, nodes, act_scale=0.25):
    """Lowered layer: Mul(s_in) -> MatMul(int W) -> Mul(s_w) -> Add(b) ->
    Relu -> Div(s_out) -> Quant(unit)."""
    inits[f"{name}_w"] = rng.integers(-7, 8, size=(k, n)).astype(np.float32)
    inits[f"{name}_sw"] = rng.uniform(0.01, 0.1, size=(1, n)).astype(np.float32)
    inits[f"{name}_bias"] = rng.normal(0, 0.3, size=(1, n)).astype(np.float32)
    inits[f"{name}_sout"] = np.float32(act_scale)
    nodes += [
        helper.make_node("MatMul", [x, f"{name}_w"], [f"{name}_acc"]),
        helper.make_node("Mul", [f"{name}_acc", f"{name}_sw"], [f"{name}_scaled"]),
        helper.make_node("Add", [f"{name}_scaled", f"{name}_bias"], [f"{name}_pre"]),
        helper.make_node("Relu", [f"{name}_pre"], [f"{name}_relu"]),
        helper.make_node("Div", [f"{name}_relu", f"{name}_sout"], [f"{name}_div"]),
        _unit_quant(f"{name}_div", f"{name}_q", 4, f"{name}_aq", inits, signed=0),
        helper.make_node("Mul", [f"{name}_q", f"{name}_sout2"], [f"{name}_out"]),
    ]
    inits[f"{name}_sout2"] = np.float32(act_scale)
    return f"{name}_out"


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    inits: dict = {}
    nodes = [_unit_quant("xs", "xq", 8, "inq", inits), helper.make_node("Mul", ["xq", "in_s"], ["x0"])]
    # the input is on the 0.05 grid; Div(0.05) makes the quantizer see integers
    nodes.insert(0, helper.make_node("Div", ["x", "in_div"], ["xs"]))
    inits["in_div"] = np.float32(0.05)
    inits["in_s"] = np.float32(0.05)
    h = _layer("x0", "l1", 6, 5, rng, inits, nodes)
    h = _layer(h, "l2", 5, 4, rng, inits, nodes)
    inits["w3"] = rng.integers(-7, 8, size=(4, 3)).astype(np.float32)
    inits["s3"] = np.float32(0.03)
    nodes += [helper.make_node("MatMul", [h, "w3"], ["acc3"]), helper.make_node("Mul", ["acc3", "s3"], ["y"])]
    return make_model(nodes, {"x": [1, 6]}, {"y": [1, 3]}, inits)


def test_mlp_macs_become_integer_and_function_is_kept():
    m = sira.load(_mlp())
    p = AggregateScaleBias(GRID)
    out = m.transform(p)
    # only the input's own prelude (graph input / 0.05) is left, for the
    # input-quantizer conversion
    assert [k["tensor"] for k in p.report.skipped] == ["Div_0_out0"]
    assert len(p.report.aggregated) >= 3
    assert not mac_float_islands(out, GRID)
    sira.verify_equivalent(m, out, GRID, samples=200, label="AggregateScaleBias")


def _forked_layer(second_path_linear: bool):
    """A layer whose scaled accumulator forks: one branch goes through a Relu,
    the other either through a Relu too (two targets sharing the scale
    constants) or into a plain Add read by the output (a fork that escapes)."""
    inits = {"sq": np.float32(0.5), "w": np.eye(3, dtype=np.float32) * 3, "sw": np.float32(0.1), "c": np.float32(0.25)}
    nodes = [
        _unit_quant("x", "q", 4, "iq", inits),
        helper.make_node("Mul", ["q", "sq"], ["xs"]),
        helper.make_node("MatMul", ["xs", "w"], ["acc"]),
        helper.make_node("Mul", ["acc", "sw"], ["scaled"]),
        helper.make_node("Relu", ["scaled"], ["y1"]),
        helper.make_node("Add", ["scaled", "c"], ["shifted"]),
    ]
    outputs = {"y1": [1, 3]}
    if second_path_linear:
        outputs["shifted"] = [1, 3]
    else:
        nodes.append(helper.make_node("Relu", ["shifted"], ["y2"]))
        outputs["y2"] = [1, 3]
    return sira.load(make_model(nodes, {"x": [1, 3]}, outputs, inits))


@pytest.mark.parametrize("second_path_linear", [False, True])
def test_shared_or_escaping_sources_are_never_reset(second_path_linear):
    """Both targets read the scale constants sq and sw: resetting them for one
    would change the other (or the graph output read on the way), so the
    pass leaves them and says why - and the model still computes the same."""
    m = _forked_layer(second_path_linear)
    p = AggregateScaleBias((-4.0, 4.0))
    out = m.transform(p)
    assert p.report.skipped, "the conflicting target must be reported"
    assert any("also" in k["reason"] for k in p.report.skipped)
    sira.verify_equivalent(m, out, (-4.0, 4.0), samples=100, label="AggregateScaleBias")


def test_residual_join_with_scales_s_and_half_s():
    """q1*s + q2*(s/2): the branches are aligned by the factor 2 and the
    join stays exact."""
    inits: dict = {}
    nodes = [
        helper.make_node("Div", ["x", "d"], ["xs"]),
        _unit_quant("xs", "q", 6, "iq", inits),
        helper.make_node("Mul", ["q", "sa"], ["a"]),
        helper.make_node("Mul", ["q2", "sb"], ["b"]),
        _unit_quant("xs2", "q2", 6, "iq2", inits),
        helper.make_node("Div", ["x", "d2"], ["xs2"]),
        helper.make_node("Add", ["a", "b"], ["j"]),
        helper.make_node("Relu", ["j"], ["y"]),
    ]
    inits.update({"d": np.float32(0.25), "d2": np.float32(0.125), "sa": np.float32(0.25), "sb": np.float32(0.125)})
    m = sira.load(make_model(nodes, {"x": [1, 4]}, {"y": [1, 4]}, inits))
    spec = {"inputs": {"*": {"int_min": -32, "int_max": 31, "scale": 0.125}}}
    p = AggregateScaleBias(spec)
    out = m.transform(p)
    assert p.report.aligned_joins, "the join should have been aligned"
    sira.verify_equivalent(m, out, spec, samples=200, label="AggregateScaleBias")
    r = sira.analyze(out, spec)
    join = [n for n in r.model.graph.node if n.op_type == "Add" and all(not r[i].is_const for i in n.input)][0]
    j = r[join.output[0]]
    assert j.is_scaled_int and np.all(j.scale == 1) and np.all(j.bias == 0)


def test_unlowered_batchnorm_keeps_the_scale_in_front_of_it():
    """A BatchNormalization that lowering leaves (it feeds a quantizer chain)
    ends aggregation like an activation: the MatMul computes on integers
    and the scale is applied in front of the BN."""
    inits = {"g": np.ones(3, np.float32), "be": np.zeros(3, np.float32), "mu": np.zeros(3, np.float32), "v": np.ones(3, np.float32)}
    inits.update({"w": np.eye(3, dtype=np.float32), "sq": np.float32(0.5)})
    nodes = [
        _unit_quant("x", "q", 4, "iq", inits),
        helper.make_node("Mul", ["q", "sq"], ["xs"]),
        helper.make_node("MatMul", ["xs", "w"], ["acc"]),
        helper.make_node("BatchNormalization", ["acc", "g", "be", "mu", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["y"]),
    ]
    m = sira.load(make_model(nodes, {"x": [1, 3]}, {"y": [1, 3]}, inits))
    p = AggregateScaleBias((-4.0, 4.0))
    out = m.transform(p)
    assert not p.report.skipped, p.report.skipped
    assert not mac_float_islands(out, (-4.0, 4.0))
    sira.verify_equivalent(m, out, (-4.0, 4.0), samples=50, label="AggregateScaleBias")


def test_concat_of_branches_with_different_scales_feeds_an_integer_matmul():
    """Concat of branches quantized with scales 0.25 and 0.5 keeps one grid
    (0.25; the second branch counts double), so the MatMul after it stays on
    integers once the branches are aligned."""
    inits: dict = {"d1": np.float32(0.25), "d2": np.float32(0.5), "s1": np.float32(0.25), "s2": np.float32(0.5)}
    inits["w"] = np.random.default_rng(3).integers(-3, 4, size=(8, 3)).astype(np.float32)
    inits["sw"] = np.float32(0.1)
    nodes = [
        helper.make_node("Div", ["x", "d1"], ["x1"]),
        _unit_quant("x1", "q1", 5, "a", inits),
        helper.make_node("Mul", ["q1", "s1"], ["b1"]),
        helper.make_node("Div", ["x", "d2"], ["x2"]),
        _unit_quant("x2", "q2", 5, "b", inits),
        helper.make_node("Mul", ["q2", "s2"], ["b2"]),
        helper.make_node("Concat", ["b1", "b2"], ["c"], axis=1),
        helper.make_node("MatMul", ["c", "w"], ["acc"]),
        helper.make_node("Mul", ["acc", "sw"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["y"]),
    ]
    spec = {"inputs": {"*": {"int_min": -16, "int_max": 15, "scale": 0.25}}}
    m = sira.load(make_model(nodes, {"x": [1, 4]}, {"y": [1, 3]}, inits))
    r = sira.analyze(m, spec)
    cat = [n for n in r.model.graph.node if n.op_type == "Concat"][0]
    assert r[cat.output[0]].scale.size == 1, "concat keeps one common scale"
    p = AggregateScaleBias(spec)
    out = m.transform(p)
    assert p.report.aligned_joins
    assert not mac_float_islands(out, spec)
    sira.verify_equivalent(m, out, spec, samples=200, label="AggregateScaleBias")


def test_restoring_affine_keeps_the_exact_product_of_the_scale_sources():
    """Two float32 scales multiply to a float64 that float32 cannot hold: the
    restoring affine multiplies by each of them instead of by their rounded
    product, and a float64 bias becomes float32 terms summing to it exactly."""
    from fractions import Fraction

    from sira.transforms.aggregate import _exact_steps

    s1, s2 = np.float32(0.017273811), np.float32(0.0021819)
    product = np.float64(s1) * np.float64(s2)
    assert np.float64(np.float32(product)) != product
    bias = np.array([0.1 + 2.0**-40, -3.0])
    steps = _exact_steps(np.array([product]), bias, [("Mul", s1), ("Mul", s2)])
    muls = [c for op, c in steps if op == "Mul"]
    assert [float(c) for c in muls] == [float(s1), float(s2)]
    adds = [c for op, c in steps if op == "Add"]
    assert len(adds) >= 2 and all(c.dtype == np.float32 for c in adds)
    for k in range(2):
        assert sum(Fraction(float(c[k])) for c in adds) == Fraction(float(bias[k]))
    # a float32-exact scale stays one Mul
    single = _exact_steps(np.array([0.25]), np.array([0.5]), [("Mul", s1)])
    assert [op for op, _ in single] == ["Mul", "Add"]


def test_integer_offset_of_a_quantizer_stays_in_front_of_its_mac():
    """A signed quantizer written as a count and an integer offset (FINN's
    tidied form: unsigned Quant, Add(-7), Mul(scale)) keeps its offset: the
    MAC reads the centred integers -7..8, whose dot products need fewer
    accumulator bits than those of the counts 0..15; the scale still goes."""
    rng = np.random.default_rng(3)
    inits = {"off": np.float32(-7.0), "s": np.float32(0.125), "w": rng.integers(-3, 4, size=(6, 4)).astype(np.float32),
             "sw": np.float32(0.5)}
    nodes = [
        _unit_quant("x", "count", 4, "iq", inits, signed=0),
        helper.make_node("Add", ["count", "off"], ["centred"]),
        helper.make_node("Mul", ["centred", "s"], ["xs"]),
        helper.make_node("MatMul", ["xs", "w"], ["acc"]),
        helper.make_node("Mul", ["acc", "sw"], ["scaled"]),
        helper.make_node("Relu", ["scaled"], ["y"]),
    ]
    spec = {"inputs": {"*": {"int_min": 0, "int_max": 15, "scale": 1}}}
    m = sira.load(make_model(nodes, {"x": [1, 6]}, {"y": [1, 4]}, inits))
    out = m.transform(AggregateScaleBias(spec))
    assert [n.op_type for n in out.graph.node][:3] == ["Quant", "Add", "MatMul"]
    assert float(out.get_initializer(out.graph.node[1].input[1])) == -7.0
    r = sira.analyze(out, spec)[out.graph.node[1].output[0]]
    assert (float(np.min(r.lo)), float(np.max(r.hi))) == (-7.0, 8.0)
    assert not mac_float_islands(out, spec)
    sira.verify_equivalent(m, out, spec, samples=200, label="AggregateScaleBias")

"""Concat of branches quantized at unrelated float32 scales: optimize aligns
them on their exact common grid (integer factors of about 2**24), the MAC
after the join becomes an integer MVAU whose wide thresholds are stored in
float64, and a Concat whose scales share no such grid is refused with one
line naming the node, the scales and the fix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper, numpy_helper
from qonnx.core.datatype import DataType

import sira
from sira import hw
from sira.cli import main
from sira.errors import SiraError
from sira.transforms.to_hw import lower_to_hw

from helpers import make_model, quant_node

SPEC = {"inputs": {"*": {"int_min": -16, "int_max": 15, "scale": 0.25}}}


def _joined_model(s1: float, s2: float):
    """Two 4-bit branches of x at scales s1, s2, concatenated, a MatMul with
    integer weights, BN-like scale and bias, Relu and an unsigned 4-bit
    quantizer."""
    rng = np.random.default_rng(7)
    inits = {"d1": np.float32(0.5), "d2": np.float32(0.75), "s1": np.float32(s1), "s2": np.float32(s2)}
    for p in ("a", "b", "o"):
        inits[f"{p}_s"], inits[f"{p}_z"], inits[f"{p}_b"] = np.float32(1.0), np.float32(0.0), np.float32(4.0)
    inits["w"] = rng.integers(-7, 8, size=(8, 3)).astype(np.float32)
    inits["sw"] = rng.uniform(0.02, 0.1, size=(1, 3)).astype(np.float32)
    inits["bias"] = rng.normal(0, 0.3, size=(1, 3)).astype(np.float32)
    inits["so"] = np.float32(0.4)
    nodes = [
        helper.make_node("Div", ["x", "d1"], ["x1"]),
        quant_node("x1", "a_s", "a_z", "a_b", "q1"),
        helper.make_node("Mul", ["q1", "s1"], ["b1"]),
        helper.make_node("Div", ["x", "d2"], ["x2"]),
        quant_node("x2", "b_s", "b_z", "b_b", "q2"),
        helper.make_node("Mul", ["q2", "s2"], ["b2"]),
        helper.make_node("Concat", ["b1", "b2"], ["c"], axis=1),
        helper.make_node("MatMul", ["c", "w"], ["acc"]),
        helper.make_node("Mul", ["acc", "sw"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["act"]),
        helper.make_node("Div", ["act", "so"], ["unit"]),
        quant_node("unit", "o_s", "o_z", "o_b", "qo", signed=0),
        helper.make_node("Mul", ["qo", "so"], ["y"]),
    ]
    return sira.load(make_model(nodes, {"x": [1, 4]}, {"y": [1, 3]}, inits))


def _lower(optimized):
    """Hardware layers of an optimized model: its inputs' integer
    annotations when optimize gave them, else the original spec."""
    integer = all((optimized.get_tensor_datatype(i.name) or DataType["FLOAT32"]).is_integer() for i in optimized.graph.input)
    return lower_to_hw(optimized, None if integer else SPEC)


def test_concat_at_unrelated_float32_scales_becomes_an_integer_mvau():
    model = _joined_model(0.34171757, 0.35694754)
    optimized, _report = sira.optimize(model, SPEC, samples=50)  # checked against the reference semantics
    ra = sira.analyze(optimized, SPEC)
    cat = next(n for n in optimized.graph.node if n.op_type == "Concat")
    assert ra[cat.output[0]].integer_values() is not None, "the joined stream is an integer"
    mt = next(n for n in optimized.graph.node if n.op_type == "MultiThreshold" and optimized.find_producer(n.input[0]).op_type == "MatMul")
    stored = next(i for i in optimized.graph.initializer if i.name == mt.input[1])
    assert numpy_helper.to_array(stored).dtype == np.float64, "thresholds past 2**24 are stored exactly, in float64"
    layers = _lower(optimized)
    mvau = next(layer for layer in layers if isinstance(layer, hw.MVAU))
    assert mvau.has_thresholds and max(abs(v) for v in mvau.acc_range) >= 2**24
    muls = [np.asarray(layer.param) for layer in layers if isinstance(layer, hw.Elementwise) and layer.op == "Mul"]
    factors = sorted(int(p.reshape(-1)[0]) for p in muls if p.dtype.kind == "i" and p.size == 1 and p.reshape(-1)[0] > 2**20)
    assert factors == [11466139, 11977172], "both branches carry their exact integer factor on the grid 2**-25"


def test_concat_without_a_common_integer_grid_is_refused_naming_node_scales_and_fix(capsys, tmp_path):
    model = _joined_model(0.5, 2.0**-40)
    optimized, _report = sira.optimize(model, SPEC, samples=20)
    with pytest.raises(SiraError, match=r"node 'Concat_0' \(Concat\): .*scales 0\.5, 9\.09494702e-13.*one per-tensor scale"):
        _lower(optimized)
    path, spec = tmp_path / "opt.onnx", tmp_path / "spec.json"
    model.save(str(path))
    spec.write_text(json.dumps(SPEC))
    assert main(["estimate", str(path), "--input-spec", str(spec)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "'Concat_0' (Concat)" in err[0] and "Traceback" not in err[0], err


def test_concat_of_integer_valued_branches_needs_no_common_grid():
    """Branches whose values are integers already (integer scales too far
    apart for one grid, 2**33 and 3) are concatenated as they are."""
    inits = {"big": np.float32(2.0**33), "three": np.float32(3.0)}
    nodes = [
        helper.make_node("Mul", ["a", "big"], ["a2"]),
        helper.make_node("Mul", ["b", "three"], ["b3"]),
        helper.make_node("Concat", ["a2", "b3"], ["y"], axis=1),
    ]
    model = sira.load(make_model(nodes, {"a": [1, 2], "b": [1, 3]}, {"y": [1, 5]}, inits))
    spec = {"inputs": {"*": {"int_min": -4, "int_max": 3}}}
    ra = sira.analyze(model, spec)
    assert ra[model.graph.output[0].name].scale.size > 1, "no common grid within the factor bound"
    (cat,) = [layer for layer in lower_to_hw(model, spec) if isinstance(layer, hw.Concat)]
    assert cat.out_type.is_integer and cat.channels == (2, 3)

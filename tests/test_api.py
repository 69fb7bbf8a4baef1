"""The Python API: load/analyze/verify in the qonnx idiom, the value type's
invariants, provenance, and the report JSON agreeing with the ranges."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from onnx import helper
from qonnx.core.datatype import DataType

import sira
from sira.report import report_json
from tests.helpers import make_model, quant_node

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")


def test_qonnx_analysis_idiom_keeps_user_names():
    """model.analysis(sira.analyze) on an in-memory ModelWrapper: keys are the
    model's own tensor names."""
    m = make_model(
        [quant_node("x", "s", "z", "b", "q", signed=0), helper.make_node("Relu", ["q"], ["y"])],
        {"x": [1, 3]},
        {"y": [1, 3]},
        {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4)},
    )
    m.set_tensor_datatype("x", DataType["INT4"])
    report = m.analysis(sira.analyze)
    assert {"x", "q", "y"} <= set(report)
    # x in [-8, 7] / 0.5 -> unsigned 4-bit levels 0..14 (7/0.5 = 14 < 15)
    assert report["q"].int_bounds() == (0, 14) and report["y"].int_bounds() == (0, 14)


def test_an_analysis_is_reused_only_for_the_same_model_and_spec():
    """A second analysis of an equal model with an equal spec reuses the
    first (its ranges, the caller's own model and mappings); a change of the
    model, even in place, or of the spec is analyzed anew, reusing the
    results of the nodes and initializers it did not change."""
    from sira.analysis import analyze_prepared

    model = sira.load(EXAMPLE)
    first = sira.analyze(model, (-1.0, 1.0))
    again = sira.analyze(sira.load(EXAMPLE), (-1.0, 1.0))
    assert again.model is not first.model and again.ranges is not first.ranges
    assert all(again[t] is first[t] for t in first)
    again.ranges.clear()
    assert len(sira.analyze(model, (-1.0, 1.0))) == len(first)
    assert sira.analyze(model, (-0.5, 0.5))[model.graph.output[0].name] is not first[model.graph.output[0].name]
    init = model.graph.initializer[-1]
    values = np.array(model.get_initializer(init.name))
    model.set_initializer(init.name, (values * 2).astype(values.dtype))
    changed = sira.analyze(model, (-1.0, 1.0))
    fresh = analyze_prepared(model, (-1.0, 1.0))
    out = model.graph.output[0].name
    assert changed[out] is not first[out]
    assert np.array_equal(changed[out].lo, fresh[out].lo) and np.array_equal(changed[out].hi, fresh[out].hi)
    assert not np.array_equal(changed[out].hi, first[out].hi)
    # the nodes the change does not reach keep their results (the same range objects)
    from sira.model import topological_order

    untouched = next(n for n in topological_order(model) if init.name not in n.input)
    assert changed[untouched.output[0]] is first[untouched.output[0]]
    # an initializer's range is built once per content: the other weights are reused
    assert changed[init.name] is not first[init.name] and np.array_equal(changed[init.name].value, values * 2)
    assert all(changed[i.name] is first[i.name] for i in model.graph.initializer if i.name != init.name)


def test_example_end_to_end_and_provenance():
    report = sira.analyze(sira.load(EXAMPLE), SPEC)
    assert not report.fallbacks
    acc = report["MatMul_0_out0"]
    assert acc.is_scaled_int and acc.exact
    # the accumulator's scale is the input scale times the per-channel weight scales
    assert acc.scale.shape == (1, 32)
    assert len(acc.scale_sources) == 2
    # provenance names real initializers of the prepared model
    inits = {i.name for i in report.model.graph.initializer}
    assert acc.scale_sources <= inits


def test_json_numbers_equal_the_ranges():
    report = sira.analyze(EXAMPLE, SPEC)
    doc = json.loads(json.dumps(report_json(report)))
    for name, t in doc["tensors"].items():
        r = report[name]
        assert t["shape"] == list(r.shape)
        lo = np.min(r.lo)
        assert np.min(t["min"]) == pytest.approx(lo) if np.isfinite(lo) else t["min"] is None
        if t["scaled_int"]:
            assert np.min(t["int_min"]) == r.int_bounds()[0] and np.max(t["int_max"]) == r.int_bounds()[1]


def test_verify_api_reports_violations_for_a_wrong_range():
    """The checker is not vacuous: a deliberately narrowed range is caught."""
    report = sira.analyze(EXAMPLE, SPEC)
    name = "MatMul_0_out0"
    r = report.ranges[name]
    report.ranges[name] = sira.ScaledIntRange.real(r.shape, r.lo, (r.lo + r.hi) / 2)
    result = sira.verify(report.model, samples=5, report=report)
    assert not result.ok and any(v.tensor == name for v in result.violations)


def test_scaled_int_invariant_holds_for_every_tensor():
    report = sira.analyze(EXAMPLE, SPEC)
    for name, r in report.items():
        if r.is_scaled_int and not r.is_const:
            assert np.all(np.asarray(r.int_lo) <= np.asarray(r.int_hi)), name
            lo, hi = sira.numerics.affine_bounds(r.scale, r.int_lo, r.int_hi, r.bias)
            # the real interval never claims more than the grid allows
            assert np.all(r.lo >= lo - 1e-9 * np.abs(lo) - 1e-300) and np.all(r.hi <= hi + 1e-9 * np.abs(hi) + 1e-300), name


def test_rules_document_their_exactness():
    for op, rule in sira.RULES.items():
        assert rule.doc, f"{op} rule has no docstring"
        assert rule.exactness in ("exact", "sound")


def test_float64_and_float32_verification_on_the_example():
    assert sira.verify(EXAMPLE, SPEC, samples=10, precision="float64").ok
    assert sira.verify(EXAMPLE, SPEC, samples=10, precision="float32").ok


def test_op_without_rule_falls_back_and_is_named():
    """Hardmax has no rule: its output gets the widest sound range, the
    report names it, and the next quantizer bounds the cone again."""
    m = make_model(
        [
            quant_node("x", "s", "z", "b", "q"),
            helper.make_node("Hardmax", ["q"], ["h"], name="the_hardmax"),
            quant_node("h", "s", "z", "b", "y", signed=0),
        ],
        {"x": [1, 4]},
        {"y": [1, 4]},
        {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(3)},
    )
    report = sira.analyze(m, (-1.0, 1.0))
    h, y = report["h"], report["y"]
    assert h.fallback and not h.exact and np.all(np.isinf(h.lo)) and np.all(np.isinf(h.hi))
    assert y.int_bounds() == (0, 7) and not y.fallback
    assert [w.node for w in report.fallbacks] == ["the_hardmax"]
    assert "Hardmax" in report.fallbacks[0].message
    doc = report_json(report)
    assert doc["tensors"]["h"]["fallback"] is True and doc["tensors"]["y"]["fallback"] is False

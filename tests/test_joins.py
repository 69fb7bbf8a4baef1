"""Residual joins of branches at unrelated scales (sira.transforms.joins): the
integer weights and thresholds reproduce the exact level of every input
pair, the rewrite passes optimize's check against the reference semantics,
and joins that cannot be proven are left with the reason."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import sira
from tests.helpers import make_model, quant_node
from sira.transforms.joins import IntegerJoins, _separating_thresholds


def _residual(s1: float, s2: float, out_scale: float, bits: int = 4) -> sira.ModelWrapper:
    """x -> two quantizers at scales s1, s2 (the branches) -> Add -> Relu ->
    Quant(out_scale)."""
    inits = {
        "s1": np.float32(s1), "s2": np.float32(s2), "so": np.float32(out_scale),
        "z": np.float32(0), "b": np.float32(bits), "w": np.float32(-0.75),
    }  # fmt: skip
    nodes = [
        quant_node("x", "s1", "z", "b", "q1"),
        helper.make_node("Mul", ["x", "w"], ["xw"]),
        quant_node("xw", "s2", "z", "b", "q2"),
        helper.make_node("Add", ["q1", "q2"], ["sum"]),
        helper.make_node("Relu", ["sum"], ["r"]),
        quant_node("r", "so", "z", "b", "y", signed=0),
    ]
    return make_model(nodes, {"x": (1, 3, 2, 2)}, {"y": None}, inits)


def test_separating_thresholds():
    levels = np.array([0, 0, 1, 1, 2])
    assert _separating_thresholds(np.array([1, 2, 5, 6, 9]), levels, 2).tolist() == [5, 9]
    assert _separating_thresholds(np.array([1, 5, 4, 6, 9]), levels, 2) is None  # a level-0 value above a level-1 one


@pytest.mark.parametrize("scales", [(0.3721, 0.2113, 0.4411), (0.125, 0.1090909, 0.21), (0.05, 0.61, 0.3)])
def test_residual_join_becomes_small_integer_weights(scales):
    model = _residual(*scales)
    optimized, report = sira.optimize(model, (-3.0, 3.0), samples=300)
    joins = next(p for p in report.passes if p["pass"] == "joins")
    assert len(joins["converted"]) == 1, joins
    k1, k2 = joins["converted"][0]["weights"]
    assert max(abs(k1), abs(k2)) < 2**12
    kinds = [n.op_type for n in optimized.graph.node]
    assert "Relu" not in kinds and kinds.count("MultiThreshold") >= 1


def test_join_with_too_many_pairs_is_left_with_the_reason(monkeypatch):
    import sira.transforms.joins as joins

    monkeypatch.setattr(joins, "MAX_PAIRS", 10)
    model = _residual(0.3721, 0.2113, 0.4411)
    p = IntegerJoins((-3.0, 3.0))
    ra = sira.analyze(model, (-3.0, 3.0))
    from sira.model import transform
    from sira.transforms.lower import Lower
    from sira.transforms.aggregate import AggregateScaleBias
    from sira.transforms.thresholds import ConvertChainsToThresholds

    m = transform(transform(transform(ra.model, Lower()), AggregateScaleBias((-3.0, 3.0))), ConvertChainsToThresholds((-3.0, 3.0)))
    transform(m, p)
    assert not p.report.converted and "checked exhaustively" in p.report.skipped[0]["reason"]

"""The QONNX model zoo: every tensor gets a range, no op falls back, and the
ranges are sound against execution (random and corner inputs)."""

from __future__ import annotations

import numpy as np
import pytest

import sira

#: ops that legitimately have no rule in a zoo model (none expected)
EXPECTED_FALLBACKS: dict[str, set] = {}


def test_every_tensor_has_a_range(zoo_model):
    name, path, spec = zoo_model
    report = sira.analyze(path, spec)
    graph = report.model.graph
    tensors = {t for n in graph.node for t in list(n.input) + list(n.output) if t}
    assert tensors <= set(report), f"{name}: tensors without range: {sorted(tensors - set(report))}"
    fallbacks = {w.op_type for w in report.fallbacks}
    assert fallbacks <= EXPECTED_FALLBACKS.get(name, set()), f"{name}: ops without a rule: {fallbacks}"
    for t, r in report.items():
        assert np.all(r.lo <= r.hi), t
        if not r.is_const:
            assert np.all(np.isfinite(r.lo)) and np.all(np.isfinite(r.hi)), f"{name}: {t} unbounded"


def test_quantizer_outputs_are_scaled_int(zoo_model):
    """Every quantizer output and every MAC output fed by quantized operands
    has an integer form (the reference lost it after Relu, BipolarQuant, ...)."""
    name, path, spec = zoo_model
    report = sira.analyze(path, spec)
    for node in report.model.graph.node:
        quantized_operands = all(report[i].is_scaled_int for i in node.input[:2] if i)
        if node.op_type in ("Quant", "BipolarQuant") or (node.op_type in ("MatMul", "Gemm") and quantized_operands):
            r = report[node.output[0]]
            assert r.is_scaled_int, f"{name}: {node.name} ({node.op_type}) output has no integer form: {r.notes}"


def test_sound_quick(zoo_model):
    name, path, spec = zoo_model
    result = sira.verify(path, spec, samples=20, seed=1)
    assert result.ok, f"{name}: " + "; ".join(map(str, result.violations[:5]))


@pytest.mark.slow
def test_sound_200_samples(zoo_model):
    name, path, spec = zoo_model
    result = sira.verify(path, spec, samples=200, seed=0)
    assert result.samples >= 200
    assert result.ok, f"{name}: " + "; ".join(map(str, result.violations[:5]))

"""The whole SIRA pipeline (``sira optimize``): every zoo model and the
bundled example optimize, stay bit-exact with the original, end with integer
MAC layers and exact thresholds, and the written model loads and runs in
qonnx."""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest

import sira
from sira.cli import main
from sira.transforms.pipeline import optimize

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
EXAMPLE_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")

#: MAC layers that legitimately stay on floats: the jet tagger's first layer
#: reads the model's float input directly (no input quantizer)
EXPECTED_ISLANDS = {"qkeras_jettagging": {"MatMul_0"}}


def _check(name, model, report):
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["MultiThreshold"] >= 1, f"{name}: no chain became thresholds"
    assert not ops["BatchNormalization"] and not ops["Gemm"]
    islands = {i["node"] for i in report.float_islands}
    assert islands == EXPECTED_ISLANDS.get(name, set()), f"{name}: float islands {report.float_islands}"
    assert report.layers, f"{name}: no MAC layer reported"
    for layer in report.layers:
        # an XNOR layer (bipolar inputs and weights) is a popcount to FINN and to sira alike
        assert layer["sira_width"] <= layer["finn_width"] <= layer["a2q_width"], layer


def test_example_optimizes_bit_exact():
    model, report = optimize(EXAMPLE, EXAMPLE_SPEC, samples=100)
    _check("sira_mlp", model, report)
    assert report.samples >= 100


@pytest.mark.slow
def test_zoo_optimizes_bit_exact_on_500_inputs(zoo_model):
    name, path, spec = zoo_model
    model, report = optimize(path, spec, samples=500)
    assert report.samples >= 500
    _check(name, model, report)


def test_cli_optimize_writes_a_model_qonnx_runs(capsys, tmp_path):
    out = tmp_path / "opt.onnx"
    rep = tmp_path / "rep.json"
    code = main(["optimize", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "-o", str(out), "--report", str(rep), "--samples", "50"])
    text = capsys.readouterr().out
    assert code == 0
    assert "A2Q" in text and "FINN" in text and "sira" in text and "no float islands" in text
    doc = json.loads(rep.read_text())
    assert {"layers", "float_islands", "passes", "samples"} <= set(doc)
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    m = ModelWrapper(str(out))
    inp = m.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.float32)
    with sira.model.quiet():
        y = execute_onnx(m, {inp.name: x})
    assert np.all(np.isfinite(y[m.graph.output[0].name]))
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".sira-")]


def test_cli_optimize_bad_input_writes_nothing(capsys, tmp_path):
    out = tmp_path / "opt.onnx"
    code = main(["optimize", str(tmp_path / "missing.onnx"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sira: error:") and not out.exists()


@pytest.mark.slow
def test_depthwise_separable_conv_net_optimizes_to_integer_convs():
    """Depthwise and pointwise convs with padding and strides, BatchNorm,
    global average pool and a classifier: every MAC ends up on integers."""
    import sys

    sys.path.insert(0, os.path.join(HERE, "..", "bench"))
    from models import CONV_INPUT_RANGE, mobilenet_like

    model, report = optimize(mobilenet_like(), CONV_INPUT_RANGE, samples=100)
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == ops["MultiThreshold"] and ops["Conv"] >= 10
    assert not report.float_islands, report.float_islands


def _wrong_after(pass_class, change):
    """``pass_class`` followed by ``change(model)`` on its result."""

    class Wrong(pass_class):
        def apply(self, model):
            model, changed = super().apply(model)
            if not changed:
                change(model)
            return model, changed

    return Wrong


def _first_weight_plus_one(model):
    init = next(i for i in model.graph.initializer if len(i.dims) == 2)
    w = model.get_initializer(init.name).copy()
    w.flat[0] += 1.0
    model.set_initializer(init.name, w)


def test_a_wrong_pass_is_named_with_the_first_differing_tensor(monkeypatch):
    """Only the final model is executed while optimizing; when it differs,
    the passes' models are checked in order and the error names the first
    pass whose model differs, not the last one."""
    import sira.transforms.pipeline as pipeline

    monkeypatch.setattr(pipeline, "AggregateScaleBias", _wrong_after(pipeline.AggregateScaleBias, _first_weight_plus_one))
    with pytest.raises(sira.SiraError, match=r"^aggregate: output .* differs on input .*first differing intermediate tensor: '"):
        optimize(EXAMPLE, EXAMPLE_SPEC, samples=20)


def test_a_pass_that_breaks_the_graph_is_named_before_anything_runs(monkeypatch):
    import sira.transforms.pipeline as pipeline

    def drop_first_node(model):
        model.graph.node.remove(model.graph.node[0])

    monkeypatch.setattr(pipeline, "Lower", _wrong_after(pipeline.Lower, drop_first_node))
    with pytest.raises(sira.SiraError, match=r"^lower: node '.*' \(.*\) reads \[.*\], which nothing produces"):
        optimize(EXAMPLE, EXAMPLE_SPEC, samples=20)

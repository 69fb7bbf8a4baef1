"""The bundled examples: each build script reproduces its committed model
byte for byte, and the convolutional example goes through analysis,
verification, optimization and lowering to hardware layers with every
stream an integer up to the float output tail."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import sira
from sira.cli import main
from sira.estimate import prepare

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "examples"))
CONV = os.path.join(EXAMPLES, "sira_conv.onnx")
CONV_SPEC = os.path.join(EXAMPLES, "sira_conv.spec.json")

#: hardware layer kinds the convolutional example must lower to
CONV_KINDS = {"FMPadding", "ConvolutionInputGenerator", "MVAU", "VVAU", "StreamingMaxPool", "AddStreams", "Pool"}


@pytest.mark.parametrize("script, model", [("build_conv.py", "sira_conv.onnx"), ("build_mlp.py", "sira_mlp.onnx")])
def test_build_reproduces_committed_model(tmp_path, script, model):
    out = tmp_path / model
    subprocess.run([sys.executable, os.path.join(EXAMPLES, script), "-o", str(out)], check=True, capture_output=True)
    with open(os.path.join(EXAMPLES, model), "rb") as f:
        committed = f.read()
    assert out.read_bytes() == committed, f"{script} no longer reproduces examples/{model}; rebuild it with: python examples/{script}"


def test_conv_spec_is_the_pixel_grid():
    with open(CONV_SPEC) as f:
        assert json.load(f) == {"inputs": {"pixels": {"datatype": "UINT8", "scale": "1/255"}}}


def test_conv_every_tensor_has_a_range_no_fallback():
    report = sira.analyze(CONV, CONV_SPEC)
    graph = report.model.graph
    tensors = {t for n in graph.node for t in list(n.input) + list(n.output) if t}
    assert tensors <= set(report), f"tensors without range: {sorted(tensors - set(report))}"
    assert report.fallbacks == [], [str(w) for w in report.fallbacks]
    ops = {n.op_type for n in graph.node}
    assert {"Conv", "BatchNormalization", "Add", "MaxPool", "GlobalAveragePool", "MatMul"} <= ops
    for t, r in report.items():
        assert np.all(r.lo <= r.hi), t
        if not r.is_const:
            assert np.all(np.isfinite(r.lo)) and np.all(np.isfinite(r.hi)), f"{t} unbounded"
    # the residual join adds two quantized streams: its sum keeps an integer form
    add = next(n for n in graph.node if n.op_type == "Add" and all(not report[i].is_const for i in n.input))
    assert all(report[i].is_scaled_int for i in add.input) and report[add.output[0]].is_scaled_int


def test_conv_ranges_are_sound():
    result = sira.verify(CONV, CONV_SPEC, samples=20, seed=1)
    assert result.ok, "; ".join(map(str, result.violations[:5]))


@pytest.fixture(scope="module")
def conv_hw():
    """(optimized model, optimize report layers, hardware layers); optimize
    itself checks the optimized model bit-exact against the original."""
    optimized, report_layers, layers, _ = prepare(CONV, CONV_SPEC, samples=20)
    return optimized, report_layers, layers


def test_conv_optimizes(conv_hw):
    optimized, report_layers, _ = conv_hw
    assert [r["layer"] for r in report_layers] == ["Conv_0", "Conv_1", "Conv_2", "MatMul_0"]
    ops = [n.op_type for n in optimized.graph.node]
    assert "BatchNormalization" not in ops and "Quant" not in ops and "GlobalAveragePool" not in ops
    assert all(r["sira_width"] <= r["finn_width"] for r in report_layers)


def test_conv_lowers_to_integer_hardware_layers(conv_hw):
    optimized, _, layers = conv_hw
    kinds = [l.kind for l in layers]
    assert CONV_KINDS <= set(kinds), f"missing {CONV_KINDS - set(kinds)}"
    # integer streams everywhere up to the float output tail (dequantizing scale, bias)
    first_float = next(i for i, l in enumerate(layers) if not l.out_type.is_integer)
    for l in layers[:first_float]:
        assert l.in_type.is_integer and l.out_type.is_integer, f"{l.name} ({l.kind}): {l.in_type.name} -> {l.out_type.name}"
    tail = layers[first_float:]
    # the output scale (its exact factors where float32 cannot hold the product) and bias
    assert tail and all(l.kind == "Elementwise" and l.op in ("Mul", "Div", "Add") for l in tail), [(l.kind, l.op) for l in tail]
    assert [l.op for l in tail][-1] == "Add" or all(l.op != "Add" for l in tail)
    assert tail[0].in_type.is_integer and layers[first_float - 1].kind == "MVAU"
    assert tail[-1].outputs == tuple(o.name for o in optimized.graph.output)
    # the depthwise conv is a VVAU behind a depthwise window
    vvau = next(l for l in layers if l.kind == "VVAU")
    assert vvau.channels == 8 and vvau.kernel == (3, 3) and vvau.weights.shape == (8, 9)
    pool = next(l for l in layers if l.kind == "StreamingMaxPool")
    assert pool.in_shape == (1, 10, 10, 8) and pool.out_shape == (1, 5, 5, 8)


def test_conv_residual_join_is_an_integer_add(conv_hw):
    """The Add joins the block's MVAU output and the skip stream (the first
    conv's output, scaled by an integer to the branch's grid)."""
    _, _, layers = conv_hw
    producer = {o: l for l in layers for o in l.outputs}

    def upstream(stream):
        names = []
        while stream in producer:
            layer = producer[stream]
            names.append(layer.name)
            if layer.kind not in ("Elementwise",):
                break
            stream = layer.inputs[0]
        return names

    [join] = [l for l in layers if l.kind == "AddStreams"]
    assert join.in_type.is_integer and join.in_type2.is_integer and join.out_type.is_integer
    paths = {u[-1]: u for u in map(upstream, join.inputs)}
    assert set(paths) == {"Conv_0", "Conv_1"}
    skip = paths["Conv_0"]
    for name in skip[:-1]:
        layer = next(l for l in layers if l.name == name)
        assert layer.op == "Mul" and np.all(layer.param == np.round(layer.param))


def test_conv_estimate_cli(capsys, tmp_path):
    out = tmp_path / "estimate.json"
    code = main(["estimate", CONV, "--input-spec", CONV_SPEC, "--format", "json", "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    kinds = {v["op_type"] for v in doc["layers"].values()}
    assert "AddStreams" in kinds and "VVAU" in kinds

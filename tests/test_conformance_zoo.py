"""The Brevitas conformance zoo (examples/zoo/models, made by
examples/zoo/make_zoo.py): every model is analyzed soundly and optimizes to
a model equal to its reference semantics; float execution of the original
that rounds differently is reported, never fatal; the models the hardware
flow handles build and C-simulate bit-exact. Soundness and a few small
models run in the fast tier, the rest in the slow one."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

import sira

MODELS = pathlib.Path(__file__).resolve().parent.parent / "examples" / "zoo" / "models"
ALL = sorted(p.stem for p in MODELS.glob("*.onnx"))
#: run in the fast tier (an A2Q MLP and a QCDQ export); the rest in the slow one
SMALL = ["a2q_mlp_w4a4", "mlp_w8a8_perchannel_qcdq"]
def _spec(name: str) -> str:
    return str(MODELS / f"{name}.spec.json")


def _optimizes(name: str) -> None:
    model = sira.load(str(MODELS / f"{name}.onnx"))
    _optimized, report = sira.optimize(model, _spec(name), samples=50)
    assert report.samples >= 50
    for entry in report.agreement.values():
        assert entry["samples"] > 0 and entry["summary"]


def test_zoo_is_present():
    assert len(ALL) >= 19, ALL


@pytest.mark.parametrize("name", ALL)
def test_analysis_is_sound(name):
    result = sira.verify(str(MODELS / f"{name}.onnx"), _spec(name), samples=10)
    assert result.ok, result.violations[:3]


def test_stored_outputs_are_the_models():
    data = np.load(MODELS / "mlp_w8a8_perchannel.io.npz")
    model = sira.load(str(MODELS / "mlp_w8a8_perchannel.onnx"))
    from sira.execute import Executor

    run = Executor(model, np.float32)
    for x, y in zip(data["inputs"], data["outputs"]):
        out = run.run({model.graph.input[0].name: x[None] if x.ndim == 1 else x})[model.graph.output[0].name]
        assert np.array_equal(np.asarray(out).reshape(y.shape), y)


@pytest.mark.parametrize("name", SMALL)
def test_small_models_optimize_to_their_reference(name):
    _optimizes(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in SMALL])
def test_cnns_optimize_to_their_reference(name):
    _optimizes(name)


#: the conformance models the hardware flow handles (layouts, pooling,
#: binary layers, residual joins, Concats at unrelated scales, SiLU as
#: piecewise thresholds, the squeeze-excite gate): all of them
HARDWARE = [
    "a2q_mlp_w4a4", "avgpool_w4a4", "cnn_w8a8_perchannel", "cnn_w8a8_perchannel_qcdq", "cnv_w1a1", "cnv_w2a2", "inception_w4a4", "kws1d_w3a3", "lenet_w4a4",
    "mlp_fixedpoint", "mlp_w8a8_perchannel", "mlp_w8a8_perchannel_qcdq", "mobilenet_w4a4", "resnet8_w4a4", "resnet8_w8a8",
    "resnet8_w8a8_qcdq", "sigmoid_mlp_w4a4", "silu_se_w4a4", "tanh_mlp_w4a4",
]  # fmt: skip


@pytest.mark.parametrize("name", ["lenet_w4a4", pytest.param("cnv_w1a1", marks=pytest.mark.slow), pytest.param("kws1d_w3a3", marks=pytest.mark.slow), "avgpool_w4a4"])
def test_flatten_heads_bipolar_padding_1d_convs_and_pools_lower_to_hardware(name):
    """A Flatten of a 4x4 map into the classifier (weight rows permuted to the
    channels-last stream), zero padding of a bipolar stream, 1-D convolutions,
    a ReduceMean head and average pools with Quant or Trunc after them
    (TruncAvgPool2d) reach integer hardware layers."""
    from sira.estimate import estimate

    model = sira.load(str(MODELS / f"{name}.onnx"))
    optimized, _report = sira.optimize(model, _spec(name), samples=20)
    doc = estimate(optimized)
    assert doc["total"]["unknown_layers"]["LUT"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", HARDWARE)
def test_builds_bit_exact(name, tmp_path):
    """At fold 1, its stages running concurrently over FIFOs of the generated
    depths: bit-exact and free of deadlock (test_hls_dataflow checks the high folding)."""
    result = sira.build(str(MODELS / f"{name}.onnx"), str(tmp_path / "hls"), _spec(name), samples=100, run_csim=True, dataflow=True)
    assert result.csim.passed and result.csim.mode == "dataflow", result.csim.summary()


def test_every_conformance_model_reaches_hardware():
    assert sorted(HARDWARE) == ALL

"""FINN-style build steps (sira.steps): each step alone and the four as a
list on the bundled MLP, the reports they write, the model they return,
configs of any class with FINN's attribute names, and errors that name the
step."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest
from qonnx.core.modelwrapper import ModelWrapper

from sira.errors import SiraError
from sira.hls.simulate import unavailable
from sira.steps import (
    SIRA_STEPS,
    SiraBuildConfig,
    step_sira_analyze,
    step_sira_build,
    step_sira_estimate,
    step_sira_optimize,
)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "examples"))
MLP = os.path.join(EXAMPLES, "sira_mlp.onnx")
SPEC = os.path.join(EXAMPLES, "sira_mlp.spec.json")

#: few random inputs: the steps' wiring is under test, not the checks themselves
SAMPLES = 10




def _cfg(out, **kw) -> SiraBuildConfig:
    kw.setdefault("sira_input_spec", SPEC)
    kw.setdefault("sira_samples", SAMPLES)
    return SiraBuildConfig(output_dir=str(out), **kw)


def _report(out, name: str) -> dict:
    path = os.path.join(str(out), "report", name)
    assert os.path.isfile(path), f"{path} not written"
    with open(path) as f:
        return json.load(f)


def _digest(model: ModelWrapper) -> bytes:
    return model.model.SerializeToString()


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    """(output folder, model returned by step_sira_optimize) on the MLP."""
    out = tmp_path_factory.mktemp("optimize")
    return out, step_sira_optimize(ModelWrapper(MLP), _cfg(out))


def _mac_weights(model: ModelWrapper) -> list:
    return [model.get_initializer(n.input[1]) for n in model.graph.node if n.op_type in ("MatMul", "Conv")]


# --------------------------------------------------------------------------
# each step alone
# --------------------------------------------------------------------------


def test_steps_keep_their_names_and_signature():
    assert [s.__name__ for s in SIRA_STEPS] == ["step_sira_analyze", "step_sira_optimize", "step_sira_estimate", "step_sira_build"]
    import inspect

    for step in SIRA_STEPS:
        assert list(inspect.signature(step).parameters) == ["model", "cfg"]


def test_analyze_step_writes_the_report_and_returns_the_model_unchanged(tmp_path):
    model = ModelWrapper(MLP)
    before = _digest(model)
    returned = step_sira_analyze(model, _cfg(tmp_path))
    assert returned is model and _digest(returned) == before
    doc = _report(tmp_path, "sira_analysis.json")
    assert {"sira_version", "model", "inputs", "tensors", "warnings"} <= set(doc)
    assert doc["tensors"] and doc["warnings"] == []
    (entry,) = doc["inputs"].values()
    assert entry["int_min"] == 0 and entry["int_max"] == 255 and entry["datatype"] == "UINT8"


def test_optimize_step_returns_the_optimized_model(optimized):
    out, model = optimized
    doc = _report(out, "sira_optimize.json")
    assert {"layers", "float_islands", "passes", "samples"} <= set(doc)
    assert [p["pass"] for p in doc["passes"]] == ["lower", "aggregate", "input-thresholds", "thresholds", "piecewise-thresholds", "joins", "annotate"]
    assert [layer["layer"] for layer in doc["layers"]] == ["MatMul_0", "MatMul_1", "MatMul_2"]
    assert all(layer["sira_width"] <= layer["finn_width"] for layer in doc["layers"])
    # integer MACs: accumulator datatypes in the metadata, activations as thresholds, integer weights
    acc = json.loads(model.get_metadata_prop("sira_acc_dtype"))
    assert set(acc) == {"MatMul_0", "MatMul_1", "MatMul_2"} and all(v.startswith("INT") for v in acc.values())
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MultiThreshold") == 3 and "Quant" not in ops and "BatchNormalization" not in ops
    weights = _mac_weights(model)
    assert len(weights) == 3
    for w in weights:
        assert np.array_equal(w, np.round(w)) and np.abs(w).max() <= 8


def test_estimate_step_reports_sira_and_baseline(tmp_path):
    model = ModelWrapper(MLP)
    before = _digest(model)
    returned = step_sira_estimate(model, _cfg(tmp_path, synth_clk_period_ns=5.0, fpga_part="xc7z020clg400-1"))
    assert returned is model and _digest(returned) == before
    doc = _report(tmp_path, "estimate_layer_resources_sira.json")
    assert {"part", "clock_ns", "mode", "layers", "total", "baseline", "delta", "performance"} <= set(doc)
    assert doc["part"] == "xc7z020clg400-1" and doc["clock_ns"] == 5.0 and doc["mode"] == "refined"
    for key in ("LUT", "DSP", "BRAM_18K", "URAM"):
        assert isinstance(doc["total"][key], int) and isinstance(doc["baseline"]["total"][key], int)
    assert doc["total"]["LUT"] < doc["baseline"]["total"]["LUT"]
    mvaus = [d for d in doc["layers"].values() if d["op_type"] == "MVAU"]
    assert len(mvaus) == 3 and all(d["PE"] == 1 and d["SIMD"] == 1 for d in mvaus)


def test_estimate_step_folds_for_target_fps(tmp_path):
    step_sira_estimate(ModelWrapper(MLP), _cfg(tmp_path, target_fps=200_000))
    doc = _report(tmp_path, "estimate_layer_resources_sira.json")
    assert doc["performance"]["estimated_throughput_fps"] >= 200_000
    assert any(d["PE"] > 1 or d["SIMD"] > 1 for d in doc["layers"].values() if d["op_type"] == "MVAU")


def test_estimate_of_the_optimized_model_matches_the_original(optimized, tmp_path):
    # the optimized model takes raw integers: the step drops the pixel spec for it
    _, model = optimized
    step_sira_estimate(model, _cfg(tmp_path / "opt"))
    step_sira_estimate(ModelWrapper(MLP), _cfg(tmp_path / "orig"))
    a = _report(tmp_path / "opt", "estimate_layer_resources_sira.json")
    b = _report(tmp_path / "orig", "estimate_layer_resources_sira.json")
    assert a["total"] == b["total"] and a["baseline"]["total"] == b["baseline"]["total"]


def test_build_step_writes_the_project(tmp_path):
    model = ModelWrapper(MLP)
    before = _digest(model)
    returned = step_sira_build(model, _cfg(tmp_path, sira_samples=3))
    assert returned is model and _digest(returned) == before
    hls = tmp_path / "sira_hls"
    for rel in ("manifest.json", "firmware/top.cpp", "tb/testbench.cpp", "report/estimate.json", "run_hls.tcl", "csim.sh"):
        assert (hls / rel).is_file(), rel
    doc = _report(tmp_path, "sira_build.json")
    assert {"project", "top", "stages", "samples", "csim"} <= set(doc)
    assert doc["project"] == str(hls.resolve()) and doc["csim"] is None and doc["samples"] >= 3
    # a second build replaces the project sira made
    step_sira_build(model, _cfg(tmp_path, sira_samples=3))
    assert (hls / "manifest.json").is_file()


# --------------------------------------------------------------------------
# the list, as FINN runs it
# --------------------------------------------------------------------------


def _run(steps, model, cfg):
    for step in steps:
        model = step(model, cfg)
    return model


@pytest.mark.slow
@pytest.mark.skipif(bool(unavailable()), reason=f"C simulation unavailable: {unavailable()}")
def test_the_four_steps_as_a_list_with_csim(tmp_path):
    cfg = _cfg(tmp_path, sira_csim="dataflow")
    final = _run(SIRA_STEPS, ModelWrapper(MLP), cfg)
    assert final.get_metadata_prop("sira_acc_dtype")  # the optimized model flows to the end
    for name in ("sira_analysis.json", "sira_optimize.json", "estimate_layer_resources_sira.json", "sira_build.json"):
        _report(tmp_path, name)
    csim = _report(tmp_path, "sira_build.json")["csim"]
    assert csim["passed"] and csim["exact"] == csim["samples"] > SAMPLES and csim["mode"] == "dataflow"
    assert (tmp_path / "sira_hls" / "manifest.json").is_file()


def test_custom_flow_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("custom_flow", os.path.join(EXAMPLES, "custom_flow.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    cfg = _cfg(tmp_path, sira_csim=False)
    final = example.run_flow(ModelWrapper(MLP), cfg)
    out = capsys.readouterr().out
    for i, name in enumerate(["step_sira_analyze", "step_sira_optimize", "step_sira_estimate", "step_sira_build"], start=1):
        assert f"[{i}/4] {name}" in out
    assert final.get_metadata_prop("sira_acc_dtype")
    assert (tmp_path / "sira_hls" / "manifest.json").is_file()


# --------------------------------------------------------------------------
# configs and errors
# --------------------------------------------------------------------------


class FinnLikeConfig:
    """Not a SiraBuildConfig: FINN's attribute names, some left out."""

    def __init__(self, output_dir):
        self.output_dir = output_dir
        self.synth_clk_period_ns = 8.0
        self.fpga_part = None  # FINN derives it from a board; sira takes its default
        self.sira_input_spec = {"inputs": {"pixels": {"datatype": "UINT8", "scale": "1/255"}}}
        self.sira_samples = SAMPLES
        # no target_fps, folding_config_file, sira_csim: the defaults apply


def test_any_config_class_with_the_attribute_names_works(tmp_path):
    cfg = FinnLikeConfig(str(tmp_path))
    model = _run(SIRA_STEPS, ModelWrapper(MLP), cfg)
    assert model.get_metadata_prop("sira_acc_dtype")
    doc = _report(tmp_path, "estimate_layer_resources_sira.json")
    assert doc["clock_ns"] == 8.0 and doc["part"] == "xc7z020clg400-1"
    assert _report(tmp_path, "sira_build.json")["csim"] is None


@pytest.mark.parametrize("step", SIRA_STEPS, ids=lambda s: s.__name__)
def test_missing_input_spec_names_the_step(tmp_path, step):
    with pytest.raises(SiraError) as info:
        step(ModelWrapper(MLP), SiraBuildConfig(output_dir=str(tmp_path), sira_samples=SAMPLES))
    msg = str(info.value)
    assert msg.startswith(f"{step.__name__}: ") and "no range for input" in msg, msg
    assert not (tmp_path / "report").exists() or not os.listdir(tmp_path / "report")


def test_config_errors_name_the_step(tmp_path):
    class NoOutput:
        sira_input_spec = SPEC

    with pytest.raises(SiraError, match=r"^step_sira_analyze: .*output_dir"):
        step_sira_analyze(ModelWrapper(MLP), NoOutput())
    with pytest.raises(SiraError, match=r"^step_sira_estimate: synth_clk_period_ns"):
        step_sira_estimate(ModelWrapper(MLP), _cfg(tmp_path, synth_clk_period_ns=-1))
    with pytest.raises(SiraError, match=r"^step_sira_build: sira_samples"):
        step_sira_build(ModelWrapper(MLP), _cfg(tmp_path, sira_samples=0))
    with pytest.raises(SiraError, match=r"^step_sira_estimate: folding_config_file"):
        step_sira_estimate(ModelWrapper(MLP), _cfg(tmp_path, folding_config_file=str(tmp_path / "missing.json")))
    with pytest.raises(SiraError, match=r"^step_sira_estimate: .*part"):
        step_sira_estimate(ModelWrapper(MLP), _cfg(tmp_path, fpga_part="no-such-part"))

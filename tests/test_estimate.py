"""sira.estimate and `sira estimate`: per-layer costs, the FINN baseline, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from sira.cli import main
from sira.estimate import RESOURCE_KEYS, baseline_layers, estimate, estimate_prepared, layer_cost, multiply_bindings, prepare
from sira.errors import SiraError

from tests.helpers import prepared_zoo

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
EXAMPLE_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")

_CACHE: dict = {}


def _estimate(name: str, mode: str) -> dict:
    key = (name, mode)
    if key not in _CACHE:
        if name == "example":
            _CACHE[key] = estimate(EXAMPLE, EXAMPLE_SPEC, mode=mode)
        else:
            _CACHE[key] = estimate_prepared(prepared_zoo(name), "xc7z020clg400-1", mode=mode)[0]
    return _CACHE[key]


CASES = [("example", "refined"), ("example", "finn"), ("TFC_2W2A", "refined"), ("TFC_2W2A", "finn")]


@pytest.mark.parametrize("name,mode", CASES)
def test_json_keys(name, mode):
    doc = _estimate(name, mode)
    assert doc["part"] == "xc7z020clg400-1" and doc["clock_ns"] == 10.0 and doc["mode"] == mode
    for section in (doc["layers"], doc["baseline"]["layers"]):
        assert section
        for d in section.values():
            for k in ("op_type", "LUT", "DSP", "BRAM_18K", "URAM", "cycles", "acc_bits", "PE", "SIMD", "multiplies"):
                assert k in d
            for k in RESOURCE_KEYS:
                assert d[k] == "unknown" or (isinstance(d[k], int) and d[k] >= 0)
    for total in (doc["total"], doc["baseline"]["total"]):
        for k in RESOURCE_KEYS:
            assert isinstance(total[k], int)
        assert set(total["unknown_layers"]) == set(RESOURCE_KEYS)
    assert set(doc["delta"]) >= set(RESOURCE_KEYS)
    perf = doc["performance"]
    assert perf["max_cycles"] == max(d["cycles"] for d in doc["layers"].values())
    assert perf["max_cycles_node_name"] in doc["layers"]
    assert perf["estimated_throughput_fps"] == pytest.approx(1e9 / (10.0 * perf["max_cycles"]), rel=1e-6)
    json.dumps(doc)


@pytest.mark.parametrize("name", ["example", "TFC_2W2A"])
def test_refined_no_zero_cost(name):
    doc = _estimate(name, "refined")
    for section in (doc["layers"], doc["baseline"]["layers"]):
        for lname, d in section.items():
            if d.get("free"):
                assert d["op_type"] in ("Reshape", "Thresholding") or d.get("host"), (lname, d)
                continue
            values = [d[k] for k in RESOURCE_KEYS]
            assert any(v == "unknown" or v > 0 for v in values), (lname, d)


@pytest.mark.parametrize("name,mode", CASES)
def test_baseline_accumulators_not_narrower(name, mode):
    doc = _estimate(name, mode)
    base = doc["baseline"]["layers"]
    macs = {n: d for n, d in doc["layers"].items() if d["op_type"] in ("MVAU", "VVAU")}
    assert macs
    for n, d in macs.items():
        assert base[n]["acc_bits"] >= d["acc_bits"]
    assert doc["baseline"]["total"]["acc_bits"] >= doc["total"]["acc_bits"]


def test_tfc_baseline_structure():
    doc = _estimate("TFC_2W2A", "refined")
    base = doc["baseline"]["layers"]
    # FINN widths from the width report (10, 8, 8, 8) vs sira's (10, 7, 7, 7)
    assert [base[f"MatMul_{i}"]["acc_bits"] for i in range(4)] == [10, 8, 8, 8]
    assert [doc["layers"][f"MatMul_{i}"]["acc_bits"] for i in range(4)] == [10, 7, 7, 7]
    # FINN absorbs the requantization chains into thresholds too: no elementwise units, no DSPs
    assert not any(d["op_type"].startswith("Elementwise") and not d.get("host") for n, d in base.items() if n.startswith("MatMul"))
    assert doc["baseline"]["total"]["DSP"] == 0
    # FINN thresholds the float input in the accelerator (Thresholding_rtl), sira the raw integers
    assert base["Quant_4_MultiThreshold"]["op_type"] == "Thresholding_rtl"
    assert base["Quant_4_MultiThreshold"]["LUT"] > doc["layers"]["Quant_4_MultiThreshold"]["LUT"]
    # the float output scale and bias run on the host after sira's dataflow; FINN builds them
    tails = [name for name in doc["layers"] if name.startswith("global_out_aggregate_")]
    assert tails, list(doc["layers"])
    for tail in tails:
        assert doc["layers"][tail]["host"] and doc["layers"][tail]["LUT"] == 0 and doc["layers"][tail]["cycles"] == 0
        assert not base[tail].get("host")
    assert doc["total"]["unknown_layers"]["LUT"] == 0


def test_multiply_decisions_recorded():
    _, report_layers, layers, inputs = prepare(EXAMPLE, EXAMPLE_SPEC)
    bindings = multiply_bindings(layers)
    macs = [layer for layer in layers if layer.kind == "MVAU"]
    for layer in macs:
        (m,) = bindings[layer.name]
        assert m.impl in ("lut", "dsp") and m.count == layer.pe * layer.simd
        assert layer_cost(layer).multiplies == bindings[layer.name]
    base = baseline_layers(layers, report_layers, inputs)
    assert [layer.name for layer in base] == [layer.name for layer in layers] and not base.host
    doc = _estimate("example", "refined")
    assert doc["layers"]["MatMul_0"]["multiplies"][0]["impl"] in ("lut", "dsp")


def test_folding_target_fps_raises_throughput():
    slow = _estimate("example", "refined")
    fast = estimate(EXAMPLE, EXAMPLE_SPEC, target_fps=200_000)
    assert fast["performance"]["estimated_throughput_fps"] >= 200_000 > slow["performance"]["estimated_throughput_fps"]
    assert fast["layers"]["MatMul_0"]["SIMD"] * fast["layers"]["MatMul_0"]["PE"] > 1


def test_bad_inputs_raise():
    with pytest.raises(SiraError, match="unknown FPGA part"):
        estimate(EXAMPLE, EXAMPLE_SPEC, part="xc_nonexistent")
    with pytest.raises(SiraError, match="mode"):
        estimate(EXAMPLE, EXAMPLE_SPEC, mode="fast")
    with pytest.raises(SiraError):
        estimate(EXAMPLE, EXAMPLE_SPEC, folding={"MatMul_0": {"PE": 3}})


def test_cli_table_and_json(tmp_path, capsys):
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC]) == 0
    out = capsys.readouterr().out
    assert "SIRA:" in out and "baseline" in out and "delta" in out and "MatMul_0" in out and "bottleneck" in out
    dest = tmp_path / "est.json"
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--format", "json", "-o", str(dest), "--mode", "finn", "-q"]) == 0
    doc = json.loads(dest.read_text())
    assert doc["mode"] == "finn" and "MatMul_0" in doc["layers"] and "total" in doc["baseline"]


def test_cli_folding_file(tmp_path, capsys):
    cfg = tmp_path / "fold.json"
    cfg.write_text(json.dumps({"MatMul_0": {"PE": 2, "SIMD": 4}}))
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--folding", str(cfg), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["layers"]["MatMul_0"]["PE"], doc["layers"]["MatMul_0"]["SIMD"]) == (2, 4)
    assert doc["baseline"]["layers"]["MatMul_0"]["PE"] == 2


@pytest.mark.parametrize(
    "extra",
    [
        ["--part", "xc_nonexistent"],
        ["--folding", "/nonexistent/fold.json"],
        ["--clock-ns", "0"],
        ["--target-fps", "-5"],
    ],
)
def test_cli_bad_inputs_exit_2(extra, capsys):
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sira: error:") and len(err.strip().splitlines()) == 1


def test_cli_bad_folding_content_exit_2(tmp_path, capsys):
    cfg = tmp_path / "fold.json"
    cfg.write_text("{not json")
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--folding", str(cfg)]) == 2
    cfg.write_text(json.dumps({"MatMul_0": {"PE": 3}}))
    assert main(["estimate", EXAMPLE, "--input-spec", EXAMPLE_SPEC, "--folding", str(cfg)]) == 2
    assert main(["estimate", "/nonexistent.onnx"]) == 2
    assert "sira: error:" in capsys.readouterr().err


FREE_KINDS = {"Reshape", "HostOp"}


@pytest.mark.parametrize("mode", ["refined", pytest.param("finn", marks=pytest.mark.slow)])
def test_every_zoo_model_estimates(zoo_model, mode):
    """Every zoo model: it runs, no non-wiring layer costs 0 (refined
    mode; FINN itself reports 0 for some kinds), totals are the sums of the
    known layer costs, the JSON has its documented shape, and SIRA's
    accumulators are never wider than the baseline's."""
    name, _path, _spec = zoo_model
    doc = json.loads(json.dumps(estimate_prepared(prepared_zoo(name), "xc7z020clg400-1", mode=mode)[0]))
    assert {"part", "clock_ns", "mode", "layers", "total", "baseline", "delta", "performance"} <= set(doc)
    for key in ("LUT", "DSP", "BRAM_18K", "URAM"):
        known = [v[key] for v in doc["layers"].values() if v[key] != "unknown"]
        assert doc["total"][key] == sum(known), (name, key)
    for lname, layer in doc["layers"].items():
        assert {"op_type", "LUT", "DSP", "BRAM_18K", "URAM", "cycles", "acc_bits"} <= set(layer), lname
        if mode == "refined" and layer["op_type"] not in FREE_KINDS and not layer.get("host"):
            assert layer["LUT"] == "unknown" or layer["LUT"] > 0 or layer["DSP"] not in (0, "unknown"), f"{name}: {lname} costs 0"
        base = doc["baseline"]["layers"].get(lname)
        if base is not None and isinstance(layer["acc_bits"], int) and isinstance(base["acc_bits"], int):
            # XNOR layers (bipolar inputs and weights) accumulate the popcount, in FINN and in sira
            assert layer["acc_bits"] <= base["acc_bits"], (name, lname)
    assert doc["performance"]["max_cycles"] > 0


def test_cli_layer_too_large_for_the_part_exit_2(tmp_path, capsys):
    """6.3 Mbit of 24-bit weights in one layer (16384 x 16: few outputs keep
    the optimization quick) do not fit an xc7z020 (about 5 Mbit of BRAM):
    a one-line error naming the layer and the fix."""
    import numpy as np
    import onnx
    from onnx import helper

    from tests.helpers import make_model, quant_node

    rng = np.random.default_rng(0)
    inits = {
        "w": rng.normal(size=(16384, 16)).astype(np.float32),
        "ws": np.float32(2.0**-21),  # integers up to about 2**23: 24 bits
        "b24": np.float32(24),
        "s": np.float32(1 / 64),
        "z": np.float32(0),
        "b8": np.float32(8),
    }
    nodes = [
        quant_node("x", "s", "z", "b8", "xq"),
        quant_node("w", "ws", "z", "b24", "wq"),
        helper.make_node("MatMul", ["xq", "wq"], ["acc"]),
        helper.make_node("Relu", ["acc"], ["r"]),
        quant_node("r", "s", "z", "b8", "y", signed=0),
    ]
    path = tmp_path / "big.onnx"
    onnx.save(make_model(nodes, {"x": [1, 16384]}, {"y": [1, 16]}, inits).model, str(path))
    out = tmp_path / "est.json"
    code = main(["estimate", str(path), "--input-range=-1,1", "--part", "xc7z020clg400-1", "--format", "json", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.startswith("sira: error:") and "MatMul" in err


#: FINN 1.6.1's estimate of TFC_1W1A's four MVAUs (binaryXnorMode, PE = SIMD
#: = 1; shared/peers/finn_results/TFC_1W1A.json): (MW, MH, LUT, BRAM_18K)
FINN_TFC_1W1A = [(784, 64, 315, 4), (64, 64, 312, 1), (64, 64, 312, 1), (64, 10, 312, 1)]


def test_xnor_mvau_costs_as_finns_binary_xnor_mode():
    """An MVAU whose weights and inputs are both bipolar is an XNOR-popcount
    layer: FINN's formula with 1-bit BINARY operands and the popcount as
    accumulator gives FINN's own numbers; the same weights on a 1-bit
    unsigned input are no XNOR layer."""
    import numpy as np

    from sira import hw
    from sira.hw import StreamType

    for mw, mh, lut, bram in FINN_TFC_1W1A:
        w = np.where(np.arange(mw * mh).reshape(mw, mh) % 3 == 0, -1, 1)
        layer = hw.MVAU(name="xnor", inputs=("x",), outputs=("y",), in_shape=(1, mw), out_shape=(1, mh), in_type=StreamType.bipolar(),
                        out_type=StreamType.for_range(-mw, mw), mw=mw, mh=mh, weights=w, weight_type=StreamType.bipolar(),
                        acc_type=StreamType.for_range(-mw, mw), acc_range=(-mw, mw))  # fmt: skip
        assert layer.xnor and layer.popcount_bits == (10 if mw == 784 else 7)
        cost = layer_cost(layer, "xc7z020clg400-1", "finn")
        assert (cost.lut, cost.bram18) == (lut, bram), (mw, mh, cost.breakdown)
        plain = layer_cost(dataclasses.replace(layer, in_type=StreamType(1, False)), "xc7z020clg400-1", "finn")
        assert not dataclasses.replace(layer, in_type=StreamType(1, False)).xnor and plain.lut != lut


@pytest.mark.slow
def test_tfc_1w1a_layers_are_xnor_mvaus_priced_as_finn():
    doc = _estimate("TFC_1W1A", "finn")
    assert [doc["layers"][f"MatMul_{i}"]["LUT"] for i in range(4)] == [lut for *_, lut, _ in FINN_TFC_1W1A]
    assert [doc["layers"][f"MatMul_{i}"]["BRAM_18K"] for i in range(4)] == [bram for *_, bram in FINN_TFC_1W1A]

"""sira explain: the numbers it shows are the analysis' and the optimize
report's, its what-ifs agree with an independent recomputation, JSON mode
round-trips, and unknown names are a usage error with suggestions."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import helper

import sira
from sira.cli import main
from sira.explain import explain, explain_text
from sira.report import report_json
from tests.helpers import ZOO_MODELS, zoo_path
from tests.helpers import make_model, quant_node

HERE = os.path.dirname(os.path.abspath(__file__))
MLP = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
MLP_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")
CONV = os.path.join(HERE, "..", "examples", "sira_conv.onnx")
CONV_SPEC = os.path.join(HERE, "..", "examples", "sira_conv.spec.json")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def run(capsys, *argv) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``sira explain ...``."""
    capsys.readouterr()
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def bits(lo: int, hi: int) -> int:
    """The narrowest integer type's width, written out here on purpose."""
    if lo >= 0:
        return max(hi.bit_length(), 1)
    return max((-lo - 1).bit_length(), hi.bit_length()) + 1


def full_ints(r, field: str) -> np.ndarray:
    return np.broadcast_to(getattr(r, field), r.shape).astype(object)


def matmul_columns(W: np.ndarray, xlo: np.ndarray, xhi: np.ndarray) -> tuple[list, list]:
    """Per column j the exact range of sum_k x_k W[k, j] for x_k in
    [xlo_k, xhi_k], with Python integers."""
    K, J = W.shape
    lo, hi = [], []
    for j in range(J):
        a = b = 0
        for k in range(K):
            w = int(W[k, j])
            t1, t2 = w * int(xlo[k]), w * int(xhi[k])
            a += min(t1, t2)
            b += max(t1, t2)
        lo.append(a)
        hi.append(b)
    return lo, hi


@pytest.fixture(scope="module")
def mlp_optimized():
    """(optimized model, optimize report JSON) of the MLP example."""
    model, rep = sira.optimize(MLP, MLP_SPEC, samples=5)
    return model, json.loads(json.dumps(rep.to_json(), default=str))


@pytest.fixture(scope="module")
def mlp_analysis():
    return sira.analyze(MLP, MLP_SPEC)


def layer(rep: dict, name: str) -> dict:
    return next(x for x in rep["layers"] if x["layer"] == name)


# --------------------------------------------------------------------------
# MAC layers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["MatMul_0", "MatMul_1", "MatMul_2"])
def test_mac_numbers_are_the_optimize_reports(name, mlp_optimized, mlp_analysis):
    from sira.transforms.widths import mac_width_report

    _, rep = mlp_optimized
    # explain reads the file as given; its widths are the optimized model's, which the optimize report states
    row = layer({"layers": json.loads(json.dumps(mac_width_report(mlp_analysis), default=str))}, name)
    optimized_row = layer(rep, name)
    for key in ("sira_range", "sira_width", "sira_dtype", "finn_range", "finn_width", "a2q_width", "K", "input_dtype", "weight_dtype"):
        assert row[key] == optimized_row[key], key
    doc = explain(MLP, name, MLP_SPEC)
    assert doc["kind"] == "mac"
    m = doc["mac"]
    assert m["interval"] == row["sira_range"]
    assert m["width"] == row["sira_width"] and m["dtype"] == row["sira_dtype"]
    assert m["K"] == row["K"] and m["input_dtype"] == row["input_dtype"] and m["weight_dtype"] == row["weight_dtype"]
    assert m["a2q"]["width"] == row["a2q_width"] and m["finn"]["width"] == row["finn_width"]
    assert m["finn"]["range"] == row["finn_range"]
    assert m["limiting_channel"] == row["limiting_channel"]
    assert [c["width"] for c in m["channels"]] == row["channel_widths"]
    assert m["input_interval"] == row["input_range"]
    # the channels that set the maximum and the minimum span the layer's interval
    chans = m["channels"]
    assert chans[m["max_channel"]]["interval"][1] == row["sira_range"][1]
    assert chans[m["min_channel"]]["interval"][0] == row["sira_range"][0]
    assert [min(c["interval"][0] for c in chans), max(c["interval"][1] for c in chans)] == row["sira_range"]
    assert m["formula"].startswith(f"bits([{row['sira_range'][0]}, {row['sira_range'][1]}])")
    assert m["formula"].endswith(f"= {row['sira_width']}")
    # per channel: the accumulator interval is the analysis' own per-channel range
    y = mlp_analysis[row["output"]]
    assert [c["interval"][0] for c in chans] == [int(v) for v in y.per_channel("int_lo", -1, "min")]
    assert [c["interval"][1] for c in chans] == [int(v) for v in y.per_channel("int_hi", -1, "max")]
    # the tensor entry is the analysis JSON's
    entry = report_json(mlp_analysis)["tensors"][row["output"]]
    assert {k: doc["tensor"][k] for k in entry} == json.loads(json.dumps(entry))


def test_weight_sums_give_the_interval_for_a_uniform_input(mlp_analysis):
    doc = explain(MLP, "MatMul_0", MLP_SPEC)
    m = doc["mac"]
    assert m["input_uniform"] and m["tight_from_sums"]
    W = full_ints(mlp_analysis[m["weight"]], "int_lo")
    lo, hi = m["input_interval"]
    for c in m["channels"]:
        col = [int(v) for v in W[:, c["channel"]]]
        p, n = sum(v for v in col if v > 0), sum(v for v in col if v < 0)
        assert (c["pos_sum"], c["neg_sum"]) == (p, n)
        assert c["interval"] == [p * lo + n * hi, p * hi + n * lo]


@pytest.mark.parametrize("name", ["MatMul_0", "MatMul_1"])
def test_what_if_one_bit_less_input_recomputed(name, mlp_analysis):
    """Clip every input element to the one-bit-narrower unsigned type and
    redo the dot products by hand."""
    doc = explain(MLP, name, MLP_SPEC)
    m = doc["mac"]
    w = m["what_if"]["input_one_bit_less"]
    assert w["applicable"]
    N = int(m["input_dtype"].removeprefix("UINT"))
    top = (1 << (N - 1)) - 1
    assert w["input_clip"] == [0, top] and w["input_dtype"] == f"UINT{N - 1}"
    x = mlp_analysis[m["input"]]
    xlo = np.clip(full_ints(x, "int_lo").reshape(-1), 0, top)
    xhi = np.clip(full_ints(x, "int_hi").reshape(-1), 0, top)
    W = full_ints(mlp_analysis[m["weight"]], "int_lo")
    assert np.all(mlp_analysis[m["weight"]].bias == 0)
    lo, hi = matmul_columns(W, xlo, xhi)
    assert w["interval"] == [min(lo), max(hi)]
    assert w["width"] == bits(min(lo), max(hi))
    assert w["delta"] == w["width"] - m["width"]


def test_what_if_without_the_widest_channel(mlp_analysis):
    doc = explain(MLP, "MatMul_0", MLP_SPEC)
    m = doc["mac"]
    y = mlp_analysis[m["output"]]
    lo = [int(v) for v in y.per_channel("int_lo", -1, "min")]
    hi = [int(v) for v in y.per_channel("int_hi", -1, "max")]
    keys = [max(-a, b + 1) for a, b in zip(lo, hi)]
    widest = keys.index(max(keys))
    w = m["what_if"]["without_widest_channel"]
    assert w["removed_channel"] == widest == m["limiting_channel"]
    rest = [c for c in range(len(lo)) if c != widest]
    new = [min(lo[c] for c in rest), max(hi[c] for c in rest)]
    assert w["interval"] == new and w["width"] == bits(*new)


def test_conv_layers_match_the_width_report():
    from sira.transforms.widths import mac_width_report

    report = sira.analyze(CONV, CONV_SPEC)
    rows = {r["layer"]: r for r in mac_width_report(report)}
    for name in ("Conv_0", "Conv_1", "Conv_2"):
        m = explain(CONV, name, CONV_SPEC)["mac"]
        row = rows[name]
        assert m["interval"] == row["sira_range"] and m["width"] == row["sira_width"]
        assert [c["width"] for c in m["channels"]] == row["channel_widths"]
        y = report[row["output"]]
        assert [c["interval"][1] for c in m["channels"]] == [int(v) for v in y.per_channel("int_hi", 1, "max")]
        # the bound from the weight sums always contains the proven interval
        for c in m["channels"]:
            assert c["from_sums"][0] <= c["interval"][0] and c["interval"][1] <= c["from_sums"][1]
        # one bit less input never widens the accumulator, and stays inside the clipped P/N bound
        w = m["what_if"]["input_one_bit_less"]
        assert w["width"] <= m["width"]
        c0, c1 = w["input_clip"]
        lo, hi = max(m["input_interval"][0], c0), min(m["input_interval"][1], c1)
        bound = [min(c["pos_sum"] * lo + c["neg_sum"] * hi for c in m["channels"]), max(c["pos_sum"] * hi + c["neg_sum"] * lo for c in m["channels"])]
        assert bound[0] <= w["interval"][0] and w["interval"][1] <= bound[1]
    # Conv_1's input bounds vary per element: the sums alone would be wider
    assert not explain(CONV, "Conv_1", CONV_SPEC)["mac"]["tight_from_sums"]


def test_zoo_model_mac():
    from sira.transforms.widths import mac_width_report

    path = zoo_path("TFC_2W2A")
    spec = ZOO_MODELS["TFC_2W2A"][1]
    report = sira.analyze(path, spec)
    row = next(r for r in mac_width_report(report) if r["layer"] == "MatMul_1")
    m = explain(path, "MatMul_1", spec)["mac"]
    assert m["interval"] == row["sira_range"] and m["width"] == row["sira_width"]
    assert m["a2q"]["width"] == row["a2q_width"] and m["finn"]["width"] == row["finn_width"]
    chans = m["channels"]
    assert chans[m["max_channel"]]["interval"][1] == row["sira_range"][1]
    assert chans[m["min_channel"]]["interval"][0] == row["sira_range"][0]
    # signed 2-bit input: one bit less is a signed 1-bit input, [-1, 0]
    w = m["what_if"]["input_one_bit_less"]
    assert row["input_dtype"] == "INT2" and w["input_clip"] == [-1, 0]
    x = report[row["input"]]
    xlo = np.clip(full_ints(x, "int_lo").reshape(-1), -1, 0)
    xhi = np.clip(full_ints(x, "int_hi").reshape(-1), -1, 0)
    lo, hi = matmul_columns(full_ints(report[row["weight"]], "int_lo"), xlo, xhi)
    assert w["interval"] == [min(lo), max(hi)] and w["width"] == bits(min(lo), max(hi))


# --------------------------------------------------------------------------
# thresholds
# --------------------------------------------------------------------------


def test_quantizer_of_the_original_model_becomes_thresholds(mlp_optimized):
    _, rep = mlp_optimized
    doc = explain(MLP, "Quant_4_out0", MLP_SPEC, samples=5)
    assert doc["kind"] == "thresholds"
    t = doc["thresholds"]
    assert [c["node"] for c in t["chain"]] == ["BatchNormalization_0", "Relu_0", "Quant_4"]
    assert t["thresholds_per_channel"] == layer(rep, "MatMul_0")["thresholds_per_channel"] == 15
    assert t["channels"] == 32 and len(t["active_per_channel"]) == 32
    assert t["reads"]["tensor"] == "MatMul_0_out0" and t["reads"]["node"] == "MatMul_0"
    assert t["reads"]["integer_range"] == layer(rep, "MatMul_0")["sira_range"]
    converted = next(c for p in rep["passes"] for c in p.get("converted", []) if c["quantizer"] == "Quant_4")
    assert t["negated_channels"] == converted["negated_channels"]
    assert t["lowered_chain"] == converted["nodes"]
    # a tensor inside the chain explains the same conversion
    inner = explain(MLP, "Relu_0_out0", MLP_SPEC, samples=5)
    assert inner["kind"] == "thresholds" and inner["thresholds"]["quantizer"] == "Quant_4"
    text = explain_text(doc)
    assert "BatchNormalization_0 (BatchNormalization) -> Relu_0 (Relu) -> Quant_4 (Quant)" in text
    assert "15 per channel x 32 channels" in text


def test_multithreshold_of_an_optimized_model(tmp_path, mlp_optimized):
    model, rep = mlp_optimized
    path = str(tmp_path / "mlp_sira.onnx")
    onnx.save(model.model, path)
    loaded = sira.load(path)
    mts = [n.name for n in loaded.graph.node if n.op_type == "MultiThreshold"]
    assert len(mts) == 3
    doc = explain(path, mts[1])
    assert doc["kind"] == "thresholds"
    t = doc["thresholds"]
    assert t["source"] == "model" and t["thresholds_per_channel"] == 15 and t["channels"] == 32
    assert t["reads"]["node"] == "MatMul_0"
    converted = next(c for p in rep["passes"] for c in p.get("converted", []) if c["quantizer"] == "Quant_4")
    assert t["negated_channels"] == converted["negated_channels"]
    # the MAC of the optimized model has the same accumulator as the original's
    assert explain(path, "MatMul_0")["mac"]["interval"] == layer(rep, "MatMul_0")["sira_range"]


# --------------------------------------------------------------------------
# other tensors, fallbacks, names
# --------------------------------------------------------------------------


def test_plain_tensor_shows_its_range_and_rule(mlp_analysis):
    doc = explain(MLP, "global_out", MLP_SPEC)
    assert doc["kind"] == "tensor"
    entry = report_json(mlp_analysis)["tensors"]["global_out"]
    assert {k: doc["tensor"][k] for k in entry} == json.loads(json.dumps(entry))
    assert doc["producer"]["op"] == "Add" and doc["producer"]["rule"]["exactness"] == "exact"
    text = explain_text(doc)
    assert "produced by" in text and "Add_0 (Add)" in text and "INT11" in text


def test_original_names_resolve():
    assert explain(MLP, "pixels", MLP_SPEC)["resolved"]["tensor"] == "global_in"
    doc = explain(MLP, "fc0", MLP_SPEC)
    assert doc["resolved"] == {"tensor": "MatMul_0_out0", "node": "MatMul_0", "via": "original node name"}
    assert explain(MLP, "fc1_acc", MLP_SPEC)["resolved"]["tensor"] == "MatMul_1_out0"


def _hardmax_model(tmp_path) -> str:
    m = make_model(
        [quant_node("x", "s", "z", "b", "q"), helper.make_node("Hardmax", ["q"], ["h"], name="the_hardmax"),
         quant_node("h", "s", "z", "b", "y", signed=0)],
        {"x": [1, 4]},
        {"y": [1, 4]},
        {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(3)},
    )  # fmt: skip
    path = str(tmp_path / "hardmax.onnx")
    onnx.save(m.model, path)
    return path


def test_fallback_names_the_op_without_a_rule(tmp_path):
    path = _hardmax_model(tmp_path)
    doc = explain(path, "the_hardmax", (-1.0, 1.0))
    assert doc["kind"] == "fallback"
    assert doc["fallback"]["op"] == "Hardmax" and doc["tensor"]["fallback"] is True
    assert "no range rule for Hardmax" in explain_text(doc)
    # downstream: the quantizer re-bounds it, and the loose range is traced back to the fallback
    after = explain(path, "y", (-1.0, 1.0))
    assert after["kind"] == "tensor" and not after["tensor"]["exact"]
    assert any(o["op"] == "Hardmax" for o in after["loose_because"])


# --------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------


def test_cli_text(capsys):
    code, out, err = run(capsys, MLP, "MatMul_0", "--input-spec", MLP_SPEC)
    assert code == 0, err
    assert out.startswith("MatMul_0_out0: accumulator of MatMul_0 (MatMul)")
    assert "bits([-30345, 25245]) = 1 + ceil(log2(max(30345, 25245 + 1)))" in out
    assert "A2Q datatype bound" in out and "FINN weight-aware" in out and "input one bit narrower" in out


def test_cli_json_round_trips(capsys, tmp_path):
    out_file = tmp_path / "why.json"
    code, _, err = run(capsys, MLP, "MatMul_1", "--input-spec", MLP_SPEC, "--format", "json", "-o", str(out_file))
    assert code == 0, err
    written = json.loads(out_file.read_text())
    doc = explain(MLP, "MatMul_1", MLP_SPEC)
    assert written == doc == json.loads(json.dumps(doc))
    assert explain_text(written) == explain_text(doc)


def test_cli_unknown_name_suggests(capsys):
    code, out, err = run(capsys, MLP, "MatMul_O", "--input-spec", MLP_SPEC)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "MatMul_0" in err and "sira analyze" in err


def test_cli_missing_model(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path / "nope.onnx"), "MatMul_0")
    assert code == 2 and "not found" in err

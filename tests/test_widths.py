"""Width minimization: the three accumulator widths per MAC layer (A2Q
datatype bound, FINN's weight-aware width, sira's proven width), the
datatype annotations, and the zoo compared with FINN."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from onnx import helper
from qonnx.core.datatype import DataType

import sira
from sira import numerics as nx
from sira.errors import SiraError
from sira.verification import random_input
from tests.helpers import ZOO_MODELS, zoo_path
from tests.helpers import execute, make_model, quant_node
from sira.transforms.widths import (
    ACC_DTYPE_KEY,
    AnnotateDatatypes,
    a2q_bound_width,
    finn_weight_aware_range,
    finn_weight_aware_width,
    mac_width_report,
    range_width,
    value_datatype,
    weight_datatype,
    width_table,
)

#: FINN's accumulator widths (finn-plus 1.6.1, same pipeline position), per
#: integer MAC layer in graph order. qkeras_jettagging has four MatMuls, but
#: the first multiplies the float input: no integer accumulator in FINN or in
#: sira, so the three figures are MatMul_1..3.
FINN_WIDTHS = {
    "TFC_1W1A": [10, 7, 7, 7],
    "TFC_1W2A": [12, 8, 8, 8],
    "TFC_2W2A": [10, 8, 8, 8],
    "kwsmlp_w3a3": [18, 13, 13, 14],
    "qkeras_jettagging": [15, 15, 16],
    "unsw_nb15_mlp_w2a2": [9, 14, 7, 7],
}

#: Layers where FINN's MVAU sees other integer coordinates than the original
#: graph: UNSW computes (x + 1) / 2 of its bipolar input before Gemm_0, which
#: FINN's streamlining moves behind the MatMul, so FINN accumulates +-1 inputs
#: where the original graph (and sira) accumulates {0, 1}.
FINN_INPUT_DATATYPE = {("unsw_nb15_mlp_w2a2", 0): "BIPOLAR"}


def _finn_formula_width(lo: int, hi: int) -> int:
    """FINN's width rule written with float logarithms (exact for the small
    values it is used on here)."""
    if lo >= 0:
        return max(math.ceil(math.log2(hi + 1)), 1)
    return math.ceil(math.log2(max(-lo, hi + 1))) + 1


# --------------------------------------------------------------------------
# pure functions
# --------------------------------------------------------------------------


def test_a2q_reference_values():
    # sira_reference 5.3: K=576, N=M=4, unsigned input: alpha = 16.17 -> 18
    assert a2q_bound_width(576, 4, 4, signed_input=False) == 18
    # the worked example: K=2, 4-bit signed input, 3-bit weights: alpha = 6 -> INT8
    assert a2q_bound_width(2, 4, 3, signed_input=True) == 8


def test_a2q_matches_the_formula_and_is_exact_near_2_31():
    for K, N, M, signed in itertools.product(range(1, 70), range(1, 9), range(1, 9), (False, True)):
        alpha = math.log2(K) + N + M - 1 - int(signed)
        assert a2q_bound_width(K, N, M, signed) == math.ceil(alpha + 1 + math.log2(1 + 2**-alpha)), (K, N, M, signed)
    # 2**alpha = 2**30: P = 32; the correction log2(1 + 2**-30) is below
    # float32's resolution at 31, where a float32 evaluation says 31
    assert a2q_bound_width(2**20, 8, 4, signed_input=True) == 32
    assert math.ceil(np.float32(30 + 1) + np.float32(math.log2(1 + 2**-30))) == 31


def test_range_width_is_finns_rule():
    for lo in range(-300, 301, 7):
        for hi in range(max(lo, 0), 1100, 13):
            assert range_width(lo, hi) == _finn_formula_width(lo, hi), (lo, hi)
    assert range_width(-(2**40), 2**40 - 1) == 41 and range_width(0, 2**63) == 64


def test_finn_weight_aware_width_worked_example():
    W = np.array([[1, -2], [3, 1]])
    assert finn_weight_aware_range(W, "INT4") == (-32, 28)
    assert finn_weight_aware_width(W, DataType["INT4"]) == 6


def test_finn_weight_aware_width_is_exact_beyond_float():
    # one column of 2**20 weights 2**12 with INT16 inputs: max 2**20 * 2**12 * (2**15 - 1)
    W = np.full((2**20, 1), 2**12, dtype=np.int64)
    lo, hi = finn_weight_aware_range(W, "INT16")
    assert (lo, hi) == (-(2**47), 2**47 - 2**32)
    assert finn_weight_aware_width(W, "INT16") == 48


# --------------------------------------------------------------------------
# layers as real models
# --------------------------------------------------------------------------


def _quant_matmul(w_real: np.ndarray, w_scale: float, w_bits: int, x_scale: float, x_bits: int, x_signed: int, batch: int = 1):
    """x -> Quant(x_scale, x_bits) -> MatMul(Quant(w_real, w_scale, w_bits)) -> y."""
    k, c = w_real.shape
    nodes = [
        quant_node("x", "sx", "zero", "bx", "xq", signed=x_signed),
        quant_node("w", "sw", "zero", "bw", "wq", signed=1),
        helper.make_node("MatMul", ["xq", "wq"], ["y"], name="mac"),
    ]
    inits = {
        "w": w_real.astype(np.float32),
        "sx": np.float32(x_scale),
        "sw": np.float32(w_scale),
        "zero": np.float32(0),
        "bx": np.float32(x_bits),
        "bw": np.float32(w_bits),
    }
    return make_model(nodes, {"x": [batch, k]}, {"y": [batch, c]}, inits)


def test_worked_example():
    """sira_reference 5.3: K = 2, 4-bit signed input (scale 0.25) whose real
    range [-0.5, 0.5] makes the integers [-2, 2], weights [[1, -2], [3, 1]]:
    datatype bound INT8, FINN INT6, sira INT5 (col0 [-8, 8], col1 [-6, 6])."""
    model = _quant_matmul(np.array([[0.5, -1.0], [1.5, 0.5]]), 0.5, 3, 0.25, 4, 1)
    report = sira.analyze(model, (-0.5, 0.5))
    (layer,) = mac_width_report(report)
    print("\n" + width_table([layer]))
    assert layer["K"] == 2 and layer["op"] == "MatMul" and layer["layer"] == "mac"
    assert (layer["input_dtype"], layer["input_dtype_source"], layer["input_range"]) == ("INT4", "Quant xq", [-2, 2])
    assert (layer["weight_dtype"], layer["N"], layer["M"], layer["signed_input"]) == ("INT3", 4, 3, True)
    assert (layer["a2q_dtype"], layer["finn_dtype"], layer["sira_dtype"]) == ("INT8", "INT6", "INT5")
    assert layer["finn_range"] == [-32, 28] and layer["sira_range"] == [-8, 8]
    assert layer["channel_widths"] == [5, 4] and layer["limiting_channel"] == 0


def _enumerate_inputs(qlo: np.ndarray, qhi: np.ndarray) -> np.ndarray:
    """Every integer input vector with q_k in [qlo_k, qhi_k] (one per row)."""
    return np.array(list(itertools.product(*(range(a, b + 1) for a, b in zip(qlo, qhi)))), dtype=np.int64)


def test_brute_force_sira_width_is_the_attainable_width():
    """Small random MatMul layers with per-element input ranges narrower than
    the input datatype: every input is enumerated and executed; sira's
    accumulator range is exactly the attained one (per channel and per
    layer), and sira <= FINN <= A2Q."""
    rng = np.random.default_rng(7)
    for case in range(40):
        k, c = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        bits, signed = int(rng.integers(2, 4)), int(rng.integers(0, 2))
        dt = DataType[f"{'INT' if signed else 'UINT'}{bits}"]
        a = rng.integers(int(dt.min()), int(dt.max()) + 1, size=k)
        b = rng.integers(int(dt.min()), int(dt.max()) + 1, size=k)
        qlo, qhi = np.minimum(a, b), np.maximum(a, b)
        wq = rng.integers(-3, 4, size=(k, c))
        q = _enumerate_inputs(qlo, qhi)
        s = 0.5
        model = _quant_matmul(wq * 0.25, 0.25, 3, s, bits, signed, batch=len(q))
        spec = {"x": {"min": (qlo * s).tolist(), "max": (qhi * s).tolist(), "axis": 1}}
        (layer,) = mac_width_report(sira.analyze(model, spec))
        y = execute(model, {"x": q * s})["y"]
        acc = np.rint(y / (s * 0.25)).astype(np.int64)
        assert np.array_equal(acc, q @ wq), f"case {case}: execution is not the integer product"
        true_lo, true_hi = int(acc.min()), int(acc.max())
        assert layer["sira_range"] == [true_lo, true_hi], f"case {case}"
        assert layer["sira_width"] == range_width(true_lo, true_hi)
        assert layer["channel_widths"] == [range_width(int(acc[:, j].min()), int(acc[:, j].max())) for j in range(c)]
        assert layer["input_dtype"] == dt.name and layer["finn_width"] == finn_weight_aware_width(wq, dt)
        assert layer["sira_width"] <= layer["finn_width"] <= layer["a2q_width"], f"case {case}: {layer}"


def test_brute_force_conv_with_padding():
    """A padded Conv (border outputs see fewer taps) on binary inputs, every
    input enumerated: per-channel and layer ranges are the attained ones and
    K = C_in * kh * kw."""
    rng = np.random.default_rng(3)
    w = rng.integers(-2, 2, size=(3, 2, 2, 2)).astype(np.float32)  # INT2
    q = _enumerate_inputs(np.zeros(8, dtype=np.int64), np.ones(8, dtype=np.int64)).reshape(-1, 2, 2, 2)
    nodes = [
        quant_node("x", "one", "zero", "bx", "xq", signed=0),
        helper.make_node("Conv", ["xq", "w"], ["y"], name="conv", kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
    ]
    inits = {"w": w, "one": np.float32(1), "zero": np.float32(0), "bx": np.float32(1)}
    model = make_model(nodes, {"x": [len(q), 2, 2, 2]}, {"y": [len(q), 3, 3, 3]}, inits)
    (layer,) = mac_width_report(sira.analyze(model, (0, 1)))
    acc = np.rint(execute(model, {"x": q})["y"]).astype(np.int64)
    assert layer["K"] == 8 and layer["input_dtype"] == "BINARY" and layer["weight_dtype"] == "INT2"
    assert layer["sira_range"] == [int(acc.min()), int(acc.max())]
    per_channel = [range_width(int(acc[:, j].min()), int(acc[:, j].max())) for j in range(3)]
    assert layer["channel_widths"] == per_channel
    assert layer["finn_width"] == finn_weight_aware_width(w.reshape(3, -1).T.astype(np.int64), "BINARY")
    assert layer["sira_width"] <= layer["finn_width"] <= layer["a2q_width"]


def test_gemm_with_transposed_weights_and_constant_bias():
    wq = np.array([[1, -1, 2], [0, 3, -2]])  # (out, in) with transB
    nodes = [
        quant_node("x", "one", "zero", "bx", "xq", signed=0),
        helper.make_node("Gemm", ["xq", "w", "c"], ["y"], name="fc", transB=1),
    ]
    inits = {"w": wq.astype(np.float32), "c": np.float32([0.5, -0.25]), "one": np.float32(1), "zero": np.float32(0), "bx": np.float32(2)}
    model = make_model(nodes, {"x": [1, 3]}, {"y": [1, 2]}, inits)
    (layer,) = mac_width_report(sira.analyze(model, (0, 3)))
    # UINT2 inputs: column 0 = [1, -1, 2] -> [-3, 9], column 1 = [0, 3, -2] -> [-6, 9]
    assert layer["K"] == 3 and layer["sira_range"] == [-6, 9] and layer["finn_range"] == [-6, 9]
    assert layer["channel_widths"] == [5, 5] and layer["limiting_channel"] == 0


def test_input_datatype_walks_back_to_the_quantizer_or_falls_back():
    """N comes from the quantizer behind data movement and constant scaling;
    behind a sum of two run-time tensors there is none, and the proven
    range stands in."""
    w = np.array([[1.0], [-1.0]], dtype=np.float32)
    nodes = [
        quant_node("x", "s", "zero", "b4", "xq", signed=0),
        helper.make_node("Reshape", ["xq", "shape"], ["xr"]),
        helper.make_node("Mul", ["xr", "three"], ["xm"]),
        helper.make_node("MatMul", ["xm", "w"], ["y1"], name="walked"),
        helper.make_node("Add", ["xq", "xr"], ["xx"]),
        helper.make_node("MatMul", ["xx", "w"], ["y2"], name="summed"),
    ]
    inits = {"w": w, "s": np.float32(0.5), "zero": np.float32(0), "b4": np.float32(4), "shape": np.array([1, 2]), "three": np.float32(3)}
    model = make_model(nodes, {"x": [1, 2]}, {"y1": [1, 1], "y2": [1, 1]}, inits)
    layers = {r["layer"]: r for r in mac_width_report(sira.analyze(model, (0, 2)))}
    walked, summed = layers["walked"], layers["summed"]
    assert (walked["input_dtype"], walked["input_dtype_source"], walked["input_range"]) == ("UINT4", "Quant xq", [0, 4])
    assert walked["finn_range"] == [-15, 15] and walked["sira_range"] == [-4, 4]
    assert (summed["input_dtype"], summed["input_dtype_source"], summed["input_range"]) == ("UINT4", "proven range", [0, 8])


# --------------------------------------------------------------------------
# the zoo
# --------------------------------------------------------------------------


def test_zoo_widths_against_finn(zoo_model):
    name, path, spec = zoo_model
    report = sira.analyze(path, spec)
    layers = mac_width_report(report)
    print(f"\n{name}\n{width_table(layers)}")
    for r in layers:
        # an XNOR layer (bipolar inputs and weights) is a popcount to FINN and to sira alike
        assert r["accumulator"] == ("popcount" if (r["input_dtype"], r["weight_dtype"]) == ("BIPOLAR", "BIPOLAR") else "sum"), r
        assert r["sira_width"] <= r["finn_width"] <= r["a2q_width"], r
    if name not in FINN_WIDTHS:
        return
    finn = FINN_WIDTHS[name]
    assert len(layers) == len(finn), [r["layer"] for r in layers]
    for i, (r, reported) in enumerate(zip(layers, finn)):
        assert r["sira_width"] <= reported, f"{r['layer']}: sira {r['sira_width']} > FINN {reported}"
        # sira's FINN-style width reproduces FINN's own figure, in FINN's coordinates
        coords = FINN_INPUT_DATATYPE.get((name, i))
        if coords is None:
            assert r["finn_width"] == reported, r["layer"]
        else:
            w = report[r["weight"]]
            W = np.broadcast_to(w.zero_bias_form().int_lo, w.shape).T  # Gemm transB: (out, in) -> (K, out)
            assert finn_weight_aware_width(W, coords) == reported, r["layer"]


def test_zoo_jettagging_skips_the_float_matmul():
    path = zoo_path("qkeras_jettagging")
    layers = mac_width_report(sira.analyze(path, ZOO_MODELS["qkeras_jettagging"][1]))
    assert [r["layer"] for r in layers] == ["MatMul_1", "MatMul_2", "MatMul_3"]
    assert all(r["input_dtype"] == "UINT6" for r in layers)


# --------------------------------------------------------------------------
# AnnotateDatatypes
# --------------------------------------------------------------------------


def _integer_model():
    """x (integers [-3, 5]) -> MatMul(int W) -> Relu -> Quant(scale 1, 3 bits
    unsigned) -> MatMul(int W) -> Mul(0.5) -> y: integer tensors up to the
    Mul, a fractional one after it."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"),
        helper.make_node("Relu", ["a"], ["r"]),
        quant_node("r", "one", "zero", "b3", "q", signed=0),
        helper.make_node("MatMul", ["q", "w2"], ["m"], name="mm2"),
        helper.make_node("Mul", ["m", "half"], ["y"]),
    ]
    inits = {
        "w1": np.array([[1, -2, 0], [3, 1, -1]], dtype=np.float32),
        "w2": np.array([[2], [-1], [1]], dtype=np.float32),
        "one": np.float32(1),
        "zero": np.float32(0),
        "b3": np.float32(3),
        "half": np.float32(0.5),
    }
    return make_model(nodes, {"x": [1, 2]}, {"y": [1, 1]}, inits)


INT_SPEC = {"x": {"int_min": -3, "int_max": 5, "scale": 1}}


def test_annotate_datatypes_writes_the_proven_types():
    model = _integer_model()
    report = sira.analyze(model, INT_SPEC)
    out = model.transform(AnnotateDatatypes(report))
    dts = {t: out.get_tensor_datatype(t).name for t in ["x", "a", "r", "q", "m", "y", "w1", "w2"]}
    # x in [-3, 5]; a = x @ w1: columns [-12, 20], [-13, 11], [-5, 3]; Relu; Quant clips
    # to [0, 7] ([0, 3] in column 2); m = 2*q0 - q1 + q2 in [-7, 17]; y = m/2 is not an integer
    assert dts == {"x": "INT4", "a": "INT6", "r": "UINT5", "q": "UINT3", "m": "INT6", "y": "FLOAT32", "w1": "INT3", "w2": "INT3"}
    for t, dt in dts.items():
        r = report[t]
        if dt != "FLOAT32":
            assert dt == nx.narrowest_int_type(*r.int_bounds()), t
    acc = json.loads(out.get_metadata_prop(ACC_DTYPE_KEY))
    assert acc == {"mm1": "INT6", "mm2": "INT6"}
    # the annotated model executes with qonnx and computes what it did
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(-3, 6, size=(1, 2)).astype(np.float32)
        before, after = execute(model, {"x": x}), execute(out, {"x": x})
        assert np.array_equal(before["y"], after["y"])
        for t, dt in dts.items():
            assert np.all(DataType[dt].allowed(after[t])), t


def test_annotate_datatypes_from_a_spec_equals_from_a_report():
    model = _integer_model()
    by_report = model.transform(AnnotateDatatypes(sira.analyze(model, INT_SPEC)))
    by_spec = model.transform(AnnotateDatatypes(INT_SPEC))
    assert by_report.model.graph.quantization_annotation == by_spec.model.graph.quantization_annotation
    assert by_report.get_metadata_prop(ACC_DTYPE_KEY) == by_spec.get_metadata_prop(ACC_DTYPE_KEY)


def test_annotate_datatypes_refuses_a_stale_report():
    model = _integer_model()
    report = sira.analyze(model, INT_SPEC)
    changed = _integer_model()
    changed.set_initializer("w2", np.array([[20], [-1], [1]], dtype=np.float32))
    with pytest.raises(SiraError, match="different graph"):
        changed.transform(AnnotateDatatypes(report))


def test_value_datatype_bipolar_and_fractional():
    bipolar = sira.ScaledIntRange.scaled((1, 4), 0, 1, 2.0, -1.0)
    assert value_datatype(bipolar) == "BIPOLAR"
    assert value_datatype(sira.ScaledIntRange.scaled((1, 4), 0, 1, 2.0, 0.0)) == "UINT2"  # {0, 2}
    assert value_datatype(sira.ScaledIntRange.scaled((1, 4), 0, 7, 0.5, 0.0)) is None
    assert value_datatype(sira.ScaledIntRange.real((1, 4), 0.0, 1.0)) is None


def test_zoo_annotations_hold_on_execution(zoo_model):
    """Every annotation written on a zoo model admits the values qonnx
    computes for random inputs inside the spec."""
    name, path, spec = zoo_model
    model = sira.load(path)
    report = sira.analyze(model, spec)
    out = model.transform(AnnotateDatatypes(report))
    annotated = {
        qa.tensor_name: kv.value
        for qa in out.model.graph.quantization_annotation
        for kv in qa.quant_parameter_tensor_names
        if kv.key == "finn_datatype" and kv.value != "FLOAT32"
    }
    weights = {r["weight"] for r in mac_width_report(report)}
    for t, dt in annotated.items():
        r = report[t]
        # MAC weights of exactly +-1 are BIPOLAR (as FINN reads them), every other tensor its value type
        expected = weight_datatype(np.asarray(r.const_value())) if t in weights and value_datatype(r) else value_datatype(r)
        assert dt == expected, t
    acc = json.loads(out.get_metadata_prop(ACC_DTYPE_KEY))
    assert acc == {r["layer"]: r["sira_dtype"] for r in mac_width_report(report)}
    rng = np.random.default_rng(1)
    for _ in range(3):
        feed = {n: random_input(r, n, rng) for n, r in report.input_ranges.items()}
        ctx = execute(out, feed)
        for t, dt in annotated.items():
            assert np.all(DataType[dt].allowed(ctx[t])), (t, dt)

"""Hardware layer specs (sira.hw) and the lowering pass (sira.transforms.to_hw)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import sira
from sira import hw
from sira import numerics as nx
from sira.errors import SiraError
from sira.hw import StreamType
from tests.helpers import ZOO_MODELS, zoo_path
from tests.helpers import make_model
from sira.transforms.to_hw import channels_last, lower_to_hw
from sira.transforms.widths import mac_width_report

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sira_mlp.onnx"
EXAMPLE_SPEC = ROOT / "examples" / "sira_mlp.spec.json"
sys.path.insert(0, str(ROOT / "bench"))
import models  # noqa: E402

IMAGE_SPEC = {"inputs": {"*": {"int_min": 0, "int_max": 255, "scale": "1/255"}}}


def _optimize(model, spec):
    optimized, _ = sira.optimize(model, spec, samples=20)
    return optimized


@pytest.fixture(scope="module")
def example():
    return _optimize(str(EXAMPLE), str(EXAMPLE_SPEC))


def _node(model, name):
    return next(n for n in model.graph.node if (n.name or n.output[0]) == name)


def _check_mvau_weights(model, layer):
    """MVAU weights = the MAC's integer initializer, columns negated where a
    sign Mul(+-1) was absorbed."""
    node = _node(model, layer.name)
    W = nx.as_int(model.get_initializer(node.input[1]))
    consumer = [n for n in model.graph.node if node.output[0] in n.input]
    if layer.has_thresholds and consumer[0].op_type == "Mul":
        sign = nx.as_int(model.get_initializer(consumer[0].input[1])).reshape(1, -1)
        assert np.all(np.abs(sign) == 1)
        W = W * sign
    assert np.array_equal(layer.weights, W)
    assert layer.weights.dtype == np.int64 and not layer.weights.flags.writeable


# -- the example MLP -----------------------------------------------------------


def test_example_kinds_shapes_widths(example):
    layers = lower_to_hw(example)
    assert [l.kind for l in layers] == ["Thresholding", "MVAU", "MVAU", "MVAU", "Elementwise", "Elementwise"]
    thr, m0, m1, m2 = layers[:4]
    assert thr.thresholds.shape == (1, 255) and thr.in_type == StreamType(8, False) and thr.out_type.name == "UINT8"
    assert (m0.mw, m0.mh, m1.mw, m1.mh, m2.mw, m2.mh) == (64, 32, 32, 32, 32, 10)
    assert m0.in_shape == (1, 64) and m0.out_shape == (1, 32) and m2.out_shape == (1, 10)
    assert m0.in_type.name == "UINT8" and m1.in_type.name == "UINT4" and m0.weight_type.name == "INT4"
    # accumulators: sira's widths of the original model (and of optimize's report)
    original = mac_width_report(sira.analyze(str(EXAMPLE), str(EXAMPLE_SPEC)))
    assert [l.acc_type.bits for l in (m0, m1, m2)] == [r["sira_width"] for r in original]
    assert [list(l.acc_range) for l in (m0, m1, m2)] == [r["sira_range"] for r in original]
    # thresholds fused into the first two MVAUs; their type holds thresholds and accumulator
    assert m0.has_thresholds and m1.has_thresholds and not m2.has_thresholds
    assert m0.thresholds.shape == (32, 15) and m0.out_type.name == "UINT4"
    for m in (m0, m1):
        lo, hi = int(m.thresholds.min()), int(m.thresholds.max())
        assert m.threshold_type.min <= min(lo, m.acc_range[0]) and max(hi, m.acc_range[1]) <= m.threshold_type.max
        assert m.threshold_type == StreamType.for_range(min(lo, m.acc_range[0]), max(hi, m.acc_range[1]))
    assert m2.out_type == m2.acc_type
    # the float tail (dequantizing scale and bias) stays elementwise on floats
    assert layers[4].op == "Mul" and layers[4].out_type.kind == "float"
    for m in (m0, m1, m2):
        _check_mvau_weights(example, m)
    assert m0.cycles == 64 * 32


def test_sign_mul_absorbed_by_negating_weights(example):
    """The thresholds pass's sign Mul(+-1) is fused: no Elementwise between
    MVAUs, and the MVAU accumulates the oriented sum."""
    layers = lower_to_hw(example)
    m0 = layers[1]
    node = _node(example, "MatMul_0")
    mul = next(n for n in example.graph.node if node.output[0] in n.input)
    assert mul.op_type == "Mul"
    sign = example.get_initializer(mul.input[1]).reshape(-1)
    assert np.any(sign < 0), "the example should have a decreasing channel"
    W = example.get_initializer(node.input[1])
    assert np.array_equal(m0.weights[:, sign < 0], -W[:, sign < 0])
    mt = next(n for n in example.graph.node if mul.output[0] in n.input)
    assert mt.op_type == "MultiThreshold" and m0.outputs == (mt.output[0],) and m0.out_type.name == "UINT4"
    assert layers[2].inputs == m0.outputs  # no Elementwise in between


def test_to_json_roundtrips_through_json(example):
    layers = lower_to_hw(example)
    doc = json.loads(json.dumps([l.to_json() for l in layers]))
    m0 = doc[1]
    assert m0["kind"] == "MVAU" and m0["pe"] == 1 and m0["simd"] == 1 and m0["mem_style"] == "auto"
    assert m0["acc_type"] == {"name": "INT16", "bits": 16, "signed": True}
    assert np.array_equal(np.array(m0["weights"]), layers[1].weights)
    assert m0["cycles"] == layers[1].cycles


def test_input_spec_of_original_model_is_refused(example):
    with pytest.raises(SiraError, match="annotated UINT8"):
        lower_to_hw(example, str(EXAMPLE_SPEC))


# -- folding -----------------------------------------------------------------------


def test_folding_validation(example):
    m0 = lower_to_hw(example)[1]
    folded = m0.with_folding(pe=8, simd=16, mem_style="block")
    assert (folded.pe, folded.simd, folded.mem_style) == (8, 16, "block")
    assert folded.cycles == (32 // 8) * (64 // 16)
    assert m0.pe == 1  # frozen: the original is unchanged
    with pytest.raises(SiraError, match=r"layer 'MatMul_0' \(MVAU\): PE=3 does not divide MH=32; choose PE among 1, 2, 4, 8, 16, 32"):
        m0.with_folding(pe=3)
    with pytest.raises(SiraError, match=r"SIMD=5 does not divide MW=64"):
        m0.with_folding(simd=5)
    with pytest.raises(SiraError, match="mem_style 'bram'"):
        m0.with_folding(mem_style="bram")
    with pytest.raises(SiraError, match="positive integer"):
        m0.with_folding(pe=0)
    with pytest.raises(Exception):
        m0.pe = 2  # frozen dataclass


def test_spec_validation():
    t4, t8 = StreamType(4, False), StreamType(8, True)
    common = dict(name="L", inputs=("x",), outputs=("y",), in_shape=(1, 6), out_shape=(1, 4), in_type=t4, out_type=t8)
    with pytest.raises(SiraError, match=r"weights are \(4, 6\), expected \(MW, MH\) = \(6, 4\)"):
        hw.MVAU(mw=6, mh=4, weights=np.zeros((4, 6), dtype=np.int64), weight_type=t4, acc_type=t8, acc_range=(0, 0), **common)
    with pytest.raises(SiraError, match="integer array"):
        hw.MVAU(mw=6, mh=4, weights=np.zeros((6, 4)), weight_type=t4, acc_type=t8, acc_range=(0, 0), **common)
    with pytest.raises(SiraError, match="do not fit INT8"):
        hw.Thresholding(channels=4, thresholds=np.array([[300]]), threshold_type=t8, **common)
    with pytest.raises(SiraError, match="has no PE folding"):
        hw.Reshape(pe=2, **common)
    big = np.array([[2**70, -(2**70)]], dtype=object)  # exact Python ints survive
    m = hw.MVAU(mw=1, mh=2, weights=big, weight_type=StreamType(72, True), acc_type=StreamType(80, True), acc_range=(0, 0), **{**common, "in_shape": (1, 1), "out_shape": (1, 2)})
    assert m.to_json()["weights"] == [[2**70, -(2**70)]]


def test_stream_type():
    assert StreamType.for_range(0, 1).name == "BINARY"
    assert StreamType.for_range(-30345, 25245) == StreamType(16, True)
    assert StreamType.for_range(0, 255) == StreamType(8, False)
    assert (StreamType.for_range(-128, 127).min, StreamType.for_range(-128, 127).max) == (-128, 127)
    assert StreamType.bipolar().name == "BIPOLAR" and StreamType.float32().name == "FLOAT32"


# -- zoo ------------------------------------------------------------------------------


def test_tfc_2w2a():
    path = zoo_path("TFC_2W2A")
    spec = ZOO_MODELS["TFC_2W2A"][1]
    optimized = _optimize(path, spec)
    layers = lower_to_hw(optimized)
    kinds = [l.kind for l in layers]
    assert kinds[:6] == ["Reshape", "Thresholding"] + ["MVAU"] * 4 and set(kinds[6:]) == {"Elementwise"}, kinds
    reshape, thr, *mvaus = layers[:6]
    assert reshape.in_shape == (1, 28, 28, 1) and reshape.out_shape == (1, 784) and reshape.cycles == 0
    assert thr.out_type.name == "INT2"
    assert [(m.mw, m.mh) for m in mvaus] == [(784, 64), (64, 64), (64, 64), (64, 10)]
    assert all(m.in_type.name == "INT2" and m.weight_type.name == "INT2" for m in mvaus)
    original = mac_width_report(sira.analyze(path, spec))
    assert [m.acc_type.bits for m in mvaus] == [r["sira_width"] for r in original]
    assert [list(m.acc_range) for m in mvaus] == [r["sira_range"] for r in original]
    assert [m.has_thresholds for m in mvaus] == [True, True, True, False]
    assert all(m.activation_bias == -1 and m.activation_scale == 1 for m in mvaus[:3])
    for m in mvaus:
        _check_mvau_weights(optimized, m)


# -- convolutions ------------------------------------------------------------------------


def _check_conv_net(optimized, layers):
    kinds = [l.kind for l in layers]
    assert kinds[:4] == ["Thresholding", "FMPadding", "ConvolutionInputGenerator", "MVAU"]
    assert kinds[4:7] == ["FMPadding", "ConvolutionInputGenerator", "VVAU"]
    assert kinds[7] == "MVAU"  # pointwise: no window
    assert kinds[-4:] == ["Pool", "Reshape", "MVAU", "Elementwise"]
    # every stream feeds the next layer (a chain), shapes agree
    for a, b in zip(layers, layers[1:]):
        assert a.outputs[0] == b.inputs[0] and a.out_shape == b.in_shape and a.out_type == b.in_type
    pad, swg, mvau = layers[1:4]
    assert pad.padding == (1, 1, 1, 1) and pad.in_shape == (1, 32, 32, 3) and pad.out_shape == (1, 34, 34, 3)
    assert swg.kernel == (3, 3) and swg.stride == (2, 2) and swg.ifm_dim == (34, 34) and swg.ofm_dim == (16, 16)
    assert mvau.mw == 27 and mvau.mh == 16 and mvau.num_input_vectors == (16, 16)
    # conv weights (co, ci, kh, kw) -> rows (kh, kw, ci)
    W = nx.as_int(optimized.get_initializer(_node(optimized, "Conv_0").input[1]))
    sign_or_one = mvau.weights[0, :] * W[:, 0, 0, 0]  # +-w^2 per column: the column sign
    s = np.sign(sign_or_one)
    assert np.array_equal(mvau.weights, np.transpose(W, (2, 3, 1, 0)).reshape(27, 16) * np.where(s == 0, 1, s))
    vvau = layers[6]
    assert vvau.channels == 16 and vvau.kernel == (3, 3) and vvau.weights.shape == (16, 9) and layers[5].depthwise
    assert vvau.out_type.name == "INT8"
    original_acc = {l.name: l.acc_type.bits for l in layers if l.kind in ("MVAU", "VVAU")}
    assert all(2 <= b <= 32 for b in original_acc.values())
    pool = layers[-4]
    assert pool.kernel == pool.ifm_dim and pool.ofm_dim == (1, 1)


def test_small_conv_net():
    """One depthwise-separable block: FMPadding + SWG + MVAU, then
    FMPadding + SWG(depthwise) + VVAU, a pointwise MVAU, pooling, head."""
    optimized = _optimize(models.mobilenet_like(blocks=((32, 2),)), IMAGE_SPEC)
    layers = lower_to_hw(optimized)
    _check_conv_net(optimized, layers)
    report = mac_width_report(sira.analyze(optimized, None))
    # accumulators: proven ranges of the MAC outputs (or of their oriented sign Mul)
    for row in report:
        layer = next(l for l in layers if l.name == row["layer"])
        assert layer.acc_type.bits <= row["finn_width"]


@pytest.mark.slow
def test_mobilenet_like():
    start = time.time()
    optimized = _optimize(models.mobilenet_like(), IMAGE_SPEC)
    layers = lower_to_hw(optimized)
    _check_conv_net(optimized, layers)
    assert sum(l.kind == "VVAU" for l in layers) == 6 and sum(l.kind == "ConvolutionInputGenerator" for l in layers) == 7
    assert time.time() - start < 120


# -- refusals and movement ---------------------------------------------------------------


def test_output_softmax_runs_on_the_host_inner_one_is_refused():
    """A Softmax producing the model's output is a host op (no FPGA cost);
    one inside the dataflow has no hardware layer and is named."""
    tail = make_model([helper.make_node("Softmax", ["x"], ["y"], name="soft", axis=1)], {"x": [1, 4]}, {"y": [1, 4]})
    [layer] = lower_to_hw(tail, (0, 1))
    assert layer.kind == "HostOp" and layer.op == "Softmax"
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="soft", axis=1), helper.make_node("Relu", ["s"], ["y"], name="r")]
    inner = make_model(nodes, {"x": [1, 4]}, {"y": [1, 4]})
    with pytest.raises(SiraError, match=r"node 'soft' \(Softmax\): no hardware layer for Softmax"):
        lower_to_hw(inner, (0, 1))


def test_float_matmul_is_a_float_mvau():
    """A MatMul on the model's float input (no quantizer in front) becomes an
    MVAU with float input and accumulator; its cost is reported unknown."""
    from sira.cost import UNKNOWN
    from sira.estimate import layer_cost

    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")
    model = make_model([node], {"x": [1, 4]}, {"y": [1, 2]}, {"w": np.ones((4, 2), dtype=np.float32)})
    [layer] = lower_to_hw(model, (0.0, 1.0))
    assert layer.kind == "MVAU" and layer.in_type.kind == "float" and layer.acc_range is None
    assert layer_cost(layer).lut is UNKNOWN


def test_reordering_transpose_refused_free_one_accepted():
    t = helper.make_node("Transpose", ["x"], ["y"], name="tr", perm=[0, 1, 3, 2])
    model = make_model([t], {"x": [1, 2, 3, 4]}, {"y": [1, 2, 4, 3]})
    with pytest.raises(SiraError, match="reorders the channels-last stream"):
        lower_to_hw(model, {"inputs": {"x": {"int_min": 0, "int_max": 3}}})
    f = helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=1)
    model = make_model([f], {"x": [1, 5, 1, 1]}, {"y": [1, 5]})
    [layer] = lower_to_hw(model, {"inputs": {"x": {"int_min": 0, "int_max": 3}}})
    assert layer.kind == "Reshape" and layer.in_shape == (1, 1, 1, 5) and layer.out_type.name == "UINT2"


def test_add_streams_and_elementwise():
    nodes = [
        helper.make_node("Add", ["x", "z"], ["s"], name="res"),
        helper.make_node("Mul", ["s", "c"], ["y"], name="scale"),
    ]
    model = make_model(nodes, {"x": [1, 3, 2, 2], "z": [1, 3, 2, 2]}, {"y": [1, 3, 2, 2]}, {"c": np.array([1, 2, 3], dtype=np.float32).reshape(1, 3, 1, 1)})
    spec = {"inputs": {"x": {"int_min": -4, "int_max": 3}, "z": {"int_min": 0, "int_max": 7}}}
    add, mul = lower_to_hw(model, spec)
    assert add.kind == "AddStreams" and add.inputs == ("x", "z") and add.in_type.name == "INT3" and add.in_type2.name == "UINT3"
    assert add.out_type == StreamType.for_range(-4, 10) and add.in_shape == (1, 2, 2, 3)
    assert mul.kind == "Elementwise" and mul.op == "Mul" and mul.rhs_style == "const"
    assert mul.param.shape == (1, 1, 1, 3) and mul.param.dtype == np.int64 and mul.out_type == StreamType.for_range(-12, 30)
    assert channels_last((1, 3, 2, 2)) == (1, 2, 2, 3)

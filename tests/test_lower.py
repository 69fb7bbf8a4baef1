"""Lowering passes (sira/transforms/lower.py): each pass alone on small graphs,
including its edge cases, and the composite Lower on the zoo models. Every
rewrite is checked for equivalence with sira.verify_equivalent (float64
execution, random and corner inputs) and for the structure it promises."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from onnx import helper

import sira
from sira.transforms.lower import (
    BatchNormToAffine,
    DivByConstToMul,
    DuplicateForkingConstOps,
    ExtractConvBias,
    ExtractQuantScaleZeroPt,
    FoldWeightQuant,
    FusePadIntoConv,
    GemmToMatMul,
    Lower,
    SubConstToAdd,
    ends_in_quantizers,
)

from helpers import QONNX_DOMAIN, make_model, quant_node

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "sira_mlp.onnx")
EXAMPLE_SPEC = os.path.join(HERE, "..", "examples", "sira_mlp.spec.json")

rng = np.random.default_rng(7)


def ops(model) -> list[str]:
    return [n.op_type for n in model.graph.node]


def node(model, op_type):
    found = [n for n in model.graph.node if n.op_type == op_type]
    assert len(found) == 1, f"expected one {op_type}, found {len(found)}"
    return found[0]


def attr(n, name, default=None):
    return next((helper.get_attribute_value(a) for a in n.attribute if a.name == name), default)


def lowered(model, step, spec, samples=50):
    """``model`` transformed by ``step``, checked equivalent to it."""
    out = model.transform(step)
    sira.verify_equivalent(model, out, spec, samples=samples, label=type(step).__name__)
    assert [i.name for i in out.graph.input] == [i.name for i in model.graph.input]
    assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
    return out


def quant_input(shape, scale=0.25, bits=4, signed=1, name="x"):
    """Nodes and initializers of an input quantizer ``name -> name_q``."""
    return [quant_node(name, f"{name}_s", f"{name}_z", f"{name}_b", f"{name}_q", signed=signed)], {
        f"{name}_s": np.float32(scale),
        f"{name}_z": np.float32(0),
        f"{name}_b": np.float32(bits),
    }


def weight_quant(name, w, scale, zeropt=0.0, bits=4):
    """A Quant of the constant ``w`` writing ``name``."""
    return [quant_node(f"{name}_f", f"{name}_s", f"{name}_z", f"{name}_b", name, narrow=1)], {
        f"{name}_f": np.asarray(w, np.float32),
        f"{name}_s": np.asarray(scale, np.float32),
        f"{name}_z": np.asarray(zeropt, np.float32),
        f"{name}_b": np.float32(bits),
    }


def output_quant(inp, out="y", scale=0.125, bits=6):
    return [quant_node(inp, "yo_s", "yo_z", "yo_b", out)], {"yo_s": np.float32(scale), "yo_z": np.float32(0), "yo_b": np.float32(bits)}


SPEC = (-2.0, 2.0)


# --------------------------------------------------------------------------
# BatchNormToAffine
# --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 3, 3)])
def test_batchnorm_per_channel_negative_gamma(shape):
    c = shape[1]
    qn, qi = quant_input(shape)
    on, oi = output_quant("bn")
    inits = {
        "gamma": np.array([1.5, -0.75, 0.3, -2.0], np.float32)[:c],
        "beta": np.array([0.1, -0.2, 0.0, 0.7], np.float32)[:c],
        "mean": np.array([0.05, 0.4, -0.3, 0.0], np.float32)[:c],
        "var": np.array([0.9, 1.7, 0.2, 3.0], np.float32)[:c],
        **qi,
        **oi,
    }
    bn = helper.make_node("BatchNormalization", ["x_q", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3)
    # before a quantizer the BN stays (the threshold pass takes its exact semantics) ...
    before_quant = lowered(make_model(qn + [bn] + on, {"x": shape}, {"y": shape}, inits), BatchNormToAffine(), SPEC)
    assert "BatchNormalization" in ops(before_quant)
    # ... on a float output it becomes Mul and Add
    m = make_model(qn + [bn], {"x": shape}, {"bn": shape}, inits)
    out = lowered(m, BatchNormToAffine(), SPEC)
    assert "BatchNormalization" not in ops(out)
    mul, add = node(out, "Mul"), node(out, "Add")
    channel = (1, c) + (1,) * (len(shape) - 2)
    a, b = out.get_initializer(mul.input[1]), out.get_initializer(add.input[1])
    assert a.shape == channel and b.shape == channel
    assert a.reshape(-1)[1] < 0  # negative gamma gives a negative factor
    assert add.output[0] == "bn" and add.input[0] == mul.output[0]


# --------------------------------------------------------------------------
# GemmToMatMul
# --------------------------------------------------------------------------


def test_gemm_transb_bias_alpha_beta():
    qn, qi = quant_input((2, 6))
    w = rng.integers(-7, 8, size=(5, 6)) * 0.5
    wn, wi = weight_quant("W", w, np.linspace(0.25, 1.0, 5).reshape(5, 1))
    gemm = helper.make_node("Gemm", ["x_q", "W", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)
    m = make_model(qn + wn + [gemm], {"x": (2, 6)}, {"y": (2, 5)}, {**qi, **wi, "C": np.linspace(-1, 1, 5).astype(np.float32)})
    out = lowered(m, GemmToMatMul(), SPEC)
    assert "Gemm" not in ops(out) and "Transpose" not in ops(out)
    mm = node(out, "MatMul")
    assert out.get_tensor_shape(mm.input[1]) == [6, 5]
    wq = next(n for n in out.graph.node if n.output[0] == mm.input[1])
    assert wq.op_type == "Quant" and out.get_initializer(wq.input[1]).shape == (1, 5)  # scale transposed with the weights
    assert sorted(ops(out)) == sorted(["Quant", "Quant", "MatMul", "Mul", "Mul", "Add"])


def test_gemm_transa_constant_b_no_c():
    qn, qi = quant_input((6, 2))
    gemm = helper.make_node("Gemm", ["x_q", "B"], ["g"], transA=1, transB=1, alpha=0.3)
    on, oi = output_quant("g")
    b = (rng.integers(-3, 4, size=(4, 6)) * 0.25).astype(np.float32)
    m = make_model(qn + [gemm] + on, {"x": (6, 2)}, {"y": (2, 4)}, {**qi, **oi, "B": b})
    out = lowered(m, GemmToMatMul(), SPEC)
    assert "Gemm" not in ops(out) and "Add" not in ops(out)
    transpose = node(out, "Transpose")
    mm = node(out, "MatMul")
    assert mm.input[0] == transpose.output[0]
    np.testing.assert_array_equal(out.get_initializer(mm.input[1]), b.T)


# --------------------------------------------------------------------------
# DivByConstToMul, SubConstToAdd
# --------------------------------------------------------------------------


@pytest.mark.parametrize("divisor, becomes_mul", [(4.0, True), (0.125, True), (-2.0, True), (3.0, False), (0.1, False)])
def test_div_by_constant(divisor, becomes_mul):
    qn, qi = quant_input((1, 8), scale=0.1, bits=8)
    on, oi = output_quant("d", scale=0.03, bits=8)
    div = helper.make_node("Div", ["x_q", "c"], ["d"])
    m = make_model(qn + [div] + on, {"x": (1, 8)}, {"y": (1, 8)}, {**qi, **oi, "c": np.float32(divisor)})
    out = lowered(m, DivByConstToMul(), SPEC)
    assert ("Div" in ops(out)) != becomes_mul
    if becomes_mul:
        assert out.get_initializer(node(out, "Mul").input[1]) == np.float32(1 / divisor)


def test_sub_constant_becomes_add_and_shared_constant_kept():
    c = np.array([0.5, -0.25, 1.0, 0.0], np.float32)
    qn, qi = quant_input((1, 4))
    nodes = qn + [helper.make_node("Sub", ["x_q", "c"], ["s"]), helper.make_node("Mul", ["s", "c"], ["y"])]
    m = make_model(nodes, {"x": (1, 4)}, {"y": (1, 4)}, {**qi, "c": c})
    out = lowered(m, SubConstToAdd(), SPEC)
    assert "Sub" not in ops(out)
    np.testing.assert_array_equal(out.get_initializer(node(out, "Add").input[1]), -c)
    np.testing.assert_array_equal(out.get_initializer(node(out, "Mul").input[1]), c)


def test_constant_minus_tensor_stays_sub():
    qn, qi = quant_input((1, 4))
    m = make_model(qn + [helper.make_node("Sub", ["c", "x_q"], ["y"])], {"x": (1, 4)}, {"y": (1, 4)}, {**qi, "c": np.float32(1)})
    assert ops(lowered(m, SubConstToAdd(), SPEC)) == ["Quant", "Sub"]


# --------------------------------------------------------------------------
# FusePadIntoConv, ExtractConvBias
# --------------------------------------------------------------------------


def _pad_conv(pads, value=None, opset=13, extra_reader=False, conv_pads=(1, 0, 1, 0)):
    """Quant(x) -> Pad -> Conv(W) -> Quant, with ``pads`` over NCHW."""
    qn, qi = quant_input((1, 2, 5, 5))
    wn, wi = weight_quant("W", rng.integers(-7, 8, size=(3, 2, 3, 3)) * 0.5, 0.5)
    on, oi = output_quant("c", scale=0.5, bits=8)
    inits = {**qi, **wi, **oi}
    if opset >= 11:
        inits["pads"] = np.asarray(pads, np.int64)
        pad_inputs = ["x_q", "pads"]
        if value is not None:
            inits["pad_value"] = np.float32(value)
            pad_inputs.append("pad_value")
        pad = helper.make_node("Pad", pad_inputs, ["p"], mode="constant")
    else:
        pad = helper.make_node("Pad", ["x_q"], ["p"], mode="constant", pads=list(pads), value=float(value or 0.0))
    conv = helper.make_node("Conv", ["p", "W"], ["c"], kernel_shape=[3, 3], pads=list(conv_pads))
    nodes = qn + wn + [pad, conv] + on
    outputs = {"y": None}
    if extra_reader:
        nodes.append(helper.make_node("Relu", ["p"], ["r"]))
        outputs["r"] = None
    return make_model(nodes, {"x": (1, 2, 5, 5)}, outputs, inits, opset=opset)


@pytest.mark.parametrize("opset", [9, 13])
def test_zero_pad_fused_into_conv(opset):
    m = _pad_conv([0, 0, 1, 2, 0, 0, 2, 1], opset=opset)
    out = lowered(m, FusePadIntoConv(), SPEC)
    assert "Pad" not in ops(out)
    conv = node(out, "Conv")
    assert conv.input[0] == "x_q"
    assert list(attr(conv, "pads")) == [2, 2, 3, 1]


@pytest.mark.parametrize(
    "pads, value, extra_reader",
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], 1.0, False),  # non-zero padding value
        ([1, 0, 1, 1, 0, 0, 1, 1], 0.0, False),  # pads the batch axis
        ([0, 0, 1, -1, 0, 0, 1, 1], 0.0, False),  # negative pad crops
        ([0, 0, 1, 1, 0, 0, 1, 1], 0.0, True),  # the padded tensor is also read elsewhere
    ],
)
def test_pad_not_fused(pads, value, extra_reader):
    m = _pad_conv(pads, value, extra_reader=extra_reader)
    out = lowered(m, FusePadIntoConv(), SPEC, samples=10)
    assert "Pad" in ops(out)
    assert list(attr(node(out, "Conv"), "pads")) == [1, 0, 1, 0]


def test_conv_bias_initializer_extracted():
    qn, qi = quant_input((1, 2, 4, 4))
    wn, wi = weight_quant("W", rng.integers(-7, 8, size=(3, 2, 3, 3)) * 0.25, 0.25)
    conv = helper.make_node("Conv", ["x_q", "W", "B"], ["y"], kernel_shape=[3, 3])
    m = make_model(qn + wn + [conv], {"x": (1, 2, 4, 4)}, {"y": None}, {**qi, **wi, "B": np.array([0.5, -1.25, 2.0], np.float32)})
    out = lowered(m, ExtractConvBias(), SPEC)
    conv = node(out, "Conv")
    assert len(conv.input) == 2
    add = node(out, "Add")
    assert add.input[0] == conv.output[0] and add.output[0] == "y"
    assert out.get_initializer(add.input[1]).shape == (1, 3, 1, 1)


def test_conv_quantized_bias_extracted():
    qn, qi = quant_input((1, 2, 4, 4))
    wn, wi = weight_quant("W", rng.integers(-7, 8, size=(3, 2, 3, 3)) * 0.25, 0.25)
    bn, bi = weight_quant("B", [0.5, -1.25, 2.0], [0.25, 0.5, 0.125], bits=8)
    conv = helper.make_node("Conv", ["x_q", "W", "B"], ["y"], kernel_shape=[3, 3])
    m = make_model(qn + wn + bn + [conv], {"x": (1, 2, 4, 4)}, {"y": None}, {**qi, **wi, **bi})
    out = lowered(m, ExtractConvBias(), SPEC)
    add = node(out, "Add")
    bias_quant = next(n for n in out.graph.node if n.output[0] == add.input[1])
    assert bias_quant.op_type == "Quant"
    assert out.get_initializer(bias_quant.input[0]).shape == (1, 3, 1, 1)
    assert out.get_initializer(bias_quant.input[1]).shape == (1, 3, 1, 1)


# --------------------------------------------------------------------------
# FoldWeightQuant
# --------------------------------------------------------------------------


def _is_integer_initializer(model, name):
    w = model.get_initializer(name)
    return w is not None and np.all(w == np.round(w))


def test_matmul_weights_per_channel_with_zero_point():
    qn, qi = quant_input((2, 6), signed=0)
    w = rng.normal(size=(6, 4))
    wn, wi = weight_quant("W", w, np.array([[0.3, 0.1, 0.7, 0.05]]), zeropt=np.array([1.0, -2.0, 0.0, 3.0]))
    on, oi = output_quant("m", scale=0.05, bits=8)
    m = make_model(qn + wn + [helper.make_node("MatMul", ["x_q", "W"], ["m"])] + on, {"x": (2, 6)}, {"y": None}, {**qi, **wi, **oi})
    out = lowered(m, FoldWeightQuant(), SPEC)
    mm = node(out, "MatMul")
    assert _is_integer_initializer(out, mm.input[1])
    assert ops(out).count("Quant") == 2  # input and output quantizers; the weight quantizer is gone
    scale = next(n for n in out.graph.node if n.op_type == "Mul" and n.input[0] == mm.output[0])
    assert scale.output[0] == "m"
    np.testing.assert_array_equal(out.get_initializer(scale.input[1]), np.float32([0.3, 0.1, 0.7, 0.05]))


def test_conv_weights_per_output_channel_and_bipolar():
    qn, qi = quant_input((1, 2, 4, 4))
    wn, wi = weight_quant("W", rng.normal(size=(3, 2, 3, 3)), np.array([0.5, 0.25, 0.125]).reshape(3, 1, 1, 1))
    bip = helper.make_node("BipolarQuant", ["V_f", "V_s"], ["V"], domain=QONNX_DOMAIN)
    nodes = qn + wn + [bip, helper.make_node("Conv", ["x_q", "W"], ["c"], kernel_shape=[3, 3]), helper.make_node("MatMul", ["c", "V"], ["y"])]
    inits = {**qi, **wi, "V_f": rng.normal(size=(2, 5)).astype(np.float32), "V_s": np.float32(0.75)}
    m = make_model(nodes, {"x": (1, 2, 4, 4)}, {"y": None}, inits)
    out = lowered(m, FoldWeightQuant(), SPEC)
    assert "BipolarQuant" not in ops(out)
    for mac in ("Conv", "MatMul"):
        assert _is_integer_initializer(out, node(out, mac).input[1])
    v = out.get_initializer(node(out, "MatMul").input[1])
    assert set(np.unique(v)) <= {-1.0, 1.0}
    conv_scale = next(n for n in out.graph.node if n.op_type == "Mul" and n.output[0] == "c")
    assert out.get_initializer(conv_scale.input[1]).shape == (1, 3, 1, 1)


def test_weight_scale_along_input_axis_stays_before_matmul():
    qn, qi = quant_input((2, 3))
    wn, wi = weight_quant("W", rng.normal(size=(3, 4)), np.array([[0.5], [0.25], [0.1]]))
    m = make_model(qn + wn + [helper.make_node("MatMul", ["x_q", "W"], ["y"])], {"x": (2, 3)}, {"y": None}, {**qi, **wi})
    out = lowered(m, FoldWeightQuant(), SPEC)
    dequant = next(n for n in out.graph.node if n.output[0] == "W")
    assert dequant.op_type == "Mul" and _is_integer_initializer(out, dequant.input[0])
    assert node(out, "MatMul").input[1] == "W"


@pytest.mark.parametrize("scale, plain", [(0.125, True), (0.1, False)])
def test_quantized_bias_becomes_plain_constant_when_exact(scale, plain):
    qn, qi = quant_input((1, 4))
    bn, bi = weight_quant("B", [0.3, -0.8, 0.45, 0.0], scale, bits=8)
    m = make_model(qn + bn + [helper.make_node("Add", ["x_q", "B"], ["y"])], {"x": (1, 4)}, {"y": None}, {**qi, **bi})
    out = lowered(m, FoldWeightQuant(), SPEC)
    add = node(out, "Add")
    assert (out.get_initializer(add.input[1]) is not None) == plain
    assert ("Mul" in ops(out)) != plain


# --------------------------------------------------------------------------
# ExtractQuantScaleZeroPt
# --------------------------------------------------------------------------


def _activation_quantizers_are_unit(model):
    constant = {i.name for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type in ("Quant", "IntQuant", "BipolarQuant", "Trunc") and n.input[0] not in constant:
            if n.op_type == "Trunc" and len(n.input) >= 6:
                # unit form of Trunc v2: scale 1/t, output scale 1, so it outputs its integer level
                s, o = model.get_initializer(n.input[1]), model.get_initializer(n.input[4])
                assert np.all(o == 1) and np.all(np.log2(s) == np.round(np.log2(s))), n.name
            else:
                assert np.all(model.get_initializer(n.input[1]) == 1), n.name
            if n.op_type != "BipolarQuant":
                assert np.all(model.get_initializer(n.input[2]) == 0), n.name


def test_activation_quant_scale_and_zero_point_extracted():
    nodes = [quant_node("x", "s", "z", "b", "q", signed=0)]
    on, oi = output_quant("q", scale=0.3, bits=3)
    wn, wi = weight_quant("W", rng.normal(size=(4, 4)), 0.1)
    nodes += on + wn + [helper.make_node("MatMul", ["y", "W"], ["out"])]
    inits = {"s": np.array([[0.1, 0.3, 0.07, 0.5]], np.float32), "z": np.float32(3), "b": np.float32(4), **oi, **wi}
    m = make_model(nodes, {"x": (2, 4)}, {"out": None}, inits)
    out = lowered(m, ExtractQuantScaleZeroPt(), SPEC, samples=100)
    _activation_quantizers_are_unit(out)
    assert ops(out).count("Div") == 2  # one per activation quantizer; exact, unlike Mul(1/s)
    weight_q = next(n for n in out.graph.node if n.output[0] == "W")
    assert out.get_initializer(weight_q.input[1]) == np.float32(0.1)  # weights are FoldWeightQuant's business
    assert [o.name for o in out.graph.output] == ["out"]


def test_bipolar_activation_scale_extracted():
    bip = helper.make_node("BipolarQuant", ["x", "s"], ["y"], domain=QONNX_DOMAIN)
    m = make_model([bip], {"x": (1, 5)}, {"y": None}, {"s": np.float32(0.375)})
    out = lowered(m, ExtractQuantScaleZeroPt(), SPEC)
    _activation_quantizers_are_unit(out)
    assert ops(out) == ["BipolarQuant", "Mul"]


def _trunc_model(version):
    qn, qi = quant_input((1, 6), scale=0.375, bits=8)
    inits = {**qi, "ts": np.float32(0.375), "tz": np.float32(2), "ib": np.float32(8), "ob": np.float32(4)}
    if version == 1:
        trunc = helper.make_node("Trunc", ["x_q", "ts", "tz", "ib", "ob"], ["y"], domain=QONNX_DOMAIN, rounding_mode="FLOOR")
    else:
        inits["os"] = np.float32(0.375 * 8)
        trunc = helper.make_node("Trunc", ["x_q", "ts", "tz", "ib", "os", "ob"], ["y"], domain=QONNX_DOMAIN, rounding_mode="FLOOR", signed=1)
    m = make_model(qn + [trunc], {"x": (1, 6)}, {"y": None}, inits)
    if version == 2:
        next(o for o in m.model.opset_import if o.domain == QONNX_DOMAIN).version = 2
    return m


@pytest.mark.parametrize("version", [1, 2])
def test_trunc_scale_extracted(version):
    m = _trunc_model(version)
    out = lowered(m, ExtractQuantScaleZeroPt(), (-60.0, 60.0), samples=100)
    _activation_quantizers_are_unit(out)
    trunc = node(out, "Trunc")
    if version == 2:
        # truncation by 2**3 kept, in unit form: scale 1/8 and output scale 1
        assert out.get_initializer(trunc.input[1]) == np.float32(1 / 8) and out.get_initializer(trunc.input[4]) == np.float32(1)
        r = sira.analyze(out, (-60.0, 60.0))
        assert r[trunc.output[0]].is_scaled_int and r[trunc.output[0]].scale.ravel()[0] == 1  # its output is the integer level


# --------------------------------------------------------------------------
# DuplicateForkingConstOps
# --------------------------------------------------------------------------


def test_forking_mul_add_chain_duplicated():
    qn, qi = quant_input((1, 4))
    nodes = qn + [
        helper.make_node("Mul", ["x_q", "k"], ["m"]),
        helper.make_node("Add", ["m", "c"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Neg", ["a"], ["n"]),
        helper.make_node("Mul", ["n", "k"], ["y2"]),  # k also used here
    ]
    inits = {**qi, "k": np.array([0.5, -1.5, 2.0, 0.75], np.float32), "c": np.float32(0.25)}
    m = make_model(nodes, {"x": (1, 4)}, {"r": None, "y2": None, "a": None}, inits)
    out = lowered(m, DuplicateForkingConstOps(), SPEC)
    assert ops(out).count("Add") == 3 and ops(out).count("Mul") == 4  # the chain once per reader of 'a' (2 nodes + graph output)
    readers: dict[str, int] = {}
    for n in out.graph.node:
        for t in n.input:
            readers[t] = readers.get(t, 0) + 1
    for n in out.graph.node:
        if n.op_type in ("Mul", "Add"):
            assert readers.get(n.output[0], 0) + (n.output[0] in {"r", "y2", "a"}) <= 1, n.name
    for init in out.graph.initializer:
        assert readers.get(init.name, 0) <= 1, init.name
    assert {o for n in out.graph.node for o in n.output} >= {"m", "m_1", "m_2", "a", "a_1", "a_2"}  # readable copies


# --------------------------------------------------------------------------
# Lower
# --------------------------------------------------------------------------


def check_lowered(model, lowered_model, spec, samples=100):
    """Everything Lower promises (see sira.transforms.lower)."""
    sira.verify_equivalent(model, lowered_model, spec, samples=samples, label="Lower")
    assert [i.name for i in lowered_model.graph.input] == [i.name for i in model.graph.input]
    assert [o.name for o in lowered_model.graph.output] == [o.name for o in model.graph.output]
    present = set(ops(lowered_model))
    assert not present & {"Gemm", "Pad"}, present
    for bn in (n for n in lowered_model.graph.node if n.op_type == "BatchNormalization"):
        assert ends_in_quantizers(lowered_model, bn.output[0]), f"{bn.name} stays a BatchNormalization but feeds no quantizer chain"
    _activation_quantizers_are_unit(lowered_model)
    readers: dict[str, int] = {}
    for n in lowered_model.graph.node:
        for t in n.input:
            readers[t] = readers.get(t, 0) + 1
        if n.op_type == "Div":
            c = lowered_model.get_initializer(n.input[1])
            assert c is None or not np.all(np.frexp(c)[0] == 0.5), f"{n.name}: division by a power of two left"
        if n.op_type in ("MatMul", "Conv"):
            assert _is_integer_initializer(lowered_model, n.input[1]), f"{n.name}: weights are not an integer initializer"
            assert len(n.input) == 2, f"{n.name}: bias input left"
    for init in lowered_model.graph.initializer:
        assert readers.get(init.name, 0) <= 1, f"initializer {init.name} shared"
    report = sira.analyze(lowered_model, spec)
    tensors = {t for n in lowered_model.graph.node for t in list(n.input) + list(n.output) if t}
    assert tensors <= set(report), sorted(tensors - set(report))
    assert not report.fallbacks, [str(w) for w in report.fallbacks]


#: random samples for the models of the zoo: a quick tier and the full check
#: (each sample executes both models node by node)
ZOO_SAMPLES = [pytest.param(10, id="quick"), pytest.param(100, id="100-samples", marks=pytest.mark.slow)]


@pytest.mark.parametrize("samples", ZOO_SAMPLES)
def test_lower_zoo(zoo_model, samples):
    name, path, spec = zoo_model
    model = sira.load(path)
    check_lowered(model, model.transform(Lower()), spec, samples)


@pytest.mark.parametrize("samples", ZOO_SAMPLES)
def test_lower_example_mlp(samples):
    model = sira.load(EXAMPLE)
    with open(EXAMPLE_SPEC) as f:
        spec = json.load(f)
    check_lowered(model, model.transform(Lower()), spec, samples)


def test_lower_conv_layer():
    """Quant -> Pad -> Conv(quantized W, quantized bias) -> BN -> Relu -> Quant."""
    qn, qi = quant_input((1, 2, 5, 5))
    wn, wi = weight_quant("W", rng.normal(size=(3, 2, 3, 3)), np.array([0.5, 0.25, 0.125]).reshape(3, 1, 1, 1))
    bn, bi = weight_quant("B", [0.5, -0.25, 1.0], 0.125, bits=8)
    on, oi = output_quant("r", scale=0.5, bits=4)
    params = {k: np.asarray(v, np.float32) for k, v in {"g": [1.2, -0.4, 0.8], "be": [0.1, 0.2, -0.3], "mu": [0.0, 1.0, -1.0], "va": [1.0, 0.5, 2.0]}.items()}
    nodes = qn + wn + bn + [
        helper.make_node("Pad", ["x_q", "pads"], ["p"]),
        helper.make_node("Conv", ["p", "W", "B"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c", "g", "be", "mu", "va"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
    ] + on
    inits = {**qi, **wi, **bi, **oi, **params, "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    model = make_model(nodes, {"x": (1, 2, 5, 5)}, {"y": None}, inits)
    check_lowered(model, model.transform(Lower()), SPEC)


def test_global_average_pool_becomes_integer_sum_and_div():
    from sira.transforms.lower import GlobalAveragePoolToSum

    inits = {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4)}
    nodes = [quant_node("x", "s", "z", "b", "q", signed=0), helper.make_node("GlobalAveragePool", ["q"], ["y"])]
    m = sira.load(make_model(nodes, {"x": [1, 3, 5, 5]}, {"y": [1, 3, 1, 1]}, inits))
    out = m.transform(GlobalAveragePoolToSum())
    ops = [n.op_type for n in out.graph.node]
    assert "GlobalAveragePool" not in ops and "ReduceSum" in ops and "Div" in ops
    sira.verify_equivalent(m, out, (0.0, 8.0), samples=100, label="GlobalAveragePoolToSum")
    r = sira.analyze(out, (0.0, 8.0))
    total = [n.output[0] for n in out.graph.node if n.op_type == "ReduceSum"][0]
    assert r[total].is_scaled_int and r[total].int_bounds() == (0, 25 * 15)


@pytest.mark.parametrize(
    "attrs, converted",
    [
        ({"kernel_shape": [2, 2], "strides": [2, 2]}, True),
        ({"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1], "count_include_pad": 1}, True),
        ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, False),  # border windows divide by fewer cells
    ],
)
def test_average_pool_becomes_depthwise_sum_and_div(attrs, converted):
    from sira.transforms.lower import AveragePoolToSum

    inits = {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4)}
    nodes = [quant_node("x", "s", "z", "b", "q", signed=0), helper.make_node("AveragePool", ["q"], ["y"], **attrs)]
    m = sira.load(make_model(nodes, {"x": [1, 3, 6, 6]}, {"y": None}, inits))
    out = m.transform(AveragePoolToSum())
    kinds = [n.op_type for n in out.graph.node]
    assert ("AveragePool" not in kinds) == converted, kinds
    sira.verify_equivalent(m, out, (0.0, 8.0), samples=100, label="AveragePoolToSum")
    if converted:
        conv = node(out, "Conv")
        assert attr(conv, "group") == 3 and np.all(out.get_initializer(conv.input[1]) == 1)
        r = sira.analyze(out, (0.0, 8.0))
        assert r[conv.output[0]].is_scaled_int and r[conv.output[0]].int_bounds()[0] == 0


@pytest.mark.parametrize("keepdims", [1, 0])
def test_reduce_mean_over_spatial_axes_becomes_sum_and_div(keepdims):
    from sira.transforms.lower import GlobalAveragePoolToSum

    inits = {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4), "axes": np.array([2], np.int64)}
    nodes = [quant_node("x", "s", "z", "b", "q", signed=0), helper.make_node("ReduceMean", ["q", "axes"], ["y"], keepdims=keepdims)]
    m = sira.load(make_model(nodes, {"x": [1, 3, 7]}, {"y": None}, inits, opset=18))
    out = m.transform(GlobalAveragePoolToSum())
    kinds = [n.op_type for n in out.graph.node]
    assert "ReduceMean" not in kinds and "ReduceSum" in kinds and "Div" in kinds
    sira.verify_equivalent(m, out, (0.0, 8.0), samples=100, label="GlobalAveragePoolToSum")

"""The op-trait table (sira.ops): every op sira has a rule for is in it, the
traits are consistent with each other, and the modules that ask the table
agree on what a MAC or a quantizer is."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from onnx import helper
from qonnx.transformation.fold_constants import FoldConstants

from sira import hw, model
from sira.explain import mac as explain_mac
from sira.htmlreport import tables as report_tables
from sira.analysis import analyze
from sira.errors import SiraError
from sira.ops import KINDS, OP_TRAITS, Trait, has_trait, is_mac, is_quantizer, is_requantizer, ops_with, traits
from sira.rules import RULES
from sira.verification import _first_mac_weights
from tests.helpers import make_model, quant_node
from sira.transforms import lower, to_hw, widths
from sira.transforms.aggregate import find_targets


def test_every_op_with_a_rule_has_a_kind():
    missing = sorted(op for op in RULES if not traits(op) & KINDS)
    assert not missing, f"ops with a rule but no kind in sira.ops.OP_TRAITS: {missing}"


def test_every_op_in_the_table_has_a_kind():
    assert all(own & KINDS for own in OP_TRAITS.values())


def test_queries():
    assert is_mac("Conv") and not is_mac("Relu")
    assert has_trait("Quant", Trait.QUANTIZER | Trait.REQUANTIZER)
    assert not has_trait("DequantizeLinear", Trait.QUANTIZER | Trait.REQUANTIZER)
    assert traits("NoSuchOp") == Trait(0) and not is_quantizer("NoSuchOp")
    assert ops_with(Trait.INT_QUANTIZER) == {"Quant", "IntQuant"}


def test_mac_includes_conv_transpose_everywhere():
    """A ConvTranspose is a MAC for explain as for the html report and
    aggregation: explain's walk back along a chain stops at it."""
    assert ops_with(Trait.MAC) == {"MatMul", "Gemm", "Conv", "ConvTranspose"}
    assert explain_mac.MAC_OPS == report_tables.MAC_OPS == ops_with(Trait.MAC)
    assert widths._LAID_OUT_MACS < ops_with(Trait.MAC)


def test_quantizer_sets_nest():
    """Every chain-ending quantizer marks a quantized model and ends
    aggregation targets; every scaled quantizer ends a chain."""
    requantizers = ops_with(Trait.REQUANTIZER)
    assert requantizers <= model.QUANTIZER_OPS
    assert requantizers <= ops_with(Trait.NONLINEAR)
    assert ops_with(Trait.INT_QUANTIZER) <= ops_with(Trait.REAL_QUANTIZER) <= lower.QUANTIZERS <= requantizers
    assert lower.REAL_QUANTIZERS == {"Quant", "IntQuant", "BipolarQuant"}
    assert lower.QUANTIZERS == {"Quant", "IntQuant", "BipolarQuant", "Trunc"}


@pytest.mark.parametrize(
    "op, ends_chain",
    [("Quant", True), ("IntQuant", True), ("BipolarQuant", True), ("Trunc", True), ("MultiThreshold", True),
     ("QuantizeLinear", True), ("DequantizeLinear", False), ("FloatQuant", False)],
)  # fmt: skip
def test_which_quantizers_end_an_integer_chain(op, ends_chain):
    """QuantizeLinear rounds onto a fresh integer grid like Quant;
    DequantizeLinear is affine in its integer input and
    FloatQuant's grid is not an integer one, yet both mark a quantized model."""
    assert is_requantizer(op) == ends_chain
    assert is_quantizer(op)


def test_aggregation_targets_end_at_a_quantize_linear():
    """The scale of a layer read by a QuantizeLinear is gathered before it,
    as before a Quant; its int8 output is not a target."""
    w = np.array([[1, -2], [3, 1], [0, 2], [-1, 1]], dtype=np.float32)
    nodes = [
        quant_node("x", "s", "z", "b", "xq"),
        helper.make_node("MatMul", ["xq", "W"], ["acc"]),
        helper.make_node("Mul", ["acc", "c"], ["m"]),
        helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"]),
    ]
    consts = {"s": np.float32(0.5), "z": np.float32(0), "b": np.float32(4), "W": w, "c": np.float32(0.25), "ys": np.float32(0.125), "yz": np.int8(0)}
    report = analyze(make_model(nodes, {"x": [1, 4]}, {"y": [1, 2]}, consts), (-4.0, 4.0))
    assert find_targets(report.model, report) == ["m"]


def test_qonnx_lists_are_reproduced():
    """Loading reproduces qonnx's cleanup: its own lists must be the table's."""
    assert set(inspect.signature(FoldConstants.__init__).parameters["exclude_op_types"].default) <= model.UNFOLDED_OPS
    assert model.UNFOLDED_OPS == {"Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear", "IntQuant", "Trunc"}
    assert model.QONNX_DOMAIN_OPS == {"Quant", "Trunc", "BipolarQuant"}
    assert model.COMMUTATIVE_OPS == {"Add", "Mul", "And", "Or", "Xor", "Sum"}
    assert ops_with(Trait.TRANSPOSE_FOLDS_INTO) == {"Quant", "BipolarQuant"}


def test_layout_and_value_traits_nest():
    assert ops_with(Trait.FLAT_ORDER) < ops_with(Trait.LAYOUT) <= ops_with(Trait.MOVEMENT)
    assert ops_with(Trait.KEEPS_INTEGERS) <= ops_with(Trait.MOVEMENT) | ops_with(Trait.POOLING) | ops_with(Trait.ELEMENTWISE)
    assert ops_with(Trait.AFFINE) <= ops_with(Trait.ELEMENTWISE)
    assert not ops_with(Trait.AFFINE) & ops_with(Trait.NONLINEAR)
    assert not ops_with(Trait.MAC) & (ops_with(Trait.ELEMENTWISE) | ops_with(Trait.MOVEMENT) | ops_with(Trait.POOLING))
    assert ops_with(Trait.HOST) <= ops_with(Trait.ALONG_AXIS)


def test_first_mac_is_found_through_elementwise_ops_and_reshapes():
    """The corner inputs that drive one output channel find the first MatMul
    through any elementwise op or order-keeping reshape, not a Transpose."""
    w = np.array([[1.0, -1.0, 2.0], [0.5, 1.0, -1.0], [-2.0, 1.0, 1.0], [1.0, 1.0, 1.0]], dtype=np.float32)

    def first_mac_weights(op):
        nodes = [helper.make_node(op, ["x"], ["h"]), helper.make_node("MatMul", ["h", "W"], ["y"])]
        m = make_model(nodes, {"x": [1, 4]}, {"y": [1, 3]}, {"W": w})
        return _first_mac_weights(analyze(m, (-1.0, 1.0)), "x")

    assert np.array_equal(first_mac_weights("Sigmoid"), w)
    assert np.array_equal(first_mac_weights("Identity"), w)
    assert not has_trait("Transpose", Trait.FLAT_ORDER) and not has_trait("Transpose", Trait.ELEMENTWISE)


def test_every_hardware_lowering_is_of_a_known_op():
    assert all(traits(op) for op in to_hw.LOWERINGS)
    assert ops_with(Trait.LAYOUT) | ops_with(Trait.HOST) <= set(to_hw.LOWERINGS)
    assert {"MatMul", "Conv"} <= ops_with(Trait.MAC) & set(to_hw.LOWERINGS)


def test_binary_ops_lower_to_elementwise_ops_the_layer_accepts():
    binary = {op for op, fn in to_hw.LOWERINGS.items() if fn is to_hw._Lowering.lower_binary}
    assert binary <= ops_with(Trait.ELEMENTWISE) and binary <= set(hw.ELEMENTWISE_OPS)


def test_a_second_lowering_for_an_op_is_refused():
    with pytest.raises(ValueError, match="duplicate hardware lowering for Relu"):
        to_hw.lowering("Relu")(lambda self, node: None)


def test_an_op_without_lowering_names_what_is_supported():
    m = make_model([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], {"x": [1, 4]}, {"y": [1, 4]})
    with pytest.raises(SiraError, match=r"node 'sig' \(Sigmoid\): no hardware layer for Sigmoid; supported: .*MatMul.*Reshape"):
        to_hw.lower_to_hw(m, (-1.0, 1.0))

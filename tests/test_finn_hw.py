"""FINN's hardware graphs without FINN: stream ranges proven on a
hand-built FINN graph equal brute force over every input, the widths
written into its nodes are the proven ones and change no output, the
estimate reads FINN's nodes in both modes and names a node it cannot cost;
and the forms FINN's conversions expect keep an optimized model's values."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx

from sira.errors import SiraError
from sira.model import reinfer_shapes
from sira.numerics import narrowest_int_type
from sira.estimate import estimate
from sira.finn_hw import ApplyWidths, StreamRange, mvau_acc_range, outside, stream_ranges
from sira.transforms.finn_form import finn_form, split_out_scale

HLS = "finn.custom_op.fpgadataflow.hls"

#: thresholds of the input Thresholding (4 channels, 3 steps): channel 0 can
#: never pass one (UINT4 inputs stop at 15), channel 1 always passes two
T_IN = np.array([[20, 30, 40], [-5, -1, 9], [1, 2, 3], [4, 8, 12]], dtype=np.float32)
W1 = np.array([[3, -2, 1], [1, 1, -3], [-2, 3, 2], [1, -1, 1]], dtype=np.float32)
T1 = np.array([[-100, 0, 100], [-3, 0, 3], [2, 4, 60]], dtype=np.float32)
W2 = np.array([[1, -1], [2, 1], [-1, 3]], dtype=np.float32)


def _node(op, ins, outs, name, **attrs):
    return helper.make_node(op, ins, outs, name=name, domain=HLS, backend="fpgadataflow", **attrs)


def finn_graph() -> ModelWrapper:
    """UINT4 input -> Thresholding (UINT2) -> MVAU with thresholds (UINT2) ->
    MVAU without activation: FINN's node attributes, FINN's datatypes."""
    nodes = [
        _node("Thresholding_rtl", ["x", "t_in"], ["a"], "Thresholding_rtl_0", NumChannels=4, PE=1, numSteps=3, inputDataType="UINT4",
              weightDataType="INT8", outputDataType="UINT2", numInputVectors=[1], ActVal=0),
        _node("MVAU_hls", ["a", "w1", "t1"], ["b"], "MVAU_hls_0", MW=4, MH=3, SIMD=1, PE=1, inputDataType="UINT2", weightDataType="INT3",
              outputDataType="UINT2", accDataType="INT16", ActVal=0, binaryXnorMode=0, noActivation=0, numInputVectors=[1]),
        _node("MVAU_hls", ["b", "w2"], ["y"], "MVAU_hls_1", MW=3, MH=2, SIMD=1, PE=1, inputDataType="UINT2", weightDataType="INT3",
              outputDataType="INT16", accDataType="INT16", ActVal=0, binaryXnorMode=0, noActivation=1, numInputVectors=[1]),
    ]  # fmt: skip
    inits = [numpy_helper.from_array(v, n) for n, v in (("t_in", T_IN), ("w1", W1), ("t1", T1), ("w2", W2))]
    vis = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("a", [1, 4]), ("b", [1, 3]))]
    g = helper.make_graph(nodes, "finn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits, value_info=vis)  # fmt: skip
    m = ModelWrapper(helper.make_model(g))
    for t, dt in (("x", "UINT4"), ("a", "UINT2"), ("b", "UINT2"), ("y", "INT16"), ("w1", "INT3"), ("w2", "INT3"), ("t1", "INT16")):
        m.set_tensor_datatype(t, DataType[dt])
    return m


def simulate(m: ModelWrapper, x: np.ndarray) -> dict:
    """FINN's semantics of the graph above for a batch of inputs (rows)."""
    init = m.get_initializer

    def count(v, t):
        return (v[:, :, None] >= t[None, :, :]).sum(axis=2)

    a = count(x, init("t_in"))
    acc1 = a @ init("w1").astype(np.int64)
    b = count(acc1, init("t1"))
    return {"a": a, "acc1": acc1, "b": b, "y": b @ init("w2").astype(np.int64)}


ALL_INPUTS = np.array(list(itertools.product(range(16), repeat=4)), dtype=np.int64)


def test_stream_ranges_against_brute_force():
    """Exact where the inputs of a node vary independently (the thresholds
    of independent inputs, the accumulator over them); sound after that."""
    m = finn_graph()
    ranges = stream_ranges(m)
    sim = simulate(m, ALL_INPUTS)
    assert list(ranges["a"].lo) == sim["a"].min(axis=0).tolist() and list(ranges["a"].hi) == sim["a"].max(axis=0).tolist()
    assert ranges["a"].lo[0] == ranges["a"].hi[0] == 0  # the stuck channel
    lo, hi = mvau_acc_range(m, m.graph.node[1], ranges["a"])
    assert lo == sim["acc1"].min(axis=0).tolist() and hi == sim["acc1"].max(axis=0).tolist()
    for tensor in ("b", "y"):
        r = ranges[tensor]
        assert all(r.lo[i] <= v for i, v in enumerate(sim[tensor].min(axis=0))), tensor
        assert all(r.hi[i] >= v for i, v in enumerate(sim[tensor].max(axis=0))), tensor


def test_apply_widths_narrows_to_proven_and_keeps_outputs():
    m = finn_graph()
    sim = simulate(m, ALL_INPUTS)
    p = ApplyWidths()
    out = m.transform(p, make_deepcopy=True, cleanup=False)
    attrs = {n.name: {a.name: a.s.decode() for a in n.attribute if a.type == 3} for n in out.graph.node}
    # MVAU_hls_0: accumulator range over all inputs, thresholds clipped into it
    lo, hi = int(sim["acc1"].min()), int(sim["acc1"].max())
    t1 = out.get_initializer("t1")
    assert t1.min() >= lo and t1.max() <= hi + 1
    assert attrs["MVAU_hls_0"]["accDataType"] == narrowest_int_type(min(lo, int(t1.min())), max(hi, int(t1.max())))
    # the last node narrows its accumulator, keeps FINN's output width
    y_lo, y_hi = int(sim["y"].min()), int(sim["y"].max())
    assert DataType[attrs["MVAU_hls_1"]["accDataType"]].bitwidth() < 16
    assert DataType[attrs["MVAU_hls_1"]["accDataType"]].allowed(y_lo) and DataType[attrs["MVAU_hls_1"]["accDataType"]].allowed(y_hi)
    assert attrs["MVAU_hls_1"]["outputDataType"] == "INT16"
    # thresholds of the first layer clipped to its input range; values unchanged everywhere
    assert out.get_initializer("t_in").max() <= 16
    after = simulate(out, ALL_INPUTS)
    for k in ("a", "b", "y"):
        assert np.array_equal(after[k], sim[k])
    # never wider: a second pass finds nothing to narrow
    again = ApplyWidths()
    out.transform(again, make_deepcopy=True, cleanup=False)
    assert again.changes == []
    assert {c.node for c in p.changes} >= {"MVAU_hls_0", "MVAU_hls_1", "Thresholding_rtl_0"}


def test_xnor_mvau_counts_agreements():
    m = finn_graph()
    node = m.graph.node[1]
    for a in node.attribute:
        if a.name == "binaryXnorMode":
            a.i = 1
    m.set_initializer("w1", (W1 > 0).astype(np.float32))
    r = StreamRange((0, 1, 0, 0), (1, 1, 0, 1))
    lo, hi = mvau_acc_range(m, node, r)
    xs = [x for x in itertools.product(*[range(a, b + 1) for a, b in zip(r.lo, r.hi)])]
    agree = np.array([[(np.array(x) == (W1[:, j] > 0)).sum() for j in range(3)] for x in xs])
    assert lo == agree.min(axis=0).tolist() and hi == agree.max(axis=0).tolist()


@pytest.mark.parametrize("mode", ["refined", "finn"])
def test_estimate_reads_finn_nodes(mode, tmp_path):
    m = finn_graph()
    path = str(tmp_path / "finn_hw.onnx")
    m.save(path)
    doc = estimate(path, mode=mode)
    assert [d["op_type"] for d in doc["layers"].values()] == ["Thresholding", "MVAU", "MVAU"]
    assert doc["total"]["complete"] and doc["total"]["LUT"] > 0
    assert doc["layers"]["MVAU_hls_1"]["acc_bits"] == 16  # FINN's width, as the graph states it
    narrowed = m.transform(ApplyWidths(), make_deepcopy=True, cleanup=False)
    assert estimate(narrowed, mode=mode)["total"]["LUT"] < doc["total"]["LUT"]
    with pytest.raises(SiraError, match="folding"):
        estimate(path, mode=mode, target_fps=1000)


def test_estimate_names_a_node_it_cannot_cost():
    m = finn_graph()
    m.graph.node.append(_node("TopK_hls", ["y"], ["z"], "TopK_hls_0"))
    with pytest.raises(SiraError, match=r"node 'TopK_hls_0' \(TopK_hls\)"):
        estimate(m)


# --------------------------------------------------------------------------
# FINN's forms of an optimized model
# --------------------------------------------------------------------------


@pytest.mark.parametrize("scale,bias,want", [(2.0, -4.0, (-2, [("Mul", 2.0)])), (2.0, 1.0, (0, [("Mul", 2.0), ("Add", 1.0)])), (3.0, 0.0, (0, [("Mul", 3.0)]))])
def test_split_out_scale(scale, bias, want):
    assert split_out_scale(scale, bias) == want


def _mt_model(out_scale: float, out_bias: float, out_dtype: str, annotated: str) -> ModelWrapper:
    t = numpy_helper.from_array(np.array([[-1.5, 0.5, 2.5]] * 2, dtype=np.float32), "t")
    w = numpy_helper.from_array(np.array([[1, -1], [-1, 1]], dtype=np.float32), "w")
    nodes = [helper.make_node("MultiThreshold", ["x", "t"], ["h"], name="mt", domain="qonnx.custom_op.general", out_dtype=out_dtype,
                              out_scale=out_scale, out_bias=out_bias, data_layout="NC"),
             helper.make_node("MatMul", ["h", "w"], ["y"], name="mm")]  # fmt: skip
    g = helper.make_graph(nodes, "mt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [t, w])  # fmt: skip
    m = ModelWrapper(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    m.set_tensor_datatype("h", DataType[annotated])
    return m


def _outputs(m: ModelWrapper, xs) -> list:
    m = reinfer_shapes(m)
    return [execute_onnx(m, {"x": np.array([x], dtype=np.float32)})["y"] for x in xs]


def test_finn_form_out_dtype_from_the_proven_type():
    m = finn_form(_mt_model(1.0, 0.0, "INT2", "UINT2"))
    mt = m.graph.node[0]
    assert next(a.s.decode() for a in mt.attribute if a.name == "out_dtype") == "UINT2"
    assert "h" in {vi.name for vi in m.graph.value_info}


def test_finn_form_unit_scale_keeps_values():
    before = _mt_model(2.0, 1.0, "UINT3", "UINT3")
    after = finn_form(before)
    ops = [n.op_type for n in after.graph.node]
    assert ops == ["MultiThreshold", "Mul", "Add", "MatMul"]
    mt = after.graph.node[0]
    assert {a.name: a.f for a in mt.attribute if a.type == 1} == {"out_scale": 1.0, "out_bias": 0.0}
    xs = [(x0, x1) for x0 in (-2.0, -1.5, 0.0, 0.5, 2.5, 3.0) for x1 in (-3.0, 0.7, 2.5)]
    for a, b in zip(_outputs(before, xs), _outputs(after, xs)):
        assert np.array_equal(a, b)
    assert {vi.name for vi in after.graph.value_info} >= {n.output[0] for n in after.graph.node[:-1]}


def test_finn_form_bipolar_weights_for_xnor():
    m = _mt_model(2.0, -1.0, "BIPOLAR", "BIPOLAR")
    out = finn_form(m)
    assert out.get_tensor_datatype("w") == DataType["BIPOLAR"]
    assert [n.op_type for n in out.graph.node] == ["MultiThreshold", "MatMul"]  # the bipolar form stays


def test_step_sira_apply_widths(tmp_path):
    from sira.steps import SiraBuildConfig, step_sira_apply_widths

    cfg = SiraBuildConfig(output_dir=str(tmp_path))
    out = step_sira_apply_widths(finn_graph(), cfg)
    doc = json.loads((tmp_path / "report" / "sira_apply_widths.json").read_text())
    changed = {(c["node"], c["attribute"]) for c in doc["changes"]}
    assert ("MVAU_hls_0", "accDataType") in changed
    assert next(a.s.decode() for a in out.graph.node[1].attribute if a.name == "accDataType") != "INT16"
    with pytest.raises(SiraError, match="step_sira_apply_widths: .*step_convert_to_hw"):
        step_sira_apply_widths(_mt_model(1.0, 0.0, "UINT2", "UINT2"), cfg)


def test_outside_finds_a_stream_value_beyond_its_proven_range():
    m = finn_graph()
    ranges = stream_ranges(m)
    sim = simulate(m, ALL_INPUTS[::97])
    values = {"a": sim["a"], "b": sim["b"], "y": sim["y"]}
    assert outside(ranges, values) == []
    values["b"] = values["b"].copy()
    values["b"][0, 2] = ranges["b"].hi[2] + 1
    (line,) = outside(ranges, values)
    assert line.startswith("b: element 2 ")


def _pool_graph() -> ModelWrapper:
    """UINT4 windows of 2x2 over 3 channels (channel-interleaved, as FINN's
    depthwise window generator streams them) -> FINN's Pool (MaxPool)."""
    pool = _node("Pool_hls", ["w"], ["p"], "Pool_hls_0", Channels=3, PE=3, KernelSize=[2, 2], Function="MaxPool", OutImgDims=[2, 2],
                 InputDataType="UINT4", OutputDataType="UINT4")  # fmt: skip
    g = helper.make_graph([pool], "pool", [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 2, 2, 12])],
                          [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 2, 3])])  # fmt: skip
    m = ModelWrapper(helper.make_model(g))
    m.set_tensor_datatype("w", DataType["UINT4"])
    m.set_tensor_datatype("p", DataType["UINT4"])
    return m


def test_pool_after_a_window_generator_is_ranged_per_channel_and_costed():
    m = _pool_graph()
    assert stream_ranges(m)["p"] == StreamRange((0,) * 3, (15,) * 3)
    doc = estimate(m)
    layer = doc["layers"]["Pool_hls_0"]
    # three lanes of three 4-bit comparators with their multiplexers, no line buffer
    assert layer["LUT"] > 0 and layer["BRAM_18K"] == 0 and "note" not in layer
    assert doc["total"]["complete"] and not doc["notes"]


def test_a_spec_naming_the_input_before_finn_renamed_it_applies():
    m = finn_graph()
    m.set_tensor_datatype("x", DataType["FLOAT32"])
    named = stream_ranges(m, {"inputs": {"global_in": {"min": 0, "max": 15}}})
    assert named["x"] == StreamRange.real(0, 15, 4) and named["a"] == stream_ranges(finn_graph())["a"]


def _identity_input_graph(thresholds: np.ndarray, act: int) -> ModelWrapper:
    """finn_graph with its input Thresholding re-quantizing UINT4 to UINT4."""
    m = finn_graph()
    m.set_initializer("t_in", thresholds.astype(np.float32))
    th, mvau = m.graph.node[0], m.graph.node[1]
    for node, attr in ((th, "outputDataType"), (th, "numSteps"), (th, "ActVal"), (mvau, "inputDataType")):
        value = {"outputDataType": "UINT4", "numSteps": thresholds.shape[1], "ActVal": act, "inputDataType": "UINT4"}[attr]
        next(a for a in node.attribute if a.name == attr).CopyFrom(helper.make_attribute(attr, value))
    m.set_tensor_datatype("a", DataType["UINT4"])
    return m


@pytest.mark.parametrize("thresholds,act,removed", [
    (np.tile(np.arange(1, 16), (4, 1)), 0, True),                       # UINT4 onto itself
    (np.tile(np.arange(-1, 16), (4, 1)), -2, True),                     # two thresholds every input passes, ActVal -2
    (np.tile(np.arange(2, 17), (4, 1)), 0, False),                      # shifted by one
    (np.tile(np.r_[np.arange(1, 15), 14], (4, 1)), 0, False),           # 15 maps to 14
])  # fmt: skip
def test_apply_widths_removes_identity_thresholding(thresholds, act, removed):
    m = _identity_input_graph(thresholds, act)
    pass_ = ApplyWidths()
    out = m.transform(pass_, make_deepcopy=True, cleanup=False)
    ops = [n.op_type for n in out.graph.node]
    assert (ops == ["MVAU_hls", "MVAU_hls"]) == removed
    if removed:
        assert out.graph.node[0].input[0] == "x" and any(c.attribute == "node" for c in pass_.changes)
        assert "a" not in {v.name for v in out.graph.value_info}
        assert stream_ranges(out)["y"] == stream_ranges(m)["y"]
    # FINN's semantics of the graph, before and after, on every input
    t = m.get_initializer("t_in")
    a = (ALL_INPUTS[:, :, None] >= t[None, :, :]).sum(axis=2) + act
    assert np.array_equal(a, ALL_INPUTS) == removed

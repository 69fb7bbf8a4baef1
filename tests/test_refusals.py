"""Every way a model can fail to reach hardware is one line on the command
line: exit code 2, ``sira: error:``, the node and its op as the user's file
names them, and what to change; never a traceback, never a partial output.

Each case is the smallest model that takes one refusal path of the lowering
to hardware layers (``sira.transforms.to_hw``), run through ``sira estimate``
as a user would."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from sira.cli import main
from tests.helpers import make_model, quant_node

#: the range of every model input (each is quantized first)
SPEC = {"min": 0, "max": 3}


def _quantized(nodes, inputs, outputs, initializers=None):
    """The model of ``nodes`` with every graph input first quantized to
    UINT2 (a Quant with scale 1), as an exported model has it."""
    quants = [quant_node(f"{x}_in", "one", "zero", "two", x, signed=0) for x in inputs]
    inits = {"one": np.float32(1), "zero": np.float32(0), "two": np.float32(2), **(initializers or {})}
    return make_model(quants + list(nodes), {f"{x}_in": shape for x, shape in inputs.items()}, outputs, inits)


def _conv(name, x, w, y, **attrs):
    return helper.make_node("Conv", [x, w], [y], name=name, **attrs)


def _ones(*shape):
    return np.ones(shape, dtype=np.float32)


def _case_softmax_inside():
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="soft", axis=1), helper.make_node("Relu", ["s"], ["y"], name="r")]
    return _quantized(nodes, {"x": [1, 4]}, {"y": [1, 4]})


def _case_reordering_transpose():
    t = helper.make_node("Transpose", ["x"], ["t"], name="swap", perm=[0, 1, 3, 2])
    return _quantized([t, helper.make_node("Relu", ["t"], ["y"], name="r")], {"x": [1, 2, 3, 4]}, {"y": [1, 2, 4, 3]})


def _case_grouped_conv():
    node = _conv("grouped", "x", "w", "y", group=2, kernel_shape=[1, 1])
    return _quantized([node], {"x": [1, 4, 3, 3]}, {"y": [1, 4, 3, 3]}, {"w": _ones(4, 2, 1, 1)})


def _case_conv3d():
    node = _conv("vol", "x", "w", "y", kernel_shape=[1, 1, 1])
    return _quantized([node], {"x": [1, 2, 2, 2, 2]}, {"y": [1, 2, 2, 2, 2]}, {"w": _ones(2, 2, 1, 1, 1)})


def _case_conv_auto_pad():
    node = _conv("same", "x", "w", "y", kernel_shape=[3, 3], auto_pad="SAME_UPPER")
    return _quantized([node], {"x": [1, 2, 4, 4]}, {"y": [1, 2, 4, 4]}, {"w": _ones(2, 2, 3, 3)})


def _case_dilated_maxpool():
    node = helper.make_node("MaxPool", ["x"], ["y"], name="dil", kernel_shape=[2, 2], dilations=[2, 2])
    return _quantized([node], {"x": [1, 2, 6, 6]}, {"y": [1, 2, 4, 4]})


def _case_run_time_weights():
    node = helper.make_node("MatMul", ["x", "z"], ["y"], name="dyn")
    return _quantized([node], {"x": [1, 4], "z": [4, 2]}, {"y": [1, 2]})


def _case_div_of_streams():
    nodes = [helper.make_node("Add", ["z", "one_more"], ["d"], name="nonzero"), helper.make_node("Div", ["x", "d"], ["y"], name="ratio")]
    return _quantized(nodes, {"x": [1, 4], "z": [1, 4]}, {"y": [1, 4]}, {"one_more": np.float32(1)})


def _case_concat_off_channels():
    node = helper.make_node("Concat", ["x", "z"], ["y"], name="rows", axis=2)
    return _quantized([node], {"x": [1, 2, 3, 3], "z": [1, 2, 3, 3]}, {"y": [1, 2, 6, 3]})


def _case_reduce_over_channels():
    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="chsum", keepdims=1)
    return _quantized([node], {"x": [1, 4, 2, 2]}, {"y": [1, 1, 2, 2]}, {"axes": np.array([1], dtype=np.int64)})


def _case_maxpool_pad_as_wide_as_kernel():
    node = helper.make_node("MaxPool", ["x"], ["y"], name="edge", kernel_shape=[2, 2], pads=[2, 2, 2, 2])
    return _quantized([node], {"x": [1, 2, 3, 3]}, {"y": [1, 2, 6, 6]})


def _case_three_d_weights():
    node = helper.make_node("MatMul", ["x", "w"], ["y"], name="batched")
    return _quantized([node], {"x": [2, 3, 4]}, {"y": [2, 3, 5]}, {"w": _ones(2, 4, 5)})


#: (case, the node, its op, words of the fix or reason)
CASES = [
    (_case_softmax_inside, "soft", "Softmax", ["no hardware layer for Softmax", "host"]),
    (_case_reordering_transpose, "swap", "Transpose", ["reorders the channels-last stream"]),
    (_case_grouped_conv, "grouped", "Conv", ["group=2", "depthwise"]),
    (_case_conv3d, "vol", "Conv", ["1-D and 2-D"]),
    (_case_conv_auto_pad, "same", "Conv", ["auto_pad", "explicit pads"]),
    (_case_dilated_maxpool, "dil", "MaxPool", ["dilated"]),
    (_case_run_time_weights, "dyn", "MatMul", ["constant weight"]),
    (_case_div_of_streams, "ratio", "Div", ["Div of two streams"]),
    (_case_concat_off_channels, "rows", "Concat", ["axis 2", "channels"]),
    (_case_reduce_over_channels, "chsum", "ReduceSum", ["spatial axes"]),
    (_case_maxpool_pad_as_wide_as_kernel, "edge", "MaxPool", ["padding", "kernel"]),
    (_case_three_d_weights, "batched", "MatMul", ["2-D MatMul weights"]),
]


@pytest.mark.parametrize("case,node,op,words", CASES, ids=[c[0].__name__.removeprefix("_case_") for c in CASES])
def test_refusal_is_one_line_naming_node_op_and_fix(capsys, tmp_path, case, node, op, words):
    model = case()
    path = tmp_path / "m.onnx"
    onnx.save(model.model, str(path))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"inputs": {i.name: SPEC for i in model.graph.input}}))
    out_file = tmp_path / "estimate.json"
    code = main(["estimate", str(path), "--input-spec", str(spec), "--format", "json", "-o", str(out_file)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("sira: error: "), err
    assert f"('{node}' in the file) ({op})" in lines[0], lines[0]
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    assert not out_file.exists()


def test_build_refusal_writes_no_project(capsys, tmp_path):
    """``sira build`` stops at the same line before writing any file."""
    model = _case_softmax_inside()
    path = tmp_path / "m.onnx"
    onnx.save(model.model, str(path))
    project = tmp_path / "project"
    code = main(["build", str(path), "--input-range", "0,3", "-o", str(project)])
    err = capsys.readouterr().err
    assert code == 2 and "('soft' in the file) (Softmax): no hardware layer for Softmax" in err and "Traceback" not in err
    assert not project.exists()

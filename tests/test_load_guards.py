"""Loading refuses what is not a model before reading it, and a model ONNX
itself calls invalid, with one clear error each:

* a pipe or a device as the model path (reading one would block forever or
  exhaust memory), a file past protobuf's 2 GiB limit;
* two definitions of one tensor (two producers, two initializers of one
  name, an initializer that a node also writes), which ``onnx.checker``
  rejects: which value a consumer sees is undefined;
* a graph input that is not a numeric tensor, or has a negative dimension;
* external data: read relative to the model file (not the working
  directory), never from outside the model's folder, a missing data file
  named.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sira
from sira.errors import SiraError
from sira.modelfile import MAX_MODEL_BYTES
from tests.helpers import QONNX_DOMAIN, quant_node


def _model(nodes, inputs, outputs, inits=(), elem=TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, elem, s) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs], initializer=list(inits),
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    proto.ir_version = 8
    return proto


def _quantized(weights: np.ndarray) -> onnx.ModelProto:
    """x -> Quant(4 bit) -> MatMul(W) -> y."""
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), name=k)
             for k, v in {"s": 0.25, "z": 0.0, "b": 4.0, "W": weights}.items()]  # fmt: skip
    nodes = [quant_node("x", "s", "z", "b", "xq"), helper.make_node("MatMul", ["xq", "W"], ["y"])]
    return _model(nodes, [("x", [1, weights.shape[0]])], [("y", [1, weights.shape[1]])], inits)


def _save(tmp_path, proto, name="m.onnx") -> str:
    path = os.path.join(tmp_path, name)
    onnx.save(proto, path)
    return path


def test_a_pipe_is_refused_without_blocking(tmp_path):
    fifo = os.path.join(tmp_path, "model.onnx")
    os.mkfifo(fifo)
    with pytest.raises(SiraError, match="not a regular file"):
        sira.load(fifo)


def test_a_device_is_refused():
    with pytest.raises(SiraError, match="not a regular file"):
        sira.load("/dev/zero")


def test_a_file_past_protobufs_limit_is_refused_unread(tmp_path):
    path = os.path.join(tmp_path, "huge.onnx")
    with open(path, "wb") as f:  # sparse: no disk used, nothing read
        f.truncate(MAX_MODEL_BYTES)
    with pytest.raises(SiraError, match="2 GiB"):
        sira.load(path)


def test_two_producers_of_one_tensor_are_refused():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="first"), helper.make_node("Neg", ["x"], ["y"], name="second")]
    with pytest.raises(SiraError, match="tensor 'y' is defined twice.*'first'.*'second'"):
        sira.load(_model(nodes, [("x", [1, 4])], [("y", [1, 4])]))


def test_two_initializers_of_one_name_are_refused():
    proto = _quantized(np.ones((4, 2)))
    proto.graph.initializer.append(numpy_helper.from_array(np.zeros((4, 2), dtype=np.float32), name="W"))
    with pytest.raises(SiraError, match="two initializers are named 'W'"):
        sira.load(proto)


def test_a_node_writing_an_initializer_is_refused():
    proto = _quantized(np.ones((4, 2)))
    proto.graph.node.append(helper.make_node("Relu", ["x"], ["W"], name="overwrite"))
    with pytest.raises(SiraError, match="tensor 'W' is defined twice"):
        sira.load(proto)


@pytest.mark.parametrize("elem", [TensorProto.STRING, TensorProto.COMPLEX64])
def test_a_non_numeric_input_is_refused(elem):
    proto = _model([helper.make_node("Identity", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])], elem=elem)
    with pytest.raises(SiraError, match="graph input 'x' has element type"):
        sira.load(proto)


def test_a_negative_dimension_is_refused():
    proto = _quantized(np.ones((4, 2)))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -3
    with pytest.raises(SiraError, match="negative dimension"):
        sira.load(proto)


def test_external_data_is_read_beside_the_model_from_any_working_directory(tmp_path, monkeypatch):
    weights = np.arange(8, dtype=np.float32).reshape(4, 2) - 3
    proto = _quantized(weights)
    folder = tmp_path / "model"
    folder.mkdir()
    path = str(folder / "m.onnx")
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)  # saving as external data rewrites the proto it is given
    onnx.save_model(copy, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data", size_threshold=0)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model = sira.load(path)
    assert np.array_equal(model.get_initializer([i.name for i in model.graph.initializer if i.dims == [4, 2]][0]), weights)
    report = sira.analyze(model, (-1, 1))
    direct = sira.analyze(sira.load(proto), (-1, 1))
    assert report[model.graph.output[0].name].int_hi == direct[direct.model.graph.output[0].name].int_hi


def test_missing_external_data_is_named(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save_model(_quantized(np.ones((4, 2))), path, save_as_external_data=True, location="m.data", size_threshold=0)
    os.remove(tmp_path / "m.data")
    with pytest.raises(SiraError, match="keeps its data in 'm.data', which does not exist"):
        sira.load(path)


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = str(folder / "m.onnx")
    onnx.save_model(_quantized(np.ones((4, 2))), path, save_as_external_data=True, location="m.data", size_threshold=0)
    proto = onnx.load(path, load_external_data=False)
    for init in proto.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../secret.data"
    onnx.save(proto, path)
    with pytest.raises(SiraError, match="points outside the model's folder"):
        sira.load(path)


# --------------------------------------------------------------------------
# input specs: every value checked where it enters
# --------------------------------------------------------------------------

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "sira_mlp.onnx")


@pytest.fixture(scope="module")
def example():
    return sira.load(EXAMPLE)


@pytest.mark.parametrize("entry, message", [
    ({"int_min": 0.5, "int_max": 3}, "'int_min': 0.5 is not an integer"),
    ({"int_min": 0, "int_max": 254.9}, "'int_max': 254.9 is not an integer"),
    ({"int_min": True, "int_max": 3}, "expected an integer"),
    ({"datatype": "UINT8", "int_min": 0, "int_max": float("inf")}, "not a finite integer"),
    ({"int_min": 0, "int_max": int("9" * 400)}, r"\(400 digits\) is beyond 64-bit integers"),
    ({"min": int("9" * 400), "max": 1}, "beyond the range of float64"),
    ({"min": "1e400", "max": 1}, "not a finite number"),
    ({"datatype": "INT1000"}, "wider than 64 bits"),
    ({"datatype": "INT-3"}, "has no bits"),
    ({"datatype": "NOPE"}, "unknown datatype"),
])  # fmt: skip
def test_bad_spec_values_are_named(example, entry, message):
    with pytest.raises(SiraError, match=message):
        sira.analyze(example, {"inputs": {"*": entry}})


def test_integer_bounds_as_text_or_whole_floats_are_accepted(example):
    a = sira.analyze(example, {"inputs": {"*": {"int_min": "0", "int_max": 15.0, "scale": "1/15"}}})
    b = sira.analyze(example, {"inputs": {"*": {"int_min": 0, "int_max": 15, "scale": "1/15"}}})
    out = example.graph.output[0].name
    assert np.array_equal(a[out].int_lo, b[out].int_lo) and np.array_equal(a[out].int_hi, b[out].int_hi)


def test_a_spec_path_that_is_a_folder_pipe_or_deep_json_is_refused(example, tmp_path):
    with pytest.raises(SiraError, match="is a folder"):
        sira.analyze(example, str(tmp_path))
    fifo = str(tmp_path / "spec.json")
    os.mkfifo(fifo)
    with pytest.raises(SiraError, match="not a regular file"):
        sira.analyze(example, fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SiraError, match="nested too deeply"):
        sira.analyze(example, str(deep))

"""sira.load prepares a model exactly as qonnx's cleanup_model does.

sira replaces qonnx's (quadratic) cleanup by its own linear passes; these
tests hold it to the same result: for every zoo model, the bundled example
and the benchmark's synthetic models, the prepared graph (node sequence,
initializers, inputs, outputs, ValueInfos, annotations) equals
``cleanup_model(preserve_qnt_ops=True)``'s and the analysis gives the same
ranges on both. A small model exercises every pass that has something to do
(shared initializer, constant subgraphs, Transpose after a weight Quant,
unused and static initializers).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from qonnx.util.cleanup import cleanup_model

import sira
from sira.model import input_aliases, quiet, read_model
from tests.helpers import QONNX_DOMAIN, quant_node

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark's synthetic models
import models  # noqa: E402

EXAMPLE = ROOT / "examples" / "sira_mlp.onnx"
EXAMPLE_SPEC = ROOT / "examples" / "sira_mlp.spec.json"


def qonnx_cleanup(src) -> onnx.ModelProto:
    with quiet():
        return cleanup_model(read_model(src), preserve_qnt_ops=True).model


def assert_same_graph(ours: onnx.ModelProto, ref: onnx.ModelProto) -> None:
    """Same nodes in the same order (op, name, domain, inputs, outputs,
    attributes), same initializers (names in order, dtypes, values), same
    graph inputs, outputs, ValueInfos and annotations."""
    a, b = ours.graph, ref.graph
    assert [(n.op_type, n.name) for n in a.node] == [(n.op_type, n.name) for n in b.node]
    for x, y in zip(a.node, b.node):
        assert x == y, f"node {x.name} differs:\n{x}\nqonnx:\n{y}"
    assert [t.name for t in a.initializer] == [t.name for t in b.initializer]
    for x, y in zip(a.initializer, b.initializer):
        u, v = numpy_helper.to_array(x), numpy_helper.to_array(y)
        assert u.dtype == v.dtype and u.shape == v.shape and np.array_equal(u, v), f"initializer {x.name} differs"
    for field in ("input", "output", "value_info", "quantization_annotation"):
        assert list(getattr(a, field)) == list(getattr(b, field)), f"graph {field} differs"


def assert_same_ranges(ours: onnx.ModelProto, ref: onnx.ModelProto, spec) -> None:
    """sira.analyze on both prepared models (the reference gets our
    metadata: prepared, input aliases) gives the same range for every tensor."""
    from qonnx.core.modelwrapper import ModelWrapper

    ref = ModelWrapper(ref)
    for kv in ours.graph.metadata_props:
        ref.set_metadata_prop(kv.key, kv.value)
    ours = ModelWrapper(ours)
    ra, rb = sira.analyze(ours, spec), sira.analyze(ref, spec)
    assert set(ra) == set(rb)
    for name in ra:
        x, y = ra[name], rb[name]
        assert x.shape == y.shape and x.exact == y.exact and x.fallback == y.fallback, name
        for field in ("lo", "hi", "int_lo", "int_hi", "scale", "bias"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None) and (u is None or np.array_equal(u, v)), f"{name}.{field}"


def check_against_qonnx(src, spec) -> onnx.ModelProto:
    with quiet():
        ours = sira.load(src).model
    ref = qonnx_cleanup(src)
    assert_same_graph(ours, ref)
    assert_same_ranges(ours, ref, spec)
    return ours


def test_zoo_models_prepare_as_qonnx(zoo_model):
    _, path, spec = zoo_model
    check_against_qonnx(path, spec)


def test_example_prepares_as_qonnx():
    check_against_qonnx(str(EXAMPLE), str(EXAMPLE_SPEC))


@pytest.mark.parametrize(
    "build, spec",
    [(lambda: models.quant_mlp(3, 32), models.MLP_INPUT_RANGE), (models.mobilenet_like, models.CONV_INPUT_RANGE)],
    ids=["quant_mlp_3x32", "mobilenet_like"],
)
def test_bench_models_prepare_as_qonnx(build, spec):
    with quiet():
        model = build()
    check_against_qonnx(model, spec)


def messy_model() -> onnx.ModelProto:
    """A model every pass has work on:

    * an input flattened by the exporters' Shape -> Gather -> Unsqueeze ->
      Concat -> Reshape pattern, the -1 coming from a Constant node (folded:
      Shape of a known shape, then constants; the Reshape stays);
    * a weight stored transposed behind its Quant, then a Transpose;
    * one scale, zero-point and bit width shared by both activation Quants;
    * a bias computed from constants (Add then Mul, folded) and added with
      the constant first (qonnx puts initializers last);
    * unused initializers, one also listed as a graph input, and a used
      initializer listed as a graph input (static input).
    """
    rng = np.random.default_rng(0)
    w_t = rng.normal(size=(3, 4)).astype(np.float32)  # (out, in): stored transposed
    inits = {
        "w_t": w_t,
        "w_scale": (np.abs(w_t).max(axis=1, keepdims=True) / 7).astype(np.float32),
        "s": np.float32(1 / 16),
        "z": np.float32(0),
        "b8": np.float32(8),
        "b4": np.float32(4),
        "bias_a": rng.normal(size=(1, 3)).astype(np.float32),
        "bias_b": rng.normal(size=(1, 3)).astype(np.float32),
        "two": np.float32(2),
        "gather_idx": np.int64(0),
        "axis0": np.array([0], np.int64),
        "unused": np.ones(5, np.float32),
        "unused_input": np.zeros(2, np.float32),
    }
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "gather_idx"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch_1d"]),
        helper.make_node("Constant", [], ["minus_one"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["batch_1d", "minus_one"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["x_flat"]),
        quant_node("x_flat", "s", "z", "b8", "xq"),
        quant_node("w_t", "w_scale", "z", "b4", "wq_t", narrow=1),
        helper.make_node("Transpose", ["wq_t"], ["wq"], perm=[1, 0]),
        helper.make_node("MatMul", ["xq", "wq"], ["mm"]),
        helper.make_node("Add", ["bias_a", "bias_b"], ["bias_sum"]),
        helper.make_node("Mul", ["two", "bias_sum"], ["bias"]),
        helper.make_node("Add", ["bias", "mm"], ["y"]),
        helper.make_node("Relu", ["y"], ["r"]),
        quant_node("r", "s", "z", "b8", "out", signed=0),
    ]
    graph = helper.make_graph(
        nodes,
        "messy",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in (("x", [1, 2, 2]), ("two", []), ("unused_input", [2]))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(np.asarray(v), name=k) for k, v in inits.items()],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    proto.ir_version = min(proto.ir_version, 10)
    return proto


def test_every_pass_with_work_prepares_as_qonnx():
    src = messy_model()
    ours = check_against_qonnx(src, (-1.0, 1.0))
    g = ours.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    src_inits = {t.name: numpy_helper.to_array(t) for t in src.graph.initializer}
    # constants folded (the Shape of a known shape too); the quantizers and the Reshape stay
    assert Counter(n.op_type for n in g.node) == Counter(Reshape=1, Quant=3, MatMul=1, Add=1, Relu=1)
    # the Transpose went into the weight initializers
    weight_quant = next(n for n in g.node if n.op_type == "Quant" and n.input[0] in inits)
    np.testing.assert_array_equal(inits[weight_quant.input[0]], src_inits["w_t"].T)
    # every initializer is read by exactly one node (the shared ones copied); none unused
    reads = [i for n in g.node for i in n.input if i in inits]
    assert sorted(reads) == sorted(inits)
    # the folded bias is an initializer of the Add, after its dynamic input
    add = next(n for n in g.node if n.op_type == "Add")
    assert add.input[0] not in inits
    np.testing.assert_allclose(inits[add.input[1]], 2 * (src_inits["bias_a"] + src_inits["bias_b"]))
    # the static input is gone; the unused initializer listed as an input stays an input, as in qonnx
    assert [vi.name for vi in g.input] == ["global_in", "global_in_1"]
    assert [vi.name for vi in g.output] == ["global_out"]
    for op in {n.op_type for n in g.node}:
        assert [n.name for n in g.node if n.op_type == op] == [f"{op}_{k}" for k in range(sum(n.op_type == op for n in g.node))]


def test_prepared_model_keeps_metadata_and_aliases():
    with quiet():
        model = sira.load(str(EXAMPLE))
    assert model.get_metadata_prop("sira_prepared") == "1"
    assert input_aliases(model) == {"pixels": "global_in"}


def test_rename_false_keeps_user_names():
    with quiet():
        model = sira.load(messy_model(), rename=False)
    names = {t for n in model.graph.node for t in (*n.input, *n.output)}
    assert {"x", "xq", "out"} <= names


def test_model_digest_covers_every_part_of_the_model():
    """Equal for a copy; different after a change to a weight, a node
    attribute, a tensor annotation, a metadata entry or the opset."""
    from qonnx.core.datatype import DataType

    from sira.model import model_digest

    model = sira.load(models.quant_mlp(2, 8))
    base = model_digest(model).digest()
    assert model_digest(read_model(model)).digest() == base

    def changed(edit) -> bytes:
        copy = read_model(model)
        edit(copy)
        return model_digest(copy).digest()

    init = model.graph.initializer[0].name

    def weight(m):
        w = numpy_helper.to_array(m.graph.initializer[0]).copy()
        w.flat[0] += 1
        m.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, init))

    edits = [
        weight,
        lambda m: m.graph.node[-1].attribute.append(helper.make_attribute("extra", 1)),
        lambda m: m.set_tensor_datatype(m.graph.output[0].name, DataType["INT8"]),
        lambda m: m.set_metadata_prop("note", "x"),
        lambda m: setattr(m.model.opset_import[0], "version", m.model.opset_import[0].version + 1),
    ]
    digests = [changed(e) for e in edits]
    assert base not in digests and len(set(digests)) == len(digests)

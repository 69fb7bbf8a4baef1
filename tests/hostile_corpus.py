"""A corpus of hostile and unlucky inputs, generated from the bundled
examples (nothing binary is committed): broken files, graphs ONNX forbids,
undefined arithmetic, malformed quantizers, absurd shapes, hostile names,
bad input specs and bad command-line numbers.

Each :class:`Variant` writes its model (and spec) into a folder and says
what sira must do with it:

* ``refuse`` - every subcommand exits 2 with a one-line ``sira: error:``
  that is not an internal error, and writes nothing;
* ``accept`` - a valid model: every subcommand succeeds (exit 0), or exits
  with a clear error (2) where it cannot go on (never an internal error);
* ``analyze`` - the analysis must accept it; later stages may refuse
  clearly.

``python tests/hostile_corpus.py DIR`` writes the corpus to DIR for manual
runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Callable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, "..", "examples"))
MLP = os.path.join(EXAMPLES, "sira_mlp.onnx")
MLP_SPEC = os.path.join(EXAMPLES, "sira_mlp.spec.json")
CONV = os.path.join(EXAMPLES, "sira_conv.onnx")
CONV_SPEC = os.path.join(EXAMPLES, "sira_conv.spec.json")

REFUSE, ACCEPT, ANALYZE = "refuse", "accept", "analyze"


@dataclasses.dataclass(frozen=True)
class Case:
    """A written variant: the model path, the spec argument(s), extra CLI
    arguments per subcommand, what is expected."""

    name: str
    model: str
    spec_args: tuple[str, ...]
    expect: str
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    expect: str
    write: Callable[[str], Case]


def _load(path: str) -> onnx.ModelProto:
    return onnx.load(path)


def _save(proto: onnx.ModelProto, folder: str, name: str = "model.onnx") -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path


def _spec_args(spec) -> tuple[str, ...]:
    return ("--input-spec", spec) if isinstance(spec, str) else ("--input-range", spec[1]) if spec else ()


def _mutated(base: str, base_spec: str, mutate: Callable[[onnx.ModelProto], Optional[onnx.ModelProto]]):
    """The base model mutated; its spec given for every input (``"*"``), so
    that mutations may rename the inputs."""

    def write(folder: str, name: str, expect: str) -> Case:
        proto = _load(base)
        out = mutate(proto)
        with open(base_spec) as f:
            entries = json.load(f)["inputs"]
        spec = os.path.join(folder, "spec.json")
        with open(spec, "w") as f:
            json.dump({"inputs": {"*": next(iter(entries.values()))}}, f)
        return Case(name, _save(out if out is not None else proto, folder), ("--input-spec", spec), expect)

    return write


def _node(proto: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in proto.graph.node if n.name == name)


def _init(proto: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in proto.graph.initializer if t.name == name)


def _set_init(proto: onnx.ModelProto, name: str, value) -> None:
    t = _init(proto, name)
    t.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=numpy_helper.to_array(t).dtype), name))


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _insert_after(proto: onnx.ModelProto, tensor: str, nodes: list, out: str) -> None:
    """Insert ``nodes`` (reading ``tensor``, writing ``out``) and rewire the
    former readers of ``tensor`` to ``out``."""
    for n in proto.graph.node:
        for i, x in enumerate(n.input):
            if x == tensor:
                n.input[i] = out
    idx = next(k for k, n in enumerate(proto.graph.node) if tensor in n.output) + 1
    for k, n in enumerate(nodes):
        proto.graph.node.insert(idx + k, n)


def _rename_everything(proto: onnx.ModelProto, make: Callable[[str], str]) -> None:
    names = {t.name for t in proto.graph.initializer} | {i.name for i in proto.graph.input} | {o for n in proto.graph.node for o in n.output}
    mapping = {n: make(n) for n in names}
    for t in proto.graph.initializer:
        t.name = mapping[t.name]
    for vi in list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info):
        vi.name = mapping.get(vi.name, vi.name)
    for n in proto.graph.node:
        n.name = make(n.name)
        for i, x in enumerate(n.input):
            n.input[i] = mapping.get(x, x)
        for i, x in enumerate(n.output):
            n.output[i] = mapping.get(x, x)


# --------------------------------------------------------------------------
# the mutations
# --------------------------------------------------------------------------


def _drop_outputs(p):
    del p.graph.output[:]


def _dangling(p):
    _node(p, "fc1").input[0] = "nobody_makes_this"


def _cycle(p):
    _node(p, "fc0").input[0] = "act0"


def _two_producers(p):
    p.graph.node.append(helper.make_node("Relu", ["x0"], ["fc0_acc"], name="second_producer"))


def _two_initializers(p):
    p.graph.initializer.append(numpy_helper.from_array(np.zeros((64, 32), np.float32), "fc0_weight"))


def _weights(value):
    def mutate(p):
        w = numpy_helper.to_array(_init(p, "fc1_weight")).copy()
        w[0, 0] = value
        _set_init(p, "fc1_weight", w)

    return mutate


def _scale(name, value):
    return lambda p: _set_init(p, name, value)


def _attr(node, name, value):
    return lambda p: _set_attr(_node(p, node), name, value)


def _unknown_op(p):
    _node(p, "relu0").op_type = "FooBar"


def _unknown_domain(p):
    _node(p, "relu0").domain = "com.example.secret"


def _div_by_zero(p):
    p.graph.initializer.append(numpy_helper.from_array(np.float32(0.0), "zero"))
    _insert_after(p, "fc0_acc", [helper.make_node("Div", ["fc0_acc", "zero"], ["div_out"], name="div0")], "div_out")


def _sqrt_of_negative(p):
    _insert_after(p, "fc0_acc", [helper.make_node("Sqrt", ["fc0_acc"], ["sqrt_out"], name="sqrt0")], "sqrt_out")


def _log_of_negative(p):
    _insert_after(p, "fc0_acc", [helper.make_node("Log", ["fc0_acc"], ["log_out"], name="log0")], "log_out")


def _input_type(elem):
    def mutate(p):
        p.graph.input[0].type.tensor_type.elem_type = elem

    return mutate


def _input_dim(index, value):
    def mutate(p):
        p.graph.input[0].type.tensor_type.shape.dim[index].dim_value = value

    return mutate


def _batch(n):
    """Every graph input and output with batch ``n`` and no intermediate
    shapes declared: a consistent model of a huge batch."""

    def mutate(p):
        for vi in list(p.graph.input) + list(p.graph.output):
            if vi.type.tensor_type.shape.dim:
                vi.type.tensor_type.shape.dim[0].dim_value = n
        del p.graph.value_info[:]

    return mutate


def _no_input_shape(p):
    p.graph.input[0].type.tensor_type.ClearField("shape")


def _opset(version):
    def mutate(p):
        for o in p.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = version

    return mutate


def _ir(version):
    def mutate(p):
        p.ir_version = version

    return mutate


def _float_model(p):
    """Every quantizer replaced by Identity: a float model."""
    for n in p.graph.node:
        if n.op_type == "Quant":
            del n.input[1:]
            n.op_type, n.domain = "Identity", ""
            del n.attribute[:]


def _names(make):
    return lambda p: _rename_everything(p, make)


def _empty_node_names(p):
    for n in p.graph.node:
        n.name = ""


def _same_node_names(p):
    for n in p.graph.node:
        n.name = "same"


def _quant_input_count(p):
    del _node(p, "act0_quant").input[3]


def _relu_many_inputs(p):
    _node(p, "relu0").input.append("x0")


def _bad_scale_shape(p):
    _set_init(p, "fc1_weight_quant_scale", np.ones((1, 7), np.float32))


def _bad_weight_shape(p):
    _set_init(p, "fc1_weight", np.ones((5, 3), np.float32))


def _constant_graph(p):
    """The output computed from initializers only."""
    p.graph.initializer.append(numpy_helper.from_array(np.ones((1, 64), np.float32), "const_in"))
    _node(p, "input_quant").input[0] = "const_in"


def _duplicate_input(p):
    p.graph.input.append(copy_of(p.graph.input[0]))


def copy_of(message):
    out = type(message)()
    out.CopyFrom(message)
    return out


def _bn_param(name, value):
    return lambda p: _set_init(p, name, value)


def _no_nodes(p):
    del p.graph.node[:]


MLP_MUTATIONS: list[tuple[str, str, Callable]] = [
    ("no-outputs", REFUSE, _drop_outputs),
    ("dangling-tensor", REFUSE, _dangling),
    ("cycle", REFUSE, _cycle),
    ("two-producers", REFUSE, _two_producers),
    ("two-initializers", REFUSE, _two_initializers),
    ("nan-weight", REFUSE, _weights(np.nan)),
    ("inf-weight", REFUSE, _weights(np.inf)),
    ("neg-inf-weight", REFUSE, _weights(-np.inf)),
    ("huge-weight", ANALYZE, _weights(3e38)),
    ("zero-act-scale", REFUSE, _scale("act0_quant_scale", 0.0)),
    ("negative-act-scale", REFUSE, _scale("act0_quant_scale", -0.5)),
    ("nan-act-scale", REFUSE, _scale("act0_quant_scale", np.nan)),
    ("inf-act-scale", REFUSE, _scale("act0_quant_scale", np.inf)),
    ("negative-zero-act-scale", REFUSE, _scale("act0_quant_scale", -0.0)),
    ("nan-bn-mean", REFUSE, _bn_param("bn0_mean", np.full(32, np.nan))),
    ("tiny-act-scale", ANALYZE, _scale("act0_quant_scale", 1e-30)),
    ("zero-weight-scale", REFUSE, _scale("fc1_weight_quant_scale", np.zeros((1, 32)))),
    ("zero-bits", REFUSE, _scale("act0_quant_bits", 0.0)),
    ("negative-bits", REFUSE, _scale("act0_quant_bits", -4.0)),
    ("fractional-bits", REFUSE, _scale("act0_quant_bits", 2.5)),
    ("nan-bits", REFUSE, _scale("act0_quant_bits", np.nan)),
    ("huge-bits", REFUSE, _scale("act0_quant_bits", 100.0)),
    ("fractional-zeropoint", ANALYZE, _scale("act0_quant_zeropt", 0.5)),
    ("bad-rounding-mode", REFUSE, _attr("act0_quant", "rounding_mode", "BOGUS")),
    ("signed-7", REFUSE, _attr("act0_quant", "signed", 7)),
    ("narrow-5", REFUSE, _attr("act0_quant", "narrow", 5)),
    ("signed-as-string", REFUSE, _attr("act0_quant", "signed", "yes")),
    ("quant-missing-input", REFUSE, _quant_input_count),
    ("relu-two-inputs", REFUSE, _relu_many_inputs),
    ("unknown-op", REFUSE, _unknown_op),
    ("unknown-domain", REFUSE, _unknown_domain),
    ("div-by-zero", REFUSE, _div_by_zero),
    ("sqrt-of-negative", REFUSE, _sqrt_of_negative),
    ("log-of-negative", REFUSE, _log_of_negative),
    ("string-input", REFUSE, _input_type(TensorProto.STRING)),
    ("complex-input", REFUSE, _input_type(TensorProto.COMPLEX64)),
    ("negative-dim", REFUSE, _input_dim(1, -64)),
    ("zero-dim", REFUSE, _input_dim(0, 0)),
    ("billion-dim", REFUSE, _input_dim(1, 10**9)),
    ("huge-batch", ANALYZE, _batch(200_000)),
    ("inconsistent-batch", REFUSE, _input_dim(0, 200_000)),
    ("no-input-shape", REFUSE, _no_input_shape),
    ("opset-1", ANALYZE, _opset(1)),
    ("opset-99", REFUSE, _opset(99)),
    ("ir-99", REFUSE, _ir(99)),
    ("float-model", ANALYZE, _float_model),
    ("duplicate-graph-input", REFUSE, _duplicate_input),
    ("bn-negative-variance", REFUSE, _bn_param("bn0_var", -np.ones(32))),
    ("bn-training-mode", REFUSE, _attr("bn0", "training_mode", 1)),
    ("no-nodes", REFUSE, _no_nodes),
    ("bad-scale-shape", REFUSE, _bad_scale_shape),
    ("bad-weight-shape", REFUSE, _bad_weight_shape),
    ("constant-graph", ANALYZE, _constant_graph),
    ("hostile-names", ACCEPT, _names(lambda n: f'../../{n}";system("rm -rf /");//\n*/ \u00e9\u2603')),
    ("long-names", ACCEPT, _names(lambda n: n + "x" * 5000)),
    ("digit-names", ACCEPT, _names(lambda n: "0" + n.replace("_", "-"))),
    ("cxx-keyword-names", ACCEPT, _names(lambda n: {"x0": "int", "act0": "class", "fc0_acc": "template"}.get(n, n))),
    ("empty-node-names", ACCEPT, _empty_node_names),
    ("same-node-names", ACCEPT, _same_node_names),
]


def _file(content: bytes, name: str = "model.onnx"):
    def write(folder: str, case: str, expect: str) -> Case:
        return Case(case, _save_bytes(folder, name, content), ("--input-spec", MLP_SPEC), expect)

    return write


def _save_bytes(folder: str, name: str, content: bytes) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(content)
    return path


def _path(make: Callable[[str], str]):
    def write(folder: str, case: str, expect: str) -> Case:
        return Case(case, make(folder), ("--input-spec", MLP_SPEC), expect)

    return write


def _fifo(folder: str) -> str:
    path = os.path.join(folder, "fifo.onnx")
    os.mkfifo(path)
    return path


def _truncated() -> bytes:
    data = open(MLP, "rb").read()
    return data[: len(data) // 2]


def _external(mutate_location: Optional[str]):
    """The example saved with its weights as external data, then the data
    file removed (None) or the reference pointed at ``mutate_location``."""

    def write(folder: str, case: str, expect: str) -> Case:
        path = os.path.join(folder, "model.onnx")
        onnx.save_model(_load(MLP), path, save_as_external_data=True, location="model.data", size_threshold=0)
        proto = onnx.load(path, load_external_data=False)
        if mutate_location is None:
            os.remove(os.path.join(folder, "model.data"))
        else:
            for init in proto.graph.initializer:
                for entry in init.external_data:
                    if entry.key == "location":
                        entry.value = mutate_location
            onnx.save(proto, path)
        return Case(case, path, ("--input-spec", MLP_SPEC), expect)

    return write


FILE_VARIANTS: list[tuple[str, str, Callable]] = [
    ("missing-file", REFUSE, _path(lambda d: os.path.join(d, "nope.onnx"))),
    ("a-folder", REFUSE, _path(lambda d: d)),
    ("empty-file", REFUSE, _file(b"")),
    ("truncated", REFUSE, _file(_truncated())),
    ("random-bytes", REFUSE, _file(np.random.default_rng(0).bytes(4096))),
    ("text-file", REFUSE, _file(b"this is not a model\n")),
    ("json-file", REFUSE, _file(b'{"graph": []}')),
    ("fifo", REFUSE, _path(_fifo)),
    ("dev-zero", REFUSE, _path(lambda d: "/dev/zero")),
    ("gzip-file", REFUSE, _file(b"\x1f\x8b\x08\x00" + bytes(64))),
    ("external-data-missing", REFUSE, _external(None)),
    ("external-data-outside", REFUSE, _external("../../etc/passwd")),
]


def _spec_variant(spec):
    def write(folder: str, case: str, expect: str) -> Case:
        if isinstance(spec, str) and spec.startswith("--"):
            return Case(case, MLP, tuple(spec.split(" ", 1)), expect)
        path = os.path.join(folder, "spec.json")
        with open(path, "w") as f:
            f.write(spec if isinstance(spec, str) else json.dumps(spec))
        return Case(case, MLP, ("--input-spec", path), expect)

    return write


def _spec_folder(folder: str, case: str, expect: str) -> Case:
    return Case(case, MLP, ("--input-spec", folder), expect)


SPEC_VARIANTS: list[tuple[str, str, Callable]] = [
    ("spec-inf", REFUSE, _spec_variant('{"inputs": {"*": {"min": 0, "max": Infinity}}}')),
    ("spec-nan", REFUSE, _spec_variant('{"inputs": {"*": {"min": NaN, "max": 1}}}')),
    ("spec-400-digits", REFUSE, _spec_variant('{"inputs": {"*": {"int_min": 0, "int_max": ' + "9" * 400 + "}}}")),
    ("spec-int1000", REFUSE, _spec_variant({"inputs": {"*": {"datatype": "INT1000"}}})),
    ("spec-int-inf", REFUSE, _spec_variant('{"inputs": {"*": {"datatype": "UINT8", "int_min": 0, "int_max": Infinity}}}')),
    ("spec-fractional-int", REFUSE, _spec_variant({"inputs": {"*": {"int_min": 0.5, "int_max": 254.9}}})),
    ("spec-deep", REFUSE, _spec_variant("[" * 20000 + "]" * 20000)),
    ("spec-folder", REFUSE, _spec_folder),
    ("spec-lo-above-hi", REFUSE, _spec_variant({"inputs": {"*": {"min": 2, "max": 1}}})),
    ("spec-unknown-key", REFUSE, _spec_variant({"inputs": {"*": {"min": 0, "max": 1, "mean": 3}}})),
    ("spec-unknown-input", REFUSE, _spec_variant({"inputs": {"nope": {"min": 0, "max": 1}}})),
    ("spec-list", REFUSE, _spec_variant("[1, 2]")),
    ("spec-empty", REFUSE, _spec_variant("{}")),
    ("spec-not-json", REFUSE, _spec_variant("min=0 max=1")),
    ("spec-zero-scale", REFUSE, _spec_variant({"inputs": {"*": {"datatype": "UINT8", "scale": 0}}})),
    ("spec-wrong-channels", REFUSE, _spec_variant({"inputs": {"*": {"min": [0, 0, 0], "max": [1, 1, 1], "axis": 1}}})),
    ("spec-bad-axis", REFUSE, _spec_variant({"inputs": {"*": {"min": [0] * 64, "max": [1] * 64, "axis": 9}}})),
    ("spec-datatype-number", REFUSE, _spec_variant({"inputs": {"*": {"datatype": 8}}})),
    ("spec-min-text", REFUSE, _spec_variant({"inputs": {"*": {"min": ["low"], "max": [1]}}})),
    ("spec-nested-inputs", REFUSE, _spec_variant({"inputs": {"inputs": {"min": 0, "max": 1}}})),
    ("range-text", REFUSE, _spec_variant("--input-range zero,one")),
    ("range-nan", REFUSE, _spec_variant("--input-range nan,1")),
    ("range-one-number", REFUSE, _spec_variant("--input-range 1")),
    ("range-inverted", REFUSE, _spec_variant("--input-range 1,0")),
    ("range-inf", REFUSE, _spec_variant("--input-range 0,inf")),
    ("range-huge", ANALYZE, _spec_variant("--input-range -1e300,1e300")),
    ("range-point", ANALYZE, _spec_variant("--input-range 0.5,0.5")),
]

#: per subcommand, command-line numbers that are wrong
ARGUMENT_VARIANTS: list[tuple[str, list[str], list[str]]] = [
    ("samples-0", ["optimize", "build"], ["--samples", "0"]),
    ("samples-negative", ["verify", "optimize", "build"], ["--samples", "-5"]),
    ("samples-huge", ["verify", "optimize", "build"], ["--samples", "100000000"]),
    ("seed-negative", ["verify", "optimize", "build"], ["--seed", "-1"]),
    ("clock-zero", ["estimate", "build"], ["--clock-ns", "0"]),
    ("clock-nan", ["estimate", "build"], ["--clock-ns", "nan"]),
    ("fps-negative", ["estimate", "build"], ["--target-fps", "-5"]),
    ("fps-inf", ["estimate", "build"], ["--target-fps", "inf"]),
    ("part-unknown", ["estimate", "build"], ["--part", "xc0bogus"]),
    ("folding-missing", ["estimate", "build"], ["--folding", "/nonexistent/folding.json"]),
    ("folding-folder", ["estimate", "build"], ["--folding", "/"]),
]


def variants() -> list[Variant]:
    out = []
    for name, expect, mutate in MLP_MUTATIONS:
        write = _mutated(MLP, MLP_SPEC, mutate)
        out.append(Variant(name, expect, lambda d, n=name, e=expect, w=write: w(d, n, e)))
    for name, expect, write in FILE_VARIANTS + SPEC_VARIANTS:
        out.append(Variant(name, expect, lambda d, n=name, e=expect, w=write: w(d, n, e)))
    for name, expect, mutate in [("conv-hostile-names", ACCEPT, _names(lambda n: f"{n}\"';$(x)")),
                                 ("conv-huge-batch", ANALYZE, _batch(200_000))]:  # fmt: skip
        write = _mutated(CONV, CONV_SPEC, mutate)
        out.append(Variant(name, expect, lambda d, n=name, e=expect, w=write: w(d, n, e)))
    return out


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "hostile_corpus"
    for v in variants():
        folder = os.path.join(root, v.name)
        os.makedirs(folder, exist_ok=True)
        case = v.write(folder)
        print(f"{v.name:24s} {v.expect:8s} {case.model} {' '.join(case.spec_args)}")

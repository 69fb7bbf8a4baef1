"""Reading and checking a model file, before any preparation.

:func:`read_model` refuses what is not a model before reading it (a pipe, a
device, a file past protobuf's 2 GiB, external data outside the model's
folder) and :func:`check_graph` what ONNX itself calls invalid, with errors
that say what is wrong and where: truncated or non-finite initializers, two
definitions of one tensor, non-numeric inputs, ONNX operators unknown to the
declared opset or with the wrong number of inputs, dangling tensors and
cycles (:func:`topological_order`). :func:`wrap` builds a ``ModelWrapper``
in linear time.
"""

from __future__ import annotations

import os
import stat
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from .errors import SiraError

ModelLike = Union[str, os.PathLike, ModelWrapper, onnx.ModelProto]


def _wrap(proto: Union[bytes, onnx.ModelProto]) -> ModelWrapper:
    """``ModelWrapper(proto)``, which adds a ValueInfo to every initializer a
    node uses that has none, with that fix done in one pass (the
    constructor's own looks every tensor up by scanning the graph)."""
    model = ModelWrapper(proto, fix_missing_initializer_valueinfo=False)
    _add_initializer_value_info(model.graph, model.graph.node)
    return model


def wrap(proto: Union[bytes, onnx.ModelProto]) -> ModelWrapper:
    """A ModelWrapper around ``proto`` built in linear time (see :func:`_wrap`)."""
    return _wrap(proto)


def _add_initializer_value_info(graph: onnx.GraphProto, nodes) -> None:
    """Give each initializer read or written by ``nodes`` that has no
    ValueInfo one with its shape and element type, appended to
    ``graph.value_info`` in node order (what qonnx's
    ``check_all_tensor_shapes_specified(fix_missing_init_shape=True)`` does)."""
    described = {vi.name for vi in (*graph.input, *graph.output, *graph.value_info)}
    inits: dict[str, onnx.TensorProto] = {}
    for t in graph.initializer:
        inits.setdefault(t.name, t)
    for n in nodes:
        for name in (*n.input, *n.output):
            if name in inits and name not in described:
                t = inits[name]
                graph.value_info.append(helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
                described.add(name)


#: protobuf cannot hold a message past 2 GiB: a larger ONNX file is not a model
#: (weights that large live in external data files beside it)
MAX_MODEL_BYTES = 2**31


def regular_file(path: str, what: str, fix: str) -> os.stat_result:
    """``os.stat`` of ``path`` when it is a regular file, checked before it
    is opened (a FIFO would block forever, a device like /dev/zero would be
    read until memory runs out); else a SiraError naming ``what`` it should
    be and the ``fix``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SiraError(f"{what} '{path}' not found; {fix}") from None
    except OSError as e:
        raise SiraError(f"{what} '{path}' cannot be read ({e.strerror}); check the path and its permissions") from None
    if stat.S_ISDIR(st.st_mode):
        raise SiraError(f"{what} '{path}' is a folder; {fix}")
    if not stat.S_ISREG(st.st_mode):
        raise SiraError(f"{what} '{path}' is not a regular file (a pipe, socket or device); {fix}")
    return st


def _model_bytes(path: str) -> bytes:
    """The bytes of a model file, refusing what is not a regular file of a
    possible size before reading anything."""
    st = regular_file(path, "model file", "give the path to a QONNX .onnx file")
    if st.st_size == 0:
        raise SiraError(f"model file '{path}' is empty")
    if st.st_size >= MAX_MODEL_BYTES:
        raise SiraError(f"'{path}' is {st.st_size / 2**30:.1f} GiB, past ONNX's 2 GiB limit for one file; "
                        "save the weights as external data (onnx.save_model(..., save_as_external_data=True))")  # fmt: skip
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise SiraError(f"model file '{path}' cannot be read ({e.strerror}); check its permissions") from None


def _load_external_data(proto: onnx.ModelProto, path: str) -> None:
    """Read the tensors a model keeps in external files, relative to the
    model file's folder (not the working directory), and only from inside
    that folder."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    folder = os.path.dirname(os.path.abspath(path))
    tensors = [t for t in _all_tensors(proto.graph) if uses_external_data(t)]
    for tensor in tensors:
        location = ExternalDataInfo(tensor).location
        target = os.path.normpath(os.path.join(folder, location))
        if os.path.isabs(location) or os.path.commonpath([folder, target]) != folder:
            raise SiraError(f"initializer '{tensor.name}' of '{path}' points outside the model's folder ('{location}'); "
                            "keep external data files beside the model")  # fmt: skip
        if not os.path.isfile(target):
            raise SiraError(f"initializer '{tensor.name}' of '{path}' keeps its data in '{location}', which does not exist "
                            f"in {folder}; copy the data file beside the model")  # fmt: skip
    if tensors:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, folder)
        except Exception as e:
            raise SiraError(f"the external data of '{path}' cannot be read ({type(e).__name__}: {e})") from None


def _all_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors


def read_model(src: ModelLike) -> ModelWrapper:
    """A ModelWrapper around a file path, ModelProto or ModelWrapper (copied)."""
    if isinstance(src, (ModelWrapper, onnx.ModelProto)):
        proto = onnx.ModelProto()
        proto.CopyFrom(src.model if isinstance(src, ModelWrapper) else src)
        return _wrap(proto)
    path = os.fspath(src)
    data = _model_bytes(path)
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise SiraError(f"'{path}' is not an ONNX model (it could not be parsed: {type(e).__name__}); is the file truncated or of another format?") from None
    if not proto.graph.node and not proto.graph.output:
        raise SiraError(f"'{path}' parsed as ONNX but holds no graph (no nodes, no outputs); is the file truncated or of another format?")
    _load_external_data(proto, path)
    return _wrap(proto)


def check_graph(model: ModelWrapper) -> None:
    """Structural checks with errors that say what is wrong and where."""
    graph = model.graph
    if not graph.output:
        raise SiraError("the model has no graph outputs")
    for init in graph.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as e:
            raise SiraError(f"initializer '{init.name}' cannot be read ({e}); the file may be truncated") from None
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            users = [n.name or n.op_type for n in graph.node if init.name in n.input]
            bad = "NaN" if np.any(np.isnan(arr)) else "Inf"
            raise SiraError(
                f"initializer '{init.name}' (used by {', '.join(users) or 'no node'}) contains {bad}; "
                "re-export the model from a trained checkpoint without non-finite weights"
            )
    _check_single_assignment(graph)
    _check_input_types(graph)
    _check_standard_ops(model.model)
    topological_order(model)


#: element types the analysis can reason about (numbers; no strings, no complex)
NUMERIC_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
    onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32, onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
    onnx.TensorProto.BOOL,
})  # fmt: skip


def _check_single_assignment(graph: onnx.GraphProto) -> None:
    """Every tensor has one definition - one graph input, initializer or
    node output - as ONNX requires (``onnx.checker`` rejects the rest).
    With two, which value a consumer sees is undefined, and the hardware
    would compute whichever one sira happened to pick."""
    defined: dict[str, str] = {}

    def define(name: str, what: str) -> None:
        if not name:
            return
        if name in defined:
            raise SiraError(f"tensor '{name}' is defined twice ({defined[name]} and {what}); ONNX requires one definition "
                            "per tensor (static single assignment): rename one of them")  # fmt: skip
        defined[name] = what

    inits = {}
    for init in graph.initializer:
        if init.name in inits:
            raise SiraError(f"two initializers are named '{init.name}'; ONNX requires unique names: rename or remove one")
        inits[init.name] = init
    for i in graph.input:
        if i.name not in inits:
            define(i.name, "a graph input")
    for name in inits:
        define(name, "an initializer")
    for node in graph.node:
        for o in node.output:
            define(o, f"an output of node '{node.name or node.op_type}' ({node.op_type})")
    for o in graph.output:
        if o.name not in defined:
            raise SiraError(f"graph output '{o.name}' is computed by no node and is neither a graph input nor an initializer; "
                            "the model is incomplete")  # fmt: skip


def _check_standard_ops(proto: onnx.ModelProto) -> None:
    """Nodes of the ONNX domain must be ONNX operators of the model's
    opset, with as many inputs and outputs as their schema allows (what
    ``onnx.checker`` checks for them; other domains are qonnx's or custom)."""
    if proto.ir_version > onnx.IR_VERSION:
        raise SiraError(f"the model's ONNX IR version {proto.ir_version} is newer than this onnx ({onnx.__version__}) reads "
                        f"(up to {onnx.IR_VERSION}); re-export it with an older exporter or set ir_version")  # fmt: skip
    opset = next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        return
    if not 1 <= opset <= onnx.defs.onnx_opset_version():
        raise SiraError(f"the model declares ONNX opset {opset}, which does not exist (this onnx knows 1 to "
                        f"{onnx.defs.onnx_opset_version()}); re-export it with a released opset")  # fmt: skip
    for node in proto.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        label = f"node '{node.name or node.op_type}' ({node.op_type})"
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:
            raise SiraError(f"{label}: {node.op_type} is not an ONNX operator in opset {opset}; a custom op needs its own "
                            "domain (and sira has no rule for it)") from None  # fmt: skip
        n_in = len(node.input)
        n_out = len([o for o in node.output])
        if not schema.min_input <= n_in <= schema.max_input:
            raise SiraError(f"{label} has {n_in} input(s); {node.op_type} (opset {schema.since_version}) takes "
                            f"{schema.min_input} to {schema.max_input}")  # fmt: skip
        if not schema.min_output <= n_out <= schema.max_output:
            raise SiraError(f"{label} has {n_out} output(s); {node.op_type} (opset {schema.since_version}) gives "
                            f"{schema.min_output} to {schema.max_output}")  # fmt: skip


def _check_input_types(graph: onnx.GraphProto) -> None:
    """Graph inputs must be numeric tensors with non-negative dimensions."""
    inits = {x.name for x in graph.initializer}
    for i in graph.input:
        if i.name in inits:
            continue
        if not i.type.HasField("tensor_type"):
            raise SiraError(f"graph input '{i.name}' is not a tensor (it is a sequence, map or optional); sira analyzes tensors")
        elem = i.type.tensor_type.elem_type
        if elem and elem not in NUMERIC_TYPES:
            name = onnx.TensorProto.DataType.Name(elem) if elem in onnx.TensorProto.DataType.values() else str(elem)
            raise SiraError(f"graph input '{i.name}' has element type {name}; sira analyzes numeric tensors (float or integer)")
        for d in i.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value <= 0:
                kind = "negative" if d.dim_value < 0 else "zero"
                raise SiraError(f"graph input '{i.name}' declares a {kind} dimension ({d.dim_value}); fix its shape")


def topological_order(model: ModelWrapper) -> list:
    """Nodes in dependency order, preferring file order among ready nodes
    (Kahn's algorithm with a heap: O(n log n)).

    Raises a SiraError naming the culprit for a tensor that nothing produces
    and for a cycle."""
    import heapq

    graph = model.graph
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    produced = {o for n in graph.node for o in n.output if o}
    consumers: dict[str, list[int]] = {}
    missing = []
    for idx, n in enumerate(graph.node):
        deps = set()
        for i in n.input:
            if i in available:
                continue
            if i not in produced:
                raise SiraError(
                    f"node '{n.name or n.op_type}' ({n.op_type}) reads tensor '{i}', which no node produces and which is "
                    "neither a graph input nor an initializer; the model is incomplete"
                )
            deps.add(i)
        missing.append(len(deps))
        for i in deps:
            consumers.setdefault(i, []).append(idx)
    heap = [idx for idx, m in enumerate(missing) if m == 0]
    heapq.heapify(heap)
    order = []
    done: set[str] = set()
    while heap:
        idx = heapq.heappop(heap)
        order.append(graph.node[idx])
        for o in graph.node[idx].output:
            if o in done:
                continue
            done.add(o)
            for c in consumers.get(o, ()):
                missing[c] -= 1
                if missing[c] == 0:
                    heapq.heappush(heap, c)
    if len(order) != len(graph.node):
        stuck = [graph.node[i] for i in range(len(graph.node)) if missing[i] > 0]
        n = stuck[0]
        raise SiraError(
            f"the graph has a cycle: node '{n.name or n.op_type}' ({n.op_type}) depends on its own output "
            f"(through {len(stuck)} node(s)); ONNX graphs must be acyclic"
        )
    return order

"""Loading and preparing QONNX models.

:func:`load` turns a file or a ``ModelWrapper`` into the prepared model the
analysis works on: checked for the problems users actually hit (missing or
truncated files, NaN weights, cycles, dangling tensors), QCDQ pairs fused to
QONNX ``Quant``, then prepared the way qonnx's ``cleanup_model`` prepares it
(shape inference, constant folding that keeps the quantizers, unique readable
names).

qonnx's own cleanup is quadratic in the model size: its graph helpers
(``rename_tensor``, ``find_producer``, ``get_initializer``,
``get_tensor_shape``) scan the whole graph on every call, and
``ModelWrapper.transform`` re-runs a cleanup after each pass. :func:`prepare`
gives the same model with one index per pass instead, so loading no longer
dominates the analysis of large models.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import sys
import threading
import warnings
from collections.abc import Container
from typing import Optional

import numpy as np
import onnx
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from .errors import SiraError
from .modelfile import (  # noqa: F401  (topological_order: also sira.model's, where the transforms take it)
    ModelLike,
    _add_initializer_value_info,
    _wrap,
    check_graph,
    read_model,
    topological_order,
)
from .ops import Trait, ops_with



#: op types that quantize; a model without any is a float model
QUANTIZER_OPS = ops_with(Trait.QUANTIZER)

#: op types constant folding leaves in place even when all their inputs are
#: constant: sira reads the integer grid of a weight quantizer from the node.
#: qonnx's cleanup keeps Quant, BipolarQuant, QuantizeLinear and
#: DequantizeLinear; IntQuant and Trunc are kept too.
UNFOLDED_OPS = ops_with(Trait.KEPT_BY_FOLDING)
#: op types qonnx's cleanup moves into the qonnx domain (its "temporary fix")
QONNX_DOMAIN_OPS = ops_with(Trait.QONNX_DOMAIN)
#: op types whose initializer inputs qonnx puts last (SortCommutativeInputsInitializerLast)
COMMUTATIVE_OPS = ops_with(Trait.INITIALIZERS_LAST)


class _Silencer:
    """Silence for the threads inside a ``with quiet():`` block, and for
    them only: while any is, ``sys.stdout`` is a stream that drops what
    those threads write and passes on what every other thread writes, and
    ``warnings.showwarning`` drops their warnings the same way. (Swapping
    stdout and the warning filters per block, as ``redirect_stdout`` and
    ``catch_warnings`` do, would silence every thread, and two threads
    interleaving their blocks would leave stdout redirected.)"""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth: dict[int, int] = {}  # thread ident -> blocks it is inside
        self._stdout = None
        self._showwarning = None

    @contextlib.contextmanager
    def __call__(self):
        me = threading.get_ident()
        with self._lock:
            if not self._depth:
                self._install()
            self._depth[me] = self._depth.get(me, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._depth[me] -= 1
                if not self._depth[me]:
                    del self._depth[me]
                if not self._depth:
                    self._uninstall()

    def silenced(self) -> bool:
        return threading.get_ident() in self._depth

    def _install(self) -> None:
        self._stdout, self._showwarning = sys.stdout, warnings.showwarning
        sys.stdout = _ThreadFilteredStream(self._stdout, self)
        previous = self._showwarning

        def showwarning(*args, **kwargs):
            if not self.silenced():
                previous(*args, **kwargs)

        warnings.showwarning = showwarning

    def _uninstall(self) -> None:
        if isinstance(sys.stdout, _ThreadFilteredStream):  # unless someone replaced it meanwhile
            sys.stdout = self._stdout
        warnings.showwarning = self._showwarning


class _ThreadFilteredStream:
    """``stream``, minus what the threads ``silencer`` silences write."""

    def __init__(self, stream, silencer: _Silencer):
        self._stream = stream
        self._silencer = silencer

    def write(self, text: str) -> int:
        return len(text) if self._silencer.silenced() else self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


#: ``with quiet():`` silences the chatter of third-party libraries (prints
#: and warnings) in the calling thread
quiet = _Silencer()


def transform(model: ModelWrapper, transformation) -> ModelWrapper:
    """``model.transform(transformation)`` in linear time: the same copy,
    the same repeated ``apply`` until nothing changes, and the same cleanup
    afterwards (:func:`_cleanup`, qonnx's passes without their graph scans
    per tensor). ``model`` is left as it was."""
    current, changed = read_model(model), True
    while changed:
        current, changed = transformation.apply(current)
    _cleanup(current)
    return current


def reinfer_shapes(model: ModelWrapper, cleanup: bool = True) -> ModelWrapper:
    """``model.transform(InferShapes(), cleanup=cleanup)`` in linear time."""
    inferred = _infer_shapes(read_model(model))
    if cleanup:
        _cleanup(inferred)
    return inferred


def _decoded(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode() for x in v]
    return v


def node_attrs(node) -> dict:
    """A node's attributes as plain Python values (strings decoded)."""
    from onnx import helper

    return {a.name: _decoded(helper.get_attribute_value(a)) for a in node.attribute}


def node_attr(node, name: str, default=None):
    """One attribute of a node as a plain Python value, or ``default``."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return _decoded(helper.get_attribute_value(a))
    return default


def _fuse_qcdq(model: ModelWrapper) -> ModelWrapper:
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops and "DequantizeLinear" in ops:
        from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant

        model = model.transform(QCDQToQuant())
    return model


def prepare(model: ModelWrapper) -> ModelWrapper:
    """What qonnx's ``cleanup_model(model, preserve_qnt_ops=True)`` makes of
    ``model``, in about linear time plus one shape inference per folded
    constant node (``model`` itself is changed too).

    The same passes run in the same order with the same effect:
    InferShapes, GiveUniqueParameterTensors, FoldConstants (quantizers
    kept), FoldTransposeIntoQuantInit, RemoveUnusedTensors,
    RemoveStaticGraphInputs, GiveUniqueNodeNames, GiveReadableTensorNames,
    and after each the cleanup ``ModelWrapper.transform`` runs (see
    :func:`_cleanup`). The graph passes that have nothing to do are skipped
    after one look at the graph. Node order, input order and names all
    depend on that sequence (qonnx re-sorts the graph after every change),
    so it is reproduced step by step rather than computed from the end
    state.

    Differences: IntQuant and Trunc are not folded (see
    :data:`UNFOLDED_OPS`); and for graphs qonnx mishandles, an empty (absent
    optional) tensor name stays empty, where qonnx's renaming would wire it
    to a node output, and a tensor that is both graph input and output is
    accepted, where qonnx fails an assertion.
    """
    for n in model.graph.node:
        if n.op_type in QONNX_DOMAIN_OPS:
            n.domain = "qonnx.custom_op.general"
    model = _infer_shapes(model, strict=True)
    _cleanup(model)
    model = _fold_constants(model)
    if _fold_transposes_into_quant_inits(model.graph):
        _cleanup(model)
    renamed = _give_readable_names(model.graph)
    if renamed:
        import json

        model.set_metadata_prop(ORIGINAL_NAMES_KEY, json.dumps(renamed))
    return model


def _infer_shapes(model: ModelWrapper, strict: bool = False) -> ModelWrapper:
    """qonnx's InferShapes pass: QONNX custom ops hidden behind
    shape-compatible standard ops for onnx's shape inference. Two lookups
    that scan the graph are replaced by indexed ones: the custom ops'
    ValueInfo queries while hiding (:class:`_IndexedValueInfo`), and the
    wrapping of the result (:func:`_wrap`). ``model`` keeps the hidden ops;
    use the returned model. ``strict``: shapes the model declares that
    contradict what its ops compute (an input's batch changed but not its
    output's) are an error instead of being kept."""
    from onnx import shape_inference
    from qonnx.transformation.infer_shapes import _hide_finn_ops, _restore_finn_ops

    hidden = _hide_finn_ops(_IndexedValueInfo(model.model))
    try:
        inferred = _wrap(shape_inference.infer_shapes(model.model, strict_mode=strict))
    except shape_inference.InferenceError as e:
        detail = " ".join(str(e).split())
        if "existing shape differ" in detail:
            raise SiraError(f"the shapes the model declares contradict what its ops compute ({detail[:300]}); fix the "
                            "declared shapes (or drop the value_info) and export again") from None  # fmt: skip
        # strict inference also rejects declared element types it would infer
        # differently: those do not change any range, so they are let through
        inferred = _wrap(shape_inference.infer_shapes(model.model))
    _restore_finn_ops(inferred, hidden)
    return inferred


class _IndexedValueInfo(ModelWrapper):
    """A ModelWrapper over the same proto whose ``get_tensor_valueinfo`` is a
    dict lookup instead of a scan of all ValueInfos; qonnx's quantizers call
    it once each while being hidden for shape inference, which only replaces
    nodes, so the index stays valid."""

    def __init__(self, proto: onnx.ModelProto):
        super().__init__(proto, fix_missing_initializer_valueinfo=False)
        g = proto.graph
        self._value_info: dict[str, onnx.ValueInfoProto] = {}
        for vi in (*g.input, *g.output, *g.value_info):
            self._value_info.setdefault(vi.name, vi)

    def get_tensor_valueinfo(self, tensor_name: str) -> Optional[onnx.ValueInfoProto]:
        return self._value_info.get(tensor_name)


def _cleanup(model: ModelWrapper) -> None:
    """The cleanup qonnx's ``ModelWrapper.transform`` runs after every pass:
    RemoveUnusedTensors, RemoveStaticGraphInputs, SortGraph,
    SortCommutativeInputsInitializerLast, GiveUniqueParameterTensors.

    Unused tensors are removed before static inputs are, so an unused
    initializer that is also a graph input stays a (dynamic) graph input, as
    in qonnx. Nodes SortGraph drops leave unused tensors, which qonnx's next
    cleanup removes; here they go at once."""
    graph = model.graph
    _remove_unused_tensors(graph)
    inits = {t.name for t in graph.initializer}
    _remove_static_graph_inputs(graph, inits)
    if _sort_graph(graph):
        _remove_unused_tensors(graph)
        inits = {t.name for t in graph.initializer}
    _sort_commutative_inputs(graph, inits)
    _give_unique_parameter_tensors(graph, inits)


def _keep(container, keep) -> None:
    """Delete the items of a protobuf repeated field for which ``keep`` is false."""
    for i in reversed([i for i, x in enumerate(container) if not keep(x)]):
        del container[i]


def _remove_unused_tensors(graph: onnx.GraphProto) -> None:
    """qonnx's RemoveUnusedTensors: initializers, ValueInfos and annotations
    of tensors no node reads or writes."""
    used = {t for n in graph.node for t in (*n.input, *n.output)}
    _keep(graph.initializer, lambda t: t.name in used)
    _keep(graph.value_info, lambda vi: vi.name in used)
    _keep(graph.quantization_annotation, lambda qa: qa.tensor_name in used)


def _remove_static_graph_inputs(graph: onnx.GraphProto, inits: set[str]) -> None:
    """qonnx's RemoveStaticGraphInputs: graph inputs that are initializers
    become ValueInfos. qonnx deletes from the list it iterates, which skips
    the input after each one moved until its next pass; that order of the
    ValueInfos is kept."""
    while any(vi.name in inits for vi in graph.input):
        i = 0
        while i < len(graph.input):
            if graph.input[i].name in inits:
                graph.value_info.append(graph.input[i])
                del graph.input[i]
            i += 1


def _sort_graph(graph: onnx.GraphProto) -> bool:
    """qonnx's SortGraph: nodes ordered by depth (longest chain of producers
    above them), the current order among nodes of equal depth
    (``toposort_flatten``). Like qonnx it drops a node that has no producer
    above it, reads no initializer or graph input and feeds no node (e.g. an
    unused Constant). Returns whether a node was dropped."""
    nodes = list(graph.node)
    if len(nodes) <= 1:
        return False
    producer: dict[str, int] = {}
    for idx, n in enumerate(nodes):
        for o in n.output:
            producer.setdefault(o, idx)
    sources = {t.name for t in graph.initializer} | {vi.name for vi in graph.input}
    deps: dict[int, set[int]] = {}
    for idx, n in enumerate(nodes):
        preds = {producer[i] for i in n.input if i in producer}
        if preds:
            deps[idx] = preds - {idx}
        elif any(i in sources for i in n.input):
            deps[idx] = set()
    for pred in {p for d in deps.values() for p in d}:
        deps.setdefault(pred, set())
    users: dict[int, list[int]] = {idx: [] for idx in deps}
    for idx, d in deps.items():
        for p in d:
            users[p].append(idx)
    missing = {idx: len(d) for idx, d in deps.items()}
    depth = {idx: 0 for idx, m in missing.items() if m == 0}
    queue = list(depth)
    for p in queue:
        for u in users[p]:
            depth[u] = max(depth.get(u, 0), depth[p] + 1)
            missing[u] -= 1
            if missing[u] == 0:
                queue.append(u)
    if len(queue) != len(deps):
        raise SiraError("the graph has a cycle (through tensors produced by several nodes or empty tensor names); ONNX graphs must be acyclic")
    order = sorted(queue, key=lambda idx: (depth[idx], idx))
    if order != list(range(len(nodes))):
        del graph.node[:]
        graph.node.extend(nodes[idx] for idx in order)
    return len(order) < len(nodes)


def _sort_commutative_inputs(graph: onnx.GraphProto, inits: set[str]) -> None:
    """qonnx's SortCommutativeInputsInitializerLast: the initializer inputs
    of Add, Mul, ... after the dynamic ones, each group in its order."""
    for n in graph.node:
        if n.op_type in COMMUTATIVE_OPS:
            ins = list(n.input)
            ordered = [i for i in ins if i not in inits] + [i for i in ins if i in inits]
            if ordered != ins:
                del n.input[:]
                n.input.extend(ordered)


def _give_unique_parameter_tensors(graph: onnx.GraphProto, inits: set[str]) -> None:
    """qonnx's GiveUniqueParameterTensors: every read of an initializer after
    its first (in node order) gets its own copy, with a ValueInfo and the
    original's qonnx datatype annotation (FLOAT32 when it has none), so a
    pass rewriting one node's parameter leaves the others alone."""
    from qonnx.core.datatype import DataType

    seen: set[str] = set()
    repeats = []
    for n in graph.node:
        for k, name in enumerate(n.input):
            if name in inits:
                if name in seen:
                    repeats.append((n, k, name))
                seen.add(name)
    if not repeats:
        return
    protos: dict[str, onnx.TensorProto] = {}
    for t in graph.initializer:
        protos.setdefault(t.name, t)
    elem_types: dict[str, int] = {}
    for vi in (*graph.input, *graph.output, *graph.value_info):
        elem_types.setdefault(vi.name, vi.type.tensor_type.elem_type)
    datatypes: dict[str, str] = {}
    for qa in graph.quantization_annotation:
        entry = next((kv.value for kv in qa.quant_parameter_tensor_names if kv.key == "finn_datatype"), None)
        if entry is not None:
            datatypes.setdefault(qa.tensor_name, entry)
    taken = {t for n in graph.node for t in (*n.input, *n.output)} | set(protos) | set(elem_types)
    for n, k, name in repeats:
        copy_name = _fresh_name(name, taken)
        proto = onnx.TensorProto()
        proto.CopyFrom(protos[name])
        proto.name = copy_name
        graph.initializer.append(proto)
        graph.value_info.append(helper.make_tensor_value_info(copy_name, proto.data_type, list(proto.dims)))
        if name in datatypes:
            dt = DataType[datatypes[name]].name
        else:
            dt = "FLOAT16" if elem_types.get(name, proto.data_type) == onnx.TensorProto.FLOAT16 else "FLOAT32"
        qa = graph.quantization_annotation.add(tensor_name=copy_name)
        qa.quant_parameter_tensor_names.add(key="finn_datatype", value=dt)
        n.input[k] = copy_name


def fresh_name(base: str, taken: set[str]) -> str:
    """``base`` if it is not in ``taken``, else ``base_1``, ``base_2``, ...:
    the first free one, which ``taken`` then holds."""
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _fresh_name(base: str, taken: set[str]) -> str:
    """``base_<k>`` for the first k not in ``taken`` (which gets it)."""
    k = 0
    while f"{base}_{k}" in taken:
        k += 1
    name = f"{base}_{k}"
    taken.add(name)
    return name


def _foldable(node: onnx.NodeProto, inits: Container[str], described: Container[str]) -> bool:
    """Whether qonnx's FoldConstants replaces ``node`` by its result: a node
    without inputs, one whose inputs are all initializers, or a Shape of a
    tensor of known shape; never a quantizer (:data:`UNFOLDED_OPS`)."""
    if node.op_type in UNFOLDED_OPS:
        return False
    if not node.input or all(i in inits for i in node.input):
        return True
    return node.op_type == "Shape" and (node.input[0] in inits or node.input[0] in described)


def _fold_constants(model: ModelWrapper) -> ModelWrapper:
    """qonnx's FoldConstants: the first foldable node in graph order is
    executed (qonnx's ``execute_node``), its output becomes an initializer,
    shapes are re-inferred and the graph cleaned; repeated until nothing is
    foldable. One node at a time, as in qonnx, because each fold re-sorts
    the graph, which decides the next fold and the final node order; a model
    without anything to fold costs one look at its nodes."""
    import qonnx.core.onnx_exec as oxe
    from qonnx.util.onnx import valueinfo_to_tensor

    opset = model.model.opset_import[0].version  # what FoldConstants executes with
    while True:
        graph = model.graph
        inits = {t.name: t for t in reversed(graph.initializer)}  # the first of a name wins
        vis = {vi.name: vi for vi in (*graph.input, *graph.output, *graph.value_info)}
        idx, node = next(((i, n) for i, n in enumerate(graph.node) if _foldable(n, inits, vis)), (None, None))
        if node is None:
            return model
        _add_initializer_value_info(graph, [node])  # execute_node declares the inputs from them
        context = {"": None}
        for name in (*node.input, *node.output):
            if name in inits:
                context[name] = numpy_helper.to_array(inits[name])
            elif name in vis:
                context[name] = valueinfo_to_tensor(vis[name])
        oxe.execute_node(node, context, graph, opset_version=opset)
        model.set_initializer(node.output[0], context[node.output[0]])
        del graph.node[idx]
        model = _infer_shapes(model)
        _cleanup(model)


def _fold_transposes_into_quant_inits(graph: onnx.GraphProto) -> bool:
    """qonnx's FoldTransposeIntoQuantInit: a Transpose whose producer is a
    Quant or BipolarQuant of initializers only is removed, and every one of
    those initializers whose rank matches the permutation is transposed
    instead (moving to the end of the initializer list, as qonnx's
    ``set_initializer`` does). Returns whether a node was removed.

    qonnx removes nodes from the list it is iterating, which skips the node
    after each removed one until its next pass; that is reproduced because
    it decides the order in which initializers are rewritten."""
    if not any(n.op_type == "Transpose" for n in graph.node):
        return False
    nodes = list(graph.node)
    producer: dict[str, onnx.NodeProto] = {}
    for n in reversed(nodes):
        for o in n.output:
            producer[o] = n
    inits = {t.name: t for t in reversed(graph.initializer)}
    values: dict[str, np.ndarray] = {}  # rewritten initializers, in the order of their last rewrite
    removed = False
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(nodes):
            node = nodes[i]
            quant = producer.get(node.input[0]) if node.op_type == "Transpose" and len(node.input) == 1 else None
            if quant is not None and quant.op_type in ops_with(Trait.TRANSPOSE_FOLDS_INTO) and all(x in inits for x in quant.input):
                perm_attr = next((a for a in node.attribute if a.name == "perm"), None)
                perm = list(perm_attr.ints) if perm_attr is not None else None
                for name in quant.input:
                    value = values[name] if name in values else numpy_helper.to_array(inits[name])
                    if perm is None or len(perm) == value.ndim:
                        values.pop(name, None)
                        values[name] = value.transpose(perm)
                        changed = True
                if producer.get(quant.output[0]) is quant:
                    del producer[quant.output[0]]
                quant.output[0] = node.output[0]
                producer[node.output[0]] = quant
                del nodes[i]
                removed = True
            i += 1
    if not removed:
        return False
    del graph.node[:]
    graph.node.extend(nodes)
    _keep(graph.initializer, lambda t: t.name not in values)
    _keep(graph.value_info, lambda vi: vi.name not in values)
    for name, value in values.items():
        proto = numpy_helper.from_array(value, name)
        graph.initializer.append(proto)
        vi = helper.make_tensor_value_info(name, proto.data_type, list(value.shape))
        at = next((k for k, x in enumerate(graph.output) if x.name == name), None)
        if at is None:
            graph.value_info.append(vi)
        else:  # an initializer that is also a graph output keeps its place there
            graph.output[at].CopyFrom(vi)
    return True


#: metadata key: JSON map of the names a model was given -> names after preparation
ORIGINAL_NAMES_KEY = "sira_original_names"


def original_names(model: ModelWrapper) -> dict[str, str]:
    """Names of the model as it was given (nodes and tensors that survived
    preparation) -> their names after :func:`load` (only those that changed)."""
    import json

    raw = model.get_metadata_prop(ORIGINAL_NAMES_KEY)
    return json.loads(raw) if raw else {}


def _give_readable_names(graph: onnx.GraphProto) -> dict[str, str]:
    """qonnx's GiveUniqueNodeNames then GiveReadableTensorNames, with one
    mapping applied once: nodes are named ``{op_type}_{k}`` (k counting per
    op type in graph order, whatever their old names), a node's outputs
    ``{node}_out{j}``, its initializer inputs ``{node}_param{j}`` (j
    counting initializer inputs only), graph inputs ``global_in``,
    ``global_in_1``, ... and outputs ``global_out``, ``global_out_1``, ...;
    later names win, as qonnx renames in that order (an output of the graph
    is ``global_out`` even though a node wrote it). Returns the old -> new
    map of the names that changed."""
    counts: dict[str, int] = {}
    renamed: dict[str, str] = {}
    for n in graph.node:
        k = counts.get(n.op_type, 0)
        counts[n.op_type] = k + 1
        if n.name and n.name != f"{n.op_type}_{k}":
            renamed[n.name] = f"{n.op_type}_{k}"
        n.name = f"{n.op_type}_{k}"
    inits = {t.name for t in graph.initializer}
    names: dict[str, str] = {}
    for n in graph.node:
        for j, o in enumerate(n.output):
            names[o] = f"{n.name}_out{j}"
        for j, t in enumerate(t for t in n.input if t in inits):
            names[t] = f"{n.name}_param{j}"
    for k, vi in enumerate(graph.input):
        names[vi.name] = "global_in" if k == 0 else f"global_in_{k}"
    for k, vi in enumerate(graph.output):
        names[vi.name] = "global_out" if k == 0 else f"global_out_{k}"
    names.pop("", None)
    for n in graph.node:
        for field in (n.input, n.output):
            for k, t in enumerate(field):
                if t in names:
                    field[k] = names[t]
    for container in (graph.initializer, graph.input, graph.output, graph.value_info):
        for x in container:
            if x.name in names:
                x.name = names[x.name]
    for qa in graph.quantization_annotation:
        if qa.tensor_name in names:
            qa.tensor_name = names[qa.tensor_name]
    renamed.update((old, new) for old, new in names.items() if old != new)
    return renamed


def load(src: ModelLike, *, rename: bool = True) -> ModelWrapper:
    """Read and prepare a model for analysis.

    With ``rename`` (the default for files) tensors get qonnx's unique,
    readable names (``global_in``, ``MatMul_0_out0``, ...); the original
    graph input names are kept in the metadata key ``sira_input_aliases`` so
    an input spec may use either. Without it, names are left as they are
    (what an in-memory ``ModelWrapper`` user expects).
    """
    model = read_model(src)
    check_graph(model)
    inits = {x.name for x in model.graph.initializer}
    original_inputs = [i.name for i in model.graph.input if i.name not in inits]
    try:
        with quiet():
            model = _fuse_qcdq(model)
            if rename:
                model = prepare(model)
            else:  # qonnx's InferShapes and the cleanup its transform runs, in linear time
                model = _infer_shapes(model, strict=True)
                _cleanup(model)
    except SiraError:
        raise
    except Exception as e:
        raise SiraError(
            f"preparing the model with qonnx failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "check that it is a valid QONNX/ONNX model (qonnx-cleanup should accept it)"
        ) from e
    model.set_metadata_prop("sira_prepared", "1")
    new_inputs = [i.name for i in model.graph.input]
    if rename and len(new_inputs) == len(original_inputs):
        aliases = {o: n for o, n in zip(original_inputs, new_inputs) if o != n}
        if aliases:
            import json

            model.set_metadata_prop("sira_input_aliases", json.dumps(aliases))
    return model


def input_aliases(model: ModelWrapper) -> dict[str, str]:
    import json

    raw = model.get_metadata_prop("sira_input_aliases")
    return json.loads(raw) if raw else {}


def has_quantizers(model: ModelWrapper) -> bool:
    return any(n.op_type in QUANTIZER_OPS for n in model.graph.node)


def tensor_shapes(model: ModelWrapper) -> dict[str, Optional[tuple]]:
    """name -> shape for every tensor with a known static shape (one pass)."""
    shapes: dict[str, Optional[tuple]] = {}
    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            dims = []
            ok = True
            for d in t.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                else:
                    ok = False
                    break
            shapes[vi.name] = tuple(dims) if ok else None
    for init in g.initializer:
        shapes[init.name] = tuple(int(d) for d in init.dims)
    return shapes


def tensor_datatypes(model: ModelWrapper) -> dict[str, str]:
    """name -> finn_datatype annotation (one pass over the annotations)."""
    out = {}
    for qa in model.graph.quantization_annotation:
        for kv in qa.quant_parameter_tensor_names:
            if kv.key == "finn_datatype":
                out[qa.tensor_name] = kv.value
    return out


def _without(message, skip: str):
    """A copy of a protobuf ``message`` without its field ``skip`` (the
    other fields copied one by one, so the skipped one is never copied)."""
    rest = type(message)()
    for field, value in message.ListFields():
        if field.name == skip:
            continue
        if hasattr(value, "extend"):  # a repeated field
            getattr(rest, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(rest, field.name).CopyFrom(value)
        else:
            setattr(rest, field.name, value)
    return rest


def model_digest(model: ModelWrapper) -> "hashlib._Hash":
    """A hash (to update further, or read) of a model's whole content: the
    model and its graph without the initializers, then each initializer.
    The same bytes a serialization of the whole model holds, but never one
    buffer of all the weights (whose allocation alone costs as much as the
    hash)."""
    proto = model.model
    digest = hashlib.sha1(_without(proto, "graph").SerializeToString())
    digest.update(_without(proto.graph, "initializer").SerializeToString())
    for init in proto.graph.initializer:
        data = init.SerializeToString()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest

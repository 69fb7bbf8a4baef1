"""Loading and preparing QONNX models.

:func:`load` turns a file or a ``ModelWrapper`` into the prepared model the
analysis works on: checked for the problems users actually hit (missing or
truncated files, NaN weights, cycles, dangling tensors), QCDQ pairs fused to
QONNX ``Quant``, then qonnx's cleanup (shape inference, constant folding that
keeps the quantizers, unique readable names).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from typing import Optional, Union

import numpy as np
import onnx
from onnx import numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from .errors import SiraError

ModelLike = Union[str, os.PathLike, ModelWrapper, onnx.ModelProto]

#: op types that quantize; a model without any is a float model
QUANTIZER_OPS = {"Quant", "IntQuant", "BipolarQuant", "Trunc", "MultiThreshold", "QuantizeLinear", "DequantizeLinear", "FloatQuant"}


@contextlib.contextmanager
def quiet():
    """Silence the chatter of third-party libraries (warnings and prints)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def read_model(src: ModelLike) -> ModelWrapper:
    """A ModelWrapper around a file path, ModelProto or ModelWrapper (copied)."""
    if isinstance(src, ModelWrapper):
        return ModelWrapper(src.model.SerializeToString())
    if isinstance(src, onnx.ModelProto):
        return ModelWrapper(src.SerializeToString())
    path = os.fspath(src)
    if not os.path.exists(path):
        raise SiraError(f"model file '{path}' not found; give the path to a QONNX .onnx file")
    if os.path.isdir(path):
        raise SiraError(f"'{path}' is a folder; give the path to a QONNX .onnx file")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise SiraError(f"model file '{path}' is empty")
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise SiraError(f"'{path}' is not an ONNX model (it could not be parsed: {type(e).__name__}); is the file truncated or of another format?") from None
    if not proto.graph.node and not proto.graph.output:
        raise SiraError(f"'{path}' parsed as ONNX but holds no graph (no nodes, no outputs); is the file truncated or of another format?")
    return ModelWrapper(proto)


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
    topological_order(model)


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


def _fuse_qcdq(model: ModelWrapper) -> ModelWrapper:
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops and "DequantizeLinear" in ops:
        from qonnx.transformation.qcdq_to_qonnx import QCDQToQuant

        model = model.transform(QCDQToQuant())
    return model


def load(src: ModelLike, *, rename: bool = True) -> ModelWrapper:
    """Read and prepare a model for analysis.

    With ``rename`` (the default for files) tensors get qonnx's unique,
    readable names (``global_in``, ``MatMul_0_out0``, ...); the original
    graph input names are kept in the metadata key ``sira_input_aliases`` so
    an input spec may use either. Without it, names are left as they are
    (what an in-memory ``ModelWrapper`` user expects).
    """
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.util.cleanup import cleanup_model

    model = read_model(src)
    check_graph(model)
    original_inputs = [i.name for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
    try:
        with quiet():
            model = _fuse_qcdq(model)
            if rename:
                model = cleanup_model(model, preserve_qnt_ops=True)
            else:
                model = model.transform(InferShapes())
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

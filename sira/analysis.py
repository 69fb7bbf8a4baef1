"""The analysis driver: one topological pass, one rule per op type.

Cost is linear in model size: shapes and datatype annotations are read into
dictionaries once, every node is visited once, and no model is copied or
re-inferred per node (the published reference re-ran whole-model passes per
node and was quadratic in depth).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import pickle
import re
import weakref
from collections.abc import Mapping
from fractions import Fraction
from typing import Iterator, Optional

import numpy as np
from onnx import numpy_helper
from qonnx.core.modelwrapper import ModelWrapper

from . import model as mdl
from .errors import RuleError, SiraError, node_error
from .ops import Trait, has_trait
from .inputspec import MAX_SPEC_BYTES, SpecLike, resolve_inputs
from .range import ScaledIntRange
from .rules import EXACT, RULES, RuleContext


@dataclasses.dataclass(frozen=True)
class AnalysisWarning:
    """Something the user should know: an op without a rule, lost precision."""

    kind: str  # "fallback" | "constant-exec" | "note"
    node: str
    op_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}): {self.message}"


class RangeReport(Mapping):
    """Result of :func:`analyze`: tensor name -> :class:`ScaledIntRange`.

    Besides the mapping it carries the prepared model (whose tensor names the
    keys refer to), the producing op of every tensor, the resolved input
    ranges and the warnings.
    """

    def __init__(self, model: ModelWrapper, ranges: dict, producers: dict, input_ranges: dict, warnings: list):
        self.model = model
        self.ranges = ranges
        self.producers = producers
        self.input_ranges = input_ranges
        self.warnings = warnings

    def __getitem__(self, name: str) -> ScaledIntRange:
        return self.ranges[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    @property
    def fallbacks(self) -> list[AnalysisWarning]:
        return [w for w in self.warnings if w.kind == "fallback"]

    def dynamic_tensors(self) -> list[str]:
        """Names of tensors computed at run time (not constants)."""
        return [n for n, r in self.ranges.items() if not r.is_const]

    def to_json(self) -> dict:
        from .report import report_json

        return report_json(self)


def _initializer_ranges(model: ModelWrapper) -> dict[str, ScaledIntRange]:
    out = {}
    for init in model.graph.initializer:
        key = hashlib.blake2b(init.SerializeToString(), digest_size=32).digest()
        r = _CONSTANTS.get(key)
        if r is None:
            try:
                r = ScaledIntRange.constant(numpy_helper.to_array(init), source=init.name)
            except ValueError as e:
                raise SiraError(f"initializer '{init.name}': {e}") from None
            _CONSTANTS[key] = r
            while len(_CONSTANTS) > CONSTANTS_SIZE:
                _CONSTANTS.popitem(last=False)
        else:
            _CONSTANTS.move_to_end(key)
        out[init.name] = r
    return out


#: ranges of initializers kept for reuse, by their serialized tensor (name,
#: type, shape, values): the rewrites of a model keep most weights as they
#: are, and a weight's range is the costliest constant to build
CONSTANTS_SIZE = 4096
_CONSTANTS: "collections.OrderedDict[bytes, ScaledIntRange]" = collections.OrderedDict()


def _execute_constant_node(node, values: dict, model: ModelWrapper, opset: int) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants with qonnx's executor."""
    from qonnx.core.onnx_exec import execute_node

    ctx = {name: v for name, v in values.items()}
    for o in node.output:
        ctx.setdefault(o, None)
    with mdl.quiet():
        execute_node(node, ctx, model.graph, opset_version=opset)
    return [np.asarray(ctx[o]) for o in node.output]


def _fallback(node, ctx: RuleContext) -> list[ScaledIntRange]:
    """Widest sound range for the outputs of an op without a rule: its
    integer output datatype if annotated, else unbounded (a following
    quantizer re-bounds it)."""
    from .inputspec import range_from_datatype

    outs = []
    for i, o in enumerate(node.output):
        shape = ctx.out_shapes[i]
        if shape is None:
            raise node_error(node, f"no rule for op type {node.op_type} and no inferred shape for its output '{o}'")
        dt = ctx.out_datatypes[i]
        r = range_from_datatype(o, dt, shape) if dt else None
        if r is not None:
            r = r.replace(exact=False, fallback=True, notes=(f"no rule for {node.op_type}: range from its output datatype {dt}",))
        else:
            r = ScaledIntRange.unbounded(shape, note=f"no rule for {node.op_type}: range unbounded", fallback=True)
        outs.append(r)
    return outs


def default_opset(model: ModelWrapper) -> int:
    for imp in model.model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 13


def analyze(model, input_spec: SpecLike = None) -> RangeReport:
    """Scaled-integer range analysis of a QONNX model.

    ``model`` is a path, a ``ModelWrapper`` or a ``ModelProto``. A path is
    loaded and prepared with :func:`sira.load` (tensors get readable names);
    an in-memory model keeps its tensor names. ``input_spec`` is ``(lo, hi)``
    for every input, a dict or a JSON file (see :mod:`sira.inputspec`);
    without one, inputs need an integer ``finn_datatype`` annotation.

    Usable in the qonnx idiom: ``model.analysis(sira.analyze)``.
    """
    if isinstance(model, ModelWrapper) and model.get_metadata_prop("sira_prepared") == "1":
        prepared = model
    else:
        prepared = mdl.load(model, rename=not isinstance(model, ModelWrapper))
    key = _memo_key(prepared, input_spec)
    if key is None:
        return analyze_prepared(prepared, input_spec)
    report = _RECENT.get(key)
    if report is None:
        report = analyze_prepared(prepared, input_spec)
        _RECENT[key] = report
        while len(_RECENT) > MEMO_SIZE:
            _RECENT.popitem(last=False)
    else:
        _RECENT.move_to_end(key)
    return RangeReport(prepared, dict(report.ranges), dict(report.producers), dict(report.input_ranges), list(report.warnings))


#: analyses kept for reuse: optimize analyzes each rewrite where it checks
#: it and again where the next pass reads it, and a pass may leave a model
#: as it found it
MEMO_SIZE = 4
_RECENT: "collections.OrderedDict[bytes, RangeReport]" = collections.OrderedDict()


def _plain(value):
    """JSON form of the numbers a spec may hold besides JSON's own (other
    objects have no content to key on: TypeError, no reuse)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    raise TypeError(type(value).__name__)


def _memo_key(model: ModelWrapper, input_spec: SpecLike):
    """A digest of everything the analysis reads: the serialized model and
    the input spec's content (a spec file's bytes), or None for a spec that
    has no stable content to key on. The analysis is a pure function of
    these, so equal keys give equal reports; ranges are immutable, and the
    caller gets its own mappings and its own model."""
    if isinstance(input_spec, (str, os.PathLike)):
        if not os.path.isfile(input_spec) or os.path.getsize(input_spec) > MAX_SPEC_BYTES:
            return None  # a pipe, a folder, a missing or huge file: the spec loader says what is wrong
        try:
            with open(input_spec, "rb") as f:
                spec = f.read()
        except OSError:
            return None
    else:
        try:
            spec = json.dumps(input_spec, sort_keys=True, default=_plain).encode()
        except (TypeError, ValueError):
            return None
    digest = mdl.model_digest(model)
    digest.update(b"\0" + spec)
    return digest.digest()


def analyze_prepared(model: ModelWrapper, input_spec: SpecLike = None) -> RangeReport:
    """The pass itself, on a model already prepared by :func:`sira.load`."""
    shapes = mdl.tensor_shapes(model)
    dtypes = mdl.tensor_datatypes(model)
    order = mdl.topological_order(model)
    opset = default_opset(model)

    graph_inputs = [
        (i.name, shapes.get(i.name), dtypes.get(i.name))
        for i in model.graph.input
        if i.name not in {x.name for x in model.graph.initializer}
    ]
    for name, shape, _ in graph_inputs:
        if shape is None:
            raise SiraError(f"graph input '{name}' has no static shape; fix the batch size and spatial dims (e.g. with qonnx-cleanup --override-inpsize)")
    if input_spec is None and not mdl.has_quantizers(model) and not any(dt and dt != "FLOAT32" for _, _, dt in graph_inputs):
        raise SiraError(
            "this is a float model: it has no quantizers (Quant, BipolarQuant, Trunc, MultiThreshold, QuantizeLinear) "
            "and its inputs carry no integer datatype; sira analyzes quantized (QONNX) models. Export it with "
            "quantizers (e.g. from Brevitas or QKeras), or give --input-range LO,HI to bound it anyway"
        )
    input_ranges = resolve_inputs(graph_inputs, input_spec, aliases=mdl.input_aliases(model))

    ranges: dict[str, ScaledIntRange] = _initializer_ranges(model)
    producers: dict[str, str] = {name: "initializer" for name in ranges}
    for name, r in input_ranges.items():
        ranges[name] = r
        producers[name] = "input"
    warnings: list[AnalysisWarning] = []

    try:
        _propagate(model, order, shapes, dtypes, opset, ranges, producers, warnings)
    except SiraError as e:
        raise SiraError(in_file_names(str(e), model)) from None
    return RangeReport(model, ranges, producers, input_ranges, warnings)


def in_file_names(message: str, model: ModelWrapper) -> str:
    """``message`` with every quoted name that :func:`sira.load` gave a node
    or tensor followed by the name it has in the user's file, so that an
    error points at something the user can find."""
    renamed = {new: old for old, new in mdl.original_names(model).items()}
    if not renamed:
        return message
    return re.sub(r"'([^']+)'", lambda m: f"'{m.group(1)}' ('{renamed[m.group(1)]}' in the file)" if m.group(1) in renamed else m.group(0), message)


def _propagate(model, order, shapes, dtypes, opset, ranges, producers, warnings) -> None:
    """One rule per node in topological order, filling ``ranges``."""
    for node in order:
        ins = [ranges[i] if i else None for i in node.input]
        ctx = RuleContext(
            node=node,
            inputs=ins,
            out_shapes=[shapes.get(o) for o in node.output],
            out_datatypes=[dtypes.get(o) for o in node.output],
            opset=opset,
        )
        key = _node_key(ctx)
        reused = _NODE_RESULTS.get(key)
        if reused is not None:
            _NODE_RESULTS.move_to_end(key)
            outs, said = reused
            warnings.extend(said)
        else:
            before = len(warnings)
            outs = _evaluate(node, ctx, model, opset, warnings)
            _check_defined(node, ins, outs)
            if len(outs) != len(node.output):
                raise node_error(node, f"internal error: rule returned {len(outs)} ranges for {len(node.output)} outputs")
            _NODE_RESULTS[key] = (outs, warnings[before:])
            while len(_NODE_RESULTS) > NODE_RESULTS_SIZE:
                _NODE_RESULTS.popitem(last=False)
        for o, r, shape in zip(node.output, outs, ctx.out_shapes):
            if not o:
                continue
            if shape is not None and tuple(shape) != tuple(r.shape):
                raise node_error(node, f"internal error: rule gave shape {list(r.shape)} for '{o}', shape inference says {list(shape)}")
            ranges[o] = r
            producers[o] = node.op_type


#: rule results kept for reuse, keyed by everything a rule reads (the
#: node, its output shapes and datatypes, the opset, its input ranges): a
#: rewrite leaves most nodes and most ranges as they were, so the analysis
#: of a rewritten model recomputes only what changed and what it feeds.
#: Ranges are immutable, so a reused one is shared.
NODE_RESULTS_SIZE = 8192
_NODE_RESULTS: "collections.OrderedDict[bytes, tuple[list, list]]" = collections.OrderedDict()
_DIGESTS: "weakref.WeakKeyDictionary[ScaledIntRange, bytes]" = weakref.WeakKeyDictionary()


def _range_digest(r: Optional[ScaledIntRange]) -> bytes:
    """A digest of a range's whole content (its pickle: bounds, grid,
    flags, provenance, notes), once per range object."""
    if r is None:
        return b"-"
    d = _DIGESTS.get(r)
    if d is None:
        d = hashlib.blake2b(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL), digest_size=32).digest()
        _DIGESTS[r] = d
    return d


def _node_key(ctx: RuleContext) -> bytes:
    h = hashlib.blake2b(ctx.node.SerializeToString(), digest_size=32)
    h.update(repr((ctx.out_shapes, ctx.out_datatypes, ctx.opset)).encode())
    for r in ctx.inputs:
        h.update(_range_digest(r))
    return h.digest()


def _finite(r: ScaledIntRange) -> bool:
    return bool(np.all(np.isfinite(r.lo)) and np.all(np.isfinite(r.hi)))


def _check_defined(node, ins: list, outs: list) -> None:
    """An op that can produce NaN - or overflow to infinity from finite
    inputs - somewhere on its proven input range has no defined result
    there: the model itself is broken at this node, and no range (nor any
    hardware) downstream would mean anything. Say so, naming the node.
    (Range bounds are never NaN - the value type refuses them - so NaN can
    only be in a constant's value.)"""
    for o, r in zip(node.output, outs):
        if r.fallback:
            continue
        if r.is_const and np.any(np.isnan(r.value)):
            raise node_error(node, f"can produce NaN in '{o}' for inputs in their proven ranges (a division by a range that "
                                   "contains 0, a square root or logarithm of a negative value, inf - inf); fix the model "
                                   "or constrain its inputs (--input-range / --input-spec)")  # fmt: skip
        if not _finite(r) and all(_finite(x) for x in ins if x is not None):
            raise node_error(node, f"can produce an infinite value in '{o}' for inputs in their proven ranges (a division "
                                   "by a range that reaches 0, a logarithm of 0, values past the float range); fix the model "
                                   "or constrain its inputs (--input-range / --input-spec)")  # fmt: skip


#: elementwise ops whose parameters are laid along an axis, not broadcast
_NOT_NUMPY_BROADCAST = frozenset({"BatchNormalization", "MultiThreshold", "QuantizeLinear", "DequantizeLinear"})


def _check_broadcast(node, ctx: RuleContext) -> None:
    """The inputs of an elementwise op or a quantizer (scale, zero-point and
    bit width against the data) must broadcast against each other, as ONNX
    requires; a mismatch is the model's error, named as such."""
    if node.op_type in _NOT_NUMPY_BROADCAST or not (has_trait(node.op_type, Trait.ELEMENTWISE) or has_trait(node.op_type, Trait.QUANTIZER)):
        return
    shapes = [tuple(r.shape) for r in ctx.inputs if r is not None]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        names = ", ".join(f"'{name}' {list(shape)}" for name, shape in zip([i for i in node.input if i], shapes))
        raise node_error(node, f"input shapes do not broadcast ({names}); fix the shapes of the initializers") from None


def _evaluate(node, ctx: RuleContext, model, opset, warnings) -> list[ScaledIntRange]:
    rule = RULES.get(node.op_type)
    present = [r for r in ctx.inputs if r is not None]
    all_const = bool(present) and all(r.is_const for r in present)
    if all_const and not (rule and rule.handles_constants):
        try:
            values = _execute_constant_node(node, {i: r.value for i, r in zip(node.input, ctx.inputs) if r is not None}, model, opset)
            return [ScaledIntRange.constant(v) for v in values]
        except Exception as e:  # fall through to the rule, which may still cope
            if rule is None:
                warnings.append(AnalysisWarning("constant-exec", node.name, node.op_type, f"could not evaluate constant node ({e}); using fallback range"))
    if rule is None:
        warnings.append(
            AnalysisWarning(
                "fallback",
                node.name,
                node.op_type,
                f"no range rule for {node.op_type}: outputs {', '.join(o for o in node.output if o)} get the widest sound range "
                "(their integer datatype if annotated, else unbounded); precision is lost until the next quantizer",
            )
        )
        return _fallback(node, ctx)
    _check_broadcast(node, ctx)
    try:
        outs = list(rule.fn(ctx))
    except RuleError as e:
        raise node_error(node, str(e)) from None
    inputs_exact = all(r.exact for r in present)
    if rule.exactness != EXACT or not inputs_exact:
        outs = [r if not r.exact else r.replace(exact=False) for r in outs]
    return outs

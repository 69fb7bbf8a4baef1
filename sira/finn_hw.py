"""FINN's hardware graphs: the per-channel ranges of their streams, and
sira's proven widths written into their nodes.

After FINN's ``step_convert_to_hw`` a model is a chain of FINN hardware
nodes (``MVAU_hls``, ``Thresholding_rtl``, ``ConvolutionInputGenerator_rtl``
...) whose datatypes FINN chose from datatypes alone: an accumulator holds
every dot product of inputs anywhere in the input *datatype*. sira proves
narrower ranges where inputs cannot reach every value of their datatype (a
threshold layer whose channels cannot reach every level, an input on an
integer grid, zero padding). FINN renames tensors and nodes on the way and
works in its own coordinates (an XNOR-popcount unit counts agreements, a
bipolar stream carries bits), so nothing is matched by name: the ranges are
proven again on FINN's own graph, node by node in graph order, with FINN's
own weights and thresholds, exactly (Python integers; a float threshold is
compared with Python's exact mixed comparisons).

:func:`stream_ranges` gives every stream's range per element of its last
(channel) axis; :class:`ApplyWidths` writes the accumulator, threshold and
output datatypes they prove into the MVAU / VVAU / Thresholding nodes:
never wider than FINN's, never narrower than proven; thresholds outside the
proven input range are clipped to it (``count(x >= t)`` is unchanged for
every ``x`` in the range), so they fit the narrower type. A Thresholding
node that outputs its input for every value of its input datatype is
removed (a wire, which FINN would build as a threshold unit).

A node kind with no range rule passes on the range its output datatype
annotation allows (sound: the datatype holds every value), or none for a
float stream.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Callable, Optional

import numpy as np
from onnx import helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from . import hw
from . import numerics as nx
from .errors import SiraError
from .inputspec import load_spec, resolve_inputs
from .model import node_attr
from .requant import is_identity

#: the ONNX domain of FINN's hardware nodes
FINN_DOMAIN = "finn.custom_op.fpgadataflow"


def is_finn_hw(node) -> bool:
    return node.domain.startswith(FINN_DOMAIN)


def finn_kind(node) -> str:
    """FINN's layer kind of a node: ``MVAU_hls`` and ``MVAU_rtl`` are ``MVAU``."""
    op = node.op_type
    for suffix in ("_hls", "_rtl"):
        if op.endswith(suffix):
            return op[: -len(suffix)]
    return op


def has_finn_hw(model: ModelWrapper) -> bool:
    """True when the graph holds FINN hardware nodes (after FINN's
    ``step_convert_to_hw``)."""
    return any(is_finn_hw(n) for n in model.graph.node)


@dataclasses.dataclass(frozen=True)
class StreamRange:
    """Range of a stream per element of its last axis: ``lo[i] <= v <= hi[i]``.
    Integer streams hold Python ints; a float stream (the model's input
    before the first thresholds) holds floats."""

    lo: tuple
    hi: tuple

    @classmethod
    def real(cls, lo: float, hi: float, n: int) -> "StreamRange":
        """A float stream's range, the same on all ``n`` elements."""
        return cls((float(lo),) * n, (float(hi),) * n)

    @property
    def is_integer(self) -> bool:
        return all(isinstance(v, int) for v in self.lo + self.hi)

    def hull(self) -> tuple:
        return min(self.lo), max(self.hi)

    def fit(self, n: int) -> "StreamRange":
        """The range over ``n`` elements: itself when it has ``n``, else its
        hull on every element (sound whatever the reshape did)."""
        if len(self.lo) == n:
            return self
        lo, hi = self.hull()
        return StreamRange((lo,) * n, (hi,) * n)

    def tile(self, times: int) -> "StreamRange":
        return StreamRange(self.lo * times, self.hi * times)


def _exact(v):
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    return int(f) if f.is_integer() else f


def _attr(node, name, default=None):
    return node_attr(node, name, default)


def _dtype(node, name: str):
    v = _attr(node, name)
    return None if v is None else DataType[v]


def _dtype_range(dt, n: int) -> Optional[StreamRange]:
    if dt is None or not dt.is_integer():
        return None
    return StreamRange((int(dt.min()),) * n, (int(dt.max()),) * n)


def _channels(model: ModelWrapper, tensor: str) -> int:
    shape = model.get_tensor_shape(tensor)
    if not shape:
        raise SiraError(f"tensor '{tensor}' has no shape; run FINN's InferShapes (step_tidy_up) before sira's FINN steps")
    return int(shape[-1])


# --------------------------------------------------------------------------
# range rules, one per FINN kind
# --------------------------------------------------------------------------

RangeRule = Callable[[ModelWrapper, object, list], list]
RANGE_RULES: dict[str, RangeRule] = {}


def finn_range(*kinds: str):
    """Register the range rule of FINN kinds: ``(model, node, input ranges)
    -> output ranges`` (one per output, None where unknown)."""

    def register(fn: RangeRule) -> RangeRule:
        for k in kinds:
            RANGE_RULES[k] = fn
        return fn

    return register


def threshold_rows(model: ModelWrapper, tensor: str, channels: int) -> list[list]:
    """Each channel's thresholds as a sorted list of exact numbers."""
    t = model.get_initializer(tensor)
    if t is None:
        raise SiraError(f"thresholds '{tensor}' are not constant; sira's FINN steps need static thresholds")
    t = np.asarray(t).reshape(t.shape[0], -1)
    rows = [sorted(_exact(v) for v in row) for row in t.tolist()]
    return rows * channels if len(rows) == 1 and channels > 1 else rows


def count_range(rows: list, r: StreamRange) -> tuple[list, list]:
    """Per channel, the fewest and most thresholds ``t <= x`` for ``x`` in
    the channel's range (Python compares ints and floats exactly)."""
    n = len(rows)
    r = r.fit(n)
    return [bisect.bisect_right(row, lo) for row, lo in zip(rows, r.lo)], [bisect.bisect_right(row, hi) for row, hi in zip(rows, r.hi)]


def activation_range(node, counts: tuple[list, list]) -> StreamRange:
    """Values of ``ActVal + count``; a bipolar output carries ``2*count - 1``."""
    lo, hi = counts
    if _dtype(node, "outputDataType") == DataType["BIPOLAR"]:
        return StreamRange(tuple(2 * c - 1 for c in lo), tuple(2 * c - 1 for c in hi))
    act = int(_attr(node, "ActVal", 0))
    return StreamRange(tuple(act + c for c in lo), tuple(act + c for c in hi))


@finn_range("Thresholding")
def _thresholding(model, node, ins):
    channels = int(_attr(node, "NumChannels"))
    rows = threshold_rows(model, node.input[1], channels)
    if ins[0] is None:  # a float input without a spec: any count
        return [activation_range(node, ([0] * channels, [len(rows[0])] * channels))]
    return [activation_range(node, count_range(rows, ins[0]))]


def _bits_of_bipolar(r: StreamRange) -> StreamRange:
    return StreamRange(tuple((v + 1) // 2 for v in r.lo), tuple((v + 1) // 2 for v in r.hi))


def mvau_acc_range(model: ModelWrapper, node, r: StreamRange) -> tuple[list, list]:
    """Exact per-column accumulator range of an MVAU for inputs elementwise
    in ``r``: the dot product, or the count of agreements in XNOR mode."""
    w = model.get_initializer(node.input[1])
    if w is None:
        raise SiraError(f"{node.name} ({node.op_type}): the weights are not constant; sira proves accumulator ranges of static weights only")
    W = nx.as_int(np.asarray(w).reshape(int(_attr(node, "MW")), int(_attr(node, "MH"))))
    r = r.fit(W.shape[0])
    if _attr(node, "binaryXnorMode", 0):
        if _dtype(node, "inputDataType") == DataType["BIPOLAR"]:
            r = _bits_of_bipolar(r)
        lo = nx.as_int(np.array(r.lo, dtype=object))
        hi = nx.as_int(np.array(r.hi, dtype=object))
        ones, zeros = (W == 1).astype(np.int64), (W == 0).astype(np.int64)
        one = np.ones_like(lo)
        acc_lo = nx.int_add(nx.int_matmul(lo[None, :], ones), nx.int_matmul(nx.int_add(one, nx.int_neg(hi))[None, :], zeros))
        acc_hi = nx.int_add(nx.int_matmul(hi[None, :], ones), nx.int_matmul(nx.int_add(one, nx.int_neg(lo))[None, :], zeros))
    else:
        lo = nx.as_int(np.array(r.lo, dtype=object))[None, :]
        hi = nx.as_int(np.array(r.hi, dtype=object))[None, :]
        acc_lo, acc_hi = nx.int_linear_bounds(np.matmul, lo, hi, W, W.shape[0])
    return [int(v) for v in np.ravel(acc_lo)], [int(v) for v in np.ravel(acc_hi)]


def vvau_acc_range(model: ModelWrapper, node, r: StreamRange) -> tuple[list, list]:
    """Exact per-channel accumulator range of a VVAU (depthwise): channel
    ``c`` sums its kernel's weights times inputs of channel ``c``."""
    channels = int(_attr(node, "Channels"))
    w = model.get_initializer(node.input[1])
    if w is None:
        raise SiraError(f"{node.name} ({node.op_type}): the weights are not constant; sira proves accumulator ranges of static weights only")
    W = nx.as_int(np.asarray(w).reshape(channels, -1))
    r = r.fit(channels)
    lo = nx.as_int(np.array(r.lo, dtype=object))[:, None]
    hi = nx.as_int(np.array(r.hi, dtype=object))[:, None]
    acc_lo, acc_hi = nx.int_range_product(lo, hi, W, W)
    return [int(v) for v in nx.int_sum(acc_lo, axis=1)], [int(v) for v in nx.int_sum(acc_hi, axis=1)]


def _mac_range(acc_fn):
    def rule(model, node, ins):
        out = node.output[0]
        if ins[0] is None or not ins[0].is_integer:
            return [_dtype_range(model.get_tensor_datatype(out), _channels(model, out))]
        lo, hi = acc_fn(model, node, ins[0])
        if _attr(node, "noActivation", 0) or len(node.input) < 3:
            return [StreamRange(tuple(lo), tuple(hi))]
        rows = threshold_rows(model, node.input[2], len(lo))
        return [activation_range(node, count_range(rows, StreamRange(tuple(lo), tuple(hi))))]

    return rule


RANGE_RULES["MVAU"] = _mac_range(mvau_acc_range)
RANGE_RULES["VVAU"] = _mac_range(vvau_acc_range)


@finn_range("ConvolutionInputGenerator")
def _window(model, node, ins):
    """Every window element is an input pixel: the channel ranges repeat
    once per kernel position (FINN orders a window kernel-position major)."""
    if ins[0] is None:
        return [None]
    channels = int(_attr(node, "IFMChannels"))
    k = int(np.prod(_attr(node, "ConvKernelDim")))
    if _attr(node, "depthwise", 0):
        return [ins[0].fit(1).fit(channels * k)]  # a depthwise window interleaves channels: the hull
    return [ins[0].fit(channels).tile(k)]


@finn_range("FMPadding", "FMPadding_Pixel")
def _padding(model, node, ins):
    if ins[0] is None:
        return [None]
    return [StreamRange(tuple(min(v, 0) for v in ins[0].lo), tuple(max(v, 0) for v in ins[0].hi))]


@finn_range("StreamingMaxPool", "StreamingDataWidthConverter", "StreamingFIFO", "Reshape", "Squeeze", "Unsqueeze")
def _same_values(model, node, ins):
    if ins[0] is None:
        return [None] * len(node.output)
    return [ins[0].fit(_channels(model, o)) for o in node.output]


@finn_range("DuplicateStreams")
def _duplicate(model, node, ins):
    return [ins[0]] * len(node.output)


@finn_range("Pool")
def _pool(model, node, ins):
    """A max pool's output is one of its window's elements: the window's
    range per channel (the hull where the window interleaves channels)."""
    if ins[0] is None or _attr(node, "Function") != "MaxPool":
        return _from_datatypes(model, node)
    return [ins[0].fit(_channels(model, node.output[0]))]


@finn_range("LabelSelect")
def _labels(model, node, ins):
    k = _channels(model, node.output[0])
    return [StreamRange((0,) * k, (int(_attr(node, "Labels")) - 1,) * k)]


def _from_datatypes(model, node) -> list:
    return [_dtype_range(model.get_tensor_datatype(o), _channels(model, o)) if model.get_tensor_shape(o) else None for o in node.output]


# --------------------------------------------------------------------------
# the whole graph
# --------------------------------------------------------------------------


def _input_range(model: ModelWrapper, name: str, spec) -> Optional[StreamRange]:
    """An input's range: its integer datatype's, else the spec's hull. FINN
    renames the graph's tensors, so a spec that names the one input of the
    model FINN started from applies to the one input of FINN's graph."""
    n = _channels(model, name)
    dt = model.get_tensor_datatype(name)
    if dt is not None and dt.is_integer():
        return _dtype_range(dt, n)
    if spec is None:
        return None
    named = [k for k in load_spec(spec) or {} if k != "*"]
    aliases = {named[0]: name} if len(named) == 1 and len(model.graph.input) == 1 else None
    r = resolve_inputs([(name, tuple(model.get_tensor_shape(name)), None)], spec, aliases)[name]
    return StreamRange.real(np.min(r.lo), np.max(r.hi), n)


def stream_ranges(model: ModelWrapper, input_spec=None) -> dict[str, Optional[StreamRange]]:
    """Range of every stream of a FINN graph (see the module docstring),
    by tensor name; None where nothing is known (floats without a spec).

    Graph inputs take their integer datatype's range, or the input spec's
    hull for a float input (None without one)."""
    ranges: dict[str, Optional[StreamRange]] = {}
    for i in model.graph.input:
        ranges[i.name] = _input_range(model, i.name, input_spec)
    for node in model.graph.node:
        ins = [ranges.get(t) for t in node.input]
        rule = RANGE_RULES.get(finn_kind(node)) if is_finn_hw(node) else None
        outs = rule(model, node, ins) if rule is not None else _from_datatypes(model, node)
        for name, r in zip(node.output, outs):
            ranges[name] = r
    return ranges


def outside(ranges: dict, values: dict) -> list[str]:
    """Where executed stream values leave their proven ranges: one line per
    tensor of ``values`` (tensor name -> array, channels on the last axis)
    with a value outside ``ranges`` (:func:`stream_ranges`), naming the
    worst element. Tensors without a range are not checked."""
    bad = []
    for name, v in values.items():
        r = ranges.get(name)
        v = np.asarray(v)
        if r is None or v.ndim == 0:
            continue
        r = r.fit(v.shape[-1])
        lo, hi = np.array(r.lo, dtype=np.float64), np.array(r.hi, dtype=np.float64)
        flat = v.reshape(-1, v.shape[-1]).astype(np.float64)
        below, above = flat < lo, flat > hi
        if below.any() or above.any():
            i = int(np.argmax((below | above).any(axis=0)))
            bad.append(f"{name}: element {i} takes [{flat[:, i].min():g}, {flat[:, i].max():g}], proven [{r.lo[i]}, {r.hi[i]}]")
    return bad


# --------------------------------------------------------------------------
# writing the widths
# --------------------------------------------------------------------------


def _narrowest(lo: int, hi: int):
    return DataType[nx.narrowest_int_type(int(lo), int(hi))]


def _narrower(new, old) -> bool:
    """``new`` holds fewer bits than ``old`` (and ``old`` is an integer type
    other than the one-bit kinds, whose meaning a width change would alter)."""
    if old is None or not old.is_integer() or old in (DataType["BIPOLAR"], DataType["BINARY"]):
        return False
    return new.bitwidth() < old.bitwidth()


def clip_thresholds(model: ModelWrapper, tensor: str, lo: list, hi: list) -> tuple[int, int]:
    """Clip each channel's integer thresholds to [lo, hi + 1] of its proven
    input range (a threshold above ``hi`` is never reached, one at or below
    ``lo`` always is: clipped, they still are) and return the thresholds'
    new hull."""
    t = np.asarray(model.get_initializer(tensor))
    shape = t.shape
    rows = t.reshape(shape[0], -1)
    if not nx.is_integral(rows):
        raise SiraError(f"thresholds '{tensor}' are not integers; run FINN's step_minimize_bit_width (RoundAndClipThresholds) first")
    n = rows.shape[0]
    lo_c = np.array(lo if n == len(lo) else [min(lo)] * n, dtype=np.float64)[:, None]
    hi_c = np.array(hi if n == len(hi) else [max(hi)] * n, dtype=np.float64)[:, None]
    clipped = np.minimum(np.maximum(rows, lo_c), hi_c + 1).astype(t.dtype)
    model.set_initializer(tensor, clipped.reshape(shape))
    return int(clipped.min()), int(clipped.max())


@dataclasses.dataclass
class WidthChange:
    """One node's datatype before and after."""

    node: str
    op: str
    attribute: str
    finn: str
    sira: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _set(model, node, attribute: str, dt, changes: list) -> None:
    old = _attr(node, attribute)
    if old != dt.name:
        for a in node.attribute:
            if a.name == attribute:
                node.attribute.remove(a)
                break
        node.attribute.append(helper.make_attribute(attribute, dt.name))
        changes.append(WidthChange(node.name, node.op_type, attribute, old, dt.name))


#: the attribute in which a FINN node states the datatype of its input
#: ``index``: (attribute, input index) by attribute name
_INPUT_TYPE_ATTRS = (("inputDataType", 0), ("lhs_dtype", 0), ("rhs_dtype", 1), ("dataType", 0))


def _input_type_attr(reader, tensor: str) -> Optional[str]:
    """The attribute of ``reader`` that states the type of its input
    ``tensor``, or None when it states none sira knows of."""
    if not is_finn_hw(reader):
        return None
    index = list(reader.input).index(tensor)
    return next((a for a, i in _INPUT_TYPE_ATTRS if i == index and _attr(reader, a) is not None), None)


def _retype_stream(model, node, dt, changes: list) -> None:
    """Narrow a node's output stream to ``dt`` when every reader states its
    input type in an attribute sira can update (they then all follow)."""
    tensor = node.output[0]
    readers = model.find_consumers(tensor) or []
    attrs = [_input_type_attr(r, tensor) for r in readers]
    if not readers or None in attrs or not _narrower(dt, _dtype(node, "outputDataType")):
        return  # the last node keeps FINN's byte-aligned output
    _set(model, node, "outputDataType", dt, changes)
    model.set_tensor_datatype(tensor, dt)
    for reader, attr in zip(readers, attrs):
        _set(model, reader, attr, dt, changes)


def _apply_mac(model, node, ranges, changes) -> None:
    r = ranges.get(node.input[0])
    if r is None or not r.is_integer:
        return
    acc_fn = mvau_acc_range if finn_kind(node) == "MVAU" else vvau_acc_range
    lo, hi = acc_fn(model, node, r)
    acc_lo, acc_hi = min(lo), max(hi)
    thresholds = not _attr(node, "noActivation", 0) and len(node.input) > 2
    if thresholds:
        t_lo, t_hi = clip_thresholds(model, node.input[2], lo, hi)
        acc_lo, acc_hi = min(acc_lo, t_lo), max(acc_hi, t_hi)
    acc = _narrowest(acc_lo, acc_hi)
    old = _dtype(node, "accDataType")
    if not _narrower(acc, old):
        return
    _set(model, node, "accDataType", acc, changes)
    if thresholds:
        model.set_tensor_datatype(node.input[2], acc)
    else:
        _retype_stream(model, node, acc, changes)


def _apply_thresholding(model, node, ranges, changes) -> None:
    r = ranges.get(node.input[0])
    if r is None or not r.is_integer:
        return
    channels = int(_attr(node, "NumChannels"))
    r = r.fit(channels)
    t_lo, t_hi = clip_thresholds(model, node.input[1], list(r.lo), list(r.hi))
    tdt = _narrowest(t_lo, t_hi)
    if _narrower(tdt, _dtype(node, "weightDataType")):
        _set(model, node, "weightDataType", tdt, changes)
        model.set_tensor_datatype(node.input[1], tdt)


_APPLY = {"MVAU": _apply_mac, "VVAU": _apply_mac, "Thresholding": _apply_thresholding}


def is_identity_thresholding(model: ModelWrapper, node) -> bool:
    """A Thresholding node that outputs its input for every value of its
    input datatype (an input quantizer re-quantizing a UINT8 input to its
    own grid: thresholds 1..255), with the same input and output datatype,
    and whose output is not a graph output: a wire FINN would build a
    threshold unit for."""
    if not is_finn_hw(node) or finn_kind(node) != "Thresholding":
        return False
    dt, out = _dtype(node, "inputDataType"), _dtype(node, "outputDataType")
    if dt is None or dt != out or not dt.is_integer() or dt in (DataType["BIPOLAR"], DataType["BINARY"]):
        return False
    if node.output[0] in {o.name for o in model.graph.output}:
        return False
    t = model.get_initializer(node.input[1])
    if t is None:
        return False
    rows = np.asarray(t).reshape(np.asarray(t).shape[0], -1)
    return is_identity(rows, int(dt.min()), int(dt.max()), 1, int(_attr(node, "ActVal", 0)))


def _remove_identity(model: ModelWrapper, node, changes: list) -> None:
    """Remove an identity Thresholding node: its readers read its input."""
    out, src = node.output[0], node.input[0]
    for other in model.graph.node:
        for i, name in enumerate(other.input):
            if name == out:
                other.input[i] = src
    model.graph.node.remove(node)
    for vi in [v for v in model.graph.value_info if v.name == out]:
        model.graph.value_info.remove(vi)
    changes.append(WidthChange(node.name, node.op_type, "node", node.op_type, "removed: it outputs its input"))


class ApplyWidths(Transformation):
    """Write sira's proven widths into FINN's MVAU, VVAU and Thresholding
    nodes (see the module docstring), and remove the Thresholding nodes
    that output their input (:func:`is_identity_thresholding`). ``changes``
    lists what changed."""

    def __init__(self, input_spec=None):
        super().__init__()
        self.input_spec = input_spec
        self.changes: list[WidthChange] = []

    def apply(self, model: ModelWrapper):
        # ranges are proven on the graph as FINN built it; narrowing a node's
        # types changes no value, so one pass over them is enough
        ranges = stream_ranges(model, self.input_spec)
        identities = [n for n in model.graph.node if is_identity_thresholding(model, n)]
        for node in model.graph.node:
            fn = _APPLY.get(finn_kind(node)) if is_finn_hw(node) and node not in identities else None
            if fn is not None:
                fn(model, node, ranges, self.changes)
        for node in identities:
            _remove_identity(model, node, self.changes)
        return model, False


# --------------------------------------------------------------------------
# FINN's nodes as sira's hardware layer specs (for the estimate)
# --------------------------------------------------------------------------

#: FINN's ``ram_style`` names -> sira's ``mem_style``
_MEM_STYLES = {"auto": "auto", "block": "block", "distributed": "lut", "ultra": "ultra"}


def stream_type(dt) -> hw.StreamType:
    """sira's stream type of a qonnx DataType."""
    if dt == DataType["BIPOLAR"]:
        return hw.StreamType.bipolar()
    if not dt.is_integer():
        return hw.StreamType.float32()
    return hw.StreamType(int(dt.bitwidth()), bool(dt.signed()))


def float_order_keys(values: np.ndarray) -> np.ndarray:
    """Signed 32-bit integers in the order of float32 ``values``: what a
    32-bit float comparator compares (IEEE-754 order is the order of the
    bits after a sign fix-up)."""
    bits = np.asarray(values, dtype=np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _shape(model, tensor: str) -> tuple:
    shape = model.get_tensor_shape(tensor)
    if shape is None:
        raise SiraError(f"tensor '{tensor}' has no shape; run FINN's InferShapes (step_tidy_up) before the estimate")
    return tuple(int(v) for v in shape)


def _common(model, node, in_dt_attr: str = "inputDataType", out_dt_attr: str = "outputDataType") -> dict:
    i, o = node.input[0], node.output[0]
    in_dt = _dtype(node, in_dt_attr) or model.get_tensor_datatype(i)
    out_dt = _dtype(node, out_dt_attr) or model.get_tensor_datatype(o)
    style = _MEM_STYLES.get(_attr(node, "ram_style", "auto") or "auto", "auto")
    return dict(name=node.name, inputs=(i,), outputs=tuple(node.output), in_shape=_shape(model, i), out_shape=_shape(model, o),
                in_type=stream_type(in_dt), out_type=stream_type(out_dt), mem_style=style)  # fmt: skip


def _activation(node) -> dict:
    """sira's ``activation_scale * count + activation_bias`` of FINN's output."""
    if _dtype(node, "outputDataType") == DataType["BIPOLAR"]:
        return {"activation_scale": 2, "activation_bias": -1}
    return {"activation_scale": 1, "activation_bias": int(_attr(node, "ActVal", 0))}


def _thresholds(model, tensor: str, declared) -> tuple:
    """(thresholds as exact integers, their stream type): the type FINN
    declared when it is an integer type that holds them, else the narrowest
    that does; float thresholds as 32-bit comparator keys."""
    t = np.asarray(model.get_initializer(tensor))
    t = t.reshape(t.shape[0], -1)
    if not nx.is_integral(t):
        return float_order_keys(t), hw.StreamType(32, True)
    q = nx.as_int(np.rint(t).astype(np.int64)) if t.dtype.kind == "f" else nx.as_int(t)
    lo, hi = (int(q.min()), int(q.max())) if q.size else (0, 0)
    if declared is not None and declared.is_integer() and declared.allowed(lo) and declared.allowed(hi):
        return q, stream_type(declared)
    return q, hw.StreamType.for_range(lo, hi)


def _acc_range(node, ranges, acc_fn, model, acc_dt) -> Optional[tuple]:
    r = ranges.get(node.input[0])
    if r is not None and r.is_integer:
        lo, hi = acc_fn(model, node, r)
        return min(lo), max(hi)
    return (int(acc_dt.min()), int(acc_dt.max())) if acc_dt.is_integer() else None


LayerReader = Callable[[ModelWrapper, object, dict], hw.HWLayer]
LAYER_READERS: dict[str, LayerReader] = {}


def finn_layer(*kinds: str):
    """Register how FINN kinds read as sira layer specs."""

    def register(fn: LayerReader) -> LayerReader:
        for k in kinds:
            LAYER_READERS[k] = fn
        return fn

    return register


def _mac_fields(model, node, ranges, acc_rule, weight_shape) -> tuple[dict, dict]:
    """What an MVAU and a VVAU node say alike: (their MAC fields - folding,
    integer weights reshaped to ``weight_shape``, weight and accumulator
    types, the accumulator range by ``acc_rule`` - and their activation's
    fields, empty without one). FINN stores a MAC's thresholds at its
    accumulator width."""
    w = model.get_initializer(node.input[1])
    if w is None:
        raise SiraError(f"{node.name} ({node.op_type}): the weights are not constant (mem_mode dynamic); sira estimates static weights only")
    acc_dt = _dtype(node, "accDataType")
    fields = dict(_common(model, node), pe=int(_attr(node, "PE", 1)), simd=int(_attr(node, "SIMD", 1)),
                  weights=nx.as_int(np.rint(np.asarray(w)).astype(np.int64)).reshape(weight_shape),
                  weight_type=stream_type(_dtype(node, "weightDataType")), acc_type=stream_type(acc_dt),
                  acc_range=_acc_range(node, ranges, acc_rule, model, acc_dt))  # fmt: skip
    activation: dict = {}
    if not _attr(node, "noActivation", 0) and len(node.input) > 2:
        t, tt = _thresholds(model, node.input[2], acc_dt)
        activation = dict(thresholds=t, threshold_type=tt, **_activation(node))
    return fields, activation


@finn_layer("MVAU")
def _mvau_layer(model, node, ranges):
    mw, mh = int(_attr(node, "MW")), int(_attr(node, "MH"))
    fields, activation = _mac_fields(model, node, ranges, mvau_acc_range, (mw, mh))
    if activation:
        activation["threshold_mem_style"] = _MEM_STYLES.get(_attr(node, "ram_style_thresholds", "auto") or "auto", "auto")
    return hw.MVAU(**fields, mw=mw, mh=mh, num_input_vectors=tuple(_attr(node, "numInputVectors", [1])), **activation)


@finn_layer("VVAU")
def _vvau_layer(model, node, ranges):
    channels, kernel = int(_attr(node, "Channels")), tuple(int(v) for v in _attr(node, "Kernel"))
    fields, activation = _mac_fields(model, node, ranges, vvau_acc_range, (channels, -1))
    return hw.VVAU(**fields, channels=channels, kernel=kernel, num_input_vectors=tuple(_attr(node, "Dim", [1, 1])), **activation)


@finn_layer("Thresholding")
def _thresholding_layer(model, node, ranges):
    channels = int(_attr(node, "NumChannels"))
    t, tt = _thresholds(model, node.input[1], _dtype(node, "weightDataType"))
    return hw.Thresholding(**_common(model, node), pe=int(_attr(node, "PE", 1)), channels=channels, thresholds=t, threshold_type=tt, **_activation(node))


@finn_layer("ConvolutionInputGenerator")
def _swg_layer(model, node, ranges):
    return hw.ConvolutionInputGenerator(**_common(model, node), simd=int(_attr(node, "SIMD", 1)), channels=int(_attr(node, "IFMChannels")),
                                        ifm_dim=_attr(node, "IFMDim"), ofm_dim=_attr(node, "OFMDim"), kernel=_attr(node, "ConvKernelDim"),
                                        stride=_attr(node, "Stride"), dilation=_attr(node, "Dilation", [1, 1]),
                                        depthwise=bool(_attr(node, "depthwise", 0)))  # fmt: skip


@finn_layer("StreamingMaxPool")
def _maxpool_layer(model, node, ranges):
    img, pool = _attr(node, "ImgDim"), _attr(node, "PoolDim")
    out = [i // p for i, p in zip(img, pool)]
    return hw.StreamingMaxPool(**_common(model, node, "dataType", "dataType"), pe=int(_attr(node, "PE", 1)), channels=int(_attr(node, "NumChannels")),
                               ifm_dim=img, ofm_dim=out, kernel=pool, stride=pool)  # fmt: skip


@finn_layer("FMPadding")
def _padding_layer(model, node, ranges):
    return hw.FMPadding(**_common(model, node, "inputDataType", "inputDataType"), simd=int(_attr(node, "SIMD", 1)),
                        channels=int(_attr(node, "NumChannels")), padding=tuple(_attr(node, "Padding")))  # fmt: skip


@finn_layer("Reshape")
def _reshape_layer(model, node, ranges):
    dt = _dtype(node, "dtype") or model.get_tensor_datatype(node.input[0])
    return hw.Reshape(**{**_common(model, node), "in_type": stream_type(dt), "out_type": stream_type(dt)})


#: FINN kinds the estimate costs from their widths alone (stream plumbing)
PLUMBING = ("StreamingDataWidthConverter", "StreamingFIFO")

#: FINN kinds the estimate costs from the node's own attributes, with no
#: sira layer spec: the stream plumbing and FINN's ``Pool``, which reduces
#: the windows a ConvolutionInputGenerator before it formed (sira's own
#: pooling kinds hold their line buffer)
NODE_COSTED = PLUMBING + ("Pool",)

#: FINN's pooling functions -> sira's (:func:`sira.cost.pool`)
POOL_FUNCTIONS = {"MaxPool": "max", "AccPool": "sum", "AvgPool": "avg", "QuantAvgPool": "avg"}

#: FINN kinds listed with an unknown cost, as sira has no formula for them:
#: the elementwise binary family (``ElementwiseAdd``, ``ElementwiseMul``,
#: ``ElementwiseMax``, ...; FINN builds a float output scale and bias with
#: them), the hardware softmax, the top-k label selection and ``Shuffle``
#: (FINN's transpose of an image stream, a reordering buffer; FINN builds
#: it around float scales it could not absorb into thresholds)
UNCOSTED = ("Elementwise*", "HWSoftmax", "LabelSelect", "Shuffle")


def uncosted(kind: str) -> bool:
    return any(kind.startswith(k[:-1]) if k.endswith("*") else kind == k for k in UNCOSTED)


def finn_layers(model: ModelWrapper, input_spec=None) -> tuple[list, list]:
    """(sira layer specs, other nodes) of a FINN hardware graph in graph
    order: every node FINN built, read with its folding, memory styles and
    datatypes (accumulator ranges proven as :func:`stream_ranges` does).
    The other nodes are those costed from their attributes
    (:data:`NODE_COSTED`) and those sira has no cost for
    (:data:`UNCOSTED`), as ``(node, kind)``. Any other node raises a
    SiraError naming it."""
    ranges = stream_ranges(model, input_spec)
    layers, others = [], []
    for node in model.graph.node:
        kind = finn_kind(node) if is_finn_hw(node) else node.op_type
        reader = LAYER_READERS.get(kind) if is_finn_hw(node) else None
        if reader is not None:
            layers.append(reader(model, node, ranges))
        elif is_finn_hw(node) and (kind in NODE_COSTED or uncosted(kind)):
            others.append((node, kind))
        else:
            known = ", ".join(sorted(set(LAYER_READERS) | set(NODE_COSTED) | set(UNCOSTED)))
            raise SiraError(f"node '{node.name}' ({node.op_type}): sira has no cost for this FINN node; it costs {known} "
                            "(estimate the model before FINN's step_convert_to_hw to cost it as sira lowers it)")  # fmt: skip
    return layers, others

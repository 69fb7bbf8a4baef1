"""Width minimization: the narrowest integer datatype for every tensor and
accumulator, and the per-layer accumulator width report.

Three accumulator widths per MAC layer (MatMul, Gemm, Conv with one constant
weight operand), from the least to the most information used:

* **A2Q datatype bound** — only the dot-product length ``K``, the input
  width ``N`` (and its signedness) and the weight width ``M``:
  ``alpha = log2 K + N + M - 1 - [signed input]``,
  ``P = ceil(alpha + 1 + log2(1 + 2**-alpha))``, a signed ``INT{P}``.
  What FINN falls back to when it may not look at the weights.
* **FINN's weight-aware width** — the actual integer weights, inputs anywhere
  in the input *datatype*: per output column
  ``max = sum_k w_k * (dt.max if w_k > 0 else dt.min)`` (and the mirror for
  the minimum), hull over the columns, then FINN's width rule
  ``UINT ceil(log2(max+1))`` if ``min >= 0`` else
  ``INT(ceil(log2(max(-min, max+1))) + 1)``.
* **sira's width** — the same rule on the accumulator range sira *proved*:
  attainable input levels, per-element input ranges (zero-padded borders,
  stuck channels), exact weights. Per layer (what one hardware stage needs)
  and per output channel (what the report shows, and which channel sets the
  layer width).

All three are computed with Python integers: FINN's float32 arithmetic was
off by one near 2**31, and these are exactly the numbers that must not be.

Definitions (they matter when comparing with other tools):

* ``K`` — terms of one dot product: the contraction length of a MatMul or
  Gemm, ``C_in/group * prod(kernel)`` for a Conv.
* Integer coordinates — the integers the hardware adds up
  (:func:`accumulator_bounds`): in an optimized model, where every MAC
  operand is an integer tensor, the *values* (a bipolar input is +-1, a
  threshold output its levels with their offset), which are also what the
  model's ``finn_datatype`` annotations state and what the lowering to
  hardware reads; the weights on a zero-offset grid
  (:meth:`~sira.range.ScaledIntRange.zero_bias_form`; a bipolar weight is
  +-1). In a model not yet optimized (fractional grids) the integer part
  ``q`` of ``x = s*q + b``. ``sira optimize`` reports the widths of the
  model it writes, so its report, the annotations and the hardware agree.
* ``N`` — bit width of the *input datatype*: the datatype of the quantizer
  that produced the MAC input (Quant/IntQuant bit width and signedness —
  ``narrow`` is ignored, as FINN's datatypes have no narrow variant —,
  ``BIPOLAR`` for a BipolarQuant or a 1-bit signed Quant, Trunc output
  bits, the values of MultiThreshold levels), or
  of the graph input's declared range, found by walking back through ops
  that keep the integer coordinates (data movement, max-pooling, Relu,
  scaling and offsetting by constants). This is all that hardware knows
  about the stream and all that FINN uses. Where no such quantizer is found,
  or its datatype would not contain the proven range, ``N`` falls back to the
  narrowest type of the proven input range; ``input_dtype_source`` says which.
  FINN's width takes the same datatype, except that a MAC of bipolar inputs
  and bipolar weights is XNOR-popcount to FINN (:func:`xnor_mode`): it
  counts {0, 1} inputs (``BINARY``). sira's hardware accumulates such a
  layer as the same popcount, so sira's width of it is the popcount's
  proven range ``(s + K) / 2`` (``accumulator: popcount``), not the +-1 sum
  ``s`` the model's tensor holds (one bit wider).
* ``M`` — bit width of the *weight datatype*: the narrowest QONNX type of
  the integer weights (``BIPOLAR`` for +-1), which is what FINN's weight-width
  minimization stores. A2Q assumes signed weights, ``|w| <= 2**(M-1)``: an
  unsigned type wider than one bit therefore counts its sign bit
  (``UINT2`` weights give ``M = 3``), so the bound stays a bound.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence, Union

import numpy as np
from onnx import NodeProto, TensorProto
from qonnx.core.datatype import BaseDataType, DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira import numerics as nx
from sira.analysis import RangeReport, analyze
from sira.numerics import a2q_bound_width
from sira.errors import SiraError
from sira.inputspec import SpecLike
from sira.model import node_attr, topological_order
from sira.ops import Trait, has_trait, ops_with
from sira.range import ScaledIntRange
from sira.report import format_table

DataTypeLike = Union[str, BaseDataType]

#: metadata_props key of the accumulator datatypes: JSON {MAC node: datatype}
ACC_DTYPE_KEY = "sira_acc_dtype"


# --------------------------------------------------------------------------
# pure width arithmetic (exact, Python integers)
# --------------------------------------------------------------------------


def range_width(lo: int, hi: int) -> int:
    """Bits of the narrowest integer type holding [lo, hi] (at least 1).

    Identical to FINN's accumulator rule, ``UINT ceil(log2(hi+1))`` for
    ``lo >= 0`` and ``INT(ceil(log2(max(-lo, hi+1))) + 1)`` otherwise,
    evaluated with integer bit lengths instead of float logarithms."""
    return nx.int_type_width(lo, hi)


def _datatype(dt: DataTypeLike):
    return DataType[dt] if isinstance(dt, str) else dt


def column_ranges(W_int: np.ndarray, x_lo: int, x_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact range of every column's dot product ``x @ W[:, j]`` for inputs
    anywhere in [x_lo, x_hi]: a positive weight takes its largest term at
    ``x_hi``, a negative one at ``x_lo``. ``W_int`` is (K, columns)."""
    W = nx.as_int(W_int)
    zero = np.zeros((), dtype=W.dtype)
    pos = nx.int_sum(np.where(W > 0, W, zero), axis=0)
    neg = nx.int_sum(np.where(W < 0, W, zero), axis=0)
    lo_k, hi_k = nx.as_int(int(x_lo)), nx.as_int(int(x_hi))
    lo = nx.int_add(nx.int_mul(pos, lo_k), nx.int_mul(neg, hi_k))
    hi = nx.int_add(nx.int_mul(pos, hi_k), nx.int_mul(neg, lo_k))
    return lo, hi


def finn_weight_aware_range(W_int: np.ndarray, input_dt: DataTypeLike) -> tuple[int, int]:
    """FINN's accumulator range of a layer: the hull over all columns of the
    dot-product range with inputs anywhere in ``input_dt``'s range."""
    dt = _datatype(input_dt)
    lo, hi = column_ranges(W_int, int(dt.min()), int(dt.max()))
    return int(np.min(lo)), int(np.max(hi))


def finn_weight_aware_width(W_int: np.ndarray, input_dt: DataTypeLike) -> int:
    """FINN's weight-aware accumulator width (one per layer) for integer
    weights ``W_int`` of shape (K, output channels)."""
    return range_width(*finn_weight_aware_range(W_int, input_dt))


def weight_datatype(W_int: np.ndarray) -> str:
    """Narrowest QONNX datatype of integer weights: ``BIPOLAR`` for +-1
    weights (one bit), else the narrowest INT/UINT type."""
    lo, hi = int(np.min(W_int)), int(np.max(W_int))
    if lo == -1 and hi == 1 and not np.any(W_int == 0):
        return "BIPOLAR"
    return nx.narrowest_int_type(lo, hi)


def xnor_mode(input_dt: DataTypeLike, weight_dt: DataTypeLike) -> bool:
    """FINN computes a MAC of two bipolar operands as XNOR and popcount:
    inputs and weights stored as one bit {0, 1}."""
    return _datatype(input_dt) == DataType["BIPOLAR"] and _datatype(weight_dt) == DataType["BIPOLAR"]


def finn_input_datatype(input_dt: DataTypeLike, weight_dt: DataTypeLike):
    """The input datatype FINN's accumulator minimization assumes: the
    input's own, except for XNOR layers (:func:`xnor_mode`), which count
    agreements of {0, 1} inputs with the +-1 weights (``BINARY``)."""
    return DataType["BINARY"] if xnor_mode(input_dt, weight_dt) else _datatype(input_dt)


def finn_weight_datatype(W_int: np.ndarray, input_dt: DataTypeLike) -> str:
    """The weight datatype FINN stores: one bit for an XNOR layer, else
    FINN's weight minimization, which never picks ``BIPOLAR`` (+-1 weights
    are ``INT2``): the narrowest signed type holding ``min`` and
    ``-max - 1`` when a weight is negative, else the narrowest unsigned."""
    if xnor_mode(input_dt, weight_datatype(W_int)):
        return "BINARY"
    lo, hi = int(np.min(W_int)), int(np.max(W_int))
    if lo < 0:
        return nx.narrowest_int_type(min(lo, -hi - 1), 0)
    return nx.narrowest_int_type(0, hi)


def a2q_weight_bits(dt: DataTypeLike) -> int:
    """``M`` of the A2Q bound for weights of datatype ``dt``: the bit width,
    plus a sign bit for unsigned types wider than one bit, since the bound
    assumes ``|w| <= 2**(M-1)``."""
    dt = _datatype(dt)
    bits = int(dt.bitwidth())
    return bits + 1 if not dt.signed() and bits > 1 else bits


def integer_datatype(lo: int, hi: int):
    """The qonnx DataType of :func:`sira.numerics.narrowest_int_type`."""
    return DataType[nx.narrowest_int_type(lo, hi)]


def value_datatype(r: ScaledIntRange) -> Optional[str]:
    """Narrowest QONNX datatype of a tensor's *values* when every value is an
    integer (scaled-int with integer scale and bias), else None.

    Values ``s*q + b`` are bounded exactly with Python integers; odd values
    with a step of 2 inside [-1, 1] are ``BIPOLAR``. Tensors with fractional
    scales get no datatype: qonnx's ``SCALEDINT<n>`` leaves the scale
    unstated and has no min/max, so FINN's consumers cannot use it."""
    vr = r.integer_values()
    if vr is None:
        return None
    vlo, vhi = vr
    if r.is_bipolar():
        return "BIPOLAR"
    return nx.narrowest_int_type(vlo, vhi)


def limiting_channel(ch_lo: Sequence[int], ch_hi: Sequence[int]) -> int:
    """Index of the output channel whose bound sets the layer width: the
    largest ``hi`` when the layer is unsigned, else the largest magnitude
    ``max(-lo, hi + 1)`` (the quantity the signed width rule takes)."""
    signed = min(ch_lo) < 0
    keys = [max(-lo, hi + 1) if signed else hi for lo, hi in zip(ch_lo, ch_hi)]
    return int(np.argmax(np.asarray(keys, dtype=object)))


def mean_reduction(layers: Sequence[dict], width: str = "sira_width", baseline: str = "a2q_width") -> float:
    """Mean over layers of the relative width saved against ``baseline``
    (0.25 = a quarter fewer accumulator bits on average)."""
    if not layers:
        return 0.0
    return float(np.mean([1.0 - row[width] / row[baseline] for row in layers]))


# --------------------------------------------------------------------------
# locating MAC layers and their input datatype in a RangeReport
# --------------------------------------------------------------------------

#: MACs whose weights lay out as one (K, columns) matrix; a ConvTranspose
#: sums a varying number of products per output (overlap-add): no one K
_LAID_OUT_MACS = ops_with(Trait.MAC) - {"ConvTranspose"}


def _const_int(report: RangeReport, tensor: str) -> int:
    return int(np.asarray(report[tensor].const_value()).reshape(-1)[0])


def _quantizer_datatype(node: NodeProto, report: RangeReport):
    """Datatype of a quantizer's output in the integer coordinates of sira's
    analysis (see the rules in :mod:`sira.rules.quant`), or None."""
    op = node.op_type
    if op == "BipolarQuant":
        return DataType["BIPOLAR"]  # values +-s: +-1 in units of s
    if has_trait(op, Trait.INT_QUANTIZER):
        bits = _const_int(report, node.input[3])
        signed = bool(node_attr(node, "signed", 1))
        if bits == 1 and signed:
            return DataType["BIPOLAR"]  # a 1-bit signed Quant is bipolar
        return DataType[f"{'INT' if signed else 'UINT'}{bits}"]
    if op == "Trunc":
        bits = _const_int(report, node.input[-1])  # output bit width: last input in v1 and v2
        return DataType[f"{'INT' if node_attr(node, 'signed', 1) else 'UINT'}{bits}"]
    if op == "MultiThreshold":
        steps = report[node.input[1]].shape[1]
        scale, bias = node_attr(node, "out_scale", 1.0), node_attr(node, "out_bias", 0.0)
        if steps == 1 and scale == 2 and bias == -1:
            return DataType["BIPOLAR"]
        if float(scale).is_integer() and float(bias).is_integer():  # values scale * count + bias
            ends = (int(bias), int(bias) + int(scale) * steps)
            return integer_datatype(min(ends), max(ends))
        return integer_datatype(0, steps)  # counts 0..steps, scaled by a float afterwards
    return None


def _dynamic_operand(node: NodeProto, report: RangeReport) -> Optional[str]:
    """The one run-time operand of a two-operand elementwise op whose other
    operand is constant (for Div only the dividend), else None."""
    ins = [i for i in node.input if i]
    if len(ins) != 2:
        return None
    dynamic = [i for i in ins if not report[i].is_const]
    if len(dynamic) != 1 or (node.op_type == "Div" and dynamic[0] != ins[0]):
        return None
    return dynamic[0]


def _input_datatype(report: RangeReport, tensor: str, producers: dict) -> tuple:
    """(qonnx DataType, where it came from) of the integers of ``tensor``, a
    MAC input: see ``N`` in the module docstring."""
    qlo, qhi = accumulator_range(report[tensor])
    dt, origin, t = None, "", tensor
    while True:
        node = producers.get(t)
        if node is None:
            given = report.input_ranges.get(t)
            if given is not None and given.is_scaled_int:
                dt, origin = integer_datatype(*given.int_bounds()), f"graph input {t}"
            break
        dt, origin = _quantizer_datatype(node, report), f"{node.op_type} {node.name or node.output[0]}"
        if dt is not None:
            break
        if has_trait(node.op_type, Trait.KEEPS_INTEGERS):
            t = node.input[0]
        elif has_trait(node.op_type, Trait.AFFINE) and (dynamic := _dynamic_operand(node, report)):
            t = dynamic
        else:
            break
    if dt is None or not dt.min() <= qlo <= qhi <= dt.max():
        return integer_datatype(qlo, qhi), "proven range"
    return dt, origin


def _weight_layout(node: NodeProto, report: RangeReport):
    """(index of the weight input, weights as a (K, columns) integer matrix,
    output channel axis or None) of a MAC node, or None when the node is not
    an integer MAC with one constant weight operand."""
    op = node.op_type
    if op not in _LAID_OUT_MACS or len(node.input) < 2:
        return None
    r = [report[i] for i in node.input[:2]]
    if r[0].is_const == r[1].is_const:
        return None
    wi = 0 if r[0].is_const else 1
    if op == "Conv" and wi != 1:
        return None
    # a run-time addend (Gemm C, Conv bias) would be part of the integer range
    if len(node.input) > 2 and node.input[2] and not report[node.input[2]].is_const:
        return None
    w = r[wi]
    grid = w.zero_bias_form()
    if grid is None or not np.all(grid.int_lo == grid.int_hi):
        return None
    q = np.broadcast_to(grid.int_lo, w.shape)
    if op == "Conv":
        return wi, q.reshape(q.shape[0], -1).T, 1
    if op == "Gemm":
        if wi == 1:
            return wi, (q.T if node_attr(node, "transB", 0) else q), 1
        return wi, (q if node_attr(node, "transA", 0) else q.T), 0
    # MatMul (numpy semantics): the contraction is A's last axis, B's second-to-last
    other = r[1 - wi]
    if q.ndim == 1:
        return wi, q.reshape(-1, 1), None
    if wi == 1:
        k = q.shape[-2]
        return wi, np.moveaxis(q.reshape(-1, k, q.shape[-1]), 1, 0).reshape(k, -1), -1
    return wi, q.reshape(-1, q.shape[-1]).T, (-2 if other.ndim >= 2 else -1)


def accumulator_bounds(r: ScaledIntRange) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the integers a MAC operand or accumulator carries in
    hardware: the tensor's *values* when they are integers (what the
    optimized model's tensor holds, what its ``finn_datatype`` states and what
    the generated code adds up: a bipolar input is +-1, a threshold output
    its levels with their offset), else its integer part ``q`` (a model not
    yet optimized, on a fractional grid ``s * q + b``). The one place the
    coordinates of a width are chosen: the width report, the datatype
    annotations and the hardware lowering all read them from here."""
    bounds = r.integer_value_bounds()
    if bounds is not None:
        return bounds
    return r.int_lo, r.int_hi


def accumulator_range(r: ScaledIntRange) -> tuple[int, int]:
    """The overall range of :func:`accumulator_bounds` as Python ints."""
    lo, hi = accumulator_bounds(r)
    return int(np.min(lo)), int(np.max(hi))


def _per_channel(a: np.ndarray, shape, axis: int, reduce) -> list[int]:
    full = np.broadcast_to(a, shape)
    others = tuple(i for i in range(len(shape)) if i != axis % len(shape))
    red = reduce(full, axis=others) if others else full
    return [int(v) for v in np.asarray(red).reshape(-1)]


def _channel_ranges(y: ScaledIntRange, axis: Optional[int]) -> tuple[list, list]:
    lo, hi = accumulator_bounds(y)
    if axis is None or y.ndim == 0:
        return [int(np.min(lo))], [int(np.max(hi))]
    return _per_channel(lo, y.shape, axis, np.min), _per_channel(hi, y.shape, axis, np.max)


def popcount_low(lo: int, K: int) -> int:
    """Least popcount of ``K`` XNORs whose +-1 sum is at least ``lo``: the
    sum is ``2 * popcount - K``."""
    return -((-(lo + K)) // 2)


def popcount_high(hi: int, K: int) -> int:
    """Largest popcount of ``K`` XNORs whose +-1 sum is at most ``hi``."""
    return (hi + K) // 2


def _counts_agreements(node: NodeProto, in_dt, w_dt) -> bool:
    """Whether the hardware accumulates this MAC as a popcount of XNORs: +-1
    inputs and weights (:func:`xnor_mode`) that no zero padding joins (a
    padded convolution's input holds 0 and is summed as integers)."""
    if not xnor_mode(in_dt, w_dt):
        return False
    return not (node.op_type == "Conv" and any(int(p) for p in node_attr(node, "pads", [])))


def _layer_widths(node: NodeProto, report: RangeReport, producers: dict) -> Optional[dict]:
    layout = _weight_layout(node, report)
    if layout is None:
        return None
    wi, W, axis = layout
    x_name, w_name, y_name = node.input[1 - wi], node.input[wi], node.output[0]
    x, y = report[x_name], report[y_name]
    if not (x.is_scaled_int and y.is_scaled_int):
        return None
    in_dt, in_source = _input_datatype(report, x_name, producers)
    w_dt = weight_datatype(W)
    K = int(W.shape[0])
    N, M, signed = int(in_dt.bitwidth()), a2q_weight_bits(w_dt), bool(in_dt.signed())
    a2q = a2q_bound_width(K, N, M, signed)
    finn_in_dt = finn_input_datatype(in_dt, w_dt)
    finn_lo, finn_hi = finn_weight_aware_range(W, finn_in_dt)
    ch_lo, ch_hi = _channel_ranges(y, axis)
    popcount = _counts_agreements(node, in_dt, w_dt)
    if popcount:
        ch_lo, ch_hi = [popcount_low(lo, K) for lo in ch_lo], [popcount_high(hi, K) for hi in ch_hi]
    sira_lo, sira_hi = min(ch_lo), max(ch_hi)
    return {
        "layer": node.name or y_name,
        "op": node.op_type,
        "input": x_name,
        "weight": w_name,
        "output": y_name,
        "K": K,
        "input_dtype": in_dt.name,
        "input_dtype_source": in_source,
        "input_range": list(x.int_bounds()),
        "weight_dtype": w_dt,
        "N": N,
        "M": M,
        "signed_input": signed,
        "a2q_width": a2q,
        "a2q_dtype": f"INT{a2q}",
        "finn_input_dtype": finn_in_dt.name,
        "finn_weight_dtype": finn_weight_datatype(W, in_dt),
        "finn_range": [finn_lo, finn_hi],
        "finn_width": range_width(finn_lo, finn_hi),
        "finn_dtype": nx.narrowest_int_type(finn_lo, finn_hi),
        "accumulator": "popcount" if popcount else "sum",
        "sira_range": [sira_lo, sira_hi],
        "sira_width": range_width(sira_lo, sira_hi),
        "sira_dtype": nx.narrowest_int_type(sira_lo, sira_hi),
        "channel_widths": [range_width(lo, hi) for lo, hi in zip(ch_lo, ch_hi)],
        "limiting_channel": limiting_channel(ch_lo, ch_hi),
    }


def mac_width_report(report: RangeReport) -> list[dict]:
    """Per MAC layer (graph order) the three accumulator widths and the data
    behind them, for every MatMul/Gemm/Conv with one constant weight operand
    whose accumulator is an integer in sira's analysis; MACs on floats (no
    integer input grid) are not listed.

    Each entry: ``layer``, ``op``, ``input``/``weight``/``output`` tensors,
    ``K``, ``input_dtype`` (+ ``input_dtype_source``, ``input_range`` the
    proven integer range), ``weight_dtype``, ``N``, ``M``, ``signed_input``,
    ``a2q_width``/``a2q_dtype``, ``finn_input_dtype``/``finn_weight_dtype``
    (the operand types FINN builds the layer with: ``BINARY`` both for an
    XNOR layer, ``INT2`` for other +-1 weights),
    ``finn_range``/``finn_width``/``finn_dtype``, ``accumulator``
    (``sum``, or ``popcount`` for an XNOR layer, whose hardware counts
    agreements ``(s + K) / 2`` of the +-1 sum ``s``: the register FINN's
    popcount width describes), ``sira_range``/``sira_width``/``sira_dtype``
    (of that accumulator), ``channel_widths`` (sira, per output channel) and
    ``limiting_channel``.
    """
    producers = {o: n for n in report.model.graph.node for o in n.output if o}
    layers = []
    for node in topological_order(report.model):
        row = _layer_widths(node, report, producers)
        if row is not None:
            layers.append(row)
    return layers


def width_table(layers: Sequence[dict]) -> str:
    """People's view of :func:`mac_width_report`: one row per layer, then the
    mean width saved against the A2Q bound."""
    headers = ["layer", "op", "K", "input", "weights", "output", "A2Q", "FINN", "sira", "sira acc range", "per-channel", "limit ch", "thresholds"]
    rows = []
    for r in layers:
        widths = r["channel_widths"]
        rows.append(
            [
                r["layer"],
                r["op"],
                str(r["K"]),
                r["input_dtype"] + ("*" if r["input_dtype_source"] == "proven range" else ""),
                r["weight_dtype"],
                r.get("output_dtype", "-"),
                r["a2q_dtype"],
                r["finn_dtype"],
                r["sira_dtype"],
                f"[{r['sira_range'][0]}, {r['sira_range'][1]}]",
                f"{min(widths)}..{max(widths)} bits (x{len(widths)})",
                str(r["limiting_channel"]),
                f"{r['thresholds_per_channel']}/ch" if r.get("thresholds_per_channel") is not None else "-",
            ]
        )
    out = [format_table(headers, rows, right=(2, 12))]
    if layers:
        out.append(
            f"mean accumulator width saved vs A2Q bound: FINN {100 * mean_reduction(layers, 'finn_width'):.1f}%, "
            f"sira {100 * mean_reduction(layers):.1f}%"
        )
    if any(r["input_dtype_source"] == "proven range" for r in layers):
        out.append("* input datatype from the proven range (no quantizer datatype found)")
    return "\n".join(out)


# --------------------------------------------------------------------------
# the annotation pass
# --------------------------------------------------------------------------

_FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def _elem_types(model: ModelWrapper) -> dict[str, int]:
    g = model.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.output) + list(g.value_info)}
    types.update({init.name: init.data_type for init in g.initializer})
    return types


def _same_graph(a: ModelWrapper, b: ModelWrapper) -> bool:
    """Same nodes and same constants (what the ranges were computed from)."""
    ga, gb = a.graph, b.graph
    return (
        len(ga.node) == len(gb.node)
        and len(ga.initializer) == len(gb.initializer)
        and all(x.SerializeToString() == y.SerializeToString() for x, y in zip(ga.node, gb.node))
        and all(x.SerializeToString() == y.SerializeToString() for x, y in zip(ga.initializer, gb.initializer))
    )


class AnnotateDatatypes(Transformation):
    """Write sira's proven datatypes into the model, where FINN, hls4ml and
    Netron read them.

    * Every tensor whose values are integers (a graph input or a node output,
      float-typed in ONNX, scaled-int with integer scale and bias; plus
      integer weight initializers of MAC layers) gets the narrowest QONNX
      datatype holding its proven range as its ``finn_datatype`` annotation
      (``BIPOLAR`` for +-1 values, also for MAC weights that are exactly +-1,
      as FINN reads them; see :func:`weight_datatype`).
      Tensors with fractional scales are left alone (see
      :func:`value_datatype`); existing annotations of other tensors are kept.
    * Every integer MAC layer's accumulator datatype (sira's width, see
      :func:`mac_width_report`: the popcount of an XNOR layer) goes into the model's ``metadata_props``
      under ``sira_acc_dtype`` as JSON ``{node name: datatype}``. Metadata
      rather than a node attribute: ONNX checkers and runtimes reject unknown
      attributes on standard ops such as MatMul.

    Built from a :class:`~sira.analysis.RangeReport` of this very graph
    (checked: a stale report would annotate wrong types) or from an input
    spec, with which the model is analyzed first.
    """

    def __init__(self, source: Union[RangeReport, SpecLike] = None):
        super().__init__()
        self.source = source
        #: :func:`mac_width_report` of the annotated model (after ``apply``):
        #: the widths the annotations state, for reports to show unchanged
        self.layers: list[dict] = []

    def _report(self, model: ModelWrapper) -> RangeReport:
        if not isinstance(self.source, RangeReport):
            return analyze(model, self.source)
        if not _same_graph(self.source.model, model):
            raise SiraError(
                "AnnotateDatatypes: the RangeReport describes a different graph (nodes or constants differ); "
                "annotate report.model, or pass the input spec so the model is analyzed as it is now"
            )
        return self.source

    def apply(self, model: ModelWrapper):
        report = self._report(model)
        layers = mac_width_report(report)
        types = _elem_types(model)
        weights = {r["weight"] for r in layers}
        candidates = [i.name for i in model.graph.input] + [o for n in model.graph.node for o in n.output if o] + list(weights)
        for name in dict.fromkeys(candidates):
            if name not in report or types.get(name, TensorProto.FLOAT) not in _FLOAT_TYPES:
                continue
            r = report[name]
            dt = value_datatype(r)
            if dt is not None and name in weights and r.is_const:
                dt = weight_datatype(np.asarray(r.const_value()))  # +-1 exactly: BIPOLAR
            if dt is not None:
                model.set_tensor_datatype(name, DataType[dt])
        model.set_metadata_prop(ACC_DTYPE_KEY, json.dumps({r["layer"]: r["sira_dtype"] for r in layers}))
        self.layers = layers
        return model, False

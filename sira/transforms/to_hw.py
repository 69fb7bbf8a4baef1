"""Lowering to hardware: the optimized model -> a list of hardware layer specs
(:mod:`sira.hw`) in dataflow order.

Input: a model produced by :func:`sira.optimize` (integer MatMul/Conv with
integer-valued weight initializers, MultiThreshold requantizers, leftover
elementwise ops, pooling, data movement). Every width comes from sira's range
analysis *of that model*: a stream's type is the narrowest type holding its
proven value range, an accumulator's type the narrowest holding the MAC
output's proven range, a threshold type the narrowest holding the thresholds
and the range of what they are compared with.

Mapping (one ONNX node, or a fused group, per stage; each is one ``_Lowering``
method registered for its op types with :func:`lowering`):

* ``MatMul`` [+ ``Mul(+-1)``] [+ ``MultiThreshold``] -> :class:`~sira.hw.MVAU`.
  A per-channel sign ``Mul`` by +-1 between the MAC and its thresholds (what
  the thresholds pass emits for decreasing channels) is **absorbed by
  negating the weight columns**: free in hardware, one stage less. The
  accumulator is then the oriented tensor (the ``Mul`` output) and its range
  is the one the analysis proved for it. A sign ``Mul`` that cannot be fused
  (other readers of the MAC output) stays an ``Elementwise`` ``Mul``.
* ``Conv`` -> [:class:`~sira.hw.FMPadding` when padded] +
  :class:`~sira.hw.ConvolutionInputGenerator` + ``MVAU`` (weights ordered
  ``(kh, kw, c_in)`` x ``c_out``). A 1x1, stride-1, unpadded Conv needs no
  window: it is an ``MVAU`` over every pixel. A depthwise Conv (``group`` =
  channels, one input channel per group) -> ``FMPadding`` +
  ``ConvolutionInputGenerator(depthwise)`` + :class:`~sira.hw.VVAU`. Other
  grouped convolutions are refused.
* standalone ``MultiThreshold`` -> :class:`~sira.hw.Thresholding`.
* ``ReduceSum`` over the spatial axes (what ``optimize`` makes of global
  average pooling) -> :class:`~sira.hw.Pool` (``sum``).
* ``MaxPool`` (unpadded) -> :class:`~sira.hw.StreamingMaxPool`.
* ``Add`` of two streams -> :class:`~sira.hw.AddStreams`; ``Add``/``Sub``/
  ``Mul``/``Div``/``Min``/``Max`` with a constant, or ``Sub``/``Mul``/``Min``/
  ``Max`` of two streams, and ``Relu`` (``Max`` with 0) ->
  :class:`~sira.hw.Elementwise`; a ``Quant`` with unit scale and zero point
  that could not become thresholds -> ``Elementwise`` ``RoundClip``.
* ``Mul`` of a feature map by a per-channel gate stream (squeeze-excite)
  -> :class:`~sira.hw.GateMul`.
* ``Concat``/``Split`` along channels -> :class:`~sira.hw.Concat` /
  :class:`~sira.hw.Split`.
* ``Reshape``/``Flatten``/``Squeeze``/``Unsqueeze``/``Transpose``/``Identity``
  -> :class:`~sira.hw.Reshape` when the channels-last stream order is
  unchanged (checked exactly on an index tensor). A ``Flatten``/``Reshape``
  of a [C, H, W] map to [1, C*H*W] read only by MatMuls keeps the stream as
  it is (H, W, C order) and permutes the rows of those MatMuls' weights to
  match - exact, no data movement, as FINN does for its CNV heads. Any other
  reordering is refused.
* anything else -> :class:`~sira.errors.SiraError` naming the node and op.

Thresholds are exact integers: an input ``x`` is an integer, so ``x >= t``
equals ``x >= ceil(t)``; an infinite threshold is clipped just outside the
input range (``lo`` always fires, ``hi + 1`` never does).

Not modelled: stream duplication for a tensor read by several layers (the
layers name their input streams; a backend inserts the fan-out), FIFOs and
width converters.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from onnx import NodeProto
from qonnx.core.modelwrapper import ModelWrapper

from sira import hw
from sira import numerics as nx
from sira.analysis import RangeReport, analyze, in_file_names
from sira.errors import SiraError, node_error
from sira.hw import StreamType
from sira.inputspec import SpecLike
from sira.model import node_attr, topological_order
from sira.ops import Trait, ops_with
from sira.range import CONCAT_MAX_FACTOR, ScaledIntRange
from sira.transforms.widths import accumulator_bounds, accumulator_range, weight_datatype

#: what ``sira.optimize`` makes of ops that have no hardware layer themselves
_OPTIMIZE_FIRST = {
    "AveragePool": "it turns average pooling into a ReduceSum and a scale",
    "GlobalAveragePool": "it turns average pooling into a ReduceSum and a scale",
}


# --------------------------------------------------------------------------
# types and shapes
# --------------------------------------------------------------------------


def stream_type(r: ScaledIntRange) -> StreamType:
    """Type of the values of a stream: BIPOLAR for +-1 values, else the
    narrowest integer type of the value range, else FLOAT32."""
    vr = r.integer_values()
    if vr is None:
        return StreamType.float32()
    if vr == (-1, 1) and r.is_bipolar():
        return StreamType.bipolar()
    return StreamType.for_range(*vr)


def channels_last(shape) -> tuple[int, ...]:
    """ONNX (N, C, spatial...) shape -> streamed (N, spatial..., C)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) <= 2:
        return shape
    return (shape[0],) + shape[2:] + (shape[1],)


def _to_cl(a: np.ndarray) -> np.ndarray:
    if a.ndim <= 2:
        return a
    return np.moveaxis(a, 1, -1)


def _int_const(value: np.ndarray, what: str, node: NodeProto) -> np.ndarray:
    try:
        return nx.as_int(value)
    except ValueError:
        raise node_error(node, f"{what} is not integer-valued; run sira.optimize first (it makes MAC weights integers)") from None


def _weight_type(w: np.ndarray) -> StreamType:
    """The stream type of :func:`~sira.transforms.widths.weight_datatype`
    (the annotation of the same weights in the optimized model)."""
    if weight_datatype(w) == "BIPOLAR":
        return StreamType.bipolar()
    return StreamType.for_range(int(np.min(w)), int(np.max(w)))


# --------------------------------------------------------------------------
# lowering
# --------------------------------------------------------------------------

#: op type -> the ``_Lowering`` method that turns such a node into layers
LOWERINGS: dict[str, Callable[["_Lowering", NodeProto], None]] = {}


def lowering(*op_types: str):
    """Register the decorated ``_Lowering`` method as the hardware lowering of
    ``op_types``, so adding a hardware layer for an op is one decorated
    method. It appends layers with ``self.add`` and marks the nodes it fuses
    into them done (``self.done``)."""

    def register(fn):
        for op in op_types:
            if op in LOWERINGS:
                raise ValueError(f"duplicate hardware lowering for {op}")
            LOWERINGS[op] = fn
        return fn

    return register


def _no_lowering(node: NodeProto) -> SiraError:
    """The error for a node whose op has no hardware lowering: what to run
    first when ``sira.optimize`` rewrites that op, else what is supported."""
    op = node.op_type
    if op in _OPTIMIZE_FIRST:
        return node_error(node, f"no hardware layer for {op}; run sira.optimize first ({_OPTIMIZE_FIRST[op]})")
    return node_error(node, f"no hardware layer for {op}; supported: {', '.join(sorted(LOWERINGS))}")


class _Lowering:
    def __init__(self, model: ModelWrapper, report: RangeReport):
        self.model = model
        self.ra = report
        self.consumers: dict[str, list[NodeProto]] = {}
        for n in model.graph.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in model.graph.output}
        self.layers: list[hw.HWLayer] = []
        self.done: set[int] = set()
        #: flattened tensor -> the model index of each of its stream positions
        #: (its readers' weight rows are permuted by it)
        self.stream_order: dict[str, np.ndarray] = {}

    # -- helpers -------------------------------------------------------------
    def const(self, name: str) -> Optional[np.ndarray]:
        init = self.model.get_initializer(name)
        if init is not None:
            return np.asarray(init)
        r = self.ra.ranges.get(name) if hasattr(self.ra, "ranges") else None
        return None if r is None or not r.is_const else np.asarray(r.const_value())

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.ra[name].shape)

    def stype(self, name: str) -> StreamType:
        return stream_type(self.ra[name])

    def int_stream(self, name: str, node: NodeProto, role: str = "input") -> tuple[int, int]:
        """The integer range of a stream or accumulator, in the coordinates
        every width is read in (:func:`~sira.transforms.widths.accumulator_range`)."""
        r = self.ra[name]
        if r.integer_values() is None:
            raise node_error(
                node,
                f"no hardware layer for {node.op_type} on a non-integer {role} stream '{name}'; "
                "quantize it (or run sira.optimize, which turns scales into thresholds) first",
            )
        return accumulator_range(r)

    def channel_bounds(self, name: str, axis: int, padded: bool = False) -> np.ndarray:
        """(2, n) proven integer bounds of every index along ``axis`` of a
        MAC input (the hull over all other axes; with the zeros of a
        padding when ``padded``), the input bounds of the layer reading it
        (:attr:`~sira.hw.DotProductUnit.input_bounds`)."""
        r = self.ra[name]
        lo, hi = (np.broadcast_to(b, r.shape) for b in accumulator_bounds(r))
        others = tuple(i for i in range(lo.ndim) if i != axis % lo.ndim)
        lo, hi = nx.as_int(np.min(lo, axis=others)), nx.as_int(np.max(hi, axis=others))
        if padded:
            zero = np.zeros((), dtype=np.int64)
            lo, hi = nx.int_minimum(lo, zero), nx.int_maximum(hi, zero)
        return np.stack([lo, hi])

    def sole_consumer(self, tensor: str) -> Optional[NodeProto]:
        cons = self.consumers.get(tensor, [])
        if len(cons) != 1 or tensor in self.graph_outputs:
            return None
        return cons[0]

    def add(self, layer: hw.HWLayer) -> None:
        self.layers.append(layer)

    # -- thresholds ----------------------------------------------------------
    def thresholds(self, mt: NodeProto, in_range: tuple[int, int]) -> tuple[np.ndarray, StreamType, int, int]:
        t = self.const(mt.input[1])
        if t is None:
            raise node_error(mt, "thresholds are not a constant; no hardware layer for run-time thresholds")
        t = np.asarray(t, dtype=np.float64)
        if t.ndim != 2:
            raise node_error(mt, f"thresholds must be 2-D (channels, steps), got shape {list(t.shape)}")
        lo, hi = in_range
        t = np.where(np.isneginf(t), lo, np.where(np.isposinf(t), hi + 1, t))
        if np.any(np.isnan(t)):
            raise node_error(mt, "thresholds contain NaN")
        ti = nx.as_int(np.ceil(t))
        tlo, thi = (int(np.min(ti)), int(np.max(ti))) if ti.size else (lo, hi)
        ttype = StreamType.for_range(min(tlo, lo), max(thi, hi))
        scale, bias = float(node_attr(mt, "out_scale", 1.0)), float(node_attr(mt, "out_bias", 0.0))
        if not (scale.is_integer() and bias.is_integer()):
            raise node_error(mt, f"out_scale={scale} / out_bias={bias} are not integers; no integer hardware thresholding for them")
        return ti, ttype, int(bias), int(scale)

    def fused_tail(self, mac_out: str):
        """(sign vector or None, sign Mul node, MultiThreshold node) reading
        the MAC output, as far as they can be fused into the MAC stage."""
        nxt = self.sole_consumer(mac_out)
        if nxt is None:
            return None, None, None
        if nxt.op_type == "MultiThreshold" and nxt.input[0] == mac_out:
            return None, None, nxt
        if nxt.op_type == "Mul":
            other = nxt.input[1] if nxt.input[0] == mac_out else nxt.input[0]
            c = self.const(other)
            mt = self.sole_consumer(nxt.output[0])
            if c is not None and np.all(np.abs(c) == 1) and mt is not None and mt.op_type == "MultiThreshold" and mt.input[0] == nxt.output[0]:
                return nx.as_int(c), nxt, mt
        return None, None, None

    # -- per op --------------------------------------------------------------
    @lowering("MatMul", "Conv")
    def lower_mac(self, node: NodeProto) -> None:
        x, wname, y = node.input[0], node.input[1], node.output[0]
        if len(node.input) > 2 and node.input[2]:
            raise node_error(node, "has a bias input; run sira.optimize first (it moves biases into the thresholds)")
        w = self.const(wname)
        if w is None or self.const(x) is not None:
            raise node_error(node, f"no hardware layer for {node.op_type} without a constant weight as second input; only x @ W with W an initializer is supported")
        W = _int_const(w, f"weight '{wname}'", node)
        if self.ra[x].integer_values() is None and node.op_type == "MatMul" and W.ndim == 2:
            self.lower_float_matmul(node, x, W, y)
            return
        self.int_stream(x, node)
        sign, sign_node, mt = self.fused_tail(y)
        acc = sign_node.output[0] if sign_node is not None else y
        acc_range = self.int_stream(acc, node, "accumulator")
        acc_type = StreamType.for_range(*acc_range)
        thr: dict = {}
        out = acc
        if mt is not None:
            t, ttype, bias, scale = self.thresholds(mt, acc_range)
            thr = dict(thresholds=t, threshold_type=ttype, activation_bias=bias, activation_scale=scale)
            out = mt.output[0]
            self.done.add(id(mt))
        if sign_node is not None:
            self.done.add(id(sign_node))
        xs = self.shape(x)
        if node.op_type == "MatMul":
            if W.ndim != 2:
                raise node_error(node, f"weights of shape {list(W.shape)}: only 2-D MatMul weights map to an MVAU")
            bounds = self.channel_bounds(x, -1)
            if x in self.stream_order:
                W = W[self.stream_order[x], :]
                bounds = bounds[:, self.stream_order[x]]
            if sign is not None:
                W = nx.int_mul(W, sign.reshape(1, -1))
            self.add(hw.MVAU(
                name=node.name or y, inputs=(x,), outputs=(out,), in_shape=xs, out_shape=self.shape(out),
                in_type=self.stype(x), out_type=self.stype(out), mw=W.shape[0], mh=W.shape[1],
                num_input_vectors=xs[1:-1], weights=W, weight_type=_weight_type(W), acc_type=acc_type, acc_range=acc_range, input_bounds=bounds, **thr,
            ))  # fmt: skip
            return
        self.lower_conv(node, x, W, sign, out, acc_type, acc_range, thr)

    def lower_float_matmul(self, node: NodeProto, x: str, W: np.ndarray, y: str) -> None:
        """A MatMul reading a float stream (the model's own float input, when
        no quantizer precedes the first layer): an MVAU with float input and
        accumulator, whose cost the estimate reports as unknown."""
        xs = self.shape(x)
        self.add(hw.MVAU(
            name=node.name or y, inputs=(x,), outputs=(y,), in_shape=xs, out_shape=self.shape(y),
            in_type=StreamType.float32(), out_type=StreamType.float32(), mw=W.shape[0], mh=W.shape[1],
            num_input_vectors=xs[1:-1], weights=W, weight_type=_weight_type(W), acc_type=StreamType.float32(), acc_range=None,
        ))  # fmt: skip

    def lower_conv(self, node, x, W, sign, out, acc_type, acc_range, thr) -> None:
        xs = self.shape(x)
        if len(xs) == 3:  # a 1-D convolution is a 2-D one on a 1-row image (same stream order)
            W = W.reshape(W.shape[0], W.shape[1], 1, W.shape[2])
            attrs = {key: [1] + [int(v) for v in node_attr(node, key, [default])] for key, default in (("kernel_shape", W.shape[3]), ("strides", 1), ("dilations", 1))}
            p1 = [int(v) for v in node_attr(node, "pads", [0, 0])]
            attrs["pads"] = [0, p1[0], 0, p1[1]]
            xs, ys = (xs[0], xs[1], 1, xs[2]), self.shape(node.output[0])
            ys = (ys[0], ys[1], 1, ys[2])
        elif len(xs) == 4:
            attrs = {key: node_attr(node, key, default) for key, default in (("kernel_shape", W.shape[2:]), ("strides", [1, 1]), ("dilations", [1, 1]), ("pads", [0, 0, 0, 0]))}
            ys = self.shape(node.output[0])
        else:
            raise node_error(node, f"only 1-D and 2-D convolutions (NCW / NCHW input) are supported, input shape {list(xs)}")
        _, C, H, Wd = xs
        kh, kw = (int(v) for v in attrs["kernel_shape"])
        sh, sw = (int(v) for v in attrs["strides"])
        dh, dw = (int(v) for v in attrs["dilations"])
        pt, pl, pb, pr = (int(v) for v in attrs["pads"])
        if node_attr(node, "auto_pad", "NOTSET") not in ("NOTSET", ""):
            raise node_error(node, "auto_pad is not supported; give explicit pads")
        group = int(node_attr(node, "group", 1))
        cout = W.shape[0]
        depthwise = group > 1
        if depthwise and not (group == C and W.shape[1] == 1 and cout == C):
            raise node_error(node, f"no hardware layer for a grouped Conv with group={group} on {C} channels; only group=1 or depthwise (group = channels = output channels)")
        if sign is not None:
            W = nx.int_mul(W, sign.reshape(-1, 1, 1, 1))
        name = node.name or node.output[0]
        OH, OW = ys[2], ys[3]
        bounds = self.channel_bounds(x, 1, padded=bool(pt or pl or pb or pr))
        itype = self.stype(x)
        stream, shape = x, channels_last(xs)
        if pt or pl or pb or pr:
            padded = (1, H + pt + pb, Wd + pl + pr, C)
            # the zeros of the padding widen a stream that cannot hold 0 (bipolar +-1 -> INT2)
            ptype = itype if itype.kind != "bipolar" and itype.min <= 0 <= itype.max else StreamType.for_range(min(itype.min, 0), max(itype.max, 0))
            self.add(hw.FMPadding(
                name=f"{name}_pad", inputs=(stream,), outputs=(f"{name}_padded",), in_shape=shape, out_shape=padded,
                in_type=itype, out_type=ptype, channels=C, padding=(pt, pl, pb, pr),
            ))  # fmt: skip
            stream, shape, itype = f"{name}_padded", padded, ptype
        needs_window = depthwise or (kh, kw, sh, sw) != (1, 1, 1, 1) or (dh, dw) != (1, 1)
        if needs_window:
            window = (1, OH, OW, kh * kw * C)
            self.add(hw.ConvolutionInputGenerator(
                name=f"{name}_swg", inputs=(stream,), outputs=(f"{name}_window",), in_shape=shape, out_shape=window,
                in_type=itype, out_type=itype, channels=C, ifm_dim=shape[1:3], ofm_dim=(OH, OW), kernel=(kh, kw),
                stride=(sh, sw), dilation=(dh, dw), depthwise=depthwise,
            ))  # fmt: skip
            stream, shape = f"{name}_window", window
        common = dict(
            name=name, inputs=(stream,), outputs=(out,), in_shape=shape, out_shape=channels_last(self.shape(out)),
            in_type=itype, out_type=self.stype(out), num_input_vectors=(OH, OW), acc_type=acc_type, acc_range=acc_range, **thr,
        )  # fmt: skip
        if depthwise:
            Wv = W.reshape(C, kh * kw)
            self.add(hw.VVAU(channels=C, kernel=(kh, kw), weights=Wv, weight_type=_weight_type(Wv), input_bounds=bounds, **common))
        else:
            Wm = np.ascontiguousarray(np.transpose(W, (2, 3, 1, 0))).reshape(kh * kw * C, cout)
            # weight rows in (kh, kw, c_in) order: the channel bounds once per kernel position
            self.add(hw.MVAU(mw=Wm.shape[0], mh=cout, weights=Wm, weight_type=_weight_type(Wm), input_bounds=np.tile(bounds, kh * kw), **common))

    @lowering("MultiThreshold")
    def lower_threshold(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        in_range = self.int_stream(x, node)
        t, ttype, bias, scale = self.thresholds(node, in_range)
        xs = self.shape(x)
        layout = node_attr(node, "data_layout", "NCHW" if len(xs) == 4 else "NC")
        C = xs[-1] if layout in ("NHWC", "NWC") else xs[1]
        self.add(hw.Thresholding(
            name=node.name or y, inputs=(x,), outputs=(y,), in_shape=channels_last(xs), out_shape=channels_last(self.shape(y)),
            in_type=self.stype(x), out_type=self.stype(y), channels=C, thresholds=t, threshold_type=ttype,
            activation_bias=bias, activation_scale=scale,
        ))  # fmt: skip

    @lowering("Add", "Sub", "Mul", "Div", "Min", "Max")
    def lower_binary(self, node: NodeProto) -> None:
        op, y = node.op_type, node.output[0]
        ins = [i for i in node.input if i]
        consts = [self.const(i) for i in ins]
        ys = self.shape(y)
        C = ys[1] if len(ys) >= 2 else 1
        base = dict(name=node.name or y, outputs=(y,), out_shape=channels_last(ys), out_type=self.stype(y))
        if len(ins) != 2:
            raise node_error(node, f"no hardware layer for {op} with {len(ins)} inputs; expected two")
        if consts[0] is None and consts[1] is None:
            a, b = ins
            if self.shape(a) != self.shape(b):
                if op == "Mul" and self.lower_gate_mul(node, a, b):
                    return
                raise node_error(node, f"no hardware layer for {op} of streams of different shapes {list(self.shape(a))} and {list(self.shape(b))}")
            if op == "Div":
                raise node_error(node, "no hardware layer for Div of two streams")
            self.int_stream(a, node)
            self.int_stream(b, node)
            common = dict(base, inputs=(a, b), in_shape=channels_last(self.shape(a)), in_type=self.stype(a))
            if op == "Add":
                self.add(hw.AddStreams(channels=C, in_type2=self.stype(b), **common))
            else:
                self.add(hw.Elementwise(op=op, channels=C, rhs_type=self.stype(b), **common))
            return
        if consts[0] is not None and consts[1] is not None:
            raise node_error(node, "both operands are constants; fold constants before lowering")
        si = 0 if consts[0] is None else 1
        if si == 1 and op in ("Sub", "Div"):
            raise node_error(node, f"no hardware layer for constant {op} stream (constant on the left); rewrite as Mul/Add")
        c = np.asarray(consts[1 - si], dtype=np.float64)
        c = c.reshape((1,) * (len(ys) - c.ndim) + c.shape) if c.ndim < len(ys) else c
        param = _to_cl(c)
        try:
            param = nx.as_int(param)
        except ValueError:
            pass
        x = ins[si]
        self.add(hw.Elementwise(op=op, channels=C, param=param, inputs=(x,), in_shape=channels_last(self.shape(x)), in_type=self.stype(x), **base))

    def lower_gate_mul(self, node: NodeProto, a: str, b: str) -> bool:
        """A Mul of a feature map [N, C, ...] by a gate [N, C, 1, ...] of one
        value per channel (either operand order) becomes a
        :class:`~sira.hw.GateMul`; False for other shapes."""
        for x, g in ((a, b), (b, a)):
            xs, gs = self.shape(x), self.shape(g)
            if len(xs) >= 3 and len(gs) == len(xs) and tuple(gs[:2]) == tuple(xs[:2]) and all(d == 1 for d in gs[2:]):
                self.int_stream(x, node)
                self.int_stream(g, node, "gate")
                y = node.output[0]
                self.add(hw.GateMul(
                    name=node.name or y, inputs=(x, g), outputs=(y,), in_shape=channels_last(xs), out_shape=channels_last(self.shape(y)),
                    in_type=self.stype(x), out_type=self.stype(y), channels=xs[1], gate_type=self.stype(g),
                ))  # fmt: skip
                return True
        return False

    @lowering("Relu")
    def lower_relu(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        ys = self.shape(y)
        self.add(hw.Elementwise(
            op="Max", channels=ys[1] if len(ys) >= 2 else 1, param=np.zeros(1, dtype=np.int64), name=node.name or y,
            inputs=(x,), outputs=(y,), in_shape=channels_last(self.shape(x)), out_shape=channels_last(ys),
            in_type=self.stype(x), out_type=self.stype(y),
        ))  # fmt: skip

    @lowering("Quant")
    def lower_quant(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        vals = [self.const(i) for i in node.input[1:4]]
        if any(v is None for v in vals):
            raise node_error(node, "no hardware layer for a Quant with run-time scale, zero point or bit width")
        scale, zp, bits = vals
        if not (np.all(scale == 1) and np.all(zp == 0)):
            raise node_error(node, "no hardware layer for a Quant with a non-unit scale or non-zero zero point; run sira.optimize first (it splits the scale off)")
        bits = int(np.asarray(bits).reshape(-1)[0])
        signed, narrow = bool(node_attr(node, "signed", 1)), bool(node_attr(node, "narrow", 0))
        lo = -(1 << (bits - 1)) + int(narrow) if signed else 0
        hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1 - int(narrow)
        ys = self.shape(y)
        self.add(hw.Elementwise(
            op="RoundClip", channels=ys[1] if len(ys) >= 2 else 1, rounding=str(node_attr(node, "rounding_mode", "ROUND")),
            clip_lo=lo, clip_hi=hi, name=node.name or y, inputs=(x,), outputs=(y,), in_shape=channels_last(self.shape(x)),
            out_shape=channels_last(ys), in_type=self.stype(x), out_type=self.stype(y),
        ))  # fmt: skip

    @lowering("ReduceSum")
    def lower_reduce_sum(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        xs = self.shape(x)
        axes = self.const(node.input[1]) if len(node.input) > 1 and node.input[1] else node_attr(node, "axes")
        axes = sorted(int(a) % len(xs) for a in np.asarray(axes).reshape(-1)) if axes is not None else None
        if len(xs) not in (3, 4) or axes != list(range(2, len(xs))):
            raise node_error(node, f"no hardware layer for ReduceSum over axes {axes} of shape {list(xs)}; only the spatial axes of an NCW or NCHW map (global pooling)")
        self.int_stream(x, node)
        out = self.stype(y)
        dims = tuple(xs[2:]) if len(xs) == 4 else (1, xs[2])
        self.add(hw.Pool(
            name=node.name or y, inputs=(x,), outputs=(y,), in_shape=(xs[0], *dims, xs[1]), out_shape=(xs[0], 1, 1, xs[1]),
            in_type=self.stype(x), out_type=out, channels=xs[1], ifm_dim=dims, ofm_dim=(1, 1), kernel=dims,
            stride=dims, acc_type=out,
        ))  # fmt: skip

    @lowering("MaxPool")
    def lower_maxpool(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        xs, ys = self.shape(x), self.shape(y)
        if len(xs) != 4:
            raise node_error(node, f"only 2-D max pooling is supported, input shape {list(xs)}")
        if any(int(d) != 1 for d in node_attr(node, "dilations", [1, 1])):
            raise node_error(node, "no hardware layer for dilated MaxPool")
        if node_attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID", "", b"NOTSET", b"VALID"):
            raise node_error(node, "auto_pad is not supported; give explicit pads")
        k = tuple(int(v) for v in node_attr(node, "kernel_shape"))
        s = tuple(int(v) for v in node_attr(node, "strides", k))
        pt, pl, pb, pr = (int(v) for v in node_attr(node, "pads", [0, 0, 0, 0]))
        # ceil_mode's last windows reach past the padded input: pad for them too
        pb += max(0, (ys[2] - 1) * s[0] + k[0] - (xs[2] + pt + pb))
        pr += max(0, (ys[3] - 1) * s[1] + k[1] - (xs[3] + pl + pr))
        t = self.stype(x)
        name = node.name or y
        stream, dims = x, tuple(xs[2:])
        if pt or pl or pb or pr:
            if max(pt, pb) >= k[0] or max(pl, pr) >= k[1]:
                raise node_error(node, f"no hardware layer for MaxPool padding {[pt, pl, pb, pr]} as wide as its kernel {list(k)} (a window with no input cell)")
            # padding with the stream's least value: every window holds an input cell, so it never wins
            dims = (xs[2] + pt + pb, xs[3] + pl + pr)
            self.add(hw.FMPadding(
                name=f"{name}_pad", inputs=(x,), outputs=(f"{name}_padded",), in_shape=channels_last(xs),
                out_shape=(1, *dims, xs[1]), in_type=t, out_type=t, channels=xs[1], padding=(pt, pl, pb, pr), value=t.min,
            ))  # fmt: skip
            stream = f"{name}_padded"
        self.add(hw.StreamingMaxPool(
            name=name, inputs=(stream,), outputs=(y,), in_shape=(1, *dims, xs[1]), out_shape=channels_last(ys),
            in_type=t, out_type=self.stype(y), channels=xs[1], ifm_dim=dims, ofm_dim=ys[2:], kernel=k, stride=s,
        ))  # fmt: skip

    @lowering("Concat", "Split")
    def lower_concat_split(self, node: NodeProto) -> None:
        rank = len(self.shape(node.output[0]))
        axis = int(node_attr(node, "axis", 0)) % rank
        if axis != 1:
            raise node_error(node, f"no hardware layer for {node.op_type} along axis {axis}; only along channels (axis 1)")
        name = node.name or node.output[0]
        if node.op_type == "Concat":
            ins = [i for i in node.input if i]
            y = node.output[0]
            self.check_concat_grid(node, ins, y)
            self.add(hw.Concat(
                name=name, inputs=tuple(ins), outputs=(y,), in_shape=channels_last(self.shape(ins[0])),
                out_shape=channels_last(self.shape(y)), in_type=self.stype(ins[0]), out_type=self.stype(y),
                channels=tuple(self.shape(i)[1] for i in ins), in_types=tuple(self.stype(i) for i in ins),
            ))  # fmt: skip
        else:
            x, outs = node.input[0], [o for o in node.output if o]
            self.add(hw.Split(
                name=name, inputs=(x,), outputs=tuple(outs), in_shape=channels_last(self.shape(x)),
                out_shape=channels_last(self.shape(outs[0])), in_type=self.stype(x), out_type=self.stype(outs[0]),
                channels=tuple(self.shape(o)[1] for o in outs),
            ))  # fmt: skip

    def check_concat_grid(self, node: NodeProto, ins: list[str], y: str) -> None:
        """A Concat of scaled-integer branches is integer hardware only when
        the analysis put the branches on one grid (integer factors up to
        :data:`~sira.range.CONCAT_MAX_FACTOR`, which optimize inserts as
        Muls on the branches) or their values are integers already;
        otherwise the joined channels would carry different units and no
        integer layer after it can be exact."""
        parts = [self.ra[i] for i in ins]
        out = self.ra[y]
        if not all(p.is_scaled_int for p in parts) or out.scale.size == 1 or out.integer_values() is not None:
            return
        scales = ", ".join(f"{float(np.asarray(p.scale).reshape(-1)[0]):.9g}" if p.scale.size == 1 else "per-channel" for p in parts)
        raise node_error(
            node,
            f"no hardware layer for a Concat of branches at scales {scales}: they share no exact integer grid "
            f"with factors up to 2**{CONCAT_MAX_FACTOR.bit_length() - 1}; give the branches' quantizers one per-tensor scale "
            "(or scales in integer or power-of-two ratios)",
        )

    @lowering(*sorted(ops_with(Trait.LAYOUT)))
    def lower_movement(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        xs, ys = self.shape(x), self.shape(y)
        idx = np.arange(int(math.prod(xs))).reshape(xs)
        if node.op_type == "Transpose":
            perm = node_attr(node, "perm", list(range(len(xs)))[::-1])
            moved = np.transpose(idx, perm)
        else:
            moved = idx.reshape(ys)
        if moved.shape != ys or not np.array_equal(_to_cl(idx).reshape(-1), _to_cl(moved).reshape(-1)):
            if self.flattened_into_matmuls(node, xs, ys):
                self.stream_order[y] = _to_cl(idx).reshape(-1)
                self.add(hw.Reshape(
                    name=node.name or y, op=node.op_type, inputs=(x,), outputs=(y,), in_shape=channels_last(xs),
                    out_shape=tuple(ys), in_type=self.stype(x), out_type=self.stype(y),
                ))  # fmt: skip
                return
            raise node_error(
                node,
                f"no hardware layer for {node.op_type} {list(xs)} -> {list(ys)}: it reorders the channels-last stream; "
                "a data layout conversion is not supported (move it to the model's input or output)",
            )
        self.add(hw.Reshape(
            name=node.name or y, op=node.op_type, inputs=(x,), outputs=(y,), in_shape=channels_last(xs),
            out_shape=channels_last(ys), in_type=self.stype(x), out_type=self.stype(y),
        ))  # fmt: skip

    def flattened_into_matmuls(self, node: NodeProto, xs, ys) -> bool:
        """Whether ``node`` flattens a feature map into a [1, N] vector that
        only MatMuls with constant weights read (so their rows can follow
        the stream's order instead)."""
        if node.op_type not in ("Reshape", "Flatten") or len(xs) < 3 or len(ys) != 2 or ys[0] != 1 or xs[0] != 1:
            return False
        readers = self.consumers.get(node.output[0], [])
        return bool(readers) and node.output[0] not in self.graph_outputs and all(
            r.op_type == "MatMul" and r.input[0] == node.output[0] and self.const(r.input[1]) is not None for r in readers
        )

    @lowering(*sorted(ops_with(Trait.HOST)))
    def lower_host_op(self, node: NodeProto) -> None:
        x, y = node.input[0], node.output[0]
        if not all(o in self.graph_outputs for o in node.output if o):
            raise node_error(node, f"no hardware layer for {node.op_type} inside the dataflow; it runs on the host only when it produces the model's output")
        self.add(hw.HostOp(
            name=node.name or y, op=node.op_type, inputs=(x,), outputs=tuple(o for o in node.output if o),
            in_shape=channels_last(self.shape(x)), out_shape=channels_last(self.shape(y)), in_type=self.stype(x), out_type=self.stype(y),
        ))  # fmt: skip

    def run(self) -> list[hw.HWLayer]:
        for node in topological_order(self.model):
            if id(node) in self.done:
                continue
            outs = [o for o in node.output if o]
            if outs and all(self.ra[o].is_const for o in outs):
                continue  # constant subgraph: no stream
            lower = LOWERINGS.get(node.op_type)
            if lower is None:
                raise _no_lowering(node)
            lower(self, node)
            self.done.add(id(node))
        return self.layers


def _check_inputs(model: ModelWrapper, report: RangeReport) -> None:
    """An input annotated with an integer datatype (what optimize does to an
    input whose quantizer became thresholds) must be analyzed as that integer
    stream, not with the original model's real-valued spec."""
    for inp in model.graph.input:
        dt = model.get_tensor_datatype(inp.name)
        if dt is None or not dt.is_integer() or inp.name not in report.input_ranges:
            continue
        r = report.input_ranges[inp.name]
        vr = r.integer_values()
        if vr is None or vr[0] < dt.min() or vr[1] > dt.max():
            raise SiraError(
                f"input '{inp.name}' is annotated {dt.name} in the optimized model, but the input spec gives it other values; "
                "the optimized model takes the raw integers: pass input_spec=None (the annotations are used) or the integer range"
            )


def lower_to_hw(optimized_model, input_spec: SpecLike = None, *, report: Optional[RangeReport] = None) -> list[hw.HWLayer]:
    """Hardware layer specs of ``optimized_model`` (a ModelWrapper or path,
    the output of :func:`sira.optimize`) in dataflow order.

    ``input_spec`` describes the *optimized* model's inputs; the default
    (None) takes them from their ``finn_datatype`` annotations, which is
    right for inputs whose quantizer ``optimize`` turned into thresholds
    (they take raw integers). ``report`` may pass an existing analysis of
    this very model instead. Raises :class:`~sira.errors.SiraError` naming
    the node and op for anything without a hardware layer."""
    if report is None:
        report = analyze(optimized_model, input_spec)
    _check_inputs(report.model, report)
    try:
        return _Lowering(report.model, report).run()
    except SiraError as e:
        raise SiraError(in_file_names(str(e), report.model)) from None


__all__ = ["lower_to_hw", "lowering", "LOWERINGS", "stream_type", "channels_last"]

"""A chain read from the graph: the integer input's grid, the monotone
elementwise maps of :mod:`sira.semantics`, and the quantizer that ends it."""

from __future__ import annotations

import bisect
import dataclasses
import functools
from fractions import Fraction
from typing import Optional

import numpy as np
from onnx import NodeProto

from sira import numerics as nx
from sira.errors import SiraError
from sira.model import node_attr
from sira.ops import Trait, ops_with
from sira.range import compact
from sira.rules.quant import int_limits
from sira.semantics import SEMANTICS, NotMonotone, OpNode, channel_fractions

#: elementwise ops a chain may contain (each defined in sira.semantics)
CHAIN_OPS = frozenset(SEMANTICS)
#: quantizers that end a chain (Trunc: version 2, with an output scale)
QUANTIZERS = ops_with(Trait.REAL_QUANTIZER) | {"Trunc"}
#: a MultiThreshold ends a chain too when elementwise ops lead to it (FINN's
#: tidied graphs hold a quantizer already as a MultiThreshold on floats)
CHAIN_ENDS = QUANTIZERS | {"MultiThreshold"}
#: ops that only move data: between a graph input and its first chain they
#: carry the raw integers once the input is converted
MOVEMENT_OPS = ops_with(Trait.LAYOUT)


class NotConvertible(SiraError):
    """A chain that cannot be turned into thresholds exactly; the message
    says why. The passes report it and leave the chain as it is."""


@dataclasses.dataclass(frozen=True, eq=False)
class Requantizer:
    """QONNX Quant / BipolarQuant as a level index n in [0, steps].

    Multi-bit: n = R(clip(x/s + z, qmin, qmax)) - qmin; the value is
    s * (qmin + n - z). Clip and every rounding mode are non-decreasing, so
    n is (s > 0 is required). Bipolar (BipolarQuant, or a 1-bit signed
    Quant as qonnx executes it): n = [x/s + z >= 0], value s * (2n - 1 - z).
    QONNX Trunc (v2) rounds to its input grid first: with ``trunc = (s_in,
    z_in, t)``, n = R(clip(round(x/s_in + z_in) / t, qmin, qmax)) - qmin
    (round half to even, t a power of two), its value scale * (qmin + n -
    zeropt) with scale the output scale and zeropt = z_in / t.
    A MultiThreshold counts its thresholds at or below x: with
    ``thresholds`` (per channel, sorted, as stored) n = #{t <= x}, qmin =
    0, qmax the number of thresholds, its value out_scale * n + out_bias
    (scale = out_scale, zeropt = -out_bias / out_scale).
    """

    scale: np.ndarray
    zeropt: np.ndarray
    qmin: int
    qmax: int
    mode: str
    bipolar: bool
    out_dtype: str
    label: str = ""
    trunc: Optional[tuple] = None
    thresholds: Optional[np.ndarray] = None

    @property
    def steps(self) -> int:
        return 1 if self.bipolar else self.qmax - self.qmin

    @property
    def level0(self) -> int:
        return -1 if self.bipolar else self.qmin

    @property
    def level_step(self) -> int:
        return 2 if self.bipolar else 1

    def _index_floats(self, v: np.ndarray) -> np.ndarray:
        """Exact level indices of float64 values (rounding monotone and exact
        on floats, so bounds of the input give bounds of the index)."""
        if self.bipolar:
            return (v >= 0).astype(np.int64)
        return nx.round_floats(np.clip(v, self.qmin, self.qmax), self.mode).astype(np.int64) - self.qmin

    def bounds(self, lo, hi, ch):
        if self.thresholds is not None:  # float64 comparisons with the stored thresholds are exact
            t = self.thresholds[np.asarray(ch)]
            return np.sum(t <= np.asarray(lo)[..., None], axis=-1), np.sum(t <= np.asarray(hi)[..., None], axis=-1)
        if self.trunc is not None:
            s, z, t = (a[ch] for a in self.trunc)
            # rounding to the grid, a power-of-two division, clip and R are exact and monotone on floats
            v_lo = np.round(nx.add_down(nx.div_down(lo, s), z)) / t
            v_hi = np.round(nx.add_up(nx.div_up(hi, s), z)) / t
            return self._index_floats(v_lo), self._index_floats(v_hi)
        s, z = self.scale[ch], self.zeropt[ch]
        v_lo = nx.add_down(nx.div_down(lo, s), z)
        v_hi = nx.add_up(nx.div_up(hi, s), z)
        return self._index_floats(v_lo), self._index_floats(v_hi)

    @functools.cached_property
    def _rows(self) -> list:
        """Each channel's thresholds as exact rationals, sorted."""
        return [[Fraction(float(v)) for v in row] for row in self.thresholds]

    @functools.cached_property
    def _params(self):
        if self.trunc is not None:
            return list(zip(*(channel_fractions(a) for a in self.trunc)))
        return list(zip(channel_fractions(self.scale), channel_fractions(self.zeropt)))

    def index(self, c: int, x: Fraction) -> int:
        if self.thresholds is not None:
            return bisect.bisect_right(self._rows[c], x)
        if self.trunc is not None:
            s, z, t = self._params[c]
            v = Fraction(nx.round_fraction(x / s + z, "ROUND")) / t
            return nx.round_fraction(min(max(v, Fraction(self.qmin)), Fraction(self.qmax)), self.mode) - self.qmin
        s, z = self._params[c]
        if self.bipolar:
            return int(x / s + z >= 0)
        return nx.quantize_fraction(x, s, z, self.qmin, self.qmax, self.mode) - self.qmin

    def decide(self, c: int, lo: Fraction, hi: Fraction) -> Optional[int]:
        """The level index of every value in [lo, hi], or None when the
        interval straddles a decision boundary."""
        a = self.index(c, lo)
        return a if lo == hi or a == self.index(c, hi) else None


@dataclasses.dataclass(frozen=True, eq=False)
class Chain:
    """x = in_scale * q + in_bias (q the integer input), then ``ops``, then
    ``requant``; all parameters per channel (length ``channels``)."""

    in_scale: np.ndarray
    in_bias: np.ndarray
    ops: tuple
    requant: Requantizer
    channels: int

    @property
    def screen_is_rigorous(self) -> bool:
        """Whether the float64 screen is a proof by itself: outward-rounded
        IEEE arithmetic and sqrt are; libm's exp and tanh are only close."""
        return not any(getattr(op, "libm", False) for op in self.ops)

    @property
    def unit_grid(self) -> bool:
        return bool(np.all(self.in_scale == 1) and np.all(self.in_bias == 0))

    def direction(self) -> np.ndarray:
        """Per channel: +1 non-decreasing, -1 non-increasing, 0 constant."""
        d = np.sign(self.in_scale).astype(np.int64)
        for op in self.ops:
            d = d * op.direction()
        return np.broadcast_to(d, (self.channels,)).copy()


# --------------------------------------------------------------------------
# from nodes to a Chain
# --------------------------------------------------------------------------


def node_label(node: NodeProto) -> str:
    return node.name or f"{node.op_type}({node.output[0]})"


def _const(ra, name: str) -> Optional[np.ndarray]:
    r = ra.ranges.get(name) if name else None
    return None if r is None or not r.is_const else np.asarray(r.value, dtype=np.float64)


def data_input(node: NodeProto, ra) -> Optional[int]:
    """Index of the one run-time input of a chain op (the others constant),
    or None when the node is not a chain op."""
    if node.op_type not in CHAIN_OPS and node.op_type not in CHAIN_ENDS:
        return None
    if len([o for o in node.output if o]) != 1:
        return None
    dynamic = [i for i, name in enumerate(node.input) if name and _const(ra, name) is None]
    if len(dynamic) != 1:
        return None
    idx = dynamic[0]
    if idx != 0 and not (node.op_type in SEMANTICS and SEMANTICS[node.op_type].any_operand):
        return None
    if ra[node.input[idx]].shape != ra[node.output[0]].shape:
        return None  # a constant operand that broadcasts the data is not elementwise on it
    return idx


def _op_node(node: NodeProto, ra) -> OpNode:
    """The node as its semantics entry reads it."""
    return OpNode(
        node_label(node),
        tuple(node.input),
        data_input(node, ra),
        ra[node.output[0]].shape,
        lambda name, default: node_attr(node, name, default),
        lambda i: _const(ra, node.input[i]),
    )


def _params(node: NodeProto, ra) -> dict[str, np.ndarray]:
    """The node's constant parameters, compact at the data's shape: a
    quantizer's scale and zero-point, or what its semantics reads."""
    shape = ra[node.output[0]].shape
    if node.op_type == "MultiThreshold":
        return {}  # its thresholds are read with the channel axis (build_chain)
    names = {"Quant": {"scale": 1, "zeropt": 2}, "IntQuant": {"scale": 1, "zeropt": 2}, "BipolarQuant": {"scale": 1},
             "Trunc": {"scale": 1, "zeropt": 2, "out_scale": 4}}.get(node.op_type)  # fmt: skip
    if names:
        if any(i >= len(node.input) or _const(ra, node.input[i]) is None for i in names.values()):
            raise NotConvertible(f"{node_label(node)}: its parameters must be constants (Trunc: version 2, with an output scale)")
        return {k: compact(_const(ra, node.input[i]), shape) for k, i in names.items()}
    return SEMANTICS[node.op_type].read(_op_node(node, ra))


def _channel_vector(a: np.ndarray, C: int) -> np.ndarray:
    """A compact array varying along the channel axis at most, as C floats."""
    return np.full(C, float(a.reshape(-1)[0])) if a.size == 1 else a.reshape(-1).astype(np.float64)


def _make_op(node: NodeProto, ra, p: dict):
    """The monotone map of a chain node (None for Identity), with per-channel
    vectors."""
    try:
        return SEMANTICS[node.op_type].build(_op_node(node, ra), p)
    except NotMonotone as e:
        raise NotConvertible(str(e)) from e


def _make_requantizer(node: NodeProto, ra, p: dict, C: int) -> Requantizer:
    label = node_label(node)
    scale = p["scale"]
    if np.any(scale <= 0):
        raise NotConvertible(f"{label}: the quantizer scale must be positive")
    zeropt = p.get("zeropt", np.zeros(C))
    if node.op_type == "BipolarQuant":
        return Requantizer(scale, zeropt, -1, 1, "ROUND", True, "BIPOLAR", label)
    if node.op_type == "Trunc":
        return _trunc_requantizer(node, ra, p, label)
    bits_v = _const(ra, node.input[3])
    if bits_v is None or bits_v.size != 1 or not float(bits_v.reshape(-1)[0]).is_integer():
        raise NotConvertible(f"{label}: the bit width must be a constant integer")
    bits = int(bits_v.reshape(-1)[0])
    signed, narrow = bool(node_attr(node, "signed", 1)), bool(node_attr(node, "narrow", 0))
    if bits == 1 and signed:
        return Requantizer(scale, zeropt, -1, 1, "ROUND", True, "BIPOLAR", label)
    qmin, qmax = int_limits(signed, narrow, bits)
    try:
        mode = nx.rounding_mode(node_attr(node, "rounding_mode", "ROUND"))
    except ValueError as e:
        raise NotConvertible(f"{label}: {e}") from e
    dtype = f"INT{bits}" if signed else ("BINARY" if bits == 1 else f"UINT{bits}")
    return Requantizer(scale, zeropt, qmin, qmax, mode, False, dtype, label)


def _mt_rows(node: NodeProto, ra) -> np.ndarray:
    """A MultiThreshold's thresholds as (rows, steps) float64."""
    t = _const(ra, node.input[1])
    if t is None or t.ndim != 2:
        raise NotConvertible(f"{node_label(node)}: its thresholds must be a constant (channels, steps) array")
    return t


def _mt_axis(node: NodeProto, rank: int) -> int:
    """A MultiThreshold's channel axis: 1 for NC... layouts, else the last."""
    layout = str(node_attr(node, "data_layout", "NCHW"))
    return 1 if layout.startswith("NC") else rank - 1


def _mt_requantizer(node: NodeProto, ra, C: int) -> Requantizer:
    label = node_label(node)
    t = _mt_rows(node, ra)
    if t.shape[0] not in (1, C):
        raise NotConvertible(f"{label}: {t.shape[0]} threshold rows for {C} channels")
    scale, bias = float(node_attr(node, "out_scale", 1.0)), float(node_attr(node, "out_bias", 0.0))
    if scale <= 0:
        raise NotConvertible(f"{label}: out_scale must be positive")
    rows = np.sort(np.broadcast_to(t, (C, t.shape[1])), axis=1)
    dtype = str(node_attr(node, "out_dtype", "") or nx.narrowest_int_type(0, t.shape[1]))
    zeropt = float(Fraction(-bias) / Fraction(scale))
    return Requantizer(np.full(C, scale), np.full(C, zeropt), 0, int(t.shape[1]), "ROUND", False, dtype, label, thresholds=rows)


def _trunc_requantizer(node: NodeProto, ra, p: dict, label: str) -> Requantizer:
    """QONNX Trunc v2 (inputs x, scale, zeropt, in_bits, out_scale, out_bits)
    as a Requantizer with its rounding to the input grid."""
    out_scale = p["out_scale"]
    if np.any(out_scale <= 0):
        raise NotConvertible(f"{label}: the output scale must be positive")
    bits_v = _const(ra, node.input[5]) if len(node.input) > 5 else None
    if bits_v is None or bits_v.size != 1 or not float(bits_v.reshape(-1)[0]).is_integer():
        raise NotConvertible(f"{label}: the output bit width must be a constant integer")
    bits = int(bits_v.reshape(-1)[0])
    signed, narrow = bool(node_attr(node, "signed", 1)), bool(node_attr(node, "narrow", 0))
    qmin, qmax = int_limits(signed, narrow, bits)
    try:
        mode = nx.rounding_mode(node_attr(node, "rounding_mode", "FLOOR"))
    except ValueError as e:
        raise NotConvertible(f"{label}: {e}") from e
    s, z = p["scale"], p.get("zeropt", np.zeros_like(p["scale"]))
    t = nx.trunc_step(s, out_scale)
    dtype = f"INT{bits}" if signed else f"UINT{bits}"
    return Requantizer(out_scale, z / t, qmin, qmax, mode, False, dtype, label, trunc=(s, z, t))


def _varying_axes(a: np.ndarray) -> set[int]:
    return {i for i, d in enumerate(a.shape) if d > 1}


def build_chain(nodes: list, ra, start: str, on_grid: bool, grid: Optional[tuple] = None) -> tuple[Chain, int]:
    """The Chain of ``nodes`` (ops in order, the quantizer last) reading the
    tensor ``start``, and its channel axis: the one axis along which any
    parameter varies (axis 1 when none does). With ``on_grid`` the chain's
    integer input is the grid index q of ``start`` (x = scale*q + bias, the
    analysis' grid or the (scale, bias) ``grid`` given), else the tensor's
    own (integer) values."""
    r = ra[start]
    shape = r.shape
    rank = len(shape)
    if rank < 2:
        raise NotConvertible(f"tensor '{start}' has rank {rank}; MultiThreshold needs a channel axis in a tensor of rank >= 2")
    params = [_params(n, ra) for n in nodes]
    unit = np.ones((1,) * rank)
    if on_grid:
        scale, bias = grid if grid is not None else (r.scale, r.bias)
        grid = {"scale": compact(scale, shape), "bias": compact(bias, shape)}
    else:
        grid = {"scale": unit, "bias": 0 * unit}
    axes = set().union(*(_varying_axes(a) for p in params + [grid] for a in p.values()))
    end = nodes[-1]
    if end.op_type == "MultiThreshold" and _mt_rows(end, ra).shape[0] > 1:
        axes.add(_mt_axis(end, rank))
    if len(axes) > 1:
        raise NotConvertible(f"parameters vary along axes {sorted(axes)}; thresholds can be per channel (one axis) only")
    axis = axes.pop() if axes else (_mt_axis(end, rank) if end.op_type == "MultiThreshold" else 1)
    C = shape[axis]
    vec = [{k: _channel_vector(a, C) for k, a in p.items()} for p in params]
    ops = tuple(op for n, p in zip(nodes[:-1], vec[:-1]) if (op := _make_op(n, ra, p)) is not None)
    requant = _mt_requantizer(end, ra, C) if end.op_type == "MultiThreshold" else _make_requantizer(end, ra, vec[-1], C)
    chain = Chain(_channel_vector(grid["scale"], C), _channel_vector(grid["bias"], C), ops, requant, C)
    return chain, axis


def per_channel(a: np.ndarray, axis: int, C: int, reduce) -> np.ndarray:
    """A compact array reduced over every axis but ``axis``, as C ints."""
    others = tuple(i for i in range(a.ndim) if i != axis)
    red = np.asarray(reduce(a, axis=others) if others else a).reshape(-1)
    return np.array([int(v) for v in np.broadcast_to(red, (C,))], dtype=object)


def integer_values(r) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Compact exact bounds of a dynamic tensor whose every value is an
    integer (see ScaledIntRange.integer_value_bounds); None for constants."""
    return None if r.is_const else r.integer_value_bounds()

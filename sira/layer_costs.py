"""One cost function per hardware layer kind: the :class:`~sira.cost.Cost` of
a :class:`~sira.hw.HWLayer` under a mode on a part.

:func:`layer_cost` dispatches through :data:`LAYER_COSTS`; adding a
hardware kind is one function decorated with :func:`costs`. Each passes the
layer's widths, folding and memory styles to :mod:`sira.cost`, and window
layers their line buffer as :mod:`sira.memory` lays it out (the buffer the
generated code builds).

Thresholds as costed: the cost functions size a threshold unit by its
output bits ``B = bit_length(steps)`` (``2^B - 1`` comparators in the
refined MVAU/VVAU model, the actual step count for a standalone
Thresholding); a standalone Thresholding whose channels share one
threshold row is costed in refined mode as constant (hard-wired)
thresholds (the §6.3 truth-table bound), in finn mode with a one-row
threshold memory.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import cost as C
from .accumulation import accumulation
from . import hw
from . import memory as M
from .devices import DEFAULT_PART, Part, get_part
from .errors import SiraError


def _bits(t: Optional[hw.StreamType]) -> int:
    return 1 if t is None else t.bits


def _param_bits(p: np.ndarray) -> tuple[int, bool, bool]:
    """(bits, signed, integral) of a constant operand."""
    if p.dtype == object or p.dtype.kind in "iub":
        vals = [int(v) for v in p.flat] or [0]
        t = hw.StreamType.for_range(min(vals), max(vals))
        return t.bits, t.signed, True
    if np.all(np.isfinite(p)) and np.all(p == np.round(p)):
        t = hw.StreamType.for_range(int(p.min()), int(p.max()))
        return t.bits, t.signed, True
    return 32, True, False


def _const_elements(layer: hw.Elementwise) -> int:
    """Elements of the constant operand as the generated code stores them
    (:func:`sira.memory.constant_rows` words of PE lanes; 1 for a scalar,
    which is hard-wired)."""
    return 1 if M.constant_pattern(layer) == "scalar" else M.constant_rows(layer) * layer.pe


def _unknown(kind: str, mode: str, note: str, bram18: Any = 0, uram: Any = 0) -> C.Cost:
    return C.Cost(kind, mode, C.UNKNOWN, C.UNKNOWN, bram18, uram, {"arithmetic": C.UNKNOWN}, note=note)


def _combine(kind: str, mode: str, parts: Sequence[C.Cost], note: str = "") -> C.Cost:
    breakdown: dict[str, Any] = {}
    for i, p in enumerate(parts):
        for k, v in p.breakdown.items():
            breakdown[f"{p.kind.lower()}{i}.{k}"] = v
    return C.Cost(
        kind,
        mode,
        C.sum_amounts(p.lut for p in parts),
        C.sum_amounts(p.dsp for p in parts),
        C.sum_amounts(p.bram18 for p in parts),
        C.sum_amounts(p.uram for p in parts),
        breakdown,
        tuple(m for p in parts for m in p.multiplies),
        note or "; ".join(p.note for p in parts if p.note),
    )


# --------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------

LayerCostFn = Callable[[Any, Part, str], C.Cost]
LAYER_COSTS: dict[str, LayerCostFn] = {}


def costs(*kinds: str):
    """Register the cost of the hardware layer ``kinds``: a function of the
    layer, the part and the mode (already checked)."""

    def register(fn: LayerCostFn) -> LayerCostFn:
        for kind in kinds:
            LAYER_COSTS[kind] = fn
        return fn

    return register


def layer_cost(layer: hw.HWLayer, part=DEFAULT_PART, mode: str = "refined") -> C.Cost:
    """The :class:`~sira.cost.Cost` of one hardware layer (its folding,
    widths and memory style) under ``mode`` on ``part``."""
    C.check_mode(mode)
    fn = LAYER_COSTS.get(layer.kind)
    if fn is None:
        raise SiraError(f"layer '{layer.name}': no cost model for hardware kind {layer.kind}")
    return fn(layer, part if isinstance(part, Part) else get_part(part), mode)


def _buffer(layer: hw.HWLayer) -> M.MemoryLayout:
    """The line buffer of a window layer, as the generated code builds it."""
    (buffer,) = M.layer_memories(layer)
    return buffer


def _mac_params(layer, part: Part, mode: str) -> dict:
    """What the MVAU and VVAU cost functions share: folding, widths, the
    embedded thresholds' output bits and the memory styles; in refined mode,
    for a layer with proven input bounds, the adder tree and the accumulator
    at the widths :mod:`sira.accumulation` proves (the popcount of an XNOR
    layer). FINN mode prices FINN's structure at the layer's types."""
    params = dict(
        pe=layer.pe, simd=layer.simd, w_bits=layer.weight_type.bits, a_bits=layer.in_type.bits,
        a_signed=layer.in_type.signed, acc_bits=layer.acc_type.bits,
        out_bits=M.threshold_levels(layer.thresholds.shape[1]) if layer.has_thresholds else None, mode=mode, part=part,
        ram_style=M.ram_style(layer.mem_style), ram_style_thresholds=M.ram_style(layer.threshold_mem_style),
    )  # fmt: skip
    if getattr(layer, "xnor", False):
        # FINN's binaryXnorMode: 1-bit (BINARY) inputs and weights, the popcount as accumulator
        params.update(a_signed=False, acc_bits=layer.popcount_bits)
    if mode == "refined" and layer.input_bounds is not None:
        stages = accumulation(layer)
        params.update(acc_bits=stages.acc_bits, tree=(stages.term_bits, stages.partial_bits))
    return params


def _float_mac(layer, mode: str) -> C.Cost:
    return _unknown(layer.kind, mode, "float input to a MAC layer")


def _requant_unit(layer, channels: int, in_type: hw.StreamType, part: Part, mode: str) -> C.Cost:
    """The integer requantizer of a layer, with its parameter memories as
    :mod:`sira.memory` lays them out."""
    req = layer.requant
    m_type, _ = M.requant_params(req)
    prod = hw.StreamType.for_range(*req.product_range())
    x = hw.StreamType.for_range(req.lo, req.hi)
    style = M.ram_style(getattr(layer, "threshold_mem_style", layer.mem_style))
    return C.integer_requant(
        pe=layer.pe, acc_bits=in_type.bits, x_bits=x.bits, x_signed=x.signed, m_bits=m_type.bits, prod_bits=prod.bits,
        shift=req.shift, out_bits=M.threshold_levels(req.steps), memories=M.requant_memories(req, pe=layer.pe, cf=channels // layer.pe),
        mode=mode, part=part, ram_style=style,
    )  # fmt: skip


def _with_requant(layer, mac: C.Cost, unit: C.Cost) -> C.Cost:
    """A MAC without activation followed by its integer requantizer, as one layer."""
    breakdown = {**mac.breakdown, **unit.breakdown}
    return C.Cost(
        layer.kind, mac.mode, C.sum_amounts([mac.lut, unit.lut]), C.sum_amounts([mac.dsp, unit.dsp]),
        C.sum_amounts([mac.bram18, unit.bram18]), C.sum_amounts([mac.uram, unit.uram]), breakdown,
        mac.multiplies + unit.multiplies, "; ".join(n for n in (mac.note, unit.note) if n),
        storage={**mac.storage, **unit.storage}, threshold_unit="integer",
    )  # fmt: skip


@costs("MVAU")
def _mvau_cost(layer: hw.MVAU, part: Part, mode: str) -> C.Cost:
    if not layer.in_type.is_integer:
        return _float_mac(layer, mode)
    params = _mac_params(layer, part, mode)
    if layer.requant is not None:
        mac = C.mvau(mw=layer.mw, mh=layer.mh, **{**params, "out_bits": None})
        return _with_requant(layer, mac, _requant_unit(layer, layer.mh, layer.acc_type, part, mode))
    return C.mvau(mw=layer.mw, mh=layer.mh, **params)


@costs("VVAU")
def _vvau_cost(layer: hw.VVAU, part: Part, mode: str) -> C.Cost:
    if not layer.in_type.is_integer:
        return _float_mac(layer, mode)
    if layer.requant is not None:
        mac = C.vvau(channels=layer.channels, kernel=layer.kernel, **{**_mac_params(layer, part, mode), "out_bits": None})
        return _with_requant(layer, mac, _requant_unit(layer, layer.channels, layer.acc_type, part, mode))
    return C.vvau(channels=layer.channels, kernel=layer.kernel, **_mac_params(layer, part, mode))


@costs("Thresholding")
def _thresholding_cost(layer: hw.Thresholding, part: Part, mode: str) -> C.Cost:
    steps = int(layer.thresholds.shape[1])
    if steps == 0:
        return C.Cost("Thresholding", mode, 0, 0, 0, 0, {"wiring": 0}, note="no thresholds: a constant output", free=True)
    if mode == "refined" and layer.is_identity:  # the kernel builds a wire whatever the implementation
        return C.Cost("Thresholding", mode, 0, 0, 0, 0, {"wiring": 0}, note="identity thresholds: a wire", free=True)
    if layer.requant is not None:
        return dataclasses.replace(_requant_unit(layer, layer.channels, layer.in_type, part, mode), kind="Thresholding")
    shared = M.shares_threshold_row(layer)
    return C.thresholding(
        channels=layer.pe if shared else layer.channels, pe=layer.pe, a_bits=layer.in_type.bits,
        out_bits=M.threshold_levels(layer.thresholds.shape[1]), thr_bits=layer.threshold_type.bits, n_thresholds=steps,
        mode=mode, part=part, ram_style=None if mode == "finn" and layer.mem_style == "auto" else M.ram_style(layer.mem_style),
        shared=shared,
    )  # fmt: skip


@costs("Elementwise")
def _elementwise_cost(layer: hw.Elementwise, part: Part, mode: str) -> C.Cost:
    if mode == "finn":
        return C.elementwise_binary("Add", lhs_bits=1, rhs_bits=1, out_bits=1, mode="finn")
    lhs, out = layer.in_type, layer.out_type
    if layer.op == "RoundClip":
        if not lhs.is_integer:
            return _unknown("ElementwiseBinary", mode, "float RoundClip: no formula for a float rounder")
        b = lhs.bits
        parts = [
            C.elementwise_binary("Add", lhs_bits=b, rhs_bits=b, out_bits=b, pe=layer.pe, part=part),
            C.elementwise_binary("Max", lhs_bits=b, rhs_bits=b, out_bits=b, pe=layer.pe, const_elements=1, part=part),
            C.elementwise_binary("Min", lhs_bits=b, rhs_bits=b, out_bits=out.bits, pe=layer.pe, const_elements=1, part=part),
        ]
        return _combine("ElementwiseBinary", mode, parts, "RoundClip = rounding adder + clip (max, min)")
    if layer.rhs_style == "input":
        rhs_bits, rhs_signed, integral, const = _bits(layer.rhs_type), bool(layer.rhs_type and layer.rhs_type.signed), bool(layer.rhs_type is None or layer.rhs_type.is_integer), 0
    else:
        rhs_bits, rhs_signed, integral = _param_bits(layer.param)
        const = _const_elements(layer)
        if layer.rhs_type is not None:  # baseline tails: constants declared at a given width
            rhs_bits, rhs_signed, integral = layer.rhs_type.bits, layer.rhs_type.signed, layer.rhs_type.is_integer
            const = int(layer.param.size)
    ram_style = M.ram_style(layer.mem_style)
    if not (lhs.is_integer and out.is_integer and integral):
        mem = M.Memory("none", 0, 0, 0)
        if const > 1:
            mem = M.price(M.constant_operand(lanes=layer.pe, rows=math.ceil(const / layer.pe), bits=32, style=ram_style), part)
        return _unknown("ElementwiseBinary", mode, f"float {layer.op}: no formula for float arithmetic", mem.bram18, mem.uram)
    return C.elementwise_binary(
        layer.op, lhs_bits=lhs.bits, rhs_bits=rhs_bits, out_bits=out.bits, pe=layer.pe, const_elements=const,
        lhs_signed=lhs.signed, rhs_signed=rhs_signed, mode=mode, part=part, ram_style=ram_style,
    )  # fmt: skip


@costs("GateMul")
def _gate_mul_cost(layer: hw.GateMul, part: Part, mode: str) -> C.Cost:
    """A stream-by-stream multiply per lane (FINN's ElementwiseMul, which it
    does not estimate) and, refined, the gate buffer as stored."""
    mul = C.elementwise_binary(
        "Mul", lhs_bits=layer.in_type.bits, rhs_bits=layer.gate_type.bits, out_bits=layer.out_type.bits, pe=layer.pe,
        lhs_signed=layer.in_type.signed, rhs_signed=layer.gate_type.signed, mode=mode, part=part,
    )  # fmt: skip
    if mode == "finn":
        return mul
    (gate,) = M.layer_memories(layer)
    mem = M.price(gate, part)
    return dataclasses.replace(
        mul, kind="GateMul", lut=C.sum_amounts([mul.lut, mem.lut]), bram18=mem.bram18, uram=mem.uram,
        breakdown=dict(mul.breakdown, gate_buffer=mem.lut), storage=C.stored(gate=mem),
    )  # fmt: skip


@costs("AddStreams")
def _add_streams_cost(layer: hw.AddStreams, part: Part, mode: str) -> C.Cost:
    return C.add_streams(in_bits=max(layer.in_type.bits, layer.in_type2.bits), out_bits=layer.out_type.bits, pe=layer.pe, mode=mode, part=part)


@costs("FMPadding")
def _fmpadding_cost(layer: hw.FMPadding, part: Part, mode: str) -> C.Cost:
    return C.fmpadding(simd=layer.simd, a_bits=layer.in_type.bits, mode=mode)


@costs("ConvolutionInputGenerator")
def _swg_cost(layer: hw.ConvolutionInputGenerator, part: Part, mode: str) -> C.Cost:
    # FINN's HLS model is for square 2-D windows: the larger dimension stands for both
    return C.swg_hls(
        ifm_dim=max(layer.ifm_dim), kernel=max(layer.kernel), stride=max(layer.stride), channels=layer.channels,
        simd=layer.simd, a_bits=layer.in_type.bits, ram_style=M.ram_style(layer.mem_style), mode=mode, part=part,
        buffer=_buffer(layer),
    )  # fmt: skip


@costs("StreamingMaxPool")
def _maxpool_cost(layer: hw.StreamingMaxPool, part: Part, mode: str) -> C.Cost:
    return C.streaming_maxpool(
        kernel=max(layer.kernel), ifm_dim=layer.ifm_dim[1], channels=layer.channels, pe=layer.pe,
        a_bits=layer.in_type.bits, mode=mode, part=part, buffer=_buffer(layer),
    )  # fmt: skip


@costs("Pool")
def _pool_cost(layer: hw.Pool, part: Part, mode: str) -> C.Cost:
    if layer.is_global:
        return C.global_pool(channels=layer.channels, pe=layer.pe, acc_bits=_bits(layer.acc_type or layer.out_type), mode=mode,
                             part=part, ram_style=M.ram_style(layer.mem_style))  # fmt: skip
    return C.pool(function="sum", window=int(math.prod(layer.kernel)), pe=layer.pe, a_bits=layer.in_type.bits, mode=mode,
                  part=part, buffer=_buffer(layer))  # fmt: skip


@costs("Concat", "Split")
def _stream_mux_cost(layer, part: Part, mode: str) -> C.Cost:
    word_bits = layer.simd * _bits(layer.out_type if layer.kind == "Concat" else layer.in_type)
    return C.stream_mux(layer.kind, streams=len(layer.channels), word_bits=word_bits,
                        fold=max(layer.channels) // layer.simd, mode=mode)


@costs("Reshape")
def _reshape_cost(layer: hw.Reshape, part: Part, mode: str) -> C.Cost:
    return C.Cost("Reshape", mode, 0, 0, 0, 0, {"wiring": 0}, note="re-interpretation of a stream: wiring", free=True)


@costs("HostOp")
def _host_op_cost(layer: hw.HostOp, part: Part, mode: str) -> C.Cost:
    return C.Cost("HostOp", mode, 0, 0, 0, 0, {"host": 0}, note=f"{layer.op} runs on the host CPU after the dataflow", free=True)


def multiply_bindings(layers: Sequence[hw.HWLayer], part=DEFAULT_PART, mode: str = "refined") -> dict[str, tuple[C.Multiply, ...]]:
    """Per layer name, the multiply bindings (``impl`` "lut" or "dsp") the
    cost model chose: what the HLS backend must bind the same way."""
    return {layer.name: layer_cost(layer, part, mode).multiplies for layer in layers}


__all__ = ["LAYER_COSTS", "costs", "layer_cost", "multiply_bindings"]

"""Resource and performance estimate of a model's dataflow, SIRA versus a FINN baseline.

:func:`estimate` optimizes a model (:func:`sira.optimize`), lowers it to
hardware layers (:func:`transforms.to_hw.lower_to_hw`), folds them, lints
them, and costs every layer with :mod:`sira.cost` (``mode`` ``"refined"`` or
``"finn"``). The result uses FINN's report vocabulary
(``estimate_layer_resources.json``: per node ``LUT``, ``DSP``, ``BRAM_18K``,
``URAM`` plus ``total``; ``estimate_network_performance.json``:
``max_cycles``, ``max_cycles_node_name``, ``estimated_throughput_fps``).

Costing (:func:`layer_cost`) dispatches each hardware kind to its cost
function with the layer's widths and folding. Every multiply gets an explicit
DSP-or-LUT binding (:class:`sira.cost.Multiply`); :func:`multiply_bindings`
and the ``multiplies`` entry of every layer in the JSON carry it, so the HLS
backend binds each multiply the way it was costed. A cost the model has no
formula for is ``"unknown"`` in the JSON, never 0; totals add the known
values and count the layers with an unknown part (``unknown_layers``).

The baseline (:func:`baseline_layers`)
--------------------------------------
The same dataflow, same folding, built the way a FINN user gets it today
from a streamlined model. What it models, layer by layer:

* **MVAU / VVAU**: FINN's accumulator width: ``finn_width`` of the optimize
  report (the actual integer weights, inputs anywhere in their *datatype*
  range, FINN's width rule), instead of sira's width from proven ranges.
* **Elementwise tails**: every requantization chain that sira turned into
  thresholds (the thresholds embedded in an MVAU/VVAU, or a standalone
  Thresholding that does not read the graph input) is kept as elementwise
  units at the accumulator width: a ``Mul`` by a per-channel constant, an
  ``Add`` of a per-channel constant (constants stored at accumulator width)
  and a requantizer (``RoundClip``: rounding adder plus clip comparators)
  down to the layer's output type. The MAC then has no embedded thresholds
  and streams its accumulator.
* **Input thresholding**: the Thresholding that reads the graph input
  (possibly through free reshapes) compares 32-bit *float* inputs against
  32-bit float thresholds (FINN keeps the input scale, e.g. 1/255, in the
  thresholds), with the full ``2^B - 1`` thresholds per channel.
* Everything else (sliding windows, padding, pooling, residual adds, float
  output tails, reshapes) is identical to SIRA's layer.

What it approximates: a 32-bit float comparator is costed as a 32-bit
integer comparator (IEEE-754 order is integer order after a sign fix-up);
the tail constants are costed at accumulator width although FINN's real
constants are whatever its datatype inference gives (often float32, which
would cost more); FINN's streamlining *can* absorb standard BatchNorm+ReLU+
quantizer chains into thresholds, in which case the tail column overstates
FINN's cost and the accumulator-width column is the fair comparison; FIFOs
and data-width converters are costed in neither flow.

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
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import cost as C
from . import hw
from . import memory as M
from .devices import DEFAULT_PART, Part, get_part
from .errors import SiraError

#: FINN's key names, in FINN's order
RESOURCE_KEYS = ("BRAM_18K", "LUT", "URAM", "DSP")


def _bits(t: Optional[hw.StreamType]) -> int:
    return 1 if t is None else t.bits


def _steps_bits(thresholds: Optional[np.ndarray]) -> int:
    steps = 0 if thresholds is None else int(thresholds.shape[1])
    return max(1, steps.bit_length())


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
    (:func:`sira.memory.constant_rows` words of PE lanes; 1 for a scalar)."""
    rows = M.constant_rows(layer)
    return 1 if rows <= 1 else rows * layer.pe


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
# one cost function per hardware kind
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


@costs("MVAU", "VVAU")
def _mac_cost(layer, part: Part, mode: str) -> C.Cost:
    if not layer.in_type.is_integer:
        return _unknown(layer.kind, mode, "float input to a MAC layer")
    common = dict(
        pe=layer.pe, simd=layer.simd, w_bits=layer.weight_type.bits, a_bits=layer.in_type.bits,
        a_signed=layer.in_type.signed, acc_bits=layer.acc_type.bits,
        out_bits=_steps_bits(layer.thresholds) if layer.has_thresholds else None, mode=mode, part=part,
        ram_style=M.ram_style(layer.mem_style), ram_style_thresholds=M.ram_style(layer.threshold_mem_style),
    )  # fmt: skip
    if isinstance(layer, hw.MVAU):
        return C.mvau(mw=layer.mw, mh=layer.mh, **common)
    return C.vvau(channels=layer.channels, kernel=layer.kernel, **common)


@costs("Thresholding")
def _thresholding_cost(layer: hw.Thresholding, part: Part, mode: str) -> C.Cost:
    steps = int(layer.thresholds.shape[1])
    if steps == 0:
        return C.Cost("Thresholding", mode, 0, 0, 0, 0, {"wiring": 0}, note="no thresholds: a constant output", free=True)
    shared = layer.thresholds.shape[0] == 1
    return C.thresholding(
        channels=layer.pe if shared else layer.channels, pe=layer.pe, a_bits=layer.in_type.bits,
        out_bits=_steps_bits(layer.thresholds), thr_bits=layer.threshold_type.bits, n_thresholds=steps,
        mode=mode, part=part, ram_style=None if mode == "finn" and layer.mem_style == "auto" else M.ram_style(layer.mem_style),
        style="constant" if shared and mode == "refined" else None,
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
    if mode == "finn":
        return C.finn_zero(layer.kind)
    return _unknown(layer.kind, mode, f"no formula for {layer.kind} (stream multiplexing) in the notes")


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


# --------------------------------------------------------------------------
# baseline
# --------------------------------------------------------------------------


def _input_fed(layers: Sequence[hw.HWLayer], graph_inputs: Optional[set] = None) -> set:
    """Names of streams that carry a graph input unchanged (through Reshapes)."""
    produced = {o for layer in layers for o in layer.outputs}
    streams = set(graph_inputs) if graph_inputs is not None else {i for layer in layers for i in layer.inputs if i not in produced}
    for layer in layers:
        if isinstance(layer, hw.Reshape) and layer.inputs[0] in streams:
            streams.update(layer.outputs)
    return streams


def _tail(name: str, stream_in: str, stream_out: str, shape, channels: int, acc: hw.StreamType, out: hw.StreamType, pe: int) -> list[hw.HWLayer]:
    """FINN's elementwise tail: Mul, Add by per-channel constants at
    accumulator width, then a requantizer to ``out``."""
    zeros = np.zeros(channels, dtype=np.int64)
    mid1, mid2 = f"{name}_tail_mul_out", f"{name}_tail_add_out"
    base = dict(in_shape=shape, out_shape=shape, channels=channels, pe=pe)
    return [
        hw.Elementwise(name=f"{name}_tail_mul", op="Mul", inputs=(stream_in,), outputs=(mid1,), in_type=acc, out_type=acc, param=zeros, rhs_type=acc, **base),
        hw.Elementwise(name=f"{name}_tail_add", op="Add", inputs=(mid1,), outputs=(mid2,), in_type=acc, out_type=acc, param=zeros, rhs_type=acc, **base),
        hw.Elementwise(
            name=f"{name}_tail_requant", op="RoundClip", inputs=(mid2,), outputs=(stream_out,), in_type=acc, out_type=out,
            rounding="ROUND", clip_lo=out.min, clip_hi=out.max, **base,
        ),
    ]  # fmt: skip


def baseline_layers(sira_layers: Sequence[hw.HWLayer], optimize_report, graph_inputs: Optional[set] = None) -> list[hw.HWLayer]:
    """The same dataflow as a FINN user gets it today (see the module
    docstring for exactly what is modelled): FINN accumulator widths
    (``finn_width`` per MAC from ``optimize_report``, an OptimizeReport or
    its ``layers`` list), elementwise tails instead of sira's thresholds,
    float input thresholds. Folding is copied from ``sira_layers``."""
    from transforms.lower import gemm_matmul_name

    entries = getattr(optimize_report, "layers", optimize_report) or []
    by_name = {e["layer"]: e for e in entries}
    by_name.update({gemm_matmul_name(e["layer"]): e for e in entries if e.get("op") == "Gemm"})
    by_output = {e.get("output"): e for e in entries}
    fed = _input_fed(sira_layers, graph_inputs)
    out: list[hw.HWLayer] = []
    for layer in sira_layers:
        if isinstance(layer, (hw.MVAU, hw.VVAU)):
            e = by_name.get(layer.name) or next((by_output[o] for o in layer.outputs if o in by_output), None)
            acc_type, acc_range = layer.acc_type, layer.acc_range
            if e is not None and e.get("finn_range") is not None:
                acc_range = tuple(int(v) for v in e["finn_range"])
                acc_type = hw.StreamType.for_range(*acc_range)
                # never narrower than sira's (the report's width is a hull over inputs in their datatype)
                if acc_type.bits < layer.acc_type.bits:
                    acc_type, acc_range = layer.acc_type, layer.acc_range
            if layer.has_thresholds:
                mac = dataclasses.replace(
                    layer, acc_type=acc_type, acc_range=acc_range, thresholds=None, threshold_type=None,
                    activation_bias=0, activation_scale=1, out_type=acc_type, outputs=(f"{layer.name}_acc",),
                )  # fmt: skip
                channels = layer.mh if isinstance(layer, hw.MVAU) else layer.channels
                out.append(mac)
                out += _tail(layer.name, f"{layer.name}_acc", layer.outputs[0], layer.out_shape, channels, acc_type, layer.out_type, layer.pe)
            else:
                out_type = acc_type if layer.out_type == layer.acc_type else layer.out_type
                out.append(dataclasses.replace(layer, acc_type=acc_type, acc_range=acc_range, out_type=out_type))
        elif isinstance(layer, hw.Thresholding) and layer.inputs[0] in fed:
            f32 = hw.StreamType.float32()
            t = layer.thresholds
            full = (1 << _steps_bits(t)) - 1
            if t.shape[1] and t.shape[1] < full:
                t = np.pad(np.asarray(t, dtype=np.int64), ((0, 0), (0, full - t.shape[1])), mode="edge")
            out.append(dataclasses.replace(layer, in_type=f32, threshold_type=hw.StreamType(32, True), thresholds=t))
        elif isinstance(layer, hw.Thresholding) and layer.in_type.is_integer:
            out += _tail(layer.name, layer.inputs[0], layer.outputs[0], layer.in_shape, layer.channels, layer.in_type, layer.out_type, layer.pe)
        else:
            out.append(layer)
    return out


# --------------------------------------------------------------------------
# estimate
# --------------------------------------------------------------------------


def _amount(v) -> Any:
    return "unknown" if v is C.UNKNOWN else int(v)


def _acc_bits(layer: hw.HWLayer) -> Optional[int]:
    """Accumulator width of a layer that has one (MACs, pooling sums)."""
    acc = getattr(layer, "acc_type", None)
    return None if acc is None else acc.bits


def _layer_json(layer: hw.HWLayer, c: C.Cost, host: bool = False) -> dict:
    d: dict[str, Any] = {"op_type": layer.kind if not isinstance(layer, hw.Elementwise) else f"Elementwise{layer.op}"}
    for k, v in c.finn_dict().items():
        d[k] = _amount(v)
    d["cycles"] = 0 if host else int(layer.cycles)
    d["acc_bits"] = _acc_bits(layer)
    d["PE"], d["SIMD"] = int(layer.pe), int(layer.simd)
    d["multiplies"] = [
        {"name": m.name, "w_bits": m.w_bits, "a_bits": m.a_bits, "impl": m.impl, "LUT": m.lut, "DSP": m.dsp, "count": m.count, "reason": m.reason}
        for m in c.multiplies
    ]
    if c.note:
        d["note"] = c.note
    if c.free:
        d["free"] = True
    if host:
        d["host"] = True
    return d


def _totals(layer_docs: dict) -> dict:
    total: dict[str, Any] = {}
    unknown: dict[str, int] = {}
    for k in RESOURCE_KEYS:
        vals = [d[k] for d in layer_docs.values()]
        total[k] = sum(v for v in vals if v != "unknown")
        unknown[k] = sum(1 for v in vals if v == "unknown")
    accs = [d["acc_bits"] for d in layer_docs.values() if d["acc_bits"] is not None and d["op_type"] in ("MVAU", "VVAU")]
    total["acc_bits"] = round(sum(accs) / len(accs), 3) if accs else None
    total["acc_bits_sum"] = sum(accs)
    total["cycles"] = max((d["cycles"] for d in layer_docs.values()), default=0)
    total["unknown_layers"] = unknown
    total["complete"] = not any(unknown.values())
    return total


def _pct(new, old) -> Optional[float]:
    if new is None or old is None or old == 0:
        return None
    return round(100.0 * (new - old) / old, 2)


def plumbing_docs(layers: Sequence[hw.HWLayer], graph_outputs: Sequence[str], mode: str, notes: list) -> dict:
    """Per-stage JSON of what the dataflow adds between the layers, as the
    HLS backend builds it (:func:`sira.hls.dataflow.plan`): a stream copy
    for each tensor read by several layers (``DuplicateStreams``), a width
    converter where a reader folds a stream otherwise than its producer
    (``StreamingDataWidthConverter``), and a FIFO per stream
    (``StreamingFIFO``, its depth and word width). The same plumbing serves
    both flows, so it is added to the SIRA and the baseline columns alike."""
    from .hls.dataflow import plan
    from .hls.kernels import Duplicate, WidthConverter

    try:
        df = plan(list(layers), graph_outputs)
    except SiraError as e:
        notes.append(f"stream plumbing not estimated: {e}")
        return {}
    docs: dict = {}

    def entry(kind: str, c: C.Cost, cycles: int = 0) -> dict:
        d: dict[str, Any] = {"op_type": kind, **{k: _amount(v) for k, v in c.finn_dict().items()}, "cycles": cycles,
                             "acc_bits": None, "PE": 1, "SIMD": 1, "multiplies": [], "plumbing": True}  # fmt: skip
        if c.free:
            d["free"] = True
        return d

    for stage in df.stages:
        node = stage.node
        if isinstance(node, Duplicate):
            docs[stage.id] = entry("DuplicateStreams", C.duplicate_streams(mode=mode), node.elements // node.lanes)
        elif isinstance(node, WidthConverter):
            c = C.dwc(in_width=node.in_lanes * node.type.bits, out_width=node.out_lanes * node.type.bits, mode=mode)
            docs[stage.id] = entry("StreamingDataWidthConverter", c, node.elements // min(node.in_lanes, node.out_lanes))
    for s in df.streams.values():
        docs[f"fifo_{s.id}"] = entry("StreamingFIFO", C.fifo(depth=s.depth, width=s.word_bits, mode=mode))
    return docs


def host_cost(layer: hw.HWLayer, mode: str) -> C.Cost:
    """A float layer before or after the integer dataflow runs on the host
    CPU, as in a FINN partition (see :func:`sira.hw.host_partition`)."""
    return C.Cost(layer.kind, mode, 0, 0, 0, 0, {"host": 0}, note="float, outside the integer dataflow: runs on the host CPU", free=True)


def cost_layers(layers: Sequence[hw.HWLayer], part=DEFAULT_PART, mode: str = "refined") -> tuple[dict, dict[str, C.Cost]]:
    """(per-layer JSON with totals-ready entries, per-layer Cost) in dataflow
    order; the float head and tail of the model are host layers (no FPGA
    resources)."""
    head, _, tail = hw.host_partition(list(layers))
    host = {id(layer) for layer in head + tail}
    docs, costs = {}, {}
    for layer in layers:
        c = host_cost(layer, mode) if id(layer) in host else layer_cost(layer, part, mode)
        costs[layer.name] = c
        docs[layer.name] = _layer_json(layer, c, host=id(layer) in host)
    return docs, costs


def _performance(layers: Sequence[hw.HWLayer], clock_ns: float) -> dict:
    """Bottleneck and throughput of the FPGA part (host layers excluded)."""
    from . import folding as F

    body = hw.host_partition(list(layers))[1]
    if not body:
        return {"max_cycles": 0, "max_cycles_node_name": None, "estimated_throughput_fps": None, "clock_ns": clock_ns}
    name, cycles = F.bottleneck(body)
    fps = F.throughput_fps(body, clock_ns)
    if fps is not None and not math.isfinite(fps):
        fps = None
    return {
        "max_cycles": int(cycles),
        "max_cycles_node_name": name,
        "estimated_throughput_fps": None if fps is None else round(float(fps), 3),
        "clock_ns": clock_ns,
    }


def _fold(layers: list, target_fps, folding, clock_ns: float) -> list:
    if target_fps is not None and folding is not None:
        raise SiraError("give either a target fps or a folding file, not both")
    if target_fps is None and folding is None:
        return list(layers)
    from . import folding as F

    if target_fps is not None:
        if not target_fps or target_fps <= 0:
            raise SiraError(f"target fps must be positive, got {target_fps}")
        return list(F.fold_for_target_fps(layers, target_fps, clock_ns))
    return list(F.apply_folding_file(layers, folding))


def _lint(layers, part, costs=None) -> list:
    from . import lint as L

    issues = L.lint(layers, part, costs=costs)
    L.raise_on_errors(issues)
    return [str(i) for i in issues]


def prepare(model_or_path, input_spec=None, *, samples: int = 100, seed: int = 0, progress=None):
    """(optimized model, report layers list, hw layers, graph input names).

    An already optimized model (metadata ``sira_acc_dtype``) is not
    optimized again; its FINN widths come from analysing it."""
    import sira
    from transforms.to_hw import lower_to_hw
    from transforms.widths import ACC_DTYPE_KEY, mac_width_report

    model = model_or_path
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        import os

        if not os.path.exists(model):
            raise SiraError(f"model file '{model}' not found; give the path to a QONNX .onnx file")
        model = sira.load(model)
    if model.get_metadata_prop(ACC_DTYPE_KEY):
        optimized = model
        lowered_spec = input_spec
        report_layers = mac_width_report(sira.analyze(optimized, lowered_spec))
    else:
        optimized, rep = sira.optimize(model, input_spec, samples=samples, seed=seed, progress=progress)
        report_layers = rep.layers
        lowered_spec = None
    if lowered_spec is None:
        ints = [optimized.get_tensor_datatype(i.name) for i in optimized.graph.input]
        if not all(dt is not None and dt.is_integer() for dt in ints):
            lowered_spec = input_spec
    layers = lower_to_hw(optimized, lowered_spec)
    return optimized, report_layers, layers, {i.name for i in optimized.graph.input}


def estimate(model_or_path, input_spec=None, part: str = DEFAULT_PART, clock_ns: float = 10.0, mode: str = "refined",
             target_fps: Optional[float] = None, folding=None, *, samples: int = 100, seed: int = 0, progress=None) -> dict:
    """Resource and throughput estimate of ``model_or_path`` (a QONNX model,
    optimized first unless it already is), SIRA versus the FINN baseline.

    Folding: PE = SIMD = 1 by default, or ``target_fps`` (at ``clock_ns``),
    or ``folding`` (a FINN-style folding file path or dict). Lint errors raise
    :class:`SiraError`. Returns FINN-vocabulary JSON: ``layers`` (per node
    ``op_type, LUT, DSP, BRAM_18K, URAM, cycles, acc_bits, PE, SIMD,
    multiplies``), ``total``, ``baseline`` (``layers``, ``total``), ``delta``
    (SIRA vs baseline, % of the baseline) and ``performance``. ``progress``
    is called with each step's name (the optimize passes, then
    ``estimate``)."""
    t0 = time.perf_counter()
    C.check_mode(mode)
    p = get_part(part)
    if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
        raise SiraError(f"clock period must be positive, got {clock_ns} ns")
    prepared = prepare(model_or_path, input_spec, samples=samples, seed=seed, progress=progress)
    if progress:
        progress("estimate")
    doc, _, _ = estimate_prepared(prepared, p, clock_ns, mode, target_fps, folding)
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc


def estimate_prepared(prepared, part, clock_ns: float = 10.0, mode: str = "refined", target_fps: Optional[float] = None,
                      folding=None) -> tuple[dict, list, dict]:
    """The estimate of an already prepared model (:func:`prepare`'s result):
    (the estimate document, the folded hardware layers, their costs by layer
    name). The HLS backend builds exactly these layers with these costs."""
    optimized, report_layers, layers, graph_inputs = prepared
    p = part if isinstance(part, C.Part) else get_part(part)
    layers = _fold(layers, target_fps, folding, clock_ns)
    notes = list(getattr(layers, "notes", []))
    docs, costs = cost_layers(layers, p, mode)
    lint_notes = _lint(layers, p, costs if mode == "refined" else None)
    base = baseline_layers(layers, report_layers, graph_inputs)
    base_docs, _ = cost_layers(base, p, mode)
    plumbing = plumbing_docs(layers, [o.name for o in optimized.graph.output], mode, notes)
    docs.update(plumbing)
    base_docs.update(plumbing)
    total, base_total = _totals(docs), _totals(base_docs)
    delta = {k: _pct(total[k], base_total[k]) for k in RESOURCE_KEYS + ("acc_bits",)}
    doc = {
        "part": p.name,
        "clock_ns": clock_ns,
        "mode": mode,
        "layers": docs,
        "total": total,
        "baseline": {"layers": base_docs, "total": base_total, "performance": _performance(base, clock_ns)},
        "delta": delta,
        "performance": _performance(layers, clock_ns),
        "lint": lint_notes,
        "notes": notes,
    }
    return doc, layers, costs


# --------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _pct_cell(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def estimate_table(doc: dict) -> str:
    """People's view: per layer SIRA and baseline resources, totals, deltas."""
    from .report import format_table

    headers = ["layer", "kind", "PE", "SIMD", "LUT", "DSP", "BRAM18", "URAM", "cycles", "acc"]
    right = list(range(2, len(headers)))

    def rows(layers: dict) -> list:
        out = [[n, d["op_type"] + (" (host)" if d.get("host") else ""), str(d["PE"]), str(d["SIMD"]), _cell(d["LUT"]), _cell(d["DSP"]),
                _cell(d["BRAM_18K"]), _cell(d["URAM"]), str(d["cycles"]), _cell(d["acc_bits"])]
               for n, d in layers.items() if not d.get("plumbing")]  # fmt: skip
        kinds: dict[str, list] = {}
        for d in layers.values():
            if d.get("plumbing"):
                kinds.setdefault(d["op_type"], []).append(d)
        for kind, ds in kinds.items():
            sums = [_cell(sum(d[k] for d in ds if d[k] != "unknown")) for k in ("LUT", "DSP", "BRAM_18K", "URAM")]
            out.append([f"({len(ds)} stream stage(s))", kind, "", "", *sums, str(max(d["cycles"] for d in ds)), "-"])
        return out

    def total_row(label: str, t: dict) -> list:
        return [label, "", "", "", str(t["LUT"]), str(t["DSP"]), str(t["BRAM_18K"]), str(t["URAM"]), str(t["cycles"]), _cell(t["acc_bits"])]

    out = [f"estimate on {doc['part']} at {doc['clock_ns']} ns, mode {doc['mode']}", "", "SIRA:"]
    out.append(format_table(headers, rows(doc["layers"]) + [total_row("total", doc["total"])], right))
    out += ["", "baseline (FINN today: FINN accumulator widths, elementwise tails, float input thresholds):"]
    out.append(format_table(headers, rows(doc["baseline"]["layers"]) + [total_row("total", doc["baseline"]["total"])], right))
    out.append("")
    summary = [
        [k, str(doc["baseline"]["total"][k]), str(doc["total"][k]), _pct_cell(doc["delta"][k])]
        for k in ("LUT", "DSP", "BRAM_18K", "URAM")
    ]
    summary.append(["acc bits (mean)", _cell(doc["baseline"]["total"]["acc_bits"]), _cell(doc["total"]["acc_bits"]), _pct_cell(doc["delta"]["acc_bits"])])
    out.append(format_table(["total", "baseline", "SIRA", "delta"], summary, [1, 2, 3]))
    if any(d.get("host") for d in doc["layers"].values()):
        out.append("(host): float steps before or after the integer dataflow run on the host CPU, as in a FINN partition")
    unk = doc["total"]["unknown_layers"]
    if any(unk.values()):
        out.append("unknown (excluded from totals): " + ", ".join(f"{k} in {v} layer(s)" for k, v in unk.items() if v))
    perf = doc["performance"]
    fps = perf["estimated_throughput_fps"]
    out.append(f"bottleneck: {perf['max_cycles_node_name']} at {perf['max_cycles']} cycles -> "
               f"{'-' if fps is None else f'{fps:,.1f}'} inferences/s")  # fmt: skip
    for note in doc.get("notes", []):
        out.append(f"note: {note}")
    for note in doc.get("lint", []):
        out.append(f"lint: {note}")
    return "\n".join(out)


__all__ = ["layer_cost", "multiply_bindings", "baseline_layers", "cost_layers", "estimate", "estimate_table", "prepare"]

"""The FINN baseline of an estimate: the dataflow FINN 1.6.1 builds from the same model.

The baseline (:func:`baseline_layers`)
--------------------------------------
The same dataflow, same folding, built the way FINN's own flow (streamline,
convert to hardware layers, minimize bit widths) builds it. Checked layer by
layer against FINN's estimate-only flow on the QONNX zoo
(``../shared/peers/finn_results``). What it models:

* **MVAU / VVAU**: FINN's streamlining absorbs a MAC's ReLU / BatchNorm /
  requantization tail into thresholds inside the MAC, as sira does; the
  baseline keeps them with FINN's widths: the accumulator (and the
  thresholds, stored at its width) from FINN's weight-aware minimization
  with inputs anywhere in their *datatype* (``finn_range`` of the width
  report), and the weights as FINN stores them (``finn_weight_dtype``: +-1
  weights are ``INT2`` unless the input is bipolar too, when FINN computes
  XNOR-popcount on one-bit operands).
* **Input quantizer**: where the model's float input is quantized (by a
  threshold layer sira feeds with the raw integers, or by a float chain
  sira leaves on the host CPU), FINN builds a ``Thresholding_rtl`` inside
  the accelerator, comparing 32-bit floats (:class:`FinnThresholding`). A
  float chain after a float MAC (a first layer reading the unquantized
  input) is the same: FINN leaves the MAC on the host and thresholds its
  float output in hardware.
* **Standalone thresholds** on integer streams are ``Thresholding_rtl``
  too, thresholds as wide as FINN's threshold datatype (the input's).
* **Float tail**: FINN's dataflow keeps the output scale and bias as float
  elementwise layers (``ElementwiseMul/Add``) inside the accelerator; sira
  runs them on the host. The baseline builds them (``host`` names only what
  FINN leaves outside its dataflow partition).
* Everything else (sliding windows, padding, pooling, residual adds,
  reshapes) is identical to SIRA's layer.

A layer the baseline adds folds as slowly as the dataflow's bottleneck
allows (the smallest PE that keeps its cycles within the slowest layer's),
which is what FINN's folding search does for the same throughput target.
FIFOs and width converters are costed alike in both flows (see
:func:`sira.estimate.plumbing_docs`); FINN's estimate report, written before
FIFO insertion, has neither.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np

from . import cost as C
from . import hw
from . import memory as M
from .devices import Part
from .layer_costs import costs

#: bits of the float FINN's input thresholds compare (FLOAT32)
FLOAT_BITS = 32


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class FinnThresholding(hw.Thresholding):
    """FINN's ``Thresholding_rtl``: ``steps`` thresholds per channel, each
    ``threshold_type`` wide, compared by a binary search with one memory per
    output bit. Only costed, never built: it carries what FINN's layer has
    (NumChannels, numSteps, the threshold datatype, PE) and no values."""

    kind: ClassVar[str] = "Thresholding_rtl"

    steps: int
    thresholds: Optional[np.ndarray] = None


@costs("Thresholding_rtl")
def _finn_thresholding_cost(layer: FinnThresholding, part: Part, mode: str) -> C.Cost:
    """FINN's RTL estimate (finn mode) or the refined binary-search unit;
    every channel stores its thresholds (FINN expands a shared row)."""
    cost = C.thresholding(
        channels=layer.channels, pe=layer.pe, a_bits=layer.in_type.bits, out_bits=M.threshold_levels(layer.steps),
        thr_bits=layer.threshold_type.bits, n_thresholds=layer.steps, mode=mode, part=part, impl="rtl",
    )  # fmt: skip
    if not layer.in_type.is_integer:
        cost = dataclasses.replace(cost, note="; ".join(n for n in (cost.note, "float comparators costed as 32-bit integer ones") if n))
    return dataclasses.replace(cost, kind="Thresholding_rtl")


class BaselineLayers(list):
    """The baseline's layers in dataflow order, plus ``host``: the names of
    the layers FINN leaves outside its dataflow partition."""

    host: frozenset = frozenset()


@dataclasses.dataclass(frozen=True)
class _Context:
    """What a baseline function reads besides its layer: the width report's
    MAC entries by layer name, the streams that carry a graph input
    unchanged and the cycles of the dataflow's slowest layer."""

    entries: dict
    input_fed: set
    bottleneck: int

    def entry(self, layer: hw.HWLayer) -> Optional[dict]:
        return self.entries.get(layer.name)


BaselineFn = Callable[[Any, _Context], list[hw.HWLayer]]
BASELINES: dict[str, BaselineFn] = {}


def baseline(*kinds: str):
    """Register how FINN builds the hardware layer ``kinds`` (a function of
    the sira layer and the context, giving the FINN layers); a kind that
    registered none is built as sira builds it."""

    def register(fn: BaselineFn) -> BaselineFn:
        for kind in kinds:
            BASELINES[kind] = fn
        return fn

    return register


def _input_fed(layers: Sequence[hw.HWLayer], graph_inputs: Optional[set]) -> set:
    """Names of streams that carry a graph input unchanged (through Reshapes)."""
    produced = {o for layer in layers for o in layer.outputs}
    streams = set(graph_inputs) if graph_inputs is not None else {i for layer in layers for i in layer.inputs if i not in produced}
    for layer in layers:
        if isinstance(layer, hw.Reshape) and layer.inputs[0] in streams:
            streams.update(layer.outputs)
    return streams


def _slowest_pe(channels: int, pixels: int, bottleneck: int) -> int:
    """The smallest PE dividing ``channels`` whose cycles (pixels times
    channel folds) stay within ``bottleneck``."""
    for pe in range(1, channels + 1):
        if channels % pe == 0 and pixels * (channels // pe) <= bottleneck:
            return pe
    return channels


def _quantizer_steps(layer: hw.HWLayer) -> int:
    """Thresholds FINN needs for the levels a float quantizer produces: its
    clip range when it is a RoundClip, else its output type's range."""
    if isinstance(layer, hw.Elementwise) and layer.op == "RoundClip" and layer.clip_lo is not None:
        return int(layer.clip_hi) - int(layer.clip_lo)
    return 1 if layer.out_type.kind == "bipolar" else int(layer.out_type.max - layer.out_type.min)


def _head(head: list[hw.HWLayer], ctx: _Context) -> tuple[list[hw.HWLayer], set]:
    """FINN's build of sira's host head (the float layers before the integer
    dataflow): the float MACs and what precedes them stay on the host; the
    float chain after the last of them, which ends in the quantizer of the
    dataflow's input, becomes one float ``Thresholding_rtl``."""
    macs = [i for i, layer in enumerate(head) if isinstance(layer, hw.DotProductUnit)]
    keep = head[: macs[-1] + 1] if macs else []
    chain = head[len(keep):]
    if not chain or not chain[-1].out_type.is_integer:
        return list(head), {layer.name for layer in head}
    first, last = chain[0], chain[-1]
    channels = int(last.out_shape[-1])
    pixels = int(np.prod(last.out_shape[:-1]))
    thr = FinnThresholding(
        name=last.name, inputs=first.inputs, outputs=last.outputs, in_shape=first.in_shape, out_shape=last.out_shape,
        in_type=hw.StreamType.float32(), out_type=last.out_type, channels=channels, steps=_quantizer_steps(last),
        threshold_type=hw.StreamType(FLOAT_BITS, True), pe=_slowest_pe(channels, pixels, ctx.bottleneck),
    )  # fmt: skip
    return keep + [thr], {layer.name for layer in keep}


def baseline_layers(sira_layers: Sequence[hw.HWLayer], optimize_report, graph_inputs: Optional[set] = None) -> BaselineLayers:
    """The dataflow FINN 1.6.1 builds from the same model (see the module
    docstring for exactly what is modelled): FINN's widths per MAC from
    ``optimize_report`` (an OptimizeReport or its ``layers`` list, the width
    report of the optimized model), FINN's thresholding of the float input,
    the float tail inside the accelerator. Folding is copied from
    ``sira_layers``; ``host`` of the result names what FINN leaves on the host."""
    entries = getattr(optimize_report, "layers", optimize_report) or []
    head, body, tail = hw.host_partition(list(sira_layers))
    bottleneck = max((layer.cycles for layer in body), default=1)
    ctx = _Context({e["layer"]: e for e in entries}, _input_fed(sira_layers, graph_inputs), bottleneck)
    out, host = _head(head, ctx)
    for layer in body + tail:
        fn = BASELINES.get(layer.kind)
        out += fn(layer, ctx) if fn else [layer]
    result = BaselineLayers(out)
    result.host = frozenset(host | {layer.name for layer in tail if isinstance(layer, hw.HostOp)})
    return result


@baseline("MVAU", "VVAU")
def _mac(layer, ctx: _Context) -> list[hw.HWLayer]:
    """FINN's operand and accumulator widths; the thresholds stay embedded,
    stored at the accumulator's width."""
    e = ctx.entry(layer)
    if e is None or not layer.in_type.is_integer:
        return [layer]
    acc_range = tuple(int(v) for v in e["finn_range"])
    acc_type = hw.StreamType.for_range(*acc_range)
    # FINN sums the SIMD products at its accumulator's width: no proven adder tree
    changes: dict[str, Any] = dict(acc_type=acc_type, acc_range=acc_range, weight_type=hw.StreamType.named(e["finn_weight_dtype"]),
                                   input_bounds=None)
    if e["finn_input_dtype"] == "BINARY":  # XNOR: the bipolar input is one bit {0, 1}
        changes["in_type"] = hw.StreamType.named("BINARY")
    if layer.has_thresholds:
        changes["threshold_type"] = acc_type
        changes["thresholds"] = np.clip(layer.thresholds.astype(object), acc_type.min, acc_type.max)
    elif layer.out_type == layer.acc_type:
        changes["out_type"] = acc_type
    return [dataclasses.replace(layer, **changes)]


@baseline("Thresholding")
def _thresholding(layer: hw.Thresholding, ctx: _Context) -> list[hw.HWLayer]:
    """A ``Thresholding_rtl``: on the graph input it compares the float
    input FINN keeps (the scale of the input, e.g. 1/255, lives in its
    thresholds); elsewhere the integer stream, thresholds as wide as it."""
    on_input = layer.inputs[0] in ctx.input_fed
    in_type = hw.StreamType.float32() if on_input else layer.in_type
    ttype = hw.StreamType(FLOAT_BITS, True) if on_input else layer.in_type
    return [FinnThresholding(
        name=layer.name, inputs=layer.inputs, outputs=layer.outputs, in_shape=layer.in_shape, out_shape=layer.out_shape,
        in_type=in_type, out_type=layer.out_type, channels=layer.channels, steps=int(layer.thresholds.shape[1]),
        threshold_type=ttype, pe=layer.pe,
    )]  # fmt: skip


__all__ = ["baseline_layers", "baseline", "BASELINES", "BaselineLayers", "FinnThresholding", "FLOAT_BITS"]

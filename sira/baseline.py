"""The FINN baseline of an estimate: the dataflow as a FINN user gets it today.

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
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np

from sira.transforms.lower import gemm_matmul_name

from . import hw
from . import memory as M


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


@dataclasses.dataclass(frozen=True)
class _Report:
    """What the baseline reads of the optimize report: the MAC entries by
    layer name (a Gemm also under its MatMul's name) and by output, and the
    streams that carry a graph input unchanged."""

    by_name: dict
    by_output: dict
    input_fed: set

    def entry(self, layer: hw.HWLayer) -> Optional[dict]:
        return self.by_name.get(layer.name) or next((self.by_output[o] for o in layer.outputs if o in self.by_output), None)


BaselineFn = Callable[[Any, _Report], list[hw.HWLayer]]
BASELINES: dict[str, BaselineFn] = {}


def baseline(*kinds: str):
    """Register how FINN builds the hardware layer ``kinds`` (a function of
    the sira layer and the report, giving the FINN layers); a kind that
    registered none is built as sira builds it."""

    def register(fn: BaselineFn) -> BaselineFn:
        for kind in kinds:
            BASELINES[kind] = fn
        return fn

    return register


def baseline_layers(sira_layers: Sequence[hw.HWLayer], optimize_report, graph_inputs: Optional[set] = None) -> list[hw.HWLayer]:
    """The same dataflow as a FINN user gets it today (see the module
    docstring for exactly what is modelled): FINN accumulator widths
    (``finn_width`` per MAC from ``optimize_report``, an OptimizeReport or
    its ``layers`` list), elementwise tails instead of sira's thresholds,
    float input thresholds. Folding is copied from ``sira_layers``."""
    entries = getattr(optimize_report, "layers", optimize_report) or []
    by_name = {e["layer"]: e for e in entries}
    by_name.update({gemm_matmul_name(e["layer"]): e for e in entries if e.get("op") == "Gemm"})
    report = _Report(by_name, {e.get("output"): e for e in entries}, _input_fed(sira_layers, graph_inputs))
    out: list[hw.HWLayer] = []
    for layer in sira_layers:
        fn = BASELINES.get(layer.kind)
        out += fn(layer, report) if fn else [layer]
    return out


@baseline("MVAU", "VVAU")
def _mac(layer, report: _Report) -> list[hw.HWLayer]:
    """FINN's accumulator width; embedded thresholds become an elementwise tail."""
    e = report.entry(layer)
    acc_type, acc_range = layer.acc_type, layer.acc_range
    if e is not None and e.get("finn_range") is not None:
        acc_range = tuple(int(v) for v in e["finn_range"])
        acc_type = hw.StreamType.for_range(*acc_range)
        # never narrower than sira's (the report's width is a hull over inputs in their datatype)
        if acc_type.bits < layer.acc_type.bits:
            acc_type, acc_range = layer.acc_type, layer.acc_range
    if not layer.has_thresholds:
        out_type = acc_type if layer.out_type == layer.acc_type else layer.out_type
        return [dataclasses.replace(layer, acc_type=acc_type, acc_range=acc_range, out_type=out_type)]
    mac = dataclasses.replace(
        layer, acc_type=acc_type, acc_range=acc_range, thresholds=None, threshold_type=None,
        activation_bias=0, activation_scale=1, out_type=acc_type, outputs=(f"{layer.name}_acc",),
    )  # fmt: skip
    channels = layer.out_shape[-1]  # MH of an MVAU, the channels of a VVAU (streams are channels-last)
    return [mac] + _tail(layer.name, f"{layer.name}_acc", layer.outputs[0], layer.out_shape, channels, acc_type, layer.out_type, layer.pe)


@baseline("Thresholding")
def _thresholding(layer: hw.Thresholding, report: _Report) -> list[hw.HWLayer]:
    """Float thresholds on the graph input (all 2^B - 1 of them), an
    elementwise tail elsewhere on an integer stream."""
    if layer.inputs[0] in report.input_fed:
        t = layer.thresholds
        full = (1 << M.threshold_levels(t.shape[1])) - 1
        if t.shape[1] and t.shape[1] < full:
            t = np.pad(np.asarray(t, dtype=np.int64), ((0, 0), (0, full - t.shape[1])), mode="edge")
        return [dataclasses.replace(layer, in_type=hw.StreamType.float32(), threshold_type=hw.StreamType(32, True), thresholds=t)]
    if layer.in_type.is_integer:
        return _tail(layer.name, layer.inputs[0], layer.outputs[0], layer.in_shape, layer.channels, layer.in_type, layer.out_type, layer.pe)
    return [layer]


__all__ = ["baseline_layers", "baseline", "BASELINES"]

"""Test vectors of a generated project, taken from the model itself.

Inputs are drawn inside the input spec (corner inputs and random ones, as
:func:`sira.verify` does) and the **original** QONNX model is evaluated on
them in its reference semantics (:mod:`sira.reference`: exact quantizer
decisions, float64 elsewhere). The dataflow's integer inputs and
expected outputs are the original model's own tensors mapped to the integer
domain:

* an input port that is a model input: its values as they are when the
  optimized model reads them unchanged (a BIPOLAR or integer input), or
  ``q = (x - bias) / scale`` with the input's grid when optimization made
  the model read the raw integers (uint8 pixels / 255 -> the pixel values);
* an input port fed by the host head (a float input quantizer): the
  original quantizer's output, ``q = (y - bias) / scale`` with its grid;
* an output port: the original model's output (or the input of its final
  host op, e.g. Softmax) mapped back through the dataflow's output scale and
  bias (the host tail), which must land on integers.

The integer reference (:meth:`Dataflow.reference`) must reproduce every
expected output; a difference is a bug in sira's lowering and is reported as
such. The C simulation is then checked against these expected values.
"""

from __future__ import annotations

import dataclasses
import numpy as np

from .. import hw
from ..analysis import analyze
from ..errors import SiraError
from ..reference import Reference
from ..verification import corner_inputs, random_input
from .dataflow import Dataflow

#: how far (in integer steps) a mapped value may lie from an integer
TOLERANCE = 1e-3
#: samples whose every tensor is kept for the stage-by-stage testbench
LAYER_FRAMES = 16


@dataclasses.dataclass
class Vectors:
    labels: list[str]
    inputs: list[list[np.ndarray]]  # per input port, per sample: flat integers
    outputs: list[list[np.ndarray]]  # per output port, per sample
    frames: list[dict[str, np.ndarray]]  # every dataflow tensor of the first samples (integer reference)


def _channels_last(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return np.moveaxis(a, 1, -1) if a.ndim > 2 else a


def _to_int(values: np.ndarray, r, what: str, label: str) -> np.ndarray:
    if r is None or not r.is_scaled_int:
        v = np.asarray(values, dtype=np.float64)
    else:
        v = (np.asarray(values, dtype=np.float64) - np.broadcast_to(r.bias, np.shape(values))) / np.broadcast_to(r.scale, np.shape(values))
    q = np.rint(v)
    off = np.abs(v - q)
    if not np.all(np.isfinite(v)) or np.any(off > TOLERANCE):
        i = int(np.argmax(np.where(np.isfinite(off), off, np.inf)))
        raise SiraError(f"{what} is not on its integer grid for input '{label}' (value {float(np.ravel(v)[i])!r} in grid units)")
    return q.astype(np.int64)


def _tail_chain(df: Dataflow, tensor: str, graph_outputs: set, node_names: dict) -> tuple[list, str]:
    """The host-tail layers from dataflow output ``tensor`` to the model
    tensor to compare with, and that tensor's name in the original model."""
    readers: dict[str, list] = {}
    for layer in df.tail:
        for t in layer.inputs:
            readers.setdefault(t, []).append(layer)
    chain: list = []
    current = tensor
    while True:
        nxt = readers.get(current, [])
        hosts = [layer for layer in nxt if isinstance(layer, hw.HostOp)]
        if hosts:
            node = node_names.get(hosts[0].name)
            if node is None or node.op_type != hosts[0].op:
                raise SiraError(f"host op '{hosts[0].name}' ({hosts[0].op}) has no counterpart in the original model to take expected values from")
            return chain, node.input[0]
        if current in graph_outputs or not nxt:
            return chain, current
        layer = nxt[0]
        if not (isinstance(layer, hw.Elementwise) and layer.param is not None and layer.op in ("Add", "Sub", "Mul", "Div")):
            raise SiraError(
                f"output '{tensor}' of the dataflow reaches the model's output through '{layer.name}' ({layer.kind} {getattr(layer, 'op', '')}), "
                "which cannot be undone to recover integers; only a constant scale and bias may follow the dataflow"
            )
        chain.append(layer)
        current = layer.outputs[0]


def _undo(chain: list, y: np.ndarray) -> np.ndarray:
    v = np.asarray(y, dtype=np.float64)
    for layer in reversed(chain):
        p = np.asarray(layer.param, dtype=np.float64)
        if layer.op == "Add":
            v = v - p
        elif layer.op == "Sub":
            v = v + p
        elif layer.op == "Mul":
            v = v / p
        else:
            v = v * p
    return v


def make_vectors(original, input_spec, df: Dataflow, samples: int = 100, seed: int = 0, regridded: frozenset = frozenset(),
                 report=None) -> Vectors:
    """Inputs and expected outputs of the dataflow from executing the
    original model (see the module docstring). ``regridded`` names the
    model inputs that the optimized model reads as raw grid integers;
    ``report`` may pass the original model's analysis."""
    report = report if report is not None else analyze(original, input_spec)
    model = report.model
    rng = np.random.default_rng(seed)
    feeds = corner_inputs(report, rng)
    for k in range(samples):
        feeds.append((f"random-{k}", {n: random_input(r, n, rng) for n, r in report.input_ranges.items()}))
    node_names = {n.name: n for n in model.graph.node if n.name}
    graph_inputs = {i.name for i in model.graph.input}
    graph_outputs = {o.name for o in model.graph.output}
    sources = []
    for p in df.inputs:
        if p.tensor in graph_inputs:
            sources.append((p.tensor, report.input_ranges.get(p.tensor) if p.tensor in regridded else None))
            continue
        head = next((layer for layer in df.head if p.tensor in layer.outputs), None)
        node = node_names.get(head.name) if head is not None else None
        if node is None or node.op_type != "Quant":
            what = f"host layer '{head.name}' ({head.kind})" if head is not None else "no layer"
            raise SiraError(
                f"the dataflow input '{p.tensor}' comes from {what}; test values can be taken from a model input or from "
                "the output of the quantizer that starts the dataflow"
            )
        sources.append((node.output[0], report.ranges.get(node.output[0])))
    targets = [_tail_chain(df, p.tensor, graph_outputs, node_names) for p in df.outputs]

    run = Reference(report)
    labels: list[str] = []
    ins: list[list[np.ndarray]] = [[] for _ in df.inputs]
    outs: list[list[np.ndarray]] = [[] for _ in df.outputs]
    frames: list[dict[str, np.ndarray]] = []
    runs = run.run_many([{n: np.asarray(v, dtype=np.float64) for n, v in feed.items()} for _label, feed in feeds])
    for (label, feed), ctx in zip(feeds, runs):
        values = {}
        for k, (p, (src, r)) in enumerate(zip(df.inputs, sources)):
            q = _to_int(_channels_last(ctx[src]), r, f"dataflow input '{p.tensor}' (model tensor '{src}')", label)
            values[p.tensor] = q
            ins[k].append(q.reshape(-1))
        env = df.reference(values)
        for k, (p, (chain, src)) in enumerate(zip(df.outputs, targets)):
            expected = _to_int(_undo(chain, _channels_last(ctx[src])), None, f"model output '{src}' mapped through the output scale", label)
            got = np.asarray(env[p.tensor]).reshape(-1)
            if expected.size != got.size or np.any(expected.reshape(-1) != got.astype(np.int64)):
                i = int(np.argmax(expected.reshape(-1) != got.astype(np.int64))) if expected.size == got.size else 0
                raise SiraError(
                    f"sira's integer reference of the dataflow differs from the model at output '{src}' for input '{label}' "
                    f"(element {i}: {int(got[i])} vs {int(expected.reshape(-1)[i])}); this is a bug in sira's hardware lowering, please report it"
                )
            outs[k].append(expected.reshape(-1))
        if len(frames) < LAYER_FRAMES:
            frames.append(env)
        labels.append(label)
    return Vectors(labels, ins, outs, frames)


def write_lines(path: str, rows: list[np.ndarray]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(" ".join(str(int(v)) for v in np.ravel(row)) + "\n")


__all__ = ["Vectors", "make_vectors", "write_lines", "TOLERANCE", "LAYER_FRAMES"]

"""The dataflow a generated project implements: which hardware layers run on
the FPGA, how their streams are wired, and the integer reference of it all.

:func:`plan` splits the hardware layers (:mod:`sira.hw`, in dataflow order)
into three parts, as a FINN user cuts a model into partitions:

* the **host head**: layers before the first integer stream (a float input
  quantizer, or a first layer that reads the unquantized float input);
* the **dataflow**: every layer from integer streams to integer streams;
  this is the generated C++;
* the **host tail**: the float output scale and bias and host ops
  (Softmax, ArgMax, TopK) after the last integer stream.

A float layer between integer layers has no integer hardware and is refused
with the layer's name. In the dataflow, free reshapes become aliases of their
input stream; a stream read by several stages gets a :class:`Duplicate`
stage (a C++ stream has one reader), and a reader that folds a stream into
other words than its producer gets a :class:`WidthConverter`. Streams are
FIFOs of depth 2, deeper where branches of a fan-out meet again
(:mod:`.fifos`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from .. import hw
from .. import lint as L
from ..errors import SiraError
from . import fifos
from .kernels import Duplicate, Kernel, WidthConverter, exact, kernel_for, port
from .names import Namer


@dataclasses.dataclass
class Stream:
    """One C++ stream: ``id`` (a safe identifier), the model tensor whose
    values it carries, element type, lanes per word, elements per frame."""

    id: str
    tensor: str
    type: hw.StreamType
    lanes: int
    elements: int
    depth: int = 2

    @property
    def word_bits(self) -> int:
        return self.lanes * self.type.bits

    @property
    def words(self) -> int:
        return self.elements // self.lanes

    def port(self) -> dict:
        return dict(port(self.type, self.lanes), id=self.id, elements=self.elements, words=self.words)


@dataclasses.dataclass
class Stage:
    """One C++ function call of the top: a hardware layer or a plumbing
    stage, its kernel, and its stream ids in argument order."""

    id: str
    node: object
    kernel: Kernel
    inputs: list[str]
    outputs: list[str]


@dataclasses.dataclass
class Port:
    """A port of the top function: ``id`` (``in_0``, ``out_0``, ...), the
    tensor it carries and its shape (channels-last, batch first)."""

    id: str
    tensor: str
    shape: tuple[int, ...]
    stream: Stream


@dataclasses.dataclass
class Dataflow:
    stages: list[Stage]
    streams: dict[str, Stream]
    inputs: list[Port]
    outputs: list[Port]
    head: list[hw.HWLayer]
    tail: list[hw.HWLayer]
    layers: list[hw.HWLayer]
    #: the ``AP_INT_MAX_W`` every translation unit of the project defines (:func:`ap_int_max_w`)
    ap_int_max_w: int = L.AP_INT_DEFAULT_W

    def reference(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every tensor of the dataflow for one frame: ``inputs`` maps each
        input port's tensor to its integer values (channels-last), the
        result maps every tensor to its values, by the kernels' integer
        references."""
        env: dict[str, np.ndarray] = {}
        for p in self.inputs:
            if p.tensor not in inputs:
                raise SiraError(f"no values for dataflow input '{p.tensor}'")
            env[p.tensor] = exact(np.asarray(inputs[p.tensor]).reshape(p.shape))
        for layer in self.layers:
            args = [env[t] for t in layer.inputs]
            if len(args) == 1 and args[0].shape != tuple(layer.in_shape) and args[0].size == math.prod(layer.in_shape):
                args = [args[0].reshape(layer.in_shape)]  # the same stream seen with another shape (a 1-D conv's 1-row image)
            outs = kernel_for(layer).reference(layer, args)
            for name, value in zip(layer.outputs, outs):
                env[name] = value
        return env


# --------------------------------------------------------------------------
# per-layer stream facts
# --------------------------------------------------------------------------


def _elements(shape) -> int:
    return int(math.prod(shape[1:])) if len(shape) > 1 else int(math.prod(shape))


def _split(layers: Sequence[hw.HWLayer]) -> tuple[list, list, list]:
    head, body, tail = hw.host_partition(list(layers))
    for layer in body:
        if hw.is_float_layer(layer):
            raise SiraError(
                f"layer '{layer.name}' ({layer.kind}) computes in float between integer layers: it has no integer "
                "hardware; quantize its input and output (Quant nodes) or check that sira.optimize turned its scale into thresholds"
            )
    if not body:
        raise SiraError("the model has no integer layers to build: every layer computes in float; quantize its activations")
    return head, body, tail


def plan(layers: Sequence[hw.HWLayer], graph_outputs: Sequence[str] = (), namer: Optional[Namer] = None) -> Dataflow:
    """The dataflow of ``layers`` (see the module docstring);
    ``graph_outputs`` names the model's output tensors, ``namer`` makes
    the C++ identifiers."""
    namer = namer or Namer()
    head, body, tail = _split(layers)
    aliases: dict[str, str] = {}

    def canon(t: str) -> str:
        while t in aliases:
            t = aliases[t]
        return t

    compute = []
    for layer in body:
        if isinstance(layer, hw.Reshape):
            aliases[layer.outputs[0]] = canon(layer.inputs[0])
        else:
            compute.append(layer)
    if not compute:
        raise SiraError("the integer part of the model only reshapes its input; there is no hardware to build")

    # producers and readers of each canonical tensor
    made: dict[str, tuple[hw.HWLayer, int]] = {}
    for layer in compute:
        for j, t in enumerate(layer.outputs):
            made[t] = (layer, j)
    readers: dict[str, list] = {}
    inputs: list[str] = []
    in_info: dict[str, tuple[hw.StreamType, tuple[int, ...]]] = {}
    for layer in compute:
        types, shapes = layer.input_types, layer.input_shapes
        lanes_in = kernel_for(layer).lanes(layer)[0]
        for j, t in enumerate(layer.inputs):
            c = canon(t)
            readers.setdefault(c, []).append(("stage", layer, j, lanes_in[j]))
            if c not in made and c not in in_info:
                inputs.append(c)
                in_info[c] = (types[j], shapes[j])
    host_reads = {t for layer in tail for t in layer.inputs}
    out_tensors: list[str] = []
    for layer in body:
        for t in layer.outputs:
            if (t in host_reads or t in graph_outputs) and t not in out_tensors:
                out_tensors.append(t)
    if not out_tensors:
        last = compute[-1]
        out_tensors = list(last.outputs)
    for k, t in enumerate(out_tensors):
        readers.setdefault(canon(t), []).append(("port", t, k, None))

    streams: dict[str, Stream] = {}
    port_ids = {c: f"in_{k}" for k, c in enumerate(inputs)}
    source_ids: dict[str, str] = {}  # canonical tensor -> the stream its producer writes
    wired: dict[tuple, str] = {}  # (tensor, reader layer, input slot) or ("port", k) -> stream id
    plumbing: list[Stage] = []

    def new_stream(sid: str, tensor: str, t: hw.StreamType, lanes: int, elements: int) -> str:
        streams[sid] = Stream(sid, tensor, t, lanes, elements)
        return sid

    def reader_stream(c: str, r) -> str:
        return f"out_{r[2]}" if r[0] == "port" else namer(f"{c}_{r[1].name}_{r[2]}", "s_")

    in_ports: list[Port] = []
    for c, rs in readers.items():
        if c in made:
            layer, j = made[c]
            t, shape = layer.out_type, layer.output_shapes[j]
            lanes = kernel_for(layer).lanes(layer)[1][j]
        else:
            (t, shape), lanes = in_info[c], rs[0][3]
        elements = _elements(shape)
        if c in port_ids:
            src = new_stream(port_ids[c], c, t, lanes, elements)
            in_ports.append(Port(src, c, shape, streams[src]))
        elif len(rs) == 1:
            src = new_stream(reader_stream(c, rs[0]), c, t, lanes, elements)
        else:
            src = new_stream(namer(c, "s_"), c, t, lanes, elements)
        source_ids[c] = src
        branches = [src]
        if len(rs) > 1:
            # a C++ stream has one reader: copy it (fifos.size deepens the copies where the branches meet again)
            branches = [new_stream(reader_stream(c, r), c, t, lanes, elements) for r in rs]
            dup = Duplicate(namer(f"{c}_fanout", "dup_"), (src,), tuple(branches), t, lanes, elements)
            plumbing.append(Stage(dup.name, dup, kernel_for(dup), [src], branches))
        for r, sid in zip(rs, branches):
            want = r[3] if r[0] == "stage" else lanes
            if want != lanes:
                folded = new_stream(namer(f"{c}_{r[1].name}_{r[2]}_x{want}", "s_"), c, t, want, elements)
                dwc = WidthConverter(namer(f"{c}_to_{want}", "dwc_"), (sid,), (folded,), t, lanes, want, elements)
                plumbing.append(Stage(dwc.name, dwc, kernel_for(dwc), [sid], [folded]))
                sid = folded
            wired[(c, id(r[1]), r[2]) if r[0] == "stage" else ("port", r[2])] = sid

    out_ports = [Port(wired[("port", k)], t, _shape_of(t, body), streams[wired[("port", k)]]) for k, t in enumerate(out_tensors)]
    stages = [
        Stage(namer(layer.name, "l_"), layer, kernel_for(layer), [wired[(canon(t), id(layer), j)] for j, t in enumerate(layer.inputs)],
              [source_ids[t] for t in layer.outputs])
        for layer in compute
    ]  # fmt: skip
    for st in stages:
        for o in st.node.outputs:
            if o not in readers:
                raise SiraError(f"layer '{st.node.name}' ({st.node.kind}): its output '{o}' is read by nothing; remove the dead layer")
    ordered = _order(stages + plumbing, [p.stream.id for p in in_ports])
    fifos.size(ordered, streams)
    return Dataflow(ordered, streams, in_ports, out_ports, head, tail, list(body), ap_int_max_w(ordered, streams))


def _shape_of(t: str, body) -> tuple[int, ...]:
    for layer in body:
        for j, o in enumerate(layer.outputs):
            if o == t:
                return layer.output_shapes[j]
    raise SiraError(f"no shape for tensor '{t}'")


def _words(stage: Stage, streams: dict[str, Stream]) -> list[tuple[int, str, str]]:
    """``(bits, what, fix)`` of every ap_int ``stage`` declares: its stream
    words, a layer's packed words (:func:`sira.lint.packed_widths`) and a
    width converter's gathering buffer."""
    out = [(streams[sid].word_bits, f"stream word '{sid}'", "fewer PE/SIMD") for sid in stage.inputs + stage.outputs]
    node = stage.node
    if isinstance(node, hw.HWLayer):
        out += [(bits, what, fix) for what, bits, fix in L.packed_widths(node)]
    if isinstance(node, WidthConverter):
        out.append((node.group * node.type.bits, f"width converter buffer of tensor '{node.inputs[0]}' ({node.group} elements, the least common multiple "
                    f"of {node.in_lanes} and {node.out_lanes} lanes)", "fold the producer and the reader of the stream so that one's lanes divide the other's"))
    return out


def ap_int_max_w(stages: Sequence[Stage], streams: dict[str, Stream]) -> int:
    """The ``AP_INT_MAX_W`` of a project: its widest ap_int rounded up
    (:func:`sira.lint.ap_int_max_w_of`). ap_int refuses anything wider
    than 1024 bits unless it is defined, in C simulation as in Vitis. A
    word above the 4096 bits Vitis supports is refused here with the stage
    and the fix; the lint catches most of them per layer before planning,
    this also covers the words the dataflow adds."""
    widest, where = 0, None
    for stage in stages:
        for bits, what, fix in _words(stage, streams):
            if bits > widest:
                widest, where = bits, (stage, what, fix)
    if widest > L.AP_INT_MAX_W_LIMIT:
        stage, what, fix = where
        name = stage.node.name if isinstance(stage.node, hw.HWLayer) else stage.id  # plumbing: as the estimate lists it
        L.raise_on_errors([L.width_error(name, what, widest, fix)])
    return L.ap_int_max_w_of(widest)


def _order(stages: list[Stage], sources: list[str]) -> list[Stage]:
    """Stages in an order where every stage comes after the producers of
    its inputs (the order of the calls in the top function)."""
    ready = set(sources)
    left = list(stages)
    out: list[Stage] = []
    while left:
        for i, st in enumerate(left):
            if all(s in ready for s in st.inputs):
                out.append(st)
                ready.update(st.outputs)
                del left[i]
                break
        else:
            names = ", ".join(st.id for st in left)
            raise SiraError(f"the dataflow has a cycle or an unconnected stream around: {names}")
    return out


__all__ = ["Dataflow", "Stage", "Stream", "Port", "plan", "ap_int_max_w"]

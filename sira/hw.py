"""Hardware layer specs: the single input of the cost model and the HLS backend.

One frozen dataclass per hardware stage (FINN's vocabulary, see
``docs/research/fpga_cost_and_hls.md`` §1), built from an optimized model by
:func:`sira.transforms.to_hw.lower_to_hw`. This module never touches a graph: a
spec is plain data (shapes, folding, stream types, exact integer parameter
arrays, memory style) and validates itself on construction.

Conventions shared by every layer:

* **Streams are channels-last.** ``in_shape``/``out_shape`` are the shapes
  of the streamed tensors with the channel axis last: ``(N, H, W, C)`` for
  images, ``(N, C)`` for vectors. ``inputs``/``outputs`` name the streams
  (the optimized model's tensor names) for wiring; ``inputs[0]`` is the one
  ``in_shape``/``in_type`` describe.
* **Stream types are the values that flow** (:class:`StreamType`): the
  narrowest integer type holding the proven value range of the tensor, or
  ``BIPOLAR`` (+-1 carried as one bit), or ``FLOAT32`` for a float tail.
* **Integer arrays are exact**: ``int64``, or ``object`` arrays of Python
  ints when values do not fit; stored read-only.
* **Folding**: ``pe`` (output parallelism) and ``simd`` (input parallelism)
  default to 1; each kind states which dimension each one must divide (FINN's
  rules) and construction raises :class:`~sira.errors.SiraError` naming the
  layer and the legal values otherwise. ``with_folding`` returns a re-folded,
  re-validated copy.
* ``mem_style`` is one of ``auto``/``lut``/``block``/``ultra`` (where the
  layer's main memory - weights, thresholds, line buffer - goes).
* ``cycles`` is the initiation interval in clock cycles for one input
  (FINN's expected-cycles formulas; 0 for free wiring). The folds and loop
  bounds it is made of (``neuron_folds``, ``channel_folds``, ``row_words``,
  ...) are properties too: the generated code loops over exactly these.

The stream type and the base class live in :mod:`sira.hw_base`, the image
layers (padding, sliding window, pooling) in :mod:`sira.hw_window`; every
name is importable from here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Optional

import numpy as np

from .errors import SiraError
from .hw_base import MEM_STYLES, HWLayer, StreamType, channel_folds_pe, check_thresholds, int_array, pe_over_channels, pixel_cycles
from .hw_window import ConvolutionInputGenerator, FMPadding, Pool, StreamingMaxPool
from .requant import IntegerRequant, is_identity, prove

#: how a layer's thresholds are built: compared one by one (``thresholds``),
#: as one exact multiply, add and shift (``integer``, when the steps have
#: that form), or chosen by the cost model: the smallest share of the part
#: that uses no more of any resource than FINN's layer (``auto``), or the
#: smallest share outright (``cheapest``, which may trade one resource for
#: another)
IMPLS = ("auto", "cheapest", "thresholds", "integer")
#: the entries of :data:`IMPLS` that let the cost model choose
IMPL_POLICIES = ("auto", "cheapest")


def check_requant(layer, thresholds: Optional[np.ndarray], channels: int, in_range) -> None:
    """A layer's ``impl`` and integer requantizer: the requantizer must be
    proven equal to the layer's thresholds over its whole input range
    (``in_range()``, the input's integer bounds)."""
    if layer.impl not in IMPLS:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): impl={layer.impl!r} is not one of {', '.join(IMPLS)}")
    req = layer.requant
    if req is None:
        return
    if not isinstance(req, IntegerRequant):
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): requant must be an IntegerRequant")
    if thresholds is None:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): an integer requantizer needs the thresholds it implements")
    if layer.impl == "thresholds":
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): impl='thresholds' contradicts its integer requantizer; drop one")
    in_range = in_range()
    if req.rows not in (1, channels):
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): integer requantizer of {req.rows} row(s) for {channels} channels")
    try:
        prove(req, thresholds, *in_range)
    except SiraError as e:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): {e}") from None


# --------------------------------------------------------------------------
# compute layers
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class DotProductUnit(HWLayer):
    """What MVAU and VVAU share: integer weights, the accumulator, optional
    thresholds after it, and ``num_input_vectors`` dot products per frame."""

    num_input_vectors: tuple[int, ...] = ()
    weights: np.ndarray
    weight_type: StreamType
    acc_type: StreamType
    thresholds: Optional[np.ndarray] = None
    threshold_type: Optional[StreamType] = None
    activation_bias: int = 0
    activation_scale: int = 1
    threshold_mem_style: str = "auto"
    #: the thresholds built as one multiply, add and shift (None: compared)
    requant: Optional[IntegerRequant] = None
    impl: str = "auto"
    #: proven integer range of every input (``(2, n)``: lo and hi per weight
    #: row of an MVAU, per channel of a VVAU), from which
    #: :mod:`sira.accumulation` proves the adder-tree width; None: the input
    #: may hold anything its type holds
    input_bounds: Optional[np.ndarray] = None

    def _check_dot_product(self, weight_shape: tuple[int, int], shape_text: str, channels: int) -> None:
        """Normalize and check the shared fields: weights of ``weight_shape``
        (described as ``shape_text``), thresholds for ``channels``."""
        object.__setattr__(self, "num_input_vectors", tuple(int(v) for v in self.num_input_vectors))
        if self.acc_range is not None:
            object.__setattr__(self, "acc_range", tuple(int(v) for v in self.acc_range))
        w = int_array(self.weights, "weights", self.name)
        if w.shape != weight_shape:
            raise SiraError(f"layer '{self.name}' ({self.kind}): weights are {w.shape}, expected {shape_text} = {weight_shape}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", check_thresholds(self, self.thresholds, channels, self.threshold_type))
        if self.threshold_mem_style not in MEM_STYLES:
            raise SiraError(f"layer '{self.name}' ({self.kind}): threshold_mem_style must be one of {', '.join(MEM_STYLES)}")
        check_requant(self, self.thresholds, channels, lambda: self.acc_range or (self.acc_type.min, self.acc_type.max))
        if self.input_bounds is not None:
            b = int_array(self.input_bounds, "input_bounds", self.name)
            n = self.input_bounds_length
            if b.shape != (2, n):
                raise SiraError(f"layer '{self.name}' ({self.kind}): input_bounds are {b.shape}, expected (2, {n}) (lo and hi per input)")
            if not self.in_type.is_integer or np.any(b[0] > b[1]) or int(np.min(b[0])) < self.in_type.min or int(np.max(b[1])) > self.in_type.max:
                raise SiraError(f"layer '{self.name}' ({self.kind}): input_bounds must be ranges lo <= hi inside the input type {self.in_type.name}")
            object.__setattr__(self, "input_bounds", b)

    @property
    def has_thresholds(self) -> bool:
        return self.thresholds is not None

    @property
    def vectors(self) -> int:
        """Dot products per output channel and frame."""
        return int(math.prod(self.num_input_vectors))


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class MVAU(DotProductUnit):
    """Matrix-vector activation unit: ``acc = x @ weights`` over ``mw`` inputs
    and ``mh`` outputs, repeated for ``num_input_vectors`` (e.g. ``(OH, OW)``
    after a sliding window); optionally followed by thresholds (then the
    output is ``activation_scale * count(acc >= t) + activation_bias``).

    ``weights`` is ``(mw, mh)``; for convolutions the rows are ordered
    ``(kh, kw, c_in)`` to match :class:`ConvolutionInputGenerator`.
    ``PE`` divides ``mh``, ``SIMD`` divides ``mw``."""

    kind: ClassVar[str] = "MVAU"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)

    mw: int
    mh: int
    #: proven integer range of the accumulator; None for a float MAC (a layer
    #: reading the model's float input), which has no integer accumulator
    acc_range: Optional[tuple[int, int]]

    def __post_init__(self):
        self._check_dot_product((self.mw, self.mh), "(MW, MH)", self.mh)
        super().__post_init__()

    def fold_dims(self):
        return {"pe": ("MH", self.mh), "simd": ("MW", self.mw)}

    @property
    def input_bounds_length(self) -> int:
        """Inputs with their own bounds: one per weight row."""
        return self.mw

    @property
    def neuron_folds(self) -> int:
        """NF: output words per input vector (MH/PE)."""
        return self.mh // self.pe

    @property
    def synapse_folds(self) -> int:
        """SF: input words per input vector (MW/SIMD)."""
        return self.mw // self.simd

    @property
    def weight_depth(self) -> int:
        """Words of each PE's weight memory: one per (NF, SF) step."""
        return self.neuron_folds * self.synapse_folds

    @property
    def cycles(self) -> int:
        return self.vectors * self.weight_depth

    @property
    def xnor(self) -> bool:
        """Binary layer: weights and inputs both bipolar (their proven
        values exactly {-1, +1}), so each product is an XNOR of two bits and
        the dot product ``2 * popcount - MW`` (FINN's binaryXnorMode).
        ``acc_range`` and ``acc_type`` are the +-1 dot product's (what the
        thresholds compare); the popcount's range follows from them."""
        return self.in_type.kind == "bipolar" and self.weight_type.kind == "bipolar"

    @property
    def popcount_bits(self) -> int:
        """FINN's width of an XNOR layer's accumulator, the popcount in [0,
        MW] (what FINN's formulas take); the generated code counts in the
        proven popcount range (:mod:`sira.accumulation`), no wider."""
        return self.mw.bit_length()


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class VVAU(DotProductUnit):
    """Vector-vector activation unit (depthwise convolution): per channel a
    dot product over the ``kernel`` window, ``weights`` ``(channels, kh*kw)``
    with the window in row-major (kh, kw) order; optional thresholds as in
    :class:`MVAU`. ``PE`` divides ``channels``, ``SIMD`` divides ``kh*kw``."""

    kind: ClassVar[str] = "VVAU"
    in_factors: ClassVar[tuple[str, ...]] = ("pe", "simd")

    channels: int
    kernel: tuple[int, int]
    acc_range: tuple[int, int]

    def __post_init__(self):
        object.__setattr__(self, "kernel", tuple(int(v) for v in self.kernel))
        self._check_dot_product((self.channels, self.window), "(channels, kh*kw)", self.channels)
        super().__post_init__()

    def fold_dims(self):
        return {"pe": ("channels", self.channels), "simd": ("kernel size kh*kw", self.window)}

    @property
    def input_bounds_length(self) -> int:
        """Inputs with their own bounds: one per channel (every window position)."""
        return self.channels

    @property
    def window(self) -> int:
        """Elements of the kernel window (kh*kw)."""
        return int(math.prod(self.kernel))

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def cycles(self) -> int:
        return self.channel_folds * (self.window // self.simd) * self.vectors


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Thresholding(HWLayer):
    """Standalone multi-thresholding: ``out = activation_scale * count(x >= t)
    + activation_bias`` per channel; ``thresholds`` ``(channels or 1,
    steps)``. ``PE`` divides ``channels``."""

    kind: ClassVar[str] = "Thresholding"

    channels: int
    thresholds: np.ndarray
    threshold_type: StreamType
    activation_bias: int = 0
    activation_scale: int = 1
    #: the thresholds built as one multiply, add and shift (None: compared)
    requant: Optional[IntegerRequant] = None
    impl: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "thresholds", check_thresholds(self, self.thresholds, self.channels, self.threshold_type))
        check_requant(self, self.thresholds, self.channels, lambda: (self.in_type.min, self.in_type.max))
        super().__post_init__()

    fold_dims = pe_over_channels
    channel_folds = property(channel_folds_pe)
    cycles = property(pixel_cycles)

    @property
    def is_identity(self) -> bool:
        """Whether the layer outputs its input for every integer the input
        type holds (an input quantizer that re-quantizes a UINT8 input to
        the same grid: thresholds 1..255, bias 0). Such a layer is a wire:
        no comparators, no threshold memory."""
        return maps_to_itself(self.thresholds, self.in_type, self.activation_scale, self.activation_bias)


def maps_to_itself(thresholds: np.ndarray, in_type: StreamType, scale: int, bias: int) -> bool:
    """bias + scale * #{t in row : x >= t} == x for every row and every
    integer x of ``in_type`` (:func:`sira.requant.is_identity`)."""
    return in_type.kind == "int" and is_identity(thresholds, in_type.min, in_type.max, scale, bias)


ELEMENTWISE_OPS = ("Add", "Sub", "Mul", "Div", "Min", "Max", "RoundClip")


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Elementwise(HWLayer):
    """Binary elementwise op ``out = in0 <op> rhs``, ``rhs`` a constant
    (``param``, broadcast channels-last; exact ints when integral, else
    float64) or a second stream (``inputs[1]``, ``rhs_type``). ``RoundClip``
    is a quantizer tail that could not become thresholds: round (``rounding``)
    then clip to ``[clip_lo, clip_hi]``. ``PE`` divides ``channels``."""

    kind: ClassVar[str] = "Elementwise"

    op: str
    channels: int
    param: Optional[np.ndarray] = None
    rhs_type: Optional[StreamType] = None
    rounding: Optional[str] = None
    clip_lo: Optional[int] = None
    clip_hi: Optional[int] = None

    def __post_init__(self):
        if self.op not in ELEMENTWISE_OPS:
            raise SiraError(f"layer '{self.name}' (Elementwise): op '{self.op}' is not one of {', '.join(ELEMENTWISE_OPS)}")
        if self.param is not None:
            p = np.array(self.param, copy=True)
            p.setflags(write=False)
            object.__setattr__(self, "param", p)
        streams = len(self.inputs)
        if self.op == "RoundClip":
            if self.clip_lo is None or self.clip_hi is None or self.rounding is None:
                raise SiraError(f"layer '{self.name}' (Elementwise RoundClip): needs rounding, clip_lo and clip_hi")
        elif (self.param is None) == (streams < 2):
            raise SiraError(f"layer '{self.name}' (Elementwise {self.op}): needs exactly one of a constant param or a second input stream")
        super().__post_init__()

    @property
    def rhs_style(self) -> str:
        return "input" if len(self.inputs) > 1 else "const"

    @property
    def input_types(self) -> list[StreamType]:
        return [self.in_type, self.rhs_type] if len(self.inputs) > 1 else [self.in_type]

    fold_dims = pe_over_channels
    channel_folds = property(channel_folds_pe)
    cycles = property(pixel_cycles)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class AddStreams(HWLayer):
    """Residual join: ``out = in0 + in1``, both streams of ``in_shape``;
    ``in_type2`` is the second stream's type. ``PE`` divides ``channels``."""

    kind: ClassVar[str] = "AddStreams"

    channels: int
    in_type2: StreamType

    @property
    def input_types(self) -> list[StreamType]:
        return [self.in_type, self.in_type2]

    fold_dims = pe_over_channels
    channel_folds = property(channel_folds_pe)
    cycles = property(pixel_cycles)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class GateMul(HWLayer):
    """A feature map times a per-channel gate computed from it (the
    squeeze-excite product ``x * sigmoid(fc(gap(x)))``): ``out[..., c] =
    in0[..., c] * in1[c]``, the gate stream ``inputs[1]`` one value per
    channel per frame (``gate_type``), the product exact in ``out_type``
    (the analysis proves its range). The gate depends on the whole frame, so
    the layer reads it first and keeps it (one word per channel fold), then
    streams the frame, which waits meanwhile in the FIFO of its branch
    (deepened by :mod:`sira.hls.fifos`). ``PE`` divides ``channels``; the
    gate stream is folded the same way."""

    kind: ClassVar[str] = "GateMul"

    channels: int
    gate_type: StreamType

    @property
    def input_types(self) -> list[StreamType]:
        return [self.in_type, self.gate_type]

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.in_shape), (self.in_shape[0],) + (1,) * (len(self.in_shape) - 2) + (self.channels,)]

    fold_dims = pe_over_channels
    channel_folds = property(channel_folds_pe)

    @property
    def cycles(self) -> int:
        """The gate's words, then the frame's."""
        return self.channel_folds * (1 + self.pixels)


# --------------------------------------------------------------------------
# stream plumbing
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Concat(HWLayer):
    """Channel concatenation of several streams (``channels`` per input, in
    ``inputs`` order; ``in_types`` per input). ``SIMD`` divides every input's
    channel count."""

    kind: ClassVar[str] = "Concat"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: tuple[int, ...]
    in_types: tuple[StreamType, ...]

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "in_types", tuple(self.in_types))
        super().__post_init__()

    def fold_dims(self):
        return {"simd": ("gcd of the input channels", math.gcd(*self.channels))}

    @property
    def input_types(self) -> list[StreamType]:
        return list(self.in_types)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.in_shape[:-1]) + (c,) for c in self.channels]

    @property
    def cycles(self) -> int:
        return self.pixels * (sum(self.channels) // self.simd)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Split(HWLayer):
    """Channel split of one stream into ``channels`` parts (``outputs``
    order). ``SIMD`` divides every output's channel count."""

    kind: ClassVar[str] = "Split"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        super().__post_init__()

    def fold_dims(self):
        return {"simd": ("gcd of the output channels", math.gcd(*self.channels))}

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.out_shape[:-1]) + (c,) for c in self.channels]

    @property
    def cycles(self) -> int:
        return self.pixels * (sum(self.channels) // self.simd)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Reshape(HWLayer):
    """Free re-interpretation of a stream (Reshape, Flatten, Squeeze, a
    Transpose that keeps the channels-last element order): wiring only, no
    logic, 0 cycles. ``op`` is the ONNX op it came from."""

    kind: ClassVar[str] = "Reshape"

    op: str = "Reshape"


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class HostOp(HWLayer):
    """An op on the model's output that runs on the host CPU, after the
    dataflow (Softmax, ArgMax, TopK: FINN users cut their dataflow partition
    before these). No FPGA resources, 0 cycles; ``op`` names it."""

    kind: ClassVar[str] = "HostOp"

    op: str = "Softmax"


def _stream_types(layer: HWLayer) -> list[StreamType]:
    types = [layer.in_type, layer.out_type]
    for extra in ("in_type2", "rhs_type", "acc_type", "gate_type"):
        t = getattr(layer, extra, None)
        if t is not None:
            types.append(t)
    return types + list(getattr(layer, "in_types", ()))


def is_float_layer(layer: HWLayer) -> bool:
    """A layer that computes on float values (no integer hardware)."""
    return not all(t.is_integer for t in _stream_types(layer))


def host_partition(layers: list[HWLayer]) -> tuple[list[HWLayer], list[HWLayer], list[HWLayer]]:
    """(head, body, tail) of a dataflow-ordered layer list, as a FINN user
    partitions a model: the **head** is the float arithmetic before any
    integer stream (a float input quantizer, a first layer reading the
    unquantized input), the **tail** the float arithmetic and host ops after the integer
    layers (output scale and bias, Softmax); both run on the host CPU. The
    **body** is everything else; a float layer in it (between integer
    layers) has no integer hardware."""
    def is_host(layer: HWLayer) -> bool:
        # float thresholds are comparators, which hardware has (FINN builds them for float inputs)
        return isinstance(layer, HostOp) or (is_float_layer(layer) and not isinstance(layer, Thresholding))

    head, rest = [], []
    after: set[str] = set()
    for layer in layers:
        if is_host(layer) and not any(t in after for t in layer.inputs):
            head.append(layer)
        else:
            rest.append(layer)
            after.update(layer.outputs)
    needed: set[str] = set()  # tensors read by body layers
    body, tail = [], []
    for layer in reversed(rest):
        if is_host(layer) and not any(o in needed for o in layer.outputs):
            tail.append(layer)
        else:
            body.append(layer)
            needed.update(layer.inputs)
    return head, body[::-1], tail[::-1]


LAYER_KINDS: dict[str, type] = {
    cls.kind: cls
    for cls in (MVAU, VVAU, Thresholding, Elementwise, AddStreams, GateMul, FMPadding, ConvolutionInputGenerator, StreamingMaxPool, Pool, Concat, Split, Reshape, HostOp)
}

__all__ = ["StreamType", "HWLayer", "MEM_STYLES", "ELEMENTWISE_OPS", "IMPLS", "IntegerRequant", "check_requant", "LAYER_KINDS", "host_partition", "is_float_layer"] + list(LAYER_KINDS)

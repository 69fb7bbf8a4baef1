"""Hardware layer specs: the single input of the cost model and the HLS backend.

One frozen dataclass per hardware stage (FINN's vocabulary, see
``docs/research/fpga_cost_and_hls.md`` §1), built from an optimized model by
:func:`transforms.to_hw.lower_to_hw`. This module never touches a graph: a
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
  (FINN's expected-cycles formulas; 0 for free wiring).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Optional

import numpy as np

from .errors import SiraError
from .numerics import int_type_width

MEM_STYLES = ("auto", "lut", "block", "ultra")


# --------------------------------------------------------------------------
# stream types
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StreamType:
    """Type of the values on a stream: ``bits`` wide, ``signed`` or not;
    ``kind`` is ``int``, ``bipolar`` (+-1 in one bit) or ``float``."""

    bits: int
    signed: bool
    kind: str = "int"

    def __post_init__(self):
        if self.kind not in ("int", "bipolar", "float"):
            raise ValueError(f"unknown stream type kind '{self.kind}'")
        if self.bits < 1:
            raise ValueError(f"stream type needs at least one bit, got {self.bits}")

    @classmethod
    def for_range(cls, lo: int, hi: int) -> "StreamType":
        """Narrowest integer type holding [lo, hi] (FINN's width rule,
        :func:`sira.numerics.int_type_width`)."""
        return cls(int_type_width(lo, hi), int(lo) < 0)

    @classmethod
    def bipolar(cls) -> "StreamType":
        return cls(1, True, "bipolar")

    @classmethod
    def float32(cls) -> "StreamType":
        return cls(32, True, "float")

    @property
    def is_integer(self) -> bool:
        return self.kind != "float"

    @property
    def min(self) -> int:
        if self.kind == "bipolar":
            return -1
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        if self.kind == "bipolar":
            return 1
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def name(self) -> str:
        """QONNX datatype name: ``INT16``, ``UINT4``, ``BINARY``, ``BIPOLAR``, ``FLOAT32``."""
        if self.kind == "float":
            return "FLOAT32"
        if self.kind == "bipolar":
            return "BIPOLAR"
        if not self.signed and self.bits == 1:
            return "BINARY"
        return f"{'INT' if self.signed else 'UINT'}{self.bits}"

    def __str__(self) -> str:
        return self.name

    def to_json(self) -> dict:
        return {"name": self.name, "bits": self.bits, "signed": self.signed}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _int_array(a, what: str, layer: str) -> np.ndarray:
    """Exact, read-only integer copy of ``a``."""
    arr = np.array(a, copy=True)
    if arr.dtype == object:
        if not all(isinstance(v, (int, np.integer)) for v in arr.flat):
            raise SiraError(f"layer '{layer}': {what} must be integers")
    elif arr.dtype.kind in "iub":
        arr = arr.astype(np.int64)
    else:
        raise SiraError(f"layer '{layer}': {what} must be an integer array (int64 or object), got {arr.dtype}")
    arr.setflags(write=False)
    return arr


def _array_range(a: np.ndarray) -> tuple[int, int]:
    if a.dtype == object:
        vals = [int(v) for v in a.flat]
        return min(vals), max(vals)
    return int(a.min()), int(a.max())


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _json_value(v: Any) -> Any:
    if isinstance(v, StreamType):
        return v.to_json()
    if isinstance(v, np.ndarray):
        if v.dtype == object or v.dtype.kind in "iub":
            return np.vectorize(int, otypes=[object])(v).tolist() if v.size else []
        return v.tolist()
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


# --------------------------------------------------------------------------
# base
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class HWLayer:
    """Fields every hardware stage has (see the module docstring)."""

    kind: ClassVar[str] = "HWLayer"
    #: the folding factors whose product is the elements per word of the
    #: input (``in_factors``) and the output (``out_factors``) streams
    in_factors: ClassVar[tuple[str, ...]] = ("pe",)
    out_factors: ClassVar[tuple[str, ...]] = ("pe",)

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    in_type: StreamType
    out_type: StreamType
    pe: int = 1
    simd: int = 1
    mem_style: str = "auto"

    def __post_init__(self):
        for f in ("inputs", "outputs", "in_shape", "out_shape"):
            object.__setattr__(self, f, tuple(getattr(self, f)))
        if self.mem_style not in MEM_STYLES:
            raise SiraError(f"layer '{self.name}' ({self.kind}): mem_style '{self.mem_style}' is not one of {', '.join(MEM_STYLES)}")
        self._check_folding()

    # -- folding -----------------------------------------------------------
    def fold_dims(self) -> dict[str, tuple[str, int]]:
        """``{"pe"|"simd": (dimension name, size)}``: what each folding factor
        must divide. A factor not listed must stay 1."""
        return {}

    def _check_folding(self) -> None:
        dims = self.fold_dims()
        for factor in ("pe", "simd"):
            value = getattr(self, factor)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise SiraError(f"layer '{self.name}' ({self.kind}): {factor.upper()}={value!r} must be a positive integer")
            if factor not in dims:
                if value != 1:
                    raise SiraError(f"layer '{self.name}' ({self.kind}) has no {factor.upper()} folding; set {factor.upper()}=1")
                continue
            dim, size = dims[factor]
            if size % value:
                raise SiraError(
                    f"layer '{self.name}' ({self.kind}): {factor.upper()}={value} does not divide {dim}={size}; "
                    f"choose {factor.upper()} among {', '.join(map(str, _divisors(size)))}"
                )

    def with_folding(self, pe: Optional[int] = None, simd: Optional[int] = None, mem_style: Optional[str] = None) -> "HWLayer":
        """A copy with other folding or memory style (validated)."""
        changes: dict[str, Any] = {}
        if pe is not None:
            changes["pe"] = pe
        if simd is not None:
            changes["simd"] = simd
        if mem_style is not None:
            changes["mem_style"] = mem_style
        return dataclasses.replace(self, **changes)

    # -- cost-free facts ------------------------------------------------------
    @property
    def input_types(self) -> list[StreamType]:
        """The element type of every input stream, in ``inputs`` order."""
        return [self.in_type] * len(self.inputs)

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """The shape of every input stream, in ``inputs`` order."""
        return [tuple(self.in_shape)] * len(self.inputs)

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        """The shape of every output stream, in ``outputs`` order."""
        return [tuple(self.out_shape)] * len(self.outputs)

    @property
    def pixels(self) -> int:
        """Pixels (elements per channel) of the output stream per frame."""
        return _spatial(self.out_shape)

    @property
    def in_lanes(self) -> int:
        """Elements per word of each input stream."""
        return int(math.prod(getattr(self, f) for f in self.in_factors))

    @property
    def out_lanes(self) -> int:
        """Elements per word of each output stream."""
        return int(math.prod(getattr(self, f) for f in self.out_factors))

    @property
    def cycles(self) -> int:
        """Clock cycles per input (FINN's expected cycles)."""
        return 0

    def to_json(self) -> dict:
        """Plain JSON-able dict: ``kind``, every field (types as
        ``{name, bits, signed}``, arrays as nested lists of ints), ``cycles``."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            out[f.name] = _json_value(getattr(self, f.name))
        out["cycles"] = self.cycles
        return out


def _spatial(shape: tuple[int, ...]) -> int:
    """Elements per channel of a channels-last stream, batch excluded."""
    return int(math.prod(shape[1:-1])) if len(shape) > 2 else 1


def _check_thresholds(layer: HWLayer, thresholds: Optional[np.ndarray], channels: int, ttype: Optional[StreamType]) -> Optional[np.ndarray]:
    if thresholds is None:
        return None
    t = _int_array(thresholds, "thresholds", layer.name)
    if t.ndim != 2 or t.shape[0] not in (1, channels):
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds must be (channels={channels} or 1, steps), got {t.shape}")
    if ttype is None:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds need a threshold_type")
    if t.size:
        lo, hi = _array_range(t)
        if lo < ttype.min or hi > ttype.max:
            raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds [{lo}, {hi}] do not fit {ttype.name}")
    return t


# --------------------------------------------------------------------------
# compute layers
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class MVAU(HWLayer):
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
    num_input_vectors: tuple[int, ...] = ()
    weights: np.ndarray
    weight_type: StreamType
    acc_type: StreamType
    #: proven integer range of the accumulator; None for a float MAC (a layer
    #: reading the model's float input), which has no integer accumulator
    acc_range: Optional[tuple[int, int]]
    thresholds: Optional[np.ndarray] = None
    threshold_type: Optional[StreamType] = None
    activation_bias: int = 0
    activation_scale: int = 1
    threshold_mem_style: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "num_input_vectors", tuple(int(v) for v in self.num_input_vectors))
        if self.acc_range is not None:
            object.__setattr__(self, "acc_range", tuple(int(v) for v in self.acc_range))
        w = _int_array(self.weights, "weights", self.name)
        if w.shape != (self.mw, self.mh):
            raise SiraError(f"layer '{self.name}' (MVAU): weights are {w.shape}, expected (MW, MH) = ({self.mw}, {self.mh})")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", _check_thresholds(self, self.thresholds, self.mh, self.threshold_type))
        if self.threshold_mem_style not in MEM_STYLES:
            raise SiraError(f"layer '{self.name}' (MVAU): threshold_mem_style must be one of {', '.join(MEM_STYLES)}")
        super().__post_init__()

    @property
    def has_thresholds(self) -> bool:
        return self.thresholds is not None

    def fold_dims(self):
        return {"pe": ("MH", self.mh), "simd": ("MW", self.mw)}

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
    def vectors(self) -> int:
        """Input vectors per frame."""
        return int(math.prod(self.num_input_vectors))

    @property
    def cycles(self) -> int:
        return self.vectors * self.weight_depth


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class VVAU(HWLayer):
    """Vector-vector activation unit (depthwise convolution): per channel a
    dot product over the ``kernel`` window, ``weights`` ``(channels, kh*kw)``
    with the window in row-major (kh, kw) order; optional thresholds as in
    :class:`MVAU`. ``PE`` divides ``channels``, ``SIMD`` divides ``kh*kw``."""

    kind: ClassVar[str] = "VVAU"
    in_factors: ClassVar[tuple[str, ...]] = ("pe", "simd")

    channels: int
    kernel: tuple[int, int]
    num_input_vectors: tuple[int, ...] = ()
    weights: np.ndarray
    weight_type: StreamType
    acc_type: StreamType
    acc_range: tuple[int, int]
    thresholds: Optional[np.ndarray] = None
    threshold_type: Optional[StreamType] = None
    activation_bias: int = 0
    activation_scale: int = 1
    threshold_mem_style: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "kernel", tuple(int(v) for v in self.kernel))
        object.__setattr__(self, "num_input_vectors", tuple(int(v) for v in self.num_input_vectors))
        object.__setattr__(self, "acc_range", tuple(int(v) for v in self.acc_range))
        w = _int_array(self.weights, "weights", self.name)
        k = int(math.prod(self.kernel))
        if w.shape != (self.channels, k):
            raise SiraError(f"layer '{self.name}' (VVAU): weights are {w.shape}, expected (channels, kh*kw) = ({self.channels}, {k})")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "thresholds", _check_thresholds(self, self.thresholds, self.channels, self.threshold_type))
        if self.threshold_mem_style not in MEM_STYLES:
            raise SiraError(f"layer '{self.name}' (VVAU): threshold_mem_style must be one of {', '.join(MEM_STYLES)}")
        super().__post_init__()

    @property
    def has_thresholds(self) -> bool:
        return self.thresholds is not None

    def fold_dims(self):
        return {"pe": ("channels", self.channels), "simd": ("kernel size kh*kw", self.window)}

    @property
    def window(self) -> int:
        """Elements of the kernel window (kh*kw)."""
        return int(math.prod(self.kernel))

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def vectors(self) -> int:
        """Windows per frame."""
        return int(math.prod(self.num_input_vectors))

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

    def __post_init__(self):
        object.__setattr__(self, "thresholds", _check_thresholds(self, self.thresholds, self.channels, self.threshold_type))
        super().__post_init__()

    def fold_dims(self):
        return {"pe": ("channels", self.channels)}

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def cycles(self) -> int:
        return self.pixels * self.channel_folds


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

    def fold_dims(self):
        return {"pe": ("channels", self.channels)}

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def cycles(self) -> int:
        return self.pixels * self.channel_folds


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

    def fold_dims(self):
        return {"pe": ("channels", self.channels)}

    @property
    def channel_folds(self) -> int:
        return self.channels // self.pe

    @property
    def cycles(self) -> int:
        return self.pixels * self.channel_folds


# --------------------------------------------------------------------------
# sliding window, padding, pooling
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class FMPadding(HWLayer):
    """Zero padding of an image stream: ``padding`` is (top, left, bottom,
    right), in ``value`` (0 for convolutions). ``SIMD`` divides ``channels``."""

    kind: ClassVar[str] = "FMPadding"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: int
    padding: tuple[int, int, int, int]
    value: int = 0

    def __post_init__(self):
        object.__setattr__(self, "padding", tuple(int(v) for v in self.padding))
        super().__post_init__()

    def fold_dims(self):
        return {"simd": ("channels", self.channels)}

    @property
    def channel_folds(self) -> int:
        return self.channels // self.simd

    @property
    def cycles(self) -> int:
        return self.pixels * self.channel_folds


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class ConvolutionInputGenerator(HWLayer):
    """Sliding window generator: reads an (already padded) ``ifm_dim`` image
    of ``channels`` and emits, per output pixel of ``ofm_dim``, the
    ``kernel`` window in (kh, kw, c) order. ``depthwise`` streams the window
    channel-interleaved for a VVAU. ``SIMD`` divides ``channels``."""

    kind: ClassVar[str] = "ConvolutionInputGenerator"
    in_factors: ClassVar[tuple[str, ...]] = ("simd",)
    out_factors: ClassVar[tuple[str, ...]] = ("simd",)

    channels: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    depthwise: bool = False

    def __post_init__(self):
        for f in ("ifm_dim", "ofm_dim", "kernel", "stride", "dilation"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        super().__post_init__()

    def fold_dims(self):
        return {"simd": ("channels", self.channels)}

    @property
    def channel_folds(self) -> int:
        return self.channels // self.simd

    @property
    def window_rows(self) -> int:
        """Input rows one window spans (dilation included)."""
        return (self.kernel[0] - 1) * self.dilation[0] + 1

    @property
    def buffer_rows(self) -> int:
        """Rows of the line buffer: a window's rows plus the stride's rows
        the next window row needs, read while the current one is emitted."""
        return self.window_rows + self.stride[0]

    @property
    def row_words(self) -> int:
        """Stream words of one input row."""
        return self.ifm_dim[1] * self.channel_folds

    @property
    def prefill_words(self) -> int:
        """Stream words read before the first window: its rows."""
        return self.window_rows * self.row_words

    @property
    def window_row_words(self) -> int:
        """Stream words emitted per output row (every window of the row)."""
        return self.ofm_dim[1] * int(math.prod(self.kernel)) * self.channel_folds

    @property
    def cycles(self) -> int:
        window = int(math.prod(self.ofm_dim)) * int(math.prod(self.kernel))
        return max(window, int(math.prod(self.ifm_dim))) * self.channel_folds


def _channel_folds_pe(layer) -> int:
    """Stream words per pixel of a PE-folded image."""
    return layer.channels // layer.pe


def _pool_buffer_rows(layer) -> int:
    """Rows of a pooling line buffer: the kernel's rows plus the stride's
    rows the next window row needs, read while the current one is reduced."""
    return layer.kernel[0] + layer.stride[0]


def _pool_row_words(layer) -> int:
    """Stream words of one input row."""
    return layer.ifm_dim[1] * layer.channel_folds


def _pool_prefill_words(layer) -> int:
    """Stream words read before the first window: the kernel's rows."""
    return layer.kernel[0] * layer.row_words


def _pool_window_row_words(layer) -> int:
    """Window elements reduced per output row (one word per cycle)."""
    return layer.ofm_dim[1] * int(math.prod(layer.kernel)) * layer.channel_folds


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class StreamingMaxPool(HWLayer):
    """Max pooling over ``kernel`` windows with ``stride`` on an image
    stream (no padding). ``PE`` divides ``channels``."""

    kind: ClassVar[str] = "StreamingMaxPool"

    channels: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]

    def __post_init__(self):
        for f in ("ifm_dim", "ofm_dim", "kernel", "stride"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        super().__post_init__()

    def fold_dims(self):
        return {"pe": ("channels", self.channels)}

    channel_folds = property(_channel_folds_pe)
    buffer_rows = property(_pool_buffer_rows)
    row_words = property(_pool_row_words)
    window_row_words = property(_pool_window_row_words)
    prefill_words = property(_pool_prefill_words)

    @property
    def cycles(self) -> int:
        return int(math.prod(self.ifm_dim)) * self.channel_folds


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Pool(HWLayer):
    """Pooling by summation (``function`` ``"sum"``): the integer sum over
    each ``kernel`` window; an average pool is this sum, its division folded
    into the next requantization (thresholds or scale). ``PE`` divides
    ``channels``."""

    kind: ClassVar[str] = "Pool"

    channels: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    function: str = "sum"
    acc_type: Optional[StreamType] = None

    def __post_init__(self):
        for f in ("ifm_dim", "ofm_dim", "kernel", "stride"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if self.function != "sum":
            raise SiraError(f"layer '{self.name}' (Pool): function '{self.function}' is not supported; only 'sum'")
        super().__post_init__()

    def fold_dims(self):
        return {"pe": ("channels", self.channels)}

    @property
    def is_global(self) -> bool:
        """One window over the whole image (global pooling): a running
        value per channel, no line buffer."""
        return self.kernel == self.ifm_dim and self.ofm_dim == (1, 1)

    channel_folds = property(_channel_folds_pe)
    buffer_rows = property(_pool_buffer_rows)
    row_words = property(_pool_row_words)
    window_row_words = property(_pool_window_row_words)
    prefill_words = property(_pool_prefill_words)

    @property
    def cycles(self) -> int:
        return int(math.prod(self.ifm_dim)) * self.channel_folds


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
    for extra in ("in_type2", "rhs_type", "acc_type"):
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
    for cls in (MVAU, VVAU, Thresholding, Elementwise, AddStreams, FMPadding, ConvolutionInputGenerator, StreamingMaxPool, Pool, Concat, Split, Reshape, HostOp)
}

__all__ = ["StreamType", "HWLayer", "MEM_STYLES", "ELEMENTWISE_OPS", "LAYER_KINDS", "host_partition", "is_float_layer"] + list(LAYER_KINDS)

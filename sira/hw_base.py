"""The common ground of the hardware layer specs (:mod:`sira.hw`): the stream
element type, the fields and folding rules every layer has, and the
validation helpers the layer kinds share. See :mod:`sira.hw` for the
conventions."""

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

    @classmethod
    def named(cls, name: str) -> "StreamType":
        """The type of a QONNX datatype name (the inverse of :attr:`name`):
        ``BIPOLAR``, ``BINARY``, ``INTn``, ``UINTn`` or ``FLOAT32``."""
        if name == "FLOAT32":
            return cls.float32()
        if name == "BIPOLAR":
            return cls.bipolar()
        if name == "BINARY":
            return cls(1, False)
        for prefix, signed in (("UINT", False), ("INT", True)):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                return cls(int(name[len(prefix):]), signed)
        raise ValueError(f"no stream type for datatype '{name}'")

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


def int_array(a, what: str, layer: str) -> np.ndarray:
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
    if hasattr(v, "to_json"):  # a StreamType, an integer requantizer
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


def check_thresholds(layer: HWLayer, thresholds: Optional[np.ndarray], channels: int, ttype: Optional[StreamType]) -> Optional[np.ndarray]:
    """Validated exact copy of a layer's thresholds: ``(channels or 1, steps)``
    integers that fit ``ttype`` (None stays None)."""
    if thresholds is None:
        return None
    t = int_array(thresholds, "thresholds", layer.name)
    if t.ndim != 2 or t.shape[0] not in (1, channels):
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds must be (channels={channels} or 1, steps), got {t.shape}")
    if ttype is None:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds need a threshold_type")
    if t.size:
        lo, hi = _array_range(t)
        if lo < ttype.min or hi > ttype.max:
            raise SiraError(f"layer '{layer.name}' ({layer.kind}): thresholds [{lo}, {hi}] do not fit {ttype.name}")
    return t


__all__ = ["StreamType", "HWLayer", "MEM_STYLES", "int_array", "check_thresholds"]


# the folding of layers that stream channels side by side: shared as plain
# functions so each layer class binds the ones that describe it

def pe_over_channels(layer) -> dict:
    """Folding of a layer whose PE lanes take channels side by side."""
    return {"pe": ("channels", layer.channels)}


def simd_over_channels(layer) -> dict:
    """Folding of a layer whose SIMD lanes take channels side by side."""
    return {"simd": ("channels", layer.channels)}


def channel_folds_pe(layer) -> int:
    """Stream words per pixel of a PE-folded image."""
    return layer.channels // layer.pe


def channel_folds_simd(layer) -> int:
    """Stream words per pixel of a SIMD-folded image."""
    return layer.channels // layer.simd


def pixel_cycles(layer) -> int:
    """One word per cycle: the pixels of a frame times the words per pixel."""
    return layer.pixels * layer.channel_folds


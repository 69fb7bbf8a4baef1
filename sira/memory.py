"""The memories of the hardware layers, and how a memory maps to FPGA primitives.

One layout per hardware layer kind (:func:`layer_memories`, a registry keyed
by kind): which memories the layer has, each as a :class:`MemoryLayout` -
the word width, the depth, how many separate memories (one per PE when the
generated code partitions the array per PE) and the requested RAM style.
The HLS backend (:mod:`sira.hls.kernels`) declares its arrays with these
shapes, the cost model (:mod:`sira.cost`) prices them, and the hardware
lint (:mod:`sira.lint`) checks them against the part, so the estimate
prices what the generated code builds.

A memory maps to LUTRAM, BRAM18 or URAM by :func:`map_memory`
(docs/research/fpga_cost_and_hls.md §6.2, FINN's BRAM table §1.1);
:func:`price` maps every memory of a layout, in the style it is built in
(:func:`built_style`: never URAM for initialized constants).

RAM styles have three spellings: the layers' ``mem_style`` (``auto``,
``lut``, ``block``, ``ultra``), FINN's and the cost model's ``ram_style``
(``distributed`` for ``lut``) and the HLS ``BIND_STORAGE`` impl
(``lutram``, ``bram``, ``uram``); the maps between them live here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from . import hw
from .devices import Part, get_part
from .errors import SiraError
from .formulas import evaluate

# --------------------------------------------------------------------------
# RAM style spellings
# --------------------------------------------------------------------------

#: layer ``mem_style`` -> FINN / cost-model ``ram_style``
RAM_STYLE_OF_MEM_STYLE = {"auto": "auto", "lut": "distributed", "block": "block", "ultra": "ultra"}
#: FINN ``ram_style`` (or sira's ``lut``) -> layer ``mem_style``
MEM_STYLE_OF_RAM_STYLE = {"auto": "auto", "block": "block", "distributed": "lut", "lut": "lut", "ultra": "ultra"}
#: cost-model primitive style -> HLS ``BIND_STORAGE impl``
STORAGE_IMPL = {"distributed": "lutram", "block": "bram", "ultra": "uram"}


def ram_style(mem_style: str) -> str:
    """The cost-model ``ram_style`` of a layer's ``mem_style``."""
    return RAM_STYLE_OF_MEM_STYLE.get(mem_style, "auto")


def storage_impl(style: Optional[str]) -> Optional[str]:
    """The ``BIND_STORAGE impl`` of a mapped memory style (None: let HLS choose)."""
    return STORAGE_IMPL.get(style) if style else None


# --------------------------------------------------------------------------
# primitives
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Memory:
    """A memory of ``width`` × ``depth`` bits mapped to one primitive kind."""

    style: str  # "none", "distributed", "block", "ultra"
    lut: int
    bram18: int
    uram: int


def _part(part: Part | str | None) -> Part:
    return part if isinstance(part, Part) else get_part(part)


def bram18_finn(width: int, depth: int, wide: bool = True) -> int:
    """FINN's RAMB18 count for a ``width`` × ``depth`` memory (§1.1 table).

    ``wide=False`` uses the VVAU variant of the table (§1.3: divisors 8/16/32
    instead of 9/18/36 for the ≤9, ≤18 and >18-bit rows).
    """
    d9, d18, d36 = (9, 18, 36) if wide else (8, 16, 32)
    if width == 1:
        return math.ceil(depth / 16384)
    if width == 2:
        return math.ceil(depth / 8192)
    if width <= 4:
        return math.ceil(depth / 4096) * math.ceil(width / 4)
    if width <= 9:
        return math.ceil(depth / 2048) * math.ceil(width / d9)
    if width <= 18 or depth > 512:
        return math.ceil(depth / 1024) * math.ceil(width / d18)
    return math.ceil(depth / 512) * math.ceil(width / d36)


def uram_count(width: int, depth: int) -> int:
    """URAMs of a ``width`` × ``depth`` memory: ⌈w/72⌉·⌈d/4096⌉ (§1.1, §6.2)."""
    return evaluate("prim.uram", width=width, depth=depth)


def map_memory(width: int, depth: int, part: Part | str | None = None, style: str = "auto") -> Memory:
    """Map a ``width`` × ``depth``-bit memory to LUTRAM, BRAM18 or URAM (§6.2).

    ``style="auto"`` applies §6.2's shallow-memory rule: depth ≤ 64 or at most
    2 kbit → LUTRAM (w·⌈d/64⌉ LUTs), otherwise BRAM18 by the §1.1 table.
    ``"distributed"``, ``"block"`` and ``"ultra"`` (URAM ⌈w/72⌉·⌈d/4096⌉)
    force a primitive. A zero-sized memory costs nothing.
    """
    if width <= 0 or depth <= 0:
        return Memory("none", 0, 0, 0)
    if style == "auto":
        style = "distributed" if depth <= 64 or width * depth <= 2048 else "block"
    if style == "distributed":
        return Memory(style, evaluate("prim.lutram", width=width, depth=depth), 0, 0)
    if style == "block":
        return Memory(style, 0, bram18_finn(width, depth), 0)
    if style == "ultra":
        p = _part(part)
        if not p.family.has_uram:
            raise SiraError(f"part {p.name} ({p.family.name}) has no URAM; use ram_style block or distributed")
        return Memory(style, 0, 0, uram_count(width, depth))
    raise SiraError(f"unknown memory style '{style}'; use auto, distributed, block or ultra")


#: FINN's primitive table for RTL thresholding memories (§1.4), in FINN's order
#: (which breaks ties in waste).
_FINN_RTL_PRIMITIVES = (
    ("URAM", 72, 4096), ("URAM", 36, 8192), ("URAM", 18, 16384), ("URAM", 9, 32768),
    ("BRAM18", 36, 512), ("BRAM18", 18, 1024), ("BRAM18", 9, 2048), ("LUTRAM", 1, 64),
)


def finn_least_waste(width: int, depth: int) -> tuple[str, int]:
    """FINN's least-waste primitive for one memory (§1.4): (kind, count)."""
    best = None
    for kind, pw, pd in _FINN_RTL_PRIMITIVES:
        count = math.ceil(width / pw) * math.ceil(depth / pd)
        waste = count * pw * pd - width * depth
        if best is None or waste < best[0]:
            best = (waste, kind, count)
    return best[1], best[2]


# --------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MemoryLayout:
    """``count`` separate memories of ``width`` × ``depth`` bits each (one per
    PE when the array is partitioned per PE), asked for in ``style`` (a
    cost-model ram style). ``name`` is the key the cost's storage map and
    the HLS pragmas share (``weights``, ``thresholds``, ``line_buffer``, ...).
    ``rom``: the memory holds constants the bitstream initializes (weights,
    thresholds, constant operands), not values written at run time."""

    name: str
    width: int
    depth: int
    count: int = 1
    style: str = "auto"
    rom: bool = False


def built_style(layout: MemoryLayout, style: Optional[str] = None) -> str:
    """The ram style ``layout`` is built in when asked for ``style`` (default:
    the layout's own): as asked, except that an initialized ROM asked for
    URAM goes to block RAM. A URAM has no initial contents in the
    bitstream, so Vitis HLS cannot bind a constant array to it; the
    estimate prices, and the code binds, the block RAM actually built."""
    asked = style or layout.style
    return "block" if layout.rom and asked == "ultra" else asked


def price(layout: MemoryLayout, part: Part | str | None = None, style: Optional[str] = None) -> Memory:
    """The primitives of every memory of ``layout`` (``style`` overrides
    the layout's own), as built (:func:`built_style`)."""
    one = map_memory(layout.width, layout.depth, part, built_style(layout, style))
    return Memory(one.style, layout.count * one.lut, layout.count * one.bram18, layout.count * one.uram)


def weight_memory(*, pe: int, word_elements: int, depth: int, w_bits: int, style: str = "auto") -> MemoryLayout:
    """MAC weights as the generated code stores them: one memory per PE, a
    word of ``word_elements`` weights read per cycle, ``depth`` words."""
    return MemoryLayout("weights", word_elements * w_bits, depth, pe, style, rom=True)


def threshold_levels(steps: int) -> int:
    """Stages of a binary-search threshold unit over ``steps`` thresholds
    (the output bits of a count in [0, steps])."""
    return max(1, int(steps).bit_length())


def threshold_memories(unit: str, *, pe: int, cf: int, steps: int, bits: int, style: str = "auto") -> tuple[MemoryLayout, ...]:
    """Threshold memories of a unit over ``cf`` channel folds: ``linear``
    keeps a word of every threshold of a channel per PE; ``binary`` one
    memory per search stage s and PE, ``cf·2^s`` deep (the thresholds padded
    to 2^B - 1); ``constant`` hard-wires them (no memory)."""
    if unit == "linear":
        return (MemoryLayout("thresholds", steps * bits, cf, pe, style, rom=True),)
    if unit == "binary":
        return tuple(MemoryLayout(f"thresholds_stage{st}", bits, cf * 2**st, pe, style, rom=True) for st in range(threshold_levels(steps)))
    if unit == "constant":
        return ()
    raise SiraError(f"unknown thresholding style '{unit}'; use linear, binary or constant")


def requant_params(req) -> tuple[hw.StreamType, hw.StreamType]:
    """The types of an integer requantizer's multiplier and offset (the
    narrowest holding every row's)."""
    m, b = [int(v) for v in req.m], [int(v) for v in req.b]
    return hw.StreamType.for_range(min(m), max(m)), hw.StreamType.for_range(min(b), max(b))


def requant_memories(req, *, pe: int, cf: int, style: str = "auto") -> tuple[MemoryLayout, ...]:
    """An integer requantizer's parameters: per channel a word of its
    multiplier and offset, one memory per PE, ``cf`` deep; hard-wired
    (no memory) when every channel shares them."""
    if req.shared:
        return ()
    m, b = requant_params(req)
    return (MemoryLayout("requant", m.bits + b.bits, cf, pe, style, rom=True),)


def line_buffer(*, rows: int, row_words: int, word_bits: int, style: str = "auto") -> MemoryLayout:
    """A ring of ``rows`` image rows of ``row_words`` stream words (sliding
    window and pooling): one memory."""
    return MemoryLayout("line_buffer", word_bits, rows * row_words, 1, style)


def running_values(*, pe: int, cf: int, bits: int, style: str = "auto") -> MemoryLayout:
    """Global pooling's running value per channel: one memory per PE, ``cf`` deep."""
    return MemoryLayout("running_values", bits, cf, pe, style)


def gate_buffer(*, pe: int, cf: int, bits: int, style: str = "auto") -> MemoryLayout:
    """A frame's per-channel gate, written once per frame and read for every
    pixel: one memory per PE, ``cf`` deep."""
    return MemoryLayout("gate", bits, cf, pe, style)


def constant_operand(*, lanes: int, rows: int, bits: int, style: str = "auto") -> MemoryLayout:
    """An elementwise constant operand: one memory per lane, ``rows`` deep."""
    return MemoryLayout("param", bits, rows, lanes, style, rom=True)


def threshold_element(thresholds: np.ndarray, in_lo: int, in_hi: int, unit: str) -> hw.StreamType:
    """The element type of a threshold memory as built: it holds every
    threshold and every input value (the comparison is done in it), and for
    a binary search also the padding ``in_hi + 1`` that never fires."""
    t = np.asarray(thresholds)
    lo = min(int(t.min()), in_lo) if t.size else in_lo
    hi = max(int(t.max()), in_hi) if t.size else in_hi
    if unit == "binary":
        hi = max(hi, in_hi + 1)
    return hw.StreamType.for_range(lo, hi)


# --------------------------------------------------------------------------
# one layout per hardware layer kind
# --------------------------------------------------------------------------

LayoutFn = Callable[[hw.HWLayer, str], tuple[MemoryLayout, ...]]
LAYOUTS: dict[str, LayoutFn] = {}


def layout(*kinds: str):
    """Register the memory layout of the hardware layer ``kinds`` (a function
    of the layer and its threshold unit)."""

    def register(fn: LayoutFn) -> LayoutFn:
        for kind in kinds:
            LAYOUTS[kind] = fn
        return fn

    return register


def shares_threshold_row(layer: hw.HWLayer) -> bool:
    """Whether a standalone Thresholding's channels all use one threshold row
    (a per-tensor quantizer): its memories then hold that row once per PE,
    not once per channel fold. A MAC broadcasts a shared row instead."""
    thresholds = getattr(layer, "thresholds", None)
    return layer.kind == "Thresholding" and thresholds is not None and thresholds.shape[0] == 1


def threshold_rows(layer: hw.HWLayer, channels: int) -> int:
    """Rows of each PE's threshold memory: one per channel fold, or one when
    every channel shares the row (:func:`shares_threshold_row`)."""
    return 1 if shares_threshold_row(layer) else channels // layer.pe


def default_threshold_unit(layer: hw.HWLayer) -> str:
    """The threshold unit built when the cost model made no choice:
    hard-wired for a Thresholding whose channels share one row, otherwise
    linear (a MAC broadcasts a shared row to every channel)."""
    return "constant" if shares_threshold_row(layer) else "linear"


def layer_memories(layer: hw.HWLayer, threshold_unit: Optional[str] = None) -> tuple[MemoryLayout, ...]:
    """Every memory of ``layer`` as the generated code declares it;
    ``threshold_unit`` is how its thresholds are built (the cost model's
    choice; :func:`default_threshold_unit` when not given). Kinds without
    memories have none."""
    fn = LAYOUTS.get(layer.kind)
    return fn(layer, threshold_unit or default_threshold_unit(layer)) if fn else ()


def _layer_thresholds(layer, channels: int, in_lo: int, in_hi: int, unit: str) -> tuple[MemoryLayout, ...]:
    if layer.thresholds is None or not layer.thresholds.shape[1]:
        return ()
    if getattr(layer, "requant", None) is not None:
        style = ram_style(getattr(layer, "threshold_mem_style", layer.mem_style))
        return requant_memories(layer.requant, pe=layer.pe, cf=channels // layer.pe, style=style)
    steps = int(layer.thresholds.shape[1])
    bits = threshold_element(layer.thresholds, in_lo, in_hi, unit).bits
    style = ram_style(getattr(layer, "threshold_mem_style", layer.mem_style))
    return threshold_memories(unit, pe=layer.pe, cf=threshold_rows(layer, channels), steps=steps, bits=bits, style=style)


def _acc_bounds(layer) -> tuple[int, int]:
    return layer.acc_range if layer.acc_range is not None else (layer.acc_type.min, layer.acc_type.max)


@layout("MVAU")
def _mvau(layer: hw.MVAU, unit: str) -> tuple[MemoryLayout, ...]:
    weights = weight_memory(pe=layer.pe, word_elements=layer.simd, depth=layer.weight_depth,
                            w_bits=layer.weight_type.bits, style=ram_style(layer.mem_style))
    return (weights,) + _layer_thresholds(layer, layer.mh, *_acc_bounds(layer), unit)


@layout("VVAU")
def _vvau(layer: hw.VVAU, unit: str) -> tuple[MemoryLayout, ...]:
    weights = weight_memory(pe=layer.pe, word_elements=layer.window, depth=layer.channel_folds,
                            w_bits=layer.weight_type.bits, style=ram_style(layer.mem_style))
    return (weights,) + _layer_thresholds(layer, layer.channels, *_acc_bounds(layer), unit)


@layout("Thresholding")
def _thresholding(layer: hw.Thresholding, unit: str) -> tuple[MemoryLayout, ...]:
    if layer.is_identity:
        return ()  # a wire (the generated code stores no thresholds)
    return _layer_thresholds(layer, layer.channels, layer.in_type.min, layer.in_type.max, unit)


@layout("ConvolutionInputGenerator", "StreamingMaxPool", "Pool")
def _window(layer, unit: str) -> tuple[MemoryLayout, ...]:
    if getattr(layer, "is_global", False):
        acc = layer.acc_type or layer.out_type
        return (running_values(pe=layer.pe, cf=layer.channel_folds, bits=acc.bits, style=ram_style(layer.mem_style)),)
    lanes = layer.simd * layer.pe
    return (line_buffer(rows=layer.buffer_rows, row_words=layer.row_words, word_bits=lanes * layer.in_type.bits,
                        style=ram_style(layer.mem_style)),)


@layout("Elementwise")
def _elementwise(layer: hw.Elementwise, unit: str) -> tuple[MemoryLayout, ...]:
    if constant_pattern(layer) in ("none", "scalar"):
        return ()
    rows = constant_rows(layer)
    p = np.asarray(layer.param)
    if p.dtype.kind == "f" and not np.all(np.isfinite(p)):
        bits = 32  # a float constant: the host's, stored as float32
    else:
        values = [int(v) for v in (np.round(p).astype(np.int64) if p.dtype.kind == "f" else p).flat]
        bits = hw.StreamType.for_range(min(values), max(values)).bits
    return (constant_operand(lanes=layer.pe, rows=rows, bits=bits, style=ram_style(layer.mem_style)),)


@layout("GateMul")
def _gate_mul(layer: hw.GateMul, unit: str) -> tuple[MemoryLayout, ...]:
    return (gate_buffer(pe=layer.pe, cf=layer.channel_folds, bits=layer.gate_type.bits, style=ram_style(layer.mem_style)),)


def constant_pattern(layer: hw.Elementwise) -> str:
    """How an elementwise layer's constant operand is stored: ``none``,
    ``scalar`` (one value, hard-wired), ``channel`` (one value per channel:
    channels/PE words) or ``element`` (one value per stream word)."""
    if layer.param is None or layer.op == "RoundClip":
        return "none"
    p = np.asarray(layer.param)
    full = np.broadcast_to(p.reshape((1,) * (len(layer.out_shape) - p.ndim) + p.shape), layer.out_shape)
    flat = full.reshape(-1, layer.channels)
    if np.all(flat == flat.reshape(-1)[0]):
        return "scalar"
    return "channel" if np.all(flat == flat[0]) else "element"


def constant_rows(layer: hw.Elementwise) -> int:
    """Words of the constant operand of an elementwise layer as stored (see
    :func:`constant_pattern`; 0 without one)."""
    pattern = constant_pattern(layer)
    return {"none": 0, "scalar": 1, "channel": layer.channel_folds, "element": layer.pixels * layer.channel_folds}[pattern]


__all__ = [
    "Memory", "MemoryLayout", "map_memory", "bram18_finn", "uram_count", "finn_least_waste", "price", "built_style",
    "weight_memory", "threshold_memories", "requant_params", "requant_memories", "threshold_levels", "line_buffer", "running_values",
    "gate_buffer", "constant_operand",
    "threshold_element", "shares_threshold_row", "threshold_rows", "default_threshold_unit", "layer_memories", "layout", "LAYOUTS", "constant_pattern", "constant_rows",
    "RAM_STYLE_OF_MEM_STYLE", "MEM_STYLE_OF_RAM_STYLE", "STORAGE_IMPL", "ram_style", "storage_impl",
]  # fmt: skip

"""Cost of the streaming layers: elementwise operations, pooling, padding,
sliding windows, FIFOs, width converters and lookups, FINN's published
formulas (``mode="finn"``) and the refined model (section numbers refer to
docs/research/fpga_cost_and_hls.md; see :mod:`sira.cost`)."""

from __future__ import annotations

import math
from dataclasses import replace

from . import memory as M
from .cost_result import UNKNOWN, Amount, Cost, check_mode, finn_zero, refined_cost, resolve_part, stored
from .devices import Part
from .errors import SiraError
from .formulas import evaluate as _ev
from .memory import bram18_finn, map_memory
from .multipliers import Multiply, adder_tree, multiply


# --------------------------------------------------------------------------
# Elementwise
# --------------------------------------------------------------------------

_ADD = {"Add", "Sub"}
_MINMAX = {"Max", "Min", "Maximum", "Minimum"}
_COMPARE = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"}
_BITWISE = {"And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor"}


def elementwise_binary(op: str, *, lhs_bits: int, rhs_bits: int, out_bits: int, pe: int = 1,
                       const_elements: int = 0, lhs_signed: bool = True, rhs_signed: bool = True,
                       mode: str = "refined", part: Part | str | None = None,
                       res_type: str = "auto", ram_style: str = "auto") -> Cost:
    """ElementwiseBinary ``op`` on two operands, P lanes.

    finn mode — §1.5: FINN (custom/SIRA) has no estimate: 0.

    refined mode — §6.3, per lane ×P: Add/Sub out_bits LUT; Mul a fabric or
    DSP multiply (:func:`multiply`); Min/Max cmp + out_bits mux; comparisons
    cmp; bitwise ⌈bits/3⌉. cmp is var-var ⌈2n/3⌉, or var-const ⌈n/2⌉ for a
    scalar constant operand (``const_elements`` = 1). A constant operand with
    more elements is stored, one memory per lane (rhs_bits × const_elements/P,
    :func:`sira.memory.constant_operand`).
    Ops without a formula (Div, float ops) cost UNKNOWN LUTs.
    """
    check_mode(mode)
    if mode == "finn":
        return finn_zero("ElementwiseBinary")
    p = resolve_part(part)
    bits = max(lhs_bits, rhs_bits)
    cmp_key = "prim.cmp_const" if const_elements == 1 else "prim.cmp_var"
    mults: tuple[Multiply, ...] = ()
    dsp = 0
    if op in _ADD:
        breakdown: dict[str, Amount] = {"adders": pe * _ev("prim.add", n=out_bits)}
    elif op == "Mul":
        m = multiply(lhs_bits, rhs_bits, p, count=pe, binding=res_type, w_signed=lhs_signed,
                     a_signed=rhs_signed, name=f"{op} lhs x rhs")
        mults, dsp = (m,), m.dsp * m.count
        breakdown = {"multipliers": m.lut * m.count}
    elif op in _MINMAX:
        breakdown = {"comparators": pe * _ev(cmp_key, n=bits), "muxes": pe * out_bits}
    elif op in _COMPARE:
        breakdown = {"comparators": pe * _ev(cmp_key, n=bits)}
    elif op in _BITWISE:
        breakdown = {"logic": pe * _ev("prim.bitwise", n=bits)}
    else:
        breakdown = {"arithmetic": UNKNOWN}
    bram = uram = 0
    if const_elements > 1:
        layout = M.constant_operand(lanes=pe, rows=math.ceil(const_elements / pe), bits=rhs_bits, style=ram_style)
        mem = M.price(layout, p)
        breakdown["const_memory"] = mem.lut
        bram, uram = mem.bram18, mem.uram
        return replace(refined_cost("ElementwiseBinary", breakdown, dsp, bram, uram, mults), storage=stored(param=mem))
    return refined_cost("ElementwiseBinary", breakdown, dsp, bram, uram, mults)


def add_streams(*, in_bits: int, out_bits: int, pe: int = 1, mode: str = "refined",
                part: Part | str | None = None) -> Cost:
    """AddStreams (two streams added lane-wise). finn mode: 0 (no FINN
    estimate, §1.6). refined: out_bits LUT per lane (§6.3 ElementwiseBinary Add)."""
    check_mode(mode)
    if mode == "finn":
        return finn_zero("AddStreams")
    cost = elementwise_binary("Add", lhs_bits=in_bits, rhs_bits=in_bits, out_bits=out_bits, pe=pe, part=part)
    return refined_cost("AddStreams", dict(cost.breakdown))


def duplicate_streams(*, mode: str = "refined") -> Cost:
    """DuplicateStreams: fan-out of one stream to several. finn mode: 0 (no
    FINN estimate, §1.6). refined: free wiring (0, marked ``free``)."""
    check_mode(mode)
    if mode == "finn":
        return finn_zero("DuplicateStreams")
    return Cost("DuplicateStreams", "refined", 0, 0, 0, 0, {"wiring": 0},
                note="stream fan-out is wiring", free=True)


# --------------------------------------------------------------------------
# Pooling and padding
# --------------------------------------------------------------------------

#: Control LUTs of StreamingMaxPool: §6.3 gives ~100–300; the midpoint, uncalibrated.
MAXPOOL_CONTROL_LUT = 200


def _pool_buffer(kernel: int, stride: int | None, ifm_dim: int, channels: int, pe: int, a_bits: int,
                 ram_style: str) -> M.MemoryLayout:
    """The line buffer of a square pooling window as the generated code
    builds it: a ring of k + stride rows of W_in·C/PE words of PE·A bits."""
    return M.line_buffer(rows=kernel + (kernel if stride is None else stride), row_words=ifm_dim * channels // pe,
                         word_bits=pe * a_bits, style=ram_style)


def streaming_maxpool(*, kernel: int, ifm_dim: int, channels: int, pe: int, a_bits: int, dims: int = 2,
                      stride: int | None = None, mode: str = "refined", part: Part | str | None = None,
                      ram_style: str = "auto", buffer: M.MemoryLayout | None = None) -> Cost:
    """StreamingMaxPool, k×k window (k per dimension, ``dims`` dimensions).

    finn mode: 0 (no FINN estimate, §1.6). refined — §6.3: per PE, per
    window dimension (k−1)·(cmp(A) + A-bit mux); the line buffer as built
    (``buffer``, by default a ring of k + stride rows of W_in·C/PE words of
    A·PE bits, stride defaulting to k; map_memory); ~200 LUT control.
    """
    check_mode(mode)
    if mode == "finn":
        return finn_zero("StreamingMaxPool")
    per_pe = dims * (kernel - 1) * (_ev("prim.cmp_var", n=a_bits) + a_bits)
    buffer = buffer or _pool_buffer(kernel, stride, ifm_dim, channels, pe, a_bits, ram_style)
    mem = M.price(buffer, part)
    breakdown = {"control": MAXPOOL_CONTROL_LUT, "comparators_muxes": pe * per_pe, "line_buffer": mem.lut}
    return replace(refined_cost("StreamingMaxPool", breakdown, 0, mem.bram18, mem.uram), storage=stored(line_buffer=mem))


def global_pool(*, channels: int, pe: int, acc_bits: int, function: str = "sum", mode: str = "refined",
                part: Part | str | None = None, ram_style: str = "auto") -> Cost:
    """Global pooling on a streamed image: per PE one running value updated
    as the pixels arrive (an ``acc_bits`` adder for "sum", a comparator and
    mux for "max"), the C/PE running values of each lane in a memory of its
    own, acc_bits × C/PE (:func:`sira.memory.running_values`, map_memory).
    finn mode: 0 (no FINN estimate, §1.6)."""
    check_mode(mode)
    if mode == "finn":
        return finn_zero("Pool")
    if function == "sum":
        per_pe = _ev("prim.add", n=acc_bits)
    elif function == "max":
        per_pe = _ev("prim.cmp_var", n=acc_bits) + acc_bits
    else:
        raise SiraError(f"unknown pool function '{function}'; use max or sum")
    mem = M.price(M.running_values(pe=pe, cf=channels // pe, bits=acc_bits, style=ram_style), part)
    breakdown = {"running_values": pe * per_pe, "value_memory": mem.lut}
    return replace(refined_cost("Pool", breakdown, 0, mem.bram18, mem.uram), storage=stored(running_values=mem))


def pool(*, function: str, window: int, pe: int, a_bits: int, mode: str = "refined",
         part: Part | str | None = None, buffer: M.MemoryLayout | None = None) -> Cost:
    """Pool over a window of ``window`` elements per channel. finn mode: 0
    (no FINN estimate, §1.6). refined, per PE from the §6.2 primitives:
    "max" (window−1)·(cmp(A) + A mux); "sum" adder tree(window, A); "avg"
    the sum plus a division by the window size, free (a shift) for a power
    of two, UNKNOWN otherwise (no formula in the notes); plus ``buffer``,
    the line buffer of a pool that reads the image itself (none after a
    sliding window generator).
    """
    check_mode(mode)
    if mode == "finn":
        return finn_zero("Pool")
    if window == 1:
        return Cost("Pool", mode, 0, 0, 0, 0, {"wiring": 0}, note="a one-element window passes its input through", free=True)
    if function == "max":
        breakdown: dict[str, Amount] = {"comparators_muxes": pe * (window - 1) * (_ev("prim.cmp_var", n=a_bits) + a_bits)}
    elif function in ("sum", "avg"):
        breakdown = {"adder_tree": pe * adder_tree(window, a_bits)}
        if function == "avg":
            breakdown["divide"] = 0 if window & (window - 1) == 0 else UNKNOWN
    else:
        raise SiraError(f"unknown pool function '{function}'; use max, sum or avg")
    if buffer is None:
        return refined_cost("Pool", breakdown)
    mem = M.price(buffer, part)
    breakdown["line_buffer"] = mem.lut
    return replace(refined_cost("Pool", breakdown, 0, mem.bram18, mem.uram), storage=stored(line_buffer=mem))


def fmpadding(*, simd: int, a_bits: int, mode: str = "refined") -> Cost:
    """FMPadding. finn mode: 0 (no FINN estimate, HLS or RTL, §1.6).
    refined — §6.3: counters plus a zero-mux on the SIMD·A-bit word,
    ⌈SIMD·A/2⌉ + 50 LUT (uncalibrated)."""
    check_mode(mode)
    if mode == "finn":
        return finn_zero("FMPadding")
    return refined_cost("FMPadding", {"mux_control": _ev("refined.fmpadding", Q=simd, A=a_bits)})


# --------------------------------------------------------------------------
# Structural layers: sliding window, FIFO, DWC, Lookup (§1.6; refined reuses them)
# --------------------------------------------------------------------------


def _depth_to_ram_width(depth: int) -> int:
    """FINN's sliding-window RAM width for a buffer depth (§1.6)."""
    for limit, width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= limit:
            return width
    return 1


def _structural(kind, mode, lut, dsp, bram, uram, breakdown, note="") -> Cost:
    if mode == "finn":
        return Cost(kind, "finn", lut, dsp, bram, uram, breakdown, note=note)
    return refined_cost(kind, breakdown, dsp, bram, uram, note=note)


def _resolve_style(ram_style: str, width: int, depth: int, mode: str) -> str:
    """In refined mode, ``auto`` follows the §6.2 shallow-memory rule."""
    if mode == "refined" and ram_style == "auto":
        return map_memory(width, depth, style="auto").style
    return ram_style


def swg_hls(*, ifm_dim: int, kernel: int, stride: int, channels: int, simd: int, a_bits: int,
            ram_style: str = "auto", mode: str = "refined", part: Part | str | None = None,
            buffer: M.MemoryLayout | None = None) -> Cost:
    """ConvolutionInputGenerator, HLS, 2-D square (§1.6).

    finn mode: buffer depth IFMDim·C/SIMD picks the RAM width (≤512→36 …
    else 1); BRAM18 (block/auto) = (K + stride)·⌈SIMD·A/ram_width⌉ (FINN's
    depth factor ⌈depth/depth⌉ is 1); LUT = 300 (+ (K+stride)·SIMD·A·⌈IFMDim·C/SIMD/64⌉
    for distributed). URAM (ultra) is UNKNOWN: the notes give no formula.

    refined: 300 LUT control plus the line buffer as the generated code
    builds it (``buffer``; by default one memory, a ring of K + stride rows
    of IFMDim·C/SIMD words of SIMD·A bits), mapped by map_memory.
    """
    check_mode(mode)
    depth = ifm_dim * channels // simd
    if mode == "refined":
        buffer = buffer or M.line_buffer(rows=kernel + stride, row_words=depth, word_bits=simd * a_bits, style=ram_style)
        mem = M.price(buffer, part)
        cost = refined_cost("ConvolutionInputGenerator", {"control": 300, "line_buffer": mem.lut}, 0, mem.bram18, mem.uram)
        return replace(cost, storage=stored(line_buffer=mem))
    values = dict(k=kernel, stride=stride, Q=simd, A=a_bits, IFMDim=ifm_dim, C=channels)
    if ram_style == "ultra":
        return Cost("ConvolutionInputGenerator", "finn", 300, 0, 0, UNKNOWN, {"control": 300},
                    note="no URAM formula for the HLS sliding window in the notes")
    lut = _ev("finn.swg_hls.lut", **values) if ram_style == "distributed" else 300
    bram = 0 if ram_style == "distributed" else _ev("finn.swg_hls.bram", k=kernel, stride=stride, b=simd * a_bits,
                                                     n=_depth_to_ram_width(depth))
    return Cost("ConvolutionInputGenerator", "finn", lut, 0, bram, 0, {"control": 300, "buffer_lutram": lut - 300})


def swg_rtl(*, buffer_depth: int, simd: int, a_bits: int, ram_style: str = "auto", mode: str = "refined") -> Cost:
    """ConvolutionInputGenerator, RTL (§1.6), given its buffer depth (default
    style: ((k_h−1)·d_h·W_in + (k_w−1)·d_w + 1)·C/SIMD plus FINN's stride
    slack, which the caller computes). Width SIMD·A. BRAM18 (block/auto) =
    ⌈width/ram_width(depth)⌉ up to depth 16384 (FINN's cascading beyond that
    is UNKNOWN here); LUT = 300 + SIMD·A·⌈depth/38⌉ (distributed) else 300;
    URAM (ultra) ⌈depth/4096⌉·⌈width/72⌉. refined: same, ``auto`` by §6.2.
    """
    check_mode(mode)
    width = simd * a_bits
    style = _resolve_style(ram_style, width, buffer_depth, mode)
    bram: Amount = 0
    uram = 0
    lut = 300
    if style == "distributed":
        lut = _ev("finn.swg_rtl.lut", Q=simd, A=a_bits, depth=buffer_depth)
    elif style == "ultra":
        uram = M.uram_count(width, buffer_depth)
    else:
        bram = math.ceil(width / _depth_to_ram_width(buffer_depth)) if buffer_depth <= 16384 else UNKNOWN
    return _structural("ConvolutionInputGenerator", mode, lut, 0, bram, uram,
                       {"control": 300, "buffer_lutram": lut - 300})


def fifo(*, depth: int, width: int, impl: str = "rtl", ram_style: str = "auto", mode: str = "refined") -> Cost:
    """StreamingFIFO (§1.6): LUT = 2·⌈log2 depth⌉ + ⌈depth/32⌉·⌈W/2⌉ (the
    second term for the RTL/SRL FIFO or a distributed Vivado FIFO); BRAM18
    by the §1.1 table for a block Vivado FIFO; URAM ⌈depth/4096⌉·⌈W/72⌉ for
    an ultra Vivado FIFO. refined: the same (structural, §6.3)."""
    check_mode(mode)
    address = _ev("finn.fifo.address", depth=depth)
    ram_luts = _ev("finn.fifo.storage", depth=depth, width=width) if (
        impl == "rtl" or ram_style == "distributed") else 0
    bram = bram18_finn(width, depth) if impl == "vivado" and ram_style == "block" else 0
    uram = M.uram_count(width, depth) if impl == "vivado" and ram_style == "ultra" else 0
    return _structural("StreamingFIFO", mode, address + ram_luts, 0, bram, uram,
                       {"address": address, "storage": ram_luts})


def _counter_luts(limit: int) -> int:
    """A wrap-around counter over ``limit`` values: one LUT per bit for the
    increment and about one per bit for its terminal compare."""
    return 2 * max(1, math.ceil(math.log2(limit))) if limit > 1 else 0


def stream_mux(kind: str, *, streams: int, word_bits: int, fold: int, mode: str = "refined") -> Cost:
    """Concat (``streams`` inputs multiplexed onto one output) or Split (one
    input whose words go to ``streams`` outputs), as the generated kernel
    builds them: one flattened II=1 loop whose counters walk the current
    stream's ``fold`` words and the stream index. finn mode: 0 (FINN has no
    estimate for its StreamingConcat/Split). refined: the counters, plus for
    Concat a ``streams``:1 multiplexer per output word bit (a LUT6 is a 4:1
    multiplexer, so a chain takes ceil((n - 1) / 3) of them per bit) and for
    Split one write enable per output; a Split's data is wired to every
    output. Structural, from the kernel's logic, not calibrated."""
    check_mode(mode)
    if mode == "finn":
        return finn_zero(kind)
    counters = _counter_luts(fold) + _counter_luts(streams)
    if kind == "Concat":
        select = word_bits * math.ceil((streams - 1) / 3)
    else:
        select = streams
    return refined_cost(kind, {"counters": counters, "select": select},
                        note="structural estimate of the kernel's counters and stream select")


def dwc(*, in_width: int, out_width: int, mode: str = "refined") -> Cost:
    """StreamingDataWidthConverter (§1.6): via the intermediate width
    lcm(in, out); each step that changes width costs a ⌈log2 ratio⌉-bit
    counter plus the width it produces (control-set cost). Equal widths are
    a pass-through (free in refined mode). refined: the same (§6.3)."""
    check_mode(mode)
    mid = math.lcm(in_width, out_width)
    counters = control = 0
    for a, b in ((in_width, mid), (mid, out_width)):
        if a != b:
            counters += math.ceil(math.log2(max(a, b) / min(a, b)))
            control += b
    breakdown = {"counters": counters, "control_sets": control}
    if mode == "refined" and in_width == out_width:
        return Cost("StreamingDataWidthConverter", "refined", 0, 0, 0, 0, breakdown,
                    note="equal widths: pass-through wiring", free=True)
    return _structural("StreamingDataWidthConverter", mode, counters + control, 0, 0, 0, breakdown)


def lookup(*, num_embeddings: int, out_width: int, mode: str = "refined",
           part: Part | str | None = None, ram_style: str = "auto") -> Cost:
    """Lookup (embedding table), internal_embedded. finn mode — §1.6: BRAM18 =
    ⌈out_width/16⌉·⌈NumEmbeddings/1024⌉, no LUT/DSP model (0). refined: the
    table out_width × NumEmbeddings through map_memory (§6.2)."""
    check_mode(mode)
    if mode == "finn":
        bram = _ev("finn.lookup.bram", width=out_width, depth=num_embeddings)
        return Cost("Lookup", "finn", 0, 0, bram, 0, note="FINN models only the Lookup table's BRAM")
    mem = map_memory(out_width, num_embeddings, part, ram_style)
    return refined_cost("Lookup", {"table": mem.lut}, 0, mem.bram18, mem.uram)


__all__ = ["elementwise_binary", "add_streams", "duplicate_streams", "MAXPOOL_CONTROL_LUT", "streaming_maxpool",
           "global_pool", "pool", "fmpadding", "swg_hls", "swg_rtl", "fifo", "dwc", "lookup"]

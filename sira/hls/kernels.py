"""One kernel per hardware layer kind: how its stream is folded into words,
what its template is given, and what it computes (the integer reference).

Every kind registers three pure functions with :func:`kernel`:

* ``lanes(layer) -> (input lanes per stream, output lanes per stream)``:
  how many elements one stream word carries (PE or SIMD, FINN's folding;
  :func:`stream_lanes` from the layer's ``in_lanes``/``out_lanes`` unless
  the kind gives its own);
* ``context(layer, cost, ids) -> dict``: every decision the template needs,
  already made (C++ types, constants, initializers, pragmas' arguments,
  loop bounds from :mod:`sira.hw`, array shapes from the layer's memory
  layout in :mod:`sira.memory`, the one the cost model prices); the
  templates in ``sira/hls_templates/`` only loop and substitute;
* ``reference(layer, inputs) -> outputs``: the exact integer semantics of
  the generated C++ on channels-last NumPy arrays (int64, or Python ints
  beyond 62 bits), used to make the testbench's expected values and checked
  against the model itself.

Numeric conventions shared with the C++ (``sira_common.hpp``): an element of
a stream of :class:`~sira.hw.StreamType` ``t`` is ``t.bits`` wide, two's
complement when signed; a bipolar element is one bit (1 = +1, 0 = -1). A MAC
accumulates in the accumulator type the analysis proved: partial sums may
wrap around modulo ``2^bits``, the final sum is in range, so it is exact.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .. import hw
from .. import memory as M
from ..accumulation import accumulation
from ..cost import Cost
from ..errors import SiraError
from .cpp import (as_object, codec, cpp_literal, encode_codes, exact, initializer, int_ctype, layer_memory, memory_pragmas,
                  mul_impl, pack_words, port, raw_ctype, running_dependence, storage_impl, value_ctype, value_range, wide)
from .thresholds import activate, threshold_context, threshold_unit

# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Kernel:
    kind: str
    template: str
    lanes: Callable[[hw.HWLayer], tuple[tuple[int, ...], tuple[int, ...]]]
    context: Callable[..., dict]
    reference: Callable[[hw.HWLayer, Sequence[np.ndarray]], list[np.ndarray]]


KERNELS: dict[str, Kernel] = {}


def stream_lanes(layer: hw.HWLayer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Elements per word of every input and output stream of a hardware
    layer (:attr:`sira.hw.HWLayer.in_lanes`, ``out_lanes``)."""
    return tuple(layer.in_lanes for _ in layer.inputs), tuple(layer.out_lanes for _ in layer.outputs)


def kernel(kind: str, template: str, lanes: Callable = stream_lanes):
    """Register ``context`` and ``reference`` of one layer kind (decorates
    the context function; the reference is attached with ``.reference``)."""

    def wrap(context_fn):
        def set_reference(ref_fn):
            KERNELS[kind] = Kernel(kind, template, lanes, context_fn, ref_fn)
            return ref_fn

        context_fn.reference = set_reference
        return context_fn

    return wrap


def kernel_for(layer: hw.HWLayer) -> Kernel:
    k = KERNELS.get(layer.kind)
    if k is None:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}): no HLS kernel for this hardware kind")
    return k


# --------------------------------------------------------------------------
# MVAU
# --------------------------------------------------------------------------






def _mac_common(layer, in_lanes: int, channels: int, cost: Optional[Cost]) -> dict:
    itype, wtype, atype = layer.in_type, layer.weight_type, layer.acc_type
    if not itype.is_integer:
        raise SiraError(f"layer '{layer.name}' ({layer.kind}) reads a float stream; it runs on the host, not in the dataflow")
    ib = 2 if itype.kind == "bipolar" else itype.bits + (0 if itype.signed else 1)
    wb = 2 if wtype.kind == "bipolar" else wtype.bits + (0 if wtype.signed else 1)
    wbits = wtype.bits
    return {
        "in": port(itype, in_lanes),
        "out": port(layer.out_type, layer.pe),
        "acc_type": value_ctype(atype),
        "w_codec": codec(wtype),
        "w_bits": wbits,
        "w_store": f"ap_uint<{wbits}>",
        "w_raw": raw_ctype(wbits, False),
        "product_type": f"ap_int<{ib + wb}>",
        "mul_impl": mul_impl(cost),
        "pragmas": memory_pragmas("weights", partition=(1,), reshape=(3,), impl=storage_impl(cost, "weights")),
        "reps": layer.vectors,
        "iterations": layer.cycles,
        "thr": None if layer.thresholds is None else threshold_context(layer, channels, layer.pe, *layer.acc_range, cost, threshold_unit(cost)),
    }


@kernel("MVAU", "layer_mvau.hpp.j2")
def mvau_context(layer: hw.MVAU, cost: Optional[Cost]) -> dict:
    ctx = _mac_common(layer, layer.simd, layer.mh, cost)
    nf, sf = layer.neuron_folds, layer.synapse_folds
    mem = layer_memory(layer, "weights")  # one memory per PE, a word of SIMD weights per (nf, sf) step
    codes = encode_codes(layer.weights, layer.weight_type)  # (MW, MH)
    # [pe][tile = nf*SF + sf][simd] = W[sf*SIMD + s, nf*PE + pe]
    arr = np.asarray(codes, dtype=object).reshape(sf, layer.simd, nf, layer.pe).transpose(3, 2, 0, 1).reshape(mem.count, mem.depth, layer.simd)
    ctx.update(mw=layer.mw, mh=layer.mh, simd=layer.simd, pe=layer.pe, nf=nf, sf=sf, sf_last=sf - 1,
               weight_memories=mem.count, weight_depth=mem.depth, weights=initializer(arr, False))
    ctx["xnor"] = layer.xnor
    # the SIMD terms summed in partial_t, the folds in acc_t (or the popcount):
    # proven widths, exact under ap_int's wrap-around (see sira.accumulation)
    stages = accumulation(layer)
    ctx["partial_type"] = value_ctype(hw.StreamType.for_range(*stages.partial_range))
    if layer.xnor:
        # popcount of XNORs, widened by a sign bit and a doubling for 2 * popcount - MW
        bits = stages.acc_bits
        ctx.update(popcount_type=f"ap_uint<{bits}>", dot_type=f"ap_int<{max(bits, layer.mw.bit_length()) + 2}>")
    return ctx


@mvau_context.reference
def mvau_reference(layer: hw.MVAU, inputs):
    x = exact(inputs[0])
    w = exact(layer.weights)
    if wide(x, w) or layer.acc_type.bits > 62:
        acc = as_object(x) @ as_object(w)
    else:
        acc = x @ w
    return [exact(activate(acc, layer))]


# --------------------------------------------------------------------------
# VVAU
# --------------------------------------------------------------------------




@kernel("VVAU", "layer_vvau.hpp.j2")
def vvau_context(layer: hw.VVAU, cost: Optional[Cost]) -> dict:
    if layer.simd != 1:
        raise SiraError(
            f"layer '{layer.name}' (VVAU): SIMD={layer.simd} is not generated (the window arrives channel-parallel); "
            "fold this layer with PE instead (--folding with SIMD 1)"
        )
    ctx = _mac_common(layer, layer.pe, layer.channels, cost)
    k, cf = layer.window, layer.channel_folds
    mem = layer_memory(layer, "weights")  # one memory per PE, a word of the whole window per channel fold
    codes = np.asarray(encode_codes(layer.weights, layer.weight_type), dtype=object)  # (C, K)
    arr = codes.reshape(mem.depth, mem.count, k).transpose(1, 0, 2)  # [pe][cf][k]
    ctx.update(channels=layer.channels, k=k, k_last=k - 1, pe=layer.pe, cf=cf, weight_memories=mem.count,
               weight_depth=mem.depth, weights=initializer(arr, False),
               acc_pragmas=["ARRAY_PARTITION variable=acc complete dim=2"] + running_dependence("acc", cf))
    return ctx


@vvau_context.reference
def vvau_reference(layer: hw.VVAU, inputs):
    x = exact(inputs[0])  # (1, OH, OW, K*C) in (k, c) order
    k = int(math.prod(layer.kernel))
    win = x.reshape(x.shape[:-1] + (k, layer.channels))
    w = exact(layer.weights).T  # (K, C)
    if wide(win, w) or layer.acc_type.bits > 62:
        acc = np.sum(as_object(win) * as_object(w), axis=-2)
    else:
        acc = np.sum(win * w, axis=-2)
    return [exact(activate(acc, layer))]


# --------------------------------------------------------------------------
# Thresholding
# --------------------------------------------------------------------------




@kernel("Thresholding", "layer_thresholding.hpp.j2")
def thresholding_context(layer: hw.Thresholding, cost: Optional[Cost]) -> dict:
    lo, hi = value_range(layer.in_type)
    unit = threshold_unit(cost, M.default_threshold_unit(layer))
    return {
        "in": port(layer.in_type, layer.pe),
        "out": port(layer.out_type, layer.pe),
        "pe": layer.pe,
        "nf": layer.channel_folds,
        "channels": layer.channels,
        "reps": layer.pixels,
        "iterations": layer.cycles,
        # an identity is a wire: each lane passes its value on, no thresholds
        "identity": layer.is_identity,
        "thr": None if layer.is_identity else threshold_context(layer, layer.channels, layer.pe, lo, hi, cost, unit),
    }


@thresholding_context.reference
def thresholding_reference(layer: hw.Thresholding, inputs):
    return [exact(activate(inputs[0], layer))]


# --------------------------------------------------------------------------
# Elementwise and AddStreams
# --------------------------------------------------------------------------

_OPS = {
    "Add": "a + b",
    "Sub": "a - b",
    "Mul": "a * b",
    "Div": "a / b",
    "Min": "(a < b ? a : b)",
    "Max": "(a > b ? a : b)",
}


def _elementwise_param(layer: hw.Elementwise) -> tuple[np.ndarray, str]:
    """The constant operand as ``[lanes][rows]`` and the row index
    expression: one value (``0``), one per channel (``nf``) or one per
    element (``i``, the word index)."""
    p = np.asarray(layer.param)
    if p.dtype.kind == "f":
        if not np.all(np.isfinite(p)) or not np.all(p == np.round(p)):
            raise SiraError(
                f"layer '{layer.name}' (Elementwise {layer.op}): a non-integer constant on an integer stream "
                "has no integer hardware; it belongs to the host part (run sira.optimize so scales become thresholds)"
            )
        p = np.round(p).astype(np.int64)
    p = exact(p)
    shape = layer.out_shape
    full = np.broadcast_to(p.reshape((1,) * (len(shape) - p.ndim) + p.shape), shape)
    words = full.reshape(-1, layer.pe).T  # [pe][word], channels-last: word w holds elements w*PE ... w*PE + PE-1
    pattern = M.constant_pattern(layer)  # the layout the estimate prices
    if pattern == "scalar":
        return words[:1, :1], "0"
    if pattern == "channel":
        return words[:, : layer.channel_folds], "nf"
    return words, "i"


def _binary_context(layer, op: str, rhs_type: Optional[hw.StreamType], param, row: str, cost: Optional[Cost]) -> dict:
    a_lo, a_hi = value_range(layer.in_type)
    if param is not None:
        b_lo, b_hi = int(np.min(param)), int(np.max(param))
    elif rhs_type is not None:
        b_lo, b_hi = value_range(rhs_type)
    else:
        b_lo = b_hi = 0
    # RoundClip writes op_t(clip_lo) and op_t(clip_hi): the type holds them too
    corners = [a_lo, a_hi, b_lo, b_hi] + ([layer.clip_lo, layer.clip_hi] if op == "RoundClip" else [])
    if op == "Mul":
        corners += [x * y for x in (a_lo, a_hi) for y in (b_lo, b_hi)]
    elif op in ("Add", "Sub"):
        corners += [a_lo + b_lo, a_hi + b_hi, a_lo - b_hi, a_hi - b_lo]
    op_type, _, _ = int_ctype(min(corners) - 1, max(corners) + 1)
    ctx: dict[str, Any] = {
        "op_name": op,
        "in": port(layer.in_type, layer.pe),
        "in_ports": [port(layer.in_type, layer.pe)],
        "out": port(layer.out_type, layer.pe),
        "pe": layer.pe,
        "nf": layer.channel_folds,
        "channels": layer.channels,
        "reps": layer.pixels,
        "iterations": layer.cycles,
        "op_type": op_type,
        "op_pragmas": [f"BIND_OP variable=r op=mul impl={mul_impl(cost)}"] if op == "Mul" else [],
        "pragmas": [],
        "rhs_expr": "op_t(0)",
        "rhs": None,
        "param": None,
    }
    if op == "RoundClip":
        ctx["expr"] = f"(a < {cpp_literal(layer.clip_lo, True)} ? op_t({cpp_literal(layer.clip_lo, True)}) : (a > {cpp_literal(layer.clip_hi, True)} ? op_t({cpp_literal(layer.clip_hi, True)}) : a))"
    else:
        ctx["expr"] = _OPS[op]
    if rhs_type is not None and param is None:
        ctx["rhs"] = port(rhs_type, layer.pe)
        ctx["in_ports"].append(ctx["rhs"])
        ctx["rhs_expr"] = f"rhs_c::decode(sira::lane<{rhs_type.bits}>(z, p))"
    elif param is not None:
        ctype, bits, signed = int_ctype(int(np.min(param)), int(np.max(param)))
        lane = "p" if param.shape[0] > 1 else "0"
        ctx["param"] = {"ctype": ctype, "raw": raw_ctype(bits, signed), "lanes": param.shape[0], "rows": param.shape[1], "init": initializer(param, True)}
        ctx["rhs_expr"] = f"op_t(param_t(param[{lane}][{row}]))"
        ctx["pragmas"] = memory_pragmas("param", partition=(1,), impl=storage_impl(cost, "param"))
    return ctx


@kernel("Elementwise", "layer_elementwise.hpp.j2")
def elementwise_context(layer: hw.Elementwise, cost: Optional[Cost]) -> dict:
    if not (layer.in_type.is_integer and layer.out_type.is_integer):
        raise SiraError(f"layer '{layer.name}' (Elementwise {layer.op}) works on float values; it runs on the host, not in the dataflow")
    if layer.op == "RoundClip":
        return _binary_context(layer, "RoundClip", None, None, "0", cost)
    if layer.param is not None:
        param, row = _elementwise_param(layer)
        return _binary_context(layer, layer.op, None, param, row, cost)
    return _binary_context(layer, layer.op, layer.rhs_type, None, "0", cost)


def _apply(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op == "Add":
        return a + b
    if op == "Sub":
        return a - b
    if op == "Mul":
        return a * b
    if op == "Div":
        q = as_object(a) // as_object(b)
        r = as_object(a) - q * as_object(b)
        if np.any(r != 0):
            raise SiraError("integer Div with a remainder: the division is not exact on this input")
        return q
    if op == "Min":
        return np.minimum(a, b)
    if op == "Max":
        return np.maximum(a, b)
    raise SiraError(f"unknown elementwise op {op}")


@elementwise_context.reference
def elementwise_reference(layer: hw.Elementwise, inputs):
    a = exact(inputs[0])
    if layer.op == "RoundClip":
        return [np.clip(a, layer.clip_lo, layer.clip_hi)]
    if layer.param is not None:
        p = np.asarray(layer.param)
        b = exact(np.round(p).astype(np.int64) if p.dtype.kind == "f" else p)
    else:
        b = exact(inputs[1])
    if wide(a, b):
        a, b = as_object(a), as_object(b)
    return [exact(_apply(layer.op, a, b))]


@kernel("AddStreams", "layer_elementwise.hpp.j2")
def add_streams_context(layer: hw.AddStreams, cost: Optional[Cost]) -> dict:
    return _binary_context(layer, "Add", layer.in_type2, None, "0", cost)


@add_streams_context.reference
def add_streams_reference(layer: hw.AddStreams, inputs):
    a, b = exact(inputs[0]), exact(inputs[1])
    return [exact(as_object(a) + as_object(b)) if wide(a, b) else a + b]


# --------------------------------------------------------------------------
# padding, sliding window, pooling
# --------------------------------------------------------------------------




@kernel("FMPadding", "layer_fmpadding.hpp.j2")
def fmpadding_context(layer: hw.FMPadding, cost: Optional[Cost]) -> dict:
    t = layer.out_type
    if not (t.min <= layer.value <= t.max) or (t.kind == "bipolar" and layer.value not in (-1, 1)):
        raise SiraError(f"layer '{layer.name}' (FMPadding): pad value {layer.value} is not a value of the {t.name} stream")
    h, w = layer.in_shape[1:3]
    pt, pl, pb, pr = layer.padding
    word = pack_words(np.full(layer.simd, layer.value), t, layer.simd)[0]
    return {
        "in": port(layer.in_type, layer.simd),
        "out": port(t, layer.simd),
        "recode": layer.in_type != t,
        "ih": h, "iw": w, "oh": h + pt + pb, "ow": w + pl + pr, "pad_top": pt, "pad_left": pl,
        "rows_end": pt + h, "cols_end": pl + w, "iterations": layer.cycles,
        "cf": layer.channel_folds,
        "pad_word": f"0x{word:x}",
    }  # fmt: skip


@fmpadding_context.reference
def fmpadding_reference(layer: hw.FMPadding, inputs):
    pt, pl, pb, pr = layer.padding
    x = exact(inputs[0])
    return [np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=layer.value)]


#: Iterations by which, in the pipelined loop over a line buffer, the write
#: of a word must precede its next read, and a read the write that next
#: overwrites the word, for ``DEPENDENCE inter false`` to be true: more than
#: the few stages between the buffer's read and its write in the loop body.
LINE_BUFFER_SAFE_DISTANCE = 8

Window = Callable[[int], Iterator[tuple[int, int]]]


def _ring_rows(layer, window_rows: int) -> dict:
    """Bounds of the one pipelined loop over the output rows of a line
    buffer: an output row takes ``row_steps`` iterations, in the first
    ``window_row_words`` of which it emits its windows and in the first
    ``row_reads`` of which it reads the ``stride`` rows the next output row
    needs; the last output row reads the rows left (``last_reads``)."""
    rw, sh, oh = layer.row_words, layer.stride[0], layer.ofm_dim[0]
    emit = layer.window_row_words
    row_reads = sh * rw
    last_reads = (layer.ifm_dim[0] - (oh - 1) * sh - window_rows) * rw
    row_steps, last_steps = max(row_reads, emit), max(last_reads, emit)
    return {
        "row_reads": row_reads, "row_steps": row_steps, "last_reads": last_reads, "last_steps": last_steps,
        "oh_last": oh - 1, "iterations": (oh - 1) * row_steps + last_steps,
    }  # fmt: skip


def ring_distance(layer, window_rows: int, window: Window) -> Optional[int]:
    """The fewest iterations between a write and the next read of the same
    line buffer word, or a read and the next write over it, in the loop of
    :func:`_ring_rows` (``window(oy)``: the (image row, word) it reads, in
    order, for output row ``oy``); None when no word is both written and
    read there. An output row reads rows disjoint from those it writes, so
    every such pair spans two output rows: the first three show every
    distance, the later ones repeat them (the ring just turns)."""
    loop = _ring_rows(layer, window_rows)
    rows, rw, oh = layer.buffer_rows, layer.row_words, layer.ofm_dim[0]
    last_write: dict[tuple[int, int], int] = {}
    last_read: dict[tuple[int, int], int] = {}
    best: Optional[int] = None
    t, row, col = 0, window_rows, 0
    for oy in range(min(oh, 3)):
        final = oy == oh - 1
        reads = loop["last_reads"] if final else loop["row_reads"]
        emit = list(window(oy))
        for i in range(loop["last_steps"] if final else loop["row_steps"]):
            if i < len(emit):
                word = (emit[i][0] % rows, emit[i][1])
                if word in last_write:
                    best = min(best if best is not None else t, t - last_write[word])
                last_read[word] = t
            if i < reads:
                word = (row % rows, col)
                if word in last_read:
                    best = min(best if best is not None else t, t - last_read[word])
                last_write[word] = t
                col += 1
                if col == rw:
                    col, row = 0, row + 1
            t += 1
    return best


def line_buffer_pragmas(layer, cost: Optional[Cost], window_rows: int, window: Window) -> list[str]:
    """The ring's storage, and ``DEPENDENCE inter false`` when it is true.
    HLS sees a read and a write of ``rows`` at runtime indices in every
    iteration and assumes they may be the same word one iteration apart,
    which costs II=2 on a RAM. They never are within an iteration (an
    output row reads other rows than those it writes), and across
    iterations a word is written long before it is read and read long
    before it is overwritten, except in tiny images (a row of one or two
    words): the pragma is given when :func:`ring_distance` is at least
    :data:`LINE_BUFFER_SAFE_DISTANCE`."""
    lines = memory_pragmas("rows", impl=storage_impl(cost, "line_buffer"), kind="ram_2p")
    distance = ring_distance(layer, window_rows, window)
    if distance is None or distance >= LINE_BUFFER_SAFE_DISTANCE:
        lines.append("DEPENDENCE variable=rows type=inter dependent=false")
    return lines


def _swg_window(layer: hw.ConvolutionInputGenerator) -> Window:
    (kh, kw), (sh, sw), (dh, dw), ow, cf = layer.kernel, layer.stride, layer.dilation, layer.ofm_dim[1], layer.channel_folds
    return lambda oy: ((oy * sh + ky * dh, (ox * sw + kx * dw) * cf + c)
                       for ox in range(ow) for ky in range(kh) for kx in range(kw) for c in range(cf))  # fmt: skip


def _pool_window(layer) -> Window:
    (kh, kw), (sh, sw), ow, cf = layer.kernel, layer.stride, layer.ofm_dim[1], layer.channel_folds
    return lambda oy: ((oy * sh + ky, (ox * sw + kx) * cf + c)
                       for ox in range(ow) for c in range(cf) for ky in range(kh) for kx in range(kw))  # fmt: skip


@kernel("ConvolutionInputGenerator", "layer_swg.hpp.j2")
def swg_context(layer: hw.ConvolutionInputGenerator, cost: Optional[Cost]) -> dict:
    return {
        "in": port(layer.in_type, layer.simd),
        "out": port(layer.out_type, layer.simd),
        "ih": layer.ifm_dim[0], "iw": layer.ifm_dim[1], "oh": layer.ofm_dim[0], "ow": layer.ofm_dim[1],
        "kh": layer.kernel[0], "kw": layer.kernel[1], "sh": layer.stride[0], "sw": layer.stride[1],
        "dh": layer.dilation[0], "dw": layer.dilation[1], "cf": layer.channel_folds,
        "window_rows": layer.window_rows, "buffer_rows": layer.buffer_rows, "row_words": layer.row_words,
        "prefill_words": layer.prefill_words, "window_row_words": layer.window_row_words,
        "pragmas": line_buffer_pragmas(layer, cost, layer.window_rows, _swg_window(layer)),
        **_ring_rows(layer, layer.window_rows),
    }  # fmt: skip


def _windows(x: np.ndarray, kernel, stride, dilation, out_dim) -> np.ndarray:
    """(1, OH, OW, KH, KW, C) windows of a channels-last image."""
    kh, kw = kernel
    oh, ow = out_dim
    rows = []
    for ky in range(kh):
        cols = []
        for kx in range(kw):
            y0, x0 = ky * dilation[0], kx * dilation[1]
            cols.append(x[:, y0 : y0 + (oh - 1) * stride[0] + 1 : stride[0], x0 : x0 + (ow - 1) * stride[1] + 1 : stride[1], :])
        rows.append(np.stack(cols, axis=3))
    return np.stack(rows, axis=3)


@swg_context.reference
def swg_reference(layer: hw.ConvolutionInputGenerator, inputs):
    win = _windows(exact(inputs[0]), layer.kernel, layer.stride, layer.dilation, layer.ofm_dim)
    return [win.reshape(win.shape[:3] + (-1,))]


def _pool_context(layer, cost: Optional[Cost], reduce: str, acc: str) -> dict:
    combine = "(v > {0} ? v : {0})" if reduce == "max" else "{0} + v"
    is_global = getattr(layer, "is_global", False)
    # global: one loop over the pixels' words; windowed: the loop over output rows of a line buffer
    loop = {"iterations": layer.cycles} if is_global else dict(
        _ring_rows(layer, layer.kernel[0]), pragmas=line_buffer_pragmas(layer, cost, layer.kernel[0], _pool_window(layer)))
    return {
        "in": port(layer.in_type, layer.pe),
        "out": port(layer.out_type, layer.pe),
        "ih": layer.ifm_dim[0], "iw": layer.ifm_dim[1], "oh": layer.ofm_dim[0], "ow": layer.ofm_dim[1],
        "kh": layer.kernel[0], "kw": layer.kernel[1], "sh": layer.stride[0], "sw": layer.stride[1],
        "pe": layer.pe, "cf": layer.channel_folds, "buffer_rows": layer.buffer_rows, "row_words": layer.row_words,
        "prefill_words": layer.prefill_words, "window_row_words": layer.window_row_words,
        "last_pixel_word": layer.cycles - layer.channel_folds,
        "reduce": reduce, "acc_type": acc, "combine": combine.format("r[p]"), "combine_global": combine.format("r[c][p]"),
        "global_pool": is_global,
        "global_pragmas": memory_pragmas("r", partition=(2,), impl=storage_impl(cost, "running_values"), kind="ram_2p")
        + running_dependence("r", layer.channel_folds),
        **loop,
    }  # fmt: skip


@kernel("StreamingMaxPool", "layer_pool.hpp.j2")
def maxpool_context(layer: hw.StreamingMaxPool, cost: Optional[Cost]) -> dict:
    return _pool_context(layer, cost, "max", value_ctype(layer.in_type))


@maxpool_context.reference
def maxpool_reference(layer: hw.StreamingMaxPool, inputs):
    win = _windows(exact(inputs[0]), layer.kernel, layer.stride, (1, 1), layer.ofm_dim)
    return [win.max(axis=(3, 4))]


@kernel("Pool", "layer_pool.hpp.j2")
def pool_context(layer: hw.Pool, cost: Optional[Cost]) -> dict:
    acc = layer.acc_type or layer.out_type
    return _pool_context(layer, cost, "sum", value_ctype(acc))


@pool_context.reference
def pool_reference(layer: hw.Pool, inputs):
    win = _windows(exact(inputs[0]), layer.kernel, layer.stride, (1, 1), layer.ofm_dim)
    return [exact(win.sum(axis=(3, 4)))]


@kernel("GateMul", "layer_gatemul.hpp.j2")
def gate_mul_context(layer: hw.GateMul, cost: Optional[Cost]) -> dict:
    a_lo, a_hi = value_range(layer.in_type)
    g_lo, g_hi = value_range(layer.gate_type)
    corners = [a_lo, a_hi, g_lo, g_hi] + [a * g for a in (a_lo, a_hi) for g in (g_lo, g_hi)]
    op_type, _, _ = int_ctype(min(corners) - 1, max(corners) + 1)
    mem = layer_memory(layer, "gate")  # one memory per PE, a gate lane per channel fold
    return {
        "in": port(layer.in_type, layer.pe),
        "gate": port(layer.gate_type, layer.pe),
        "out": port(layer.out_type, layer.pe),
        "pe": layer.pe,
        "cf": layer.channel_folds,
        "channels": layer.channels,
        "reps": layer.pixels,
        "iterations": layer.cycles,
        "op_type": op_type,
        "mul_impl": mul_impl(cost),
        "gate_memories": mem.count,
        "gate_depth": mem.depth,
        # a gate word is written in the frame's first pass and read a whole pass of channel folds later
        "pragmas": memory_pragmas("gate", partition=(1,), impl=storage_impl(cost, "gate"), kind="ram_2p") + running_dependence("gate", layer.channel_folds),
    }


@gate_mul_context.reference
def gate_mul_reference(layer: hw.GateMul, inputs):
    x, g = exact(inputs[0]), exact(inputs[1])
    g = g.reshape((g.shape[0],) + (1,) * (x.ndim - 2) + (layer.channels,))
    if wide(x, g) or layer.out_type.bits > 62:
        return [as_object(x) * as_object(g)]
    return [x * g]


# --------------------------------------------------------------------------
# stream plumbing
# --------------------------------------------------------------------------


def _word_branches(folds: Sequence[int]) -> list[dict]:
    """Which stream word ``c`` of a pixel belongs to, as a chain of tests
    ``c < end`` (``if``, then ``else if``): the one pipelined loop of
    Concat and Split walks a pixel's words with one counter instead of a
    loop per stream inside a loop per pixel (II=1 across the streams)."""
    ends = itertools.accumulate(folds)
    return [{"branch": "if" if j == 0 else "else if", "end": end} for j, end in enumerate(ends)]


@kernel("Concat", "layer_concat.hpp.j2")
def concat_context(layer: hw.Concat, cost: Optional[Cost]) -> dict:
    folds = [c // layer.simd for c in layer.channels]
    return {
        "ins": [dict(port(t, layer.simd), **b) for t, b in zip(layer.in_types, _word_branches(folds))],
        "out": port(layer.out_type, layer.simd),
        "simd": layer.simd,
        "reps": layer.pixels,
        "words": sum(folds),
        "iterations": layer.pixels * sum(folds),
    }


@concat_context.reference
def concat_reference(layer: hw.Concat, inputs):
    return [np.concatenate([exact(x) for x in inputs], axis=-1)]


@kernel("Split", "layer_split.hpp.j2")
def split_context(layer: hw.Split, cost: Optional[Cost]) -> dict:
    folds = [c // layer.simd for c in layer.channels]
    return {
        "in": port(layer.in_type, layer.simd),
        "outs": [dict(port(layer.out_type, layer.simd), **b) for b in _word_branches(folds)],
        "simd": layer.simd,
        "reps": layer.pixels,
        "words": sum(folds),
        "iterations": layer.pixels * sum(folds),
    }


@split_context.reference
def split_reference(layer: hw.Split, inputs):
    x = exact(inputs[0])
    cuts = np.cumsum(layer.channels)[:-1]
    return list(np.split(x, cuts, axis=-1))


@kernel("Reshape", "", lambda layer: ((0,), (0,)))
def reshape_context(layer: hw.Reshape, cost: Optional[Cost]) -> dict:
    return {}


@reshape_context.reference
def reshape_reference(layer: hw.Reshape, inputs):
    return [exact(inputs[0]).reshape(layer.out_shape)]


# --------------------------------------------------------------------------
# stages the dataflow adds: fan-out and width conversion
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """One stream read by several stages (a C++ stream has one reader):
    every word goes to each of ``outputs``."""

    kind = "Duplicate"
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    type: hw.StreamType
    lanes: int
    elements: int


@dataclasses.dataclass(frozen=True)
class WidthConverter:
    """Re-folds a stream from words of ``in_lanes`` to words of
    ``out_lanes`` elements (the order of the elements is kept)."""

    kind = "WidthConverter"
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    type: hw.StreamType
    in_lanes: int
    out_lanes: int
    elements: int

    @property
    def group(self) -> int:
        """Elements the converter gathers before it writes: the least
        common multiple of the two word sizes."""
        return math.lcm(self.in_lanes, self.out_lanes)


@kernel("Duplicate", "layer_duplicate.hpp.j2", lambda d: ((d.lanes,), tuple(d.lanes for _ in d.outputs)))
def duplicate_context(node: Duplicate, cost: Optional[Cost]) -> dict:
    return {"word_bits": node.lanes * node.type.bits, "fanout": len(node.outputs), "words": node.elements // node.lanes}


@duplicate_context.reference
def duplicate_reference(node: Duplicate, inputs):
    return [inputs[0] for _ in node.outputs]


@kernel("WidthConverter", "layer_dwc.hpp.j2", lambda d: ((d.in_lanes,), (d.out_lanes,)))
def width_converter_context(node: WidthConverter, cost: Optional[Cost]) -> dict:
    group = node.group
    if node.elements % group:
        raise SiraError(f"stream '{node.inputs[0]}': {node.elements} elements cannot be re-folded from {node.in_lanes} to {node.out_lanes} lanes")
    bits = node.type.bits
    # one word read or written, or both, per step: the wider side's word count
    steps = group // min(node.in_lanes, node.out_lanes)
    return {
        "in_lanes": node.in_lanes, "out_lanes": node.out_lanes, "bits": bits, "group": group, "groups": node.elements // group,
        "in_word_bits": node.in_lanes * bits, "out_word_bits": node.out_lanes * bits, "group_bits": group * bits,
        "in_words": group // node.in_lanes, "steps": steps, "iterations": steps * (node.elements // group),
    }  # fmt: skip


@width_converter_context.reference
def width_converter_reference(node: WidthConverter, inputs):
    return [inputs[0]]


__all__ = [
    "Duplicate", "WidthConverter", "memory_pragmas",
    "KERNELS", "Kernel", "kernel_for", "codec", "value_ctype", "pack_words", "encode_codes",
    "exact", "port", "initializer", "raw_ctype", "cpp_literal",
]  # fmt: skip

"""C++ types, constants and pragmas of the generated code, and the integer
views of the values it stores (:mod:`sira.hls.kernels` builds each layer's
template context from these).

Numeric conventions shared with the C++ (``sira_common.hpp``): an element of
a stream of :class:`~sira.hw.StreamType` ``t`` is ``t.bits`` wide, two's
complement when signed; a bipolar element is one bit (1 = +1, 0 = -1).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .. import hw
from .. import memory as M
from ..cost import Cost
from ..errors import SiraError


def codec(t: hw.StreamType) -> str:
    """The ``sira_common.hpp`` codec of a stream element type."""
    if not t.is_integer:
        raise SiraError(f"no C++ integer codec for a {t.name} stream")
    if t.kind == "bipolar":
        return "sira::Bipolar"
    return f"sira::Int<{t.bits}, {'true' if t.signed else 'false'}>"


def value_ctype(t: hw.StreamType) -> str:
    """The C++ type of a decoded element (bipolar: ap_int<2> holding +-1)."""
    if t.kind == "bipolar":
        return "ap_int<2>"
    return f"ap_{'int' if t.signed else 'uint'}<{t.bits}>"


def int_ctype(lo: int, hi: int) -> tuple[str, int, bool]:
    """(ap type, bits, signed) of the narrowest type holding [lo, hi]."""
    return stored_ctype(hw.StreamType.for_range(lo, hi))


def stored_ctype(t: hw.StreamType) -> tuple[str, int, bool]:
    """(ap type, bits, signed) of an integer type."""
    return f"ap_{'int' if t.signed else 'uint'}<{t.bits}>", t.bits, t.signed


def value_range(t: hw.StreamType) -> tuple[int, int]:
    return (t.min, t.max)


def raw_ctype(bits: int, signed: bool) -> str:
    """Plain C type that stores a ``bits``-wide value for C simulation:
    g++ compiles a large ``static const`` array of these in about a second,
    where the same array of ``ap_uint`` takes minutes (the HLS build keeps
    the exact ``ap_`` type)."""
    for width in (8, 16, 32, 64):
        if bits <= width:
            return f"{'' if signed else 'u'}int{width}_t"
    raise SiraError(f"a {bits}-bit constant does not fit a 64-bit C type; narrow the layer's parameters")


def cpp_literal(v: int, signed: bool) -> str:
    v = int(v)
    if -(1 << 31) < v < (1 << 31):
        return str(v)
    if v == -(1 << 63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}{'LL' if signed else 'ULL'}"


def initializer(values: np.ndarray, signed: bool) -> str:
    """Nested C initializer ``{{1, 2}, {3, 4}}`` of an integer array."""
    arr = np.asarray(values)
    if arr.ndim == 0:
        return cpp_literal(int(arr), signed)
    flat = [cpp_literal(int(v), signed) for v in arr.reshape(-1)]
    if arr.ndim == 1:
        return "{" + ", ".join(flat) + "}"
    step = int(math.prod(arr.shape[1:]))
    return "{" + ", ".join(initializer(arr[i], signed) for i in range(arr.shape[0])) + "}" if step else "{}"


def encode_codes(values: np.ndarray, t: hw.StreamType) -> np.ndarray:
    """Element codes (the bits a stream or memory holds) of integer values."""
    v = np.asarray(values, dtype=object)
    if t.kind == "bipolar":
        return np.vectorize(lambda x: 1 if int(x) > 0 else 0, otypes=[object])(v)
    mask = (1 << t.bits) - 1
    return np.vectorize(lambda x: int(x) & mask, otypes=[object])(v)


def pack_words(values: np.ndarray, t: hw.StreamType, lanes: int) -> list[int]:
    """Stream words of a flat element sequence (element i of a word in bits
    [(i+1)W-1 : iW])."""
    codes = encode_codes(np.asarray(values).reshape(-1), t)
    if len(codes) % lanes:
        raise SiraError(f"{len(codes)} elements do not fill words of {lanes} lanes")
    words = []
    for w in range(len(codes) // lanes):
        word = 0
        for i in range(lanes):
            word |= int(codes[w * lanes + i]) << (i * t.bits)
        words.append(word)
    return words


def exact(a) -> np.ndarray:
    """Integer array: int64 when every value fits 62 bits, else Python ints."""
    arr = np.asarray(a)
    if arr.dtype == object:
        vals = [int(v) for v in arr.reshape(-1)]
        if all(-(1 << 62) < v < (1 << 62) for v in vals):
            return np.array(vals, dtype=np.int64).reshape(arr.shape)
        return arr
    return arr.astype(np.int64)


def wide(*arrays) -> bool:
    return any(np.asarray(a).dtype == object for a in arrays)


def as_object(a) -> np.ndarray:
    return np.asarray(a).astype(object)


def port(t: hw.StreamType, lanes: int) -> dict:
    """Template view of one stream: element codec, bits, lanes, word width."""
    return {"codec": codec(t), "value": value_ctype(t), "bits": t.bits, "lanes": lanes, "word_bits": lanes * t.bits}


def mul_impl(cost: Optional[Cost], default: str = "fabric") -> str:
    """``BIND_OP impl`` of a layer's multiplies, as the cost model chose."""
    if cost is None or not cost.multiplies:
        return default
    return "dsp" if cost.multiplies[0].impl == "dsp" else "fabric"


def storage_impl(cost: Optional[Cost], name: str) -> Optional[str]:
    """``BIND_STORAGE impl`` of memory ``name``, as the cost model mapped it."""
    return None if cost is None else M.storage_impl(cost.storage.get(name))


def layer_memory(layer: hw.HWLayer, name: str, unit: Optional[str] = None) -> M.MemoryLayout:
    """Memory ``name`` of ``layer``'s layout (:func:`sira.memory.layer_memories`):
    the shape the generated array takes and the cost model prices."""
    return next(m for m in M.layer_memories(layer, unit) if m.name == name)


def memory_pragmas(var: str, partition: Sequence[int] = (), reshape: Sequence[int] = (), impl: Optional[str] = None, kind: str = "rom_2p") -> list[str]:
    """``#pragma HLS`` lines of one array: dimensions split into separate
    memories (``partition``), dimensions merged into the word (``reshape``),
    and the primitive the cost model mapped it to (``impl``)."""
    lines = [f"ARRAY_PARTITION variable={var} complete dim={d}" for d in partition]
    lines += [f"ARRAY_RESHAPE variable={var} complete dim={d}" for d in reshape]
    if impl:
        lines.append(f"BIND_STORAGE variable={var} type={kind} impl={impl}")
    return lines


def running_dependence(var: str, folds: int) -> list[str]:
    """The loop-carried dependence of an array of running values indexed
    by a counter that wraps at ``folds`` (VVAU accumulators, global pooling):
    each element is read, updated and written back every ``folds``-th
    iteration, a true dependence of exactly that distance. HLS cannot see
    through the runtime index and assumes distance 1, which a RAM's
    read-modify-write cannot meet at II=1 (II=2); stated exactly, the
    distance lets it pipeline at II=1 whenever the read, update and write
    fit in ``folds`` cycles. With one fold the array is one register per
    lane and there is nothing to state."""
    if folds == 1:
        return []
    return [f"DEPENDENCE variable={var} type=inter direction=RAW distance={folds} dependent=true"]


__all__ = [
    "codec", "value_ctype", "int_ctype", "stored_ctype", "value_range", "raw_ctype", "cpp_literal", "initializer",
    "encode_codes", "pack_words", "exact", "wide", "as_object", "port", "mul_impl", "storage_impl", "layer_memory",
    "memory_pragmas", "running_dependence",
]  # fmt: skip

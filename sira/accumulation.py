"""Multi-stage accumulation of the dot-product layers (MVAU, VVAU): the
proven width of the SIMD adder tree and of the fold accumulator.

A folded dot-product unit computes each output channel's dot product of
``K`` terms in two stages. Every cycle it sums ``SIMD`` products in an adder
tree (the *partial sum* of one fold chunk, terms ``f*SIMD .. f*SIMD+SIMD-1``),
then adds that partial sum into the *fold accumulator*, which after
``SF = K / SIMD`` chunks holds the dot product. Each stage gets its own width
here, proven from the integer weights and the proven integer range of every
input element (:attr:`~sira.hw.DotProductUnit.input_bounds`):

* **Terms** — per weight ``w`` and input range ``[lo, hi]`` the exact
  interval of ``w * x`` (its ends are ``w*lo`` and ``w*hi``). An XNOR layer
  (:attr:`~sira.hw.MVAU.xnor`) counts agreements instead: the term of a +-1
  product ``p`` is the bit ``(p + 1) / 2``.
* **Adder tree** — per output channel the hull over the ``SF`` chunks of the
  exact interval of the chunk's sum (the inputs of a chunk vary
  independently, so the interval sum is attained). The tree's level ``l``
  (sums of up to ``2**l`` terms) is ``min(term bits + l, partial bits)``
  wide.
* **Fold accumulator** — the range of the complete dot product: the layer's
  proven accumulator range (``acc_range``, from the range analysis), and per
  channel the interval sum of all its terms clipped to it; for an XNOR layer
  the popcount ``(s + K) / 2`` of the +-1 sum range ``s``.

Why the narrower widths are exact although a prefix or a sub-sum may leave
them (inputs in [1, 2], weights +1 then -1: the first product reaches 2, the
sum stays in [-1, 1]): the generated code types every sum in two's-complement
``ap_int``/``ap_uint``, whose assignment wraps (``AP_WRAP``, the default
overflow mode) - it keeps the value modulo ``2**N``. Addition commutes with
reduction modulo ``2**N``, so the wrapped running sum is congruent to the
exact one modulo ``2**N``; the exact final value lies in the type's range,
``2**N`` consecutive integers that hold exactly one member of each residue
class, so the wrapped result *is* the exact value. The same argument covers
a partial sum added into an accumulator narrower than it, and the tree's
levels capped at the partial-sum width.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Callable, Optional

import numpy as np

from . import numerics as nx
from .hw import MVAU, VVAU, DotProductUnit


@dataclasses.dataclass(frozen=True)
class Accumulation:
    """The two accumulation stages of one folded dot-product layer.

    ``term_range``: hull of one term (a product, or an XNOR agreement bit);
    ``partial_lo``/``partial_hi``: per output channel the range of a chunk's
    sum of ``simd`` terms (hull over the chunks); ``acc_lo``/``acc_hi``: per
    output channel the range of the complete sum; ``acc_range``: the layer's
    accumulator range (what one register per PE must hold); ``popcount``:
    whether the sums count XNOR agreements; ``proven``: whether the terms
    come from proven per-input ranges (else from the input datatype)."""

    simd: int
    folds: int
    popcount: bool
    proven: bool
    term_range: tuple[int, int]
    partial_lo: tuple[int, ...]
    partial_hi: tuple[int, ...]
    acc_lo: tuple[int, ...]
    acc_hi: tuple[int, ...]
    acc_range: tuple[int, int]

    @property
    def term_bits(self) -> int:
        return nx.int_type_width(*self.term_range)

    @property
    def partial_range(self) -> tuple[int, int]:
        """The layer's partial-sum range: the hull over its channels."""
        return min(self.partial_lo), max(self.partial_hi)

    @property
    def partial_bits(self) -> int:
        """Width of the adder tree's result (``partial_t``)."""
        return nx.int_type_width(*self.partial_range)

    @property
    def acc_bits(self) -> int:
        """Width of the fold accumulator (``acc_t``, or the popcount)."""
        return nx.int_type_width(*self.acc_range)

    @property
    def partial_channel_bits(self) -> list[int]:
        return [nx.int_type_width(lo, hi) for lo, hi in zip(self.partial_lo, self.partial_hi)]

    @property
    def acc_channel_bits(self) -> list[int]:
        return [nx.int_type_width(lo, hi) for lo, hi in zip(self.acc_lo, self.acc_hi)]

    @property
    def tree_level_bits(self) -> tuple[int, ...]:
        """Width of every level of the SIMD adder tree (none for SIMD 1)."""
        return tree_level_bits(self.simd, self.term_bits, self.partial_bits)


def tree_level_bits(simd: int, term_bits: int, partial_bits: int) -> tuple[int, ...]:
    """Level ``l`` of a binary tree over ``simd`` terms of ``term_bits`` adds
    up to ``2**l`` terms: ``term_bits + l`` bits hold it exactly, and
    ``partial_bits`` suffice modulo ``2**partial_bits`` (see the module
    docstring), so the level is the narrower of the two."""
    widths, n, level = [], simd, 1
    while n > 1:
        widths.append(min(term_bits + level, partial_bits))
        n, level = (n + 1) // 2, level + 1
    return tuple(widths)


def chunk_ranges(term_lo: np.ndarray, term_hi: np.ndarray, simd: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column of the (K, C) term bounds, the hull over the ``K / simd``
    chunks of consecutive rows of the exact interval of the chunk's sum."""
    K, C = term_lo.shape
    lo = nx.int_sum(np.asarray(term_lo).reshape(K // simd, simd, C), axis=1)
    hi = nx.int_sum(np.asarray(term_hi).reshape(K // simd, simd, C), axis=1)
    return np.min(lo, axis=0), np.max(hi, axis=0)


# --------------------------------------------------------------------------
# the terms of each kind: (K, C) weights and input bounds, K the summed axis
# --------------------------------------------------------------------------


def _input_bounds(layer: DotProductUnit) -> tuple[np.ndarray, np.ndarray, bool]:
    """(lo, hi, proven) per input row (MVAU) or channel (VVAU): the proven
    bounds, else the input datatype's range for every element."""
    if layer.input_bounds is not None:
        return layer.input_bounds[0], layer.input_bounds[1], True
    n = layer.input_bounds_length
    t = layer.in_type
    return np.full(n, t.min, dtype=np.int64), np.full(n, t.max, dtype=np.int64), False


def _mvau_terms(layer: MVAU):
    lo, hi, proven = _input_bounds(layer)
    return layer.weights, lo.reshape(-1, 1), hi.reshape(-1, 1), proven


def _vvau_terms(layer: VVAU):
    lo, hi, proven = _input_bounds(layer)
    return layer.weights.T, lo.reshape(1, -1), hi.reshape(1, -1), proven


#: hardware kind -> (weights (K, C), input lo and hi broadcast to it, proven)
TERMS: dict[str, Callable] = {"MVAU": _mvau_terms, "VVAU": _vvau_terms}

_CACHE: "weakref.WeakKeyDictionary[DotProductUnit, Accumulation]" = weakref.WeakKeyDictionary()


def accumulation(layer: DotProductUnit) -> Optional[Accumulation]:
    """The proven stages of an integer MVAU or VVAU at its folding (SIMD),
    None for a float MAC (no integer accumulator). Layers are immutable, so
    the result is kept per layer object."""
    if layer.acc_range is None or not layer.in_type.is_integer:
        return None
    cached = _CACHE.get(layer)
    if cached is None:
        cached = _CACHE[layer] = _accumulation(layer)
    return cached


def _accumulation(layer: DotProductUnit) -> Accumulation:
    W, lo, hi, proven = TERMS[layer.kind](layer)
    K = W.shape[0]
    t_lo, t_hi = nx.int_range_product(lo, hi, W, W)
    acc_lo, acc_hi = layer.acc_range
    popcount = bool(getattr(layer, "xnor", False))
    if popcount:  # agreements: the +-1 product p counts (p + 1) / 2
        one = np.ones((), dtype=np.int64)
        t_lo, t_hi = nx.int_add(t_lo, one) // 2, nx.int_add(t_hi, one) // 2
        acc_lo, acc_hi = -((-(acc_lo + K)) // 2), (acc_hi + K) // 2
    t_lo, t_hi = np.broadcast_to(t_lo, W.shape), np.broadcast_to(t_hi, W.shape)
    p_lo, p_hi = chunk_ranges(t_lo, t_hi, layer.simd)
    c_lo = [max(int(v), acc_lo) for v in np.ravel(nx.int_sum(t_lo, axis=0))]
    c_hi = [min(int(v), acc_hi) for v in np.ravel(nx.int_sum(t_hi, axis=0))]
    return Accumulation(
        simd=int(layer.simd), folds=K // int(layer.simd), popcount=popcount, proven=proven,
        term_range=(int(np.min(t_lo)), int(np.max(t_hi))),
        partial_lo=tuple(int(v) for v in np.ravel(p_lo)), partial_hi=tuple(int(v) for v in np.ravel(p_hi)),
        acc_lo=tuple(c_lo), acc_hi=tuple(c_hi), acc_range=(int(acc_lo), int(acc_hi)),
    )  # fmt: skip


__all__ = ["Accumulation", "accumulation", "chunk_ranges", "tree_level_bits", "TERMS"]

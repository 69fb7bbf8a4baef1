"""Threshold units of the generated code, shared by MVAU, VVAU and
Thresholding: the integer reference (count of thresholds reached) and the
template context of the unit the cost model chose (linear, binary search or
hard-wired), its memories laid out by :mod:`sira.memory`; or, for a layer
built with an integer requantizer (:mod:`sira.requant`), the same count as
``clip((x * m + b) >> s, 0, steps)``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import memory as M
from ..cost import Cost
from ..errors import SiraError
from .cpp import as_object, cpp_literal, exact, initializer, int_ctype, memory_pragmas, raw_ctype, storage_impl, stored_ctype, wide


def threshold_counts(acc: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """count(acc >= t) per channel (the last axis of ``acc``)."""
    acc = exact(acc)
    t = exact(thresholds)
    if t.shape[1] == 0:
        return np.zeros(acc.shape, dtype=np.int64)
    t = np.broadcast_to(t, (acc.shape[-1], t.shape[1]))
    if wide(acc, t):
        a, tt = as_object(acc), as_object(t)
        return np.sum(a[..., None] >= tt, axis=-1).astype(np.int64)
    return np.sum(acc[..., None] >= t, axis=-1)


def activate(acc: np.ndarray, layer) -> np.ndarray:
    if layer.thresholds is None:
        return exact(acc)
    req = getattr(layer, "requant", None)
    counts = req.counts(exact(acc)) if req is not None else threshold_counts(acc, layer.thresholds)
    return layer.activation_bias + layer.activation_scale * counts


def integer_context(layer, channels: int, pe: int, cost: Optional[Cost]) -> dict:
    """The integer requantizer as a threshold unit: the active range the
    input is clamped to, its multiplier and offset per channel (``[pe][nf]``
    arrays laid out as :func:`sira.memory.requant_memories`, or constants
    when shared), the exact width of ``x * m + b`` and the shift."""
    req = layer.requant
    m_type, b_type = M.requant_params(req)
    prod, _, _ = int_ctype(*req.product_range())
    ctx: dict[str, Any] = {"shift": req.shift, "prod_type": prod, "x_type": int_ctype(req.lo, req.hi)[0],
                           "lo": cpp_literal(req.lo, True), "hi": cpp_literal(req.hi, True), "m_type": stored_ctype(m_type)[0], "b_type": stored_ctype(b_type)[0],
                           "mul_impl": "fabric", "shared": req.shared}  # fmt: skip
    if cost is not None:
        ctx["mul_impl"] = next(("dsp" if m.impl == "dsp" else "fabric" for m in cost.multiplies if m.name.startswith("accumulator x requant")), "fabric")
    if req.shared:
        ctx.update(m=cpp_literal(req.m[0], False), b=cpp_literal(req.b[0], True), pragmas=[])
        return ctx
    nf = channels // pe
    per_pe = lambda a: np.asarray(a, dtype=object).reshape(nf, pe).T  # [pe][nf], channel = nf*PE + pe
    (mem,) = M.requant_memories(req, pe=pe, cf=nf)
    pragmas = memory_pragmas("requant_m", partition=(1,), impl=storage_impl(cost, mem.name))
    pragmas += memory_pragmas("requant_b", partition=(1,), impl=storage_impl(cost, mem.name))
    ctx.update(m_raw=raw_ctype(m_type.bits, False), b_raw=raw_ctype(b_type.bits, True), m=initializer(per_pe(req.m), False),
               b=initializer(per_pe(req.b), True), pragmas=pragmas)  # fmt: skip
    return ctx


def threshold_context(layer, channels: int, pe: int, in_lo: int, in_hi: int, cost: Optional[Cost], unit: str) -> dict:
    """Threshold unit of a layer: ``unit`` is ``linear`` (compare with every
    threshold), ``binary`` (binary search over the sorted thresholds padded
    to 2^B - 1, one table per search level) or ``constant`` (one shared row,
    hard-wired)."""
    t = exact(layer.thresholds)
    steps = t.shape[1]
    nf = channels // pe
    out_lo = layer.activation_bias + min(0, layer.activation_scale * steps)
    out_hi = layer.activation_bias + max(0, layer.activation_scale * steps)
    count_bits = M.threshold_levels(steps)
    value_type, _, _ = int_ctype(out_lo, out_hi)
    ctx: dict[str, Any] = {
        "unit": unit if steps else "none",
        "pragmas": [],
        "steps": steps,
        "count_bits": count_bits,
        "bias": cpp_literal(layer.activation_bias, True),
        "scale": cpp_literal(layer.activation_scale, True),
        "value_type": value_type,
        "pe": pe,
        "nf": nf,
    }
    if not steps:
        return ctx
    if getattr(layer, "requant", None) is not None:
        ctx.update(unit="integer", integer=integer_context(layer, channels, pe, cost))
        return ctx
    if unit == "constant":
        if t.shape[0] != 1:
            raise SiraError(f"layer '{layer.name}': hard-wired thresholds need one row shared by every channel")
        row = np.sort(t[0])
        ctype, bits, signed = stored_ctype(M.threshold_element(row, in_lo, in_hi, unit))
        ctx.update(ctype=ctype, raw=raw_ctype(bits, signed), init=initializer(row, True), pragmas=memory_pragmas("thresholds", partition=(1,)))
        return ctx
    rows = M.threshold_rows(layer, channels)
    if M.shares_threshold_row(layer):  # one row shared by every channel: each PE keeps it once
        full = np.sort(t, axis=1)
        per_pe = np.broadcast_to(full, (pe, 1, steps))
        ctx.update(rows=rows, row="0")
    else:
        full = np.sort(np.broadcast_to(t, (channels, steps)), axis=1)
        per_pe = full.reshape(nf, pe, steps).transpose(1, 0, 2)  # [pe][nf][step], channel = nf*PE + pe
        ctx.update(rows=rows, row="nf")
    ctype, bits, signed = stored_ctype(M.threshold_element(full, in_lo, in_hi, unit))
    memories = M.threshold_memories(unit, pe=pe, cf=rows, steps=steps, bits=bits)
    if unit == "linear":
        pragmas = memory_pragmas("thresholds", partition=(1,), reshape=(3,), impl=storage_impl(cost, memories[0].name))
        ctx.update(ctype=ctype, raw=raw_ctype(bits, signed), init=initializer(per_pe, True), pragmas=pragmas)
        return ctx
    if unit != "binary":
        raise SiraError(f"layer '{layer.name}': unknown threshold unit '{unit}'")
    levels_n = count_bits
    size = (1 << levels_n) - 1
    never = in_hi + 1  # above every input: never fires
    padded = np.concatenate([per_pe, np.full((pe, rows, size - steps), never, dtype=np.int64)], axis=2) if size > steps else per_pe
    levels, pragmas = [], []
    for st, mem in enumerate(memories):
        # level st decides bit (levels_n-1-st) of the count: entry p holds T[(2p+1) * 2^(levels_n-st-1) - 1]
        idx = [(2 * p + 1) * (1 << (levels_n - st - 1)) - 1 for p in range(1 << st)]
        levels.append({"size": mem.depth // rows, "init": initializer(padded[:, :, idx], True)})
        pragmas += memory_pragmas(f"thresholds_l{st}", partition=(1,), impl=storage_impl(cost, mem.name))
    ctx.update(ctype=ctype, raw=raw_ctype(bits, signed), levels=levels, pragmas=pragmas)
    return ctx


def threshold_unit(cost: Optional[Cost], default: str = "linear") -> str:
    return (cost.threshold_unit if cost is not None and cost.threshold_unit else default)


__all__ = ["threshold_counts", "activate", "integer_context", "threshold_context", "threshold_unit"]

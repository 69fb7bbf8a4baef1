"""The accumulator of a MAC layer explained: the numbers behind its width.

:func:`mac_doc` is the ``mac`` section of a ``sira explain`` document (see
:mod:`sira.explain`): the dot-product length, the input interval, per output
channel the weight sums and the proven interval, the width rule with its
numbers, the A2Q and FINN widths it is compared with, and two what-ifs that
re-run the MAC's own range rule (a narrower input, the widest channel
removed), so every number is exact rather than estimated.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import numerics as nx
from ..errors import SiraError
from ..ops import Trait, ops_with

#: ops whose output is an accumulator (with constant integer weights)
MAC_OPS = ops_with(Trait.MAC)


def width_formula(lo: int, hi: int) -> str:
    """The width rule with numbers: ``bits([lo, hi]) = ... = n``."""
    lo, hi = int(lo), int(hi)
    bits = nx.int_type_width(lo, hi)
    if lo >= 0:
        return f"bits([{lo}, {hi}]) = ceil(log2({hi} + 1)) = {bits}" if hi >= 1 else f"bits([{lo}, {hi}]) = 1"
    m = max(-lo, hi + 1)
    return f"bits([{lo}, {hi}]) = 1 + ceil(log2(max({-lo}, {hi} + 1))) = 1 + ceil(log2({m})) = 1 + {(m - 1).bit_length()} = {bits}"


def a2q_formula(K: int, N: int, M: int, signed: bool, width: int) -> str:
    alpha = math.log2(K) + N + M - 1 - int(signed)
    return (
        f"alpha = log2({K}) + {N} + {M} - 1 - {int(signed)} = {alpha:.4g}; "
        f"P = ceil(alpha + 1 + log2(1 + 2^-alpha)) = {width}"
    )


def _narrower_type(dtype: str) -> Optional[tuple[str, int, int]]:
    """(name, min, max) of the integer type one bit narrower than ``dtype``
    with the same signedness, or None for one-bit types."""
    from qonnx.core.datatype import DataType

    dt = DataType[dtype]
    bits = int(dt.bitwidth())
    if bits <= 1 or not dt.is_integer():
        return None
    n = bits - 1
    if dt.signed():
        lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
        return (f"INT{n}" if n >= 2 else "1-bit signed"), lo, hi
    return ("BINARY" if n == 1 else f"UINT{n}"), 0, (1 << n) - 1



def mac_doc(model, report, node, row: dict) -> dict:
    """The ``mac`` section: see the module docstring."""
    from sira.transforms.widths import _channel_ranges, _weight_layout, popcount_high, popcount_low, range_width

    wi, W, axis = _weight_layout(node, report)
    x, y = report[row["input"]], report[row["output"]]
    xlo, xhi = x.int_bounds()
    uniform = bool(np.all(x.int_lo == xlo) and np.all(x.int_hi == xhi))
    ch_lo, ch_hi = _channel_ranges(y, axis)
    K = int(row["K"])
    popcount = row.get("accumulator") == "popcount"

    def counted(lo: int, hi: int) -> list:
        """An interval of +-1 sums as the register holds it: the popcount of an XNOR layer."""
        return [popcount_low(lo, K), popcount_high(hi, K)] if popcount else [lo, hi]

    if popcount:
        ch_lo, ch_hi = [popcount_low(v, K) for v in ch_lo], [popcount_high(v, K) for v in ch_hi]
    C = len(ch_lo)
    Wi = nx.as_int(W)
    zero = np.zeros((), dtype=Wi.dtype)
    pos = [int(v) for v in np.asarray(nx.int_sum(np.where(Wi > 0, Wi, zero), axis=0)).reshape(-1)]
    neg = [int(v) for v in np.asarray(nx.int_sum(np.where(Wi < 0, Wi, zero), axis=0)).reshape(-1)]
    sums = len(pos) == C
    channels = []
    for c in range(C):
        entry: dict[str, Any] = {"channel": c, "interval": [ch_lo[c], ch_hi[c]], "width": range_width(ch_lo[c], ch_hi[c])}
        if sums:
            p, n = pos[c], neg[c]
            entry.update(pos_sum=p, neg_sum=n, from_sums=counted(p * xlo + n * xhi, p * xhi + n * xlo))
        channels.append(entry)
    interval = [int(v) for v in row["sira_range"]]
    width = int(row["sira_width"])
    max_ch = int(np.argmax(np.asarray(ch_hi, dtype=object)))
    min_ch = int(np.argmin(np.asarray(ch_lo, dtype=object)))
    N, M, signed = int(row["N"]), int(row["M"]), bool(row["signed_input"])
    doc: dict[str, Any] = {
        "layer": row["layer"],
        "op": row["op"],
        "input": row["input"],
        "weight": row["weight"],
        "output": row["output"],
        "K": K,
        "input_interval": [xlo, xhi],
        "input_uniform": uniform,
        "input_dtype": row["input_dtype"],
        "input_dtype_source": row["input_dtype_source"],
        "weight_dtype": row["weight_dtype"],
        "channel_axis": axis,
        "channels": channels,
        "max_channel": max_ch,
        "min_channel": min_ch,
        "limiting_channel": int(row["limiting_channel"]),
        "accumulator": row.get("accumulator", "sum"),
        "interval": interval,
        "width": width,
        "dtype": row["sira_dtype"],
        "formula": width_formula(*interval),
        "tight_from_sums": bool(sums and all(ch["from_sums"] == ch["interval"] for ch in channels)),
        "factors": {"input_bits": N, "weight_bits": M, "log2_K": round(math.log2(K), 4), "signed_input": signed,
                    "sum": round(N + M + math.log2(K), 4)},  # fmt: skip
        "a2q": {"width": int(row["a2q_width"]), "dtype": row["a2q_dtype"], "formula": a2q_formula(K, N, M, signed, int(row["a2q_width"]))},
        "finn": {"range": [int(v) for v in row["finn_range"]], "width": int(row["finn_width"]), "dtype": row["finn_dtype"],
                 "formula": width_formula(*row["finn_range"])},  # fmt: skip
        "saved_vs_a2q": int(row["a2q_width"]) - width,
        "saved_vs_finn": int(row["finn_width"]) - width,
    }
    doc["what_if"] = {
        "input_one_bit_less": _what_if_narrower_input(model, report, node, wi, axis, row, width),
        "without_widest_channel": _what_if_without_channel(ch_lo, ch_hi, int(row["limiting_channel"]), width),
    }
    return doc


def float_mac_reason(report, node) -> str:
    """Why a MatMul/Gemm/Conv has no integer accumulator in the analysis."""
    ins = [i for i in node.input[:2] if i]
    consts = [i for i in ins if report[i].is_const]
    dynamic = [i for i in ins if not report[i].is_const]
    if len(consts) != 1:
        return "it has no constant weight operand (sira sizes accumulators of MACs with constant integer weights)"
    w, x = report[consts[0]], report[dynamic[0]]
    if not (w.is_scaled_int and np.all(w.int_lo == w.int_hi)) or w.zero_bias_form() is None:
        return f"its weights '{consts[0]}' are not on an integer grid (no weight quantizer)"
    if not x.is_scaled_int:
        return f"its input '{dynamic[0]}' has no integer grid (no quantizer before it, or an input range without one)"
    y = report[node.output[0]]
    reason = "; ".join(dict.fromkeys(n for n in y.notes if "scale" in n or "grid" in n))
    return reason or "the input or weight scale varies along the dot product, so no common integer grid exists"


def _what_if_narrower_input(model, report, node, wi: int, axis, row: dict, width: int) -> dict:
    """The accumulator with the input one bit narrower: same scale, every
    input element clipped to the narrower type (what a narrower saturating
    quantizer gives), through the MAC's own range rule."""
    from sira.transforms.widths import _channel_ranges, range_width

    from ..analysis import default_opset
    from ..range import ScaledIntRange
    from ..rules import RULES, RuleContext

    narrower = _narrower_type(row["input_dtype"])
    if narrower is None:
        return {"applicable": False, "reason": f"the input datatype {row['input_dtype']} has one bit"}
    name, tlo, thi = narrower
    x = report[row["input"]]
    qlo = np.minimum(np.maximum(x.int_lo, tlo), thi)
    qhi = np.minimum(np.maximum(x.int_hi, tlo), thi)
    clipped = ScaledIntRange.scaled(x.shape, nx.as_int(qlo), nx.as_int(qhi), x.scale, x.bias, exact=x.exact)
    inputs = [report[i] if i else None for i in node.input]
    inputs[1 - wi] = clipped
    y = report[row["output"]]
    ctx = RuleContext(node=node, inputs=inputs, out_shapes=[y.shape], out_datatypes=[None], opset=default_opset(model))
    try:
        out = RULES[node.op_type].fn(ctx)[0]
    except SiraError as e:
        return {"applicable": False, "reason": str(e)}
    if not out.is_scaled_int:
        return {"applicable": False, "reason": "the MAC has no integer form with that input"}
    lo, hi = _channel_ranges(out, axis)
    interval = [min(lo), max(hi)]
    new = range_width(*interval)
    return {"applicable": True, "input_dtype": name, "input_clip": [tlo, thi], "interval": interval, "width": new, "delta": new - width,
            "formula": width_formula(*interval)}  # fmt: skip


def _what_if_without_channel(ch_lo: list, ch_hi: list, limiting: int, width: int) -> dict:
    from sira.transforms.widths import limiting_channel, range_width

    if len(ch_lo) < 2:
        return {"applicable": False, "reason": "the layer has one output channel"}
    keep = [c for c in range(len(ch_lo)) if c != limiting]
    lo, hi = [ch_lo[c] for c in keep], [ch_hi[c] for c in keep]
    interval = [min(lo), max(hi)]
    new = range_width(*interval)
    return {"applicable": True, "removed_channel": limiting, "interval": interval, "width": new, "delta": new - width,
            "next_limiting_channel": keep[limiting_channel(lo, hi)], "formula": width_formula(*interval)}  # fmt: skip


__all__ = ["MAC_OPS", "width_formula", "a2q_formula", "mac_doc", "float_mac_reason"]

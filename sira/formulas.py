"""The closed-form FPGA cost formulas, written once as sympy expressions.

:data:`FORMULAS` holds FINN's published estimates (``finn.*``, section 1 of
docs/research/fpga_cost_and_hls.md), the primitives of section 6.2
(``prim.*``) and the composite terms of section 6.3 (``refined.*``).
:func:`formula` returns one for reports; :func:`evaluate` and
:func:`evaluate_rational` evaluate one exactly (integers and rationals,
``floor``/``ceiling``), so FINN's ``int(...)`` truncations are reproduced
without float rounding. Tables and branches (memory aspect ratios,
resource-style conditions) live with the code that uses them.
"""

from __future__ import annotations

import sympy as sp

_S = {n: sp.Symbol(n, integer=True, nonnegative=True) for n in (
    "P", "Q", "W", "A", "B", "T", "N", "K", "s", "acc", "width", "depth",
    "WMEM", "TMEM", "L_mult", "L_tree", "L_acc", "L_thr", "L_cmp", "c2",
    "n", "b", "k", "stride", "IFMDim", "C",
)}
P, Q, W, A, B, T, N, K, s = (_S[n] for n in ("P", "Q", "W", "A", "B", "T", "N", "K", "s"))
_acc, _width, _depth, WMEM, TMEM = (_S[n] for n in ("acc", "width", "depth", "WMEM", "TMEM"))

_C1 = sp.Rational(11, 10)

#: name -> sympy expression. ``finn.*`` are §1 (FINN), ``prim.*`` are the
#: §6.2 primitives, ``refined.*`` composite §6.3 terms.
FORMULAS: dict[str, sp.Expr] = {
    # §1.1 MVAU HLS (VVAU HLS shares the terms, §1.3)
    "finn.mvau.lut": sp.floor(300 + _C1 * P * (_S["L_mult"] + _S["L_tree"] + _S["L_acc"] + _S["L_thr"] + _S["L_cmp"]) + _S["c2"]),
    "finn.mvau.L_mult": Q * (2 * sp.ceiling((W + A) / 6) - 1) * (W + A),
    "finn.mvau.L_tree": (W + A) * (2 * Q - 1),
    "finn.mvau.L_thr": (2**B - 1) * _acc * sp.ceiling(TMEM / 64),
    "finn.vvau.L_thr": (2**B - 1) * _acc * TMEM / 64,
    "finn.mvau.L_cmp": (2**B - 1) * _acc,
    "finn.mvau.c2": P * Q * W * sp.ceiling(WMEM / 64),
    "finn.mvau.dsp": P * Q * sp.ceiling((W + A) / 48),
    "finn.vvau.dsp": P * sp.ceiling((W + A) / 48),
    # §1.2 RTL MVU / VVU
    "finn.rtl.dsp58": P * sp.ceiling(Q / 3),
    "finn.rtl.dsp48": sp.ceiling(P / 4) * Q,
    # §1.4 Thresholding HLS
    "finn.thr_hls.lut": A * P,
    "finn.thr_hls.lutram": P * A * sp.ceiling(TMEM / 64),
    "finn.thr_hls.bram": sp.ceiling(A * P / 16) * sp.ceiling(TMEM / 1024),
    # §1.6 sliding window (HLS, 2-D), FIFO, Lookup
    "finn.swg_hls.bram": (_S["k"] + _S["stride"]) * sp.ceiling(_S["b"] / _S["n"]),
    "finn.swg_hls.lut": 300 + (_S["k"] + _S["stride"]) * Q * A * sp.ceiling(_S["IFMDim"] * _S["C"] / Q / 64),
    "finn.swg_rtl.lut": 300 + Q * A * sp.ceiling(_depth / 38),
    "finn.fifo.address": 2 * sp.ceiling(sp.log(_depth, 2)),
    "finn.fifo.storage": sp.ceiling(_depth / 32) * sp.ceiling(_width / 2),
    "finn.lookup.bram": sp.ceiling(_width / 16) * sp.ceiling(_depth / 1024),
    # §6.2 primitives
    "prim.add": _S["n"],
    "prim.cmp_var": sp.ceiling(2 * _S["n"] / 3),
    "prim.cmp_const": sp.ceiling(_S["n"] / 2),
    "prim.mult_fabric": (2 * sp.ceiling((W + A) / 6) - 1) * (W + A),
    "prim.mult_fabric_narrow": sp.Min(W, A) * (sp.Max(W, A) + 1),
    "prim.lutram": _width * sp.ceiling(_depth / 64),
    "prim.uram": sp.ceiling(_width / 72) * sp.ceiling(_depth / 4096),
    "prim.popcount": N,
    "prim.bitwise": sp.ceiling(_S["n"] / 3),
    # §6.3 composites
    "refined.thr_linear": P * (N * sp.ceiling(2 * A / 3) + N + B),
    "refined.thr_binary": P * (B * sp.ceiling(2 * A / 3) + B),
    "refined.thr_const": P * sp.ceiling(sp.Min(N * A / sp.Rational(5, 2), sp.Rational(13, 10) * B * 2**sp.Max(0, A - 6))),
    "refined.fmpadding": sp.ceiling(Q * A / 2) + 50,
}


def formula(name: str) -> sp.Expr:
    """The sympy expression of a named formula (for reports)."""
    return FORMULAS[name]


def _substituted(name: str, values: dict) -> sp.Expr:
    expr = FORMULAS[name]
    return expr.xreplace({sym: sp.sympify(values[sym.name]) for sym in expr.free_symbols})


def evaluate(name: str, **values) -> int:
    """Evaluate formula ``name`` exactly; every free symbol must be given."""
    result = _substituted(name, values)
    if not result.is_integer:
        raise ValueError(f"formula {name} did not evaluate to an integer: {result}")
    return int(result)


def evaluate_rational(name: str, **values) -> sp.Rational:
    """Evaluate formula ``name`` exactly, allowing a rational result."""
    return sp.Rational(_substituted(name, values))


__all__ = ["FORMULAS", "formula", "evaluate", "evaluate_rational"]

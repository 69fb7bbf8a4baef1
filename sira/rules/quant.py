"""Quantizer rules: Quant (IntQuant), BipolarQuant, Trunc, MultiThreshold,
QuantizeLinear, DequantizeLinear.

Each quantizer starts a fresh scaled-integer form (a requantization point):
its output is ``scale * q + bias`` with ``q`` an exact integer, and the
provenance restarts with the quantizer's own scale / zero-point tensors.

Integer bounds are computed so they hold both for QONNX's mathematical
semantics (exact rationals: scale, add zero-point, clip, round with the
node's rounding mode) and for qonnx's float32 execution of it, which can
land on the other side of a rounding tie. Rounding is monotone, so the
bounds come from the input bounds alone.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange, compact
from .registry import EXACT, RuleContext, rule


def _param(ctx: RuleContext, i: int, what: str) -> np.ndarray:
    v = np.asarray(ctx.const(i, what), dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise RuleError(f"{what} contains NaN or Inf")
    return v


def _scale_param(ctx: RuleContext, i: int) -> np.ndarray:
    s = _param(ctx, i, f"scale (input {i})")
    if np.any(s <= 0):
        bad = "zero" if np.any(s == 0) else "negative"
        raise RuleError(f"scale is {bad} (min {s.min()}); a quantizer scale must be positive — re-export the model or fix the scale initializer '{ctx.input_name(i)}'")
    return s


def _bitwidth(ctx: RuleContext, i: int, lo: int = 1, hi: int = 64) -> int:
    bw = _param(ctx, i, f"bit width (input {i})")
    if bw.size != 1:
        raise RuleError("bit width must be a scalar")
    b = float(bw.reshape(-1)[0])
    if not b.is_integer() or not lo <= b <= hi:
        raise RuleError(f"bit width {b:g} is out of range; QONNX quantizers take an integer bit width in [{lo}, {hi}]")
    return int(b)


def int_limits(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """Integer clip range of a QONNX quantizer."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1 - int(narrow)


def _rounder(mode: str, as_qonnx_executes: bool = True):
    """QONNX rounding on float arrays (:func:`sira.numerics.round_floats`),
    as qonnx's execution computes it unless ``as_qonnx_executes`` is off;
    an unknown mode is the model's error."""
    try:
        nx.rounding_mode(mode)
    except ValueError as e:
        raise RuleError(f"unknown rounding_mode {mode!r}; QONNX supports {', '.join(nx.ROUNDING_MODES)}") from e
    return lambda v: nx.round_floats(v, mode, as_qonnx_executes)


def quantized_index_bounds(xlo, xhi, scale, zeropt, qmin, qmax, mode: str):
    """Bounds of ``R(clip(x/scale + zeropt, qmin, qmax))`` for x in [xlo, xhi].

    The lower bound is the smallest of the exact rational result, the
    float64 evaluation and qonnx's float32 evaluation at the float32 just
    below ``xlo`` (all monotone in x), the upper bound symmetrically: sound
    for the mathematical semantics and for float64 and float32 execution.
    """
    shape = np.broadcast_shapes(np.shape(xlo), np.shape(xhi), np.shape(scale), np.shape(zeropt))
    xlo = np.broadcast_to(np.asarray(xlo, dtype=np.float64), shape)
    xhi = np.broadcast_to(np.asarray(xhi, dtype=np.float64), shape)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), shape)
    z = np.broadcast_to(np.asarray(zeropt, dtype=np.float64), shape)
    rnd = _rounder(mode)
    exact_rnd = _rounder(mode, as_qonnx_executes=False)

    def float_path(x, dtype):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            v = x.astype(dtype) / s.astype(dtype) + z.astype(dtype)
            v = np.clip(v.astype(np.float64), qmin, qmax)
        return rnd(v)

    def exact_path(x):
        out = np.empty(shape, dtype=np.float64)
        for idx in np.ndindex(*shape):
            xv = x[idx]
            if xv == -np.inf:
                out[idx] = qmin
                continue
            if xv == np.inf:
                out[idx] = qmax
                continue
            out[idx] = nx.quantize_fraction(Fraction(float(xv)), Fraction(float(s[idx])), Fraction(float(z[idx])), qmin, qmax, mode)
        return out

    def fast_exact_path(x):
        # float64 evaluation is within a few ulps of the exact value; only
        # elements whose rounding could flip need rational arithmetic
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            v = x / s + z
        v = np.where(np.isnan(v), 0.0, v)
        width = 8 * np.finfo(np.float64).eps * (np.abs(v) + 1.0)
        with np.errstate(invalid="ignore"):
            a = exact_rnd(np.clip(v - width, qmin, qmax))
            b = exact_rnd(np.clip(v + width, qmin, qmax))
        ambiguous = (a != b) & np.isfinite(x)
        res = np.where(np.isfinite(x), a, np.where(x > 0, qmax, qmin)).astype(np.float64)
        if np.any(ambiguous):
            ex = exact_path(np.where(ambiguous, x, 0.0))
            res = np.where(ambiguous, ex, res)
        return res

    lo = np.minimum.reduce([fast_exact_path(xlo), float_path(xlo, np.float64), float_path(nx.float32_down(xlo), np.float32)])
    hi = np.maximum.reduce([fast_exact_path(xhi), float_path(xhi, np.float64), float_path(nx.float32_up(xhi), np.float32)])
    lo = np.clip(lo, qmin, qmax)
    hi = np.clip(hi, qmin, qmax)
    return nx.as_int(lo), nx.as_int(hi)


def _sources(ctx: RuleContext, *idx_and_trivial) -> frozenset:
    """Names of the given parameter inputs whose value is not trivial."""
    names = set()
    for i, trivial in idx_and_trivial:
        if ctx.has_input(i) and not np.all(np.asarray(ctx.const(i), dtype=np.float64) == trivial):
            names.add(ctx.input_name(i))
    return frozenset(names)


def _bipolar(ctx: RuleContext, x: ScaledIntRange, s: np.ndarray, z, shape, value=None) -> ScaledIntRange:
    """Output s*(+-1) - s*z as the grid q in {0, 1}: scale 2s, bias -s(1+z).

    q = [x/s + z >= 0] = floor(clip(x/s + z, -1, 0)) + 1, monotone in x."""
    xlo, xhi = (x.value, x.value) if x.is_const else (x.lo, x.hi)
    qlo, qhi = quantized_index_bounds(xlo, xhi, s, z, -1, 0, "FLOOR")
    one = np.ones((1,) * len(shape), dtype=np.int64)
    z = np.asarray(z, dtype=np.float64)
    return ScaledIntRange.scaled(
        shape,
        nx.int_add(qlo, one),
        nx.int_add(qhi, one),
        2.0 * s,
        -s * (1.0 + z),
        value=value,
        scale_sources=_sources(ctx, (1, 1.0)),
        bias_sources=_sources(ctx, (2, 0.0)) if ctx.node.op_type != "BipolarQuant" else frozenset(),
    )


@rule("Quant", "IntQuant", exactness=EXACT, handles_constants=True)
def quant_rule(ctx: RuleContext):
    """QONNX Quant: y = s*(R(clip(x/s + z, qmin, qmax)) - z).

    Exact: the integer range is the attainable one (rounding of the input
    bounds), so a narrow input range gives a narrow integer range. A 1-bit
    signed Quant is bipolar (sign at 0), as in qonnx. Scale, zero-point and
    bit width must be constants; scale must be positive, bit width in 1..64.
    """
    x = ctx.inp(0)
    s = _scale_param(ctx, 1)
    z = _param(ctx, 2, "zero-point (input 2)")
    bits = _bitwidth(ctx, 3)
    signed = ctx.flag("signed", 1)
    narrow = ctx.flag("narrow", 0)
    mode = ctx.attr("rounding_mode", "ROUND")
    shape = ctx.out_shape(0, fallback=np.broadcast_shapes(x.shape, s.shape, z.shape))
    if bits == 1 and signed:
        value = None
        if x.is_const:
            v = np.asarray(x.value, dtype=np.float32) / s.astype(np.float32) + z.astype(np.float32)
            value = ((np.where(v >= 0, 1.0, -1.0) - z) * s).astype(np.float32)
        return [_bipolar(ctx, x, compact(s, shape), compact(z, shape), shape, value)]
    qmin, qmax = int_limits(signed, narrow, bits)
    if x.is_const:
        q, value = _quantize_constant(x.value, s, z, qmin, qmax, mode)
        return [
            ScaledIntRange.on_grid(
                value, q, s, -s * z, scale_sources=_sources(ctx, (1, 1.0)), bias_sources=_sources(ctx, (2, 0.0))
            )
        ]
    qlo, qhi = quantized_index_bounds(x.lo, x.hi, compact(s, shape), compact(z, shape), qmin, qmax, mode)
    return [
        ScaledIntRange.scaled(
            shape,
            qlo,
            qhi,
            s,
            -s * z,
            scale_sources=_sources(ctx, (1, 1.0)),
            bias_sources=_sources(ctx, (2, 0.0)),
        )
    ]


def _quantize_constant(x: np.ndarray, s, z, qmin: int, qmax: int, mode: str):
    """Integers and value of a Quant on constant data (weights), computed
    with qonnx's float32 operations in qonnx's order, so the value is
    bit-identical to what qonnx's execution produces."""
    s32, z32 = s.astype(np.float32), z.astype(np.float32)
    q = _rounder(mode)(np.clip(np.asarray(x, dtype=np.float32) / s32 + z32, qmin, qmax))
    return nx.rint_int(q), ((q - z32) * s32).astype(np.float32)


@rule("BipolarQuant", exactness=EXACT, handles_constants=True)
def bipolar_quant_rule(ctx: RuleContext):
    """QONNX BipolarQuant: y = s * (+1 if x/s >= 0 else -1).

    Exact. Scaled-int as q in {0, 1} with scale 2s and bias -s.
    """
    x = ctx.inp(0)
    s = _scale_param(ctx, 1)
    shape = ctx.out_shape(0, fallback=np.broadcast_shapes(x.shape, s.shape))
    value = None
    if x.is_const:
        v = np.asarray(x.value, dtype=np.float32) / s.astype(np.float32)
        value = (np.where(v >= 0, 1.0, -1.0) * s).astype(np.float32)
    return [_bipolar(ctx, x, compact(s, shape), np.zeros((1,) * len(shape)), shape, value)]


@rule("Trunc", exactness=EXACT)
def trunc_rule(ctx: RuleContext):
    """QONNX Trunc (v1: 5 inputs, v2: 6 inputs): drop low bits of an
    integer input with the node's rounding mode (FLOOR by default).

    v1: q = R(round(x/s + z) / 2^(in-out)), y = (q - z) * s.
    v2: t = 2^round(log2(s_out/s)), q = R(clip(round(x/s + z)/t)),
        y = (q - z/t) * s_out.
    Exact: the input integer bounds are mapped through the monotone
    truncation exactly.
    """
    x = ctx.inp(0)
    s = _scale_param(ctx, 1)
    z = _param(ctx, 2, "zero-point (input 2)")
    in_bits = _bitwidth(ctx, 3)
    mode = ctx.attr("rounding_mode", "FLOOR")
    shape = ctx.out_shape(0, fallback=x.shape)
    rnd = _rounder(mode)
    # integer input index: round(x/s + z), with wide limits (no clip in Trunc's first step)
    big = 2.0**66
    ilo, ihi = quantized_index_bounds(x.lo, x.hi, compact(s, shape), compact(z, shape), -big, big, "ROUND")
    n_in = len([i for i in ctx.node.input if i])
    if n_in >= 6:
        out_scale = _scale_param(ctx, 4)
        out_bits = _bitwidth(ctx, 5)
        t = nx.trunc_step(s, out_scale)
        qmin, qmax = int_limits(ctx.flag("signed", 1), ctx.flag("narrow", 0), out_bits)
        lo = rnd(np.clip(ilo.astype(np.float64) / t, qmin, qmax))
        hi = rnd(np.clip(ihi.astype(np.float64) / t, qmin, qmax))
        scale, bias = out_scale, -out_scale * z / t
        scale_src = _sources(ctx, (4, 1.0))
    else:
        out_bits = _bitwidth(ctx, 4)
        if out_bits > in_bits:
            raise RuleError(f"output bit width {out_bits} exceeds input bit width {in_bits}")
        t = 2.0 ** (in_bits - out_bits)
        lo = rnd(ilo.astype(np.float64) / t)
        hi = rnd(ihi.astype(np.float64) / t)
        scale, bias = s, -s * z
        scale_src = _sources(ctx, (1, 1.0))
    return [
        ScaledIntRange.scaled(
            shape,
            nx.as_int(lo),
            nx.as_int(hi),
            scale,
            bias,
            scale_sources=scale_src,
            bias_sources=_sources(ctx, (2, 0.0)),
        )
    ]


def _channel_axis(ctx: RuleContext, ndim: int) -> int:
    layout = ctx.attr("data_layout", "") or ""
    if not layout and ndim < 5:
        layout = {0: "", 1: "", 2: "NC", 3: "NWC", 4: "NCHW"}[ndim]
    return layout.index("C") if "C" in layout else 1


@rule("MultiThreshold", exactness=EXACT)
def multithreshold_rule(ctx: RuleContext):
    """qonnx MultiThreshold: y = out_scale * #{i : x >= T[c, i]} + out_bias.

    Exact: the count is monotone in x, so its range is [count(lo),
    count(hi)] per element (comparisons done as qonnx does, on the stored
    thresholds: float32, or float64 when stored so for wide accumulators).
    Scaled-int with scale out_scale and bias out_bias.
    """
    x = ctx.inp(0)
    T = np.asarray(ctx.const(1, "thresholds (input 1)"))
    T = T if T.dtype == np.float64 else T.astype(np.float32)
    if T.ndim != 2:
        raise RuleError(f"thresholds must be a 2-D (channels, steps) tensor, got shape {list(T.shape)}")
    out_scale = float(ctx.attr("out_scale", 1.0))
    out_bias = float(ctx.attr("out_bias", 0.0))
    if out_scale == 0 or not np.isfinite(out_scale):
        raise RuleError("out_scale must be finite and non-zero")
    shape = ctx.out_shape(0, fallback=x.shape)
    cdim = _channel_axis(ctx, len(shape)) if len(shape) > 1 else 0
    C = shape[cdim] if shape else 1
    if T.shape[0] not in (1, C):
        raise RuleError(f"thresholds have {T.shape[0]} rows but the input has {C} channels on axis {cdim}")
    Tc = np.sort(T, axis=1).astype(np.float64)

    def counts(bound: np.ndarray, edge) -> np.ndarray:
        full_c = [1] * len(shape)
        if shape:
            full_c[cdim] = C
        b = np.broadcast_to(bound, np.broadcast_shapes(bound.shape, tuple(full_c)) if shape else bound.shape)
        b32 = edge(b)
        moved = np.moveaxis(b32, cdim, -1) if shape else b32.reshape(1)
        rows = Tc if Tc.shape[0] == C else np.broadcast_to(Tc, (C, Tc.shape[1]))
        out = np.empty(moved.shape, dtype=np.int64)
        for c in range(C):
            out[..., c] = np.searchsorted(rows[c], moved[..., c], side="right")
        return np.moveaxis(out, -1, cdim) if shape else out.reshape(())

    lo = counts(x.lo, nx.float32_down)
    hi = counts(x.hi, nx.float32_up)
    return [ScaledIntRange.scaled(shape, lo, hi, out_scale, out_bias)]


_QLINEAR_LIMITS = {
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(np.int32): (-(2**31), 2**31 - 1),
}


def _per_axis(ctx: RuleContext, v: np.ndarray, shape: tuple) -> np.ndarray:
    """Lay a 1-D per-axis parameter along the node's ``axis`` attribute."""
    if v.ndim == 0 or v.size == 1:
        return v.reshape((1,) * len(shape))
    axis = int(ctx.attr("axis", 1)) % len(shape)
    target = [1] * len(shape)
    target[axis] = v.size
    return v.reshape(target)


@rule("QuantizeLinear", exactness=EXACT)
def quantize_linear_rule(ctx: RuleContext):
    """ONNX QuantizeLinear: y = saturate(round_half_even(x/s) + zp).

    Exact. The output is an integer tensor (scale 1, bias 0), saturated to
    the zero-point's type (uint8 when absent).
    """
    x = ctx.inp(0)
    shape = ctx.out_shape(0, fallback=x.shape)
    s = _per_axis(ctx, _scale_param(ctx, 1), shape)
    zp_raw = np.asarray(ctx.const(2, "zero-point (input 2)")) if ctx.has_input(2) else np.zeros((), dtype=np.uint8)
    if zp_raw.dtype not in _QLINEAR_LIMITS:
        raise RuleError(f"zero-point type {zp_raw.dtype} is not supported (int8, uint8, int16, uint16, int32)")
    qmin, qmax = _QLINEAR_LIMITS[zp_raw.dtype]
    zp = _per_axis(ctx, zp_raw.astype(np.float64), shape)
    # round(x/s) then + zp then saturate == round(clip(x/s + zp)) for integer zp
    qlo, qhi = quantized_index_bounds(x.lo, x.hi, s, zp, qmin, qmax, "ROUND")
    return [ScaledIntRange.scaled(shape, qlo, qhi, 1.0, 0.0)]


@rule("DequantizeLinear", exactness=EXACT)
def dequantize_linear_rule(ctx: RuleContext):
    """ONNX DequantizeLinear: y = (x - zp) * s on an integer input.

    Exact: scaled-int with the input's integer range, scale s, bias -s*zp.
    """
    x = ctx.inp(0)
    shape = ctx.out_shape(0, fallback=x.shape)
    s = _per_axis(ctx, _scale_param(ctx, 1), shape)
    zp = _per_axis(ctx, np.asarray(ctx.const(2), dtype=np.float64), shape) if ctx.has_input(2) else np.zeros((1,) * len(shape))
    if x.is_scaled_int and np.all(x.scale == 1) and np.all(x.bias == 0):
        qlo, qhi = x.int_lo, x.int_hi
    else:
        qlo = nx.as_int(np.ceil(x.lo)) if np.all(np.isfinite(x.lo)) else None
        qhi = nx.as_int(np.floor(x.hi)) if np.all(np.isfinite(x.hi)) else None
        if qlo is None or qhi is None:
            raise RuleError("input is not a bounded integer tensor")
    value = None
    if x.is_const:
        value = ((np.asarray(x.value, dtype=np.float64) - zp) * s).astype(np.float32)
    return [
        ScaledIntRange.scaled(
            shape,
            qlo,
            qhi,
            s,
            -s * zp,
            value=value,
            scale_sources=_sources(ctx, (1, 1.0)),
            bias_sources=_sources(ctx, (2, 0.0)) if ctx.has_input(2) else frozenset(),
        )
    ]

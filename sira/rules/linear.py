"""Linear rules: MatMul, Gemm, Conv, ConvTranspose.

Every output element of these ops is a sum of products. With one constant
operand (the weights) the products are independent terms, so adding up the
per-term extremes gives the attained range (``lo*W+ + hi*W-`` and its
mirror): the rules are exact. Real bounds are evaluated in float64 and
widened by a rigorous bound on the rounding error of the sum.

The scaled-integer form exists when the activation is ``sA*qA + bA`` with
``sA`` constant along the contraction, and the weights are ``sW*qW`` with
``sW`` constant along the contraction (per-output-channel scales are fine):
then ``y = (sA*sW) * (qA . qW) + bA . W``. The integer range is computed
exactly (float64 BLAS only where every partial sum provably stays below
2**53, int64 below 2**62, Python integers beyond). Where the form does not
exist the output keeps its real bounds and a note says why.

Two dynamic operands (MatMul in attention) get the term-wise bound: per term
the four-corner product range, summed. That is exact for independent
operands, unlike the midpoint-radius product of the published reference (up
to 1.5x loose). A rule cannot see whether the two operands share an
ancestor, so these results are marked sound-but-loose.

Zero padding: a border output sees fewer kernel taps (the padded zeros add
nothing), so its range differs from the interior. For an input that is
uniform per channel, the distinct sets of in-bounds taps are enumerated per
spatial axis and per-channel term tables are summed over each set; the
output is per-element only where borders really differ. Per-element inputs
take a direct exact convolution (per-tap shifted slices).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange
from .registry import EXACT, RuleContext, rule

#: A bilinear map ``op(x, w)``: the linear op applied to a compact input
#: array ``x`` with weights ``w``. Works on float64, int64 and object arrays.
LinearOp = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: element budget of one term tensor for two dynamic operands
_CHUNK = 1 << 22

_CORRELATION_NOTE = (
    "both operands are computed at run time: the term-wise bound is exact for independent "
    "operands but loose if they are correlated (e.g. both derived from the same input)"
)


# --------------------------------------------------------------------------
# a linear op with constant weights
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Weights:
    """A constant operand: its real value (float64, full shape) and, where it
    lies on an integer grid with zero offset, that grid (real = scale * q)."""

    real: np.ndarray
    q: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    #: why there is no grid (empty when there is one)
    note: str = ""
    scale_sources: frozenset = frozenset()
    bias_sources: frozenset = frozenset()


def _weights(r: ScaledIntRange) -> _Weights:
    """The grid of a constant operand (e.g. the output of a weight Quant)."""
    value = np.asarray(r.const_value(), dtype=np.float64)
    if not (r.is_scaled_int and np.all(r.int_lo == r.int_hi)):
        return _Weights(value, note="the weights are not on an integer grid, so the output keeps real bounds only")
    grid = r.zero_bias_form()
    if grid is None:
        return _Weights(value, note="the weight offset (zero-point) is not a small fraction of the scale step, so the output keeps real bounds only")
    q = np.broadcast_to(grid.int_lo, r.shape)
    real = np.broadcast_to(grid.scale * q.astype(np.float64), r.shape)
    return _Weights(real, q, grid.scale, "", r.scale_sources, r.bias_sources)


def _linear_const(x: ScaledIntRange, op: LinearOp, n_terms: int, wts: _Weights, out_shape, out_scale) -> ScaledIntRange:
    """Range of ``op(x, W)`` for a dynamic ``x`` and constant weights. Exact.

    ``out_scale(x_scale, w_scale)`` returns the output scale of the integer
    form and an empty string, or None and the reason why there is none. The
    output bias is ``op(bA, W)``: with zero padding it is spatially varying
    (borders see zeros, not the input bias), which a per-element bias keeps
    exact.
    """
    if not x.is_scaled_int:
        lo, hi = x.linear_bounds(op, wts.real, n_terms)
        return ScaledIntRange.real(out_shape, lo, hi, notes=x.notes)
    scale, reason = (None, wts.note) if wts.note else out_scale(x.scale, wts.scale)
    if reason:
        lo, hi = x.linear_bounds(op, wts.real, n_terms)
        return ScaledIntRange.real(out_shape, lo, hi, notes=x.notes + (reason,))
    qlo, qhi = x.int_linear_bounds(op, wts.q, n_terms)
    sources = dict(scale_sources=x.scale_sources | wts.scale_sources, bias_sources=x.bias_sources | wts.bias_sources, notes=x.notes)
    if np.all(x.bias == 0):
        # exact integers on a zero-bias grid: the grid gives the real bounds
        rounded = not (nx.mul_is_exact(x.scale, wts.scale))
        return ScaledIntRange.scaled(out_shape, qlo, qhi, scale, 0.0, rounded=rounded, **sources)
    lo, hi = x.linear_bounds(op, wts.real, n_terms)
    return ScaledIntRange.scaled(out_shape, qlo, qhi, scale, op(x.bias, wts.real), clamp_lo=lo, clamp_hi=hi, **sources)


# --------------------------------------------------------------------------
# matrix products
# --------------------------------------------------------------------------


def _reshape(r: ScaledIntRange, shape) -> ScaledIntRange:
    return r.move(lambda a: a.reshape(shape), shape)


def _swap_last(r: ScaledIntRange) -> ScaledIntRange:
    """The range of the transpose over the last two axes."""
    shape = r.shape[:-2] + (r.shape[-1], r.shape[-2])
    return r.move(lambda a: np.swapaxes(a, -1, -2), shape)


def _matmul_const(x: ScaledIntRange, wts: _Weights, out_shape) -> ScaledIntRange:
    """x @ W for constant W. Exact."""
    k = x.shape[-1]

    def op(a, w):
        return np.matmul(np.broadcast_to(a, a.shape[:-1] + (k,)), w)

    def out_scale(sx, sw):
        if sx.shape[-1] != 1:
            return None, "the activation scale varies along the contraction axis, so it cannot be factored out of the sum"
        if sw.shape[-2] != 1:
            return None, "the weight scale varies along the contraction axis (per-input-channel weight scale), so it cannot be factored out of the sum"
        return sx * sw, ""

    return _linear_const(x, op, k, wts, out_shape, out_scale)


def _pair_terms(a_pair, b_pair, k: int, reduce):
    """``reduce`` over the term tensors of a product of two dynamic operands.

    ``a_pair`` are two arrays [..., M, K] and ``b_pair`` two arrays
    [..., K, N] (compact); ``reduce`` receives them as [..., m, K, 1] and
    [..., 1, K, N] for chunks of rows m, so that no term tensor exceeds
    _CHUNK elements, and returns two arrays summed over K; the chunk results
    are joined along M.
    """
    a_pair = np.broadcast_arrays(*a_pair)
    a_pair = [np.broadcast_to(a, a.shape[:-1] + (k,)) for a in a_pair]
    b_pair = np.broadcast_arrays(*b_pair)
    b_pair = [np.expand_dims(np.broadcast_to(b, b.shape[:-2] + (k,) + b.shape[-1:]), -3) for b in b_pair]
    rows = a_pair[0].shape[-2]
    per_row = math.prod(np.broadcast_shapes(a_pair[0].shape[:-2] + (1, k, 1), b_pair[0].shape))
    step = max(1, _CHUNK // max(per_row, 1))
    parts = [reduce([np.expand_dims(a[..., s : s + step, :], -1) for a in a_pair], b_pair) for s in range(0, rows, step)]
    return tuple(np.concatenate(p, axis=-2) for p in zip(*parts))


def _real_pair(a, b):
    tlo, thi = nx.interval_mul(a[0], a[1], b[0], b[1])
    return nx.sum_down(tlo, axis=-2), nx.sum_up(thi, axis=-2)


def _int_pair(a, b):
    tlo, thi = nx.int_range_product(a[0], a[1], b[0], b[1])
    return nx.int_sum(tlo, axis=-2), nx.int_sum(thi, axis=-2)


def _matmul_dynamic(a: ScaledIntRange, b: ScaledIntRange, out_shape) -> ScaledIntRange:
    """a @ b for two dynamic operands: per term the exact four-corner range
    of the product, summed (exact for independent operands). Integer form
    with scale sA*sB when both operands have zero-offset grids whose scales
    are constant along the contraction."""
    k = a.shape[-1]
    lo, hi = _pair_terms((a.lo, a.hi), (b.lo, b.hi), k, _real_pair)
    if not (a.is_scaled_int and b.is_scaled_int):
        return ScaledIntRange.derived(out_shape, lo, hi, (a, b), exact=False, notes=(_CORRELATION_NOTE,))
    za, zb = a.zero_bias_form(), b.zero_bias_form()
    if za is None or zb is None:
        reason = "an operand's offset (bias) is not a small fraction of its scale step, so the product has no integer form"
    elif za.scale.shape[-1] != 1 or zb.scale.shape[-2] != 1:
        reason = "an operand's scale varies along the contraction axis, so it cannot be factored out of the sum"
    else:
        qlo, qhi = _pair_terms((za.int_lo, za.int_hi), (zb.int_lo, zb.int_hi), k, _int_pair)
        grid = (nx.as_int(qlo), nx.as_int(qhi), za.scale * zb.scale, 0.0)
        return ScaledIntRange.derived(out_shape, lo, hi, (a, b), grid, exact=False, notes=(_CORRELATION_NOTE,))
    return ScaledIntRange.derived(out_shape, lo, hi, (a, b), exact=False, notes=(_CORRELATION_NOTE, reason))


def _matmul(a: ScaledIntRange, b: ScaledIntRange, out_shape) -> ScaledIntRange:
    """a @ b for operands of rank >= 2 (numpy batch broadcasting)."""
    if b.is_const:
        return _matmul_const(a, _weights(b), out_shape)
    if a.is_const:
        # A @ x = (x^T @ A^T)^T: the constant goes to the right
        swapped = tuple(out_shape[:-2]) + (out_shape[-1], out_shape[-2])
        return _swap_last(_matmul_const(_swap_last(b), _weights(_swap_last(a)), swapped))
    return _matmul_dynamic(a, b, out_shape)


def _matmul_shape(a_shape, b_shape) -> tuple:
    if a_shape[-1] != b_shape[-2]:
        raise RuleError(f"contraction sizes differ: {list(a_shape)} @ {list(b_shape)}; the last axis of A must equal the second-to-last axis of B")
    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise RuleError(f"batch axes of {list(a_shape)} and {list(b_shape)} do not broadcast") from None
    return tuple(batch) + (a_shape[-2], b_shape[-1])


@rule("MatMul", exactness=EXACT)
def matmul_rule(ctx: RuleContext):
    """ONNX MatMul (numpy semantics: 1-D operands promoted, batch axes
    broadcast).

    Exact with one constant operand (per-term extremes; integer form
    ``sA*sW`` when both scales are constant along the contraction, bias
    ``bA @ W``). Two dynamic operands: the term-wise four-corner bound,
    exact for independent operands, marked sound-but-loose because they may
    be correlated; integer form ``sA*sB`` when both have zero-offset grids.
    """
    a, b = ctx.inp(0), ctx.inp(1)
    if a.ndim == 0 or b.ndim == 0:
        raise RuleError("MatMul operands must have at least one axis")
    a2 = _reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = _reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    shape = _matmul_shape(a2.shape, b2.shape)
    y = _matmul(a2, b2, shape)
    final = shape[:-2] + shape[-2 : -1 if a.ndim > 1 else -2] + (shape[-1:] if b.ndim > 1 else ())
    return [y if final == shape else _reshape(y, final)]


def _add_bias(ctx: RuleContext, y: ScaledIntRange, i: int, factor: float, bias_shape) -> ScaledIntRange:
    """y + factor * input i (reshaped to ``bias_shape``), like an Add: a
    constant goes into the bias exactly, with its name as provenance."""
    c = ctx.inp(i)
    try:
        fits = np.broadcast_shapes(bias_shape, y.shape) == tuple(y.shape)
    except ValueError:
        fits = False
    if not fits or math.prod(bias_shape) != math.prod(c.shape):
        raise RuleError(f"the bias (input {i}, shape {list(c.shape)}) does not broadcast to the output shape {list(y.shape)}")
    if c.is_const:
        value = factor * np.asarray(c.const_value(), dtype=np.float64).reshape(bias_shape)
        return y.add_const(value, source=ctx.input_name(i), out_shape=y.shape)
    c = _reshape(c, bias_shape)
    c = c if factor == 1.0 else c.mul_const(factor)
    return y.add(c, out_shape=y.shape).loose(_CORRELATION_NOTE)


@rule("Gemm", exactness=EXACT)
def gemm_rule(ctx: RuleContext):
    """ONNX Gemm: alpha * A' @ B' + beta * C, A' = A^T if transA, B' = B^T if
    transB.

    As MatMul (exact with a constant operand); alpha scales the result
    (exact), a constant C goes into the bias like an Add of a constant
    (provenance: C's name). A dynamic C is added as a second operand.
    """
    a, b = ctx.inp(0), ctx.inp(1)
    if a.ndim != 2 or b.ndim != 2:
        raise RuleError(f"Gemm needs 2-D A and B, got shapes {list(a.shape)} and {list(b.shape)}")
    if ctx.attr("transA", 0):
        a = _swap_last(a)
    if ctx.attr("transB", 0):
        b = _swap_last(b)
    shape = _matmul_shape(a.shape, b.shape)
    y = _matmul(a, b, shape)
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    if alpha != 1.0:
        y = y.mul_const(alpha)
    if ctx.has_input(2) and beta != 0.0:
        c_shape = ctx.inp(2).shape
        y = _add_bias(ctx, y, 2, beta, (1,) * (2 - len(c_shape)) + tuple(c_shape))
    return [y]


# --------------------------------------------------------------------------
# convolutions
# --------------------------------------------------------------------------


#: index of the leading (batch, channel) axes
_NC = (slice(None), slice(None))


def _zero_pad(x: np.ndarray, before, after) -> np.ndarray:
    """Zero-pad the spatial axes (2..) of x; object arrays get Python int
    zeros (np.pad would insert numpy scalars that overflow)."""
    shape = x.shape[:2] + tuple(d + b + a for d, b, a in zip(x.shape[2:], before, after))
    out = np.zeros(shape, dtype=x.dtype)
    out[_NC + tuple(slice(b, b + d) for b, d in zip(before, x.shape[2:]))] = x
    return out


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """Shape arithmetic of a (transposed) convolution.

    Weights are always in the Conv layout (O, C/group, kernel...); a
    ConvTranspose's weights are permuted into it. Conv output position y
    reads input y*stride - pad + t*dilation through tap t; a ConvTranspose
    input position i writes output i*stride - pad + t*dilation.
    """

    c_in: int
    c_out: int
    group: int
    in_sp: tuple
    out_sp: tuple
    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple  # leading zero padding per spatial axis
    transposed: bool = False

    @property
    def cg(self) -> int:
        return self.c_in // self.group

    @property
    def og(self) -> int:
        return self.c_out // self.group

    @property
    def n_terms(self) -> int:
        return self.cg * math.prod(self.kernel)

    def tap_classes(self, d: int):
        """Distinct sets of in-bounds taps along spatial axis d (rows of a 0/1
        matrix [classes, kernel]) and the class of every output position."""
        y = np.arange(self.out_sp[d])[:, None]
        t = np.arange(self.kernel[d])[None, :]
        s, dil, pad, n = self.strides[d], self.dilations[d], self.pads[d], self.in_sp[d]
        if self.transposed:
            num = y + pad - t * dil
            valid = (num >= 0) & (num % s == 0) & (num // s < n)
        else:
            pos = y * s - pad + t * dil
            valid = (pos >= 0) & (pos < n)
        classes, inverse = np.unique(valid, axis=0, return_inverse=True)
        return classes.astype(np.int64), inverse.reshape(-1)

    def apply(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The (transposed) convolution of compact x (N', C or 1, spatial or
        1s) with weights w (O, C/group, kernel...), zero padding."""
        if all(d == 1 for d in x.shape[2:]):
            return self._apply_uniform(x, w)
        x = np.broadcast_to(x, x.shape[:1] + (self.c_in,) + tuple(self.in_sp))
        return self._apply_transposed(x, w) if self.transposed else self._apply_direct(x, w)

    def _apply_uniform(self, x, w):
        """Spatially uniform input: sum per-channel term tables over each
        class of in-bounds taps; the result is per-element only along axes
        with more than one class."""
        n = x.shape[0]
        xc = np.broadcast_to(x.reshape(n, x.shape[1]), (n, self.c_in))
        chan = (np.arange(self.c_out) // self.og)[:, None] * self.cg + np.arange(self.cg)[None, :]
        xg = xc[:, chan]  # (N', O, Cg): the input channel of each term
        table = (xg.reshape(xg.shape + (1,) * len(self.kernel)) * w[None]).sum(axis=2)
        index = [np.arange(n), np.arange(self.c_out)]
        for d in range(len(self.kernel)):
            classes, inverse = self.tap_classes(d)
            table = np.moveaxis(np.tensordot(table, classes.T.astype(table.dtype), axes=([2 + d], [0])), -1, 2 + d)
            index.append(inverse if len(classes) > 1 else np.zeros(1, dtype=np.int64))
        return table[np.ix_(*index)]

    def _grouped(self, xs, wt):
        """Channel contraction of xs (N', C, positions...) with one tap's
        weights wt (O, Cg), group by group."""
        n, sp = xs.shape[0], xs.shape[2:]
        xg = xs.reshape(n, self.group, self.cg, -1).swapaxes(2, 3)  # (N', g, P, Cg)
        wg = wt.reshape(self.group, self.og, self.cg).swapaxes(1, 2)  # (g, Cg, Og)
        y = xg * wg[None, :, :, :] if self.cg == 1 else np.matmul(xg, wg)  # (N', g, P, Og)
        return y.swapaxes(2, 3).reshape((n, self.c_out) + sp)

    def _axes(self):
        """Per spatial axis: (in, out, kernel, stride, dilation, pad)."""
        return list(zip(self.in_sp, self.out_sp, self.kernel, self.strides, self.dilations, self.pads))

    def _apply_direct(self, x, w):
        """Per tap, the strided window of the zero-padded input it reads."""
        ends = [max(0, (o - 1) * s + (k - 1) * d + 1 - i - p) for i, o, k, s, d, p in self._axes()]
        xp = _zero_pad(x, self.pads, ends)
        acc = None
        for t in np.ndindex(*self.kernel):
            window = tuple(slice(ti * d, ti * d + (o - 1) * s + 1, s) for ti, (i, o, k, s, d, p) in zip(t, self._axes()))
            part = self._grouped(xp[_NC + window], w[_NC + t])
            acc = part if acc is None else acc + part
        return acc

    def _apply_transposed(self, x, w):
        """Per tap, scatter-add into the strided window of the full (unpadded)
        output, then crop the pads. Output position j is full position
        j + pad; beyond the full extent (output_padding) nothing is written."""
        full = tuple((i - 1) * s + (k - 1) * d + 1 for i, o, k, s, d, p in self._axes())
        acc = np.zeros(x.shape[:1] + (self.c_out,) + full, dtype=x.dtype)
        for t in np.ndindex(*self.kernel):
            window = tuple(slice(ti * d, ti * d + (i - 1) * s + 1, s) for ti, (i, o, k, s, d, p) in zip(t, self._axes()))
            acc[_NC + window] += self._grouped(x, w[_NC + t])
        out = np.zeros(x.shape[:1] + (self.c_out,) + tuple(self.out_sp), dtype=x.dtype)
        kept = [max(0, min(o, f - p)) for o, f, p in zip(self.out_sp, full, self.pads)]
        out[_NC + tuple(slice(0, m) for m in kept)] = acc[_NC + tuple(slice(p, p + m) for p, m in zip(self.pads, kept))]
        return out

    def out_scale(self, sx: np.ndarray, sw: np.ndarray):
        """Output scale s_group(o) * sW[o], or None and the reason."""
        if any(d != 1 for d in sx.shape[2:]):
            return None, "the activation scale varies across spatial positions"
        n = sx.shape[0]
        s = np.broadcast_to(sx.reshape(n, -1), (n, self.c_in)).reshape(n, self.group, self.cg)
        if not np.all(s == s[:, :, :1]):
            return None, (
                "the activation scale differs between input channels that one output channel sums over "
                "(a per-channel activation scale factors out of a depthwise convolution only)"
            )
        if any(d != 1 for d in sw.shape[1:]):
            return None, "the weight scale varies within a filter (along its input channels or kernel positions)"
        spatial = (1,) * len(self.kernel)
        s_out = s[:, np.arange(self.c_out) // self.og, 0].reshape((n, self.c_out) + spatial)
        return s_out * sw.reshape((1, sw.shape[0]) + spatial), ""


def _int_list(ctx: RuleContext, name: str, n: int, default: int, minimum: int) -> tuple:
    v = ctx.attr(name)
    v = [default] * n if v is None else list(v)
    if len(v) != n or any(int(e) < minimum for e in v):
        raise RuleError(f"attribute {name}={v} must list {n} integer(s) >= {minimum}, one per spatial axis")
    return tuple(int(e) for e in v)


def _explicit_pads(ctx: RuleContext, n: int) -> tuple[tuple, tuple]:
    pads = _int_list(ctx, "pads", 2 * n, 0, 0)
    return pads[:n], pads[n:]


def _same_split(total, mode: str) -> tuple[tuple, tuple]:
    """SAME_UPPER puts the odd padding at the end, SAME_LOWER at the start."""
    begin = tuple(t // 2 if mode == "SAME_UPPER" else t - t // 2 for t in total)
    return begin, tuple(t - b for t, b in zip(total, begin))


def _auto_pad(ctx: RuleContext) -> str:
    mode = ctx.attr("auto_pad", "NOTSET")
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise RuleError(f"unknown auto_pad {mode!r}; expected NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    return mode


def _group(ctx: RuleContext) -> int:
    group = int(ctx.attr("group", 1))
    if group < 1:
        raise RuleError(f"group={group} must be a positive integer")
    return group


def _kernel(ctx: RuleContext, w_shape) -> tuple:
    kernel = tuple(int(k) for k in w_shape[2:])
    given = ctx.attr("kernel_shape")
    if given is not None and tuple(given) != kernel:
        raise RuleError(f"kernel_shape={list(given)} does not match the weight shape {list(w_shape)}")
    return kernel


def _check_ranks(op: str, x_shape, w_shape) -> None:
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        raise RuleError(f"{op} needs an input (N, C, spatial...) of rank >= 3 and weights of the same rank; got {list(x_shape)} and {list(w_shape)}")


def _conv_geometry(ctx: RuleContext, x_shape, w_shape) -> _Geometry:
    _check_ranks("Conv", x_shape, w_shape)
    n = len(x_shape) - 2
    group = _group(ctx)
    c_in, c_out = int(x_shape[1]), int(w_shape[0])
    if c_in % group or c_out % group or w_shape[1] * group != c_in:
        raise RuleError(f"weights {list(w_shape)} do not fit {c_in} input channels with group={group} (need O % group == 0 and weight axis 1 == C / group)")
    kernel = _kernel(ctx, w_shape)
    strides = _int_list(ctx, "strides", n, 1, 1)
    dilations = _int_list(ctx, "dilations", n, 1, 1)
    in_sp = tuple(int(d) for d in x_shape[2:])
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    mode = _auto_pad(ctx)
    if mode == "NOTSET":
        begin, end = _explicit_pads(ctx, n)
    elif mode == "VALID":
        begin = end = (0,) * n
    else:
        total = [max(0, (-(-i // s) - 1) * s + e - i) for i, s, e in zip(in_sp, strides, extent)]
        begin, end = _same_split(total, mode)
    out_sp = tuple((i + b + a - e) // s + 1 for i, b, a, e, s in zip(in_sp, begin, end, extent, strides))
    if any(i + b + a < e for i, b, a, e in zip(in_sp, begin, end, extent)):
        raise RuleError(f"the kernel extent {list(extent)} (with dilation) exceeds the padded input {list(in_sp)}")
    return _Geometry(c_in, c_out, group, in_sp, out_sp, kernel, strides, dilations, begin)


def _conv_transpose_geometry(ctx: RuleContext, x_shape, w_shape) -> _Geometry:
    _check_ranks("ConvTranspose", x_shape, w_shape)
    n = len(x_shape) - 2
    group = _group(ctx)
    c_in = int(x_shape[1])
    if w_shape[0] != c_in or c_in % group:
        raise RuleError(f"weights {list(w_shape)} do not fit {c_in} input channels with group={group} (need weight axis 0 == C and C % group == 0)")
    kernel = _kernel(ctx, w_shape)
    strides = _int_list(ctx, "strides", n, 1, 1)
    dilations = _int_list(ctx, "dilations", n, 1, 1)
    out_pad = _int_list(ctx, "output_padding", n, 0, 0)
    in_sp = tuple(int(d) for d in x_shape[2:])
    natural = tuple(s * (i - 1) + p + (k - 1) * d + 1 for s, i, p, k, d in zip(strides, in_sp, out_pad, kernel, dilations))
    mode = _auto_pad(ctx)
    target = ctx.attr("output_shape")
    if target is not None or mode in ("SAME_UPPER", "SAME_LOWER"):
        target = tuple(int(t) for t in target[-n:]) if target is not None else tuple(i * s for i, s in zip(in_sp, strides))
        total = [f - t for f, t in zip(natural, target)]
        if any(t < 0 for t in total):
            raise RuleError(f"output_shape {list(target)} is larger than the full transposed convolution {list(natural)}")
        begin, end = _same_split(total, "SAME_UPPER" if mode == "SAME_UPPER" else "SAME_LOWER")
    elif mode == "VALID":
        begin = end = (0,) * n
    else:
        begin, end = _explicit_pads(ctx, n)
    out_sp = tuple(f - b - a for f, b, a in zip(natural, begin, end))
    if any(o < 1 for o in out_sp):
        raise RuleError(f"pads {list(begin) + list(end)} leave no output")
    return _Geometry(c_in, int(w_shape[1]) * group, group, in_sp, out_sp, kernel, strides, dilations, begin, transposed=True)


def _const_weights(ctx: RuleContext) -> ScaledIntRange:
    if not ctx.is_const(1):
        raise RuleError(
            f"the weights (input 1, '{ctx.input_name(1)}') are computed at run time; {ctx.op_type} is supported with "
            "constant weights only (fold constant subgraphs first, e.g. with qonnx FoldConstants)"
        )
    return ctx.inp(1)


def _checked_shape(ctx: RuleContext, shape: tuple) -> tuple:
    inferred = ctx.out_shapes[0] if ctx.out_shapes else None
    if inferred is not None and tuple(inferred) != shape:
        raise RuleError(f"the attributes and input shapes give output shape {list(shape)}, but shape inference says {list(inferred)}")
    return shape


def _conv_like(ctx: RuleContext, x: ScaledIntRange, w: ScaledIntRange, geom: _Geometry) -> ScaledIntRange:
    shape = _checked_shape(ctx, (x.shape[0], geom.c_out) + geom.out_sp)
    y = _linear_const(x, geom.apply, geom.n_terms, _weights(w), shape, geom.out_scale)
    if ctx.has_input(2):
        y = _add_bias(ctx, y, 2, 1.0, (1, geom.c_out) + (1,) * len(geom.kernel))
    return y


@rule("Conv", exactness=EXACT)
def conv_rule(ctx: RuleContext):
    """ONNX Conv, N-D: dense, grouped, depthwise; strides, dilations, pads,
    auto_pad; optional bias input (added like an Add of a constant).

    Exact with constant weights (per-term extremes; zero-padded borders get
    their own, exact, ranges). Integer form when the activation scale is
    uniform over the input channels of each group (per-channel only for
    depthwise) and spatially, and the weight scale is per output channel at
    most; the input bias becomes a per-element output bias where padding
    makes borders see zeros.
    """
    x = ctx.inp(0)
    w = _const_weights(ctx)
    return [_conv_like(ctx, x, w, _conv_geometry(ctx, x.shape, w.shape))]


@rule("ConvTranspose", exactness=EXACT)
def conv_transpose_rule(ctx: RuleContext):
    """ONNX ConvTranspose, N-D: any group, strides, dilations, pads,
    output_padding, output_shape, auto_pad; optional bias input.

    Exact with constant weights: every output is a sum of independent terms
    (distinct taps reach distinct input positions), bounded like Conv.
    Weights (C, O/group, kernel...) are permuted into the Conv layout.
    """
    x = ctx.inp(0)
    w = _const_weights(ctx)
    geom = _conv_transpose_geometry(ctx, x.shape, w.shape)
    k = w.shape[2:]

    def to_conv_layout(a):
        grouped = a.reshape((geom.group, geom.cg, geom.og) + tuple(k))
        return grouped.swapaxes(1, 2).reshape((geom.c_out, geom.cg) + tuple(k))

    w_conv = w.move(to_conv_layout, (geom.c_out, geom.cg) + tuple(k))
    return [_conv_like(ctx, x, w_conv, geom)]

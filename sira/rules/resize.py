"""Resize and Upsample rules.

Mode nearest copies input elements, so it is data movement and exact: the
only subtlety is which input position the runtime picks where the source
coordinate lies on (or within float32 rounding of) a rounding boundary;
there the union of both neighbours is taken and marked loose. Linear and
cubic interpolation are combinations of neighbours: a sound hull of the
input along the resized axes, widened by the negative taps of the cubic
kernel and for float32 evaluation, off the integer grid.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Optional

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange, move_along
from .registry import EXACT, RuleContext, rule
from .movement import Shape, distinct_axes, int_params

#: relative slack covering float32 rounding of an interpolation (a few taps,
#: float32 weights that sum to 1 only up to rounding): 256 float32 ulps
_INTERP_SLACK = 2.0**-16
#: relative distance to a nearest-mode rounding boundary below which float32
#: evaluation may fall on either side (float32 resolves 2**-24)
_TIE_MARGIN = Fraction(1, 2**17)


@dataclasses.dataclass(frozen=True)
class ResizeSpec:
    """What a Resize/Upsample node does, per axis, as the runtime does it."""

    mode: str  # nearest | linear | cubic
    coord: str  # coordinate_transformation_mode
    nearest: str  # nearest_mode, or "simple" (opset < 11 and Upsample)
    scales: tuple  # per axis, float32 like onnxruntime
    out_shape: Shape
    roi: Optional[np.ndarray]

    def resized_axes(self, in_shape: Shape) -> list[int]:
        """Axes along which output positions do not map 1:1 to input ones."""
        roi_moves = self.coord == "tf_crop_and_resize"
        return [a for a, (d, m, s) in enumerate(zip(in_shape, self.out_shape, self.scales)) if d != m or s != 1 or roi_moves]


def _float_params(ctx: RuleContext, i: int, what: str) -> Optional[np.ndarray]:
    """A constant float parameter input; None when absent or empty (Resize
    passes an empty tensor for "not given")."""
    if not ctx.has_input(i):
        return None
    v = np.asarray(ctx.const(i, what), dtype=np.float64).reshape(-1)
    return v if v.size else None


def _resize_scales(ctx: RuleContext, in_shape: Shape, axes, scales, sizes) -> tuple[list[float], list[int]]:
    """Per-axis scales (float32, as onnxruntime computes them) and the output
    shape, from either scales or sizes (with keep_aspect_ratio_policy)."""
    r = len(in_shape)
    f32 = np.float32
    full = [f32(1.0)] * r
    out = list(in_shape)
    if scales is not None:
        if len(scales) != len(axes) or np.any(scales <= 0):
            raise RuleError(f"scales {scales.tolist()} must hold one positive factor per resized axis ({len(axes)})")
        for a, s in zip(axes, scales):
            full[a] = f32(s)
            out[a] = int(math.floor(in_shape[a] * float(f32(s))))
        return full, out
    if sizes is None or len(sizes) != len(axes) or min(sizes) < 1:
        raise RuleError("the node needs either scales or sizes, with one positive entry per resized axis")
    ratios = [f32(s) / f32(in_shape[a]) for a, s in zip(axes, sizes)]
    policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        if policy not in ("not_larger", "not_smaller"):
            raise RuleError(f"unknown keep_aspect_ratio_policy {policy!r}; use stretch, not_larger or not_smaller")
        s = min(ratios) if policy == "not_larger" else max(ratios)
        ratios = [s] * len(axes)
        sizes = [int(math.floor(float(s) * in_shape[a] + 0.5)) for a in axes]
    for a, s, m in zip(axes, ratios, sizes):
        full[a], out[a] = f32(s), int(m)
    return full, out


def resize_spec(ctx: RuleContext, in_shape: Shape) -> ResizeSpec:
    """Parameters of Upsample (scales attribute in opset 7, input in 9),
    Resize-10 (scales input) and Resize-11+ (roi, scales, sizes inputs; axes
    and keep_aspect_ratio_policy in 18)."""
    r = len(in_shape)
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(ctx.attr("mode", "nearest"), ctx.attr("mode", "nearest"))
    if mode not in ("nearest", "linear", "cubic"):
        raise RuleError(f"unknown mode {mode!r}; Resize modes are nearest, linear and cubic")
    legacy = ctx.op_type == "Upsample" or ctx.opset < 11
    if legacy:
        attr_scales = ctx.attr("scales")
        scales = np.asarray(attr_scales, dtype=np.float64) if attr_scales is not None else _float_params(ctx, 1, "scales (input 1)")
        sizes, roi, axes = None, None, list(range(r))
        coord, nearest = "asymmetric", "simple"
    else:
        roi = _float_params(ctx, 1, "roi (input 1)")
        scales = _float_params(ctx, 2, "scales (input 2)")
        sizes = int_params(ctx, 3, "sizes", "sizes (input 3)") if ctx.has_input(3) else None
        axes_attr = ctx.attr("axes")
        axes = list(range(r)) if axes_attr is None else distinct_axes(axes_attr, r)
        coord = ctx.attr("coordinate_transformation_mode", "half_pixel")
        nearest = ctx.attr("nearest_mode", "round_prefer_floor")
    full, out = _resize_scales(ctx, in_shape, axes, scales, sizes)
    return ResizeSpec(mode, coord, nearest, tuple(full), ctx.out_shape(0, fallback=out), roi)


def source_coordinate(y: int, scale: Fraction, L: int, M: int, coord: str) -> Fraction:
    """ONNX coordinate_transformation_mode: the exact input coordinate of
    output index ``y`` (axis length L -> M) for the runtime's scale value."""
    half = Fraction(1, 2)
    if coord == "pytorch_half_pixel" and M == 1:
        return Fraction(0)
    if coord in ("half_pixel", "pytorch_half_pixel"):
        return (y + half) / scale - half
    if coord == "half_pixel_symmetric":
        offset = Fraction(L, 2) * (1 - M / (scale * L))
        return offset + (y + half) / scale - half
    if coord == "align_corners":
        return Fraction(0) if M == 1 else Fraction(y * (L - 1), M - 1)
    if coord == "asymmetric":
        return y / scale
    if coord == "tf_half_pixel_for_nn":
        return (y + half) / scale
    raise RuleError(
        f"unknown coordinate_transformation_mode {coord!r}; use half_pixel, half_pixel_symmetric, pytorch_half_pixel, "
        "align_corners, asymmetric, tf_half_pixel_for_nn or tf_crop_and_resize"
    )


def nearest_index(x: Fraction, mode: str, downsample: bool) -> int:
    """ONNX nearest_mode on an exact coordinate ("simple": onnxruntime's rule
    for Upsample and Resize-10: truncate when upsampling, ceil when
    downsampling)."""
    fl = math.floor(x)
    if mode == "round_prefer_floor":
        return fl + (x - fl > Fraction(1, 2))
    if mode == "round_prefer_ceil":
        return fl + (x - fl >= Fraction(1, 2))
    if mode == "floor":
        return fl
    if mode == "ceil":
        return math.ceil(x)
    if mode == "simple":
        return math.ceil(x) if downsample else math.trunc(x)
    raise RuleError(f"unknown nearest_mode {mode!r}; use round_prefer_floor, round_prefer_ceil, floor or ceil")


def _on_boundary(x: Fraction, mode: str) -> bool:
    """x sits exactly where ``mode`` switches index (an exact tie)."""
    frac = x - math.floor(x)
    return frac == Fraction(1, 2) if mode.startswith("round") else frac == 0


def runtime_coordinates(M: int, scale: np.float32, L: int, coord: str) -> np.ndarray:
    """The source coordinates as onnxruntime evaluates them: float32, except
    half_pixel_symmetric, which finishes in double."""
    f = np.float32
    y = np.arange(M, dtype=f)
    if coord == "half_pixel_symmetric":
        offset = f(L) / f(2) * (f(1) - f(M) / (scale * f(L)))
        return (np.float64(offset) + (y.astype(np.float64) + 0.5) / np.float64(scale) - 0.5).astype(f)
    if coord == "align_corners":
        return np.zeros(M, dtype=f) if M == 1 else y * f(L - 1) / f(M - 1)
    if coord == "pytorch_half_pixel" and M == 1:
        return np.zeros(M, dtype=f)
    shifted = y if coord == "asymmetric" else y + f(0.5)
    return shifted / scale - (f(0.5) if coord in ("half_pixel", "pytorch_half_pixel") else f(0))


def nearest_candidates(spec: ResizeSpec, axis: int, L: int) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest input index each output position of ``axis`` can
    read. They differ where the exact coordinate lies within a tiny margin
    of a rounding boundary, or exactly on one that float32 evaluation
    misses: there the runtime may land on either side (onnxruntime is not
    always correctly rounded). Ties that float32 reproduces exactly are
    resolved by the nearest mode."""
    M, s32 = spec.out_shape[axis], np.float32(spec.scales[axis])
    scale, down = Fraction(float(s32)), s32 < 1
    runtime = runtime_coordinates(M, s32, L, spec.coord)
    lo, hi = np.empty(M, dtype=np.int64), np.empty(M, dtype=np.int64)
    for y in range(M):
        x = source_coordinate(y, scale, L, M, spec.coord)
        a = b = nearest_index(x, spec.nearest, down)
        if not (_on_boundary(x, spec.nearest) and Fraction(float(runtime[y])) == x):
            margin = max(abs(x), Fraction(1)) * _TIE_MARGIN
            a, b = nearest_index(x - margin, spec.nearest, down), nearest_index(x + margin, spec.nearest, down)
        lo[y], hi[y] = min(max(a, 0), L - 1), min(max(b, 0), L - 1)
    return lo, hi


def _resize_nearest(x: ScaledIntRange, spec: ResizeSpec) -> ScaledIntRange:
    """Nearest resize copies input elements: exact data movement, axis by
    axis. Axes with scale 1 map 1:1 (as onnxruntime does). Where rounding
    could pick either of two input positions, their union is taken (per
    axis, so every combination is covered) and the range marked loose."""
    r = x
    for a in spec.resized_axes(x.shape):
        lo, hi = nearest_candidates(spec, a, x.shape[a])
        shape = r.shape[:a] + (len(lo),) + r.shape[a + 1 :]
        moved = move_along(r, lambda arr, idx=lo, ax=a: np.take(arr, idx, axis=ax), shape, [a])
        if not np.array_equal(lo, hi):
            other = move_along(r, lambda arr, idx=hi, ax=a: np.take(arr, idx, axis=ax), shape, [a])
            moved = moved.union(other).loose(f"nearest Resize: float rounding may pick either of two neighbours along axis {a}")
        r = moved
    return r


def _cubic_negative_mass(ctx: RuleContext, n_axes: int) -> Optional[float]:
    """Total weight of the negative taps of a separable cubic interpolation
    over ``n_axes`` axes, or None when no bound is known.

    The Keys kernel's four taps sum to 1; for a in [-2, 0] the inner taps
    are >= 0 and the outer ones sum to a*t*(1-t) >= a/4 (t the fractional
    position), so one axis has negative mass N1 = -a/4 and sum|w| = 1 + 2*N1;
    the product of d axes has negative mass ((1 + 2*N1)**d - 1) / 2.
    """
    a = float(ctx.attr("cubic_coeff_a", -0.75))
    if not -2.0 <= a <= 0.0 or ctx.attr("exclude_outside", 0) or ctx.attr("antialias", 0):
        return None
    return ((1.0 - a / 2.0) ** n_axes - 1.0) / 2.0


def _interpolation_hull(x: ScaledIntRange, axes, out_shape: Shape, neg_mass: float, note: str) -> ScaledIntRange:
    """Sound bound of sum_i w_i x_i with sum w_i = 1 and negative weights
    summing to ``neg_mass`` in magnitude: [L - N*W, H + N*W] with [L, H] the
    hull of the neighbourhood (here: the whole input along ``axes``) and
    W = H - L, widened for float32 evaluation. Off the integer grid."""
    h = x.hull_along(axes, out_shape)
    lo, hi = h.lo, h.hi
    if neg_mass:
        with np.errstate(invalid="ignore"):
            width = hi - lo
            lo, hi = lo - neg_mass * width, hi + neg_mass * width
    slack = _INTERP_SLACK * (1.0 + 2.0 * neg_mass) * np.maximum(np.abs(lo), np.abs(hi)) + np.finfo(np.float64).tiny
    lo, hi = nx.add_down(lo, -slack), nx.add_up(hi, slack)
    return ScaledIntRange.real(out_shape, lo, hi, exact=False, notes=x.notes + (note,))


@rule("Resize", "Upsample", exactness=EXACT)
def resize_rule(ctx: RuleContext):
    """Resize / Upsample. Mode nearest copies input elements: exact. Linear
    is a convex combination of neighbours and cubic a combination whose
    negative taps are bounded, so both get a sound hull over the resized
    axes (loose, off the grid); cubic without a known tap bound, and
    tf_crop_and_resize's extrapolation value, are handled soundly too."""
    x = ctx.inp(0)
    spec = resize_spec(ctx, x.shape)
    if len(spec.out_shape) != x.ndim:
        raise RuleError(f"output rank {len(spec.out_shape)} differs from input rank {x.ndim}")
    axes = spec.resized_axes(x.shape)
    if spec.coord != "tf_crop_and_resize" and spec.mode == "nearest":
        return [_resize_nearest(x, spec)]
    if spec.mode == "cubic":
        neg = _cubic_negative_mass(ctx, len(axes))
        if neg is None:
            return [ScaledIntRange.unbounded(spec.out_shape, note="cubic Resize with exclude_outside, antialias or cubic_coeff_a outside [-2, 0]: taps not bounded")]
        out = _interpolation_hull(x, axes, spec.out_shape, neg, f"cubic Resize: input hull along axes {axes} widened by the negative taps ({neg:.3g})")
    elif spec.mode == "linear":
        out = _interpolation_hull(x, axes, spec.out_shape, 0.0, f"linear Resize: hull of the input along axes {axes}")
    else:
        out = x.hull_along(axes, spec.out_shape).loose(f"Resize with tf_crop_and_resize: hull of the input along axes {axes}")
    if spec.coord == "tf_crop_and_resize":
        ev = float(ctx.attr("extrapolation_value", 0.0))
        out = ScaledIntRange.real(spec.out_shape, np.minimum(out.lo, ev), np.maximum(out.hi, ev), exact=False, notes=out.notes)
    return [out]

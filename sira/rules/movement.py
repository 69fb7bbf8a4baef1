"""Data-movement rules: Identity, Reshape, Flatten, Squeeze, Unsqueeze,
Transpose, Concat, Split, Slice, Gather, Pad, Resize, Upsample, Expand,
Tile, DepthToSpace, SpaceToDepth, Cast.

Every output element of a movement op is one input element, picked by a
position map that depends only on the node's constant parameters (shape,
perm, starts, indices, pads, scales). Applying the same map to every field
of the input range (:meth:`ScaledIntRange.move`) is therefore exact: each
output element gets the range, the integer grid and the provenance of the
element it copies, and uniform (per-tensor) fields stay uniform. Integer
parameter operands (shape, axes, pads, split sizes, indices, scales) are
read as constants and never treated as data; the reference replaced them
by ones (its defect D11) and dropped every output of a multi-output Split
(D9).

The exceptions say so where they occur: constant padding (padded positions
hold the pad value itself, never a NaN grid as in the reference's D12),
dynamic Gather indices and linear/cubic Resize (sound hulls, marked loose),
Cast (a rounding map, monotone, so still exact).
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Callable, Optional, Sequence

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .. import numerics as nx
from ..errors import RuleError
from ..range import ScaledIntRange, compact, concat_ranges, move_along
from .registry import EXACT, RuleContext, rule

Shape = tuple[int, ...]


# --------------------------------------------------------------------------
# parameter helpers
# --------------------------------------------------------------------------


def _axis(axis, rank: int, what: str = "axis") -> int:
    """``axis`` normalized to [0, rank); negative axes count from the end."""
    a = int(axis)
    if not -rank <= a < rank:
        raise RuleError(f"{what} {a} is out of range for a tensor of rank {rank}; it must lie in [{-rank}, {rank - 1}]")
    return a % rank


def _distinct_axes(axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    out = [_axis(a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise RuleError(f"{what} {list(axes)} name an axis twice")
    return out


def _int_input(ctx: RuleContext, i: int, what: str) -> np.ndarray:
    """A constant integer parameter input (shape, axes, pads, indices...)."""
    v = np.asarray(ctx.const(i, what))
    if not nx.is_integral(v):
        raise RuleError(f"{what} must hold integers, got {v.reshape(-1)[:8].tolist()}")
    return v.astype(np.int64)


def _ints(ctx: RuleContext, i: int, attr: str, what: str) -> Optional[list[int]]:
    """An integer list given as input ``i`` (newer opsets) or as attribute
    ``attr`` (older opsets); None when the node has neither."""
    if ctx.has_input(i):
        return [int(v) for v in _int_input(ctx, i, what).reshape(-1)]
    a = ctx.attr(attr)
    return None if a is None else [int(v) for v in a]


def _checked_shape(ctx: RuleContext, i: int, computed: Sequence[int]) -> Shape:
    """The output shape computed from the node's parameters, checked against
    shape inference: a mismatch means a malformed node or stale shapes."""
    computed = tuple(int(d) for d in computed)
    inferred = ctx.out_shape(i, fallback=computed)
    if inferred != computed:
        raise RuleError(
            f"the node's parameters give output shape {list(computed)}, shape inference says {list(inferred)}; "
            "re-run shape inference (e.g. qonnx-cleanup) on the model"
        )
    return computed


def _slice_along(axis: int, sl: slice) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: a[(slice(None),) * axis + (sl,)]


# --------------------------------------------------------------------------
# shape-only movement
# --------------------------------------------------------------------------


@rule("Identity", exactness=EXACT)
def identity_rule(ctx: RuleContext):
    """Identity: the output is the input. Exact."""
    return [ctx.inp(0)]


def reshape_target(in_shape: Shape, spec: Sequence[int], allowzero: bool) -> Shape:
    """ONNX Reshape's output shape: 0 copies the input dimension (unless
    ``allowzero``), one -1 is inferred from the element count."""
    out: list[int] = []
    inferred = None
    for i, d in enumerate(spec):
        if d == -1:
            if inferred is not None:
                raise RuleError(f"shape {list(spec)} holds more than one -1; at most one dimension can be inferred")
            inferred = i
            out.append(1)
        elif d == 0 and not allowzero:
            if i >= len(in_shape):
                raise RuleError(f"shape entry {i} is 0 (copy the input dimension), but the input has only {len(in_shape)} dimensions")
            out.append(in_shape[i])
        elif d < 0:
            raise RuleError(f"shape {list(spec)} holds {d}; entries must be >= -1")
        else:
            out.append(d)
    total = math.prod(in_shape)
    if inferred is not None:
        known = math.prod(out)
        if known == 0 or total % known:
            raise RuleError(f"cannot infer the -1 in shape {list(spec)} for an input of shape {list(in_shape)} ({total} elements)")
        out[inferred] = total // known
    if math.prod(out) != total:
        raise RuleError(f"cannot reshape an input of shape {list(in_shape)} ({total} elements) to {out} ({math.prod(out)} elements)")
    return tuple(out)


@rule("Reshape", exactness=EXACT)
def reshape_rule(ctx: RuleContext):
    """Reshape (shape input from opset 5, attribute before): elements keep
    their row-major order. Exact. The shape must be a constant."""
    x = ctx.inp(0)
    spec = _ints(ctx, 1, "shape", "shape (input 1)")
    if spec is None:
        raise RuleError("the node has no shape (input 1)")
    out = _checked_shape(ctx, 0, reshape_target(x.shape, spec, bool(ctx.attr("allowzero", 0))))
    return [x.move(lambda a: a.reshape(out), out)]


@rule("Flatten", exactness=EXACT)
def flatten_rule(ctx: RuleContext):
    """Flatten to 2-D at ``axis`` (default 1, negative counts from the end):
    a reshape. Exact."""
    x = ctx.inp(0)
    r = x.ndim
    axis = int(ctx.attr("axis", 1))
    if not -r <= axis <= r:
        raise RuleError(f"axis {axis} is out of range for a tensor of rank {r}; it must lie in [{-r}, {r}]")
    axis = axis + r if axis < 0 else axis
    out = _checked_shape(ctx, 0, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
    return [x.move(lambda a: a.reshape(out), out)]


@rule("Squeeze", exactness=EXACT)
def squeeze_rule(ctx: RuleContext):
    """Squeeze: drop length-1 axes (attribute before opset 13, input from
    13; all length-1 axes when none are given). Exact."""
    x = ctx.inp(0)
    axes = _ints(ctx, 1, "axes", "axes (input 1)")
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = _distinct_axes(axes, x.ndim)
    for a in axes:
        if x.shape[a] != 1:
            raise RuleError(f"cannot squeeze axis {a}: it has length {x.shape[a]}, not 1")
    out = _checked_shape(ctx, 0, [d for i, d in enumerate(x.shape) if i not in axes])
    return [move_along(x, lambda a: np.squeeze(a, axis=tuple(axes)), out, ())]


@rule("Unsqueeze", exactness=EXACT)
def unsqueeze_rule(ctx: RuleContext):
    """Unsqueeze: insert length-1 axes at ``axes`` of the output (attribute
    before opset 13, input from 13). Exact."""
    x = ctx.inp(0)
    axes = _ints(ctx, 1, "axes", "axes (input 1)")
    if not axes:
        raise RuleError("the node has no axes; Unsqueeze needs the axes to insert")
    rank = x.ndim + len(axes)
    axes = _distinct_axes(axes, rank)
    dims = iter(x.shape)
    out = _checked_shape(ctx, 0, [1 if i in axes else next(dims) for i in range(rank)])
    return [move_along(x, lambda a: np.expand_dims(a, tuple(axes)), out, ())]


@rule("Transpose", exactness=EXACT)
def transpose_rule(ctx: RuleContext):
    """Transpose by ``perm`` (default: reverse the axes). Exact."""
    x = ctx.inp(0)
    perm = ctx.attr("perm")
    perm = list(range(x.ndim))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(x.ndim)):
        raise RuleError(f"perm {perm} is not a permutation of the {x.ndim} axes 0..{x.ndim - 1}")
    out = _checked_shape(ctx, 0, [x.shape[p] for p in perm])
    return [move_along(x, lambda a: np.transpose(a, perm), out, ())]


@rule("Expand", exactness=EXACT)
def expand_rule(ctx: RuleContext):
    """Expand: numpy-style broadcast to ``shape`` (input 1). Exact: every
    output element copies one input element."""
    x = ctx.inp(0)
    spec = tuple(_ints(ctx, 1, "shape", "shape (input 1)") or ())
    try:
        target = np.broadcast_shapes(x.shape, spec)
    except ValueError:
        raise RuleError(f"shape {list(spec)} does not broadcast with the input shape {list(x.shape)}") from None
    out = _checked_shape(ctx, 0, target)
    return [move_along(x, lambda a: a.reshape((1,) * (len(out) - a.ndim) + a.shape), out, ())]


@rule("Tile", exactness=EXACT)
def tile_rule(ctx: RuleContext):
    """Tile by ``repeats`` (input 1). Exact."""
    x = ctx.inp(0)
    reps = _ints(ctx, 1, "repeats", "repeats (input 1)")
    if reps is None or len(reps) != x.ndim or any(r < 0 for r in reps):
        raise RuleError(f"repeats {reps} must hold one non-negative count per input axis ({x.ndim})")
    out = _checked_shape(ctx, 0, [d * r for d, r in zip(x.shape, reps)])
    # an axis along which a field is uniform stays uniform: only varying axes need tiling
    return [move_along(x, lambda a: np.tile(a, [k if n > 1 else 1 for k, n in zip(reps, a.shape)]), out, ())]


def _block_size(ctx: RuleContext, x: ScaledIntRange) -> int:
    bs = int(ctx.attr("blocksize", 0))
    if bs < 1 or x.ndim != 4:
        raise RuleError(f"needs a 4-D NCHW input and a positive blocksize, got rank {x.ndim} and blocksize {bs}")
    return bs


@rule("DepthToSpace", exactness=EXACT)
def depth_to_space_rule(ctx: RuleContext):
    """DepthToSpace (modes DCR and CRD): a reshape, transpose, reshape as
    the ONNX definition spells it. Exact."""
    x = ctx.inp(0)
    bs = _block_size(ctx, x)
    n, c, h, w = x.shape
    if c % (bs * bs):
        raise RuleError(f"channels ({c}) must be divisible by blocksize^2 ({bs * bs})")
    mode = ctx.attr("mode", "DCR")
    if mode == "DCR":
        split, perm = (n, bs, bs, c // (bs * bs), h, w), (0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        split, perm = (n, c // (bs * bs), bs, bs, h, w), (0, 1, 4, 2, 5, 3)
    else:
        raise RuleError(f"unknown mode {mode!r}; DepthToSpace modes are DCR and CRD")
    out = _checked_shape(ctx, 0, (n, c // (bs * bs), h * bs, w * bs))
    return [x.move(lambda a: np.transpose(a.reshape(split), perm).reshape(out), out)]


@rule("SpaceToDepth", exactness=EXACT)
def space_to_depth_rule(ctx: RuleContext):
    """SpaceToDepth: a reshape, transpose, reshape as the ONNX definition
    spells it. Exact."""
    x = ctx.inp(0)
    bs = _block_size(ctx, x)
    n, c, h, w = x.shape
    if h % bs or w % bs:
        raise RuleError(f"height ({h}) and width ({w}) must be divisible by blocksize ({bs})")
    split = (n, c, h // bs, bs, w // bs, bs)
    out = _checked_shape(ctx, 0, (n, c * bs * bs, h // bs, w // bs))
    return [x.move(lambda a: np.transpose(a.reshape(split), (0, 3, 5, 1, 2, 4)).reshape(out), out)]


# --------------------------------------------------------------------------
# joining and splitting
# --------------------------------------------------------------------------


@rule("Concat", exactness=EXACT)
def concat_rule(ctx: RuleContext):
    """Concat along ``axis``. Exact. Parts with different grids keep the
    integer form, with scale and bias per position along the axis."""
    parts = [ctx.inp(i) for i in range(len(ctx.node.input)) if ctx.has_input(i)]
    if ctx.attr("axis") is None:
        raise RuleError("the node has no axis attribute; Concat needs one")
    rank = parts[0].ndim
    axis = _axis(ctx.attr("axis"), rank)
    for p in parts:
        if p.ndim != rank or any(d != e for i, (d, e) in enumerate(zip(p.shape, parts[0].shape)) if i != axis):
            raise RuleError(f"input shapes {[list(q.shape) for q in parts]} differ outside the concatenation axis {axis}")
    out = list(parts[0].shape)
    out[axis] = sum(p.shape[axis] for p in parts)
    return [concat_ranges(parts, axis, _checked_shape(ctx, 0, out))]


def split_sizes(ctx: RuleContext, dim: int, n_out: int) -> list[int]:
    """Part lengths of a Split: the ``split`` attribute (before opset 13) or
    input (from 13), else ``num_outputs`` chunks of ceil(dim/n) with a
    smaller last one (opset 18), else equal parts."""
    sizes = _ints(ctx, 1, "split", "split (input 1)")
    if sizes is None:
        num = ctx.attr("num_outputs")
        if num is not None:
            chunk = -(-dim // int(num))
            sizes = [chunk] * (int(num) - 1) + [dim - chunk * (int(num) - 1)]
        elif dim % n_out:
            raise RuleError(f"an axis of length {dim} cannot be split into {n_out} equal parts; give the split sizes")
        else:
            sizes = [dim // n_out] * n_out
    if len(sizes) != n_out or sum(sizes) != dim or min(sizes) < 0:
        raise RuleError(f"split sizes {sizes} must be {n_out} non-negative lengths summing to the axis length {dim}")
    return sizes


@rule("Split", exactness=EXACT)
def split_rule(ctx: RuleContext):
    """Split along ``axis``: every output is a slice of the input and gets
    its own exact range (the reference lost all of them, D9)."""
    x = ctx.inp(0)
    axis = _axis(ctx.attr("axis", 0), x.ndim)
    n_out = len(ctx.node.output)
    outs = []
    start = 0
    for i, size in enumerate(split_sizes(ctx, x.shape[axis], n_out)):
        shape = list(x.shape)
        shape[axis] = size
        outs.append(move_along(x, _slice_along(axis, slice(start, start + size)), _checked_shape(ctx, i, shape), [axis]))
        start += size
    return outs


# --------------------------------------------------------------------------
# selection
# --------------------------------------------------------------------------


def slice_bounds(dim: int, start: int, end: int, step: int) -> tuple[slice, int]:
    """ONNX Slice clamping of one axis: the numpy slice and its length."""
    if step == 0:
        raise RuleError("a Slice step is 0; steps must be non-zero")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    length = len(range(start, end, step))
    return slice(start, end if end >= 0 else None, step), length


@rule("Slice", exactness=EXACT)
def slice_rule(ctx: RuleContext):
    """Slice (starts/ends/axes/steps inputs from opset 10, attributes
    before), with negative indices, negative steps and ONNX clamping. Exact."""
    x = ctx.inp(0)
    starts = _ints(ctx, 1, "starts", "starts (input 1)")
    ends = _ints(ctx, 2, "ends", "ends (input 2)")
    if starts is None or ends is None:
        raise RuleError("the node needs starts and ends")
    axes = _ints(ctx, 3, "axes", "axes (input 3)")
    axes = list(range(len(starts))) if axes is None else axes
    steps = _ints(ctx, 4, "steps", "steps (input 4)") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise RuleError(f"starts, ends, axes and steps must have one entry per sliced axis, got {len(starts)}, {len(ends)}, {len(axes)}, {len(steps)}")
    axes = _distinct_axes(axes, x.ndim)
    index = [slice(None)] * x.ndim
    shape = list(x.shape)
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a], shape[a] = slice_bounds(x.shape[a], s, e, st)
    out = _checked_shape(ctx, 0, shape)
    return [move_along(x, lambda arr: arr[tuple(index)], out, axes)]


def _hull_along(x: ScaledIntRange, axes: Sequence[int], out_shape: Shape, regroup=lambda a: a) -> ScaledIntRange:
    """Every output element is *some* element along ``axes`` (which one is
    not known statically): the hull over those axes, per position of the
    other axes. ``regroup`` maps the reduced compact arrays to the output's
    rank. The integer form survives when scale and bias do not vary along
    ``axes``."""
    axes = tuple(axes)

    def red(a, f):
        return regroup(f(a, axis=axes, keepdims=True))

    lo, hi = red(x.lo, np.min), red(x.hi, np.max)
    grid_uniform = x.is_scaled_int and all(x.scale.shape[a] == 1 and x.bias.shape[a] == 1 for a in axes)
    if grid_uniform:
        grid = (red(x.int_lo, np.min), red(x.int_hi, np.max), regroup(x.scale), regroup(x.bias))
        return ScaledIntRange.derived(out_shape, lo, hi, (x,), grid)
    return ScaledIntRange.derived(out_shape, lo, hi, (x,))


@rule("Gather", exactness=EXACT)
def gather_rule(ctx: RuleContext):
    """Gather along ``axis`` with constant indices (negative ones count from
    the end): exact. Indices computed at run time give the hull of the input
    along the axis, marked loose (it does not know which element is picked)."""
    x = ctx.inp(0)
    axis = _axis(ctx.attr("axis", 0), x.ndim)
    dim = x.shape[axis]
    if not ctx.is_const(1):
        idx_shape = ctx.inp(1).shape
        out = _checked_shape(ctx, 0, x.shape[:axis] + idx_shape + x.shape[axis + 1 :])

        def regroup(a):
            return a.reshape(a.shape[:axis] + (1,) * len(idx_shape) + a.shape[axis + 1 :])

        hull = _hull_along(x, [axis], out, regroup)
        return [hull.loose(f"Gather indices '{ctx.input_name(1)}' are computed at run time: hull of the input along axis {axis}")]
    idx = _int_input(ctx, 1, "indices (input 1)")
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise RuleError(f"indices {idx.reshape(-1)[:8].tolist()} fall outside [{-dim}, {dim - 1}] for axis {axis} of length {dim}")
    idx = np.where(idx < 0, idx + dim, idx)
    out = _checked_shape(ctx, 0, x.shape[:axis] + idx.shape + x.shape[axis + 1 :])
    return [move_along(x, lambda a: np.take(a, idx, axis=axis), out, [axis])]


# --------------------------------------------------------------------------
# Pad
# --------------------------------------------------------------------------


def _pad_params(ctx: RuleContext, rank: int) -> tuple[list[int], float]:
    """Per-axis pads [begin_0.., end_0..] over all axes, and the constant
    value: attributes before opset 11, inputs (pads, value, axes) after."""
    if ctx.opset < 11 and not ctx.has_input(1):
        pads = ctx.attr("pads", ctx.attr("paddings"))
        value = float(ctx.attr("value", 0.0))
        axes = list(range(rank))
    else:
        pads = _ints(ctx, 1, "pads", "pads (input 1)")
        value = float(np.asarray(ctx.const(2, "constant_value (input 2)")).reshape(-1)[0]) if ctx.has_input(2) else 0.0
        axes_in = _ints(ctx, 3, "axes", "axes (input 3)")
        axes = list(range(rank)) if axes_in is None else _distinct_axes(axes_in, rank)
    if pads is None or len(pads) != 2 * len(axes):
        raise RuleError(f"pads {pads} must hold a begin and an end count for each of the {len(axes)} padded axes")
    if not math.isfinite(value):
        raise RuleError(f"the pad value {value} is not finite")
    full = [0] * (2 * rank)
    for i, a in enumerate(axes):
        full[a], full[rank + a] = int(pads[i]), int(pads[len(axes) + i])
    return full, value


def _pad_mask(core_shape: Sequence[int], width) -> np.ndarray:
    """Compact boolean mask of the padded positions (True), full only along
    padded axes."""
    core = np.zeros([d if any(w) else 1 for d, w in zip(core_shape, width)], dtype=bool)
    return np.pad(core, width, constant_values=True)


def _pad_grid_index(c: float, scale: np.ndarray, bias: np.ndarray, mask: np.ndarray) -> Optional[np.ndarray]:
    """Compact integer q with scale*q + bias == c exactly wherever ``mask``
    is set, or None when c is off the grid somewhere there. The check runs
    on the compact grid arrays, not per element."""
    grid_axes = tuple(i for i in range(mask.ndim) if scale.shape[i] == 1 and bias.shape[i] == 1)
    relevant = np.any(mask, axis=grid_axes, keepdims=True)
    with np.errstate(over="ignore", divide="ignore"):
        k = np.where(relevant, np.round((c - bias) / scale), 0.0)
    if not np.all(np.isfinite(k)):
        return None
    q = nx.as_int(k)
    glo, ghi = nx.affine_bounds(scale, q, q, bias)
    return q if np.all(~relevant | ((glo == c) & (ghi == c))) else None


def _pad_constant(x: ScaledIntRange, pad: Callable, touched, width, core_shape, c: float, out_shape: Shape) -> ScaledIntRange:
    """Constant padding: padded positions hold exactly ``c``. Scale and bias
    extend into the border from the nearest element (uniform stays uniform);
    the integer form survives when ``c`` lies on that grid, q = (c - b)/s."""
    edge = move_along(x, lambda a: pad(a, mode="edge"), out_shape, touched)
    mask = _pad_mask(core_shape, width)
    lo = compact(np.where(mask, c, edge.lo), out_shape)
    hi = compact(np.where(mask, c, edge.hi), out_shape)
    value = None if x.value is None else pad(x.value, mode="constant", constant_values=c)
    q = _pad_grid_index(c, edge.scale, edge.bias, mask) if x.is_scaled_int else None
    if q is None:
        r = ScaledIntRange.real(out_shape, lo, hi, exact=x.exact, notes=x.notes, value=value)
        return r.with_note(f"pad value {c:g} is not on the input's integer grid: integer form dropped") if x.is_scaled_int else r
    # the border is exactly c = s*q + b and the interior keeps its bounds
    return edge.replace(
        value=value,
        lo=lo,
        hi=hi,
        int_lo=compact(nx.as_int(np.where(mask, q, edge.int_lo)), out_shape),
        int_hi=compact(nx.as_int(np.where(mask, q, edge.int_hi)), out_shape),
    )


@rule("Pad", exactness=EXACT)
def pad_rule(ctx: RuleContext):
    """Pad (pads as attribute before opset 11, as input after; axes input
    from 18; negative pads crop). Exact for every mode: ``constant`` puts
    the pad value itself at the border (keeping the integer form when the
    value is on the input's grid); ``reflect``, ``edge`` and ``wrap`` copy
    input elements."""
    x = ctx.inp(0)
    r = x.ndim
    pads, value = _pad_params(ctx, r)
    begin, end = pads[:r], pads[r:]
    out = [d + b + e for d, b, e in zip(x.shape, begin, end)]
    if min(out, default=0) < 0:
        raise RuleError(f"negative pads {pads} crop more than the input shape {list(x.shape)} holds")
    out = _checked_shape(ctx, 0, out)
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for b, e, d in zip(begin, end, x.shape))
    width = tuple((max(b, 0), max(e, 0)) for b, e in zip(begin, end))

    touched = [i for i in range(r) if begin[i] or end[i]]

    def pad(a, **how):
        return np.pad(a[crop], width, **how)

    mode = ctx.attr("mode", "constant")
    if mode == "constant":
        core = [s.stop - s.start for s in crop]
        return [_pad_constant(x, pad, touched, width, core, value, out)]
    if mode in ("reflect", "edge", "wrap"):
        return [move_along(x, lambda a: pad(a, mode=mode), out, touched)]
    raise RuleError(f"unknown mode {mode!r}; Pad modes are constant, reflect, edge and wrap")


# --------------------------------------------------------------------------
# Resize / Upsample
# --------------------------------------------------------------------------

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
        sizes = _ints(ctx, 3, "sizes", "sizes (input 3)") if ctx.has_input(3) else None
        axes_attr = ctx.attr("axes")
        axes = list(range(r)) if axes_attr is None else _distinct_axes(axes_attr, r)
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
    h = _hull_along(x, axes, out_shape)
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
        out = _hull_along(x, axes, spec.out_shape).loose(f"Resize with tf_crop_and_resize: hull of the input along axes {axes}")
    if spec.coord == "tf_crop_and_resize":
        ev = float(ctx.attr("extrapolation_value", 0.0))
        out = ScaledIntRange.real(spec.out_shape, np.minimum(out.lo, ev), np.maximum(out.hi, ev), exact=False, notes=out.notes)
    return [out]


# --------------------------------------------------------------------------
# Cast
# --------------------------------------------------------------------------

_INT_TYPES = {
    TensorProto.UINT8: (0, 2**8 - 1),
    TensorProto.INT8: (-(2**7), 2**7 - 1),
    TensorProto.UINT16: (0, 2**16 - 1),
    TensorProto.INT16: (-(2**15), 2**15 - 1),
    TensorProto.UINT32: (0, 2**32 - 1),
    TensorProto.INT32: (-(2**31), 2**31 - 1),
    TensorProto.UINT64: (0, 2**64 - 1),
    TensorProto.INT64: (-(2**63), 2**63 - 1),
    TensorProto.UINT4: (0, 15),
    TensorProto.INT4: (-8, 7),
}

#: float type -> (significand bits, numpy type used to round to it)
_FLOAT_TYPES = {
    TensorProto.FLOAT: (24, np.float32),
    TensorProto.DOUBLE: (53, np.float64),
    TensorProto.FLOAT16: (11, np.float16),
    TensorProto.BFLOAT16: (8, ml_dtypes.bfloat16),
}


#: relative distance between the exact values a range describes and their
#: float32 evaluation at run time that casts allow for (16 float32 ulps)
_RUNTIME_SLACK = 2.0**-20


def _monotone_bounds(x: ScaledIntRange, f) -> tuple[np.ndarray, np.ndarray, bool]:
    """A monotone map ``f`` applied to the bounds, widened first so that it
    also bounds float32 run-time values just beyond an exact bound (7*0.7f
    is 6.99999988 exactly but 7.0 in float32). Exact where the widening
    does not change the result."""
    wlo = nx.add_down(x.lo, -_RUNTIME_SLACK * np.abs(x.lo))
    whi = nx.add_up(x.hi, _RUNTIME_SLACK * np.abs(x.hi))
    with np.errstate(over="ignore"):
        lo, hi = f(wlo), f(whi)
        exact = x.exact and np.array_equal(lo, f(x.lo)) and np.array_equal(hi, f(x.hi))
    return lo, hi, exact


def _cast_int(x: ScaledIntRange, type_name: str, tmin: int, tmax: int) -> ScaledIntRange:
    """Float -> integer truncates toward zero, a monotone map, so the
    integer range is [trunc(lo), trunc(hi)]. Values outside the type's range
    convert to unspecified values: then the whole type range, loose."""
    lo, hi, exact = _monotone_bounds(x, np.trunc)
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and lo.min() >= tmin and hi.max() <= tmax:
        return ScaledIntRange.scaled(x.shape, nx.as_int(lo), nx.as_int(hi), 1.0, 0.0, exact=exact, notes=x.notes)
    return ScaledIntRange.scaled(x.shape, tmin, tmax, 1.0, 0.0, exact=False, notes=x.notes + (f"Cast to {type_name}: values may fall outside the type and convert to unspecified values",))


def _cast_bool(x: ScaledIntRange) -> ScaledIntRange:
    """x != 0 as {0, 1}. Exact unless 0 lies strictly inside the range
    (then it is not known that 0 is attained)."""
    can_be_zero = (x.lo <= 0) & (x.hi >= 0)
    can_be_nonzero = (x.lo != 0) | (x.hi != 0)
    exact = x.exact and not np.any((x.lo < 0) & (x.hi > 0))
    return ScaledIntRange.scaled(x.shape, np.where(can_be_zero, 0, 1), np.where(can_be_nonzero, 1, 0), 1.0, 0.0, exact=exact, notes=x.notes)


def _cast_float(x: ScaledIntRange, type_name: str, bits: int, np_type) -> ScaledIntRange:
    """Identity when the values fit the target: magnitudes up to 2**bits and
    either at least float32 precision (the analyzed tensors are float32) or
    an integer grid. Otherwise round-to-nearest, a monotone map applied to
    the bounds; the values leave the integer grid."""
    mag = float(max(np.max(np.abs(x.lo)), np.max(np.abs(x.hi))))
    integer_grid = x.is_scaled_int and nx.is_integral(x.scale) and nx.is_integral(x.bias)
    if mag <= 2.0**bits and (bits >= 24 or integer_grid):
        return x
    lo, hi, exact = _monotone_bounds(x, lambda a: a.astype(np_type).astype(np.float64))
    return ScaledIntRange.real(x.shape, lo, hi, exact=exact, notes=x.notes + (f"Cast to {type_name} rounds: integer form dropped",))


@rule("Cast", exactness=EXACT)
def cast_rule(ctx: RuleContext):
    """Cast: to integer types truncation toward zero, to bool x != 0, to
    float types round-to-nearest; all monotone, so exact (see the helpers
    for when the integer form survives)."""
    x = ctx.inp(0)
    to = int(ctx.attr("to", 0))
    name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
    if to == TensorProto.BOOL:
        return [_cast_bool(x)]
    if to in _INT_TYPES:
        return [_cast_int(x, name, *_INT_TYPES[to])]
    if to in _FLOAT_TYPES:
        return [_cast_float(x, name, *_FLOAT_TYPES[to])]
    if name.startswith("FLOAT"):
        return [ScaledIntRange.unbounded(x.shape, note=f"Cast to {name}: no rounding model for this type")]
    raise RuleError(f"Cast to {name} is not supported for range analysis")

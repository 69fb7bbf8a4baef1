"""Data-movement rules: Identity, Reshape, Flatten, Squeeze, Unsqueeze,
Transpose, Concat, Split, Slice, Gather, Pad, Expand, Tile, DepthToSpace,
SpaceToDepth (Resize and Upsample are in :mod:`sira.rules.resize`).

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
hold the pad value itself, never a NaN grid as in the reference's D12) and
dynamic Gather indices (a sound hull, marked loose).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np

from .. import numerics as nx
from ..errors import RuleError
from ..range import CONCAT_MAX_FACTOR, ScaledIntRange, compact, move_along, part_grid_factors
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


def distinct_axes(axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
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


def int_params(ctx: RuleContext, i: int, attr: str, what: str) -> Optional[list[int]]:
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
    spec = int_params(ctx, 1, "shape", "shape (input 1)")
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
    axes = int_params(ctx, 1, "axes", "axes (input 1)")
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = distinct_axes(axes, x.ndim)
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
    axes = int_params(ctx, 1, "axes", "axes (input 1)")
    if not axes:
        raise RuleError("the node has no axes; Unsqueeze needs the axes to insert")
    rank = x.ndim + len(axes)
    axes = distinct_axes(axes, rank)
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
    spec = tuple(int_params(ctx, 1, "shape", "shape (input 1)") or ())
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
    reps = int_params(ctx, 1, "repeats", "repeats (input 1)")
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


def _concat_field(arrays: Sequence[np.ndarray], lengths: Sequence[int], axis: int, out_shape) -> np.ndarray:
    """One field of a concatenation, compact: the parts' compact arrays
    (``lengths`` along ``axis``) are broadcast to a common compact shape on
    the other axes, then joined along ``axis``."""
    parts = []
    for a, n in zip(arrays, lengths):
        target = list(a.shape)
        target[axis] = n
        parts.append(np.broadcast_to(a, target))
    common = [1] * len(out_shape)
    for p in parts:
        for i, d in enumerate(p.shape):
            if i != axis and d > 1:
                common[i] = out_shape[i]
    aligned = []
    for p in parts:
        t = list(common)
        t[axis] = p.shape[axis]
        aligned.append(np.broadcast_to(p, t))
    return compact(np.concatenate(aligned, axis=axis), out_shape)


def concat_ranges(ranges: Sequence[ScaledIntRange], axis: int, out_shape) -> ScaledIntRange:
    """Concatenation along ``axis``. Exact. Integer form kept when every part
    has one: with one common scale when the parts' per-tensor scales share a
    grid (see :func:`~sira.range.part_grid_factors`), else with scales per
    position along ``axis``."""
    out_shape = tuple(int(d) for d in out_shape)
    axis = axis % len(out_shape)
    lengths = [r.shape[axis] for r in ranges]

    def cat(arrays):
        return _concat_field(arrays, lengths, axis, out_shape)

    def field(name):
        return cat([getattr(r, name) for r in ranges])

    lo, hi = field("lo"), field("hi")
    value = np.concatenate([r.value for r in ranges], axis=axis) if all(r.is_const for r in ranges) else None
    if not all(r.is_scaled_int for r in ranges):
        return ScaledIntRange.derived(out_shape, lo, hi, ranges).replace(value=value)
    factors = part_grid_factors(ranges, CONCAT_MAX_FACTOR)
    if factors is None:  # scales differ per position along the axis
        grid = (field("int_lo"), field("int_hi"), field("scale"), field("bias"))
    else:  # one common scale t: part i contributes k_i * q_i
        k, t = factors
        scaled = [nx.int_range_product(np.asarray(ki), np.asarray(ki), r.int_lo, r.int_hi) for ki, r in zip(k, ranges)]
        grid = (cat([q[0] for q in scaled]), cat([q[1] for q in scaled]), t, field("bias"))
    return ScaledIntRange.derived(out_shape, lo, hi, ranges, grid).replace(value=value)


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
    sizes = int_params(ctx, 1, "split", "split (input 1)")
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
    starts = int_params(ctx, 1, "starts", "starts (input 1)")
    ends = int_params(ctx, 2, "ends", "ends (input 2)")
    if starts is None or ends is None:
        raise RuleError("the node needs starts and ends")
    axes = int_params(ctx, 3, "axes", "axes (input 3)")
    axes = list(range(len(starts))) if axes is None else axes
    steps = int_params(ctx, 4, "steps", "steps (input 4)") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise RuleError(f"starts, ends, axes and steps must have one entry per sliced axis, got {len(starts)}, {len(ends)}, {len(axes)}, {len(steps)}")
    axes = distinct_axes(axes, x.ndim)
    index = [slice(None)] * x.ndim
    shape = list(x.shape)
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a], shape[a] = slice_bounds(x.shape[a], s, e, st)
    out = _checked_shape(ctx, 0, shape)
    return [move_along(x, lambda arr: arr[tuple(index)], out, axes)]


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

        hull = x.hull_along([axis], out, regroup)
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
        pads = int_params(ctx, 1, "pads", "pads (input 1)")
        value = float(np.asarray(ctx.const(2, "constant_value (input 2)")).reshape(-1)[0]) if ctx.has_input(2) else 0.0
        axes_in = int_params(ctx, 3, "axes", "axes (input 3)")
        axes = list(range(rank)) if axes_in is None else distinct_axes(axes_in, rank)
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


def _pad_grid_index(c: float, edge: ScaledIntRange, mask: np.ndarray) -> Optional[np.ndarray]:
    """Compact integer q with scale*q + bias == c exactly wherever ``mask``
    is set, or None when c is off the grid somewhere there. The check runs
    on the compact grid arrays, not per element."""
    grid_axes = tuple(i for i in range(mask.ndim) if edge.scale.shape[i] == 1 and edge.bias.shape[i] == 1)
    relevant = np.any(mask, axis=grid_axes, keepdims=True)
    return edge.grid_index(np.full(relevant.shape, c), where=relevant)


def _pad_constant(x: ScaledIntRange, pad: Callable, touched, width, core_shape, c: float, out_shape: Shape) -> ScaledIntRange:
    """Constant padding: padded positions hold exactly ``c``. Scale and bias
    extend into the border from the nearest element (uniform stays uniform);
    the integer form survives when ``c`` lies on that grid, q = (c - b)/s."""
    edge = move_along(x, lambda a: pad(a, mode="edge"), out_shape, touched)
    mask = _pad_mask(core_shape, width)
    lo = compact(np.where(mask, c, edge.lo), out_shape)
    hi = compact(np.where(mask, c, edge.hi), out_shape)
    value = None if x.value is None else pad(x.value, mode="constant", constant_values=c)
    q = _pad_grid_index(c, edge, mask) if x.is_scaled_int else None
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

"""Exact integer requantizers: a threshold set as one multiply, add and shift.

A requantizing chain after an integer accumulator (scale, bias, ReLU/clip,
quantizer) is a non-decreasing step function of the accumulator ``x``; the
threshold search proves it as a set of integer thresholds per channel,
``n(x) = #{k : x >= T_k}`` (:mod:`sira.transforms.thresholds`). Storing and
comparing 2^B - 1 thresholds is what makes an 8-bit output expensive. When
the steps are (close enough to) evenly spaced, the same function is

    n(x) = clip((x * m + b) >> s, 0, S)

with integers ``m >= 0``, ``b`` per channel and one shift ``s`` (``>>`` is
an arithmetic shift, i.e. floor division by 2^s): HAWQ-V3's dyadic
requantization, here made *exact* instead of approximate.

**Active range.** Below the lowest threshold the count is 0 and from the
highest on it is S, whatever the accumulator's width: ``x`` is first
clamped to ``[lo, hi]``, the smallest range holding every step
(``min T - 1`` to ``max T``, within the input's range). The multiply is then
as wide as that range, not as the accumulator, and the shift needs to be
exact over fewer integers.

**Search.** With ``f(x) = floor((m*x + b) / 2^s)`` non-decreasing (m >= 0),
``clip(f, 0, S) = n`` on ``[lo, hi]`` holds iff for every step k

* ``f(p_k) >= k`` where ``p_k = max(T_k, lo)``, when ``T_k <= hi`` (the
  level is reached from ``T_k`` on), and
* ``f(q_k) <= k - 1`` where ``q_k = min(T_k - 1, hi)``, when ``T_k > lo``
  (it is not reached below ``T_k``):

from ``x >= T_k`` follows ``f(x) >= f(p_k) >= k``, from ``x < T_k`` follows
``f(x) <= f(q_k) <= k - 1``, so ``clip(f(x), 0, S) >= k`` exactly when
``n(x) >= k``, for every k. The two conditions read ``b >= k*2^s - m*p_k``
and ``b <= k*2^s - 1 - m*q_k``; a ``b`` exists iff every lower bound is at
most every upper bound, ``m * (p_k - q_j) >= (k - j) * 2^s + 1`` for all
pairs, which bounds m from below (``p_k > q_j``) or above (``p_k < q_j``):
the feasible m of a shift are an integer interval, computed exactly.
A solution at shift s gives one at s + 1 (``2m, 2b``), so the smallest
feasible shift is found by bisection. Non-uniform steps (sigmoid, tanh)
have no such m at any shift and are no candidate.

**Proof.** :func:`prove` re-checks the two conditions at every ``p_k`` and
``q_k`` in exact integers (and ``m >= 0``): by the argument above this is a
proof over the whole range, at 2S points instead of ``hi - lo + 1``.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from .errors import SiraError

#: the largest shift tried; a step function that needs more is left to thresholds
MAX_SHIFT = 40


@dataclasses.dataclass(frozen=True, eq=False)
class IntegerRequant:
    """``count = clip((clamp(x, lo, hi) * m[r] + b[r]) >> shift, 0, steps)``;
    ``[lo, hi]`` is the active range (every step inside, see the module
    docstring); ``m``/``b`` have one entry per threshold row (1: shared by
    every channel). Exact Python ints (object arrays), read-only."""

    m: np.ndarray
    b: np.ndarray
    shift: int
    steps: int
    lo: int
    hi: int

    def __post_init__(self):
        for name in ("m", "b"):
            a = np.array([int(v) for v in np.asarray(getattr(self, name)).reshape(-1)], dtype=object)
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.m.shape != self.b.shape or not self.m.size:
            raise SiraError(f"integer requantizer: m and b need one entry per row, got {self.m.shape} and {self.b.shape}")
        if self.shift < 0 or any(v < 0 for v in self.m):
            raise SiraError("integer requantizer: the shift and the multipliers must be non-negative")

    @property
    def rows(self) -> int:
        return int(self.m.size)

    @property
    def shared(self) -> bool:
        return self.rows == 1

    def to_json(self) -> dict:
        return {"m": [int(v) for v in self.m], "b": [int(v) for v in self.b], "shift": self.shift, "steps": self.steps,
                "lo": self.lo, "hi": self.hi}

    def product_range(self) -> tuple[int, int]:
        """Exact bounds of ``x * m + b`` over the range and every row."""
        ends = [int(m) * x + int(b) for m, b in zip(self.m, self.b) for x in (self.lo, self.hi)]
        return min(ends), max(ends)

    def counts(self, x: np.ndarray) -> np.ndarray:
        """The count per element of ``x`` (channels on the last axis), in
        exact integers: the reference the generated code must equal."""
        xs = np.asarray(x)
        C = xs.shape[-1] if xs.ndim else 1
        m = np.broadcast_to(self.m, (C,)) if self.shared else self.m
        b = np.broadcast_to(self.b, (C,)) if self.shared else self.b
        v = (np.clip(xs.astype(object), self.lo, self.hi) * m + b) // (1 << self.shift)
        return np.clip(v, 0, self.steps).astype(np.int64)


def _feasible_m(p: np.ndarray, k_p: np.ndarray, q: np.ndarray, k_q: np.ndarray, shift: int) -> Optional[tuple[int, int]]:
    """The integer interval of m >= 0 for which a b meets every reach
    condition (points ``p`` at levels ``k_p``) and every stay-below one
    (points ``q`` at levels ``k_q``) at ``shift``, or None when empty."""
    m_lo, m_hi = 0, None
    if p.size and q.size:
        d = p[:, None] - q[None, :]
        rhs = (k_p[:, None] - k_q[None, :]) * (1 << shift) + 1
        pos, neg, zero = d > 0, d < 0, d == 0
        if np.any(rhs[zero] > 0):
            return None
        if np.any(pos):
            m_lo = max(m_lo, int(np.max(-((-rhs[pos]) // d[pos]))))  # ceil(rhs / d)
        if np.any(neg):
            m_hi = int(np.min((-rhs[neg]) // (-d[neg])))  # floor(rhs / d), d < 0
    if m_hi is not None and m_hi < m_lo:
        return None
    return m_lo, m_hi


def _conditions(row: np.ndarray, lo: int, hi: int):
    """The reach points/levels and stay-below points/levels of one sorted
    threshold row: only the last always-reached level and the first
    never-reached one matter among the thresholds outside (lo, hi]."""
    k = np.arange(1, row.size + 1, dtype=np.int64)
    reach = row <= hi
    below = row > lo
    p, k_p = np.maximum(row[reach], lo), k[reach]
    q, k_q = np.minimum(row[below] - 1, hi), k[below]
    return p, k_p, q, k_q


def _row_solution(row: np.ndarray, lo: int, hi: int, shift: int) -> Optional[tuple[int, int]]:
    """(m, b) of one row at ``shift``, the smallest m and then the b nearest
    to zero, or None."""
    p, k_p, q, k_q = _conditions(row, lo, hi)
    ms = _feasible_m(p, k_p, q, k_q, shift)
    if ms is None:
        return None
    m = ms[0]
    b_lo = max((int(k) << shift) - m * int(x) for k, x in zip(k_p, p)) if p.size else None
    b_hi = min((int(k) << shift) - 1 - m * int(x) for k, x in zip(k_q, q)) if q.size else None
    if b_lo is None:
        return m, min(b_hi, 0)
    if b_hi is None:
        return m, max(b_lo, 0)
    return m, min(max(0, b_lo), b_hi)


def _min_shift(row: np.ndarray, lo: int, hi: int, start: int) -> Optional[int]:
    """The smallest shift from ``start`` on at which ``row`` has a solution
    (bisection: a solution at s is one at s + 1), or None up to MAX_SHIFT."""
    if _row_solution(row, lo, hi, MAX_SHIFT) is None:
        return None
    a, z = start, MAX_SHIFT
    while a < z:
        mid = (a + z) // 2
        if _row_solution(row, lo, hi, mid) is None:
            a = mid + 1
        else:
            z = mid
    return a


def is_identity(thresholds: np.ndarray, lo: int, hi: int, scale: int, bias: int) -> bool:
    """bias + scale * #{t in row : x >= t} == x for every row and every
    integer x in [lo, hi]: scale 1, bias + #{t <= lo} == lo, and exactly one
    threshold at each of lo+1..hi (the count then steps by one with x)."""
    if scale != 1:
        return False
    t = np.asarray(thresholds)
    if t.shape[1] < hi - lo:
        return False
    if not all(int(c) + bias == lo for c in np.sum(t <= lo, axis=1)):
        return False
    inside = (t > lo) & (t <= hi)
    if not np.all(np.sum(inside, axis=1) == hi - lo):
        return False
    steps = np.sort(np.where(inside, t, hi + 1), axis=1)[:, : hi - lo]
    return bool(np.all(steps == np.arange(lo + 1, hi + 1)))


def active_range(thresholds: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The smallest sub-range of ``[lo, hi]`` outside which the count is
    constant: from just below the lowest threshold to the highest."""
    t = np.asarray(thresholds)
    if not t.size:
        return lo, lo
    a = max(lo, min(int(t.min()) - 1, hi))
    return a, min(hi, max(int(t.max()), a))


def find_integer_requant(thresholds: np.ndarray, lo: int, hi: int) -> Optional[IntegerRequant]:
    """The integer requantizer with the smallest shift (then the smallest
    multipliers) computing ``#{k : x >= T[r, k]}`` for every integer x in
    ``[lo, hi]``, or None when the steps have no affine form. ``thresholds``
    is ``(rows, steps)`` of integers; rows are searched one by one, over the
    active range, and share the largest of their smallest shifts. The
    result is proven (:func:`prove`) before it is returned."""
    t = np.asarray(thresholds)
    if t.ndim != 2 or not t.shape[0]:
        raise SiraError(f"integer requantizer: thresholds must be (rows, steps), got shape {list(t.shape)}")
    if t.size and max(abs(int(v)) for v in t.reshape(-1)) >= 2**40:
        return None  # products of the pairwise bounds would leave int64
    in_lo, in_hi = int(lo), int(hi)
    lo, hi = active_range(t, in_lo, in_hi)  # within one of the thresholds: below 2**40 too
    rows = [np.sort(np.asarray(r, dtype=np.int64)) for r in t]
    distinct = {row.tobytes(): row for row in rows}
    shift = 0
    for row in distinct.values():
        if _row_solution(row, lo, hi, shift) is None:
            s = _min_shift(row, lo, hi, shift + 1)
            if s is None:
                return None
            shift = s
    by_row = {key: _row_solution(row, lo, hi, shift) for key, row in distinct.items()}
    sols = [by_row[row.tobytes()] for row in rows]
    m = [s[0] for s in sols]
    b = [s[1] for s in sols]
    if len(set(zip(m, b))) == 1:
        m, b = m[:1], b[:1]
    req = IntegerRequant(np.array(m, dtype=object), np.array(b, dtype=object), shift, int(t.shape[1]), lo, hi)
    prove(req, t, in_lo, in_hi)
    return req


def prove(req: IntegerRequant, thresholds: np.ndarray, in_lo: int, in_hi: int) -> None:
    """Raise unless ``req`` equals the threshold count at every integer of
    ``[in_lo, in_hi]``: both conditions of the module docstring at every
    step of its active range, in exact integers (with m >= 0 that covers
    every x in between), and no step between the active range and the
    input's ends (where the clamp holds the count)."""
    t = np.asarray(thresholds)
    if t.shape[1] != req.steps or not (t.shape[0] == req.rows or req.shared):
        raise SiraError(f"integer requantizer of {req.rows} row(s) x {req.steps} steps does not match thresholds {list(t.shape)}")
    if t.size:
        flat = [int(v) for v in t.reshape(-1)]
        outside = [v for v in flat if in_lo < v <= req.lo or req.hi < v <= in_hi]
        if outside:
            raise SiraError(f"integer requantizer: threshold {outside[0]} lies outside its active range [{req.lo}, {req.hi}]")
    for r, row in enumerate(t):
        m, b = int(req.m[0 if req.shared else r]), int(req.b[0 if req.shared else r])
        p, k_p, q, k_q = _conditions(np.sort(np.asarray(row, dtype=np.int64)), req.lo, req.hi)
        for x, k in zip(p, k_p):
            if (m * int(x) + b) >> req.shift < k:
                raise SiraError(f"integer requantizer row {r}: level {k} is not reached at {int(x)}")
        for x, k in zip(q, k_q):
            if (m * int(x) + b) >> req.shift > k - 1:
                raise SiraError(f"integer requantizer row {r}: level {k} is reached early at {int(x)}")


__all__ = ["IntegerRequant", "MAX_SHIFT", "active_range", "find_integer_requant", "prove"]

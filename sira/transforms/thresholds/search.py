"""Exact thresholds of a chain: the level oracle (a float64 interval screen
with exact decisions behind it), vectorised bisection, the stored encoding
and its verification."""

from __future__ import annotations

import dataclasses

import numpy as np

from sira import numerics as nx
from sira.exec_kernels import multithreshold
from sira.errors import SiraError
from sira.semantics import channel_fractions

from .chain import Chain, NotConvertible

#: integers beyond 2**53 are not exact in float64 (the screen, and the
#: storage of wide thresholds) and beyond 2**24 not in float32 (the storage
#: of the others)
FLOAT64_EXACT = 2**53
FLOAT32_EXACT = 2**24


def storage_dtype(rows: np.ndarray) -> type:
    """The float type thresholds are stored in: float32 (what qonnx exports
    and FINN reads) when every one is exact in it, float64 for the wide
    integer accumulators of joins aligned on a fine common grid."""
    return np.float32 if np.all(np.abs(rows) < FLOAT32_EXACT) else np.float64
#: (channel, value) pairs up to which :func:`verify_encoding` also sweeps
#: every integer of the range: a cross-check of the proof (the exact points
#: and the chain's monotonicity), run where it is cheap (about a second per
#: million pairs)
EXHAUSTIVE_PAIRS = 2**18

#: working precision (bits) of the first exact evaluation, and the last
#: refinement tried before an irrational value is declared undecidable
START_PREC = 64
MAX_PREC = 4096


class LevelOracle:
    """Exact level indices of a chain on oriented inputs ``x = sign_c * q``
    (so every channel is non-decreasing in x).

    ``levels`` screens whole arrays in float64 interval arithmetic and
    decides the rest exactly; ``exact`` is the exact evaluation alone."""

    def __init__(self, chain: Chain, sign: np.ndarray):
        self.chain = chain
        self.sign = np.asarray(sign, dtype=np.int64)
        self._cache: dict[tuple[int, int], int] = {}
        self._in = list(zip(channel_fractions(chain.in_scale), channel_fractions(chain.in_bias)))

    @property
    def steps(self) -> int:
        return self.chain.requant.steps

    def screen(self, ch: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds [n_lo, n_hi] of the level index per element."""
        q = (self.sign[ch] * x).astype(np.float64)
        if self.chain.unit_grid:
            lo, hi = q, q
        else:
            s, b = self.chain.in_scale[ch], self.chain.in_bias[ch]
            lo, hi = nx.interval_mul(q, q, s, s)
            lo, hi = nx.add_interval(lo, hi, b)
        for op in self.chain.ops:
            lo, hi = op.bounds(lo, hi, ch)
        return self.chain.requant.bounds(lo, hi, ch)

    def exact(self, c: int, x: int) -> int:
        """The level index at channel c, oriented input x, exactly.

        Rational ops keep a point exact; an irrational op widens it to an
        interval of width about 2**-prec, and the quantizer's decision is
        accepted only when it is the same at both ends. Irrational values
        are never on a rational boundary (see Sigmoid, Tanh, BatchNorm), so
        refinement terminates; MAX_PREC bounds it anyway."""
        key = (c, int(x))
        if key in self._cache:
            return self._cache[key]
        s, b = self._in[c]
        v0 = s * (int(self.sign[c]) * int(x)) + b
        prec = START_PREC
        while prec <= MAX_PREC:
            lo = hi = v0
            for op in self.chain.ops:
                lo, hi = op.enclose(c, lo, hi, prec)
            n = self.chain.requant.decide(c, lo, hi)
            if n is not None:
                self._cache[key] = n
                return n
            prec *= 4
        raise NotConvertible(f"channel {c}, input {x}: the level is not decided at {MAX_PREC} bits of precision")

    def levels(self, ch: np.ndarray, x: np.ndarray, exact_only: bool = False) -> np.ndarray:
        ch, x = np.broadcast_arrays(np.asarray(ch), np.asarray(x))
        if exact_only:
            out = np.empty(x.shape, dtype=np.int64)
            for idx in np.ndindex(*x.shape):
                out[idx] = self.exact(int(ch[idx]), int(x[idx]))
            return out
        lo, hi = self.screen(ch, x)
        for idx in zip(*np.nonzero(lo != hi)):
            lo[idx] = self.exact(int(ch[idx]), int(x[idx]))
        return lo

    def at_least(self, ch: np.ndarray, x: np.ndarray, k: np.ndarray) -> np.ndarray:
        """n(x) >= k elementwise, exactly."""
        lo, hi = self.screen(ch, x)
        res = lo >= k
        for idx in zip(*np.nonzero((lo < k) & (hi >= k))):
            res[idx] = self.exact(int(ch[idx]), int(x[idx])) >= k[idx]
        return res


def find_thresholds(oracle: LevelOracle, lo: int, hi: int) -> np.ndarray:
    """T[c, k-1] = the smallest x in [lo, hi] with n_c(x) >= k (k = 1..steps),
    or hi + 1 when no x there reaches it. Bisection on all (channel, level)
    pairs at once: invariant n(below) < k <= n(above), with the virtual
    values n(lo - 1) = -inf and n(hi + 1) = +inf."""
    C, S = oracle.chain.channels, oracle.steps
    ch = np.repeat(np.arange(C), S)
    k = np.tile(np.arange(1, S + 1), C)
    below = np.full(C * S, lo - 1, dtype=np.int64)
    above = np.full(C * S, hi + 1, dtype=np.int64)
    while True:
        open_ = np.nonzero(above - below > 1)[0]
        if open_.size == 0:
            return above.reshape(C, S)
        mid = below[open_] + (above[open_] - below[open_]) // 2
        reached = oracle.at_least(ch[open_], mid, k[open_])
        above[open_] = np.where(reached, mid, above[open_])
        below[open_] = np.where(reached, below[open_], mid)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """Thresholds as stored: ``rows`` (1 or C, width) on the oriented input;
    level index n = ``skipped`` + #{j : x >= rows[c, j]}."""

    rows: np.ndarray
    skipped: int
    dropped_top: int
    stuck: tuple

    @property
    def merged(self) -> bool:
        return self.rows.shape[0] == 1

    def count(self, x: np.ndarray) -> np.ndarray:
        """Level indices from a MultiThreshold on the thresholds as stored
        (x: (C, M) oriented inputs), by sira's executor kernel (equal to
        qonnx's MultiThreshold, as its tests check, and fast on thousands
        of channels)."""
        T = self.rows.astype(storage_dtype(self.rows))
        return multithreshold(np.asarray(x, dtype=np.float64).T, T, 1.0, 0.0).T.astype(np.int64) + self.skipped


def encode(T: np.ndarray, xlo: np.ndarray, xhi: np.ndarray) -> Encoding:
    """Drop the columns reached on every channel's whole range (a prefix:
    rows are sorted) and those no channel reaches (a suffix), keeping at
    least one column; merge the rows when they are all equal."""
    always = T <= xlo[:, None]
    never = T > xhi[:, None]
    stuck = tuple(int(c) for c in np.nonzero(np.all(always | never, axis=1))[0])
    S = T.shape[1]
    d = 0
    while d < S - 1 and np.all(always[:, d]):
        d += 1
    e = 0
    while S - d - e > 1 and np.all(never[:, S - 1 - e]):
        e += 1
    kept = T[:, d : S - e]
    if np.all(kept == kept[:1]):
        kept = kept[:1]
    return Encoding(kept, d, e, stuck)


def verify_encoding(oracle: LevelOracle, enc: Encoding, xlo: np.ndarray, xhi: np.ndarray, exhaustive_limit: int) -> str:
    """Check the stored thresholds against the chain; raise on a mismatch.

    Always: at both ends of each channel's range and at T - 1, T of every
    threshold inside it, exactly (the rigorous screen deciding where it
    can, see Chain.screen_is_rigorous). Between two consecutive such points
    the count is constant and the chain is monotone, so agreement there
    proves agreement everywhere. When the range holds fewer than
    ``exhaustive_limit`` (channel, value) pairs, also at every one of them.
    Returns how it was verified."""
    C = oracle.chain.channels
    rows = np.broadcast_to(enc.rows, (C, enc.rows.shape[1]))
    points = []
    for c in range(C):
        cand = np.concatenate([[xlo[c], xhi[c]], rows[c] - 1, rows[c]])
        points.append(np.unique(cand[(cand >= xlo[c]) & (cand <= xhi[c])]))
    width = max(len(p) for p in points)
    x = np.stack([np.pad(p, (0, width - len(p)), mode="edge") for p in points])
    ch = np.arange(C)[:, None]
    _compare(oracle.levels(ch, x, exact_only=not oracle.chain.screen_is_rigorous), enc.count(x), ch, x, oracle)
    how = f"exact at {sum(len(p) for p in points)} points (range ends, thresholds -1/+0)"
    lo, hi = int(xlo.min()), int(xhi.max())
    if C * (hi - lo + 1) < exhaustive_limit:
        x = np.broadcast_to(np.arange(lo, hi + 1, dtype=np.int64), (C, hi - lo + 1))
        inside = (x >= xlo[:, None]) & (x <= xhi[:, None])
        got = np.where(inside, enc.count(x), 0)
        want = np.zeros(x.shape, dtype=np.int64)
        want[inside] = oracle.levels(np.broadcast_to(ch, x.shape)[inside], x[inside])  # each channel on its own range only
        _compare(want, got, ch, x, oracle)
        how += f"; exhaustive over {int(inside.sum())} (channel, value) pairs"
    return how


def _compare(want: np.ndarray, got: np.ndarray, ch: np.ndarray, x: np.ndarray, oracle: LevelOracle) -> None:
    bad = np.argwhere(want != got)
    if bad.size:
        i, j = bad[0]
        c = int(np.broadcast_to(ch, x.shape)[i, j])
        raise SiraError(
            f"threshold conversion of '{oracle.chain.requant.label}' is wrong at channel {c}, integer input "
            f"{int(oracle.sign[c] * x[i, j])}: the chain gives level index {int(want[i, j])}, the thresholds {int(got[i, j])}"
        )


@dataclasses.dataclass(frozen=True)
class Conversion:
    """A chain's thresholds, proven: ``sign`` per channel (-1 = thresholded
    on -q), the encoding, and how it was verified."""

    sign: np.ndarray
    encoding: Encoding
    verified: str


def convert_chain(chain: Chain, qlo: np.ndarray, qhi: np.ndarray, exhaustive_limit: int = EXHAUSTIVE_PAIRS) -> Conversion:
    """Thresholds for ``chain`` on integer inputs q in [qlo_c, qhi_c] per
    channel. Raises NotConvertible when the range reaches past exact float64
    (the thresholds lie inside it, so :func:`storage_dtype` holds them
    exactly) or a value is undecidable."""
    qlo = np.asarray(qlo, dtype=object)
    qhi = np.asarray(qhi, dtype=object)
    if max(abs(int(v)) for v in np.concatenate([qlo, qhi])) >= FLOAT64_EXACT:
        raise NotConvertible("the integer input range exceeds 2**53, beyond exact float64 evaluation")
    qlo, qhi = qlo.astype(np.int64), qhi.astype(np.int64)
    sign = np.where(chain.direction() < 0, -1, 1)
    xlo = np.where(sign > 0, qlo, -qhi)
    xhi = np.where(sign > 0, qhi, -qlo)
    oracle = LevelOracle(chain, sign)
    T = find_thresholds(oracle, int(xlo.min()), int(xhi.max()))
    enc = encode(T, xlo, xhi)
    return Conversion(sign, enc, verify_encoding(oracle, enc, xlo, xhi, exhaustive_limit))

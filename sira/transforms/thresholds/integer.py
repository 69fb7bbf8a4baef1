"""A chain as an exact integer requantizer on its integer input.

The chain's proven thresholds (:func:`.search.convert_chain`) are the exact
step points of its level index; :func:`sira.requant.find_integer_requant`
turns them into ``clip((x * m + b) >> s, 0, S)`` on the oriented input
``x = sign * q``. Here that is folded back onto ``q`` itself - a
decreasing channel gets a negative multiplier - with the levels the
encoding dropped as always reached folded into the offset and the clip::

    n(q) = clip((q * m_c + b_c) >> s, n_lo, n_hi)

``n`` is the quantizer's level index (value ``level0 + level_step * n``,
:class:`.chain.Requantizer`), so rounding mode and ties, narrow range and
signedness are whatever the chain's thresholds proved them to be.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from sira.requant import IntegerRequant, find_integer_requant

from .chain import Chain
from .search import EXHAUSTIVE_PAIRS, Conversion, convert_chain


@dataclasses.dataclass(frozen=True, eq=False)
class ChainRequant:
    """``n(q) = clip((q * m[c] + b[c]) >> shift, n_lo, n_hi)`` per channel c
    (exact Python ints); ``unit`` is the requantizer on the oriented input
    and ``conversion`` the thresholds it was proven against."""

    m: np.ndarray
    b: np.ndarray
    shift: int
    n_lo: int
    n_hi: int
    unit: IntegerRequant
    conversion: Conversion

    def index(self, q: np.ndarray) -> np.ndarray:
        """Level indices of integer inputs ``q`` (channels on the last axis)."""
        v = (np.asarray(q).astype(object) * self.m + self.b) // (1 << self.shift)
        return np.clip(v, self.n_lo, self.n_hi).astype(np.int64)


def chain_requant(chain: Chain, qlo, qhi, exhaustive_limit: int = EXHAUSTIVE_PAIRS) -> Optional[ChainRequant]:
    """The integer requantizer of ``chain`` on integers q in [qlo_c, qhi_c],
    or None when its steps have no affine form (e.g. a sigmoid)."""
    conv = convert_chain(chain, qlo, qhi, exhaustive_limit)
    sign = conv.sign
    qlo, qhi = np.asarray(qlo, dtype=np.int64), np.asarray(qhi, dtype=np.int64)
    xlo = np.where(sign > 0, qlo, -qhi)
    xhi = np.where(sign > 0, qhi, -qlo)
    enc = conv.encoding
    unit = find_integer_requant(enc.rows, int(xlo.min()), int(xhi.max()))
    if unit is None:
        return None
    C = chain.channels
    m = np.broadcast_to(unit.m, (C,)) if unit.shared else unit.m
    b = np.broadcast_to(unit.b, (C,)) if unit.shared else unit.b
    skipped = enc.skipped
    m_q = np.array([int(s) * int(v) for s, v in zip(sign, m)], dtype=object)
    b_q = np.array([int(v) + (skipped << unit.shift) for v in b], dtype=object)
    return ChainRequant(m_q, b_q, unit.shift, skipped, skipped + unit.steps, unit, conv)


__all__ = ["ChainRequant", "chain_requant"]

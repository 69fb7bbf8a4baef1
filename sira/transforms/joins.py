"""Residual joins of branches at unrelated scales, as small-integer hardware.

A ResNet block adds two quantized branches, ``s1*q1 + s2*q2``, with scales
a training run chose independently (float32 numbers whose ratio is no small
fraction), then requantizes the sum (Relu, a scale, a quantizer). Aggregation
can only align such branches on their common power-of-two grid, with integer
factors of ~2**24; the join stays a float step. But the requantizer decides
only which of a few levels each pair (q1, q2) falls in, and both integers
come from small proven ranges. So:

1. the exact level of every pair is computed: on the common grid
   ``t = 2**e`` both scales are integers, ``s_i = a_i*t``, and the chain
   after the Add is a chain on the (wide) integer ``Q = a1*q1 + a2*q2``
   whose thresholds the exact threshold search finds (every op's real
   semantics, see :mod:`sira.transforms.thresholds`);
2. the narrowest integer weights ``k1, k2`` (the scales rounded to m bits,
   m growing) for which some thresholds on ``v = k1*q1 + k2*q2`` give every
   pair of the proven ranges its exact level are searched for; for each
   level boundary that means ``max v`` below it < ``min v`` above it, and
   the threshold is that minimum - checked on every pair, so the rewrite is
   exact on the whole input domain by exhaustion;
3. the branch Muls get ``k1``, ``k2``, and the chain becomes one
   MultiThreshold on the integer sum (then the quantizer's output scale).

Only joins read by one chain into a quantizer, with per-tensor scales and
integer branches, at most :data:`MAX_PAIRS` pairs, are rewritten; the
others are reported with the reason and stay as they are.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Optional

import numpy as np
from onnx import NodeProto, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira.analysis import analyze
from sira.model import quiet, reinfer_shapes

from .thresholds.chain import CHAIN_OPS, QUANTIZERS, NotConvertible, build_chain, data_input, node_label
from .thresholds.passes import output_nodes, unique_name
from .thresholds.search import LevelOracle, encode, find_thresholds, storage_dtype

#: most (q1, q2) pairs a join's levels are checked on
MAX_PAIRS = 2**20
#: largest integer weight searched for (bits)
MAX_WEIGHT_BITS = 24


@dataclasses.dataclass
class JoinsReport:
    converted: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Branch:
    mul: NodeProto
    integer: str  # the integer tensor the Mul scales
    scale_input: int  # index of the Mul's constant
    scale: Fraction
    lo: int
    hi: int


def _branch(model: ModelWrapper, ra, name: str, add: NodeProto) -> tuple[Optional[_Branch], str]:
    """The Mul(integer tensor, scalar constant) feeding ``add`` as ``name``."""
    producer = model.find_producer(name)
    if producer is None or producer.op_type != "Mul" or len(model.find_consumers(name)) != 1:
        return None, f"'{name}' is not a Mul of an integer tensor by a constant read only by the join"
    for idx in (0, 1):
        c = model.get_initializer(producer.input[idx])
        x = producer.input[1 - idx]
        if c is None or c.size != 1 or not np.isfinite(c).all() or float(c.reshape(-1)[0]) == 0:
            continue
        bounds = ra[x].integer_values() if x in ra.ranges and not ra[x].is_const else None
        if bounds is None:
            return None, f"'{x}' is not an integer tensor"
        lo, hi = (int(np.min(bounds[0])), int(np.max(bounds[1])))
        return _Branch(producer, x, idx, Fraction(float(c.reshape(-1)[0])), lo, hi), ""
    return None, f"'{producer.name}' has no scalar constant scale"


def _chain_nodes(model: ModelWrapper, ra, start: str) -> Optional[list]:
    """The chain ops from ``start`` to the quantizer that ends it (each the
    only reader of the tensor before it), or None."""
    nodes = []
    outputs = {o.name for o in model.graph.output}
    t = start
    while True:
        readers = model.find_consumers(t)
        if len(readers) != 1 or t in outputs:
            return None
        node = readers[0]
        if data_input(node, ra) is None or node.input[data_input(node, ra)] != t:
            return None
        nodes.append(node)
        if node.op_type in QUANTIZERS:
            return nodes
        if node.op_type not in CHAIN_OPS:
            return None
        t = node.output[0]


def _levels(T: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """#{j : Q >= T[j]} for sorted thresholds."""
    return np.searchsorted(T, Q, side="right")


def _separating_thresholds(v: np.ndarray, levels: np.ndarray, steps: int) -> Optional[np.ndarray]:
    """Thresholds T'[j-1] (j = 1..steps) with #{j : v >= T'} == levels for
    every element, or None when some v of a lower level is not below every
    v of a higher one."""
    lo_v, hi_v = int(v.min()), int(v.max())
    vmin = np.full(steps + 1, hi_v + 1, dtype=np.int64)
    vmax = np.full(steps + 1, lo_v - 1, dtype=np.int64)
    np.minimum.at(vmin, levels, v)
    np.maximum.at(vmax, levels, v)
    below = np.maximum.accumulate(vmax)[:-1]  # largest v at a level < j
    above = np.minimum.accumulate(vmin[::-1])[::-1][1:]  # smallest v at a level >= j
    if np.any(below >= above):
        return None
    return above


def _narrow_weights(a: tuple[int, int], q1: np.ndarray, q2: np.ndarray, levels: np.ndarray, steps: int):
    """(k1, k2, thresholds) with the fewest weight bits that reproduce
    ``levels`` on every pair, or None."""
    biggest = max(abs(a[0]), abs(a[1]))
    for bits in range(1, MAX_WEIGHT_BITS + 1):
        k = [int(Fraction(x * 2**bits, biggest).__round__()) for x in a]
        v = (k[0] * q1[:, None] + k[1] * q2[None, :]).reshape(-1)
        thresholds = _separating_thresholds(v, levels, steps)
        if thresholds is not None:
            return k[0], k[1], thresholds
    return None


class IntegerJoins(Transformation):
    """See the module docstring. ``self.report`` lists the joins converted
    (with their integer weights) and those left as they were."""

    def __init__(self, input_spec=None):
        super().__init__()
        self.input_spec = input_spec
        self.report = JoinsReport()

    def apply(self, model: ModelWrapper):
        ra = analyze(model, self.input_spec)
        model = ra.model
        changed = False
        for add in [n for n in model.graph.node if n.op_type == "Add"]:
            if any(model.get_initializer(i) is not None for i in add.input) or len(add.input) != 2:
                continue
            try:
                self._convert(model, ra, add)
                changed = True
            except NotConvertible as e:
                self.report.skipped.append({"node": add.name or add.output[0], "reason": str(e)})
        if changed:
            with quiet():
                model = reinfer_shapes(model)
        return model, False

    def _convert(self, model: ModelWrapper, ra, add: NodeProto) -> None:
        label = node_label(add)
        branches = []
        for name in add.input:
            b, why = _branch(model, ra, name, add)
            if b is None:
                raise NotConvertible(f"{label}: {why}")
            branches.append(b)
        if ra[add.output[0]].is_scaled_int and ra[add.output[0]].integer_values() is not None:
            raise NotConvertible(f"{label}: already an integer join")
        nodes = _chain_nodes(model, ra, add.output[0])
        if nodes is None:
            raise NotConvertible(f"{label}: its sum is not read by one chain of monotone ops into a quantizer")
        pairs = (branches[0].hi - branches[0].lo + 1) * (branches[1].hi - branches[1].lo + 1)
        if pairs > MAX_PAIRS:
            raise NotConvertible(f"{label}: {pairs} input pairs, more than the {MAX_PAIRS} checked exhaustively")
        # the common power-of-two grid on which both scales are integers
        unit = Fraction(1, max(b.scale.denominator for b in branches))
        a = tuple(int(b.scale / unit) for b in branches)
        shape = ra[add.output[0]].shape
        grid = (np.full((1,) * len(shape), float(unit)), np.zeros((1,) * len(shape)))
        chain, axis = build_chain(nodes, ra, add.output[0], on_grid=True, grid=grid)
        if np.any(chain.direction() <= 0):
            raise NotConvertible(f"{label}: the chain after it is not increasing")
        q1 = np.arange(branches[0].lo, branches[0].hi + 1, dtype=np.int64)
        q2 = np.arange(branches[1].lo, branches[1].hi + 1, dtype=np.int64)
        Q = (a[0] * q1[:, None] + a[1] * q2[None, :]).reshape(-1)
        oracle = LevelOracle(chain, np.ones(chain.channels, dtype=np.int64))
        T = find_thresholds(oracle, int(Q.min()), int(Q.max()))
        if not np.all(T == T[:1]):
            raise NotConvertible(f"{label}: the chain after it differs per channel")
        levels = _levels(T[0], Q)
        found = _narrow_weights(a, q1, q2, levels, oracle.steps)
        if found is None:
            raise NotConvertible(f"{label}: no integer weights of up to {MAX_WEIGHT_BITS} bits reproduce every level")
        k1, k2, thresholds = found
        v = (k1 * q1[:, None] + k2 * q2[None, :]).reshape(-1)
        if not np.array_equal(_levels(thresholds, v), levels):  # the exhaustive proof, once more on the result
            raise NotConvertible(f"{label}: internal check of the integer thresholds failed")
        enc = encode(thresholds.reshape(1, -1), np.array([v.min()]), np.array([v.max()]))
        self._rewrite(model, add, branches, (k1, k2), nodes, chain, enc, len(shape), axis)
        self.report.converted.append({"node": add.name or add.output[0], "weights": [k1, k2], "pairs": int(pairs),
                                      "quantizer": node_label(nodes[-1])})  # fmt: skip

    @staticmethod
    def _rewrite(model, add, branches, weights, nodes, chain, enc, rank, axis) -> None:
        for b, k in zip(branches, weights):
            name = unique_name(model, f"{b.mul.name or b.mul.output[0]}_weight")
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(k, dtype=np.float32), name))
            b.mul.input[b.scale_input] = name
        quant = nodes[-1]
        stem = quant.name or quant.output[0]
        thr = unique_name(model, f"{stem}_thresholds")
        model.graph.initializer.append(numpy_helper.from_array(enc.rows.astype(storage_dtype(enc.rows)), thr))
        new_nodes, inits = output_nodes(model, chain.requant, enc, add.output[0], thr, quant.output[0], rank, axis, stem)
        for name, value in inits.items():
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        drop = {n.output[0] for n in nodes}
        kept = [n for n in model.graph.node if n.output[0] not in drop]
        at = kept.index(next(n for n in kept if n.output[0] == add.output[0])) + 1
        del model.graph.node[:]
        model.graph.node.extend(kept[:at] + new_nodes + kept[at:])


__all__ = ["IntegerJoins", "JoinsReport", "MAX_PAIRS"]

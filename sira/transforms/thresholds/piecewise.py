"""Non-monotone elementwise sub-graphs (SiLU = x * sigmoid(x), HardSwish,
GELU-like products) as exact piecewise thresholds.

The output level of a quantizer after any elementwise function f of one
integer tensor q is a step function of q: over the proven integer range
[lo_c, hi_c] of each channel it changes value at finitely many integer
breakpoints. Those are found by evaluating the sub-graph at every integer
of the range (vectorised over channels, on the float64 interval screen of
:mod:`sira.semantics`) and deciding exactly, with rational enclosures
refined until they decide, every point the screen leaves open. So every
integer of the range gets its exact level index n_c(q).

A monotone function is one MultiThreshold; a non-monotone one is the
difference of two: with U_c the breakpoints where the level rises (each
repeated by the size of its jump) and D_c those where it falls,

    n_c(q) = n_c(lo_c) + #{t in U_c : q >= t} - #{t in D_c : q >= t}

(every breakpoint lies above lo_c). The rewrite is two MultiThresholds on
q, a Sub, an Add of the per-channel base level, and a unit-scale Quant of
the quantizer's own width that is the identity on these integers but gives
the analysis (and the hardware widths) the quantizer's range back; then the
quantizer's scale and zero-point as in :func:`.passes.output_nodes`. Where
the levels only rise over the proven range from one common base, one
MultiThreshold carries them.

The integer read is the source tensor's value when it holds integers, else
its grid index q: the constant factors of its grid scale (e.g. the input
scale of the MAC producing it) are set to 1, so the MAC computes q itself -
allowed only when those factors reach nothing else and their exact product
is the grid scale (:func:`grid_scale_nodes`).

In hardware the counts are the existing threshold comparisons and the
rest small elementwise integer layers, so no new layer kind is needed.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction
from typing import Optional

import numpy as np
from onnx import NodeProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira import numerics as nx
from sira.analysis import analyze
from sira.budget import TimeBudget
from sira.range import compact
from sira.semantics import channel_fractions

from ..aggregate import _factors_of, _product, _source_operand, remove_exact_identities

from .chain import CHAIN_OPS, QUANTIZERS, NotConvertible, Requantizer, _channel_vector, _make_op, _make_requantizer, _params, _varying_axes, data_input, integer_values, node_label, per_channel
from .passes import QONNX_DOMAIN, ThresholdReport, UnconvertedChain, _finish, _graph_maps, _laid, _layout, splice, unique_name
from .search import FLOAT64_EXACT, MAX_PREC, START_PREC, storage_dtype

#: ops combining two tensors of the same sub-graph, with their interval rules
JOIN_OPS = ("Mul", "Add", "Sub")
#: default cap on the integers evaluated per channel
MAX_POINTS = 2**16
#: (channel, value) pairs screened at once
CHUNK = 2**20


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One node of the sub-graph: ``op`` (a map of sira.semantics, None for
    the identity) on tensor ``inputs[0]``, or a join ``kind`` of two."""

    output: str
    inputs: tuple
    op: object = None
    kind: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class ElementwiseDag:
    """An elementwise sub-graph from the integer tensor ``source`` to the
    quantizer ``requant``, its steps in topological order, per channel."""

    source: str
    steps: tuple
    requant: Requantizer
    channels: int
    sink: str
    #: the source's value is in_scale * q + in_bias for its integer q
    in_scale: np.ndarray
    in_bias: np.ndarray

    @functools.cached_property
    def _grid(self):
        return list(zip(channel_fractions(self.in_scale), channel_fractions(self.in_bias)))

    @property
    def screen_is_rigorous(self) -> bool:
        return not any(getattr(s.op, "libm", False) for s in self.steps)

    def screen(self, ch: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds [n_lo, n_hi] of the level index at integers q in channels
        ch (float64 interval arithmetic, outward rounded; a tensor used
        twice is bounded twice, which is sound and refined exactly below)."""
        x = q.astype(np.float64)
        s, b = self.in_scale[ch], self.in_bias[ch]
        lo, hi = nx.interval_mul(x, x, s, s)
        vals = {self.source: (nx.add_down(lo, b), nx.add_up(hi, b))}
        for s in self.steps:
            vals[s.output] = _join_floats(s, vals, ch)
        return self.requant.bounds(*vals[self.sink], ch)

    def exact(self, c: int, q: int) -> int:
        """The level index at channel c, integer q, exactly: rational ops
        keep points, irrational ones are enclosed ~2**-prec wide and refined
        until the quantizer decides (see search.LevelOracle.exact)."""
        prec = START_PREC
        while prec <= MAX_PREC:
            s, b = self._grid[c]
            v = s * int(q) + b
            vals = {self.source: (v, v)}
            for s in self.steps:
                vals[s.output] = _join_exact(s, vals, c, prec)
            n = self.requant.decide(c, *vals[self.sink])
            if n is not None:
                return n
            prec *= 4
        raise NotConvertible(f"channel {c}, input {q}: the level is not decided at {MAX_PREC} bits of precision")


def _join_floats(s: Step, vals: dict, ch: np.ndarray):
    if not s.kind:
        lo, hi = vals[s.inputs[0]]
        return (lo, hi) if s.op is None else s.op.bounds(lo, hi, ch)
    (alo, ahi), (blo, bhi) = vals[s.inputs[0]], vals[s.inputs[1]]
    if s.kind == "Mul":
        return nx.interval_mul(alo, ahi, blo, bhi)
    if s.kind == "Add":
        return nx.add_down(alo, blo), nx.add_up(ahi, bhi)
    return nx.add_down(alo, -bhi), nx.add_up(ahi, -blo)


def _join_exact(s: Step, vals: dict, c: int, prec: int):
    if not s.kind:
        lo, hi = vals[s.inputs[0]]
        return (lo, hi) if s.op is None else s.op.enclose(c, lo, hi, prec)
    (alo, ahi), (blo, bhi) = vals[s.inputs[0]], vals[s.inputs[1]]
    if s.kind == "Mul":
        corners = (alo * blo, alo * bhi, ahi * blo, ahi * bhi)
        return min(corners), max(corners)
    if s.kind == "Add":
        return alo + blo, ahi + bhi
    return alo - bhi, ahi - blo


# --------------------------------------------------------------------------
# the breakpoint search
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Piecewise:
    """Exact level indices as breakpoints: ``up`` and ``down`` (C, width)
    sorted rows, padded with ``pad`` (above every range, never reached);
    ``base`` (C,) the level index at each channel's low end; so
    n_c(q) = base_c + #{up_c <= q} - #{down_c <= q}."""

    up: np.ndarray
    down: np.ndarray
    base: np.ndarray
    pad: int
    verified: str

    def count(self, c: int, q: np.ndarray) -> np.ndarray:
        """The level indices of channel c at the integers q, from the rows."""
        q = np.asarray(q)[..., None]
        return self.base[c] + np.sum(self.up[c] <= q, axis=-1) - np.sum(self.down[c] <= q, axis=-1)


def level_table(dag: ElementwiseDag, qlo: np.ndarray, qhi: np.ndarray, max_points: int = MAX_POINTS) -> list[np.ndarray]:
    """Per channel, the exact level index at every integer of [qlo_c, qhi_c]."""
    width = qhi - qlo + 1
    if int(width.max()) > max_points:
        c = int(np.argmax(width))
        raise NotConvertible(f"channel {c} has {int(width[c])} integer inputs in [{int(qlo[c])}, {int(qhi[c])}], more than "
                             f"max_points={max_points} to evaluate; narrow the accumulator (fewer bits, A2Q) or raise max_points")  # fmt: skip
    if max(abs(int(v)) for v in np.concatenate([qlo, qhi])) >= FLOAT64_EXACT:
        raise NotConvertible("the integer input range exceeds 2**53, beyond exact float64 evaluation")
    ch = np.repeat(np.arange(dag.channels), width)
    q = np.concatenate([np.arange(int(a), int(b) + 1, dtype=np.int64) for a, b in zip(qlo, qhi)])
    n = np.empty(q.size, dtype=np.int64)
    for i in range(0, q.size, CHUNK):
        lo, hi = dag.screen(ch[i : i + CHUNK], q[i : i + CHUNK])
        for j in np.nonzero(lo != hi)[0]:
            lo[j] = dag.exact(int(ch[i + j]), int(q[i + j]))
        n[i : i + CHUNK] = lo
    return np.split(n, np.cumsum(width)[:-1])


def breakpoints(dag: ElementwiseDag, qlo: np.ndarray, qhi: np.ndarray, max_points: int = MAX_POINTS) -> Piecewise:
    """The exact piecewise form of ``dag`` over the integer ranges.

    Without libm ops the screen is rigorous and this is a proof. With them
    (Sigmoid, Tanh) the screen trusts libm to within LIBM_ULPS, as the
    range analysis does, and the level on both sides of every breakpoint
    and at both range ends is also decided exactly, so every step found is
    confirmed by the rigorous evaluation."""
    qlo, qhi = np.asarray(qlo, dtype=object), np.asarray(qhi, dtype=object)
    table = level_table(dag, qlo.astype(np.int64), qhi.astype(np.int64), max_points)
    pad = int(max(int(v) for v in qhi)) + 1
    ups, downs, checked = [], [], 0
    for c, n in enumerate(table):
        lo = int(qlo[c])
        jumps = np.diff(n)
        at = np.nonzero(jumps)[0]
        ups.append(np.repeat(lo + 1 + at[jumps[at] > 0], jumps[at][jumps[at] > 0]))
        downs.append(np.repeat(lo + 1 + at[jumps[at] < 0], -jumps[at][jumps[at] < 0]))
        if not dag.screen_is_rigorous:
            idx = np.unique(np.concatenate([[0, n.size - 1], at, at + 1]))
            for i in idx:
                if dag.exact(c, lo + int(i)) != n[i]:
                    raise NotConvertible(f"channel {c}, input {lo + int(i)}: the float screen disagrees with the exact level")
            checked += idx.size
    base = np.array([int(n[0]) for n in table], dtype=np.int64)
    how = f"every integer of the ranges ({sum(n.size for n in table)} (channel, value) pairs) screened, undecided ones exact"
    if checked:
        how += f"; exact on both sides of every breakpoint and at the range ends ({checked} points)"
    return Piecewise(_rows(ups, pad), _rows(downs, pad), base, pad, how)


def _rows(rows: list, pad: int) -> np.ndarray:
    width = max(1, max(r.size for r in rows))
    return np.stack([np.pad(r, (0, width - r.size), constant_values=pad) for r in rows]).astype(np.int64)


# --------------------------------------------------------------------------
# finding the sub-graphs
# --------------------------------------------------------------------------


def _join_inputs(node: NodeProto, ra) -> Optional[tuple]:
    """The two run-time inputs of a Mul/Add/Sub of same-shape tensors."""
    ins = [i for i in node.input if i]
    if node.op_type not in JOIN_OPS or len(ins) != 2 or any(ra.ranges.get(i) is None or ra[i].is_const for i in ins):
        return None
    out = ra[node.output[0]].shape
    return tuple(ins) if all(ra[i].shape == out for i in ins) else None


def find_dag(model: ModelWrapper, ra, quant: NodeProto) -> tuple[Optional[list], Optional[str], str]:
    """(nodes in graph order, source tensor, "") of the elementwise
    sub-graph ending in ``quant``, or (None, None, reason); the reason is
    None when the quantizer reads no such join (a chain, the monotone
    passes' business)."""
    producers, consumers, outputs = _graph_maps(model)
    inside, leaves, todo = {}, set(), [quant.input[0]]
    while todo:
        t = todo.pop()
        p = producers.get(t)
        if t in leaves or (p is not None and p.output[0] in inside):
            continue
        if p is not None and p.op_type in CHAIN_OPS and (d := data_input(p, ra)) is not None:
            inside[p.output[0]] = p
            todo.append(p.input[d])
        elif p is not None and (ins := _join_inputs(p, ra)) is not None:
            inside[p.output[0]] = p
            todo.extend(ins)
        else:
            leaves.add(t)
    if not any(n.op_type in JOIN_OPS and _join_inputs(n, ra) for n in inside.values()):
        return None, None, None
    for t in inside:
        if t in outputs or any(c.output[0] not in inside and c.output[0] != quant.output[0] for c in consumers.get(t, ())):
            return None, None, f"tensor '{t}' of the sub-graph is read outside it"
    if len(leaves) != 1:
        return None, None, f"the sub-graph reads {len(leaves)} run-time tensors {sorted(leaves)}; it must read one integer tensor"
    source = next(iter(leaves))
    if integer_values(ra[source]) is None and not ra[source].is_scaled_int:
        return None, None, f"the sub-graph's input '{source}' has no integer grid; quantize what feeds it"
    if len(consumers.get(source, ())) != sum(i == source for n in inside.values() for i in n.input):
        return None, None, f"tensor '{source}' is read outside the sub-graph too"
    order = [n for n in model.graph.node if n.output[0] in inside]
    return order, source, ""


def grid_scale_nodes(model: ModelWrapper, ra, source: str) -> list:
    """The (node, input index) of every constant factor of ``source``'s grid
    scale when setting them to 1 makes ``source`` its integer grid index q
    itself: the grid has no bias, each factor is the private operand of a
    Mul/Div whose output reaches ``source`` through tensors read once, and
    their exact product is the grid's scale.
    [] when ``source`` holds integers already; NotConvertible otherwise."""
    r = ra[source]
    if integer_values(r) is not None:
        return []
    if r.bias_sources or np.any(r.bias != 0) or not r.scale_sources:
        raise NotConvertible(f"the grid of '{source}' has a bias or no constant scale; aggregate its scale and bias first")
    producers, consumers, outputs = _graph_maps(model)
    inits = {i.name for i in model.graph.initializer}
    found = []
    for name in sorted(r.scale_sources):
        use, why = _source_operand(name, consumers, inits, ("Mul", "Div"))
        if use is None:
            raise NotConvertible(f"the scale of '{source}' cannot be taken off: {why}")
        t = use[0].output[0]
        for _ in range(len(model.graph.node)):
            if t == source:
                break
            users = consumers.get(t, [])
            if len(users) != 1 or t in outputs:
                raise NotConvertible(f"the scale '{name}' of '{source}' also reaches other tensors (through '{t}')")
            t = users[0].output[0]
        found.append(use)
    try:
        product = _product(_factors_of(model, found), np.shape(r.scale))
    except ValueError:
        product = None  # a factor that does not broadcast to the grid's shape
    if product is None or any(e != Fraction(float(v)) for e, v in zip(product, np.ravel(r.scale))):
        raise NotConvertible(f"the grid scale of '{source}' is not exactly the product of its constant factors; aggregate its scale first")
    return found


def build_dag(nodes: list, quant: NodeProto, ra, source: str) -> tuple[ElementwiseDag, int]:
    """The ElementwiseDag of ``nodes`` + ``quant`` on the grid index of
    ``source``, and its channel axis (the one axis along which parameters
    vary, axis 1 when none does)."""
    r = ra[source]
    shape = r.shape
    if len(shape) < 2:
        raise NotConvertible(f"tensor '{source}' has rank {len(shape)}; thresholds need a channel axis")
    unary = [n for n in nodes if _join_inputs(n, ra) is None]
    params = {n.output[0]: _params(n, ra) for n in unary + [quant]}
    on_grid = integer_values(r) is None
    one = np.ones((1,) * len(shape))
    params[source] = {"scale": compact(r.scale, shape), "bias": compact(r.bias, shape)} if on_grid else {"scale": one, "bias": 0 * one}
    axes = set().union(*(_varying_axes(a) for p in params.values() for a in p.values()))
    if len(axes) > 1:
        raise NotConvertible(f"parameters vary along axes {sorted(axes)}; thresholds can be per channel (one axis) only")
    axis = axes.pop() if axes else 1
    C = shape[axis]
    vec = {k: {n: _channel_vector(a, C) for n, a in p.items()} for k, p in params.items()}
    steps = []
    for n in nodes:
        ins = _join_inputs(n, ra)
        if ins is not None:
            steps.append(Step(n.output[0], ins, kind=n.op_type))
        else:
            steps.append(Step(n.output[0], (n.input[data_input(n, ra)],), op=_make_op(n, ra, vec[n.output[0]])))
    requant = _make_requantizer(quant, ra, vec[quant.output[0]], C)
    grid = vec[source]
    return ElementwiseDag(source, tuple(steps), requant, C, nodes[-1].output[0], grid["scale"], grid["bias"]), axis


# --------------------------------------------------------------------------
# the rewrite
# --------------------------------------------------------------------------


def _quant_params(requant: Requantizer) -> tuple[int, int, int]:
    """(bits, signed, narrow) of a multi-bit quantizer's integer levels."""
    signed = int(requant.qmin < 0)
    narrow = int(signed and requant.qmin == -requant.qmax)
    bits = (requant.qmax - requant.qmin + 1 + narrow).bit_length() - 1
    return bits, signed, narrow


def _levels(model, new, inits, name, counter, pw: Piecewise, rq: Requantizer, base_levels: np.ndarray, rank: int, axis: int) -> str:
    """MultiThreshold(up) [- MultiThreshold(down)] + base, then a unit-scale
    quantizer of the levels' own range: the identity on these integers,
    it gives the analysis (and the hardware widths) the quantizer's range
    back, which the difference of two counts over-approximates."""
    cur = counter(pw.up, "up")
    if np.any(pw.down < pw.pad):
        down, diff = counter(pw.down, "down"), name("steps")
        new.append(helper.make_node("Sub", [cur, down], [diff], name=name("Sub")))
        cur = diff
    base, levels = name("base"), name("levels")
    inits[base] = _laid(base_levels.astype(np.float64), rank, axis)
    new.append(helper.make_node("Add", [cur, base], [levels], name=name("Base")))
    tight, one, zero = name("levels_q"), name("unit"), name("zero")
    inits[one], inits[zero] = np.asarray(1.0, dtype=np.float32), np.asarray(0.0, dtype=np.float32)
    if rq.bipolar:
        new.append(helper.make_node("BipolarQuant", [levels, one], [tight], domain=QONNX_DOMAIN, name=name("Range")))
    else:
        bits, signed, narrow = _quant_params(rq)
        width = name("bits")
        inits[width] = np.asarray(float(bits), dtype=np.float32)
        new.append(helper.make_node("Quant", [levels, one, zero, width], [tight], domain=QONNX_DOMAIN, name=name("Range"),
                                    signed=signed, narrow=narrow, rounding_mode="ROUND"))  # fmt: skip
    return tight


def _rewrite(model: ModelWrapper, nodes: list, quant: NodeProto, dag: ElementwiseDag, pw: Piecewise, rank: int, axis: int) -> None:
    """Replace the sub-graph and quantizer by the quantizer's integer levels
    (one MultiThreshold where the levels only rise from one common base,
    else :func:`_levels`), then [Add(-z)] [Mul(s)] as the quantizer's own
    float arithmetic (L - z) * s."""
    rq = dag.requant
    stem = quant.name or quant.output[0]
    new, inits = [], {}

    def name(suffix):
        return unique_name(model, f"{stem}_{suffix}")

    def counter(rows, suffix, bias=0, dtype=None):
        thr, out = name(f"{suffix}_thresholds"), name(f"{suffix}_count")
        inits[thr] = rows.astype(storage_dtype(rows))
        new.append(helper.make_node("MultiThreshold", [dag.source, thr], [out], domain=QONNX_DOMAIN, name=name(f"{suffix}_MultiThreshold"),
                                    out_dtype=dtype or nx.narrowest_int_type(0, rows.shape[1] * rq.level_step), out_scale=float(rq.level_step),
                                    out_bias=float(bias), data_layout=_layout(rank, axis)))  # fmt: skip
        return out

    base_levels = rq.level0 + rq.level_step * pw.base
    if not np.any(pw.down < pw.pad) and np.all(base_levels == base_levels[0]):
        # monotone over the proven range: one MultiThreshold is the quantizer's levels, its range exact
        cur = counter(pw.up, "up", int(base_levels[0]), rq.out_dtype)
    else:
        cur = _levels(model, new, inits, name, counter, pw, rq, base_levels, rank, axis)
    s, z = rq.scale, rq.zeropt
    if np.any(z != 0):
        zname, shifted = name("neg_zeropt"), name("shifted")
        inits[zname] = _laid(-z, rank, axis)
        new.append(helper.make_node("Add", [cur, zname], [shifted], name=name("Add")))
        cur = shifted
    if np.any(s != 1):
        sname, scaled = name("scale"), name("scaled")
        inits[sname] = _laid(s, rank, axis)
        new.append(helper.make_node("Mul", [cur, sname], [scaled], name=name("Mul")))
        cur = scaled
    new[-1].output[0] = quant.output[0]
    splice(model, nodes, new, inits, quant.output[0])


@dataclasses.dataclass
class ConvertedPiecewise:
    quantizer: str
    nodes: list
    input: str
    channels: int
    rising_per_row: int
    falling_per_row: int
    verified: str


class ConvertDagsToPiecewiseThresholds(Transformation):
    """Every quantizer still on run-time data whose input is an elementwise
    sub-graph of one integer tensor, joining that tensor with itself
    (SiLU: Mul(x, Sigmoid(x)) after scale and bias), becomes exact
    piecewise thresholds (see the module docstring). Runs after
    ConvertChainsToThresholds; ``self.report`` lists each conversion and
    each sub-graph left as it was, with the reason."""

    def __init__(self, input_spec=None, max_points: int = MAX_POINTS, max_bits: int = 8, budget: Optional[TimeBudget] = None):
        super().__init__()
        self.input_spec = input_spec
        self.max_points = max_points
        self.max_bits = max_bits
        self.budget = budget or TimeBudget()
        self.report = ThresholdReport()

    def apply(self, model: ModelWrapper):
        ra = analyze(model, self.input_spec)
        model = ra.model
        self.report = ThresholdReport()
        rewritten = False
        quants = [q for q in model.graph.node if q.op_type in QUANTIZERS and data_input(q, ra) == 0]
        for quant in quants:
            self.budget.check(f"at the sub-graph of {node_label(quant)}")
            nodes, source, reason = find_dag(model, ra, quant)
            names = [node_label(n) for n in (nodes or []) + [quant]]
            if nodes is None:
                if reason is not None:
                    self.report.unconverted.append(UnconvertedChain(node_label(quant), names, reason))
                continue
            try:
                dag, axis = build_dag(nodes, quant, ra, source)
                if dag.requant.steps >= 2**self.max_bits:
                    raise NotConvertible(f"{dag.requant.steps + 1} levels: wider than max_bits={self.max_bits}")
                scale_nodes = grid_scale_nodes(model, ra, source)
                r = ra[source]
                lo, hi = (r.int_lo, r.int_hi) if scale_nodes else integer_values(r)
                qlo, qhi = per_channel(lo, axis, dag.channels, np.min), per_channel(hi, axis, dag.channels, np.max)
                pw = breakpoints(dag, qlo, qhi, self.max_points)
            except NotConvertible as e:
                self.report.unconverted.append(UnconvertedChain(node_label(quant), names, str(e)))
                continue
            for node, idx in scale_nodes:
                old = model.get_initializer(node.input[idx])
                model.set_initializer(node.input[idx], np.ones_like(old))
            _rewrite(model, nodes, quant, dag, pw, len(ra[source].shape), axis)
            rewritten = True
            self.report.converted.append(ConvertedPiecewise(node_label(quant), names, source, dag.channels,
                                                            int(np.sum(pw.up < pw.pad, axis=1).max()),
                                                            int(np.sum(pw.down < pw.pad, axis=1).max()), pw.verified))  # fmt: skip
        if rewritten:
            remove_exact_identities(model)  # the Muls whose scale was taken off
            model = _finish(model)
        return model, False

"""The threshold passes: find each quantizer's chain in the graph, convert
it (:mod:`.search`) and rewrite it as [Mul(sign)] -> MultiThreshold
[-> Add(-z) -> Mul(s)]."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Optional

import numpy as np
from onnx import NodeProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira import numerics as nx
from sira.analysis import analyze
from sira.budget import TimeBudget
from sira.inputspec import load_spec
from sira.model import fresh_name, input_aliases, quiet, reinfer_shapes

from .chain import CHAIN_ENDS, CHAIN_OPS, MOVEMENT_OPS, QUANTIZERS, Chain, NotConvertible, Requantizer, build_chain, data_input, integer_values, node_label, per_channel
from .search import EXHAUSTIVE_PAIRS, Conversion, Encoding, convert_chain, storage_dtype

QONNX_DOMAIN = "qonnx.custom_op.general"


@dataclasses.dataclass
class ConvertedChain:
    quantizer: str
    nodes: list
    input: str
    channels: int
    rows: int
    thresholds_per_row: int
    dropped_always_reached: int
    dropped_never_reached: int
    negated_channels: list
    stuck_channels: list
    verified: str


@dataclasses.dataclass
class UnconvertedChain:
    quantizer: str
    nodes: list
    reason: str


@dataclasses.dataclass
class ThresholdReport:
    """What a threshold pass did: each converted chain and each chain left
    as it was, with the reason."""

    converted: list = dataclasses.field(default_factory=list)
    unconverted: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Candidate:
    quant: NodeProto
    #: chain ops upstream of the quantizer, nearest the start first
    ops: list
    #: the tensors the chain could start at, upstream-most first
    starts: list


def _graph_maps(model: ModelWrapper):
    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}
    return producers, consumers, outputs


def _candidates(model: ModelWrapper, ra) -> list[_Candidate]:
    """Every quantizer on run-time data, with the longest run of chain ops
    before it whose intermediate tensors nothing else reads."""
    producers, consumers, outputs = _graph_maps(model)
    found = []
    for quant in model.graph.node:
        if quant.op_type not in CHAIN_ENDS or data_input(quant, ra) != 0:
            continue
        ops, starts = [], [quant.input[0]]
        t = quant.input[0]
        while True:
            p = producers.get(t)
            if p is None or p.op_type not in CHAIN_OPS or len(consumers.get(t, ())) != 1 or t in outputs:
                break
            d = data_input(p, ra)
            if d is None:
                break
            ops.insert(0, p)
            t = p.input[d]
            starts.insert(0, t)
        if quant.op_type in QUANTIZERS or ops:  # a MultiThreshold ends a chain only after elementwise ops
            found.append(_Candidate(quant, ops, starts))
    return found


def _input_path(model: ModelWrapper, tensor: str) -> Optional[str]:
    """The graph input whose values reach ``tensor`` through movement ops
    only, every tensor on the way read by one node (so converting the input
    to raw integers changes nothing else); None if there is none."""
    producers, consumers, outputs = _graph_maps(model)
    inputs = {i.name for i in model.graph.input} - {i.name for i in model.graph.initializer}
    t = tensor
    if len(consumers.get(t, ())) != 1:
        return None
    while t not in inputs:
        p = producers.get(t)
        if p is None or p.op_type not in MOVEMENT_OPS or t in outputs:
            return None
        t = p.input[0]
        if len(consumers.get(t, ())) != 1:
            return None
    return t if len(consumers.get(t, ())) == 1 and t not in outputs else None


def unique_name(model: ModelWrapper, stem: str) -> str:
    return fresh_name(stem, set(model.get_all_tensor_names()) | {n.name for n in model.graph.node})


def _layout(rank: int, axis: int) -> str:
    """A data_layout string with C at ``axis`` (qonnx reads only the C)."""
    others = iter({2: "N", 3: "NW", 4: "NHW", 5: "NDHW"}.get(rank, "N" + "X" * (rank - 2)))
    return "".join("C" if i == axis else next(others) for i in range(rank))


def _laid(v: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-channel vector as a float32 tensor broadcasting along ``axis``
    (a scalar when all entries are equal)."""
    if np.all(v == v[0]):
        return np.asarray(v[0], dtype=np.float32)
    shape = [1] * rank
    shape[axis] = v.size
    return v.astype(np.float32).reshape(shape)


def _f32_exact(v: Fraction) -> bool:
    return Fraction(float(np.float32(float(v)))) == v


def output_nodes(model, requant: Requantizer, enc: Encoding, mt_in: str, thr: str, out: str, rank: int, axis: int, stem: str):
    """MultiThreshold plus what reproduces the quantizer's output values."""
    lvl0 = requant.level0 + requant.level_step * enc.skipped
    s, z = requant.scale, requant.zeropt
    uniform = bool(np.all(s == s[0]) and np.all(z == z[0]))
    if uniform:
        sf, zf = Fraction(float(s[0])), Fraction(float(z[0]))
        out_scale, out_bias = sf * requant.level_step, sf * (lvl0 - zf)
        if _f32_exact(out_scale) and _f32_exact(out_bias):
            return [_mt_node(model, mt_in, thr, out, requant, float(out_scale), float(out_bias), rank, axis, stem)], {}
    levels = unique_name(model, f"{stem}_levels")
    nodes = [_mt_node(model, mt_in, thr, levels, requant, float(requant.level_step), float(lvl0), rank, axis, stem)]
    inits = {}
    cur = levels
    if np.any(z != 0):
        zname, shifted = unique_name(model, f"{stem}_neg_zeropt"), unique_name(model, f"{stem}_shifted")
        inits[zname] = _laid(-z, rank, axis)
        nodes.append(helper.make_node("Add", [cur, zname], [shifted], name=unique_name(model, f"{stem}_Add")))
        cur = shifted
    sname = unique_name(model, f"{stem}_scale")
    inits[sname] = _laid(s, rank, axis)
    nodes.append(helper.make_node("Mul", [cur, sname], [out], name=unique_name(model, f"{stem}_Mul")))
    return nodes, inits


def _mt_node(model, inp, thr, out, requant, out_scale, out_bias, rank, axis, stem):
    return helper.make_node(
        "MultiThreshold",
        [inp, thr],
        [out],
        domain=QONNX_DOMAIN,
        name=unique_name(model, f"{stem}_MultiThreshold"),
        out_dtype=requant.out_dtype,
        out_scale=out_scale,
        out_bias=out_bias,
        data_layout=_layout(rank, axis),
    )


def _rewrite(model: ModelWrapper, nodes: list, start: str, chain: Chain, conv: Conversion, rank: int, axis: int) -> None:
    """Replace ``nodes`` (chain ops and quantizer) by
    [Mul(sign)] -> MultiThreshold [-> Add(-z) -> Mul(s)], writing the
    quantizer's output tensor. Nodes are matched by output name (protobuf
    copies messages, so identities do not survive a rewrite)."""
    quant = nodes[-1]
    stem = quant.name or quant.output[0]
    new_nodes, inits = [], {}
    mt_in = start
    if np.any(conv.sign < 0):
        sname, oriented = unique_name(model, f"{stem}_sign"), unique_name(model, f"{stem}_oriented")
        inits[sname] = _laid(conv.sign.astype(np.float64), rank, axis)
        new_nodes.append(helper.make_node("Mul", [start, sname], [oriented], name=unique_name(model, f"{stem}_Sign")))
        mt_in = oriented
    thr = unique_name(model, f"{stem}_thresholds")
    inits[thr] = conv.encoding.rows.astype(storage_dtype(conv.encoding.rows))
    out_nodes, out_inits = output_nodes(model, chain.requant, conv.encoding, mt_in, thr, quant.output[0], rank, axis, stem)
    new_nodes += out_nodes
    inits.update(out_inits)
    splice(model, nodes, new_nodes, inits, quant.output[0])


def splice(model: ModelWrapper, old_nodes, new_nodes, inits: dict, output: str) -> None:
    """Replace ``old_nodes`` by ``new_nodes`` (placed where the node making
    ``output`` was) and add the initializers ``inits`` (name -> value)."""
    for name, value in inits.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    drop = {n.output[0] for n in old_nodes}
    kept = []
    for n in model.graph.node:
        if n.output[0] == output:
            kept.extend(new_nodes)
        elif n.output[0] not in drop:
            kept.append(n)
    del model.graph.node[:]
    model.graph.node.extend(kept)


def _finish(model: ModelWrapper) -> ModelWrapper:
    with quiet():
        return reinfer_shapes(model)


class _ThresholdPass(Transformation):
    """Shared driver: analyze, pick each chain's start, convert, rewrite.

    One application converts every convertible chain and returns
    ``modified=False`` (qonnx's fixed-point loop then runs it once; a second
    run finds only chains it already explained). ``self.report`` lists the
    conversions and the chains left as they were."""

    #: the chain's integer is the start tensor's grid index (True) or its value
    on_grid = False

    def __init__(self, input_spec=None, exhaustive_limit: int = EXHAUSTIVE_PAIRS, max_bits: int = 8, budget: Optional[TimeBudget] = None):
        super().__init__()
        self.input_spec = input_spec
        self.exhaustive_limit = exhaustive_limit
        self.max_bits = max_bits
        self.budget = budget or TimeBudget()
        self.report = ThresholdReport()

    def _start(self, model, ra, cand: _Candidate) -> tuple[Optional[str], Optional[str]]:
        """(start tensor, "") to convert, (None, reason) to report the chain
        as unconverted, (None, None) when the chain is another pass's."""
        raise NotImplementedError

    def _int_range(self, r, axis: int, C: int) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, the proven range of the integer the chain reads."""
        lo, hi = (r.int_lo, r.int_hi) if self.on_grid else integer_values(r)
        return per_channel(lo, axis, C, np.min), per_channel(hi, axis, C, np.max)

    def _converted(self, model, ra, start: str) -> None:
        """Hook after a chain on ``start`` was rewritten."""

    def apply(self, model: ModelWrapper):
        ra = analyze(model, self.input_spec)
        model = ra.model
        self.report = ThresholdReport()
        rewritten = False
        candidates = _candidates(model, ra)
        for done, cand in enumerate(candidates):
            self.budget.check(f"at the chain of {node_label(cand.quant)} ({done} of {len(candidates)} chains converted)")
            start, reason = self._start(model, ra, cand)
            nodes = cand.ops[cand.starts.index(start) :] + [cand.quant] if start else cand.ops + [cand.quant]
            names = [node_label(n) for n in nodes]
            if start is None:
                if reason is not None:
                    self.report.unconverted.append(UnconvertedChain(node_label(cand.quant), names, reason))
                continue
            try:
                chain, axis = build_chain(nodes, ra, start, self.on_grid)
                if chain.requant.steps >= 2**self.max_bits:
                    raise NotConvertible(f"{chain.requant.steps + 1} levels: wider than max_bits={self.max_bits}")
                conv = convert_chain(chain, *self._int_range(ra[start], axis, chain.channels), self.exhaustive_limit)
            except NotConvertible as e:
                self.report.unconverted.append(UnconvertedChain(node_label(cand.quant), names, str(e)))
                continue
            _rewrite(model, nodes, start, chain, conv, len(ra[start].shape), axis)
            self._converted(model, ra, start)
            rewritten = True
            enc = conv.encoding
            self.report.converted.append(
                ConvertedChain(
                    quantizer=node_label(cand.quant),
                    nodes=names,
                    input=start,
                    channels=chain.channels,
                    rows=int(enc.rows.shape[0]),
                    thresholds_per_row=int(enc.rows.shape[1]),
                    dropped_always_reached=enc.skipped,
                    dropped_never_reached=enc.dropped_top,
                    negated_channels=[int(c) for c in np.nonzero(conv.sign < 0)[0]],
                    stuck_channels=list(enc.stuck),
                    verified=conv.verified,
                )
            )
        return (_finish(model) if rewritten else model), False


class ConvertChainsToThresholds(_ThresholdPass):
    """Every chain that starts at an integer tensor (every value an integer:
    integer scale and bias - a MAC accumulator after scale/bias aggregation,
    or an earlier threshold's levels) and ends in a Quant/BipolarQuant
    becomes one MultiThreshold on that tensor. The start is the
    upstream-most integer tensor of the chain.

    ``input_spec`` is what :func:`sira.analyze` takes; quantizers wider than
    ``max_bits`` (2**bits - 1 thresholds) are left as they are."""

    def _start(self, model, ra, cand):
        for t in cand.starts:
            if integer_values(ra[t]) is not None:
                return t, ""
        first = cand.starts[0]
        r = ra[first]
        src = _input_path(model, first)
        if src is not None and r.is_scaled_int:
            return None, f"the chain reads graph input '{src}' on its grid (scale {float(np.ravel(r.scale)[0]):g}); ConvertInputQuantToThresholds converts it"
        what = "has no integer grid" if not r.is_scaled_int else "has a scale or bias that is not an integer"
        return None, f"chain input '{first}' {what}; aggregate its scale and bias first (AggregateScaleBias)"


class ConvertInputQuantToThresholds(_ThresholdPass):
    """The first quantizer on a graph input that the input spec puts on an
    integer grid (``x = s*q + b``, e.g. uint8 pixels times 1/255) becomes
    integer thresholds on the raw ``q``: the input then takes ``q`` itself
    (annotated with its integer datatype) and its movement ops (Reshape,
    Flatten, ...) carry integers.

    After ``apply``: ``feed_map(feed)`` turns a feed of the original model
    into one of the converted model (``q = round((x - b)/s)``), for
    :func:`sira.verify_equivalent`; ``output_spec`` is the input spec of the
    converted model (the converted inputs as integer ranges). Both are
    usable before ``apply`` has run (``output_spec`` is filled in place), so
    a pipeline may pass them on up front."""

    on_grid = True

    def __init__(self, input_spec=None, exhaustive_limit: int = EXHAUSTIVE_PAIRS, max_bits: int = 8, budget: Optional[TimeBudget] = None):
        super().__init__(input_spec, exhaustive_limit, max_bits, budget)
        self.output_spec: dict = {}
        self._grids: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _start(self, model, ra, cand):
        first = cand.starts[0]
        src = _input_path(model, first)
        if src is None:
            return None, None
        if not ra[first].is_scaled_int:
            return None, f"graph input '{src}' has no integer grid in the input spec (give e.g. datatype UINT8 with scale 1/255)"
        return first, ""

    def _converted(self, model, ra, start):
        src = _input_path(model, start)
        r = ra.input_ranges[src]
        lo, hi = r.int_bounds()
        model.set_tensor_datatype(src, DataType[nx.narrowest_int_type(lo, hi)])
        self._grids[src] = (np.broadcast_to(r.scale, r.shape), np.broadcast_to(r.bias, r.shape))
        self.output_spec[src] = {"int_min": int(lo), "int_max": int(hi)}

    def apply(self, model: ModelWrapper):
        self._grids.clear()
        self.output_spec.clear()
        self.output_spec.update(load_spec(self.input_spec) or {})
        aliases = input_aliases(model)
        model, modified = super().apply(model)
        for alias, name in aliases.items():
            if name in self._grids:
                self.output_spec.pop(alias, None)
        return model, modified

    def feed_map(self, feed: dict) -> dict:
        """A feed of the original model -> the same inputs as raw integers."""
        out = dict(feed)
        for name, (s, b) in self._grids.items():
            if name in out:
                out[name] = nx.round_floats((np.asarray(out[name], dtype=np.float64) - b) / s, "ROUND")
        return out

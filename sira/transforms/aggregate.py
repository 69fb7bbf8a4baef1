"""Scale/bias aggregation: make every MAC layer compute on pure integers.

Between two requantization points a tensor is ``scale * q + bias`` with
``q`` computed by integer operations, and the analysis records which
constants (``scale_sources``, ``bias_sources``) contributed to scale and
bias. For every *target* - a tensor feeding only nonlinear ops (an
activation, a quantizer) or a graph output - the pass

1. plans: collects the target's sources and checks that each one is a
   constant operand of exactly one Mul/Div (scale) or Add/Sub (bias) node,
   private to this target (a constant shared with another target, or a
   source that is not such an operand, leaves the target as it is, reported
   with the reason; lowering and duplication of forking constants beforehand
   makes these rare, and :func:`mac_float_islands` names the MAC layers
   that stay on floats);
2. neutralizes the sources (scale factors become 1, biases 0), so the
   target now computes the integer ``q`` itself - except an integer offset
   added to a quantizer's unit-grid integers, which stays where it is (the
   quantizer's own signed integers, narrower dot products than the
   one-sided counts);
3. inserts one ``Mul(scale)`` and one ``Add(bias)`` right before the
   target's consumers, restoring the original value;
4. aligns joins: a residual Add or a Concat of branches whose scales stand
   in integer ratios (s_i = k_i*t) gets integer Muls k_i on its branches, so
   the joined integer is the one the analysis describes (k1*q1 + k2*q2 for
   an Add).

Afterwards the neutralized identity ops are removed exactly (no tolerance).
The pass needs the analysis of the model it rewrites, which it computes
from the input spec it is given.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation

from sira.analysis import analyze
from sira.errors import SiraError
from sira.model import quiet, reinfer_shapes, tensor_shapes, topological_order
from sira.ops import Trait, has_trait, is_mac, is_requantizer
from sira.range import CONCAT_MAX_FACTOR, ScaledIntRange, common_grid, part_grid_factors


def _nonlinear(node) -> bool:
    """Whether the integer chain ends at ``node`` (an activation, a
    quantizer): a float scale and bias cannot be carried through it, so
    aggregation targets are the tensors that feed only such ops. A
    BatchNormalization left by lowering counts too: its factor is
    irrational, so scale and bias stay in front of it, exactly."""
    return has_trait(node.op_type, Trait.NONLINEAR) or node.op_type == "BatchNormalization"


@dataclasses.dataclass
class AggregationReport:
    """What the pass did: one entry per target aggregated or skipped."""

    aggregated: list = dataclasses.field(default_factory=list)
    aligned_joins: list = dataclasses.field(default_factory=list)
    #: targets left as they were, with the reason (e.g. a graph input's scale,
    #: which only the input-quantizer conversion can remove)
    skipped: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _consumers(model: ModelWrapper) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            if i:
                out.setdefault(i, []).append(n)
    return out


def _producers(model: ModelWrapper) -> dict[str, object]:
    return {o: n for n in model.graph.node for o in n.output if o}


def _linear_since_quantizer(t: str, producers: dict, cache: dict) -> bool:
    """Whether ``t`` is computed from quantizer outputs, graph inputs and
    constants by linear ops only. A tensor downstream of an activation (a
    Relu keeps its input's grid) already has its scale restored by the
    target before that activation; the tail after it is threshold material."""
    if t in cache:
        return cache[t]
    node = producers.get(t)
    if node is None or is_requantizer(node.op_type):
        result = True
    elif _nonlinear(node):
        result = False
    else:
        result = all(_linear_since_quantizer(i, producers, cache) for i in node.input if i)
    cache[t] = result
    return result


def find_targets(model: ModelWrapper, report) -> list[str]:
    """Tensors whose consumers are all nonlinear ops (or that are graph
    outputs), computed from the previous quantizers by linear ops: where a
    layer's float scale and bias are gathered."""
    consumers = _consumers(model)
    producers = _producers(model)
    outputs = {o.name for o in model.graph.output}
    fresh: dict = {}
    targets = []
    for node in topological_order(model):
        for t in node.output:
            if not t or t not in report.ranges:
                continue
            r = report[t]
            if r.is_const or not r.is_scaled_int or _nonlinear(node):
                continue
            cons = consumers.get(t, [])
            if not ((t in outputs and not cons) or (cons and all(_nonlinear(c) for c in cons))):
                continue
            if cons and not all(c.input[0] == t for c in cons):
                continue  # the tensor is a parameter (scale, threshold) of its consumer
            if _linear_since_quantizer(t, producers, fresh):
                targets.append(t)
    return targets


@dataclasses.dataclass
class _Plan:
    target: str
    scale_nodes: list  # (node, input index of the constant)
    bias_nodes: list
    scale: np.ndarray
    bias: np.ndarray


def _source_operand(name: str, consumers: dict, initializers: set, kinds: tuple):
    """The (node, index) where constant ``name`` is used as a scale (Mul/Div)
    or bias (Add/Sub) operand, or a reason why it cannot be neutralized."""
    if name not in initializers:
        return None, f"'{name}' is not a constant of the model (a graph input's scale or bias)"
    users = consumers.get(name, [])
    if len(users) != 1:
        return None, f"constant '{name}' is used by {len(users)} nodes"
    node = users[0]
    if node.op_type not in kinds:
        return None, f"constant '{name}' feeds a {node.op_type} ({node.name}), not a {'/'.join(kinds)}; lower the model first"
    idx = list(node.input).index(name)
    if node.op_type in ("Div", "Sub") and idx != 1:
        return None, f"constant '{name}' is the left operand of {node.op_type} {node.name}"
    return (node, idx), ""


def _quantizer_offset(model: ModelWrapper, report, producers: dict, node, idx: int) -> bool:
    """Whether bias operand ``idx`` of ``node`` (an Add/Sub) is an integer
    offset of a quantizer's unit-grid integers - a signed quantizer written
    as a count and an offset (FINN's tidied MultiThreshold with its
    ``Add``). The sum is the quantizer's own integer value, already an
    integer for the MAC after it, so the offset stays: moved downstream it
    would turn the quantizer's centred range into a one-sided one, whose
    dot products need a wider accumulator."""
    data = node.input[1 - idx]
    source = producers.get(data)
    if source is None or not is_requantizer(source.op_type) or data not in report.ranges:
        return False
    offset = np.asarray(model.get_initializer(node.input[idx]), dtype=np.float64)
    return bool(np.all(report[data].scale == 1) and np.all(offset == np.rint(offset)))


def _escape(target: str, source_nodes: list, consumers: dict, producers: dict, outputs: set) -> str:
    """The first tensor whose value neutralizing ``source_nodes`` would change
    but which is read outside the path to ``target``, or "".

    The tensors that change are those downstream of the source nodes; the
    affine before ``target`` restores only ``target``. So every changed
    tensor other than ``target`` must feed the target's computation only."""
    cone = set()  # tensors on a linear path into the target
    stack = [target]
    while stack:
        t = stack.pop()
        if t in cone:
            continue
        cone.add(t)
        node = producers.get(t)
        if node is not None and not _nonlinear(node):
            stack.extend(i for i in node.input if i)
    stack = [o for n in source_nodes for o in n.output if o]
    seen = set()
    while stack:
        t = stack.pop()
        if t in seen or t == target:
            continue
        seen.add(t)
        if t not in cone or t in outputs:
            return t
        for user in consumers.get(t, []):
            if not all(o in cone for o in user.output if o):
                return t
            stack.extend(o for o in user.output if o)
    return ""


def plan(model: ModelWrapper, report) -> tuple[list[_Plan], list[dict]]:
    """Aggregation plans for every target, and the targets skipped (with
    reasons). A target is skipped when a source is not a private Mul/Div or
    Add/Sub constant, when another target claims one of its sources, or when
    neutralizing its sources would change a tensor that is also read outside
    its layer (a fork before the target)."""
    consumers = _consumers(model)
    producers = _producers(model)
    outputs = {o.name for o in model.graph.output}
    initializers = {i.name for i in model.graph.initializer}
    claimed: dict[str, str] = {}
    plans: list[_Plan] = []
    skipped: list[dict] = []
    for t in find_targets(model, report):
        r = report[t]
        if not (r.scale_sources or r.bias_sources) and np.all(r.scale == 1) and np.all(r.bias == 0):
            continue  # already integer
        scale_nodes, bias_nodes, reasons = [], [], []
        for names, kinds, sink in ((r.scale_sources, ("Mul", "Div"), scale_nodes), (r.bias_sources, ("Add", "Sub"), bias_nodes)):
            for name in sorted(names):
                use, why = _source_operand(name, consumers, initializers, kinds)
                if use is not None and sink is bias_nodes and _quantizer_offset(model, report, producers, *use):
                    continue
                if use is None:
                    reasons.append(why)
                elif name in claimed:
                    reasons.append(f"constant '{name}' also contributes to '{claimed[name]}'")
                else:
                    sink.append(use)
        if not reasons:
            leak = _escape(t, [n for n, _ in scale_nodes + bias_nodes], consumers, producers, outputs)
            if leak:
                reasons.append(f"tensor '{leak}' would change but is also read outside this layer")
        if reasons:
            skipped.append({"tensor": t, "reason": "; ".join(reasons)})
            continue
        for node, idx in scale_nodes + bias_nodes:
            claimed[node.input[idx]] = t
        plans.append(_Plan(t, scale_nodes, bias_nodes, r.scale, r.bias))
    return plans, skipped


def _set_initializer(model: ModelWrapper, name: str, value: float) -> None:
    old = model.get_initializer(name)
    model.set_initializer(name, np.full_like(old, value))


def _exact_steps(scale: np.ndarray, bias: np.ndarray, factors: list) -> list:
    """The restoring affine as (op, float32 constant) steps whose exact
    composition is ``scale * q + bias``. One Mul and one Add when float32
    holds both; otherwise the scale as the source factors it is the product
    of (``factors``: (op, constant) of the neutralized Mul/Div nodes, whose
    float32 values multiply exactly to it), and the bias as a sum of float32
    terms (a float64 is at most three of them). Also for an output scale:
    the build maps the model's outputs back through it to integers, which
    only an exact scale does for a wide accumulator."""
    steps = []
    if np.array_equal(np.asarray(scale, np.float32).astype(np.float64), scale) or not factors:
        steps.append(("Mul", np.asarray(scale, dtype=np.float32)))
    else:
        steps.extend((op, np.asarray(c, dtype=np.float32)) for op, c in factors)
    rest = np.asarray(bias, dtype=np.float64)
    terms = []
    while not terms or (np.any(rest != 0) and len(terms) < 4):
        term = rest.astype(np.float32)
        terms.append(("Add", term))
        rest = rest - term.astype(np.float64)
    return steps + terms


def _factors_of(model: ModelWrapper, scale_nodes: list) -> list:
    """(op, value) of each scale source, before it is neutralized."""
    return [(node.op_type, np.array(model.get_initializer(node.input[idx]))) for node, idx in scale_nodes]


def _product(factors: list, shape) -> Optional[list]:
    """The exact product of the factors per element (Fractions), or None."""
    from fractions import Fraction

    out = [Fraction(1)] * int(np.prod(shape))
    for op, c in factors:
        values = np.broadcast_to(np.asarray(c, dtype=np.float64), shape).ravel()
        if not np.all(np.isfinite(values)) or np.any(values == 0):
            return None
        out = [o * Fraction(float(v)) if op == "Mul" else o / Fraction(float(v)) for o, v in zip(out, values)]
    return out


def _insert_affine(model: ModelWrapper, target: str, steps: list, outputs: set) -> None:
    """The (op, constant) ``steps`` between ``target`` and its consumers; a
    graph output keeps its name (the producer is renamed instead)."""
    graph = model.graph
    base = target + "_int" if target in outputs else target
    if target in outputs:
        for n in graph.node:
            for k, o in enumerate(n.output):
                if o == target:
                    n.output[k] = base
    cur = base
    new_nodes = []
    neutral = {"Mul": 1.0, "Div": 1.0, "Add": 0.0}
    steps = [(op, value) for op, value in steps if not np.all(value == neutral[op])]
    for k, (op, value) in enumerate(steps):
        const = model.make_new_valueinfo_name()
        model.set_initializer(const, np.asarray(value, dtype=np.float32))
        last = k == len(steps) - 1
        out = target if (last and target in outputs) else model.make_new_valueinfo_name()
        same = [j for j, (o, _v) in enumerate(steps) if o == op]
        suffix = str(same.index(k)) if len(same) > 1 else ""
        new_nodes.append(helper.make_node(op, [cur, const], [out], name=f"{target}_aggregate_{op.lower()}{suffix}"))
        cur = out
    if target not in outputs:
        for n in graph.node:
            for k, i in enumerate(n.input):
                if i == target:
                    n.input[k] = cur
    elif not steps:
        for n in graph.node:
            for k, o in enumerate(n.output):
                if o == base:
                    n.output[k] = target
    producer_idx = max((i for i, n in enumerate(graph.node) if base in n.output), default=-1)
    for k, n in enumerate(new_nodes):
        graph.node.insert(producer_idx + 1 + k, n)


def _join_factors(node, report):
    """Integer factors per input that put the branches of a residual Add or
    a Concat on one grid, or None when they share it already or cannot."""
    parts = [report.ranges.get(i) for i in node.input]
    if any(r is None or r.is_const or not r.is_scaled_int for r in parts):
        return None
    if node.op_type == "Add" and len(parts) == 2:
        grid = common_grid(parts[0].scale, parts[1].scale)
        factors = None if grid is None else [grid[0], grid[1]]
    elif node.op_type == "Concat":
        found = part_grid_factors(parts, CONCAT_MAX_FACTOR)
        factors = None if found is None else found[0]
    else:
        return None
    if factors is None or all(np.all(np.asarray(f) == 1) for f in factors):
        return None
    return parts, factors


def _align_joins(model: ModelWrapper, report, neutralized: set) -> list[dict]:
    """Integer Muls on the branches of residual Adds and Concats whose scales
    differ by rational ratios, so the neutralized branches (plain integers)
    combine into the joined integer the analysis describes. Only joins whose
    branches lose all their scale sources qualify."""
    aligned = []
    graph = model.graph
    for node in list(graph.node):
        found = _join_factors(node, report)
        if found is None:
            continue
        parts, factors = found
        if not frozenset().union(*(r.scale_sources for r in parts)) <= neutralized:
            continue
        for k, factor in enumerate(factors):
            if np.all(np.asarray(factor) == 1):
                continue
            const = model.make_new_valueinfo_name()
            model.set_initializer(const, np.asarray(factor, dtype=np.float32))
            scaled = model.make_new_valueinfo_name()
            idx = list(graph.node).index(node)
            graph.node.insert(idx, helper.make_node("Mul", [node.input[k], const], [scaled], name=f"{node.name}_align{k}"))
            node.input[k] = scaled
        aligned.append({"node": node.name, "factors": [np.asarray(f).tolist() for f in factors]})
    return aligned


def remove_exact_identities(model: ModelWrapper) -> int:
    """Remove Mul/Div by exactly 1 and Add/Sub of exactly 0 whose output has
    the shape of their data input (one pass; no tolerance, so no rounding
    is ever dropped). Returns the number removed."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    constants = {i.name: i for i in graph.initializer}
    shapes = tensor_shapes(model)
    rename: dict[str, str] = {}
    keep = []
    removed = 0
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        neutral = {"Mul": 1.0, "Div": 1.0, "Add": 0.0, "Sub": 0.0}.get(node.op_type)
        if neutral is not None and len(node.input) == 2:
            data, const = node.input[0], node.input[1]
            if const not in constants and node.op_type in ("Mul", "Add"):
                data, const = const, data
            out = node.output[0]
            if (
                const in constants
                and np.all(numpy_helper.to_array(constants[const]) == neutral)
                and out not in outputs
                and shapes.get(out) == shapes.get(data)
            ):
                rename[out] = data
                removed += 1
                continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return removed


class AggregateScaleBias(Transformation):
    """Gather the float scale and bias of every layer into one Mul and one
    Add before its nonlinearity, so MatMul/Conv compute on integers.

    ``input_spec`` is what :func:`sira.analyze` takes. After ``apply``,
    ``self.report`` says what was aggregated and which float islands remain.
    """

    def __init__(self, input_spec=None):
        super().__init__()
        self.input_spec = input_spec
        self.report = AggregationReport()

    def apply(self, model: ModelWrapper):
        analysis = analyze(model, self.input_spec)
        model = analysis.model
        plans, skipped = plan(model, analysis)
        self.report.skipped = skipped
        outputs = {o.name for o in model.graph.output}
        neutralized = {n.input[i] for p in plans for n, i in p.scale_nodes}
        factors = {p.target: _factors_of(model, p.scale_nodes) for p in plans}
        self.report.aligned_joins = _align_joins(model, analysis, neutralized)
        for p in plans:
            for node, idx in p.scale_nodes:
                _set_initializer(model, node.input[idx], 1.0)
            for node, idx in p.bias_nodes:
                _set_initializer(model, node.input[idx], 0.0)
        with quiet():
            model = reinfer_shapes(model)
        # what each target computes now: the same integers, on the grid that
        # is left once the sources are gone (a bipolar input leaves 2*q - sum(W))
        after = analyze(model, self.input_spec)
        for p in plans:
            scale, bias = _restoring_affine(analysis[p.target], after[p.target], p.target)
            exact = factors[p.target] if _scale_is_product(after[p.target], scale, factors[p.target]) else []
            _insert_affine(model, p.target, _exact_steps(scale, bias, exact), outputs)
            self.report.aggregated.append(
                {
                    "tensor": p.target,
                    "scale_sources": [n.input[i] for n, i in p.scale_nodes],
                    "bias_sources": [n.input[i] for n, i in p.bias_nodes],
                }
            )
        with quiet():
            model = reinfer_shapes(model)
        remove_exact_identities(model)
        with quiet():
            model = reinfer_shapes(model)
        return model, False


def _restoring_affine(before: ScaledIntRange, now: ScaledIntRange, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(a, c) with before = a * now + c. Both are grids over the same
    integers q - before = S*q + B, now = s0*q + b0 - so a = S/s0 and
    c = B - a*b0. (Their integer *ranges* may differ in the half-rewritten
    model the grids are read from; the grids of a target depend only on the
    constants and quantizers since the last requantization.)"""
    if not now.is_scaled_int:
        raise SiraError(f"aggregation left '{name}' without an integer grid; this is a bug in sira, please report it")
    a = before.scale / now.scale
    return a, before.bias - a * now.bias


def _scale_is_product(now: ScaledIntRange, scale: np.ndarray, factors: list) -> bool:
    """Whether the restoring scale is the product of the neutralized scale
    sources (the target's integer carries no scale of its own) up to the
    float64 rounding of the analysis - so multiplying by the sources one
    after the other restores the exact value."""
    if not factors or not np.all(now.scale == 1):
        return False
    exact = _product(factors, np.shape(scale))
    if exact is None:
        return False
    return all(abs(float(e) - float(v)) <= 2.0**-40 * abs(float(e)) for e, v in zip(exact, np.ravel(scale)))


def _integral(a: np.ndarray) -> bool:
    return bool(np.all(a == np.round(a)))


def mac_float_islands(model: ModelWrapper, input_spec=None) -> list[dict]:
    """MAC nodes whose operands or result are not integer-valued (integer
    grid scale and bias, e.g. bipolar +-1 inputs are integers), with the
    reason - what aggregation could not remove."""
    analysis = analyze(model, input_spec)
    graph_inputs = {i.name for i in analysis.model.graph.input}
    islands = []
    for node in analysis.model.graph.node:
        if not is_mac(node.op_type):
            continue
        for t in list(node.input[:2]) + [node.output[0]]:
            r: Optional[ScaledIntRange] = analysis.ranges.get(t)
            if r is None or r.is_const:
                continue
            if not r.is_scaled_int:
                why = "it is the model's float input" if t in graph_inputs else "no quantizer puts it on an integer grid"
                islands.append({"node": node.name, "tensor": t, "reason": f"not on an integer grid: {why}"})
            elif not (_integral(r.scale) and _integral(r.bias)):
                islands.append({"node": node.name, "tensor": t, "reason": "carries a float scale or bias"})
    return islands

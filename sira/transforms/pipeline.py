"""The SIRA pipeline behind ``sira optimize``: lower, aggregate scales and
biases, turn elementwise chains into exact thresholds, annotate minimal
datatypes - then verifying that the model still computes what the
original computes (the original's reference runs meanwhile, on another
thread).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Optional

from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

from sira.analysis import analyze
from sira.budget import TimeBudget
from sira.errors import SiraError
from sira.execute import check_sample_memory
from sira.model import has_quantizers, load, topological_order, transform
from sira.report import datatype_name
from sira.verification import Background, EquivalenceChecker, flips_agreement, float32_agreement

from .aggregate import AggregateScaleBias, mac_float_islands
from .joins import IntegerJoins
from .lower import Lower
from .thresholds import ConvertChainsToThresholds, ConvertDagsToPiecewiseThresholds, ConvertInputQuantToThresholds
from .widths import AnnotateDatatypes

#: metadata of an optimized model: one line per float precision on how its
#: execution of the original agrees with the reference semantics
AGREEMENT_KEY = "sira_float_agreement"

@dataclasses.dataclass
class OptimizeReport:
    """What ``optimize`` did and measured."""

    layers: list
    float_islands: list
    passes: list
    samples: int
    #: how float64 and float32 execution of the original agree with the
    #: reference semantics the optimized model was checked against
    #: (sira.verification.FloatAgreement as JSON, with a one-line summary)
    agreement: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def optimize(
    model,
    input_spec=None,
    *,
    samples: int = 500,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    time_budget: Optional[float] = None,
) -> tuple[ModelWrapper, OptimizeReport]:
    """Run the SIRA pipeline on ``model`` (path or ModelWrapper).

    The final model is verified against the reference semantics of the
    original on ``samples`` random and corner inputs; the reference runs in
    the background while the passes transform the model, and each pass's
    output gets a structural check. When the final model differs, every
    pass's output is checked in order and the error names the first pass
    whose model differs, the output, the input and the first differing
    intermediate tensor (``sira.verify_equivalent``'s diagnosis).
    Returns the optimized model and an :class:`OptimizeReport`.
    ``time_budget`` (seconds, None for no limit) stops it with the pass and
    the chain it had reached once spent.
    """
    original = load(model) if not _prepared(model) else model
    check_sample_memory(original)  # before any work: the checks execute the model
    integer_inputs = any((original.get_tensor_datatype(i.name) or DataType["FLOAT32"]).is_integer() for i in original.graph.input)
    if not has_quantizers(original) and not integer_inputs:
        raise SiraError("the model has no quantizers (Quant, BipolarQuant, Trunc, MultiThreshold, QuantizeLinear): there "
                        "is no integer arithmetic to optimize; export it with quantizers (Brevitas, QKeras) first")  # fmt: skip
    base = analyze(original, input_spec)
    say = progress or (lambda _msg: None)
    say("reference")
    checker = EquivalenceChecker(original, input_spec, samples=samples, seed=seed, report=base, background=True)
    try:
        return _run_passes(original, input_spec, checker, base, say, TimeBudget(time_budget))
    finally:
        checker.close()


#: one pass's output: (label, model, feed map, input spec)
Stage = tuple


def _run_passes(original, input_spec, checker: EquivalenceChecker, base, say, budget: TimeBudget):
    """The passes of :func:`optimize`, then the final check (and, when it
    fails, the search for the pass that broke the model)."""
    current = original
    spec = input_spec
    feed_map = None
    passes = []
    stages: list[Stage] = []

    def run(label: str, transformation, new_spec=None, new_feed_map=None):
        nonlocal current, spec, feed_map
        budget.check(f"before the pass '{label}'")
        say(label)
        candidate = transform(current, transformation)
        check_structure(original, candidate, label)
        current, feed_map = candidate, (new_feed_map if new_feed_map is not None else feed_map)
        if new_spec is not None:
            spec = new_spec
        stages.append((label, current, feed_map, spec))
        entry = {"pass": label}
        rep = getattr(transformation, "report", None)
        if rep is not None:
            entry.update(rep.to_json() if hasattr(rep, "to_json") else dict(rep))
        passes.append(entry)

    run("lower", Lower())
    run("aggregate", AggregateScaleBias(spec))
    input_pass = ConvertInputQuantToThresholds(spec, budget=budget)
    run("input-thresholds", input_pass, new_spec=input_pass.output_spec, new_feed_map=input_pass.feed_map)
    run("thresholds", ConvertChainsToThresholds(spec, budget=budget))
    run("piecewise-thresholds", ConvertDagsToPiecewiseThresholds(spec, budget=budget))
    run("joins", IntegerJoins(spec))
    annotate = AnnotateDatatypes(spec)
    run("annotate", annotate)
    budget.check("before the final check")
    say("verify")
    # float32 execution of the original meanwhile (a thread of its own: it
    # runs one input at a time, mostly outside the interpreter)
    float32 = Background(lambda _stopping: float32_agreement(checker), "sira-float32")
    final = checker.check(current, stages[-1][0], feed_map=feed_map, spec=spec, raise_on_mismatch=False)
    if not final.ok:
        _blame_earlier(checker, stages[:-1])
        raise SiraError(final.first_mismatch)
    say("float32")
    agreement = {}
    for a in (flips_agreement(checker.float64_flips, final.samples, checker.undecided), float32.result()):
        agreement[a.precision] = a.to_json() | {"summary": a.summary()}
    # the written model says what it was checked against (a build reports it)
    current.set_metadata_prop(AGREEMENT_KEY, json.dumps({k: v["summary"] for k, v in agreement.items()}))
    report = OptimizeReport(
        layers=_with_thresholds(annotate.layers, passes, current, base),
        float_islands=mac_float_islands(current, spec),
        passes=passes,
        samples=final.samples,
        agreement=agreement,
    )
    return current, report


def _blame_earlier(checker: EquivalenceChecker, stages: list[Stage]) -> None:
    """Check the outputs of the passes in ``stages`` in order and raise,
    naming the pass, at the first that differs from the original (nothing
    when none does)."""
    for label, model, feed_map, spec in stages:
        checker.check(model, label, feed_map=feed_map, spec=spec)


def check_structure(original: ModelWrapper, candidate: ModelWrapper, label: str) -> None:
    """What a pass must keep, checked without executing anything: the
    graph outputs (names may change, not their number or shapes), every
    node input produced by a node, an initializer or a graph input, and
    no cycle."""
    shapes = lambda m: [tuple(d.dim_value for d in o.type.tensor_type.shape.dim) for o in m.graph.output]  # noqa: E731
    if shapes(candidate) != shapes(original):
        raise SiraError(f"{label}: the pass changed the graph outputs from shapes {shapes(original)} to {shapes(candidate)}")
    g = candidate.graph
    known = {i.name for i in g.input} | {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {""}
    for node in g.node:
        missing = [i for i in node.input if i not in known]
        if missing:
            raise SiraError(f"{label}: node '{node.name}' ({node.op_type}) reads {missing}, which nothing produces")
    topological_order(candidate)  # raises on a cycle


def _with_thresholds(layers: list, passes: list, final: ModelWrapper, base) -> list:
    """Add to each MAC layer of the optimized model (the widths its
    annotations state, so a report and the written model never disagree)
    the thresholds per channel of the chain that now reads its accumulator,
    and the datatype of that chain's quantizer in the original ``base``."""
    producers = {o: n.name for n in final.graph.node for o in n.output}
    quant_outputs = {n.name: n.output[0] for n in base.model.graph.node}
    chains = {}
    for entry in passes:
        if entry["pass"] == "thresholds":
            for c in entry.get("converted", []):
                chains[producers.get(c["input"])] = c
    for layer in layers:
        chain = chains.get(layer["layer"])
        if chain is not None:
            layer["thresholds_per_channel"] = chain["thresholds_per_row"]
            out = quant_outputs.get(chain["quantizer"])
            layer["output_dtype"] = datatype_name(base[out]) if out in base.ranges else "-"
    return layers


def _prepared(model) -> bool:
    return isinstance(model, ModelWrapper) and model.get_metadata_prop("sira_prepared") == "1"

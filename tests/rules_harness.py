"""One harness for testing range rules.

A rule is sound when every value the op can produce lies inside the range
it derives and, for a scaled-int range, on its integer grid within
[int_lo, int_hi]; it is tight (what an exact range claims) when its bounds
are attained. Every rule test checks exactly that, so they share these
steps:

* ``node_model``: the op under test as a one-node model, optionally fed by
  a Quant (the usual way a scaled-int range reaches an op);
* ``check_ranges``: analyze a model, execute it (qonnx) on given feeds and
  check every value of the checked tensors against its range and grid;
* ``assert_attains``: the values a test expects at the bounds are at them;
* ``check_node``: the three in one call for a new op, with corner and
  random inputs;
* ``rule_outputs``: the registered rule called directly on hand-made input
  ranges, for cases no model can express (infinite bounds, huge integers).

A new op needs its rule and a test as short as
``check_node("Relu", (2, 3), quant={"scale": 0.25, "bits": 4}, exact=True)``;
ops whose bounds are not reached at the corners of the input build their
feeds and call ``check_ranges`` and ``assert_attains`` themselves.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence, Union

import numpy as np
from onnx import helper
from qonnx.core.modelwrapper import ModelWrapper

from sira.analysis import analyze
from sira.range import ScaledIntRange
from sira.rules import RULES, RuleContext
from tests.helpers import assert_contains, execute, make_model, quant_node

#: the input range of ``check_node`` unless a test gives its own
DEFAULT_SPEC = (-10.0, 10.0)


def node_model(
    op: str,
    inputs: dict[str, Sequence[int]],
    outputs: Sequence[str] = ("y",),
    *,
    attrs: Optional[dict] = None,
    inits: Optional[dict[str, np.ndarray]] = None,
    quant: Optional[dict] = None,
    opset: int = 13,
) -> ModelWrapper:
    """``op`` reading the graph inputs, then the initializers (in order),
    and writing ``outputs``. ``quant`` puts a Quant in front of the first
    graph input: {"scale", "zeropt", "bits", "signed", "narrow"} (scale and
    zero-point may be per-channel arrays), so the op reads a scaled-int
    tensor named ``q`` instead."""
    nodes, params = [], {}
    operands = list(inputs)
    if quant is not None:
        params = {
            "qs": np.asarray(quant["scale"], np.float32),
            "qz": np.asarray(quant.get("zeropt", 0.0), np.float32),
            "qb": np.float32(quant["bits"]),
        }
        nodes.append(quant_node(operands[0], "qs", "qz", "qb", "q", signed=int(quant.get("signed", 1)), narrow=int(quant.get("narrow", 0))))
        operands[0] = "q"
    operands += list(inits or {})
    nodes.append(helper.make_node(op, operands, list(outputs), **(attrs or {})))
    return make_model(nodes, inputs, {o: None for o in outputs}, {**(inits or {}), **params}, opset=opset)


@dataclasses.dataclass(frozen=True)
class Checked:
    """The analysis of a model and every tensor of each execution."""

    report: object
    runs: list[dict[str, np.ndarray]]

    def __getitem__(self, name: str) -> ScaledIntRange:
        return self.report[name]


def check_ranges(
    model: ModelWrapper,
    spec,
    feeds: Union[Sequence[dict[str, np.ndarray]], Callable[[object], Sequence[dict[str, np.ndarray]]]],
    outputs: Optional[Sequence[str]] = None,
    *,
    skip: Sequence[str] = (),
    exact: bool = False,
    tol: float = 1e-6,
) -> Checked:
    """Analyze ``model`` for the input ``spec``, execute it on each feed and
    assert that every value of each of ``outputs`` (default: every dynamic
    tensor but those in ``skip``) lies in its range and on its integer grid,
    with its shape. ``feeds`` may be a function of the analysis, for inputs
    drawn from the analyzed input ranges. ``exact``: every checked range
    must claim exactness. ``tol`` is the relative slack for float32
    execution (see ``assert_contains``)."""
    report = analyze(model, spec)
    names = list(outputs) if outputs is not None else [n for n in report.dynamic_tensors() if n not in skip]
    if exact:
        assert all(report[o].exact for o in names), [o for o in names if not report[o].exact]
    runs = [execute(model, feed) for feed in (feeds(report) if callable(feeds) else feeds)]
    for values in runs:
        for name in names:
            r = report[name]
            assert tuple(np.shape(values[name])) == r.shape, name
            assert_contains(r, values[name], tol=tol, name=name)
    return Checked(report, runs)


def assert_attains(lo, hi, at_lo, at_hi, *, rtol: float = 0.0, atol=0.0, name: str = "") -> None:
    """The values ``at_lo`` / ``at_hi`` that a test produced from inputs
    meant to reach the bounds are the bounds ``lo`` / ``hi``, up to
    ``atol + rtol * |bound|`` (float32 execution of an exact bound may be an
    ulp off; ``atol`` may vary per element)."""
    for bound, got, which in ((lo, at_lo, "lo"), (hi, at_hi, "hi")):
        bound = np.asarray(bound, dtype=np.float64)
        got = np.asarray(got, dtype=np.float64)
        close = (got == bound) | (np.abs(got - bound) <= atol + rtol * np.abs(bound))
        assert np.all(close), f"{name}: {which} not attained: {np.broadcast_to(bound, close.shape)[~close][:5]} vs {np.broadcast_to(got, close.shape)[~close][:5]}"


def corner_feeds(shape, spec, seed: int = 0) -> list[np.ndarray]:
    """All-high, all-low, uniformly random and small random inputs."""
    lo, hi = spec
    rng = np.random.default_rng(seed)
    return [np.full(shape, hi), np.full(shape, lo), rng.uniform(lo, hi, shape), rng.uniform(max(lo, -1.0), min(hi, 1.0), shape)]


def check_node(
    op: str,
    in_shape: Sequence[int],
    *,
    attrs: Optional[dict] = None,
    inits: Optional[dict[str, np.ndarray]] = None,
    quant: Optional[dict] = None,
    outputs: Sequence[str] = ("y",),
    spec=DEFAULT_SPEC,
    exact: bool = False,
    opset: int = 13,
    seed: int = 0,
) -> Checked:
    """``op`` on input ``x`` (through ``quant`` if given) as a one-node
    model, executed on the corner and random inputs of ``spec``: every value
    in its range and on its grid. Where a range claims exactness, the lowest
    and highest values seen are its bounds (true of ops monotone in their
    input, which the all-low and all-high corners then reach)."""
    model = node_model(op, {"x": tuple(in_shape)}, outputs, attrs=attrs, inits=inits, quant=quant, opset=opset)
    checked = check_ranges(model, spec, [{"x": x} for x in corner_feeds(tuple(in_shape), spec, seed)], outputs, exact=exact)
    for name in outputs:
        r = checked[name]
        if r.exact:
            seen = np.stack([np.asarray(run[name], dtype=np.float64) for run in checked.runs])
            full = lambda a: np.broadcast_to(a, r.shape)  # noqa: E731
            assert_attains(full(r.lo), full(r.hi), seen.min(axis=0), seen.max(axis=0), rtol=1e-6, name=name)
    return checked


def rule_outputs(
    node,
    inputs: Sequence[Optional[ScaledIntRange]],
    out_shapes: Optional[Sequence] = None,
    *,
    attrs: Optional[dict] = None,
    out_datatypes: Optional[Sequence] = None,
    opset: int = 13,
) -> list:
    """The registered rule for ``node`` (a NodeProto, or an op type given
    with ``attrs``: inputs named in0, in1, ... and absent where ``inputs``
    holds None) called on ``inputs``; its list of output ranges.
    ``out_shapes`` default to unknown (None), one per node output."""
    if isinstance(node, str):
        names = [f"in{i}" if r is not None else "" for i, r in enumerate(inputs)]
        n_out = len(out_shapes) if out_shapes is not None else 1
        node = helper.make_node(node, names, [f"out{i}" for i in range(n_out)], **(attrs or {}))
    shapes = list(out_shapes) if out_shapes is not None else [None] * len(node.output)
    ctx = RuleContext(
        node=node,
        inputs=list(inputs),
        out_shapes=[tuple(s) if s is not None else None for s in shapes],
        out_datatypes=list(out_datatypes or [None] * len(shapes)),
        opset=opset,
    )
    return RULES[node.op_type].fn(ctx)

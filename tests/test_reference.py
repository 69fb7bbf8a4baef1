"""The reference semantics (sira.reference) and checking against it.

* the proven float64 error bound of every tensor holds: the float64 value
  of sampled elements of the examples lies within ``err`` of the exact value
  recomputed in rationals;
* a value one float32 ulp above a rounding tie: float32 execution of the
  original rounds it down, the reference (and the optimized model) up, and
  the agreement report names the quantizer with the margin;
* a float64 cancellation that loses the integer entirely is settled exactly
  through the ops before the quantizer, and reported as float64 flips;
* a wrong rewrite is still rejected and the first differing tensor named.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from onnx import helper

import sira
from sira.analysis import analyze
from sira.errors import SiraError
from sira.execute import Executor
from sira.model import load, transform
from sira.reference import Reference
from sira.verification import EquivalenceChecker, float32_agreement, flips_agreement, random_input
from tests.helpers import EXAMPLE, EXAMPLE_SPEC, make_model, quant_node

CONV = EXAMPLE.with_name("sira_conv.onnx")
CONV_SPEC = EXAMPLE.with_name("sira_conv.spec.json")


def _quantized_input_model(middle: list, inits: dict, out_scale: float = 1.0) -> sira.ModelWrapper:
    """x -> Quant(scale 1, 4-bit unsigned) -> middle ops (reading ``q``,
    writing ``m``) -> Quant(scale ``out_scale``, 8-bit unsigned) -> y."""
    params = {
        "s_in": np.float32(1.0), "z": np.float32(0.0), "b_in": np.float32(4.0),
        "s_out": np.float32(out_scale), "b_out": np.float32(8.0),
    }  # fmt: skip
    nodes = [quant_node("x", "s_in", "z", "b_in", "q", signed=0)] + middle + [quant_node("m", "s_out", "z", "b_out", "y", signed=0)]
    return make_model(nodes, {"x": (1, 4)}, {"y": (1, 4)}, {**params, **inits})


def _one_ulp_above_tie() -> np.float32:
    """A float32 c with 3*c one float32 ulp or less above 2.5: float32
    computes 3*c as exactly 2.5, the exact product is above it."""
    c = np.float32(2.5 / 3)
    for _ in range(64):
        exact = 3 * Fraction(float(c))
        if exact > Fraction(5, 2) and np.float32(3) * c == np.float32(2.5):
            return c
        c = np.nextafter(c, np.float32(1))
    raise AssertionError("no float32 constant found")


def test_error_bounds_hold_on_sampled_elements():
    rng = np.random.default_rng(3)
    for path, spec in ((EXAMPLE, EXAMPLE_SPEC), (CONV, CONV_SPEC)):
        report = analyze(load(str(path)), str(spec))
        ref = Reference(report)
        feeds = [{n: random_input(r, n, rng) for n, r in report.input_ranges.items()} for _ in range(4)]
        inexact = [t for t, b in ref.bounds.items() if not b.exact and t in ref.executor.dynamic]
        assert inexact, path
        ctx = ref.executor._run_batch(feeds)
        ref._batch.samples, ref._batch.ctx = len(feeds), ctx  # the batch exact_value reads, as the run's hook sets it
        checked = 0
        for name in inexact:
            values = np.asarray(ctx[name])
            per_sample = values.shape[0] // len(feeds)
            for _ in range(5):
                k = int(rng.integers(len(feeds)))
                local = tuple(int(rng.integers(d)) for d in (per_sample,) + values.shape[1:])
                lo, hi = ref.exact_value(name, k, local, 96)
                got = Fraction(float(values[(k * per_sample + local[0],) + local[1:]]))
                err = Fraction(ref.bounds[name].err)
                assert lo - err <= got <= hi + err, (path.name, name, local, float(got), float(lo), float(hi), float(err))
                checked += 1
        assert checked >= 10


def test_float32_near_tie_is_reported_with_its_margin_and_not_fatal():
    c = _one_ulp_above_tie()
    model = _quantized_input_model([helper.make_node("Mul", ["q", "c"], ["m"])], {"c": np.asarray(c, np.float32)})
    spec = (0.0, 15.0)
    report = analyze(model, spec)
    ref = Reference(report)
    three = np.array([[3.0, 3.0, 5.0, 0.0]])
    y_ref = next(iter(ref.run_many([{"x": three}])))["y"]
    y32 = Executor(report.model, np.float32).run({"x": three.astype(np.float32)})["y"]
    assert y_ref[0, 0] == 3.0  # exact: 3*c > 2.5 rounds up
    assert y32[0, 0] == 2.0  # float32: 3*c == 2.5, a tie, rounds to even

    checker = EquivalenceChecker(model, spec, samples=100, report=report)
    agreement = float32_agreement(checker)
    assert agreement.differing_samples > 0
    (node, entry), = agreement.quantizers.items()
    assert node == report.model.graph.node[-1].name
    assert 0 < entry["min_margin"] < 2.0**-21, entry
    assert "rounds differently" in agreement.summary()
    assert len(checker.levels) == 100  # kept while the reference ran: the same report as running it again
    checker.levels = []
    assert float32_agreement(checker) == agreement

    optimized, rep = sira.optimize(model, spec, samples=100)
    assert "float32" in rep.agreement and rep.agreement["float32"]["differing_samples"] > 0
    assert rep.agreement["float64"]["differing_samples"] == 0


def test_float64_cancellation_is_decided_exactly_through_the_ops_before_the_quantizer():
    # (q*0.25 + 2**54) - 2**54 loses q entirely in float64; exactly it is q*0.25
    big = np.float32(2.0**54)
    middle = [
        helper.make_node("Mul", ["q", "quarter"], ["a"]),
        helper.make_node("Add", ["a", "big"], ["b"]),
        helper.make_node("Sub", ["b", "big"], ["m"]),
    ]
    model = _quantized_input_model(middle, {"quarter": np.float32(0.25), "big": big})
    report = analyze(model, (0.0, 15.0))
    ref = Reference(report)
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.integers(0, 16, (1, 4)).astype(np.float64)} for _ in range(20)]
    for feed, ctx in zip(feeds, ref.run_many(feeds)):
        assert np.array_equal(ctx["y"], np.rint(feed["x"] * 0.25)), (feed["x"], ctx["y"])
    assert ref.notes.flips, "float64 loses these values; the reference must have corrected some"
    summary = flips_agreement(ref.notes.flips, len(feeds))
    assert summary.differing_samples > 0 and "rounds differently" in summary.summary()


def test_batches_side_by_side_decide_what_one_batch_at_a_time_decides(monkeypatch):
    """Two batches on two threads give the tensors one thread gives, and the
    same notes: exact decisions counted, flips in sample order."""
    from sira import execute

    big = np.float32(2.0**54)
    middle = [
        helper.make_node("Mul", ["q", "quarter"], ["a"]),
        helper.make_node("Add", ["a", "big"], ["b"]),
        helper.make_node("Sub", ["b", "big"], ["m"]),
    ]
    report = analyze(_quantized_input_model(middle, {"quarter": np.float32(0.25), "big": big}), (0.0, 15.0))
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.integers(0, 16, (1, 4)).astype(np.float64)} for _ in range(24)]
    runs = {}
    for workers in (1, 2):
        monkeypatch.setattr(execute, "WORKERS", workers)
        ref = Reference(report)
        runs[workers] = ([ctx["y"].copy() for ctx in ref.run_many(feeds, batch_size=3)], ref.notes)
    for a, b in zip(runs[1][0], runs[2][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[2][1].flips and runs[1][1].flips == runs[2][1].flips
    assert [f.sample for f in runs[2][1].flips] == sorted(f.sample for f in runs[2][1].flips)
    assert runs[1][1].checked == runs[2][1].checked


def test_wrong_rewrite_is_rejected_and_the_first_differing_tensor_named():
    from sira.transforms.lower import Lower

    model = load(str(EXAMPLE))
    lowered = transform(model, Lower())
    matmul = next(n for n in lowered.graph.node if n.op_type == "MatMul" and lowered.get_initializer(n.input[1]) is not None)
    w = lowered.get_initializer(matmul.input[1]).copy()
    w.flat[0] += 3.0
    lowered.set_initializer(matmul.input[1], w)
    with pytest.raises(SiraError, match=r"wrong: output .* differs on input .*first differing intermediate tensor: '"):
        sira.verify_equivalent(model, lowered, str(EXAMPLE_SPEC), samples=50, label="wrong")


def test_optimize_reports_agreement_of_float_executions():
    _model, rep = sira.optimize(str(CONV), str(CONV_SPEC), samples=50)
    assert set(rep.agreement) == {"float64", "float32"}
    for entry in rep.agreement.values():
        assert entry["samples"] > 0 and entry["summary"]


def test_quantizer_after_an_op_without_error_bound_is_named_not_hidden():
    """Exp has no error bound rule: the quantizer after it keeps float64's
    decisions, and the agreement report says so."""
    model = _quantized_input_model([helper.make_node("Mul", ["q", "tenth"], ["a"]), helper.make_node("Exp", ["a"], ["m"])],
                                   {"tenth": np.float32(0.1)}, out_scale=0.5)  # fmt: skip
    report = analyze(model, (0.0, 15.0))
    ref = Reference(report)
    list(ref.run_many([{"x": np.array([[1.0, 2.0, 3.0, 4.0]])}]))
    quant = report.model.graph.node[-1].name
    assert quant in ref.notes.unbounded
    summary = flips_agreement(ref.notes.flips, 1, ref.notes.unbounded).summary()
    assert quant in summary and "no proven error bound" in summary


@pytest.mark.parametrize("mode", ["ROUND", "FLOOR", "HALF_UP"])
@pytest.mark.parametrize("exact", [True, False])
def test_near_screen_keeps_every_element_the_full_test_finds(mode, exact):
    """The whole-array screen of Quant's near-boundary elements returns
    exactly the elements the per-element test over the whole tensor finds:
    ties, values a few ulps from a boundary, outside the clip range, inf
    and NaN included."""
    from sira.reference import Bound, _Quantizer

    rng = np.random.default_rng(11)
    s = np.array([0.1, 0.37, 1.0 / 3.0, 0.25]).reshape(1, 4, 1)
    q = rng.integers(-40, 40, (6, 4, 50)).astype(np.float64)
    x = (q + rng.choice([0.5, 0.0, 0.25, 1e-15, -1e-13, 1e-5, 2e-3, -2e-3], q.shape)) * s
    special = x.copy()
    special[0, 0, :4] = [np.inf, -np.inf, np.nan, 1e300]
    node = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"], domain="qonnx.custom_op.general", rounding_mode=mode, signed=1, narrow=0)
    quant = _Quantizer(node, {"rounding_mode": mode, "signed": 1, "narrow": 0}, False)
    for values in (x, special):
        ctx = {"x": values, "s": s, "z": np.float64(0.5), "b": np.float64(5.0)}
        for err in (0.0, 1e-14, 1e-3) if not exact else (0.0,):
            bound = Bound(err, exact, None)
            full = quant._near_all(ctx, bound)
            screened = quant.near(ctx, bound)
            assert len(full) > 0
            assert sorted(map(tuple, screened)) == sorted(map(tuple, full))


def test_a_model_checked_again_runs_only_the_inputs_it_has_not_passed(monkeypatch):
    """The final check of the last pass's model reuses the inputs that pass
    checked; another model, or the same one through another feed map, runs
    on every input."""
    from sira.transforms.lower import Lower

    model = load(CONV)
    checker = EquivalenceChecker(model, CONV_SPEC, samples=12)
    lowered = transform(model, Lower())
    runs = []
    run_many = Executor.run_many

    def counted(self, feeds, batch_size=None):
        feeds = list(feeds)
        runs.append(len(feeds))
        return run_many(self, feeds, batch_size)

    monkeypatch.setattr(Executor, "run_many", counted)
    first = checker.check(lowered, "pass", limit=5)
    again = checker.check(lowered, "final")
    assert (first.samples, again.samples) == (5, len(checker.feeds))
    assert runs == [5, len(checker.feeds) - 5]
    checker.check(model, "original")
    assert runs[-1] == len(checker.feeds)
    checker.check(model, "original, fed through a map", feed_map=lambda feed: feed)
    assert runs[-1] == len(checker.feeds)

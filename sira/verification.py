"""Soundness checking against execution.

:func:`verify` executes the prepared model with qonnx's op implementations
(every intermediate tensor exposed) on random inputs drawn from the input
spec and on corner inputs, and checks every value of every tensor against
its range:

* inside ``[lo, hi]``;
* for scaled-int tensors, on the grid: ``(value - bias) / scale`` is an
  integer ``q`` with ``int_lo <= q <= int_hi``.

By default the model is evaluated in its reference semantics (float64
execution whose quantizers decide exactly, see :mod:`sira.reference`);
``precision="float32"`` checks the original float32 execution. The
only tolerance is for the rounding of the execution itself: values are
compared with a slack of 2**-40 (float64) or 2**-18 (float32) of the
tensor's magnitude, and grid membership with a slack of 1e-6 (float64) or
0.01 (float32) integer steps plus that slack in steps. The magnitude is the
largest of the tensor's bounds, values and, for a scaled-int tensor, grid
terms |scale|*|q| + |bias| (a stuck channel's value sits in its bias, so
only the tensor as a whole shows the size of the terms it was computed
from).
Float32 execution can still drift further where a small value is the
difference of two large ones that the output range does not show; such
reports point at float32 noise, not at the analysis.

Corner inputs: every input at its minimum, at its maximum, random
min/max mixtures, and - for a model whose first MAC layer reads the input
element-for-element - for a spread of output channels the input that drives
that channel to its largest and smallest value (x = hi where the weight is
positive, lo where it is negative, and the mirror image).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Callable, Optional

import numpy as np

from . import numerics as nx
from .analysis import RangeReport, analyze
from .errors import SiraError
from .execute import Executor
from .model import model_digest
from .ops import Trait, ops_with
from .range import ScaledIntRange

#: precision -> (relative value slack, grid slack in integer steps)
SLACK = {"float64": (2.0**-40, 1e-6), "float32": (2.0**-18, 0.01)}


@dataclasses.dataclass(frozen=True)
class Violation:
    tensor: str
    index: tuple
    value: float
    lo: float
    hi: float
    kind: str  # "range" | "grid" | "int-range"
    sample: str

    def __str__(self) -> str:
        where = f"{self.tensor}[{', '.join(map(str, self.index))}]"
        return f"{where}: value {self.value!r} ({self.kind}) not in [{self.lo!r}, {self.hi!r}] on input '{self.sample}'"


@dataclasses.dataclass
class VerifyResult:
    samples: int
    tensors_checked: int
    values_checked: int
    violations: list
    violation_count: int
    #: float64 only: where float64 execution of the original rounds
    #: differently from the reference semantics the ranges were checked on
    agreement: Optional["FloatAgreement"] = None

    @property
    def ok(self) -> bool:
        return self.violation_count == 0

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "samples": self.samples,
            "tensors_checked": self.tensors_checked,
            "values_checked": self.values_checked,
            "violation_count": self.violation_count,
            "violations": [dataclasses.asdict(v) | {"index": list(v.index)} for v in self.violations],
        } | ({"float64_agreement": self.agreement.to_json() | {"summary": self.agreement.summary()}} if self.agreement else {})


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


def _bounds(r: ScaledIntRange, name: str) -> tuple[np.ndarray, np.ndarray]:
    lo = np.broadcast_to(r.lo, r.shape)
    hi = np.broadcast_to(r.hi, r.shape)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise SiraError(f"input '{name}' has an unbounded range; give finite bounds with --input-range or --input-spec to sample it")
    return lo, hi


def _grid_value(r: ScaledIntRange, q: np.ndarray) -> np.ndarray:
    return np.broadcast_to(r.scale, r.shape) * q + np.broadcast_to(r.bias, r.shape)


def random_input(r: ScaledIntRange, name: str, rng: np.random.Generator) -> np.ndarray:
    """A random tensor inside the range (on its grid when it has one)."""
    if r.is_scaled_int:
        qlo = np.broadcast_to(r.int_lo, r.shape).astype(np.int64)
        qhi = np.broadcast_to(r.int_hi, r.shape).astype(np.int64)
        return _grid_value(r, rng.integers(qlo, qhi, endpoint=True))
    lo, hi = _bounds(r, name)
    return rng.uniform(lo, hi)


def _extreme(r: ScaledIntRange, name: str, take_hi: np.ndarray) -> np.ndarray:
    """The input with each element at its top (take_hi) or bottom."""
    if r.is_scaled_int:
        q = np.where(take_hi, np.broadcast_to(r.int_hi, r.shape), np.broadcast_to(r.int_lo, r.shape)).astype(np.int64)
        return _grid_value(r, q)
    lo, hi = _bounds(r, name)
    return np.where(take_hi, hi, lo)


def as_precision(r: ScaledIntRange, v: np.ndarray, dtype) -> np.ndarray:
    """An input for execution in ``dtype``. For float32, a value off the
    float32 grid is rounded - inward for a real interval so it stays inside
    the spec, to nearest for an integer grid (as uint8/255 pixels are)."""
    if dtype == np.float64:
        return np.asarray(v, dtype=np.float64)
    if r.is_scaled_int:
        return np.asarray(v, dtype=np.float32)
    lo, hi = np.broadcast_to(r.lo, r.shape), np.broadcast_to(r.hi, r.shape)
    return np.clip(v, nx.float32_up(lo), nx.float32_down(hi)).astype(np.float32)


def _first_mac_weights(report: RangeReport, input_name: str) -> Optional[np.ndarray]:
    """Weights (K x N) of the first MatMul/Gemm that reads ``input_name``
    element-for-element (through elementwise ops and reshapes only)."""
    passthrough = ops_with(Trait.ELEMENTWISE) | ops_with(Trait.FLAT_ORDER)
    graph = report.model.graph
    frontier = {input_name}
    for node in graph.node:
        if not node.input or node.input[0] not in frontier:
            continue
        if node.op_type in ("MatMul", "Gemm"):
            w_name = node.input[1]
            w = report.ranges.get(w_name)
            if w is None or not w.is_const:
                return None
            W = np.asarray(w.value, dtype=np.float64)
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                W = W.T
            return W if W.ndim == 2 else None
        if node.op_type in passthrough:
            frontier.update(node.output)
    return None


def corner_inputs(report: RangeReport, rng: np.random.Generator, max_channels: int = 16) -> list[tuple[str, dict]]:
    """Named corner feeds (see module docstring)."""
    names = list(report.input_ranges)
    corners: list[tuple[str, dict]] = []

    def feed(pattern_fn):
        return {n: _extreme(report.input_ranges[n], n, pattern_fn(n)) for n in names}

    shapes = {n: report.input_ranges[n].shape for n in names}
    corners.append(("all-min", feed(lambda n: np.zeros(shapes[n], dtype=bool))))
    corners.append(("all-max", feed(lambda n: np.ones(shapes[n], dtype=bool))))
    for k in range(2):
        corners.append((f"random-min-max-{k}", feed(lambda n: rng.random(shapes[n]) < 0.5)))
    if len(names) == 1:
        n = names[0]
        W = _first_mac_weights(report, n)
        size = int(np.prod(shapes[n]))
        if W is not None and W.shape[0] == size:
            cols = np.unique(np.linspace(0, W.shape[1] - 1, min(max_channels, W.shape[1])).astype(int))
            for j in cols:
                up = (W[:, j] > 0).reshape(shapes[n])
                corners.append((f"drive-channel-{j}-up", {n: _extreme(report.input_ranges[n], n, up)}))
                corners.append((f"drive-channel-{j}-down", {n: _extreme(report.input_ranges[n], n, ~up)}))
    return corners


# --------------------------------------------------------------------------
# checking
# --------------------------------------------------------------------------


def check_tensor(
    name: str, r: ScaledIntRange, value: np.ndarray, sample: str, precision: str = "float64", limit: int = 5
) -> tuple[int, list[Violation]]:
    """Count and describe the elements of ``value`` outside ``r``."""
    rel_slack, grid_slack = SLACK[precision]
    v = np.asarray(value, dtype=np.float64)
    if v.shape != r.shape:
        v = np.broadcast_to(v, r.shape) if v.size == 1 else v.reshape(r.shape)
    lo = np.broadcast_to(r.lo, r.shape)
    hi = np.broadcast_to(r.hi, r.shape)
    mag = np.maximum(np.where(np.isfinite(lo), np.abs(lo), 0.0), np.where(np.isfinite(hi), np.abs(hi), 0.0))
    mag = np.maximum(mag, np.where(np.isfinite(v), np.abs(v), 0.0))
    if r.is_scaled_int:
        qmag = np.maximum(np.abs(np.broadcast_to(r.int_lo, r.shape).astype(np.float64)), np.abs(np.broadcast_to(r.int_hi, r.shape).astype(np.float64)))
        mag = np.maximum(mag, np.abs(np.broadcast_to(r.scale, r.shape)) * qmag + np.abs(np.broadcast_to(r.bias, r.shape)))
    slack = rel_slack * float(np.max(mag, initial=0.0)) + 1e-300
    bad_range = (v < lo - slack) | (v > hi + slack) | np.isnan(v)
    found: list[Violation] = []
    count = int(np.count_nonzero(bad_range))
    for idx in zip(*np.nonzero(bad_range)):
        if len(found) >= limit:
            break
        found.append(Violation(name, tuple(int(i) for i in idx), float(v[idx]), float(lo[idx]), float(hi[idx]), "range", sample))
    if r.is_scaled_int:
        s = np.broadcast_to(r.scale, r.shape)
        b = np.broadcast_to(r.bias, r.shape)
        q = (v - b) / s
        qr = np.round(q)
        qtol = grid_slack + slack / np.abs(s)
        off_grid = (np.abs(q - qr) > qtol) & ~bad_range
        qlo = np.broadcast_to(r.int_lo, r.shape)
        qhi = np.broadcast_to(r.int_hi, r.shape)
        out_int = ~off_grid & ~bad_range & ((qr < qlo.astype(np.float64) - qtol) | (qr > qhi.astype(np.float64) + qtol))
        for mask, kind, lo_f, hi_f in ((off_grid, "grid", None, None), (out_int, "int-range", qlo, qhi)):
            n = int(np.count_nonzero(mask))
            count += n
            for idx in zip(*np.nonzero(mask)):
                if len(found) >= limit:
                    break
                lo_v = float(lo_f[idx]) if lo_f is not None else float(lo[idx])
                hi_v = float(hi_f[idx]) if hi_f is not None else float(hi[idx])
                found.append(Violation(name, tuple(int(i) for i in idx), float(q[idx]) if kind != "range" else float(v[idx]), lo_v, hi_v, kind, sample))
    return count, found


def verify(
    model,
    input_spec=None,
    samples: int = 200,
    seed: int = 0,
    report: Optional[RangeReport] = None,
    precision: str = "float64",
    progress=None,
) -> VerifyResult:
    """Check the analysis of ``model`` against execution.

    ``samples`` random inputs plus the corner inputs are executed in
    ``precision`` ("float64" or "float32"); every dynamic tensor of the
    analysis is checked. Returns a :class:`VerifyResult` (``.ok`` is True
    when no value left its range).
    """
    if precision not in SLACK:
        raise SiraError(f"precision must be one of {', '.join(SLACK)}, not {precision!r}")
    if report is None:
        report = analyze(model, input_spec)
    dtype = np.float64 if precision == "float64" else np.float32
    reference = None
    if precision == "float64":
        from .reference import Reference

        reference = Reference(report)
        executor = reference.executor
    else:
        executor = Executor(report.model, dtype)
    rng = np.random.default_rng(seed)
    feeds = corner_inputs(report, rng)
    for k in range(samples):
        feeds.append((f"random-{k}", {n: random_input(r, n, rng) for n, r in report.input_ranges.items()}))
    dynamic = [n for n, r in report.ranges.items() if not r.is_const]
    violations: list[Violation] = []
    total = 0
    values = 0
    runs = executor.run_many({n: as_precision(report.input_ranges[n], v, dtype) for n, v in feed.items()} for _label, feed in feeds)
    for i, ((label, _feed), ctx) in enumerate(zip(feeds, runs)):
        for name in dynamic:
            if name not in ctx or ctx[name] is None:
                continue
            n, found = check_tensor(name, report.ranges[name], ctx[name], label, precision)
            values += int(np.size(ctx[name]))
            total += n
            if len(violations) < 50:
                violations.extend(found[: 50 - len(violations)])
        if progress is not None:
            progress(i + 1, len(feeds))
    notes = reference.notes if reference is not None else None
    agreement = flips_agreement(notes.flips, len(feeds), set(notes.unbounded) | set(notes.unresolved)) if notes is not None else None
    return VerifyResult(len(feeds), len(dynamic), values, violations, total, agreement)


# --------------------------------------------------------------------------
# equivalence of two models, against the reference semantics
# --------------------------------------------------------------------------

#: inputs :func:`float32_agreement` executes in float32 (qonnx runs one at a time)
FLOAT32_SAMPLES = 100
#: memory an EquivalenceChecker may spend keeping the original's quantizer
#: integers on the first FLOAT32_SAMPLES inputs, so that
#: :func:`float32_agreement` compares with them instead of running the
#: reference again
KEPT_LEVEL_BYTES = 64 * 2**20

#: relative allowance (of an output's range) for float outputs after the
#: last quantizer: a rewrite may combine the float32 constants of the output
#: scale and bias, each rounding costing at most 2**-24 of the terms
FLOAT_TAIL = 2.0**-22


@dataclasses.dataclass
class EquivalenceResult:
    samples: int
    outputs_checked: int
    mismatches: int
    first_mismatch: str
    #: what float64 execution of the original decides differently from the
    #: reference (sira.reference.Flip), on these samples
    float64_flips: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def _integer_parts(r: ScaledIntRange, v: np.ndarray) -> np.ndarray:
    q = (np.asarray(v, dtype=np.float64) - np.broadcast_to(r.bias, r.shape)) / np.broadcast_to(r.scale, r.shape)
    return np.round(q)


def _level_dtype(r: ScaledIntRange):
    """The narrowest integer type holding every integer of ``r``."""
    lo, hi = int(np.min(r.int_lo)), int(np.max(r.int_hi))
    return np.result_type(np.min_scalar_type(lo), np.min_scalar_type(hi))


def _kept_levels(r: ScaledIntRange, v: np.ndarray) -> np.ndarray:
    """The integer parts of a quantizer's reference output, in the
    narrowest integer type when they fit it (float64 otherwise)."""
    q = _integer_parts(r, v)
    dtype = _level_dtype(r)
    if dtype.kind in "iu" and np.all(np.isfinite(q)) and np.all(q >= np.iinfo(dtype).min) and np.all(q <= np.iinfo(dtype).max):
        return q.astype(dtype)
    return q


def _scaled_int_quantizers(reference, report: RangeReport) -> list:
    """(quantizer, output range) of every quantizer the inputs reach whose
    output is scaled-int: the integers float32_agreement compares."""
    dynamic = reference.executor.dynamic
    return [(q, report.ranges[q.node.output[0]]) for q in reference.quantizers()
            if q.node.output[0] in dynamic and report.ranges.get(q.node.output[0]) is not None
            and report.ranges[q.node.output[0]].is_scaled_int]  # fmt: skip


def _agree(r: Optional[ScaledIntRange], bound_a, bound_b, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise agreement of a reference output ``a`` and a rewritten
    one ``b``: identical values; for an output with an integer form, equal
    integer parts; for a float output, a difference within both runs'
    proven float64 error plus :data:`FLOAT_TAIL` of the output's range."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(a.shape) if np.size(b) == np.size(a) else np.asarray(b, dtype=np.float64)
    same = a == b
    if np.all(same) or r is None:
        return same
    if r.is_scaled_int:
        same = same | (_integer_parts(r, a) == _integer_parts(r, b))
        if np.all(same):
            return same
    err = (bound_a.err if bound_a is not None else np.inf) + (bound_b.err if bound_b is not None else 0.0)
    mag = float(max(np.max(np.abs(r.lo), initial=0.0), np.max(np.abs(r.hi), initial=0.0)))
    with np.errstate(invalid="ignore"):
        return same | (np.abs(a - b) <= err + FLOAT_TAIL * mag)


class Background:
    """``work(stopping)`` on a daemon thread (``stopping`` a
    ``threading.Event`` it checks to end early): :meth:`result` waits for
    it and returns its value or raises its error; :meth:`stop` sets
    ``stopping``. A daemon, so an error in the caller never waits for it."""

    def __init__(self, work: Callable[[threading.Event], object], name: str):
        self._stopping = threading.Event()
        self._value: object = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable) -> None:
        try:
            self._value = work(self._stopping)
        except BaseException as e:  # handed to the thread that waits
            self._error = e

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def stop(self) -> None:
        self._stopping.set()


class EquivalenceChecker:
    """Checks rewrites of one model against its reference semantics
    (:class:`sira.reference.Reference`) on one set of random and corner
    inputs, executing the original once for all of them.

    :meth:`check` runs a rewrite - exactly too, when it can be analyzed with
    the input spec it is given - and requires, per output, equal integer
    parts where the output has an integer form and agreement within the
    proven float error elsewhere (:func:`_agree`). On a mismatch it names
    the label, the output, the input and the first common intermediate
    tensor whose values differ.

    The model checked last is remembered by its content: checked again
    (the final check of the last pass's model, or a pass that changed
    nothing) it runs only the inputs it has not passed yet. While the
    reference runs, the quantizers' integers on the first
    :data:`FLOAT32_SAMPLES` inputs are kept (within
    :data:`KEPT_LEVEL_BYTES`) for :func:`float32_agreement`.

    With ``background`` the constructor returns at once and runs the
    reference on a background thread while the caller goes on (a pipeline
    transforms the model meanwhile, mostly on one core); the first check,
    or :meth:`wait`, waits for it. :meth:`close` stops it early.
    """

    def __init__(self, original, input_spec=None, samples: int = 100, seed: int = 0, report: Optional[RangeReport] = None,
                 background: bool = False):  # fmt: skip
        from .reference import Reference

        self.report = report if report is not None else analyze(original, input_spec)
        self.spec = input_spec
        self.reference = Reference(self.report)
        rng = np.random.default_rng(seed)
        self.feeds = corner_inputs(self.report, rng)
        for k in range(samples):
            self.feeds.append((f"random-{k}", {n: random_input(r, n, rng) for n, r in self.report.input_ranges.items()}))
        self.outputs = [o.name for o in self.report.model.graph.output]
        self._feeds64 = [{n: np.asarray(v, dtype=np.float64) for n, v in feed.items()} for _label, feed in self.feeds]
        self.quantizers = _scaled_int_quantizers(self.reference, self.report)
        self._keep = self._kept_count()
        self._expected: list[dict] = []
        #: the quantizers' integers on the first inputs (float32_agreement's)
        self.levels: list[dict] = []
        #: the last model checked, its reference, and how many inputs it passed
        self._last: tuple = (None, (None, None), None, 0)
        #: signalled at each input the reference is done with, and at its end
        self._progress = threading.Condition()
        self._ended = False
        self._running = Background(self._run_reference, "sira-reference") if background else None
        if not background:
            self._run_reference()

    def _run_reference(self, stopping: Optional[threading.Event] = None) -> None:
        """The reference's outputs (and kept integers) on every input, then
        what float64 execution decides differently; ``stopping`` set ends
        it early."""
        try:
            for i, ctx in enumerate(self.reference.run_many(self._feeds64)):
                if stopping is not None and stopping.is_set():
                    return
                kept = {q.node.output[0]: _kept_levels(r, ctx[q.node.output[0]]) for q, r in self.quantizers} if i < self._keep else None
                with self._progress:
                    self._expected.append({o: np.array(ctx[o]) for o in self.outputs})
                    if kept is not None:
                        self.levels.append(kept)
                    self._progress.notify_all()
            self._float64_flips = list(self.reference.notes.flips)
            self._undecided = set(self.reference.notes.unbounded) | set(self.reference.notes.unresolved)
        finally:
            with self._progress:
                self._ended = True
                self._progress.notify_all()

    def _expected_at(self, i: int) -> dict:
        """The reference's outputs on input ``i``, once it has them."""
        with self._progress:
            self._progress.wait_for(lambda: len(self._expected) > i or self._ended)
        if len(self._expected) <= i:
            self.wait()  # raises what stopped it
        return self._expected[i]

    def wait(self) -> None:
        """Wait for the reference runs (see ``background``)."""
        if self._running is not None:
            self._running.result()

    def close(self) -> None:
        """Stop the background reference runs, if they are not done."""
        if self._running is not None:
            self._running.stop()

    @property
    def float64_flips(self) -> list:
        """Where float64 execution of the original rounds differently from
        the reference, on these inputs (sira.reference.Flip)."""
        self.wait()
        return self._float64_flips

    @property
    def undecided(self) -> set:
        """The quantizers the reference could not decide exactly (no
        proven error bound before them, or no precision decided)."""
        self.wait()
        return self._undecided

    def _runner(self, transformed, feed_map, spec, exact: bool):
        """The reference of ``transformed`` (exact when it can be analyzed
        with its input spec), or None to run it in plain float64."""
        from .reference import Reference

        if not exact:
            return None
        try:
            return Reference(analyze(transformed, spec if (spec is not None or feed_map is not None) else self.spec))
        except SiraError:
            return None

    def keeps(self, count: int) -> bool:
        """Whether the reference keeps the quantizer integers of the first
        ``count`` inputs (for :func:`float32_agreement`)."""
        return count <= self._keep

    def _kept_count(self) -> int:
        """On how many inputs the quantizer integers are kept: the first
        :data:`FLOAT32_SAMPLES`, when they fit :data:`KEPT_LEVEL_BYTES`."""
        count = min(FLOAT32_SAMPLES, len(self.feeds))
        per_input = sum(math.prod(r.shape) * _level_dtype(r).itemsize for _q, r in self.quantizers)
        return count if per_input * count <= KEPT_LEVEL_BYTES else 0

    def check(self, transformed, label: str = "transform", feed_map=None, spec=None, raise_on_mismatch: bool = True,
              exact: bool = True, limit: Optional[int] = None) -> EquivalenceResult:  # fmt: skip
        """Compare ``transformed`` with the reference on every input (the
        first ``limit`` of them when given).
        ``feed_map`` turns an input feed of the original into one of the
        rewrite (raw integers, for a rewrite of the inputs); ``spec`` is the
        rewrite's input spec (the original's when None and no feed_map)."""
        out_b = [o.name for o in transformed.graph.output]
        if len(self.outputs) != len(out_b):
            raise SiraError(f"{label}: the rewritten model has {len(out_b)} outputs, the original {len(self.outputs)}")
        # the model checked last, again (the final check of the last pass's
        # model) with the very same feed map and spec: the inputs it passed
        # then are not run twice
        key = (model_digest(transformed).digest(), exact)
        last_key, last_inputs, last_runner, passed = self._last
        if key == last_key and last_inputs[0] is feed_map and last_inputs[1] is spec:
            rewritten, runner = last_runner
        else:
            rewritten, passed = self._runner(transformed, feed_map, spec, exact), 0
            runner = rewritten.executor if rewritten is not None else Executor(transformed)
        bounds_b = rewritten.bounds if rewritten is not None else {}
        count = len(self.feeds) if limit is None else min(limit, len(self.feeds))
        start = min(passed, count)
        feeds_b = [feed_map(f) if feed_map else f for f in self._feeds64[start:count]]
        mismatches = 0
        first = ""
        # the rewrite runs while a background reference may still be running
        for i, ((label_in, _feed), ctx_b) in enumerate(zip(self.feeds[start:count], runner.run_many(feeds_b)), start):
            expected = self._expected_at(i)
            for oa, ob in zip(self.outputs, out_b):
                same = _agree(self.report.ranges.get(oa), self.reference.bounds.get(oa), bounds_b.get(ob), expected[oa], ctx_b[ob])
                if not np.all(same):
                    mismatches += 1
                    if not first:
                        idx = tuple(int(j) for j in np.argwhere(~same)[0])
                        self.wait()  # then the original's tensors, for the hint
                        ctx_a = next(iter(self.reference.executor.run_many([dict(_feed)])))
                        hint = _first_divergence(self.report.model, ctx_a, ctx_b)
                        first = (
                            f"{label}: output '{oa}'{list(idx)} differs on input '{label_in}': "
                            f"{float(np.asarray(expected[oa])[idx])!r} (reference) vs {float(np.asarray(ctx_b[ob]).reshape(np.shape(expected[oa]))[idx])!r} (rewritten)"
                            + (f"; first differing intermediate tensor: '{hint}'" if hint else "")
                        )
        self._last = (key, (feed_map, spec), (rewritten, runner), max(count, passed) if not mismatches else 0)
        result = EquivalenceResult(count, len(self.outputs), mismatches, first, [f for f in self.float64_flips if f.sample < count])
        if mismatches and raise_on_mismatch:
            raise SiraError(first)
        return result


def verify_equivalent(
    original,
    transformed,
    input_spec=None,
    samples: int = 100,
    seed: int = 0,
    label: str = "transform",
    feed_map=None,
    report: Optional[RangeReport] = None,
    raise_on_mismatch: bool = True,
    transformed_spec=None,
) -> EquivalenceResult:
    """Check ``transformed`` against the reference semantics of ``original``
    on random and corner inputs (see :class:`EquivalenceChecker`; to check
    several rewrites of one model, build one checker).

    ``feed_map`` turns an input feed of the original into one of the
    transformed model (for a rewrite that changes the inputs, e.g. to raw
    integers), ``transformed_spec`` is then the rewrite's input spec. On a
    mismatch a SiraError names ``label``, the output, the input and the
    first common intermediate tensor whose values differ.
    """
    checker = EquivalenceChecker(original, input_spec, samples, seed, report)
    return checker.check(transformed, label, feed_map, transformed_spec, raise_on_mismatch)


def _first_divergence(model, ctx_a: dict, ctx_b: dict) -> str:
    """The first tensor (in the original's node order) present in both runs
    with the same shape and different values."""
    from .model import topological_order

    for node in topological_order(model):
        for o in node.output:
            a, b = ctx_a.get(o), ctx_b.get(o)
            if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and not np.array_equal(a, b):
                return o
    return ""


# --------------------------------------------------------------------------
# how float execution of the original agrees with the reference
# --------------------------------------------------------------------------


@dataclasses.dataclass
class FloatAgreement:
    """Where a float execution of the original model rounds differently
    from the reference semantics. Per input, the first quantizer (in
    graph order) whose integers differ is named with the number of its
    differing elements and the smallest exact distance of their inputs from
    the rounding boundary, in steps of the quantizer (later quantizers
    inherit the difference)."""

    precision: str
    samples: int
    differing_samples: int
    quantizers: dict  # node -> {"samples": n, "elements": n, "min_margin": steps}
    #: quantizers the reference could not decide exactly (no error bound
    #: through an op before them, or no exact rule): float64 decides there
    undecided: list = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        head = f"{self.precision} execution of the original"
        tail = (f"; the reference takes float64's decisions at {', '.join(self.undecided)} (no proven error bound before them)"
                if self.undecided else "")  # fmt: skip
        if not self.differing_samples:
            return f"{head} agrees with the reference semantics on {self.samples}/{self.samples} inputs{tail}"
        parts = [f"{node}: {d['elements']} elements on {d['samples']} inputs, margin {d['min_margin']:.3g} steps" for node, d in self.quantizers.items()]
        return (f"{head} rounds differently from the reference semantics on {self.differing_samples}/{self.samples} inputs, "
                "at rounding ties of " + "; ".join(parts) + tail)  # fmt: skip


def flips_agreement(flips: list, samples: int, undecided=()) -> FloatAgreement:
    """The float64 execution's disagreements found while computing the
    reference (:class:`sira.reference.Flip`); ``undecided`` names the
    quantizers it could not decide exactly."""
    by_sample: dict = {}
    for f in flips:
        by_sample.setdefault(f.sample, []).append(f)
    quantizers: dict = {}
    for sample_flips in by_sample.values():
        node = sample_flips[0].node
        mine = [f for f in sample_flips if f.node == node]
        d = quantizers.setdefault(node, {"samples": 0, "elements": 0, "min_margin": math.inf})
        d["samples"] += 1
        d["elements"] += len(mine)
        d["min_margin"] = min(d["min_margin"], min(f.margin for f in mine))
    return FloatAgreement("float64", samples, len(by_sample), quantizers, sorted(undecided))


def float32_agreement(checker: "EquivalenceChecker", limit: int = FLOAT32_SAMPLES) -> FloatAgreement:
    """Execute the original in float32 (as qonnx does) on the first
    ``limit`` inputs of ``checker`` and compare every quantizer's integers
    with the reference's (those the checker kept, else from running the
    reference again). When they are kept, the float32 runs come first,
    while a background reference may still be running."""
    reference = checker.reference
    report = checker.report
    count = min(limit, len(checker.feeds))
    feeds = checker._feeds64[:count]
    run32 = Executor(report.model, np.float32)
    feeds32 = [{n: as_precision(report.input_ranges[n], v, np.float32) for n, v in f.items()} for f in feeds]
    quantizers = checker.quantizers

    def integers32(ctx32: dict) -> dict:
        return {q.node.output[0]: _kept_levels(r, np.asarray(ctx32[q.node.output[0]], dtype=np.float64)) for q, r in quantizers}

    runs32 = [integers32(ctx32) for ctx32 in run32.run_many(feeds32)] if checker.keeps(count) else None
    checker.wait()
    if runs32 is not None and len(checker.levels) >= count:
        levels = iter(checker.levels[:count])
    else:
        levels = ({q.node.output[0]: _integer_parts(r, ctx[q.node.output[0]]) for q, r in quantizers} for ctx in reference.run_many(feeds))
        runs32 = runs32 if runs32 is not None else map(integers32, run32.run_many(feeds32))
    found: dict = {}
    differing = 0
    for i, (ref_levels, levels32) in enumerate(zip(levels, runs32)):
        for q, r in quantizers:
            out = q.node.output[0]
            diff = ref_levels[out] != levels32[out].reshape(np.shape(ref_levels[out]))
            if np.any(diff):
                differing += 1
                margin = q.margin_steps(next(iter(reference.run_many(feeds[i : i + 1]))))
                d = found.setdefault(q.node.name, {"samples": 0, "elements": 0, "min_margin": math.inf})
                d["samples"] += 1
                d["elements"] += int(np.count_nonzero(diff))
                d["min_margin"] = min(d["min_margin"], float(np.min(np.broadcast_to(margin, diff.shape)[diff])))
                break
    return FloatAgreement("float32", count, differing, found)

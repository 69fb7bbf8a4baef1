"""Analysis speed: sira against qonnx 1.0.0's range analysis.

Run with ``make bench`` or ``python bench/analysis_speed.py [--reps N]
[--budget SECONDS] [--json FILE]``. Not a test: it measures and prints, and
exits 0 whether or not the targets are met.

Models (built deterministically by :mod:`models`): Quant-MLPs of depth 10,
20 and 40 at width 512 and a MobileNet-style depthwise-separable conv net.

What each tool gets, so the comparison is fair:

* Both receive the same in-memory model, prepared once by :func:`sira.load`
  (qonnx's cleanup with the quantizers kept: shapes inferred, constants
  folded, readable tensor names), and the same input range. Building and
  preparing the model is not timed; ``sira.load`` is reported separately.
* **sira** is timed on ``sira.analyze(model, (lo, hi))``. It reads the weight
  quantizers itself.
* **qonnx** is timed on ``range_analysis(model, irange=(lo, hi),
  report_mode="range")``, its public entry point. That call folds every
  constant subgraph, weight quantizers included, into float initializers
  (its documented precondition: "quantized weights are resolved into
  initializers") and infers datatypes before walking the graph; all of that
  is part of its time, as it is for a user.
* **qonnx\\*** is the same call on a copy whose weights were folded
  beforehand (``FoldConstants(exclude_op_types=[])``, not timed), i.e. the
  cost of qonnx's graph walk alone. Shown for information; the targets use
  the full call.

Each timing is the best of ``--reps`` repetitions, with fewer repetitions
when one tool on one model has spent ``--budget`` seconds. A failing call is
reported in the table instead of a time.

Targets: sira's time grows linearly with depth (time ratio of depth 20 to 10
and of 40 to 20 at most 2.2) and sira is at least 50x faster than qonnx on
the 40x512 MLP.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import models  # noqa: E402
import sira  # noqa: E402
from sira.model import quiet  # noqa: E402

SCALING_TARGET = 2.2
SPEEDUP_TARGET = 50.0
MLP_DEPTHS = (10, 20, 40)
MLP_WIDTH = 512
TARGET_MODEL = f"mlp_{MLP_DEPTHS[-1]}x{MLP_WIDTH}"


@dataclasses.dataclass
class Timing:
    """Best wall time of a call over some repetitions, or why it failed."""

    best: Optional[float] = None
    reps: int = 0
    error: Optional[str] = None

    def cell(self) -> str:
        if self.error is not None:
            return f"error: {self.error[:40]}"
        return f"{self.best:.3f} s"


def time_call(fn: Callable[[], Any], reps: int, budget: float) -> tuple[Timing, Any]:
    """Best of up to ``reps`` calls of ``fn``; stops early once another call
    would probably exceed ``budget`` seconds in total. Returns the timing and
    the last result (None if the call raised)."""
    t = Timing()
    spent = 0.0
    result = None
    while t.reps < reps:
        start = time.perf_counter()
        try:
            with quiet():
                result = fn()
        except Exception as e:  # report any failure of the tool in the table
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            t.error = f"{type(e).__name__}: {msg}"[:300]
            return t, None
        elapsed = time.perf_counter() - start
        t.reps += 1
        t.best = elapsed if t.best is None else min(t.best, elapsed)
        spent += elapsed
        if spent + elapsed > budget:
            break
    return t, result


def ratio(num: Timing, den: Timing) -> Optional[float]:
    if num.best is None or den.best is None:
        return None
    return num.best / den.best


def fmt_ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.1f}x"


def cases() -> list[tuple[str, Callable[[], Any], tuple[float, float]]]:
    """(name, builder, input range) of every benchmark model."""
    out = [(f"mlp_{d}x{MLP_WIDTH}", lambda d=d: models.quant_mlp(d, MLP_WIDTH), models.MLP_INPUT_RANGE) for d in MLP_DEPTHS]
    out.append(("mobilenet_like", models.mobilenet_like, models.CONV_INPUT_RANGE))
    return out


def bench_model(name: str, build: Callable[[], Any], irange: tuple[float, float], reps: int, budget: float) -> dict:
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.util.range_analysis import range_analysis

    with quiet():
        raw = build()
    load_t, model = time_call(lambda: sira.load(raw), 1, budget)
    if model is None:  # nothing to compare: every column shows the load error
        model, report = raw, None
        sira_t = qonnx_t = folded_t = load_t
    else:
        sira_t, report = time_call(lambda: sira.analyze(model, irange), reps, budget)
        qonnx_t, _ = time_call(lambda: range_analysis(model, irange=irange, report_mode="range"), reps, budget)
        fold_t, folded = time_call(lambda: model.transform(FoldConstants(exclude_op_types=[])), 1, budget)
        if folded is None:
            folded_t = fold_t
        else:
            folded_t, _ = time_call(lambda: range_analysis(folded, irange=irange, report_mode="range"), reps, budget)
    return {
        "model": name,
        "nodes": len(model.graph.node),
        "sira_fallbacks": None if report is None else len(report.fallbacks),
        "sira_load": load_t,
        "sira": sira_t,
        "qonnx": qonnx_t,
        "qonnx_prefolded": folded_t,
        "speedup": ratio(qonnx_t, sira_t),
        "speedup_prefolded": ratio(folded_t, sira_t),
    }


def print_table(rows: list[dict]) -> None:
    header = ["model", "nodes", "fallbacks", "sira.load", "sira", "qonnx", "qonnx/sira", "qonnx*", "qonnx*/sira"]
    table = [
        [
            r["model"],
            str(r["nodes"]),
            "-" if r["sira_fallbacks"] is None else str(r["sira_fallbacks"]),
            r["sira_load"].cell(),
            r["sira"].cell(),
            r["qonnx"].cell(),
            fmt_ratio(r["speedup"]),
            r["qonnx_prefolded"].cell(),
            fmt_ratio(r["speedup_prefolded"]),
        ]
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    for line in [header] + table:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip())
    print("qonnx* = qonnx's range analysis on a model whose weights were folded beforehand (its graph walk alone)")


def summary(rows: list[dict]) -> dict:
    """Scaling of sira with depth and the speed-up on the largest MLP, with
    their targets."""
    by_name = {r["model"]: r for r in rows}
    scaling = {}
    for a, b in zip(MLP_DEPTHS, MLP_DEPTHS[1:]):
        ta = by_name[f"mlp_{a}x{MLP_WIDTH}"]["sira"]
        tb = by_name[f"mlp_{b}x{MLP_WIDTH}"]["sira"]
        scaling[f"{b}/{a}"] = ratio(tb, ta)
    speedup = by_name[TARGET_MODEL]["speedup"]
    return {
        "sira_scaling": scaling,
        "sira_scaling_target_max": SCALING_TARGET,
        "sira_scaling_ok": None if None in scaling.values() else all(v <= SCALING_TARGET for v in scaling.values()),
        "speedup_model": TARGET_MODEL,
        "speedup": speedup,
        "speedup_target_min": SPEEDUP_TARGET,
        "speedup_ok": None if speedup is None else speedup >= SPEEDUP_TARGET,
    }


def print_summary(s: dict) -> None:
    def verdict(ok: Optional[bool]) -> str:
        return "not measured" if ok is None else "meets target" if ok else "MISSES target"

    parts = ", ".join(f"t({k.split('/')[0]})/t({k.split('/')[1]}) = " + ("-" if v is None else f"{v:.2f}") for k, v in s["sira_scaling"].items())
    print(f"sira scaling with depth (target <= {SCALING_TARGET}): {parts}  [{verdict(s['sira_scaling_ok'])}]")
    print(f"speed-up on {s['speedup_model']} (target >= {SPEEDUP_TARGET:g}x): {fmt_ratio(s['speedup'])}  [{verdict(s['speedup_ok'])}]")


def to_json(rows: list[dict], s: dict, args) -> dict:
    from importlib.metadata import version

    def timing(t: Timing) -> dict:
        return {"seconds": t.best, "repetitions": t.reps, "error": t.error}

    return {
        "versions": {"sira": sira.__version__, **{p: version(p) for p in ("qonnx", "onnx", "onnxruntime", "numpy")}, "python": platform.python_version()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "repetitions": args.reps,
        "budget_seconds": args.budget,
        "models": [{k: timing(v) if isinstance(v, Timing) else v for k, v in r.items()} for r in rows],
        "summary": s,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per tool and model; the best counts (default 3)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds one tool may spend on one model before repetitions stop (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")

    rows = []
    for name, build, irange in cases():
        rows.append(bench_model(name, build, irange, args.reps, args.budget))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print_table(rows)
    s = summary(rows)
    print_summary(s)
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(rows, s, args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load speed: ``sira.load`` against qonnx 1.0.0's ``cleanup_model``.

Run with ``make bench`` or ``python bench/load_speed.py [--reps N]
[--budget SECONDS]``. Not a test: it measures and prints, and exits 0.

Both prepare the same in-memory model (built by :mod:`models`, not timed)
to the same result (``tests/test_load.py`` checks that they agree):

* **sira** is timed on ``sira.load(model)``: copy, structural checks, then
  its linear-time version of the cleanup;
* **qonnx** is timed on ``cleanup_model(model, preserve_qnt_ops=True)``,
  which copies the model in every pass.

Each timing is the best of ``--reps`` repetitions (fewer once one tool has
spent ``--budget`` seconds on a model). The last lines give how sira's
load time grows with the MLP's depth (about 2 per doubling when linear).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import models  # noqa: E402
import sira  # noqa: E402
from analysis_speed import MLP_DEPTHS, MLP_WIDTH, fmt_ratio, ratio, time_call  # noqa: E402
from sira.model import quiet  # noqa: E402


def cases() -> list[tuple[str, Callable[[], Any]]]:
    """(name, builder) of every benchmark model."""
    out = [(f"mlp_{d}x{MLP_WIDTH}", lambda d=d: models.quant_mlp(d, MLP_WIDTH)) for d in MLP_DEPTHS]
    out.append(("mobilenet_like", models.mobilenet_like))
    return out


def bench_model(name: str, build: Callable[[], Any], reps: int, budget: float) -> dict:
    from qonnx.util.cleanup import cleanup_model

    with quiet():
        raw = build()
    sira_t, _ = time_call(lambda: sira.load(raw), reps, budget)
    qonnx_t, _ = time_call(lambda: cleanup_model(raw, preserve_qnt_ops=True), reps, budget)
    return {"model": name, "nodes": len(raw.graph.node), "sira": sira_t, "qonnx": qonnx_t, "speedup": ratio(qonnx_t, sira_t)}


def print_table(rows: list[dict]) -> None:
    header = ["model", "nodes", "sira.load", "qonnx cleanup_model", "qonnx/sira"]
    table = [[r["model"], str(r["nodes"]), r["sira"].cell(), r["qonnx"].cell(), fmt_ratio(r["speedup"])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    for line in [header] + table:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip())


def print_scaling(rows: list[dict]) -> None:
    by_name = {r["model"]: r for r in rows}
    for tool in ("sira", "qonnx"):
        parts = []
        for a, b in zip(MLP_DEPTHS, MLP_DEPTHS[1:]):
            r = ratio(by_name[f"mlp_{b}x{MLP_WIDTH}"][tool], by_name[f"mlp_{a}x{MLP_WIDTH}"][tool])
            parts.append(f"t({b})/t({a}) = " + ("-" if r is None else f"{r:.2f}"))
        print(f"{tool} load time with MLP depth: {', '.join(parts)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions per tool and model; the best counts (default 3)")
    ap.add_argument("--budget", type=float, default=30.0, help="seconds one tool may spend on one model before repetitions stop (default 30)")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")

    rows = []
    for name, build in cases():
        rows.append(bench_model(name, build, args.reps, args.budget))
        print(f"  measured {name}", file=sys.stderr, flush=True)
    print_table(rows)
    print_scaling(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

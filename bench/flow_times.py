"""The whole flow, step by step, against FINN's estimate-only flow.

Run with ``make bench`` or ``python bench/flow_times.py [--samples N]``.
Not a test: it measures and prints, and exits 0.

For every QONNX zoo model (../shared/models/zoo or $SIRA_ZOO) and the
bundled examples: the seconds of ``sira.load``, ``sira.analyze``,
``optimize`` (with its equivalence checks, ``--samples`` inputs for the
final one), ``estimate`` (of the optimized model) and ``build`` (the HLS
project without C simulation, into a temporary folder). For the zoo models
the next columns give FINN's own estimate-only flow time (finn-plus 1.6.1,
``build_dataflow_cfg`` from QONNX to the estimate reports, PE = SIMD = 1,
from ``../shared/peers/finn_results`` or $SIRA_FINN_RESULTS) and the ratio of sira's optimize +
estimate to it (below 1: sira is faster). The last ones: the inputs on
which the optimized model equals the original's reference semantics, and
on which float64 / float32 execution of the original agrees with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from models import benchmark_cases  # noqa: E402
from qonnx.core.datatype import DataType  # noqa: E402
from sira.analysis import analyze  # noqa: E402
from sira.estimate import estimate  # noqa: E402
from sira.hls.builder import build  # noqa: E402
from sira.model import load  # noqa: E402
from tests.helpers import ZOO, ZOO_MODELS  # noqa: E402
from sira.transforms.pipeline import optimize  # noqa: E402

FINN_RESULTS = os.environ.get("SIRA_FINN_RESULTS", os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", "finn_results")))
#: zoo model -> its file of FINN's numbers
FINN_FILES = {"unsw_nb15_mlp_w2a2": "unsw_nb15-mlp-w2a2.json"}


def finn_seconds(name: str):
    """FINN's estimate-only flow time for ``name`` (fold1), or None."""
    path = os.path.join(FINN_RESULTS, FINN_FILES.get(name, f"{name}.json"))
    try:
        with open(path) as f:
            return float(json.load(f)["finn"]["fold1"]["total_time_s"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def measure(name: str, model_path: str, spec, samples: int) -> dict:
    model, t_load = timed(lambda: load(model_path))
    _, t_analyze = timed(lambda: analyze(model, spec))
    (optimized, report), t_optimize = timed(lambda: optimize(model, spec, samples=samples))
    # the optimized model takes raw integers where its inputs are annotated so
    integer_inputs = all((optimized.get_tensor_datatype(i.name) or DataType["FLOAT32"]).is_integer() for i in optimized.graph.input)
    _, t_estimate = timed(lambda: estimate(optimized, None if integer_inputs else spec))
    with tempfile.TemporaryDirectory() as tmp:
        _, t_build = timed(lambda: build(model_path, os.path.join(tmp, "hls"), spec, samples=samples))
    finn = finn_seconds(name)
    ratio = (t_optimize + t_estimate) / finn if finn else None
    agrees = {p: f"{a['samples'] - a['differing_samples']}/{a['samples']}" for p, a in report.agreement.items()}
    return {"model": name, "load": t_load, "analyze": t_analyze, "optimize": t_optimize, "estimate": t_estimate,
            "build": t_build, "finn": finn, "ratio": ratio, "equal": f"{report.samples}/{report.samples}",
            "f64": agrees["float64"], "f32": agrees["float32"]}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="inputs of the final equivalence check and of the build's vectors (default 100)")
    args = parser.parse_args()
    rows = [measure(name, path, spec, args.samples) for name, path, spec in benchmark_cases(ZOO_MODELS, ZOO, ())]
    header = ["model", "load", "analyze", "optimize", "estimate", "build", "FINN flow", "(opt+est)/FINN", "= reference",
              "f64 agrees", "f32 agrees"]  # fmt: skip
    table = [[r["model"]] + [f"{r[k]:.2f} s" for k in ("load", "analyze", "optimize", "estimate", "build")]
             + [f"{r['finn']:.2f} s" if r["finn"] else "-", f"{r['ratio']:.2f}x" if r["ratio"] else "-", r["equal"], r["f64"], r["f32"]]
             for r in rows]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    print(f"the flow per model (optimize checks {args.samples} inputs at the end; build without C simulation)")
    for line in [header] + table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip())
    faster = [r for r in rows if r["ratio"] is not None]
    if faster:
        print(f"optimize + estimate faster than FINN's flow on {sum(r['ratio'] < 1 for r in faster)} of {len(faster)} zoo models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

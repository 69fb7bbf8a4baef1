"""Resource estimate: SIRA versus the FINN baseline, per model.

    python bench/estimate.py [--mode refined|finn] [--part PART] [--impl auto|thresholds|integer]
                             [--conformance] [--json FILE]

For every QONNX zoo model (../shared/models/zoo or $SIRA_ZOO; skipped when
absent), the bundled example and the synthetic MobileNet-like net (with
``--conformance`` also the Brevitas conformance models of
examples/zoo/models; those that do not lower are listed as not estimated): totals of
LUT, DSP, BRAM_18K and the mean accumulator width, for the baseline (the
model as a FINN user gets it today: FINN accumulator widths, elementwise
tails, float input thresholds; see sira/estimate.py) and for SIRA, the %
change, and the time of the whole estimate (optimize, lower, cost). Folding
PE = SIMD = 1; requantizers built as ``--impl`` says (default: the cheaper
of thresholds and integer requantizer per layer). Totals leave out unknown
costs; "unk" counts those layers.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from models import benchmark_cases  # noqa: E402

from sira.devices import DEFAULT_PART  # noqa: E402
from sira.errors import SiraError  # noqa: E402
from sira.estimate import estimate  # noqa: E402
from sira.report import format_table  # noqa: E402
from tests.helpers import ZOO, ZOO_MODELS  # noqa: E402


def conformance_cases():
    """(name, path, spec) of every Brevitas conformance model of examples/zoo/models."""
    for path in sorted(glob.glob(os.path.join(HERE, "..", "examples", "zoo", "models", "*.onnx"))):
        spec = path[: -len(".onnx")] + ".spec.json"
        yield "conf_" + os.path.basename(path)[: -len(".onnx")], path, spec if os.path.exists(spec) else None


def cases(conformance: bool = False):
    return benchmark_cases(ZOO_MODELS, ZOO, tuple(conformance_cases()) if conformance else ())


def _pct(new, old) -> str:
    return "-" if not old else f"{100.0 * (new - old) / old:+.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("refined", "finn"), default="refined")
    ap.add_argument("--part", default=DEFAULT_PART)
    ap.add_argument("--impl", choices=("auto", "thresholds", "integer"), default="auto", help="how requantizers are built")
    ap.add_argument("--conformance", action="store_true", help="also the conformance models of examples/zoo/models")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()

    headers = ["model", "LUT base", "LUT sira", "dLUT", "DSP base", "DSP sira", "dDSP", "BRAM base", "BRAM sira", "dBRAM",
               "acc base", "acc sira", "dacc", "unk", "time s"]
    rows, results = [], {}
    for name, model, spec in cases(args.conformance):
        t0 = time.perf_counter()
        try:
            doc = estimate(model, spec, part=args.part, mode=args.mode, impl=args.impl)
        except SiraError as e:
            rows.append([name] + ["-"] * (len(headers) - 2) + [f"{time.perf_counter() - t0:.1f}"])
            results[name] = {"error": str(e)}
            print(f"{name}: not estimated: {e}", file=sys.stderr)
            continue
        dt = time.perf_counter() - t0
        s, b = doc["total"], doc["baseline"]["total"]
        rows.append([
            name,
            str(b["LUT"]), str(s["LUT"]), _pct(s["LUT"], b["LUT"]),
            str(b["DSP"]), str(s["DSP"]), _pct(s["DSP"], b["DSP"]),
            str(b["BRAM_18K"]), str(s["BRAM_18K"]), _pct(s["BRAM_18K"], b["BRAM_18K"]),
            f"{b['acc_bits']:.1f}", f"{s['acc_bits']:.1f}", _pct(s["acc_bits"], b["acc_bits"]),
            str(max(s["unknown_layers"].values())), f"{dt:.1f}",
        ])  # fmt: skip
        results[name] = {"sira": s, "baseline": b, "delta": doc["delta"], "seconds": dt}
    print(f"estimate ({args.mode} cost model, {args.part}, PE=SIMD=1, impl {args.impl}): baseline (FINN today) vs SIRA totals")
    print(format_table(headers, rows, right=list(range(1, len(headers)))))
    print("unk: layers whose cost has no formula; their cost is left out of both totals (float steps before and after the dataflow run on the host and cost 0)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

"""Resource estimate per model: SIRA versus the FINN baseline versus FINN's own numbers.

    python bench/estimate.py [--mode finn|refined] [--part PART] [--impl auto|cheapest|thresholds|integer]
                             [--conformance] [--json FILE]

For every QONNX zoo model (../shared/models/zoo or $SIRA_ZOO; skipped when
absent), the bundled examples and the synthetic MobileNet-like net (with
``--conformance`` also the Brevitas conformance models of
examples/zoo/models; those that do not lower are listed as not estimated): total
LUT, BRAM_18K and DSP of SIRA's dataflow, of the baseline (what FINN 1.6.1
builds from the same model, see sira/baseline.py) and, where FINN's
estimate-only flow was run on the model (../shared/peers/finn_results or
$SIRA_FINN_RESULTS), FINN's committed totals, at FINN's two recorded
foldings (PE = SIMD = 1 and FINN's folding for 100k fps); other models at
PE = SIMD = 1. Totals leave out the stream plumbing (FIFOs, width
converters), which FINN's report, written before FIFO insertion, lacks, and
unknown costs ("unk" counts those layers). Deltas: the baseline against
FINN, SIRA against the baseline; the last rows are the means over the
models (the baseline's mean absolute deviation from FINN, SIRA's mean
change against the baseline). FINN's numbers are finn-mode estimates: the
baseline-vs-FINN column is only meaningful with --mode finn (the default).
SIRA's requantizers are built as ``--impl`` says (default ``auto``: per
layer the smaller share of the part of thresholds and an integer
requantizer, among those using no more of any resource than FINN's layer;
``cheapest``: the smaller share outright). The rows where SIRA uses more
of a resource than the baseline are listed at the end.
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
from sira.estimate import estimate_prepared, prepare  # noqa: E402
from sira.report import format_table  # noqa: E402
from tests.helpers import FINN_RESULT_FILES, FINN_RESULTS, ZOO, ZOO_MODELS, finn_folding  # noqa: E402

KEYS = ("LUT", "BRAM_18K", "DSP")
FOLDINGS = ("fold1", "fps100k")


def conformance_cases():
    """(name, path, spec) of every Brevitas conformance model of examples/zoo/models."""
    for path in sorted(glob.glob(os.path.join(HERE, "..", "examples", "zoo", "models", "*.onnx"))):
        spec = path[: -len(".onnx")] + ".spec.json"
        yield "conf_" + os.path.basename(path)[: -len(".onnx")], path, spec if os.path.exists(spec) else None


def cases(conformance: bool = False):
    return benchmark_cases(ZOO_MODELS, ZOO, tuple(conformance_cases()) if conformance else ())


def _finn(name: str):
    """FINN's committed results of a zoo model, or None."""
    path = os.path.join(FINN_RESULTS, FINN_RESULT_FILES.get(name, ""))
    if name not in FINN_RESULT_FILES or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)["finn"]


def _pct(new, old):
    return None if not old else 100.0 * (new - old) / old


def _cell(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def _layer_totals(total: dict) -> dict:
    """A document's totals without the stream plumbing."""
    return {k: total[k] - total["plumbing"][k] for k in KEYS}


def _runs(name: str, prepared, finn, part: str, mode: str, impl: str):
    """(folding label, SIRA totals, baseline totals, FINN totals or None, unknown layers)."""
    if finn is None:
        doc = estimate_prepared(prepared, part, mode=mode, impl=impl)[0]
        yield "fold1", _layer_totals(doc["total"]), _layer_totals(doc["baseline"]["total"]), None, max(doc["total"]["unknown_layers"].values())
        return
    for fold in FOLDINGS:
        run = finn[fold]
        doc = estimate_prepared(prepared, part, mode=mode, folding=finn_folding(prepared[2], run["layers"]), impl=impl)[0]
        theirs = {k: int(run["estimate_layer_resources"]["total"][k]) for k in KEYS}
        yield fold, _layer_totals(doc["total"]), _layer_totals(doc["baseline"]["total"]), theirs, max(doc["total"]["unknown_layers"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("finn", "refined"), default="finn")
    ap.add_argument("--part", default=DEFAULT_PART)
    ap.add_argument("--impl", choices=("auto", "cheapest", "thresholds", "integer"), default="auto", help="how requantizers are built")
    ap.add_argument("--conformance", action="store_true", help="also the conformance models of examples/zoo/models")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()

    headers = ["model", "folding"]
    for k in KEYS:
        headers += [f"{k} FINN", f"{k} base", f"{k} sira", "base/FINN", "sira/base"]
    headers += ["unk", "time s"]
    rows, results = [], {}
    deviation = {k: [] for k in KEYS}
    change = {k: [] for k in KEYS}
    grows: list[str] = []
    for name, model, spec in cases(args.conformance):
        t0 = time.perf_counter()
        try:
            prepared = prepare(model, spec)
            runs = list(_runs(name, prepared, _finn(name), args.part, args.mode, args.impl))
        except SiraError as e:
            rows.append([name, "-"] + ["-"] * (len(headers) - 3) + [f"{time.perf_counter() - t0:.1f}"])
            results[name] = {"error": str(e)}
            print(f"{name}: not estimated: {e}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - t0
        for fold, sira, base, theirs, unknown in runs:
            row = [name, fold]
            for k in KEYS:
                vs_finn = None if theirs is None else _pct(base[k], theirs[k])
                vs_base = _pct(sira[k], base[k])
                row += ["-" if theirs is None else str(theirs[k]), str(base[k]), str(sira[k]), _cell(vs_finn), _cell(vs_base)]
                if theirs is not None and theirs[k]:
                    deviation[k].append(abs(vs_finn))
                if vs_base is not None:
                    change[k].append(vs_base)
            rows.append(row + [str(unknown), f"{seconds:.1f}"])
            results.setdefault(name, {})[fold] = {"sira": sira, "baseline": base, "finn": theirs, "seconds": seconds}
            grows += [f"{name} {fold} {k} {base[k]} -> {sira[k]}" for k in KEYS if sira[k] > base[k]]
    mean_row = ["mean", ""]
    for k in KEYS:
        dev = sum(deviation[k]) / len(deviation[k]) if deviation[k] else None
        chg = sum(change[k]) / len(change[k]) if change[k] else None
        mean_row += ["", "", "", "-" if dev is None else f"|{dev:.1f}%|", _cell(chg)]
    rows.append(mean_row + ["", ""])
    print(f"estimate ({args.mode} cost model, {args.part}, impl {args.impl}): FINN's committed totals, the baseline (what FINN builds) and SIRA")
    print(format_table(headers, rows, right=list(range(2, len(headers)))))
    print("base/FINN: the baseline against FINN's own estimate (the mean row: mean absolute deviation over the models with FINN "
          "numbers, where FINN's total is not 0); sira/base: SIRA against the baseline (mean over the models). Totals without "
          "stream plumbing; unk: SIRA layers whose cost has no formula (left out)")
    print(f"resources SIRA uses more of than the baseline: {'; '.join(grows) if grows else 'none'} "
          f"({len(rows) - 1} model/folding rows)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

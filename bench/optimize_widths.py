"""Accumulator widths and optimize time: what ``sira optimize`` achieves.

    python bench/optimize_widths.py [--samples N] [--json FILE]

For every QONNX zoo model (read from ../shared/models/zoo or $SIRA_ZOO;
skipped when absent), the bundled example, and the synthetic models of the
analysis benchmark, prints per MAC layer the three accumulator widths -
the A2Q datatype bound, FINN's weight-aware width with datatype-range
inputs, sira's width from proven ranges - and FINN's own figures where
published (finn-plus 1.6.1, same pipeline position); then per model the
mean width reduction of sira against the datatype bound and against FINN,
the float islands left, and the time of the whole optimize run (passes
plus their bit-exact verification).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from models import MLP_INPUT_RANGE, benchmark_cases, quant_mlp  # noqa: E402

from sira.report import format_table  # noqa: E402
from tests.helpers import ZOO, ZOO_MODELS  # noqa: E402
from sira.transforms.pipeline import optimize  # noqa: E402
from sira.transforms.widths import mean_reduction  # noqa: E402

#: FINN's accumulator widths (finn-plus 1.6.1) per MAC layer with an integer
#: accumulator, in graph order
FINN_FIGURES = {
    "TFC_2W2A": [10, 8, 8, 8],
    "kwsmlp_w3a3": [18, 13, 13, 14],
    "qkeras_jettagging": [15, 15, 16],
    "unsw_nb15_mlp_w2a2": [9, 14, 7, 7],
}


def cases():
    return benchmark_cases(ZOO_MODELS, ZOO, [("mlp_4x128", quant_mlp(4, 128), MLP_INPUT_RANGE)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100, help="inputs for the final equivalence check (default 100)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()

    layer_rows, model_rows, doc = [], [], {}
    for name, model, spec in cases():
        t0 = time.perf_counter()
        try:
            _, report = optimize(model, spec, samples=args.samples)
        except Exception as e:  # a benchmark reports failures, it does not stop
            model_rows.append([name, "-", "-", "-", "-", f"FAILED: {str(e)[:80]}"])
            continue
        seconds = time.perf_counter() - t0
        layers = report.layers
        finn = FINN_FIGURES.get(name)
        for k, layer in enumerate(layers):
            published = finn[k - (len(layers) - len(finn))] if finn and k >= len(layers) - len(finn) else None
            layer["finn_published"] = published
            layer_rows.append(
                [name, layer["layer"], str(layer["K"]), str(layer["a2q_width"]), str(layer["finn_width"]), str(published or "-"), str(layer["sira_width"])]
            )
        vs_a2q = 100 * mean_reduction(layers)
        published = [layer for layer in layers if layer["finn_published"]]
        vs_finn = 100 * mean_reduction(published, baseline="finn_published") if published else None
        model_rows.append(
            [name, f"{vs_a2q:.1f}%", f"{vs_finn:.1f}%" if vs_finn is not None else "-", str(len(report.float_islands)), f"{seconds:.1f} s", ""]
        )
        doc[name] = {"layers": layers, "reduction_vs_a2q": vs_a2q, "reduction_vs_finn": vs_finn, "float_islands": report.float_islands, "seconds": seconds}

    print(format_table(["model", "layer", "K", "A2Q", "FINN-style", "FINN 1.6.1", "sira"], layer_rows, right=(2, 3, 4, 5, 6)))
    print()
    print(format_table(["model", "sira vs A2Q", "sira vs FINN", "float islands", "optimize", ""], model_rows, right=(1, 2, 3, 4)))
    all_layers = [layer for d in doc.values() for layer in d["layers"]]
    zoo_layers = [layer for n, d in doc.items() if n in ZOO_MODELS for layer in d["layers"]]
    if zoo_layers:
        print(f"\nzoo: mean accumulator width saved vs the A2Q bound: sira {100 * mean_reduction(zoo_layers):.1f}% "
              f"(target >= 22%), FINN-style {100 * mean_reduction(zoo_layers, 'finn_width'):.1f}%")
    if all_layers:
        print(f"all models: sira {100 * mean_reduction(all_layers):.1f}% vs the A2Q bound")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, default=str)


if __name__ == "__main__":
    main()

"""HLS project generation and C simulation, per model.

    python bench/build_csim.py [--samples N] [--json FILE]

For every QONNX zoo model (../shared/models/zoo or $SIRA_ZOO; skipped when
absent), the bundled examples and the synthetic MobileNet-like net: the time
of ``sira build`` (optimize, estimate, plan, test vectors from the original
model, render, write), of the first ``sira csim`` (g++ compile and run, in a
fresh cache) and of a second one (cached binary: run only), the number of
stages and the C-simulation verdict. The peer here is the compiler: the
first/second csim ratio is what the content-hash cache saves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from models import benchmark_cases  # noqa: E402

from sira.errors import SiraError  # noqa: E402
from sira.hls import build, csim  # noqa: E402
from sira.report import format_table  # noqa: E402
from tests.helpers import ZOO, ZOO_MODELS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100, help="random test inputs per model (default 100, plus corners)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()
    headers = ["model", "stages", "vectors", "build s", "csim 1st s", "csim 2nd s", "1st/2nd", "verdict"]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SIRA_CACHE_DIR"] = os.path.join(tmp, "cache")
        for name, model, spec in benchmark_cases(ZOO_MODELS, ZOO, ()):
            if isinstance(spec, str):
                with open(spec) as f:
                    spec = json.load(f)
            t0 = time.perf_counter()
            try:
                r = build(model, os.path.join(tmp, name), spec, samples=args.samples)
            except SiraError as e:
                print(f"{name}: not built: {e}", file=sys.stderr)
                rows.append([name] + ["-"] * (len(headers) - 2) + ["error"])
                results[name] = {"error": str(e)}
                continue
            t_build = time.perf_counter() - t0
            t0 = time.perf_counter()
            first = csim(r.path)
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            second = csim(r.path)
            t_second = time.perf_counter() - t0
            verdict = f"{first.exact}/{first.samples} exact" if first.passed else f"FAIL {first.exact}/{first.samples}"
            rows.append([name, str(len(r.project.dataflow.stages)), str(r.project.samples), f"{t_build:.1f}", f"{t_first:.1f}",
                         f"{t_second:.2f}", f"{t_first / t_second:.0f}x", verdict])  # fmt: skip
            results[name] = {"stages": len(r.project.dataflow.stages), "vectors": r.project.samples, "build_s": t_build,
                             "csim_first_s": t_first, "csim_cached_s": t_second, "passed": first.passed and second.passed}  # fmt: skip
    print(format_table(headers, rows, list(range(1, len(headers) - 1))))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

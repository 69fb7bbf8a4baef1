"""The dataflow C simulation (every stage a thread over FIFOs of the
generated depths) on every QONNX zoo model and every conformance model the
hardware flow builds, at two foldings.

    python bench/dataflow_csim.py [--samples N] [--only NAME ...] [--json FILE]

Per model and folding: the stages, the time of the build, of the
sequential csim and of the dataflow csim (each one g++ compile and a run),
the verdict (bit-exact, or the deadlock line) and the deepest FIFO the run
filled against its depth. The foldings are fold 1 (PE = SIMD = 1) and
the highest frame rate the default part allows
(``tests.test_hls_dataflow.highest_fps``: the first of 1e6, 5e5, 2e5, 1e5,
... inferences/s whose folding the lint accepts): every layer of the small
models fully parallel, the CNNs as parallel as their words (4096 bits) and
the part's LUTs let them be - the most concurrency a build can have.
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

from sira.errors import SiraError  # noqa: E402
from sira.hls import build, csim  # noqa: E402
from sira.report import format_table  # noqa: E402
from tests.helpers import ZOO, ZOO_MODELS  # noqa: E402
from tests.test_conformance_zoo import HARDWARE, MODELS  # noqa: E402
from tests.test_hls_dataflow import highest_fps  # noqa: E402


def cases():
    """(name, model path, input spec) of every zoo and conformance model present."""
    for name, (rel, spec) in sorted(ZOO_MODELS.items()):
        if os.path.exists(os.path.join(ZOO, rel)):
            yield name, os.path.join(ZOO, rel), spec
    for name in HARDWARE:
        with open(MODELS / f"{name}.spec.json") as f:
            yield name, str(MODELS / f"{name}.onnx"), json.load(f)


def run(name: str, path: str, spec, fps, samples: int, folder: str, sequential: bool) -> dict:
    t = time.perf_counter()
    try:
        r = build(path, folder, spec, samples=samples, target_fps=fps)
    except SiraError as e:
        return {"error": str(e)}
    row = {"stages": len(r.project.dataflow.stages), "build_s": time.perf_counter() - t}
    if sequential:
        t = time.perf_counter()
        row["csim_passed"] = csim(r.path, write_report=False).passed
        row["csim_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        d = csim(r.path, dataflow=True, write_report=False)
        row["dataflow_passed"], row["exact"], row["samples"] = d.passed, d.exact, d.samples
        deepest = max((s for s in d.streams if s.depth > 2), key=lambda s: s.peak, default=None)
        row["deepest"] = f"{deepest.stream} {deepest.peak}/{deepest.depth}" if deepest else "-"
    except SiraError as e:
        row["dataflow_passed"], row["deadlock"] = False, str(e)
    row["dataflow_s"] = time.perf_counter() - t
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20, help="random test inputs per model (default 20, plus corners)")
    ap.add_argument("--only", nargs="*", help="these models only")
    ap.add_argument("--dataflow-only", action="store_true", help="skip the sequential csim (half the g++ compiles)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = ap.parse_args()
    headers = ["model", "folding", "stages", "build s", "csim s", "dataflow s", "verdict", "deepest FIFO peak/depth"]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SIRA_CACHE_DIR", os.path.join(tmp, "cache"))
        for name, path, spec in cases():
            if args.only and name not in args.only:
                continue
            try:
                fast = highest_fps(path, spec)
            except SiraError as e:
                rows.append([name, "-", "-", "-", "-", "-", "not built: " + str(e)[:60], "-"])
                continue
            for label, fps in (("fold1", None), (f"{fast:g} fps", fast)):
                row = run(name, path, spec, fps, args.samples, os.path.join(tmp, f"{name}_{label.split()[0]}"), not args.dataflow_only)
                results[f"{name} {label}"] = row
                if "error" in row:
                    rows.append([name, label, "-", "-", "-", "-", "not built: " + row["error"][:60], "-"])
                    continue
                verdict = (f"{row['exact']}/{row['samples']} exact" if row["dataflow_passed"] else
                           "DEADLOCK" if "deadlock" in row else f"FAIL {row.get('exact')}/{row.get('samples')}")  # fmt: skip
                rows.append([name, label, str(row["stages"]), f"{row['build_s']:.1f}", f"{row['csim_s']:.1f}" if "csim_s" in row else "-", f"{row['dataflow_s']:.1f}",
                             verdict, row.get("deepest", "-")])  # fmt: skip
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    print(format_table(headers, rows, [2, 3, 4, 5]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

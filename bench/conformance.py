"""How far each network of the Brevitas conformance zoo gets through the flow.

Run with ``make bench`` or ``python bench/conformance.py [--samples N]
[--no-csim] [--only NAME ...]``. Not a test: it measures and prints, and
exits 0.

For every model of ``examples/zoo/models`` (made by
``examples/zoo/make_zoo.py``): ``sira.verify`` (soundness), ``optimize``
(equivalence with the reference semantics, and how float64 / float32
execution of the original agree with it), ``estimate`` and ``build`` with
C simulation. One row per model: the last stage reached (or the first
one-line error), the inputs on which float32 execution of the original
rounds differently from the reference, the float steps left on the host,
the C simulation's verdict, and the seconds of optimize, estimate, build
and csim.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from qonnx.core.datatype import DataType  # noqa: E402
from sira.errors import SiraError  # noqa: E402
from sira.estimate import estimate  # noqa: E402
from sira.hls.builder import build  # noqa: E402
from sira.hls.simulate import csim  # noqa: E402
from sira.model import load  # noqa: E402
from sira.verification import verify  # noqa: E402
from sira.transforms.pipeline import optimize  # noqa: E402

ZOO = os.path.join(ROOT, "examples", "zoo", "models")


def run_model(path: str, samples: int, with_csim: bool) -> dict:
    name = os.path.splitext(os.path.basename(path))[0]
    spec = path[: -len(".onnx")] + ".spec.json"
    spec = spec if os.path.exists(spec) else None
    row = {"model": name, "stage": "load", "float32": "-", "host": "-", "csim": "-", "error": ""}
    times = {}
    try:
        model = load(path)
        row["stage"] = "verify"
        if not verify(model, spec, samples=20).ok:
            row["error"] = "unsound analysis"
            return row | times
        row["stage"] = "optimize"
        t = time.perf_counter()
        optimized, report = optimize(model, spec, samples=samples)
        times["optimize"] = time.perf_counter() - t
        f32 = report.agreement.get("float32", {})
        row["float32"] = f"{f32.get('samples', 0) - f32.get('differing_samples', 0)}/{f32.get('samples', 0)}"
        row["stage"] = "estimate"
        integer_inputs = all((optimized.get_tensor_datatype(i.name) or DataType["FLOAT32"]).is_integer() for i in optimized.graph.input)
        t = time.perf_counter()
        estimate(optimized, None if integer_inputs else spec)
        times["estimate"] = time.perf_counter() - t
        row["stage"] = "build"
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            result = build(path, os.path.join(tmp, "hls"), spec, samples=samples)
            times["build"] = time.perf_counter() - t
            df = result.project.dataflow
            row["host"] = f"{len(df.head)}+{len(df.tail)}"
            if with_csim:
                row["stage"] = "csim"
                t = time.perf_counter()
                sim = csim(result.path)
                times["csim_s"] = time.perf_counter() - t
                row["csim"] = "bit-exact" if sim.passed else "MISMATCH"
        row["stage"] = "done"
    except SiraError as e:
        row["error"] = str(e).splitlines()[0][:160]
    return row | times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100, help="inputs of optimize's final check and of the build's vectors")
    parser.add_argument("--no-csim", action="store_true", help="stop after writing the HLS project")
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    args = parser.parse_args()
    paths = sorted(glob.glob(os.path.join(ZOO, "*.onnx")))
    if args.only:
        paths = [p for p in paths if os.path.splitext(os.path.basename(p))[0] in args.only]
    if not paths:
        print(f"no conformance models in {ZOO}")
        return 0
    rows = [run_model(p, args.samples, not args.no_csim) for p in paths]
    header = ["model", "reached", "f32 agrees", "host steps", "csim", "optimize", "estimate", "build", "csim s"]
    table = [[r["model"], r["stage"], r["float32"], r["host"], r["csim"]]
             + [f"{r[k]:.1f} s" if k in r else "-" for k in ("optimize", "estimate", "build", "csim_s")] for r in rows]  # fmt: skip
    widths = [max(len(x) for x in col) for col in zip(header, *table)]
    print(f"the conformance zoo through the flow ({args.samples} inputs; host steps: before+after the dataflow)")
    for line in [header] + table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    for r in rows:
        if r["error"]:
            print(f"  {r['model']} stops at {r['stage']}: {r['error']}")
    done = sum(r["stage"] == "done" for r in rows)
    print(f"{done} of {len(rows)} models reach the end of the flow")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

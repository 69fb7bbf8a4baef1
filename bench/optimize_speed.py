"""Speed of ``sira optimize`` as a user runs it: one process per model.

Run with ``python bench/optimize_speed.py [--samples N ...] [--size S ...]
[--models cnn_32,mobilenet_v1]``. Not a test: it measures and prints, and
exits 0.

Models, written to a temporary folder with their input spec (8-bit pixels,
scale 1/255):

* ``cnn_32``: the synthetic Brevitas-style CNN of about 0.4 M parameters on
  a 3x32x32 image (:func:`verify_speed.cnn_32`);
* ``mobilenet_v1``: MobileNet-v1 x1.0's 13 depthwise-separable blocks
  (3.2 M parameters, :data:`models.MOBILENET_V1_BLOCKS`) on a 3xSxS image
  for every ``--size`` S (32 by default; 224 is the ImageNet size).

Each run is ``python -m sira.cli optimize MODEL --input-spec SPEC -o OUT -q
--samples N``, timed from outside: wall time, and the CPU time (user +
system) of the process. The wall time includes the interpreter's start
and the imports (about a second); the CPU time exceeding the wall time
means BLAS used more than one core (``OPENBLAS_NUM_THREADS=1`` for one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import models  # noqa: E402
from verify_speed import cnn_32  # noqa: E402

SPEC = {"datatype": "UINT8", "scale": "1/255"}


def weight_count(proto: onnx.ModelProto) -> int:
    """Elements of the initializers with two or more dimensions: the
    weights (and the per-channel scales beside them, a few per channel)."""
    return sum(math.prod(t.dims) for t in proto.graph.initializer if len(t.dims) >= 2)


def write_cases(folder: Path, names: list[str], sizes: list[int]) -> list[tuple[str, Path, Path, int]]:
    """(label, model file, spec file, weights) of every case asked for."""
    out = []
    if "cnn_32" in names:
        proto = cnn_32()
        out.append(("cnn_32", proto, "pixels"))
    if "mobilenet_v1" in names:
        for size in sizes:
            proto = models.mobilenet_like(blocks=models.MOBILENET_V1_BLOCKS, size=size).model
            out.append((f"mobilenet_v1_{size}", proto, "inp"))
    cases = []
    for label, proto, inp in out:
        path, spec = folder / f"{label}.onnx", folder / f"{label}.spec.json"
        onnx.save(proto, path)
        spec.write_text(json.dumps({"inputs": {inp: SPEC}}))
        cases.append((label, path, spec, weight_count(proto)))
    return cases


def time_optimize(path: Path, spec: Path, samples: int, out: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of one ``sira optimize`` process, and its exit code."""
    cmd = [sys.executable, "-m", "sira.cli", "optimize", str(path), "--input-spec", str(spec), "-o", str(out), "-q", "--force",
           "--samples", str(samples)]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode:
        print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}", file=sys.stderr)
    return wall, cpu, done.returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[500, 100], help="--samples of each run (default 500 100)")
    ap.add_argument("--size", type=int, nargs="+", default=[32], help="image sizes of the MobileNet-v1 (default 32)")
    ap.add_argument("--models", default="cnn_32,mobilenet_v1", help="comma-separated: cnn_32, mobilenet_v1")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = write_cases(folder, args.models.split(","), args.size)
        print(f"{'model':18s} {'params':>9s} {'samples':>7s} {'wall':>8s} {'cpu':>8s}")
        for label, path, spec, params in cases:
            for samples in args.samples:
                wall, cpu, code = time_optimize(path, spec, samples, folder / "out.onnx")
                status = "" if code == 0 else f"  (failed, exit {code})"
                print(f"{label:18s} {params / 1e6:8.2f}M {samples:7d} {wall:7.2f}s {cpu:7.2f}s{status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Start-up time: ``import sira``, ``sira --help`` and ``sira analyze --help``
against ``import qonnx``'s ModelWrapper (what any QONNX tool pays first).

Run with ``make bench`` or ``python bench/startup.py [--reps N]``. Not a
test: it measures and prints, and exits 0. Each command runs in a fresh
interpreter; the figure is the best of ``--reps`` runs (the machine's
noise only ever adds time). The goal is under 0.5 s for each sira row on
an idle machine: the package root is a lazy facade and the CLI imports
each subcommand's modules only when that subcommand runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = "from sira.cli import main; raise SystemExit(main({args!r}))"

CASES = [
    ("python (empty)", "pass"),
    ("import sira", "import sira"),
    ("sira --help", CLI.format(args=["--help"])),
    ("sira analyze --help", CLI.format(args=["analyze", "--help"])),
    ("sira build --help", CLI.format(args=["build", "--help"])),
    ("peer: import qonnx ModelWrapper", "from qonnx.core.modelwrapper import ModelWrapper"),
]


def best_of(code: str, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per command; the best counts (default 5)")
    args = parser.parse_args()
    rows = [(name, best_of(code, args.reps)) for name, code in CASES]
    empty = rows[0][1]
    peer = rows[-1][1]
    print("start-up time (best of %d fresh interpreters)" % args.reps)
    width = max(len(name) for name, _ in rows)
    print(f"{'command'.ljust(width)}  {'seconds':>8}  {'minus python':>12}  {'vs qonnx import':>15}")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:8.3f}  {seconds - empty:12.3f}  {seconds / peer:14.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

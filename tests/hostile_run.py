"""Run every subcommand of sira on one variant of the hostile corpus
(:mod:`hostile_corpus`), in this process, and print one JSON line per
subcommand: exit code, the last line of standard error, seconds.

Used by ``tests/test_hostile.py`` in a child process with a memory limit
and a time-out, so that a run that would exhaust the machine fails the
test instead. ``python tests/hostile_run.py VARIANT FOLDER``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sira.cli import main  # noqa: E402
from tests.hostile_corpus import ARGUMENT_VARIANTS, MLP, MLP_SPEC, Case, variants  # noqa: E402

COMMANDS = ("analyze", "verify", "optimize", "estimate", "build", "csim")


def command_line(command: str, case: Case, out: str) -> list[str]:
    spec = list(case.spec_args)
    if command == "analyze":
        return ["analyze", case.model, *spec, "--format", "json", "-o", os.path.join(out, "ranges.json")]
    if command == "verify":
        return ["verify", case.model, *spec, "--samples", "3"]
    if command == "optimize":
        return ["optimize", case.model, *spec, "--samples", "3", "-o", os.path.join(out, "opt.onnx")]
    if command == "estimate":
        return ["estimate", case.model, *spec, "--format", "json", "-o", os.path.join(out, "estimate.json")]
    if command == "build":
        return ["build", case.model, *spec, "--samples", "3", "-q", "-o", os.path.join(out, "hls")]
    return ["csim", os.path.join(out, "hls")]


def run(argv: list[str]) -> dict:
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
    text = err.getvalue().strip()
    return {"code": code, "stderr": text, "seconds": round(time.perf_counter() - t0, 3)}


def main_run(name: str, folder: str) -> None:
    out = os.path.join(folder, "out")
    os.makedirs(out, exist_ok=True)
    argument_variant = {n: (cmds, extra) for n, cmds, extra in ARGUMENT_VARIANTS}
    if name in argument_variant:
        cmds, extra = argument_variant[name]
        case = Case(name, MLP, ("--input-spec", MLP_SPEC), "refuse")
        for command in cmds:
            result = run(command_line(command, case, out) + extra)
            print(json.dumps(dict(result, command=command, written=sorted(os.listdir(out)))), flush=True)
        return
    variant = next(v for v in variants() if v.name == name)
    case = variant.write(folder)
    for command in COMMANDS:
        if command == "csim" and not os.path.isdir(os.path.join(out, "hls")):
            continue
        result = run(command_line(command, case, out))
        print(json.dumps(dict(result, command=command, written=sorted(os.listdir(out)))), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_kib": peak}), flush=True)


if __name__ == "__main__":
    main_run(sys.argv[1], sys.argv[2])

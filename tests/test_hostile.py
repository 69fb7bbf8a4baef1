"""The hostile corpus (:mod:`hostile_corpus`) through every subcommand.

For every variant: no internal error and no traceback ever; a variant that
must be refused exits 2 with one ``sira: error:`` line from every subcommand
and writes nothing; a valid one succeeds. The slow tier runs each variant in
a child process (``hostile_run.py``) under a memory limit and a time-out, so
exhausting the machine is a failure, and prints the counts: variants, clear
errors, wrong successes, internal errors, time-outs, peak memory. The fast
tier runs ``sira analyze`` on every variant in this process.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import json
import os
import re
import resource
import subprocess
import sys

import pytest

from sira.cli import main
from tests.hostile_corpus import ACCEPT, ANALYZE, ARGUMENT_VARIANTS, REFUSE, variants
from tests.hostile_run import command_line

HERE = os.path.dirname(os.path.abspath(__file__))
#: a child may use this much address space (the examples need well under 2 GiB)
MEMORY_LIMIT = 6 << 30
TIME_LIMIT_S = 300

VARIANTS = {v.name: v for v in variants()}


def _clear_error(stderr: str) -> bool:
    """One ``sira: error: ...`` line (``sira CMD: error: ...`` from the
    argument parser), not an internal error."""
    lines = stderr.strip().splitlines()
    return (bool(lines) and re.match(r"sira( [a-z]+)?: error: ", lines[-1]) is not None
            and "internal error" not in stderr and "Traceback" not in stderr)  # fmt: skip


def _judge(expect: str, command: str, code: int, stderr: str, written: list) -> str:
    """'ok', or what is wrong with one run."""
    if "internal error" in stderr or "Traceback" in stderr:
        return f"internal error: {stderr.strip().splitlines()[-1]}"
    if expect == REFUSE:
        if code == 0:
            return "wrong success"
        if code != 2 or not _clear_error(stderr):
            return f"exit {code} without a clear error: {stderr[-200:]!r}"
        if written:
            return f"wrote {written} although it refused"
        return "ok"
    if code == 1 and command == "verify":
        return "unsound: verify found a violation"
    if expect == ACCEPT and code != 0:
        return f"refused a valid model: {stderr.strip()[-300:]}"
    if expect == ANALYZE and command == "analyze" and code != 0:
        return f"analysis refused it: {stderr.strip()[-300:]}"
    if code not in (0, 2) or (code == 2 and not _clear_error(stderr)):
        return f"exit {code} without a clear error: {stderr[-200:]!r}"
    return "ok"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_analyze_on_every_variant(name, tmp_path, monkeypatch):
    variant = VARIANTS[name]
    folder = tmp_path / "case"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    case = variant.write(str(folder))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(command_line("analyze", case, str(out)))
    verdict = _judge(variant.expect, "analyze", code, err.getvalue(), sorted(os.listdir(out)))
    assert verdict == "ok", f"{name}: {verdict}"
    assert sorted(os.listdir(tmp_path)) == ["case", "out"], "nothing written beside the output"


def _child(name: str, root: str) -> list[dict]:
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    try:
        done = subprocess.run([sys.executable, os.path.join(HERE, "hostile_run.py"), name, folder], capture_output=True, text=True,
                              timeout=TIME_LIMIT_S, preexec_fn=limit, cwd=folder)  # fmt: skip
    except subprocess.TimeoutExpired:
        return [{"command": "?", "timeout": True}]
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0:
        rows.append({"command": "?", "crash": done.returncode, "stderr": done.stderr[-500:]})
    return rows


@pytest.mark.slow
def test_every_variant_through_every_subcommand(tmp_path):
    names = sorted(VARIANTS) + [name for name, _, _ in ARGUMENT_VARIANTS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(names, pool.map(lambda n: _child(n, str(tmp_path)), names)))
    counts = {"variants": len(names), "runs": 0, "clear errors": 0, "successes": 0, "wrong successes": 0,
              "internal errors": 0, "time-outs": 0, "crashes": 0}  # fmt: skip
    problems, peak = [], 0
    for name, rows in results.items():
        expect = VARIANTS[name].expect if name in VARIANTS else REFUSE
        for row in rows:
            if "peak_kib" in row:
                peak = max(peak, row["peak_kib"])
                continue
            counts["runs"] += 1
            if row.get("timeout"):
                counts["time-outs"] += 1
                problems.append(f"{name}: time-out after {TIME_LIMIT_S} s")
                continue
            if "crash" in row:
                counts["crashes"] += 1
                problems.append(f"{name}: the child died ({row['crash']}): {row['stderr']}")
                continue
            verdict = _judge(expect, row["command"], row["code"], row["stderr"], row["written"] if expect == REFUSE else [])
            counts["clear errors" if row["code"] == 2 else "successes"] += 1
            counts["wrong successes"] += verdict == "wrong success"
            counts["internal errors"] += verdict.startswith("internal error")
            if verdict != "ok":
                problems.append(f"{name} / {row['command']}: {verdict}")
    print("\nhostile corpus: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f", peak memory {peak / 1024:.0f} MiB")
    assert not problems, "\n".join(problems)

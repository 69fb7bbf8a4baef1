"""examples/brevitas_mlp end to end: train a Brevitas MLP on the digits,
export QONNX, build the HLS project and C-simulate it, run as a user runs
it (the script, with this interpreter, in a temporary folder).

Needs the ``examples`` extra (torch, Brevitas, onnxoptimizer, scikit-learn),
either in this interpreter or in the separate environment the example's
README sets up (``.venv-examples``, or ``$SIRA_EXAMPLES_PYTHON``), which keeps
torch out of sira's own environment; skipped without it."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from sira.hls.simulate import unavailable

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.normpath(os.path.join(HERE, "..", "examples", "brevitas_mlp", "train.py"))

NEEDED = ("torch", "brevitas", "onnxoptimizer", "sklearn")


def _examples_python() -> tuple[str, list[str]]:
    """(interpreter that has the examples extra, modules it lacks)."""
    candidates = [os.environ.get("SIRA_EXAMPLES_PYTHON"), os.path.join(HERE, "..", ".venv-examples", "bin", "python")]
    for python in filter(None, candidates):
        if os.path.exists(python):
            probe = "import importlib.util as u, sys; print(' '.join(m for m in sys.argv[1:] if u.find_spec(m) is None))"
            done = subprocess.run([python, "-c", probe, *NEEDED], capture_output=True, text=True)
            if done.returncode == 0:
                return python, done.stdout.split()
    return sys.executable, [m for m in NEEDED if importlib.util.find_spec(m) is None]


PYTHON, MISSING = _examples_python()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"the Brevitas example needs {', '.join(MISSING)}, not installed here: pip install -e '.[examples]'",
    ),
]


@pytest.mark.skipif(bool(unavailable()), reason=f"C simulation unavailable: {unavailable()}")
def test_brevitas_mlp_trains_exports_builds_and_csim_passes(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, SIRA_CACHE_DIR=str(tmp_path / "csim-cache"))
    done = subprocess.run([PYTHON, SCRIPT, str(out)], capture_output=True, text=True, env=env, timeout=900)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text

    acc = re.search(r"trained \d+ epochs on \d+ digits in [\d.]+ s; test accuracy ([\d.]+) \((\d+)/(\d+)\)", done.stdout)
    assert acc, text
    assert float(acc.group(1)) > 0.9, text
    # the exported model predicts what the trained model predicts
    q = re.search(r"QONNX model \(qonnx execution\): test accuracy ([\d.]+); same class as torch on (\d+)/(\d+) digits", done.stdout)
    assert q and q.group(1) == acc.group(1) and q.group(2) == q.group(3), text
    csim = re.search(r"csim: (\d+)/(\d+) outputs bit-exact", done.stdout)
    assert csim and csim.group(1) == csim.group(2) and int(csim.group(2)) >= 100, text
    assert "FAILED" not in done.stdout
    assert re.search(r"estimate, SIRA vs FINN baseline: LUT \d+ vs \d+, DSP \d+ vs \d+, BRAM_18K \d+ vs \d+, URAM \d+ vs \d+", done.stdout), text

    # what it leaves behind: the QONNX model (one file), its input spec, the HLS project
    assert sorted(os.listdir(out)) == ["brevitas_mlp.onnx", "brevitas_mlp.spec.json", "brevitas_mlp_hls"]
    with open(out / "brevitas_mlp.spec.json") as f:
        spec = json.load(f)
    (entry,) = spec["inputs"].values()
    assert entry == {"datatype": "UINT8", "scale": "1/255"}
    with open(out / "brevitas_mlp_hls" / "report" / "csim.json") as f:
        assert json.load(f)["passed"] is True

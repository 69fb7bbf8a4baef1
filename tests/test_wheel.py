"""The installed wheel works on its own: both packages are in it, the
console script is declared, and the analysis and a pass run from it."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


@pytest.mark.slow
def test_wheel_runs_outside_the_checkout(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT], check=True, capture_output=True)
    wheel = glob.glob(str(wheels / "sira-*.whl"))[0]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel], check=True, capture_output=True)
    script = (
        "import sira, transforms.pipeline, transforms.aggregate\n"
        "assert sira.__file__.startswith(%r), sira.__file__\n"
        "r = sira.analyze(%r, %r)\n"
        "assert not r.fallbacks\n"
        "print('ok', len(r))\n"
    ) % (str(target), os.path.join(ROOT, "examples", "sira_mlp.onnx"), os.path.join(ROOT, "examples", "sira_mlp.spec.json"))
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")

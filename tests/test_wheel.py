"""The installed wheel works on its own: its packages and the HLS templates
are in it, and the analysis, a pass and an HLS build with C simulation run
from it."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MLP = os.path.join(ROOT, "examples", "sira_mlp.onnx")
SPEC = os.path.join(ROOT, "examples", "sira_mlp.spec.json")


@pytest.mark.slow
def test_wheel_runs_outside_the_checkout(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), ROOT], check=True, capture_output=True)
    wheel = glob.glob(str(wheels / "sira-*.whl"))[0]
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel], check=True, capture_output=True)
    script = (
        "import sira, sira.transforms.pipeline, sira.transforms.aggregate\n"
        "assert sira.__file__.startswith(%r), sira.__file__\n"
        "r = sira.analyze(%r, %r)\n"
        "assert not r.fallbacks\n"
        "from sira.hls.project import templates_dir\n"
        "assert templates_dir().startswith(%r), templates_dir()\n"
        "b = sira.build(%r, 'hls', %r, samples=3, run_csim=True)\n"
        "assert b.csim.passed, b.csim.summary()\n"
        "print('ok', len(r))\n"
    ) % (str(target), MLP, SPEC, str(target), MLP, SPEC)
    env = dict(os.environ, PYTHONPATH=str(target), SIRA_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")

"""sira's steps inside FINN's own builder (``build_dataflow_cfg``, estimate-only
steps, finn-plus in its own environment ``.venv-finn``): FINN's estimate is
never larger with them, and smaller where sira proved narrower widths (TFC_2W2A)
or an integer input grid; ``step_sira_optimize`` also works after FINN's
``step_tidy_up``; ``step_sira_estimate`` costs FINN's hardware graph; on
FINN's CNV graph every executed stream value lies in the range sira proves
for it. Skipped, with the reason, where FINN or the zoo is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench", "finn_flow.py")
sys.path.insert(0, os.path.join(ROOT, "bench"))

from finn_flow import MODELS, ZOO, finn_python  # noqa: E402

pytestmark = pytest.mark.slow


def _finn(tmp_path, *args, zoo: bool = True) -> dict:
    python = finn_python()
    if python is None:
        pytest.skip("FINN is not installed: no .venv-finn (.ci/run makes it) and no SIRA_FINN_PYTHON")
    if subprocess.run([python, "-c", "import finn.builder"], capture_output=True).returncode != 0:
        pytest.skip(f"{python} cannot import FINN's builder")
    if zoo and not os.path.exists(os.path.join(ZOO, MODELS["TFC_1W1A"][0])):
        pytest.skip(f"QONNX model zoo not found at {ZOO} (set SIRA_ZOO)")
    out = tmp_path / "finn_flow.json"
    env = dict(os.environ, PYTHONPATH=ROOT, SIRA_FINN_FLOW_CHILD="1", SIRA_ZOO=ZOO)
    proc = subprocess.run([python, BENCH, "--samples", "30", "--json", str(out), *args], env=env, capture_output=True, text=True)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert proc.returncode == 0 and not doc["worse"], doc["worse"]
    return doc["results"]


def _bits(dt: str) -> int:
    return int("".join(c for c in dt if c.isdigit()))


def test_finn_build_with_sira_steps(tmp_path):
    results = _finn(tmp_path, "--models", "TFC_1W1A,TFC_2W2A")
    for model, runs in results.items():
        for run in ("sira", "sira-grid"):
            assert runs[run]["LUT"] <= runs["finn"]["LUT"], (model, run)
            assert runs[run].get("sira_LUT", 0) > 0, (model, run)  # sira's estimate of FINN's graph ran
        # the integer input grid removes FINN's float input thresholds
        assert runs["sira-grid"]["LUT"] < runs["finn"]["LUT"], model
    tfc = results["TFC_2W2A"]
    # sira proves INT7 where FINN keeps INT8 (layers 1-3): FINN's own estimate shrinks
    assert [_bits(a) for a in tfc["sira"]["acc"]] < [_bits(a) for a in tfc["finn"]["acc"]]
    assert tfc["sira"]["LUT"] < tfc["finn"]["LUT"]


def test_sira_optimize_after_finn_tidy_up(tmp_path):
    """FINN's tidied graph (its input quantizer already a float
    MultiThreshold) goes through sira and on through FINN's conversions."""
    results = _finn(tmp_path, "--models", "TFC_1W1A", "--position", "tidy")
    runs = results["TFC_1W1A"]
    assert runs["sira"]["LUT"] <= runs["finn"]["LUT"] and runs["sira"]["acc"] == runs["finn"]["acc"]
    assert runs["sira"].get("sira_LUT", 0) > 0


def test_finn_cnv_build_streams_stay_in_sira_ranges(tmp_path):
    """FINN's classic CNV topology (cnv_w2a2: padding, sliding windows, max
    pooling, MVAUs) built by FINN with and without sira's steps: FINN's
    hardware graph, executed on the committed reference inputs, keeps every
    stream inside the range sira proves on it, sira's widths change no
    output, FINN's estimate with sira's steps is no larger, and sira costs
    every node but FINN's float output scale and bias."""
    results = _finn(tmp_path, "--models", "cnv_w2a2", zoo=False)
    runs = results["cnv_w2a2"]
    for run in ("finn", "sira"):
        assert runs[run]["streams"] > 15 and runs[run]["outside"] == [] and runs[run]["changed"] == 0, run
        assert runs[run]["ref_err"] < 1e-4, run  # FINN's graph computes the model's reference outputs
    assert runs["sira"]["LUT"] <= runs["finn"]["LUT"] and runs["sira"]["BRAM_18K"] <= runs["finn"]["BRAM_18K"]
    assert [_bits(a) for a in runs["sira"]["acc"]] <= [_bits(a) for a in runs["finn"]["acc"]]
    assert runs["sira"]["sira_LUT"] > 0
    assert runs["sira"]["sira_unknown"] == ["ElementwiseAdd_hls", "ElementwiseMul_hls"]

"""A custom build flow with qonnx only: sira's four steps run as a list, the
way FINN runs the ``steps`` of a ``DataflowBuildConfig``.

    python examples/custom_flow.py                 # writes out/custom_flow/
    python examples/custom_flow.py my_out_folder

Each step is a function ``step(model, cfg) -> model``: the flow loads the
model once, hands each step the model the previous one returned, and every
step reads its settings from the same config object. The steps work just
the same in a FINN flow (see :mod:`sira.steps`); here a
:class:`~sira.steps.SiraBuildConfig` carries the settings, so FINN is not
needed.

What it writes below the output folder:

    report/sira_analysis.json                    ranges of every tensor
    report/sira_optimize.json                    accumulator widths, thresholds, passes
    report/estimate_layer_resources_sira.json    LUT/DSP/BRAM/URAM, SIRA vs FINN baseline
    report/sira_build.json                       the HLS project and its C simulation
    sira_hls/                                    the Vitis HLS project
"""

from __future__ import annotations

import json
import os
import sys
import time

from qonnx.core.modelwrapper import ModelWrapper

from sira.steps import SiraBuildConfig, step_sira_analyze, step_sira_build, step_sira_estimate, step_sira_optimize

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "sira_mlp.onnx")
SPEC = os.path.join(HERE, "sira_mlp.spec.json")

#: the flow: any list of step(model, cfg) functions, FINN's own among them in a FINN flow
STEPS = [step_sira_analyze, step_sira_optimize, step_sira_estimate, step_sira_build]


def run_flow(model: ModelWrapper, cfg, steps=STEPS) -> ModelWrapper:
    """Run ``steps`` in order on ``model``, as FINN's ``build_dataflow_cfg``
    does: each step gets the model the previous one returned."""
    for i, step in enumerate(steps, start=1):
        print(f"[{i}/{len(steps)}] {step.__name__}", flush=True)
        t0 = time.perf_counter()
        model = step(model, cfg)
        print(f"      done in {time.perf_counter() - t0:.1f} s", flush=True)
    return model


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = argv[0] if argv else os.path.join("out", "custom_flow")
    cfg = SiraBuildConfig(
        output_dir=out,
        fpga_part="xc7z020clg400-1",
        synth_clk_period_ns=10.0,
        target_fps=None,  # PE = SIMD = 1; or e.g. 100_000, or a folding_config_file
        sira_input_spec=SPEC,  # uint8 pixels scaled by 1/255
        sira_samples=100,
        sira_csim=True,  # g++ C simulation of the HLS project; a mismatch fails the step
    )
    model = ModelWrapper(MODEL)
    run_flow(model, cfg)

    with open(os.path.join(out, "report", "estimate_layer_resources_sira.json")) as f:
        est = json.load(f)
    with open(os.path.join(out, "report", "sira_build.json")) as f:
        built = json.load(f)
    sira_total, base_total = est["total"], est["baseline"]["total"]
    print("estimate (SIRA vs FINN baseline): " + ", ".join(f"{k} {sira_total[k]} vs {base_total[k]}" for k in ("LUT", "DSP", "BRAM_18K", "URAM")))
    csim = built["csim"]
    print(f"HLS project: {built['project']} (top function {built['top']}, {built['stages']} stages)")
    print(f"csim: {csim['exact']}/{csim['samples']} outputs bit-exact")
    return 0


if __name__ == "__main__":
    sys.exit(main())

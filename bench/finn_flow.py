"""sira inside a real FINN build: FINN's own estimate with and without sira's steps.

    python bench/finn_flow.py [--models TFC_1W1A,TFC_2W2A] [--samples N] [--position first|tidy] [--json FILE]

Runs FINN's estimate-only flow (``build_dataflow_cfg`` with
``estimate_only_dataflow_steps``, finn-plus) on the QONNX zoo MLPs (read
from ../shared/models/zoo or $SIRA_ZOO) and on the project's Brevitas
conformance CNNs (``examples/zoo/models``: ``--models cnv_w2a2,...``, see
:data:`CONV_MODELS`; each with its committed input spec) three ways:

* ``finn`` - FINN's steps alone;
* ``sira`` - ``step_sira_optimize`` first (on the raw QONNX model; after
  FINN's ``step_tidy_up`` with ``--position tidy``),
  ``step_sira_apply_widths`` after FINN's ``step_minimize_bit_width`` and
  ``step_sira_estimate`` last, with the default input ranges (real ranges:
  MNIST pixels in [0, 1], ...);
* ``sira-grid`` - the same with an integer-grid input spec (MNIST pixels
  are ``uint8 / 255``), for the models whose input is such a grid;

and prints FINN's own LUT / BRAM_18K / DSP totals and the accumulator
widths of FINN's MVAU / VVAU nodes per model and run (and sira's LUT
estimate of FINN's graph, refined mode). For the CNNs FINN's hardware
graph is also executed on the model's committed reference inputs
(``NAME.io.npz``) before and after ``step_sira_apply_widths``. It fails
(exit 1) when a sira run makes FINN's estimate larger than FINN's alone,
when an executed stream value leaves the range sira proved on FINN's
graph, or when sira's widths change an output. A model FINN alone cannot
build is listed with FINN's error (and still run with sira's steps).

FINN lives in an environment of its own (``.venv-finn``, made by
``.ci/run``). Run from any other interpreter, the script re-runs itself
with ``.venv-finn/bin/python`` (or $SIRA_FINN_PYTHON); without either it
prints why and skips.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
ZOO = os.environ.get("SIRA_ZOO", os.path.normpath(os.path.join(ROOT, "..", "shared", "models", "zoo")))

#: the pixel grid of MNIST: uint8 values scaled by 1/255
PIXELS = {"inputs": {"*": {"datatype": "UINT8", "scale": "1/255"}}}

#: model -> (path below the zoo, default input spec, integer-grid spec or None)
MODELS = {
    "TFC_1W1A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W1A.onnx", (0.0, 1.0), PIXELS),
    "TFC_1W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_1W2A.onnx", (0.0, 1.0), PIXELS),
    "TFC_2W2A": ("MNIST/Brevitas_FINN_TFC/TFC/TFC_2W2A.onnx", (0.0, 1.0), PIXELS),
    "kwsmlp_w3a3": ("GSCV2/kwsmlp_w3a3/kwsmlp_w3a3.onnx", (-106.0, 106.0), None),
    "qkeras_jettagging": ("JetTagging/QKeras_hls4ml_3layer/qkeras_jettagging.onnx", (-4.0, 4.0), None),
    "unsw_nb15_mlp_w2a2": ("UNSW_NB15/unsw_nb15_mlp_w2a2/unsw_nb15-mlp-w2a2.onnx", None, None),
}

#: the project's Brevitas conformance CNNs: model -> its input spec and
#: reference inputs (examples/zoo/models/NAME.spec.json, NAME.io.npz)
CONV_MODELS = ("cnv_w2a2", "cnv_w1a1", "lenet_w4a4", "mobilenet_w4a4", "kws1d_w3a3")
#: FINN's own extra steps a model's recipe needs before FINN's step_streamline
#: (1-D convolutions go through FINN's 4-D form)
PRE_STREAMLINE = {"kws1d_w3a3": "finn.builder.custom_step_library.conv1d.step_pre_streamline"}
CONV_DIR = os.path.join(ROOT, "examples", "zoo", "models")

RESOURCES = ("LUT", "BRAM_18K", "DSP")

#: set in the FINN environment's run of this script (so it never re-runs itself again)
_CHILD = "SIRA_FINN_FLOW_CHILD"


def finn_python() -> str | None:
    """The interpreter of the FINN environment, if there is one."""
    for candidate in (os.environ.get("SIRA_FINN_PYTHON"), os.path.join(ROOT, ".venv-finn", "bin", "python")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def import_finn():
    """FINN's builder without Vivado: dummy settings, no simulation engine,
    and XILINX_VIVADO set to any path (FINN only checks it is set)."""
    os.environ.setdefault("XILINX_VIVADO", "/nonexistent")
    import finn.util.settings as settings

    settings.initialize_dummy_settings()
    import finn.xsi

    finn.xsi.SimEngine = None
    from finn.builder import build_dataflow, build_dataflow_config

    return build_dataflow, build_dataflow_config


def _mac_widths(record: dict):
    """A last step that records the accumulator widths of FINN's MAC nodes."""

    def step_record_widths(model, cfg):
        from sira.finn_hw import finn_kind

        record["acc"] = [
            next(a.s.decode() for a in n.attribute if a.name == "accDataType")
            for n in model.graph.node
            if finn_kind(n) in ("MVAU", "VVAU")
        ]
        return model

    return step_record_widths


def python_graph(model):
    """A copy of a FINN hardware graph that qonnx executes in Python: every
    ``*_hls`` / ``*_rtl`` node becomes FINN's generic node of its kind (the
    specialized ones run only in C++ or RTL simulation)."""
    from qonnx.core.modelwrapper import ModelWrapper

    from sira.finn_hw import FINN_DOMAIN, finn_kind, is_finn_hw

    graph = ModelWrapper(copy.deepcopy(model.model))
    for node in graph.graph.node:
        if is_finn_hw(node):
            node.op_type, node.domain = finn_kind(node), FINN_DOMAIN
    return graph


def graph_inputs(model, spec, x):
    """The committed reference input ``x`` (NCHW floats, one sample) as the
    FINN graph takes it: channels last, and the raw integers of its grid
    when sira's optimize left the input an annotated integer."""
    from fractions import Fraction

    import numpy as np

    from sira.inputspec import load_spec

    name = model.graph.input[0].name
    shape = tuple(model.get_tensor_shape(name))
    if x.shape != shape:
        x = np.moveaxis(x, 1, -1)
    dt = model.get_tensor_datatype(name)
    if dt is not None and dt.is_integer():
        (entry,) = load_spec(spec).values()
        scale = float(Fraction(entry["scale"]))
        q = np.rint(x.astype(np.float64) / scale)
        if not np.array_equal((q * scale).astype(x.dtype), x) or not (dt.allowed(q.min()) and dt.allowed(q.max())):
            raise RuntimeError(f"the reference input of {name} is not on its {dt.name} grid of scale {entry['scale']}")
        x = q
    return {name: x.reshape(shape).astype(np.float32)}


def _execute(model, spec, samples) -> tuple[list, dict]:
    """(the outputs per sample, every tensor's values over all samples)."""
    import numpy as np
    from qonnx.core.onnx_exec import execute_onnx

    graph = python_graph(model)
    out, values = [], {}
    streams = {i.name for i in graph.graph.input} | {o for n in graph.graph.node for o in n.output}
    for x in samples:
        ctx = execute_onnx(graph, graph_inputs(graph, spec, x), return_full_exec_context=True)
        out.append(ctx[graph.graph.output[0].name])
        for k, v in ctx.items():
            if k in streams:
                values.setdefault(k, []).append(np.asarray(v))
    return out, {k: np.stack(v) for k, v in values.items()}


def _keep(record: dict):
    """A step that keeps FINN's hardware graph before sira's widths."""

    def step_keep_finn_graph(model, cfg):
        from qonnx.core.modelwrapper import ModelWrapper

        record["before"] = ModelWrapper(copy.deepcopy(model.model))
        return model

    return step_keep_finn_graph


def _check(record: dict, spec, reference: str):
    """A step that executes FINN's hardware graph on the model's committed
    reference inputs, before and after sira's widths: the outputs must be
    the same, and every stream value inside the range sira proves on FINN's
    graph (:func:`sira.finn_hw.stream_ranges`)."""

    def step_check_ranges(model, cfg):
        import numpy as np

        from sira.finn_hw import outside, stream_ranges

        io = np.load(reference)
        before, before_values = _execute(record.pop("before"), spec, io["inputs"])
        after, after_values = _execute(model, spec, io["inputs"])
        record["outside"] = outside(stream_ranges(model, spec), after_values)
        record["changed"] = sum(not np.array_equal(a, b) for a, b in zip(before, after))
        record["streams"] = len(after_values)
        record["ref_err"] = float(max(np.abs(np.ravel(a) - np.ravel(r)).max() for a, r in zip(after, io["outputs"])))
        return model

    return step_check_ranges


def _finn_step(dotted: str):
    import importlib

    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def run_flow(path: str, run: str, spec, samples: int, workdir: str, position: str = "first", reference: str | None = None,
             pre_streamline: str | None = None) -> dict:
    """One estimate-only FINN build; FINN's totals and accumulator widths.
    A sira run puts ``step_sira_optimize`` first (``position`` "first") or
    after FINN's ``step_tidy_up`` ("tidy"), ``step_sira_apply_widths``
    after ``step_minimize_bit_width`` and ``step_sira_estimate`` last (sira's
    own estimate of FINN's graph, ``sira_LUT``). With ``reference`` (an
    ``.io.npz`` of reference inputs and outputs) FINN's hardware graph is
    executed on them after the widths (:func:`_check`): the streams outside
    sira's proven ranges (``outside``) and the outputs the widths changed
    (``changed``). ``pre_streamline`` names a FINN step (module.function)
    that goes before FINN's ``step_streamline``."""
    import sira.steps as S

    build, config = import_finn()
    steps = list(config.estimate_only_dataflow_steps)
    if pre_streamline is not None:
        steps.insert(steps.index("step_streamline"), _finn_step(pre_streamline))
    if run != "finn":
        steps.insert(0 if position == "first" else steps.index("step_tidy_up") + 1, S.step_sira_optimize)
        if reference is None:
            steps.insert(steps.index("step_minimize_bit_width") + 1, S.step_sira_apply_widths)
        steps.append(S.step_sira_estimate)
    record: dict = {}
    if reference is not None:
        at = steps.index("step_minimize_bit_width") + 1
        steps[at:at] = [_keep(record)] + ([S.step_sira_apply_widths] if run != "finn" else []) + [_check(record, spec, reference)]
    steps.append(_mac_widths(record))
    out = os.path.join(workdir, run)
    shutil.rmtree(out, ignore_errors=True)
    cfg = config.DataflowBuildConfig(output_dir=out, synth_clk_period_ns=10.0, fpga_part="xc7z020clg400-1",
                                     generate_outputs=[config.DataflowOutputType.ESTIMATE_REPORTS], steps=steps,
                                     save_intermediate_models=False)  # fmt: skip
    cfg.sira_input_spec = spec
    cfg.sira_samples = samples
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = build.build_dataflow_cfg(path, cfg)
    seconds = time.perf_counter() - t0
    report = os.path.join(out, "report", "estimate_layer_resources.json")
    if rc != 0 or not os.path.exists(report):
        log = os.path.join(out, "build_dataflow.log")
        tail = open(log).read()[-2000:] if os.path.exists(log) else ""
        raise RuntimeError(f"FINN's build of {os.path.basename(path)} ({run}) failed:\n{tail}")
    with open(report) as f:
        total = json.load(f)["total"]
    result = {**{k: float(total.get(k, 0)) for k in RESOURCES}, "acc": record.get("acc", []), "seconds": round(seconds, 1)}
    result.update({k: record[k] for k in ("outside", "changed", "streams", "ref_err") if k in record})
    sira_report = os.path.join(out, "report", S.ESTIMATE_REPORT)
    if os.path.exists(sira_report):
        with open(sira_report) as f:
            doc = json.load(f)
        result["sira_LUT"] = doc["total"]["LUT"]
        result["sira_unknown"] = sorted(d["op_type"] for d in doc["layers"].values() if d.get("LUT") == "unknown")
    return result


def _run(*args) -> dict:
    """:func:`run_flow`, or ``{"error": ...}`` with the end of the build's log."""
    try:
        return run_flow(*args)
    except RuntimeError as e:
        return {"error": str(e)}


def compare(model: str, runs: dict) -> list[str]:
    """What a sira run made worse than FINN's own flow, and where execution
    left a range sira proved or sira's widths changed an output (empty when
    nothing). Where FINN alone cannot build a model there is nothing to
    compare with; a sira run that builds it is still checked by execution."""
    base = runs["finn"]
    bad = []
    for name, r in runs.items():
        if "error" in r:
            if name != "finn" and "error" not in base:
                bad.append(f"{model} {name}: the build failed where FINN's own succeeded: {r['error'][-300:]}")
            continue
        bad += [f"{model} {name}: stream outside sira's proven range: {o}" for o in r.get("outside", [])]
        if r.get("changed"):
            bad.append(f"{model} {name}: sira's widths changed {r['changed']} of FINN's outputs")
        if name == "finn" or "error" in base:
            continue
        for k in RESOURCES:
            if r[k] > base[k]:
                bad.append(f"{model} {name}: {k} {r[k]:g} > FINN's {base[k]:g}")
        for i, (a, b) in enumerate(zip(r["acc"], base["acc"])):
            if _bits(a) > _bits(b):
                bad.append(f"{model} {name}: MAC {i} accumulator {a} wider than FINN's {b}")
    return bad


def _bits(dt: str) -> int:
    return int("".join(c for c in dt if c.isdigit()) or 1)


def _pct(new: float, old: float) -> str:
    return "0%" if old == 0 or new == old else f"{100 * (new - old) / old:+.1f}%"


def table(results: dict) -> str:
    from sira.report import format_table

    rows = []
    for model, runs in results.items():
        base = runs["finn"]
        for name, r in runs.items():
            if "error" in r:
                rows.append([model, name, "failed", "", "", "", r["error"].strip().splitlines()[-1][:60], "", ""])
                continue
            rows.append([model, name, f"{r['LUT']:g}", "-" if "error" in base else _pct(r["LUT"], base["LUT"]), f"{r['BRAM_18K']:g}", f"{r['DSP']:g}",
                         " ".join(r["acc"]), str(r.get("sira_LUT", "-")), f"{r['seconds']:.1f}"])  # fmt: skip
    return format_table(["model", "run", "LUT", "vs FINN", "BRAM_18K", "DSP", "accumulators", "sira LUT", "s"], rows, right=(2, 3, 4, 5, 7, 8))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated model names: zoo MLPs (the default) or CNNs ({', '.join(CONV_MODELS)})")
    ap.add_argument("--samples", type=int, default=100, help="inputs of sira's equivalence check per optimize run")
    ap.add_argument("--position", choices=("first", "tidy"), default="first",
                    help="where step_sira_optimize goes: first (on the raw QONNX model, recommended) or after FINN's step_tidy_up")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    try:
        import_finn()
    except ImportError:
        python = finn_python()
        if python is None or os.environ.get(_CHILD):
            print("finn_flow: skipped, FINN is not installed (make it with .ci/run: .venv-finn, or set SIRA_FINN_PYTHON)")
            return 0
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])), **{_CHILD: "1"})
        return subprocess.call([python, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:])], env=env)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS and m not in CONV_MODELS]
    if unknown:
        ap.error(f"unknown models {unknown}; known: {', '.join([*MODELS, *CONV_MODELS])}")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="sira-finn-flow-") as work:
        for model in names:
            if model in CONV_MODELS:
                path, reference = os.path.join(CONV_DIR, f"{model}.onnx"), os.path.join(CONV_DIR, f"{model}.io.npz")
                spec, grid = os.path.join(CONV_DIR, f"{model}.spec.json"), None
                finn_spec = spec  # the check of FINN's own graph proves its ranges from the same input
            else:
                rel, spec, grid = MODELS[model]
                path, reference, finn_spec = os.path.join(ZOO, rel), None, None
            if not os.path.exists(path):
                print(f"finn_flow: {model} skipped, not found at {path} (set SIRA_ZOO)")
                continue
            where = os.path.join(work, model)
            extra = PRE_STREAMLINE.get(model)
            runs = {"finn": _run(path, "finn", finn_spec, args.samples, where, "first", reference, extra)}
            if "error" in runs["finn"]:
                print(f"finn_flow: {model}: FINN alone cannot build it: {runs['finn']['error'].strip().splitlines()[-1]}")
            runs["sira"] = _run(path, "sira", spec, args.samples, where, args.position, reference, extra)
            if grid is not None:
                runs["sira-grid"] = _run(path, "sira-grid", grid, args.samples, where, args.position, reference, extra)
            results[model] = runs
    print(table(results))
    for model, runs in results.items():
        for name, r in runs.items():
            if r.get("sira_unknown"):
                print(f"finn_flow: {model} {name}: sira has no cost for {', '.join(r['sira_unknown'])}")
    bad = [b for model, runs in results.items() for b in compare(model, runs)]
    for b in bad:
        print("finn_flow: WORSE:", b)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "worse": bad}, f, indent=2)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

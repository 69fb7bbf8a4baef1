"""Build steps in FINN's style: sira's analysis, optimization, estimate and
HLS build as steps of a ``DataflowBuildConfig.steps`` list.

Each step has FINN's step signature ``step(model: ModelWrapper, cfg) ->
ModelWrapper``, so it can stand in a FINN flow beside FINN's own steps::

    from finn.builder.build_dataflow_config import DataflowBuildConfig
    from sira.steps import step_sira_analyze, step_sira_optimize, step_sira_estimate, step_sira_build

    cfg = DataflowBuildConfig(output_dir="out", synth_clk_period_ns=10.0, fpga_part="xc7z020clg400-1",
                              generate_outputs=[], steps=[step_sira_analyze, step_sira_optimize,
                                                           step_sira_estimate, step_sira_build])
    cfg.sira_input_spec = "pixels.spec.json"     # sira's own settings ride on the same object

FINN is not needed: a step reads its settings from ``cfg`` by attribute
(``getattr`` with a default), so any object with these attribute names
works, :class:`SiraBuildConfig` among them (``examples/custom_flow.py`` runs
the four steps with qonnx only).

Settings read from ``cfg``
--------------------------
FINN's ``DataflowBuildConfig`` names:

``output_dir`` (required)
    Reports go to ``output_dir/report/``, the HLS project to
    ``output_dir/sira_hls/``.
``fpga_part`` (default ``xc7z020clg400-1``; ``None`` means the default)
    The part the estimate checks and costs against (``sira/devices.py``).
``synth_clk_period_ns`` (default ``10.0``)
    Clock period for throughput and the HLS project.
``target_fps`` (default ``None``)
    Fold each layer just enough to reach this many inferences per second.
``folding_config_file`` (default ``None``)
    A FINN folding file (path or dict). When given it decides the folding,
    and ``target_fps`` is not used (in FINN the folding file is applied
    after the target-fps folding too).

sira's own:

``sira_input_spec`` (default ``None``)
    The input range: ``(lo, hi)``, a spec dict or the path of a spec JSON
    (see :mod:`sira.inputspec`). Needed when an input is float and not
    annotated with an integer ``finn_datatype``. Once
    :func:`step_sira_optimize` has run, the model takes the raw integers
    of an input on an integer grid and is annotated with their datatype;
    the later steps then use the annotations and ignore the spec.
``sira_samples`` (default ``None``: 500 for the optimize check, 100 test vectors for the build)
    Random inputs for the final equivalence check of the optimization and
    the test vectors of the HLS project (corner inputs come on top).
``sira_csim`` (default ``False``)
    C-simulate the HLS project with g++ after the build; a mismatch fails
    the step. ``"dataflow"`` runs the stages concurrently over FIFOs of
    the generated depths, so that a deadlock fails it too.

What each step writes and returns
---------------------------------
Every file is written atomically (readers never see a half-written one).

=====================  ==================================================  ===========================
step                   writes                                              returns
=====================  ==================================================  ===========================
step_sira_analyze      report/sira_analysis.json (``sira analyze`` JSON)   the model, unchanged
step_sira_optimize     report/sira_optimize.json (``sira optimize`` JSON)  the optimized model
step_sira_estimate     report/estimate_layer_resources_sira.json           the model, unchanged
step_sira_build        sira_hls/ (the project), report/sira_build.json     the model, unchanged
step_sira_apply_widths report/sira_apply_widths.json (changed datatypes)   FINN's graph, narrower types
=====================  ==================================================  ===========================

In FINN's own builder: ``step_sira_optimize`` first (or after FINN's
``step_tidy_up``), ``step_sira_apply_widths`` after FINN's
``step_minimize_bit_width``, ``step_sira_estimate`` after FINN's
``step_convert_to_hw`` too (it then costs FINN's nodes); see the README.

Every problem is raised as :class:`~sira.errors.SiraError` whose message
starts with the step's name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, Callable, Optional, Union

import numpy as np
from sira.transforms.finn_form import finn_form
from sira.transforms.pipeline import optimize
from sira.transforms.widths import ACC_DTYPE_KEY

from .analysis import analyze
from .devices import DEFAULT_PART
from .errors import SiraError
from .estimate import estimate
from .finn_hw import ApplyWidths, has_finn_hw
from .hls.builder import build
from .model import load
from .report import report_json, write_atomic

#: where the reports go, below ``cfg.output_dir``
REPORT_DIR = "report"
#: where the HLS project goes, below ``cfg.output_dir``
HLS_DIR = "sira_hls"

ANALYSIS_REPORT = "sira_analysis.json"
OPTIMIZE_REPORT = "sira_optimize.json"
ESTIMATE_REPORT = "estimate_layer_resources_sira.json"
BUILD_REPORT = "sira_build.json"
APPLY_WIDTHS_REPORT = "sira_apply_widths.json"


@dataclasses.dataclass
class SiraBuildConfig:
    """The settings the sira steps read, for flows without FINN; the names
    are FINN's ``DataflowBuildConfig`` names where FINN has them (see the
    module docstring)."""

    output_dir: str
    fpga_part: Optional[str] = DEFAULT_PART
    synth_clk_period_ns: float = 10.0
    target_fps: Optional[float] = None
    folding_config_file: Any = None
    sira_input_spec: Any = None
    sira_samples: Optional[int] = None
    sira_csim: Union[bool, str] = False


# --------------------------------------------------------------------------
# reading cfg
# --------------------------------------------------------------------------


class _Settings:
    """What one step reads from ``cfg``, checked, with the defaults."""

    def __init__(self, cfg, step: str):
        self.step = step
        out = getattr(cfg, "output_dir", None)
        if not out:
            raise SiraError(f"{step}: the build config has no output_dir; set cfg.output_dir to the folder for reports and the HLS project")
        self.output_dir = os.fspath(out)
        self.part = getattr(cfg, "fpga_part", None) or DEFAULT_PART
        clock = getattr(cfg, "synth_clk_period_ns", None)
        self.clock_ns = 10.0 if clock is None else clock
        if isinstance(self.clock_ns, bool) or not isinstance(self.clock_ns, (int, float)) or self.clock_ns <= 0:
            raise SiraError(f"{step}: synth_clk_period_ns must be a positive number of ns, got {clock!r}")
        self.clock_ns = float(self.clock_ns)
        self.folding = getattr(cfg, "folding_config_file", None)
        fps = getattr(cfg, "target_fps", None)
        self.target_fps = None if self.folding is not None else fps
        if self.target_fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0):
            raise SiraError(f"{step}: target_fps must be a positive number, got {fps!r}")
        if isinstance(self.folding, (str, os.PathLike)) and not os.path.exists(self.folding):
            raise SiraError(f"{step}: folding_config_file '{os.fspath(self.folding)}' not found")
        self.input_spec = getattr(cfg, "sira_input_spec", None)
        samples = getattr(cfg, "sira_samples", None)
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise SiraError(f"{step}: sira_samples must be a whole number >= 1, got {samples!r}")
        self.samples = samples
        csim = getattr(cfg, "sira_csim", False)
        if csim not in (False, True, None, "dataflow"):
            raise SiraError(f"{step}: sira_csim must be False, True or 'dataflow', got {csim!r}")
        self.csim = bool(csim)
        self.csim_dataflow = csim == "dataflow"

    @property
    def report_dir(self) -> str:
        return os.path.join(self.output_dir, REPORT_DIR)

    def write_report(self, name: str, doc: dict) -> str:
        path = os.path.join(self.report_dir, name)
        write_atomic(path, json.dumps(doc, indent=2, default=_json_default) + "\n")
        return path


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _is_optimized(model) -> bool:
    return bool(model.get_metadata_prop(ACC_DTYPE_KEY))


def _spec_for(model, spec):
    """The input spec a step gives sira for ``model``: none for an optimized
    model whose inputs are all annotated integers (it takes the raw
    integers; the annotations say their range), else ``spec``."""
    if spec is None or not _is_optimized(model):
        return spec
    types = [model.get_tensor_datatype(i.name) for i in model.graph.input]
    if types and all(t is not None and t.is_integer() for t in types):
        return None
    return spec


def _step(func: Callable) -> Callable:
    """Check the model, read ``cfg``, and raise every problem as a SiraError
    that names the step."""
    name = func.__name__

    @functools.wraps(func)
    def run(model, cfg):
        settings = _Settings(cfg, name)
        if isinstance(model, (str, os.PathLike)):
            try:
                model = load(model)
            except SiraError as e:
                raise SiraError(f"{name}: {e}") from e
        if not hasattr(model, "graph") or not hasattr(model, "get_metadata_prop"):
            raise SiraError(f"{name}: expected a qonnx ModelWrapper (or a model path), got {type(model).__name__}")
        try:
            return func(model, settings)
        except SiraError as e:
            if str(e).startswith(f"{name}:"):
                raise
            raise SiraError(f"{name}: {e}") from e

    return run


# --------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------


@_step
def step_sira_analyze(model, cfg):
    """Range analysis of every tensor: ``report/sira_analysis.json`` (the
    ``sira analyze --format json`` document). Annotates nothing: returns
    ``model`` unchanged."""
    report = analyze(model, _spec_for(model, cfg.input_spec))
    cfg.write_report(ANALYSIS_REPORT, report_json(report))
    return model


@_step
def step_sira_optimize(model, cfg):
    """The SIRA pipeline (lower, aggregate, thresholds, annotate), its
    result verified bit-exact against ``model``: ``report/sira_optimize.json``
    (accumulator widths per MAC layer, float islands, passes). Returns the
    optimized model: integer MAC weights, ``MultiThreshold`` activations,
    ``finn_datatype`` annotations and the metadata ``sira_acc_dtype``, in
    the forms FINN's conversions expect (:mod:`sira.transforms.finn_form`),
    so FINN's own steps can follow, on the raw QONNX model or after FINN's
    ``step_tidy_up``."""
    options = {} if cfg.samples is None else {"samples": cfg.samples}
    optimized, report = optimize(model, _spec_for(model, cfg.input_spec), **options)
    cfg.write_report(OPTIMIZE_REPORT, report.to_json())
    return finn_form(optimized)


@_step
def step_sira_estimate(model, cfg):
    """LUT, DSP, BRAM_18K and URAM per hardware layer, SIRA versus the FINN
    baseline, with FINN's key names: ``report/estimate_layer_resources_sira.json``
    (the ``sira estimate --format json`` document). The model is optimized
    first (in memory) unless it already is; after FINN's
    ``step_convert_to_hw`` FINN's own nodes are costed with their folding
    (:func:`sira.estimate.estimate_finn_graph`). Returns ``model`` unchanged."""
    options = {} if cfg.samples is None else {"samples": cfg.samples}
    if has_finn_hw(model):  # after FINN's step_convert_to_hw: FINN's nodes carry the folding
        options.update(target_fps=None, folding=None)
    else:
        options.update(target_fps=cfg.target_fps, folding=cfg.folding)
    doc = estimate(model, _spec_for(model, cfg.input_spec), part=cfg.part, clock_ns=cfg.clock_ns, **options)
    cfg.write_report(ESTIMATE_REPORT, doc)
    return model


@_step
def step_sira_build(model, cfg):
    """The Vitis HLS project in ``output_dir/sira_hls/`` (replacing one a
    previous build made), C-simulated with g++ when ``sira_csim`` is set;
    ``report/sira_build.json`` says where it is and the C simulation's
    verdict. A C simulation that is not bit-exact fails the step. Returns
    ``model`` unchanged."""
    options = {} if cfg.samples is None else {"samples": cfg.samples}
    result = build(model, os.path.join(cfg.output_dir, HLS_DIR), _spec_for(model, cfg.input_spec), part=cfg.part,
                        clock_ns=cfg.clock_ns, target_fps=cfg.target_fps, folding=cfg.folding, run_csim=cfg.csim,
                        dataflow=cfg.csim_dataflow, **options)  # fmt: skip
    project = result.project
    doc = {
        "project": os.path.abspath(project.path),
        "top": project.top,
        "stages": len(project.dataflow.stages),
        "samples": project.samples,
        "csim": None if result.csim is None else result.csim.to_json(),
    }
    cfg.write_report(BUILD_REPORT, doc)
    if result.csim is not None and not result.csim.passed:
        raise SiraError(f"C simulation of {project.path} failed: {result.csim.summary()}")
    return model


@_step
def step_sira_apply_widths(model, cfg):
    """sira's proven widths in FINN's hardware nodes: run after FINN's
    ``step_minimize_bit_width`` (and before ``step_generate_estimate_reports``),
    it proves every stream's range on FINN's own graph and sets the
    ``accDataType``, threshold and output datatypes of MVAU, VVAU and
    Thresholding nodes to the narrowest that hold them - never wider than
    FINN's - clipping thresholds to the proven input ranges, and removes a
    Thresholding node that outputs its input (an input quantizer on the
    input's own integer grid) (:mod:`sira.finn_hw`). FINN's own estimate
    then reflects them.
    ``report/sira_apply_widths.json`` lists every change. Returns the model
    with the narrower datatypes."""
    if not has_finn_hw(model):
        raise SiraError("the model has no FINN hardware nodes; put step_sira_apply_widths after FINN's step_convert_to_hw "
                        "(best after step_minimize_bit_width)")  # fmt: skip
    pass_ = ApplyWidths(cfg.input_spec)
    model = model.transform(pass_, make_deepcopy=True, cleanup=False)
    cfg.write_report(APPLY_WIDTHS_REPORT, {"changes": [c.to_json() for c in pass_.changes]})
    return model


#: the four steps in flow order
SIRA_STEPS = [step_sira_analyze, step_sira_optimize, step_sira_estimate, step_sira_build]

__all__ = [
    "SiraBuildConfig",
    "SIRA_STEPS",
    "step_sira_analyze",
    "step_sira_optimize",
    "step_sira_estimate",
    "step_sira_build",
    "step_sira_apply_widths",
]

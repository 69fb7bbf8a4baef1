"""Building a project: optimize, lower, fold and cost a model, plan its
dataflow, take its test vectors and write the folder (optionally
C-simulated). The steps live in the sibling modules; this one chains them."""


from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional

import numpy as np

from .. import hw
from ..analysis import analyze
from ..devices import DEFAULT_PART, get_part
from ..errors import SiraError
from ..estimate import cost_layers, estimate_prepared, prepare
from ..htmlreport import write_report
from ..model import load
from ..report import report_json
from sira.transforms.pipeline import AGREEMENT_KEY
from .dataflow import plan
from .folder import locked
from .names import Namer
from .project import Project, check_control, check_destination, emit
from .simulate import CsimResult, csim
from .vectors import LAYER_FRAMES, Vectors, make_vectors


@dataclasses.dataclass
class BuildResult:
    project: Project
    csim: Optional[CsimResult]

    @property
    def path(self) -> str:
        return self.project.path


def _plain(value):
    """JSON-able copy of a report structure (numpy numbers to Python)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else v.tolist() if isinstance(v, np.ndarray) else str(v)))


def build(model, out_dir: str, input_spec=None, *, part: str = DEFAULT_PART, clock_ns: float = 10.0,
          target_fps: Optional[float] = None, folding=None, samples: int = 100, seed: int = 0, run_csim: bool = False,
          progress: Optional[Callable[[str], None]] = None, force: bool = False,
          time_budget: Optional[float] = None, control: str = "none", dataflow: bool = False, impl: str = "auto") -> BuildResult:
    """Build the HLS project of ``model`` (a QONNX file or ModelWrapper) in
    ``out_dir``; with ``run_csim`` also C-simulate it. ``samples`` random
    inputs (plus corner inputs) become the testbench's vectors.

    An existing ``out_dir`` keeps every file sira did not write there; one
    that is not verifiably sira's is refused before any work unless
    ``force`` (see :mod:`.folder`). One build at a time per folder.
    ``time_budget`` limits the optimize passes (seconds, None: no limit).
    ``control`` is the top's block control: ``none`` (free-running, as
    FINN builds it) or ``hs`` (ap_ctrl_hs on an AXI-Lite slave).
    ``dataflow`` C-simulates the stages concurrently over bounded FIFOs,
    which finds a deadlock (see :func:`.simulate.csim`). ``impl`` builds the
    requantizers as thresholds, integer requantizers or the cheaper of the
    two (``auto``; see :mod:`sira.implementation`)."""
    if samples < 1:
        raise SiraError(f"samples must be at least 1, got {samples}")
    p = get_part(part)
    if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
        raise SiraError(f"clock period must be positive, got {clock_ns} ns")
    check_control(control)
    check_destination(out_dir, force)
    with locked(out_dir):
        project = _write_model_project(model, out_dir, input_spec, p, clock_ns, target_fps, folding, samples, seed,
                                       progress or (lambda label: None), force, time_budget, control, impl)  # fmt: skip
        result = None
        if run_csim:
            (progress or (lambda label: None))("csim")
            result = csim(project.path, dataflow=dataflow)  # also renders the report with its verdict
        else:
            write_report(project.path)
    return BuildResult(project, result)


def _write_model_project(model, out_dir: str, input_spec, p, clock_ns: float, target_fps, folding, samples: int, seed: int,
                         say: Callable[[str], None], force: bool, time_budget: Optional[float], control: str, impl: str = "auto"):
    """Optimize, estimate, plan, take test vectors and write the folder."""
    if isinstance(model, (str, bytes, os.PathLike)):
        path = os.fspath(model)
        original = load(path)  # checks the path first: a regular file, not a pipe or a device
        with open(path, "rb") as f:
            model_bytes = f.read()
        model_name = os.path.basename(path)
    else:
        model_bytes = model.model.SerializeToString()
        model_name = "model.onnx"
        original = load(model)
    prepared = prepare(original, input_spec, seed=seed, progress=lambda label: say(f"optimize: {label}"), time_budget=time_budget)
    say("estimate")
    doc, layers, costs = estimate_prepared(prepared, p, clock_ns, "refined", target_fps, folding, impl)
    say("plan")
    namer = Namer()
    df = plan(layers, [o.name for o in prepared[0].graph.output], namer)
    say("vectors")
    optimized = prepared[0]
    regridded = frozenset(
        i.name for i in optimized.graph.input if optimized.get_tensor_datatype(i.name) != original.get_tensor_datatype(i.name)
    )
    analysis = analyze(original, input_spec)
    vectors = make_vectors(original, input_spec, df, samples=samples, seed=seed, regridded=regridded, report=analysis)
    islands = [{"node": layer.name, "tensor": layer.inputs[0], "reason": "reads a float input: runs on the host, before the dataflow"}
               for layer in df.head if isinstance(layer, (hw.MVAU, hw.VVAU))]  # fmt: skip
    agreement = json.loads(optimized.get_metadata_prop(AGREEMENT_KEY) or "{}")
    reports = {"analysis": report_json(analysis, model_path=model_name),
               "optimize": {"layers": _plain(prepared[1]), "float_islands": islands, "float_agreement": agreement}}  # fmt: skip
    say("write")
    options = {"part": p.name, "clock_ns": clock_ns, "control": control, "target_fps": target_fps,
               "folding": folding if isinstance(folding, (str, type(None))) else "inline", "samples": samples, "seed": seed, "impl": impl,
               "input_spec": input_spec if isinstance(input_spec, (str, dict, type(None))) else list(input_spec)}  # fmt: skip
    return emit(out_dir, df, costs, vectors, doc, model_bytes=model_bytes, model_name=model_name, options=options, namer=namer,
                reports=reports, force=force)


def build_layers(layers, out_dir: str, samples: list, *, name: str = "layers", part: str = DEFAULT_PART, clock_ns: float = 10.0,
                 run_csim: bool = False, force: bool = False, control: str = "none", dataflow: bool = False) -> BuildResult:
    """Build the HLS project of a list of hardware layers (:mod:`sira.hw`,
    in dataflow order) without a model: ``samples`` is a list of
    ``{input tensor: integer array}`` frames, and the expected outputs are
    the integer reference's. Every tensor no layer reads is an output."""
    p = get_part(part)
    check_destination(out_dir, force)
    docs, costs = cost_layers(layers, p, "refined")
    read = {t for layer in layers for t in layer.inputs}
    outputs = [t for layer in layers for t in layer.outputs if t not in read]
    namer = Namer()
    df = plan(layers, outputs, namer)
    ins: list = [[] for _ in df.inputs]
    outs: list = [[] for _ in df.outputs]
    frames: list = []
    for frame in samples:
        env = df.reference(frame)
        frames.append(env)
        for k, port in enumerate(df.inputs):
            ins[k].append(np.asarray(env[port.tensor]).reshape(-1))
        for k, port in enumerate(df.outputs):
            outs[k].append(np.asarray(env[port.tensor]).reshape(-1))
    vectors = Vectors([f"sample-{i}" for i in range(len(samples))], ins, outs, frames[:LAYER_FRAMES])
    options = {"part": p.name, "clock_ns": clock_ns, "control": check_control(control), "samples": len(samples)}
    estimate_doc = {"part": p.name, "clock_ns": clock_ns, "mode": "refined", "layers": docs}
    with locked(out_dir):
        project = emit(out_dir, df, costs, vectors, estimate_doc, model_bytes=b"", model_name=f"{name}.onnx", options=options,
                       namer=namer, force=force)  # fmt: skip
        return BuildResult(project, csim(project.path, dataflow=dataflow) if run_csim else None)


__all__ = ["build", "build_layers", "BuildResult"]

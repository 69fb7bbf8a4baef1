"""C simulation of a generated project with g++ alone.

The ``ap_int``/``hls_stream`` headers come from ``$XILINX_HLS/include`` when
that is set, else from the copy the ``hls4ml`` Python package ships (its
C-simulation model of Vitis' types is bit-accurate). Binaries are cached by
a hash of the compiler, the flags, the headers' folder and every source
file, so running the same project again does not recompile.

Two ways to run the whole dataflow: the **sequential** testbench
(``tb/testbench.cpp``) calls the top once per sample and every stage runs to
completion in turn over unbounded streams, which checks the numbers but
cannot deadlock; the **dataflow** one (``tb/testbench_dataflow.cpp``,
compiled with ``-DSIRA_DATAFLOW_CSIM`` and sira's bounded, blocking
``hls_stream.h`` first on the include path) runs every stage as a thread
over all the samples with FIFOs of the generated depths, as the hardware
does, and stops at the first moment every thread waits: the deadlock is
raised as :class:`~sira.errors.DeadlockError` (the CLI's exit code 3).
The sequential run stays the default: on the largest CNNs the threads'
hand-offs make the run about six times longer (the compile, which
dominates, is the same).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import Optional

from ..errors import DeadlockError, SiraError
from ..htmlreport import write_report as write_html
from ..report import write_atomic
from .project import DATAFLOW_FLAGS, DATAFLOW_INCLUDE, DATAFLOW_SOURCES, GXX_FLAGS, is_project


def find_ap_types() -> str:
    """Folder holding ``ap_int.h`` and ``hls_stream.h``."""
    xilinx = os.environ.get("XILINX_HLS")
    if xilinx:
        inc = os.path.join(xilinx, "include")
        if os.path.isfile(os.path.join(inc, "ap_int.h")):
            return inc
        raise SiraError(f"XILINX_HLS is set to '{xilinx}' but {inc}/ap_int.h does not exist; fix XILINX_HLS or unset it")
    spec = importlib.util.find_spec("hls4ml")
    if spec is not None and spec.origin:
        inc = os.path.join(os.path.dirname(spec.origin), "templates", "vivado", "ap_types")
        if os.path.isfile(os.path.join(inc, "ap_int.h")):
            return inc
    raise SiraError(
        "no ap_types headers for C simulation: install them with pip install 'sira[hls]' (it brings hls4ml, "
        "which ships them) or set XILINX_HLS to a Vitis HLS installation"
    )


def unavailable() -> str:
    """Why C simulation cannot run on this machine ("" when it can)."""
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        return "no C++ compiler (g++, or $CXX) on this machine"
    try:
        find_ap_types()
    except SiraError as e:
        return str(e)
    return ""


def compiler() -> str:
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise SiraError(f"no C++ compiler '{cxx}' found; install g++ (or set CXX)")
    return cxx


def cache_dir() -> str:
    return os.environ.get("SIRA_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "sira", "csim")


@dataclasses.dataclass(frozen=True)
class StreamProgress:
    """What one stream of a dataflow C simulation carried: its FIFO depth,
    the words written into it and read out of it, and the most it held at once."""

    stream: str
    depth: int
    written: int
    read: int
    peak: int


@dataclasses.dataclass(frozen=True)
class StageProgress:
    """One thread of a dataflow C simulation (a stage, or the testbench's
    ``feed in_k`` / ``drain out_k``): whether it finished its frames and how
    often it waited on an empty or a full stream."""

    stage: str
    finished: bool
    stalls: int


_STREAM_LINE = re.compile(r"^dataflow stream (\S+): depth (\d+), (\d+) written, (\d+) read, peak (\d+)$", re.M)
_STAGE_LINE = re.compile(r"^dataflow stage (.+): (finished|running), (\d+) stalls$", re.M)


def _streams_of(output: str) -> list[StreamProgress]:
    return [StreamProgress(m.group(1), *map(int, m.groups()[1:])) for m in _STREAM_LINE.finditer(output)]


def _stages_of(output: str) -> list[StageProgress]:
    return [StageProgress(m.group(1), m.group(2) == "finished", int(m.group(3))) for m in _STAGE_LINE.finditer(output)]


@dataclasses.dataclass
class CsimResult:
    passed: bool
    exact: int
    samples: int
    output: str
    seconds: float
    cached: bool
    first_mismatch: Optional[str] = None  # stage id
    first_mismatch_layer: Optional[str] = None  # the model's layer name
    #: "sequential" (every stage to completion in turn, unbounded streams) or "dataflow" (threads, bounded FIFOs)
    mode: str = "sequential"
    #: the dataflow mode's progress per stream and per thread (empty in the sequential mode)
    streams: list[StreamProgress] = dataclasses.field(default_factory=list)
    stages: list[StageProgress] = dataclasses.field(default_factory=list)
    #: the depth every inner FIFO was forced to (None: the generated depths)
    fifo_depth: Optional[int] = None

    def summary(self) -> str:
        text = f"csim: {self.exact}/{self.samples} outputs bit-exact"
        if self.mode == "dataflow":
            text += f" (dataflow: {len(self.stages)} threads, {len(self.streams)} bounded FIFOs, no deadlock)"
        if self.first_mismatch_layer:
            text += f"; first mismatching layer: {self.first_mismatch_layer}"
        return text

    def to_json(self) -> dict:
        doc = {"passed": self.passed, "exact": self.exact, "samples": self.samples, "seconds": round(self.seconds, 3),
               "cached": self.cached, "first_mismatch_layer": self.first_mismatch_layer, "mode": self.mode}  # fmt: skip
        if self.mode == "dataflow":
            doc["fifo_depth"] = self.fifo_depth
            doc["streams"] = [dataclasses.asdict(s) for s in self.streams]
            doc["stages"] = [dataclasses.asdict(s) for s in self.stages]
        return doc


#: what each binary of a project is compiled from
TARGETS = {"csim": ("tb/testbench.cpp", "firmware/top.cpp"), "layers": ("tb/tb_layers.cpp",), "dataflow": DATAFLOW_SOURCES}


def _flags(project: str, target: str, ap_types: str) -> list[str]:
    """g++ flags of ``target``: the dataflow mode's header folder comes
    before the ap_types', so that its ``hls_stream.h`` is the one found."""
    first = [*DATAFLOW_FLAGS.split(), "-I", os.path.join(project, DATAFLOW_INCLUDE)] if target == "dataflow" else []
    return [*GXX_FLAGS.split(), *first, "-isystem", ap_types, "-I", os.path.join(project, "firmware"), "-I", os.path.join(project, "tb")]


def _key(project: str, cxx: str, ap_types: str, target: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h.update(f"{version}\0{GXX_FLAGS}\0{DATAFLOW_FLAGS}\0{os.path.realpath(ap_types)}\0{target}\0".encode())
    for sub in ("firmware", "tb"):
        for folder, dirs, names in os.walk(os.path.join(project, sub)):
            dirs.sort()
            for name in sorted(names):
                path = os.path.join(folder, name)
                h.update(f"{os.path.relpath(path, project)}\0".encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()[:32]


def build_binary(project: str, target: str = "csim") -> tuple[str, bool]:
    """(path of the compiled testbench, whether it came from the cache).
    ``target`` is ``csim`` (the whole dataflow, stage after stage),
    ``dataflow`` (the whole dataflow, stages concurrently) or ``layers``
    (stage by stage)."""
    missing = [s for s in TARGETS[target] if not os.path.isfile(os.path.join(project, s))]
    if missing:
        raise SiraError(f"the project '{project}' has no {missing[0]}: it was written by an older sira; rebuild it with sira build")
    cxx, ap_types = compiler(), find_ap_types()
    key = _key(project, cxx, ap_types, target)
    folder = os.path.join(cache_dir(), key)
    binary = os.path.join(folder, f"{target}.bin")
    if os.path.isfile(binary):
        return binary, True
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target}-", dir=folder)
    os.close(fd)
    cmd = [cxx, *_flags(project, target, ap_types), *[os.path.join(project, s) for s in TARGETS[target]], "-o", tmp]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        os.unlink(tmp)
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = "\n".join(lines[:20])
        raise SiraError(f"g++ could not compile the project in '{project}' (a bug in sira's templates, please report it):\n{detail}")
    os.replace(tmp, binary)
    return binary, False


def _stage_layers(project: str) -> dict[str, str]:
    with open(os.path.join(project, "manifest.json")) as f:
        return {s["id"]: s["layer"] for s in json.load(f).get("stages", [])}


def run_layers(project: str) -> tuple[bool, str, Optional[str]]:
    """Run the stage-by-stage testbench: (all bit-exact, its output, the
    first mismatching stage id)."""
    binary, _ = build_binary(project, "layers")
    done = subprocess.run([binary, os.path.join(project, "tb_data")], capture_output=True, text=True)
    m = re.search(r"first mismatching layer: (\S+)", done.stdout)
    return done.returncode == 0, done.stdout, m.group(1) if m else None


def csim(project: str, *, dataflow: bool = False, fifo_depth: Optional[int] = None, layers_on_failure: bool = True,
         write_report: bool = True) -> CsimResult:
    """Compile (or reuse) and run the project's testbench. ``passed`` only
    if every output of every sample is bit-exact; on a failure the
    stage-by-stage testbench names the first mismatching layer.

    ``dataflow`` runs every stage as its own thread over bounded FIFOs of
    the generated depths (``fifo_depth`` forces every inner stream to
    that depth instead, to try others), as the hardware runs them: a
    design that deadlocks raises :class:`~sira.errors.DeadlockError`
    naming every blocked stage and the stream it waits on. The default
    runs the stages one after the other over unbounded streams, which
    checks the numbers only."""
    project = os.path.abspath(project)
    if not os.path.isdir(project) or not is_project(project):
        raise SiraError(f"'{project}' is not a sira HLS project (no sira manifest.json); create one with: sira build MODEL -o DIR")
    if fifo_depth is not None and (not dataflow or isinstance(fifo_depth, bool) or not isinstance(fifo_depth, int) or fifo_depth < 1):
        raise SiraError(f"a forced FIFO depth must be a positive integer and needs the dataflow C simulation, got {fifo_depth!r}"
                        f"{'' if dataflow else ' without it'}; use sira csim DIR --dataflow --fifo-depth N")  # fmt: skip
    t0 = time.perf_counter()
    binary, cached = build_binary(project, "dataflow" if dataflow else "csim")
    env = dict(os.environ)
    env.pop("SIRA_FIFO_DEPTH", None)
    if fifo_depth is not None:
        env["SIRA_FIFO_DEPTH"] = str(fifo_depth)
    done = subprocess.run([binary, os.path.join(project, "tb_data")], capture_output=True, text=True, env=env)
    if dataflow and done.returncode == DEADLOCK_EXIT:
        _deadlock(project, done.stdout, fifo_depth, cached, time.perf_counter() - t0, write_report)
    m = re.search(r"csim: (\d+)/(\d+) outputs bit-exact", done.stdout)
    if done.returncode == 2 or m is None:
        raise SiraError(f"the testbench of '{project}' could not run: {(done.stdout + done.stderr).strip()[-500:]}")
    exact, samples = int(m.group(1)), int(m.group(2))
    result = CsimResult(done.returncode == 0 and exact == samples and samples > 0, exact, samples, done.stdout, 0.0, cached,
                        mode="dataflow" if dataflow else "sequential", streams=_streams_of(done.stdout), stages=_stages_of(done.stdout),
                        fifo_depth=fifo_depth)
    if not result.passed and layers_on_failure:
        _, _, stage = run_layers(project)
        result.first_mismatch = stage
        result.first_mismatch_layer = _stage_layers(project).get(stage, stage) if stage else None
    result.seconds = time.perf_counter() - t0
    if write_report:
        _write_verdict(project, result.to_json())
    return result


#: exit code of the dataflow testbench on a deadlock (tb/dataflow/hls_stream.h)
DEADLOCK_EXIT = 3


def _deadlock(project: str, output: str, fifo_depth: Optional[int], cached: bool, seconds: float, write_report: bool) -> None:
    """Raise the deadlock the dataflow testbench reported (its one line:
    every blocked thread and the stream it waits on), after recording it
    in the project's report."""
    m = re.search(r"^dataflow csim: deadlock: (.*)$", output, re.M)
    line = m.group(1) if m else output.strip()[-500:]
    streams, stages = _streams_of(output), _stages_of(output)
    why = (f"with every inner FIFO forced to depth {fifo_depth}" if fifo_depth is not None
           else "with the generated FIFO depths (a bug in sira's FIFO sizing, please report it)")  # fmt: skip
    if write_report:
        _write_verdict(project, {"passed": False, "mode": "dataflow", "deadlock": line, "fifo_depth": fifo_depth, "cached": cached,
                                 "seconds": round(seconds, 3), "streams": [dataclasses.asdict(s) for s in streams],
                                 "stages": [dataclasses.asdict(s) for s in stages]})  # fmt: skip
    raise DeadlockError(f"the dataflow of '{project}' deadlocks {why}: {line}", line, streams, stages)


def _write_verdict(project: str, doc: dict) -> None:
    write_atomic(os.path.join(project, "report", "csim.json"), json.dumps(doc, indent=2) + "\n")
    write_html(project)


__all__ = ["csim", "CsimResult", "StreamProgress", "StageProgress", "DEADLOCK_EXIT", "find_ap_types", "unavailable", "build_binary", "run_layers", "cache_dir"]

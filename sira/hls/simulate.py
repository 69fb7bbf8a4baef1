"""C simulation of a generated project with g++ alone.

The ``ap_int``/``hls_stream`` headers come from ``$XILINX_HLS/include`` when
that is set, else from the copy the ``hls4ml`` Python package ships (its
C-simulation model of Vitis' types is bit-accurate). Binaries are cached by
a hash of the compiler, the flags, the headers' folder and every source
file, so running the same project again does not recompile.
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

from ..errors import SiraError
from ..htmlreport import write_report as write_html
from ..report import write_atomic
from .project import GXX_FLAGS, is_project


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

    def summary(self) -> str:
        text = f"csim: {self.exact}/{self.samples} outputs bit-exact"
        if self.first_mismatch_layer:
            text += f"; first mismatching layer: {self.first_mismatch_layer}"
        return text

    def to_json(self) -> dict:
        return {"passed": self.passed, "exact": self.exact, "samples": self.samples, "seconds": round(self.seconds, 3),
                "cached": self.cached, "first_mismatch_layer": self.first_mismatch_layer}  # fmt: skip


def _sources(project: str, target: str) -> list[str]:
    if target == "layers":
        return ["tb/tb_layers.cpp"]
    return ["tb/testbench.cpp", "firmware/top.cpp"]


def _key(project: str, cxx: str, ap_types: str, target: str) -> str:
    h = hashlib.sha256()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    h.update(f"{version}\0{GXX_FLAGS}\0{os.path.realpath(ap_types)}\0{target}\0".encode())
    for sub in ("firmware", "tb"):
        folder = os.path.join(project, sub)
        for name in sorted(os.listdir(folder)):
            h.update(f"{sub}/{name}\0".encode())
            with open(os.path.join(folder, name), "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:32]


def build_binary(project: str, target: str = "csim") -> tuple[str, bool]:
    """(path of the compiled testbench, whether it came from the cache).
    ``target`` is ``csim`` (the whole dataflow) or ``layers`` (stage by stage)."""
    cxx, ap_types = compiler(), find_ap_types()
    key = _key(project, cxx, ap_types, target)
    folder = os.path.join(cache_dir(), key)
    binary = os.path.join(folder, f"{target}.bin")
    if os.path.isfile(binary):
        return binary, True
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target}-", dir=folder)
    os.close(fd)
    cmd = [cxx, *GXX_FLAGS.split(), "-isystem", ap_types, "-I", os.path.join(project, "firmware"), "-I", os.path.join(project, "tb"),
           *[os.path.join(project, s) for s in _sources(project, target)], "-o", tmp]  # fmt: skip
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


def csim(project: str, *, layers_on_failure: bool = True, write_report: bool = True) -> CsimResult:
    """Compile (or reuse) and run the project's testbench. ``passed`` only
    if every output of every sample is bit-exact; on a failure the
    stage-by-stage testbench names the first mismatching layer."""
    project = os.path.abspath(project)
    if not os.path.isdir(project) or not is_project(project):
        raise SiraError(f"'{project}' is not a sira HLS project (no sira manifest.json); create one with: sira build MODEL -o DIR")
    t0 = time.perf_counter()
    binary, cached = build_binary(project, "csim")
    done = subprocess.run([binary, os.path.join(project, "tb_data")], capture_output=True, text=True)
    m = re.search(r"csim: (\d+)/(\d+) outputs bit-exact", done.stdout)
    if done.returncode == 2 or m is None:
        raise SiraError(f"the testbench of '{project}' could not run: {(done.stdout + done.stderr).strip()[-500:]}")
    exact, samples = int(m.group(1)), int(m.group(2))
    result = CsimResult(done.returncode == 0 and exact == samples and samples > 0, exact, samples, done.stdout, 0.0, cached)
    if not result.passed and layers_on_failure:
        _, _, stage = run_layers(project)
        result.first_mismatch = stage
        result.first_mismatch_layer = _stage_layers(project).get(stage, stage) if stage else None
    result.seconds = time.perf_counter() - t0
    if write_report:
        write_atomic(os.path.join(project, "report", "csim.json"), json.dumps(result.to_json(), indent=2) + "\n")
        write_html(project)
    return result


__all__ = ["csim", "CsimResult", "find_ap_types", "unavailable", "build_binary", "run_layers", "cache_dir"]

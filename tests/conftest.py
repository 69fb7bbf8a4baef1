"""Shared fixtures: the QONNX model zoo (read in place, never copied), one
C-simulation cache for the whole run, and the bundled examples built once."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from sira.hls import build
from sira.hls.simulate import unavailable
from tests.helpers import FAST_ZOO, ZOO_MODELS, zoo_path

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")

#: random inputs in the testbench of an example build, next to the corner inputs
EXAMPLE_SAMPLES = 30


@pytest.fixture(params=[pytest.param(name, marks=() if name in FAST_ZOO else pytest.mark.slow) for name in sorted(ZOO_MODELS)])
def zoo_model(request):
    """(name, path, input spec) of each zoo model."""
    name = request.param
    return name, zoo_path(name), ZOO_MODELS[name][1]


@pytest.fixture(scope="session", autouse=True)
def csim_cache(request, tmp_path_factory) -> str:
    """Where every test's compiled testbenches go: pytest's cache folder
    (a temporary one with ``-p no:cacheprovider``), never the user's cache.
    sira keys a binary by the content of the project's sources, the
    compiler and its flags, so tests that simulate the same project share
    one g++ run, in this run and the next ones."""
    cache = getattr(request.config, "cache", None)
    folder = str(cache.mkdir("sira-csim")) if cache is not None else str(tmp_path_factory.mktemp("csim-cache"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIRA_CACHE_DIR", folder)
        yield folder


def _content_key(*paths: str) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope="session")
def example_build(tmp_path_factory):
    """A function of an example's name ("sira_mlp", "sira_conv") giving its
    BuildResult: built into an HLS project and C-simulated (where g++ can)
    once per run, keyed by the model and spec files' content. Tests read
    the project; one that changes it works on a copy."""
    built: dict[str, object] = {}

    def get(name: str):
        model, spec = os.path.join(EXAMPLES, f"{name}.onnx"), os.path.join(EXAMPLES, f"{name}.spec.json")
        key = _content_key(model, spec)
        if key not in built:
            with open(spec) as f:
                input_spec = json.load(f)
            dest = tmp_path_factory.mktemp(name) / f"{name}_hls"
            built[key] = build(model, str(dest), input_spec, samples=EXAMPLE_SAMPLES, run_csim=not unavailable())
        return built[key]

    return get

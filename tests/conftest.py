"""Shared fixtures: the QONNX model zoo (read in place, never copied), one
C-simulation cache for the whole run, and the bundled examples built once.

Tests marked ``prebuild`` compile many projects with g++; when other tests
run too, a second pytest process runs the marked ones first, on the other
core, filling the shared content-keyed cache while this one works through
the tests before them. Each marked test waits for that process, then finds
its binaries cached (a failure there is found again, and reported, here)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from sira.hls import build
from sira.hls.simulate import unavailable
from tests.helpers import FAST_ZOO, ZOO_MODELS, zoo_path

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")

#: random inputs in the testbench of an example build, next to the corner inputs
EXAMPLE_SAMPLES = 30

#: the cache folder a prebuild process is told to fill (its parent's)
CACHE_ENV = "SIRA_TESTS_CSIM_CACHE"


def _csim_cache_folder(config) -> tuple[str, bool]:
    """(folder, whether it is this run's own temporary one): pytest's cache
    folder, or the parent's in a prebuild process, or a temporary one with
    ``-p no:cacheprovider``; never the user's cache."""
    if os.environ.get(CACHE_ENV):
        return os.environ[CACHE_ENV], False
    cache = getattr(config, "cache", None)
    if cache is not None:
        return str(cache.mkdir("sira-csim")), False
    return tempfile.mkdtemp(prefix="sira-csim-"), True


def pytest_collection_finish(session):
    """Start the prebuild process when marked tests share the run with others."""
    marked = [item.nodeid for item in session.items if item.get_closest_marker("prebuild")]
    folder, session.config.sira_csim_temporary = _csim_cache_folder(session.config)
    session.config.sira_csim_cache = folder
    session.config.sira_prebuild = None
    if not marked or len(marked) == len(session.items) or os.environ.get(CACHE_ENV) or unavailable():
        return
    env = dict(os.environ, **{CACHE_ENV: folder})
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *marked]
    session.config.sira_prebuild = subprocess.Popen(cmd, env=env, cwd=str(session.config.rootpath), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A marked test waits for the prebuild before its fixtures compile."""
    prebuild = item.config.sira_prebuild
    if prebuild is not None and item.get_closest_marker("prebuild"):
        prebuild.wait()


def pytest_sessionfinish(session):
    """A run stopped early (``-x``, Ctrl-C) leaves no prebuild running and
    no temporary cache behind."""
    prebuild = getattr(session.config, "sira_prebuild", None)
    if prebuild is not None and prebuild.poll() is None:
        prebuild.terminate()
        prebuild.wait()
    if getattr(session.config, "sira_csim_temporary", False):
        shutil.rmtree(session.config.sira_csim_cache, ignore_errors=True)


@pytest.fixture(params=[pytest.param(name, marks=() if name in FAST_ZOO else pytest.mark.slow) for name in sorted(ZOO_MODELS)])
def zoo_model(request):
    """(name, path, input spec) of each zoo model."""
    name = request.param
    return name, zoo_path(name), ZOO_MODELS[name][1]


@pytest.fixture(scope="session", autouse=True)
def csim_cache(request) -> str:
    """Where every test's compiled testbenches go. sira keys a binary by the
    content of the project's sources, the compiler and its flags, so tests
    that simulate the same project share one g++ run, in this run and (in
    pytest's cache folder) the next ones."""
    folder = request.config.sira_csim_cache
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

"""Every benchmark script imports (``make bench`` is not run by the tests,
so a renamed module would otherwise break it unnoticed) and has a main."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
SCRIPTS = sorted(f[:-3] for f in os.listdir(BENCH) if f.endswith(".py") and f != "models.py")


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_imports(name, monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"bench/{name}.py has no main()"

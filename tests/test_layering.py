"""The import structure: sira's modules form layers, and every import -
at module level or inside a function - goes from a higher layer to a lower
one or stays within a layer without a cycle. ARCHITECTURE.md describes the
layers; this test is their definition.

Also: ``import sira`` and the ``sira`` command's argument parsing import
none of the heavy dependencies (the package root is a lazy facade), which
is what keeps ``sira --help`` instant.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import networkx as nx
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sira",)

#: lowest first; a module may import its own layer or lower ones
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("sira.errors", "sira.version", "sira.lazy", "sira.budget", "sira.numerics", "sira.devices", "sira.requant")),
    ("value type", ("sira.range",)),
    ("op traits", ("sira.ops", "sira.semantics")),
    ("graph", ("sira.modelfile", "sira.model", "sira.inputspec")),
    ("rules", ("sira.rules", "sira.rules.*")),
    ("analysis", ("sira.analysis", "sira.report")),
    ("verification", ("sira.exec_kernels", "sira.execute", "sira.reference", "sira.verification")),
    ("transforms", ("sira.transforms", "sira.transforms.aggregate", "sira.transforms.joins", "sira.transforms.lower", "sira.transforms.pipeline",
                   "sira.transforms.thresholds", "sira.transforms.thresholds.*", "sira.transforms.widths", "sira.transforms.finn_form")),
    ("hardware", ("sira.hw", "sira.hw_base", "sira.hw_window", "sira.accumulation", "sira.formulas", "sira.memory", "sira.multipliers", "sira.cost",
                  "sira.cost_result", "sira.cost_mac", "sira.cost_stream", "sira.folding", "sira.lint", "sira.transforms.to_hw",
                  "sira.finn_hw")),
    ("backend", ("sira.layer_costs", "sira.baseline", "sira.implementation", "sira.estimate", "sira.estimate_table", "sira.hls", "sira.hls.*",
                 "sira.htmlreport", "sira.htmlreport.*")),
    ("application", ("sira", "sira.steps", "sira.cli", "sira.cliutil", "sira.explain", "sira.explain.*", "sira.diff")),
]  # fmt: skip


def _modules() -> dict[str, str]:
    """Module name -> file, for every module of sira's packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[name.removesuffix(".__init__")] = path
    return found


def _layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if module == pattern or (pattern.endswith(".*") and module.startswith(pattern[:-1])):
                return index
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS in {__file__} and to ARCHITECTURE.md")


def _imports(module: str, path: str, modules: dict[str, str]) -> set[str]:
    """The sira modules that ``module`` imports anywhere in its file
    (``from pkg import name`` counts as importing ``pkg.name`` when that is
    a module, else ``pkg``)."""
    is_package = path.endswith("__init__.py")
    targets: set[str] = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - (0 if is_package else 1)]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    g.add_nodes_from(modules)
    for module, path in modules.items():
        g.add_edges_from((module, target) for target in _imports(module, path, modules))
    return g


def test_every_module_has_a_layer(graph):
    for module in graph:
        _layer_of(module)


def test_imports_go_down(graph):
    upward = [f"{a} ({LAYERS[_layer_of(a)][0]}) imports {b} ({LAYERS[_layer_of(b)][0]})"
              for a, b in graph.edges if _layer_of(b) > _layer_of(a)]  # fmt: skip
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def test_no_import_cycles(graph):
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_nothing_imports_the_package_root(graph):
    assert not list(graph.predecessors("sira")), "sira's own modules import the facade; import the owning module"


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip
    return {m.split(".")[0] for m in out.stdout.split()}


HEAVY = {"numpy", "onnx", "onnxruntime", "qonnx", "networkx", "sympy", "jinja2"}


def test_import_sira_is_lazy():
    assert not HEAVY & _loaded_after("import sira")


def test_cli_help_is_lazy():
    loaded = _loaded_after("from sira.cli import build_parser\nbuild_parser()")
    assert not HEAVY & loaded, f"the argument parser imports {sorted(HEAVY & loaded)}"


def test_facade_names_resolve():
    import sira

    for name in sira.__all__:
        assert getattr(sira, name) is not None
    assert callable(sira.verify) and callable(sira.build) and callable(sira.optimize) and callable(sira.csim)
    assert sira.estimate.estimate is not None

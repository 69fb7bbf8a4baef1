"""Lazy package facades (PEP 562): a package names what it exports and the
module that owns each name; the owner is imported on first use, so that
importing the package (``import sira``, registering a subcommand) costs
nothing."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Callable


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict, submodules: frozenset = frozenset()) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: a name of ``exports`` is
    read from its owning module (and kept in ``namespace``, the package's
    globals, so the lookup happens once); a name of ``submodules`` is the
    submodule ``package.name``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            namespace[name] = value
            return value
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module '{package}' has no attribute {name!r}")

    return __getattr__

"""The manifest of a sira build folder: the file that marks a folder as
sira's own.

``sira build`` writes ``manifest.json`` with ``"generator": "sira"``; the
commands that read a build folder (csim, report, diff) and the build that
refuses to overwrite a foreign folder recognize one by it. It lives apart
from the HLS writer so that readers of a folder need not import the writer.
"""

from __future__ import annotations

import json
import os

#: the manifest's file name inside a build folder
MANIFEST = "manifest.json"
#: the ``generator`` field that marks the manifest as sira's
GENERATOR = "sira"


def is_project(path: str) -> bool:
    """Whether ``path`` holds a manifest written by ``sira build``."""
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


__all__ = ["MANIFEST", "GENERATOR", "is_project"]

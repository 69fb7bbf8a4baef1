"""The JSON documents of a build folder, as the report reads them."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional

from ..errors import SiraError
from ..report import MANIFEST


class ProjectFiles:
    """The JSON documents of a project folder; optional ones may be None,
    and ``problems`` lists the files that exist but could not be read."""

    def __init__(self, root: str):
        self.root = root
        self.problems: list[str] = []
        manifest = self._load(MANIFEST)
        if manifest is None:
            raise SiraError(f"the manifest.json of '{root}' could not be read; rebuild the project with: sira build MODEL -o DIR")
        self.manifest: dict = manifest
        self.estimate = self._load(os.path.join("report", "estimate.json"))
        self.analysis = self._load(os.path.join("report", "analysis.json"))
        self.optimize = self._load(os.path.join("report", "optimize.json"))
        self.csim = self._load(os.path.join("report", "csim.json"))

    def _load(self, rel: str) -> Optional[dict]:
        path = os.path.join(self.root, rel)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            self.problems.append(f"{rel.replace(os.sep, '/')} could not be read ({e}); it is shown as not available")
            return None
        if not isinstance(doc, dict):
            self.problems.append(f"{rel.replace(os.sep, '/')} is not a JSON object; it is shown as not available")
            return None
        return doc

    def changed_files(self) -> dict[str, str]:
        """Files of the manifest whose content changed since the build
        ("changed") or that are gone ("missing"), by relative path."""
        out = {}
        files = self.manifest.get("files")
        for rel, digest in (files.items() if isinstance(files, dict) else ()):
            path = os.path.join(self.root, *str(rel).split("/"))
            try:
                with open(path, "rb") as f:
                    actual = hashlib.sha256(f.read()).hexdigest()
            except OSError:
                out[rel] = "missing"
                continue
            if actual != digest:
                out[rel] = "changed"
        return out


__all__ = ["ProjectFiles"]

"""One self-contained HTML page describing a sira HLS project folder.

:func:`render_report` reads what ``sira build`` (and ``sira csim``) wrote in
a project folder and returns one HTML document; :func:`write_report` saves
it as ``report/report.html``. The page shows:

* the model, its sha256, sira's version, the part, the clock and the top
  function (``manifest.json``);
* the C-simulation verdict (``report/csim.json``: "csim: N/N outputs
  bit-exact", or the first mismatching layer), or "not run";
* per MAC layer the accumulator width waterfall: input and weight bits,
  then the accumulator by the datatype bound (A2Q), by FINN's method and by
  sira (``report/optimize.json``);
* the resources before and after SIRA (LUT, DSP, BRAM_18K: FINN baseline
  total against SIRA total, with the change in %), and the per-layer table of
  both flows, host layers and stream plumbing marked (``report/estimate.json``);
* the range table of the original model (``report/analysis.json``: range,
  integer range, scale, bias, datatype, exact/loose/fallback);
* float islands, warnings, notes and lint findings, and the float head and
  tail layers that run on the host CPU;
* the manifest: versions, options, ports, stages and file hashes (marking
  files changed since the build wrote them).

Python decides what the page shows (:mod:`.sections`, :mod:`.tables`) and
computes the charts' geometry (:mod:`.charts`); the Jinja templates of
``sira/templates/`` lay it out. The page needs no network: styles are
inline, the charts are inline SVG (they need no script), and the only
script (a few lines that make the tables sortable) is inline too; a
Content-Security-Policy forbids loading anything. Every name that comes
from the model is HTML-escaped (the templates autoescape). The output holds
no date or absolute path: the same folder always gives the same bytes.
Numbers are printed as they are in the JSON files (integers as integers,
other numbers in Python's shortest round-trip form), except the range
table, which rounds to six significant digits like ``sira analyze`` and
keeps the exact values in a tooltip.
"""

from __future__ import annotations

import functools
import html
import os
from typing import Any

import jinja2
import markupsafe

from ..errors import SiraError
from ..report import is_project, write_atomic
from ..version import __version__
from .charts import ChartIds
from .inputs import ProjectFiles
from .sections import csim_view, folder_name, header_view, page_title, resources_view, widths_view
from .tables import manifest_view, ranges_view, warnings_view

#: where the page is written, relative to the project folder
REPORT_PATH = os.path.join("report", "report.html")
#: the page's template, in ``sira/templates/``
TEMPLATE = "report.html.j2"
TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")

#: the page's sections: (id, title in the table of contents)
SECTIONS = (("csim", "C simulation"), ("widths", "Widths"), ("resources", "Resources"), ("ranges", "Ranges"),
            ("warnings", "Warnings & host"), ("manifest", "Manifest"))  # fmt: skip


def _escaped(value: Any) -> Any:
    """Every substituted value as :func:`html.escape` writes it (quotes
    included, so it is safe in attributes): the same entities whatever
    markupsafe prefers. Markup the templates built passes as it is."""
    if hasattr(value, "__html__"):
        return value
    return markupsafe.Markup(html.escape(str(value), quote=True))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        finalize=_escaped,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(project_dir: str) -> str:
    """The HTML page of the sira project in ``project_dir`` (see the module
    docstring). Raises :class:`SiraError` if the folder is not a sira project."""
    root = os.fspath(project_dir)
    if not os.path.isdir(root) or not is_project(root):
        raise SiraError(
            f"'{root}' is not a sira HLS project (no sira manifest.json); create one with: sira build MODEL -o DIR, "
            "then write its report from that folder"
        )
    files = ProjectFiles(root)
    changed = files.changed_files()
    ids = ChartIds()
    folder = folder_name(root)
    return environment().get_template(TEMPLATE).render(
        version=__version__,
        title=page_title(files, folder),
        folder=folder,
        sections=SECTIONS,
        header=header_view(files),
        csim=csim_view(files),
        widths=widths_view(files, ids),
        resources=resources_view(files, ids),
        ranges=ranges_view(files),
        warnings=warnings_view(files, changed),
        manifest=manifest_view(files, changed),
    )


def write_report(project_dir: str) -> str:
    """Write ``report/report.html`` in the project folder (atomically) and
    return its path."""
    text = render_report(project_dir)
    path = os.path.join(os.fspath(project_dir), REPORT_PATH)
    write_atomic(path, text)
    return path


__all__ = ["render_report", "write_report", "REPORT_PATH"]

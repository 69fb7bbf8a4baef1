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

The page needs no network: styles are inline, the charts are inline SVG
written here (they need no script), and the only script (a few lines that
make the tables sortable) is inline too; a Content-Security-Policy forbids
loading anything. Every name that comes from the model is HTML-escaped.
The output holds no date or absolute path: the same folder always gives the
same bytes. Numbers are printed as they are in the JSON files (integers as
integers, other numbers in Python's shortest round-trip form), except the
range table, which rounds to six significant digits like ``sira analyze``
and keeps the exact values in a tooltip.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
from typing import Any, Optional, Sequence

from .errors import SiraError
from .ops import Trait, ops_with
from .report import _hull_text, _param_text, fmt_num, write_atomic

#: where the page is written, relative to the project folder
REPORT_PATH = os.path.join("report", "report.html")

#: op types of MAC layers in the range analysis
MAC_OPS = ops_with(Trait.MAC)

#: resources of the before/after chart
CHART_RESOURCES = ("LUT", "DSP", "BRAM_18K")
#: resources of the tables
RESOURCES = ("LUT", "DSP", "BRAM_18K", "URAM")

DASH = "\u2013"


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------


def esc(value: Any) -> str:
    """HTML-escaped text of anything (quotes included: safe in attributes)."""
    return html.escape(str(value), quote=True)


def num(value: Any) -> str:
    """A JSON number as text that parses back to the same value: integers
    (and integral floats) as integers, other floats in shortest round-trip
    form; None as a dash, other values escaped."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return esc(value)


def pct(value: Any) -> str:
    """A change in % with its sign ("+100%", "-71.66%"), or a dash."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return DASH
    return ("+" if value > 0 else "") + num(value) + "%"


def _delta_class(value: Any) -> str:
    if not isinstance(value, (int, float)) or value == 0:
        return "same"
    return "good" if value < 0 else "bad"


def _attrs(**kw: Any) -> str:
    """` name="value"` pairs (escaped); a trailing underscore is dropped and
    other underscores become dashes (``data_key`` -> ``data-key``)."""
    out = []
    for k, v in kw.items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("_", "-")
        out.append(f' {name}="{esc(v)}"' if v is not True else f" {name}")
    return "".join(out)


def _badge(text: str, kind: str, title: Optional[str] = None) -> str:
    return f'<span class="badge {kind}"{_attrs(title=title)}>{esc(text)}</span>'


def _shape(shape: Any) -> str:
    if not isinstance(shape, list):
        return DASH
    return "x".join(str(d) for d in shape) or "scalar"


def _short_json(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return num(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return esc(value)
    return esc(json.dumps(value, sort_keys=True))


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------


class _Inputs:
    """The JSON documents of a project folder; optional ones may be None,
    and ``problems`` lists the files that exist but could not be read."""

    def __init__(self, root: str):
        self.root = root
        self.problems: list[str] = []
        manifest = self._load("manifest.json")
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


def _not_available(what: str, how: str) -> str:
    return f'<p class="na">{_badge("not available", "na")} {esc(what)}; {how}</p>'


# --------------------------------------------------------------------------
# SVG charts
# --------------------------------------------------------------------------


class _Ids:
    """Deterministic unique ids for titles and descriptions."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"


def _svg_open(ids: _Ids, chart: str, width: int, height: int, title: str, desc: str, **attrs: Any) -> str:
    t, d = ids("chart-title"), ids("chart-desc")
    return (
        f'<svg class="chart" data-chart="{esc(chart)}"{_attrs(**attrs)} role="img" '
        f'aria-labelledby="{t} {d}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<title id="{t}">{esc(title)}</title><desc id="{d}">{esc(desc)}</desc>'
    )


def _bits(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


#: rows of the width waterfall: (label, dtype key, bits key, css class, JSON key for the value label)
_WIDTH_ROWS = (
    ("input", "input_dtype", "N", "in", "N"),
    ("weights", "weight_dtype", "M", "w", "M"),
    ("datatype bound (A2Q)", "a2q_dtype", "a2q_width", "a2q", "a2q_width"),
    ("FINN's method", "finn_dtype", "finn_width", "finn", "finn_width"),
    ("sira (proven range)", "sira_dtype", "sira_width", "sira", "sira_width"),
)


def widths_svg(ids: _Ids, layer: dict, max_bits: int) -> str:
    """Horizontal bars: input bits, weight bits, then the accumulator by the
    datatype bound, FINN and sira; the bits each step saves are drawn as a
    dashed ghost bar with its count."""
    name = str(layer.get("layer", "?"))
    label_w, plot_w, row_h, bar_h, top = 200, 200, 26, 17, 6
    width, height = label_w + plot_w + 92, top + row_h * len(_WIDTH_ROWS) + 4
    scale = plot_w / max(max_bits, 1)
    desc = "; ".join(f"{label}: {_bits(layer.get(key))} bits" for label, _, key, _, _ in _WIDTH_ROWS if _bits(layer.get(key)) is not None)
    out = [_svg_open(ids, "widths", width, height, f"Bit widths of {name}", desc, data_layer=name)]
    prev_acc: Optional[int] = None
    for i, (label, dtype_key, key, cls, json_key) in enumerate(_WIDTH_ROWS):
        y = top + i * row_h
        bits = _bits(layer.get(key))
        dtype = layer.get(dtype_key)
        cy = y + bar_h / 2 + 4.5
        out.append(f'<text class="lbl" x="0" y="{cy:.1f}">{esc(label)}</text>')
        if dtype:
            out.append(f'<text class="dt" x="{label_w - 8}" y="{cy:.1f}" text-anchor="end">{esc(dtype)}</text>')
        if bits is None:
            out.append(f'<text class="val na" x="{label_w + 4}" y="{cy:.1f}">n/a</text>')
            continue
        bw = bits * scale
        end = bw
        if cls in ("finn", "sira") and prev_acc is not None and prev_acc > bits:
            gw = (prev_acc - bits) * scale
            out.append(f'<rect class="ghost" x="{label_w + bw:.1f}" y="{y}" width="{gw:.1f}" height="{bar_h}" rx="2"/>')
            end = bw + gw
        out.append(f'<rect class="bar {cls}" x="{label_w}" y="{y}" width="{bw:.1f}" height="{bar_h}" rx="2"'
                   f'{_attrs(data_key=json_key, data_value=bits)}/>')  # fmt: skip
        out.append(f'<text class="val" x="{label_w + end + 6:.1f}" y="{cy:.1f}"{_attrs(data_key=json_key)}>{bits}</text>')
        if cls in ("finn", "sira") and prev_acc is not None and prev_acc != bits:
            sign = "\u2212" if prev_acc > bits else "+"
            offset = 6 + 7.5 * len(str(bits)) + 6
            out.append(f'<text class="saved" x="{label_w + end + offset:.1f}" y="{cy:.1f}">{sign}{abs(prev_acc - bits)}</text>')
        if cls in ("a2q", "finn", "sira"):
            prev_acc = bits
    out.append("</svg>")
    return "".join(out)


def resources_svg(ids: _Ids, base_total: dict, sira_total: dict, delta: dict) -> str:
    """Grouped bars per resource (each on its own scale): FINN baseline and
    SIRA totals with their values, and the change in %."""
    panel_w, height, bar_w, plot_top, plot_bottom = 210, 262, 58, 74, 222
    width = panel_w * len(CHART_RESOURCES)
    parts = []
    for key in CHART_RESOURCES:
        parts.append(f"{key}: baseline {num(base_total.get(key))}, SIRA {num(sira_total.get(key))} ({pct(delta.get(key))})")
    out = [_svg_open(ids, "resources", width, height, "Resources before and after SIRA (design totals)", "; ".join(parts))]
    for p, key in enumerate(CHART_RESOURCES):
        x0 = p * panel_w
        cx = x0 + panel_w / 2
        b, s = base_total.get(key), sira_total.get(key)
        values = [v for v in (b, s) if isinstance(v, (int, float))]
        top_v = max(values + [0])
        d = delta.get(key)
        out.append(f'<g class="panel" data-resource="{esc(key)}">')
        if p:
            out.append(f'<line class="sep" x1="{x0}" y1="8" x2="{x0}" y2="{height - 8}"/>')
        out.append(f'<text class="ptitle" x="{cx:.1f}" y="24" text-anchor="middle">{esc(key)}</text>')
        out.append(f'<text class="delta {_delta_class(d)}" x="{cx:.1f}" y="46" text-anchor="middle" data-key="delta">{pct(d)}</text>')
        out.append(f'<line class="axis" x1="{x0 + 24}" y1="{plot_bottom}" x2="{x0 + panel_w - 24}" y2="{plot_bottom}"/>')
        for j, (flow, cls, label, v) in enumerate((("baseline", "base", "FINN baseline", b), ("sira", "sira", "SIRA", s))):
            bx = cx - bar_w - 6 if j == 0 else cx + 6
            if isinstance(v, (int, float)) and top_v > 0:
                bh = (plot_bottom - plot_top) * v / top_v
            else:
                bh = 0.0
            out.append(f'<rect class="bar {cls}" x="{bx:.1f}" y="{plot_bottom - bh:.1f}" width="{bar_w}" height="{bh:.1f}" rx="2"'
                       f'{_attrs(data_resource=key, data_flow=flow, data_value=v if v is not None else None)}/>')  # fmt: skip
            out.append(f'<text class="val" x="{bx + bar_w / 2:.1f}" y="{plot_bottom - bh - 6:.1f}" text-anchor="middle"'
                       f'{_attrs(data_resource=key, data_flow=flow)}>{num(v)}</text>')  # fmt: skip
            out.append(f'<text class="cat" x="{bx + bar_w / 2:.1f}" y="{plot_bottom + 18}" text-anchor="middle">{esc(label)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------


def _dl(items: Sequence[tuple[str, str]], cls: str = "facts") -> str:
    """A definition list, each term and its value in a ``div``; values are
    already HTML."""
    return f'<dl class="{cls}">' + "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in items) + "</dl>"


def _clock_text(clock: Any) -> str:
    if not isinstance(clock, (int, float)) or isinstance(clock, bool) or clock <= 0:
        return DASH
    return f'<span data-key="clock_ns">{num(clock)}</span> ns ({esc(fmt_num(1000.0 / clock, 4))} MHz)'


def section_header(inp: _Inputs) -> str:
    m = inp.manifest
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    sha = str(model.get("sha256") or "")
    est = inp.estimate or {}
    perf = est.get("performance") if isinstance(est.get("performance"), dict) else {}
    fps = perf.get("estimated_throughput_fps")
    items = [
        ("model", f'<code data-key="model">{esc(model.get("file", DASH))}</code>'),
        ("sha256", f'<code title="{esc(sha)}" data-key="sha256" data-value="{esc(sha)}">{esc(sha[:12]) or DASH}</code>' if sha else DASH),
        ("sira", f'<span data-key="sira_version">{esc(m.get("sira_version", DASH))}</span>'),
        ("part", f'<code data-key="part">{esc(m.get("part") or DASH)}</code>'),
        ("clock", _clock_text(m.get("clock_ns"))),
        ("top function", f'<code data-key="top">{esc(m.get("top") or DASH)}</code>'),
        ("stages", num(len(m["stages"])) if isinstance(m.get("stages"), list) else DASH),
        ("test vectors", num(m.get("samples"))),
    ]
    if fps is not None:
        items.append(("throughput (estimate)", f'<span data-key="estimated_throughput_fps">{num(fps)}</span> inferences/s'))
    title = model.get("file") or m.get("top") or "model"
    return (
        f'<header id="summary" class="top"><div class="wrap"><p class="kicker">sira HLS project report</p>'
        f"<h1>{esc(title)}</h1>{_dl(items, 'facts head')}</div></header>"
    )


def section_csim(inp: _Inputs, folder: str) -> str:
    c = inp.csim
    if c is None:
        body = (
            f'<div class="verdict none" id="csim-verdict" data-status="not-run"><div class="big" id="csim-summary">csim: not run</div>'
            f"<p>No <code>report/csim.json</code> yet. C-simulate the project with g++ and write this page again: "
            f"<code>sira csim {esc(folder)}</code>.</p></div>"
        )
    else:
        exact, samples = c.get("exact"), c.get("samples")
        passed = bool(c.get("passed"))
        status = "passed" if passed else "failed"
        first = c.get("first_mismatch_layer")
        details = [f"{num(samples)} test vectors through the whole dataflow, compared bit for bit with the original model"]
        if isinstance(c.get("seconds"), (int, float)):
            details.append(f"{num(c['seconds'])} s" + (" (cached binary)" if c.get("cached") else ""))
        mismatch = ""
        if not passed:
            mismatch = (
                f'<p class="mismatch">first mismatching layer: <code id="csim-first-mismatch">{esc(first)}</code></p>'
                if first
                else '<p class="mismatch">first mismatching layer: not identified</p>'
            )
        body = (
            f'<div class="verdict {"pass" if passed else "fail"}" id="csim-verdict" data-status="{status}"'
            f"{_attrs(data_exact=exact, data_samples=samples)}>"
            f'<div class="big" id="csim-summary">csim: {num(exact)}/{num(samples)} outputs bit-exact</div>'
            f"{_badge(status.upper(), 'pass' if passed else 'fail')}{mismatch}"
            f'<p class="muted">{"; ".join(details)}</p></div>'
        )
    return f'<section id="csim"><h2>C simulation</h2>{body}</section>'


def section_widths(inp: _Inputs, ids: _Ids) -> str:
    head = "<h2>Accumulator widths per MAC layer</h2>"
    if inp.optimize is None:
        return f'<section id="widths">{head}{_not_available("report/optimize.json is missing", "rebuild the project with sira build")}</section>'
    layers = [layer for layer in inp.optimize.get("layers") or [] if isinstance(layer, dict)]
    if not layers:
        return f'<section id="widths">{head}<p class="muted">The model has no MAC layers (MatMul, Gemm, Conv).</p></section>'
    max_bits = max([b for layer in layers for _, _, k, _, _ in _WIDTH_ROWS if (b := _bits(layer.get(k))) is not None] + [1])
    sums = {k: sum(_bits(layer.get(k)) or 0 for layer in layers) for k in ("a2q_width", "finn_width", "sira_width")}
    intro = (
        "<p>Input and weight bits of each MAC layer, then the accumulator width three ways: the <b>datatype bound</b> "
        "(A2Q: only K and the input and weight widths), <b>FINN's method</b> (the actual weights, inputs anywhere in "
        "their datatype) and <b>sira</b> (the accumulator range proven from the input ranges). Dashed segments are the "
        "bits each step removes. Summed over the layers: datatype bound "
        f'<b data-key="sum_a2q_width">{sums["a2q_width"]}</b>, FINN <b data-key="sum_finn_width">{sums["finn_width"]}</b>, '
        f'sira <b data-key="sum_sira_width">{sums["sira_width"]}</b> accumulator bits.</p>'
    )
    legend = (
        '<p class="legend">' + "".join(f'<span><i class="sw {cls}"></i>{esc(label)}</span>' for label, _, _, cls, _ in _WIDTH_ROWS)
        + '<span><i class="sw ghost"></i>bits removed</span></p>'
    )  # fmt: skip
    cards = []
    for layer in layers:
        name = str(layer.get("layer", "?"))
        facts = [f"{esc(layer.get('op', '?'))}", f"K = {num(layer.get('K'))}"]
        cw = layer.get("channel_widths")
        if isinstance(cw, list) and cw and layer.get("limiting_channel") is not None:
            facts.append(f"widest channel {num(layer.get('limiting_channel'))} of {len(cw)}")
        src = layer.get("input_dtype_source")
        extra = []
        if src:
            extra.append(f"input type from {esc(src)}")
        if isinstance(layer.get("sira_range"), list):
            extra.append(f"proven accumulator range {esc(_range_text(layer['sira_range']))}")
        if isinstance(layer.get("finn_range"), list):
            extra.append(f"FINN's {esc(_range_text(layer['finn_range']))}")
        cards.append(
            f'<figure class="card" data-layer="{esc(name)}"><figcaption><code class="lname">{esc(name)}</code> '
            f'<span class="muted">{" &middot; ".join(facts)}</span></figcaption>{widths_svg(ids, layer, max_bits)}'
            f'<p class="small muted">{"; ".join(extra)}</p></figure>'
        )
    rows = []
    for layer in layers:
        name = str(layer.get("layer", "?"))
        finn, sira_w = _bits(layer.get("finn_width")), _bits(layer.get("sira_width"))
        saved = finn - sira_w if finn is not None and sira_w is not None else None
        cells = [
            f'<td><code>{esc(name)}</code></td><td>{esc(layer.get("op", "?"))}</td>',
            f'<td class="n" data-key="K">{num(layer.get("K"))}</td>',
            f'<td>{esc(layer.get("input_dtype") or DASH)}</td><td class="n" data-key="N">{num(layer.get("N"))}</td>',
            f'<td>{esc(layer.get("weight_dtype") or DASH)}</td><td class="n" data-key="M">{num(layer.get("M"))}</td>',
            f'<td class="n" data-key="a2q_width">{num(layer.get("a2q_width"))}</td>',
            f'<td class="n" data-key="finn_width">{num(layer.get("finn_width"))}</td>',
            f'<td class="n strong" data-key="sira_width">{num(layer.get("sira_width"))}</td>',
            f'<td class="n">{num(saved)}</td>',
            f'<td>{esc(layer.get("output_dtype") or DASH)}</td>',
        ]
        rows.append(f'<tr data-layer="{esc(name)}">{"".join(cells)}</tr>')
    table = (
        '<div class="scroll"><table class="sortable" id="widths-table"><thead><tr><th>layer</th><th>op</th><th class="n">K</th>'
        '<th>input</th><th class="n">N</th><th>weights</th><th class="n">M</th><th class="n">A2Q bound</th><th class="n">FINN</th>'
        '<th class="n">sira</th><th class="n">saved vs FINN</th><th>output</th></tr></thead><tbody>'
        + "".join(rows) + "</tbody></table></div>"
    )  # fmt: skip
    return f'<section id="widths">{head}{intro}{legend}<div class="cards">{"".join(cards)}</div>{table}</section>'


def _range_text(pair: list) -> str:
    if len(pair) != 2:
        return str(pair)
    return f"[{num(pair[0])}, {num(pair[1])}]"


def _merged_order(first: Sequence[str], second: Sequence[str]) -> list[str]:
    """Names of ``first`` in order, with those only in ``second`` inserted
    after the name that precedes them in ``second``."""
    out = list(first)
    present = set(out)
    prev: Optional[str] = None
    for name in second:
        if name not in present:
            at = out.index(prev) + 1 if prev is not None else 0
            out.insert(at, name)
            present.add(name)
        prev = name
    return out


def _res_cells(d: Optional[dict], flow: str) -> str:
    cells = []
    for key in RESOURCES:
        if d is None:
            cells.append(f'<td class="n absent" data-flow="{flow}" data-key="{key}">{DASH}</td>')
            continue
        v = d.get(key)
        cls = "n unknown" if v == "unknown" else ("n zero" if v == 0 else "n")
        cells.append(f'<td class="{cls}" data-flow="{flow}" data-key="{key}">{num(v)}</td>')
    return "".join(cells)


def _layer_row(name: str, s: Optional[dict], b: Optional[dict]) -> str:
    d = s if s is not None else b or {}
    marks = []
    cls = []
    if d.get("host"):
        marks.append(_badge("host CPU", "host", "float step outside the integer dataflow: runs on the host CPU"))
        cls.append("host")
    if d.get("plumbing"):
        marks.append(_badge("plumbing", "plumb", "stream plumbing added by the dataflow; the same in both flows"))
        cls.append("plumbing")
    if d.get("free") and not d.get("host"):
        marks.append(_badge("free", "free", "no hardware of its own"))
    if s is None:
        marks.append(_badge("baseline only", "baseonly", "in the FINN baseline only: sira folds it into thresholds"))
        cls.append("baseline-only")
    elif b is None:
        marks.append(_badge("SIRA only", "siraonly"))
    notes = [n for n in dict.fromkeys([(s or {}).get("note"), (b or {}).get("note")]) if n]
    note_html = "".join(f'<div class="note">{esc(n)}</div>' for n in notes)
    acc_s, acc_b = (s or {}).get("acc_bits"), (b or {}).get("acc_bits")
    return (
        f'<tr data-layer="{esc(name)}"{_attrs(class_=" ".join(cls) or None)}><td data-sort="{esc(name)}"><code>{esc(name)}</code>'
        f'{"".join(marks)}{note_html}</td><td>{esc(d.get("op_type", "?"))}</td><td class="n">{num(d.get("PE"))}</td>'
        f'<td class="n">{num(d.get("SIMD"))}</td>{_res_cells(s, "sira")}{_res_cells(b, "baseline")}<td class="n">{num(d.get("cycles"))}</td>'
        f'<td class="n" data-flow="sira" data-key="acc_bits">{num(acc_s)}</td>'
        f'<td class="n" data-flow="baseline" data-key="acc_bits">{num(acc_b)}</td></tr>'
    )


def section_resources(inp: _Inputs, ids: _Ids) -> str:
    head = "<h2>Resources: FINN baseline and SIRA</h2>"
    est = inp.estimate
    if est is None or not isinstance(est.get("layers"), dict):
        return f'<section id="resources">{head}{_not_available("report/estimate.json is missing", "rebuild the project with sira build")}</section>'
    total = est.get("total") if isinstance(est.get("total"), dict) else {}
    baseline = est.get("baseline") if isinstance(est.get("baseline"), dict) else {}
    base_total = baseline.get("total") if isinstance(baseline.get("total"), dict) else {}
    base_layers = baseline.get("layers") if isinstance(baseline.get("layers"), dict) else {}
    delta = est.get("delta") if isinstance(est.get("delta"), dict) else {}
    intro = (
        f"<p>Estimate on <code>{esc(est.get('part', DASH))}</code> at {num(est.get('clock_ns'))} ns, {esc(est.get('mode', '?'))} "
        "cost model. The baseline is the same dataflow built the way FINN builds it today: FINN's accumulator widths, "
        "elementwise requantization tails instead of thresholds, float input thresholds.</p>"
    )
    chart = resources_svg(ids, base_total, total, delta)
    legend = '<p class="legend"><span><i class="sw base"></i>FINN baseline</span><span><i class="sw sira"></i>SIRA</span></p>'

    perf = est.get("performance") if isinstance(est.get("performance"), dict) else {}
    base_perf = baseline.get("performance") if isinstance(baseline.get("performance"), dict) else {}
    trows = []
    for key in RESOURCES:
        d = delta.get(key)
        trows.append(
            f'<tr data-resource="{key}"><th scope="row">{key}</th><td class="n" data-flow="baseline">{num(base_total.get(key))}</td>'
            f'<td class="n strong" data-flow="sira">{num(total.get(key))}</td>'
            f'<td class="n delta {_delta_class(d)}" data-key="delta">{pct(d)}</td></tr>'
        )
    d = delta.get("acc_bits")
    trows.append(
        f'<tr data-resource="acc_bits"><th scope="row">accumulator bits (mean of MAC layers)</th>'
        f'<td class="n" data-flow="baseline">{num(base_total.get("acc_bits"))}</td>'
        f'<td class="n strong" data-flow="sira">{num(total.get("acc_bits"))}</td>'
        f'<td class="n delta {_delta_class(d)}" data-key="delta">{pct(d)}</td></tr>'
    )
    trows.append(
        f'<tr data-resource="max_cycles"><th scope="row">bottleneck cycles</th><td class="n" data-flow="baseline">{num(base_perf.get("max_cycles"))}</td>'
        f'<td class="n strong" data-flow="sira">{num(perf.get("max_cycles"))}</td><td class="n">{DASH}</td></tr>'
    )
    trows.append(
        f'<tr data-resource="fps"><th scope="row">throughput (inferences/s)</th>'
        f'<td class="n" data-flow="baseline">{num(base_perf.get("estimated_throughput_fps"))}</td>'
        f'<td class="n strong" data-flow="sira">{num(perf.get("estimated_throughput_fps"))}</td><td class="n">{DASH}</td></tr>'
    )
    totals = (
        '<table class="totals" id="resource-totals"><thead><tr><th>design total</th><th class="n">FINN baseline</th>'
        '<th class="n">SIRA</th><th class="n">change</th></tr></thead><tbody>' + "".join(trows) + "</tbody></table>"
    )
    notes = []
    for label, t in (("SIRA", total), ("baseline", base_total)):
        unk = t.get("unknown_layers")
        if isinstance(unk, dict) and any(unk.values()):
            parts = ", ".join(f"{esc(k)} in {num(v)} layer(s)" for k, v in unk.items() if v)
            notes.append(f"<p class=\"warn\">{label}: costs unknown to the model, left out of the total: {parts}</p>")
    if perf.get("max_cycles_node_name"):
        notes.append(f'<p class="muted">SIRA bottleneck: <code>{esc(perf["max_cycles_node_name"])}</code> at {num(perf.get("max_cycles"))} cycles.</p>')

    sira_layers = est["layers"]
    compute = [n for n in _merged_order(list(sira_layers), list(base_layers)) if not (sira_layers.get(n) or base_layers.get(n) or {}).get("plumbing")]
    plumbing = [n for n in _merged_order(list(sira_layers), list(base_layers)) if (sira_layers.get(n) or base_layers.get(n) or {}).get("plumbing")]
    body = "".join(_layer_row(n, sira_layers.get(n), base_layers.get(n)) for n in compute)
    plumb = ""
    if plumbing:
        plumb = (
            f'<tbody class="plumbing-group"><tr class="sub"><th colspan="15">stream plumbing: {len(plumbing)} stage(s) '
            "between the layers (FIFOs, stream copies, width converters), the same in both flows</th></tr>"
            + "".join(_layer_row(n, sira_layers.get(n), base_layers.get(n)) for n in plumbing) + "</tbody>"
        )  # fmt: skip
    foot = (
        '<tfoot><tr class="total"><th>total</th><td></td><td></td><td></td>'
        + "".join(f'<td class="n" data-flow="sira" data-key="{k}">{num(total.get(k))}</td>' for k in RESOURCES)
        + "".join(f'<td class="n" data-flow="baseline" data-key="{k}">{num(base_total.get(k))}</td>' for k in RESOURCES)
        + f'<td class="n">{num(total.get("cycles"))}</td><td class="n">{num(total.get("acc_bits"))}</td>'
        + f'<td class="n">{num(base_total.get("acc_bits"))}</td></tr></tfoot>'
    )  # fmt: skip
    res_heads = "".join(f'<th class="n">{"BRAM18" if k == "BRAM_18K" else k}</th>' for k in RESOURCES)
    table = (
        '<div class="scroll"><table class="sortable layers" id="layer-table"><thead>'
        '<tr class="group"><th colspan="4"></th><th colspan="4" class="g sira">SIRA</th><th colspan="4" class="g base">FINN baseline</th>'
        '<th></th><th colspan="2" class="g">acc bits</th></tr>'
        f'<tr><th>layer</th><th>kind</th><th class="n">PE</th><th class="n">SIMD</th>{res_heads}{res_heads}<th class="n">cycles</th>'
        '<th class="n">SIRA</th><th class="n">base</th></tr></thead>'
        f"<tbody>{body}</tbody>{plumb}{foot}</table></div>"
    )
    return (
        f'<section id="resources">{head}{intro}<div class="resgrid"><div>{legend}{chart}</div><div>{totals}{"".join(notes)}</div></div>'
        f"<h3>Per layer</h3>{table}</section>"
    )


def _mark(t: dict) -> tuple[str, str]:
    if t.get("fallback"):
        return "fallback", "the rule fell back to a safe but coarser range"
    if t.get("exact"):
        return "exact", "the bounds are attained"
    return "loose", "a sound bound that may not be attained"


def _tensor_row(name: str, t: dict) -> str:
    gran = t.get("granularity")
    per = "" if gran in ("tensor", None) else ("per-ch" if gran == "channel" else "per-elem")
    scaled = bool(t.get("scaled_int"))
    mark, why = _mark(t)
    exact_title = json.dumps({"min": t.get("min"), "max": t.get("max")})
    notes = "".join(f'<div class="note">{esc(n)}</div>' for n in (t.get("notes") or []))
    try:
        rng = _hull_text(t.get("min"), t.get("max"))
        irng = _hull_text(t.get("int_min"), t.get("int_max")) if scaled else DASH
        scale = _param_text(t.get("scale")) if scaled else DASH
        bias = _param_text(t.get("bias")) if scaled else DASH
    except (TypeError, ValueError, KeyError):
        rng, irng, scale, bias = "?", "?", "?", "?"
    dtype = str(t.get("datatype", "?"))
    gran_html = f' <span class="gran">{per}</span>' if per else ""
    return (
        f'<tr data-tensor="{esc(name)}" class="m-{mark}"><td><code>{esc(name)}</code>{notes}</td><td>{esc(t.get("op", "?"))}</td>'
        f'<td class="mono">{esc(_shape(t.get("shape")))}</td><td class="mono nw" title="{esc(exact_title)}">{esc(rng)}'
        f'{gran_html}</td><td class="mono nw">{esc(irng)}</td><td class="mono">{esc(scale)}</td><td class="mono">{esc(bias)}</td>'
        f'<td><span class="dtype{" float" if dtype == "FLOAT32" else ""}">{esc(dtype)}</span></td>'
        f'<td>{_badge(mark, "mark-" + mark, why)}</td></tr>'
    )


_RANGE_HEAD = (
    '<thead><tr><th>tensor</th><th>op</th><th>shape</th><th>range</th><th>int range</th><th>scale</th><th>bias</th>'
    "<th>datatype</th><th>mark</th></tr></thead>"
)


def section_ranges(inp: _Inputs) -> str:
    head = "<h2>Ranges of the original model</h2>"
    a = inp.analysis
    if a is None or not isinstance(a.get("tensors"), dict):
        return f'<section id="ranges">{head}{_not_available("report/analysis.json is missing", "rebuild the project with sira build, or run sira analyze")}</section>'
    tensors = {k: v for k, v in a["tensors"].items() if isinstance(v, dict)}
    live = [(n, t) for n, t in tensors.items() if not t.get("constant")]
    const = [(n, t) for n, t in tensors.items() if t.get("constant")]
    counts = {m: sum(1 for _, t in live if _mark(t)[0] == m) for m in ("exact", "loose", "fallback")}
    intro = (
        "<p>Every tensor as <code>sira analyze</code> sees it: the real range, the integer range, scale and bias of "
        "<i>x = scale &middot; q + bias</i>, and the narrowest QONNX datatype of <i>q</i>. Hover a range for its exact "
        "bounds; per-channel values are summarized by their hull and count.</p>"
        f'<p class="legend"><span>{_badge("exact", "mark-exact")} the bounds are attained: {counts["exact"]}</span>'
        f'<span>{_badge("loose", "mark-loose")} sound, maybe not attained: {counts["loose"]}</span>'
        f'<span>{_badge("fallback", "mark-fallback")} a coarser fallback rule: {counts["fallback"]}</span></p>'
    )
    table = (
        '<div class="scroll"><table class="sortable ranges" id="range-table">' + _RANGE_HEAD + "<tbody>"
        + "".join(_tensor_row(n, t) for n, t in live) + "</tbody></table></div>"
    )  # fmt: skip
    consts = ""
    if const:
        consts = (
            f"<details><summary>{len(const)} constant tensors (weights and parameters)</summary>"
            '<div class="scroll"><table class="sortable ranges" id="constant-table">' + _RANGE_HEAD + "<tbody>"
            + "".join(_tensor_row(n, t) for n, t in const) + "</tbody></table></div></details>"
        )  # fmt: skip
    return f'<section id="ranges">{head}{intro}{table}{consts}</section>'


def _float_islands(inp: _Inputs) -> Optional[list[dict]]:
    """MAC layers left on floats: ``float_islands`` of optimize.json when it
    has them, else the MAC nodes of the analysis that the width report does
    not list (sira could not put them on integers). None: cannot tell."""
    opt, a = inp.optimize, inp.analysis
    if opt is not None and isinstance(opt.get("float_islands"), list):
        return [i for i in opt["float_islands"] if isinstance(i, dict)]
    if opt is None or a is None or not isinstance(a.get("tensors"), dict):
        return None
    done = {layer.get("output") for layer in opt.get("layers") or [] if isinstance(layer, dict)}
    return [
        {"node": "", "tensor": n, "reason": "MAC output with no integer accumulator in the width report"}
        for n, t in a["tensors"].items()
        if isinstance(t, dict) and t.get("op") in MAC_OPS and not t.get("constant") and n not in done
    ]


def _host_rows(side: str, layers: list) -> list[str]:
    rows = []
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        param = layer.get("param")
        ptext = DASH
        if param is not None:
            flat = _flatten(param)
            nums = [v for v in flat if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) == 1:
                ptext = num(nums[0])
            elif nums:
                ptext = f"{len(nums)} values, {fmt_num(min(nums), 4)}..{fmt_num(max(nums), 4)}"
        rows.append(
            f'<tr data-layer="{esc(layer.get("name", "?"))}"><td>{side}</td><td><code>{esc(layer.get("name", "?"))}</code></td>'
            f'<td>{esc(layer.get("kind", "?"))}</td><td>{esc(layer.get("op", DASH))}</td>'
            f'<td>{esc(layer.get("in_type", "?"))} &rarr; {esc(layer.get("out_type", "?"))}</td>'
            f'<td class="mono">{esc(", ".join(map(str, layer.get("inputs") or [])))}</td>'
            f'<td class="mono">{esc(", ".join(map(str, layer.get("outputs") or [])))}</td><td class="mono">{esc(ptext)}</td></tr>'
        )
    return rows


def _flatten(v: Any) -> list:
    if isinstance(v, list):
        return [x for item in v for x in _flatten(item)]
    return [v]


def section_warnings(inp: _Inputs, changed: dict[str, str]) -> str:
    out = ['<section id="warnings"><h2>Float islands, warnings and host layers</h2>']
    islands = _float_islands(inp)
    out.append('<h3 id="float-islands">Float islands</h3>')
    if islands is None:
        out.append(_not_available("report/optimize.json or report/analysis.json is missing", "float islands cannot be told"))
    elif not islands:
        out.append(f'<p>{_badge("none", "pass")} every MAC layer computes on integers.</p>')
    else:
        out.append("<ul class=\"items\">" + "".join(
            f'<li>{_badge("float island", "fail")} <code>{esc(i.get("node") or i.get("tensor", "?"))}</code>'
            f'{" (" + "<code>" + esc(i["tensor"]) + "</code>)" if i.get("node") and i.get("tensor") else ""}: {esc(i.get("reason", ""))}</li>'
            for i in islands) + "</ul>")  # fmt: skip

    items = []
    for p in inp.problems:
        items.append(("file", "fail", p))
    for rel, what in changed.items():
        items.append(("file", "warnbadge", f"{rel} {what} since sira build wrote it"))
    a = inp.analysis or {}
    for w in a.get("warnings") or []:
        if isinstance(w, dict):
            where = f"{w.get('node', '?')} ({w.get('op_type', '?')})"
            items.append((f"analysis: {w.get('kind', 'warning')}", "warnbadge", f"{where}: {w.get('message', '')}"))
    if isinstance(a.get("tensors"), dict):
        for n, t in a["tensors"].items():
            if isinstance(t, dict) and t.get("fallback"):
                items.append(("analysis: fallback", "fail", f"{n}: " + ("; ".join(map(str, t.get("notes") or [])) or "range from a fallback rule")))
    est = inp.estimate or {}
    for note in est.get("notes") or []:
        items.append(("estimate", "info", str(note)))
    for note in est.get("lint") or []:
        text = note if isinstance(note, str) else json.dumps(note, sort_keys=True)
        items.append(("lint", "fail" if text.startswith("error") else "warnbadge", text))
    out.append('<h3 id="notes">Warnings and notes</h3>')
    if not items:
        out.append(f'<p>{_badge("none", "pass")} no warnings from the analysis, the estimate or the lint.</p>')
    else:
        out.append('<ul class="items">' + "".join(f"<li>{_badge(src, cls)} {esc(text)}</li>" for src, cls, text in items) + "</ul>")

    floats = [(n, t) for n, t in (a.get("tensors") or {}).items()
              if isinstance(t, dict) and not t.get("constant") and not t.get("scaled_int") and t.get("op") != "input"]  # fmt: skip
    if floats:
        out.append(
            f"<details><summary>{len(floats)} tensor(s) of the original model without an integer form "
            "(sira's optimization removes them where a quantizer follows)</summary><ul class=\"items\">"
            + "".join(f'<li><code>{esc(n)}</code> ({esc(t.get("op", "?"))}): {esc("; ".join(map(str, t.get("notes") or [])) or "float")}</li>'
                      for n, t in floats)
            + "</ul></details>"
        )  # fmt: skip

    host = inp.manifest.get("host") if isinstance(inp.manifest.get("host"), dict) else {}
    head, tail = host.get("head") or [], host.get("tail") or []
    out.append('<h3 id="host">Host layers</h3>')
    if not head and not tail:
        out.append("<p>none: the whole model runs in the FPGA dataflow.</p>")
    else:
        out.append(
            "<p>Float steps before (head) and after (tail) the integer dataflow; they run on the host CPU, as in a FINN "
            "partition, and cost no FPGA resources.</p>"
            '<div class="scroll"><table id="host-table"><thead><tr><th>side</th><th>layer</th><th>kind</th><th>op</th><th>types</th>'
            "<th>inputs</th><th>outputs</th><th>parameter</th></tr></thead><tbody>"
            + "".join(_host_rows("head", head) + _host_rows("tail", tail)) + "</tbody></table></div>"
        )  # fmt: skip
    out.append("</section>")
    return "".join(out)


def section_manifest(inp: _Inputs, changed: dict[str, str]) -> str:
    m = inp.manifest
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    facts = [
        ("generator", esc(m.get("generator", DASH))),
        ("sira version", esc(m.get("sira_version", DASH))),
        ("model file", f"<code>{esc(model.get('file', DASH))}</code>"),
        ("model sha256", f'<code class="wrapall">{esc(model.get("sha256", DASH))}</code>'),
        ("part", f"<code>{esc(m.get('part') or DASH)}</code>"),
        ("clock", f"{num(m.get('clock_ns'))} ns"),
        ("top function", f"<code>{esc(m.get('top') or DASH)}</code>"),
        ("test vectors", num(m.get("samples"))),
    ]
    out = ['<section id="manifest"><h2>Manifest</h2><div class="mgrid"><div><h3>Project</h3>', _dl(facts, "facts kv")]
    versions = m.get("versions") if isinstance(m.get("versions"), dict) else {}
    out.append('<h3>Versions</h3><table class="kv" id="versions-table"><tbody>')
    out += [f"<tr><th scope=\"row\">{esc(k)}</th><td class=\"mono\">{esc(v)}</td></tr>" for k, v in versions.items()]
    out.append("</tbody></table></div><div>")
    options = m.get("options") if isinstance(m.get("options"), dict) else {}
    out.append('<h3>Options</h3><table class="kv" id="options-table"><tbody>')
    out += [f"<tr><th scope=\"row\">{esc(k)}</th><td class=\"mono\">{_short_json(v)}</td></tr>" for k, v in options.items()]
    out.append("</tbody></table></div></div>")

    ports = m.get("ports") if isinstance(m.get("ports"), dict) else {}
    prow = []
    for side in ("inputs", "outputs"):
        for p in ports.get(side) or []:
            if isinstance(p, dict):
                prow.append(
                    f'<tr data-port="{esc(p.get("port", "?"))}"><td>{side[:-1]}</td><td><code>{esc(p.get("port", "?"))}</code></td>'
                    f'<td><code>{esc(p.get("tensor", "?"))}</code></td><td>{esc(p.get("type", "?"))}</td><td class="n">{num(p.get("bits"))}</td>'
                    f'<td class="n">{num(p.get("lanes"))}</td><td class="n">{num(p.get("word_bits"))}</td>'
                    f'<td class="mono">{esc(_shape(p.get("shape")))}</td><td class="n">{num(p.get("elements"))}</td></tr>'
                )
    out.append(
        '<h3>Ports</h3><div class="scroll"><table id="ports-table"><thead><tr><th>direction</th><th>port</th><th>tensor</th><th>type</th>'
        '<th class="n">bits</th><th class="n">lanes</th><th class="n">word bits</th><th>shape</th><th class="n">elements</th></tr></thead>'
        f"<tbody>{''.join(prow)}</tbody></table></div>"
    )
    stages = [s for s in m.get("stages") or [] if isinstance(s, dict)]
    if stages:
        out.append(
            f"<details><summary>{len(stages)} dataflow stage(s)</summary><div class=\"scroll\"><table id=\"stages-table\"><thead><tr>"
            "<th>stage</th><th>kind</th><th>layer</th><th>inputs</th><th>outputs</th></tr></thead><tbody>"
            + "".join(
                f'<tr><td><code>{esc(s.get("id", "?"))}</code></td><td>{esc(s.get("kind", "?"))}</td><td><code>{esc(s.get("layer", "?"))}</code></td>'
                f'<td class="mono">{esc(", ".join(map(str, s.get("inputs") or [])))}</td>'
                f'<td class="mono">{esc(", ".join(map(str, s.get("outputs") or [])))}</td></tr>'
                for s in stages)
            + "</tbody></table></div></details>"
        )  # fmt: skip
    files = m.get("files") if isinstance(m.get("files"), dict) else {}
    if files:
        n_changed = len(changed)
        summary = f"{len(files)} generated file(s) with their sha256" + (f", {n_changed} changed since the build" if n_changed else "")
        out.append(
            f'<details{" open" if n_changed else ""}><summary>{esc(summary)}</summary><div class="scroll"><table id="files-table"><tbody>'
            + "".join(
                f'<tr><td><code>{esc(rel)}</code></td><td class="mono wrapall">{esc(digest)}</td>'
                f'<td>{_badge(changed[rel], "warnbadge") if rel in changed else ""}</td></tr>'
                for rel, digest in files.items())
            + "</tbody></table></div></details>"
        )  # fmt: skip
    out.append("</section>")
    return "".join(out)


# --------------------------------------------------------------------------
# page
# --------------------------------------------------------------------------

_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f4f6f8;--card:#fff;--head:#102a43;
--in:#627d98;--w:#9fb3c8;--a2q:#e8590c;--finn:#f0b429;--sira:#0f766e;--base:#9aa5b1;
--good:#16794c;--bad:#b42318}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
.wrap,main{max-width:1320px;margin:0 auto;padding:0 24px}
header.top{background:var(--head);color:#f0f4f8;padding:22px 0 18px}
header.top h1{margin:0 0 12px;font-size:26px;font-weight:650;word-break:break-all}
header.top .kicker{margin:0;text-transform:uppercase;letter-spacing:.08em;font-size:11.5px;color:#9fb3c8}
header.top code{color:#fff;font-size:13px}
dl.head{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:10px 24px;margin:0}
dl.head dt{font-size:11px;text-transform:uppercase;letter-spacing:.06em;color:#9fb3c8}
dl.head dd{margin:0;font-weight:600}
nav.toc{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);box-shadow:0 1px 3px rgba(16,42,67,.06)}
nav.toc ul{max-width:1320px;margin:0 auto;padding:8px 24px;list-style:none;display:flex;flex-wrap:wrap;gap:4px 20px}
nav.toc a{color:#334e68;text-decoration:none;font-weight:600;font-size:13px}
nav.toc a:hover{color:var(--sira)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0;scroll-margin-top:48px}
h2{font-size:19px;margin:0 0 10px}
h3{font-size:15px;margin:18px 0 8px;color:#243b53}
p{margin:6px 0 10px}
.muted{color:var(--muted)}
.small{font-size:12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;margin:6px 0 10px}
th,td{padding:4px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#f0f4f8;color:#334e68;font-size:12.5px;white-space:nowrap}
tbody tr:hover{background:#f8fafc}
.n{text-align:right;white-space:nowrap}
td.zero{color:#9aa5b1}
td.absent{color:#bcccdc}
td.unknown{color:var(--bad);font-style:italic}
.strong{font-weight:650}
tr.group th{background:#fff;border-bottom:0;padding-bottom:0;text-align:center;font-size:11.5px;letter-spacing:.04em;text-transform:uppercase}
tr.group th.g{border-bottom:3px solid var(--line)}
tr.group th.g.sira{border-color:var(--sira);color:var(--sira)}
tr.group th.g.base{border-color:var(--base);color:#52606d}
table.layers td[data-flow="sira"]{background:rgba(15,118,110,.035)}
tbody.plumbing-group tr.sub th{background:#f0f4f8;font-weight:600;color:#52606d;font-size:12px;border-top:2px solid var(--line)}
tr.plumbing td{color:#52606d}
tr.plumbing td.zero,tr.host td.zero{color:#9aa5b1}
tr.host td{background:#fffbea}
tr.baseline-only td{color:#7b8794}
tfoot tr.total td,tfoot tr.total th{border-top:2px solid #9fb3c8;font-weight:700;background:#f8fafc}
table.sortable thead tr:last-child th{cursor:pointer;user-select:none}
table.sortable thead tr:last-child th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
table.sortable thead tr:last-child th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
table.kv th{width:38%;font-weight:600;color:#334e68}
.note{font-size:11.5px;color:var(--muted);margin-top:2px}
.badge{display:inline-block;padding:0 8px;border-radius:9px;font-size:11px;font-weight:700;line-height:18px;margin-right:4px;white-space:nowrap;vertical-align:1px}
.badge.pass{background:#e3f9e5;color:#0e5814}
.badge.fail{background:#ffe3e3;color:#8a041a}
.badge.na{background:#e4e7eb;color:#52606d}
.badge.host{background:#fff3c4;color:#8d2b0b}
.badge.plumb{background:#e0e8f9;color:#35469c}
.badge.free{background:#f0f4f8;color:#52606d}
.badge.baseonly{background:#f0f4f8;color:#7b8794;border:1px dashed #bcccdc}
.badge.siraonly{background:#e6fffa;color:#0f766e}
.badge.warnbadge{background:#fff3c4;color:#8d2b0b}
.badge.info{background:#e0e8f9;color:#35469c}
.badge.mark-exact{background:#e3f9e5;color:#0e5814}
.badge.mark-loose{background:#fff3c4;color:#8d2b0b}
.badge.mark-fallback{background:#ffe3e3;color:#8a041a}
tr.m-fallback td{background:#fff5f5}
.dtype{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;padding:0 5px;border-radius:4px;background:#f0f4f8}
.dtype.float{background:#fff3c4;color:#8d2b0b}
.verdict{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;border-radius:8px;padding:14px 18px;border:1px solid var(--line);border-left-width:8px}
.verdict .big{font-size:22px;font-weight:700;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.verdict p{margin:0;flex-basis:100%}
.verdict .badge{font-size:13px;line-height:22px;padding:0 12px}
.verdict.pass{border-left-color:var(--good);background:#f3fcf5}
.verdict.fail{border-left-color:var(--bad);background:#fff5f5}
.verdict.none{border-left-color:#9aa5b1;background:#f8fafc}
.mismatch{font-weight:600;color:var(--bad)}
.na{color:var(--muted)}
.warn{color:#8d2b0b}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;color:#334e68;margin:4px 0 8px}
.legend span{display:inline-flex;align-items:center;gap:6px}
.sw{display:inline-block;width:14px;height:11px;border-radius:2px}
.sw.in{background:var(--in)}.sw.w{background:var(--w)}.sw.a2q{background:var(--a2q)}.sw.finn{background:var(--finn)}.sw.sira{background:var(--sira)}
.sw.base{background:var(--base)}.sw.ghost{background:#fff;border:1.5px dashed #9aa5b1}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:14px;margin:8px 0 16px}
figure.card{margin:0;border:1px solid var(--line);border-radius:8px;padding:10px 12px 4px;background:#fcfdfe}
figure.card figcaption{margin-bottom:6px}
.lname{font-weight:700;font-size:13.5px}
svg.chart{display:block;max-width:100%;height:auto;font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .lbl{font-size:12px;fill:#334e68}
svg .dt{font-size:11px;fill:#7b8794;font-family:ui-monospace,Menlo,Consolas,monospace}
svg .val{font-size:12.5px;font-weight:700;fill:#1f2933}
svg .val.na{fill:#9aa5b1;font-weight:400}
svg .saved{font-size:11.5px;font-weight:700;fill:var(--good)}
svg .bar.in{fill:var(--in)}svg .bar.w{fill:var(--w)}svg .bar.a2q{fill:var(--a2q)}svg .bar.finn{fill:var(--finn)}svg .bar.sira{fill:var(--sira)}
svg .bar.base{fill:var(--base)}
svg .ghost{fill:#fff;stroke:#9aa5b1;stroke-width:1.2;stroke-dasharray:3 2}
svg .ptitle{font-size:15px;font-weight:700;fill:#243b53}
svg .delta{font-size:14px;font-weight:700}
svg .delta.good,td.delta.good{fill:var(--good);color:var(--good)}
svg .delta.bad,td.delta.bad{fill:var(--bad);color:var(--bad)}
svg .delta.same,td.delta.same{fill:#7b8794;color:#7b8794}
svg .cat{font-size:11.5px;fill:#52606d}
svg .axis{stroke:#9fb3c8;stroke-width:1}
svg .sep{stroke:var(--line);stroke-width:1}
.resgrid{display:grid;grid-template-columns:minmax(0,640px) minmax(280px,1fr);gap:18px;align-items:start}
table.totals th[scope=row]{font-weight:600;color:#334e68}
.mgrid{display:grid;grid-template-columns:1fr 1fr;gap:6px 28px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
dl.kv dt{color:#334e68;font-weight:600}
dl.kv dd{margin:0}
dl.kv>div{display:contents}
.nw{white-space:nowrap}
.gran{display:block;font-size:10.5px;color:var(--muted);font-family:system-ui,sans-serif}
table.layers,table.ranges{font-size:13px}
table.ranges td,table.ranges th{padding:4px 6px}
table.ranges code,table.ranges .mono{font-size:12px}
table.layers td,table.layers th{padding:4px 7px}
table.layers .badge{margin-left:4px}
table.layers td:first-child{min-width:210px;overflow-wrap:anywhere}
.wrapall{word-break:break-all}
ul.items{margin:4px 0 10px;padding-left:18px}
ul.items li{margin:3px 0}
details{margin:8px 0}
summary{cursor:pointer;color:#334e68;font-weight:600}
footer{max-width:1320px;margin:0 auto;padding:8px 24px 32px;color:var(--muted);font-size:12px}
@media (max-width:900px){.resgrid,.mgrid{grid-template-columns:1fr}.cards{grid-template-columns:1fr}}
@media print{nav.toc{display:none}section{break-inside:avoid;border:0}body{background:#fff}}
"""

# Sorts tables by a click on a column head (numbers before text); marks the
# page ready. The charts do not need it.
_JS = """
(function () {
  function key(cell) {
    var t = (cell.getAttribute("data-sort") || cell.textContent).trim();
    var n = parseFloat(t);
    return /^[-+]?[0-9.]/.test(t) && isFinite(n) ? [0, n, ""] : [1, 0, t.toLowerCase()];
  }
  function cmp(a, b) { return a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0); }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      function sort() {
        var up = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", up ? "ascending" : "descending");
        Array.prototype.forEach.call(table.tBodies, function (body) {
          var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("sub"); });
          rows.sort(function (a, b) { var c = cmp(key(a.cells[col]), key(b.cells[col])); return up ? c : -c; });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
  });
  document.documentElement.dataset.ready = "1";
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_SECTIONS = (("csim", "C simulation"), ("widths", "Widths"), ("resources", "Resources"), ("ranges", "Ranges"),
             ("warnings", "Warnings & host"), ("manifest", "Manifest"))  # fmt: skip


def render_report(project_dir: str) -> str:
    """The HTML page of the sira project in ``project_dir`` (see the module
    docstring). Raises :class:`SiraError` if the folder is not a sira project."""
    from . import __version__
    from .hls.project import is_project

    root = os.fspath(project_dir)
    if not os.path.isdir(root) or not is_project(root):
        raise SiraError(
            f"'{root}' is not a sira HLS project (no sira manifest.json); create one with: sira build MODEL -o DIR, "
            "then write its report from that folder"
        )
    inp = _Inputs(root)
    changed = inp.changed_files()
    ids = _Ids()
    folder = os.path.basename(os.path.normpath(os.path.abspath(root))) or "DIR"
    model = inp.manifest.get("model") if isinstance(inp.manifest.get("model"), dict) else {}
    title = f"sira report: {model.get('file') or inp.manifest.get('top') or folder}"
    nav = '<nav class="toc" aria-label="sections"><ul>' + "".join(f'<li><a href="#{k}">{esc(v)}</a></li>' for k, v in _SECTIONS) + "</ul></nav>"
    body = [
        section_header(inp),
        nav,
        "<main>",
        section_csim(inp, folder),
        section_widths(inp, ids),
        section_resources(inp, ids),
        section_ranges(inp),
        section_warnings(inp, changed),
        section_manifest(inp, changed),
        "</main>",
        f"<footer>Written by sira {esc(__version__)} from the files of the project folder <code>{esc(folder)}</code>; "
        "a self-contained page: it loads nothing from the network. Click a column head to sort a table.</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="sira {esc(__version__)}">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_JS}</script>\n</body>\n</html>\n"
    )


def write_report(project_dir: str) -> str:
    """Write ``report/report.html`` in the project folder (atomically) and
    return its path."""
    text = render_report(project_dir)
    path = os.path.join(os.fspath(project_dir), REPORT_PATH)
    write_atomic(path, text)
    return path


__all__ = ["render_report", "write_report", "REPORT_PATH"]

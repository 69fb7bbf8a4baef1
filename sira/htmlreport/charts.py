"""The geometry of the report's two SVG charts, computed here so that the
templates only place what they are given: the accumulator width waterfall
of a MAC layer and the before/after resource bars of the design.

Coordinates are strings already rounded to the tenth of a pixel they are
drawn at, so the page's bytes depend on the numbers only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from .text import bits, num, pct, delta_class

#: resources of the before/after chart
CHART_RESOURCES = ("LUT", "DSP", "BRAM_18K")

#: rows of the width waterfall: (label, dtype key, bits key, css class); the
#: bits key also names the row's value in the page (``data-key``)
WIDTH_ROWS = (
    ("input", "input_dtype", "N", "in"),
    ("weights", "weight_dtype", "M", "w"),
    ("datatype bound (A2Q)", "a2q_dtype", "a2q_width", "a2q"),
    ("FINN's method", "finn_dtype", "finn_width", "finn"),
    ("sira (proven range)", "sira_dtype", "sira_width", "sira"),
)
#: rows that are accumulators: each is compared with the one before it
ACCUMULATORS = ("a2q", "finn", "sira")


class ChartIds:
    """Deterministic unique ids for the charts' titles and descriptions."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"


@dataclasses.dataclass(frozen=True)
class Frame:
    """What every chart has: its kind, size, and an accessible title and
    description (the numbers as text, for screen readers)."""

    kind: str
    width: int
    height: int
    title: str
    desc: str
    title_id: str
    desc_id: str


def _frame(ids: ChartIds, kind: str, width: int, height: int, title: str, desc: str) -> Frame:
    return Frame(kind, width, height, title, desc, ids("chart-title"), ids("chart-desc"))


def _px(v: float) -> str:
    return f"{v:.1f}"


# --------------------------------------------------------------------------
# widths of one MAC layer
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WidthBar:
    """One row of the waterfall. ``bits`` None: the layer has no such width
    (the row shows "n/a"). ``ghost_*``: the dashed bar of the bits this step
    removes; ``saved_*``: their count next to the value."""

    label: str
    dtype: Optional[str]
    key: str
    cls: str
    y: int
    text_y: str
    bits: Optional[int] = None
    bar_w: str = ""
    value_x: str = ""
    ghost_x: Optional[str] = None
    ghost_w: Optional[str] = None
    saved_x: Optional[str] = None
    saved: str = ""


@dataclasses.dataclass(frozen=True)
class WidthsChart:
    frame: Frame
    layer: str
    label_w: int
    bar_h: int
    rows: list[WidthBar]


def widths_chart(ids: ChartIds, layer: dict, max_bits: int) -> WidthsChart:
    """Horizontal bars: input bits, weight bits, then the accumulator by the
    datatype bound, FINN and sira, all on one scale (``max_bits`` is the
    widest bar of the page); the bits each step saves are drawn as a dashed
    ghost bar with its count."""
    name = str(layer.get("layer", "?"))
    label_w, plot_w, row_h, bar_h, top = 200, 200, 26, 17, 6
    width, height = label_w + plot_w + 92, top + row_h * len(WIDTH_ROWS) + 4
    scale = plot_w / max(max_bits, 1)
    desc = "; ".join(f"{label}: {bits(layer.get(key))} bits" for label, _, key, _ in WIDTH_ROWS if bits(layer.get(key)) is not None)
    rows = []
    prev_acc: Optional[int] = None
    for i, (label, dtype_key, key, cls) in enumerate(WIDTH_ROWS):
        y = top + i * row_h
        b = bits(layer.get(key))
        common = dict(label=label, dtype=layer.get(dtype_key) or None, key=key, cls=cls, y=y, text_y=_px(y + bar_h / 2 + 4.5))
        if b is None:
            rows.append(WidthBar(**common))
            continue
        bw = end = b * scale
        ghost_x = ghost_w = saved_x = None
        saved = ""
        compared = cls in ("finn", "sira") and prev_acc is not None
        if compared and prev_acc > b:
            gw = (prev_acc - b) * scale
            ghost_x, ghost_w = _px(label_w + bw), _px(gw)
            end = bw + gw
        if compared and prev_acc != b:
            saved_x = _px(label_w + end + 6 + 7.5 * len(str(b)) + 6)
            saved = ("\u2212" if prev_acc > b else "+") + str(abs(prev_acc - b))
        rows.append(WidthBar(**common, bits=b, bar_w=_px(bw), value_x=_px(label_w + end + 6), ghost_x=ghost_x, ghost_w=ghost_w,
                             saved_x=saved_x, saved=saved))  # fmt: skip
        if cls in ACCUMULATORS:
            prev_acc = b
    return WidthsChart(_frame(ids, "widths", width, height, f"Bit widths of {name}", desc), name, label_w, bar_h, rows)


# --------------------------------------------------------------------------
# resources of the design, before and after
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ResourceBar:
    flow: str
    cls: str
    label: str
    value: Any
    value_text: str
    x: str
    y: str
    height: str
    mid_x: str
    value_y: str


@dataclasses.dataclass(frozen=True)
class ResourcePanel:
    """One resource on its own scale: the two bars and the change in %."""

    resource: str
    x0: int
    mid_x: str
    separator: bool
    delta: str
    delta_cls: str
    axis_x1: int
    axis_x2: int
    bars: list[ResourceBar]


@dataclasses.dataclass(frozen=True)
class ResourcesChart:
    frame: Frame
    bar_w: int
    plot_bottom: int
    panels: list[ResourcePanel]


def resources_chart(ids: ChartIds, base_total: dict, sira_total: dict, delta: dict) -> ResourcesChart:
    """Grouped bars per resource (each on its own scale): FINN baseline and
    SIRA totals with their values, and the change in %."""
    panel_w, height, bar_w, plot_top, plot_bottom = 210, 262, 58, 74, 222
    desc = "; ".join(f"{key}: baseline {num(base_total.get(key))}, SIRA {num(sira_total.get(key))} ({pct(delta.get(key))})"
                     for key in CHART_RESOURCES)  # fmt: skip
    frame = _frame(ids, "resources", panel_w * len(CHART_RESOURCES), height, "Resources before and after SIRA (design totals)", desc)
    panels = []
    for p, key in enumerate(CHART_RESOURCES):
        x0 = p * panel_w
        cx = x0 + panel_w / 2
        flows = (("baseline", "base", "FINN baseline", base_total.get(key)), ("sira", "sira", "SIRA", sira_total.get(key)))
        top_v = max([v for *_, v in flows if isinstance(v, (int, float))] + [0])
        bars = []
        for j, (flow, cls, label, v) in enumerate(flows):
            bx = cx - bar_w - 6 if j == 0 else cx + 6
            bh = (plot_bottom - plot_top) * v / top_v if isinstance(v, (int, float)) and top_v > 0 else 0.0
            bars.append(ResourceBar(flow, cls, label, v, num(v), _px(bx), _px(plot_bottom - bh), _px(bh), _px(bx + bar_w / 2),
                                    _px(plot_bottom - bh - 6)))  # fmt: skip
        d = delta.get(key)
        panels.append(ResourcePanel(key, x0, _px(cx), p > 0, pct(d), delta_class(d), x0 + 24, x0 + panel_w - 24, bars))
    return ResourcesChart(frame, bar_w, plot_bottom, panels)


__all__ = ["CHART_RESOURCES", "WIDTH_ROWS", "ChartIds", "Frame", "WidthsChart", "widths_chart", "ResourcesChart", "resources_chart"]

"""Rendering analysis results: JSON for machines, aligned tables for people.

JSON layout (stable; later tools rely on it)::

    {"sira_version": "...",
     "model":    {"path": ..., "sha256": ..., "nodes": N},
     "inputs":   {name: <range entry>},
     "tensors":  {name: <range entry>},
     "warnings": [{"kind", "node", "op_type", "message"}]}

A range entry has ``op`` (producing op type, or ``input``/``initializer``),
``constant`` (weights and other tensors fixed at build time), ``shape``, ``min``/``max`` (a number, or a list along ``axis`` when the
bounds vary along one axis; ``null`` stands for an unbounded side),
``axis``, ``granularity`` (``tensor``/``channel``/``element``; per-element
bounds are reported as their hull along the channel axis), ``scaled_int``,
``int_min``/``int_max``/``scale``/``bias`` (``null`` when not scaled-int),
``datatype`` (narrowest QONNX type of the integer part, ``BIPOLAR`` for
+-1 tensors, ``FLOAT32`` otherwise), ``exact``, ``fallback`` and ``notes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from typing import Any, Optional, Sequence

import numpy as np

from . import numerics as nx
from .errors import SiraError
from .range import ScaledIntRange
from .version import __version__


# --------------------------------------------------------------------------
# summaries of compact arrays
# --------------------------------------------------------------------------


def _varying_axes(a: np.ndarray) -> list[int]:
    return [i for i, d in enumerate(a.shape) if d > 1]


def channel_axis(r: ScaledIntRange) -> int:
    """The axis that per-channel summaries use: the only varying axis of the
    bounds if there is one, else 1 for rank >= 2 tensors, else 0."""
    axes = sorted(set(_varying_axes(r.lo)) | set(_varying_axes(r.hi)))
    if len(axes) == 1:
        return axes[0]
    return 1 if r.ndim >= 2 else 0


def _num(v) -> Any:
    """A JSON-safe scalar: ints stay exact, infinities become None."""
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if math.isinf(f) or math.isnan(f):
        return None
    return f


def _along(a: np.ndarray, axis: int, reduce) -> np.ndarray:
    """Values of ``a`` along ``axis``, hull-reduced over the other axes."""
    others = tuple(i for i in range(a.ndim) if i != axis)
    return reduce(a, axis=others) if others else a


def summarize(r: ScaledIntRange, const_scalar: bool = False) -> dict:
    """The JSON fields describing one range (see module docstring)."""
    axes = sorted(set(_varying_axes(r.lo)) | set(_varying_axes(r.hi)))
    if const_scalar or not axes or r.ndim == 0:
        granularity, axis = ("tensor" if not axes else "element"), None
    elif len(axes) == 1:
        granularity, axis = "channel", axes[0]
    else:
        granularity, axis = "element", channel_axis(r)

    def field(a, reduce):
        if a is None:
            return None
        if axis is None:
            return _num(reduce(a))
        red = np.asarray(_along(a, axis, reduce))
        if red.size == 1:
            return _num(red.reshape(-1)[0])
        return [_num(v) for v in red.reshape(-1)]

    out = {
        "shape": list(r.shape),
        "min": field(r.lo, np.min),
        "max": field(r.hi, np.max),
        "axis": axis,
        "granularity": granularity,
        "scaled_int": r.is_scaled_int,
        "int_min": field(r.int_lo, np.min) if r.is_scaled_int else None,
        "int_max": field(r.int_hi, np.max) if r.is_scaled_int else None,
        "scale": _param_summary(r.scale, axis) if r.is_scaled_int else None,
        "bias": _param_summary(r.bias, axis) if r.is_scaled_int else None,
        "datatype": datatype_name(r),
        "exact": bool(r.exact),
        "fallback": bool(r.fallback),
    }
    if r.notes:
        out["notes"] = list(dict.fromkeys(r.notes))
    return out


def _param_summary(a: np.ndarray, axis: Optional[int]):
    """Scale or bias: a number, a list along ``axis``, or (when it varies
    along several axes) its min/max."""
    varying = _varying_axes(a)
    if not varying:
        return _num(a.reshape(-1)[0])
    if axis is not None and varying == [axis]:
        return [_num(v) for v in a.reshape(-1)]
    return {"varies_per_element": True, "min": _num(np.min(a)), "max": _num(np.max(a))}


def datatype_name(r: ScaledIntRange) -> str:
    """Narrowest QONNX datatype of the integer part (see module docstring)."""
    if not r.is_scaled_int:
        return "FLOAT32"
    qlo, qhi = r.int_bounds()
    if (
        qlo >= 0
        and qhi <= 1
        and np.all(r.scale == 2.0)
        and np.all(r.bias == -1.0)
    ):
        return "BIPOLAR"
    return nx.narrowest_int_type(qlo, qhi)


def model_digest(model) -> str:
    return hashlib.sha256(model.model.SerializeToString()).hexdigest()


def report_json(report, model_path: Optional[str] = None) -> dict:
    """The JSON document of a :class:`~sira.analysis.RangeReport`."""
    tensors = {}
    for name, r in report.ranges.items():
        op = report.producers.get(name, "?")
        entry = {"op": op, "constant": r.is_const}
        entry.update(summarize(r, const_scalar=(op == "initializer")))
        tensors[name] = entry
    return {
        "sira_version": __version__,
        "model": {
            "path": model_path,
            "sha256": model_digest(report.model),
            "nodes": len(report.model.graph.node),
        },
        "inputs": {name: summarize(r) for name, r in report.input_ranges.items()},
        "tensors": tensors,
        "warnings": [
            {"kind": w.kind, "node": w.node, "op_type": w.op_type, "message": w.message} for w in report.warnings
        ],
    }


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------


def fmt_num(v, digits: int = 6) -> str:
    if v is None:
        return "?"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    if math.isinf(f):
        return "-inf" if f < 0 else "inf"
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.{digits}g}"


def _hull_text(lo_field, hi_field) -> str:
    lo = min((x for x in _flat(lo_field) if x is not None), default=None) if not _has_none(lo_field) else None
    hi = max((x for x in _flat(hi_field) if x is not None), default=None) if not _has_none(hi_field) else None
    return f"[{fmt_num(lo) if lo is not None else '-inf'}, {fmt_num(hi) if hi is not None else 'inf'}]"


def _flat(v):
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return [v["min"], v["max"]]
    return [v]


def _has_none(v) -> bool:
    return any(x is None for x in _flat(v))


def _param_text(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        lo, hi = min(v), max(v)
        return f"{fmt_num(lo, 4)}..{fmt_num(hi, 4)} (x{len(v)})" if lo != hi else fmt_num(lo, 6)
    if isinstance(v, dict):
        return f"{fmt_num(v['min'], 4)}..{fmt_num(v['max'], 4)} (per elem)"
    return fmt_num(v, 6)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """Columns aligned to their widest cell; ``right`` lists right-aligned columns."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells):
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep] + [line(r) for r in rows])


def report_table(doc: dict, include_constants: bool = False) -> str:
    """People's view of a report JSON: one row per tensor, per-channel values
    summarized by their hull and count."""
    headers = ["tensor", "op", "shape", "range", "int range", "scale", "bias", "datatype", "exact"]
    rows = []
    for name, t in doc["tensors"].items():
        if t.get("constant") and not include_constants:
            continue
        per = "" if t["granularity"] == "tensor" else (" per-ch" if t["granularity"] == "channel" else " per-elem")
        rows.append(
            [
                name,
                t["op"],
                "x".join(str(d) for d in t["shape"]) or "scalar",
                _hull_text(t["min"], t["max"]) + per,
                _hull_text(t["int_min"], t["int_max"]) if t["scaled_int"] else "-",
                _param_text(t["scale"]),
                _param_text(t["bias"]),
                t["datatype"],
                "fallback" if t["fallback"] else ("exact" if t["exact"] else "loose"),
            ]
        )
    out = [format_table(headers, rows)]
    if doc["warnings"]:
        out.append("")
        out.append(f"warnings ({len(doc['warnings'])}):")
        for w in doc["warnings"]:
            out.append(f"  {w['node']} ({w['op_type']}): {w['message']}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """A temporary path in ``path``'s folder that replaces ``path`` when the
    block succeeds: readers never see a half-written file, and a failure
    leaves any previous file untouched."""
    path = os.fspath(path)
    check_output_file(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sira-", suffix=suffix, dir=folder)
        os.close(fd)
    except OSError as e:
        raise SiraError(f"cannot write '{path}': {e.strerror}") from None
    try:
        yield tmp
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # what open() would have given; mkstemp makes 0600
            os.replace(tmp, path)
        except OSError as e:
            raise SiraError(f"cannot write '{path}': {e.strerror}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_output_file(path: str, *, inputs: Sequence[str] = (), force: bool = False) -> None:
    """Fail before any work if ``path`` cannot be written as a file (it is
    a folder, it lies under a file, its folder is not writable) or would
    overwrite one of the command's ``inputs`` (unless ``force``)."""
    target = os.path.abspath(os.fspath(path))
    if os.path.isdir(target):
        raise SiraError(f"'{path}' is a folder; give a file name for the output")
    for source in inputs:
        if os.path.exists(target) and os.path.exists(source) and os.path.samefile(target, source) and not force:
            raise SiraError(f"refusing to overwrite the input '{source}' with the output; give another output file, or pass --force")
    check_creatable(path)


def check_creatable(path: str) -> None:
    """Fail before any work if ``path`` (a file or a folder) cannot be
    created or replaced: the nearest existing folder on its way is a file,
    or is not writable."""
    target = os.path.abspath(os.fspath(path))
    probe = os.path.dirname(target)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise SiraError(f"cannot write '{path}': '{probe}' is a file, not a folder; choose another output path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SiraError(f"cannot write '{path}': the folder '{probe}' is not writable; choose another output folder or fix its permissions")


def write_atomic(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def save_model_atomic(model, path: str) -> None:
    """Save an ONNX model (a qonnx ModelWrapper) atomically."""
    import onnx

    with atomic_path(path, ".onnx") as tmp:
        onnx.save(model.model, tmp)


# --------------------------------------------------------------------------
# build folders
# --------------------------------------------------------------------------

#: the manifest ``sira build`` writes into a build folder
MANIFEST = "manifest.json"
#: its ``generator`` field, which marks the folder as sira's own
GENERATOR = "sira"


def is_project(path: str) -> bool:
    """Whether ``path`` is a build folder of ``sira build`` (its manifest says
    so). The readers of a folder (csim, report, diff) and the build that
    refuses to overwrite a foreign folder all ask this."""
    try:
        with open(os.path.join(path, MANIFEST)) as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False

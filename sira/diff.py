"""``sira diff``: what changed between two builds or two reports, and whether
it got worse.

:func:`diff` compares two build folders (made by ``sira build``) or two
report files of one kind - estimate JSON (``sira estimate --format json``),
analysis JSON (``sira analyze --format json``) or the per-layer widths of
``sira optimize --report`` - and lists every change:

* **analysis** - per tensor: datatype, range, integer range, exactness
  (constants: datatype only; their values change with every retraining);
* **estimate** - per layer and in total: LUT, DSP, BRAM_18K, URAM,
  accumulator bits, folding (PE, SIMD), cycles; throughput; part, clock;
* **optimize** - per MAC layer: sira's accumulator width (and the A2Q and
  FINN widths, thresholds per channel);
* **csim** - the C simulation verdict (``report/csim.json``, written by
  ``sira csim`` or ``sira build --csim``);
* **versions**, **options**, **model** - the manifest's tool versions, build
  options and model hash.

Each change is a ``regression``, an ``improvement`` or a neutral ``change``.
Regressions: a wider accumulator (``acc_bits`` of an estimate layer, or
``sira_width`` of an optimize layer); more LUT, DSP or BRAM_18K in any layer
or in total; a tensor whose datatype got wider (an integer type with more
bits, or an integer tensor that lost its grid, ``FLOAT32``); a C simulation
that passed in A and fails in B. The opposite moves are improvements;
everything else (URAM, cycles, folding, ranges, versions) is reported as a
change. ``sira diff`` exits 1 when there is a regression, so it can gate CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from typing import Any, Optional

from .cliutil import add_text_output_options, emit
from .errors import SiraError

#: resources whose increase is a regression
REGRESSING_RESOURCES = ("LUT", "DSP", "BRAM_18K")
#: all resources compared, in FINN's key order
RESOURCES = ("LUT", "DSP", "BRAM_18K", "URAM")
#: what each kind of input is called in messages
KIND_NAMES = {"project": "build folder", "estimate": "estimate report", "analysis": "analysis report", "optimize": "optimize report"}
#: project reports, by section
PROJECT_REPORTS = ("estimate", "analysis", "optimize", "csim")

EXIT_OK = 0
EXIT_REGRESSION = 1


# --------------------------------------------------------------------------
# reading the two sides
# --------------------------------------------------------------------------


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise SiraError(f"'{path}' is not a JSON file ({e}); give a build folder or a report written with --format json") from None
    except OSError as e:
        raise SiraError(f"cannot read '{path}': {e.strerror}") from None


def report_kind(doc: Any) -> Optional[str]:
    """``analysis``, ``estimate`` or ``optimize`` from a report's keys, else None."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("tensors"), dict) and "inputs" in doc:
        return "analysis"
    if isinstance(doc.get("layers"), dict) and isinstance(doc.get("total"), dict):
        return "estimate"
    layers = doc.get("layers")
    if isinstance(layers, list) and all(isinstance(x, dict) and "layer" in x and "sira_width" in x for x in layers):
        return "optimize"
    return None


def load_side(path: str) -> tuple[str, dict]:
    """(kind, documents by section) of one side: a build folder gives
    ``manifest`` and the reports it holds, a report file its one document."""
    from .report import MANIFEST, is_project  # numpy comes with it; `sira --help` imports this module

    if not os.path.exists(path):
        raise SiraError(f"'{path}' not found; give two build folders (sira build -o DIR) or two JSON reports")
    if os.path.isdir(path):
        if not is_project(path):
            raise SiraError(f"'{path}' is a folder but not a sira build folder (no manifest.json written by sira build)")
        docs: dict[str, Any] = {"manifest": _read_json(os.path.join(path, MANIFEST))}
        for name in PROJECT_REPORTS:
            file = os.path.join(path, "report", f"{name}.json")
            docs[name] = _read_json(file) if os.path.isfile(file) else None
        return "project", docs
    doc = _read_json(path)
    kind = report_kind(doc)
    if kind is None:
        raise SiraError(
            f"'{path}' is not a report sira diff knows: expected the JSON of sira analyze --format json (keys tensors, "
            "inputs), sira estimate --format json (keys layers, total) or sira optimize --report (a list of layers)"
        )
    return kind, {kind: doc}


# --------------------------------------------------------------------------
# comparing values
# --------------------------------------------------------------------------


def _change(section: str, item: str, field: str, a, b, verdict: str = "change", detail: str = "") -> dict:
    out = {"section": section, "item": item, "field": field, "a": a, "b": b, "verdict": verdict}
    if detail:
        out["detail"] = detail
    return out


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _more_is_worse(a, b) -> str:
    """Verdict for a quantity where more is a regression."""
    if _is_num(a) and _is_num(b):
        return "regression" if b > a else "improvement" if b < a else "change"
    return "change"


def dtype_bits(name: Optional[str]) -> Optional[int]:
    """Bits of a QONNX integer datatype name; None for floats and unknowns."""
    if name in ("BINARY", "BIPOLAR", "TERNARY"):
        return 1 if name != "TERNARY" else 2
    m = re.fullmatch(r"U?INT(\d+)", name or "")
    return int(m.group(1)) if m else None


def _dtype_verdict(a: Optional[str], b: Optional[str]) -> tuple[str, str]:
    ba, bb = dtype_bits(a), dtype_bits(b)
    if ba is not None and bb is not None:
        if bb > ba:
            return "regression", f"{bb - ba} bit(s) wider"
        if bb < ba:
            return "improvement", f"{ba - bb} bit(s) narrower"
        return "change", "same width"
    if ba is not None and b is not None and bb is None:
        return "regression", "lost its integer grid"
    if bb is not None and a is not None and ba is None:
        return "improvement", "gained an integer grid"
    return "change", ""


def _flat(v) -> list:
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return [v.get("min"), v.get("max")]
    return [v]


def _hull(lo, hi) -> Optional[tuple]:
    """(min, max) over per-channel lists; None stands for an infinite side."""
    if lo is None and hi is None:
        return None
    los, his = _flat(lo), _flat(hi)
    low = None if any(x is None for x in los) else min(los)
    high = None if any(x is None for x in his) else max(his)
    return low, high


def _range_detail(a: tuple, b: tuple) -> str:
    inf = math.inf

    def num(x, sign):
        return sign * inf if x is None else x

    alo, ahi = num(a[0], -1), num(a[1], 1)
    blo, bhi = num(b[0], -1), num(b[1], 1)
    if (blo, bhi) == (alo, ahi):
        return "same hull, per-channel bounds differ"
    if blo >= alo and bhi <= ahi:
        return "narrower"
    if blo <= alo and bhi >= ahi:
        return "wider"
    return "shifted"


# --------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------


def diff_analysis(a: dict, b: dict, section: str = "analysis") -> list[dict]:
    """Per tensor datatype, range, integer range and exactness changes."""
    out = []
    ta, tb = a.get("tensors", {}), b.get("tensors", {})
    lone_constants = {"A": 0, "B": 0}
    for name in list(ta) + [n for n in tb if n not in ta]:
        x, y = ta.get(name), tb.get(name)
        if x is None or y is None:
            present = y if x is None else x
            if present.get("constant"):
                lone_constants["B" if x is None else "A"] += 1
                continue
            dt = present.get("datatype")
            out.append(_change(section, name, "tensor", None if x is None else dt, None if y is None else dt,
                               detail="only in B" if x is None else "only in A"))  # fmt: skip
            continue
        if x.get("datatype") != y.get("datatype"):
            verdict, detail = _dtype_verdict(x.get("datatype"), y.get("datatype"))
            out.append(_change(section, name, "datatype", x.get("datatype"), y.get("datatype"), verdict, detail))
        if x.get("constant") or y.get("constant"):
            continue
        for field, lo, hi in (("range", "min", "max"), ("int range", "int_min", "int_max")):
            if (x.get(lo), x.get(hi)) != (y.get(lo), y.get(hi)):
                ha, hb = _hull(x.get(lo), x.get(hi)), _hull(y.get(lo), y.get(hi))
                detail = _range_detail(ha, hb) if ha is not None and hb is not None else ("gained" if ha is None else "lost")
                out.append(_change(section, name, field, _range_value(x.get(lo), x.get(hi)), _range_value(y.get(lo), y.get(hi)), detail=detail))
        for field in ("exact", "fallback", "scale", "bias"):
            if x.get(field) != y.get(field):
                out.append(_change(section, name, field, x.get(field), y.get(field)))
    for side, n in lone_constants.items():
        if n:
            out.append(_change(section, "constants", f"only in {side}", n if side == "A" else None, n if side == "B" else None,
                               detail=f"{n} constant tensor(s)"))  # fmt: skip
    if a.get("model", {}).get("sha256") != b.get("model", {}).get("sha256"):
        out.append(_change("model", "analyzed model", "sha256", a.get("model", {}).get("sha256"), b.get("model", {}).get("sha256")))
    wa, wb = len(a.get("warnings", [])), len(b.get("warnings", []))
    if wa != wb:
        out.append(_change(section, "warnings", "count", wa, wb))
    if a.get("sira_version") != b.get("sira_version"):
        out.append(_change("versions", "sira", "version", a.get("sira_version"), b.get("sira_version")))
    return out


def _range_value(lo, hi):
    """A range as stored: [lo, hi] (numbers, or per-channel lists)."""
    if lo is None and hi is None:
        return None
    return [lo, hi]



def _paired(la: dict, lb: dict, section: str, label: str, out: list):
    """(name, A's entry, B's entry) of the layers in both; a layer in only
    one of them is recorded in ``out`` as such (labelled by its ``label``)."""
    for name in list(la) + [n for n in lb if n not in la]:
        x, y = la.get(name), lb.get(name)
        if x is None or y is None:
            present = y if x is None else x
            out.append(_change(section, name, "layer", None if x is None else present.get(label), None if y is None else present.get(label),
                               detail="only in B" if x is None else "only in A"))  # fmt: skip
            continue
        yield name, x, y

def diff_estimate(a: dict, b: dict, section: str = "estimate") -> list[dict]:
    """Per layer and total resources, accumulator widths, folding, cycles."""
    out = []
    for key in ("part", "clock_ns", "mode"):
        if a.get(key) != b.get(key):
            out.append(_change(section, "options", key, a.get(key), b.get(key)))
    for name, x, y in _paired(a.get("layers", {}), b.get("layers", {}), section, "op_type", out):
        if x.get("op_type") != y.get("op_type"):
            out.append(_change(section, name, "op_type", x.get("op_type"), y.get("op_type")))
        for k in RESOURCES:
            if x.get(k) != y.get(k):
                verdict = _more_is_worse(x.get(k), y.get(k)) if k in REGRESSING_RESOURCES else "change"
                out.append(_change(section, name, k, x.get(k), y.get(k), verdict))
        if x.get("acc_bits") != y.get("acc_bits"):
            out.append(_change(section, name, "acc_bits", x.get("acc_bits"), y.get("acc_bits"), _more_is_worse(x.get("acc_bits"), y.get("acc_bits")),
                               "accumulator width"))  # fmt: skip
        for k in ("PE", "SIMD", "cycles"):
            if x.get(k) != y.get(k):
                out.append(_change(section, name, k, x.get(k), y.get(k)))
    ta, tb = a.get("total", {}), b.get("total", {})
    for k in RESOURCES:
        if ta.get(k) != tb.get(k):
            verdict = _more_is_worse(ta.get(k), tb.get(k)) if k in REGRESSING_RESOURCES else "change"
            out.append(_change(section, "total", k, ta.get(k), tb.get(k), verdict))
    for k in ("acc_bits", "cycles"):
        if ta.get(k) != tb.get(k):
            out.append(_change(section, "total", k, ta.get(k), tb.get(k)))
    pa, pb = a.get("performance", {}), b.get("performance", {})
    for k in ("estimated_throughput_fps", "max_cycles_node_name"):
        if pa.get(k) != pb.get(k):
            out.append(_change(section, "performance", k, pa.get(k), pb.get(k)))
    return out


def diff_optimize(a: dict, b: dict, section: str = "optimize") -> list[dict]:
    """Per MAC layer accumulator widths and thresholds."""
    out = []
    la = {x["layer"]: x for x in a.get("layers", [])}
    lb = {x["layer"]: x for x in b.get("layers", [])}
    for name, x, y in _paired(la, lb, section, "sira_dtype", out):
        if x.get("sira_width") != y.get("sira_width"):
            out.append(_change(section, name, "sira_width", x.get("sira_width"), y.get("sira_width"),
                               _more_is_worse(x.get("sira_width"), y.get("sira_width")), "accumulator width"))  # fmt: skip
        if x.get("sira_range") != y.get("sira_range"):
            out.append(_change(section, name, "sira_range", x.get("sira_range"), y.get("sira_range")))
        for k in ("a2q_width", "finn_width", "input_dtype", "weight_dtype", "output_dtype", "thresholds_per_channel"):
            if x.get(k) != y.get(k):
                out.append(_change(section, name, k, x.get(k), y.get(k)))
    fa, fb = a.get("float_islands"), b.get("float_islands")
    if fa is not None and fb is not None and len(fa) != len(fb):
        out.append(_change(section, "float islands", "count", len(fa), len(fb)))
    return out


def diff_csim(a: Optional[dict], b: Optional[dict]) -> list[dict]:
    """The C simulation verdicts: passed in A and failing in B regresses."""
    if a is None and b is None:
        return []
    if a is None or b is None:
        return [_change("csim", "csim", "passed", None if a is None else a.get("passed"), None if b is None else b.get("passed"),
                        detail="not run in A" if a is None else "not run in B")]  # fmt: skip
    out = []
    pa, pb = bool(a.get("passed")), bool(b.get("passed"))
    if pa != pb:
        out.append(_change("csim", "csim", "passed", pa, pb, "regression" if pa else "improvement"))
    for k in ("exact", "samples", "first_mismatch_layer"):
        if a.get(k) != b.get(k):
            out.append(_change("csim", "csim", k, a.get(k), b.get(k)))
    return out


def diff_manifest(a: dict, b: dict) -> list[dict]:
    """Tool versions, build options and the model of two build folders."""
    out = []
    va, vb = a.get("versions", {}), b.get("versions", {})
    for k in list(va) + [k for k in vb if k not in va]:
        if va.get(k) != vb.get(k):
            out.append(_change("versions", k, "version", va.get(k), vb.get(k)))
    oa, ob = a.get("options", {}), b.get("options", {})
    for k in list(oa) + [k for k in ob if k not in oa]:
        if oa.get(k) != ob.get(k):
            out.append(_change("options", k, "value", oa.get(k), ob.get(k)))
    ma, mb = a.get("model", {}), b.get("model", {})
    if ma.get("sha256") != mb.get("sha256"):
        out.append(_change("model", ma.get("file") or "model", "sha256", ma.get("sha256"), mb.get("sha256")))
    if a.get("top") != b.get("top"):
        out.append(_change("options", "top", "value", a.get("top"), b.get("top")))
    return out


# --------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------


def diff(a: str, b: str) -> dict:
    """Compare two build folders or two reports of one kind (see the module
    docstring). Returns ``{"a", "b", "kind", "changes", "summary",
    "verdict", "exit_code"}``; each change has ``section``, ``item``,
    ``field``, ``a``, ``b``, ``verdict`` (``regression``, ``improvement``
    or ``change``) and sometimes ``detail``. Raises SiraError for a missing
    path, an unknown file or two different kinds."""
    ka, da = load_side(a)
    kb, db = load_side(b)
    if ka != kb:
        def an(kind: str) -> str:
            return ("an " if KIND_NAMES[kind][0] in "aeiou" else "a ") + KIND_NAMES[kind]

        raise SiraError(f"cannot compare {an(ka)} ('{a}') with {an(kb)} ('{b}'); give two of the same kind")
    changes: list[dict] = []
    if ka == "project":
        changes += diff_csim(da.get("csim"), db.get("csim"))
    if da.get("estimate") is not None and db.get("estimate") is not None:
        changes += diff_estimate(da["estimate"], db["estimate"])
    if da.get("optimize") is not None and db.get("optimize") is not None:
        changes += diff_optimize(da["optimize"], db["optimize"])
    if da.get("analysis") is not None and db.get("analysis") is not None:
        changes += diff_analysis(da["analysis"], db["analysis"])
    if ka == "project":
        for name in ("estimate", "optimize", "analysis"):
            if (da.get(name) is None) != (db.get(name) is None):
                changes.append(_change(name, f"report/{name}.json", "present", da.get(name) is not None, db.get(name) is not None))
        changes += diff_manifest(da["manifest"], db["manifest"])
    # one model change is one change, whichever report noticed it
    seen, unique = set(), []
    for c in changes:
        key = (c["section"], c["item"], c["field"], json.dumps(c["a"], sort_keys=True, default=str), json.dumps(c["b"], sort_keys=True, default=str))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    changes = unique
    regressions = [c for c in changes if c["verdict"] == "regression"]
    improvements = [c for c in changes if c["verdict"] == "improvement"]
    verdict = "regression" if regressions else ("no changes" if not changes else "no regressions")
    return {
        "a": a,
        "b": b,
        "kind": ka,
        "changes": changes,
        "summary": {"changes": len(changes), "regressions": len(regressions), "improvements": len(improvements)},
        "verdict": verdict,
        "exit_code": EXIT_REGRESSION if regressions else EXIT_OK,
    }


# --------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------


def _cell(v) -> str:
    from .report import fmt_num

    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, float)):
        return fmt_num(v)
    if isinstance(v, list) and len(v) == 2 and any(isinstance(x, list) for x in v):
        h = _hull(*v)
        per = len(v[0]) if isinstance(v[0], list) else len(v[1])
        return f"[{_cell(h[0]) if h[0] is not None else '-inf'}, {_cell(h[1]) if h[1] is not None else 'inf'}] per-ch (x{per})"
    if isinstance(v, list) and len(v) == 2 and all(x is None or _is_num(x) for x in v):
        return f"[{'-inf' if v[0] is None else _cell(v[0])}, {'inf' if v[1] is None else _cell(v[1])}]"
    if isinstance(v, list):
        return f"{_cell(min(v))}..{_cell(max(v))} (x{len(v)})" if v and all(_is_num(x) for x in v) else json.dumps(v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    text = str(v)
    if re.fullmatch(r"[0-9a-f]{64}", text):  # a sha256
        return text[:12] + "..."
    return text if len(text) <= 40 else text[:37] + "..."


def _one(c: dict) -> str:
    return f"{c['section']} {c['item']} {c['field']} {_cell(c['a'])} -> {_cell(c['b'])}"


def diff_text(doc: dict) -> str:
    """People's view of a :func:`diff` document: a table of the changes and a
    one-line verdict."""
    from .report import format_table

    kind = KIND_NAMES[doc["kind"]] + "s"
    out = [f"A: {doc['a']}", f"B: {doc['b']}  ({kind})", ""]
    if doc["changes"]:
        rows = []
        for c in doc["changes"]:
            verdict = c["verdict"] + (f" ({c['detail']})" if c.get("detail") else "")
            rows.append([c["section"], c["item"], c["field"], _cell(c["a"]), _cell(c["b"]), verdict])
        out.append(format_table(["section", "item", "field", "A", "B", "verdict"], rows))
        out.append("")
    s = doc["summary"]
    if doc["verdict"] == "no changes":
        out.append("no changes")
    elif doc["verdict"] == "regression":
        named = [c for c in doc["changes"] if c["verdict"] == "regression"]
        shown = "; ".join(_one(c) for c in named[:4]) + (f"; and {len(named) - 4} more" if len(named) > 4 else "")
        out.append(f"REGRESSION: {s['regressions']} regression(s), {s['improvements']} improvement(s), {s['changes']} change(s) in all: {shown}")
    else:
        out.append(f"OK: no regressions; {s['improvements']} improvement(s), {s['changes']} change(s) in all")
    return "\n".join(out)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

EPILOG = """\
examples:
  sira diff out/mlp_hls_main out/mlp_hls_branch          (two build folders)
  sira diff estimate_before.json estimate_after.json     (sira estimate --format json)
  sira diff ranges_before.json ranges_after.json         (sira analyze --format json)
  sira diff a_hls b_hls --format json -o diff.json

Exit code: 0 when nothing regressed, 1 on a regression (a wider accumulator,
more LUT, DSP or BRAM_18K in a layer or in total, a wider tensor datatype, a
C simulation that passed in A and fails in B), 2 for a usage error.
"""


def add_parser(sub, common) -> None:
    """Register ``sira diff`` on an argparse subparsers object."""
    p = sub.add_parser(
        "diff",
        parents=[common],
        help="compare two builds or reports; exit 1 on a regression",
        description="Compare two build folders (sira build) or two reports of one kind (sira estimate / sira analyze "
        "--format json, sira optimize --report): per tensor datatype and range changes, per layer resources and "
        "accumulator widths, tool versions, options and the C simulation verdict. Prints the changes only, and a "
        "verdict; exit code 1 when something regressed, so it can gate CI.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", metavar="A", help="build folder or JSON report (the reference)")
    p.add_argument("b", metavar="B", help="build folder or JSON report of the same kind (the candidate)")
    add_text_output_options(p)
    p.set_defaults(func=cmd_diff)


def cmd_diff(args) -> int:
    doc = diff(args.a, args.b)
    emit(args, json.dumps(doc, indent=2) if args.format == "json" else diff_text(doc))
    return int(doc["exit_code"])


__all__ = ["diff", "diff_text", "add_parser", "cmd_diff", "load_side", "report_kind", "dtype_bits"]

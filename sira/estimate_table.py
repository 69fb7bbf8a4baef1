"""The people's view of an estimate document: per layer SIRA and baseline
resources, totals and deltas as text tables."""

from __future__ import annotations

from .report import format_table


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _pct_cell(v) -> str:
    return "-" if v is None else f"{v:+.1f}%"


def implementation_table(layers: dict) -> str:
    """Per layer with a choice: every candidate's resources (or why it has
    none), the winner and why it won; "" without any."""
    rows = []
    for name, d in layers.items():
        choice = d.get("impl")
        if not choice:
            continue
        for impl, c in choice["candidates"].items():
            mark = "*" if impl == choice["chosen"] else ""
            if not c["available"]:
                rows.append([name, impl, "", "-", "-", "-", "-", "-", c["why_not"]])
                continue
            rows.append([name, impl, mark, _cell(c["LUT"]), _cell(c["DSP"]), _cell(c["BRAM_18K"]), _cell(c["URAM"]),
                         f"{c['part_share']:.4g}", choice["reason"] if mark else ""])  # fmt: skip
    if not rows:
        return ""
    return format_table(["layer", "impl", "chosen", "LUT", "DSP", "BRAM18", "URAM", "part share", "why"], rows, [3, 4, 5, 6, 7])


def estimate_table(doc: dict) -> str:
    """People's view: per layer SIRA and baseline resources, totals, deltas."""
    # tree: the proven adder-tree (partial-sum) width; acc: the accumulator's;
    # A2Q and FINN: the data-type bound and FINN's width of the same accumulator
    headers = ["layer", "kind", "PE", "SIMD", "LUT", "DSP", "BRAM18", "URAM", "cycles", "tree", "acc", "A2Q", "FINN"]
    right = list(range(2, len(headers)))

    def widths(d: dict) -> list:
        a = d.get("accumulation") or {}
        return [_cell(a.get("tree_bits")), _cell(d["acc_bits"]), _cell(a.get("a2q_bits")), _cell(a.get("finn_bits"))]

    def rows(layers: dict) -> list:
        out = [[n, d["op_type"] + (" (host)" if d.get("host") else ""), str(d["PE"]), str(d["SIMD"]), _cell(d["LUT"]), _cell(d["DSP"]),
                _cell(d["BRAM_18K"]), _cell(d["URAM"]), str(d["cycles"]), *widths(d)]
               for n, d in layers.items() if not d.get("plumbing")]  # fmt: skip
        kinds: dict[str, list] = {}
        for d in layers.values():
            if d.get("plumbing"):
                kinds.setdefault(d["op_type"], []).append(d)
        for kind, ds in kinds.items():
            sums = [_cell(sum(d[k] for d in ds if d[k] != "unknown")) for k in ("LUT", "DSP", "BRAM_18K", "URAM")]
            out.append([f"({len(ds)} stream stage(s))", kind, "", "", *sums, str(max(d["cycles"] for d in ds)), "-", "-", "-", "-"])
        return out

    def total_row(label: str, t: dict) -> list:
        return [label, "", "", "", str(t["LUT"]), str(t["DSP"]), str(t["BRAM_18K"]), str(t["URAM"]), str(t["cycles"]), "", _cell(t["acc_bits"]), "", ""]

    out = [f"estimate on {doc['part']} at {doc['clock_ns']} ns, mode {doc['mode']}", "", "SIRA:"]
    out.append(format_table(headers, rows(doc["layers"]) + [total_row("total", doc["total"])], right))
    out += ["", "baseline (what FINN 1.6.1 builds: its accumulator, threshold and weight widths, a float Thresholding_rtl "
                "for the input quantizer, the float tail in the dataflow):"]
    out.append(format_table(headers, rows(doc["baseline"]["layers"]) + [total_row("total", doc["baseline"]["total"])], right))
    out.append("")
    summary = [
        [k, str(doc["baseline"]["total"][k]), str(doc["total"][k]), _pct_cell(doc["delta"][k])]
        for k in ("LUT", "DSP", "BRAM_18K", "URAM")
    ]
    summary.append(["acc bits (mean)", _cell(doc["baseline"]["total"]["acc_bits"]), _cell(doc["total"]["acc_bits"]), _pct_cell(doc["delta"]["acc_bits"])])
    out.append(format_table(["total", "baseline", "SIRA", "delta"], summary, [1, 2, 3]))
    if any(d.get("host") for d in doc["layers"].values()):
        out.append("(host): float steps before or after the integer dataflow run on the host CPU; "
                   "the baseline counts what FINN builds for them")
    unk = doc["total"]["unknown_layers"]
    if any(unk.values()):
        out.append("unknown (excluded from totals): " + ", ".join(f"{k} in {v} layer(s)" for k, v in unk.items() if v))
    perf = doc["performance"]
    fps = perf["estimated_throughput_fps"]
    out.append(f"bottleneck: {perf['max_cycles_node_name']} at {perf['max_cycles']} cycles -> "
               f"{'-' if fps is None else f'{fps:,.1f}'} inferences/s")  # fmt: skip
    impl = implementation_table(doc["layers"])
    if impl:
        out += ["", "requantizers (each exact implementation per layer; the cheapest share of the part wins):", impl]
    for note in doc.get("notes", []):
        out.append(f"note: {note}")
    for note in doc.get("lint", []):
        out.append(f"lint: {note}")
    return "\n".join(out)


__all__ = ["estimate_table"]

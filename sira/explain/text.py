"""People's view of a ``sira explain`` document: :func:`explain_text`."""

from __future__ import annotations

from typing import Optional

from ..report import _hull_text, _param_text, format_table

#: channels the text lists before it summarizes the rest
TEXT_CHANNELS = 12

#: width of the label column of the text
LABEL = 27


def _kv(label: str, text: str, indent: str = "  ") -> str:
    return f"{indent}{label.ljust(LABEL)}{text}" if len(label) < LABEL else f"{indent}{label}  {text}"


def _range_lines(t: dict) -> list[str]:
    per = "" if t["granularity"] == "tensor" else (" per channel" if t["granularity"] == "channel" else " per element")
    status = "fallback (op without a rule)" if t["fallback"] else ("exact (bounds attained)" if t["exact"] else "sound (bounds may be loose)")
    out = [_kv("range", f"{_hull_text(t['min'], t['max'])}{per}, {status}")]
    if t["scaled_int"]:
        out.append(_kv("integers", f"{_hull_text(t['int_min'], t['int_max'])}, scale {_param_text(t['scale'])}, bias {_param_text(t['bias'])}"))
    else:
        out.append(_kv("integers", "none (no integer grid)"))
    out.append(_kv("datatype", t["datatype"]))
    return out


def _producer_line(p: dict) -> str:
    if p["op"] in ("input", "initializer"):
        return f"{p['op']} ({p['source']})"
    rule = p.get("rule")
    head = f"{p['node']} ({p['op']})"
    if rule is None:
        return f"{head}, no range rule"
    return f"{head}, rule {rule['exactness']}: {rule['summary']}"


def _channel_rows(m: dict) -> tuple[list[str], list[list[str]], tuple, list[int]]:
    chans = m["channels"]
    keep = {m["max_channel"], m["min_channel"], m["limiting_channel"]}
    order = sorted(range(len(chans)), key=lambda c: (-chans[c]["width"], -max(-chans[c]["interval"][0], chans[c]["interval"][1] + 1), c))
    for c in order:
        if len(keep) >= TEXT_CHANNELS:
            break
        keep.add(c)
    shown = sorted(keep) if len(chans) > TEXT_CHANNELS else list(range(len(chans)))
    has_sums = bool(chans) and "pos_sum" in chans[0]
    differs = has_sums and not m["tight_from_sums"]
    headers = ["channel"] + (["P", "N"] if has_sums else []) + (["bound from P, N"] if differs else []) + ["accumulator", "bits", ""]
    rows = []
    for c in shown:
        ch = chans[c]
        tags = [label for label, k in (("sets max", "max_channel"), ("sets min", "min_channel"), ("sets width", "limiting_channel")) if m[k] == c]
        row = [str(c)] + ([str(ch["pos_sum"]), str(ch["neg_sum"])] if has_sums else [])
        row += [f"[{ch['from_sums'][0]}, {ch['from_sums'][1]}]"] if differs else []
        row += [f"[{ch['interval'][0]}, {ch['interval'][1]}]", str(ch["width"]), ", ".join(tags)]
        rows.append(row)
    right = (0, 1, 2, len(headers) - 2) if has_sums else (0, len(headers) - 2)
    return headers, rows, right, shown


def _short(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _mac_text(m: dict) -> list[str]:
    lo, hi = m["input_interval"]
    chans = m["channels"]
    out = ["", f"why {m['dtype']}: {m['op']} layer {m['layer']} accumulates {m['K']} products per output"]
    out.append(_kv("K", f"{m['K']} terms per dot product"))
    spread = "for every term" if m["input_uniform"] else "hull; the bounds vary per input element"
    out.append(_kv("input integers", f"[{lo}, {hi}] {spread} ({m['input']}, datatype {m['input_dtype']} from {m['input_dtype_source']})"))
    out.append(_kv("weights", f"{m['weight_dtype']} integers ({m['weight']})"))
    has_sums = bool(chans) and "pos_sum" in chans[0]
    if has_sums:
        out.append(_kv("per output channel", "P = sum of positive weights, N = sum of negative weights,"))
        out.append(_kv("", f"accumulator [P*{lo} + N*{hi}, P*{hi} + N*{lo}]" + ("" if m["tight_from_sums"] else " or narrower (proven)")))
    headers, rows, right, shown = _channel_rows(m)
    out += ["    " + line for line in format_table(headers, rows, right=right).splitlines()]
    if len(shown) < len(chans):
        out.append(f"    ({len(chans) - len(shown)} more channels; --format json lists all {len(chans)})")
    if has_sums and not m["tight_from_sums"]:
        out.append("    the proven intervals are narrower than the P, N bound: the input's bounds vary per element "
                   "(per-channel input ranges, zero padding), so not every term reaches its extreme")  # fmt: skip
    a, b = m["interval"]
    out.append(_kv("layer accumulator", f"[{a}, {b}]: the maximum from channel {m['max_channel']}, the minimum from channel {m['min_channel']}"))
    out.append(_kv("width", m["formula"]))
    f = m["factors"]
    out += ["", "against bounds that know less:"]
    out.append(_kv("bits per factor", f"input {f['input_bits']} + weights {f['weight_bits']} + log2 K {_short(f['log2_K'])} = {_short(f['sum'])}"))
    out.append(_kv("A2Q datatype bound", f"{m['a2q']['dtype']}: {m['a2q']['formula']}"))
    out.append(_kv("FINN weight-aware", f"{m['finn']['dtype']} (inputs anywhere in {m['input_dtype']}): {m['finn']['formula']}"))
    out.append(_kv("sira (proven)", f"{m['dtype']}: {m['saved_vs_a2q']} bit(s) fewer than A2Q, {m['saved_vs_finn']} fewer than FINN"))
    out += ["", "what if (computed exactly):"]
    w1 = m["what_if"]["input_one_bit_less"]
    if w1["applicable"]:
        c0, c1 = w1["input_clip"]
        out.append(_kv("input one bit narrower", f"{w1['input_dtype']} (inputs clipped to [{c0}, {c1}]): accumulator "
                       f"[{w1['interval'][0]}, {w1['interval'][1]}], {w1['width']} bits ({w1['delta']:+d})"))  # fmt: skip
    else:
        out.append(_kv("input one bit narrower", f"not applicable: {w1['reason']}"))
    w2 = m["what_if"]["without_widest_channel"]
    if w2["applicable"]:
        out.append(_kv(f"without channel {w2['removed_channel']}", f"accumulator [{w2['interval'][0]}, {w2['interval'][1]}], "
                       f"{w2['width']} bits ({w2['delta']:+d}); channel {w2['next_limiting_channel']} then sets the width"))  # fmt: skip
    else:
        out.append(_kv("without the widest channel", f"not applicable: {w2['reason']}"))
    return out


def _thresholds_text(t: dict) -> list[str]:
    out = [""]
    if t.get("source") == "optimize":
        out.append(f"thresholds: sira optimize replaces quantizer {t['quantizer']} and the chain before it by "
                   f"{t.get('node') or 'a MultiThreshold'}")  # fmt: skip
        out.append(_kv("chain replaced", " -> ".join(f"{c['node']} ({c['op']})" for c in t["chain"])))
        out.append(_kv("as lowered", " -> ".join(t["lowered_chain"])))
    else:
        out.append(f"thresholds: MultiThreshold {t['node']}")
    rd = t.get("reads", {})
    what = f"{rd.get('tensor')}" + (f", output of {rd['node']} ({rd['op']})" if rd.get("node") else " (graph input)")
    if rd.get("via"):
        what += f" through {', '.join(rd['via'])}"
    if rd.get("integer_range") is not None:
        what += f"; integers [{rd['integer_range'][0]}, {rd['integer_range'][1]}]" + (f" ({rd['dtype']})" if rd.get("dtype") else "")
    out.append(_kv("reads", what))
    if "thresholds_per_channel" in t:
        act = t["active_per_channel"]
        rows = "one row per channel" if t["rows"] == t["channels"] and t["rows"] > 1 else "one row shared by all channels" if t["rows"] == 1 else f"{t['rows']} rows"
        out.append(_kv("thresholds", f"{t['thresholds_per_channel']} per channel x {t['channels']} channels ({rows})"))
        out.append(_kv("within the input's range", f"{min(act)}..{max(act)} per channel (the others are always or never reached)"))
        out.append(_kv("output", f"{t['out_dtype']}: value = {t['out_scale']:g} * (thresholds reached) + {t['out_bias']:g}"))
    if t.get("negated_channels"):
        out.append(_kv("decreasing channels", f"{', '.join(str(c) for c in t['negated_channels'])} (compared on the negated input)"))
    if t.get("stuck_channels"):
        out.append(_kv("constant channels", ", ".join(str(c) for c in t["stuck_channels"])))
    if t.get("verified"):
        out.append(_kv("checked", t["verified"]))
    out += _implementation_text(t.get("implementation"))
    return out


def _implementation_text(impl: Optional[dict]) -> list[str]:
    """Each exact implementation of the threshold layer, its cost and why
    the winner won."""
    if not impl:
        return []
    if not impl["available"]:
        return ["", f"implementation: thresholds only ({impl['reason']})"]
    out = ["", f"implementation of layer {impl['layer']} ({impl['kind']}) on {impl['part']}: {impl['chosen']} ({impl['reason']})"]
    for name, c in impl["candidates"].items():
        if not c["available"]:
            out.append(_kv(name, f"impossible: {c['why_not']}"))
            continue
        out.append(_kv(name, f"LUT {c['LUT']}, DSP {c['DSP']}, BRAM18 {c['BRAM_18K']}, URAM {c['URAM']}: {c['part_share']:.4g} of the part"))
    if impl.get("integer"):
        i = impl["integer"]
        out.append(_kv("integer form", f"clip((clamp(x, {i['active_range'][0]}, {i['active_range'][1]}) * m + b) >> {i['shift']}, 0, steps), "
                                       f"m in [{i['m_range'][0]}, {i['m_range'][1]}], b in [{i['b_range'][0]}, {i['b_range'][1]}], "
                                       f"{i['rows']} row(s), proven equal to the thresholds"))
    return out


def explain_text(doc: dict) -> str:
    """People's view of an :func:`explain` document."""
    t = doc["tensor"]
    res = doc["resolved"]
    prod = doc["producer"]
    if doc["kind"] == "mac":
        title = f"accumulator of {doc['mac']['layer']} ({doc['mac']['op']})"
    elif doc["kind"] == "thresholds":
        th = doc["thresholds"]
        title = f"thresholds of {th['node']}" if th.get("source") == "model" else f"becomes thresholds (quantizer {th['quantizer']})"
    elif doc["kind"] == "fallback":
        title = f"range from a fallback: {prod['op']} has no rule"
    else:
        title = "input" if prod["op"] == "input" else "constant" if prod["op"] == "initializer" else f"output of {prod['node']} ({prod['op']})"
    out = [f"{res['tensor']}: {title}"]
    if doc["name"] != res["tensor"]:
        out.append(_kv("asked for", f"{doc['name']} ({res['via']})"))
    out.append(_kv("shape", "x".join(str(d) for d in t["shape"]) or "scalar"))
    out += _range_lines(t)
    out.append(_kv("produced by", _producer_line(prod)))
    if doc["kind"] == "mac":
        out += _mac_text(doc["mac"])
    elif doc["kind"] == "thresholds":
        out += _thresholds_text(doc["thresholds"])
    elif doc["kind"] == "fallback":
        f = doc["fallback"]
        out += ["", f"fallback: {f['node']} ({f['op']}) has no range rule", _kv("warning", f["message"]), _kv("what it means", f["meaning"])]
    if doc.get("loose_because"):
        out.append("")
        out.append("not exact because (upstream, nearest first):")
        for o in doc["loose_because"]:
            where = f"{o['node']} ({o['op']})" if o["node"] else o["op"]
            out.append(_kv(o["tensor"], f"{where}: {o['why']}"))
    notes = list(dict.fromkeys(t.get("notes", []) + doc["notes"]))
    if notes:
        out.append("")
        out += [f"note: {n}" for n in notes]
    return "\n".join(out)


__all__ = ["explain_text"]

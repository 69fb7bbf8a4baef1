"""How the report prints values: numbers as the JSON files hold them (so
they parse back to the same value), changes in %, shapes, datatypes."""

from __future__ import annotations

import json
import math
from typing import Any, Optional

DASH = "\u2013"


def num(value: Any) -> str:
    """A JSON number as text that parses back to the same value: integers
    (and integral floats) as integers, other floats in shortest round-trip
    form; None as a dash, booleans as yes/no, other values as text."""
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
    return str(value)


def pct(value: Any) -> str:
    """A change in % with its sign ("+100%", "-71.66%"), or a dash."""
    if not is_number(value):
        return DASH
    return ("+" if value > 0 else "") + num(value) + "%"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def delta_class(value: Any) -> str:
    """A resource change is good when it shrinks, bad when it grows."""
    if not isinstance(value, (int, float)) or value == 0:
        return "same"
    return "good" if value < 0 else "bad"


def bits(value: Any) -> Optional[int]:
    """A bit count of a JSON document, or None when it has none."""
    return int(value) if is_number(value) else None


def shape_text(shape: Any) -> str:
    if not isinstance(shape, list):
        return DASH
    return "x".join(str(d) for d in shape) or "scalar"


def range_text(pair: list) -> str:
    if len(pair) != 2:
        return str(pair)
    return f"[{num(pair[0])}, {num(pair[1])}]"


def short_json(value: Any) -> str:
    """An option's value: numbers as :func:`num`, strings as they are,
    anything else as compact JSON."""
    if is_number(value):
        return num(value)
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def joined(values: Any) -> str:
    """Tensor names of a JSON list, comma-separated."""
    return ", ".join(map(str, values or []))


def flatten(v: Any) -> list:
    if isinstance(v, list):
        return [x for item in v for x in flatten(item)]
    return [v]


def mapping(doc: Any, key: str) -> dict:
    """``doc[key]`` when it is a JSON object, else an empty one: the report
    shows what a damaged or older file still has."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


__all__ = ["DASH", "num", "pct", "is_number", "delta_class", "bits", "shape_text", "range_text", "short_json", "joined", "flatten",
           "mapping"]

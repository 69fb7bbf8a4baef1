"""Input ranges: what values the model's inputs can take.

The analysis needs a range for every graph input. It comes, in order of
precedence, from

1. an explicit spec: ``--input-range LO,HI`` (all inputs) or a JSON file /
   dict (``--input-spec``) per input, optionally per channel and optionally
   with the integer grid the input lives on ("uint8 pixels times 1/255");
2. the input's ``finn_datatype`` annotation (e.g. ``UINT8``, ``BIPOLAR``);
3. otherwise a :class:`SiraError` that says how to give one.

User text is parsed as numbers and rationals only, never evaluated.

Spec format (JSON)::

    {"inputs": {
        "global_in": {"min": 0, "max": 1},
        "x":   {"min": [-1, -2, -3], "max": [1, 2, 3], "axis": 1},
        "img": {"datatype": "UINT8", "scale": "1/255"},
        "y":   {"int_min": -8, "int_max": 7, "scale": 0.25, "bias": 0}
    }}

The top-level ``"inputs"`` wrapper is optional; the key ``"*"`` applies to
every input not named explicitly.
"""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction
from typing import Any, Mapping, Optional, Union

import numpy as np

from .errors import SiraError
from .modelfile import regular_file
from .range import ScaledIntRange

SpecLike = Union[None, str, os.PathLike, Mapping[str, Any], tuple, list]

_GRID_KEYS = {"datatype", "int_min", "int_max", "scale", "bias"}
_REAL_KEYS = {"min", "max", "axis"}


def parse_number(text: Any, what: str) -> float:
    """A finite real number from JSON or CLI text: decimal, exponent, or a
    rational ``a/b``. Never evaluated as code."""
    if isinstance(text, bool):
        raise SiraError(f"{what}: expected a number, got {text!r}")
    try:
        if isinstance(text, (int, float)):
            v = float(text)
        elif isinstance(text, str):
            t = text.strip()
            v = float(Fraction(t)) if "/" in t else float(t)
        else:
            raise SiraError(f"{what}: expected a number, got {type(text).__name__}")
    except (ValueError, ZeroDivisionError):
        raise SiraError(f"{what}: {text!r} is not a number (use e.g. 0.5, -1e-3 or 1/255)") from None
    except OverflowError:
        raise SiraError(f"{what}: {str(text)[:40]}... is beyond the range of float64") from None
    if not math.isfinite(v):
        raise SiraError(f"{what}: {text!r} is not a finite number")
    return v


def parse_range_text(text: str) -> tuple[float, float]:
    """``"LO,HI"`` -> (lo, hi), as given to ``--input-range``."""
    parts = [p for p in str(text).replace(" ", "").split(",")]
    if len(parts) != 2 or not all(parts):
        raise SiraError(f"--input-range {text!r}: expected two numbers 'LO,HI', e.g. --input-range 0,1 or --input-range=-1,1")
    lo = parse_number(parts[0], "--input-range LO")
    hi = parse_number(parts[1], "--input-range HI")
    if lo > hi:
        raise SiraError(f"--input-range {text!r}: impossible range, LO ({lo}) is greater than HI ({hi})")
    return lo, hi


#: a spec names a few inputs; a larger file is not a spec
MAX_SPEC_BYTES = 1 << 20
#: the widest integer grid an input may live on: sira's hardware streams
#: are at most 64-bit integers
MAX_INPUT_BITS = 64
_EXAMPLE_SPEC = '{"inputs": {"x": {"min": 0, "max": 1}}}'


def _read_spec_file(path: str) -> Any:
    """The JSON of a spec file, refusing what is not a small regular file
    and JSON nested too deeply to be a spec."""
    st = regular_file(path, "input spec", f"give a JSON file like {_EXAMPLE_SPEC}")
    if st.st_size > MAX_SPEC_BYTES:
        raise SiraError(f"input spec '{path}' is {st.st_size} bytes, more than a spec ever needs ({MAX_SPEC_BYTES}); is it the right file?")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SiraError(f"input spec '{path}' is not valid JSON: {e}") from None
    except RecursionError:
        raise SiraError(f"input spec '{path}' is nested too deeply to be a spec; give a JSON file like {_EXAMPLE_SPEC}") from None
    except OSError as e:
        raise SiraError(f"input spec '{path}' cannot be read ({e.strerror})") from None


def _spec_integer(value: Any, what: str) -> int:
    """An exact integer of a spec within 64-bit range: 7, 7.0 or "7"; never
    truncated (0.5 is an error, not 0)."""
    if isinstance(value, bool):
        raise SiraError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            value = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise SiraError(f"{what}: {value!r} is not an integer") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise SiraError(f"{what}: {value!r} is not a finite integer")
    if not isinstance(value, (int, float, Fraction)) or value != int(value):
        raise SiraError(f"{what}: {value!r} is not an integer (an integer grid has integer bounds)")
    q = int(value)
    if not -(2 ** (MAX_INPUT_BITS - 1)) <= q < 2**MAX_INPUT_BITS:
        shown = str(q) if len(str(q)) <= 24 else f"{str(q)[:20]}... ({len(str(abs(q)))} digits)"
        raise SiraError(f"{what}: {shown} is beyond {MAX_INPUT_BITS}-bit integers; an input stream is at most {MAX_INPUT_BITS} bits wide")
    return q


def load_spec(spec: SpecLike) -> Optional[dict]:
    """Normalize any accepted spec form to ``{input name or '*': entry}``."""
    if spec is None:
        return None
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and not isinstance(spec[0], (dict, list, tuple)):
        return {"*": {"min": spec[0], "max": spec[1]}}
    if isinstance(spec, (str, os.PathLike)):
        spec = _read_spec_file(os.fspath(spec))
    if not isinstance(spec, Mapping):
        raise SiraError("input spec must be a JSON object mapping input names to ranges")
    if "inputs" in spec and isinstance(spec["inputs"], Mapping):
        spec = spec["inputs"]
    out = {}
    for name, entry in spec.items():
        if not isinstance(entry, Mapping):
            raise SiraError(f"input spec for '{name}' must be an object with 'min'/'max' or a grid ('datatype'/'int_min'/'int_max' with 'scale')")
        unknown = set(entry) - _GRID_KEYS - _REAL_KEYS
        if unknown:
            raise SiraError(f"input spec for '{name}': unknown key(s) {sorted(unknown)}; allowed: {sorted(_GRID_KEYS | _REAL_KEYS)}")
        out[str(name)] = dict(entry)
    return out


def _channel_array(values, what: str, shape: tuple, axis: Optional[int]) -> np.ndarray:
    """A scalar, or a per-channel list laid along ``axis`` of ``shape``."""
    if isinstance(values, (list, tuple)):
        arr = np.array([parse_number(v, what) for v in values], dtype=np.float64)
        if axis is None:
            axis = 1 if len(shape) > 1 else 0
        if not shape:
            raise SiraError(f"{what}: a per-channel list needs a tensor with at least one axis")
        if not -len(shape) <= axis < len(shape):
            raise SiraError(f"{what}: axis {axis} does not exist: the input has {len(shape)} axes ({list(shape)})")
        ax = axis % len(shape)
        if arr.size != shape[ax] and arr.size != 1:
            raise SiraError(f"{what}: {arr.size} values given but axis {ax} of the input has {shape[ax]} entries")
        target = [1] * len(shape)
        target[ax] = arr.size
        return arr.reshape(target)
    return np.array(parse_number(values, what), dtype=np.float64)


def range_from_entry(name: str, entry: dict, shape: tuple, source: str) -> ScaledIntRange:
    """Build the range of input ``name`` from one spec entry."""
    from qonnx.core.datatype import DataType

    axis = entry.get("axis")
    if axis is not None and (not isinstance(axis, int) or isinstance(axis, bool)):
        raise SiraError(f"input spec for '{name}': 'axis' must be an integer")
    grid = _GRID_KEYS & set(entry)
    if grid:
        if "datatype" in entry:
            try:
                dt = DataType[str(entry["datatype"]).upper()]
            except (KeyError, ValueError, TypeError, AttributeError):
                raise SiraError(f"input spec for '{name}': unknown datatype {entry['datatype']!r} (use e.g. UINT8, INT4, BIPOLAR)") from None
            if dt.bitwidth() < 1:
                raise SiraError(f"input spec for '{name}': datatype {dt.name} has no bits; use e.g. UINT8, INT4, BIPOLAR")
            if not dt.is_integer():
                raise SiraError(f"input spec for '{name}': datatype {dt.name} is not an integer type; give 'min'/'max' instead")
            if dt.bitwidth() > MAX_INPUT_BITS:
                raise SiraError(f"input spec for '{name}': datatype {dt.name} is wider than {MAX_INPUT_BITS} bits; "
                                "an input stream is at most 64 bits wide")  # fmt: skip
            qlo, qhi = int(dt.min()), int(dt.max())
        else:
            qlo, qhi = None, None
        if "int_min" in entry or "int_max" in entry:
            if "int_min" not in entry or "int_max" not in entry:
                raise SiraError(f"input spec for '{name}': give both 'int_min' and 'int_max'")
            qlo = _spec_integer(entry["int_min"], f"input spec for '{name}': 'int_min'")
            qhi = _spec_integer(entry["int_max"], f"input spec for '{name}': 'int_max'")
        if qlo is None:
            raise SiraError(f"input spec for '{name}': a grid needs 'datatype' or 'int_min'/'int_max'")
        if qlo > qhi:
            raise SiraError(f"input spec for '{name}': impossible integer range [{qlo}, {qhi}]")
        scale = _channel_array(entry.get("scale", 1), f"input '{name}' scale", shape, axis)
        bias = _channel_array(entry.get("bias", 0), f"input '{name}' bias", shape, axis)
        if np.any(scale == 0):
            raise SiraError(f"input spec for '{name}': scale must not be zero")
        r = ScaledIntRange.scaled(shape, qlo, qhi, scale, bias, scale_sources=frozenset({name}) if np.any(scale != 1) else frozenset(), bias_sources=frozenset({name}) if np.any(bias != 0) else frozenset())
        if "min" in entry or "max" in entry:
            r = r.clip_real(
                _channel_array(entry.get("min", -np.inf), f"input '{name}' min", shape, axis) if "min" in entry else -np.inf,
                _channel_array(entry.get("max", np.inf), f"input '{name}' max", shape, axis) if "max" in entry else np.inf,
            )
        return r.with_note(f"input range from {source}")
    if "min" not in entry or "max" not in entry:
        raise SiraError(f"input spec for '{name}': give both 'min' and 'max' (or an integer grid with 'datatype' and 'scale')")
    lo = _channel_array(entry["min"], f"input '{name}' min", shape, axis)
    hi = _channel_array(entry["max"], f"input '{name}' max", shape, axis)
    if np.any(lo > hi):
        raise SiraError(f"input spec for '{name}': impossible range, a minimum exceeds its maximum")
    return ScaledIntRange.real(shape, lo, hi, notes=(f"input range from {source}",))


def range_from_datatype(name: str, dtype_name: str, shape: tuple) -> Optional[ScaledIntRange]:
    """Range implied by a ``finn_datatype`` annotation, or None for floats."""
    from qonnx.core.datatype import DataType

    dt = DataType[dtype_name]
    if not dt.is_integer():
        return None
    note = (f"input range from its datatype annotation {dt.name}",)
    if dt.name == "BIPOLAR":
        return ScaledIntRange.scaled(shape, 0, 1, 2.0, -1.0, notes=note)
    return ScaledIntRange.scaled(shape, int(dt.min()), int(dt.max()), 1.0, 0.0, notes=note)


def resolve_inputs(
    inputs: list[tuple[str, tuple, Optional[str]]],
    spec: SpecLike,
    aliases: Optional[Mapping[str, str]] = None,
) -> dict[str, ScaledIntRange]:
    """Ranges for every graph input.

    ``inputs`` lists (name, shape, finn_datatype or None) per graph input;
    ``aliases`` maps other accepted names (e.g. the names before cleanup) to
    graph input names.
    """
    entries = load_spec(spec) or {}
    aliases = dict(aliases or {})
    names = [n for n, _, _ in inputs]
    named: dict[str, dict] = {}
    for key, entry in entries.items():
        if key == "*":
            continue
        target = key if key in names else aliases.get(key)
        if target is None:
            raise SiraError(f"input spec names '{key}', which is not an input of the model; inputs are: {', '.join(names)}")
        named[target] = entry
    source = "the input spec" if not (isinstance(spec, (tuple, list))) else "--input-range"
    out = {}
    for name, shape, dtype_name in inputs:
        if name in named:
            out[name] = range_from_entry(name, named[name], shape, source)
        elif "*" in entries:
            out[name] = range_from_entry(name, entries["*"], shape, source)
        elif dtype_name and range_from_datatype(name, dtype_name, shape) is not None:
            out[name] = range_from_datatype(name, dtype_name, shape)
        else:
            raise SiraError(
                f"no range for input '{name}' (shape {list(shape)}, datatype {dtype_name or 'FLOAT32'}): "
                f"give one with --input-range LO,HI (e.g. --input-range 0,1) or --input-spec spec.json, "
                f"or annotate the input with an integer finn_datatype"
            )
    return out

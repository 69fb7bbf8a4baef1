"""Safe names for generated code: every C++ identifier and file name of an
HLS project comes from here, never from a raw ONNX string.

A tensor or node name may hold anything (quotes, slashes, ``..``, spaces,
non-ASCII, C++ keywords); :class:`Namer` maps each to a unique identifier
made of ``[a-z0-9_]`` that starts with a letter, is at most
:data:`MAX_LENGTH` characters long, is no C++ keyword and no name the
generated code itself uses, and is also a safe file name on every OS.
"""

from __future__ import annotations

import re

MAX_LENGTH = 40

#: C++ keywords and names the generated code declares itself
RESERVED = frozenset(
    """
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t class compl
    const constexpr const_cast continue decltype default delete do double dynamic_cast else enum explicit export
    extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq nullptr
    operator or or_eq private protected public register reinterpret_cast return short signed sizeof static
    static_assert static_cast struct switch template this thread_local throw true try typedef typeid typename
    union unsigned using virtual void volatile wchar_t while xor xor_eq main std hls sira top con nul aux prn
    """.split()
)


class Namer:
    """Unique sanitized identifiers; the same raw name always gets the same
    identifier from one Namer."""

    def __init__(self) -> None:
        self._by_raw: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, raw: str, prefix: str = "") -> str:
        key = f"{prefix}\0{raw}"
        if key in self._by_raw:
            return self._by_raw[key]
        base = re.sub(r"[^a-z0-9]+", "_", f"{prefix}{raw}".lower()).strip("_") or "unnamed"
        if not base[0].isalpha():
            base = "n_" + base
        base = base[:MAX_LENGTH].rstrip("_")
        name, k = base, 1
        while name in self._taken or name in RESERVED or re.fullmatch(r"com\d|lpt\d", name):
            k += 1
            name = f"{base[: MAX_LENGTH - len(str(k)) - 1]}_{k}"
        self._taken.add(name)
        self._by_raw[key] = name
        return name


__all__ = ["Namer", "MAX_LENGTH", "RESERVED"]

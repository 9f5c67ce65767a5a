"""Unique names for the values, nodes and layers that import and export create."""
from __future__ import annotations


def unique(base: str, taken: set, first: int = 2) -> str:
    """``base``, or ``base_<first>``, ``base_<first + 1>``, ...: the first not in ``taken``
    (which it joins)."""
    name, k = base, first - 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name

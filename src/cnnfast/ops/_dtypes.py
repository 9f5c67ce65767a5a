"""Dtype names and Keras 3's type promotion, for the NumPy functions of ``cnnfast.ops``.

Keras 3 promotes types on a lattice adapted from JAX (``keras/src/backend/common/dtypes.py``),
not with NumPy's rules, and Python scalars are *weak*: they take the type of the array they meet.

    int8 array + 1          -> int8        (a Python int adapts to the array)
    int8 array + 1.5        -> float32     (a weak float over an integer gives the float default)
    uint8 array + int8      -> int16
    int32 array + float16   -> float16
    Python ints / floats    -> int32 / float32 (``convert_to_tensor(3)`` is int32)

One deliberate difference: Keras's ``result_type`` then narrows 64-bit results to 32 bits (JAX
without x64), but its torch backend keeps them (``ops.add`` of two float64 arrays is float64 there).
cnnfast keeps them too: a 64-bit result comes only from a 64-bit input, never from defaults.

The float default is :data:`FLOATX`, ``"float32"`` (Keras's ``keras.config.floatx()`` default).
bfloat16 and float8 have no NumPy dtype and are refused.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = []  # helpers for the other modules of cnnfast.ops, not part of the public API

FLOATX = "float32"
DEFAULT_INT = "int32"

INT_TYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
FLOAT_TYPES = ("float16", "float32", "float64")
COMPLEX_TYPES = ("complex64", "complex128")
ALLOWED_DTYPES = ("bool",) + INT_TYPES + FLOAT_TYPES + COMPLEX_TYPES

# Each type -> the types immediately above it. "int" and "float" are the weak (Python) types.
_LATTICE = {
    "bool": ("int",),
    "int": ("uint8", "int8", "complex64"),
    "uint8": ("int16", "uint16"),
    "uint16": ("int32", "uint32"),
    "uint32": ("int64", "uint64"),
    "uint64": ("float",),
    "int8": ("int16",),
    "int16": ("int32",),
    "int32": ("int64",),
    "int64": ("float",),
    "float": ("float16",),
    "float16": ("float32",),
    "float32": ("float64", "complex64"),
    "float64": ("complex128",),
    "complex64": ("complex128",),
    "complex128": (),
}


def _upper_bounds() -> dict:
    bounds = {}
    for node in _LATTICE:
        seen, todo = {node}, [node]
        while todo:
            for up in _LATTICE[todo.pop()]:
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        bounds[node] = frozenset(seen)
    return bounds


_UPPER_BOUNDS = _upper_bounds()


# Names, NumPy dtypes and NumPy scalar types of the allowed dtypes, for the common cases
_KNOWN = {**{n: n for n in ALLOWED_DTYPES}, **{np.dtype(n): n for n in ALLOWED_DTYPES},
          **{np.dtype(n).type: n for n in ALLOWED_DTYPES}}


def standardize_dtype(dtype, op: str = "dtype") -> str:
    """A dtype-like (string, NumPy dtype or type, Python type, torch dtype) as a Keras dtype name;
    ``None`` is :data:`FLOATX`."""
    if dtype is None:
        return FLOATX
    try:
        return _KNOWN[dtype]
    except (KeyError, TypeError):  # TypeError: unhashable
        pass
    python_types = {bool: "bool", int: DEFAULT_INT, float: FLOATX, "int": DEFAULT_INT, "float": FLOATX}
    if isinstance(dtype, (type, str)) and dtype in python_types:
        return python_types[dtype]
    if hasattr(dtype, "name") and not isinstance(dtype, str):
        name = dtype.name
    elif isinstance(dtype, type) and hasattr(dtype, "__name__"):
        name = dtype.__name__
    elif "torch." in str(dtype):
        name = str(dtype).split(".")[-1]
    else:
        name = dtype
    if name == "bool_":
        name = "bool"
    if not isinstance(name, str) or name not in ALLOWED_DTYPES:
        raise ValueError(f"{op}: dtype must be one of {list(ALLOWED_DTYPES)} (NumPy has no bfloat16 "
                         f"or float8), got {dtype!r}")
    return name


def _kind(name: str) -> str:
    return "bool" if name == "bool" else name.rstrip("0123456789")  # int, uint, float, complex


@functools.lru_cache(maxsize=1024)
def _promote(nodes: tuple) -> str:
    """The least upper bound of ``nodes`` (strong dtype names and the weak "int"/"float")."""
    common = frozenset.intersection(*(_UPPER_BOUNDS[n] for n in nodes))
    least = [c for c in common if common <= _UPPER_BOUNDS[c]]
    if len(least) != 1:
        raise TypeError(f"no implicit promotion between dtypes {sorted(set(nodes))}; cast explicitly")
    return least[0]


def result_type(*items) -> str:
    """Keras's result dtype of combining ``items``: dtype-likes are strong, the Python types ``int``
    and ``float`` are weak (``result_type("int8", int) == "int8"``, ``result_type("int8", float) ==
    "float32"``). With no items, :data:`FLOATX`."""
    if not items:
        return FLOATX
    nodes = []
    for item in items:
        if item is int or item is float:
            nodes.append(item.__name__)
        else:
            nodes.append(standardize_dtype(item, "result_type"))
    out = _promote(tuple(nodes))
    if out == "int":
        return DEFAULT_INT
    if out == "float":
        return FLOATX
    return out


def dtype_of(x):
    """The dtype ``x`` brings to promotion: its array dtype, or the weak ``int``/``float`` for a
    Python number (``bool`` is strong, as in Keras)."""
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return int
    if isinstance(x, float):
        return float
    if isinstance(x, complex):
        return "complex64"
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return standardize_dtype(dtype)
    return standardize_dtype(np.asarray(x).dtype)


def is_float(name: str) -> bool:
    return _kind(name) == "float"


def is_int(name: str) -> bool:
    return _kind(name) in ("int", "uint")


def float_result(name: str) -> str:
    """The dtype of a floating function (``sqrt``, ``exp``, ``mean``...) of a ``name`` array:
    floats keep their type, everything else gives :data:`FLOATX`."""
    return name if _kind(name) in ("float", "complex") else FLOATX


def widened_for_sum(name: str) -> str:
    """The dtype of ``sum``/``prod``: bool, int8 and int16 accumulate in int32, uint8 and uint16 in
    uint32; other types are kept."""
    if name in ("bool", "int8", "int16"):
        return "int32"
    if name in ("uint8", "uint16"):
        return "uint32"
    return name

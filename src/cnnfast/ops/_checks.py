"""Argument checking shared by every op in cnnfast.ops.

Every array goes through these before a kernel sees it, so the C layer can trust its inputs.
Policy (documented in the README):
  * inputs: any real numeric array-like is accepted and converted to C-contiguous float32
    (float64 from ``x / 255`` is the common case); a non-contiguous view is copied. bool,
    complex, object and string arrays are refused with a TypeError;
  * ``out=`` arrays are never converted: they must be float32, C-contiguous, writeable, of the
    exact shape, and must not overlap any input — otherwise a ValueError/TypeError;
  * sizes whose element count would overflow int64 or exceed memory raise before allocating.
Every message names the op and the argument, and says what was expected and what was given.
"""
from __future__ import annotations

import math
import operator
from typing import Sequence

import numpy as np

_MAX_ELEMENTS = 2**62 // 4  # float32 bytes must fit comfortably in int64
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def as_float32(x, op: str, name: str, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 ndarray, or raise naming ``op`` and ``name``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{op}: {name} must be a real numeric array (float32 preferred), "
                        f"got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{op}: {name} must be {want}, got {arr.ndim}-D array of shape {arr.shape}")
    try:
        return np.asarray(arr, dtype=np.float32, order="C")  # keeps 0-D arrays 0-D
    except MemoryError:
        raise MemoryError(f"{op}: not enough memory to convert {name} of shape {arr.shape} (dtype {arr.dtype}) "
                          f"to a C-contiguous float32 array of {human_bytes(4 * arr.size)}") from None


def human_bytes(n: int) -> str:
    """``n`` bytes for a message: ``"4.0 TiB"``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.0f} {units[i]}" if i == 0 else f"{n:.1f} {units[i]}"


def empty(shape: tuple, op: str, dtype=np.float32) -> np.ndarray:
    """``np.empty`` after :func:`check_size`, with a MemoryError that names ``op`` and the size."""
    shape = check_size(tuple(int(s) for s in shape), op)
    try:
        return np.empty(shape, dtype=dtype)
    except MemoryError:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        raise MemoryError(f"{op}: not enough memory for an output of shape {shape} "
                          f"({human_bytes(nbytes)})") from None


_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def check_int32_range(arr: np.ndarray, op: str, name: str) -> None:
    """Refuse integer-valued entries outside int32 BEFORE any cast could wrap them."""
    if arr.size == 0:
        return
    lo, hi = arr.min(), arr.max()
    for v in (lo, hi):
        if not _INT32_MIN <= int(v) <= _INT32_MAX:
            raise ValueError(f"{op}: {name} holds {int(v)}, outside the int32 range "
                             f"[{_INT32_MIN}, {_INT32_MAX}] of valid indices")


def as_labels(y, op: str, name: str = "labels") -> np.ndarray:
    """Integer class labels as a C-contiguous int32 array."""
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{op}: {name} must hold whole class indices, got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integer class indices, got dtype {arr.dtype}")
    check_int32_range(arr, op, name)
    return np.ascontiguousarray(arr, dtype=np.int32)


def check_out(out, shape: tuple, op: str, inputs: Sequence[np.ndarray] = (), name: str = "out",
              allow_exact_alias: bool = False) -> np.ndarray:
    """Validate an ``out=`` array (never converted), or allocate one when ``out`` is None.
    ``allow_exact_alias``: ``out`` may be exactly an input (element-wise kernels run in place),
    never a partial overlap."""
    shape = tuple(int(s) for s in shape)
    if out is None:
        return empty(shape, op)
    if type(out) is not np.ndarray:  # subclasses (np.matrix, masked arrays) change indexing rules
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"{op}: {name} must have dtype float32, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only")
    for arr in inputs:
        if arr is not None and out.size and np.may_share_memory(out, arr):
            if allow_exact_alias and arr.flags.c_contiguous and arr.shape == out.shape and \
                    arr.ctypes.data == out.ctypes.data:
                continue
            raise ValueError(f"{op}: {name} overlaps an input array; pass a separate buffer")
    return out


def check_state(arr, op: str, name: str, shape: tuple | None, others=(), writeable: bool = True) -> np.ndarray:
    """An array updated in place: never converted, so it must already be exactly right
    (float32, C-contiguous, writeable, of `shape` unless None, not overlapping `others`)."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray (it is updated in place), got {type(arr).__name__}")
    if arr.dtype != np.float32:
        raise TypeError(f"{op}: {name} must have dtype float32 (it is updated in place, never converted), "
                        f"got {arr.dtype}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (it is updated in place)")
    if writeable and not arr.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only but is updated in place")
    for other_name, other in others:
        if other is not None and arr.size and np.may_share_memory(arr, other):
            raise ValueError(f"{op}: {name} overlaps {other_name}; pass separate arrays")
    return arr


def check_size(shape: tuple, op: str) -> tuple:
    """Refuse shapes whose element count overflows or is absurd, before anything is allocated."""
    total = 1
    for s in shape:
        if s < 0:
            raise ValueError(f"{op}: negative dimension in shape {shape}")
        total *= s
    if total > _MAX_ELEMENTS:
        raise MemoryError(f"{op}: an array of shape {shape} ({total} elements) is too large")
    return shape


def as_int(value, op: str, name: str, minimum: int | None = None, maximum: int = _INT64_MAX) -> int:
    """An integer argument (bool refused), at least ``minimum`` and at most ``maximum`` (by default
    the int64 range the kernels take: larger Python ints are refused here, naming the op)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an integer, got {value!r}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    if v > maximum or v < _INT64_MIN:  # refused before Cython's anonymous OverflowError
        limit = "fit in a signed 64-bit integer" if maximum == _INT64_MAX else f"be <= {maximum}"
        raise ValueError(f"{op}: {name} must {limit}, got {v}")
    return v


def as_pair(value, op: str, name: str, minimum: int | None = None) -> tuple[int, int]:
    """An int or a pair of ints, as a pair (Keras accepts both for kernel_size, strides, ...)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
        return (as_int(value[0], op, name, minimum), as_int(value[1], op, name, minimum))
    v = as_int(value, op, name, minimum)
    return (v, v)


def as_float(value, op: str, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}") from None
    except OverflowError:  # an int too large for a double
        raise ValueError(f"{op}: {name} must be finite, got an integer of {int(value).bit_length()} bits") from None
    if not np.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {v}")
    return v


def check_choice(value, choices: Sequence[str], op: str, name: str) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise ValueError(f"{op}: {name} must be one of {list(choices)}, got {value!r}")
    return value.lower()


def check_finite(arr: np.ndarray, op: str, name: str) -> None:
    """Optional NaN/Inf check (used where a NaN would silently poison a result)."""
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{op}: {name} contains NaN or Inf")

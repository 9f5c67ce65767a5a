"""Argument handling shared by the Keras-shaped NumPy functions of ``cnnfast.ops``.

* :func:`as_array` is Keras's ``convert_to_tensor``: NumPy arrays keep their dtype, Python numbers
  and lists take Keras's defaults (int32, float32, bool);
* :func:`promote` converts several operands to their common Keras dtype (weak Python scalars);
* :func:`keras_op` makes every error an op raises start with the op's name, so a NumPy message
  (``axis 3 is out of bounds for array of dimension 2``) still says which call failed, and
  silences NumPy's floating-point warnings: ``log(0)`` is ``-inf`` and ``0 / 0`` NaN without a
  RuntimeWarning, as in Keras's backends;
* :func:`axis_arg` checks an ``axis`` argument (None, an int or a sequence of ints).
"""
from __future__ import annotations

import functools
import operator

import numpy as np

from . import _dtypes

__all__ = []  # helpers for the other modules of cnnfast.ops, not part of the public API

_PYTHON_SCALARS = (bool, int, float, complex)
_AXIS_ERROR = getattr(np, "exceptions", np).AxisError


def keras_op(fn):
    """Decorator: errors raised inside ``fn`` are re-raised with ``"<name>: "`` in front (once)."""
    name = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # IEEE results, quietly
                return fn(*args, **kwargs)
        except (ValueError, TypeError, IndexError, OverflowError) as e:
            message = str(e)
            if message.split(" ", 1)[0].endswith(":"):
                raise  # already names an op (this one, or a kernel op called inside)
            kind = ValueError if isinstance(e, _AXIS_ERROR) else type(e)
            try:
                new = kind(f"{name}: {message}")
            except TypeError:  # an exception type with a special constructor
                new = ValueError(f"{name}: {message}")
            raise new from e
    return wrapper


def _leaves(x, out: list) -> None:
    """The leaves of nested lists/tuples (arrays and scalars are leaves)."""
    if isinstance(x, (list, tuple)):
        for item in x:
            _leaves(item, out)
    else:
        out.append(x)


def python_dtype(x) -> str:
    """Keras's dtype for a Python number or a (nested) list/tuple of numbers and arrays."""
    leaves: list = []
    _leaves(x, leaves)
    if not leaves:
        return _dtypes.FLOATX
    kinds = {_dtypes.dtype_of(leaf) for leaf in leaves}
    return _dtypes.result_type(*kinds)


def _fits(arr: np.ndarray, dtype: str) -> bool:
    info = np.iinfo(dtype)
    return arr.size == 0 or (int(arr.min()) >= info.min and int(arr.max()) <= info.max)


def as_array(x, dtype=None, name: str = "x") -> np.ndarray:
    """``x`` as an ndarray with Keras's dtype rules (see the module docstring); no copy when ``x``
    is already an ndarray of the requested dtype."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "biufc" and (dtype is None or x.dtype == np.dtype(dtype)):
        return x
    if dtype is not None:
        dtype = _dtypes.standardize_dtype(dtype)
    if isinstance(x, (np.ndarray, np.generic)) or (hasattr(x, "__array__") and not isinstance(x, (list, tuple))):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be a numeric or boolean array, got dtype {arr.dtype}")
        return arr if dtype is None else arr.astype(dtype)
    if isinstance(x, _PYTHON_SCALARS) or isinstance(x, (list, tuple)):
        target = dtype or python_dtype(x)
        arr = np.asarray(x)
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{name} must be numbers or nested lists of numbers of one shape, "
                            f"got {type(x).__name__} converting to dtype {arr.dtype}")
        if _dtypes.is_int(target) and arr.dtype.kind in "iu" and not _fits(arr, target):
            hint = "" if dtype else " (Python ints default to int32); pass dtype='int64'"
            raise ValueError(f"{name} holds integers outside the {target} range{hint}")
        return arr.astype(target, copy=False)
    raise TypeError(f"{name} must be an array, a number or a list of numbers, got {type(x).__name__}")


def promote(*xs, extra=()) -> tuple:
    """The operands as arrays of their common Keras dtype (Python scalars are weak), followed by
    that dtype. ``extra`` adds dtypes to the promotion (``float`` for true division)."""
    kinds = []
    arrays = []
    for x in xs:
        if isinstance(x, _PYTHON_SCALARS):
            kinds.append(_dtypes.dtype_of(x))
            arrays.append(x)
        else:
            arr = as_array(x)
            kinds.append(_dtypes.standardize_dtype(arr.dtype))
            arrays.append(arr)
    dtype = _dtypes.result_type(*kinds, *extra)
    converted = tuple(np.asarray(a, dtype=dtype) for a in arrays)
    return converted + (dtype,)


def axis_arg(axis, ndim: int, allow_none: bool = True):
    """``axis`` checked against ``ndim``: None (if allowed), an int, or a tuple of distinct ints."""
    if axis is None:
        if not allow_none:
            raise TypeError("axis must be an integer, got None")
        return None
    if isinstance(axis, (list, tuple)):
        axes = tuple(axis_arg(a, ndim, allow_none=False) for a in axis)
        if len(set(a % max(ndim, 1) for a in axes)) != len(axes):
            raise ValueError(f"axis {tuple(axis)} repeats an axis")
        return axes
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer or a tuple of integers, got {axis!r}")
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer or a tuple of integers, got {axis!r}") from None
    if not -max(ndim, 1) <= a < max(ndim, 1):
        raise ValueError(f"axis {a} is out of range for an array of {ndim} dimension(s)")
    return a


def shape_arg(shape, name: str = "shape") -> tuple:
    """A shape (an int or a sequence of non-negative ints) as a tuple of ints."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints (or one int), got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} must not have negative dimensions, got {dims}")
    return dims


def as_output(value) -> np.ndarray:
    """NumPy reductions return scalars; every op here returns an ndarray (0-D for a scalar)."""
    return value if isinstance(value, np.ndarray) else np.asarray(value)

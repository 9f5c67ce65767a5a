"""Keras 3's core ops (``keras.ops.core``) on NumPy arrays: conversion, dtypes, shapes, slicing,
scattering and the eager forms of the control-flow ops.

Arrays are the tensors here: ``convert_to_tensor`` returns an ``np.ndarray`` and
``convert_to_numpy`` returns its argument as one (without a copy when it already is one, as Keras's
torch backend does for CPU tensors). There is no gradient tape, so ``stop_gradient`` is the identity.
"""
from __future__ import annotations

import numpy as np

from . import _dtypes
from ._keras_args import as_array, axis_arg, keras_op, shape_arg

__all__ = ["convert_to_tensor", "convert_to_numpy", "is_tensor", "shape", "dtype", "cast",
           "saturate_cast", "stop_gradient", "unstack", "slice", "slice_update", "scatter",
           "scatter_update", "cond", "fori_loop", "while_loop", "map"]

_builtin_slice = slice
_builtin_map = map


@keras_op
def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    """``x`` as an ndarray. Arrays keep their dtype unless ``dtype`` is given; Python numbers and
    lists take Keras's defaults: ints int32, floats float32 (``[1, 2.5]`` is float32)."""
    if sparse:
        raise ValueError("sparse=True is not supported: cnnfast works on dense NumPy arrays")
    if ragged:
        raise ValueError("ragged=True is not supported: cnnfast works on dense NumPy arrays")
    return as_array(x, dtype)


@keras_op
def convert_to_numpy(x):
    """``x`` as a NumPy array (the same object when it already is one)."""
    return as_array(x)


def is_tensor(x) -> bool:
    """True for a NumPy array or scalar, the tensors of cnnfast.ops."""
    return isinstance(x, (np.ndarray, np.generic))


@keras_op
def shape(x) -> tuple:
    """The shape of ``x`` as a tuple of ints."""
    return tuple(int(d) for d in np.shape(x))


@keras_op
def dtype(x) -> str:
    """The Keras name of ``x``'s dtype (``"float32"``, ``"int32"``...)."""
    return _dtypes.standardize_dtype(as_array(x).dtype)


@keras_op
def cast(x, dtype):
    """``x`` converted to ``dtype`` (floats to ints truncate toward zero, as NumPy's ``astype``)."""
    return as_array(x).astype(_dtypes.standardize_dtype(dtype, "cast"))


@keras_op
def saturate_cast(x, dtype):
    """``cast`` that clips values to the range of an integer ``dtype`` first, so out-of-range values
    saturate instead of wrapping (``saturate_cast(300.0, "uint8") == 255``)."""
    target = _dtypes.standardize_dtype(dtype, "saturate_cast")
    x = as_array(x)
    if _dtypes.is_int(target) and x.dtype.kind == "f":
        info = np.iinfo(target)
        hi = float(info.max)
        if int(hi) > info.max:  # int64/uint64 limits are not floats: take the float just below
            hi = float(np.nextafter(hi, 0.0))
        x = np.clip(np.nan_to_num(x.astype(np.float64), nan=0.0), float(info.min), hi)
    elif _dtypes.is_int(target) and x.dtype.kind in "iu":
        info, source = np.iinfo(target), np.iinfo(x.dtype)
        lo, hi = max(info.min, source.min), min(info.max, source.max)
        x = np.clip(x, x.dtype.type(lo), x.dtype.type(hi))
    elif _dtypes.is_float(target) and x.dtype.kind == "f":
        info = np.finfo(target)
        x = np.clip(x, info.min, info.max)
    return x.astype(target)


def stop_gradient(variable):
    """``variable`` itself: NumPy arrays carry no gradient tape."""
    return variable


@keras_op
def unstack(x, num=None, axis=0):
    """The slices of ``x`` along ``axis``, as a list (``num`` is checked when given)."""
    x = as_array(x)
    ax = axis_arg(axis, x.ndim, allow_none=False)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    if num is not None and num != x.shape[ax]:
        raise ValueError(f"num={num} differs from x.shape[{axis}] = {x.shape[ax]}")
    moved = np.moveaxis(x, ax, 0)
    return [moved[i] for i in range(moved.shape[0])]


def _start_indices(start_indices, ndim: int, op_shape: tuple) -> tuple:
    starts = tuple(int(s) for s in np.asarray(start_indices).reshape(-1))
    if len(starts) != ndim:
        raise ValueError(f"start_indices needs {ndim} entries (one per dimension), got {len(starts)}")
    if len(op_shape) != ndim:
        raise ValueError(f"the slice shape needs {ndim} entries (one per dimension), got {len(op_shape)}")
    return starts


def _window(inputs_shape: tuple, starts: tuple, sizes: tuple) -> tuple:
    """The index of the window ``starts : starts + sizes``, which must lie inside the array."""
    index = []
    for axis, (n, s, k) in enumerate(zip(inputs_shape, starts, sizes)):
        if s < 0 or s + k > n:
            raise ValueError(f"the window [{s}, {s + k}) on axis {axis} is outside the dimension of size {n}")
        index.append(_builtin_slice(s, s + k))
    return tuple(index)


@keras_op
def slice(inputs, start_indices, shape):
    """The block of ``inputs`` of size ``shape`` starting at ``start_indices`` (a copy)."""
    inputs = as_array(inputs)
    sizes = shape_arg(shape)
    starts = _start_indices(start_indices, inputs.ndim, sizes)
    return inputs[_window(inputs.shape, starts, sizes)].copy()


@keras_op
def slice_update(inputs, start_indices, updates):
    """A copy of ``inputs`` with the block at ``start_indices`` replaced by ``updates``."""
    inputs = as_array(inputs)
    updates = as_array(updates)
    starts = _start_indices(start_indices, inputs.ndim, updates.shape)
    out = inputs.copy()
    out[_window(inputs.shape, starts, updates.shape)] = updates
    return out


def _index_tuple(indices: np.ndarray, ndim: int) -> tuple:
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {indices.dtype}")
    if indices.ndim == 0 or indices.shape[-1] > ndim:
        raise ValueError(f"indices must have shape (..., k) with k <= {ndim}, got {indices.shape}")
    flat = indices.reshape(-1, indices.shape[-1])
    return tuple(flat.T)


@keras_op
def scatter(indices, values, shape):
    """A zero array of ``shape`` with ``values`` added at ``indices`` (shape ``(..., k)``: the first
    k coordinates); repeated indices accumulate."""
    dims = shape_arg(shape)
    indices = as_array(indices)
    values = as_array(values)
    out = np.zeros(dims, dtype=values.dtype)
    index = _index_tuple(indices, len(dims))
    np.add.at(out, index, values.reshape((-1,) + dims[indices.shape[-1]:]))
    return out


_REDUCTIONS = {"add": np.add, "max": np.maximum, "min": np.minimum, "mul": np.multiply}


@keras_op
def scatter_update(inputs, indices, updates, reduction=None):
    """A copy of ``inputs`` with ``updates`` written at ``indices`` (shape ``(n, k)``), or combined
    with the current values when ``reduction`` is ``"add"``, ``"max"``, ``"min"`` or ``"mul"``."""
    inputs = as_array(inputs)
    indices = as_array(indices)
    index = _index_tuple(indices, inputs.ndim)
    out = inputs.copy()
    updates = as_array(updates).reshape((-1,) + inputs.shape[indices.shape[-1]:])
    if reduction is None:
        out[index] = updates
    elif reduction in _REDUCTIONS:
        _REDUCTIONS[reduction].at(out, index, updates)
    else:
        raise ValueError(f"reduction must be None or one of {sorted(_REDUCTIONS)}, got {reduction!r}")
    return out


def cond(pred, true_fn, false_fn):
    """``true_fn()`` if ``pred`` else ``false_fn()``."""
    return true_fn() if bool(np.asarray(pred)) else false_fn()


def fori_loop(lower, upper, body_fun, init_val):
    """``val = body_fun(i, val)`` for ``i`` in ``range(lower, upper)``, starting from ``init_val``."""
    val = init_val
    for i in range(int(lower), int(upper)):
        val = body_fun(i, val)
    return val


def while_loop(cond, body, loop_vars, maximum_iterations=None):
    """Apply ``body`` to ``loop_vars`` while ``cond(*loop_vars)`` holds (at most
    ``maximum_iterations`` times); a tuple of variables in, a tuple out."""
    is_tuple = isinstance(loop_vars, (list, tuple))
    state = tuple(loop_vars) if is_tuple else (loop_vars,)
    done = 0
    while (maximum_iterations is None or done < maximum_iterations) and bool(np.asarray(cond(*state))):
        state = body(*state)
        state = tuple(state) if isinstance(state, (list, tuple)) else (state,)
        done += 1
    return state if is_tuple else state[0]


@keras_op
def map(f, xs):
    """``f`` applied to each slice ``xs[i]`` of an array, the results stacked."""
    xs = as_array(xs)
    if xs.ndim == 0:
        raise ValueError("xs must have at least one dimension")
    return np.stack(list(_builtin_map(f, xs))) if xs.shape[0] else np.empty((0,), xs.dtype)

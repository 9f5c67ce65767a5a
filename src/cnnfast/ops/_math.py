"""Keras 3's ``keras.ops.math`` functions that CNN code uses, on NumPy arrays: ``top_k``,
``in_top_k``, ``logsumexp``, ``rsqrt``, ``erf`` and the segment reductions.
"""
from __future__ import annotations

import math as _pymath

import numpy as np

from . import _dtypes
from ._keras_args import as_array, as_output, axis_arg, keras_op

__all__ = ["top_k", "in_top_k", "logsumexp", "rsqrt", "erf", "segment_sum", "segment_max",
           "segment_min", "segment_prod"]


def _k_arg(k, n: int) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}] (the size of the last axis), got {k}")
    return int(k)


@keras_op
def top_k(x, k, sorted=True):
    """The ``k`` largest entries along the last axis and their indices (int32), as a tuple
    ``(values, indices)``. Values come largest first; among equal values the lower index comes
    first; NaN counts as the largest value. With ``sorted=False`` the same entries are returned in
    index order."""
    x = as_array(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    k = _k_arg(k, x.shape[-1])
    n = x.shape[-1]
    # descending and stable (lower index first among ties), without negating (int8 -128, uint):
    # a stable ascending sort of the reversed axis, read backwards
    order = n - 1 - np.argsort(x[..., ::-1], axis=-1, kind="stable")[..., ::-1]
    indices = order[..., :k]
    if not sorted:
        indices = np.sort(indices, axis=-1)
    return np.take_along_axis(x, indices, axis=-1), indices.astype(np.int32)


@keras_op
def in_top_k(targets, predictions, k):
    """Whether each target class is among the ``k`` highest predictions of its row (ties with the
    k-th value count as in). ``targets`` ``(batch,)`` integers, ``predictions`` ``(batch, classes)``."""
    predictions = as_array(predictions, name="predictions")
    targets = as_array(targets, name="targets")
    if predictions.ndim != 2 or targets.shape != predictions.shape[:1]:
        raise ValueError(f"predictions must be (batch, classes) and targets (batch,), got "
                         f"{predictions.shape} and {targets.shape}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    k = _k_arg(k, predictions.shape[-1])
    if k == 0:
        return np.zeros(targets.shape, bool)
    kth = -np.sort(-predictions, axis=-1)[:, k - 1]
    return np.take_along_axis(predictions, targets[:, None].astype(np.int64), axis=-1)[:, 0] >= kth


@keras_op
def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis`` without overflow; integer inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    x = x.astype(dtype, copy=False)
    ax = axis_arg(axis, x.ndim)
    peak = np.max(x, axis=ax, keepdims=True) if x.size else np.zeros((1,) * x.ndim, dtype)
    peak = np.where(np.isfinite(peak), peak, np.zeros((), dtype))
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - peak), axis=ax, keepdims=True)) + peak
    if not keepdims:
        out = np.squeeze(out, axis=ax) if ax is not None else out.reshape(())
    return as_output(out).astype(dtype, copy=False)


@keras_op
def rsqrt(x):
    """``1 / sqrt(x)``, element-wise; integer inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    return as_output(1.0 / np.sqrt(x.astype(dtype, copy=False))).astype(dtype, copy=False)


_erf_scalar = np.frompyfunc(_pymath.erf, 1, 1)


@keras_op
def erf(x):
    """The error function, element-wise (exact to double precision, via ``math.erf`` per element:
    fine for moderate sizes, not a fast kernel); integer inputs give float32."""
    x = as_array(x)
    dtype = _dtypes.float_result(_dtypes.standardize_dtype(x.dtype))
    return as_output(_erf_scalar(x.astype(np.float64))).astype(dtype)


def _segment(name: str, ufunc, empty_value):
    def fn(data, segment_ids, num_segments=None, sorted=False):
        data = as_array(data, name="data")
        ids = as_array(segment_ids, name="segment_ids")
        if ids.dtype.kind not in "iu" or ids.ndim != 1 or data.ndim == 0 or ids.shape[0] != data.shape[0]:
            raise ValueError(f"segment_ids must be 1-D integers, one per row of data; got {ids.dtype} "
                             f"{ids.shape} for data of shape {data.shape}")
        n = int(ids.max()) + 1 if num_segments is None and ids.size else int(num_segments or 0)
        keep = (ids >= 0) & (ids < n)  # ids of -1 (and beyond num_segments) are dropped
        fill = empty_value(data.dtype)
        out = np.full((n,) + data.shape[1:], fill, dtype=data.dtype)
        ufunc.at(out, ids[keep], data[keep])
        return out
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = (f"``{ufunc.__name__}`` of the rows of ``data`` that share a segment id, one row per "
                  f"segment (``num_segments`` defaults to max id + 1; ids of -1 are dropped).")
    return keras_op(fn)


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else (np.iinfo(dtype).min if dtype.kind in "iu" else False)


def _highest(dtype):
    return np.inf if dtype.kind == "f" else (np.iinfo(dtype).max if dtype.kind in "iu" else True)


segment_sum = _segment("segment_sum", np.add, lambda dtype: 0)
segment_prod = _segment("segment_prod", np.multiply, lambda dtype: 1)
segment_max = _segment("segment_max", np.maximum, _lowest)
segment_min = _segment("segment_min", np.minimum, _highest)

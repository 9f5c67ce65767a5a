"""Embedding lookup and its gradient, in C (csrc/embedding, csrc/include/cnnfast/embedding.h).

``embedding(indices, table)`` gathers rows of a ``(input_dim, output_dim)`` float32 table for an
integer index array of any shape; ``embedding_backward(indices, dy, input_dim)`` is the gradient
of the table, a scatter-add of the rows of ``dy`` (duplicates add up, deterministically). Indices
must be int32 or int64 and lie in ``[0, input_dim)``; an index outside raises ``IndexError``
naming the op, the index and its position (as ``torch.nn.functional.embedding`` and Keras do, with
a clearer message).
"""
from __future__ import annotations

import numpy as np

from .. import _kernels
from ._checks import as_float32, check_out, empty

__all__ = ["embedding", "embedding_backward"]


def _indices(indices, op):
    arr = np.asarray(indices)
    if arr.dtype not in (np.int32, np.int64):
        if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 4 and arr.dtype != np.uint32:
            arr = arr.astype(np.int32)  # int8/16, uint8/16 fit in int32 without wrapping
        else:
            raise TypeError(f"{op}: indices must be an int32 or int64 array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr)


def _table(table, op):
    t = np.asarray(table)
    if t.ndim != 2:
        raise ValueError(f"{op}: the table must be 2-D (input_dim, output_dim), got shape {t.shape}")
    return as_float32(t, op, "table")


def _raise_out_of_range(op, idx, bad, input_dim):
    pos = np.unravel_index(bad, idx.shape) if idx.ndim else ()
    value = int(idx.reshape(-1)[bad])
    raise IndexError(f"{op}: index {value} at position {tuple(int(p) for p in pos)} of indices of "
                     f"shape {idx.shape} is out of range for an embedding of input_dim={input_dim} "
                     f"(valid indices are 0..{input_dim - 1})")


def embedding(indices, table, out=None):
    """``table[indices]``: an array of shape ``indices.shape + (output_dim,)``."""
    op = "embedding"
    idx = _indices(indices, op)
    t = _table(table, op)
    vocab, dim = t.shape
    shape = idx.shape + (dim,)
    out = empty(shape, op) if out is None else check_out(out, shape, op, (t,))
    fn = _kernels.embedding_fwd_i32 if idx.dtype == np.int32 else _kernels.embedding_fwd_i64
    bad = fn(idx.reshape(-1), t.reshape(-1), vocab, dim, out.reshape(-1))
    if bad >= 0:
        _raise_out_of_range(op, idx, bad, vocab)
    return out


def embedding_backward(indices, dy, input_dim, out=None, accumulate=False):
    """Gradient of :func:`embedding` with respect to its ``(input_dim, output_dim)`` table, for the
    output gradient ``dy`` of shape ``indices.shape + (output_dim,)``: row ``v`` is the sum of the
    ``dy`` rows whose index is ``v``. ``accumulate=True`` adds it to ``out`` instead."""
    op = "embedding_backward"
    idx = _indices(indices, op)
    dy = as_float32(dy, op, "dy")
    if dy.ndim != idx.ndim + 1 or dy.shape[:-1] != idx.shape:
        raise ValueError(f"{op}: dy must have shape indices.shape + (output_dim,) = {idx.shape} + (d,), "
                         f"got {dy.shape}")
    vocab, dim = int(input_dim), dy.shape[-1]
    if vocab < 0:
        raise ValueError(f"{op}: input_dim must be >= 0, got {input_dim!r}")
    if out is None:
        if accumulate:
            raise ValueError(f"{op}: accumulate=True needs an out= array to add to")
        out = empty((vocab, dim), op)
    else:
        out = check_out(out, (vocab, dim), op, (dy,))
    fn = _kernels.embedding_bwd_i32 if idx.dtype == np.int32 else _kernels.embedding_bwd_i64
    bad = fn(idx.reshape(-1), dy.reshape(-1), vocab, dim, out.reshape(-1), bool(accumulate))
    if bad >= 0:
        _raise_out_of_range(op, idx, bad, vocab)
    return out

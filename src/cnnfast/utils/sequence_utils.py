"""``pad_sequences``: Keras 3's ``keras.utils.pad_sequences``, with one vectorised scatter.

Keras fills a ``(num_samples, maxlen) + sample_shape`` array with ``value`` and copies each
sequence in, cut to ``maxlen`` (``truncating``: keep the end, ``"pre"``, or the start, ``"post"``)
and placed at the end (``padding="pre"``) or the start (``"post"``) of its row. Here each sequence
is cut and converted once (``np.asarray(part, dtype)``, as Keras does, so values convert and
mismatched sample shapes fail the same way), the parts are concatenated, and one fancy-indexed
assignment writes every element into place -- no Python loop over elements.

Where Keras fails by accident, this raises a clear ``ValueError`` instead: ``maxlen=None`` with no
sequences, a negative ``maxlen``; ``maxlen=0`` gives ``(num_samples, 0)`` (Keras's ``s[-0:]``
keeps the whole sequence and then fails to assign it). ``padding`` and ``truncating`` are checked
up front rather than at the first non-empty sequence.
"""
from __future__ import annotations

import numpy as np

__all__ = ["pad_sequences"]

_SIDES = ("pre", "post")


def _lengths(sequences) -> list[int]:
    lengths = []
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError as e:
            raise ValueError(f"pad_sequences: `sequences` must be a list of iterables. Found non-iterable: "
                             f"{x!s}") from e
    return lengths


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pad (and cut) sequences to one length: a ``(num_samples, maxlen)`` array (Keras semantics).

    Args:
        sequences: a list (or other sized iterable) of sequences; a sequence is a list or array
            of values, or of equally shaped samples (then the result has their shape as trailing axes).
        maxlen: the length of every output row; None: the longest sequence.
        dtype: the output dtype (``object`` for variable-length strings).
        padding: ``"pre"`` puts the padding before each sequence, ``"post"`` after it.
        truncating: ``"pre"`` drops values from the start of longer sequences, ``"post"`` from the end.
        value: the padding value (a string needs ``dtype=object`` or a string dtype).

    Returns:
        NumPy array of shape ``(len(sequences), maxlen) + sample_shape``.

    Example:
        >>> pad_sequences([[1], [2, 3], [4, 5, 6]])
        array([[0, 0, 1],
               [0, 2, 3],
               [4, 5, 6]], dtype=int32)
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: `sequences` must be iterable.")
    if padding not in _SIDES:
        raise ValueError(f'pad_sequences: Padding type "{padding}" not understood (use "pre" or "post")')
    if truncating not in _SIDES:
        raise ValueError(f'pad_sequences: Truncating type "{truncating}" not understood (use "pre" or "post")')
    sequences = list(sequences)
    lengths = _lengths(sequences)
    # the sample shape comes from the first non-empty sequence, as in Keras
    sample_shape = next((np.asarray(x).shape[1:] for x, n in zip(sequences, lengths) if n), ())
    if maxlen is None:
        if not lengths:
            raise ValueError("pad_sequences: cannot infer maxlen from an empty list of sequences; pass maxlen")
        maxlen = max(lengths)
    if isinstance(maxlen, (bool, np.bool_)) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be a non-negative integer or None, got {maxlen!r}")
    maxlen = int(maxlen)
    is_dtype_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(f"pad_sequences: `dtype` {dtype} is not compatible with `value`'s type: "
                         f"{type(value)}\nYou should set `dtype=object` for variable length strings.")

    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return out
    rows, parts = [], []
    for idx, (s, n) in enumerate(zip(sequences, lengths)):
        if not n:
            continue
        part = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if part.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: Shape of sample {part.shape[1:]} of sequence at position {idx} "
                             f"is different from expected shape {sample_shape}")
        rows.append(idx)
        parts.append(part)
    if not parts:
        return out
    kept = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    flat = np.concatenate(parts, axis=0)
    # element j of the k-th kept part goes to row rows[k], column start[k] + j
    start = np.zeros(len(parts), np.int64) if padding == "post" else maxlen - kept
    part_begin = np.cumsum(kept) - kept
    within = np.arange(len(flat), dtype=np.int64) - np.repeat(part_begin, kept)
    out[np.repeat(np.asarray(rows, np.int64), kept), np.repeat(start, kept) + within] = flat
    return out

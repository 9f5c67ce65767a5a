"""Array helpers with Keras semantics: ``to_categorical`` and ``normalize``."""
from __future__ import annotations

import numpy as np

__all__ = ["to_categorical", "normalize"]


def to_categorical(x, num_classes: int | None = None) -> np.ndarray:
    """One-hot encode integer class labels, as ``keras.utils.to_categorical``.

    ``x`` is cast to int64; a trailing axis of size 1 is dropped; ``num_classes`` defaults to
    ``max(x) + 1``. Returns float64 of shape ``x.shape + (num_classes,)``. Labels outside
    ``[0, num_classes)`` raise a ValueError (Keras would index out of range or wrap around).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"to_categorical: x must hold integer class labels, got dtype {arr.dtype}")
    labels = np.array(arr, dtype=np.int64)
    shape = labels.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    labels = labels.reshape(-1)
    if num_classes is None or num_classes == 0:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 0:
        raise ValueError(f"to_categorical: num_classes must be a non-negative integer, got {num_classes!r}")
    num_classes = int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got values in "
                         f"[{labels.min()}, {labels.max()}]")
    out = np.zeros((labels.size, num_classes), dtype=np.float64)
    out[np.arange(labels.size), labels] = 1.0
    return out.reshape(tuple(shape) + (num_classes,))


def normalize(x, axis: int = -1, order: int = 2) -> np.ndarray:
    """Scale ``x`` to unit ``order``-norm along ``axis`` (zero vectors stay zero)."""
    arr = np.asarray(x, dtype=np.float64 if np.asarray(x).dtype == np.float64 else np.float32)
    norm = np.linalg.norm(arr, ord=order, axis=axis, keepdims=True)
    norm[norm == 0] = 1
    return arr / norm

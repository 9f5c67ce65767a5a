"""Input preprocessing and prediction decoding for torchvision's ImageNet models.

torchvision's evaluation transforms end with ``ToTensor()`` (x / 255) and
``Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])``; its resize and centre crop
(e.g. 256 -> 224) are left to the caller, who has the images.
"""
from __future__ import annotations

import numpy as np

__all__ = ["preprocess_input", "decode_predictions", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def preprocess_input(x, data_format=None):
    """RGB images with values 0-255, NHWC (or ``data_format="channels_first"``: NCHW), as float32
    ``(x / 255 - mean) / std``, torchvision's normalisation. Returns a new array."""
    if data_format not in (None, "channels_last", "channels_first"):
        raise ValueError(f"preprocess_input: data_format must be None, 'channels_last' or "
                         f"'channels_first', got {data_format!r}")
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"preprocess_input: expected numeric images, got dtype {x.dtype}")
    axis = 1 if data_format == "channels_first" else -1
    if x.ndim < 3 or x.shape[axis] != 3:
        raise ValueError(f"preprocess_input: expected RGB images with 3 channels on axis {axis}, got shape "
                         f"{x.shape}")
    shape = [1] * x.ndim
    shape[axis] = 3
    mean = np.asarray(IMAGENET_MEAN, np.float32).reshape(shape)
    std = np.asarray(IMAGENET_STD, np.float32).reshape(shape)
    return (x.astype(np.float32) / np.float32(255.0) - mean) / std


def decode_predictions(preds, top=5):
    """The ``top`` classes of each row of ``preds`` (batch, 1000) as lists of
    ``(class_index, name, score)``, best first, with torchvision's category names (Keras returns a
    WordNet id first; torchvision's categories carry none, so the index stands there)."""
    from ._imagenet_categories import IMAGENET_CATEGORIES
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != len(IMAGENET_CATEGORIES):
        raise ValueError(f"decode_predictions: expects a batch of predictions of shape (samples, "
                         f"{len(IMAGENET_CATEGORIES)}), got {preds.shape}")
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= preds.shape[1]:
        raise ValueError(f"decode_predictions: top must be an int in [1, {preds.shape[1]}], got {top!r}")
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [[(int(i), IMAGENET_CATEGORIES[i], float(row[i])) for i in idx] for row, idx in zip(preds, order)]

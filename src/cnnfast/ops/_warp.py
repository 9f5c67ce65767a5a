"""Projective warping of images: Keras 3's ``keras.ops.image.affine_transform`` on NumPy arrays,
in C (csrc/include/cnnfast/warp.h).

Each image has 8 parameters ``[a0, a1, a2, b0, b1, b2, c0, c1]`` (one row per image, or one row
for all) mapping the output point ``(x, y)`` (column, row) to the input point
``((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k)`` with ``k = c0 x + c1 y + 1``: the transform
is inverted compared to the one taking input points to output points, and the output has the
input's size. Interpolation and fill modes (``"constant"``, ``"nearest"``, ``"wrap"``,
``"reflect"``) follow Keras's ``map_coordinates`` tap by tap (see the header).

``c0`` and ``c1`` divide as in TensorFlow's ``ImageProjectiveTransformV3`` (Keras's TensorFlow
backend). Keras's torch, JAX and NumPy backends document them as ignored (and in 3.15.1 actually
add ``c0 * channel`` / ``c1 * channel`` to the coordinates); with ``c0 = c1 = 0`` every backend
and this op agree.
"""
from __future__ import annotations

import numpy as np

from .. import _kernels
from ._checks import check_out, check_size
from ._keras_args import as_array, keras_op

__all__ = ["affine_warp", "affine_transform", "image_scale_shift"]

INTERPOLATIONS = {"nearest": 0, "bilinear": 1}
FILL_MODES = {"constant": 0, "nearest": 1, "wrap": 2, "reflect": 3}


def _check_modes(interpolation, fill_mode) -> tuple[int, int]:
    if interpolation not in INTERPOLATIONS:
        raise ValueError("Invalid value for argument `interpolation`. Expected of one "
                         f"{set(INTERPOLATIONS)}. Received: interpolation={interpolation}")
    if fill_mode not in FILL_MODES:
        raise ValueError("Invalid value for argument `fill_mode`. Expected of one "
                         f"{tuple(FILL_MODES)}. Received: fill_mode={fill_mode}")
    return INTERPOLATIONS[interpolation], FILL_MODES[fill_mode]


def _transforms(transform, batch: int, op: str) -> np.ndarray:
    t = np.asarray(transform)
    if t.dtype.kind not in "fiu":
        raise TypeError(f"{op}: transform must be a real array of 8 parameters per image, got dtype {t.dtype}")
    if t.ndim not in (1, 2):
        raise ValueError(f"{op}: invalid transform rank: expected rank 1 (single transform) or rank 2 "
                         f"(batch of transforms). Received input with shape: transform.shape={t.shape}")
    t = np.ascontiguousarray(t.reshape(1, -1) if t.ndim == 1 else t, dtype=np.float64)
    if t.shape[1] != 8:
        raise ValueError(f"{op}: each transform must have 8 parameters [a0, a1, a2, b0, b1, b2, c0, c1], "
                         f"got transform of shape {np.shape(transform)}")
    if t.shape[0] not in (1, batch):
        raise ValueError(f"{op}: got {t.shape[0]} transforms for {batch} images (give one per image, "
                         "or one for all)")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{op}: transform contains NaN or Inf")
    return t


def _fill(fill_value, op: str) -> float:
    try:
        return float(fill_value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: fill_value must be a number, got {fill_value!r}") from None


def affine_warp(images, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0, out=None):
    """``(N, H, W, C)`` float32 images warped by ``transforms`` (``(N, 8)`` or ``(8,)``/``(1, 8)``
    for all), in the C kernel; the result is float32 of the input's shape (written into ``out``
    when given: float32, C-contiguous, not overlapping the images)."""
    op = "affine_warp"
    x = np.asarray(images)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{op}: images must be a real numeric array (float32 preferred), got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{op}: images must be 4-D (N, H, W, C), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    mode_i, fill_i = _check_modes(interpolation, fill_mode)
    t = _transforms(transforms, x.shape[0], op)
    check_size(x.shape, op)
    y = check_out(out, x.shape, op, inputs=(x,))
    _kernels.affine_warp(x.reshape(-1), tuple(x.shape), t.reshape(-1), t.shape[0], mode_i, fill_i,
                         _fill(fill_value, op), y.reshape(-1))
    return y


@keras_op
def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0,
                     data_format=None):
    """Warp one image ``(H, W, C)`` or a batch ``(N, H, W, C)`` (``channels_first``: ``(C, H, W)`` /
    ``(N, C, H, W)``) by ``transform`` (``(8,)`` or ``(N, 8)``), as ``keras.ops.image.affine_transform``.

    Args:
        images: the images, of any real dtype (integers are rounded and saturated back to it).
        transform: ``[a0, a1, a2, b0, b1, b2, c0, c1]`` per image (see the module docstring).
        interpolation: ``"nearest"`` or ``"bilinear"``.
        fill_mode: ``"constant"`` (``fill_value``), ``"nearest"``, ``"wrap"`` or ``"reflect"``.
        fill_value: the value outside the image for ``"constant"``.
        data_format: ``"channels_last"`` (None) or ``"channels_first"``.

    Example:
        >>> x = np.random.random((2, 5, 5, 3)).astype("float32")
        >>> shift_right = [1, 0, -1, 0, 1, 0, 0, 0]   # output (x, y) reads input (x - 1, y)
        >>> affine_transform(x, shift_right).shape
        (2, 5, 5, 3)
    """
    _check_modes(interpolation, fill_mode)
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first' or None, got {data_format!r}")
    images = as_array(images, name="images")
    if images.dtype.kind not in "fiu":
        raise TypeError(f"images must be a real array, got dtype {images.dtype}")
    if images.ndim not in (3, 4):
        raise ValueError("Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                         f"Received input with shape: images.shape={images.shape}")
    batch = images if images.ndim == 4 else images[None]
    if data_format == "channels_first":
        batch = batch.transpose(0, 2, 3, 1)
    out = affine_warp(batch, _transforms(transform, batch.shape[0], "affine_transform"), interpolation,
                      fill_mode, _fill(fill_value, "affine_transform"))
    if data_format == "channels_first":
        out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    if images.ndim == 3:
        out = out[0]
    original = images.dtype
    if original.kind in "iu":
        info = np.iinfo(original)
        return np.clip(np.round(out), info.min, info.max).astype(original)
    return out if original == np.float32 else out.astype(original)


def image_scale_shift(images, scale, shift, clip, mean_coef=None, out=None):
    """``clip(images * scale[b] + shift[b, k] + mean_coef[b] * mean[b, k], *clip)`` for channel ``k``
    of image ``b`` of ``(N, H, W, C)`` float32 ``images``, ``mean[b, k]`` being that channel's mean
    over the image (``scale`` and ``mean_coef`` ``(N,)``, ``shift`` ``(N, C)``; ``mean_coef=None``:
    no mean term), in one threaded C pass: the colour augmentations' intensity map. ``out`` may be
    the images themselves."""
    op = "image_scale_shift"
    x = np.asarray(images)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{op}: images must be a real numeric array (float32 preferred), got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{op}: images must be 4-D (N, H, W, C), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, h, w, c = x.shape
    scale = np.ascontiguousarray(scale, dtype=np.float32).reshape(-1)
    shift = np.ascontiguousarray(shift, dtype=np.float32)
    if mean_coef is not None:
        mean_coef = np.ascontiguousarray(mean_coef, dtype=np.float32).reshape(-1)
    if scale.shape != (n,) or shift.shape != (n, c) or (mean_coef is not None and mean_coef.shape != (n,)):
        raise ValueError(f"{op}: scale and mean_coef must be ({n},) and shift ({n}, {c}) for images of shape "
                         f"{x.shape}, got {scale.shape}, {None if mean_coef is None else mean_coef.shape} and "
                         f"{shift.shape}")
    lo, hi = (float(v) for v in clip)
    if not lo <= hi:
        raise ValueError(f"{op}: clip must be (low, high) with low <= high, got {clip!r}")
    y = check_out(out, x.shape, op, inputs=(x,), allow_exact_alias=mean_coef is None)
    _kernels.image_scale_shift(x.reshape(-1), n, h * w, c, scale, shift.reshape(-1), mean_coef, lo, hi,
                               y.reshape(-1))
    return y

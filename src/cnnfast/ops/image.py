"""``cnnfast.ops.image``: Keras 3's ``keras.ops.image.resize`` (and ``rgb_to_grayscale``) on NumPy
image arrays, vectorised (one weight matrix per resized axis, no loop over pixels).

``resize`` supports every option of Keras 3.15.1:

* ``interpolation``: ``"nearest"`` (half-pixel centres: source ``floor((i + 0.5) * in / out)``),
  ``"bilinear"`` (half-pixel centres, edges clamped: ``align_corners=False``), ``"bicubic"`` (Keys
  cubic, ``a = -0.5``), ``"lanczos3"``, ``"lanczos5"``;
* ``antialias``: when downsampling, the kernel is widened by the scale factor (a box-like average
  over every covered input pixel) instead of sampling; ignored by ``"nearest"``;
* ``crop_to_aspect_ratio`` / ``pad_to_aspect_ratio`` (with ``fill_value``): centre crop or pad to
  the target aspect ratio before resizing; ``fill_mode`` must be ``"constant"``, the only mode
  Keras has;
* ``data_format``: ``"channels_last"`` (the default here, as cnnfast is NHWC) or
  ``"channels_first"``.

Bilinear and nearest give Keras's results on every backend. Bicubic and Lanczos follow Keras's
JAX/NumPy/TensorFlow backends (the torch backend's bicubic without antialias uses ``a = -0.75``
and clamps at the borders instead). Integer images are resized in float32, rounded and saturated
back to their dtype; other images keep their float dtype (float16 is computed in float32).
float32 ``channels_last`` images resized bilinearly without antialiasing (or with it, when no axis
shrinks) run on the C kernel ``cnnfast.ops.resize_bilinear``, which has the same geometry.
"""
from __future__ import annotations

import numpy as np

from ._keras_args import as_array, keras_op
from ._resize import resize_bilinear as _resize_bilinear_kernel
from ._warp import affine_transform

__all__ = ["resize", "rgb_to_grayscale", "affine_transform"]

RESIZE_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")
_DATA_FORMATS = ("channels_last", "channels_first")


def _triangle(x):
    return np.maximum(0.0, 1.0 - np.abs(x))


def _keys_cubic(x):
    x = np.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return np.where(x >= 2.0, 0.0, np.where(x >= 1.0, far, near))


def _lanczos(radius: float):
    def kernel(x):
        x = np.abs(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = radius * np.sin(np.pi * x) * np.sin(np.pi * x / radius) / (np.pi ** 2 * x ** 2)
        return np.where(x > radius, 0.0, np.where(x > 1e-3, y, 1.0))
    return kernel


_KERNELS = {"bilinear": _triangle, "bicubic": _keys_cubic, "lanczos3": _lanczos(3.0), "lanczos5": _lanczos(5.0)}


def _weights(n_in: int, n_out: int, kernel, antialias: bool) -> np.ndarray:
    """The ``(n_in, n_out)`` matrix taking one axis from ``n_in`` to ``n_out`` samples: output
    ``i`` samples input position ``(i + 0.5) * n_in / n_out - 0.5``; each column is normalised to
    sum to 1 over the input pixels that exist (which clamps the edges)."""
    inv_scale = n_in / n_out
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * inv_scale - 0.5
    w = kernel((centres[None, :] - np.arange(n_in, dtype=np.float64)[:, None]) / kernel_scale)
    total = w.sum(axis=0, keepdims=True)
    return np.where(np.abs(total) > 1000.0 * np.finfo(np.float32).eps, w / np.where(total != 0, total, 1), 0.0)


def _nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """``floor((i + 0.5) * n_in / n_out)`` in exact integer arithmetic."""
    i = np.arange(n_out, dtype=np.int64)
    return np.minimum((2 * i + 1) * n_in // (2 * n_out), n_in - 1)


def _resize_axis(x: np.ndarray, axis: int, n_out: int, interpolation: str, antialias: bool) -> np.ndarray:
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    if interpolation == "nearest":
        return np.take(x, _nearest_indices(n_in, n_out), axis=axis)
    w = _weights(n_in, n_out, _KERNELS[interpolation], antialias).astype(x.dtype)
    return np.moveaxis(np.tensordot(x, w, axes=(axis, 0)), -1, axis)


def _crop_to_aspect(images, h_axis, target_h, target_w):
    height, width = images.shape[h_axis], images.shape[h_axis + 1]
    crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
    crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
    top, left = int(float(height - crop_h) / 2), int(float(width - crop_w) / 2)
    index = [slice(None)] * images.ndim
    index[h_axis] = slice(top, top + crop_h)
    index[h_axis + 1] = slice(left, left + crop_w)
    return images[tuple(index)]


def _pad_to_aspect(images, h_axis, target_h, target_w, fill_value):
    height, width = images.shape[h_axis], images.shape[h_axis + 1]
    pad_h = max(height, int(float(width * target_h) / target_w))
    pad_w = max(width, int(float(height * target_w) / target_h))
    top, left = int(float(pad_h - height) / 2), int(float(pad_w - width) / 2)
    if top == 0 and left == 0:
        return images
    widths = [(0, 0)] * images.ndim
    widths[h_axis] = (top, top)  # Keras pads the same amount on both sides
    widths[h_axis + 1] = (left, left)
    return np.pad(images, widths, mode="constant", constant_values=np.asarray(fill_value).astype(images.dtype))


def _size_arg(size) -> tuple[int, int]:
    try:
        target = tuple(size)
    except TypeError:
        raise ValueError(f"size must be a pair of ints (height, width), got {size!r}") from None
    if len(target) != 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_))
                                   for s in target):
        raise ValueError(f"size must be a pair of ints (height, width), got {size!r}")
    if target[0] <= 0 or target[1] <= 0:
        raise ValueError(f"size must have a positive height and width, got {tuple(int(s) for s in target)}")
    return int(target[0]), int(target[1])


def _data_format_arg(data_format) -> str:
    data_format = "channels_last" if data_format is None else data_format
    if data_format not in _DATA_FORMATS:
        raise ValueError(f"data_format must be one of {list(_DATA_FORMATS)} or None, got {data_format!r}")
    return data_format


def _images_arg(images) -> np.ndarray:
    images = as_array(images, name="images")
    if images.ndim not in (3, 4):
        raise ValueError(f"images must be 3-D (one image) or 4-D (a batch), got shape {images.shape}")
    return images


@keras_op
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Resize one image ``(H, W, C)`` or a batch ``(N, H, W, C)`` (``channels_first``: ``(C, H, W)``
    / ``(N, C, H, W)``) to ``size = (height, width)``; see the module docstring for the options.

    Example:
        >>> x = np.random.random((2, 4, 4, 3))
        >>> resize(x, (2, 2)).shape
        (2, 2, 2, 3)
    """
    target_h, target_w = _size_arg(size)
    if interpolation not in RESIZE_INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(RESIZE_INTERPOLATIONS)}, got {interpolation!r}")
    if fill_mode != "constant":
        raise ValueError(f"fill_mode must be 'constant' (the only mode Keras supports), got {fill_mode!r}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True")
    data_format = _data_format_arg(data_format)
    images = _images_arg(images)
    if images.dtype.kind not in "biuf":
        raise TypeError(f"images must be a real array, got dtype {images.dtype}")
    h_axis = images.ndim - 3 if data_format == "channels_last" else images.ndim - 2
    if crop_to_aspect_ratio:
        images = _crop_to_aspect(images, h_axis, target_h, target_w)
    elif pad_to_aspect_ratio:
        images = _pad_to_aspect(images, h_axis, target_h, target_w, fill_value)

    if interpolation == "nearest":  # pure gathers: any dtype, exact
        out = _resize_axis(images, h_axis, target_h, "nearest", False)
        out = _resize_axis(out, h_axis + 1, target_w, "nearest", False)
        return out.copy() if out is images else out

    height, width = images.shape[h_axis], images.shape[h_axis + 1]
    if (interpolation == "bilinear" and images.dtype == np.float32 and data_format == "channels_last"
            and (not antialias or (target_h >= height and target_w >= width))):
        batch = images if images.ndim == 4 else images[None]
        out = _resize_bilinear_kernel(batch, (target_h, target_w))
        return out if images.ndim == 4 else out[0]

    original = images.dtype
    compute = np.float64 if original == np.float64 else np.float32
    out = images.astype(compute, copy=False)
    out = _resize_axis(out, h_axis, target_h, interpolation, bool(antialias))
    out = _resize_axis(out, h_axis + 1, target_w, interpolation, bool(antialias))
    if original.kind in "iu":
        info = np.iinfo(original)
        return np.clip(np.round(out), info.min, info.max).astype(original)
    if original.kind == "b":
        return np.round(out).astype(bool)
    return out.astype(original, copy=out is images)


@keras_op
def rgb_to_grayscale(images, data_format=None):
    """Luma ``0.2989 R + 0.5870 G + 0.1140 B`` of RGB images, keeping a channel axis of size 1 and
    the input dtype (one-channel images are returned as a copy)."""
    data_format = _data_format_arg(data_format)
    images = _images_arg(images)
    channel_axis = -1 if data_format == "channels_last" else -3
    if images.shape[channel_axis] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got shape {images.shape} ({data_format})")
    if images.shape[channel_axis] == 1:
        return images.copy()
    compute = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    weights = np.array([0.2989, 0.5870, 0.1140], dtype=compute)
    gray = np.tensordot(images.astype(compute, copy=False), weights, axes=([channel_axis], [0]))
    return np.expand_dims(gray, channel_axis).astype(images.dtype)

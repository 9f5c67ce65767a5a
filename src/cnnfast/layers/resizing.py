"""Keras 3's deterministic image layers: Resizing and CenterCrop (active in training and at
inference alike; names, arguments, defaults and configs of Keras 3.15.1).

Resizing is ``cnnfast.ops.image.resize`` (the C bilinear kernel for float32 channels-last
images). CenterCrop slices when the input is at least the target size, and otherwise does what
Keras's ``smart_resize`` does: the centred window with the target aspect ratio, resized
bilinearly. The input gradient is computed for the slices and for bilinear and nearest resizing
(with their crops and pads); after bicubic, Lanczos or an antialiased downsampling no gradient
flows to the input (``backward`` returns None): these layers sit right after the model's input.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops._checks import as_int
from ..ops.image import RESIZE_INTERPOLATIONS, _nearest_indices
from .augmentation_base import ImageLayer

__all__ = ["Resizing", "CenterCrop", "resize_forward", "resize_backward"]


def _crop_window(h, w, target_h, target_w):
    """Keras's centred window with the target aspect ratio: (top, left, height, width)."""
    crop_h = max(min(h, int(float(w * target_h) / target_w)), 1)
    crop_w = max(min(w, int(float(h * target_w) / target_h)), 1)
    return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2), crop_h, crop_w


def _pad_margins(h, w, target_h, target_w):
    """Keras's pad to the target aspect ratio: the same (top, left) margin on both sides."""
    pad_h = max(h, int(float(w * target_h) / target_w))
    pad_w = max(w, int(float(h * target_w) / target_h))
    return int(float(pad_h - h) / 2), int(float(pad_w - w) / 2)


def resize_forward(x, size, interpolation="bilinear", crop=False, pad=False, fill_value=0.0, antialias=False):
    """NHWC ``x`` resized to ``size`` as ``keras.ops.image.resize`` (float32 result)."""
    y = ops.image.resize(x, size, interpolation=interpolation, antialias=antialias, crop_to_aspect_ratio=crop,
                         pad_to_aspect_ratio=pad, fill_value=fill_value)
    return np.asarray(y, dtype=np.float32)


def _plain_resize_backward(g, shape, interpolation, antialias):
    """Gradient of resizing an NHWC input of ``shape`` to ``g``'s size, or None."""
    n, h, w, c = shape
    ho, wo = g.shape[1:3]
    if interpolation == "bilinear" and (not antialias or (ho >= h and wo >= w)):
        return ops.resize_bilinear_backward(np.ascontiguousarray(g, dtype=np.float32), shape)
    if interpolation == "nearest":
        dx = np.zeros(shape, np.float32)
        rows, cols = _nearest_indices(h, ho), _nearest_indices(w, wo)
        np.add.at(dx, (slice(None), rows[:, None], cols[None, :]), g)
        return dx
    return None


def resize_backward(g, shape, interpolation="bilinear", crop=False, pad=False, antialias=False):
    """Gradient of :func:`resize_forward` for an NHWC input of ``shape``, or None where it is not
    computed (see the module docstring)."""
    n, h, w, c = shape
    ho, wo = g.shape[1:3]
    if crop:
        top, left, ch, cw = _crop_window(h, w, ho, wo)
        inner = _plain_resize_backward(g, (n, ch, cw, c), interpolation, antialias)
        if inner is None:
            return None
        dx = np.zeros(shape, np.float32)
        dx[:, top:top + ch, left:left + cw] = inner
        return dx
    if pad:
        top, left = _pad_margins(h, w, ho, wo)
        inner = _plain_resize_backward(g, (n, h + 2 * top, w + 2 * left, c), interpolation, antialias)
        return None if inner is None else np.ascontiguousarray(inner[:, top:top + h, left:left + w])
    return _plain_resize_backward(g, shape, interpolation, antialias)


def _size(layer, height, width):
    op = f"{type(layer).__name__} '{layer.name}'"
    return as_int(height, op, "height", 1), as_int(width, op, "width", 1)


class Resizing(ImageLayer):
    """Resizes images to ``(height, width)`` (``keras.layers.Resizing``), in training and at
    inference.

    Args:
        height, width: the output size.
        interpolation: ``"bilinear"``, ``"nearest"``, ``"bicubic"``, ``"lanczos3"`` or ``"lanczos5"``.
        crop_to_aspect_ratio: first crop the centred window with the target aspect ratio.
        pad_to_aspect_ratio: first pad (with ``fill_value``) to the target aspect ratio.
        fill_mode: ``"constant"`` (the only mode Keras has).
        fill_value: the padding value.
        antialias: widen the filter when downsampling.
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                 data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        op = f"Resizing '{self.name}'"
        self.height, self.width = _size(self, height, width)
        if interpolation not in RESIZE_INTERPOLATIONS:
            raise ValueError(f"{op}: interpolation must be one of {list(RESIZE_INTERPOLATIONS)}, "
                             f"got {interpolation!r}")
        if fill_mode != "constant":
            raise ValueError(f"{op}: fill_mode must be 'constant' (the only mode Keras supports), got {fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{op}: only one of crop_to_aspect_ratio and pad_to_aspect_ratio can be True")
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode = fill_mode
        try:
            self.fill_value = float(fill_value)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: fill_value must be a number, got {fill_value!r}") from None
        self.antialias = bool(antialias)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        h_axis, w_axis = self._spatial_axes(len(shape))
        shape[h_axis], shape[w_axis] = self.height, self.width
        return tuple(shape)

    def forward(self, x, training, ctx):
        xb = self._to_nhwc(x, ctx)
        ctx["x_shape"] = xb.shape
        y = resize_forward(xb, (self.height, self.width), self.interpolation, self.crop_to_aspect_ratio,
                           self.pad_to_aspect_ratio, self.fill_value, self.antialias)
        return self._from_nhwc(y, ctx)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        dx = resize_backward(self._to_nhwc(dy, ctx), ctx["x_shape"], self.interpolation, self.crop_to_aspect_ratio,
                             self.pad_to_aspect_ratio, self.antialias)
        return None if dx is None else self._from_nhwc(dx, ctx)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, interpolation=self.interpolation,
                      crop_to_aspect_ratio=self.crop_to_aspect_ratio, pad_to_aspect_ratio=self.pad_to_aspect_ratio,
                      fill_mode=self.fill_mode, fill_value=self.fill_value, antialias=self.antialias)
        return config


class CenterCrop(ImageLayer):
    """Crops the centre ``(height, width)`` of each image (``keras.layers.CenterCrop``), in
    training and at inference; a smaller input is cropped to the target aspect ratio and resized
    (Keras's ``smart_resize``).

    Args:
        height, width: the output size.
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height, self.width = _size(self, height, width)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if len(shape) not in (3, 4):
            raise ValueError(f"CenterCrop '{self.name}': input_shape must have rank 3 (unbatched) or 4 "
                             f"(batched), got {tuple(input_shape)}")
        h_axis, w_axis = self._spatial_axes(len(shape))
        shape[h_axis], shape[w_axis] = self.height, self.width
        return tuple(shape)

    def forward(self, x, training, ctx):
        xb = self._to_nhwc(x, ctx)
        n, h, w, _ = xb.shape
        ctx["x_shape"] = xb.shape
        if h >= self.height and w >= self.width:
            top, left = (h - self.height) // 2, (w - self.width) // 2
            ctx["offset"] = (top, left)
            return self._from_nhwc(xb[:, top:top + self.height, left:left + self.width], ctx)
        ctx["offset"] = None
        return self._from_nhwc(resize_forward(xb, (self.height, self.width), "bilinear", crop=True), ctx)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        g, shape = self._to_nhwc(dy, ctx), ctx["x_shape"]
        if ctx["offset"] is None:
            return self._from_nhwc(resize_backward(g, shape, "bilinear", crop=True), ctx)
        top, left = ctx["offset"]
        dx = np.zeros(shape, np.float32)
        dx[:, top:top + self.height, left:left + self.width] = g
        return self._from_nhwc(dx, ctx)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width)
        return config

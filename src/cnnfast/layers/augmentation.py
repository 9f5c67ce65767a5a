"""Keras 3's geometric augmentation layers: RandomFlip, RandomRotation, RandomZoom,
RandomTranslation and RandomCrop (names, arguments, defaults, factor rules and configs of Keras
3.15.1; training-mode and seed rules in augmentation_base.py).

Rotation, zoom and translation build Keras's per-image matrices and warp the whole batch in one
C call (``cnnfast.ops.image.affine_transform``, csrc/warp); flips and crops are NumPy copies.
Keras's behaviours kept on purpose:

* RandomFlip draws one coin per image and, in ``"horizontal_and_vertical"`` mode, flips both
  axes with it (each image is left alone or rotated by 180 degrees);
* RandomRotation's factor is a fraction of a full turn (``0.1`` -> up to +-36 degrees,
  counter-clockwise positive), about the centre ``((W - 1) / 2, (H - 1) / 2)``;
* RandomZoom's factor is the change of the sampled extent: ``0.2`` samples up to 20 % more of
  the image (zooms out), ``-0.2`` up to 20 % less (zooms in); without ``width_factor`` both axes
  use the same draw;
* RandomCrop crops the whole batch at one random offset; an input not larger than the target in
  both axes is cropped at Keras's aspect-ratio offsets and resized to the target.

One difference: at inference, Keras 3.15.1's RandomCrop returns its input uncropped, against
its own documentation and output shape; here it returns the centred crop with the target aspect
ratio resized to the target (the documented behaviour), so the layers after it see the shape the
model was built for.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..ops._checks import as_int
from ..ops._warp import affine_warp
from .augmentation_base import AugmentationLayer, RandomWarpLayer, base_factor, check_warp_modes
from .resizing import resize_backward, resize_forward

__all__ = ["RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomCrop"]

HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL = "horizontal", "vertical", "horizontal_and_vertical"


class RandomFlip(AugmentationLayer):
    """Flips each image of a training batch with probability 1/2 (``keras.layers.RandomFlip``).

    Args:
        mode: ``"horizontal"`` (left-right), ``"vertical"`` (top-bottom) or
            ``"horizontal_and_vertical"`` (both axes, with one draw per image, as Keras).
        seed: an int for reproducible flips.
    """

    def __init__(self, mode=HORIZONTAL_AND_VERTICAL, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL):
            raise ValueError(f"RandomFlip '{self.name}': unknown mode {mode!r}; expected one of "
                             f"{[HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL]}")
        self.mode = mode

    def _flip(self, x, flips, out=None):
        """``x`` (4-D, NHWC) with the images where ``flips`` is True flipped: one nearest-neighbour
        warp on integer points (exact), per-image identity or mirror matrices."""
        n, h, w, _ = x.shape
        t = np.tile(np.array([1.0, 0, 0, 0, 1.0, 0, 0, 0]), (n, 1))
        if self.mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):   # x' = w - 1 - x
            t[flips, 0], t[flips, 2] = -1.0, w - 1.0
        if self.mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):     # y' = h - 1 - y
            t[flips, 4], t[flips, 5] = -1.0, h - 1.0
        return affine_warp(x, t, "nearest", "nearest", out=out)

    def forward(self, x, training, ctx):
        ctx["flips"] = None
        if not training:
            return x
        xb = self._to_nhwc(x, ctx)
        flips = self._generator(ctx).random(xb.shape[0]) <= 0.5
        ctx["flips"] = flips
        return self._from_nhwc(self._flip(xb, flips, self._out(xb, ctx)), ctx)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        flips = ctx.get("flips")
        if flips is None:
            return dy
        return self._from_nhwc(self._flip(self._to_nhwc(dy, ctx), flips), ctx)  # a flip is its own inverse

    def get_config(self):
        config = super().get_config()
        config.update(seed=self._seed_arg, mode=self.mode)
        return config


def _warp_layer_init(layer, fill_mode, interpolation, fill_value):
    check_warp_modes(fill_mode, interpolation)
    layer.fill_mode, layer.interpolation = fill_mode, interpolation
    try:
        layer.fill_value = float(fill_value)
    except (TypeError, ValueError):
        raise TypeError(f"{type(layer).__name__} '{layer.name}': fill_value must be a number, "
                        f"got {fill_value!r}") from None


class _Warp(RandomWarpLayer):
    """A warp with per-image matrices from ``_matrices(rng, n, h, w)``."""

    def forward(self, x, training, ctx):
        ctx["augmented"] = False
        if not training:
            return x
        xb = self._to_nhwc(x, ctx)
        n, h, w, _ = xb.shape
        ctx["augmented"] = True
        t = self._matrices(self._generator(ctx), n, h, w)
        y = affine_warp(xb, t, self.interpolation, self.fill_mode, self.fill_value, out=self._out(xb, ctx))
        return self._from_nhwc(y, ctx)

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomRotation(_Warp):
    """Rotates each image of a training batch by a random angle (``keras.layers.RandomRotation``).

    Args:
        factor: a fraction of a full turn, ``f`` (angles in ``[-f, f] * 360`` degrees) or a pair
            ``(lower, upper)``; positive is counter-clockwise.
        fill_mode: ``"reflect"``, ``"wrap"``, ``"constant"`` or ``"nearest"``.
        interpolation: ``"bilinear"`` or ``"nearest"``.
        seed: an int for reproducible angles.
        fill_value: the value outside the image with ``fill_mode="constant"``.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = base_factor(factor, (-1, 1))
        _warp_layer_init(self, fill_mode, interpolation, fill_value)

    def _matrices(self, rng, n, h, w):
        degrees = rng.uniform(self.factor[0] * 360.0, self.factor[1] * 360.0, n)
        angle = degrees * (math.pi / 180.0)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        cos, sin = np.cos(angle), np.sin(angle)
        # Keras's _compute_affine_matrix without shear, scale or translation
        a0, a1, b0, b1 = cos, -sin, sin, cos
        zeros = np.zeros(n)
        return np.stack([a0, a1, cx - cx * a0 - cy * a1, b0, b1, cy - cx * b0 - cy * b1, zeros, zeros], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, fill_mode=self.fill_mode, fill_value=self.fill_value,
                      interpolation=self.interpolation, seed=self._seed_arg)
        return config


def _zoom_factor(factor, name):
    message = ("The `height_factor` and `width_factor` arguments should be a number (or a list of two "
               "numbers) in the range (-1.0, 1.0]. ")

    def check(v):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v > 1.0 or v <= -1.0:
            raise ValueError(message + f"Received: input_number={v}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    if isinstance(factor, (int, float, np.integer, np.floating)):
        check(factor)
        return (-abs(factor), abs(factor))
    raise ValueError(message + f"Received: {name}={factor}")


class RandomZoom(_Warp):
    """Zooms each image of a training batch in or out at random (``keras.layers.RandomZoom``).

    Args:
        height_factor: ``f`` (zoom in ``[-f, f]``) or ``(lower, upper)``, each in (-1, 1]: the
            sampled height changes by that fraction (positive zooms out, negative zooms in).
        width_factor: the same for the width; None zooms both axes by the height's draw.
        fill_mode, interpolation, seed, fill_value: as for RandomRotation.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear",
                 seed=None, fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _zoom_factor(height_factor, "height_factor")
        self.width_factor = width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = _zoom_factor(width_factor, "width_factor")
        _warp_layer_init(self, fill_mode, interpolation, fill_value)

    def _matrices(self, rng, n, h, w):
        zy = rng.uniform(1.0 + self.height_lower, 1.0 + self.height_upper, n)
        zx = zy if self.width_factor is None else rng.uniform(1.0 + self.width_lower, 1.0 + self.width_upper, n)
        zeros = np.zeros(n)
        return np.stack([zx, zeros, (w - 1.0) / 2.0 * (1.0 - zx), zeros, zy, (h - 1.0) / 2.0 * (1.0 - zy),
                         zeros, zeros], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=self.height_factor, width_factor=self.width_factor, fill_mode=self.fill_mode,
                      interpolation=self.interpolation, seed=self._seed_arg, fill_value=self.fill_value)
        return config


def _translation_factor(factor, name):
    message = ("The `factor` argument should be a number (or a list of two numbers) in the range "
               "[-1.0, 1.0]. ")

    def check(v):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v > 1.0 or v < -1.0:
            raise ValueError(message + f"Received: input_number={v}")

    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(message + f"Received: {name}={factor}")
        check(factor[0])
        check(factor[1])
        return tuple(sorted(factor))
    if isinstance(factor, (int, float, np.integer, np.floating)):
        check(factor)
        return (-abs(factor), abs(factor))
    raise ValueError(message + f"Received: {name}={factor}")


class RandomTranslation(_Warp):
    """Shifts each image of a training batch at random (``keras.layers.RandomTranslation``).

    Args:
        height_factor: ``f`` (shift by up to ``f * height`` up or down) or ``(lower, upper)``,
            fractions of the height in [-1, 1]; positive moves the content down.
        width_factor: the same along the width; positive moves the content right.
        fill_mode, interpolation, seed, fill_value: as for RandomRotation.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = _translation_factor(height_factor, "height_factor")
        self.width_factor = width_factor
        self.width_lower, self.width_upper = _translation_factor(width_factor, "width_factor")
        _warp_layer_init(self, fill_mode, interpolation, fill_value)

    def _matrices(self, rng, n, h, w):
        dy = rng.uniform(self.height_lower, self.height_upper, n) * h
        dx = rng.uniform(self.width_lower, self.width_upper, n) * w
        ones, zeros = np.ones(n), np.zeros(n)
        return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(height_factor=self.height_factor, width_factor=self.width_factor, fill_mode=self.fill_mode,
                      interpolation=self.interpolation, seed=self._seed_arg, fill_value=self.fill_value)
        return config


class RandomCrop(AugmentationLayer):
    """Crops a training batch to ``(height, width)`` at one random offset
    (``keras.layers.RandomCrop``); at inference, the centred window with the target aspect ratio,
    resized to the target (see the module docstring).

    Args:
        height, width: the output size.
        seed: an int for reproducible offsets (None draws one, saved in the config as Keras does).
    """

    def __init__(self, height, width, seed=None, data_format=None, name=None, **kwargs):
        if seed is None:
            from ..utils.random import next_seed
            seed = next_seed() & 0x7FFFFFFF   # Keras saves the default seed it draws
        super().__init__(seed=seed, data_format=data_format, name=name, **kwargs)
        op = f"RandomCrop '{self.name}'"
        self.height = as_int(height, op, "height", 1)
        self.width = as_int(width, op, "width", 1)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        h_axis, w_axis = self._spatial_axes(len(shape))
        shape[h_axis], shape[w_axis] = self.height, self.width
        return tuple(shape)

    def forward(self, x, training, ctx):
        xb = self._to_nhwc(x, ctx)
        n, h, w, _ = xb.shape
        ctx["x_shape"] = xb.shape
        if not training:
            ctx["mode"] = "resize"
            return self._from_nhwc(resize_forward(xb, (self.height, self.width), "bilinear", crop=True), ctx)
        if h > self.height and w > self.width:
            rng = self._generator(ctx)
            top = int(rng.uniform(0.0, float(h - self.height + 1)))
            left = int(rng.uniform(0.0, float(w - self.width + 1)))
        else:  # Keras's offsets of the aspect-ratio window
            crop_h = max(min(h, int(float(w * self.height) / self.width)), 1)
            crop_w = max(min(w, int(float(h * self.width) / self.height)), 1)
            top, left = int(float(h - crop_h) / 2), int(float(w - crop_w) / 2)
        window = xb[:, top:top + self.height, left:left + self.width]
        ctx["mode"], ctx["window"] = "slice", (top, left, window.shape[1], window.shape[2])
        if window.shape[1:3] != (self.height, self.width):
            ctx["mode"] = "slice_resize"
            window = ops.image.resize(np.ascontiguousarray(window), (self.height, self.width))
        return self._from_nhwc(window, ctx)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        g = self._to_nhwc(dy, ctx)
        shape = ctx["x_shape"]
        if ctx["mode"] == "resize":
            return self._from_nhwc(resize_backward(g, shape, "bilinear", crop=True), ctx)
        top, left, wh, ww = ctx["window"]
        if ctx["mode"] == "slice_resize":
            g = ops.resize_bilinear_backward(np.ascontiguousarray(g), (shape[0], wh, ww, shape[3]))
        dx = np.zeros(shape, np.float32)
        dx[:, top:top + wh, left:left + ww] = g
        return self._from_nhwc(dx, ctx)

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width, seed=self._seed_arg)
        return config

"""Keras 3's colour augmentation layers: RandomContrast and RandomBrightness (names, arguments,
defaults, factor rules and configs of Keras 3.15.1; training-mode and seed rules in
augmentation_base.py). One draw per image; the clipped intensity map runs in one threaded C pass
(``cnnfast.ops._warp.image_scale_shift``).

Keras's factor rules kept on purpose: RandomContrast's factor has the bounds [0, 1], so a number
``f`` gives the range ``(0, f)`` and contrast factors in ``[1, 1 + f]`` (only increases; a pair
``(f, f)`` gives ``[1 - f, 1 + f]``); RandomBrightness's ``f`` gives deltas in
``[-f, f] * (value_range[1] - value_range[0])``. Both clip to ``value_range``.
"""
from __future__ import annotations

import numpy as np

from ..ops._warp import image_scale_shift
from .augmentation_base import RandomWarpLayer, base_factor

__all__ = ["RandomContrast", "RandomBrightness"]


def _value_range(value_range, op):
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(f"{op}: the `value_range` argument should be a list of two numbers. "
                         f"Received: value_range={value_range}")
    return value_range


class RandomContrast(RandomWarpLayer):
    """Scales each image's deviation from its per-channel mean by a random factor in training
    (``keras.layers.RandomContrast``): ``(x - mean) * factor + mean``, clipped to ``value_range``.

    Args:
        factor: ``f`` in [0, 1] (factors in ``[1, 1 + f]``, as Keras) or ``(lower, upper)``
            (factors in ``[1 - lower, 1 + upper]``).
        value_range: the images' ``(min, max)``.
        seed: an int for reproducible factors.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = base_factor(factor, (0, 1))
        self.value_range = _value_range(value_range, f"RandomContrast '{self.name}'")

    def forward(self, x, training, ctx):
        ctx["augmented"] = False
        if not training:
            return x
        xb = self._to_nhwc(x, ctx)
        ctx["augmented"] = True
        factor = self._generator(ctx).uniform(1.0 - self.factor[0], 1.0 + self.factor[1], xb.shape[0])
        n, c = xb.shape[0], xb.shape[3]
        # (x - mean) * factor + mean = x * factor + (1 - factor) * mean: one C pass per image,
        # the per-channel means included
        y = image_scale_shift(xb, factor, np.zeros((n, c), np.float32), self.value_range,
                              mean_coef=1.0 - factor, out=self._out(xb, ctx))
        return self._from_nhwc(y, ctx)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, value_range=self.value_range, seed=self._seed_arg)
        return config


class RandomBrightness(RandomWarpLayer):
    """Adds a random delta to each image in training (``keras.layers.RandomBrightness``),
    clipped to ``value_range``.

    Args:
        factor: ``f`` in [-1, 1] (deltas in ``[-f, f]``) or ``(lower, upper)``, as fractions of
            ``value_range[1] - value_range[0]``.
        value_range: the images' ``(min, max)`` (sorted, as Keras).
        seed: an int for reproducible deltas.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = base_factor(factor, (-1, 1))
        self.value_range = sorted(_value_range(value_range, f"RandomBrightness '{self.name}'"))

    def forward(self, x, training, ctx):
        ctx["augmented"] = False
        if not training:
            return x
        xb = self._to_nhwc(x, ctx)
        ctx["augmented"] = True
        low, high = self.value_range
        delta = self._generator(ctx).uniform(self.factor[0], self.factor[1], xb.shape[0]) * (high - low)
        n, c = xb.shape[0], xb.shape[3]
        xb = np.ascontiguousarray(xb)
        shift = np.repeat(delta.astype(np.float32)[:, None], c, axis=1)
        y = image_scale_shift(xb, np.ones(n, np.float32), shift, (low, high), out=self._out(xb, ctx))
        return self._from_nhwc(y, ctx)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, value_range=self.value_range, seed=self._seed_arg)
        return config

"""Keras 3's colour augmentation layers: RandomContrast and RandomBrightness (names, arguments,
defaults, factor rules and configs of Keras 3.15.1; training-mode and seed rules in
augmentation_base.py). One draw per image, vectorised NumPy over the batch.

Keras's factor rules kept on purpose: RandomContrast's factor has the bounds [0, 1], so a number
``f`` gives the range ``(0, f)`` and contrast factors in ``[1, 1 + f]`` (only increases; a pair
``(f, f)`` gives ``[1 - f, 1 + f]``); RandomBrightness's ``f`` gives deltas in
``[-f, f] * (value_range[1] - value_range[0])``. Both clip to ``value_range``.
"""
from __future__ import annotations

import numpy as np

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
        n, h, w, c = xb.shape
        pixels = np.ascontiguousarray(xb).reshape(n, h * w, c)
        factor = factor.astype(np.float32).reshape(n, 1, 1)
        # per-channel means as one matrix product (a strided NumPy mean is several times slower),
        # then (x - mean) * factor + mean as x * factor + (1 - factor) * mean: two passes
        mean = np.matmul(np.full((1, h * w), 1.0 / max(h * w, 1), np.float32), pixels)
        y = np.multiply(pixels, factor)
        y += (1.0 - factor) * mean
        np.clip(y, np.float32(self.value_range[0]), np.float32(self.value_range[1]), out=y)
        return self._from_nhwc(y.reshape(xb.shape), ctx)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, value_range=self.value_range, seed=self.seed)
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
        y = xb + delta.astype(np.float32).reshape(-1, 1, 1, 1)
        np.clip(y, np.float32(low), np.float32(high), out=y)
        return self._from_nhwc(y, ctx)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, value_range=self.value_range, seed=self.seed)
        return config

"""1-D reshaping layers over ``(batch, steps, channels)``: UpSampling1D, ZeroPadding1D, Cropping1D
(Keras 3's arguments, defaults and configs).

UpSampling1D repeats each step ``size`` times and ZeroPadding1D adds zero steps at both ends, each
one vectorised NumPy copy into a buffer reused between steps (the padding stays zero); their
backward passes are a strided sum and a slice. Cropping1D's output is a contiguous copy of the
kept steps; its backward writes the gradient into zeros.
"""
from __future__ import annotations

import numpy as np

from ..ops._checks import as_int, as_pair
from .base import Layer, buffer
from .conv import _check_data_format

__all__ = ["UpSampling1D", "ZeroPadding1D", "Cropping1D"]


def _check_rank3(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expects inputs of shape "
                         f"(batch, steps, channels), got {tuple(input_shape)}")


class UpSampling1D(Layer):
    """Repeats each step ``size`` times: ``(batch, steps, c) -> (batch, steps * size, c)``."""

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = as_int(size, f"UpSampling1D '{self.name}'", "size", 1)

    def build(self, input_shape):
        _check_rank3(self, input_shape)
        self._input_spec = (3, {})

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        return (n, None if steps is None else steps * self.size, c)

    def forward(self, x, training, ctx):
        n, steps, c = x.shape
        y = buffer(ctx, "y", (n, steps * self.size, c))
        y.reshape(n, steps, self.size, c)[...] = x[:, :, None, :]
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, steps, c = dy.shape
        return dy.reshape(n, steps // self.size, self.size, c).sum(axis=2, dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


class ZeroPadding1D(Layer):
    """Adds zero steps at the start and end: ``padding`` is an int or ``(left, right)``."""

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = as_pair(padding, f"ZeroPadding1D '{self.name}'", "padding", 0)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        _check_rank3(self, input_shape)
        self._input_spec = (3, {})

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        return (n, None if steps is None else steps + sum(self.padding), c)

    def forward(self, x, training, ctx):
        left, right = self.padding
        n, steps, c = x.shape
        y = buffer(ctx, "y", (n, steps + left + right, c))
        if not ctx.get(("zeroed", y.shape)):   # the padding stays zero between steps
            y.fill(0)
            ctx[("zeroed", y.shape)] = True
        y[:, left:left + steps, :] = x
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        left, right = self.padding
        return np.ascontiguousarray(dy[:, left:dy.shape[1] - right, :])

    def get_config(self):
        config = super().get_config()
        config.update(padding=list(self.padding), data_format=self.data_format)
        return config


class Cropping1D(Layer):
    """Removes steps at the start and end: ``cropping`` is an int or ``(left, right)``."""

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = as_pair(cropping, f"Cropping1D '{self.name}'", "cropping", 0)

    def build(self, input_shape):
        _check_rank3(self, input_shape)
        steps = self.compute_output_shape(input_shape)[1]
        if steps is not None and steps <= 0:
            raise ValueError(f"Cropping1D '{self.name}': cropping {self.cropping} leaves nothing of an "
                             f"input of shape {tuple(input_shape)}")
        self._input_spec = (3, {})

    def compute_output_shape(self, input_shape):
        _check_rank3(self, input_shape)
        n, steps, c = input_shape
        return (n, None if steps is None else steps - sum(self.cropping), c)

    def forward(self, x, training, ctx):
        left, right = self.cropping
        if x.shape[1] < left + right:   # a slice with a negative end would keep the wrong steps
            raise ValueError(f"Cropping1D '{self.name}': cropping {self.cropping} needs at least "
                             f"{left + right} steps, got an input of shape {x.shape}")
        ctx["shape"] = x.shape
        return np.ascontiguousarray(x[:, left:x.shape[1] - right, :])

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        left = self.cropping[0]
        dx = np.zeros(ctx["shape"], np.float32)
        dx[:, left:left + dy.shape[1], :] = dy
        return dx

    def get_config(self):
        config = super().get_config()
        config["cropping"] = list(self.cropping)
        return config

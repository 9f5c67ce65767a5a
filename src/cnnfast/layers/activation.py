"""Activation layers: ReLU, LeakyReLU, Softmax (Keras argument names and defaults)."""
from __future__ import annotations

import warnings

import numpy as np

from .. import ops
from ..ops._checks import as_float, as_int
from .base import Layer, buffer

__all__ = ["ReLU", "LeakyReLU", "Softmax"]


class ReLU(Layer):
    """``max(x, 0)``; optionally ``negative_slope * (x - threshold)`` below ``threshold`` and a cap
    at ``max_value``. The plain and the capped (``ReLU(max_value=6)``) forms run in C kernels;
    the forms with a slope or a threshold in NumPy."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        op = f"ReLU '{self.name}'"
        self.max_value = None if max_value is None else as_float(max_value, op, "max_value")
        self.negative_slope = as_float(negative_slope, op, "negative_slope")
        self.threshold = as_float(threshold, op, "threshold")
        if self.max_value is not None and self.max_value < 0:
            raise ValueError(f"{op}: max_value must be >= 0, got {max_value!r}")
        if self.negative_slope < 0:
            raise ValueError(f"{op}: negative_slope must be >= 0, got {negative_slope!r}")
        self._plain = self.max_value is None and self.negative_slope == 0.0 and self.threshold == 0.0
        self._capped = self.max_value is not None and self.negative_slope == 0.0 and self.threshold == 0.0

    def forward(self, x, training, ctx):
        if self._plain:
            y = ops.relu(x, out=buffer(ctx, "y", x.shape))
            ctx["y"] = y
            return y
        if self._capped:
            y = ops.capped_relu(x, self.max_value, out=buffer(ctx, "y", x.shape))
            ctx["y"] = y
            return y
        ctx["x"] = x
        t = np.float32(self.threshold)
        y = np.where(x >= t, x, np.float32(self.negative_slope) * (x - t))
        if self.max_value is not None:
            np.minimum(y, np.float32(self.max_value), out=y)
        return y.astype(np.float32, copy=False)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if self._plain:
            return ops.relu_backward(dy, ctx["y"], out=buffer(ctx, "dx", dy.shape))
        if self._capped:
            return ops.capped_relu_backward(dy, ctx["y"], self.max_value, out=buffer(ctx, "dx", dy.shape))
        x = ctx["x"]
        slope = np.where(x >= np.float32(self.threshold), np.float32(1), np.float32(self.negative_slope))
        if self.max_value is not None:
            slope[x >= np.float32(self.max_value)] = 0
        return (dy * slope).astype(np.float32, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update(max_value=self.max_value, negative_slope=self.negative_slope,
                      threshold=self.threshold)
        return config


class LeakyReLU(Layer):
    """``x`` if ``x >= 0`` else ``negative_slope * x`` (Keras default slope 0.3)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            warnings.warn("LeakyReLU: argument `alpha` is deprecated; use `negative_slope`",
                          DeprecationWarning, stacklevel=2)
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = as_float(negative_slope, f"LeakyReLU '{self.name}'", "negative_slope")
        if self.negative_slope < 0:
            raise ValueError(f"LeakyReLU '{self.name}': negative_slope must be >= 0, got {negative_slope!r}")

    def forward(self, x, training, ctx):
        ctx["x"] = x
        return ops.leaky_relu(x, self.negative_slope)

    def backward(self, dy, ctx, need_dx):
        return ops.leaky_relu_backward(dy, ctx["x"], self.negative_slope) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config


class Softmax(Layer):
    """Softmax along ``axis`` (default: the last)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = as_int(axis, f"Softmax '{self.name}'", "axis")

    def _output_activation(self):
        return "softmax" if self.axis == -1 else None

    def forward(self, x, training, ctx):
        if ctx.get("logits"):
            return x
        y = ops.softmax(x, axis=self.axis)
        ctx["y"] = y
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if ctx.get("logits"):
            return dy
        return ops.softmax_backward(dy, ctx["y"], axis=self.axis)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config

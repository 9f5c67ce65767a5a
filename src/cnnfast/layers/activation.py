"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax (Keras argument names and defaults)."""
from __future__ import annotations

import warnings

import numpy as np

from .. import initializers as _initializers
from .. import ops
from ..ops._checks import as_float, as_int
from .base import Layer, buffer, grad_target
from .core import _set_weight_options, _weight_options_config

__all__ = ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"]


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


class PReLU(Layer):
    """Parametric ReLU: ``x`` if ``x > 0`` else ``alpha * x``, with a learned ``alpha`` per input
    element (``keras.layers.PReLU``).

    ``alpha`` has the input's shape without the batch axis; each axis in ``shared_axes`` (1-based
    input axes, as in Keras) shares one alpha, e.g. ``shared_axes=[1, 2]`` on NHWC images gives one
    alpha per channel (PyTorch's ``nn.PReLU(num_parameters=C)``).
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        op = f"PReLU '{self.name}'"
        _set_weight_options(self, alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint)
        self.alpha_initializer = _initializers.get(alpha_initializer, f"{op}: alpha_initializer")
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            self.shared_axes = [as_int(a, op, "shared_axes", 1) for a in axes]
        self.alpha = None

    def build(self, input_shape):
        op = f"PReLU '{self.name}'"
        ndim = len(input_shape)
        shared = set(self.shared_axes or ())
        if any(a >= ndim for a in shared):
            raise ValueError(f"{op}: shared_axes {self.shared_axes} must name input axes 1..{ndim - 1} "
                             f"of the input shape {tuple(input_shape)}")
        shape = tuple(1 if a in shared else input_shape[a] for a in range(1, ndim))
        if any(s is None for s in shape):
            raise ValueError(f"{op}: every axis not in shared_axes needs a defined size to size alpha, "
                             f"got input shape {tuple(input_shape)} and shared_axes={self.shared_axes}")
        self.alpha = self.add_weight(shape, self.alpha_initializer, name="alpha",
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        self._input_spec = (ndim, {a: input_shape[a] for a in range(1, ndim) if a not in shared})
        self._reduce_axes = (0,) + tuple(a for a in sorted(shared))

    def forward(self, x, training, ctx):
        ctx["x"] = x
        y = np.multiply(np.minimum(x, 0), self.alpha.value, out=buffer(ctx, "y", x.shape))
        y += np.maximum(x, 0)
        return y

    def backward(self, dy, ctx, need_dx):
        x = ctx["x"]
        if self._trainable:
            # d/d alpha of alpha * min(x, 0), summed over the batch and the shared axes, in float64
            g = (dy.astype(np.float64) * np.minimum(x, 0)).sum(axis=self._reduce_axes, keepdims=True)[0]
            slot, acc = grad_target(self.alpha)
            if acc:
                slot += g.astype(np.float32)
            else:
                slot[...] = g
        if not need_dx:
            return None
        return np.where(x > 0, dy, dy * self.alpha.value).astype(np.float32, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update(alpha_initializer=_initializers.serialize(self.alpha_initializer),
                      **_weight_options_config(self, "alpha_regularizer", "alpha_constraint"),
                      shared_axes=None if self.shared_axes is None else list(self.shared_axes))
        return config


class ELU(Layer):
    """Exponential linear unit: ``x`` if ``x > 0`` else ``alpha * (exp(x) - 1)``
    (``keras.layers.ELU``, default ``alpha=1.0``)."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = as_float(alpha, f"ELU '{self.name}'", "alpha")

    def forward(self, x, training, ctx):
        negative = np.float32(self.alpha) * np.expm1(np.minimum(x, 0))
        y = np.where(x > 0, x, negative).astype(np.float32, copy=False)
        ctx.update(x=x, y=y)
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        x, y = ctx["x"], ctx["y"]
        # below zero, d/dx alpha * (exp(x) - 1) = alpha * exp(x) = y + alpha
        return np.where(x > 0, dy, dy * (y + np.float32(self.alpha))).astype(np.float32, copy=False)

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
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

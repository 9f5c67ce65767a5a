"""1-D pooling layers over ``(batch, steps, channels)``: MaxPooling1D, AveragePooling1D,
GlobalMaxPooling1D, GlobalAveragePooling1D (Keras 3's arguments, defaults and output shapes).

Each runs the 2-D NHWC pooling kernels on the free view ``(batch, 1, steps, channels)`` with
``pool_size (1, p)`` and ``strides (1, s)``. As in the 2-D layers, max pooling keeps its argmax
from the training pass (its backward is one scatter), and "same" average pooling divides by the
number of real cells in each window, as Keras does.

A MaxPooling1D reading the ReLU output of the layer before it (and nothing else reads that
output) applies that ReLU's derivative to its own, smaller gradient, so the layer before skips
its full-size ReLU backward (``Model._mark_pool_fusions``, as MaxPooling2D).

Keras's ``mask`` argument of GlobalAveragePooling1D is not supported: cnnfast's models carry no
masks (no layer produces one).
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ops._checks import check_choice
from .base import Layer, buffer, recording
from .conv import _check_data_format
from .conv1d import as_single

__all__ = ["MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D",
           "MaxPool1D", "AvgPool1D", "GlobalMaxPool1D", "GlobalAvgPool1D"]


def _view4(x):
    """``(batch, steps, channels)`` as the NHWC ``(batch, 1, steps, channels)`` (no copy)."""
    return x.reshape(x.shape[0], 1, x.shape[1], x.shape[2])


def _check_rank3(layer, input_shape):
    if len(input_shape) != 3:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expects inputs of shape "
                         f"(batch, steps, channels), got {tuple(input_shape)}")


class _Pooling1D(Layer):
    def __init__(self, pool_size, strides, padding, data_format, **kwargs):
        super().__init__(**kwargs)
        op = f"{type(self).__name__} '{self.name}'"
        self.pool_size = as_single(pool_size, op, "pool_size", 1)
        self.strides = self.pool_size if strides is None else as_single(strides, op, "strides", 1)
        self.padding = check_choice(padding, ("valid", "same"), op, "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        _check_rank3(self, input_shape)
        steps = self.compute_output_shape(input_shape)[1]
        if steps is not None and steps <= 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': computed output size would be zero "
                             f"or negative for input shape {tuple(input_shape)} with pool_size="
                             f"{self.pool_size}, strides={self.strides}, padding={self.padding!r}")
        self._input_spec = (3, {})

    def compute_output_shape(self, input_shape):
        n, steps, c = input_shape
        p, s = self.pool_size[0], self.strides[0]
        if steps is not None:
            steps = (steps - 1) // s + 1 if self.padding == "same" else (steps - p) // s + 1
        return (n, steps, c)

    def _args(self):
        return dict(pool_size=(1, self.pool_size[0]), strides=(1, self.strides[0]), padding=self.padding)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), padding=self.padding, strides=list(self.strides),
                      data_format=self.data_format)
        return config


class MaxPooling1D(_Pooling1D):
    """Max over windows of ``pool_size`` steps every ``strides`` steps (default: ``pool_size``)."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)

    _masks_relu_grad = True   # see the module docstring

    def forward(self, x, training, ctx):
        if not (training or recording()):
            y = ops.max_pool2d(_view4(x), **self._args())
            return y.reshape(y.shape[0], y.shape[2], y.shape[3])
        y, argmax = ops.max_pool2d(_view4(x), return_argmax=True, **self._args())
        y = y.reshape(y.shape[0], y.shape[2], y.shape[3])
        ctx["argmax"], ctx["shape"], ctx["y"] = argmax, _view4(x).shape, y
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if ctx.get("mask_relu_grad"):
            dy = ops.relu_backward(dy, ctx["y"], out=buffer(ctx, "dy_masked", dy.shape))
        dx = ops.max_pool2d_backward(_view4(dy), ctx["argmax"], ctx["shape"], **self._args())
        return dx.reshape(dx.shape[0], dx.shape[2], dx.shape[3])


class AveragePooling1D(_Pooling1D):
    """Mean over windows of ``pool_size`` steps (``pool_size`` is required, as in Keras)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)

    def forward(self, x, training, ctx):
        ctx["shape"] = _view4(x).shape
        y = ops.avg_pool2d(_view4(x), **self._args())
        return y.reshape(y.shape[0], y.shape[2], y.shape[3])

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        dx = ops.avg_pool2d_backward(_view4(dy), ctx["shape"], **self._args())
        return dx.reshape(dx.shape[0], dx.shape[2], dx.shape[3])


class _GlobalPooling1D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        _check_rank3(self, input_shape)
        self._input_spec = (3, {})

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, input_shape[2])
        return (input_shape[0], input_shape[2])

    def _shape_out(self, y):
        """The kernels' ``(batch, channels)`` result in this layer's output shape."""
        return y.reshape(y.shape[0], 1, y.shape[-1]) if self.keepdims else y.reshape(y.shape[0], y.shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class GlobalAveragePooling1D(_GlobalPooling1D):
    """Mean over the steps: ``(batch, steps, c) -> (batch, c)`` (or ``(batch, 1, c)``). With a
    mask (e.g. from ``Embedding(mask_zero=True)``), the mean over the kept steps only, as Keras:
    ``sum(x * m) / sum(m)``; the mask ends here."""

    supports_masking = True
    _consumes_mask = True

    def compute_mask(self, inputs, previous_mask):
        return None

    def forward(self, x, training, ctx, mask=None):
        ctx["shape"] = _view4(x).shape
        if mask is None:
            ctx.pop("weights", None)
            return self._shape_out(ops.global_avg_pool2d(_view4(x)))
        m = np.asarray(mask, np.float32).reshape(x.shape[0], x.shape[1], 1)
        with np.errstate(divide="ignore", invalid="ignore"):   # a row without kept steps: NaN, as Keras
            weights = m / m.sum(axis=1, keepdims=True)
        ctx["weights"] = weights
        return self._shape_out(np.einsum("nsc,nsk->nc", x, weights, dtype=np.float32))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, _, steps, c = ctx["shape"]
        if ctx.get("weights") is not None:
            return (dy.reshape(n, 1, c) * ctx["weights"]).astype(np.float32)
        return ops.global_avg_pool2d_backward(dy.reshape(n, c), ctx["shape"]).reshape(n, steps, c)


class GlobalMaxPooling1D(_GlobalPooling1D):
    """Max over the steps: ``(batch, steps, c) -> (batch, c)`` (or ``(batch, 1, c)``)."""

    def forward(self, x, training, ctx):
        if not (training or recording()):
            return self._shape_out(ops.global_max_pool2d(_view4(x)))
        y, argmax = ops.global_max_pool2d(_view4(x), return_argmax=True)
        ctx["argmax"], ctx["shape"] = argmax, _view4(x).shape
        return self._shape_out(y)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, _, steps, c = ctx["shape"]
        dx = ops.global_max_pool2d_backward(dy.reshape(n, c), ctx["argmax"], ctx["shape"])
        return dx.reshape(n, steps, c)


MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D

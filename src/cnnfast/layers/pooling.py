"""Pooling layers (NHWC): MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D.

Max pooling keeps the kernel's argmax from the training forward pass so its backward is a single
scatter; at inference no argmax is produced. Average pooling with "same" padding divides by the
number of real (unpadded) cells in each window, as Keras does.

cnnfast extension: ``MaxPooling2D`` / ``AveragePooling2D`` also take explicit
``padding=((top, bottom), (left, right))`` (padded cells never count, as with "same"; PyTorch's
``MaxPool2d(padding=p)`` is ``((p, p), (p, p))``). It is saved in the config as nested lists;
Keras's string values are unchanged.
"""
from __future__ import annotations

from .. import ops
from ..ops._checks import as_pair
from ..ops._pool import check_pool_padding
from .base import Layer, buffer, recording
from .conv import _check_data_format

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "pool_output_length"]


def pool_output_length(n, p, s, padding):
    if n is None:
        return None
    if padding == "same":
        return (n - 1) // s + 1
    if not isinstance(padding, str):  # explicit (before, after) along this axis
        n += padding[0] + padding[1]
    return (n - p) // s + 1 if n >= p else 0


class _Pooling2D(Layer):
    def __init__(self, pool_size, strides, padding, data_format, **kwargs):
        super().__init__(**kwargs)
        op = f"{type(self).__name__} '{self.name}'"
        self.pool_size = as_pair(pool_size, op, "pool_size", 1)
        self.strides = self.pool_size if strides is None else as_pair(strides, op, "strides", 1)
        self.padding = check_pool_padding(padding, op)
        if not isinstance(self.padding, str):
            for axis, k, pad in zip(("height", "width"), self.pool_size, self.padding):
                if max(pad) >= k:
                    raise ValueError(f"{op}: explicit padding {pad} along the {axis} must be smaller "
                                     f"than pool_size {k}")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of shape "
                             f"(batch, height, width, channels), got {input_shape}")
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s <= 0 for s in out[1:3]):
            raise ValueError(f"{type(self).__name__} '{self.name}': computed output size would be zero "
                             f"or negative for input shape {input_shape} with pool_size={self.pool_size},"
                             f" strides={self.strides}, padding={self.padding!r}")
        self._input_spec = (4, {})

    def compute_output_shape(self, input_shape):
        pad_h, pad_w = (self.padding, self.padding) if isinstance(self.padding, str) else self.padding
        return (input_shape[0],
                pool_output_length(input_shape[1], self.pool_size[0], self.strides[0], pad_h),
                pool_output_length(input_shape[2], self.pool_size[1], self.strides[1], pad_w),
                input_shape[3])

    def _args(self):
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding)

    def get_config(self):
        config = super().get_config()
        padding = self.padding if isinstance(self.padding, str) else [list(p) for p in self.padding]
        config.update(pool_size=list(self.pool_size), strides=list(self.strides), padding=padding,
                      data_format=self.data_format)
        return config


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows every ``strides`` (default: ``pool_size``)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    # A model may hand this layer the ReLU derivative of the layer before it (ctx["mask_relu_grad"]):
    # see Model._mark_relu_pool_pairs.
    _masks_relu_grad = True

    def forward(self, x, training, ctx):
        fused = ctx.pop("pooled_by_conv", None)
        if fused is not None and fused is x:   # the conv before it already pooled (and set argmax)
            return x
        if not (training or recording()):
            return ops.max_pool2d(x, **self._args())
        y, argmax = ops.max_pool2d(x, return_argmax=True, **self._args())
        ctx["argmax"], ctx["shape"], ctx["y"] = argmax, x.shape, y
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if ctx.get("mask_relu_grad"):
            dy = ops.relu_backward(dy, ctx["y"], out=buffer(ctx, "dy_masked", dy.shape))
        return ops.max_pool2d_backward(dy, ctx["argmax"], ctx["shape"], **self._args())


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows (``pool_size`` is required, as in Keras)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return ops.avg_pool2d(x, **self._args())

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return ops.avg_pool2d_backward(dy, ctx["shape"], **self._args())


class _GlobalPooling2D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of shape "
                             f"(batch, height, width, channels), got {input_shape}")
        self._input_spec = (4, {})

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, input_shape[3])
        return (input_shape[0], input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over height and width: ``(batch, h, w, c) -> (batch, c)`` (or ``(batch, 1, 1, c)``)."""

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return ops.global_avg_pool2d(x, keepdims=self.keepdims)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, _, _, c = ctx["shape"]
        return ops.global_avg_pool2d_backward(dy.reshape(n, c), ctx["shape"])


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Max over height and width."""

    def forward(self, x, training, ctx):
        if not (training or recording()):
            return ops.global_max_pool2d(x, keepdims=self.keepdims)
        y, argmax = ops.global_max_pool2d(x, keepdims=self.keepdims, return_argmax=True)
        ctx["argmax"], ctx["shape"] = argmax, x.shape
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        n, _, _, c = ctx["shape"]
        return ops.global_max_pool2d_backward(dy.reshape(n, c), ctx["argmax"], ctx["shape"])


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D

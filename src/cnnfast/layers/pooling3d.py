"""Volume pooling (NDHWC): MaxPooling3D, AveragePooling3D, GlobalAveragePooling3D, GlobalMaxPooling3D.

Geometry and padding as Keras (``strides=None`` is ``pool_size``; "same" windows count only real
cells). The work runs in ``ops.max_pool3d`` / ``ops.avg_pool3d``: the 2-D pooling kernels over the
depth slices, then over depth (see ``ops/_pool3d.py``).
"""
from __future__ import annotations

from .. import ops
from ..ops._checks import check_choice
from .base import Layer, recording
from .conv import _check_data_format
from .conv3d import as_triple
from .pooling import pool_output_length

__all__ = ["MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D", "GlobalMaxPooling3D",
           "MaxPool3D", "AvgPool3D", "GlobalAvgPool3D", "GlobalMaxPool3D"]


def _check_rank(layer, input_shape):
    if len(input_shape) != 5:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': expects inputs of shape "
                         f"(batch, depth, height, width, channels), got {input_shape}")


class _Pooling3D(Layer):
    def __init__(self, pool_size, strides, padding, data_format, **kwargs):
        super().__init__(**kwargs)
        op = f"{type(self).__name__} '{self.name}'"
        self.pool_size = as_triple(pool_size, op, "pool_size", 1)
        self.strides = self.pool_size if strides is None else as_triple(strides, op, "strides", 1)
        self.padding = check_choice(padding, ("valid", "same"), op, "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"

    def build(self, input_shape):
        _check_rank(self, input_shape)
        out = self.compute_output_shape(input_shape)
        if any(s is not None and s <= 0 for s in out[1:4]):
            raise ValueError(f"{type(self).__name__} '{self.name}': computed output size would be zero "
                             f"or negative for input shape {input_shape} with pool_size={self.pool_size},"
                             f" strides={self.strides}, padding={self.padding!r}")
        self._input_spec = (5, {})

    def compute_output_shape(self, input_shape):
        return ((input_shape[0],) + tuple(pool_output_length(input_shape[1 + i], self.pool_size[i],
                                                             self.strides[i], self.padding) for i in range(3))
                + (input_shape[4],))

    def _args(self):
        return dict(pool_size=self.pool_size, strides=self.strides, padding=self.padding)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), padding=self.padding, strides=list(self.strides),
                      data_format=self.data_format)
        return config


class MaxPooling3D(_Pooling3D):
    """Max over ``pool_size`` boxes every ``strides`` (default: ``pool_size``)."""

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def forward(self, x, training, ctx):
        if not (training or recording()):
            return ops.max_pool3d(x, **self._args())
        y, ctx["argmax"] = ops.max_pool3d(x, return_argmax=True, **self._args())
        ctx["shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return ops.max_pool3d_backward(dy, ctx["argmax"], ctx["shape"], **self._args())


class AveragePooling3D(_Pooling3D):
    """Mean over ``pool_size`` boxes (``pool_size`` is required, as in Keras)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return ops.avg_pool3d(x, **self._args())

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return ops.avg_pool3d_backward(dy, ctx["shape"], **self._args())


class _GlobalPooling3D(Layer):
    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        _check_rank(self, input_shape)
        self._input_spec = (5, {})

    def compute_output_shape(self, input_shape):
        if self.keepdims:
            return (input_shape[0], 1, 1, 1, input_shape[4])
        return (input_shape[0], input_shape[4])

    def get_config(self):
        config = super().get_config()
        config.update(data_format=self.data_format, keepdims=self.keepdims)
        return config


class GlobalAveragePooling3D(_GlobalPooling3D):
    """Mean over depth, height and width: ``(batch, d, h, w, c) -> (batch, c)``."""

    def forward(self, x, training, ctx):
        ctx["shape"] = x.shape
        return ops.global_avg_pool3d(x, keepdims=self.keepdims)

    def backward(self, dy, ctx, need_dx):
        return ops.global_avg_pool3d_backward(dy, ctx["shape"]) if need_dx else None


class GlobalMaxPooling3D(_GlobalPooling3D):
    """Max over depth, height and width."""

    def forward(self, x, training, ctx):
        if not (training or recording()):
            return ops.global_max_pool3d(x, keepdims=self.keepdims)
        y, ctx["argmax"] = ops.global_max_pool3d(x, keepdims=self.keepdims, return_argmax=True)
        ctx["shape"] = x.shape
        return y

    def backward(self, dy, ctx, need_dx):
        return ops.global_max_pool3d_backward(dy, ctx["argmax"], ctx["shape"]) if need_dx else None


MaxPool3D = MaxPooling3D
AvgPool3D = AveragePooling3D
GlobalAvgPool3D = GlobalAveragePooling3D
GlobalMaxPool3D = GlobalMaxPooling3D

"""1-D convolution layers for sequences (text CNNs): Conv1D and SeparableConv1D, as Keras 3.

Inputs are ``(batch, steps, channels)`` (channels_last). Each layer runs the 2-D NHWC kernels on
the free view ``(batch, 1, steps, channels)``: kernels ``(k, cin // groups, filters)`` are viewed
as HWIO ``(1, k, cin // groups, filters)``, strides and dilation become ``(1, s)`` and ``(1, d)``.
"causal" padding is the explicit padding ``((0, 0), (d * (k - 1), 0))``, which the kernels read as
zeros: no padded copy of the input is made. The steps run along the image width, not the height:
the 2-D kernels tile output rows into runs of pixels, and one-pixel-wide images (steps as
height) ran 3-4x slower in every pass on text-CNN shapes (400 steps, 128 -> 128 channels).

The layers subclass Conv2D / SeparableConv2D, so argument checking, weight creation, gradient
writing and ``get_config`` are theirs; only the geometry and the forward/backward calls differ.
"""
from __future__ import annotations

from .. import ops
from ..ops._checks import as_int, check_choice
from .base import buffer, grad_target
from .conv import Conv2D, _check_data_format, conv_output_length
from .separable_conv import SeparableConv2D

__all__ = ["Conv1D", "SeparableConv1D", "Convolution1D", "SeparableConvolution1D", "as_single"]


def as_single(value, op: str, name: str, minimum: int | None = None) -> tuple[int]:
    """An int or a 1-tuple of ints, as a 1-tuple (Keras's ``standardize_tuple(value, 1, ...)``)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{op}: {name} must be an int or a tuple of 1 int, got {value!r}")
        value = value[0]
    return (as_int(value, op, name, minimum),)


def _set_value_shape(var, shape) -> None:
    """Give a freshly built weight (and its gradient) a Keras shape: views of the same data."""
    var.value = var.value.reshape(shape)
    if var.grad is not None:
        var.grad = var.grad.reshape(shape)


class _Conv1DGeometry:
    """The 1-D geometry shared by the 1-D layers: Keras's 1-tuples in the public attributes
    (``kernel_size == (k,)``), the equivalent 2-D arguments for the NHWC kernels."""

    _paddings = ("valid", "same", "causal")

    def _init_conv(self, kernel_size, strides, padding, data_format, dilation_rate, activation,
                   use_bias, explicit_padding=False):
        op = f"{type(self).__name__} '{self.name}'"
        self.kernel_size = as_single(kernel_size, op, "kernel_size", 1)
        self.strides = as_single(strides, op, "strides", 1)
        self.padding = check_choice(padding, self._paddings, op, "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.dilation_rate = as_single(dilation_rate, op, "dilation_rate", 1)
        if self.strides[0] > 1 and self.dilation_rate[0] > 1:
            raise ValueError(f"{op}: strides > 1 not supported in conjunction with dilation_rate > 1; "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}")
        self._set_activation(activation)
        self.use_bias = bool(use_bias)

    def _input_channels(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of shape "
                             f"(batch, steps, channels) with known channels, got {tuple(input_shape)}")
        return input_shape[-1]

    def _pads(self):
        """(before, after) padding of the steps axis: "valid", "same" or the causal pair."""
        if self.padding == "causal":
            return (self.dilation_rate[0] * (self.kernel_size[0] - 1), 0)
        return self.padding

    def _spatial_out(self, input_shape):
        return (conv_output_length(input_shape[1], self.kernel_size[0], self._pads(),
                                   self.strides[0], self.dilation_rate[0]),)

    def _geometry2d(self):
        pads = self._pads()
        return dict(strides=(1, self.strides[0]), dilation=(1, self.dilation_rate[0]),
                    padding=pads if isinstance(pads, str) else ((0, 0), pads))

    def _finish_build(self, cin):
        self._input_spec = (3, {-1: cin})


class Conv1D(_Conv1DGeometry, Conv2D):
    """1-D convolution (cross-correlation) over ``(batch, steps, channels)`` sequences.

    Args:
        filters: number of output channels.
        kernel_size: int or 1-tuple.
        strides: int or 1-tuple.
        padding: "valid", "same" (output ``ceil(steps / strides)``) or "causal" (left padding of
            ``dilation_rate * (kernel_size - 1)``: output ``t`` sees no input after ``t``).
        dilation_rate: int or 1-tuple.
        groups: split input channels into groups, each convolved with ``filters // groups`` filters.
        activation, use_bias, kernel_initializer, bias_initializer: as Keras.

    Kernel ``(kernel_size, channels // groups, filters)``, bias ``(filters,)``.
    Input shape ``(batch, steps, channels)``; output ``(batch, new_steps, filters)``.
    """

    _fuses_max_pool = False

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)   # Conv2D's build: kernel_size + (cin // groups, filters)
        self._finish_build(input_shape[-1])

    def _kernel_value(self):
        return self.kernel.value.reshape((1,) + self.kernel.value.shape)

    def forward(self, x, training, ctx):
        n, steps, _ = x.shape
        x4 = x.reshape(n, 1, steps, x.shape[2])
        (out_steps,) = self._spatial_out(x.shape)
        z = ops.conv2d(x4, self._kernel_value(), bias=None if self.bias is None else self.bias.value,
                       groups=self.groups, activation=self._fused_activation,
                       out=buffer(ctx, "z", (n, 1, out_steps, self.filters)), **self._geometry2d())
        ctx["x"] = x4
        return self._activate(z.reshape(n, out_steps, self.filters), ctx)

    def backward(self, dy, ctx, need_dx):
        want_w = self._trainable
        if not want_w and not need_dx:
            return None
        dz = self._activation_backward(dy, ctx)
        x4 = ctx["x"]
        dx, dw, db = ops.conv2d_backward(dz.reshape(dz.shape[0], 1, dz.shape[1], dz.shape[2]), x4,
                                         self._kernel_value(), groups=self.groups, need_input_grad=need_dx,
                                         need_bias_grad=self.bias is not None and want_w,
                                         **self._geometry2d())
        if want_w:
            self._write_grads(dw, db)
        return None if dx is None else dx.reshape(x4.shape[0], x4.shape[2], x4.shape[3])


class SeparableConv1D(_Conv1DGeometry, SeparableConv2D):
    """Depthwise-separable 1-D convolution (Keras 3's arguments and defaults).

    Weights ``depthwise_kernel`` ``(kernel_size, channels, depth_multiplier)``,
    ``pointwise_kernel`` ``(1, channels * depth_multiplier, filters)``, ``bias`` ``(filters,)``.
    Input ``(batch, steps, channels)``; output ``(batch, new_steps, filters)`` (steps as Conv1D).
    Padding is "valid" or "same": Keras 3 refuses "causal" for separable convolutions.
    """

    _paddings = ("valid", "same")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, depth_multiplier=depth_multiplier,
                         activation=activation, use_bias=use_bias,
                         depthwise_initializer=depthwise_initializer,
                         pointwise_initializer=pointwise_initializer, bias_initializer=bias_initializer,
                         depthwise_regularizer=depthwise_regularizer,
                         pointwise_regularizer=pointwise_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         depthwise_constraint=depthwise_constraint,
                         pointwise_constraint=pointwise_constraint, bias_constraint=bias_constraint,
                         **kwargs)

    def build(self, input_shape):
        super().build(input_shape)   # depthwise (k, cin, dm) as Keras; pointwise made (1, 1, mid, f)
        _set_value_shape(self.pointwise_kernel, self.pointwise_kernel.shape[1:])
        self._finish_build(input_shape[-1])

    def _depthwise_view(self):
        k, cin, dm = self.depthwise_kernel.value.shape
        return self.depthwise_kernel.value.reshape(1, k, 1, cin * dm)

    def _pointwise_view(self):
        return self.pointwise_kernel.value.reshape((1,) + self.pointwise_kernel.value.shape)

    def forward(self, x, training, ctx):
        n, steps, cin = x.shape
        x4 = x.reshape(n, 1, steps, cin)
        dw = self._depthwise_view()
        (out_steps,) = self._spatial_out(x.shape)
        mid = ops.conv2d(x4, dw, groups=cin, out=buffer(ctx, "mid", (n, 1, out_steps, dw.shape[3])),
                         **self._geometry2d())
        z = ops.conv2d(mid, self._pointwise_view(), bias=None if self.bias is None else self.bias.value,
                       activation=self._fused_activation,
                       out=buffer(ctx, "z", (n, 1, out_steps, self.filters)))
        ctx["x"], ctx["mid"] = x4, mid
        return self._activate(z.reshape(n, out_steps, self.filters), ctx)

    def backward(self, dy, ctx, need_dx):
        want_w = self._trainable
        if not want_w and not need_dx:
            return None
        dz = self._activation_backward(dy, ctx)
        x4, mid = ctx["x"], ctx["mid"]
        dz4 = dz.reshape(dz.shape[0], 1, dz.shape[1], dz.shape[2])
        dmid, dpw, db = ops.conv2d_backward(dz4, mid, self._pointwise_view(), need_input_grad=True,
                                            need_bias_grad=self.bias is not None and want_w)
        dx, ddw, _ = ops.conv2d_backward(dmid, x4, self._depthwise_view(), groups=x4.shape[3],
                                         need_input_grad=need_dx, need_bias_grad=False,
                                         **self._geometry2d())
        if want_w:
            for var, g in ((self.depthwise_kernel, ddw), (self.pointwise_kernel, dpw), (self.bias, db)):
                if var is None or g is None:
                    continue
                slot, acc = grad_target(var)
                g = g.reshape(slot.shape)
                if acc:
                    slot += g
                else:
                    slot[...] = g
        return None if dx is None else dx.reshape(x4.shape[0], x4.shape[2], x4.shape[3])


Convolution1D = Conv1D
SeparableConvolution1D = SeparableConv1D

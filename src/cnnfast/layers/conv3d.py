"""Volume convolutions: Conv3D and Conv3DTranspose over NDHWC inputs (medical scans, video clips).

Kernels as Keras: Conv3D ``(kd, kh, kw, cin // groups, filters)``, Conv3DTranspose
``(kd, kh, kw, filters, cin)``. The work runs in ``ops.conv3d`` / ``ops.conv3d_transpose``, which
run each depth tap of the kernel as one batched 2-D convolution (see ``ops/_conv3d.py``). Output
sizes follow Keras: "valid" ``floor((n - d*(k-1) - 1) / s) + 1``, "same" ``ceil(n / s)``; the
transposed sizes are Keras's ``deconv_output_length``.
"""
from __future__ import annotations

from .. import initializers as _initializers
from .. import ops
from ..ops._checks import as_int, check_choice
from .base import Layer
from .conv import _BaseConv, _check_data_format, conv_output_length, deconv_output_length
from .core import _set_weight_options

__all__ = ["Conv3D", "Conv3DTranspose"]


def as_triple(value, op, name, minimum):
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise ValueError(f"{op}: {name} must be an int or a tuple of 3 ints, got {value!r}")
        return tuple(as_int(v, op, name, minimum) for v in value)
    v = as_int(value, op, name, minimum)
    return (v, v, v)


class _BaseConv3D(_BaseConv):
    def _init_conv3d(self, filters, kernel_size, strides, padding, data_format, dilation_rate,
                     activation, use_bias, kernel_initializer, bias_initializer, options):
        op = f"{type(self).__name__} '{self.name}'"
        _set_weight_options(self, **{k: v for k, v in options.items() if k != "activity_regularizer"})
        self._set_activity_regularizer(options["activity_regularizer"])
        self.filters = as_int(filters, op, "filters", 1)
        self.kernel_size = as_triple(kernel_size, op, "kernel_size", 1)
        self.strides = as_triple(strides, op, "strides", 1)
        self.padding = check_choice(padding, ("valid", "same"), op, "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.dilation_rate = as_triple(dilation_rate, op, "dilation_rate", 1)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{op}: strides > 1 not supported in conjunction with dilation_rate > 1; "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}")
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, f"{op}: kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"{op}: bias_initializer")
        self.kernel = self.bias = None

    def _input_channels(self, input_shape):
        if len(input_shape) != 5 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of shape "
                             f"(batch, depth, height, width, channels) with known channels, got {input_shape}")
        return input_shape[-1]

    def _build_weights(self, kernel_shape, input_shape):
        self._check_positive(input_shape, self._spatial_out(input_shape))
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (5, {-1: input_shape[-1]})

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._spatial_out(input_shape) + (self.filters,)

    # the op pair a subclass runs: forward(x, kernel, bias=, activation=, **args), its backward
    _forward_op = _backward_op = None

    def forward(self, x, training, ctx):
        z = self._forward_op(x, self.kernel.value, bias=None if self.bias is None else self.bias.value,
                                   activation=self._fused_activation, **self._op_args())
        ctx["x"] = x
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx):
        dz = self._activation_backward(dy, ctx)
        if not self._trainable and not need_dx:
            return None
        dx, dw, db = self._backward_op(dz, ctx["x"], self.kernel.value, need_input_grad=need_dx,
                                             need_bias_grad=self.bias is not None and self._trainable,
                                             **self._op_args())
        if self._trainable:
            self._write_grads(dw, db)
        return dx

    def _config(self, **extra):
        config = self._conv_config()
        config.update(filters=self.filters, **extra,
                      kernel_initializer=_initializers.serialize(self.kernel_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer),
                      **self._weight_options_config("kernel"))
        return config


class Conv3D(_BaseConv3D):
    """3-D convolution over ``(batch, depth, height, width, channels)`` volumes.

    Args as Keras's ``Conv3D``: filters, kernel_size (int or 3 ints), strides, padding
    ("valid"/"same"), dilation_rate, groups, activation, use_bias, initializers, regularizers and
    constraints.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        Layer.__init__(self, **kwargs)
        self._init_conv3d(filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                          use_bias, kernel_initializer, bias_initializer, dict(
                              kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                              activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint))
        op = f"Conv3D '{self.name}'"
        self.groups = as_int(groups, op, "groups", 1)
        if self.filters % self.groups:
            raise ValueError(f"{op}: filters ({self.filters}) must be divisible by groups ({self.groups})")

    _fuses_max_pool = False
    _forward_op, _backward_op = staticmethod(ops.conv3d), staticmethod(ops.conv3d_backward)

    def _spatial_out(self, input_shape):
        return tuple(conv_output_length(input_shape[1 + i], self.kernel_size[i], self.padding,
                                        self.strides[i], self.dilation_rate[i]) for i in range(3))

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        if cin % self.groups:
            raise ValueError(f"Conv3D '{self.name}': input channels ({cin}) must be divisible by "
                             f"groups ({self.groups})")
        self._build_weights(self.kernel_size + (cin // self.groups, self.filters), input_shape)

    def _op_args(self):
        return dict(strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
                    groups=self.groups)

    def get_config(self):
        return self._config(groups=self.groups)


class Conv3DTranspose(_BaseConv3D):
    """Transposed 3-D convolution (learned upsampling of volumes); kernel ``(kd, kh, kw, filters, cin)``."""

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        Layer.__init__(self, **kwargs)
        self._init_conv3d(filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                          use_bias, kernel_initializer, bias_initializer, dict(
                              kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                              activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint))
        op = f"Conv3DTranspose '{self.name}'"
        if output_padding is not None:
            output_padding = as_triple(output_padding, op, "output_padding", 0)
            for p, s, d in zip(output_padding, self.strides, self.dilation_rate):
                if p >= s and p >= d:
                    raise ValueError(f"{op}: output_padding {output_padding} must be smaller than "
                                     f"strides {self.strides} or dilation_rate {self.dilation_rate}")
        self.output_padding = output_padding

    _forward_op = staticmethod(ops.conv3d_transpose)
    _backward_op = staticmethod(ops.conv3d_transpose_backward)

    def _spatial_out(self, input_shape):
        pads = self.output_padding or (None,) * 3
        return tuple(deconv_output_length(input_shape[1 + i], self.kernel_size[i], self.padding,
                                          self.strides[i], self.dilation_rate[i], pads[i])
                     for i in range(3))

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        self._build_weights(self.kernel_size + (self.filters, cin), input_shape)

    def _op_args(self):
        return dict(strides=self.strides, padding=self.padding, output_padding=self.output_padding,
                    dilation=self.dilation_rate)

    def get_config(self):
        return self._config(output_padding=None if self.output_padding is None else list(self.output_padding))

"""Convolution layers: Conv2D, DepthwiseConv2D, Conv2DTranspose (NHWC, Keras kernel layouts).

* Conv2D kernel ``(kh, kw, cin // groups, filters)`` (HWIO), bias ``(filters,)``. Forward is one
  ``ops.conv2d`` call with bias and ReLU fused into the GEMM epilogue, written into a buffer reused
  between steps; backward is one ``ops.conv2d_backward`` call (input gradient skipped for the
  first layer of a model).
* DepthwiseConv2D kernel ``(kh, kw, cin, depth_multiplier)`` is the grouped convolution with
  ``groups = cin`` and the kernel viewed (no copy) as ``(kh, kw, 1, cin * depth_multiplier)``.
* Conv2DTranspose kernel ``(kh, kw, filters, cin)`` as Keras; ``ops.conv2d_transpose``.

Output sizes follow Keras: "valid" ``floor((n - d*(k-1) - 1) / s) + 1``, "same" ``ceil(n / s)``.
Conv2D and DepthwiseConv2D also take explicit ``padding=((top, bottom), (left, right))`` (beyond
Keras, as PyTorch's symmetric ``padding=1`` on a stride-2 layer needs, which no Keras mode gives):
the kernels read the padding as zeros, so no padded copy of the input is made.
"""
from __future__ import annotations

import numpy as np

from .. import initializers as _initializers
from .. import ops
from ..ops import _conv as _conv_ops
from ..ops._checks import as_int, as_pair, check_choice
from ..runtime import get_num_threads
from .base import Layer, buffer, grad_target, recording
from .core import ActivationMixin, _set_weight_options, _weight_options_config

__all__ = ["Conv2D", "DepthwiseConv2D", "Conv2DTranspose", "conv_output_length",
           "deconv_output_length"]


def conv_output_length(n, k, padding, stride, dilation=1):
    """Output length along one axis; ``padding`` is "valid", "same" or (before, after)."""
    if n is None:
        return None
    eff = dilation * (k - 1) + 1
    if padding == "same":
        return (n + stride - 1) // stride
    if not isinstance(padding, str):
        n = n + padding[0] + padding[1]
    return max((n - eff) // stride + 1, 0) if n >= eff else 0


def deconv_output_length(n, k, padding, stride, dilation=1, output_padding=None):
    if n is None:
        return None
    eff = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return n * stride + max(eff - stride, 0)
        return n * stride
    pad = eff // 2 if padding == "same" else 0
    return (n - 1) * stride + eff - 2 * pad + output_padding


def _check_data_format(layer, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': cnnfast is channels_last (NHWC) only, "
                         f"got data_format={data_format!r}")


class _BaseConv(ActivationMixin, Layer):
    def _init_conv(self, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                   explicit_padding=False):
        op = f"{type(self).__name__} '{self.name}'"
        self.kernel_size = as_pair(kernel_size, op, "kernel_size", 1)
        self.strides = as_pair(strides, op, "strides", 1)
        if explicit_padding and isinstance(padding, (list, tuple)):
            self.padding = _conv_ops._padding_pairs(padding, op)
        else:
            self.padding = check_choice(padding, ("valid", "same"), op, "padding")
        _check_data_format(self, data_format)
        self.data_format = "channels_last"
        self.dilation_rate = as_pair(dilation_rate, op, "dilation_rate", 1)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{op}: strides > 1 not supported in conjunction with dilation_rate > 1; "
                             f"got strides={self.strides}, dilation_rate={self.dilation_rate}")
        self._set_activation(activation)
        self.use_bias = bool(use_bias)

    def _input_channels(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': expects inputs of shape "
                             f"(batch, height, width, channels) with known channels, got {input_shape}")
        return input_shape[-1]

    def _spatial_out(self, input_shape):
        pads = (self.padding,) * 2 if isinstance(self.padding, str) else self.padding
        return tuple(conv_output_length(input_shape[1 + i], self.kernel_size[i], pads[i],
                                        self.strides[i], self.dilation_rate[i]) for i in range(2))

    def _check_positive(self, input_shape, out_hw):
        if any(s is not None and s <= 0 for s in out_hw):
            raise ValueError(f"{type(self).__name__} '{self.name}': computed output size would be "
                             f"zero or negative for input shape {input_shape}, kernel_size="
                             f"{self.kernel_size}, strides={self.strides}, padding={self.padding!r}, "
                             f"dilation_rate={self.dilation_rate}")

    def _conv_config(self):
        config = Layer.get_config(self)
        config.update(kernel_size=list(self.kernel_size), strides=list(self.strides),
                      padding=self.padding if isinstance(self.padding, str) else
                      [list(pair) for pair in self.padding], data_format=self.data_format,
                      dilation_rate=list(self.dilation_rate), activation=self._act_name,
                      use_bias=self.use_bias)
        return config

    def _weight_options_config(self, kernel):
        """Keras's config entries for the ``<kernel>_regularizer``... arguments, in its order."""
        return _weight_options_config(self, f"{kernel}_regularizer", "bias_regularizer",
                                      "activity_regularizer", f"{kernel}_constraint", "bias_constraint")

    def _write_grads(self, dw, db):
        g, acc = grad_target(self.kernel)
        dw = dw.reshape(g.shape)
        if acc:
            g += dw
        else:
            g[...] = dw
        if self.bias is not None and db is not None:
            gb, acc = grad_target(self.bias)
            if acc:
                gb += db
            else:
                gb[...] = db


class Conv2D(_BaseConv):
    """2-D convolution (cross-correlation) over NHWC images.

    Args:
        filters: number of output channels.
        kernel_size: int or (kh, kw).
        strides: int or pair; padding: "valid", "same" or explicit ((top, bottom), (left, right));
        dilation_rate: int or pair.
        groups: split input channels into groups, each convolved with filters // groups filters.
        activation, use_bias, kernel_initializer, bias_initializer: as Keras.
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
            bias_constraint: as Keras (``cnnfast.regularizers``, ``cnnfast.constraints``).

    Input shape ``(batch, h, w, cin)``; output ``(batch, h', w', filters)``.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        op = f"Conv2D '{self.name}'"
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._set_activity_regularizer(activity_regularizer)
        self.filters = as_int(filters, op, "filters", 1)
        self.groups = as_int(groups, op, "groups", 1)
        if self.filters % self.groups:
            raise ValueError(f"{op}: filters ({self.filters}) must be divisible by groups ({self.groups})")
        self._init_conv(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                        explicit_padding=True)
        self.kernel_initializer = _initializers.get(kernel_initializer, f"{op}: kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"{op}: bias_initializer")
        self.kernel = self.bias = None

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        if cin % self.groups:
            raise ValueError(f"Conv2D '{self.name}': input channels ({cin}) must be divisible by "
                             f"groups ({self.groups})")
        self._check_positive(input_shape, self._spatial_out(input_shape))
        self.kernel = self.add_weight(self.kernel_size + (cin // self.groups, self.filters),
                                      self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (4, {-1: cin})

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._spatial_out(input_shape) + (self.filters,)

    def _kernel_value(self):
        return self.kernel.value

    def _conv_groups(self, x):
        return self.groups

    def _out_buffer(self, ctx, x, channels):
        """The reused output buffer for input ``x`` (its shape computed once per input shape)."""
        shape = ctx.get(("out_shape", x.shape))
        if shape is None:
            ho, wo = self._spatial_out(x.shape)
            shape = ctx[("out_shape", x.shape)] = (x.shape[0], ho, wo, channels)
        return buffer(ctx, "z", shape)

    # A model may let this layer pool its output for the MaxPooling2D after it (ctx["fuse_pool"],
    # see Model._mark_pool_fusions).
    _fuses_max_pool = True

    def forward(self, x, training, ctx):
        fuse = ctx.get("fuse_pool")
        if fuse is not None and ops._conv.pooled_split_is_free(
                (x.shape[0],) + self._spatial_out(x.shape) + (self.filters,),
                self.kernel.value.shape, get_num_threads()):
            return self._forward_pooled(x, training, ctx, *fuse)
        z = ops.conv2d(x, self.kernel.value, bias=None if self.bias is None else self.bias.value,
                       strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
                       groups=self.groups, activation=self._fused_activation,
                       out=self._out_buffer(ctx, x, self.filters))
        ctx["x"] = x
        return self._activate(z, ctx)

    def _forward_pooled(self, x, training, ctx, pool, pool_ctx):
        """Convolution and the next layer's max-pool in one pass; the pool layer passes the
        result on. Images are split over the threads, hence only for batches >= threads."""
        training = training or recording()  # the pool's backward needs the argmax
        res = ops.conv2d_max_pool2d(
            x, self.kernel.value, bias=None if self.bias is None else self.bias.value,
            strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
            groups=self.groups, activation=self._fused_activation, return_argmax=training,
            pool_size=pool.pool_size, pool_strides=pool.strides, pool_padding=pool.padding)
        y = res[0] if training else res
        if training:
            pool_ctx["argmax"], pool_ctx["y"] = res[1], y
            pool_ctx["shape"] = (x.shape[0],) + self._spatial_out(x.shape) + (self.filters,)
        pool_ctx["pooled_by_conv"] = y
        ctx["x"] = x
        return y

    def backward(self, dy, ctx, need_dx):
        dz = self._activation_backward(dy, ctx)
        x = ctx["x"]
        want_w = self._trainable
        if not want_w and not need_dx:
            return None
        dx, dw, db = ops.conv2d_backward(dz, x, self._kernel_value(), strides=self.strides,
                                         padding=self.padding, dilation=self.dilation_rate,
                                         groups=self._conv_groups(x), need_input_grad=need_dx,
                                         need_bias_grad=self.bias is not None and want_w)
        if want_w:
            self._write_grads(dw, db)
        return dx

    def get_config(self):
        config = self._conv_config()
        config.update(filters=self.filters, groups=self.groups,
                      kernel_initializer=_initializers.serialize(self.kernel_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer),
                      **self._weight_options_config("kernel"))
        return config


class DepthwiseConv2D(Conv2D):
    """Depthwise 2-D convolution: each input channel convolved with ``depth_multiplier`` filters.

    Kernel ``(kh, kw, cin, depth_multiplier)``; output channels ``cin * depth_multiplier``.
    """

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, bias_constraint=None, **kwargs):
        Layer.__init__(self, **kwargs)
        op = f"DepthwiseConv2D '{self.name}'"
        _set_weight_options(self, depthwise_regularizer=depthwise_regularizer,
                            bias_regularizer=bias_regularizer, depthwise_constraint=depthwise_constraint,
                            bias_constraint=bias_constraint)
        self._set_activity_regularizer(activity_regularizer)
        self.depth_multiplier = as_int(depth_multiplier, op, "depth_multiplier", 1)
        self._init_conv(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                        explicit_padding=True)
        self.depthwise_initializer = _initializers.get(depthwise_initializer, f"{op}: depthwise_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"{op}: bias_initializer")
        self.kernel = self.bias = None
        self.groups = None

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        self._check_positive(input_shape, self._spatial_out(input_shape))
        self.groups = cin
        self.filters = cin * self.depth_multiplier
        self.kernel = self.add_weight(self.kernel_size + (cin, self.depth_multiplier),
                                      self.depthwise_initializer, name="kernel",
                                      regularizer=self.depthwise_regularizer,
                                      constraint=self.depthwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (4, {-1: cin})

    def compute_output_shape(self, input_shape):
        cin = input_shape[-1]
        return (input_shape[0],) + self._spatial_out(input_shape) + (cin * self.depth_multiplier,)

    def _kernel_value(self):
        kh, kw, cin, dm = self.kernel.value.shape
        return self.kernel.value.reshape(kh, kw, 1, cin * dm)

    _fuses_max_pool = False

    def _conv_groups(self, x):
        return x.shape[-1]

    def forward(self, x, training, ctx):
        cin = x.shape[-1]
        z = ops.conv2d(x, self._kernel_value(), bias=None if self.bias is None else self.bias.value,
                       strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
                       groups=cin, activation=self._fused_activation,
                       out=self._out_buffer(ctx, x, cin * self.depth_multiplier))
        ctx["x"] = x
        return self._activate(z, ctx)

    def get_config(self):
        config = self._conv_config()
        config.update(depth_multiplier=self.depth_multiplier,
                      depthwise_initializer=_initializers.serialize(self.depthwise_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer),
                      **self._weight_options_config("depthwise"))
        return config


class Conv2DTranspose(_BaseConv):
    """Transposed 2-D convolution (the gradient of Conv2D with respect to its input).

    Kernel ``(kh, kw, filters, cin)`` as Keras; output size per Keras's ``deconv_output_length``.
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        op = f"Conv2DTranspose '{self.name}'"
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._set_activity_regularizer(activity_regularizer)
        self.filters = as_int(filters, op, "filters", 1)
        self._init_conv(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        if output_padding is not None:
            output_padding = as_pair(output_padding, op, "output_padding", 0)
            for p, s, d in zip(output_padding, self.strides, self.dilation_rate):
                if p >= s and p >= d:
                    raise ValueError(f"{op}: output_padding {output_padding} must be smaller than "
                                     f"strides {self.strides} or dilation_rate {self.dilation_rate}")
        self.output_padding = output_padding
        self.kernel_initializer = _initializers.get(kernel_initializer, f"{op}: kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"{op}: bias_initializer")
        self.kernel = self.bias = None

    def _spatial_out(self, input_shape):
        op = self.output_padding or (None, None)
        return tuple(deconv_output_length(input_shape[1 + i], self.kernel_size[i], self.padding,
                                          self.strides[i], self.dilation_rate[i],
                                          None if self.output_padding is None else op[i])
                     for i in range(2))

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        self._check_positive(input_shape, self._spatial_out(input_shape))
        self.kernel = self.add_weight(self.kernel_size + (self.filters, cin), self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (4, {-1: cin})

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._spatial_out(input_shape) + (self.filters,)

    def _op_args(self):
        return dict(strides=self.strides, padding=self.padding, output_padding=self.output_padding,
                    dilation=self.dilation_rate)

    def forward(self, x, training, ctx):
        z = ops.conv2d_transpose(x, self.kernel.value, bias=None if self.bias is None else self.bias.value,
                                 activation=self._fused_activation, **self._op_args())
        ctx["x"] = x
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx):
        dz = self._activation_backward(dy, ctx)
        if not self._trainable and not need_dx:
            return None
        dx, dw, db = ops.conv2d_transpose_backward(dz, ctx["x"], self.kernel.value, need_input_grad=need_dx,
                                                   need_bias_grad=self.bias is not None and self._trainable,
                                                   **self._op_args())
        if self._trainable:
            self._write_grads(dw, db)
        return dx

    def get_config(self):
        config = self._conv_config()
        config.update(filters=self.filters,
                      output_padding=None if self.output_padding is None else list(self.output_padding),
                      kernel_initializer=_initializers.serialize(self.kernel_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer),
                      **self._weight_options_config("kernel"))
        return config

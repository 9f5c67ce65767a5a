"""SeparableConv2D: a depthwise convolution followed by a 1x1 (pointwise) convolution, as Keras 3.

Weights as Keras: ``depthwise_kernel`` ``(kh, kw, cin, depth_multiplier)``, ``pointwise_kernel``
``(1, 1, cin * depth_multiplier, filters)``, ``bias`` ``(filters,)`` (on the pointwise output only).

Forward is two ``ops.conv2d`` calls: the depthwise one (``groups = cin``, the kernel viewed without a
copy as ``(kh, kw, 1, cin * dm)``) into a buffer reused between steps, then the pointwise one, which
is a GEMM over pixels with the bias and ReLU in its epilogue. Backward runs the two
``ops.conv2d_backward`` calls in reverse; the intermediate activation is kept from the forward pass.
"""
from __future__ import annotations

from .. import initializers as _initializers
from .. import ops
from ..ops._checks import as_int
from .base import Layer, buffer, grad_target
from .conv import _BaseConv
from .core import _set_weight_options, _weight_options_config

__all__ = ["SeparableConv2D", "SeparableConvolution2D"]


class SeparableConv2D(_BaseConv):
    """Depthwise-separable 2-D convolution (Keras 3's arguments and defaults).

    Input ``(batch, h, w, cin)``; output ``(batch, h', w', filters)``, ``h', w'`` as Conv2D.
    """

    _fuses_max_pool = False

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        Layer.__init__(self, **kwargs)
        op = f"SeparableConv2D '{self.name}'"
        _set_weight_options(self, depthwise_regularizer=depthwise_regularizer,
                            pointwise_regularizer=pointwise_regularizer, bias_regularizer=bias_regularizer,
                            depthwise_constraint=depthwise_constraint,
                            pointwise_constraint=pointwise_constraint, bias_constraint=bias_constraint)
        self._set_activity_regularizer(activity_regularizer)
        self.filters = as_int(filters, op, "filters", 1)
        self.depth_multiplier = as_int(depth_multiplier, op, "depth_multiplier", 1)
        self._init_conv(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias)
        self.depthwise_initializer = _initializers.get(depthwise_initializer, f"{op}: depthwise_initializer")
        self.pointwise_initializer = _initializers.get(pointwise_initializer, f"{op}: pointwise_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"{op}: bias_initializer")
        self.depthwise_kernel = self.pointwise_kernel = self.bias = None

    def build(self, input_shape):
        cin = self._input_channels(input_shape)
        self._check_positive(input_shape, self._spatial_out(input_shape))
        mid = cin * self.depth_multiplier
        self.depthwise_kernel = self.add_weight(self.kernel_size + (cin, self.depth_multiplier),
                                                self.depthwise_initializer, name="depthwise_kernel",
                                                regularizer=self.depthwise_regularizer,
                                                constraint=self.depthwise_constraint)
        self.pointwise_kernel = self.add_weight((1, 1, mid, self.filters), self.pointwise_initializer,
                                                name="pointwise_kernel",
                                                regularizer=self.pointwise_regularizer,
                                                constraint=self.pointwise_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (4, {-1: cin})

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._spatial_out(input_shape) + (self.filters,)

    def _depthwise_view(self):
        kh, kw, cin, dm = self.depthwise_kernel.value.shape
        return self.depthwise_kernel.value.reshape(kh, kw, 1, cin * dm)

    def _depthwise_args(self, x):
        return dict(strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
                    groups=x.shape[-1])

    def forward(self, x, training, ctx):
        dw = self._depthwise_view()
        shape = ctx.get(("mid_shape", x.shape))
        if shape is None:
            ho, wo = self._spatial_out(x.shape)
            shape = ctx[("mid_shape", x.shape)] = (x.shape[0], ho, wo, dw.shape[3])
        mid = ops.conv2d(x, dw, **self._depthwise_args(x), out=buffer(ctx, "mid", shape))
        z = ops.conv2d(mid, self.pointwise_kernel.value,
                       bias=None if self.bias is None else self.bias.value,
                       activation=self._fused_activation,
                       out=buffer(ctx, "z", shape[:3] + (self.filters,)))
        ctx["x"], ctx["mid"] = x, mid
        return self._activate(z, ctx)

    def backward(self, dy, ctx, need_dx):
        want_w = self._trainable
        if not want_w and not need_dx:
            return None
        dz = self._activation_backward(dy, ctx)
        x, mid = ctx["x"], ctx["mid"]
        dmid, dpw, db = ops.conv2d_backward(dz, mid, self.pointwise_kernel.value, need_input_grad=True,
                                            need_bias_grad=self.bias is not None and want_w)
        dx, ddw, _ = ops.conv2d_backward(dmid, x, self._depthwise_view(), **self._depthwise_args(x),
                                         need_input_grad=need_dx, need_bias_grad=False)
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
        return dx

    def get_config(self):
        config = self._conv_config()
        config.update(filters=self.filters, depth_multiplier=self.depth_multiplier,
                      depthwise_initializer=_initializers.serialize(self.depthwise_initializer),
                      pointwise_initializer=_initializers.serialize(self.pointwise_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer))
        # Keras's order: the three regularizers, the activity one, then the three constraints
        config.update(_weight_options_config(
            self, "depthwise_regularizer", "pointwise_regularizer", "bias_regularizer",
            "activity_regularizer", "depthwise_constraint", "pointwise_constraint", "bias_constraint"))
        return config


SeparableConvolution2D = SeparableConv2D

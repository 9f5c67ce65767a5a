"""Core layers: Dense, Activation, Dropout, Rescaling, and the activation handling they share.

Dense acts on the last axis of an input of any rank (``(..., in) -> (..., units)``) as one GEMM over
the flattened leading axes: ``y = x @ W + b`` with ``W`` of shape ``(in, units)``. Bias and ReLU
run in the GEMM's epilogue; the ReLU backward then only needs the saved output. Weight gradients
go straight into the model's flat gradient buffer (``matmul(..., out=grad)``), with
``accumulate=True`` when the layer is shared.

Softmax (or sigmoid) on the last layer: when the model fuses it with a crossentropy loss it sets
``ctx["logits"]``; the layer then returns its logits and its backward receives d(loss)/d(logits).
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations as _activations
from .. import initializers as _initializers
from .. import ops
from ..ops._checks import as_float, as_int
from .base import Layer, buffer, grad_target, rng_step

__all__ = ["Dense", "Activation", "Dropout", "Rescaling"]


def _reject_unsupported(layer, **options):
    for key, value in options.items():
        if value is not None:
            raise NotImplementedError(f"{type(layer).__name__} '{layer.name}': {key} is not supported "
                                      "by cnnfast")


class ActivationMixin:
    """Applies ``self.activation`` after a kernel, and its derivative before the kernel's backward.
    ReLU is fused into the kernel (``_fused_activation`` is passed to it)."""

    def _set_activation(self, activation):
        self.activation = _activations.get(activation, f"{type(self).__name__}: activation")
        self._act_name = _activations.serialize(self.activation)
        self._fused_activation = self._act_name if self._act_name in ("relu", "relu6") else None
        if self._act_name not in ("linear", "relu"):
            self._act_backward, self._act_needs_x = _activations.backward_of(self.activation)

    def _output_activation(self):
        """The activation a fused loss may skip (the model then sets ``ctx["logits"]``)."""
        return self._act_name if self._act_name in ("softmax", "sigmoid") else None

    def _activate(self, z, ctx, z_is_own=True):
        """``z`` is the kernel's output (ReLU already applied if fused), which the activation may
        overwrite unless ``z_is_own`` is False (``z`` then belongs to another layer). Returns the
        layer output."""
        name = self._act_name
        if name in ("linear", "relu") or ctx.get("logits"):
            ctx["y"] = z
            return z
        if name == "relu6":
            ctx["z"] = None
            if z_is_own:   # the kernel applied it
                ctx["y"] = z
                return z
            ctx["y"] = y = ops.capped_relu(z, 6.0)
            return y
        y = self.activation(z)
        ctx["z"] = z if self._act_needs_x else None
        ctx["y"] = y
        return y

    def _activation_backward(self, dy, ctx):
        name = self._act_name
        if name == "linear" or ctx.get("logits"):
            return dy
        if name == "relu":
            if ctx.get("relu_grad_premasked"):   # the max-pool after this layer applied it
                return dy
            return ops.relu_backward(dy, ctx["y"], out=buffer(ctx, "dz", dy.shape))
        return self._act_backward(dy, ctx["z"], ctx["y"])


class Dense(ActivationMixin, Layer):
    """Densely-connected layer: ``activation(x @ kernel + bias)`` on the last axis.

    Args:
        units: output size.
        activation: name (``"relu"``, ``"softmax"``...) or None.
        use_bias: add a bias vector.
        kernel_initializer, bias_initializer: initialisers (``"glorot_uniform"``, ``"zeros"``).

    Input shape ``(batch, ..., in)``; output shape ``(batch, ..., units)``.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, lora_alpha=None, **kwargs):
        super().__init__(**kwargs)
        _reject_unsupported(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                            bias_constraint=bias_constraint, lora_rank=lora_rank)
        self.units = as_int(units, f"Dense '{self.name}'", "units", 1)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = _initializers.get(kernel_initializer, f"Dense '{self.name}': kernel_initializer")
        self.bias_initializer = _initializers.get(bias_initializer, f"Dense '{self.name}': bias_initializer")
        self.kernel = self.bias = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(f"Dense '{self.name}': the last axis of the input must be defined and the "
                             f"input needs a batch axis, got input shape {input_shape}")
        in_dim = input_shape[-1]
        self.kernel = self.add_weight((in_dim, self.units), self.kernel_initializer, name="kernel")
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias")
        self._input_spec = (None, {-1: in_dim})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training, ctx):
        in_dim = self.kernel.value.shape[0]
        x2 = x.reshape(math.prod(x.shape[:-1]), in_dim)  # not -1: ambiguous when in_dim is 0
        z = ops.matmul(x2, self.kernel.value, bias=None if self.bias is None else self.bias.value,
                       activation=self._fused_activation, out=buffer(ctx, "z", (x2.shape[0], self.units)))
        ctx["x"] = x2
        y = self._activate(z, ctx)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, dy, ctx, need_dx):
        x2 = ctx["x"]
        dz = self._activation_backward(dy.reshape(x2.shape[0], self.units), ctx)
        if self._trainable:
            g, acc = grad_target(self.kernel)
            ops.matmul(x2, dz, trans_a=True, out=g, accumulate=acc)
            if self.bias is not None:
                gb, acc = grad_target(self.bias)
                db = ops.bias_add_backward(dz)
                if acc:
                    gb += db
                else:
                    gb[...] = db
        if not need_dx:
            return None
        dx = ops.matmul(dz, self.kernel.value, trans_b=True, out=buffer(ctx, "dx", x2.shape))
        return dx if dy.ndim == 2 else dx.reshape(dy.shape[:-1] + (x2.shape[1],))

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self._act_name, use_bias=self.use_bias,
                      kernel_initializer=_initializers.serialize(self.kernel_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer))
        return config


class Activation(ActivationMixin, Layer):
    """Applies an activation function by name: ``Activation("relu")``."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    def forward(self, x, training, ctx):
        if self._act_name == "relu":
            y = ops.relu(x, out=buffer(ctx, "y", x.shape))
            ctx["y"] = y
            return y
        if self._act_name != "linear" and self._act_needs_x:
            ctx["z"] = x
        return self._activate(x, ctx, z_is_own=False) if self._act_name != "linear" else x

    def backward(self, dy, ctx, need_dx):
        return self._activation_backward(dy, ctx) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config["activation"] = self._act_name
        return config


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each input with probability ``rate`` and scales the
    rest by ``1/(1-rate)``; identity at inference.

    The mask is a pure function of ``(seed, step)`` (counter-based RNG in C), regenerated in the
    backward pass, so nothing is stored and training is reproducible. ``seed`` defaults to the next
    seed of cnnfast's stream (``cnnfast.utils.set_random_seed``); inside ``fit`` the step is the
    optimizer's iteration count, so a resumed run draws the same masks as an uninterrupted one.
    """

    _uses_rng = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = as_float(rate, f"Dropout '{self.name}'", "rate")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate!r}")
        _reject_unsupported(self, noise_shape=noise_shape)
        if seed is None:
            from ..utils.random import next_seed
            seed = next_seed() & 0x7FFFFFFF
        self.seed = as_int(seed, f"Dropout '{self.name}'", "seed", 0, maximum=2**64 - 1)
        self._eager_step = 0

    def forward(self, x, training, ctx):
        if not training or self.rate == 0.0:
            ctx["active"] = False
            return x
        step = rng_step()
        if step is None:  # outside fit: a private counter
            step = self._eager_step
            self._eager_step += 1
        seed = (self.seed + 0x9E3779B9 * ctx.get("node_index", 0)) & 0x7FFFFFFFFFFFFFFF
        ctx.update(active=True, call_seed=seed, call_step=step)
        return ops.dropout(x, self.rate, seed, step)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if not ctx.get("active"):
            return dy
        return ops.dropout_backward(dy, self.rate, ctx["call_seed"], ctx["call_step"])

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1/255)``)."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = as_float(scale, f"Rescaling '{self.name}'", "scale")
        self.offset = as_float(offset, f"Rescaling '{self.name}'", "offset")

    def forward(self, x, training, ctx):
        y = buffer(ctx, "y", x.shape)
        np.multiply(x, np.float32(self.scale), out=y)
        if self.offset:
            y += np.float32(self.offset)
        return y

    def backward(self, dy, ctx, need_dx):
        return (dy * np.float32(self.scale)) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config

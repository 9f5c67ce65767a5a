"""Core layers: Dense, Activation, Dropout, Rescaling, and the activation handling they share.

Dense acts on the last axis of an input of any rank (``(..., in) -> (..., units)``) as one GEMM over
the flattened leading axes: ``y = x @ W + b`` with ``W`` of shape ``(in, units)``. Bias and ReLU
run in the GEMM's epilogue; the ReLU backward then only needs the saved output. Weight gradients
go straight into the model's flat gradient buffer (``matmul(..., out=grad)``), with
``accumulate=True`` when the layer is shared.

Softmax (or sigmoid) on the last layer: when the model fuses it with a crossentropy loss it sets
``ctx["logits"]``; the layer then returns its logits and its backward receives d(loss)/d(logits).

Regularizers and constraints (``kernel_regularizer=``, ``bias_constraint=``...; see
``cnnfast.regularizers`` and ``cnnfast.constraints``) are kept on the layer and on its weights
(``add_weight``); the model adds the weights' penalties and their gradients, and applies the
constraints after each optimizer step. ``activity_regularizer`` penalises the layer's output, as
Keras: ``regularizer(y) / batch_size`` joins the step's loss and its gradient is added to the
output gradient before the activation's backward (the layer then never hands its logits to a fused
loss, nor its pooling to the max-pool after it, which would hide the output it penalises).
"""
from __future__ import annotations

import math

import numpy as np

from .. import activations as _activations
from .. import constraints as _constraints
from .. import initializers as _initializers
from .. import ops
from .. import regularizers as _regularizers
from ..ops._checks import as_float, as_int
from .base import Layer, add_layer_loss, buffer, grad_target, rng_step

__all__ = ["Dense", "Activation", "Dropout", "Rescaling"]


def _reject_unsupported(layer, **options):
    for key, value in options.items():
        if value is not None:
            raise NotImplementedError(f"{type(layer).__name__} '{layer.name}': {key} is not supported "
                                      "by cnnfast")


def _set_weight_options(layer, **options):
    """Keep each ``*_regularizer`` / ``*_constraint`` argument on the layer as the object Keras's
    ``regularizers.get`` / ``constraints.get`` gives (None stays None); bad identifiers raise here."""
    for key, value in options.items():
        get = _regularizers.get if key.endswith("_regularizer") else _constraints.get
        setattr(layer, key, get(value, f"{type(layer).__name__} '{layer.name}': {key}"))


def _weight_options_config(layer, *keys) -> dict:
    """The config entries of ``keys`` in Keras 3's layout (None when unset)."""
    return {key: (_regularizers.serialize if key.endswith("_regularizer") else _constraints.serialize)(
        getattr(layer, key)) for key in keys}


class ActivityRegularizerMixin:
    """``activity_regularizer``: ``regularizer(y) / batch_size`` of the layer's output ``y`` added
    to the step's loss (and listed in ``layer.losses``), its gradient added to ``dy``."""

    activity_regularizer = None
    _activity_loss = None   # the penalty of the last call, for layer.losses

    def _set_activity_regularizer(self, value):
        self.activity_regularizer = _regularizers.get(
            value, f"{type(self).__name__} '{self.name}': activity_regularizer")
        if self.activity_regularizer is not None:
            self._fuses_max_pool = False   # the penalty needs the full-size output

    def _penalize_activity(self, y, ctx, batch):
        reg = self.activity_regularizer
        if reg is None:
            return
        penalty = reg(y) / batch if batch else 0.0   # Keras's divide_no_nan
        self._activity_loss = penalty
        add_layer_loss(penalty)
        ctx["activity"] = (y, batch)

    def _activity_gradient(self, dy, ctx):
        if self.activity_regularizer is None:
            return dy
        y, batch = ctx["activity"]
        if not batch:
            return dy
        grad = np.asarray(self.activity_regularizer.gradient(y), np.float32)
        grad *= np.float32(1.0 / batch)
        return (grad + dy.reshape(y.shape)).astype(np.float32, copy=False)


class ActivationMixin(ActivityRegularizerMixin):
    """Applies ``self.activation`` after a kernel, and its derivative before the kernel's backward.
    ReLU is fused into the kernel (``_fused_activation`` is passed to it). The output's activity
    penalty (if any) is taken here too."""

    def _set_activation(self, activation):
        self.activation = _activations.get(activation, f"{type(self).__name__}: activation")
        self._act_name = _activations.serialize(self.activation)
        self._fused_activation = self._act_name if self._act_name in ("relu", "relu6") else None
        if self._act_name not in ("linear", "relu"):
            self._act_backward, self._act_needs_x = _activations.backward_of(self.activation)

    def _output_activation(self):
        """The activation a fused loss may skip (the model then sets ``ctx["logits"]``)."""
        if self.activity_regularizer is not None:   # the penalty is on the activation's output
            return None
        return self._act_name if self._act_name in ("softmax", "sigmoid") else None

    def _activate(self, z, ctx, z_is_own=True, batch=None):
        """``z`` is the kernel's output (ReLU already applied if fused), which the activation may
        overwrite unless ``z_is_own`` is False (``z`` then belongs to another layer). Returns the
        layer output. ``batch`` is the batch size (``z.shape[0]`` unless given)."""
        y = self._activate_only(z, ctx, z_is_own)
        if self.activity_regularizer is not None:
            self._penalize_activity(y, ctx, z.shape[0] if batch is None else batch)
        return y

    def _activate_only(self, z, ctx, z_is_own):
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
        dy = self._activity_gradient(dy, ctx)
        name = self._act_name
        if name == "linear" or ctx.get("logits"):
            return dy
        if name == "relu":
            # the max-pool after this layer applied it (but not to the activity penalty's gradient)
            if ctx.get("relu_grad_premasked") and self.activity_regularizer is None:
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
        kernel_regularizer, bias_regularizer, activity_regularizer: penalties (``"l2"``,
            ``regularizers.L1(0.01)``...) added to the training loss.
        kernel_constraint, bias_constraint: projections (``"max_norm"``...) applied after each
            optimizer step.

    Input shape ``(batch, ..., in)``; output shape ``(batch, ..., units)``.
    """

    supports_masking = True   # passes its input's mask on, as Keras

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 lora_rank=None, lora_alpha=None, **kwargs):
        super().__init__(**kwargs)
        _reject_unsupported(self, lora_rank=lora_rank)
        _set_weight_options(self, kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self._set_activity_regularizer(activity_regularizer)
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
        self.kernel = self.add_weight((in_dim, self.units), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._input_spec = (None, {-1: in_dim})

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training, ctx):
        in_dim = self.kernel.value.shape[0]
        x2 = x.reshape(math.prod(x.shape[:-1]), in_dim)  # not -1: ambiguous when in_dim is 0
        z = ops.matmul(x2, self.kernel.value, bias=None if self.bias is None else self.bias.value,
                       activation=self._fused_activation, out=buffer(ctx, "z", (x2.shape[0], self.units)))
        ctx["x"] = x2
        y = self._activate(z, ctx, batch=x.shape[0])
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
        if self.activity_regularizer is not None:   # Keras's base Layer writes it only when set
            config["activity_regularizer"] = _regularizers.serialize(self.activity_regularizer)
        config.update(units=self.units, activation=self._act_name, use_bias=self.use_bias,
                      kernel_initializer=_initializers.serialize(self.kernel_initializer),
                      bias_initializer=_initializers.serialize(self.bias_initializer),
                      **_weight_options_config(self, "kernel_regularizer", "bias_regularizer",
                                               "kernel_constraint", "bias_constraint"))
        return config


class Activation(ActivationMixin, Layer):
    """Applies an activation function by name: ``Activation("relu")``."""

    supports_masking = True   # passes its input's mask on, as Keras

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

    ``noise_shape`` (Keras's argument) is the shape of the mask, broadcast over the input: an entry
    of 1 shares one draw along that axis and None takes the input's size, so
    ``noise_shape=(None, 1, 1, 1)`` drops whole samples (EfficientNet's stochastic depth).
    """

    supports_masking = True   # passes its input's mask on, as Keras

    _uses_rng = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = as_float(rate, f"Dropout '{self.name}'", "rate")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1), got {rate!r}")
        self.noise_shape = _noise_shape(noise_shape, f"Dropout '{self.name}'")
        if seed is None:
            from ..utils.random import next_seed
            seed = next_seed() & 0x7FFFFFFF
        self.seed = as_int(seed, f"Dropout '{self.name}'", "seed", 0, maximum=2**64 - 1)
        self._eager_step = 0

    def build(self, input_shape):
        if self.noise_shape is not None:
            self._mask_shape(input_shape)   # refuse a mask that cannot broadcast, at graph time

    def _mask_shape(self, shape):
        """The mask's shape for an input of ``shape``: the noise shape with its None entries
        filled from the input."""
        noise = self.noise_shape
        if len(noise) != len(shape) or any(
                n is not None and n != 1 and s is not None and n != s for n, s in zip(noise, shape)):
            raise ValueError(f"Dropout '{self.name}': noise_shape {noise} does not broadcast against "
                             f"the input shape {tuple(shape)} (one entry per axis, each None, 1 or "
                             "the input's size)")
        return tuple(s if n is None else n for n, s in zip(noise, shape))

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
        if self.noise_shape is None:
            return ops.dropout(x, self.rate, seed, step)
        # the kept entries of a ones array of the mask's shape are 1/(1-rate): the scaled mask
        mask = ops.dropout(np.ones(self._mask_shape(x.shape), np.float32), self.rate, seed, step)
        ctx["mask"] = mask
        return np.multiply(x, mask, out=buffer(ctx, "y", x.shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if not ctx.get("active"):
            return dy
        if self.noise_shape is not None:
            return dy * ctx["mask"]
        return ops.dropout_backward(dy, self.rate, ctx["call_seed"], ctx["call_step"])

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape))
        return config


def _noise_shape(noise_shape, context):
    if noise_shape is None:
        return None
    if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
        raise ValueError(f"{context}: noise_shape must be a tuple or list of integers or None, got "
                         f"{noise_shape!r}")
    out = []
    for i, dim in enumerate(noise_shape):
        if dim is None:
            out.append(None)
            continue
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)) or dim <= 0:
            raise ValueError(f"{context}: noise_shape entries must be positive integers or None, got "
                             f"{dim!r} at index {i} of {noise_shape!r}")
        out.append(int(dim))
    return tuple(out)


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. ``Rescaling(1/255)``).

    ``scale`` and ``offset`` are numbers or arrays that broadcast against the input as in NumPy
    (Keras's rule): ``Rescaling([1/0.229, 1/0.224, 1/0.225])`` scales each channel of an NHWC
    image, as EfficientNet does."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _scalar_or_list(scale, f"Rescaling '{self.name}'", "scale")
        self.offset = _scalar_or_list(offset, f"Rescaling '{self.name}'", "offset")
        self._scale = np.asarray(self.scale, np.float32)
        self._offset = np.asarray(self.offset, np.float32)

    def build(self, input_shape):
        shape = tuple(1 if s is None else s for s in input_shape)
        for what, arr in (("scale", self._scale), ("offset", self._offset)):
            try:
                out = np.broadcast_shapes(shape, arr.shape)
            except ValueError:
                out = None
            if out is None or any(o != s for o, s, full in zip(out, shape, input_shape) if full is not None) \
                    or len(out) != len(shape):
                raise ValueError(f"Rescaling '{self.name}': {what} of shape {arr.shape} does not "
                                 f"broadcast against the input shape {tuple(input_shape)}")

    def forward(self, x, training, ctx):
        y = buffer(ctx, "y", x.shape)
        np.multiply(x, self._scale, out=y)
        if self._offset.any():
            y += self._offset
        return y

    def backward(self, dy, ctx, need_dx):
        return (dy * self._scale) if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, offset=self.offset)
        return config


def _scalar_or_list(value, context, name):
    """A float, or a (nested) list of floats for an array argument: JSON-ready, as the config holds it."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{context}: {name} must be a number or an array of numbers, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{context}: {name} must be finite, got {value!r}")
    return float(arr) if arr.ndim == 0 else arr.astype(np.float64).tolist()

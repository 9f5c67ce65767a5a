"""Regularisation layers: SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout,
ActivityRegularization (Keras 3 names, arguments and defaults).

The random layers are active only in training mode and are identities at inference. Like
Dropout, their noise is a pure function of ``(seed, step)``: ``seed`` defaults to the next seed of
cnnfast's stream (``cnnfast.utils.set_random_seed`` fixes it) and is saved in the config; inside
``fit`` the step is the optimizer's iteration count (a resumed run draws the same noise as an
uninterrupted one), outside it a per-layer counter. Each call site of a shared layer draws its
own noise. The spatial dropouts reuse Dropout's C mask with a per-feature-map noise shape; the
others draw with NumPy (``PCG64`` seeded by ``[seed, step]``) and keep the noise for backward.

ActivityRegularization adds ``(l1 * sum|x| + l2 * sum x**2) / batch_size`` to the loss of the
training (and evaluation) step, as Keras 3 does, and that penalty's gradient to its input gradient.
"""
from __future__ import annotations

import math

import numpy as np

from ..ops._checks import as_float, as_int
from .base import Layer, add_layer_loss, buffer, rng_step
from .core import Dropout, _noise_shape

__all__ = ["SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
           "GaussianDropout", "AlphaDropout", "ActivityRegularization"]

# SELU's constants: AlphaDropout sets dropped units to SELU's negative saturation value
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _data_format(value, op):
    if value is None:
        return "channels_last"
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{op}: data_format must be 'channels_last' or 'channels_first', got {value!r}")
    return value


class _SpatialDropout(Dropout):
    """Dropout of whole feature maps: one draw per (sample, channel), shared along the spatial
    axes. Subclasses give the input rank."""

    _rank = None   # the input's number of axes, batch included

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)
        self.data_format = _data_format(data_format, f"{type(self).__name__} '{self.name}'")
        spatial = (1,) * (self._rank - 2)
        self.noise_shape = ((None,) + spatial + (None,) if self.data_format == "channels_last"
                            else (None, None) + spatial)

    def build(self, input_shape):
        if len(input_shape) != self._rank:
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) is incompatible with "
                             f"the layer: expected ndim={self._rank}, found ndim={len(input_shape)}. "
                             f"Full shape received: {tuple(input_shape)}")
        self._input_spec = (self._rank, {})
        super().build(input_shape)

    def get_config(self):
        # Keras's spatial dropouts save only rate, seed, name and dtype (their constructors take
        # no trainable or noise_shape), plus data_format for 2-D and 3-D
        config = super().get_config()
        config.pop("noise_shape", None)
        config.pop("trainable", None)
        config["data_format"] = self.data_format
        return config


class SpatialDropout1D(_SpatialDropout):
    """Drops whole channels of ``(batch, steps, channels)`` inputs (``keras.layers.SpatialDropout1D``)."""

    _rank = 3

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("data_format")   # Keras's SpatialDropout1D has no data_format
        return config


class SpatialDropout2D(_SpatialDropout):
    """Drops whole feature maps of 4-D images (``keras.layers.SpatialDropout2D``): NHWC by
    default, NCHW with ``data_format="channels_first"``."""

    _rank = 4


class SpatialDropout3D(_SpatialDropout):
    """Drops whole feature maps of 5-D volumes (``keras.layers.SpatialDropout3D``)."""

    _rank = 5


class _RandomLayer(Layer):
    """Seed handling and per-call NumPy generators shared by the noise layers below."""

    _uses_rng = True

    def _init_seed(self, seed):
        if seed is None:
            from ..utils.random import next_seed
            seed = next_seed() & 0x7FFFFFFF
        self.seed = as_int(seed, f"{type(self).__name__} '{self.name}'", "seed", 0, maximum=2**64 - 1)
        self._eager_step = 0

    def _generator(self, ctx) -> np.random.Generator:
        """The generator of this call: a function of the seed, the call site and the step."""
        step = rng_step()
        if step is None:  # outside fit: a private counter
            step = self._eager_step
            self._eager_step += 1
        seed = (self.seed + 0x9E3779B9 * ctx.get("node_index", 0)) & 0x7FFFFFFFFFFFFFFF
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(step)])))


def _rate(rate, op):
    value = as_float(rate, op, "rate")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{op}: invalid value received for argument `rate`: expected a float value "
                         f"in [0, 1) (1 would drop everything). Received: rate={rate!r}")
    return value


class GaussianNoise(_RandomLayer):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training
    (``keras.layers.GaussianNoise``); the gradient passes through unchanged."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        op = f"GaussianNoise '{self.name}'"
        self.stddev = as_float(stddev, op, "stddev")
        if not 0.0 <= self.stddev <= 1.0:   # Keras's bound
            raise ValueError(f"{op}: invalid value received for argument `stddev`. Expected a float "
                             f"value between 0 and 1. Received: stddev={stddev!r}")
        self._init_seed(seed)

    def forward(self, x, training, ctx):
        if not training or self.stddev == 0.0:
            return x
        y = self._generator(ctx).standard_normal(x.shape, dtype=np.float32, out=buffer(ctx, "y", x.shape))
        y *= np.float32(self.stddev)
        y += x
        return y

    def backward(self, dy, ctx, need_dx):
        return dy if need_dx else None

    def get_config(self):
        config = super().get_config()
        config.update(stddev=self.stddev, seed=self.seed)
        return config


class GaussianDropout(_RandomLayer):
    """Multiplies by Gaussian noise of mean 1 and standard deviation ``sqrt(rate / (1 - rate))``
    in training (``keras.layers.GaussianDropout``)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _rate(rate, f"GaussianDropout '{self.name}'")
        self._init_seed(seed)

    def forward(self, x, training, ctx):
        if not training or self.rate == 0.0:
            ctx["noise"] = None
            return x
        noise = self._generator(ctx).standard_normal(x.shape, dtype=np.float32,
                                                     out=buffer(ctx, "noise", x.shape))
        noise *= np.float32(math.sqrt(self.rate / (1.0 - self.rate)))
        noise += np.float32(1.0)
        ctx["noise"] = noise
        return np.multiply(x, noise, out=buffer(ctx, "y", x.shape))

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        noise = ctx.get("noise")
        return dy if noise is None else dy * noise

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class AlphaDropout(_RandomLayer):
    """Dropout for self-normalising (SELU) networks (``keras.layers.AlphaDropout``): dropped units
    are set to SELU's saturation value ``-alpha * scale``, then an affine map ``a * x + b``
    restores the input's mean and variance. ``noise_shape`` as for Dropout."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        op = f"AlphaDropout '{self.name}'"
        self.rate = _rate(rate, op)
        self.noise_shape = _noise_shape(noise_shape, op)
        self._init_seed(seed)
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        self._alpha_p = alpha_p
        self._a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        self._b = -self._a * alpha_p * self.rate

    def build(self, input_shape):
        if self.noise_shape is not None:
            self._mask_shape(input_shape)

    def _mask_shape(self, shape):
        noise = self.noise_shape
        if noise is None:
            return tuple(shape)
        if len(noise) != len(shape) or any(
                n is not None and n != 1 and s is not None and n != s for n, s in zip(noise, shape)):
            raise ValueError(f"AlphaDropout '{self.name}': noise_shape {noise} does not broadcast against "
                             f"the input shape {tuple(shape)} (one entry per axis, each None, 1 or the "
                             "input's size)")
        return tuple(s if n is None else n for n, s in zip(noise, shape))

    def forward(self, x, training, ctx):
        if not training or self.rate == 0.0:
            ctx["kept"] = None
            return x
        kept = self._generator(ctx).random(self._mask_shape(x.shape), dtype=np.float32) >= self.rate
        ctx["kept"] = kept
        a, b = np.float32(self._a), np.float32(self._b)
        # a * (x * kept + alpha_p * (1 - kept)) + b, with the mask broadcast over the input
        y = buffer(ctx, "y", x.shape)
        np.multiply(x, kept, out=y)
        y += np.where(kept, np.float32(0), np.float32(self._alpha_p))
        y *= a
        y += b
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        kept = ctx.get("kept")
        return dy if kept is None else dy * (kept * np.float32(self._a))

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed,
                      noise_shape=None if self.noise_shape is None else list(self.noise_shape))
        return config


def _penalty(value, name, op):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{op}: invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


class ActivityRegularization(Layer):
    """Returns its input and adds ``(l1 * sum|x| + l2 * sum x**2) / batch_size`` to the model's loss
    in ``fit`` and ``evaluate`` (``keras.layers.ActivityRegularization``)."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        op = f"ActivityRegularization '{self.name}'"
        self.l1 = _penalty(l1, "l1", op)
        self.l2 = _penalty(l2, "l2", op)

    def forward(self, x, training, ctx):
        ctx["x"] = x
        if self.l1 or self.l2:
            batch = x.shape[0] if x.ndim else 1
            x64 = x.astype(np.float64)
            penalty = self.l1 * np.abs(x64).sum() + self.l2 * (x64 * x64).sum()
            add_layer_loss(penalty / batch if batch else 0.0)
        return x

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        if not (self.l1 or self.l2):
            return dy
        x = ctx["x"]
        batch = x.shape[0] if x.ndim else 1
        grad = np.float32(self.l1 / batch) * np.sign(x) + np.float32(2.0 * self.l2 / batch) * x
        return (dy + grad).astype(np.float32, copy=False)

    def get_config(self):
        config = super().get_config()
        config.update(l1=self.l1, l2=self.l2)
        return config

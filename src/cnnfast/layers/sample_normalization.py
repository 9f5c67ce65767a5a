"""Normalisation with per-sample statistics: LayerNormalization, GroupNormalization, UnitNormalization.

Unlike BatchNormalization, these layers compute their statistics over axes of each sample alone,
so training and inference compute the same thing and there are no moving statistics. Keras 3
semantics throughout:

* ``LayerNormalization``: mean and (biased) variance over ``axis`` (one axis or several),
  ``y = (x - mean) / sqrt(var + epsilon) * gamma + beta``; gamma and beta have the shape of the
  normalised axes. The deprecated ``rms_scaling=True`` keeps Keras's exact formula,
  ``y = x / sqrt(var + epsilon) * gamma`` (the variance is still centred; no beta).
* ``GroupNormalization``: the channels of ``axis`` are split into ``groups`` contiguous groups;
  statistics over each group's channels and all the other non-batch axes; one gamma and beta
  per channel. ``groups=-1`` is instance normalisation (one group per channel).
* ``UnitNormalization``: ``y = x / ||x||_2`` over ``axis``, with Keras's clip of the inverse norm
  at ``1 / 1e-12`` (an all-zero slice stays zero instead of becoming NaN).

Statistics and gradients are computed in float64 (a float32 variance of large-mean data loses
most of its digits); outputs are float32. The forward pass keeps the normalised input and the
inverse standard deviation for the backward pass.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import initializers as _initializers
from ..ops._checks import as_float
from .base import Layer, grad_target
from .core import _set_weight_options, _weight_options_config

__all__ = ["LayerNormalization", "GroupNormalization", "UnitNormalization"]


def _axis_argument(axis, op):
    """Keras's rule for ``axis``: an int, or a list/tuple of ints (kept as a list)."""
    if isinstance(axis, (list, tuple)):
        if not axis or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) for a in axis):
            raise TypeError(f"{op}: expected an int or a non-empty list/tuple of ints for the argument "
                            f"'axis', but received: {axis!r}")
        return [int(a) for a in axis]
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: expected an int or a list/tuple of ints for the argument 'axis', "
                        f"but received: {axis!r}")
    return int(axis)


def _positive_axes(axis, ndim, op, input_shape):
    """The axes of ``axis`` as sorted non-negative indices, refusing out-of-range and batch axes."""
    axes = axis if isinstance(axis, list) else [axis]
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{op}: axis {a} is out of bounds for input shape {tuple(input_shape)}. "
                             f"Received: axis={axis}")
        out.append(a % ndim)
    if 0 in out:
        raise ValueError(f"{op}: cannot normalise over the batch axis (axis 0); got axis={axis} for "
                         f"input shape {tuple(input_shape)}")
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} names the same axis twice")
    return sorted(out)


def _check_in_bounds(axis, input_shape, op):
    for a in (axis if isinstance(axis, list) else [axis]):
        if a >= len(input_shape) or a < -len(input_shape):
            raise ValueError(f"{op}: axis {a} is out of bounds for input shape {tuple(input_shape)}. "
                             f"Received: axis={axis}")
    return input_shape


def _store_grad(var, g):
    """Write (or, for a layer shared by several calls, add) a float64 gradient into ``var.grad``."""
    slot, acc = grad_target(var)
    if acc:
        slot += g.astype(np.float32)
    else:
        slot[...] = g


def _normalized_grad(dxhat, xhat, inv, axes):
    """Input gradient of ``xhat = (x - mean(x)) * inv`` over ``axes`` given d(loss)/d(xhat)."""
    return inv * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                  - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))


class _AffineNormalization(Layer):
    """What LayerNormalization and GroupNormalization share: epsilon, center/scale, the gamma and
    beta initialisers, regularizers and constraints."""

    def _init_affine(self, epsilon, center, scale, beta_initializer, gamma_initializer,
                     beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint):
        op = self._op
        _set_weight_options(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                            beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.epsilon = as_float(epsilon, op, "epsilon")
        if not self.epsilon > 0:
            raise ValueError(f"{op}: epsilon must be > 0, got {epsilon!r}")
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = _initializers.get(beta_initializer, f"{op}: beta_initializer")
        self.gamma_initializer = _initializers.get(gamma_initializer, f"{op}: gamma_initializer")
        self.gamma = self.beta = None

    @property
    def _op(self):
        return f"{type(self).__name__} '{self.name}'"

    def _affine_config(self):
        return dict(epsilon=self.epsilon, center=self.center, scale=self.scale,
                    beta_initializer=_initializers.serialize(self.beta_initializer),
                    gamma_initializer=_initializers.serialize(self.gamma_initializer),
                    **_weight_options_config(self, "beta_regularizer", "gamma_regularizer",
                                             "beta_constraint", "gamma_constraint"))


class LayerNormalization(_AffineNormalization):
    """Layer normalisation over ``axis`` of each sample (``keras.layers.LayerNormalization``).

    Args:
        axis: the axis or axes to normalise (default the last); not the batch axis.
        epsilon: added to the variance (default 1e-3, Keras's).
        center, scale: learn a beta offset / a gamma scale of the normalised axes' shape.
        rms_scaling: deprecated in Keras, kept with its formula (see the module docstring).

    Input and output shape are the same; weights: gamma and beta, each of the normalised axes'
    shape (``(C,)`` for the default axis).
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, rms_scaling=False, **kwargs):
        if rms_scaling:
            warnings.warn("LayerNormalization: rms_scaling=True is deprecated (as in Keras): it scales "
                          "the input by the variance, not the root mean square", UserWarning, stacklevel=2)
        super().__init__(**kwargs)
        self.axis = _axis_argument(axis, self._op)
        self.rms_scaling = bool(rms_scaling)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)
        self._axes = None

    def build(self, input_shape):
        op = self._op
        axes = _positive_axes(self.axis, len(input_shape), op, input_shape)
        # Keras keeps the axes as given (sorted, in a list) once built, and saves them so
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]
        shape = tuple(input_shape[a] for a in axes)
        if any(s is None for s in shape):
            raise ValueError(f"{op}: the normalised axes must have a defined size, got input shape "
                             f"{tuple(input_shape)} and axis={self.axis}")
        self._axes = tuple(axes)
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self._input_spec = (len(input_shape), {a: input_shape[a] for a in axes})

    def compute_output_shape(self, input_shape):
        return _check_in_bounds(self.axis, input_shape, self._op)

    def _broadcast(self, w, ndim):
        """A weight of the normalised axes' shape, viewed to broadcast against the input."""
        shape = [1] * ndim
        for a, s in zip(self._axes, w.shape):
            shape[a] = s
        return w.reshape(shape)

    def forward(self, x, training, ctx):
        axes, ndim = self._axes, x.ndim
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=axes, keepdims=True)
        centred = x64 - mean
        inv = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + self.epsilon)
        if self.rms_scaling:
            ctx.update(x=x64, centred=centred, inv=inv)
            y = x64 * inv
        else:
            xhat = centred * inv
            ctx.update(xhat=xhat, inv=inv)
            y = xhat
        if self.gamma is not None:
            y = y * self._broadcast(self.gamma.value, ndim)
        if self.beta is not None:
            y = y + self._broadcast(self.beta.value, ndim)
        return y.astype(np.float32)

    def backward(self, dy, ctx, need_dx):
        axes, ndim = self._axes, dy.ndim
        dy64 = dy.astype(np.float64)
        inv = ctx["inv"]
        batch_axes = tuple(a for a in range(ndim) if a not in axes)
        if self.rms_scaling:
            # y = x * inv * gamma, inv = (var(x) + eps) ** -0.5 with a centred variance
            normalized = ctx["x"] * inv
        else:
            normalized = ctx["xhat"]
        if self._trainable:
            if self.gamma is not None:
                _store_grad(self.gamma, (dy64 * normalized).sum(axis=batch_axes))
            if self.beta is not None:
                _store_grad(self.beta, dy64.sum(axis=batch_axes))
        if not need_dx:
            return None
        du = dy64 * self._broadcast(self.gamma.value, ndim) if self.gamma is not None else dy64
        if self.rms_scaling:
            x64, centred = ctx["x"], ctx["centred"]
            # d inv / dx_i = -inv**3 * (x_i - mean) / n
            dx = inv * du - inv ** 3 * centred * (du * x64).mean(axis=axes, keepdims=True)
        else:
            dx = _normalized_grad(du, normalized, inv, axes)
        return dx.astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(axis=self.axis, rms_scaling=self.rms_scaling, **self._affine_config())
        return config


class GroupNormalization(_AffineNormalization):
    """Group normalisation (``keras.layers.GroupNormalization``): the ``axis`` channels are split
    into ``groups`` contiguous groups, each normalised over its channels and the sample's other
    axes; ``groups=-1`` gives one group per channel (instance normalisation).

    Args:
        groups: number of groups (default 32, Keras's); must divide the channel count.
        axis: the channel axis (default the last); not the batch axis.
        epsilon, center, scale: as LayerNormalization; gamma and beta have one value per channel.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, beta_constraint=None, gamma_constraint=None, **kwargs):
        if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)) or \
                (groups <= 0 and groups != -1):
            raise ValueError("GroupNormalization: received an invalid value for argument `groups`, "
                             "expected a positive integer (or `-1` for instance normalization). "
                             f"Received: groups={groups!r}")
        super().__init__(**kwargs)
        self.groups = int(groups)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self._op}: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self._init_affine(epsilon, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                          gamma_regularizer, beta_constraint, gamma_constraint)
        self._channel_axis = None

    def build(self, input_shape):
        op = self._op
        (axis,) = _positive_axes(self.axis, len(input_shape), op, input_shape)
        dim = input_shape[axis]
        if dim is None:
            raise ValueError(f"{op}: axis {self.axis} of the input should have a defined dimension "
                             f"but the layer received an input with shape {tuple(input_shape)}")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups:
            raise ValueError(f"{op}: number of groups ({self.groups}) cannot be more than the number "
                             f"of channels ({dim})")
        if dim % self.groups != 0:
            raise ValueError(f"{op}: number of groups ({self.groups}) must divide the number of "
                             f"channels ({dim})")
        self._channel_axis = axis
        if self.scale:
            self.gamma = self.add_weight((dim,), self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight((dim,), self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self._input_spec = (len(input_shape), {axis: dim})

    def compute_output_shape(self, input_shape):
        return _check_in_bounds(self.axis, input_shape, self._op)

    def _grouped(self, a):
        """``a`` (input-shaped) as ``(batch, positions, groups, channels per group)``: the channel
        axis moved last (a view), then split."""
        a = np.moveaxis(a, self._channel_axis, -1)
        positions = int(np.prod(a.shape[1:-1], dtype=np.int64))   # explicit: -1 fails on an empty batch
        return a.reshape(a.shape[0], positions, self.groups, a.shape[-1] // self.groups)

    def _ungrouped(self, g, shape):
        moved = list(shape)
        moved.append(moved.pop(self._channel_axis))
        return np.moveaxis(g.reshape(moved), -1, self._channel_axis)

    def forward(self, x, training, ctx):
        g = self._grouped(x).astype(np.float64)
        mean = g.mean(axis=(1, 3), keepdims=True)
        centred = g - mean
        inv = 1.0 / np.sqrt((centred * centred).mean(axis=(1, 3), keepdims=True) + self.epsilon)
        xhat = centred * inv
        ctx.update(xhat=xhat, inv=inv)
        y = xhat
        per_group = (self.groups, -1)
        if self.gamma is not None:
            y = y * self.gamma.value.reshape(per_group)
        if self.beta is not None:
            y = y + self.beta.value.reshape(per_group)
        return np.ascontiguousarray(self._ungrouped(y, x.shape), dtype=np.float32)

    def backward(self, dy, ctx, need_dx):
        xhat, inv = ctx["xhat"], ctx["inv"]
        g = self._grouped(dy).astype(np.float64)
        if self._trainable:
            if self.gamma is not None:
                _store_grad(self.gamma, (g * xhat).sum(axis=(0, 1)).reshape(-1))
            if self.beta is not None:
                _store_grad(self.beta, g.sum(axis=(0, 1)).reshape(-1))
        if not need_dx:
            return None
        if self.gamma is not None:
            g = g * self.gamma.value.reshape(self.groups, -1)
        dx = _normalized_grad(g, xhat, inv, (1, 3))
        return np.ascontiguousarray(self._ungrouped(dx, dy.shape), dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(groups=self.groups, axis=self.axis, **self._affine_config())
        return config


# Keras's ops.normalize clips the inverse norm at 1 / epsilon with this epsilon
_UNIT_NORM_EPSILON = 1e-12


class UnitNormalization(Layer):
    """Scales each sample to unit L2 norm over ``axis`` (``keras.layers.UnitNormalization``);
    no weights."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_argument(axis, f"UnitNormalization '{self.name}'")
        self._axes = None

    def build(self, input_shape):
        self._axes = tuple(_positive_axes(self.axis, len(input_shape), f"UnitNormalization '{self.name}'",
                                          input_shape))

    def compute_output_shape(self, input_shape):
        return _check_in_bounds(self.axis, input_shape, f"UnitNormalization '{self.name}'")

    def forward(self, x, training, ctx):
        x64 = x.astype(np.float64)
        with np.errstate(divide="ignore"):   # an all-zero slice: inf, then clipped
            inv_norm = np.minimum(1.0 / np.sqrt((x64 * x64).sum(axis=self._axes, keepdims=True)),
                                  1.0 / _UNIT_NORM_EPSILON)
        y = x64 * inv_norm
        ctx.update(y=y, inv_norm=inv_norm)
        return y.astype(np.float32)

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        y, inv_norm = ctx["y"], ctx["inv_norm"]
        dy64 = dy.astype(np.float64)
        # y = x / ||x||: dx = (dy - y * <dy, y>) / ||x||; where the clip is active y = x * const
        free = inv_norm < 1.0 / _UNIT_NORM_EPSILON
        projection = np.where(free, (dy64 * y).sum(axis=self._axes, keepdims=True), 0.0)
        return ((dy64 - y * projection) * inv_norm).astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config

"""Preprocessing layers: Normalization (Keras 3's ``keras.layers.Normalization``).

``Normalization(axis=-1)`` keeps one mean and one variance per position of the kept axes (the
channels of an NHWC image by default) and computes ``(x - mean) / max(sqrt(variance), 1e-7)``
(``invert=True``: ``mean + x * max(sqrt(variance), 1e-7)``), Keras 3's formula with its
``backend.epsilon()``. The statistics come either from the constructor (``mean=``, ``variance=``:
constants, no weights) or from ``adapt(data)``; in the second case they are the layer's
non-trainable weights ``mean``, ``variance`` and ``count``, in Keras's order and shapes, so a
Keras model's weights (EfficientNet's ``normalization`` layer) load by name. As in Keras 3,
``adapt`` writes ``mean`` and ``variance`` and leaves ``count`` as it is.

The layer has no trainable weight; its backward passes ``dy / max(sqrt(variance), 1e-7)`` on,
so a model that starts with it trains end to end.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Layer, buffer

__all__ = ["Normalization"]

_EPSILON = 1e-7   # keras.backend.epsilon()


def _axis_tuple(axis, context):
    if axis is None:
        return ()
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, (bool, np.bool_)):
        return (int(axis),)
    if isinstance(axis, (tuple, list)) and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, (bool, np.bool_)) for a in axis):
        return tuple(int(a) for a in axis)
    raise TypeError(f"{context}: axis must be an integer, a tuple of integers or None, got {axis!r}")


class Normalization(Layer):
    """Feature-wise normalization: ``(x - mean) / max(sqrt(variance), 1e-7)``.

    Args:
        axis: the axis or axes that keep their own statistics (default -1: one mean and variance
            per feature / channel); None means one mean and variance for the whole input.
        mean, variance: the statistics (numbers or arrays broadcast over the kept axes); give
            both or neither. Without them, call :meth:`adapt` (or load weights) before use.
        invert: apply the inverse transform, ``mean + x * max(sqrt(variance), 1e-7)``.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        context = f"Normalization '{self.name}'"
        self.axis = _axis_tuple(axis, context)
        if (mean is not None) != (variance is not None):
            raise ValueError(f"{context}: when setting values directly, both `mean` and `variance` "
                             f"must be set. Received: mean={mean} and variance={variance}")
        self.input_mean = self.input_variance = None
        if mean is not None:
            m, v = np.asarray(mean), np.asarray(variance)
            for what, arr in (("mean", m), ("variance", v)):
                if arr.dtype.kind not in "fiu":
                    raise TypeError(f"{context}: {what} must be numbers, got {arr!r}")
            if m.shape != v.shape:
                raise ValueError(f"{context}: when setting values directly, `mean` and `variance` "
                                 f"must have the same shape. Received: mean shape {m.shape} and "
                                 f"variance shape {v.shape}")
            if m.ndim > len(self.axis):
                raise ValueError(f"{context}: the rank of `mean` must be less than or equal to the "
                                 f"number of axes ({len(self.axis)}). Received: mean shape {m.shape} "
                                 f"for axis {self.axis}")
            if np.any(v < 0):
                raise ValueError(f"{context}: variance must be non-negative, got {variance!r}")
            self.input_mean = m.astype(np.float64).tolist()
            self.input_variance = v.astype(np.float64).tolist()
        self.invert = bool(invert)
        self.adapt_mean = self.adapt_variance = self.count = None
        self._mean = self._variance = None    # constants when given to the constructor

    # -- building ------------------------------------------------------------------------------
    def build(self, input_shape):
        context = f"Normalization '{self.name}'"
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"{context}: all `axis` values must be in the range [-ndim, ndim). "
                             f"Received inputs with ndim={ndim}, while axis={self.axis}")
        keep = tuple(sorted(a + ndim if a < 0 else a for a in self.axis))
        for d in keep:
            if input_shape[d] is None:
                raise ValueError(f"{context}: all `axis` values to be kept must have a known shape. "
                                 f"Received axis={self.axis}, inputs.shape={tuple(input_shape)}, "
                                 f"with unknown axis at index {d}")
        self._keep_axis = keep
        self._reduce_axis = tuple(d for d in range(ndim) if d not in keep)
        self._broadcast_shape = tuple(input_shape[d] if d in keep else 1 for d in range(ndim))
        self._stats_shape = tuple(input_shape[d] for d in keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(self._stats_shape, "zeros", trainable=False, name="mean")
            self.adapt_variance = self.add_weight(self._stats_shape, "ones", trainable=False,
                                                  name="variance")
            self.count = self.add_weight((), "zeros", trainable=False, name="count")
        else:
            self._mean = self._expand(np.asarray(self.input_mean, np.float32), ndim)
            self._variance = self._expand(np.asarray(self.input_variance, np.float32), ndim)
        self._input_spec = (ndim, {d: input_shape[d] for d in keep})

    def _expand(self, stat, ndim):
        """A constructor statistic aligned with the kept axes from the right, then broadcast."""
        if stat.ndim:
            shape = [1] * ndim
            for i in range(1, stat.ndim + 1):
                shape[self._keep_axis[-i]] = stat.shape[-i]
            try:
                stat = stat.reshape(shape)
                return np.ascontiguousarray(np.broadcast_to(stat, self._broadcast_shape))
            except ValueError:
                raise ValueError(f"Normalization '{self.name}': mean/variance of shape {stat.shape} "
                                 f"do not match the kept axes {self._keep_axis} of size "
                                 f"{self._stats_shape}") from None
        return np.full(self._broadcast_shape, stat, np.float32)

    def _statistics(self):
        if self.adapt_mean is not None:
            return (self.adapt_mean.value.reshape(self._broadcast_shape),
                    self.adapt_variance.value.reshape(self._broadcast_shape))
        return self._mean, self._variance

    # -- adapt -----------------------------------------------------------------------------------
    def adapt(self, data):
        """Compute ``mean`` and ``variance`` over ``data``: an array, or an iterable of batches
        (combined as Keras does, batch by batch, weighted by their sizes)."""
        context = f"Normalization '{self.name}': adapt"
        if self.input_mean is not None:
            raise ValueError(f"{context}: the layer was given `mean` and `variance` in its "
                             "constructor; they cannot be adapted")
        if isinstance(data, np.ndarray) or np.isscalar(data):
            batches, single = [np.asarray(data)], True
        elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
            batches, single = data, False
        else:
            raise TypeError(f"{context}: expected a NumPy array or an iterable of batches, got "
                            f"{type(data).__name__}")
        total_mean = total_var = None
        total_count = 0
        for batch in batches:
            if isinstance(batch, tuple):   # (x, y) pairs: the features are first
                batch = batch[0]
            batch = np.asarray(batch)
            if batch.dtype.kind not in "fiu":
                raise TypeError(f"{context}: data must be numeric, got dtype {batch.dtype}")
            if batch.ndim == 0:
                raise ValueError(f"{context}: data needs at least one axis, got a scalar")
            self._build_for_adapt(batch.shape, context)
            batch = batch.astype(np.float32, copy=False)
            batch_mean = batch.mean(axis=self._reduce_axis, dtype=np.float64)
            batch_var = batch.var(axis=self._reduce_axis, dtype=np.float64)
            if single:
                total_mean, total_var = batch_mean, batch_var
                break
            batch_count = math.prod(batch.shape[d] for d in self._reduce_axis)
            total_count += batch_count
            if total_mean is None:
                total_mean, total_var = batch_mean, batch_var
                continue
            w_new = batch_count / total_count
            w_old = 1.0 - w_new
            new_mean = total_mean * w_old + batch_mean * w_new
            total_var = (total_var + (total_mean - new_mean) ** 2) * w_old + \
                (batch_var + (batch_mean - new_mean) ** 2) * w_new
            total_mean = new_mean
        if total_mean is None:
            raise ValueError(f"{context}: received an empty iterable (no batches); pass an array "
                             "or at least one batch")
        self.adapt_mean.assign(np.asarray(total_mean, np.float32).reshape(self._stats_shape))
        self.adapt_variance.assign(np.asarray(total_var, np.float32).reshape(self._stats_shape))

    def _build_for_adapt(self, shape, context):
        if not self.built:
            self.build(tuple(shape))
            self.built = True
            self._build_input_shape = (None,) + tuple(shape[1:])
            self._output_shape = self._build_input_shape
            return
        if len(shape) != len(self._broadcast_shape) or any(
                shape[d] != self._broadcast_shape[d] for d in self._keep_axis):
            raise ValueError(f"{context}: the layer was built with input_shape="
                             f"{self._build_input_shape}, but adapt() is being called with data "
                             f"with an incompatible shape, data.shape={tuple(shape)}")

    # -- forward / backward ----------------------------------------------------------------------
    def forward(self, x, training, ctx):
        mean, variance = self._statistics()
        denom = np.maximum(np.sqrt(variance), np.float32(_EPSILON))
        y = buffer(ctx, "y", x.shape)
        if self.invert:
            np.multiply(x, denom, out=y)
            y += mean
        else:
            np.subtract(x, mean, out=y)
            y /= denom
        ctx["denom"] = denom
        return y

    def backward(self, dy, ctx, need_dx):
        if not need_dx:
            return None
        return dy * ctx["denom"] if self.invert else dy / ctx["denom"]

    def get_config(self):
        config = super().get_config()
        config.update(axis=list(self.axis), invert=self.invert, mean=self.input_mean,
                      variance=self.input_variance)
        return config

"""Metrics with Keras names: stateful objects with ``update_state``, ``result``, ``reset_state``.

Each metric keeps a weighted running sum and a total weight (float64), so an epoch's value is the
mean over all samples seen, as in Keras. Per-batch work is a few vectorised NumPy operations on the
batch's predictions.

``"accuracy"``/``"acc"`` in ``compile(metrics=...)`` is resolved from shapes as Keras does
(:func:`resolve_accuracy`): a prediction with last dimension 1 -> BinaryAccuracy; targets of lower
rank than the prediction, or ``(..., 1)`` against a wider prediction -> SparseCategoricalAccuracy;
otherwise CategoricalAccuracy. The log key is the string as typed.
"""
from __future__ import annotations

import numpy as np

from . import losses as _losses

__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "RootMeanSquaredError", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryCrossentropy", "binary_accuracy", "categorical_accuracy",
           "sparse_categorical_accuracy", "top_k_categorical_accuracy",
           "sparse_top_k_categorical_accuracy", "get", "resolve_accuracy"]


def _sparse_labels(y_true, y_pred):
    t = np.asarray(y_true)
    if t.ndim == np.ndim(y_pred) and t.shape[-1] == 1:
        t = t[..., 0]
    return t


def binary_accuracy(y_true, y_pred, threshold=0.5):
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.ndim == p.ndim - 1:
        t = t[..., None]
    return np.mean((p > threshold) == (t > 0.5), axis=-1)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    return (_sparse_labels(y_true, y_pred) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _in_top_k(labels, y_pred, k):
    p = np.asarray(y_pred)
    target = np.take_along_axis(p, np.asarray(labels, np.int64)[..., None], axis=-1)
    # as Keras/TF in_top_k: count classes scoring strictly higher than the target
    return (np.sum(p > target, axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(_sparse_labels(y_true, y_pred), y_pred, k)


def accuracy(y_true, y_pred):
    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    if t.shape != p.shape and t.ndim == p.ndim - 1:
        t = t[..., None]
    return np.mean(t == p, axis=-1)


class Metric:
    """Base class: subclasses implement ``update_state``; state is ``total`` and ``count``."""

    #: True when the metric only needs argmax of the prediction (then the model may pass logits)
    _argmax_invariant = False
    #: "up" if larger is better (accuracies), "down" if smaller is (errors, crossentropies)
    _direction = "down"

    def __init__(self, name=None, dtype=None):
        if dtype not in (None, "float32", "float64"):
            raise ValueError(f"{type(self).__name__}: unsupported dtype {dtype!r}")
        self.name = name or _DEFAULT_NAMES.get(type(self), type(self).__name__.lower())
        self.reset_state()

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self) -> float:
        return float(self.total / self.count) if self.count else 0.0

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    @property
    def variables(self):
        return [np.float64(self.total), np.float64(self.count)]

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _weighted_add(metric, values, sample_weight):
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is None:
        metric.total += float(np.sum(values))
        metric.count += values.size
        return
    w = np.asarray(sample_weight, dtype=np.float64)
    while w.ndim < values.ndim:
        w = w[..., None]
    w = np.broadcast_to(w, values.shape)
    metric.total += float(np.sum(values * w))
    metric.count += float(np.sum(w))


class Mean(Metric):
    """Weighted mean of the values given to ``update_state(values, sample_weight=None)``."""

    def update_state(self, values, sample_weight=None):
        _weighted_add(self, values, sample_weight)


class Sum(Metric):
    """Weighted sum of the values."""

    def update_state(self, values, sample_weight=None):
        _weighted_add(self, values, sample_weight)

    def result(self):
        return float(self.total)


class MeanMetricWrapper(Metric):
    """Mean of ``fn(y_true, y_pred, **kwargs)`` over all samples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        _weighted_add(self, self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}


class Accuracy(MeanMetricWrapper):
    """How often predictions equal the targets exactly."""

    _direction = "up"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name}


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``y_pred > threshold`` matches the binary targets."""

    _direction = "up"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=float(threshold))


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax of the prediction equals argmax of the one-hot target."""

    _argmax_invariant = True
    _direction = "up"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax of the prediction equals the integer label."""

    _argmax_invariant = True
    _direction = "up"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            return super().update_state(y_true, y_pred, sample_weight)
        hits = _sparse_labels(y_true, y_pred) == np.argmax(y_pred, axis=-1)  # the per-step fast path
        self.total += int(np.count_nonzero(hits))
        self.count += hits.size


class TopKCategoricalAccuracy(MeanMetricWrapper):
    _argmax_invariant = True
    _direction = "up"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=int(k))


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    _argmax_invariant = True
    _direction = "up"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=int(k))


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(_losses.mean_absolute_error, name=name, dtype=dtype)


class RootMeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(_losses.mean_squared_error, name=name, dtype=dtype)

    def result(self):
        return float(np.sqrt(super().result()))


class CategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0):
        super().__init__(_losses.categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing))


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False):
        super().__init__(_losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
                         from_logits=bool(from_logits))


class BinaryCrossentropy(MeanMetricWrapper):
    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0.0):
        super().__init__(_losses.binary_crossentropy, name=name, dtype=dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing))


_DEFAULT_NAMES = {Mean: "mean", Sum: "sum"}
_CLASSES = {c.__name__: c for c in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    RootMeanSquaredError, CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy)}
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "root_mean_squared_error": RootMeanSquaredError,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
}
_BY_FUNCTION = {binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
                sparse_categorical_accuracy: SparseCategoricalAccuracy,
                top_k_categorical_accuracy: TopKCategoricalAccuracy,
                sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
                _losses.mean_squared_error: MeanSquaredError, _losses.mean_absolute_error: MeanAbsoluteError,
                _losses.categorical_crossentropy: CategoricalCrossentropy,
                _losses.sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                _losses.binary_crossentropy: BinaryCrossentropy}


def resolve_accuracy(name: str, y_true_shape, y_pred_shape) -> Metric:
    """Keras's choice for ``"accuracy"``: binary, sparse categorical or categorical, by shapes."""
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    if is_binary:
        return BinaryAccuracy(name=name)
    if is_sparse:
        return SparseCategoricalAccuracy(name=name)
    return CategoricalAccuracy(name=name)


def get(identifier):
    """A Metric from a name (``"sparse_categorical_accuracy"``, ``"mae"``), a class name, one of this
    module's functions, a config dict or a Metric instance. ``"accuracy"`` needs shapes: see
    :func:`resolve_accuracy` (compile does it)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                             f"{sorted(_BY_NAME)}")
        return cls()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown metric config {identifier!r}")
        return cls(**(identifier.get("config") or {}))
    if callable(identifier):
        if identifier in _BY_FUNCTION:
            return _BY_FUNCTION[identifier]()
        return MeanMetricWrapper(identifier)
    raise TypeError(f"Could not interpret metric {identifier!r}")

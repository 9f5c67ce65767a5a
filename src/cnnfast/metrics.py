"""Metrics with Keras names: stateful objects with ``update_state``, ``result``, ``reset_state``.

Each metric keeps a weighted running sum and a total weight (float64), so an epoch's value is the
mean over all samples seen, as in Keras. Per-batch work is a few vectorised NumPy operations on the
batch's predictions.

Whatever it holds, a metric's state is a list of float64 arrays, ``variables``, that add up: the
state after two sets of batches is the sum of the two states. ``assign_variables`` puts a state
back and ``stateless_result(variables)`` computes the result of any state without touching the
metric's own, so data-parallel training (``cnnfast.distributed``) sums the ranks' states and gets
the exact global value of every metric.

The segmentation metrics (:class:`IoU`, :class:`MeanIoU`, :class:`BinaryIoU`, :class:`OneHotIoU`,
:class:`OneHotMeanIoU`) instead accumulate a ``(num_classes, num_classes)`` confusion matrix (float64,
rows = true class, columns = predicted class) over all batches, as Keras 3 does.

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
           "sparse_top_k_categorical_accuracy", "IoU", "MeanIoU", "BinaryIoU", "OneHotIoU",
           "OneHotMeanIoU", "get", "resolve_accuracy"]

import warnings


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
    """Base class: subclasses implement ``update_state``; state is ``total`` and ``count``.

    A metric with another state overrides ``reset_state``, ``variables`` and ``assign_variables``
    (its state must still add up, see the module docstring).
    """

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
        """The state as a list of float64 arrays (copies): here ``[total, count]``."""
        return [np.float64(self.total), np.float64(self.count)]

    def assign_variables(self, values):
        """Set the state from arrays shaped like ``variables`` (the inverse of ``variables``)."""
        self._check_variables(values)
        self.total, self.count = float(values[0]), float(values[1])

    def _check_variables(self, values):
        shapes = [np.shape(v) for v in values]
        expected = [np.shape(v) for v in self.variables]
        if shapes != expected:
            raise ValueError(f"{type(self).__name__} '{self.name}': expected state arrays of shapes "
                             f"{expected}, got {shapes}")

    def stateless_result(self, metric_variables):
        """``result()`` of the state ``metric_variables``; the metric's own state is left alone."""
        own = self.variables
        self.assign_variables(metric_variables)
        try:
            return self.result()
        finally:
            self.assign_variables(own)

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


# -- segmentation: intersection over union ---------------------------------------------------------
_IOU_EPSILON = 1e-7  # Keras's backend.epsilon() in result()
_IOU_DTYPES = {"int": "int32", "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
               "uint8": "uint8", "float16": "float16", "bfloat16": "bfloat16", "float32": "float32",
               "float64": "float64"}


def _snake_case(name):
    """Keras's ``to_snake_case``: "MeanIoU" -> "mean_io_u"."""
    import re
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


class _IoUBase(Metric):
    """A confusion matrix over all batches (Keras's ``_IoUBase``); subclasses define ``result``.

    As Keras: labels and predictions are class ids (or argmax over ``axis`` when
    ``sparse_y_true``/``sparse_y_pred`` is False), flattened; pixels whose true or predicted id is
    outside ``[0, num_classes)``, or whose true id is ``ignore_class``, are left out silently. With
    the default dtype (``None`` -> ``"int32"``, Keras's default for these metrics) ids *and sample
    weights* are truncated to integers, so a float weight of 0.5 counts as 0 (a warning says so, as
    in Keras): pass ``dtype="float32"`` (or ``"float64"``) for fractional weights. The matrix itself
    is kept in float64 either way.

    Beyond Keras: NaN in ``y_true``/``y_pred`` and NaN/Inf weights raise ValueError (Keras crashes
    or counts them silently), so do mismatched sizes; per-sample weights ``(N,)`` broadcast over
    each sample's pixels; a dense input whose class axis is not ``num_classes`` long warns once.
    """

    _direction = "up"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        who = type(self).__name__
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"{who}: num_classes must be an integer >= 1, got {num_classes!r}")
        if ignore_class is not None and not _is_int(ignore_class):
            raise ValueError(f"{who}: ignore_class must be None or an integer class id, got "
                             f"{ignore_class!r}")
        if not _is_int(axis):
            raise ValueError(f"{who}: axis must be an integer, got {axis!r}")
        if dtype is None or isinstance(dtype, str):
            key = "int" if dtype is None else dtype
        else:
            try:
                key = np.dtype(dtype).name
            except TypeError:
                key = None
        if key not in _IOU_DTYPES:
            raise ValueError(f"{who}: unsupported dtype {dtype!r}; expected None, an int dtype "
                             f"('int32', 'int64', ...) or a float dtype ('float32', 'float64')")
        self.dtype = _IOU_DTYPES[key]
        self._int_mode = "int" in self.dtype
        # float-mode ids are rounded to this type, as Keras converts them to dtype (NumPy has no
        # bfloat16)
        self._float_type = np.float32 if self.dtype == "bfloat16" else np.dtype(self.dtype).type
        self._warned = set()
        self.num_classes = int(num_classes)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        self.axis = int(axis)
        # an argmaxed prediction is the same for logits and probabilities (fit may pass logits)
        self._argmax_invariant = not self.sparse_y_pred
        self.name = name or _DEFAULT_NAMES.get(type(self)) or _snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self):
        self.total_cm = np.zeros((self.num_classes, self.num_classes), np.float64)

    @property
    def variables(self):
        """The state: ``[total_cm]``, a copy of the confusion matrix."""
        return [self.total_cm.copy()]

    def assign_variables(self, values):
        self._check_variables(values)
        self.total_cm = np.array(values[0], np.float64)

    def _warn_once(self, key, message):
        if key not in self._warned:  # once per metric object: fit calls update_state every step
            self._warned.add(key)
            warnings.warn(f"{type(self).__name__} '{self.name}': {message}", stacklevel=4)

    def _numeric(self, a, what):
        a = np.asarray(a)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{type(self).__name__} '{self.name}': {what} must be numeric, got "
                             f"dtype {a.dtype}")
        # Keras crashes casting NaN to int32 (or drops it in float mode, or argmax picks it): a NaN
        # usually means a diverged model, so say so rather than count it as some class.
        # min() propagates NaN without a full-size temporary.
        if a.dtype.kind == "f" and a.size and np.isnan(a.min()):
            raise ValueError(f"{type(self).__name__} '{self.name}': {what} contains NaN")
        return a

    def _ids(self, a, what, sparse):
        """Class ids of ``y_true``/``y_pred`` (any shape): the argmax over ``axis`` when not
        ``sparse``, else the values, cast as Keras casts them (to ``dtype``) before its bounds mask."""
        a = self._numeric(a, what)
        if not sparse:
            if not -a.ndim <= self.axis < a.ndim or a.shape[self.axis] == 0:
                raise ValueError(f"{type(self).__name__} '{self.name}': {what} of shape {a.shape} "
                                 f"has no class axis {self.axis} to "
                                 f"take the argmax over (sparse_{what}=False)")
            if a.shape[self.axis] != self.num_classes:
                # Keras accepts this silently: argmax ids >= num_classes are dropped by the bounds
                # mask, so a mismatch usually hides a wrong num_classes
                self._warn_once("classes", f"{what} has {a.shape[self.axis]} classes on axis "
                                f"{self.axis} but num_classes={self.num_classes}; ids outside "
                                f"[0, {self.num_classes}) are left out (as in Keras)")
            return np.argmax(a, axis=self.axis)
        if a.dtype.kind == "b":
            return a.astype(np.int8)
        if a.dtype.kind == "f":
            # int mode: truncate toward zero (Keras's cast to int32); float mode: round to the
            # metric's float type first, so 2.99999999 becomes 3.0 and falls outside 3 classes
            return np.trunc(a) if self._int_mode else a.astype(self._float_type, copy=False)
        return a

    def _weights(self, sample_weight, shape, size):
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "fiub":
            raise ValueError(f"{type(self).__name__} '{self.name}': sample_weight must be numeric, "
                             f"got dtype {w.dtype}")
        w = w.astype(np.float64, copy=False)
        if not np.isfinite(w).all():  # Keras would put NaN into the matrix (float) or crash (int)
            raise ValueError(f"{type(self).__name__} '{self.name}': sample_weight contains NaN or Inf")
        if self._int_mode:
            t = np.trunc(w)  # Keras casts weights to the int dtype too
            if (t != w).any():  # warn only when it changes something (fit passes float32 weights)
                self._warn_once("weights", f"sample_weight is fractional but dtype is '{self.dtype}', "
                                f"so weights are truncated to integers (as in Keras); pass "
                                f"dtype='float32' for fractional weights")
            w = t
        if w.size == 1:
            return np.full(size, w.reshape(()))
        if w.size == size:  # Keras: flatten, then it must match the flattened labels
            return w.reshape(-1)
        # Beyond Keras (which needs one weight per label): per-sample weights, e.g. (N,) for
        # (N, H, W) labels as fit's weighted_metrics passes them, broadcast over trailing axes.
        v = w
        while v.ndim < len(shape):
            v = v[..., None]
        try:
            return np.broadcast_to(v, shape).reshape(-1)
        except ValueError:
            raise ValueError(f"{type(self).__name__} '{self.name}': sample_weight of shape {w.shape} "
                             f"does not broadcast to the labels' shape {tuple(shape)}; give one "
                             f"weight per label, per sample or a scalar") from None

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add this batch's (weighted) confusion matrix to the running one."""
        t = self._ids(y_true, "y_true", self.sparse_y_true)
        p = self._ids(y_pred, "y_pred", self.sparse_y_pred)
        shape = t.shape
        t, p = t.reshape(-1), p.reshape(-1)
        if t.size != p.size:  # Keras fails in a backend op here; say which metric and why
            def how(a, sparse):
                return f"shape {np.shape(a)}" + ("" if sparse else f", argmax over axis {self.axis}")
            raise ValueError(f"{type(self).__name__} '{self.name}': y_true gives {t.size} labels "
                             f"({how(y_true, self.sparse_y_true)}) but y_pred gives {p.size} "
                             f"predictions ({how(y_pred, self.sparse_y_pred)})"
                             + ("; for per-class scores pass sparse_y_pred=False"
                                if self.sparse_y_pred and p.size > t.size else ""))
        n = self.num_classes
        keep = (t >= 0) & (t < n) & (p >= 0) & (p < n)  # Keras's bounds mask: out-of-range ids drop
        if self.ignore_class is not None:
            keep &= t != self.ignore_class
        w = None if sample_weight is None else self._weights(sample_weight, shape, t.size)
        if not keep.all():
            t, p = t[keep], p[keep]
            if w is not None:
                w = w[keep]
        # one bincount over flat (true, pred) cell indices builds the whole matrix
        flat = t.astype(np.int64) * n + p.astype(np.int64)
        self.total_cm += np.bincount(flat, weights=w, minlength=n * n).reshape(n, n)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class IoU(_IoUBase):
    """Intersection over union, ``tp / (tp + fp + fn)``, averaged over ``target_class_ids``.

    Keras 3's ``keras.metrics.IoU``: classes whose denominator is zero (never true nor predicted)
    are left out of the mean; the result is ``sum(iou) / (n_valid + 1e-7)`` with
    ``iou = tp / (denominator + 1e-7)``, so 0.0 when no class is valid.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)
        who = type(self).__name__
        try:
            ids = list(target_class_ids)
        except TypeError:
            raise ValueError(f"{who}: target_class_ids must be a list or tuple of class ids, got "
                             f"{target_class_ids!r}") from None
        if not ids or not all(_is_int(i) for i in ids):
            raise ValueError(f"{who}: target_class_ids must be a non-empty list of integer class ids, "
                             f"got {target_class_ids!r}")
        bad = [int(i) for i in ids if not 0 <= i < self.num_classes]
        if bad:
            raise ValueError(f"{who}: target class id {bad[0]} is out of range, which is "
                             f"[0, {self.num_classes})")
        self.target_class_ids = [int(i) for i in ids]
        self._target = np.asarray(self.target_class_ids, np.intp)

    def result(self) -> float:
        cm = self.total_cm
        tp = np.diagonal(cm)
        denominator = (cm.sum(axis=0) + cm.sum(axis=1) - tp)[self._target]
        tp = tp[self._target]
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + _IOU_EPSILON), 0.0)
        return float(iou.sum() / (np.count_nonzero(valid) + _IOU_EPSILON))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": list(self.target_class_ids), "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1 after thresholding: ``y_pred >= threshold`` is class 1 (compared in
    float32, as Keras)."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        try:
            self.threshold = float(threshold)
        except (TypeError, ValueError):
            raise ValueError(f"BinaryIoU: threshold must be a number, got {threshold!r}") from None
        self._argmax_invariant = False

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Keras compares in float32: y_pred >= threshold is class 1
        p = self._numeric(y_pred, "y_pred").astype(np.float32) >= np.float32(self.threshold)
        super().update_state(y_true, p, sample_weight)

    def get_config(self):
        return {"target_class_ids": list(self.target_class_ids), "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}


class MeanIoU(IoU):
    """Mean IoU over all ``num_classes`` classes (those never true nor predicted left out)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"{type(self).__name__}: num_classes must be an integer >= 1, got "
                             f"{num_classes!r}")
        super().__init__(num_classes=num_classes, target_class_ids=list(range(num_classes)),
                         name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """IoU for one-hot labels: argmax of ``y_true`` (and of ``y_pred`` unless ``sparse_y_pred``)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes=num_classes, target_class_ids=target_class_ids, name=name,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": list(self.target_class_ids),
                "name": self.name, "dtype": self.dtype, "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """Mean IoU for one-hot labels: argmax of ``y_true`` (and of ``y_pred`` unless ``sparse_y_pred``)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes=num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


# Keras names these by snake-casing the class name: "io_u", "mean_io_u", ...
_DEFAULT_NAMES = {Mean: "mean", Sum: "sum", IoU: "io_u", MeanIoU: "mean_io_u",
                  BinaryIoU: "binary_io_u", OneHotIoU: "one_hot_io_u",
                  OneHotMeanIoU: "one_hot_mean_io_u"}
_CLASSES = {c.__name__: c for c in (
    Mean, Sum, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    RootMeanSquaredError, CategoricalCrossentropy, SparseCategoricalCrossentropy, BinaryCrossentropy,
    IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU)}
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
    "binary_io_u": BinaryIoU,  # the one IoU metric Keras builds from a string (no required args)
}
# snake-case names of the IoU metrics that need num_classes: get() explains instead of failing in cls()
_NEEDS_ARGS = {"io_u": IoU, "iou": IoU, "mean_io_u": MeanIoU, "mean_iou": MeanIoU,
               "one_hot_io_u": OneHotIoU, "one_hot_iou": OneHotIoU,
               "one_hot_mean_io_u": OneHotMeanIoU, "one_hot_mean_iou": OneHotMeanIoU}
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
        needs = _NEEDS_ARGS.get(identifier.lower()) or (cls if cls in _NEEDS_ARGS.values() else None)
        if needs is not None:
            args = "num_classes and target_class_ids" if needs in (IoU, OneHotIoU) else "num_classes"
            raise ValueError(f"Metric {identifier!r} ({needs.__name__}) needs {args}: pass "
                             f"cnnfast.metrics.{needs.__name__}(...) instead of a string")
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

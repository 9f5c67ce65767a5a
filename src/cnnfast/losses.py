"""Losses with Keras names, defaults and reductions, each with its gradient for training.

Public API as Keras: classes (``SparseCategoricalCrossentropy(from_logits=False)``...) callable as
``loss(y_true, y_pred, sample_weight=None) -> float``, per-sample functions
(``sparse_categorical_crossentropy(y_true, y_pred)``), string names and aliases (``"mse"``) through
:func:`get`.

Reduction "sum_over_batch_size" (the default, as Keras): ``sum(w * per_sample_loss) / count``
where ``count`` is the number of per-sample values (the batch size for 2-D predictions). With
``from_logits=False`` the crossentropies renormalise the predicted probabilities and clip them to
``[1e-7, 1 - 1e-7]`` (Keras's NumPy backend); their gradients are the exact derivatives of that.

Fusion: when a model's last layer is a softmax and the loss is a categorical crossentropy with
``from_logits=False``, the model hands the loss the logits and it calls the fused C kernel
``ops.softmax_cross_entropy`` (stable log-sum-exp; gradient ``softmax - onehot`` in the same pass).
The loss value then has no clipping at 1e-7, the one difference from Keras (an
unclipped, more accurate value). Sigmoid + binary crossentropy is fused the same way in NumPy.
"""
from __future__ import annotations

import numpy as np

from . import ops

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "sparse_categorical_crossentropy",
           "categorical_crossentropy", "binary_crossentropy", "mean_squared_error",
           "mean_absolute_error", "mse", "mae", "MSE", "MAE", "get", "serialize", "deserialize"]

EPSILON = 1e-7
_REDUCTIONS = ("sum_over_batch_size", "sum", "none", None)


def _fmt(shape):
    return "(" + ", ".join("N" if i == 0 else str(s) for i, s in enumerate(shape)) + \
           ("," if len(shape) == 1 else "") + ")"


# --------------------------------------------------------------------------------------------
# per-sample functions (Keras semantics; float64 NumPy for exactness, small arrays)
def _log_softmax(z, axis=-1):
    z = z - np.max(z, axis=axis, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def _log_probs(p, from_logits, axis=-1):
    if from_logits:
        return _log_softmax(p, axis)
    p = p / np.sum(p, axis=axis, keepdims=True)
    return np.log(np.clip(p, EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample ``-sum(y_true * log(y_pred))`` over ``axis``."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + label_smoothing / t.shape[axis]
    return -np.sum(t * _log_probs(p, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """Per-sample ``-log(y_pred[y_true])`` for integer labels."""
    if ignore_class is not None:
        raise NotImplementedError("sparse_categorical_crossentropy: ignore_class is not supported")
    p = np.asarray(y_pred, dtype=np.float64)
    labels = np.asarray(y_true)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    labels = labels.astype(np.int64)
    logp = _log_probs(p, from_logits, axis)
    return -np.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-sample mean over ``axis`` of ``-(t log p + (1 - t) log(1 - p))``."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
    else:
        p = np.clip(p, EPSILON, 1.0 - EPSILON)
        values = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
    return np.mean(values, axis=axis)


def mean_squared_error(y_true, y_pred):
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return np.mean(d * d, axis=-1)


def mean_absolute_error(y_true, y_pred):
    d = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    return np.mean(np.abs(d), axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


# The GradientTape's entry point (``cnnfast.models.gradients.loss_call``), installed by that module
# when it is imported: losses sit below models, so they take the hook rather than import it.
_tape_hook = None


def set_tape_hook(hook) -> None:
    """``hook(loss, y_true, y_pred, sample_weight)`` -> a recorded loss, or None for a plain call."""
    global _tape_hook
    _tape_hook = hook


# --------------------------------------------------------------------------------------------
class Loss:
    """Base class. Subclasses implement ``call(y_true, y_pred) -> per-sample values`` and, for
    training, ``_grad_values`` (derivative of the per-sample values w.r.t. y_pred)."""

    #: 'sparse' (integer labels), 'dense' (same shape as y_pred)
    _target_kind = "dense"
    #: name of the output activation this loss can fuse with ("softmax" / "sigmoid")
    _fusable_activation = None

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of "
                             f"{[r for r in _REDUCTIONS if r]} or None, got {reduction!r}")
        if dtype not in (None, "float32"):
            raise ValueError(f"{type(self).__name__}: dtype must be float32, got {dtype!r}")
        self.name = name or _DEFAULT_NAMES.get(type(self), type(self).__name__)
        self.reduction = reduction

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _tape_hook is not None:   # inside a GradientTape, on a recorded model output
            taped = _tape_hook(self, y_true, y_pred, sample_weight)
            if taped is not None:
                return taped
        values = self.call(y_true, y_pred)
        if self.reduction in ("none", None):
            return values if sample_weight is None else values * _expand_weight(sample_weight, values)
        return float(self._reduce(values, sample_weight))

    def _reduce(self, values, sample_weight):
        if sample_weight is not None:
            values = values * _expand_weight(sample_weight, values)
        total = np.sum(values, dtype=np.float64)
        if self.reduction == "sum":
            return total
        return total / values.size if values.size else 0.0

    def _scale(self, values_shape, sample_weight):
        """d(reduced)/d(per-sample value): ``w / count`` (or ``w`` for "sum"), shaped like values."""
        count = int(np.prod(values_shape)) if self.reduction != "sum" else 1
        if count == 0:
            return np.zeros(values_shape)
        if sample_weight is None:
            return np.full(values_shape, 1.0 / count)
        return _expand_weight(sample_weight, tuple(values_shape)) / count

    # -- training interface (used by Model) --------------------------------------------------
    def prepare_targets(self, y, pred_shape, where="y"):
        """Validate and convert the targets once, before training; ``pred_shape[0]`` is N."""
        arr = np.asarray(y)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: {where} must be numeric, got dtype {arr.dtype}")
        want = tuple(pred_shape)
        if arr.shape != want:
            if want[-1] == 1 and arr.shape == want[:-1]:
                arr = arr.reshape(want)
            else:
                raise ValueError(f"{self.name}: {where} must have the shape of the model's output "
                                 f"{_fmt(want)}, got {arr.shape}" + self._shape_hint(arr, want))
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _shape_hint(self, arr, want):
        if arr.ndim == len(want) - 1 or (arr.ndim == len(want) and arr.shape[-1] == 1 and want[-1] > 1):
            return ("; integer class labels need loss='sparse_categorical_crossentropy' (or "
                    "cnnfast.utils.to_categorical(y))")
        return ""

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """(reduced loss as float, d loss / d y_pred as float32 array of y_pred's shape)."""
        values, dvalues = self._values_and_grads(y_true, y_pred)
        scale = self._scale(values.shape, sample_weight)
        loss = float(np.sum(values * scale))
        grad = dvalues * scale.reshape(scale.shape + (1,) * (dvalues.ndim - scale.ndim))
        return loss, np.ascontiguousarray(grad, dtype=np.float32)

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        """Same, given the logits of a fused output activation (see the module docstring)."""
        raise NotImplementedError

    def _values_and_grads(self, y_true, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _expand_weight(sample_weight, values, dtype=np.float64):
    """``sample_weight`` broadcast to the loss values' shape: one weight per sample ``(N,)`` or one
    per element ``(N, ...)`` (per-pixel weights), trailing size-1 axes allowed."""
    shape = values if isinstance(values, tuple) else values.shape
    w = np.asarray(sample_weight, dtype=dtype)
    if w.ndim > len(shape) and w.shape[len(shape):] == (1,) * (w.ndim - len(shape)):
        w = w.reshape(w.shape[:len(shape)])
    if w.ndim <= len(shape) and w.shape == shape[:w.ndim]:
        return np.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape)
    raise ValueError(f"sample_weight of shape {w.shape} does not fit the loss values of shape {shape}: "
                     f"give one weight per sample {shape[:1]} or one per element {shape}")


class _CrossentropyBase(Loss):
    _fusable_activation = "softmax"

    def _rows(self, y_true, z):
        """Flatten leading axes: logits (M, C) and labels (M,) int or (M, C) probabilities."""
        c = z.shape[-1]
        z2 = z.reshape(-1, c)
        if self._target_kind == "sparse":
            labels = y_true.reshape(-1)
        else:
            labels = y_true.reshape(-1, c)
            if getattr(self, "label_smoothing", 0.0):
                ls = np.float32(self.label_smoothing)
                labels = labels * (np.float32(1) - ls) + ls / np.float32(c)
        return z2, labels

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        """Fused softmax + crossentropy in C. Reduction: sum_over_batch_size (or sum)."""
        z2, labels = self._rows(y_true, logits)
        m = z2.shape[0]
        if m == 0:
            return 0.0, np.zeros_like(logits)
        w = None
        if sample_weight is not None:
            w = np.ascontiguousarray(_expand_weight(sample_weight, logits.shape[:-1], np.float32)
                                     .reshape(-1))
        mean_loss, dz = ops.softmax_cross_entropy(z2, labels, sample_weight=w)
        loss = float(mean_loss)
        if self.reduction == "sum":
            loss *= m
            dz = dz * np.float32(m)
        return loss, dz.reshape(logits.shape)

    def _values_and_grads(self, y_true, y_pred):
        """Per-row loss and its derivative w.r.t. y_pred, from probabilities or logits (float64)."""
        p = np.asarray(y_pred, np.float64)
        c = p.shape[-1]
        if self._target_kind == "sparse":
            t = np.zeros(p.shape)
            np.put_along_axis(t, np.asarray(y_true, np.int64)[..., None], 1.0, axis=-1)
        else:
            t = np.asarray(y_true, np.float64)
            if getattr(self, "label_smoothing", 0.0):
                t = t * (1.0 - self.label_smoothing) + self.label_smoothing / c
        if self.from_logits:
            logp = _log_softmax(p)
            values = -np.sum(t * logp, axis=-1)
            grads = np.exp(logp) * np.sum(t, axis=-1, keepdims=True) - t
            return values, grads
        s = np.sum(p, axis=-1, keepdims=True)
        q = p / s
        qc = np.clip(q, EPSILON, 1.0 - EPSILON)
        values = -np.sum(t * np.log(qc), axis=-1)
        g = np.where((q > EPSILON) & (q < 1.0 - EPSILON), -t / qc, 0.0)  # d values / d q
        grads = (g - np.sum(g * q, axis=-1, keepdims=True)) / s
        return values, grads


class CategoricalCrossentropy(_CrossentropyBase):
    """Crossentropy with one-hot (or probability) targets of the output's shape."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if axis != -1:
            raise ValueError(f"{self.name}: only axis=-1 is supported, got {axis!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"{self.name}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.axis = -1

    def call(self, y_true, y_pred):
        return categorical_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return config


class SparseCategoricalCrossentropy(_CrossentropyBase):
    """Crossentropy with integer class labels of shape ``(N,)`` or ``(N, 1)``."""

    _target_kind = "sparse"

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if ignore_class is not None:
            raise NotImplementedError(f"{self.name}: ignore_class is not supported")
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return sparse_categorical_crossentropy(y_true, y_pred, self.from_logits)

    def prepare_targets(self, y, pred_shape, where="y"):
        arr = np.asarray(y)
        want = tuple(pred_shape[:-1])
        classes = pred_shape[-1]
        if arr.shape != want:
            if arr.shape == want + (1,):
                arr = arr.reshape(want)
            else:
                hint = ""
                if arr.shape == tuple(pred_shape) and classes > 1:
                    hint = "; one-hot targets need loss='categorical_crossentropy'"
                raise ValueError(f"{self.name}: {where} must hold one integer class index per "
                                 f"sample, of shape {_fmt(want)} or {_fmt(want + (1,))}, got "
                                 f"{arr.shape}{hint}")
        if arr.dtype.kind == "f":
            if arr.size and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
                raise ValueError(f"{self.name}: {where} must hold whole class indices, got "
                                 "non-integer values")
        elif arr.dtype.kind not in "iub":
            raise TypeError(f"{self.name}: {where} must hold integer class indices, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= classes):
            raise ValueError(f"{self.name}: {where} holds class indices in [{int(arr.min())}, "
                             f"{int(arr.max())}] but the model has {classes} outputs (valid: 0.."
                             f"{classes - 1})")
        return np.ascontiguousarray(arr, dtype=np.int32)

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits)
        return config


class BinaryCrossentropy(Loss):
    """Per-element binary crossentropy averaged over the last axis (targets in [0, 1])."""

    _fusable_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if axis != -1:
            raise ValueError(f"{self.name}: only axis=-1 is supported, got {axis!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = float(label_smoothing)
        self.axis = -1

    def call(self, y_true, y_pred):
        return binary_crossentropy(y_true, y_pred, self.from_logits, self.label_smoothing)

    def _targets(self, y_true):
        t = np.asarray(y_true, np.float64)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return t

    def _values_and_grads(self, y_true, y_pred):
        p = np.asarray(y_pred, np.float64)
        t = self._targets(y_true)
        d = p.shape[-1]
        if self.from_logits:
            return self._from_logits(t, p)
        pc = np.clip(p, EPSILON, 1.0 - EPSILON)
        values = np.mean(-(t * np.log(pc) + (1.0 - t) * np.log(1.0 - pc)), axis=-1)
        inside = (p > EPSILON) & (p < 1.0 - EPSILON)
        grads = np.where(inside, (-t / pc + (1.0 - t) / (1.0 - pc)) / d, 0.0)
        return values, grads

    @staticmethod
    def _from_logits(t, z):
        d = z.shape[-1]
        values = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))), axis=-1)
        e = np.exp(-np.abs(z))
        sig = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return values, (sig - t) / d

    def value_and_grad_from_logits(self, y_true, logits, sample_weight=None):
        values, dvalues = self._from_logits(self._targets(y_true), np.asarray(logits, np.float64))
        scale = self._scale(values.shape, sample_weight)
        return float(np.sum(values * scale)), np.ascontiguousarray(dvalues * scale[..., None], np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(from_logits=self.from_logits, label_smoothing=self.label_smoothing, axis=self.axis)
        return config


class MeanSquaredError(Loss):
    """Mean over the last axis of ``(y_true - y_pred) ** 2``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mean_squared_error(y_true, y_pred)

    def _values_and_grads(self, y_true, y_pred):
        d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
        return np.mean(d * d, axis=-1), 2.0 * d / d.shape[-1]


class MeanAbsoluteError(Loss):
    """Mean over the last axis of ``|y_true - y_pred|``."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return mean_absolute_error(y_true, y_pred)

    def _values_and_grads(self, y_true, y_pred):
        d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
        return np.mean(np.abs(d), axis=-1), np.sign(d) / d.shape[-1]


_DEFAULT_NAMES = {CategoricalCrossentropy: "categorical_crossentropy",
                  SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
                  BinaryCrossentropy: "binary_crossentropy", MeanSquaredError: "mean_squared_error",
                  MeanAbsoluteError: "mean_absolute_error"}
_CLASSES = {c.__name__: c for c in _DEFAULT_NAMES}
_BY_NAME = {"categorical_crossentropy": CategoricalCrossentropy,
            "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
            "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
            "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
            "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError}
_BY_FUNCTION = {categorical_crossentropy: CategoricalCrossentropy,
                sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
                binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError,
                mean_absolute_error: MeanAbsoluteError}


def get(identifier):
    """A Loss object from a name or alias (``"sparse_categorical_crossentropy"``, ``"mse"``,
    ``"MeanSquaredError"``), one of this module's functions, a config dict or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier) or _BY_NAME.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} or a "
                             f"class name from {sorted(_CLASSES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]()
    raise TypeError(f"Could not interpret loss {identifier!r}: cnnfast needs a loss it can "
                    "differentiate (a name such as 'mse', or a cnnfast.losses class or function)")


def serialize(loss) -> dict:
    loss = get(loss)
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Unknown loss config {config!r}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"Bad loss config {config!r}")
    try:
        return _CLASSES[config["class_name"]](**kwargs)
    except TypeError as exc:
        raise ValueError(f"Bad arguments for loss {config['class_name']}: {exc}") from None

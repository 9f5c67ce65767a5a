"""Weight and activity regularizers with Keras 3's names, arguments, defaults and configs
(``keras.regularizers``).

A regularizer is called on an array and returns its penalty, a float added to the training loss
(``regularizer(w) -> float``, computed in float64). cnnfast has no autograd, so each regularizer
also gives the penalty's gradient with respect to its input, ``regularizer.gradient(w)`` (float32,
the shape of ``w``); training adds it to the weight's gradient (see :func:`weights_penalty` and
:func:`add_penalty_gradients`, called once per step by the model for its trainable weights, and
the layers' ``activity_regularizer`` handling). The gradients are those of PyTorch's autograd on
Keras's formulas: ``L1``'s is ``l1 * sign(w)`` (0 at 0, as ``abs``'s backward), ``L2``'s is
``2 * l2 * w``.

Identifiers, as Keras 3.15.1's ``regularizers.get``: an instance, a class (instantiated with its
defaults), a config dict, or a name: a class name or its snake_case form (``"l1"`` = ``L1()`` with
``l1=0.01``, ``"l2"`` = ``L2()`` with ``l2=0.01``, ``"l1l2"`` = ``L1L2()`` with both 0,
``"orthogonal_regularizer"``). ``"l1_l2"``, which Keras documents with ``l1=l2=0.01`` but whose
``get`` does not know, is ``L1L2(0.01, 0.01)``. A custom regularizer is a callable with a
``gradient(x)`` method, e.g. a :class:`Regularizer` subclass defining ``__call__`` and
``gradient``. Configs serialise as Keras 3's ``{"module": "keras.regularizers", "class_name":
"L2", "config": {"l2": 0.01}, "registered_name": None}``; loading one rebuilds only the classes
of this module (never imports anything).
"""
from __future__ import annotations

import inspect
import math

import numpy as np

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize", "weights_penalty",
           "add_penalty_gradients", "layer_losses"]

# Keras's backend.epsilon(): the lower bound of a norm in OrthogonalRegularizer's normalisation
_EPSILON = 1e-7


def _factor(value, name, cls):
    """Keras's ``validate_float_arg``: a finite, non-negative number, as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"{cls}: invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


def _as_float32(x, cls):
    arr = np.asarray(x)   # a cnnfast Variable reads as its value
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{cls}: expected a real array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


class Regularizer:
    """Base class: ``__call__(x)`` is the penalty (0.0 here), ``gradient(x)`` its gradient with
    respect to ``x`` (zeros here); ``get_config``/``from_config`` as Keras.

    A subclass that overrides ``__call__`` must override ``gradient`` too (cnnfast cannot
    differentiate an arbitrary function); :func:`get` refuses one that does not.
    """

    def __call__(self, x):
        return 0.0

    def gradient(self, x):
        return np.zeros(np.shape(x), np.float32)

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x**2)`` (``keras.regularizers.L1L2``; None means 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(0.0 if l1 is None else l1, "l1", "L1L2")
        self.l2 = _factor(0.0 if l2 is None else l2, "l2", "L1L2")

    def __call__(self, x):
        x = _as_float32(x, "L1L2").astype(np.float64)
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.abs(x).sum())
        if self.l2:
            penalty += self.l2 * float(np.square(x).sum())
        return penalty

    def gradient(self, x):
        x = _as_float32(x, "L1L2")
        grad = np.zeros(x.shape, np.float32)
        if self.l1:
            grad += np.float32(self.l1) * np.sign(x)
        if self.l2:
            grad += np.float32(2.0 * self.l2) * x
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """``l1 * sum(|x|)`` (``keras.regularizers.L1``, default ``l1=0.01``)."""

    def __init__(self, l1=0.01):
        # Keras keeps the factor as a float32 tensor, so its config reads 0.009999999776482582
        self.l1 = float(np.float32(_factor(0.01 if l1 is None else l1, "l1", "L1")))

    def __call__(self, x):
        return self.l1 * float(np.abs(_as_float32(x, "L1").astype(np.float64)).sum())

    def gradient(self, x):
        return np.float32(self.l1) * np.sign(_as_float32(x, "L1"))

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x**2)`` (``keras.regularizers.L2``, default ``l2=0.01``)."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(0.01 if l2 is None else l2, "l2", "L2")

    def __call__(self, x):
        return self.l2 * float(np.square(_as_float32(x, "L2").astype(np.float64)).sum())

    def gradient(self, x):
        return np.float32(2.0 * self.l2) * _as_float32(x, "L2")

    def get_config(self):
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode="rows"``) or columns (``"columns"``) of a 2-D weight towards
    orthogonality (``keras.regularizers.OrthogonalRegularizer``).

    With ``u_i`` the L2-normalised rows (``u = w * min(1/||w||, 1/1e-7)``, Keras's
    ``normalize``) of an ``n``-row matrix, the penalty is
    ``factor * 0.5 * sum_{i != j} |u_i . u_j| / (n (n - 1) / 2)``.
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = float(np.float32(_factor(factor, "factor", "OrthogonalRegularizer")))
        if mode not in ("rows", "columns"):
            raise ValueError("OrthogonalRegularizer: invalid value for argument `mode`. Expected one of "
                             f'{{"rows", "columns"}}. Received: mode={mode!r}')
        self.mode = mode

    def _rows(self, x):
        """The weight as float64 rows to orthogonalise (the transpose in columns mode)."""
        x = _as_float32(x, "OrthogonalRegularizer")
        if x.ndim != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: "
                             f"inputs.shape={x.shape}")
        rows = x.astype(np.float64)
        rows = rows if self.mode == "rows" else rows.T
        if rows.shape[0] < 2:
            raise ValueError(f"OrthogonalRegularizer (mode={self.mode!r}): needs at least 2 "
                             f"{self.mode} to compare, got inputs.shape={x.shape}")
        return rows

    def _normalized(self, rows):
        norm = np.sqrt(np.square(rows).sum(axis=1, keepdims=True))
        inv = np.minimum(1.0 / np.maximum(norm, 1e-300), 1.0 / _EPSILON)
        return rows * inv, norm, inv

    def _scale(self, n):
        return self.factor * 0.5 / (n * (n - 1.0) / 2.0)

    def __call__(self, x):
        rows = self._rows(x)
        u, _, _ = self._normalized(rows)
        product = u @ u.T
        np.fill_diagonal(product, 0.0)
        return float(self._scale(rows.shape[0]) * np.abs(product).sum())

    def gradient(self, x):
        rows = self._rows(x)
        u, norm, inv = self._normalized(rows)
        product = u @ u.T
        signs = np.sign(product)
        np.fill_diagonal(signs, 0.0)
        # d/du of sum |u u^T| (off-diagonal) is (S + S^T) u = 2 S u, S symmetric
        du = 2.0 * self._scale(rows.shape[0]) * (signs @ u)
        # through u = w / ||w|| (norm above epsilon): (du - (du . u) u) / ||w||; below it, du / eps
        projected = (du - (du * u).sum(axis=1, keepdims=True) * u) * inv
        dw = np.where(norm > _EPSILON, projected, du * inv)
        dw = dw if self.mode == "rows" else dw.T
        return dw.astype(np.float32)

    def get_config(self):
        return {"factor": self.factor, "mode": self.mode}


# Keras's lower-case aliases name the classes themselves
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

_CLASSES = {c.__name__: c for c in (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)}
# Keras's string identifiers: class names and their snake_case forms ("l1l2", "orthogonal_regularizer")
_NAMES = dict(_CLASSES)
_NAMES.update({"regularizer": Regularizer, "l1": L1, "l2": L2, "l1l2": L1L2,
               "orthogonal_regularizer": OrthogonalRegularizer})
_MODULES = (None, "keras.regularizers", "keras.src.regularizers.regularizers", "cnnfast.regularizers")


def _has_gradient(obj) -> bool:
    if isinstance(obj, Regularizer):
        # a subclass with its own penalty needs its own gradient
        return type(obj).__call__ is Regularizer.__call__ or type(obj).gradient is not Regularizer.gradient
    return callable(getattr(obj, "gradient", None))


def get(identifier, context: str = "regularizer"):
    """A regularizer from a name, a config dict, a class, an instance or a callable with a
    ``gradient`` method; None stays None."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier, context)
    elif isinstance(identifier, str):
        if identifier == "l1_l2":   # Keras's documented defaults
            return L1L2(l1=0.01, l2=0.01)
        obj = _NAMES.get(identifier)
        if obj is None:
            raise ValueError(f"{context}: could not interpret regularizer identifier: {identifier!r}; "
                             f"expected one of {sorted(_NAMES) + ['l1_l2']}, a config dict or a "
                             "Regularizer instance")
    else:
        obj = identifier
    if inspect.isclass(obj):
        if not callable(obj):
            raise ValueError(f"{context}: could not interpret regularizer identifier: {identifier!r}")
        obj = obj()
    if not callable(obj):
        raise ValueError(f"{context}: could not interpret regularizer identifier: {identifier!r}")
    if not _has_gradient(obj):
        raise TypeError(f"{context}: the custom regularizer {obj!r} has no gradient(x) method; cnnfast "
                        "has no autograd, so a regularizer must give the gradient of its penalty with "
                        "respect to its input (subclass cnnfast.regularizers.Regularizer and define "
                        "__call__ and gradient)")
    return obj


def serialize(regularizer):
    """Keras 3's layout: ``{"module", "class_name", "config", "registered_name"}``; None stays None."""
    if regularizer is None:
        return None
    cls = type(regularizer)
    if _CLASSES.get(cls.__name__) is cls:
        return {"module": "keras.regularizers", "class_name": cls.__name__,
                "config": regularizer.get_config(), "registered_name": None}
    if inspect.isfunction(regularizer):
        return {"module": regularizer.__module__, "class_name": "function",
                "config": regularizer.__name__, "registered_name": "function"}
    # a custom class: written as Keras writes it; loading it back is refused (see deserialize)
    config = regularizer.get_config() if hasattr(regularizer, "get_config") else {}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": cls.__name__}


def deserialize(config, context: str = "regularizer"):
    """A regularizer of this module from a Keras config (Keras 3's dict, or Keras 2's
    ``{"class_name", "config"}``); other classes are refused, nothing is imported."""
    if isinstance(config, str):
        return get(config, context)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{context}: bad regularizer config {config!r}; expected a dict with a "
                         "'class_name' and a 'config'")
    name = config["class_name"]
    cls = _CLASSES.get(name)
    if cls is None or config.get("module") not in _MODULES or config.get("registered_name") not in (None, name):
        raise ValueError(f"{context}: cannot load the regularizer class {name!r} (module "
                         f"{config.get('module')!r}); cnnfast rebuilds only its own: "
                         f"{sorted(c for c in _CLASSES if c != 'Regularizer')}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{context}: bad regularizer config {config!r}")
    try:
        return cls.from_config(kwargs)
    except TypeError as exc:
        raise ValueError(f"{context}: bad arguments for {name}: {exc}") from None


# -- what training uses ---------------------------------------------------------------------------
def _penalty_value(regularizer, variable) -> float:
    value = regularizer(variable.value)
    return float(np.asarray(value, dtype=np.float64))


def weights_penalty(variables) -> float:
    """The sum of the penalties of ``variables`` that have a ``regularizer`` (Keras adds those of
    the model's trainable weights to the loss of every training and evaluation step)."""
    total = 0.0
    for v in variables:
        reg = v.regularizer
        if reg is not None:
            total += _penalty_value(reg, v)
    return total


def add_penalty_gradients(variables) -> None:
    """Add each regularised variable's penalty gradient to its ``grad`` (after the backward pass)."""
    for v in variables:
        reg = v.regularizer
        if reg is None:
            continue
        g = np.asarray(reg.gradient(v.value), dtype=np.float32)
        if g.shape != v.value.shape:
            raise ValueError(f"regularizer {reg!r} of {v.path}: gradient of shape {g.shape}, expected "
                             f"the weight's shape {v.value.shape}")
        v.grad += g


def layer_losses(layer) -> list:
    """Keras's ``layer.losses``: the activity-regularisation losses of the last call of the layer
    (and, for a model, of its layers), then the penalties of its trainable weights, as float32."""
    out, seen = [], set()

    def walk(l):
        if id(l) in seen:
            return
        seen.add(id(l))
        loss = getattr(l, "_activity_loss", None)
        if loss is not None:
            out.append(np.float32(loss))
        for sub in getattr(l, "layers", ()) if hasattr(l, "_plan") else ():
            walk(sub)

    walk(layer)
    out.extend(np.float32(_penalty_value(v.regularizer, v)) for v in layer.trainable_weights
               if v.regularizer is not None)
    return out

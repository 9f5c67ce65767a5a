"""Weight constraints with Keras 3's names, arguments, defaults and configs (``keras.constraints``).

A constraint is a projection ``constraint(w) -> w'`` applied to a weight after every optimizer
step, as Keras's ``BaseOptimizer.apply`` does: ``Model.fit`` (and ``train_on_batch``) has
``Optimizer.apply_constraints`` project the model's trainable weights right after the fused
update, and ``Optimizer.apply_gradients`` the variables it updated. Formulas are Keras's, with its epsilon
(``backend.epsilon() = 1e-7``) added to the norms; norms are summed in float64, results float32:

* ``MaxNorm(max_value=2, axis=0)``: ``w * clip(n, 0, max_value) / (1e-7 + n)``,
  ``n = sqrt(sum(w**2, axis))``;
* ``NonNeg()``: ``max(w, 0)``;
* ``UnitNorm(axis=0)``: ``w / (1e-7 + n)``;
* ``MinMaxNorm(min_value=0.0, max_value=1.0, rate=1.0, axis=0)``:
  ``w * (rate * clip(n, min_value, max_value) + (1 - rate) * n) / (1e-7 + n)``.

``axis`` is an int or a list of ints: for a Dense kernel ``(in, units)`` axis 0 constrains each
unit's incoming weights; for a Conv2D kernel ``(kh, kw, cin, filters)``, ``axis=[0, 1, 2]`` each
filter. Identifiers as Keras's ``constraints.get``: an instance, a class, a config dict, a class
name or its snake_case form (``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``),
or any callable ``f(w) -> array of w's shape``.
"""
from __future__ import annotations

import inspect
import math

import numpy as np

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg",
           "unit_norm", "min_max_norm", "get", "serialize", "deserialize", "apply_constraints"]

_EPSILON = 1e-7   # Keras's backend.epsilon()


def _number(value, name, cls):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{cls}: {name} must be a finite number, got {value!r}")
    return value.item() if isinstance(value, np.generic) else value


def _axis(axis, cls):
    """Keras keeps ``axis`` as given: an int, or a list of ints."""
    if isinstance(axis, (list, tuple)):
        if not axis or any(isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) for a in axis):
            raise ValueError(f"{cls}: axis must be an int or a non-empty list of ints, got {axis!r}")
        return [int(a) for a in axis]
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{cls}: axis must be an int or a non-empty list of ints, got {axis!r}")
    return int(axis)


class Constraint:
    """Base class: ``__call__(w)`` returns the projected weight (``w`` unchanged here)."""

    def __call__(self, w):
        return np.asarray(w, dtype=np.float32)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _NormConstraint(Constraint):
    """The constraints that rescale ``w`` by a function of its L2 norms along ``axis``."""

    def _norms(self, w):
        w = np.asarray(w, dtype=np.float32)
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -w.ndim <= a < w.ndim for a in axes) or len({a % w.ndim for a in axes}) != len(axes):
            raise ValueError(f"{self!r}: axis {self.axis} does not fit a weight of shape {w.shape}")
        norms = np.sqrt(np.square(w.astype(np.float64)).sum(axis=tuple(axes), keepdims=True))
        return w, norms

    def _scaled(self, w, norms, desired):
        return (w * (desired / (_EPSILON + norms))).astype(np.float32)


class MaxNorm(_NormConstraint):
    """Caps the L2 norm of the weights along ``axis`` at ``max_value`` (``keras.constraints.MaxNorm``)."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value", "MaxNorm")
        self.axis = _axis(axis, "MaxNorm")

    def __call__(self, w):
        w, norms = self._norms(w)
        return self._scaled(w, norms, np.clip(norms, 0, self.max_value))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Clips the weights at zero from below (``keras.constraints.NonNeg``)."""

    def __call__(self, w):
        return np.maximum(np.asarray(w, dtype=np.float32), np.float32(0))


class UnitNorm(_NormConstraint):
    """Scales the weights along ``axis`` to unit L2 norm (``keras.constraints.UnitNorm``)."""

    def __init__(self, axis=0):
        self.axis = _axis(axis, "UnitNorm")

    def __call__(self, w):
        w, norms = self._norms(w)
        return self._scaled(w, norms, 1.0)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(_NormConstraint):
    """Moves the L2 norm of the weights along ``axis`` into ``[min_value, max_value]`` at
    ``rate`` (1.0: all the way) per step (``keras.constraints.MinMaxNorm``)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm")
        self.max_value = _number(max_value, "max_value", "MinMaxNorm")
        self.rate = _number(rate, "rate", "MinMaxNorm")
        self.axis = _axis(axis, "MinMaxNorm")

    def __call__(self, w):
        w, norms = self._norms(w)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return self._scaled(w, norms, desired)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm

_CLASSES = {c.__name__: c for c in (Constraint, MaxNorm, NonNeg, UnitNorm, MinMaxNorm)}
_NAMES = dict(_CLASSES)
_NAMES.update({"constraint": Constraint, "max_norm": MaxNorm, "non_neg": NonNeg,
               "unit_norm": UnitNorm, "min_max_norm": MinMaxNorm})
_MODULES = (None, "keras.constraints", "keras.src.constraints.constraints", "cnnfast.constraints")


def get(identifier, context: str = "constraint"):
    """A constraint from a name, a config dict, a class, an instance or a callable; None stays None."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier, context)
    elif isinstance(identifier, str):
        obj = _NAMES.get(identifier)
        if obj is None:
            raise ValueError(f"{context}: could not interpret constraint identifier: {identifier!r}; "
                             f"expected one of {sorted(_NAMES)}, a config dict or a Constraint instance")
    else:
        obj = identifier
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj):
        raise ValueError(f"{context}: could not interpret constraint identifier: {identifier!r}")
    return obj


def serialize(constraint):
    """Keras 3's layout: ``{"module", "class_name", "config", "registered_name"}``; None stays None."""
    if constraint is None:
        return None
    cls = type(constraint)
    if _CLASSES.get(cls.__name__) is cls:
        return {"module": "keras.constraints", "class_name": cls.__name__,
                "config": constraint.get_config(), "registered_name": None}
    if inspect.isfunction(constraint):
        return {"module": constraint.__module__, "class_name": "function",
                "config": constraint.__name__, "registered_name": "function"}
    config = constraint.get_config() if hasattr(constraint, "get_config") else {}
    return {"module": cls.__module__, "class_name": cls.__name__, "config": config,
            "registered_name": cls.__name__}


def deserialize(config, context: str = "constraint"):
    """A constraint of this module from a Keras config; other classes are refused, nothing imported."""
    if isinstance(config, str):
        return get(config, context)
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{context}: bad constraint config {config!r}; expected a dict with a "
                         "'class_name' and a 'config'")
    name = config["class_name"]
    cls = _CLASSES.get(name)
    if cls is None or config.get("module") not in _MODULES or config.get("registered_name") not in (None, name):
        raise ValueError(f"{context}: cannot load the constraint class {name!r} (module "
                         f"{config.get('module')!r}); cnnfast rebuilds only its own: "
                         f"{sorted(c for c in _CLASSES if c != 'Constraint')}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{context}: bad constraint config {config!r}")
    try:
        return cls.from_config(kwargs)
    except TypeError as exc:
        raise ValueError(f"{context}: bad arguments for {name}: {exc}") from None


def apply_constraints(variables) -> bool:
    """Project each variable that has a ``constraint``, in place (its value may be a view into a
    model's flat parameter buffer), as Keras does after each optimizer step. True if any was."""
    changed = False
    for v in variables:
        constraint = getattr(v, "constraint", None)
        if constraint is None:
            continue
        new = np.asarray(constraint(v.value))
        if new.shape != v.value.shape:
            raise ValueError(f"constraint {constraint!r} of {v.path}: returned shape {new.shape}, "
                             f"expected the weight's shape {v.value.shape}")
        np.copyto(v.value, new, casting="unsafe")
        changed = True
    return changed

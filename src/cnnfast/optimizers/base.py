"""Optimizer base: Keras 3 arguments, update order and state, on fused C updates.

One step, as Keras 3 (``BaseOptimizer.apply``): clip the gradients (``clipvalue``; ``clipnorm``
per variable; ``global_clipnorm`` over all), apply decoupled weight decay
``w -= w * weight_decay * lr``, apply the optimiser's update rule, then ``iterations += 1``. The
learning rate of a step is ``learning_rate`` (or ``learning_rate(iterations)`` for a schedule)
read before the increment.

A model trains all its weights from ONE flat float32 buffer with ONE flat gradient buffer, so a
step is one fused C call over every parameter (``ops.adam_update``...) plus, when clipping is on,
one norm. The optimiser's state (moments) are flat arrays of the same length. ``apply(grads,
variables)`` / ``apply_gradients(pairs)`` (Keras's entry points, for custom loops) take the same
fused path when the variables are, in order, a model's whole flat buffer, and share ``fit``'s
state; other variables each get their own state arrays and C call.

After the update, each updated variable that has a ``constraint`` (``kernel_constraint=`` ...) is
projected by it, as Keras 3 does at the end of ``apply``: ``apply_gradients`` does so itself;
``Model.fit`` calls :meth:`Optimizer.apply_constraints` on its trainable weights after
``apply_flat``, which sees only the flat buffers.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import constraints as _constraints
from .. import ops
from ..layers.base import note_weights_written, to_snake_case
from ..ops._checks import as_float

__all__ = ["Optimizer"]


def _check_variables(variables, cls):
    variables = list(variables)
    for v in variables:
        if not hasattr(v, "value") or not hasattr(v, "path"):
            raise TypeError(f"{cls}: expected cnnfast Variables (e.g. model.trainable_variables), got "
                            f"{type(v).__name__}")
    return variables


def _flat_layout(variables):
    """``(buffer, offsets)`` when ``variables`` are, in order, the whole of one flat float32 buffer
    (a model's weights laid out by training), else None."""
    buf = variables[0].value.base if variables else None
    if buf is None or buf.ndim != 1 or buf.dtype != np.float32 or not buf.flags.c_contiguous:
        return None
    start = buf.__array_interface__["data"][0]
    offsets, off = [], 0
    for v in variables:
        val = v.value
        if val.base is not buf or not val.flags.c_contiguous or \
                val.__array_interface__["data"][0] - start != 4 * off:
            return None
        offsets.append(off)
        off += val.size
    return (buf, np.asarray(offsets, np.intp)) if off == buf.size else None


def _opt_float(value, op, name, minimum=None, allow_none=True, strict=False):
    if value is None and allow_none:
        return None
    v = as_float(value, op, name)
    if minimum is not None and (v <= minimum if strict else v < minimum):
        raise ValueError(f"{op}: {name} must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return v


class Optimizer:
    """Base class. Subclasses define ``_slot_names()`` and ``_update(param, grad, slots, lr, step, wd)``."""

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        cls = type(self).__name__
        if kwargs:
            if "lr" in kwargs:
                raise TypeError(f"{cls}: argument `lr` is no longer supported; use `learning_rate`")
            raise TypeError(f"{cls}: unexpected keyword arguments {sorted(kwargs)}")
        if use_ema:
            raise NotImplementedError(f"{cls}: use_ema is not supported")
        if gradient_accumulation_steps not in (None, 1):
            raise NotImplementedError(f"{cls}: gradient_accumulation_steps is not supported")
        if loss_scale_factor not in (None, 1, 1.0):
            raise NotImplementedError(f"{cls}: loss_scale_factor is not supported (float32 training)")
        self.name = name or to_snake_case(cls)
        self.learning_rate = learning_rate
        self.weight_decay = _opt_float(weight_decay, cls, "weight_decay", 0.0)
        self.clipnorm = _opt_float(clipnorm, cls, "clipnorm", 0.0, strict=True)
        self.clipvalue = _opt_float(clipvalue, cls, "clipvalue", 0.0, strict=True)
        self.global_clipnorm = _opt_float(global_clipnorm, cls, "global_clipnorm", 0.0, strict=True)
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError(f"{cls}: only one of clipnorm and global_clipnorm can be set")
        self.use_ema = False
        self.ema_momentum = ema_momentum
        self.iterations = 0
        self._state: dict = {}  # key -> {slot name: flat float32 array}
        self._trainable_variables = None  # set by build(variables) or the first apply

    # -- learning rate ------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value) and not isinstance(value, (int, float, np.floating)):
            self._learning_rate = value
            return
        lr = as_float(value, type(self).__name__, "learning_rate")
        if lr < 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be >= 0, got {value!r}")
        self._learning_rate = lr

    lr = learning_rate

    # -- state ------------------------------------------------------------------------------------
    def _slot_names(self) -> tuple:
        return ()

    def build(self, size, key="flat") -> None:
        """Allocate zeroed state for ``size`` parameters under ``key`` (a model uses "flat").

        Keras's ``build(variables)`` (a list of variables) records the variables that
        ``apply(grads)`` without variables updates; their state is created on the first step."""
        if not isinstance(size, (int, np.integer)):
            self._trainable_variables = _check_variables(size, type(self).__name__)
            return
        slots = self._state.get(key)
        if slots is not None and all(a.size == size for a in slots.values()):
            return
        self._state[key] = {name: np.zeros(size, np.float32) for name in self._slot_names()}

    @property
    def built(self) -> bool:
        return bool(self._state)

    def reset(self) -> None:
        self._state = {}
        self.iterations = 0

    @property
    def variables(self) -> list:
        """Keras-style state list: iterations, learning rate (unless a schedule), then the slots."""
        out = [np.array(self.iterations, np.int64)]
        if not callable(self._learning_rate):
            out.append(np.array(self._learning_rate, np.float32))
        for slots in self._state.values():
            out.extend(slots.values())
        return out

    def count_params(self) -> int:
        return int(sum(np.size(v) for v in self.variables))

    def get_state(self) -> dict:
        """Arrays to save (iterations and the flat slots), see ``cnnfast.saving``."""
        state = {"iterations": np.array(self.iterations, np.int64)}
        for key, slots in self._state.items():
            for name, arr in slots.items():
                state[f"{key}/{name}"] = arr
        return state

    def set_state(self, state: dict, sizes: dict) -> None:
        """Restore :meth:`get_state` output; ``sizes`` maps each key to its expected length."""
        it = state.get("iterations")
        if it is None or np.shape(it) != () or np.asarray(it).dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"{type(self).__name__}: saved optimizer state has a bad 'iterations'")
        new = {}
        for key, size in sizes.items():
            slots = {}
            for name in self._slot_names():
                arr = state.get(f"{key}/{name}")
                if arr is None:
                    raise ValueError(f"{type(self).__name__}: saved optimizer state lacks '{key}/{name}'")
                arr = np.asarray(arr)
                if arr.shape != (size,) or arr.dtype != np.float32:
                    raise ValueError(f"{type(self).__name__}: saved slot '{key}/{name}' has shape "
                                     f"{arr.shape} and dtype {arr.dtype}, expected ({size},) float32")
                slots[name] = np.array(arr, dtype=np.float32)
            new[key] = slots
        self._state = new
        self.iterations = int(it)

    # -- one step -------------------------------------------------------------------------------
    def apply_flat(self, params: np.ndarray, grads: np.ndarray, offsets=None, key="flat") -> None:
        """One optimisation step on a flat parameter buffer (used by ``Model.fit``).

        ``offsets``: start of each variable in the buffer (needed for per-variable ``clipnorm``).
        ``grads`` may be modified in place (clipping).
        """
        if key not in self._state:
            self.build(params.size, key)
        lr = self.learning_rate
        self._clip(grads, offsets)
        self._update(params, grads, self._state[key], lr, self.iterations + 1, self.weight_decay or 0.0)
        self.iterations += 1
        note_weights_written()

    def apply_gradients(self, grads_and_vars):
        """Keras API: one step over ``(gradient, variable)`` pairs; returns ``iterations``.

        As Keras 3: ``None`` gradients are skipped with a warning (all ``None`` is an error), the
        optimizer's state is created on the first step, ``iterations`` grows by one, constraints
        project the updated variables. When the variables are, in order, the whole flat weight
        buffer of a model (``model.trainable_variables`` of a model that has trained or computed
        gradients), the step is ONE fused update over that buffer with the state ``fit`` uses, so
        custom loops and ``fit`` share (and save) the same optimizer state."""
        pairs = list(grads_and_vars)
        cls = type(self).__name__
        _check_variables([v for _, v in pairs], cls)
        missing = [v.path for g, v in pairs if g is None]
        pairs = [(g, v) for g, v in pairs if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If "
                          "using `model.compile()`, did you forget to provide a `loss` argument?",
                          stacklevel=2)
        if self._trainable_variables is None:
            self._trainable_variables = [v for _, v in pairs]
        grads = []
        for g, v in pairs:
            g = np.asarray(g)
            if g.size != v.value.size:
                raise ValueError(f"{cls}: gradient of shape {g.shape} for variable {v.path} of shape "
                                 f"{v.value.shape}")
            grads.append(g)
        variables = [v for _, v in pairs]
        layout = _flat_layout(variables)
        flat = self._state.get("flat")
        if layout is not None and (flat is None or all(a.size == layout[0].size for a in flat.values())):
            params, offsets = layout
            flat_grads = np.empty(params.size, np.float32)
            for g, off, v in zip(grads, offsets, variables):
                flat_grads[off:off + v.size] = g.reshape(-1)
            # the base class's step: a subclass's apply_flat (a distributed reduction) has already
            # had its say in its own apply_gradients
            Optimizer.apply_flat(self, params, flat_grads, offsets)
            self.apply_constraints(variables)
            return self.iterations
        lr = self.learning_rate
        grads = [np.ascontiguousarray(g, dtype=np.float32).reshape(-1).copy() for g in grads]
        if self.global_clipnorm is not None:
            norm = ops.global_norm(grads) if grads else 0.0
            if norm > self.global_clipnorm:
                for g in grads:
                    g *= np.float32(self.global_clipnorm / norm)
        for g, var in zip(grads, variables):
            key = ("var", id(var))
            if key not in self._state:
                self.build(g.size, key)
            self._clip(g, None, use_global=False)
            p = var.value.reshape(-1)
            if not np.shares_memory(p, var.value):
                raise ValueError(f"{cls}: variable {var} is not contiguous")
            self._update(p, g, self._state[key], lr, self.iterations + 1, self.weight_decay or 0.0)
        self.iterations += 1
        _constraints.apply_constraints(variables)
        note_weights_written()
        return self.iterations

    def apply_constraints(self, variables) -> None:
        """Project each of ``variables`` that has a ``constraint`` in place (after a step)."""
        if _constraints.apply_constraints(variables):
            note_weights_written()

    def apply(self, grads, trainable_variables=None) -> None:
        """Keras API: one step; ``grads`` in the order of ``trainable_variables`` (or, when None, of
        the variables given to ``build`` or to the first step)."""
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if self._trainable_variables is None:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already be "
                                 "built on a list of variables. Call `optimizer.build(trainable_variables)` "
                                 "first.")
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"{type(self).__name__}.apply: got {len(grads)} gradients for "
                             f"{len(trainable_variables)} variables; they must match one to one")
        self.apply_gradients(zip(grads, trainable_variables))

    def _clip(self, grads, offsets, use_global=True):
        """Keras's gradient clipping, in place on the flat gradient (norms in float64, in C)."""
        if self.clipvalue is not None:
            np.clip(grads, -self.clipvalue, self.clipvalue, out=grads)
        if self.clipnorm is not None:
            bounds = [0, grads.size] if offsets is None or len(offsets) <= 1 else \
                list(offsets) + [grads.size]
            for a, b in zip(bounds[:-1], bounds[1:]):
                part = grads[a:b]
                norm = ops.global_norm(part)
                if norm > self.clipnorm:
                    part *= np.float32(self.clipnorm / norm)
        if use_global and self.global_clipnorm is not None:
            norm = ops.global_norm(grads)
            if norm > self.global_clipnorm:
                grads *= np.float32(self.global_clipnorm / norm)

    def _update(self, param, grad, slots, lr, step, weight_decay):
        """One fused C update of ``param`` (decoupled ``weight_decay`` applied first, in the same pass)."""
        raise NotImplementedError

    # -- config -----------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = self._learning_rate
        if callable(lr):
            lr = lr.get_config() if hasattr(lr, "get_config") else None
            if lr is None:
                raise ValueError(f"{type(self).__name__}: a learning-rate function cannot be saved")
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, learning_rate={self.learning_rate}>"


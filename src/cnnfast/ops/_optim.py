"""Optimiser updates: fused, in-place C loops over flat float32 arrays, Keras 3 formulas.

A model keeps all its trainable weights in one flat buffer and the optimiser state in buffers
of the same shape, so a single call updates every weight. Every array that is updated in place
(weights and state) is used as is, never converted: it must be a float32, C-contiguous,
writeable ``numpy.ndarray`` of the same shape as ``param``. The gradient is an input and is
converted if needed.

Weight decay: every update takes ``weight_decay`` (default 0) and applies Keras' decoupled decay
``w -= w * weight_decay * learning_rate`` *before* the update, in the same pass over memory
(AdamW is ``adam_update(..., weight_decay=wd)``). :func:`apply_weight_decay` does the decay step
alone, for callers that prefer to keep it separate (do not do both).

Formulas (keras/src/optimizers/{sgd,adam,rmsprop}.py), element-wise:

* SGD: ``v = momentum * v - lr * g; w += v`` (Nesterov: ``w += momentum * v - lr * g``);
  without momentum ``w -= lr * g``.
* Adam: ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``; ``m += (g - m) * (1 - beta_1)``;
  ``v += (g*g - v) * (1 - beta_2)``; AMSGrad: ``v_hat = max(v_hat, v)`` replaces v;
  ``w -= alpha * m / (sqrt(v) + epsilon)``.
* RMSprop: ``v = rho * v + (1 - rho) * g*g``; centered: ``a = rho * a + (1 - rho) * g``,
  ``denom = v - a*a + epsilon`` (else ``v + epsilon``); ``inc = lr * g / sqrt(denom)``;
  momentum: ``b = momentum * b + inc; w -= b``, else ``w -= inc``.

Scalar coefficients are computed in float64 and rounded once; the element loops run in float32
in Keras' order of operations (a compiler may fuse a multiply-add, one rounding apart).
"""
from __future__ import annotations

import math

import numpy as np

from .. import _kernels
from ._checks import as_float, as_float32, as_int, check_state

__all__ = ["sgd_update", "adam_update", "rmsprop_update", "apply_weight_decay", "global_norm"]


def _state_arrays(op: str, param, grad, **state) -> tuple[np.ndarray, np.ndarray, dict]:
    """Check param and the state arrays (exact float32, in place, pairwise disjoint), convert grad."""
    param = check_state(param, op, "param", None)
    grad = as_float32(grad, op, "grad")
    if grad.shape != param.shape:
        raise ValueError(f"{op}: grad must have the shape of param {param.shape}, got {grad.shape}")
    seen = [("param", param), ("grad", grad)]
    checked = {}
    for name, arr in state.items():
        if arr is None:
            checked[name] = None
            continue
        checked[name] = check_state(arr, op, name, param.shape, others=seen)
        seen.append((name, checked[name]))
    if grad.size and np.may_share_memory(param, grad):
        raise ValueError(f"{op}: grad overlaps param; pass separate arrays")
    return param, grad, checked


def _flat(a):
    return None if a is None else a.reshape(-1)


def _hyper(op: str, name: str, value, low=None, high=None, high_open=False) -> float:
    v = as_float(value, op, name)
    if (low is not None and v < low) or (high is not None and (v >= high if high_open else v > high)):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}" + (")" if high_open else "]")
        raise ValueError(f"{op}: {name} must be {bounds}, got {v}")
    return v


def sgd_update(param, grad, velocity=None, *, learning_rate, momentum=0.0, nesterov=False, weight_decay=0.0):
    """One SGD step in place (Keras ``SGD``): plain, momentum or Nesterov momentum.

    Args:
        param: float32 weights, updated in place.
        grad: gradient, same shape.
        velocity: float32 momentum buffer, updated in place; required when ``momentum != 0``.
        learning_rate, momentum, nesterov: as Keras (momentum in [0, 1]).
        weight_decay: decoupled weight decay applied first (0 = none).
    """
    op = "sgd_update"
    lr = _hyper(op, "learning_rate", learning_rate)
    momentum = _hyper(op, "momentum", momentum, 0.0, 1.0)
    wd = _hyper(op, "weight_decay", weight_decay)
    if momentum != 0.0 and velocity is None:
        raise ValueError(f"{op}: momentum={momentum} needs a velocity buffer (a float32 array shaped like param)")
    param, grad, st = _state_arrays(op, param, grad, velocity=velocity)
    _kernels.sgd_update(_flat(param), _flat(grad), _flat(st["velocity"]), lr, momentum, bool(nesterov), wd)


def adam_update(param, grad, m, v, *, step, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7, v_hat=None,
                weight_decay=0.0):
    """One Adam step in place (Keras ``Adam``; ``AdamW`` with ``weight_decay``; AMSGrad with ``v_hat``).

    Args:
        param: float32 weights, updated in place.
        grad: gradient, same shape.
        m, v: float32 first / second moment buffers, updated in place (start at zeros).
        step: the 1-based number of this update (Keras' ``iterations + 1``).
        learning_rate, beta_1, beta_2, epsilon: as Keras (epsilon is Keras' "epsilon hat").
        v_hat: float32 AMSGrad buffer (running max of v), updated in place; None for plain Adam.
        weight_decay: decoupled weight decay applied first (AdamW), 0 = none.
    """
    op = "adam_update"
    step = as_int(step, op, "step", minimum=1)
    lr = _hyper(op, "learning_rate", learning_rate)
    b1 = _hyper(op, "beta_1", beta_1, 0.0, 1.0, high_open=True)
    b2 = _hyper(op, "beta_2", beta_2, 0.0, 1.0)
    eps = _hyper(op, "epsilon", epsilon, 0.0)
    wd = _hyper(op, "weight_decay", weight_decay)
    param, grad, st = _state_arrays(op, param, grad, m=m, v=v, v_hat=v_hat)
    if st["m"] is None or st["v"] is None:
        raise TypeError(f"{op}: m and v are required float32 arrays shaped like param")
    _kernels.adam_update(_flat(param), _flat(grad), _flat(st["m"]), _flat(st["v"]), _flat(st["v_hat"]),
                         lr, b1, b2, eps, step, wd)


def rmsprop_update(param, grad, velocity, *, learning_rate, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                   average_grad=None, momentum_buffer=None, weight_decay=0.0):
    """One RMSprop step in place (Keras ``RMSprop``).

    Args:
        param: float32 weights, updated in place.
        grad: gradient, same shape.
        velocity: float32 mean-square buffer, updated in place.
        learning_rate, rho, momentum, epsilon, centered: as Keras.
        average_grad: float32 mean-gradient buffer, required (and used) only when ``centered``.
        momentum_buffer: float32 buffer, required (and used) only when ``momentum > 0``.
        weight_decay: decoupled weight decay applied first, 0 = none.
    """
    op = "rmsprop_update"
    lr = _hyper(op, "learning_rate", learning_rate)
    rho = _hyper(op, "rho", rho, 0.0, 1.0)
    momentum = _hyper(op, "momentum", momentum, 0.0)
    eps = _hyper(op, "epsilon", epsilon, 0.0)
    wd = _hyper(op, "weight_decay", weight_decay)
    if centered and average_grad is None:
        raise ValueError(f"{op}: centered=True needs an average_grad buffer (a float32 array shaped like param)")
    if momentum > 0 and momentum_buffer is None:
        raise ValueError(f"{op}: momentum={momentum} needs a momentum_buffer (a float32 array shaped like param)")
    param, grad, st = _state_arrays(op, param, grad, velocity=velocity,
                                    average_grad=average_grad if centered else None,
                                    momentum_buffer=momentum_buffer if momentum > 0 else None)
    if st["velocity"] is None:
        raise TypeError(f"{op}: velocity is a required float32 array shaped like param")
    _kernels.rmsprop_update(_flat(param), _flat(grad), _flat(st["velocity"]), _flat(st["average_grad"]),
                            _flat(st["momentum_buffer"]), lr, rho, momentum, eps, wd)


def apply_weight_decay(param, *, learning_rate, weight_decay):
    """Keras' decoupled weight decay step alone, in place: ``w -= w * weight_decay * learning_rate``."""
    op = "apply_weight_decay"
    lr = _hyper(op, "learning_rate", learning_rate)
    wd = _hyper(op, "weight_decay", weight_decay)
    param = check_state(param, op, "param", None)
    _kernels.weight_decay(_flat(param), lr, wd)


def global_norm(arrays_or_flat) -> float:
    """``sqrt(sum of squares)`` over one array or a list of arrays (for ``global_clipnorm``).

    Accumulated in float64 in a fixed order, so the result does not depend on the thread count.
    """
    op = "global_norm"
    arrays = arrays_or_flat if isinstance(arrays_or_flat, (list, tuple)) else [arrays_or_flat]
    total = 0.0
    for i, a in enumerate(arrays):
        total += _kernels.sum_squares(as_float32(a, op, f"arrays[{i}]").reshape(-1))
    return math.sqrt(total)

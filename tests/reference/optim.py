"""float64 references for the Keras 3 optimiser update rules (keras/src/optimizers/*.py),
written straight from the formulas; each returns the new (param, *state)."""
from __future__ import annotations

import numpy as np


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64).copy() for a in arrays]


def weight_decay(w, lr, wd):
    return w - w * wd * lr


def sgd(w, g, v, lr, momentum=0.0, nesterov=False, wd=0.0):
    w, g, v = _f64(w, g, v)
    w = weight_decay(w, lr, wd)
    if v is None:
        return w - lr * g, None
    v = momentum * v - lr * g
    w = w + (momentum * v - lr * g if nesterov else v)
    return w, v


def adam(w, g, m, v, step, lr, beta_1=0.9, beta_2=0.999, eps=1e-7, v_hat=None, wd=0.0):
    w, g, m, v, v_hat = _f64(w, g, m, v, v_hat)
    w = weight_decay(w, lr, wd)
    alpha = lr * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m = m + (g - m) * (1 - beta_1)
    v = v + (g * g - v) * (1 - beta_2)
    denom_v = v
    if v_hat is not None:
        v_hat = np.maximum(v_hat, v)
        denom_v = v_hat
    w = w - alpha * m / (np.sqrt(denom_v) + eps)
    return w, m, v, v_hat


def rmsprop(w, g, vel, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False, avg=None, buf=None, wd=0.0):
    w, g, vel, avg, buf = _f64(w, g, vel, avg, buf)
    w = weight_decay(w, lr, wd)
    vel = rho * vel + (1 - rho) * g * g
    if centered:
        avg = rho * avg + (1 - rho) * g
        denom = vel - avg * avg + eps
    else:
        denom = vel + eps
    inc = lr * g / np.sqrt(denom)
    if momentum > 0:
        buf = momentum * buf + inc
        w = w - buf
    else:
        w = w - inc
    return w, vel, avg, buf

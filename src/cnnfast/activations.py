"""Activation functions by Keras name, each with its derivative for the layers' backward pass.

``get("relu")`` returns the public function ``relu``; layers look up its derivative through
:func:`backward_of`. ReLU, sigmoid, tanh, softmax and leaky ReLU run in cnnfast's C kernels
(``cnnfast.ops``); the rarer ones (elu, selu, softplus, softsign, silu/swish, exponential, relu6,
hard_sigmoid, hard_silu/hard_swish) are vectorised NumPy expressions. Arrays are float32.

Derivatives take ``(dy, x, y)`` — the upstream gradient, the activation's input and its output —
and use whichever of ``x``/``y`` is cheaper (ReLU, sigmoid, tanh and softmax only need ``y``, so a
layer that fuses the activation into its kernel does not need to keep ``x``).
"""
from __future__ import annotations

import numpy as np

from . import ops

__all__ = ["relu", "sigmoid", "tanh", "softmax", "linear", "leaky_relu", "elu", "selu", "softplus",
           "softsign", "silu", "swish", "exponential", "relu6", "hard_sigmoid", "hard_silu",
           "hard_swish", "get", "serialize", "deserialize", "backward_of"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _f32(x):
    return np.ascontiguousarray(x, dtype=np.float32)


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0); with Keras's optional ``negative_slope``, ``max_value`` and ``threshold``."""
    if negative_slope == 0.0 and threshold == 0.0:
        return ops.relu(x) if max_value is None else ops.capped_relu(x, max_value)
    x = _f32(x)
    y = np.where(x >= threshold, x, np.float32(negative_slope) * (x - np.float32(threshold)))
    if max_value is not None:
        y = np.minimum(y, np.float32(max_value))
    return y.astype(np.float32, copy=False)


def sigmoid(x):
    return ops.sigmoid(x)


def tanh(x):
    return ops.tanh(x)


def softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


def linear(x):
    return _f32(x)


def leaky_relu(x, negative_slope=0.2):
    return ops.leaky_relu(x, negative_slope)


def elu(x, alpha=1.0):
    x = _f32(x)
    return np.where(x > 0, x, np.float32(alpha) * np.expm1(np.minimum(x, 0))).astype(np.float32)


def selu(x):
    x = _f32(x)
    return (np.float32(_SELU_SCALE) * np.where(x > 0, x, np.float32(_SELU_ALPHA) *
                                                np.expm1(np.minimum(x, 0)))).astype(np.float32)


def softplus(x):
    return np.logaddexp(np.float32(0), _f32(x)).astype(np.float32)


def softsign(x):
    x = _f32(x)
    return x / (np.float32(1) + np.abs(x))


def _np_sigmoid(x):
    # exp of -|x| never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)


def silu(x):
    x = _f32(x)
    return x * _np_sigmoid(x)


swish = silu


def exponential(x):
    return np.exp(_f32(x))


def relu6(x):
    return ops.capped_relu(x, 6.0)


def hard_sigmoid(x):
    return np.clip(_f32(x) / np.float32(6) + np.float32(0.5), 0, 1).astype(np.float32)


def hard_silu(x):
    """``x * relu6(x + 3) / 6`` (Keras 3's hard_silu; MobileNetV3's hard-swish)."""
    x = _f32(x)
    return (x * np.clip(x + np.float32(3), 0, 6) / np.float32(6)).astype(np.float32)


hard_swish = hard_silu


# --- derivatives (dy, x, y) -> dx -------------------------------------------------------------
def _d_relu(dy, x, y):
    return ops.relu_backward(dy, y)


def _d_sigmoid(dy, x, y):
    return ops.sigmoid_backward(dy, y)


def _d_tanh(dy, x, y):
    return ops.tanh_backward(dy, y)


def _d_softmax(dy, x, y):
    return ops.softmax_backward(dy, y, axis=-1)


def _d_linear(dy, x, y):
    return dy


def _d_leaky_relu(dy, x, y):
    return ops.leaky_relu_backward(dy, x, 0.2)


def _d_elu(dy, x, y):
    return np.where(x > 0, dy, dy * (y + np.float32(1))).astype(np.float32)


def _d_selu(dy, x, y):
    s = np.float32(_SELU_SCALE)
    return np.where(x > 0, dy * s, dy * (y + s * np.float32(_SELU_ALPHA))).astype(np.float32)


def _d_softplus(dy, x, y):
    return dy * _np_sigmoid(x)


def _d_softsign(dy, x, y):
    d = np.float32(1) + np.abs(x)
    return dy / (d * d)


def _d_silu(dy, x, y):
    s = _np_sigmoid(x)
    return dy * (s * (np.float32(1) + x * (np.float32(1) - s)))


def _d_exponential(dy, x, y):
    return dy * y


def _d_relu6(dy, x, y):
    return ops.capped_relu_backward(dy, y, 6.0)


def _d_hard_sigmoid(dy, x, y):
    return np.where((x > -3) & (x < 3), dy / np.float32(6), np.float32(0)).astype(np.float32)


def _d_hard_silu(dy, x, y):
    # 0 below -3, 1 above 3, (2x + 3) / 6 between
    slope = np.where(x <= -3, np.float32(0),
                     np.where(x >= 3, np.float32(1), (np.float32(2) * x + np.float32(3)) / np.float32(6)))
    return (dy * slope).astype(np.float32)


# name -> (function, derivative, derivative needs x)
_TABLE = {
    "relu": (relu, _d_relu, False),
    "sigmoid": (sigmoid, _d_sigmoid, False),
    "tanh": (tanh, _d_tanh, False),
    "softmax": (softmax, _d_softmax, False),
    "linear": (linear, _d_linear, False),
    "leaky_relu": (leaky_relu, _d_leaky_relu, True),
    "elu": (elu, _d_elu, True),
    "selu": (selu, _d_selu, True),
    "softplus": (softplus, _d_softplus, True),
    "softsign": (softsign, _d_softsign, True),
    "silu": (silu, _d_silu, True),
    "exponential": (exponential, _d_exponential, False),
    "relu6": (relu6, _d_relu6, False),
    "hard_sigmoid": (hard_sigmoid, _d_hard_sigmoid, True),
    "hard_silu": (hard_silu, _d_hard_silu, True),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
_BY_FUNCTION = {fn: name for name, (fn, _, _) in _TABLE.items()}


def get(identifier, context: str = "activation"):
    """The activation function for a Keras name (``"relu"``), None (linear) or one of this
    module's functions. Other callables cannot be differentiated by cnnfast and are refused."""
    return _TABLE[_name(identifier, context)][0]


def _name(identifier, context):
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key in _TABLE:
            return key
        raise ValueError(f"{context}: unknown activation {identifier!r}; expected one of "
                         f"{sorted(set(_TABLE) | {'swish', 'hard_swish'})} or None")
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]
    raise TypeError(f"{context}: activation must be a name such as 'relu', None, or a "
                    f"cnnfast.activations function, got {identifier!r}")


def serialize(fn) -> str:
    return _name(fn, "activation")


def deserialize(name, context: str = "activation"):
    if not isinstance(name, str):
        raise ValueError(f"{context}: bad activation config {name!r}")
    return get(name, context)


def backward_of(fn):
    """``(derivative(dy, x, y), needs_x)`` for an activation function returned by :func:`get`."""
    _, d, needs_x = _TABLE[_BY_FUNCTION[fn]]
    return d, needs_x

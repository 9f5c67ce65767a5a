"""Activation functions by Keras name, each with its derivative for the layers' backward pass.

``get("relu")`` returns the public function ``relu``; layers look up its derivative through
:func:`backward_of`. ReLU, sigmoid, tanh, softmax and leaky ReLU run in cnnfast's C kernels
(``cnnfast.ops``); the rarer ones (elu, selu, gelu, mish, celu, glu, the shrink and sparse
families, log_softmax, sparsemax...) are vectorised NumPy expressions. Arrays are float32; the
few formulas that lose digits to cancellation in float32 (gelu's tail, tanh_shrink near 0,
squareplus for large negative inputs) are evaluated in float64 and rounded once.

Every function takes Keras 3's arguments with Keras's defaults (``gelu(x, approximate=False)``,
``celu(x, alpha=1.0)``, ``glu(x, axis=-1)``, ``threshold(x, threshold, default_value)``...).
A layer given an activation by name (``Dense(8, activation="gelu")``) applies it with those
defaults; ``glu`` (which halves an axis, so the layer's output would not have its declared shape)
and ``threshold`` (which has no defaults) cannot be a layer's activation.

Derivatives take ``(dy, x, y, **arguments)`` — the upstream gradient, the activation's input, its
output and the function's own keyword arguments — and use whichever of ``x``/``y`` is cheaper
(ReLU, sigmoid, tanh and softmax only need ``y``, so a layer that fuses the activation into its
kernel does not need to keep ``x``). At the points where a function is not differentiable they
return PyTorch's choice (e.g. ``hard_silu`` at ±3, ``elu`` at 0).

``sparsemax`` is Martins & Astudillo's projection onto the simplex: its outputs sum to 1. Keras
3.15.1 computes the threshold from the sum of the cumulative sums over the support and so returns
values that do not sum to 1 whenever more than one entry is in the support (keras-team/keras
#23425, fixed upstream by #23469); cnnfast follows the corrected definition.
"""
from __future__ import annotations

import math

import numpy as np

from . import ops

__all__ = ["relu", "sigmoid", "tanh", "softmax", "linear", "leaky_relu", "elu", "selu", "softplus",
           "softsign", "silu", "swish", "exponential", "relu6", "hard_sigmoid", "hard_silu",
           "hard_swish", "gelu", "mish", "celu", "glu", "log_softmax", "log_sigmoid", "hard_tanh",
           "tanh_shrink", "soft_shrink", "hard_shrink", "sparse_plus", "sparse_sigmoid",
           "squareplus", "sparsemax", "threshold", "get", "serialize", "deserialize", "backward_of",
           "derivative_of"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _f32(x):
    return np.ascontiguousarray(x, dtype=np.float32)


def _arr(x):
    """float32 array of any rank (0-D stays 0-D)."""
    return np.asarray(x, dtype=np.float32)


def _param(value, fn, name):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"activations.{fn}: {name} must be a number, got {value!r}") from None


def _axis(x, axis, fn):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"activations.{fn}: axis must be an integer, got {axis!r}")
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"activations.{fn}: axis {axis} is out of range for an input of shape {x.shape}")
    return int(axis) % x.ndim


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


# --- the rarer Keras 3 activations (NumPy) ----------------------------------------------------
def _erfc(z):
    """Complementary error function in float64, fractional error < 1.2e-7 everywhere (Numerical
    Recipes' Chebyshev fit), so the Gaussian CDF keeps its relative accuracy far into the tail;
    NumPy has no erf and SciPy is not a dependency."""
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    r = t * np.exp(poly)
    return np.where(z >= 0, r, 2.0 - r)


def _normal_cdf(x):
    return 0.5 * _erfc(-x / math.sqrt(2.0))


def _gelu_tanh_inner(x):
    return _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)


def gelu(x, approximate=False):
    """Gaussian error linear unit: ``x * Phi(x)``, or with ``approximate=True`` the tanh form
    ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))`` (Keras's default is exact)."""
    x64 = _arr(x).astype(np.float64)
    if approximate:
        y = 0.5 * x64 * (1.0 + np.tanh(_gelu_tanh_inner(x64)))
    else:
        y = x64 * _normal_cdf(x64)
    return y.astype(np.float32)


def mish(x):
    """``x * tanh(softplus(x))``."""
    x = _arr(x)
    return (x * np.tanh(np.logaddexp(np.float32(0), x))).astype(np.float32)


def celu(x, alpha=1.0):
    """``x`` for ``x > 0``, else ``alpha * (exp(x / alpha) - 1)``."""
    x = _arr(x)
    a = np.float32(_param(alpha, "celu", "alpha"))
    if a == 0:
        raise ValueError("activations.celu: alpha must not be 0")
    return np.where(x > 0, x, a * np.expm1(np.minimum(x, 0) / a)).astype(np.float32)


def _glu_halves(x, axis):
    x = _arr(x)
    ax = _axis(x, axis, "glu")
    if x.shape[ax] % 2:
        raise ValueError(f"activations.glu: the size of axis {axis} must be even (it is split into "
                         f"two halves), got shape {x.shape}")
    a, b = np.split(x, 2, axis=ax)
    return a, b, ax


def glu(x, axis=-1):
    """Gated linear unit: ``a * sigmoid(b)`` where ``a, b`` are the two halves of ``x`` along
    ``axis`` (the output is half as long along ``axis``)."""
    a, b, _ = _glu_halves(x, axis)
    return (a * _np_sigmoid(b)).astype(np.float32)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis)``, stable for any finite input."""
    x = _arr(x)
    ax = _axis(x, axis, "log_softmax")
    shifted = x - np.max(x, axis=ax, keepdims=True)
    return (shifted - np.log(np.sum(np.exp(shifted), axis=ax, keepdims=True))).astype(np.float32)


def log_sigmoid(x):
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, without overflow."""
    x = _arr(x)
    return (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(np.float32)


def hard_tanh(x):
    """``clip(x, -1, 1)``."""
    return np.clip(_arr(x), -1, 1).astype(np.float32)


def tanh_shrink(x):
    """``x - tanh(x)``."""
    x64 = _arr(x).astype(np.float64)
    return (x64 - np.tanh(x64)).astype(np.float32)


def soft_shrink(x, threshold=0.5):
    """``x - threshold`` above ``threshold``, ``x + threshold`` below ``-threshold``, else 0."""
    x = _arr(x)
    t = np.float32(_param(threshold, "soft_shrink", "threshold"))
    return np.where(x > t, x - t, np.where(x < -t, x + t, np.float32(0))).astype(np.float32)


def hard_shrink(x, threshold=0.5):
    """``x`` where ``|x| > threshold``, else 0."""
    x = _arr(x)
    t = np.float32(_param(threshold, "hard_shrink", "threshold"))
    return np.where(np.abs(x) > t, x, np.float32(0)).astype(np.float32)


def sparse_plus(x):
    """0 for ``x <= -1``, ``(x + 1)**2 / 4`` for ``-1 < x < 1``, ``x`` for ``x >= 1``."""
    x = _arr(x)
    quad = np.float32(0.25) * np.square(x + np.float32(1))
    return np.where(x <= -1, np.float32(0), np.where(x < 1, quad, x)).astype(np.float32)


def sparse_sigmoid(x):
    """0 for ``x <= -1``, ``(x + 1) / 2`` between, 1 for ``x >= 1``."""
    x = _arr(x)
    return np.where(x <= -1, np.float32(0), np.where(x >= 1, np.float32(1),
                                                      np.float32(0.5) * (x + np.float32(1)))).astype(np.float32)


def squareplus(x, b=4):
    """``(x + sqrt(x**2 + b)) / 2``; below 0 as ``b / (2 * (sqrt(x**2 + b) - x))``, the same value
    without the cancellation."""
    x64 = _arr(x).astype(np.float64)
    b = _param(b, "squareplus", "b")
    if b < 0:
        raise ValueError(f"activations.squareplus: b must be >= 0, got {b!r}")
    root = np.sqrt(x64 * x64 + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        negative = b / (2.0 * (root - x64))
    return np.where(x64 >= 0, 0.5 * (x64 + root), negative).astype(np.float32)


def sparsemax(x, axis=-1):
    """Euclidean projection of ``x`` onto the probability simplex along ``axis``:
    ``max(x - tau, 0)`` with ``tau`` chosen so that the outputs sum to 1."""
    x = _arr(x)
    ax = _axis(x, axis, "sparsemax")
    z = np.moveaxis(x, ax, -1).astype(np.float64)
    ranked = -np.sort(-z, axis=-1)
    cumsum = np.cumsum(ranked, axis=-1)
    k = np.arange(1, z.shape[-1] + 1, dtype=np.float64)
    support = ranked * k > cumsum - 1.0          # the top-k entries that stay positive
    size = np.sum(support, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, size - 1, axis=-1) - 1.0) / size
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, ax).astype(np.float32)


def threshold(x, threshold, default_value):
    """``x`` where ``x > threshold``, else ``default_value``."""
    x = _arr(x)
    t = np.float32(_param(threshold, "threshold", "threshold"))
    v = np.float32(_param(default_value, "threshold", "default_value"))
    return np.where(x > t, x, v).astype(np.float32)


# --- derivatives (dy, x, y, **arguments) -> dx ------------------------------------------------
def _d_relu(dy, x, y, negative_slope=0.0, max_value=None, threshold=0.0):
    if negative_slope == 0.0 and threshold == 0.0:
        return ops.relu_backward(dy, y) if max_value is None else ops.capped_relu_backward(dy, y, max_value)
    slope = np.where(x >= np.float32(threshold), np.float32(1), np.float32(negative_slope))
    if max_value is not None:
        slope = np.where(x >= np.float32(max_value), np.float32(0), slope)
    return (dy * slope).astype(np.float32)


def _d_sigmoid(dy, x, y):
    return ops.sigmoid_backward(dy, y)


def _d_tanh(dy, x, y):
    return ops.tanh_backward(dy, y)


def _d_softmax(dy, x, y, axis=-1):
    return ops.softmax_backward(dy, y, axis=axis)


def _d_linear(dy, x, y):
    return dy


def _d_leaky_relu(dy, x, y, negative_slope=0.2):
    return ops.leaky_relu_backward(dy, x, negative_slope)


def _d_elu(dy, x, y, alpha=1.0):
    # below zero, d/dx alpha * (exp(x) - 1) = alpha * exp(x) = y + alpha
    return np.where(x > 0, dy, dy * (y + np.float32(alpha))).astype(np.float32)


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
    # 0 below -3, (2x + 3) / 6 on [-3, 3], 1 above (PyTorch's hardswish_backward, ends included)
    slope = np.where(x < -3, np.float32(0),
                     np.where(x <= 3, (np.float32(2) * x + np.float32(3)) / np.float32(6), np.float32(1)))
    return (dy * slope).astype(np.float32)


def _d_gelu(dy, x, y, approximate=False):
    x64 = x.astype(np.float64)
    if approximate:
        t = np.tanh(_gelu_tanh_inner(x64))
        inner_slope = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x64 * x64)
        slope = 0.5 * (1.0 + t) + 0.5 * x64 * (1.0 - t * t) * inner_slope
    else:
        slope = _normal_cdf(x64) + x64 * np.exp(-0.5 * x64 * x64) / math.sqrt(2.0 * math.pi)
    return (dy * slope).astype(np.float32)


def _d_mish(dy, x, y):
    t = np.tanh(np.logaddexp(np.float32(0), x))
    return (dy * (t + x * (np.float32(1) - t * t) * _np_sigmoid(x))).astype(np.float32)


def _d_celu(dy, x, y, alpha=1.0):
    # below zero, d/dx alpha * (exp(x / alpha) - 1) = exp(x / alpha) = y / alpha + 1
    a = np.float32(alpha)
    return np.where(x > 0, dy, dy * (y / a + np.float32(1))).astype(np.float32)


def _d_glu(dy, x, y, axis=-1):
    a, b, ax = _glu_halves(x, axis)
    s = _np_sigmoid(b)
    da = dy * s
    db = dy * a * s * (np.float32(1) - s)
    return np.concatenate([da, db], axis=ax).astype(np.float32)


def _d_log_softmax(dy, x, y, axis=-1):
    ax = _axis(y, axis, "log_softmax")
    return (dy - np.exp(y) * np.sum(dy, axis=ax, keepdims=True, dtype=np.float32)).astype(np.float32)


def _d_log_sigmoid(dy, x, y):
    return (dy * _np_sigmoid(-x)).astype(np.float32)


def _d_hard_tanh(dy, x, y):
    return np.where((x > -1) & (x < 1), dy, np.float32(0)).astype(np.float32)


def _d_tanh_shrink(dy, x, y):
    t = np.tanh(x)
    return (dy * t * t).astype(np.float32)


def _d_shrink(dy, x, y, threshold=0.5):
    return np.where(np.abs(x) > np.float32(threshold), dy, np.float32(0)).astype(np.float32)


def _d_sparse_plus(dy, x, y):
    slope = np.where(x <= -1, np.float32(0), np.where(x < 1, np.float32(0.5) * (x + np.float32(1)),
                                                       np.float32(1)))
    return (dy * slope).astype(np.float32)


def _d_sparse_sigmoid(dy, x, y):
    return np.where((x > -1) & (x < 1), np.float32(0.5) * dy, np.float32(0)).astype(np.float32)


def _d_squareplus(dy, x, y, b=4):
    x64 = x.astype(np.float64)
    root = np.sqrt(x64 * x64 + float(b))
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(root > 0, 0.5 * (1.0 + x64 / root), 0.5)   # b == 0 at x == 0: PyTorch's 0/0
    return (dy * slope).astype(np.float32)


def _d_sparsemax(dy, x, y, axis=-1):
    # the Jacobian is diag(s) - s s^T / |S| on the support S (s = 1 on S): dy minus its mean over S
    ax = _axis(y, axis, "sparsemax")
    on = (y > 0).astype(np.float32)
    size = np.maximum(on.sum(axis=ax, keepdims=True), np.float32(1))
    mean = (dy * on).sum(axis=ax, keepdims=True, dtype=np.float32) / size
    return (on * (dy - mean)).astype(np.float32)


def _d_threshold(dy, x, y, threshold=None, default_value=None):
    return np.where(x > np.float32(threshold), dy, np.float32(0)).astype(np.float32)


# name -> (function, derivative, derivative needs x): the activations a layer can apply by name
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
    "gelu": (gelu, _d_gelu, True),
    "mish": (mish, _d_mish, True),
    "celu": (celu, _d_celu, True),
    "log_softmax": (log_softmax, _d_log_softmax, False),
    "log_sigmoid": (log_sigmoid, _d_log_sigmoid, True),
    "hard_tanh": (hard_tanh, _d_hard_tanh, True),
    "tanh_shrink": (tanh_shrink, _d_tanh_shrink, True),
    "soft_shrink": (soft_shrink, _d_shrink, True),
    "hard_shrink": (hard_shrink, _d_shrink, True),
    "sparse_plus": (sparse_plus, _d_sparse_plus, True),
    "sparse_sigmoid": (sparse_sigmoid, _d_sparse_sigmoid, True),
    "squareplus": (squareplus, _d_squareplus, True),
    "sparsemax": (sparsemax, _d_sparsemax, False),
}
# Functions a layer cannot apply by name (see the module docstring), with the reason.
_FUNCTIONS_ONLY = {
    "glu": (glu, _d_glu, "it halves the split axis, so the layer's output would not have its "
                         "declared shape"),
    "threshold": (threshold, _d_threshold, "it has no default for its `threshold` and "
                                           "`default_value` arguments"),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
_BY_FUNCTION = {fn: name for name, (fn, *_) in (*_TABLE.items(), *_FUNCTIONS_ONLY.items())}


def get(identifier, context: str = "activation"):
    """The activation function for a Keras name (``"relu"``), a Keras function config
    (``{"class_name": "function", "config": "relu"}``), None (linear) or one of this module's
    functions. Other callables cannot be differentiated by cnnfast and are refused."""
    name = _name(identifier, context)
    return (_TABLE.get(name) or _FUNCTIONS_ONLY[name])[0]


def _name(identifier, context):
    if identifier is None:
        return "linear"
    if isinstance(identifier, dict):
        return _name(_config_name(identifier, context), context)
    if isinstance(identifier, str):
        key = _ALIASES.get(identifier.lower(), identifier.lower())
        if key in _TABLE or key in _FUNCTIONS_ONLY:
            return key
        raise ValueError(f"{context}: unknown activation {identifier!r}; expected one of "
                         f"{sorted(set(_TABLE) | set(_FUNCTIONS_ONLY) | {'swish', 'hard_swish'})} or None")
    if callable(identifier) and identifier in _BY_FUNCTION:
        return _BY_FUNCTION[identifier]
    raise TypeError(f"{context}: activation must be a name such as 'relu', None, or a "
                    f"cnnfast.activations function, got {identifier!r}")


def _config_name(config, context):
    """The name in Keras's serialized form of a built-in function."""
    name = config.get("config")
    if config.get("class_name") != "function" or not isinstance(name, str):
        raise ValueError(f"{context}: bad activation config {config!r}; expected a name or "
                         "{'class_name': 'function', 'config': '<name>'}")
    return name


def serialize(fn) -> str:
    """The Keras name of an activation (``serialize(swish) == "silu"``, as Keras)."""
    return _name(fn, "activation")


def deserialize(name, context: str = "activation"):
    if not isinstance(name, (str, dict)):
        raise ValueError(f"{context}: bad activation config {name!r}")
    return get(name, context)


def backward_of(fn):
    """``(derivative(dy, x, y, **arguments), needs_x)`` for an activation function returned by
    :func:`get`, to be applied by a layer with the function's default arguments. Raises for the
    functions a layer cannot apply (``glu``, ``threshold``)."""
    name = _BY_FUNCTION[fn]
    if name in _FUNCTIONS_ONLY:
        raise ValueError(f"activation {name!r} cannot be a layer's activation: {_FUNCTIONS_ONLY[name][2]}; "
                         f"call cnnfast.activations.{name} directly or wrap it in a Lambda layer "
                         f"(Lambda(activations.{name}, arguments={{...}}) is differentiable)")
    _, d, needs_x = _TABLE[name]
    return d, needs_x


def derivative_of(fn):
    """The derivative ``(dy, x, y, **arguments) -> dx`` of any function of this module (including
    ``glu`` and ``threshold``), for callers that pass the function's arguments themselves."""
    if fn not in _BY_FUNCTION:
        raise TypeError(f"activations.derivative_of: {fn!r} is not a cnnfast.activations function")
    name = _BY_FUNCTION[fn]
    return (_TABLE.get(name) or _FUNCTIONS_ONLY[name])[1]

"""Keras 3's ``keras.ops.nn`` functions on NumPy arrays, beside the C kernels: encodings
(``one_hot``, ``multi_hot``), the cross-entropies, ``log_softmax``, the activations Keras defines
that have no kernel here, ``moments``, ``batch_normalization`` and ``normalize``.

``relu``, ``sigmoid``, ``softmax(x, axis=-1)`` and ``leaky_relu`` are the float32 kernels of this
package (``_eltwise.py``). Note that the kernel ``leaky_relu`` defaults to ``negative_slope=0.3``
(the Keras ``LeakyReLU`` layer's default), where ``keras.ops.leaky_relu`` defaults to 0.2: pass the
slope explicitly when porting ``keras.ops`` code.

The activations here work in the input's float dtype; integer and bool inputs give float32.
The cross-entropies follow Keras: probabilities are renormalised along ``axis`` and clipped to
``[1e-7, 1 - 1e-7]``; ``from_logits=True`` uses a log-softmax (or the stable form of the binary
loss); the result has the target's shape without ``axis``, with no reduction over the batch.
"""
from __future__ import annotations

import math

import numpy as np

from . import _dtypes
from ._keras_args import as_array, as_output, axis_arg, keras_op
from ._math import erf, logsumexp

__all__ = ["one_hot", "multi_hot", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "log_softmax", "relu6", "silu", "swish", "gelu", "elu",
           "selu", "celu", "softplus", "softsign", "hard_sigmoid", "hard_silu", "hard_swish",
           "log_sigmoid", "hard_tanh", "moments", "batch_normalization", "normalize"]

EPSILON = 1e-7  # keras.config.epsilon()


def _float_array(x, name: str = "x") -> np.ndarray:
    """``x`` in floating point: float dtypes kept, others converted to float32."""
    x = as_array(x, name=name)
    return x.astype(_dtypes.float_result(_dtypes.standardize_dtype(x.dtype)), copy=False)


def _class_indices(x, name: str) -> np.ndarray:
    """Integer class indices; floats are accepted when they hold whole numbers."""
    x = as_array(x, name=name)
    if x.dtype.kind in "iu":
        return x.astype(np.int64, copy=False)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
        return x.astype(np.int64)
    raise TypeError(f"{name} must be integer class indices, got dtype {x.dtype}")


def _num_classes(num_classes) -> int:
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return int(num_classes)


@keras_op
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """One-hot encoding of the integer array ``x``: a new axis of length ``num_classes`` at
    ``axis`` (last by default) with a 1 at each index. Negative indices give all-zero rows, as in
    Keras; indices >= num_classes are an error. float32 unless ``dtype``."""
    if sparse:
        raise ValueError("sparse=True is not supported: cnnfast works on dense NumPy arrays")
    labels = _class_indices(x, "x")
    n = _num_classes(num_classes)
    dtype = _dtypes.standardize_dtype(dtype, "one_hot")
    if labels.size and labels.max() >= n:
        raise ValueError(f"x holds class {int(labels.max())}, but num_classes is {n} (classes 0..{n - 1})")
    ax = axis_arg(axis, labels.ndim + 1, allow_none=False)
    out = (labels[..., None] == np.arange(n)).astype(dtype)
    return out if ax in (-1, labels.ndim) else np.moveaxis(out, -1, ax)


@keras_op
def multi_hot(inputs, num_classes=None, axis=-1, dtype=None, sparse=False, **kwargs):
    """Multi-hot encoding: 1 for every class present in each row of the integer ``inputs``
    (``(batch, k)`` -> ``(batch, num_classes)``; a 1-D input gives one ``(num_classes,)`` row).
    ``num_tokens`` is accepted as the old name of ``num_classes``."""
    if num_classes is None and "num_tokens" in kwargs:
        num_classes = kwargs.pop("num_tokens")
    if kwargs:
        raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
    if num_classes is None:
        raise ValueError("num_classes must be given")
    labels = _class_indices(inputs, "inputs")
    encoded = one_hot(labels, num_classes, axis=axis, dtype=dtype, sparse=sparse)
    return np.max(encoded, axis=1 if labels.ndim > 1 else 0)


def _same_shape(target: np.ndarray, output: np.ndarray) -> None:
    if target.shape != output.shape:
        raise ValueError(f"target and output must have the same shape, got {target.shape} and {output.shape}")


def _log_probabilities(output: np.ndarray, from_logits: bool, axis) -> np.ndarray:
    if from_logits:
        return log_softmax(output, axis=axis)
    probs = output / np.sum(output, axis=axis, keepdims=True)
    return np.log(np.clip(probs, EPSILON, 1.0 - EPSILON))


@keras_op
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """``-sum(target * log(p), axis)`` for one-hot (or soft) ``target`` and predictions ``output``
    of the same shape (probabilities, or logits when ``from_logits``)."""
    output = _float_array(output, "output")
    target = as_array(target, name="target").astype(output.dtype, copy=False)
    _same_shape(target, output)
    if output.ndim < 1:
        raise ValueError("target and output must have at least one dimension")
    ax = axis_arg(axis, output.ndim, allow_none=False)
    return as_output(-np.sum(target * _log_probabilities(output, from_logits, ax), axis=ax))


@keras_op
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Categorical cross-entropy with integer class ``target`` of ``output``'s shape without
    ``axis`` (a trailing axis of size 1 is dropped first)."""
    output = _float_array(output, "output")
    if output.ndim < 1:
        raise ValueError("output must have at least one dimension")
    labels = _class_indices(target, "target")
    if labels.ndim == output.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    ax = axis_arg(axis, output.ndim, allow_none=False) % output.ndim
    if labels.shape != output.shape[:ax] + output.shape[ax + 1:]:
        raise ValueError(f"target must have output's shape {output.shape} without axis {axis}, got {labels.shape}")
    n = output.shape[ax]
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"target must hold classes in [0, {n}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")
    log_p = _log_probabilities(output, from_logits, ax)
    picked = np.take_along_axis(log_p, np.expand_dims(labels, ax), axis=ax)
    return as_output(-np.squeeze(picked, axis=ax))


@keras_op
def binary_crossentropy(target, output, from_logits=False):
    """Element-wise ``-(t log p + (1 - t) log(1 - p))`` with ``p`` clipped to
    ``[1e-7, 1 - 1e-7]``; with ``from_logits`` the stable ``max(z, 0) - z t + log1p(exp(-|z|))``."""
    output = _float_array(output, "output")
    target = as_array(target, name="target").astype(output.dtype, copy=False)
    _same_shape(target, output)
    if from_logits:
        return as_output(np.maximum(output, 0) - output * target + np.log1p(np.exp(-np.abs(output))))
    p = np.clip(output, EPSILON, 1.0 - EPSILON)
    return as_output(-(target * np.log(p) + (1 - target) * np.log(1 - p)))


@keras_op
def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis)``: the log of ``softmax`` without overflow or ``log(0)``."""
    x = _float_array(x)
    ax = axis_arg(axis, x.ndim)
    return as_output(x - logsumexp(x, axis=ax, keepdims=True))


def _activation(name: str, formula, doc: str):
    def fn(x):
        return as_output(formula(_float_array(x)))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return keras_op(fn)


def _sigmoid(x):
    """The logistic function without overflow warnings for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def _hard_sigmoid(x):
    return np.clip(x / 6 + 0.5, 0, 1).astype(x.dtype, copy=False)


relu6 = _activation("relu6", lambda x: np.clip(x, 0, 6).astype(x.dtype, copy=False),
                    "``min(max(x, 0), 6)``.")
silu = _activation("silu", lambda x: x * _sigmoid(x), "``x * sigmoid(x)`` (also called swish).")
swish = _activation("swish", lambda x: x * _sigmoid(x), "``x * sigmoid(x)`` (``silu``).")
softplus = _activation("softplus", _softplus, "``log(1 + exp(x))``, without overflow.")
softsign = _activation("softsign", lambda x: x / (1 + np.abs(x)), "``x / (1 + |x|)``.")
hard_sigmoid = _activation("hard_sigmoid", _hard_sigmoid, "``clip(x / 6 + 0.5, 0, 1)``.")
hard_silu = _activation("hard_silu", lambda x: x * _hard_sigmoid(x), "``x * hard_sigmoid(x)``.")
hard_swish = _activation("hard_swish", lambda x: x * _hard_sigmoid(x), "``x * hard_sigmoid(x)`` (``hard_silu``).")
log_sigmoid = _activation("log_sigmoid", lambda x: -_softplus(-x), "``log(sigmoid(x))``, without overflow.")
hard_tanh = _activation("hard_tanh", lambda x: np.clip(x, -1, 1).astype(x.dtype, copy=False), "``clip(x, -1, 1)``.")


@keras_op
def elu(x, alpha=1.0):
    """``x`` for ``x >= 0``, ``alpha * (exp(x) - 1)`` below."""
    x = _float_array(x)
    return as_output(np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@keras_op
def selu(x):
    """``scale * elu(x, alpha)`` with the self-normalising constants (1.0507..., 1.6733...)."""
    x = _float_array(x)
    return as_output((_SELU_SCALE * elu(x, _SELU_ALPHA)).astype(x.dtype, copy=False))


@keras_op
def celu(x, alpha=1.0):
    """``max(x, 0) + alpha * (exp(min(x, 0) / alpha) - 1)``."""
    x = _float_array(x)
    if alpha == 0:
        raise ValueError("alpha must not be 0")
    return as_output((np.maximum(x, 0) + alpha * np.expm1(np.minimum(x, 0) / alpha)).astype(x.dtype, copy=False))


@keras_op
def gelu(x, approximate=True):
    """Gaussian error linear unit: the tanh approximation by default (as Keras), else the exact
    ``x * (1 + erf(x / sqrt(2))) / 2``."""
    x = _float_array(x)
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
        return as_output((0.5 * x * (1 + np.tanh(inner))).astype(x.dtype, copy=False))
    return as_output((x * (1 + erf(x / math.sqrt(2))) / 2).astype(x.dtype, copy=False))


@keras_op
def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` of ``x`` over ``axes`` (population variance); float16 is computed in
    float32 and returned as float16."""
    if synchronized:
        raise ValueError("synchronized=True (statistics across devices) is not supported; "
                         "cnnfast.distributed synchronises batch statistics itself")
    x = _float_array(x)
    ax = axis_arg(tuple(axes) if isinstance(axes, list) else axes, x.ndim)
    compute = np.float32 if x.dtype == np.float16 else x.dtype
    xc = x.astype(compute, copy=False)
    mean = np.mean(xc, axis=ax, keepdims=True)
    variance = np.mean(np.square(xc - mean), axis=ax, keepdims=True)
    if not keepdims:
        mean = np.squeeze(mean, axis=ax) if ax is not None else mean.reshape(())
        variance = np.squeeze(variance, axis=ax) if ax is not None else variance.reshape(())
    if x.dtype == np.float16:
        limit = np.finfo(np.float16).max
        mean, variance = np.clip(mean, -limit, limit), np.clip(variance, -limit, limit)
    return as_output(mean.astype(x.dtype)), as_output(variance.astype(x.dtype))


@keras_op
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset`` with the 1-D statistics and
    parameters laid along ``axis`` of ``x``."""
    x = _float_array(x)
    ax = axis_arg(axis, x.ndim, allow_none=False) % x.ndim
    shape = [1] * x.ndim
    shape[ax] = x.shape[ax]

    def along_axis(v, name):
        v = as_array(v, name=name).astype(x.dtype, copy=False)
        if v.shape != (x.shape[ax],):
            raise ValueError(f"{name} must have shape ({x.shape[ax]},) (x's axis {axis}), got {v.shape}")
        return v.reshape(shape)

    inv = 1 / np.sqrt(along_axis(variance, "variance") + epsilon)
    if scale is not None:
        inv = inv * along_axis(scale, "scale")
    out = (x - along_axis(mean, "mean")) * inv
    if offset is not None:
        out = out + along_axis(offset, "offset")
    return as_output(out.astype(x.dtype, copy=False))


@keras_op
def normalize(x, axis=-1, order=2, epsilon=None):
    """``x / max(norm(x, order, axis), epsilon)`` (``epsilon`` defaults to 1e-7); for ``order=2``,
    as Keras, ``x * min(rsqrt(sum(x**2)), 1 / epsilon)``."""
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    x = _float_array(x)
    if x.ndim == 0:
        x = x.reshape(1)
    eps = EPSILON if epsilon is None else float(epsilon)
    ax = axis_arg(axis, x.ndim)
    if order == 2:
        with np.errstate(divide="ignore"):
            inv = 1 / np.sqrt(np.sum(np.square(x), axis=ax, keepdims=True))
        return as_output((x * np.minimum(inv, 1 / eps)).astype(x.dtype, copy=False))
    norms = np.linalg.norm(x, ord=int(order), axis=ax, keepdims=True)
    return as_output((x / np.maximum(norms, eps)).astype(x.dtype, copy=False))

"""Element-wise ops: activations and their gradients, bias add, softmax, the fused softmax +
cross-entropy loss, dropout and batch normalisation.

Conventions:

* activation gradients take the *saved forward output* where that determines the derivative
  (``relu_backward(dy, y)``, ``sigmoid_backward(dy, y)``, ``tanh_backward(dy, y)``,
  ``softmax_backward(dy, y)``) and the forward input for leaky ReLU;
* per-channel ops (``bias_add``, ``batch_norm_*``) work on the last axis, over all the others;
* every reduction runs in a fixed order that does not depend on the thread count, so results
  are bit-identical from run to run and for 1 or many threads;
* state arrays updated in place (the moving statistics of batch normalisation) are never
  converted: they must be float32, C-contiguous, writeable arrays of the exact shape.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _kernels
from ._checks import as_float, as_float32, as_int, as_labels, check_out, check_size, check_state

__all__ = [
    "relu", "relu_backward", "capped_relu", "capped_relu_backward", "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "softmax", "softmax_backward", "bias_add", "bias_add_backward",
    "softmax_cross_entropy", "dropout", "dropout_backward", "batch_norm_forward", "batch_norm_backward",
]

_UINT64_LIMIT = 2**64


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1)


def _as_f32(x, op: str, name: str) -> np.ndarray:
    """as_float32, keeping 0-D inputs 0-D (np.ascontiguousarray promotes them to 1-D)."""
    shape = np.shape(x)
    arr = as_float32(x, op, name)
    return arr.reshape(shape) if arr.shape != shape else arr


def _same_shape(op: str, a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a = _as_f32(a, op, name_a)
    b = _as_f32(b, op, name_b)
    if a.shape != b.shape:
        raise ValueError(f"{op}: {name_a} and {name_b} must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def _unary(op: str, fn, x, out=None, *params) -> np.ndarray:
    x = _as_f32(x, op, "x")
    out = check_out(out, x.shape, op, inputs=(x,), allow_exact_alias=True)
    fn(_flat(x), _flat(out), *params)
    return out


def _binary(op: str, fn, dy, saved, saved_name: str, out=None, *params) -> np.ndarray:
    dy, saved = _same_shape(op, dy, saved, "dy", saved_name)
    out = check_out(out, dy.shape, op, inputs=(dy, saved), allow_exact_alias=True)
    fn(_flat(dy), _flat(saved), _flat(out), *params)
    return out


def relu(x, out=None):
    """``max(x, 0)`` element-wise (NaN stays NaN)."""
    return _unary("relu", _kernels.relu_fwd, x, out)


def relu_backward(dy, y, out=None):
    """Gradient of :func:`relu` from its output: ``dy`` where ``y > 0``, else 0."""
    return _binary("relu_backward", _kernels.relu_bwd, dy, y, "y", out)


def _cap(op: str, max_value) -> float:
    cap = as_float(max_value, op, "max_value")
    if not cap >= 0:   # NaN too
        raise ValueError(f"{op}: max_value must be a number >= 0, got {max_value!r}")
    return cap


def capped_relu(x, max_value, out=None):
    """``min(max(x, 0), max_value)`` element-wise: ReLU6 for ``max_value=6`` (NaN stays NaN)."""
    op = "capped_relu"
    return _unary(op, _kernels.capped_relu_fwd, x, out, _cap(op, max_value))


def capped_relu_backward(dy, y, max_value, out=None):
    """Gradient of :func:`capped_relu` from its output: ``dy`` where ``0 < y < max_value``, else 0
    (0 at both kinks, as ``torch.nn.functional.relu6``)."""
    op = "capped_relu_backward"
    return _binary(op, _kernels.capped_relu_bwd, dy, y, "y", out, _cap(op, max_value))


def _slope(op: str, negative_slope) -> float:
    return as_float(negative_slope, op, "negative_slope")


def leaky_relu(x, negative_slope=0.3):
    """``x`` for ``x >= 0``, ``negative_slope * x`` below (Keras ``LeakyReLU``, default slope 0.3)."""
    op = "leaky_relu"
    return _unary(op, _kernels.leaky_relu_fwd, x, None, _slope(op, negative_slope))


def leaky_relu_backward(dy, x, negative_slope=0.3):
    """Gradient of :func:`leaky_relu` from its input: ``dy`` where ``x > 0``, else ``slope * dy``."""
    op = "leaky_relu_backward"
    return _binary(op, _kernels.leaky_relu_bwd, dy, x, "x", None, _slope(op, negative_slope))


def sigmoid(x):
    """``1 / (1 + exp(-x))``, without overflow for any finite x."""
    return _unary("sigmoid", _kernels.sigmoid_fwd, x)


def sigmoid_backward(dy, y):
    """Gradient of :func:`sigmoid` from its output: ``dy * y * (1 - y)``."""
    return _binary("sigmoid_backward", _kernels.sigmoid_bwd, dy, y, "y")


def tanh(x):
    """Hyperbolic tangent, element-wise."""
    return _unary("tanh", _kernels.tanh_fwd, x)


def tanh_backward(dy, y):
    """Gradient of :func:`tanh` from its output: ``dy * (1 - y**2)``."""
    return _binary("tanh_backward", _kernels.tanh_bwd, dy, y, "y")


def _axis_view(op: str, shape: tuple, axis) -> tuple[int, int, int]:
    """(outer, len, inner) for a softmax along `axis` of a C-contiguous array of `shape`."""
    if len(shape) == 0:
        raise ValueError(f"{op}: x must have at least 1 dimension, got a 0-D array")
    ax = as_int(axis, op, "axis")
    if not -len(shape) <= ax < len(shape):
        raise ValueError(f"{op}: axis {ax} is out of range for an array of shape {shape}")
    ax %= len(shape)
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])


def softmax(x, axis=-1):
    """Softmax along ``axis`` (numerically stable: ``exp(x - max) / sum``)."""
    op = "softmax"
    x = _as_f32(x, op, "x")
    outer, length, inner = _axis_view(op, x.shape, axis)
    y = np.empty(x.shape, dtype=np.float32)
    _kernels.softmax_fwd(_flat(x), _flat(y), outer, length, inner)
    return y


def softmax_backward(dy, y, axis=-1):
    """Gradient of :func:`softmax` from its output: ``y * (dy - sum(dy * y, axis))``."""
    op = "softmax_backward"
    dy, y = _same_shape(op, dy, y, "dy", "y")
    outer, length, inner = _axis_view(op, y.shape, axis)
    dx = np.empty(y.shape, dtype=np.float32)
    _kernels.softmax_bwd(_flat(dy), _flat(y), _flat(dx), outer, length, inner)
    return dx


def bias_add(x, bias, out=None):
    """``x + bias`` with ``bias`` of shape ``(C,)`` broadcast along the last axis of ``x``."""
    op = "bias_add"
    x = _as_f32(x, op, "x")
    if x.ndim == 0:
        raise ValueError(f"{op}: x must have at least 1 dimension (channels last), got a 0-D array")
    c = x.shape[-1]
    bias = as_float32(bias, op, "bias", ndim=1)
    if bias.shape != (c,):
        raise ValueError(f"{op}: bias must have shape ({c},) to match the last axis of x {x.shape}, got {bias.shape}")
    out = check_out(out, x.shape, op, inputs=(x, bias))
    _kernels.bias_add(_flat(x), bias, _flat(out), x.size // c if c else 0, c)
    return out


def bias_add_backward(dy):
    """Gradient of :func:`bias_add` w.r.t. the bias: ``dy`` summed over all axes but the last.

    Summed in float32 blocks of 256 rows whose totals are added in float64, in a fixed order.
    """
    op = "bias_add_backward"
    dy = _as_f32(dy, op, "dy")
    if dy.ndim == 0:
        raise ValueError(f"{op}: dy must have at least 1 dimension (channels last), got a 0-D array")
    c = dy.shape[-1]
    db = np.empty((c,), dtype=np.float32)
    _kernels.bias_add_bwd(_flat(dy), db, math.prod(dy.shape[:-1]), c)
    return db


def _xent_labels(op: str, labels, lead: tuple, c: int, logits_shape: tuple):
    """(int32 class indices or None, float32 target rows or None)."""
    arr = np.asarray(labels)
    index_shapes = (lead, lead + (1,))
    # rows shaped like the logits are one-hot / probabilities (integer one-hot too, unless a
    # single class makes (N, 1) ambiguous: then only float rows are probabilities)
    if arr.shape == logits_shape and arr.dtype.kind in "fiu" and (arr.dtype.kind == "f" or c > 1):
        return None, _as_f32(arr, op, "labels").reshape(-1, c)
    if arr.dtype.kind in "fiu" and arr.shape in index_shapes:
        idx = as_labels(arr, op, "labels").reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= c):
            raise ValueError(f"{op}: class labels must lie in [0, {c}) for {c} classes, "
                             f"got values in [{idx.min()}, {idx.max()}]")
        return idx, None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{op}: labels must be integer class indices or float probability rows, got dtype {arr.dtype}")
    raise ValueError(f"{op}: labels must have shape {lead} or {lead + (1,)} (class indices) or {logits_shape} "
                     f"(one-hot / probability rows, float), got {arr.shape} of dtype {arr.dtype}")


def softmax_cross_entropy(logits, labels, sample_weight=None, return_probs=False):
    """Fused, numerically stable softmax + cross-entropy with its gradient.

    Keras ``sparse_categorical_crossentropy(from_logits=True)`` for integer labels and
    ``categorical_crossentropy(from_logits=True)`` for one-hot / probability rows.

    Args:
        logits: ``(N, C)`` (or ``(..., C)``: every leading position is a sample).
        labels: class indices shaped ``(N,)`` or ``(N, 1)`` (any integer dtype, or whole floats),
            or rows shaped like ``logits`` (one-hot or probabilities, e.g. ``to_categorical``).
        sample_weight: optional per-sample weights shaped ``(N,)`` or ``(N, 1)`` (or a scalar).
        return_probs: also return ``softmax(logits)`` (computed anyway, free).

    Returns:
        ``(loss, dlogits)`` or ``(loss, dlogits, probs)``. ``loss`` is a Python float: the mean
        over the N samples, ``sum(w * l) / N`` with weights (Keras' "sum over batch size"), 0.0
        for N = 0. ``dlogits`` is the gradient of that mean loss: ``w * (softmax * sum(t) - t) / N``.
    """
    op = "softmax_cross_entropy"
    logits = _as_f32(logits, op, "logits")
    if logits.ndim < 2:
        raise ValueError(f"{op}: logits must be at least 2-D (batch, classes), got shape {logits.shape}")
    lead, c = logits.shape[:-1], logits.shape[-1]
    n = math.prod(lead)
    if c == 0 and n > 0:
        raise ValueError(f"{op}: logits must have at least one class, got shape {logits.shape}")
    idx, targets = _xent_labels(op, labels, lead, c, logits.shape)
    weights = None
    if sample_weight is not None:
        w = _as_f32(sample_weight, op, "sample_weight")
        if w.ndim > 0 and w.shape not in (lead, lead + (1,)):
            raise ValueError(f"{op}: sample_weight must have shape {lead} or {lead + (1,)}, got {w.shape}")
        weights = np.ascontiguousarray(np.broadcast_to(w.reshape(w.shape[:len(lead)]), lead)).reshape(-1)
    dlogits = np.empty(logits.shape, dtype=np.float32)
    probs = np.empty(logits.shape, dtype=np.float32) if return_probs else None
    loss = _kernels.softmax_xent(_flat(logits), idx, None if targets is None else _flat(targets), weights,
                                 _flat(dlogits), None if probs is None else _flat(probs), n, c)
    return (loss, dlogits, probs) if return_probs else (loss, dlogits)


def _dropout_args(op: str, rate, seed, step) -> tuple[float, int, int]:
    rate = as_float(rate, op, "rate")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{op}: rate must be in [0, 1), got {rate}")
    seed = as_int(seed, op, "seed", minimum=0, maximum=_UINT64_LIMIT)  # the kernels take uint64
    step = as_int(step, op, "step", minimum=0, maximum=_UINT64_LIMIT)
    for name, v in (("seed", seed), ("step", step)):
        if v >= _UINT64_LIMIT:
            raise ValueError(f"{op}: {name} must be < 2**64, got {v}")
    return rate, seed, step


def dropout(x, rate, seed, step):
    """Inverted dropout: each element is zeroed with probability ``rate``, the others are scaled
    by ``1 / (1 - rate)``.

    The mask is not stored: it is a pure function of ``(seed, step, element index)`` (Philox4x32-10,
    counter-based), the same for any thread count or SIMD path. :func:`dropout_backward` with the
    same ``(rate, seed, step)`` regenerates it. Use a new ``step`` for every training step.
    """
    op = "dropout"
    x = _as_f32(x, op, "x")
    rate, seed, step = _dropout_args(op, rate, seed, step)
    if rate == 0.0:
        return x.copy()
    y = np.empty(x.shape, dtype=np.float32)
    _kernels.dropout(_flat(x), _flat(y), rate, seed, step)
    return y


def dropout_backward(dy, rate, seed, step):
    """Gradient of :func:`dropout`: the forward mask (regenerated from ``seed, step``) applied to ``dy``."""
    op = "dropout_backward"
    dy = _as_f32(dy, op, "dy")
    rate, seed, step = _dropout_args(op, rate, seed, step)
    if rate == 0.0:
        return dy.copy()
    dx = np.empty(dy.shape, dtype=np.float32)
    _kernels.dropout(_flat(dy), _flat(dx), rate, seed, step)
    return dx


def _channel_param(op: str, value, name: str, c: int):
    if value is None:
        return None
    arr = _as_f32(value, op, name)
    if arr.shape != (c,):
        raise ValueError(f"{op}: {name} must have shape ({c},) (one value per channel), got {arr.shape}")
    return arr


def _bn_input(op: str, x, name: str = "x") -> tuple[np.ndarray, int, int]:
    x = _as_f32(x, op, name)
    if x.ndim == 0:
        raise ValueError(f"{op}: {name} must have at least 1 dimension (channels last), got a 0-D array")
    c = x.shape[-1]
    return x, math.prod(x.shape[:-1]), c


def batch_norm_forward(x, gamma, beta, moving_mean, moving_var, *, momentum=0.99, epsilon=1e-3, training):
    """Batch normalisation over all axes but the last (Keras ``BatchNormalization(axis=-1)``).

    Training: uses the batch mean and biased variance, and updates ``moving_mean`` and
    ``moving_var`` in place: ``moving = moving * momentum + batch * (1 - momentum)``.
    Inference: uses the moving statistics (left unchanged).
    ``y = x * (gamma * inv_std) + (beta - mean * gamma * inv_std)``, ``inv_std = 1/sqrt(var + epsilon)``.

    Args:
        x: ``(..., C)`` input.
        gamma, beta: ``(C,)`` scale and offset, or ``None`` (``scale=False`` / ``center=False``).
        moving_mean, moving_var: ``(C,)`` float32 arrays, updated in place when training.
        momentum, epsilon: as Keras (0.99, 1e-3).
        training: required, ``True`` or ``False``.

    Returns:
        ``(y, mean, inv_std)``: the output and the per-channel statistics used, for
        :func:`batch_norm_backward`.
    """
    op = "batch_norm_forward"
    x, rows, c = _bn_input(op, x)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training must be True or False, got {training!r}")
    momentum = as_float(momentum, op, "momentum")
    epsilon = as_float(epsilon, op, "epsilon")
    if epsilon < 0:
        raise ValueError(f"{op}: epsilon must be >= 0, got {epsilon}")
    if training and rows == 0 and c > 0:
        raise ValueError(f"{op}: cannot compute batch statistics of an empty batch (x shape {x.shape}); "
                         "use training=False")
    gamma = _channel_param(op, gamma, "gamma", c)
    beta = _channel_param(op, beta, "beta", c)
    moving_mean = check_state(moving_mean, op, "moving_mean", (c,), others=(("x", x),), writeable=training)
    moving_var = check_state(moving_var, op, "moving_var", (c,),
                             others=(("x", x), ("moving_mean", moving_mean)), writeable=training)
    y = np.empty(check_size(x.shape, op), dtype=np.float32)
    mean = np.empty((c,), dtype=np.float32)
    inv_std = np.empty((c,), dtype=np.float32)
    _kernels.batchnorm_fwd(_flat(x), _flat(y), rows, c, gamma, beta, moving_mean, moving_var, mean, inv_std,
                           momentum, epsilon, bool(training))
    return y, mean, inv_std


def batch_norm_backward(dy, x, gamma, mean, inv_std, *, training=True):
    """Gradients of :func:`batch_norm_forward`: ``(dx, dgamma, dbeta)``.

    With ``xhat = (x - mean) * inv_std``: ``dbeta = sum(dy)``, ``dgamma = sum(dy * xhat)`` over all
    axes but the last. In training the statistics depend on x:
    ``dx = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M)`` (M = rows); with
    ``training=False`` they are constants and ``dx = gamma * inv_std * dy``.
    """
    op = "batch_norm_backward"
    dy, x = _same_shape(op, dy, x, "dy", "x")
    _, rows, c = _bn_input(op, x)
    gamma = _channel_param(op, gamma, "gamma", c)
    mean = _channel_param(op, mean, "mean", c)
    inv_std = _channel_param(op, inv_std, "inv_std", c)
    if mean is None or inv_std is None:
        raise TypeError(f"{op}: mean and inv_std are required (the statistics returned by batch_norm_forward)")
    dx = np.empty(dy.shape, dtype=np.float32)
    dgamma = np.empty((c,), dtype=np.float32)
    dbeta = np.empty((c,), dtype=np.float32)
    _kernels.batchnorm_bwd(_flat(dy), _flat(x), gamma, mean, inv_std, _flat(dx), dgamma, dbeta, rows, c,
                           bool(training))
    return dx, dgamma, dbeta

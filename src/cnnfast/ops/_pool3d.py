"""3-D pooling of NDHWC volumes, as two passes of the 2-D pooling kernels.

A box window is separable: the max (or mean) over ``(kd, kh, kw)`` is the max (mean) over ``kd``
of the per-slice max (mean) over ``(kh, kw)``. Pass 1 pools every depth slice as a batch of
``N * D`` images; pass 2 pools the depth axis of the result, seen as ``(N, D, Ho * Wo, C)`` images
with a ``(kd, 1)`` window. Geometry is Keras's ``MaxPooling3D`` / ``AveragePooling3D``
(``strides=None`` is ``pool_size``; ``"same"`` pads after; padded cells never count, so "same"
averages divide by the real cells, a product of per-axis counts, and the split stays exact).
Max ties resolve to the first cell in (depth, row, column) order, as PyTorch's ``max_pool3d``:
pass 1 keeps each slice's first maximum and pass 2 the first slice holding the overall one.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ._checks import as_float32, as_int, check_choice
from ._pool import (avg_pool2d, avg_pool2d_backward, global_avg_pool2d, global_avg_pool2d_backward,
                    global_max_pool2d, global_max_pool2d_backward, max_pool2d, max_pool2d_backward,
                    pool2d_output_shape)

__all__ = ["pool3d_output_shape", "max_pool3d", "max_pool3d_backward", "avg_pool3d", "avg_pool3d_backward",
           "global_avg_pool3d", "global_avg_pool3d_backward", "global_max_pool3d",
           "global_max_pool3d_backward", "MaxPool3DArgmax"]

#: What :func:`max_pool3d` returns for its backward: the two passes' argmax arrays.
MaxPool3DArgmax = namedtuple("MaxPool3DArgmax", ["slices", "depth"])


def _triple(value, op, name):
    if isinstance(value, (list, tuple)):
        if len(value) != 3:
            raise ValueError(f"{op}: {name} must be an int or 3 ints, got {value!r}")
        return tuple(as_int(v, op, name, 1) for v in value)
    v = as_int(value, op, name, 1)
    return (v, v, v)


def _args(op, pool_size, strides, padding):
    pool = _triple(pool_size, op, "pool_size")
    strides = pool if strides is None else _triple(strides, op, "strides")
    return pool, strides, check_choice(padding, ("valid", "same"), op, "padding")


def _passes(op, shape, pool_size, strides, padding):
    """The two 2-D pooling calls: (pass-1 input shape, its args, pass-2 input shape, its args)."""
    if len(shape) != 5:
        raise ValueError(f"{op}: x must be 5-D (N, D, H, W, C), got shape {tuple(shape)}")
    pool, strides, padding = _args(op, pool_size, strides, padding)
    n, d, h, w, c = shape
    first = dict(pool_size=pool[1:], strides=strides[1:], padding=padding)
    _, ho, wo, _ = pool2d_output_shape((n * d, h, w, c), **first)
    second = dict(pool_size=(pool[0], 1), strides=(strides[0], 1), padding=padding)
    _, do, _, _ = pool2d_output_shape((n, d, ho * wo, c), **second)
    return (n * d, h, w, c), first, (n, d, ho * wo, c), second, (n, do, ho, wo, c)


def pool3d_output_shape(input_shape, pool_size=(2, 2, 2), strides=None, padding="valid"):
    """``(N, Do, Ho, Wo, C)`` of :func:`max_pool3d` / :func:`avg_pool3d`."""
    return _passes("pool3d_output_shape", tuple(input_shape), pool_size, strides, padding)[4]


def max_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid", return_argmax=False):
    """3-D max pooling (Keras ``MaxPooling3D``); with ``return_argmax`` also what
    :func:`max_pool3d_backward` needs."""
    op = "max_pool3d"
    x = as_float32(x, op, "x", ndim=5)
    s1, first, s2, second, out = _passes(op, x.shape, pool_size, strides, padding)
    if not return_argmax:
        y1 = max_pool2d(x.reshape(s1), **first)
        return max_pool2d(y1.reshape(s2), **second).reshape(out)
    y1, a1 = max_pool2d(x.reshape(s1), return_argmax=True, **first)
    y, a2 = max_pool2d(y1.reshape(s2), return_argmax=True, **second)
    return y.reshape(out), MaxPool3DArgmax(a1, a2)


def max_pool3d_backward(dy, argmax, input_shape, pool_size=(2, 2, 2), strides=None, padding="valid"):
    """Gradient of :func:`max_pool3d`: ``dy`` goes back through the depth pass, then the slice pass."""
    op = "max_pool3d_backward"
    if not isinstance(argmax, MaxPool3DArgmax):
        raise TypeError(f"{op}: argmax must be what max_pool3d(..., return_argmax=True) returned, "
                        f"got {type(argmax).__name__}")
    s1, first, s2, second, out = _passes(op, tuple(input_shape), pool_size, strides, padding)
    dy = as_float32(dy, op, "dy", ndim=5)
    if dy.shape != out:
        raise ValueError(f"{op}: dy must have shape {out} (the forward output), got {dy.shape}")
    d1 = max_pool2d_backward(dy.reshape(s2[0], out[1], s2[2], s2[3]), argmax.depth, s2, **second)
    return max_pool2d_backward(d1.reshape(s1[0], out[2], out[3], s1[3]), argmax.slices, s1,
                               **first).reshape(input_shape)


def avg_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid"):
    """3-D average pooling (Keras ``AveragePooling3D``; "same" divides by the real cells)."""
    op = "avg_pool3d"
    x = as_float32(x, op, "x", ndim=5)
    s1, first, s2, second, out = _passes(op, x.shape, pool_size, strides, padding)
    y1 = avg_pool2d(x.reshape(s1), **first)
    return avg_pool2d(y1.reshape(s2), **second).reshape(out)


def avg_pool3d_backward(dy, input_shape, pool_size=(2, 2, 2), strides=None, padding="valid"):
    """Gradient of :func:`avg_pool3d`."""
    op = "avg_pool3d_backward"
    s1, first, s2, second, out = _passes(op, tuple(input_shape), pool_size, strides, padding)
    dy = as_float32(dy, op, "dy", ndim=5)
    if dy.shape != out:
        raise ValueError(f"{op}: dy must have shape {out} (the forward output), got {dy.shape}")
    d1 = avg_pool2d_backward(dy.reshape(s2[0], out[1], s2[2], s2[3]), s2, **second)
    return avg_pool2d_backward(d1.reshape(s1[0], out[2], out[3], s1[3]), s1, **first).reshape(input_shape)


def _as_images(op, x):
    """(N, D, H, W, C) -> (N, D * H, W, C): the global pools need no depth of their own."""
    x = as_float32(x, op, "x", ndim=5)
    n, d, h, w, c = x.shape
    return x.reshape(n, d * h, w, c)


def global_avg_pool3d(x, keepdims=False):
    """Mean over depth, height and width: ``(N, C)`` (or ``(N, 1, 1, 1, C)``)."""
    y = global_avg_pool2d(_as_images("global_avg_pool3d", x))
    return y.reshape(y.shape[0], 1, 1, 1, y.shape[1]) if keepdims else y


def global_avg_pool3d_backward(dy, input_shape):
    n, d, h, w, c = input_shape
    dx = global_avg_pool2d_backward(np.reshape(dy, (n, c)), (n, d * h, w, c))
    return dx.reshape(input_shape)


def global_max_pool3d(x, keepdims=False, return_argmax=False):
    """Max over depth, height and width; with ``return_argmax`` also the winners for the backward."""
    images = _as_images("global_max_pool3d", x)
    if return_argmax:
        y, argmax = global_max_pool2d(images, return_argmax=True)
    else:
        y = global_max_pool2d(images)
    if keepdims:
        y = y.reshape(y.shape[0], 1, 1, 1, y.shape[1])
    return (y, argmax) if return_argmax else y


def global_max_pool3d_backward(dy, argmax, input_shape):
    n, d, h, w, c = input_shape
    dx = global_max_pool2d_backward(np.reshape(dy, (n, c)), argmax, (n, d * h, w, c))
    return dx.reshape(input_shape)

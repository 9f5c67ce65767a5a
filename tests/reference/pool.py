"""float64 NumPy references for pooling: plain loops over output pixels and window cells.

Written independently of cnnfast.ops (own geometry, own index convention) so they can catch
mistakes in either. Each loop body is vectorised over the batch and channel axes only.
"""
from __future__ import annotations

import math

import numpy as np


def axis_geometry(size: int, pool: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, padding before) along one axis, TensorFlow/Keras rules."""
    if padding == "valid":
        return (size - pool) // stride + 1, 0
    out = math.ceil(size / stride)
    return out, max((out - 1) * stride + pool - size, 0) // 2


def _windows(h, w, pool, strides, padding):
    (ph, pw), (sh, sw) = pool, strides
    ho, pt = axis_geometry(h, ph, sh, padding)
    wo, pl = axis_geometry(w, pw, sw, padding)
    for oh in range(ho):
        for ow in range(wo):
            cells = [(kh, kw, oh * sh - pt + kh, ow * sw - pl + kw) for kh in range(ph) for kw in range(pw)]
            yield oh, ow, [(kh * pw + kw, ih, iw) for kh, kw, ih, iw in cells if 0 <= ih < h and 0 <= iw < w]


def output_shape(shape, pool, strides, padding):
    n, h, w, c = shape
    return (n, axis_geometry(h, pool[0], strides[0], padding)[0], axis_geometry(w, pool[1], strides[1], padding)[0], c)


def max_pool2d(x, pool, strides, padding):
    """(y, argmax): the first maximum of each window in row-major order; a NaN wins."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    y = np.zeros(output_shape(x.shape, pool, strides, padding))
    am = np.zeros(y.shape, dtype=np.int64)
    for oh, ow, cells in _windows(h, w, pool, strides, padding):
        k0, ih0, iw0 = cells[0]
        best, idx = x[:, ih0, iw0, :].copy(), np.full((n, c), k0)
        for k, ih, iw in cells[1:]:
            v = x[:, ih, iw, :]
            take = (v > best) | np.isnan(v)
            best = np.where(take, v, best)
            idx = np.where(take, k, idx)
        y[:, oh, ow, :], am[:, oh, ow, :] = best, idx
    return y, am


def max_pool2d_backward(dy, argmax, input_shape, pool, strides, padding):
    dy = np.asarray(dy, dtype=np.float64)
    n, h, w, c = input_shape
    dx = np.zeros(input_shape)
    for oh, ow, cells in _windows(h, w, pool, strides, padding):
        for k, ih, iw in cells:
            dx[:, ih, iw, :] += np.where(argmax[:, oh, ow, :] == k, dy[:, oh, ow, :], 0.0)
    return dx


def avg_pool2d(x, pool, strides, padding):
    """Mean over the real (non-padded) cells of each window."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    y = np.zeros(output_shape(x.shape, pool, strides, padding))
    for oh, ow, cells in _windows(h, w, pool, strides, padding):
        y[:, oh, ow, :] = sum(x[:, ih, iw, :] for _, ih, iw in cells) / len(cells)
    return y


def avg_pool2d_backward(dy, input_shape, pool, strides, padding):
    dy = np.asarray(dy, dtype=np.float64)
    n, h, w, c = input_shape
    dx = np.zeros(input_shape)
    for oh, ow, cells in _windows(h, w, pool, strides, padding):
        for _, ih, iw in cells:
            dx[:, ih, iw, :] += dy[:, oh, ow, :] / len(cells)
    return dx


def global_max_pool2d(x):
    """(y (N, C), argmax (N, C) flat pixel index): first maximum, NaN wins."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)
    best, idx = flat[:, 0, :].copy(), np.zeros((n, c), dtype=np.int64)
    for p in range(1, h * w):
        take = (flat[:, p, :] > best) | np.isnan(flat[:, p, :])
        best = np.where(take, flat[:, p, :], best)
        idx = np.where(take, p, idx)
    return best, idx


def global_max_pool2d_backward(dy, argmax, input_shape):
    n, h, w, c = input_shape
    dx = np.zeros((n, h * w, c))
    for i in range(n):
        for ch in range(c):
            dx[i, argmax[i, ch], ch] = dy[i, ch]
    return dx.reshape(input_shape)


def global_avg_pool2d(x):
    return np.asarray(x, dtype=np.float64).mean(axis=(1, 2))


def global_avg_pool2d_backward(dy, input_shape):
    n, h, w, c = input_shape
    return np.broadcast_to(np.asarray(dy, np.float64).reshape(n, 1, 1, c) / (h * w), input_shape).copy()

"""float64 NumPy references for the element-wise ops, softmax, cross-entropy, dropout's Philox
mask and batch normalisation. Straightforward formulas, independent of cnnfast's code paths."""
from __future__ import annotations

import numpy as np

M32 = 0xFFFFFFFF


def relu(x):
    x = np.asarray(x, np.float64)
    return np.where(x < 0, 0.0, x)


def relu_backward(dy, y):
    return np.where(np.asarray(y) > 0, np.asarray(dy, np.float64), 0.0)


def leaky_relu(x, slope):
    x = np.asarray(x, np.float64)
    return np.where(x < 0, slope * x, x)


def leaky_relu_backward(dy, x, slope):
    dy = np.asarray(dy, np.float64)
    return np.where(np.asarray(x) > 0, dy, slope * dy)


def sigmoid(x):
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def sigmoid_backward(dy, y):
    y = np.asarray(y, np.float64)
    return np.asarray(dy, np.float64) * y * (1 - y)


def tanh_backward(dy, y):
    y = np.asarray(y, np.float64)
    return np.asarray(dy, np.float64) * (1 - y * y)


def softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    dy, y = np.asarray(dy, np.float64), np.asarray(y, np.float64)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def cross_entropy(logits, targets, weights=None):
    """(mean loss, dlogits) for probability rows `targets` (one-hot for class labels)."""
    z = np.asarray(logits, np.float64).reshape(-1, np.shape(logits)[-1])
    t = np.asarray(targets, np.float64).reshape(z.shape)
    n = z.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, np.float64).reshape(n)
    per_row = -(t * log_softmax(z)).sum(axis=1)
    p = softmax(z)
    grad = w[:, None] * (p * t.sum(axis=1, keepdims=True) - t) / n
    return (w * per_row).sum() / n if n else 0.0, grad.reshape(np.shape(logits))


def one_hot(labels, c):
    labels = np.asarray(labels).reshape(-1)
    out = np.zeros((labels.size, c))
    out[np.arange(labels.size), labels] = 1.0
    return out


def philox4x32_10(ctr, key):
    """Philox4x32-10 (Salmon et al. 2011) on arrays of counters: ctr = 4 arrays, key = 2 ints."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & M32 for c in ctr)
    k0, k1 = int(key[0]) & M32, int(key[1]) & M32
    for _ in range(10):
        p0 = c0 * np.uint64(0xD2511F53)
        p1 = c2 * np.uint64(0xCD9E8D57)
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & np.uint64(M32),
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & np.uint64(M32))
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def dropout_keep(n, rate, seed, step):
    """The documented element -> Philox mapping: element i uses word (i % 64) // 16 of block
    16 * (i // 64) + i % 16, counter (block, step), key seed."""
    i = np.arange(n, dtype=np.uint64)
    block = (i // np.uint64(64)) * np.uint64(16) + i % np.uint64(16)
    word = ((i % np.uint64(64)) // np.uint64(16)).astype(np.int64)
    out = philox4x32_10((block & np.uint64(M32), block >> np.uint64(32),
                         np.full(n, step & M32, np.uint64), np.full(n, step >> 32, np.uint64)),
                        (seed & M32, seed >> 32))
    u = np.choose(word, out) if n else np.zeros(0, np.uint64)
    return u >= np.uint64(int(rate * 2**32))


def batch_norm(x, gamma, beta, mean, var, eps):
    x = np.asarray(x, np.float64)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def batch_stats(x):
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    return x.mean(axis=0), x.var(axis=0)


def batch_norm_backward_training(dy, x, gamma, eps):
    """Gradients of y = gamma * (x - mu) / sqrt(var + eps) + beta with batch mu, var (biased)."""
    c = np.shape(x)[-1]
    x = np.asarray(x, np.float64).reshape(-1, c)
    dy = np.asarray(dy, np.float64).reshape(-1, c)
    m = x.shape[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    dvar = (dxhat * (x - mu)).sum(axis=0) * -0.5 * inv ** 3
    dmu = -(dxhat * inv).sum(axis=0) + dvar * (-2.0 * (x - mu)).mean(axis=0)
    dx = dxhat * inv + dvar * 2.0 * (x - mu) / m + dmu / m
    return dx, dgamma, dbeta

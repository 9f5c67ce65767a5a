"""cnnfast.random — Keras 3's ``keras.random`` on NumPy: random arrays from NumPy Generators.

Every function takes ``seed=``, as Keras does:

* an ``int``: the same values on every call (``normal((2,), seed=1)`` twice gives one result);
* a :class:`SeedGenerator`: its state advances at each draw, so successive calls differ but the
  whole sequence is fixed by the generator's seed. The first draw of ``SeedGenerator(s)`` equals
  the draw with ``seed=s``;
* ``None`` (the default): a fresh seed from cnnfast's seed stream, which
  ``cnnfast.utils.set_random_seed`` fixes (so a seeded script is reproducible end to end).

A draw uses ``np.random.Generator(PCG64(SeedSequence([seed, counter])))``: the values are
NumPy's, not those of a Keras backend, but the distributions, shapes, dtypes and seeding rules are
Keras's. Float results default to float32 (``keras.config.floatx()``), integers to int32.

    from cnnfast import random
    gen = random.SeedGenerator(1337)
    noise = random.normal((32, 28, 28, 1), stddev=0.1, seed=gen)
    x_aug = random.dropout(x, 0.2, seed=gen)
"""
from __future__ import annotations

import itertools
import math
import operator

import numpy as np

from .ops import _dtypes
from .ops._keras_args import as_array, keras_op, shape_arg
from .utils.random import next_seed

__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "categorical",
           "dropout", "shuffle", "gamma", "beta", "binomial"]

_SEED_MODULUS = 2 ** 64
_generator_names = itertools.count()


class SeedGenerator:
    """A seed that changes at every draw: ``state`` is ``[seed, counter]`` and each random call
    given this generator uses the current state, then advances the counter by one.

    Args:
        seed: an int, or None for a seed from cnnfast's stream (fixed by ``set_random_seed``).
        name: a name for the generator (``"seed_generator"``, ``"seed_generator_1"``... by default).
    """

    def __init__(self, seed=None, name=None, **kwargs):
        if kwargs:
            raise ValueError(f"SeedGenerator: unrecognised keyword arguments {sorted(kwargs)}")
        if name is None:
            n = next(_generator_names)
            name = "seed_generator" if n == 0 else f"seed_generator_{n}"
        self.name = name
        self._initial_seed = seed
        if seed is None:
            seed = next_seed()
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"SeedGenerator: seed must be an integer or None, got {seed!r}")
        self.state = np.array([int(seed) % _SEED_MODULUS, 0], dtype=np.uint64)

    def next(self, ordered=True):
        """The current state (a copy), after which the counter advances (``ordered=False``
        scrambles the state instead, as Keras's global generator does)."""
        current = self.state.copy()
        if ordered:
            self.state[1] += np.uint64(1)
        else:
            self.state[:] = (self.state.astype(object) + 1) * 5387 % 933199
        return current

    def get_config(self) -> dict:
        return {"seed": self._initial_seed, "name": self.name}

    @classmethod
    def from_config(cls, config: dict) -> "SeedGenerator":
        return cls(**config)

    def __repr__(self) -> str:
        return f"<SeedGenerator name={self.name!r} state=[{int(self.state[0])}, {int(self.state[1])}]>"


def _generator(seed) -> np.random.Generator:
    """The NumPy Generator of one draw (see the module docstring for the three kinds of seed)."""
    if isinstance(seed, SeedGenerator):
        key = [int(v) for v in seed.next()]
    elif seed is None:
        key = [next_seed(), 0]
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        key = [int(seed) % _SEED_MODULUS, 0]
    else:
        raise ValueError(f"seed must be an integer, a SeedGenerator or None, got {seed!r} "
                         f"(of type {type(seed).__name__})")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))


def _float_dtype(dtype) -> str:
    name = _dtypes.standardize_dtype(dtype)
    if not _dtypes.is_float(name):
        raise ValueError(f"dtype must be a floating point type, got {dtype!r}")
    return name


def _positive(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(arr > 0):
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return arr


@keras_op
def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples of a normal distribution with ``mean`` and ``stddev`` (float32 unless ``dtype``)."""
    dims, dtype = shape_arg(shape), _float_dtype(dtype)
    if np.any(np.asarray(stddev) < 0):
        raise ValueError(f"stddev must be >= 0, got {stddev!r}")
    return _generator(seed).normal(loc=mean, scale=stddev, size=dims).astype(dtype)


@keras_op
def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples of the uniform distribution on ``[minval, maxval)`` (float32 unless ``dtype``;
    the upper bound stays excluded after rounding to ``dtype``)."""
    dims, dtype = shape_arg(shape), _float_dtype(dtype)
    low, high = float(minval), float(maxval)
    if not low < high:
        raise ValueError(f"minval must be < maxval, got minval={minval}, maxval={maxval}")
    values = _generator(seed).uniform(low, high, size=dims).astype(dtype)
    top = np.nextafter(np.array(high, dtype), np.array(low, dtype))
    return np.minimum(values, top) if float(top) >= low else values


@keras_op
def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples restricted to ``mean +- 2 * stddev``: values outside are drawn again."""
    dims, dtype = shape_arg(shape), _float_dtype(dtype)
    mean, stddev = float(mean), float(stddev)
    if stddev < 0:
        raise ValueError(f"stddev must be >= 0, got {stddev}")
    rng = _generator(seed)
    n = math.prod(dims)
    values = rng.normal(mean, stddev, size=n)
    outside = np.abs(values - mean) > 2 * stddev
    while outside.any():  # about 4.6% of the values per round
        values[outside] = rng.normal(mean, stddev, size=int(outside.sum()))
        outside = np.abs(values - mean) > 2 * stddev
    return values.reshape(dims).astype(dtype)


@keras_op
def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers drawn uniformly from ``[minval, maxval)`` (int32 unless ``dtype``)."""
    dims = shape_arg(shape)
    name = _dtypes.standardize_dtype(dtype)
    if not _dtypes.is_int(name):
        raise ValueError(f"dtype must be an integer type, got {dtype!r}")
    if not np.all(np.asarray(minval) < np.asarray(maxval)):
        raise ValueError(f"minval must be < maxval, got minval={minval}, maxval={maxval}")
    return _generator(seed).integers(minval, maxval, size=dims, dtype=name)


@keras_op
def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class indices per row of the 2-D ``(batch, classes)`` ``logits``
    (unnormalised log-probabilities; ``-inf`` for an impossible class), shape
    ``(batch, num_samples)``."""
    logits = as_array(logits, name="logits").astype(np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (batch_size, num_classes), got shape {logits.shape}")
    if isinstance(num_samples, (bool, np.bool_)) or not isinstance(num_samples, (int, np.integer)) \
            or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative integer, got {num_samples!r}")
    name = _dtypes.standardize_dtype(dtype)
    batch, classes = logits.shape
    if classes == 0:
        raise ValueError("logits must have at least one class")
    peak = np.max(logits, axis=1, keepdims=True)
    if not np.all(np.isfinite(peak)):
        raise ValueError("every row of logits needs a finite maximum (a class that can be drawn)")
    probs = np.exp(logits - peak)
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = _generator(seed).random((batch, int(num_samples)))
    # one sorted search for all rows: row r's cumulative probabilities are shifted into [r, r + 1]
    rows = np.arange(batch, dtype=np.float64)[:, None]
    flat = (cdf + rows).reshape(-1)
    found = np.searchsorted(flat, (u + rows).reshape(-1), side="right").reshape(batch, -1)
    samples = np.clip(found - np.arange(batch)[:, None] * classes, 0, classes - 1)
    return samples.astype(name)


@keras_op
def dropout(inputs, rate, noise_shape=None, seed=None):
    """Inverted dropout: each element (each entry of ``noise_shape``, broadcast) is zeroed with
    probability ``rate``, the others scaled by ``1 / (1 - rate)``, in the input's dtype.
    ``noise_shape`` entries of None take the input's size."""
    x = as_array(inputs, name="inputs")
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if rate == 1.0:
        return np.zeros_like(x)
    if rate == 0.0:
        return x
    if noise_shape is None:
        dims = x.shape
    else:
        if len(noise_shape) != x.ndim:
            raise ValueError(f"noise_shape must have one entry per axis of inputs {x.shape}, got {noise_shape}")
        dims = tuple(x.shape[i] if d is None else int(d) for i, d in enumerate(noise_shape))
    keep = 1.0 - rate
    mask = _generator(seed).random(dims) < keep
    mask = np.broadcast_to(mask, x.shape)
    out_dtype = x.dtype if x.dtype.kind in "fc" else np.dtype(_dtypes.FLOATX)
    return np.where(mask, x / np.asarray(keep, out_dtype), np.zeros((), out_dtype)).astype(out_dtype)


@keras_op
def shuffle(x, axis=0, seed=None):
    """``x`` with its slices along ``axis`` permuted at random, keeping each slice whole (as Keras's
    torch backend): for ``axis=0`` one permutation of the rows; for a later axis, an independent
    permutation for each index of the axes before it."""
    x = as_array(x)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    ax = operator.index(axis)
    if not -x.ndim <= ax < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of {x.ndim} dimension(s)")
    ax %= x.ndim
    order = np.argsort(_generator(seed).random(x.shape[:ax + 1]), axis=ax)
    order = order.reshape(order.shape + (1,) * (x.ndim - ax - 1))
    return np.take_along_axis(x, order, axis=ax)


@keras_op
def gamma(shape, alpha, dtype=None, seed=None):
    """Samples of the Gamma distribution with shape ``alpha`` (> 0) and scale 1."""
    dims, dtype = shape_arg(shape), _float_dtype(dtype)
    return _generator(seed).standard_gamma(_positive(alpha, "alpha"), size=dims).astype(dtype)


@keras_op
def beta(shape, alpha, beta, dtype=None, seed=None):
    """Samples of the Beta distribution with parameters ``alpha`` and ``beta`` (> 0, broadcast to
    ``shape``); values in [0, 1]."""
    dims, dtype = shape_arg(shape), _float_dtype(dtype)
    return _generator(seed).beta(_positive(alpha, "alpha"), _positive(beta, "beta"), size=dims).astype(dtype)


@keras_op
def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Numbers of successes in ``counts`` trials of probability ``probabilities`` (broadcast to
    ``shape``), as floats (float32 unless ``dtype``, as Keras)."""
    dims = shape_arg(shape)
    name = _dtypes.standardize_dtype(dtype)
    n = np.asarray(counts)
    p = np.asarray(probabilities, dtype=np.float64)
    if np.any(n < 0) or np.any(n != np.round(n)):
        raise ValueError(f"counts must be non-negative integers, got {counts!r}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"probabilities must be in [0, 1], got {probabilities!r}")
    return _generator(seed).binomial(n.astype(np.int64), p, size=dims).astype(name)

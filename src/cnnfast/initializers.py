"""Weight initialisers with Keras names, arguments and fan rules (``keras.initializers``).

Every initialiser is called as ``init(shape, dtype="float32") -> np.ndarray``. With ``seed=None``
each call draws from cnnfast's seed stream (see ``cnnfast.utils.set_random_seed``); with an integer
seed the initialiser owns a generator, so its sequence of draws is fixed.

Fans follow Keras: for a kernel of shape ``(..., fan_in_axis, fan_out_axis)`` the receptive field
(product of the leading axes) multiplies both, so a conv kernel HWIO has
``fan_in = kh*kw*cin`` and ``fan_out = kh*kw*cout``; a dense kernel ``(in, out)`` has ``in, out``.
"""
from __future__ import annotations

import math

import numpy as np

from .utils.random import make_generator

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeNormal",
           "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal", "get", "serialize",
           "deserialize", "compute_fans"]


def compute_fans(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _check_dtype(dtype, name):
    if dtype not in (None, "float32", np.float32):
        raise ValueError(f"{name}: cnnfast weights are float32, got dtype={dtype!r}")


def _check_seed(seed, name):
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{name}: seed must be a non-negative integer or None, got {seed!r}")
    return int(seed)


class Initializer:
    """Base class: subclasses implement ``_generate(shape, rng)``; ``seed`` as in Keras."""

    def __init__(self, seed=None):
        self.seed = _check_seed(seed, type(self).__name__)
        self._rng = None if self.seed is None else make_generator(self.seed)

    def __call__(self, shape, dtype=None):
        _check_dtype(dtype, type(self).__name__)
        shape = tuple(int(s) for s in shape)
        rng = self._rng if self._rng is not None else make_generator()
        # asarray(order="C"), not ascontiguousarray: that one turns a scalar weight's () into (1,)
        return np.asarray(self._generate(shape, rng), dtype=np.float32, order="C")

    def _generate(self, shape, rng):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    def __init__(self):
        super().__init__(None)

    def _generate(self, shape, rng):
        return np.zeros(shape, np.float32)

    def get_config(self):
        return {}


class Ones(Initializer):
    def __init__(self):
        super().__init__(None)

    def _generate(self, shape, rng):
        return np.ones(shape, np.float32)

    def get_config(self):
        return {}


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__(None)
        self.value = float(value)

    def _generate(self, shape, rng):
        return np.full(shape, self.value, np.float32)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _generate(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _generate(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


def _truncated_normal(rng, shape, mean, stddev):
    """Normal samples redrawn until all lie within two standard deviations of the mean."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev + mean


class TruncatedNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _generate(self, shape, rng):
        return _truncated_normal(rng, shape, self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """``scale / fan`` variance; mode fan_in/fan_out/fan_avg; (truncated/untruncated) normal or uniform."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform", "normal")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        name = type(self).__name__
        if not float(scale) > 0:
            raise ValueError(f"{name}: scale must be positive, got {scale!r}")
        if mode not in self._MODES:
            raise ValueError(f"{name}: mode must be one of {list(self._MODES)}, got {mode!r}")
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(f"{name}: distribution must be one of {list(self._DISTRIBUTIONS)}, "
                             f"got {distribution!r}")
        self.scale, self.mode = float(scale), mode
        self.distribution = "truncated_normal" if distribution == "normal" else distribution

    def _generate(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "truncated_normal":
            return _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)
        if self.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    _ARGS: tuple = ()

    def __init__(self, seed=None):
        super().__init__(*self._ARGS, seed=seed)

    def get_config(self):
        return {"seed": self.seed}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform in ±sqrt(6 / (fan_in + fan_out)) — the Keras default kernel initialiser."""
    _ARGS = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_avg", "truncated_normal")


class HeNormal(_FixedVarianceScaling):
    _ARGS = (2.0, "fan_in", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    _ARGS = (2.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    _ARGS = (1.0, "fan_in", "uniform")


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix over the flattened leading axes, times ``gain``."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def _generate(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: needs a shape of rank >= 2, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


_CLASSES = {c.__name__: c for c in (Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal,
                                    VarianceScaling, GlorotUniform, GlorotNormal, HeNormal, HeUniform,
                                    LecunNormal, LecunUniform, Orthogonal)}
_ALIASES = {"zeros": Zeros, "zero": Zeros, "ones": Ones, "one": Ones, "constant": Constant,
            "random_normal": RandomNormal, "normal": RandomNormal, "random_uniform": RandomUniform,
            "uniform": RandomUniform, "truncated_normal": TruncatedNormal,
            "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
            "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
            "lecun_normal": LecunNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal}


def get(identifier, context: str = "initializer"):
    """An Initializer from a name (``"glorot_uniform"``, ``"HeNormal"``), a config dict, an instance
    or a callable ``f(shape, dtype)``; None stays None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"{context}: unknown initializer {identifier!r}; expected one of "
                             f"{sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier, context)
    if callable(identifier):
        return identifier
    raise TypeError(f"{context}: expected an initializer name, instance or callable, got {identifier!r}")


def serialize(initializer) -> dict:
    if not isinstance(initializer, Initializer):
        raise TypeError(f"cannot serialize initializer {initializer!r}: only cnnfast.initializers "
                        "classes can be saved")
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


def deserialize(config, context: str = "initializer"):
    """An Initializer from ``{"class_name": ..., "config": {...}}`` (allow-listed classes only)."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"{context}: bad initializer config {config!r}")
    cls = _CLASSES.get(config["class_name"])
    if cls is None:
        raise ValueError(f"{context}: unknown initializer class {config['class_name']!r}")
    kwargs = config.get("config") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"{context}: bad initializer config {config!r}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{context}: bad arguments for {cls.__name__}: {exc}") from None

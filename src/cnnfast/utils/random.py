"""Seeding: one call makes a training run reproducible.

``set_random_seed(seed)`` seeds Python's ``random``, NumPy's global RNG (which ``fit`` uses to
shuffle, as Keras 3 does) and cnnfast's own seed stream. Weight initialisers and dropout layers
take their seeds from that stream: the n-th draw after ``set_random_seed(s)`` is a pure function of
``(s, n)``, so building the same model after the same seed gives the same weights, and dropout masks
(regenerated from ``(seed, step)`` by a counter-based RNG in C) repeat exactly.

The stream never touches NumPy's global RNG, so loading a saved model (which builds layers) does not
change the shuffling order of a training run that continues afterwards.
"""
from __future__ import annotations

import random as _py_random
import secrets

import numpy as np

__all__ = ["set_random_seed", "next_seed", "make_generator"]

_MAX_SEED = 2**63 - 1

_state = {"seed": secrets.randbits(63), "counter": 0}


def set_random_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and cnnfast's initialiser/dropout stream."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"set_random_seed: seed must be an integer, got {seed!r}")
    seed = int(seed)
    if seed < 0 or seed > _MAX_SEED:
        raise ValueError(f"set_random_seed: seed must be in [0, 2**63 - 1], got {seed}")
    _py_random.seed(seed)
    np.random.seed(seed % 2**32)
    _state["seed"] = seed
    _state["counter"] = 0


def next_seed() -> int:
    """The next seed of cnnfast's stream (a 63-bit integer), a pure function of (seed, count)."""
    n = _state["counter"]
    _state["counter"] = n + 1
    seq = np.random.SeedSequence([_state["seed"], n])
    return int(seq.generate_state(1, dtype=np.uint64)[0]) & _MAX_SEED


def make_generator(seed: int | None = None) -> np.random.Generator:
    """A NumPy Generator: from ``seed`` if given, else from the next seed of the stream."""
    if seed is None:
        seed = next_seed()
    return np.random.Generator(np.random.PCG64(seed))

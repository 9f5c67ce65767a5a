"""What the built-in training loop (``training.py``) and the loop of overridden steps
(``custom_steps.py``) share: the checks of their integer and ``verbose`` arguments, and the
per-epoch batch indices with Keras's shuffling."""
from __future__ import annotations

import math

import numpy as np


def _check_int(value, name, minimum, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_verbose(verbose, where):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{where}: verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


class _Batches:
    """Index batches per epoch with Keras's shuffling; with ``steps`` it continues across epochs."""

    def __init__(self, n, batch_size, shuffle, steps=None):
        self.n, self.bs, self.shuffle = n, batch_size, shuffle
        self.per_pass = math.ceil(n / batch_size)
        self.steps = steps or self.per_pass
        self._pending = iter(())

    def _one_pass(self):
        n, bs = self.n, self.bs
        perm = np.random.permutation(n) if self.shuffle is True else None
        for start in range(0, n, bs):
            end = min(start + bs, n)
            if perm is not None:
                yield perm[start:end]
            elif self.shuffle == "batch":
                idx = np.arange(start, end)
                np.random.shuffle(idx)
                yield idx
            else:
                yield slice(start, end)

    def epoch(self):
        for step in range(self.steps):
            idx = next(self._pending, None)
            if idx is None:
                self._pending = self._one_pass()
                idx = next(self._pending)
            yield step, idx

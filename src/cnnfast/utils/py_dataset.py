"""``PyDataset``: Keras 3's base class for a data set of batches written in Python.

A subclass returns one whole batch from ``__getitem__(index)`` -- ``(x,)``, ``(x, y)`` or
``(x, y, sample_weight)`` (a bare array or dict is ``x`` alone) -- and says how many batches there
are with ``__len__`` (or the ``num_batches`` property; ``None`` means an endless data set).
``on_epoch_begin`` / ``on_epoch_end`` are called around every epoch of ``fit`` (and around
``evaluate`` / ``predict``), e.g. to reshuffle the samples a subclass draws its batches from.

``workers``, ``use_multiprocessing`` and ``max_queue_size`` tell ``fit`` how to read it: with
``workers >= 1`` batches are loaded ahead of the training step by background threads (``workers``
of them, in index order) into a queue of at most ``max_queue_size`` batches; ``workers=0`` loads
each batch on the calling thread when it is needed. ``use_multiprocessing=True`` is refused:
processes would have to pickle the data set and every batch, and cnnfast's kernels release the
GIL, so threads already overlap loading with training.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["PyDataset"]


def _check_count(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"PyDataset: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"PyDataset: {name} must be >= {minimum}, got {value!r}")
    return int(value)


class PyDataset:
    """Base class for a data set that produces whole batches (Keras's ``keras.utils.PyDataset``).

    Args:
        workers: number of background threads loading batches ahead of training (0: load on the
            calling thread).
        use_multiprocessing: must be False (see the module notes).
        max_queue_size: at most this many loaded batches wait for the training step.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    # The settings are checked when set, so a bad value fails where it was written.
    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = _check_count(value, "workers", 0)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        if value:
            raise NotImplementedError(
                "PyDataset: use_multiprocessing=True is not supported; cnnfast loads batches with "
                "threads (workers=N), which overlap with training because its kernels release the GIL")
        self._use_multiprocessing = False

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = _check_count(value, "max_queue_size", 1)

    def __getitem__(self, index):
        """The batch at position ``index``."""
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index) "
                                  "returning one batch")

    @property
    def num_batches(self):
        """The number of batches, or None for an endless data set (defaults to ``len(self)``)."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or the num_batches "
                                  "property (None for an endless data set)")

    def __iter__(self):
        """Every batch in order (no background loading: that is ``fit``'s job)."""
        n = self.num_batches
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    def on_epoch_begin(self):
        """Called at the beginning of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""

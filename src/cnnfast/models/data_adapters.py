"""Data sets for fit / evaluate / predict: PyDatasets and iterables of batches, read one epoch at a time.

NumPy arrays do not come here: the Trainer slices them itself (its hot path). Everything else that
``fit`` accepts as ``x`` or ``validation_data`` becomes a :class:`BatchSource`:

* a :class:`cnnfast.utils.PyDataset`: batch ``i`` is ``dataset[i]``; ``num_batches`` batches per pass
  (``None``: endless). With ``shuffle`` (fit's default, as in Keras 3's ``PyDatasetAdapter``) each
  pass visits the batches in an order drawn with Python's ``random.shuffle`` (seeded by
  ``cnnfast.utils.set_random_seed``); the samples inside a batch are the data set's business. With
  ``workers >= 1`` the batches of an epoch are loaded ahead by background threads (see
  :class:`_Prefetcher`); the threads are stopped and joined before ``on_epoch_end`` is called, so
  that hook never runs while a batch is being loaded;
* an iterator or generator: read once, in the calling thread (as Keras does), never restarted;
* any other iterable (a class with ``__iter__``, a ``torch.utils.data.DataLoader``): every pass
  is a fresh ``iter()``; its ``len()``, when it has one, is the number of batches per pass.

Epochs (Keras 3's ``EpochIterator``): without ``steps`` an epoch is one whole pass. With ``steps``
an epoch takes the next ``steps`` batches of the current pass and the next epoch continues where
it stopped; an epoch never crosses the end of a pass: if the pass ends first, Keras's "ran out of
data" warning is given, the epoch ends early, and a restartable source begins a new pass at the
next epoch. A generator that is used up cannot begin a new one: ``has_more()`` is then False and
fit stops, with the same warning, as it would in Keras (which stops at the first empty epoch).
"""
from __future__ import annotations

import collections.abc
import itertools
import numbers
import queue
import os
import random
import sys
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..utils.py_dataset import PyDataset

__all__ = ["BatchSource", "batch_source", "is_batch_source", "unpack_batch", "RAN_OUT_WARNING"]

RAN_OUT_WARNING = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
                   "generator can generate at least `steps_per_epoch * epochs` batches. You may need to "
                   "use the `.repeat()` function when building your dataset.")

ACCEPTED = ("NumPy arrays (a list or dict of arrays for several inputs), a cnnfast.utils.PyDataset, "
            "or an iterable / generator of (x,), (x, y) or (x, y, sample_weight) batches")

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

# What the array path takes as it is (np.asarray turns it into the data).
_ARRAY_TYPES = (np.ndarray, np.generic, list, tuple, dict, numbers.Number)
# Iterable, but never a sequence of batches.
_REFUSED_ITERABLES = (str, bytes, bytearray, memoryview, set, frozenset, collections.abc.Mapping)


def _outside_package_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside cnnfast, seen from the caller of this function."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


def _is_array_like(x) -> bool:
    return (x is None or isinstance(x, _ARRAY_TYPES) or hasattr(x, "__array__")
            or hasattr(x, "__array_interface__"))


def is_batch_source(x) -> bool:
    """True if ``x`` is a data set of batches rather than arrays (no type check beyond that)."""
    if isinstance(x, PyDataset):
        return True
    return not _is_array_like(x) and isinstance(x, collections.abc.Iterable) and \
        not isinstance(x, _REFUSED_ITERABLES)


def batch_source(x, where, what="x", shuffle=False):
    """The :class:`BatchSource` reading ``x``, or None when ``x`` is array data; a TypeError naming
    the type and what is accepted for anything else."""
    if isinstance(x, PyDataset):
        return _PyDatasetSource(x, where, what, shuffle)
    if _is_array_like(x):
        return None
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, _REFUSED_ITERABLES):
        return _IterableSource(x, where, what)
    raise TypeError(f"{where}: {what} of type {type(x).__module__}.{type(x).__qualname__} is not "
                    f"supported; {what} must be {ACCEPTED}")


def unpack_batch(batch, where):
    """``(x, y, sample_weight)`` of one batch, as Keras's ``unpack_x_y_sample_weight``: a tuple or list
    of 1 to 3 items is ``(x[, y[, sample_weight]])``; anything else (an array, a dict) is ``x``."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"{where}: a batch must be (x,), (x, y) or (x, y, sample_weight), got a tuple of "
                         f"{len(batch)} items")
    return batch + (None,) * (3 - len(batch))


class BatchSource:
    """One data set read epoch by epoch (see the module notes)."""

    #: batches in one pass, or None if unknown until the pass ends (or endless)
    num_batches = None
    #: what the user passed, for messages: "PyDataset", "generator" or "iterable"
    kind = None

    def __init__(self, where, what):
        self.where, self.what = where, what
        self._warned = False
        self._yielded_any = False

    def warn_ran_out(self):
        """Keras's warning, once per source, attributed to the caller's fit/evaluate line."""
        if not self._warned:
            self._warned = True
            warnings.warn(RAN_OUT_WARNING, UserWarning, stacklevel=_outside_package_stacklevel())

    def has_more(self) -> bool:
        """False once a source that cannot restart has no batch left."""
        return True

    def epoch(self, steps, restart=False):
        """A context manager iterating ``(step, batch)`` for one epoch of at most ``steps`` batches
        (None: to the end of the pass). ``restart`` begins a new pass (validation, evaluate)."""
        return _Epoch(self, steps, restart)

    # Implemented by each source: an iterator over this epoch's batches, and its cleanup.
    def _open(self, steps, restart):
        raise NotImplementedError

    def _close(self):
        pass

    def _check_not_empty(self, count):
        if count == 0 and not self._yielded_any:
            raise ValueError(f"{self.where}: {self.what} must yield at least one batch; it yielded none")


class _Epoch:
    """``with source.epoch(steps) as batches: for step, batch in batches: ...``: however the loop
    ends (done, break, exception), the source's background work stops and its hooks run on exit."""

    def __init__(self, source, steps, restart):
        self.source, self.steps, self.restart = source, steps, restart
        self.count = 0
        self._batches = None

    def __enter__(self):
        self._batches = self.source._open(self.steps, self.restart)
        return self

    def __iter__(self):
        for batch in self._batches:
            self.source._yielded_any = True
            yield self.count, batch
            self.count += 1
            if self.steps is not None and self.count >= self.steps:
                return
        self.source._check_not_empty(self.count)
        if self.steps is not None:
            self.source.warn_ran_out()

    def __exit__(self, *exc):
        self.source._close()
        return False


class _IterableSource(BatchSource):
    """An iterable of batches: restartable unless it is an iterator (generators are)."""

    def __init__(self, data, where, what):
        super().__init__(where, what)
        self._data = data
        self.restartable = not isinstance(data, collections.abc.Iterator)
        self.kind = "iterable" if self.restartable else "generator"
        if self.restartable and hasattr(data, "__len__"):
            self.num_batches = int(len(data))
        self._pass = None if self.restartable else iter(data)
        self._peeked = []

    def _peek(self) -> bool:
        """Whether the current pass has another batch (read ahead by one, kept for the next epoch)."""
        if not self._peeked:
            self._peeked.extend(itertools.islice(self._pass, 1))
        return bool(self._peeked)

    def has_more(self):
        if self.restartable or self._peek():
            return True
        self._check_not_empty(0)
        return False

    def _open(self, steps, restart):
        if self.restartable:
            # a pass that ended exactly at the end of the previous epoch gives way to a new one
            if restart or self._pass is None or not self._peek():
                self._pass, self._peeked = iter(self._data), []
        return self._read()

    def _read(self):
        peeked, self._peeked = self._peeked, []
        for batch in itertools.chain(peeked, self._pass):
            yield batch  # the epoch may stop here (steps reached); the pass goes on at the next one
        if self.restartable:
            self._pass = None


class _PyDatasetSource(BatchSource):
    """A PyDataset: a pass is an order of batch indices; an epoch loads a contiguous part of it."""

    def __init__(self, dataset, where, what, shuffle):
        super().__init__(where, what)
        self.kind = "PyDataset"
        self.dataset = dataset
        self.shuffle = shuffle is not False
        self.num_batches = self._read_num_batches()
        self._order = None  # this pass's indices (None before the first pass; endless: not used)
        self._next = 0      # position of the next batch in the pass
        self._loader = None

    def _read_num_batches(self):
        n = self.dataset.num_batches
        if n is not None and (isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer))
                              or n < 0):
            raise ValueError(f"{self.where}: {type(self.dataset).__name__}.num_batches (or __len__) must be "
                             f"a non-negative integer or None, got {n!r}")
        return None if n is None else int(n)

    def _open(self, steps, restart):
        self.dataset.on_epoch_begin()
        self.num_batches = n = self._read_num_batches()
        if n is None:
            if restart:
                self._next = 0
            stop = None if steps is None else self._next + steps
            indices = itertools.islice(itertools.count(), self._next, stop)
        else:
            if restart or self._order is None or self._next >= len(self._order):
                self._order = list(range(n))
                if self.shuffle:
                    random.shuffle(self._order)
                self._next = 0
            end = len(self._order) if steps is None else min(self._next + steps, len(self._order))
            indices = self._order[self._next:end]
        workers, depth = self.dataset.workers, self.dataset.max_queue_size
        if workers > 0:
            self._loader = _Prefetcher(self.dataset.__getitem__, indices, workers, depth,
                                       f"{type(self.dataset).__name__}-loader")
            batches = self._loader
        else:
            batches = (self.dataset[i] for i in indices)
        return self._count(batches)

    def _count(self, batches):
        for batch in batches:
            self._next += 1
            yield batch

    def _close(self):
        loader, self._loader = self._loader, None
        try:
            if loader is not None:
                loader.close()
        finally:
            self.dataset.on_epoch_end()


class _Loaded:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


_END = object()


class _Prefetcher:
    """Loads ``fetch(i)`` for every ``i`` of ``indices`` on background threads, in index order, at most
    ``max_queue_size`` batches ahead of the consumer, so the training step finds its batch ready.

    One producer thread walks the indices; with ``workers > 1`` it hands each load to a thread pool
    and queues the futures (in order), so ``workers`` batches load at once. An exception raised by
    ``fetch`` is re-raised by ``__next__`` in the consumer with its original traceback. ``close``
    stops the producer, drains the queue and joins every thread.
    """

    def __init__(self, fetch, indices, workers, max_queue_size, name):
        self._queue = queue.Queue(max_queue_size)
        self._stop = threading.Event()
        self._finished = False
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=name) if workers > 1 else None
        self._thread = threading.Thread(target=self._produce, args=(fetch, iter(indices)), name=name,
                                        daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        # a bounded wait, so a stop request is seen even while the queue is full
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, fetch, indices):
        try:
            for i in indices:
                if self._stop.is_set():
                    return
                if self._pool is not None:
                    item = self._pool.submit(fetch, i)
                else:
                    try:
                        item = _Loaded(fetch(i))
                    except BaseException as error:  # handed to the consumer with its traceback
                        item = _Failed(error)
                if not self._put(item) or isinstance(item, _Failed):
                    return
        except BaseException as error:  # from the index iterator itself
            self._put(_Failed(error))
            return
        self._put(_END)

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._finished = True
            raise StopIteration
        if isinstance(item, Future):
            return item.result()  # re-raises a worker's exception with its traceback
        if isinstance(item, _Failed):
            self._finished = True
            raise item.error
        return item.value

    def close(self):
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._finished = True

    def _drain(self):
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Future):
                item.cancel()

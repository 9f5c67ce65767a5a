"""Horovod-style callbacks for data-parallel training with plain ``Model.fit``.

``cnnfast.distributed.fit`` does all of this itself; these are for scripts that shard their data
themselves and call ``model.fit`` on every rank (the Horovod recipe):

* :class:`BroadcastGlobalVariablesCallback` — rank 0's initial weights and optimizer state to
  every rank before the first step (``on_train_begin`` runs after ``fit`` built the optimizer).
* :class:`MetricAverageCallback` — epoch logs averaged over ranks before later callbacks see them
  (put it first in the list).
* :class:`LearningRateWarmupCallback` — the gradual warm-up of Goyal et al. (2017): the learning
  rate grows linearly from ``lr / size`` to ``lr`` over the first epochs.
* :func:`root_only` — marks a callback that only rank 0 should run (``cnnfast.distributed.fit``
  already treats ``ModelCheckpoint``, ``CSVLogger`` and ``ProgbarLogger`` that way).
"""
from __future__ import annotations

import sys

from ..callbacks import Callback
from . import _comm
from ._weights import broadcast_weights

__all__ = ["BroadcastGlobalVariablesCallback", "MetricAverageCallback", "LearningRateWarmupCallback",
           "root_only", "is_root_only"]


class BroadcastGlobalVariablesCallback(Callback):
    """Broadcast the weights, optimizer slots and step count from ``root_rank`` at the start of
    training, so every rank starts from the same model (Horovod's callback of the same name)."""

    def __init__(self, root_rank: int = 0):
        super().__init__()
        self.root_rank = root_rank
        self.broadcast_done = False

    def on_train_begin(self, logs=None):
        if not self.broadcast_done:
            broadcast_weights(self.model, self.root_rank)
            self.broadcast_done = True


class MetricAverageCallback(Callback):
    """Average every epoch log over the ranks (an arithmetic mean, as Horovod's callback).

    The mean is exact when every rank saw the same number of samples; ``cnnfast.distributed.fit``
    instead sums the metrics' running totals and counts, which is exact for any shard sizes.
    Place it before callbacks that read the logs (EarlyStopping, ModelCheckpoint, the progress bar:
    pass ``cnnfast.callbacks.ProgbarLogger()`` after it).
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        group = _comm.communicator()
        every = group.allgather_obj({k: float(v) for k, v in logs.items()})
        keys = sorted(every[0])
        if any(sorted(d) != keys for d in every):
            raise ValueError(f"MetricAverageCallback: the ranks logged different keys: "
                             f"{[sorted(d) for d in every]}")
        for k in keys:
            logs[k] = sum(d[k] for d in every) / len(every)


class LearningRateWarmupCallback(Callback):
    """Linear learning-rate warm-up from ``initial_lr / size`` to ``initial_lr`` over the first
    ``warmup_epochs`` epochs, updated every batch (Goyal et al., "Accurate, Large Minibatch SGD",
    2017; Horovod's callback of the same name).

    Args:
        initial_lr: the learning rate after warm-up, usually the single-process rate times the
            number of ranks. Default: the optimizer's learning rate when training starts.
        warmup_epochs: epochs of warm-up (fractional values allowed).
        steps_per_epoch: steps per epoch; default: what ``fit`` reports.
        verbose: 1 prints the rate reached at the end of warm-up (rank 0 only).
    """

    def __init__(self, initial_lr=None, warmup_epochs=5, steps_per_epoch=None, verbose=0):
        super().__init__()
        if initial_lr is not None and not float(initial_lr) > 0:
            raise ValueError(f"LearningRateWarmupCallback: initial_lr must be > 0, got {initial_lr!r}")
        if not float(warmup_epochs) > 0:
            raise ValueError(f"LearningRateWarmupCallback: warmup_epochs must be > 0, got {warmup_epochs!r}")
        self.initial_lr = None if initial_lr is None else float(initial_lr)
        self.warmup_epochs = float(warmup_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self._epoch = 0
        self._done = False

    def on_train_begin(self, logs=None):
        opt = self.model.optimizer
        if callable(opt._learning_rate):
            raise ValueError("LearningRateWarmupCallback: the optimizer's learning rate is a schedule; "
                             "build the warm-up into the schedule instead")
        if self.initial_lr is None:
            self.initial_lr = float(opt.learning_rate)
        self._done = False

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self._done:
            return
        steps = self.steps_per_epoch or self.params.get("steps") or 1
        progress = (self._epoch + batch / steps) / self.warmup_epochs
        opt = self.model.optimizer
        if progress >= 1.0:
            opt.learning_rate = self.initial_lr
            self._done = True
            if self.verbose and _comm.is_root():
                sys.stdout.write(f"\nEpoch {self._epoch + 1}: finished learning-rate warm-up to "
                                 f"{self.initial_lr:g}.\n")
            return
        n = _comm.size()
        opt.learning_rate = self.initial_lr * (1.0 / n + (1.0 - 1.0 / n) * progress)


def root_only(callback: Callback) -> Callback:
    """Mark ``callback`` to run on rank 0 only in ``cnnfast.distributed.fit`` (e.g. a callback that
    writes files or prints); returns the same object."""
    if not isinstance(callback, Callback):
        raise TypeError(f"root_only: expected a cnnfast.callbacks.Callback, got {callback!r}")
    callback._cnnfast_root_only = True
    return callback


def is_root_only(callback) -> bool:
    from ..callbacks import CSVLogger, ModelCheckpoint, ProgbarLogger
    return bool(getattr(callback, "_cnnfast_root_only", False)) or isinstance(
        callback, (ModelCheckpoint, CSVLogger, ProgbarLogger))

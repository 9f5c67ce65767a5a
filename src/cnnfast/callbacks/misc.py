"""Small callbacks: TerminateOnNaN, CSVLogger, LambdaCallback, LearningRateScheduler,
ReduceLROnPlateau (Keras names and semantics)."""
from __future__ import annotations

import csv
import math
import sys

import numpy as np

from .callback import Callback
from .early_stopping import monitor_direction

__all__ = ["TerminateOnNaN", "CSVLogger", "LambdaCallback", "LearningRateScheduler", "ReduceLROnPlateau"]


class TerminateOnNaN(Callback):
    """Stops training as soon as the loss becomes NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            sys.stdout.write(f"Batch {batch}: Invalid loss, terminating training\n")
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes ``epoch`` and the epoch logs (keys sorted) to a CSV file, one row per epoch."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = str(filename), separator, bool(append)
        self._file = self._writer = self._keys = None

    def on_train_begin(self, logs=None):
        mode = "a" if self.append else "w"
        has_header = False
        if self.append:
            try:
                with open(self.filename) as f:
                    has_header = bool(f.readline())
            except OSError:
                pass
        self._file = open(self.filename, mode, newline="")
        self._has_header = has_header
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self._keys, delimiter=self.sep)
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self._keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_train_batch_begin",
              "on_train_batch_end", "on_batch_begin", "on_batch_end")

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end, on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in given.items():
            if name not in self._HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}")
            if fn is not None:
                setattr(self, name, fn)


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start to ``schedule(epoch, lr)``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.optimizer.learning_rate
        try:
            new = self.schedule(epoch, lr)
        except TypeError:
            new = self.schedule(epoch)
        new = float(new)
        if not math.isfinite(new):
            raise ValueError(f"LearningRateScheduler: the schedule returned {new!r}")
        self.model.optimizer.learning_rate = new
        if self.verbose > 0:
            sys.stdout.write(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.\n")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0, got {factor}")
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.verbose, self.mode, self.min_delta = verbose, mode, float(min_delta)
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)
        self._direction = None
        self.best = None
        self.wait = self.cooldown_counter = 0

    def on_train_begin(self, logs=None):
        self.best = None
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            return
        if self._direction is None:
            self._direction = monitor_direction(self.model, self.monitor, self.mode, "ReduceLROnPlateau")
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        improved = self.best is None or (current < self.best - self.min_delta if self._direction == "min"
                                         else current > self.best + self.min_delta)
        if improved:
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = float(self.model.optimizer.learning_rate)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    self.model.optimizer.learning_rate = float(np.float32(new))
                    if self.verbose > 0:
                        sys.stdout.write(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.\n")
                    self.cooldown_counter, self.wait = self.cooldown, 0

"""ModelCheckpoint: save the model (``.keras``) or its weights (``.weights.npz``, or Keras's
``.weights.h5``) during training.

``filepath`` may hold ``str.format`` fields filled from the epoch (1-based) and the logs, e.g.
``"ckpt-{epoch:02d}-{val_loss:.2f}.keras"``. ``save_best_only`` keeps only improvements of
``monitor``; ``save_freq`` is "epoch" or a number of batches. Files are written atomically.
"""
from __future__ import annotations

import sys
import warnings

from .callback import Callback
from .early_stopping import monitor_direction

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(Callback):
    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = str(filepath)
        self.monitor, self.verbose = monitor, verbose
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"ModelCheckpoint mode {mode!r} is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.mode = mode
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq < 1):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq {save_freq!r}; expected 'epoch' "
                             "or a positive integer number of batches")
        self.save_freq = save_freq
        if self.save_weights_only:
            if not self.filepath.endswith((".weights.npz", ".weights.h5")):
                raise ValueError("ModelCheckpoint: when save_weights_only=True the filepath must end "
                                 f"in '.weights.npz' or '.weights.h5' (Keras's HDF5 layout, needs h5py), "
                                 f"got {self.filepath!r}")
        elif not self.filepath.endswith(".keras"):
            raise ValueError("ModelCheckpoint: the filepath must end in '.keras' (or use "
                             f"save_weights_only=True with '.weights.npz'), got {self.filepath!r}")
        self.best = initial_value_threshold
        self._direction = None
        self._batches_seen = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq != "epoch":
            self._batches_seen += 1
            if self._batches_seen % self.save_freq == 0:
                self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        try:
            if batch is None:
                return self.filepath.format(epoch=epoch + 1, **(logs or {}))
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **(logs or {}))
        except KeyError as exc:
            raise KeyError(f"ModelCheckpoint: failed to format filepath {self.filepath!r}: the key "
                           f"{exc} is not in the logs {sorted(logs or {})}") from None

    def _save(self, epoch, batch, logs):
        logs = logs or {}
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            if self._direction is None:
                self._direction = monitor_direction(self.model, self.monitor, self.mode, "ModelCheckpoint")
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.",
                              stacklevel=2)
                return
            better = self.best is None or (current < self.best if self._direction == "min" else current > self.best)
            if not better:
                if self.verbose > 0:
                    sys.stdout.write(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from "
                                     f"{self.best:.5f}\n")
                return
            if self.verbose > 0:
                prev = "inf" if self.best is None else f"{self.best:.5f}"
                sys.stdout.write(f"\nEpoch {epoch + 1}: {self.monitor} improved from {prev} to "
                                 f"{current:.5f}, saving model to {path}\n")
            self.best = current
        elif self.verbose > 0:
            sys.stdout.write(f"\nEpoch {epoch + 1}: saving model to {path}\n")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

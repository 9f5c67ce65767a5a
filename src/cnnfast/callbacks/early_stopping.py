"""EarlyStopping: stop training when a monitored value stops improving (Keras 3 semantics)."""
from __future__ import annotations

import sys
import warnings

from .callback import Callback

__all__ = ["EarlyStopping", "monitor_direction"]


def monitor_direction(model, monitor: str, mode: str, who: str) -> str:
    """'min' or 'max' for ``monitor``: from ``mode``; else loss -> min; else the direction of the
    model's metric of that name; else by name (accuracies up, losses and errors down)."""
    if mode in ("min", "max"):
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name == "loss":
        return "min"
    for m in getattr(model, "metrics", []) or []:
        if m.name == name and getattr(m, "_direction", None) in ("up", "down"):
            return "max" if m._direction == "up" else "min"
    if "acc" in name or name.startswith("fmeasure"):  # Keras ModelCheckpoint's rule
        return "max"
    if any(k in name for k in ("loss", "error", "crossentropy", "mse", "mae")):
        return "min"
    raise ValueError(f"{who} received monitor={monitor!r} but cnnfast cannot determine whether that "
                     "metric should be maximized or minimized. Pass mode='max' to use the highest "
                     "value, or mode='min' to use the lowest.")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``baseline``: training stops unless the value beats it within ``patience`` epochs.
    ``restore_best_weights``: at the end, restore the weights of the best epoch.
    ``start_from_epoch``: epochs to wait before monitoring starts.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"EarlyStopping mode {mode!r} is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self._direction = None
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self._direction == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_epoch_end(self, epoch, logs=None):
        if self._direction is None:
            self._direction = monitor_direction(self.model, self.monitor, self.mode, "EarlyStopping")
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs or {})}", stacklevel=2)
            return
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            sys.stdout.write(f"Epoch {self.stopped_epoch + 1}: early stopping\n")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                sys.stdout.write("Restoring model weights from the end of the best epoch: "
                                 f"{self.best_epoch + 1}.\n")
            self.model.set_weights(self.best_weights)

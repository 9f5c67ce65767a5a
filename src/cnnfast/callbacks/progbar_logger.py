"""ProgbarLogger: the per-epoch progress bar of ``fit``/``evaluate``/``predict``.

``Epoch i/N`` (only when ``epochs > 1``), then the bar with the running mean of every log, keys
sorted, validation values added at the end of the epoch. Redrawn in place on a terminal or in
Jupyter; otherwise one line per epoch (see ``cnnfast.utils.progbar``). ``verbose=2`` prints the
one-line form ``750/750 - 5s - 6ms/step - accuracy: ...``.
"""
from __future__ import annotations

import sys

from ..utils.progbar import Progbar
from .callback import Callback

__all__ = ["ProgbarLogger"]


class ProgbarLogger(Callback):
    def __init__(self):
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1)
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset()

    def on_predict_begin(self, logs=None):
        self._reset()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()
        if self.verbose and self.epochs > 1:
            sys.stdout.write(f"Epoch {epoch + 1}/{self.epochs}\n")
            sys.stdout.flush()

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize(logs)

    def on_predict_end(self, logs=None):
        self._finalize(logs)

    def _reset(self):
        self.seen = 0
        self.progbar = None

    def _ensure(self):
        if self.progbar is None:
            self.progbar = Progbar(self.target, verbose=self.verbose, stateful_metrics="all", unit_name="step")

    def _update(self, batch, logs):
        self._ensure()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finalize(self, logs):
        self._ensure()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.seen
        self.progbar.update(self.target, list((logs or {}).items()), finalize=True)

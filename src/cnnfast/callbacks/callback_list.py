"""CallbackList: the callbacks of one fit/evaluate/predict, called in order (Keras call order).

It adds ``History`` and the progress bar as Keras does, so it sits above them and above
``Callback``. Batch hooks are called only on callbacks that override them, so the per-step cost
of History and the progress bar is a couple of method calls.
"""
from __future__ import annotations

from .callback import Callback
from .history import History
from .progbar_logger import ProgbarLogger

__all__ = ["CallbackList"]


def _overrides(cb, *names):
    """Does ``cb`` (its class or the instance itself, as LambdaCallback) define one of the hooks?"""
    for n in names:
        attr = getattr(cb, n, None)
        if getattr(attr, "__func__", attr) is not getattr(Callback, n):
            return True
    return False


class CallbackList:
    """A list of callbacks called in order; adds History and the progress bar like Keras."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be cnnfast.callbacks.Callback instances, got {cb!r}")
        self.history = next((c for c in callbacks if isinstance(c, History)), None)
        if add_history and self.history is None:
            self.history = History()
            callbacks.append(self.history)
        if add_progbar and not any(isinstance(c, ProgbarLogger) for c in callbacks):
            callbacks.insert(0, ProgbarLogger())
        self.callbacks = callbacks
        self._batch_hooks = {
            kind: [c for c in callbacks if _overrides(c, f"on_{kind}_batch_begin", f"on_{kind}_batch_end",
                                                       *(("on_batch_begin", "on_batch_end") if kind == "train" else ()))]
            for kind in ("train", "test", "predict")}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        self.params = params
        for cb in self.callbacks:
            cb.set_params(params)

    def _call(self, method, *args):
        for cb in self.callbacks:
            getattr(cb, method)(*args)

    def _call_batch(self, kind, method, batch, logs):
        for cb in self._batch_hooks[kind]:
            getattr(cb, method)(batch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call_batch("train", "on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch("train", "on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call_batch("test", "on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch("test", "on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call_batch("predict", "on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch("predict", "on_predict_batch_end", batch, logs)

    def __iter__(self):
        return iter(self.callbacks)

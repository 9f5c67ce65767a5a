"""Callback: the base class of every callback, with the Keras hooks.

Hooks: ``on_{train,test,predict}_{begin,end}``, ``on_epoch_{begin,end}`` and
``on_{train,test,predict}_batch_{begin,end}`` (``on_batch_*`` are aliases of the train ones).
``self.model`` and ``self.params`` (``verbose``, ``epochs``, ``steps``) are set before training.
The callbacks of a run are called, in order, by ``CallbackList`` (``callback_list.py``).
"""
from __future__ import annotations

__all__ = ["Callback"]


class Callback:
    def __init__(self):
        self.model = None
        self.params = {}
        self.validation_data = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_batch_begin(self, batch, logs=None):
        """Alias of on_train_batch_begin (Keras compatibility)."""

    def on_batch_end(self, batch, logs=None):
        """Alias of on_train_batch_end (Keras compatibility)."""

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

"""fit / evaluate / predict driven by a subclass's own ``train_step`` / ``test_step`` / ``predict_step``.

Keras 3's contract ("Customizing what happens in fit()"): ``fit`` calls ``self.train_step(data)``
once per batch, ``evaluate`` (and fit's validation) ``self.test_step(data)``, ``predict``
``self.predict_step(data)``. ``data`` is what Keras's ``pack_x_y_sample_weight`` makes of the batch:
``(x, y)``, ``(x, y, sample_weight)``, or ``x`` alone when there are no targets (a tuple ``(x,)``
when ``x`` is a list of inputs). ``x`` is the float32 batch (a list for several inputs), ``y`` and
``sample_weight`` the batch of what the user passed (``class_weight`` arrives as
``sample_weight``). The step returns a dict of logs; values are turned into floats and nested dicts
flattened, as Keras does, and the keys are sorted. Epochs, shuffling, batch sizes, callbacks,
``validation_*`` and ``stop_training`` follow the built-in loop (``training.py``), whose shared helpers (``loop_common.py``) this
module reuses. Random layers see the optimizer's iteration count as their step, as in the built-in
``fit``. The built-in path is untouched when no step is overridden (``Trainer`` checks that once
per call of fit / evaluate / predict).
"""
from __future__ import annotations

import math

import numpy as np

from ..callbacks import CallbackList
from ..layers import base as _base
from . import data_adapters as _adapters
from . import loop_common as _loop

__all__ = ["fit", "evaluate", "predict", "pack"]


def pack(x, y=None, sample_weight=None):
    """Keras's ``pack_x_y_sample_weight``."""
    if y is None:
        return (x,) if isinstance(x, (list, tuple)) else x
    if sample_weight is None:
        return (x, y)
    return (x, y, sample_weight)


def _x_struct(xs):
    return xs[0] if len(xs) == 1 else list(xs)


def pythonify_logs(logs, where):
    """Logs as Keras hands them to callbacks: nested dicts flattened, scalars as floats, sorted."""
    if logs is None:
        return {}
    if not isinstance(logs, dict):
        raise TypeError(f"{where} must return a dict of logs (e.g. {{'loss': ...}}), got "
                        f"{type(logs).__name__}")
    out = {}
    for key, value in sorted(logs.items()):
        if isinstance(value, dict):
            out.update(pythonify_logs(value, where))
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            pass
        out[key] = value
    return dict(sorted(out.items()))


def flatten_in_order(model, logs):
    """Keras's ``_flatten_metrics_in_order``: the values of ``model.metrics`` first, then the other
    keys in sorted order; one value alone is returned as is."""
    names = [m.name for m in model.metrics]
    results = [logs[n] for n in names if n in logs]
    results += [logs[k] for k in sorted(logs) if k not in names]
    return results[0] if len(results) == 1 else results


def _check_compiled(model, where):
    if not model.compiled:
        raise RuntimeError(f"You must call compile() before using the model ({where}).")


def _prepare_for(model, y_shape):
    """Metrics built from the targets' shape (``"accuracy"`` needs it), and, with a compiled loss,
    the flat weight layout, so that ``optimizer.apply`` takes its one-fused-update path."""
    if model._loss_obj is not None:
        model._prepare(y_shape)
    elif model._compiled_metrics is None:
        model._build_metrics(y_shape, model._pred_shape(None))


def _run_step(model, fn, data, where):
    _base.set_rng_step(model.optimizer.iterations if model.optimizer is not None else None)
    try:
        logs = fn(data)
    finally:
        _base.set_rng_step(None)
    return pythonify_logs(logs, where)


# -- arrays -------------------------------------------------------------------------------------------
class _Arrays:
    """Inputs, targets and weights of array data, standardised once."""

    def __init__(self, model, x, y, sample_weight, where):
        self.xs = model._standardize_x(x)
        self.n = self.xs[0].shape[0]
        self.y = None if y is None else model._check_y(y, self.n, "y")
        self.sw = model._standardize_weights(sample_weight, self.n)

    def split(self, validation_split):
        n = self.n
        cut = int(n * (1.0 - validation_split))
        if cut == 0 or cut == n:
            raise ValueError(f"fit: validation_split={validation_split} leaves an empty training or "
                             f"validation set with {n} samples")
        val = _Arrays.__new__(_Arrays)
        val.xs, val.n = [a[cut:] for a in self.xs], n - cut
        val.y = None if self.y is None else self.y[cut:]
        val.sw = None if self.sw is None else self.sw[cut:]
        self.xs, self.n = [a[:cut] for a in self.xs], cut
        self.y = None if self.y is None else self.y[:cut]
        self.sw = None if self.sw is None else self.sw[:cut]
        return val

    def batch(self, idx):
        take = (lambda a: a[idx]) if isinstance(idx, slice) else (lambda a: np.take(a, idx, axis=0))
        return pack(_x_struct([take(a) for a in self.xs]), None if self.y is None else take(self.y),
                    None if self.sw is None else take(self.sw))


def _test_arrays(model, data, batch_size, cbs, steps):
    model.reset_metrics()
    total = math.ceil(data.n / batch_size)
    steps = total if steps is None else min(steps, total)
    cbs.on_test_begin()
    logs = {}
    for step in range(steps):
        cbs.on_test_batch_begin(step)
        sl = slice(step * batch_size, min((step + 1) * batch_size, data.n))
        logs = _run_step(model, model.test_step, data.batch(sl), "test_step")
        cbs.on_test_batch_end(step, logs)
    cbs.on_test_end(logs)
    return logs


# -- data sets ----------------------------------------------------------------------------------------
def _source_batch(model, batch, where, class_weight=None):
    """One batch of a data set as a step receives it (x standardised to float32)."""
    x, y, sw = _adapters.unpack_batch(batch, where)
    xs = model._standardize_x(x, "batch x")
    n = xs[0].shape[0]
    if n == 0:
        raise ValueError(f"{where}: a batch has no samples (x shape {xs[0].shape})")
    if class_weight is not None:
        if sw is not None:
            raise ValueError(f"{where}: class_weight and a batch's sample_weight cannot both be given")
        sw = model._class_weights(class_weight, model._check_y(y, n, "batch y"), n)
    return pack(_x_struct(xs), y, sw), (None if y is None else np.shape(y))


def _test_source(model, source, cbs, steps, where):
    model.reset_metrics()
    cbs.on_test_begin()
    logs, ready = {}, False
    with source.epoch(steps, restart=True) as batches:
        for step, batch in batches:
            cbs.on_test_batch_begin(step)
            data, y_shape = _source_batch(model, batch, where)
            if not ready:
                _prepare_for(model, y_shape)
                ready = True
            logs = _run_step(model, model.test_step, data, "test_step")
            cbs.on_test_batch_end(step, logs)
    cbs.on_test_end(logs)
    return logs


# -- fit ----------------------------------------------------------------------------------------------
def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
        class_weight, sample_weight, initial_epoch, steps_per_epoch, validation_steps,
        validation_batch_size, validation_freq):
    """``Model.fit`` with the model's ``train_step`` (and ``test_step`` for validation)."""
    _check_compiled(model, "fit")
    ci = _loop._check_int
    batch_size = 32 if batch_size is None else ci(batch_size, "fit: batch_size", 1)
    epochs = ci(epochs, "fit: epochs", 0)
    initial_epoch = ci(initial_epoch, "fit: initial_epoch", 0)
    steps_per_epoch = ci(steps_per_epoch, "fit: steps_per_epoch", 1, allow_none=True)
    validation_steps = ci(validation_steps, "fit: validation_steps", 1, allow_none=True)
    validation_freq = ci(validation_freq, "fit: validation_freq", 1)
    verbose = _loop._check_verbose(verbose, "fit")
    if shuffle not in (True, False, "batch"):
        raise ValueError(f"fit: shuffle must be True, False or 'batch', got {shuffle!r}")
    if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"fit: validation_split must be a float in [0, 1), got {validation_split!r}")
    if class_weight is not None and sample_weight is not None:
        raise ValueError("fit: class_weight and sample_weight cannot both be given")
    val_bs = validation_batch_size or batch_size

    validate = None
    if validation_data is not None:
        if isinstance(validation_data, (list, tuple)):
            if len(validation_data) not in (2, 3):
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 "sample_weight_val)")
            val = _Arrays(model, validation_data[0], validation_data[1],
                          validation_data[2] if len(validation_data) == 3 else None, "validation_data")
            validate = lambda cbs: _test_arrays(model, val, val_bs, cbs, validation_steps)
        else:
            val_source = _adapters.batch_source(validation_data, "fit", "validation_data")

            def validate(cbs):
                if not val_source.has_more():
                    val_source.warn_ran_out()
                    return {}
                return _test_source(model, val_source, cbs, validation_steps, "fit: validation_data")

    source = _adapters.batch_source(x, "fit", "x", shuffle)
    if source is not None:
        model._check_source_args(source, "fit", y, sample_weight, class_weight)
        if validation_split and validation_data is None:
            raise ValueError(f"fit: validation_split is only supported for NumPy arrays; x is a "
                             f"{source.kind} ({type(x).__name__}). Pass validation_data instead")
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                           verbose=verbose, epochs=epochs, steps=steps_per_epoch or source.num_batches)
        ready = []

        def run_epoch(cbs):
            logs = {}
            with source.epoch(steps_per_epoch) as batches:
                for step, batch in batches:
                    cbs.on_train_batch_begin(step)
                    data, y_shape = _source_batch(model, batch, "fit", class_weight)
                    if not ready:
                        _prepare_for(model, y_shape)
                        ready.append(True)
                    logs = _run_step(model, model.train_step, data, "train_step")
                    cbs.on_train_batch_end(step, logs)
                    if model.stop_training:
                        break
            return logs

        def has_more():
            if source.has_more():
                return True
            source.warn_ran_out()
            return False

        return model._run_epochs(cbs, epochs, initial_epoch, run_epoch, validate, validation_freq, has_more)

    data = _Arrays(model, x, y, sample_weight, "fit")
    if validation_data is None and validation_split:
        val = data.split(validation_split)
        validate = lambda cbs: _test_arrays(model, val, val_bs, cbs, validation_steps)
    if data.n == 0:
        raise ValueError(f"fit: x has no samples (shape {data.xs[0].shape})")
    if class_weight is not None:
        if data.y is None:
            raise ValueError("fit: class_weight needs y (the class of each sample)")
        data.sw = model._class_weights(class_weight, data.y, data.n)
    _prepare_for(model, None if data.y is None else data.y.shape)
    batches = _loop._Batches(data.n, batch_size, shuffle, steps_per_epoch)
    cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                       verbose=verbose, epochs=epochs, steps=batches.steps)

    def run_epoch(cbs):
        logs = {}
        for step, idx in batches.epoch():
            cbs.on_train_batch_begin(step)
            logs = _run_step(model, model.train_step, data.batch(idx), "train_step")
            cbs.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        return logs

    return model._run_epochs(cbs, epochs, initial_epoch, run_epoch, validate, validation_freq)


# -- evaluate / predict -----------------------------------------------------------------------------------
def evaluate(model, x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict):
    """``Model.evaluate`` with the model's ``test_step``."""
    _check_compiled(model, "evaluate")
    batch_size = 32 if batch_size is None else _loop._check_int(batch_size, "evaluate: batch_size", 1)
    steps = _loop._check_int(steps, "evaluate: steps", 1, allow_none=True)
    verbose = _loop._check_verbose(verbose, "evaluate")
    source = _adapters.batch_source(x, "evaluate")
    if source is not None:
        model._check_source_args(source, "evaluate", y, sample_weight)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
                           steps=steps or source.num_batches)
        logs = _test_source(model, source, cbs, steps, "evaluate")
    else:
        data = _Arrays(model, x, y, sample_weight, "evaluate")
        if data.n == 0:
            raise ValueError(f"evaluate: x has no samples (shape {data.xs[0].shape})")
        _prepare_for(model, None if data.y is None else data.y.shape)
        total = math.ceil(data.n / batch_size)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
                           steps=total if steps is None else min(steps, total))
        logs = _test_arrays(model, data, batch_size, cbs, steps)
    return dict(logs) if return_dict else flatten_in_order(model, logs)


def _concatenate(parts, where):
    """Batch outputs of ``predict_step`` (arrays, or lists / tuples / dicts of them) joined on axis 0."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concatenate([p[k] for p in parts], where) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concatenate([p[i] for p in parts], where) for i in range(len(first)))
    try:
        return np.concatenate([np.asarray(p) for p in parts], axis=0)
    except ValueError as exc:
        raise ValueError(f"{where}: the outputs of predict_step cannot be joined along the batch axis: "
                         f"{exc}") from None


def on_batch(model, step, x, y, sample_weight, class_weight, return_dict):
    """``train_on_batch`` / ``test_on_batch`` with the model's ``train_step`` / ``test_step``."""
    where = "train_on_batch" if step == "train_step" else "test_on_batch"
    _check_compiled(model, where)
    data = _Arrays(model, x, y, sample_weight, where)
    if class_weight is not None:
        if sample_weight is not None:
            raise ValueError(f"{where}: class_weight and sample_weight cannot both be given")
        if data.y is None:
            raise ValueError(f"{where}: class_weight needs y (the class of each sample)")
        data.sw = model._class_weights(class_weight, data.y, data.n)
    _prepare_for(model, None if data.y is None else data.y.shape)
    logs = _run_step(model, getattr(model, step), data.batch(slice(None)), step)
    return dict(logs) if return_dict else flatten_in_order(model, logs)


def predict(model, x, batch_size, verbose, steps, callbacks, whole_batch=False):
    """``Model.predict`` with the model's ``predict_step``: the batch outputs concatenated
    (``whole_batch``: ``predict_on_batch``, all of ``x`` in one step)."""
    if whole_batch:
        batch_size = max(1, model._standardize_x(x)[0].shape[0])
    batch_size = 32 if batch_size is None else _loop._check_int(batch_size, "predict: batch_size", 1)
    steps = _loop._check_int(steps, "predict: steps", 1, allow_none=True)
    verbose = _loop._check_verbose(verbose, "predict")
    source = _adapters.batch_source(x, "predict")
    if source is None:
        xs = model._standardize_x(x)
        n = xs[0].shape[0]
        total = math.ceil(n / batch_size)
        steps = total if steps is None else min(steps, total)
        batches = ((s, pack(_x_struct([a[s * batch_size:(s + 1) * batch_size] for a in xs])))
                   for s in range(steps))
        count = steps
    else:
        count = steps or source.num_batches
    cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=1,
                       steps=count)
    parts = []
    cbs.on_predict_begin()

    def run(batches):
        for step, data in batches:
            cbs.on_predict_batch_begin(step)
            out = model.predict_step(data)
            parts.append(out)
            cbs.on_predict_batch_end(step, {"outputs": out})

    if source is None:
        run(batches)
    else:
        with source.epoch(steps, restart=True) as items:
            run((step, pack(_x_struct(model._standardize_x(_adapters.unpack_batch(b, "predict")[0],
                                                           "batch x"))))
                for step, b in items)
    cbs.on_predict_end()
    if not parts:
        raise ValueError("predict: no batches to predict on")
    return _concatenate(parts, "predict")

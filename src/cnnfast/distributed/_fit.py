"""Data-parallel ``fit`` and ``evaluate``: Keras arguments, global batch size, exact global metrics.

How a run goes (every rank executes the same code with the same arguments):

1. One handshake checks that every rank has the same arguments and the same data (sizes, shapes
   and a checksum of a few rows: each rank must hold the whole data set, it reads only its own
   samples), and rank 0's seed (drawn from NumPy's global RNG unless ``seed=`` is given) is
   broadcast.
2. Each epoch, each rank computes its :class:`~cnnfast.distributed.ShardPlan` (a pure function of
   seed and epoch), gathers only its own samples, and runs the model's own ``fit`` for that one
   epoch with its local batch size and ``shuffle=False``. Everything per step happens inside that
   ``fit``, through its public extension points: the optimizer (temporarily made a
   ``DistributedOptimizer``) sums the weighted gradients of all ranks in one all-reduce before the
   update, and a callback (``_Bridge``) sets each step's gradient weight, reduces the metrics and
   forwards the hooks to the user's callbacks with global logs.
3. Before the first step, rank 0's weights and optimizer state are broadcast.
4. After every step, one small all-reduce sums the metric states (every metric's ``variables``:
   running totals and counts, or the confusion matrix of the IoU metrics, summed as Keras's
   distribution strategies do) plus a stop flag: the progress bar, the History and callbacks
   such as EarlyStopping see the exact global values, and every rank stops at the same step. At
   the end of an epoch the non-trainable weights (BatchNormalization moving statistics) are
   averaged, validation metrics are reduced the same way, and a checksum of the weights is
   compared across ranks (a mismatch is repaired by a broadcast from rank 0, with a warning).

Only rank 0 shows the progress bar and runs ``ModelCheckpoint``, ``CSVLogger`` and callbacks
marked with ``root_only``. An exception on any rank ends every rank (``MPI_Abort``) with that
rank's traceback, unless ``init(abort_on_error=False)`` was used.

Random layers (Dropout) get a different seed on each rank for the duration of ``fit`` (rank 0
keeps its own), so the ranks draw independent masks for their parts of a global batch.

A callback that sets ``model.stop_training`` in a batch hook takes effect one step later on every
rank (the request travels with the next step's metric reduction); at the end of an epoch it takes
effect at once.
"""
from __future__ import annotations

import math
import numbers
import warnings
import zlib

import numpy as np

from ..callbacks import Callback, CallbackList
from ..layers.base import note_weights_written
from ..models.loop_common import _check_int, _check_verbose
from . import _comm
from ._callbacks import is_root_only
from ._optimizer import _temporarily_distributed
from ._sharding import shard_plan, split_evenly
from ._weights import average_non_trainable_weights, broadcast_weights, weights_checksum

__all__ = ["fit", "evaluate"]


# -- argument checks: Model.fit's own (same wording) ------------------------------------------
def _check_model(model, where):
    if not getattr(model, "compiled", False):
        raise RuntimeError(f"You must call compile() before using the model ({where}).")


class _Inputs:
    """The model input(s) as a list of arrays, and how to rebuild the user's structure."""

    def __init__(self, x, where, what="x"):
        if x is None:
            raise ValueError(f"{where}: {what} is required")
        if isinstance(x, dict):
            self.keys = list(x)
            self.arrays = [np.asarray(x[k]) for k in self.keys]
        elif isinstance(x, (list, tuple)) and x and all(isinstance(a, np.ndarray) for a in x):
            self.keys = len(x)
            self.arrays = list(x)
        else:
            self.keys = None
            self.arrays = [np.asarray(x)]
        for a in self.arrays:
            if a.ndim == 0:
                raise ValueError(f"{where}: {what} needs a batch axis, got a 0-D array")
        ns = {a.shape[0] for a in self.arrays}
        if len(ns) > 1:
            raise ValueError(f"{where}: all inputs must have the same number of samples, got "
                             f"{[a.shape[0] for a in self.arrays]}")
        self.n = self.arrays[0].shape[0]

    def rebuild(self, arrays):
        if self.keys is None:
            return arrays[0]
        if isinstance(self.keys, int):
            return list(arrays)
        return dict(zip(self.keys, arrays))

    def take(self, idx):
        return self.rebuild([_take(a, idx) for a in self.arrays])

    def shapes(self):
        return [a.shape for a in self.arrays]


def _take(a, idx):
    if a is None:
        return None
    if isinstance(idx, slice):
        return a[idx]
    return np.take(a, idx, axis=0)


def _check_y(y, n, where, what="y"):
    if y is None:
        raise ValueError(f"{where}: {what} is required to train or evaluate")
    arr = np.asarray(y)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise ValueError(f"{where}: {what} has {arr.shape[0] if arr.ndim else 0} samples but x has {n}; "
                         "they must match")
    return arr


def _check_weights(sample_weight, n, where, what="sample_weight"):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise ValueError(f"{where}: {what} must have shape ({n},) (one weight per sample), got {w.shape}")
    return w


_DATA_NOTE = ("every rank must pass the whole data set (or a memory map of it), not its own part: each rank "
              "reads only its share of every global batch")


def _fingerprint(arrays) -> int:
    """CRC-32 of up to 8 rows spread over each array (and of their dtypes and shapes): equal on
    ranks that hold the same data, without reading all of it."""
    crc = 0
    for a in arrays:
        if a is None:
            continue
        crc = zlib.crc32(f"{a.dtype.str}{a.shape}".encode(), crc)
        n = a.shape[0]
        for r in sorted({int(i) for i in np.linspace(0, n - 1, num=min(n, 8))}):
            crc = zlib.crc32(np.ascontiguousarray(a[r]).tobytes(), crc)
    return crc


def _handshake(group, where, data=None, **facts):
    """Every rank must call with equal ``facts`` (and ``data`` fingerprints): a clear error on
    every rank instead of a hang or silently different training otherwise."""
    every = group.allgather_obj((facts, data))
    for key in facts:
        values = [d[key] for d, _ in every]
        if any(v != values[0] for v in values):
            detail = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise ValueError(f"{where}: every rank must pass the same {key} ({detail})"
                             + (f"; {_DATA_NOTE}" if key.endswith(("samples", "shapes", "shape")) else ""))
    differ = [r for r, (_, d) in enumerate(every) if d != every[0][1]]
    if differ:
        raise ValueError(f"{where}: the data on rank(s) {differ} differ from rank 0's; {_DATA_NOTE}")


class _rank_rng_streams:
    """Give random layers (Dropout) a different seed on every rank for a ``with`` block, so the
    ranks draw independent masks for their parts of a batch (rank 0 keeps its seeds)."""

    def __init__(self, model, rank):
        self.layers, self.rank, self.saved = [], rank, []
        stack = list(getattr(model, "layers", []))
        while stack:
            layer = stack.pop()
            stack.extend(getattr(layer, "layers", []))
            if getattr(layer, "_uses_rng", False) and isinstance(getattr(layer, "seed", None), int):
                self.layers.append(layer)

    def __enter__(self):
        self.saved = [layer.seed for layer in self.layers]
        if self.rank:
            for layer in self.layers:
                layer.seed = (layer.seed ^ (self.rank * 0x2545F491)) & 0x7FFFFFFF
        return self

    def __exit__(self, *exc):
        for layer, seed in zip(self.layers, self.saved):
            layer.seed = seed


# -- metric states -----------------------------------------------------------------------------
# The state of all metrics travels as one flat float64 vector: each metric's ``variables`` (whatever
# their number and shapes) raveled one after the other, in ``model.metrics`` order. States add up,
# so the all-reduced vector is the state of the metrics over every rank's samples.
def _metric_states(metrics, zero=False):
    """The flat state vector of ``metrics`` (all zeros with ``zero``: a rank without samples)."""
    parts = [np.ravel(np.asarray(v, np.float64)) for m in metrics for v in m.variables]
    if not parts:
        return np.zeros(0, np.float64)
    out = np.concatenate(parts)
    if zero:
        out[...] = 0.0
    return out


def _split_states(metrics, states):
    """``states`` (a flat vector from :func:`_metric_states`) cut back into each metric's variables."""
    shapes = [[np.shape(v) for v in m.variables] for m in metrics]
    expected = sum(int(np.prod(shape, dtype=np.int64)) for per_metric in shapes for shape in per_metric)
    if expected != len(states):
        raise ValueError(f"cnnfast.distributed: {len(states)} metric state values for metrics holding "
                         f"{expected}")
    out, at = [], 0
    for per_metric in shapes:
        variables = []
        for shape in per_metric:
            size = int(np.prod(shape, dtype=np.int64))
            variables.append(np.asarray(states[at:at + size], np.float64).reshape(shape))
            at += size
        out.append(variables)
    return out


def _assign_states(metrics, states):
    """Put the flat ``states`` back into the metrics."""
    for m, variables in zip(metrics, _split_states(metrics, states)):
        m.assign_variables(variables)


def _global_results(metrics, states):
    """``{name: result}`` of every metric computed from the summed ``states``; the metrics keep
    their own (local) states."""
    return {m.name: m.stateless_result(variables)
            for m, variables in zip(metrics, _split_states(metrics, states))}


class _Bridge(Callback):
    """The only callback of each per-epoch ``Model.fit``: per-step gradient weights, metric and stop
    reductions, weight synchronisation, and the user's callbacks driven with global logs."""

    def __init__(self, group, outer: CallbackList):
        super().__init__()
        self.group, self.outer = group, outer
        self.plan = None
        self.weights = []
        self.validate = False
        self.val_padded = False
        self.started = False
        self.train_logs = {}
        self.epoch_logs = None
        self._stop_request = False
        self._global_stop = False
        self._saved = None

    def begin_epoch(self, plan, validate, val_padded):
        self.plan, self.validate, self.val_padded = plan, validate, val_padded
        self.weights = plan.weights.tolist()  # per-step gradient weights, computed once per epoch
        self._global_stop = False

    # -- training start ----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if not self.started:  # the first epoch: fit has built the flat buffers and optimizer state
            broadcast_weights(self.model, 0, include_optimizer=True)
            self.started = True
            self.outer.on_train_begin()

    def on_train_end(self, logs=None):
        pass  # once per epoch here; the outer on_train_end is called once, by fit()

    def on_epoch_begin(self, epoch, logs=None):
        self.outer.on_epoch_begin(epoch, logs)

    # -- steps ---------------------------------------------------------------------------------
    def on_train_batch_begin(self, batch, logs=None):
        model, plan = self.model, self.plan
        model.optimizer._dist_grad_weight = self.weights[batch]
        if plan.counts[batch] == 0:  # a padding sample: keep this step out of metrics and statistics
            self._saved = (_metric_states(model.metrics), [v.value.copy() for v in model.non_trainable_weights])
        self.outer.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        model = self.model
        metrics = model.metrics
        if self._saved is not None:
            states, values = self._saved
            _assign_states(metrics, states)
            for v, value in zip(model.non_trainable_weights, values):
                v.value[...] = value
            note_weights_written()
            self._saved = None
        states = _metric_states(metrics)
        buf = np.empty(1 + states.size, np.float64)
        buf[0] = 1.0 if (self._stop_request or model.stop_training) else 0.0
        buf[1:] = states
        self.group.allreduce_sum_(buf)
        self._stop_request = False
        self._global_stop = bool(buf[0] > 0)
        self.train_logs = dict(sorted(_global_results(metrics, buf[1:]).items()))
        if self._global_stop or batch == self.plan.steps - 1:  # the epoch's last step on every rank
            average_non_trainable_weights(model)
        model.stop_training = self._global_stop
        self.outer.on_train_batch_end(batch, dict(self.train_logs))
        self._stop_request = bool(model.stop_training) and not self._global_stop
        model.stop_training = self._global_stop

    # -- validation (local logs; the epoch-end logs are global) ----------------------------------
    def on_test_begin(self, logs=None):
        self.outer.on_test_begin(logs)

    def on_test_batch_begin(self, batch, logs=None):
        self.outer.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self.outer.on_test_batch_end(batch, logs)

    def on_test_end(self, logs=None):
        self.outer.on_test_end(logs)

    # -- epoch end -------------------------------------------------------------------------------
    def on_epoch_end(self, epoch, logs=None):
        model, group = self.model, self.group
        metrics = model.metrics
        states = _metric_states(metrics, zero=self.val_padded) if self.validate else np.zeros(0)
        buf = np.empty(1 + states.size, np.float64)
        buf[0] = 1.0 if (self._stop_request or model.stop_training) else 0.0
        buf[1:] = states
        group.allreduce_sum_(buf)
        self._stop_request = False
        epoch_logs = dict(self.train_logs)
        if self.validate:
            val = _global_results(metrics, buf[1:])
            epoch_logs.update({"val_" + k: v for k, v in sorted(val.items())})
        model.stop_training = bool(buf[0] > 0)
        self.outer.on_epoch_end(epoch, epoch_logs)
        self.epoch_logs = epoch_logs
        # the callbacks' decisions and the weights must agree on every rank
        every = group.allgather_obj((bool(model.stop_training), weights_checksum(model)))
        model.stop_training = any(stop for stop, _ in every)
        if len({crc for _, crc in every}) > 1:
            warnings.warn(f"cnnfast.distributed.fit: the ranks' weights differ after epoch {epoch + 1} "
                          "(the MPI library's reductions are not bitwise reproducible across ranks?); "
                          "copying rank 0's weights to every rank", RuntimeWarning, stacklevel=2)
            broadcast_weights(model, 0, include_optimizer=True)


def fit(model, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
        validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
        sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
        validation_batch_size=None, validation_freq=1, *, seed=None):
    """Train ``model`` data-parallel over every rank of the group; returns a ``History``.

    Call it on every rank with the same arguments (each rank holds the whole data set, or a
    memory map of it: only its own samples are read). The arguments are ``Model.fit``'s, with
    Keras's distribution semantics for the sizes:

    * ``batch_size`` is the *global* batch size (default 32): each step trains on
      ``batch_size`` samples in total, ``batch_size / size()`` per rank, and takes the same
      optimizer step a single process would take on that batch (the learning rate is not
      changed: scale it yourself, see the README).
    * ``validation_split`` takes the last fraction of the samples before shuffling, as Keras;
      ``validation_data``, ``validation_steps`` and ``validation_batch_size`` are global too,
      and the validation set is split across ranks.
    * ``shuffle`` (True, False or ``"batch"``) draws the epoch's order from ``(seed, epoch)``;
      ``seed`` defaults to a number drawn from NumPy's global RNG on rank 0, so
      ``cnnfast.utils.set_random_seed`` makes a run reproducible.
    * ``steps_per_epoch`` runs the first steps of each epoch's order (at most one pass).

    Logs (progress bar, History, callbacks) are exact global values: the metrics' states
    (``Metric.variables``: running totals and counts, confusion matrices) are summed over ranks
    after every step. Only rank 0 prints and runs
    ``ModelCheckpoint``/``CSVLogger`` (and callbacks marked ``root_only``); every other callback
    runs on every rank with the same logs, so decisions such as early stopping agree.
    """
    where = "cnnfast.distributed.fit"
    group = _comm.communicator()
    _check_model(model, where)
    batch_size = 32 if batch_size is None else _check_int(batch_size, f"{where}: batch_size", 1)
    epochs = _check_int(epochs, f"{where}: epochs", 0)
    initial_epoch = _check_int(initial_epoch, f"{where}: initial_epoch", 0)
    steps_per_epoch = _check_int(steps_per_epoch, f"{where}: steps_per_epoch", 1, allow_none=True)
    validation_steps = _check_int(validation_steps, f"{where}: validation_steps", 1, allow_none=True)
    validation_freq = _check_int(validation_freq, f"{where}: validation_freq", 1)
    val_batch = (batch_size if validation_batch_size is None
                 else _check_int(validation_batch_size, f"{where}: validation_batch_size", 1))
    verbose = _check_verbose(verbose, where)
    if shuffle not in (True, False, "batch"):
        raise ValueError(f"{where}: shuffle must be True, False or 'batch', got {shuffle!r}")
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) \
            or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"{where}: validation_split must be a float in [0, 1), got {validation_split!r}")
    if class_weight is not None and sample_weight is not None:
        raise ValueError(f"{where}: class_weight and sample_weight cannot both be given")
    if batch_size < group.size:
        raise ValueError(f"{where}: batch_size is the global batch size and must be at least the number "
                         f"of processes ({group.size}), got {batch_size}")
    if seed is not None:
        seed = _check_int(seed, f"{where}: seed", 0)

    inputs = _Inputs(x, where)
    n = inputs.n
    y_arr = _check_y(y, n, where)
    sw = _check_weights(sample_weight, n, where)
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
            raise ValueError(f"{where}: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             f"sample_weight_val), got {type(validation_data).__name__}")
        v_in = _Inputs(validation_data[0], where, "validation_data x")
        v_y = _check_y(validation_data[1], v_in.n, where, "validation_data y")
        v_w = _check_weights(validation_data[2] if len(validation_data) == 3 else None, v_in.n, where,
                             "validation sample_weight")
        if v_in.n == 0:
            raise ValueError(f"{where}: validation_data has no samples")
        val = (v_in, v_y, v_w)
    elif validation_split:
        split = int(n * (1.0 - validation_split))
        if split == 0 or split == n:
            raise ValueError(f"{where}: validation_split={validation_split} leaves an empty training or "
                             f"validation set with {n} samples")
        v_in = _Inputs(inputs.rebuild([a[split:] for a in inputs.arrays]), where)
        val = (v_in, y_arr[split:], None if sw is None else sw[split:])
        inputs = _Inputs(inputs.rebuild([a[:split] for a in inputs.arrays]), where)
        y_arr, sw = y_arr[:split], None if sw is None else sw[:split]
        n = split
    if n == 0:
        raise ValueError(f"{where}: x has no samples (shape {inputs.arrays[0].shape})")
    steps = steps_per_epoch or math.ceil(n / batch_size)
    if steps > math.ceil(n / batch_size):
        raise ValueError(f"{where}: steps_per_epoch={steps} is more than one pass over {n} samples in "
                         f"global batches of {batch_size} ({math.ceil(n / batch_size)} steps); use more epochs")

    if seed is None:
        seed = int(np.random.randint(0, 2**31 - 1)) if group.rank == 0 else None
        seed = group.bcast_obj(seed, 0)
    arrays = inputs.arrays + [y_arr, sw] + ([] if val is None else val[0].arrays + [val[1], val[2]])
    _handshake(group, where, data=_fingerprint(arrays), samples=n, input_shapes=inputs.shapes(),
               y_shape=y_arr.shape, validation_samples=None if val is None else val[0].n, batch_size=batch_size,
               epochs=epochs, initial_epoch=initial_epoch, steps=steps, shuffle=shuffle, seed=seed,
               sample_weight=sw is not None, validation_freq=validation_freq)

    if not model.built and len(inputs.arrays) == 1:
        model.build((None,) + inputs.arrays[0].shape[1:])

    # validation: rank r evaluates a contiguous part of the (first validation_steps batches of the) set
    val_local = None
    val_padded = False
    if val is not None:
        v_in, v_y, v_w = val
        used = v_in.n if validation_steps is None else min(v_in.n, validation_steps * val_batch)
        start, count = split_evenly(used, group.rank, group.size)
        val_padded = count == 0
        sl = slice(0, 1) if val_padded else slice(start, start + count)
        val_local = (v_in.take(sl), v_y[sl]) + (() if v_w is None else (v_w[sl],))
    val_local_bs = max(1, math.ceil(val_batch / group.size))

    user = [] if callbacks is None else ([callbacks] if isinstance(callbacks, Callback) else list(callbacks))
    root = group.rank == 0
    if not root:
        user = [cb for cb in user if not is_root_only(cb)]
    outer = CallbackList(user, add_history=True, add_progbar=root and verbose != 0, model=model,
                         verbose=verbose, epochs=epochs, steps=steps)
    bridge = _Bridge(group, outer)
    model.stop_training = False

    with _temporarily_distributed(model.optimizer), _rank_rng_streams(model, group.rank):
        try:
            if initial_epoch >= epochs:
                broadcast_weights(model, 0, include_optimizer=False)
                outer.on_train_begin()
            for epoch in range(initial_epoch, epochs):
                plan = shard_plan(n, batch_size, rank=group.rank, size=group.size, epoch=epoch, seed=seed,
                                  shuffle=shuffle, steps=steps_per_epoch)
                validate = val is not None and (epoch + 1) % validation_freq == 0
                bridge.begin_epoch(plan, validate, val_padded)
                model.fit(inputs.take(plan.indices), np.take(y_arr, plan.indices, axis=0),
                          batch_size=plan.batch_size, epochs=epoch + 1, initial_epoch=epoch, verbose=0,
                          callbacks=[bridge], validation_data=val_local if validate else None,
                          shuffle=False, class_weight=class_weight,
                          sample_weight=_take(sw, plan.indices), validation_batch_size=val_local_bs)
                if model.stop_training:
                    break
            outer.on_train_end(bridge.epoch_logs)
        except BaseException as exc:
            if _comm.abort_on_error_enabled():
                _comm.abort(exc, " in cnnfast.distributed.fit")
            raise
    model.history = outer.history
    return outer.history


def evaluate(model, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
             callbacks=None, return_dict=False):
    """``Model.evaluate`` with the samples split across ranks: every rank gets the same exact
    global loss and metrics (summed metric states). ``batch_size`` and ``steps`` are
    global; only rank 0 prints."""
    where = "cnnfast.distributed.evaluate"
    group = _comm.communicator()
    _check_model(model, where)
    batch_size = 32 if batch_size is None else _check_int(batch_size, f"{where}: batch_size", 1)
    steps = _check_int(steps, f"{where}: steps", 1, allow_none=True)
    verbose = _check_verbose(verbose, where)
    inputs = _Inputs(x, where)
    n = inputs.n
    if n == 0:
        raise ValueError(f"{where}: x has no samples (shape {inputs.arrays[0].shape})")
    y_arr = _check_y(y, n, where)
    sw = _check_weights(sample_weight, n, where)
    _handshake(group, where, data=_fingerprint(inputs.arrays + [y_arr, sw]), samples=n,
               input_shapes=inputs.shapes(), batch_size=batch_size, steps=steps)
    used = n if steps is None else min(n, steps * batch_size)
    start, count = split_evenly(used, group.rank, group.size)
    sl = slice(0, 1) if count == 0 else slice(start, start + count)
    user = [] if callbacks is None else ([callbacks] if isinstance(callbacks, Callback) else list(callbacks))
    if group.rank != 0:
        user = [cb for cb in user if not is_root_only(cb)]
    progbar = None
    if verbose and group.rank == 0:
        from ..utils.progbar import Progbar
        total_steps = math.ceil(used / batch_size)
        progbar = Progbar(total_steps, verbose=verbose, stateful_metrics="all")
    try:
        model.evaluate(inputs.take(sl), y_arr[sl], batch_size=max(1, math.ceil(batch_size / group.size)),
                       verbose=0, sample_weight=_take(sw, sl), callbacks=user, return_dict=True)
        metrics = model.metrics
        states = _metric_states(metrics, zero=count == 0)
        group.allreduce_sum_(states)
        logs = _global_results(metrics, states)
    except BaseException as exc:
        if _comm.abort_on_error_enabled():
            _comm.abort(exc, " in cnnfast.distributed.evaluate")
        raise
    if progbar is not None:
        progbar.update(progbar.target, sorted(logs.items()), finalize=True)
    if return_dict:
        return dict(sorted(logs.items()))
    values = [logs[name] for name in model.metrics_names]
    return values[0] if len(values) == 1 else values

"""compile / fit / evaluate / predict with Keras 3 arguments, defaults and data semantics.

Data: NumPy arrays (one per model input; a list or a dict by input name for several inputs), or a
data set of batches -- a ``cnnfast.utils.PyDataset``, a generator, any other iterable -- read one
batch at a time (data_adapters.py holds their epoch rules and the PyDataset's background loading;
each batch is checked and converted as arrays are). For arrays, inputs are converted once to C-contiguous float32 and targets once to what the loss needs
(int32 class indices for the sparse crossentropy), with clear errors for wrong shapes. Batches are
gathered into reused buffers (``np.take(..., out=)``), or are plain views when not shuffling.

Keras semantics kept: ``batch_size`` None -> 32; the last partial batch is kept
(``ceil(N / batch_size)`` steps); ``validation_split`` takes the *last* fraction of the samples,
before shuffling; each epoch shuffles with ``np.random.permutation`` from NumPy's global RNG (so
``cnnfast.utils.set_random_seed`` fixes it); ``shuffle="batch"`` shuffles within each batch; logs
are running means over the epoch, keys sorted, validation keys prefixed ``val_``; the loss log is
the batch-size-weighted mean of the batch losses.

One training step: forward through the plan (buffers reused), loss and its gradient (fused
softmax-crossentropy when the last layer is a softmax), backward (weight gradients land in the
model's single flat gradient buffer), one fused optimizer update over the flat parameter buffer,
metric updates on the batch.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _kernels
from .. import activations as _activations
from .. import losses as _losses
from .. import metrics as _metrics
from .. import optimizers as _optimizers
from .. import regularizers as _regularizers
from ..callbacks import CallbackList
from ..layers import base as _base
from ..layers.base import format_shape as _fmt
from ..ops import _conv as _conv_ops
from ..ops._checks import as_float
from . import data_adapters as _adapters
from .loop_common import _Batches, _check_int, _check_verbose  # noqa: F401  (custom_steps reads them too)
from . import gradients as _gradients
from . import inference as _inference
from . import persistence as _persistence

__all__ = ["Trainer", "check_compatible"]


def check_compatible(model, expected, got):
    """Raise a clear error if an input of shape ``got`` cannot feed a model input ``expected``."""
    if len(expected) != len(got) or any(e is not None and g is not None and e != g
                                        for e, g in zip(expected[1:], got[1:])):
        hint = ""
        if len(got) == len(expected) - 1 and expected[-1] == 1 and tuple(got[1:]) == tuple(expected[1:-1]):
            hint = " (add the channel axis, e.g. x[..., None])"
        raise ValueError(f"Input of model '{model.name}' is incompatible with the model: expected shape="
                         f"{_fmt(expected)}, found shape={_fmt(got)}{hint}")


def _as_typed_input(model, x, tensor, what):
    """``x`` for a model input of dtype int32/int64 or string (``tensor``), with Keras's rank
    adjustment (a trailing axis of 1 added or dropped to match the input's rank)."""
    if tensor.dtype == "string":
        arr = _base.as_string_array(x, f"Model '{model.name}'", f"{what} (input '{tensor.name}' has dtype string)")
    else:
        arr = np.asarray(x)
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.trunc(arr)):
                raise ValueError(f"Model '{model.name}': {what} feeds the {tensor.dtype} input "
                                 f"'{tensor.name}' but holds non-integer values")
        elif arr.dtype.kind not in "iub":
            raise TypeError(f"Model '{model.name}': {what} feeds the {tensor.dtype} input '{tensor.name}' "
                            f"and must be an integer array, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=tensor.dtype)
    ref = tensor.shape
    if arr.ndim == len(ref) + 1 and arr.shape[-1] == 1:
        arr = arr.reshape(arr.shape[:-1])
    elif arr.ndim == len(ref) - 1 and ref[-1] == 1:
        arr = arr.reshape(arr.shape + (1,))
    check_compatible(model, ref, (None,) + arr.shape[1:] if arr.ndim else ())
    return arr


def _symbolic(inputs) -> bool:
    """True when ``inputs`` holds symbolic tensors (a functional graph is being built)."""
    flat = inputs.values() if isinstance(inputs, dict) else \
        inputs if isinstance(inputs, (list, tuple)) else (inputs,)
    return any(isinstance(t, _base.KerasTensor) for t in flat)


def _metric_specs(metrics):
    if metrics is None:
        return []
    if isinstance(metrics, dict):
        metrics = [m for v in metrics.values() for m in (v if isinstance(v, (list, tuple)) else [v])]
    elif not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    specs = []
    for m in metrics:
        if m is None:
            continue
        if isinstance(m, str) and m.lower() in ("accuracy", "acc"):
            specs.append(m)
        else:
            _metrics.get(m)  # unknown names raise here, at compile time
            specs.append(m)
    return specs


class _TrainState:
    """What a training step needs, computed once per fit (or when weights/flags change)."""

    __slots__ = ("key", "tvars", "params", "grads", "offsets", "loss_fn", "prob_fn", "fused")


def _loss_weight(loss_weights) -> float:
    """The single output's loss weight from compile's ``loss_weights`` (a number, or a one-entry
    list/tuple/dict); refused unless finite, since Inf or NaN would make every step NaN."""
    if loss_weights is None:
        return 1.0
    w = loss_weights
    if isinstance(w, dict):
        w = list(w.values())
    if isinstance(w, (list, tuple)):
        if len(w) != 1:
            raise ValueError(f"compile: loss_weights has {len(w)} entries but the model has one output")
        w = w[0]
    if isinstance(w, (bool, np.bool_)):
        raise TypeError(f"compile: loss_weights must be a number, got {w!r}")
    return as_float(w, "compile", "loss_weights")


class Trainer:
    """Training API mixed into Model (Keras's ``Trainer``)."""

    def __init__(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._loss_obj = None
        self._loss_weight = 1.0
        self._metric_specs = []
        self._weighted_metric_specs = []
        self._compiled_metrics = None  # (metrics, weighted_metrics) once built
        self._loss_tracker = _metrics.Mean(name="loss")
        self._train_state = None
        self._take_bufs = {}
        self._compile_args = None

    def _invalidate_training(self):
        self._train_state = None

    # -- compile ----------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto",
                auto_scale_loss=True):
        """Configure training: optimizer, loss and metrics, by name or object (Keras signature)."""
        loss_weight = _loss_weight(loss_weights)
        self.optimizer = _optimizers.get(optimizer)
        self._loss_obj = None if loss is None else _losses.get(loss)
        self.loss = loss
        self._loss_weight = loss_weight
        self._metric_specs = _metric_specs(metrics)
        self._weighted_metric_specs = _metric_specs(weighted_metrics)
        self._compiled_metrics = None
        self._loss_tracker = _metrics.Mean(name="loss")
        self.compiled = True
        self._train_state = None
        self._compile_args = dict(optimizer=optimizer, loss=loss, loss_weights=loss_weights,
                                  metrics=metrics, weighted_metrics=weighted_metrics)
        if not any(isinstance(s, str) and s.lower() in ("accuracy", "acc") for s in
                   self._metric_specs + self._weighted_metric_specs):
            self._build_metrics(None, None)

    def _build_metrics(self, y_shape, pred_shape):
        names = {}

        def make(spec, weighted):
            if isinstance(spec, str) and spec.lower() in ("accuracy", "acc"):
                m = _metrics.resolve_accuracy(spec, y_shape, pred_shape)
            else:
                m = _metrics.get(spec)
                if isinstance(spec, str):
                    m.name = spec
            name = m.name
            if name in names:
                if weighted:
                    name = f"weighted_{m.name}"
                if name in names:
                    names[name] += 1
                    name = f"{name}_{names[name] - 1}"
            names.setdefault(name, 1)
            m.name = name
            return m

        names["loss"] = 1
        plain = [make(s, False) for s in self._metric_specs]
        weighted = [make(s, True) for s in self._weighted_metric_specs]
        self._compiled_metrics = (plain, weighted)

    @property
    def metrics(self):
        """The loss tracker, the compiled metrics (built at compile or on first use), then, as
        Keras tracks them, the metrics assigned as attributes of the model (``self.tracker = Mean()``)."""
        if not self.compiled or self._compiled_metrics is None:
            own = [self._loss_tracker] if self.compiled else []
        else:
            plain, weighted = self._compiled_metrics
            own = [self._loss_tracker] + plain + weighted
        tracked = self.__dict__.get("_tracked_metrics")
        return own + list(tracked.values()) if tracked else own

    def __setattr__(self, name, value):
        # Keras tracks the metrics assigned to a model's attributes (they join ``metrics``, so each
        # epoch resets them); noting them here keeps ``metrics`` (read at every batch) a lookup.
        tracked = self.__dict__.get("_tracked_metrics")
        if isinstance(value, _metrics.Metric) and name != "_loss_tracker":
            if tracked is None:
                tracked = self.__dict__["_tracked_metrics"] = {}
            tracked[name] = value
        elif tracked and name in tracked:
            del tracked[name]
        super().__setattr__(name, value)

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    def reset_metrics(self):
        for m in self.metrics:
            m.reset_state()

    def get_compile_config(self):
        return self._compile_args

    # -- data -------------------------------------------------------------------------------------
    def _ensure_built_for(self, x):
        """Sequential models without an input shape are built from the first data they see."""
        if not self.built:
            first = x
            if isinstance(x, dict):
                first = next(iter(x.values()))
            elif isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
                first = x[0]
            arr = np.asarray(first)
            if arr.ndim < 1:
                raise ValueError(f"Model '{self.name}': inputs need a batch axis, got shape {arr.shape}")
            self.build((None,) + arr.shape[1:])

    def _standardize_x(self, x, what="x"):
        if x is None:
            raise ValueError(f"Model '{self.name}': {what} is required")
        self._ensure_built_for(x)
        k = len(self._inputs)
        if isinstance(x, dict):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise ValueError(f"Model '{self.name}': {what} is missing inputs {missing}; expected keys "
                                 f"{self.input_names}")
            arrays = [x[n] for n in self.input_names]
        elif k > 1:
            if not isinstance(x, (list, tuple)) or len(x) != k:
                raise ValueError(f"Model '{self.name}' has {k} inputs {self.input_names}: pass {what} as a "
                                 f"list of {k} arrays or a dict by input name")
            arrays = list(x)
        else:
            if isinstance(x, (list, tuple)) and len(x) == 1 and np.ndim(x[0]) == len(self._inputs[0].shape):
                x = x[0]
            arrays = [x]
        out = []
        for a, t in zip(arrays, self._inputs):
            if t.dtype != "float32":
                out.append(_as_typed_input(self, a, t, what))
                continue
            arr = np.asarray(a)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"Model '{self.name}': {what} must be a numeric array, got dtype {arr.dtype}")
            check_compatible(self, t.shape, (None,) + arr.shape[1:] if arr.ndim else ())
            out.append(arr if arr.dtype == np.float32 and arr.flags.c_contiguous
                       else np.ascontiguousarray(arr, dtype=np.float32))
        n = {a.shape[0] for a in out}
        if len(n) > 1:
            raise ValueError(f"Model '{self.name}': all inputs must have the same number of samples, got "
                             f"{[a.shape[0] for a in out]}")
        return out

    def _pred_shape(self, n):
        shape = self._outputs[0].shape
        return (n,) + tuple(shape[1:])

    def _check_y(self, y, n, what="y"):
        """``y`` as an array with ``n`` samples, or a clear error."""
        if y is None:
            raise ValueError(f"Model '{self.name}': {what} is required to train or evaluate (targets "
                             f"for the loss '{self._loss_obj.name}')")
        arr = np.asarray(y)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"Model '{self.name}': {what} has {arr.shape[0] if arr.ndim else 0} samples "
                             f"but x has {n}; they must match")
        return arr

    def _standardize_y(self, y, n, what="y"):
        arr = self._check_y(y, n, what)
        shape = self._pred_shape(n)
        if any(s is None for s in shape):
            raise ValueError(f"Model '{self.name}': the output shape {shape} must be fully defined to train")
        return self._loss_obj.prepare_targets(arr, shape, what)

    @staticmethod
    def _standardize_weights(sample_weight, n, what="sample_weight"):
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "fiub":
            raise TypeError(f"{what} must be numeric, got dtype {w.dtype}")
        if w.ndim == 2 and w.shape[1] == 1:
            w = w[:, 0]
        # (n,) weighs samples; (n, h, w) and the like weigh each element of the loss (per-pixel
        # weights for segmentation, as Keras), checked against the loss values' shape there.
        if w.ndim == 0 or w.shape[0] != n:
            raise ValueError(f"{what} must have shape ({n},) (one weight per sample) or ({n}, ...) "
                             f"(one per element of the loss), got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{what} contains NaN or Inf")
        return np.ascontiguousarray(w, dtype=np.float32)

    def _class_weights(self, class_weight, y, n):
        if not isinstance(class_weight, dict):
            raise TypeError(f"class_weight must be a dict {{class index: weight}}, got {class_weight!r}")
        if y.ndim == 2 and y.shape[1] > 1:
            labels = np.argmax(y, axis=1)
        elif y.ndim <= 2:
            labels = y.reshape(n)
        else:
            # Label maps (segmentation): each element weighed by its class (Keras refuses these).
            # Targets with the output's rank are one-hot (read by argmax) or end in a size-1 axis.
            full_rank = y.ndim == len(self._pred_shape(n))
            labels = y if not full_rank else y[..., 0] if y.shape[-1] == 1 else np.argmax(y, axis=-1)
        w = np.ones(labels.shape, np.float32)
        for cls, weight in class_weight.items():
            w[labels == int(cls)] = float(weight)
        return w

    def _take(self, arr, idx, key):
        if isinstance(idx, slice):
            return arr[idx]
        shape = (len(idx),) + arr.shape[1:]
        buf = self._take_bufs.get((key, shape, arr.dtype.str))
        if buf is None:
            buf = self._take_bufs[(key, shape, arr.dtype.str)] = np.empty(shape, arr.dtype)
        return np.take(arr, idx, axis=0, out=buf, mode="clip")

    # -- training state -----------------------------------------------------------------------------
    def _assert_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"You must call compile() before using the model ({where}).")
        if self._loss_obj is None:
            raise ValueError(f"{where}: the model was compiled without a loss; pass loss= to compile()")
        # an unbuilt Sequential (built by its first data) has one output
        if self.built and len(self._outputs) != 1:
            raise NotImplementedError(f"{where}: cnnfast trains models with a single output; model "
                                      f"'{self.name}' has {len(self._outputs)}")

    def _prepare(self, y_shape):
        """Flatten the weights, build optimizer state and metrics, choose the loss path."""
        if self._compiled_metrics is None:
            self._build_metrics(y_shape, self._pred_shape(None))
        st = self._train_state
        tvars = self.trainable_weights
        key = (tuple(map(id, tvars)), id(self._loss_obj), id(self.optimizer))
        if st is not None and st.key == key and all(v.value.base is st.params for v in tvars):
            return st
        st = _TrainState()
        st.key, st.tvars = key, tvars
        total = sum(v.size for v in tvars)
        st.params = np.empty(total, np.float32)
        st.grads = np.zeros(total, np.float32)
        offsets, off = [], 0
        for v in tvars:
            n = v.size
            st.params[off:off + n] = v.value.reshape(-1)
            v.value = st.params[off:off + n].reshape(v.value.shape)
            v.grad = st.grads[off:off + n].reshape(v.value.shape)
            offsets.append(off)
            off += n
        st.offsets = np.asarray(offsets, np.intp)
        # Optimizer state belongs to one layout of the flat buffer: a different set of trainable
        # weights (or size) starts it afresh, as recompiling does in Keras. The first layout after
        # loading a file keeps the restored state.
        slots = self.optimizer._state.get("flat")
        previous = getattr(self, "_flat_key", None)
        if slots is not None and ((previous is not None and previous != key[0])
                                  or any(a.size != total for a in slots.values())):
            self.optimizer.reset()
        self._flat_key = key[0]
        self.optimizer.build(total)

        loss = self._loss_obj
        last = self._plan[-1][0] if self._plan and self._plan[-1][2] == self._output_slots[0] else None
        act = last._output_activation() if last is not None and hasattr(last, "_output_activation") else None
        from_logits = getattr(loss, "from_logits", False)
        st.fused = act is not None and act == loss._fusable_activation and not from_logits
        for mode in ("train", "test"):
            ctxs = self._contexts(mode)
            if ctxs:
                ctxs[-1]["logits"] = st.fused
        if st.fused or (loss._fusable_activation and from_logits):
            st.loss_fn = loss.value_and_grad_from_logits
        else:
            st.loss_fn = loss.value_and_grad
        st.prob_fn = None
        if st.fused:
            plain, weighted = self._compiled_metrics
            if not all(m._argmax_invariant for m in plain + weighted) or act == "sigmoid":
                st.prob_fn = _activations.get(act)
        self._train_state = st
        return st

    # -- steps ----------------------------------------------------------------------------------------
    def _step_loss(self, st, xs, y, sw, training):
        ctxs = self._contexts("train" if training else "test")
        with _base.collect_layer_losses() as layer_losses:
            out = self._run_forward(xs, training, ctxs)[0]
        loss, dy = st.loss_fn(y, out, sw)
        if self._loss_weight != 1.0:
            loss *= self._loss_weight
            dy *= np.float32(self._loss_weight)
        # losses added by layers (ActivityRegularization) count in full, as in Keras; their
        # gradients are added by those layers' backward passes. So do the penalties of the
        # regularised trainable weights, whose gradients _forward_backward adds.
        return ctxs, out, loss + layer_losses.total + _regularizers.weights_penalty(st.tvars), dy

    def _update_metrics(self, st, y, out, sw, loss, n):
        self._loss_tracker.total += loss * n
        self._loss_tracker.count += n
        plain, weighted = self._compiled_metrics
        if plain or weighted:
            pred = st.prob_fn(out) if st.prob_fn is not None else out
            for m in plain:
                m.update_state(y, pred)
            for m in weighted:
                m.update_state(y, pred, sw)

    def _logs(self):
        logs = {m.name: m.result() for m in self.metrics}
        return dict(sorted(logs.items()))

    def _forward_backward(self, st, xs, y, sw):
        """Forward, loss, backward: leaves this step's gradients in the flat gradient buffer."""
        gen = _base.new_grad_generation()
        _base.set_rng_step(self.optimizer.iterations)
        try:
            ctxs, out, loss, dy = self._step_loss(st, xs, y, sw, True)
            self._run_backward([dy], ctxs)
        finally:
            _base.set_rng_step(None)
        for v in st.tvars:
            if v._grad_generation != gen:  # no gradient reached it this step
                v.grad.fill(0)
        _regularizers.add_penalty_gradients(st.tvars)
        return out, loss

    def _train_step(self, st, xs, y, sw):
        out, loss = self._forward_backward(st, xs, y, sw)
        if st.params.size:
            self.optimizer.apply_flat(st.params, st.grads, st.offsets)
            self.optimizer.apply_constraints(st.tvars)   # Keras projects after each update
        else:
            self.optimizer.iterations += 1
        self._update_metrics(st, y, out, sw, loss, xs[0].shape[0])

    def _gradients(self, x, y, sample_weight=None):
        """(loss, gradients of ``trainable_weights``) on one batch in training mode, without
        updating the weights (metrics untouched; moving statistics do update)."""
        self._assert_compiled("gradients")
        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        y_raw = self._check_y(y, n)
        st = self._prepare(y_raw.shape)
        _, loss = self._forward_backward(st, xs, self._standardize_y(y_raw, n),
                                         self._standardize_weights(sample_weight, n))
        return loss, [v.grad.copy() for v in st.tvars]

    def _test_step(self, st, xs, y, sw):
        _, out, loss, _ = self._step_loss(st, xs, y, sw, False)
        self._update_metrics(st, y, out, sw, loss, xs[0].shape[0])

    # -- fit ------------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, distributed=False):
        """Train for ``epochs`` epochs on arrays; returns a ``History`` (Keras signature).

        ``distributed=True`` trains data-parallel on every process started by ``mpirun``
        (:func:`cnnfast.distributed.fit`: ``batch_size`` is then the global batch size)."""
        if distributed and (self._custom_step("train_step") or self._custom_step("test_step")):
            raise NotImplementedError(f"fit(distributed=True): model '{self.name}' overrides train_step or "
                                      "test_step; the distributed loop runs the built-in step only")
        if distributed:
            for what, data in (("x", x), ("validation_data", validation_data)):
                if _adapters.is_batch_source(data):
                    raise TypeError(f"fit(distributed=True): {what} must be NumPy arrays (the samples are "
                                    f"sharded over the processes); got a data set of type "
                                    f"{type(data).__name__}. Use fit(distributed=False) for data sets")
            from .. import distributed as _distributed
            return _distributed.fit(
                self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
                validation_split=validation_split, validation_data=validation_data, shuffle=shuffle,
                class_weight=class_weight, sample_weight=sample_weight, initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                validation_batch_size=validation_batch_size, validation_freq=validation_freq)
        if self._custom_step("train_step") or (self._custom_step("test_step") and
                                               (validation_data is not None or validation_split)):
            from . import custom_steps
            return custom_steps.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                    validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                                    steps_per_epoch, validation_steps, validation_batch_size,
                                    validation_freq)
        self._assert_compiled("fit")
        batch_size = 32 if batch_size is None else _check_int(batch_size, "fit: batch_size", 1)
        epochs = _check_int(epochs, "fit: epochs", 0)
        initial_epoch = _check_int(initial_epoch, "fit: initial_epoch", 0)
        steps_per_epoch = _check_int(steps_per_epoch, "fit: steps_per_epoch", 1, allow_none=True)
        validation_steps = _check_int(validation_steps, "fit: validation_steps", 1, allow_none=True)
        validation_freq = _check_int(validation_freq, "fit: validation_freq", 1)
        verbose = _check_verbose(verbose, "fit")
        if shuffle not in (True, False, "batch"):
            raise ValueError(f"fit: shuffle must be True, False or 'batch', got {shuffle!r}")
        if not isinstance(validation_split, (int, float)) or not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be a float in [0, 1), got {validation_split!r}")
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: class_weight and sample_weight cannot both be given")

        source = _adapters.batch_source(x, "fit", "x", shuffle)
        val_source = None
        if validation_data is not None and not isinstance(validation_data, (list, tuple)):
            val_source = _adapters.batch_source(validation_data, "fit", "validation_data")
        if source is not None:
            self._check_source_args(source, "fit", y, sample_weight, class_weight)
            if validation_split and validation_data is None:
                raise ValueError(f"fit: validation_split is only supported for NumPy arrays; x is a "
                                 f"{source.kind} ({type(x).__name__}). Pass validation_data instead")
            validate = None
            if val_source is not None:
                validate = self._source_validation(val_source, validation_steps)
            elif validation_data is not None:
                val = self._standardize_validation(validation_data)
                val_bs = validation_batch_size or batch_size
                validate = lambda cbs: self._test_loop(self._prepare(val[1].shape), val[0], val[1], val[2],
                                                       val_bs, cbs, validation_steps)
            return self._fit_source(source, epochs, verbose, callbacks, validate, validation_freq,
                                    initial_epoch, steps_per_epoch, class_weight)

        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        y_arr = self._check_y(y, n)
        sw = self._standardize_weights(sample_weight, n)
        val = None
        if validation_data is not None:
            if val_source is None:
                val = self._standardize_validation(validation_data)
        elif validation_split:
            split = int(n * (1.0 - validation_split))
            if split == 0 or split == n:
                raise ValueError(f"fit: validation_split={validation_split} leaves an empty training or "
                                 f"validation set with {n} samples")
            val = ([a[split:] for a in xs], self._standardize_y(y_arr[split:], n - split, "y"),
                   None if sw is None else sw[split:])
            xs, y_arr = [a[:split] for a in xs], y_arr[:split]
            sw = None if sw is None else sw[:split]
            n = split
        if n == 0:
            raise ValueError(f"fit: x has no samples (shape {xs[0].shape})")
        y_t = self._standardize_y(y_arr, n)
        if class_weight is not None:
            sw = self._class_weights(class_weight, y_arr, n)
        st = self._prepare(y_arr.shape)

        self._take_bufs.clear()
        batches = _Batches(n, batch_size, shuffle, steps_per_epoch)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=batches.steps)

        def run_epoch(cbs):
            logs = {}
            for step, idx in batches.epoch():
                cbs.on_train_batch_begin(step)
                xb = [self._take(a, idx, ("x", i)) for i, a in enumerate(xs)]
                self._train_step(st, xb, self._take(y_t, idx, "y"),
                                 None if sw is None else self._take(sw, idx, "sw"))
                logs = self._logs()
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            return logs

        validate = None
        if val_source is not None:
            validate = self._source_validation(val_source, validation_steps)
        elif val is not None:
            val_bs = validation_batch_size or batch_size
            validate = lambda cbs: self._test_loop(st, val[0], val[1], val[2], val_bs, cbs, validation_steps)
        return self._run_epochs(cbs, epochs, initial_epoch, run_epoch, validate, validation_freq)

    def _run_epochs(self, cbs, epochs, initial_epoch, run_epoch, validate, validation_freq, has_more=None):
        """fit's epoch loop: ``run_epoch(cbs)`` trains one epoch and returns its logs; ``validate(cbs)``
        returns the validation logs; ``has_more()`` False ends training before the next epoch."""
        self.stop_training = False
        self.history = cbs.history
        cbs.on_train_begin()
        epoch_logs = None
        for epoch in range(initial_epoch, epochs):
            if has_more is not None and not has_more():
                break
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            epoch_logs = dict(run_epoch(cbs))
            if validate is not None and (epoch + 1) % validation_freq == 0:
                epoch_logs.update({"val_" + k: v for k, v in validate(cbs).items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(epoch_logs)
        return self.history

    # -- data sets (PyDataset, generators, iterables: see data_adapters.py) ----------------------------
    @staticmethod
    def _check_source_args(source, where, y, sample_weight, class_weight=None):
        """Keras's rules: a data set carries its own targets and weights."""
        for name, value, holds in (("y", y, "the targets"), ("sample_weight", sample_weight,
                                                               "the sample weights")):
            if value is not None:
                raise ValueError(f"{where}: when x is a {source.kind}, {name} must not be passed; "
                                 f"{holds} belong in the batches it yields: (x, y, sample_weight)")
        if class_weight is not None and source.kind != "PyDataset":
            raise ValueError(f"{where}: class_weight is not supported when x is a {source.kind} (as in "
                             "Keras); yield (x, y, sample_weight) batches, or use a PyDataset")

    def _batch_arrays(self, batch, where, class_weight=None):
        """One batch of a data set as the training step takes it: (xs, raw y, loss targets, weights)."""
        x, y, sw = _adapters.unpack_batch(batch, where)
        xs = self._standardize_x(x, "batch x")
        n = xs[0].shape[0]
        if n == 0:
            raise ValueError(f"{where}: a batch has no samples (x shape {xs[0].shape})")
        y_raw = self._check_y(y, n, "batch y")
        y_t = self._standardize_y(y_raw, n, "batch y")
        if class_weight is not None:
            if sw is not None:
                raise ValueError(f"{where}: class_weight and a batch's sample_weight cannot both be given")
            sw = self._class_weights(class_weight, y_raw, n)
        else:
            sw = self._standardize_weights(sw, n, "batch sample_weight")
        return xs, y_raw, y_t, sw

    def _fit_source(self, source, epochs, verbose, callbacks, validate, validation_freq, initial_epoch,
                    steps_per_epoch, class_weight):
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps_per_epoch or source.num_batches)
        state = []  # the training state, made from the first batch (which may build the model)

        def run_epoch(cbs):
            logs = {}
            with source.epoch(steps_per_epoch) as batches:
                for step, batch in batches:
                    cbs.on_train_batch_begin(step)
                    xs, y_raw, y_t, sw = self._batch_arrays(batch, "fit", class_weight)
                    if not state:
                        state.append(self._prepare(y_raw.shape))
                    self._train_step(state[0], xs, y_t, sw)
                    logs = self._logs()
                    cbs.on_train_batch_end(step, logs)
                    if self.stop_training:
                        break
            return logs

        def has_more():
            if source.has_more():
                return True
            source.warn_ran_out()
            return False

        return self._run_epochs(cbs, epochs, initial_epoch, run_epoch, validate, validation_freq, has_more)

    def _source_validation(self, source, steps):
        """fit's validation on a data set: the whole of it (or ``steps`` batches) from its start each
        time; a generator that is used up gives Keras's warning and no ``val_`` logs."""
        def validate(cbs):
            if not source.has_more():
                source.warn_ran_out()
                return {}
            return self._test_source(source, cbs, steps, "fit: validation_data")
        return validate

    def _test_source(self, source, cbs, steps, where):
        self.reset_metrics()
        cbs.on_test_begin()
        logs, st = {}, None
        with source.epoch(steps, restart=True) as batches:
            for step, batch in batches:
                cbs.on_test_batch_begin(step)
                xs, y_raw, y_t, sw = self._batch_arrays(batch, where)
                if st is None:
                    st = self._prepare(y_raw.shape)
                self._test_step(st, xs, y_t, sw)
                logs = self._logs()
                cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def _standardize_validation(self, data):
        if not isinstance(data, (list, tuple)) or len(data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             f"sample_weight_val), got {type(data).__name__}")
        vx = self._standardize_x(data[0], "validation_data x")
        nv = vx[0].shape[0]
        vy = self._standardize_y(data[1], nv, "validation_data y")
        vw = self._standardize_weights(data[2] if len(data) == 3 else None, nv, "validation sample_weight")
        if nv == 0:
            raise ValueError("fit: validation_data has no samples")
        return vx, vy, vw

    def _test_loop(self, st, xs, y, sw, batch_size, cbs, steps=None):
        self.reset_metrics()
        n = xs[0].shape[0]
        total = math.ceil(n / batch_size)
        steps = total if steps is None else min(steps, total)
        cbs.on_test_begin()
        logs = {}
        for step in range(steps):
            sl = slice(step * batch_size, min((step + 1) * batch_size, n))
            cbs.on_test_batch_begin(step)
            self._test_step(st, [a[sl] for a in xs], y[sl], None if sw is None else sw[sl])
            logs = self._logs()
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    # -- evaluate / predict ---------------------------------------------------------------------------
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, distributed=False, **kwargs):
        """Loss and metrics on ``(x, y)``: a float, or ``[loss, *metrics]``, or a dict.
        ``distributed=True`` splits the samples over the processes started by ``mpirun``
        (:func:`cnnfast.distributed.evaluate`)."""
        if kwargs:
            raise TypeError(f"evaluate: unexpected arguments {sorted(kwargs)}")
        if distributed and self._custom_step("test_step"):
            raise NotImplementedError(f"evaluate(distributed=True): model '{self.name}' overrides test_step; "
                                      "the distributed loop runs the built-in step only")
        if distributed:
            if _adapters.is_batch_source(x):
                raise TypeError(f"evaluate(distributed=True): x must be NumPy arrays (the samples are "
                                f"sharded over the processes); got a data set of type {type(x).__name__}")
            from .. import distributed as _distributed
            return _distributed.evaluate(self, x, y, batch_size=batch_size, verbose=verbose,
                                         sample_weight=sample_weight, steps=steps, callbacks=callbacks,
                                         return_dict=return_dict)
        if self._custom_step("test_step"):
            from . import custom_steps
            return custom_steps.evaluate(self, x, y, batch_size, verbose, sample_weight, steps, callbacks,
                                         return_dict)
        self._assert_compiled("evaluate")
        batch_size = 32 if batch_size is None else _check_int(batch_size, "evaluate: batch_size", 1)
        steps = _check_int(steps, "evaluate: steps", 1, allow_none=True)
        verbose = _check_verbose(verbose, "evaluate")
        source = _adapters.batch_source(x, "evaluate")
        if source is not None:
            self._check_source_args(source, "evaluate", y, sample_weight)
            cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                               steps=steps or source.num_batches)
            return self._format_results(self._test_source(source, cbs, steps, "evaluate"), return_dict)
        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        if n == 0:
            raise ValueError(f"evaluate: x has no samples (shape {xs[0].shape})")
        y_raw = self._check_y(y, n)
        y_t = self._standardize_y(y_raw, n)
        sw = self._standardize_weights(sample_weight, n)
        st = self._prepare(y_raw.shape)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                           steps=math.ceil(n / batch_size) if steps is None else min(steps, math.ceil(n / batch_size)))
        logs = self._test_loop(st, xs, y_t, sw, batch_size, cbs, steps)
        return self._format_results(logs, return_dict)

    def _format_results(self, logs, return_dict):
        if return_dict:
            return dict(logs)
        values = [logs[m.name] for m in self.metrics]
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for ``x``, computed in batches (default 32), as float32 arrays."""
        if self._custom_step("predict_step"):
            from . import custom_steps
            return custom_steps.predict(self, x, batch_size, verbose, steps, callbacks)
        batch_size = 32 if batch_size is None else _check_int(batch_size, "predict: batch_size", 1)
        steps = _check_int(steps, "predict: steps", 1, allow_none=True)
        verbose = _check_verbose(verbose, "predict")
        source = _adapters.batch_source(x, "predict")
        if source is not None:
            cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                               steps=steps or source.num_batches)
            return self._predict_source(source, cbs, steps)
        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        total = math.ceil(n / batch_size)
        steps = total if steps is None else min(steps, total)
        n_out = min(n, steps * batch_size)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                           steps=steps)
        ctxs = self._contexts("predict")
        use_plans = len(xs) == 1 and self._plain_float_graph
        results = [np.empty((n_out,) + tuple(t.shape[1:]), _base.numpy_dtype(t.dtype))
                   if None not in t.shape[1:] else None for t in self._outputs]
        cbs.on_predict_begin()
        for step in range(steps):
            sl = slice(step * batch_size, min((step + 1) * batch_size, n))
            cbs.on_predict_batch_begin(step)
            plan = self._inference_plan(xs[0][sl].shape) if use_plans else None
            use_plans = plan is not None
            if plan is not None:
                outs = [_inference.run(plan, xs[0][sl])]
            else:
                outs = self._run_forward([a[sl] for a in xs], False, ctxs)
            for i, o in enumerate(outs):
                if results[i] is None:
                    results[i] = np.empty((n_out,) + o.shape[1:], o.dtype)
                results[i][sl] = o
            cbs.on_predict_batch_end(step, {"outputs": [r[sl] for r in results]})
        cbs.on_predict_end()
        if n == 0:
            results = [np.empty((0,) + tuple(0 if s is None else s for s in t.shape[1:]),
                                _base.numpy_dtype(t.dtype))
                       if r is None else r for r, t in zip(results, self._outputs)]
        return results[0] if len(results) == 1 else results

    def _predict_source(self, source, cbs, steps):
        """predict on a data set: each batch's ``x`` (targets ignored), outputs concatenated."""
        parts = []
        cbs.on_predict_begin()
        with source.epoch(steps, restart=True) as batches:
            for step, batch in batches:
                cbs.on_predict_batch_begin(step)
                x, _, _ = _adapters.unpack_batch(batch, "predict")
                outs = self.predict_on_batch(x)
                outs = outs if isinstance(outs, list) else [outs]
                parts.append(outs)
                cbs.on_predict_batch_end(step, {"outputs": outs})
        cbs.on_predict_end()
        results = [np.concatenate(column, axis=0) for column in zip(*parts)]
        return results[0] if len(results) == 1 else results

    # -- single batches -------------------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimisation step on one batch; returns the (running) loss and metrics."""
        if self._custom_step("train_step"):
            from . import custom_steps
            return custom_steps.on_batch(self, "train_step", x, y, sample_weight, class_weight, return_dict)
        self._assert_compiled("train_on_batch")
        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        y_raw = self._check_y(y, n)
        y_t = self._standardize_y(y_raw, n)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("train_on_batch: class_weight and sample_weight cannot both be given")
        sw = self._standardize_weights(sample_weight, n)
        if class_weight is not None:
            sw = self._class_weights(class_weight, y_raw, n)
        st = self._prepare(y_raw.shape)
        self._train_step(st, xs, y_t, sw)
        return self._format_results(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch (inference mode)."""
        if self._custom_step("test_step"):
            from . import custom_steps
            return custom_steps.on_batch(self, "test_step", x, y, sample_weight, None, return_dict)
        self._assert_compiled("test_on_batch")
        xs = self._standardize_x(x)
        n = xs[0].shape[0]
        y_raw = self._check_y(y, n)
        y_t = self._standardize_y(y_raw, n)
        st = self._prepare(y_raw.shape)
        self._test_step(st, xs, y_t, self._standardize_weights(sample_weight, n))
        return self._format_results(self._logs(), return_dict)

    def _inference_plan(self, shape):
        """The compiled forward pass for inputs of ``shape`` (see models/inference.py), or None.
        Cached per shape, thread count and forced convolution algorithm."""
        key = (shape, _kernels.get_num_threads(), _conv_ops._forced_algo)
        plans = self.__dict__.setdefault("_inference_plans", {})
        if key not in plans:
            if len(plans) >= 16:
                plans.clear()
            # a call fixed to training=True (Monte Carlo dropout) needs the general path
            ok = len(self._inputs) == 1 and len(self._output_slots) == 1 and \
                True not in self._node_training and self._plain_float_graph
            plans[key] = _inference.compile_plan(self._plan, shape, self._output_slots[0]) if ok else None
        return plans[key]

    def predict_on_batch(self, x):
        """Model outputs for one batch."""
        if self._custom_step("predict_step"):
            from . import custom_steps
            return custom_steps.predict(self, x, None, 0, 1, None, whole_batch=True)
        xs = self._standardize_x(x)
        plan = self._inference_plan(xs[0].shape) if len(xs) == 1 else None
        if plan is not None:
            return _inference.run(plan, xs[0]).copy()
        outs = self._run_forward(xs, False, self._contexts("predict"))
        outs = [o.copy() for o in outs]
        return outs[0] if len(outs) == 1 else outs

    # -- custom training loops (Keras 3's overridable steps; see gradients.py, custom_steps.py) ------
    def __call__(self, inputs, training=None, **kwargs):
        tape = _gradients.active_tape()
        if tape is None or kwargs or _symbolic(inputs):
            return super().__call__(inputs, training=training, **kwargs)
        return tape.record_call(self, inputs, training)

    def _custom_step(self, name):
        """True when a subclass overrides the step ``name`` (fit / evaluate / predict then call it)."""
        return getattr(type(self), name) is not getattr(Trainer, name)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Keras 3's ``compute_loss``: the compiled loss of ``y_pred`` against ``y`` (times its
        ``loss_weights``) plus ``self.losses``. Inside a ``GradientTape``, with ``y_pred`` the output
        of a model call recorded there, the returned value is a target of ``tape.gradient``."""
        return _gradients.compute_loss(self, y, y_pred, sample_weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras 3's ``compute_metrics``: update the compiled metrics with the batch (weighted metrics
        with ``sample_weight``) and return :meth:`get_metrics_result`."""
        pred = np.asarray(y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred)
        if self._compiled_metrics is None:
            self._build_metrics(np.shape(y), pred.shape)
        plain, weighted = self._compiled_metrics
        if plain or weighted:
            if self._loss_obj is not None:   # the targets as the loss reads them (built-in fit's rule)
                y = self._loss_obj.prepare_targets(self._check_y(y, pred.shape[0]), pred.shape, "y")
            for m in plain:
                m.update_state(y, pred)
            for m in weighted:
                m.update_state(y, pred, sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self):
        """``{name: result}`` of ``self.metrics`` (a metric returning a dict adds its entries)."""
        out = {}
        for m in self.metrics:
            r = m.result()
            if isinstance(r, dict):
                out.update(r)
            else:
                out[m.name] = r
        return out

    def compute_gradients(self, x, y, sample_weight=None, training=True):
        """``(loss, gradients)`` of one batch, the gradients in ``trainable_variables`` order, without
        updating the weights or the metrics (batch-norm moving statistics do move when training).
        ``training=True`` runs fit's own forward and backward pass (random layers draw the noise
        of step ``optimizer.iterations``), so applying the gradients with ``model.optimizer``
        reproduces ``fit``; ``training=False`` differentiates the inference-mode model."""
        self._assert_compiled("compute_gradients")
        if training:
            return self._gradients(x, y, sample_weight)
        with _gradients.GradientTape() as tape:
            y_pred = self(x, training=False)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        return float(loss), tape.gradient(loss, self.trainable_variables, unconnected_gradients="zero")

    def train_step(self, data):
        """One training step on ``data`` (Keras 3's default, which subclasses override): forward
        in a ``GradientTape``, ``compute_loss``, gradients, ``optimizer.apply``, ``compute_metrics``.
        The built-in ``fit`` does the same in one fused pass and calls this only when overridden."""
        x, y, sample_weight = _adapters.unpack_batch(data, "train_step")
        with _gradients.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        self._loss_tracker.update_state(loss, sample_weight=np.shape(y_pred)[0])
        tvars = self.trainable_weights
        if tvars:
            self.optimizer.apply(tape.gradient(loss, tvars, unconnected_gradients="zero"), tvars)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """One evaluation step on ``data`` (Keras 3's default): forward in inference mode,
        ``compute_loss``, ``compute_metrics``."""
        x, y, sample_weight = _adapters.unpack_batch(data, "test_step")
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        self._loss_tracker.update_state(loss, sample_weight=np.shape(y_pred)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        """The model's outputs for one batch (Keras 3's default)."""
        x, _, _ = _adapters.unpack_batch(data, "predict_step")
        return self(x, training=False)

    # -- summary and saving -----------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print Keras's summary table (layer, output shape, parameter count, totals)."""
        from .summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn,
                      expand_nested=expand_nested, show_trainable=show_trainable, layer_range=layer_range)

    def save(self, filepath, overwrite=True, **kwargs):
        """Save architecture, weights, compile settings and optimizer state to a ``.keras`` zip."""
        _persistence.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights to a ``.weights.npz`` or (Keras 3's layout) ``.weights.h5`` file."""
        _persistence.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, by_name=False):
        """Load weights saved by ``save_weights``, inside a ``.keras`` file, or in one of Keras's
        HDF5 files (``.weights.h5``, legacy ``.h5``; ``by_name`` for the legacy ones)."""
        _persistence.load_weights(self, filepath, skip_mismatch=skip_mismatch, by_name=by_name)
        _base.note_weights_written()

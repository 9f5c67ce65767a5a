"""Gradients for custom training loops: ``GradientTape`` and what ``Model.compute_loss`` records.

cnnfast has no automatic differentiation: every layer has a hand-written backward pass and a
model runs its layers' backward passes in reverse order. A tape therefore records *model calls*
and *losses computed on their outputs*, and ``tape.gradient`` runs those models backward:

    with cnnfast.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(y=y, y_pred=y_pred)
    grads = tape.gradient(loss, model.trainable_variables)
    model.optimizer.apply(grads, model.trainable_variables)

What can be differentiated, exactly:

* calls of cnnfast models (``Sequential``, functional ``Model`` and subclasses of them) on arrays,
  in training or inference mode; the output of one recorded call may be fed *as is* into another
  recorded call (``head(base(x))``), and a model may be called several times (gradients add up);
* followed by ``model.compute_loss(y=..., y_pred=..., sample_weight=...)``: the compiled loss (any
  loss of ``cnnfast.losses``, with its ``loss_weights``), plus, as in Keras, the losses the model's
  layers added in that call (``ActivityRegularization``) and the penalties of its regularised
  trainable weights (``model.losses``). The target of ``tape.gradient`` is the value it returned,
  or a list of such values (the gradient of their sum);
* ``loss_call(loss_obj, y, y_pred, sample_weight)`` is the same recording for a loss object of
  ``cnnfast.losses`` (``loss = loss_fn(y, y_pred)`` in the tape), for ``Loss.__call__`` to hand over
  to when ``y_pred`` is a recorded output;
* sources: trainable variables (``model.trainable_variables``, any subset, in any order) and input
  arrays passed to a recorded call after ``tape.watch(x)`` (input gradients: saliency maps).

What cannot: NumPy arithmetic on model outputs or on losses (``loss * 2``, ``y_pred[:, 0]``,
``np.mean((y - y_pred) ** 2)``) -- the tape cannot see inside NumPy, so ``tape.gradient`` raises
an error saying which value was not recorded and why, instead of returning a wrong gradient.
Single layers are differentiated inside a model (``Sequential([layer])``). Outputs of recorded
calls are :class:`TapedArray` s (plain float32 arrays that know they came from a tape), so an array
*derived* from one by NumPy is recognised and named in that error.

Mechanics: each recorded call runs the model's forward pass with its own fresh per-node contexts
(what the backward needs stays there until the tape is done) and with backward recording on, so a
call in inference mode (``training=False``) can be differentiated too. ``gradient`` starts one
gradient generation (see ``layers/base.py``), runs the calls backward from the last, feeding input
gradients to the calls that produced those inputs, then adds the weight penalties' gradients; the
variables' ``grad`` arrays are copied out. Variables no backward pass reached get ``None`` (as
TensorFlow's tape) or zeros with ``unconnected_gradients="zero"``.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import losses as _losses
from .. import regularizers as _regularizers
from ..layers import base as _base

__all__ = ["GradientTape", "TapedArray", "TapedLoss", "active_tape"]


class _TapeStack(threading.local):
    """The tapes open in this thread, innermost last (a model call is recorded by all of them)."""

    def __init__(self):
        self.tapes = []


_STACK = _TapeStack()


def active_tape():
    """The innermost recording tape of this thread, or None (cheap: called by every model call)."""
    tapes = _STACK.tapes
    return tapes[-1] if tapes and tapes[-1]._recording else None


class TapedArray(np.ndarray):
    """An output of a model call recorded by a :class:`GradientTape`: a float32 array like any other.

    NumPy keeps this type on slices and arithmetic results, which is how the tape tells an array
    *derived* from a recorded output (not differentiable here) from the output itself."""


class TapedLoss(float):
    """A loss value computed inside a tape (``model.compute_loss``): a float, whose identity the
    tape recognises as a target of ``gradient``. Arithmetic on it gives a plain float."""

    __slots__ = ()


class _Call:
    """One recorded model call: what its backward pass needs and where its inputs came from."""

    __slots__ = ("model", "ctxs", "outputs", "producers", "watched", "derived", "raw")

    def __init__(self, model, ctxs, outputs, producers, watched, derived, raw):
        self.model, self.ctxs, self.outputs = model, ctxs, outputs
        self.producers = producers  # per input: (call index, output index) or None
        self.watched = watched      # per input: id of the watched array or None
        self.derived = derived      # per input: True if NumPy-derived from a recorded output
        self.raw = raw              # the objects passed, kept so their ids stay unique


class _Loss:
    """One loss recorded by ``compute_loss``: the seed gradient of a call's output, or why not."""

    __slots__ = ("value", "call", "output", "dy", "penalty_vars", "reason")

    def __init__(self, value, call=None, output=0, dy=None, penalty_vars=(), reason=None):
        self.value, self.call, self.output, self.dy = value, call, output, dy
        self.penalty_vars, self.reason = penalty_vars, reason


def _raw_inputs(model, inputs):
    """The objects of ``inputs`` in the order ``model._standardize_x`` reads them."""
    k = len(model._inputs)
    if isinstance(inputs, dict):
        return [inputs.get(n) for n in model.input_names]
    if k > 1:
        return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1 and \
            np.ndim(inputs[0]) == len(model._inputs[0].shape):
        return [inputs[0]]
    return [inputs]


class GradientTape:
    """Records model calls and losses so that :meth:`gradient` can run them backward (see the
    module docstring for exactly what can be differentiated). Keras/TensorFlow's signature:
    ``persistent=True`` allows several ``gradient`` calls; all trainable variables are watched."""

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = bool(persistent)
        self.watch_accessed_variables = bool(watch_accessed_variables)
        self._recording = False
        self._used = False
        self._watched = {}    # id -> array given to watch()
        self.reset()

    # -- context ----------------------------------------------------------------------------------
    def __enter__(self):
        if self._recording:
            raise RuntimeError("GradientTape: this tape is already recording (it cannot be entered twice)")
        self._recording = True
        _STACK.tapes.append(self)
        return self

    def __exit__(self, *exc):
        self._recording = False
        if self in _STACK.tapes:
            _STACK.tapes.remove(self)
        return False

    def reset(self):
        """Forget everything recorded so far (TensorFlow's ``reset``)."""
        self._calls = []      # list of _Call, in call order
        self._producers = {}  # id(output array) -> (call index, output index)
        self._losses = {}     # id(TapedLoss) -> _Loss

    def watch(self, tensor):
        """Ask for gradients with respect to ``tensor``: an input array (or a list of them) to be
        passed to a recorded model call afterwards. Trainable variables are always watched."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            if isinstance(t, _base.Variable):
                continue
            if not isinstance(t, np.ndarray):
                raise TypeError(f"GradientTape.watch: expected a NumPy array (a model input) or a "
                                f"Variable, got {type(t).__name__}")
            self._watched[id(t)] = t

    # -- recording (called by Model.__call__ and Model.compute_loss) ------------------------------
    def record_call(self, model, inputs, training):
        """Run ``model`` forward on ``inputs`` keeping its backward state; returns its outputs as
        :class:`TapedArray` s (one array, or a list for several outputs)."""
        xs = model._standardize_x(inputs, "inputs")
        raw = _raw_inputs(model, inputs)
        producers, watched, derived = [], [], []
        for r in raw:
            producers.append(self._producers.get(id(r)))
            watched.append(id(r) if id(r) in self._watched else None)
            derived.append(isinstance(r, TapedArray) and producers[-1] is None)
        ctxs = [{"node_index": i} for i in range(len(model._plan))]
        with _base.record_for_backward(True), _base.collect_layer_losses():
            outs = model._run_forward(xs, bool(training), ctxs)
        outputs = [np.asarray(o).view(TapedArray) for o in outs]
        index = len(self._calls)
        self._calls.append(_Call(model, ctxs, outputs, producers, watched, derived, raw))
        for j, o in enumerate(outputs):
            self._producers[id(o)] = (index, j)
        return outputs[0] if len(outputs) == 1 else outputs

    def record_loss(self, value, y_pred, dy, penalty_vars):
        """Register the loss ``value`` whose gradient with respect to ``y_pred`` is ``dy``, and
        return it as a :class:`TapedLoss`. ``penalty_vars``: variables whose regularisation penalty
        the loss includes (their penalty gradients are added)."""
        loss = TapedLoss(value)
        where = self._producers.get(id(y_pred))
        if where is None:
            if isinstance(y_pred, TapedArray):
                reason = ("its y_pred was computed by NumPy operations from the output of a recorded "
                          "model call (a slice, arithmetic...), which cannot be differentiated; pass "
                          "the model's output itself")
            else:
                reason = (f"its y_pred (a {type(y_pred).__name__}) is not the output of a model call "
                          "made inside this tape")
            record = _Loss(loss, reason=reason)
        else:
            record = _Loss(loss, where[0], where[1], dy, tuple(penalty_vars))
        self._losses[id(loss)] = record
        return loss

    # -- gradients --------------------------------------------------------------------------------
    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """Gradients of ``target`` (a loss from ``model.compute_loss`` in this tape, or a list of
        them: the gradient of their sum) with respect to ``sources`` (variables or watched input
        arrays; one, or a list/tuple/dict of them: the result has the same structure)."""
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a non-persistent "
                               "tape; use GradientTape(persistent=True) to compute several gradients")
        if output_gradients is not None:
            raise NotImplementedError("GradientTape.gradient: output_gradients is not supported (the "
                                      "target is a scalar loss)")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError(f"GradientTape.gradient: unconnected_gradients must be 'none' or 'zero', "
                             f"got {unconnected_gradients!r}")
        records = [self._target_record(t) for t in
                   (target if isinstance(target, (list, tuple)) else [target])]
        flat, rebuild = _flatten_sources(sources)
        grads = self._backward(records, flat, unconnected_gradients == "zero")
        self._used = True
        if not self.persistent:
            self.reset()
        return rebuild(grads)

    def _target_record(self, t):
        record = self._losses.get(id(t)) if isinstance(t, TapedLoss) else None
        if record is None:
            what = f"a {type(t).__name__}" + (f" ({float(t):.6g})" if isinstance(t, (float, np.floating)) else "")
            raise ValueError(
                f"GradientTape.gradient: the target ({what}) is not a loss recorded by this tape. cnnfast "
                "differentiates model calls followed by model.compute_loss(y=..., y_pred=...) inside the "
                "tape, and the target must be the value compute_loss returned (or a list of them); "
                "NumPy arithmetic on outputs or losses cannot be differentiated")
        if record.reason is not None:
            raise ValueError(f"GradientTape.gradient: the loss {float(record.value):.6g} cannot be "
                             f"differentiated: {record.reason}")
        return record

    def _backward(self, records, sources, zero_unconnected):
        calls = self._calls
        # gradient arriving at each output of each call
        pending = [[None] * len(c.outputs) for c in calls]
        for r in records:
            slot = pending[r.call]
            slot[r.output] = r.dy if slot[r.output] is None else slot[r.output] + r.dy
        input_grads = {}
        gen = _base.new_grad_generation()
        for i in range(len(calls) - 1, -1, -1):
            call, dys = calls[i], pending[i]
            if all(d is None for d in dys):
                continue
            if any(call.derived):
                raise ValueError(
                    f"GradientTape.gradient: an input of the call of model '{call.model.name}' was "
                    "computed by NumPy operations from the output of a recorded call; the gradient "
                    "cannot flow through NumPy. Feed the output itself, or do the operation in a layer")
            need_dx = any(p is not None for p in call.producers) or any(w is not None for w in call.watched)
            dxs = call.model._run_backward(dys, call.ctxs, need_dx)
            pending[i] = [None] * len(call.outputs)  # a persistent tape may run again
            if not need_dx:
                continue
            for dx, prod, w in zip(dxs, call.producers, call.watched):
                if dx is None:
                    continue
                if prod is not None:
                    slot = pending[prod[0]]
                    slot[prod[1]] = dx if slot[prod[1]] is None else slot[prod[1]] + dx
                if w is not None:
                    input_grads[w] = dx if w not in input_grads else input_grads[w] + dx
        penalised, seen = [], set()
        for r in records:
            for v in r.penalty_vars:
                if v.regularizer is not None and v.grad is not None and id(v) not in seen:
                    seen.add(id(v))
                    penalised.append(v)
        for v in penalised:
            if v._grad_generation != gen:   # no backward pass wrote it: start from zero
                v.grad.fill(0)
                v._grad_generation = gen
        _regularizers.add_penalty_gradients(penalised)

        out = []
        for s in sources:
            if isinstance(s, _base.Variable):
                reached = s.grad is not None and s._grad_generation == gen
                g = s.grad.copy() if reached else None
                shape = s.shape
            else:
                g = input_grads.get(id(s))
                g = None if g is None else np.array(g, dtype=np.float32)
                shape = np.shape(s)
            if g is None and zero_unconnected:
                g = np.zeros(shape, np.float32)
            out.append(g)
        return out


def _flatten_sources(sources):
    """``sources`` as a flat list, and the function that gives results their structure back."""
    def check(s):
        if not isinstance(s, (_base.Variable, np.ndarray)):
            raise TypeError(f"GradientTape.gradient: sources must be Variables (model.trainable_variables) "
                            f"or watched input arrays, got {type(s).__name__}")
        return s

    if isinstance(sources, dict):
        keys = list(sources)
        return [check(sources[k]) for k in keys], lambda g: dict(zip(keys, g))
    if isinstance(sources, (list, tuple)):
        kind = type(sources) if type(sources) in (list, tuple) else list
        return [check(s) for s in sources], lambda g: kind(g)
    return [check(sources)], lambda g: g[0]


def compute_loss(model, y, y_pred, sample_weight):
    """``Model.compute_loss``: the compiled loss of ``y_pred`` against ``y`` (times its loss weight)
    plus ``model.losses``; inside a tape, a :class:`TapedLoss` the tape can differentiate."""
    loss_obj = model._loss_obj if model.compiled else None
    if loss_obj is None:
        raise ValueError(f"Model '{model.name}': no loss to compute. Provide a `loss` argument in "
                         "`compile()`.")
    if isinstance(y_pred, (list, tuple)):
        if len(y_pred) != 1:
            raise NotImplementedError(f"Model '{model.name}': compute_loss takes a single output; "
                                      f"got {len(y_pred)} predictions")
        y_pred = y_pred[0]
    if not isinstance(y_pred, np.ndarray):
        raise TypeError(f"Model '{model.name}': compute_loss needs y_pred (the model's output array), "
                        f"got {type(y_pred).__name__}")
    pred = np.asarray(y_pred)
    if pred.dtype != np.float32 or not pred.flags.c_contiguous:
        pred = np.ascontiguousarray(pred, dtype=np.float32)
    n = pred.shape[0] if pred.ndim else 0
    y_t = loss_obj.prepare_targets(model._check_y(y, n), pred.shape, "y")
    sw = model._standardize_weights(sample_weight, n)
    value, dy = loss_obj.value_and_grad(y_t, pred, sw)
    weight = model._loss_weight
    if weight != 1.0:
        value *= weight
        dy *= np.float32(weight)
    # Keras adds model.losses: the layers' activity losses of the last call, the weight penalties
    tvars = model.trainable_weights
    value += float(sum(float(v) for v in _regularizers.layer_losses(model)))
    tape = active_tape()
    if tape is None:
        return float(value)
    return tape.record_loss(value, y_pred, dy, tvars)


def loss_call(loss_obj, y_true, y_pred, sample_weight=None):
    """What ``Loss.__call__`` returns inside a tape when ``y_pred`` came from a recorded model call
    (``loss = loss_fn(y, y_pred)`` in the tape): the reduced loss as a :class:`TapedLoss` seeded
    with the loss's own gradient. None when there is nothing to record (no tape, ``y_pred`` not a
    :class:`TapedArray`, or ``reduction="none"``, whose per-sample values are not a scalar target),
    and the call then computes its plain value."""
    tape = active_tape()
    if tape is None or not isinstance(y_pred, TapedArray) or loss_obj.reduction in ("none", None):
        return None
    pred = np.ascontiguousarray(y_pred, dtype=np.float32).view(np.ndarray)
    y_t = loss_obj.prepare_targets(y_true, pred.shape, "y_true")
    sw = None
    if sample_weight is not None:
        sw = np.ascontiguousarray(sample_weight, dtype=np.float32)
    value, dy = loss_obj.value_and_grad(y_t, pred, sw)
    return tape.record_loss(value, y_pred, dy, ())


_losses.set_tape_hook(loss_call)   # loss_fn(y, y_pred) inside a tape records the loss

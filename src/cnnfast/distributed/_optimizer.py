"""DistributedOptimizer: average the gradients over every rank before each optimizer step.

Design (as Horovod's ``DistributedOptimizer``): the wrapped optimizer is an instance of a subclass
of the user's optimizer class, created once per class and given the *same class name*, so
``compile``, saving (``optimizers.serialize`` records the class name) and ``load_model`` treat it
as the plain optimizer. It overrides the two entry points a step goes through:

* ``apply_flat(params, grads, ...)`` — what ``Model.fit`` calls once per step with the model's
  single flat gradient buffer. The buffer is scaled by this rank's weight and summed over ranks
  in ONE in-place ``MPI_Allreduce`` (no per-tensor calls, no copy), then the wrapped class's step
  runs: clipping, weight decay and the fused C update see the same averaged gradient on every
  rank, so every rank computes the same new weights.
* ``apply_gradients(pairs)`` — the Keras API for custom loops: the gradients are packed into one
  buffer, reduced with one call, and unpacked.

The weight of a rank's gradient is ``1 / size`` unless training sets a per-step weight
(``cnnfast.distributed.fit`` uses ``samples on this rank / samples in the global batch`` so uneven
parts of a batch still give the exact global mean).
"""
from __future__ import annotations

import numpy as np

from ..optimizers.base import Optimizer
from . import _comm

__all__ = ["DistributedOptimizer", "is_distributed_optimizer"]

_CLASSES: dict = {}


class _DistributedMixin:
    """Methods shared by every distributed optimizer class (see the module docstring)."""

    _cnnfast_distributed = True

    def _gradient_weight(self) -> float:
        w = self.__dict__.get("_dist_grad_weight")
        return 1.0 / _comm.communicator().size if w is None else w

    def _reduce_gradients(self, grads: np.ndarray) -> None:
        group = _comm.communicator()
        w = self._gradient_weight()
        if w != 1.0:
            grads *= np.float32(w)
        group.allreduce_sum_(grads, "gradients")

    def apply_flat(self, params, grads, offsets=None, key="flat"):
        self._reduce_gradients(grads)
        super().apply_flat(params, grads, offsets, key)

    def apply_gradients(self, grads_and_vars):
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            return super().apply_gradients(pairs)
        parts = [np.ascontiguousarray(g, dtype=np.float32).reshape(-1) for g, _ in pairs]
        fused = np.concatenate(parts)
        self._reduce_gradients(fused)
        out, off = [], 0
        for part, (g, v) in zip(parts, pairs):
            out.append((fused[off:off + part.size].reshape(np.shape(g)), v))
            off += part.size
        return super().apply_gradients(out)


def _distributed_class(cls):
    if issubclass(cls, _DistributedMixin):
        return cls
    dcls = _CLASSES.get(cls)
    if dcls is None:
        dcls = type(cls.__name__, (_DistributedMixin, cls),
                    {"__module__": cls.__module__, "__qualname__": cls.__qualname__,
                     "__doc__": f"{cls.__name__} whose gradients are averaged over every rank first "
                                f"(cnnfast.distributed.DistributedOptimizer)."})
        _CLASSES[cls] = dcls
    return dcls


def is_distributed_optimizer(optimizer) -> bool:
    """True for an optimizer returned by :func:`DistributedOptimizer`."""
    return isinstance(optimizer, _DistributedMixin)


def DistributedOptimizer(optimizer) -> Optimizer:
    """An optimizer that averages gradients over every rank (one fused all-reduce per step) and
    then takes ``optimizer``'s step (Horovod's ``DistributedOptimizer``).

    ``optimizer``: an instance or a name (``"adam"``). The result is a new optimizer of the same
    class name, configuration and state; use it instead of ``optimizer``::

        opt = dist.DistributedOptimizer(cnnfast.optimizers.Adam(1e-3 * dist.size()))
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    With plain ``model.fit`` each rank must then train on its own equally sized share of every
    global batch and run the same number of steps; :func:`cnnfast.distributed.fit` does the
    sharding (uneven data included) and wraps the optimizer itself.
    """
    from .. import optimizers
    optimizer = optimizers.get(optimizer)
    if is_distributed_optimizer(optimizer):
        return optimizer
    wrapped = object.__new__(_distributed_class(type(optimizer)))
    wrapped.__dict__.update(optimizer.__dict__)
    wrapped._state = {k: dict(v) for k, v in optimizer._state.items()}
    return wrapped


class _temporarily_distributed:
    """Make ``optimizer`` distributed for a ``with`` block, in place (same object, same state), and
    restore its class afterwards; a no-op when it already is distributed."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.previous = None

    def __enter__(self):
        opt = self.optimizer
        if not is_distributed_optimizer(opt):
            self.previous = type(opt)
            opt.__class__ = _distributed_class(self.previous)
        return opt

    def __exit__(self, *exc):
        opt = self.optimizer
        opt.__dict__.pop("_dist_grad_weight", None)
        if self.previous is not None:
            opt.__class__ = self.previous

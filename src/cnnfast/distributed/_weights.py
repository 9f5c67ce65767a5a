"""Keeping every rank's model identical: broadcast, averaging of non-trainable weights, checksums.

Each operation packs what it moves into ONE contiguous buffer and makes one collective call:
the model's weights (trainable and not, in ``model.weights`` order) followed by the optimizer's
flat slots (moments), so a broadcast costs one message whatever the number of layers. Values are
copied back in place (``Variable.value[...] = ...``), so the model's flat parameter buffer and
the optimizer's state arrays stay the same objects.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..layers.base import note_weights_written
from . import _comm

__all__ = ["broadcast_weights", "average_non_trainable_weights", "weights_checksum"]


def _optimizer_slots(model):
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None, []
    slots = opt._state.get("flat")
    return opt, ([] if slots is None else [slots[name] for name in sorted(slots)])


def _check_same_layout(group, layout, what):
    layouts = group.allgather_obj(layout)
    if any(lay != layouts[0] for lay in layouts):
        detail = "; ".join(f"rank {r}: {lay}" for r, lay in enumerate(layouts))
        raise ValueError(f"cnnfast.distributed.{what}: the ranks' models differ ({detail}); build and "
                         "compile the same model on every rank")


def broadcast_weights(model, root_rank: int = 0, include_optimizer: bool = True) -> None:
    """Copy ``root_rank``'s weights (and optimizer state and step count) to every rank, in place.

    Call it after the model is built (and, for the optimizer state, after the first ``fit`` step
    created it) on every rank; ``cnnfast.distributed.fit`` calls it before the first step.
    """
    group = _comm.communicator()
    if not model.built:
        raise ValueError(f"cnnfast.distributed.broadcast_weights: model '{model.name}' is not built yet; "
                         "build it (or give it an Input) before broadcasting its weights")
    variables = model.weights
    opt, slots = _optimizer_slots(model) if include_optimizer else (None, [])
    arrays = [v.value for v in variables] + slots
    _check_same_layout(group, ([a.shape for a in arrays], len(variables)), "broadcast_weights")
    if group.size == 1:
        return
    buf = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.empty(0, np.float32)
    group.bcast_(buf, root_rank)
    off = 0
    for a in arrays:
        a[...] = buf[off:off + a.size].reshape(a.shape)
        off += a.size
    note_weights_written()
    if opt is not None:
        opt.iterations = int(group.bcast_obj(int(opt.iterations), root_rank))


def average_non_trainable_weights(model) -> None:
    """Replace each non-trainable weight (BatchNormalization's moving mean and variance) by its mean
    over ranks, in place. The mean is taken in float64, so weights that are equal on every rank
    (frozen layers) come back bit-identical."""
    group = _comm.communicator()
    variables = model.non_trainable_weights
    if group.size == 1 or not variables:
        return
    buf = np.concatenate([v.value.reshape(-1).astype(np.float64) for v in variables])
    group.allreduce_sum_(buf)
    buf /= group.size
    off = 0
    for v in variables:
        v.value[...] = buf[off:off + v.size].reshape(v.shape)
        off += v.size
    note_weights_written()


def weights_checksum(model) -> int:
    """CRC-32 of the bytes of every weight of ``model`` (equal on ranks with identical models)."""
    crc = 0
    for v in model.weights:
        crc = zlib.crc32(np.ascontiguousarray(v.value).view(np.uint8), crc)
    return crc

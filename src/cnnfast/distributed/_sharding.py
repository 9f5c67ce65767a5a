"""Which samples each rank trains on: a deterministic plan per epoch.

Every rank computes the same global order for an epoch, a pure function of ``(seed, epoch)``:
``np.random.default_rng([seed, epoch]).permutation(n)`` (``shuffle=True``), the identity
(``shuffle=False``), or the identity permuted within each global batch (``shuffle="batch"``).
The order is cut into global batches of ``batch_size`` (the last one may be shorter, as in Keras),
and each global batch of ``m`` samples into ``size`` consecutive parts of ``m // size`` or
``m // size + 1`` samples (the first ``m % size`` ranks take one more). Rank ``r`` trains step
``k`` on part ``r`` of batch ``k``; its gradient enters the all-reduced sum with weight
``part / m``, so the sum is the gradient of the mean loss over the whole global batch: the same
step a single process would take on that batch, whatever the sizes of the parts.

All full batches give rank ``r`` the same number of samples, ``batch_size // size`` (+1 for
``r < batch_size % size``); only the last, shorter batch can give it fewer. When that batch has
fewer samples than there are ranks, the ranks left without a sample run the step on one *padding*
sample with weight 0 (and training restores their metrics and non-trainable weights), so every
rank runs the same number of steps and no rank waits forever in a collective. A rank's plan is
therefore ``steps`` slices of its local batch size, exactly what ``Model.fit(shuffle=False)``
iterates over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ShardPlan", "epoch_order", "shard_plan", "split_evenly"]


def _int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"cnnfast.distributed: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"cnnfast.distributed: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def epoch_order(n: int, seed: int, epoch: int, shuffle=True, batch_size: int | None = None) -> np.ndarray:
    """The global sample order of ``epoch`` (int64, length ``n``), identical on every rank.

    ``shuffle``: True (a permutation drawn from ``(seed, epoch)``), False (``0 .. n-1``) or
    ``"batch"`` (each consecutive block of ``batch_size`` permuted within itself).
    """
    n = _int(n, "n", 0)
    seed = _int(seed, "seed", 0)
    epoch = _int(epoch, "epoch", 0)
    if shuffle is True:
        return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)
    order = np.arange(n, dtype=np.int64)
    if shuffle is False:
        return order
    if shuffle == "batch":
        bs = _int(batch_size, "batch_size", 1)
        rng = np.random.default_rng([seed, epoch])
        for start in range(0, n, bs):
            rng.shuffle(order[start:start + bs])
        return order
    raise ValueError(f"cnnfast.distributed: shuffle must be True, False or 'batch', got {shuffle!r}")


def split_evenly(m: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, count)`` of part ``rank`` when ``m`` items are cut into ``size`` consecutive parts
    whose sizes differ by at most one (the first ``m % size`` parts are the longer ones)."""
    q, rem = divmod(m, size)
    return rank * q + min(rank, rem), q + (1 if rank < rem else 0)


@dataclass(frozen=True)
class ShardPlan:
    """One rank's share of one epoch.

    Attributes:
        indices: int64 sample indices into the full arrays, step after step (padding included).
        batch_size: this rank's local batch size (every step but the last has exactly this many).
        steps: number of steps of the epoch (the same on every rank).
        counts: int64 ``(steps,)``: real samples of this rank in each step (0 = padded step).
        global_counts: int64 ``(steps,)``: samples of each global batch.
    """

    indices: np.ndarray
    batch_size: int
    steps: int
    counts: np.ndarray
    global_counts: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """float64 ``(steps,)``: the weight of this rank's gradient in each step, ``counts / global_counts``."""
        return self.counts / self.global_counts

    @property
    def padded(self) -> np.ndarray:
        """bool ``(steps,)``: steps this rank runs on a padding sample (weight 0)."""
        return self.counts == 0


def shard_plan(n: int, batch_size: int, *, rank: int, size: int, epoch: int = 0, seed: int = 0,
               shuffle=True, steps: int | None = None) -> ShardPlan:
    """Rank ``rank``'s plan for ``epoch`` of data-parallel training on ``n`` samples.

    Args:
        n: number of training samples (>= 1).
        batch_size: the *global* batch size, summed over ranks (>= ``size``).
        rank, size: this process and the number of processes.
        epoch, seed, shuffle: select the global order (:func:`epoch_order`).
        steps: run only the first ``steps`` global batches of the epoch (at most one pass).
    """
    n = _int(n, "n", 1)
    size = _int(size, "size", 1)
    rank = _int(rank, "rank", 0)
    if rank >= size:
        raise ValueError(f"cnnfast.distributed: rank must be < size={size}, got {rank}")
    batch_size = _int(batch_size, "batch_size", 1)
    if batch_size < size:
        raise ValueError(f"cnnfast.distributed: the global batch_size ({batch_size}) must be at least the "
                         f"number of processes ({size}), so that every process gets a sample per step")
    per_pass = math.ceil(n / batch_size)
    if steps is None:
        steps = per_pass
    else:
        steps = _int(steps, "steps_per_epoch", 1)
        if steps > per_pass:
            raise ValueError(f"cnnfast.distributed: steps_per_epoch={steps} is more than one pass over "
                             f"{n} samples in batches of {batch_size} ({per_pass} steps); use more epochs")
    order = epoch_order(n, seed, epoch, shuffle, batch_size)
    local_bs = split_evenly(batch_size, rank, size)[1]
    parts, counts, global_counts = [], np.empty(steps, np.int64), np.empty(steps, np.int64)
    for k in range(steps):
        batch = order[k * batch_size: min((k + 1) * batch_size, n)]
        start, count = split_evenly(len(batch), rank, size)
        parts.append(batch[start:start + count] if count else batch[:1])
        counts[k], global_counts[k] = count, len(batch)
    return ShardPlan(indices=np.concatenate(parts), batch_size=local_bs, steps=steps, counts=counts,
                     global_counts=global_counts)

"""cnnfast.distributed — data-parallel training over MPI (mpi4py), the approach Horovod made standard.

Every process (rank) holds a full copy of the model. Each step, each rank computes gradients on
its share of the global batch; the gradients are summed over ranks in ONE all-reduce of the
model's flat gradient buffer, and every rank takes the same optimizer step, so the models stay
identical. Rank 0's initial weights are broadcast first; metrics are reduced over ranks; only
rank 0 prints and writes checkpoints.

    # mpirun -n 4 python train.py
    import cnnfast
    from cnnfast import distributed as dist, zoo

    dist.init()                       # rank and size from MPI; kernel threads shared between local ranks
    cnnfast.utils.set_random_seed(0)
    model = zoo.mnist_cnn()
    model.compile(optimizer=cnnfast.optimizers.Adam(1e-3 * dist.size()),   # linear LR scaling
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    dist.fit(model, x_train, y_train, batch_size=64 * dist.size(), epochs=5, validation_split=0.1,
             callbacks=[dist.LearningRateWarmupCallback(warmup_epochs=1)])
    if dist.is_root():
        model.save("mnist.keras")

``fit``/``evaluate`` take ``Model.fit``/``Model.evaluate``'s arguments with a *global*
``batch_size``. Bind each process to its own cores (Open MPI: ``mpirun --map-by slot:PE=<threads>
--bind-to core``); ``init`` gives each process the CPUs it may run on as kernel threads, shared
with the other processes when they are not bound. Without ``mpirun`` (or without mpi4py) the group is one process and ``fit`` is
ordinary training. For scripts that follow the Horovod recipe with plain ``model.fit``:
:func:`DistributedOptimizer`, :class:`BroadcastGlobalVariablesCallback`,
:class:`MetricAverageCallback`, :class:`LearningRateWarmupCallback`, :func:`shard_plan`.

mpi4py is an optional dependency: ``pip install cnnfast[mpi]`` (plus an MPI library, e.g.
``apt-get install openmpi-bin libopenmpi-dev``).
"""
from ._callbacks import (BroadcastGlobalVariablesCallback, LearningRateWarmupCallback,
                         MetricAverageCallback, root_only)
from ._comm import (Communicator, MPICommunicator, SelfCommunicator, abort, allreduce, barrier,
                    broadcast, comm_stats, communicator, init, is_initialized, is_root, local_rank,
                    local_size, rank, reset_comm_stats, size)
from ._fit import evaluate, fit
from ._optimizer import DistributedOptimizer, is_distributed_optimizer
from ._sharding import ShardPlan, epoch_order, shard_plan, split_evenly
from ._weights import average_non_trainable_weights, broadcast_weights, weights_checksum

__all__ = [
    # the group
    "init", "is_initialized", "communicator", "rank", "size", "local_rank", "local_size", "is_root",
    "barrier", "allreduce", "broadcast", "abort", "comm_stats", "reset_comm_stats",
    "Communicator", "MPICommunicator", "SelfCommunicator",
    # training
    "fit", "evaluate", "DistributedOptimizer", "is_distributed_optimizer",
    "BroadcastGlobalVariablesCallback", "MetricAverageCallback", "LearningRateWarmupCallback", "root_only",
    "broadcast_weights", "average_non_trainable_weights", "weights_checksum",
    # data
    "ShardPlan", "shard_plan", "epoch_order", "split_evenly",
]

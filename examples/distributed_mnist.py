"""The MNIST tutorial CNN trained data-parallel on several processes with MPI (cnnfast.distributed).

Every process runs this same script; ``mpirun`` starts them (on one machine or several):

    mpirun -n 2 python examples/distributed_mnist.py                      # 2 processes, 5 epochs
    mpirun -n 2 python examples/distributed_mnist.py --epochs 1 --limit 3000
    mpirun -n 4 --hostfile hosts python examples/distributed_mnist.py     # 4 processes on several machines
    python examples/distributed_mnist.py                                  # 1 process, no MPI needed

What changes from the single-process tutorial (examples/mnist_cnn.py):

* ``dist.init()`` joins the group; each process uses its share of the machine's cores.
* ``batch_size`` is the *global* batch: 64 per process, so 64 x size per step, and the learning
  rate is scaled by the same factor (the linear scaling rule) with a 1-epoch linear warm-up.
* ``dist.fit`` replaces ``model.fit``: same arguments; each process trains on its own share of
  every global batch, the gradients are averaged with one MPI all-reduce per step, rank 0's initial
  weights are broadcast, the logs are global; only rank 0 prints and writes the checkpoint.

Needs ``pip install cnnfast[mpi]`` (mpi4py) and an MPI library (``apt-get install openmpi-bin``).
As root (e.g. in a container) Open MPI also wants ``--allow-run-as-root``. With several threads per
process, bind each process to its own cores: ``mpirun -n 4 --map-by slot:PE=2 --bind-to core ...``
(each process then uses its 2 cores; Open MPI binds to one core by default for up to 2 processes).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cnnfast
from cnnfast import distributed as dist
from cnnfast import zoo
from cnnfast.datasets import DatasetError, mnist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64, help="samples per process per step (default 64)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="single-process Adam rate, scaled by "
                                                                          "the number of processes")
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train and test images")
    parser.add_argument("--checkpoint", default=None, metavar="PATH.keras", help="save the best model (rank 0)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    group = dist.init()
    root = dist.is_root()
    # rank 0 reads (and if needed downloads) the data set first, then tells the others
    error = None
    if root:
        try:
            data = mnist.load_data()
        except DatasetError as e:
            error = str(e)
    error = group.bcast_obj(error, 0)
    if error is not None:
        if root:
            print(error, file=sys.stderr)
        return 1
    if not root:
        data = mnist.load_data(download=False)
    (x_train, y_train), (x_test, y_test) = data
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    x_train = x_train[..., np.newaxis].astype("float32") / 255.0
    x_test = x_test[..., np.newaxis].astype("float32") / 255.0

    size = dist.size()
    global_batch = args.batch_size * size
    if root:
        print(f"{size} processes x {cnnfast.get_num_threads()} thread(s), SIMD {cnnfast.get_isa()}; global batch "
              f"{global_batch}, Adam learning rate {args.learning_rate * size:g} after "
              f"{args.warmup_epochs:g} epoch(s) of warm-up")

    cnnfast.utils.set_random_seed(args.seed)  # same seed everywhere; rank 0's weights are broadcast anyway
    model = zoo.mnist_cnn()
    model.compile(optimizer=cnnfast.optimizers.Adam(args.learning_rate * size),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [dist.LearningRateWarmupCallback(warmup_epochs=args.warmup_epochs)]
    if args.checkpoint:  # runs on rank 0 only
        callbacks.append(cnnfast.callbacks.ModelCheckpoint(args.checkpoint, monitor="val_accuracy",
                                                           save_best_only=True))

    dist.reset_comm_stats()
    start = time.perf_counter()
    history = dist.fit(model, x_train, y_train, batch_size=global_batch, epochs=args.epochs,
                       validation_split=0.2, callbacks=callbacks, verbose=2 if root else 0)
    seconds = time.perf_counter() - start
    comm = dist.comm_stats()["gradients"]

    test_loss, test_accuracy = dist.evaluate(model, x_test, y_test, batch_size=256 * size, verbose=0)
    if root:
        steps = model.optimizer.iterations
        print(f"Test accuracy: {test_accuracy:.4f}   test loss: {test_loss:.4f}")
        print(f"Training: {seconds:.1f} s for {len(history.epoch)} epoch(s), {steps} steps; gradient all-reduce "
              f"{comm['bytes'] / max(steps, 1) / 1e6:.2f} MB/step, {comm['seconds']:.1f} s in total "
              f"({100 * comm['seconds'] / seconds:.0f}% of the training time, waiting included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

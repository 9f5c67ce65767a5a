"""``cnnfast train``: load a data set, build a zoo model, fit it, report accuracy and speed."""
from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from . import UsageError

# epochs, batch size, validation split per data set (the tutorials' values for MNIST)
DEFAULTS = {
    "digits": (12, 32, 0.1),
    "mnist": (5, 64, 0.2),
    "fashion_mnist": (5, 64, 0.2),
    "cifar10": (10, 64, 0.2),
}
# pixel scale of each data set: images are fed to the network as x / scale, in [0, 1]
SCALE = {"digits": 16.0, "mnist": 255.0, "fashion_mnist": 255.0, "cifar10": 255.0}


def prepare_images(x: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 NHWC in [0, 1]."""
    x = x.astype(np.float32) / np.float32(scale)
    return x[..., None] if x.ndim == 3 else x


def _epoch_timer():
    """A Keras-style callback recording the wall time of each epoch."""
    from ..callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            super().__init__()
            self.times = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()


def _fmt_shape(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _join_group(args):
    """``(group, root)``: the MPI process group with --distributed (None without), and whether this
    process prints and saves."""
    if not getattr(args, "distributed", False):
        return None, True
    from .. import distributed
    group = distributed.init(backend="mpi", threads=args.threads if args.threads is not None else "auto")
    return group, group.rank == 0


def run(args) -> int:
    import cnnfast
    from .. import datasets, zoo

    if args.threads is not None:
        cnnfast.set_num_threads(args.threads)
    try:
        group, root = _join_group(args)
    except ImportError as e:
        print(f"cnnfast train: error: {e}", file=sys.stderr)
        return 1
    size = 1 if group is None else group.size
    epochs, batch_size, validation_split = DEFAULTS[args.dataset]
    epochs = args.epochs or epochs
    batch_size = args.batch_size or batch_size
    validation_split = validation_split if args.validation_split is None else args.validation_split
    model_name = args.model or zoo.DEFAULT_MODEL[args.dataset]

    kwargs = {} if args.dataset == "digits" or args.data_dir is None else {"path": args.data_dir}
    if args.dataset == "digits" and args.data_dir is not None:
        raise UsageError("--data-dir does not apply to --dataset digits, which ships with cnnfast")
    error = None
    if root:  # with --distributed, rank 0 reads (and if needed downloads) the data first
        try:
            (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset, **kwargs)
        except datasets.DatasetError as e:
            error = str(e)
    if group is not None:
        error = group.bcast_obj(error, 0)
        if not root and error is None:
            (x_train, y_train), (x_test, y_test) = datasets.load(args.dataset, **kwargs)
    if error is not None:
        if root:
            print(f"cnnfast train: error: {error}", file=sys.stderr)
        return 1
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]
    x_train = prepare_images(x_train, SCALE[args.dataset])
    x_test = prepare_images(x_test, SCALE[args.dataset])
    n_fit = int(len(x_train) * (1.0 - validation_split))
    if n_fit < 1 or (validation_split > 0 and n_fit == len(x_train)):
        raise UsageError(f"--validation-split {validation_split} leaves {n_fit} training and "
                         f"{len(x_train) - n_fit} validation samples out of {len(x_train)}")

    from ..utils import set_random_seed

    set_random_seed(args.seed)
    try:
        model = zoo.get(model_name, input_shape=x_train.shape[1:], num_classes=10)
    except ValueError as e:
        raise UsageError(f"--model {model_name} does not fit {args.dataset} images of shape "
                         f"{_fmt_shape(x_train.shape[1:])}: {e}") from None
    callbacks = [_epoch_timer()]
    if group is None:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        fit, evaluate = model.fit, model.evaluate
    else:  # linear learning-rate scaling with a warm-up (Goyal et al. 2017), global batch = batch x size
        from .. import distributed, optimizers
        model.compile(optimizer=optimizers.Adam(1e-3 * size), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        callbacks.append(distributed.LearningRateWarmupCallback(warmup_epochs=min(1, epochs)))
        fit = lambda *a, **k: distributed.fit(model, *a, **k)  # noqa: E731
        evaluate = lambda *a, **k: distributed.evaluate(model, *a, **k)  # noqa: E731

    n_val = len(x_train) - n_fit
    if root:
        print(f"cnnfast {cnnfast.__version__}: training {model_name} ({model.count_params():,} parameters) "
              f"on {args.dataset}: {n_fit:,} training, {n_val:,} validation, {len(x_test):,} test images "
              f"of {_fmt_shape(x_train.shape[1:])}")
        where = "" if group is None else f" x {size} processes (global batch {batch_size * size})"
        print(f"SIMD {cnnfast.get_isa()}, {cnnfast.get_num_threads()} thread(s){where}, {epochs} epoch(s), "
              f"batch size {batch_size}, seed {args.seed}", flush=True)
        if args.summary:
            model.summary()

    start = time.perf_counter()
    fit(x_train, y_train, batch_size=batch_size * size, epochs=epochs, validation_split=validation_split,
        verbose=args.verbose if root else 0, callbacks=callbacks)
    total = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(x_test, y_test, batch_size=max(batch_size, 256) * size, verbose=0)

    times = callbacks[0].times
    per_epoch = statistics.median(times) if times else total / epochs
    if root:
        print(f"Test accuracy: {test_accuracy:.4f}  (test loss {test_loss:.4f}, {len(x_test):,} images)")
        print(f"Time per epoch: {per_epoch:.2f} s (median of {epochs}, validation included; {total:.1f} s in "
              f"total), {n_fit / per_epoch:,.0f} training samples/s")
        if args.save:
            model.save(args.save)
            print(f"Saved the trained model to {args.save}")
    return 0

"""The Keras CIFAR-10 CNN: two convolution blocks with Dropout, trained on one-hot labels.

The model is ``cnnfast.zoo.cifar10_cnn()`` (1,250,858 parameters): [Conv2D 32 same, Conv2D 32,
MaxPooling2D, Dropout 0.25] then the same block with 64 filters, Flatten, Dense 512, Dropout 0.5,
Dense 10 softmax. As in the tutorial the labels are one-hot encoded with ``to_categorical`` and
the loss is ``categorical_crossentropy``.

    python examples/cifar10_cnn.py                         # 10 epochs on 50,000 images
    python examples/cifar10_cnn.py --epochs 1 --limit 5000 # a shorter run
    python examples/cifar10_cnn.py --fake-data --epochs 1 --limit 256
        # random images of CIFAR-10's shape: checks the whole pipeline without the 170 MB download

CIFAR-10 is read from $CNNFAST_DATA/cifar-10 (or ~/.cache/cnnfast/datasets/cifar-10): the
original cifar-10-python.tar.gz, downloaded and SHA-256 verified the first time.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cnnfast
from cnnfast import zoo
from cnnfast.datasets import DatasetError, cifar10
from cnnfast.utils import to_categorical


def fake_cifar10(n_train: int, n_test: int, seed: int = 0):
    """Random uint8 images and labels with the shapes and dtypes cifar10.load_data() returns."""
    rng = np.random.default_rng(seed)
    return ((rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
             rng.integers(0, 10, (n_train, 1), dtype=np.uint8)),
            (rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
             rng.integers(0, 10, (n_test, 1), dtype=np.uint8)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train and test images")
    parser.add_argument("--fake-data", action="store_true", help="random images instead of CIFAR-10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.fake_data:
        n = args.limit or 1024
        (x_train, y_train), (x_test, y_test) = fake_cifar10(n, max(n // 5, 1))
    else:
        try:
            (x_train, y_train), (x_test, y_test) = cifar10.load_data()
        except DatasetError as e:
            print(e, file=sys.stderr)
            return 1
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]

    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    y_train = to_categorical(y_train, 10)   # (N, 1) labels -> (N, 10) one-hot
    y_test = to_categorical(y_test, 10)
    print(f"x_train {x_train.shape}, y_train {y_train.shape} (one-hot), x_test {x_test.shape}")

    cnnfast.utils.set_random_seed(args.seed)
    model = zoo.cifar10_cnn()
    model.summary()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])

    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, y_test), shuffle=True)
    seconds = time.perf_counter() - start

    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {test_accuracy:.4f}   test loss: {test_loss:.4f}")
    print(f"Training: {seconds:.1f} s for {args.epochs} epoch(s), "
          f"{len(x_train) * args.epochs / seconds:,.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

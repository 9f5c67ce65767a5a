"""The MNIST tutorial CNN: three 3x3 convolutions, Adam, 5 epochs, validation_split=0.2.

This is the Keras tutorial run unchanged except for the import: the model is
``cnnfast.zoo.mnist_cnn()`` (Conv2D 32 -> MaxPooling2D -> Conv2D 64 -> MaxPooling2D -> Conv2D 64
-> Flatten -> Dense 64 -> Dense 10 softmax, 93,322 parameters).

    python examples/mnist_cnn.py                              # the tutorial: 5 epochs on 60,000 images
    python examples/mnist_cnn.py --epochs 1 --limit 2000      # a quick check on a subset
    python examples/mnist_cnn.py --dataset fashion_mnist      # the same network on Fashion-MNIST

MNIST is read from $CNNFAST_DATA/mnist (or ~/.cache/cnnfast/datasets/mnist) and downloaded there,
SHA-256 verified, the first time (11.6 MB).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cnnfast
from cnnfast import zoo
from cnnfast.datasets import DatasetError, fashion_mnist, mnist


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train and test images")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    loader = mnist if args.dataset == "mnist" else fashion_mnist
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
        x_test, y_test = x_test[: args.limit], y_test[: args.limit]

    # uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: Conv2D wants a channel axis
    x_train = x_train[..., np.newaxis].astype("float32") / 255.0
    x_test = x_test[..., np.newaxis].astype("float32") / 255.0
    print(f"x_train {x_train.shape}, x_test {x_test.shape}, {cnnfast.get_num_threads()} thread(s), "
          f"SIMD {cnnfast.get_isa()}")

    cnnfast.utils.set_random_seed(args.seed)
    model = zoo.mnist_cnn()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, validation_split=0.2)
    seconds = time.perf_counter() - start

    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {test_accuracy:.4f}   test loss: {test_loss:.4f}")
    print(f"Training: {seconds:.1f} s for {args.epochs} epoch(s); final validation accuracy "
          f"{history.history['val_accuracy'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

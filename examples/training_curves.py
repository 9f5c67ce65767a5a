"""Plot training curves: loss and accuracy per epoch, for training and validation, saved as PNG.

Trains the small digits CNN on the 8x8 digits bundled with cnnfast (offline, a few seconds) with
``validation_split=0.2`` and plots ``history.history``. The gap between the training and the
validation curves is how over-fitting shows. Here it is wide also because ``validation_split``
holds out the *last* 20 % of the training images (as Keras does, before shuffling), which come
from writers seen less in training. matplotlib is optional: without it the numbers are printed
and the plot is skipped with a message.

    python examples/training_curves.py                         # writes training_curves.png
    python examples/training_curves.py --epochs 30 --output curves.png
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

import cnnfast
from cnnfast import zoo
from cnnfast.datasets import digits


def plot(history: dict, path: str) -> bool:
    """Save loss and accuracy curves to ``path``; False (with a message) when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only, no display needed
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install matplotlib to get it)")
        return False
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "Loss"), (ax_acc, "accuracy", "Accuracy")):
        ax.plot(epochs, history[key], "o-", label="training")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("digits_cnn on the 8x8 digits (cnnfast)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"Saved the training curves to {path}")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output", default="training_curves.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = digits.load_data()
    x_train = x_train[..., None].astype("float32") / 16.0   # pixels are 0..16 in this data set
    x_test = x_test[..., None].astype("float32") / 16.0

    cnnfast.utils.set_random_seed(args.seed)
    model = zoo.digits_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.2, verbose=2)

    h = history.history
    print(f"\n{'epoch':>5} {'loss':>8} {'accuracy':>9} {'val_loss':>9} {'val_accuracy':>13}")
    for i in range(len(h["loss"])):
        print(f"{i + 1:>5} {h['loss'][i]:>8.4f} {h['accuracy'][i]:>9.4f} {h['val_loss'][i]:>9.4f} "
              f"{h['val_accuracy'][i]:>13.4f}")
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {test_accuracy:.4f}")
    plot(h, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An image classifier trained from a folder of image files, with data augmentation layers.

Keras's "image classification from scratch" workflow, on real images that are here offline: the
script writes MNIST (or Fashion-MNIST) digits as PNG files into ``DIR/train/<class>/`` and
``DIR/test/<class>/`` (Pillow needed: ``pip install 'cnnfast[image]'``), then

1. reads them back with ``utils.image_dataset_from_directory`` (labels from the folder names,
   ``validation_split=0.2, subset="both"``), decoding on background threads during ``fit``;
2. trains a CNN whose first layers augment each training batch (``RandomRotation``,
   ``RandomZoom``, ``RandomTranslation``; identities in ``evaluate``/``predict``);
3. reports the test accuracy on the test folder and the training speed.

    python examples/image_folder_augmentation.py                      # 12,000 images, 5 epochs
    python examples/image_folder_augmentation.py --limit 2000 --epochs 1   # a quick check

MNIST is read from $CNNFAST_DATA/mnist (or ~/.cache/cnnfast/datasets/mnist) and downloaded there,
hash-verified, the first time. ``--folder`` keeps the written images (default: a temporary folder).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import cnnfast
from cnnfast import layers
from cnnfast.datasets import DatasetError, fashion_mnist, mnist
from cnnfast.utils import image_dataset_from_directory, save_img


def write_folder(folder, images, labels, class_names):
    """One PNG per image under ``folder/<class name>/``."""
    for name in class_names:
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        save_img(os.path.join(folder, class_names[label], f"{i:05d}.png"), image[..., None], scale=False)


def classifier(classes: int, seed: int):
    augment = [layers.RandomRotation(0.05, fill_mode="constant", seed=seed),
               layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 1),
               layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed + 2)]
    return cnnfast.Sequential([
        cnnfast.Input((28, 28, 1)), *augment, layers.Rescaling(1 / 255),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.3), layers.Dense(classes, activation="softmax")], name="augmented_cnn")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist"), default="mnist")
    parser.add_argument("--limit", type=int, default=12000, help="training images to write")
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--folder", default=None, help="where to write the images (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        (x_train, y_train), (x_test, y_test) = (mnist if args.dataset == "mnist" else fashion_mnist).load_data()
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    class_names = [f"class_{k}" for k in range(10)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or scratch
        start = time.perf_counter()
        write_folder(os.path.join(folder, "train"), x_train[:args.limit], y_train[:args.limit], class_names)
        write_folder(os.path.join(folder, "test"), x_test[:args.test_images], y_test[:args.test_images], class_names)
        print(f"wrote {min(args.limit, len(x_train)) + min(args.test_images, len(x_test))} PNG files in "
              f"{time.perf_counter() - start:.1f} s; {cnnfast.get_num_threads()} thread(s), SIMD {cnnfast.get_isa()}")

        train, validation = image_dataset_from_directory(
            os.path.join(folder, "train"), color_mode="grayscale", image_size=(28, 28),
            batch_size=args.batch_size, validation_split=0.2, subset="both", seed=args.seed)
        test = image_dataset_from_directory(os.path.join(folder, "test"), color_mode="grayscale",
                                            image_size=(28, 28), batch_size=256, shuffle=False)
        print(f"classes: {train.class_names}; {len(train)} training batches")

        cnnfast.utils.set_random_seed(args.seed)
        model = classifier(len(train.class_names), args.seed)
        model.summary()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        start = time.perf_counter()
        history = model.fit(train, validation_data=validation, epochs=args.epochs)
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = model.evaluate(test, verbose=0)
    print(f"Test accuracy: {test_accuracy:.4f}   test loss: {test_loss:.4f}")
    print(f"Training: {seconds:.1f} s for {args.epochs} epoch(s) from the folder; final validation accuracy "
          f"{history.history['val_accuracy'][-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Semantic segmentation with a small U-Net: label every pixel of scenes of MNIST digits by digit class.

Each scene is a 48x48 canvas with two MNIST digits at random places (the later one on top where
they overlap). Every pixel is labelled 0 (background) or 1 + the digit it belongs to, so the
network must recognise the digit's shape to colour its strokes: 11 classes per pixel. The model
is the U-Net of the Keras segmentation tutorials in miniature: a contracting path of Conv2D and
MaxPooling2D, an expanding path of Conv2DTranspose whose outputs are concatenated with the
features of the same resolution (the skip connections), and a per-pixel softmax. Background
pixels are four out of five, so ``class_weight`` weighs each pixel by its class (the rarer
digit strokes count more), and the score is Keras's ``MeanIoU`` over the 11 classes.

    python examples/unet_segmentation.py                       # 3 epochs on 12,000 scenes
    python examples/unet_segmentation.py --limit 1000 --epochs 1   # a quick check

MNIST is read from $CNNFAST_DATA/mnist (or ~/.cache/cnnfast/datasets/mnist) and downloaded there,
hash-verified, the first time.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cnnfast
from cnnfast import layers
from cnnfast.datasets import DatasetError, mnist

CANVAS = 48
CLASSES = 11  # background + ten digits


def make_scenes(images, labels, count, rng, digits_per_scene=2):
    """``count`` scenes (float32 (count, 48, 48, 1) in [0, 1]) and their label maps (int32
    (count, 48, 48)), each from ``digits_per_scene`` random digits at random positions."""
    x = np.zeros((count, CANVAS, CANVAS), np.float32)
    y = np.zeros((count, CANVAS, CANVAS), np.int32)
    picks = rng.integers(0, len(images), (count, digits_per_scene))
    corners = rng.integers(0, CANVAS - 28 + 1, (count, digits_per_scene, 2))
    for d in range(digits_per_scene):  # one vectorised paste per digit slot, not per pixel
        digit = images[picks[:, d]].astype(np.float32) / 255.0                   # (count, 28, 28)
        rows = corners[:, d, 0, None] + np.arange(28)                            # (count, 28)
        cols = corners[:, d, 1, None] + np.arange(28)
        n = np.arange(count)[:, None, None]
        r, c = rows[:, :, None], cols[:, None, :]
        stroke = digit > 0.5
        x[n, r, c] = np.where(stroke, digit, np.maximum(digit, x[n, r, c]))
        y[n, r, c] = np.where(stroke, 1 + labels[picks[:, d]][:, None, None], y[n, r, c])
    return x[..., None], y


def conv_block(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv1")(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv2")(x)


def unet(width=16):
    """48x48x1 -> 48x48x11: three poolings down to 6x6, three transposed convolutions back up."""
    inputs = cnnfast.Input(shape=(CANVAS, CANVAS, 1))
    skips, x = [], inputs
    for level in range(3):
        x = conv_block(x, width << level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = conv_block(x, width << 3, "bottom")
    for level in reversed(range(3)):
        x = layers.Conv2DTranspose(width << level, 2, strides=2, name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = conv_block(x, width << level, f"decode{level}")
    outputs = layers.Conv2D(CLASSES, 1, activation="softmax", name="classes")(x)
    return cnnfast.Model(inputs, outputs, name="unet")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=12000, help="number of training scenes")
    parser.add_argument("--test-scenes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        (train_images, train_labels), (test_images, test_labels) = mnist.load_data()
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_scenes(train_images, train_labels, args.limit, rng)
    x_test, y_test = make_scenes(test_images, test_labels, args.test_scenes, rng)
    frequency = np.bincount(y_train.ravel(), minlength=CLASSES) / y_train.size
    print(f"{len(x_train)} training scenes {x_train.shape[1:]}, {len(x_test)} test scenes; "
          f"background is {frequency[0]:.0%} of the pixels; {cnnfast.get_num_threads()} thread(s), "
          f"SIMD {cnnfast.get_isa()}")

    cnnfast.utils.set_random_seed(args.seed)
    model = unet()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[cnnfast.metrics.MeanIoU(num_classes=CLASSES, sparse_y_pred=False)])
    # Inverse square-root frequency, normalised so that the average pixel weight is 1.
    weights = 1.0 / np.sqrt(np.maximum(frequency, 1e-6))
    weights /= np.sum(weights * frequency)
    class_weight = {k: float(w) for k, w in enumerate(weights)}

    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, class_weight=class_weight,
              validation_split=0.1)
    seconds = time.perf_counter() - start

    predicted = np.argmax(model.predict(x_test, batch_size=64, verbose=0), axis=-1)
    per_class = []
    for k in range(CLASSES):
        iou = cnnfast.metrics.IoU(num_classes=CLASSES, target_class_ids=[k])
        iou.update_state(y_test, predicted)
        per_class.append(float(iou.result()))
    mean_iou = cnnfast.metrics.MeanIoU(num_classes=CLASSES)
    mean_iou.update_state(y_test, predicted)
    print("IoU per class:", "  ".join(f"{'bg' if k == 0 else k - 1}: {v:.3f}" for k, v in enumerate(per_class)))
    print(f"Pixel accuracy: {np.mean(predicted == y_test):.4f}")
    print(f"Test mean IoU: {float(mean_iou.result()):.4f}")
    print(f"Training: {seconds:.1f} s for {args.epochs} epoch(s), "
          f"{args.epochs * len(x_train) * 0.9 / seconds:.0f} scenes/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

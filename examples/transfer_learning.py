"""Transfer learning, offline: pretrain a small ResNet on digits 0-4, fine-tune it on 5-9 from a few labels.

The recipe of Keras's transfer-learning guide, on data that is here without a network:

1. pretrain a small residual network on the MNIST digits 0-4 (about 30,000 images);
2. keep its convolutional base, freeze it (``base.trainable = False``), call it with
   ``training=False`` so its batch norm stays in inference mode, put a new head on it and train
   the head on a *small* labelled set of the other digits, 5-9 (``--labels`` images per class);
3. unfreeze the base and fine-tune the whole network with a low learning rate;
4. train the same architecture from scratch on the same small labelled set and compare the test
   accuracy on all of the 5-9 test images. The scratch run gets more epochs (``--scratch-epochs``,
   default 60) than the fine-tuning, so that the comparison does not flatter the transfer.

    python examples/transfer_learning.py                       # the full run (a few minutes)
    python examples/transfer_learning.py --pretrain-limit 4000 --pretrain-epochs 1   # quick

With ImageNet weights, step 1 is ``cnnfast.applications.ResNet50(weights="imagenet",
include_top=False)`` (downloaded and hash-checked once); steps 2-4 are the same code.
MNIST is read from $CNNFAST_DATA/mnist (or ~/.cache/cnnfast/datasets/mnist).
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
from cnnfast.datasets import DatasetError, mnist


# Batch-norm momentum 0.9 rather than Keras's default 0.99: the small labelled set gives only a few
# steps per epoch, and the moving statistics that inference uses must converge within them.
BN_MOMENTUM = 0.9


def residual_block(x, filters: int, stride: int, name: str):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def small_resnet(name: str = "small_resnet"):
    """The convolutional base: 28x28x1 -> a 64-vector (stem, three residual blocks, global pool)."""
    inputs = cnnfast.Input(shape=(28, 28, 1))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = residual_block(x, 16, 1, "block1")
    x = residual_block(x, 32, 2, "block2")
    x = residual_block(x, 64, 2, "block3")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return cnnfast.Model(inputs, x, name=name)


def classifier(base, num_classes: int, name: str):
    """``base`` called in inference mode, then a new softmax head (the guide's pattern)."""
    inputs = cnnfast.Input(shape=(28, 28, 1))
    x = base(inputs, training=False)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="head")(x)
    return cnnfast.Model(inputs, outputs, name=name)


def few_labels(x, y, per_class: int, rng):
    """``per_class`` random examples of each class present in ``y``."""
    picks = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                            for c in np.unique(y)])
    rng.shuffle(picks)
    return x[picks], y[picks]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20, help="labelled images per class of 5-9")
    parser.add_argument("--pretrain-epochs", type=int, default=2)
    parser.add_argument("--pretrain-limit", type=int, default=None, help="use only N images of 0-4")
    parser.add_argument("--epochs", type=int, default=30, help="epochs on the small labelled set")
    parser.add_argument("--scratch-epochs", type=int, default=60, help="epochs of the from-scratch baseline")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except DatasetError as e:
        print(e, file=sys.stderr)
        return 1
    x_train = x_train[..., np.newaxis].astype("float32") / 255.0
    x_test = x_test[..., np.newaxis].astype("float32") / 255.0
    source, target = y_train < 5, y_train >= 5
    x_source, y_source = x_train[source][: args.pretrain_limit], y_train[source][: args.pretrain_limit]
    rng = np.random.default_rng(args.seed)
    x_few, y_few = few_labels(x_train[target], y_train[target] - 5, args.labels, rng)
    x_eval, y_eval = x_test[y_test >= 5], y_test[y_test >= 5] - 5
    print(f"pretraining on {len(x_source)} images of digits 0-4; {len(x_few)} labelled images of 5-9 "
          f"({args.labels} per class); testing on {len(x_eval)} images of 5-9; "
          f"{cnnfast.get_num_threads()} thread(s), SIMD {cnnfast.get_isa()}")
    cnnfast.utils.set_random_seed(args.seed)

    # 1. pretrain base + a 5-way head on digits 0-4
    base = small_resnet()
    inputs = cnnfast.Input(shape=(28, 28, 1))
    pretrain_model = cnnfast.Model(inputs, layers.Dense(5, activation="softmax", name="pretrain_head")(base(inputs)),
                                   name="pretrain")
    pretrain_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    pretrain_model.fit(x_source, y_source, epochs=args.pretrain_epochs, batch_size=64, verbose=0)
    pre_acc = pretrain_model.evaluate(x_test[y_test < 5], y_test[y_test < 5], verbose=0)[1]
    print(f"pretrained on 0-4 in {time.perf_counter() - start:.1f} s: test accuracy on 0-4 {pre_acc:.4f}")

    # 2. frozen base, new head on the few labels of 5-9
    base.trainable = False
    transfer = classifier(base, 5, "transfer")
    transfer.compile(optimizer=cnnfast.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                     metrics=["accuracy"])
    frozen_before = [w.copy() for w in base.get_weights()]
    head_epochs = args.epochs // 2
    transfer.fit(x_few, y_few, epochs=head_epochs, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen_before, base.get_weights())), \
        "a frozen base must not change (weights or batch-norm statistics)"
    head_acc = transfer.evaluate(x_eval, y_eval, verbose=0)[1]
    print(f"frozen base + new head ({head_epochs} epochs): test accuracy on 5-9 {head_acc:.4f}")

    # 3. unfreeze and fine-tune everything with a low learning rate (recompile after changing trainable)
    base.trainable = True
    transfer.compile(optimizer=cnnfast.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                     metrics=["accuracy"])
    transfer.fit(x_few, y_few, epochs=args.epochs - head_epochs, batch_size=16, verbose=0)
    tuned_acc = transfer.evaluate(x_eval, y_eval, verbose=0)[1]
    print(f"fine-tuned whole network ({args.epochs - head_epochs} epochs): test accuracy on 5-9 {tuned_acc:.4f}")

    # the fine-tuned model saves and loads with its predictions unchanged
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "transfer.keras")
        transfer.save(path)
        reloaded = cnnfast.models.load_model(path)
        same = np.allclose(reloaded.predict(x_eval[:256], verbose=0), transfer.predict(x_eval[:256], verbose=0),
                           rtol=1e-5, atol=1e-6)
    print(f"saved and reloaded: predictions {'equal' if same else 'DIFFERENT'}")

    # 4. the same architecture from scratch on the same few labels
    cnnfast.utils.set_random_seed(args.seed + 1)
    scratch_base = small_resnet("scratch_base")
    inputs = cnnfast.Input(shape=(28, 28, 1))
    scratch = cnnfast.Model(inputs, layers.Dense(5, activation="softmax", name="head")(
        layers.Dropout(0.2)(scratch_base(inputs))), name="scratch")
    scratch.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    scratch.fit(x_few, y_few, epochs=args.scratch_epochs, batch_size=16, verbose=0)
    scratch_acc = scratch.evaluate(x_eval, y_eval, verbose=0)[1]
    print(f"from scratch ({args.scratch_epochs} epochs): test accuracy on 5-9 {scratch_acc:.4f}")
    print(f"Transfer accuracy: {tuned_acc:.4f}  Scratch accuracy: {scratch_acc:.4f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

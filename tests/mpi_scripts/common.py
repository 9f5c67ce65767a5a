"""Data and models shared by the MPI worker scripts and the single-process references in
tests/test_distributed.py, so both sides build exactly the same things."""
from __future__ import annotations

import numpy as np


def make_data(n, seed=7, shape=(8, 8, 1), classes=4):
    """Images with a learnable class signal (the class sets the mean of one quadrant)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0.0, 1.0, (n,) + tuple(shape)).astype(np.float32)
    h, w = shape[0] // 2, shape[1] // 2
    for c in range(classes):
        r, q = divmod(c, 2)
        x[y == c, r * h:(r + 1) * h, q * w:(q + 1) * w, :] += 1.5
    return x, y.astype(np.int64)


def make_model(seed, optimizer="adam", batchnorm=False, metrics=("accuracy",), dropout=False):
    """A small CNN: Conv2D(relu) -> MaxPooling2D -> [BatchNormalization] -> Flatten -> Dense ->
    [Dropout] -> softmax."""
    import cnnfast
    from cnnfast import layers, models, optimizers

    cnnfast.utils.set_random_seed(seed)
    stack = [layers.Input((8, 8, 1)), layers.Conv2D(6, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2))]
    if batchnorm:
        stack.append(layers.BatchNormalization())
    stack += [layers.Flatten(), layers.Dense(12, activation="relu")]
    if dropout:
        stack.append(layers.Dropout(0.3))
    stack.append(layers.Dense(4, activation="softmax"))
    model = models.Sequential(stack)
    opt = {"adam": lambda: optimizers.Adam(0.01),
           "sgd": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
           "adamw_clip": lambda: optimizers.AdamW(0.01, weight_decay=0.01, global_clipnorm=0.5)}[optimizer]()
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model

"""The tutorial CNNs, defined once: ``cnnfast train``, the examples and the benchmarks build them here.

Each function returns a new, *uncompiled* :class:`cnnfast.models.Sequential`, written exactly as a
Keras tutorial would write it, so the same code runs under Keras by changing the import::

    from cnnfast import zoo
    model = zoo.mnist_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

=============  ====================  ===============================================  ==========
name           input (default)       layers                                           parameters
=============  ====================  ===============================================  ==========
mnist_cnn      (28, 28, 1)           3x Conv2D(3x3, ReLU) with 2 max-pools, Dense 64  93,322
cifar10_cnn    (32, 32, 3)           4x Conv2D, 2 max-pools, Dropout, Dense 512       1,250,858
digits_cnn     (8, 8, 1)             2x Conv2D, 1 max-pool, Dense 64                  23,946
=============  ====================  ===============================================  ==========
"""
from __future__ import annotations

__all__ = ["mnist_cnn", "cifar10_cnn", "digits_cnn", "get", "MODELS", "DEFAULT_MODEL"]


def mnist_cnn(input_shape=(28, 28, 1), num_classes: int = 10):
    """The MNIST tutorial CNN: three 3x3 convolutions (32, 64, 64 filters) and two max-pools.

    The "Convolutional Neural Network" tutorial model (TensorFlow / Keras), trained with Adam on
    ``x / 255`` for 5 epochs with ``validation_split=0.2``; softmax output, so compile it with
    ``loss="sparse_categorical_crossentropy"``.
    """
    from . import layers, models

    return models.Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="mnist_cnn")


def cifar10_cnn(input_shape=(32, 32, 3), num_classes: int = 10):
    """The Keras ``cifar10_cnn`` example: two conv blocks (32 then 64 filters) with Dropout.

    Each block is Conv2D(same) + Conv2D(valid) + MaxPooling2D + Dropout(0.25), then
    Dense(512) + Dropout(0.5) + softmax. The tutorial trains it on one-hot labels
    (``to_categorical``) with ``loss="categorical_crossentropy"``.
    """
    from . import layers, models

    return models.Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ], name="cifar10_cnn")


def digits_cnn(input_shape=(8, 8, 1), num_classes: int = 10):
    """A small CNN for the bundled 8x8 digits: trains to ~97 % test accuracy in a few seconds.

    Conv2D(16, same) + Conv2D(32) + MaxPooling2D + Dense(64) + softmax, on ``x / 16``.
    """
    from . import layers, models

    return models.Sequential([
        layers.Input(shape=tuple(input_shape)),
        layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="digits_cnn")


MODELS = {"mnist_cnn": mnist_cnn, "cifar10_cnn": cifar10_cnn, "digits_cnn": digits_cnn}

#: the model ``cnnfast train`` uses for each data set when ``--model`` is not given
DEFAULT_MODEL = {"mnist": "mnist_cnn", "fashion_mnist": "mnist_cnn", "cifar10": "cifar10_cnn",
                 "digits": "digits_cnn"}


def get(name: str, **kwargs):
    """Build the zoo model called ``name`` (see :data:`MODELS`), passing ``kwargs`` through."""
    try:
        factory = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"cnnfast.zoo.get: unknown model {name!r}; expected one of {sorted(MODELS)}") from None
    return factory(**kwargs)

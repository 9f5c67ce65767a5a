"""Quick start: the whole Keras workflow on the 8x8 digits that ship with cnnfast (offline, seconds).

load_data -> scale -> build -> compile -> fit -> evaluate -> predict -> save -> load_model.
Written with Keras names: replace ``cnnfast`` by ``keras`` in the imports (and the data set by
your own) and it runs under Keras too.

    python examples/digits_quickstart.py
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import cnnfast
from cnnfast import layers, models
from cnnfast.datasets import digits


def main() -> int:
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    print(f"x_train {x_train.shape} {x_train.dtype}, values {x_train.min()}..{x_train.max()}; "
          f"x_test {x_test.shape}")
    x_train = x_train[..., None].astype("float32") / 16.0   # (1437, 8, 8, 1) in [0, 1]
    x_test = x_test[..., None].astype("float32") / 16.0

    cnnfast.utils.set_random_seed(42)
    model = models.Sequential([
        layers.Input(shape=(8, 8, 1)),
        layers.Conv2D(16, (3, 3), padding="same", activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])  # the same network as cnnfast.zoo.digits_cnn()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=12, batch_size=32, validation_split=0.1)

    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {accuracy:.4f}   test loss: {loss:.4f}")

    probabilities = model.predict(x_test[:10], verbose=0)
    print("predicted:", probabilities.argmax(axis=1))
    print("true:     ", y_test[:10])

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.keras")
        model.save(path)
        restored = models.load_model(path)
        same = np.array_equal(restored.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
        print(f"Saved to {os.path.basename(path)} ({os.path.getsize(path):,} bytes) and loaded back: "
              f"identical predictions: {same}")
    return 0 if accuracy > 0.9 and same else 1


if __name__ == "__main__":
    sys.exit(main())

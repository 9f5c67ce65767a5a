"""Keras 3's own .keras files load into cnnfast: config.json in Keras's format (translated, then
rebuilt by the allow-listed loader) and model.weights.h5; predictions equal Keras's, the compile
configuration comes back, and what cnnfast cannot rebuild is refused by name."""
import numpy as np
import pytest

import cnnfast

pytest.importorskip("h5py")


def _sequential_cnn(keras):
    return keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu", kernel_regularizer="l2"), keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax")])


def _functional_resnet(keras):
    inputs = keras.Input((12, 12, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    z = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Concatenate()([x, z])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="resnetish")


def _nested(keras):
    base = keras.Sequential([keras.Input((10, 10, 2)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()],
                            name="base")
    inputs = keras.Input((10, 10, 2))
    return keras.Model(inputs, keras.layers.Dense(2)(base(inputs, training=False)))


def _text(keras):
    inputs = keras.Input((40,), dtype="int32")
    x = keras.layers.Embedding(100, 8)(inputs)
    x = keras.layers.Conv1D(6, 5, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))


def _volume(keras):
    return keras.Sequential([keras.Input((6, 6, 6, 1)), keras.layers.Conv3D(4, 3, padding="same", activation="relu"),
                             keras.layers.MaxPooling3D(), keras.layers.Conv3DTranspose(2, 2, strides=2),
                             keras.layers.GlobalAveragePooling3D(), keras.layers.Dense(2)])


@pytest.mark.parametrize("make,shape,ints", [(_sequential_cnn, (28, 28, 1), False), (_functional_resnet, (12, 12, 3), False),
                                             (_nested, (10, 10, 2), False), (_text, (40,), True),
                                             (_volume, (6, 6, 6, 1), False)],
                         ids=["sequential", "functional", "nested", "text", "volume"])
def test_keras_saved_models_load_and_predict_alike(make, shape, ints, keras, tmp_path, rng):
    theirs = make(keras)
    # non-trivial weights (batch-norm statistics included)
    theirs.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3 + (1 if "variance" in w.path else 0)
                        for w in theirs.weights])
    theirs.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy"
                   if theirs.output_shape[-1] > 1 else "binary_crossentropy", metrics=["accuracy"])
    path = tmp_path / "keras_model.keras"
    theirs.save(path)
    ours = cnnfast.models.load_model(path)
    x = rng.integers(0, 100, (4,) + shape).astype(np.int32) if ints else rng.random((4,) + shape).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-4, atol=1e-5)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    assert ours.compiled and type(ours.optimizer).__name__ == "Adam"
    assert ours.optimizer.learning_rate == pytest.approx(2e-3)
    y = rng.integers(0, 2, 4)
    ours.fit(x, y, epochs=1, verbose=0)   # trains on from there


def test_what_cnnfast_cannot_rebuild_is_named(keras, tmp_path):
    inputs = keras.Input((5, 3))
    lstm = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.LSTM(4, name="memory")(inputs)))
    lstm.save(tmp_path / "lstm.keras")
    with pytest.raises(ValueError, match="Keras layer class 'LSTM' is not one cnnfast has"):
        cnnfast.models.load_model(tmp_path / "lstm.keras")

    class Custom(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Custom()
    model(np.zeros((1, 3), np.float32))
    model.save(tmp_path / "custom.keras")
    with pytest.raises(ValueError, match="cannot be rebuilt|not one cnnfast has"):
        cnnfast.models.load_model(tmp_path / "custom.keras")

    lambda_model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2)])
    lambda_model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError):
        cnnfast.models.load_model(tmp_path / "lambda.keras")


def test_an_unsupported_argument_value_is_refused(keras, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, lora_rank=2)])
    model.save(tmp_path / "lora.keras")
    with pytest.raises(ValueError, match="Dense 'dense.*lora_rank"):
        cnnfast.models.load_model(tmp_path / "lora.keras")

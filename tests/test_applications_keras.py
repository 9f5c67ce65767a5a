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


# --- weights files --------------------------------------------------------------------------
def test_weights_table_is_keras_s(keras):
    from keras.src.applications import efficientnet, mobilenet_v2, resnet, vgg16, xception
    assert imagenet_weights("resnet50", True) == (
        "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        resnet.BASE_WEIGHTS_PATH + "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        resnet.WEIGHTS_HASHES["resnet50"][0])
    assert imagenet_weights("resnet50", False)[1:] == (
        resnet.BASE_WEIGHTS_PATH + "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        resnet.WEIGHTS_HASHES["resnet50"][1])
    assert imagenet_weights("vgg16", True)[1] == vgg16.WEIGHTS_PATH
    assert imagenet_weights("vgg16", False)[1] == vgg16.WEIGHTS_PATH_NO_TOP
    assert imagenet_weights("xception", True)[1] == xception.WEIGHTS_PATH
    assert imagenet_weights("xception", False)[1] == xception.WEIGHTS_PATH_NO_TOP
    for include_top, k in ((True, 0), (False, 1)):
        fname, url, file_hash = imagenet_weights("efficientnetb0", include_top)
        assert url == efficientnet.BASE_WEIGHTS_PATH + fname and file_hash == efficientnet.WEIGHTS_HASHES["b0"][k]
    assert imagenet_weights("mobilenet_v2", False, alpha=0.35, rows=96)[1] == (
        mobilenet_v2.BASE_WEIGHT_PATH + "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5")


@pytest.mark.parametrize("name", ["ResNet50", "EfficientNetB0", "Xception"])
def test_imagenet_weights_are_keras_s_file_fetched_as_keras_does(keras, monkeypatch, tmp_path, name, rng):
    """``weights="imagenet"`` asks get_file for Keras's file (same name, URL, cache dir and hash as
    Keras asks for) and loads it by position; here both get a Keras legacy HDF5 file of random
    weights instead of the download. EfficientNet's ImageNet variant has the extra Rescaling."""
    pytest.importorskip("h5py")
    import h5py
    import keras.src.utils.file_utils as keras_file_utils
    from keras.src.legacy.saving import legacy_h5_format
    import cnnfast.utils.file_utils as our_file_utils

    size = 71 if name == "Xception" else 64
    shape = (size, size, 3)
    source = getattr(keras.applications, name)(weights=None, input_shape=shape, include_top=False)
    _randomize_keras(source, rng)
    path = str(tmp_path / "weights.h5")
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    requests = []

    def fake_get_file(fname=None, origin=None, cache_subdir="datasets", file_hash=None, **kwargs):
        requests.append((fname, origin, cache_subdir, file_hash))
        return path

    monkeypatch.setattr(keras_file_utils, "get_file", fake_get_file)
    monkeypatch.setattr(our_file_utils, "get_file", fake_get_file)
    theirs = getattr(keras.applications, name)(weights="imagenet", input_shape=shape, include_top=False,
                                              pooling="avg")
    ours = getattr(applications, name)(weights="imagenet", input_shape=shape, include_top=False,
                                       pooling="avg")
    assert requests[0] == requests[1] and requests[0][2] == "models"
    _assert_same_architecture(ours, theirs)
    x = _images(rng, size, None if name == "EfficientNetB0" else "caffe" if name == "ResNet50" else "tf")
    _assert_close(ours.predict(x, verbose=0), _keras_predict(keras, theirs, x))


def test_weights_path_loads_a_keras_weights_file(keras, tmp_path, rng):
    pytest.importorskip("h5py")
    theirs = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3), alpha=0.5, classes=5)
    _randomize_keras(theirs, rng)
    path = str(tmp_path / "mobilenet.weights.h5")
    theirs.save_weights(path)
    ours = applications.MobileNetV2(weights=path, input_shape=(64, 64, 3), alpha=0.5, classes=5)
    x = _images(rng, 64, "tf")
    _assert_close(ours.predict(x, verbose=0), _keras_predict(keras, theirs, x))


# --- arguments and input shapes -------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda A: A.ResNet50(weights="imagenet", input_shape=(64, 64, 3)),
    lambda A: A.VGG16(weights=None, input_shape=(16, 16, 3)),
    lambda A: A.Xception(weights=None, input_shape=(64, 64, 3), include_top=False),
    lambda A: A.EfficientNetB0(weights=None, input_shape=(None, None, 3)),
    lambda A: A.ResNet50(weights="imagenet", include_top=False, input_shape=(64, 64, 1)),
    lambda A: A.VGG16(weights=None, input_shape=(64, 64)),
    lambda A: A.ResNet50(weights="imagenet", classes=10),
    lambda A: A.MobileNetV2(weights="imagenet", alpha=0.6, include_top=False),
    lambda A: A.ResNet50(weights="no/such/file.h5"),
    lambda A: A.ResNet50(weights="imagenet", classifier_activation="relu"),
])
def test_argument_errors_are_keras_s(keras, call):
    with pytest.raises(ValueError) as want:
        call(keras.applications)
    with pytest.raises(ValueError) as got:
        call(applications)
    expected = str(want.value)
    if "classifier_activation=" in expected:   # Keras prints the function object
        expected = expected.split("Received")[0]
    assert expected in str(got.value)


def test_obtain_input_shape_rules():
    rule = imagenet_utils.obtain_input_shape
    assert rule(None, 224, 32, "channels_last", require_flatten=True) == (224, 224, 3)
    assert rule(None, 224, 32, "channels_last", require_flatten=False) == (None, None, 3)
    assert rule((64, 96, 3), 224, 32, "channels_last", require_flatten=False, weights="imagenet") == (64, 96, 3)
    assert rule(None, 299, 71, "channels_last", require_flatten=True, weights="imagenet") == (299, 299, 3)
    with pytest.warns(UserWarning, match="1 or 3 input channels"):
        assert rule((64, 64, 5), 224, 32, "channels_last", require_flatten=False) == (64, 64, 5)
    with pytest.raises(ValueError, match="channels_last"):
        rule(None, 224, 32, "channels_first", require_flatten=True)


def test_input_tensor_and_default_shapes(keras):
    from cnnfast import layers, models
    inp = layers.Input((96, 96, 3), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1)(inp)
    model = applications.MobileNetV2(weights=None, input_tensor=x, include_top=False, pooling="avg")
    # Keras picks the 96x96 weights for this tensor but names the model from input_shape (None)
    assert model.inputs[0] is inp and model.name == "mobilenetv2_1.00_None"
    assert model.output_shape == (None, 1280)
    assert keras.applications.MobileNetV2(weights=None, input_tensor=keras.Input((96, 96, 3)),
                                          include_top=False).name == model.name
    feature = applications.ResNet50(weights=None, include_top=False)
    assert feature.inputs[0].shape == (None, None, None, 3) and feature.output_shape == (None, None, None, 2048)
    assert models.Model(inp, model.outputs[0]).count_params() == model.count_params()
    with pytest.raises(ValueError, match="input_tensor must be a symbolic tensor"):
        applications.VGG16(weights=None, input_tensor=np.zeros((1, 224, 224, 3)))


def test_summary_text_is_keras_s(keras, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")   # rich would cut Keras's table at a terminal's width
    keras_lines = []
    theirs = keras.applications.ResNet50(weights=None, input_tensor=keras.Input((64, 64, 3), name="image"),
                                         classes=10)
    theirs.summary(print_fn=lambda line, **kw: keras_lines.append(line), line_length=120)
    from cnnfast import layers
    ours = applications.ResNet50(weights=None, input_tensor=layers.Input((64, 64, 3), name="image"), classes=10)
    our_lines = []
    ours.summary(print_fn=lambda line, **kw: our_lines.append(line), line_length=120)
    assert "\n".join(our_lines).strip() == "\n".join(keras_lines).strip()


# --- preprocessing and decoding ---------------------------------------------------------------------
@pytest.mark.parametrize("module", ["resnet", "vgg16", "mobilenet_v2", "xception", "efficientnet"])
def test_preprocess_input_matches_keras(keras, module, rng):
    import importlib
    theirs = importlib.import_module(f"keras.applications.{'resnet50' if module == 'resnet' else module}")
    ours = getattr(applications, module)
    images = rng.integers(0, 256, (2, 5, 4, 3)).astype(np.uint8)
    for x in (images, images.astype(np.float32), images[0].astype(np.float64)):
        want = theirs.preprocess_input(x.copy())
        got = ours.preprocess_input(x.copy())
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    torch_mode = imagenet_utils.preprocess_input(images.astype(np.float32), mode="torch")
    np.testing.assert_allclose(
        torch_mode, keras.applications.imagenet_utils.preprocess_input(images.astype(np.float32), mode="torch"),
        rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="Expected mode to be one of"):
        imagenet_utils.preprocess_input(images, mode="bgr")


def test_decode_predictions_matches_keras_with_the_same_class_index(keras, monkeypatch, rng):
    import keras.src.applications.imagenet_utils as keras_utils
    import keras.src.utils.file_utils as keras_file_utils
    with open(imagenet_utils.CLASS_INDEX_FILE, "rb") as f:
        shipped_md5 = hashlib.md5(f.read()).hexdigest()
    asked = []

    def fake_get_file(fname=None, origin=None, cache_subdir="datasets", file_hash=None, **kwargs):
        asked.append((fname, file_hash))
        return imagenet_utils.CLASS_INDEX_FILE

    monkeypatch.setattr(keras_file_utils, "get_file", fake_get_file)
    monkeypatch.setattr(keras_utils, "CLASS_INDEX", None)
    preds = rng.dirichlet(np.ones(1000), size=3).astype(np.float32)
    want = keras.applications.imagenet_utils.decode_predictions(preds, top=4)
    # the shipped file is the one Keras downloads: the hash Keras checks it against
    assert asked == [("imagenet_class_index.json", shipped_md5)]
    got = applications.resnet.decode_predictions(preds, top=4)
    assert got == want
    index = imagenet_utils._class_index()
    assert len(index) == 1000 and index["0"] == ["n01440764", "tench"]
    assert index["999"] == ["n15075141", "toilet_tissue"]
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\)"):
        applications.vgg16.decode_predictions(preds[:, :10])



# --- training -------------------------------------------------------------------------------------
def test_training_gradients_match_keras(keras, rng):
    """One training-mode batch (batch statistics in BatchNormalization) through EfficientNetB0:
    cnnfast's loss and weight gradients against PyTorch autograd through Keras's model, with the
    dropout rates at 0 so both run the same network. EfficientNet is smooth (swish, sigmoid);
    through ReLU/ReLU6 models a pre-activation within float32 rounding of a kink can take the
    other branch in one framework, which moves deep gradients by up to ~1% at random."""
    import torch
    size = 64
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=5)
    theirs = keras.applications.EfficientNetB0(**kwargs)
    ours = applications.EfficientNetB0(**kwargs)
    _randomize_keras(theirs, rng)
    _copy_weights(ours, theirs)
    for model in (ours, theirs):
        for layer in model.layers:
            if type(layer).__name__ == "Dropout":
                layer.rate = 0.0
    x = _images(rng, size, None, n=4)
    y = np.array([0, 3, 1, 4])
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    loss, grads = ours._gradients(x, y)
    out = theirs(torch.tensor(x), training=True)
    ref_loss = torch.nn.functional.nll_loss(torch.log(out), torch.tensor(y))
    ref_loss.backward()
    np.testing.assert_allclose(loss, ref_loss.item(), rtol=1e-4)
    want = [v.value.grad.numpy() for v in theirs.trainable_weights]
    assert len(grads) == len(want)
    # a BatchNormalization beta feeding (through a linear 1x1 conv) another training-mode
    # BatchNormalization has a zero gradient in exact arithmetic: compare it on the global scale
    scale = max(float(np.linalg.norm(w)) for w in want)
    for var, g, w in zip(ours.trainable_weights, grads, want):
        assert g.shape == w.shape, var.path
        assert np.linalg.norm(g - w) <= 1e-3 * np.linalg.norm(w) + 1e-5 * scale, var.path


def test_fit_fine_tunes_a_feature_extractor(rng):
    from cnnfast import layers, models
    base = applications.EfficientNetB0(weights=None, include_top=False, pooling="avg", input_shape=(32, 32, 3))
    inputs = layers.Input((32, 32, 3))
    outputs = layers.Dense(2, activation="softmax")(base(inputs))
    model = models.Model(inputs, outputs)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    y = (x[..., 0].mean(axis=(1, 2)) > x[..., 2].mean(axis=(1, 2))).astype(np.int64)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = base.get_layer("block6a_se_expand").get_weights()[0].copy()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(before, base.get_layer("block6a_se_expand").get_weights()[0])

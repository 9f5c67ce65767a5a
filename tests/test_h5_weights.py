"""Keras's HDF5 weight files: Keras 3 ``.weights.h5`` both ways and legacy ``.h5`` (Keras's own
writers produce the files), with predictions compared against Keras on its torch backend."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
h5py = pytest.importorskip("h5py")

import cnnfast  # noqa: E402
from cnnfast import layers as cl, models as cm  # noqa: E402
from cnnfast.models import h5_format  # noqa: E402
from cnnfast.saving import InvalidFileError  # noqa: E402


# --------------------------------------------------------------------------------------------
# the same architectures, written once against the Keras-shaped API of either library

def branchy_model(lib, names=False):
    """Every weighted layer kind, a nested functional model, a frozen layer and a branch whose
    creation order differs from Keras's layer order (the 1x1 shortcut conv is created after the
    3x3 main conv, at the same depth, but Keras's walk from the output meets it first)."""
    L, Model = lib.layers, lib.models.Model
    n = (lambda s: s) if names else (lambda s: None)
    inner_in = L.Input((8, 8, 6))
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name=n("inner_dw"))(inner_in)
    y = L.BatchNormalization(name=n("inner_bn"))(y)
    y = L.Conv2D(6, 1, name=n("inner_pw"))(y)
    inner = Model(inner_in, y, name=n("inner"))
    inputs = L.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name=n("stem"))(inputs)
    x = L.BatchNormalization(name=n("stem_bn"))(x)
    main = inner(x)
    main = L.Conv2D(6, 3, padding="same", name=n("main_conv"))(main)
    shortcut = L.Conv2D(6, 1, name=n("shortcut"))(x)
    x = L.Add()([shortcut, main])  # Keras's walk meets the shortcut first: it is conv2d_1 there
    x = L.SeparableConv2D(5, 3, depth_multiplier=2, name=n("sep"))(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same", name=n("up"))(x)
    frozen = L.BatchNormalization(name=n("frozen_bn"))
    frozen.trainable = False
    x = frozen(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(7, activation="softmax", name=n("head"))(x)
    return Model(inputs, x, name=n("branchy"))


def sequential_model(lib):
    L = lib.layers
    inner = lib.models.Sequential([L.Input((6,)), L.Dense(5, activation="relu"), L.BatchNormalization()])
    return lib.models.Sequential([L.Input((4,)), L.Dense(6, activation="tanh"), inner, L.Dense(3)])


def randomize(weights, rng):
    """Random values for every weight (variances positive), so BN statistics matter too."""
    return [np.abs(rng.normal(1.0, 0.3, w.shape)).astype(np.float32) + 0.1 if w.ndim == 1
            else rng.normal(0.0, 0.4, w.shape).astype(np.float32) for w in weights]


def keras_outputs(model, x):
    return np.asarray(model.predict(x, verbose=0))


def cnnfast_outputs(model, x):
    return np.asarray(model.predict(x, verbose=0))


def as_text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def snapshot(model):
    return [w.copy() for w in model.get_weights()]


def assert_unchanged(model, before):
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def x_image(rng):
    return rng.normal(size=(2, 8, 8, 3)).astype(np.float32)


@pytest.fixture
def keras_branchy(keras, rng):
    model = branchy_model(keras)
    model.set_weights(randomize(model.get_weights(), rng))
    return model


# --------------------------------------------------------------------------------------------
# Keras 3 .weights.h5

def test_keras3_file_from_keras_loads_into_cnnfast(keras, keras_branchy, x_image, tmp_path):
    path = tmp_path / "k.weights.h5"
    keras_branchy.save_weights(path)
    model = branchy_model(cnnfast)
    model.load_weights(path)
    np.testing.assert_allclose(cnnfast_outputs(model, x_image), keras_outputs(keras_branchy, x_image),
                               rtol=1e-4, atol=1e-6)


def test_keras3_file_from_cnnfast_loads_into_keras(keras, rng, x_image, tmp_path):
    model = branchy_model(cnnfast)
    model.set_weights(randomize(model.get_weights(), rng))
    path = tmp_path / "c.weights.h5"
    model.save_weights(path)
    k_model = branchy_model(keras)
    k_model.load_weights(path)
    np.testing.assert_allclose(keras_outputs(k_model, x_image), cnnfast_outputs(model, x_image),
                               rtol=1e-4, atol=1e-6)
    # the layout is Keras's: class-and-position groups, each tagged with the layer's name
    with h5py.File(path, "r") as f:
        assert f["layers/functional/layers/depthwise_conv2d/vars/0"].shape == (3, 3, 6, 2)
        separable = next(layer for layer in model.layers if isinstance(layer, cl.SeparableConv2D))
        assert f["layers/separable_conv2d/vars"].attrs["name"] == separable.name
        assert f["layers/conv2d_1/vars/0"].shape == (1, 1, 6, 6)  # the shortcut, in Keras's order
        assert f["vars"].attrs["name"] == model.name


def test_layer_order_is_keras_order(keras):
    k_names = [type(layer).__name__ + str(layer.kernel.shape if hasattr(layer, "kernel") else "")
               for layer in branchy_model(keras).layers]
    c_names = [type(layer).__name__ + str(layer.kernel.shape if hasattr(layer, "kernel") else "")
               for layer in h5_format.keras_layer_order(branchy_model(cnnfast))]
    assert c_names == [n.replace("Functional", "Model") for n in k_names]
    assert c_names != [type(layer).__name__ + str(layer.kernel.shape if hasattr(layer, "kernel") else "")
                       for layer in branchy_model(cnnfast).layers]


def test_keras3_round_trip_sequential_nested(keras, rng, tmp_path):
    k_model = sequential_model(keras)
    k_model.set_weights(randomize(k_model.get_weights(), rng))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    k_model.save_weights(tmp_path / "k.weights.h5")
    model = sequential_model(cnnfast)
    model.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(cnnfast_outputs(model, x), keras_outputs(k_model, x), rtol=1e-5, atol=1e-6)
    model.save_weights(tmp_path / "c.weights.h5")
    again = sequential_model(keras)
    again.load_weights(tmp_path / "c.weights.h5")
    for a, b in zip(again.get_weights(), k_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def normalization_model(lib):
    L = lib.layers
    return lib.models.Sequential([L.Input((5, 5, 6)), L.Normalization(), L.Conv2D(8, 3),
                                  L.LayerNormalization(), L.PReLU(), L.GroupNormalization(groups=4),
                                  L.Flatten(), L.Dense(3)])


def test_normalization_and_prelu_layers_both_layouts(keras, rng, tmp_path):
    """Normalization (mean, variance, count), LayerNormalization, GroupNormalization, PReLU."""
    k_model = normalization_model(keras)
    k_model.set_weights(randomize(k_model.get_weights(), rng))
    x = rng.normal(size=(2, 5, 5, 6)).astype(np.float32)
    expected = keras_outputs(k_model, x)
    k_model.save_weights(tmp_path / "k.weights.h5")
    write_legacy(keras, k_model, tmp_path / "k.h5")
    for path in ("k.weights.h5", "k.h5"):
        model = normalization_model(cnnfast)
        model.load_weights(tmp_path / path)
        np.testing.assert_allclose(cnnfast_outputs(model, x), expected, rtol=1e-4, atol=1e-5)
    model.save_weights(tmp_path / "c.weights.h5")
    again = normalization_model(keras)
    again.load_weights(tmp_path / "c.weights.h5")
    np.testing.assert_allclose(keras_outputs(again, x), expected, rtol=1e-5, atol=1e-6)


def test_keras_zip_weights_load(keras, keras_branchy, x_image, tmp_path):
    path = tmp_path / "k.keras"
    keras_branchy.save(path)
    model = branchy_model(cnnfast)
    model.load_weights(path)
    np.testing.assert_allclose(cnnfast_outputs(model, x_image), keras_outputs(keras_branchy, x_image),
                               rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# legacy HDF5 (layer_names / weight_names)

def write_legacy(keras, model, path):
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_legacy_weights_file_loads_by_position(keras, keras_branchy, x_image, tmp_path):
    path = tmp_path / "legacy.h5"
    write_legacy(keras, keras_branchy, path)
    model = branchy_model(cnnfast)
    model.load_weights(path)
    np.testing.assert_allclose(cnnfast_outputs(model, x_image), keras_outputs(keras_branchy, x_image),
                               rtol=1e-4, atol=1e-6)


def as_keras2_file(path):
    """Rewrite a legacy file the way Keras 2 and keras-applications wrote them: fixed-length byte
    strings in ``layer_names``/``weight_names`` and TensorFlow's ``:0`` suffix on dataset names."""
    with h5py.File(path, "a") as f:
        names = [as_text(n) for n in f.attrs["layer_names"]]
        f.attrs["layer_names"] = np.array([n.encode() for n in names], dtype="S")
        for name in names:
            group = f[name]
            weight_names = [as_text(w) for w in group.attrs["weight_names"]]
            for w in weight_names:
                group.move(w, w + ":0")
            group.attrs["weight_names"] = np.array([(w + ":0").encode() for w in weight_names], dtype="S")


def test_keras2_style_legacy_file_loads(keras, rng, tmp_path):
    k_model = sequential_model(keras)
    k_model.set_weights(randomize(k_model.get_weights(), rng))
    path = tmp_path / "keras2.h5"
    write_legacy(keras, k_model, path)
    as_keras2_file(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["layer_names"].dtype.kind == "S"
    model = sequential_model(cnnfast)
    model.load_weights(path)
    x = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(cnnfast_outputs(model, x), keras_outputs(k_model, x), rtol=1e-5, atol=1e-6)


def test_legacy_frozen_nested_model_order(keras, keras_branchy, x_image, tmp_path):
    """A frozen nested model lists all its weights as non-trainable, so its BN statistics move
    ahead of the conv after it: the file order changes and must still line up."""
    def freeze_inner(model):
        inner = next(layer for layer in model.layers if hasattr(layer, "layers"))
        inner.trainable = False

    freeze_inner(keras_branchy)
    path = tmp_path / "frozen.h5"
    write_legacy(keras, keras_branchy, path)
    model = branchy_model(cnnfast)
    freeze_inner(model)
    model.load_weights(path)
    np.testing.assert_allclose(cnnfast_outputs(model, x_image), keras_outputs(keras_branchy, x_image),
                               rtol=1e-4, atol=1e-6)
    unfrozen = branchy_model(cnnfast)  # positions differ: the BN statistics meet a conv kernel
    with pytest.raises(ValueError, match="expects shape"):
        unfrozen.load_weights(path)


def test_legacy_full_model_file_loads(keras, keras_branchy, x_image, tmp_path):
    path = tmp_path / "full.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_branchy.save(path)  # Keras's legacy writer: weights under 'model_weights'
    with h5py.File(path, "r") as f:
        assert "model_weights" in f and "layer_names" not in f.attrs
    model = branchy_model(cnnfast)
    model.load_weights(path)
    np.testing.assert_allclose(cnnfast_outputs(model, x_image), keras_outputs(keras_branchy, x_image),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="HDF5"):
        cnnfast.models.load_model(path)


def test_legacy_by_name_loads_matching_layers_only(keras, rng, tmp_path):
    k_model = branchy_model(keras, names=True)
    k_model.set_weights(randomize(k_model.get_weights(), rng))
    path = tmp_path / "named.h5"
    write_legacy(keras, k_model, path)
    L = cl
    inputs = L.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="stem")(inputs)
    x = L.Conv2D(4, 1, name="not_in_file")(x)  # the head sees 4 channels, as in the file
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(7, name="head")(x)
    model = cm.Model(inputs, x)
    untouched = model.get_layer("not_in_file").get_weights()
    model.load_weights(path, by_name=True)
    for name in ("stem", "head"):
        for a, b in zip(model.get_layer(name).get_weights(), k_model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(model.get_layer("not_in_file").get_weights(), untouched):
        np.testing.assert_array_equal(a, b)
    # a same-named layer of another shape: an error naming it, or a warning with skip_mismatch
    inputs = L.Input((8, 8, 3))
    y = L.Conv2D(9, 3, padding="same", name="stem")(inputs)
    y = L.Conv2D(4, 1)(y)
    other = cm.Model(inputs, L.Dense(7, name="head")(L.GlobalAveragePooling2D()(y)))
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"stem.*\(3, 3, 3, 9\).*\(3, 3, 3, 6\)"):
        other.load_weights(path, by_name=True)
    assert_unchanged(other, before)
    with pytest.warns(UserWarning, match="stem"):
        other.load_weights(path, by_name=True, skip_mismatch=True)
    np.testing.assert_array_equal(other.get_layer("head").get_weights()[0],
                                  k_model.get_layer("head").get_weights()[0])
    assert_unchanged(other.get_layer("stem"), before[:2])


def test_legacy_skip_mismatch_by_position(keras, keras_branchy, x_image, tmp_path):
    path = tmp_path / "legacy.h5"
    write_legacy(keras, keras_branchy, path)
    model = branchy_model(cnnfast)
    # the same layers, but a head of 3 units instead of 7
    head_in = model.get_layer(index=len(model.layers) - 2).output
    variant = cm.Model(model.inputs[0], cl.Dense(3, activation="softmax")(head_in))
    before = snapshot(variant)
    with pytest.raises(ValueError, match=r"expects shape \(4, 3\).*has shape \(4, 7\)"):
        variant.load_weights(path)
    assert_unchanged(variant, before)
    with pytest.warns(UserWarning, match=r"expects shape \(4, 3\)"):
        variant.load_weights(path, skip_mismatch=True)
    np.testing.assert_array_equal(variant.layers[-1].get_weights()[0], before[-2])
    # everything below the head loaded: the features match Keras's
    k_features = keras.Model(keras_branchy.inputs, keras_branchy.layers[-2].output)
    c_features = cm.Model(variant.inputs[0], head_in)
    np.testing.assert_allclose(cnnfast_outputs(c_features, x_image), keras_outputs(k_features, x_image),
                               rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# robustness: nothing changes unless the whole file matched

def test_truncated_file_is_refused_and_weights_unchanged(keras, keras_branchy, tmp_path):
    path = tmp_path / "k.weights.h5"
    keras_branchy.save_weights(path)
    data = path.read_bytes()
    model = branchy_model(cnnfast)
    before = snapshot(model)
    for cut in (len(data) // 2, 100):
        bad = tmp_path / f"cut{cut}.weights.h5"
        bad.write_bytes(data[:cut])
        with pytest.raises(InvalidFileError, match="cut"):
            model.load_weights(bad)
        assert_unchanged(model, before)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(InvalidFileError, match="HDF5"):
        model.load_weights(garbage)


def test_damaged_bytes_raise_value_errors_only(tmp_path):
    """Bytes overwritten anywhere in a file: the load succeeds (the damage hit data) or raises a
    ValueError (InvalidFileError or a mismatch), never another exception, and a failed load
    leaves the weights as they were."""
    model = sequential_model(cnnfast)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    data = path.read_bytes()
    rng = np.random.default_rng(7)
    target = sequential_model(cnnfast)
    failures = 0
    for trial in range(40):
        damaged = bytearray(data)
        offset = int(rng.integers(0, len(data) - 8))
        damaged[offset:offset + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        bad = tmp_path / f"d{trial}.weights.h5"
        bad.write_bytes(bytes(damaged))
        before = snapshot(target)
        try:
            target.load_weights(bad)
        except ValueError:
            failures += 1
            assert_unchanged(target, before)
    assert failures > 0  # some of the damage hit the file's structure


def test_other_architecture_and_missing_layer(keras, keras_branchy, tmp_path):
    path = tmp_path / "k.weights.h5"
    keras_branchy.save_weights(path)
    legacy = tmp_path / "legacy.h5"
    write_legacy(keras, keras_branchy, legacy)
    seq = sequential_model(cnnfast)
    before = snapshot(seq)
    with pytest.raises(ValueError, match=r"layer 'dense.*\(Dense, 'layers/dense'\).*\(4, 6\).*\(4, 7\)"):
        seq.load_weights(path)
    with pytest.raises(ValueError, match="layer count mismatch: the model has 3 .*the file has 9"):
        seq.load_weights(legacy)
    assert_unchanged(seq, before)

    # a layer group removed from the file (the last one, so everything before it matched)
    with h5py.File(path, "a") as f:
        del f["layers/dense"]
    model = branchy_model(cnnfast)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layer '.*' \(Dense, 'layers/dense'\) expects 2 weight.*nothing"):
        model.load_weights(path)
    assert_unchanged(model, before)
    with pytest.warns(UserWarning, match="layers/dense"):
        model.load_weights(path, skip_mismatch=True)
    head = model.layers[-1]
    np.testing.assert_array_equal(head.get_weights()[0], before[-2])  # skipped, kept
    assert not np.array_equal(model.get_weights()[0], before[0])      # the rest loaded

    with h5py.File(legacy, "a") as f:
        names = list(f.attrs["layer_names"])
        victim = as_text(names[1])
        del f[victim]
    with pytest.raises(InvalidFileError, match=f"lists '{victim}' but the file has no group"):
        model.load_weights(legacy)


def test_shape_mismatch_names_layer_and_shapes(keras, keras_branchy, tmp_path):
    path = tmp_path / "k.weights.h5"
    keras_branchy.save_weights(path)
    with h5py.File(path, "a") as f:
        del f["layers/conv2d/vars/0"]
        f["layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 7), np.float32)
    model = branchy_model(cnnfast)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"\(3, 3, 3, 6\).*\(3, 3, 3, 7\)"):
        model.load_weights(path)
    assert_unchanged(model, before)


def test_links_and_foreign_files_refused(keras, keras_branchy, tmp_path):
    path = tmp_path / "k.weights.h5"
    keras_branchy.save_weights(path)
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = h5py.ExternalLink("/etc/other.h5", "/x")
    model = branchy_model(cnnfast)
    with pytest.raises(InvalidFileError, match="ExternalLink"):
        model.load_weights(path)
    empty = tmp_path / "empty.weights.h5"
    with h5py.File(empty, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(InvalidFileError, match="not a Keras weights file"):
        model.load_weights(empty)
    strings = tmp_path / "strings.h5"
    write_legacy(keras, keras_branchy, strings)
    with h5py.File(strings, "a") as f:
        name = as_text(f.attrs["layer_names"][1])
        group = f[name]
        first = as_text(group.attrs["weight_names"][0])
        del group[first]
        group[first] = np.array([b"not numbers"] * 3)
    with pytest.raises(InvalidFileError, match="expected numbers"):
        model.load_weights(strings)


def test_file_name_rules(tmp_path):
    model = sequential_model(cnnfast)
    with pytest.raises(ValueError, match=r"'\.weights\.h5'"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match="by_name only applies to legacy"):
        model.load_weights(tmp_path / "w.weights.npz", by_name=True)
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="by_name only applies to legacy"):
        model.load_weights(tmp_path / "w.weights.h5", by_name=True)
    with pytest.raises(FileExistsError):
        model.save_weights(tmp_path / "w.weights.h5", overwrite=False)


def test_h5py_is_optional(tmp_path, monkeypatch):
    code = ("import sys, cnnfast, cnnfast.saving, cnnfast.models; "
            "assert 'h5py' not in sys.modules, 'import cnnfast imported h5py'")
    subprocess.run([sys.executable, "-c", code], check=True)
    model = sequential_model(cnnfast)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'cnnfast\[h5\]'"):
        model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ImportError, match=r"load_weights.*cnnfast\[h5\]"):
        model.load_weights(tmp_path / "w.h5")


# --------------------------------------------------------------------------------------------
# Keras applications: a legacy file Keras writes for its MobileNetV2

def test_keras_mobilenet_v2_legacy_file_loads_into_cnnfast_application(keras, rng, tmp_path):
    applications = pytest.importorskip("cnnfast.applications")
    k_model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                             classifier_activation=None)
    # Keras's initial kernels; random BN parameters and statistics, mild enough for 50 layers
    k_model.set_weights([w if w.ndim > 1 else rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                         for w in k_model.get_weights()])
    path = tmp_path / "mobilenet_v2.h5"
    write_legacy(keras, k_model, path)  # the layout of keras-applications' published files
    model = applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                     classifier_activation=None)
    model.load_weights(path)
    weighted = [layer for layer in k_model.layers if layer.weights]
    assert len(weighted) == 105
    for k_layer in weighted:  # the same names: every layer got its own arrays
        for a, b in zip(model.get_layer(k_layer.name).get_weights(), k_layer.get_weights()):
            np.testing.assert_array_equal(a, b)
    x = rng.uniform(-1.0, 1.0, size=(2, 32, 32, 3)).astype(np.float32)
    expected = keras_outputs(k_model, x)
    np.testing.assert_allclose(cnnfast_outputs(model, x), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())
    # and the Keras 3 layout, both ways
    model.save_weights(tmp_path / "m.weights.h5")
    again = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35,
                                           classifier_activation=None)
    again.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(again.get_weights(), k_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_writes_keras_weights(keras, rng, tmp_path):
    model = sequential_model(cnnfast)
    model.compile(optimizer="sgd", loss="mse")
    x, y = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(8, 3)).astype(np.float32)
    checkpoint = cnnfast.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"),
                                                   save_weights_only=True)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[checkpoint])
    k_model = sequential_model(keras)
    k_model.load_weights(tmp_path / "e2.weights.h5")
    np.testing.assert_allclose(keras_outputs(k_model, x), cnnfast_outputs(model, x), rtol=1e-5, atol=1e-6)

"""ONNX export of the preprocessing layers, run in ONNX Runtime: random augmentations are
identities at inference; Resizing (bilinear, nearest, crop to aspect ratio, channels_first),
CenterCrop (larger and smaller inputs) and RandomCrop's inference form match cnnfast's predict."""
import numpy as np
import pytest

import cnnfast
from cnnfast import layers

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

CASES = [
    lambda: [layers.RandomFlip(seed=1), layers.RandomRotation(0.2, seed=1), layers.RandomZoom(0.1, seed=1),
             layers.RandomTranslation(0.1, 0.1, seed=1), layers.RandomContrast(0.3, seed=1),
             layers.RandomBrightness(0.2, seed=1), layers.Resizing(9, 13)],
    lambda: [layers.Resizing(10, 7, interpolation="nearest")],
    lambda: [layers.Resizing(31, 25, interpolation="nearest")],
    lambda: [layers.Resizing(10, 7, crop_to_aspect_ratio=True)],
    lambda: [layers.CenterCrop(8, 9)],
    lambda: [layers.CenterCrop(20, 14)],
    lambda: [layers.RandomCrop(11, 5, seed=1)],
    lambda: [layers.Conv2D(3, 3), layers.Resizing(20, 30), layers.Conv2D(2, 1)],
    lambda: [layers.Resizing(10, 7, data_format="channels_first")],
]


@pytest.mark.parametrize("make", CASES)
def test_image_layers_export(make, tmp_path, rng):
    model = cnnfast.Sequential([cnnfast.Input((15, 12, 3))] + make())
    path = tmp_path / "image.onnx"
    model.export(str(path), format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.random((3, 15, 12, 3)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=2e-6)


def test_what_is_not_exported_is_named(tmp_path):
    for layer in (layers.Resizing(8, 8, antialias=True, name="smooth"),
                  layers.Resizing(8, 8, pad_to_aspect_ratio=True, name="smooth"),
                  layers.Resizing(8, 8, interpolation="bicubic", name="smooth")):
        model = cnnfast.Sequential([cnnfast.Input((15, 12, 3)), layer])
        with pytest.raises(ValueError, match="layer 'smooth'"):
            model.export(str(tmp_path / "x.onnx"), format="onnx")
    model = cnnfast.Sequential([cnnfast.Input((None, None, 3)), layers.Resizing(8, 8, name="open")])
    with pytest.raises(ValueError, match="layer 'open' .*needs known image height and width"):
        model.export(str(tmp_path / "x.onnx"), format="onnx")


@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_embedding_text_cnn_exports(dtype, tmp_path, rng):
    inputs = cnnfast.Input((40,), dtype=dtype)
    x = layers.Embedding(50, 8)(inputs)
    x = layers.Conv1D(6, 5, activation="relu")(x)
    outputs = layers.Dense(2, activation="softmax")(layers.GlobalMaxPooling1D()(x))
    model = cnnfast.Model(inputs, outputs)
    path = tmp_path / "text.onnx"
    model.export(str(path), format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = rng.integers(0, 50, (3, 40)).astype(dtype)
    got = session.run(None, {session.get_inputs()[0].name: ids})[0]
    np.testing.assert_allclose(got, model.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)


def test_text_vectorization_is_refused_with_the_reason(tmp_path):
    vectorize = layers.TextVectorization(max_tokens=20, output_sequence_length=5, name="tokens")
    vectorize.adapt(np.array(["a b c", "b c d"], dtype=object))
    strings = cnnfast.Input((1,), dtype="string")
    model = cnnfast.Model(strings, layers.Embedding(20, 4)(vectorize(strings)))
    with pytest.raises(ValueError, match="input .* holds string values|layer 'tokens' .*tokenising strings"):
        model.export(str(tmp_path / "x.onnx"), format="onnx")
    assert not (tmp_path / "x.onnx").exists()

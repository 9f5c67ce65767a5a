"""ONNX export of the image preprocessing layers, run in ONNX Runtime: random augmentations are
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

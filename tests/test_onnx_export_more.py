"""ONNX export of LayerNormalization, GroupNormalization, UnitNormalization, PReLU, ELU, Identity and
the dropout/noise layers (identities at inference), checked against onnxruntime."""
import numpy as np
import pytest

import cnnfast
from cnnfast import layers

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _randomize(model, rng):
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.5 + 0.5 for w in model.get_weights()])


def test_export_image_model(tmp_path, rng):
    inp = layers.Input((6, 6, 4))
    h = layers.Conv2D(8, 3, padding="same")(inp)     # NCHW inside the graph from here
    h = layers.GroupNormalization(groups=4)(h)
    h = layers.PReLU(shared_axes=[1, 2])(h)
    h = layers.SpatialDropout2D(0.3)(h)
    h = layers.GaussianNoise(0.1)(h)
    h = layers.ELU(alpha=0.5)(h)
    h = layers.LayerNormalization()(h)
    h = layers.PReLU()(h)
    h = layers.GaussianDropout(0.2)(h)
    h = layers.AlphaDropout(0.2)(h)
    h = layers.ActivityRegularization(l1=0.1)(h)
    h = layers.Identity()(h)
    h = layers.UnitNormalization()(h)
    h = layers.LayerNormalization(axis=[1, 2, 3])(h)
    h = layers.Flatten()(h)
    h = layers.GroupNormalization(groups=2)(h)
    model = cnnfast.Model(inp, h)
    _randomize(model, rng)
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    path = tmp_path / "more.onnx"
    model.export(path)
    np.testing.assert_allclose(_run(path, x), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_unexportable_options_are_named(tmp_path):
    inp = layers.Input((4, 3))
    model = cnnfast.Model(inp, layers.LayerNormalization(axis=1)(inp))
    with pytest.raises(ValueError, match="LayerNormalization .* axes running to the last axis"):
        model.export(tmp_path / "bad.onnx")
    model = cnnfast.Model(inp, layers.LayerNormalization()(inp))
    with pytest.raises(ValueError, match="opset >= 17"):
        model.export(tmp_path / "bad.onnx", opset_version=13)

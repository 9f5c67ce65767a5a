"""The layers Keras's ImageNet models need: Normalization, per-channel Rescaling, broadcasting
Add/Subtract/Multiply/Average, Dropout(noise_shape), hard_silu — forward against Keras 3 (torch
backend), backward against PyTorch autograd, configs, and a fit step through all of them."""
import os

import numpy as np
import pytest

import cnnfast
from cnnfast import activations, layers, models
from cnnfast.layers import base

os.environ.setdefault("KERAS_BACKEND", "torch")


def _forward_backward(layer, xs, dy, training=False):
    """Output and input gradients of one call of ``layer`` (a list of inputs for merges)."""
    ctx = {}
    if isinstance(xs, list):
        xs = [np.ascontiguousarray(x, np.float32) for x in xs]
        layer._maybe_build([(None,) + x.shape[1:] for x in xs])
    else:
        xs = np.ascontiguousarray(xs, np.float32)
        layer._maybe_build((None,) + xs.shape[1:])
    y = layer.forward(xs, training, ctx)
    base.new_grad_generation()
    return np.array(y), layer.backward(np.ascontiguousarray(dy, np.float32), ctx, True)


def _torch_grads(fn, xs, dy):
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in xs]
    y = fn(*ts)
    y.backward(torch.tensor(np.asarray(dy, np.float64)))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


# --- Normalization ------------------------------------------------------------------------------
def test_normalization_adapt_matches_keras(keras, rng):
    data = (rng.standard_normal((6, 5, 4, 3)) * [1.0, 5.0, 0.1] + [2.0, -3.0, 40.0]).astype(np.float32)
    ours, theirs = layers.Normalization(), keras.layers.Normalization()
    ours.adapt(data)
    theirs.adapt(data)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert [w.name for w in ours.weights] == [w.name for w in theirs.weights] == ["mean", "variance", "count"]
    assert [w.trainable for w in ours.weights] == [False] * 3
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32) * 4
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-5)


def test_normalization_batches_axis_none_and_axes(keras, rng):
    data = rng.standard_normal((8, 3, 4)).astype(np.float32) * 3 + 1
    batches = [data[:3], data[3:]]   # combined batch by batch (Keras needs TensorFlow for this)
    for axis in (None, -1, (1, 2)):
        ours, theirs = layers.Normalization(axis=axis), keras.layers.Normalization(axis=axis)
        ours.adapt(iter(batches))
        theirs.adapt(data)
        for a, b in zip(ours.get_weights()[:2], theirs.get_weights()[:2]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours(data), keras.ops.convert_to_numpy(theirs(data)),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_given_statistics_and_gradient(keras, invert, rng):
    mean, variance = [1.0, -2.0, 0.5], [4.0, 0.25, 0.0]   # a zero variance hits the epsilon floor
    ours = layers.Normalization(mean=mean, variance=variance, invert=invert)
    theirs = keras.layers.Normalization(mean=mean, variance=variance, invert=invert)
    x = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    y, dx = _forward_backward(ours, x, dy)
    assert ours.weights == []
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-5, atol=1e-4)
    torch = pytest.importorskip("torch")
    m, s = torch.tensor(mean, dtype=torch.float64), torch.tensor(variance, dtype=torch.float64).sqrt()
    s = torch.clamp(s, min=1e-7)
    ref_y, (ref_dx,) = _torch_grads((lambda t: m + t * s) if invert else (lambda t: (t - m) / s), [x], dy)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-3)


def test_normalization_config_round_trip_and_errors():
    layer = layers.Normalization(axis=(1, 3), mean=[[1.0, 2.0]], variance=[[1.0, 4.0]], invert=True)
    config = layer.get_config()
    assert config["axis"] == [1, 3] and config["invert"] is True and config["mean"] == [[1.0, 2.0]]
    clone = layers.Normalization.from_config(config)
    x = np.ones((1, 3, 2, 2), np.float32)
    np.testing.assert_array_equal(clone(x), layer(x))
    assert layers.SERIALIZABLE["Normalization"] is layers.Normalization
    with pytest.raises(ValueError, match="both `mean` and `variance` must be set"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="must have the same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ValueError, match=r"must be in the range \[-ndim, ndim\)"):
        layers.Normalization(axis=4)(layers.Input((3, 3)))
    with pytest.raises(ValueError, match="cannot be adapted"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(x)
    adapted = layers.Normalization()
    adapted.adapt(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="incompatible shape"):
        adapted.adapt(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="axis must be an integer"):
        layers.Normalization(axis="channels")


# --- Rescaling ----------------------------------------------------------------------------------
def test_rescaling_per_channel_matches_keras(keras, rng):
    scale, offset = [1 / 0.229, 1 / 0.224, 1 / 0.225], [-1.0, 0.0, 2.0]
    ours, theirs = layers.Rescaling(scale, offset), keras.layers.Rescaling(scale, offset)
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    y, dx = _forward_backward(ours, x, dy)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(theirs(x)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dx, dy * np.asarray(scale), rtol=1e-6)
    assert ours.get_config()["scale"] == pytest.approx(scale)
    clone = layers.Rescaling.from_config(ours.get_config())
    np.testing.assert_array_equal(clone(x), ours(x))
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Rescaling([1.0, 2.0])(layers.Input((4, 4, 3)))
    with pytest.raises(TypeError, match="scale must be a number"):
        layers.Rescaling("half")


# --- broadcasting merges ------------------------------------------------------------------------
def test_multiply_broadcasts_a_gate_as_keras(keras, rng):
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    gate = rng.standard_normal((2, 1, 1, 3)).astype(np.float32)
    a, g = layers.Input((5, 4, 3)), layers.Input((1, 1, 3))
    assert layers.Multiply()([a, g]).shape == (None, 5, 4, 3)
    assert keras.layers.Multiply()([keras.Input((5, 4, 3)), keras.Input((1, 1, 3))]).shape == (None, 5, 4, 3)
    dy = rng.standard_normal(x.shape)
    y, (dx, dg) = _forward_backward(layers.Multiply(), [x, gate], dy)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(keras.layers.Multiply()([x, gate])), rtol=1e-6)
    _, (ref_dx, ref_dg) = _torch_grads(lambda p, q: p * q, [x, gate], dy)
    assert dg.shape == gate.shape
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dg, ref_dg, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,fn", [
    ("Add", lambda p, q, r: p + q + r),
    ("Average", lambda p, q, r: (p + q + r) / 3),
    ("Multiply", lambda p, q, r: p * q * r),
])
def test_three_input_merges_broadcast_with_lower_rank(keras, cls, fn, rng):
    # Keras expands the lower-rank input at axis 1: (2, 3) -> (2, 1, 3)
    xs = [rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 1, 3)), rng.standard_normal((2, 3))]
    dy = rng.standard_normal((2, 4, 3))
    y, grads = _forward_backward(getattr(layers, cls)(), xs, dy)
    theirs = keras.ops.convert_to_numpy(getattr(keras.layers, cls)()([x.astype(np.float32) for x in xs]))
    np.testing.assert_allclose(y, theirs, rtol=1e-5, atol=1e-6)
    expanded = [xs[0], xs[1], xs[2][:, None, :]]
    _, ref = _torch_grads(fn, expanded, dy)
    for g, r, x in zip(grads, ref, xs):
        assert g.shape == x.shape
        np.testing.assert_allclose(g, r.reshape(x.shape), rtol=1e-5, atol=1e-5)


def test_subtract_broadcast_and_shape_errors(rng):
    a, b = rng.standard_normal((2, 3, 1)), rng.standard_normal((2, 1, 4))
    dy = rng.standard_normal((2, 3, 4))
    y, (da, db) = _forward_backward(layers.Subtract(), [a, b], dy)
    np.testing.assert_allclose(y, a - b, rtol=1e-6)
    np.testing.assert_allclose(da, dy.sum(axis=2, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(db, -dy.sum(axis=1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError, match="same shape after the batch axis, except for sizes of 1"):
        layers.Multiply()([layers.Input((4, 3)), layers.Input((5, 3))])
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Add()([layers.Input((3,), batch_size=2), layers.Input((3,), batch_size=4)])


# --- Dropout(noise_shape) -----------------------------------------------------------------------
def test_dropout_noise_shape_drops_whole_samples(rng):
    x = rng.standard_normal((64, 3, 3, 2)).astype(np.float32) + 5
    layer = layers.Dropout(0.5, noise_shape=(None, 1, 1, 1), seed=7)
    dy = rng.standard_normal(x.shape)
    y, dx = _forward_backward(layer, x, dy, training=True)
    ratio = y / x
    per_sample = ratio.reshape(64, -1)
    assert np.allclose(per_sample, per_sample[:, :1], atol=1e-6)   # one draw per sample
    kept = per_sample[:, 0] != 0
    np.testing.assert_allclose(per_sample[kept, 0], 2.0, rtol=1e-6)
    assert 10 < kept.sum() < 54
    np.testing.assert_allclose(dx, dy * ratio, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(layer(x), x)   # inference: identity
    assert layer.get_config()["noise_shape"] == [None, 1, 1, 1]
    assert layers.Dropout.from_config(layer.get_config()).noise_shape == (None, 1, 1, 1)
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.Dropout(0.5, noise_shape=(None, 2, 1, 1))(layers.Input((3, 3, 2)))
    with pytest.raises(ValueError, match="positive integers or None"):
        layers.Dropout(0.5, noise_shape=(None, 0))


# --- activations --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hard_silu", "hard_swish", "swish", "silu"])
def test_activation_matches_keras_and_autograd(keras, name, rng):
    x = np.concatenate([np.linspace(-5, 5, 41), [-3.0, 3.0, 0.0]]).reshape(4, 11).astype(np.float32)
    dy = rng.standard_normal(x.shape)
    y, dx = _forward_backward(layers.Activation(name), x, dy)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(keras.activations.get(name)(x)),
                               rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    fn = torch.nn.functional.hardswish if name.startswith("hard") else torch.nn.functional.silu
    # away from the kinks at +-3, where one-sided derivatives differ by convention
    smooth = np.abs(np.abs(x) - 3) > 1e-3
    _, (ref,) = _torch_grads(fn, [x], dy)
    np.testing.assert_allclose(dx[smooth], ref[smooth], rtol=1e-5, atol=1e-5)
    assert activations.get(name) is getattr(activations, name)
    assert layers.Conv2D(2, 1, activation=name).get_config()["activation"] in ("hard_silu", "silu")


# --- training through all of them --------------------------------------------------------------
def test_fit_through_the_new_layers(rng):
    inputs = layers.Input((8, 8, 3))
    x = layers.Rescaling([1 / 255, 1 / 128, 1 / 64])(inputs)
    norm = layers.Normalization()
    x = norm(x)
    x = layers.Conv2D(6, 3, padding="same", activation="swish")(x)
    gate = layers.GlobalAveragePooling2D()(x)
    gate = layers.Reshape((1, 1, 6))(gate)
    gate = layers.Conv2D(6, 1, activation="sigmoid")(gate)
    x = layers.Multiply()([x, gate])
    branch = layers.Conv2D(6, 1, activation="hard_swish")(x)
    branch = layers.Dropout(0.3, noise_shape=(None, 1, 1, 1), seed=3)(branch)
    x = layers.Add()([x, branch])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = models.Model(inputs, outputs)
    images = rng.uniform(0, 255, (32, 8, 8, 3)).astype(np.float32)
    labels = (images[..., 0].mean(axis=(1, 2)) > 127.5).astype(np.int64)
    norm.adapt(images * np.asarray([1 / 255, 1 / 128, 1 / 64], np.float32))
    before = [w.copy() for w in model.get_weights()]
    model.compile(optimizer=cnnfast.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    history = model.fit(images, labels, batch_size=8, epochs=4, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = model.get_weights()
    moved = [not np.array_equal(a, b) for a, b in zip(before, after)]
    stats = {id(v) for v in norm.weights}
    for w, changed in zip(model.weights, moved):   # every trainable weight learns; statistics stay
        assert changed == (id(w) not in stats), w.path


def test_onnx_export_of_the_new_layers(tmp_path, rng):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    inputs = layers.Input((6, 6, 3))
    x = layers.Rescaling([0.5, 2.0, -1.0], offset=[0.1, 0.0, 0.3])(inputs)
    norm = layers.Normalization()
    x = norm(x)
    x = layers.Conv2D(4, 3, padding="same", activation="swish")(x)   # an NCHW value in ONNX
    gate = layers.Reshape((1, 1, 4))(layers.GlobalAveragePooling2D()(x))
    gate = layers.Conv2D(4, 1, activation="hard_silu")(gate)
    x = layers.Multiply()([x, gate])
    x = layers.Normalization(mean=[1.0, 0.0, -1.0, 2.0], variance=[4.0, 1.0, 0.25, 9.0], invert=True)(x)
    outputs = layers.Dropout(0.2, noise_shape=(None, 1, 1, 1))(x)
    model = models.Model(inputs, outputs)
    norm.adapt(rng.standard_normal((10, 6, 6, 3)).astype(np.float32) * 3 + 1)
    path = tmp_path / "m.onnx"
    cnnfast.onnx.export(model, path)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: images})[0]
    want = model.predict_on_batch(images)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))

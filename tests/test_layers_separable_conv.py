"""SeparableConv2D: forward and backward against a float64 reference and finite differences, every
ISA path and thread count, PyTorch and Keras 3 on the same weights, config, saving, ONNX export."""
import os

import numpy as np
import pytest

import cnnfast
from cnnfast import layers

from reference.model import check_layer

CASES = [
    # (input shape, filters, kernel, strides, padding, dilation, depth_multiplier)
    ((1, 5, 5, 1), 2, 3, 1, "valid", 1, 1),
    ((2, 7, 6, 3), 4, (3, 2), 1, "same", 1, 1),
    ((2, 7, 7, 2), 3, 3, 2, "same", 1, 2),
    ((1, 8, 9, 2), 2, 3, (2, 3), "valid", 1, 1),
    ((1, 9, 9, 2), 3, 3, 1, "same", 2, 3),
    ((3, 6, 5, 4), 5, 1, 1, "valid", 1, 1),
]


@pytest.mark.parametrize("shape,filters,kernel,strides,padding,dilation,dm", CASES)
@pytest.mark.parametrize("activation,use_bias", [(None, True), ("relu", True), ("tanh", False)])
def test_matches_float64_reference_and_finite_differences(shape, filters, kernel, strides, padding,
                                                          dilation, dm, activation, use_bias, rng):
    layer = layers.SeparableConv2D(filters, kernel, strides=strides, padding=padding, dilation_rate=dilation,
                                   depth_multiplier=dm, activation=activation, use_bias=use_bias,
                                   bias_initializer="random_normal")
    y, dx, grads = check_layer(layer, rng.standard_normal(shape), rng)
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + y.shape[1:]
    assert dx.shape == shape
    assert [v.name for v in layer.weights] == ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if use_bias else [])


def test_every_isa_and_thread_count(isa, threads, rng):
    layer = layers.SeparableConv2D(8, 3, padding="same", activation="relu", bias_initializer="random_normal")
    check_layer(layer, rng.standard_normal((3, 6, 5, 4)), rng, fd=False)


def test_against_torch_forward_and_gradients(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 10, 9, 3)).astype(np.float32)
    layer = layers.SeparableConv2D(5, 3, strides=2, padding="valid", depth_multiplier=2,
                                   bias_initializer="random_normal")
    ctx = {}
    layer._maybe_build((None,) + x.shape[1:])
    y = layer.forward(x, True, ctx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    cnnfast.layers.base.new_grad_generation()
    dx = layer.backward(dy, ctx, True)

    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    dw = torch.tensor(layer._depthwise_view().transpose(3, 2, 0, 1).copy(), requires_grad=True)
    pw = torch.tensor(layer.pointwise_kernel.numpy().transpose(3, 2, 0, 1).copy(), requires_grad=True)
    b = torch.tensor(layer.bias.numpy(), requires_grad=True)
    ty = torch.nn.functional.conv2d(torch.nn.functional.conv2d(tx, dw, stride=2, groups=3), pw, b)
    ty.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    kh, kw, c, m = layer.depthwise_kernel.shape
    np.testing.assert_allclose(layer.depthwise_kernel.grad,
                               dw.grad.numpy().transpose(2, 3, 1, 0).reshape(kh, kw, c, m), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.pointwise_kernel.grad, pw.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad, b.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_same_as_keras(rng):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    kl = keras.layers.SeparableConv2D(6, (3, 2), strides=(2, 1), padding="same", depth_multiplier=2,
                                      activation="relu")
    kl.build((None, 9, 8, 3))
    ours = layers.SeparableConv2D(6, (3, 2), strides=(2, 1), padding="same", depth_multiplier=2,
                                  activation="relu")
    ours._maybe_build((None, 9, 8, 3))
    assert [tuple(w.shape) for w in kl.weights] == [tuple(w.shape) for w in ours.weights]
    ours.set_weights([w * 0 + rng.standard_normal(w.shape) for w in ours.get_weights()])
    kl.set_weights(ours.get_weights())
    x = rng.standard_normal((2, 9, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(x), keras.ops.convert_to_numpy(kl(x)), rtol=1e-5, atol=1e-5)
    ours_cfg, keras_cfg = ours.get_config(), kl.get_config()
    for key in ("filters", "kernel_size", "strides", "padding", "dilation_rate", "depth_multiplier",
                "activation", "use_bias"):
        assert ours_cfg[key] == (list(keras_cfg[key]) if isinstance(keras_cfg[key], tuple) else keras_cfg[key]), key


def test_model_fit_summary_save_and_onnx(tmp_path, rng):
    model = cnnfast.Sequential([cnnfast.Input(shape=(12, 12, 3)),
                                layers.SeparableConv2D(8, 3, activation="relu", name="sep"),
                                layers.MaxPooling2D(), layers.SeparableConv2D(4, 3, padding="same"),
                                layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax")])
    assert model.get_layer("sep").count_params() == 3 * 3 * 3 + 3 * 8 + 8
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((32, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    hist = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    path = tmp_path / "sep.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model.export(str(tmp_path / "sep.onnx"), format="onnx")
    sess = ort.InferenceSession(str(tmp_path / "sep.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x[:5]})[0]
    np.testing.assert_allclose(got, model.predict_on_batch(x[:5]), rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="filters"):
        layers.SeparableConv2D(0, 3)
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.SeparableConv2D(2, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match="pointwise_regularizer"):
        layers.SeparableConv2D(2, 3, pointwise_regularizer="no_such_regularizer")
    with pytest.raises(ValueError, match="padding"):
        layers.SeparableConv2D(2, 3, padding="full")

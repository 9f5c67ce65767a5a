"""3-D layers and ops over NDHWC volumes: Conv3D, Conv3DTranspose, 3-D max/average/global pooling,
UpSampling3D, ZeroPadding3D, Cropping3D. Forward and backward against PyTorch in float64 (and
finite differences), Keras 3 as the oracle for "same" padding, sizes, configs and layer outputs."""
import os

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, ops

from reference.model import fd_grad

torch = pytest.importorskip("torch")


def _t(a):   # NDHWC float -> NCDHW float64 tensor with grad
    return torch.tensor(np.moveaxis(a, -1, 1), dtype=torch.float64, requires_grad=True)


def _nd(t):  # NCDHW tensor -> NDHWC array
    return np.moveaxis(t.detach().numpy(), 1, -1)


def _torch_kernel(w):   # Keras (kd, kh, kw, cin // g, f) -> torch (f, cin // g, kd, kh, kw)
    return torch.tensor(w.transpose(4, 3, 0, 1, 2), dtype=torch.float64, requires_grad=True)


CONV_CASES = [  # (x shape, kernel, strides, padding pairs, dilation, groups)
    ((2, 7, 6, 5, 3), (3, 3, 3), (1, 1, 1), (0, 0, 0), (1, 1, 1), 1),
    ((1, 9, 8, 7, 4), (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), 1),
    ((3, 6, 5, 6, 4), (2, 2, 2), (1, 1, 1), (1, 0, 1), (2, 1, 2), 2),
    ((2, 5, 5, 5, 3), (3, 1, 2), (2, 1, 1), (1, 0, 1), (1, 1, 1), 1),
    ((1, 4, 3, 3, 2), (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), 1),
    ((2, 8, 4, 4, 6), (5, 1, 1), (3, 1, 1), (2, 0, 0), (1, 1, 1), 3),
]


@pytest.mark.parametrize("shape,k,s,pad,dil,groups", CONV_CASES)
def test_conv3d_and_its_gradients_match_torch(shape, k, s, pad, dil, groups, rng, threads):
    x = rng.standard_normal(shape).astype(np.float32)
    f = 2 * groups
    w = rng.standard_normal(k + (shape[-1] // groups, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    padding = tuple((p, p) for p in pad)
    y = ops.conv3d(x, w, b, strides=s, padding=padding, dilation=dil, groups=groups)
    tx, tw, tb = _t(x), _torch_kernel(w), torch.tensor(b, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.conv3d(tx, tw, tb, stride=s, padding=pad, dilation=dil, groups=groups)
    np.testing.assert_allclose(y, _nd(ty), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(_t(dy))
    dx, dw, db = ops.conv3d_backward(dy, x, w, strides=s, padding=padding, dilation=dil, groups=groups)
    np.testing.assert_allclose(dx, _nd(tx.grad), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy().transpose(2, 3, 4, 1, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-5, atol=1e-4)


def test_conv3d_on_every_isa_path(isa, rng):
    x = rng.standard_normal((2, 5, 6, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 3, 8)).astype(np.float32)
    ty = torch.nn.functional.conv3d(_t(x), _torch_kernel(w), padding=1)
    np.testing.assert_allclose(ops.conv3d(x, w, padding=((1, 1),) * 3, activation="relu"),
                               np.maximum(_nd(ty), 0), rtol=1e-5, atol=1e-5)


def test_conv3d_gradient_by_finite_differences(rng):
    x = rng.standard_normal((1, 4, 3, 4, 2))
    w = rng.standard_normal((2, 2, 3, 2, 3))
    dy = rng.standard_normal(ops.conv3d_output_shape(x.shape, w.shape, strides=(2, 1, 1), padding="same"))
    loss_x = lambda v: float(np.sum(ops.conv3d(v, w, strides=(2, 1, 1), padding="same") * dy))
    loss_w = lambda v: float(np.sum(ops.conv3d(x, v, strides=(2, 1, 1), padding="same") * dy))
    dx, dw, _ = ops.conv3d_backward(dy, x, w, strides=(2, 1, 1), padding="same")
    np.testing.assert_allclose(dx, fd_grad(loss_x, x, eps=1e-2), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(dw, fd_grad(loss_w, w, eps=1e-2), rtol=1e-2, atol=1e-2)


TRANSPOSE_CASES = [  # (x shape, k, strides, output_padding, dilation)
    ((2, 4, 5, 3, 3), 3, 2, None, 1),
    ((1, 3, 4, 4, 2), 2, 2, 1, 1),
    ((2, 3, 3, 4, 3), 3, 1, None, 2),
    ((1, 5, 2, 3, 4), (1, 3, 2), (3, 1, 2), (2, 0, 1), 1),
]


@pytest.mark.parametrize("shape,k,s,out_pad,dil", TRANSPOSE_CASES)
def test_conv3d_transpose_valid_matches_torch(shape, k, s, out_pad, dil, rng):
    k = (k,) * 3 if isinstance(k, int) else k
    s = (s,) * 3 if isinstance(s, int) else s
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(k + (4, shape[-1])).astype(np.float32)
    y = ops.conv3d_transpose(x, w, strides=s, padding="valid", output_padding=out_pad, dilation=dil)
    assert y.shape == ops.conv3d_transpose_output_shape(x.shape, w.shape, s, "valid", out_pad, dil)
    tx, tw = _t(x), torch.tensor(w.transpose(4, 3, 0, 1, 2), dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.conv_transpose3d(tx, tw, stride=s, dilation=dil,
                                              output_padding=0 if out_pad is None else out_pad)
    # Keras's "valid" size is (n - 1) * s + max(dk, s): a stride above the kernel adds zero cells.
    ref = np.zeros(y.shape)
    t = _nd(ty)
    ref[:, :t.shape[1], :t.shape[2], :t.shape[3]] = t
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ty.backward(_t(dy[:, :t.shape[1], :t.shape[2], :t.shape[3]]))
    dx, dw, db = ops.conv3d_transpose_backward(dy, x, w, strides=s, padding="valid", output_padding=out_pad,
                                               dilation=dil)
    np.testing.assert_allclose(dx, _nd(tx.grad), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy().transpose(2, 3, 4, 1, 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2, 3)), rtol=1e-4, atol=1e-4)


POOL_CASES = [((2, 7, 6, 5, 3), 2, None), ((1, 5, 7, 6, 2), 3, 2), ((2, 6, 6, 6, 4), (3, 2, 2), (1, 2, 1)),
              ((1, 1, 4, 4, 1), (1, 2, 2), None)]


@pytest.mark.parametrize("shape,pool,strides", POOL_CASES)
def test_pool3d_valid_matches_torch(shape, pool, strides, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    dy_shape = ops.pool3d_output_shape(shape, pool, strides)
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    torch_strides = pool if strides is None else strides
    for name in ("max", "avg"):
        tx = _t(x)
        ty = getattr(torch.nn.functional, f"{name}_pool3d")(tx, pool, torch_strides)
        ty.backward(_t(dy))
        if name == "max":
            y, argmax = ops.max_pool3d(x, pool, strides, return_argmax=True)
            np.testing.assert_array_equal(ops.max_pool3d(x, pool, strides), y)
            dx = ops.max_pool3d_backward(dy, argmax, shape, pool, strides)
        else:
            y = ops.avg_pool3d(x, pool, strides)
            dx = ops.avg_pool3d_backward(dy, shape, pool, strides)
        np.testing.assert_allclose(y, _nd(ty), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(dx, _nd(tx.grad), rtol=1e-6, atol=1e-6)


def test_max_pool3d_ties_go_to_the_first_cell_like_torch():
    x = np.zeros((1, 4, 4, 4, 1), np.float32)   # every window is a tie
    y, argmax = ops.max_pool3d(x, 2, return_argmax=True)
    dx = ops.max_pool3d_backward(np.ones_like(y), argmax, x.shape, 2)
    tx = _t(x)
    torch.nn.functional.max_pool3d(tx, 2).sum().backward()
    np.testing.assert_array_equal(dx, _nd(tx.grad))


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("the oracle is Keras's torch backend")
    return keras


LAYER_CASES = [
    ("Conv3D", dict(filters=4, kernel_size=3)),
    ("Conv3D", dict(filters=4, kernel_size=(3, 2, 3), strides=(2, 1, 2), padding="same", activation="relu")),
    ("Conv3D", dict(filters=6, kernel_size=2, padding="same", dilation_rate=2, groups=3, use_bias=False)),
    ("Conv3DTranspose", dict(filters=3, kernel_size=3, strides=2, padding="same")),
    ("Conv3DTranspose", dict(filters=2, kernel_size=(2, 3, 3), strides=(2, 1, 2), padding="valid",
                             activation="sigmoid")),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=2, padding="same", output_padding=1)),
    ("Conv3DTranspose", dict(filters=2, kernel_size=3, strides=3, padding="valid", output_padding=(1, 2, 0))),
    ("MaxPooling3D", dict(pool_size=2, padding="same")),
    ("MaxPooling3D", dict(pool_size=(3, 2, 2), strides=(2, 1, 2))),
    ("AveragePooling3D", dict(pool_size=3, strides=(2, 1, 2), padding="valid")),
    ("AveragePooling3D", dict(pool_size=(2, 1, 3), padding="valid")),
    ("GlobalAveragePooling3D", dict()),
    ("GlobalMaxPooling3D", dict(keepdims=True)),
    ("UpSampling3D", dict(size=(2, 1, 3))),
    ("ZeroPadding3D", dict(padding=((1, 0), (2, 1), (0, 2)))),
    ("ZeroPadding3D", dict(padding=2)),
    ("Cropping3D", dict(cropping=((1, 0), (0, 2), (1, 1)))),
    ("Cropping3D", dict(cropping=(1, 2, 0))),
]


@pytest.mark.parametrize("name,kwargs", LAYER_CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_layers_match_keras(name, kwargs, keras, rng):
    shape = (2, 7, 6, 8, 3)
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    theirs.build((None,) + shape[1:])
    ours._maybe_build((None,) + shape[1:])
    assert [tuple(w.shape) for w in theirs.weights] == [tuple(w.shape) for w in ours.weights]
    if ours.weights:
        ours.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in ours.get_weights()])
        theirs.set_weights(ours.get_weights())
    x = rng.standard_normal(shape).astype(np.float32)
    expected = keras.ops.convert_to_numpy(theirs(x))
    got = ours(x)
    assert got.shape == expected.shape == tuple(theirs.compute_output_shape(shape))
    assert ours.compute_output_shape((None,) + shape[1:]) == tuple(theirs.compute_output_shape((None,) + shape[1:]))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    keras_config, our_config = theirs.get_config(), ours.get_config()
    skip = {"name", "dtype", "kernel_initializer", "bias_initializer"}
    assert set(keras_config) - skip == set(our_config) - skip
    for key in set(keras_config) - skip:
        value = keras_config[key]
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        assert our_config[key] == value, key
    rebuilt = type(ours).from_config(our_config)
    assert rebuilt.get_config() == our_config


@pytest.mark.parametrize("pool,strides", [(3, 2), (2, None), ((3, 2, 4), (1, 3, 2))])
def test_same_average_pooling_divides_by_real_cells(pool, strides, rng):
    """Keras's rule (its TensorFlow, JAX and NumPy backends): the mean of the real cells of each
    window. Keras's torch backend differs when the padding is uneven, hence a float64 reference."""
    x = rng.standard_normal((2, 7, 6, 8, 3))
    pool = (pool,) * 3 if isinstance(pool, int) else pool
    strides = pool if strides is None else (strides,) * 3 if isinstance(strides, int) else strides
    windows = []
    for n, k, s in zip(x.shape[1:4], pool, strides):
        out = -(-n // s)
        before = max((out - 1) * s + k - n, 0) // 2
        windows.append([slice(max(t * s - before, 0), t * s - before + k) for t in range(out)])
    ref = np.array([[[[x[b, i, j, k].mean(axis=(0, 1, 2)) for k in windows[2]] for j in windows[1]]
                     for i in windows[0]] for b in range(2)])
    got = layers.AveragePooling3D(pool, strides=strides, padding="same")(x.astype(np.float32))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_signatures_and_aliases_as_keras(keras):
    import inspect
    for name in ("Conv3D", "Conv3DTranspose", "MaxPooling3D", "AveragePooling3D", "GlobalAveragePooling3D",
                 "GlobalMaxPooling3D", "UpSampling3D", "ZeroPadding3D", "Cropping3D"):
        theirs = inspect.signature(getattr(keras.layers, name).__init__).parameters
        mine = inspect.signature(getattr(layers, name).__init__).parameters
        assert [a for a in theirs if a != "name"] == [a for a in mine if a != "name"], name
        for arg, p in theirs.items():
            if arg in mine:
                assert mine[arg].default == p.default, (name, arg)
    for alias in ("MaxPool3D", "AvgPool3D", "GlobalAvgPool3D", "GlobalMaxPool3D", "Convolution3D",
                  "Convolution3DTranspose"):
        assert getattr(layers, alias) is getattr(layers, alias.replace("Pool3D", "Pooling3D").replace(
            "Avg", "Average").replace("Convolution", "Conv")), alias


@pytest.mark.parametrize("name,kwargs", [("UpSampling3D", dict(size=(2, 1, 3))),
                                         ("ZeroPadding3D", dict(padding=((1, 0), (2, 1), (0, 2)))),
                                         ("Cropping3D", dict(cropping=((1, 0), (0, 2), (1, 1)))),
                                         ("GlobalMaxPooling3D", dict()), ("GlobalAveragePooling3D", dict())])
def test_reshaping_and_global_layers_backward_by_finite_differences(name, kwargs, rng):
    x = rng.standard_normal((2, 3, 4, 5, 2)).astype(np.float32)
    layer = getattr(layers, name)(**kwargs)
    layer._maybe_build(x.shape)
    dy = rng.standard_normal(layer.compute_output_shape(x.shape)).astype(np.float32)
    ctx = {}
    layer.forward(x, True, ctx)
    dx = layer.backward(dy, ctx, True)
    ref = fd_grad(lambda v: float(np.sum(layer.forward(v.astype(np.float32), True, {}) * dy)),
                  x.astype(np.float64), eps=1e-2)
    np.testing.assert_allclose(dx, ref, rtol=1e-2, atol=1e-2)


def test_volume_model_trains_saves_and_reloads(tmp_path, rng):
    cnnfast.utils.set_random_seed(0)
    model = cnnfast.Sequential([
        cnnfast.Input((8, 8, 8, 1)),
        layers.Conv3D(4, 3, padding="same", activation="relu"), layers.MaxPooling3D(),
        layers.Conv3D(8, 3, padding="same", activation="relu"), layers.AveragePooling3D(2),
        layers.Conv3DTranspose(4, 2, strides=2), layers.ZeroPadding3D(1), layers.Cropping3D(1),
        layers.GlobalMaxPooling3D(), layers.Dense(2, activation="softmax")])
    assert model.count_params() == (27 * 4 + 4) + (27 * 4 * 8 + 8) + (8 * 8 * 4 + 4) + (4 * 2 + 2)
    # A learnable task: is the bright blob in the front or the back half of the volume?
    y = rng.integers(0, 2, 64)
    x = rng.random((64, 8, 8, 8, 1)).astype(np.float32) * 0.2
    for i, label in enumerate(y):
        x[i, 4 * label:4 * label + 4, 2:6, 2:6] += 1.0
    model.compile(cnnfast.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.8
    path = tmp_path / "volumes.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_inputs_and_arguments_raise_clearly(rng):
    with pytest.raises(ValueError, match=r"Conv3D 'c3': expects inputs of shape \(batch, depth, height, width"):
        layers.Conv3D(2, 3, name="c3")(rng.standard_normal((2, 5, 5, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 3 ints"):
        layers.Conv3D(2, (3, 3))
    with pytest.raises(ValueError, match="padding must be one of"):
        layers.Conv3D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="computed output size would be zero or negative"):
        cnnfast.Sequential([cnnfast.Input((2, 8, 8, 1)), layers.Conv3D(2, 3)])
    with pytest.raises(ValueError, match="MaxPooling3D 'p': expects inputs of shape"):
        layers.MaxPooling3D(name="p")(rng.standard_normal((2, 4, 4, 3)).astype(np.float32))
    with pytest.raises(ValueError, match="leaves nothing"):
        cnnfast.Sequential([cnnfast.Input((2, 8, 8, 1)), layers.Cropping3D(1)])
    with pytest.raises(ValueError, match="conv3d: channel mismatch"):
        ops.conv3d(np.zeros((1, 3, 3, 3, 2), np.float32), np.zeros((1, 1, 1, 3, 4), np.float32))
    with pytest.raises(ValueError, match="conv3d: x must be 5-D"):
        ops.conv3d(np.zeros((3, 3, 3, 2), np.float32), np.zeros((1, 1, 1, 2, 4), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input depth"):
        ops.conv3d(np.zeros((1, 2, 3, 3, 2), np.float32), np.zeros((3, 1, 1, 2, 4), np.float32))
    with pytest.raises(TypeError, match="max_pool3d_backward: argmax must be"):
        ops.max_pool3d_backward(np.zeros((1, 1, 1, 1, 1)), np.zeros(1), (1, 2, 2, 2, 1), 2)
    with pytest.raises(ValueError, match="output_padding .* must be smaller"):
        layers.Conv3DTranspose(2, 3, strides=2, output_padding=2)


def test_onnx_export_runs_in_onnxruntime(tmp_path, rng):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cnnfast.utils.set_random_seed(1)
    model = cnnfast.Sequential([
        cnnfast.Input((7, 6, 8, 2)),
        layers.Conv3D(4, 3, strides=(2, 1, 2), padding="same", activation="relu"),
        layers.MaxPooling3D(2, padding="same"),
        layers.Conv3DTranspose(3, 3, strides=2, padding="same"),
        layers.Conv3DTranspose(2, (2, 3, 3), strides=(3, 1, 2), output_padding=(1, 0, 1)),
        layers.AveragePooling3D(2, padding="same"),
        layers.ZeroPadding3D(((1, 0), (0, 2), (1, 1))), layers.Cropping3D(((0, 1), (1, 0), (0, 2))),
        layers.UpSampling3D((2, 1, 2)), layers.Conv3D(4, 2, groups=2),
        layers.GlobalAveragePooling3D(), layers.Dense(3)])
    other = cnnfast.Sequential([cnnfast.Input((4, 5, 4, 1)), layers.Conv3D(2, 3),
                                layers.GlobalMaxPooling3D(keepdims=True), layers.Flatten()])
    for m in (model, other):
        path = tmp_path / "volume.onnx"
        m.export(str(path), format="onnx")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        x = rng.random((2,) + m.input_shape[1:]).astype(np.float32)
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, m.predict(x, verbose=0), rtol=1e-5, atol=1e-5)

"""1-D layers (Conv1D, SeparableConv1D, 1-D pooling, UpSampling1D, ZeroPadding1D, Cropping1D):
forward and backward against PyTorch, Keras 3 as the oracle for shapes, parameter counts, configs
and "same"/"causal" results, Keras weight files, saving, training a text CNN, bad inputs."""
import os

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, optimizers
from cnnfast.layers import base

torch = pytest.importorskip("torch")
F = torch.nn.functional


def run_layer(layer, x, rng, need_dx=True):
    """The layer's training forward and backward on ``x``: (y, dy, dx); weight gradients in
    ``v.grad``."""
    layer._maybe_build((None,) + x.shape[1:])
    ctx = {}
    y = layer.forward(x, True, ctx).copy()
    dy = rng.standard_normal(y.shape).astype(np.float32)
    base.new_grad_generation()
    dx = layer.backward(dy, ctx, need_dx)
    return y, dy, dx


def to_torch(a, grad=True):
    """(batch, steps, channels) -> a torch (batch, channels, steps) leaf."""
    return torch.tensor(np.ascontiguousarray(a.transpose(0, 2, 1)), requires_grad=grad)


def from_torch(t):
    return t.detach().numpy().transpose(0, 2, 1)


def keras_pads(steps, k, s, d, padding):
    """(left, right) zero padding that makes a 'valid' torch conv compute Keras's padding."""
    dk = d * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return dk - 1, 0
    out = -(-steps // s)
    total = max((out - 1) * s + dk - steps, 0)
    return total // 2, total - total // 2


def close(a, b, tol=1e-4):
    b = np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * max(1.0, float(np.abs(b).max())))


CONV_CASES = [
    # (batch, steps, cin, filters, kernel, strides, padding, dilation, groups)
    (1, 9, 3, 4, 3, 1, "valid", 1, 1),
    (2, 11, 5, 6, 4, 1, "same", 1, 1),
    (3, 13, 4, 5, 3, 1, "causal", 1, 1),
    (2, 17, 3, 4, 3, 1, "causal", 3, 1),
    (2, 16, 4, 4, 5, 1, "same", 2, 1),
    (1, 15, 6, 4, 3, 2, "valid", 1, 1),
    (2, 14, 3, 5, 4, 3, "same", 1, 1),
    (2, 13, 2, 3, 3, 2, "causal", 1, 1),
    (2, 12, 6, 9, 3, 1, "same", 1, 3),
    (1, 10, 4, 4, 2, 2, "valid", 1, 2),
    (2, 9, 8, 8, 3, 1, "valid", 1, 8),
    (2, 5, 3, 2, 7, 1, "same", 1, 1),   # kernel longer than the sequence
]


@pytest.mark.parametrize("n,steps,cin,filters,k,s,padding,d,groups", CONV_CASES)
@pytest.mark.parametrize("activation", [None, "relu"])
def test_conv1d_matches_torch(n, steps, cin, filters, k, s, padding, d, groups, activation, rng):
    layer = layers.Conv1D(filters, k, strides=s, padding=padding, dilation_rate=d, groups=groups,
                          activation=activation, bias_initializer="random_normal")
    x = rng.standard_normal((n, steps, cin)).astype(np.float32)
    y, dy, dx = run_layer(layer, x, rng)
    assert layer.kernel.shape == (k, cin // groups, filters)

    tx = to_torch(x)
    tw = torch.tensor(layer.kernel.numpy().transpose(2, 1, 0).copy(), requires_grad=True)
    tb = torch.tensor(layer.bias.numpy(), requires_grad=True)
    ty = F.conv1d(F.pad(tx, keras_pads(steps, k, s, d, padding)), tw, tb, stride=s, dilation=d,
                  groups=groups)
    if activation == "relu":
        ty = F.relu(ty)
    ty.backward(to_torch(dy, grad=False))
    close(y, from_torch(ty))
    assert layer.compute_output_shape((None, steps, cin)) == (None,) + y.shape[1:]
    close(dx, from_torch(tx.grad))
    close(layer.kernel.grad, tw.grad.numpy().transpose(2, 1, 0))
    close(layer.bias.grad, tb.grad.numpy())


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_threads_isa_and_no_input_gradient(padding, isa, threads, rng):
    """Every ISA path and thread count give torch's gradients; a first layer (no input gradient)
    still gets its weight gradients, a frozen one with no input gradient does nothing."""
    layer = layers.Conv1D(16, 5, padding=padding, activation="relu", bias_initializer="random_normal")
    x = rng.standard_normal((4, 37, 8)).astype(np.float32)
    y, dy, dx = run_layer(layer, x, rng, need_dx=False)
    assert dx is None
    tx = to_torch(x)
    tw = torch.tensor(layer.kernel.numpy().transpose(2, 1, 0).copy(), requires_grad=True)
    tb = torch.tensor(layer.bias.numpy(), requires_grad=True)
    ty = F.relu(F.conv1d(F.pad(tx, keras_pads(37, 5, 1, 1, padding)), tw, tb))
    ty.backward(to_torch(dy, grad=False))
    close(y, from_torch(ty))
    close(layer.kernel.grad, tw.grad.numpy().transpose(2, 1, 0))
    close(layer.bias.grad, tb.grad.numpy())
    layer.trainable = False
    assert layer.backward(dy, {}, False) is None


@pytest.mark.parametrize("n,steps,cin,filters,k,s,padding,d,dm", [
    (1, 9, 3, 4, 3, 1, "valid", 1, 1),
    (2, 12, 4, 6, 3, 1, "same", 1, 2),
    (2, 13, 3, 5, 4, 2, "same", 1, 1),
    (2, 15, 2, 3, 3, 1, "same", 2, 3),
    (1, 11, 5, 2, 5, 3, "valid", 1, 2),
])
def test_separable_conv1d_matches_torch(n, steps, cin, filters, k, s, padding, d, dm, rng):
    layer = layers.SeparableConv1D(filters, k, strides=s, padding=padding, dilation_rate=d,
                                   depth_multiplier=dm, activation="relu", bias_initializer="random_normal")
    x = rng.standard_normal((n, steps, cin)).astype(np.float32)
    y, dy, dx = run_layer(layer, x, rng)
    assert [v.shape for v in layer.weights] == [(k, cin, dm), (1, cin * dm, filters), (filters,)]

    tx = to_torch(x)
    # depthwise (k, cin, dm) -> torch (cin * dm, 1, k), output channel ci * dm + m
    tdw = torch.tensor(layer.depthwise_kernel.numpy().reshape(k, cin * dm).T[:, None, :].copy(),
                       requires_grad=True)
    tpw = torch.tensor(layer.pointwise_kernel.numpy()[0].T[:, :, None].copy(), requires_grad=True)
    tb = torch.tensor(layer.bias.numpy(), requires_grad=True)
    mid = F.conv1d(F.pad(tx, keras_pads(steps, k, s, d, padding)), tdw, stride=s, dilation=d, groups=cin)
    ty = F.relu(F.conv1d(mid, tpw, tb))
    ty.backward(to_torch(dy, grad=False))
    close(y, from_torch(ty))
    close(dx, from_torch(tx.grad))
    close(layer.depthwise_kernel.grad, tdw.grad.numpy()[:, 0, :].T.reshape(k, cin, dm))
    close(layer.pointwise_kernel.grad, tpw.grad.numpy()[:, :, 0].T[None])
    close(layer.bias.grad, tb.grad.numpy())


@pytest.mark.parametrize("n,steps,c,p,s", [(1, 9, 3, 2, None), (2, 11, 4, 3, 2), (3, 10, 2, 2, 3),
                                           (2, 7, 5, 3, 1), (1, 4, 2, 4, None)])
def test_pooling1d_valid_matches_torch(n, steps, c, p, s, rng):
    x = rng.standard_normal((n, steps, c)).astype(np.float32)
    for cls, fn in ((layers.MaxPooling1D, F.max_pool1d), (layers.AveragePooling1D, F.avg_pool1d)):
        y, dy, dx = run_layer(cls(p, strides=s), x, rng)
        tx = to_torch(x)
        ty = fn(tx, p, stride=s)
        ty.backward(to_torch(dy, grad=False))
        close(y, from_torch(ty))
        close(dx, from_torch(tx.grad))


@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling1d_matches_torch(keepdims, rng):
    x = rng.standard_normal((3, 13, 5)).astype(np.float32)
    for cls, fn in ((layers.GlobalMaxPooling1D, lambda t: t.amax(dim=2, keepdim=keepdims)),
                    (layers.GlobalAveragePooling1D, lambda t: t.mean(dim=2, keepdim=keepdims))):
        y, dy, dx = run_layer(cls(keepdims=keepdims), x, rng)
        assert y.shape == ((3, 1, 5) if keepdims else (3, 5))
        tx = to_torch(x)
        ty = fn(tx)
        tdy = torch.from_numpy(dy.transpose(0, 2, 1).copy() if keepdims else dy)
        ty.backward(tdy)
        close(y, from_torch(ty) if keepdims else ty.detach().numpy())
        close(dx, from_torch(tx.grad))


def test_reshaping1d_matches_torch(rng):
    x = rng.standard_normal((2, 7, 3)).astype(np.float32)
    cases = [(layers.UpSampling1D(3), lambda t: t.repeat_interleave(3, dim=2)),
             (layers.ZeroPadding1D((2, 1)), lambda t: F.pad(t, (2, 1))),
             (layers.ZeroPadding1D(), lambda t: F.pad(t, (1, 1))),
             (layers.Cropping1D((1, 2)), lambda t: t[:, :, 1:-2]),
             (layers.Cropping1D(0), lambda t: t)]
    for layer, fn in cases:
        for _ in range(2):   # the second step reuses the first one's buffers
            y, dy, dx = run_layer(layer, x, rng)
            tx = to_torch(x)
            ty = fn(tx)
            ty.backward(to_torch(dy, grad=False))
            close(y, from_torch(ty))
            close(dx, from_torch(tx.grad))


# --------------------------------------------------------------------------------------------
# Keras 3 as the oracle

@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def keras_and_ours(keras, name, *args, **kwargs):
    return getattr(keras.layers, name)(*args, **kwargs), getattr(layers, name)(*args, **kwargs)


KERAS_CASES = [
    ("Conv1D", (6, 3), dict(padding="same", strides=2)),
    ("Conv1D", (6, 4), dict(padding="causal", dilation_rate=2, activation="relu")),
    ("Conv1D", (6, 3), dict(padding="causal", strides=3, use_bias=False)),
    ("Conv1D", (6, (5,)), dict(padding="same", groups=2, activation="tanh")),
    ("Conv1D", (4, 2), dict()),
    ("SeparableConv1D", (5, 3), dict(padding="same", strides=2, depth_multiplier=2)),
    ("SeparableConv1D", (5, 4), dict(padding="same", dilation_rate=2, activation="relu")),
    ("SeparableConv1D", (5, 3), dict(use_bias=False)),
    ("MaxPooling1D", (), dict()),
    ("MaxPooling1D", (3,), dict(strides=2, padding="same")),
    ("AveragePooling1D", (3,), dict(strides=2, padding="same")),
    ("AveragePooling1D", (3,), dict(strides=1, padding="same")),
    ("AveragePooling1D", (2,), dict(strides=1)),
    ("GlobalMaxPooling1D", (), dict()),
    ("GlobalAveragePooling1D", (), dict(keepdims=True)),
    ("UpSampling1D", (), dict()),
    ("UpSampling1D", (3,), dict()),
    ("ZeroPadding1D", (), dict()),
    ("ZeroPadding1D", ((2, 0),), dict()),
    ("Cropping1D", (), dict()),
    ("Cropping1D", (2,), dict()),
]
def _plain(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("name,args,kwargs", KERAS_CASES)
def test_same_as_keras(keras, name, args, kwargs, rng):
    kl, ours = keras_and_ours(keras, name, *args, **kwargs)
    x = rng.standard_normal((2, 15, 4)).astype(np.float32)
    kl.build((None, 15, 4))
    ours._maybe_build((None, 15, 4))
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in kl.weights]
    assert ours.count_params() == kl.count_params()
    for shape in ((None, 15, 4), (None, None, 4), (3, 8, 4)):
        assert ours.compute_output_shape(shape) == tuple(kl.compute_output_shape(shape))
    if ours.weights:
        ours.set_weights([rng.standard_normal(w.shape) for w in ours.get_weights()])
        kl.set_weights(ours.get_weights())
    close(ours(x), keras.ops.convert_to_numpy(kl(x)), 1e-5)

    ours_cfg, keras_cfg = ours.get_config(), kl.get_config()
    keras_keys = set(keras_cfg) - {"dtype"}
    assert set(ours_cfg) - {"dtype"} == keras_keys
    for key in keras_keys & set(ours_cfg):
        if key.endswith("_initializer"):
            assert ours_cfg[key]["class_name"] == keras_cfg[key]["class_name"], key
        elif key not in ("name",):
            assert ours_cfg[key] == _plain(keras_cfg[key]), key
    again = type(ours).from_config(ours_cfg)
    assert again.get_config() == ours_cfg


@pytest.mark.parametrize("p,s", [(4, None), (2, 3), (5, 2), (3, 1)])
def test_same_average_pooling_divides_by_real_cells(p, s, rng):
    """Keras's rule (its TensorFlow, JAX and NumPy backends): the mean of the real cells of each
    window. Keras's torch backend differs when the padding is uneven (it replicates the edge
    cell), hence a float64 NumPy reference here."""
    x = rng.standard_normal((2, 15, 3))
    layer = layers.AveragePooling1D(p, strides=s, padding="same")
    stride = p if s is None else s
    out = -(-15 // stride)
    left = max((out - 1) * stride + p - 15, 0) // 2
    ref = np.stack([x[:, max(t * stride - left, 0):t * stride - left + p].mean(axis=1) for t in range(out)], 1)
    close(layer(x.astype(np.float32)), ref, 1e-6)


def test_defaults_and_aliases_as_keras(keras):
    import inspect
    for name in ("Conv1D", "SeparableConv1D", "MaxPooling1D", "AveragePooling1D", "GlobalMaxPooling1D",
                 "GlobalAveragePooling1D", "UpSampling1D", "ZeroPadding1D", "Cropping1D"):
        theirs = inspect.signature(getattr(keras.layers, name).__init__).parameters
        mine = inspect.signature(getattr(layers, name).__init__).parameters
        for arg, p in theirs.items():
            if p.kind is p.VAR_KEYWORD:
                continue
            assert arg in mine, (name, arg)
            assert mine[arg].default == p.default, (name, arg)
    for alias, target in (("MaxPool1D", "MaxPooling1D"), ("AvgPool1D", "AveragePooling1D"),
                          ("GlobalMaxPool1D", "GlobalMaxPooling1D"), ("GlobalAvgPool1D", "GlobalAveragePooling1D"),
                          ("Convolution1D", "Conv1D"), ("SeparableConvolution1D", "SeparableConv1D")):
        assert getattr(layers, alias) is getattr(layers, target)
        assert getattr(keras.layers, alias) is getattr(keras.layers, target)
    with pytest.raises(TypeError):
        layers.AveragePooling1D()   # pool_size is required, as in Keras


def test_default_names_as_keras(keras):
    for name, args in (("Conv1D", (2, 3)), ("SeparableConv1D", (2, 3)), ("MaxPooling1D", ()),
                       ("AveragePooling1D", (2,)), ("GlobalMaxPooling1D", ()), ("GlobalAveragePooling1D", ()),
                       ("UpSampling1D", ()), ("ZeroPadding1D", ()), ("Cropping1D", ())):
        kl, ours = keras_and_ours(keras, name, *args)
        strip = lambda s: s.rsplit("_", 1)[0] if s.rsplit("_", 1)[-1].isdigit() else s
        assert strip(ours.name) == strip(kl.name)


def text_cnn(lib, steps=20, channels=6):
    L = lib.layers
    return lib.models.Sequential([
        L.Input(shape=(steps, channels)),
        L.Conv1D(8, 3, padding="causal", activation="relu", name="c1"),
        L.SeparableConv1D(8, 3, padding="same", depth_multiplier=2, name="s1"),
        L.MaxPooling1D(name="p1"),
        L.ZeroPadding1D((1, 2), name="z1"),
        L.UpSampling1D(2, name="u1"),
        L.Cropping1D((2, 1), name="k1"),
        L.Conv1D(6, 5, strides=2, groups=2, activation="relu", name="c2"),
        L.AveragePooling1D(2, padding="same", name="a1"),
        L.GlobalAveragePooling1D(name="g1"),
        L.Dense(3, activation="softmax", name="d1")])


def regularized_model(lib):
    L, R, C = lib.layers, lib.regularizers, lib.constraints
    return lib.models.Sequential([
        L.Input(shape=(12, 4)),
        L.Conv1D(6, 3, padding="causal", activation="relu", kernel_regularizer=R.L2(0.05),
                 bias_regularizer="l1", activity_regularizer=R.L1(0.01), kernel_constraint="non_neg"),
        L.SeparableConv1D(5, 3, padding="same", depthwise_regularizer="l2",
                          pointwise_regularizer=R.L1L2(0.01, 0.02), pointwise_constraint=C.MaxNorm(0.5),
                          bias_constraint=C.UnitNorm(axis=0)),
        L.GlobalAveragePooling1D(), L.Dense(3)])


def test_regularizers_and_constraints_train_as_keras(keras, rng):
    """Penalties, activity penalty and constraints inherited from Conv2D / SeparableConv2D: two SGD
    steps give Keras 3's losses and weights, and the configs are Keras's."""
    k_model, model = regularized_model(keras), regularized_model(cnnfast)
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    k_model.set_weights(model.get_weights())
    for m, lib in ((model, cnnfast), (k_model, keras)):
        m.compile(lib.optimizers.SGD(learning_rate=0.1),
                  lib.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.standard_normal((6, 12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    for _ in range(2):   # the loss (data loss + penalties) before each step, then the step
        close(model.evaluate(x, y, verbose=0), k_model.evaluate(x, y, verbose=0), 1e-5)
        model.train_on_batch(x, y)
        k_model.train_on_batch(x, y)
    for ours, theirs in zip(model.get_weights(), k_model.get_weights()):
        close(ours, theirs, 1e-5)
    assert (model.layers[0].kernel.numpy() >= 0).all()
    for ours, theirs in zip(model.layers[:2], k_model.layers[:2]):
        kc = theirs.get_config()
        for key, value in ours.get_config().items():
            if key.endswith(("_regularizer", "_constraint")):
                assert (value is None) == (kc[key] is None), key
                if value is not None:
                    assert value["class_name"] == kc[key]["class_name"], key
                    assert value["config"] == kc[key]["config"], key


def test_keras_weights_file_loads_into_cnnfast_and_back(keras, rng, tmp_path):
    k_model = text_cnn(keras)
    model = text_cnn(cnnfast)
    assert model.count_params() == k_model.count_params()
    x = rng.standard_normal((4, 20, 6)).astype(np.float32)
    k_model.save_weights(tmp_path / "k.weights.h5")
    model.load_weights(tmp_path / "k.weights.h5")
    close(model.predict(x, verbose=0), keras.ops.convert_to_numpy(k_model(x)), 1e-5)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    model.save_weights(tmp_path / "c.weights.h5")
    k_model.load_weights(tmp_path / "c.weights.h5")
    close(keras.ops.convert_to_numpy(k_model(x)), model.predict(x, verbose=0), 1e-5)


# --------------------------------------------------------------------------------------------
# models

def test_save_load_round_trip_and_summary(rng, tmp_path):
    model = text_cnn(cnnfast)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.standard_normal((8, 20, 6)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, 8), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "text.keras")
    loaded = models.load_model(tmp_path / "text.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    summary = []
    loaded.summary(print_fn=summary.append)
    text = "\n".join(summary)
    assert "(None, 20, 8)" in text and "SeparableConv1D" in text and "Cropping1D" in text


def test_text_cnn_trains(rng):
    """Input(400, 128) -> Conv1D(128, 7, relu) -> MaxPooling1D -> GlobalMaxPooling1D -> Dense: the
    loss falls on a learnable task (the class is which third of the channels holds a bump)."""
    cnnfast.utils.set_random_seed(0)
    n = 96
    y = rng.integers(0, 3, n)
    x = 0.1 * rng.standard_normal((n, 400, 128)).astype(np.float32)
    pos = rng.integers(0, 390, n)
    for i in range(n):
        x[i, pos[i]:pos[i] + 7, y[i] * 40:(y[i] + 1) * 40] += 1.0
    model = models.Sequential([layers.Input(shape=(400, 128)), layers.Conv1D(128, 7, activation="relu"),
                               layers.MaxPooling1D(), layers.GlobalMaxPooling1D(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    loss = hist.history["loss"]
    assert loss[-1] < 0.7 * loss[0], loss


def test_sgd_step_matches_torch_through_the_relu_max_pool_pair(rng):
    """A Conv1D(relu) whose output only a MaxPooling1D reads leaves its ReLU derivative to the
    pool (Model._mark_pool_fusions); one SGD step gives torch's weights."""
    x = rng.standard_normal((5, 23, 4)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    model = models.Sequential([layers.Input(shape=(23, 4)), layers.Conv1D(6, 3, activation="relu"),
                               layers.MaxPooling1D(3, strides=2),
                               layers.Conv1D(5, 3, padding="causal", activation="relu"),
                               layers.MaxPooling1D(), layers.GlobalAveragePooling1D(), layers.Dense(3)])
    ws = [torch.tensor(w, requires_grad=True) for w in model.get_weights()]
    model.compile(optimizers.SGD(learning_rate=0.5),
                  cnnfast.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)

    h = F.max_pool1d(F.relu(F.conv1d(to_torch(x, grad=False), ws[0].permute(2, 1, 0), ws[1])), 3, 2)
    h = F.max_pool1d(F.relu(F.conv1d(F.pad(h, (2, 0)), ws[2].permute(2, 1, 0), ws[3])), 2)
    logits = h.mean(dim=2) @ ws[4] + ws[5]
    F.cross_entropy(logits, torch.from_numpy(y)).backward()
    for got, w in zip(model.get_weights(), ws):
        close(got, (w - 0.5 * w.grad).detach().numpy())


# --------------------------------------------------------------------------------------------
# errors

def test_wrong_input_rank_is_a_clear_error(rng):
    for layer in (layers.Conv1D(2, 3), layers.SeparableConv1D(2, 3), layers.MaxPooling1D(),
                  layers.AveragePooling1D(2), layers.GlobalMaxPooling1D(), layers.GlobalAveragePooling1D(),
                  layers.UpSampling1D(), layers.ZeroPadding1D(), layers.Cropping1D()):
        cls = type(layer).__name__
        with pytest.raises(ValueError, match=rf"{cls} '{layer.name}'.*\(batch, steps, channels\)"):
            layer(rng.standard_normal((2, 5, 5, 3)))
        with pytest.raises(ValueError, match=rf"{cls} '{layer.name}'"):
            layer._maybe_build((None, 7))
        layer(rng.standard_normal((2, 9, 3)))   # built now
        with pytest.raises(ValueError, match=r"expected ndim=3, found ndim=4"):
            layer(rng.standard_normal((2, 9, 3, 1)))
    with pytest.raises(ValueError, match=r"Conv1D 'conv1d_in_model'.*\(batch, steps, channels\)"):
        models.Sequential([layers.Input(shape=(8, 8, 3)), layers.Conv1D(2, 3, name="conv1d_in_model")])
    with pytest.raises(ValueError, match="expected axis -1 of the input shape to have value 3"):
        built = layers.Conv1D(2, 3)
        built(rng.standard_normal((1, 5, 3)))
        built(rng.standard_normal((1, 5, 4)))


def test_bad_arguments_are_clear_errors(rng):
    with pytest.raises(ValueError, match="padding must be one of \\['valid', 'same', 'causal'\\]"):
        layers.Conv1D(2, 3, padding="full")
    for cls in (layers.MaxPooling1D, layers.SeparableConv1D):   # as Keras, no causal padding here
        with pytest.raises(ValueError, match="padding must be one of \\['valid', 'same'\\]"):
            cls(2, 3, padding="causal")
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 1 int"):
        layers.Conv1D(2, (3, 3))
    with pytest.raises(ValueError, match="strides > 1 not supported in conjunction with dilation_rate > 1"):
        layers.Conv1D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="channels_last"):
        layers.Conv1D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="channels_last"):
        layers.GlobalAveragePooling1D(data_format="channels_first")
    with pytest.raises(ValueError, match="filters"):
        layers.Conv1D(0, 3)
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv1D(5, 3, groups=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        layers.Conv1D(4, 3, groups=2)(rng.standard_normal((1, 6, 3)))
    with pytest.raises(ValueError, match="depth_multiplier"):
        layers.SeparableConv1D(2, 3, depth_multiplier=0)
    with pytest.raises(ValueError, match="pool_size must be >= 1"):
        layers.MaxPooling1D(0)
    with pytest.raises(ValueError, match="size must be >= 1"):
        layers.UpSampling1D(0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        layers.ZeroPadding1D(-1)
    with pytest.raises(ValueError, match="zero or negative"):
        layers.Conv1D(2, 5)(rng.standard_normal((1, 3, 2)))
    with pytest.raises(ValueError, match="zero or negative"):
        layers.MaxPooling1D(4)(rng.standard_normal((1, 3, 2)))
    with pytest.raises(ValueError, match="leaves nothing"):
        layers.Cropping1D((2, 2))(rng.standard_normal((1, 4, 2)))
    crop = layers.Cropping1D((0, 3))
    crop._maybe_build((None, None, 2))
    with pytest.raises(ValueError, match="needs at least 3 steps"):
        crop(rng.standard_normal((1, 2, 2)))
    with pytest.raises(ValueError, match="Conv1D 'conv1d_r': kernel_regularizer: could not interpret"):
        layers.Conv1D(2, 3, kernel_regularizer="nope", name="conv1d_r")
    with pytest.raises(ValueError, match="SeparableConv1D 'sep_c': pointwise_constraint: could not interpret"):
        layers.SeparableConv1D(2, 3, pointwise_constraint="nope", name="sep_c")


# the bad-input sweep of tests/test_hardening_inputs.py, on (batch, steps, channels) inputs
X3 = np.random.default_rng(8).standard_normal((2, 9, 3)).astype(np.float32)
LAYERS_1D = {
    "Conv1D": lambda: layers.Conv1D(4, 3), "Conv1D-causal": lambda: layers.Conv1D(4, 3, padding="causal"),
    "SeparableConv1D": lambda: layers.SeparableConv1D(4, 3, padding="same"),
    "MaxPooling1D": lambda: layers.MaxPooling1D(), "AveragePooling1D": lambda: layers.AveragePooling1D(2),
    "GlobalMaxPooling1D": lambda: layers.GlobalMaxPooling1D(),
    "GlobalAveragePooling1D": lambda: layers.GlobalAveragePooling1D(),
    "UpSampling1D": lambda: layers.UpSampling1D(), "ZeroPadding1D": lambda: layers.ZeroPadding1D(),
    "Cropping1D": lambda: layers.Cropping1D(),
}


def _non_contiguous(a):
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


@pytest.mark.parametrize("name", sorted(LAYERS_1D))
def test_bad_input_sweep(name):
    layer = LAYERS_1D[name]()
    for dtype in (np.complex64, object, "U3"):
        with pytest.raises(TypeError) as info:
            layer(X3.astype(dtype))
        assert layer.name in str(info.value) and "dtype" in str(info.value)
    ref = layer(X3, training=True)
    for variant in (X3.astype(np.float64), X3.tolist(), _non_contiguous(X3), np.asfortranarray(X3)):
        np.testing.assert_array_equal(layer(variant, training=True), ref)
    with pytest.raises(ValueError) as info:
        LAYERS_1D[name]()(np.float32(1))
    assert "batch axis" in str(info.value) or "steps" in str(info.value)
    assert layer(np.full(X3.shape, np.nan, np.float32), training=True).dtype == np.float32
    empty = layer(X3[:0])
    assert empty.shape == (0,) + ref.shape[1:]
    other = np.ones((2, 9, 5), np.float32)
    if layer.weights:
        with pytest.raises(ValueError) as info:
            layer(other)
        assert layer.name in str(info.value)
    else:
        assert layer(other).shape[-1] == 5


@pytest.mark.parametrize("name", ["Conv1D", "Conv1D-causal", "SeparableConv1D"])
def test_backward_on_an_empty_batch(name, rng):
    layer = LAYERS_1D[name]()
    y, dy, dx = run_layer(layer, X3[:0], rng)
    assert dx.shape == X3[:0].shape and np.all(layer.weights[0].grad == 0)


def onnx_session(model, path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    cnnfast.onnx.export(model, str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_onnx_export_matches_predict(rng, tmp_path):
    """Every 1-D layer through onnxruntime (the exporter needs the sequence length)."""
    L = layers
    inputs = L.Input(shape=(20, 6))
    a = L.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu")(inputs)
    b = L.SeparableConv1D(8, 4, padding="same", depth_multiplier=2, activation="tanh")(a)
    c = L.Conv1D(8, 3, padding="same", strides=2, groups=2)(L.Add()([a, b]))
    d = L.AveragePooling1D(3, strides=2, padding="same")(L.MaxPooling1D(2, padding="same")(c))
    e = L.Cropping1D((1, 0))(L.UpSampling1D(3)(L.ZeroPadding1D((2, 1))(d)))
    f = L.Concatenate()([L.GlobalMaxPooling1D()(e), L.GlobalAveragePooling1D()(e),
                         L.Flatten()(L.GlobalAveragePooling1D(keepdims=True)(e))])
    model = models.Model(inputs, L.Dense(3, activation="softmax")(f))
    model.set_weights([rng.standard_normal(w.shape) * 0.5 for w in model.get_weights()])
    sess = onnx_session(model, tmp_path / "text.onnx")
    x = rng.standard_normal((3, 20, 6)).astype(np.float32)
    close(sess.run(None, {sess.get_inputs()[0].name: x})[0], model.predict(x, verbose=0), 1e-5)
    variable = models.Sequential([L.Input(shape=(None, 6)), L.Conv1D(4, 3), L.GlobalMaxPooling1D()])
    with pytest.raises(ValueError, match="unknown non-batch dimensions"):
        cnnfast.onnx.export(variable, str(tmp_path / "variable.onnx"))


def test_onnx_export_of_the_text_cnn(rng, tmp_path):
    model = text_cnn(cnnfast)
    sess = onnx_session(model, tmp_path / "seq.onnx")
    x = rng.standard_normal((2, 20, 6)).astype(np.float32)
    close(sess.run(None, {sess.get_inputs()[0].name: x})[0], model.predict(x, verbose=0), 1e-5)

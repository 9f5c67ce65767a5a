"""LayerNormalization, GroupNormalization, UnitNormalization, the regularisation and noise layers,
PReLU, ELU and Identity: float64 references with finite-difference gradients, Keras 3 and PyTorch as
oracles, configs, saving, training through them and argument errors."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import cnnfast
from cnnfast import layers
from cnnfast.layers import base

from reference.model import fd_grad


# --------------------------------------------------------------------------------------------
# float64 references, written independently of the layers' code
def layer_norm_ref(x, gamma, beta, axes, eps, rms_scaling=False):
    axes = tuple(a % x.ndim for a in axes)
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x if rms_scaling else x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def group_norm_ref(x, gamma, beta, groups, axis, eps):
    axis = axis % x.ndim
    xc = np.moveaxis(x, axis, -1)
    per = xc.shape[-1] // groups
    out = np.empty_like(xc)
    for g in range(groups):
        part = xc[..., g * per:(g + 1) * per]
        red = tuple(range(1, part.ndim))
        mean = part.mean(axis=red, keepdims=True)
        var = part.var(axis=red, keepdims=True)
        out[..., g * per:(g + 1) * per] = (part - mean) / np.sqrt(var + eps)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return np.moveaxis(out, -1, axis)


def unit_norm_ref(x, axes):
    return x / np.sqrt((x ** 2).sum(axis=tuple(axes), keepdims=True))


def prelu_ref(x, alpha):
    return np.where(x > 0, x, alpha * x)


def elu_ref(x, alpha):
    return np.where(x > 0, x, alpha * (np.exp(np.minimum(x, 0)) - 1))


def check_gradients(layer, x, ref, rng, training=True):
    """Forward against the float64 ``ref(x, weights)``; input and weight gradients of
    ``sum(y * dy)`` against central differences of the reference, all in float64."""
    x = np.asarray(x, np.float32)
    layer._maybe_build((None,) + x.shape[1:])
    ws = [np.asarray(v.value, np.float64) for v in layer.trainable_weights]
    x64 = x.astype(np.float64)
    ctx = {}
    y = layer.forward(x, training, ctx)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, ref(x64, ws), rtol=1e-5, atol=1e-5, err_msg="forward")
    dy = rng.standard_normal(y.shape)
    base.new_grad_generation()
    dx = layer.backward(dy.astype(np.float32), ctx, True)
    assert dx.dtype == np.float32
    gx = fd_grad(lambda xx: float(np.sum(ref(xx, ws) * dy)), x64)
    np.testing.assert_allclose(dx, gx, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(gx).max()),
                               err_msg="input gradient")
    for i, var in enumerate(layer.trainable_weights):
        def loss_w(wi, i=i):
            w2 = list(ws)
            w2[i] = wi
            return float(np.sum(ref(x64, w2) * dy))
        gw = fd_grad(loss_w, ws[i])
        np.testing.assert_allclose(var.grad, gw, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(gw).max()),
                                   err_msg=f"gradient of {var.path}")


def _random_weights(layer, rng):
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 + 1 for w in layer.get_weights()])


# --------------------------------------------------------------------------------------------
# gradients by finite differences
@pytest.mark.parametrize("axis,center,scale,rms", [(-1, True, True, False), ([1, 2, 3], True, True, False),
                                                   ([1, -1], False, True, False), (2, True, False, False),
                                                   (-1, True, True, True)])
def test_layer_normalization_gradients(axis, center, scale, rms, rng):
    if rms:
        with pytest.warns(UserWarning, match="deprecated"):
            layer = layers.LayerNormalization(axis=axis, center=center, scale=scale, rms_scaling=rms)
    else:
        layer = layers.LayerNormalization(axis=axis, center=center, scale=scale, rms_scaling=rms)
    x = rng.standard_normal((2, 3, 2, 4)) * 2 + 1.5
    layer._maybe_build((None, 3, 2, 4))
    _random_weights(layer, rng)
    axes = axis if isinstance(axis, list) else [axis]

    def ref(xx, ws):
        ws = list(ws)
        gamma = ws.pop(0) if (scale or rms) else None
        beta = ws.pop(0) if (center and not rms) else None
        return layer_norm_ref(xx, gamma, beta, axes, 1e-3, rms)
    check_gradients(layer, x, ref, rng)


@pytest.mark.parametrize("groups,axis,shape", [(2, -1, (2, 3, 3, 4)), (-1, -1, (2, 2, 3, 3)), (1, -1, (3, 5)),
                                               (3, 1, (2, 6, 2, 2))])
def test_group_normalization_gradients(groups, axis, shape, rng):
    layer = layers.GroupNormalization(groups=groups, axis=axis)
    layer._maybe_build((None,) + shape[1:])
    _random_weights(layer, rng)
    n_groups = layer.groups
    x = rng.standard_normal(shape) * 3 - 1
    check_gradients(layer, x, lambda xx, ws: group_norm_ref(xx, ws[0], ws[1], n_groups, axis, 1e-3), rng)


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_unit_normalization_gradients(axis, rng):
    layer = layers.UnitNormalization(axis=axis)
    x = rng.standard_normal((2, 3, 4))
    axes = [a % 3 for a in (axis if isinstance(axis, list) else [axis])]
    check_gradients(layer, x, lambda xx, ws: unit_norm_ref(xx, axes), rng)


def test_unit_normalization_of_zeros_stays_zero():
    y = layers.UnitNormalization()(np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(y, 0)


@pytest.mark.parametrize("shared_axes", [None, [1, 2], 2])
def test_prelu_gradients(shared_axes, rng):
    layer = layers.PReLU(alpha_initializer="random_normal", shared_axes=shared_axes)
    x = rng.standard_normal((3, 2, 3, 4))
    x[np.abs(x) < 1e-3] = 0.5   # keep finite differences off the kink
    layer._maybe_build((None, 2, 3, 4))
    check_gradients(layer, x, lambda xx, ws: prelu_ref(xx, ws[0][None]), rng)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_gradients(alpha, rng):
    x = rng.standard_normal((2, 5, 3))
    x[np.abs(x) < 1e-3] = 0.5
    check_gradients(layers.ELU(alpha=alpha), x, lambda xx, ws: elu_ref(xx, alpha), rng)


def test_activity_regularization_gradient_includes_the_penalty(rng):
    l1, l2 = 0.03, 0.2
    layer = layers.ActivityRegularization(l1=l1, l2=l2)
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    x[np.abs(x) < 1e-3] = 0.5
    ctx = {}
    with base.collect_layer_losses() as collected:
        y = layer.forward(x, True, ctx)
    np.testing.assert_array_equal(y, x)
    x64 = x.astype(np.float64)
    penalty = lambda xx: (l1 * np.abs(xx).sum() + l2 * (xx ** 2).sum()) / xx.shape[0]
    np.testing.assert_allclose(collected.total, penalty(x64), rtol=1e-6)
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy.astype(np.float32), ctx, True)
    gx = fd_grad(lambda xx: float(np.sum(xx * dy) + penalty(xx)), x64)
    np.testing.assert_allclose(dx, gx, rtol=1e-4, atol=1e-5)


def test_identity(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    layer = layers.Identity()
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x, {}, True), x)
    assert layer.compute_output_shape((None, 3)) == (None, 3)


# --------------------------------------------------------------------------------------------
# random layers
def _train(layer, x, ctx=None):
    ctx = {} if ctx is None else ctx
    return layer.forward(x, True, ctx), ctx


@pytest.mark.parametrize("make", [lambda: layers.SpatialDropout2D(0.5, seed=3), lambda: layers.GaussianNoise(0.5, seed=3),
                                  lambda: layers.GaussianDropout(0.5, seed=3), lambda: layers.AlphaDropout(0.5, seed=3)])
def test_random_layers_identity_at_inference_and_reproducible(make, rng):
    x = rng.standard_normal((4, 6, 6, 8)).astype(np.float32)
    a, b = make(), make()
    np.testing.assert_array_equal(a(x), x)
    np.testing.assert_array_equal(a(x, training=False), x)
    ya, yb = a(x, training=True), b(x, training=True)
    np.testing.assert_array_equal(ya, yb)            # same seed, same step: same noise
    assert not np.array_equal(ya, x)
    assert not np.array_equal(a(x, training=True), ya)   # the next step draws new noise
    c = type(a).from_config(a.get_config())
    np.testing.assert_array_equal(c(x, training=True), ya)   # the seed is in the config


def test_random_layers_follow_the_training_step(rng):
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    layer = layers.GaussianNoise(0.2, seed=11)
    base.set_rng_step(7)
    try:
        first, second = layer.forward(x, True, {}), layer.forward(x, True, {})
    finally:
        base.set_rng_step(None)
    np.testing.assert_array_equal(first, second)


def test_spatial_dropout_drops_whole_feature_maps(rng):
    x = rng.standard_normal((8, 5, 5, 16)).astype(np.float32) + 3
    for data_format, axes in (("channels_last", (1, 2)), ("channels_first", (2, 3))):
        layer = layers.SpatialDropout2D(0.4, data_format=data_format, seed=5)
        y, ctx = _train(layer, x)
        ratio = y / x
        kept = np.isclose(ratio, 1 / 0.6)
        assert np.all(kept | (ratio == 0))
        per_map = kept.all(axis=axes) | (~kept).all(axis=axes)   # one draw per (sample, channel)
        assert per_map.all()
        assert 0.2 < 1 - kept.mean() < 0.6
        dy = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_allclose(layer.backward(dy, ctx, True), dy * ratio, rtol=1e-6)
    y1, _ = _train(layers.SpatialDropout1D(0.5, seed=2), x[:, 0])
    assert ((y1 == 0).all(axis=1) | (y1 != 0).all(axis=1)).all()
    y3, _ = _train(layers.SpatialDropout3D(0.5, seed=2), x[:, :, :, None, :])
    assert ((y3 == 0).all(axis=(1, 2, 3)) | (y3 != 0).all(axis=(1, 2, 3))).all()


def test_noise_statistics_and_gradients(rng):
    x = np.full((4, 32, 32, 8), 2.0, np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, ctx = _train(layers.GaussianNoise(0.3, seed=1), x)
    assert abs((y - x).mean()) < 0.01 and abs((y - x).std() - 0.3) < 0.01
    np.testing.assert_array_equal(layers.GaussianNoise(0.3).backward(dy, ctx, True), dy)
    layer = layers.GaussianDropout(0.2, seed=1)
    y, ctx = _train(layer, x)
    noise = y / x
    assert abs(noise.mean() - 1) < 0.01 and abs(noise.std() - np.sqrt(0.2 / 0.8)) < 0.01
    np.testing.assert_allclose(layer.backward(dy, ctx, True), dy * noise, rtol=1e-5)
    # AlphaDropout keeps the mean and variance of SELU-normalised inputs
    z = rng.standard_normal((4, 32, 32, 8)).astype(np.float32)
    layer = layers.AlphaDropout(0.3, seed=1)
    y, ctx = _train(layer, z)
    assert abs(y.mean()) < 0.03 and abs(y.std() - 1) < 0.03
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - 0.3) * (1 + 0.3 * alpha_p ** 2)) ** -0.5
    dropped = np.isclose(y, a * alpha_p - a * alpha_p * 0.3, atol=1e-5)
    assert 0.25 < dropped.mean() < 0.35
    np.testing.assert_allclose(layer.backward(dy, ctx, True), np.where(dropped, 0, a * dy), rtol=1e-5, atol=1e-6)


def test_alpha_dropout_noise_shape(rng):
    x = rng.standard_normal((4, 6, 5)).astype(np.float32)
    layer = layers.AlphaDropout(0.5, noise_shape=(None, 1, 5), seed=4)
    y, _ = _train(layer, x)
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - 0.5) * (1 + 0.5 * alpha_p ** 2)) ** -0.5
    dropped = np.isclose(y, a * alpha_p * 0.5, atol=1e-5)
    assert (dropped.all(axis=1) | (~dropped).all(axis=1)).all()
    with pytest.raises(ValueError, match="does not broadcast"):
        layers.AlphaDropout(0.5, noise_shape=(None, 2, 5))(layers.Input((6, 5)))


# --------------------------------------------------------------------------------------------
# Keras 3 and PyTorch as oracles
def _keras_pairs(keras):
    """(cnnfast layer, Keras layer, input shape) with the same arguments."""
    K, L = keras.layers, layers
    return [
        (L.LayerNormalization(), K.LayerNormalization(), (2, 4, 4, 6)),
        (L.LayerNormalization(axis=[1, 3], epsilon=1e-5, center=False), K.LayerNormalization(
            axis=[1, 3], epsilon=1e-5, center=False), (2, 4, 3, 6)),
        (L.GroupNormalization(groups=3), K.GroupNormalization(groups=3), (2, 4, 4, 6)),
        (L.GroupNormalization(groups=-1, scale=False), K.GroupNormalization(groups=-1, scale=False), (2, 3, 3, 4)),
        (L.GroupNormalization(groups=2, axis=1), K.GroupNormalization(groups=2, axis=1), (2, 4, 3, 3)),
        (L.UnitNormalization(), K.UnitNormalization(), (3, 5, 4)),
        (L.UnitNormalization(axis=[1, 2]), K.UnitNormalization(axis=[1, 2]), (3, 5, 4)),
        (L.PReLU(), K.PReLU(), (2, 3, 3, 4)),
        (L.PReLU(shared_axes=[1, 2]), K.PReLU(shared_axes=[1, 2]), (2, 3, 3, 4)),
        (L.ELU(alpha=0.7), K.ELU(alpha=0.7), (2, 3, 4)),
        (L.Identity(), K.Identity(), (2, 3)),
        (L.ActivityRegularization(l1=0.1), K.ActivityRegularization(l1=0.1), (2, 3)),
    ]


def test_layers_match_keras(keras, rng):
    for ours, theirs, shape in _keras_pairs(keras):
        x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
        ours(x)
        theirs(x)
        _random_weights(ours, rng)
        theirs.set_weights(ours.get_weights())
        assert [tuple(w.shape) for w in theirs.weights] == [w.shape for w in ours.weights], type(ours).__name__
        assert ours.count_params() == theirs.count_params()
        for training in (False, True):
            np.testing.assert_allclose(ours(x, training=training),
                                       keras.ops.convert_to_numpy(theirs(x, training=training)),
                                       rtol=2e-5, atol=2e-5, err_msg=type(ours).__name__)


def test_configs_match_keras_and_round_trip(keras):
    pairs = _keras_pairs(keras) + [
        (layers.SpatialDropout1D(0.2, seed=1), keras.layers.SpatialDropout1D(0.2, seed=1), (2, 3, 4)),
        (layers.SpatialDropout2D(0.2, seed=1), keras.layers.SpatialDropout2D(0.2, seed=1), (2, 3, 3, 4)),
        (layers.SpatialDropout3D(0.2, seed=1), keras.layers.SpatialDropout3D(0.2, seed=1), (2, 3, 3, 3, 4)),
        (layers.GaussianNoise(0.1, seed=1), keras.layers.GaussianNoise(0.1, seed=1), (2, 3)),
        (layers.GaussianDropout(0.1, seed=1), keras.layers.GaussianDropout(0.1, seed=1), (2, 3)),
        (layers.AlphaDropout(0.1, seed=1), keras.layers.AlphaDropout(0.1, seed=1), (2, 3)),
    ]
    ignored = {"dtype", "trainable", "name"}
    for ours, theirs, shape in pairs:
        ours._maybe_build((None,) + shape[1:])
        theirs.build((None,) + shape[1:])
        mine, keras_config = ours.get_config(), theirs.get_config()
        assert set(mine) - ignored == set(keras_config) - ignored, type(ours).__name__
        for key in set(mine) - ignored:
            if "initializer" not in key:
                assert mine[key] == keras_config[key], (type(ours).__name__, key)
        # Keras's layer rebuilds from cnnfast's config, and cnnfast's from Keras's
        type(theirs).from_config({k: v for k, v in ours.get_config().items() if k != "dtype"})
        again = type(ours).from_config({k: v for k, v in keras_config.items() if k != "dtype"})
        assert type(again) is type(ours)
        copy = type(ours).from_config(ours.get_config())
        assert copy.get_config() == ours.get_config()


def test_summary_parameter_counts_match_keras(keras):
    def build(L, Input, Model):
        inp = Input((8, 8, 6))
        h = L.GroupNormalization(groups=3)(inp)
        h = L.PReLU(shared_axes=[1, 2])(h)
        h = L.SpatialDropout2D(0.1)(h)
        h = L.LayerNormalization(axis=[1, 2, 3])(h)
        h = L.PReLU()(h)
        h = L.GaussianNoise(0.1)(h)
        h = L.ELU()(h)
        h = L.UnitNormalization()(h)
        h = L.Identity()(h)
        return Model(inp, h)
    ours = build(layers, layers.Input, cnnfast.Model)
    theirs = build(keras.layers, keras.Input, keras.Model)
    assert [l.count_params() for l in ours.layers] == [l.count_params() for l in theirs.layers]
    assert [l.output.shape for l in ours.layers[1:]] == [tuple(l.output.shape) for l in theirs.layers[1:]]
    assert ours.count_params() == theirs.count_params()


def test_activity_regularization_loss_matches_keras_evaluate(keras, rng):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.integers(0, 3, 6)

    def build(L, Input, Model, regularize=True):
        inp = Input((5,))
        h = L.Dense(4)(inp)
        if regularize:
            h = L.ActivityRegularization(l1=0.02, l2=0.05)(h)
        return Model(inp, L.Dense(3, activation="softmax")(h))
    ours, theirs = build(layers, layers.Input, cnnfast.Model), build(keras.layers, keras.Input, keras.Model)
    theirs.set_weights(ours.get_weights())
    for m in (ours, theirs):
        m.compile("sgd", "sparse_categorical_crossentropy")
    ours_loss = ours.evaluate(x, y, batch_size=6, verbose=0)
    np.testing.assert_allclose(ours_loss, theirs.evaluate(x, y, batch_size=6, verbose=0), rtol=1e-5)
    plain = build(layers, layers.Input, cnnfast.Model, regularize=False)
    plain.set_weights(ours.get_weights())
    plain.compile("sgd", "sparse_categorical_crossentropy")
    h = x @ ours.get_weights()[0] + ours.get_weights()[1]
    penalty = (0.02 * np.abs(h).sum() + 0.05 * (h ** 2).sum()) / 6
    assert ours_loss > plain.evaluate(x, y, batch_size=6, verbose=0)
    np.testing.assert_allclose(ours_loss - penalty, plain.evaluate(x, y, batch_size=6, verbose=0), rtol=1e-5)


def _torch_grads(torch, module, x_nchw, dy_nchw):
    xt = torch.tensor(x_nchw, dtype=torch.float64, requires_grad=True)
    module = module.double()
    yt = module(xt)
    (yt * torch.tensor(dy_nchw, dtype=torch.float64)).sum().backward()
    return yt.detach().numpy(), xt.grad.numpy(), [p.grad.numpy() for p in module.parameters()]


def test_layers_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal((2, 5, 4, 6)) * 2 + 1).astype(np.float32)     # NHWC
    dy = rng.standard_normal(x.shape).astype(np.float32)
    to_nchw, to_nhwc = (lambda a: np.transpose(a, (0, 3, 1, 2))), (lambda a: np.transpose(a, (0, 2, 3, 1)))
    cases = [
        (layers.LayerNormalization(epsilon=1e-5), torch.nn.LayerNorm(6, eps=1e-5), False),
        (layers.GroupNormalization(groups=3, epsilon=1e-5), torch.nn.GroupNorm(3, 6, eps=1e-5), True),
        (layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform"), torch.nn.PReLU(6), True),
        (layers.ELU(alpha=0.5), torch.nn.ELU(alpha=0.5), False),
    ]
    for ours, module, channels_first in cases:
        ours(x)
        _random_weights(ours, rng)
        with torch.no_grad():
            for p, w in zip(module.parameters(), ours.get_weights()):
                p.copy_(torch.tensor(w.reshape(p.shape)))
        ctx = {}
        y = ours.forward(x, True, ctx)
        base.new_grad_generation()
        dx = ours.backward(dy, ctx, True)
        if channels_first:
            ty, tdx, tgrads = _torch_grads(torch, module, to_nchw(x), to_nchw(dy))
            ty, tdx = to_nhwc(ty), to_nhwc(tdx)
        else:
            ty, tdx, tgrads = _torch_grads(torch, module, x, dy)
        name = type(ours).__name__
        np.testing.assert_allclose(y, ty, rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(dx, tdx, rtol=1e-4, atol=1e-4, err_msg=name)
        for var, g in zip(ours.trainable_weights, tgrads):
            np.testing.assert_allclose(var.grad, g.reshape(var.shape), rtol=1e-4, atol=1e-4, err_msg=var.path)


# --------------------------------------------------------------------------------------------
# models: saving and training
def _model(seed=0):
    cnnfast.utils.set_random_seed(seed)
    inp = layers.Input((6, 6, 4))
    h = layers.Conv2D(8, 3, padding="same")(inp)
    h = layers.GroupNormalization(groups=4, gamma_initializer="random_normal")(h)
    h = layers.PReLU(shared_axes=[1, 2], alpha_initializer="random_uniform")(h)
    h = layers.SpatialDropout2D(0.1)(h)
    h = layers.GaussianNoise(0.05)(h)
    h = layers.ELU()(h)
    h = layers.Flatten()(h)
    h = layers.LayerNormalization(beta_initializer="random_normal")(h)
    h = layers.GaussianDropout(0.1)(h)
    h = layers.ActivityRegularization(l2=1e-4)(h)
    h = layers.Dense(16)(h)
    h = layers.AlphaDropout(0.1)(h)
    h = layers.UnitNormalization()(h)
    h = layers.Identity()(h)
    return cnnfast.Model(inp, layers.Dense(3, activation="softmax")(h))


def test_save_and_load_round_trip(tmp_path, rng):
    model = _model()
    x = rng.standard_normal((4, 6, 6, 4)).astype(np.float32)
    path = tmp_path / "more_layers.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_fit_lowers_the_loss(rng):
    model = _model(seed=3)
    x = rng.standard_normal((48, 6, 6, 4)).astype(np.float32)
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype(np.int64) + (x[..., 1].mean(axis=(1, 2)) > 0)
    model.compile(cnnfast.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.evaluate(x, y, verbose=0) < before


# --------------------------------------------------------------------------------------------
# argument errors
def test_bad_arguments():
    with pytest.raises(TypeError, match="LayerNormalization.*'axis'"):
        layers.LayerNormalization(axis="last")
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        layers.LayerNormalization(epsilon=0)
    with pytest.raises(ValueError, match="out of bounds"):
        layers.LayerNormalization(axis=4)(layers.Input((3, 3)))
    with pytest.raises(ValueError, match="batch axis"):
        layers.LayerNormalization(axis=0)(layers.Input((3, 3)))
    with pytest.raises(ValueError, match="gamma_regularizer"):
        layers.LayerNormalization(gamma_regularizer="no_such_regularizer")
    with pytest.raises(ValueError, match="invalid value for argument `groups`"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match=r"number of groups \(4\) must divide the number of channels \(6\)"):
        layers.GroupNormalization(groups=4)(layers.Input((3, 3, 6)))
    with pytest.raises(ValueError, match="cannot be more than the number of channels"):
        layers.GroupNormalization(groups=8)(layers.Input((3, 3, 6)))
    with pytest.raises(TypeError, match="UnitNormalization.*'axis'"):
        layers.UnitNormalization(axis=1.5)
    with pytest.raises(ValueError, match="shared_axes"):
        layers.PReLU(shared_axes=[3])(layers.Input((3, 4)))
    with pytest.raises(ValueError, match="defined size"):
        layers.PReLU()(layers.Input((None, 4)))
    with pytest.raises(ValueError, match="alpha_regularizer"):
        layers.PReLU(alpha_regularizer="no_such_regularizer")
    with pytest.raises(ValueError, match="rate must be in"):
        layers.SpatialDropout2D(1.0)
    with pytest.raises(ValueError, match="data_format"):
        layers.SpatialDropout2D(0.5, data_format="NHWC")
    with pytest.raises(ValueError, match="expected ndim=4"):
        layers.SpatialDropout2D(0.5)(layers.Input((3, 4)))
    with pytest.raises(ValueError, match="stddev"):
        layers.GaussianNoise(1.5)
    with pytest.raises(ValueError, match="rate"):
        layers.GaussianDropout(-0.1)
    with pytest.raises(ValueError, match="rate"):
        layers.AlphaDropout(1.0)
    with pytest.raises(ValueError, match="non-negative float"):
        layers.ActivityRegularization(l1=-1)
    with pytest.raises(ValueError, match="non-negative float"):
        layers.ActivityRegularization(l2=float("nan"))
    with pytest.raises(TypeError, match="Unrecognized keyword"):
        layers.Identity(units=3)

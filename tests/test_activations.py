"""cnnfast.activations: every name Keras 3 accepts, forward against Keras (torch backend) and
backward against torch autograd of Keras's own op in float64 and finite differences of cnnfast's
forward; parameters as Keras; by name in Dense / Conv2D / Activation; get / serialize /
deserialize."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast import activations, layers  # noqa: E402
from cnnfast.layers import base  # noqa: E402

# Every activation of keras.activations 3.15.1 (dir(keras.activations) minus get/serialize/deserialize)
KERAS_NAMES = ["celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu",
               "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish",
               "relu", "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus",
               "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax", "squareplus", "swish", "tanh",
               "tanh_shrink", "threshold"]

# (name, keyword arguments): the defaults and at least one non-default setting of each parameter
CASES = [(n, {}) for n in KERAS_NAMES if n != "threshold"] + [
    ("relu", {"negative_slope": 0.1, "max_value": 4.0, "threshold": 0.5}),
    ("relu", {"max_value": 2.0}),
    ("leaky_relu", {"negative_slope": 0.05}),
    ("elu", {"alpha": 0.5}),
    ("celu", {"alpha": 2.0}),
    ("gelu", {"approximate": True}),
    ("glu", {"axis": 1}),
    ("softmax", {"axis": 1}),
    ("log_softmax", {"axis": 0}),
    ("sparsemax", {"axis": 1}),
    ("soft_shrink", {"threshold": 1.5}),
    ("hard_shrink", {"threshold": 1.0}),
    ("squareplus", {"b": 1.0}),
    ("threshold", {"threshold": 0.3, "default_value": -2.0}),
    ("threshold", {"threshold": -1.0, "default_value": 0.0}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" if kw else n for n, kw in CASES]

# Where each function has a kink (finite differences skip points near them)
KINKS = {"relu": [0.0, 0.5, 4.0, 2.0], "relu6": [0.0, 6.0], "leaky_relu": [0.0], "elu": [0.0],
         "selu": [0.0], "celu": [0.0], "hard_sigmoid": [-3.0, 3.0], "hard_silu": [-3.0, 3.0],
         "hard_swish": [-3.0, 3.0], "hard_tanh": [-1.0, 1.0], "soft_shrink": [-1.5, -0.5, 0.5, 1.5],
         "hard_shrink": [-1.0, -0.5, 0.5, 1.0], "sparse_plus": [-1.0, 1.0],
         "sparse_sigmoid": [-1.0, 1.0], "threshold": [0.3, -1.0]}


def _inputs(rng, shape=(6, 8)):
    """Moderate values with some exact zeros, tiny and large magnitudes mixed in."""
    x = rng.standard_normal(shape) * 3
    flat = x.reshape(-1)
    flat[:4] = [0.0, 1e-6, -1e-6, 1e-30]
    flat[4:10] = [30.0, -30.0, 88.0, -88.0, 1e3, -1e3]
    return x


def _keras_fn(keras, name):
    return getattr(keras.activations, name)


def _sparsemax_reference(z, axis=-1):
    """Martins & Astudillo's algorithm in float64 (Keras 3.15.1's is wrong for supports > 1)."""
    z = np.moveaxis(np.asarray(z, np.float64), axis, -1)
    s = -np.sort(-z, axis=-1)
    c = np.cumsum(s, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    size = (1 + k * s > c).sum(-1, keepdims=True)
    tau = (np.take_along_axis(c, size - 1, -1) - 1) / size
    return np.moveaxis(np.maximum(z - tau, 0), -1, axis)


def _torch_sparsemax(torch, x, axis=-1):
    """The corrected Keras formula (keras-team/keras#23469) in torch, for autograd."""
    ranked, _ = torch.sort(x, dim=axis, descending=True)
    cumsum = torch.cumsum(ranked, dim=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    r = torch.arange(1, x.shape[axis] + 1, dtype=x.dtype).view(shape)
    support = ranked - (cumsum - 1) / r > 0
    k = support.sum(dim=axis, keepdim=True)
    tau = ((ranked * support).sum(dim=axis, keepdim=True) - 1) / k
    return torch.clamp(x - tau, min=0.0)


def _reference(keras, name, x64, kwargs):
    """Keras's function on float64 input (torch computes it in float64)."""
    if name == "sparsemax":
        return _sparsemax_reference(x64, kwargs.get("axis", -1))
    out = _keras_fn(keras, name)(x64, **kwargs)
    return keras.ops.convert_to_numpy(out).astype(np.float64)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_forward_matches_keras(name, kwargs, keras, rng):
    x = _inputs(rng).astype(np.float32)
    y = getattr(activations, name)(x, **kwargs)
    assert y.dtype == np.float32
    expected = _reference(keras, name, x.astype(np.float64), kwargs)
    assert y.shape == expected.shape
    with np.errstate(over="ignore"):
        finite = np.isfinite(expected)
    # exponential overflows float32 at 88 exactly as Keras's float32 does
    np.testing.assert_array_equal(np.isfinite(y), finite)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=2e-6, atol=1e-6)
    # and Keras's own float32 result on moderate inputs
    xm = (rng.standard_normal((5, 6)) * 2).astype(np.float32)
    ym = getattr(activations, name)(xm, **kwargs)
    if name != "sparsemax":
        k32 = keras.ops.convert_to_numpy(_keras_fn(keras, name)(xm, **kwargs))
        np.testing.assert_allclose(ym, k32, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_backward_matches_torch_autograd(name, kwargs, keras, rng):
    torch = pytest.importorskip("torch")
    x = _inputs(rng, (5, 6)).astype(np.float32)
    if name == "exponential":
        x = np.clip(x, -30, 30)   # keep exp finite
    fn = getattr(activations, name)
    y = fn(x, **kwargs)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = activations.derivative_of(fn)(dy, x, y, **kwargs)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    if name == "sparsemax":
        yt = _torch_sparsemax(torch, xt, kwargs.get("axis", -1))
    else:
        yt = _keras_fn(keras, name)(xt, **kwargs)
    (yt * torch.tensor(dy.astype(np.float64))).sum().backward()
    expected = xt.grad.numpy()
    np.testing.assert_allclose(dx, expected, rtol=2e-5, atol=2e-6 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_backward_matches_finite_differences(name, kwargs, rng):
    fn = getattr(activations, name)
    x = rng.uniform(-5, 5, (4, 6))
    h = 1e-3
    near_kink = np.zeros(x.shape, bool)
    for k in KINKS.get(name, []):
        near_kink |= np.abs(x - k) < 4 * h
    x[near_kink] += 0.1   # move off the kink (kinks are >= 0.5 apart)
    x32 = x.astype(np.float32)
    y = fn(x32, **kwargs)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = activations.derivative_of(fn)(dy, x32, y, **kwargs).astype(np.float64)
    # float64 central differences of the float32 forward: each output perturbed by +-h
    loss = lambda v: float(np.sum(fn(v.astype(np.float32), **kwargs).astype(np.float64) * dy))
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        fd[i] = (loss(x32 + e) - loss(x32 - e)) / (2 * h)
    scale = max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(dx, fd, rtol=2e-2, atol=2e-2 * scale)


def test_every_keras_name_is_known(keras):
    names = sorted(n for n in dir(keras.activations)
                   if not n.startswith("_") and n not in ("get", "serialize", "deserialize"))
    assert names == sorted(KERAS_NAMES)
    for name in names:
        assert activations.get(name) is getattr(activations, name)
        assert callable(getattr(activations, name))


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_serialize_and_deserialize_as_keras(name, keras):
    fn = getattr(activations, name)
    assert activations.serialize(fn) == keras.activations.serialize(_keras_fn(keras, name))
    assert activations.deserialize(activations.serialize(fn)) is fn
    config = {"module": "keras.activations", "class_name": "function", "config": name, "registered_name": None}
    assert activations.get(config) is fn


def test_aliases_and_errors():
    assert activations.get("swish") is activations.silu is activations.swish
    assert activations.get("hard_swish") is activations.hard_silu
    assert activations.get(None) is activations.linear
    assert activations.serialize(activations.swish) == "silu"
    with pytest.raises(ValueError, match="unknown activation 'gleu'"):
        activations.get("gleu")
    with pytest.raises(TypeError, match="cnnfast.activations function"):
        activations.get(lambda x: x)
    with pytest.raises(ValueError, match="bad activation config"):
        activations.get({"class_name": "__lambda__", "config": {"code": "..."}})
    with pytest.raises(ValueError, match="must be even"):
        activations.glu(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        activations.log_softmax(np.ones((2, 3), np.float32), axis=2)
    with pytest.raises(TypeError, match="threshold must be a number"):
        activations.hard_shrink(np.ones(3), threshold="x")
    with pytest.raises(TypeError, match="default_value"):
        activations.threshold(np.ones(3), 0.5)


def test_parameters_change_the_result_as_keras(keras, rng):
    x = (rng.standard_normal((4, 6)) * 3).astype(np.float32)
    exact, approx = activations.gelu(x), activations.gelu(x, approximate=True)
    assert np.abs(exact - approx).max() > 1e-4        # the two forms differ, as Keras's do
    np.testing.assert_allclose(approx, keras.ops.convert_to_numpy(
        keras.activations.gelu(x, approximate=True)), rtol=1e-5, atol=1e-6)
    # Keras's function default is the exact form (keras.ops.gelu's is the tanh one)
    np.testing.assert_allclose(exact, keras.ops.convert_to_numpy(keras.activations.gelu(x)),
                               rtol=1e-5, atol=1e-6)
    assert activations.glu(x).shape == (4, 3)
    assert activations.glu(x, axis=0).shape == (2, 6)
    s = activations.sparsemax(x, axis=0)
    np.testing.assert_allclose(s.sum(axis=0), 1.0, rtol=1e-6)
    # 0-D inputs stay 0-D
    assert activations.mish(np.float32(1.0)).shape == ()


def test_sparsemax_agrees_with_keras_when_one_entry_survives(keras):
    x = np.linspace(1, 12, 12).reshape(-1, 3).astype(np.float32) * 2   # gaps > 1: support of one
    np.testing.assert_allclose(activations.sparsemax(x), keras.ops.convert_to_numpy(
        keras.activations.sparsemax(x)), atol=1e-6)


# --- by name in layers ------------------------------------------------------------------------
LAYER_NAMES = [n for n in KERAS_NAMES if n not in ("glu", "threshold")]


def _torch_layer_reference(torch, keras, layer_kind, name, x, kernel, bias, dy):
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    kt = torch.tensor(kernel.astype(np.float64), requires_grad=True)
    bt = torch.tensor(bias.astype(np.float64), requires_grad=True)
    if layer_kind == "Dense":
        z = xt @ kt + bt
    else:   # Conv2D, NHWC with HWIO kernel
        z = torch.nn.functional.conv2d(xt.permute(0, 3, 1, 2), kt.permute(3, 2, 0, 1), bt, padding=1)
        z = z.permute(0, 2, 3, 1)
    y = _sparsemax_torch_or_keras(torch, keras, name, z)
    (y * torch.tensor(dy.astype(np.float64))).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), kt.grad.numpy(), bt.grad.numpy()


def _sparsemax_torch_or_keras(torch, keras, name, z):
    return _torch_sparsemax(torch, z) if name == "sparsemax" else _keras_fn(keras, name)(z)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("layer_kind", ["Dense", "Conv2D"])
def test_layers_by_name_forward_and_backward_vs_torch(layer_kind, name, keras, rng):
    torch = pytest.importorskip("torch")
    if layer_kind == "Dense":
        layer, x = layers.Dense(5, activation=name, bias_initializer="random_normal"), rng.standard_normal((4, 3))
    else:
        layer = layers.Conv2D(4, 3, padding="same", activation=name, bias_initializer="random_normal")
        x = rng.standard_normal((2, 5, 5, 3))
    x = x.astype(np.float32)
    layer._maybe_build((None,) + x.shape[1:])
    ctx = {}
    y = layer.forward(x, True, ctx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    base.new_grad_generation()
    dx = layer.backward(dy, ctx, True)
    ry, rdx, rk, rb = _torch_layer_reference(torch, keras, layer_kind, name, x, layer.kernel.value,
                                             layer.bias.value, dy)
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(y, ry, **tol)
    np.testing.assert_allclose(dx, rdx, **tol)
    np.testing.assert_allclose(layer.kernel.grad, rk, **tol)
    np.testing.assert_allclose(layer.bias.grad, rb, **tol)
    assert layer.get_config()["activation"] == keras.activations.serialize(_keras_fn(keras, name))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_activation_layer_by_name(name, rng):
    layer = layers.Activation(name)
    x = (rng.standard_normal((3, 4)) * 2).astype(np.float32)
    ctx = {}
    y = layer.forward(x, True, ctx)
    fn = activations.get(name)
    np.testing.assert_array_equal(y, fn(x))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy, ctx, True), activations.derivative_of(fn)(dy, x, fn(x)),
                               rtol=1e-6, atol=1e-7)
    rebuilt = layers.Activation.from_config(layer.get_config()) if hasattr(layers.Activation, "from_config") \
        else layers.Activation(**layer.get_config())
    assert rebuilt.activation is fn


def test_model_with_new_activations_trains_and_round_trips(tmp_path, rng):
    from cnnfast import models
    inputs = layers.Input((6,))
    h = layers.Dense(8, activation="gelu")(inputs)
    h = layers.Activation("mish")(h)
    h = layers.Dense(8, activation="hard_tanh")(h)
    outputs = layers.Dense(3, activation="log_softmax")(h)
    model = models.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    x = rng.standard_normal((16, 6)).astype(np.float32)
    t = rng.standard_normal((16, 3)).astype(np.float32)
    history = model.fit(x, t, epochs=3, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert [l.get_config().get("activation") for l in loaded.layers[1:]] == \
        ["gelu", "mish", "hard_tanh", "log_softmax"]


@pytest.mark.parametrize("name", ["glu", "threshold"])
def test_layers_refuse_glu_and_threshold_by_name(name):
    for make in (lambda: layers.Dense(4, activation=name), lambda: layers.Activation(name),
                 lambda: layers.Conv2D(2, 3, activation=name)):
        with pytest.raises(ValueError, match=f"activation '{name}' cannot be a layer's activation"):
            make()

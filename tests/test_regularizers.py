"""cnnfast.regularizers: penalties and their gradients against Keras 3 (torch backend) and PyTorch
autograd on Keras's own formulas; identifiers, configs and errors as Keras's; layers' regularizer
arguments in training (weights after several SGD steps and the reported loss against Keras 3 from
the same initial weights), evaluation, ``model.losses``, configs and saving."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import cnnfast
from cnnfast import constraints, layers, regularizers


def _keras_value_and_grad(keras_reg, w):
    """Keras's penalty of ``w`` and its gradient by torch autograd through Keras's own code."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(w, requires_grad=True)
    value = keras_reg(t)
    value.backward()
    return float(value.detach()), t.grad.numpy()


def _weights(rng, shape=(6, 4)):
    w = rng.standard_normal(shape).astype(np.float32)
    w.flat[::5] = 0.0   # zeros: L1's gradient there is sign(0) = 0, as abs's autograd
    return w


@pytest.mark.parametrize("make", [
    lambda m: m.L1(0.3), lambda m: m.L2(0.2), lambda m: m.L1L2(0.1, 0.25), lambda m: m.L1L2(l2=0.5),
    lambda m: m.L1(), lambda m: m.L2(), lambda m: m.OrthogonalRegularizer(0.5),
    lambda m: m.OrthogonalRegularizer(0.2, mode="columns")])
def test_penalty_and_gradient_match_keras_autograd(keras, rng, make):
    w = _weights(rng)
    if "Orthogonal" in type(make(regularizers)).__name__:
        w[w == 0] = 0.5   # Keras's gradient is NaN for an all-zero row; keep rows non-zero
    ours, theirs = make(regularizers), make(keras.regularizers)
    value, grad = _keras_value_and_grad(theirs, w)
    assert ours(w) == pytest.approx(value, rel=1e-6, abs=1e-7)
    got = ours.gradient(w)
    assert got.dtype == np.float32 and got.shape == w.shape
    np.testing.assert_allclose(got, grad, rtol=1e-5, atol=1e-7)
    assert ours.get_config() == theirs.get_config()


def test_exact_gradients_in_closed_form(rng):
    w = _weights(rng, (3, 5))
    np.testing.assert_array_equal(regularizers.L2(0.3).gradient(w), np.float32(0.6) * w)
    np.testing.assert_array_equal(regularizers.L1(0.5).gradient(w), np.float32(0.5) * np.sign(w))
    assert regularizers.L1(0.5).gradient(np.zeros(3, np.float32)).tolist() == [0.0, 0.0, 0.0]
    assert regularizers.L2(2.0)(np.ones((5, 5))) == 50.0   # Keras's docstring example


def test_orthogonal_gradient_by_finite_differences(rng):
    w = rng.standard_normal((4, 3))
    reg = regularizers.OrthogonalRegularizer(0.7, mode="columns")
    eps, num = 1e-3, np.zeros_like(w)   # the penalty reads float32 weights
    for i in np.ndindex(w.shape):
        d = np.zeros_like(w)
        d[i] = eps
        num[i] = (reg(w + d) - reg(w - d)) / (2 * eps)
    np.testing.assert_allclose(reg.gradient(w), num, rtol=1e-3, atol=1e-6)
    # an all-zero row has a zero gradient (Keras's autograd gives NaN there)
    w[1] = 0.0
    assert np.isfinite(regularizers.OrthogonalRegularizer()(w))
    assert np.all(regularizers.OrthogonalRegularizer().gradient(w)[1] == 0)


def test_string_identifiers_and_defaults_match_keras(keras):
    for name in ("l1", "l2", "l1l2", "L1L2", "L1", "L2", "orthogonal_regularizer", "OrthogonalRegularizer"):
        ours, theirs = regularizers.get(name), keras.regularizers.get(name)
        assert type(ours).__name__ == type(theirs).__name__ and ours.get_config() == theirs.get_config(), name
    # Keras documents "l1_l2" with l1 = l2 = 0.01 (its get() does not know the name)
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    assert regularizers.l1_l2 is regularizers.L1L2 and regularizers.l1 is regularizers.L1
    assert regularizers.l2 is regularizers.L2
    assert regularizers.orthogonal_regularizer is regularizers.OrthogonalRegularizer
    assert isinstance(regularizers.get(regularizers.L2), regularizers.L2)   # a class: its defaults
    reg = regularizers.L2(0.3)
    assert regularizers.get(reg) is reg and regularizers.get(None) is None


def test_serialize_matches_keras_and_round_trips(keras):
    for ours, theirs in ((regularizers.L2(0.1), keras.regularizers.L2(0.1)),
                         (regularizers.L1(0.1), keras.regularizers.L1(0.1)),
                         (regularizers.L1L2(0.1, 0.2), keras.regularizers.L1L2(0.1, 0.2)),
                         (regularizers.OrthogonalRegularizer(0.3, "columns"),
                          keras.regularizers.OrthogonalRegularizer(0.3, "columns"))):
        config = regularizers.serialize(ours)
        assert config == keras.regularizers.serialize(theirs)
        assert config["module"] == "keras.regularizers" and config["registered_name"] is None
        assert regularizers.deserialize(config).get_config() == ours.get_config()
        assert keras.regularizers.deserialize(config).get_config() == theirs.get_config()
        assert regularizers.get(keras.regularizers.serialize(theirs)).get_config() == ours.get_config()
    # Keras 2's layout (no module) loads too
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.5}}).l2 == 0.5
    assert regularizers.serialize(None) is None


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match="could not interpret regularizer identifier: 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="could not interpret regularizer identifier"):
        regularizers.get(42)
    with pytest.raises(ValueError, match="cannot load the regularizer class 'Evil'"):
        regularizers.get({"module": "os", "class_name": "Evil", "config": {}})
    with pytest.raises(ValueError, match="module 'os'"):
        regularizers.get({"module": "os", "class_name": "L2", "config": {}})
    with pytest.raises(ValueError, match="bad arguments for L2"):
        regularizers.get({"class_name": "L2", "config": {"l3": 1}})
    for bad in (-1.0, float("nan"), float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="expected a non-negative float"):
            regularizers.L2(bad)
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="must have rank 2"):
        regularizers.OrthogonalRegularizer()(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        regularizers.OrthogonalRegularizer()(np.ones((1, 4)))
    with pytest.raises(ValueError, match=r"Dense 'd': kernel_regularizer: could not interpret"):
        layers.Dense(3, kernel_regularizer="l5", name="d")
    with pytest.raises(ValueError, match="Conv2D 'c': activity_regularizer"):
        layers.Conv2D(3, 3, activity_regularizer="nope", name="c")


def test_custom_regularizers():
    class Cubic(regularizers.Regularizer):
        def __call__(self, x):
            return 0.1 * float(np.sum(np.asarray(x, np.float64) ** 3))

        def gradient(self, x):
            return 0.3 * np.square(x)

        def get_config(self):
            return {}

    class NoGradient(regularizers.Regularizer):
        def __call__(self, x):
            return float(np.sum(x))

    def plain(x):
        return float(np.sum(x))

    assert isinstance(regularizers.get(Cubic()), Cubic)
    with pytest.raises(TypeError, match="no gradient"):
        regularizers.get(NoGradient())
    with pytest.raises(TypeError, match="no gradient"):
        layers.Dense(2, kernel_regularizer=plain)
    plain.gradient = np.ones_like
    assert regularizers.get(plain) is plain
    config = regularizers.serialize(Cubic())
    assert config["class_name"] == "Cubic" and config["registered_name"] == "Cubic"
    with pytest.raises(ValueError, match="cannot load the regularizer class 'Cubic'"):
        regularizers.deserialize(config)

    # a custom regularizer trains: its gradient joins the weight's
    layer = layers.Dense(2, kernel_initializer="ones", use_bias=False, kernel_regularizer=Cubic())
    model = cnnfast.Sequential([cnnfast.Input(shape=(3,)), layer])
    model.compile(optimizer=cnnfast.optimizers.SGD(0.5), loss="mse")
    x, y = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(0.1 * 6)   # data loss 0, penalty 0.1 * sum(1**3)
    np.testing.assert_allclose(layer.kernel.numpy(), 1 - 0.5 * 0.3, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# layers
def _layer_pairs(m, R):
    return [
        (m.Dense(3, kernel_regularizer=R.L2(0.1), bias_regularizer="l1", activity_regularizer=R.L1(0.2)), (2, 4)),
        (m.Dense(3), (2, 4)),
        (m.Conv2D(3, 3, kernel_regularizer="l2", activity_regularizer=R.L1L2(0.1, 0.2)), (2, 5, 5, 2)),
        (m.Conv2DTranspose(3, 2, bias_regularizer=R.L2(0.3)), (2, 4, 4, 2)),
        (m.DepthwiseConv2D(3, depthwise_regularizer=R.L1(0.1), bias_regularizer="l2"), (2, 5, 5, 2)),
        (m.SeparableConv2D(4, 3, depthwise_regularizer="l2", pointwise_regularizer=R.L1(0.2),
                           activity_regularizer="l1"), (2, 5, 5, 2)),
        (m.BatchNormalization(gamma_regularizer=R.L2(0.2), beta_regularizer="l1"), (2, 4)),
        (m.LayerNormalization(beta_regularizer=R.L2(0.2)), (2, 4)),
        (m.GroupNormalization(groups=2, gamma_regularizer="l2"), (2, 3, 4)),
        (m.PReLU(alpha_regularizer=R.L2(0.4)), (2, 4)),
    ]


def test_layer_configs_match_keras_and_load_both_ways(keras):
    ignored = {"dtype", "name", "trainable", "quantization_config"}
    for (ours, shape), (theirs, _) in zip(_layer_pairs(layers, regularizers),
                                          _layer_pairs(keras.layers, keras.regularizers)):
        ours._maybe_build((None,) + shape[1:])
        theirs.build((None,) + shape[1:])
        mine, ref = ours.get_config(), theirs.get_config()
        what = type(ours).__name__
        assert set(mine) - ignored == set(ref) - ignored, what
        for key in mine:
            if "regularizer" in key or "constraint" in key:
                assert mine[key] == ref[key], (what, key)
        # (Keras's initializer configs carry arguments cnnfast's initializers lack: keep ours)
        again = type(ours).from_config({k: mine[k] if "initializer" in k else v for k, v in ref.items()
                                        if k not in ("dtype", "quantization_config")})
        assert again.get_config() == mine | {"name": again.name}, what
        back = type(theirs).from_config({k: v for k, v in mine.items() if k != "dtype"})
        assert keras.regularizers.serialize(getattr(back, "activity_regularizer", None)) == \
            mine.get("activity_regularizer"), what
        # the weights carry their regularizers, and layer.losses lists them as Keras's does
        assert [type(v.regularizer).__name__ for v in ours.weights] == \
            [type(v.regularizer).__name__ for v in theirs.weights], what
        for v in ours.weights:
            v.assign(np.linspace(-1, 1, v.size).reshape(v.shape))
        theirs.set_weights(ours.get_weights())
        np.testing.assert_allclose([float(l) for l in ours.losses],
                                   [float(keras.ops.convert_to_numpy(l)) for l in theirs.losses],
                                   rtol=1e-6, err_msg=what)


def test_layer_losses_after_a_call_as_keras_docstring():
    layer = layers.Dense(5, input_dim=5, kernel_initializer="ones", kernel_regularizer=regularizers.L1(0.01),
                         activity_regularizer=regularizers.L2(0.01))
    layer(np.ones((5, 5), np.float32) * 2)
    # the activity term (after dividing by the batch size of 5) is 5.0, the kernel term 0.25
    assert [float(l) for l in layer.losses] == pytest.approx([5.0, 0.25])
    assert layers.Dense(2).losses == []


def _regularized_model(m, R, inp, C=None):
    return [inp((6, 6, 2)),
            m.Conv2D(4, 3, activation="relu", kernel_regularizer=R.L2(0.05), bias_regularizer=R.L1(0.02),
                     activity_regularizer=R.L2(0.01)),
            m.MaxPooling2D(),
            m.DepthwiseConv2D(2, padding="same", depthwise_regularizer=R.L1(0.01)),
            m.Flatten(),
            m.Dense(5, activation="relu", kernel_regularizer=R.L1L2(0.01, 0.02),
                    bias_constraint=None if C is None else C.NonNeg()),
            # beta not 0: a unit the ReLU kills would then reach PReLU at exactly 0, where Keras's
            # derivative is 0 and cnnfast's (PyTorch's) alpha
            m.BatchNormalization(gamma_regularizer=R.L2(0.1), beta_initializer="ones"),
            m.PReLU(alpha_regularizer=R.L2(0.3), alpha_initializer="ones"),
            m.Dense(3, activation="softmax", activity_regularizer=R.L1(0.01),
                    kernel_regularizer=R.OrthogonalRegularizer(0.1))]


def test_training_with_regularizers_matches_keras(keras, rng):
    """Same initial weights, SGD on full batches: the reported loss (data loss + penalties, as Keras)
    and the weights after each of five steps agree with Keras 3's."""
    x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    ours = cnnfast.Sequential(_regularized_model(layers, regularizers, lambda s: cnnfast.Input(shape=s)))
    theirs = keras.Sequential(_regularized_model(keras.layers, keras.regularizers, lambda s: keras.Input(shape=s)))
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose([float(v) for v in ours.losses],
                               [float(keras.ops.convert_to_numpy(v)) for v in theirs.losses], rtol=1e-6)
    ours.compile(optimizer=cnnfast.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    mine = ours.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0).history["loss"]
    ref = theirs.fit(x, y, batch_size=16, epochs=5, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(mine, ref, rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-6)
    # evaluation includes the penalties too
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)


def test_reported_loss_is_data_loss_plus_penalty(rng):
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    dense = layers.Dense(2, kernel_regularizer=regularizers.L2(0.3), bias_regularizer=regularizers.L1(0.2),
                         bias_initializer="ones")
    model = cnnfast.Sequential([cnnfast.Input(shape=(4,)), dense])
    model.compile(optimizer=cnnfast.optimizers.SGD(0.05), loss="mse")
    w, b = dense.kernel.numpy().astype(np.float64), dense.bias.numpy().astype(np.float64)
    data_loss = np.mean((x @ w + b - y) ** 2)
    penalty = 0.3 * np.sum(w ** 2) + 0.2 * np.sum(np.abs(b))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(data_loss + penalty, rel=1e-6)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(data_loss + penalty, rel=1e-6)
    # one SGD step on loss + penalty, by hand
    dz = 2 * (x @ w + b - y) / y.size
    w_next = w - 0.05 * (x.T @ dz + 2 * 0.3 * w)
    b_next = b - 0.05 * (dz.sum(0) + 0.2 * np.sign(b))
    np.testing.assert_allclose(dense.kernel.numpy(), w_next, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dense.bias.numpy(), b_next, rtol=1e-5, atol=1e-7)


def test_frozen_layers_add_no_penalty(rng):
    dense = layers.Dense(2, kernel_regularizer="l2")
    model = cnnfast.Sequential([cnnfast.Input(shape=(3,)), dense, layers.Dense(1)])
    assert len(model.losses) == 1
    dense.trainable = False
    assert model.losses == []   # Keras: penalties of the trainable weights only


def test_conv2d_with_activity_regularizer_matches_torch(rng):
    """Conv2D (relu, then a max-pool the model would otherwise fuse into it) with an activity
    penalty: the gradients against torch autograd on loss + penalty."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 7, 7, 3)).astype(np.float32)
    y = rng.standard_normal((4, 3, 3, 5)).astype(np.float32)
    conv = layers.Conv2D(5, 3, padding="same", activation="relu", activity_regularizer=regularizers.L1L2(0.02, 0.03),
                         kernel_regularizer=regularizers.L2(0.1))
    model = cnnfast.Sequential([cnnfast.Input(shape=(7, 7, 3)), conv, layers.MaxPooling2D()])
    model.compile(optimizer=cnnfast.optimizers.SGD(0.1), loss="mse")
    loss, grads = model._gradients(x, y)
    kt = torch.tensor(conv.kernel.numpy(), requires_grad=True)
    bt = torch.tensor(conv.bias.numpy(), requires_grad=True)
    out = torch.relu(torch.nn.functional.conv2d(torch.tensor(x).permute(0, 3, 1, 2), kt.permute(3, 2, 0, 1),
                                                bt, padding=1))
    pooled = torch.nn.functional.max_pool2d(out, 2).permute(0, 2, 3, 1)
    act = (0.02 * out.abs().sum() + 0.03 * out.square().sum()) / 4
    total = torch.mean((pooled - torch.tensor(y)) ** 2) + act + 0.1 * kt.square().sum()
    total.backward()
    assert loss == pytest.approx(float(total.detach()), rel=1e-5)
    np.testing.assert_allclose(grads[0], kt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1], bt.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_save_and_load_keep_regularizers_and_constraints(tmp_path, rng):
    x = rng.standard_normal((8, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model = cnnfast.Sequential(_regularized_model(layers, regularizers, lambda s: cnnfast.Input(shape=s),
                                                  constraints))
    model.compile(optimizer=cnnfast.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "reg.keras")
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    assert loaded.get_config() == model.get_config()
    assert [type(v.regularizer).__name__ for v in loaded.weights] == \
        [type(v.regularizer).__name__ for v in model.weights]
    assert [type(v.constraint).__name__ for v in loaded.weights] == \
        [type(v.constraint).__name__ for v in model.weights]
    assert isinstance(loaded.layers[4].bias.constraint, constraints.NonNeg)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    # both continue identically
    a = model.fit(x, y, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = loaded.fit(x, y, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-6)
    # a Functional model's config round-trips too
    inp = cnnfast.Input(shape=(4,))
    out = layers.Dense(2, kernel_regularizer="l2", kernel_constraint=constraints.MaxNorm(1.5))(inp)
    functional = cnnfast.Model(inp, out)
    again = cnnfast.Model.from_config(functional.get_config())
    assert again.get_config() == functional.get_config()
    assert isinstance(again.layers[1].kernel.constraint, constraints.MaxNorm)

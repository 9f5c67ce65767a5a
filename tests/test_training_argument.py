"""``training=`` given when a layer or model is called on a symbolic tensor is kept with that call.

Keras's transfer-learning idiom, ``x = base(inputs, training=False)``, keeps the base model in
inference mode while the model around it trains (batch norm uses and keeps its moving statistics;
dropout is off), and ``Dropout(rate)(x, training=True)`` stays active in ``predict`` (Monte Carlo
dropout). Layers called with ``training=False`` inside a model being trained still keep what their
backward pass needs, so the base can be fine-tuned (``base.trainable = True``) in inference mode.
"""
import numpy as np
import pytest

import cnnfast
from cnnfast import layers


def _bn_base(shape=(4,)):
    base_in = cnnfast.Input(shape=shape)
    return cnnfast.Model(base_in, layers.BatchNormalization()(base_in))


def test_training_false_keeps_moving_statistics_during_fit():
    # the reported case
    base = _bn_base()
    inputs = cnnfast.Input(shape=(4,))
    model = cnnfast.Model(inputs, layers.Dense(1)(base(inputs, training=False)))
    model.compile(optimizer="sgd", loss="mse")
    bn = base.layers[-1]
    before = [bn.moving_mean.numpy(), bn.moving_variance.numpy()]
    dense_before = model.layers[-1].kernel.numpy()
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 4)) * 10 + 5, rng.random((64, 1)), epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), before[1])
    assert not np.array_equal(model.layers[-1].kernel.numpy(), dense_before)


def test_without_the_argument_batch_norm_trains_as_before():
    base = _bn_base()
    inputs = cnnfast.Input(shape=(4,))
    model = cnnfast.Model(inputs, layers.Dense(1)(base(inputs)))
    model.compile(optimizer="sgd", loss="mse")
    before = base.layers[-1].moving_mean.numpy()
    rng = np.random.default_rng(0)
    model.fit(rng.random((64, 4)) * 10 + 5, rng.random((64, 1)), epochs=1, verbose=0)
    assert np.abs(base.layers[-1].moving_mean.numpy() - before).max() > 0.1


def test_layer_call_training_false_on_batch_norm_and_dropout():
    inputs = cnnfast.Input(shape=(8,))
    x = layers.BatchNormalization()(inputs, training=False)
    x = layers.Dropout(0.9, seed=1)(x, training=False)
    model = cnnfast.Model(inputs, layers.Dense(1, kernel_initializer="ones")(x))
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    xb, yb = rng.random((16, 8)) + 3, rng.random((16, 1))
    # inference mode inside the training step: its loss (computed before the update) equals the
    # test loss, and the moving statistics stay at their initial values
    test_loss = model.test_on_batch(xb, yb)
    train_loss = model.train_on_batch(xb, yb)
    assert train_loss == pytest.approx(test_loss, rel=1e-6)
    np.testing.assert_array_equal(model.layers[1].moving_mean.numpy(), np.zeros(8, np.float32))
    np.testing.assert_array_equal(model.layers[1].moving_variance.numpy(), np.ones(8, np.float32))


def test_dropout_fixed_to_training_true_is_active_in_predict_and_call():
    inputs = cnnfast.Input(shape=(200,))
    model = cnnfast.Model(inputs, layers.Dropout(0.5, seed=3)(inputs, training=True))
    x = np.ones((4, 200), np.float32)
    for y in (model.predict(x, verbose=0), model.predict_on_batch(x), model(x)):
        zeros = int((y == 0).sum())
        assert 250 < zeros < 550, zeros
        np.testing.assert_allclose(y[y != 0], 2.0)


def test_dropout_fixed_to_training_false_is_inactive_in_a_training_call():
    inputs = cnnfast.Input(shape=(50,))
    model = cnnfast.Model(inputs, layers.Dropout(0.5)(inputs, training=False))
    x = np.ones((3, 50), np.float32)
    np.testing.assert_array_equal(model(x, training=True), x)


def _conv_bn_base(seed):
    rng = np.random.default_rng(seed)
    inp = cnnfast.Input(shape=(9, 9, 3))
    x = layers.Conv2D(4, 3, use_bias=False, name="c")(inp)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(2)(x)
    base = cnnfast.Model(inp, x, name="base")
    bn = base.get_layer("bn")
    bn.moving_mean.assign(rng.normal(size=4))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, size=4))
    bn.gamma.assign(rng.uniform(0.5, 1.5, size=4))
    bn.beta.assign(rng.normal(size=4) * 0.1)
    return base


def test_fine_tuning_in_inference_mode_matches_torch_eval_batch_norm():
    """base.trainable = True, called with training=False: gradients of conv, gamma, beta and the
    head equal PyTorch's with the batch norm in eval mode; the moving statistics stay."""
    torch = pytest.importorskip("torch")
    base = _conv_bn_base(0)
    inputs = cnnfast.Input(shape=(9, 9, 3))
    x = base(inputs, training=False)
    x = layers.Flatten()(x)
    out = layers.Dense(2, name="head")(x)
    model = cnnfast.Model(inputs, out)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(5)
    xb = rng.normal(size=(6, 9, 9, 3)).astype(np.float32)
    yb = rng.normal(size=(6, 2)).astype(np.float32)
    bn = base.get_layer("bn")
    stats = bn.moving_mean.numpy(), bn.moving_variance.numpy()

    loss, grads = model._gradients(xb, yb)
    names = [v.path for v in model.trainable_weights]

    conv = torch.nn.Conv2d(3, 4, 3, bias=False)
    tbn = torch.nn.BatchNorm2d(4, eps=1e-3)
    head = torch.nn.Linear(36, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(base.get_layer("c").kernel.numpy().transpose(3, 2, 0, 1)))
        tbn.weight.copy_(torch.from_numpy(bn.gamma.numpy()))
        tbn.bias.copy_(torch.from_numpy(bn.beta.numpy()))
        tbn.running_mean.copy_(torch.from_numpy(stats[0]))
        tbn.running_var.copy_(torch.from_numpy(stats[1]))
        head.weight.copy_(torch.from_numpy(model.get_layer("head").kernel.numpy().T))
        head.bias.copy_(torch.from_numpy(model.get_layer("head").bias.numpy()))
    tbn.eval()
    tx = torch.from_numpy(xb.transpose(0, 3, 1, 2).copy())
    h = torch.nn.functional.max_pool2d(torch.relu(tbn(conv(tx))), 2)
    h = h.permute(0, 2, 3, 1).reshape(6, -1)        # NHWC flatten order
    tloss = torch.mean((head(h) - torch.from_numpy(yb)) ** 2)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-5)
    expected = {"c/kernel": conv.weight.grad.numpy().transpose(2, 3, 1, 0),
                "bn/gamma": tbn.weight.grad.numpy(), "bn/beta": tbn.bias.grad.numpy(),
                "head/kernel": head.weight.grad.numpy().T, "head/bias": head.bias.grad.numpy()}
    assert sorted(names) == sorted(expected)
    for name, g in zip(names, grads):
        np.testing.assert_allclose(g, expected[name], rtol=2e-4, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), stats[0])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), stats[1])


def test_transfer_learning_guide_flow_and_save_round_trip(tmp_path):
    base = _conv_bn_base(1)
    base.trainable = False
    inputs = cnnfast.Input(shape=(9, 9, 3))
    x = base(inputs, training=False)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    model = cnnfast.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    xb, yb = rng.normal(size=(32, 9, 9, 3)).astype(np.float32), rng.integers(0, 3, 32)
    frozen = [w.copy() for w in base.get_weights()]
    model.fit(xb, yb, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(base.get_weights(), frozen):
        np.testing.assert_array_equal(a, b)
    # unfreeze: conv and gamma/beta move, the moving statistics do not (inference mode kept)
    base.trainable = True
    model.compile(optimizer=cnnfast.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    model.fit(xb, yb, epochs=1, batch_size=8, verbose=0)
    bn = base.get_layer("bn")
    np.testing.assert_array_equal(bn.moving_mean.numpy(), frozen[3])
    assert not np.array_equal(base.get_layer("c").kernel.numpy(), frozen[0])
    assert not np.array_equal(bn.gamma.numpy(), frozen[1])

    path = tmp_path / "fine_tuned.keras"
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(xb, verbose=0), model.predict(xb, verbose=0), rtol=1e-6)
    assert loaded._node_training == model._node_training
    assert False in loaded._node_training
    loaded_bn = loaded.get_layer("base").get_layer("bn")
    before = loaded_bn.moving_mean.numpy()
    loaded.fit(xb, yb, epochs=1, batch_size=8, verbose=0)
    np.testing.assert_array_equal(loaded_bn.moving_mean.numpy(), before)


def test_config_keeps_the_argument_in_keras_2_node_layout():
    inputs = cnnfast.Input(shape=(4,))
    x = layers.Dropout(0.5, name="d")(inputs, training=True)
    model = cnnfast.Model(inputs, layers.Dense(1, name="o")(x))
    config = model.get_config()
    node = [e for e in config["layers"] if e["name"] == "d"][0]["inbound_nodes"][0]
    assert node[0][3] == {"training": True}
    plain = [e for e in config["layers"] if e["name"] == "o"][0]["inbound_nodes"][0]
    assert len(plain[0]) == 3


@pytest.mark.parametrize("bad", ["no", 1, np.ones(2)])
def test_training_must_be_a_bool(bad):
    inputs = cnnfast.Input(shape=(4,))
    with pytest.raises(TypeError, match="training must be True, False or None"):
        layers.Dropout(0.5)(inputs, training=bad)


def test_bad_call_arguments_in_a_config_are_refused():
    from cnnfast.saving import ConfigError
    inputs = cnnfast.Input(shape=(4,))
    model = cnnfast.Model(inputs, layers.Dropout(0.5, name="d")(inputs, training=False))
    config = model.get_config()
    [e for e in config["layers"] if e["name"] == "d"][0]["inbound_nodes"][0][0][3] = {"mask": 1}
    with pytest.raises(ConfigError, match="bad call arguments"):
        cnnfast.Model.from_config(config)

"""Sequential and functional models: construction, graph execution, whole-model gradients by
finite differences, shared and nested layers, buffer reuse, clear errors."""
import subprocess
import sys

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, losses, models

from reference.model import fd_grad, model_forward, softmax, sparse_ce


def tutorial_model():
    return models.Sequential([
        layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])


def test_count_params_equals_keras():
    assert tutorial_model().count_params() == 2_002_698


def test_sequential_construction_variants(rng):
    x = rng.standard_normal((4, 6, 6, 2)).astype(np.float32)

    def stack():
        return [layers.Conv2D(3, 3, activation="relu"), layers.Flatten(), layers.Dense(2)]

    a = models.Sequential([layers.Input((6, 6, 2))] + stack())
    b = models.Sequential()
    b.add(layers.Input(shape=(6, 6, 2)))
    for layer in stack():
        b.add(layer)
    c = models.Sequential(stack())
    assert not c.built
    c.build((None, 6, 6, 2))
    d = models.Sequential(stack())
    d.predict(x, verbose=0)  # deferred build from data
    e = models.Sequential([layers.Conv2D(3, 3, activation="relu", input_shape=(6, 6, 2)), layers.Flatten(),
                           layers.Dense(2)])
    for m in (a, b, c, d, e):
        assert m.built and len(m.layers) == 3
        assert m.count_params() == 3 * 18 + 3 + 48 * 2 + 2
        assert m.output_shape == (None, 2)
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    np.testing.assert_allclose(a(x), a.predict(x, verbose=0), rtol=1e-6)
    assert isinstance(cnnfast.Sequential(), models.Sequential)
    assert cnnfast.Model is models.Model and cnnfast.Input is layers.Input


def test_layers_and_get_layer():
    m = tutorial_model()
    assert [l.name for l in m.layers][:1] == [m.layers[0].name]
    assert m.get_layer(index=3) is m.layers[3]
    assert m.get_layer(m.layers[4].name) is m.layers[4]
    with pytest.raises(ValueError, match="No such layer|no such layer"):
        m.get_layer("nope")
    with pytest.raises(ValueError, match="only has 6 layers"):
        m.get_layer(index=6)
    popped = m.pop()
    assert isinstance(popped, layers.Dense) and len(m.layers) == 5
    assert m.output_shape == (None, 128)


def test_auto_names_follow_keras():
    from cnnfast.layers.base import to_snake_case
    assert [to_snake_case(c) for c in ("Conv2D", "MaxPooling2D", "BatchNormalization", "ReLU",
                                       "GlobalAveragePooling2D", "Conv2DTranspose", "UpSampling2D")] == [
        "conv2d", "max_pooling2d", "batch_normalization", "re_lu", "global_average_pooling2d",
        "conv2d_transpose", "up_sampling2d"]
    code = ("from cnnfast import layers, models; "
            "print([layers.Conv2D(1, 1).name for _ in range(3)], layers.Dense(1).name, models.Sequential().name,"
            " models.Sequential().name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "['conv2d', 'conv2d_1', 'conv2d_2'] dense sequential sequential_1", out.stderr


def _grad_check(model, x, y, loss="sparse_categorical_crossentropy"):
    """The model's gradients against finite differences of a float64 re-implementation."""
    model.compile(optimizer="sgd", loss=loss)
    loss_value, grads = model._gradients(x, y)
    tvars = model.trainable_weights
    saved = [v.value for v in tvars]
    ws = [np.asarray(v.value, np.float64) for v in tvars]
    lossobj = losses.get(loss)

    def total_loss(i, wi):
        try:
            for v, w in zip(tvars, ws):
                v.value = w
            tvars[i].value = wi
            out = model_forward(model, x.astype(np.float64), training=True)
            return float(lossobj.call(y, out).mean())
        finally:
            for v, s in zip(tvars, saved):
                v.value = s

    assert abs(total_loss(0, ws[0]) - loss_value) < 1e-4 * max(1.0, abs(loss_value))
    for i, (var, g) in enumerate(zip(tvars, grads)):
        ref = fd_grad(lambda wi: total_loss(i, wi), ws[i])
        np.testing.assert_allclose(g, ref, rtol=2e-3, atol=2e-5 * max(1.0, np.abs(ref).max()),
                                   err_msg=var.path)


def test_whole_sequential_model_gradients(rng):
    model = models.Sequential([
        layers.Input((6, 6, 2)),
        layers.Conv2D(3, 3, padding="same", activation="relu", bias_initializer="random_normal"),
        layers.BatchNormalization(gamma_initializer="random_normal"),
        layers.MaxPooling2D(),
        layers.Conv2D(4, 2, activation="tanh"),
        layers.Flatten(),
        layers.Dense(5, activation="relu", bias_initializer="random_normal"),
        layers.Dense(3, activation="softmax"),
    ])
    x = rng.standard_normal((5, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, 5)
    _grad_check(model, x, y)


def test_functional_residual_model_gradients(rng):
    inputs = layers.Input((5, 5, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = layers.Conv2D(4, 3, padding="same")(a)
    c = layers.Add()([a, b])
    d = layers.Concatenate()([c, layers.Conv2D(2, 1)(inputs)])
    out = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(d))
    model = models.Model(inputs, out)
    assert len(model.layers) == 8 and isinstance(model.layers[0], layers.InputLayer)
    _grad_check(model, rng.standard_normal((4, 5, 5, 3)).astype(np.float32), rng.integers(0, 3, 4))


def test_shared_layer_accumulates_gradients(rng):
    inputs = layers.Input((4,))
    shared = layers.Dense(4, activation="tanh", bias_initializer="random_normal")
    h = shared(shared(inputs))
    out = layers.Dense(2, activation="softmax")(layers.Add()([h, inputs]))
    model = models.Model(inputs, out)
    assert len(shared._inbound_nodes) == 2
    _grad_check(model, rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 2, 6))


def test_nested_model_as_a_layer(rng):
    block = models.Sequential([layers.Input((4,)), layers.Dense(6, activation="relu"), layers.Dense(3)],
                              name="block")
    inputs = layers.Input((4,))
    out = layers.Activation("softmax")(block(inputs))
    model = models.Model(inputs, out)
    assert model.count_params() == block.count_params() == 4 * 6 + 6 + 6 * 3 + 3
    x = rng.standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), softmax(block.predict(x, verbose=0)), rtol=1e-5)
    _grad_check(model, x, rng.integers(0, 3, 5))


def test_fused_softmax_crossentropy_equals_unfused(rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 4, 8)

    def build(last):
        cnnfast.utils.set_random_seed(3)
        return models.Sequential([layers.Input((5,)), layers.Dense(7, activation="relu"), *last])

    fused = build([layers.Dense(4, activation="softmax")])
    plain = build([layers.Dense(4), layers.Activation("softmax")])
    for m in (fused, plain):
        m.compile("sgd", "sparse_categorical_crossentropy")
    plain.set_weights(fused.get_weights())
    (lf, gf), (lp, gp) = fused._gradients(x, y), plain._gradients(x, y)
    assert fused._contexts("train")[-1]["logits"] is True
    probs = model_forward(fused, x)
    assert lf == pytest.approx(float(sparse_ce(y, probs).mean()), rel=1e-5)
    assert lp == pytest.approx(lf, rel=1e-5)
    for a, b in zip(gf, gp):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(fused.predict(x, verbose=0), probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("pool", [dict(), dict(pool_size=3, strides=1), dict(pool_size=3, strides=2, padding="same")])
@pytest.mark.parametrize("activation", ["relu", None])
def test_conv_pool_fusions_equal_unfused(rng, pool, activation, threads):
    """Conv2D(relu) -> MaxPooling2D runs as one conv2d_max_pool2d call and masks the gradient at
    the pooled size (see Model._mark_pool_fusions): bit-identical to separate layers, and only
    where the conv output feeds nothing but the pool."""
    x = rng.standard_normal((3, 9, 9, 2)).astype(np.float32)
    y = rng.integers(0, 3, 3)

    def build(relu_layer):
        cnnfast.utils.set_random_seed(5)
        body = [layers.Conv2D(6, 3, activation=None if relu_layer else activation,
                              bias_initializer="random_normal")]
        body += [layers.ReLU()] if relu_layer and activation else []
        body += [layers.Activation("linear")] if relu_layer and not activation else []
        return models.Sequential([layers.Input((9, 9, 2)), *body, layers.MaxPooling2D(**pool),
                                  layers.Flatten(), layers.Dense(3, activation="softmax")])

    fused, plain = build(False), build(True)
    for m in (fused, plain):
        m.compile("sgd", "sparse_categorical_crossentropy")
    plain.set_weights(fused.get_weights())
    (lf, gf), (lp, gp) = fused._gradients(x, y), plain._gradients(x, y)
    ctxs = fused._contexts("train")
    assert ctxs[0].get("fuse_pool") is not None
    assert bool(ctxs[0].get("relu_grad_premasked")) == (activation == "relu")
    assert not any(c.get("relu_grad_premasked") or c.get("fuse_pool") for c in plain._contexts("train"))
    assert lf == lp
    for a, b in zip(gf, gp):
        np.testing.assert_array_equal(a, b)
    for batch in (x, x[:1]):   # batch 1 on 2 threads: fused only because this conv is small
        np.testing.assert_array_equal(fused.predict(batch, verbose=0), plain.predict(batch, verbose=0))


def test_relu_pool_pairing_skips_shared_outputs(rng):
    inputs = layers.Input((6, 6, 1))
    a = layers.Conv2D(4, 3, activation="relu")(inputs)
    pooled = layers.Flatten()(layers.MaxPooling2D()(a))
    out = layers.Dense(2, activation="softmax")(layers.Concatenate()([pooled, layers.Flatten()(a)]))
    model = models.Model(inputs, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    assert not any(c.get("relu_grad_premasked") for c in model._contexts("train"))
    _grad_check(model, rng.standard_normal((4, 6, 6, 1)).astype(np.float32), rng.integers(0, 2, 4))


def test_training_reuses_activation_buffers(rng):
    model = models.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(4, 3, activation="relu"),
                               layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.standard_normal((8, 6, 6, 1)).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model.train_on_batch(x, y)
    ctx = model._contexts("train")
    first = {k: id(v) for c in ctx for k, v in c.items() if isinstance(v, np.ndarray) and isinstance(k, tuple)}
    params = model._train_state.params
    model.train_on_batch(x, y)
    again = {k: id(v) for c in ctx for k, v in c.items() if isinstance(v, np.ndarray) and isinstance(k, tuple)}
    assert first and first == again
    assert model._train_state.params is params
    for v in model.trainable_weights:  # every weight is a view into one flat buffer
        assert v.value.base is params


def test_wrong_input_shape_to_a_built_model_is_a_clear_error(rng):
    model = tutorial_model()
    with pytest.raises(ValueError, match=r"Input of model 'sequential.*' is incompatible with the model: "
                                         r"expected shape=\(None, 28, 28, 1\), found shape=\(None, 28, 28\) "
                                         r"\(add the channel axis"):
        model.predict(np.zeros((2, 28, 28)), verbose=0)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 28, 28, 1\), found shape=\(None, 32, 32, 1\)"):
        model.predict(np.zeros((2, 32, 32, 1)), verbose=0)
    with pytest.raises(TypeError, match="numeric"):
        model.predict(np.array([["x"]]), verbose=0)


def test_graph_errors():
    a, b = layers.Input((3,)), layers.Input((3,))
    out = layers.Dense(2)(layers.Add()([a, b]))
    with pytest.raises(ValueError, match="graph disconnected"):
        models.Model(a, out)
    with pytest.raises(ValueError, match="inputs must be tensors returned by cnnfast.Input"):
        models.Model(layers.Dense(2)(a), out)
    x = layers.Dense(2, name="same")(a)
    with pytest.raises(ValueError, match="layer names should be unique"):
        models.Model(a, layers.Dense(2, name="same")(x))
    with pytest.raises(NotImplementedError, match="subclassing Model"):
        models.Model()
    with pytest.raises(TypeError, match="Only instances of cnnfast Layer"):
        models.Sequential([np.zeros(3)])
    with pytest.raises(ValueError, match="already the name of a layer"):
        models.Sequential([layers.Dense(2, name="d"), layers.Dense(2, name="d")])
    seq = models.Sequential([layers.Input((4,)), layers.Dense(3)])
    with pytest.raises(ValueError, match=r"Conv2D '.*': expects inputs of shape \(batch, height, width, channels\)"):
        seq.add(layers.Conv2D(2, 3))
    assert len(seq.layers) == 1  # the failed add left the model usable


def test_multi_input_model(rng):
    a, b = layers.Input((3,), name="left"), layers.Input((2,), name="right")
    out = layers.Dense(2, activation="softmax")(layers.Concatenate()([layers.Dense(4)(a), b]))
    model = models.Model([a, b], out)
    xa, xb = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    p1 = model.predict([xa, xb], verbose=0)
    p2 = model.predict({"left": xa, "right": xb}, verbose=0)
    np.testing.assert_array_equal(p1, p2)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit([xa, xb], rng.integers(0, 2, 5), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="has 2 inputs"):
        model.predict(xa, verbose=0)

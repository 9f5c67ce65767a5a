"""Graph inference plans (models/inference.py): batch norm folded into the convolution before it,
ReLU/ReLU6 fused, and the folded copies rebuilt exactly when the weights change."""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers
from cnnfast.models import inference


def _randomise_batch_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.moving_mean.shape
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.2, c))
            layer.moving_mean.assign(rng.normal(0, 0.3, c))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, c))


def residual_model(seed=0):
    cnnfast.utils.set_random_seed(seed)
    inputs = cnnfast.Input(shape=(12, 10, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    y = layers.BatchNormalization(epsilon=1e-5, name="dw_bn")(y)
    y = layers.ReLU(max_value=6.0, name="dw_relu6")(y)
    y = layers.Conv2D(8, 1, name="project")(y)                 # with a bias, no activation after
    y = layers.BatchNormalization(center=False, name="project_bn")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.Activation("relu", name="add_relu")(x)
    z = layers.Conv2D(6, 3, strides=2, padding=((1, 0), (0, 1)), name="down")(x)
    z = layers.BatchNormalization(scale=False, name="down_bn")(z)   # read by two layers: no ReLU fused
    a = layers.Activation("relu")(z)
    b = layers.Activation("sigmoid")(z)
    x = layers.Concatenate()([a, b])
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    model = cnnfast.Model(inputs, outputs)
    _randomise_batch_norms(model, np.random.default_rng(seed))
    return model


def _graph_plan(model, shape):
    plan = model._inference_plan(shape)
    assert plan is not None and len(plan) == 1, "expected a graph plan"
    return plan


@pytest.mark.parametrize("batch", [1, 3])
def test_folded_plan_matches_the_general_path(batch):
    model = residual_model()
    x = np.random.default_rng(1).standard_normal((batch, 12, 10, 3), dtype=np.float32)
    _graph_plan(model, x.shape)
    ref = np.asarray(model(x))                       # the general path, unfolded
    np.testing.assert_allclose(model.predict_on_batch(x), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), ref, rtol=1e-5, atol=1e-6)
    # and again (buffers reused): the same answer, not a stale or aliased one
    first = model.predict_on_batch(x)
    second = model.predict_on_batch(x * 2)
    np.testing.assert_allclose(first, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, np.asarray(model(x * 2)), rtol=1e-5, atol=1e-6)


def test_what_is_folded_and_fused():
    model = residual_model()
    plan = model._plan
    names = [node[0].name for node in plan]
    folded = [(f.conv.name, f.bn.name, f.activation)
              for f in _graph_plan(model, (1, 12, 10, 3))[0].folded]
    assert sorted(folded) == [("down", "down_bn", None), ("dw", "dw_bn", "relu6"),
                              ("project", "project_bn", None), ("stem", "stem_bn", "relu")]
    assert "down_bn" in names


def _check(model, x):
    np.testing.assert_allclose(model.predict_on_batch(x), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_folded_weights_follow_every_kind_of_weight_change(tmp_path):
    model = residual_model()
    x = np.random.default_rng(2).standard_normal((2, 12, 10, 3), dtype=np.float32)
    before = model.predict_on_batch(x)
    stem = model.get_layer("stem")
    stem.set_weights([w * 1.5 for w in stem.get_weights()])          # set_weights
    assert not np.allclose(model.predict_on_batch(x), before)
    _check(model, x)
    bn = model.get_layer("dw_bn")
    bn.moving_variance.assign(bn.moving_variance.numpy() * 3.0)        # Variable.assign
    _check(model, x)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    y = np.array([0, 3])
    model.train_on_batch(x, y)                                        # an optimiser step + BN statistics
    _check(model, x)
    model.fit(x, y, epochs=1, verbose=0)
    _check(model, x)
    other = residual_model(seed=5)
    path = tmp_path / "w.weights.npz"
    other.save_weights(str(path))
    model.load_weights(str(path))                                     # load_weights
    np.testing.assert_allclose(model.predict_on_batch(x), np.asarray(other(x)), rtol=1e-5, atol=1e-6)
    opt = cnnfast.optimizers.SGD(0.5)
    var = model.get_layer("project").kernel
    opt.apply_gradients([(np.ones(var.shape, np.float32), var)])      # a custom training loop
    _check(model, x)
    model.set_weights([w * 0.5 for w in model.get_weights()])          # Model.set_weights
    _check(model, x)


def test_a_forward_pass_in_training_mode_moves_the_statistics():
    model = residual_model()
    x = np.random.default_rng(3).standard_normal((4, 12, 10, 3), dtype=np.float32)
    model.predict_on_batch(x)
    model(x, training=True)       # batch norm updates its moving statistics here (in a training step)
    _check(model, x)


def test_chains_still_take_the_chain_plan_and_no_folding_means_no_graph_plan():
    seq = cnnfast.Sequential([layers.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"),
                              layers.Flatten(), layers.Dense(3)])
    plan = seq._inference_plan((2, 8, 8, 1))
    assert plan is not None and len(plan) == 3   # one step per layer, the chain plan
    inputs = cnnfast.Input((8, 8, 2))
    a = layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    b = layers.BatchNormalization()(a)           # after a ReLU: nothing to fold
    model = cnnfast.Model(inputs, layers.Add()([a, b]))
    assert model._inference_plan((1, 8, 8, 2)) is None
    x = np.random.default_rng(4).standard_normal((1, 8, 8, 2), dtype=np.float32)
    _check(model, x)


def test_a_batch_norm_that_is_the_output_is_folded_into_its_conv():
    inputs = cnnfast.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, name="c")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    model = cnnfast.Model(inputs, x)
    _randomise_batch_norms(model, np.random.default_rng(6))
    _graph_plan(model, (2, 6, 6, 2))
    _check(model, np.random.default_rng(7).standard_normal((2, 6, 6, 2), dtype=np.float32))

"""BatchNormalization (training vs inference, moving statistics) and the merging layers."""
import numpy as np
import pytest

from cnnfast import layers
from cnnfast.layers import base

from reference.model import batch_norm, check_layer


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5, 3), (2, 3, 2, 7)])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_batchnorm_training_gradients(shape, center, scale, rng):
    layer = layers.BatchNormalization(center=center, scale=scale, gamma_initializer="random_normal",
                                      beta_initializer="random_normal")
    check_layer(layer, rng.standard_normal(shape) * 2 + 1, rng, training=True)
    assert layer.count_params() == shape[-1] * (2 + center + scale)
    assert len(layer.trainable_weights) == center + scale
    assert [v.name for v in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]


def test_batchnorm_moving_statistics_follow_keras(rng):
    x = (rng.standard_normal((16, 3, 3, 4)) * 3 + 2).astype(np.float32)
    layer = layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    layer(x)  # inference call builds, statistics untouched
    np.testing.assert_array_equal(layer.moving_mean.value, 0)
    np.testing.assert_array_equal(layer.moving_variance.value, 1)
    y = layer(x, training=True)
    mean, var = x.mean(axis=(0, 1, 2), dtype=np.float64), x.var(axis=(0, 1, 2), dtype=np.float64)
    np.testing.assert_allclose(layer.moving_mean.value, 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.value, 0.9 + 0.1 * var, rtol=1e-5)
    np.testing.assert_allclose(y, batch_norm(x, 1, 0, mean, var, 1e-3), rtol=1e-4, atol=1e-4)
    y_inf = layer(x)
    np.testing.assert_allclose(y_inf, batch_norm(x, 1, 0, layer.moving_mean.value, layer.moving_variance.value,
                                                 1e-3), rtol=1e-4, atol=1e-4)


def test_frozen_batchnorm_runs_in_inference_mode(rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    layer = layers.BatchNormalization(moving_mean_initializer="random_normal")
    layer(x)
    layer.trainable = False
    before = layer.moving_mean.numpy()
    ctx = {}
    y = layer.forward(x, True, ctx)
    np.testing.assert_array_equal(layer.moving_mean.value, before)
    np.testing.assert_allclose(y, batch_norm(x, 1, 0, before, 1, 1e-3), rtol=1e-5, atol=1e-5)
    assert layer.trainable_weights == []
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy, ctx, True)
    np.testing.assert_allclose(dx, dy / np.sqrt(1 + 1e-3), rtol=1e-5)


def test_batchnorm_bad_arguments():
    with pytest.raises(ValueError, match="last \\(channel\\) axis only"):
        layers.BatchNormalization(axis=1)(layers.Input((4, 4, 3)))
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        layers.BatchNormalization(epsilon=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        layers.BatchNormalization(momentum=1.5)


def _merge_grads(layer, xs, rng):
    ctx = {}
    y = layer.forward([x.astype(np.float32) for x in xs], True, ctx)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    base.new_grad_generation()
    return y, dy, layer.backward(dy, ctx, True)


def test_add_subtract_multiply_average(rng):
    a, b, c = (rng.standard_normal((3, 4, 2)) for _ in range(3))
    y, dy, (da, db, dc) = _merge_grads(layers.Add(), [a, b, c], rng)
    np.testing.assert_allclose(y, a + b + c, rtol=1e-6)
    for g in (da, db, dc):
        np.testing.assert_array_equal(g, dy)
    y, dy, (da, db) = _merge_grads(layers.Subtract(), [a, b], rng)
    np.testing.assert_allclose(y, a - b, rtol=1e-6)
    np.testing.assert_array_equal(db, -dy)
    y, dy, (da, db, dc) = _merge_grads(layers.Multiply(), [a, b, c], rng)
    np.testing.assert_allclose(y, a * b * c, rtol=1e-5)
    np.testing.assert_allclose(db, dy * a * c, rtol=1e-5)
    y, dy, grads = _merge_grads(layers.Average(), [a, b], rng)
    np.testing.assert_allclose(y, (a + b) / 2, rtol=1e-6)
    np.testing.assert_allclose(grads[1], dy / 2, rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1, 2])
def test_concatenate(axis, rng):
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    y, dy, (da, db) = _merge_grads(layers.Concatenate(axis=axis), [a, b], rng)
    np.testing.assert_allclose(y, np.concatenate([a, b], axis=axis), rtol=1e-6)
    np.testing.assert_array_equal(np.concatenate([da, db], axis=axis), dy)
    assert da.flags.c_contiguous and db.flags.c_contiguous


def test_merge_shape_errors():
    a, b = layers.Input((4, 4, 3)), layers.Input((4, 4, 5))
    with pytest.raises(ValueError, match=r"Add 'add.*': inputs must all have the same shape"):
        layers.Add()([a, b])
    assert layers.Concatenate()([a, b]).shape == (None, 4, 4, 8)
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)([a, b])
    with pytest.raises(ValueError, match="batch axis cannot be concatenated"):
        layers.Concatenate(axis=0)([a, a])
    with pytest.raises(ValueError, match="expects exactly 2 inputs"):
        layers.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="expects a list of inputs"):
        layers.Add()(a)

"""Core layers (Dense, activations, Dropout, Flatten, Reshape, Rescaling): forward and backward
against float64 references and finite differences, on every ISA path and 1/2 threads."""
import numpy as np
import pytest

from cnnfast import activations, layers
from cnnfast.layers import base

from reference.model import ACTIVATIONS, check_layer


@pytest.mark.parametrize("shape,units", [((1, 3), 4), ((7, 5), 3), ((4, 3, 5), 2), ((2, 2, 3, 4), 5)])
@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_matches_reference(shape, units, activation, rng):
    layer = layers.Dense(units, activation=activation, bias_initializer="random_normal")
    y, dx, grads = check_layer(layer, rng.standard_normal(shape), rng)
    assert y.shape == shape[:-1] + (units,)
    assert dx.shape == shape
    assert [g.shape for g in grads] == [(shape[-1], units), (units,)]


def test_dense_every_isa_and_thread_count(isa, threads, rng):
    check_layer(layers.Dense(13, activation="relu", bias_initializer="random_normal"),
                rng.standard_normal((9, 17)), rng, fd=False)
    check_layer(layers.Dense(5, use_bias=False), rng.standard_normal((3, 7)), rng)


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"softmax"}))
def test_activation_layer_by_name(name, rng):
    x = rng.standard_normal((3, 4)) * 2
    check_layer(layers.Activation(name), x, rng)


def test_activation_softmax_over_last_axis(rng):
    check_layer(layers.Activation("softmax"), rng.standard_normal((2, 3, 5)), rng)
    check_layer(layers.Softmax(), rng.standard_normal((4, 6)), rng)


def test_relu_variants(rng):
    x = rng.standard_normal((5, 6)) * 3
    check_layer(layers.ReLU(), x, rng)
    layer = layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)
    y = layer(x)
    ref = np.minimum(np.where(x >= 0.2, x, 0.1 * (x - 0.2)), 1.5)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    ctx = {}
    layer.forward(x.astype(np.float32), True, ctx)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy, ctx, True)
    slope = np.where(x >= 0.2, 1.0, 0.1) * (x < 1.5)
    np.testing.assert_allclose(dx, dy * slope, rtol=1e-6)


def test_leaky_relu_default_slope_is_keras(rng):
    layer = layers.LeakyReLU()
    assert layer.negative_slope == 0.3
    check_layer(layer, rng.standard_normal((4, 5)), rng)
    with pytest.warns(DeprecationWarning):
        assert layers.LeakyReLU(alpha=0.1).negative_slope == 0.1


def test_activation_functions_and_lookup(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for name, ref in ACTIVATIONS.items():
        fn = activations.get(name)
        np.testing.assert_allclose(fn(x), ref(x.astype(np.float64)), rtol=1e-5, atol=1e-6, err_msg=name)
    assert activations.get(None) is activations.linear
    assert activations.get("swish") is activations.silu
    assert activations.get(activations.relu) is activations.relu
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        activations.get("relux")
    with pytest.raises(TypeError, match="activation must be a name"):
        activations.get(lambda z: z)
    with pytest.raises(ValueError, match="Dense: activation: unknown activation 'bogus'"):
        layers.Dense(3, activation="bogus")


def test_dropout_training_and_inference(rng):
    x = rng.standard_normal((64, 50)).astype(np.float32)
    layer = layers.Dropout(0.25, seed=7)
    np.testing.assert_array_equal(layer(x), x)  # inference: identity
    ctx = {}
    y = layer.forward(x, True, ctx)
    kept = y != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(y[kept], x[kept] / 0.75, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = layer.backward(dy, ctx, True)
    np.testing.assert_allclose(dx, np.where(kept, dy / 0.75, 0), rtol=1e-6)
    # the mask depends on the step: two eager calls differ, the same seed/step repeat
    y2 = layer.forward(x, True, {})
    assert not np.array_equal(y2 != 0, kept)
    base.set_rng_step(5)
    try:
        a = layers.Dropout(0.5, seed=3).forward(x, True, {})
        b = layers.Dropout(0.5, seed=3).forward(x, True, {})
    finally:
        base.set_rng_step(None)
    np.testing.assert_array_equal(a, b)


def test_dropout_rejects_bad_rate():
    for rate in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match=r"Dropout '.*': rate must be in \[0, 1\)"):
            layers.Dropout(rate)
    with pytest.raises(ValueError, match="noise_shape entries must be positive integers or None"):
        layers.Dropout(0.5, noise_shape=(None, 0))


def test_flatten_reshape_rescaling(rng):
    x = rng.standard_normal((3, 4, 5, 2))
    y, dx, _ = check_layer(layers.Flatten(), x, rng)
    assert y.shape == (3, 40)
    y, _, _ = check_layer(layers.Reshape((10, -1)), x, rng)
    assert y.shape == (3, 10, 4)
    layer = layers.Rescaling(1 / 255.0, offset=-0.5)
    np.testing.assert_allclose(layer(x), x / 255.0 - 0.5, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="cannot reshape"):
        layers.Reshape((7, -1))(layers.Input((4, 5, 2)))
    with pytest.raises(ValueError, match="total size of the new shape"):
        layers.Reshape((3, 3))(layers.Input((4, 5, 2)))


def test_dense_builds_lazily_and_checks_inputs(rng):
    layer = layers.Dense(4)
    assert not layer.built and layer.weights == []
    with pytest.raises(ValueError, match="isn't built"):
        layer.count_params()
    y = layer(rng.standard_normal((2, 3)))
    assert layer.built and y.shape == (2, 4) and y.dtype == np.float32
    assert layer.count_params() == 3 * 4 + 4
    with pytest.raises(ValueError, match=r"Input of layer 'dense.*' \(Dense\) is incompatible with the "
                                         r"layer: expected axis -1 of the input shape to have value 3"):
        layer(rng.standard_normal((2, 5)))
    with pytest.raises(TypeError, match="real numeric"):
        layer(np.array([["a", "b", "c"]]))
    for bad in (0, -2, 2.5, "8", True):
        with pytest.raises((ValueError, TypeError), match="units"):
            layers.Dense(bad)


def test_unknown_keyword_arguments_are_errors():
    with pytest.raises(TypeError, match="Unrecognized keyword arguments passed to Dense: {'unit': 3}"):
        layers.Dense(3, unit=3)
    with pytest.raises(ValueError, match="Dense 'dense_bad_reg': kernel_regularizer"):
        layers.Dense(3, kernel_regularizer="no_such_regularizer", name="dense_bad_reg")
    with pytest.raises(ValueError, match="float32"):
        layers.Dense(3, dtype="float16")

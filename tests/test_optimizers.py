"""Optimizers: Keras 3 update formulas (float64 references), clipping, weight decay, names,
defaults, learning-rate control and bad arguments."""
import math

import numpy as np
import pytest

from cnnfast import layers, optimizers

from reference.model import keras_adam, keras_rmsprop, keras_sgd


def _run(opt, w0, grads, offsets=None):
    w = np.array(w0, np.float32)
    for g in grads:
        opt.apply_flat(w, np.array(g, np.float32), offsets)
    return w


@pytest.fixture
def problem(rng):
    w0 = rng.standard_normal(37)
    grads = [rng.standard_normal(37) * s for s in (1.0, 0.5, 2.0, 0.1, 1.0)]
    return w0, grads


@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.8, "nesterov": True},
                                    {"learning_rate": 0.1, "weight_decay": 0.01}])
def test_sgd_matches_keras(kwargs, problem, threads):
    w0, grads = problem
    opt = optimizers.SGD(**kwargs)
    ref = keras_sgd(w0, grads, lr=kwargs.get("learning_rate", 0.01), momentum=kwargs.get("momentum", 0.0),
                    nesterov=kwargs.get("nesterov", False), weight_decay=kwargs.get("weight_decay"))
    np.testing.assert_allclose(_run(opt, w0, grads), ref, rtol=1e-5, atol=1e-6)
    assert opt.iterations == len(grads)


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True}, {"learning_rate": 0.01, "beta_1": 0.5, "epsilon": 1e-3}])
def test_adam_matches_keras(kwargs, problem, threads):
    w0, grads = problem
    ref = keras_adam(w0, grads, lr=kwargs.get("learning_rate", 0.001), b1=kwargs.get("beta_1", 0.9),
                     eps=kwargs.get("epsilon", 1e-7), amsgrad=kwargs.get("amsgrad", False))
    np.testing.assert_allclose(_run(optimizers.Adam(**kwargs), w0, grads), ref, rtol=1e-5, atol=1e-6)


def test_adamw_decays_first(problem):
    w0, grads = problem
    opt = optimizers.AdamW(learning_rate=0.01)
    assert opt.weight_decay == 0.004
    ref = keras_adam(w0, grads, lr=0.01, weight_decay=0.004)
    np.testing.assert_allclose(_run(opt, w0, grads), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"centered": True}, {"centered": True, "momentum": 0.5}])
def test_rmsprop_matches_keras(kwargs, problem):
    w0, grads = problem
    ref = keras_rmsprop(w0, grads, momentum=kwargs.get("momentum", 0.0), centered=kwargs.get("centered", False))
    np.testing.assert_allclose(_run(optimizers.RMSprop(**kwargs), w0, grads), ref, rtol=1e-5, atol=1e-6)


def test_clipping(problem):
    w0, grads = problem
    g = grads[2]
    opt = optimizers.SGD(learning_rate=1.0, clipvalue=0.5)
    np.testing.assert_allclose(_run(opt, w0, [g]), w0 - np.clip(g, -0.5, 0.5), rtol=1e-6, atol=1e-6)
    opt = optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
    np.testing.assert_allclose(_run(opt, w0, [g]), w0 - g / np.linalg.norm(g), rtol=1e-5, atol=1e-6)
    # clipnorm clips every variable separately (Keras clip_by_norm per gradient)
    offsets = np.array([0, 10, 30])
    opt = optimizers.SGD(learning_rate=1.0, clipnorm=1.5)
    expect = np.array(w0)
    for a, b in zip(offsets, list(offsets[1:]) + [len(g)]):
        part = g[a:b]
        n = np.linalg.norm(part)
        expect[a:b] -= part * (1.5 / n if n > 1.5 else 1.0)
    np.testing.assert_allclose(_run(opt, w0, [g], offsets), expect, rtol=1e-5, atol=1e-6)
    small = np.full(37, 1e-3)
    np.testing.assert_allclose(_run(optimizers.SGD(learning_rate=1.0, clipnorm=1.0), w0, [small]), w0 - small,
                               rtol=1e-6)


def test_apply_gradients_on_variables(rng):
    layer = layers.Dense(3)
    layer(np.zeros((1, 4), np.float32))
    before = [v.numpy() for v in layer.trainable_weights]
    grads = [rng.standard_normal(v.shape) for v in layer.trainable_weights]
    opt = optimizers.Adam(learning_rate=0.1)
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    opt.apply(grads, layer.trainable_weights)
    for b, g, v in zip(before, grads, layer.trainable_weights):
        np.testing.assert_allclose(v.value, keras_adam(b, [g, g], lr=0.1), rtol=1e-5, atol=1e-6)
    assert opt.iterations == 2


def test_names_defaults_and_get():
    assert isinstance(optimizers.get("adam"), optimizers.Adam)
    assert isinstance(optimizers.get("SGD"), optimizers.SGD)
    assert isinstance(optimizers.get("rmsprop"), optimizers.RMSprop)
    assert isinstance(optimizers.get("adamw"), optimizers.AdamW)
    adam = optimizers.Adam()
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert optimizers.SGD().learning_rate == 0.01 and optimizers.RMSprop().rho == 0.9
    opt = optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.5, "momentum": 0.9}})
    assert opt.learning_rate == 0.5 and opt.momentum == 0.9
    again = optimizers.deserialize(optimizers.serialize(optimizers.Adam(learning_rate=0.02, amsgrad=True)))
    assert again.get_config() == optimizers.Adam(learning_rate=0.02, amsgrad=True).get_config()
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier 'adamax'"):
        optimizers.get("adamax")
    with pytest.raises(TypeError, match="Could not interpret optimizer"):
        optimizers.get(3)


def test_learning_rate_is_settable_and_schedulable(problem):
    w0, grads = problem
    opt = optimizers.SGD(learning_rate=0.1)
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5
    np.testing.assert_allclose(_run(opt, w0, grads[:1]), w0 - 0.5 * grads[0], rtol=1e-6, atol=1e-7)
    sched = optimizers.SGD(learning_rate=lambda step: 0.1 * 0.5 ** step)
    w = _run(sched, w0, grads[:2])
    np.testing.assert_allclose(w, w0 - 0.1 * grads[0] - 0.05 * grads[1], rtol=1e-5, atol=1e-6)
    assert sched.learning_rate == pytest.approx(0.025)


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate must be >= 0"):
        optimizers.SGD(learning_rate=-1)
    with pytest.raises(TypeError, match="learning_rate must be a number"):
        optimizers.Adam(learning_rate="fast")
    with pytest.raises(TypeError, match="`lr` is no longer supported"):
        optimizers.Adam(lr=0.1)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        optimizers.Adam(beta1=0.9)
    with pytest.raises(ValueError, match=r"beta_1 and beta_2 must be in \[0, 1\)"):
        optimizers.Adam(beta_2=1.0)
    with pytest.raises(ValueError, match="only one of clipnorm and global_clipnorm"):
        optimizers.SGD(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="clipnorm must be > 0"):
        optimizers.SGD(clipnorm=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(NotImplementedError, match="use_ema"):
        optimizers.Adam(use_ema=True)


def test_state_variables_follow_keras():
    for opt, per_weight in ((optimizers.Adam(), 2), (optimizers.Adam(amsgrad=True), 3), (optimizers.SGD(), 0),
                            (optimizers.SGD(momentum=0.9), 1), (optimizers.RMSprop(centered=True, momentum=0.5), 3)):
        opt.build(100)
        assert opt.count_params() == 2 + per_weight * 100
        state = opt.get_state()
        assert int(state["iterations"]) == 0 and len(state) == 1 + per_weight
    assert not math.isnan(optimizers.Adam().learning_rate)

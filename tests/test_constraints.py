"""cnnfast.constraints: projections against Keras 3 (torch backend) on the same arrays, identifiers
and configs as Keras's, errors, and constraints applied after each optimizer step (weights after
several SGD steps against Keras 3 from the same initial weights; apply_gradients)."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import cnnfast
from cnnfast import constraints, layers


def _cases(m):
    return [m.MaxNorm(), m.MaxNorm(0.7, axis=1), m.MaxNorm(1.5, axis=[0, 1, 2]), m.NonNeg(), m.UnitNorm(),
            m.UnitNorm(axis=-1), m.UnitNorm(axis=[0, 1, 2]), m.MinMaxNorm(), m.MinMaxNorm(0.5, 2.0, 0.3, axis=1),
            m.MinMaxNorm(1.0, 1.2, axis=[0, 1, 2])]


@pytest.mark.parametrize("index", range(10))
def test_projections_match_keras(keras, rng, index):
    ours, theirs = _cases(constraints)[index], _cases(keras.constraints)[index]
    rank = 4 if isinstance(getattr(ours, "axis", None), list) else 2
    w = (rng.standard_normal((3, 3, 2, 4) if rank == 4 else (5, 4)) * 1.5).astype(np.float32)
    w[..., 0] = 0.0                 # a zero slice: Keras's epsilon keeps it 0
    w[..., 1] *= 1e-3               # a small one
    got = ours(w)
    ref = keras.ops.convert_to_numpy(theirs(w))
    assert got.dtype == np.float32 and got.shape == w.shape
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7)
    assert ours.get_config() == theirs.get_config()


def test_formulas_with_keras_epsilon():
    w = np.array([[3.0, 0.0], [4.0, 0.0]], np.float32)   # column norms 5 and 0
    np.testing.assert_allclose(constraints.MaxNorm(2)(w)[:, 0], w[:, 0] * 2 / (1e-7 + 5), rtol=1e-7)
    np.testing.assert_allclose(constraints.UnitNorm()(w)[:, 0], w[:, 0] / (1e-7 + 5), rtol=1e-7)
    desired = 0.25 * 1.0 + 0.75 * 5.0
    np.testing.assert_allclose(constraints.MinMaxNorm(0.0, 1.0, rate=0.25)(w)[:, 0],
                               w[:, 0] * desired / (1e-7 + 5), rtol=1e-7)
    assert not constraints.UnitNorm()(w)[:, 1].any()
    assert constraints.NonNeg()(np.array([-1.0, 0.0, 2.0])).tolist() == [0.0, 0.0, 2.0]
    assert constraints.Constraint()(w).tolist() == w.tolist()


def test_identifiers_configs_and_serialization_match_keras(keras):
    for name in ("max_norm", "non_neg", "unit_norm", "min_max_norm", "MaxNorm", "NonNeg", "UnitNorm",
                 "MinMaxNorm", "constraint"):
        ours, theirs = constraints.get(name), keras.constraints.get(name)
        assert type(ours).__name__ == type(theirs).__name__ and ours.get_config() == theirs.get_config(), name
    assert constraints.max_norm is constraints.MaxNorm and constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm and constraints.min_max_norm is constraints.MinMaxNorm
    assert isinstance(constraints.get(constraints.UnitNorm), constraints.UnitNorm)
    for ours, theirs in zip(_cases(constraints), _cases(keras.constraints)):
        config = constraints.serialize(ours)
        assert config == keras.constraints.serialize(theirs)
        assert constraints.deserialize(config).get_config() == ours.get_config()
        assert keras.constraints.deserialize(config).get_config() == theirs.get_config()
    assert constraints.get({"class_name": "MaxNorm", "config": {"max_value": 3, "axis": 0}}).max_value == 3

    def clip(w):
        return np.clip(w, -0.1, 0.1)

    assert constraints.get(clip) is clip   # any callable, as Keras


def test_bad_identifiers_and_arguments():
    with pytest.raises(ValueError, match="could not interpret constraint identifier: 'nonneg'"):
        constraints.get("nonneg")
    with pytest.raises(ValueError, match="could not interpret constraint identifier"):
        constraints.get(3)
    with pytest.raises(ValueError, match="cannot load the constraint class 'Evil'"):
        constraints.get({"module": "builtins", "class_name": "Evil", "config": {}})
    with pytest.raises(ValueError, match="bad arguments for MaxNorm"):
        constraints.get({"class_name": "MaxNorm", "config": {"maximum": 1}})
    with pytest.raises(ValueError, match="axis"):
        constraints.MaxNorm(axis="rows")
    with pytest.raises(ValueError, match="max_value must be a finite number"):
        constraints.MaxNorm(max_value=float("inf"))
    with pytest.raises(ValueError, match=r"axis \[0, 4\] does not fit a weight of shape \(2, 3\)"):
        constraints.UnitNorm(axis=[0, 4])(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'd': kernel_constraint: could not interpret"):
        layers.Dense(2, kernel_constraint="max", name="d")


def _constrained_model(m, C, inp):
    return [inp((5, 5, 2)),
            m.Conv2D(4, 3, activation="relu", kernel_constraint=C.MaxNorm(0.6, axis=[0, 1, 2]),
                     bias_constraint=C.NonNeg()),
            m.SeparableConv2D(3, 2, depthwise_constraint=C.UnitNorm(axis=[0, 1]),
                              pointwise_constraint=C.MinMaxNorm(0.2, 0.8, rate=0.5, axis=[0, 1, 2])),
            m.Flatten(),
            m.Dense(6, kernel_constraint=C.UnitNorm(), bias_constraint=C.NonNeg()),
            m.LayerNormalization(gamma_constraint=C.NonNeg(), beta_constraint=C.MaxNorm(0.1)),
            m.PReLU(alpha_constraint=C.NonNeg()),
            m.Dense(2, kernel_constraint=C.MaxNorm(0.5, axis=1))]


def test_training_with_constraints_matches_keras(keras, rng):
    x = rng.standard_normal((12, 5, 5, 2)).astype(np.float32)
    y = rng.standard_normal((12, 2)).astype(np.float32)
    ours = cnnfast.Sequential(_constrained_model(layers, constraints, lambda s: cnnfast.Input(shape=s)))
    theirs = keras.Sequential(_constrained_model(keras.layers, keras.constraints, lambda s: keras.Input(shape=s)))
    for v in ours.weights:   # alphas start negative so NonNeg has work to do
        if v.name == "alpha":
            v.assign(np.full(v.shape, -0.2))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=cnnfast.optimizers.SGD(0.2, momentum=0.5), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(0.2, momentum=0.5), loss="mse")
    for _ in range(4):
        a = ours.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0).history["loss"]
        b = theirs.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0).history["loss"]
        np.testing.assert_allclose(a, b, rtol=2e-5)
        for mine, ref in zip(ours.get_weights(), theirs.get_weights()):
            np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(ref), rtol=1e-4, atol=2e-6)
    # the projections hold after the steps
    dense = ours.layers[3]
    np.testing.assert_allclose(np.linalg.norm(dense.kernel.numpy(), axis=0), 1.0, rtol=1e-5)
    assert (dense.bias.numpy() >= 0).all() and (ours.layers[5].alpha.numpy() >= 0).all()
    conv = ours.layers[0].kernel.numpy()
    assert (np.sqrt((conv.astype(np.float64) ** 2).sum(axis=(0, 1, 2))) <= 0.6 + 1e-6).all()


def test_apply_gradients_applies_constraints(rng):
    layer = layers.Dense(3, kernel_constraint=constraints.UnitNorm(), bias_constraint="non_neg")
    layer(np.zeros((1, 4), np.float32))
    opt = cnnfast.optimizers.SGD(1.0)
    grads = [rng.standard_normal(v.shape).astype(np.float32) for v in layer.trainable_weights]
    expected_w = layer.kernel.numpy() - grads[0]
    opt.apply_gradients(zip(grads, layer.trainable_weights))
    np.testing.assert_allclose(layer.kernel.numpy(),
                               expected_w / (1e-7 + np.linalg.norm(expected_w, axis=0)), rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), np.maximum(-grads[1], 0), rtol=1e-6)


def test_custom_constraint_callable_in_fit(rng):
    def clip(w):
        return np.clip(w, -0.05, 0.05)

    dense = layers.Dense(3, kernel_constraint=clip)
    model = cnnfast.Sequential([cnnfast.Input(shape=(4,)), dense])
    model.compile(optimizer=cnnfast.optimizers.SGD(0.5), loss="mse")
    model.fit(rng.standard_normal((16, 4)), rng.standard_normal((16, 3)), epochs=2, verbose=0)
    assert np.abs(dense.kernel.numpy()).max() <= 0.05
    assert dense.kernel.constraint is clip
    with pytest.raises(ValueError, match="returned shape"):
        bad = layers.Dense(3, kernel_constraint=lambda w: w[0])
        m = cnnfast.Sequential([cnnfast.Input(shape=(4,)), bad])
        m.compile(optimizer="sgd", loss="mse")
        m.train_on_batch(np.ones((2, 4)), np.ones((2, 3)))


def test_predict_after_constrained_step_sees_the_projection(rng):
    """Inference plans are rebuilt after the projection (the weights' generation moves)."""
    model = cnnfast.Sequential([cnnfast.Input(shape=(4, 4, 1)),
                                layers.Conv2D(2, 3, kernel_constraint=constraints.NonNeg()),
                                layers.BatchNormalization(), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer=cnnfast.optimizers.SGD(1.0), loss="mse")
    x = rng.standard_normal((4, 4, 4, 1)).astype(np.float32)
    model.predict(x, verbose=0)
    model.train_on_batch(x, rng.standard_normal((4, 1)))
    assert (model.layers[0].kernel.numpy() >= 0).all()
    np.testing.assert_allclose(model.predict(x, verbose=0), model._run_forward([x], False,
                               model._contexts("test"))[0], rtol=1e-5, atol=1e-6)

"""cnnfast.random: Keras 3's keras.random signatures, shapes and dtypes (keras with the torch
backend as the oracle, skipped without keras), distribution statistics with fixed seeds,
reproducibility and SeedGenerator state (NumPy only)."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import cnnfast  # noqa: E402
from cnnfast import random  # noqa: E402
from cnnfast.utils import set_random_seed  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


CALLS = [
    ("normal", ((2, 3),), {}),
    ("normal", ((4,),), {"mean": 1.0, "stddev": 2.0, "dtype": "float64"}),
    ("uniform", ((3, 2),), {"minval": -1.0, "maxval": 1.0}),
    ("uniform", ((5,),), {"dtype": "float16"}),
    ("truncated_normal", ((2, 2, 2),), {}),
    ("randint", ((3, 3), 0, 10), {}),
    ("randint", ((4,), -5, 5), {"dtype": "int64"}),
    ("categorical", (np.log(np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)), 6), {}),
    ("gamma", ((3,), 2.0), {}),
    ("beta", ((2, 3), 2.0, 3.0), {}),
    ("binomial", ((4,), 10, 0.3), {}),
    ("dropout", (np.ones((3, 4), np.float32), 0.5), {}),
    ("dropout", (np.ones((3, 4), np.float32), 0.5), {"noise_shape": (None, 1)}),
    ("shuffle", (np.arange(12).reshape(4, 3),), {}),
    ("shuffle", (np.arange(24, dtype=np.float32).reshape(2, 3, 4),), {"axis": 1}),
]


@pytest.mark.parametrize("name,args,kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_shapes_and_dtypes_match_keras(keras, name, args, kwargs):
    ours = getattr(random, name)(*args, seed=3, **kwargs)
    tensors = [keras.ops.convert_to_tensor(a) if isinstance(a, np.ndarray) else a for a in args]
    theirs = getattr(keras.random, name)(*tensors, seed=3, **kwargs)
    assert isinstance(ours, np.ndarray)
    assert ours.shape == tuple(theirs.shape)
    assert ours.dtype.name == keras.backend.standardize_dtype(theirs.dtype)


def test_dtype_checks_match_keras(keras):
    for ours, theirs in ((random.uniform, keras.random.uniform), (random.normal, None),
                         (random.gamma, None)):
        with pytest.raises(ValueError, match="floating point"):
            ours((2,), dtype="int32") if ours is not random.gamma else ours((2,), 1.0, dtype="int32")
        if theirs is not None:
            with pytest.raises(ValueError):
                theirs((2,), dtype="int32")
    with pytest.raises(ValueError, match="randint: dtype must be an integer type"):
        random.randint((2,), 0, 3, dtype="float32")
    with pytest.raises(ValueError):
        keras.random.randint((2,), 0, 3, dtype="float32")
    with pytest.raises(ValueError, match="categorical: logits must be 2-D"):
        random.categorical(np.zeros(3), 2)
    with pytest.raises(ValueError):
        keras.random.categorical(np.zeros(3), 2)


def test_seed_generator_api_matches_keras(keras):
    ours, theirs = random.SeedGenerator(42, name="gen"), keras.random.SeedGenerator(42, name="gen")
    assert ours.get_config() == theirs.get_config() == {"seed": 42, "name": "gen"}
    np.testing.assert_array_equal(ours.state, keras.ops.convert_to_numpy(theirs.state.value))
    ours.next(), theirs.next()
    np.testing.assert_array_equal(ours.state, keras.ops.convert_to_numpy(theirs.state.value))
    with pytest.raises(ValueError):
        keras.random.SeedGenerator("x")
    with pytest.raises(ValueError, match="SeedGenerator: seed must be an integer or None"):
        random.SeedGenerator("x")


# ----------------------------------------------------------------------------- NumPy only

def test_int_seeds_repeat_and_seed_generators_advance():
    for draw in (lambda s: random.normal((50,), seed=s), lambda s: random.uniform((50,), seed=s),
                 lambda s: random.randint((50,), 0, 100, seed=s),
                 lambda s: random.shuffle(np.arange(50), seed=s),
                 lambda s: random.dropout(np.ones(50), 0.5, seed=s)):
        np.testing.assert_array_equal(draw(7), draw(7))
        assert not np.array_equal(draw(7), draw(8))
        gen = random.SeedGenerator(7)
        first, second = draw(gen), draw(gen)
        np.testing.assert_array_equal(first, draw(7))  # the first draw of SeedGenerator(s) is seed=s
        assert not np.array_equal(first, second)
        again = random.SeedGenerator(7)
        np.testing.assert_array_equal(draw(again), first)
        np.testing.assert_array_equal(draw(again), second)


def test_seed_generator_state():
    gen = random.SeedGenerator(5)
    np.testing.assert_array_equal(gen.state, [5, 0])
    for i in range(3):
        random.normal((2,), seed=gen)
    np.testing.assert_array_equal(gen.state, [5, 3])
    assert [int(v) for v in gen.next()] == [5, 3] and int(gen.state[1]) == 4
    assert random.SeedGenerator.from_config(gen.get_config()).get_config() == gen.get_config()
    assert random.SeedGenerator(1).name != random.SeedGenerator(1).name
    with pytest.raises(ValueError, match="unrecognised keyword arguments"):
        random.SeedGenerator(1, backend="torch")
    with pytest.raises(ValueError, match="normal: seed must be an integer, a SeedGenerator or None"):
        random.normal((2,), seed=1.5)


def test_unseeded_draws_follow_set_random_seed():
    set_random_seed(123)
    a = (random.normal((5,)), random.SeedGenerator().state.copy(), random.uniform((5,)))
    set_random_seed(123)
    b = (random.normal((5,)), random.SeedGenerator().state.copy(), random.uniform((5,)))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(random.normal((5,)), random.normal((5,)))
    assert cnnfast.random is random  # lazily imported submodule


N = 200_000


def test_continuous_distribution_statistics():
    x = random.normal((N,), mean=2.0, stddev=3.0, seed=1)
    assert x.dtype == np.float32
    assert abs(x.mean() - 2.0) < 0.03 and abs(x.std() - 3.0) < 0.03
    u = random.uniform((N,), minval=-2.0, maxval=6.0, seed=2)
    assert u.min() >= -2.0 and u.max() < 6.0
    assert abs(u.mean() - 2.0) < 0.03 and abs(u.var() - 64 / 12) < 0.05
    t = random.truncated_normal((N,), mean=1.0, stddev=0.5, seed=3)
    assert t.min() >= 0.0 and t.max() <= 2.0
    assert abs(t.mean() - 1.0) < 0.01 and abs(t.std() - 0.5 * 0.8796) < 0.005  # sd of a +-2 sigma cut
    g = random.gamma((N,), alpha=3.0, seed=4)
    assert (g > 0).all() and abs(g.mean() - 3.0) < 0.03 and abs(g.var() - 3.0) < 0.06
    b = random.beta((N,), alpha=2.0, beta=5.0, seed=5)
    assert (b >= 0).all() and (b <= 1).all()
    assert abs(b.mean() - 2 / 7) < 0.003 and abs(b.var() - 10 / (49 * 8)) < 0.001
    b_rows = random.beta((1000, 2), alpha=np.array([1.0, 8.0]), beta=1.0, seed=6)
    assert abs(b_rows[:, 0].mean() - 0.5) < 0.03 and abs(b_rows[:, 1].mean() - 8 / 9) < 0.01


def test_discrete_distribution_statistics():
    r = random.randint((N,), -3, 4, seed=7)
    assert r.dtype == np.int32 and r.min() == -3 and r.max() == 3
    np.testing.assert_allclose(np.bincount(r + 3) / N, 1 / 7, atol=0.005)
    k = random.binomial((N,), counts=20, probabilities=0.25, seed=8)
    assert k.dtype == np.float32 and abs(k.mean() - 5.0) < 0.03 and abs(k.var() - 3.75) < 0.06
    probs = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    with np.errstate(divide="ignore"):
        logits = np.log(probs)
    c = random.categorical(logits, 50_000, seed=9)
    assert c.shape == (2, 50_000) and c.dtype == np.int32
    np.testing.assert_allclose(np.bincount(c[0], minlength=3) / 50_000, probs[0], atol=0.01)
    assert (c[1] == 2).all()  # classes of probability 0 (logit -inf) are never drawn
    with pytest.raises(ValueError, match="categorical: every row of logits needs a finite maximum"):
        random.categorical(np.full((1, 2), -np.inf), 3)


def test_dropout():
    x = np.ones((400, 500), np.float32)
    y = random.dropout(x, 0.3, seed=1)
    assert y.dtype == np.float32
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.005
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the expectation
    rows = random.dropout(x, 0.5, noise_shape=(None, 1), seed=2)
    assert ((rows == 0).all(axis=1) | (rows == 2).all(axis=1)).all()  # whole rows kept or dropped
    assert random.dropout(x, 0.0) is x
    assert not random.dropout(x, 1.0).any()
    with pytest.raises(ValueError, match=r"dropout: rate must be in \[0, 1\]"):
        random.dropout(x, 1.5)
    with pytest.raises(ValueError, match="dropout: noise_shape must have one entry per axis"):
        random.dropout(x, 0.5, noise_shape=(1,))


def test_shuffle_keeps_slices_whole():
    x = np.arange(30).reshape(10, 3)
    s = random.shuffle(x, seed=1)
    assert sorted(map(tuple, s)) == sorted(map(tuple, x)) and not np.array_equal(s, x)
    cube = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    t = random.shuffle(cube, axis=1, seed=2)
    for i in range(2):  # rows of each slice permuted independently, each row intact
        assert sorted(map(tuple, t[i])) == sorted(map(tuple, cube[i]))
    # every permutation of 3 rows is about equally likely
    counts = {}
    gen = random.SeedGenerator(3)
    for _ in range(3000):
        key = tuple(random.shuffle(np.arange(3), seed=gen))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 6 and min(counts.values()) > 400
    with pytest.raises(ValueError, match="shuffle: axis 2 is out of range"):
        random.shuffle(x, axis=2)


def test_argument_errors():
    with pytest.raises(ValueError, match="uniform: minval must be < maxval"):
        random.uniform((2,), minval=1.0, maxval=1.0)
    with pytest.raises(ValueError, match="normal: stddev must be >= 0"):
        random.normal((2,), stddev=-1.0)
    with pytest.raises(ValueError, match="gamma: alpha must be > 0"):
        random.gamma((2,), alpha=0.0)
    with pytest.raises(ValueError, match="binomial: probabilities must be in"):
        random.binomial((2,), 3, 1.5)
    with pytest.raises(ValueError, match="normal: shape must not have negative dimensions"):
        random.normal((2, -1))
    with pytest.raises(TypeError, match="normal: shape must be a tuple of ints"):
        random.normal((2.5,))
    assert random.normal(3, seed=0).shape == (3,)
    assert random.normal((0, 4), seed=0).shape == (0, 4)

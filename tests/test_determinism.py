"""Determinism: the same seed and the same thread count give bit-identical results.

* A small CNN (convolution, batch normalisation, dropout, pooling, dense, Adam) trained twice after
  ``cnnfast.utils.set_random_seed`` ends with bit-identical weights, on 1 and on 2 threads, on every
  ISA path.
* The same holds across processes (different hash seeds, fresh allocations).
* The kernels with reductions (backward-filter, bias gradient, batch-norm statistics, global norm)
  return bit-identical results on every repeat.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, ops
from cnnfast.utils import set_random_seed

from _hardening import describe, run_python

F32 = np.float32


def _data():
    rng = np.random.default_rng(123)
    x = rng.standard_normal((96, 10, 10, 2)).astype(F32)
    y = (x[:, :5].mean(axis=(1, 2, 3)) > 0).astype(int) + (x[..., 1].mean(axis=(1, 2)) > 0.1)
    return x, y


def _train(seed: int, epochs: int = 2):
    set_random_seed(seed)
    model = models.Sequential([
        layers.Input((10, 10, 2)),
        layers.Conv2D(6, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Conv2D(8, 3, activation="relu"),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(16, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=epochs, validation_split=0.25, verbose=0)
    return model.get_weights(), history.history


def _digest(weights) -> str:
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def test_training_twice_with_the_same_seed_is_bit_identical(isa, threads):
    w1, h1 = _train(7)
    w2, h2 = _train(7)
    assert len(w1) == len(w2) == 12  # 2 conv, 4 batch-norm, 2 dense: kernels and biases
    for a, b in zip(w1, w2):
        assert a.tobytes() == b.tobytes()
    assert h1 == h2  # losses and metrics too


def test_another_seed_gives_other_weights():
    """The test above could not pass by accident (e.g. a seed that is ignored)."""
    w1, _ = _train(7, epochs=1)
    w2, _ = _train(8, epochs=1)
    assert _digest(w1) != _digest(w2)


TRAIN_CODE = """
import hashlib, sys, numpy as np
sys.path.insert(0, {tests!r})
from test_determinism import _train, _digest
print("DIGEST", _digest(_train(11)[0]))
"""


@pytest.mark.parametrize("threads_env", [1, 2])
def test_training_is_bit_identical_across_processes(threads_env):
    from _hardening import REPO_ROOT
    code = TRAIN_CODE.format(tests=str(REPO_ROOT / "tests"))
    digests = []
    for hash_seed in ("1", "2"):
        proc = run_python(code, timeout=300, threads=threads_env, env={"PYTHONHASHSEED": hash_seed})
        assert proc.returncode == 0, describe(proc)
        digests.append([line for line in proc.stdout.splitlines() if line.startswith("DIGEST")][0])
    assert digests[0] == digests[1]


def test_reduction_kernels_repeat_bit_for_bit(isa, threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 20, 20, 12)).astype(F32)
    w = rng.standard_normal((3, 3, 12, 16)).astype(F32)
    dy = rng.standard_normal((16, 18, 18, 16)).astype(F32)
    big = rng.standard_normal(1_000_003).astype(F32)

    def run():
        dx, dw, db = ops.conv2d_backward(dy, x, w)
        ddx, ddw, ddb = ops.conv2d_backward(dy[..., :12], x, w[..., :12].reshape(3, 3, 1, 144)[..., ::12], groups=12)
        mm, mv = np.zeros(12, F32), np.ones(12, F32)
        y, mean, inv = ops.batch_norm_forward(x, None, None, mm, mv, training=True)
        bdx, dg, dbeta = ops.batch_norm_backward(x, x, np.ones(12, F32), mean, inv)
        return [dx, dw, db, ddx, ddw, y, mean, inv, mm, mv, bdx, dg, dbeta, ops.bias_add_backward(dy),
                np.array(ops.global_norm(big)), ops.softmax_cross_entropy(x.reshape(-1, 12), np.zeros(6400, int))[1]]

    first = run()
    for _ in range(3):
        for a, b in zip(first, run()):
            assert a.tobytes() == b.tobytes()


def test_dropout_masks_depend_only_on_seed_and_step(threads):
    x = np.ones((4, 1001), F32)
    a = ops.dropout(x, 0.4, seed=9, step=3)
    b = ops.dropout(x, 0.4, seed=9, step=3)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, ops.dropout(x, 0.4, seed=9, step=4))
    assert not np.array_equal(a, ops.dropout(x, 0.4, seed=10, step=3))
    for isa in cnnfast.available_isas():
        with cnnfast.use_isa(isa):
            assert ops.dropout(x, 0.4, seed=9, step=3).tobytes() == a.tobytes()

"""No leaks: resident memory stays flat over 1,000 training steps, repeated fit/evaluate/predict
calls, save/load cycles and thousands of kernel calls.

Each test warms up first (buffers reused between steps are allocated on the first steps, NumPy and
the allocator fill their caches), then measures RSS growth over many more iterations. The bound is
a few MiB: a leak of even one small buffer per step (a 4 KiB activation, a workspace) would exceed
it, while the allocator's normal jitter stays far below.
"""
from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, models, ops
from cnnfast.utils import set_random_seed

from _hardening import rss_mib

F32 = np.float32
LIMIT_MIB = 2.0  # observed jitter <= 0.5 MiB; a 4 KiB-per-step leak adds 4 MiB over 1,000 steps

# ASan's quarantine keeps freed memory resident, and valgrind replaces the allocator: RSS means
# nothing there (.ci/sanitize.sh and .ci/valgrind.sh set this variable).
pytestmark = pytest.mark.skipif(bool(os.environ.get("CNNFAST_UNDER_SANITIZER")),
                                reason="RSS is not meaningful under ASan or valgrind")


def _growth(step, warmup: int, steps: int) -> float:
    for i in range(warmup):
        step(i)
    gc.collect()
    before = rss_mib()
    for i in range(warmup, warmup + steps):
        step(i)
    gc.collect()
    return rss_mib() - before


def _model():
    set_random_seed(0)
    model = models.Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.25),
        layers.Dense(16, activation="relu"),
        layers.Dense(4, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_rss_is_flat_over_1000_training_steps():
    model = _model()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 1)).astype(F32)
    y = rng.integers(0, 4, 32)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]

    def step(i):
        xb, yb = batches[i % 4]
        model.train_on_batch(xb, yb)
    grown = _growth(step, warmup=100, steps=1000)
    assert model.optimizer.iterations == 1100
    assert grown < LIMIT_MIB, f"RSS grew {grown:.1f} MiB over 1,000 training steps"


def test_rss_is_flat_over_repeated_fit_evaluate_predict():
    model = _model()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 8, 8, 1)).astype(F32)
    y = rng.integers(0, 4, 40)

    def step(i):
        model.fit(x, y, batch_size=16, epochs=1, validation_split=0.2, verbose=0)
        model.evaluate(x, y, verbose=0)
        model.predict(x, batch_size=7, verbose=0)
    grown = _growth(step, warmup=20, steps=150)
    assert grown < LIMIT_MIB, f"RSS grew {grown:.1f} MiB over 150 fit/evaluate/predict rounds"


def test_rss_is_flat_over_save_and_load_cycles(tmp_path):
    model = _model()
    model.fit(np.zeros((8, 8, 8, 1), F32), np.zeros(8, int), verbose=0)
    path = tmp_path / "m.keras"

    def step(i):
        model.save(path)
        loaded = models.load_model(path)
        loaded.load_weights(path)
    grown = _growth(step, warmup=10, steps=100)
    assert grown < LIMIT_MIB, f"RSS grew {grown:.1f} MiB over 100 save/load cycles"


@pytest.mark.parametrize("family", ["conv", "pool", "gemm", "eltwise", "optim"])
def test_rss_is_flat_over_kernel_calls(family, threads):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 16, 16, 8)).astype(F32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(F32)
    dy = rng.standard_normal((4, 14, 14, 8)).astype(F32)
    p = rng.standard_normal(4096).astype(F32)
    g = rng.standard_normal(4096).astype(F32)
    state = [np.zeros(4096, F32) for _ in range(3)]
    ym, am = ops.max_pool2d(x, return_argmax=True)
    calls = {
        "conv": lambda: (ops.conv2d(x, w), ops.conv2d_backward(dy, x, w),
                         ops.conv2d(x, w[:, :, :1, :], groups=8, padding="same"),
                         ops.conv2d_transpose(x, w, strides=2)),
        "pool": lambda: (ops.max_pool2d(x, return_argmax=True), ops.max_pool2d_backward(ym, am, x.shape),
                         ops.avg_pool2d_backward(ops.avg_pool2d(x, 3, 1, "same"), x.shape, 3, 1, "same"),
                         ops.global_max_pool2d(x, return_argmax=True)),
        "gemm": lambda: (ops.matmul(x.reshape(-1, 8), w.reshape(72, 8)[:8]),
                         ops.matmul(x.reshape(-1, 8), x.reshape(-1, 8), trans_a=True)),
        "eltwise": lambda: (ops.softmax_cross_entropy(x.reshape(-1, 8), np.zeros(1024, int)),
                            ops.batch_norm_forward(x, None, None, np.zeros(8, F32), np.ones(8, F32), training=True),
                            ops.dropout(x, 0.5, 1, 2), ops.sigmoid(x), ops.bias_add_backward(dy)),
        "optim": lambda: (ops.adam_update(p, g, state[0], state[1], v_hat=state[2], step=3, learning_rate=1e-6),
                          ops.rmsprop_update(p, g, state[0], learning_rate=1e-6), ops.global_norm([p, x])),
    }
    grown = _growth(lambda i: calls[family](), warmup=50, steps=1500)
    assert grown < LIMIT_MIB, f"RSS grew {grown:.1f} MiB over 1,500 {family} calls"

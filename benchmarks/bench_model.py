"""Whole-model benchmarks: one training step and one inference batch, cnnfast vs PyTorch (and NumPy
where a NumPy version is reasonable), on the same inputs, 1 then 2 threads.

Cases:
  * the Keras MNIST tutorial CNN (Conv 32 3x3, MaxPool, Conv 64, MaxPool, Conv 64, Dense 64,
    Dense 10 softmax; Adam; sparse crossentropy), batch 64: ``model.train_on_batch`` against the
    same PyTorch model in channels_last (``zero_grad``/``backward``/``step``); inference batch 256;
  * a small MLP (784-128-10, batch 32), where per-step framework overhead dominates; NumPy runs
    the same step by hand (matmuls, softmax crossentropy, plain SGD).

    python -m pytest benchmarks/bench_model.py --benchmark-only --benchmark-group-by=group

GFLOP/s count the convolution and dense multiply-adds (training: forward, input gradients except
the first layer's, weight gradients) and are compared with the FMA peak measured in the session.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import record

import cnnfast
from cnnfast import layers, models, optimizers

try:
    import torch
except ImportError:  # PyTorch is optional: its cases skip
    torch = None

# multiply-adds per sample of the tutorial CNN (valid 3x3 convolutions, 28x28x1 input)
CNN_LAYERS = [26 * 26 * 32 * 9 * 1, 11 * 11 * 64 * 9 * 32, 3 * 3 * 64 * 9 * 64, 576 * 64, 64 * 10]
CNN_FWD_FLOPS = 2 * sum(CNN_LAYERS)
CNN_TRAIN_FLOPS = 3 * CNN_FWD_FLOPS - 2 * CNN_LAYERS[0]  # no input gradient for the first layer
MLP_LAYERS = [784 * 128, 128 * 10]


def cnnfast_cnn():
    cnnfast.utils.set_random_seed(0)
    model = models.Sequential([
        layers.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizers.Adam(), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def torch_cnn():
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.Linear(576, 64),
                          nn.ReLU(), nn.Linear(64, 10))
    return model.to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def mnist_like():
    rng = np.random.default_rng(0)
    return rng.random((256, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 256)


def _torch_train_step(model, opt, loss_fn, xb, yb):
    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss.item()
    return step


@pytest.mark.benchmark(group="train step: tutorial CNN, batch 64")
@pytest.mark.parametrize("lib", ["cnnfast", "torch"])
def test_cnn_train_step(benchmark, lib, bench_threads, fma_peak, mnist_like):
    x, y = mnist_like[0][:64], mnist_like[1][:64]
    if lib == "cnnfast":
        model = cnnfast_cnn()
        model.train_on_batch(x, y)
        benchmark(model.train_on_batch, x, y)
    else:
        if torch is None:
            pytest.skip("PyTorch not installed")
        model = torch_cnn()
        xb = torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        step = _torch_train_step(model, torch.optim.Adam(model.parameters(), eps=1e-7),
                                 torch.nn.CrossEntropyLoss(), xb, torch.from_numpy(y))
        step()
        benchmark(step)
    record(benchmark, 64 * CNN_TRAIN_FLOPS, fma_peak[bench_threads], lib=lib, threads=bench_threads)


@pytest.mark.benchmark(group="inference: tutorial CNN, batch 256")
@pytest.mark.parametrize("lib", ["cnnfast", "torch"])
def test_cnn_predict(benchmark, lib, bench_threads, fma_peak, mnist_like):
    x = mnist_like[0]
    if lib == "cnnfast":
        model = cnnfast_cnn()
        benchmark(model.predict_on_batch, x)
    else:
        if torch is None:
            pytest.skip("PyTorch not installed")
        model = torch_cnn().eval()
        xb = torch.from_numpy(x.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)

        def run():
            with torch.no_grad():
                return torch.softmax(model(xb), dim=1)
        benchmark(run)
    record(benchmark, 256 * CNN_FWD_FLOPS, fma_peak[bench_threads], lib=lib, threads=bench_threads)


def _numpy_mlp_step(w1, b1, w2, b2, x, y, lr=0.01):
    h = np.maximum(x @ w1 + b1, 0)
    z = h @ w2 + b2
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y]).mean()
    p[np.arange(n), y] -= 1
    dz = p / n
    dh = (dz @ w2.T) * (h > 0)
    w2 -= lr * (h.T @ dz)
    b2 -= lr * dz.sum(0)
    w1 -= lr * (x.T @ dh)
    b1 -= lr * dh.sum(0)
    return loss


@pytest.mark.benchmark(group="train step: MLP 784-128-10, batch 32 (framework overhead)")
@pytest.mark.parametrize("lib", ["cnnfast", "numpy", "torch"])
def test_mlp_train_step(benchmark, lib, bench_threads, fma_peak):
    rng = np.random.default_rng(1)
    x = rng.random((32, 784), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    if lib == "cnnfast":
        model = models.Sequential([layers.Input((784,)), layers.Dense(128, activation="relu"),
                                   layers.Dense(10, activation="softmax")])
        model.compile(optimizers.SGD(), "sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        benchmark(model.train_on_batch, x, y)
    elif lib == "numpy":
        params = [rng.standard_normal((784, 128)).astype(np.float32) * 0.05, np.zeros(128, np.float32),
                  rng.standard_normal((128, 10)).astype(np.float32) * 0.05, np.zeros(10, np.float32)]
        benchmark(_numpy_mlp_step, *params, x, y)
    else:
        if torch is None:
            pytest.skip("PyTorch not installed")
        nn = torch.nn
        model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        step = _torch_train_step(model, torch.optim.SGD(model.parameters(), lr=0.01), nn.CrossEntropyLoss(),
                                 torch.from_numpy(x), torch.from_numpy(y))
        step()
        benchmark(step)
    flops = 32 * 2 * (3 * sum(MLP_LAYERS) - MLP_LAYERS[0])
    record(benchmark, flops, fma_peak[bench_threads], lib=lib, threads=bench_threads)

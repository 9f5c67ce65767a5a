"""Element-wise, loss and optimiser benchmarks: cnnfast vs NumPy and PyTorch (when installed).

Cases follow the Keras MNIST tutorial CNN (batch 64): the fused softmax cross-entropy on
(64, 10) logits (and a larger (1024, 1000) case that measures the kernel rather than call
overhead), the Adam step over the model's 225,034 parameters, ReLU / bias gradient / batch norm
on conv-sized activations, and dropout.

    CNNFAST_BENCH_THREADS=1 pytest benchmarks/bench_eltwise.py --benchmark-only

Both libraries run on the same number of threads (CNNFAST_BENCH_THREADS, default 1).
"""
from __future__ import annotations


import numpy as np
import pytest

from cnnfast import ops

pytestmark = pytest.mark.usefixtures("env_threads")  # CNNFAST_BENCH_THREADS, see conftest.py
# the tutorial model's weights: conv 3x3x1x32 + b, conv 3x3x32x64 + b, dense 1600x128 + b, dense 128x10 + b
MODEL_SHAPES = [(3, 3, 1, 32), (32,), (3, 3, 32, 64), (64,), (1600, 128), (128,), (128, 10), (10,)]
N_PARAMS = sum(int(np.prod(s)) for s in MODEL_SHAPES)
assert N_PARAMS == 225_034




@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(0)


# --- fused softmax + cross-entropy ------------------------------------------------------------

def numpy_softmax_xent(z, labels):
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    n = z.shape[0]
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[np.arange(n), labels]))
    d = e / s
    d[np.arange(n), labels] -= 1.0
    return loss, d / n


@pytest.mark.parametrize("n,c", [(64, 10), (1024, 1000)])
def test_xent_cnnfast(benchmark, rng, n, c):
    benchmark.group = f"softmax_cross_entropy fwd+bwd {n}x{c}"
    z = rng.standard_normal((n, c)).astype(np.float32)
    labels = rng.integers(0, c, n)
    benchmark(ops.softmax_cross_entropy, z, labels)


@pytest.mark.parametrize("n,c", [(64, 10), (1024, 1000)])
def test_xent_numpy(benchmark, rng, n, c):
    benchmark.group = f"softmax_cross_entropy fwd+bwd {n}x{c}"
    z = rng.standard_normal((n, c)).astype(np.float32)
    labels = rng.integers(0, c, n)
    benchmark(numpy_softmax_xent, z, labels)


@pytest.mark.parametrize("n,c", [(64, 10), (1024, 1000)])
def test_xent_torch(benchmark, rng, n, c):
    torch = pytest.importorskip("torch")
    benchmark.group = f"softmax_cross_entropy fwd+bwd {n}x{c}"
    z = torch.from_numpy(rng.standard_normal((n, c)).astype(np.float32)).requires_grad_(True)
    labels = torch.from_numpy(rng.integers(0, c, n))

    def run():
        loss = torch.nn.functional.cross_entropy(z, labels)
        (dz,) = torch.autograd.grad(loss, z)
        return loss.item(), dz
    benchmark(run)


# --- Adam over the tutorial model's 225,034 parameters -----------------------------------------

def test_adam_cnnfast(benchmark, rng):
    benchmark.group = f"adam step {N_PARAMS:,} params"
    w = rng.standard_normal(N_PARAMS).astype(np.float32)
    g = rng.standard_normal(N_PARAMS).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    state = {"t": 0}

    def run():
        state["t"] += 1
        ops.adam_update(w, g, m, v, step=state["t"], learning_rate=1e-3)
    benchmark(run)


def test_adam_numpy(benchmark, rng):
    benchmark.group = f"adam step {N_PARAMS:,} params"
    w = rng.standard_normal(N_PARAMS).astype(np.float32)
    g = rng.standard_normal(N_PARAMS).astype(np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    state = {"t": 0}

    def run():
        state["t"] += 1
        t = state["t"]
        alpha = 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        m[...] += (g - m) * np.float32(0.1)
        v[...] += (g * g - v) * np.float32(0.001)
        w[...] -= np.float32(alpha) * m / (np.sqrt(v) + np.float32(1e-7))
    benchmark(run)


@pytest.mark.parametrize("layout", ["per_tensor", "flat"])
def test_adam_torch(benchmark, rng, layout):
    torch = pytest.importorskip("torch")
    benchmark.group = f"adam step {N_PARAMS:,} params"
    shapes = MODEL_SHAPES if layout == "per_tensor" else [(N_PARAMS,)]
    params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32))) for s in shapes]
    for p in params:
        p.grad = torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32))
    opt = torch.optim.Adam(params, lr=1e-3, foreach=True)
    benchmark(opt.step)


def test_sgd_momentum_cnnfast(benchmark, rng):
    benchmark.group = f"sgd momentum step {N_PARAMS:,} params"
    w = rng.standard_normal(N_PARAMS).astype(np.float32)
    g = rng.standard_normal(N_PARAMS).astype(np.float32)
    vel = np.zeros_like(w)
    benchmark(lambda: ops.sgd_update(w, g, vel, learning_rate=0.01, momentum=0.9))


def test_sgd_momentum_torch(benchmark, rng):
    torch = pytest.importorskip("torch")
    benchmark.group = f"sgd momentum step {N_PARAMS:,} params"
    params = [torch.nn.Parameter(torch.from_numpy(rng.standard_normal(s).astype(np.float32))) for s in MODEL_SHAPES]
    for p in params:
        p.grad = torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32))
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=True)
    benchmark(opt.step)


# --- activations and per-channel ops on conv-sized activations --------------------------------

ACT = (64, 26, 26, 32)


def test_relu_fwd_bwd_cnnfast(benchmark, rng):
    benchmark.group = "relu fwd+bwd 64x26x26x32"
    x = rng.standard_normal(ACT).astype(np.float32)
    dy = rng.standard_normal(ACT).astype(np.float32)
    benchmark(lambda: ops.relu_backward(dy, ops.relu(x)))


def test_relu_fwd_bwd_numpy(benchmark, rng):
    benchmark.group = "relu fwd+bwd 64x26x26x32"
    x = rng.standard_normal(ACT).astype(np.float32)
    dy = rng.standard_normal(ACT).astype(np.float32)
    benchmark(lambda: np.where(np.maximum(x, 0) > 0, dy, np.float32(0)))


def test_relu_fwd_bwd_torch(benchmark, rng):
    torch = pytest.importorskip("torch")
    benchmark.group = "relu fwd+bwd 64x26x26x32"
    x = torch.from_numpy(rng.standard_normal(ACT).astype(np.float32)).requires_grad_(True)
    dy = torch.from_numpy(rng.standard_normal(ACT).astype(np.float32))

    def run():
        (dx,) = torch.autograd.grad(torch.relu(x), x, dy)
        return dx
    benchmark(run)


def test_bias_grad_cnnfast(benchmark, rng):
    benchmark.group = "bias gradient 64x26x26x32"
    dy = rng.standard_normal(ACT).astype(np.float32)
    benchmark(ops.bias_add_backward, dy)


def test_bias_grad_numpy(benchmark, rng):
    benchmark.group = "bias gradient 64x26x26x32"
    dy = rng.standard_normal(ACT).astype(np.float32)
    benchmark(lambda: dy.reshape(-1, 32).sum(axis=0))


def test_bias_grad_torch(benchmark, rng):
    torch = pytest.importorskip("torch")
    benchmark.group = "bias gradient 64x26x26x32"
    dy = torch.from_numpy(rng.standard_normal(ACT).astype(np.float32))
    benchmark(lambda: dy.sum(dim=(0, 1, 2)))


BN = (64, 13, 13, 64)


def test_batch_norm_cnnfast(benchmark, rng):
    benchmark.group = "batch_norm train fwd+bwd 64x13x13x64"
    x = rng.standard_normal(BN).astype(np.float32)
    dy = rng.standard_normal(BN).astype(np.float32)
    gamma, beta = np.ones(64, np.float32), np.zeros(64, np.float32)
    mm, mv = np.zeros(64, np.float32), np.ones(64, np.float32)

    def run():
        y, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True)
        return ops.batch_norm_backward(dy, x, gamma, mean, inv_std)
    benchmark(run)


def test_batch_norm_torch(benchmark, rng):
    torch = pytest.importorskip("torch")
    benchmark.group = "batch_norm train fwd+bwd 64x13x13x64"
    cl = torch.channels_last
    x = torch.from_numpy(rng.standard_normal(BN).astype(np.float32)).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    dy = torch.from_numpy(rng.standard_normal(BN).astype(np.float32)).permute(0, 3, 1, 2).contiguous(memory_format=cl)
    x.requires_grad_(True)
    bn = torch.nn.BatchNorm2d(64, eps=1e-3, momentum=0.01)

    def run():
        y = bn(x)
        return torch.autograd.grad(y, [x, bn.weight, bn.bias], dy)
    benchmark(run)


DROP = (64, 128)


@pytest.mark.parametrize("shape", [DROP, ACT])
def test_dropout_cnnfast(benchmark, rng, shape):
    benchmark.group = f"dropout(0.5) fwd {'x'.join(map(str, shape))}"
    x = rng.standard_normal(shape).astype(np.float32)
    state = {"step": 0}

    def run():
        state["step"] += 1
        return ops.dropout(x, 0.5, seed=1, step=state["step"])
    benchmark(run)


@pytest.mark.parametrize("shape", [DROP, ACT])
def test_dropout_numpy(benchmark, rng, shape):
    benchmark.group = f"dropout(0.5) fwd {'x'.join(map(str, shape))}"
    x = rng.standard_normal(shape).astype(np.float32)
    gen = np.random.default_rng(1)
    benchmark(lambda: np.where(gen.random(shape, dtype=np.float32) >= 0.5, x * np.float32(2.0), np.float32(0)))


@pytest.mark.parametrize("shape", [DROP, ACT])
def test_dropout_torch(benchmark, rng, shape):
    torch = pytest.importorskip("torch")
    benchmark.group = f"dropout(0.5) fwd {'x'.join(map(str, shape))}"
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    benchmark(lambda: torch.nn.functional.dropout(x, 0.5, training=True))

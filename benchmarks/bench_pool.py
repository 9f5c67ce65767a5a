"""Pooling benchmarks: cnnfast vs NumPy and PyTorch (when installed) on the same inputs.

The headline case is the pooling layer of the Keras MNIST tutorial CNN: 2x2 max pooling of a
(64, 26, 26, 32) batch, forward and forward + backward. PyTorch is timed both in NCHW and in
channels_last (its fastest layout for this op); NumPy uses the reshape trick.

    CNNFAST_BENCH_THREADS=1 pytest benchmarks/bench_pool.py --benchmark-only

Both libraries run on the same number of threads (CNNFAST_BENCH_THREADS, default 1).
"""
from __future__ import annotations


import numpy as np
import pytest

from cnnfast import ops

pytestmark = pytest.mark.usefixtures("env_threads")  # CNNFAST_BENCH_THREADS, see conftest.py
SHAPE = (64, 26, 26, 32)




@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    dy = rng.standard_normal((64, 13, 13, 32)).astype(np.float32)
    return x, dy


def _torch_inputs(torch, x, dy, channels_last):
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    gt = torch.from_numpy(dy.transpose(0, 3, 1, 2).copy())
    if channels_last:
        xt = xt.contiguous(memory_format=torch.channels_last)
        gt = gt.contiguous(memory_format=torch.channels_last)
    return xt, gt


def numpy_max_pool_2x2(x):
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def numpy_max_pool_2x2_fwd_bwd(x, dy):
    n, h, w, c = x.shape
    win = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    am = win.argmax(axis=-1)
    y = np.take_along_axis(win, am[..., None], axis=-1)[..., 0]
    dwin = np.zeros_like(win)
    np.put_along_axis(dwin, am[..., None], dy[..., None], axis=-1)
    dx = dwin.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c)
    return y, dx


# --- max pool 2x2, forward -------------------------------------------------------------------

@pytest.mark.benchmark(group="max_pool 2x2 fwd 64x26x26x32")
def test_maxpool_fwd_cnnfast(benchmark, data):
    x, _ = data
    benchmark(ops.max_pool2d, x, 2, return_argmax=True)


@pytest.mark.benchmark(group="max_pool 2x2 fwd 64x26x26x32")
def test_maxpool_fwd_cnnfast_inference(benchmark, data):
    x, _ = data
    benchmark(ops.max_pool2d, x, 2)


@pytest.mark.benchmark(group="max_pool 2x2 fwd 64x26x26x32")
def test_maxpool_fwd_numpy(benchmark, data):
    x, _ = data
    benchmark(numpy_max_pool_2x2, x)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.benchmark(group="max_pool 2x2 fwd 64x26x26x32")
def test_maxpool_fwd_torch(benchmark, data, layout):
    torch = pytest.importorskip("torch")
    xt, _ = _torch_inputs(torch, *data, layout == "channels_last")

    def run():
        with torch.no_grad():
            return torch.nn.functional.max_pool2d(xt, 2)
    benchmark(run)


# --- max pool 2x2, forward + backward --------------------------------------------------------

@pytest.mark.benchmark(group="max_pool 2x2 fwd+bwd 64x26x26x32")
def test_maxpool_fwd_bwd_cnnfast(benchmark, data):
    x, dy = data

    def run():
        y, am = ops.max_pool2d(x, 2, return_argmax=True)
        return ops.max_pool2d_backward(dy, am, x.shape, 2)
    benchmark(run)


@pytest.mark.benchmark(group="max_pool 2x2 fwd+bwd 64x26x26x32")
def test_maxpool_fwd_bwd_numpy(benchmark, data):
    benchmark(numpy_max_pool_2x2_fwd_bwd, *data)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.benchmark(group="max_pool 2x2 fwd+bwd 64x26x26x32")
def test_maxpool_fwd_bwd_torch(benchmark, data, layout):
    torch = pytest.importorskip("torch")
    xt, gt = _torch_inputs(torch, *data, layout == "channels_last")
    xt.requires_grad_(True)

    def run():
        y = torch.nn.functional.max_pool2d(xt, 2)
        (dx,) = torch.autograd.grad(y, xt, gt)
        return dx
    benchmark(run)


# --- average pooling and global average pooling (fwd + bwd) ----------------------------------

@pytest.mark.benchmark(group="avg_pool 3x3/2 same fwd+bwd 64x26x26x32")
def test_avgpool_fwd_bwd_cnnfast(benchmark, data):
    x, _ = data
    dy = np.ones((64, 13, 13, 32), np.float32)

    def run():
        ops.avg_pool2d(x, 3, 2, "same")
        return ops.avg_pool2d_backward(dy, x.shape, 3, 2, "same")
    benchmark(run)


@pytest.mark.benchmark(group="avg_pool 3x3/2 same fwd+bwd 64x26x26x32")
def test_avgpool_fwd_bwd_torch(benchmark, data):
    torch = pytest.importorskip("torch")
    xt, _ = _torch_inputs(torch, *data, True)
    xt.requires_grad_(True)
    gt = torch.ones((64, 32, 13, 13)).contiguous(memory_format=torch.channels_last)

    def run():  # padding 1 with count_include_pad=False: the same numbers as Keras "same" here
        y = torch.nn.functional.avg_pool2d(xt, 3, 2, 1, count_include_pad=False)
        (dx,) = torch.autograd.grad(y, xt, gt)
        return dx
    benchmark(run)


@pytest.mark.benchmark(group="global_avg_pool fwd+bwd 64x26x26x32")
def test_global_avgpool_fwd_bwd_cnnfast(benchmark, data):
    x, _ = data
    dy = np.ones((64, 32), np.float32)

    def run():
        ops.global_avg_pool2d(x)
        return ops.global_avg_pool2d_backward(dy, x.shape)
    benchmark(run)


@pytest.mark.benchmark(group="global_avg_pool fwd+bwd 64x26x26x32")
def test_global_avgpool_fwd_bwd_numpy(benchmark, data):
    x, _ = data
    dy = np.ones((64, 32), np.float32)

    def run():
        x.mean(axis=(1, 2))
        return np.broadcast_to(dy[:, None, None, :] / (26 * 26), x.shape).copy()
    benchmark(run)


@pytest.mark.benchmark(group="global_avg_pool fwd+bwd 64x26x26x32")
def test_global_avgpool_fwd_bwd_torch(benchmark, data):
    torch = pytest.importorskip("torch")
    xt, _ = _torch_inputs(torch, *data, True)
    xt.requires_grad_(True)
    gt = torch.ones((64, 32))

    def run():
        y = xt.mean(dim=(2, 3))
        (dx,) = torch.autograd.grad(y, xt, gt)
        return dx
    benchmark(run)

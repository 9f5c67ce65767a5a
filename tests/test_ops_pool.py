"""cnnfast.ops pooling: max / average / global pooling, forward and backward.

Checked against float64 loop references (tests/reference/pool.py) on every ISA path and 1 and 2
threads, against finite differences, against PyTorch, on real images, and on bad input.
"""
from __future__ import annotations

import gzip

import numpy as np
import pytest

import cnnfast
from cnnfast import ops
from conftest import shared_data_dir
from reference import pool as ref

# (input shape, pool_size, strides, padding). The big ones (> 128 KB) run on 2 threads.
CASES = [
    ((1, 4, 4, 1), (2, 2), None, "valid"),
    ((2, 7, 5, 3), (2, 2), None, "valid"),          # odd sizes: last row / column dropped
    ((2, 7, 5, 17), (2, 2), None, "same"),          # odd sizes padded at the bottom / right
    ((3, 11, 13, 5), (3, 3), (2, 2), "same"),       # overlapping windows
    ((2, 9, 8, 33), (3, 2), (1, 2), "valid"),       # rectangular, overlapping rows
    ((1, 13, 7, 16), (5, 3), (3, 4), "same"),       # stride > pool along W: gaps
    ((2, 6, 6, 8), (1, 1), (2, 2), "valid"),        # 1x1 window with gaps
    ((1, 3, 2, 4), (4, 4), (1, 1), "same"),         # window larger than the image
    ((1, 5, 5, 7), (5, 5), (1, 1), "same"),
    ((3, 37, 29, 24), (2, 2), None, "valid"),       # 309 KB: parallel
    ((2, 26, 26, 32), (3, 3), (2, 2), "same"),      # 173 KB: parallel, overlapping
]
CASE_IDS = [f"{'x'.join(map(str, s))}-p{p[0]}{p[1]}-s{'' if st is None else ''.join(map(str, st))}-{pad}"
            for s, p, st, pad in CASES]


def _strides(pool, strides):
    return pool if strides is None else strides


@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_max_pool_matches_reference(isa, threads, rng, shape, pool, strides, padding):
    x = rng.standard_normal(shape).astype(np.float32)
    y, am = ops.max_pool2d(x, pool, strides, padding, return_argmax=True)
    y_ref, am_ref = ref.max_pool2d(x, pool, _strides(pool, strides), padding)
    assert y.dtype == np.float32 and am.dtype == np.uint8
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(am, am_ref)
    np.testing.assert_array_equal(ops.max_pool2d(x, pool, strides, padding), y)  # no-argmax path

    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.max_pool2d_backward(dy, am, shape, pool, strides, padding)
    dx_ref = ref.max_pool2d_backward(dy, am_ref, shape, pool, _strides(pool, strides), padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,pool,strides,padding", CASES, ids=CASE_IDS)
def test_avg_pool_matches_reference(isa, threads, rng, shape, pool, strides, padding):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.avg_pool2d(x, pool, strides, padding)
    np.testing.assert_allclose(y, ref.avg_pool2d(x, pool, _strides(pool, strides), padding), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = ops.avg_pool2d_backward(dy, shape, pool, strides, padding)
    dx_ref = ref.avg_pool2d_backward(dy, shape, pool, _strides(pool, strides), padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 5, 3, 7), (3, 7, 7, 33), (4, 33, 31, 24)])
def test_global_pools_match_reference(isa, threads, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    y, am = ops.global_max_pool2d(x, return_argmax=True)
    y_ref, am_ref = ref.global_max_pool2d(x)
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(am, am_ref)
    assert am.dtype == np.int32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(dy, am, shape),
                                  ref.global_max_pool2d_backward(dy, am_ref, shape).astype(np.float32))

    ya = ops.global_avg_pool2d(x)
    np.testing.assert_allclose(ya, ref.global_avg_pool2d(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.global_avg_pool2d_backward(dy, shape),
                               ref.global_avg_pool2d_backward(dy, shape), rtol=1e-6, atol=1e-7)


def test_global_avg_pool_is_accurate_on_large_images(isa, rng):
    # 300x300 pixels of mean 1000 + noise: naive float32 accumulation would drift by ~1e-3.
    x = (1000 + rng.standard_normal((1, 300, 300, 3))).astype(np.float32)
    np.testing.assert_allclose(ops.global_avg_pool2d(x), x.astype(np.float64).mean(axis=(1, 2)), rtol=2e-7)


def test_keepdims_and_argmax_shapes(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y, am = ops.global_max_pool2d(x, keepdims=True, return_argmax=True)
    assert y.shape == am.shape == (2, 1, 1, 5)
    np.testing.assert_array_equal(y[:, 0, 0], ops.global_max_pool2d(x))
    assert ops.global_avg_pool2d(x, keepdims=True).shape == (2, 1, 1, 5)
    # both gradient layouts are accepted and agree
    dy = rng.standard_normal((2, 1, 1, 5)).astype(np.float32)
    np.testing.assert_array_equal(ops.global_max_pool2d_backward(dy, am, x.shape),
                                  ops.global_max_pool2d_backward(dy[:, 0, 0], am[:, 0, 0], x.shape))
    np.testing.assert_array_equal(ops.global_avg_pool2d_backward(dy, x.shape),
                                  ops.global_avg_pool2d_backward(dy[:, 0, 0], x.shape))


def test_large_window_uses_int32_argmax(isa, rng):
    x = rng.standard_normal((2, 20, 19, 5)).astype(np.float32)
    y, am = ops.max_pool2d(x, (17, 16), (2, 3), "same", return_argmax=True)  # 272 cells > 256
    assert am.dtype == np.int32
    y_ref, am_ref = ref.max_pool2d(x, (17, 16), (2, 3), "same")
    np.testing.assert_array_equal(y, y_ref.astype(np.float32))
    np.testing.assert_array_equal(am, am_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, am, x.shape, (17, 16), (2, 3), "same"),
                               ref.max_pool2d_backward(dy, am_ref, x.shape, (17, 16), (2, 3), "same"),
                               rtol=1e-6, atol=1e-6)
    _, am16 = ops.max_pool2d(x, (16, 16), 1, "same", return_argmax=True)  # exactly 256 cells
    assert am16.dtype == np.uint8 and am16.max() > 200


def test_nan_propagates_and_ties_keep_first_cell(isa):
    x = np.zeros((1, 4, 4, 18), dtype=np.float32)  # all ties: index 0 everywhere
    x[0, 1, 1, 3] = np.nan
    x[0, 2, 3, 17] = np.nan
    y, am = ops.max_pool2d(x, 2, return_argmax=True)
    assert np.isnan(y[0, 0, 0, 3]) and am[0, 0, 0, 3] == 3
    assert np.isnan(y[0, 1, 1, 17]) and am[0, 1, 1, 17] == 1
    assert np.count_nonzero(np.isnan(y)) == 2
    assert np.count_nonzero(am) == 2
    g, gam = ops.global_max_pool2d(x, return_argmax=True)
    assert np.isnan(g[0, 3]) and gam[0, 3] == 5 and gam[0, 17] == 11 and np.count_nonzero(gam) == 2


def test_results_do_not_depend_on_thread_count(isa, rng):
    x = rng.standard_normal((4, 30, 30, 24)).astype(np.float32)
    dy = rng.standard_normal((4, 15, 15, 24)).astype(np.float32)
    outs = []
    for nt in (1, 2):
        cnnfast.set_num_threads(nt)
        try:
            y, am = ops.max_pool2d(x, 3, 2, "same", return_argmax=True)
            outs.append((y, ops.max_pool2d_backward(dy, am, x.shape, 3, 2, "same"),
                         ops.avg_pool2d_backward(dy, x.shape, 3, 2, "same"), ops.global_avg_pool2d(x)))
        finally:
            cnnfast.set_num_threads(cnnfast.runtime.default_num_threads())
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Gradients by finite differences: f(x) = sum(r * pool(x)), checked at random coordinates.
# ---------------------------------------------------------------------------------------------

def _fd_check(f, x, dx, rng, eps, n_points=25, tol=2e-3):
    flat = x.reshape(-1)
    for idx in rng.choice(flat.size, size=min(n_points, flat.size), replace=False):
        old = flat[idx]
        flat[idx] = old + eps
        fp = f(x)
        flat[idx] = old - eps
        fm = f(x)
        flat[idx] = old
        num = (fp - fm) / (2 * eps)
        assert abs(num - dx.reshape(-1)[idx]) <= tol * max(1.0, abs(num)), (idx, num, dx.reshape(-1)[idx])


@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 1), "valid")])
def test_max_pool_gradient_by_finite_differences(rng, pool, strides, padding):
    shape = (2, 7, 6, 3)
    # distinct values 0.1 apart: a step of eps = 0.01 never changes which cell wins
    x = (rng.permutation(np.prod(shape)).reshape(shape) * 0.1).astype(np.float32)
    y, am = ops.max_pool2d(x, pool, strides, padding, return_argmax=True)
    r = rng.standard_normal(y.shape)
    dx = ops.max_pool2d_backward(r.astype(np.float32), am, shape, pool, strides, padding)
    _fd_check(lambda z: float(np.sum(r * ops.max_pool2d(z, pool, strides, padding))), x, dx, rng, eps=1e-2)


@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "same"), ((2, 3), (1, 1), "same")])
def test_avg_pool_gradient_by_finite_differences(rng, pool, strides, padding):
    shape = (2, 7, 6, 3)
    x = rng.standard_normal(shape).astype(np.float32)
    r = rng.standard_normal(ops.pool2d_output_shape(shape, pool, strides, padding))
    dx = ops.avg_pool2d_backward(r.astype(np.float32), shape, pool, strides, padding)
    _fd_check(lambda z: float(np.sum(r * ops.avg_pool2d(z, pool, strides, padding))), x, dx, rng, eps=1e-2)


def test_global_pool_gradients_by_finite_differences(rng):
    shape = (2, 4, 3, 5)
    x = (rng.permutation(np.prod(shape)).reshape(shape) * 0.1).astype(np.float32)
    r = rng.standard_normal((2, 5))
    _, am = ops.global_max_pool2d(x, return_argmax=True)
    dx = ops.global_max_pool2d_backward(r.astype(np.float32), am, shape)
    _fd_check(lambda z: float(np.sum(r * ops.global_max_pool2d(z))), x, dx, rng, eps=1e-2)
    dx = ops.global_avg_pool2d_backward(r.astype(np.float32), shape)
    _fd_check(lambda z: float(np.sum(r * ops.global_avg_pool2d(z))), x, dx, rng, eps=1e-2)


# ---------------------------------------------------------------------------------------------
# Parity with PyTorch (NCHW there; padding must be symmetric, so "same" only for odd pools at
# stride 1, where TensorFlow's split is symmetric too).
# ---------------------------------------------------------------------------------------------

TORCH_CASES = [((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "valid"), ((3, 2), (1, 2), "valid"),
               ((3, 3), (1, 1), "same"), ((5, 3), (1, 1), "same")]


@pytest.mark.parametrize("pool,strides,padding", TORCH_CASES)
def test_pooling_matches_torch(rng, pool, strides, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((3, 12, 11, 10)).astype(np.float32)
    pad = (pool[0] // 2, pool[1] // 2) if padding == "same" else (0, 0)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    to_nhwc = lambda t: t.detach().numpy().transpose(0, 2, 3, 1)  # noqa: E731

    yt = F.max_pool2d(xt, pool, strides, pad)
    y, am = ops.max_pool2d(x, pool, strides, padding, return_argmax=True)
    np.testing.assert_array_equal(y, to_nhwc(yt))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(ops.max_pool2d_backward(dy, am, x.shape, pool, strides, padding),
                               to_nhwc(xt.grad), rtol=1e-6, atol=1e-6)

    xt.grad = None
    yt = F.avg_pool2d(xt, pool, strides, pad, count_include_pad=False)
    np.testing.assert_allclose(ops.avg_pool2d(x, pool, strides, padding), to_nhwc(yt), rtol=1e-5, atol=1e-6)
    yt.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(ops.avg_pool2d_backward(dy, x.shape, pool, strides, padding),
                               to_nhwc(xt.grad), rtol=1e-5, atol=1e-6)


def test_global_pooling_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 6, 5, 7)).astype(np.float32)
    xt = torch.from_numpy(x)
    np.testing.assert_array_equal(ops.global_max_pool2d(x), xt.amax(dim=(1, 2)).numpy())
    np.testing.assert_allclose(ops.global_avg_pool2d(x), xt.mean(dim=(1, 2)).numpy(), rtol=1e-6, atol=1e-7)


def _load_idx_images(path, count):
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
        data = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8)
    return data.reshape(count, rows, cols, 1)


def test_mnist_images_match_reference():
    root = shared_data_dir()
    if root is None:
        pytest.skip("MNIST not available (set CNNFAST_DATA)")
    x = _load_idx_images(root / "mnist" / "t10k-images-idx3-ubyte.gz", 32)  # uint8 input, converted
    y, am = ops.max_pool2d(x, 2, return_argmax=True)
    y_ref, _ = ref.max_pool2d(x, (2, 2), (2, 2), "valid")
    np.testing.assert_array_equal(y, y_ref)  # MNIST has many ties (zeros): values still agree
    np.testing.assert_allclose(ops.avg_pool2d(x / 255.0, 3, 2, "same"),
                               ref.avg_pool2d(x / 255.0, (3, 3), (2, 2), "same"), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Shapes, conversions, zero sizes and bad input
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,pool,strides,padding,expected", [
    ((None, 28, 28, 1), 2, None, "valid", (None, 14, 14, 1)),
    ((8, 27, 27, 3), (2, 2), None, "valid", (8, 13, 13, 3)),
    ((8, 27, 27, 3), (2, 2), None, "same", (8, 14, 14, 3)),
    ((1, 10, 7, 2), (3, 2), (2, 3), "valid", (1, 4, 2, 2)),
    ((1, 10, 7, 2), (3, 2), (2, 3), "SAME", (1, 5, 3, 2)),
    ((1, None, 7, 2), 3, 1, "valid", (1, None, 5, 2)),
    ((1, 0, 0, 2), 2, None, "same", (1, 0, 0, 2)),
])
def test_output_shape(shape, pool, strides, padding, expected):
    assert ops.pool2d_output_shape(shape, pool, strides, padding) == expected
    if None not in shape:
        assert ops.max_pool2d(np.zeros(shape), pool, strides, padding).shape == expected
        assert ops.avg_pool2d(np.zeros(shape), pool, strides, padding).shape == expected


def test_converts_inputs_and_accepts_views(rng):
    x64 = rng.standard_normal((2, 6, 8, 5))
    view = np.transpose(rng.standard_normal((2, 5, 6, 8)), (0, 2, 3, 1))  # non-contiguous NHWC view
    for x in (x64, view, x64.tolist()):
        y = ops.max_pool2d(x, 2)
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, ref.max_pool2d(np.asarray(x, np.float32), (2, 2), (2, 2), "valid")[0])
    ro = rng.standard_normal((1, 4, 4, 2)).astype(np.float32)
    ro.flags.writeable = False
    ops.avg_pool2d(ro, 2)
    y, am = ops.max_pool2d(ro, 2, return_argmax=True)
    ops.max_pool2d_backward(y, am.astype(np.int64), ro.shape, 2)  # other index dtypes are converted


@pytest.mark.parametrize("shape", [(0, 4, 4, 3), (2, 4, 4, 0)])
def test_zero_sizes(shape):
    x = np.zeros(shape, dtype=np.float32)
    y, am = ops.max_pool2d(x, 2, return_argmax=True)
    out = (shape[0], 2, 2, shape[3])
    assert y.shape == am.shape == out
    assert ops.max_pool2d_backward(y, am, shape, 2).shape == shape
    assert ops.avg_pool2d(x, 2).shape == out
    assert ops.avg_pool2d_backward(y, shape, 2).shape == shape
    g, gam = ops.global_max_pool2d(x, return_argmax=True)
    assert g.shape == gam.shape == (shape[0], shape[3])
    assert ops.global_max_pool2d_backward(g, gam, shape).shape == shape
    assert ops.global_avg_pool2d(x).shape == (shape[0], shape[3])
    assert ops.global_avg_pool2d_backward(g, shape).shape == shape


def test_empty_image_with_same_padding():
    x = np.zeros((2, 0, 5, 3), dtype=np.float32)
    y, am = ops.max_pool2d(x, 2, padding="same", return_argmax=True)
    assert y.shape == (2, 0, 3, 3)
    assert ops.max_pool2d_backward(y, am, x.shape, 2, padding="same").shape == x.shape
    with pytest.raises(ValueError, match="global_avg_pool2d: cannot pool over an empty image"):
        ops.global_avg_pool2d(x)
    with pytest.raises(ValueError, match="global_max_pool2d"):
        ops.global_max_pool2d(x)


def test_bad_arguments(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="max_pool2d: x must be 4-D"):
        ops.max_pool2d(x[0])
    with pytest.raises(TypeError, match="max_pool2d: x must be a real numeric array"):
        ops.max_pool2d(x.astype(np.complex64))
    with pytest.raises(TypeError, match="avg_pool2d: x must be a real numeric array"):
        ops.avg_pool2d(x > 0)
    with pytest.raises(ValueError, match="pool_size must be >= 1"):
        ops.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="pool_size must be an int or a pair"):
        ops.max_pool2d(x, (2, 2, 2))
    with pytest.raises(TypeError, match="pool_size must be an integer"):
        ops.max_pool2d(x, 2.5)
    with pytest.raises(ValueError, match="strides must be >= 1"):
        ops.avg_pool2d(x, 2, (0, 1))
    with pytest.raises(ValueError, match="padding must be one of"):
        ops.max_pool2d(x, 2, padding="full")
    with pytest.raises(ValueError, match="max_pool2d: pool_size 7 does not fit the input height 6"):
        ops.max_pool2d(x, 7)
    with pytest.raises(ValueError, match="input_shape must have 4 entries"):
        ops.pool2d_output_shape((6, 6, 3))


def test_bad_backward_arguments(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    y, am = ops.max_pool2d(x, 2, return_argmax=True)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: dy must have shape \(2, 3, 3, 3\)"):
        ops.max_pool2d_backward(y[:, :2], am, x.shape, 2)
    with pytest.raises(ValueError, match="max_pool2d_backward: argmax must have shape"):
        ops.max_pool2d_backward(y, am[:1], x.shape, 2)
    with pytest.raises(TypeError, match="max_pool2d_backward: argmax must be the integer array"):
        ops.max_pool2d_backward(y, am.astype(np.float32), x.shape, 2)
    with pytest.raises(ValueError, match="uint8 argmax cannot index a window of 289 cells"):
        ops.max_pool2d_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.uint8), (1, 17, 17, 1), 17)
    with pytest.raises(ValueError, match="avg_pool2d_backward: dy must have shape"):
        ops.avg_pool2d_backward(y, (2, 8, 6, 3), 2)
    with pytest.raises(ValueError, match="input_shape must be >= 0"):
        ops.avg_pool2d_backward(y, (2, -6, 6, 3), 2)
    g, gam = ops.global_max_pool2d(x, return_argmax=True)
    with pytest.raises(ValueError, match=r"argmax values must lie in \[0, 36\)"):
        ops.global_max_pool2d_backward(g, gam + 36, x.shape)
    with pytest.raises(ValueError, match="global_avg_pool2d_backward: dy must have shape"):
        ops.global_avg_pool2d_backward(g[:, :2], x.shape)
    with pytest.raises(TypeError, match="global_max_pool2d_backward: argmax must be the integer array"):
        ops.global_max_pool2d_backward(g, g, x.shape)

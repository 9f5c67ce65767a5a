"""cnnfast.ops.correlate2d / convolve2d: the textbook single-image operations, against SciPy
(signal.correlate2d / convolve2d with the zero boundary, ndimage.convolve), a float64 loop
reference, every ISA path and 1/2 threads, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import ops
from reference import conv as ref

signal = pytest.importorskip("scipy.signal")
ndimage = pytest.importorskip("scipy.ndimage")

SHAPES = [  # (image, kernel): odd and even kernels, kernels larger than the image, primes
    ((6, 6), (3, 3)), ((7, 5), (2, 2)), ((9, 11), (4, 3)), ((5, 8), (3, 4)), ((13, 17), (5, 5)),
    ((1, 1), (1, 1)), ((1, 9), (1, 3)), ((8, 1), (3, 1)), ((4, 4), (6, 6)), ((3, 7), (5, 9)),
    ((31, 29), (7, 6)), ((2, 3), (2, 3)),
]


def ids(v):
    return f"{v[0][0]}x{v[0][1]}-k{v[1][0]}x{v[1][1]}"


def assert_close(ours, theirs):
    theirs = np.asarray(theirs, np.float64)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    scale = (np.abs(theirs).max() if theirs.size else 0.0) + 1.0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * scale)


def can_valid(a, k):
    return all(x >= y for x, y in zip(a, k)) or all(y >= x for x, y in zip(a, k))


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
@pytest.mark.parametrize("shapes", SHAPES, ids=ids)
def test_matches_scipy(shapes, mode, isa, rng):
    image = rng.standard_normal(shapes[0])
    kernel = rng.standard_normal(shapes[1])
    if mode == "valid" and not can_valid(image.shape, kernel.shape):
        pytest.skip("SciPy refuses this combination (tested below)")
    assert_close(ops.correlate2d(image, kernel, mode), signal.correlate2d(image, kernel, mode))
    assert_close(ops.convolve2d(image, kernel, mode), signal.convolve2d(image, kernel, mode))


@pytest.mark.parametrize("shapes", SHAPES, ids=ids)
def test_matches_loop_reference(shapes, rng):
    """SciPy's 'same' centring: correlation pads (k-1)//2 above/left, convolution k//2."""
    image = rng.standard_normal(shapes[0])
    kernel = rng.standard_normal(shapes[1])
    kh, kw = kernel.shape
    full = (image.shape[0] + kh - 1, image.shape[1] + kw - 1)
    assert_close(ops.correlate2d(image, kernel, "full"), ref.correlate2d(image, kernel, (kh - 1, kw - 1), full))
    assert_close(ops.correlate2d(image, kernel, "same"),
                 ref.correlate2d(image, kernel, ((kh - 1) // 2, (kw - 1) // 2), image.shape))
    assert_close(ops.convolve2d(image, kernel, "same"),
                 ref.correlate2d(image, kernel[::-1, ::-1], (kh // 2, kw // 2), image.shape))


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_convolve_same_equals_ndimage_for_odd_kernels(k, rng):
    image = rng.standard_normal((12, 15))
    kernel = rng.standard_normal((k, k))
    assert_close(ops.convolve2d(image, kernel, mode="same"), ndimage.convolve(image, kernel, mode="constant"))
    kernel = rng.standard_normal((k, 3))
    assert_close(ops.convolve2d(image, kernel, mode="same"), ndimage.convolve(image, kernel, mode="constant"))


def test_tutorial_edge_detector():
    """The 6x6 image with a vertical edge and the 3x3 edge kernel from CNN tutorials."""
    image = np.array([[10, 10, 10, 0, 0, 0]] * 6)
    kernel = np.array([[1, 0, -1]] * 3)
    out = ops.correlate2d(image, kernel)
    assert out.shape == (4, 4)
    assert np.array_equal(out, np.tile([0.0, 30.0, 30.0, 0.0], (4, 1)))
    assert np.array_equal(ops.convolve2d(image, kernel), -out)  # the flip negates this kernel
    assert np.array_equal(out, signal.correlate2d(image, kernel, "valid"))


def test_docstring_examples():
    import doctest
    from cnnfast.ops import _conv
    for fn in (_conv.correlate2d, _conv.convolve2d, _conv.conv2d, _conv.conv2d_output_shape):
        finder = doctest.DocTestFinder()
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        for test in finder.find(fn, globs={"np": np}):
            runner.run(test)
        assert runner.failures == 0, fn.__name__
        assert runner.tries > 0, fn.__name__


def test_large_image_uses_threads_deterministically(threads, rng):
    image = rng.standard_normal((301, 257)).astype(np.float32)
    kernel = rng.standard_normal((5, 4)).astype(np.float32)
    first = ops.correlate2d(image, kernel, "same")
    assert_close(first, signal.correlate2d(image.astype(np.float64), kernel.astype(np.float64), "same"))
    assert np.array_equal(first, ops.correlate2d(image, kernel, "same"))


def test_valid_swaps_when_kernel_is_larger(rng):
    image = rng.standard_normal((3, 4))
    kernel = rng.standard_normal((5, 6))
    assert_close(ops.correlate2d(image, kernel), signal.correlate2d(image, kernel, "valid"))
    assert_close(ops.convolve2d(image, kernel), signal.convolve2d(image, kernel, "valid"))


def test_accepts_ints_lists_and_views(rng):
    image = rng.integers(0, 255, (9, 10)).astype(np.uint8)
    kernel = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert_close(ops.correlate2d(image, kernel, "same"), signal.correlate2d(image.astype(float), kernel, "same"))
    view = rng.standard_normal((20, 20))[::2, 1::3]
    assert_close(ops.convolve2d(view, kernel), signal.convolve2d(view, kernel, "valid"))
    assert_close(ops.convolve2d(view, kernel, "full"), signal.convolve2d(view, kernel))


def test_every_isa_gives_close_results(rng):
    image = rng.standard_normal((40, 37)).astype(np.float32)
    kernel = rng.standard_normal((3, 5)).astype(np.float32)
    results = []
    for name in cnnfast.available_isas():
        with cnnfast.use_isa(name):
            results.append(ops.correlate2d(image, kernel, "full"))
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-5, atol=1e-5)


def test_zero_sizes():
    assert ops.correlate2d(np.zeros((0, 5)), np.ones((2, 2)), "same").shape == (0, 5)
    out = ops.correlate2d(np.zeros((0, 5)), np.ones((2, 2)), "full")
    assert out.shape == signal.correlate2d(np.zeros((0, 5)), np.ones((2, 2)), "full").shape
    assert not out.any()
    out = ops.convolve2d(np.ones((5, 5)), np.zeros((0, 2)), "valid")
    assert out.shape == signal.convolve2d(np.ones((5, 5)), np.zeros((0, 2)), "valid").shape
    assert not out.any()


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: ops.correlate2d(np.ones((3, 3, 1)), np.ones((2, 2))), ValueError, r"correlate2d: image must be 2-D"),
    (lambda: ops.correlate2d(np.ones((3, 3)), np.ones(2)), ValueError, r"correlate2d: kernel must be 2-D"),
    (lambda: ops.convolve2d(np.ones((3, 3)) + 1j, np.ones((2, 2))), TypeError, r"convolve2d: image must be a real"),
    (lambda: ops.convolve2d(np.ones((3, 3)), np.array([["a"]])), TypeError, r"convolve2d: kernel must be a real"),
    (lambda: ops.correlate2d(np.ones((3, 3)), np.ones((2, 2)), "circular"), ValueError, r"correlate2d: mode must be one of"),
    (lambda: ops.correlate2d(np.ones((3, 6)), np.ones((4, 2))), ValueError, r"correlate2d: for mode='valid' one of image and kernel"),
    (lambda: ops.convolve2d(np.ones((3, 6)), np.ones((4, 2))), ValueError, r"convolve2d: for mode='valid'"),
])
def test_bad_input(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()

"""cnnfast.ops.matmul and the GEMM engine (csrc/gemm) against float64 NumPy references.

Every numerical test runs on each ISA path the CPU has and on 1 and 2 threads. Shapes cover the
micro-tile edges of every path (MR x NR = 4x16, 6x16, 14x32), the packed and the in-place
(small-shape) paths, several K slices, primes, K = 1 and 9, and the CNN shapes scaled down.
"""
from __future__ import annotations

import itertools
import pathlib
import platform

import numpy as np
import pytest

import cnnfast
from cnnfast import _kernels
from cnnfast.ops import matmul

from reference.gemm import matmul_error_bound, matmul_ref, pack_ref

# (M, K, N). Tile edges: 13/14/15, 31/32/33, and edge tiles of every row count 1..13 (the AVX-512
# kernel has a copy per even row count); in-place A/B below 256, packed above; K slices of
# 256/384 with remainders; narrow B (packed once) with several K slices, K = 1024 (A's rows 4 KiB
# apart: always packed); the conv shapes (43264x9x32, 36864x288x32, 7744x288x64) scaled down.
SHAPES = [
    (1, 1, 1), (1, 7, 1), (2, 3, 5), (7, 1, 9), (13, 9, 31), (14, 16, 32), (15, 17, 33),
    (6, 5, 16), (29, 37, 41), (64, 128, 10), (64, 576, 64), (64, 1600, 128), (97, 389, 67),
    (300, 40, 300), (257, 257, 257), (515, 33, 7), (3, 515, 2), (1, 515, 515), (515, 1, 515),
    (4327, 9, 32), (1153, 288, 32), (775, 288, 64), (19, 1031, 23), (10, 20, 33), (23, 300, 48),
    (9, 64, 17), (300, 900, 40), (50, 1024, 40),
]
BIG_SHAPES = [(515, 515, 515), (128, 1100, 300)]


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def operands(rng, M, K, N, trans_a=False, trans_b=False):
    a = rand(rng, K, M) if trans_a else rand(rng, M, K)
    b = rand(rng, N, K) if trans_b else rand(rng, K, N)
    return a, b


def assert_matches(got, a, b, **kw):
    """got == matmul_ref(a, b, **kw) within the float32 rounding bound."""
    ref = matmul_ref(a, b, **kw)
    kw.pop("activation", None)
    bound = matmul_error_bound(a, b, **kw)
    assert got.dtype == np.float32 and got.shape == ref.shape
    err = np.abs(got.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (f"error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}: "
                                  f"got {got[worst]!r}, want {ref[worst]!r}")


# ----------------------------------------------------------------------------- correctness

@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(isa, threads, rng, shape):
    M, K, N = shape
    a, b = operands(rng, M, K, N)
    assert_matches(matmul(a, b), a, b)


@pytest.mark.parametrize("shape", BIG_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_large_with_every_transpose(isa, threads, rng, shape):
    M, K, N = shape
    bias = rand(rng, N)
    for ta, tb in itertools.product((False, True), repeat=2):
        a, b = operands(rng, M, K, N, ta, tb)
        got = matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu")
        assert_matches(got, a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu")


@pytest.mark.parametrize("shape", [(5, 3, 4), (14, 9, 32), (29, 70, 45), (300, 20, 270)],
                         ids=lambda s: "x".join(map(str, s)))
def test_every_flag_combination(isa, threads, rng, shape):
    """trans_a x trans_b x bias x relu x accumulate, all 32 combinations."""
    M, K, N = shape
    for ta, tb, use_bias, relu, acc in itertools.product((False, True), repeat=5):
        a, b = operands(rng, M, K, N, ta, tb)
        bias = rand(rng, N) if use_bias else None
        act = "relu" if relu else None
        c0 = rand(rng, M, N)
        out = c0.copy() if acc else None
        got = matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, activation=act, out=out,
                     accumulate=acc)
        if acc:
            assert got is out
        assert_matches(got, a, b, trans_a=ta, trans_b=tb, bias=bias, activation=act,
                       c=c0 if acc else None, beta=1.0 if acc else 0.0)


@pytest.mark.parametrize("alpha,beta", [(1.0, 0.0), (0.5, 0.0), (-2.0, 1.0), (1.0, 0.25),
                                        (3.0, -1.5), (0.0, 0.5), (0.0, 0.0)])
def test_alpha_beta_through_the_c_entry_point(isa, threads, rng, alpha, beta):
    for (M, K, N), ta, tb in itertools.product([(17, 23, 35), (310, 50, 290)], (False, True),
                                               (False, True)):
        a, b = operands(rng, M, K, N, ta, tb)
        bias = rand(rng, N)
        c0 = rand(rng, M, N)
        if beta == 0.0:
            c0[0, 0] = np.nan  # beta == 0: C is write-only, a NaN there must not leak
        c = c0.copy()
        _kernels.sgemm(ta, tb, alpha, a, b, beta, c, bias, True)
        assert_matches(c, a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu",
                       c=c0, alpha=alpha, beta=beta)


def test_packed_extended_entry_point(isa, threads, rng):
    """cf_sgemm_ex with the built-in packer on arbitrary strides (the path custom packers use)."""
    for M, K, N in [(1, 1, 1), (15, 9, 33), (70, 300, 45), (300, 400, 290), (40, 900, 20)]:
        # P_A(i, k) = a[i*sx + k*sk] with neither stride 1 (the packer's scalar gather path),
        # P_B as B (k-contiguous) or as B^T.
        a = rand(rng, M * K * 3 + 5)
        A = np.array([[a[i * 3 * K + k * 3] for k in range(K)] for i in range(M)])
        for b_layout in ("kn", "nk"):
            if b_layout == "kn":
                B = rand(rng, K, N)
                flat, sx, sk = B.ravel(), 1, N
            else:
                Bt = rand(rng, N, K)
                B = Bt.T
                flat, sx, sk = Bt.ravel(), K, 1
            bias = rand(rng, N)
            c0 = rand(rng, M, N)
            c = c0.copy()
            _kernels.sgemm_ex_strided(a, 3 * K, 3, flat, sx, sk, K, 0.75, 1.0, c, bias, False)
            assert_matches(c, A, B, bias=bias, c=c0, alpha=0.75, beta=1.0)


@pytest.mark.parametrize("r", [4, 6, 14, 16, 32])
def test_packer_layout(rng, r):
    data = rand(rng, 2000)
    for stride_x, stride_k, x0, k0, nx, nk in [(40, 1, 3, 2, 17, 33), (1, 45, 2, 1, 30, 20),
                                               (7, 3, 0, 0, r, 5), (50, 1, 1, 0, 1, 1)]:
        got = _kernels.pack_strided(data, stride_x, stride_k, x0, k0, nx, nk, r)
        np.testing.assert_array_equal(got, pack_ref(data, stride_x, stride_k, x0, k0, nx, nk, r))


def test_conv_shape_full_size(rng):
    """The first conv layer of the MNIST model at batch 64, full size, on the default path."""
    a, b = operands(rng, 43264, 9, 32)
    bias = rand(rng, 32)
    assert_matches(matmul(a, b, bias=bias, activation="relu"), a, b, bias=bias, activation="relu")


def test_dense_layer_calls_match_torch(rng):
    """Forward, dW and dx of a dense layer vs PyTorch autograd (the way layers call matmul)."""
    torch = pytest.importorskip("torch")
    x, w, bias, dy = rand(rng, 64, 200), rand(rng, 200, 48), rand(rng, 48), rand(rng, 64, 48)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = torch.relu(xt @ wt + torch.tensor(bias, dtype=torch.float64))
    yt.backward(torch.tensor(dy, dtype=torch.float64))
    y = matmul(x, w, bias=bias, activation="relu")
    dz = np.where(y > 0, dy, 0).astype(np.float32)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(matmul(x, dz, trans_a=True), wt.grad.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(matmul(dz, w, trans_b=True), xt.grad.numpy(), rtol=1e-5, atol=1e-4)


def test_matches_torch_matmul(isa, rng):
    torch = pytest.importorskip("torch")
    for M, K, N in [(64, 576, 64), (300, 33, 129)]:
        a, b = operands(rng, M, K, N)
        want = torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy()
        np.testing.assert_allclose(matmul(a, b), want, rtol=1e-4, atol=1e-4 * np.sqrt(K))


def test_gradients_by_finite_differences(rng):
    """The dense-layer backward calls give the derivative of L = sum(G * (x @ W + b))."""
    x, w, bias, g = rand(rng, 6, 5), rand(rng, 5, 4), rand(rng, 4), rand(rng, 6, 4)

    def loss(x_, w_, b_):
        return float(np.sum(g.astype(np.float64) * matmul(x_, w_, bias=b_)))

    dw, dx = matmul(x, g, trans_a=True), matmul(g, w, trans_b=True)
    db = g.sum(axis=0)
    eps = 1e-2
    for arr, grad, which in ((x, dx, 0), (w, dw, 1), (bias, db, 2)):
        for idx in np.ndindex(arr.shape):
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = [x, w, bias]
            args_m = [x, w, bias]
            args_p[which], args_m[which] = plus, minus
            fd = (loss(*args_p) - loss(*args_m)) / (2 * eps)
            assert abs(fd - grad[idx]) <= 2e-3 * (1 + abs(fd)), (which, idx, fd, grad[idx])


def test_random_shapes_and_flags_property(isa):
    """Hypothesis: any small shape and flag combination matches the reference."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
    @hypothesis.given(M=st.integers(0, 40), K=st.integers(0, 40), N=st.integers(0, 70),
                      ta=st.booleans(), tb=st.booleans(), use_bias=st.booleans(),
                      relu=st.booleans(), acc=st.booleans(), seed=st.integers(0, 2**16))
    def check(M, K, N, ta, tb, use_bias, relu, acc, seed):
        rng = np.random.default_rng(seed)
        a, b = operands(rng, M, K, N, ta, tb)
        bias = rand(rng, N) if use_bias else None
        act = "relu" if relu else None
        c0 = rand(rng, M, N)
        out = c0.copy() if acc else None
        got = matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, activation=act, out=out,
                     accumulate=acc)
        assert_matches(got, a, b, trans_a=ta, trans_b=tb, bias=bias, activation=act,
                       c=c0 if acc else None, beta=1.0 if acc else 0.0)

    check()


# ----------------------------------------------------------------------------- determinism

def test_bit_identical_across_runs_and_thread_counts(isa, rng):
    for M, K, N in [(515, 700, 300), (4327, 288, 64), (64, 1600, 128)]:
        a, b = operands(rng, M, K, N)
        bias = rand(rng, N)
        results = []
        previous = cnnfast.get_num_threads()
        try:
            for nt in (1, 2, 2, 1):
                cnnfast.set_num_threads(nt)
                results.append(matmul(a, b, bias=bias, activation="relu"))
        finally:
            cnnfast.set_num_threads(previous)
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])


def test_result_does_not_depend_on_tiling(isa, rng):
    """An element depends only on its row of A, its column of B and K, not on where the tile and
    thread boundaries fall: sub-blocks computed alone are bit-identical to the full result."""
    M, K, N = 301, 700, 290
    a, b = operands(rng, M, K, N)
    bias = rand(rng, N)
    full = matmul(a, b, bias=bias, activation="relu")
    for r0, r1, c0, c1 in [(0, 13, 0, 290), (5, 66, 7, 40), (287, 301, 250, 290), (100, 101, 3, 4)]:
        part = matmul(a[r0:r1], b[:, c0:c1], bias=bias[c0:c1], activation="relu")
        np.testing.assert_array_equal(part, full[r0:r1, c0:c1])


# ----------------------------------------------------------------------------- special values

def test_nan_and_inf_propagate(isa):
    a = np.ones((20, 40), np.float32)
    b = np.ones((40, 35), np.float32)
    a[3, 5] = np.nan
    b[7, 30] = np.inf
    y = matmul(a, b, activation="relu")
    assert np.all(np.isnan(y[3]))
    assert np.all(np.isposinf(np.delete(y[:, 30], 3)))
    finite = np.delete(np.delete(y, 3, axis=0), 30, axis=1)
    np.testing.assert_array_equal(finite, 40.0)


def test_relu_clamps_negatives_only(isa, rng):
    a, b = operands(rng, 33, 20, 47)
    y = matmul(a, b, activation="relu")
    lin = matmul(a, b, activation="linear")
    np.testing.assert_array_equal(y, np.maximum(lin, 0))
    assert (lin < 0).any() and (y == 0).any()


@pytest.mark.parametrize("M,K,N", [(33, 20, 47), (1, 300, 96), (14, 64, 32), (6, 9, 16), (64, 576, 64), (3, 7, 5)])
def test_relu6_clamps_both_ends_and_keeps_nan(isa, threads, rng, M, K, N):
    """Every epilogue (full tiles, edges, the matrix-vector path for M = 1, the threaded path)
    gives exactly min(max(linear, 0), 6)."""
    a, b = operands(rng, M, K, N)
    a *= 3
    bias = rng.standard_normal(N).astype(np.float32)
    lin = matmul(a, b, bias=bias)
    y = matmul(a, b, bias=bias, activation="relu6")
    np.testing.assert_array_equal(y, np.minimum(np.maximum(lin, 0), 6))
    assert (lin > 6).any() and (lin < 0).any()
    a[0, 0] = np.nan
    assert np.isnan(matmul(a, b, bias=bias, activation="relu6")[0]).all()
    assert np.array_equal(matmul(np.empty((2, 0), np.float32), np.empty((0, 3), np.float32),
                                 bias=np.array([-1, 3, 9], np.float32), activation="relu6"),
                          np.tile(np.array([0, 3, 6], np.float32), (2, 1)))


# ----------------------------------------------------------------------------- sizes

def test_k_zero_gives_bias_and_activation(isa):
    a = np.empty((4, 0), np.float32)
    b = np.empty((0, 3), np.float32)
    bias = np.array([-1.0, 0.0, 2.0], np.float32)
    np.testing.assert_array_equal(matmul(a, b), np.zeros((4, 3), np.float32))
    np.testing.assert_array_equal(matmul(a, b, bias=bias), np.tile(bias, (4, 1)))
    np.testing.assert_array_equal(matmul(a, b, bias=bias, activation="relu"),
                                  np.tile(np.maximum(bias, 0), (4, 1)))
    out = np.full((4, 3), 5.0, np.float32)
    matmul(a, b, bias=bias, out=out, accumulate=True)
    np.testing.assert_array_equal(out, 5.0 + np.tile(bias, (4, 1)))


@pytest.mark.parametrize("M,K,N", [(0, 5, 3), (4, 5, 0), (0, 0, 0), (0, 3, 0)])
def test_empty_results(M, K, N):
    y = matmul(np.ones((M, K), np.float32), np.ones((K, N), np.float32))
    assert y.shape == (M, N) and y.dtype == np.float32
    out = np.empty((M, N), np.float32)
    assert matmul(np.ones((M, K)), np.ones((K, N)), out=out, accumulate=True) is out


# ----------------------------------------------------------------------------- input handling

def test_other_dtypes_and_layouts_are_converted(rng):
    a64 = rng.standard_normal((30, 20))
    b_int = rng.integers(-3, 4, size=(20, 10))
    assert_matches(matmul(a64, b_int), a64.astype(np.float32), b_int)
    # non-contiguous slices and Fortran-ordered arrays (transposed views, read in place)
    big = rand(rng, 60, 50)
    a_view = big[::2, 1:21]
    b_f = np.asfortranarray(rand(rng, 20, 10))
    assert_matches(matmul(a_view, b_f), np.ascontiguousarray(a_view), b_f)
    x = rand(rng, 40, 30)
    assert_matches(matmul(x.T, x), x.T.copy(), x)
    assert_matches(matmul(x.T, x.T, trans_b=True), x.T.copy(), x.T.copy(), trans_b=True)
    assert_matches(matmul(x, x.T, trans_a=True, trans_b=True), x, x.T.copy(), trans_a=True,
                   trans_b=True)
    # lists and read-only inputs are fine
    ro = rand(rng, 30, 10)
    ro.flags.writeable = False
    assert_matches(matmul(x.tolist(), ro), x, ro)


def test_bad_dtype():
    good = np.ones((3, 3), np.float32)
    for bad in (np.ones((3, 3), bool), np.ones((3, 3), complex), np.array([["a"] * 3] * 3)):
        with pytest.raises(TypeError, match="matmul: a must be a real numeric array"):
            matmul(bad, good)
        with pytest.raises(TypeError, match="matmul: b must be a real numeric array"):
            matmul(good, bad)


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3), ()])
def test_bad_ndim(shape):
    with pytest.raises(ValueError, match=r"matmul: a must be 2-D"):
        matmul(np.ones(shape, np.float32), np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"matmul: b must be 2-D"):
        matmul(np.ones((3, 3), np.float32), np.ones(shape, np.float32))


def test_mismatched_inner_dimensions():
    a, b = np.ones((4, 5), np.float32), np.ones((6, 3), np.float32)
    with pytest.raises(ValueError, match=r"matmul: inner dimensions differ: a \(4, 5\) @ b \(6, 3\) needs 5 == 6"):
        matmul(a, b)
    with pytest.raises(ValueError, match=r"a.T with a \(4, 5\) @ b \(6, 3\) needs 4 == 6"):
        matmul(a, b, trans_a=True)
    with pytest.raises(ValueError, match=r"a \(4, 5\) @ b.T with b \(6, 3\) needs 5 == 3"):
        matmul(a, b, trans_b=True)
    with pytest.raises(ValueError, match=r"a \(4, 5\) @ b \(3, 6\) needs 5 == 3"):
        matmul(a, np.ones((6, 3), np.float32).T)  # a transposed view, described as passed


def test_bad_bias():
    a, b = np.ones((4, 5), np.float32), np.ones((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"matmul: bias must have shape \(3,\).*got \(4,\)"):
        matmul(a, b, bias=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"matmul: bias must be 1-D"):
        matmul(a, b, bias=np.ones((1, 3), np.float32))
    with pytest.raises(TypeError, match=r"matmul: bias must be a real numeric array"):
        matmul(a, b, bias=np.ones(3, complex))


def test_bad_out():
    a, b = np.ones((4, 5), np.float32), np.ones((5, 3), np.float32)
    with pytest.raises(TypeError, match=r"matmul: out must have dtype float32, got float64"):
        matmul(a, b, out=np.empty((4, 3)))
    with pytest.raises(ValueError, match=r"matmul: out must have shape \(4, 3\), got \(3, 4\)"):
        matmul(a, b, out=np.empty((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"matmul: out must be C-contiguous"):
        matmul(a, b, out=np.empty((3, 4), np.float32).T)
    with pytest.raises(ValueError, match=r"matmul: out must be C-contiguous"):
        matmul(a, b, out=np.empty((4, 6), np.float32)[:, ::2])
    ro = np.empty((4, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"matmul: out is read-only"):
        matmul(a, b, out=ro)
    with pytest.raises(TypeError, match=r"matmul: out must be a numpy.ndarray, got list"):
        matmul(a, b, out=[[0.0] * 3] * 4)


def test_out_overlapping_an_input_is_refused():
    square = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"matmul: out overlaps an input"):
        matmul(square, square, out=square)
    with pytest.raises(ValueError, match=r"matmul: out overlaps an input"):
        matmul(square, square, out=square, accumulate=True)
    out = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match=r"matmul: out overlaps an input"):
        matmul(square, square, bias=out[0], out=out)
    with pytest.raises(ValueError, match=r"matmul: out overlaps an input"):
        matmul(out.T, square, out=out)  # a transposed view is read in place, not copied


def test_accumulate_needs_out():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"matmul: accumulate=True adds into out, so out is required"):
        matmul(a, a, accumulate=True)


def test_bad_flags_and_activation():
    a = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"matmul: activation must be one of \['linear', 'relu', 'relu6'\], got 'tanh'"):
        matmul(a, a, activation="tanh")
    with pytest.raises(ValueError, match=r"matmul: activation must be one of"):
        matmul(a, a, activation=1)
    for name in ("trans_a", "trans_b", "accumulate"):
        with pytest.raises(TypeError, match=rf"matmul: {name} must be True or False, got 'yes'"):
            matmul(a, a, **{name: "yes"})
    np.testing.assert_array_equal(matmul(a, a, activation="ReLU"), 2.0)


# ----------------------------------------------------------------------------- engine info

def test_blocking_matches_the_isa(isa):
    blk = _kernels.sgemm_blocking()
    want = {"generic": (4, 16), "avx2": (6, 16), "avx512": (14, 32)}[isa]
    assert (blk["mr"], blk["nr"]) == want
    assert blk["kc"] > 0 and blk["mc"] % blk["mr"] == 0 and blk["nc"] % blk["nr"] == 0


@pytest.mark.parametrize("M,N", [(1, 200), (2, 64), (1, 65), (2, 1000)])
def test_few_rows_split_between_threads_bit_identical(isa, rng, M, N):
    """A batch-1 dense layer big enough to split (the session's parallel cut is 128 KiB): the
    columns are shared out on 64-column steps, so 2 threads give 1 thread's bits exactly."""
    K = 1600
    a, b = rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)
    bias = rng.standard_normal(N, dtype=np.float32)
    assert K * N * 4 >= _kernels.get_parallel_min_bytes()
    results = []
    previous = cnnfast.get_num_threads()
    try:
        for threads in (1, 2):
            cnnfast.set_num_threads(threads)
            results.append(matmul(a, b, bias=bias, activation="relu"))
    finally:
        cnnfast.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])
    want = np.maximum(a.astype(np.float64) @ b + bias, 0)
    np.testing.assert_allclose(results[1], want, rtol=1e-4, atol=1e-3)


def test_nc_follows_the_l2_cache(isa):
    """B's packed block takes a set share of one core's L2 (3/4 on AVX-512, 1/2 on AVX2)."""
    blk, l2 = _kernels.sgemm_blocking(), _kernels.cache_sizes()["l2"]
    if isa == "generic":
        return
    share = {"avx2": 0.5, "avx512": 0.75}[isa]
    want = int(l2 * share) // (blk["kc"] * 4) // blk["nr"] * blk["nr"]
    assert blk["nc"] == min(max(want, 8 * blk["nr"]), 64 * blk["nr"])


def test_cache_sizes_agree_with_the_kernel():
    """CPUID's sizes are what Linux reports in sysfs (when it does), else plausible stand-ins."""
    sizes = _kernels.cache_sizes()
    assert 16 << 10 <= sizes["l1d"] <= 1 << 20 and 128 << 10 <= sizes["l2"] <= 64 << 20
    assert sizes["l3"] >= sizes["l2"]
    sysfs = pathlib.Path("/sys/devices/system/cpu/cpu0/cache")
    if platform.machine() not in ("x86_64", "AMD64") or not sysfs.is_dir():
        return
    for index in sysfs.glob("index*"):
        kind, level = (index / "type").read_text().strip(), int((index / "level").read_text())
        text = (index / "size").read_text().strip()
        reported = int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20}[text[-1]]
        key = {(1, "Data"): "l1d", (2, "Unified"): "l2", (3, "Unified"): "l3"}.get((level, kind))
        if key:
            assert sizes[key] == reported, (key, sizes, text)


def test_fma_peak_probe(isa, threads):
    flops, seconds = _kernels.fma_peak(20000)
    lanes = {"generic": 12 * 2, "avx2": 12 * 8 * 2, "avx512": 24 * 16 * 2}[isa]
    assert flops == lanes * 20000 * threads
    assert seconds > 0
    with pytest.raises(ValueError, match="fma_peak"):
        _kernels.fma_peak(0)


@pytest.mark.parametrize("M", [1, 2, 3])
@pytest.mark.parametrize("K,N", [(1, 1), (576, 64), (64, 10), (300, 65), (2049, 130), (7, 15), (9, 17)])
def test_few_rows_every_epilogue(isa, threads, rng, M, K, N):
    """Batch-1/2 dense layers take the GEMV path (M <= 2, B untransposed): every column tail,
    transposed A, bias + ReLU, accumulate, and NaN kept through the ReLU."""
    bias = rand(rng, N)
    for ta, tb in itertools.product((False, True), repeat=2):
        a, b = operands(rng, M, K, N, ta, tb)
        got = matmul(a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu")
        assert_matches(got, a, b, trans_a=ta, trans_b=tb, bias=bias, activation="relu")
    a, b = operands(rng, M, K, N)
    out = rand(rng, M, N)
    expected = out.astype(np.float64) + matmul_ref(a, b)
    np.testing.assert_allclose(matmul(a, b, out=out, accumulate=True), expected, rtol=1e-4,
                               atol=1e-4 * np.sqrt(K))
    a[0, 0] = np.nan
    assert np.isnan(matmul(a, b, activation="relu")[0]).all()

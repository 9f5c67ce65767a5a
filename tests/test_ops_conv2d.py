"""cnnfast.ops conv2d / conv2d_backward / conv2d_output_shape / conv2d_transpose*: against the
float64 references in tests/reference/conv.py on many shapes, every ISA path and 1/2 threads,
against finite differences and PyTorch, and on bad input."""
from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest

import cnnfast
from cnnfast import ops
from cnnfast.ops import _conv
from conftest import shared_data_dir
from reference import conv as ref

RTOL = 2e-5


def close(actual, expected, rtol=RTOL, scale=None):
    """|a - e| <= rtol * (max|e| + 1): float32 sums of many terms against a float64 reference."""
    expected = np.asarray(expected, np.float64)
    scale = (np.abs(expected).max() if expected.size else 0.0) + 1.0 if scale is None else scale
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = np.abs(actual.astype(np.float64) - expected).max() if expected.size else 0.0
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:.1g} * {scale:.3g}"


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (N, H, W, C, kh, kw, Cout, strides, padding, dilation, groups)
CASES = [
    (2, 7, 9, 3, 3, 3, 5, (1, 1), "valid", (1, 1), 1),
    (1, 28, 28, 1, 3, 3, 32, (1, 1), "valid", (1, 1), 1),         # first layer, grey
    (2, 12, 11, 3, 3, 3, 32, (1, 1), "same", (1, 1), 1),          # first layer, RGB
    (3, 13, 13, 32, 3, 3, 64, (1, 1), "valid", (1, 1), 1),
    (2, 10, 10, 16, 3, 3, 16, (1, 1), "same", (1, 1), 1),
    (1, 9, 17, 5, 3, 3, 67, (1, 1), "same", (1, 1), 1),           # channel tail over several blocks
    (2, 11, 8, 17, 5, 5, 33, (2, 2), "same", (1, 1), 1),          # 'same' with stride: odd extra pad
    (2, 8, 8, 4, 2, 2, 6, (2, 2), "same", (1, 1), 1),             # even kernel
    (1, 9, 10, 4, 4, 2, 7, (3, 2), "same", (1, 1), 1),
    (2, 7, 7, 3, 3, 3, 4, (1, 1), "full", (1, 1), 1),
    (1, 10, 12, 6, 3, 3, 8, (1, 1), "valid", (2, 3), 1),          # dilation
    (1, 11, 11, 2, 3, 2, 5, (2, 1), "same", (2, 2), 1),           # dilation + stride + same
    (2, 9, 9, 3, 2, 2, 4, (4, 4), "valid", (1, 1), 1),            # stride > kernel
    (1, 13, 7, 5, 3, 3, 9, (1, 1), ((2, 0), (1, 3)), (1, 1), 1),  # explicit asymmetric padding
    (1, 6, 6, 3, 3, 3, 3, (1, 1), 4, (1, 1), 1),                   # int padding > kernel
    (2, 8, 9, 6, 3, 3, 10, (1, 1), "same", (1, 1), 2),            # groups
    (1, 7, 8, 12, 3, 3, 12, (2, 1), (1, 2), (1, 1), 3),           # groups, (ph, pw) padding
    (2, 9, 9, 8, 3, 3, 8, (1, 1), "same", (1, 1), 8),             # depthwise
    (1, 9, 8, 5, 3, 3, 15, (2, 2), "same", (1, 1), 5),            # depthwise, multiplier 3
    (1, 8, 8, 4, 5, 5, 64, (1, 1), "same", (1, 1), 4),            # grouped, 16 out per group
    (2, 7, 9, 16, 3, 3, 6, (1, 2), "same", (1, 1), 2),            # grouped, 3 out per group
    (1, 6, 6, 3, 3, 3, 60, (1, 1), "same", (1, 1), 3),            # depthwise, multiplier 20
    (1, 1, 1, 7, 1, 1, 3, (1, 1), "valid", (1, 1), 1),            # 1x1 image, 1x1 kernel
    (3, 5, 31, 2, 1, 3, 40, (1, 1), "valid", (1, 1), 1),          # wide rows: many tiles
    (1, 4, 4, 67, 3, 3, 1, (1, 1), "same", (1, 1), 1),            # many in, one out
]


def case_id(c):
    n, h, w, ci, kh, kw, co, s, p, d, g = c
    return f"{n}x{h}x{w}x{ci}-k{kh}x{kw}-o{co}-s{s[0]}{s[1]}-{p}-d{d[0]}{d[1]}-g{g}".replace(" ", "")


def make_case(rng, c):
    n, h, w, ci, kh, kw, co, s, p, d, g = c
    x = rand(rng, n, h, w, ci)
    wt = rand(rng, kh, kw, ci // g, co)
    b = rand(rng, co)
    pads = ref.pads_for(p, x.shape, wt.shape, s, d)
    return x, wt, b, s, p, d, g, pads


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_reference(case, isa, threads, rng):
    x, w, b, s, p, d, g, pads = make_case(rng, case)
    expected = ref.conv2d(x, w, b, s, pads, d, g, relu=True)
    y = ops.conv2d(x, w, b, strides=s, padding=p, dilation=d, groups=g, activation="relu")
    assert y.dtype == np.float32 and y.flags.c_contiguous
    close(y, expected)
    expected = ref.conv2d(x, w, None, s, pads, d, g)
    close(ops.conv2d(x, w, strides=s, padding=p, dilation=d, groups=g), expected)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_backward_matches_reference(case, isa, threads, rng):
    x, w, _, s, p, d, g, pads = make_case(rng, case)
    y = ops.conv2d(x, w, strides=s, padding=p, dilation=d, groups=g)
    dy = rand(rng, *y.shape)
    edx, edw, edb = ref.conv2d_backward(dy, x, w, s, pads, d, g)
    dx, dw, db = ops.conv2d_backward(dy, x, w, strides=s, padding=p, dilation=d, groups=g)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


def test_reference_matches_naive_loops(rng):
    """The tap-loop reference agrees with seven nested scalar loops."""
    for c in CASES[:3] + CASES[6:9] + CASES[10:19]:
        n, h, w, ci, kh, kw, co, s, p, d, g = c
        x, wt, b, s, p, d, g, pads = make_case(rng, (1, min(h, 7), min(w, 7), ci, kh, kw, co, s,
                                                      p, d, g))
        if any(sz <= 0 for sz in ref.conv2d(x, wt, b, s, pads, d, g).shape):
            continue
        np.testing.assert_allclose(ref.conv2d(x, wt, b, s, pads, d, g),
                                   ref.conv2d_naive(x, wt, b, s, pads, d, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cout", [1, 2, 7, 8, 15, 16, 17, 24, 31, 32, 33, 47, 48, 63, 64, 65, 67])
def test_every_output_channel_count(cout, isa, rng):
    """Block widths 1, 2 and 4 vectors and every channel tail, forward and backward."""
    x = rand(rng, 2, 6, 19, 5)
    w = rand(rng, 3, 3, 5, cout)
    b = rand(rng, cout)
    pads = ref.pads_for("same", x.shape, w.shape, (1, 1), (1, 1))
    close(ops.conv2d(x, w, b, padding="same"), ref.conv2d(x, w, b, (1, 1), pads))
    dy = rand(rng, 2, 6, 19, cout)
    dx, dw, db = ops.conv2d_backward(dy, x, w, padding="same")
    edx, edw, edb = ref.conv2d_backward(dy, x, w, (1, 1), pads)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


@pytest.mark.parametrize("cin", [1, 2, 3, 4, 5, 8, 13, 16, 17, 31, 32, 33, 64, 67])
def test_every_input_channel_count(cin, isa, rng):
    """Backward-filter row chunking across taps (small cin) and within taps; backward-data tails."""
    x = rand(rng, 2, 9, 8, cin)
    w = rand(rng, 3, 3, cin, 20)
    pads = ref.pads_for("valid", x.shape, w.shape, (1, 1), (1, 1))
    close(ops.conv2d(x, w), ref.conv2d(x, w, None, (1, 1), pads))
    dy = rand(rng, 2, 7, 6, 20)
    dx, dw, db = ops.conv2d_backward(dy, x, w)
    edx, edw, edb = ref.conv2d_backward(dy, x, w, (1, 1), pads)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


@pytest.mark.parametrize("cout", [1, 2, 3, 4])
@pytest.mark.parametrize("cin", [8, 17, 64])
def test_few_output_channels(cin, cout, isa, rng):
    """The vectors-along-channels tile: forward to 1-4 channels, backward-data to a 1-4 channel
    input, and a DCGAN-style Conv2DTranspose to an RGB image."""
    x, w, b = rand(rng, 2, 9, 12, cin), rand(rng, 3, 4, cin, cout), rand(rng, cout)
    pads = ref.pads_for("same", x.shape, w.shape, (2, 1), (1, 1))
    close(ops.conv2d(x, w, b, strides=(2, 1), padding="same", activation="relu"),
          ref.conv2d(x, w, b, (2, 1), pads, relu=True))
    x2, w2 = rand(rng, 2, 9, 12, cout), rand(rng, 3, 3, cout, cin)
    dy = rand(rng, 2, 7, 10, cin)
    dx, _, _ = ops.conv2d_backward(dy, x2, w2, need_bias_grad=False)
    close(dx, ref.conv2d_backward(dy, x2, w2)[0])
    xt, wt, bt = rand(rng, 2, 4, 5, cin), rand(rng, 5, 5, cout, cin), rand(rng, cout)
    close(ops.conv2d_transpose(xt, wt, bt, strides=2, padding="same"),
          ref.conv2d_transpose(xt, wt, bt, (2, 2), "same"))


@pytest.mark.parametrize("width", range(1, 33))
def test_every_row_width(width, rng):
    """Every register-tile height (balanced row tiles of 1..16 pixels) on every ISA path."""
    x = rand(rng, 1, 3, width + 2, 4)
    w = rand(rng, 3, 3, 4, 40)
    pads = ref.pads_for("same", x.shape, w.shape, (1, 1), (1, 1))
    expected = ref.conv2d(x, w, None, (1, 1), pads)
    dy = rand(rng, *expected.shape)
    edx, edw, _ = ref.conv2d_backward(dy, x, w, (1, 1), pads)
    for name in cnnfast.available_isas():
        with cnnfast.use_isa(name):
            close(ops.conv2d(x, w, padding="same"), expected)
            dx, dw, _ = ops.conv2d_backward(dy, x, w, padding="same", need_bias_grad=False)
            close(dx, edx)
            close(dw, edw)


@pytest.mark.parametrize("algo", ["igemm", "depthwise"])
@pytest.mark.parametrize("mult", [1, 2, 5])
def test_depthwise_both_algorithms(algo, mult, isa, threads, rng):
    c = 11
    x = rand(rng, 2, 10, 9, c)
    w = rand(rng, 3, 3, 1, c * mult)
    b = rand(rng, c * mult)
    pads = ref.pads_for("same", x.shape, w.shape, (2, 1), (1, 1))
    with _conv.force_algorithm(algo):
        y = ops.conv2d(x, w, b, strides=(2, 1), padding="same", groups=c, activation="relu")
        dy = rand(rng, *y.shape)
        dx, dw, db = ops.conv2d_backward(dy, x, w, strides=(2, 1), padding="same", groups=c)
    close(y, ref.conv2d(x, w, b, (2, 1), pads, (1, 1), c, relu=True))
    edx, edw, edb = ref.conv2d_backward(dy, x, w, (2, 1), pads, (1, 1), c)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


# Depthwise, multiplier 1 (the register-blocked kernel): (N, H, W, C, k, strides, dilation, padding)
# — images narrower than its 4-pixel step, borders on every side, channel tails of every vector
# width, 5x5 / 7x7 / 1x1 kernels, strides and dilation, more padding than the kernel.
DW1_CASES = [
    (1, 7, 7, 32, 3, 1, 1, "same"), (2, 9, 10, 17, 3, 2, 1, "same"), (1, 3, 2, 5, 3, 1, 1, "same"),
    (1, 6, 13, 35, 5, 1, 1, "same"), (1, 12, 12, 8, 7, 2, 1, ((3, 3), (3, 3))), (1, 5, 9, 64, 3, 1, 2, "same"),
    (2, 4, 4, 3, 1, 1, 1, "valid"), (1, 8, 9, 16, 3, 2, 1, ((1, 1), (1, 1))), (1, 2, 11, 1, 3, 1, 1, ((4, 0), (0, 5))),
    (1, 14, 14, 96, 3, 2, 1, ((0, 1), (0, 1))),
]


@pytest.mark.parametrize("case", DW1_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_depthwise_multiplier_one_matches_reference(case, isa, threads, rng):
    n, h, w, c, k, s, d, padding = case
    x, wt, b = rand(rng, n, h, w, c), rand(rng, k, k, 1, c), rand(rng, c)
    pads = ref.pads_for(padding, x.shape, wt.shape, (s, s), (d, d))
    y = ops.conv2d(x, wt, b, strides=s, dilation=d, padding=padding, groups=c, activation="relu")
    close(y, ref.conv2d(x, wt, b, (s, s), pads, (d, d), c, relu=True))
    close(ops.conv2d(x, wt, strides=s, dilation=d, padding=padding, groups=c),
          ref.conv2d(x, wt, None, (s, s), pads, (d, d), c))


# (N, H, W, C, Cout, padding): Winograd F(2x2, 3x3) shapes — odd/even outputs, 1x1 images, every
# padding (including more than the kernel, which gives backward-data a negative tile origin), and
# rows wide enough to be split into several tile blocks.
WINO_CASES = [
    (2, 8, 8, 16, 16, "valid"), (2, 9, 7, 17, 33, "same"), (1, 5, 6, 5, 7, "full"),
    (3, 26, 26, 32, 32, "valid"), (1, 13, 13, 32, 64, "valid"), (1, 1, 1, 16, 20, "same"),
    (1, 3, 3, 20, 16, "valid"), (2, 6, 11, 24, 67, ((0, 2), (1, 0))), (1, 4, 5, 64, 3, 3),
    (1, 10, 10, 1, 16, "same"), (1, 5, 203, 16, 24, "same"), (2, 3, 130, 20, 17, "valid"),
]


@pytest.mark.parametrize("case", WINO_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
@pytest.mark.parametrize("algo", ["winograd", "igemm"])
def test_winograd_and_igemm_match_reference(case, algo, isa, threads, rng):
    n, h, w, c, k, p = case
    x, wt, b = rand(rng, n, h, w, c), rand(rng, 3, 3, c, k), rand(rng, k)
    pads = ref.pads_for(p, x.shape, wt.shape, (1, 1), (1, 1))
    with _conv.force_algorithm(algo):
        y = ops.conv2d(x, wt, b, padding=p, activation="relu")
        dy = rand(rng, *y.shape)
        dx, dw, db = ops.conv2d_backward(dy, x, wt, padding=p)
    close(y, ref.conv2d(x, wt, b, (1, 1), pads, relu=True))
    edx, edw, edb = ref.conv2d_backward(dy, x, wt, (1, 1), pads)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


@pytest.mark.parametrize("kwargs", [dict(strides=2), dict(dilation=2), dict(groups=2)])
def test_forced_winograd_rejects_unsupported_shapes(kwargs, rng):
    x, w = rand(rng, 1, 9, 9, 4), rand(rng, 3, 3, 4 // kwargs.get("groups", 1), 4)
    with _conv.force_algorithm("winograd"), pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(x, w, **kwargs)
    with pytest.raises(ValueError, match="conv2d"), _conv.force_algorithm("winograd"):
        ops.conv2d(x, rand(rng, 5, 5, 4, 4))


# (N, H, W, C, Cout): pointwise shapes for the GEMM path — batch 1, a 7x7 map with many channels
# (MobileNetV2's last layers), no input channels, tails of every register tile.
POINTWISE_CASES = [(1, 7, 7, 320, 1280), (2, 5, 3, 7, 9), (1, 1, 1, 1, 1), (3, 11, 13, 33, 17), (1, 4, 4, 0, 5)]


@pytest.mark.parametrize("case", POINTWISE_CASES, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("algo", ["gemm", "igemm", "auto"])
def test_pointwise_gemm_and_igemm_match_reference(case, algo, isa, threads, rng):
    n, h, w, c, k = case
    x, wt, b = rand(rng, n, h, w, c), rand(rng, 1, 1, c, k), rand(rng, k)
    with _conv.force_algorithm(algo):
        y = ops.conv2d(x, wt, b, activation="relu")
        y_linear = ops.conv2d(x, wt)
        dy = rand(rng, *y.shape)
        dx, dw, db = ops.conv2d_backward(dy, x, wt)
    close(y, ref.conv2d(x, wt, b, (1, 1), ((0, 0), (0, 0)), relu=True))
    close(y_linear, ref.conv2d(x, wt, None, (1, 1), ((0, 0), (0, 0))))
    edx, edw, edb = ref.conv2d_backward(dy, x, wt, (1, 1), ((0, 0), (0, 0)))
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


def test_pointwise_transposed_convolution_runs_on_the_gemm(rng):
    """conv2d_transpose with a 1x1 kernel and stride 1 is backward-data of a pointwise conv."""
    x, wt, b = rand(rng, 2, 5, 6, 7), rand(rng, 1, 1, 3, 7), rand(rng, 3)
    want = np.einsum("nhwc,oc->nhwo", x.astype(np.float64), wt[0, 0].astype(np.float64)) + b
    for algo in ("gemm", "auto"):
        with _conv.force_algorithm(algo):
            close(ops.conv2d_transpose(x, wt, b, activation="relu"), np.maximum(want, 0))


@pytest.mark.parametrize("kwargs", [dict(strides=2), dict(padding="same", k=3), dict(padding=1), dict(groups=2)])
def test_forced_gemm_rejects_non_pointwise_shapes(kwargs, rng):
    k = kwargs.pop("k", 1)
    x, w = rand(rng, 1, 9, 9, 4), rand(rng, k, k, 4 // kwargs.get("groups", 1), 4)
    with _conv.force_algorithm("gemm"), pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(x, w, **kwargs)


# (algorithm, N, H, W, C, k, Cout, strides, groups, padding): every kernel family's epilogue —
# implicit-GEMM tiles (1, 2 and 4 vectors wide, the dot tile for <= 4 outputs), Winograd, the
# pointwise GEMM, depthwise with multiplier 1 and 2.
RELU6_CASES = [
    ("igemm", 2, 7, 8, 5, 3, 37, 1, 1, "same"), ("igemm", 1, 6, 6, 16, 3, 3, 2, 1, "valid"),
    ("igemm", 1, 5, 9, 8, 3, 64, 1, 1, "same"), ("winograd", 1, 8, 9, 16, 3, 24, 1, 1, "same"),
    ("gemm", 1, 7, 7, 40, 1, 19, 1, 1, "valid"), ("depthwise", 2, 9, 7, 21, 3, 21, 2, 21, ((1, 1), (1, 1))),
    ("depthwise", 1, 6, 6, 4, 3, 8, 1, 4, "same"), ("auto", 1, 9, 9, 6, 3, 12, 1, 2, "same"),
]


@pytest.mark.parametrize("case", RELU6_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
def test_relu6_is_fused_in_every_kernel(case, isa, rng):
    algo, n, h, w, c, k, cout, s, groups, padding = case
    x, wt, b = rand(rng, n, h, w, c) * 3, rand(rng, k, k, c // groups, cout), rand(rng, cout)
    pads = ref.pads_for(padding, x.shape, wt.shape, (s, s), (1, 1))
    want = np.clip(ref.conv2d(x, wt, b, (s, s), pads, (1, 1), groups), 0, 6)
    with _conv.force_algorithm(algo):
        y = ops.conv2d(x, wt, b, strides=s, padding=padding, groups=groups, activation="relu6")
    close(y, want)
    assert (want == 6).any() and (want == 0).any() and y.max() <= 6 and y.min() >= 0
    x[0, 0, 0, 0] = np.nan   # NaN stays NaN through both bounds
    with _conv.force_algorithm(algo):
        y = ops.conv2d(x, wt, b, strides=s, padding=padding, groups=groups, activation="relu6")
    assert np.isnan(y[0, 0, 0]).any()


def test_relu6_transposed_and_pooled_convolutions(rng):
    x, wt, b = rand(rng, 2, 5, 6, 7) * 3, rand(rng, 3, 3, 4, 7), rand(rng, 4)
    lin = ops.conv2d_transpose(x, wt, b, strides=2)
    np.testing.assert_array_equal(ops.conv2d_transpose(x, wt, b, strides=2, activation="relu6"),
                                  np.clip(lin, 0, 6))
    xc, wc = rand(rng, 2, 8, 8, 3) * 3, rand(rng, 3, 3, 3, 5)
    pooled = ops.conv2d_max_pool2d(xc, wc, activation="relu6")
    np.testing.assert_array_equal(pooled, ops.max_pool2d(np.clip(ops.conv2d(xc, wc), 0, 6)))
    with pytest.raises(ValueError, match="conv2d: activation"):
        ops.conv2d(xc, wc, activation="relu7")


# (N, H, W, C, k, Cout, strides, dilation, padding) for the patch-matrix path: borders, strides,
# dilation, explicit padding, a 1x1 image, and 40x40x64 3x3 patches (3.7 MB per image) over five
# images, which the 8 MB patch budget splits into chunks of two.
IM2COL_CASES = [
    (1, 7, 7, 37, 3, 45, 1, 1, "same"), (2, 9, 8, 5, 3, 7, 2, 1, "valid"), (1, 6, 7, 3, 5, 4, 1, 2, "same"),
    (1, 1, 1, 8, 3, 8, 1, 1, "same"), (2, 5, 6, 4, 3, 3, 2, 1, ((0, 2), (1, 1))), (5, 40, 40, 64, 3, 9, 1, 1, "same"),
]


@pytest.mark.parametrize("case", IM2COL_CASES, ids=lambda c: "-".join(map(str, c)).replace(" ", ""))
@pytest.mark.parametrize("activation", [None, "relu", "relu6"])
def test_im2col_matches_reference(case, activation, isa, rng):
    n, h, w, c, k, cout, s, d, padding = case
    x, wt, b = rand(rng, n, h, w, c) * 2, rand(rng, k, k, c, cout), rand(rng, cout)
    pads = ref.pads_for(padding, x.shape, wt.shape, (s, s), (d, d))
    want = ref.conv2d(x, wt, b, (s, s), pads, (d, d))
    want = want if activation is None else np.maximum(want, 0) if activation == "relu" else np.clip(want, 0, 6)
    with _conv.force_algorithm("im2col"):
        y = ops.conv2d(x, wt, b, strides=s, dilation=d, padding=padding, activation=activation)
    close(y, want)


def test_im2col_is_chosen_for_heavy_weights_and_rejects_groups(rng):
    """3x3x256x320 weights (2.9 MB) on a 5x5 map go through the patch matrix, 28x28x16 do not;
    both agree with the reference."""
    for c, cout, hw in ((256, 320, 5), (16, 16, 28)):
        x, wt = rand(rng, 1, hw, hw, c), rand(rng, 3, 3, c, cout)
        close(ops.conv2d(x, wt, padding="same"), ref.conv2d(x, wt, None, (1, 1), ((1, 1), (1, 1))))
    with _conv.force_algorithm("im2col"), pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(rand(rng, 1, 5, 5, 4), rand(rng, 3, 3, 2, 4), groups=2)


def test_forced_depthwise_rejects_grouped_problem(rng):
    with _conv.force_algorithm("depthwise"), pytest.raises(ValueError, match="conv2d"):
        ops.conv2d(rand(rng, 1, 5, 5, 4), rand(rng, 3, 3, 2, 4), groups=2)


def test_large_batch_many_threads_items(threads, rng):
    """Enough rows and blocks that both threads get several work items of each kind."""
    x = rand(rng, 8, 16, 16, 24)
    w = rand(rng, 3, 3, 24, 48)
    b = rand(rng, 48)
    pads = ref.pads_for("same", x.shape, w.shape, (1, 1), (1, 1))
    y = ops.conv2d(x, w, b, padding="same", activation="relu")
    close(y, ref.conv2d(x, w, b, (1, 1), pads, relu=True))
    dy = rand(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(dy, x, w, padding="same")
    edx, edw, edb = ref.conv2d_backward(dy, x, w, (1, 1), pads)
    close(dx, edx)
    close(dw, edw)
    close(db, edb)


def test_backward_is_deterministic_for_a_thread_count(threads, rng):
    x = rand(rng, 6, 14, 14, 8)
    w = rand(rng, 3, 3, 8, 16)
    dy = rand(rng, 6, 12, 12, 16)
    first = ops.conv2d_backward(dy, x, w)
    for _ in range(3):
        again = ops.conv2d_backward(dy, x, w)
        for a, b in zip(first, again):
            assert np.array_equal(a, b)


def test_need_flags(rng):
    x, w = rand(rng, 1, 5, 5, 2), rand(rng, 3, 3, 2, 3)
    dy = rand(rng, 1, 3, 3, 3)
    dx, dw, db = ops.conv2d_backward(dy, x, w, need_input_grad=False, need_bias_grad=False)
    assert dx is None and db is None and dw.shape == w.shape
    full = ops.conv2d_backward(dy, x, w)
    assert np.array_equal(dw, full[1])


# --------------------------------------------------------------------------------------------
# Gradients by finite differences of a float64 loss


def test_gradients_by_finite_differences(rng):
    """conv2d_backward against central differences of L = sum(r * conv2d_ref(x, w) + r.b)."""
    x = rand(rng, 2, 6, 5, 3).astype(np.float64)
    w = rand(rng, 3, 2, 3, 4).astype(np.float64)
    b = rand(rng, 4).astype(np.float64)
    s, p, d = (2, 1), "same", (1, 2)
    pads = ref.pads_for(p, x.shape, w.shape, s, d)
    r = rng.standard_normal(ref.conv2d(x, w, b, s, pads, d).shape)

    def loss(xx, ww, bb):
        return float(np.sum(r * ref.conv2d(xx, ww, bb, s, pads, d)))

    dx, dw, db = ops.conv2d_backward(r, x, w, strides=s, padding=p, dilation=d)
    eps = 1e-4
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        flat = arr.reshape(-1)
        for idx in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            old = flat[idx]
            flat[idx] = old + eps
            up = loss(x, w, b)
            flat[idx] = old - eps
            down = loss(x, w, b)
            flat[idx] = old
            numeric = (up - down) / (2 * eps)
            assert abs(grad.reshape(-1)[idx] - numeric) <= 1e-3 * (abs(numeric) + 1)


# --------------------------------------------------------------------------------------------
# PyTorch parity (NHWC <-> NCHW, HWIO <-> OIHW)

TORCH_CASES = [
    (4, 28, 28, 1, 3, 3, 32, (1, 1), "valid", (1, 1), 1),
    (2, 26, 26, 32, 3, 3, 32, (1, 1), "valid", (1, 1), 1),
    (2, 32, 32, 3, 3, 3, 32, (1, 1), "same", (1, 1), 1),
    (2, 15, 15, 32, 3, 3, 64, (2, 2), "same", (1, 1), 1),
    (1, 14, 14, 64, 3, 3, 64, (1, 1), "same", (2, 2), 1),
    (2, 9, 9, 12, 3, 3, 24, (1, 2), ((1, 2), (0, 1)), (1, 1), 4),
    (2, 9, 9, 16, 3, 3, 16, (1, 1), "same", (1, 1), 16),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=case_id)
def test_torch_parity(case, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, w, b, s, p, d, g, ((pt, pb), (pl, pr)) = make_case(rng, case)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    yt = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), wt, bt, stride=s, dilation=d, groups=g)
    y = ops.conv2d(x, w, b, strides=s, padding=p, dilation=d, groups=g)
    y_torch = yt.detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, y_torch, rtol=1e-4, atol=1e-4 * np.abs(y_torch).max())
    dy = rand(rng, *y.shape)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy(), dtype=torch.float64))
    dx, dw, db = ops.conv2d_backward(dy, x, w, strides=s, padding=p, dilation=d, groups=g)
    for ours, theirs in ((dx, xt.grad.numpy().transpose(0, 2, 3, 1)),
                         (dw, wt.grad.numpy().transpose(2, 3, 1, 0)), (db, bt.grad.numpy())):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def _load_mnist_images(count):
    root = shared_data_dir()
    if root is None:
        pytest.skip("MNIST not available (set CNNFAST_DATA)")
    path = root / "mnist" / "train-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"{path} not found")
    with gzip.open(path, "rb") as f:
        header = f.read(16)
        assert int.from_bytes(header[:4], "big") == 0x803
        data = f.read(count * 28 * 28)
    return np.frombuffer(data, np.uint8).reshape(count, 28, 28, 1)


def test_mnist_digits_through_two_layers(rng):
    """Real digits (uint8, converted like x / 255) through conv-relu-conv, forward and backward."""
    x = _load_mnist_images(16) / 255.0
    w1, b1 = rand(rng, 3, 3, 1, 32) * 0.3, rand(rng, 32) * 0.1
    w2 = rand(rng, 3, 3, 32, 32) * 0.1
    h = ops.conv2d(x, w1, b1, activation="relu")
    close(h, ref.conv2d(x, w1, b1, relu=True))
    y = ops.conv2d(h, w2)
    close(y, ref.conv2d(h, w2))
    dy = rand(rng, *y.shape)
    dh, dw2, _ = ops.conv2d_backward(dy, h, w2)
    edh, edw2, _ = ref.conv2d_backward(dy, h, w2)
    close(dh, edh)
    close(dw2, edw2)
    _, dw1, db1 = ops.conv2d_backward(dh * (h > 0), x, w1, need_input_grad=False)
    _, edw1, edb1 = ref.conv2d_backward(dh * (h > 0), x, w1)
    close(dw1, edw1)
    close(db1, edb1)


# --------------------------------------------------------------------------------------------
# Shapes, out=, conversions, zero sizes


def test_output_shape_helper_matches_conv2d(rng):
    for c in CASES:
        x, w, _, s, p, d, g, _ = make_case(rng, c)
        y = ops.conv2d(x, w, strides=s, padding=p, dilation=d, groups=g)
        assert ops.conv2d_output_shape(x.shape, w.shape, s, p, d) == y.shape
        assert ops.conv2d_output_shape((None,) + x.shape[1:], w.shape, s, p, d) == (None,) + y.shape[1:]


def test_output_shape_keras_examples():
    assert ops.conv2d_output_shape((None, 28, 28, 1), (3, 3, 1, 32)) == (None, 26, 26, 32)
    assert ops.conv2d_output_shape((None, 13, 13, 32), (3, 3, 32, 64)) == (None, 11, 11, 64)
    # TF 'same' with stride 2: ceil(n / 2) whatever the kernel.
    assert ops.conv2d_output_shape((8, 15, 16, 3), (3, 3, 3, 8), 2, "same") == (8, 8, 8, 8)
    assert ops.conv2d_output_shape((1, 5, 5, 1), (3, 3, 1, 1), 1, "full") == (1, 7, 7, 1)
    assert ops.conv2d_output_shape((1, None, 9, 4), (3, 3, 2, 2), 1, "valid") == (1, None, 7, 2)
    with pytest.raises(ValueError, match=r"conv2d_output_shape.*kernel height.*larger than the padded"):
        ops.conv2d_output_shape((None, 2, 28, 1), (3, 3, 1, 32))
    with pytest.raises(ValueError, match=r"conv2d_output_shape.*channel mismatch"):
        ops.conv2d_output_shape((None, 8, 8, 5), (3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"conv2d_output_shape: input_shape"):
        ops.conv2d_output_shape((8, 8, 1), (3, 3, 1, 4))


def test_out_argument_is_used(rng):
    x, w = rand(rng, 2, 6, 6, 3), rand(rng, 3, 3, 3, 4)
    out = np.full((2, 4, 4, 4), np.nan, np.float32)
    y = ops.conv2d(x, w, out=out)
    assert y is out
    close(out, ref.conv2d(x, w))


def test_converts_other_dtypes_and_layouts(rng):
    x = rng.standard_normal((2, 7, 6, 3))                 # float64
    w = rng.integers(-3, 4, (3, 3, 3, 5))                 # int64
    xf = np.asfortranarray(x)                             # non-contiguous in C order
    expected = ref.conv2d(x.astype(np.float32), w.astype(np.float32))
    close(ops.conv2d(x, w), expected)
    close(ops.conv2d(xf, w), expected)
    close(ops.conv2d(x[:, ::1, :, :][..., ::1], w[::1]), expected)
    ro = x.astype(np.float32)
    ro.setflags(write=False)
    close(ops.conv2d(ro, w), expected)


def test_zero_sized_dimensions(rng):
    w = rand(rng, 3, 3, 2, 4)
    b = rand(rng, 4)
    assert ops.conv2d(np.zeros((0, 5, 5, 2), np.float32), w).shape == (0, 3, 3, 4)
    assert ops.conv2d(rand(rng, 2, 5, 5, 2), np.zeros((3, 3, 2, 0))).shape == (2, 3, 3, 0)
    assert ops.conv2d(np.zeros((1, 0, 5, 2)), w, padding="same").shape == (1, 0, 5, 4)
    # No input channels: the output is the bias (then the activation).
    y = ops.conv2d(np.zeros((2, 4, 4, 0)), np.zeros((3, 3, 0, 4)), b, activation="relu")
    assert np.array_equal(y, np.broadcast_to(np.maximum(b, 0), (2, 2, 2, 4)))
    dx, dw, db = ops.conv2d_backward(np.zeros((0, 3, 3, 4)), np.zeros((0, 5, 5, 2)), w)
    assert dx.shape == (0, 5, 5, 2) and np.array_equal(dw, np.zeros_like(w)) and np.array_equal(db, np.zeros(4))
    dy = rand(rng, 2, 2, 2, 4)
    dx, dw, db = ops.conv2d_backward(dy, np.zeros((2, 4, 4, 0)), np.zeros((3, 3, 0, 4)))
    assert dx.shape == (2, 4, 4, 0) and dw.shape == (3, 3, 0, 4)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-6)
    dx, dw, db = ops.conv2d_backward(np.zeros((2, 3, 3, 0)), rand(rng, 2, 5, 5, 2), np.zeros((3, 3, 2, 0)))
    assert np.array_equal(dx, np.zeros((2, 5, 5, 2))) and dw.shape == (3, 3, 2, 0) and db.shape == (0,)


# --------------------------------------------------------------------------------------------
# Bad input: every error names the op and the argument


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda x, w: ops.conv2d(x[0], w), ValueError, r"conv2d: x must be 4-D"),
    (lambda x, w: ops.conv2d(x, w[0]), ValueError, r"conv2d: w must be 4-D"),
    (lambda x, w: ops.conv2d(x.astype(complex), w), TypeError, r"conv2d: x must be a real"),
    (lambda x, w: ops.conv2d(x, w > 0), TypeError, r"conv2d: w must be a real"),
    (lambda x, w: ops.conv2d(x, np.zeros((3, 3, 5, 4))), ValueError, r"conv2d: channel mismatch.*w.shape\[2\] must be 6"),
    (lambda x, w: ops.conv2d(x, w, groups=4), ValueError, r"conv2d: groups=4 must divide the input channels"),
    (lambda x, w: ops.conv2d(x, np.zeros((3, 3, 2, 5)), groups=3), ValueError, r"conv2d: groups=3 must divide the output"),
    (lambda x, w: ops.conv2d(x, w, groups=0), ValueError, r"conv2d: groups must be >= 1"),
    (lambda x, w: ops.conv2d(x, w, groups=1.5), TypeError, r"conv2d: groups must be an integer"),
    (lambda x, w: ops.conv2d(x, np.zeros((9, 3, 6, 4))), ValueError, r"conv2d: the kernel height .* larger than the padded input"),
    (lambda x, w: ops.conv2d(x, w, dilation=(1, 4)), ValueError, r"conv2d: the kernel width \(3, dilated to 9\) is larger"),
    (lambda x, w: ops.conv2d(x, w, strides=0), ValueError, r"conv2d: strides must be >= 1, got 0"),
    (lambda x, w: ops.conv2d(x, w, strides=(1, -2)), ValueError, r"conv2d: strides must be >= 1, got -2"),
    (lambda x, w: ops.conv2d(x, w, strides=(1, 1, 1)), ValueError, r"conv2d: strides must be an int or a pair"),
    (lambda x, w: ops.conv2d(x, w, dilation=0), ValueError, r"conv2d: dilation must be >= 1, got 0"),
    (lambda x, w: ops.conv2d(x, w, dilation=(-1, 1)), ValueError, r"conv2d: dilation must be >= 1"),
    (lambda x, w: ops.conv2d(x, w, padding="causal"), ValueError, r"conv2d: padding must be one of"),
    (lambda x, w: ops.conv2d(x, w, padding=-1), ValueError, r"conv2d: padding must be >= 0"),
    (lambda x, w: ops.conv2d(x, w, padding=((1, 2), (3,))), ValueError, r"conv2d: padding \(width\)"),
    (lambda x, w: ops.conv2d(x, w, padding=None), TypeError, r"conv2d: padding must be"),
    (lambda x, w: ops.conv2d(x, w, activation="tanh"), ValueError, r"conv2d: activation must be one of"),
    (lambda x, w: ops.conv2d(x, w, bias=np.zeros(5)), ValueError, r"conv2d: bias must have shape \(4,\)"),
    (lambda x, w: ops.conv2d(x, w, bias=np.zeros((4, 1))), ValueError, r"conv2d: bias must be 1-D"),
    (lambda x, w: ops.conv2d(x, np.zeros((0, 3, 6, 4))), ValueError, r"conv2d: w must have kernel height and width >= 1"),
    (lambda x, w: ops.conv2d(x, w, out=np.zeros((2, 6, 6, 4))), TypeError, r"conv2d: out must have dtype float32"),
    (lambda x, w: ops.conv2d(x, w, out=np.zeros((2, 6, 5, 4), np.float32)), ValueError, r"conv2d: out must have shape \(2, 6, 6, 4\)"),
    (lambda x, w: ops.conv2d(x, w, out=np.zeros((2, 6, 6, 8), np.float32)[..., ::2]), ValueError, r"conv2d: out must be C-contiguous"),
    (lambda x, w: ops.conv2d_backward(np.zeros((2, 6, 6, 5)), x, w), ValueError, r"conv2d_backward: dy must have the conv2d output shape \(2, 6, 6, 4\)"),
    (lambda x, w: ops.conv2d_backward(np.zeros((2, 6, 6, 4)), x, w, groups=5), ValueError, r"conv2d_backward: groups=5"),
    (lambda x, w: ops.conv2d_backward(np.zeros((2, 6, 6, 4)), x, w, strides=0), ValueError, r"conv2d_backward: strides must be >= 1"),
], ids=itertools.count())
def test_bad_input_raises_clear_errors(call, exc, pattern):
    x = np.zeros((2, 8, 8, 6), np.float32)
    w = np.zeros((3, 3, 6, 4), np.float32)
    with pytest.raises(exc, match=pattern):
        call(x, w)


def test_out_read_only_and_overlapping_are_refused(rng):
    x, w = rand(rng, 1, 6, 6, 4), rand(rng, 3, 3, 4, 4)
    ro = np.zeros((1, 4, 4, 4), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="conv2d: out is read-only"):
        ops.conv2d(x, w, out=ro)
    big = rand(rng, 1, 6, 6, 4)
    inside = big.reshape(-1)[: 4 * 4 * 4].reshape(1, 4, 4, 4)  # C-contiguous view of x's memory
    with pytest.raises(ValueError, match="conv2d: out overlaps an input"):
        ops.conv2d(big, w, out=inside)


# --------------------------------------------------------------------------------------------
# conv2d_transpose

# (N, H, W, Cin, kh, kw, filters, strides, padding, output_padding, dilation)
TCASES = [
    (2, 5, 6, 3, 3, 3, 4, (1, 1), "valid", None, (1, 1)),
    (2, 5, 6, 3, 3, 3, 4, (2, 2), "valid", None, (1, 1)),
    (1, 4, 5, 6, 3, 3, 5, (2, 2), "same", None, (1, 1)),
    (1, 4, 4, 2, 2, 2, 3, (2, 2), "same", None, (1, 1)),
    (1, 4, 4, 8, 4, 4, 16, (2, 2), "same", None, (1, 1)),
    (1, 3, 4, 5, 3, 2, 7, (3, 2), "valid", (1, 1), (1, 1)),
    (1, 3, 4, 5, 3, 3, 7, (3, 2), "same", (2, 0), (1, 1)),
    (1, 5, 5, 4, 3, 3, 33, (1, 1), "same", None, (2, 2)),
    (2, 4, 3, 3, 2, 3, 4, (2, 3), "valid", None, (2, 1)),
    (1, 3, 3, 2, 1, 1, 3, (3, 3), "valid", None, (1, 1)),     # stride > kernel: empty rows
    (2, 7, 7, 32, 3, 3, 16, (2, 2), "same", (1, 1), (1, 1)),
    (2, 6, 7, 20, 3, 3, 24, (1, 1), "same", None, (1, 1)),        # Winograd backward-data path
    (1, 5, 4, 17, 3, 3, 18, (1, 1), "valid", None, (1, 1)),
]


def tcase_id(c):
    return "-".join(str(v).replace(" ", "") for v in c)


@pytest.mark.parametrize("case", TCASES, ids=tcase_id)
def test_transpose_matches_keras_definition(case, isa, threads, rng):
    n, h, w, c, kh, kw, f, s, p, op_, d = case
    x = rand(rng, n, h, w, c)
    wt = rand(rng, kh, kw, f, c)
    b = rand(rng, f)
    expected = ref.conv2d_transpose(x, wt, b, s, p, op_, d, relu=True)
    y = ops.conv2d_transpose(x, wt, b, strides=s, padding=p, output_padding=op_, dilation=d,
                             activation="relu")
    close(y, expected)
    assert ops.conv2d_transpose_output_shape(x.shape, wt.shape, s, p, op_, d) == y.shape


@pytest.mark.parametrize("case", TCASES, ids=tcase_id)
def test_transpose_backward_by_finite_differences(case, rng):
    n, h, w, c, kh, kw, f, s, p, op_, d = case
    x = rand(rng, 1, h, w, min(c, 3)).astype(np.float64)
    wt = rand(rng, kh, kw, min(f, 3), min(c, 3)).astype(np.float64)
    b = rand(rng, min(f, 3)).astype(np.float64)
    r = rng.standard_normal(ref.conv2d_transpose(x, wt, b, s, p, op_, d).shape)

    def loss():
        return float(np.sum(r * ref.conv2d_transpose(x, wt, b, s, p, op_, d)))

    dx, dw, db = ops.conv2d_transpose_backward(r, x, wt, strides=s, padding=p, output_padding=op_,
                                               dilation=d)
    eps = 1e-4
    for arr, grad in ((x, dx), (wt, dw), (b, db)):
        flat = arr.reshape(-1)
        for idx in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            old = flat[idx]
            flat[idx] = old + eps
            up = loss()
            flat[idx] = old - eps
            down = loss()
            flat[idx] = old
            numeric = (up - down) / (2 * eps)
            assert abs(grad.reshape(-1)[idx] - numeric) <= 1e-3 * (abs(numeric) + 1)


@pytest.mark.parametrize("case", TCASES, ids=tcase_id)
def test_transpose_torch_parity(case, rng):
    """torch.conv_transpose2d gives the uncropped (H-1)*s + dk output; Keras's result is a window
    of it (or it zero-extended), per the JAX padding."""
    torch = pytest.importorskip("torch")
    n, h, w, c, kh, kw, f, s, p, op_, d = case
    x = rand(rng, n, h, w, c)
    wt = rand(rng, kh, kw, f, c)
    b = rand(rng, f)
    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), dtype=torch.float64, requires_grad=True)
    wtt = torch.tensor(wt.transpose(3, 2, 0, 1).copy(), dtype=torch.float64, requires_grad=True)
    full = torch.nn.functional.conv_transpose2d(xt, wtt, None, stride=s, dilation=d)
    ops_ = (None, None) if op_ is None else op_
    crops = []
    for axis, k in ((0, kh), (1, kw)):
        dk = d[axis] * (k - 1) + 1
        left, right = ref.transpose_pads(k, s[axis], d[axis], p, ops_[axis])
        crops.append((dk - 1 - left, dk - 1 - right))
    (ct, cb), (cl, cr) = crops
    padded = torch.nn.functional.pad(full, (max(-cl, 0), max(-cr, 0), max(-ct, 0), max(-cb, 0)))
    yt = padded[:, :, max(ct, 0):padded.shape[2] - max(cb, 0), max(cl, 0):padded.shape[3] - max(cr, 0)]
    yt = yt + torch.tensor(b, dtype=torch.float64)[None, :, None, None]
    y = ops.conv2d_transpose(x, wt, b, strides=s, padding=p, output_padding=op_, dilation=d)
    y_torch = yt.detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(y, y_torch, rtol=1e-4, atol=1e-4 * np.abs(y_torch).max())
    dy = rand(rng, *y.shape)
    yt.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy(), dtype=torch.float64))
    dx, dw, db = ops.conv2d_transpose_backward(dy, x, wt, strides=s, padding=p,
                                               output_padding=op_, dilation=d)
    for ours, theirs in ((dx, xt.grad.numpy().transpose(0, 2, 3, 1)),
                         (dw, wtt.grad.numpy().transpose(2, 3, 1, 0)), (db, dy.sum(axis=(0, 1, 2)))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_transpose_output_shape_keras_rule():
    # 'valid': (H-1)*s + max(k, s); 'same': H*s.
    assert ops.conv2d_transpose_output_shape((None, 7, 7, 8), (3, 3, 4, 8), 2, "valid") == (None, 15, 15, 4)
    assert ops.conv2d_transpose_output_shape((None, 7, 7, 8), (2, 2, 4, 8), 3, "valid") == (None, 21, 21, 4)
    assert ops.conv2d_transpose_output_shape((None, 7, 7, 8), (3, 3, 4, 8), 2, "same") == (None, 14, 14, 4)
    assert ops.conv2d_transpose_output_shape((2, 7, 5, 8), (3, 3, 4, 8), 2, "same", 0) == (2, 13, 9, 4)
    assert ops.conv2d_transpose_output_shape((2, 7, 5, 8), (3, 3, 4, 8), 2, "valid", 1) == (2, 16, 12, 4)
    assert ops.conv2d_transpose_output_shape((2, 7, 5, 8), (3, 3, 4, 8), 1, "valid", None, 2) == (2, 11, 9, 4)


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda x, w: ops.conv2d_transpose(x, np.zeros((3, 3, 4, 5))), ValueError, r"conv2d_transpose: channel mismatch.*w.shape\[3\]"),
    (lambda x, w: ops.conv2d_transpose(x, w, padding="full"), ValueError, r"conv2d_transpose: padding must be one of \['valid', 'same'\]"),
    (lambda x, w: ops.conv2d_transpose(x, w, strides=2, output_padding=2), ValueError, r"conv2d_transpose: output_padding \(height\) must be smaller than the stride"),
    (lambda x, w: ops.conv2d_transpose(x, w, output_padding=-1), ValueError, r"conv2d_transpose: output_padding must be >= 0"),
    (lambda x, w: ops.conv2d_transpose(x, w, strides=0), ValueError, r"conv2d_transpose: strides must be >= 1"),
    (lambda x, w: ops.conv2d_transpose(x, w, dilation=(1, 0)), ValueError, r"conv2d_transpose: dilation must be >= 1"),
    (lambda x, w: ops.conv2d_transpose(x[0], w), ValueError, r"conv2d_transpose: x must be 4-D"),
    (lambda x, w: ops.conv2d_transpose(x, w, bias=np.zeros(3)), ValueError, r"conv2d_transpose: bias must have shape \(4,\)"),
    (lambda x, w: ops.conv2d_transpose_backward(np.zeros((2, 5, 5, 4)), x, w), ValueError, r"conv2d_transpose_backward: dy must have the conv2d_transpose output shape \(2, 7, 7, 4\)"),
    (lambda x, w: ops.conv2d_transpose_output_shape((1, 5, 5, 3), (3, 3, 4, 6)), ValueError, r"conv2d_transpose_output_shape: channel mismatch"),
], ids=itertools.count())
def test_transpose_bad_input(call, exc, pattern):
    x = np.zeros((2, 5, 5, 6), np.float32)
    w = np.zeros((3, 3, 4, 6), np.float32)
    with pytest.raises(exc, match=pattern):
        call(x, w)


def test_transpose_zero_sizes(rng):
    w = rand(rng, 3, 3, 4, 2)
    b = rand(rng, 4)
    assert ops.conv2d_transpose(np.zeros((0, 3, 3, 2)), w).shape == (0, 5, 5, 4)
    y = ops.conv2d_transpose(np.zeros((1, 3, 3, 0)), np.zeros((3, 3, 4, 0)), b)
    assert y.shape == (1, 5, 5, 4) and np.array_equal(y, np.broadcast_to(b, y.shape))
    dx, dw, db = ops.conv2d_transpose_backward(np.zeros((0, 5, 5, 4)), np.zeros((0, 3, 3, 2)), w)
    assert dx.shape == (0, 3, 3, 2) and np.array_equal(dw, np.zeros_like(w)) and np.array_equal(db, np.zeros(4))


def test_force_algorithm_rejects_unknown_name():
    with pytest.raises(ValueError, match="force_algorithm: name must be one of"):
        with _conv.force_algorithm("fft"):
            pass


# --------------------------------------------------------------------------------------------
# conv2d_max_pool2d: one pass, bit-identical to conv2d followed by max_pool2d

FUSED_CASES = [
    # n, h, w, c, k, cout, conv padding, pool_size, pool_strides, pool_padding, algo
    (5, 28, 28, 1, 3, 32, "valid", 2, None, "valid", "auto"),      # MNIST first layer
    (3, 13, 13, 32, 3, 64, "valid", 2, None, "valid", "winograd"),
    (3, 13, 13, 32, 3, 64, "valid", 2, None, "valid", "igemm"),
    (2, 15, 17, 3, 3, 5, "same", 3, 1, "same", "auto"),             # overlapping windows
    (1, 7, 9, 16, 5, 4, "valid", (1, 2), None, "same", "auto"),     # few outputs, odd sizes
    (2, 20, 20, 2, 3, 6, "valid", 17, 1, "valid", "auto"),          # 289-cell window: int32 argmax
]


@pytest.mark.parametrize("case", FUSED_CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-{c[-1]}")
@pytest.mark.parametrize("activation", ["relu", None])
def test_conv2d_max_pool2d_equals_separate_ops(case, activation, isa, threads, rng):
    n, h, w, c, k, co, pad, ps, pst, pp, algo = case
    x, wt, b = rand(rng, n, h, w, c), rand(rng, k, k, c, co), rand(rng, co)
    with _conv.force_algorithm(algo):
        z = ops.conv2d(x, wt, b, padding=pad, activation=activation)
        y0, a0 = ops.max_pool2d(z, ps, pst, pp, return_argmax=True)
        y1, a1 = ops.conv2d_max_pool2d(x, wt, b, padding=pad, activation=activation, pool_size=ps,
                                       pool_strides=pst, pool_padding=pp, return_argmax=True)
        y2 = ops.conv2d_max_pool2d(x, wt, b, padding=pad, activation=activation, pool_size=ps,
                                   pool_strides=pst, pool_padding=pp)
    assert a1.dtype == a0.dtype
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(a1, a0)
    np.testing.assert_array_equal(y2, y0)
    ref_z = ref.conv2d(x, wt, b, (1, 1), ref.pads_for(pad, x.shape, wt.shape, (1, 1), (1, 1)), (1, 1), 1,
                       relu=activation == "relu")
    close(z, ref_z)


def test_conv2d_max_pool2d_degenerate_and_grouped(rng):
    x, w = rand(rng, 2, 6, 6, 4), rand(rng, 3, 3, 1, 8)
    grouped = ops.conv2d_max_pool2d(x, w, groups=4)               # depthwise: two passes inside
    np.testing.assert_array_equal(grouped, ops.max_pool2d(ops.conv2d(x, w, groups=4)))
    assert ops.conv2d_max_pool2d(rand(rng, 0, 6, 6, 4), rand(rng, 3, 3, 4, 8)).shape == (0, 2, 2, 8)
    no_input = ops.conv2d_max_pool2d(rand(rng, 1, 6, 6, 0), rand(rng, 3, 3, 0, 3), bias=np.ones(3, np.float32))
    np.testing.assert_array_equal(no_input, np.ones((1, 2, 2, 3), np.float32))


def test_conv2d_max_pool2d_bad_input_names_the_op(rng):
    x, w = rand(rng, 1, 6, 6, 2), rand(rng, 3, 3, 2, 4)
    with pytest.raises(ValueError, match="conv2d_max_pool2d.*pool_size 5 does not fit"):
        ops.conv2d_max_pool2d(x, w, pool_size=5)
    with pytest.raises(ValueError, match="conv2d_max_pool2d.*channel mismatch"):
        ops.conv2d_max_pool2d(x, rand(rng, 3, 3, 3, 4))
    with pytest.raises(ValueError, match="conv2d_max_pool2d.*padding"):
        ops.conv2d_max_pool2d(x, w, pool_padding="full")
    with pytest.raises(TypeError, match="conv2d_max_pool2d.*x"):
        ops.conv2d_max_pool2d(x.astype(complex), w)

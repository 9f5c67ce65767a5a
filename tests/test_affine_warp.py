"""cnnfast.ops._warp (affine_warp, image_scale_shift) and cnnfast.ops.image.affine_transform: the C
warp against scipy.ndimage.map_coordinates in float64 (every fill mode x interpolation, odd sizes, channel
counts, ISA paths and thread counts), against Keras 3's keras.ops.image.affine_transform, and
its argument errors."""
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

from cnnfast.ops import _warp as ops
from cnnfast.ops import image as image_ops

ndimage = pytest.importorskip("scipy.ndimage")

FILL_MODES = ("constant", "nearest", "wrap", "reflect")
INTERPOLATIONS = ("nearest", "bilinear")
# Keras's per-tap boundary rules are scipy's "grid-" modes for constant and wrap
SCIPY_MODES = {"constant": "grid-constant", "nearest": "nearest", "wrap": "grid-wrap", "reflect": "reflect"}


def source_points(t, h, w):
    """Float64 input coordinates (rows, columns) read by each output pixel under t (8 values)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a0, a1, a2, b0, b1, b2, c0, c1 = t
    k = c0 * xx + c1 * yy + 1.0
    return (b0 * xx + b1 * yy + b2) / k, (a0 * xx + a1 * yy + a2) / k


def warp_reference(x, transforms, interpolation, fill_mode, fill_value):
    n, h, w, c = x.shape
    transforms = np.broadcast_to(np.asarray(transforms, np.float64).reshape(-1, 8), (n, 8))
    out = np.empty(x.shape, np.float64)
    order = 0 if interpolation == "nearest" else 1
    for b in range(n):
        sy, sx = source_points(transforms[b], h, w)
        for ch in range(c):
            out[b, :, :, ch] = ndimage.map_coordinates(x[b, :, :, ch].astype(np.float64), [sy, sx], order=order,
                                                       mode=SCIPY_MODES[fill_mode], cval=fill_value)
    return out


def rotation(angle, h, w, scale=1.0, tx=0.0, ty=0.0):
    """Keras's rotation / zoom matrix about the image centre ((w - 1) / 2, (h - 1) / 2)."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a0, a1 = scale * np.cos(angle), -scale * np.sin(angle)
    b0, b1 = scale * np.sin(angle), scale * np.cos(angle)
    return [a0, a1, tx + cx - cx * a0 - cy * a1, b0, b1, ty + cy - cx * b0 - cy * b1, 0.0, 0.0]


def transform_set(h, w):
    """Identity, rotations, zooms in and out, translations (beyond the image too), shears and
    projective maps; offsets keep nearest-neighbour points off exact .5 ties (where float32 and
    float64 arithmetic could round either way)."""
    eps = 0.0137
    return {
        "identity": [1, 0, 0, 0, 1, 0, 0, 0],
        "rotate": rotation(0.7, h, w, tx=eps, ty=-eps),
        "rotate_large": rotation(2.9, h, w, tx=eps, ty=eps),
        "zoom_in": rotation(0.0, h, w, scale=0.63, tx=eps, ty=eps),
        "zoom_out": rotation(0.0, h, w, scale=1.77, tx=eps, ty=-eps),
        "translate": [1, 0, -2.3 + eps, 0, 1, 1.6 + eps, 0, 0],
        "translate_far": [1, 0, 3.1 * w + eps, 0, 1, -2.2 * h + eps, 0, 0],
        "shear": [1.0, 0.35, -1.1 + eps, -0.2, 1.1, 0.4 + eps, 0, 0],
        "projective": [0.9, 0.1, 0.3 + eps, -0.05, 1.05, 0.2 + eps, 0.012, -0.021],
        # whole-pixel maps (the kernel's copy path): flips, and shifts reaching past the edges
        "flip_both": [-1, 0, w - 1, 0, -1, h - 1, 0, 0],
        "flip_shift": [-1, 0, w + 2, 0, 1, -4, 0, 0],
        "shift_far": [1, 0, -2 * w - 3, 0, -1, h + 5, 0, 0],
    }


@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_scipy_every_mode_and_transform(fill_mode, interpolation, isa, threads, rng):
    h, w = 7, 11
    for c in (1, 3, 5):
        x = rng.standard_normal((3, h, w, c)).astype(np.float32)
        for name, t in transform_set(h, w).items():
            got = ops.affine_warp(x, t, interpolation, fill_mode, fill_value=0.75)
            want = warp_reference(x, t, interpolation, fill_mode, 0.75)
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6, err_msg=f"{name} c={c}")


def test_per_image_transforms_odd_sizes_and_batch_one(isa, threads, rng):
    for n, h, w, c in [(1, 1, 1, 1), (1, 5, 3, 3), (4, 13, 8, 5), (2, 2, 17, 4), (3, 64, 48, 3)]:
        x = rng.standard_normal((n, h, w, c)).astype(np.float32)
        sets = list(transform_set(h, w).values())
        t = np.array([sets[(i * 3 + 1) % len(sets)] for i in range(n)], np.float64)
        for interpolation in INTERPOLATIONS:
            for fill_mode in FILL_MODES:
                got = ops.affine_warp(x, t, interpolation, fill_mode, -1.5)
                want = warp_reference(x, t, interpolation, fill_mode, -1.5)
                np.testing.assert_allclose(got, want, atol=3e-6, err_msg=f"{(n, h, w, c)} {interpolation} {fill_mode}")


def test_identity_and_integer_translation_are_exact(isa, rng):
    x = rng.standard_normal((2, 6, 9, 3)).astype(np.float32)
    for interpolation in INTERPOLATIONS:
        np.testing.assert_array_equal(ops.affine_warp(x, [1, 0, 0, 0, 1, 0, 0, 0], interpolation), x)
        shifted = ops.affine_warp(x, [1, 0, -2, 0, 1, 1, 0, 0], interpolation, "constant", 0.0)
        # output (x, y) reads input (x - 2, y + 1): content moves right by 2 and up by 1
        np.testing.assert_array_equal(shifted[:, :5, 2:], x[:, 1:, :-2])
        assert np.all(shifted[:, :, :2] == 0) and np.all(shifted[:, 5:] == 0)


def test_thread_counts_give_identical_results(rng):
    import cnnfast
    x = rng.standard_normal((4, 40, 37, 3)).astype(np.float32)
    t = np.array([rotation(0.1 * i, 40, 37, 1.1) for i in range(4)])
    results = []
    for n in (1, 2):
        previous = cnnfast.get_num_threads()
        cnnfast.set_num_threads(n)
        try:
            results.append(ops.affine_warp(x, t, "bilinear", "reflect"))
        finally:
            cnnfast.set_num_threads(previous)
    np.testing.assert_array_equal(results[0], results[1])


def test_projective_point_at_infinity_is_filled():
    x = np.ones((1, 3, 4, 2), np.float32)
    # k = 1 - x: column 1 has k == 0 (the point is at infinity), later columns negative k
    y = ops.affine_warp(x, [1, 0, 0, 0, 1, 0, -1.0, 0], "bilinear", "constant", 9.0)
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0, :, 0], 1.0)        # k = 1: the pixel itself
    np.testing.assert_array_equal(y[0, :, 1], 9.0)        # k = 0: infinitely far, outside


# ---------------------------------------------------------------------------------------------
# Keras 3 as the oracle (its torch backend: c0 = c1 = 0 there)
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_matches_keras(keras, fill_mode, interpolation, rng):
    h, w = 9, 12
    x = (rng.random((4, h, w, 3)) * 255).astype(np.float32)
    sets = {k: v for k, v in transform_set(h, w).items() if k != "projective"}
    t = np.array(list(sets.values()), np.float32)[:4]
    for chunk in (t, np.array(list(sets.values()), np.float32)[4:8]):
        want = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(
            x, chunk, interpolation=interpolation, fill_mode=fill_mode, fill_value=3.0))
        got = image_ops.affine_transform(x, chunk, interpolation=interpolation, fill_mode=fill_mode, fill_value=3.0)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-3)


def test_matches_keras_ties_single_image_channels_first_and_integers(keras, rng):
    x = (rng.random((5, 6, 2)) * 255).astype(np.float32)
    half = [1, 0, 0.5, 0, 1, -0.5, 0, 0]   # every point on an exact .5 tie: rounds to even
    for interpolation in INTERPOLATIONS:
        want = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(x, np.float32(half), interpolation))
        np.testing.assert_allclose(image_ops.affine_transform(x, half, interpolation), want, atol=1e-4)
    xc = np.ascontiguousarray(rng.random((2, 3, 7, 8)).astype(np.float32))
    t = np.array([rotation(0.4, 7, 8, tx=0.01), rotation(-1.0, 7, 8, 0.8)], np.float32)
    want = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(xc, t, "bilinear", "wrap",
                                                                       data_format="channels_first"))
    got = image_ops.affine_transform(xc, t, "bilinear", "wrap", data_format="channels_first")
    np.testing.assert_allclose(got, want, atol=1e-5)
    xi = (rng.random((2, 6, 6, 3)) * 255).astype(np.uint8)
    want = keras.ops.convert_to_numpy(keras.ops.image.affine_transform(xi, t, "bilinear", "reflect"))
    got = image_ops.affine_transform(xi, t, "bilinear", "reflect")
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


# ---------------------------------------------------------------------------------------------
def test_inputs_converted_views_and_empty_sizes(rng):
    x = rng.standard_normal((2, 8, 10, 3))
    t = rotation(0.3, 8, 10)
    np.testing.assert_allclose(ops.affine_warp(x, t), warp_reference(x.astype(np.float32), t, "bilinear",
                                                                     "constant", 0.0), atol=2e-6)
    view = x.astype(np.float32)[:, ::2, ::-1]   # non-contiguous: copied first
    np.testing.assert_allclose(ops.affine_warp(view, t), warp_reference(np.ascontiguousarray(view), t,
                                                                        "bilinear", "constant", 0.0), atol=2e-6)
    for shape in [(0, 4, 4, 3), (2, 0, 4, 3), (2, 4, 0, 3), (2, 4, 4, 0)]:
        assert ops.affine_warp(np.zeros(shape, np.float32), [1, 0, 0, 0, 1, 0, 0, 0]).shape == shape
    assert image_ops.affine_transform(np.zeros((0, 3, 3, 1)), np.zeros((0, 8))).shape == (0, 3, 3, 1)


def test_bad_arguments_raise_clear_errors():
    x = np.zeros((2, 4, 4, 3), np.float32)
    ident = [1, 0, 0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="interpolation"):
        image_ops.affine_transform(x, ident, interpolation="bicubic")
    with pytest.raises(ValueError, match="fill_mode"):
        image_ops.affine_transform(x, ident, fill_mode="mirror")
    with pytest.raises(ValueError, match="images rank"):
        image_ops.affine_transform(np.zeros((4, 4)), ident)
    with pytest.raises(ValueError, match="4-D"):
        ops.affine_warp(np.zeros((4, 4, 3)), ident)
    with pytest.raises(ValueError, match="transform rank"):
        image_ops.affine_transform(x, np.zeros((1, 1, 8)))
    with pytest.raises(ValueError, match="8 parameters"):
        image_ops.affine_transform(x, [1, 0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="3 transforms for 2 images"):
        image_ops.affine_transform(x, np.tile(ident, (3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        image_ops.affine_transform(x, [1, 0, np.nan, 0, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="NaN"):
        ops.affine_warp(x, [1, 0, 0, 0, np.inf, 0, 0, 0])
    with pytest.raises(TypeError, match="dtype"):
        ops.affine_warp(x.astype(complex), ident)
    with pytest.raises(TypeError, match="dtype"):
        image_ops.affine_transform(np.array([["a"]]), ident)
    with pytest.raises(TypeError, match="transform"):
        ops.affine_warp(x, np.array(["a"] * 8))
    with pytest.raises(TypeError, match="fill_value"):
        ops.affine_warp(x, ident, fill_value="zero")
    with pytest.raises(ValueError, match="data_format"):
        image_ops.affine_transform(x, ident, data_format="NHWC")


# ---------------------------------------------------------------------------------------------
# the colour augmentations' intensity map
@pytest.mark.parametrize("c", [1, 3, 5, 70])
def test_image_scale_shift_matches_numpy(c, isa, threads, rng):
    x = rng.standard_normal((3, 7, 45, c)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, 3)
    shift = rng.standard_normal((3, c))
    want = np.clip(x.astype(np.float64) * scale[:, None, None, None] + shift[:, None, None, :], -0.8, 1.1)
    np.testing.assert_allclose(ops.image_scale_shift(x, scale, shift, (-0.8, 1.1)), want, atol=1e-6)
    y = x.copy()
    assert ops.image_scale_shift(y, scale, shift, (-0.8, 1.1), out=y) is y   # in place
    np.testing.assert_allclose(y, want, atol=1e-6)
    # with the images' own channel means (contrast): threads then take whole images
    coef = rng.uniform(-0.5, 0.5, 3)
    mean = x.astype(np.float64).mean(axis=(1, 2))
    want = np.clip(x * scale[:, None, None, None] + (shift + coef[:, None] * mean)[:, None, None, :], -0.8, 1.1)
    np.testing.assert_allclose(ops.image_scale_shift(x, scale, shift, (-0.8, 1.1), mean_coef=coef), want,
                               atol=2e-6)


def test_image_scale_shift_nan_empty_and_errors():
    x = np.array([np.nan, 2.0, -3.0], np.float32).reshape(1, 1, 3, 1)
    y = ops.image_scale_shift(x, [1.0], [[0.0]], (0.0, 1.0))
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 0] == 1.0 and y[0, 0, 2, 0] == 0.0
    assert ops.image_scale_shift(np.zeros((0, 2, 2, 3)), np.zeros(0), np.zeros((0, 3)), (0, 1)).shape == (0, 2, 2, 3)
    with pytest.raises(ValueError, match="shift"):
        ops.image_scale_shift(np.zeros((2, 2, 2, 3)), [1, 1], np.zeros((2, 2)), (0, 1))
    with pytest.raises(ValueError, match="low <= high"):
        ops.image_scale_shift(np.zeros((1, 2, 2, 3)), [1], np.zeros((1, 3)), (1, 0))
    with pytest.raises(ValueError, match="4-D"):
        ops.image_scale_shift(np.zeros((2, 2, 3)), [1, 1], np.zeros((2, 3)), (0, 1))


def test_affine_warp_out_argument(rng):
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    t = rotation(0.5, 5, 6)
    out = np.empty_like(x)
    assert ops.affine_warp(x, t, out=out) is out
    np.testing.assert_array_equal(out, ops.affine_warp(x, t))
    with pytest.raises(ValueError, match="overlaps"):
        ops.affine_warp(x, t, out=x)
    with pytest.raises(ValueError, match="shape"):
        ops.affine_warp(x, t, out=np.empty((2, 5, 6, 2), np.float32))

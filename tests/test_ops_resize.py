"""Bilinear resizing (ops.resize_bilinear, UpSampling2D(interpolation="bilinear")): against a
float64 reference written from the half-pixel formula, against PyTorch's
interpolate(align_corners=False) and Keras, gradients by finite differences and against torch
autograd, on 1 and 2 threads, and on bad input."""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, ops


def reference(x, ho, wo):
    """Half-pixel bilinear resize in float64, one output pixel at a time along each axis."""
    x = np.asarray(x, np.float64)

    def axis_matrix(n, m):   # (m, n): output position -> weights over input positions
        a = np.zeros((m, n))
        for o in range(m):
            s = max((o + 0.5) * n / m - 0.5, 0.0)
            i0 = min(int(np.floor(s)), n - 1)
            i1 = min(i0 + 1, n - 1)
            a[o, i0] += 1 - (s - i0)
            a[o, i1] += s - i0
        return a
    return np.einsum("ph,qw,nhwc->npqc", axis_matrix(x.shape[1], ho), axis_matrix(x.shape[2], wo), x)


SHAPES = [((1, 4, 5, 3), (8, 10)), ((2, 7, 3, 17), (14, 9)), ((1, 1, 1, 2), (3, 4)),
          ((2, 9, 11, 5), (4, 6)), ((1, 6, 6, 33), (6, 6)), ((3, 5, 7, 64), (13, 29))]


@pytest.mark.parametrize("shape,size", SHAPES)
def test_matches_reference_and_torch(shape, size, threads, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    y = ops.resize_bilinear(x, size)
    np.testing.assert_allclose(y, reference(x, *size), rtol=1e-6, atol=1e-6)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size=size,
                                           mode="bilinear", align_corners=False)
    np.testing.assert_allclose(y, want.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,size", SHAPES[:4])
def test_gradient_is_the_transpose_and_matches_torch(shape, size, threads, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal((shape[0],) + size + (shape[3],)).astype(np.float32)
    dx = ops.resize_bilinear_backward(dy, x.shape)
    # <resize(x), dy> = <x, dx> for every x: check on the basis through the float64 reference
    ref_dx = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape[1:3]):
        e = np.zeros(x.shape)
        e[:, idx[0], idx[1], :] = 1
        ref_dx[:, idx[0], idx[1], :] = (reference(e, *size) * dy).sum(axis=(1, 2))
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    torch.nn.functional.interpolate(xt, size=size, mode="bilinear", align_corners=False).backward(
        torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)


def test_gradient_does_not_depend_on_threads(rng):
    dy = rng.standard_normal((2, 40, 40, 70)).astype(np.float32)
    previous = cnnfast.get_num_threads()
    try:
        outs = []
        for nt in (1, 2):
            cnnfast.set_num_threads(nt)
            outs.append(ops.resize_bilinear_backward(dy, (2, 13, 17, 70)))
    finally:
        cnnfast.set_num_threads(previous)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_zero_sizes_and_bad_input(rng):
    assert ops.resize_bilinear(np.zeros((0, 3, 3, 2), np.float32), (6, 6)).shape == (0, 6, 6, 2)
    assert ops.resize_bilinear(np.zeros((1, 3, 3, 0), np.float32), (6, 6)).shape == (1, 6, 6, 0)
    assert ops.resize_bilinear(np.ones((1, 3, 3, 2), np.float32), (0, 5)).shape == (1, 0, 5, 2)
    assert not ops.resize_bilinear_backward(np.zeros((1, 0, 5, 2), np.float32), (1, 3, 3, 2)).any()
    with pytest.raises(ValueError, match="resize_bilinear"):
        ops.resize_bilinear(np.ones((3, 3, 2), np.float32), (6, 6))
    with pytest.raises(ValueError, match="resize_bilinear"):
        ops.resize_bilinear(np.ones((1, 3, 3, 2), np.float32), (-1, 6))
    with pytest.raises(ValueError, match="resize_bilinear: cannot resize an empty image"):
        ops.resize_bilinear(np.ones((1, 0, 3, 2), np.float32), (4, 4))
    with pytest.raises(ValueError, match="resize_bilinear_backward"):
        ops.resize_bilinear_backward(np.ones((1, 4, 4, 2), np.float32), (2, 2, 2, 2))
    with pytest.raises(TypeError, match="resize_bilinear"):
        ops.resize_bilinear(np.array([["a"]] * 4, dtype=object).reshape(1, 2, 2, 1), (4, 4))
    with pytest.raises((ValueError, MemoryError), match="resize_bilinear"):
        ops.resize_bilinear(np.ones((1, 2, 2, 1), np.float32), (2**31, 2**31))
    nan = np.ones((1, 2, 2, 1), np.float32)
    nan[0, 0, 0, 0] = np.nan
    assert np.isnan(ops.resize_bilinear(nan, (4, 4))[0, 0, 0, 0])


def test_upsampling2d_bilinear_layer(rng, tmp_path):
    from reference.model import check_layer
    layer = layers.UpSampling2D((2, 3), interpolation="bilinear")
    x = rng.standard_normal((2, 4, 3, 5))
    y, dx, _ = check_layer(layer, x, rng, fd=False)
    np.testing.assert_allclose(y, reference(x, 8, 9), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(dy.astype(np.float32), {"x_shape": x.shape}, True),
                               ops.resize_bilinear_backward(dy, x.shape), rtol=1e-6)
    config = layer.get_config()
    assert config["interpolation"] == "bilinear" and layers.UpSampling2D.from_config(config).interpolation == "bilinear"
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="bicubic")
    inp = cnnfast.Input((4, 3, 5))
    model = cnnfast.Model(inp, layer(inp))
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(cnnfast.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_upsampling2d_bilinear_matches_keras(rng):
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    x = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    want = keras.layers.UpSampling2D((3, 2), interpolation="bilinear")(x)
    got = layers.UpSampling2D((3, 2), interpolation="bilinear")(x)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=1e-5, atol=1e-6)

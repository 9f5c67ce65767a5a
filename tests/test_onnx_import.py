"""cnnfast.onnx.load_model: ONNX graphs (mostly torch.onnx.export output) rebuilt as cnnfast models,
checked against ONNX Runtime; plus the pieces the importer needs (explicit pool padding, Permute)."""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, ops


# --- explicit pooling padding (cnnfast extension) ------------------------------------------------
def _ref_pool(x, pool, strides, pads, kind):
    """float64 NHWC reference: windows over the real cells only; (y, dx of sum(y * r))."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    (pt, pb), (pl, pr) = pads
    ho = (h + pt + pb - pool[0]) // strides[0] + 1
    wo = (w + pl + pr - pool[1]) // strides[1] + 1
    y = np.zeros((n, ho, wo, c))
    cells = {}
    for i in range(ho):
        for j in range(wo):
            h0, w0 = i * strides[0] - pt, j * strides[1] - pl
            hs = range(max(h0, 0), min(h0 + pool[0], h))
            ws = range(max(w0, 0), min(w0 + pool[1], w))
            win = x[:, hs.start:hs.stop, ws.start:ws.stop, :]
            cells[i, j] = (hs, ws)
            y[:, i, j, :] = win.max(axis=(1, 2)) if kind == "max" else win.mean(axis=(1, 2))
    return y, cells


@pytest.mark.parametrize("shape,pool,strides,pads", [
    ((2, 7, 7, 3), (3, 3), (2, 2), ((1, 1), (1, 1))),
    ((1, 8, 6, 5), (3, 2), (2, 1), ((2, 0), (0, 1))),
    ((3, 5, 9, 2), (2, 3), (1, 2), ((1, 1), (2, 2))),
])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_explicit_padding_matches_reference(shape, pool, strides, pads, kind):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    y_ref, cells = _ref_pool(x, pool, strides, pads, kind)
    assert ops.pool2d_output_shape(shape, pool, strides, pads) == y_ref.shape
    r = rng.standard_normal(y_ref.shape).astype(np.float32)
    if kind == "max":
        y, am = ops.max_pool2d(x, pool, strides, pads, return_argmax=True)
        dx = ops.max_pool2d_backward(r, am, shape, pool, strides, pads)
        dx_ref = np.zeros(shape)
        for (i, j), (hs, ws) in cells.items():  # gradient to the (unique, random data) maximum
            win = x[:, hs.start:hs.stop, ws.start:ws.stop, :].reshape(shape[0], -1, shape[3])
            k = win.argmax(axis=1)
            for b in range(shape[0]):
                for ch in range(shape[3]):
                    kk = k[b, ch]
                    dx_ref[b, hs.start + kk // len(ws), ws.start + kk % len(ws), ch] += r[b, i, j, ch]
    else:
        y = ops.avg_pool2d(x, pool, strides, pads)
        dx = ops.avg_pool2d_backward(r, shape, pool, strides, pads)
        dx_ref = np.zeros(shape)
        for (i, j), (hs, ws) in cells.items():
            dx_ref[:, hs.start:hs.stop, ws.start:ws.stop, :] += (r[:, i, j, :] / (len(hs) * len(ws)))[:, None, None, :]
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5)


def test_pool_explicit_padding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 112, 112, 4)).astype(np.float32)  # ResNet's stem: k3 s2 p1
    tx = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    r = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(r))
    y, am = ops.max_pool2d(x, 3, 2, ((1, 1), (1, 1)), return_argmax=True)
    np.testing.assert_array_equal(y, ty.detach().numpy().transpose(0, 2, 3, 1))
    dx = ops.max_pool2d_backward(r.transpose(0, 2, 3, 1), am, x.shape, 3, 2, ((1, 1), (1, 1)))
    np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
    tx.grad = None
    ta = torch.nn.functional.avg_pool2d(tx, 3, 2, 1, count_include_pad=False)
    ta.backward(torch.tensor(r))
    np.testing.assert_allclose(ops.avg_pool2d(x, 3, 2, ((1, 1), (1, 1))),
                               ta.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.avg_pool2d_backward(r.transpose(0, 2, 3, 1), x.shape, 3, 2, ((1, 1), (1, 1))),
                               tx.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


def test_pool_layers_explicit_padding_config_and_training(tmp_path):
    rng = np.random.default_rng(2)
    inp = cnnfast.Input((9, 9, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = layers.MaxPooling2D(3, 2, padding=((1, 1), (1, 1)))(h)     # conv + pool fusion path
    h = layers.AveragePooling2D(2, 1, padding=((1, 0), (0, 1)))(h)
    out = layers.Dense(2)(layers.Flatten()(h))
    model = cnnfast.Model(inp, out)
    assert model.layers[2].get_config()["padding"] == [[1, 1], [1, 1]]
    assert model.layers[1].get_config()["padding"] == "same"
    x = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (4, 2)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((4, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    again = cnnfast.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="smaller than pool_size"):
        layers.MaxPooling2D(2, padding=((2, 0), (0, 0)))
    with pytest.raises(ValueError, match="padding must be one of"):
        ops.max_pool2d(x, 2, padding="full")
    with pytest.raises(ValueError, match="padding"):
        ops.max_pool2d(x, 2, padding=((1, 2, 3), (0, 0)))


def test_permute_layer(tmp_path):
    rng = np.random.default_rng(3)
    inp = cnnfast.Input((3, 5, 6))
    out = layers.Dense(2)(layers.Permute((2, 3, 1))(inp))
    model = cnnfast.Model(inp, out)
    assert model.layers[1].compute_output_shape((None, 3, 5, 6)) == (None, 5, 6, 3)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    w, b = model.layers[2].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x.transpose(0, 2, 3, 1) @ w + b, rtol=1e-5, atol=1e-5)
    # backward: d/dx sum(r * y) through the permute
    layer = layers.Permute((3, 1, 2))
    ctx = {}
    y = layer.forward(x, True, ctx)
    assert y.shape == (2, 6, 3, 5) and y.flags.c_contiguous
    np.testing.assert_array_equal(layer.backward(y, ctx, True), x)
    model.save(tmp_path / "p.keras")
    again = cnnfast.models.load_model(tmp_path / "p.keras")
    assert again.layers[1].get_config()["dims"] == [2, 3, 1]
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="permutation"):
        layers.Permute((0, 1))

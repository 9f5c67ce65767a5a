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


# --- cnnfast.onnx.load_model ----------------------------------------------------------------------
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cnnfast.onnx import load_model  # noqa: E402
from cnnfast.onnx._import import OnnxImportError  # noqa: E402


def _ort(path, *xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, xs)))


def _assert_matches_ort(path, *xs, rtol=1e-4):
    """cnnfast's import of ``path`` computes what ONNX Runtime computes (relative to the scale)."""
    model = load_model(path)
    want = _ort(path, *xs)
    got = model.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(np.abs(w).max(), 1e-3))
    return model


def _torch_export(module, x, path, opset=17, dynamic=True):
    torch = pytest.importorskip("torch")
    module.eval()
    kwargs = dict(input_names=["input"], output_names=["output"], opset_version=opset, dynamo=False)
    if dynamic:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(module, torch.from_numpy(x), str(path), **kwargs)
    return path


def _randomise_batch_norm(module):
    """Non-trivial running statistics, so that a wrong BatchNormalization mapping shows."""
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
    return module


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11"])
def test_torchvision_networks_match_onnx_runtime(name, torchvision_models, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = getattr(torchvision_models, name)(num_classes=10)
    if name == "vgg11":   # 64x64 input: the 2x2 feature map goes straight to a smaller classifier
        net.avgpool = torch.nn.Identity()
        net.classifier[0] = torch.nn.Linear(512 * 2 * 2, 256)
        net.classifier[3] = torch.nn.Linear(256, 256)
        net.classifier[6] = torch.nn.Linear(256, 10)
    _randomise_batch_norm(net)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    path = _torch_export(net, x, tmp_path / f"{name}.onnx")
    model = _assert_matches_ort(path, x)
    assert model.input_shape == (None, 3, 64, 64) and model.output_shape == (None, 10)
    # the NCHW input is permuted once, at the start; nothing else moves data between layouts
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds.count("Permute") == 1
    # torch's symmetric padding of stride-2 layers is the conv's own (no padded copy), and every
    # Clip(0, 6) after a convolution is its relu6 (the bounds are Constants placed after the Conv)
    assert "ZeroPadding2D" not in kinds
    if name == "mobilenet_v2":
        assert "ReLU" not in kinds
        acts = [l._act_name for l in model.layers if isinstance(l, (cnnfast.layers.Conv2D,
                                                                     cnnfast.layers.DepthwiseConv2D))]
        assert acts.count("relu6") == 35 and any(isinstance(l.padding, tuple) for l in model.layers
                                                 if isinstance(l, cnnfast.layers.DepthwiseConv2D))
    with torch.no_grad():
        np.testing.assert_allclose(model.predict(x[:1], verbose=0), net(torch.from_numpy(x[:1])).numpy(),
                                   rtol=1e-4, atol=1e-4)


def test_tutorial_cnn_from_torch_matches_and_fine_tunes(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(),
                        nn.Dropout(0.5), nn.Linear(128, 10), nn.Softmax(dim=1))
    rng = np.random.default_rng(1)
    x = rng.random((16, 1, 28, 28), dtype=np.float32)
    path = _torch_export(net, x, tmp_path / "mnist.onnx")
    model = _assert_matches_ort(path, x)
    # Gemm + Softmax is one Dense(activation="softmax"), so batch-1 calls run the inference plan
    assert isinstance(model.layers[-1], layers.Dense) and model.layers[-1]._act_name == "softmax"
    assert "Softmax" not in [type(l).__name__ for l in model.layers]
    assert model._inference_plan(x[:1].shape) is not None
    np.testing.assert_allclose(model.predict_on_batch(x[:1]), model(x[:1]), rtol=1e-6, atol=1e-7)
    y = rng.integers(0, 10, 16)
    model.compile(optimizer=cnnfast.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    after = model.evaluate(x, y, verbose=0)[0]
    assert after < before
    model.save(tmp_path / "tuned.keras")
    again = cnnfast.models.load_model(tmp_path / "tuned.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_imported_resnet_fine_tunes_and_round_trips(torchvision_models, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(2)
    net = torchvision_models.resnet18(num_classes=4)   # batch norm is folded into the convs
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    model = load_model(_torch_export(net, x, tmp_path / "r18.onnx"))
    model.summary(print_fn=lambda *a, **k: None)
    y = rng.integers(0, 4, 8)
    model.compile(optimizer=cnnfast.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    model.save(tmp_path / "r18.keras")
    again = cnnfast.models.load_model(tmp_path / "r18.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


class _OpZoo:
    """Small PyTorch modules, each exporting a few of the operators the importer maps."""

    @staticmethod
    def make(name):
        import torch
        import torch.nn.functional as F
        nn = torch.nn

        class Lambda(nn.Module):
            def __init__(self, fn, *mods):
                super().__init__()
                self.mods = nn.ModuleList(mods)
                self.fn = fn

            def forward(self, x):
                return self.fn(x, *self.mods)

        zoo = {
            "grouped_depthwise": (3, 12, lambda x, a, b, c: c(F.leaky_relu(b(a(x)), 0.1)),
                                  nn.Conv2d(3, 12, 3, padding=1, groups=3),
                                  nn.Conv2d(12, 24, 3, stride=1, padding=2, dilation=2, groups=4),
                                  nn.Conv2d(24, 24, 5, padding=2, groups=24, bias=False)),
            "asymmetric_strides_and_pads": (2, 11, lambda x, a: torch.tanh(a(x)),
                                            nn.Conv2d(2, 5, (3, 2), stride=(2, 1), padding=(1, 0))),
            "transposed": (4, 7, lambda x, a, b: torch.sigmoid(b(F.relu(a(x)))),
                           nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
                           nn.ConvTranspose2d(6, 3, 4, stride=2, padding=1)),
            "hard_activations": (3, 8, lambda x, a: F.hardswish(F.hardsigmoid(a(x)) * 4 - 2) + F.relu6(x * 3),
                                 nn.Conv2d(3, 3, 1)),
            "pools": (3, 13, lambda x: torch.cat([
                F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                F.avg_pool2d(x, 3, 2, 1, count_include_pad=True),
                F.max_pool2d(x, 2, 2, ceil_mode=True)[:, :, :7, :7]], dim=1)),
            "ceil_mode": (2, 9, lambda x: F.max_pool2d(x, 2, 2, ceil_mode=True) - 0.5),
            "upsample_pad_cat": (3, 6, lambda x, a: torch.cat([
                F.interpolate(a(x), scale_factor=2, mode="nearest"),
                F.pad(x, (3, 3, 2, 4)) * 2], dim=1), nn.Conv2d(3, 4, 1)),
            "batch_norm_unfolded": (3, 8, lambda x, a, b: b(F.relu(a(x))), nn.Conv2d(3, 5, 3),
                                    _randomise_batch_norm(nn.BatchNorm2d(5))),
            "reshape_permute_linear": (4, 6, lambda x, a: a(x.permute(0, 2, 3, 1).reshape(x.shape[0], 36, 4)),
                                       nn.Linear(4, 3)),
            "view_then_gemm_softmax_image": (3, 5, lambda x, a: torch.cat([
                F.softmax(x, dim=1).reshape(x.shape[0], -1), a(x.view(x.size(0), -1))], 1),
                nn.Linear(75, 7)),
            "global_pools": (6, 7, lambda x: torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1),
                                                         x.mean(dim=(2, 3), keepdim=True)], 1).flatten(1)),
        }
        cin, size, fn, *mods = zoo[name]
        return Lambda(fn, *mods), (2, cin, size, size)


@pytest.mark.parametrize("name", ["grouped_depthwise", "asymmetric_strides_and_pads", "transposed",
                                  "hard_activations", "pools", "ceil_mode", "upsample_pad_cat",
                                  "batch_norm_unfolded", "reshape_permute_linear",
                                  "view_then_gemm_softmax_image", "global_pools"])
def test_torch_operator_coverage_matches_onnx_runtime(name, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    module, shape = _OpZoo.make(name)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    path = _torch_export(module, x, tmp_path / f"{name}.onnx")
    _assert_matches_ort(path, x)
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(load_model(path).predict(x, verbose=0), want, rtol=1e-4,
                               atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("opset", [13, 21])
def test_opset_range_ends(opset, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 2))
    x = np.random.default_rng(4).standard_normal((1, 3, 6, 6)).astype(np.float32)
    path = _torch_export(net, x, tmp_path / "m.onnx", opset=min(opset, 20), dynamic=False)
    m = onnx.load(str(path))
    m.opset_import[0].version = opset    # the graph's operators mean the same in 13..21
    onnx.save(m, str(path))
    _assert_matches_ort(path, x)
    # a static batch of 1 in the file does not stop cnnfast from running a larger batch
    x4 = np.concatenate([x] * 4)
    assert load_model(path).predict(x4, verbose=0).shape == (4, 2)


def _cnnfast_models():
    L = layers
    mnist = cnnfast.Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                                L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
                                L.MaxPooling2D((2, 2)), L.Flatten(), L.Dense(128, activation="relu"),
                                L.Dropout(0.5), L.Dense(10, activation="softmax")])
    cifar = cnnfast.Sequential([L.Rescaling(1 / 255, input_shape=(32, 32, 3)), L.Conv2D(16, 3, padding="same"),
                                L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(), L.Conv2D(32, 3, strides=2,
                                padding="same", activation="relu"), L.GlobalAveragePooling2D(), L.Dense(10)])
    inp = cnnfast.Input((16, 16, 3))
    d1 = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    d2 = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")(L.MaxPooling2D(1)(d1))
    u1 = L.Conv2DTranspose(8, 2, strides=2)(d2)
    mid = L.Concatenate()([u1, L.UpSampling2D(2)(L.AveragePooling2D(2)(d1))])
    mid = L.Cropping2D(((1, 1), (2, 2)))(L.ZeroPadding2D(((1, 1), (2, 2)))(mid))
    seg = L.Conv2D(3, 1, activation="softmax")(L.Add()([mid, L.DepthwiseConv2D(3, padding="same")(mid)]))
    unet = cnnfast.Model(inp, seg)
    return {"mnist": mnist, "cifar": cifar, "unet": unet}


@pytest.mark.parametrize("name", ["mnist", "cifar", "unet"])
def test_cnnfast_exports_load_back(name, tmp_path):
    model = _cnnfast_models()[name]
    for layer in model.layers:   # non-trivial batch-norm statistics
        if isinstance(layer, layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.3, b + 0.2, m + 0.1, v * 1.7])
    shape = (3,) + model.input_shape[1:]
    x = np.random.default_rng(5).random(shape, dtype=np.float32) * (255 if name == "cifar" else 1)
    path = cnnfast.onnx.export(model, tmp_path / f"{name}.onnx")
    again = _assert_matches_ort(path, x)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4,
                               atol=1e-5)
    # the NHWC graph's Transposes to NCHW and back cancel at load time
    assert not any(isinstance(l, layers.Permute) for l in again.layers)
    if name == "cifar":   # Conv -> BatchNormalization -> Relu: one Conv2D(relu), BN folded in
        assert not any(isinstance(l, (layers.BatchNormalization, layers.ReLU)) for l in again.layers)
        assert all(l._act_name == "relu" for l in again.layers if isinstance(l, layers.Conv2D))


def test_external_data_is_read_from_the_model_folder(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(6)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 3))
    x = np.random.default_rng(6).standard_normal((2, 3, 6, 6)).astype(np.float32)
    path = _torch_export(net, x, tmp_path / "plain.onnx")
    m = onnx.load(str(path))
    ext = tmp_path / "ext"
    ext.mkdir()
    onnx.save(m, str(ext / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.weights", size_threshold=0)
    _assert_matches_ort(ext / "m.onnx", x)
    (ext / "m.weights").unlink()
    with pytest.raises(OnnxImportError, match="external data file .*m.weights.* does not exist"):
        load_model(ext / "m.onnx")
    # a location outside the model's folder is refused before anything is read
    onnx.save(m, str(ext / "m2.onnx"), save_as_external_data=True, location="w2", size_threshold=0)
    m2 = onnx.load(str(ext / "m2.onnx"), load_external_data=False)
    for t in m2.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../../etc/passwd"
    onnx.save(m2, str(ext / "m2.onnx"))
    with pytest.raises(OnnxImportError, match="outside the model's folder"):
        load_model(ext / "m2.onnx")


def _graph_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_unsupported_nodes_are_all_listed_before_anything_runs(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Erf", ["c"], ["e"], name="gelu_erf"),
             helper.make_node("LRN", ["e"], ["l"], name="lrn", size=3),
             helper.make_node("Resize", ["l", "", "s"], ["y"], name="up", mode="cubic")]
    s = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    path = tmp_path / "u.onnx"
    onnx.save(_graph_model(nodes, [_vi("x", ["n", 3, 4, 4])], [_vi("y", ["n", 4, 8, 8])], [w, s]), str(path))
    with pytest.raises(OnnxImportError) as err:
        load_model(path)
    msg = str(err.value)
    assert "3 node(s)" in msg
    for part in ("Erf 'gelu_erf' (opset 17)", "LRN 'lrn'", "Resize 'up'", "cubic"):
        assert part in msg
    assert "conv" not in msg.split("\n")[1:-1].__str__()


def test_bad_files_raise_clear_errors(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())
    x = np.zeros((1, 3, 5, 5), np.float32)
    good = _torch_export(net, x, tmp_path / "good.onnx")
    data = good.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(OnnxImportError, match="cut.onnx"):
        load_model(tmp_path / "cut.onnx")
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    with pytest.raises(OnnxImportError, match="text.onnx"):
        load_model(tmp_path / "text.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(OnnxImportError, match="no ONNX graph"):
        load_model(tmp_path / "empty.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        load_model(tmp_path / "missing.onnx")
    # symbolic spatial dimensions
    m = onnx.load(str(good))
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "height"
    onnx.save(m, str(tmp_path / "sym.onnx"))
    with pytest.raises(OnnxImportError, match="symbolic non-batch dimensions.*height"):
        load_model(tmp_path / "sym.onnx")
    # opsets outside 13..21
    for version in (9, 22):
        m = onnx.load(str(good))
        m.opset_import[0].version = version
        onnx.save(m, str(tmp_path / f"op{version}.onnx"))
        with pytest.raises(OnnxImportError, match=f"opset {version}; cnnfast reads opsets 13 to 21"):
            load_model(tmp_path / f"op{version}.onnx")


def test_dangling_names_and_cycles_are_rejected(tmp_path):
    relu = helper.make_node("Relu", ["x", ], ["a"])
    dangling = _graph_model([helper.make_node("Add", ["a", "nowhere"], ["y"]), relu],
                            [_vi("x", ["n", 3])], [_vi("y", ["n", 3])])
    onnx.save(dangling, str(tmp_path / "d.onnx"))
    with pytest.raises(OnnxImportError, match="not a valid ONNX model"):
        load_model(tmp_path / "d.onnx")
    cycle = _graph_model([helper.make_node("Relu", ["b"], ["a"]), helper.make_node("Add", ["a", "x"], ["b"])],
                         [_vi("x", ["n", 3])], [_vi("b", ["n", 3])])
    onnx.save(cycle, str(tmp_path / "c.onnx"))
    with pytest.raises(OnnxImportError, match="not a valid ONNX model"):
        load_model(tmp_path / "c.onnx")


def test_batch_mixing_reshape_and_constant_broadcast_are_named(tmp_path):
    shape = numpy_helper.from_array(np.array([-1, 3], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="mix")]
    onnx.save(_graph_model(nodes, [_vi("x", ["n", 2, 3])], [_vi("y", ["m", 3])], [shape]), str(tmp_path / "r.onnx"))
    with pytest.raises(OnnxImportError, match="'mix' \\(Reshape, opset 17\\).*batch"):
        load_model(tmp_path / "r.onnx")
    c = numpy_helper.from_array(np.ones((1, 3), np.float32), "c")
    nodes = [helper.make_node("Div", ["c", "x"], ["y"], name="recip")]
    onnx.save(_graph_model(nodes, [_vi("x", ["n", 3])], [_vi("y", ["n", 3])], [c]), str(tmp_path / "d.onnx"))
    with pytest.raises(OnnxImportError, match="'recip'"):
        load_model(tmp_path / "d.onnx")


def test_shape_arithmetic_is_folded(tmp_path):
    """The legacy exporter's dynamic ``x.view(x.size(0), -1)``: Shape -> Gather -> Unsqueeze ->
    Concat -> Reshape, all folded at load time into one Flatten that feeds the Gemm."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 3 * 3, 2)

        def forward(self, x):
            y = self.conv(x)
            return self.fc(y.view(y.size(0), -1))

    x = np.random.default_rng(7).standard_normal((2, 3, 5, 5)).astype(np.float32)
    path = _torch_export(Net(), x, tmp_path / "view.onnx")
    ops_in_file = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Shape", "Gather"} <= ops_in_file
    model = _assert_matches_ort(path, x)
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Permute", "Conv2D", "Flatten", "Dense"]


def test_missing_onnx_package_says_how_to_install(monkeypatch, tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("No module named 'onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    import importlib
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: no_onnx(name))
    with pytest.raises(ImportError, match=r"pip install 'cnnfast\[onnx\]'"):
        load_model(tmp_path / "x.onnx")


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_modes_round_trip_through_onnx_runtime(mode, tmp_path):
    """torch's interpolate (nearest and bilinear, align_corners=False) imports as UpSampling2D
    with that interpolation; cnnfast's bilinear UpSampling2D exports to what ORT computes."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return F.interpolate(self.conv(x), scale_factor=2, mode=mode,
                                 **({} if mode == "nearest" else {"align_corners": False}))
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6)).astype(np.float32)
    model = _assert_matches_ort(_torch_export(Up(), x, tmp_path / "up.onnx"), x)
    ups = [l for l in model.layers if isinstance(l, layers.UpSampling2D)]
    assert len(ups) == 1 and ups[0].interpolation == mode
    inp = cnnfast.Input((5, 6, 3))
    mine = cnnfast.Model(inp, layers.UpSampling2D((2, 3), interpolation=mode)(layers.Conv2D(2, 3)(inp)))
    xs = x.transpose(0, 2, 3, 1).copy()
    cnnfast.onnx.export(mine, tmp_path / "mine.onnx")
    np.testing.assert_allclose(_ort(tmp_path / "mine.onnx", xs)[0], mine.predict(xs, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_resize_align_corners_is_refused_by_name(tmp_path):
    torch = pytest.importorskip("torch")

    class Up(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    path = _torch_export(Up(), np.zeros((1, 2, 3, 3), np.float32), tmp_path / "ac.onnx")
    with pytest.raises(OnnxImportError, match="align_corners"):
        load_model(path)

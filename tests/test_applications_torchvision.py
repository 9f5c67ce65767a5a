"""cnnfast.applications.torchvision against torchvision's own models: the same random weights
(written by torch.save / safetensors and read back by cnnfast), the same outputs, parameter counts
and training gradients; plus the weight-loading errors and the preprocessing helpers."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from cnnfast.applications import torchvision as tv
from cnnfast.applications.torchvision import _weights

torch = pytest.importorskip("torch")

TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "mobilenet_v2": 3_504_872, "vgg16": 138_357_544, "efficientnet_b0": 5_288_548}


def _randomise_batch_norms(net):
    """Non-trivial batch-norm statistics and affine terms, so a mis-mapped one shows."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)


_NETS = {}


def _torch_net(torchvision_models, name):
    """torchvision's ``name`` with seeded random weights, in eval mode (cached: built once)."""
    if name not in _NETS:
        torch.manual_seed(0)
        net = getattr(torchvision_models, name)()
        _randomise_batch_norms(net)
        _NETS[name] = net.eval()
    return _NETS[name]


@pytest.fixture(scope="module")
def pth_files(tmp_path_factory, torchvision_models):
    """name -> the path of the torch.save'd state dict of _torch_net(name) (written once)."""
    folder = tmp_path_factory.mktemp("torchvision_weights")
    paths = {}

    def get(name):
        if name not in paths:
            paths[name] = str(folder / f"{name}.pth")
            torch.save(_torch_net(torchvision_models, name).state_dict(), paths[name])
        return paths[name]

    return get


def _images(n=2, size=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype(np.float32)


def _torch_forward(module, x_nhwc):
    with torch.no_grad():
        return module(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy())).numpy()


def _assert_close(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))


def _torch_features(net, name):
    """The torch module computing what cnnfast's include_top=False model returns (NCHW)."""
    if name.startswith("resnet"):
        return torch.nn.Sequential(*list(net.children())[:-2])
    return net.features


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet_b0"])
def test_classifier_matches_torchvision(name, torchvision_models, pth_files):
    net = _torch_net(torchvision_models, name)
    model = getattr(tv, name)(weights=pth_files(name))
    x = _images()
    ref = _torch_forward(net, x)
    assert ref.shape == (2, 1000)
    _assert_close(model.predict(x, verbose=0), ref)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == TORCHVISION_PARAMS[name]
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "efficientnet_b0"])
@pytest.mark.parametrize("pooling", [None, "avg", "max"])
def test_headless_matches_torchvision_features(name, pooling, torchvision_models, pth_files):
    net = _torch_net(torchvision_models, name)
    model = getattr(tv, name)(weights=pth_files(name), include_top=False, pooling=pooling,
                              input_shape=(64, 64, 3))
    x = _images(seed=1)
    features = _torch_forward(_torch_features(net, name), x)   # (n, c, 2, 2)
    ref = {None: features.transpose(0, 2, 3, 1), "avg": features.mean(axis=(2, 3)),
           "max": features.max(axis=(2, 3))}[pooling]
    out = model.predict(x, verbose=0)
    assert out.shape == ref.shape
    _assert_close(out, ref)


def test_safetensors_weights_match(torchvision_models, tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = _torch_net(torchvision_models, "mobilenet_v2")
    path = str(tmp_path / "mobilenet_v2.safetensors")
    safetensors_torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    model = tv.mobilenet_v2(weights=path)
    x = _images(seed=2)
    _assert_close(model.predict(x, verbose=0), _torch_forward(net, x))


def test_state_dict_mapping_and_custom_classes(torchvision_models):
    """A mapping of torch tensors works too, and a 10-class head loads from a 10-class torch net."""
    torch.manual_seed(3)
    net = torchvision_models.resnet18(num_classes=10).eval()
    model = tv.resnet18(weights=net.state_dict(), classes=10, classifier_activation="softmax")
    x = _images(seed=3)
    ref = torch.softmax(torch.from_numpy(_torch_forward(net, x)), dim=1).numpy()
    _assert_close(model.predict(x, verbose=0), ref)


def test_efficientnet_stochastic_depth_rates_match_torchvision(torchvision_models):
    """torchvision's StochasticDepth(p, "row") of each residual block is a per-sample Dropout here."""
    net = _torch_net(torchvision_models, "efficientnet_b0")
    model = tv.efficientnet_b0(include_top=False)
    ref = {name.rsplit(".", 1)[0]: m.p for name, m in net.named_modules()
           if type(m).__name__ == "StochasticDepth" and m.p > 0}
    drop_rates = {}
    for layer in model.layers:
        if type(layer).__name__ == "Dropout":
            assert layer.noise_shape[1:] == (1, 1, 1)
            drop_rates[layer.name.rsplit(".", 1)[0]] = layer.rate
    residual = {k: v for k, v in ref.items() if getattr(net.get_submodule(k), "use_res_connect", False)}
    assert drop_rates == pytest.approx(residual)
    assert len(drop_rates) == 9


def test_vgg16_with_and_without_head(torchvision_models, pth_files):
    """VGG16's head at 32x32 (a 1x1 feature map that AdaptiveAvgPool2d repeats to 7x7, then a
    C,H,W-ordered flatten) and its features with max pooling."""
    net = _torch_net(torchvision_models, "vgg16")
    path = pth_files("vgg16")
    x = _images(n=2, size=32, seed=4)
    model = tv.vgg16(weights=path, input_shape=(32, 32, 3))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == TORCHVISION_PARAMS["vgg16"]
    _assert_close(model.predict(x, verbose=0), _torch_forward(net, x))
    del model
    headless = tv.vgg16(weights=path, include_top=False, pooling="max")
    x = _images(n=1, size=64, seed=5)
    _assert_close(headless.predict(x, verbose=0), _torch_forward(net.features, x).max(axis=(2, 3)))


def test_vgg16_pools_14x14_features_to_7x7_like_torch(torchvision_models):
    """A 448x448 input: the 14x14 map is average-pooled 2x2 as AdaptiveAvgPool2d((7, 7)) does; the
    cnnfast part is checked on the pooling layers alone (the convolutions are tested above)."""
    model = tv.vgg16(input_shape=(448, 448, 3))
    pool = model.get_layer("avgpool")
    assert pool.pool_size == (2, 2) and pool.strides == (2, 2)
    fmap = np.random.default_rng(6).standard_normal((1, 14, 14, 3)).astype(np.float32)
    ref = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(fmap.transpose(0, 3, 1, 2)), (7, 7))
    _assert_close(pool(fmap), ref.numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("size", [100, 160])
def test_vgg16_head_refuses_sizes_without_an_exact_adaptive_pool(size):
    with pytest.raises(ValueError, match=r"vgg16: include_top=True needs each side .* multiple of 7"):
        tv.vgg16(input_shape=(size, size, 3))
    assert tv.vgg16(input_shape=(size, size, 3), include_top=False).output_shape == \
        (None, size // 32, size // 32, 512)


def test_resnet18_training_gradients_match_torch(torchvision_models):
    """One training step (batch statistics in the batch norms) at 32x32: every weight's gradient
    of the mean cross-entropy equals torch's."""
    from cnnfast import losses, optimizers
    torch.manual_seed(1)
    net = torchvision_models.resnet18(num_classes=10)
    _randomise_batch_norms(net)
    model = tv.resnet18(weights=net.state_dict(), classes=10, input_shape=(32, 32, 3))
    x = _images(n=4, size=32, seed=7)
    y = np.array([0, 3, 7, 9])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1),
                  loss=losses.SparseCategoricalCrossentropy(from_logits=True))
    loss, grads = model._gradients(x, y)
    net = net.double().train()   # float64 reference: the comparison sees cnnfast's rounding only
    out = net(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64)))
    ref_loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
    ref_loss.backward()
    assert loss == pytest.approx(ref_loss.item(), rel=1e-4)
    params = dict(net.named_parameters())
    torch_name = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}
    checked = 0
    for var, g in zip(model.trainable_weights, grads):
        layer, what = var.path.split("/")
        ref = params[f"{layer}.{torch_name[what]}"].grad.numpy()
        ref = ref.transpose(2, 3, 1, 0) if ref.ndim == 4 else ref.T if ref.ndim == 2 else ref
        # float32 through 20 training-mode layers: ~1e-4 of each gradient's scale (a mapping
        # mistake is of order 1)
        np.testing.assert_allclose(g, ref, rtol=1e-3, atol=5e-4 * float(np.abs(ref).max()), err_msg=var.path)
        assert np.linalg.norm(g - ref) <= 5e-4 * np.linalg.norm(ref), var.path
        checked += 1
    assert checked == len(params)


# -- weight loading errors -----------------------------------------------------------------------
def test_wrong_architecture_names_the_key_and_layer(pth_files):
    with pytest.raises(ValueError, match=r"resnet34: .*no key 'layer1\.2\.conv1\.weight'.*layer 'layer1\.2\.conv1'"):
        tv.resnet34(weights=pth_files("resnet18"))
    with pytest.raises(ValueError, match=r"resnet18: .*match no layer.*'layer1\.2\."):
        tv.resnet18(weights=pth_files("resnet34"))


def test_wrong_shape_names_the_key_and_layer(pth_files):
    with pytest.raises(ValueError, match=r"layer 'fc' \(Dense\) weight expects a tensor of shape \(10, 512\), "
                                         r"got 'fc\.weight' with shape \(1000, 512\)"):
        tv.resnet18(weights=pth_files("resnet18"), classes=10)


def test_headless_model_ignores_the_classifier_keys(pth_files, torchvision_models):
    model = tv.resnet18(weights=pth_files("resnet18"), include_top=False)
    conv1 = _torch_net(torchvision_models, "resnet18").conv1.weight.detach().numpy()
    np.testing.assert_array_equal(model.get_layer("conv1").kernel.value, conv1.transpose(2, 3, 1, 0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="resnet18: weights must be None, one of 'imagenet'"):
        tv.resnet18(weights="no_such_file.pth")
    with pytest.raises(ValueError, match="ImageNet weights have 1000 classes"):
        tv.resnet18(weights="IMAGENET1K_V1", classes=10)
    with pytest.raises(ValueError, match="mobilenet_v2: pooling must be None, 'avg' or 'max'"):
        tv.mobilenet_v2(include_top=False, pooling="mean")
    with pytest.raises(ValueError, match="at least 32"):
        tv.resnet50(input_shape=(16, 16, 3))
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        tv.resnet18(input_shape=(64, 64, 1))
    with pytest.raises(TypeError, match="input_tensor must be a tensor"):
        tv.resnet18(input_tensor=np.zeros((1, 64, 64, 3)))


def test_input_tensor_becomes_the_model_input():
    from cnnfast import layers
    inp = layers.Input(shape=(48, 48, 3))
    model = tv.mobilenet_v2(input_tensor=inp, include_top=False, pooling="avg")
    assert model.inputs[0] is inp and model.output_shape == (None, 1280)


# -- published weights: the download goes through get_file, the SHA-256 prefix is checked here --
def test_published_weights_are_downloaded_and_prefix_checked(monkeypatch, tmp_path, pth_files):
    import cnnfast.utils.file_utils as file_utils
    cached = tmp_path / "cache"
    cached.mkdir()
    source = pth_files("resnet18")
    with open(source, "rb") as f:
        data = f.read()
    prefix = hashlib.sha256(data).hexdigest()[:8]
    calls = []

    def fake_get_file(fname, origin, cache_subdir="datasets", **kwargs):
        calls.append((fname, origin, cache_subdir))
        path = cached / fname
        path.write_bytes(data)
        return str(path)

    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    monkeypatch.setitem(_weights.PUBLISHED, "resnet18", {"IMAGENET1K_V1": f"resnet18-{prefix}.pth"})
    model = tv.resnet18(weights="imagenet")
    assert calls == [(f"resnet18-{prefix}.pth", f"https://download.pytorch.org/models/resnet18-{prefix}.pth",
                      "models")]
    assert model.get_layer("fc").kernel.value.shape == (512, 1000)
    # a download whose hash does not start with the published prefix is refused and removed
    monkeypatch.setitem(_weights.PUBLISHED, "resnet18", {"IMAGENET1K_V1": "resnet18-00000000.pth"})
    if prefix == "00000000":
        pytest.skip("the random weights' hash happens to start with the forged prefix")
    with pytest.raises(ValueError, match="do not match their published SHA-256 prefix 00000000"):
        tv.resnet18(weights="IMAGENET1K_V1")
    assert not os.path.exists(cached / "resnet18-00000000.pth")


def test_published_names_match_torchvision(torchvision_models):
    for arch, names in _weights.PUBLISHED.items():
        if not hasattr(tv, arch):
            continue
        enum = torchvision_models.get_model_weights(arch)
        for name, fname in names.items():
            assert enum[name].url == "https://download.pytorch.org/models/" + fname
        assert enum.DEFAULT.name == _weights.DEFAULT[arch]


# -- preprocessing and decoding --------------------------------------------------------------------
def test_preprocess_input_is_torchvision_normalisation(torchvision_models):
    import torchvision.transforms.functional as TF
    images = np.random.default_rng(8).integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    ours = tv.preprocess_input(images)
    ref = TF.normalize(torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255),
                       mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref.transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tv.preprocess_input(images.transpose(0, 3, 1, 2), data_format="channels_first"),
                               ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="preprocess_input: expected RGB images with 3 channels"):
        tv.preprocess_input(np.zeros((2, 5, 5, 4)))


def test_decode_predictions_uses_torchvision_categories(torchvision_models):
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [1, 7, 3]] = [0.5, 0.3, 0.2]
    preds[1, 999] = 1.0
    decoded = tv.decode_predictions(preds, top=3)
    assert decoded[0] == [(1, _IMAGENET_CATEGORIES[1], 0.5), (7, _IMAGENET_CATEGORIES[7], pytest.approx(0.3)),
                          (3, _IMAGENET_CATEGORIES[3], pytest.approx(0.2))]
    assert decoded[1][0] == (999, "toilet tissue", 1.0)
    with pytest.raises(ValueError, match=r"decode_predictions: expects .* \(samples, 1000\)"):
        tv.decode_predictions(np.zeros((2, 10)))

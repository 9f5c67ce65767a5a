"""Parity with PyTorch given the same weights (imported with load_torch_state_dict): forward
outputs, one SGD step, a few Adam steps checked against the Keras formula with PyTorch's gradients,
BatchNorm, depthwise and transposed convolutions."""
import numpy as np
import pytest

from cnnfast import layers, models, optimizers
from cnnfast.saving import load_torch_state_dict

from reference.model import keras_adam

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture(autouse=True)
def _torch_setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def tutorial_pair():
    """The tutorial CNN (smaller images) in both frameworks."""
    tm = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                       nn.MaxPool2d(2), nn.Conv2d(16, 16, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 2 * 2, 32),
                       nn.ReLU(), nn.Linear(32, 10))
    cm = models.Sequential([
        layers.Input((22, 22, 1)),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"), layers.Flatten(),
        layers.Dense(32, activation="relu"), layers.Dense(10, activation="softmax")])
    load_torch_state_dict(cm, state(tm))
    return tm, cm


def test_forward_parity(rng):
    tm, cm = tutorial_pair()
    x = rng.standard_normal((6, 22, 22, 1)).astype(np.float32)
    ref = torch.softmax(tm(nchw(x)), dim=1).detach().numpy()
    np.testing.assert_allclose(cm.predict(x, verbose=0), ref, rtol=1e-4, atol=1e-6)


def test_one_sgd_step(rng):
    tm, cm = tutorial_pair()
    x = rng.standard_normal((8, 22, 22, 1)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    cm.compile(optimizers.SGD(learning_rate=0.1), "sparse_categorical_crossentropy")
    loss = cm.train_on_batch(x, y)
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    opt.zero_grad()
    tloss = nn.CrossEntropyLoss()(tm(nchw(x)), torch.from_numpy(y))
    tloss.backward()
    opt.step()
    assert loss == pytest.approx(tloss.item(), rel=1e-5)
    after = models.Sequential.from_config(cm.get_config())
    load_torch_state_dict(after, state(tm))
    for a, b in zip(cm.get_weights(), after.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_adam_steps_follow_the_keras_formula(rng):
    """Three Adam steps: gradients from PyTorch at each step's weights, the update rule from
    Keras (epsilon 1e-7, not bias-corrected) applied in float64."""
    tm, cm = tutorial_pair()
    cm.compile(optimizers.Adam(learning_rate=0.01), "sparse_categorical_crossentropy")
    start = cm.get_weights()
    grads_per_step = []
    for step in range(3):
        x = rng.standard_normal((8, 22, 22, 1)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        tm.zero_grad()
        # torch weights := cnnfast weights (inverse of the import mapping)
        with torch.no_grad():
            for p, k in zip(tm.parameters(), cm.get_weights()):
                if k.ndim == 4:
                    p.copy_(torch.from_numpy(k.transpose(3, 2, 0, 1)))
                elif k.ndim == 2 and k.shape[0] == 64:  # first Dense after Flatten: HWC -> CHW rows
                    p.copy_(torch.from_numpy(k.reshape(2, 2, 16, 32).transpose(3, 2, 0, 1).reshape(32, 64)))
                elif k.ndim == 2:
                    p.copy_(torch.from_numpy(k.T))
                else:
                    p.copy_(torch.from_numpy(k))
        nn.CrossEntropyLoss()(tm(nchw(x)), torch.from_numpy(y)).backward()
        # the gradients in cnnfast's layout: import them as if they were weights
        as_weights = models.Sequential.from_config(cm.get_config())
        load_torch_state_dict(as_weights, {k: p.grad.numpy().copy() for k, p in zip(tm.state_dict(), tm.parameters())})
        grads_per_step.append([g.astype(np.float64) for g in as_weights.get_weights()])
        cm.train_on_batch(x, y)
    for i, (w0, w) in enumerate(zip(start, cm.get_weights())):
        ref = keras_adam(w0, [g[i] for g in grads_per_step], lr=0.01)
        # Adam divides by sqrt(v): where a gradient is near zero its float32 rounding (torch's
        # kernels vs cnnfast's, which differ by CPU) moves the step by a visible fraction of
        # lr = 0.01; 1e-5 is 0.1 % of one step.
        np.testing.assert_allclose(w, ref, rtol=1e-4, atol=1e-5)


def test_batchnorm_parity_train_and_eval(rng):
    tm = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-3, momentum=0.1), nn.ReLU(),
                       nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    with torch.no_grad():
        tm[1].weight.uniform_(0.5, 1.5)
        tm[1].bias.uniform_(-0.5, 0.5)
        tm[1].running_mean.uniform_(-0.2, 0.2)
        tm[1].running_var.uniform_(0.5, 2.0)
    cm = models.Sequential([layers.Input((5, 5, 2)), layers.Conv2D(4, 3, padding="same"),
                            layers.BatchNormalization(epsilon=1e-3, momentum=0.9), layers.ReLU(), layers.Flatten(),
                            layers.Dense(3)])
    load_torch_state_dict(cm, state(tm))
    x = rng.standard_normal((7, 5, 5, 2)).astype(np.float32)
    tm.eval()
    np.testing.assert_allclose(cm.predict(x, verbose=0), tm(nchw(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    tm.train()
    ref = tm(nchw(x)).detach().numpy()
    np.testing.assert_allclose(cm(x, training=True), ref, rtol=1e-4, atol=1e-5)
    # running statistics: torch keeps the unbiased variance, Keras the biased one
    np.testing.assert_allclose(cm.layers[1].moving_mean.value, tm[1].running_mean.numpy(), rtol=1e-4, atol=1e-6)


def test_depthwise_grouped_and_transposed_convolutions(rng):
    tm = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, groups=3), nn.Conv2d(6, 4, 3, stride=2, groups=2),
                       nn.ConvTranspose2d(4, 5, 3, stride=2))
    cm = models.Sequential([layers.Input((9, 9, 3)), layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
                            layers.Conv2D(4, 3, strides=2, groups=2), layers.Conv2DTranspose(5, 3, strides=2)])
    load_torch_state_dict(cm, state(tm))
    x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    ref = tm(nchw(x)).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(cm.predict(x, verbose=0), ref, rtol=1e-4, atol=1e-5)


def test_import_from_npz_and_mismatches(tmp_path):
    tm, cm = tutorial_pair()
    path = tmp_path / "sd.npz"
    np.savez(path, **state(tm))
    other = models.Sequential.from_config(cm.get_config())
    load_torch_state_dict(other, path)
    for a, b in zip(other.get_weights(), cm.get_weights()):
        np.testing.assert_array_equal(a, b)
    sd = state(tm)
    with pytest.raises(ValueError, match=r"layer 'dense.*' \(Dense\) weight expects a tensor of shape \(10, 32\)"):
        load_torch_state_dict(cm, {**sd, "11.weight": np.zeros((10, 31), np.float32)})
    with pytest.raises(ValueError, match="tensors of the state dict were not used"):
        load_torch_state_dict(cm, {**sd, "12.weight": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="no tensor left for the bias"):
        load_torch_state_dict(cm, {k: v for k, v in sd.items() if k != "11.bias"})

"""cnnfast.ops element-wise family: activations, bias, softmax, fused softmax + cross-entropy,
dropout and batch normalisation.

Checked against float64 references (tests/reference/eltwise.py) on every ISA path and 1 and 2
threads, against finite differences, against PyTorch, for determinism, and on bad input.
"""
from __future__ import annotations

import numpy as np
import pytest

import cnnfast
from cnnfast import ops
from reference import eltwise as ref

# 0, tails of every vector width, and 100,003 elements (> 128 KB: runs on 2 threads)
SIZES = [0, 1, 7, 16, 17, 33, 1000, 100_003]
SPECIAL = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.5, -0.5, 0.62, 0.63, 5.0, -5.0, 9.5, -9.5,
                    20.0, -20.0, 88.0, -88.0, 100.0, -100.0, 1e30, -1e30, np.inf, -np.inf], np.float32)


def _data(rng, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    k = min(n, SPECIAL.size)
    x[:k] = SPECIAL[:k]
    return x


def _with_threads(nt, fn):
    previous = cnnfast.get_num_threads()
    cnnfast.set_num_threads(nt)
    try:
        return fn()
    finally:
        cnnfast.set_num_threads(previous)


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", SIZES)
def test_activations_match_reference(isa, threads, rng, n):
    x = _data(rng, n)
    dy = rng.standard_normal(n).astype(np.float32)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(ops.relu(x), ref.relu(x).astype(np.float32))
        np.testing.assert_array_equal(ops.leaky_relu(x, 0.2), ref.leaky_relu(x, np.float32(0.2)).astype(np.float32))
        np.testing.assert_allclose(ops.sigmoid(x), ref.sigmoid(x), rtol=4e-7, atol=1e-37)
        np.testing.assert_allclose(ops.tanh(x), np.tanh(x.astype(np.float64)), rtol=4e-7, atol=1e-37)
        y = ops.relu(x)
        np.testing.assert_array_equal(ops.relu_backward(dy, y), ref.relu_backward(dy, y).astype(np.float32))
        np.testing.assert_allclose(ops.leaky_relu_backward(dy, x, 0.2),
                                   ref.leaky_relu_backward(dy, x, np.float32(0.2)), rtol=1e-7)
        s = ops.sigmoid(x)
        np.testing.assert_allclose(ops.sigmoid_backward(dy, s), ref.sigmoid_backward(dy, s), rtol=1e-6, atol=1e-30)
        t = ops.tanh(x)
        np.testing.assert_allclose(ops.tanh_backward(dy, t), ref.tanh_backward(dy, t), rtol=1e-6, atol=1e-7)


def test_activations_propagate_nan(isa):
    x = np.array([np.nan, 1.0, -1.0] * 11, np.float32)
    for fn in (ops.relu, ops.leaky_relu, ops.sigmoid, ops.tanh):
        y = fn(x)
        assert np.isnan(y[::3]).all() and not np.isnan(y[1::3]).any(), fn.__name__


def test_activation_shapes_dtypes_and_out(rng):
    x64 = rng.standard_normal((3, 4, 5))  # float64 input is converted
    y = ops.relu(x64)
    assert y.dtype == np.float32 and y.shape == x64.shape
    out = np.empty((3, 4, 5), np.float32)
    assert ops.relu(x64, out=out) is out
    np.testing.assert_array_equal(out, y)
    assert ops.relu(np.float32(-2.0)).shape == ()  # 0-D works
    back = np.empty_like(out)
    assert ops.relu_backward(x64, y, out=back) is back
    view = rng.standard_normal((6, 8)).astype(np.float32)[:, ::2]  # non-contiguous input is copied
    np.testing.assert_array_equal(ops.tanh(view), ops.tanh(np.ascontiguousarray(view)))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "leaky_relu", "relu"])
def test_activation_gradients_by_finite_differences(rng, name):
    x = rng.standard_normal(40)
    x = np.where(np.abs(x) < 0.05, 0.3, x)  # keep away from the (leaky) ReLU kink
    fwd = getattr(ops, name)
    r = rng.standard_normal(40)
    y = fwd(x)
    if name in ("relu", "sigmoid", "tanh"):
        dx = getattr(ops, name + "_backward")(r, y)
    else:
        dx = ops.leaky_relu_backward(r, x)
    eps = 1e-3
    num = np.array([(np.sum(r * fwd(x + eps * e)) - np.sum(r * fwd(x - eps * e))) / (2 * eps)
                    for e in np.eye(40)])
    np.testing.assert_allclose(dx, num, rtol=2e-3, atol=2e-3)


def test_activations_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = _data(rng, 1000)
    xt = torch.from_numpy(x)
    np.testing.assert_array_equal(ops.relu(x), torch.relu(xt).numpy())
    np.testing.assert_array_equal(ops.leaky_relu(x, 0.3), torch.nn.functional.leaky_relu(xt, 0.3).numpy())
    np.testing.assert_allclose(ops.sigmoid(x), torch.sigmoid(xt).numpy(), rtol=1e-6, atol=1e-37)
    np.testing.assert_allclose(ops.tanh(x), torch.tanh(xt).numpy(), rtol=1e-6, atol=1e-37)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("cap", [6.0, 0.5, 0.0])
def test_capped_relu_matches_reference(isa, threads, rng, n, cap):
    x = _data(rng, n)
    dy = rng.standard_normal(n).astype(np.float32)
    want = np.minimum(np.maximum(x.astype(np.float64), 0), cap).astype(np.float32)
    y = ops.capped_relu(x, cap)
    np.testing.assert_array_equal(y, want)
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(ops.capped_relu_backward(dy, y, cap),
                                  np.where((x64 > 0) & (x64 < cap), dy, 0).astype(np.float32))
    inplace = x.copy()   # the layers cap a convolution's output where it lies
    assert ops.capped_relu(inplace, cap, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)


def test_capped_relu_nan_gradient_torch_and_bad_cap(isa, rng):
    x = np.array([np.nan, 7.0, -1.0, 3.0] * 9, np.float32)
    y = ops.capped_relu(x, 6)
    assert np.isnan(y[::4]).all() and (y[1::4] == 6).all() and (y[2::4] == 0).all()
    np.testing.assert_array_equal(ops.capped_relu_backward(np.ones_like(x), y, 6)[:4], [0, 0, 0, 1])
    z = rng.standard_normal(40) * 5
    z = np.where(np.abs(z) < 0.05, 0.3, np.where(np.abs(z - 6) < 0.05, 5.5, z))
    r = rng.standard_normal(40)
    eps = 1e-3
    num = np.array([(np.sum(r * ops.capped_relu(z + eps * e, 6)) - np.sum(r * ops.capped_relu(z - eps * e, 6)))
                    / (2 * eps) for e in np.eye(40)])
    np.testing.assert_allclose(ops.capped_relu_backward(r, ops.capped_relu(z, 6), 6), num, rtol=2e-3, atol=2e-3)
    for bad in (-1.0, np.nan, np.inf, "six", None):
        with pytest.raises((ValueError, TypeError), match="capped_relu"):
            ops.capped_relu(x, bad)
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(_data(rng, 1000)).requires_grad_()
    yt = torch.nn.functional.relu6(xt)
    g = torch.from_numpy(rng.standard_normal(1000).astype(np.float32))
    yt.backward(g)
    y = ops.capped_relu(xt.detach().numpy(), 6)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(ops.capped_relu_backward(g.numpy(), y, 6), xt.grad.numpy())


# ---------------------------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,axis", [((1, 1), -1), ((5, 10), -1), ((3, 17), 1), ((4, 33), 0), ((2, 7, 19), 1),
                                        ((3, 5, 6, 17), -1), ((2, 9, 4, 35), 2), ((700, 40), -1), ((40, 700), 0)])
def test_softmax_matches_reference(isa, threads, rng, shape, axis):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    y = ops.softmax(x, axis=axis)
    np.testing.assert_allclose(y, ref.softmax(x, axis), rtol=3e-6, atol=1e-37)
    dy = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ops.softmax_backward(dy, y, axis=axis), ref.softmax_backward(dy, y, axis),
                               rtol=1e-4, atol=2e-6)


def test_softmax_is_stable_for_huge_and_infinite_logits(isa):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-np.inf, 0.0, 3.0], [88.0, 89.0, 90.0], [-200.0, -201.0, -202.0]], np.float32)
    y = ops.softmax(x)
    assert np.all(np.isfinite(y))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(y, ref.softmax(x), rtol=2e-6, atol=1e-38)
    assert np.isnan(ops.softmax(np.array([[1.0, np.nan, 2.0]], np.float32))).all()


def test_softmax_gradient_by_finite_differences(rng):
    x = rng.standard_normal((3, 5))
    r = rng.standard_normal((3, 5))
    for axis in (0, 1):
        dx = ops.softmax_backward(r, ops.softmax(x, axis), axis)
        eps = 1e-3
        num = np.zeros(x.size)
        for i in range(x.size):
            e = np.zeros(x.size)
            e[i] = eps
            e = e.reshape(x.shape)
            num[i] = (np.sum(r * ops.softmax(x + e, axis)) - np.sum(r * ops.softmax(x - e, axis))) / (2 * eps)
        np.testing.assert_allclose(dx.reshape(-1), num, rtol=2e-3, atol=2e-4)


def test_softmax_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 5, 11)).astype(np.float32)
    for axis in (0, 1, 2, -1):
        np.testing.assert_allclose(ops.softmax(x, axis), torch.softmax(torch.from_numpy(x), axis).numpy(),
                                   rtol=2e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# Bias
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (64, 10), (5, 4, 4, 17), (64, 26, 26, 32), (100_000, 1)])
def test_bias_add_and_gradient(isa, threads, rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[-1]).astype(np.float32)
    np.testing.assert_array_equal(ops.bias_add(x, b), x + b)
    db = ops.bias_add_backward(x)
    np.testing.assert_allclose(db, x.astype(np.float64).reshape(-1, shape[-1]).sum(axis=0),
                               rtol=1e-5, atol=2e-5 * np.sqrt(x.size / shape[-1]))


def test_bias_gradient_is_thread_count_independent(isa, rng):
    dy = rng.standard_normal((64, 26, 26, 32)).astype(np.float32)
    one = _with_threads(1, lambda: ops.bias_add_backward(dy))
    two = _with_threads(2, lambda: ops.bias_add_backward(dy))
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, ops.bias_add_backward(dy))


def test_bias_add_out_and_bad_arguments(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    b = np.ones(3, np.float32)
    out = np.empty_like(x)
    assert ops.bias_add(x, b, out=out) is out
    with pytest.raises(ValueError, match=r"bias_add: bias must have shape \(3,\)"):
        ops.bias_add(x, np.ones(4))
    with pytest.raises(ValueError, match="bias_add: bias must be 1-D"):
        ops.bias_add(x, np.ones((1, 3)))
    with pytest.raises(ValueError, match="bias_add: out overlaps an input"):
        ops.bias_add(x, b, out=x)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ops.bias_add_backward(np.float32(1))
    assert ops.bias_add_backward(np.zeros((0, 5))).tolist() == [0.0] * 5


# ---------------------------------------------------------------------------------------------
# Fused softmax + cross-entropy
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,c", [(1, 1), (1, 10), (64, 10), (7, 33), (5000, 17)])
def test_softmax_cross_entropy_with_class_labels(isa, threads, rng, n, c):
    z = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    labels = rng.integers(0, c, n)
    loss, dz, p = ops.softmax_cross_entropy(z, labels, return_probs=True)
    ref_loss, ref_dz = ref.cross_entropy(z, ref.one_hot(labels, c))
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dz, ref_dz, rtol=1e-5, atol=5e-7 / n)  # p - 1 cancels at the label
    np.testing.assert_allclose(p, ref.softmax(z), rtol=3e-6, atol=1e-30)
    for lab in (labels.reshape(n, 1), labels.astype(np.float64), labels.astype(np.uint8) if c < 256 else labels):
        l2, d2 = ops.softmax_cross_entropy(z, lab)
        assert l2 == loss
        np.testing.assert_array_equal(d2, dz)
    one_hot = [ref.one_hot(labels, c)] + ([ref.one_hot(labels, c).astype(np.int8)] if c > 1 else [])
    for rows in one_hot:  # one-hot rows, float or (unless (N, 1) is ambiguous) integer
        l3, d3 = ops.softmax_cross_entropy(z, rows)
        np.testing.assert_allclose(l3, loss, rtol=1e-6)
        np.testing.assert_allclose(d3, dz, rtol=1e-5, atol=5e-7 / n)


@pytest.mark.parametrize("weights", [None, "vector", "column", "scalar"])
def test_softmax_cross_entropy_with_probabilities_and_weights(isa, rng, weights):
    n, c = 37, 9
    z = (rng.standard_normal((n, c)) * 2).astype(np.float32)
    t = rng.random((n, c))
    t /= t.sum(axis=1, keepdims=True)
    t[0] *= 0.5  # unnormalised row: the gradient stays exact (softmax * sum(t) - t)
    w = rng.random(n)
    sw = {None: None, "vector": w, "column": w[:, None], "scalar": 2.5}[weights]
    loss, dz = ops.softmax_cross_entropy(z, t, sample_weight=sw)
    ref_w = None if sw is None else np.broadcast_to(np.asarray(sw).reshape(-1), (n,)) if np.ndim(sw) else np.full(n, sw)
    ref_loss, ref_dz = ref.cross_entropy(z, t, ref_w)
    np.testing.assert_allclose(loss, ref_loss, rtol=2e-6)
    np.testing.assert_allclose(dz, ref_dz, rtol=2e-5, atol=1e-8)


def test_softmax_cross_entropy_gradient_by_finite_differences(rng):
    z = rng.standard_normal((4, 6))
    labels = np.array([0, 5, 2, 2])
    w = rng.random(4)
    _, dz = ops.softmax_cross_entropy(z, labels, sample_weight=w)
    eps = 1e-3
    num = np.zeros(z.size)
    for i in range(z.size):
        e = np.zeros(z.size)
        e[i] = eps
        e = e.reshape(z.shape)
        num[i] = (ops.softmax_cross_entropy(z + e, labels, w)[0] - ops.softmax_cross_entropy(z - e, labels, w)[0]) / (2 * eps)
    np.testing.assert_allclose(dz.reshape(-1), num, rtol=3e-3, atol=3e-5)


def test_softmax_cross_entropy_is_stable_and_handles_higher_rank(isa, rng):
    z = np.array([[1e4, -1e4, 0.0], [50.0, 50.0, 50.0]], np.float32)
    loss, dz = ops.softmax_cross_entropy(z, [1, 2])
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    np.testing.assert_allclose(loss, (2e4 + np.log(3)) / 2, rtol=1e-6)
    z3 = rng.standard_normal((2, 3, 5)).astype(np.float32)
    lab = rng.integers(0, 5, (2, 3))
    l3, d3 = ops.softmax_cross_entropy(z3, lab)
    l2, d2 = ops.softmax_cross_entropy(z3.reshape(6, 5), lab.reshape(6))
    assert d3.shape == z3.shape
    np.testing.assert_allclose(l3, l2, rtol=1e-7)
    np.testing.assert_allclose(d3.reshape(6, 5), d2, rtol=1e-7)


def test_softmax_cross_entropy_matches_torch(rng):
    torch = pytest.importorskip("torch")
    z = rng.standard_normal((64, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    w = rng.random(64).astype(np.float32)
    zt = torch.from_numpy(z).requires_grad_(True)
    per = torch.nn.functional.cross_entropy(zt, torch.from_numpy(labels), reduction="none")
    lt = (per * torch.from_numpy(w)).sum() / 64
    lt.backward()
    loss, dz = ops.softmax_cross_entropy(z, labels, sample_weight=w)
    np.testing.assert_allclose(loss, lt.item(), rtol=2e-6)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=2e-5, atol=1e-8)
    t = torch.softmax(torch.from_numpy(rng.standard_normal((64, 10)).astype(np.float32)), 1)
    np.testing.assert_allclose(ops.softmax_cross_entropy(z, t.numpy())[0],
                               torch.nn.functional.cross_entropy(torch.from_numpy(z), t).item(), rtol=2e-6)


def test_softmax_cross_entropy_bad_arguments(rng):
    z = rng.standard_normal((4, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: class labels must lie in \[0, 3\)"):
        ops.softmax_cross_entropy(z, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="softmax_cross_entropy: class labels must lie"):
        ops.softmax_cross_entropy(z, [0, -1, 2, 1])
    with pytest.raises(ValueError, match="whole class indices"):
        ops.softmax_cross_entropy(z, [0.5, 1, 2, 1])
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\) or \(4, 1\)"):
        ops.softmax_cross_entropy(z, [0, 1, 2])
    with pytest.raises(TypeError, match="labels must be integer class indices or float"):
        ops.softmax_cross_entropy(z, np.array(["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="logits must be at least 2-D"):
        ops.softmax_cross_entropy(z[0], [0])
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        ops.softmax_cross_entropy(z, [0, 1, 2, 1], sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="at least one class"):
        ops.softmax_cross_entropy(np.zeros((2, 0)), [0, 0])
    loss, dz = ops.softmax_cross_entropy(np.zeros((0, 3)), np.zeros(0, np.int64))
    assert loss == 0.0 and dz.shape == (0, 3)


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

def test_philox_reference_matches_published_vectors():
    # Random123 kat_vectors, philox4x32 10: (counter, key) -> output
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((M := 0xFFFFFFFF, M, M, M), (M, M), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, expected in cases:
        assert tuple(int(v[0]) for v in ref.philox4x32_10([[c] for c in ctr], key)) == expected


@pytest.mark.parametrize("n", [1, 15, 64, 100, 1000, 70_001])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_dropout_mask_follows_the_documented_philox_mapping(isa, threads, n, rate):
    seed, step = 0x1234_5678_9ABC_DEF0, 2**33 + 7
    y = ops.dropout(np.ones(n, np.float32), rate, seed, step)
    keep = ref.dropout_keep(n, rate, seed, step)
    np.testing.assert_array_equal(y != 0, keep)
    np.testing.assert_allclose(y[keep], 1.0 / (1.0 - rate), rtol=1e-7)


def test_dropout_statistics_scaling_and_backward(isa, rng):
    x = rng.standard_normal((200, 1000)).astype(np.float32)
    y = ops.dropout(x, 0.3, seed=7, step=11)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.005  # 200k Bernoulli(0.7) draws: sd 0.001
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = ops.dropout_backward(dy, 0.3, seed=7, step=11)
    np.testing.assert_array_equal(dx != 0, kept)
    np.testing.assert_allclose(dx[kept], dy[kept] / 0.7, rtol=1e-6)
    other = ops.dropout(x, 0.3, seed=7, step=12) != 0
    assert 0.4 < np.mean(other == kept) < 0.7  # a new step gives an independent mask
    assert np.mean((ops.dropout(x, 0.3, seed=8, step=11) != 0) == kept) < 0.7


def test_dropout_is_independent_of_threads_and_isa(rng):
    x = rng.standard_normal(300_001).astype(np.float32)
    results = []
    for isa in cnnfast.available_isas():
        with cnnfast.use_isa(isa):
            for nt in (1, 2):
                results.append(_with_threads(nt, lambda: ops.dropout(x, 0.25, 99, 3)))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_dropout_arguments():
    x = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(ops.dropout(x, 0.0, 1, 1), x)
    assert ops.dropout(np.zeros((0, 4)), 0.5, 1, 1).shape == (0, 4)
    for rate in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="dropout: rate"):
            ops.dropout(x, rate, 1, 1)
    with pytest.raises(ValueError, match="dropout: seed must be >= 0"):
        ops.dropout(x, 0.5, -1, 1)
    with pytest.raises(ValueError, match="dropout_backward: step must be < 2"):
        ops.dropout_backward(x, 0.5, 1, 2**64)
    with pytest.raises(TypeError, match="dropout: seed must be an integer"):
        ops.dropout(x, 0.5, 1.5, 1)


# ---------------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------------

def _bn_params(rng, c):
    return (rng.random(c).astype(np.float32) + 0.5, rng.standard_normal(c).astype(np.float32),
            rng.standard_normal(c).astype(np.float32), rng.random(c).astype(np.float32) + 0.5)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (64, 10), (3, 5, 5, 17), (64, 13, 13, 32), (600, 1)])
def test_batch_norm_training_matches_reference(isa, threads, rng, shape):
    c = shape[-1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(rng, c)
    mm0, mv0 = mm.copy(), mv.copy()
    y, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, mm, mv, momentum=0.9, epsilon=1e-3, training=True)
    mu, var = ref.batch_stats(x)
    np.testing.assert_allclose(mean, mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inv_std, 1 / np.sqrt(var + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(y, ref.batch_norm(x, gamma, beta, mu, var, 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mm, mm0 * 0.9 + mu * 0.1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mv, mv0 * 0.9 + var * 0.1, rtol=1e-5, atol=1e-6)

    dy = rng.standard_normal(shape).astype(np.float32)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, inv_std)
    rdx, rdg, rdb = ref.batch_norm_backward_training(dy, x, gamma, 1e-3)
    scale = np.sqrt(x.size / c)
    np.testing.assert_allclose(dbeta, rdb, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(dgamma, rdg, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(dx, rdx.reshape(shape), rtol=1e-3, atol=1e-4)


def test_batch_norm_inference_and_optional_affine(isa, rng):
    x = rng.standard_normal((10, 6)).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(rng, 6)
    mm0, mv0 = mm.copy(), mv.copy()
    y, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=False)
    np.testing.assert_array_equal(mm, mm0)  # unchanged
    np.testing.assert_array_equal(mv, mv0)
    np.testing.assert_array_equal(mean, mm0)
    np.testing.assert_allclose(y, ref.batch_norm(x, gamma, beta, mm0, mv0, 1e-3), rtol=1e-5, atol=1e-5)
    y0, _, _ = ops.batch_norm_forward(x, None, None, mm, mv, training=False)  # scale=False, center=False
    np.testing.assert_allclose(y0, ref.batch_norm(x, 1.0, 0.0, mm0, mv0, 1e-3), rtol=1e-5, atol=1e-5)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, inv_std, training=False)
    np.testing.assert_allclose(dx, dy * gamma * inv_std, rtol=1e-6)
    np.testing.assert_allclose(dbeta, dy.sum(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dgamma, (dy * (x - mean) * inv_std).sum(axis=0), rtol=1e-4, atol=1e-5)


def test_batch_norm_statistics_survive_a_large_offset(isa, rng):
    x = (1e4 + rng.standard_normal((4096, 3))).astype(np.float32)  # var / mean^2 = 1e-8
    mm, mv = np.zeros(3, np.float32), np.ones(3, np.float32)
    _, mean, inv_std = ops.batch_norm_forward(x, None, None, mm, mv, momentum=0.0, training=True)
    mu, var = ref.batch_stats(x)
    np.testing.assert_allclose(mv, var, rtol=1e-4)
    np.testing.assert_allclose(mean, mu, rtol=1e-7)


def test_batch_norm_gradient_by_finite_differences(rng):
    shape = (6, 3, 4)
    x = rng.standard_normal(shape)
    gamma, beta, mm, mv = _bn_params(rng, 4)
    r = rng.standard_normal(shape)

    def f(z):
        return np.sum(r * ops.batch_norm_forward(z, gamma, beta, mm.copy(), mv.copy(), training=True)[0])

    _, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, mm.copy(), mv.copy(), training=True)
    dx, dgamma, dbeta = ops.batch_norm_backward(r, x, gamma, mean, inv_std)
    eps = 1e-2
    for i in rng.choice(x.size, 20, replace=False):
        e = np.zeros(x.size)
        e[i] = eps
        e = e.reshape(shape)
        num = (f(x + e) - f(x - e)) / (2 * eps)
        assert abs(num - dx.reshape(-1)[i]) < 2e-3 * max(1, abs(num)), (i, num, dx.reshape(-1)[i])
    for j in range(4):
        e = np.zeros(4, np.float32)
        e[j] = eps
        g = lambda gm: np.sum(r * ops.batch_norm_forward(x, gm, beta, mm.copy(), mv.copy(), training=True)[0])  # noqa: E731
        np.testing.assert_allclose(dgamma[j], (g(gamma + e) - g(gamma - e)) / (2 * eps), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(dbeta, r.reshape(-1, 4).sum(axis=0), rtol=1e-5, atol=1e-5)


def test_batch_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 5, 5, 6)).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(rng, 6)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    gt, bt = torch.from_numpy(gamma.copy()).requires_grad_(True), torch.from_numpy(beta.copy()).requires_grad_(True)
    yt = torch.nn.functional.batch_norm(xt, torch.zeros(6), torch.ones(6), gt, bt, training=True, eps=1e-3)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    yt.backward(torch.from_numpy(dy.transpose(0, 3, 1, 2).copy()))
    y, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, mm, mv, training=True)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-5)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, inv_std)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_batch_norm_is_thread_count_independent(isa, rng):
    x = rng.standard_normal((64, 13, 13, 32)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(rng, 32)

    def run():
        m, v = mm.copy(), mv.copy()
        y, mean, inv_std = ops.batch_norm_forward(x, gamma, beta, m, v, training=True)
        return (y, mean, inv_std, m, v) + ops.batch_norm_backward(dy, x, gamma, mean, inv_std)

    for a, b in zip(_with_threads(1, run), _with_threads(2, run)):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_bad_arguments(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    gamma, beta, mm, mv = _bn_params(rng, 3)
    op = ops.batch_norm_forward
    with pytest.raises(TypeError, match="batch_norm_forward: moving_mean must have dtype float32"):
        op(x, gamma, beta, mm.astype(np.float64), mv, training=True)
    with pytest.raises(ValueError, match=r"moving_var must have shape \(3,\)"):
        op(x, gamma, beta, mm, mv[:2], training=True)
    ro = mv.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="moving_var is read-only"):
        op(x, gamma, beta, mm, ro, training=True)
    op(x, gamma, beta, mm, ro, training=False)  # read-only is fine when nothing is written
    with pytest.raises(ValueError, match="moving_mean must be C-contiguous"):
        op(x, gamma, beta, np.zeros(6, np.float32)[::2], mv, training=True)
    with pytest.raises(ValueError, match="moving_var overlaps moving_mean"):
        op(x, gamma, beta, mm, mm, training=True)
    with pytest.raises(TypeError, match="moving_mean must be a numpy.ndarray"):
        op(x, gamma, beta, [0.0, 0.0, 0.0], mv, training=True)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        op(x, gamma[:2], beta, mm, mv, training=True)
    with pytest.raises(TypeError, match="training must be True or False"):
        op(x, gamma, beta, mm, mv, training=1)
    with pytest.raises(TypeError, match="training"):
        op(x, gamma, beta, mm, mv)  # training is required
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        op(x, gamma, beta, mm, mv, epsilon=-1.0, training=True)
    with pytest.raises(ValueError, match="momentum must be finite"):
        op(x, gamma, beta, mm, mv, momentum=float("inf"), training=True)
    with pytest.raises(ValueError, match="empty batch"):
        op(np.zeros((0, 3)), gamma, beta, mm, mv, training=True)
    y, mean, inv_std = op(np.zeros((0, 3)), gamma, beta, mm, mv, training=False)
    assert y.shape == (0, 3)
    dx, dg, db = ops.batch_norm_backward(np.zeros((0, 3)), np.zeros((0, 3)), gamma, mean, inv_std)
    assert dx.shape == (0, 3) and not dg.any() and not db.any()
    with pytest.raises(ValueError, match="batch_norm_backward: dy and x must have the same shape"):
        ops.batch_norm_backward(x[:2], x, gamma, mean, inv_std)


# ---------------------------------------------------------------------------------------------
# Shared argument handling
# ---------------------------------------------------------------------------------------------

def test_elementwise_bad_arguments_and_zero_sizes(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="relu: x must be a real numeric array"):
        ops.relu(x.astype(np.complex64))
    with pytest.raises(TypeError, match="sigmoid: x must be a real numeric array"):
        ops.sigmoid(np.array(["a"]))
    with pytest.raises(ValueError, match="relu_backward: dy and y must have the same shape"):
        ops.relu_backward(x, x[:2])
    with pytest.raises(ValueError, match=r"relu: out must have shape \(3, 4\)"):
        ops.relu(x, out=np.empty((4, 3), np.float32))
    with pytest.raises(TypeError, match="relu: out must have dtype float32"):
        ops.relu(x, out=np.empty((3, 4)))
    with pytest.raises(ValueError, match="relu: out must be C-contiguous"):
        ops.relu(x, out=np.empty((4, 3), np.float32).T)
    ro = np.empty((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="relu: out is read-only"):
        ops.relu(x, out=ro)
    buf = np.zeros(13, np.float32)   # exactly the input: in place; a partial overlap: refused
    with pytest.raises(ValueError, match="relu: out overlaps an input"):
        ops.relu(buf[:12].reshape(3, 4), out=buf[1:].reshape(3, 4))
    inplace = x.copy()
    assert ops.relu(inplace, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, np.maximum(x, 0))
    with pytest.raises(ValueError, match="softmax: axis 2 is out of range"):
        ops.softmax(x, axis=2)
    with pytest.raises(ValueError, match="leaky_relu: negative_slope must be finite"):
        ops.leaky_relu(x, float("nan"))
    for fn in (ops.relu, ops.sigmoid, ops.tanh, ops.leaky_relu, ops.softmax):
        assert fn(np.zeros((0, 5))).shape == (0, 5)
    assert ops.softmax(np.zeros((4, 0)), axis=1).shape == (4, 0)
    assert ops.softmax_backward(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)

"""Losses (values and gradients, Keras semantics), metrics (accuracy resolution, weighting) and
to_categorical."""
import numpy as np
import pytest

from cnnfast import losses, metrics
from cnnfast.utils import to_categorical

from reference.model import binary_ce, categorical_ce, fd_grad, softmax, sparse_ce


def _probs(rng, n, c):
    return softmax(rng.standard_normal((n, c)) * 2)


def _check_grad(loss, y, pred, sw=None):
    value, grad = loss.value_and_grad(y, pred, sw)
    assert value == pytest.approx(loss(y, pred, sample_weight=sw), rel=1e-6, abs=1e-9)
    ref = fd_grad(lambda p: loss(y, p, sample_weight=sw), pred, eps=1e-7)
    np.testing.assert_allclose(grad, ref, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy(from_logits, rng):
    n, c = 6, 4
    pred = rng.standard_normal((n, c)) if from_logits else _probs(rng, n, c)
    y = rng.integers(0, c, n)
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    assert loss(y, pred) == pytest.approx(sparse_ce(y, pred, from_logits).mean(), rel=1e-9)
    assert loss(y[:, None], pred) == pytest.approx(loss(y, pred), rel=1e-12)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(y, pred, from_logits),
                               sparse_ce(y, pred, from_logits), rtol=1e-9)
    w = rng.random(n)
    assert loss(y, pred, sample_weight=w) == pytest.approx((sparse_ce(y, pred, from_logits) * w).sum() / n)
    _check_grad(loss, y, pred, w)


def test_crossentropy_renormalises_and_clips_like_keras():
    pred = np.array([[2.0, 0.0, 2.0], [0.5, 0.5, 0.0]])  # not normalised; a zero probability
    y = np.array([0, 2])
    expect = [-np.log(0.5), -np.log(1e-7)]
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(y, pred), expect, rtol=1e-9)
    np.testing.assert_allclose(losses.categorical_crossentropy(to_categorical(y, 3), pred), expect, rtol=1e-9)
    _check_grad(losses.SparseCategoricalCrossentropy(), y, pred + 0.1)


@pytest.mark.parametrize("from_logits,smoothing", [(False, 0.0), (True, 0.0), (False, 0.1)])
def test_categorical_crossentropy(from_logits, smoothing, rng):
    pred = rng.standard_normal((5, 3)) if from_logits else _probs(rng, 5, 3)
    t = _probs(rng, 5, 3)
    loss = losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)
    ts = t * (1 - smoothing) + smoothing / 3
    assert loss(t, pred) == pytest.approx(categorical_ce(ts, pred, from_logits).mean(), rel=1e-9)
    _check_grad(loss, t, pred)


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy(from_logits, rng):
    pred = rng.standard_normal((6, 2)) if from_logits else rng.uniform(0.05, 0.95, (6, 2))
    t = rng.integers(0, 2, (6, 2)).astype(float)
    loss = losses.BinaryCrossentropy(from_logits=from_logits)
    assert loss(t, pred) == pytest.approx(binary_ce(t, pred, from_logits).mean(), rel=1e-9)
    _check_grad(loss, t, pred, rng.random(6))
    if from_logits:
        value, grad = loss.value_and_grad_from_logits(t, pred)
        assert value == pytest.approx(loss(t, pred), rel=1e-6)


def test_regression_losses_and_reductions(rng):
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert losses.MeanSquaredError()(t, p) == pytest.approx(((p - t) ** 2).mean())
    assert losses.MeanAbsoluteError()(t, p) == pytest.approx(np.abs(p - t).mean())
    assert losses.MeanSquaredError(reduction="sum")(t, p) == pytest.approx(((p - t) ** 2).mean(-1).sum())
    np.testing.assert_allclose(losses.MeanSquaredError(reduction=None)(t, p), ((p - t) ** 2).mean(-1))
    for loss in (losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.MeanSquaredError(reduction="sum")):
        _check_grad(loss, t, p + 0.01, rng.random(4))
    with pytest.raises(ValueError, match="reduction must be one of"):
        losses.MeanSquaredError(reduction="average")


def test_loss_lookup():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("MAE"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("bce"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("SparseCategoricalCrossentropy"), losses.SparseCategoricalCrossentropy)
    assert isinstance(losses.get(losses.categorical_crossentropy), losses.CategoricalCrossentropy)
    cfg = losses.serialize(losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2))
    assert losses.deserialize(cfg).get_config() == cfg["config"]
    with pytest.raises(ValueError, match="Unknown loss 'sparse_crossentropy'"):
        losses.get("sparse_crossentropy")
    with pytest.raises(TypeError, match="differentiate"):
        losses.get(lambda a, b: 0.0)


def test_targets_are_validated_with_clear_messages():
    scce = losses.SparseCategoricalCrossentropy()
    np.testing.assert_array_equal(scce.prepare_targets(np.array([[1], [2]]), (2, 3)), [1, 2])
    with pytest.raises(ValueError, match=r"one integer class index per sample, of shape \(N,\) or \(N, 1\), got "
                                         r"\(2, 3\); one-hot targets need loss='categorical_crossentropy'"):
        scce.prepare_targets(np.eye(3)[:2], (2, 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 5\] but the model has 3 outputs"):
        scce.prepare_targets(np.array([0, 5]), (2, 3))
    with pytest.raises(ValueError, match="whole class indices"):
        scce.prepare_targets(np.array([0.5, 1.0]), (2, 3))
    cce = losses.CategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"must have the shape of the model's output \(N, 3\), got \(2,\); "
                                         r"integer class labels need loss='sparse_categorical_crossentropy'"):
        cce.prepare_targets(np.array([0, 1]), (2, 3))
    mse = losses.MeanSquaredError()
    assert mse.prepare_targets(np.array([1.0, 2.0]), (2, 1)).shape == (2, 1)


def test_accuracy_resolution_follows_keras():
    m = metrics.resolve_accuracy("accuracy", (8,), (8, 10))
    assert isinstance(m, metrics.SparseCategoricalAccuracy) and m.name == "accuracy"
    assert isinstance(metrics.resolve_accuracy("acc", (8, 1), (8, 10)), metrics.SparseCategoricalAccuracy)
    assert isinstance(metrics.resolve_accuracy("acc", (8, 10), (8, 10)), metrics.CategoricalAccuracy)
    assert isinstance(metrics.resolve_accuracy("acc", (8, 1), (8, 1)), metrics.BinaryAccuracy)


def test_metric_values_and_weights(rng):
    p = _probs(rng, 20, 4)
    y = rng.integers(0, 4, 20)
    w = rng.random(20)
    hits = (p.argmax(1) == y).astype(float)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(y[:10], p[:10])
    m.update_state(y[10:], p[10:])
    assert m.result() == pytest.approx(hits.mean())
    m.reset_state()
    m.update_state(y, p, sample_weight=w)
    assert m.result() == pytest.approx((hits * w).sum() / w.sum())
    cat = metrics.CategoricalAccuracy()
    assert cat(to_categorical(y, 4), p) == pytest.approx(hits.mean())
    top2 = metrics.SparseTopKCategoricalAccuracy(k=2)
    in_top = (np.argsort(-p, axis=1)[:, :2] == y[:, None]).any(1)
    assert top2(y, p) == pytest.approx(in_top.mean())
    b = metrics.BinaryAccuracy(threshold=0.3)
    assert b(np.array([[1], [0], [1]]), np.array([[0.4], [0.35], [0.1]])) == pytest.approx(1 / 3)
    mse = metrics.get("mse")
    assert mse(y[:, None].astype(float), p[:, :1]) == pytest.approx(((p[:, 0] - y) ** 2).mean())
    rmse = metrics.RootMeanSquaredError()
    assert rmse(np.zeros((2, 2)), np.full((2, 2), 3.0)) == pytest.approx(3.0)
    mean = metrics.Mean()
    mean.update_state([1.0, 2.0, 3.0], sample_weight=[1, 0, 1])
    assert mean.result() == 2.0
    with pytest.raises(ValueError, match="Unknown metric 'precison'"):
        metrics.get("precison")


def test_to_categorical_semantics():
    out = to_categorical([0, 2, 1])
    assert out.dtype == np.float64 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
    assert to_categorical(np.array([[1], [0]]), 4).shape == (2, 4)
    assert to_categorical(np.zeros((2, 3), int), 2).shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        to_categorical([0, 3], 3)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        to_categorical([-1, 1])

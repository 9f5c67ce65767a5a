"""Per-pixel weights for segmentation: ``sample_weight`` of shape (N, H, W) weighs each pixel's loss
(Keras's rule: sum(loss * w) / number of pixels), in the loss objects, the fused softmax path and
``fit``/``evaluate``; ``class_weight`` on integer label maps weighs each pixel by its class."""
import numpy as np
import pytest

import cnnfast
from cnnfast import layers, losses

from reference.model import fd_grad, softmax


def _segmenter(classes=4, seed=0):
    cnnfast.utils.set_random_seed(seed)
    inputs = cnnfast.Input((6, 5, 2))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    outputs = layers.Conv2D(classes, 1, activation="softmax")(x)
    return cnnfast.Model(inputs, outputs)


@pytest.mark.parametrize("from_logits", [False, True])
def test_per_pixel_weights_in_the_loss(from_logits, rng):
    n, h, w, c = 3, 4, 5, 6
    pred = rng.standard_normal((n, h, w, c)) if from_logits else softmax(rng.standard_normal((n, h, w, c)))
    y = rng.integers(0, c, (n, h, w))
    sw = rng.random((n, h, w))
    loss = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
    per_pixel = losses.sparse_categorical_crossentropy(y, pred, from_logits)
    assert loss(y, pred, sample_weight=sw) == pytest.approx((per_pixel * sw).sum() / per_pixel.size, rel=1e-9)
    assert loss(y, pred, sample_weight=sw[..., None]) == pytest.approx(loss(y, pred, sample_weight=sw))
    value, grad = loss.value_and_grad(y, pred, sw)
    np.testing.assert_allclose(grad, fd_grad(lambda p: loss(y, p, sample_weight=sw), pred, eps=1e-7),
                               rtol=1e-3, atol=1e-6)
    # The fused softmax + crossentropy kernel gives the same value and logit gradient.
    logits = rng.standard_normal((n, h, w, c)).astype(np.float32)
    fused_value, fused_grad = losses.SparseCategoricalCrossentropy().value_and_grad_from_logits(
        y, logits, sample_weight=sw)
    logit_loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    ref_value, ref_grad = logit_loss.value_and_grad(y, logits.astype(np.float64), sw)
    assert fused_value == pytest.approx(ref_value, rel=1e-5)
    np.testing.assert_allclose(fused_grad, ref_grad, rtol=1e-4, atol=1e-7)


def test_per_pixel_weights_match_keras(keras, rng):
    n, h, w, c = 2, 3, 4, 5
    pred = softmax(rng.standard_normal((n, h, w, c))).astype(np.float32)
    y = rng.integers(0, c, (n, h, w))
    sw = rng.random((n, h, w)).astype(np.float32)
    for ours, theirs in [(losses.SparseCategoricalCrossentropy(), keras.losses.SparseCategoricalCrossentropy()),
                         (losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy())]:
        target = y if "Sparse" in type(ours).__name__ else np.eye(c, dtype=np.float32)[y]
        expected = float(keras.ops.convert_to_numpy(theirs(target, pred, sample_weight=sw)))
        assert ours(target, pred, sample_weight=sw) == pytest.approx(expected, rel=1e-5)


def test_fit_and_evaluate_with_per_pixel_weights(rng):
    x = rng.random((8, 6, 5, 2), dtype=np.float32)
    y = rng.integers(0, 4, (8, 6, 5))
    sw = rng.random((8, 6, 5)).astype(np.float32)
    model = _segmenter()
    model.compile("sgd", "sparse_categorical_crossentropy")
    pred = model.predict(x, verbose=0)
    expected = (losses.sparse_categorical_crossentropy(y, pred) * sw).sum() / y.size
    assert model.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(expected, rel=1e-5)
    # A batch's weights that leave the background out train only on the foreground pixels.
    before = model.get_weights()
    model.train_on_batch(x, y, sample_weight=np.zeros_like(sw))
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    history = model.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_class_weight_on_label_maps_weighs_each_pixel(rng):
    x = rng.random((8, 6, 5, 2), dtype=np.float32)
    y = rng.integers(0, 4, (8, 6, 5))
    class_weight = {0: 0.25, 1: 1.0, 2: 3.0, 3: 2.0}
    by_class, by_pixel = _segmenter(), _segmenter()
    for model in (by_class, by_pixel):
        model.compile("sgd", "sparse_categorical_crossentropy")
    a = by_class.fit(x, y, class_weight=class_weight, batch_size=4, epochs=2, shuffle=False, verbose=0)
    pixel_weights = np.vectorize(class_weight.get)(y).astype(np.float32)
    b = by_pixel.fit(x, y, sample_weight=pixel_weights, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-6)
    for wa, wb in zip(by_class.get_weights(), by_pixel.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    # One-hot label maps are weighed by their class too (here W == 5 == the number of classes,
    # which must not make an integer map look one-hot).
    one_hot = _segmenter(classes=5)
    one_hot.compile("sgd", "categorical_crossentropy")
    y5 = rng.integers(0, 5, (8, 6, 5))
    weights = {0: 0.5, 4: 3.0}
    sw = np.vectorize(lambda k: weights.get(k, 1.0))(y5).astype(np.float32)
    np.testing.assert_array_equal(one_hot._class_weights(weights, np.eye(5)[y5], 8), sw)
    sparse = _segmenter(classes=5)
    sparse.compile("sgd", "sparse_categorical_crossentropy")
    np.testing.assert_array_equal(sparse._class_weights(weights, y5, 8), sw)
    np.testing.assert_array_equal(sparse._class_weights(weights, y5[..., None], 8), sw)


def test_weights_of_the_wrong_shape_are_refused(rng):
    x = rng.random((4, 6, 5, 2), dtype=np.float32)
    y = rng.integers(0, 4, (4, 6, 5))
    model = _segmenter()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4, 5, 6\) does not fit"):
        model.fit(x, y, sample_weight=np.ones((4, 5, 6), np.float32), verbose=0)
    with pytest.raises(ValueError, match=r"one weight per sample"):
        model.fit(x, y, sample_weight=np.ones((3, 6, 5), np.float32), verbose=0)

"""Segmentation IoU metrics (IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU): Keras 3 parity on
multi-batch per-pixel inputs, a hand-computed float64 example, config round trips, reset, clear
errors, and fit/evaluate on a tiny per-pixel segmentation model."""
import os
import warnings
import zlib

import numpy as np
import pytest

import cnnfast
from cnnfast import layers, metrics, models
from cnnfast.utils import set_random_seed

EPS = 1e-7
CLASSES = ["IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU"]


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    # ImportError, not just ModuleNotFoundError: a keras whose backend cannot load also skips
    return pytest.importorskip("keras", exc_type=ImportError)


def run(metric, batches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn about float weights with an int dtype
        for b in batches:
            metric.update_state(*b)
    return float(np.asarray(metric.result()))


def probs(rng, shape):
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def one_hot(labels, c):
    return np.eye(c)[labels]


def make_batches(rng, kind, n_batches=3, c=3, shape=(2, 5, 6), weights=None, labels=None):
    """(y_true, y_pred[, sample_weight]) per batch for a metric kind."""
    out = []
    for _ in range(n_batches):
        t = rng.integers(0, c, shape) if labels is None else labels(rng, shape)
        if kind == "sparse_probs":          # labels (N,H,W) ids, prediction (N,H,W,C) probabilities
            b = [t, probs(rng, shape + (c,))]
        elif kind == "sparse_probs_1":      # labels (N,H,W,1)
            b = [t[..., None], probs(rng, shape + (c,))]
        elif kind == "ids":                 # both (N,H,W) ids
            b = [t, rng.integers(0, c, shape)]
        elif kind == "onehot":              # one-hot labels, probabilities
            b = [one_hot(np.clip(t, 0, c - 1), c), probs(rng, shape + (c,))]
        elif kind == "onehot_ids":          # one-hot labels, id predictions
            b = [one_hot(np.clip(t, 0, c - 1), c), rng.integers(0, c, shape)]
        elif kind == "binary":              # (N,H,W,1) 0/1 labels and sigmoid-like scores
            b = [rng.integers(0, 2, shape + (1,)), rng.random(shape + (1,))]
        else:
            raise AssertionError(kind)
        if weights == "pixel_float":
            b.append(rng.random(shape) * 2)
        elif weights == "pixel_int":
            b.append(rng.integers(0, 4, shape))
        elif weights == "pixel_float_trailing1":
            b.append(rng.random(shape + (1,)))
        elif weights == "scalar":
            b.append(2.0)
        out.append(tuple(b))
    return out


def oor_labels(rng, shape):  # ids outside [0, 3): Keras drops them silently
    return rng.choice([-1, 0, 1, 2, 3, 7], shape)


def void_labels(rng, shape):  # a "void" class 255 beside 0..2
    return rng.choice([0, 1, 2, 255], shape, p=[0.3, 0.3, 0.25, 0.15])


CASES = [
    ("MeanIoU", dict(num_classes=3, sparse_y_pred=False), "sparse_probs", None, None),
    ("MeanIoU", dict(num_classes=3, sparse_y_pred=False), "sparse_probs_1", None, None),
    ("MeanIoU", dict(num_classes=3, sparse_y_pred=False, dtype="float32"), "sparse_probs", "pixel_float", None),
    ("MeanIoU", dict(num_classes=3, sparse_y_pred=False, dtype="float64"), "sparse_probs_1", "pixel_float_trailing1", None),
    ("MeanIoU", dict(num_classes=3), "ids", "pixel_int", None),
    ("MeanIoU", dict(num_classes=3), "ids", "pixel_float", None),  # default int dtype truncates weights
    ("MeanIoU", dict(num_classes=3), "ids", "scalar", None),
    ("MeanIoU", dict(num_classes=3, ignore_class=0), "ids", None, None),
    ("MeanIoU", dict(num_classes=3, ignore_class=255, sparse_y_pred=False, dtype="float32"),
     "sparse_probs", "pixel_float", void_labels),
    ("MeanIoU", dict(num_classes=3, ignore_class=-1), "ids", None, oor_labels),
    ("MeanIoU", dict(num_classes=3), "ids", None, oor_labels),
    ("MeanIoU", dict(num_classes=6, sparse_y_pred=False), "sparse_probs", None, None),  # absent classes
    ("MeanIoU", dict(num_classes=2, sparse_y_pred=False), "sparse_probs", None, None),  # argmax 2 dropped
    ("IoU", dict(num_classes=3, target_class_ids=[0, 2], sparse_y_pred=False), "sparse_probs", None, None),
    ("IoU", dict(num_classes=3, target_class_ids=(1,), dtype="float32"), "ids", "pixel_float", None),
    ("IoU", dict(num_classes=3, target_class_ids=[2], ignore_class=1, sparse_y_true=False,
                 sparse_y_pred=False), "onehot", None, None),
    ("OneHotIoU", dict(num_classes=3, target_class_ids=[0, 1]), "onehot", None, None),
    ("OneHotIoU", dict(num_classes=3, target_class_ids=[2], dtype="float32"), "onehot", "pixel_float", None),
    ("OneHotMeanIoU", dict(num_classes=3), "onehot", None, None),
    ("OneHotMeanIoU", dict(num_classes=3, sparse_y_pred=True, ignore_class=2), "onehot_ids", "pixel_int", None),
    ("BinaryIoU", dict(), "binary", None, None),
    ("BinaryIoU", dict(target_class_ids=[1], threshold=0.3), "binary", None, None),
    ("BinaryIoU", dict(target_class_ids=[0], threshold=0.7, dtype="float32"), "binary", "pixel_float_trailing1", None),
    ("BinaryIoU", dict(target_class_ids=(0, 1)), "binary", "pixel_int", None),
]


@pytest.mark.parametrize("cls,kwargs,kind,weights,labels", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_keras_over_batches(keras, cls, kwargs, kind, weights, labels):
    rng = np.random.default_rng(zlib.crc32(f"{cls}{kwargs}{kind}{weights}".encode()))  # stable seed
    batches = make_batches(rng, kind, weights=weights, labels=labels)
    ours = getattr(metrics, cls)(**kwargs)
    theirs = getattr(keras.metrics, cls)(**kwargs)
    got, want = run(ours, batches), run(theirs, batches)
    np.testing.assert_allclose(ours.total_cm, np.asarray(theirs.total_cm.numpy(), np.float64),
                               rtol=1e-6, atol=1e-5)
    assert isinstance(got, float)
    assert got == pytest.approx(want, rel=2e-6, abs=1e-7)


def test_one_dimensional_classification_matches_keras(keras, rng):
    t, p = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    w = rng.random(50)
    for kw in (dict(num_classes=4), dict(num_classes=4, dtype="float32")):
        got = run(metrics.MeanIoU(**kw), [(t, p, w), (t[::-1], p, None)])
        want = run(keras.metrics.MeanIoU(**kw), [(t, p, w), (t[::-1], p, None)])
        assert got == pytest.approx(want, rel=2e-6)


def test_channels_first_axis(keras, rng):
    """axis=1 argmaxes over the channel axis; the value equals channels-last with axis=-1 (Keras's
    own result() cannot sum its 1-D IoU vector over axis 1, so compare with its channels-last run)."""
    t = rng.integers(0, 3, (2, 4, 5))
    p = probs(rng, (2, 4, 5, 3))
    onehot = one_hot(t, 3)
    ours = metrics.OneHotMeanIoU(num_classes=3, axis=1)
    ours.update_state(np.moveaxis(onehot, -1, 1), np.moveaxis(p, -1, 1))
    want = run(keras.metrics.OneHotMeanIoU(num_classes=3), [(onehot, p)])
    assert ours.result() == pytest.approx(want, rel=2e-6)


# -- hand-computed, no Keras needed --------------------------------------------------------------
Y_TRUE = np.array([[0, 0, 1], [1, 2, 2]])
Y_PRED = np.array([[0, 1, 1], [1, 2, 0]])
# rows = true class, columns = predicted class
CM = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]], np.float64)


def keras_mean(tp, den):
    tp, den = np.asarray(tp, np.float64), np.asarray(den, np.float64)
    valid = den > 1e-9
    return np.sum(np.where(valid, tp / (den + EPS), 0.0)) / (valid.sum() + EPS)


def test_hand_computed_confusion_matrix_and_means():
    m = metrics.MeanIoU(num_classes=3)
    m.update_state(Y_TRUE[:1], Y_PRED[:1])
    m.update_state(Y_TRUE[1:], Y_PRED[1:])   # accumulates over batches
    np.testing.assert_array_equal(m.total_cm, CM)
    assert m.total_cm.dtype == np.float64
    # tp = [1, 2, 1]; denominators = col + row - tp = [3, 3, 2]: IoUs 1/3, 2/3, 1/2 -> mean 0.5
    assert m.result() == pytest.approx(0.5, rel=1e-6)
    assert m.result() == keras_mean([1, 2, 1], [3, 3, 2])

    iou = metrics.IoU(num_classes=3, target_class_ids=[1])
    iou.update_state(Y_TRUE, Y_PRED)
    assert iou.result() == pytest.approx(2 / 3, rel=1e-6)

    # a class never true nor predicted has a zero denominator: left out of the mean
    m4 = metrics.MeanIoU(num_classes=4)
    m4.update_state(Y_TRUE, Y_PRED)
    assert m4.result() == pytest.approx(0.5, rel=1e-6)

    # ignore_class drops pixels whose *true* class is 2: cm [[1,1,0],[0,2,0],[0,0,0]]
    ig = metrics.MeanIoU(num_classes=3, ignore_class=2)
    ig.update_state(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(ig.total_cm, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    assert ig.result() == pytest.approx((1 / 2 + 2 / 3) / 2, rel=1e-6)

    assert metrics.MeanIoU(num_classes=3).result() == 0.0  # nothing seen yet


def test_hand_computed_weights_and_one_hot():
    w = np.array([[1.0, 2.0, 0.0], [0.5, 1.0, 3.0]])
    m = metrics.MeanIoU(num_classes=3, dtype="float64")
    m.update_state(Y_TRUE, Y_PRED, sample_weight=w)
    np.testing.assert_allclose(m.total_cm, [[1, 2, 0], [0, 0.5, 0], [3, 0, 1]])
    # col sums [4, 2.5, 1], row sums [3, 0.5, 4], tp [1, 0.5, 1] -> denominators [6, 2.5, 4]
    assert m.result() == pytest.approx((1 / 6 + 0.2 + 0.25) / 3, rel=1e-6)

    # the default dtype is int32, as in Keras: float weights are truncated (0.5 -> 0), with a warning
    mi = metrics.MeanIoU(num_classes=3)
    with pytest.warns(UserWarning, match="truncated"):
        mi.update_state(Y_TRUE, Y_PRED, sample_weight=w)
    np.testing.assert_array_equal(mi.total_cm, [[1, 2, 0], [0, 0, 0], [3, 0, 1]])

    oh = metrics.OneHotMeanIoU(num_classes=3)
    oh.update_state(np.eye(3)[Y_TRUE], np.eye(3)[Y_PRED] * 0.8 + 0.05)
    np.testing.assert_array_equal(oh.total_cm, CM)

    # per-sample weights (N,) broadcast over the pixels (fit's weighted_metrics passes these)
    ps = metrics.MeanIoU(num_classes=3)
    ps.update_state(Y_TRUE, Y_PRED, sample_weight=np.array([2, 0]))
    np.testing.assert_array_equal(ps.total_cm, [[2, 2, 0], [0, 2, 0], [0, 0, 0]])


def test_binary_iou_thresholds_in_float32():
    b = metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    b.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    assert b.result() == pytest.approx(1 / 3, rel=1e-6)  # Keras's docstring example
    b.reset_state()
    b2 = metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3, dtype="float32")
    b2.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7], sample_weight=[0.2, 0.3, 0.4, 0.1])
    assert b2.result() == pytest.approx((0.2 / 0.9 + 0.1 / 0.8) / 2, rel=1e-6)  # 0.17361
    # y_pred is compared in float32: 0.49999999 rounds to 0.5 >= 0.5
    b3 = metrics.BinaryIoU(target_class_ids=[1])
    b3.update_state([1], [0.49999999])
    assert b3.result() == pytest.approx(1.0, rel=1e-6)


def test_out_of_range_ids_are_dropped_as_in_keras():
    m = metrics.MeanIoU(num_classes=3)
    m.update_state([0, 1, 5, -1, 2], [0, 3, 1, 1, -2])
    np.testing.assert_array_equal(m.total_cm, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])


# -- config, reset, lookup -------------------------------------------------------------------------
CONFIG_ARGS = {
    "IoU": dict(num_classes=4, target_class_ids=(1, 3), name="iou13", ignore_class=255,
                sparse_y_true=False, sparse_y_pred=False, axis=-1, dtype="float32"),
    "MeanIoU": dict(num_classes=3, name="miou", ignore_class=0, sparse_y_pred=False),
    "BinaryIoU": dict(target_class_ids=[1], threshold=0.25, name="biou"),
    "OneHotIoU": dict(num_classes=5, target_class_ids=[0], name="ohiou", sparse_y_pred=True),
    "OneHotMeanIoU": dict(num_classes=2, name="ohmiou", dtype="float64", axis=1),
}


@pytest.mark.parametrize("cls", CLASSES)
def test_get_config_round_trip(cls):
    m = getattr(metrics, cls)(**CONFIG_ARGS[cls])
    config = m.get_config()
    again = type(m).from_config(config)
    assert again.get_config() == config
    via_get = metrics.get({"class_name": cls, "config": config})
    assert type(via_get) is type(m) and via_get.get_config() == config
    assert m._direction == "up"


@pytest.mark.parametrize("cls", CLASSES)
def test_config_and_default_name_match_keras(keras, cls):
    ours = getattr(metrics, cls)(**CONFIG_ARGS[cls]).get_config()
    theirs = getattr(keras.metrics, cls)(**CONFIG_ARGS[cls]).get_config()
    assert list(ours) == list(theirs)
    assert ours == theirs
    required = {"IoU": dict(num_classes=2, target_class_ids=[0]), "OneHotIoU": dict(num_classes=2, target_class_ids=[0]),
                "MeanIoU": dict(num_classes=2), "OneHotMeanIoU": dict(num_classes=2), "BinaryIoU": {}}[cls]
    k = getattr(keras.metrics, cls)(**required)
    o = getattr(metrics, cls)(**required)
    # Keras suffixes repeated auto-names in a process (mean_io_u_1, ...); the stem is the same
    assert k.name == o.name or k.name.rsplit("_", 1)[0] == o.name
    assert o.get_config()["dtype"] == k.get_config()["dtype"] == "int32"


def test_reset_state():
    m = metrics.MeanIoU(num_classes=3)
    m.update_state(Y_TRUE, Y_PRED)
    m.update_state(Y_TRUE, Y_TRUE)
    m.reset_state()
    assert m.result() == 0.0 and not m.total_cm.any()
    m.update_state(Y_TRUE, Y_PRED)
    fresh = metrics.MeanIoU(num_classes=3)
    fresh.update_state(Y_TRUE, Y_PRED)
    assert m.result() == fresh.result()
    np.testing.assert_array_equal(m.variables[0], fresh.total_cm)


def test_state_is_the_confusion_matrix_and_adds_up():
    """``variables`` / ``assign_variables`` / ``stateless_result``: the protocol data-parallel
    training uses to sum the ranks' states (see cnnfast.distributed)."""
    first, second, both = (metrics.MeanIoU(num_classes=3) for _ in range(3))
    first.update_state(Y_TRUE, Y_PRED)
    second.update_state(Y_TRUE, Y_TRUE)
    both.update_state(Y_TRUE, Y_PRED)
    both.update_state(Y_TRUE, Y_TRUE)
    summed = [a + b for a, b in zip(first.variables, second.variables)]
    before = first.total_cm.copy()
    assert first.stateless_result(summed) == both.result()
    np.testing.assert_array_equal(first.total_cm, before)  # its own state is left alone
    first.assign_variables(summed)
    assert first.result() == both.result()
    summed[0][0, 0] += 1  # the metric holds its own copy
    assert first.result() == both.result()
    with pytest.raises(ValueError, match=r"expected state arrays of shapes \[\(3, 3\)\]"):
        first.assign_variables([np.zeros((2, 2))])

def test_string_lookup():
    assert isinstance(metrics.get("BinaryIoU"), metrics.BinaryIoU)
    assert metrics.get("binary_io_u").name == "binary_io_u"
    for s in ("MeanIoU", "mean_io_u", "IoU", "iou", "OneHotMeanIoU", "one_hot_io_u"):
        with pytest.raises(ValueError, match="num_classes"):
            metrics.get(s)
    inst = metrics.MeanIoU(num_classes=2)
    assert metrics.get(inst) is inst


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True, None])
@pytest.mark.parametrize("cls", ["IoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"])
def test_bad_num_classes(cls, bad):
    kwargs = {"num_classes": bad}
    if cls in ("IoU", "OneHotIoU"):
        kwargs["target_class_ids"] = [0]
    with pytest.raises(ValueError, match=f"{cls}: num_classes"):
        getattr(metrics, cls)(**kwargs)


def test_bad_arguments():
    for ids in ([], [3], [-1], 1, [0.5], None):
        with pytest.raises(ValueError, match="IoU: target"):
            metrics.IoU(num_classes=3, target_class_ids=ids)
    with pytest.raises(ValueError, match=r"BinaryIoU: target class id 2 is out of range.*\[0, 2\)"):
        metrics.BinaryIoU(target_class_ids=[2])
    with pytest.raises(ValueError, match="BinaryIoU: threshold"):
        metrics.BinaryIoU(threshold="high")
    with pytest.raises(ValueError, match="MeanIoU: ignore_class"):
        metrics.MeanIoU(num_classes=3, ignore_class="void")
    with pytest.raises(ValueError, match="MeanIoU: unsupported dtype"):
        metrics.MeanIoU(num_classes=3, dtype="complex64")
    with pytest.raises(ValueError, match="MeanIoU: axis"):
        metrics.MeanIoU(num_classes=3, axis=None)
    m = metrics.MeanIoU(num_classes=3)
    with pytest.raises(ValueError, match="MeanIoU 'mean_io_u': y_true gives 6 labels"):
        m.update_state(Y_TRUE, Y_PRED[:1])
    with pytest.raises(ValueError, match="MeanIoU 'mean_io_u': sample_weight of shape \\(4, 4\\)"):
        m.update_state(np.zeros((2, 4, 5), int), np.zeros((2, 4, 5), int), sample_weight=np.ones((4, 4)))
    assert not m.total_cm.any()  # a failed update leaves the state alone


# -- fit / evaluate --------------------------------------------------------------------------------
def test_fit_and_evaluate_on_a_segmentation_model():
    set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((24, 6, 6, 2)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.int64) + (x[..., 1] > 0.5)   # per-pixel classes 0..2, (N,H,W)
    model = models.Sequential([layers.Input((6, 6, 2)),
                               layers.Conv2D(3, 3, padding="same", activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[metrics.MeanIoU(num_classes=3, sparse_y_pred=False),
                           metrics.IoU(num_classes=3, target_class_ids=[0], sparse_y_pred=False,
                                       name="iou_bg")])
    history = model.fit(x, y[..., None], batch_size=8, epochs=2, verbose=0, validation_split=0.25)
    for key in ("loss", "mean_io_u", "iou_bg", "val_loss", "val_mean_io_u", "val_iou_bg"):
        assert key in history.history and len(history.history[key]) == 2
    assert all(0.0 <= v <= 1.0 for v in history.history["mean_io_u"])

    logs = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=24, verbose=0)
    ref = metrics.MeanIoU(num_classes=3, sparse_y_pred=False)
    ref.update_state(y, pred)                       # the whole set at once
    assert logs["mean_io_u"] == pytest.approx(ref.result(), rel=1e-9)
    # ... and by an explicit float64 confusion matrix
    cm = np.zeros((3, 3))
    np.add.at(cm, (y.ravel(), pred.argmax(-1).ravel()), 1)
    tp = np.diag(cm)
    assert logs["mean_io_u"] == pytest.approx(keras_mean(tp, cm.sum(0) + cm.sum(1) - tp), rel=1e-9)
    assert logs["iou_bg"] == pytest.approx(tp[0] / (cm[0].sum() + cm[:, 0].sum() - tp[0]), rel=1e-6)

    # weighted_metrics with per-sample weights: broadcast over each sample's pixels
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  weighted_metrics=[metrics.MeanIoU(num_classes=3, sparse_y_pred=False, dtype="float32")])
    sw = rng.random(24).astype(np.float32)
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=8, verbose=0, return_dict=True)
    ref = metrics.MeanIoU(num_classes=3, sparse_y_pred=False, dtype="float64")
    ref.update_state(y, model.predict(x, verbose=0), sample_weight=np.broadcast_to(sw[:, None, None], y.shape))
    assert logs["mean_io_u"] == pytest.approx(ref.result(), rel=1e-6)


# -- float64 NumPy reference, Keras's docstring numbers, more bad input, saving ----------------------
def reference_iou(t, p, n, ids, w=None, ignore=None):
    """IoU from an explicit float64 confusion matrix (np.add.at), Keras's formula and masks."""
    t, p = np.ravel(t).astype(np.int64), np.ravel(p).astype(np.int64)
    w = np.ones(t.size) if w is None else np.ravel(np.asarray(w, np.float64))
    keep = (t >= 0) & (t < n) & (p >= 0) & (p < n) & (True if ignore is None else t != ignore)
    cm = np.zeros((n, n))
    np.add.at(cm, (t[keep], p[keep]), w[keep])
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    return cm, keras_mean(tp[ids], den[ids])


@pytest.mark.parametrize("seed", range(4))
def test_matches_float64_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 6))
    t = rng.integers(-1, n + 1, (3, 7, 5))            # a few out-of-range ids on both sides
    scores = rng.standard_normal((3, 7, 5, n))
    w = rng.random((3, 7, 5))
    ignore = int(rng.integers(0, n))
    ids = sorted(rng.choice(n, int(rng.integers(1, n + 1)), replace=False).tolist())
    for m, args, want_w in [
        (metrics.MeanIoU(num_classes=n, sparse_y_pred=False, dtype="float64", ignore_class=ignore),
         (t, scores, w), w),
        (metrics.IoU(num_classes=n, target_class_ids=ids, sparse_y_pred=False, dtype="float32"),
         (t, scores, w), w),
        (metrics.MeanIoU(num_classes=n), (t, scores.argmax(-1)), None),
    ]:
        m.update_state(*args)
        cm, want = reference_iou(t, scores.argmax(-1), n, getattr(m, "target_class_ids"), want_w,
                                 m.ignore_class)
        np.testing.assert_allclose(m.total_cm, cm, rtol=1e-12)
        assert m.result() == pytest.approx(want, rel=1e-12)


def test_keras_docstring_examples():
    m = metrics.MeanIoU(num_classes=2)
    m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    assert m.result() == pytest.approx(1 / 3, rel=1e-6)
    # Keras's docstring says 0.238 for these weights, but with its default int32 dtype they truncate
    # to 0 (Keras 3.15.1 returns 0.0 too); a float dtype gives the documented value
    for dtype, want in ((None, 0.0), ("float32", 0.23809525)):
        m = metrics.MeanIoU(num_classes=2, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
        assert m.result() == pytest.approx(want, rel=1e-6, abs=1e-9)
    y_true = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    y_pred = np.array([[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]])
    sw = [0.1, 0.2, 0.3, 0.4]
    oh = metrics.OneHotIoU(num_classes=3, target_class_ids=[0, 2], dtype="float32")
    oh.update_state(y_true, y_pred, sample_weight=sw)
    assert oh.result() == pytest.approx(0.1 / 0.7 / 2, rel=1e-6)            # 0.0714
    ohm = metrics.OneHotMeanIoU(num_classes=3, dtype="float32")
    ohm.update_state(y_true, y_pred, sample_weight=sw)
    assert ohm.result() == pytest.approx(0.1 / 0.7 / 3, rel=1e-6)           # 0.0476


def test_float_ids_are_rounded_to_the_metric_dtype_as_in_keras(keras):
    t, p = [0, 1, 2.9999999, 1, 2.9995], [0, 1, 2, 1, 2]   # 2.9999999 is 3.0 in float32
    for dtype in (None, "float16", "float32", "float64"):
        got, want = metrics.MeanIoU(num_classes=3, dtype=dtype), keras.metrics.MeanIoU(num_classes=3, dtype=dtype)
        run(got, [(t, p)]), run(want, [(t, p)])
        np.testing.assert_array_equal(got.total_cm, np.asarray(want.total_cm.numpy(), np.float64))


@pytest.mark.parametrize("cls,kwargs,args,match", [
    ("MeanIoU", {}, ([0, 1, 2], [0, np.nan, 2]), "y_pred contains NaN"),
    ("MeanIoU", {"dtype": "float32"}, ([0, np.nan, 2], [0, 1, 2]), "y_true contains NaN"),
    ("MeanIoU", {"sparse_y_pred": False}, ([0, 1], [[0.2, np.nan, 0.1], [1, 0, 0]]), "y_pred contains NaN"),
    ("MeanIoU", {"dtype": "float32"}, ([0, 1, 2], [0, 1, 2], [1, np.nan, 1]), "sample_weight contains NaN"),
    ("MeanIoU", {}, ([0, 1, 2], [0, 1, 2], [1, np.inf, 1]), "sample_weight contains NaN or Inf"),
    ("MeanIoU", {}, (["a", "b"], [0, 1]), "y_true must be numeric"),
    ("MeanIoU", {}, ([0, 1], [0, 1], "heavy"), "sample_weight must be numeric"),
    ("MeanIoU", {}, (np.zeros((2, 4)), np.full((2, 4, 3), 1 / 3)), "pass sparse_y_pred=False"),
    ("MeanIoU", {"sparse_y_pred": False, "axis": 2}, ([0, 1], np.eye(3)[:2]), "has no class axis 2"),
    ("MeanIoU", {"sparse_y_pred": False}, ([0, 1], np.zeros((2, 0))), "has no class axis -1"),
    ("OneHotMeanIoU", {}, ([0, 1, 1], np.eye(3)), r"y_true gives 1 labels \(shape \(3,\), argmax"),
    ("BinaryIoU", None, ([0, 1, 1], [0.2, np.nan, 0.9]), "BinaryIoU 'binary_io_u': y_pred contains NaN"),
])
def test_bad_input_raises_and_leaves_state_alone(cls, kwargs, args, match):
    m = getattr(metrics, cls)(**({} if kwargs is None else {"num_classes": 3, **kwargs}))
    dense_t, dense_p = not m.sparse_y_true, not m.sparse_y_pred
    m.update_state(np.eye(3)[None, :2] if dense_t else [[0, 1]],   # (1, 2, 3) scores, (1, 2) ids
                   np.eye(3)[None, :2] if dense_p else [[0, 1]])
    before = m.total_cm.copy()
    assert before.any()
    with pytest.raises(ValueError, match=f"{cls} '.*'.*{match}|{match}") as info:
        m.update_state(*args)
    assert str(info.value).startswith(f"{cls} '")  # the message names the metric
    np.testing.assert_array_equal(m.total_cm, before)


def test_warnings_only_when_something_is_lost():
    m = metrics.MeanIoU(num_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # integral float weights lose nothing
        m.update_state(Y_TRUE, Y_PRED, sample_weight=np.ones(Y_TRUE.shape, np.float32) * 2)
    np.testing.assert_array_equal(m.total_cm, 2 * CM)
    d = metrics.MeanIoU(num_classes=2, sparse_y_pred=False)
    with pytest.warns(UserWarning, match="y_pred has 3 classes on axis -1 but num_classes=2"):
        d.update_state([0, 1, 2], np.eye(3))            # Keras drops argmax 2 silently; so do we
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # ... but warns once per metric, not per step
        d.update_state([0, 1, 2], np.eye(3))
    np.testing.assert_array_equal(d.total_cm, [[2, 0], [0, 2]])


def test_string_lookup_matches_keras(keras):
    for s in ("MeanIoU", "mean_io_u", "mean_iou", "IoU", "io_u", "iou", "OneHotIoU", "one_hot_io_u",
              "OneHotMeanIoU", "one_hot_mean_io_u", "binary_iou"):
        with pytest.raises((TypeError, ValueError)):
            keras.metrics.get(s)
        with pytest.raises(ValueError):
            metrics.get(s)
    for s in ("BinaryIoU", "binary_io_u"):
        assert type(keras.metrics.get(s)).__name__ == type(metrics.get(s)).__name__ == "BinaryIoU"
        assert metrics.get(s).get_config() == keras.metrics.get(s).get_config() | {"name": "binary_io_u"}


def test_compiled_iou_metrics_survive_save_and_load(tmp_path):
    set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 5, 5, 2)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.int64) + (x[..., 1] > 0.5)
    model = models.Sequential([layers.Input((5, 5, 2)),
                               layers.Conv2D(3, 3, padding="same", activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[metrics.MeanIoU(num_classes=3, sparse_y_pred=False, ignore_class=2),
                           metrics.IoU(num_classes=3, target_class_ids=[1], sparse_y_pred=False,
                                       name="iou1")])
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = str(tmp_path / "seg.keras")
    model.save(path)
    loaded = cnnfast.models.load_model(path)
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert got == pytest.approx(want, rel=1e-9)
    assert set(got) == {"loss", "mean_io_u", "iou1"}
    loaded_metric = [m for m in loaded.metrics if m.name == "mean_io_u"][0]
    assert type(loaded_metric) is metrics.MeanIoU and loaded_metric.ignore_class == 2
    assert loaded_metric.get_config() == model.metrics[1].get_config()

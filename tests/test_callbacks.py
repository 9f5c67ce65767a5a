"""Callbacks: EarlyStopping, ModelCheckpoint, TerminateOnNaN, CSVLogger, LambdaCallback,
LearningRateScheduler, ReduceLROnPlateau, CallbackList."""
import csv
import math
import os

import numpy as np
import pytest

from cnnfast import callbacks, layers, models, optimizers
from cnnfast.utils import set_random_seed


class FakeModel:
    """Just what the callbacks touch: weights, stop_training, metrics, optimizer."""

    def __init__(self):
        self.stop_training = False
        self.weights = [np.zeros(2)]
        self.metrics = []
        self.optimizer = optimizers.SGD(learning_rate=0.1)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [a.copy() for a in w]


def drive(cb, values, monitor="val_loss"):
    """Run ``cb`` over epochs with the given monitored values; the weights record the epoch."""
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    stopped_at = None
    for epoch, v in enumerate(values):
        model.weights = [np.full(2, float(epoch))]
        cb.on_epoch_end(epoch, {monitor: v, "loss": 1.0})
        if model.stop_training:
            stopped_at = epoch
            break
    cb.on_train_end()
    return model, stopped_at


def test_early_stopping_patience_and_min_delta():
    _, stop = drive(callbacks.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.91, 0.8])
    assert stop == 3
    _, stop = drive(callbacks.EarlyStopping(patience=1, min_delta=0.05), [1.0, 0.97, 0.5])
    assert stop == 1  # 0.97 is not an improvement by more than 0.05
    _, stop = drive(callbacks.EarlyStopping(patience=0), [1.0, 0.5, 0.4])
    assert stop is None


def test_early_stopping_mode_restore_baseline_and_start():
    model, stop = drive(callbacks.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True),
                        [0.5, 0.8, 0.7, 0.6, 0.9], monitor="val_accuracy")
    assert stop == 2 and float(model.weights[0][0]) == 1.0  # restored to epoch 1, the best
    _, stop = drive(callbacks.EarlyStopping(patience=2), [0.9, 0.95, 0.97])
    assert stop == 2
    _, stop = drive(callbacks.EarlyStopping(patience=2, baseline=0.5), [0.9, 0.95, 0.97])
    assert stop == 1  # the first epoch did not beat the baseline, so it counts towards the patience
    _, stop = drive(callbacks.EarlyStopping(patience=0, start_from_epoch=2), [1.0, 2.0, 3.0, 4.0])
    assert stop == 3
    with pytest.raises(ValueError, match="cannot determine whether that metric should be maximized"):
        drive(callbacks.EarlyStopping(monitor="val_f1"), [1.0], monitor="val_f1")
    _, stop = drive(callbacks.EarlyStopping(monitor="val_f1", mode="max"), [1.0, 0.5], monitor="val_f1")
    assert stop == 1
    with pytest.warns(UserWarning, match="not available"):
        drive(callbacks.EarlyStopping(monitor="val_acc", mode="max"), [1.0])


def small_model(seed=0):
    set_random_seed(seed)
    m = models.Sequential([layers.Input((5,)), layers.Dense(6, activation="relu"), layers.Dense(2, activation="softmax")])
    m.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


@pytest.fixture
def data(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int)


def test_early_stopping_in_fit_uses_metric_direction(data):
    x, y = data
    model = small_model()
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=1, restore_best_weights=True)
    model.fit(x, y, epochs=30, validation_split=0.25, verbose=0, callbacks=[es])
    assert es._direction == "max"
    assert model.history.epoch[-1] == es.stopped_epoch or es.stopped_epoch == 0


def test_model_checkpoint_templates_and_best_only(data, tmp_path):
    x, y = data
    model = small_model()
    path = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.keras")
    model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, callbacks=[callbacks.ModelCheckpoint(path)])
    names = sorted(os.listdir(tmp_path))
    assert [n[:8] for n in names] == ["ckpt-01-", "ckpt-02-", "ckpt-03-"]
    loaded = models.load_model(tmp_path / names[-1])
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    best = str(tmp_path / "best.weights.npz")
    cb = callbacks.ModelCheckpoint(best, save_best_only=True, save_weights_only=True)
    cb.set_model(model)
    cb.on_epoch_end(0, {"val_loss": 0.5})
    first = os.path.getmtime(best), model.get_weights()
    model.optimizer.learning_rate = 0.5
    model.fit(x, y, epochs=1, verbose=0)
    cb.on_epoch_end(1, {"val_loss": 0.7})  # worse: not saved
    other = small_model(seed=9)
    other.load_weights(best)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), first[1]))
    cb.on_epoch_end(2, {"val_loss": 0.1})
    other.load_weights(best)
    assert all(np.array_equal(a, b) for a, b in zip(other.get_weights(), model.get_weights()))

    every = callbacks.ModelCheckpoint(str(tmp_path / "step{batch}.weights.npz"), save_weights_only=True, save_freq=3)
    model.fit(x, y, epochs=1, batch_size=5, verbose=0, callbacks=[every])
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("step")) == ["step3.weights.npz", "step6.weights.npz"]


def test_model_checkpoint_bad_paths():
    with pytest.raises(ValueError, match="must end in '.keras'"):
        callbacks.ModelCheckpoint("model.h5")
    with pytest.raises(ValueError, match="must end in '.weights.npz' or '.weights.h5'"):
        callbacks.ModelCheckpoint("w.h5", save_weights_only=True)
    with pytest.raises(ValueError, match="must end in '.weights.npz'"):
        callbacks.ModelCheckpoint("w.npz", save_weights_only=True)
    with pytest.raises(ValueError, match="unrecognized save_freq"):
        callbacks.ModelCheckpoint("m.keras", save_freq="batch")


def test_terminate_on_nan(data, capsys):
    cb = callbacks.TerminateOnNaN()
    model = FakeModel()
    cb.set_model(model)
    cb.on_train_batch_end(0, {"loss": 0.3})
    assert not model.stop_training
    cb.on_train_batch_end(4, {"loss": float("nan")})
    assert model.stop_training and "Batch 4: Invalid loss, terminating training" in capsys.readouterr().out
    x, y = data
    bad = x.copy()
    bad[5] = np.nan
    seen = []
    hist = small_model().fit(bad, y, epochs=5, batch_size=4, shuffle=False, verbose=0,
                             callbacks=[callbacks.TerminateOnNaN(),
                                        callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))])
    assert len(hist.epoch) == 1 and seen == [0, 1]


def test_csv_logger_and_lambda(data, tmp_path):
    x, y = data
    path = tmp_path / "log.csv"
    seen = []
    lam = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((epoch, sorted(logs))))
    small_model().fit(x, y, epochs=2, validation_split=0.25, verbose=0,
                      callbacks=[callbacks.CSVLogger(str(path)), lam])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1"] and all(math.isfinite(float(v)) for v in rows[1][1:])
    assert seen == [(0, ["accuracy", "loss", "val_accuracy", "val_loss"])] * 1 + [(1, seen[0][1])]
    small_model().fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.CSVLogger(str(path), append=True)])
    assert len(list(csv.reader(open(path)))) == 4
    with pytest.raises(TypeError, match="unknown hook"):
        callbacks.LambdaCallback(on_epoch_middle=print)


def test_learning_rate_callbacks(data):
    x, y = data
    model = small_model()
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: 0.1 / (epoch + 1))
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    plateau = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)
    model.optimizer.learning_rate = 0.01
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert hist.history["learning_rate"][0] == pytest.approx(0.01)
    assert model.optimizer.learning_rate == pytest.approx(0.0025)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        callbacks.ReduceLROnPlateau(factor=2)


def test_callback_list_rejects_other_objects(data):
    x, y = data
    with pytest.raises(TypeError, match="callbacks must be cnnfast.callbacks.Callback instances"):
        small_model().fit(x, y, verbose=0, callbacks=[lambda: None])

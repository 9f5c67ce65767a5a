"""fit / evaluate / predict and the single-batch methods: every option against an explicit
re-enactment (batches fed by hand with Keras's shuffling), reproducibility, clear errors."""
import math

import numpy as np
import pytest

import cnnfast
from cnnfast import callbacks, layers, models
from cnnfast.utils import set_random_seed, to_categorical

from reference.model import model_forward, sparse_ce


def make_model(seed=0, dropout=0.0, metrics=("accuracy",), optimizer="adam", loss="sparse_categorical_crossentropy"):
    set_random_seed(seed)
    stack = [layers.Input((4, 4, 1)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten()]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack += [layers.Dense(8, activation="relu"), layers.Dense(3, activation="softmax")]
    model = models.Sequential(stack)
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics))
    return model


@pytest.fixture
def data(rng):
    x = rng.standard_normal((50, 4, 4, 1)).astype(np.float32)
    y = (x[:, :2].sum((1, 2, 3)) > 0).astype(int) + (x[:, 2:].sum((1, 2, 3)) > 1)
    return x, y


def weights_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin", dict(self.params)))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch", batch, sorted(logs)))

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin",))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))


def test_history_and_logs(data):
    x, y = data
    model = make_model()
    rec = Recorder()
    hist = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.2, verbose=0, callbacks=[rec])
    assert hist is model.history
    assert list(hist.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert hist.epoch == [0, 1] and all(len(v) == 2 for v in hist.history.values())
    assert rec.events[0] == ("train_begin", {"verbose": 0, "epochs": 2, "steps": math.ceil(40 / 16)})
    batches = [e for e in rec.events if e[0] == "batch"]
    assert [b[1] for b in batches] == [0, 1, 2, 0, 1, 2] and batches[0][2] == ["accuracy", "loss"]
    # the logged validation values are those of evaluate() on the last 20% after the epoch
    val = model.evaluate(x[40:], y[40:], verbose=0, return_dict=True)
    assert hist.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    assert hist.history["val_accuracy"][-1] == pytest.approx(val["accuracy"])


def test_batch_size_defaults_to_32(data):
    x, y = data
    rec = Recorder()
    make_model().fit(x, y, batch_size=None, verbose=0, callbacks=[rec])
    assert rec.events[0][1]["steps"] == 2
    assert [e[1] for e in rec.events if e[0] == "batch"] == [0, 1]


@pytest.mark.parametrize("shuffle", [True, False, "batch"])
def test_fit_equals_batches_fed_by_hand(shuffle, data):
    """fit == train_on_batch over Keras's batches: np.random.permutation per epoch, last partial
    batch kept, validation split off the end before shuffling."""
    x, y = data
    a = make_model(seed=1)
    set_random_seed(7)
    a.fit(x, y, epochs=2, batch_size=12, shuffle=shuffle, validation_split=0.2, verbose=0)
    b = make_model(seed=1)
    set_random_seed(7)
    xt, yt = x[:40], y[:40]
    for _ in range(2):
        if shuffle is True:
            order = np.random.permutation(40)
        else:
            order = np.arange(40)
        for start in range(0, 40, 12):
            idx = order[start:start + 12]
            if shuffle == "batch":
                idx = np.arange(start, min(start + 12, 40))
                np.random.shuffle(idx)
            b.train_on_batch(xt[idx], yt[idx])
    assert weights_equal(a, b)


def test_same_seed_same_weights_with_dropout(data, threads):
    x, y = data
    runs = []
    for _ in range(2):
        model = make_model(seed=5, dropout=0.3)
        set_random_seed(11)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0)
        runs.append(model)
    assert weights_equal(*runs)
    other = make_model(seed=5, dropout=0.3)
    set_random_seed(12)
    other.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert not weights_equal(runs[0], other)


def test_validation_data_and_frequency(data):
    x, y = data
    hist = make_model().fit(x[:40], y[:40], epochs=4, batch_size=20, validation_data=(x[40:], y[40:]),
                            validation_freq=2, verbose=0)
    assert len(hist.history["loss"]) == 4 and len(hist.history["val_loss"]) == 2
    split = make_model(seed=3)
    set_random_seed(1)
    h1 = split.fit(x, y, epochs=2, batch_size=8, validation_split=0.2, verbose=0)
    explicit = make_model(seed=3)
    set_random_seed(1)
    h2 = explicit.fit(x[:40], y[:40], epochs=2, batch_size=8, validation_data=(x[40:], y[40:]),
                      validation_batch_size=3, verbose=0)
    assert h1.history["val_loss"] == pytest.approx(h2.history["val_loss"], rel=1e-6)
    assert weights_equal(split, explicit)


def test_class_weight_equals_sample_weight(data):
    x, y = data
    cw = {0: 0.5, 1: 2.0, 2: 1.0}
    a = make_model(seed=2)
    set_random_seed(3)
    a.fit(x, y, epochs=1, batch_size=10, class_weight=cw, verbose=0)
    b = make_model(seed=2)
    set_random_seed(3)
    b.fit(x, y, epochs=1, batch_size=10, sample_weight=np.array([cw[int(c)] for c in y]), verbose=0)
    assert weights_equal(a, b)
    c = make_model(seed=2, loss="categorical_crossentropy")
    set_random_seed(3)
    c.fit(x, to_categorical(y, 3), epochs=1, batch_size=10, class_weight=cw, verbose=0)
    for u, v in zip(a.get_weights(), c.get_weights()):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="class_weight and sample_weight cannot both be given"):
        a.fit(x, y, class_weight=cw, sample_weight=np.ones(50), verbose=0)


def test_sample_weight_in_evaluate(data):
    x, y = data
    model = make_model(metrics=())
    w = np.linspace(0, 2, 50)
    probs = model_forward(model, x)
    expect = (sparse_ce(y, probs) * w).sum() / 50
    assert model.evaluate(x, y, sample_weight=w, batch_size=50, verbose=0) == pytest.approx(expect, rel=1e-5)
    # several batches: the batch losses are averaged weighted by batch size, as Keras
    assert model.evaluate(x, y, sample_weight=w, batch_size=7, verbose=0) == pytest.approx(expect, rel=1e-5)


def test_initial_epoch_and_steps_per_epoch(data, capsys):
    x, y = data
    hist = make_model().fit(x, y, epochs=3, initial_epoch=1, batch_size=10, verbose=2)
    assert hist.epoch == [1, 2]
    out = capsys.readouterr().out
    assert out.startswith("Epoch 2/3\n") and "Epoch 3/3" in out and "Epoch 1/3" not in out
    rec = Recorder()
    make_model().fit(x, y, epochs=2, steps_per_epoch=2, batch_size=10, verbose=0, callbacks=[rec])
    assert [e[1] for e in rec.events if e[0] == "batch"] == [0, 1, 0, 1]
    assert make_model().fit(x, y, epochs=0, verbose=0).history == {}


def test_evaluate_predict_and_single_batches(data):
    x, y = data
    model = make_model()
    loss, acc = model.evaluate(x, y, verbose=0)
    probs = model_forward(model, x)
    assert loss == pytest.approx(sparse_ce(y, probs).mean(), rel=1e-5)
    assert acc == pytest.approx((probs.argmax(1) == y).mean())
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"accuracy": acc, "loss": loss}
    assert model.metrics_names == ["loss", "accuracy"]
    assert isinstance(make_model(metrics=()).evaluate(x, y, verbose=0), float)
    p = model.predict(x, batch_size=7, verbose=0)
    assert p.shape == (50, 3) and p.dtype == np.float32
    np.testing.assert_allclose(p, probs, rtol=1e-5, atol=1e-7)
    # Kernels are chosen per batch size (a 1-row GEMV for the last batch of 50 by 7), so other
    # batch sizes agree to rounding; the same batch size gives the same bits.
    np.testing.assert_allclose(p, model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(p, model.predict(x, batch_size=7, verbose=0))
    np.testing.assert_array_equal(model.predict_on_batch(x[:5]), model.predict(x[:5], verbose=0))
    assert model.predict(x[:0], verbose=0).shape == (0, 3)
    model.reset_metrics()
    out = model.test_on_batch(x[:10], y[:10], return_dict=True)
    assert set(out) == {"accuracy", "loss"}
    before = model.get_weights()
    loss_b, acc_b = model.train_on_batch(x[:10], y[:10])
    assert not weights_equal_lists(before, model.get_weights())
    assert model.optimizer.iterations == 1


def weights_equal_lists(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_training_reduces_the_loss(data):
    x, y = data
    model = make_model(optimizer=cnnfast.optimizers.Adam(learning_rate=0.01))
    hist = model.fit(x, y, epochs=15, batch_size=10, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]


@pytest.mark.parametrize("loss,y_fn,last", [
    ("categorical_crossentropy", lambda y: to_categorical(y, 3), "softmax"),
    ("binary_crossentropy", lambda y: (y[:, None] > 0).astype(float), "sigmoid"),
    ("mse", lambda y: y[:, None].astype(float), None),
    ("mae", lambda y: y[:, None].astype(float), None),
])
def test_other_losses_train(loss, y_fn, last, data):
    x, y = data
    units = 3 if loss == "categorical_crossentropy" else 1
    set_random_seed(0)
    model = models.Sequential([layers.Input((4, 4, 1)), layers.Flatten(), layers.Dense(8, activation="tanh"),
                               layers.Dense(units, activation=last)])
    model.compile(cnnfast.optimizers.Adam(0.01), loss, metrics=["accuracy"] if last else ["mae"])
    hist = model.fit(x, y_fn(y), epochs=10, batch_size=10, verbose=0)
    key = "loss"
    assert hist.history[key][-1] < hist.history[key][0]
    assert ("accuracy" if last else "mae") in hist.history


def test_errors_are_clear(data):
    x, y = data
    model = models.Sequential([layers.Input((4, 4, 1)), layers.Flatten(), layers.Dense(3, activation="softmax")])
    with pytest.raises(RuntimeError, match=r"You must call compile\(\) before using the model"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="Unknown loss 'sparse_categorical_crossentropyy'"):
        model.compile("adam", "sparse_categorical_crossentropyy")
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier 'adma'"):
        model.compile("adma", "mse")
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'"):
        model.compile("adam", "mse", metrics=["acuracy"])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="one-hot targets need loss='categorical_crossentropy'"):
        model.fit(x, to_categorical(y, 3), verbose=0)
    with pytest.raises(ValueError, match="y has 49 samples but x has 50"):
        model.fit(x, y[:49], verbose=0)
    with pytest.raises(ValueError, match="y is required"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split must be a float in \[0, 1\)"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="leaves an empty training or validation set"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="x has no samples"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(50,\)"):
        model.fit(x, y, sample_weight=np.ones(3), verbose=0)
    with pytest.raises(ValueError, match="shuffle must be True, False or 'batch'"):
        model.fit(x, y, shuffle="yes", verbose=0)
    with pytest.raises(ValueError, match=r"y holds class indices in \[7, 7\] but the model has 3 outputs \(valid: 0..2\)"):
        model.evaluate(x, np.full(50, 7), verbose=0)


def test_stop_training_from_a_callback(data):
    x, y = data

    class StopAfterTwo(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    hist = make_model().fit(x, y, epochs=5, batch_size=5, verbose=0, callbacks=[StopAfterTwo()])
    assert hist.epoch == [0]


def test_frozen_layers_stay_fixed_and_reset_the_optimizer(data):
    x, y = data
    model = make_model()
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    assert model.optimizer._state["flat"]["momentum"].size == model.count_params()
    conv = model.layers[0]
    conv.trainable = False
    frozen = conv.get_weights()
    others = [l.get_weights() for l in model.layers[1:]]
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, conv.get_weights()))
    assert not all(np.array_equal(a, b) for l, w in zip(model.layers[1:], others) for a, b in zip(l.get_weights(), w))
    n_trainable = sum(v.size for v in model.trainable_weights)
    assert n_trainable == model.count_params() - conv.count_params()
    assert model.optimizer._state["flat"]["momentum"].size == n_trainable
    assert model.optimizer.iterations == 5  # a new layout restarts the optimizer, as recompiling does
